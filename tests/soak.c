/*
 * tests/soak.c - one writer republishing continuously, many reader
 * processes and threads evaluating under it: load and concurrency.
 *
 *   soak [--seconds N] [--long] [--readers P] [--threads T] [--flags K]
 *        [--reader-nice N]
 *
 * The writer (this process) compiles and publishes a new generation as fast
 * as it can, through the same path as flagshm-writer (wc_load_buffer,
 * wc_compile, shm_writer_publish). Every generation changes every flag, and
 * every value encodes its generation G:
 *   nI  number          G
 *   sI  string          "g<G>-<I>"
 *   jI  JSON            {"g":G,"i":I}
 *   bI  boolean         G is even (defaultValue), odd (offValue)
 *   rI  number, rules   10G+1 (rule), 10G+2/10G+3 (split), 10G+4 (rollout), 10G+5 (off)
 *   p   number          G, behind a prerequisite on "on"
 * P reader processes (default 8) of T threads (default 4) run "requests":
 * acquire a view, evaluate a batch of flags with a varying context, check
 * that every value decodes to the view's generation, that the result's
 * generation is the view's, and that the thread's generations never go
 * backwards; one request in 64 holds its view across a few milliseconds of
 * publishing and checks that nothing it read changed. Readers count
 * evaluations into shared counters.
 *
 * Reader processes run at nice 10 (--reader-nice) so that the writer is
 * not starved on a small machine.
 *
 * Bounded: --seconds (default 30) of publishing, then the readers are told
 * to stop and are reaped within 10 s or killed. --long runs 4 hours unless
 * --seconds is given, printing progress every 10 s. Prints publishes,
 * evaluations and errors; exits 0 only when errors are 0 and every reader
 * thread saw the generation move.
 */
#include "compile.h"
#include "flagshm.h"
#include "shm.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_READERS 64
#define MAX_THREADS 64
#define ERR_SHOW 5 /* error lines printed per thread */

typedef struct shared {
	_Atomic int stop;
	_Atomic int ready;
	_Atomic uint64_t evals;
	_Atomic uint64_t views;
	_Atomic uint64_t held;	      /* views held while the generation moved on */
	_Atomic uint64_t errors;
	_Atomic uint64_t stalled;     /* threads that never saw a second generation */
	_Atomic uint64_t max_gen;
	_Atomic uint64_t gens_seen;   /* sum over threads of distinct generations */
} shared;

static struct {
	double seconds;
	bool longrun;
	int readers, threads, nflags, nice;
	char store[SHM_STORE_NAME_MAX + 1];
} opt = { .seconds = 30, .readers = 8, .threads = 4, .nflags = 16, .nice = 10 };

static shared *sh;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------- writer */

/* The document of generation G (K flags of each kind). */
static size_t build_doc(char *buf, size_t cap, uint64_t g, int k)
{
	size_t o = 0;
#define OUT(...) (o += (size_t)snprintf(buf + o, o < cap ? cap - o : 0, __VA_ARGS__))
	unsigned long long G = (unsigned long long)g;
	OUT("{\"formatVersion\":1,\"segments\":{\"eu\":{\"conditions\":[{\"attribute\":\"country\","
	    "\"operator\":\"in\",\"value\":[\"DE\",\"FR\"]}]}},\"flags\":[");
	OUT("{\"key\":\"on\",\"defaultValue\":true},");
	OUT("{\"key\":\"p\",\"defaultValue\":%llu,\"offValue\":0,"
	    "\"prerequisites\":[{\"key\":\"on\",\"value\":true}]},", G);
	for (int i = 0; i < k; i++) {
		OUT("{\"key\":\"n%d\",\"defaultValue\":%llu,\"offValue\":%llu},", i, G, G);
		OUT("{\"key\":\"s%d\",\"defaultValue\":\"g%llu-%d\",\"offValue\":\"off\"},", i, G, i);
		OUT("{\"key\":\"j%d\",\"defaultValue\":{\"g\":%llu,\"i\":%d},\"offValue\":{}},", i, G,
		    i);
		OUT("{\"key\":\"b%d\",\"defaultValue\":%s,\"offValue\":%s},", i,
		    g % 2 ? "false" : "true", g % 2 ? "true" : "false");
		OUT("{\"key\":\"r%d\",\"defaultValue\":%llu,\"offValue\":%llu,"
		    "\"rolloutPercentage\":50,\"salt\":\"r%d-%llu\",\"targeting\":["
		    "{\"id\":\"eu\",\"priority\":1,\"segments\":[\"eu\"],\"variation\":%llu},"
		    "{\"id\":\"tier\",\"priority\":2,\"conditions\":[{\"attribute\":\"tier\","
		    "\"operator\":\"equals\",\"value\":\"beta\"}],\"split\":["
		    "{\"value\":%llu,\"weight\":50},{\"value\":%llu,\"weight\":50}]}]},",
		    i, G * 10 + 4, G * 10 + 5, i, G, G * 10 + 1, G * 10 + 2, G * 10 + 3);
	}
	o--; /* the last comma */
	OUT("]}");
#undef OUT
	return o;
}

