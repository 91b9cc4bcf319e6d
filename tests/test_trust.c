/*
 * tests/test_trust.c - the store's trust model, played by an attacker.
 *
 * /dev/shm is writable by every local user. Each test here runs the attack
 * as a second, unprivileged user (a child that drops to ATTACKER_UID with
 * setresuid, no way back), against a writer and readers of another user
 * (root, or WRITER_UID through seteuid for a writer that is not root), and
 * checks that no reader ever serves the attacker's flags, nothing hangs,
 * nothing crashes, and the writer keeps publishing
 * (docs/architecture.md, "Who can change what readers see").
 *
 * Needs root (to become the other users); CI runs as root. Users are bare
 * uids with no passwd entry: nothing to create or clean up.
 */
#include "compile.h"
#include "flagshm.h"
#include "format.h"
#include "shm.h"
#include "rel_helpers.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define ATTACKER_UID 47101
#define WRITER_UID 47102

static char store[64];

static void setup(void)
{
	if (geteuid() != 0)
		cr_skip_test("the trust tests play other users: run as root (CI does)");
	rh_name(store, sizeof store, "trust");
	umask(022);
}

static void teardown(void)
{
	if (seteuid(0) != 0 || setegid(0) != 0)
		abort();
	shm_store_remove(store, NULL, 0);
}

TestSuite(trust, .init = setup, .fini = teardown, .timeout = 60);

/* ------------------------------------------------------------ helpers */

/* The document every value of which says WHO. */
static void compile_who(const char *who, wc_snapshot *out)
{
	char doc[512];
	snprintf(doc, sizeof doc,
		 "{\"formatVersion\":1,\"flags\":[{\"key\":\"who\",\"defaultValue\":\"%s\","
		 "\"offValue\":\"%s\"},{\"key\":\"kill\",\"defaultValue\":false}]}",
		 who, who);
	rh_compile(doc, out);
}

/* Run FN(ARG) in a child that is user UID for good (no way back to root),
 * within 20 s: its exit status, 128+signal, or -1 on a hang. */
static int as_user(uid_t uid, int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		alarm(20);
		if (setgroups(0, NULL) != 0 || setresgid(uid, uid, uid) != 0 ||
		    setresuid(uid, uid, uid) != 0)
			_exit(99);
		if (setuid(0) == 0)
			_exit(98); /* still privileged: the test would prove nothing */
		_exit(fn(arg));
	}
	int st;
	int64_t end = rh_mono_ms() + 20000;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (rh_mono_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		rh_sleep_us(2000);
	}
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

/* Become UID for the calls that follow (the test process keeps root as its
 * saved uid: be_root() brings it back). */
static void be(uid_t uid)
{
	cr_assert_eq(setegid(uid), 0);
	cr_assert_eq(seteuid(uid), 0, "seteuid(%u): %s", (unsigned)uid, strerror(errno));
}

static void be_root(void)
{
	cr_assert_eq(seteuid(0), 0);
	cr_assert_eq(setegid(0), 0);
}

/* Create /dev/shm/NAME with MODE and LEN bytes of DATA (0 if DATA NULL). */
static int plant(const char *name, mode_t mode, const void *data, size_t len)
{
	char path[256];
	snprintf(path, sizeof path, "/dev/shm/%s", name);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
	if (fd < 0)
		return 10;
	if (fchmod(fd, mode) != 0)
		return 11;
	if (data && write(fd, data, len) != (ssize_t)len)
		return 12;
	close(fd);
	return 0;
}

/* The attacker's snapshot: a valid compiled snapshot saying "attacker",
 * stamped as generation GEN, and a control object pointing at it. */
static wc_snapshot evil;

static void evil_prepare(void)
{
	compile_who("attacker", &evil);
}

static void evil_stamp(uint64_t gen)
{
	((fs_snap_hdr *)evil.bytes)->sh_generation = gen;
}

struct plant_args {
	char name[128];
	mode_t mode;
	const void *data;
	size_t len;
};

