/*
 * control/etcd.h - a client of etcd v3's JSON gateway (/v3/kv/..., /v3/watch,
 * /v3/auth/authenticate) over libcurl. Keys and values travel base64
 * encoded, 64-bit numbers as decimal strings; these helpers hide both.
 *
 * One cs_etcd serves every thread: each call uses its thread's own curl
 * handle. A call that cannot reach a member (connection refused, timeout,
 * a 5xx, "no leader") tries the next member of --etcd, each at most once.
 */
#ifndef FLAGSHM_CONTROL_ETCD_H
#define FLAGSHM_CONTROL_ETCD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Errors of the cs_ functions (besides 0). */
enum {
	CS_EUNAVAIL = -1, /* no member answered: 503 */
	CS_EETCD = -2,	  /* etcd answered with an error (message in err) */
	CS_ECOMPACTED = -3, /* the revision asked for was compacted */
	CS_ENOMEM = -4,
};

typedef struct cs_etcd cs_etcd;

/* URLS: "http://h:p[,http://h2:p2...]". USER_FILE: NULL, or a file whose
 * first line is "user:password" (etcd auth). NULL with ERR filled on a bad
 * argument. */
cs_etcd *cs_etcd_new(const char *urls, const char *user_file, char *err, size_t errlen);
void cs_etcd_free(cs_etcd **e);

/* Free the calling thread's curl handle (other threads' go when they end;
 * the main thread's must be freed by hand). */
void cs_etcd_thread_done(void);

/* POST REQ (consumed) to PATH ("/v3/kv/range") and parse the answer into
 * *resp. Returns 0 or a CS_E* error with a message in ERR. */
int cs_etcd_call(cs_etcd *e, const char *path, json_t *req, json_t **resp, char *err,
		 size_t errlen);

/* A watch stream from START_REV on [KEY, END): ON_RESULT gets each
 * "result" object; it returns false to end the watch. Returns when the
 * stream ends, ON_RESULT says stop, *STOP becomes true (checked every
 * second) or TIMEOUT_MS pass (0: never): 0 (stopped), CS_EUNAVAIL, or
 * CS_ECOMPACTED (with *compact_rev set). */
typedef bool (*cs_watch_fn)(json_t *result, void *arg);
int cs_etcd_watch(cs_etcd *e, const char *key, const char *end, int64_t start_rev,
		  cs_watch_fn on_result, void *arg, const volatile bool *stop, int timeout_ms,
		  int64_t *compact_rev, char *err, size_t errlen);

/* Base64 of N bytes (a new JSON string) and back (malloc'd, NUL-ended;
 * NULL when S is not base64). */
json_t *cs_b64(const void *p, size_t n);
json_t *cs_b64s(const char *s);
char *cs_unb64(const char *s, size_t *n);

/* The end of the range of keys starting with PREFIX (last byte + 1). */
char *cs_prefix_end(const char *prefix);

/* Request pieces: {"request_put":{key,value}}, {"request_range":{key,
 * range_end}}, {"request_delete_range":{key}}, and compares of a key's
 * mod_revision (REV 0: the key must not exist). */
json_t *cs_op_put(const char *key, const char *value, size_t vlen);
json_t *cs_op_range(const char *key, const char *end);
json_t *cs_op_delete(const char *key);
json_t *cs_cmp_mod(const char *key, int64_t rev);

/* A JSON field holding an int64 (etcd sends them as strings); 0 when
 * absent. */
int64_t cs_jint(const json_t *o, const char *name);
/* The header revision of an etcd answer. */
int64_t cs_header_rev(const json_t *resp);
/* The kvs of a range answer (possibly inside a txn response). */
json_t *cs_kvs(json_t *range_resp);

#endif