static int compile_gen(uint64_t g, char *buf, size_t cap, wc_snapshot *out)
{
	wc_limits lim = wc_limits_default();
	wc_errors errs = { 0 };
	json_t *doc = NULL;
	size_t len = build_doc(buf, cap, g, opt.nflags);
	int rc = len < cap ? 0 : -1;

	if (rc == 0)
		rc = wc_load_buffer(buf, len, "soak.json", &lim, &doc, &errs);
	if (rc == 0)
		rc = wc_compile(doc, NULL, "soak.json", &lim, out, &errs);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "soak: %s\n", errs.msg[i]);
	wc_errors_free(&errs);
	json_decref(doc);
	return rc;
}

/* ------------------------------------------------------------ readers */

typedef struct rthread {
	pthread_t tid;
	flagshm_store *store;
	int proc, idx;
	uint64_t rng;
	uint64_t evals, views, held, errors, gens, last_gen, first_gen;
	uint64_t printed, unavailable_before_first, unavailable_after_first;
} rthread;

static uint64_t rnd(rthread *t)
{
	t->rng ^= t->rng << 13;
	t->rng ^= t->rng >> 7;
	t->rng ^= t->rng << 17;
	return t->rng;
}

__attribute__((format(printf, 2, 3))) static void rerr(rthread *t, const char *fmt, ...)
{
	t->errors++;
	if (t->printed++ < ERR_SHOW) {
		char line[512];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(line, sizeof line, fmt, ap);
		va_end(ap);
		fprintf(stderr, "soak: reader %d.%d: %s\n", t->proc, t->idx, line);
	}
}

/* What flag KIND I must give in generation G (number flags), given the
 * result's reason; -1 when unknown. */
static bool number_ok(char kind, const flagshm_result *r, uint64_t g)
{
	double want;
	if (kind == 'n' || kind == 'p')
		want = (double)g;
	else {
		double base = (double)g * 10;
		switch (r->reason) {
		case FLAGSHM_REASON_RULE_MATCH: want = base + 1; break;
		case FLAGSHM_REASON_SPLIT:
			return r->value.num == base + 2 || r->value.num == base + 3;
		case FLAGSHM_REASON_DEFAULT_ROLLOUT: want = base + 4; break;
		case FLAGSHM_REASON_DEFAULT_OFF: want = base + 5; break;
		default: return false;
		}
	}
	return r->value.num == want;
}

/* Evaluate flag KIND I in V and check it against V's generation. Returns
 * true when it is right; on success *sig gets a value to compare later. */
static bool check_flag(rthread *t, const flagshm_view *v, char kind, int i,
		       const flagshm_ctx *ctx, double *sig, const char **str)
{
	char key[16];
	flagshm_result r;
	uint64_t g = v->generation;

	if (kind == 'p')
		snprintf(key, sizeof key, "p");
	else
		snprintf(key, sizeof key, "%c%d", kind, i);
	int rc = flagshm_evaluate(v, key, ctx, &r);
	t->evals++;
	if (rc != 0) {
		rerr(t, "generation %" PRIu64 ": %s: rc %d (%s), reason %s, code %s", g, key, rc,
		     flagshm_strerror(rc), flagshm_reason_name(r.reason),
		     flagshm_error_code_name(r.error_code));
		return false;
	}
	if (r.generation != g) {
		rerr(t, "%s: result generation %" PRIu64 " in a view of %" PRIu64, key, r.generation, g);
		return false;
	}
	char want[64];
	*str = NULL;
	switch (kind) {
	case 'n':
	case 'p':
	case 'r':
		if (r.type != FLAGSHM_TYPE_NUMBER || !number_ok(kind, &r, g)) {
			rerr(t, "%s: value %.17g (reason %s) in a view of generation %" PRIu64, key,
			     r.value.num, flagshm_reason_name(r.reason), g);
			return false;
		}
		*sig = r.value.num;
		return true;
	case 'b':
		if (r.type != FLAGSHM_TYPE_BOOL || r.value.b != (g % 2 == 0)) {
			rerr(t, "%s: value %d in a view of generation %" PRIu64, key, (int)r.value.b, g);
			return false;
		}
		*sig = r.value.b;
		return true;
	case 's':
		snprintf(want, sizeof want, "g%" PRIu64 "-%d", g, i);
		break;
	default: /* 'j' */
		snprintf(want, sizeof want, "{\"g\":%" PRIu64 ",\"i\":%d}", g, i);
		break;
	}
	if (!r.value.str.ptr || strcmp(r.value.str.ptr, want) != 0 ||
	    r.value.str.len != strlen(want)) {
		rerr(t, "%s: value '%s' in a view of generation %" PRIu64 " (want '%s')", key,
		     r.value.str.ptr ? r.value.str.ptr : "(null)", g, want);
		return false;
	}
	*str = r.value.str.ptr;
	*sig = (double)r.value.str.len;
	return true;
}

