/*
 * tests/test_http.c - the writer's HTTP side (writer/sync/http.h) against a real
 * HTTP server on 127.0.0.1 (tests/cp_server.c, libmicrohttpd): fetch with
 * ETag and 304, statuses and Retry-After, the body limit, content types,
 * and the SSE stream: events, Last-Event-ID on reconnect, a stall, a close
 * in the middle of an event, garbage, an oversize event, a slow drip.
 * Every wait is bounded; the server listens on a port the kernel picks.
 */
#include <criterion/criterion.h>

#include "cp_server.h"
#include "flagshm.h"
#include "http.h"
#include "proto_conv.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KEY "sdk-test-4f1b2c9d"

static cp_server *srv;

static void start(void)
{
	signal(SIGPIPE, SIG_IGN);
	cr_assert_eq(ws_http_global_init(), 0);
	srv = cp_start();
	cr_assert_not_null(srv, "cannot start the test control plane on 127.0.0.1");
	cp_set_key(srv, KEY);
}

static void stop(void)
{
	cp_stop(srv);
	srv = NULL;
}

TestSuite(http, .init = start, .fini = stop, .timeout = 60);

static ws_http_opts opts(void)
{
	ws_http_opts o = {.url = cp_url(srv), .key = KEY, .connect_timeout_ms = 2000,
			  .timeout_ms = 10000, .idle_timeout_ms = 5000};
	return o;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char doc1[] = "{\"formatVersion\": 1, \"flags\": [{\"key\": \"a\", \"defaultValue\": true}]}";
static const char doc2[] = "{\"formatVersion\": 1, \"flags\": [{\"key\": \"a\", \"defaultValue\": false}]}";

/* ----------------------------------------------------------------- fetch */

Test(http, first_fetch_returns_the_document_etag_and_sends_key_and_accept)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	char err[512] = "";
	json_t *doc = NULL, *want = json_loads(doc1, 0, NULL);
	wc_errors errs = {0};
	cp_seen seen;

	cp_set_doc(srv, "application/json; charset=utf-8", doc1, strlen(doc1), "\"v1\"");
	cr_assert_eq(ws_http_fetch(&o, NULL, &r, err, sizeof err), 0, "%s", err);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.etag, "\"v1\"");
	cr_assert_str_eq(r.content_type, "application/json");
	cr_assert_eq(ws_http_doc(&r, "test", NULL, &doc, &errs), 0);
	cr_assert(json_equal(doc, want));
	seen = cp_get_seen(srv);
	cr_assert_str_eq(seen.authorization, "Bearer " KEY);
	cr_assert_str_eq(seen.accept, "application/x-protobuf, application/json");
	cr_assert_str_eq(seen.if_none_match, "");
	ws_http_resp_free(&r);
	json_decref(doc);
	json_decref(want);
}

