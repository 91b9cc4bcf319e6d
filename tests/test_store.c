/*
 * tests/test_store.c - the shared-memory protocol and the reader's store:
 * names, publish/open/evaluate, partial and corrupt generations, the store
 * lock, read-only mappings, views, recovery after a killed writer, info.
 *
 * Criterion runs each test in its own process; tests that must crash or
 * hold a lock from another process fork and wait themselves.
 */
#include "shm_helpers.h"
#include "snap.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

/* Remove the store whatever happened; registered per test. */
static char g_store[80];

static void cleanup(void)
{
	if (g_store[0])
		shm_store_remove(g_store, NULL, 0);
}

static void setup_store(const char *tag)
{
	ts_name(g_store, sizeof g_store, tag);
	shm_store_remove(g_store, NULL, 0); /* a leftover of a crashed run */
	umask(022);
}

TestSuite(store, .fini = cleanup, .timeout = 60);

/* ------------------------------------------------------------- names */

Test(store, names_with_path_tricks_or_bad_lengths_are_refused)
{
	char err[256];
	char longname[301];
	memset(longname, 'a', 300);
	longname[300] = '\0';
	const char *bad[] = { "../x", "/", "", "a.b", "a/b", "a b", "shop\n", "..", longname };
	const char *why[] = { "'.'", "'/'", "empty", "'.'", "'/'", "' '", "0x0a", "'.'",
			      "300 bytes" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		int rc = shm_name_check(bad[i], err, sizeof err);
		cr_expect_eq(rc, FLAGSHM_ENAME, "name \"%s\" gave %d, not FLAGSHM_ENAME", bad[i], rc);
		cr_expect(strstr(err, why[i]), "message for \"%.20s\" does not say %s: %s", bad[i],
			  why[i], err);
		flagshm_store *s = (flagshm_store *)1;
		rc = flagshm_open(bad[i], &s);
		cr_expect_eq(rc, FLAGSHM_ENAME, "flagshm_open(\"%.20s\") gave %d", bad[i], rc);
		cr_expect_null(s, "a refused open leaves *out NULL");
	}
	cr_expect_eq(shm_name_check(NULL, err, sizeof err), FLAGSHM_ENAME);
	flagshm_store *s;
	cr_expect_eq(flagshm_open(NULL, &s), FLAGSHM_EINVAL);

	char max[80];
	memset(max, 'Z', 64);
	max[64] = '\0';
	const char *good[] = { "shop", "A-z_09", "x", max };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		cr_expect_eq(shm_name_check(good[i], err, sizeof err), 0, "\"%s\" refused: %s",
			     good[i], err);
	max[63] = '\0';
	strcat(max, "ZZ"); /* 65 */
	cr_expect_eq(shm_name_check(max, err, sizeof err), FLAGSHM_ENAME);
}

Test(store, missing_store_is_enostore_with_the_object_named_in_strict_mode)
{
	char err[256] = "";
	flagshm_store *s;
	setup_store("missing");
	flagshm_store_options o = { .size = sizeof o, .flags = FLAGSHM_OPEN_STRICT };
	int rc = flagshm_store_open(g_store, &o, &s, err, sizeof err);
	cr_assert_eq(rc, FLAGSHM_ENOSTORE, "got %d: %s", rc, err);
	cr_expect(strstr(err, "/dev/shm/flagshm.") && strstr(err, g_store), "message: %s", err);
}

static char g_last_log[512];
static void count_log(void *ud, const char *msg);

/* A worker that starts before its writer serves fallbacks, then the flags,
 * with no call to make; also across a writer that removes and recreates
 * the store. */
