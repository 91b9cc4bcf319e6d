/*
 * writer/sync/http.h - the writer's two requests to a control plane
 * (docs/sync-protocol.md), with libcurl:
 *
 *   GET {url}/api/v1/flags          the whole document, conditional on an
 *                                   ETag (If-None-Match)
 *   GET {url}/api/v1/flags/stream   Server-Sent Events, resumed with
 *                                   Last-Event-ID
 *
 * Both send `Authorization: Bearer KEY`. The key is never logged: no
 * message from this file contains it, and curl's verbose mode is off.
 * TLS peers are always verified (a private CA is given with ca_file, never
 * by turning verification off). Redirects are not followed, so the key
 * never goes to another host. Only http:// and https:// URLs.
 *
 * Every call blocks its thread until done; one handle is made per call.
 * Call ws_http_global_init() once, before any thread starts.
 */
#ifndef FLAGSHM_WRITER_HTTP_H
#define FLAGSHM_WRITER_HTTP_H

#include "compile.h"
#include "sse.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_KEY_MAX 512
#define WS_KEY_ENV "FLAGSHM_SDK_KEY"

typedef struct ws_http_opts {
	const char *url;	 /* base, "https://cp.example.com" (a trailing / is fine) */
	const char *key;	 /* SDK key, NULL for none */
	const char *ca_file;	 /* PEM bundle to trust instead of the system's, or NULL */
	long connect_timeout_ms; /* TCP + TLS handshake; default 5000 */
	long timeout_ms;	 /* a whole fetch; default 30000 (not the stream) */
	long idle_timeout_ms;	 /* no byte received for this long ends the transfer:
				    default 30000 for a fetch, 90000 for a stream
				    (a control plane sends a comment at least every 30 s) */
	size_t max_body;	 /* a fetched document's bytes; default 64 MiB */
	size_t max_event;	 /* one stream event's bytes; default 64 MiB */
	/* A fetch polls this at least once a second (NULL: never); non-zero
	 * abandons the fetch (FLAGSHM_EUNAVAIL, "interrupted"). For the
	 * stream, ws_stream_hooks.stop does this. */
	int (*fetch_stop)(void *ud);
	void *fetch_stop_ud;
} ws_http_opts;

/* WS_HTTP_* defaults for what an option leaves 0. */
void ws_http_opts_default(ws_http_opts *o);

/* A response. body is malloc'd (NUL-terminated) or NULL. */
typedef struct ws_http_resp {
	long status;		/* HTTP status; 0 when none was received */
	char etag[256];		/* ETag, "" if none (or longer than this) */
	char content_type[128]; /* Content-Type without parameters, lowercase */
	int64_t retry_after_ms; /* Retry-After, -1 if none */
	char *body;
	size_t body_len;
	uint64_t events; /* stream: events dispatched in this connection */
} ws_http_resp;

void ws_http_resp_free(ws_http_resp *r);

/* curl_global_init. Returns 0 or FLAGSHM_ESYS. */
int ws_http_global_init(void);

/* fetch: 304, the snapshot stays. */
#define WS_HTTP_NOT_MODIFIED 1

/*
 * GET {url}/api/v1/flags with If-None-Match: ETAG (NULL or "": none) and
 * Accept: application/x-protobuf, application/json. Fills *r (free with
 * ws_http_resp_free) and returns:
 *   0                     200 with a body of an accepted Content-Type
 *   WS_HTTP_NOT_MODIFIED  304
 *   FLAGSHM_EUNAVAIL      no usable answer: connect, TLS, timeout, idle, or
 *                         an HTTP status other than 200/304 (r->status, and
 *                         r->retry_after_ms for 429/503)
 *   FLAGSHM_EINVAL        an answer refused: a body past max_body, a
 *                         Content-Type that is neither JSON nor protobuf
 *   FLAGSHM_ENOMEM        out of memory
 * ERR says what happened, naming the URL but never the key.
 */
int ws_http_fetch(const ws_http_opts *o, const char *etag, ws_http_resp *r, char *err,
		  size_t errlen);

/*
 * The document in a 200 response R: protobuf (application/x-protobuf) or
 * JSON (application/json) into *doc. LABEL names it in messages. Returns 0,
 * or FLAGSHM_EINVAL with the reasons in ERRS.
 */
int ws_http_doc(const ws_http_resp *r, const char *label, const wc_limits *lim, json_t **doc,
		wc_errors *errs);

/* Hooks of a stream connection; any may be NULL. */
typedef struct ws_stream_hooks {
	/* After the events of one network read were dispatched (the place to
	 * publish what a burst changed, once). Non-zero ends the stream. */
	int (*after_chunk)(void *ud);
	/* Polled at least once a second; non-zero ends the stream. */
	int (*stop)(void *ud);
	void *ud;
} ws_stream_hooks;

/*
 * One connection to {url}/api/v1/flags/stream, fed to SSE (set up by the
 * caller with its event callback and o->max_event), sending Last-Event-ID
 * when SSE has one. Returns when the connection ends, always with a
 * reason; *r gets the status, Retry-After and the number of events:
 *   FLAGSHM_EUNAVAIL  connect/TLS failure, an HTTP status other than 200,
 *                     the server closed the stream (ERR says whether in the
 *                     middle of an event, which is then dropped), or no
 *                     byte for idle_timeout_ms (a stalled stream)
 *   FLAGSHM_EINVAL    a Content-Type other than text/event-stream, an event
 *                     past max_event (the parser's message)
 *   FLAGSHM_ENOMEM    out of memory
 *   other non-zero    what a hook or the event callback returned
 * SSE is reset (ws_sse_reset) at the start, keeping its last event id.
 */
int ws_http_stream(const ws_http_opts *o, ws_sse *sse, const ws_stream_hooks *h,
		   ws_http_resp *r, char *err, size_t errlen);

/*
 * The SDK key: the first line of KEY_FILE when it is not NULL, else the
 * environment variable FLAGSHM_SDK_KEY. Surrounding whitespace is trimmed;
 * it must then be 1..WS_KEY_MAX-1 printable ASCII characters without
 * spaces (it goes into a header). Returns 0, or FLAGSHM_EINVAL (no key,
 * empty, bad characters) / FLAGSHM_ESYS (unreadable file) with a message
 * that never quotes the key.
 */
int ws_key_load(const char *key_file, char *key, size_t keylen, char *err, size_t errlen);

#endif
