/*
 * control/api.c - the management endpoints (docs/control.md): flags and
 * segments with versions, If-Match / If-None-Match and validation of the
 * whole resulting document; import; bust; audit; tokens.
 *
 * A write reads the key and meta/rev in one etcd txn, checks the client's
 * precondition against the version read, waits until the model has seen
 * that meta/rev, validates the document the model holds with the change
 * applied, and commits with compares on both mod_revisions (change.c). A
 * commit that lost a race on meta/rev alone (another key changed) is
 * retried from the read; one that lost on the key is a 412 at the re-read.
 */
#include "rollout_int.h"
#include "server.h"
#include "validate.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CS_WRITE_TRIES 25

typedef struct kind_info {
	const char *kind; /* "flag" or "segment" */
	const char *dir;  /* "flags/" or "segments/" */
	bool is_flag;
} kind_info;

static const kind_info k_flag = {"flag", "flags/", true};
static const kind_info k_seg = {"segment", "segments/", false};

enum MHD_Result cs_forbidden(cs_req *r, const char *what)
{
	return cs_error(r, 403, "forbidden", NULL, "this token's role may not %s", what);
}

/* 0 when NAME is a valid flag key / segment / token name, else a reply. */
int cs_check_name(cs_req *r, const char *what, const char *name, enum MHD_Result *ret)
{
	size_t n = strlen(name), bad = wc_name_bad_char(name, n);

	if (n == 0 || n > WC_NAME_MAX) {
		*ret = cs_error(r, 422, "invalid", NULL, "%s: must be 1 to %d characters", what,
				WC_NAME_MAX);
		return -1;
	}
	if (bad < n) {
		*ret = cs_error(r, 422, "invalid", NULL,
				"%s: character %zu is outside [A-Za-z0-9._-]", what, bad + 1);
		return -1;
	}
	return 0;
}

int cs_need_reason(cs_req *r, enum MHD_Result *ret)
{
	const char *h = cs_header(r, "X-Flagshm-Reason");
	bool blank = true;

	for (const char *p = h; p && *p; p++)
		blank = blank && isspace((unsigned char)*p);
	if (!h || blank || strlen(h) > 4096) {
		*ret = cs_error(r, 400, "reason_required", NULL,
				"every change needs a reason: the X-Flagshm-Reason header "
				"(1 to 4096 bytes)");
		return -1;
	}
	r->reason = h;
	return 0;
}

/* How deep V nests (a scalar: 1). V parsed, so at most jansson's 2048. */
static size_t depth_of(json_t *v)
{
	size_t d = 0, i;
	const char *k;
	json_t *x;

	if (json_is_object(v)) {
		json_object_foreach(v, k, x) {
			size_t e = depth_of(x);
			d = e > d ? e : d;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x) {
			size_t e = depth_of(x);
			d = e > d ? e : d;
		}
	}
	return d + 1;
}

/* The body as JSON (any value), or a 400 with the parser's line and column.
 * Bodies nest at most CS_DEPTH_MAX deep: what is stored gets wrapped
 * (mirror.h) and must parse again under jansson's limit. */
#define CS_DEPTH_MAX 1000
json_t *cs_parse_body(cs_req *r, enum MHD_Result *ret)
{
	wc_errors errs = {0};
	json_t *doc = NULL, *details;

	if (wc_load_buffer(r->body ? r->body : "", r->len, "body", &r->s->lim, &doc, &errs) == 0) {
		wc_errors_free(&errs);
		if (depth_of(doc) > CS_DEPTH_MAX) {
			json_decref(doc);
			*ret = cs_error(r, 422, "invalid", NULL,
					"body: nested deeper than %d levels", CS_DEPTH_MAX);
			return NULL;
		}
		return doc;
	}
	details = json_array();
	for (size_t i = 0; i < errs.n; i++)
		json_array_append_new(details, json_string(errs.msg[i]));
	*ret = cs_error(r, 400, "bad_json", details, "%s",
			errs.n ? errs.msg[0] : "body: not JSON");
	wc_errors_free(&errs);
	return NULL;
}

