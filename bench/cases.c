/*
 * bench/cases.c - the single-process cases: time per evaluation, and the
 * distribution of single evaluations.
 *
 * Each case is one expression evaluated in a loop that moves to the next
 * of the 10,000 user ids on every iteration (the id cycles; every other
 * attribute of the context stays). Two measurements per run:
 *  - ns_per_eval: batches of BATCH evaluations between two CLOCK_MONOTONIC
 *    reads, until the run's time is up; elapsed / evaluations. It includes
 *    the loop and the id switch (see loop_baseline for what those cost).
 *    cpu_ns_per_eval is the same over this thread's CPU time, and
 *    cpu_share the fraction of the wall time the thread was running: on
 *    a busy machine the wall figure includes time spent descheduled.
 *  - p50/p99: each of SAMPLES evaluations between two reads of the
 *    single-evaluation timer, minus the timer's own median cost.
 * A case's figure is the median over the runs; min and max are over the
 * runs too. Results are summed into bench_sink, which is volatile, so no
 * evaluation can be dropped as dead code (the calls are into another
 * translation unit anyway, and no LTO is used).
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 1000	      /* evaluations between clock reads / per view */
#define SAMPLE_VIEW_SPAN 1000 /* samples per view in the _view samples */

volatile uint64_t bench_sink;

/* The loop's own cost: a call to a function the compiler cannot see into. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noipa))
#else
__attribute__((noinline))
#endif
static bool nop_eval(const flagshm_ctx *c)
{
	__asm__ volatile("" : : "r"(c) : "memory");
	return c->n & 1;
}

/* One acquire and release: what a request pays once for its view. */
static inline uint64_t view_pair(flagshm_store *s)
{
	flagshm_view v;
	flagshm_view_acquire(s, &v);
	uint64_t g = v.generation;
	flagshm_view_release(&v);
	return g;
}

/*
 * loop_NAME(e, n): n evaluations of EXPR, returns the sum of the results.
 * sample_NAME(e, out, n): n single evaluations, their durations in ticks
 * (timer overhead not yet subtracted) in out.
 * In EXPR: s (the store), ctx, view (acquired when VIEWED), buf.
 */
#define DEFINE_CASE(NAME, VIEWED, EXPR)                                        \
	static uint64_t loop_##NAME(bench_env *e, uint64_t n)                 \
	{                                                                      \
		flagshm_store *s = e->store;                                   \
		flagshm_ctx *ctx = &e->ctx;                                    \
		const bench_id *ids = e->ids;                                  \
		unsigned k = e->k;                                             \
		uint64_t sink = 0;                                             \
		char buf[256];                                                 \
		flagshm_view view = { 0 };                                     \
		(void)buf;                                                     \
		(void)ctx;                                                     \
		if (VIEWED)                                                    \
			flagshm_view_acquire(s, &view);                        \
		for (uint64_t i = 0; i < n; i++) {                             \
			set_user(ctx, &ids[k]);                                \
			if (++k == BENCH_NIDS)                                 \
				k = 0;                                         \
			sink += (uint64_t)(EXPR);                              \
		}                                                              \
		if (VIEWED)                                                    \
			flagshm_view_release(&view);                           \
		e->k = k;                                                      \
		return sink;                                                   \
	}                                                                      \
	static void sample_##NAME(bench_env *e, uint64_t *out, size_t n)      \
	{                                                                      \
		flagshm_store *s = e->store;                                   \
		flagshm_ctx *ctx = &e->ctx;                                    \
		const bench_id *ids = e->ids;                                  \
		unsigned k = e->k;                                             \
		uint64_t sink = 0;                                             \
		char buf[256];                                                 \
		flagshm_view view = { 0 };                                     \
		(void)buf;                                                     \
		(void)ctx;                                                     \
		for (size_t i = 0; i < n; i++) {                               \
			if (VIEWED && i % SAMPLE_VIEW_SPAN == 0) {             \
				if (i)                                         \
					flagshm_view_release(&view);           \
				flagshm_view_acquire(s, &view);                \
			}                                                      \
			set_user(ctx, &ids[k]);                                \
			if (++k == BENCH_NIDS)                                 \
				k = 0;                                         \
			uint64_t t0 = ticks();                                 \
			sink += (uint64_t)(EXPR);                              \
			uint64_t t1 = ticks();                                 \
			out[i] = t1 - t0;                                      \
		}                                                              \
		if (VIEWED && n)                                               \
			flagshm_view_release(&view);                           \
		e->k = k;                                                      \
		bench_sink += sink;                                            \
	}

