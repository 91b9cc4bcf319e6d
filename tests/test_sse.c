/*
 * tests/test_sse.c - the Server-Sent Events parser (writer/sync/sse.h): fields,
 * line ends, comments, ids, retry, chunk boundaries anywhere, the event
 * size bound, and garbage.
 */
#include <criterion/criterion.h>

#include "flagshm.h"
#include "sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every dispatched event appended as "type|id|data\n" (data's "\n" as "\\n"). */
typedef struct rec {
	char log[8192];
	size_t len;
	int stop_after; /* return 7 from the callback at this event (0: never) */
	int n;
} rec;

static int record(void *ud, const ws_sse_event *ev)
{
	rec *r = ud;
	size_t room = sizeof r->log - r->len;
	int w = snprintf(r->log + r->len, room, "%s|%s|", ev->type, ev->id);

	cr_assert(w > 0 && (size_t)w < room, "log full");
	r->len += (size_t)w;
	for (size_t i = 0; i < ev->data_len && r->len + 3 < sizeof r->log; i++) {
		if (ev->data[i] == '\n') {
			r->log[r->len++] = '\\';
			r->log[r->len++] = 'n';
		} else {
			r->log[r->len++] = ev->data[i];
		}
	}
	cr_assert(strlen(ev->data) <= ev->data_len, "data is NUL-terminated");
	r->log[r->len++] = '\n';
	r->log[r->len] = '\0';
	return ++r->n == r->stop_after ? 7 : 0;
}

/* Feed S whole and return the log (static buffer of the recorder). */
static const char *parse(rec *r, const char *s, size_t n)
{
	ws_sse p;
	char err[128];
	int rc;

	memset(r, 0, sizeof *r);
	ws_sse_init(&p, 1 << 16, record, r);
	rc = ws_sse_feed(&p, s, n, err, sizeof err);
	cr_assert_eq(rc, 0, "feed failed: %d %s", rc, err);
	ws_sse_free(&p);
	return r->log;
}

#define PARSE(r, lit) parse((r), (lit), sizeof(lit) - 1)

Test(sse, one_event_with_type_and_id)
{
	rec r;
	cr_assert_str_eq(PARSE(&r, "event: put\nid: 1\ndata: {\"a\":1}\n\n"), "put|1|{\"a\":1}\n");
}

Test(sse, data_lines_join_with_newline_and_type_defaults_to_message)
{
	rec r;
	cr_assert_str_eq(PARSE(&r, "data: a\ndata: b\ndata:\ndata: c\n\n"), "message||a\\nb\\n\\nc\n");
}

Test(sse, one_space_after_the_colon_is_dropped_not_more)
{
	rec r;
	cr_assert_str_eq(PARSE(&r, "data:x\n\ndata:  y\n\n"), "message||x\nmessage|| y\n");
}

Test(sse, a_field_without_colon_has_an_empty_value)
{
	rec r;
	/* "data" alone adds an empty line: the event is dispatched with "". */
	cr_assert_str_eq(PARSE(&r, "data\n\nevent\ndata: z\n\n"), "message||\nmessage||z\n");
}

Test(sse, cr_lf_and_crlf_all_end_lines)
{
	rec r;
	const char *want = "a|1|x\\ny\nb|2|z\n";
	cr_assert_str_eq(PARSE(&r, "event: a\nid: 1\ndata: x\ndata: y\n\nevent: b\nid: 2\ndata: z\n\n"), want);
	cr_assert_str_eq(PARSE(&r, "event: a\r\nid: 1\r\ndata: x\r\ndata: y\r\n\r\nevent: b\r\nid: 2\r\ndata: z\r\n\r\n"), want);
	cr_assert_str_eq(PARSE(&r, "event: a\rid: 1\rdata: x\rdata: y\r\revent: b\rid: 2\rdata: z\r\r"), want);
	cr_assert_str_eq(PARSE(&r, "event: a\rid: 1\r\ndata: x\ndata: y\r\n\revent: b\nid: 2\rdata: z\n\r\n"), want);
}

Test(sse, comments_are_keepalives_not_events)
{
	rec r;
	ws_sse p;
	char err[64];
	const char s[] = ": keep-alive\n\n:\n: another\ndata: d\n: inside\n\n";

	memset(&r, 0, sizeof r);
	ws_sse_init(&p, 4096, record, &r);
	cr_assert_eq(ws_sse_feed(&p, s, sizeof s - 1, err, sizeof err), 0);
	cr_assert_str_eq(r.log, "message||d\n");
	cr_assert_eq(p.comments, 4);
	cr_assert_eq(p.events, 1);
	ws_sse_free(&p);
}

Test(sse, event_without_data_is_not_dispatched_and_its_type_is_forgotten)
{
	rec r;
	cr_assert_str_eq(PARSE(&r, "event: put\n\ndata: d\n\n"), "message||d\n");
}

