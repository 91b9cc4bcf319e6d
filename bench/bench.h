/*
 * bench/bench.h - what the parts of flagshm-bench share.
 *
 * bench.c     options, the store the run publishes into, clean-up, main
 * gen.c       the flag document, the user ids and the context (also emitted
 *             for bench/peers, which must build exactly the same set)
 * clock.c     CLOCK_MONOTONIC, the cycle counter and its calibration, and
 *             the statistics (median, percentiles)
 * cases.c     the single-process cases: ns per evaluation, p50/p99
 * procs.c     child processes: spawn, wait with a deadline, kill on exit
 * multiproc.c aggregate decisions/s of 1, 2, 4, 8 reader processes
 * propagation.c  publish -> first sight in N reader processes (--readers)
 * memory.c    RSS and PSS each reader process adds
 * publish.c   parse, compile and publish time by flag count
 * tail.c      publish_tail: the thread CPU time of each one-shot call of a
 *             worker while this process republishes every 200 ms
 * lookup.c    the limit probe: a key looked up in an mmapped open-addressing
 *             table, nothing else
 * targets.c   issue 10's targets, each beside the limit probe, met or missed
 * report.c    the table on stdout (--json prints the results tree instead)
 *
 * Every result is put straight into one jansson tree (the --json output);
 * the table is printed from that tree, so the two cannot disagree.
 */
#ifndef FLAGSHM_BENCH_H
#define FLAGSHM_BENCH_H

#include "flagshm.h"
#include "shm.h"
#include "compile.h"

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ the flags */

#define BENCH_NIDS 10000 /* distinct user ids, cycled through in order */
#define PROP_POLL_US_DEFAULT 10 /* see propagation.c */
#define PROP_BIG_SNAPSHOT (8u << 20) /* propagation: fewer publishes above */

/* Keys of the flags the cases evaluate (docs: bench/README.md). */
#define K_SIMPLE "bench.simple"
#define K_ROLLOUT "bench.rollout"
#define K_RULES10 "bench.rules10"
#define K_MISSING "bench.missing" /* never in the document */
#define K_STRING "bench.string"
#define K_JSON "bench.json"
#define BENCH_CASE_FLAGS 5 /* flags above that exist */

/* The values the checks expect. */
#define V_STRING_ON "checkout-v2"
#define V_JSON_ON "{\"layout\":\"grid\",\"limits\":{\"burst\":20,\"rps\":100},\"tags\":[\"a\",\"b\"]}"

typedef struct bench_id {
	char s[15];
	uint8_t len;
} bench_id;

/* The document with NFLAGS flags in all (the case flags first, then
 * filler flags "flag-000000"...). A new reference; NULL when out of memory. */
json_t *gen_doc(size_t nflags);
/* As gen_doc, with NREGEX filler flags (spread evenly) each given one more
 * rule: userAgent `matches` gen_regex(i), all distinct. */
json_t *gen_doc_rx(size_t nflags, size_t nregex);
void gen_regex(size_t i, char *out, size_t n);
/* Key of flag I of gen_doc(nflags)'s "flags" array, into buf. */
void gen_key(size_t i, char *buf, size_t n);
/* The BENCH_NIDS user ids: "u-" and 8 hex digits of a bijective mix of i+1. */
void gen_ids(bench_id *ids);
/* The context every case uses, userId = ids[0]; attrs[0] is userId, so the
 * loops switch users by setting that slot (see set_user). */
void gen_ctx(flagshm_ctx *c, const bench_id *ids);
/* The context's attributes other than userId, as a JSON object. */
json_t *gen_ctx_json(void);
/* --emit-doc/--emit-ids/--emit-context: write and return 0, or -1 with a
 * message on stderr. "-" is stdout. */
int gen_emit_doc(const char *file, size_t nflags, size_t nregex);
int gen_emit_ids(const char *file);
int gen_emit_context(const char *file);

static inline void set_user(flagshm_ctx *c, const bench_id *id)
{
	c->attrs[0].u.str.ptr = id->s;
	c->attrs[0].u.str.len = id->len;
}

/* ------------------------------------------------------------- options */

typedef struct bench_opts {
	size_t nflags;
	bool quick;
	bool json;
	int runs;	     /* repetitions of each measurement */
	double run_seconds;  /* length of one timed run */
	size_t samples;	     /* single-evaluation samples per run */
	int prop_publishes;  /* propagation: publishes */
	int64_t poll_us;     /* propagation: readers sleep this long between
				checks; 0 = spin with sched_yield */
	int readers;	     /* propagation: reader processes */
	size_t regexes;	     /* --regexes: matches conditions in the run's doc */
	int tail_publishes;  /* publish_tail: publishes per document */
	const char *cases;   /* --cases, NULL = all */
} bench_opts;

/* Whether --cases selects NAME (a case, "x_view", or a section). */
bool bench_selected(const bench_opts *o, const char *name);

/* ----------------------------------------------------------- run state */

