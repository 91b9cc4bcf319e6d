/*
 * tests/test_count.c - every evaluation counted (docs/metrics.md): exact
 * totals from many processes and threads in `flagshm stats --json`, nothing
 * lost when readers exit or are SIGKILLed, fork children counting on their
 * own, counting off per handle, the "(unknown)" bucket, hostile regions
 * and a squatted socket, flags_json, outcomes and the hook.
 *
 * Real processes: the flagshm-writer binary, readers forked from here, the
 * flagshm tool. No timing thresholds: waits poll the stats for a condition
 * with a generous deadline.
 */
#include "counters.h"
#include "rel_helpers.h"

#include <grp.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#define ATTACKER_UID 47101
#define WAIT_MS 30000

static const char *DOC =
	"{\"formatVersion\":1,\"flags\":["
	"{\"key\":\"a\",\"defaultValue\":true,\"offValue\":false},"
	"{\"key\":\"s\",\"defaultValue\":\"green\",\"offValue\":\"red\"},"
	"{\"key\":\"n\",\"defaultValue\":1.5,\"offValue\":0},"
	"{\"key\":\"j\",\"defaultValue\":{\"x\":1},\"offValue\":{}}]}";

typedef struct wr {
	pid_t pid;
	int out; /* its stdout+stderr */
	char store[64];
	char *doc;
} wr;

static wr W;
static const char *writer_extra[4]; /* more writer arguments, NULL-terminated */

static json_t *stats_json(void);
static size_t expo_lines(const char *file, json_t *arr);
static uint64_t jnum(json_t *o, const char *path);

static void writer_spawn(void)
{
	char *argv[10] = {(char *)rh_bin("FLAGSHM_WRITER"), "--store", W.store, "--source", W.doc};
	for (int i = 0; i < 4 && writer_extra[i]; i++)
		argv[5 + i] = (char *)writer_extra[i];
	W.pid = rh_spawn(argv, &W.out);
	cr_assert(W.pid > 0);
}

static void writer_ready(void)
{
	/* Ready: the store published and the stats object written. */
	char name[SHM_OBJ_NAME_MAX], path[128];
	fm_stats_name(name, sizeof name, W.store);
	snprintf(path, sizeof path, "%s%s", SHM_DIR, name);
	for (int64_t end = rh_mono_ms() + WAIT_MS; rh_mono_ms() < end; rh_sleep_us(5000))
		if (access(path, F_OK) == 0)
			break;
	/* ... with the labels of the published document. */
	for (int64_t end = rh_mono_ms() + WAIT_MS; rh_mono_ms() < end; rh_sleep_us(20000)) {
		json_t *j = stats_json();
		uint64_t g = jnum(j, "generation");
		json_decref(j);
		if (g >= 1)
			return;
	}
	cr_assert_fail("the writer of %s never published (%s)", W.store, path);
}

static void writer_start(const char *tag)
{
	rh_name(W.store, sizeof W.store, tag);
	W.doc = rh_temp_file(DOC, strlen(DOC));
	writer_spawn();
	writer_ready();
}

/* Stop the writer; its output in LOG (may be NULL). */
static void writer_stop(char *log, size_t n)
{
	if (W.pid <= 0)
		return;
	kill(W.pid, SIGTERM);
	char junk[1];
	rh_drain(W.out, log ? log : junk, log ? n : sizeof junk, WAIT_MS);
	close(W.out);
	int st;
	waitpid(W.pid, &st, 0);
	W.pid = 0;
	/* SIGTERM reaches the daemon's own thread (not the counting one):
	 * a clean exit that removes the socket and the stats object. */
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer status 0x%x", st);
	char sock[128];
	fm_sock_path(sock, sizeof sock, W.store);
	cr_expect_neq(access(sock, F_OK), 0, "%s removed", sock);
	char *argv[] = {(char *)rh_bin("FLAGSHM_WRITER"), "--remove", "--store", W.store, NULL};
	char out[512];
	rh_run(argv, out, sizeof out, WAIT_MS);
	unlink(W.doc);
	free(W.doc);
}

static json_t *stats_json(void)
{
	char *argv[] = {(char *)rh_bin("FLAGSHM_TOOL"), "--store", W.store, "stats", "--json", NULL};
	static char out[1 << 20];
	int rc = rh_run(argv, out, sizeof out, WAIT_MS);
	cr_assert_eq(rc, 0, "flagshm stats --json exit %d: %s", rc, out);
	json_error_t je;
	json_t *j = json_loads(out, 0, &je);
	cr_assert(json_is_object(j), "stats --json is not JSON: %s: %s", je.text, out);
	return j;
}

static uint64_t jnum(json_t *o, const char *path)
{
	/* "flags/a/variants/true" */
	char buf[256];
	snprintf(buf, sizeof buf, "%s", path);
	json_t *cur = o;
	for (char *save, *tok = strtok_r(buf, "/", &save); tok && cur; tok = strtok_r(NULL, "/", &save))
		cur = json_object_get(cur, tok);
	return json_is_integer(cur) ? (uint64_t)json_integer_value(cur) : 0;
}

