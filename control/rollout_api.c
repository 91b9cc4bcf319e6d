/*
 * control/rollout_api.c - the rollout endpoints (docs/rollouts.md, "API"):
 *   GET  /api/v1/rollouts                 every rollout's view (viewer)
 *   GET  /api/v1/rollouts/{flag}          one view, ETag "<version>" (viewer)
 *   PUT  /api/v1/rollouts/{flag}          create (If-None-Match: *) or replace
 *                                         (If-Match) a rollout (editor, reason)
 *   POST /api/v1/rollouts/{flag}/pause|resume|rollback[?immediate=true] (editor)
 *   POST /api/v1/rollouts/{flag}/approve  (approver: role and groups)
 *   GET  /api/v1/reports/stale            flag debt (viewer)
 * Every change is one etcd txn with its audit record (kind "rollout").
 */
#include "rollout_int.h"

#include "validate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static json_t *rfc3339(int64_t ms)
{
	char b[96];
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0)
		return json_null();
	gmtime_r(&t, &tm);
	snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	return json_string(b);
}

json_t *cs_ro_view(const json_t *rec)
{
	const json_t *st = json_object_get(rec, "state");
	json_t *spec = json_object_get(rec, "spec");
	json_t *lc = json_deep_copy(json_object_get(st, "lastCheck"));
	cs_ro_spec s;
	json_t *errs = json_array();
	double pct = 0;
	json_int_t stage = json_integer_value(json_object_get(st, "stage"));

	if (cs_ro_spec_parse(spec, &s, errs) == 0) {
		json_t *steps = json_object_get(st, "rbSteps");
		json_int_t k = json_integer_value(json_object_get(st, "rbStep"));
		pct = k >= 0 && (size_t)k < json_array_size(steps)
			      ? json_number_value(json_array_get(steps, (size_t)k))
			      : cs_ro_share(&s, (int)stage);
	}
	json_decref(errs);
	if (json_is_object(lc)) {
		json_t *t = json_object_get(lc, "time");
		json_object_set_new(lc, "time", rfc3339(json_integer_value(t)));
		json_object_set_new(lc, "from",
				    rfc3339(json_integer_value(json_object_get(lc, "from"))));
		json_object_del(lc, "stepSince");
	}
	return json_pack("{s:O,s:I,s:o,s:O,s:o,s:O?,s:f,s:I,s:O?,s:O?,s:O,s:O?,s:O?}", "flag",
			 json_object_get(rec, "flag"), "stage", stage, "since",
			 rfc3339(json_integer_value(json_object_get(st, "since"))), "status",
			 json_object_get(st, "status"), "lastCheck", lc ? lc : json_null(),
			 "message", json_object_get(st, "message"), "percentage", pct,
			 "stages", (json_int_t)json_array_size(json_object_get(spec, "stages")),
			 "approvals", json_object_get(st, "approvals"), "version",
			 json_object_get(rec, "version"), "rollout", spec, "updatedAt",
			 json_object_get(rec, "updatedAt"), "updatedBy",
			 json_object_get(rec, "updatedBy"));
}

static enum MHD_Result etcd_err(cs_req *r, int rc, const char *err)
{
	return cs_etcd_error(r, rc, err);
}

static enum MHD_Result list(cs_req *r)
{
	cs_model *m = &r->s->model;
	char *from = cs_key(m, "rollouts/", NULL), *to = cs_prefix_end(from), err[256];
	json_t *resp = NULL, *out = json_array();
	int rc;

	rc = cs_etcd_call(r->s->etcd, "/v3/kv/range",
			  json_pack("{s:o,s:o}", "key", cs_b64s(from), "range_end", cs_b64s(to)),
			  &resp, err, sizeof err);
	free(from), free(to);
	if (rc) {
		json_decref(out);
		return etcd_err(r, rc, err);
	}
	json_t *kvs = cs_kvs(resp);
	for (size_t i = 0; i < json_array_size(kvs); i++) {
		size_t n;
		char *v = cs_unb64(json_string_value(json_object_get(json_array_get(kvs, i),
								      "value")) ?: "", &n);
		json_t *rec = v ? json_loadb(v, n, 0, NULL) : NULL;
		if (rec)
			json_array_append_new(out, cs_ro_view(rec));
		json_decref(rec);
		free(v);
	}
	json_decref(resp);
	return cs_reply(r, 200, json_pack("{s:o}", "rollouts", out), NULL);
}

