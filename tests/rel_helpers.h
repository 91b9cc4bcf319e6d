/*
 * tests/rel_helpers.h - shared by the reliability suites (test_faults.c,
 * test_hostile_docs.c, test_hostile_shm.c): unique store names, compiling
 * documents given as text, counting a store's objects in /dev/shm, and
 * running the flagshm-writer / flagshm binaries with a time bound.
 * Header-only; no Criterion asserts except in rh_compile (callers in child
 * processes use the non-asserting functions).
 */
#ifndef FLAGSHM_TESTS_REL_HELPERS_H
#define FLAGSHM_TESTS_REL_HELPERS_H

#include "compile.h"
#include "flagshm.h"
#include "shm.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* "TAG-PID": unique per test process (Criterion forks one per test). */
static inline void rh_name(char *buf, size_t n, const char *tag)
{
	snprintf(buf, n, "%s-%d", tag, (int)getpid());
}

static inline int64_t rh_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* This thread's CPU time in us: a cost bound measured with it holds
 * however loaded the machine is (time spent waiting for a CPU is not
 * counted), so such a bound can be generous and still mean something. */
static inline int64_t rh_cpu_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t rh_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t rh_real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void rh_sleep_us(int64_t us)
{
	struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Load and compile LEN bytes of TEXT as flagshm-writer would (label
 * "flags.json"). 0 and *out, or -1 with the errors in *errs. */
static inline int rh_try_compile(const char *text, size_t len, const wc_limits *lim,
				 wc_snapshot *out, wc_errors *errs)
{
	wc_limits def = wc_limits_default();
	json_t *doc = NULL;
	memset(out, 0, sizeof *out);
	int rc = wc_load_buffer(text, len, "flags.json", lim ? lim : &def, &doc, errs);
	if (rc == 0)
		rc = wc_compile(doc, NULL, "flags.json", lim ? lim : &def, out, errs);
	json_decref(doc);
	return rc;
}

/* Compile TEXT or fail the test, printing the errors. */
static inline void rh_compile(const char *text, wc_snapshot *out)
{
	wc_errors errs = { 0 };
	int rc = rh_try_compile(text, strlen(text), NULL, out, &errs);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	wc_errors_free(&errs);
	cr_assert_eq(rc, 0, "the test document does not compile");
}

/*
 * A "variant" document: every value says V, so a view is whole when every
 * flag agrees. Flags n0..n7 (number V), s ("v<V>"), j ({"v":V}), b (V even)
 * and, when PAD > 0, PAD flags whose descriptions hold ~60 KB of filler
 * each, to make a snapshot large enough that publishing it takes a while.
 * Returns malloc'd text.
 */
static inline char *rh_variant_doc(unsigned v, unsigned pad)
{
	size_t cap = 8192 + (size_t)pad * 62000;
	char *d = malloc(cap);
	cr_assert_not_null(d);
	size_t o = (size_t)snprintf(d, cap, "{\"formatVersion\":1,\"flags\":[");
	for (int i = 0; i < 8; i++)
		o += (size_t)snprintf(d + o, cap - o,
				      "{\"key\":\"n%d\",\"defaultValue\":%u,\"offValue\":%u},", i, v, v);
	o += (size_t)snprintf(d + o, cap - o,
			      "{\"key\":\"s\",\"defaultValue\":\"v%u\",\"offValue\":\"off\"},"
			      "{\"key\":\"j\",\"defaultValue\":{\"v\":%u},\"offValue\":{}},"
			      "{\"key\":\"b\",\"defaultValue\":%s}",
			      v, v, v % 2 ? "false" : "true");
	for (unsigned p = 0; p < pad; p++) {
		o += (size_t)snprintf(d + o, cap - o,
				      ",{\"key\":\"pad%u\",\"defaultValue\":%u,\"offValue\":0,"
				      "\"description\":\"",
				      p, v);
		for (int k = 0; k < 60000; k++)
			d[o++] = (char)('a' + (k + p + v) % 26);
		o += (size_t)snprintf(d + o, cap - o, "\"}");
	}
	snprintf(d + o, cap - o, "]}");
	return d;
}

static inline void rh_compile_variant(unsigned v, unsigned pad, wc_snapshot *out)
{
	char *d = rh_variant_doc(v, pad);
	rh_compile(d, out);
	free(d);
}

/* Check that view V reads one whole variant: 0 and *variant, or a short
 * description of what is wrong in WHY. No Criterion asserts (children). */
static inline int rh_view_variant(const flagshm_view *v, long *variant, char *why, size_t n)
{
	flagshm_result r;
	char key[8];
	long first = -1;
	for (int i = 0; i < 8; i++) {
		snprintf(key, sizeof key, "n%d", i);
		int rc = flagshm_evaluate(v, key, NULL, &r);
		if (rc != 0 || r.type != FLAGSHM_TYPE_NUMBER) {
			snprintf(why, n, "generation %llu: %s: rc %d reason %s code %s",
				 (unsigned long long)v->generation, key, rc,
				 flagshm_reason_name(r.reason), flagshm_error_code_name(r.error_code));
			return -1;
		}
		if (r.generation != v->generation) {
			snprintf(why, n, "%s: result generation %llu in a view of %llu", key,
				 (unsigned long long)r.generation, (unsigned long long)v->generation);
			return -1;
		}
		if (first < 0)
			first = (long)r.value.num;
		else if ((long)r.value.num != first) {
			snprintf(why, n, "generation %llu mixes variants %ld and %ld",
				 (unsigned long long)v->generation, first, (long)r.value.num);
			return -1;
		}
	}
	char want[32];
	snprintf(want, sizeof want, "v%ld", first);
	const char *s = flagshm_view_string(v, "s", NULL, "(fallback)");
	if (strcmp(s, want) != 0) {
		snprintf(why, n, "generation %llu: s is '%s', n0 is %ld",
			 (unsigned long long)v->generation, s, first);
		return -1;
	}
	snprintf(want, sizeof want, "{\"v\":%ld}", first);
	s = flagshm_view_json(v, "j", NULL, "(fallback)");
	if (strcmp(s, want) != 0) {
		snprintf(why, n, "generation %llu: j is '%s', n0 is %ld",
			 (unsigned long long)v->generation, s, first);
		return -1;
	}
	if (flagshm_view_bool(v, "b", NULL, first % 2 != 0) != (first % 2 == 0)) {
		snprintf(why, n, "generation %llu: b disagrees with n0 %ld",
			 (unsigned long long)v->generation, first);
		return -1;
	}
	*variant = first;
	return 0;
}

/* Objects of STORE in /dev/shm: *ctl set when the control object exists;
 * returns the number of generation objects and fills GENS (up to NG). */
static inline int rh_store_objects(const char *store, bool *ctl, uint64_t *gens, int ng)
{
	char prefix[SHM_OBJ_NAME_MAX];
	size_t pl = (size_t)snprintf(prefix, sizeof prefix, "flagshm.%s", store);
	DIR *d = opendir("/dev/shm");
	int n = 0;
	if (ctl)
		*ctl = false;
	if (!d)
		return -1;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, prefix, pl) != 0)
			continue;
		if (de->d_name[pl] == '\0') {
			if (ctl)
				*ctl = true;
		} else if (de->d_name[pl] == '.' && de->d_name[pl + 1] >= '0' &&
			   de->d_name[pl + 1] <= '9') { /* not the ".lock" object */
			if (n < ng && gens)
				gens[n] = strtoull(de->d_name + pl + 1, NULL, 10);
			n++;
		}
	}
	closedir(d);
	return n;
}