/* Poll the stats until PATH reads WANT (or the deadline); the last value. */
static uint64_t wait_for(const char *path, uint64_t want)
{
	uint64_t got = 0;
	for (int64_t end = rh_mono_ms() + WAIT_MS; rh_mono_ms() < end; rh_sleep_us(100000)) {
		json_t *j = stats_json();
		got = jnum(j, path);
		json_decref(j);
		if (got == want)
			break;
	}
	return got;
}

static flagshm_store *open_store(unsigned flags)
{
	flagshm_store *s = NULL;
	flagshm_store_options o = {.size = sizeof o, .flags = flags};
	char err[256];
	if (flagshm_store_open(W.store, &o, &s, err, sizeof err) != 0)
		return NULL;
	return s;
}

/* ------------------------------------------------ N processes x T threads */

#define NPROC 4
#define NTHR 4
#define NEVAL 20000

static void *eval_thread(void *arg)
{
	flagshm_store *s = arg;
	for (int i = 0; i < NEVAL; i++) {
		flagshm_view v;
		flagshm_view_acquire(s, &v);
		flagshm_view_bool(&v, "a", NULL, false);
		flagshm_view_outcome(&v, i % 4 != 0, 0.002);
		flagshm_view_release(&v);
	}
	return NULL;
}

static int worker(void)
{
	flagshm_store *s = open_store(0);
	if (!s)
		return 1;
	pthread_t t[NTHR];
	for (int i = 0; i < NTHR; i++)
		if (pthread_create(&t[i], NULL, eval_thread, s) != 0)
			return 2;
	for (int i = 0; i < NTHR; i++)
		pthread_join(t[i], NULL);
	flagshm_close(&s);
	return 0;
}

static void wait_kids(pid_t *kids, int n)
{
	for (int i = 0; i < n; i++) {
		int st;
		cr_assert_eq(waitpid(kids[i], &st, 0), kids[i]);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reader %d: status 0x%x", i, st);
	}
}

Test(count, n_processes_t_threads_m_evaluations_give_exactly_ntm)
{
	writer_start("cnt-ntm");
	pid_t kids[NPROC];
	for (int i = 0; i < NPROC; i++) {
		kids[i] = fork();
		cr_assert_geq(kids[i], 0);
		if (kids[i] == 0)
			_exit(worker());
	}
	wait_kids(kids, NPROC);
	uint64_t want = (uint64_t)NPROC * NTHR * NEVAL;
	uint64_t got = wait_for("flags/a/evaluations", want);
	cr_expect_eq(got, want, "evaluations of a: %llu, want %llu", (unsigned long long)got,
		     (unsigned long long)want);
	json_t *j = stats_json();
	cr_expect_eq(jnum(j, "flags/a/variants/true"), want);
	cr_expect_eq(jnum(j, "flags/a/reasons/DEFAULT_ROLLOUT"), want);
	cr_expect_eq(jnum(j, "flags/a/outcomes/true/success"), want / 4 * 3);
	cr_expect_eq(jnum(j, "flags/a/outcomes/true/error"), want / 4);
	cr_expect_eq(jnum(j, "readers"), 0, "every reader exited");
	json_decref(j);
	writer_stop(NULL, 0);
}

/* ------------------------------------------------------- SIGKILL readers */

Test(count, readers_sigkilled_mid_run_lose_nothing)
{
	writer_start("cnt-kill");
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t kids[NPROC];
	for (int i = 0; i < NPROC; i++) {
		kids[i] = fork();
		cr_assert_geq(kids[i], 0);
		if (kids[i] == 0) {
			flagshm_store *s = open_store(0);
			for (int k = 0; s && k < NEVAL; k++)
				flagshm_bool(s, "a", NULL, false);
			if (write(p[1], "x", 1) != 1)
				_exit(3);
			for (;;)
				pause(); /* killed here, its store still open */
		}
	}
	for (int i = 0; i < NPROC; i++) {
		char c;
		cr_assert_eq(read(p[0], &c, 1), 1);
	}
	/* All attached, their counts live; then killed. */
	cr_expect_eq(wait_for("readers", NPROC), NPROC, "readers attached");
	for (int i = 0; i < NPROC; i++) {
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
	}
	uint64_t want = (uint64_t)NPROC * NEVAL;
	cr_expect_eq(wait_for("readers", 0), 0, "readers detached");
	json_t *j = stats_json();
	cr_expect_eq(jnum(j, "flags/a/evaluations"), want, "after the kills: %llu, want %llu",
		     (unsigned long long)jnum(j, "flags/a/evaluations"), (unsigned long long)want);
	json_decref(j);
	writer_stop(NULL, 0);
}

/* ------------------------------------------------------ writer restart */

