/*
 * tests/test_faults.c - the store under faults:
 * writers killed mid-publish and restarted, a stopped reader holding a
 * view, readers killed at random instants, a writer that never comes back,
 * and publishes that fail for lack of room or descriptors. In every case
 * readers keep answering from the last good snapshot, and nothing is left
 * in /dev/shm beyond the documented objects (the control object, the
 * current generation and, right after a publish, the previous one).
 *
 * Each test uses its own store "f<what>-<pid>" and removes it at the end.
 * Every loop is bounded in count and in time.
 */
#include "rel_helpers.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>

#define NVARIANTS 4

/* -------------------------------------------------------------- readers */

/* A reader thread in the test process: views in a loop, each checked to be
 * one whole variant equal to generation % NVARIANTS (when STAMPED), with
 * generations moving only forward. */
typedef struct watcher {
	pthread_t tid;
	flagshm_store *s;
	bool stamped;
	_Atomic int stop;
	_Atomic uint64_t views, errors, last_gen;
	char first_error[256];
} watcher;

static void *watch(void *arg)
{
	watcher *w = arg;
	uint64_t last = 0, n = 0;
	while (!atomic_load(&w->stop) && n < 100000000) {
		flagshm_view v;
		char why[200];
		long var;
		flagshm_view_acquire(w->s, &v);
		const char *bad = NULL;
		if (v.generation == 0)
			bad = "a view with nothing to serve (generation 0)";
		else if (v.generation < last)
			bad = "the generation went backwards";
		else if (rh_view_variant(&v, &var, why, sizeof why) != 0)
			bad = why;
		else if (w->stamped && (uint64_t)var != v.generation % NVARIANTS) {
			snprintf(why, sizeof why, "generation %llu serves variant %ld",
				 (unsigned long long)v.generation, var);
			bad = why;
		}
		if (bad && atomic_fetch_add(&w->errors, 1) == 0)
			snprintf(w->first_error, sizeof w->first_error, "%s", bad);
		last = v.generation;
		atomic_store(&w->last_gen, last);
		flagshm_view_release(&v);
		atomic_fetch_add(&w->views, 1);
		n++;
		if (n % 64 == 0)
			sched_yield();
	}
	return NULL;
}

static void watch_start(watcher *w, const char *store, bool stamped)
{
	char err[256];
	memset(w, 0, sizeof *w);
	w->stamped = stamped;
	int rc = flagshm_open_ex(store, NULL, NULL, &w->s, err, sizeof err);
	cr_assert_eq(rc, 0, "flagshm_open(%s): %s", store, err);
	cr_assert_eq(pthread_create(&w->tid, NULL, watch, w), 0);
}

static void watch_stop(watcher *w)
{
	atomic_store(&w->stop, 1);
	pthread_join(w->tid, NULL);
	flagshm_close(&w->s);
	cr_expect_eq(atomic_load(&w->errors), 0, "readers saw %llu bad views; first: %s",
		     (unsigned long long)atomic_load(&w->errors), w->first_error);
}

/* --------------------------------------------------- variant publishers */

/* Snapshots of variants 0..NVARIANTS-1, compiled once. */
static wc_snapshot variants[NVARIANTS];

static void variants_compile(unsigned pad)
{
	for (unsigned v = 0; v < NVARIANTS; v++)
		rh_compile_variant(v, pad, &variants[v]);
}

static void variants_free(void)
{
	for (unsigned v = 0; v < NVARIANTS; v++)
		wc_snapshot_free(&variants[v]);
}

/* Publish W's next generation with the variant it must carry. */
static int publish_next(shm_writer *w, char *err, size_t n)
{
	const wc_snapshot *s = &variants[w->next % NVARIANTS];
	return shm_writer_publish(w, s->bytes, s->size, err, n);
}

/* Check the store's objects: the control object and at most MAXGENS
 * generations, every one of them <= CUR (none beyond it: no partial). */
static void expect_objects(const char *store, uint64_t cur, int maxgens)
{
	uint64_t g[16];
	bool ctl;
	int n = rh_store_objects(store, &ctl, g, 16);
	cr_expect(ctl, "the control object of %s is gone", store);
	cr_expect(n >= 1 && n <= maxgens, "%d generation objects of %s (expected 1..%d)", n, store,
		  maxgens);
	for (int i = 0; i < n && i < 16; i++)
		cr_expect(g[i] <= cur && g[i] + (uint64_t)maxgens > cur,
			  "leftover generation object %llu (current %llu)", (unsigned long long)g[i],
			  (unsigned long long)cur);
}

static void remove_store(const char *store)
{
	char err[256];
	int rc = shm_store_remove(store, err, sizeof err);
	cr_expect_eq(rc, 0, "remove %s: %s", store, err);
	cr_expect_eq(rh_store_objects(store, NULL, NULL, 0), 0, "objects of %s left after removal",
		     store);
}

