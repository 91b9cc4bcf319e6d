/*
 * tests/test_process.c - the writer and readers as separate processes.
 *
 *  - 4 reader processes evaluate without pause while the writer publishes
 *    200 generations; every view must be one whole generation (all flags
 *    equal its generation number) and generations never go backwards.
 *  - A pre-fork server: the parent opens the store and forks 8 children;
 *    the writer (another process) publishes; every child sees it, with no
 *    call to make after fork.
 *  - The real flagshm-writer daemon: a reader process follows its file.
 *
 * Children report through their exit status (and stderr for details);
 * every wait is bounded.
 */
#include "shm_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

static char g_store[80];

static void cleanup(void)
{
	if (g_store[0])
		shm_store_remove(g_store, NULL, 0);
}

static void setup_store(const char *tag)
{
	ts_name(g_store, sizeof g_store, tag);
	shm_store_remove(g_store, NULL, 0);
}

TestSuite(process, .fini = cleanup, .timeout = 90);

/* Wait for PID at most MS milliseconds; SIGKILL it after that. */
static int wait_bounded(pid_t pid, int ms)
{
	int st = 0;
	for (int64_t end = ts_now_ms() + ms;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return st;
		if (ts_now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return st;
		}
		usleep(2000);
	}
}

static void read_byte(int fd)
{
	char c;
	ssize_t n;
	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	cr_assert_eq(n, 1, "a child died before reporting");
}

/* ------------------------------------------- whole generations, 4 readers */

#define PUBLISHES 200
#define READERS 4

enum { RD_OK = 0, RD_OPEN = 10, RD_TORN, RD_BACKWARDS, RD_TIMEOUT, RD_FEW };

/* A reader process: evaluate in views until the final generation shows
 * up, checking each view. */
static int reader_main(int ready_fd, uint64_t final)
{
	flagshm_store *s;
	char err[256];
	if (flagshm_open_ex(g_store, NULL, NULL, &s, err, sizeof err) != 0) {
		fprintf(stderr, "reader %d: %s\n", (int)getpid(), err);
		return RD_OPEN;
	}
	(void)!write(ready_fd, "r", 1);
	close(ready_fd);
	uint64_t last = 0, views = 0, distinct = 0;
	int64_t end = ts_now_ms() + 30000;
	for (;;) {
		flagshm_view v;
		flagshm_view_acquire(s, &v);
		uint64_t g = v.generation;
		double bad;
		int torn = g ? ts_view_whole(&v, &bad) : 0;
		flagshm_view_release(&v);
		views++;
		if (torn) {
			fprintf(stderr, "reader %d: view of generation %llu has flag #%d = %g\n",
				(int)getpid(), (unsigned long long)g, torn, bad);
			return RD_TORN;
		}
		if (g < last) {
			fprintf(stderr, "reader %d: generation went from %llu back to %llu\n",
				(int)getpid(), (unsigned long long)last, (unsigned long long)g);
			return RD_BACKWARDS;
		}
		if (g != last)
			distinct++;
		last = g;
		if (g == final)
			break;
		if ((views & 1023) == 0 && ts_now_ms() > end) {
			fprintf(stderr, "reader %d: stuck at generation %llu of %llu\n", (int)getpid(),
				(unsigned long long)g, (unsigned long long)final);
			return RD_TIMEOUT;
		}
	}
	flagshm_close(&s);
	fprintf(stderr, "reader %d: %llu views, %llu generations seen\n", (int)getpid(),
		(unsigned long long)views, (unsigned long long)distinct);
	return distinct >= 2 ? RD_OK : RD_FEW;
}

Test(process, readers_in_four_processes_only_ever_see_whole_generations)
{
	shm_writer w;
	setup_store("whole");
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);

	/* Compile every generation first, so the publishes come fast. */
	static wc_snapshot snaps[PUBLISHES];
	for (int i = 0; i < PUBLISHES; i++)
		ts_compile_gen((uint64_t)i + 2, &snaps[i]);
	uint64_t final = 1 + PUBLISHES;

	int ready[2];
	cr_assert_eq(pipe(ready), 0);
	pid_t pids[READERS];
	for (int i = 0; i < READERS; i++) {
		pids[i] = fork();
		cr_assert_geq(pids[i], 0);
		if (pids[i] == 0) {
			close(ready[0]);
			shm_writer_close(&w); /* not ours; the lock stays with the parent */
			_exit(reader_main(ready[1], final));
		}
	}
	close(ready[1]);
	for (int i = 0; i < READERS; i++)
		read_byte(ready[0]);
	close(ready[0]);

	char err[512];
	for (int i = 0; i < PUBLISHES; i++) {
		int rc = shm_writer_publish(&w, snaps[i].bytes, snaps[i].size, err, sizeof err);
		cr_assert_eq(rc, 0, "publish %d: %s", i + 2, err);
		if (i % 2 == 0)
			usleep(300); /* let readers land on many generations */
	}
	cr_assert_eq(w.generation, final);
	for (int i = 0; i < READERS; i++) {
		int st = wait_bounded(pids[i], 40000);
		cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == RD_OK,
			  "reader %d: status 0x%x (exit %d; 11 torn, 12 backwards, 13 timeout, 14 "
			  "saw fewer than 2 generations)",
			  i, st, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	}
	for (int i = 0; i < PUBLISHES; i++)
		wc_snapshot_free(&snaps[i]);
	shm_writer_close(&w);
}

