/*
 * control/rollout_store.c - a rollout in etcd: PREFIX/rollouts/FLAG holds
 * {"flag","spec","state","version","createdAt","updatedAt","updatedBy"}.
 *
 * cs_ro_read takes the rollout, its flag, meta/rev and the leader key at one
 * revision; cs_ro_commit writes a new record, maybe the flag with new rules
 * (validated as every change is) and the audit record in ONE txn through
 * cs_commit, with compares on what was read (and, for the orchestrator,
 * on the leader key's create_revision: a deposed leader's step fails).
 */
#include "rollout_int.h"

#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *kv_json(json_t *kv, int64_t *mod)
{
	size_t n;
	char *v;
	json_t *j;

	if (!kv) {
		*mod = 0;
		return NULL;
	}
	v = cs_unb64(json_string_value(json_object_get(kv, "value")) ?: "", &n);
	j = v ? json_loadb(v, n, 0, NULL) : NULL;
	free(v);
	*mod = cs_jint(kv, "mod_revision");
	return j;
}

int cs_ro_read(cs_server *s, const char *flag, cs_ro_cur *cur, char *err, size_t errlen)
{
	cs_model *m = &s->model;
	char *k_ro = cs_key(m, "rollouts/", flag), *k_flag = cs_key(m, "flags/", flag);
	char *k_rev = cs_key(m, "meta/rev", NULL), *k_lead = cs_key(m, CS_RO_LEADER_KEY, NULL);
	json_t *ops = json_array(), *resp = NULL, *rs;
	int rc;

	memset(cur, 0, sizeof *cur);
	json_array_append_new(ops, cs_op_range(k_ro, NULL));
	json_array_append_new(ops, cs_op_range(k_flag, NULL));
	json_array_append_new(ops, cs_op_range(k_rev, NULL));
	json_array_append_new(ops, cs_op_range(k_lead, NULL));
	free(k_ro), free(k_flag), free(k_rev), free(k_lead);
	rc = cs_etcd_call(s->etcd, "/v3/kv/txn", json_pack("{s:o}", "success", ops), &resp, err,
			  errlen);
	if (rc)
		return rc;
	rs = json_object_get(resp, "responses");
#define KV(i) json_array_get(cs_kvs(json_object_get(json_array_get(rs, i), "response_range")), 0)
	cur->rec = kv_json(KV(0), &cur->rec_mod);
	cur->flag = kv_json(KV(1), &cur->flag_mod);
	cur->meta_rev = cs_jint(KV(2), "mod_revision");
	cur->leader_create = cs_jint(KV(3), "create_revision");
#undef KV
	json_decref(resp);
	return 0;
}

void cs_ro_cur_free(cs_ro_cur *cur)
{
	json_decref(cur->rec);
	json_decref(cur->flag);
	memset(cur, 0, sizeof *cur);
}

/* The flag object as the model serves it (with version and times). */
static json_t *served(json_t *rec)
{
	json_t *o = json_deep_copy(json_object_get(rec, "object"));

	if (!o)
		return NULL;
	json_object_set(o, "version", json_object_get(rec, "version"));
	if (json_object_get(rec, "createdAt"))
		json_object_set(o, "createdAt", json_object_get(rec, "createdAt"));
	if (json_object_get(rec, "updatedAt"))
		json_object_set(o, "updatedAt", json_object_get(rec, "updatedAt"));
	return o;
}

json_t *cs_ro_cmp_create(const char *key, int64_t rev)
{
	char b[32];

	snprintf(b, sizeof b, "%lld", (long long)rev);
	return json_pack("{s:o,s:s,s:s,s:s}", "key", cs_b64s(key), "target", "CREATE", "result",
			 "EQUAL", "create_revision", b);
}

int cs_ro_validate_flag(cs_server *s, const char *flag, json_t *served_flag, char *err,
		     size_t errlen, json_t **details)
{
	cs_model *m = &s->model;
	wc_errors errs = {0};
	json_t *doc;
	int rc;

	pthread_mutex_lock(&m->mu);
	doc = cs_model_doc_with(m, flag, served_flag, NULL, NULL);
	pthread_mutex_unlock(&m->mu);
	rc = wc_validate(doc, "document", &s->lim, &errs);
	json_decref(doc);
	if (rc) {
		snprintf(err, errlen, "%s", errs.n ? errs.msg[0] : "the document would be invalid");
		if (details) {
			*details = json_array();
			for (size_t i = 0; i < errs.n; i++)
				json_array_append_new(*details, json_string(errs.msg[i]));
		}
	}
	wc_errors_free(&errs);
	return rc ? -1 : 0;
}

