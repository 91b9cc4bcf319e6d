/*
 * reader/count.c - the slow paths of counting (reader/count.h): records
 * found or appended by text, the region (memfd) and its growth, the
 * connection that hands it to the writer, view trails, outcomes,
 * flags_json, the hook, and fork.
 *
 * Trust: the region is ours alone (memfd, never a name). We hand it only to
 * a listener whose peer user (SO_PEERCRED) owns the store's control object
 * and is a trusted writer user. The writer maps it read-only; we seal it
 * against shrinking so that its mapping can never fault.
 */
#include "count.h"
#include "clock.h"
#include "counters.h"
#include "eval.h"
#include "shm.h"
#include "text.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define CONNECT_EVERY_MS 1000

typedef struct count_region {
	uint64_t uid; /* unique in the process: text entries key on it */
	flagshm_store *s;
	int fd;		/* memfd, -1 until the first record */
	uint8_t *base;	/* FM_REGION_MAX reserved, size backed */
	size_t size;
	uint64_t used;
	int sock;	/* to the writer, -1 when not connected */
	/* Relaxed hints for count_idle (view acquire): whether to try, and
	 * when; the decision is retaken under count_lock. */
	_Atomic int connected;
	_Atomic int has_region; /* nothing to hand over before the first record */
	_Atomic int64_t next_try_ms;
	_Atomic int64_t next_expo_ms; /* when to look for the writer's answer again */
	struct count_region *next;
} count_region;

/* Guards every region's appends, growth, connection, and the list (which
 * fork_child walks). Taken only on slow paths. */
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static count_region *regions;
static _Atomic uint64_t uid_seq;
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static bool tls_key_ok;

_Thread_local count_tls *count_tl __attribute__((tls_model("initial-exec")));

typedef struct count_txt {
	uint64_t h;
	uint64_t cr_uid;
	fm_rec *rec;
} count_txt;

/*
 * Records of threads that exited, by text, under count_lock: a new thread
 * adopts one (it has no owner any more) instead of appending its own, so a
 * server that replaces its threads does not fill its region. rec NULL with
 * h set is a deleted entry.
 */
static count_txt *orphans;
static uint32_t orph_cap, orph_used; /* used: live and deleted entries */

static bool orph_put(uint64_t h, uint64_t cr_uid, fm_rec *rec);
static fm_rec *orph_take(uint64_t h, uint64_t cr_uid, unsigned kind, const char *k, size_t kl,
			 const char *var, size_t vl);
static uint64_t txt_hash(uint64_t cr_uid, unsigned kind, const char *k, size_t kl, const char *v,
			 size_t vl);
static void orph_forget(uint64_t cr_uid);

uint64_t count_uid_next(void)
{
	/* Relaxed: only uniqueness matters. */
	return atomic_fetch_add_explicit(&uid_seq, 1, memory_order_relaxed) + 1;
}

static void tls_free(void *p)
{
	count_tls *t = p;
	if (count_tl == t)
		count_tl = NULL;
	for (unsigned i = 0; i < COUNT_TRAILS; i++)
		free(t->tr[i]);
	free(t->seen);
	pthread_mutex_lock(&count_lock);
	for (unsigned k = 0; k < COUNT_TABS; k++) {
		count_tab *tb = &t->tab[k];
		bool open = false; /* the region is still open here, at this address */
		for (count_region *cr = regions; cr && !open; cr = cr->next)
			open = tb->n && cr->uid == tb->cr_uid && cr->base == tb->base;
		for (uint32_t i = 0; open && i < tb->cap; i++)
			if (tb->e[i])
				orph_put(tb->e[i] >> 32, tb->cr_uid,
					 (fm_rec *)(tb->base + (uint32_t)tb->e[i]));
		if (open && tb->ring) /* the next thread's ring */
			orph_put((uint32_t)txt_hash(tb->cr_uid, FM_K_RING, "", 0, "", 0), tb->cr_uid,
				 (fm_rec *)((uint8_t *)tb->ring - offsetof(fm_rec, r_slot)));
		free(tb->e);
	}
	pthread_mutex_unlock(&count_lock);
	free(t);
}

static void tls_init(void)
{
	tls_key_ok = pthread_key_create(&tls_key, tls_free) == 0;
}

static count_tls *tls_get(void)
{
	if (count_tl)
		return count_tl;
	pthread_once(&tls_once, tls_init);
	count_tls *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	if (tls_key_ok)
		pthread_setspecific(tls_key, t);
	count_tl = t;
	return t;
}

/* ---------------------------------------------------------- variant text */

/* The band n of the split that served R: the first band of the rule named
 * R->rule_id whose value is the one served. -1 if not found. */