DEFINE_CASE(simple, 0, flagshm_bool(s, K_SIMPLE, ctx, false))
DEFINE_CASE(simple_view, 1, flagshm_view_bool(&view, K_SIMPLE, ctx, false))
DEFINE_CASE(rollout, 0, flagshm_bool(s, K_ROLLOUT, ctx, false))
DEFINE_CASE(rollout_view, 1, flagshm_view_bool(&view, K_ROLLOUT, ctx, false))
DEFINE_CASE(rules10, 0, flagshm_bool(s, K_RULES10, ctx, false))
DEFINE_CASE(rules10_view, 1, flagshm_view_bool(&view, K_RULES10, ctx, false))
DEFINE_CASE(missing, 0, flagshm_bool(s, K_MISSING, ctx, false))
DEFINE_CASE(missing_view, 1, flagshm_view_bool(&view, K_MISSING, ctx, false))
DEFINE_CASE(string, 0, (uint8_t)flagshm_string(s, K_STRING, ctx, "", buf, sizeof buf)[0])
DEFINE_CASE(string_view, 1, (uint8_t)flagshm_view_string(&view, K_STRING, ctx, "")[0])
DEFINE_CASE(json, 0, (uint8_t)flagshm_json(s, K_JSON, ctx, "", buf, sizeof buf)[0])
DEFINE_CASE(json_view, 1, (uint8_t)flagshm_view_json(&view, K_JSON, ctx, "")[0])
/* Pre-resolved handles (flagshm_handle): the hot-flag API that skips the
 * key's hash and index probe. */
static flagshm_handle h_simple, h_rollout, h_rules10;
DEFINE_CASE(simple_handle, 1, flagshm_view_bool_handle(&view, &h_simple, ctx, false))
DEFINE_CASE(rollout_handle, 1, flagshm_view_bool_handle(&view, &h_rollout, ctx, false))
DEFINE_CASE(rules10_handle, 1, flagshm_view_bool_handle(&view, &h_rules10, ctx, false))
DEFINE_CASE(view_acquire_release, 0, view_pair(s))
DEFINE_CASE(loop_baseline, 0, nop_eval(ctx))
/* The limit probe (lookup.c), in the same loop as every case. */
static lookup_table *probe;
DEFINE_CASE(lookup, 0, lookup_find(probe, LOOKUP_KEY))

uint64_t cases_rollout_loop(bench_env *e, uint64_t n)
{
	return loop_rollout(e, n);
}

typedef struct bcase {
	const char *name;
	const char *base; /* the --cases name that selects it with its pair */
	const char *api;
	uint64_t (*loop)(bench_env *e, uint64_t n);
	void (*sample)(bench_env *e, uint64_t *out, size_t n);
} bcase;

#define CASE(NAME, BASE, API) { #NAME, BASE, API, loop_##NAME, sample_##NAME }

static const bcase cases[] = {
	CASE(simple, "simple", "flagshm_bool"),
	CASE(simple_view, "simple", "flagshm_view_bool"),
	CASE(rollout, "rollout", "flagshm_bool"),
	CASE(rollout_view, "rollout", "flagshm_view_bool"),
	CASE(rules10, "rules10", "flagshm_bool"),
	CASE(rules10_view, "rules10", "flagshm_view_bool"),
	CASE(simple_handle, "simple", "flagshm_view_bool_handle"),
	CASE(rollout_handle, "rollout", "flagshm_view_bool_handle"),
	CASE(rules10_handle, "rules10", "flagshm_view_bool_handle"),
	CASE(missing, "missing", "flagshm_bool"),
	CASE(missing_view, "missing", "flagshm_view_bool"),
	CASE(string, "string", "flagshm_string (copies into a buffer)"),
	CASE(string_view, "string", "flagshm_view_string"),
	CASE(json, "json", "flagshm_json (copies into a buffer)"),
	CASE(json_view, "json", "flagshm_view_json"),
	CASE(view_acquire_release, "view_acquire_release",
	     "flagshm_view_acquire + flagshm_view_release"),
	CASE(loop_baseline, "loop_baseline", "the loop around a no-op call"),
	CASE(lookup, "lookup",
	     "limit probe: 14-byte key in an mmapped open-addressing table (fs_key_hash)"),
};

/* ------------------------------------------------------------- checks */