/* ------------------------------------------------------ pre-fork server */

#define CHILDREN 8

/* A thread that keeps the parent's readers busy while it forks, so the
 * fork handlers meet views in flight and a live call_rcu worker. */
static _Atomic int g_stop;
static void *spin_reader(void *p)
{
	flagshm_store *s = p;
	while (!atomic_load(&g_stop)) {
		flagshm_view v;
		flagshm_view_acquire(s, &v);
		double bad;
		(void)ts_view_whole(&v, &bad);
		flagshm_view_release(&v);
	}
	return NULL;
}

Test(process, children_forked_after_open_see_every_later_generation)
{
	setup_store("fork");
	int to_writer[2], from_writer[2];
	cr_assert_eq(pipe(to_writer), 0);
	cr_assert_eq(pipe(from_writer), 0);

	/* The writer, a process of its own. */
	pid_t wpid = fork();
	cr_assert_geq(wpid, 0);
	if (wpid == 0) {
		close(to_writer[1]);
		close(from_writer[0]);
		shm_writer w;
		char err[256];
		wc_snapshot s = { 0 };
		if (shm_writer_open(&w, g_store, err, sizeof err))
			_exit(2);
		for (int step = 0; step < 2; step++) {
			char c;
			if (step && read(to_writer[0], &c, 1) != 1)
				_exit(3);
			uint64_t upto = step ? 3 : 2;
			while (w.generation < upto) {
				ts_compile_gen(w.next, &s);
				if (shm_writer_publish(&w, s.bytes, s.size, err, sizeof err))
					_exit(4);
				wc_snapshot_free(&s);
			}
			(void)!write(from_writer[1], "p", 1);
		}
		/* Stay alive (holding the store) until the parent is done. */
		char c;
		(void)!read(to_writer[0], &c, 1);
		shm_writer_close(&w);
		_exit(0);
	}
	close(to_writer[0]);
	close(from_writer[1]);
	read_byte(from_writer[0]); /* generations 1 and 2 published */

	flagshm_store *s;
	cr_assert_eq(flagshm_open(g_store, &s), 0);
	cr_assert_eq(flagshm_number(s, "n0", NULL, -1), 2);
	pthread_t spin;
	pthread_create(&spin, NULL, spin_reader, s);

	int ready[2];
	cr_assert_eq(pipe(ready), 0);
	pid_t kids[CHILDREN];
	for (int i = 0; i < CHILDREN; i++) {
		kids[i] = fork();
		cr_assert_geq(kids[i], 0);
		if (kids[i] == 0) {
			/* A worker of a pre-fork server: no hook, no reopen. */
			close(ready[0]);
			int code = 0;
			if (flagshm_number(s, "n0", NULL, -1) != 2)
				code = 20;
			(void)!write(ready[1], "k", 1);
			int64_t end = ts_now_ms() + 20000;
			while (!code) {
				flagshm_view v;
				flagshm_view_acquire(s, &v);
				double bad;
				uint64_t g = v.generation;
				int torn = ts_view_whole(&v, &bad);
				flagshm_view_release(&v);
				if (torn)
					code = 21;
				else if (g == 3)
					break;
				else if (ts_now_ms() > end)
					code = 22;
				else
					usleep(100);
			}
			flagshm_close(&s);
			_exit(code);
		}
	}
	close(ready[1]);
	for (int i = 0; i < CHILDREN; i++)
		read_byte(ready[0]);
	close(ready[0]);

	cr_assert_eq(write(to_writer[1], "g", 1), 1); /* publish generation 3 */
	read_byte(from_writer[0]);

	for (int i = 0; i < CHILDREN; i++) {
		int st = wait_bounded(kids[i], 30000);
		cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			  "child %d: status 0x%x (exit 20: wrong value after fork, 21: torn view, "
			  "22: never saw generation 3)",
			  i, st);
	}
	cr_expect_eq(flagshm_number(s, "n0", NULL, -1), 3, "the parent follows too");
	atomic_store(&g_stop, 1);
	pthread_join(spin, NULL);
	flagshm_close(&s);

	cr_assert_eq(write(to_writer[1], "q", 1), 1);
	int st = wait_bounded(wpid, 10000);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer status 0x%x", st);
}

