/*
 * control/stream.c - the sync protocol (docs/sync-protocol.md), served
 * unchanged from the model: GET /api/v1/flags (the document built once per
 * revision, JSON or protobuf, ETag = the revision of its last change) and
 * GET /api/v1/flags/stream (SSE from the model's ring of events, id = the
 * etcd revision, resumed from Last-Event-ID when the ring still holds
 * everything after it and etcd has not compacted it, else a `put`).
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cs_current(cs_req *r, int64_t *meta_rev, int64_t *head_rev, enum MHD_Result *ret)
{
	cs_model *m = &r->s->model;
	char *k = cs_key(m, "meta/rev", NULL), err[256];
	json_t *resp = NULL, *req = json_pack("{s:o}", "key", cs_b64s(k));
	int rc = cs_etcd_call(r->s->etcd, "/v3/kv/range", req, &resp, err, sizeof err);

	free(k);
	if (rc) {
		*ret = cs_etcd_error(r, rc, err);
		return -1;
	}
	*meta_rev = cs_jint(json_array_get(cs_kvs(resp), 0), "mod_revision");
	if (head_rev)
		*head_rev = cs_header_rev(resp);
	json_decref(resp);
	if (!cs_model_wait(m, *meta_rev, 5000)) {
		*ret = cs_error(r, 503, "catching_up", NULL,
				"this instance has not yet seen revision %lld from etcd",
				(long long)*meta_rev);
		return -1;
	}
	return 0;
}

bool cs_etag_listed(const char *h, const char *etag)
{
	size_t n = strlen(etag);

	while (h && *h) {
		while (*h == ' ' || *h == ',')
			h++;
		if (!strncmp(h, "W/", 2))
			h += 2;
		if (*h == '*' || (!strncmp(h, etag, n) && (h[n] == 0 || h[n] == ',' || h[n] == ' ')))
			return true;
		h = strchr(h, ',');
	}
	return false;
}

static void doc_done(void *cls)
{
	cs_doc *d = cls;
	cs_doc_unref(&d);
}

/* 200 with bytes of D (JSON or protobuf), sent from D itself: a 10,000-flag
 * document is megabytes, so it is not copied per request. Takes D. */
/* MHD only reads the buffer (its API is older than const). */
static enum MHD_Result reply_doc(cs_req *r, cs_doc *d, const char *ctype, const void *p,
				 size_t n, const char *etag)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer_with_free_callback_cls(n, (void *)p, doc_done, d);
	enum MHD_Result ret;

	if (!resp) {
		cs_doc_unref(&d);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", ctype);
	MHD_add_response_header(resp, "ETag", etag);
	MHD_add_response_header(resp, "X-Request-Id", r->id);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	ret = MHD_queue_response(r->c, 200, resp);
	MHD_destroy_response(resp);
	r->status = 200;
	r->answered = true;
	return ret;
}

enum MHD_Result cs_serve_doc(cs_req *r)
{
	enum MHD_Result ret;
	int64_t mrev;
	cs_doc *d;
	char etag[40];
	const char *accept = cs_header(r, "Accept");

	if (!(r->rights & CS_R_SYNC))
		return cs_error(r, 403, "forbidden", NULL, "this token may not read the document");
	if (cs_current(r, &mrev, NULL, &ret))
		return ret;
	d = cs_model_doc(&r->s->model);
	if (!d || !d->json)
		return cs_error(r, 500, "internal", NULL, "out of memory building the document");
	snprintf(etag, sizeof etag, "\"%lld\"", (long long)d->rev);
	if (cs_etag_listed(cs_header(r, "If-None-Match"), etag)) {
		cs_doc_unref(&d);
		return cs_reply_raw(r, 304, NULL, "", 0, etag, true);
	}
	if (accept && (strstr(accept, "application/x-protobuf") ||
		       strstr(accept, "application/protobuf"))) {
		size_t n;
		const uint8_t *pb = cs_doc_pb(d, &n);
		if (pb)
			return reply_doc(r, d, "application/x-protobuf", pb, n, etag);
	}
	return reply_doc(r, d, "application/json", d->json, d->json_len, etag);
}

typedef struct sse {
	cs_server *s;
	uint64_t pos;	/* the next ring event to send */
	bool need_put;
	cs_blob **pre;	/* events from etcd's history, sent before the ring's */
	size_t npre, ipre;
	cs_blob *cur;	/* the event being sent (a reference) ... */
	size_t off;	/* ... from this byte */
	int64_t last_send_us;
} sse;

static int64_t mono_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static void drop_pre(sse *x)
{
	for (size_t i = x->ipre; i < x->npre; i++)
		cs_blob_unref(&x->pre[i]);
	free(x->pre);
	x->pre = NULL;
	x->npre = x->ipre = 0;
}