Test(http, protobuf_document_decodes_like_its_json)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	char err[512] = "";
	json_t *doc = NULL, *want = json_loads(doc1, 0, NULL);
	wc_errors errs = {0};
	uint8_t *pb;
	size_t n;

	cr_assert_eq(ws_proto_encode(want, &pb, &n, err, sizeof err), 0);
	cp_set_doc(srv, "application/x-protobuf", pb, n, "\"p1\"");
	free(pb);
	cr_assert_eq(ws_http_fetch(&o, NULL, &r, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(r.content_type, "application/x-protobuf");
	cr_assert_eq(ws_http_doc(&r, "test", NULL, &doc, &errs), 0);
	cr_assert(json_equal(doc, want));
	ws_http_resp_free(&r);
	json_decref(doc);
	json_decref(want);
}

Test(http, same_etag_is_304_and_a_change_is_picked_up)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	char err[512] = "";

	cp_set_doc(srv, "application/json", doc1, strlen(doc1), "\"v1\"");
	cr_assert_eq(ws_http_fetch(&o, "\"v1\"", &r, err, sizeof err), WS_HTTP_NOT_MODIFIED, "%s", err);
	cr_assert_eq(r.status, 304);
	cr_assert_null(r.body);
	cr_assert_str_eq(cp_get_seen(srv).if_none_match, "\"v1\"");
	ws_http_resp_free(&r);

	cp_set_doc(srv, "application/json", doc2, strlen(doc2), "\"v2\"");
	cr_assert_eq(ws_http_fetch(&o, "\"v1\"", &r, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(r.etag, "\"v2\"");
	cr_assert_eq(r.body_len, strlen(doc2));
	cr_assert_str_eq(r.body, doc2);
	ws_http_resp_free(&r);
}

Test(http, wrong_key_is_401_and_the_key_is_never_in_the_message)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	char err[512] = "";

	o.key = "not-the-key-7777";
	cp_set_doc(srv, "application/json", doc1, strlen(doc1), "\"v1\"");
	cr_assert_eq(ws_http_fetch(&o, NULL, &r, err, sizeof err), FLAGSHM_EUNAVAIL);
	cr_assert_eq(r.status, 401);
	cr_assert(strstr(err, "HTTP 401") && strstr(err, "check the SDK key"), "%s", err);
	cr_assert_null(strstr(err, "not-the-key-7777"), "the key leaked into: %s", err);
	cr_assert_null(strstr(err, KEY));
	ws_http_resp_free(&r);
}

Test(http, server_errors_and_429_carry_status_and_retry_after)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	char err[512] = "";

	cp_set_doc_status(srv, 500, NULL);
	cr_assert_eq(ws_http_fetch(&o, NULL, &r, err, sizeof err), FLAGSHM_EUNAVAIL);
	cr_assert_eq(r.status, 500);
	cr_assert_eq(r.retry_after_ms, -1);
	ws_http_resp_free(&r);

	cp_set_doc_status(srv, 429, "7");
	cr_assert_eq(ws_http_fetch(&o, NULL, &r, err, sizeof err), FLAGSHM_EUNAVAIL);
	cr_assert_eq(r.status, 429);
	cr_assert_eq(r.retry_after_ms, 7000);
	cr_assert(strstr(err, "HTTP 429"), "%s", err);
	ws_http_resp_free(&r);

	cp_set_doc_status(srv, 403, NULL);
	cr_assert_eq(ws_http_fetch(&o, NULL, &r, err, sizeof err), FLAGSHM_EUNAVAIL);
	cr_assert_eq(r.status, 403);
	ws_http_resp_free(&r);
}

Test(http, a_10mb_body_over_the_limit_is_refused)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	char err[512] = "";
	size_t n = 10u << 20;
	char *big = malloc(n);

	cr_assert_not_null(big);
	memset(big, ' ', n);
	big[0] = '[';
	big[n - 1] = ']';
	cp_set_doc(srv, "application/json", big, n, "\"big\"");
	free(big);
	o.max_body = 1u << 20;
	cr_assert_eq(ws_http_fetch(&o, NULL, &r, err, sizeof err), FLAGSHM_EINVAL);
	cr_assert(strstr(err, "larger than the limit of 1048576 bytes"), "%s", err);
	cr_assert_null(r.body);
	ws_http_resp_free(&r);

	o.max_body = 16u << 20; /* and under a larger limit it passes */
	cr_assert_eq(ws_http_fetch(&o, NULL, &r, err, sizeof err), 0, "%s", err);
	cr_assert_eq(r.body_len, n);
	ws_http_resp_free(&r);
}

Test(http, wrong_content_type_is_refused)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	char err[512] = "";

	cp_set_doc(srv, "text/html", "<html/>", 7, "\"h\"");
	cr_assert_eq(ws_http_fetch(&o, NULL, &r, err, sizeof err), FLAGSHM_EINVAL);
	cr_assert(strstr(err, "unexpected Content-Type \"text/html\""), "%s", err);
	ws_http_resp_free(&r);
}

Test(http, a_server_that_does_not_answer_hits_the_idle_timeout)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	char err[512] = "";
	int64_t t0 = mono_ms(), dt;

	cp_set_doc(srv, "application/json", doc1, strlen(doc1), "\"v1\"");
	cp_set_doc_delay(srv, 4000);
	o.idle_timeout_ms = 1000;
	cr_assert_eq(ws_http_fetch(&o, NULL, &r, err, sizeof err), FLAGSHM_EUNAVAIL);
	dt = mono_ms() - t0;
	cr_assert(strstr(err, "no data for 1000 ms"), "%s", err);
	/* The message says the timeout ended it, not the server's answer; it
	 * cannot end sooner than the timeout. How much later is not checked:
	 * that depends on the machine's load. */
	cr_assert_geq(dt, 900, "took %lld ms", (long long)dt);
	ws_http_resp_free(&r);
	cp_set_doc_delay(srv, 0);
}

Test(http, a_server_that_is_down_fails_fast)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	char err[512] = "", url[64];

	snprintf(url, sizeof url, "%s", cp_url(srv));
	cp_stop(srv);
	srv = cp_start(); /* the suite's fini needs one; the old port is closed */
	o.url = url;
	cr_assert_eq(ws_http_fetch(&o, NULL, &r, err, sizeof err), FLAGSHM_EUNAVAIL);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(err, url), "%s", err);
	ws_http_resp_free(&r);
}

