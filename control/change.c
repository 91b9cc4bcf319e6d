/*
 * control/change.c - every change as one etcd transaction: the caller's
 * compares (the key's mod_revision as read), meta/rev's mod_revision as
 * validated against, then the change, its audit record (under audit/ and,
 * for a keyed change, audit-key/KEY/) and a new meta/rev, together. No
 * change without its record, no record without its change; and since
 * meta/rev moves with every change, the document the change was validated
 * against is the one it lands on.
 */
#include "server.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void cs_now(char out[32])
{
	char b[64];
	struct timespec t;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &t);
	gmtime_r(&t.tv_sec, &tm);
	snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 t.tv_nsec / 1000000L);
	memcpy(out, b, 31);
	out[31] = 0;
}

/* Audit ids sort by time: milliseconds (13 digits) and 64 random bits. */
static void audit_id(char out[40])
{
	struct timespec t;
	uint64_t rnd = 0;

	clock_gettime(CLOCK_REALTIME, &t);
	if (RAND_bytes((unsigned char *)&rnd, sizeof rnd) != 1)
		rnd = (uint64_t)t.tv_nsec ^ ((uint64_t)rand() << 32);
	snprintf(out, 40, "%013lld-%016llx",
		 (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000L, (unsigned long long)rnd);
}

void cs_race_pause(int attempt)
{
	uint32_t r = 0;

	if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
		r = (uint32_t)rand();
	usleep(r % (500u * (unsigned)(attempt + 1)));
}

/* The mod_revision of KEY, or 0 when it is absent or etcd does not say. */
static int64_t landed_rev(cs_etcd *e, const char *key)
{
	json_t *resp = NULL;
	char err[256];
	int64_t rev = 0;

	if (cs_etcd_call(e, "/v3/kv/range", json_pack("{s:o}", "key", cs_b64s(key)), &resp, err,
			 sizeof err) == 0)
		rev = cs_jint(json_array_get(cs_kvs(resp), 0), "mod_revision");
	json_decref(resp);
	return rev;
}

static void add_put(json_t *ops, const char *key, json_t *value)
{
	char *v = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);

	json_array_append_new(ops, cs_op_put(key, v ? v : "null", v ? strlen(v) : 4));
	free(v);
}

int cs_commit(cs_req *r, cs_change *c, int64_t *rev, char *err, size_t errlen)
{
	cs_model *m = &r->s->model;
	const char *reason = r->reason;
	char now[32], id[40];
	char *k_audit, *k_index = NULL, *k_rev = cs_key(m, "meta/rev", NULL);
	json_t *audit, *resp = NULL, *cmps = c->cmps ? c->cmps : json_array();
	json_t *ops = c->ops ? c->ops : json_array();
	int rc;

	cs_now(now);
	audit_id(id);
	audit = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:O?,s:O?,s:s,s:s}", "id", id, "time",
			  now, "actor", r->actor, "action", c->action, "kind", c->kind, "key",
			  c->name ? json_string(c->name) : json_null(), "version",
			  c->version ? json_integer(c->version) : json_null(), "before", c->before,
			  "after", c->after, "reason", reason ? reason : "", "requestId", r->id);
	if (c->extra)
		json_object_update_missing(audit, c->extra);
	k_audit = cs_key(m, "audit/", id);
	add_put(ops, k_audit, audit);
	if (c->name) {
		size_t n = strlen(m->prefix) + strlen(c->name) + strlen(id) + 16;
		k_index = malloc(n);
		snprintf(k_index, n, "%saudit-key/%s/%s", m->prefix, c->name, id);
		add_put(ops, k_index, audit);
	}
	json_array_append_new(ops, cs_op_put(k_rev, id, strlen(id)));
	json_array_append_new(cmps, cs_cmp_mod(k_rev, c->rev_seen));
	rc = cs_etcd_call(r->s->etcd, "/v3/kv/txn",
			  json_pack("{s:o,s:o}", "compare", cmps, "success", ops), &resp, err,
			  errlen);
	c->cmps = c->ops = NULL;
	if (rc == 0) {
		rc = json_is_true(json_object_get(resp, "succeeded")) ? 1 : 0;
		*rev = cs_header_rev(resp);
	}
	json_decref(resp);
	if (rc == 0 || rc == CS_EUNAVAIL) {
		/* A member that took the txn and then went silent may have
		 * committed it, so that the next member's compare fails on our
		 * own change: the audit record tells. */
		int64_t landed = landed_rev(r->s->etcd, k_audit);
		if (landed > 0) {
			*rev = landed;
			rc = 1;
		}
	}
	json_decref(audit);
	free(k_audit);
	free(k_index);
	free(k_rev);
	return rc;
}

int cs_commit_delete(cs_req *r, cs_change *c, const char *key, int64_t mod,
		     enum MHD_Result *ret)
{
	char err[512];
	int64_t rev = 0;

	json_array_append_new(c->cmps, cs_cmp_mod(key, mod));
	json_array_append_new(c->ops, cs_op_delete(key));
	int rc = cs_commit(r, c, &rev, err, sizeof err);
	if (rc == 1) {
		cs_model_wait(&r->s->model, rev, 5000);
		*ret = cs_reply(r, 204, NULL, NULL);
	} else if (rc < 0) {
		*ret = cs_etcd_error(r, rc, err);
	}
	return rc;
}
