/*
 * bench/tail.c - publish_tail: what a publish costs the requests of a
 * worker (the first performance target).
 *
 * A worker thread loops the one-shot flagshm_bool(store, "bench.simple")
 * with the ids cycling, as the cases do, and times EACH call by its own
 * CPU clock (clock_gettime(CLOCK_THREAD_CPUTIME_ID) before and after),
 * minus the median cost of a back-to-back pair of those reads, measured by
 * the same thread in the same run. Thread CPU time leaves out the time the
 * thread was descheduled (the machine's business, not flagshm's) and keeps
 * everything the call did itself, system time included: mapping the new
 * generation, page faults, checks, compiling regexes.
 *
 * Meanwhile this process's main thread is the writer: it republishes the
 * document's precompiled snapshot (shm_writer_publish, the writer's own
 * code) every 200 ms, on an absolute CLOCK_MONOTONIC schedule, up to
 * --tail-publishes times (default 25, quick 3) and within 10 s; the worker
 * runs 200 ms more after the last publish, then stops. Two documents:
 * 100,000 flags, and 10,000 flags of which 999 fillers carry a distinct
 * `matches` condition (1,000 distinct patterns with bench.rules10's r5,
 * the writer's default limit). --quick: the 10,000-flag one only.
 *
 * Every duration goes into a histogram (exact to the ns below 2,048 ns,
 * then 64 steps per power of two, 1.6%); max and the counts over 100 us
 * and 1 ms are exact. "publishes" counts those the worker made at least
 * one timed call that began after the publish had returned: each such call
 * checked the generation (and after the loop the worker's view must be of
 * the writer's last generation). Each call is also put in the window of
 * the last publish *started* before it ended (a reader can see a
 * generation before the publish call returns), and the worst call per
 * window is reported as a median over the publishes.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TAIL_PERIOD_NS 200000000LL  /* between publishes */
#define TAIL_LIMIT_NS 10000000000LL /* the whole loop, per document */
#define TAIL_REGEXES 999	    /* + bench.rules10's r5 = 1,000 distinct */
#define TAIL_MAX_PUB 1000

/* The histogram: exact below 2^11 ns, then 64 buckets per power of two. */
#define H_EXACT 2048
#define H_SUB 64
#define H_BUCKETS (H_EXACT + 53 * H_SUB)

static size_t h_index(uint64_t v)
{
	if (v < H_EXACT)
		return (size_t)v;
	int e = 63 - __builtin_clzll(v); /* >= 11 */
	size_t i = H_EXACT + (size_t)(e - 11) * H_SUB + ((v >> (e - 6)) & (H_SUB - 1));
	return i < H_BUCKETS ? i : H_BUCKETS - 1;
}

/* The middle of bucket I, in ns. */
static double h_value(size_t i)
{
	if (i < H_EXACT)
		return (double)i;
	int e = 11 + (int)((i - H_EXACT) / H_SUB);
	double lo = (double)((H_SUB + (i - H_EXACT) % H_SUB) << (e - 6));
	return lo + (double)(1ULL << (e - 6)) / 2;
}

