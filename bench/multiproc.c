/*
 * bench/multiproc.c - 1, 2, 4 and 8 reader processes evaluating the
 * rollout case (store-level flagshm_bool, ids cycling) at the same time.
 *
 * The children are forked after this process opened the store, the way a
 * pre-fork server uses flagshm. They report ready, wait for one shared
 * start flag, run for the run's time by their own clock, and write their
 * count and elapsed time into anonymous shared memory. Aggregate
 * decisions/s is the sum over processes of count / elapsed; scaling is
 * that over the single-process figure. On a machine with fewer cores than
 * processes the processes share the cores, and scaling stops at the core
 * count; the output states the core count.
 */
#include "bench.h"

#include <sched.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define MP_MAX 8
#define MP_BATCH 1000

typedef struct mp_shared {
	_Atomic int ready;
	_Atomic int go;
	struct {
		uint64_t count;
		int64_t ns;
	} r[MP_MAX];
} mp_shared;

static int mp_child(bench_env *e, void *arg, int idx)
{
	mp_shared *sh = arg;
	int64_t span = (int64_t)(e->opt->run_seconds * 1e9);
	/* Each starts at another id, as independent workers would. */
	e->k = (unsigned)(idx * (BENCH_NIDS / MP_MAX));
	cases_rollout_loop(e, MP_BATCH); /* touch the pages before the start */
	atomic_fetch_add_explicit(&sh->ready, 1, memory_order_release);
	int64_t limit = now_ns() + 60000000000LL;
	while (!atomic_load_explicit(&sh->go, memory_order_acquire)) {
		if (bench_stop || now_ns() > limit)
			return 2;
		sched_yield();
	}
	uint64_t n = 0, sink = 0;
	int64_t t0 = now_ns(), t;
	do {
		sink += cases_rollout_loop(e, MP_BATCH);
		n += MP_BATCH;
		t = now_ns();
	} while (t - t0 < span && !bench_stop);
	sh->r[idx].count = n;
	sh->r[idx].ns = t - t0;
	return sink == UINT64_MAX; /* keeps sink; never true */
}

/* One run with P processes: aggregate decisions/s, or -1. */
static double mp_once(bench_env *e, mp_shared *sh, int p, double *per_proc_ns)
{
	memset(sh, 0, sizeof *sh);
	for (int i = 0; i < p; i++)
		if (procs_fork(e, mp_child, sh, i) < 0) {
			procs_kill_all();
			return -1;
		}
	int64_t limit = now_ns() + 60000000000LL;
	while (atomic_load_explicit(&sh->ready, memory_order_acquire) < p) {
		if (bench_stop || now_ns() > limit) {
			procs_kill_all();
			if (!bench_stop)
				bench_fail(e, "multiprocess: children not ready after 60 s");
			return -1;
		}
		usleep(200);
	}
	atomic_store_explicit(&sh->go, 1, memory_order_release);
	int bad = procs_wait_all(now_ns() + (int64_t)(e->opt->run_seconds * 1e9) + 10000000000LL);
	if (bad) {
		if (!bench_stop)
			bench_fail(e, "multiprocess: %d of %d children failed", bad, p);
		return -1;
	}
	double agg = 0, per = 0;
	for (int i = 0; i < p; i++) {
		if (!sh->r[i].ns)
			return -1;
		agg += (double)sh->r[i].count * 1e9 / (double)sh->r[i].ns;
		per += (double)sh->r[i].ns / (double)sh->r[i].count;
	}
	*per_proc_ns = per / p;
	return agg;
}

bool multiproc_run(bench_env *e)
{
	if (!bench_selected(e->opt, "multiprocess"))
		return true;
	static const int procs[] = { 1, 2, 4, 8 };
	mp_shared *sh = procs_shared(sizeof *sh);
	if (!sh) {
		bench_fail(e, "multiprocess: cannot map shared memory");
		return false;
	}
	json_t *out = json_object();
	json_object_set_new(out, "flag", json_string(K_ROLLOUT));
	json_object_set_new(out, "cpus", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
	json_object_set_new(e->out, "multiprocess", out);
	double base = 0;
	bool ok = true;
	for (size_t i = 0; i < sizeof procs / sizeof procs[0] && !bench_stop; i++) {
		int p = procs[i];
		bench_note("multiprocess: %d reader process%s", p, p == 1 ? "" : "es");
		double agg[64], per[64];
		int n = 0;
		for (int r = 0; r < e->opt->runs && r < 64 && !bench_stop; r++) {
			double a = mp_once(e, sh, p, &per[n]);
			if (a < 0) {
				ok = false;
				break;
			}
			agg[n++] = a;
		}
		if (!n)
			break;
		double lo = min_d(agg, (size_t)n), hi = max_d(agg, (size_t)n);
		double m = median(agg, (size_t)n);
		if (p == 1)
			base = m;
		char key[8];
		snprintf(key, sizeof key, "%d", p);
		json_object_set_new(out, key,
				    json_pack("{s:o,s:o,s:o,s:o,s:o}", "decisions_per_s",
					      jnum(m, 0), "min", jnum(lo, 0), "max", jnum(hi, 0),
					      "ns_per_eval_per_process", jnum(median(per, (size_t)n), 2),
					      "scaling", base > 0 ? jnum(m / base, 2) : json_null()));
	}
	procs_unshared(sh, sizeof *sh);
	return ok;
}