/* 0 when DOC is valid; else a reply (STATUS, CODE) with every message. */
int cs_validate(cs_req *r, json_t *doc, int status, const char *code, enum MHD_Result *ret)
{
	wc_errors errs = {0};
	json_t *details;

	if (wc_validate(doc, "document", &r->s->lim, &errs) == 0) {
		wc_errors_free(&errs);
		return 0;
	}
	details = json_array();
	for (size_t i = 0; i < errs.n; i++)
		json_array_append_new(details, json_string(errs.msg[i]));
	*ret = cs_error(r, status, code, details, "%s%s",
			errs.n ? errs.msg[0] : "the document would be invalid",
			errs.n > 1 ? " (and more: see details)" : "");
	wc_errors_free(&errs);
	return -1;
}

/* A version from If-Match: "7", 7, W/"7". -1 when unreadable. */
int64_t cs_etag_version(const char *h)
{
	char *end;
	long long v;

	while (*h == ' ')
		h++;
	if (!strncmp(h, "W/", 2))
		h += 2;
	if (*h == '"')
		h++;
	v = strtoll(h, &end, 10);
	if (end == h || v < 0 || (*end && *end != '"'))
		return -1;
	return v;
}

/* Read KEY and meta/rev at one revision; wait for the model to be there.
 * 0, or -1 with a reply queued. */
int cs_read_key(cs_req *r, const char *key, cs_cur *cur, bool wait, enum MHD_Result *ret)
{
	cs_model *m = &r->s->model;
	char *k_rev = cs_key(m, "meta/rev", NULL), err[256];
	json_t *ops = json_array(), *resp = NULL, *rs, *kv;
	int rc;

	json_array_append_new(ops, cs_op_range(key, NULL));
	json_array_append_new(ops, cs_op_range(k_rev, NULL));
	free(k_rev);
	rc = cs_etcd_call(r->s->etcd, "/v3/kv/txn", json_pack("{s:o}", "success", ops), &resp, err,
			  sizeof err);
	if (rc) {
		*ret = cs_etcd_error(r, rc, err);
		return -1;
	}
	rs = json_object_get(resp, "responses");
	kv = json_array_get(cs_kvs(json_object_get(json_array_get(rs, 0), "response_range")), 0);
	memset(cur, 0, sizeof *cur);
	if (kv) {
		size_t n;
		char *v = cs_unb64(json_string_value(json_object_get(kv, "value")) ?: "", &n);
		cur->value = v ? json_loadb(v, n, JSON_DECODE_ANY, NULL) : NULL;
		cur->mod = cs_jint(kv, "mod_revision");
		free(v);
	}
	kv = json_array_get(cs_kvs(json_object_get(json_array_get(rs, 1), "response_range")), 0);
	cur->meta_rev = cs_jint(kv, "mod_revision");
	json_decref(resp);
	if (wait && !cs_model_wait(m, cur->meta_rev, 5000)) {
		json_decref(cur->value);
		*ret = cs_error(r, 503, "catching_up", NULL,
				"this instance has not yet seen revision %lld from etcd",
				(long long)cur->meta_rev);
		return -1;
	}
	return 0;
}

/* A record's object as served: a flag with its version and times. */
static json_t *served_of(const kind_info *ki, json_t *rec, bool with_meta)
{
	json_t *o = json_deep_copy(json_object_get(rec, "object"));

	if (!o)
		return NULL;
	if (ki->is_flag || with_meta) {
		json_object_set(o, "version", json_object_get(rec, "version"));
		json_object_set(o, "createdAt", json_object_get(rec, "createdAt"));
		json_object_set(o, "updatedAt", json_object_get(rec, "updatedAt"));
	}
	return o;
}

static enum MHD_Result conflict(cs_req *r, json_t *rec, const char *fmt, int64_t want)
{
	json_t *d = json_pack("{s:O?,s:O?,s:O?}", "currentVersion", json_object_get(rec, "version"),
			      "updatedBy", json_object_get(rec, "updatedBy"), "updatedAt",
			      json_object_get(rec, "updatedAt"));
	return cs_error(r, 412, "version_conflict", d, fmt, (long long)want);
}

