/*
 * writer/metrics/wm.c - the aggregator's thread: the store's unix socket,
 * the readers attached to it, the totals, and the stats object.
 *
 * Totals = folded + the sum of every live region. A reader that exits or
 * is killed closes its connection (the kernel closes a dead process's
 * descriptors), we read its region one last time, when nothing can write
 * it any more, add it to folded and unmap it: nothing it counted is lost.
 * Labels come from the current document (doc.h); when it changes, folded
 * is relabelled by text.
 */
#include "wm.h"
#include "counters.h"
#include "doc.h"
#include "region.h"
#include "shm.h"
#include "text.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

const double wm_bucket_bounds[WM_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					     0.25,  0.5,    1,	   2.5,	  5,	10};

#define WM_READERS_MAX 4096 /* connections; more wait in the backlog */
#define WM_PER_UID_MAX 1024 /* connections of one user (a user cannot take them all) */
#define PENDING_MS 5000	    /* a connection must hand its region over within this */
#define PAUSE_MS 1000	    /* accept paused this long when out of descriptors */
#define TICK_MS 1000
#define RATE_SPAN 10 /* seconds of the stats rate */
#define DRAIN_MS 100 /* exposure rings read this often */
#define EXPO_MAX_DEFAULT ((uint64_t)64 << 20)
#define SEEN_MAX (1u << 20) /* exposures remembered per minute */

static const char *const reason_names[WM_REASONS] = {
	"ERROR", "DISABLED", "PREREQUISITE_FAILED", "RULE_MATCH", "SPLIT", "DEFAULT_ROLLOUT",
	"DEFAULT_OFF"};
static const char *const error_names[WM_ERRORS] = {"NONE", "STORE_UNAVAILABLE", "FLAG_NOT_FOUND",
						    "TYPE_MISMATCH", "SNAPSHOT_INVALID"};

typedef struct conn {
	int sock;
	pid_t pid;
	uid_t uid;
	int64_t since_ms; /* accepted at */
	bool has_region;
	wm_region reg;
} conn;

typedef struct hist {
	uint64_t evals[RATE_SPAN + 1];
	int64_t last_ms;
	uint64_t prev;
} hist;