Test(http, only_http_and_https_urls)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	char err[512] = "";

	o.url = "file:///etc/passwd";
	cr_assert_eq(ws_http_fetch(&o, NULL, &r, err, sizeof err), FLAGSHM_EINVAL);
	cr_assert(strstr(err, "http:// or https://"), "%s", err);
	ws_http_resp_free(&r);
}

/* ---------------------------------------------------------------- stream */

typedef struct sink {
	char log[8192];
	int n;
	int stop_at; /* return 99 at this event */
	int chunks;
} sink;

static int on_event(void *ud, const ws_sse_event *ev)
{
	sink *k = ud;
	size_t len = strlen(k->log);
	snprintf(k->log + len, sizeof k->log - len, "%s|%s|%.*s\n", ev->type, ev->id,
		 (int)(ev->data_len < 200 ? ev->data_len : 200), ev->data);
	return ++k->n == k->stop_at ? 99 : 0;
}

static int on_chunk(void *ud)
{
	((sink *)ud)->chunks++;
	return 0;
}

static int run_stream(ws_http_opts *o, ws_sse *p, sink *k, ws_http_resp *r, char *err, size_t n)
{
	ws_stream_hooks h = {.after_chunk = on_chunk, .ud = k};
	return ws_http_stream(o, p, &h, r, err, n);
}

Test(http, stream_delivers_events_and_sends_accept_and_key)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	ws_sse p;
	sink k = {.stop_at = 2};
	char err[512] = "";
	cp_seen seen;

	ws_sse_init(&p, 1 << 20, on_event, &k);
	cp_stream_push_str(srv, ": hi\n\nevent: put\nid: 1\ndata: {\"formatVersion\":1,\"flags\":[]}\n\n"
				"event: flag-updated\nid: 2\ndata: {\"key\":\"a\"}\n\n");
	cr_assert_eq(run_stream(&o, &p, &k, &r, err, sizeof err), 99, "%s", err);
	cr_assert_str_eq(k.log, "put|1|{\"formatVersion\":1,\"flags\":[]}\nflag-updated|2|{\"key\":\"a\"}\n");
	cr_assert_geq(k.chunks, 0);
	cr_assert_eq(r.events, 2);
	seen = cp_get_seen(srv);
	cr_assert_str_eq(seen.accept, "text/event-stream");
	cr_assert_str_eq(seen.authorization, "Bearer " KEY);
	cr_assert_str_eq(seen.last_event_id, "");
	ws_http_resp_free(&r);
	ws_sse_free(&p);
}

Test(http, a_reconnect_sends_last_event_id)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	ws_sse p;
	sink k = {0};
	char err[512] = "";

	ws_sse_init(&p, 1 << 20, on_event, &k);
	cp_stream_push_str(srv, "event: flag-deleted\nid: 41\ndata: {\"key\":\"a\"}\n\n");
	cp_stream_close(srv, false);
	cr_assert_eq(run_stream(&o, &p, &k, &r, err, sizeof err), FLAGSHM_EUNAVAIL);
	cr_assert(strstr(err, "the server closed the stream"), "%s", err);
	cr_assert_null(strstr(err, "middle"), "%s", err);
	cr_assert_eq(k.n, 1);
	ws_http_resp_free(&r);

	k.stop_at = 2;
	cp_stream_push_str(srv, "event: flag-deleted\nid: 42\ndata: {\"key\":\"b\"}\n\n");
	cr_assert_eq(run_stream(&o, &p, &k, &r, err, sizeof err), 99, "%s", err);
	cr_assert_str_eq(cp_get_seen(srv).last_event_id, "41");
	cr_assert_str_eq(ws_sse_last_id(&p), "42");
	ws_http_resp_free(&r);
	ws_sse_free(&p);
}

Test(http, a_stalled_stream_ends_at_the_idle_timeout)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	ws_sse p;
	sink k = {0};
	char err[512] = "";
	int64_t t0, dt;

	o.idle_timeout_ms = 1000;
	ws_sse_init(&p, 1 << 20, on_event, &k);
	cp_stream_push_str(srv, ": connected\n\nevent: put\nid: 3\ndata: {\"par");
	t0 = mono_ms();
	cr_assert_eq(run_stream(&o, &p, &k, &r, err, sizeof err), FLAGSHM_EUNAVAIL);
	dt = mono_ms() - t0;
	cr_assert(strstr(err, "stream stalled: no data for 1000 ms, in the middle of an event"), "%s", err);
	cr_assert_geq(dt, 900, "took %lld ms", (long long)dt);
	cr_assert_eq(k.n, 0, "a partial event was dispatched");
	ws_http_resp_free(&r);
	ws_sse_free(&p);
}

