/*
 * bench/counting.c - what counting (docs/metrics.md) costs an evaluation:
 * the same loops through a handle that counts (the default) and one opened
 * with FLAGSHM_OPEN_NO_COUNT, interleaved run by run in this process, so
 * both see the same machine.
 *
 *  - per_eval: ns per evaluation of flagshm_view_bool (simple and rollout
 *    flags, one view per BATCH evaluations), on and off; "added_ns" is the
 *    difference of the medians.
 *  - threads: evaluations/s of N = cpus threads counting, against N times
 *    one counting thread (threads of one process must not slow each other);
 *    and 4 threads counting against 4 not counting.
 * The writer's side (wm) runs in this process, as it would on a host: the
 * regions are handed over and read every second while the loops run.
 */
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BATCH 1000

extern volatile uint64_t bench_sink; /* cases.c */

typedef struct loop_arg {
	flagshm_store *s;
	const char *key;
	const bench_id *ids;
	int64_t span_ns;
	uint64_t n; /* out */
	int64_t ns; /* out: wall */
	int64_t cpu; /* out: this thread's CPU time */
} loop_arg;

static uint64_t run_loop(flagshm_store *s, const char *key, const bench_id *ids, flagshm_ctx *ctx,
			 unsigned *k, uint64_t n)
{
	uint64_t sink = 0;
	flagshm_view v;
	flagshm_view_acquire(s, &v);
	for (uint64_t i = 0; i < n; i++) {
		set_user(ctx, &ids[*k]);
		if (++*k == BENCH_NIDS)
			*k = 0;
		sink += flagshm_view_bool(&v, key, ctx, false);
	}
	flagshm_view_release(&v);
	return sink;
}

static void *timed(void *p)
{
	loop_arg *a = p;
	flagshm_ctx ctx;
	gen_ctx(&ctx, a->ids);
	unsigned k = (unsigned)(((uintptr_t)p >> 6) % BENCH_NIDS);
	uint64_t sink = run_loop(a->s, a->key, a->ids, &ctx, &k, 10 * BATCH); /* warm */
	uint64_t n = 0;
	int64_t c0 = cpu_ns(), t0 = now_ns(), t;
	do {
		sink += run_loop(a->s, a->key, a->ids, &ctx, &k, BATCH);
		n += BATCH;
		t = now_ns();
	} while (t - t0 < a->span_ns && !bench_stop);
	a->n = n;
	a->ns = t - t0;
	a->cpu = cpu_ns() - c0;
	bench_sink += sink;
	return NULL;
}

/* Evaluations per second of NT threads on S, all started together (by
 * wall time); *CPU_NS (may be NULL) gets CPU ns per evaluation. */
static double rate_cpu(flagshm_store *s, const char *key, const bench_id *ids, int nt, int64_t span,
		       double *cpu_ns_per_eval)
{
	loop_arg a[64];
	pthread_t t[64];
	for (int i = 0; i < nt; i++) {
		a[i] = (loop_arg){.s = s, .key = key, .ids = ids, .span_ns = span};
		if (pthread_create(&t[i], NULL, timed, &a[i]) != 0)
			return 0;
	}
	double r = 0, cpu = 0, n = 0;
	for (int i = 0; i < nt; i++) {
		pthread_join(t[i], NULL);
		r += a[i].ns ? (double)a[i].n * 1e9 / (double)a[i].ns : 0;
		cpu += (double)a[i].cpu;
		n += (double)a[i].n;
	}
	if (cpu_ns_per_eval)
		*cpu_ns_per_eval = n ? cpu / n : 0;
	return r;
}

static json_t *pair(double on, double off, const char *unit)
{
	return json_pack("{s:o,s:o,s:s}", "on", jnum(on, 2), "off", jnum(off, 2), "unit", unit);
}

