/*
 * control/mirror.h - what one flagshm-control instance knows of etcd: the
 * document (flags, segments, epoch), the tokens, and the recent changes as
 * SSE events, kept current by one watch on PREFIX/ (the watcher thread).
 *
 * Reads that must be current (a write's precondition, GET of one flag)
 * go to etcd; the model serves the document, the streams and the token
 * checks, and is waited on (cs_model_wait) until it has seen a revision
 * etcd named, so a client reads its own writes.
 *
 * Layout under PREFIX (docs/control.md, "etcd layout"):
 *   flags/KEY      {"object":FLAG,"version","createdAt","updatedAt","updatedBy"}
 *   segments/NAME  the same with the segment
 *   tokens/NAME    {"name","role","sha256","createdAt","createdBy","groups"}
 *   meta/epoch     the document's epoch (JSON)
 *   meta/docrev    touched by every change of the document (see api.c)
 *   meta/bootstrapped  set once the bootstrap token was stored
 *   audit/ID, audit-key/KIND/KEY/ID   the audit record, twice
 *   rollouts/      reserved (issue 13)
 */
#ifndef FLAGSHM_CONTROL_MIRROR_H
#define FLAGSHM_CONTROL_MIRROR_H

#include "etcd.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define CS_RING 4096 /* SSE events kept for resuming streams ... */
#define CS_RING_BYTES (64u << 20) /* ... and at most this many bytes of them */

/* The document as served at one revision, built once (refcounted). */
typedef struct cs_doc {
	_Atomic int refs; /* seq_cst ++/--: the last -- (reaching 0) frees; every
			     holder's reads happen before its own -- */
	int64_t rev;
	json_t *doc; /* read-only once built */
	char *json;
	size_t json_len;
	pthread_mutex_t pb_mu; /* guards pb, made on first use */
	uint8_t *pb;
	size_t pb_len;
	bool pb_failed;
} cs_doc;

void cs_doc_unref(cs_doc **d);
/* The protobuf form; NULL when it cannot be made. Valid while D is held. */
const uint8_t *cs_doc_pb(cs_doc *d, size_t *len);

/* Bytes shared by every stream that sends them (an event, a put). */
typedef struct cs_blob {
	_Atomic int refs; /* as cs_doc's */
	size_t len;
	char text[];
} cs_blob;

/* A blob of A, B and C one after the other (any may be NULL); NULL when
 * out of memory. */
cs_blob *cs_blob_cat(const char *a, const char *b, const char *c);
cs_blob *cs_blob_ref(cs_blob *b);
void cs_blob_unref(cs_blob **b);

typedef struct cs_event {
	int64_t rev;
	cs_blob *blob; /* the whole SSE event, "event: ...\nid: ...\ndata: ...\n\n" */
} cs_event;

typedef struct cs_model {
	cs_etcd *etcd;
	char *prefix; /* "/flagshm/" (with the slash) */
	pthread_mutex_t mu;
	pthread_cond_t cv; /* broadcast on every change of what follows */
	json_t *flags;	   /* key -> served flag object (version, times inside) */
	json_t *segments;  /* name -> segment object */
	json_t *tokens;	   /* name -> token record */
	json_t *epoch;	   /* NULL: none */
	int64_t seen_rev;  /* etcd revision the model is at */
	int64_t doc_rev;   /* last revision that changed the document */
	bool up;	   /* the watch is connected */
	cs_doc *cache;	   /* the document at doc_rev, or NULL */
	cs_blob *put_cache; /* the `put` event of the document ... */
	int64_t put_rev;    /* ... with this id */
	int64_t put_cache_doc; /* ... of the document at this revision */
	cs_event ring[CS_RING];
	uint64_t ring_n;   /* events ever pushed; ring[i % CS_RING] */
	uint64_t ring_first; /* the oldest event kept (ring_first..ring_n-1) */
	size_t ring_bytes;
	int64_t ring_floor; /* every event after this revision is in the ring */
	volatile bool stop;
	pthread_t watcher;
	bool started;
	_Atomic bool loaded; /* the first load is done: the model can answer.
				Stored (seq_cst) after the load filled the model
				under mu; a reader that sees true takes mu
				before reading it, so this only gates */
	char last_error[256];
} cs_model;

/* An empty model (no I/O), then the first load from etcd and the watcher
 * (0, or a CS_E* error: try again later). */
void cs_model_init(cs_model *m, cs_etcd *e, const char *prefix);
int cs_model_load(cs_model *m, char *err, size_t errlen);
void cs_model_stop(cs_model *m);

/* Wait (up to TIMEOUT_MS) until the model has seen revision REV. */
bool cs_model_wait(cs_model *m, int64_t rev, int timeout_ms);

/* The document at the model's revision (a reference: cs_doc_unref). */
cs_doc *cs_model_doc(cs_model *m);
/* The same with m->mu held. */
cs_doc *cs_model_doc_locked(cs_model *m);
/* The `put` event of the model's document with id REV (a reference; built
 * once for every stream that starts at that revision). Holds m->mu. */
cs_blob *cs_model_put_locked(cs_model *m, int64_t rev);

/* A new document object (shallow: shares the model's flag and segment
 * objects) with flag KEY replaced by FLAG (NULL: removed) or segment NAME
 * replaced by SEG (NULL: removed); KEY and NAME may be NULL. For
 * validation. */
json_t *cs_model_doc_with(cs_model *m, const char *key, json_t *flag, const char *name,
			  json_t *seg);

/* A stored flag or segment record (VALUE, LEN bytes) as served: its
 * object, a flag with its version and times. NULL when unreadable. */
json_t *cs_served(const char *value, size_t len, bool is_flag);
/* The SSE event NAME with id REV and DATA (JSON) as a new blob. */
cs_blob *cs_event_blob(const char *name, int64_t rev, json_t *data);

/* One line on stderr: "TIME flagshm-control: MESSAGE" (http.c). */
void cs_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The key of PREFIX + WHAT ("flags/" + KEY): malloc'd. */
char *cs_key(const cs_model *m, const char *what, const char *name);

#endif