static struct wm {
	/* Stored by wm_start/wm_stop (the daemon's thread); read by
	 * wm_totals_snapshot on any thread: acquire/release, so that a
	 * caller that sees it set sees the state wm_start made. */
	atomic_bool started;
	pthread_t thread;
	int lfd, wake;
	char store[SHM_STORE_NAME_MAX + 1];
	char sock_path[sizeof SHM_DIR + SHM_OBJ_NAME_MAX];
	wm_log_fn log;
	int64_t accept_paused_until; /* thread only: out of descriptors */
	/* Exposures (thread only, but the counters, which are under mu). */
	char *expo_path;
	uint64_t expo_max;
	FILE *expo;
	uint64_t expo_size;
	uint64_t *seen; /* (flag, variant, id) hashes of this minute */
	uint32_t seen_cap, seen_n;
	int64_t seen_minute;
	uint64_t expo_written, expo_dup, expo_lost, expo_dropped; /* under mu */
	/* Thread only: */
	conn *conns;
	size_t nconns;
	/* mu guards everything below. */
	pthread_mutex_t mu;
	wm_doc *doc;	   /* labels of the totals */
	wm_doc *next_doc;  /* set by wm_set_document, taken by the thread */
	wm_counts folded;  /* exited readers */
	wm_counts cur;	   /* folded + live, at the last tick */
	wm_counts work;	   /* the next cur, summed outside the lock (thread only) */
	hist *hist;	   /* per flag of doc */
	int64_t tick_ms[RATE_SPAN + 1];
	unsigned tick_n;   /* ticks so far */
	int64_t taken_ms;
	uint32_t readers;
	bool stats_warned;
} W = {.lfd = -1, .wake = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

static void wlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void wlog(const char *fmt, ...)
{
	if (!W.log)
		return;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	W.log(line);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ document */

/* Under mu: make DOC the labels (relabelling folded, carrying hist). */
static void doc_switch(wm_doc *doc)
{
	wm_counts nf, nc, nw;
	hist *nh = calloc((size_t)doc->nflags + 1, sizeof *nh);
	if (!nh || wm_counts_init(&nf, doc) != 0) {
		free(nh);
		wm_doc_free(doc);
		return;
	}
	if (wm_counts_init(&nc, doc) != 0) {
		wm_counts_free(&nf);
		free(nh);
		wm_doc_free(doc);
		return;
	}
	if (wm_counts_init(&nw, doc) != 0) {
		wm_counts_free(&nf);
		wm_counts_free(&nc);
		free(nh);
		wm_doc_free(doc);
		return;
	}
	if (W.doc) {
		wm_counts_relabel(&nf, &W.folded);
		for (uint32_t f = 0; f <= W.doc->nflags; f++) {
			const char *k = W.doc->flags[f].key;
			uint32_t to = f == W.doc->nflags ? doc->nflags : wm_doc_find(doc, k, strlen(k));
			if (to != doc->nflags || f == W.doc->nflags)
				nh[to] = W.hist[f];
		}
		wm_counts_free(&W.folded);
		wm_counts_free(&W.cur);
		wm_counts_free(&W.work);
		wm_doc_free(W.doc);
		free(W.hist);
	}
	W.doc = doc;
	W.folded = nf;
	W.cur = nc;
	W.work = nw;
	W.hist = nh;
}

void wm_set_document(const void *snap, size_t size)
{
	if (!atomic_load_explicit(&W.started, memory_order_acquire))
		return;
	wm_doc *d = wm_doc_build(snap, size);
	if (!d)
		return;
	pthread_mutex_lock(&W.mu);
	wm_doc_free(W.next_doc);
	W.next_doc = d;
	pthread_mutex_unlock(&W.mu);
	uint64_t one = 1;
	if (write(W.wake, &one, sizeof one) < 0) {
		/* the next tick takes it anyway */
	}
}

/* -------------------------------------------------------------- readers */

static void expo_drain(wm_region *r);

static void conn_fold(conn *c)
{
	if (!c->has_region)
		return;
	pthread_mutex_lock(&W.mu);
	wm_region_read(&c->reg, &W.folded); /* also finds rings made since the tick */
	pthread_mutex_unlock(&W.mu);
	expo_drain(&c->reg); /* its last exposures */
	wm_region_close(&c->reg);
	c->has_region = false;
}

static void conn_drop(size_t i, bool fold)
{
	conn *c = &W.conns[i];
	if (fold)
		conn_fold(c);
	else if (c->has_region)
		wm_region_close(&c->reg);
	close(c->sock);
	W.conns[i] = W.conns[--W.nconns];
}

static void accept_all(void)
{
	for (int k = 0; k < 64; k++) {
		int fd = accept4(W.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			/* Out of descriptors: the connection stays queued and
			 * the socket readable; poll it again only later, or
			 * this thread would spin. */
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				W.accept_paused_until = now_ms() + PAUSE_MS;
				wlog("counting: cannot accept a reader (%s); retrying in %d ms",
				     strerror(errno), PAUSE_MS);
			}
			return;
		}
		if (W.nconns >= WM_READERS_MAX) {
			close(fd);
			wlog("counting: %d readers attached; a new one is refused (not counted)",
			     WM_READERS_MAX);
			continue;
		}
		struct ucred cr;
		socklen_t cl = sizeof cr;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0) {
			close(fd);
			continue;
		}
		size_t same = 0;
		for (size_t i = 0; i < W.nconns; i++)
			same += W.conns[i].uid == cr.uid;
		if (same >= WM_PER_UID_MAX && cr.uid != geteuid()) {
			close(fd);
			wlog("counting: uid %u has %d connections; another is refused", (unsigned)cr.uid,
			     WM_PER_UID_MAX);
			continue;
		}
		conn *n = realloc(W.conns, (W.nconns + 1) * sizeof *n);
		if (!n) {
			close(fd);
			continue;
		}
		W.conns = n;
		W.conns[W.nconns++] = (conn){.sock = fd, .pid = cr.pid, .uid = cr.uid,
					     .since_ms = now_ms()};
	}
}

/* Data on connection I: its region (once), or anything else (ignored), or
 * EOF (the reader is gone: fold). False when it was dropped. */