static int split_band(const snap *sn, uint32_t flag, const flagshm_result *r)
{
	const fs_flag *f = SNAP_FLAG(sn, flag);
	if (!f || !snap_range_ok(sn, FS_T_RULES, f->f_rule_first, f->f_rule_count))
		return -1;
	for (uint32_t i = 0; i < f->f_rule_count; i++) {
		const fs_rule *ru = SNAP_RULE(sn, f->f_rule_first + i);
		if (!ru || snap_str(sn, ru->r_id) != r->rule_id)
			continue;
		if (!snap_range_ok(sn, FS_T_SPLITS, ru->r_split_first, ru->r_split_count))
			return -1;
		for (uint32_t k = 0; k < ru->r_split_count; k++) {
			const fs_split *sp = SNAP_SPLIT(sn, ru->r_split_first + k);
			const fs_value *val = sp ? SNAP_VALUE(sn, sp->sp_value) : NULL;
			if (val && snap_str(sn, val->v_str) == r->value.str.ptr)
				return (int)k;
		}
	}
	return -1;
}

/* The variant of R as counted (docs/metrics.md), into BUF (at least
 * FM_VARIANT_MAX + 1 bytes). Returns its length. */
static size_t variant_text(const snap *sn, uint32_t flag, const flagshm_result *r, char *buf)
{
	size_t cap = FM_VARIANT_MAX + 1, n;
	switch (r->type) {
	case FLAGSHM_TYPE_BOOL:
		n = (size_t)snprintf(buf, cap, "%s", r->value.b ? "true" : "false");
		break;
	case FLAGSHM_TYPE_NUMBER:
		n = fm_number_text(buf, cap, r->value.num);
		break;
	case FLAGSHM_TYPE_STRING:
		n = fm_variant_cut(r->value.str.ptr, r->value.str.len);
		memcpy(buf, r->value.str.ptr, n);
		buf[n] = '\0';
		break;
	case FLAGSHM_TYPE_JSON:
		if (r->reason == FLAGSHM_REASON_RULE_MATCH && r->rule_id) {
			n = (size_t)snprintf(buf, cap, "rule:%s", r->rule_id);
			n = fm_variant_cut(buf, n < cap ? n : cap - 1);
		} else if (r->reason == FLAGSHM_REASON_SPLIT && r->rule_id && sn) {
			n = (size_t)snprintf(buf, cap, "split:%d", split_band(sn, flag, r));
		} else if (r->reason == FLAGSHM_REASON_DEFAULT_ROLLOUT) {
			n = (size_t)snprintf(buf, cap, "default");
		} else {
			n = (size_t)snprintf(buf, cap, "off");
		}
		break;
	default:
		n = (size_t)snprintf(buf, cap, "(none)");
		break;
	}
	if (n >= cap)
		n = cap - 1;
	buf[n] = '\0';
	return n;
}

/* The key of flag FLAG as recorded: "" (counted as "(unknown)") for a key
 * not in the snapshot or longer than FM_KEY_MAX. */
static const char *key_text(const snap *sn, uint32_t flag, size_t *len)
{
	*len = 0;
	if (!sn || flag == COUNT_UNKNOWN)
		return "";
	const fs_flag *f = SNAP_FLAG(sn, flag);
	const char *k = f ? snap_str(sn, f->f_key) : NULL;
	if (!k || f->f_key.len > FM_KEY_MAX)
		return "";
	*len = f->f_key.len;
	return k;
}

/* --------------------------------------------------------------- region */

static void region_reset(count_region *cr)
{
	if (cr->sock >= 0)
		close(cr->sock);
	if (cr->fd >= 0)
		close(cr->fd);
	if (cr->base)
		munmap(cr->base, FM_REGION_MAX);
	cr->sock = cr->fd = -1;
	cr->base = NULL;
	cr->size = cr->used = 0;
	atomic_store_explicit(&cr->connected, 0, memory_order_relaxed);
	atomic_store_explicit(&cr->has_region, 0, memory_order_relaxed);
	atomic_store_explicit(&cr->next_try_ms, 0, memory_order_relaxed);
	atomic_store_explicit(&cr->s->expo, 0, memory_order_relaxed);
}

/* Under count_lock: make the memfd region. False on failure (then this
 * handle's counts go to the sink until a later attempt). */
static bool region_create(count_region *cr)
{
	int fd = memfd_create("flagshm-counters", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return false;
	/* Sealed against shrinking, so the writer's mapping of what it saw
	 * can never fault; F_SEAL_SEAL: nobody adds a seal that stops growth. */
	void *base = MAP_FAILED;
	if (ftruncate(fd, FM_CHUNK) == 0 &&
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) == 0)
		base = mmap(NULL, FM_REGION_MAX, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		close(fd);
		return false;
	}
	fm_hdr *h = base;
	h->rh_magic = FM_MAGIC;
	h->rh_version = FM_VERSION;
	h->rh_hdr_size = sizeof(fm_hdr);
	h->rh_pid = (int32_t)getpid();
	/* Release: pairs with the writer's acquire load of rh_used; the
	 * header is complete before it. */
	__atomic_store_n(&h->rh_used, FM_FIRST, __ATOMIC_RELEASE);
	cr->fd = fd;
	cr->base = base;
	cr->size = FM_CHUNK;
	cr->used = FM_FIRST;
	atomic_store_explicit(&cr->has_region, 1, memory_order_relaxed);
	return true;
}

