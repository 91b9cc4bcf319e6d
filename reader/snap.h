/*
 * reader/snap.h - a snapshot that passed validation, and bounds-checked
 * access to its records. Internal to libflagshm (and the flagshm tool).
 *
 * snap_open() validates once (header, layout fingerprint, size, checksum,
 * every table inside the blob) and copies the table positions into the
 * process-private struct snap. After that, record accessors check each
 * index against those private counts and each string against the private
 * pool size, so even bytes changed after validation cannot send a reader
 * outside the mapping: they give NULL, and the evaluator answers ERROR
 * with SNAPSHOT_INVALID.
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
	void **regex;			/* pcre2_code * per FS_T_REGEXES entry, NULL if it failed to compile;
					   entries with equal patterns share one */
	uint8_t *regex_own;		/* per entry: 1 when regex[i] is its own (snap_close frees it) */
	void *owner;			/* reader/store.c: the mapping this came from */
} snap;

/* Validate BASE[0..SIZE) and fill *S. Regexes are compiled here, once per
 * snapshot and distinct pattern (at most FS_REGEX_MAX entries), so
 * evaluation never compiles. Returns 0, FLAGSHM_ECORRUPT with a
 * message in ERR naming the check that failed, or FLAGSHM_ENOMEM. */
int snap_open(snap *s, const void *base, size_t size, char *err, size_t errlen);
/* Free what snap_open allocated (not the bytes). */
void snap_close(snap *s);

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