static bool conn_input(size_t i)
{
	conn *c = &W.conns[i];
	struct {
		uint32_t magic, version;
		int32_t pid;
	} hello;
	char junk[256];
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = c->has_region ? (void *)junk : (void *)&hello,
			    .iov_len = c->has_region ? sizeof junk : sizeof hello};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof u.buf};
	ssize_t n = recvmsg(c->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return true;
	/* Every descriptor that came along is ours to close or keep. */
	int fds[4], nfd = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			for (size_t k = 0; k < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int) && nfd < 4; k++)
				memcpy(&fds[nfd++], CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
	if (n <= 0) {
		for (int k = 0; k < nfd; k++)
			close(fds[k]);
		conn_drop(i, true);
		return false;
	}
	if (c->has_region) { /* nothing more is expected: a reader never sends again */
		for (int k = 0; k < nfd; k++)
			close(fds[k]);
		return true;
	}
	char err[160];
	if (n != sizeof hello || hello.magic != FM_MAGIC || hello.version != FM_VERSION ||
	    nfd != 1 || (mh.msg_flags & MSG_CTRUNC)) {
		for (int k = 0; k < nfd; k++)
			close(fds[k]);
		wlog("counting: reader pid %d (uid %u) refused: not a flagshm region hand-over",
		     (int)c->pid, (unsigned)c->uid);
		conn_drop(i, false);
		return false;
	}
	if (wm_region_open(&c->reg, fds[0], err, sizeof err) != 0) {
		wlog("counting: reader pid %d (uid %u) refused: its region is %s", (int)c->pid,
		     (unsigned)c->uid, err);
		conn_drop(i, false);
		return false;
	}
	c->has_region = true;
	/* Tell the reader whether to record exposures. */
	char ans = W.expo ? FM_EXPO_ON : FM_EXPO_OFF;
	if (send(c->sock, &ans, 1, MSG_DONTWAIT | MSG_NOSIGNAL) != 1) {
		/* a reader that does not read it records none */
	}
	return true;
}

/* ------------------------------------------------------------ exposures */

void wm_set_exposures(const char *file, uint64_t max_bytes)
{
	free(W.expo_path);
	W.expo_path = file ? strdup(file) : NULL;
	W.expo_max = max_bytes ? max_bytes : EXPO_MAX_DEFAULT;
}