Test(sse, ids_persist_and_an_id_with_nul_is_ignored)
{
	rec r;
	ws_sse p;
	char err[64];
	const char s[] = "id: 5\ndata: a\n\ndata: b\n\nid: 6\n\nid: x\0y\ndata: c\n\nid\ndata: e\n\n";

	memset(&r, 0, sizeof r);
	ws_sse_init(&p, 4096, record, &r);
	cr_assert_eq(ws_sse_feed(&p, s, sizeof s - 1, err, sizeof err), 0);
	/* "id: 6" alone updates the last id without an event; the NUL id is
	 * ignored; a bare "id" clears it. */
	cr_assert_str_eq(r.log, "message|5|a\nmessage|5|b\nmessage|6|c\nmessage||e\n");
	cr_assert_str_eq(ws_sse_last_id(&p), "");
	ws_sse_free(&p);
}

Test(sse, retry_takes_digits_only)
{
	ws_sse p;
	char err[64];

	ws_sse_init(&p, 4096, NULL, NULL);
	cr_assert_eq(p.retry_ms, -1);
	cr_assert_eq(ws_sse_feed(&p, "retry: 3000\n", 12, err, sizeof err), 0);
	cr_assert_eq(p.retry_ms, 3000);
	cr_assert_eq(ws_sse_feed(&p, "retry: 30x\nretry: -1\nretry:\nretry: 9999999999\n", 46, err, sizeof err), 0);
	cr_assert_eq(p.retry_ms, 3000, "invalid retry values are ignored (got %ld)", p.retry_ms);
	ws_sse_free(&p);
}

Test(sse, unknown_fields_are_ignored)
{
	rec r;
	cr_assert_str_eq(PARSE(&r, "foo: bar\ndata: d\nDATA: no\nEvent: no\n\n"), "message||d\n");
}

Test(sse, leading_bom_is_skipped_once)
{
	rec r;
	cr_assert_str_eq(PARSE(&r, "\xef\xbb\xbf" "data: a\n\n"), "message||a\n");
	/* A BOM later in the stream is text. */
	cr_assert_str_eq(PARSE(&r, "data: a\n\n\xef\xbb\xbf" "data: b\n\n"), "message||a\n");
}

static const char stream[] =
	"\xef\xbb\xbf: hello\r\n"
	"retry: 1500\r\n"
	"event: put\r\nid: 1\r\ndata: {\"formatVersion\":1,\r\ndata:  \"flags\":[]}\r\n\r\n"
	"event: flag-updated\rid: 2\rdata: {\"key\":\"a\"}\r\r"
	":keepalive\n\n"
	"event: flag-deleted\nid: 3\ndata: {\"key\":\"a\"}\n\n"
	"id: 4\n\n"
	"event: segment-deleted\r\ndata: {\"name\":\"s\"}\r\n\n";

static const char stream_want[] =
	"put|1|{\"formatVersion\":1,\\n \"flags\":[]}\n"
	"flag-updated|2|{\"key\":\"a\"}\n"
	"flag-deleted|3|{\"key\":\"a\"}\n"
	"segment-deleted|4|{\"name\":\"s\"}\n";

Test(sse, every_split_into_two_chunks_gives_the_same_events)
{
	const size_t n = sizeof stream - 1;

	for (size_t k = 0; k <= n; k++) {
		rec r;
		ws_sse p;
		char err[64];

		memset(&r, 0, sizeof r);
		ws_sse_init(&p, 4096, record, &r);
		cr_assert_eq(ws_sse_feed(&p, stream, k, err, sizeof err), 0);
		cr_assert_eq(ws_sse_feed(&p, stream + k, n - k, err, sizeof err), 0);
		cr_assert_str_eq(r.log, stream_want, "split at %zu:\n%s", k, r.log);
		cr_assert_eq(p.retry_ms, 1500);
		cr_assert(!ws_sse_mid_event(&p));
		ws_sse_free(&p);
	}
}

Test(sse, byte_by_byte_and_three_way_splits_give_the_same_events)
{
	const size_t n = sizeof stream - 1;
	rec r;
	ws_sse p;
	char err[64];

	memset(&r, 0, sizeof r);
	ws_sse_init(&p, 4096, record, &r);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(ws_sse_feed(&p, stream + i, 1, err, sizeof err), 0);
	cr_assert_str_eq(r.log, stream_want);
	ws_sse_free(&p);

	for (size_t a = 0; a <= n; a += 3) {
		for (size_t b = a; b <= n; b += 5) {
			memset(&r, 0, sizeof r);
			ws_sse_init(&p, 4096, record, &r);
			cr_assert_eq(ws_sse_feed(&p, stream, a, err, sizeof err), 0);
			cr_assert_eq(ws_sse_feed(&p, stream + a, b - a, err, sizeof err), 0);
			cr_assert_eq(ws_sse_feed(&p, stream + b, n - b, err, sizeof err), 0);
			cr_assert_str_eq(r.log, stream_want, "split at %zu,%zu", a, b);
			ws_sse_free(&p);
		}
	}
}