typedef struct tail_state {
	bench_env *e;
	_Atomic int ready;
	_Atomic int stop;
	_Atomic int started; /* publishes started */
	_Atomic int done;    /* publishes returned */
	int64_t deadline;    /* the worker stops then, whatever happens */
	/* The worker's results. */
	uint64_t *hist; /* H_BUCKETS */
	uint64_t calls, over_100us, over_1ms, unexpected;
	uint64_t max_ns, overhead_ns;
	uint64_t win_max[TAIL_MAX_PUB + 1]; /* worst call per publish window */
	int seen;			    /* publishes followed by a timed call */
	uint64_t final_generation;	    /* the worker's, after its loop */
} tail_state;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static void *tail_worker(void *arg)
{
	tail_state *t = arg;
	bench_env *e = t->e;
	flagshm_ctx ctx = e->ctx; /* this thread's own */
	const bench_id *ids = e->ids;
	unsigned k = 0;

	/* The clock's own cost, by this thread, now. */
	enum { NO = 20001 };
	static uint64_t d[NO];
	for (size_t i = 0; i < NO; i++) {
		int64_t a = cpu_ns();
		int64_t b = cpu_ns();
		d[i] = (uint64_t)(b - a);
	}
	qsort(d, NO, sizeof d[0], cmp_u64);
	t->overhead_ns = d[NO / 2];
	/* Warm: register with the library, touch the current generation. */
	for (int i = 0; i < 1000; i++)
		flagshm_bool(e->store, K_SIMPLE, &ctx, false);
	atomic_store_explicit(&t->ready, 1, memory_order_release);

	uint64_t ov = t->overhead_ns;
	for (uint64_t n = 0;; n++) {
		if ((n & 1023) == 0 &&
		    (atomic_load_explicit(&t->stop, memory_order_acquire) || bench_stop ||
		     now_ns() > t->deadline))
			break;
		set_user(&ctx, &ids[k]);
		if (++k == BENCH_NIDS)
			k = 0;
		/* Publishes that returned before this call began: this call
		 * checked the generation after each of them. */
		int done = atomic_load_explicit(&t->done, memory_order_acquire);
		int64_t c0 = cpu_ns();
		bool v = flagshm_bool(e->store, K_SIMPLE, &ctx, false);
		int64_t c1 = cpu_ns();
		int pub = atomic_load_explicit(&t->started, memory_order_acquire);
		uint64_t dt = (uint64_t)(c1 - c0);
		dt = dt > ov ? dt - ov : 0;
		t->hist[h_index(dt)]++;
		t->calls++;
		t->unexpected += !v;
		if (dt > t->max_ns)
			t->max_ns = dt;
		if (dt > 100000)
			t->over_100us++;
		if (dt > 1000000)
			t->over_1ms++;
		if (pub <= TAIL_MAX_PUB && dt > t->win_max[pub])
			t->win_max[pub] = dt;
		t->seen = done;
		/* A call that began after publish PUB had started and ended
		 * after it: count PUB seen once its publish has returned
		 * (started is set before the call, so wait for the next). */
	}
	/* Untimed: the worker's store now serves the last generation. */
	flagshm_view v;
	flagshm_view_acquire(e->store, &v);
	t->final_generation = v.generation;
	flagshm_view_release(&v);
	return NULL;
}

static double hist_pctl(const uint64_t *h, uint64_t total, double p)
{
	if (!total)
		return NAN;
	uint64_t r = (uint64_t)ceil(p * (double)total), acc = 0;
	if (r < 1)
		r = 1;
	for (size_t i = 0; i < H_BUCKETS; i++) {
		acc += h[i];
		if (acc >= r)
			return h_value(i);
	}
	return NAN;
}

static void sleep_until(int64_t t)
{
	struct timespec ts = { t / 1000000000, t % 1000000000 };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !bench_stop)
		;
}