static int expo_open(char *err, size_t errlen)
{
	int fd = open(W.expo_path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "cannot open --exposures %s: %s", W.expo_path,
			 fd < 0 ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	W.expo = fdopen(fd, "a");
	if (!W.expo) {
		close(fd);
		snprintf(err, errlen, "cannot open --exposures %s: out of memory", W.expo_path);
		return -1;
	}
	W.expo_size = (uint64_t)st.st_size;
	return 0;
}

/* FILE -> FILE.1 (replacing the older part), and a new FILE. */
static void expo_rotate(void)
{
	fclose(W.expo);
	W.expo = NULL;
	char old[4096];
	snprintf(old, sizeof old, "%s.1", W.expo_path);
	if (rename(W.expo_path, old) != 0)
		wlog("exposures: cannot rotate %s: %s", W.expo_path, strerror(errno));
	char err[256];
	if (expo_open(err, sizeof err) != 0)
		wlog("exposures: %s; exposures are not written", err);
}

/* True when (flag, variant, id) was not written yet this minute (and now
 * is remembered). Past SEEN_MAX in a minute, false: dropped, counted. */
static bool expo_first(const wm_expo *x, int64_t minute, bool *full)
{
	*full = false;
	if (minute != W.seen_minute) {
		if (W.seen)
			memset(W.seen, 0, W.seen_cap * sizeof *W.seen);
		W.seen_n = 0;
		W.seen_minute = minute;
	}
	uint64_t h = 1469598103934665603ull ^ ((uint64_t)x->cell << 20);
	for (size_t i = 0; i < x->idl; i++)
		h = (h ^ (unsigned char)x->id[i]) * 1099511628211ull;
	h = h ^ ((uint64_t)x->idl << 56);
	h |= 1;
	if ((W.seen_n + 1) * 2 > W.seen_cap) {
		if (W.seen_cap >= SEEN_MAX) {
			*full = true;
			return false;
		}
		uint32_t cap = W.seen_cap ? W.seen_cap * 2 : 4096;
		uint64_t *n = calloc(cap, sizeof *n);
		if (!n) {
			*full = true;
			return false;
		}
		for (uint32_t i = 0; i < W.seen_cap; i++) {
			if (!W.seen[i])
				continue;
			uint32_t j = (uint32_t)W.seen[i] & (cap - 1);
			while (n[j])
				j = (j + 1) & (cap - 1);
			n[j] = W.seen[i];
		}
		free(W.seen);
		W.seen = n;
		W.seen_cap = cap;
	}
	uint32_t j = (uint32_t)h & (W.seen_cap - 1);
	for (; W.seen[j]; j = (j + 1) & (W.seen_cap - 1))
		if (W.seen[j] == h)
			return false;
	W.seen[j] = h;
	W.seen_n++;
	return true;
}

static void expo_emit(const wm_expo *x, void *ud)
{
	(void)ud;
	int64_t now = now_ms();
	/* The reader's clock, unless it is far from ours (a lie). */
	int64_t t = x->time_ms > now - 300000 && x->time_ms < now + 300000 ? x->time_ms : now;
	bool full;
	if (!expo_first(x, t / 60000, &full)) {
		pthread_mutex_lock(&W.mu);
		if (full)
			W.expo_dropped++;
		else
			W.expo_dup++;
		pthread_mutex_unlock(&W.mu);
		return;
	}
	if (!W.expo)
		return;
	char stamp[40], key[1024], var[256], id[256];
	time_t sec = (time_t)(t / 1000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + n, sizeof stamp - n, ".%03dZ", (int)(t % 1000));
	fs_text_escape(key, sizeof key, x->flag, strlen(x->flag), FS_TEXT_JSON);
	fs_text_escape(var, sizeof var, x->variant, strlen(x->variant), FS_TEXT_JSON);
	fs_text_escape(id, sizeof id, x->id, x->idl, FS_TEXT_JSON);
	int w = fprintf(W.expo,
			"{\"time\":\"%s\",\"flag\":\"%s\",\"variant\":\"%s\",\"reason\":\"%s\","
			"\"contextId\":\"%s\"}\n",
			stamp, key, var, reason_names[x->reason], id);
	if (w > 0)
		W.expo_size += (uint64_t)w;
	pthread_mutex_lock(&W.mu);
	W.expo_written++;
	pthread_mutex_unlock(&W.mu);
	if (W.expo_size >= W.expo_max) {
		fflush(W.expo);
		expo_rotate();
	}
}

static void expo_drain(wm_region *r)
{
	if (!W.expo_path || !W.doc)
		return;
	uint64_t lost = 0;
	wm_region_drain(r, &W.cur, expo_emit, NULL, &lost);
	if (lost) {
		pthread_mutex_lock(&W.mu);
		W.expo_lost += lost;
		pthread_mutex_unlock(&W.mu);
	}
}

static void expo_drain_all(void)
{
	if (!W.expo_path)
		return;
	for (size_t i = 0; i < W.nconns; i++)
		if (W.conns[i].has_region)
			expo_drain(&W.conns[i].reg);
	if (W.expo)
		fflush(W.expo);
}

/* ---------------------------------------------------------------- stats */

static void jesc(FILE *f, const char *s)
{
	char buf[1024];
	fs_text_escape(buf, sizeof buf, s, strlen(s), FS_TEXT_JSON);
	fprintf(f, "\"%s\"", buf);
}

/* p99 of a histogram: the bound of the bucket that holds the 99th
 * percentile, interpolated linearly as Prometheus' histogram_quantile. */
static double p99(const uint64_t *b, uint64_t total)
{
	if (!total)
		return 0;
	double rank = 0.99 * (double)total, cum = 0;
	for (int i = 0; i <= WM_BUCKETS; i++) {
		double prev = cum;
		cum += (double)b[i];
		if (cum >= rank) {
			if (i == WM_BUCKETS)
				return wm_bucket_bounds[WM_BUCKETS - 1];
			double lo = i ? wm_bucket_bounds[i - 1] : 0, hi = wm_bucket_bounds[i];
			return b[i] ? lo + (hi - lo) * (rank - prev) / (double)b[i] : hi;
		}
	}
	return wm_bucket_bounds[WM_BUCKETS - 1];
}

/* A count for the stats JSON: readers' regions may make sums wrap past
 * what a JSON reader takes (jansson: int64); a lie stays a lie, capped. */
static unsigned long long jc(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? (unsigned long long)INT64_MAX : (unsigned long long)v;
}

typedef struct expo_counts {
	bool on;
	uint64_t written, dup, lost, dropped;
} expo_counts;

static void stats_json(FILE *f, const wm_totals *t, const double *rates, const expo_counts *x)
{
	fprintf(f, "{\"generation\":%llu,\"readers\":%u,\"time_ms\":%lld,",
		jc(t->generation), t->readers, (long long)t->taken_ms);
	if (x->on)
		fprintf(f, "\"exposures\":{\"written\":%llu,\"deduplicated\":%llu,\"lost\":%llu,"
			   "\"dropped\":%llu},",
			jc(x->written), jc(x->dup),
			jc(x->lost), jc(x->dropped));
	fprintf(f, "\"flags\":{");
	for (size_t i = 0; i < t->nflags; i++) {
		const wm_flag *fl = &t->flags[i];
		uint64_t reasons[WM_REASONS] = {0};
		fprintf(f, "%s", i ? "," : "");
		jesc(f, fl->flag);
		fprintf(f, ":{\"evaluations\":%llu,\"rate\":%.3f,\"last_evaluated_ms\":%lld,\"variants\":{",
			jc(fl->evaluations), rates[i], (long long)fl->last_eval_ms);
		bool first = true;
		for (size_t v = 0; v < fl->nvariants; v++) {
			const wm_variant *va = &fl->variants[v];
			uint64_t n = 0;
			for (int r = 0; r < WM_REASONS; r++) {
				n += va->reasons[r];
				reasons[r] += va->reasons[r];
			}
			if (!n)
				continue;
			fprintf(f, "%s", first ? "" : ",");
			first = false;
			jesc(f, va->variant);
			fprintf(f, ":%llu", jc(n));
		}
		fprintf(f, "},\"reasons\":{");
		first = true;
		for (int r = 0; r < WM_REASONS; r++) {
			if (!reasons[r])
				continue;
			fprintf(f, "%s\"%s\":%llu", first ? "" : ",", reason_names[r],
				jc(reasons[r]));
			first = false;
		}
		fprintf(f, "},\"errors\":{");
		first = true;
		for (int e = 1; e < WM_ERRORS; e++) {
			if (!fl->errors[e])
				continue;
			fprintf(f, "%s\"%s\":%llu", first ? "" : ",", error_names[e],
				jc(fl->errors[e]));
			first = false;
		}
		fprintf(f, "},\"outcomes\":{");
		first = true;
		for (size_t v = 0; v < fl->nvariants; v++) {
			const wm_variant *va = &fl->variants[v];
			uint64_t n = va->outcome_ok + va->outcome_err;
			if (!n)
				continue;
			fprintf(f, "%s", first ? "" : ",");
			first = false;
			jesc(f, va->variant);
			fprintf(f, ":{\"success\":%llu,\"error\":%llu,\"count\":%llu,\"error_rate\":%.6g,"
				   "\"p99_seconds\":%.6g,\"sum_seconds\":%.6g}",
				jc(va->outcome_ok), jc(va->outcome_err),
				jc(n), (double)va->outcome_err / (double)n,
				p99(va->buckets, n), isfinite(va->sum_seconds) ? va->sum_seconds : 0.0);
		}
		fprintf(f, "}}");
	}
	fprintf(f, "}}\n");
}

/* Write the stats object whole: a new file renamed over the old one, so a
 * reader opens either whole. Mode 0444, owned by us: `flagshm stats`
 * trusts it as it trusts snapshots. */
static void stats_write(const wm_totals *t, const double *rates, const expo_counts *x)
{
	char name[SHM_OBJ_NAME_MAX], path[sizeof SHM_DIR + SHM_OBJ_NAME_MAX + 8], tmp[sizeof path + 8];
	fm_stats_name(name, sizeof name, W.store);
	snprintf(path, sizeof path, "%s%s", SHM_DIR, name);
	snprintf(tmp, sizeof tmp, "%s.new", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		struct stat st;
		if (lstat(tmp, &st) == 0 && st.st_uid == geteuid())
			unlink(tmp); /* ours, left by a crash */
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	}
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		if (!W.stats_warned)
			wlog("counting: cannot write %s: %s (another user's file?); flagshm stats "
			     "shows nothing", tmp, strerror(errno));
		W.stats_warned = true;
		return;
	}
	stats_json(f, t, rates, x);
	bool ok = fflush(f) == 0 && fchmod(fd, 0444) == 0;
	fclose(f);
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		if (!W.stats_warned)
			wlog("counting: cannot replace %s: %s", path, strerror(errno));
		W.stats_warned = true;
	}
}