static uint64_t store_generation(const char *store)
{
	const fs_ctl *ctl;
	char err[256];
	cr_assert_eq(shm_ctl_map(store, &ctl, err, sizeof err), 0, "%s", err);
	uint64_t g = atomic_load(&ctl->ctl_generation);
	shm_ctl_unmap(ctl);
	return g;
}

/* ------------------------------------------ writer killed mid-publish */

#define KILLS 200

/*
 * A child takes the store (recovering from the previous child), reports the
 * generation it starts from, then publishes variants back to back until it
 * is killed at a random instant. Snapshots are ~1 MB, so a publish takes
 * long enough that most kills land inside one. After each kill: the
 * current generation serves, the next child takes the store at once and
 * publishes above everything seen.
 */
Test(faults, writer_killed_mid_publish_200_times, .timeout = 120)
{
	char store[64];
	char err[512];
	rh_name(store, sizeof store, "fkill");
	variants_compile(16);

	shm_writer w;
	cr_assert_eq(shm_writer_open(&w, store, err, sizeof err), 0, "%s", err);
	cr_assert_eq(publish_next(&w, err, sizeof err), 0, "%s", err);
	shm_writer_close(&w);

	watcher rd;
	watch_start(&rd, store, true);

	unsigned seed = (unsigned)getpid();
	uint64_t cur = 1;
	int partial_left = 0, published_total = 0, took_over = 0;
	int64_t t_end = rh_mono_ms() + 90000;
	for (int k = 0; k < KILLS && rh_mono_ms() < t_end; k++) {
		int p[2];
		cr_assert_eq(pipe(p), 0);
		pid_t pid = fork();
		cr_assert(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			shm_writer cw;
			char e[512];
			uint64_t msg[2] = { 0, 0 };
			int rc = shm_writer_open(&cw, store, e, sizeof e);
			if (rc != 0) {
				fprintf(stderr, "child writer: %s\n", e);
				_exit(3);
			}
			msg[0] = cw.generation;
			msg[1] = atomic_load(&cw.ctl->ctl_generation);
			if (write(p[1], msg, sizeof msg) != sizeof msg)
				_exit(4);
			for (int i = 0; i < 100000; i++) {
				if (publish_next(&cw, e, sizeof e) != 0) {
					fprintf(stderr, "child writer: %s\n", e);
					_exit(5);
				}
			}
			_exit(0);
		}
		close(p[1]);
		uint64_t msg[2];
		ssize_t r = read(p[0], msg, sizeof msg);
		close(p[0]);
		cr_assert_eq(r, (ssize_t)sizeof msg, "writer %d did not take the store", k);
		/* Recovery: the writer starts above every generation seen, at
		 * least the one serving. */
		cr_expect_geq(msg[0], cur, "writer %d starts at %llu, below generation %llu", k,
			      (unsigned long long)msg[0], (unsigned long long)cur);
		cr_expect_eq(msg[1], cur, "writer %d found generation %llu current, expected %llu", k,
			     (unsigned long long)msg[1], (unsigned long long)cur);
		took_over++;
		rh_sleep_us(rand_r(&seed) % 4000);
		kill(pid, SIGKILL);
		int st;
		waitpid(pid, &st, 0);
		cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
			  "writer %d ended before it was killed (status 0x%x)", k, st);

		uint64_t now = store_generation(store);
		cr_expect_geq(now, cur, "the generation went back from %llu to %llu",
			      (unsigned long long)cur, (unsigned long long)now);
		published_total += (int)(now - cur);
		cur = now;
		uint64_t g[16];
		int n = rh_store_objects(store, NULL, g, 16);
		for (int i = 0; i < n && i < 16; i++)
			if (g[i] > cur)
				partial_left++; /* killed between create and make-current */
		cr_expect(n <= 3, "%d generation objects after kill %d", n, k);
	}

	/* The next writer recovers: only the control object and the current
	 * generation stay, and it publishes above everything. */
	cr_assert_eq(shm_writer_open(&w, store, err, sizeof err), 0, "%s", err);
	expect_objects(store, cur, 1);
	cr_assert_eq(publish_next(&w, err, sizeof err), 0, "%s", err);
	cr_expect_gt(w.generation, cur);
	uint64_t final = w.generation;
	shm_writer_close(&w);
	int64_t until = rh_mono_ms() + 30000;
	while (atomic_load(&rd.last_gen) != final && rh_mono_ms() < until)
		rh_sleep_us(1000);
	cr_expect_eq(atomic_load(&rd.last_gen), final, "the reader did not follow the new writer");
	watch_stop(&rd);
	cr_log_info("writer killed %d times: %d generations published, %d kills left a partial "
		    "object for the next writer to remove, reader checked %llu views",
		    took_over, published_total, partial_left, (unsigned long long)rd.views);
	fprintf(stderr, "FIGURE faults.writer_kills=%d generations=%d partial_objects_recovered=%d "
		"views_checked=%llu\n",
		took_over, published_total, partial_left, (unsigned long long)rd.views);
	cr_expect_gt(partial_left, 0, "no kill landed inside a publish: the test proves little");
	variants_free();
	remove_store(store);
}