static enum MHD_Result obj_get(cs_req *r, const kind_info *ki, const char *name)
{
	enum MHD_Result ret;
	char *key, etag[32];
	cs_cur cur;

	if (!(r->rights & CS_R_READ))
		return cs_forbidden(r, "read");
	if (cs_check_name(r, ki->is_flag ? "key" : "name", name, &ret))
		return ret;
	key = cs_key(&r->s->model, ki->dir, name);
	if (cs_read_key(r, key, &cur, false, &ret)) {
		free(key);
		return ret;
	}
	free(key);
	if (!cur.value)
		return cs_error(r, 404, "not_found", NULL, "no %s named '%s'", ki->kind, name);
	snprintf(etag, sizeof etag, "\"%lld\"", (long long)cs_jint(cur.value, "version"));
	if (cs_etag_listed(cs_header(r, "If-None-Match"), etag))
		ret = cs_reply_raw(r, 304, NULL, "", 0, etag, true);
	else
		ret = cs_reply(r, 200, served_of(ki, cur.value, true), etag);
	json_decref(cur.value);
	return ret;
}

/* Strip what the server sets from a client's object. */
void cs_strip_server_fields(json_t *o)
{
	json_object_del(o, "version");
	json_object_del(o, "createdAt");
	json_object_del(o, "updatedAt");
}

static enum MHD_Result obj_put(cs_req *r, const kind_info *ki, const char *name)
{
	cs_model *m = &r->s->model;
	const char *if_match = cs_header(r, "If-Match"), *inm = cs_header(r, "If-None-Match");
	enum MHD_Result ret;
	json_t *body;
	char *key;
	bool create_only = inm && !strcmp(inm, "*");