Test(sse, oversize_event_fails_clearly_and_stays_failed_until_reset)
{
	rec r;
	ws_sse p;
	char err[128] = "";
	char big[200];

	memset(&r, 0, sizeof r);
	memset(big, 'x', sizeof big);
	ws_sse_init(&p, 100, record, &r);
	cr_assert_eq(ws_sse_feed(&p, "data: ", 6, err, sizeof err), 0);
	cr_assert_eq(ws_sse_feed(&p, big, sizeof big, err, sizeof err), FLAGSHM_EINVAL);
	cr_assert_str_eq(err, "SSE event larger than the limit of 100 bytes");
	err[0] = '\0';
	cr_assert_eq(ws_sse_feed(&p, "\n\ndata: ok\n\n", 12, err, sizeof err), FLAGSHM_EINVAL);
	cr_assert_str_eq(err, "SSE event larger than the limit of 100 bytes");
	cr_assert_eq(r.n, 0);

	ws_sse_reset(&p);
	cr_assert_eq(ws_sse_feed(&p, "data: ok\n\n", 10, err, sizeof err), 0);
	cr_assert_str_eq(r.log, "message||ok\n");
	ws_sse_free(&p);
}

Test(sse, many_data_lines_count_toward_the_limit)
{
	ws_sse p;
	char err[128];
	int rc = 0;

	ws_sse_init(&p, 1000, NULL, NULL);
	for (int i = 0; i < 200 && rc == 0; i++)
		rc = ws_sse_feed(&p, "data: 0123456789\n", 17, err, sizeof err);
	cr_assert_eq(rc, FLAGSHM_EINVAL, "1000-byte bound not enforced across lines");
	ws_sse_free(&p);
}

Test(sse, an_event_at_exactly_the_limit_passes)
{
	rec r;
	ws_sse p;
	char err[128], line[64];

	/* "data: " + 20 bytes: the line is 26 bytes, the data 21 with its "\n". */
	memset(&r, 0, sizeof r);
	snprintf(line, sizeof line, "data: %s\n\n", "01234567890123456789");
	ws_sse_init(&p, 26, record, &r);
	cr_assert_eq(ws_sse_feed(&p, line, strlen(line), err, sizeof err), 0, "%s", err);
	cr_assert_eq(r.n, 1);
	ws_sse_free(&p);
}

Test(sse, callback_return_stops_the_feed)
{
	rec r;
	ws_sse p;
	char err[64];

	memset(&r, 0, sizeof r);
	r.stop_after = 2;
	ws_sse_init(&p, 4096, record, &r);
	cr_assert_eq(ws_sse_feed(&p, stream, sizeof stream - 1, err, sizeof err), 7);
	cr_assert_eq(r.n, 2);
	ws_sse_free(&p);
}

Test(sse, reset_drops_the_partial_event_and_keeps_the_last_id)
{
	rec r;
	ws_sse p;
	char err[64];

	memset(&r, 0, sizeof r);
	ws_sse_init(&p, 4096, record, &r);
	cr_assert_eq(ws_sse_feed(&p, "id: 9\ndata: a\n\nevent: put\ndata: {\"half\"", 40, err, sizeof err), 0);
	cr_assert(ws_sse_mid_event(&p));
	ws_sse_reset(&p);
	cr_assert(!ws_sse_mid_event(&p));
	cr_assert_str_eq(ws_sse_last_id(&p), "9");
	cr_assert_eq(ws_sse_feed(&p, "data: b\n\n", 9, err, sizeof err), 0);
	cr_assert_str_eq(r.log, "message|9|a\nmessage|9|b\n");
	ws_sse_free(&p);
}

Test(sse, garbage_never_crashes_and_is_bounded)
{
	uint64_t x = 88172645463325252ull;
	char buf[4096];

	for (int round = 0; round < 200; round++) {
		ws_sse p;
		rec r;
		char err[128];
		int rc = 0;

		memset(&r, 0, sizeof r);
		ws_sse_init(&p, 2048, record, &r);
		for (int chunk = 0; chunk < 8 && rc == 0; chunk++) {
			size_t n = (size_t)(x % sizeof buf);
			for (size_t i = 0; i < n; i++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				/* Bias toward the bytes that matter to the parser. */
				static const char alpha[] = "\r\n:data event id retry\0\xef\xbb\xbf";
				buf[i] = (x & 3) ? alpha[(x >> 8) % (sizeof alpha - 1)] : (char)(x >> 16);
			}
			rc = ws_sse_feed(&p, buf, n, err, sizeof err);
			cr_assert(rc == 0 || rc == FLAGSHM_EINVAL, "rc %d", rc);
		}
		ws_sse_free(&p);
	}
}