/* ----------------------------------- the real daemon, killed and restarted */

Test(faults, writer_daemon_killed_and_restarted, .timeout = 120)
{
	char store[64], out[8192];
	rh_name(store, sizeof store, "fdaemon");
	const char *writer = rh_bin("FLAGSHM_WRITER");
	char *doc = rh_variant_doc(0, 4);
	char *path = rh_temp_file(doc, strlen(doc));
	free(doc);
	char *once[] = { (char *)writer, "--store", store, "--source", path, "--once", NULL };
	int64_t t_once = rh_mono_us();
	int rc = rh_run(once, out, sizeof out, 20000);
	/* Kills land anywhere in [0, 2 x the time of a whole --once run]:
	 * start-up, load, compile, publish, or after it. */
	t_once = rh_mono_us() - t_once;
	cr_assert_eq(rc, 0, "flagshm-writer --once: exit %d: %s", rc, out);

	watcher rd;
	watch_start(&rd, store, false);
	unsigned seed = (unsigned)getpid();
	uint64_t cur = store_generation(store);
	int starts = 0, partial_left = 0;
	/* The window starts at 2 x one --once run and widens by half after
	 * every daemon killed before it published, so that on a loaded machine
	 * (a slower start-up than the one measured) kills still land on both
	 * sides of the publish; it narrows again after a daemon that did. */
	uint64_t window_us = (uint64_t)(2 * t_once + 1);
	int64_t t_end = rh_mono_ms() + 60000;
	for (int k = 0; k < 40 && rh_mono_ms() < t_end; k++) {
		/* A new variant for this daemon to publish as it starts. */
		doc = rh_variant_doc((unsigned)(k + 1), 4);
		char *tmp;
		cr_assert(asprintf(&tmp, "%s.tmp", path) > 0);
		FILE *f = fopen(tmp, "w");
		cr_assert_not_null(f);
		fputs(doc, f);
		fclose(f);
		cr_assert_eq(rename(tmp, path), 0);
		free(tmp);
		free(doc);

		char *argv[] = { (char *)writer, "--store", store, "--source", path, NULL };
		int fd = -1;
		pid_t pid = rh_spawn(argv, &fd);
		cr_assert(pid > 0);
		starts++;
		rh_sleep_us(rand_r(&seed) % (unsigned)window_us);
		kill(pid, SIGKILL);
		rh_drain(fd, out, sizeof out, 5000);
		close(fd);
		int st;
		waitpid(pid, &st, 0);
		cr_expect(WIFSIGNALED(st), "daemon %d exited by itself (status 0x%x): %s", k, st, out);
		uint64_t now = store_generation(store);
		cr_expect_geq(now, cur);
		if (now == cur && window_us < 2000000)
			window_us += window_us / 2;
		else if (now > cur && window_us > (uint64_t)(2 * t_once + 1))
			window_us -= window_us / 4; /* keep kills around the publish */
		cur = now;
		uint64_t g[16];
		int n = rh_store_objects(store, NULL, g, 16);
		for (int i = 0; i < n && i < 16; i++)
			if (g[i] > cur)
				partial_left++;
	}
	/* A daemon that runs to completion takes over from whatever was left. */
	rc = rh_run(once, out, sizeof out, 20000);
	cr_assert_eq(rc, 0, "flagshm-writer --once after the kills: exit %d: %s", rc, out);
	uint64_t final = store_generation(store);
	cr_expect_gt(final, cur);
	expect_objects(store, final, 2); /* the current and the previous one */
	int64_t until = rh_mono_ms() + 30000;
	while (atomic_load(&rd.last_gen) != final && rh_mono_ms() < until)
		rh_sleep_us(1000);
	cr_expect_eq(atomic_load(&rd.last_gen), final);
	watch_stop(&rd);
	fprintf(stderr, "FIGURE faults.daemon_kills=%d generations=%llu partial_objects=%d\n", starts,
		(unsigned long long)final, partial_left);
	/* How many kills land after a publish depends on the machine's speed
	 * (the window adapts to it); at least one must have, or the test
	 * showed nothing about a killed publisher. */
	cr_expect_gt(cur, 0, "no daemon published before it was killed (%d kills)", starts);
	unlink(path);
	free(path);
	remove_store(store);
}

/* ------------------------------------------- a stopped reader holds a view */

#define STOP_PUBLISHES 400

/* Publish N generations; returns the microseconds taken and the most
 * generation objects seen at once. */