/* Under count_lock: append a record; NULL when the region is full. */
static fm_rec *region_append(count_region *cr, unsigned kind, unsigned nslots, const char *key,
			     size_t klen, const char *var, size_t vlen)
{
	if (!cr->base && !region_create(cr))
		return NULL;
	fm_hdr *h = (fm_hdr *)cr->base;
	size_t need = (sizeof(fm_rec) + nslots * 8u + klen + vlen + FM_ALIGN - 1) & ~(size_t)(FM_ALIGN - 1);
	if (cr->used + need > cr->size) {
		size_t want = (cr->used + need + FM_CHUNK - 1) / FM_CHUNK * FM_CHUNK;
		if (want > FM_REGION_MAX || ftruncate(cr->fd, (off_t)want) != 0) {
			/* Relaxed: an informational count, ours alone. */
			__atomic_store_n(&h->rh_lost, __atomic_load_n(&h->rh_lost, __ATOMIC_RELAXED) + 1,
					 __ATOMIC_RELAXED);
			return NULL;
		}
		cr->size = want;
	}
	fm_rec *r = (fm_rec *)(cr->base + cr->used);
	r->r_size = (uint32_t)need;
	r->r_kind = (uint16_t)kind;
	r->r_nslots = (uint16_t)nslots;
	r->r_key_len = (uint16_t)klen;
	r->r_var_len = (uint16_t)vlen;
	char *txt = (char *)&r->r_slot[nslots];
	memcpy(txt, key, klen);
	memcpy(txt + klen, var, vlen);
	cr->used += need;
	/* Release: pairs with the writer's acquire load; the record is
	 * complete before the writer reads up to it. */
	__atomic_store_n(&h->rh_used, cr->used, __ATOMIC_RELEASE);
	return r;
}

/* Under count_lock: hand the region to the writer, at most once a
 * CONNECT_EVERY_MS. Never blocks: a non-blocking socket, and a listener
 * that does not take it at once is tried again later. */
static void region_connect(count_region *cr)
{
	flagshm_store *s = cr->s;
	int64_t now = fs_clock_ms(CLOCK_MONOTONIC_COARSE);
	if (cr->sock >= 0 || !cr->base ||
	    now < atomic_load_explicit(&cr->next_try_ms, memory_order_relaxed))
		return;
	atomic_store_explicit(&cr->next_try_ms, now + CONNECT_EVERY_MS, memory_order_relaxed);
	if (store_ctl(s) == &store_detached)
		return; /* no writer yet: we do not know whose listener to trust */
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	fm_sock_path(sa.sun_path, sizeof sa.sun_path, s->name);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	struct ucred cred;
	socklen_t cl = sizeof cred;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 ||
	    cred.uid != s->owner || !shm_trust_has(&s->trust, cred.uid)) {
		close(fd);
		return; /* not the store's writer (or none): never hand it our region */
	}
	struct {
		uint32_t magic, version;
		int32_t pid;
	} hello = {FM_MAGIC, FM_VERSION, (int32_t)getpid()};
	struct iovec iov = {.iov_base = &hello, .iov_len = sizeof hello};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof u);
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof u.buf};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &cr->fd, sizeof(int));
	if (sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof hello) {
		close(fd);
		return;
	}
	cr->sock = fd;
	atomic_store_explicit(&cr->connected, 1, memory_order_relaxed);
}

/* Under count_lock: what the writer sent (its exposures answer), or its
 * end: the connection is closed, and the next attempt may go at once. */
static void sock_input(count_region *cr)
{
	char b[16];
	for (int k = 0; k < 4; k++) {
		ssize_t n = recv(cr->sock, b, sizeof b, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n <= 0) {
			close(cr->sock);
			cr->sock = -1;
			atomic_store_explicit(&cr->connected, 0, memory_order_relaxed);
			atomic_store_explicit(&cr->next_try_ms, 0, memory_order_relaxed);
			atomic_store_explicit(&cr->s->expo, 0, memory_order_relaxed);
			return;
		}
		for (ssize_t i = 0; i < n; i++)
			if (b[i] == FM_EXPO_ON || b[i] == FM_EXPO_OFF)
				atomic_store_explicit(&cr->s->expo, b[i] == FM_EXPO_ON ? 1 : -1,
						      memory_order_relaxed);
	}
}

int count_open(flagshm_store *s)
{
	count_region *cr = calloc(1, sizeof *cr);
	if (!cr)
		return FLAGSHM_ENOMEM;
	cr->uid = count_uid_next();
	cr->s = s;
	cr->fd = cr->sock = -1;
	pthread_mutex_lock(&count_lock);
	cr->next = regions;
	regions = cr;
	pthread_mutex_unlock(&count_lock);
	s->cr = cr;
	return 0;
}

void count_close(flagshm_store *s)
{
	count_region *cr = s->cr;
	if (!cr)
		return;
	pthread_mutex_lock(&count_lock);
	for (count_region **pp = &regions; *pp; pp = &(*pp)->next)
		if (*pp == cr) {
			*pp = cr->next;
			break;
		}
	orph_forget(cr->uid);
	region_reset(cr);
	pthread_mutex_unlock(&count_lock);
	s->cr = NULL;
	free(cr);
}