Test(count, a_new_writer_gets_what_running_readers_counted)
{
	writer_start("cnt-restart");
	int up[2], down[2];
	cr_assert_eq(pipe(up), 0);
	cr_assert_eq(pipe(down), 0);
	pid_t k = fork();
	cr_assert_geq(k, 0);
	if (k == 0) {
		flagshm_store *s = open_store(0);
		char c;
		for (int i = 0; s && i < 100; i++)
			flagshm_bool(s, "a", NULL, false);
		if (!s || write(up[1], "a", 1) != 1 || read(down[0], &c, 1) != 1)
			_exit(1);
		/* The first view after the new writer's publish reconnects. */
		for (int i = 0; i < 50; i++)
			flagshm_bool(s, "a", NULL, false);
		if (write(up[1], "c", 1) != 1)
			_exit(2);
		for (;;)
			pause();
	}
	char c;
	cr_assert_eq(read(up[0], &c, 1), 1);
	cr_expect_eq(wait_for("flags/a/evaluations", 100), 100);
	/* Restart the writer: SIGTERM, then a new one on the same store. */
	kill(W.pid, SIGTERM);
	char junk[4096];
	rh_drain(W.out, junk, sizeof junk, WAIT_MS);
	close(W.out);
	waitpid(W.pid, NULL, 0);
	writer_spawn();
	writer_ready();
	cr_assert_eq(write(down[1], "b", 1), 1);
	cr_assert_eq(read(up[0], &c, 1), 1);
	cr_expect_eq(wait_for("flags/a/evaluations", 150), 150,
		     "the region, with all it counted, handed to the new writer");
	kill(k, SIGKILL);
	waitpid(k, NULL, 0);
	writer_stop(NULL, 0);
}

/* ------------------------------------------------------- thread churn */

static void *churn_thread(void *arg)
{
	flagshm_store *s = arg;
	for (int k = 0; k < 100; k++) {
		flagshm_bool(s, "a", NULL, false);
		flagshm_number(s, "n", NULL, 0);
	}
	return NULL;
}

Test(count, threads_that_come_and_go_are_counted_exactly)
{
	writer_start("cnt-churn");
	pid_t k = fork();
	cr_assert_geq(k, 0);
	if (k == 0) {
		flagshm_store *s = open_store(0);
		if (!s)
			_exit(1);
		/* One after another: each new thread adopts the records of
		 * the one before; two at a time: one of them appends. */
		for (int i = 0; i < 60; i++) {
			pthread_t t[2];
			int n = i % 3 == 0 ? 2 : 1;
			for (int j = 0; j < n; j++)
				if (pthread_create(&t[j], NULL, churn_thread, s) != 0)
					_exit(2);
			for (int j = 0; j < n; j++)
				pthread_join(t[j], NULL);
		}
		flagshm_close(&s);
		_exit(0);
	}
	wait_kids(&k, 1);
	cr_expect_eq(wait_for("flags/a/evaluations", 8000), 8000);
	json_t *j = stats_json();
	cr_expect_eq(jnum(j, "flags/n/variants/1.5"), 8000);
	json_decref(j);
	writer_stop(NULL, 0);
}

/* --------------------------------------------------------------- fork */

Test(count, fork_children_count_on_their_own_and_pre_fork_parents_work)
{
	writer_start("cnt-fork");
	pid_t server = fork();
	cr_assert_geq(server, 0);
	if (server == 0) {
		/* A pre-fork server: the store opened in the parent, never
		 * evaluated there before the fork. */
		flagshm_store *s = open_store(0);
		if (!s)
			_exit(1);
		pid_t w[3];
		for (int i = 0; i < 3; i++) {
			w[i] = fork();
			if (w[i] == 0) {
				for (int k = 0; k < 40; k++)
					flagshm_number(s, "n", NULL, 0);
				_exit(0);
			}
		}
		for (int i = 0; i < 3; i++)
			waitpid(w[i], NULL, 0);
		/* Then the parent counts, forks a child that counts, and
		 * counts again: the child never writes the parent's region. */
		for (int k = 0; k < 100; k++)
			flagshm_bool(s, "a", NULL, false);
		pid_t c = fork();
		if (c == 0) {
			for (int k = 0; k < 30; k++)
				flagshm_bool(s, "a", NULL, false);
			char buf[32];
			for (int k = 0; k < 7; k++)
				flagshm_string(s, "s", NULL, "", buf, sizeof buf);
			_exit(0);
		}
		waitpid(c, NULL, 0);
		for (int k = 0; k < 20; k++)
			flagshm_bool(s, "a", NULL, false);
		flagshm_close(&s);
		_exit(0);
	}
	wait_kids(&server, 1);
	cr_expect_eq(wait_for("flags/a/evaluations", 150), 150);
	json_t *j = stats_json();
	cr_expect_eq(jnum(j, "flags/n/evaluations"), 120, "three workers x 40");
	cr_expect_eq(jnum(j, "flags/n/variants/1.5"), 120);
	cr_expect_eq(jnum(j, "flags/s/variants/green"), 7);
	json_decref(j);
	writer_stop(NULL, 0);
}

/* ------------------------------------------- counting off, (unknown) */

