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
		if (pb) {
			ret = cs_reply_raw(r, 200, "application/x-protobuf", pb, n, etag, true);
			cs_doc_unref(&d);
			return ret;
		}
	}
	ret = cs_reply_raw(r, 200, "application/json", d->json, d->json_len, etag, true);
	cs_doc_unref(&d);
	return ret;
}

typedef struct sse {
	cs_server *s;
	uint64_t pos;	/* the next ring event to send */
	bool need_put;
	char *out;	/* bytes of the current event not yet sent */
	size_t out_len, out_off;
	int64_t last_send_us;
} sse;

static int64_t mono_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* The `put` of the model's state (id: the revision the model is at) and
 * the ring position after it. Holds m->mu. */
static void take_put(cs_model *m, sse *x)
{
	cs_doc *d = cs_model_doc_locked(m);

	free(x->out);
	x->out = NULL;
	if (d && d->json &&
	    asprintf(&x->out, "event: put\nid: %lld\ndata: %s\n\n", (long long)m->seen_rev,
		     d->json) < 0)
		x->out = NULL;
	x->out_len = x->out ? strlen(x->out) : 0;
	x->out_off = 0;
	x->pos = m->ring_n;
	x->need_put = false;
	cs_doc_unref(&d);
}

static ssize_t sse_read(void *cls, uint64_t off, char *buf, size_t max)
{
	sse *x = cls;
	cs_model *m = &x->s->model;
	int64_t keep_us = (int64_t)x->s->opt.keepalive * 1000000;

	(void)off;
	pthread_mutex_lock(&m->mu);
	while (x->out_off >= x->out_len) {
		struct timespec t;
		if (m->stop) {
			pthread_mutex_unlock(&m->mu);
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
		if (x->need_put || x->pos < m->ring_first) {
			take_put(m, x); /* new or fallen too far behind */
			continue;
		}
		if (x->pos < m->ring_n) {
			cs_event *e = &m->ring[x->pos % CS_RING];
			free(x->out);
			x->out = malloc(e->len);
			if (x->out)
				memcpy(x->out, e->text, e->len);
			x->out_len = x->out ? e->len : 0;
			x->out_off = 0;
			x->pos++;
			continue;
		}
		if (mono_us() - x->last_send_us >= keep_us) {
			free(x->out);
			x->out = strdup(": keep-alive\n\n");
			x->out_len = x->out ? strlen(x->out) : 0;
			x->out_off = 0;
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_sec += 1;
		pthread_cond_timedwait(&m->cv, &m->mu, &t);
	}
	pthread_mutex_unlock(&m->mu);
	size_t n = x->out_len - x->out_off < max ? x->out_len - x->out_off : max;
	memcpy(buf, x->out + x->out_off, n);
	x->out_off += n;
	x->last_send_us = mono_us();
	return (ssize_t)n;
}

static void sse_free(void *cls)
{
	sse *x = cls;

	free(x->out);
	free(x);
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
	if (last >= 0 && last >= m->ring_floor && last <= m->seen_rev) {
		uint64_t p = m->ring_n;
		while (p > m->ring_first && m->ring[(p - 1) % CS_RING].rev > last)
			p--;
		x->pos = p;
	} else {
		x->need_put = true;
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