void count_refresh(flagshm_store *s)
{
	count_region *cr = s->cr;
	if (!cr)
		return;
	pthread_mutex_lock(&count_lock);
	if (cr->sock >= 0) {
		/* The writer closes our connection only when it goes away: a
		 * new writer gets the region again (it sees our whole counts). */
		sock_input(cr);
	}
	region_connect(cr);
	pthread_mutex_unlock(&count_lock);
}

void count_idle(flagshm_store *s)
{
	count_region *cr = s->cr;
	/* Relaxed hints; decided again under the lock. */
	if (!cr || atomic_load_explicit(&cr->connected, memory_order_relaxed) ||
	    !atomic_load_explicit(&cr->has_region, memory_order_relaxed) ||
	    fs_clock_ms(CLOCK_MONOTONIC_COARSE) < atomic_load_explicit(&cr->next_try_ms,
								       memory_order_relaxed))
		return;
	if (pthread_mutex_trylock(&count_lock) != 0)
		return;
	region_connect(cr);
	pthread_mutex_unlock(&count_lock);
}

/* ------------------------------------------------------------- records */

static uint64_t txt_hash(uint64_t cr_uid, unsigned kind, const char *k, size_t kl, const char *v,
			 size_t vl)
{
	uint64_t h = 1469598103934665603ull ^ cr_uid ^ ((uint64_t)kind << 56);
	for (size_t i = 0; i < kl; i++)
		h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
	h = (h ^ 0xff) * 1099511628211ull;
	for (size_t i = 0; i < vl; i++)
		h = (h ^ (unsigned char)v[i]) * 1099511628211ull;
	return h | 1; /* 0 marks an empty entry */
}

static bool tab_grow(count_tab *tb)
{
	uint32_t cap = tb->cap ? tb->cap * 2 : 64;
	uint64_t *n = calloc(cap, sizeof *n);
	if (!n)
		return false;
	for (uint32_t i = 0; i < tb->cap; i++) {
		if (!tb->e[i])
			continue;
		uint32_t j = (uint32_t)(tb->e[i] >> 32) & (cap - 1);
		while (n[j])
			j = (j + 1) & (cap - 1);
		n[j] = tb->e[i];
	}
	free(tb->e);
	tb->e = n;
	tb->cap = cap;
	return true;
}

/* This thread's table for region CR: its own, a free one, or the next to
 * reuse (its records are then found no more by this thread: it appends
 * new ones, still counted). */
static count_tab *tab_for(count_tls *t, uint64_t cr_uid, const uint8_t *base)
{
	for (unsigned k = 0; k < COUNT_TABS; k++)
		if (t->tab[k].cr_uid == cr_uid && t->tab[k].base == base)
			return &t->tab[k];
	count_tab *tb = NULL;
	for (unsigned k = 0; k < COUNT_TABS && !tb; k++)
		if (!t->tab[k].cr_uid)
			tb = &t->tab[k];
	if (!tb)
		tb = &t->tab[t->tab_next++ % COUNT_TABS];
	if (tb->e)
		memset(tb->e, 0, tb->cap * sizeof *tb->e);
	tb->n = 0;
	tb->cr_uid = cr_uid;
	tb->base = base;
	tb->ring = NULL;
	return tb;
}

static bool orph_put(uint64_t h, uint64_t cr_uid, fm_rec *rec)
{
	if ((orph_used + 1) * 2 > orph_cap) {
		uint32_t cap = 64, live = 0;
		for (uint32_t i = 0; i < orph_cap; i++)
			live += orphans[i].rec != NULL;
		while ((live + 1) * 4 > cap) /* at most a quarter full after */
			cap *= 2;
		count_txt *n = calloc(cap, sizeof *n);
		if (!n)
			return false;
		for (uint32_t i = 0; i < orph_cap; i++) {
			if (!orphans[i].rec)
				continue;
			uint32_t j = (uint32_t)orphans[i].h & (cap - 1);
			while (n[j].h)
				j = (j + 1) & (cap - 1);
			n[j] = orphans[i];
		}
		free(orphans);
		orphans = n;
		orph_cap = cap;
		orph_used = live;
	}
	uint32_t j = (uint32_t)h & (orph_cap - 1);
	while (orphans[j].h)
		j = (j + 1) & (orph_cap - 1);
	orphans[j] = (count_txt){h, cr_uid, rec};
	orph_used++;
	return true;
}

/* Under count_lock: adopt an orphan record of this text, or NULL. */
static fm_rec *orph_take(uint64_t h, uint64_t cr_uid, unsigned kind, const char *k, size_t kl,
			 const char *var, size_t vl)
{
	for (uint32_t j = orph_cap ? (uint32_t)h & (orph_cap - 1) : 0; orph_cap && orphans[j].h;
	     j = (j + 1) & (orph_cap - 1)) {
		count_txt *e = &orphans[j];
		fm_rec *r = e->rec;
		if (!r || e->h != h || e->cr_uid != cr_uid)
			continue;
		const char *txt = (const char *)&r->r_slot[r->r_nslots];
		if (r->r_kind == kind && r->r_key_len == kl && r->r_var_len == vl &&
		    memcmp(txt, k, kl) == 0 && memcmp(txt + kl, var, vl) == 0) {
			e->rec = NULL; /* deleted: the probe chain stays whole */
			return r;
		}
	}
	return NULL;
}