typedef struct bench_env {
	const bench_opts *opt;
	char store_name[SHM_STORE_NAME_MAX + 1];
	shm_writer writer;
	bool writer_open;
	wc_snapshot snap; /* the --flags document, compiled */
	flagshm_store *store; /* opened by this process, before any fork */
	flagshm_ctx ctx;
	bench_id *ids;	/* BENCH_NIDS */
	unsigned k;	/* next id */
	json_t *out;	/* the results tree */
	json_t *failures; /* array of strings */
} bench_env;

/* Set by SIGINT/SIGTERM/SIGHUP: every loop checks it and unwinds. */
extern volatile sig_atomic_t bench_stop;

/* A failure: kept in the results ("failures") and printed on stderr; the
 * exit code becomes 1. */
void bench_fail(bench_env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Progress on stderr. */
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --------------------------------------------------------------- clock */

int64_t now_ns(void); /* CLOCK_MONOTONIC: one clock for every process */
int64_t cpu_ns(void); /* CLOCK_THREAD_CPUTIME_ID: this thread's CPU time */

/* The single-evaluation timer: the TSC (lfence; rdtsc) on x86-64 when the
 * CPU has an invariant one, else clock_gettime. */
typedef struct bench_timer {
	bool tsc;
	double ns_per_tick;
	double overhead_ticks; /* median of back-to-back reads, subtracted */
	double overhead_ns;
	double resolution_ns;	 /* the smallest step the timer moves by */
	double clock_gettime_ns; /* cost of one now_ns() */
} bench_timer;

extern bench_timer btimer;
void timer_calibrate(bool quick);

static inline uint64_t ticks(void)
{
#if defined(__x86_64__)
	if (btimer.tsc) {
		uint32_t lo, hi;
		/* lfence before: the evaluation before it has completed;
		 * the asm's memory clobber keeps the compiler from moving
		 * the call across it. */
		__asm__ volatile("lfence\n\trdtsc\n\tlfence" : "=a"(lo), "=d"(hi) : : "memory");
		return ((uint64_t)hi << 32) | lo;
	}
#endif
	return (uint64_t)now_ns();
}

double median(double *v, size_t n);		 /* sorts v */
double pctl_u64(uint64_t *v, size_t n, double p); /* sorts v; p in [0,1] */
double min_d(const double *v, size_t n);
double max_d(const double *v, size_t n);
/* Round to DIGITS decimals, for the JSON output. */
double rnd(double x, int digits);
json_t *jnum(double x, int digits);

/* ------------------------------------------------------------ sections */

/* Each adds its part to e->out; false after a failure (already reported). */
bool cases_run(bench_env *e);
bool multiproc_run(bench_env *e);
bool propagation_run(bench_env *e);
bool memory_run(bench_env *e);
bool publish_run(bench_env *e);
bool tail_run(bench_env *e);
/* counting.c: counted vs uncounted handles; counting_table prints it. */
bool counting_run(bench_env *e);
void counting_table(const json_t *out);
/* Adds "targets" from the figures already in e->out; never fails. */
void targets_run(bench_env *e);

/* The limit probe (lookup.c): a read-only mapping of an open-addressing
 * table of the run's keys plus LOOKUP_KEY (14 bytes), laid out as the
 * snapshot's index (u32 slots, flag index + 1; records with the key's
 * hash, offset and length; a string pool), hashed with fs_key_hash. */
#define LOOKUP_KEY "bench.probe.14"
typedef struct lookup_table lookup_table;
lookup_table *lookup_build(size_t nkeys, char *err, size_t errlen);
void lookup_free(lookup_table *t);
/* The record's value byte for KEY (strlen'd, as flagshm_bool does), or
 * 0xff when absent. */
unsigned lookup_find(const lookup_table *t, const char *key);
size_t lookup_slots(const lookup_table *t);

/* The loop the multiprocess section runs in each child: N evaluations of
 * the rollout case through the store-level call; returns a sink. */
uint64_t cases_rollout_loop(bench_env *e, uint64_t n);

/* The process --memory-child runs (exec'd by memory.c). */
int memory_child_main(int argc, char **argv);

/* --------------------------------------------------------------- procs */

#define PROCS_MAX 64

/* Fork a child that dies with this process (PR_SET_PDEATHSIG) and runs
 * FN(ARG), exiting with its return value through _exit. Returns the pid,
 * or -1 with a failure recorded. */
pid_t procs_fork(bench_env *e, int (*fn)(bench_env *e, void *arg, int idx), void *arg, int idx);
/* Fork and exec this program with ARGV, stdin and stdout on pipes: *to_child
 * (write end) and *from_child (read end). Returns the pid or -1. */
pid_t procs_spawn_self(bench_env *e, char *const argv[], int *to_child, int *from_child);
/* Wait for every child until DEADLINE (now_ns() clock); then SIGTERM,
 * 200 ms, SIGKILL. Returns the number of children that did not exit 0. */
int procs_wait_all(int64_t deadline);
/* SIGKILL and reap every child left: the clean-up path. */
void procs_kill_all(void);
/* Anonymous shared memory (MAP_SHARED|MAP_ANONYMOUS), zeroed, for results
 * written by children. NULL on failure. */
void *procs_shared(size_t size);
void procs_unshared(void *p, size_t size);

/* -------------------------------------------------------------- report */

void report_table(const json_t *out);

#endif