/* -------------------------------------------- the flagshm-writer daemon */

static void write_file(const char *path, const char *text)
{
	char tmp[300];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	cr_assert(f);
	fputs(text, f);
	fclose(f);
	cr_assert_eq(rename(tmp, path), 0); /* as an editor saves */
}

/* Wait until the store's flag "v" evaluates to WANT in this process. */
static bool wait_value(flagshm_store *s, double want, int ms)
{
	for (int64_t end = ts_now_ms() + ms; ts_now_ms() < end; usleep(2000))
		if (flagshm_number(s, "v", NULL, -1) == want)
			return true;
	return false;
}

Test(process, the_writer_daemon_republishes_on_change_and_keeps_the_last_good_snapshot)
{
	const char *bin = getenv("FLAGSHM_WRITER");
	if (!bin)
		cr_skip_test("FLAGSHM_WRITER is not set (run through meson test)");
	setup_store("daemon");
	char dir[] = "/tmp/flagshm-test-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char path[300];
	snprintf(path, sizeof path, "%s/flags.json", dir);
	write_file(path, "{\"formatVersion\":1,\"flags\":[{\"key\":\"v\",\"defaultValue\":1,\"offValue\":0}]}");

	pid_t d = fork();
	cr_assert_geq(d, 0);
	if (d == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (!getenv("FLAGSHM_TEST_VERBOSE"))
			dup2(null, 2);
		execl(bin, bin, "--store", g_store, "--source", path, (char *)NULL);
		_exit(127);
	}
	flagshm_store *s = NULL;
	for (int64_t end = ts_now_ms() + 30000; ts_now_ms() < end; usleep(5000))
		if (ts_open_existing(g_store, &s) == 0)
			break;
	cr_assert_not_null(s, "the daemon created the store");
	cr_expect(wait_value(s, 1, 10000), "first publish seen");

	/* write-to-temp-and-rename */
	write_file(path, "{\"formatVersion\":1,\"flags\":[{\"key\":\"v\",\"defaultValue\":2,\"offValue\":0}]}");
	cr_expect(wait_value(s, 2, 10000), "rename seen");

	/* in-place write */
	FILE *f = fopen(path, "w");
	fputs("{\"formatVersion\":1,\"flags\":[{\"key\":\"v\",\"defaultValue\":3,\"offValue\":0}]}", f);
	fclose(f);
	cr_expect(wait_value(s, 3, 10000), "in-place write seen");

	/* an invalid document: rejected whole, 3 keeps serving, error recorded */
	write_file(path, "{\"formatVersion\":1,\"flags\":[{\"key\":\"v\",\"defaultValue\":4}]}");
	const fs_ctl *ctl;
	char err[256];
	cr_assert_eq(shm_ctl_map(g_store, &ctl, err, sizeof err), 0, "%s", err);
	bool recorded = false;
	char last[sizeof ctl->ctl_last_error + 1] = "";
	for (int64_t end = ts_now_ms() + 30000; ts_now_ms() < end && !recorded; usleep(5000)) {
		shm_ctl_text_get(ctl, SHM_TEXT_LAST_ERROR, last, sizeof last);
		recorded = strstr(last, "flags[0].offValue") != NULL;
	}
	cr_expect(recorded, "ctl_last_error: %s", last);
	cr_expect_eq(flagshm_number(s, "v", NULL, -1), 3);

	flagshm_info info;
	cr_expect_eq(flagshm_store_info(s, &info), 0);
	cr_expect_eq(info.writer_pid, d);
	cr_expect(info.writer_alive);

	/* SIGHUP after a fix; then SIGTERM exits 0 and the snapshot stays. */
	write_file(path, "{\"formatVersion\":1,\"flags\":[{\"key\":\"v\",\"defaultValue\":5,\"offValue\":0}]}");
	kill(d, SIGHUP);
	cr_expect(wait_value(s, 5, 10000), "fixed document seen");
	/* The error is cleared right after the publish: wait for it too. */
	for (int64_t end = ts_now_ms() + 30000; ts_now_ms() < end; usleep(5000)) {
		shm_ctl_text_get(ctl, SHM_TEXT_LAST_ERROR, last, sizeof last);
		if (!last[0])
			break;
	}
	cr_expect_eq(last[0], '\0', "error cleared: %s", last);
	kill(d, SIGTERM);
	int st = wait_bounded(d, 10000);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon status 0x%x", st);
	cr_expect_eq(flagshm_number(s, "v", NULL, -1), 5, "the snapshot outlives the writer");
	cr_expect_eq(flagshm_store_info(s, &info), 0);
	cr_expect_not(info.writer_alive);

	shm_ctl_unmap(ctl);
	flagshm_close(&s);
	unlink(path);
	rmdir(dir);
}

