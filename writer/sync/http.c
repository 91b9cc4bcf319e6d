/*
 * writer/sync/http.c - fetch and stream from a control plane with libcurl
 * (http.h).
 *
 * Idle (stall) detection is ours, not curl's low-speed limit: the write
 * and header callbacks stamp the time of the last byte and the progress
 * callback, which curl calls at least once a second, ends a transfer that
 * has been silent for idle_timeout_ms. The same callback polls the
 * caller's stop hook.
 */
#include "http.h"
#include "clock.h"

#include "backoff.h"
#include "flagshm.h"
#include "proto_conv.h"
#include "text.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define URL_MAX 2048
#define USER_AGENT "flagshm-writer/0.1"
#define ACCEPT_DOC "Accept: application/x-protobuf, application/json"

typedef struct xfer {
	const ws_http_opts *o;
	ws_http_resp *r;
	long idle_ms;
	int64_t last_byte_ms; /* CLOCK_MONOTONIC */
	bool stalled;
	/* fetch */
	char *buf;
	size_t len, cap;
	bool too_big;
	/* stream */
	CURL *curl;
	ws_sse *sse;
	const ws_stream_hooks *h;
	bool checked; /* status and Content-Type looked at */
	bool bad_type;
	int rc; /* a hook's, the callback's or the parser's non-zero return */
	char perr[256];
} xfer;

void ws_http_opts_default(ws_http_opts *o)
{
	if (!o->connect_timeout_ms)
		o->connect_timeout_ms = 5000;
	if (!o->timeout_ms)
		o->timeout_ms = 30000;
	if (!o->max_body)
		o->max_body = 64u << 20;
	if (!o->max_event)
		o->max_event = 64u << 20;
}

void ws_http_resp_free(ws_http_resp *r)
{
	free(r->body);
	memset(r, 0, sizeof *r);
	r->retry_after_ms = -1;
}

int ws_http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : FLAGSHM_ESYS;
}

/* "{base}{path}" with the base's trailing slashes dropped; the scheme must
 * be http or https. */
static int make_url(const char *base, const char *path, char *url, size_t n, char *err,
		    size_t errlen)
{
	size_t len;

	if (!base || (strncasecmp(base, "http://", 7) != 0 && strncasecmp(base, "https://", 8) != 0)) {
		snprintf(err, errlen, "control plane URL must start with http:// or https://");
		return FLAGSHM_EINVAL;
	}
	len = strlen(base);
	while (len > 0 && base[len - 1] == '/')
		len--;
	if (len + strlen(path) >= n) {
		snprintf(err, errlen, "control plane URL too long");
		return FLAGSHM_EINVAL;
	}
	memcpy(url, base, len);
	strcpy(url + len, path);
	return 0;
}

/* Copy header value V (N bytes, trimmed) into OUT, or leave OUT "" when it
 * does not fit. */
static void header_value(const char *v, size_t n, char *out, size_t outlen)
{
	while (n > 0 && (*v == ' ' || *v == '\t'))
		v++, n--;
	while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n >= outlen) {
		out[0] = '\0';
		return;
	}
	memcpy(out, v, n);
	out[n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
	xfer *x = ud;
	size_t n = size * nmemb;
	const char *colon = memchr(p, ':', n);
	char tmp[256];

	x->last_byte_ms = fs_clock_ms(CLOCK_MONOTONIC);
	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new response (after 100, ...) */
		x->r->etag[0] = x->r->content_type[0] = '\0';
		x->r->retry_after_ms = -1;
		return n;
	}
	if (!colon) {
		/* The end of a stream's headers: refuse a wrong Content-Type
		 * now, not at the first body byte, which may never come. */
		if (x->sse && !x->checked && (n == 2 || n == 1) && (p[0] == '\r' || p[0] == '\n')) {
			long status = 0;
			curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
			if (status == 200 && strcmp(x->r->content_type, "text/event-stream") != 0) {
				x->checked = true;
				x->r->status = status;
				x->bad_type = true;
				return 0;
			}
		}
		return n;
	}
	const char *v = colon + 1;
	size_t fn = (size_t)(colon - p), vn = n - fn - 1;
	if (fn == 4 && strncasecmp(p, "etag", 4) == 0) {
		header_value(v, vn, x->r->etag, sizeof x->r->etag);
	} else if (fn == 12 && strncasecmp(p, "content-type", 12) == 0) {
		header_value(v, vn, tmp, sizeof tmp);
		tmp[strcspn(tmp, "; \t")] = '\0';
		for (char *c = tmp; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (strlen(tmp) < sizeof x->r->content_type)
			memcpy(x->r->content_type, tmp, strlen(tmp) + 1);
		else
			strcpy(x->r->content_type, "(too long)");
	} else if (fn == 11 && strncasecmp(p, "retry-after", 11) == 0) {
		header_value(v, vn, tmp, sizeof tmp);
		x->r->retry_after_ms = ws_retry_after_parse(tmp, fs_clock_ms(CLOCK_REALTIME));
	}
	return n;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	xfer *x = ud;

	(void)dt, (void)dn, (void)ut, (void)un;
	if (x->rc) /* a write callback already failed: keep its reason */
		return 1;
	if (x->h && x->h->stop && (x->rc = x->h->stop(x->h->ud)) != 0)
		return 1;
	if (x->idle_ms > 0 && fs_clock_ms(CLOCK_MONOTONIC) - x->last_byte_ms > x->idle_ms) {
		x->stalled = true;
		return 1;
	}
	return 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	xfer *x = ud;
	size_t n = size * nmemb;

	x->last_byte_ms = fs_clock_ms(CLOCK_MONOTONIC);
	if (x->len + n > x->o->max_body) {
		x->too_big = true;
		return 0;
	}
	if (x->len + n + 1 > x->cap) {
		size_t cap = x->cap ? x->cap : 16384;
		char *b;
		while (cap < x->len + n + 1)
			cap *= 2;
		b = realloc(x->buf, cap);
		if (!b) {
			x->rc = FLAGSHM_ENOMEM;
			return 0;
		}
		x->buf = b;
		x->cap = cap;
	}
	memcpy(x->buf + x->len, p, n);
	x->len += n;
	x->buf[x->len] = '\0';
	return n;
}

