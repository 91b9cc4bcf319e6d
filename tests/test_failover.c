/*
 * tests/test_failover.c - flagshm-writer --source URL1,URL2 over two real
 * HTTP control-plane instances (tests/cp_server.c on 127.0.0.1): a stream
 * whose instance dies reconnects to the other one (resuming with its
 * Last-Event-ID), a poll that fails moves to the other one, and a list
 * with a non-HTTP member is a usage error. What readers see is checked
 * through libflagshm; every wait is bounded.
 */
#include <criterion/criterion.h>

#include "cp_server.h"
#include "flagshm.h"
#include "shm.h"
#include "writer_proc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY "sk-failover-SECRET-x9"

static struct {
	cp_server *a, *b;
	char dir[64], store[64], keyfile[128], log[128], state[128], sources[200];
	pid_t writer;
	flagshm_store *rd;
} F;

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	memset(&F, 0, sizeof F);
	F.writer = -1;
	snprintf(F.dir, sizeof F.dir, "/tmp/flagshm-failover-XXXXXX");
	cr_assert_not_null(mkdtemp(F.dir));
	snprintf(F.store, sizeof F.store, "failover%d", (int)getpid());
	snprintf(F.keyfile, sizeof F.keyfile, "%s/key", F.dir);
	snprintf(F.log, sizeof F.log, "%s/writer.log", F.dir);
	snprintf(F.state, sizeof F.state, "%s/state", F.dir);
	cr_assert_eq(wp_write_file(F.keyfile, KEY "\n", strlen(KEY) + 1), 0);
	char err[256];
	shm_store_remove(F.store, err, sizeof err);
	F.a = cp_start();
	F.b = cp_start();
	cr_assert(F.a && F.b, "cannot start two test control planes on 127.0.0.1");
	cp_set_key(F.a, KEY);
	cp_set_key(F.b, KEY);
	snprintf(F.sources, sizeof F.sources, "%s,%s/", cp_url(F.a), cp_url(F.b));
}

static char *the_log(void)
{
	char *s = wp_read_file(F.log, NULL);
	return s ? s : strdup("");
}

static void teardown(void)
{
	char err[256];
	int st = F.writer > 0 ? wp_stop(F.writer, 5000) : 0;
	char *log = the_log();
	cr_expect_eq(st, 0, "the writer exited %d on SIGTERM:\n%s", st, log);
	cr_expect_null(strstr(log, "Sanitizer"), "a sanitizer report:\n%s", log);
	cr_expect_null(strstr(log, "runtime error"), "UBSan:\n%s", log);
	cr_expect_null(strstr(log, "SECRET"), "the SDK key is in the log:\n%s", log);
	free(log);
	flagshm_close(&F.rd);
	shm_store_remove(F.store, err, sizeof err);
	cp_stop(F.a);
	cp_stop(F.b);
	if (!getenv("FLAGSHM_KEEP_LOGS"))
		wp_rmdir(F.dir);
}

TestSuite(failover, .init = setup, .fini = teardown, .timeout = 90);

/* MODE: "--stream", "--once" or NULL (polling). */
static void start_writer(const char *mode, const char *interval)
{
	const char *argv[] = {"--store", F.store, "--source", F.sources, "--key-file", F.keyfile,
			      "--state-dir", F.state, "--poll-interval", interval, mode, NULL};
	F.writer = wp_spawn(argv, F.log, NULL);
	cr_assert_gt(F.writer, 0, "cannot start %s", wp_writer_path());
	int rc = -1;
	for (int i = 0; i < 500 && rc != 0; i++) {
		rc = wp_open_existing(F.store, &F.rd);
		if (rc)
			wp_sleep_ms(10);
	}
	cr_assert_eq(rc, 0, "the writer did not create store %s", F.store);
}

