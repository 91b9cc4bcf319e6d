/*
 * bench/sync_bench.c - flagshm-sync-bench: change-to-reader latency over
 * loopback streaming (the `sync` case).
 *
 * A control plane (tests/cp_server.c, libmicrohttpd, 127.0.0.1) streams to
 * the real flagshm-writer (--stream, its state directory in a temporary
 * directory, so each change is also persisted as in production); this
 * process reads the store through libflagshm. For each sample the clock
 * starts when the server is handed a `flag-updated` event and stops when
 * a reader evaluating the flag in a loop sees the new value: the SSE
 * parse, the model update and compile, the publish, and the reader's
 * remap are all inside. Events are spaced (--gap-ms) so each is measured
 * alone, as changes to flags are.
 *
 *   flagshm-sync-bench [--events N] [--gap-ms MS] [--writer PATH]
 *
 * Prints one JSON line: {"sync_us":{"p50":..,"p99":..,"max":..,"n":..}}.
 */
#include "cp_server.h"
#include "flagshm.h"
#include "shm.h"
#include "writer_proc.h"

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef SYNC_BENCH_WRITER
#define SYNC_BENCH_WRITER "flagshm-writer"
#endif

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Spin until "limit" is WANT; nanoseconds waited, or -1 after 5 s. */
static int64_t see(flagshm_store *rd, double want, int64_t t0)
{
	for (long i = 0;; i++) {
		if (flagshm_number(rd, "limit", NULL, -1) == want)
			return now_ns() - t0;
		if ((i & 255) == 255) {
			if (now_ns() - t0 > 5000000000LL)
				return -1;
			sched_yield();
		}
	}
}

static void push_limit(cp_server *cp, const char *type, int id, int value)
{
	char ev[512];
	if (strcmp(type, "put") == 0)
		snprintf(ev, sizeof ev,
			 "event: put\nid: %d\ndata: {\"formatVersion\": 1, \"flags\": [{\"key\": \"limit\","
			 " \"defaultValue\": %d, \"offValue\": 0}, {\"key\": \"other\", \"defaultValue\": true}]}\n\n",
			 id, value);
	else
		snprintf(ev, sizeof ev,
			 "event: flag-updated\nid: %d\ndata: {\"key\": \"limit\", \"defaultValue\": %d,"
			 " \"offValue\": 0}\n\n",
			 id, value);
	cp_stream_push_str(cp, ev);
}

int main(int argc, char **argv)
{
	int events = 1000, gap_ms = 5, status = 1;
	const char *writer = getenv("FLAGSHM_WRITER") ? getenv("FLAGSHM_WRITER") : SYNC_BENCH_WRITER;
	char dir[64] = "/tmp/flagshm-sync-bench-XXXXXX", keyfile[128], log[128], state[128],
	     store[64], err[256];
	flagshm_store *rd = NULL;
	pid_t wpid = -1;
	int64_t *us = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--events") && i + 1 < argc)
			events = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--gap-ms") && i + 1 < argc)
			gap_ms = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--writer") && i + 1 < argc)
			writer = argv[++i];
		else {
			fprintf(stderr, "usage: flagshm-sync-bench [--events N] [--gap-ms MS] [--writer PATH]\n");
			return 2;
		}
	}
	if (events < 1 || events > 1000000 || gap_ms < 0 || gap_ms > 10000) {
		fprintf(stderr, "flagshm-sync-bench: --events 1..1000000, --gap-ms 0..10000\n");
		return 2;
	}
	setenv("FLAGSHM_WRITER", writer, 1);
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(keyfile, sizeof keyfile, "%s/key", dir);
	snprintf(log, sizeof log, "%s/writer.log", dir);
	snprintf(state, sizeof state, "%s/state", dir);
	snprintf(store, sizeof store, "syncbench%d", (int)getpid());
	cp_server *cp = cp_start();
	if (!cp || wp_write_file(keyfile, "bench-key\n", 10) != 0) {
		fprintf(stderr, "flagshm-sync-bench: cannot start the control plane\n");
		goto out;
	}
	cp_set_key(cp, "bench-key");
	cp_set_doc_status(cp, 503, NULL); /* everything comes from the stream */
	const char *wargv[] = {"--store", store, "--source", cp_url(cp), "--key-file", keyfile,
			       "--state-dir", state, "--stream", "--stale-after", "300", NULL};
	wpid = wp_spawn(wargv, log, NULL);
	int rc = -1;
	for (int i = 0; wpid > 0 && i < 500 && rc; i++)
		if ((rc = flagshm_open(store, &rd)))
			wp_sleep_ms(10);
	if (rc || !cp_wait_streams(cp, 1, 5000)) {
		fprintf(stderr, "flagshm-sync-bench: the writer (%s) did not start; its log: %s\n",
			writer, log);
		goto out;
	}
	push_limit(cp, "put", 1, 0);
	if (see(rd, 0, now_ns()) < 0) {
		fprintf(stderr, "flagshm-sync-bench: the first put was not seen\n");
		goto out;
	}
	us = calloc((size_t)events, sizeof *us);
	if (!us)
		goto out;
	for (int i = 0; i < events; i++) {
		wp_sleep_ms(gap_ms);
		int64_t t0 = now_ns();
		push_limit(cp, "flag-updated", i + 2, i + 1);
		int64_t ns = see(rd, i + 1, t0);
		if (ns < 0) {
			fprintf(stderr, "flagshm-sync-bench: event %d not seen within 5 s\n", i + 2);
			goto out;
		}
		us[i] = ns / 1000;
	}
	qsort(us, (size_t)events, sizeof *us, cmp_i64);
	printf("{\"sync_us\":{\"p50\":%lld,\"p99\":%lld,\"max\":%lld,\"n\":%d}}\n",
	       (long long)us[events / 2], (long long)us[(size_t)((events - 1) * 0.99)],
	       (long long)us[events - 1], events);
	status = 0;
out:
	free(us);
	flagshm_close(&rd);
	if (wpid > 0)
		wp_stop(wpid, 5000);
	shm_store_remove(store, err, sizeof err);
	cp_stop(cp);
	if (status == 0)
		wp_rmdir(dir);
	return status;
}
