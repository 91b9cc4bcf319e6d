/*
 * tests/test_views.c - the view mechanism (hazard-pointer pins, no
 * background thread): views across publishes, fork inside a view and from
 * the log callback and during refreshes, an application with liburcu's
 * fork handlers, a view released on the wrong thread, and memory bounded by
 * what views pin. Every wait is bounded in time; a hang is a failure, not a
 * timeout of the suite.
 */
#include "shm_helpers.h"
#include "store.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <urcu/urcu-bp.h>

static char g_store[64];

static void setup(void)
{
	ts_name(g_store, sizeof g_store, "views");
	shm_store_remove(g_store, NULL, 0);
}

static void teardown(void)
{
	shm_store_remove(g_store, NULL, 0);
}

TestSuite(views, .init = setup, .fini = teardown, .timeout = 60);

/* Wait for PID at most MS milliseconds; its status, or -1 (then killed). */
static int wait_child(pid_t pid, int ms)
{
	int st;
	for (int64_t end = ts_now_ms() + ms; ts_now_ms() < end; usleep(2000))
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

/* Generation objects of this store linked in /dev/shm. */
static int linked_generations(void)
{
	char prefix[96];
	int pl = snprintf(prefix, sizeof prefix, "flagshm.%s.", g_store);
	DIR *d = opendir("/dev/shm");
	cr_assert_not_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += strncmp(de->d_name, prefix, (size_t)pl) == 0 && de->d_name[pl] >= '0' &&
		     de->d_name[pl] <= '9';
	closedir(d);
	return n;
}

/* Mappings of this store's snapshots in this process (/proc/self/maps). */
static int snapshot_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	cr_assert_not_null(f);
	char line[512], needle[96];
	snprintf(needle, sizeof needle, "/dev/shm/flagshm.%s.", g_store);
	int n = 0;
	while (fgets(line, sizeof line, f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

Test(views, a_generation_switched_while_views_are_held)
{
	shm_writer w;
	flagshm_store *s;
	double bad;
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);
	cr_assert_eq(flagshm_open(g_store, &s), 0);
	flagshm_view outer, inner;
	cr_assert_eq(flagshm_view_acquire(s, &outer), 0);
	cr_expect_eq(outer.generation, 1);
	ts_publish_next(&w);
	cr_assert_eq(flagshm_view_acquire(s, &inner), 0);
	cr_expect_eq(inner.generation, 2, "a nested view follows the writer");
	cr_expect_eq(ts_view_whole(&outer, &bad), 0, "the outer view is whole");
	cr_expect_eq(ts_view_whole(&inner, &bad), 0, "the inner view is whole");
	flagshm_view_release(&inner);
	ts_publish_next(&w);
	cr_expect_eq(ts_view_whole(&outer, &bad), 0, "still whole after another publish");
	cr_expect_eq(flagshm_view_number(&outer, "n0", NULL, -1), 1);
	flagshm_view_release(&outer);
	cr_expect_eq(flagshm_number(s, "n0", NULL, -1), 3);
	flagshm_close(&s);
	shm_writer_close(&w);
}

/* A view held while 100 generations are published and followed by other
 * views: only the held one and the current one stay mapped. */
Test(views, a_view_held_across_100_publishes_pins_one_snapshot)
{
	shm_writer w;
	flagshm_store *s;
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);
	cr_assert_eq(flagshm_open(g_store, &s), 0);
	flagshm_view held;
	cr_assert_eq(flagshm_view_acquire(s, &held), 0);
	int most = 0;
	for (int i = 0; i < 100; i++) {
		ts_publish_next(&w);
		cr_assert_eq(flagshm_number(s, "n0", NULL, -1), (double)w.generation);
		int n = snapshot_mappings();
		if (n > most)
			most = n;
	}
	cr_expect_leq(most, 2, "%d snapshots mapped at once (the held one and the current)",
		      most);
	cr_expect_eq(flagshm_view_number(&held, "n0", NULL, -1), 1, "the held view kept its own");
	int linked = linked_generations();
	cr_expect_leq(linked, 2, "%d generations linked in /dev/shm", linked);
	flagshm_view_release(&held);
	ts_publish_next(&w);
	cr_expect_eq(flagshm_number(s, "n0", NULL, -1), (double)w.generation);
	cr_expect_leq(snapshot_mappings(), 1, "the released view's map was reclaimed");
	flagshm_close(&s);
	shm_writer_close(&w);
}

Test(views, fork_inside_a_view_does_not_deadlock)
{
	shm_writer w;
	flagshm_store *s;
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);
	cr_assert_eq(flagshm_open(g_store, &s), 0);
	for (int k = 0; k < 20; k++) {
		flagshm_view v;
		cr_assert_eq(flagshm_view_acquire(s, &v), 0);
		ts_publish_next(&w); /* the child must follow, the parent's view stays */
		pid_t pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			double bad;
			int rc = ts_view_whole(&v, &bad) ? 1 : 0;
			flagshm_view_release(&v);
			if (flagshm_number(s, "n0", NULL, -1) != (double)w.generation)
				rc |= 2;
			_exit(rc);
		}
		flagshm_view_release(&v);
		cr_assert_eq(wait_child(pid, 10000), 0, "fork %d: the child hung or failed", k);
	}
	flagshm_close(&s);
	shm_writer_close(&w);
}