/* Milliseconds until the number flag KEY is WANT, or -1 after TIMEOUT_MS. */
static int64_t wait_num(const char *key, double want, int timeout_ms)
{
	int64_t t0 = wp_mono_ms();
	for (int i = 0; i < timeout_ms / 5 + 2; i++) {
		if (flagshm_number(F.rd, key, NULL, -1) == want)
			return wp_mono_ms() - t0;
		if (wp_mono_ms() - t0 >= timeout_ms)
			break;
		wp_sleep_ms(5);
	}
	return -1;
}

static bool wait_log(const char *needle, int timeout_ms)
{
	for (int i = 0; i < timeout_ms / 20 + 1; i++) {
		char *log = the_log();
		bool found = strstr(log, needle) != NULL;
		free(log);
		if (found)
			return true;
		wp_sleep_ms(20);
	}
	return false;
}

static void serve(cp_server *s, int limit, const char *etag)
{
	char d[200];
	snprintf(d, sizeof d, "{\"formatVersion\": 1, \"flags\": [{\"key\": \"limit\", "
			      "\"defaultValue\": %d, \"offValue\": 0}]}", limit);
	cp_set_doc(s, "application/json", d, strlen(d), etag);
}

static void push(cp_server *s, const char *type, const char *id, const char *data)
{
	char ev[400];
	snprintf(ev, sizeof ev, "event: %s\nid: %s\ndata: %s\n\n", type, id, data);
	cp_stream_push_str(s, ev);
}

Test(failover, a_broken_stream_reconnects_to_the_next_instance)
{
	serve(F.a, 1, "\"1\"");
	serve(F.b, 1, "\"1\"");
	start_writer("--stream", "30");
	cr_assert(cp_wait_streams(F.a, 1, 10000), "the writer did not stream from the first instance");
	push(F.a, "put", "1", "{\"formatVersion\": 1, \"flags\": [{\"key\": \"limit\", "
			      "\"defaultValue\": 1, \"offValue\": 0}]}");
	cr_assert_geq(wait_num("limit", 1, 10000), 0);
	cr_expect_eq(cp_get_seen(F.b).stream_requests, 0, "the second instance was used too early");

	cp_stop(F.a); /* the instance dies with the stream open */
	F.a = NULL;
	cr_assert(cp_wait_streams(F.b, 1, 20000), "the stream did not fail over");
	cr_expect_str_eq(cp_get_seen(F.b).last_event_id, "1", "the stream did not resume");
	push(F.b, "flag-updated", "2", "{\"key\": \"limit\", \"defaultValue\": 2, \"offValue\": 0}");
	cr_expect_geq(wait_num("limit", 2, 10000), 0, "the writer did not converge on the other instance");
	cr_expect(wait_log("failing over to", 2000));
}

Test(failover, a_failing_poll_moves_to_the_next_instance)
{
	cp_set_doc_status(F.a, 500, NULL);
	serve(F.b, 7, "\"7\"");
	start_writer("--once", "1"); /* one fetch: the first instance fails */
	cr_expect_eq(wp_wait_exit(F.writer, 20000), 1, "--once with a failing first instance");
	F.writer = -1;
	flagshm_close(&F.rd);
	start_writer(NULL, "1"); /* polls every second */
	cr_expect_geq(wait_num("limit", 7, 20000), 0, "polling did not move to the second instance");
	cr_expect(wait_log("failing over to", 2000));
	cr_expect_geq(cp_get_seen(F.a).doc_requests, 1);
}

Test(failover, a_list_with_a_non_http_member_is_a_usage_error)
{
	char bad[300];
	snprintf(bad, sizeof bad, "%s,ftp://127.0.0.1:1", cp_url(F.a));
	const char *argv[] = {"--store", F.store, "--source", bad, "--key-file", F.keyfile, NULL};
	pid_t p = wp_spawn(argv, F.log, NULL);
	cr_assert_gt(p, 0);
	cr_expect_eq(wp_wait_exit(p, 10000), 2);
	cr_expect(wait_log("every one http:// or https://", 1000));
}
