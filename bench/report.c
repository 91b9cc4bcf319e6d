/*
 * bench/report.c - the readable table, printed from the results tree that
 * --json prints as is. A missing figure (a section not selected, or one
 * that failed) prints as "-".
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static double jd(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *js(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "-";
}

/* X with DIGITS decimals, right-aligned in WIDTH, or "-". */
static void col(double x, int width, int digits)
{
	if (isnan(x))
		printf(" %*s", width, "-");
	else
		printf(" %*.*f", width, digits, x);
}

static void header(const json_t *out)
{
	const json_t *c = json_object_get(out, "config"), *m = json_object_get(out, "machine");
	printf("flagshm-bench: %.0f flags, %.0f user ids, %.0f runs x %.3g s%s, store %s\n",
	       jd(c, "flags"), jd(c, "ids"), jd(c, "runs"), jd(c, "run_seconds"),
	       json_is_true(json_object_get(out, "quick")) ? " (--quick)" : "", js(c, "store"));
	printf("machine: %s, %.0f cpus, %s; %s build, gcc %s; %s\n", js(m, "cpu"), jd(m, "cpus"),
	       js(m, "kernel"), js(m, "build"), js(m, "compiler"), js(m, "date"));
	printf("timer: %s", js(m, "timer"));
	if (!isnan(jd(m, "tsc_ghz")))
		printf(" at %.3f GHz", jd(m, "tsc_ghz"));
	printf(", resolution %.1f ns, overhead %.1f ns per read pair (subtracted from p50/p99);"
	       " clock_gettime %.0f ns\n",
	       jd(m, "timer_resolution_ns"), jd(m, "timer_overhead_ns"), jd(m, "clock_gettime_ns"));
}

static void cases_table(const json_t *out)
{
	const json_t *cases = json_object_get(out, "cases");
	if (!cases)
		return;
	printf("\n%-22s %9s %9s %9s %9s %9s %9s  %s\n", "case", "ns/eval", "min", "max",
	       "cpu ns", "p50 ns", "p99 ns", "call");
	const char *key;
	const json_t *c;
	double share = 1;
	json_object_foreach((json_t *)cases, key, c) {
		printf("%-22s", key);
		col(jd(c, "ns_per_eval"), 9, 1);
		col(jd(c, "min"), 9, 1);
		col(jd(c, "max"), 9, 1);
		col(jd(c, "cpu_ns_per_eval"), 9, 1);
		col(jd(c, "p50_ns"), 9, 1);
		col(jd(c, "p99_ns"), 9, 1);
		printf("  %s\n", js(c, "api"));
		if (jd(c, "cpu_share") < share)
			share = jd(c, "cpu_share");
	}
	printf("ns/eval: wall time, median of the runs (loop and id switch included, see "
	       "loop_baseline); min/max over the runs;\ncpu ns: the same over CPU time.\n");
	if (share < 0.95)
		printf("WARNING: the machine was busy: a case ran only %.0f%% of its wall time\n",
		       share * 100);
	const json_t *k = json_object_get(out, "checks");
	if (k)
		printf("checks over %.0f ids: %s on for %.0f, %s served r10 to %.0f (DEFAULT_OFF %.0f), "
		       "unexpected results %.0f\n",
		       jd(k, "ids"), K_ROLLOUT, jd(k, "rollout_on"), K_RULES10,
		       jd(k, "rules10_rule_match"), jd(k, "rules10_default_off"),
		       jd(k, "unexpected"));
}

static void multiproc_table(const json_t *out)
{
	const json_t *mp = json_object_get(out, "multiprocess");
	if (!mp)
		return;
	printf("\nmulti-process: %s from N processes at once (%.0f cpus)\n", js(mp, "flag"),
	       jd(mp, "cpus"));
	printf("%-6s %14s %14s %14s %12s %8s\n", "procs", "decisions/s", "min", "max",
	       "ns/eval/proc", "scaling");
	static const char *const keys[] = { "1", "2", "4", "8" };
	for (size_t i = 0; i < 4; i++) {
		const json_t *r = json_object_get(mp, keys[i]);
		if (!r)
			continue;
		printf("%-6s", keys[i]);
		col(jd(r, "decisions_per_s"), 14, 0);
		col(jd(r, "min"), 14, 0);
		col(jd(r, "max"), 14, 0);
		col(jd(r, "ns_per_eval_per_process"), 12, 1);
		col(jd(r, "scaling"), 8, 2);
		printf("\n");
	}
}