static enum MHD_Result get_one(cs_req *r, const char *flag)
{
	char err[256], etag[32];
	cs_ro_cur cur;
	enum MHD_Result ret;
	int rc = cs_ro_read(r->s, flag, &cur, err, sizeof err);

	if (rc)
		return etcd_err(r, rc, err);
	if (!cur.rec) {
		cs_ro_cur_free(&cur);
		return cs_error(r, 404, "not_found", NULL, "no rollout for flag '%s'", flag);
	}
	snprintf(etag, sizeof etag, "\"%lld\"", (long long)cs_jint(cur.rec, "version"));
	const char *h = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "history");
	json_t *view = cs_ro_view(cur.rec);
	if (h && !strcmp(h, "true"))
		json_object_set(view, "history",
				json_object_get(json_object_get(cur.rec, "state"), "history"));
	ret = cs_reply(r, 200, view, etag);
	cs_ro_cur_free(&cur);
	return ret;
}

static enum MHD_Result put(cs_req *r, const char *flag)
{
	const char *if_match = cs_header(r, "If-Match"), *inm = cs_header(r, "If-None-Match");
	bool create_only = inm && !strcmp(inm, "*");
	enum MHD_Result ret;
	json_t *body, *errs;
	cs_ro_spec spec;
	char err[512];

	if (!(r->rights & CS_R_WRITE))
		return cs_forbidden(r, "start or change rollouts");
	if (cs_need_reason(r, &ret) || cs_check_name(r, "flag", flag, &ret))
		return ret;
	if (!(body = cs_parse_body(r, &ret)))
		return ret;
	errs = json_array();
	if (cs_ro_spec_parse(body, &spec, errs)) {
		ret = cs_error(r, 422, "invalid", errs, "%s%s",
			       json_string_value(json_array_get(errs, 0)),
			       json_array_size(errs) > 1 ? " (and more: see details)" : "");
		json_decref(body);
		return ret;
	}
	json_decref(errs);
	for (int attempt = 0; attempt < 25; attempt++) {
		cs_ro_cur cur;
		json_t *rec, *served, *details = NULL;
		int64_t rev, now = now_ms(), have;
		int rc = cs_ro_read(r->s, flag, &cur, err, sizeof err);
		char now_s[32], etag[32];

		if (rc) {
			ret = etcd_err(r, rc, err);
			break;
		}
		if (!cur.flag) {
			cs_ro_cur_free(&cur);
			ret = cs_error(r, 404, "not_found", NULL, "no flag named '%s'", flag);
			break;
		}
		have = cur.rec ? cs_jint(cur.rec, "version") : 0;
		if (cur.rec && create_only) {
			ret = cs_error(r, 412, "version_conflict",
				       json_pack("{s:I}", "currentVersion", (json_int_t)have),
				       "If-None-Match: * but a rollout of '%s' exists", flag);
			cs_ro_cur_free(&cur);
			break;
		}
		if (cur.rec && !if_match) {
			cs_ro_cur_free(&cur);
			ret = cs_error(r, 428, "precondition_required", NULL,
				       "replacing a rollout needs If-Match: \"<version>\"");
			break;
		}
		if (cur.rec && strcmp(if_match, "*") && cs_etag_version(if_match) != have) {
			ret = cs_error(r, 412, "version_conflict",
				       json_pack("{s:I}", "currentVersion", (json_int_t)have),
				       "If-Match does not match: the current version is %lld",
				       (long long)have);
			cs_ro_cur_free(&cur);
			break;
		}
		if (!cur.rec && if_match) {
			cs_ro_cur_free(&cur);
			ret = cs_error(r, 412, "version_conflict", json_pack("{s:n}", "currentVersion"),
				       "If-Match given but there is no rollout of '%s'", flag);
			break;
		}
		if (!cur.rec && !create_only) {
			cs_ro_cur_free(&cur);
			ret = cs_error(r, 428, "precondition_required", NULL,
				       "creating a rollout needs If-None-Match: *");
			break;
		}
		/* Every stage must be servable: the last one holds every rule. */
		if (!cs_model_wait(&r->s->model, cur.meta_rev, 5000)) {
			cs_ro_cur_free(&cur);
			ret = cs_error(r, 503, "catching_up", NULL, "not yet at etcd's revision");
			break;
		}
		served = cs_ro_flag_with_rules(json_object_get(cur.flag, "object"),
					    cs_ro_rules(&spec, (int)spec.nstages - 1, -1));
		rc = cs_ro_validate_flag(r->s, flag, served, err, sizeof err, &details);
		json_decref(served);
		if (rc) {
			cs_ro_cur_free(&cur);
			ret = cs_error(r, 422, "invalid", details,
				       "the flag could not serve this rollout: %s", err);
			break;
		}
		json_t *old = cur.rec ? json_object_get(cur.rec, "state") : NULL;
		json_t *state;
		if (old && !cs_ro_terminal(old) &&
		    json_integer_value(json_object_get(old, "stage")) < (json_int_t)spec.nstages)
			state = json_deep_copy(old);
		else
			state = cs_ro_state_new(now);
		cs_now(now_s);
		rec = json_pack("{s:s,s:O,s:o,s:I}", "flag", flag, "spec", body, "state", state,
				"version", (json_int_t)(have + 1));
		json_object_set_new(rec, "createdAt",
				    cur.rec ? json_incref(json_object_get(cur.rec, "createdAt"))
					    : json_string(now_s));
		json_t *extra = json_pack("{s:O,s:O?}", "after", body, "before",
					  cur.rec ? json_object_get(cur.rec, "spec") : NULL);
		rc = cs_ro_commit(r, flag, &cur, rec, NULL, cur.rec ? "update" : "create", extra, 0,
			       &rev, err, sizeof err);
		json_decref(extra);
		if (rc == 1) {
			snprintf(etag, sizeof etag, "\"%lld\"", (long long)(have + 1));
			ret = cs_reply(r, cur.rec ? 200 : 201, cs_ro_view(rec), etag);
		} else if (rc < 0) {
			ret = etcd_err(r, rc, err);
		}
		json_decref(rec);
		cs_ro_cur_free(&cur);
		if (rc != 0)
			break;
		if (attempt == 24)
			ret = cs_error(r, 503, "busy", NULL, "too many concurrent changes; retry");
	}
	json_decref(body);
	return ret;
}