static int plant_fn(void *p)
{
	struct plant_args *a = p;
	return plant(a->name, a->mode, a->data, a->len);
}

/* As the attacker: plant NAME (an object name without the leading '/'). */
static void attacker_plants(const char *name, mode_t mode, const void *data, size_t len)
{
	struct plant_args a = { .mode = mode, .data = data, .len = len };
	snprintf(a.name, sizeof a.name, "%s", name);
	int rc = as_user(ATTACKER_UID, plant_fn, &a);
	cr_assert_eq(rc, 0, "the attacker could not plant %s (status %d)", name, rc);
}

static void attacker_plants_generation(uint64_t gen)
{
	char name[128];
	evil_stamp(gen);
	snprintf(name, sizeof name, "flagshm.%s.%llu", store, (unsigned long long)gen);
	attacker_plants(name, 0444, evil.bytes, evil.size);
}

static void publish(shm_writer *w, const wc_snapshot *s)
{
	char err[512] = "";
	int rc = shm_writer_publish(w, s->bytes, s->size, err, sizeof err);
	cr_assert_eq(rc, 0, "publish: %s (%s)", flagshm_strerror(rc), err);
}

/* A root writer of the store that has published the document saying
 * "writer" (GOOD, for later publishes; the caller frees it). */
static void open_and_publish(shm_writer *w, wc_snapshot *good)
{
	char err[512] = "";
	compile_who("writer", good);
	cr_assert_eq(shm_writer_open(w, store, err, sizeof err), 0, "%s", err);
	publish(w, good);
}

/* What a reader opening the store now serves for "who" ("" when it cannot
 * open or evaluate). */
static const char *served(const char *writer_user, char *buf, size_t n)
{
	flagshm_store *s = NULL;
	char err[256] = "";
	flagshm_store_options o = { .size = sizeof o, .writer_user = writer_user };
	buf[0] = '\0';
	if (flagshm_store_open(store, &o, &s, err, sizeof err) != 0)
		return buf;
	flagshm_view v;
	if (flagshm_view_acquire(s, &v) == 0) {
		snprintf(buf, n, "%s", flagshm_view_string(&v, "who", NULL, ""));
		flagshm_view_release(&v);
	}
	flagshm_close(&s);
	return buf;
}

/* -------------------------------------------------- squatting a name */

Test(trust, squatted_control_object_is_refused_by_readers_and_the_writer)
{
	/* The attacker runs first (after a boot, /dev/shm is empty): a
	 * well-formed control object, world-writable, pointing at its own
	 * snapshot. */
	evil_prepare();
	fs_ctl c = { .ctl_magic = FS_CTL_MAGIC, .ctl_version = FS_FORMAT_VERSION,
		     .ctl_size = sizeof(fs_ctl), .ctl_fingerprint = SHM_CTL_FINGERPRINT,
		     .ctl_writer_pid = 1 };
	atomic_init(&c.ctl_generation, 1);
	char name[128];
	snprintf(name, sizeof name, "flagshm.%s", store);
	attacker_plants(name, 0666, &c, sizeof c);
	attacker_plants_generation(1);

	/* A root reader refuses it, naming the owner. */
	flagshm_store *s = NULL;
	char err[512] = "";
	int rc = flagshm_open_ex(store, NULL, NULL, &s, err, sizeof err);
	cr_expect_eq(rc, FLAGSHM_EUNTRUSTED, "open: %d (%s)", rc, err);
	cr_expect(strstr(err, "owned by uid 47101"), "message: %s", err);
	cr_expect_null(s);

	/* The writer neither adopts nor writes it, and says how to fix it. */
	shm_writer w;
	rc = shm_writer_open(&w, store, err, sizeof err);
	cr_expect_eq(rc, FLAGSHM_EUNTRUSTED, "writer open: %d (%s)", rc, err);
	cr_expect(strstr(err, "owned by uid 47101") &&
			  strstr(err, "flagshm-writer --remove --store"),
		  "message: %s", err);
	struct stat st;
	char path[160];
	snprintf(path, sizeof path, "/dev/shm/%s", name);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_uid, ATTACKER_UID, "the squatted object changed owner");
	cr_expect_eq(st.st_mode & 0777, 0666, "the writer changed the squatter's mode");

	/* The real binary says the same and exits 1. */
	char out[2048];
	char *argv[] = { (char *)rh_bin("FLAGSHM_WRITER"), "--store", store, "--source",
			 "/nonexistent", "--once", NULL };
	cr_expect_eq(rh_run(argv, out, sizeof out, 10000), 1, "output: %s", out);
	cr_expect(strstr(out, "owned by uid 47101"), "output: %s", out);

	/* As the message says: root removes the store, and a writer starts. */
	cr_assert_eq(shm_store_remove(store, err, sizeof err), 0, "%s", err);
	wc_snapshot good;
	open_and_publish(&w, &good);
	char buf[64];
	cr_expect_str_eq(served(NULL, buf, sizeof buf), "writer");
	shm_writer_close(&w);
	wc_snapshot_free(&good);
	wc_snapshot_free(&evil);
}