static void publish_table(const json_t *out)
{
	const json_t *p = json_object_get(out, "publish");
	if (!p)
		return;
	printf("\npublish (medians; publish_ms = compile + publish, wall; cpu ms: the same in CPU "
	       "time; all: parse + compile + publish)\n");
	printf("%-8s %10s %10s %10s %12s %10s %10s %10s %10s %11s\n", "flags", "parse ms",
	       "compile ms", "publish ms", "publish_ms", "min", "max", "cpu ms", "all ms",
	       "snapshot B");
	const char *key;
	const json_t *r;
	json_object_foreach((json_t *)p, key, r) {
		printf("%-8s", key);
		col(jd(r, "parse_ms"), 10, 2);
		col(jd(r, "compile_ms"), 10, 2);
		col(jd(r, "publish_call_ms"), 10, 2);
		col(jd(r, "publish_ms"), 12, 2);
		col(jd(r, "min"), 10, 2);
		col(jd(r, "max"), 10, 2);
		col(jd(r, "publish_cpu_ms"), 10, 2);
		col(jd(r, "parse_compile_publish_ms"), 10, 2);
		col(jd(r, "snapshot_bytes"), 11, 0);
		printf("\n");
	}
}

static void propagation_table(const json_t *out)
{
	const json_t *p = json_object_get(out, "propagation_us");
	if (!p)
		return;
	const json_t *a = json_object_get(p, "after_return_us"),
		     *c = json_object_get(p, "publish_call_us");
	printf("\npropagation: %.0f publishes of %.0f bytes to %.0f reader processes on %.0f cpus "
	       "(%.0f pairs, %.0f missed), readers check every %.0f us\n",
	       jd(p, "publishes"), jd(p, "snapshot_bytes"), jd(p, "readers"), jd(p, "cpus"),
	       jd(p, "pairs"), jd(p, "missed_pairs"), jd(p, "reader_poll_us"));
	printf("  from the call to shm_writer_publish:  p50 %8.1f us  p99 %8.1f us  max %8.1f us\n",
	       jd(p, "p50"), jd(p, "p99"), jd(p, "max"));
	printf("  from its return:                      p50 %8.1f us  p99 %8.1f us  max %8.1f us\n",
	       jd(a, "p50"), jd(a, "p99"), jd(a, "max"));
	printf("  the shm_writer_publish call itself:   p50 %8.1f us  p99 %8.1f us  max %8.1f us\n",
	       jd(c, "p50"), jd(c, "p99"), jd(c, "max"));
	const json_t *m = json_object_get(p, "reader_remap_us");
	printf("  a reader's check that remapped:       p50 %8.1f us  p99 %8.1f us  max %8.1f us\n",
	       jd(m, "p50"), jd(m, "p99"), jd(m, "max"));
	printf("  readers %s\n", jd(p, "reader_poll_us") > 0 ? "sleep between checks (--poll-us)"
							    : "spin with sched_yield (--poll-us 0)");
}

static void memory_table(const json_t *out)
{
	const json_t *m = json_object_get(out, "memory");
	if (!m)
		return;
	double snap_kb = jd(m, "snapshot_bytes") / 1024;
	printf("\nmemory per reader process (snapshot %.0f bytes = %.0f KiB; all KiB, averages over "
	       "the readers)\n",
	       jd(m, "snapshot_bytes"), snap_kb);
	printf("%-8s %12s %10s %10s %13s %13s %12s %9s\n", "readers", "baseline RSS", "added RSS",
	       "added PSS", "added private", "snapshot PSS", "total added", "PSS/snap");
	static const char *const keys[] = { "1", "2", "4", "8" };
	for (size_t i = 0; i < 4; i++) {
		const json_t *r = json_object_get(m, keys[i]);
		if (!r || !json_object_get(r, "readers"))
			continue;
		printf("%-8s", keys[i]);
		col(jd(json_object_get(r, "baseline"), "rss_kb"), 12, 0);
		col(jd(r, "added_rss_kb_avg"), 10, 0);
		col(jd(r, "added_pss_kb_avg"), 10, 0);
		col(jd(r, "added_private_dirty_kb_avg"), 13, 0);
		col(jd(r, "snapshot_pss_kb_avg"), 13, 0);
		col(jd(r, "total_added_pss_kb"), 12, 0);
		col(jd(r, "added_pss_per_snapshot"), 9, 3);
		printf("\n");
	}
	printf("added = reader - a baseline process of the same binary that opened nothing; private ="
	       " Private_Dirty;\nPSS/snap = added PSS per reader / snapshot size\n");
}