Test(store, a_worker_started_before_its_writer_attaches_by_itself)
{
	flagshm_store *s = NULL;
	char err[256] = "";
	setup_store("early");
	cr_assert_eq(flagshm_open_ex(g_store, count_log, NULL, &s, err, sizeof err), 0, "%s", err);
	flagshm_view v;
	flagshm_result r;
	cr_assert_eq(flagshm_view_acquire(s, &v), 0);
	cr_expect_eq(flagshm_evaluate(&v, "n0", NULL, &r), FLAGSHM_EUNAVAIL);
	cr_expect_eq(r.error_code, FLAGSHM_CODE_STORE_UNAVAILABLE);
	flagshm_view_release(&v);
	flagshm_info info;
	cr_expect_eq(flagshm_store_info(s, &info), FLAGSHM_EUNAVAIL);
	cr_expect_eq(info.writer_pid, 0);

	shm_writer w;
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);
	/* Attach attempts are 250 ms apart: poll, bounded in time. */
	double got = -1;
	int64_t until = ts_now_ms() + 30000;
	while ((got = flagshm_number(s, "n0", NULL, -1)) != 1 && ts_now_ms() < until)
		usleep(10000);
	cr_expect_eq(got, 1, "the worker never attached");
	cr_expect(strstr(g_last_log, "attached") || strstr(g_last_log, "generation"),
		  "log: %s", g_last_log);
	ts_publish_next(&w);
	cr_expect_eq(flagshm_number(s, "n0", NULL, -1), 2);
	shm_writer_close(&w);
	flagshm_close(&s);
}

/* ------------------------------------------------- publish, evaluate */

Test(store, publish_then_open_and_evaluate)
{
	shm_writer w;
	flagshm_store *s = NULL;
	struct stat st;
	char path[160];

	setup_store("pub");
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);
	cr_assert_eq(w.generation, 1);

	snprintf(path, sizeof path, "/dev/shm/flagshm.%s", g_store);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0644, "control object mode %o, want 0644",
		     st.st_mode & 07777);
	snprintf(path, sizeof path, "/dev/shm/flagshm.%s.1", g_store);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0444, "snapshot mode %o, want 0444", st.st_mode & 07777);

	cr_assert_eq(flagshm_open(g_store, &s), 0);
	cr_expect_eq(flagshm_number(s, "n3", NULL, -1), 1.0);
	cr_expect(flagshm_bool(s, "on", NULL, false));
	char buf[64];
	cr_expect_str_eq(flagshm_string(s, "s", NULL, "fb", buf, sizeof buf), "g1");
	cr_expect_str_eq(flagshm_json(s, "j", NULL, "fb", buf, sizeof buf), "{\"g\":1}");
	cr_expect_str_eq(flagshm_string(s, "s", NULL, "fb", buf, 2), "fb", "too small a buffer");
	/* typed mismatch and unknown keys give the fallback */
	cr_expect_eq(flagshm_number(s, "on", NULL, -7), -7);
	cr_expect_eq(flagshm_bool(s, "nope", NULL, true), true);

	flagshm_view v;
	flagshm_result r;
	cr_assert_eq(flagshm_view_acquire(s, &v), 0);
	cr_expect_eq(v.generation, 1);
	cr_expect_eq(flagshm_evaluate(&v, "n0", NULL, &r), 0);
	cr_expect_eq(r.type, FLAGSHM_TYPE_NUMBER);
	cr_expect_eq(r.reason, FLAGSHM_REASON_DEFAULT_ROLLOUT, "reason %s",
		     flagshm_reason_name(r.reason));
	cr_expect_eq(r.generation, 1);
	cr_expect_eq(flagshm_evaluate(&v, "nope", NULL, &r), FLAGSHM_ENOTFOUND);
	cr_expect_eq(r.error_code, FLAGSHM_CODE_FLAG_NOT_FOUND);
	cr_expect_eq(flagshm_view_bool_detail(&v, "s", NULL, true, &r), true);
	cr_expect_eq(r.error_code, FLAGSHM_CODE_TYPE_MISMATCH, "code %d", r.error_code);
	cr_expect_eq(r.reason, FLAGSHM_REASON_ERROR);
	flagshm_view_release(&v);

	/* a new publish is seen by the next evaluation */
	ts_publish_next(&w);
	cr_expect_eq(flagshm_number(s, "n0", NULL, -1), 2.0);
	flagshm_close(&s);
	cr_expect_null(s);
	shm_writer_close(&w);
}