Test(trust, squatted_lock_object_is_refused_not_adopted)
{
	char name[128], err[512] = "";
	snprintf(name, sizeof name, "flagshm.%s.lock", store);
	attacker_plants(name, 0666, NULL, 0);
	shm_writer w;
	int rc = shm_writer_open(&w, store, err, sizeof err);
	cr_expect_eq(rc, FLAGSHM_EUNTRUSTED, "writer open: %d (%s)", rc, err);
	cr_expect(strstr(err, "owned by uid 47101"), "message: %s", err);
	cr_assert_eq(shm_store_remove(store, err, sizeof err), 0, "%s", err);
	cr_expect_eq(shm_writer_open(&w, store, err, sizeof err), 0, "%s", err);
	shm_writer_close(&w);
}

/* A FIFO (or a symlink) under the control object's name must not block
 * anyone: open, status and the writer all answer at once. */
static int mkfifo_fn(void *p)
{
	return mkfifo((const char *)p, 0666) == 0 ? 0 : 10;
}

static int symlink_fn(void *p)
{
	return symlink("/etc/passwd", (const char *)p) == 0 ? 0 : 10;
}

static void expect_nothing_blocks(const char *what)
{
	flagshm_store *s = NULL;
	char err[512] = "";
	int64_t t0 = rh_mono_ms();
	int rc = flagshm_open_ex(store, NULL, NULL, &s, err, sizeof err);
	cr_expect_eq(rc, FLAGSHM_EUNTRUSTED, "%s: open %d (%s)", what, rc, err);
	cr_expect(strstr(err, what), "%s: message: %s", what, err);
	(void)t0;

	char out[2048];
	char *st_argv[] = { (char *)rh_bin("FLAGSHM_TOOL"), "--store", store, "status", NULL };
	rc = rh_run(st_argv, out, sizeof out, 15000);
	cr_expect_neq(rc, -1, "%s: flagshm status hangs", what);
	cr_expect_neq(rc, 0, "%s: flagshm status succeeded: %s", what, out);

	shm_writer w;
	rc = shm_writer_open(&w, store, err, sizeof err);
	cr_expect_eq(rc, FLAGSHM_EUNTRUSTED, "%s: writer open %d (%s)", what, rc, err);
}

Test(trust, fifo_under_the_control_name_blocks_nobody)
{
	char path[160];
	snprintf(path, sizeof path, "/dev/shm/flagshm.%s", store);
	cr_assert_eq(as_user(ATTACKER_UID, mkfifo_fn, path), 0);
	expect_nothing_blocks("not a regular file");
}

Test(trust, symlink_under_the_control_name_is_not_followed)
{
	char path[160];
	snprintf(path, sizeof path, "/dev/shm/flagshm.%s", store);
	cr_assert_eq(as_user(ATTACKER_UID, symlink_fn, path), 0);
	expect_nothing_blocks("symbolic link");
}

/* ------------------------------------ an attacker beside a live store */