/* Every case's flag gives what bench/README.md says, for all 10,000 ids,
 * through flagshm_evaluate and through the typed calls the loops use. */
static bool check_cases(bench_env *e)
{
	flagshm_view v;
	flagshm_result r;
	size_t rollout_on = 0, rules_match = 0, rules_off = 0, bad = 0;
	char buf[256];
	bool ok = true;

	flagshm_view_acquire(e->store, &v);
	if (!v.generation) {
		flagshm_view_release(&v);
		bench_fail(e, "check: the store has no generation after publishing");
		return false;
	}
	for (unsigned i = 0; i < BENCH_NIDS && !bench_stop; i++) {
		set_user(&e->ctx, &e->ids[i]);
		if (flagshm_evaluate(&v, K_SIMPLE, &e->ctx, &r) || r.type != FLAGSHM_TYPE_BOOL ||
		    !r.value.b || r.reason != FLAGSHM_REASON_DEFAULT_ROLLOUT)
			bad++;
		if (flagshm_evaluate(&v, K_ROLLOUT, &e->ctx, &r) || r.type != FLAGSHM_TYPE_BOOL)
			bad++;
		else if (r.value.b)
			rollout_on++;
		if (flagshm_evaluate(&v, K_RULES10, &e->ctx, &r) || r.type != FLAGSHM_TYPE_BOOL) {
			bad++;
		} else if (r.reason == FLAGSHM_REASON_RULE_MATCH) {
			if (!r.value.b || !r.rule_id || strcmp(r.rule_id, "r10") != 0)
				bad++;
			else
				rules_match++;
		} else if (r.reason == FLAGSHM_REASON_DEFAULT_OFF && !r.value.b) {
			rules_off++;
		} else {
			bad++;
		}
		if (flagshm_evaluate(&v, K_MISSING, &e->ctx, &r) != FLAGSHM_ENOTFOUND ||
		    r.error_code != FLAGSHM_CODE_FLAG_NOT_FOUND)
			bad++;
		if (strcmp(flagshm_view_string(&v, K_STRING, &e->ctx, "?"), V_STRING_ON) != 0)
			bad++;
		if (strcmp(flagshm_view_json(&v, K_JSON, &e->ctx, "?"), V_JSON_ON) != 0)
			bad++;
	}
	flagshm_view_release(&v);
	if (bad) {
		bench_fail(e, "check: %zu evaluations over the %d ids differ from bench/README.md",
			   bad, BENCH_NIDS);
		ok = false;
	}
	/* 25% and 50% of 10,000: three points is > 6 standard deviations. */
	if (rollout_on < 2200 || rollout_on > 2800) {
		bench_fail(e, "check: %s is on for %zu of %d ids, expected about 2500",
			   K_ROLLOUT, rollout_on, BENCH_NIDS);
		ok = false;
	}
	if (rules_match < 4700 || rules_match > 5300) {
		bench_fail(e, "check: %s matched r10 for %zu of %d ids, expected about 5000",
			   K_RULES10, rules_match, BENCH_NIDS);
		ok = false;
	}
	/* The store-level calls the loops use. */
	set_user(&e->ctx, &e->ids[0]);
	if (!flagshm_bool(e->store, K_SIMPLE, &e->ctx, false) ||
	    flagshm_bool(e->store, K_MISSING, &e->ctx, false) ||
	    !flagshm_bool(e->store, K_MISSING, &e->ctx, true) ||
	    strcmp(flagshm_string(e->store, K_STRING, &e->ctx, "?", buf, sizeof buf),
		   V_STRING_ON) != 0 ||
	    strcmp(flagshm_json(e->store, K_JSON, &e->ctx, "?", buf, sizeof buf), V_JSON_ON) != 0) {
		bench_fail(e, "check: a store-level call (flagshm_bool/string/json) gave an "
			      "unexpected value");
		ok = false;
	}
	json_object_set_new(e->out, "checks",
			    json_pack("{s:i,s:i,s:i,s:i,s:i}", "ids", BENCH_NIDS,
				      "rollout_on", (int)rollout_on, "rules10_rule_match",
				      (int)rules_match, "rules10_default_off", (int)rules_off,
				      "unexpected", (int)bad));
	return ok;
}

/* --------------------------------------------------------------- runs */