static size_t on_stream(char *p, size_t size, size_t nmemb, void *ud)
{
	xfer *x = ud;
	size_t n = size * nmemb;

	x->last_byte_ms = fs_clock_ms(CLOCK_MONOTONIC);
	if (!x->checked) {
		x->checked = true;
		curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &x->r->status);
		if (x->r->status != 200)
			return 0;
		if (strcmp(x->r->content_type, "text/event-stream") != 0) {
			x->bad_type = true;
			return 0;
		}
	}
	x->rc = ws_sse_feed(x->sse, p, n, x->perr, sizeof x->perr);
	x->r->events = x->sse->events;
	if (x->rc)
		return 0;
	if (x->h && x->h->after_chunk && (x->rc = x->h->after_chunk(x->h->ud)) != 0)
		return 0;
	return n;
}

/* The options both requests share. */
static CURL *new_handle(const ws_http_opts *o, const char *url, xfer *x, char *cerr)
{
	CURL *c = curl_easy_init();

	if (!c)
		return NULL;
	curl_easy_setopt(c, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (o->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_USERAGENT, USER_AGENT);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	return c;
}

/* Headers: Authorization (when there is a key) plus EXTRA (NULL-ended). */
static struct curl_slist *headers(const ws_http_opts *o, const char *const *extra, bool *oom)
{
	struct curl_slist *l = NULL, *t;
	char auth[WS_KEY_MAX + 32];

	*oom = false;
	if (o->key && o->key[0]) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", o->key);
		l = curl_slist_append(l, auth);
		memset(auth, 0, sizeof auth); /* keep no stray copy of the key */
		if (!l)
			goto fail;
	}
	for (; *extra; extra++) {
		if (!(t = curl_slist_append(l, *extra)))
			goto fail;
		l = t;
	}
	return l;
fail:
	curl_slist_free_all(l);
	*oom = true;
	return NULL;
}

static const char *status_hint(long status)
{
	if (status == 401 || status == 403)
		return " (check the SDK key)";
	if (status == 429 || status == 503)
		return " (the control plane asks to slow down)";
	return "";
}

static bool doc_type(const char *t)
{
	return strcmp(t, "application/x-protobuf") == 0 || strcmp(t, "application/protobuf") == 0 ||
	       strcmp(t, "application/json") == 0;
}