struct hold_args {
	char path[160];
	int ready;   /* write end: one byte when the lock is held */
	int release; /* read end: EOF ends the hold */
};

/* Take a read lock on the (world-readable) control object and hold it. */
static int hold_read_lock_fn(void *p)
{
	struct hold_args *a = p;
	int fd = open(a->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return 10;
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
	if (fcntl(fd, F_OFD_SETLK, &fl) != 0)
		return 11;
	char lock_path[200];
	snprintf(lock_path, sizeof lock_path, "%s.lock", a->path);
	if (open(lock_path, O_RDONLY) >= 0)
		return 12; /* the lock object must be closed to us */
	if (write(a->ready, "x", 1) != 1)
		return 13;
	char c;
	while (read(a->release, &c, 1) > 0)
		;
	return 0;
}

Test(trust, a_lock_held_on_the_control_object_does_not_block_the_writer)
{
	shm_writer w;
	char err[512] = "";
	wc_snapshot good;
	open_and_publish(&w, &good);
	shm_writer_close(&w);

	int ready[2], release[2];
	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(release), 0);
	struct hold_args a = { .ready = ready[1], .release = release[0] };
	snprintf(a.path, sizeof a.path, "/dev/shm/flagshm.%s", store);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		close(release[1]);
		_exit(as_user(ATTACKER_UID, hold_read_lock_fn, &a));
	}
	close(ready[1]);
	close(release[0]);
	char c;
	cr_assert_eq(read(ready[0], &c, 1), 1, "the attacker could not take its read lock");

	/* A writer restarting now takes the store and publishes. */
	cr_expect_eq(shm_writer_open(&w, store, err, sizeof err), 0, "%s", err);
	if (w.ctl) {
		publish(&w, &good);
		flagshm_store *s;
		cr_assert_eq(flagshm_open(store, &s), 0);
		flagshm_info info;
		cr_expect_eq(flagshm_store_info(s, &info), 0);
		cr_expect_eq(info.writer_pid, getpid());
		cr_expect(info.writer_alive, "the writer holding the store is alive");
		flagshm_close(&s);
		shm_writer_close(&w);
	}
	close(release[1]);
	int st;
	waitpid(pid, &st, 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "attacker status 0x%x", st);
	close(ready[0]);
	wc_snapshot_free(&good);
}

/* Every write the attacker could try on a live store fails. */
static int tamper_fn(void *p)
{
	const char *store_name = p;
	char path[200];
	snprintf(path, sizeof path, "/dev/shm/flagshm.%s", store_name);
	if (open(path, O_RDWR) >= 0)
		return 10;
	if (truncate(path, 0) == 0)
		return 11;
	if (unlink(path) == 0)
		return 12;
	if (chmod(path, 0666) == 0)
		return 13;
	snprintf(path, sizeof path, "/dev/shm/flagshm.%s.1", store_name);
	if (open(path, O_RDWR) >= 0 || unlink(path) == 0)
		return 14;
	snprintf(path, sizeof path, "/dev/shm/flagshm.%s.lock", store_name);
	if (open(path, O_RDONLY) >= 0 || unlink(path) == 0)
		return 15;
	/* But it can read the flags, like every local user. */
	flagshm_store *s;
	if (flagshm_open(store_name, &s) != 0)
		return 16;
	char buf[64];
	flagshm_view v;
	if (flagshm_view_acquire(s, &v) != 0)
		return 17;
	snprintf(buf, sizeof buf, "%s", flagshm_view_string(&v, "who", NULL, ""));
	flagshm_view_release(&v);
	flagshm_info info;
	flagshm_store_info(s, &info);
	flagshm_close(&s);
	if (strcmp(buf, "writer") != 0)
		return 18;
	if (!info.writer_alive)
		return 19; /* judged by the heartbeat: the lock is closed to us */
	return 0;
}

Test(trust, every_user_reads_the_flags_nobody_else_changes_them)
{
	shm_writer w;
	wc_snapshot good;
	open_and_publish(&w, &good);
	cr_expect_eq(as_user(ATTACKER_UID, tamper_fn, store), 0);
	shm_writer_close(&w);
	wc_snapshot_free(&good);
}

