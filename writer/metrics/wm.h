/*
 * writer/metrics/wm.h - the writer's side of counting (docs/metrics.md):
 * reader processes hand it their counter regions over a unix socket; it
 * maps them read-only, sums them, folds the counts of processes that exit
 * (or are killed) into its totals, and publishes the aggregate for
 * `flagshm stats` (/dev/shm/flagshm.<store>.stats) about once a second.
 *
 * Threads: wm runs on a thread of its own (wm_start). wm_set_document may
 * be called from the daemon's thread, wm_totals_snapshot and
 * wm_totals_free from any thread (the exporter's). Nothing here ever waits
 * for a reader process.
 */
#ifndef FLAGSHM_WRITER_METRICS_WM_H
#define FLAGSHM_WRITER_METRICS_WM_H

#include <stddef.h>
#include <stdint.h>

/* Upper bounds (seconds) of the outcome-duration histogram buckets,
 * Prometheus style; a 14th bucket, +Inf, follows. */
#define WM_BUCKETS 13
extern const double wm_bucket_bounds[WM_BUCKETS];

/* Reasons in flagshm_reason order (FLAGSHM_REASON_ERROR = 0 ... DEFAULT_OFF
 * = 6) and error codes in flagshm_error_code order (NONE = 0 unused,
 * STORE_UNAVAILABLE = 1 ... SNAPSHOT_INVALID = 4); names from
 * flagshm_reason_name / flagshm_error_code_name. */
#define WM_REASONS 7
#define WM_ERRORS 5

/* One flag x variant. Label values come only from the current document:
 * flag is a key of it or "(unknown)"; variant is a value of that flag as
 * text (bool/number/string, cut to 64 bytes), or for JSON flags "default",
 * "off", "rule:<id>", "split:<n>"; "(none)" for evaluations that ended in
 * an error; "(other)" for a variant text not in the document. */
typedef struct wm_variant {
	const char *variant;
	uint64_t reasons[WM_REASONS]; /* evaluations per reason */
	uint64_t outcome_ok, outcome_err;
	/* Per bucket, NOT cumulative: buckets[i] counts durations <=
	 * wm_bucket_bounds[i] and > the bound before; buckets[WM_BUCKETS] is
	 * (10 s, +Inf). outcome_ok + outcome_err == sum of buckets. */
	uint64_t buckets[WM_BUCKETS + 1];
	double sum_seconds; /* of the outcome durations */
} wm_variant;

typedef struct wm_flag {
	const char *flag;	     /* key, or "(unknown)" */
	uint64_t evaluations;	     /* sum of every variant's reasons */
	uint64_t errors[WM_ERRORS];  /* evaluation errors per error code */
	int64_t last_eval_ms;	     /* Unix ms when its count last grew, 0 never */
	size_t nvariants;
	wm_variant *variants;
} wm_flag;

/* A consistent copy of the totals: live regions + folded exited readers.
 * Everything (strings included) lives in the copy until wm_totals_free. */
typedef struct wm_totals {
	uint64_t generation; /* of the document the labels come from, 0 none */
	uint32_t readers;    /* processes attached now (distinct pids) */
	int64_t taken_ms;    /* Unix ms of the aggregation it copies */
	size_t nflags;
	wm_flag *flags;	     /* in document order, "(unknown)" last */
} wm_totals;

/* Gets one line per notable event (a reader refused, a region dropped),
 * from wm's thread; must be thread-safe. */
typedef void (*wm_log_fn)(const char *line);

/* Start counting for STORE (the daemon holds it): listen on
 * /dev/shm/flagshm.<store>.sock (a path squatted by another user is
 * refused like a squatted lock) and start the thread. LOG may be NULL.
 * 0, or -1 with a message in ERR. */
int wm_start(const char *store, wm_log_fn log, char *err, size_t errlen);

/* Before wm_start: append exposures to FILE as JSON lines, rotated to
 * FILE.1 at MAX_BYTES (0: 64 MiB). wm_start fails when FILE cannot be
 * opened. */
void wm_set_exposures(const char *file, uint64_t max_bytes);

/* Stop the thread, close the socket and remove its path and the stats
 * object. Safe to call when wm_start failed or was never called. */
void wm_stop(void);

/* The snapshot just published (its bytes; copied what is needed): the
 * label set for the next aggregations. Any thread. */
void wm_set_document(const void *snap, size_t size);

/* A copy of the latest aggregate (at most ~1 s old). 0, or -1 (out of
 * memory, or wm not started: *out NULL). Any thread; never blocks on the
 * aggregation for more than a memcpy. */
int wm_totals_snapshot(wm_totals **out);

/* Free a copy and set *t to NULL. NULL is ignored. */
void wm_totals_free(wm_totals **t);

#endif