Test(count, counting_off_per_handle_counts_nothing)
{
	writer_start("cnt-off");
	pid_t k = fork();
	cr_assert_geq(k, 0);
	if (k == 0) {
		flagshm_store *off = open_store(FLAGSHM_OPEN_NO_COUNT), *on = open_store(0);
		if (!off || !on)
			_exit(1);
		for (int i = 0; i < 100; i++) {
			flagshm_view v;
			flagshm_view_acquire(off, &v);
			flagshm_view_bool(&v, "a", NULL, false);
			flagshm_view_outcome(&v, true, 0.01);
			char buf[64];
			/* flags_json works without counting */
			if (flagshm_view_flags_json(&v, buf, sizeof buf) != 0 ||
			    strcmp(buf, "{\"a\":true}") != 0)
				_exit(2);
			flagshm_view_release(&v);
		}
		for (int i = 0; i < 50; i++)
			flagshm_number(on, "n", NULL, 0);
		flagshm_close(&off);
		flagshm_close(&on);
		_exit(0);
	}
	wait_kids(&k, 1);
	cr_expect_eq(wait_for("flags/n/evaluations", 50), 50);
	json_t *j = stats_json();
	cr_expect_null(json_object_get(json_object_get(j, "flags"), "a"),
		       "the uncounted handle's flag shows");
	json_decref(j);
	writer_stop(NULL, 0);
}

Test(count, unknown_keys_share_one_label)
{
	writer_start("cnt-unk");
	pid_t k = fork();
	cr_assert_geq(k, 0);
	if (k == 0) {
		flagshm_store *s = open_store(0);
		char key[32];
		for (int i = 0; s && i < 2000; i++) {
			snprintf(key, sizeof key, "no-such-flag-%d", i);
			flagshm_bool(s, key, NULL, false);
		}
		flagshm_close(&s);
		_exit(s ? 1 : 0);
	}
	wait_kids(&k, 1);
	cr_expect_eq(wait_for("flags/(unknown)/evaluations", 2000), 2000);
	json_t *j = stats_json();
	json_t *flags = json_object_get(j, "flags");
	cr_expect_eq(json_object_size(flags), 1, "labels: %zu", json_object_size(flags));
	cr_expect_eq(jnum(j, "flags/(unknown)/errors/FLAG_NOT_FOUND"), 2000);
	cr_expect_eq(jnum(j, "flags/(unknown)/variants/(none)"), 2000);
	json_decref(j);
	writer_stop(NULL, 0);
}

/* ------------------------------------------------------------ hostile */

/* Connect to the store's socket and hand over FD (no checks of ours). */
static int hand_over(int fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	fm_sock_path(sa.sun_path, sizeof sa.sun_path, W.store);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) != 0)
		return -1;
	struct {
		uint32_t magic, version;
		int32_t pid;
	} hello = {FM_MAGIC, FM_VERSION, 1};
	struct iovec iov = {.iov_base = &hello, .iov_len = sizeof hello};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof u);
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof u.buf};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(s, &mh, 0) == (ssize_t)sizeof hello ? s : -1;
}

static fm_rec *put_rec(uint8_t *base, size_t *off, unsigned kind, unsigned nslots, const char *key,
		       const char *var, uint64_t count)
{
	fm_rec *r = (fm_rec *)(base + *off);
	size_t kl = strlen(key), vl = strlen(var);
	size_t need = (sizeof(fm_rec) + nslots * 8 + kl + vl + 63) & ~(size_t)63;
	r->r_size = (uint32_t)need;
	r->r_kind = (uint16_t)kind;
	r->r_nslots = (uint16_t)nslots;
	r->r_key_len = (uint16_t)kl;
	r->r_var_len = (uint16_t)vl;
	for (unsigned i = 0; i < nslots; i++)
		r->r_slot[i] = count;
	memcpy((char *)&r->r_slot[nslots], key, kl);
	memcpy((char *)&r->r_slot[nslots] + kl, var, vl);
	*off += need;
	return r;
}

/* As the attacker: a pipe, an unsealed memfd, and sealed regions that lie
 * in every way the format allows. Keeps its connections open (returns
 * after writing; the caller's process stays until killed). */
