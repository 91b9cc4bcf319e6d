/*
 * reader/store.c - open and close a store, follow its generations, pin the
 * map a view uses, reclaim the ones nobody uses, and keep working across
 * fork().
 *
 * When the generation moved, one thread maps the new one here, under a
 * trylock, while every other thread goes on with the map it has: nobody
 * waits (except for a thread with no map at all, which waits for the one
 * making the first), and a stopped or slow reader never holds up the writer
 * (the writer does not know readers exist). Mapping costs the same whatever
 * the snapshot's size (snap_map): the work proportional to a snapshot is
 * done per flag and per regex on first use (snap.h).
 */
#include "store.h"
#include "count.h"
#include "clock.h"
#include "flagshm.h"
#include "shm.h"
#include "snap.h"
#include "text.h"

#include <stddef.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


/* A generation that failed with a system error (fd limit, ENOMEM) is tried
 * again after this long; one that failed validation only when the writer
 * publishes another. */
#define RETRY_MS 1000
/* Attempts when the object named by ctl_generation is gone because the
 * writer published twice between our load and our open. */
#define MAP_ATTEMPTS 4
/* A writer whose heartbeat (every second) is at most this old is taken as
 * running, when its lock cannot be inspected (another user's store). */
#define STORE_ALIVE_MS 3000
/* How often a handle opened before its store existed looks for it. */
#define ATTACH_RETRY_MS 250

const fs_ctl store_detached = { .ctl_generation = STORE_DETACHED_GEN };

/*
 * One lock for the refreshes of every store in the process: refreshes are
 * rare (once per publish), and a single lock is what the fork handlers
 * below must hold so that no refresh is half done in the child. It also
 * guards the retired list. Nothing that holds it ever waits for a reader.
 */
static pthread_mutex_t refresh_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* ------------------------------------------------------ hazard pointers */

/* Views a thread may nest before pins are counted in the map instead. */
#define HP_SLOTS 8

/*
 * A thread's hazard slots. Records are never freed: a thread that exits
 * gives its record back (in_use false) for the next thread to take, so the
 * reclaimer can walk the list without a lock while threads come and go.
 */
typedef struct reader_rec {
	/* Stored by the owner thread only: seq_cst when pinning (pairs with
	 * the seq_cst store of cur in store_refresh and the seq_cst loads in
	 * reclaim: either the reader re-reads the new cur, or the reclaimer
	 * sees the slot); release when unpinning. */
	_Atomic(store_map *) hp[HP_SLOTS];
	unsigned depth; /* owner thread only: slots in use, holes included */
	/* CAS false -> true by the thread taking the record; release-stored
	 * false at its exit (rec_exit) or in a fork child (fork_child). */
	atomic_bool in_use;
	struct reader_rec *next; /* set before the record is published */
} reader_rec;

/* The list of records: pushed with a CAS (release), read with acquire. */
static _Atomic(reader_rec *) recs;
static _Thread_local reader_rec *my_rec;
static pthread_key_t rec_key;
static bool rec_key_ok;

static void rec_exit(void *p)
{
	reader_rec *r = p;
	for (unsigned i = 0; i < HP_SLOTS; i++)
		atomic_store_explicit(&r->hp[i], NULL, memory_order_release);
	r->depth = 0;
	/* Release: pairs with the CAS of a thread taking the record. */
	atomic_store_explicit(&r->in_use, false, memory_order_release);
}

/* This thread's record, taking a free one or making one; NULL without
 * memory (the caller then serves STORE_UNAVAILABLE). */
static reader_rec *rec_get(void)
{
	if (__builtin_expect(my_rec != NULL, 1))
		return my_rec;
	reader_rec *r;
	for (r = atomic_load_explicit(&recs, memory_order_acquire); r; r = r->next) {
		bool f = false;
		if (!atomic_load_explicit(&r->in_use, memory_order_relaxed) &&
		    atomic_compare_exchange_strong_explicit(&r->in_use, &f, true,
							    memory_order_acquire,
							    memory_order_relaxed))
			break;
	}
	if (!r) {
		r = calloc(1, sizeof *r);
		if (!r)
			return NULL;
		atomic_init(&r->in_use, true);
		reader_rec *head = atomic_load_explicit(&recs, memory_order_relaxed);
		do
			r->next = head;
		while (!atomic_compare_exchange_weak_explicit(&recs, &head, r, memory_order_release,
							      memory_order_relaxed));
	}
	r->depth = 0;
	if (rec_key_ok)
		pthread_setspecific(rec_key, r); /* rec_exit at thread exit */
	my_rec = r;
	return r;
}