/* pause, resume, rollback, approve. */
static enum MHD_Result action(cs_req *r, const char *flag, const char *what)
{
	bool approve = !strcmp(what, "approve");
	const char *imm = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "immediate");
	bool immediate = imm && (!strcmp(imm, "true") || !strcmp(imm, "1"));
	enum MHD_Result ret;
	json_t *groups = NULL;
	char err[512], why[512];

	if (approve ? !(r->rights & CS_R_APPROVE) : !(r->rights & CS_R_WRITE))
		return cs_forbidden(r, approve ? "approve rollout stages" : "steer rollouts");
	if (cs_need_reason(r, &ret))
		return ret;
	if (approve) {
		pthread_mutex_lock(&r->s->model.mu);
		groups = json_deep_copy(
			json_object_get(json_object_get(r->s->model.tokens, r->actor), "groups"));
		pthread_mutex_unlock(&r->s->model.mu);
	}
	for (int attempt = 0; attempt < 25; attempt++) {
		cs_ro_cur cur;
		cs_ro_spec spec;
		json_t *errs = json_array(), *st = NULL, *rec, *rules = NULL;
		int64_t rev, now = now_ms();
		int rc = cs_ro_read(r->s, flag, &cur, err, sizeof err), status = 409;

		if (rc) {
			json_decref(errs);
			ret = etcd_err(r, rc, err);
			break;
		}
		if (!cur.rec || cs_ro_spec_parse(json_object_get(cur.rec, "spec"), &spec, errs)) {
			json_decref(errs);
			cs_ro_cur_free(&cur);
			ret = cs_error(r, 404, "not_found", NULL, "no rollout for flag '%s'", flag);
			break;
		}
		json_decref(errs);
		json_t *old = json_object_get(cur.rec, "state");
		if (!strcmp(what, "pause"))
			st = cs_ro_pause(old, now, why, sizeof why);
		else if (!strcmp(what, "resume"))
			st = cs_ro_resume(old, now, why, sizeof why);
		else if (!strcmp(what, "rollback"))
			st = cs_ro_rollback(&spec, old, now, immediate, r->reason, why, sizeof why);
		else
			st = cs_ro_approve(&spec, old, r->actor, groups, why, sizeof why, &status);
		if (!st) {
			cs_ro_cur_free(&cur);
			ret = cs_error(r, status, status == 403 ? "forbidden" : "conflict", NULL, "%s",
				       why);
			break;
		}
		if (!strcmp(what, "rollback"))
			rules = cs_ro_state_rules(&spec, st);
		rec = json_deep_copy(cur.rec);
		json_object_set_new(rec, "state", st);
		json_t *extra = json_pack("{s:{s:O,s:O,s:O}}", "rollout", "stage",
					  json_object_get(st, "stage"), "status",
					  json_object_get(st, "status"), "approvals",
					  json_object_get(st, "approvals"));
		rc = cs_ro_commit(r, flag, &cur, rec, rules,
			       immediate && !strcmp(what, "rollback") ? "rollback-now" : what,
			       extra, 0, &rev, err, sizeof err);
		json_decref(extra);
		if (rc == 1)
			ret = cs_reply(r, 200, cs_ro_view(rec), NULL);
		else if (rc == CS_RO_EINVALID)
			ret = cs_error(r, 422, "invalid", NULL, "%s", err);
		else if (rc < 0)
			ret = etcd_err(r, rc, err);
		json_decref(rec);
		cs_ro_cur_free(&cur);
		if (rc != 0)
			break;
		if (attempt == 24)
			ret = cs_error(r, 503, "busy", NULL, "too many concurrent changes; retry");
	}
	json_decref(groups);
	return ret;
}