static int data_len_cb(void *ud, const ws_sse_event *ev)
{
	*(size_t *)ud = ev->data_len;
	cr_assert_eq(memcmp(ev->data, "a\0b", 4), 0);
	return 0;
}

Test(sse, data_may_hold_nul_bytes_and_reports_the_length)
{
	ws_sse p;
	char err[64];
	static const char s[] = "data: a\0b\n\n";
	size_t got = 0;

	ws_sse_init(&p, 4096, data_len_cb, &got);
	cr_assert_eq(ws_sse_feed(&p, s, sizeof s - 1, err, sizeof err), 0);
	cr_assert_eq(got, 3);
	ws_sse_free(&p);
}

/* The event limit counts every line of an event, not
 * only its data, and an id has a bound of its own. */
Test(sse, event_and_id_and_unknown_lines_count_toward_the_event_limit)
{
	rec r;
	ws_sse p;
	char err[128] = "", ev[256];
	char pad[61];

	memset(pad, 'x', 60);
	pad[60] = '\0';
	/* 67 + 64 + 7 + 7 = 145 bytes of lines, 6 of them data. */
	int n = snprintf(ev, sizeof ev, "event: %s\nid: %s\nfoo: xy\ndata: z\n\n", pad, pad);
	memset(&r, 0, sizeof r);
	ws_sse_init(&p, 100, record, &r);
	cr_assert_eq(ws_sse_feed(&p, ev, (size_t)n, err, sizeof err), FLAGSHM_EINVAL,
		     "a 145-byte event passed a 100-byte limit");
	cr_assert_str_eq(err, "SSE event larger than the limit of 100 bytes");
	cr_assert_eq(r.n, 0);
	cr_assert_str_eq(ws_sse_last_id(&p), "");
	ws_sse_free(&p);

	/* The same event passes a limit of exactly its lines' bytes. */
	memset(&r, 0, sizeof r);
	ws_sse_init(&p, 145, record, &r);
	cr_assert_eq(ws_sse_feed(&p, ev, (size_t)n, err, sizeof err), 0, "%s", err);
	cr_assert_eq(r.n, 1);
	ws_sse_free(&p);
}

Test(sse, an_id_past_256_bytes_fails_the_stream_and_is_never_kept)
{
	rec r;
	ws_sse p;
	char err[128] = "", chunk[4096];
	int rc = 0;

	memset(&r, 0, sizeof r);
	ws_sse_init(&p, 64u << 20, record, &r);
	cr_assert_eq(ws_sse_feed(&p, "id: a\ndata: 1\n\nid: ", 19, err, sizeof err), 0, "%s", err);
	/* 7 MB of id, in chunks as the network delivers them. */
	memset(chunk, 'x', sizeof chunk);
	for (int i = 0; i < 7 * 256 && rc == 0; i++)
		rc = ws_sse_feed(&p, chunk, sizeof chunk, err, sizeof err);
	cr_assert_eq(rc, FLAGSHM_EINVAL, "a 7 MB id was accepted");
	cr_assert_str_eq(err, "SSE id field longer than the limit of 256 bytes (after 1 events)");
	/* At most the chunk that crossed the bound was buffered. */
	cr_assert_leq(p.line.cap, 2 * sizeof chunk, "the long id was buffered (%zu bytes)", p.line.cap);
	cr_assert_str_eq(ws_sse_last_id(&p), "a", "the last id is \"%s\", want \"a\"",
			 ws_sse_last_id(&p));
	/* Sticky, with the same message. */
	err[0] = '\0';
	cr_assert_eq(ws_sse_feed(&p, "\n\n", 2, err, sizeof err), FLAGSHM_EINVAL);
	cr_assert_str_eq(err, "SSE id field longer than the limit of 256 bytes (after 1 events)");
	ws_sse_free(&p);
}

Test(sse, an_id_of_exactly_256_bytes_is_kept)
{
	rec r;
	ws_sse p;
	char err[128] = "", ev[300];
	char id[257];

	memset(id, 'i', 256);
	id[256] = '\0';
	int n = snprintf(ev, sizeof ev, "id: %s\ndata: 1\n\n", id);
	memset(&r, 0, sizeof r);
	ws_sse_init(&p, 4096, record, &r);
	cr_assert_eq(ws_sse_feed(&p, ev, (size_t)n, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(ws_sse_last_id(&p), id);
	/* Without the space after the colon, too. */
	n = snprintf(ev, sizeof ev, "id:%s\ndata: 1\n\n", id);
	cr_assert_eq(ws_sse_feed(&p, ev, (size_t)n, err, sizeof err), 0, "%s", err);
	ws_sse_free(&p);
}
