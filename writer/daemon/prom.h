/*
 * writer/daemon/prom.h - the Prometheus text exposition format (version
 * 0.0.4): a bounded text buffer, label values escaped, and the writer's
 * metric families rendered from plain values (metrics.h holds them, the
 * HTTP exporter serves the text). Pure: no lock, no I/O, no clock, so the
 * unit tests and the scrape benchmark call it without a writer.
 *
 * A family is written whole (HELP, TYPE, every sample) before the next
 * one starts: the format requires a family's samples to be contiguous.
 */
#ifndef FLAGSHM_WRITER_PROM_H
#define FLAGSHM_WRITER_PROM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growing text buffer that refuses to pass MAX bytes: past it, every
 * append is dropped and `over` is set, so a render of a huge document
 * ends in a refusal, never in an unbounded allocation. */
typedef struct wd_buf {
	char *p;
	size_t len, cap, max;
	bool over; /* MAX reached, or out of memory: the text is incomplete */
	bool borrowed; /* p is the caller's (a stack array): copied, not realloc'd, to grow */
} wd_buf;

void wd_buf_init(wd_buf *b, size_t max);
void wd_buf_free(wd_buf *b);
void wd_buf_add(wd_buf *b, const char *s, size_t n);
/* Make room for N bytes at once (a size hint: no copy while they come). */
void wd_buf_reserve(wd_buf *b, size_t n);
void wd_buf_printf(wd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* N bytes of S as the body of a label value: '\\', '"' and newline
 * escaped as the format wants; a byte that is not part of valid UTF-8
 * becomes U+FFFD (Prometheus refuses a label value that is not UTF-8). */
void wd_prom_label_value(wd_buf *b, const char *s, size_t n);

/* "# HELP NAME HELP\n# TYPE NAME TYPE\n" (HELP is our own text). */
void wd_prom_family(wd_buf *b, const char *name, const char *type, const char *help);

/* A sample value as Prometheus reads it: integers exactly, other numbers
 * in the shortest form that reads back ("+Inf", "NaN" for those). */
void wd_prom_number(wd_buf *b, double v);

/* One label: NAME is ours (an identifier), VALUE (LEN bytes) may come
 * from the document and is escaped. */
typedef struct wd_label {
	const char *name;
	const char *value;
	size_t len;
} wd_label;

/* NAME{L[0],...,L[N-1]} V, with a newline. */
void wd_prom_sample(wd_buf *b, const char *name, const wd_label *l, size_t n, uint64_t v);

/* ---- histograms */

/* The fixed buckets of every flagshm histogram, seconds (Prometheus'
 * defaults, widened to 1 ms .. 10 s): 13 upper bounds, then +Inf. */
#define WD_HIST_BOUNDS 13
extern const double wd_hist_bounds[WD_HIST_BOUNDS];

typedef struct wd_hist {
	uint64_t bucket[WD_HIST_BOUNDS + 1]; /* per bucket (not cumulative); last: +Inf */
	uint64_t count;
	double sum; /* seconds */
} wd_hist;

void wd_hist_observe(wd_hist *h, double seconds);

/* The samples NAME_bucket{LABELS,le=...} (cumulative), NAME_sum{LABELS},
 * NAME_count{LABELS}. LABELS is already rendered ("flag=\"a\",..."), or
 * "" for none. BUCKETS holds WD_HIST_BOUNDS + 1 per-bucket counts. */
void wd_prom_hist(wd_buf *b, const char *name, const char *labels, const uint64_t *buckets,
		  uint64_t count, double sum);
/* The same with labels L[0..N) rendered and escaped here. */
void wd_prom_hist_labels(wd_buf *b, const char *name, const wd_label *l, size_t n,
			 const uint64_t *buckets, uint64_t count, double sum);

/* ---- the writer's own families */

typedef struct wd_prom_writer {
	uint64_t generation;	 /* 0: nothing published yet */
	int64_t published_ms;	 /* Unix ms of the current generation, 0: none */
	uint64_t snapshot_bytes; /* of the current generation */
	uint64_t flags;		 /* in the current generation */
	uint64_t readers;	 /* processes attached (metrics.h) */
	wd_hist publish;	 /* compile + publish of each generation */
	uint64_t publish_rejected; /* documents not published (invalid, or the publish failed) */
	uint64_t sync_ok, sync_not_modified, sync_error; /* document requests (URL source) */
	int64_t last_sync_ms;	 /* Unix ms of the last successful read of the source, 0: never */
	bool stale;		 /* readers mark results stale now */
} wd_prom_writer;

/* flagshm_readers ... flagshm_stale, flagshm_publish_*, flagshm_sync_*. */
void wd_prom_render_writer(wd_buf *b, const wd_prom_writer *w);

/* One flag of the current snapshot, for flag_info and flag_expiry. */
typedef struct wd_prom_flag {
	const char *key;
	const char *type;  /* release, operational, experiment, permission */
	const char *owner; /* "" when the document has none */
	size_t key_len, owner_len;
	bool has_expiry;
	int64_t expiry_ms; /* expiresAt, Unix ms */
} wd_prom_flag;

/* flagshm_flag_info{flag,type,owner} 1 and
 * flagshm_flag_expiry_timestamp_seconds{flag} for the N flags at F. */
void wd_prom_render_flags(wd_buf *b, const wd_prom_flag *f, size_t n);

#endif