/* --source is a symlink into another directory; the writer
 * watched only the link's directory, so an edit of the target itself went
 * unseen. Edits in place and by rename, and a re-pointed link, each show. */
Test(process, editing_the_target_of_a_symlinked_source_is_noticed)
{
	const char *bin = getenv("FLAGSHM_WRITER");
	if (!bin)
		cr_skip_test("FLAGSHM_WRITER is not set (run through meson test)");
	setup_store("symlink");
	char dir[] = "/tmp/flagshm-test-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char link_dir[320], target_dir[320], link[340], target[340], other[340], tmp_link[340];
	snprintf(link_dir, sizeof link_dir, "%s/etc", dir);
	snprintf(target_dir, sizeof target_dir, "%s/data", dir);
	cr_assert_eq(mkdir(link_dir, 0755), 0);
	cr_assert_eq(mkdir(target_dir, 0755), 0);
	snprintf(link, sizeof link, "%s/flags.json", link_dir);
	snprintf(target, sizeof target, "%s/real.json", target_dir);
	snprintf(other, sizeof other, "%s/other.json", target_dir);
	snprintf(tmp_link, sizeof tmp_link, "%s/flags.json.new", link_dir);
	write_file(target, "{\"formatVersion\":1,\"flags\":[{\"key\":\"v\",\"defaultValue\":1,\"offValue\":0}]}");
	cr_assert_eq(symlink(target, link), 0);

	pid_t d = fork();
	cr_assert_geq(d, 0);
	if (d == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (!getenv("FLAGSHM_TEST_VERBOSE"))
			dup2(null, 2);
		execl(bin, bin, "--store", g_store, "--source", link, (char *)NULL);
		_exit(127);
	}
	flagshm_store *s = NULL;
	for (int64_t end = ts_now_ms() + 30000; ts_now_ms() < end; usleep(5000))
		if (ts_open_existing(g_store, &s) == 0)
			break;
	cr_assert_not_null(s, "the daemon created the store");
	cr_expect(wait_value(s, 1, 10000), "first publish seen");

	FILE *f = fopen(target, "w"); /* in place, in the target's directory */
	cr_assert_not_null(f);
	fputs("{\"formatVersion\":1,\"flags\":[{\"key\":\"v\",\"defaultValue\":2,\"offValue\":0}]}", f);
	fclose(f);
	cr_expect(wait_value(s, 2, 10000), "an in-place edit of the target was not noticed");

	write_file(target, "{\"formatVersion\":1,\"flags\":[{\"key\":\"v\",\"defaultValue\":3,\"offValue\":0}]}");
	cr_expect(wait_value(s, 3, 10000), "a rename onto the target was not noticed");

	/* The link re-pointed (as a ConfigMap update does), then the new
	 * target edited. */
	write_file(other, "{\"formatVersion\":1,\"flags\":[{\"key\":\"v\",\"defaultValue\":4,\"offValue\":0}]}");
	cr_assert_eq(symlink(other, tmp_link), 0);
	cr_assert_eq(rename(tmp_link, link), 0);
	cr_expect(wait_value(s, 4, 10000), "the re-pointed link was not noticed");
	write_file(other, "{\"formatVersion\":1,\"flags\":[{\"key\":\"v\",\"defaultValue\":5,\"offValue\":0}]}");
	cr_expect(wait_value(s, 5, 10000), "an edit of the new target was not noticed");

	kill(d, SIGTERM);
	int st = wait_bounded(d, 10000);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon status 0x%x", st);
	flagshm_close(&s);
	unlink(link);
	unlink(target);
	unlink(other);
	rmdir(link_dir);
	rmdir(target_dir);
	rmdir(dir);
}