static int attack(void *arg)
{
	(void)arg;
	int p[2];
	if (pipe(p) != 0 || hand_over(p[0]) < 0)
		return 10;
	int un = memfd_create("x", 0);
	if (un < 0 || ftruncate(un, 1 << 16) != 0 || hand_over(un) < 0)
		return 11;
	int fd = memfd_create("evil", MFD_ALLOW_SEALING);
	size_t size = 1 << 20;
	if (fd < 0 || ftruncate(fd, (off_t)size) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0)
		return 12;
	uint8_t *b = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (b == MAP_FAILED)
		return 13;
	fm_hdr *h = (fm_hdr *)b;
	h->rh_magic = FM_MAGIC;
	h->rh_version = FM_VERSION;
	h->rh_hdr_size = sizeof *h;
	h->rh_used = UINT64_MAX; /* far past the file */
	size_t off = FM_FIRST;
	size_t evil_off = off;
	put_rec(b, &off, FM_K_EVAL, FM_EVAL_SLOTS, "evil-flag", "pwned", 1000000);
	/* An exposure ring that lies: a huge count, entries naming the
	 * record above, one outside the region, torn ones, a long id. */
	fm_rec *ring = put_rec(b, &off, FM_K_RING, FM_RING_SLOTS, "", "", 0);
	ring->r_slot[0] = UINT64_MAX - 3;
	for (uint64_t n = 0; n < FM_RING_N; n++) {
		uint64_t *e = &ring->r_slot[1 + n * FM_RING_WORDS];
		uint64_t seq = UINT64_MAX - 3 - FM_RING_N + n + 1;
		e[0] = n % 3 == 0 ? seq : n; /* two in three torn */
		e[1] = (uint64_t)INT64_MAX;  /* a time far from now */
		e[2] = (n % 2 ? (uint64_t)evil_off : 0xfffffff0u) | (uint64_t)3 << 32 |
		       (uint64_t)(n % 5 ? 40 : 255) << 40;
		memset(&e[3], n % 7 ? 'A' : 0x1b, 40);
	}
	put_rec(b, &off, FM_K_EVAL, FM_EVAL_SLOTS, "s", "pwned-variant", 7);
	put_rec(b, &off, FM_K_EVAL, 3, "s", "green", 5);	      /* wrong slot count */
	put_rec(b, &off, FM_K_OUTCOME, FM_OUT_SLOTS, "j", "\x1b[31m", 9); /* control chars */
	fm_rec *r = put_rec(b, &off, 77, 1, "x", "y", 1);	      /* unknown kind */
	(void)r;
	fm_rec *bad = (fm_rec *)(b + off);
	bad->r_size = 0x7fffffc0u; /* huge: ends the walk */
	bad->r_nslots = 0xffff;
	bad->r_key_len = 0xffff;
	if (hand_over(fd) < 0)
		return 14;
	/* A second region: wrong magic. */
	int fd2 = memfd_create("evil2", MFD_ALLOW_SEALING);
	if (fd2 < 0 || ftruncate(fd2, 4096) != 0 || fcntl(fd2, F_ADD_SEALS, F_SEAL_SHRINK) != 0 ||
	    hand_over(fd2) < 0)
		return 15;
	/* Grow the lying region while the writer reads it. */
	for (int i = 0; i < 20; i++) {
		if (ftruncate(fd, (off_t)(size + (size_t)i * 65536)) != 0)
			return 16;
		h->rh_used = (uint64_t)i * 1000003;
		rh_sleep_us(20000);
	}
	return 0;
}

Test(count, a_hostile_region_misleads_only_about_its_own_counts)
{
	char dir[] = "/tmp/flagshm-expo-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char xfile[128];
	snprintf(xfile, sizeof xfile, "%s/exposures.jsonl", dir);
	writer_extra[0] = "--exposures";
	writer_extra[1] = xfile;
	writer_start("cnt-hostile");
	pid_t evil = fork();
	cr_assert_geq(evil, 0);
	if (evil == 0) {
		if (setgroups(0, NULL) != 0 || setresgid(ATTACKER_UID, ATTACKER_UID, ATTACKER_UID) != 0 ||
		    setresuid(ATTACKER_UID, ATTACKER_UID, ATTACKER_UID) != 0)
			_exit(99);
		int rc = attack(NULL);
		if (rc)
			_exit(rc);
		for (;;)
			pause();
	}
	/* An honest reader, as another user too: it is counted. */
	pid_t honest = fork();
	cr_assert_geq(honest, 0);
	if (honest == 0) {
		if (setgroups(0, NULL) != 0 || setresgid(47102, 47102, 47102) != 0 ||
		    setresuid(47102, 47102, 47102) != 0)
			_exit(99);
		setenv("FLAGSHM_WRITER_UID", "0", 1);
		flagshm_store *s = open_store(0);
		for (int k = 0; s && k < 1000; k++)
			flagshm_bool(s, "a", NULL, false);
		flagshm_close(&s);
		_exit(s ? 1 : 0);
	}
	wait_kids(&honest, 1);
	cr_expect_eq(wait_for("flags/a/variants/true", 1000), 1000);
	/* The lying region's counts show, under labels of the document. */
	cr_expect_eq(wait_for("flags/s/variants/(other)", 49), 49); /* 7 reasons x 7 */
	kill(evil, SIGKILL);
	int st;
	waitpid(evil, &st, 0);
	cr_expect_eq(wait_for("readers", 0), 0);
	json_t *j = stats_json();
	char *text = json_dumps(j, JSON_COMPACT);
	cr_expect_null(strstr(text, "evil"), "a label came from a reader: %s", text);
	cr_expect_null(strstr(text, "pwned"), "a label came from a reader: %s", text);
	cr_expect_null(strstr(text, "\x1b"), "a control character: %s", text);
	cr_expect_eq(jnum(j, "flags/a/evaluations"), 1000, "the honest reader's count: %s", text);
	cr_expect_eq(jnum(j, "flags/s/variants/green"), 0, "a record with a wrong slot count: %s",
		     text);
	cr_expect_eq(jnum(j, "flags/(unknown)/variants/(other)"), 7000000, "%s", text);
	free(text);
	json_decref(j);
	cr_expect_eq(kill(W.pid, 0), 0, "the writer is alive");
	char log[8192];
	writer_stop(log, sizeof log);
	cr_expect(strstr(log, "not a memfd sealed against shrinking"), "log: %s", log);
	cr_expect(strstr(log, "not a flagshm counter region"), "log: %s", log);
	/* The lying ring's entries: whole JSON lines, labels from the
	 * document, no raw control character. */
	json_t *arr = json_array();
	expo_lines(xfile, arr);
	size_t i;
	json_t *x;
	json_array_foreach(arr, i, x) {
		const char *flag = json_string_value(json_object_get(x, "flag"));
		cr_expect(flag && (strcmp(flag, "(unknown)") == 0 || strlen(flag) == 1),
			  "exposure flag %s", flag ? flag : "(null)");
		const char *id = json_string_value(json_object_get(x, "contextId"));
		cr_expect(id && strlen(id) <= FM_RING_ID_MAX * 6, "id length");
	}
	json_decref(arr);
	writer_extra[0] = writer_extra[1] = NULL;
	char old[160];
	snprintf(old, sizeof old, "%s.1", xfile);
	unlink(xfile);
	unlink(old);
	rmdir(dir);
}

