/*
 * control/mirror.c - the model of mirror.h and its watcher thread.
 *
 * The watcher applies etcd's events in revision order. One revision that
 * changes one flag or one segment becomes one delta event; a revision that
 * changes several (an import) or the epoch becomes a `put` of the whole
 * document, so every event leaves a valid document (docs/sync-protocol.md,
 * rule 5) and carries one id.
 */
#include "mirror.h"

#include "proto_conv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

char *cs_key(const cs_model *m, const char *what, const char *name)
{
	size_t n = strlen(m->prefix) + strlen(what) + (name ? strlen(name) : 0) + 1;
	char *k = malloc(n);

	if (k)
		snprintf(k, n, "%s%s%s", m->prefix, what, name ? name : "");
	return k;
}

void cs_doc_unref(cs_doc **pd)
{
	cs_doc *d = *pd;

	*pd = NULL;
	if (!d || --d->refs > 0)
		return;
	json_decref(d->doc);
	free(d->json);
	free(d->pb);
	pthread_mutex_destroy(&d->pb_mu);
	free(d);
}

const uint8_t *cs_doc_pb(cs_doc *d, size_t *len)
{
	char err[256];

	pthread_mutex_lock(&d->pb_mu);
	if (!d->pb && !d->pb_failed &&
	    ws_proto_encode(d->doc, &d->pb, &d->pb_len, err, sizeof err) != 0)
		d->pb_failed = true;
	pthread_mutex_unlock(&d->pb_mu);
	*len = d->pb_len;
	return d->pb;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of object O, sorted (malloc'd array of borrowed strings). */
static const char **sorted_keys(json_t *o, size_t *n)
{
	const char **k = malloc((json_object_size(o) + 1) * sizeof *k);
	const char *key;
	json_t *v;
	size_t i = 0;

	if (!k)
		return NULL;
	json_object_foreach(o, key, v)
		k[i++] = key;
	qsort(k, i, sizeof *k, cmp_str);
	*n = i;
	return k;
}

json_t *cs_model_doc_with(cs_model *m, const char *key, json_t *flag, const char *name,
			  json_t *seg)
{
	json_t *doc = json_object(), *flags = json_array(), *segs = json_object();
	const char **k;
	size_t n = 0;
	bool placed = false;

	/* The caller holds m->mu or owns m (the watcher). */
	k = sorted_keys(m->flags, &n);
	for (size_t i = 0; k && i < n; i++) {
		if (key && !placed && strcmp(key, k[i]) <= 0) {
			placed = true;
			if (flag)
				json_array_append(flags, flag);
			if (strcmp(key, k[i]) == 0)
				continue;
		}
		json_array_append(flags, json_object_get(m->flags, k[i]));
	}
	if (key && !placed && flag)
		json_array_append(flags, flag);
	free(k);
	k = sorted_keys(m->segments, &n);
	for (size_t i = 0; k && i < n; i++)
		if (!name || strcmp(name, k[i]))
			json_object_set(segs, k[i], json_object_get(m->segments, k[i]));
	if (name && seg)
		json_object_set(segs, name, seg);
	free(k);
	json_object_set_new(doc, "formatVersion", json_integer(1));
	if (m->epoch)
		json_object_set(doc, "epoch", m->epoch);
	json_object_set_new(doc, "segments", segs);
	json_object_set_new(doc, "flags", flags);
	return doc;
}

/* The cached document, rebuilt when the document changed. Holds m->mu. */
cs_doc *cs_model_doc_locked(cs_model *m)
{
	cs_doc *d;

	if (m->cache && m->cache->rev == m->doc_rev) {
		m->cache->refs++;
		return m->cache;
	}
	d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	pthread_mutex_init(&d->pb_mu, NULL);
	d->refs = 2; /* the cache's and the caller's */
	d->rev = m->doc_rev;
	d->doc = cs_model_doc_with(m, NULL, NULL, NULL, NULL);
	d->json = json_dumps(d->doc, JSON_COMPACT);
	d->json_len = d->json ? strlen(d->json) : 0;
	cs_doc_unref(&m->cache);
	m->cache = d;
	return d;
}

cs_doc *cs_model_doc(cs_model *m)
{
	cs_doc *d;

	pthread_mutex_lock(&m->mu);
	d = cs_model_doc_locked(m);
	pthread_mutex_unlock(&m->mu);
	return d;
}

bool cs_model_wait(cs_model *m, int64_t rev, int timeout_ms)
{
	struct timespec t;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += timeout_ms / 1000;
	t.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L)
		t.tv_sec++, t.tv_nsec -= 1000000000L;
	pthread_mutex_lock(&m->mu);
	while (m->seen_rev < rev && !m->stop)
		if (pthread_cond_timedwait(&m->cv, &m->mu, &t) != 0)
			break;
	ok = m->seen_rev >= rev;
	pthread_mutex_unlock(&m->mu);
	return ok;
}

/* A record's value: the served flag (its object with the server-set
 * fields) or segment; NULL when unreadable. */
json_t *cs_served(const char *value, size_t len, bool is_flag)
{
	json_t *rec = json_loadb(value, len, 0, NULL);
	json_t *obj = json_object_get(rec, "object");

	if (!json_is_object(obj)) {
		json_decref(rec);
		return NULL;
	}
	json_incref(obj);
	if (is_flag) {
		json_object_set(obj, "version", json_object_get(rec, "version"));
		if (json_object_get(rec, "createdAt"))
			json_object_set(obj, "createdAt", json_object_get(rec, "createdAt"));
		if (json_object_get(rec, "updatedAt"))
			json_object_set(obj, "updatedAt", json_object_get(rec, "updatedAt"));
	}
	json_decref(rec);
	return obj;
}

enum change { CH_NONE, CH_FLAG, CH_SEG, CH_EPOCH, CH_OTHER };

/* Apply one key's new value (VALUE NULL: deleted) to the model. Holds
 * m->mu. Returns what part of the document it changed. */
static enum change apply_kv(cs_model *m, const char *key, const char *value, size_t vlen)
{
	size_t pl = strlen(m->prefix);
	const char *rel;

	if (strncmp(key, m->prefix, pl))
		return CH_NONE;
	rel = key + pl;
	if (!strncmp(rel, "flags/", 6) || !strncmp(rel, "segments/", 9)) {
		bool is_flag = rel[0] == 'f';
		const char *name = rel + (is_flag ? 6 : 9);
		json_t *into = is_flag ? m->flags : m->segments;
		json_t *obj = value ? cs_served(value, vlen, is_flag) : NULL;
		if (obj)
			json_object_set_new(into, name, obj);
		else
			json_object_del(into, name);
		return is_flag ? CH_FLAG : CH_SEG;
	}
	if (!strncmp(rel, "tokens/", 7)) {
		json_t *rec = value ? json_loadb(value, vlen, 0, NULL) : NULL;
		if (rec)
			json_object_set_new(m->tokens, rel + 7, rec);
		else
			json_object_del(m->tokens, rel + 7);
		return CH_NONE;
	}
	if (!strcmp(rel, "meta/epoch")) {
		json_decref(m->epoch);
		m->epoch = value ? json_loadb(value, vlen, JSON_DECODE_ANY, NULL) : NULL;
		return CH_EPOCH;
	}
	return CH_NONE;
}

cs_blob *cs_blob_cat(const char *a, const char *b, const char *c)
{
	size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0, lc = c ? strlen(c) : 0;
	cs_blob *x = malloc(sizeof *x + la + lb + lc + 1);

	if (!x)
		return NULL;
	x->refs = 1;
	x->len = la + lb + lc;
	memcpy(x->text, a ? a : "", la);
	memcpy(x->text + la, b ? b : "", lb);
	memcpy(x->text + la + lb, c ? c : "", lc);
	x->text[x->len] = 0;
	return x;
}

cs_blob *cs_blob_ref(cs_blob *b)
{
	if (b)
		b->refs++;
	return b;
}

void cs_blob_unref(cs_blob **pb)
{
	cs_blob *b = *pb;

	*pb = NULL;
	if (b && --b->refs == 0)
		free(b);
}

/* Take B (a reference) into the ring as the event of REV. */
static void ring_push(cs_model *m, int64_t rev, cs_blob *b)
{
	cs_event *e;

	if (!b)
		return;
	/* Drop the oldest events while the ring is full by count or bytes;
	 * a stream still behind them gets a `put` instead. */
	while (m->ring_first < m->ring_n &&
	       (m->ring_n - m->ring_first >= CS_RING || m->ring_bytes + b->len > CS_RING_BYTES)) {
		cs_event *old = &m->ring[m->ring_first % CS_RING];
		m->ring_floor = old->rev; /* everything after it is still here */
		m->ring_bytes -= old->blob->len;
		cs_blob_unref(&old->blob);
		m->ring_first++;
	}
	e = &m->ring[m->ring_n % CS_RING];
	e->rev = rev;
	e->blob = b;
	m->ring_bytes += b->len;
	m->ring_n++;
}

cs_blob *cs_event_blob(const char *name, int64_t rev, json_t *data)
{
	char *d = json_dumps(data, JSON_COMPACT), head[160];
	cs_blob *b;

	if (!d)
		return NULL;
	snprintf(head, sizeof head, "event: %s\nid: %lld\ndata: ", name, (long long)rev);
	b = cs_blob_cat(head, d, "\n\n");
	free(d);
	return b;
}

cs_blob *cs_model_put_locked(cs_model *m, int64_t rev)
{
	char head[64];
	cs_doc *d;

	if (m->put_cache && m->put_rev == rev && m->put_cache_doc == m->doc_rev)
		return cs_blob_ref(m->put_cache);
	d = cs_model_doc_locked(m);
	if (!d || !d->json) {
		cs_doc_unref(&d);
		return NULL;
	}
	snprintf(head, sizeof head, "event: put\nid: %lld\ndata: ", (long long)rev);
	cs_blob_unref(&m->put_cache);
	m->put_cache = cs_blob_cat(head, d->json, "\n\n");
	m->put_rev = rev;
	m->put_cache_doc = d->rev;
	cs_doc_unref(&d);
	return cs_blob_ref(m->put_cache);
}

/* The `put` event at REV. Holds m->mu. */
static void push_put(cs_model *m, int64_t rev)
{
	ring_push(m, rev, cs_model_put_locked(m, rev));
}

/* The delta event for the one change of key REL at REV. Holds m->mu. */
static void push_delta(cs_model *m, int64_t rev, enum change ch, const char *name)
{
	json_t *data;

	if (ch == CH_FLAG) {
		json_t *f = json_object_get(m->flags, name);
		if (f) {
			ring_push(m, rev, cs_event_blob("flag-updated", rev, f));
			return;
		}
		data = json_pack("{s:s}", "key", name);
		ring_push(m, rev, cs_event_blob("flag-deleted", rev, data));
	} else {
		json_t *s = json_object_get(m->segments, name);
		if (s)
			data = json_pack("{s:s,s:O}", "name", name, "segment", s);
		else
			data = json_pack("{s:s}", "name", name);
		ring_push(m, rev, cs_event_blob(s ? "segment-updated" : "segment-deleted", rev, data));
	}
	json_decref(data);
}

/* The events of one revision: EVS[from..to). Holds m->mu. */
static void apply_revision(cs_model *m, json_t *evs, size_t from, size_t to, int64_t rev)
{
	int changes = 0;
	enum change last = CH_NONE;
	char *name = NULL;

	for (size_t i = from; i < to; i++) {
		json_t *ev = json_array_get(evs, i), *kv = json_object_get(ev, "kv");
		bool del = !strcmp(json_string_value(json_object_get(ev, "type")) ?: "", "DELETE");
		size_t kl = 0, vl = 0;
		char *key = cs_unb64(json_string_value(json_object_get(kv, "key")), &kl);
		char *val = del ? NULL : cs_unb64(json_string_value(json_object_get(kv, "value")) ?: "", &vl);
		enum change ch;

		if (!key || (!del && !val)) {
			free(key);
			free(val);
			continue;
		}
		ch = apply_kv(m, key, del ? NULL : val, vl);
		if (ch != CH_NONE) {
			changes++;
			last = ch;
			free(name);
			name = strdup(key + strlen(m->prefix) + (ch == CH_FLAG ? 6 : ch == CH_SEG ? 9 : 0));
		}
		free(key);
		free(val);
	}
	if (changes > 0) {
		m->doc_rev = rev;
		if (changes == 1 && (last == CH_FLAG || last == CH_SEG) && name)
			push_delta(m, rev, last, name);
		else
			push_put(m, rev);
	}
	free(name);
}

static bool on_watch(json_t *r, void *arg)
{
	cs_model *m = arg;
	json_t *evs = json_object_get(r, "events");
	size_t n = json_array_size(evs), from = 0;
	int64_t hrev = cs_header_rev(r);

	pthread_mutex_lock(&m->mu);
	if (!m->up)
		cs_log("etcd watch up again at revision %lld", (long long)m->seen_rev);
	m->up = true;
	m->last_error[0] = 0;
	while (from < n) {
		int64_t rev = cs_jint(json_object_get(json_array_get(evs, from), "kv"),
				      "mod_revision");
		size_t to = from + 1;
		while (to < n && cs_jint(json_object_get(json_array_get(evs, to), "kv"),
					 "mod_revision") == rev)
			to++;
		apply_revision(m, evs, from, to, rev);
		if (rev > m->seen_rev)
			m->seen_rev = rev;
		from = to;
	}
	/* A progress answer says every event up to HREV was sent; a created
	 * answer comes before the history it will send, so it says nothing. */
	if (n == 0 && !json_is_true(json_object_get(r, "created")) && hrev > m->seen_rev)
		m->seen_rev = hrev;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	return !m->stop;
}

/* Read everything the model holds at one revision (one txn of ranges) and
 * replace the model with it. */
static int load_all(cs_model *m, char *err, size_t errlen)
{
	static const char *const parts[] = {"flags/", "segments/", "tokens/"};
	json_t *ops = json_array(), *resp = NULL;
	char *keys[4] = {0}, *ends[3] = {0};
	int rc;

	for (int i = 0; i < 3; i++) {
		keys[i] = cs_key(m, parts[i], NULL);
		ends[i] = cs_prefix_end(keys[i]);
		json_array_append_new(ops, cs_op_range(keys[i], ends[i]));
	}
	keys[3] = cs_key(m, "meta/epoch", NULL);
	json_array_append_new(ops, cs_op_range(keys[3], NULL));
	rc = cs_etcd_call(m->etcd, "/v3/kv/txn", json_pack("{s:o}", "success", ops), &resp, err,
			  errlen);
	for (int i = 0; i < 4; i++)
		free(keys[i]);
	for (int i = 0; i < 3; i++)
		free(ends[i]);
	if (rc)
		return rc;
	pthread_mutex_lock(&m->mu);
	json_object_clear(m->flags);
	json_object_clear(m->segments);
	json_object_clear(m->tokens);
	json_decref(m->epoch);
	m->epoch = NULL;
	json_t *rs = json_object_get(resp, "responses");
	for (size_t i = 0; i < json_array_size(rs); i++) {
		json_t *kvs = cs_kvs(json_object_get(json_array_get(rs, i), "response_range"));
		for (size_t j = 0; j < json_array_size(kvs); j++) {
			json_t *kv = json_array_get(kvs, j);
			size_t kl, vl;
			char *k = cs_unb64(json_string_value(json_object_get(kv, "key")), &kl);
			char *v = cs_unb64(json_string_value(json_object_get(kv, "value")) ?: "", &vl);
			if (k && v)
				apply_kv(m, k, v, vl);
			free(k);
			free(v);
		}
	}
	m->seen_rev = m->doc_rev = cs_header_rev(resp);
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	json_decref(resp);
	return 0;
}

static void *watcher(void *arg)
{
	cs_model *m = arg;
	char *from = cs_key(m, "", NULL), *to = cs_prefix_end(from);
	char err[256];
	int delay_ms = 100;

	while (!m->stop) {
		int64_t compacted = 0, start;
		pthread_mutex_lock(&m->mu);
		start = m->seen_rev + 1;
		pthread_mutex_unlock(&m->mu);
		int rc = cs_etcd_watch(m->etcd, from, to, start, on_watch, m, &m->stop, 0,
				       &compacted, err, sizeof err);
		if (m->stop)
			break;
		pthread_mutex_lock(&m->mu);
		if (m->up || strcmp(m->last_error, err))
			cs_log("etcd watch ended (%s); resuming from revision %lld", err,
			       (long long)m->seen_rev + 1);
		if (m->up)
			delay_ms = 100; /* it worked until now: retry soon */
		m->up = false;
		snprintf(m->last_error, sizeof m->last_error, "%s", err);
		pthread_mutex_unlock(&m->mu);
		if (rc == CS_ECOMPACTED) {
			/* Changes were lost to compaction: read it all again and
			 * tell every stream with a `put`. */
			if (load_all(m, err, sizeof err) == 0) {
				pthread_mutex_lock(&m->mu);
				push_put(m, m->seen_rev);
				pthread_cond_broadcast(&m->cv);
				pthread_mutex_unlock(&m->mu);
				continue;
			}
		}
		for (int i = 0; i < delay_ms / 50 && !m->stop; i++)
			usleep(50000);
		delay_ms = delay_ms < 1600 ? delay_ms * 2 : delay_ms;
	}
	free(from);
	free(to);
	return NULL;
}

void cs_model_init(cs_model *m, cs_etcd *e, const char *prefix)
{
	size_t l = strlen(prefix);

	memset(m, 0, sizeof *m);
	m->etcd = e;
	m->prefix = malloc(l + 2);
	snprintf(m->prefix, l + 2, "%s%s", prefix, l && prefix[l - 1] == '/' ? "" : "/");
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	m->flags = json_object();
	m->segments = json_object();
	m->tokens = json_object();
}

int cs_model_load(cs_model *m, char *err, size_t errlen)
{
	int rc = load_all(m, err, errlen);

	if (rc)
		return rc;
	m->ring_floor = m->seen_rev;
	m->up = true;
	if (pthread_create(&m->watcher, NULL, watcher, m)) {
		snprintf(err, errlen, "cannot start the watcher thread");
		return CS_ENOMEM;
	}
	m->started = true;
	m->loaded = true;
	return 0;
}

void cs_model_stop(cs_model *m)
{
	m->stop = true;
	pthread_mutex_lock(&m->mu);
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	if (m->started)
		pthread_join(m->watcher, NULL);
	for (int i = 0; i < CS_RING; i++)
		cs_blob_unref(&m->ring[i].blob);
	cs_blob_unref(&m->put_cache);
	cs_doc_unref(&m->cache);
	json_decref(m->flags);
	json_decref(m->segments);
	json_decref(m->tokens);
	json_decref(m->epoch);
	free(m->prefix);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cv);
}
