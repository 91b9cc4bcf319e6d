/*
 * control/import.c - POST /api/v1/import (a format-1 document replaces the
 * stored one in one etcd transaction: flags and segments it lacks are
 * deleted, equal ones are left alone) and POST /api/v1/bust (the epoch
 * moves, so every writer takes the whole document again).
 */
#include "server.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every record under PREFIX/DIR at one revision with meta/rev:
 * name -> {"rec": record}. */
static int read_all(cs_req *r, json_t *flags, json_t *segs, int64_t *meta_rev,
		    enum MHD_Result *ret)
{
	cs_model *m = &r->s->model;
	char *kf = cs_key(m, "flags/", NULL), *ks = cs_key(m, "segments/", NULL);
	char *ef = cs_prefix_end(kf), *es = cs_prefix_end(ks), *kr = cs_key(m, "meta/rev", NULL);
	json_t *ops = json_array(), *resp = NULL, *rs;
	char err[256];
	int rc;

	json_array_append_new(ops, cs_op_range(kf, ef));
	json_array_append_new(ops, cs_op_range(ks, es));
	json_array_append_new(ops, cs_op_range(kr, NULL));
	rc = cs_etcd_call(r->s->etcd, "/v3/kv/txn", json_pack("{s:o}", "success", ops), &resp, err,
			  sizeof err);
	size_t lf = strlen(kf), ls = strlen(ks);
	free(kf), free(ks), free(ef), free(es), free(kr);
	if (rc) {
		*ret = cs_etcd_error(r, rc, err);
		return -1;
	}
	rs = json_object_get(resp, "responses");
	for (int part = 0; part < 2; part++) {
		json_t *kvs = cs_kvs(json_object_get(json_array_get(rs, part), "response_range"));
		for (size_t i = 0; i < json_array_size(kvs); i++) {
			json_t *kv = json_array_get(kvs, i);
			size_t kn, vn;
			char *k = cs_unb64(json_string_value(json_object_get(kv, "key")), &kn);
			char *v = cs_unb64(json_string_value(json_object_get(kv, "value")) ?: "", &vn);
			json_t *rec = v ? json_loadb(v, vn, 0, NULL) : NULL;
			if (k && rec)
				json_object_set_new(part ? segs : flags, k + (part ? ls : lf), rec);
			else
				json_decref(rec);
			free(k);
			free(v);
		}
	}
	*meta_rev = cs_jint(json_array_get(cs_kvs(json_object_get(json_array_get(rs, 2),
								   "response_range")), 0),
			    "mod_revision");
	json_decref(resp);
	return 0;
}

typedef struct counts {
	int created, updated, deleted, unchanged;
} counts;

/* The ops that make the stored records HAVE into WANT (name -> object). */
static void plan(cs_req *r, const char *dir, json_t *have, json_t *want, json_t *ops,
		 counts *n, const char *now)
{
	const char *name;
	json_t *obj, *rec;

	json_object_foreach(want, name, obj) {
		char *key = cs_key(&r->s->model, dir, name), *v;
		json_t *old = json_object_get(have, name), *nrec;
		if (old && json_equal(json_object_get(old, "object"), obj)) {
			n->unchanged++;
			free(key);
			continue;
		}
		nrec = json_pack("{s:O,s:I,s:O?,s:s,s:s}", "object", obj, "version",
				 (json_int_t)(cs_jint(old, "version") + 1), "createdAt",
				 json_object_get(old, "createdAt"), "updatedAt", now, "updatedBy",
				 r->actor);
		if (!old)
			json_object_set_new(nrec, "createdAt", json_string(now));
		v = json_dumps(nrec, JSON_COMPACT);
		json_array_append_new(ops, cs_op_put(key, v, strlen(v)));
		free(v);
		free(key);
		json_decref(nrec);
		if (old)
			n->updated++;
		else
			n->created++;
	}
	json_object_foreach(have, name, rec) {
		if (json_object_get(want, name))
			continue;
		char *key = cs_key(&r->s->model, dir, name);
		json_array_append_new(ops, cs_op_delete(key));
		free(key);
		n->deleted++;
	}
}

static json_t *counts_json(const counts *c)
{
	return json_pack("{s:i,s:i,s:i,s:i}", "created", c->created, "updated", c->updated,
			 "deleted", c->deleted, "unchanged", c->unchanged);
}

enum MHD_Result cs_import(cs_req *r)
{
	enum MHD_Result ret;
	json_t *doc, *want_f = NULL, *want_s = NULL, *flags, *segs;
	const char *name;
	json_t *obj;