/* ------------------------------------------------------------- totals */

static bool variant_used(const wm_cell *c)
{
	for (int r = 0; r < WM_REASONS; r++)
		if (c->reasons[r])
			return true;
	return c->ok || c->err;
}

static bool flag_used(const wm_counts *cn, uint32_t f)
{
	for (uint32_t i = cn->vbase[f]; i < cn->vbase[f + 1]; i++)
		if (variant_used(&cn->cell[i]))
			return true;
	for (int e = 0; e < WM_ERRORS; e++)
		if (cn->errors[f][e])
			return true;
	return false;
}

/* Under mu: a copy of cur, in one block. */
static wm_totals *totals_build(void)
{
	if (!W.doc)
		return calloc(1, sizeof(wm_totals));
	const wm_counts *cn = &W.cur;
	const wm_doc *d = W.doc;
	size_t nf = 0, nv = 0, strs = 0;
	for (uint32_t f = 0; f <= d->nflags; f++) {
		if (!flag_used(cn, f))
			continue;
		nf++;
		strs += strlen(d->flags[f].key) + 1;
		for (uint32_t v = 0; v < d->flags[f].nvar + 2; v++)
			if (variant_used(&cn->cell[cn->vbase[f] + v])) {
				nv++;
				strs += strlen(d->flags[f].var[v]) + 1;
			}
	}
	size_t sz = sizeof(wm_totals) + nf * sizeof(wm_flag) + nv * sizeof(wm_variant) + strs;
	wm_totals *t = calloc(1, sz);
	if (!t)
		return NULL;
	wm_flag *fl = (wm_flag *)(t + 1);
	wm_variant *va = (wm_variant *)(fl + nf);
	char *sp = (char *)(va + nv);
	t->generation = d->generation;
	t->readers = W.readers;
	t->taken_ms = W.taken_ms;
	t->flags = fl;
	for (uint32_t f = 0; f <= d->nflags; f++) {
		if (!flag_used(cn, f))
			continue;
		wm_flag *o = &fl[t->nflags++];
		size_t kl = strlen(d->flags[f].key) + 1;
		o->flag = memcpy(sp, d->flags[f].key, kl);
		sp += kl;
		memcpy(o->errors, cn->errors[f], sizeof o->errors);
		o->last_eval_ms = W.hist[f].last_ms;
		o->variants = va;
		for (uint32_t v = 0; v < d->flags[f].nvar + 2; v++) {
			const wm_cell *c = &cn->cell[cn->vbase[f] + v];
			if (!variant_used(c))
				continue;
			wm_variant *x = &va[o->nvariants++];
			size_t vl = strlen(d->flags[f].var[v]) + 1;
			x->variant = memcpy(sp, d->flags[f].var[v], vl);
			sp += vl;
			memcpy(x->reasons, c->reasons, sizeof x->reasons);
			x->outcome_ok = c->ok;
			x->outcome_err = c->err;
			memcpy(x->buckets, c->buckets, sizeof x->buckets);
			x->sum_seconds = c->sum;
			for (int r = 0; r < WM_REASONS; r++)
				o->evaluations += c->reasons[r];
		}
		va += o->nvariants;
	}
	return t;
}