Test(store, nothing_published_gives_store_unavailable)
{
	shm_writer w;
	flagshm_store *s;
	setup_store("empty");
	ts_writer_open(&w, g_store);
	cr_assert_eq(flagshm_open(g_store, &s), 0, "a created store opens before it publishes");
	flagshm_view v;
	flagshm_result r;
	cr_assert_eq(flagshm_view_acquire(s, &v), 0);
	cr_expect_eq(flagshm_evaluate(&v, "n0", NULL, &r), FLAGSHM_EUNAVAIL);
	cr_expect_eq(r.reason, FLAGSHM_REASON_ERROR);
	cr_expect_eq(r.error_code, FLAGSHM_CODE_STORE_UNAVAILABLE);
	cr_expect_eq(r.generation, 0);
	flagshm_view_release(&v);
	cr_expect_eq(flagshm_number(s, "n0", NULL, 42), 42);
	ts_publish_next(&w);
	cr_expect_eq(flagshm_number(s, "n0", NULL, 42), 1);
	flagshm_close(&s);
	shm_writer_close(&w);
}

/* ------------------------------------------------ partial / corrupt */

/* Create generation object GEN of the store by hand (as a writer killed
 * half way would), with the first LEN bytes of BYTES. */
static void plant_object(const char *store, uint64_t gen, const void *bytes, size_t len)
{
	char name[SHM_OBJ_NAME_MAX];
	shm_snap_name(name, sizeof name, store, gen);
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0444);
	cr_assert_geq(fd, 0, "create %s: %s", name, strerror(errno));
	cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
	close(fd);
}

Test(store, generation_object_created_but_not_bumped_is_ignored)
{
	shm_writer w;
	flagshm_store *s;
	wc_snapshot next = { 0 };

	setup_store("partial");
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);
	cr_assert_eq(flagshm_open(g_store, &s), 0);
	cr_assert_eq(flagshm_number(s, "n0", NULL, -1), 1);

	/* A complete generation 2 and a torn generation 3, never made
	 * current: readers go on with 1. */
	ts_compile_gen(2, &next);
	((fs_snap_hdr *)next.bytes)->sh_generation = 2;
	plant_object(g_store, 2, next.bytes, next.size);
	plant_object(g_store, 3, next.bytes, next.size / 2);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(flagshm_number(s, "n0", NULL, -1), 1, "evaluation %d left generation 1",
			     i);
	flagshm_info info;
	cr_expect_eq(flagshm_store_info(s, &info), 0);
	cr_expect_eq(info.generation, 1);
	wc_snapshot_free(&next);
	flagshm_close(&s);
	shm_writer_close(&w);
}

static _Atomic int g_logged;
static char g_last_log[512];

static void count_log(void *ud, const char *msg)
{
	(void)ud;
	atomic_fetch_add(&g_logged, 1);
	snprintf(g_last_log, sizeof g_last_log, "%s", msg);
}