	if (!(r->rights & CS_R_WRITE))
		return cs_forbidden(r, "import");
	if (cs_need_reason(r, &ret) || !(doc = cs_parse_body(r, &ret)))
		return ret;
	if (json_is_object(doc))
		for (json_t *f; (f = json_object_get(doc, "flags")) && json_is_array(f);) {
			for (size_t i = 0; i < json_array_size(f); i++)
				if (json_is_object(json_array_get(f, i)))
					cs_strip_server_fields(json_array_get(f, i));
			break;
		}
	if (cs_validate(r, doc, 422, "invalid", &ret)) {
		json_decref(doc);
		return ret;
	}
	flags = wc_doc_flags(doc);
	segs = wc_doc_segments(doc);
	want_f = json_object();
	want_s = json_object();
	for (size_t i = 0; i < json_array_size(flags); i++) {
		json_t *f = json_array_get(flags, i);
		cs_strip_server_fields(f);
		json_object_set(want_f, json_string_value(json_object_get(f, "key")), f);
	}
	json_object_foreach(segs, name, obj)
		json_object_set(want_s, name, obj);
	if (json_object_get(want_f, "stream")) {
		ret = cs_error(r, 422, "invalid", NULL, "flags: the key 'stream' is reserved");
		goto out;
	}
	for (int attempt = 0; attempt < 25; attempt++) {
		json_t *have_f = json_object(), *have_s = json_object(), *ops = json_array();
		json_t *epoch = json_is_object(doc) ? json_object_get(doc, "epoch") : NULL;
		counts cf = {0}, csg = {0};
		char now[32], err[256];
		int64_t meta_rev, rev;
		int rc = -1;

		if (read_all(r, have_f, have_s, &meta_rev, &ret) == 0) {
			cs_now(now);
			plan(r, "flags/", have_f, want_f, ops, &cf, now);
			plan(r, "segments/", have_s, want_s, ops, &csg, now);
			if (epoch) {
				char *k = cs_key(&r->s->model, "meta/epoch", NULL);
				char *v = json_dumps(epoch, JSON_COMPACT | JSON_ENCODE_ANY);
				json_array_append_new(ops, cs_op_put(k, v, strlen(v)));
				free(k);
				free(v);
			}
			if (json_array_size(ops) + 2 > r->s->opt.max_txn_ops) {
				ret = cs_error(r, 413, "import_too_large", NULL,
					       "this import needs %zu operations in one etcd transaction, "
					       "more than --max-txn-ops %u; raise it here and in etcd "
					       "(etcd --max-txn-ops)",
					       json_array_size(ops) + 2, r->s->opt.max_txn_ops);
				json_decref(ops);
			} else {
				json_t *before = json_pack("{s:I,s:I}", "flags",
							   (json_int_t)json_object_size(have_f),
							   "segments",
							   (json_int_t)json_object_size(have_s));
				json_t *after = json_pack("{s:I,s:I,s:o,s:o}", "flags",
							  (json_int_t)json_object_size(want_f),
							  "segments",
							  (json_int_t)json_object_size(want_s),
							  "flagChanges", counts_json(&cf),
							  "segmentChanges", counts_json(&csg));
				cs_change c = {.kind = "import", .action = "import", .before = before,
					       .after = after, .rev_seen = meta_rev, .ops = ops};
				rc = cs_commit(r, &c, &rev, err, sizeof err);
				if (rc == 1) {
					cs_model_wait(&r->s->model, rev, 5000);
					ret = cs_reply(r, 200,
						       json_pack("{s:I,s:o,s:o}", "revision",
								 (json_int_t)rev, "flags",
								 counts_json(&cf), "segments",
								 counts_json(&csg)),
						       NULL);
				} else if (rc < 0) {
					ret = cs_etcd_error(r, rc, err);
				}
				json_decref(before);
				json_decref(after);
			}
		}
		else
			json_decref(ops);
		json_decref(have_f);
		json_decref(have_s);
		if (rc != 0)
			goto out;
		cs_race_pause(attempt);
	}
	ret = cs_error(r, 503, "busy", NULL, "too many concurrent changes; retry");
out:
	json_decref(want_f);
	json_decref(want_s);
	json_decref(doc);
	return ret;
}

enum MHD_Result cs_bust(cs_req *r)
{
	cs_model *m = &r->s->model;
	enum MHD_Result ret;
	char *key;

	if (!(r->rights & CS_R_WRITE))
		return cs_forbidden(r, "bust the writers' caches (editor or admin)");
	if (cs_need_reason(r, &ret))
		return ret;
	key = cs_key(m, "meta/epoch", NULL);
	for (int attempt = 0; attempt < 25; attempt++) {
		cs_cur cur;
		char v[32], err[256];
		int64_t rev, next;
		int rc;

		if (cs_read_key(r, key, &cur, true, &ret))
			break;
		next = json_is_integer(cur.value) ? json_integer_value(cur.value) + 1 : 1;
		snprintf(v, sizeof v, "%lld", (long long)next);
		json_t *after = json_pack("{s:I}", "epoch", (json_int_t)next);
		cs_change c = {.kind = "import", .action = "bust", .before = cur.value ? json_pack("{s:O}", "epoch", cur.value) : NULL,
			       .after = after, .rev_seen = cur.meta_rev, .cmps = json_array(),
			       .ops = json_array()};
		json_array_append_new(c.cmps, cs_cmp_mod(key, cur.mod));
		json_array_append_new(c.ops, cs_op_put(key, v, strlen(v)));
		rc = cs_commit(r, &c, &rev, err, sizeof err);
		if (rc == 1) {
			cs_model_wait(m, rev, 5000);
			ret = cs_reply(r, 200, json_pack("{s:I,s:I}", "epoch", (json_int_t)next,
							 "revision", (json_int_t)rev), NULL);
		} else if (rc < 0) {
			ret = cs_etcd_error(r, rc, err);
		}
		json_decref(c.before);
		json_decref(after);
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
