/*
 * reader/store.c - open and close a store, follow its generations, and
 * keep working across fork().
 *
 * The evaluation path (store_current in store.h) is two acquire loads.
 * When the generation moved, one thread maps the new one here, under a
 * trylock, while every other thread goes on with the map it has: nobody
 * waits (except for the process's very first map), and a stopped or slow
 * reader never holds up the writer (the writer does not know readers
 * exist).
 */
#include "store.h"
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

#if defined(__SANITIZE_THREAD__)
char store_tsan_gp;
#endif

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
 * below must hold so that no refresh is half done in the child.
 */
static pthread_mutex_t refresh_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* ------------------------------------------------------------- reclaim */

static void map_free(store_map *m)
{
	snap_close(&m->snap);
	shm_snap_unmap(m->base, m->size);
	free(m);
}

/* call_rcu callback: every read-side section that could hold M has ended. */
static void map_free_rcu(struct rcu_head *h)
{
	store_map *m = (store_map *)((char *)h - offsetof(store_map, rcu));
	STORE_TSAN_ACQUIRE();
	map_free(m);
}

static void map_retire(store_map *m)
{
	STORE_TSAN_RELEASE();
	urcu_bp_call_rcu(&m->rcu, map_free_rcu);
}

/* ---------------------------------------------------------------- fork */

/*
 * A pre-fork server opens the store in the parent and forks workers that
 * never call us first. The child inherits the mappings (MAP_SHARED: the
 * same pages), the handle and liburcu's state; what does not survive is
 * other threads: liburcu-bp's registry must forget them and the call_rcu
 * worker must be recreated, and the refresh lock must not be inherited
 * held. Order matters: call_rcu's worker may be inside a grace period,
 * which takes the locks urcu_bp_before_fork takes, so it is paused first.
 *
 * liburcu warns that call_rcu atfork handlers can hang with allocators
 * that take locks in their own atfork handlers while a callback frees;
 * glibc (>= 2.24) takes its malloc locks after all prepare handlers have
 * run, and our callback takes no lock of ours.
 */
static void fork_prepare(void)
{
	pthread_mutex_lock(&refresh_lock);
	urcu_bp_call_rcu_before_fork();
	urcu_bp_before_fork();
}

static void fork_parent(void)
{
	urcu_bp_after_fork_parent();
	urcu_bp_call_rcu_after_fork_parent();
	pthread_mutex_unlock(&refresh_lock);
}

static void fork_child(void)
{
	urcu_bp_after_fork_child();
	urcu_bp_call_rcu_after_fork_child();
	/* The thread that held it in fork_prepare is the one running here,
	 * but re-initializing is what POSIX promises to work. */
	pthread_mutex_init(&refresh_lock, NULL);
}

static int fork_registered_rc;