Test(store, corrupt_newer_generation_keeps_the_old_one_serving_and_is_logged_once)
{
	shm_writer w;
	flagshm_store *s;
	wc_snapshot bad = { 0 };
	char err[256] = "";

	setup_store("corrupt");
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);
	cr_assert_eq(flagshm_open_ex(g_store, count_log, NULL, &s, err, sizeof err), 0, "%s", err);
	cr_assert_eq(flagshm_number(s, "n0", NULL, -1), 1);
	cr_expect_eq(atomic_load(&g_logged), 0, "the first map is not logged: %s", g_last_log);

	/* A buggy or hostile writer: generation 2 with a damaged body, made
	 * current (shm_writer_publish itself refuses such bytes). */
	ts_compile_gen(2, &bad);
	fs_snap_hdr *h = (fs_snap_hdr *)bad.bytes;
	h->sh_generation = 2;
	/* Damage a table's position: a reader maps only after checking every
	 * table lies inside the object (the checksum is the writer's and the
	 * tool's to verify, see snap.h). */
	h->sh_tables[FS_T_FLAGS].t_off = (uint32_t)(bad.size & ~(size_t)7);
	cr_expect_eq(shm_writer_publish(&w, bad.bytes, bad.size, err, sizeof err), FLAGSHM_EINVAL,
		     "publish checks the checksum before anything: %s", err);
	cr_expect_eq(w.generation, 1, "a refused publish changes nothing");
	plant_object(g_store, 2, bad.bytes, bad.size);
	atomic_store_explicit(&w.ctl->ctl_generation, 2, memory_order_release);
	w.previous = w.generation;
	w.generation = 2;
	w.next = 3;

	for (int i = 0; i < 1000; i++)
		cr_assert_eq(flagshm_number(s, "n0", NULL, -1), 1, "evaluation %d: old generation", i);
	cr_expect_eq(atomic_load(&g_logged), 1, "logged %d times (rate limit): %s",
		     atomic_load(&g_logged), g_last_log);
	cr_expect(strstr(g_last_log, "generation 2") && strstr(g_last_log, "flags table") &&
			  strstr(g_last_log, "still serving 1"),
		  "log line: %s", g_last_log);

	/* A reader that opens now has no good generation: STORE_UNAVAILABLE. */
	flagshm_store *s2;
	cr_assert_eq(flagshm_open(g_store, &s2), 0);
	flagshm_view v;
	flagshm_result r;
	flagshm_view_acquire(s2, &v);
	cr_expect_eq(flagshm_evaluate(&v, "n0", NULL, &r), FLAGSHM_EUNAVAIL);
	cr_expect_eq(r.error_code, FLAGSHM_CODE_STORE_UNAVAILABLE);
	flagshm_view_release(&v);
	flagshm_close(&s2);

	/* The next good generation is picked up, and says so. */
	ts_publish_next(&w);
	cr_expect_eq(flagshm_number(s, "n0", NULL, -1), 3);
	cr_expect(strstr(g_last_log, "serving generation 3"), "log line: %s", g_last_log);
	wc_snapshot_free(&bad);
	flagshm_close(&s);
	shm_writer_close(&w);
}

/* ------------------------------------------------------------ lock */

Test(store, second_writer_is_refused_naming_the_holder_pid)
{
	shm_writer w;
	setup_store("lock");
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);

	pid_t holder = getpid();
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		shm_writer w2;
		char err[256] = "", want[128];
		int rc = shm_writer_open(&w2, g_store, err, sizeof err);
		snprintf(want, sizeof want, "store '%s' is held by flagshm-writer pid %d", g_store,
			 (int)holder);
		if (rc != FLAGSHM_EBUSY || strcmp(err, want) != 0) {
			fprintf(stderr, "second writer: rc %d, message \"%s\", want \"%s\"\n", rc, err,
				want);
			_exit(1);
		}
		_exit(shm_lock_holder(g_store) == holder ? 0 : 2);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);

	/* In-process too: the lock is per open description, so a second
	 * open here is refused as well, and closing it does not drop ours. */
	shm_writer w2;
	char err[256];
	cr_expect_eq(shm_writer_open(&w2, g_store, err, sizeof err), FLAGSHM_EBUSY);
	flagshm_store *s;
	cr_assert_eq(flagshm_open(g_store, &s), 0);
	flagshm_close(&s); /* a reader closing its descriptors keeps our lock */
	cr_expect_eq(shm_lock_holder(g_store), holder);

	/* The real binary says the same and exits 1. */
	const char *bin = getenv("FLAGSHM_WRITER");
	if (bin) {
		char cmd[512], out[512] = "";
		snprintf(cmd, sizeof cmd, "%s --store %s --source /nonexistent --once 2>&1", bin,
			 g_store);
		FILE *p = popen(cmd, "r");
		cr_assert(p);
		size_t n = fread(out, 1, sizeof out - 1, p);
		out[n] = '\0';
		int rc = pclose(p);
		cr_expect(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "exit status 0x%x: %s", rc, out);
		char want[128];
		snprintf(want, sizeof want, "store '%s' is held by flagshm-writer pid %d", g_store,
			 (int)holder);
		cr_expect(strstr(out, want), "output: %s", out);
	}
	shm_writer_close(&w);
	cr_expect_eq(shm_lock_holder(g_store), 0, "closed writer holds nothing");
	cr_assert_eq(shm_writer_open(&w, g_store, err, sizeof err), 0, "after close: %s", err);
	shm_writer_close(&w);
}

/* ---------------------------------------------------------- read-only */

