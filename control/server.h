/*
 * control/server.h - flagshm-control's shared types: the options, the
 * server (etcd client, model, HTTP daemon) and one request as the
 * handlers see it, with the reply helpers (every error is
 * {"error":{"code","message","details"}} with the status that says the
 * same, and every reply carries X-Request-Id).
 */
#ifndef FLAGSHM_CONTROL_SERVER_H
#define FLAGSHM_CONTROL_SERVER_H

#include "compile.h"
#include "mirror.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cs_options {
	const char *listen;	/* "127.0.0.1:8080" */
	const char *etcd;	/* "http://127.0.0.1:2379" */
	const char *prefix;	/* "/flagshm" */
	const char *etcd_user_file;
	const char *tls_cert, *tls_key;
	const char *bootstrap_token_file;
	size_t max_body;	/* bytes, 8 MiB */
	unsigned max_connections; /* 2048 */
	unsigned client_timeout; /* seconds without a byte from a client, 30 */
	unsigned max_txn_ops;	/* 128, etcd's own default */
	unsigned keepalive;	/* seconds between SSE comments, 15 */
} cs_options;

/* What a token may do (roles are sets of rights, docs/control.md). */
enum {
	CS_R_SYNC = 1,	  /* the two sync endpoints */
	CS_R_READ = 2,	  /* every GET, the audit */
	CS_R_WRITE = 4,	  /* flags, segments, import, bust */
	CS_R_APPROVE = 8, /* rollout approvals (issue 13) */
	CS_R_ADMIN = 16,  /* tokens */
};

typedef struct cs_server {
	cs_options opt;
	cs_etcd *etcd;
	cs_model model;
	wc_limits lim;
	struct MHD_Daemon *d;
	unsigned port;
	_Atomic unsigned conns;	/* open HTTP connections: a counter (seq_cst ++/--),
				   pairs with nothing */
	/* stream.c: the shared reads of meta/rev (cs_current), under rev_mu */
	pthread_mutex_t rev_mu;
	pthread_cond_t rev_cv;
	uint64_t rev_started, rev_done; /* reads begun, the last one finished */
	bool rev_busy;
	int rev_rc;
	int64_t rev_meta, rev_head;
	char rev_err[256];
	/* instances.c: this instance's registration on a lease */
	char instance_id[128];
	json_t *instance;
	int64_t lease_id;
	pthread_t inst_thread;
	volatile bool inst_stop;
	bool inst_started;
	_Atomic uint64_t req_seq; /* request ids: a counter, pairs with nothing */
} cs_server;

typedef struct cs_req {
	cs_server *s;
	struct MHD_Connection *c;
	const char *method, *url;
	char *body;
	size_t len, cap;
	bool too_big, answered;
	char id[48];	    /* the request id */
	char actor[160];    /* the token's name, "" before auth */
	unsigned rights;
	const char *reason; /* X-Flagshm-Reason */
	int status;	    /* for the log line */
	int64_t t0_us;
} cs_req;

/* The version in an If-Match value ("7", 7, W/"7"); -1 when unreadable. */
int64_t cs_etag_version(const char *h);

/* Replies. BODY is consumed. */
enum MHD_Result cs_reply(cs_req *r, int status, json_t *body, const char *etag);
enum MHD_Result cs_reply_raw(cs_req *r, int status, const char *ctype, const void *p,
			     size_t n, const char *etag, bool copy);