static void fork_register(void)
{
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

store_map *store_refresh(flagshm_store *s, uint64_t gen, store_map *cur)
{
	/* Rate limit: a generation that failed is not retried on every call. */
	if (gen == atomic_load_explicit(&s->bad_gen, memory_order_relaxed)) {
		int64_t retry = atomic_load_explicit(&s->bad_retry_ms, memory_order_relaxed);
		if (retry == 0 || fs_clock_ms(CLOCK_MONOTONIC_COARSE) < retry)
			return cur;
	}
	/* Another thread is refreshing (or forking): keep serving CUR. With
	 * no map yet there is nothing to serve, so wait for the thread that
	 * maps the first one instead of answering STORE_UNAVAILABLE while a
	 * snapshot is published: this is the only place a reader waits,
	 * once per process, before its first map. It waits only outside a
	 * read-side section (flagshm_view_acquire primes the first map
	 * before entering one): a grace period, or a fork pausing the
	 * call_rcu worker while holding refresh_lock, must never wait on a
	 * reader that waits on refresh_lock. */
	bool wait = !cur && !urcu_bp_read_ongoing();
	if (wait ? pthread_mutex_lock(&refresh_lock) != 0
		 : pthread_mutex_trylock(&refresh_lock) != 0)
		return cur;

	char err[256] = "";
	char note[320] = "";
	if (store_ctl(s) == &store_detached && !store_attach(s, note, sizeof note)) {
		pthread_mutex_unlock(&refresh_lock);
		if (note[0])
			logf_(s, "%s", note);
		return cur;
	}
	/* Under the lock we are the only writer of cur. */
	store_map *m = atomic_load_explicit(&s->cur, memory_order_relaxed);
	uint64_t old = m ? m->generation : 0;

	for (int attempt = 0; attempt < MAP_ATTEMPTS; attempt++) {
		/* Acquire: pairs with the release store in shm_writer_publish. */
		gen = atomic_load_explicit(&store_ctl(s)->ctl_generation, memory_order_acquire);
		if (m ? m->generation == gen : gen == 0)
			break; /* another thread did it, or nothing to do */
		if (gen == atomic_load_explicit(&s->bad_gen, memory_order_relaxed)) {
			int64_t retry = atomic_load_explicit(&s->bad_retry_ms, memory_order_relaxed);
			if (retry == 0 || fs_clock_ms(CLOCK_MONOTONIC_COARSE) < retry)
				break;
		}

		const void *base;
		size_t size;
		int rc = shm_snap_map(s->name, s->owner, gen, &base, &size, err, sizeof err);
		if (rc == FLAGSHM_ENOSTORE && attempt + 1 < MAP_ATTEMPTS)
			continue; /* superseded meanwhile: reload the generation */
		int64_t retry_at = 0;
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
				rc = snap_open(&nm->snap, base, size, err, sizeof err);
				if (rc == 0 && nm->snap.generation != gen) {
					snap_close(&nm->snap);
					snprintf(err, sizeof err,
						 "its header says generation %llu",
						 (unsigned long long)nm->snap.generation);
					rc = FLAGSHM_ECORRUPT;
				}
				if (rc) {
					shm_snap_unmap(base, size);
					free(nm);
				} else {
					nm->snap.owner = nm;
					/* Release (rcu_assign_pointer): pairs
					 * with the acquire load of cur in
					 * store_current. */
					atomic_store_explicit(&s->cur, nm, memory_order_release);
					if (m)
						map_retire(m);
					m = nm;
					if (atomic_load_explicit(&s->bad_gen, memory_order_relaxed))
						snprintf(note, sizeof note,
							 "store '%s': serving generation %llu",
							 s->name, (unsigned long long)gen);
					else if (old)
						snprintf(note, sizeof note,
							 "store '%s': generation %llu -> %llu",
							 s->name, (unsigned long long)old,
							 (unsigned long long)gen);
					atomic_store_explicit(&s->bad_gen, 0, memory_order_relaxed);
					break;
				}
			}
		}
		if (rc != FLAGSHM_ECORRUPT)
			retry_at = fs_clock_ms(CLOCK_MONOTONIC_COARSE) + RETRY_MS; /* may be transient */
		atomic_store_explicit(&s->bad_retry_ms, retry_at, memory_order_relaxed);
		atomic_store_explicit(&s->bad_gen, gen, memory_order_relaxed);
		if (m)
			snprintf(note, sizeof note,
				 "store '%s': generation %llu refused (%s: %s); still serving %llu",
				 s->name, (unsigned long long)gen, flagshm_strerror(rc), err,
				 (unsigned long long)m->generation);
		else
			snprintf(note, sizeof note,
				 "store '%s': generation %llu refused (%s: %s); nothing to serve",
				 s->name, (unsigned long long)gen, flagshm_strerror(rc), err);
		break;
	}
	pthread_mutex_unlock(&refresh_lock);
	/* Outside the lock: the callback may take its own locks, or fork. */
	if (note[0])
		logf_(s, "%s", note);
	return m;
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
	store_map *m = atomic_exchange_explicit(&s->cur, NULL, memory_order_acq_rel);
	s->magic = 0;
	pthread_mutex_unlock(&refresh_lock);
	if (m) {
		if (urcu_bp_read_ongoing()) {
			/* A view of another store is held on this thread:
			 * waiting for a grace period here would wait for
			 * ourselves. */
			map_retire(m);
		} else {
			urcu_bp_synchronize_rcu();
			STORE_TSAN_ACQUIRE();
			map_free(m);
		}
	}
	const fs_ctl *ctl = store_ctl(s);
	if (ctl != &store_detached)
		shm_ctl_unmap(ctl);
	free(s);
}

FLAGSHM_API int flagshm_store_info(flagshm_store *s, flagshm_info *info)
{
	if (!s || !info || s->magic != STORE_MAGIC)
		return FLAGSHM_EINVAL;
	memset(info, 0, sizeof *info);

	urcu_bp_read_lock();
	store_map *m = store_current(s);
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
	STORE_TSAN_RELEASE();
	urcu_bp_read_unlock();

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
