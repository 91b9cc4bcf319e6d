/*
 * reader/count.h - every evaluation counts itself (docs/metrics.md).
 *
 * A handle's counts live in a region of this process (memfd, shm/counters.h)
 * that the writer maps read-only. Each thread appends its own records, so a
 * counter has one writer: a relaxed load and store, no read-modify-write, no
 * line shared between threads. The fast path is a per-thread direct-mapped
 * cache keyed by (map uid, flag index, variant discriminator) that gives the
 * record's counters; a miss (first evaluation of that flag and variant in a
 * map) finds or appends the record by text, under one process lock.
 * Internal.
 */
#ifndef FLAGSHM_READER_COUNT_H
#define FLAGSHM_READER_COUNT_H

#include "flagshm.h"
#include "snap.h"
#include "store.h"

#include <stdint.h>

#define COUNT_CACHE 256u  /* entries per thread */
#define COUNT_TRAIL 64u	  /* flag x variant kept per view */
#define COUNT_TRAILS 8u	  /* views per thread that keep a trail */
#define COUNT_UNKNOWN UINT32_MAX /* flag index of a key not in the snapshot */

enum { COUNT_K_EVAL = 1, COUNT_K_OUT = 2 }; /* FM_K_EVAL, FM_K_OUTCOME */

typedef struct count_ent {
	uint64_t uid;	 /* snap.uid; 0 = empty */
	uint64_t disc;	 /* the variant discriminator (count_disc) */
	uint32_t flag;
	uint32_t pad_;
	uint64_t *slots; /* the record's counters (or a per-thread sink) */
	uint64_t stamp;	 /* serial of the last view trail it joined */
} count_ent;

typedef struct count_trail_ent {
	uint64_t disc;
	uint32_t flag;
	flagshm_result r;
} count_trail_ent;

typedef struct count_trail {
	uint64_t serial; /* unique per acquire in this thread */
	uint64_t uid;	 /* of the view's map */
	const snap *sn;
	flagshm_store *s;
	uint32_t n;
	count_trail_ent e[COUNT_TRAIL];
} count_trail;

/* A thread's records in one region, by text: open addressing over 8-byte
 * entries (32 bits of the text's hash, the record's offset; 0 empty). */
#define COUNT_TABS 4u /* handles a thread counts into at once; then reuse */
typedef struct count_tab {
	uint64_t cr_uid;   /* the region's handle; 0 free */
	const uint8_t *base;
	uint64_t *e;
	uint32_t cap, n;
	uint64_t *ring;	   /* this thread's exposure ring in it (FM_K_RING slots) */
} count_tab;

typedef struct count_tls count_tls;
struct count_tls {
	count_ent cache[2][COUNT_CACHE]; /* [0] evaluations, [1] outcomes */
	uint64_t serial;
	unsigned trails_used; /* bit i: tr[i] belongs to a held view */
	count_trail *tr[COUNT_TRAILS]; /* made on first use: most threads nest 1 or 2 */
	count_tab tab[COUNT_TABS];
	unsigned tab_next;	/* the one to reuse when all are taken */
	uint64_t sink[32];	/* counters of a handle that does not count */
	/* Exposures already put in a ring this minute, by hash of (record,
	 * id): a set (made when exposures are on), emptied each minute; a
	 * repeat is not recorded again. Full: the writer deduplicates. */
	uint64_t *seen;
	uint32_t seen_cap, seen_n;
	int64_t seen_minute;
};

/* This thread's state, NULL until its first counted evaluation. */
extern _Thread_local count_tls *count_tl __attribute__((tls_model("initial-exec")));

/* Discriminator of R's variant within its flag: cheap, and equal for equal
 * variants of one map (bool value, number bits, string pointer into the
 * map, JSON origin). */
#define COUNT_DISC_ERR 0xfff0000000000001ull /* a NaN: never a number of a document */
static inline uint64_t count_disc(const flagshm_result *r)
{
	switch (r->type) {
	case FLAGSHM_TYPE_BOOL:
		return r->value.b;
	case FLAGSHM_TYPE_NUMBER: {
		uint64_t u;
		__builtin_memcpy(&u, &r->value.num, sizeof u);
		return u;
	}
	case FLAGSHM_TYPE_STRING:
		return (uintptr_t)r->value.str.ptr;
	case FLAGSHM_TYPE_JSON:
		if (r->reason == FLAGSHM_REASON_RULE_MATCH)
			return (uintptr_t)r->rule_id;
		if (r->reason == FLAGSHM_REASON_SPLIT)
			return ((uintptr_t)r->rule_id * 0x9e3779b97f4a7c15ull) ^ (uintptr_t)r->value.str.ptr;
		return r->reason == FLAGSHM_REASON_DEFAULT_ROLLOUT ? 2 : 3;
	default:
		return COUNT_DISC_ERR;
	}
}