static json_t *run_case(bench_env *e, const bcase *c, uint64_t *samples)
{
	const bench_opts *o = e->opt;
	int64_t span = (int64_t)(o->run_seconds * 1e9);
	double ns[64], cpu[64], p50[64], p99[64];
	int64_t wall_sum = 0, cpu_sum = 0;
	int runs = o->runs < 64 ? o->runs : 64, done = 0;
	uint64_t total = 0, sink = 0;

	sink += c->loop(e, 20 * BATCH); /* warm the caches and the branch predictors */
	for (int r = 0; r < runs && !bench_stop; r++) {
		uint64_t n = 0;
		int64_t c0 = cpu_ns(), t0 = now_ns(), t;
		do {
			sink += c->loop(e, BATCH);
			n += BATCH;
			t = now_ns();
		} while (t - t0 < span && !bench_stop);
		int64_t c1 = cpu_ns();
		ns[r] = (double)(t - t0) / (double)n;
		cpu[r] = (double)(c1 - c0) / (double)n;
		wall_sum += t - t0;
		cpu_sum += c1 - c0;
		total += n;

		c->sample(e, samples, o->samples);
		double over = btimer.overhead_ticks;
		for (size_t i = 0; i < o->samples; i++)
			samples[i] = (double)samples[i] > over ? samples[i] - (uint64_t)over : 0;
		/* Sort once; pctl_u64 on sorted data is cheap. */
		p99[r] = pctl_u64(samples, o->samples, 0.99) * btimer.ns_per_tick;
		p50[r] = pctl_u64(samples, o->samples, 0.50) * btimer.ns_per_tick;
		done++;
	}
	bench_sink += sink;
	if (!done)
		return NULL;

	json_t *runs_a = json_array();
	for (int r = 0; r < done; r++)
		json_array_append_new(runs_a, jnum(ns[r], 2));
	double lo = min_d(ns, (size_t)done), hi = max_d(ns, (size_t)done);
	return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:s}", "ns_per_eval",
			 jnum(median(ns, (size_t)done), 2), "p50_ns",
			 jnum(median(p50, (size_t)done), 1), "p99_ns",
			 jnum(median(p99, (size_t)done), 1), "min", jnum(lo, 2), "max",
			 jnum(hi, 2), "cpu_ns_per_eval", jnum(median(cpu, (size_t)done), 2),
			 "cpu_share", jnum((double)cpu_sum / (double)wall_sum, 3), "runs", runs_a,
			 "evaluations", (json_int_t)total, "api", c->api);
}

bool cases_run(bench_env *e)
{
	const bench_opts *o = e->opt;
	bool any = false;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		any |= bench_selected(o, cases[i].name) || bench_selected(o, cases[i].base);
	if (!any)
		return true;

	bool ok = check_cases(e);
	if (bench_selected(o, "lookup")) {
		char err[256];
		probe = lookup_build(o->nflags, err, sizeof err);
		if (!probe) {
			bench_fail(e, "%s", err);
			return false;
		}
		if (lookup_find(probe, LOOKUP_KEY) == 0xff || lookup_find(probe, K_SIMPLE) == 0xff ||
		    lookup_find(probe, K_MISSING) != 0xff) {
			bench_fail(e, "check: the lookup probe does not find its keys");
			ok = false;
		}
	}
	if (flagshm_handle_init(&h_simple, K_SIMPLE) || flagshm_handle_init(&h_rollout, K_ROLLOUT) ||
	    flagshm_handle_init(&h_rules10, K_RULES10)) {
		bench_fail(e, "flagshm_handle_init failed");
		return false;
	}
	uint64_t *samples = malloc(o->samples * sizeof *samples);
	if (!samples) {
		bench_fail(e, "out of memory for %zu samples", o->samples);
		return false;
	}
	json_t *out = json_object();
	json_object_set_new(e->out, "cases", out);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0] && !bench_stop; i++) {
		const bcase *c = &cases[i];
		if (!bench_selected(o, c->name) && !bench_selected(o, c->base))
			continue;
		bench_note("case %s", c->name);
		json_t *res = run_case(e, c, samples);
		if (res)
			json_object_set_new(out, c->name, res);
	}
	free(samples);
	if (probe) {
		json_t *l = json_object_get(out, "lookup");
		if (l) {
			json_object_set_new(l, "key", json_string(LOOKUP_KEY));
			json_object_set_new(l, "keys", json_integer((json_int_t)o->nflags + 1));
			json_object_set_new(l, "slots", json_integer((json_int_t)lookup_slots(probe)));
		}
		lookup_free(probe);
		probe = NULL;
	}
	return ok;
}
