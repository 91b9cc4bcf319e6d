/*
 * writer/sync/sse.h - an incremental Server-Sent Events parser (the WHATWG
 * "event stream" format): fed whatever byte chunks the network delivers,
 * it calls back once per complete event. Pure: no I/O, no clock, no
 * printing; one parser per connection, one thread at a time.
 *
 * What it follows of the spec: lines end with CR, LF or CRLF (a CRLF split
 * across two chunks is one line end); a leading UTF-8 BOM is skipped; a
 * line starting with ':' is a comment (a keep-alive); "field: value" drops
 * one space after the colon; a line without a colon is a field with an
 * empty value; `data` lines are joined with "\n"; an empty line dispatches
 * the event, unless it has no data; `event` names the event ("message" when
 * absent); `id` sets the last event id (ignored when it holds a NUL) which
 * takes effect when its event is dispatched (or at the empty line that
 * ends it, data or not; an event cut by the end of a connection leaves the
 * previous id) and stays in force for later events and for reconnecting; `retry` with only
 * digits sets retry_ms; other fields are ignored. A partial event at the end
 * of a connection is dropped (ws_sse_reset).
 *
 * A bound, max_event, caps the bytes of one event: every line of it that is
 * not a comment (data, event, id, retry and unknown fields alike, each
 * counted whole without its line end) plus the line being read. A stream
 * that goes past it, or never ends a line, fails with a message instead of
 * growing without limit. An id is also capped at WS_SSE_MAX_ID bytes: it is
 * sent back as Last-Event-ID and persisted in the cold-start cache, so a
 * longer one fails the stream (checked while the line is read) rather than
 * being kept.
 */
#ifndef FLAGSHM_WRITER_SSE_H
#define FLAGSHM_WRITER_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_SSE_MAX_ID 256

typedef struct ws_sse_event {
	const char *type; /* the event field, or "message" */
	const char *data; /* NUL-terminated; data_len bytes (may hold NULs) */
	size_t data_len;
	const char *id; /* the last event id in force, "" if none */
} ws_sse_event;

/* Called for each event; the pointers are valid during the call only.
 * A non-zero return stops ws_sse_feed, which returns that value. */
typedef int (*ws_sse_fn)(void *ud, const ws_sse_event *ev);

typedef struct ws_sse_buf {
	char *p;
	size_t len, cap;
} ws_sse_buf;

typedef struct ws_sse {
	size_t max_event;
	ws_sse_fn cb;
	void *ud;
	ws_sse_buf line, data, type, id;
	ws_sse_buf id_next; /* an id line of the event being read */
	size_t ev_bytes;    /* bytes of the event's complete lines (comments aside) */
	bool id_set;	    /* ... committed to id at the event's end */
	long retry_ms;	 /* last valid retry field, -1 if none */
	bool seen_cr;	 /* the last byte was CR: an LF right after it ends nothing */
	uint8_t bom_pos; /* bytes of a leading BOM matched; 3 once decided */
	int failed;	 /* sticky error until ws_sse_reset */
	char why[96];	 /* its message */
	uint64_t events, comments; /* dispatched events, comment lines seen */
} ws_sse;

/* Set up P. MAX_EVENT bounds one event (see above); CB receives events. */
void ws_sse_init(ws_sse *p, size_t max_event, ws_sse_fn cb, void *ud);

/*
 * Parse N bytes at BUF, calling back for each event they complete. Returns
 * 0, the callback's non-zero return (parsing stopped there), or:
 *   FLAGSHM_EINVAL  an event past max_event bytes ("SSE event larger than
 *                   the limit of N bytes" in ERR), or an id past
 *                   WS_SSE_MAX_ID ("SSE id field longer than the limit of
 *                   256 bytes (after N events)"); the parser stays failed
 *                   (every later feed returns it) until ws_sse_reset
 *   FLAGSHM_ENOMEM  out of memory (sticky, too)
 */
int ws_sse_feed(ws_sse *p, const void *buf, size_t n, char *err, size_t errlen);

/* A new connection: drop the partial line and event, clear a failure, look
 * for a BOM again. The last event id and retry_ms are kept. */
void ws_sse_reset(ws_sse *p);

/* True when bytes of an unfinished event are pending (a connection closed
 * now would cut an event). */
bool ws_sse_mid_event(const ws_sse *p);

/* The last event id ("" if none); valid until the next feed or free. */
const char *ws_sse_last_id(const ws_sse *p);

/* Free the buffers; P may be initialised again. */
void ws_sse_free(ws_sse *p);

#endif