int wm_totals_snapshot(wm_totals **out)
{
	*out = NULL;
	if (!atomic_load_explicit(&W.started, memory_order_acquire))
		return -1;
	pthread_mutex_lock(&W.mu);
	*out = totals_build();
	pthread_mutex_unlock(&W.mu);
	return *out ? 0 : -1;
}

void wm_totals_free(wm_totals **t)
{
	if (!t || !*t)
		return;
	free(*t);
	*t = NULL;
}

/* One aggregation: cur = folded + every live region; then the history for
 * rates and the stats object. The regions are read into work without the
 * lock (only this thread switches documents and folds), so that
 * wm_totals_snapshot never waits for the reading. */
static void tick(void)
{
	pthread_mutex_lock(&W.mu);
	if (W.next_doc) {
		doc_switch(W.next_doc);
		W.next_doc = NULL;
	}
	wm_counts_zero(&W.work);
	wm_counts_add(&W.work, &W.folded);
	pthread_mutex_unlock(&W.mu);
	uint32_t readers = 0;
	for (size_t i = 0; i < W.nconns; i++) {
		if (!W.conns[i].has_region)
			continue;
		wm_region_read(&W.conns[i].reg, &W.work);
		bool seen = false; /* distinct processes */
		for (size_t k = 0; k < i && !seen; k++)
			seen = W.conns[k].has_region && W.conns[k].pid == W.conns[i].pid;
		readers += !seen;
	}
	pthread_mutex_lock(&W.mu);
	wm_counts swap = W.cur;
	W.cur = W.work;
	W.work = swap;
	W.readers = readers;
	int64_t now = now_ms();
	W.taken_ms = now;
	unsigned slot = W.tick_n % (RATE_SPAN + 1);
	W.tick_ms[slot] = now;
	for (uint32_t f = 0; f <= W.doc->nflags; f++) {
		uint64_t n = 0;
		for (uint32_t c = W.cur.vbase[f]; c < W.cur.vbase[f + 1]; c++)
			for (int r = 0; r < WM_REASONS; r++)
				n += W.cur.cell[c].reasons[r];
		hist *h = &W.hist[f];
		if (n != h->prev)
			h->last_ms = now;
		h->prev = n;
		h->evals[slot] = n;
	}
	W.tick_n++;
	wm_totals *t = totals_build();
	/* The rate of each flag over the last RATE_SPAN seconds (or since
	 * the first tick). */
	unsigned old = W.tick_n > RATE_SPAN ? (W.tick_n - RATE_SPAN - 1) % (RATE_SPAN + 1) : 0;
	double span = (double)(now - W.tick_ms[old]) / 1000.0;
	double *rates = t ? calloc(t->nflags + 1, sizeof *rates) : NULL;
	if (t && rates)
		for (size_t i = 0; i < t->nflags; i++) {
			uint32_t f = wm_doc_find(W.doc, t->flags[i].flag, strlen(t->flags[i].flag));
			if (strcmp(t->flags[i].flag, "(unknown)") == 0)
				f = W.doc->nflags;
			hist *h = &W.hist[f];
			rates[i] = span > 0 ? (double)(h->evals[slot] - h->evals[old]) / span : 0;
		}
	expo_counts xc = {W.expo_path != NULL, W.expo_written, W.expo_dup, W.expo_lost,
			  W.expo_dropped};
	pthread_mutex_unlock(&W.mu);
	if (t && rates)
		stats_write(t, rates, &xc);
	free(rates);
	wm_totals_free(&t);
}