Test(http, a_server_that_closes_mid_event_delivers_nothing_of_it)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	ws_sse p;
	sink k = {0};
	char err[512] = "";

	ws_sse_init(&p, 1 << 20, on_event, &k);
	cp_stream_push_str(srv, "event: put\nid: 1\ndata: {}\n\nevent: flag-updated\nid: 2\ndata: {\"key\":");
	cp_stream_close(srv, true);
	cr_assert_eq(run_stream(&o, &p, &k, &r, err, sizeof err), FLAGSHM_EUNAVAIL);
	cr_assert(strstr(err, "middle of an event"), "%s", err);
	cr_assert_eq(k.n, 1);
	/* The cut event was not applied: a resume must not skip it. */
	cr_assert_str_eq(ws_sse_last_id(&p), "1");
	ws_http_resp_free(&r);

	/* The same, closed cleanly at the HTTP level. */
	cp_stream_push_str(srv, "event: flag-updated\nid: 5\ndata: {\"key\":");
	cp_stream_close(srv, false);
	cr_assert_eq(run_stream(&o, &p, &k, &r, err, sizeof err), FLAGSHM_EUNAVAIL);
	cr_assert(strstr(err, "closed the stream in the middle of an event"), "%s", err);
	cr_assert_eq(k.n, 1);
	ws_http_resp_free(&r);
	ws_sse_free(&p);
}

Test(http, garbage_in_the_stream_is_ignored_and_later_events_arrive)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	ws_sse p;
	sink k = {.stop_at = 1};
	char err[512] = "";
	static const char junk[] = "\x01\x02\x03 zz\n\xff\xfe\xfd\r\n<html>oops</html>\n\0\0\0\n\n";

	ws_sse_init(&p, 1 << 20, on_event, &k);
	cp_stream_push(srv, junk, sizeof junk - 1);
	cp_stream_push_str(srv, "event: put\nid: 8\ndata: {}\n\n");
	cr_assert_eq(run_stream(&o, &p, &k, &r, err, sizeof err), 99, "%s", err);
	cr_assert_str_eq(k.log, "put|8|{}\n");
	ws_http_resp_free(&r);
	ws_sse_free(&p);
}

Test(http, a_10mb_event_over_the_limit_ends_the_stream_with_a_clear_error)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	ws_sse p;
	sink k = {0};
	char err[512] = "";
	size_t n = 10u << 20;
	char *big = malloc(n);

	cr_assert_not_null(big);
	memset(big, 'x', n);
	ws_sse_init(&p, 1 << 20, on_event, &k);
	cp_stream_push_str(srv, "event: put\nid: 1\ndata: ");
	cp_stream_push(srv, big, n);
	cp_stream_push_str(srv, "\n\n");
	free(big);
	cr_assert_eq(run_stream(&o, &p, &k, &r, err, sizeof err), FLAGSHM_EINVAL);
	cr_assert(strstr(err, "SSE event larger than the limit of 1048576 bytes"), "%s", err);
	cr_assert_eq(k.n, 0);
	ws_http_resp_free(&r);
	ws_sse_free(&p);
}

typedef struct drip {
	cp_server *s;
	const char *text;
	int gap_ms;
} drip;

static void *drip_thread(void *arg)
{
	drip *d = arg;
	struct timespec gap = {0, (long)d->gap_ms * 1000000L};

	for (const char *c = d->text; *c; c++) {
		cp_stream_push(d->s, c, 1);
		nanosleep(&gap, NULL);
	}
	return NULL;
}

Test(http, a_slow_drip_still_makes_whole_events)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	ws_sse p;
	sink k = {.stop_at = 2};
	char err[512] = "";
	drip d = {srv, "event: put\r\nid: 1\r\ndata: {\"formatVersion\":1,\r\ndata: \"flags\":[]}\r\n\r\n"
		       ": ping\r\nevent: flag-deleted\r\nid: 2\r\ndata: {\"key\":\"z\"}\r\n\r\n", 3};
	pthread_t t;

	ws_sse_init(&p, 1 << 20, on_event, &k);
	cr_assert_eq(pthread_create(&t, NULL, drip_thread, &d), 0);
	cr_assert_eq(run_stream(&o, &p, &k, &r, err, sizeof err), 99, "%s", err);
	pthread_join(t, NULL);
	cr_assert_str_eq(k.log, "put|1|{\"formatVersion\":1,\n\"flags\":[]}\nflag-deleted|2|{\"key\":\"z\"}\n");
	cr_assert_gt(k.chunks, 10, "a drip arrives in many reads (%d)", k.chunks);
	ws_http_resp_free(&r);
	ws_sse_free(&p);
}