static void expect_segv_writing(volatile uint8_t *p, const char *what)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		p[0] ^= 1; /* must fault */
		_exit(0);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
		  "writing through the %s mapping: status 0x%x, expected death by SIGSEGV", what,
		  st);
}

Test(store, reader_mappings_are_read_only)
{
	shm_writer w;
	flagshm_store *s;
	setup_store("ro");
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);
	cr_assert_eq(flagshm_open(g_store, &s), 0);

	flagshm_view v;
	cr_assert_eq(flagshm_view_acquire(s, &v), 0);
	cr_assert_not_null(v.snap);
	const snap *sn = v.snap;
	expect_segv_writing((volatile uint8_t *)sn->base, "snapshot");
	expect_segv_writing((volatile uint8_t *)sn->base + sn->size - 1, "snapshot tail");
	const char *str = flagshm_view_string(&v, "s", NULL, NULL);
	cr_assert_not_null(str);
	expect_segv_writing((volatile uint8_t *)str, "string result");

	const fs_ctl *ctl;
	char err[256];
	cr_assert_eq(shm_ctl_map(g_store, &ctl, err, sizeof err), 0, "%s", err);
	expect_segv_writing((volatile uint8_t *)&ctl->ctl_generation, "control");
	shm_ctl_unmap(ctl);

	/* and nothing changed for anyone */
	cr_expect_eq(flagshm_view_number(&v, "n0", NULL, -1), 1);
	flagshm_view_release(&v);
	flagshm_close(&s);
	shm_writer_close(&w);
}

/* ------------------------------------------------------------- views */

Test(store, a_view_pins_its_generation_across_publishes)
{
	shm_writer w;
	flagshm_store *s;
	setup_store("view");
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);
	cr_assert_eq(flagshm_open(g_store, &s), 0);

	flagshm_view v1;
	cr_assert_eq(flagshm_view_acquire(s, &v1), 0);
	cr_assert_eq(v1.generation, 1);
	const char *s1 = flagshm_view_string(&v1, "s", NULL, NULL);

	ts_publish_next(&w);
	ts_publish_next(&w); /* unlinks generation 1: the view keeps its mapping */
	cr_expect_not(ts_exists(g_store, 1), "generation 1 is unlinked by the writer");

	/* A nested view follows the writer; the outer one does not move. */
	flagshm_view v3;
	cr_assert_eq(flagshm_view_acquire(s, &v3), 0);
	cr_expect_eq(v3.generation, 3);
	double bad;
	cr_expect_eq(ts_view_whole(&v3, &bad), 0, "view 3 is whole (saw %g)", bad);
	flagshm_view_release(&v3);

	cr_expect_eq(ts_view_whole(&v1, &bad), 0, "view 1 is whole (saw %g)", bad);
	flagshm_result r;
	cr_expect_eq(flagshm_evaluate(&v1, "n5", NULL, &r), 0);
	cr_expect_eq(r.generation, 1);
	cr_expect_eq(r.value.num, 1);
	cr_expect_str_eq(s1, "g1", "a string from the view lives until its release");
	flagshm_view_release(&v1);
	flagshm_view_release(&v1); /* twice: ignored */

	cr_expect_eq(flagshm_number(s, "n0", NULL, -1), 3);
	flagshm_close(&s);
	shm_writer_close(&w);
}

/* Threads of one process evaluate in views while the writer publishes:
 * every view whole, generations never go back, old maps reclaimed by
 * call_rcu while other threads read (ASan/TSan watch this one). */
struct thr_arg {
	flagshm_store *s;
	_Atomic int *stop;
	int failures;
	uint64_t views;
};

static void *reader_thread(void *p)
{
	struct thr_arg *a = p;
	uint64_t last = 0;
	while (!atomic_load(a->stop)) {
		flagshm_view v;
		flagshm_view_acquire(a->s, &v);
		double bad;
		if (v.generation < last || (v.generation && ts_view_whole(&v, &bad)))
			a->failures++;
		last = v.generation;
		a->views++;
		flagshm_view_release(&v);
	}
	return NULL;
}

