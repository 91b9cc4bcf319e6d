/*
 * writer/sync/sync.h - keep a store in step with a control plane
 * (docs/sync-protocol.md): the network loop of flagshm-writer --source URL.
 *
 * At start the persisted document of the state directory is published
 * first (a damaged file is reported and ignored), then the loop syncs:
 *
 *  - polling: GET /api/v1/flags with the last ETag every poll interval; a
 *    304 keeps the snapshot, a 200 replaces the document when it compiles.
 *  - streaming: GET /api/v1/flags/stream; each event is applied to the
 *    model (model.h) and the events of one network read are published as
 *    one generation. While the stream is down the document endpoint is
 *    polled (at once, then every poll interval).
 *
 * Failures back off (backoff.h: jitter, circuit breaker, Retry-After) and
 * never touch what is published. Every good document is saved to the state
 * directory (cache.h). SIGHUP, a stream `put` and a changed `epoch` bust
 * the cache: the whole document is taken again (SIGHUP: fetched without
 * If-None-Match) and republished.
 *
 * The loop owns no file descriptor, signal or shared memory: the host (the
 * daemon) publishes, records the state in the control object, waits for
 * signals and writes the log. One thread.
 */
#ifndef FLAGSHM_WRITER_SYNC_H
#define FLAGSHM_WRITER_SYNC_H

#include "compile.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ws_options {
	const char *url;	 /* --source, http:// or https://; several separated
				  * by commas are instances of one control plane:
				  * a failed fetch or a broken stream moves to the
				  * next one */
	const char *key;	 /* the SDK key, loaded by the caller (ws_key_load)
				  * before it creates the store; never logged */
	const char *state_dir;	 /* --state-dir; NULL: no cache */
	const char *ca_file;	 /* --ca-file, NULL: the system's CAs */
	const char *environment; /* --environment, NULL for none */
	bool stream;		 /* --stream */
	bool once;		 /* --once: one fetch, publish, return */
	int poll_interval_s;	 /* --poll-interval, > 0 */
	int idle_timeout_s;	 /* --idle-timeout: a silent stream is reconnected; 0: 90 */
	wc_limits limits;	 /* max_doc_bytes also bounds one stream event */
} ws_options;

/* Bits returned by ws_host.wait. */
#define WS_SIG_STOP 1 /* SIGTERM, SIGINT: leave the loop */
#define WS_SIG_HUP 2  /* SIGHUP: refetch without If-None-Match, republish */

typedef struct ws_host {
	/* Publish SNAP (still the caller's to free); WHAT says where it came
	 * from, for the log. 0, or non-zero when it could not be published
	 * (the host logged why). */
	int (*publish)(void *ud, const wc_snapshot *snap, const char *what);
	/* Record the sync state in the control object. LAST_SYNC_MS: Unix ms
	 * of the last successful sync (0: unchanged); LAST_ERROR and
	 * SYNC_STATE: NULL when unchanged, "" to clear. */
	void (*state)(void *ud, int64_t last_sync_ms, const char *last_error,
		      const char *sync_state);
	/* Wait up to TIMEOUT_MS (0: only look) for a signal, keeping the
	 * heartbeat; returns WS_SIG_* bits. */
	int (*wait)(void *ud, int timeout_ms);
	/* One log line (no newline). Never given the SDK key. */
	void (*log)(void *ud, const char *line);
	/* Optional (NULL: not counted): one WS_COUNT_* event, for metrics. */
	void (*count)(void *ud, int what);
	void *ud;
} ws_host;

/* Events given to ws_host.count. A document request ends in exactly one
 * of the first three (a 200 whose document is rejected is an ERROR, and
 * also a REJECTED); REJECTED alone for a stream event's document. */
#define WS_COUNT_OK 1		/* 200 with a usable document */
#define WS_COUNT_NOT_MODIFIED 2 /* 304 */
#define WS_COUNT_ERROR 3	/* no answer, an error status, or an unusable document */
#define WS_COUNT_REJECTED 4	/* a document not published: invalid */

/*
 * Run until WS_SIG_STOP (or, with o->once, after one fetch). Returns the
 * exit status: 0; 1 with o->once when the fetch or the publish failed.
 */
int ws_run(const ws_options *o, const ws_host *h);

#endif