static int64_t publish_burst(shm_writer *w, int n, int *max_objects)
{
	char err[512];
	int64_t t0 = rh_mono_us();
	for (int i = 0; i < n; i++) {
		cr_assert_eq(publish_next(w, err, sizeof err), 0, "%s", err);
		if (max_objects && i % 16 == 0) {
			int k = rh_store_objects(w->store, NULL, NULL, 0);
			if (k > *max_objects)
				*max_objects = k;
		}
	}
	return rh_mono_us() - t0;
}

/* Snapshot mappings of STORE in process PID: the number of them, the
 * generations in GENS. */
static int mapped_generations(pid_t pid, const char *store, uint64_t *gens, int ng)
{
	char path[64], line[512], pat[128];
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	int pl = snprintf(pat, sizeof pat, "/dev/shm/flagshm.%s.", store);
	FILE *f = fopen(path, "r");
	int n = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		char *p = strstr(line, pat);
		if (!p)
			continue;
		if (n < ng)
			gens[n] = strtoull(p + pl, NULL, 10);
		n++;
	}
	fclose(f);
	return n;
}

Test(faults, stopped_reader_does_not_slow_the_writer, .timeout = 60)
{
	char store[64], err[512];
	rh_name(store, sizeof store, "fstop");
	variants_compile(4); /* ~250 KB snapshots */
	size_t snap_bytes = variants[0].size;

	shm_writer w;
	cr_assert_eq(shm_writer_open(&w, store, err, sizeof err), 0, "%s", err);
	cr_assert_eq(publish_next(&w, err, sizeof err), 0, "%s", err);

	/* Baseline: nobody reading. */
	int64_t base_us = publish_burst(&w, STOP_PUBLISHES, NULL);

	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		close(w.lock_fd); /* not the writer */
		flagshm_store *s;
		flagshm_view v;
		char why[200];
		long before, after;
		if (flagshm_open(store, &s) != 0)
			_exit(2);
		flagshm_view_acquire(s, &v);
		if (rh_view_variant(&v, &before, why, sizeof why) != 0)
			_exit(3);
		uint64_t g = v.generation;
		if (write(p[1], &g, sizeof g) != sizeof g)
			_exit(4);
		raise(SIGSTOP);
		/* Continued: the view still reads what it read. */
		if (rh_view_variant(&v, &after, why, sizeof why) != 0 || after != before ||
		    v.generation != g) {
			fprintf(stderr, "stopped reader: %s\n", why);
			_exit(5);
		}
		flagshm_view_release(&v);
		/* And a new view follows the writer. */
		flagshm_view_acquire(s, &v);
		int ok = v.generation > g && rh_view_variant(&v, &after, why, sizeof why) == 0;
		flagshm_view_release(&v);
		flagshm_close(&s);
		_exit(ok ? 0 : 6);
	}
	close(p[1]);
	uint64_t held;
	cr_assert_eq(read(p[0], &held, sizeof held), (ssize_t)sizeof held);
	close(p[0]);
	int st;
	cr_assert_eq(waitpid(pid, &st, WUNTRACED), pid);
	cr_assert(WIFSTOPPED(st), "the reader did not stop");

	int max_objects = 0;
	int64_t stopped_us = publish_burst(&w, STOP_PUBLISHES, &max_objects);

	/* The writer removed the held generation's name; the stopped reader
	 * still maps it, and only it. */
	char path[160];
	snprintf(path, sizeof path, "/dev/shm/flagshm.%s.%llu", store, (unsigned long long)held);
	cr_expect_neq(access(path, F_OK), 0, "the held generation %llu is still linked",
		      (unsigned long long)held);
	uint64_t mg[8];
	int nm = mapped_generations(pid, store, mg, 8);
	cr_expect_eq(nm, 1, "the stopped reader maps %d snapshots", nm);
	cr_expect(nm < 1 || mg[0] == held, "it maps generation %llu, holds %llu",
		  (unsigned long long)mg[0], (unsigned long long)held);
	cr_expect_leq(max_objects, 2, "%d generation objects at once while publishing", max_objects);

	/* Not blocked: every publish returned (a writer that waited for the
	 * stopped reader would never get here). How the two durations compare
	 * depends on the machine's load: a figure, not a condition. */
	fprintf(stderr, "FIGURE faults.stopped_reader publishes=%d base_us=%lld stopped_us=%lld "
		"snapshot_bytes=%zu max_linked_generations=%d held_mapped=%d\n",
		STOP_PUBLISHES, (long long)base_us, (long long)stopped_us, snap_bytes, max_objects, nm);

	kill(pid, SIGCONT);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the continued reader failed (status 0x%x)",
		  st);
	shm_writer_close(&w);
	variants_free();
	remove_store(store);
}

/* ------------------------------------------- readers killed at random */