/* Number of open descriptors of this process. */
static inline int rh_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and the directory's own descriptor */
}

/* Path of a built binary that meson passes in the environment. */
static inline const char *rh_bin(const char *env)
{
	const char *p = getenv(env);
	cr_assert(p && *p, "%s is not set (run through meson test)", env);
	return p;
}

/* Start ARGV with stdout+stderr to a pipe; *fd gets the read end. */
static inline pid_t rh_spawn(char *const argv[], int *fd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -1;
	}
	*fd = p[0];
	return pid;
}

/* Read FD to EOF into OUT (N bytes, NUL-terminated, excess dropped) within
 * TIMEOUT_MS; returns false on timeout. */
static inline bool rh_drain(int fd, char *out, size_t n, int64_t timeout_ms)
{
	size_t o = 0;
	int64_t end = rh_mono_ms() + timeout_ms;
	char junk[4096];
	for (;;) {
		int64_t left = end - rh_mono_ms();
		if (left <= 0)
			break;
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, (int)left) <= 0)
			continue;
		ssize_t r = o + 1 < n ? read(fd, out + o, n - 1 - o) : read(fd, junk, sizeof junk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (n)
				out[o] = '\0';
			return true;
		}
		if (o + 1 < n)
			o += (size_t)r;
	}
	if (n)
		out[o] = '\0';
	return false;
}

/* Run ARGV to completion within TIMEOUT_MS, output (stdout and stderr) in
 * OUT; returns the exit status, 128+signal, or -1 (killed on timeout). */
static inline int rh_run(char *const argv[], char *out, size_t n, int64_t timeout_ms)
{
	int fd = -1, st;
	pid_t pid = rh_spawn(argv, &fd);
	cr_assert(pid > 0, "cannot start %s", argv[0]);
	bool done = rh_drain(fd, out, n, timeout_ms);
	close(fd);
	if (!done)
		kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	if (!done)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Write LEN bytes to a fresh temporary file; returns its path (malloc'd). */
static inline char *rh_temp_file(const void *data, size_t len)
{
	const char *dir = getenv("TMPDIR");
	char *path;
	cr_assert(asprintf(&path, "%s/flagshm-rel-XXXXXX.json", dir && *dir ? dir : "/tmp") > 0);
	int fd = mkstemps(path, 5);
	cr_assert(fd >= 0, "mkstemps %s: %s", path, strerror(errno));
	const char *p = data;
	size_t done = 0;
	while (done < len) {
		ssize_t w = write(fd, p + done, len - done);
		cr_assert(w > 0, "write %s: %s", path, strerror(errno));
		done += (size_t)w;
	}
	close(fd);
	return path;
}

#endif