enum MHD_Result cs_ro_stale(cs_req *r);

enum MHD_Result cs_ro_api(cs_req *r)
{
	const char *m = r->method, *u = r->url;
	bool get = !strcmp(m, "GET");
	char flag[160];
	const char *slash;

	if (!strcmp(u, "/api/v1/reports/stale"))
		return get ? cs_ro_stale(r) : cs_error(r, 405, "method_not_allowed", NULL,
						    "%s is not allowed here", m);
	if (!(r->rights & CS_R_READ) && !(r->rights & CS_R_APPROVE))
		return cs_forbidden(r, "read rollouts");
	if (!strcmp(u, "/api/v1/rollouts") || !strcmp(u, "/api/v1/rollouts/"))
		return get ? list(r) : cs_error(r, 405, "method_not_allowed", NULL,
						"%s is not allowed here", m);
	u += strlen("/api/v1/rollouts/");
	slash = strchr(u, '/');
	if ((slash ? (size_t)(slash - u) : strlen(u)) >= sizeof flag)
		return cs_error(r, 422, "invalid", NULL, "flag: at most %d characters", WC_NAME_MAX);
	snprintf(flag, sizeof flag, "%.*s", slash ? (int)(slash - u) : (int)strlen(u), u);
	{
		enum MHD_Result ret;
		if (cs_check_name(r, "flag", flag, &ret))
			return ret;
	}
	if (!slash) {
		if (get)
			return get_one(r, flag);
		if (!strcmp(m, "PUT"))
			return put(r, flag);
		return cs_error(r, 405, "method_not_allowed", NULL, "%s is not allowed here", m);
	}
	slash++;
	if (!strcmp(slash, "pause") || !strcmp(slash, "resume") || !strcmp(slash, "rollback") ||
	    !strcmp(slash, "approve"))
		return !strcmp(m, "POST") ? action(r, flag, slash)
					  : cs_error(r, 405, "method_not_allowed", NULL,
						     "%s is not allowed here", m);
	return cs_error(r, 404, "not_found", NULL, "no such endpoint");
}