static flagshm_store *g_fork_store;
static atomic_int g_forked;

/* A log callback that forks, as store.c allows. */
static void forking_log(void *ud, const char *msg)
{
	(void)ud;
	(void)msg;
	pid_t pid = fork();
	if (pid == 0) {
		double d = flagshm_number(g_fork_store, "n0", NULL, -1);
		_exit(d >= 1 ? 0 : 3);
	}
	if (pid > 0 && wait_child(pid, 10000) == 0)
		atomic_fetch_add(&g_forked, 1);
}

Test(views, fork_from_the_log_callback_does_not_deadlock)
{
	shm_writer w;
	char err[256];
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);
	cr_assert_eq(flagshm_open_ex(g_store, forking_log, NULL, &g_fork_store, err, sizeof err), 0);
	cr_assert_eq(flagshm_number(g_fork_store, "n0", NULL, -1), 1);
	for (int i = 0; i < 5; i++) {
		ts_publish_next(&w); /* each switch logs "generation a -> b" */
		cr_assert_eq(flagshm_number(g_fork_store, "n0", NULL, -1), (double)w.generation);
	}
	cr_expect_eq(atomic_load(&g_forked), 5, "%d children from the callback exited 0",
		     atomic_load(&g_forked));
	flagshm_close(&g_fork_store);
	shm_writer_close(&w);
}

/* Reader threads in views and a writer publishing, while the main thread
 * forks: every child evaluates a whole generation and exits. */
struct churn {
	flagshm_store *s;
	atomic_bool stop;
	atomic_long bad;
	atomic_long views;
};

static void *churn_reader(void *p)
{
	struct churn *c = p;
	double bad;
	for (long i = 0; i < 5000000 && !atomic_load(&c->stop); i++) {
		flagshm_view v;
		flagshm_view_acquire(c->s, &v);
		if (v.snap && ts_view_whole(&v, &bad))
			atomic_fetch_add(&c->bad, 1);
		flagshm_view_release(&v);
		atomic_fetch_add(&c->views, 1);
	}
	return NULL;
}

