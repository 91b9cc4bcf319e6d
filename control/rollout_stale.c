/*
 * control/rollout_stale.c - GET /api/v1/reports/stale[?prometheus=URL&days=N]:
 * flag debt (docs/rollouts.md, "Stale flags"). Each flag found gets its
 * owner, the reasons and one suggested action:
 *   - past its expiresAt;
 *   - a release or experiment flag created more than 90 days ago;
 *   - its rollout completed more than 30 days ago;
 *   - serving one value (rolloutPercentage 0 or 100, no rules) unchanged for 30 days;
 *   - with ?prometheus=URL: not evaluated in the last N days (default 30).
 */
#include "rollout_int.h"

#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DAY_MS (86400LL * 1000)

static int64_t ms_of(json_t *v)
{
	int64_t ms = -1;

	if (!json_is_string(v) || wc_time(v, &ms))
		return -1;
	return ms;
}

static void add(json_t *out, json_t *f, const char *key, const char *reason, const char *action)
{
	json_t *e = json_object_get(out, key);

	if (!e) {
		e = json_pack("{s:s,s:O?,s:[],s:s}", "key", key, "owner",
			      json_object_get(f, "owner"), "reasons", "suggestedAction", action);
		json_object_set_new(out, key, e);
	}
	json_array_append_new(json_object_get(e, "reasons"), json_string(reason));
}

enum MHD_Result cs_ro_stale(cs_req *r)
{
	const char *prom = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "prometheus");
	const char *ds = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "days");
	cs_model *m = &r->s->model;
	struct timespec ts;
	int64_t now, days = 30;
	json_t *flags, *found = json_object(), *f, *list;
	const char *key;
	char err[256];

	if (!(r->rights & CS_R_READ))
		return cs_forbidden(r, "read reports");
	if (ds) {
		char *end;
		days = strtoll(ds, &end, 10);
		if (end == ds || *end || days < 1 || days > 3650) {
			json_decref(found);
			return cs_error(r, 400, "bad_request", NULL, "days: 1 to 3650");
		}
	}
	if (prom && ((strncmp(prom, "http://", 7) && strncmp(prom, "https://", 8)) ||
		     strlen(prom) > 512 || strpbrk(prom, " ?#\r\n"))) {
		json_decref(found);
		return cs_error(r, 400, "bad_request", NULL, "prometheus: an http(s) base URL");
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	pthread_mutex_lock(&m->mu);
	flags = json_deep_copy(m->flags);
	pthread_mutex_unlock(&m->mu);
	json_object_foreach(flags, key, f) {
		const char *type = json_string_value(json_object_get(f, "type"));
		int64_t exp = ms_of(json_object_get(f, "expiresAt"));
		int64_t created = ms_of(json_object_get(f, "createdAt"));
		int64_t updated = ms_of(json_object_get(f, "updatedAt"));
		json_t *pct = json_object_get(f, "rolloutPercentage");
		double p = pct ? json_number_value(pct) : 100;

		if (!type)
			type = "release";
		if (exp >= 0 && exp < now)
			add(found, f, key, "past its expiresAt", "remove the flag or extend expiresAt");
		if ((!strcmp(type, "release") || !strcmp(type, "experiment")) && created >= 0 &&
		    now - created > 90 * DAY_MS)
			add(found, f, key, "a release or experiment flag older than 90 days",
			    "remove the flag from the code, then delete it");
		if ((p == 0 || p == 100) && json_array_size(json_object_get(f, "targeting")) == 0 &&
		    updated >= 0 && now - updated > 30 * DAY_MS)
			add(found, f, key,
			    p == 0 ? "unchanged at 0% for 30 days" : "unchanged at 100% for 30 days",
			    p == 0 ? "delete the flag and its dead code path"
				   : "make the code path permanent, then delete the flag");
	}
	/* Rollouts completed more than 30 days ago. */
	{
		char *from = cs_key(m, "rollouts/", NULL), *to = cs_prefix_end(from);
		json_t *resp = NULL, *kvs;
		if (cs_etcd_call(r->s->etcd, "/v3/kv/range",
				 json_pack("{s:o,s:o}", "key", cs_b64s(from), "range_end", cs_b64s(to)),
				 &resp, err, sizeof err) == 0) {
			kvs = cs_kvs(resp);
			for (size_t i = 0; i < json_array_size(kvs); i++) {
				size_t n;
				char *v = cs_unb64(json_string_value(json_object_get(
							   json_array_get(kvs, i), "value")) ?: "",
						   &n);
				json_t *rec = v ? json_loadb(v, n, 0, NULL) : NULL;
				json_t *st = json_object_get(rec, "state");
				const char *fk = json_string_value(json_object_get(rec, "flag"));
				json_int_t done = json_integer_value(json_object_get(st, "completedAt"));
				if (fk && (f = json_object_get(flags, fk)) && done > 0 &&
				    !strcmp(json_string_value(json_object_get(st, "status")) ?: "",
					    "completed") &&
				    now - done > 30 * DAY_MS)
					add(found, f, fk, "its rollout completed more than 30 days ago",
					    "remove the flag (the rollout is done)");
				json_decref(rec);
				free(v);
			}
		}
		json_decref(resp);
		free(from);
		free(to);
	}
	if (prom) {
		json_object_foreach(flags, key, f) {
			char q[512];
			double n = 0;
			snprintf(q, sizeof q, "sum(increase(flagshm_evaluations_total{flag=\"%s\"}[%lldd]))",
				 key, (long long)days);
			if (cs_ro_prom_scalar(prom, q, now / 1000.0, &n, err, sizeof err)) {
				json_decref(found);
				json_decref(flags);
				return cs_error(r, 502, "prometheus", NULL, "%s", err);
			}
			if (n <= 0) {
				char why[96];
				snprintf(why, sizeof why, "not evaluated in %lld days", (long long)days);
				add(found, f, key, why, "check the code still uses it; delete it if not");
			}
		}
	}
	list = json_array();
	json_object_foreach(found, key, f)
		json_array_append(list, f);
	json_decref(found);
	json_decref(flags);
	return cs_reply(r, 200, json_pack("{s:o}", "flags", list), NULL);
}