/* True when a slot of any thread, or a counted pin, holds M. */
static bool map_pinned(store_map *m)
{
	if (atomic_load_explicit(&m->refs, memory_order_seq_cst))
		return true;
	for (reader_rec *r = atomic_load_explicit(&recs, memory_order_acquire); r; r = r->next)
		for (unsigned i = 0; i < HP_SLOTS; i++)
			if (atomic_load_explicit(&r->hp[i], memory_order_seq_cst) == m)
				return true;
	return false;
}

static void map_free(store_map *m)
{
	snap_close(&m->snap);
	shm_snap_unmap(m->base, m->size);
	free(m);
}

/* Maps no store points at any more, waiting for their last pin. Under the
 * refresh lock. Bounded by the number of maps pinned at once. */
static store_map *retired;

/* Under the refresh lock, after M stopped being any store's cur. */
static void map_retire(store_map *m)
{
	m->retired_next = retired;
	retired = m;
}

/* Under the refresh lock: free every retired map nobody pins. */
static void reclaim(void)
{
	for (store_map **pp = &retired; *pp;) {
		store_map *m = *pp;
		if (map_pinned(m)) {
			pp = &m->retired_next;
			continue;
		}
		*pp = m->retired_next;
		map_free(m);
	}
}

/* ---------------------------------------------------------------- fork */

/*
 * A pre-fork server opens the store in the parent and forks workers that
 * never call us first. The child inherits the mappings (MAP_SHARED: the
 * same pages), the handle and the records; the other threads do not
 * survive, so their records are given back, and no lock of ours may be
 * inherited held. There is no background thread to stop or restart, and
 * no lock is held while a view is: forking inside a view, or from the log
 * callback, is safe, and an application's own fork handlers (liburcu's
 * included) are not ours to order with.
 */
static void fork_prepare(void)
{
	pthread_mutex_lock(&refresh_lock);
	snap_fork_prepare();
	count_fork_prepare();
}

static void fork_parent(void)
{
	count_fork_parent();
	snap_fork_parent();
	pthread_mutex_unlock(&refresh_lock);
}

static void fork_child(void)
{
	snap_fork_child();
	count_fork_child();
	for (reader_rec *r = atomic_load_explicit(&recs, memory_order_acquire); r; r = r->next)
		if (r != my_rec)
			rec_exit(r); /* that thread does not exist here */
	/* The thread that held it in fork_prepare is the one running here,
	 * but re-initializing is what POSIX promises to work. */
	pthread_mutex_init(&refresh_lock, NULL);
}

static int fork_registered_rc;

