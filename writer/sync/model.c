/*
 * writer/sync/model.c - whole documents and stream events applied to the
 * writer's document (model.h).
 *
 * A candidate is a shallow copy down the path of the change (the root
 * object, then the flags array or the segments object) sharing every other
 * subtree with the current document by reference; wc_compile only reads
 * its input, so sharing is safe and an event costs one compile, not a deep
 * copy of the whole document.
 */
#include "model.h"

#include "flagshm.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int ws_model_init(ws_model *m, const char *environment, const wc_limits *lim)
{
	memset(m, 0, sizeof *m);
	m->lim = lim ? *lim : wc_limits_default();
	if (environment && !(m->environment = strdup(environment)))
		return FLAGSHM_ENOMEM;
	return 0;
}

void ws_model_free(ws_model *m)
{
	json_decref(m->doc);
	free(m->environment);
	memset(m, 0, sizeof *m);
}

/* Compile CAND (a new reference, stolen) and make it the document. */
static int commit(ws_model *m, json_t *cand, const char *label, wc_snapshot *out,
		  wc_errors *errs)
{
	wc_snapshot snap = {0};

	if (!cand) {
		wc_errors_add(errs, "%s: out of memory", label);
		m->rejected++;
		return FLAGSHM_ENOMEM;
	}
	if (wc_compile(cand, m->environment, label, &m->lim, &snap, errs) != 0) {
		json_decref(cand);
		m->rejected++;
		return FLAGSHM_EINVAL;
	}
	json_decref(m->doc);
	m->doc = cand;
	m->applied++;
	if (out)
		*out = snap;
	else
		wc_snapshot_free(&snap);
	return 0;
}

static int unchanged(ws_model *m)
{
	m->unchanged++;
	return WS_MODEL_UNCHANGED;
}

static int reject(ws_model *m, wc_errors *errs, const char *label, const char *why)
{
	wc_errors_add(errs, "%s: %s", label, why);
	m->rejected++;
	return FLAGSHM_EINVAL;
}

int ws_model_set(ws_model *m, json_t *doc, const char *label, wc_snapshot *out, wc_errors *errs)
{
	if (!doc)
		return reject(m, errs, label, "no document");
	if (m->doc && json_equal(m->doc, doc))
		return unchanged(m);
	return commit(m, json_incref(doc), label, out, errs);
}

static json_t *flags_of(json_t *doc)
{
	return json_is_array(doc) ? doc : json_object_get(doc, "flags");
}

/* Index of the flag with key KEY in FLAGS, or -1. */
static long find_flag(json_t *flags, const char *key)
{
	for (size_t i = 0; i < json_array_size(flags); i++) {
		const char *k = json_string_value(json_object_get(json_array_get(flags, i), "key"));
		if (k && strcmp(k, key) == 0)
			return (long)i;
	}
	return -1;
}

/* The current document with its flags array replaced by NF (stolen). */
static json_t *with_flags(json_t *doc, json_t *nf)
{
	json_t *c;

	if (!nf || json_is_array(doc))
		return nf;
	c = json_copy(doc);
	if (!c || json_object_set_new(c, "flags", nf) < 0) {
		json_decref(c);
		return NULL;
	}
	return c;
}

/* The current document with its segments object replaced by NS (stolen);
 * a bare array of flags becomes a format-1 object. */
static json_t *with_segments(json_t *doc, json_t *ns)
{
	json_t *c;

	if (!ns)
		return NULL;
	c = json_is_array(doc) ? json_pack("{s:i, s:O}", "formatVersion", 1, "flags", doc)
			       : json_copy(doc);
	if (!c || json_object_set_new(c, "segments", ns) < 0) {
		json_decref(c);
		return NULL;
	}
	return c;
}