	if (!(r->rights & CS_R_WRITE))
		return cs_forbidden(r, "change flags or segments");
	if (cs_need_reason(r, &ret) || cs_check_name(r, ki->is_flag ? "key" : "name", name, &ret))
		return ret;
	if (ki->is_flag && !strcmp(name, "stream"))
		return cs_error(r, 422, "invalid", NULL,
				"key: 'stream' is reserved (GET /api/v1/flags/stream is the SSE stream)");
	if (!(body = cs_parse_body(r, &ret)))
		return ret;
	if (!json_is_object(body)) {
		json_decref(body);
		return cs_error(r, 422, "invalid", NULL, "body: a %s must be a JSON object", ki->kind);
	}
	cs_strip_server_fields(body);
	if (ki->is_flag) {
		json_t *k = json_object_get(body, "key");
		if (k && (!json_is_string(k) || strcmp(json_string_value(k), name))) {
			json_decref(body);
			return cs_error(r, 422, "invalid", NULL,
					"key: must be the key of the URL ('%s')", name);
		}
		json_object_set_new(body, "key", json_string(name));
	}
	key = cs_key(m, ki->dir, name);
	for (int attempt = 0; attempt < CS_WRITE_TRIES; attempt++) {
		cs_cur cur;
		char now[32], etag[32], err[256];
		json_t *rec, *served, *doc, *before;
		int64_t newv, rev;
		int rc;

		if (cs_read_key(r, key, &cur, true, &ret))
			goto out;
		if (cur.value) {
			int64_t have = cs_jint(cur.value, "version");
			if (create_only) {
				ret = conflict(r, cur.value, "If-None-Match: * but the flag exists at version %lld",
					       have);
				json_decref(cur.value);
				goto out;
			}
			if (!if_match) {
				json_decref(cur.value);
				ret = cs_error(r, 428, "precondition_required", NULL,
					       "replacing needs If-Match: \"<version>\" (the version you read)");
				goto out;
			}
			if (strcmp(if_match, "*") && cs_etag_version(if_match) != have) {
				ret = conflict(r, cur.value,
					       "If-Match does not match: the current version is %lld", have);
				json_decref(cur.value);
				goto out;
			}
		} else if (if_match) {
			ret = conflict(r, NULL, "If-Match given but there is no such object (%lld)", 0);
			goto out;
		} else if (!create_only) {
			ret = cs_error(r, 428, "precondition_required", NULL,
				       "creating needs If-None-Match: *");
			goto out;
		}
		cs_now(now);
		newv = cs_jint(cur.value, "version") + 1;
		rec = json_pack("{s:O,s:I,s:O?,s:s,s:s}", "object", body, "version", (json_int_t)newv,
				"createdAt", cur.value ? json_object_get(cur.value, "createdAt") : NULL,
				"updatedAt", now, "updatedBy", r->actor);
		if (!cur.value)
			json_object_set_new(rec, "createdAt", json_string(now));
		served = served_of(ki, rec, false);
		before = cur.value ? served_of(ki, cur.value, false) : NULL;
		pthread_mutex_lock(&m->mu);
		doc = ki->is_flag ? cs_model_doc_with(m, name, served, NULL, NULL)
				  : cs_model_doc_with(m, NULL, NULL, name, served);
		pthread_mutex_unlock(&m->mu);
		rc = cs_validate(r, doc, 422, "invalid", &ret);
		json_decref(doc);
		if (rc == 0) {
			char *v = json_dumps(rec, JSON_COMPACT);
			cs_change c = {.kind = ki->kind, .action = cur.value ? "update" : "create",
				       .name = name, .version = newv, .before = before,
				       .after = served, .rev_seen = cur.meta_rev,
				       .cmps = json_array(), .ops = json_array()};
			json_array_append_new(c.cmps, cs_cmp_mod(key, cur.mod));
			json_array_append_new(c.ops, cs_op_put(key, v, strlen(v)));
			free(v);
			rc = cs_commit(r, &c, &rev, err, sizeof err);
			if (rc == 1) {
				cs_model_wait(m, rev, 5000);
				snprintf(etag, sizeof etag, "\"%lld\"", (long long)newv);
				json_t *out = served_of(ki, rec, true);
				ret = cs_reply(r, cur.value ? 200 : 201, out, etag);
			} else if (rc < 0) {
				ret = cs_etcd_error(r, rc, err);
			}
		}
		json_decref(rec);
		json_decref(served);
		json_decref(before);
		json_decref(cur.value);
		if (rc != 0 || r->answered)
			goto out;
		cs_race_pause(attempt);
	}
	ret = cs_error(r, 503, "busy", NULL, "too many concurrent changes; retry");
out:
	free(key);
	json_decref(body);
	return ret;
}

static enum MHD_Result obj_delete(cs_req *r, const kind_info *ki, const char *name)
{
	cs_model *m = &r->s->model;
	const char *if_match = cs_header(r, "If-Match");
	enum MHD_Result ret;
	char *key;

	if (!(r->rights & CS_R_WRITE))
		return cs_forbidden(r, "change flags or segments");
	if (cs_need_reason(r, &ret) || cs_check_name(r, ki->is_flag ? "key" : "name", name, &ret))
		return ret;
	key = cs_key(m, ki->dir, name);
	for (int attempt = 0; attempt < CS_WRITE_TRIES; attempt++) {
		cs_cur cur;
		json_t *doc, *before;
		int64_t have;
		int rc;

		if (cs_read_key(r, key, &cur, true, &ret))
			goto out;
		if (!cur.value) {
			ret = cs_error(r, 404, "not_found", NULL, "no %s named '%s'", ki->kind, name);
			goto out;
		}
		have = cs_jint(cur.value, "version");
		if (if_match && strcmp(if_match, "*") && cs_etag_version(if_match) != have) {
			ret = conflict(r, cur.value,
				       "If-Match does not match: the current version is %lld", have);
			json_decref(cur.value);
			goto out;
		}
		pthread_mutex_lock(&m->mu);
		doc = ki->is_flag ? cs_model_doc_with(m, name, NULL, NULL, NULL)
				  : cs_model_doc_with(m, NULL, NULL, name, NULL);
		pthread_mutex_unlock(&m->mu);
		rc = ki->is_flag ? cs_validate(r, doc, 422, "invalid", &ret)
				 : cs_validate(r, doc, 409, "in_use", &ret);
		json_decref(doc);
		before = served_of(ki, cur.value, false);
		if (rc == 0) {
			cs_change c = {.kind = ki->kind, .action = "delete", .name = name,
				       .version = have, .before = before, .rev_seen = cur.meta_rev,
				       .cmps = json_array(), .ops = json_array()};
			rc = cs_commit_delete(r, &c, key, cur.mod, &ret);
		}
		json_decref(before);
		json_decref(cur.value);
		if (rc != 0 || r->answered)
			goto out;
		cs_race_pause(attempt);
	}
	ret = cs_error(r, 503, "busy", NULL, "too many concurrent changes; retry");
out:
	free(key);
	return ret;
}