/* --------------------------- a writer that is not root, and its readers */

Test(trust, foreign_generation_names_are_skipped_and_never_served)
{
	evil_prepare();
	wc_snapshot good;
	compile_who("writer", &good);
	char err[512] = "", buf[64], uidbuf[16];
	snprintf(uidbuf, sizeof uidbuf, "%d", WRITER_UID);

	/* Planted before the writer ever ran: a leftover it cannot remove
	 * (sticky /dev/shm) is a warning, not a reason not to start. */
	attacker_plants_generation(1);
	shm_writer w;
	be(WRITER_UID);
	int rc = shm_writer_open(&w, store, err, sizeof err);
	be_root();
	cr_assert_eq(rc, 0, "a foreign leftover stops the writer: %s", err);
	cr_expect(strstr(w.warning, "owned by uid 47101"), "warning: %s", w.warning);
	w.warning[0] = '\0';

	be(WRITER_UID);
	publish(&w, &good);
	be_root();
	cr_expect_eq(w.generation, 2, "generation 1 is the attacker's name: skipped");
	cr_expect(strstr(w.warning, "generation 1 skipped"), "warning: %s", w.warning);

	/* The attacker grabs the next few names while the writer runs. */
	for (uint64_t g = 3; g <= 6; g++)
		attacker_plants_generation(g);
	for (int i = 0; i < 3; i++) {
		be(WRITER_UID);
		publish(&w, &good);
		be_root();
	}
	cr_expect_eq(w.generation, 9, "3..6 skipped: published %llu",
		     (unsigned long long)w.generation);

	/* Root readers trust the writer's user only when told to. */
	cr_expect_str_eq(served(NULL, buf, sizeof buf), "", "a root reader trusted uid %d "
			 "without being told", WRITER_UID);
	cr_expect_str_eq(served(uidbuf, buf, sizeof buf), "writer");
	setenv("FLAGSHM_WRITER_UID", uidbuf, 1);
	cr_expect_str_eq(served(NULL, buf, sizeof buf), "writer");
	unsetenv("FLAGSHM_WRITER_UID");

	/* A snapshot name the writer has given up (the attacker may take it
	 * once it is unlinked) is refused by owner even when named. */
	const void *base;
	size_t size;
	attacker_plants_generation(20);
	rc = shm_snap_map(store, WRITER_UID, 20, &base, &size, err, sizeof err);
	cr_expect_eq(rc, FLAGSHM_EUNTRUSTED, "a foreign snapshot mapped: %s", err);

	/* At most the current and the previous generation of ours stay. */
	uint64_t gens[32];
	int n = rh_store_objects(store, NULL, gens, 32);
	int ours = 0;
	for (int i = 0; i < n && i < 32; i++)
		ours += gens[i] == 8 || gens[i] == 9;
	cr_expect_eq(ours, 2, "current and previous");
	cr_expect_eq(n, 2 + 6, "ours 8, 9; the attacker's 1, 3-6, 20: %d objects", n);
	be(WRITER_UID);
	shm_writer_close(&w);
	be_root();
	wc_snapshot_free(&good);
	wc_snapshot_free(&evil);
}

Test(trust, a_reader_of_another_user_refuses_a_writer_it_does_not_trust)
{
	wc_snapshot good;
	compile_who("writer", &good);
	char err[512] = "";
	shm_writer w;
	be(WRITER_UID);
	cr_assert_eq(shm_writer_open(&w, store, err, sizeof err), 0, "%s", err);
	publish(&w, &good);
	be_root();
	flagshm_store *s = NULL;
	int rc = flagshm_open_ex(store, NULL, NULL, &s, err, sizeof err);
	cr_expect_eq(rc, FLAGSHM_EUNTRUSTED, "%d: %s", rc, err);
	cr_expect(strstr(err, "FLAGSHM_WRITER_UID"), "the message says how to trust it: %s", err);
	flagshm_store_options o = { .size = sizeof o, .writer_user = "no-such-user-here" };
	cr_expect_eq(flagshm_store_open(store, &o, &s, err, sizeof err), FLAGSHM_EINVAL);
	be(WRITER_UID);
	shm_writer_close(&w);
	be_root();
	wc_snapshot_free(&good);
}