#define BATCH 12

static void request(rthread *t)
{
	static const char kinds[] = "nsjbrp";
	static const char *const countries[] = { "DE", "US", "FR", "JP" };
	static const char *const tiers[] = { "beta", "ga" };
	char uid[32];
	flagshm_ctx ctx;
	flagshm_view v;

	flagshm_ctx_init(&ctx);
	snprintf(uid, sizeof uid, "u-%" PRIu64, rnd(t) % 100000);
	flagshm_ctx_string(&ctx, "userId", uid);
	flagshm_ctx_string(&ctx, "country", countries[rnd(t) % 4]);
	flagshm_ctx_string(&ctx, "tier", tiers[rnd(t) % 2]);

	if (flagshm_view_acquire(t->store, &v) != 0) {
		rerr(t, "flagshm_view_acquire failed");
		return;
	}
	t->views++;
	uint64_t g = v.generation;
	if (g == 0) {
		if (t->first_gen)
			t->unavailable_after_first++;
		else
			t->unavailable_before_first++;
		rerr(t, "a view with nothing published (generation 0)");
		flagshm_view_release(&v);
		return;
	}
	if (g < t->last_gen)
		rerr(t, "generation went backwards: %" PRIu64 " after %" PRIu64, g, t->last_gen);
	if (g != t->last_gen) {
		t->gens++;
		if (!t->first_gen)
			t->first_gen = g;
	}
	t->last_gen = g;

	char kind[BATCH];
	int idx[BATCH];
	double sig[BATCH];
	const char *str[BATCH];
	bool ok[BATCH];
	for (int b = 0; b < BATCH; b++) {
		kind[b] = kinds[rnd(t) % (sizeof kinds - 1)];
		idx[b] = (int)(rnd(t) % (uint64_t)opt.nflags);
		ok[b] = check_flag(t, &v, kind[b], idx[b], &ctx, &sig[b], &str[b]);
	}
	/* Hold one request in 64 across publishes: the view must still read
	 * exactly what it read, and its strings must still be there. */
	if (rnd(t) % 64 == 0) {
		struct timespec ts = { 0, 2000000 };
		nanosleep(&ts, NULL);
		uint64_t cur = atomic_load_explicit(&sh->max_gen, memory_order_relaxed);
		if (cur > g)
			t->held++;
		for (int b = 0; b < BATCH; b++) {
			double s2;
			const char *str2;
			char snap[64] = "";
			if (!ok[b])
				continue;
			if (str[b])
				snprintf(snap, sizeof snap, "%s", str[b]); /* still mapped? */
			if (!check_flag(t, &v, kind[b], idx[b], &ctx, &s2, &str2))
				continue;
			if (s2 != sig[b] || (str[b] && strcmp(snap, str2) != 0))
				rerr(t, "a held view of generation %" PRIu64 " changed: %c%d", g,
				     kind[b], idx[b]);
		}
	}
	flagshm_view_release(&v);
}

static void flush_counts(rthread *t)
{
	atomic_fetch_add(&sh->evals, t->evals);
	atomic_fetch_add(&sh->views, t->views);
	atomic_fetch_add(&sh->held, t->held);
	atomic_fetch_add(&sh->errors, t->errors);
	t->evals = t->views = t->held = t->errors = 0;
}

