/*
 * bench/publish.c - what a publish costs, by flag count.
 *
 * For 1,000, 10,000 and 100,000 flags (--quick: the first two) the
 * generated document is serialized once (not timed), then each repetition
 * does what flagshm-writer does on a change: parse the text
 * (wc_load_buffer), compile (wc_compile), publish (shm_writer_publish into
 * this run's store). Each step is timed with CLOCK_MONOTONIC; figures are
 * medians over the repetitions. "publish_ms" in the output is compile +
 * publish (the document already parsed), the figure the publish targets
 * of BENCHMARKS.md name; parse is reported beside it. publish_cpu_ms is
 * compile + publish in this thread's CPU time (system time included),
 * which a busy machine does not inflate as much.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void report_errors(bench_env *e, const char *what, size_t n, wc_errors *errs)
{
	bench_fail(e, "publish: %s of %zu flags failed: %s%s", what, n,
		   errs->n ? errs->msg[0] : "(no message)",
		   errs->n > 1 ? " (and more)" : "");
}

/* One flag count: its medians into OUT; false after a failure. */
static bool publish_size(bench_env *e, size_t nflags, int reps, json_t *out)
{
	char err[512];
	wc_limits lim = wc_limits_default();
	json_t *doc = gen_doc(nflags);
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!text) {
		bench_fail(e, "publish: out of memory generating %zu flags", nflags);
		return false;
	}
	size_t len = strlen(text);
	double parse[16], compile[16], pub[16], cp[16], total[16], cpu[16];
	size_t bytes = 0;
	int done = 0;
	bool ok = true;
	for (int r = 0; r < reps && r < 16 && ok && !bench_stop; r++) {
		wc_errors errs = { 0 };
		wc_snapshot snap = { 0 };
		json_t *d = NULL;
		int64_t t0 = now_ns();
		if (wc_load_buffer(text, len, "bench", &lim, &d, &errs) != 0) {
			report_errors(e, "parse", nflags, &errs);
			ok = false;
		}
		int64_t t1 = now_ns(), c1 = cpu_ns();
		if (ok && wc_compile(d, NULL, "bench", &lim, &snap, &errs) != 0) {
			report_errors(e, "compile", nflags, &errs);
			ok = false;
		}
		int64_t t2 = now_ns();
		if (ok && shm_writer_publish(&e->writer, snap.bytes, snap.size, err, sizeof err)) {
			bench_fail(e, "publish: %zu flags: %s", nflags, err);
			ok = false;
		}
		int64_t t3 = now_ns(), c3 = cpu_ns();
		if (ok) {
			parse[done] = (double)(t1 - t0) / 1e6;
			compile[done] = (double)(t2 - t1) / 1e6;
			pub[done] = (double)(t3 - t2) / 1e6;
			cp[done] = (double)(t3 - t1) / 1e6;
			total[done] = (double)(t3 - t0) / 1e6;
			cpu[done] = (double)(c3 - c1) / 1e6;
			bytes = snap.size;
			done++;
		}
		json_decref(d);
		wc_snapshot_free(&snap);
		wc_errors_free(&errs);
	}
	free(text);
	if (!done)
		return false;
	double lo = min_d(cp, (size_t)done), hi = max_d(cp, (size_t)done);
	json_object_set_new(out, "publish_ms", jnum(median(cp, (size_t)done), 3));
	json_object_set_new(out, "min", jnum(lo, 3));
	json_object_set_new(out, "max", jnum(hi, 3));
	json_object_set_new(out, "publish_cpu_ms", jnum(median(cpu, (size_t)done), 3));
	json_object_set_new(out, "parse_ms", jnum(median(parse, (size_t)done), 3));
	json_object_set_new(out, "compile_ms", jnum(median(compile, (size_t)done), 3));
	json_object_set_new(out, "publish_call_ms", jnum(median(pub, (size_t)done), 3));
	json_object_set_new(out, "parse_compile_publish_ms", jnum(median(total, (size_t)done), 3));
	json_object_set_new(out, "document_bytes", json_integer((json_int_t)len));
	json_object_set_new(out, "snapshot_bytes", json_integer((json_int_t)bytes));
	json_object_set_new(out, "repetitions", json_integer(done));
	return ok;
}

bool publish_run(bench_env *e)
{
	if (!bench_selected(e->opt, "publish"))
		return true;
	static const size_t sizes[] = { 1000, 10000, 100000 };
	size_t nsizes = e->opt->quick ? 2 : 3;
	int reps = e->opt->quick ? 3 : 5;
	json_t *ms = json_object(), *bytes = json_object(), *detail = json_object();
	json_object_set_new(e->out, "publish_ms", ms);
	json_object_set_new(e->out, "snapshot_bytes", bytes);
	json_object_set_new(e->out, "publish", detail);
	bool ok = true;
	for (size_t i = 0; i < nsizes && ok && !bench_stop; i++) {
		char key[24];
		snprintf(key, sizeof key, "%zu", sizes[i]);
		bench_note("publish: %zu flags", sizes[i]);
		json_t *d = json_object();
		json_object_set_new(detail, key, d);
		ok = publish_size(e, sizes[i], reps, d);
		json_object_set(ms, key, json_object_get(d, "publish_ms"));
		json_object_set(bytes, key, json_object_get(d, "snapshot_bytes"));
	}
	/* Leave the run's own document published, as the store began. */
	char err[512];
	if (!bench_stop &&
	    shm_writer_publish(&e->writer, e->snap.bytes, e->snap.size, err, sizeof err)) {
		bench_fail(e, "publish: republishing the run's document: %s", err);
		ok = false;
	}
	return ok;
}