/* --------------------------------------------------- generation numbers */

Test(trust, planted_names_near_2_64_do_not_move_or_wrap_the_counter)
{
	evil_prepare();
	wc_snapshot good;
	compile_who("writer", &good);
	attacker_plants_generation(UINT64_MAX - 1);
	attacker_plants_generation(UINT64_MAX);
	char name[160];
	snprintf(name, sizeof name, "flagshm.%s.99999999999999999999999", store);
	attacker_plants(name, 0444, NULL, 0);

	char err[512] = "";
	shm_writer w;
	cr_assert_eq(shm_writer_open(&w, store, err, sizeof err), 0, "%s", err);
	cr_expect_eq(w.next, 1, "foreign names moved the counter to %llu",
		     (unsigned long long)w.next);
	publish(&w, &good);
	cr_expect_eq(w.generation, 1);
	char buf[64];
	cr_expect_str_eq(served(NULL, buf, sizeof buf), "writer");
	shm_writer_close(&w);

	/* --remove removes every name of the store, also one that is no
	 * 64-bit number. */
	cr_assert_eq(shm_store_remove(store, err, sizeof err), 0, "%s", err);
	bool ctl;
	cr_expect_eq(rh_store_objects(store, &ctl, NULL, 0), 0, "objects left after --remove");
	cr_expect_not(ctl);
	wc_snapshot_free(&good);
	wc_snapshot_free(&evil);
}

Test(trust, the_writers_own_counter_at_2_64_minus_2_refuses_instead_of_wrapping)
{
	wc_snapshot good;
	compile_who("writer", &good);
	char err[512] = "";
	shm_writer w;
	cr_assert_eq(shm_writer_open(&w, store, err, sizeof err), 0, "%s", err);
	publish(&w, &good);
	shm_writer_close(&w);
	/* A leftover of the writer's own user at 2^64-2. */
	char name[160];
	snprintf(name, sizeof name, "flagshm.%s.%llu", store, (unsigned long long)(UINT64_MAX - 1));
	cr_assert_eq(plant(name, 0444, good.bytes, good.size), 0);

	cr_assert_eq(shm_writer_open(&w, store, err, sizeof err), 0, "%s", err);
	cr_expect_eq(w.next, UINT64_MAX, "next %llu", (unsigned long long)w.next);
	publish(&w, &good);
	cr_expect_eq(w.generation, UINT64_MAX);
	flagshm_store *s;
	cr_assert_eq(flagshm_open(store, &s), 0);
	flagshm_info info;
	cr_expect_eq(flagshm_store_info(s, &info), 0);
	cr_expect_eq(info.generation, UINT64_MAX);

	int rc = shm_writer_publish(&w, good.bytes, good.size, err, sizeof err);
	cr_expect_eq(rc, FLAGSHM_ESYS, "publish past 2^64-1: %d", rc);
	cr_expect(strstr(err, "exhausted") && strstr(err, "--remove"), "message: %s", err);
	cr_expect_eq(atomic_load(&w.ctl->ctl_generation), UINT64_MAX, "the counter wrapped");
	char buf[64];
	cr_expect_str_eq(served(NULL, buf, sizeof buf), "writer", "the last good one serves");
	flagshm_close(&s);
	shm_writer_close(&w);
	wc_snapshot_free(&good);
}

/* ------------------------------------------------- the lock and --remove */

/*
 * Writers starting while --remove runs, in a loop: a writer that got the
 * store must hold the lock on the object its name points to (never on one
 * --remove unlinked between its open and its lock), and two writers never
 * hold the store at once. Bounded in rounds and time.
 */
#define RACE_ROUNDS 150