static void fork_register(void)
{
	rec_key_ok = pthread_key_create(&rec_key, rec_exit) == 0;
	fork_registered_rc = pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ------------------------------------------------------------- refresh */

static void logf_(flagshm_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void logf_(flagshm_store *s, const char *fmt, ...)
{
	if (!s->log)
		return;
	char line[512], shown[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	/* A key of a damaged snapshot may be in it: no raw control
	 * character reaches the application's log. */
	fs_text_escape(shown, sizeof shown, line, strlen(line), FS_TEXT_PLAIN);
	s->log(s->log_ud, shown);
}

/* Under the refresh lock, for a handle opened before its store existed:
 * map the control object if the writer has created it by now. True when
 * attached; else the next attempt is ATTACH_RETRY_MS away (the bad_gen
 * rate limit of store_refresh), and NOTE says why when it is worth a log
 * line (not for a store that simply does not exist yet). */
static bool store_attach(flagshm_store *s, char *note, size_t n)
{
	char err[256] = "";
	const fs_ctl *ctl;
	uid_t owner;
	int rc = shm_ctl_map_trusted(s->name, &s->trust, &ctl, &owner, err, sizeof err);
	if (rc == 0) {
		s->owner = owner;
		/* Release: pairs with the acquire load in store_ctl; the
		 * owner above and the mapping are seen before the pointer. */
		atomic_store_explicit(&s->ctl, ctl, memory_order_release);
		atomic_store_explicit(&s->bad_gen, 0, memory_order_relaxed);
		snprintf(note, n, "store '%s': the writer created it; attached", s->name);
		return true;
	}
	if (rc != FLAGSHM_ENOSTORE &&
	    atomic_load_explicit(&s->bad_gen, memory_order_relaxed) != STORE_DETACHED_GEN)
		snprintf(note, n, "store '%s': cannot attach (%s: %s); retrying", s->name,
			 flagshm_strerror(rc), err);
	atomic_store_explicit(&s->bad_retry_ms, fs_clock_ms(CLOCK_MONOTONIC_COARSE) + ATTACH_RETRY_MS,
			      memory_order_relaxed);
	atomic_store_explicit(&s->bad_gen, STORE_DETACHED_GEN, memory_order_relaxed);
	return false;
}

/* Under the refresh lock: map generation GEN (the current one, by the
 * control object) and make it cur. True when cur changed. NOTE gets a log
 * line (logged by the caller, outside the lock). */
static bool map_generation(flagshm_store *s, char *note, size_t notelen)
{
	char err[256] = "";
	/* Under the lock we are the only writer of cur. */
	store_map *m = atomic_load_explicit(&s->cur, memory_order_relaxed);
	uint64_t old = m ? m->generation : 0;

	for (int attempt = 0; attempt < MAP_ATTEMPTS; attempt++) {
		/* Acquire: pairs with the release store in shm_writer_publish. */
		uint64_t gen = atomic_load_explicit(&store_ctl(s)->ctl_generation, memory_order_acquire);
		if (m ? m->generation == gen : gen == 0)
			return false; /* another thread did it, or nothing to do */
		if (gen == atomic_load_explicit(&s->bad_gen, memory_order_relaxed)) {
			int64_t retry = atomic_load_explicit(&s->bad_retry_ms, memory_order_relaxed);
			if (retry == 0 || fs_clock_ms(CLOCK_MONOTONIC_COARSE) < retry)
				return false;
		}

		const void *base;
		size_t size;
		int rc = shm_snap_map(s->name, s->owner, gen, &base, &size, err, sizeof err);
		if (rc == FLAGSHM_ENOSTORE && attempt + 1 < MAP_ATTEMPTS)
			continue; /* superseded meanwhile: reload the generation */
		if (rc == 0) {
			store_map *nm = calloc(1, sizeof *nm);
			if (!nm) {
				shm_snap_unmap(base, size);
				snprintf(err, sizeof err, "out of memory");
				rc = FLAGSHM_ENOMEM;
			} else {
				nm->generation = gen;
				nm->base = base;
				nm->size = size;
				atomic_init(&nm->refs, 0);
				/* Size-independent checks only: the rest is
				 * done per flag on first use (snap.h). */
				rc = snap_map(&nm->snap, base, size, err, sizeof err);
				if (rc == 0 && nm->snap.generation != gen) {
					snap_close(&nm->snap);
					snprintf(err, sizeof err, "its header says generation %llu",
						 (unsigned long long)nm->snap.generation);
					rc = FLAGSHM_ECORRUPT;
				}
				if (rc) {
					shm_snap_unmap(base, size);
					free(nm);
				}
			}
			if (rc == 0) {
				nm->snap.owner = nm;
				nm->snap.uid = count_uid_next();
				/* seq_cst: pairs with the seq_cst slot store and
				 * re-load in store_pin (and orders the map's
				 * fields before the pointer, as a release
				 * would). */
				atomic_store_explicit(&s->cur, nm, memory_order_seq_cst);
				if (m)
					map_retire(m);
				reclaim();
				if (atomic_load_explicit(&s->bad_gen, memory_order_relaxed))
					snprintf(note, notelen, "store '%s': serving generation %llu",
						 s->name, (unsigned long long)gen);
				else if (old)
					snprintf(note, notelen, "store '%s': generation %llu -> %llu",
						 s->name, (unsigned long long)old,
						 (unsigned long long)gen);
				atomic_store_explicit(&s->bad_gen, 0, memory_order_relaxed);
				return true;
			}
		}
		int64_t retry_at = 0;
		if (rc != FLAGSHM_ECORRUPT)
			retry_at = fs_clock_ms(CLOCK_MONOTONIC_COARSE) + RETRY_MS; /* may be transient */
		atomic_store_explicit(&s->bad_retry_ms, retry_at, memory_order_relaxed);
		atomic_store_explicit(&s->bad_gen, gen, memory_order_relaxed);
		if (m)
			snprintf(note, notelen,
				 "store '%s': generation %llu refused (%s: %s); still serving %llu",
				 s->name, (unsigned long long)gen, flagshm_strerror(rc), err,
				 (unsigned long long)m->generation);
		else
			snprintf(note, notelen,
				 "store '%s': generation %llu refused (%s: %s); nothing to serve",
				 s->name, (unsigned long long)gen, flagshm_strerror(rc), err);
		return false;
	}
	return false;
}

/* The slow path of store_pin: the generation moved to GEN (or the store is
 * not attached yet). True when cur changed. A thread that has a map
 * (HAVE_MAP) only tries the lock and otherwise keeps serving what it has;
 * one that has none waits for the thread making the first map, rather than
 * answering STORE_UNAVAILABLE while a snapshot is published. Waiting is safe:
 * whoever holds the lock never waits for a reader. */
static bool store_refresh(flagshm_store *s, uint64_t gen, bool have_map)
{
	/* Rate limit: a generation that failed is not retried on every call. */
	if (gen == atomic_load_explicit(&s->bad_gen, memory_order_relaxed)) {
		int64_t retry = atomic_load_explicit(&s->bad_retry_ms, memory_order_relaxed);
		if (retry == 0 || fs_clock_ms(CLOCK_MONOTONIC_COARSE) < retry)
			return false;
	}
	/* A thread cancelled in here must not leave the lock held. */
	int cs;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
	if (have_map ? pthread_mutex_trylock(&refresh_lock) != 0
		     : pthread_mutex_lock(&refresh_lock) != 0) {
		pthread_setcancelstate(cs, NULL);
		return false;
	}
	char note[320] = "";
	bool changed = false;
	if (store_ctl(s) != &store_detached || store_attach(s, note, sizeof note))
		changed = map_generation(s, note, sizeof note);
	pthread_mutex_unlock(&refresh_lock);
	pthread_setcancelstate(cs, NULL);
	/* Outside the lock: the callback may take its own locks, or fork. */
	if (note[0])
		logf_(s, "%s", note);
	/* A new generation may be a new writer: hand it our counts. */
	count_refresh(s);
	return changed;
}

/* A counted pin (deep nesting) is the map's address with the low bit set;
 * a slot pin is the slot's address. */
#define PIN_COUNTED 1u

/* Undo a pin of M not handed out (SLOT NULL: a counted one). */
static void pin_drop(_Atomic(store_map *) *slot, store_map *m)
{
	if (slot)
		atomic_store_explicit(slot, NULL, memory_order_release);
	else
		atomic_fetch_sub_explicit(&m->refs, 1, memory_order_release);
}

store_map *store_pin(flagshm_store *s, void **pin)
{
	*pin = NULL;
	reader_rec *r = rec_get();
	if (!r)
		return NULL;
	unsigned d = r->depth;
	_Atomic(store_map *) *slot = d < HP_SLOTS ? &r->hp[d] : NULL;
	/* Each round either succeeds or saw cur change (a publish, or a
	 * refresh by this or another thread): a bounded number suffices. */
	bool tried = false;
	for (int round = 0; round < 16; round++) {
		store_map *m = atomic_load_explicit(&s->cur, memory_order_seq_cst);
		if (m) {
			if (slot)
				atomic_store_explicit(slot, m, memory_order_seq_cst);
			else
				atomic_fetch_add_explicit(&m->refs, 1, memory_order_seq_cst);
			/* Still current after the pin was published: the
			 * reclaimer either saw the pin or had not retired m. */
			if (atomic_load_explicit(&s->cur, memory_order_seq_cst) != m) {
				pin_drop(slot, m);
				continue;
			}
		}
		/* M is pinned (or NULL): its fields may be read. Acquire:
		 * pairs with the release store of ctl_generation in
		 * shm_writer_publish; what we open for GEN is complete. */
		uint64_t gen = atomic_load_explicit(&store_ctl(s)->ctl_generation,
						    memory_order_acquire);
		if (__builtin_expect(m ? m->generation == gen : gen == 0, 1) || tried) {
			if (m) {
				if (slot) {
					r->depth = d + 1;
					*pin = (void *)slot;
				} else {
					*pin = (void *)((uintptr_t)m | PIN_COUNTED);
				}
			}
			return m;
		}
		/* The generation moved. Unpinned first, so that the refresh
		 * can free the map it replaces at once; then pin what is
		 * current (the new map, or the same one when the refresh
		 * failed or another thread is doing it: then serve that). */
		if (m)
			pin_drop(slot, m);
		if (!store_refresh(s, gen, m != NULL))
			tried = true;
	}
	return NULL;
}

bool store_unpin(void *pin)
{
	if (!pin)
		return true;
	if ((uintptr_t)pin & PIN_COUNTED) {
		store_map *m = (store_map *)((uintptr_t)pin & ~(uintptr_t)PIN_COUNTED);
		/* Release: the view's reads of the map happen before the
		 * reclaimer's seq_cst load sees 0. */
		atomic_fetch_sub_explicit(&m->refs, 1, memory_order_release);
		return true;
	}
	reader_rec *r = my_rec;
	_Atomic(store_map *) *slot = pin;
	if (!r || slot < &r->hp[0] || slot >= &r->hp[HP_SLOTS])
		return false; /* another thread's slot: refuse, keep it pinned */
	/* Release: the view's reads of the map happen before the reclaimer
	 * sees the slot empty. */
	atomic_store_explicit(slot, NULL, memory_order_release);
	while (r->depth > 0 && !atomic_load_explicit(&r->hp[r->depth - 1], memory_order_relaxed))
		r->depth--;
	return true;
}

/* ---------------------------------------------------------------- open */

FLAGSHM_API int flagshm_store_open(const char *name, const flagshm_store_options *opts,
				   flagshm_store **out, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!name || !out) {
		if (err && errlen)
			snprintf(err, errlen, "flagshm_open: %s is NULL", name ? "out" : "name");
		return FLAGSHM_EINVAL;
	}
	*out = NULL;
	int rc = shm_name_check(name, err, errlen);
	if (rc)
		return rc;
	pthread_once(&fork_once, fork_register);
	if (fork_registered_rc) {
		if (err && errlen)
			snprintf(err, errlen, "pthread_atfork: %s", strerror(fork_registered_rc));
		return FLAGSHM_ENOMEM;
	}
	flagshm_store *s = calloc(1, sizeof *s);
	if (!s) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		return FLAGSHM_ENOMEM;
	}
	/* Whose objects we map (docs/architecture.md, "Who can change what
	 * readers see"). Fields past opts->size are taken as defaults, so
	 * that a program built against an older header keeps working. */
	const char *writer_user = NULL;
	unsigned flags = 0;
	flagshm_log_fn log = NULL;
	void *log_ud = NULL;
	if (opts) {
		if (opts->size >= offsetof(flagshm_store_options, log_ud) + sizeof opts->log_ud) {
			log = opts->log;
			log_ud = opts->log_ud;
		}
		if (opts->size >= offsetof(flagshm_store_options, writer_user) + sizeof opts->writer_user)
			writer_user = opts->writer_user;
		if (opts->size >= offsetof(flagshm_store_options, flags) + sizeof opts->flags)
			flags = opts->flags;
	}
	rc = writer_user ? shm_trust_set(&s->trust, writer_user, err, errlen)
			 : shm_trust_default(&s->trust, err, errlen);
	const fs_ctl *ctl = &store_detached;
	if (rc == 0)
		rc = shm_ctl_map_trusted(name, &s->trust, &ctl, &s->owner, err, errlen);
	/* A store that does not exist yet (or is being created) is attached
	 * to later, when the writer has created it, unless the caller wants
	 * today's answer. Everything else (untrusted, corrupt) is an error. */
	if (rc == FLAGSHM_ENOSTORE && !(flags & FLAGSHM_OPEN_STRICT))
		rc = 0;
	if (rc) {
		free(s);
		return rc;
	}
	atomic_init(&s->ctl, ctl);
	s->magic = STORE_MAGIC;
	s->log = log;
	s->log_ud = log_ud;
	snprintf(s->name, sizeof s->name, "%s", name);
	atomic_init(&s->cur, NULL);
	atomic_init(&s->bad_gen, 0);
	atomic_init(&s->bad_retry_ms, 0);
	atomic_init(&s->hook, NULL);
	atomic_init(&s->expo, 0);
	atomic_init(&s->hook_ud, NULL);
	if (!(flags & FLAGSHM_OPEN_NO_COUNT) && count_open(s) != 0) {
		if (ctl != &store_detached)
			shm_ctl_unmap(ctl);
		free(s);
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		return FLAGSHM_ENOMEM;
	}
	*out = s;
	return 0;
}

FLAGSHM_API int flagshm_open_ex(const char *name, flagshm_log_fn log, void *log_ud,
				flagshm_store **out, char *err, size_t errlen)
{
	flagshm_store_options o = { .size = sizeof o, .log = log, .log_ud = log_ud };
	return flagshm_store_open(name, &o, out, err, errlen);
}

FLAGSHM_API int flagshm_open(const char *name, flagshm_store **out)
{
	return flagshm_open_ex(name, NULL, NULL, out, NULL, 0);
}

FLAGSHM_API void flagshm_close(flagshm_store **sp)
{
	if (!sp || !*sp)
		return;
	flagshm_store *s = *sp;
	*sp = NULL;
	if (s->magic != STORE_MAGIC)
		return; /* not a handle, or closed twice: leave it alone */
	/* Wait out a refresh another thread may be finishing (a caller bug,
	 * but cheap to survive). */
	pthread_mutex_lock(&refresh_lock);
	/* seq_cst: as the store of cur in map_generation. */
	store_map *m = atomic_exchange_explicit(&s->cur, NULL, memory_order_seq_cst);
	s->magic = 0;
	if (m)
		map_retire(m);
	reclaim(); /* a map still pinned (a view of a caller bug) waits */
	pthread_mutex_unlock(&refresh_lock);
	count_close(s);
	const fs_ctl *ctl = store_ctl(s);
	if (ctl != &store_detached)
		shm_ctl_unmap(ctl);
	free(s);
}

FLAGSHM_API int flagshm_store_set_hook(flagshm_store *s, flagshm_hook_fn fn, void *ud)
{
	if (!s || s->magic != STORE_MAGIC)
		return FLAGSHM_EINVAL;
	/* ud first, then fn with release: pairs with the acquire load of fn
	 * in count_hook, which then sees this ud (or a later one). */
	atomic_store_explicit(&s->hook_ud, ud, memory_order_relaxed);
	atomic_store_explicit(&s->hook, fn, memory_order_release);
	return 0;
}

FLAGSHM_API int flagshm_store_info(flagshm_store *s, flagshm_info *info)
{
	if (!s || !info || s->magic != STORE_MAGIC)
		return FLAGSHM_EINVAL;
	memset(info, 0, sizeof *info);

	void *pin;
	store_map *m = store_pin(s, &pin);
	if (m) {
		const snap *sn = &m->snap;
		info->generation = m->generation;
		info->published_ms = sn->published_ms;
		info->flag_count = sn->count[FS_T_FLAGS];
		info->snapshot_bytes = m->size;
		/* The header was validated; the string is bounds-checked. */
		const fs_snap_hdr *h = (const fs_snap_hdr *)sn->base;
		const char *env = snap_str(sn, h->sh_environment);
		if (env)
			snprintf(info->environment, sizeof info->environment, "%s", env);
	}
	store_unpin(pin);

	/* Informative fields a writer updates while we read: a torn view of
	 * them is harmless. */
	const fs_ctl *ctl = store_ctl(s);
	info->writer_pid = atomic_load_explicit(&ctl->ctl_writer_pid, memory_order_relaxed);
	info->heartbeat_ms = atomic_load_explicit(&ctl->ctl_heartbeat_ms, memory_order_relaxed);
	int holder = shm_lock_holder(s->name);
	if (holder == FLAGSHM_EUNTRUSTED) {
		/* We may not open the writer's lock object (another user's,
		 * mode 0600): a writer that beats every second is alive. */
		int64_t age = fs_clock_ms(CLOCK_REALTIME) - info->heartbeat_ms;
		info->writer_alive = info->writer_pid > 0 && info->heartbeat_ms > 0 &&
				     age >= -STORE_ALIVE_MS && age <= STORE_ALIVE_MS;
	} else {
		info->writer_alive = info->writer_pid > 0 && holder == info->writer_pid;
	}
	return m ? 0 : FLAGSHM_EUNAVAIL;
}

FLAGSHM_API int flagshm_store_age(flagshm_store *s, int64_t *since_sync_ms,
				  int64_t *since_heartbeat_ms)
{
	if (!s || s->magic != STORE_MAGIC)
		return FLAGSHM_EINVAL;
	int64_t now = fs_clock_ms(CLOCK_REALTIME);
	/* Relaxed: informational values, each stored alone by the writer. */
	const fs_ctl *ctl = store_ctl(s);
	int64_t sync = atomic_load_explicit(&ctl->ctl_last_sync_ms, memory_order_relaxed);
	int64_t beat = atomic_load_explicit(&ctl->ctl_heartbeat_ms, memory_order_relaxed);
	if (since_sync_ms)
		*since_sync_ms = sync > 0 ? now - sync : -1;
	if (since_heartbeat_ms)
		*since_heartbeat_ms = beat > 0 ? now - beat : -1;
	return 0;
}
