/*
 * tests/test_sync.c - the real flagshm-writer (env FLAGSHM_WRITER) syncing
 * from a real HTTP control plane on 127.0.0.1 (tests/cp_server.c, on
 * libmicrohttpd), observed the way workers observe it: through libflagshm.
 *
 * Polling: first fetch, 304 on no change, a change within one interval,
 * the server down and back, a rejected document, SIGHUP, staleness.
 * Streaming: put, flag and segment events, rejected events, reconnect with
 * Last-Event-ID, a stalled stream, a close in the middle of an event,
 * garbage, a 10 MB event (and one past the limit), a wrong content type,
 * 401/403/500, 429 with Retry-After. Cold start with the server down, a
 * damaged cache, an unusable state directory, and one that is not to be
 * trusted (others can write it, a symlink, a FIFO in it). Every case checks what
 * readers see (generation, values) and that nothing wrong was published,
 * and that the SDK key is in no log. Every wait is bounded.
 */
#include <criterion/criterion.h>

#include "cp_server.h"
#include "flagshm.h"
#include "shm.h"
#include "writer_proc.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_PREFIX "sk-live-SECRET"

static struct {
	cp_server *cp;
	char dir[64], store[64], key[64], keyfile[128], log[128], state[128];
	pid_t writer;
	flagshm_store *rd;
	int starts;
} F;

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	memset(&F, 0, sizeof F);
	F.writer = -1;
	snprintf(F.dir, sizeof F.dir, "/tmp/flagshm-sync-XXXXXX");
	cr_assert_not_null(mkdtemp(F.dir));
	snprintf(F.store, sizeof F.store, "sync%d", (int)getpid());
	snprintf(F.key, sizeof F.key, KEY_PREFIX "-%d-x9", (int)getpid());
	snprintf(F.keyfile, sizeof F.keyfile, "%s/key", F.dir);
	snprintf(F.log, sizeof F.log, "%s/writer.log", F.dir);
	snprintf(F.state, sizeof F.state, "%s/state", F.dir);
	char line[80];
	int n = snprintf(line, sizeof line, "%s\n", F.key);
	cr_assert_eq(wp_write_file(F.keyfile, line, (size_t)n), 0);
	shm_store_remove(F.store, line, sizeof line);
	F.cp = cp_start();
	cr_assert_not_null(F.cp, "cannot start the test control plane on 127.0.0.1");
	cp_set_key(F.cp, F.key);
}

static char *the_log(void)
{
	char *s = wp_read_file(F.log, NULL);
	return s ? s : strdup("");
}

static void teardown(void)
{
	char err[256];
	int st = F.writer > 0 ? wp_stop(F.writer, 30000) : 0;
	char *log = the_log();
	cr_expect_eq(st, 0, "the writer exited %d on SIGTERM:\n%s", st, log);
	cr_expect_null(strstr(log, "Sanitizer"), "a sanitizer report in the writer's log:\n%s", log);
	cr_expect_null(strstr(log, "runtime error"), "UBSan in the writer's log:\n%s", log);
	cr_expect_null(strstr(log, KEY_PREFIX), "the SDK key appears in the writer's log:\n%s", log);
	free(log);
	flagshm_close(&F.rd);
	shm_store_remove(F.store, err, sizeof err);
	cp_stop(F.cp);
	if (!getenv("FLAGSHM_KEEP_LOGS"))
		wp_rmdir(F.dir);
}

TestSuite(sync, .init = setup, .fini = teardown, .timeout = 90);

/* Start the writer on the test server with ARGS (NULL-ended) after the
 * common ones, and open the store as a reader. */
static void start_writer_url(const char *url, ...)
{
	const char *argv[40] = {"--store", F.store, "--source", url, "--key-file", F.keyfile,
				"--state-dir", F.state};
	size_t n = 8;
	va_list ap;
	va_start(ap, url);
	for (const char *a; (a = va_arg(ap, const char *)) && n < 39;)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	F.writer = wp_spawn(argv, F.log, NULL);
	cr_assert_gt(F.writer, 0, "cannot start %s", wp_writer_path());
	F.starts++;
	flagshm_close(&F.rd);
	int rc = -1;
	for (int i = 0; i < 3000 && rc != 0; i++) {
		rc = wp_open_existing(F.store, &F.rd);
		if (rc)
			wp_sleep_ms(10);
	}
	cr_assert_eq(rc, 0, "the writer did not create store %s: %s", F.store, flagshm_strerror(rc));
}

#define start_writer(...) start_writer_url(cp_url(F.cp), __VA_ARGS__)

static uint64_t gen(void)
{
	flagshm_info info;
	return flagshm_store_info(F.rd, &info) == 0 ? info.generation : 0;
}

/* The number flag KEY, or -1 when it cannot be evaluated. */
static double num(const char *key)
{
	return flagshm_number(F.rd, key, NULL, -1);
}

static bool wait_gen(uint64_t at_least, int timeout_ms)
{
	int64_t end = wp_mono_ms() + timeout_ms;
	for (int i = 0; i < timeout_ms / 5 + 2; i++) {
		if (gen() >= at_least)
			return true;
		if (wp_mono_ms() >= end)
			break;
		wp_sleep_ms(5);
	}
	return gen() >= at_least;
}