static int flag_updated(ws_model *m, json_t *ev, const char *label, wc_snapshot *out,
			wc_errors *errs)
{
	json_t *flags = flags_of(m->doc), *nf;
	const char *key = json_string_value(json_object_get(ev, "key"));
	long i;

	if (!json_is_object(ev) || !key)
		return reject(m, errs, label, "flag-updated: data must be a flag object with a string \"key\"");
	i = find_flag(flags, key);
	if (i >= 0 && json_equal(json_array_get(flags, (size_t)i), ev))
		return unchanged(m);
	nf = json_copy(flags);
	if (nf && (i >= 0 ? json_array_set(nf, (size_t)i, ev) : json_array_append(nf, ev)) < 0) {
		json_decref(nf);
		nf = NULL;
	}
	return commit(m, with_flags(m->doc, nf), label, out, errs);
}

static int flag_deleted(ws_model *m, json_t *ev, const char *label, wc_snapshot *out,
			wc_errors *errs)
{
	json_t *flags = flags_of(m->doc), *nf;
	const char *key = json_string_value(json_object_get(ev, "key"));
	long i;

	if (!json_is_object(ev) || !key)
		return reject(m, errs, label, "flag-deleted: data must be {\"key\": K}");
	i = find_flag(flags, key);
	if (i < 0)
		return unchanged(m);
	nf = json_copy(flags);
	if (nf && json_array_remove(nf, (size_t)i) < 0) {
		json_decref(nf);
		nf = NULL;
	}
	return commit(m, with_flags(m->doc, nf), label, out, errs);
}

static int segment_event(ws_model *m, json_t *ev, bool deleted, const char *label,
			 wc_snapshot *out, wc_errors *errs)
{
	json_t *segs = json_is_object(m->doc) ? json_object_get(m->doc, "segments") : NULL;
	const char *name = json_string_value(json_object_get(ev, "name"));
	json_t *seg = json_object_get(ev, "segment"), *old, *ns;

	if (!json_is_object(ev) || !name || (!deleted && !seg))
		return reject(m, errs, label,
			      deleted ? "segment-deleted: data must be {\"name\": N}"
				      : "segment-updated: data must be {\"name\": N, \"segment\": {...}}");
	old = json_is_object(segs) ? json_object_get(segs, name) : NULL;
	if (deleted ? !old : old && json_equal(old, seg))
		return unchanged(m);
	ns = json_is_object(segs) ? json_copy(segs) : json_object();
	if (ns && (deleted ? json_object_del(ns, name) : json_object_set(ns, name, seg)) < 0) {
		json_decref(ns);
		ns = NULL;
	}
	return commit(m, with_segments(m->doc, ns), label, out, errs);
}

int ws_model_apply(ws_model *m, const char *type, const char *data, size_t len, const char *label,
		   wc_snapshot *out, wc_errors *errs)
{
	json_t *ev = NULL;
	int rc;

	if (!type)
		return reject(m, errs, label, "an event with no type");
	if (strcmp(type, "put") && strcmp(type, "flag-updated") && strcmp(type, "flag-deleted") &&
	    strcmp(type, "segment-updated") && strcmp(type, "segment-deleted")) {
		wc_errors_add(errs, "%s: unknown event type \"%.64s\"", label, type);
		m->rejected++;
		return FLAGSHM_EINVAL;
	}
	if (strcmp(type, "put") && !m->doc)
		return reject(m, errs, label, "an incremental event before any whole document");
	if (wc_load_buffer(data, len, label, &m->lim, &ev, errs) != 0) {
		m->rejected++;
		return FLAGSHM_EINVAL;
	}
	if (strcmp(type, "put") == 0)
		rc = ws_model_set(m, ev, label, out, errs);
	else if (strcmp(type, "flag-updated") == 0)
		rc = flag_updated(m, ev, label, out, errs);
	else if (strcmp(type, "flag-deleted") == 0)
		rc = flag_deleted(m, ev, label, out, errs);
	else
		rc = segment_event(m, ev, strcmp(type, "segment-deleted") == 0, label, out, errs);
	json_decref(ev);
	return rc;
}