typedef struct pubstats {
	_Atomic int stop;
	_Atomic uint64_t publishes, failures, max_us;
} pubstats;

/* A writer process publishing back to back until told to stop. */
static pid_t start_publisher(const char *store, pubstats *ps)
{
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid)
		return pid;
	shm_writer w;
	char err[512];
	if (shm_writer_open(&w, store, err, sizeof err) != 0) {
		fprintf(stderr, "publisher: %s\n", err);
		_exit(2);
	}
	int64_t end = rh_mono_ms() + 100000;
	while (!atomic_load(&ps->stop) && rh_mono_ms() < end) {
		int64_t t0 = rh_mono_us();
		if (publish_next(&w, err, sizeof err) != 0) {
			fprintf(stderr, "publisher: %s\n", err);
			atomic_fetch_add(&ps->failures, 1);
		} else {
			atomic_fetch_add(&ps->publishes, 1);
		}
		uint64_t us = (uint64_t)(rh_mono_us() - t0);
		if (us > atomic_load(&ps->max_us))
			atomic_store(&ps->max_us, us);
		if (atomic_load(&ps->publishes) % 4 == 0)
			rh_sleep_us(200); /* a busy but not saturating writer */
	}
	shm_writer_close(&w);
	_exit(0);
}

#define READER_KILLS 200