enum MHD_Result cs_error(cs_req *r, int status, const char *code, json_t *details,
			 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* 503 with Retry-After for etcd trouble (RC a CS_E* error). */
enum MHD_Result cs_etcd_error(cs_req *r, int rc, const char *msg);
const char *cs_header(cs_req *r, const char *name);

/* auth.c: find the bearer token's name and rights; 0, or 401. */
int cs_auth(cs_req *r);
/* The rights of a role name; 0 for an unknown role. */
unsigned cs_role_rights(const char *role);
/* SHA-256 of S as 64 hex digits into HEX[65]. */
void cs_sha256_hex(const char *s, size_t n, char hex[65]);
/* A new random token "fsh_" + 43 base64url characters into OUT[64]. */
int cs_token_new(char out[64]);
/* Store the bootstrap token's hash once (the first start). */
int cs_bootstrap(cs_server *s, const char *file, char *err, size_t errlen);

/* http.c: parse --listen (IPv4 HOST:PORT) into *SA; 0 or -1 with ERR. */
struct sockaddr_in;
int cs_listen_parse(const char *listen, struct sockaddr_in *sa, char *err, size_t errlen);
/* http.c: listen on --listen (port 0: any; s->port says which). */
int cs_http_start(cs_server *s, char *err, size_t errlen);
void cs_http_stop(cs_server *s);

/* api.c: the management endpoints; stream.c: the two sync endpoints and
 * cs_current, meta/rev's mod_revision read from etcd (linearizable) and the
 * model waited for until it is there: 0, or a reply was queued. */
int cs_current(cs_req *r, int64_t *meta_rev, int64_t *head_rev, enum MHD_Result *ret);
enum MHD_Result cs_api(cs_req *r);
enum MHD_Result cs_serve_doc(cs_req *r);
enum MHD_Result cs_serve_stream(cs_req *r);

/* api.c: helpers of the handlers; each returns 0, or -1 with a reply
 * queued in *ret. */
typedef struct cs_cur {
	json_t *value;	  /* the key's JSON value, NULL when absent */
	int64_t mod;	  /* its mod_revision (0: absent) */
	int64_t meta_rev; /* meta/rev's mod_revision at the same revision */
} cs_cur;
/* Read KEY and meta/rev in one txn; with WAIT, wait for the model to reach
 * meta/rev (a write validates against the model). */
int cs_read_key(cs_req *r, const char *key, cs_cur *cur, bool wait, enum MHD_Result *ret);
/* True when the If-None-Match list H holds ETAG (weak tags and * match). */
bool cs_etag_listed(const char *h, const char *etag);
int cs_need_reason(cs_req *r, enum MHD_Result *ret);
int cs_check_name(cs_req *r, const char *what, const char *name, enum MHD_Result *ret);
/* The body as JSON, or NULL with a 400 naming line and column. */
json_t *cs_parse_body(cs_req *r, enum MHD_Result *ret);
/* DOC validated as flagshm-writer --check does; else STATUS, CODE and
 * every message in "details". */
int cs_validate(cs_req *r, json_t *doc, int status, const char *code, enum MHD_Result *ret);
void cs_strip_server_fields(json_t *o);
enum MHD_Result cs_forbidden(cs_req *r, const char *what);
/* The other endpoints: import.c, audit.c, tokens.c. */
enum MHD_Result cs_import(cs_req *r);
enum MHD_Result cs_bust(cs_req *r);
enum MHD_Result cs_audit(cs_req *r);
enum MHD_Result cs_tokens(cs_req *r, const char *name);
/* instances.c: register this instance (URL) on a lease; list; revoke. */
int cs_instances_start(cs_server *s, const char *url, char *err, size_t errlen);
void cs_instances_stop(cs_server *s);
enum MHD_Result cs_instances_list(cs_req *r);

/* replay.c: the SSE events of the revisions (LAST, UPTO] from etcd's
 * history (*out: N references, malloc'd array). 0, or -1 when a `put` must
 * be sent instead (compacted, a bulk change, etcd trouble). */
int cs_replay(cs_server *s, int64_t last, int64_t upto, cs_blob ***out, size_t *n);

/* change.c: one etcd transaction with its audit record. */
typedef struct cs_change {
	const char *kind;    /* "flag", "segment", "token", "import" */
	const char *action;  /* "create", "update", "delete", "bust", "import" */
	const char *name;    /* the audit "key" (NULL: null) */
	int64_t version;     /* the audit "version" (0: null) */
	json_t *before, *after; /* borrowed, may be NULL */
	json_t *cmps;	     /* compares besides meta/rev's (consumed) */
	json_t *ops;	     /* puts and deletes (consumed) */
	int64_t rev_seen;    /* meta/rev's mod_revision validated against */
	json_t *extra;	     /* borrowed, may be NULL: more audit fields (rollouts) */
} cs_change;
/* Run C; 1 when committed (*rev its revision), 0 when a compare failed,
 * or a CS_E* error. */
int cs_commit(cs_req *r, cs_change *c, int64_t *rev, char *err, size_t errlen);
/* A delete of KEY (last changed at MOD) as C, answered 204 once this
 * instance's mirror has it, or with the etcd error: cs_commit's result, the
 * reply in *RET when one was sent (nothing sent when it returns 0). */
int cs_commit_delete(cs_req *r, cs_change *c, const char *key, int64_t mod,
		     enum MHD_Result *ret);
/* After a commit lost a race (attempt ATTEMPT, from 0): up to
 * 0.5 ms x (ATTEMPT + 1), random, so that racers fall out of step. */
void cs_race_pause(int attempt);
/* "2026-12-03T12:42:07.123Z" for now. */
void cs_now(char out[32]);

#endif