Test(count, a_squatted_socket_path_is_refused_and_flags_still_serve)
{
	char store[64];
	rh_name(store, sizeof store, "cnt-squat");
	char path[128];
	fm_sock_path(path, sizeof path, store);
	pid_t k = fork();
	cr_assert_geq(k, 0);
	if (k == 0) {
		if (setresgid(ATTACKER_UID, ATTACKER_UID, ATTACKER_UID) != 0 ||
		    setresuid(ATTACKER_UID, ATTACKER_UID, ATTACKER_UID) != 0)
			_exit(99);
		int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0666);
		_exit(fd >= 0 ? 0 : 1);
	}
	wait_kids(&k, 1);
	char *doc = rh_temp_file(DOC, strlen(DOC));
	char *argv[] = {(char *)rh_bin("FLAGSHM_WRITER"), "--store", store, "--source", doc,
			"--once", NULL};
	/* --once does not count: run it as a daemon instead. */
	argv[5] = NULL;
	int out;
	pid_t w = rh_spawn(argv, &out);
	cr_assert(w > 0);
	flagshm_store *s = NULL;
	bool served = false;
	for (int64_t end = rh_mono_ms() + WAIT_MS; rh_mono_ms() < end && !served; rh_sleep_us(5000)) {
		if (!s)
			flagshm_open(store, &s);
		served = s && flagshm_bool(s, "a", NULL, false);
	}
	cr_expect(served, "flags are served");
	flagshm_close(&s);
	kill(w, SIGTERM);
	char log[4096];
	rh_drain(out, log, sizeof log, WAIT_MS);
	close(out);
	waitpid(w, NULL, 0);
	cr_expect(strstr(log, "not this writer's socket") && strstr(log, "uid 47101"), "log: %s",
		  log);
	struct stat st;
	cr_expect(lstat(path, &st) == 0 && st.st_uid == ATTACKER_UID, "the squatter's file stays");
	unlink(path);
	char *rm[] = {(char *)rh_bin("FLAGSHM_WRITER"), "--remove", "--store", store, NULL};
	char o[256];
	rh_run(rm, o, sizeof o, WAIT_MS);
	unlink(doc);
	free(doc);
}

/* ----------------------------------------- flags_json, outcome, hook */

static int hook_calls;
static char hook_seen[256];

static void hook(void *ud, const flagshm_eval_event *ev)
{
	(void)ud;
	hook_calls++;
	snprintf(hook_seen + strlen(hook_seen), sizeof hook_seen - strlen(hook_seen), "%s=%s/%s/%s;",
		 ev->key, ev->variant, flagshm_reason_name(ev->reason),
		 flagshm_error_code_name(ev->error));
}