/* Under count_lock: drop the orphans of a closed region. */
static void orph_forget(uint64_t cr_uid)
{
	for (uint32_t i = 0; i < orph_cap; i++)
		if (orphans[i].cr_uid == cr_uid)
			orphans[i].rec = NULL;
}

/* This thread's record of (region, kind, key, variant): found, adopted
 * from a thread that exited, or appended. NULL when it cannot be had (memory, a full region). */
static fm_rec *rec_get(count_tls *t, count_region *cr, unsigned kind, const char *k, size_t kl,
		       const char *var, size_t vl)
{
	uint32_t h = (uint32_t)txt_hash(cr->uid, kind, k, kl, var, vl);
	/* The region's base, made if need be: under the lock, as another
	 * thread may be making it. */
	pthread_mutex_lock(&count_lock);
	const uint8_t *base = cr->base || region_create(cr) ? cr->base : NULL;
	pthread_mutex_unlock(&count_lock);
	if (!base)
		return NULL;
	count_tab *tb = tab_for(t, cr->uid, base);
	for (uint32_t j = tb->cap ? h & (tb->cap - 1) : 0; tb->cap && tb->e[j];
	     j = (j + 1) & (tb->cap - 1)) {
		if ((uint32_t)(tb->e[j] >> 32) != h)
			continue;
		fm_rec *r = (fm_rec *)(tb->base + (uint32_t)tb->e[j]);
		const char *txt = (const char *)&r->r_slot[r->r_nslots];
		if (r->r_kind == kind && r->r_key_len == kl && r->r_var_len == vl &&
		    memcmp(txt, k, kl) == 0 && memcmp(txt + kl, var, vl) == 0)
			return r;
	}
	if ((tb->n + 1) * 2 > tb->cap && !tab_grow(tb))
		return NULL;
	pthread_mutex_lock(&count_lock);
	fm_rec *r = orph_take(h, cr->uid, kind, k, kl, var, vl);
	if (!r)
		r = region_append(cr, kind, kind == COUNT_K_EVAL ? FM_EVAL_SLOTS : FM_OUT_SLOTS, k,
				  kl, var, vl);
	region_connect(cr);
	pthread_mutex_unlock(&count_lock);
	if (!r)
		return NULL;
	uint32_t j = h & (tb->cap - 1);
	while (tb->e[j])
		j = (j + 1) & (tb->cap - 1);
	tb->e[j] = (uint64_t)h << 32 | (uint32_t)((const uint8_t *)r - tb->base);
	tb->n++;
	return r;
}

/* The counters of (view's map, FLAG, R's variant, KIND) for this thread,
 * through the cache; the sink when the handle does not count or a record
 * cannot be had. E (may be NULL) gets the cache entry. */
static uint64_t *slots_for(count_tls *t, const flagshm_view *v, uint32_t flag,
			   const flagshm_result *r, unsigned kind, count_ent **ep)
{
	const snap *sn = v->snap;
	uint64_t disc = count_disc(r);
	count_ent *e = &t->cache[kind == COUNT_K_EVAL ? 0 : 1][count_slot_index(flag, disc)];
	if (ep)
		*ep = NULL;
	if (sn && e->uid == sn->uid && e->flag == flag && e->disc == disc) {
		if (ep)
			*ep = e;
		return e->slots;
	}
	count_region *cr = v->store->cr;
	uint64_t *slots = t->sink;
	if (cr) {
		char var[FM_VARIANT_MAX + 1];
		size_t kl, vl = variant_text(sn, flag, r, var);
		const char *k = key_text(sn, flag, &kl);
		fm_rec *rec = rec_get(t, cr, kind, k, kl, var, vl);
		if (rec)
			slots = rec->r_slot;
	}
	if (sn) { /* a view without a map has no uid to cache under */
		*e = (count_ent){.uid = sn->uid, .disc = disc, .flag = flag, .slots = slots,
				 .stamp = 0};
		if (ep)
			*ep = e;
	}
	return slots;
}

void count_slow(const flagshm_view *v, const char *key, uint32_t flag, const flagshm_ctx *ctx,
		const flagshm_result *r)
{
	(void)key;
	count_tls *t = tls_get();
	if (!t)
		return;
	count_ent *e;
	uint64_t *slots = slots_for(t, v, flag, r, COUNT_K_EVAL, &e);
	count_bump(&slots[r->reason]);
	if (r->error_code != FLAGSHM_CODE_NONE && r->error_code <= FLAGSHM_CODE_SNAPSHOT_INVALID)
		count_bump(&slots[7 + r->error_code]);
	count_trail *tr = v->trail_;
	if (tr && e && e->stamp != tr->serial)
		count_trail_add(e, v, flag, count_disc(r), r);
	if (atomic_load_explicit(&v->store->expo, memory_order_relaxed) > 0)
		count_expose(v, ctx, flag, slots, r);
}

/* ---------------------------------------------------------------- trail */