static void *reader_thread(void *arg)
{
	rthread *t = arg;
	unsigned n = 0;
	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		request(t);
		if (++n % 256 == 0)
			flush_counts(t);
	}
	flush_counts(t);
	atomic_fetch_add(&sh->gens_seen, t->gens);
	if (t->unavailable_before_first || t->unavailable_after_first)
		fprintf(stderr, "soak: reader %d.%d: %" PRIu64 " views of generation 0 before its "
			"first mapped generation, %" PRIu64 " after\n", t->proc, t->idx,
			t->unavailable_before_first, t->unavailable_after_first);
	if (t->gens < 2) {
		fprintf(stderr, "soak: reader %d.%d saw only %" PRIu64 " generation(s)\n", t->proc,
			t->idx, t->gens);
		atomic_fetch_add(&sh->stalled, 1);
	}
	return NULL;
}

static void log_cb(void *ud, const char *msg)
{
	int *proc = ud;
	/* Remaps are expected; anything refused is an error. */
	if (strstr(msg, "refused")) {
		fprintf(stderr, "soak: reader %d: %s\n", *proc, msg);
		atomic_fetch_add(&sh->errors, 1);
	}
}

static int reader_main(int proc)
{
	flagshm_store *s;
	/* Readers run at a lower priority than the writer, as a host's
	 * workers would next to its one writer daemon: on a small CI machine
	 * 32 busy reader threads would otherwise starve the writer. */
	if (opt.nice && setpriority(PRIO_PROCESS, 0, opt.nice) != 0)
		perror("soak: setpriority");
	char err[256];
	int rc = flagshm_open_ex(opt.store, log_cb, &proc, &s, err, sizeof err);
	if (rc) {
		fprintf(stderr, "soak: reader %d: flagshm_open: %s\n", proc, err);
		atomic_fetch_add(&sh->errors, 1);
		atomic_fetch_add(&sh->ready, 1);
		return 1;
	}
	rthread th[MAX_THREADS];
	memset(th, 0, sizeof th);
	for (int i = 0; i < opt.threads; i++) {
		th[i].store = s;
		th[i].proc = proc;
		th[i].idx = i;
		th[i].rng = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)proc << 32 | (uint64_t)(i + 1));
		if (pthread_create(&th[i].tid, NULL, reader_thread, &th[i]) != 0) {
			fprintf(stderr, "soak: reader %d: pthread_create failed\n", proc);
			atomic_fetch_add(&sh->errors, 1);
			opt.threads = i;
			break;
		}
	}
	atomic_fetch_add(&sh->ready, 1);
	for (int i = 0; i < opt.threads; i++)
		pthread_join(th[i].tid, NULL);
	flagshm_close(&s);
	return 0;
}

/* --------------------------------------------------------------- main */