Test(views, fork_during_refreshes_and_publishes)
{
	shm_writer w;
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);
	struct churn c = { 0 };
	atomic_init(&c.stop, false);
	atomic_init(&c.bad, 0);
	cr_assert_eq(flagshm_open(g_store, &c.s), 0);
	pthread_t th[2];
	atomic_init(&c.views, 0);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, churn_reader, &c), 0);
	/* The readers' first views allocate (their counting tables). GCC 12's
	 * ASan allocator is not fork-safe: a child forked while another
	 * thread holds its lock hangs in its own first malloc (seen: the
	 * child's calloc in count.c tls_get waiting on ASan's allocator
	 * mutex; glibc's malloc is fork-safe). So the forks start once the
	 * readers are past their first views, as a server's workers are. */
	for (int i = 0; i < 30000 && atomic_load(&c.views) < 200; i++)
		usleep(1000);
	for (int k = 0; k < 30; k++) {
		ts_publish_next(&w);
		pid_t pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			flagshm_view v;
			double bad;
			flagshm_view_acquire(c.s, &v);
			int rc = v.snap && ts_view_whole(&v, &bad) == 0 ? 0 : 1;
			flagshm_view_release(&v);
			_exit(rc);
		}
		cr_assert_eq(wait_child(pid, 10000), 0, "fork %d: the child hung or failed", k);
	}
	atomic_store(&c.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	cr_expect_eq(atomic_load(&c.bad), 0, "views that mixed generations");
	flagshm_close(&c.s);
	shm_writer_close(&w);
}

/* An application that registers liburcu's fork handlers, as liburcu's
 * documentation tells it to (it uses liburcu-bp itself): forking still
 * works, with libflagshm in the same process. */
Test(views, an_application_with_liburcu_fork_handlers_forks)
{
	cr_assert_eq(pthread_atfork(urcu_bp_before_fork, urcu_bp_after_fork_parent,
				    urcu_bp_after_fork_child), 0);
	urcu_bp_read_lock();
	urcu_bp_read_unlock();
	shm_writer w;
	flagshm_store *s;
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);
	cr_assert_eq(flagshm_open(g_store, &s), 0);
	for (int k = 0; k < 10; k++) {
		cr_assert_eq(flagshm_number(s, "n0", NULL, -1), (double)w.generation);
		pid_t pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0)
			_exit(flagshm_number(s, "n0", NULL, -1) == (double)w.generation ? 0 : 1);
		cr_assert_eq(wait_child(pid, 10000), 0, "fork %d hung or failed", k);
		ts_publish_next(&w);
	}
	flagshm_close(&s);
	shm_writer_close(&w);
}

static char g_log[512];

static void keep_log(void *ud, const char *msg)
{
	(void)ud;
	snprintf(g_log, sizeof g_log, "%s", msg);
}

struct xrelease {
	flagshm_view *v;
};

static void *release_elsewhere(void *p)
{
	flagshm_view_release(((struct xrelease *)p)->v);
	return NULL;
}

Test(views, a_view_released_on_another_thread_is_refused)
{
	shm_writer w;
	flagshm_store *s;
	char err[256];
	ts_writer_open(&w, g_store);
	ts_publish_next(&w);
	cr_assert_eq(flagshm_open_ex(g_store, keep_log, NULL, &s, err, sizeof err), 0);
	flagshm_view v;
	cr_assert_eq(flagshm_view_acquire(s, &v), 0);
	struct xrelease x = { &v };
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, release_elsewhere, &x), 0);
	pthread_join(th, NULL);
	cr_expect(strstr(g_log, "acquired on another thread"), "log: %s", g_log);
	cr_expect_eq(v.magic, VIEW_MAGIC, "the refused release left the view as it was");
	/* The view still pins its snapshot across publishes ... */
	for (int i = 0; i < 5; i++)
		ts_publish_next(&w);
	cr_expect_eq(flagshm_view_number(&v, "n0", NULL, -1), 1);
	/* ... and its own thread releases it. */
	flagshm_view_release(&v);
	cr_expect_neq(v.magic, VIEW_MAGIC);
	ts_publish_next(&w);
	cr_expect_eq(flagshm_number(s, "n0", NULL, -1), (double)w.generation);
	cr_expect_leq(snapshot_mappings(), 1);
	flagshm_close(&s);
	shm_writer_close(&w);
}