void count_trail_add(count_ent *e, const flagshm_view *v, uint32_t flag, uint64_t disc,
		     const flagshm_result *r)
{
	count_trail *tr = v->trail_;
	e->stamp = tr->serial;
	if (flag == COUNT_UNKNOWN)
		return;
	for (uint32_t i = 0; i < tr->n; i++)
		if (tr->e[i].flag == flag && tr->e[i].disc == disc)
			return;
	if (tr->n == COUNT_TRAIL)
		return;
	tr->e[tr->n++] = (count_trail_ent){.disc = disc, .flag = flag, .r = *r};
}

void count_off(const flagshm_view *v, uint32_t flag, const flagshm_result *r)
{
	count_trail *tr = v->trail_;
	if (!tr || flag == COUNT_UNKNOWN)
		return;
	uint64_t disc = count_disc(r);
	if (tr->n && tr->e[tr->n - 1].flag == flag && tr->e[tr->n - 1].disc == disc)
		return; /* the same as the last one: the usual repeat */
	for (uint32_t i = 0; i < tr->n; i++)
		if (tr->e[i].flag == flag && tr->e[i].disc == disc)
			return;
	if (tr->n < COUNT_TRAIL)
		tr->e[tr->n++] = (count_trail_ent){.disc = disc, .flag = flag, .r = *r};
}

/* Look for the writer's answer (at most every 10 ms, never blocking). */
static void expo_poll(count_region *cr)
{
	int64_t now = fs_clock_ms(CLOCK_MONOTONIC_COARSE);
	if (now < atomic_load_explicit(&cr->next_expo_ms, memory_order_relaxed) ||
	    pthread_mutex_trylock(&count_lock) != 0)
		return;
	atomic_store_explicit(&cr->next_expo_ms, now + 10, memory_order_relaxed);
	if (cr->sock >= 0)
		sock_input(cr);
	pthread_mutex_unlock(&count_lock);
}

/* ------------------------------------------------------------ exposures */

#define SEEN_CAP_MAX 8192u /* per thread; past it the writer deduplicates */

static bool seen_has(count_tls *t, uint64_t hh, int64_t minute)
{
	if (minute != t->seen_minute) {
		if (t->seen)
			memset(t->seen, 0, t->seen_cap * sizeof *t->seen);
		t->seen_n = 0;
		t->seen_minute = minute;
		return false;
	}
	for (uint32_t j = t->seen_cap ? (uint32_t)hh & (t->seen_cap - 1) : 0; t->seen_cap && t->seen[j];
	     j = (j + 1) & (t->seen_cap - 1))
		if (t->seen[j] == hh)
			return true;
	return false;
}

static void seen_add(count_tls *t, uint64_t hh)
{
	if ((t->seen_n + 1) * 2 > t->seen_cap) {
		if (t->seen_cap >= SEEN_CAP_MAX)
			return;
		uint32_t cap = t->seen_cap ? t->seen_cap * 2 : 256;
		uint64_t *n = calloc(cap, sizeof *n);
		if (!n)
			return;
		for (uint32_t i = 0; i < t->seen_cap; i++) {
			if (!t->seen[i])
				continue;
			uint32_t j = (uint32_t)t->seen[i] & (cap - 1);
			while (n[j])
				j = (j + 1) & (cap - 1);
			n[j] = t->seen[i];
		}
		free(t->seen);
		t->seen = n;
		t->seen_cap = cap;
	}
	uint32_t j = (uint32_t)hh & (t->seen_cap - 1);
	while (t->seen[j])
		j = (j + 1) & (t->seen_cap - 1);
	t->seen[j] = hh;
	t->seen_n++;
}

