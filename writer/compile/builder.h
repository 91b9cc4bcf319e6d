/*
 * writer/compile/builder.h - lays out a snapshot (shm/format.h) in memory: one
 * growable table per FS_T_* kind and a string pool that interns strings.
 *
 * Errors are sticky: an allocation failure or a table outgrowing uint32
 * indexes sets b->failed and later calls do nothing, so the compiler checks
 * once at the end instead of after every record.
 */
#ifndef FLAGSHM_WRITER_BUILDER_H
#define FLAGSHM_WRITER_BUILDER_H

#include "format.h"

#include <stddef.h>
#include <stdint.h>

typedef struct wb_table {
	uint8_t *data;
	size_t recsize;
	size_t count, cap; /* records */
} wb_table;

typedef struct wb_intern {
	uint32_t off, len, hash;
} wb_intern;

typedef struct wb {
	wb_table tab[FS_T_COUNT_]; /* FS_T_POOL is a table of chars */
	wb_intern *slots;	   /* open addressing; len UINT32_MAX = empty */
	size_t nslots, nused;
	int failed; /* sticky: out of memory or a table past UINT32_MAX */
} wb;

/* Empty builder; the pool starts with one NUL so the empty string is {0, 0}.
 * Returns 0 or -1 (out of memory). wb_free is safe after either. */
int wb_init(wb *b);
void wb_free(wb *b);

/* Append a copy of REC (the table's record size) to table T; returns its
 * index (0 after a failure: check b->failed before using the result). */
uint32_t wb_add(wb *b, int t, const void *rec);
/* Append N zeroed records to table T; returns the first one's index (0
 * after a failure, as wb_add). */
uint32_t wb_add_zeroed(wb *b, int t, size_t n);
/* Room for N more records in T now, so that a table whose size the caller
 * can foresee is not copied again and again as it grows. Only a hint: a
 * failure is sticky as usual. */
void wb_reserve(wb *b, int t, size_t n);
/* Room in the intern table for about N distinct strings (a hint). */
void wb_expect_strings(wb *b, size_t n);
/* Records in table T so far: the index the next wb_add will return. */
uint32_t wb_count(const wb *b, int t);
/* Record I of table T, valid until the next wb_add to T. */
void *wb_at(wb *b, int t, uint32_t i);

/* Intern S[0..len) in the pool (a NUL follows it); equal strings share. */
fs_str wb_str(wb *b, const char *s, size_t len);

/*
 * Lay the header and every table out in one malloc'd blob (each table
 * 8-byte aligned, padding zeroed), fill the header (environment ENV, may be
 * NULL, and compile_us), and checksum it. Returns 0, -1 when b->failed, or
 * -2 when the snapshot would be larger than MAX bytes (*size still says how
 * large it would be).
 */
int wb_finish(wb *b, const char *env, int64_t compile_us, uint64_t max,
	      uint8_t **bytes, size_t *size);

#endif