Test(count, flags_json_outcome_and_hook)
{
	writer_start("cnt-api");
	flagshm_store *s = open_store(0);
	cr_assert_not_null(s);
	flagshm_view v;
	cr_assert_eq(flagshm_view_acquire(s, &v), 0);
	flagshm_view_bool(&v, "a", NULL, false);
	flagshm_view_string(&v, "s", NULL, "");
	flagshm_view_bool(&v, "a", NULL, false);
	flagshm_view_json(&v, "j", NULL, "");
	flagshm_view_number(&v, "n", NULL, 0);
	flagshm_view_bool(&v, "missing", NULL, false);
	char buf[256];
	cr_expect_eq(flagshm_view_flags_json(&v, buf, sizeof buf), 0);
	cr_expect_str_eq(buf, "{\"a\":true,\"s\":\"green\",\"j\":{\"x\":1},\"n\":1.5}");
	char small[16];
	cr_expect_eq(flagshm_view_flags_json(&v, small, sizeof small), FLAGSHM_EFULL);
	cr_expect_str_eq(small, "{\"a\":true}", "whole members only: %s", small);
	cr_expect_eq(flagshm_view_outcome(&v, true, -1), FLAGSHM_EINVAL);
	cr_expect_eq(flagshm_view_outcome(&v, true, 0.0001), 0);
	cr_expect_eq(flagshm_view_outcome(&v, false, 20), 0);

	/* A nested view has its own trail. */
	flagshm_view inner;
	cr_assert_eq(flagshm_view_acquire(s, &inner), 0);
	flagshm_view_number(&inner, "n", NULL, 0);
	cr_expect_eq(flagshm_view_flags_json(&inner, buf, sizeof buf), 0);
	cr_expect_str_eq(buf, "{\"n\":1.5}");
	flagshm_view_release(&inner);
	flagshm_view_release(&v);

	cr_expect_eq(flagshm_store_set_hook(s, hook, NULL), 0);
	flagshm_bool(s, "a", NULL, false);
	flagshm_bool(s, "s", NULL, false);
	flagshm_bool(s, "zz", NULL, false);
	cr_expect_eq(flagshm_store_set_hook(s, NULL, NULL), 0);
	flagshm_bool(s, "a", NULL, false);
	cr_expect_eq(hook_calls, 3);
	cr_expect_str_eq(hook_seen, "a=true/DEFAULT_ROLLOUT/NONE;s=(none)/ERROR/TYPE_MISMATCH;"
				    "zz=(none)/ERROR/FLAG_NOT_FOUND;");
	flagshm_close(&s);

	cr_expect_eq(wait_for("flags/a/evaluations", 4), 4);
	json_t *j = stats_json();
	cr_expect_eq(jnum(j, "flags/a/outcomes/true/success"), 1);
	cr_expect_eq(jnum(j, "flags/a/outcomes/true/error"), 1);
	cr_expect_eq(jnum(j, "flags/j/outcomes/default/success"), 1);
	cr_expect_eq(jnum(j, "flags/n/outcomes/1.5/success"), 1, "outer view only");
	cr_expect_eq(jnum(j, "flags/n/evaluations"), 2);
	cr_expect_eq(jnum(j, "flags/s/errors/TYPE_MISMATCH"), 1);
	json_decref(j);
	/* The text form. */
	char out[8192];
	char *argv[] = {(char *)rh_bin("FLAGSHM_TOOL"), "--store", W.store, "stats", NULL};
	cr_expect_eq(rh_run(argv, out, sizeof out, WAIT_MS), 0, "%s", out);
	cr_expect(strstr(out, "4 evaluations") && strstr(out, "TYPE_MISMATCH 1"), "%s", out);
	writer_stop(NULL, 0);
	/* No writer: no statistics, exit 1, saying why. */
	cr_expect_eq(rh_run(argv, out, sizeof out, WAIT_MS), 1, "%s", out);
	cr_expect(strstr(out, "no store") || strstr(out, "not running"), "%s", out);
}

/* ------------------------------------------------------------ exposures */

/* A reader that evaluates "a" and "s" for user ids FIRST.. (NIDS of them,
 * round after round; or a new id each time when NIDS is 0) until a byte
 * arrives on STOP. */
static void expo_reader(int stop, int nids)
{
	flagshm_store *s = open_store(0);
	if (!s)
		_exit(1);
	fcntl(stop, F_SETFL, O_NONBLOCK);
	char id[32], c;
	flagshm_ctx ctx;
	for (long i = 0; read(stop, &c, 1) != 1; i++) {
		snprintf(id, sizeof id, "user-%ld", nids ? i % nids : i);
		flagshm_ctx_init(&ctx);
		flagshm_ctx_string(&ctx, "userId", id);
		flagshm_view v;
		flagshm_view_acquire(s, &v);
		flagshm_view_bool(&v, "a", &ctx, false);
		flagshm_view_string(&v, "s", &ctx, "");
		flagshm_view_release(&v);
		if (i % 1000 == 999)
			rh_sleep_us(1000);
	}
	flagshm_close(&s);
	_exit(0);
}

/* Lines of FILE (each must be a whole JSON object) into ARR. */
static size_t expo_lines(const char *file, json_t *arr)
{
	FILE *f = fopen(file, "r");
	if (!f)
		return 0;
	char line[2048];
	size_t n = 0;
	while (fgets(line, sizeof line, f)) {
		json_error_t je;
		json_t *j = json_loads(line, 0, &je);
		cr_assert(json_is_object(j), "%s: not a JSON line: %s", file, line);
		json_array_append_new(arr, j);
		n++;
	}
	fclose(f);
	return n;
}

