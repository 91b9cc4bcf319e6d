/*
 * writer/sync/model.h - the writer's copy of the control plane's document, kept
 * current by whole documents (a poll, a stream `put`, the cache) and by the
 * stream's incremental events (docs/sync-protocol.md):
 *
 *   put              data: a whole document
 *   flag-updated     data: one flag object; replaces the flag of that key,
 *                    or is appended when there is none
 *   flag-deleted     data: {"key": K}
 *   segment-updated  data: {"name": N, "segment": {...}}; replaces or adds
 *   segment-deleted  data: {"name": N}
 *
 * Every change is made on a candidate that shares the unchanged parts of
 * the current document, and the candidate is compiled (wc_compile) before
 * it replaces the current one: an event that would leave the document
 * invalid (a deleted flag another one needs as a prerequisite, a segment
 * still in use, a malformed flag) is rejected with every reason, and the
 * model stays as it was. One thread at a time.
 */
#ifndef FLAGSHM_WRITER_MODEL_H
#define FLAGSHM_WRITER_MODEL_H

#include "compile.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* ws_model_apply / ws_model_set: the event changed nothing (an equal flag,
 * deleting what is not there, an equal put); there is nothing to publish. */
#define WS_MODEL_UNCHANGED 1

typedef struct ws_model {
	json_t *doc; /* the current good document, NULL before the first */
	char *environment; /* --environment, NULL for none */
	wc_limits lim;
	uint64_t applied, unchanged, rejected; /* counts, for status */
} ws_model;

/* Set up M with no document. ENVIRONMENT (copied; may be NULL) and LIM
 * (NULL: wc_limits_default()) are what wc_compile is given. Returns 0 or
 * FLAGSHM_ENOMEM. */
int ws_model_init(ws_model *m, const char *environment, const wc_limits *lim);
void ws_model_free(ws_model *m);

/*
 * Make DOC (borrowed: the model takes its own reference) the document, if
 * it compiles. LABEL names the source in messages ("https://cp/api/v1/flags",
 * "cache /var/lib/flagshm/shop/doc.pb"). Returns:
 *   0                   DOC is the document now; *out (when OUT is not
 *                       NULL) is its snapshot, the caller's to free
 *   WS_MODEL_UNCHANGED  DOC equals the current document; *out untouched
 *   FLAGSHM_EINVAL      DOC does not compile: every reason is in ERRS and
 *                       the model is unchanged
 *   FLAGSHM_ENOMEM      out of memory; the model is unchanged
 */
int ws_model_set(ws_model *m, json_t *doc, const char *label, wc_snapshot *out, wc_errors *errs);

/*
 * Apply one stream event: TYPE (the SSE event name) with DATA (LEN bytes
 * of JSON). Returns as ws_model_set; FLAGSHM_EINVAL also for an unknown
 * event type, data that is not JSON or not of the event's shape, and a
 * delta (any event but put) before the model has a document.
 */
int ws_model_apply(ws_model *m, const char *type, const char *data, size_t len, const char *label,
		   wc_snapshot *out, wc_errors *errs);

#endif
