/*
 * bench/propagation.c - from a publish to the moment each of N reader
 * processes (--readers, default min(cores, 8)) first sees the new
 * generation.
 *
 * The readers are forked after this process opened the store. Each spins:
 * flagshm_view_acquire, read the view's generation, flagshm_view_release
 * (the check every evaluation makes, plus the remap when the generation
 * moved), then sched_yield(), so that N spinning readers on fewer cores
 * still each get to check every few microseconds, as busy workers that
 * evaluate flags would. When a reader first sees generation G it records
 * CLOCK_MONOTONIC (one clock for all processes of the host) into shared
 * memory.
 *
 * The writer (this process) publishes the precompiled snapshot of the run
 * (--flags flags) again and again: it waits until every reader has seen
 * the previous generation, reads the clock, calls shm_writer_publish, and
 * reads the clock again when it returns. What is reported:
 *  - propagation: reader's first sight - the instant before the call to
 *    shm_writer_publish. This includes the whole publish (create the
 *    object, write and read back the snapshot, then the release store of
 *    the generation) and the reader's remap (open, mmap, validate);
 *  - after_return: reader's first sight - the instant the call returned
 *    (negative when the reader saw it before the writer had unlinked the
 *    old generation and returned);
 *  - publish_call: how long shm_writer_publish took;
 *  - reader_remap: how long the reader's check that first saw G took
 *    (flagshm_view_acquire mapping and validating G, and release).
 */
#include "bench.h"

#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

/* Per publish, for all readers to see it: 30 s, plus 50 ms per MB each
 * reader may have to map and check (several readers share the cores). Only
 * a guard against a reader that never sees it: on a loaded machine a reader
 * may not run for a second, and that is a slow figure, not a failure. */
#define PROP_WAIT_NS 30000000000LL
#define PROP_WAIT_NS_PER_MB_READER 50000000LL

typedef struct prop_shared {
	_Atomic int ready;
	_Atomic int stop;
	uint64_t base; /* generation before the first publish */
	int npub;
	int64_t deadline; /* readers give up then, whatever happens */
	int nreaders;
	_Atomic uint64_t seen[PROCS_MAX]; /* last generation each has seen */
	int64_t *remap_ns;		     /* [reader * npub + publish], in this mapping */
	int64_t seen_ns[];		     /* [reader * npub + publish] */
} prop_shared;

static int prop_reader(bench_env *e, void *arg, int idx)
{
	prop_shared *sh = arg;
	int64_t poll = e->opt->poll_us * 1000;
	struct timespec poll_ts = { poll / 1000000000, poll % 1000000000 };
	if (poll)
		prctl(PR_SET_TIMERSLACK, 1UL); /* wake when asked, not up to 50 us later */
	flagshm_view v;
	flagshm_view_acquire(e->store, &v);
	uint64_t last = v.generation;
	flagshm_view_release(&v);
	atomic_store_explicit(&sh->seen[idx], last, memory_order_release);
	atomic_fetch_add_explicit(&sh->ready, 1, memory_order_release);
	while (!atomic_load_explicit(&sh->stop, memory_order_acquire) && !bench_stop) {
		int64_t t0 = now_ns();
		flagshm_view_acquire(e->store, &v);
		uint64_t g = v.generation;
		flagshm_view_release(&v);
		if (g != last) {
			int64_t t = now_ns();
			if (g > sh->base && g - sh->base <= (uint64_t)sh->npub) {
				size_t at = (size_t)idx * (size_t)sh->npub + (g - sh->base - 1);
				sh->seen_ns[at] = t;
				/* This check's acquire mapped and validated G. */
				sh->remap_ns[at] = t - t0;
			}
			/* Release: the writer reads seen_ns after it sees this. */
			atomic_store_explicit(&sh->seen[idx], g, memory_order_release);
			last = g;
		} else if (now_ns() > sh->deadline) {
			return 2;
		}
		if (poll)
			nanosleep(&poll_ts, NULL);
		else
			sched_yield();
	}
	return 0;
}

