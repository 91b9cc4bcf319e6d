/*
 * tests/shm_helpers.h - shared by test_store.c and test_process.c: unique
 * store names, generation-stamped documents, and publishing them with
 * shm_writer directly (no daemon). Header-only: each suite is one file.
 */
#ifndef FLAGSHM_TESTS_SHM_HELPERS_H
#define FLAGSHM_TESTS_SHM_HELPERS_H

#include "compile.h"
#include "flagshm.h"
#include "shm.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Flags of a generation-stamped document: every number flag's value is the
 * generation, and so is the string flag's ("g<G>"): a view that mixed two
 * generations would see two numbers. */
#define TS_NFLAGS 8

/* "t-TAG-PID": unique per test process, so suites can run in parallel. */
static inline void ts_name(char *buf, size_t n, const char *tag)
{
	snprintf(buf, n, "t-%s-%d", tag, (int)getpid());
}

/* Compile JSON (a single quote stands for a double quote) for ENV. */
static inline void ts_compile(const char *json, const char *env, wc_snapshot *out)
{
	char *text = strdup(json);
	for (char *p = text; *p; p++)
		if (*p == '\'')
			*p = '"';
	json_error_t je;
	json_t *doc = json_loads(text, 0, &je);
	cr_assert(doc, "test document does not parse: %s: %s", je.text, text);
	wc_limits lim = wc_limits_default();
	wc_errors errs = { 0 };
	int rc = wc_compile(doc, env, "test.json", &lim, out, &errs);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	cr_assert_eq(rc, 0, "test document does not compile (%zu errors): %s", errs.n, text);
	wc_errors_free(&errs);
	json_decref(doc);
	free(text);
}

/* The document of generation G: flags n0..n7 = G, s = "g<G>", on = true. */
static inline void ts_compile_gen(uint64_t g, wc_snapshot *out)
{
	char doc[4096];
	int o = snprintf(doc, sizeof doc, "{'formatVersion':1,'flags':[");
	for (int i = 0; i < TS_NFLAGS; i++)
		o += snprintf(doc + o, sizeof doc - (size_t)o,
			      "{'key':'n%d','defaultValue':%llu,'offValue':%llu},", i,
			      (unsigned long long)g, (unsigned long long)g);
	snprintf(doc + o, sizeof doc - (size_t)o,
		 "{'key':'s','defaultValue':'g%llu','offValue':'off'},"
		 "{'key':'on','defaultValue':true},"
		 "{'key':'j','defaultValue':{'g':%llu},'offValue':{}}]}",
		 (unsigned long long)g, (unsigned long long)g);
	ts_compile(doc, NULL, out);
}

/* Publish the generation-stamped document for w's next generation. */
static inline void ts_publish_next(shm_writer *w)
{
	wc_snapshot s = { 0 };
	char err[512] = "";
	ts_compile_gen(w->next, &s);
	int rc = shm_writer_publish(w, s.bytes, s.size, err, sizeof err);
	cr_assert_eq(rc, 0, "publish generation %llu: %s", (unsigned long long)w->next, err);
	wc_snapshot_free(&s);
}

static inline void ts_writer_open(shm_writer *w, const char *store)
{
	char err[512] = "";
	int rc = shm_writer_open(w, store, err, sizeof err);
	cr_assert_eq(rc, 0, "shm_writer_open(%s): %s (%s)", store, flagshm_strerror(rc), err);
}

/* Check that view V is one whole generation: every stamped flag agrees
 * with v->generation. Returns 0, or the number of the first flag that
 * disagrees + 1 (and its value in *bad). No Criterion asserts: also used
 * in child processes. */
static inline int ts_view_whole(const flagshm_view *v, double *bad)
{
	char key[8];
	for (int i = 0; i < TS_NFLAGS; i++) {
		snprintf(key, sizeof key, "n%d", i);
		double d = flagshm_view_number(v, key, NULL, -1);
		if (d != (double)v->generation) {
			*bad = d;
			return i + 1;
		}
	}
	char want[32];
	snprintf(want, sizeof want, "g%llu", (unsigned long long)v->generation);
	const char *s = flagshm_view_string(v, "s", NULL, "");
	if (strcmp(s, want) != 0) {
		*bad = -2;
		return TS_NFLAGS + 1;
	}
	return 0;
}

static inline int64_t ts_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* flagshm_open that fails until a writer has created the store (see
 * FLAGSHM_OPEN_STRICT), for tests that wait for it. */
static inline int ts_open_existing(const char *name, flagshm_store **s)
{
	flagshm_store_options o = { .size = sizeof o, .flags = FLAGSHM_OPEN_STRICT };
	return flagshm_store_open(name, &o, s, NULL, 0);
}

static inline bool ts_exists(const char *store, uint64_t gen)
{
	char path[160];
	struct stat st;
	if (gen)
		snprintf(path, sizeof path, "/dev/shm/flagshm.%s.%llu", store, (unsigned long long)gen);
	else
		snprintf(path, sizeof path, "/dev/shm/flagshm.%s", store);
	return stat(path, &st) == 0;
}

#endif
