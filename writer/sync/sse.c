/*
 * writer/sync/sse.c - the event-stream parser of sse.h.
 *
 * Bytes go into the current line until CR or LF; each complete line is
 * then a comment, a field, or (empty) the end of an event. Buffers grow by
 * doubling and are kept between events, so a steady stream allocates
 * nothing.
 */
#include "sse.h"

#include "flagshm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char bom[3] = {0xef, 0xbb, 0xbf};
#define BOM_DONE 3

/* Append N bytes and keep a NUL after them. */
static int buf_add(ws_sse_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *p;
		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return FLAGSHM_ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static void buf_clear(ws_sse_buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

/* Fail P for good (until ws_sse_reset) with RC and WHY, told in ERR. */
static int fail(ws_sse *p, int rc, const char *why, char *err, size_t errlen)
{
	if (why != p->why)
		snprintf(p->why, sizeof p->why, "%s", why);
	if (err && errlen)
		snprintf(err, errlen, "%s", p->why);
	return p->failed = rc;
}

static int too_big(ws_sse *p, char *err, size_t errlen)
{
	char why[sizeof p->why];
	snprintf(why, sizeof why, "SSE event larger than the limit of %zu bytes", p->max_event);
	return fail(p, FLAGSHM_EINVAL, why, err, errlen);
}

static int id_too_long(ws_sse *p, char *err, size_t errlen)
{
	char why[sizeof p->why];
	snprintf(why, sizeof why, "SSE id field longer than the limit of %d bytes (after %llu events)",
		 WS_SSE_MAX_ID, (unsigned long long)p->events);
	return fail(p, FLAGSHM_EINVAL, why, err, errlen);
}

static int no_mem(ws_sse *p, char *err, size_t errlen)
{
	return fail(p, FLAGSHM_ENOMEM, "out of memory in the SSE parser", err, errlen);
}

/* The line being read is an id already past WS_SSE_MAX_ID ("id:", one
 * space, the value): caught before the rest of it is buffered. */
static bool long_id_line(const ws_sse *p)
{
	return p->line.len > WS_SSE_MAX_ID + 4 && memcmp(p->line.p, "id:", 3) == 0;
}

void ws_sse_init(ws_sse *p, size_t max_event, ws_sse_fn cb, void *ud)
{
	memset(p, 0, sizeof *p);
	p->max_event = max_event;
	p->cb = cb;
	p->ud = ud;
	p->retry_ms = -1;
}

static int dispatch(ws_sse *p)
{
	ws_sse_event ev;
	int rc;

	p->ev_bytes = 0;
	if (p->id_set) { /* the event is complete: its id is the last id now */
		ws_sse_buf t = p->id;
		p->id = p->id_next;
		p->id_next = t;
		p->id_set = false;
	}
	if (p->data.len == 0) { /* no data: nothing to dispatch */
		buf_clear(&p->type);
		return 0;
	}
	p->data.p[--p->data.len] = '\0'; /* the last "\n" */
	ev.type = p->type.len ? p->type.p : "message";
	ev.data = p->data.p;
	ev.data_len = p->data.len;
	ev.id = ws_sse_last_id(p);
	p->events++;
	rc = p->cb ? p->cb(p->ud, &ev) : 0;
	buf_clear(&p->data);
	buf_clear(&p->type);
	return rc;
}

static void set_retry(ws_sse *p, const char *v, size_t n)
{
	long ms = 0;

	if (n == 0 || n > 9) /* digits only; 9 keeps it far from overflow */
		return;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return;
		ms = ms * 10 + (v[i] - '0');
	}
	p->retry_ms = ms;
}

/* One complete line, in p->line. */
static int end_line(ws_sse *p, char *err, size_t errlen)
{
	const char *l = p->line.p, *colon, *v;
	size_t n = p->line.len, fn, vn;
	int rc = 0;

	if (n == 0)
		return dispatch(p);
	if (l[0] == ':') {
		p->comments++;
		buf_clear(&p->line);
		return 0;
	}
	colon = memchr(l, ':', n);
	fn = colon ? (size_t)(colon - l) : n;
	v = colon ? colon + 1 : l + n;
	vn = colon ? n - fn - 1 : 0;
	if (vn && v[0] == ' ')
		v++, vn--;
	p->ev_bytes += n; /* feed_bytes kept ev_bytes + n within max_event */

	if (fn == 4 && memcmp(l, "data", 4) == 0) {
		if (buf_add(&p->data, v, vn) || buf_add(&p->data, "\n", 1))
			rc = no_mem(p, err, errlen);
	} else if (fn == 5 && memcmp(l, "event", 5) == 0) {
		buf_clear(&p->type);
		if (buf_add(&p->type, v, vn))
			rc = no_mem(p, err, errlen);
	} else if (fn == 2 && memcmp(l, "id", 2) == 0) {
		if (vn > WS_SSE_MAX_ID) {
			rc = id_too_long(p, err, errlen);
		} else if (!memchr(v, '\0', vn)) {
			buf_clear(&p->id_next);
			if (buf_add(&p->id_next, v, vn))
				rc = no_mem(p, err, errlen);
			else
				p->id_set = true;
		}
	} else if (fn == 5 && memcmp(l, "retry", 5) == 0) {
		set_retry(p, v, vn);
	}
	buf_clear(&p->line);
	return rc;
}

/* Bytes after the BOM check. */
static int feed_bytes(ws_sse *p, const char *b, size_t n, char *err, size_t errlen)
{
	size_t i = 0;

	while (i < n) {
		size_t j = i;
		int rc;

		if (p->seen_cr) {
			p->seen_cr = false;
			if (b[i] == '\n') {
				i++;
				continue;
			}
		}
		while (j < n && b[j] != '\n' && b[j] != '\r')
			j++;
		if (p->ev_bytes + p->line.len + (j - i) > p->max_event)
			return too_big(p, err, errlen);
		if (buf_add(&p->line, b + i, j - i))
			return no_mem(p, err, errlen);
		if (long_id_line(p))
			return id_too_long(p, err, errlen);
		if (j == n)
			break;
		p->seen_cr = b[j] == '\r';
		i = j + 1;
		rc = end_line(p, err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}

int ws_sse_feed(ws_sse *p, const void *buf, size_t n, char *err, size_t errlen)
{
	const unsigned char *b = buf;

	if (p->failed)
		return fail(p, p->failed, p->why, err, errlen);
	/* A leading BOM, which may arrive split across chunks. */
	while (p->bom_pos < BOM_DONE && n > 0) {
		if (b[0] == bom[p->bom_pos]) {
			p->bom_pos++;
			b++, n--;
			continue;
		}
		/* Not a BOM: the bytes matched so far were text. */
		size_t matched = p->bom_pos;
		int rc;
		p->bom_pos = BOM_DONE;
		rc = feed_bytes(p, (const char *)bom, matched, err, errlen);
		if (rc)
			return rc;
	}
	return feed_bytes(p, (const char *)b, n, err, errlen);
}

void ws_sse_reset(ws_sse *p)
{
	buf_clear(&p->line);
	buf_clear(&p->data);
	buf_clear(&p->type);
	p->ev_bytes = 0;
	p->seen_cr = false;
	p->bom_pos = 0;
	p->failed = 0;
	p->why[0] = '\0';
	p->id_set = false; /* the cut event's id does not count */
}

bool ws_sse_mid_event(const ws_sse *p)
{
	return p->line.len > 0 || p->ev_bytes > 0 || (p->bom_pos > 0 && p->bom_pos < BOM_DONE);
}

const char *ws_sse_last_id(const ws_sse *p)
{
	return p->id.p ? p->id.p : "";
}

void ws_sse_free(ws_sse *p)
{
	free(p->line.p);
	free(p->data.p);
	free(p->type.p);
	free(p->id.p);
	free(p->id_next.p);
	memset(p, 0, sizeof *p);
}