bool counting_run(bench_env *e)
{
	const bench_opts *o = e->opt;
	if (!bench_selected(o, "counting"))
		return true;
	flagshm_store *off = NULL;
	flagshm_store_options so = {.size = sizeof so, .flags = FLAGSHM_OPEN_NO_COUNT};
	char err[256];
	if (flagshm_store_open(e->store_name, &so, &off, err, sizeof err) != 0) {
		bench_fail(e, "counting: cannot open an uncounted handle: %s", err);
		return false;
	}
	int64_t span = (int64_t)(o->run_seconds * 1e9);
	int runs = o->runs < 32 ? o->runs : 32;
	json_t *res = json_object();
	static const char *const keys[] = {K_SIMPLE, K_ROLLOUT};
	static const char *const names[] = {"simple_view", "rollout_view"};
	/* Per evaluation: short chunks, counted and not counted in turn on
	 * this thread, CHUNKS of each; the minimum of each side over its
	 * chunks is what the loop costs when nothing else interferes (a
	 * busy machine only ever adds), the median is shown beside it. */
	enum { CHUNKS = 40 };
	int64_t chunk = span * runs / (2 * CHUNKS);
	if (chunk < 5000000)
		chunk = 5000000;
	for (int c = 0; c < 2 && !bench_stop; c++) {
		bench_note("counting: %s on/off", names[c]);
		double con[CHUNKS], coff[CHUNKS], won[CHUNKS], woff[CHUNKS];
		int done = 0;
		for (int r = 0; r < CHUNKS && !bench_stop; r++, done++) {
			loop_arg a0 = {.s = off, .key = keys[c], .ids = e->ids, .span_ns = chunk};
			loop_arg a1 = {.s = e->store, .key = keys[c], .ids = e->ids, .span_ns = chunk};
			timed(&a0);
			timed(&a1);
			coff[r] = (double)a0.cpu / (double)a0.n;
			con[r] = (double)a1.cpu / (double)a1.n;
			woff[r] = (double)a0.ns / (double)a0.n;
			won[r] = (double)a1.ns / (double)a1.n;
		}
		if (!done)
			break;
		double mincon = min_d(con, (size_t)done), mincoff = min_d(coff, (size_t)done);
		double mon = median(won, (size_t)done), moff = median(woff, (size_t)done);
		double mcon = median(con, (size_t)done), mcoff = median(coff, (size_t)done);
		json_t *p = pair(mon, moff, "ns_per_eval");
		json_object_set_new(p, "added_ns", jnum(mon - moff, 2));
		json_object_set_new(p, "cpu_on", jnum(mcon, 2));
		json_object_set_new(p, "cpu_off", jnum(mcoff, 2));
		json_object_set_new(p, "cpu_min_on", jnum(mincon, 2));
		json_object_set_new(p, "cpu_min_off", jnum(mincoff, 2));
		json_object_set_new(p, "cpu_added_ns", jnum(mincon - mincoff, 2));
		json_object_set_new(p, "chunks", json_integer(done));
		json_object_set_new(res, names[c], p);
	}
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int n = cpus < 1 ? 1 : cpus > 64 ? 64 : (int)cpus;
	/* Throughput needs idle cores; CPU ns per evaluation does not: threads
	 * that slowed each other (a shared line bouncing) would spend more
	 * CPU per evaluation, whatever else runs on the machine. */
	double one[32], many[32], on4[32], off4[32], c1[32], cn[32], c4on[32], c4off[32];
	for (int r = 0; r < runs && !bench_stop; r++) {
		bench_note("counting: threads, run %d of %d", r + 1, runs);
		one[r] = rate_cpu(e->store, K_ROLLOUT, e->ids, 1, span, &c1[r]);
		many[r] = rate_cpu(e->store, K_ROLLOUT, e->ids, n, span, &cn[r]);
		on4[r] = rate_cpu(e->store, K_ROLLOUT, e->ids, 4, span, &c4on[r]);
		off4[r] = rate_cpu(off, K_ROLLOUT, e->ids, 4, span, &c4off[r]);
	}
	double m1 = median(one, (size_t)runs), mn = median(many, (size_t)runs);
	double m4on = median(on4, (size_t)runs), m4off = median(off4, (size_t)runs);
	json_object_set_new(res, "threads_cpu",
			    json_pack("{s:o,s:o,s:o,s:o}", "one_thread_cpu_ns",
				      jnum(median(c1, (size_t)runs), 2), "n_threads_cpu_ns",
				      jnum(median(cn, (size_t)runs), 2), "four_on_cpu_ns",
				      jnum(median(c4on, (size_t)runs), 2), "four_off_cpu_ns",
				      jnum(median(c4off, (size_t)runs), 2)));
	json_object_set_new(res, "threads",
			    json_pack("{s:i,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "n", n,
				      "one_thread_evals_per_s", jnum(m1, 0),
				      "n_threads_evals_per_s", jnum(mn, 0),
				      "n_threads_vs_n_x_one", jnum(mn / (m1 * n), 3),
				      "four_on_evals_per_s", jnum(m4on, 0),
				      "four_off_evals_per_s", jnum(m4off, 0),
				      "four_on_vs_off", jnum(m4on / m4off, 3),
				      "note", json_string("rollout_view; medians of the runs")));
	json_object_set_new(e->out, "counting", res);
	flagshm_close(&off);
	return true;
}