static ssize_t sse_read(void *cls, uint64_t off, char *buf, size_t max)
{
	sse *x = cls;
	cs_model *m = &x->s->model;
	int64_t keep_us = (int64_t)x->s->opt.keepalive * 1000000;
	size_t n;

	(void)off;
	if (!x->cur || x->off >= x->cur->len) {
		pthread_mutex_lock(&m->mu);
		cs_blob_unref(&x->cur);
		while (!x->cur) {
			struct timespec t;
			if (m->stop) {
				pthread_mutex_unlock(&m->mu);
				return MHD_CONTENT_READER_END_OF_STREAM;
			}
			if (x->need_put || x->pos < m->ring_first) {
				/* New, or fallen too far behind: the whole document at
				 * the model's revision, and the events after it. */
				x->cur = cs_model_put_locked(m, m->seen_rev);
				x->pos = m->ring_n;
				x->need_put = false;
				drop_pre(x); /* older than the put */
				if (!x->cur) {
					pthread_mutex_unlock(&m->mu);
					return MHD_CONTENT_READER_END_WITH_ERROR;
				}
			} else if (x->ipre < x->npre) {
				x->cur = x->pre[x->ipre];
				x->pre[x->ipre++] = NULL;
			} else if (x->pos < m->ring_n) {
				x->cur = cs_blob_ref(m->ring[x->pos++ % CS_RING].blob);
			} else if (mono_us() - x->last_send_us >= keep_us) {
				x->cur = cs_blob_cat(": keep-alive\n\n", NULL, NULL);
			} else {
				clock_gettime(CLOCK_REALTIME, &t);
				t.tv_sec += 1;
				pthread_cond_timedwait(&m->cv, &m->mu, &t);
			}
		}
		pthread_mutex_unlock(&m->mu);
		x->off = 0;
	}
	n = x->cur->len - x->off < max ? x->cur->len - x->off : max;
	memcpy(buf, x->cur->text + x->off, n);
	x->off += n;
	x->last_send_us = mono_us();
	return (ssize_t)n;
}

static void sse_free(void *cls)
{
	sse *x = cls;

	cs_blob_unref(&x->cur);
	drop_pre(x);
	free(x);
}

/* LAST is older than the ring's FLOOR: the events after LAST up to the
 * last change at or before FLOOR, from etcd's history, go first (x->pre).
 * Returns the revision the ring must continue after, or -1 for a put. */
static int64_t resume_from_history(cs_req *r, sse *x, int64_t last, int64_t floor)
{
	char *k = cs_key(&r->s->model, "meta/rev", NULL), err[256], rv[32];
	json_t *resp = NULL, *req = json_pack("{s:o}", "key", cs_b64s(k));
	int64_t upto;
	int rc;

	free(k);
	snprintf(rv, sizeof rv, "%lld", (long long)floor);
	json_object_set_new(req, "revision", json_string(rv));
	rc = cs_etcd_call(r->s->etcd, "/v3/kv/range", req, &resp, err, sizeof err);
	upto = rc ? -1 : cs_jint(json_array_get(cs_kvs(resp), 0), "mod_revision");
	json_decref(resp);
	if (upto < 0)
		return -1;
	if (upto <= last)
		return floor; /* nothing of ours in between */
	if (cs_replay(r->s, last, upto, &x->pre, &x->npre) < 0)
		return -1;
	return floor;
}

/* True when etcd still has revision REV + 1 (not compacted). */
static bool etcd_has_after(cs_req *r, int64_t rev)
{
	char *k = cs_key(&r->s->model, "meta/rev", NULL), err[256], rv[32];
	json_t *resp = NULL, *req = json_pack("{s:o}", "key", cs_b64s(k));
	int rc;

	snprintf(rv, sizeof rv, "%lld", (long long)rev + 1);
	json_object_set_new(req, "revision", json_string(rv));
	rc = cs_etcd_call(r->s->etcd, "/v3/kv/range", req, &resp, err, sizeof err);
	free(k);
	json_decref(resp);
	return rc == 0;
}

enum MHD_Result cs_serve_stream(cs_req *r)
{
	cs_model *m = &r->s->model;
	const char *lei = cs_header(r, "Last-Event-ID");
	struct MHD_Response *resp;
	enum MHD_Result ret;
	int64_t mrev, head, last = -1;
	sse *x;

	if (!(r->rights & CS_R_SYNC))
		return cs_error(r, 403, "forbidden", NULL, "this token may not read the document");
	if (cs_current(r, &mrev, &head, &ret))
		return ret;
	if (lei && *lei) {
		char *end;
		long long v = strtoll(lei, &end, 10);
		if (*end == 0 && v >= 0)
			last = v;
	}
	if (last >= 0 && last < head && !etcd_has_after(r, last))
		last = -1; /* compacted: a put */
	x = calloc(1, sizeof *x);
	if (!x)
		return MHD_NO;
	x->s = r->s;
	x->last_send_us = mono_us();
	pthread_mutex_lock(&m->mu);
	int64_t floor = m->ring_floor, seen = m->seen_rev;
	pthread_mutex_unlock(&m->mu);
	if (last >= 0 && last < floor && last <= seen)
		last = resume_from_history(r, x, last, floor);
	pthread_mutex_lock(&m->mu);
	if (last >= 0 && last >= m->ring_floor && last <= m->seen_rev) {
		uint64_t p = m->ring_n;
		while (p > m->ring_first && m->ring[(p - 1) % CS_RING].rev > last)
			p--;
		x->pos = p;
	} else {
		x->need_put = true;
		drop_pre(x); /* a put replaces them all */
	}
	pthread_mutex_unlock(&m->mu);
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, sse_read, x,
						 sse_free);
	if (!resp) {
		sse_free(x);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "text/event-stream");
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "X-Request-Id", r->id);
	ret = MHD_queue_response(r->c, 200, resp);
	MHD_destroy_response(resp);
	r->status = 200;
	r->answered = true;
	return ret;
}