int ws_http_fetch(const ws_http_opts *opts, const char *etag, ws_http_resp *r, char *err,
		  size_t errlen)
{
	ws_http_opts o = *opts;
	char url[URL_MAX], shown[URL_MAX], inm[300], cerr[CURL_ERROR_SIZE] = "";
	const char *extra[3] = {ACCEPT_DOC, NULL, NULL};
	struct curl_slist *hl;
	xfer x;
	CURL *c;
	CURLcode res;
	bool oom;
	int rc;

	memset(r, 0, sizeof *r);
	r->retry_after_ms = -1;
	ws_http_opts_default(&o);
	rc = make_url(o.url, "/api/v1/flags", url, sizeof url, err, errlen);
	if (rc)
		return rc;
	fs_text_redact(shown, sizeof shown, url); /* for messages: no password */
	if (etag && etag[0] && strlen(etag) < 256 && !strpbrk(etag, "\r\n")) {
		snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
		extra[1] = inm;
	}
	ws_stream_hooks stop_hook = {.stop = o.fetch_stop, .ud = o.fetch_stop_ud};
	memset(&x, 0, sizeof x);
	x.o = &o;
	x.r = r;
	x.h = o.fetch_stop ? &stop_hook : NULL;
	x.idle_ms = o.idle_timeout_ms ? o.idle_timeout_ms : 30000;
	x.last_byte_ms = fs_clock_ms(CLOCK_MONOTONIC);
	hl = headers(&o, extra, &oom);
	c = oom ? NULL : new_handle(&o, url, &x, cerr);
	if (!c) {
		curl_slist_free_all(hl);
		snprintf(err, errlen, "out of memory");
		return FLAGSHM_ENOMEM;
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o.timeout_ms);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o.max_body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
	res = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hl);

	if (x.rc == FLAGSHM_ENOMEM) {
		rc = FLAGSHM_ENOMEM;
		snprintf(err, errlen, "out of memory reading %s", shown);
	} else if (x.too_big || res == CURLE_FILESIZE_EXCEEDED) {
		rc = FLAGSHM_EINVAL;
		snprintf(err, errlen, "%s: the document is larger than the limit of %zu bytes", shown,
			 o.max_body);
	} else if (x.rc) { /* fetch_stop */
		rc = FLAGSHM_EUNAVAIL;
		snprintf(err, errlen, "%s: interrupted", shown);
	} else if (x.stalled) {
		rc = FLAGSHM_EUNAVAIL;
		snprintf(err, errlen, "%s: no data for %ld ms", shown, x.idle_ms);
	} else if (res != CURLE_OK) {
		rc = FLAGSHM_EUNAVAIL;
		snprintf(err, errlen, "%s: %s", shown, cerr[0] ? cerr : curl_easy_strerror(res));
	} else if (r->status == 304) {
		rc = WS_HTTP_NOT_MODIFIED;
	} else if (r->status != 200) {
		rc = FLAGSHM_EUNAVAIL;
		snprintf(err, errlen, "%s: HTTP %ld%s", shown, r->status, status_hint(r->status));
	} else if (!doc_type(r->content_type)) {
		rc = FLAGSHM_EINVAL;
		snprintf(err, errlen, "%s: unexpected Content-Type \"%s\" (want application/x-protobuf or application/json)",
			 shown, r->content_type);
	} else {
		r->body = x.buf;
		r->body_len = x.len;
		x.buf = NULL;
		if (!r->body && !(r->body = calloc(1, 1))) {
			snprintf(err, errlen, "out of memory");
			rc = FLAGSHM_ENOMEM;
		}
	}
	free(x.buf);
	return rc;
}

int ws_http_doc(const ws_http_resp *r, const char *label, const wc_limits *lim, json_t **doc,
		wc_errors *errs)
{
	char why[512];

	*doc = NULL;
	if (strcmp(r->content_type, "application/json") == 0)
		return wc_load_buffer(r->body, r->body_len, label, lim, doc, errs) ? FLAGSHM_EINVAL : 0;
	if (!doc_type(r->content_type)) {
		wc_errors_add(errs, "%s: unexpected Content-Type \"%s\"", label, r->content_type);
		return FLAGSHM_EINVAL;
	}
	if (lim && r->body_len > lim->max_doc_bytes) {
		wc_errors_add(errs, "%s: %zu bytes, more than the limit max_doc_bytes (%zu)", label,
			      r->body_len, lim->max_doc_bytes);
		return FLAGSHM_EINVAL;
	}
	if (ws_proto_decode((const uint8_t *)r->body, r->body_len, lim, doc, why, sizeof why) != 0) {
		wc_errors_add(errs, "%s: %s", label, why);
		return FLAGSHM_EINVAL;
	}
	return 0;
}