Test(http, stream_statuses_and_wrong_content_type)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	ws_sse p;
	sink k = {0};
	char err[512] = "";

	ws_sse_init(&p, 1 << 20, on_event, &k);
	cp_set_stream_status(srv, 429, "3", NULL);
	cr_assert_eq(run_stream(&o, &p, &k, &r, err, sizeof err), FLAGSHM_EUNAVAIL);
	cr_assert_eq(r.status, 429);
	cr_assert_eq(r.retry_after_ms, 3000);
	ws_http_resp_free(&r);

	cp_set_stream_status(srv, 500, NULL, NULL);
	cr_assert_eq(run_stream(&o, &p, &k, &r, err, sizeof err), FLAGSHM_EUNAVAIL);
	cr_assert_eq(r.status, 500);
	cr_assert(strstr(err, "HTTP 500"), "%s", err);
	ws_http_resp_free(&r);

	cp_set_stream_status(srv, 0, NULL, NULL);
	o.key = "wrong";
	cr_assert_eq(run_stream(&o, &p, &k, &r, err, sizeof err), FLAGSHM_EUNAVAIL);
	cr_assert_eq(r.status, 401);
	ws_http_resp_free(&r);
	o.key = KEY;

	cp_set_stream_status(srv, 0, NULL, "application/json");
	cp_stream_push_str(srv, "event: put\ndata: {}\n\n");
	cr_assert_eq(run_stream(&o, &p, &k, &r, err, sizeof err), FLAGSHM_EINVAL);
	cr_assert(strstr(err, "unexpected Content-Type \"application/json\""), "%s", err);
	cr_assert_eq(k.n, 0, "events from a non-SSE response were dispatched");
	ws_http_resp_free(&r);
	ws_sse_free(&p);
}

static int stop_soon(void *ud)
{
	int64_t *deadline = ud;
	return mono_ms() >= *deadline ? 5 : 0;
}

Test(http, the_stop_hook_ends_an_idle_stream_within_a_second)
{
	ws_http_opts o = opts();
	ws_http_resp r;
	ws_sse p;
	sink k = {0};
	char err[512] = "";
	int64_t deadline = mono_ms() + 300, dt;
	ws_stream_hooks h = {.stop = stop_soon, .ud = &deadline};

	o.idle_timeout_ms = 30000;
	ws_sse_init(&p, 1 << 20, on_event, &k);
	cp_stream_push_str(srv, ": open\n\n");
	cr_assert_eq(ws_http_stream(&o, &p, &h, &r, err, sizeof err), 5);
	dt = mono_ms() - deadline;
	cr_assert_lt(dt, 15000, "stopped %lld ms late (the idle timeout, 30 s, would end it later)", (long long)dt);
	ws_http_resp_free(&r);
	ws_sse_free(&p);
}

/* ------------------------------------------------------------------- key */

Test(http, key_comes_from_the_file_or_the_environment_trimmed_and_checked)
{
	char key[WS_KEY_MAX], err[256], path[] = "/tmp/flagshm-key-XXXXXX";
	int fd = mkstemp(path);
	FILE *f;

	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	fputs("  abc-123_XYZ \n", f);
	fclose(f);
	cr_assert_eq(ws_key_load(path, key, sizeof key, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(key, "abc-123_XYZ");

	f = fopen(path, "w");
	fputs("xyzzy plugh\n", f);
	fclose(f);
	cr_assert_eq(ws_key_load(path, key, sizeof key, err, sizeof err), FLAGSHM_EINVAL);
	cr_assert_null(strstr(err, "xyzzy"), "the key leaked into: %s", err);
	unlink(path);
	cr_assert_eq(ws_key_load(path, key, sizeof key, err, sizeof err), FLAGSHM_ESYS);

	setenv(WS_KEY_ENV, "env-key", 1);
	cr_assert_eq(ws_key_load(NULL, key, sizeof key, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(key, "env-key");
	unsetenv(WS_KEY_ENV);
	cr_assert_eq(ws_key_load(NULL, key, sizeof key, err, sizeof err), FLAGSHM_EINVAL);
	cr_assert(strstr(err, "FLAGSHM_SDK_KEY"), "%s", err);
}