/* Wait until every reader has seen generation G; false after WAIT ns. */
static bool wait_seen(prop_shared *sh, uint64_t g, int64_t wait)
{
	int64_t limit = now_ns() + wait;
	for (;;) {
		int n = 0;
		for (int r = 0; r < sh->nreaders; r++)
			n += atomic_load_explicit(&sh->seen[r], memory_order_acquire) >= g;
		if (n == sh->nreaders)
			return true;
		if (bench_stop || now_ns() > limit)
			return false;
		/* Not measured: leave the CPUs to the readers. */
		struct timespec ts = { 0, 20000 };
		nanosleep(&ts, NULL);
	}
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of N doubles (sorts them). */
static double pctl_d(double *v, size_t n, double p)
{
	if (!n)
		return NAN;
	qsort(v, n, sizeof *v, cmp_d);
	size_t r = (size_t)ceil(p * (double)n);
	r = r < 1 ? 1 : r > n ? n : r;
	return v[r - 1];
}

static json_t *dist(double *v, size_t n)
{
	double p50 = pctl_d(v, n, 0.50), p99 = pctl_d(v, n, 0.99);
	return json_pack("{s:o,s:o,s:o,s:o}", "p50", jnum(p50, 2), "p99", jnum(p99, 2), "min",
			 jnum(n ? v[0] : NAN, 2), "max", jnum(n ? v[n - 1] : NAN, 2));
}

bool propagation_run(bench_env *e)
{
	if (!bench_selected(e->opt, "propagation"))
		return true;
	int npub = e->opt->prop_publishes;
	const int nreaders = e->opt->readers;
	size_t shsize = sizeof(prop_shared) + 2 * (size_t)nreaders * (size_t)npub * sizeof(int64_t);
	prop_shared *sh = procs_shared(shsize);
	int64_t *t_call = calloc((size_t)npub, sizeof *t_call);
	int64_t *t_ret = calloc((size_t)npub, sizeof *t_ret);
	size_t npairs = (size_t)nreaders * (size_t)npub;
	double *lat = calloc(npairs, sizeof *lat), *after = calloc(npairs, sizeof *after);
	double *call = calloc((size_t)npub, sizeof *call), *remap = calloc(npairs, sizeof *remap);
	bool ok = false;
	char err[512];
	if (!sh || !t_call || !t_ret || !lat || !after || !call || !remap) {
		bench_fail(e, "propagation: out of memory");
		goto out;
	}
	bench_note("propagation: %d publishes, %d reader processes", npub, nreaders);
	sh->base = e->writer.generation;
	sh->remap_ns = sh->seen_ns + npairs;
	sh->npub = npub;
	sh->nreaders = nreaders;
	int64_t wait = PROP_WAIT_NS + (int64_t)(e->snap.size >> 20) * nreaders *
					      PROP_WAIT_NS_PER_MB_READER;
	/* Only a guard for readers whose parent is stuck (a dead parent kills
	 * them): generous, as a 25 MB snapshot remapped by N readers on fewer
	 * cores may take tens of ms a publish. */
	sh->deadline = now_ns() + 60000000000LL + (int64_t)npub * 200000000LL;
	for (int r = 0; r < nreaders; r++)
		if (procs_fork(e, prop_reader, sh, r) < 0)
			goto out;
	int64_t limit = now_ns() + 60000000000LL;
	while (atomic_load_explicit(&sh->ready, memory_order_acquire) < nreaders) {
		if (bench_stop || now_ns() > limit) {
			if (!bench_stop)
				bench_fail(e, "propagation: readers not ready after 60 s");
			goto out;
		}
		usleep(200);
	}
	if (!wait_seen(sh, sh->base, wait)) {
		bench_fail(e, "propagation: readers do not see generation %llu",
			   (unsigned long long)sh->base);
		goto out;
	}
	int stalls = 0, published = 0;
	for (int i = 0; i < npub && !bench_stop; i++) {
		if (i && !wait_seen(sh, sh->base + (uint64_t)i, wait))
			stalls++;
		t_call[i] = now_ns();
		int rc = shm_writer_publish(&e->writer, e->snap.bytes, e->snap.size, err, sizeof err);
		t_ret[i] = now_ns();
		if (rc) {
			bench_fail(e, "propagation: publish %d: %s", i + 1, err);
			goto out;
		}
		published++;
	}
	if (published && !wait_seen(sh, sh->base + (uint64_t)published, wait))
		stalls++;
	atomic_store_explicit(&sh->stop, 1, memory_order_release);
	int bad = procs_wait_all(now_ns() + 60000000000LL);
	if (bad && !bench_stop)
		bench_fail(e, "propagation: %d reader processes failed", bad);

	size_t n = 0, missed = 0;
	for (int r = 0; r < nreaders; r++)
		for (int i = 0; i < published; i++) {
			int64_t s = sh->seen_ns[(size_t)r * (size_t)npub + (size_t)i];
			if (!s) {
				missed++;
				continue;
			}
			lat[n] = (double)(s - t_call[i]) / 1e3;
			after[n] = (double)(s - t_ret[i]) / 1e3;
			remap[n] = (double)sh->remap_ns[(size_t)r * (size_t)npub + (size_t)i] / 1e3;
			n++;
		}
	for (int i = 0; i < published; i++)
		call[i] = (double)(t_ret[i] - t_call[i]) / 1e3;
	json_t *d = dist(lat, n);
	json_object_set_new(d, "readers", json_integer(nreaders));
	json_object_set_new(d, "cpus", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
	json_object_set_new(d, "flags", json_integer((json_int_t)e->opt->nflags));
	json_object_set_new(d, "publishes", json_integer(published));
	json_object_set_new(d, "pairs", json_integer((json_int_t)n));
	json_object_set_new(d, "missed_pairs", json_integer((json_int_t)missed));
	json_object_set_new(d, "stalls", json_integer(stalls));
	json_object_set_new(d, "snapshot_bytes", json_integer((json_int_t)e->snap.size));
	json_object_set_new(d, "after_return_us", dist(after, n));
	json_object_set_new(d, "publish_call_us", dist(call, (size_t)published));
	json_object_set_new(d, "reader_remap_us", dist(remap, n));
	json_object_set_new(d, "reader_poll_us", json_integer(e->opt->poll_us));
	json_object_set_new(d, "measured",
			    json_string(e->opt->poll_us
					? "reader's first sight - instant before shm_writer_publish "
					  "(a precompiled snapshot); readers check with view "
					  "acquire/release, then sleep reader_poll_us"
					: "reader's first sight - instant before shm_writer_publish "
					  "(a precompiled snapshot); readers spin on view "
					  "acquire/release + sched_yield"));
	json_object_set_new(e->out, "propagation_us", d);
	ok = !bad && !missed && !stalls;
	if (missed || stalls)
		bench_fail(e, "propagation: %zu (publish, reader) pairs never seen, %d stalls",
			   missed, stalls);
out:
	if (sh)
		atomic_store_explicit(&sh->stop, 1, memory_order_release);
	procs_kill_all(); /* on the error paths; nothing left otherwise */
	procs_unshared(sh, shsize);
	free(t_call), free(t_ret), free(lat), free(after), free(call), free(remap);
	return ok;
}