Test(faults, readers_killed_at_random_200_times, .timeout = 120)
{
	char store[64], err[512];
	rh_name(store, sizeof store, "frkill");
	variants_compile(1);
	shm_writer w;
	cr_assert_eq(shm_writer_open(&w, store, err, sizeof err), 0, "%s", err);
	cr_assert_eq(publish_next(&w, err, sizeof err), 0, "%s", err);
	shm_writer_close(&w);

	pubstats *ps = mmap(NULL, sizeof *ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			    -1, 0);
	cr_assert(ps != MAP_FAILED);
	memset(ps, 0, sizeof *ps);
	pid_t pub = start_publisher(store, ps);
	int fds_before = rh_fd_count();

	unsigned seed = (unsigned)getpid();
	int killed = 0, early = 0;
	uint64_t pubs_at_start = atomic_load(&ps->publishes);
	int64_t t_end = rh_mono_ms() + 60000;
	for (int k = 0; k < READER_KILLS && rh_mono_ms() < t_end; k++) {
		pid_t pid = fork();
		cr_assert(pid >= 0);
		if (pid == 0) {
			flagshm_store *s;
			if (flagshm_open(store, &s) != 0)
				_exit(2);
			for (int i = 0; i < 10000000; i++) {
				flagshm_view v;
				char why[200];
				long var;
				flagshm_view_acquire(s, &v);
				if (rh_view_variant(&v, &var, why, sizeof why) != 0 ||
				    (uint64_t)var != v.generation % NVARIANTS) {
					fprintf(stderr, "reader: %s\n", why);
					_exit(3);
				}
				flagshm_view_release(&v);
			}
			_exit(0);
		}
		rh_sleep_us(rand_r(&seed) % 3000);
		kill(pid, SIGKILL);
		int st;
		waitpid(pid, &st, 0);
		if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
			killed++;
		else
			early++;
		cr_expect(!WIFEXITED(st) || WEXITSTATUS(st) == 0,
			  "reader %d failed with status %d before it was killed", k, WEXITSTATUS(st));
	}
	uint64_t during = atomic_load(&ps->publishes) - pubs_at_start;
	/* The writer never waits for a reader: with every reader killed at
	 * some point of its views, the publisher still goes on. (How many
	 * publishes fit in the kills, and how long one takes, depend on the
	 * machine: figures below, not conditions.) */
	uint64_t after_kills = atomic_load(&ps->publishes);
	for (int64_t until = rh_mono_ms() + 30000;
	     atomic_load(&ps->publishes) < after_kills + 10 && rh_mono_ms() < until;)
		rh_sleep_us(1000);
	cr_expect_geq(atomic_load(&ps->publishes), after_kills + 10,
		      "the publisher stopped after the readers were killed");
	atomic_store(&ps->stop, 1);
	int st;
	waitpid(pub, &st, 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the publisher failed (status 0x%x)", st);
	cr_expect_eq(atomic_load(&ps->failures), 0, "%llu publishes failed",
		     (unsigned long long)atomic_load(&ps->failures));
	/* Nothing to clean up: the documented objects and no descriptor more. */
	expect_objects(store, store_generation(store), 2);
	cr_expect_eq(rh_fd_count(), fds_before, "descriptors: %d before, %d after", fds_before,
		     rh_fd_count());
	fprintf(stderr, "FIGURE faults.reader_kills=%d (exited early %d) publishes_meanwhile=%llu "
		"max_publish_us=%llu\n",
		killed, early, (unsigned long long)during,
		(unsigned long long)atomic_load(&ps->max_us));
	cr_expect_geq(killed, READER_KILLS * 9 / 10);
	munmap(ps, sizeof *ps);
	variants_free();
	remove_store(store);
}

/* ------------------------------------ the writer dies and never comes back */

Test(faults, writer_gone_readers_keep_serving, .timeout = 60)
{
	char store[64], out[8192];
	rh_name(store, sizeof store, "fgone");
	const char *writer = rh_bin("FLAGSHM_WRITER");
	const char *tool = rh_bin("FLAGSHM_TOOL");
	char *doc = rh_variant_doc(7, 0);
	char *path = rh_temp_file(doc, strlen(doc));
	free(doc);
	char *argv[] = { (char *)writer, "--store", store, "--source", path, NULL };
	int fd = -1;
	pid_t pid = rh_spawn(argv, &fd);
	cr_assert(pid > 0);

	/* Wait (bounded) for the first publish. */
	flagshm_store *s = NULL;
	flagshm_info info;
	int64_t until = rh_mono_ms() + 30000;
	while (rh_mono_ms() < until) {
		if (!s)
			flagshm_open(store, &s);
		if (s && flagshm_store_info(s, &info) == 0)
			break;
		rh_sleep_us(5000);
	}
	cr_assert_not_null(s, "the daemon never created the store");
	cr_assert_eq(flagshm_store_info(s, &info), 0, "the daemon never published");
	cr_expect(info.writer_alive, "a running writer is reported dead");
	cr_expect_eq(info.writer_pid, pid);
	uint64_t gen = info.generation;

	kill(pid, SIGKILL);
	rh_drain(fd, out, sizeof out, 5000);
	close(fd);
	int st;
	waitpid(pid, &st, 0);
	rh_sleep_us(1200000); /* let the heartbeat age */

	/* Readers keep serving the last snapshot, with no error. */
	for (int i = 0; i < 1000; i++) {
		flagshm_view v;
		long var;
		char why[200];
		flagshm_view_acquire(s, &v);
		int rc = rh_view_variant(&v, &var, why, sizeof why);
		cr_assert_eq(rc, 0, "%s", why);
		cr_assert_eq(var, 7);
		cr_assert_eq(v.generation, gen);
		flagshm_view_release(&v);
	}
	cr_assert_eq(flagshm_store_info(s, &info), 0);
	cr_expect_not(info.writer_alive, "a dead writer is reported alive");
	cr_expect_eq(info.writer_pid, pid, "writer_pid %d, the dead writer was %d", info.writer_pid,
		     (int)pid);
	int64_t age = rh_real_ms() - info.heartbeat_ms;
	cr_expect(info.heartbeat_ms > 0 && age >= 1000 && age < 60000, "heartbeat age %lld ms",
		  (long long)age);
	cr_expect_eq(info.generation, gen);

	/* And the tool says so. */
	char *targv[] = { (char *)tool, "--store", store, "status", NULL };
	int rc = rh_run(targv, out, sizeof out, 10000);
	cr_expect_eq(rc, 0, "flagshm status: exit %d: %s", rc, out);
	cr_expect(strstr(out, "not running") != NULL, "status does not say the writer is gone:\n%s",
		  out);
	cr_expect(strstr(out, "heartbeat") != NULL, "status shows no heartbeat age:\n%s", out);
	fprintf(stderr, "FIGURE faults.writer_gone heartbeat_age_ms=%lld\n%s", (long long)age, out);
	flagshm_close(&s);
	unlink(path);
	free(path);
	remove_store(store);
}

/* ------------------------------------------------- publishes that fail */

/* The store serves variant 1 at generation 1 (or 2), published in-process. */
static void serve_one(const char *store, shm_writer *w)
{
	char err[512];
	cr_assert_eq(shm_writer_open(w, store, err, sizeof err), 0, "%s", err);
	cr_assert_eq(publish_next(w, err, sizeof err), 0, "%s", err);
}

/* Expect store STORE to still serve generation GEN whole. */
static void expect_serving(const char *store, uint64_t gen)
{
	flagshm_store *s;
	flagshm_view v;
	char why[200];
	long var;
	cr_assert_eq(flagshm_open(store, &s), 0);
	flagshm_view_acquire(s, &v);
	cr_expect_eq(v.generation, gen, "serving %llu, expected %llu",
		     (unsigned long long)v.generation, (unsigned long long)gen);
	cr_expect_eq(rh_view_variant(&v, &var, why, sizeof why), 0, "%s", why);
	flagshm_view_release(&v);
	flagshm_close(&s);
}

Test(faults, snapshot_limit_rejects_and_keeps_the_last_good, .timeout = 60)
{
	char store[64], out[8192];
	rh_name(store, sizeof store, "flimit");
	const char *writer = rh_bin("FLAGSHM_WRITER");
	char *small = rh_variant_doc(1, 0), *big = rh_variant_doc(2, 2);
	char *ps = rh_temp_file(small, strlen(small)), *pb = rh_temp_file(big, strlen(big));
	free(small);
	free(big);
	char *ok[] = { (char *)writer, "--store", store, "--source", ps, "--once",
		       "--limit", "snapshot=64k", NULL };
	int rc = rh_run(ok, out, sizeof out, 20000);
	cr_assert_eq(rc, 0, "the small document: exit %d: %s", rc, out);
	uint64_t gen = store_generation(store);

	char *no[] = { (char *)writer, "--store", store, "--source", pb, "--once",
		       "--limit", "snapshot=64k", NULL };
	rc = rh_run(no, out, sizeof out, 20000);
	cr_expect_eq(rc, 1, "a snapshot over the limit: exit %d: %s", rc, out);
	cr_expect(strstr(out, "max_snapshot (65536)") != NULL,
		  "the error does not name the limit:\n%s", out);
	cr_expect(strstr(out, "still serving generation") != NULL,
		  "the error does not say what keeps serving:\n%s", out);
	expect_serving(store, gen);
	expect_objects(store, gen, 1);
	fprintf(stderr, "FIGURE faults.snapshot_limit message:\n%s", out);
	unlink(ps);
	unlink(pb);
	free(ps);
	free(pb);
	remove_store(store);
}

/* A child: take the store, lower a limit, try to publish; report the error
 * text through the pipe and exit 0 when the publish failed cleanly. */
static void limited_publish(const char *store, int resource, rlim_t lim, const char *want,
			    char *msg, size_t msglen)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		shm_writer w;
		char err[512] = "";
		if (shm_writer_open(&w, store, err, sizeof err) != 0)
			_exit(2);
		uint64_t before = w.generation;
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit rl;
		getrlimit(resource, &rl);
		struct rlimit low = { lim, rl.rlim_max };
		if (setrlimit(resource, &low) != 0)
			_exit(3);
		int rc = publish_next(&w, err, sizeof err);
		setrlimit(resource, &rl);
		if (write(p[1], err, strlen(err)) < 0)
			_exit(4);
		if (rc != FLAGSHM_ESYS || w.generation != before ||
		    atomic_load(&w.ctl->ctl_generation) != before)
			_exit(5);
		/* With the limit lifted, the same writer publishes again. */
		if (publish_next(&w, err, sizeof err) != 0)
			_exit(6);
		_exit(0);
	}
	close(p[1]);
	rh_drain(p[0], msg, msglen, 10000);
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the limited writer: status 0x%x: %s", st,
		  msg);
	cr_expect(strstr(msg, want) != NULL, "the error does not say '%s': %s", want, msg);
}