Test(store, threads_see_whole_generations_while_the_writer_publishes)
{
	shm_writer w;
	flagshm_store *s;
	setup_store("threads");
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);
	cr_assert_eq(flagshm_open(g_store, &s), 0);

	_Atomic int stop = 0;
	pthread_t t[4];
	struct thr_arg a[4];
	for (int i = 0; i < 4; i++) {
		a[i] = (struct thr_arg){ .s = s, .stop = &stop };
		pthread_create(&t[i], NULL, reader_thread, &a[i]);
	}
	for (int g = 0; g < 100; g++) {
		ts_publish_next(&w);
		usleep(200);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(a[i].failures, 0, "thread %d: %d bad views of %llu", i, a[i].failures,
			     (unsigned long long)a[i].views);
		cr_expect_gt(a[i].views, 0);
	}
	cr_expect_eq(flagshm_number(s, "n0", NULL, -1), 101);
	flagshm_close(&s);
	shm_writer_close(&w);
}

/* ---------------------------------------------------------- recovery */

Test(store, a_killed_writers_leftovers_go_and_generations_continue_upward)
{
	setup_store("killed");
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* The writer: publish 1 and 2, start 3 (created, half written,
		 * never made current), and die at that instant. */
		shm_writer w;
		char err[256];
		if (shm_writer_open(&w, g_store, err, sizeof err))
			_exit(3);
		wc_snapshot s = { 0 };
		for (int g = 1; g <= 2; g++) {
			ts_compile_gen((uint64_t)g, &s);
			if (shm_writer_publish(&w, s.bytes, s.size, err, sizeof err))
				_exit(4);
			wc_snapshot_free(&s);
		}
		ts_compile_gen(3, &s);
		char name[SHM_OBJ_NAME_MAX];
		shm_snap_name(name, sizeof name, g_store, 3);
		int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0444);
		if (fd < 0 || write(fd, s.bytes, s.size / 3) < 0)
			_exit(5);
		kill(getpid(), SIGKILL);
		_exit(6);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "writer status 0x%x", st);

	/* The last published snapshot keeps serving; the writer is dead. */
	flagshm_store *s;
	cr_assert_eq(flagshm_open(g_store, &s), 0);
	cr_expect_eq(flagshm_number(s, "n0", NULL, -1), 2);
	flagshm_info info;
	cr_assert_eq(flagshm_store_info(s, &info), 0);
	cr_expect_eq(info.writer_pid, pid);
	cr_expect_not(info.writer_alive, "a killed writer is not alive");
	cr_expect(ts_exists(g_store, 1) && ts_exists(g_store, 2) && ts_exists(g_store, 3));

	/* The next writer removes what is not current, and goes above it. */
	shm_writer w;
	ts_writer_open(&w, g_store);
	cr_expect_not(ts_exists(g_store, 1), "generation 1 removed at open");
	cr_expect(ts_exists(g_store, 2), "the current generation stays");
	cr_expect_not(ts_exists(g_store, 3), "the partial generation 3 removed at open");
	cr_expect_eq(w.generation, 2, "the current generation, got %llu",
		     (unsigned long long)w.generation);
	cr_expect_eq(w.next, 4, "continues above everything seen, got %llu",
		     (unsigned long long)w.next);
	ts_publish_next(&w);
	cr_expect_eq(w.generation, 4);
	cr_expect_eq(flagshm_number(s, "n0", NULL, -1), 4);
	cr_expect(ts_exists(g_store, 2), "the previous current generation stays one publish");
	ts_publish_next(&w);
	cr_expect_not(ts_exists(g_store, 2), "and goes at the next one");
	cr_expect(ts_exists(g_store, 4) && ts_exists(g_store, 5));
	flagshm_close(&s);
	shm_writer_close(&w);
}

/* --------------------------------------------------------------- info */