static inline uint32_t count_slot_index(uint32_t flag, uint64_t disc)
{
	/* Fibonacci hashing: the top 8 bits of one multiply. */
	return ((flag ^ (uint32_t)(disc ^ (disc >> 17))) * 2654435761u) >> 24;
}
_Static_assert(COUNT_CACHE == 256, "count_slot_index gives 8 bits");

/* One owner thread per counter: relaxed load + store. The writer's relaxed
 * loads pair with nothing: a count is a monotonic 64-bit word. */
static inline void count_bump(uint64_t *c)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

void count_slow(const flagshm_view *v, const char *key, uint32_t flag, const flagshm_ctx *ctx,
		const flagshm_result *r);
void count_trail_add(count_ent *e, const flagshm_view *v, uint32_t flag, uint64_t disc,
		     const flagshm_result *r);
void count_off(const flagshm_view *v, uint32_t flag, const flagshm_result *r);
void count_expose(const flagshm_view *v, const flagshm_ctx *ctx, uint32_t flag,
		  const uint64_t *slots, const flagshm_result *r);
void count_hook(const flagshm_view *v, const char *key, uint32_t flag, const flagshm_result *r);

/*
 * Count the evaluation of KEY (flag index FLAG, or COUNT_UNKNOWN) in view
 * V with result R. The fast path: the hook test, a cache probe, one or two
 * relaxed load+store pairs, the trail stamp test.
 */
static inline void count_eval(const flagshm_view *v, const char *key, uint32_t flag,
			      const flagshm_ctx *ctx, const flagshm_result *r)
{
	flagshm_store *s = v->store;
	if (__builtin_expect(s == NULL, 0))
		return; /* a view made by hand over a bare snapshot (tests) */
	if (__builtin_expect(atomic_load_explicit(&s->hook, memory_order_relaxed) != NULL, 0))
		count_hook(v, key, flag, r);
	if (__builtin_expect(s->cr == NULL, 0)) {
		count_off(v, flag, r); /* FLAGSHM_OPEN_NO_COUNT: the view's trail only */
		return;
	}
	count_tls *t = count_tl;
	const snap *sn = v->snap;
	if (__builtin_expect(t != NULL && sn != NULL, 1)) {
		uint64_t disc = count_disc(r);
		count_ent *e = &t->cache[0][count_slot_index(flag, disc)];
		if (__builtin_expect(e->uid == sn->uid && e->flag == flag && e->disc == disc, 1)) {
			count_bump(&e->slots[r->reason]);
			if (__builtin_expect(r->error_code != FLAGSHM_CODE_NONE, 0))
				count_bump(&e->slots[7 + r->error_code]);
			count_trail *tr = v->trail_;
			if (tr && e->stamp != tr->serial)
				count_trail_add(e, v, flag, disc, r);
			if (__builtin_expect(atomic_load_explicit(&s->expo, memory_order_relaxed) > 0, 0))
				count_expose(v, ctx, flag, e->slots, r);
			return;
		}
	}
	count_slow(v, key, flag, ctx, r);
}

/* Handle lifetime: 0 or FLAGSHM_ENOMEM. count_close unmaps the region
 * (the writer folds what it counted when the connection closes). */
int count_open(flagshm_store *s);
void count_close(flagshm_store *s);
/* Slow paths of the store: after a refresh (the writer may have been
 * replaced: reconnect) and at view acquire while not connected (at most
 * one attempt a second). */
void count_refresh(flagshm_store *s);
void count_idle(flagshm_store *s);
/* View begin/end: a trail for flags_json and outcomes. */
void count_view_begin(flagshm_view *v);
void count_view_end(flagshm_view *v);
int count_outcome(const flagshm_view *v, bool ok, double seconds);
int count_flags_json(const flagshm_view *v, char *buf, size_t len);
/* fork: called from reader/store.c's handlers. */
void count_fork_prepare(void);
void count_fork_parent(void);
void count_fork_child(void);
/* A new nonzero uid for a map. */
uint64_t count_uid_next(void);

#endif
