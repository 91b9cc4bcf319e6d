/*
 * control/replay.c - a stream that resumes from a Last-Event-ID older than
 * what this instance's ring holds (the instance started later, as after a
 * writer's failover, or the ring moved on) but that etcd has not
 * compacted: the events in between are read back from etcd's history with
 * a watch from that revision and sent before the ring's.
 *
 * Each revision becomes what the watcher would have made of it (mirror.c):
 * one delta per revision of one flag or segment. A revision that changed
 * several (an import) or the epoch would need the document as it was then;
 * the stream starts with a `put` instead, which is always correct.
 */
#include "server.h"

#include <stdlib.h>
#include <string.h>

typedef struct replay {
	const char *prefix;
	int64_t upto;	/* the last revision to replay */
	cs_blob **v;
	size_t n, cap;
	bool need_put, reached;
} replay;

static void add(replay *p, cs_blob *b)
{
	if (!b) {
		p->need_put = true;
		return;
	}
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 16;
		cs_blob **v = realloc(p->v, cap * sizeof *v);
		if (!v) {
			cs_blob_unref(&b);
			p->need_put = true;
			return;
		}
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = b;
}

/* The delta of one changed key REL ("flags/K" or "segments/N") at REV. */
static cs_blob *delta(const char *rel, const char *value, size_t vlen, int64_t rev)
{
	bool is_flag = rel[0] == 'f';
	const char *name = rel + (is_flag ? 6 : 9);
	json_t *obj = value ? cs_served(value, vlen, is_flag) : NULL, *data;
	cs_blob *b;

	if (value && !obj)
		return NULL;
	if (is_flag) {
		data = obj ? json_incref(obj) : json_pack("{s:s}", "key", name);
		b = cs_event_blob(obj ? "flag-updated" : "flag-deleted", rev, data);
	} else {
		data = obj ? json_pack("{s:s,s:O}", "name", name, "segment", obj)
			   : json_pack("{s:s}", "name", name);
		b = cs_event_blob(obj ? "segment-updated" : "segment-deleted", rev, data);
	}
	json_decref(data);
	json_decref(obj);
	return b;
}

static bool on_history(json_t *r, void *arg)
{
	replay *p = arg;
	json_t *evs = json_object_get(r, "events");
	size_t n = json_array_size(evs), pl = strlen(p->prefix);

	for (size_t from = 0; from < n && !p->need_put && !p->reached;) {
		int64_t rev = cs_jint(json_object_get(json_array_get(evs, from), "kv"), "mod_revision");
		size_t to = from + 1;
		while (to < n && cs_jint(json_object_get(json_array_get(evs, to), "kv"),
					 "mod_revision") == rev)
			to++;
		if (rev > p->upto) {
			p->reached = true;
			break;
		}
		int changes = 0;
		cs_blob *b = NULL;
		for (size_t i = from; i < to; i++) {
			json_t *ev = json_array_get(evs, i), *kv = json_object_get(ev, "kv");
			bool del = !strcmp(json_string_value(json_object_get(ev, "type")) ?: "", "DELETE");
			size_t kl = 0, vl = 0;
			char *key = cs_unb64(json_string_value(json_object_get(kv, "key")), &kl);
			char *val = del ? NULL
					: cs_unb64(json_string_value(json_object_get(kv, "value")) ?: "", &vl);
			const char *rel = key && !strncmp(key, p->prefix, pl) ? key + pl : "";
			if (!strncmp(rel, "flags/", 6) || !strncmp(rel, "segments/", 9)) {
				if (++changes == 1)
					b = delta(rel, val, vl, rev);
			} else if (!strcmp(rel, "meta/epoch")) {
				changes += 2; /* the epoch: a put */
			}
			free(key);
			free(val);
		}
		if (changes > 1) {
			cs_blob_unref(&b);
			p->need_put = true;
		} else if (changes == 1) {
			add(p, b);
		}
		if (rev >= p->upto)
			p->reached = true;
		from = to;
	}
	return !p->need_put && !p->reached;
}

int cs_replay(cs_server *s, int64_t last, int64_t upto, cs_blob ***out, size_t *nout)
{
	cs_model *m = &s->model;
	replay p = {.prefix = m->prefix, .upto = upto};
	char *from = cs_key(m, "", NULL), *to = cs_prefix_end(from), err[256];
	int64_t compacted = 0;
	static const volatile bool never = false;
	int rc;

	*out = NULL;
	*nout = 0;
	/* History comes at once; the bound is for a member that hangs. */
	rc = cs_etcd_watch(s->etcd, from, to, last + 1, on_history, &p, &never, 10000,
			   &compacted, err, sizeof err);
	free(from);
	free(to);
	if (rc != 0 || p.need_put || !p.reached) {
		for (size_t i = 0; i < p.n; i++)
			cs_blob_unref(&p.v[i]);
		free(p.v);
		return -1;
	}
	*out = p.v;
	*nout = p.n;
	return 0;
}
