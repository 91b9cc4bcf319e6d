/*
 * control/tokens.c - GET/POST/DELETE /api/v1/tokens (admin): a token is
 * made here, shown once in the answer to its POST, and stored only as its
 * SHA-256 (auth.c). Records keep "groups" for rollouts (issue 13).
 */
#include "server.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum MHD_Result token_list(cs_req *r)
{
	cs_model *m = &r->s->model;
	char *from = cs_key(m, "tokens/", NULL), *to = cs_prefix_end(from), err[256];
	json_t *req = json_pack("{s:o,s:o}", "key", cs_b64s(from), "range_end", cs_b64s(to));
	json_t *resp = NULL, *out = json_array(), *kvs;
	int rc = cs_etcd_call(r->s->etcd, "/v3/kv/range", req, &resp, err, sizeof err);

	free(from);
	free(to);
	if (rc) {
		json_decref(out);
		return cs_etcd_error(r, rc, err);
	}
	kvs = cs_kvs(resp);
	for (size_t i = 0; i < json_array_size(kvs); i++) {
		size_t n;
		char *v = cs_unb64(json_string_value(json_object_get(json_array_get(kvs, i), "value")) ?: "", &n);
		json_t *rec = v ? json_loadb(v, n, 0, NULL) : NULL;
		free(v);
		if (!rec)
			continue;
		json_object_del(rec, "sha256");
		json_array_append_new(out, rec);
	}
	json_decref(resp);
	return cs_reply(r, 200, json_pack("{s:o}", "tokens", out), NULL);
}

static enum MHD_Result token_create(cs_req *r)
{
	cs_model *m = &r->s->model;
	enum MHD_Result ret;
	json_t *body, *groups;
	const char *name, *role;
	char *key;

	if (cs_need_reason(r, &ret) || !(body = cs_parse_body(r, &ret)))
		return ret;
	name = json_string_value(json_object_get(body, "name"));
	role = json_string_value(json_object_get(body, "role"));
	groups = json_object_get(body, "groups");
	if (!name || cs_check_name(r, "name", name, &ret)) {
		if (!name)
			ret = cs_error(r, 422, "invalid", NULL, "name: a string is required");
		json_decref(body);
		return ret;
	}
	if (!cs_role_rights(role)) {
		json_decref(body);
		return cs_error(r, 422, "invalid", NULL,
				"role: one of sdk, viewer, approver, editor, admin");
	}
	if (groups && !json_is_array(groups)) {
		json_decref(body);
		return cs_error(r, 422, "invalid", NULL, "groups: an array of strings");
	}
	for (size_t i = 0; i < json_array_size(groups); i++)
		if (!json_is_string(json_array_get(groups, i))) {
			json_decref(body);
			return cs_error(r, 422, "invalid", NULL, "groups[%zu]: a string", i);
		}
	key = cs_key(m, "tokens/", name);
	for (int attempt = 0; attempt < 25; attempt++) {
		cs_cur cur;
		char tok[64], hex[65], now[32], err[256];
		json_t *rec, *after;
		int64_t rev;
		int rc;

		if (cs_read_key(r, key, &cur, true, &ret))
			break;
		if (cur.value) {
			json_decref(cur.value);
			ret = cs_error(r, 409, "exists", NULL,
				       "a token named '%s' exists; revoke it first", name);
			break;
		}
		if (cs_token_new(tok) < 0) {
			ret = cs_error(r, 500, "internal", NULL, "no random bytes");
			break;
		}
		cs_sha256_hex(tok, strlen(tok), hex);
		cs_now(now);
		rec = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o}", "name", name, "role", role, "sha256", hex,
				"createdAt", now, "createdBy", r->actor, "groups",
				groups ? json_deep_copy(groups) : json_array());
		after = json_pack("{s:s,s:s,s:O}", "name", name, "role", role, "groups",
				  json_object_get(rec, "groups"));
		char *v = json_dumps(rec, JSON_COMPACT);
		cs_change c = {.kind = "token", .action = "create", .name = name, .after = after,
			       .rev_seen = cur.meta_rev, .cmps = json_array(), .ops = json_array()};
		json_array_append_new(c.cmps, cs_cmp_mod(key, 0));
		json_array_append_new(c.ops, cs_op_put(key, v, strlen(v)));
		free(v);
		rc = cs_commit(r, &c, &rev, err, sizeof err);
		if (rc == 1) {
			cs_model_wait(m, rev, 5000);
			ret = cs_reply(r, 201,
				       json_pack("{s:s,s:s,s:s,s:O}", "name", name, "role", role,
						 "token", tok, "groups", json_object_get(rec, "groups")),
				       NULL);
		} else if (rc < 0) {
			ret = cs_etcd_error(r, rc, err);
		}
		OPENSSL_cleanse(tok, sizeof tok);
		json_decref(rec);
		json_decref(after);
		if (rc != 0)
			break;
		cs_race_pause(attempt);
		if (attempt == 24)
			ret = cs_error(r, 503, "busy", NULL, "too many concurrent changes; retry");
	}
	free(key);
	json_decref(body);
	return ret;
}

static enum MHD_Result token_revoke(cs_req *r, const char *name)
{
	cs_model *m = &r->s->model;
	enum MHD_Result ret;
	char *key;

	if (cs_need_reason(r, &ret) || cs_check_name(r, "name", name, &ret))
		return ret;
	key = cs_key(m, "tokens/", name);
	for (int attempt = 0; attempt < 25; attempt++) {
		cs_cur cur;
		json_t *before;
		int rc;

		if (cs_read_key(r, key, &cur, true, &ret))
			break;
		if (!cur.value) {
			ret = cs_error(r, 404, "not_found", NULL, "no token named '%s'", name);
			break;
		}
		before = json_pack("{s:O?,s:O?,s:O?}", "name", json_object_get(cur.value, "name"),
				   "role", json_object_get(cur.value, "role"), "groups",
				   json_object_get(cur.value, "groups"));
		cs_change c = {.kind = "token", .action = "delete", .name = name, .before = before,
			       .rev_seen = cur.meta_rev, .cmps = json_array(), .ops = json_array()};
		rc = cs_commit_delete(r, &c, key, cur.mod, &ret);
		json_decref(before);
		json_decref(cur.value);
		if (rc != 0)
			break;
		cs_race_pause(attempt);
		if (attempt == 24)
			ret = cs_error(r, 503, "busy", NULL, "too many concurrent changes; retry");
	}
	free(key);
	return ret;
}

enum MHD_Result cs_tokens(cs_req *r, const char *name)
{
	if (!(r->rights & CS_R_ADMIN))
		return cs_forbidden(r, "manage tokens (admin only)");
	if (!strcmp(r->method, "GET") && !name)
		return token_list(r);
	if (!strcmp(r->method, "POST") && !name)
		return token_create(r);
	if (!strcmp(r->method, "DELETE")) {
		/* The name in the path, in ?name=, or in a body {"name": ...}. */
		const char *q = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "name");
		if (name || q)
			return token_revoke(r, name ? name : q);
		if (r->len > 0) {
			enum MHD_Result ret;
			json_t *b = cs_parse_body(r, &ret);
			if (!b)
				return ret;
			const char *n = json_string_value(json_object_get(b, "name"));
			ret = n ? token_revoke(r, n)
				: cs_error(r, 422, "invalid", NULL, "name: a string is required");
			json_decref(b);
			return ret;
		}
		return cs_error(r, 400, "bad_request", NULL,
				"which token? DELETE /api/v1/tokens/NAME");
	}
	return cs_error(r, 405, "method_not_allowed", NULL, "%s is not allowed here", r->method);
}
