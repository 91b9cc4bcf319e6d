/*
 * bench/clock.c - clocks and statistics.
 *
 * Two clocks: CLOCK_MONOTONIC (now_ns), the same clock in every process
 * of the host, used around batches of evaluations and across processes;
 * and the single-evaluation timer (ticks() in bench.h), the TSC when the
 * CPU says it is invariant (constant_tsc and nonstop_tsc), calibrated here
 * against CLOCK_MONOTONIC, with the cost of a back-to-back pair of reads
 * measured so that it can be subtracted from each sample.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bench_timer btimer;

int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Whether /proc/cpuinfo lists every flag in WANT (space-separated). */
static bool cpu_has(const char *want)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return false;
	char line[8192];
	bool ok = false;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		ok = true;
		char w[64];
		const char *p = want;
		while (ok && sscanf(p, "%63s", w) == 1) {
			char pat[72];
			snprintf(pat, sizeof pat, " %s", w);
			char *hit = strstr(line, pat);
			size_t n = strlen(pat);
			ok = hit && (hit[n] == ' ' || hit[n] == '\n' || hit[n] == '\0');
			p = strstr(p, w) + strlen(w);
		}
		break;
	}
	fclose(f);
	return ok;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

double median(double *v, size_t n)
{
	if (!n)
		return NAN;
	qsort(v, n, sizeof *v, cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Nearest rank: the smallest value with at least p of the samples at or
 * below it. */
double pctl_u64(uint64_t *v, size_t n, double p)
{
	if (!n)
		return NAN;
	qsort(v, n, sizeof *v, cmp_u64);
	size_t r = (size_t)ceil(p * (double)n);
	if (r < 1)
		r = 1;
	if (r > n)
		r = n;
	return (double)v[r - 1];
}

double min_d(const double *v, size_t n)
{
	double m = n ? v[0] : NAN;
	for (size_t i = 1; i < n; i++)
		if (v[i] < m)
			m = v[i];
	return m;
}

double max_d(const double *v, size_t n)
{
	double m = n ? v[0] : NAN;
	for (size_t i = 1; i < n; i++)
		if (v[i] > m)
			m = v[i];
	return m;
}

double rnd(double x, int digits)
{
	double s = pow(10, digits);
	return round(x * s) / s;
}

json_t *jnum(double x, int digits)
{
	if (!isfinite(x))
		return json_null();
	return json_real(rnd(x, digits));
}

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* Median cost of two back-to-back ticks(), in ticks; *res gets the step
 * the counter advances by (the GCD of the differences seen): a virtual
 * machine may scale the TSC so that it moves in steps of many ticks, and
 * no percentile can be finer than that. */
static double pair_overhead(size_t n, double *res)
{
	uint64_t *d = malloc(n * sizeof *d);
	*res = 1;
	if (!d)
		return 0;
	uint64_t g = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t a = ticks();
		uint64_t b = ticks();
		d[i] = b - a;
		g = gcd_u64(g, d[i]);
	}
	double m = pctl_u64(d, n, 0.5);
	free(d);
	*res = g ? (double)g : 1;
	return m;
}

void timer_calibrate(bool quick)
{
	memset(&btimer, 0, sizeof btimer);
	btimer.ns_per_tick = 1.0;
#if defined(__x86_64__)
	btimer.tsc = cpu_has("constant_tsc nonstop_tsc");
#endif
	/* clock_gettime's own cost: the median of many back-to-back pairs. */
	{
		enum { N = 20000 };
		static uint64_t d[N];
		for (size_t i = 0; i < N; i++) {
			int64_t a = now_ns();
			int64_t b = now_ns();
			d[i] = (uint64_t)(b - a);
		}
		btimer.clock_gettime_ns = pctl_u64(d, N, 0.5);
	}
	if (btimer.tsc) {
		/* Ticks per ns over one interval, three times, median: a
		 * preemption inside one interval does not skew the result
		 * much, since both clocks keep running through it. */
		double r[3];
		int64_t span = quick ? 20000000 : 100000000;
		for (int i = 0; i < 3; i++) {
			int64_t t0 = now_ns();
			uint64_t c0 = ticks();
			int64_t t1;
			while ((t1 = now_ns()) - t0 < span)
				;
			uint64_t c1 = ticks();
			r[i] = (double)(t1 - t0) / (double)(c1 - c0);
		}
		btimer.ns_per_tick = median(r, 3);
	}
	double res;
	btimer.overhead_ticks = pair_overhead(quick ? 20000 : 200000, &res);
	btimer.overhead_ns = btimer.overhead_ticks * btimer.ns_per_tick;
	btimer.resolution_ns = res * btimer.ns_per_tick;
}