/* --------------------------------------------------------------- thread */

/* Set by wm_stop, read by the thread: relaxed (the eventfd write wakes it;
 * the join orders the rest). */
static atomic_bool stopping;

static void *run(void *arg)
{
	(void)arg;
	int64_t next = now_ms(), next_drain = next;
	struct pollfd *pf = NULL;
	while (!atomic_load_explicit(&stopping, memory_order_relaxed)) {
		pf = realloc(pf, (W.nconns + 2) * sizeof *pf);
		if (!pf) {
			sleep(1);
			continue;
		}
		pf[0] = (struct pollfd){.fd = W.wake, .events = POLLIN};
		bool paused = now_ms() < W.accept_paused_until;
		pf[1] = (struct pollfd){.fd = paused ? -1 : W.lfd, .events = POLLIN};
		for (size_t i = 0; i < W.nconns; i++)
			pf[i + 2] = (struct pollfd){.fd = W.conns[i].sock, .events = POLLIN};
		size_t n = W.nconns;
		int64_t now = now_ms();
		int64_t due = W.expo_path && next_drain < next ? next_drain : next;
		int timeout = due > now ? (int)(due - now) : 0;
		int rc = poll(pf, n + 2, timeout);
		if (rc > 0) {
			if (pf[0].revents) {
				uint64_t v;
				if (read(W.wake, &v, sizeof v) < 0) {
					/* nonblocking: nothing to read */
				}
			}
			/* Connections first, from the end (a drop moves the
			 * last into the hole): exits are folded before the
			 * tick that follows. */
			for (size_t i = n; i-- > 0;)
				if (pf[i + 2].revents && i < W.nconns && W.conns[i].sock == pf[i + 2].fd)
					conn_input(i);
			if (pf[1].revents)
				accept_all();
		}
		bool doc_waiting;
		pthread_mutex_lock(&W.mu);
		doc_waiting = W.next_doc != NULL;
		pthread_mutex_unlock(&W.mu);
		/* A connection that never hands a region over holds a
		 * descriptor for nothing: dropped after PENDING_MS. */
		int64_t now2 = now_ms();
		for (size_t i = W.nconns; i-- > 0;)
			if (!W.conns[i].has_region && now2 - W.conns[i].since_ms > PENDING_MS)
				conn_drop(i, false);
		if (W.expo_path && now_ms() >= next_drain) {
			expo_drain_all();
			next_drain = now_ms() + DRAIN_MS;
		}
		if (now_ms() >= next || doc_waiting) {
			tick();
			next = now_ms() + TICK_MS;
		}
	}
	free(pf);
	return NULL;
}