/* One document: compile, publish, measure; results into OUT. */
static bool tail_doc(bench_env *e, const char *name, size_t nflags, size_t nregex, json_t *out)
{
	char err[512];
	wc_errors errs = { 0 };
	wc_limits lim = wc_limits_default();
	wc_snapshot snap = { 0 };
	tail_state *t = NULL;
	bool ok = false;
	int npub = e->opt->tail_publishes;

	bench_note("publish_tail: %s (%zu flags, %zu regexes), %d publishes", name, nflags,
		   nregex, npub);
	json_t *doc = gen_doc_rx(nflags, nregex);
	if (!doc) {
		bench_fail(e, "publish_tail: out of memory generating %s", name);
		return false;
	}
	int rc = wc_compile(doc, NULL, "bench", &lim, &snap, &errs);
	json_decref(doc);
	if (rc) {
		bench_fail(e, "publish_tail: %s does not compile: %s", name,
			   errs.n ? errs.msg[0] : "(no message)");
		goto out;
	}
	if (shm_writer_publish(&e->writer, snap.bytes, snap.size, err, sizeof err)) {
		bench_fail(e, "publish_tail: publishing %s: %s", name, err);
		goto out;
	}
	t = calloc(1, sizeof *t);
	if (!t || !(t->hist = calloc(H_BUCKETS, sizeof *t->hist))) {
		bench_fail(e, "publish_tail: out of memory");
		goto out;
	}
	t->e = e;
	int64_t t0 = now_ns();
	t->deadline = t0 + TAIL_LIMIT_NS + 5000000000LL;
	pthread_t th;
	if ((rc = pthread_create(&th, NULL, tail_worker, t)) != 0) {
		bench_fail(e, "publish_tail: pthread_create: %s", strerror(rc));
		goto out;
	}
	while (!atomic_load_explicit(&t->ready, memory_order_acquire) && !bench_stop &&
	       now_ns() < t->deadline)
		sleep_until(now_ns() + 1000000);
	double pub_ms[TAIL_MAX_PUB];
	int published = 0;
	bool pub_ok = true;
	int64_t start = now_ns();
	for (int i = 0; i < npub && i < TAIL_MAX_PUB && !bench_stop; i++) {
		int64_t at = start + (int64_t)(i + 1) * TAIL_PERIOD_NS;
		if (at - start > TAIL_LIMIT_NS - TAIL_PERIOD_NS)
			break;
		sleep_until(at);
		atomic_store_explicit(&t->started, i + 1, memory_order_release);
		int64_t p0 = now_ns();
		if (shm_writer_publish(&e->writer, snap.bytes, snap.size, err, sizeof err)) {
			bench_fail(e, "publish_tail: %s: publish %d: %s", name, i + 1, err);
			pub_ok = false;
			break;
		}
		pub_ms[published++] = (double)(now_ns() - p0) / 1e6;
		atomic_store_explicit(&t->done, published, memory_order_release);
	}
	/* One more period for the worker to meet the last publish. */
	sleep_until(now_ns() + TAIL_PERIOD_NS);
	atomic_store_explicit(&t->stop, 1, memory_order_release);
	pthread_join(th, NULL);
	double secs = (double)(now_ns() - start) / 1e9;

	/* The worst call of each publish's window; window 0 is before any. */
	double win[TAIL_MAX_PUB];
	int nwin = 0;
	for (int i = 1; i <= published; i++)
		win[nwin++] = (double)t->win_max[i] / 1e3;
	double p50 = hist_pctl(t->hist, t->calls, 0.50);
	json_object_set_new(out, "flags", json_integer((json_int_t)nflags));
	json_object_set_new(out, "regexes", json_integer((json_int_t)(nregex ? nregex + 1 : 1)));
	json_object_set_new(out, "snapshot_bytes", json_integer((json_int_t)snap.size));
	json_object_set_new(out, "max_us", jnum((double)t->max_ns / 1e3, 2));
	json_object_set_new(out, "p9999_us", jnum(hist_pctl(t->hist, t->calls, 0.9999) / 1e3, 3));
	json_object_set_new(out, "p99_us", jnum(hist_pctl(t->hist, t->calls, 0.99) / 1e3, 3));
	json_object_set_new(out, "over_100us", json_integer((json_int_t)t->over_100us));
	json_object_set_new(out, "over_1ms", json_integer((json_int_t)t->over_1ms));
	json_object_set_new(out, "publishes", json_integer(t->seen));
	json_object_set_new(out, "published", json_integer(published));
	json_object_set_new(out, "calls", json_integer((json_int_t)t->calls));
	json_object_set_new(out, "own_eval_median_us", jnum(p50 / 1e3, 4));
	json_object_set_new(out, "worst_per_publish_median_us", jnum(median(win, (size_t)nwin), 2));
	json_object_set_new(out, "over_1ms_per_publish",
			    jnum(published ? (double)t->over_1ms / published : NAN, 3));
	json_object_set_new(out, "limit_us", jnum(100 + p50 / 1e3, 3));
	json_object_set_new(out, "clock_overhead_ns", json_integer((json_int_t)t->overhead_ns));
	json_object_set_new(out, "publish_call_ms", jnum(median(pub_ms, (size_t)published), 3));
	json_object_set_new(out, "seconds", jnum(secs, 2));
	json_object_set_new(out, "unexpected", json_integer((json_int_t)t->unexpected));
	ok = pub_ok;
	if (t->final_generation != e->writer.generation) {
		bench_fail(e, "publish_tail: %s: the worker serves generation %llu, the writer "
			      "published %llu", name, (unsigned long long)t->final_generation,
			   (unsigned long long)e->writer.generation);
		ok = false;
	}
	if (t->unexpected) {
		bench_fail(e, "publish_tail: %s: %llu calls of %s gave false", name,
			   (unsigned long long)t->unexpected, K_SIMPLE);
		ok = false;
	}
out:
	if (t)
		free(t->hist);
	free(t);
	wc_snapshot_free(&snap);
	wc_errors_free(&errs);
	return ok;
}

bool tail_run(bench_env *e)
{
	if (!bench_selected(e->opt, "publish_tail"))
		return true;
	json_t *out = json_object();
	json_object_set_new(e->out, "publish_tail", out);
	bool ok = true;
	if (!e->opt->quick && !bench_stop) {
		json_t *d = json_object();
		json_object_set_new(out, "100000", d);
		ok &= tail_doc(e, "100000", 100000, 0, d);
	}
	if (!bench_stop) {
		json_t *d = json_object();
		json_object_set_new(out, "10000_regex", d);
		ok &= tail_doc(e, "10000_regex", 10000, TAIL_REGEXES, d);
	}
	/* Leave the run's own document published, as the store began. */
	char err[512];
	if (!bench_stop &&
	    shm_writer_publish(&e->writer, e->snap.bytes, e->snap.size, err, sizeof err)) {
		bench_fail(e, "publish_tail: republishing the run's document: %s", err);
		ok = false;
	}
	return ok;
}