/* Milliseconds until KEY evaluates to WANT, or -1 after TIMEOUT_MS. */
static int64_t wait_num(const char *key, double want, int timeout_ms)
{
	int64_t t0 = wp_mono_ms(), end = t0 + timeout_ms;
	for (int i = 0; i < timeout_ms + 2; i++) {
		if (num(key) == want)
			return wp_mono_ms() - t0;
		if (wp_mono_ms() >= end)
			break;
		wp_sleep_ms(1);
	}
	return num(key) == want ? wp_mono_ms() - t0 : -1;
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

/* True once the writer's heartbeat is seen to move on (a later beat than
 * the first one read), within 30 s. How old a beat is when read depends on
 * the machine's load; that the beats go on does not. */
static int64_t beat_ms(void)
{
	const fs_ctl *ctl;
	char err[256];
	if (shm_ctl_map(F.store, &ctl, err, sizeof err) != 0)
		return -1;
	/* Pairs with the writer's store in shm_ctl_beat; only compared. */
	int64_t ms = atomic_load_explicit(&ctl->ctl_heartbeat_ms, memory_order_relaxed);
	shm_ctl_unmap(ctl);
	return ms;
}

static bool beat_advances(void)
{
	int64_t first = beat_ms();
	for (int i = 0; i < 3000; i++) {
		wp_sleep_ms(10);
		if (beat_ms() > first)
			return true;
	}
	return false;
}

/* The control object's text fields, copied. */
static void ctl_text(char *last_error, size_t n1, char *sync_state, size_t n2)
{
	const fs_ctl *ctl;
	char err[256];
	cr_assert_eq(shm_ctl_map(F.store, &ctl, err, sizeof err), 0, "%s", err);
	shm_ctl_text_get(ctl, SHM_TEXT_LAST_ERROR, last_error, n1);
	shm_ctl_text_get(ctl, SHM_TEXT_SYNC_STATE, sync_state, n2);
	shm_ctl_unmap(ctl);
}

static bool wait_error(const char *needle, int timeout_ms)
{
	char e[300], s[200];
	for (int i = 0; i < timeout_ms / 20 + 1; i++) {
		ctl_text(e, sizeof e, s, sizeof s);
		if (strstr(e, needle))
			return true;
		wp_sleep_ms(20);
	}
	return false;
}

/* A document: "limit" = LIMIT; "base" and "dep" (dep needs base); a
 * segment "beta" used by "beta-only". */
static char *doc(int limit)
{
	char *s;
	int n = asprintf(&s,
		"{\"formatVersion\": 1, \"segments\": {\"beta\": {\"included\": [\"u-1\"]}},"
		" \"flags\": [{\"key\": \"limit\", \"defaultValue\": %d, \"offValue\": 0},"
		" {\"key\": \"base\", \"defaultValue\": true},"
		" {\"key\": \"dep\", \"defaultValue\": true, \"prerequisites\": [{\"key\": \"base\", \"value\": true}]},"
		" {\"key\": \"beta-only\", \"defaultValue\": false,"
		"  \"targeting\": [{\"id\": \"b\", \"segments\": [\"beta\"], \"variation\": true}]}]}",
		limit);
	cr_assert_gt(n, 0);
	return s;
}

static void serve_doc(int limit, const char *etag)
{
	char *d = doc(limit);
	cp_set_doc(F.cp, "application/json", d, strlen(d), etag);
	free(d);
}

static void push_event(const char *type, const char *id, const char *data)
{
	char *s;
	cr_assert_gt(asprintf(&s, "event: %s\nid: %s\ndata: %s\n\n", type, id, data), 0);
	cp_stream_push_str(F.cp, s);
	free(s);
}

static void push_put(int limit, const char *id)
{
	char *d = doc(limit);
	push_event("put", id, d);
	free(d);
}

static bool beta_for(const char *user)
{
	flagshm_ctx c;
	flagshm_ctx_init(&c);
	flagshm_ctx_string(&c, "userId", user);
	return flagshm_bool(F.rd, "beta-only", &c, false);
}

/* ------------------------------------------------------------- polling */

Test(sync, polling_first_fetch_publishes_and_persists)
{
	serve_doc(1, "\"v1\"");
	start_writer("--poll-interval", "1", NULL);
	cr_assert_geq(wait_num("limit", 1, 30000), 0, "limit is %g, want 1", num("limit"));
	cr_expect_eq(gen(), 1, "generation %lu, want 1", (unsigned long)gen());
	char e[300], s[200], path[200];
	ctl_text(e, sizeof e, s, sizeof s);
	cr_expect(strstr(s, "polling") && strstr(s, "etag=\"v1\""), "sync state \"%s\"", s);
	cr_expect_eq(e[0], '\0', "last error \"%s\"", e);
	int64_t since_sync = -1, since_beat = -1;
	cr_assert_eq(flagshm_store_age(F.rd, &since_sync, &since_beat), 0);
	/* Ages are set; how small depends on the machine's load (bounded here
	 * only against a wrong clock or unit). */
	cr_expect(since_sync >= 0 && since_sync < 60000, "since sync %ld ms", (long)since_sync);
	cr_expect(since_beat >= 0 && since_beat < 60000, "since heartbeat %ld ms", (long)since_beat);
	cp_seen seen = cp_get_seen(F.cp);
	cr_expect_str_eq(seen.accept, "application/x-protobuf, application/json");
	snprintf(path, sizeof path, "%s/document.pb", F.state);
	struct stat st;
	bool saved = false;
	for (int i = 0; i < 3000 && !saved; i++)
		if (!(saved = stat(path, &st) == 0 && st.st_size > 0))
			wp_sleep_ms(10);
	cr_expect(saved, "no persisted document at %s", path);
}

Test(sync, polling_304_keeps_the_snapshot)
{
	serve_doc(1, "\"v1\"");
	start_writer("--poll-interval", "1", NULL);
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	uint64_t g = gen();
	wp_sleep_ms(2600);
	cp_seen seen = cp_get_seen(F.cp);
	cr_expect_geq(seen.doc_conditional, 2, "conditional requests: %d", seen.doc_conditional);
	cr_expect_geq(seen.doc_not_modified, 2, "304 answers: %d", seen.doc_not_modified);
	cr_expect_str_eq(seen.if_none_match, "\"v1\"");
	cr_expect_eq(gen(), g, "generation moved from %lu to %lu on 304", (unsigned long)g,
		     (unsigned long)gen());
	cr_expect_eq(num("limit"), 1);
}

Test(sync, polling_picks_up_a_change_within_one_interval)
{
	serve_doc(1, "\"v1\"");
	start_writer("--poll-interval", "1", NULL);
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	uint64_t g = gen();
	serve_doc(2, "\"v2\"");
	int64_t ms = wait_num("limit", 2, 30000);
	cr_assert_geq(ms, 0, "the change was not picked up");
	fprintf(stderr, "FIGURE sync.poll_pickup_ms=%ld (interval 1 s)\n", (long)ms);
	cr_expect_eq(gen(), g + 1);
}

Test(sync, polling_server_down_and_back)
{
	serve_doc(1, "\"v1\"");
	start_writer("--poll-interval", "1", NULL);
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	uint64_t g = gen();
	unsigned port = cp_port(F.cp);
	cp_stop(F.cp);
	F.cp = NULL;
	cr_expect(wait_error("127.0.0.1", 30000), "no connection error recorded");
	cr_expect_eq(gen(), g, "published while the server was down");
	cr_expect_eq(num("limit"), 1, "readers lost the last good flags");
	F.cp = cp_start_on(port);
	cr_assert_not_null(F.cp, "cannot listen on port %u again", port);
	cp_set_key(F.cp, F.key);
	serve_doc(3, "\"v3\"");
	cr_expect_geq(wait_num("limit", 3, 30000), 0, "did not converge after the server came back");
	cr_expect_eq(gen(), g + 1);
	char e[300], s[200];
	ctl_text(e, sizeof e, s, sizeof s);
	cr_expect_eq(e[0], '\0', "last error not cleared: \"%s\"", e);
}

Test(sync, polling_rejects_an_invalid_document_and_recovers)
{
	serve_doc(1, "\"v1\"");
	start_writer("--poll-interval", "1", NULL);
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	uint64_t g = gen();
	const char *bad = "{\"formatVersion\": 1, \"flags\": [{\"key\": \"limit\", \"defaultValue\": 7,"
			  " \"offValue\": 0, \"prerequisites\": [{\"key\": \"nope\", \"value\": true}]}]}";
	cp_set_doc(F.cp, "application/json", bad, strlen(bad), "\"bad\"");
	cr_expect(wait_error("rejected", 30000), "the rejection is not in ctl_last_error");
	cr_expect(wait_log("nope", 30000), "the reason is not logged");
	cr_expect_eq(gen(), g);
	cr_expect_eq(num("limit"), 1);
	serve_doc(4, "\"v4\"");
	cr_expect_geq(wait_num("limit", 4, 30000), 0, "did not recover");
	cr_expect_eq(gen(), g + 1);
}

Test(sync, sighup_refetches_without_if_none_match_and_republishes)
{
	serve_doc(1, "\"v1\"");
	start_writer("--poll-interval", "30", NULL);
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	uint64_t g = gen();
	cp_seen before = cp_get_seen(F.cp);
	kill(F.writer, SIGHUP);
	cr_assert(wait_gen(g + 1, 30000), "SIGHUP did not republish");
	cp_seen after = cp_get_seen(F.cp);
	cr_expect_eq(after.doc_requests, before.doc_requests + 1);
	cr_expect_eq(after.doc_conditional, before.doc_conditional,
		     "the SIGHUP fetch carried If-None-Match");
	cr_expect_eq(num("limit"), 1);
}

Test(sync, results_are_stale_when_the_last_sync_is_old)
{
	serve_doc(1, "\"v1\"");
	start_writer("--poll-interval", "1", "--stale-after", "1", NULL);
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	flagshm_view v;
	flagshm_result r;
	flagshm_view_acquire(F.rd, &v);
	flagshm_evaluate(&v, "limit", NULL, &r);
	flagshm_view_release(&v);
	cr_expect(!r.stale, "fresh data marked stale");
	unsigned port = cp_port(F.cp);
	cp_stop(F.cp);
	F.cp = NULL;
	wp_sleep_ms(2500);
	flagshm_view_acquire(F.rd, &v);
	cr_expect_eq(flagshm_evaluate(&v, "limit", NULL, &r), 0);
	flagshm_view_release(&v);
	cr_expect(r.stale, "not stale 2.5 s after the last sync (threshold 1 s)");
	cr_expect_eq(r.value.num, 1, "the last good value still serves");
	int64_t since_sync, since_beat;
	flagshm_store_age(F.rd, &since_sync, &since_beat);
	cr_expect_gt(since_sync, 1000, "since sync %ld", (long)since_sync);
	cr_expect_geq(since_beat, 0, "no heartbeat");
	cr_expect(beat_advances(), "the heartbeat stopped with the control plane");
	F.cp = cp_start_on(port);
	cr_assert_not_null(F.cp);
	cp_set_key(F.cp, F.key);
	serve_doc(1, "\"v1\"");
	bool fresh = false;
	for (int i = 0; i < 1200 && !fresh; i++) {
		flagshm_view_acquire(F.rd, &v);
		flagshm_evaluate(&v, "limit", NULL, &r);
		flagshm_view_release(&v);
		fresh = !r.stale;
		if (!fresh)
			wp_sleep_ms(25);
	}
	cr_expect(fresh, "still stale after the server came back");
}

/* ----------------------------------------------------------- streaming */

/* A stream test: the document endpoint answers 503 unless the test says
 * otherwise, so what readers see comes from the stream. */
static void start_stream(const char *idle)
{
	cp_set_doc_status(F.cp, 503, NULL);
	start_writer("--stream", "--poll-interval", "30", "--idle-timeout", idle, NULL);
	cr_assert(cp_wait_streams(F.cp, 1, 30000), "the writer did not connect to the stream");
}

Test(sync, stream_put_and_flag_and_segment_events)
{
	start_stream("90");
	push_put(1, "1");
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	uint64_t g = gen();
	cr_expect(beta_for("u-1") && !beta_for("u-9"));

	push_event("flag-updated", "2", "{\"key\": \"limit\", \"defaultValue\": 5, \"offValue\": 0}");
	cr_assert_geq(wait_num("limit", 5, 30000), 0);
	cr_expect_eq(gen(), g + 1);

	push_event("segment-updated", "3", "{\"name\": \"beta\", \"segment\": {\"included\": [\"u-9\"]}}");
	cr_assert(wait_gen(g + 2, 30000));
	cr_expect(beta_for("u-9") && !beta_for("u-1"), "the segment change is not visible");

	push_event("flag-deleted", "4", "{\"key\": \"beta-only\"}");
	cr_assert(wait_gen(g + 3, 30000));
	flagshm_view v;
	flagshm_result r;
	flagshm_view_acquire(F.rd, &v);
	cr_expect_eq(flagshm_evaluate(&v, "beta-only", NULL, &r), FLAGSHM_ENOTFOUND);
	flagshm_view_release(&v);

	push_event("segment-deleted", "5", "{\"name\": \"beta\"}");
	cr_assert(wait_gen(g + 4, 30000));
	char e[300], s[200];
	ctl_text(e, sizeof e, s, sizeof s);
	cr_expect(strstr(s, "streaming") && strstr(s, "id=5"), "sync state \"%s\"", s);
	cr_expect_eq(cp_get_seen(F.cp).stream_requests, 1, "the stream reconnected");
}

Test(sync, stream_rejects_an_event_that_breaks_a_prerequisite)
{
	start_stream("90");
	push_put(1, "1");
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	uint64_t g = gen();
	push_event("flag-deleted", "2", "{\"key\": \"base\"}"); /* dep needs base */
	push_event("segment-deleted", "3", "{\"name\": \"beta\"}"); /* beta-only uses it */
	cr_expect(wait_error("rejected stream event", 30000), "no rejection recorded");
	cr_expect(wait_log("stream event segment-deleted id 3", 30000), "second rejection not logged");
	cr_expect_eq(gen(), g, "a rejected event was published");
	cr_expect(flagshm_bool(F.rd, "base", NULL, false) && flagshm_bool(F.rd, "dep", NULL, false));
	/* still in sync for later events */
	push_event("flag-updated", "4", "{\"key\": \"limit\", \"defaultValue\": 8, \"offValue\": 0}");
	cr_expect_geq(wait_num("limit", 8, 30000), 0);
	cr_expect_eq(gen(), g + 1);
}

Test(sync, stream_burst_is_coalesced)
{
	start_stream("90");
	push_put(1, "1");
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	uint64_t g = gen();
	char burst[1024] = "";
	for (int i = 2; i <= 6; i++) {
		char ev[200];
		snprintf(ev, sizeof ev,
			 "event: flag-updated\nid: %d\ndata: {\"key\": \"limit\", \"defaultValue\": %d, \"offValue\": 0}\n\n",
			 i, 10 + i);
		strcat(burst, ev);
	}
	cp_stream_push_str(F.cp, burst);
	cr_assert_geq(wait_num("limit", 16, 30000), 0);
	wp_sleep_ms(100);
	cr_expect(gen() > g && gen() <= g + 2, "5 events in one write published %lu generations",
		  (unsigned long)(gen() - g));
}

Test(sync, stream_reconnects_with_last_event_id)
{
	start_stream("90");
	push_put(1, "7");
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	uint64_t g = gen();
	cp_stream_close(F.cp, false);
	cr_assert(cp_wait_streams(F.cp, 2, 30000), "no reconnect");
	cr_expect_str_eq(cp_get_seen(F.cp).last_event_id, "7");
	push_event("flag-updated", "8", "{\"key\": \"limit\", \"defaultValue\": 2, \"offValue\": 0}");
	cr_expect_geq(wait_num("limit", 2, 30000), 0);
	cr_expect_eq(gen(), g + 1);
}

Test(sync, stream_stall_is_detected_and_reconnected)
{
	start_stream("1");
	push_put(1, "1");
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	uint64_t g = gen();
	cr_expect(cp_wait_streams(F.cp, 2, 30000), "a silent stream was not reconnected");
	cr_expect(wait_log("stalled", 30000));
	cr_expect_eq(gen(), g);
	cr_expect_eq(num("limit"), 1);
}

Test(sync, stream_closed_mid_event_drops_the_event)
{
	start_stream("90");
	push_put(1, "1");
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	uint64_t g = gen();
	cp_stream_push_str(F.cp, "event: flag-updated\nid: 2\ndata: {\"key\": \"limit\", \"defaultValue\": 99");
	cp_stream_close(F.cp, true);
	cr_assert(cp_wait_streams(F.cp, 2, 30000), "no reconnect");
	cr_expect_str_eq(cp_get_seen(F.cp).last_event_id, "1");
	wp_sleep_ms(200);
	cr_expect_eq(gen(), g, "a cut event was published");
	cr_expect_eq(num("limit"), 1);
}

Test(sync, stream_garbage_changes_nothing)
{
	start_stream("90");
	push_put(1, "1");
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	uint64_t g = gen();
	cp_stream_push_str(F.cp, "\x01\x02\xff garbage without a colon\nfoo: bar\n\n"
				 "event: flag-updated\nid: 2\ndata: {not json\n\n"
				 "event: no-such-event\nid: 3\ndata: {}\n\n"
				 "event: flag-updated\nid: 4\ndata: [1, 2]\n\n"
				 "data: {\"key\": \"limit\"}\n\n");
	cr_expect(wait_log("no-such-event", 30000), "the unknown event is not logged");
	cr_expect_eq(gen(), g, "garbage was published");
	push_event("flag-updated", "5", "{\"key\": \"limit\", \"defaultValue\": 3, \"offValue\": 0}");
	cr_expect_geq(wait_num("limit", 3, 30000), 0, "not in sync after garbage");
	cr_expect_eq(gen(), g + 1);
	cr_expect_eq(cp_get_seen(F.cp).stream_requests, 1);
}

/* A put of about 10 MB: five segments of 50000 ids each. */
static char *big_put(size_t *len)
{
	size_t cap = 12u << 20, n = 0;
	char *s = malloc(cap);
	cr_assert_not_null(s);
	n += (size_t)sprintf(s + n, "event: put\nid: 2\ndata: {\"formatVersion\": 1, \"segments\": {");
	for (int g = 0; g < 5; g++) {
		n += (size_t)sprintf(s + n, "%s\"seg%d\": {\"included\": [", g ? ", " : "", g);
		for (int i = 0; i < 56000; i++)
			n += (size_t)sprintf(s + n, "%s\"user-%d-%08d-padding-padding-xx\"", i ? "," : "", g, i);
		n += (size_t)sprintf(s + n, "]}");
	}
	n += (size_t)sprintf(s + n, "}, \"flags\": [{\"key\": \"limit\", \"defaultValue\": 10, \"offValue\": 0,"
				    " \"targeting\": [{\"id\": \"r\", \"segments\": [\"seg4\"], \"variation\": 11}]}]}\n\n");
	cr_assert_lt(n, cap);
	cr_assert_gt(n, 10u * 1000 * 1000, "the event is %zu bytes", n);
	*len = n;
	return s;
}

Test(sync, stream_10mb_event_is_applied)
{
	start_stream("90");
	push_put(1, "1");
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	uint64_t g = gen();
	size_t n;
	char *ev = big_put(&n);
	cp_stream_push(F.cp, ev, n);
	free(ev);
	cr_assert_geq(wait_num("limit", 10, 30000), 0, "the 10 MB put was not applied");
	cr_expect_eq(gen(), g + 1);
	flagshm_ctx c;
	flagshm_ctx_init(&c);
	flagshm_ctx_string(&c, "userId", "user-4-00049999-padding-padding-xx");
	cr_expect_eq(flagshm_number(F.rd, "limit", &c, -1), 11);
}

Test(sync, stream_event_past_the_limit_is_refused)
{
	cp_set_doc_status(F.cp, 503, NULL);
	start_writer("--stream", "--poll-interval", "30", "--limit", "doc-bytes=4M", NULL);
	cr_assert(cp_wait_streams(F.cp, 1, 30000));
	push_put(1, "1");
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	uint64_t g = gen();
	size_t n;
	char *ev = big_put(&n);
	cp_stream_push(F.cp, ev, n);
	free(ev);
	cr_expect(wait_log("larger than the limit", 30000), "the oversize event is not reported");
	cr_expect(cp_wait_streams(F.cp, 2, 30000), "no reconnect after the oversize event");
	cr_expect_eq(gen(), g);
	cr_expect_eq(num("limit"), 1);
}

/* A 7 MB id line used to be within the event limit (only data
 * counted), so it was kept, sent back as Last-Event-ID and persisted. */
Test(sync, stream_event_with_a_7mb_id_is_refused_and_never_persisted)
{
	start_stream("90");
	push_put(1, "7");
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	uint64_t g = gen();
	size_t idn = 7u << 20;
	char *d = doc(2), *ev = malloc(idn + strlen(d) + 64);
	cr_assert_not_null(ev);
	size_t n = (size_t)sprintf(ev, "event: put\nid: ");
	memset(ev + n, 'x', idn);
	n += idn;
	n += (size_t)sprintf(ev + n, "\ndata: %s\n\n", d);
	cp_stream_push(F.cp, ev, n);
	free(ev);
	free(d);
	cr_expect(wait_log("SSE id field longer than the limit of 256 bytes", 30000),
		  "the long id is not reported");
	cr_expect(cp_wait_streams(F.cp, 2, 30000), "no reconnect after the long id");
	cr_expect_str_eq(cp_get_seen(F.cp).last_event_id, "7", "the reconnect did not resume from 7");
	cr_expect_eq(gen(), g, "the event with the long id was applied");
	cr_expect_eq(num("limit"), 1);
	/* The persisted file keeps the last good id, not the long one. */
	char path[200];
	size_t len = 0;
	snprintf(path, sizeof path, "%s/document.pb", F.state);
	char *pb = wp_read_file(path, &len);
	cr_assert_not_null(pb, "nothing persisted in %s", path);
	fprintf(stderr, "FIGURE sync.long_id document.pb %zu bytes\n", len);
	cr_expect_lt(len, 65536, "document.pb is %zu bytes", len);
	free(pb);
}

Test(sync, stream_wrong_content_type_falls_back_to_polling)
{
	serve_doc(2, "\"v2\"");
	cp_set_stream_status(F.cp, 0, NULL, "text/plain");
	start_writer("--stream", "--poll-interval", "30", NULL);
	cr_assert_geq(wait_num("limit", 2, 30000), 0, "the fallback poll did not publish");
	cr_expect(wait_log("unexpected Content-Type \"text/plain\"", 30000));
	cr_expect_eq(gen(), 1);
	char e[300], s[200];
	ctl_text(e, sizeof e, s, sizeof s);
	cr_expect(strstr(s, "etag=\"v2\""), "sync state \"%s\"", s);
}

/* STATUS on both endpoints: nothing is published, the reason is recorded. */
static void refused(int status, const char *want)
{
	cp_set_doc_status(F.cp, status, NULL);
	cp_set_stream_status(F.cp, status, NULL, NULL);
	start_writer("--stream", "--poll-interval", "30", NULL);
	cr_expect(wait_error(want, 30000), "ctl_last_error does not say \"%s\"", want);
	cr_expect(cp_wait_streams(F.cp, 2, 30000), "the stream was not retried");
	cr_expect_eq(gen(), 0, "something was published");
	flagshm_view v;
	flagshm_result r;
	flagshm_view_acquire(F.rd, &v);
	cr_expect_eq(flagshm_evaluate(&v, "limit", NULL, &r), FLAGSHM_EUNAVAIL);
	flagshm_view_release(&v);
}

Test(sync, http_401_wrong_key)
{
	cp_set_key(F.cp, "another-key");
	start_writer("--stream", "--poll-interval", "30", NULL);
	cr_expect(wait_error("HTTP 401 (check the SDK key)", 30000));
	cr_expect_eq(gen(), 0);
	cr_expect(strstr(cp_get_seen(F.cp).authorization, KEY_PREFIX), "the key was not sent");
}

Test(sync, http_403) { refused(403, "HTTP 403"); }
Test(sync, http_500) { refused(500, "HTTP 500"); }

Test(sync, http_429_retry_after_is_honoured)
{
	cp_set_doc_status(F.cp, 429, "3");
	cp_set_stream_status(F.cp, 429, "3", NULL);
	start_writer("--stream", "--poll-interval", "30", NULL);
	cr_assert(wait_error("HTTP 429", 30000));
	int64_t t0 = wp_mono_ms();
	wp_sleep_ms(2000);
	cp_seen seen = cp_get_seen(F.cp);
	cr_expect_eq(seen.stream_requests, 1, "retried the stream within Retry-After");
	cr_expect_leq(seen.doc_requests, 1, "retried the document within Retry-After");
	cp_set_doc_status(F.cp, 0, NULL);
	cp_set_stream_status(F.cp, 0, NULL, NULL);
	serve_doc(1, "\"v1\"");
	push_put(4, "1");
	cr_expect_geq(wait_num("limit", 4, 30000), 0, "did not converge after the 429s");
	cr_expect_geq(wp_mono_ms() - t0, 800);
}

/* ---------------------------------------------------------- cold start */

Test(sync, cold_start_with_the_server_down_serves_persisted_flags)
{
	char err[256];
	serve_doc(1, "\"v1\"");
	start_writer("--poll-interval", "1", NULL);
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	cr_assert(wait_log("published generation 1", 30000));
	cr_assert_eq(wp_stop(F.writer, 30000), 0);
	F.writer = -1;
	flagshm_close(&F.rd);
	shm_store_remove(F.store, err, sizeof err); /* workers start from nothing */
	unsigned port = cp_port(F.cp);
	cp_stop(F.cp);
	F.cp = NULL;

	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
	start_writer_url(url, "--poll-interval", "1", NULL);
	cr_assert_geq(wait_num("limit", 1, 30000), 0, "the persisted flags were not published");
	cr_expect_eq(gen(), 1);
	cr_expect(wait_error("127.0.0.1", 30000), "the connection failure is not recorded");
	cr_expect(wait_log("published the persisted document", 30000));

	F.cp = cp_start_on(port);
	cr_assert_not_null(F.cp);
	cp_set_key(F.cp, F.key);
	serve_doc(2, "\"v2\"");
	cr_expect_geq(wait_num("limit", 2, 30000), 0, "did not converge once the server was up");
	cr_expect_eq(gen(), 2);
}

Test(sync, a_damaged_cache_is_reported_and_ignored)
{
	char path[200];
	mkdir(F.state, 0750);
	snprintf(path, sizeof path, "%s/document.pb", F.state);
	cr_assert_eq(wp_write_file(path, "\x0a\xff\xff\xff garbage", 12), 0);
	serve_doc(1, "\"v1\"");
	start_writer("--poll-interval", "1", NULL);
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	cr_expect(wait_log("persisted document ignored", 30000));
	cr_expect_eq(gen(), 1);
}

/* ------------------------------------------------ unusable state dir */

/* The writer runs with an unusable --state-dir (set up by the caller in
 * F.state). Proves: the log names the path and the errno text (WANT, the
 * first line that must appear), the writer publishes what it fetched and
 * later changes, the last good snapshot keeps serving through a failing
 * control plane, and the writer never exits. */
static void unusable_state_dir_keeps_syncing(const char *want)
{
	char persist[300];
	snprintf(persist, sizeof persist,
		 "cannot persist the document: cannot open state directory %s: Not a directory",
		 F.state);
	serve_doc(1, "\"v1\"");
	start_writer("--poll-interval", "1", NULL);
	cr_assert_geq(wait_num("limit", 1, 30000), 0, "nothing published: limit is %g, want 1",
		      num("limit"));
	uint64_t g = gen();
	cr_expect(wait_log(want, 30000), "the start-up error is not logged: want \"%s\"", want);
	cr_expect(wait_log(persist, 30000), "the save error is not logged: want \"%s\"", persist);

	/* The control plane fails: the last good snapshot keeps serving. */
	cp_set_doc_status(F.cp, 500, NULL);
	cr_expect(wait_error("HTTP 500", 30000), "the failing control plane is not recorded");
	cr_expect_eq(gen(), g, "generation %lu, want %lu", (unsigned long)gen(), (unsigned long)g);
	cr_expect_eq(num("limit"), 1, "limit is %g, want the last good 1", num("limit"));

	/* ... and a later change is still published. */
	cp_set_doc_status(F.cp, 0, NULL);
	serve_doc(2, "\"v2\"");
	cr_expect_geq(wait_num("limit", 2, 30000), 0, "limit is %g, want the change to 2",
		      num("limit"));
	cr_expect_eq(gen(), g + 1, "generation %lu, want %lu", (unsigned long)gen(),
		     (unsigned long)(g + 1));
	int st = wp_wait_exit(F.writer, 0);
	char *log = the_log();
	cr_expect_eq(st, -2, "the writer exited (%d):\n%s", st, log);
	fprintf(stderr, "FIGURE sync.state_dir log:\n%s", log);
	free(log);
}

Test(sync, state_dir_under_a_regular_file_is_reported_and_sync_goes_on)
{
	char file[96];
	snprintf(file, sizeof file, "%s/not-a-dir", F.dir);
	cr_assert_eq(wp_write_file(file, "x", 1), 0);
	snprintf(F.state, sizeof F.state, "%s/state", file);
	char want[300];
	snprintf(want, sizeof want, "cannot create %s: Not a directory", F.state);
	unusable_state_dir_keeps_syncing(want);
	struct stat st;
	cr_expect(stat(file, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 1,
		  "the regular file %s was changed", file);
}

Test(sync, state_dir_that_is_a_regular_file_is_reported_and_sync_goes_on)
{
	cr_assert_eq(wp_write_file(F.state, "x", 1), 0);
	char want[300];
	snprintf(want, sizeof want, "cannot open state directory %s: Not a directory", F.state);
	unusable_state_dir_keeps_syncing(want);
	struct stat st;
	cr_expect(stat(F.state, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 1,
		  "the regular file %s was changed", F.state);
}

/* ------------------------------------------------------ state dir trust */

/* A first writer persists a document with limit 1 in F.state and stops;
 * the store is removed and the control plane stopped. Returns its port. */
static unsigned persist_and_stop(void)
{
	char err[256];
	serve_doc(1, "\"v1\"");
	start_writer("--poll-interval", "1", NULL);
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	cr_assert(wait_log("published generation 1", 30000));
	cr_assert_eq(wp_stop(F.writer, 30000), 0);
	F.writer = -1;
	flagshm_close(&F.rd);
	shm_store_remove(F.store, err, sizeof err);
	unsigned port = cp_port(F.cp);
	cp_stop(F.cp);
	F.cp = NULL;
	return port;
}

/* A writer started with the control plane down must refuse F.state with
 * WANT in its log and never publish the document found there. */
static void restart_down_and_expect_refusal(unsigned port, const char *want)
{
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
	start_writer_url(url, "--poll-interval", "1", NULL);
	cr_expect(wait_log(want, 30000), "the refusal is not logged: want \"%s\"", want);
	/* The cold start comes before the first fetch: once the fetch has
	 * failed, a loaded document would have been published. */
	cr_expect(wait_log("127.0.0.1", 30000), "the connection failure is not logged");
	cr_expect_eq(gen(), 0, "the document of a refused state dir was published (generation %lu)",
		     (unsigned long)gen());
	cr_expect_eq(num("limit"), -1, "limit is %g: served from a refused state dir", num("limit"));
	char *log = the_log();
	fprintf(stderr, "FIGURE sync.state_dir_refused log:\n%s", log);
	free(log);
}

Test(sync, a_state_dir_writable_by_others_is_refused)
{
	unsigned port = persist_and_stop();
	cr_assert_eq(chmod(F.state, 0777), 0);
	char want[300];
	snprintf(want, sizeof want, "refusing state directory %s: owner uid %u, mode 0777", F.state,
		 (unsigned)geteuid());
	restart_down_and_expect_refusal(port, want);
}

Test(sync, a_state_dir_owned_by_another_user_is_refused)
{
	unsigned port = persist_and_stop();
	if (chown(F.state, 65534, 65534) != 0)
		cr_skip_test("cannot chown to uid 65534 (not root)");
	char want[300];
	snprintf(want, sizeof want, "refusing state directory %s: owner uid 65534, mode 0700",
		 F.state);
	restart_down_and_expect_refusal(port, want);
}

Test(sync, a_symlinked_state_dir_is_refused_not_followed)
{
	unsigned port = persist_and_stop();
	char real[160];
	snprintf(real, sizeof real, "%s/real-state", F.dir);
	cr_assert_eq(rename(F.state, real), 0);
	cr_assert_eq(symlink(real, F.state), 0);
	char want[300];
	snprintf(want, sizeof want, "refusing state directory %s: it is a symbolic link", F.state);
	restart_down_and_expect_refusal(port, want);
}

Test(sync, a_fifo_named_like_the_cache_file_does_not_block_the_writer)
{
	char path[200];
	cr_assert_eq(mkdir(F.state, 0700), 0);
	snprintf(path, sizeof path, "%s/document.pb", F.state);
	cr_assert_eq(mkfifo(path, 0600), 0);
	serve_doc(1, "\"v1\"");
	start_writer("--poll-interval", "1", NULL);
	cr_assert_geq(wait_num("limit", 1, 30000), 0, "the writer hangs on the FIFO");
	char want[300];
	snprintf(want, sizeof want, "persisted document ignored: corrupt cache file %s: not a regular file",
		 path);
	cr_expect(wait_log(want, 30000), "the FIFO is not reported: want \"%s\"", want);
	/* The teardown's SIGTERM must stop it (exit 0 within 5 s). */
}

Test(sync, once_with_a_url_creates_the_state_dir_0700)
{
	const char *argv[] = {"--store", F.store, "--source", cp_url(F.cp), "--key-file", F.keyfile,
			      "--state-dir", F.state, "--once", NULL};
	struct stat st;
	char path[200];
	serve_doc(3, "\"v3\"");
	cr_assert_neq(stat(F.state, &st), 0, "%s exists before the test", F.state);
	pid_t p = wp_spawn(argv, F.log, NULL);
	cr_assert_eq(wp_wait_exit(p, 30000), 0, "--once did not exit 0");
	cr_assert_eq(lstat(F.state, &st), 0, "--once did not create %s", F.state);
	cr_expect(S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700,
		  "%s: mode %04o, want a directory of mode 0700", F.state,
		  (unsigned)(st.st_mode & 07777));
	snprintf(path, sizeof path, "%s/document.pb", F.state);
	cr_expect_eq(stat(path, &st), 0, "--once did not persist the document in %s", path);
}

Test(sync, the_key_comes_from_the_environment_and_is_never_logged)
{
	const char *argv[] = {"--store", F.store, "--source", cp_url(F.cp), "--state-dir", F.state,
			      "--poll-interval", "1", NULL};
	serve_doc(1, "\"v1\"");
	F.writer = wp_spawn(argv, F.log, F.key);
	cr_assert_gt(F.writer, 0);
	int rc = -1;
	for (int i = 0; i < 3000 && rc; i++)
		if ((rc = wp_open_existing(F.store, &F.rd)))
			wp_sleep_ms(10);
	cr_assert_eq(rc, 0);
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	/* and without any key the writer refuses to start */
	const char *argv2[] = {"--store", "syncnokey", "--source", cp_url(F.cp), "--state-dir",
			       F.state, NULL};
	pid_t p = wp_spawn(argv2, F.log, NULL);
	cr_expect_eq(wp_wait_exit(p, 30000), 1);
	struct stat st;
	cr_expect_neq(stat("/dev/shm/flagshm.syncnokey", &st), 0,
		      "a writer refused for want of a key left its store behind");
	char err[256];
	shm_store_remove("syncnokey", err, sizeof err);
	cr_expect(wait_log("no SDK key", 30000));
}

Test(sync, a_restarted_stream_writer_resumes_from_the_persisted_event_id)
{
	start_stream("90");
	push_put(1, "5");
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	cr_assert_eq(wp_stop(F.writer, 30000), 0);
	F.writer = -1;
	uint64_t g = gen();
	start_writer("--stream", "--poll-interval", "30", NULL);
	cr_assert(cp_wait_streams(F.cp, 2, 30000), "the restarted writer did not connect");
	cr_expect_str_eq(cp_get_seen(F.cp).last_event_id, "5");
	cr_expect(wait_log("published the persisted document", 30000));
	push_event("flag-updated", "6", "{\"key\": \"limit\", \"defaultValue\": 6, \"offValue\": 0}");
	cr_expect_geq(wait_num("limit", 6, 30000), 0, "the resumed stream's event was not applied");
	cr_expect_eq(gen(), g + 2, "the persisted document, then the event");
}

Test(sync, once_fetches_publishes_and_exits)
{
	const char *argv[] = {"--store", F.store, "--source", cp_url(F.cp), "--key-file", F.keyfile,
			      "--state-dir", F.state, "--once", NULL};
	serve_doc(9, "\"v9\"");
	pid_t p = wp_spawn(argv, F.log, NULL);
	cr_assert_eq(wp_wait_exit(p, 30000), 0, "--once did not exit 0");
	cr_assert_eq(flagshm_open(F.store, &F.rd), 0);
	cr_expect_eq(num("limit"), 9);
	cr_expect_eq(cp_get_seen(F.cp).doc_conditional, 0, "--once sent If-None-Match");
	cp_set_doc_status(F.cp, 500, NULL);
	p = wp_spawn(argv, F.log, NULL);
	cr_expect_eq(wp_wait_exit(p, 30000), 1, "--once with a failing server did not exit 1");
	cr_expect_eq(num("limit"), 9);
}

Test(sync, sigterm_interrupts_a_slow_fetch_and_the_heartbeat_goes_on)
{
	/* The server holds the document for 60 s: the writer's exit before
	 * that, with status 0, shows SIGTERM interrupted the fetch (without a
	 * figure for "promptly" that a loaded machine could miss). */
	serve_doc(1, "\"v1\"");
	cp_set_doc_delay(F.cp, 60000);
	start_writer("--poll-interval", "1", NULL);
	for (int i = 0; i < 3000 && cp_get_seen(F.cp).doc_requests < 1; i++)
		wp_sleep_ms(10);
	cr_assert_geq(cp_get_seen(F.cp).doc_requests, 1, "the writer did not ask for the document");
	cr_expect(beat_advances(), "no heartbeat during a fetch");
	int64_t t0 = wp_mono_ms();
	kill(F.writer, SIGTERM);
	int st = wp_wait_exit(F.writer, 45000);
	int64_t ms = wp_mono_ms() - t0;
	cr_expect_eq(st, 0, "the writer did not exit 0 on SIGTERM during a fetch (%d)", st);
	fprintf(stderr, "FIGURE sync.sigterm_during_fetch_ms=%lld\n", (long long)ms);
	F.writer = -1;
	cp_set_doc_delay(F.cp, 0);
}

/* ------------------------------------------------------- output hygiene */

/* No raw ESC (or any C0 control but the newline) in TEXT. */
static bool clean_text(const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p; p++)
		if ((*p < 0x20 && *p != '\n') || *p == 0x7f)
			return false;
	return true;
}

/* `flagshm status` of the test store, stdout and stderr (malloc'd). */
static char *tool_status(void)
{
	const char *tool = getenv("FLAGSHM_TOOL");
	char out[300];
	snprintf(out, sizeof out, "%s/status.out", F.dir);
	unlink(out);
	const char *argv[] = {"--store", F.store, "status", NULL};
	if (!tool)
		return strdup("");
	pid_t p = wp_spawn_prog(tool, argv, out, NULL);
	cr_assert_gt(p, 0);
	int st = wp_wait_exit(p, 30000);
	cr_expect(st == 0 || st == 1, "flagshm status exited %d", st);
	char *s = wp_read_file(out, NULL);
	return s ? s : strdup("");
}

Test(sync, terminal_escapes_in_an_etag_and_an_event_id_are_escaped_everywhere)
{
	/* An ETag (polling) ... */
	serve_doc(1, "\"v1\x1b]0;owned\x07\x1b[2J\"");
	start_writer("--poll-interval", "30", NULL);
	cr_assert_geq(wait_num("limit", 1, 30000), 0);
	cr_expect(wait_log("\\x1b]0;owned\\x07", 2000), "the ETag is not logged escaped");
	char *status = tool_status();
	cr_expect(clean_text(status), "raw control characters in flagshm status:\n%s", status);
	cr_expect(!getenv("FLAGSHM_TOOL") || strstr(status, "etag=\"v1\\x1b]0;owned"),
		  "flagshm status:\n%s", status);
	free(status);
	cr_assert_eq(wp_stop(F.writer, 30000), 0);
	F.writer = -1;
	/* ... and event ids (streaming): a rejected event's id reaches the
	 * log (and ctl_last_error, until the healthy stream clears it), an
	 * applied one's ctl_sync_state. */
	start_stream("90");
	push_put(1, "6\x1b[33m");
	push_event("flag-updated", "7\x1b[31mred", "{\"key\": \"limit\"}");
	cr_expect(wait_log("rejected stream event flag-updated id 7\\x1b[31mred", 30000),
		  "the rejected event's id is not logged escaped");
	push_event("flag-updated", "8\x1b[41mbg", "{\"key\": \"limit\", \"defaultValue\": 8, \"offValue\": 0}");
	cr_assert_geq(wait_num("limit", 8, 30000), 0);
	cr_expect(wait_log("\\x1b[41mbg", 30000), "the event id is not logged escaped");
	char e[300], st[200];
	bool seen = false;
	for (int i = 0; i < 1500 && !seen; i++) {
		ctl_text(e, sizeof e, st, sizeof st);
		if (!(seen = strstr(st, "id=8") != NULL))
			wp_sleep_ms(20);
	}
	cr_expect(seen, "ctl_sync_state \"%s\" has no id", st);
	cr_expect(clean_text(e), "raw control characters in ctl_last_error: \"%s\"", e);
	cr_expect(clean_text(st), "raw control characters in ctl_sync_state: \"%s\"", st);
	cr_expect(strstr(st, "id=8\\x1b[41mbg"), "ctl_sync_state \"%s\"", st);
	status = tool_status();
	cr_expect(clean_text(status), "raw control characters in flagshm status:\n%s", status);
	cr_expect(!getenv("FLAGSHM_TOOL") || strstr(status, "\\x1b"), "flagshm status:\n%s", status);
	free(status);
	char *log = the_log();
	cr_expect(clean_text(log), "raw control characters in the writer's log:\n%s", log);
	free(log);
}

Test(sync, a_password_in_the_source_url_is_in_no_log_and_not_in_c_last_error)
{
	char url[200];
	snprintf(url, sizeof url, "http://flagsuser:hunter2pw@127.0.0.1:%u", cp_port(F.cp));
	serve_doc(1, "\"v1\"");
	start_writer_url(url, "--poll-interval", "1", NULL);
	cr_assert_geq(wait_num("limit", 1, 30000), 0, "no sync through a URL with userinfo");
	/* Every local user can read the command line. */
	char cmdline[200];
	snprintf(cmdline, sizeof cmdline, "/proc/%d/cmdline", (int)F.writer);
	size_t clen = 0;
	char *args = wp_read_file(cmdline, &clen);
	cr_expect_not_null(args, "cannot read %s", cmdline);
	cr_expect(!args || !memmem(args, clen, "hunter2pw", 9), "the password is in %s", cmdline);
	cr_expect(!args || memmem(args, clen, "@127.0.0.1", 10), "%s has no URL", cmdline);
	free(args);
	/* The persisted document names its source: without the password. */
	char path[200];
	snprintf(path, sizeof path, "%s/document.pb", F.state);
	size_t len = 0;
	char *cache = NULL;
	for (int i = 0; i < 3000 && !cache; i++)
		if (!(cache = wp_read_file(path, &len)))
			wp_sleep_ms(10);
	cr_expect_not_null(cache, "no persisted document at %s", path);
	cr_expect(!cache || !memmem(cache, len, "hunter2pw", 9), "the password is in %s", path);
	free(cache);
	cp_set_doc_status(F.cp, 500, NULL);
	cr_expect(wait_error("HTTP 500", 30000), "the failure is not in ctl_last_error");
	cr_expect(wait_log("HTTP 500", 30000), "the failure is not logged");
	char e[300], st[200];
	ctl_text(e, sizeof e, st, sizeof st);
	cr_expect_null(strstr(e, "hunter2pw"), "the password is in ctl_last_error: %s", e);
	cr_expect(strstr(e, "http://***@127.0.0.1"), "ctl_last_error: %s", e);
	char *status = tool_status();
	cr_expect_null(strstr(status, "hunter2pw"), "the password is in flagshm status:\n%s", status);
	free(status);
	cr_assert_eq(wp_stop(F.writer, 30000), 0);
	F.writer = -1;
	char *log = the_log();
	cr_expect_null(strstr(log, "hunter2pw"), "the password is in the writer's log:\n%s", log);
	cr_expect(strstr(log, "syncing from http://***@127.0.0.1"), "the log:\n%s", log);
	free(log);
}

Test(sync, a_successful_sync_clears_the_last_error_of_an_earlier_writer)
{
	const char *argv[] = {"--store", F.store, "--source", cp_url(F.cp), "--key-file", F.keyfile,
			      "--state-dir", F.state, "--once", NULL};
	cp_set_doc_status(F.cp, 500, NULL);
	pid_t p = wp_spawn(argv, F.log, NULL);
	cr_assert_eq(wp_wait_exit(p, 30000), 1, "--once with a failing server did not exit 1");
	char e[300], st[200];
	ctl_text(e, sizeof e, st, sizeof st);
	cr_assert(strstr(e, "HTTP 500"), "the first writer recorded no error: \"%s\"", e);
	cp_set_doc_status(F.cp, 0, NULL);
	serve_doc(2, "\"v2\"");
	p = wp_spawn(argv, F.log, NULL);
	cr_assert_eq(wp_wait_exit(p, 30000), 0, "--once with a good server did not exit 0");
	ctl_text(e, sizeof e, st, sizeof st);
	cr_expect_eq(e[0], '\0', "the second writer synced but left \"%s\"", e);
}

Test(sync, once_does_not_announce_a_next_attempt)
{
	const char *argv[] = {"--store", F.store, "--source", cp_url(F.cp), "--key-file", F.keyfile,
			      "--state-dir", F.state, "--once", NULL};
	cp_set_doc_status(F.cp, 500, NULL);
	pid_t p = wp_spawn(argv, F.log, NULL);
	cr_assert_eq(wp_wait_exit(p, 30000), 1);
	char *log = the_log();
	cr_expect(strstr(log, "HTTP 500"), "the failure is not logged:\n%s", log);
	cr_expect_null(strstr(log, "next attempt"), "--once announced a retry:\n%s", log);
	free(log);
}