Test(trust, remove_between_open_and_lock_never_gives_two_writers, .timeout = 120)
{
	atomic_int *holders = mmap(NULL, sizeof *holders * 2, PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(holders != MAP_FAILED);
	atomic_int *bad = holders + 1;
	atomic_init(holders, 0);
	atomic_init(bad, 0);
	pid_t kids[3];
	int64_t end = rh_mono_ms() + 60000;
	for (int k = 0; k < 3; k++) {
		kids[k] = fork();
		cr_assert(kids[k] >= 0);
		if (kids[k] != 0)
			continue;
		for (int r = 0; r < RACE_ROUNDS && rh_mono_ms() < end; r++) {
			char err[512];
			if (k == 2) {
				shm_store_remove(store, err, sizeof err);
				continue;
			}
			shm_writer w;
			if (shm_writer_open(&w, store, err, sizeof err) != 0)
				continue;
			if (atomic_fetch_add(holders, 1) != 0)
				atomic_fetch_add(bad, 1);
			char path[160];
			struct stat a, b;
			snprintf(path, sizeof path, "/dev/shm/flagshm.%s.lock", store);
			if (fstat(w.lock_fd, &a) != 0 || lstat(path, &b) != 0 ||
			    a.st_ino != b.st_ino)
				atomic_fetch_add(bad, 1);
			atomic_fetch_sub(holders, 1);
			shm_writer_close(&w);
		}
		_exit(0);
	}
	for (int k = 0; k < 3; k++) {
		int st;
		waitpid(kids[k], &st, 0);
		cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: 0x%x", k, st);
	}
	cr_expect_eq(atomic_load(bad), 0, "%d times a writer held an unlinked lock or shared the "
		     "store", atomic_load(bad));
	munmap(holders, sizeof *holders * 2);
}

/* -------------------------------------------------- torn text fields */

struct text_race {
	fs_ctl *ctl;
	atomic_bool stop;
};

static void *text_writer(void *p)
{
	struct text_race *t = p;
	char a[300], b[300];
	memset(a, 'A', sizeof a);
	memset(b, 'B', sizeof b);
	a[299] = b[299] = '\0';
	for (int i = 0; i < 200000 && !atomic_load(&t->stop); i++) {
		shm_ctl_text_set(t->ctl, SHM_TEXT_LAST_ERROR, i & 1 ? a : b + 100);
		shm_ctl_text_set(t->ctl, SHM_TEXT_SYNC_STATE, i & 1 ? b : a + 200);
	}
	atomic_store(&t->stop, true);
	return NULL;
}

/* A text is whole when it is one letter repeated, at one of the lengths the
 * writer uses for it. */
static bool whole(const char *s, size_t la, size_t lb)
{
	size_t n = strlen(s);
	if (n == 0)
		return true;
	for (size_t i = 1; i < n; i++)
		if (s[i] != s[0])
			return false;
	return n == la || n == lb;
}

Test(trust, control_object_text_is_never_read_torn)
{
	fs_ctl *ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			   -1, 0);
	cr_assert(ctl != MAP_FAILED);
	struct text_race t = { .ctl = ctl };
	atomic_init(&t.stop, false);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, text_writer, &t), 0);
	long torn = 0, reads = 0, busy = 0;
	char buf[300];
	while (!atomic_load(&t.stop) && reads < 2000000) {
		if (shm_ctl_text_get(ctl, SHM_TEXT_LAST_ERROR, buf, sizeof buf) != 0)
			busy++;
		else if (!whole(buf, 255, 199))
			torn++;
		if (shm_ctl_text_get(ctl, SHM_TEXT_SYNC_STATE, buf, sizeof buf) != 0)
			busy++;
		else if (!whole(buf, 127, 99))
			torn++;
		reads += 2;
	}
	atomic_store(&t.stop, true);
	pthread_join(th, NULL);
	cr_log_info("%ld reads, %ld busy", reads, busy);
	cr_expect_eq(torn, 0, "%ld torn reads of %ld", torn, reads);
	munmap(ctl, sizeof *ctl);
}