static void tail_table(const json_t *out)
{
	const json_t *t = json_object_get(out, "publish_tail");
	if (!t || !json_object_size(t))
		return;
	printf("\npublish_tail: one-shot %s in a worker thread, each call timed by its thread CPU "
	       "clock, while this\nprocess republishes every 200 ms (us; own eval = median call)\n",
	       K_SIMPLE);
	printf("%-12s %10s %8s %9s %9s %9s %9s %8s %8s %7s %9s %9s\n", "document", "snapshot B",
	       "publish", "calls", "own eval", "p99.99", "max", ">100us", ">1ms", ">1ms/pb",
	       "worst/pb", "limit");
	const char *key;
	const json_t *d;
	json_object_foreach((json_t *)t, key, d) {
		printf("%-12s", key);
		col(jd(d, "snapshot_bytes"), 10, 0);
		col(jd(d, "publishes"), 8, 0);
		col(jd(d, "calls"), 9, 0);
		col(jd(d, "own_eval_median_us"), 9, 3);
		col(jd(d, "p9999_us"), 9, 2);
		col(jd(d, "max_us"), 9, 1);
		col(jd(d, "over_100us"), 8, 0);
		col(jd(d, "over_1ms"), 8, 0);
		col(jd(d, "over_1ms_per_publish"), 7, 2);
		col(jd(d, "worst_per_publish_median_us"), 9, 1);
		col(jd(d, "limit_us"), 9, 1);
		printf("\n");
	}
	printf("worst/pb: the worst call after each publish, median over the publishes; "
	       "limit: 100 us + own eval\n");
}

/* A verdict: met, MISSED, or - when the figure did not run. */
static const char *verdict(const json_t *met)
{
	return json_is_true(met) ? "met" : json_is_false(met) ? "MISSED" : "-";
}

static void targets_table(const json_t *out)
{
	const json_t *t = json_object_get(out, "targets");
	if (!t)
		return;
	printf("\nperformance targets (limit probe: lookup");
	col(jd(t, "lookup_ns"), 0, 2);
	printf(" ns/eval; one view acquire/release");
	col(jd(t, "view_section_ns"), 0, 2);
	printf(" ns; CPU time: lookup");
	col(jd(t, "lookup_cpu_ns"), 0, 2);
	printf(", view");
	col(jd(t, "view_section_cpu_ns"), 0, 2);
	printf(" ns)\n");
	printf("%-24s %10s %-4s %8s %10s  %-7s %8s %-7s %s\n", "target", "figure", "", "x lookup",
	       "limit", "", "cpu x", "cpu", "rule");
	size_t i;
	const json_t *r;
	json_array_foreach(json_object_get(t, "list"), i, r) {
		printf("%-24s", js(r, "name"));
		col(jd(r, "figure"), 10, 2);
		printf(" %-4s", js(r, "unit"));
		col(jd(r, "ratio"), 8, 2);
		col(jd(r, "limit"), 10, 2);
		printf("  %-7s", verdict(json_object_get(r, "met")));
		col(jd(r, "ratio_cpu"), 8, 2);
		printf(" %-7s %s\n", verdict(json_object_get(r, "met_cpu")), js(r, "rule"));
		if (json_object_get(r, "note"))
			printf("%24s   (%s)\n", "", js(r, "note"));
	}
	printf("figure, x lookup, limit: wall ns_per_eval (the keys other programs read); cpu x, cpu:"
	       " the same over\ncpu_ns_per_eval, which a busy machine inflates less\n");
}

void report_table(const json_t *out)
{
	header(out);
	cases_table(out);
	multiproc_table(out);
	publish_table(out);
	propagation_table(out);
	memory_table(out);
	tail_table(out);
	counting_table(out);
	targets_table(out);
	const json_t *f = json_object_get(out, "failures");
	size_t i;
	const json_t *v;
	if (json_array_size(f)) {
		printf("\nFAILURES:\n");
		json_array_foreach(f, i, v)
			printf("  %s\n", json_string_value(v));
	} else {
		printf("\nall checks held\n");
	}
}
