/*
 * reader/snap.h - a mapped snapshot and bounds-checked access to its
 * records. Internal to libflagshm (and, through reader/inspect.h, the
 * flagshm tool).
 *
 * Two depths of checking:
 *  - snap_map() checks what a reader relies on before it reads anything:
 *    the header, the layout fingerprint, the size, and that every table
 *    lies inside the blob, and copies the table positions into the
 *    process-private struct snap. Its cost does not depend on the
 *    snapshot's size, so it may run inside a request. From then on, record
 *    accessors check each index against those private counts and each
 *    string against the private pool size: bytes changed after the map (or
 *    hostile from the start) cannot send a reader outside the mapping; they
 *    give NULL, and the evaluator answers ERROR with SNAPSHOT_INVALID. What
 *    spans records (a flag's prerequisite graph) is checked per flag, on
 *    its first evaluation in this map (snap_flag_check), and a regex is
 *    compiled on its first match (snap_regex): work proportional to what a
 *    process uses, not to the snapshot.
 *  - snap_verify() checks everything else, the whole snapshot at once: the
 *    checksum, every index slot, every flag's prerequisite graph, and
 *    compiles every regex. The writer's publish and the flagshm tool use
 *    it; snap_open() is snap_map() then snap_verify().
 * Readers need not recompute the checksum on every map: they map only
 * objects the trusted writer user owns (shm/trust.c), and the writer checks
 * what it wrote before making it current (shm/publish.c).
 */
#ifndef FLAGSHM_READER_SNAP_H
#define FLAGSHM_READER_SNAP_H

#include "format.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct snap {
	const uint8_t *base;
	uint64_t size;
	uint64_t generation;
	int64_t published_ms;
	int64_t compile_us;
	const void *tab[FS_T_COUNT_];	/* validated start of each table */
	uint32_t count[FS_T_COUNT_];	/* its record count (pool: bytes) */
	/* Per FS_T_REGEXES entry, made on the map's first match: NULL until
	 * first used, then its pcre2_code * (entries with equal patterns
	 * share one) or SNAP_RX_NONE when it does not compile. Set once,
	 * under the regex lock, with a release store; read with acquire
	 * (snap_regex). */
	void *_Atomic *_Atomic regex;
	uint8_t *regex_own;		/* per entry: 1 when regex[i] is its own (snap_close frees it) */
	uint32_t *rx_slots;		/* dedupe table of compiled patterns (entry + 1), lazily */
	uint32_t rx_nslots;
	/* Per flag, made on the first check of a flag with prerequisites
	 * (release CAS, acquire load): 0 not checked yet in this map,
	 * SNAP_FLAG_OK, or SNAP_FLAG_BAD (snap_flag_check). Relaxed
	 * elements: racing checks of one flag store the same answer. */
	_Atomic uint8_t *_Atomic flag_state;
	void *owner;			/* reader/store.c: the mapping this came from */
	/* reader/store.c: unique in the process (never 0 for a mapped
	 * generation): what per-thread counter caches key on (reader/count.h),
	 * since a map's address may be reused by a later one. */
	uint64_t uid;
} snap;

#define SNAP_RX_NONE ((void *)1)
#define SNAP_FLAG_OK 1
#define SNAP_FLAG_BAD 2

/* The size-independent checks above; fill *S. Returns 0, FLAGSHM_ECORRUPT
 * with a message in ERR naming the check that failed, or FLAGSHM_ENOMEM. */
int snap_map(snap *s, const void *base, size_t size, char *err, size_t errlen);
/* The whole-snapshot checks above, on a mapped S. 0 or FLAGSHM_ECORRUPT /
 * FLAGSHM_ENOMEM with a message. */
int snap_verify(snap *s, char *err, size_t errlen);
/* snap_map, then snap_verify. */
int snap_open(snap *s, const void *base, size_t size, char *err, size_t errlen);
/* Free what snap_map and later uses allocated (not the bytes). */
void snap_close(snap *s);

/* Check flag I's prerequisite graph (no cycle, no chain deeper than
 * SEM_PREREQ_DEPTH_MAX, at most SEM_PREREQ_VISITS_MAX visits), once per map:
 * SNAP_FLAG_OK or SNAP_FLAG_BAD. */
uint8_t snap_flag_check(const snap *s, uint32_t i);

/* The compiled regex of entry I (compiling it on first use): a pcre2_code,
 * NULL when the pattern does not compile (it never matches), or
 * SNAP_RX_CORRUPT when the entry is outside the table or its pattern
 * outside the pool (a corrupt snapshot: the caller answers
 * SNAPSHOT_INVALID). */
#define SNAP_RX_CORRUPT ((const void *)-1)
const void *snap_regex(const snap *s, uint32_t i);

/* Around fork(): the regex lock (snap.c) must not be inherited held. */
void snap_fork_prepare(void);
void snap_fork_parent(void);
void snap_fork_child(void);

/* Record i of a table, or NULL when i is out of range. */
static inline const void *snap_rec(const snap *s, int t, uint32_t i, size_t recsize)
{
	if (i >= s->count[t])
		return NULL;
	return (const uint8_t *)s->tab[t] + (size_t)i * recsize;
}
#define SNAP_FLAG(s, i) ((const fs_flag *)snap_rec((s), FS_T_FLAGS, (i), sizeof(fs_flag)))
#define SNAP_RULE(s, i) ((const fs_rule *)snap_rec((s), FS_T_RULES, (i), sizeof(fs_rule)))
#define SNAP_COND(s, i) ((const fs_cond *)snap_rec((s), FS_T_CONDS, (i), sizeof(fs_cond)))
#define SNAP_VALUE(s, i) ((const fs_value *)snap_rec((s), FS_T_VALUES, (i), sizeof(fs_value)))
#define SNAP_SEGMENT(s, i) ((const fs_segment *)snap_rec((s), FS_T_SEGMENTS, (i), sizeof(fs_segment)))
#define SNAP_SPLIT(s, i) ((const fs_split *)snap_rec((s), FS_T_SPLITS, (i), sizeof(fs_split)))
#define SNAP_PREREQ(s, i) ((const fs_prereq *)snap_rec((s), FS_T_PREREQS, (i), sizeof(fs_prereq)))
#define SNAP_SEMVER(s, i) ((const fs_semver *)snap_rec((s), FS_T_SEMVERS, (i), sizeof(fs_semver)))
#define SNAP_REGEX(s, i) ((const fs_regex *)snap_rec((s), FS_T_REGEXES, (i), sizeof(fs_regex)))
#define SNAP_U32(s, i) ((const uint32_t *)snap_rec((s), FS_T_U32, (i), sizeof(uint32_t)))
#define SNAP_STRS(s, i) ((const fs_str *)snap_rec((s), FS_T_STRS, (i), sizeof(fs_str)))

/* True when records [first, first+n) of table t exist (overflow-safe). */
static inline bool snap_range_ok(const snap *s, int t, uint32_t first, uint32_t n)
{
	return first <= s->count[t] && n <= s->count[t] - first;
}

/* The string, NUL-terminated, or NULL when it is not inside the pool. */
static inline const char *snap_str(const snap *s, fs_str str)
{
	uint32_t pool = s->count[FS_T_POOL];
	if (str.off >= pool || str.len >= pool - str.off)
		return NULL;
	const char *p = (const char *)s->tab[FS_T_POOL] + str.off;
	return p[str.len] == '\0' ? p : NULL;
}

/* Index of the flag with this key, or -1. Probes at most the index size. */
int64_t snap_find(const snap *s, const char *key, size_t len);

#endif