/* The socket's path: ours to take when free or our own leftover; a name
 * another user holds (or that is not a socket) is refused, as a squatted
 * lock is. */
static int sock_listen(char *err, size_t errlen)
{
	struct stat st;
	if (lstat(W.sock_path, &st) == 0) {
		if (st.st_uid != geteuid() || !S_ISSOCK(st.st_mode)) {
			char who[64];
			shm_uid_describe(who, sizeof who, st.st_uid);
			snprintf(err, errlen, "%s is %s owned by %s, not this writer's socket: refused; "
				 "remove it (as root or that user) to count evaluations", W.sock_path,
				 S_ISSOCK(st.st_mode) ? "a socket" : "a file", who);
			return -1;
		}
		unlink(W.sock_path); /* a previous writer's of ours: we hold the store lock */
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", W.sock_path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    chmod(W.sock_path, 0666) != 0 || listen(fd, 128) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", W.sock_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* Readers of every user may hand us their counts (0666 above): a
	 * connection only gives us a region to read, never the reverse. */
	W.lfd = fd;
	return 0;
}

int wm_start(const char *store, wm_log_fn log, char *err, size_t errlen)
{
	if (atomic_load_explicit(&W.started, memory_order_acquire)) {
		snprintf(err, errlen, "counting already started");
		return -1;
	}
	snprintf(W.store, sizeof W.store, "%s", store);
	fm_sock_path(W.sock_path, sizeof W.sock_path, store);
	W.log = log;
	if (W.expo_path && !W.expo && expo_open(err, errlen) != 0)
		return -1;
	if (sock_listen(err, errlen) != 0)
		return -1;
	/* One descriptor per attached reader: take the hard limit. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	W.wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	wm_doc *d = wm_doc_empty();
	if (W.wake < 0 || !d) {
		snprintf(err, errlen, "counting: out of resources");
		wm_doc_free(d);
		close(W.lfd);
		unlink(W.sock_path);
		return -1;
	}
	pthread_mutex_lock(&W.mu);
	doc_switch(d);
	pthread_mutex_unlock(&W.mu);
	atomic_store_explicit(&stopping, false, memory_order_relaxed);
	atomic_store_explicit(&W.started, true, memory_order_release);
	/* The thread takes no signal: the daemon reads them from a signalfd
	 * of its own thread, and a SIGTERM delivered here would kill the
	 * writer before it cleans up. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int prc = pthread_create(&W.thread, NULL, run, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (prc != 0) {
		atomic_store_explicit(&W.started, false, memory_order_release);
		snprintf(err, errlen, "counting: cannot start its thread");
		close(W.lfd);
		unlink(W.sock_path);
		return -1;
	}
	return 0;
}

void wm_stop(void)
{
	if (!atomic_load_explicit(&W.started, memory_order_acquire))
		return;
	atomic_store_explicit(&stopping, true, memory_order_relaxed);
	uint64_t one = 1;
	if (write(W.wake, &one, sizeof one) < 0) {
		/* the thread wakes at its next tick */
	}
	pthread_join(W.thread, NULL);
	atomic_store_explicit(&W.started, false, memory_order_release);
	expo_drain_all();
	for (size_t i = W.nconns; i-- > 0;)
		conn_drop(i, false);
	if (W.expo) {
		fclose(W.expo);
		W.expo = NULL;
	}
	free(W.conns);
	W.conns = NULL;
	close(W.lfd);
	close(W.wake);
	W.lfd = W.wake = -1;
	unlink(W.sock_path);
	char name[SHM_OBJ_NAME_MAX], path[sizeof SHM_DIR + SHM_OBJ_NAME_MAX];
	fm_stats_name(name, sizeof name, W.store);
	snprintf(path, sizeof path, "%s%s", SHM_DIR, name);
	unlink(path);
	pthread_mutex_lock(&W.mu);
	wm_doc_free(W.next_doc);
	W.next_doc = NULL;
	if (W.doc) {
		wm_counts_free(&W.folded);
		wm_counts_free(&W.cur);
		wm_counts_free(&W.work);
		wm_doc_free(W.doc);
		free(W.hist);
		W.doc = NULL;
		W.hist = NULL;
	}
	pthread_mutex_unlock(&W.mu);
}
