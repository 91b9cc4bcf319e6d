/*
 * writer/metrics/region.h - one reader's counter region, mapped read-only,
 * and its counts read into label-shaped totals. A region is hostile until
 * proven otherwise: its descriptor must be a sealed memfd, and every size
 * and offset in it is checked against what is mapped, each field read once.
 */
#ifndef FLAGSHM_WRITER_METRICS_REGION_H
#define FLAGSHM_WRITER_METRICS_REGION_H

#include "doc.h"
#include "wm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Counts in the shape of a document: cell vbase[f] + v for flag f (0..
 * nflags, nflags = "(unknown)") and variant v (0 .. nvar + 2). */
typedef struct wm_cell {
	uint64_t reasons[WM_REASONS];
	uint64_t ok, err;
	uint64_t buckets[WM_BUCKETS + 1];
	double sum;
} wm_cell;

typedef struct wm_counts {
	const wm_doc *doc;
	uint32_t *vbase;	     /* nflags + 2 entries */
	wm_cell *cell;
	uint64_t (*errors)[WM_ERRORS]; /* per flag */
} wm_counts;

int wm_counts_init(wm_counts *c, const wm_doc *doc);
void wm_counts_free(wm_counts *c);
void wm_counts_zero(wm_counts *c);
/* DST += SRC (same doc). */
void wm_counts_add(wm_counts *dst, const wm_counts *src);
/* DST (shaped to its doc) += SRC (another doc), relabelled by text. */
void wm_counts_relabel(wm_counts *dst, const wm_counts *src);

/* Records a region may hold that the writer reads (a bound on its work). */
#define WM_REGION_RECS_MAX 65536u

typedef struct wm_res {
	uint32_t off;
	uint32_t cell; /* UINT32_MAX: skip */
	uint32_t flag;
} wm_res;

/* A thread's exposure ring in a region and how far we have read it. */
typedef struct wm_ring {
	uint32_t off;
	uint64_t pos;
} wm_ring;
#define WM_RINGS_MAX 256u /* per region (one per thread that records) */
#define WM_DRAIN_MAX 16384u /* entries read per region per drain: a bound on its cost */

/* One exposure read from a ring: labels from the document. */
typedef struct wm_expo {
	const char *flag, *variant;
	unsigned reason;
	uint32_t flag_idx, cell;
	const char *id;
	size_t idl;
	int64_t time_ms;
} wm_expo;
typedef void (*wm_expo_fn)(const wm_expo *x, void *ud);

typedef struct wm_region {
	int fd;
	const uint8_t *map;
	size_t maplen;
	/* Labels resolved per record, for doc generation res_gen. */
	wm_res *res;
	uint32_t nres, capres;
	uint64_t res_gen;
	const wm_doc *res_doc;
	wm_ring *rings; /* found by wm_region_read */
	uint32_t nrings, caprings;
} wm_region;

/* Check FD (a sealed memfd, a flagshm region) and map it; takes FD. 0 or
 * -1 with a message in ERR (FD closed). */
int wm_region_open(wm_region *r, int fd, char *err, size_t errlen);
void wm_region_close(wm_region *r);
/* OUT += the region's counts, labelled by OUT's document. */
void wm_region_read(wm_region *r, wm_counts *out);
/* Read the exposures written to the region's rings since the last call,
 * labelled by DOC (shaped by COUNTS), each to FN; *LOST grows by the
 * entries overwritten before they were read (or torn, or that lie). */
void wm_region_drain(wm_region *r, const wm_counts *counts, wm_expo_fn fn, void *ud,
		     uint64_t *lost);

#endif