int cs_ro_commit(cs_req *r, const char *flag, cs_ro_cur *cur, json_t *rec, json_t *rules,
	      const char *action, json_t *extra, int64_t leader_rev, int64_t *rev, char *err,
	      size_t errlen)
{
	cs_server *s = r->s;
	cs_model *m = &s->model;
	char *k_ro = cs_key(m, "rollouts/", flag), *k_flag = cs_key(m, "flags/", flag);
	json_t *before = NULL, *after = NULL, *newrec = NULL;
	int64_t version = 0;
	char now[32];
	int rc;
	cs_change c = {.kind = "rollout", .action = action, .name = flag,
		       .rev_seen = cur->meta_rev, .cmps = json_array(), .ops = json_array(),
		       .extra = extra};

	cs_now(now);
	if (!rules && extra) {
		/* A change of the rollout alone: its before and after. */
		c.before = json_object_get(extra, "before");
		c.after = json_object_get(extra, "after");
	}
	if (!cs_model_wait(m, cur->meta_rev, 5000)) {
		snprintf(err, errlen, "this instance has not yet seen revision %lld",
			 (long long)cur->meta_rev);
		rc = CS_EUNAVAIL;
		goto out;
	}
	if (rules) {
		if (!cur->flag) {
			snprintf(err, errlen, "the flag '%s' does not exist", flag);
			json_decref(rules);
			rc = CS_RO_EINVALID;
			goto out;
		}
		newrec = json_deep_copy(cur->flag);
		version = cs_jint(cur->flag, "version") + 1;
		json_object_set_new(newrec, "object",
				    cs_ro_flag_with_rules(json_object_get(cur->flag, "object"), rules));
		json_object_set_new(newrec, "version", json_integer(version));
		json_object_set_new(newrec, "updatedAt", json_string(now));
		json_object_set_new(newrec, "updatedBy", json_string(r->actor));
		before = served(cur->flag);
		after = served(newrec);
		if (cs_ro_validate_flag(s, flag, after, err, errlen, NULL)) {
			rc = CS_RO_EINVALID;
			goto out;
		}
		char *v = json_dumps(newrec, JSON_COMPACT);
		json_array_append_new(c.cmps, cs_cmp_mod(k_flag, cur->flag_mod));
		json_array_append_new(c.ops, cs_op_put(k_flag, v, strlen(v)));
		free(v);
		c.version = version;
		c.before = before;
		c.after = after;
	}
	json_object_set_new(rec, "updatedAt", json_string(now));
	json_object_set_new(rec, "updatedBy", json_string(r->actor));
	{
		char *v = json_dumps(rec, JSON_COMPACT);
		json_array_append_new(c.cmps, cs_cmp_mod(k_ro, cur->rec_mod));
		json_array_append_new(c.ops, cs_op_put(k_ro, v, strlen(v)));
		free(v);
	}
	if (leader_rev > 0) {
		char *k_lead = cs_key(m, CS_RO_LEADER_KEY, NULL);
		json_array_append_new(c.cmps, cs_ro_cmp_create(k_lead, leader_rev));
		free(k_lead);
	}
	rc = cs_commit(r, &c, rev, err, errlen);
	if (rc == 1)
		cs_model_wait(m, *rev, 5000);
out:
	json_decref(c.cmps);
	json_decref(c.ops);
	json_decref(before);
	json_decref(after);
	json_decref(newrec);
	free(k_ro);
	free(k_flag);
	return rc;
}

int cs_ro_put_state(cs_server *s, const char *flag, cs_ro_cur *cur, json_t *rec, int64_t leader_rev,
		 char *err, size_t errlen)
{
	cs_model *m = &s->model;
	char *k_ro = cs_key(m, "rollouts/", flag), *k_lead = cs_key(m, CS_RO_LEADER_KEY, NULL);
	char *v = json_dumps(rec, JSON_COMPACT);
	json_t *cmps = json_array(), *ops = json_array(), *resp = NULL;
	int rc;

	json_array_append_new(cmps, cs_cmp_mod(k_ro, cur->rec_mod));
	if (leader_rev > 0)
		json_array_append_new(cmps, cs_ro_cmp_create(k_lead, leader_rev));
	json_array_append_new(ops, cs_op_put(k_ro, v, strlen(v)));
	free(v);
	rc = cs_etcd_call(s->etcd, "/v3/kv/txn",
			  json_pack("{s:o,s:o}", "compare", cmps, "success", ops), &resp, err,
			  errlen);
	if (rc == 0)
		rc = json_is_true(json_object_get(resp, "succeeded")) ? 1 : 0;
	json_decref(resp);
	free(k_ro);
	free(k_lead);
	return rc;
}
