/*
 * reader/store.h - the store handle shared by reader/store.c (open, refresh,
 * close, fork) and reader/view.c (views and evaluation). Internal.
 *
 * A handle holds the control object, mapped read-only, and an RCU-protected
 * pointer to the current map: one mapped generation and its validated
 * struct snap. Readers load that pointer inside a liburcu-bp read-side
 * section; a refresh swaps in a new map and hands the old one to call_rcu,
 * which unmaps it after every section that could have seen it has ended.
 */
#ifndef FLAGSHM_READER_STORE_H
#define FLAGSHM_READER_STORE_H

#include "flagshm.h"
#include "shm.h"
#include "snap.h"

#include <stdatomic.h>
#include <time.h>
#include <urcu/urcu-bp.h>

#define STORE_MAGIC 0x53544f52u /* "STOR" */
#define VIEW_MAGIC 0x56494557u	/* "VIEW" */

/* One mapped, validated generation. Immutable once published in
 * flagshm_store.cur, until call_rcu frees it. */
typedef struct store_map {
	struct rcu_head rcu;
	uint64_t generation;
	const void *base;
	size_t size;
	snap snap; /* snap.owner == this map */
} store_map;

struct flagshm_store {
	uint32_t magic; /* STORE_MAGIC */
	/* The control object, mapped read-only for the life of the handle
	 * once attached. Until the writer has created the store it is
	 * &store_detached, whose generation is never a real one, so every
	 * view goes to store_refresh, which tries to attach (rate-limited).
	 * Set once, under the refresh lock, with a release store; loaded with
	 * acquire (store_ctl), so that the mapping is seen whole. */
	_Atomic(const fs_ctl *) ctl;
	/* The current map, NULL until a valid generation is mapped. Written
	 * only under the refresh lock with a release store (the
	 * rcu_assign_pointer); read with an acquire load (the
	 * rcu_dereference) inside a read-side section. C11 atomics rather
	 * than liburcu's macros: the same instructions on x86 and arm64 (a
	 * consume load is compiled as acquire), and ThreadSanitizer sees
	 * them. */
	_Atomic(store_map *) cur;
	/* A generation that failed to map or validate, not retried on
	 * every call; bad_retry_ms: when to try it again (0: only when the
	 * generation moves on). Relaxed: hints, rechecked under the lock. */
	_Atomic uint64_t bad_gen;
	_Atomic int64_t bad_retry_ms;
	flagshm_log_fn log;
	void *log_ud;
	uid_t owner; /* of the control object: every snapshot must be its */
	shm_trust trust; /* whose control object to attach to */
	char name[SHM_STORE_NAME_MAX + 1];
};

/* The control object of a handle that is not attached yet. */
extern const fs_ctl store_detached;
/* ctl_generation of store_detached: no writer publishes it (a real store
 * would have to publish 2^64-1 generations first). */
#define STORE_DETACHED_GEN UINT64_MAX

static inline const fs_ctl *store_ctl(const flagshm_store *s)
{
	/* Acquire: pairs with the release store in store_attach. */
	return atomic_load_explicit(&s->ctl, memory_order_acquire);
}

/* Slow path of store_current: map generation GEN (which differs from
 * CUR's). Returns the map to use: the new one, or CUR when the refresh
 * failed or another thread is doing it. Call inside a read-side section. */
store_map *store_refresh(flagshm_store *s, uint64_t gen, store_map *cur);

/*
 * The map to evaluate against, inside a read-side section
 * (urcu_bp_read_lock): one acquire load of ctl_generation and one of cur;
 * when they agree, no system call, lock or allocation.
 */
static inline store_map *store_current(flagshm_store *s)
{
	/* Acquire: pairs with the release store of ctl_generation in
	 * shm_writer_publish; what we open for GEN is complete. */
	uint64_t gen = atomic_load_explicit(&store_ctl(s)->ctl_generation, memory_order_acquire);
	/* Acquire (rcu_dereference): pairs with the release store of cur in
	 * store_refresh; the map's fields are initialized. */
	store_map *m = atomic_load_explicit(&s->cur, memory_order_acquire);
	if (__builtin_expect(m ? m->generation == gen : gen == 0, 1))
		return m;
	return store_refresh(s, gen, m);
}

/*
 * True when the writer publishes a staleness threshold (ctl_stale_after_ms >
 * 0) and its last successful sync is older. One relaxed load when there is
 * no threshold; else a coarse clock read (vDSO, no system call) and a
 * second load. Once per view acquire, not per evaluation.
 */
static inline bool store_stale(const flagshm_store *s)
{
	/* Relaxed: informational values the writer stores alone. */
	const fs_ctl *ctl = store_ctl(s);
	int64_t after = atomic_load_explicit(&ctl->ctl_stale_after_ms, memory_order_relaxed);
	if (__builtin_expect(after <= 0, 1))
		return false;
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME_COARSE, &ts) != 0)
		return false;
	int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	/* now - sync > after, without the overflow a hostile sync time
	 * (INT64_MIN) would cause: now >= 0 and after > 0. */
	return atomic_load_explicit(&ctl->ctl_last_sync_ms, memory_order_relaxed) < now - after;
}

/* ThreadSanitizer cannot see liburcu's grace periods (the library is not
 * instrumented): every read-side section end "releases" one sync address
 * and every reclamation "acquires" it, which is what a grace period
 * guarantees. No code in other builds. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) && !defined(__SANITIZE_THREAD__)
#define __SANITIZE_THREAD__ 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
extern char store_tsan_gp;
#define STORE_TSAN_RELEASE() __tsan_release(&store_tsan_gp)
#define STORE_TSAN_ACQUIRE() __tsan_acquire(&store_tsan_gp)
#else
#define STORE_TSAN_RELEASE() ((void)0)
#define STORE_TSAN_ACQUIRE() ((void)0)
#endif

#endif
