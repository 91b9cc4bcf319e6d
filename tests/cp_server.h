/*
 * tests/cp_server.h - a small control plane for tests, on libmicrohttpd:
 * GET /api/v1/flags (a document with ETag / 304, a required bearer key,
 * forced statuses, a delay) and GET /api/v1/flags/stream (an SSE stream
 * whose bytes the test pushes and whose connection the test closes).
 * Listens on 127.0.0.1 only, on a free port chosen by the kernel.
 * Every wait inside is bounded; cp_stop ends everything.
 */
#ifndef FLAGSHM_TESTS_CP_SERVER_H
#define FLAGSHM_TESTS_CP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cp_server cp_server;

/* Start on 127.0.0.1:0; NULL on failure. */
cp_server *cp_start(void);
/* Start on 127.0.0.1:PORT (a server stopped and started again on the port
 * its clients know); NULL on failure. */
cp_server *cp_start_on(unsigned port);
unsigned cp_port(const cp_server *s);
void cp_stop(cp_server *s);
/* "http://127.0.0.1:PORT" */
const char *cp_url(const cp_server *s);

/* Requests must carry "Authorization: Bearer KEY" (NULL: anything goes),
 * else 401. */
void cp_set_key(cp_server *s, const char *key);

/* The document served with 200 (304 when If-None-Match equals ETAG). */
void cp_set_doc(cp_server *s, const char *content_type, const void *body, size_t n,
		const char *etag);
/* Answer the document endpoint with STATUS (0: normal), a Retry-After
 * (NULL: none), after DELAY_MS. */
void cp_set_doc_status(cp_server *s, int status, const char *retry_after);
void cp_set_doc_delay(cp_server *s, int delay_ms);

/* Answer the stream endpoint with STATUS (0: 200) and CONTENT_TYPE (NULL:
 * text/event-stream). */
void cp_set_stream_status(cp_server *s, int status, const char *retry_after,
			  const char *content_type);
/* Queue bytes for the stream (the current connection, or the next). Only
 * the newest stream connection is served: an older one ends when a new
 * one is accepted. */
void cp_stream_push(cp_server *s, const void *b, size_t n);
void cp_stream_push_str(cp_server *s, const char *str);
/* End the current stream connection, or the next one, once the bytes
 * queued so far are sent: cleanly (the chunked body ends) or abruptly (the
 * TCP connection drops). */
void cp_stream_close(cp_server *s, bool abrupt);
/* Wait until N stream connections have been accepted in all; false on
 * timeout. */
bool cp_wait_streams(cp_server *s, int n, int timeout_ms);

/* What the last request carried ("" when absent; copies). */
typedef struct cp_seen {
	int doc_requests, stream_requests;
	int doc_conditional; /* document requests that carried If-None-Match */
	int doc_not_modified; /* ... answered 304 */
	char authorization[256];
	char if_none_match[256];
	char accept[256];
	char last_event_id[256];
} cp_seen;
cp_seen cp_get_seen(cp_server *s);

#endif
