/*
 * reader/store.h - the store handle shared by reader/store.c (open, map,
 * pin, reclaim, fork) and reader/view.c (views and evaluation). Internal.
 *
 * A handle holds the control object, mapped read-only, and a pointer to the
 * current map: one mapped generation and its struct snap. A view pins the
 * map it uses with a hazard pointer: a per-thread slot that says "this map
 * is in use here". A refresh swaps in a new map and retires the old one; a
 * retired map is freed once no slot of any thread names it. So a view pins
 * one snapshot and nothing else: a stuck view delays the unmapping of its
 * own map only, never the reclamation of the others, never the writer, and
 * never fork() (there is no background thread and no grace period).
 */
#ifndef FLAGSHM_READER_STORE_H
#define FLAGSHM_READER_STORE_H

#include "flagshm.h"
#include "shm.h"
#include "snap.h"

#include <stdatomic.h>
#include <time.h>

#define STORE_MAGIC 0x53544f52u /* "STOR" */
#define VIEW_MAGIC 0x56494557u	/* "VIEW" */

/* One mapped generation. Immutable once published in flagshm_store.cur,
 * except for the lazily filled parts of its snap (snap.h) and refs. */
typedef struct store_map {
	uint64_t generation;
	const void *base;
	size_t size;
	snap snap; /* snap.owner == this map */
	/* Pins beyond a thread's hazard slots (deep nesting): counted here.
	 * Incremented before the re-check of cur, decremented at release;
	 * the reclaimer frees a map only at 0 and unpinned by every slot. */
	_Atomic unsigned refs;
	struct store_map *retired_next; /* under the refresh lock */
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
	/* The current map, NULL until a valid generation is mapped. Stored
	 * only under the refresh lock, seq_cst: it pairs with the seq_cst
	 * hazard-slot store and re-load of cur in store_pin (a reader either
	 * sees the new cur and retries, or the reclaimer sees its slot). */
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
	/* Counting (reader/count.c): NULL when FLAGSHM_OPEN_NO_COUNT. */
	struct count_region *cr;
	/* The writer wants exposures (its answer on the socket): > 0.
	 * Relaxed: a hint on the hot path, set by count.c. */
	_Atomic int expo;
	/* The evaluation hook: ud stored first, then fn with release; loaded
	 * fn with acquire, then ud (flagshm_store_set_hook). */
	_Atomic(flagshm_hook_fn) hook;
	void *_Atomic hook_ud;
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

/*
 * Pin the map to evaluate against, following the writer first if the
 * generation moved (the map is made in this thread, under a trylock; a
 * thread that does not get it keeps the map it has). The fast path: a load
 * of cur, a store to this thread's hazard slot, a re-load of cur, a load of
 * ctl_generation: no system call, no lock, no allocation. Returns the map
 * (NULL when nothing valid is published) and in *PIN what store_unpin
 * needs.
 */
store_map *store_pin(flagshm_store *s, void **pin);
/* Unpin. False (and nothing done) when PIN is not this thread's: a view
 * released on another thread than the one that acquired it. */
bool store_unpin(void *pin);

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

#endif