void count_expose(const flagshm_view *v, const flagshm_ctx *ctx, uint32_t flag,
		  const uint64_t *slots, const flagshm_result *r)
{
	count_tls *t = count_tl;
	count_region *cr = v->store->cr;
	if (flag == COUNT_UNKNOWN || !t || !cr || slots == t->sink)
		return;
	/* The context id: the targeting key, userId (docs/flag-format.md). */
	const flagshm_attr *a = eval_ctx_get(ctx, "userId", 6);
	char num[32];
	const char *id;
	size_t idl;
	if (a && a->type == FLAGSHM_ATTR_STRING && a->u.str.ptr) {
		id = a->u.str.ptr;
		idl = a->u.str.len;
	} else if (a && a->type == FLAGSHM_ATTR_NUMBER) {
		id = num;
		idl = fm_number_text(num, sizeof num, a->u.num);
	} else {
		return; /* no one to attribute the exposure to */
	}
	if (idl > FM_RING_ID_MAX)
		idl = FM_RING_ID_MAX;
	int64_t now = fs_clock_ms(CLOCK_REALTIME_COARSE);
	uint64_t minute = (uint64_t)(now / 60000);
	uint64_t hh = (uintptr_t)slots * 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < idl; i++)
		hh = (hh ^ (unsigned char)id[i]) * 1099511628211ull;
	hh |= 1; /* 0 marks a free slot */
	if (seen_has(t, hh, (int64_t)minute))
		return; /* already recorded by this thread this minute */
	/* This thread's table of the region: its ring, made on first use. */
	const fm_rec *rec = (const fm_rec *)((const uint8_t *)slots - offsetof(fm_rec, r_slot));
	count_tab *tb = NULL;
	for (unsigned k = 0; k < COUNT_TABS && !tb; k++)
		if (t->tab[k].cr_uid == cr->uid && t->tab[k].base &&
		    (const uint8_t *)rec >= t->tab[k].base &&
		    (const uint8_t *)rec < t->tab[k].base + FM_REGION_MAX)
			tb = &t->tab[k];
	if (!tb)
		return;
	if (!tb->ring) {
		pthread_mutex_lock(&count_lock);
		fm_rec *rr = NULL;
		if (cr->base == tb->base) {
			rr = orph_take((uint32_t)txt_hash(cr->uid, FM_K_RING, "", 0, "", 0), cr->uid,
				       FM_K_RING, "", 0, "", 0);
			if (!rr)
				rr = region_append(cr, FM_K_RING, FM_RING_SLOTS, "", 0, "", 0);
		}
		pthread_mutex_unlock(&count_lock);
		if (!rr)
			return;
		tb->ring = rr->r_slot;
	}
	seen_add(t, hh);
	uint64_t *ring = tb->ring;
	uint64_t n = __atomic_load_n(&ring[0], __ATOMIC_RELAXED); /* ours alone */
	uint64_t *e = &ring[1 + (n % FM_RING_N) * FM_RING_WORDS];
	uint64_t words[FM_RING_WORDS - 3] = {0};
	memcpy(words, id, idl);
	/* A seqlock per entry: seq 0 while it is rewritten (the fence orders
	 * it before the data), the entry's number + 1 last with release. The
	 * writer loads seq (acquire), the data, an acquire fence, seq again:
	 * both equal means the data is whole. */
	__atomic_store_n(&e[0], 0, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&e[1], (uint64_t)now, __ATOMIC_RELAXED);
	__atomic_store_n(&e[2],
			 (uint64_t)((const uint8_t *)rec - tb->base) | (uint64_t)r->reason << 32 |
				 (uint64_t)idl << 40,
			 __ATOMIC_RELAXED);
	for (unsigned i = 0; i < FM_RING_WORDS - 3; i++)
		__atomic_store_n(&e[3 + i], words[i], __ATOMIC_RELAXED);
	__atomic_store_n(&e[0], n + 1, __ATOMIC_RELEASE);
	/* Release: pairs with the writer's acquire load of the count. */
	__atomic_store_n(&ring[0], n + 1, __ATOMIC_RELEASE);
}

void count_view_begin(flagshm_view *v)
{
	v->trail_ = NULL;
	flagshm_store *s = v->store;
	count_region *cr = s->cr;
	if (cr && !atomic_load_explicit(&cr->connected, memory_order_relaxed))
		count_idle(s);
	else if (cr && atomic_load_explicit(&s->expo, memory_order_relaxed) == 0)
		expo_poll(cr); /* connected; the writer's answer not read yet */
	count_tls *t = tls_get();
	if (!t || t->trails_used == (1u << COUNT_TRAILS) - 1)
		return; /* nested deeper than COUNT_TRAILS: no trail */
	unsigned i = (unsigned)__builtin_ctz(~t->trails_used);
	if (!t->tr[i] && !(t->tr[i] = malloc(sizeof(count_trail))))
		return;
	t->trails_used |= 1u << i;
	count_trail *tr = t->tr[i];
	tr->serial = ++t->serial;
	tr->sn = v->snap;
	tr->uid = v->snap ? ((const snap *)v->snap)->uid : 0;
	tr->s = s;
	tr->n = 0;
	v->trail_ = tr;
}

void count_view_end(flagshm_view *v)
{
	count_tls *t = count_tl;
	count_trail *tr = v->trail_;
	v->trail_ = NULL;
	if (!t || !tr)
		return;
	for (unsigned i = 0; i < COUNT_TRAILS; i++)
		if (t->tr[i] == tr)
			t->trails_used &= ~(1u << i);
}

int count_outcome(const flagshm_view *v, bool ok, double seconds)
{
	if (!(seconds >= 0) || isinf(seconds))
		return FLAGSHM_EINVAL;
	count_trail *tr = v->trail_;
	count_tls *t = count_tl;
	if (!tr || !t || !v->store->cr)
		return 0;
	static const double bounds[FM_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
						  0.25,	 0.5,	 1,	2.5,  5,     10};
	unsigned b = 0;
	while (b < FM_BUCKETS && seconds > bounds[b])
		b++;
	for (uint32_t i = 0; i < tr->n; i++) {
		uint64_t *sl = slots_for(t, v, tr->e[i].flag, &tr->e[i].r, COUNT_K_OUT, NULL);
		count_bump(&sl[ok ? 0 : 1]);
		/* The sum as the bits of a double; one owner, relaxed. */
		uint64_t bits = __atomic_load_n(&sl[2], __ATOMIC_RELAXED);
		double sum;
		memcpy(&sum, &bits, sizeof sum);
		sum += seconds;
		memcpy(&bits, &sum, sizeof bits);
		__atomic_store_n(&sl[2], bits, __ATOMIC_RELAXED);
		count_bump(&sl[3 + b]);
	}
	return 0;
}