static enum MHD_Result segments_list(cs_req *r)
{
	enum MHD_Result ret;
	int64_t mrev;
	json_t *out;

	if (!(r->rights & CS_R_READ))
		return cs_forbidden(r, "read");
	if (cs_current(r, &mrev, NULL, &ret))
		return ret;
	/* A copy: the model's object changes once the lock is gone. */
	pthread_mutex_lock(&r->s->model.mu);
	out = json_pack("{s:o}", "segments", json_deep_copy(r->s->model.segments));
	pthread_mutex_unlock(&r->s->model.mu);
	return cs_reply(r, 200, out, NULL);
}


/* "/api/v1/flags/KEY" -> "KEY" when URL starts with BASE + '/'. */
static const char *tail(const char *url, const char *base)
{
	size_t n = strlen(base);

	if (strncmp(url, base, n) || url[n] != '/')
		return NULL;
	return url + n + 1;
}

static enum MHD_Result method_not_allowed(cs_req *r)
{
	return cs_error(r, 405, "method_not_allowed", NULL, "%s is not allowed here", r->method);
}

enum MHD_Result cs_api(cs_req *r)
{
	const char *m = r->method, *name;
	bool get = !strcmp(m, "GET"), put = !strcmp(m, "PUT"), del = !strcmp(m, "DELETE");
	bool post = !strcmp(m, "POST");

	if ((name = tail(r->url, "/api/v1/flags")) || (name = tail(r->url, "/api/v1/segments"))) {
		const kind_info *ki = r->url[8] == 'f' ? &k_flag : &k_seg;
		if (!ki->is_flag && name[0] == 0 && get)
			return segments_list(r);
		if (get)
			return obj_get(r, ki, name);
		if (put)
			return obj_put(r, ki, name);
		if (del)
			return obj_delete(r, ki, name);
		return method_not_allowed(r);
	}
	if (!strcmp(r->url, "/api/v1/segments"))
		return get ? segments_list(r) : method_not_allowed(r);
	if (!strcmp(r->url, "/api/v1/flags"))
		return method_not_allowed(r);
	if (!strcmp(r->url, "/api/v1/import"))
		return post ? cs_import(r) : method_not_allowed(r);
	if (!strcmp(r->url, "/api/v1/bust"))
		return post ? cs_bust(r) : method_not_allowed(r);
	if (!strcmp(r->url, "/api/v1/audit"))
		return get ? cs_audit(r) : method_not_allowed(r);
	if (!strcmp(r->url, "/api/v1/instances"))
		return get ? cs_instances_list(r) : method_not_allowed(r);
	if (!strcmp(r->url, "/api/v1/tokens"))
		return cs_tokens(r, NULL);
	if ((name = tail(r->url, "/api/v1/tokens")))
		return cs_tokens(r, name);
	if (!strncmp(r->url, "/api/v1/rollouts", 16) || !strcmp(r->url, "/api/v1/reports/stale"))
		return cs_ro_api(r); /* rollout_api.c */
	return cs_error(r, 404, "not_found", NULL, "no such endpoint");
}