/* Distinct "flag/contextId" pairs among the lines. */
static size_t expo_pairs(json_t *arr)
{
	json_t *set = json_object();
	size_t i;
	json_t *j;
	json_array_foreach(arr, i, j) {
		char k[256];
		snprintf(k, sizeof k, "%s/%s", json_string_value(json_object_get(j, "flag")),
			 json_string_value(json_object_get(j, "contextId")));
		json_object_set_new(set, k, json_true());
	}
	size_t n = json_object_size(set);
	json_decref(set);
	return n;
}

Test(count, exposures_are_written_once_per_flag_variant_and_id_per_minute)
{
	char dir[] = "/tmp/flagshm-expo-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char file[128];
	snprintf(file, sizeof file, "%s/exposures.jsonl", dir);
	writer_extra[0] = "--exposures";
	writer_extra[1] = file;
	writer_start("cnt-expo");
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t k = fork();
	cr_assert_geq(k, 0);
	if (k == 0)
		expo_reader(p[0], 30);
	size_t pairs = 0;
	for (int64_t end = rh_mono_ms() + WAIT_MS; rh_mono_ms() < end && pairs < 60;
	     rh_sleep_us(50000)) {
		json_t *arr = json_array();
		expo_lines(file, arr);
		pairs = expo_pairs(arr);
		json_decref(arr);
	}
	cr_assert_eq(write(p[1], "x", 1), 1);
	wait_kids(&k, 1);
	cr_expect_eq(pairs, 60, "30 ids x 2 flags, got %zu pairs", pairs);
	cr_expect_eq(wait_for("readers", 0), 0);
	json_t *arr = json_array();
	size_t n = expo_lines(file, arr);
	/* Once per flag x variant x id per minute: a run that crossed a
	 * minute boundary may write a pair twice, never twice in a minute. */
	json_t *seen = json_object();
	size_t i;
	json_t *j;
	json_array_foreach(arr, i, j) {
		const char *flag = json_string_value(json_object_get(j, "flag"));
		const char *var = json_string_value(json_object_get(j, "variant"));
		const char *id = json_string_value(json_object_get(j, "contextId"));
		const char *t = json_string_value(json_object_get(j, "time"));
		cr_assert(flag && var && id && t, "fields of line %zu", i);
		cr_expect_str_eq(json_string_value(json_object_get(j, "reason")), "DEFAULT_ROLLOUT");
		cr_expect_str_eq(var, strcmp(flag, "a") == 0 ? "true" : "green");
		char key[256];
		snprintf(key, sizeof key, "%s/%s/%s/%.16s", flag, var, id, t); /* to the minute */
		cr_expect_null(json_object_get(seen, key), "twice in a minute: %s", key);
		json_object_set_new(seen, key, json_true());
	}
	cr_expect_leq(n, 120, "%zu lines", n);
	json_decref(seen);
	json_decref(arr);
	json_t *st = stats_json();
	cr_expect_eq(jnum(st, "exposures/written"), n);
	json_decref(st);
	writer_stop(NULL, 0);
	writer_extra[0] = writer_extra[1] = NULL;
	unlink(file);
	rmdir(dir);
}

Test(count, the_exposure_file_is_rotated_by_size)
{
	char dir[] = "/tmp/flagshm-expo-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char file[128], old[140];
	snprintf(file, sizeof file, "%s/exposures.jsonl", dir);
	snprintf(old, sizeof old, "%s.1", file);
	writer_extra[0] = "--exposures";
	writer_extra[1] = file;
	writer_extra[2] = "--exposures-max-bytes";
	writer_extra[3] = "4096";
	writer_start("cnt-rot");
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t k = fork();
	cr_assert_geq(k, 0);
	if (k == 0)
		expo_reader(p[0], 0); /* a new id every time: the file grows */
	bool rotated = false;
	for (int64_t end = rh_mono_ms() + WAIT_MS; rh_mono_ms() < end && !rotated;
	     rh_sleep_us(50000))
		rotated = access(old, F_OK) == 0;
	cr_assert_eq(write(p[1], "x", 1), 1);
	wait_kids(&k, 1);
	cr_expect(rotated, "%s appeared", old);
	writer_stop(NULL, 0);
	struct stat a, b;
	cr_assert_eq(stat(old, &a), 0);
	cr_assert_eq(stat(file, &b), 0);
	/* Rotated at the first line that reached 4096 bytes. */
	cr_expect(a.st_size >= 4096 && a.st_size < 4096 + 512, "%s: %lld bytes", old,
		  (long long)a.st_size);
	cr_expect(b.st_size < 4096 + 512, "%s: %lld bytes", file, (long long)b.st_size);
	json_t *arr = json_array();
	cr_expect_gt(expo_lines(old, arr), 0);
	expo_lines(file, arr); /* whole lines in both */
	json_decref(arr);
	writer_extra[0] = writer_extra[1] = writer_extra[2] = writer_extra[3] = NULL;
	unlink(file);
	unlink(old);
	rmdir(dir);
}