/* ----------------------------------------------------------- flags_json */

typedef struct jbuf {
	char *p;
	size_t cap, n;
	bool full;
} jbuf;

static void jput(jbuf *j, const char *s, size_t n)
{
	if (j->full || j->n + n + 2 > j->cap) { /* room for "}" and NUL */
		j->full = true;
		return;
	}
	memcpy(j->p + j->n, s, n);
	j->n += n;
}

static void jstr(jbuf *j, const char *s, size_t n)
{
	char tmp[1024];
	size_t need = fs_text_escape(tmp, sizeof tmp, s, n, FS_TEXT_JSON);
	jput(j, "\"", 1);
	if (need < sizeof tmp) {
		jput(j, tmp, need);
	} else {
		char *big = malloc(need + 1);
		if (!big) {
			j->full = true;
			return;
		}
		fs_text_escape(big, need + 1, s, n, FS_TEXT_JSON);
		jput(j, big, need);
		free(big);
	}
	jput(j, "\"", 1);
}

int count_flags_json(const flagshm_view *v, char *buf, size_t len)
{
	jbuf j = {buf, len, 1, false};
	buf[0] = '{';
	count_trail *tr = v->trail_;
	const snap *sn = v->snap;
	for (uint32_t i = 0; tr && sn && i < tr->n; i++) {
		const count_trail_ent *e = &tr->e[i];
		if (e->r.reason == FLAGSHM_REASON_ERROR)
			continue;
		bool seen = false;
		for (uint32_t k = 0; k < i && !seen; k++)
			seen = tr->e[k].flag == e->flag && tr->e[k].r.reason != FLAGSHM_REASON_ERROR;
		if (seen)
			continue;
		const fs_flag *f = SNAP_FLAG(sn, e->flag);
		const char *key = f ? snap_str(sn, f->f_key) : NULL;
		if (!key)
			continue;
		size_t mark = j.n;
		if (mark > 1)
			jput(&j, ",", 1);
		jstr(&j, key, f->f_key.len);
		jput(&j, ":", 1);
		char num[40];
		switch (e->r.type) {
		case FLAGSHM_TYPE_BOOL:
			jput(&j, e->r.value.b ? "true" : "false", e->r.value.b ? 4 : 5);
			break;
		case FLAGSHM_TYPE_NUMBER:
			jput(&j, num, fm_number_text(num, sizeof num, e->r.value.num));
			break;
		case FLAGSHM_TYPE_STRING:
			jstr(&j, e->r.value.str.ptr, e->r.value.str.len);
			break;
		default: /* JSON text, compiled from the document */
			jput(&j, e->r.value.str.ptr, e->r.value.str.len);
			break;
		}
		if (j.full) {
			j.n = mark; /* whole members only */
			break;
		}
	}
	buf[j.n++] = '}';
	buf[j.n] = '\0';
	return j.full ? FLAGSHM_EFULL : 0;
}

/* ----------------------------------------------------------------- hook */

void count_hook(const flagshm_view *v, const char *key, uint32_t flag, const flagshm_result *r)
{
	flagshm_store *s = v->store;
	/* Acquire: pairs with the release store of the function in
	 * flagshm_store_set_hook; its ud was stored before. */
	flagshm_hook_fn fn = atomic_load_explicit(&s->hook, memory_order_acquire);
	if (!fn)
		return;
	char var[FM_VARIANT_MAX + 1];
	variant_text(v->snap, flag, r, var);
	flagshm_eval_event ev = {.key = key, .result = r, .variant = var, .reason = r->reason,
				 .error = r->error_code};
	fn(atomic_load_explicit(&s->hook_ud, memory_order_relaxed), &ev);
}

/* ----------------------------------------------------------------- fork */

void count_fork_prepare(void)
{
	pthread_mutex_lock(&count_lock);
}

void count_fork_parent(void)
{
	pthread_mutex_unlock(&count_lock);
}

/* The child never writes its parent's regions: it drops them (and the
 * connections, so the writer sees the parent's EOF when the parent goes)
 * and makes its own on its first counted evaluation. This thread's cache
 * and text entries point into the parent's regions: forgotten. */
void count_fork_child(void)
{
	for (count_region *cr = regions; cr; cr = cr->next)
		region_reset(cr);
	if (orphans)
		memset(orphans, 0, orph_cap * sizeof *orphans); /* the parent's records */
	orph_used = 0;
	count_tls *t = count_tl;
	if (t) {
		memset(t->cache, 0, sizeof t->cache);
		if (t->seen) /* hashes of the parent's records */
			memset(t->seen, 0, t->seen_cap * sizeof *t->seen);
		t->seen_n = 0;
		for (unsigned k = 0; k < COUNT_TABS; k++) {
			if (t->tab[k].e)
				memset(t->tab[k].e, 0, t->tab[k].cap * sizeof *t->tab[k].e);
			t->tab[k].n = 0;
			t->tab[k].cr_uid = 0;
			t->tab[k].ring = NULL;
		}
	}
	pthread_mutex_init(&count_lock, NULL);
}