Test(faults, file_size_limit_fails_the_publish_cleanly, .timeout = 60)
{
	char store[64], msg[1024];
	rh_name(store, sizeof store, "ffsize");
	variants_compile(2);
	shm_writer w;
	serve_one(store, &w);
	uint64_t gen = w.generation;
	shm_writer_close(&w);
	limited_publish(store, RLIMIT_FSIZE, 4096, "File too large", msg, sizeof msg);
	cr_expect(strstr(msg, "not published") != NULL, "%s", msg);
	/* The failed generation left nothing; the retry published gen + 1. */
	expect_serving(store, gen + 1);
	expect_objects(store, gen + 1, 2);
	fprintf(stderr, "FIGURE faults.fsize message: %s\n", msg);
	variants_free();
	remove_store(store);
}

Test(faults, descriptor_limit_fails_the_publish_cleanly, .timeout = 60)
{
	char store[64], msg[1024];
	rh_name(store, sizeof store, "fnofile");
	variants_compile(0);
	shm_writer w;
	serve_one(store, &w);
	uint64_t gen = w.generation;
	shm_writer_close(&w);
	/* No descriptor can be opened at all. */
	limited_publish(store, RLIMIT_NOFILE, 0, "Too many open files", msg, sizeof msg);
	expect_serving(store, gen + 1);
	fprintf(stderr, "FIGURE faults.nofile message: %s\n", msg);
	variants_free();
	remove_store(store);
}

static char reader_log[4][512];
static int reader_nlog;

static void log_keep(void *ud, const char *msg)
{
	(void)ud;
	if (reader_nlog < 4)
		snprintf(reader_log[reader_nlog++], sizeof reader_log[0], "%s", msg);
}