Test(store, store_info_reports_generation_size_environment_and_writer)
{
	shm_writer w;
	flagshm_store *s;
	flagshm_info info;
	setup_store("info");
	ts_writer_open(&w, g_store);
	cr_assert_eq(flagshm_open(g_store, &s), 0);

	cr_expect_eq(flagshm_store_info(s, &info), FLAGSHM_EUNAVAIL);
	cr_expect_eq(info.generation, 0);
	cr_expect_eq(info.writer_pid, getpid(), "writer fields are filled even when unavailable");
	cr_expect(info.writer_alive);
	cr_expect_gt(info.heartbeat_ms, 0);

	wc_snapshot snap = { 0 };
	ts_compile("{'formatVersion':1,'flags':[{'key':'a','defaultValue':true},"
		   "{'key':'b','defaultValue':1,'offValue':0,"
		   "'environments':{'staging':{'defaultValue':2}}}]}",
		   "staging", &snap);
	char err[256];
	cr_assert_eq(shm_writer_publish(&w, snap.bytes, snap.size, err, sizeof err), 0, "%s", err);
	cr_assert_eq(flagshm_store_info(s, &info), 0);
	cr_expect_eq(info.generation, 1);
	cr_expect_eq(info.flag_count, 2);
	cr_expect_eq(info.snapshot_bytes, snap.size);
	cr_expect_str_eq(info.environment, "staging");
	cr_expect_gt(info.published_ms, 1600000000000LL);
	cr_expect_eq(flagshm_number(s, "b", NULL, -1), 2, "environment override applied");
	wc_snapshot_free(&snap);

	shm_writer_close(&w);
	cr_assert_eq(flagshm_store_info(s, &info), 0);
	cr_expect_eq(info.writer_pid, getpid());
	cr_expect_not(info.writer_alive, "a closed writer is not alive");
	cr_expect_eq(flagshm_store_info(NULL, &info), FLAGSHM_EINVAL);
	flagshm_close(&s);
}

Test(store, remove_deletes_every_object_and_refuses_while_held)
{
	shm_writer w;
	char err[256] = "";
	setup_store("remove");
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);
	ts_publish_next(&w);
	cr_expect_eq(shm_store_remove(g_store, err, sizeof err), FLAGSHM_EBUSY, "%s", err);
	cr_expect(ts_exists(g_store, 0) && ts_exists(g_store, 2));
	shm_writer_close(&w);
	cr_expect_eq(shm_store_remove(g_store, err, sizeof err), 0, "%s", err);
	cr_expect_not(ts_exists(g_store, 0));
	cr_expect_not(ts_exists(g_store, 1));
	cr_expect_not(ts_exists(g_store, 2));
	cr_expect_eq(shm_store_remove(g_store, err, sizeof err), FLAGSHM_ENOSTORE);
}

/* A publish that cannot be written (here: the file size limit, standing
 * in for a full /dev/shm) fails with ESYS and a message, removes its
 * object, and changes nothing for readers. */
Test(store, a_failed_publish_leaves_readers_untouched)
{
	shm_writer w;
	flagshm_store *s;
	wc_snapshot snap = { 0 };
	char err[512] = "";
	setup_store("enospc");
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);
	cr_assert_eq(flagshm_open(g_store, &s), 0);
	cr_assert_eq(flagshm_number(s, "n0", NULL, -1), 1);

	ts_compile_gen(2, &snap);
	struct rlimit old, lim = { .rlim_cur = 1024, .rlim_max = RLIM_INFINITY };
	cr_assert_gt(snap.size, 1024);
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	lim.rlim_max = old.rlim_max;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	int rc = shm_writer_publish(&w, snap.bytes, snap.size, err, sizeof err);
	setrlimit(RLIMIT_FSIZE, &old);
	cr_expect_eq(rc, FLAGSHM_ESYS, "rc %d: %s", rc, err);
	cr_expect(strstr(err, "/dev/shm/flagshm.") && strstr(err, "File too large") &&
			  strstr(err, "generation 2 not published"),
		  "message: %s", err);
	cr_expect_eq(w.generation, 1);
	cr_expect_not(ts_exists(g_store, 2), "the failed object is removed");
	cr_expect_eq(flagshm_number(s, "n0", NULL, -1), 1);

	/* and the next publish works, as generation 2 */
	cr_expect_eq(shm_writer_publish(&w, snap.bytes, snap.size, err, sizeof err), 0, "%s", err);
	cr_expect_eq(flagshm_number(s, "n0", NULL, -1), 2);
	wc_snapshot_free(&snap);
	flagshm_close(&s);
	shm_writer_close(&w);
}