void counting_table(const json_t *out)
{
	const json_t *c = json_object_get(out, "counting");
	if (!c)
		return;
	printf("\ncounting (docs/metrics.md): the same loop counted and not counted\n");
	const char *names[] = {"simple_view", "rollout_view"};
	for (int i = 0; i < 2; i++) {
		const json_t *p = json_object_get(c, names[i]);
		if (!p)
			continue;
		printf("  %-13s cpu ns/eval, min of %lld chunks: on %6.2f off %6.2f added %5.2f"
		       " (medians: cpu %.2f/%.2f, wall %.2f/%.2f)\n",
		       names[i], (long long)json_integer_value(json_object_get(p, "chunks")),
		       json_number_value(json_object_get(p, "cpu_min_on")),
		       json_number_value(json_object_get(p, "cpu_min_off")),
		       json_number_value(json_object_get(p, "cpu_added_ns")),
		       json_number_value(json_object_get(p, "cpu_on")),
		       json_number_value(json_object_get(p, "cpu_off")),
		       json_number_value(json_object_get(p, "on")),
		       json_number_value(json_object_get(p, "off")));
	}
	const json_t *t = json_object_get(c, "threads");
	if (t) {
		printf("  %lld threads counting: %.0f evals/s = %.3f x %lld one-thread rates\n",
		       (long long)json_integer_value(json_object_get(t, "n")),
		       json_number_value(json_object_get(t, "n_threads_evals_per_s")),
		       json_number_value(json_object_get(t, "n_threads_vs_n_x_one")),
		       (long long)json_integer_value(json_object_get(t, "n")));
		printf("  4 threads: counting %.0f, not counting %.0f evals/s (ratio %.3f)\n",
		       json_number_value(json_object_get(t, "four_on_evals_per_s")),
		       json_number_value(json_object_get(t, "four_off_evals_per_s")),
		       json_number_value(json_object_get(t, "four_on_vs_off")));
	}
	const json_t *tc = json_object_get(c, "threads_cpu");
	if (tc)
		printf("  cpu ns/eval (rollout_view, counting): 1 thread %.2f, %lld threads %.2f; "
		       "4 threads %.2f, 4 not counting %.2f\n",
		       json_number_value(json_object_get(tc, "one_thread_cpu_ns")),
		       (long long)json_integer_value(json_object_get(t, "n")),
		       json_number_value(json_object_get(tc, "n_threads_cpu_ns")),
		       json_number_value(json_object_get(tc, "four_on_cpu_ns")),
		       json_number_value(json_object_get(tc, "four_off_cpu_ns")));
}