Test(faults, reader_out_of_descriptors_keeps_serving, .timeout = 60)
{
	char store[64], err[512];
	rh_name(store, sizeof store, "frnofile");
	variants_compile(0);
	shm_writer w;
	serve_one(store, &w);
	uint64_t gen = w.generation;

	flagshm_store *s;
	cr_assert_eq(flagshm_open_ex(store, log_keep, NULL, &s, err, sizeof err), 0, "%s", err);
	cr_assert_eq(flagshm_bool(s, "b", NULL, true), false); /* variant 1, mapped */
	cr_assert_eq(publish_next(&w, err, sizeof err), 0, "%s", err);

	struct rlimit rl, none;
	getrlimit(RLIMIT_NOFILE, &rl);
	none = (struct rlimit){ 0, rl.rlim_max };
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &none), 0);
	flagshm_result r;
	flagshm_view v;
	flagshm_view_acquire(s, &v);
	int rc = flagshm_evaluate(&v, "n0", NULL, &r);
	flagshm_view_release(&v);
	setrlimit(RLIMIT_NOFILE, &rl);
	cr_expect_eq(rc, 0, "an evaluation failed while the new generation could not be mapped");
	cr_expect_eq(r.generation, gen, "served %llu", (unsigned long long)r.generation);
	cr_expect_eq(r.value.num, (double)(gen % NVARIANTS));
	cr_expect_geq(reader_nlog, 1, "nothing was logged");
	cr_expect(reader_nlog >= 1 && strstr(reader_log[0], "Too many open files") &&
			  strstr(reader_log[0], "still serving"),
		  "log: %s", reader_log[0]);
	/* A system error is retried after a while (1 s), and then it maps. */
	int64_t until = rh_mono_ms() + 30000;
	uint64_t now = gen;
	while (now == gen && rh_mono_ms() < until) {
		flagshm_view_acquire(s, &v);
		now = v.generation;
		flagshm_view_release(&v);
		rh_sleep_us(20000);
	}
	cr_expect_eq(now, gen + 1, "the reader did not recover (serving %llu)",
		     (unsigned long long)now);
	fprintf(stderr, "FIGURE faults.reader_nofile log: %s\n", reader_log[0]);
	flagshm_close(&s);
	shm_writer_close(&w);
	variants_free();
	remove_store(store);
}

/*
 * /dev/shm full: in a private mount namespace, /dev/shm is a 600 KB tmpfs.
 * One ~250 KB snapshot fits, two fit, a third does not while two are
 * linked; the writer must report ENOSPC clearly, publish nothing, and the
 * readers keep the last good generation. Needs CAP_SYS_ADMIN (skipped
 * otherwise).
 */
Test(faults, dev_shm_full_fails_the_publish_cleanly, .timeout = 60)
{
	char store[64];
	rh_name(store, sizeof store, "ffull");
	variants_compile(4);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		if (unshare(CLONE_NEWNS) != 0)
			_exit(77);
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
			_exit(77);
		char opts[64];
		snprintf(opts, sizeof opts, "size=%zu", variants[0].size * 2 + 100000);
		if (mount("tmpfs", "/dev/shm", "tmpfs", 0, opts) != 0)
			_exit(77);
		shm_writer w;
		char err[512] = "", out[1024];
		if (shm_writer_open(&w, store, err, sizeof err) != 0)
			_exit(2);
		if (publish_next(&w, err, sizeof err) || publish_next(&w, err, sizeof err))
			_exit(3);
		flagshm_store *s;
		if (flagshm_open(store, &s) != 0)
			_exit(4);
		if (flagshm_number(s, "n0", NULL, -1) != 2)
			_exit(5);
		uint64_t g = w.generation;
		int rc = publish_next(&w, err, sizeof err);
		snprintf(out, sizeof out, "%s", err);
		if (write(p[1], out, strlen(out)) < 0)
			_exit(6);
		if (rc != FLAGSHM_ESYS || w.generation != g || atomic_load(&w.ctl->ctl_generation) != g)
			_exit(7);
		flagshm_view v;
		long var;
		char why[200];
		flagshm_view_acquire(s, &v);
		int bad = v.generation != g || rh_view_variant(&v, &var, why, sizeof why) != 0;
		flagshm_view_release(&v);
		if (bad)
			_exit(8);
		uint64_t gens[8];
		if (rh_store_objects(store, NULL, gens, 8) != 2)
			_exit(9); /* the failed one was removed */
		flagshm_close(&s);
		shm_writer_close(&w);
		shm_store_remove(store, NULL, 0);
		_exit(0);
	}
	close(p[1]);
	char msg[1024];
	rh_drain(p[0], msg, sizeof msg, 20000);
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	variants_free();
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
		cr_skip_test("cannot mount a private tmpfs on /dev/shm (needs CAP_SYS_ADMIN)");
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x, message: %s", st, msg);
	cr_expect(strstr(msg, "No space left on device") && strstr(msg, "room for two snapshots") &&
			  strstr(msg, "readers keep"),
		  "the error is not clear: %s", msg);
	fprintf(stderr, "FIGURE faults.shm_full message: %s\n", msg);
}
