/*
 * bench/scrape_bench.c - flagshm-scrape-bench: what one GET /metrics costs
 * the writer's exporter thread at N flags: the time to render the whole
 * exposition from the totals (writer/daemon/metrics.h), and its size.
 * Everything a scrape does besides the socket is in the render.
 *
 *   flagshm-scrape-bench [--flags N] [--runs R]
 *
 * Each flag has two variants, each counted under two reasons and with
 * outcomes (so a histogram each), and one evaluation error code: about
 * 40 series per flag, what a busy store with outcomes recorded exposes.
 * Prints the median, min and max of R renders (default 21) at N flags
 * (default 10,000) and the bytes of one exposition.
 */
#include "compile.h"
#include "metrics.h"
#include "prom.h"
#include "wm.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double clock_s(clockid_t id)
{
	struct timespec t;
	clock_gettime(id, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* N flags, each with an owner and half of them with an expiresAt. */
static json_t *document(long n)
{
	json_t *flags = json_array();
	for (long i = 0; i < n; i++) {
		char key[32];
		snprintf(key, sizeof key, "flag-%06ld", i);
		json_t *f = json_pack("{s:s, s:b, s:s, s:s}", "key", key, "defaultValue", 1, "owner",
				      i % 3 ? "team-checkout" : "team \"growth\"", "type",
				      i % 2 ? "release" : "experiment");
		if (i % 2)
			json_object_set_new(f, "expiresAt", json_string("2027-02-01T00:00:00Z"));
		json_array_append_new(flags, f);
	}
	return json_pack("{s:i, s:o}", "formatVersion", 1, "flags", flags);
}

int main(int argc, char **argv)
{
	long nflags = 10000, runs = 21;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--flags") == 0 && i + 1 < argc)
			nflags = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
			runs = strtol(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: flagshm-scrape-bench [--flags N] [--runs R]\n");
			return 2;
		}
	}
	if (nflags < 1 || nflags > 100000 || runs < 1 || runs > 1000) {
		fprintf(stderr, "flagshm-scrape-bench: --flags 1-100000, --runs 1-1000\n");
		return 2;
	}

	json_t *doc = document(nflags);
	wc_limits lim = wc_limits_default();
	wc_snapshot snap = { 0 };
	wc_errors errs = { 0 };
	if (wc_compile(doc, NULL, "bench", &lim, &snap, &errs) != 0) {
		fprintf(stderr, "compile: %s\n", errs.n ? errs.msg[0] : "?");
		return 1;
	}
	wd_metrics *m = wd_metrics_new(NULL);
	wd_metrics_published(m, snap.bytes, snap.size, 0.01);

	/* The counting totals, as wm_totals_snapshot would copy them. */
	wm_flag *wf = calloc((size_t)nflags, sizeof *wf);
	wm_variant *wv = calloc((size_t)nflags * 2, sizeof *wv);
	char (*keys)[32] = calloc((size_t)nflags, sizeof *keys);
	for (long i = 0; i < nflags; i++) {
		snprintf(keys[i], sizeof keys[i], "flag-%06ld", i);
		wf[i] = (wm_flag){ .flag = keys[i], .nvariants = 2, .variants = &wv[2 * i] };
		wf[i].errors[3] = 1;
		for (int v = 0; v < 2; v++) {
			wm_variant *x = &wv[2 * i + v];
			x->variant = v ? "true" : "false";
			x->reasons[3] = 1000 + (uint64_t)i;
			x->reasons[5] = 123456789;
			x->outcome_ok = 900;
			x->outcome_err = 100;
			for (int k = 0; k <= WM_BUCKETS; k++)
				x->buckets[k] = k < 10 ? 100 : 0;
			x->sum_seconds = 12.5;
		}
	}
	wm_totals counts = { .readers = 8, .nflags = (size_t)nflags, .flags = wf };

	/* Steady state: one buffer reused from scrape to scrape, as the
	 * exporter keeps it (metrics_http.c); cold: fresh memory each time,
	 * the first scrape's cost. */
	double *t = calloc((size_t)runs, sizeof *t), *cpu = calloc((size_t)runs, sizeof *cpu);
	size_t bytes = 0;
	for (int cold = 0; cold < 2; cold++) {
		wd_buf keep;
		wd_buf_init(&keep, (size_t)1 << 30);
		for (long r = 0; r < runs; r++) {
			wd_buf fresh, *b = cold ? &fresh : &keep;
			if (cold)
				wd_buf_init(&fresh, (size_t)1 << 30);
			b->len = 0;
			double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
			/* As wd_metrics_render does: the last size, as a hint. */
			wd_buf_reserve(b, bytes + bytes / 8 + 4096);
			wd_metrics_render_counts(b, &counts);
			if (wd_metrics_render(m, b) != 0) {
				fprintf(stderr, "render refused\n");
				return 1;
			}
			t[r] = clock_s(CLOCK_MONOTONIC) - t0;
			cpu[r] = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
			bytes = b->len;
			if (cold)
				wd_buf_free(&fresh);
		}
		wd_buf_free(&keep);
		qsort(t, (size_t)runs, sizeof *t, cmp_double);
		qsort(cpu, (size_t)runs, sizeof *cpu, cmp_double);
		printf("scrape render, %ld flags, %s buffer: wall median %.2f ms (min %.2f, max %.2f), "
		       "thread CPU median %.2f ms (min %.2f); %ld runs, %zu bytes\n", nflags,
		       cold ? "fresh" : "reused", t[runs / 2] * 1e3, t[0] * 1e3, t[runs - 1] * 1e3,
		       cpu[runs / 2] * 1e3, cpu[0] * 1e3, runs, bytes);
	}
	free(t);
	free(cpu);
	free(wf);
	free(wv);
	free(keys);
	wd_metrics_free(&m);
	wc_snapshot_free(&snap);
	wc_errors_free(&errs);
	json_decref(doc);
	return 0;
}