static void usage(void)
{
	fprintf(stderr, "usage: soak [--seconds N] [--long] [--readers P] [--threads T] [--flags K]\n"
			"            [--reader-nice N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	bool seconds_given = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--long")) {
			opt.longrun = true;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--seconds"))
			opt.seconds = atof(v), seconds_given = true;
		else if (!strcmp(a, "--readers"))
			opt.readers = atoi(v);
		else if (!strcmp(a, "--threads"))
			opt.threads = atoi(v);
		else if (!strcmp(a, "--flags"))
			opt.nflags = atoi(v);
		else if (!strcmp(a, "--reader-nice"))
			opt.nice = atoi(v);
		else
			usage();
	}
	if (opt.longrun && !seconds_given)
		opt.seconds = 4 * 3600;
	if (opt.seconds <= 0 || opt.readers < 1 || opt.readers > MAX_READERS || opt.threads < 1 ||
	    opt.threads > MAX_THREADS || opt.nflags < 1 || opt.nflags > 1000)
		usage();
	snprintf(opt.store, sizeof opt.store, "soak-%d", (int)getpid());

	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("soak: mmap");
		return 1;
	}
	memset(sh, 0, sizeof *sh);

	shm_writer w;
	char err[512];
	int rc = shm_writer_open(&w, opt.store, err, sizeof err);
	if (rc) {
		fprintf(stderr, "soak: shm_writer_open: %s\n", err);
		return 1;
	}
	size_t cap = (size_t)opt.nflags * 1024 + 4096;
	char *buf = malloc(cap);
	wc_snapshot snap;
	if (!buf || compile_gen(1, buf, cap, &snap) != 0 ||
	    shm_writer_publish(&w, snap.bytes, snap.size, err, sizeof err) != 0) {
		fprintf(stderr, "soak: first publish failed: %s\n", err);
		shm_store_remove(opt.store, NULL, 0);
		return 1;
	}
	size_t snap_bytes = snap.size;
	wc_snapshot_free(&snap);
	atomic_store(&sh->max_gen, w.generation);

	pid_t pids[MAX_READERS];
	for (int p = 0; p < opt.readers; p++) {
		fflush(NULL);
		pids[p] = fork();
		if (pids[p] < 0) {
			perror("soak: fork");
			atomic_store(&sh->stop, 1);
			opt.readers = p;
			break;
		}
		if (pids[p] == 0) {
			/* Not the writer: drop the inherited store-lock descriptor. */
			close(w.lock_fd);
			_exit(reader_main(p));
		}
	}
	/* Readers open and start before the clock does (bounded wait). */
	double t0 = now_s();
	while (atomic_load(&sh->ready) < opt.readers && now_s() - t0 < 10)
		usleep(1000);

	uint64_t publishes = 0, failures = 0;
	double start = now_s(), next_report = start + 10, compile_s = 0;
	while (!atomic_load(&sh->stop) && now_s() - start < opt.seconds) {
		double c0 = now_s();
		if (compile_gen(w.next, buf, cap, &snap) != 0) {
			failures++;
			break;
		}
		compile_s += now_s() - c0;
		if (shm_writer_publish(&w, snap.bytes, snap.size, err, sizeof err) != 0) {
			fprintf(stderr, "soak: publish %" PRIu64 ": %s\n", w.next, err);
			failures++;
			wc_snapshot_free(&snap);
			break;
		}
		wc_snapshot_free(&snap);
		publishes++;
		atomic_store_explicit(&sh->max_gen, w.generation, memory_order_relaxed);
		if (opt.longrun && now_s() >= next_report) {
			next_report += 10;
			printf("soak: %.0f s: generation %" PRIu64 ", evaluations %" PRIu64
			       ", errors %" PRIu64 "\n",
			       now_s() - start, w.generation, atomic_load(&sh->evals),
			       atomic_load(&sh->errors));
			fflush(stdout);
		}
	}
	double elapsed = now_s() - start;
	atomic_store(&sh->stop, 1);

	/* Reap, bounded: a reader that does not stop within 10 s is a failure. */
	int bad_exit = 0;
	double deadline = now_s() + 10;
	for (int p = 0; p < opt.readers; p++) {
		int st;
		pid_t r;
		while ((r = waitpid(pids[p], &st, WNOHANG)) == 0 && now_s() < deadline)
			usleep(2000);
		if (r == 0) {
			fprintf(stderr, "soak: reader %d did not stop; killing it\n", p);
			kill(pids[p], SIGKILL);
			waitpid(pids[p], &st, 0);
			bad_exit++;
		} else if (r < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			if (r > 0 && WIFSIGNALED(st))
				fprintf(stderr, "soak: reader %d died of signal %d\n", p, WTERMSIG(st));
			else
				fprintf(stderr, "soak: reader %d exited with status %d\n", p,
					r > 0 ? WEXITSTATUS(st) : -1);
			bad_exit++;
		}
	}
	uint64_t last = w.generation;
	shm_writer_close(&w);
	shm_store_remove(opt.store, NULL, 0);
	free(buf);

	uint64_t evals = atomic_load(&sh->evals), errors = atomic_load(&sh->errors);
	uint64_t stalled = atomic_load(&sh->stalled);
	unsigned nthreads = (unsigned)(opt.readers * opt.threads);
	printf("soak: %.1f s, %d reader processes x %d threads, %d flags (%zu-byte snapshots)\n",
	       elapsed, opt.readers, opt.threads, 2 + 5 * opt.nflags, snap_bytes);
	printf("soak: publishes %" PRIu64 " (%.0f/s, compile %.0f us each), generations 1..%" PRIu64
	       "\n",
	       publishes, publishes / elapsed, publishes ? compile_s * 1e6 / (double)publishes : 0,
	       last);
	printf("soak: views %" PRIu64 ", evaluations %" PRIu64 " (%.2f M/s), views held across a "
	       "publish %" PRIu64 ", generations seen per thread %.0f on average\n",
	       atomic_load(&sh->views), evals, evals / elapsed / 1e6, atomic_load(&sh->held),
	       nthreads ? (double)atomic_load(&sh->gens_seen) / nthreads : 0.0);
	printf("soak: errors %" PRIu64 " (publish failures %" PRIu64 ", reader exits %d, readers "
	       "that saw no change %" PRIu64 ")\n",
	       errors, failures, bad_exit, stalled);
	bool pass = errors == 0 && failures == 0 && bad_exit == 0 && stalled == 0 && publishes > 0 &&
		    evals > 0;
	printf("soak: %s\n", pass ? "PASS" : "FAIL");
	return pass ? 0 : 1;
}