int ws_http_stream(const ws_http_opts *opts, ws_sse *sse, const ws_stream_hooks *h,
		   ws_http_resp *r, char *err, size_t errlen)
{
	ws_http_opts o = *opts;
	char url[URL_MAX], shown[URL_MAX], lei[300], cerr[CURL_ERROR_SIZE] = "";
	const char *extra[4] = {"Accept: text/event-stream", "Cache-Control: no-cache", NULL, NULL};
	const char *id = ws_sse_last_id(sse);
	struct curl_slist *hl;
	xfer x;
	CURL *c;
	CURLcode res;
	bool oom, mid;
	int rc;

	memset(r, 0, sizeof *r);
	r->retry_after_ms = -1;
	ws_http_opts_default(&o);
	rc = make_url(o.url, "/api/v1/flags/stream", url, sizeof url, err, errlen);
	if (rc)
		return rc;
	fs_text_redact(shown, sizeof shown, url); /* for messages: no password */
	ws_sse_reset(sse);
	if (id[0] && strlen(id) < 256 && !strpbrk(id, "\r\n")) {
		snprintf(lei, sizeof lei, "Last-Event-ID: %s", id);
		extra[2] = lei;
	}
	memset(&x, 0, sizeof x);
	x.o = &o;
	x.r = r;
	x.sse = sse;
	x.h = h;
	x.idle_ms = o.idle_timeout_ms ? o.idle_timeout_ms : 90000;
	x.last_byte_ms = fs_clock_ms(CLOCK_MONOTONIC);
	hl = headers(&o, extra, &oom);
	c = oom ? NULL : new_handle(&o, url, &x, cerr);
	if (!c) {
		curl_slist_free_all(hl);
		snprintf(err, errlen, "out of memory");
		return FLAGSHM_ENOMEM;
	}
	x.curl = c;
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
	res = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hl);
	mid = ws_sse_mid_event(sse);

	if (x.rc == FLAGSHM_EINVAL || x.rc == FLAGSHM_ENOMEM) {
		snprintf(err, errlen, "%s: %s", shown, x.perr[0] ? x.perr : "out of memory");
		return x.rc;
	}
	if (x.rc) /* a hook's or the event callback's */
		return x.rc;
	if (x.bad_type) {
		snprintf(err, errlen, "%s: unexpected Content-Type \"%s\" (want text/event-stream)", shown,
			 r->content_type);
		return FLAGSHM_EINVAL;
	}
	if (r->status && r->status != 200) {
		snprintf(err, errlen, "%s: HTTP %ld%s", shown, r->status, status_hint(r->status));
		return FLAGSHM_EUNAVAIL;
	}
	if (x.stalled) {
		snprintf(err, errlen, "%s: stream stalled: no data for %ld ms%s", shown, x.idle_ms,
			 mid ? ", in the middle of an event (dropped)" : "");
		return FLAGSHM_EUNAVAIL;
	}
	if (res != CURLE_OK && !(res == CURLE_WRITE_ERROR && x.checked)) {
		snprintf(err, errlen, "%s: %s%s", shown, cerr[0] ? cerr : curl_easy_strerror(res),
			 mid ? ", in the middle of an event (dropped)" : "");
		return FLAGSHM_EUNAVAIL;
	}
	if (r->status == 200 && strcmp(r->content_type, "text/event-stream") != 0) {
		snprintf(err, errlen, "%s: unexpected Content-Type \"%s\" (want text/event-stream)", shown,
			 r->content_type);
		return FLAGSHM_EINVAL;
	}
	snprintf(err, errlen, "%s: the server closed the stream%s", shown,
		 mid ? " in the middle of an event (dropped)" : "");
	return FLAGSHM_EUNAVAIL;
}

int ws_key_load(const char *key_file, char *key, size_t keylen, char *err, size_t errlen)
{
	char buf[WS_KEY_MAX + 2];
	const char *src = key_file ? key_file : "$" WS_KEY_ENV;
	char *s = buf, *e;
	size_t n;

	key[0] = '\0';
	if (key_file) {
		FILE *f = fopen(key_file, "re");
		if (!f) {
			snprintf(err, errlen, "cannot read key file %s: %s", key_file, strerror(errno));
			return FLAGSHM_ESYS;
		}
		if (!fgets(buf, sizeof buf, f))
			buf[0] = '\0';
		fclose(f);
	} else {
		const char *v = getenv(WS_KEY_ENV);
		if (!v) {
			snprintf(err, errlen, "no SDK key: give --key-file or set %s", WS_KEY_ENV);
			return FLAGSHM_EINVAL;
		}
		snprintf(buf, sizeof buf, "%s", v);
	}
	while (*s && isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	n = (size_t)(e - s);
	if (n == 0 || n >= keylen || n >= WS_KEY_MAX) {
		snprintf(err, errlen, "the SDK key from %s is empty or longer than %d characters", src,
			 WS_KEY_MAX - 1);
		memset(buf, 0, sizeof buf);
		return FLAGSHM_EINVAL;
	}
	for (const char *p = s; p < e; p++) {
		if (*p < 0x21 || *p > 0x7e) {
			snprintf(err, errlen,
				 "the SDK key from %s has a character that is not printable ASCII "
				 "(at position %zu)",
				 src, (size_t)(p - s) + 1);
			memset(buf, 0, sizeof buf);
			return FLAGSHM_EINVAL;
		}
	}
	memcpy(key, s, n + 1);
	memset(buf, 0, sizeof buf);
	return 0;
}
