/*
 * control/audit.c - GET /api/v1/audit?key=&since=&limit=&next=: audit
 * records newest first. Ids sort by time (change.c), so a page is one
 * descending etcd range: over audit/ or, for one key, audit-key/KEY/;
 * `since` starts the range, `next` (the last id of the previous page)
 * ends it.
 */
#include "server.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Since as Unix milliseconds: RFC 3339 or Unix seconds. -1 when bad. */
static int64_t parse_since(const char *s)
{
	json_t *v;
	char *end;
	int64_t ms = -1;
	double d = strtod(s, &end);

	if (end != s && *end == 0)
		return d >= 0 && d < 1e11 ? (int64_t)(d * 1000) : -1;
	v = json_string(s);
	if (!v || wc_time(v, &ms))
		ms = -1;
	json_decref(v);
	return ms < 0 ? -1 : ms;
}

static bool cursor_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 40)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || s[i] == '-'))
			return false;
	return true;
}

enum MHD_Result cs_audit(cs_req *r)
{
	const char *key = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "key");
	const char *since = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "since");
	const char *lim = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "limit");
	const char *next = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "next");
	cs_model *m = &r->s->model;
	enum MHD_Result ret;
	long limit = 100;
	int64_t since_ms = -1;
	char *base, *from, *to, err[256], lbuf[16];
	json_t *req, *resp = NULL, *kvs, *entries;
	int rc;

	if (!(r->rights & CS_R_READ))
		return cs_forbidden(r, "read the audit");
	if (lim) {
		char *end;
		limit = strtol(lim, &end, 10);
		if (end == lim || *end || limit < 1 || limit > 1000)
			return cs_error(r, 400, "bad_request", NULL, "limit: 1 to 1000");
	}
	if (since && (since_ms = parse_since(since)) < 0)
		return cs_error(r, 400, "bad_request", NULL,
				"since: an RFC 3339 date-time or Unix seconds");
	if (next && *next && !cursor_ok(next))
		return cs_error(r, 400, "bad_request", NULL, "next: not a cursor of this endpoint");
	if (key && *key && cs_check_name(r, "key", key, &ret))
		return ret;
	if (key && *key) {
		size_t n = strlen(m->prefix) + strlen(key) + 16;
		base = malloc(n);
		snprintf(base, n, "%saudit-key/%s/", m->prefix, key);
	} else {
		base = cs_key(m, "audit/", NULL);
	}
	if (since_ms >= 0) {
		size_t n = strlen(base) + 20;
		from = malloc(n);
		snprintf(from, n, "%s%013lld", base, (long long)since_ms);
	} else {
		from = strdup(base);
	}
	if (next && *next) {
		size_t n = strlen(base) + strlen(next) + 1;
		to = malloc(n);
		snprintf(to, n, "%s%s", base, next);
	} else {
		to = cs_prefix_end(base);
	}
	snprintf(lbuf, sizeof lbuf, "%ld", limit + 1);
	req = json_pack("{s:o,s:o,s:s,s:s,s:s}", "key", cs_b64s(from), "range_end", cs_b64s(to),
			"limit", lbuf, "sort_order", "DESCEND", "sort_target", "KEY");
	free(base), free(from), free(to);
	rc = cs_etcd_call(r->s->etcd, "/v3/kv/range", req, &resp, err, sizeof err);
	if (rc)
		return cs_etcd_error(r, rc, err);
	kvs = cs_kvs(resp);
	entries = json_array();
	for (size_t i = 0; i < json_array_size(kvs) && (long)i < limit; i++) {
		size_t n;
		char *v = cs_unb64(json_string_value(json_object_get(json_array_get(kvs, i), "value")) ?: "", &n);
		json_t *rec = v ? json_loadb(v, n, 0, NULL) : NULL;
		free(v);
		if (rec)
			json_array_append_new(entries, rec);
	}
	json_t *last = json_array_get(entries, json_array_size(entries) - 1);
	json_t *nx = (long)json_array_size(kvs) > limit && last
			     ? json_incref(json_object_get(last, "id"))
			     : json_null();
	json_decref(resp);
	return cs_reply(r, 200, json_pack("{s:o,s:o}", "entries", entries, "next", nx), NULL);
}
