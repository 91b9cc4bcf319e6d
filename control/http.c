/*
 * control/http.c - the HTTP side of flagshm-control on libmicrohttpd: a
 * thread per connection (an SSE stream may block its thread waiting for
 * the next change), the body read up to --max-body, the connection count
 * behind --max-connections, routing, replies and one log line per request.
 */
#include "server.h"
#include "text.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

const char *cs_header(cs_req *r, const char *name)
{
	return r->c ? MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, name) : NULL;
}

enum MHD_Result cs_reply_raw(cs_req *r, int status, const char *ctype, const void *p,
			     size_t n, const char *etag, bool copy)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		n, (void *)p, copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	if (ctype)
		MHD_add_response_header(resp, "Content-Type", ctype);
	if (etag)
		MHD_add_response_header(resp, "ETag", etag);
	MHD_add_response_header(resp, "X-Request-Id", r->id);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (status == 503 || status == 429)
		MHD_add_response_header(resp, "Retry-After", "1");
	ret = MHD_queue_response(r->c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	r->status = status;
	r->answered = true;
	return ret;
}

enum MHD_Result cs_reply(cs_req *r, int status, json_t *body, const char *etag)
{
	char *t = body ? json_dumps(body, JSON_COMPACT) : NULL;
	size_t n = t ? strlen(t) : 0;

	json_decref(body);
	if (t) {
		t[n] = 0;
		char *nl = realloc(t, n + 2);
		if (nl) {
			t = nl;
			t[n++] = '\n';
			t[n] = 0;
		}
	}
	return cs_reply_raw(r, status, t ? "application/json" : NULL, t ? t : "", n, etag, !t);
}

enum MHD_Result cs_error(cs_req *r, int status, const char *code, json_t *details,
			 const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return cs_reply(r, status,
			json_pack("{s:{s:s,s:s,s:o}}", "error", "code", code, "message", msg,
				  "details", details ? details : json_null()),
			NULL);
}

enum MHD_Result cs_etcd_error(cs_req *r, int rc, const char *msg)
{
	if (rc == CS_EETCD && (strstr(msg, "too many operations") || strstr(msg, "too large")))
		return cs_error(r, 413, "too_large", NULL,
				"%s: the change is larger than etcd accepts in one transaction "
				"(etcd --max-txn-ops, --max-request-bytes)", msg);
	if (rc == CS_EETCD || rc == CS_ECOMPACTED)
		return cs_error(r, 500, "etcd_error", NULL, "%s", msg);
	return cs_error(r, 503, "etcd_unavailable", NULL, "%s", msg);
}

void cs_log(const char *fmt, ...)
{
	char t[32], msg[512], clean[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fs_text_escape(clean, sizeof clean, msg, strlen(msg), FS_TEXT_PLAIN);
	cs_now(t);
	fprintf(stderr, "%s flagshm-control: %s\n", t, clean);
}

static void log_line(cs_req *r)
{
	char path[256], actor[200], t[32];
	const char *q = strchr(r->url, '?');
	size_t n = q ? (size_t)(q - r->url) : strlen(r->url);

	fs_text_escape(path, sizeof path, r->url, n, FS_TEXT_PLAIN);
	fs_text_escape(actor, sizeof actor, r->actor[0] ? r->actor : "-", strlen(r->actor[0] ? r->actor : "-"),
		       FS_TEXT_PLAIN);
	cs_now(t);
	fprintf(stderr, "%s flagshm-control: %s %s %d actor=%s id=%s %.1fms\n", t, r->method, path,
		r->status, actor, r->id, (double)(now_us() - r->t0_us) / 1000.0);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **ctx,
			 enum MHD_RequestTerminationCode toe)
{
	cs_req *r = *ctx;

	(void)cls, (void)c, (void)toe;
	if (!r)
		return;
	log_line(r);
	free(r->body);
	free(r);
	*ctx = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
			  enum MHD_ConnectionNotificationCode code)
{
	cs_server *s = cls;

	(void)c, (void)socket_ctx;
	if (code == MHD_CONNECTION_NOTIFY_STARTED)
		s->conns++;
	else if (code == MHD_CONNECTION_NOTIFY_CLOSED)
		s->conns--;
}

/* The client's X-Request-Id when it is short and tame, else a new one. */
static void request_id(cs_server *s, cs_req *r)
{
	const char *h = cs_header(r, "X-Request-Id");
	size_t n = h ? strlen(h) : 0;
	bool ok = n > 0 && n < sizeof r->id;

	for (size_t i = 0; ok && i < n; i++)
		ok = (h[i] >= 'A' && h[i] <= 'Z') || (h[i] >= 'a' && h[i] <= 'z') ||
		     (h[i] >= '0' && h[i] <= '9') || h[i] == '-' || h[i] == '_' || h[i] == '.';
	if (ok)
		snprintf(r->id, sizeof r->id, "%s", h);
	else
		snprintf(r->id, sizeof r->id, "%x-%llx", (unsigned)s->port,
			 (unsigned long long)++s->req_seq ^ ((unsigned long long)now_us() << 20));
}

static bool path_is(const char *url, const char *p)
{
	size_t n = strlen(p);
	return !strncmp(url, p, n) && (url[n] == 0 || url[n] == '?');
}

static enum MHD_Result route(cs_req *r)
{
	int a;

	if (path_is(r->url, "/healthz")) {
		bool up;
		pthread_mutex_lock(&r->s->model.mu);
		up = r->s->model.up && r->s->model.loaded;
		pthread_mutex_unlock(&r->s->model.mu);
		return cs_reply(r, up ? 200 : 503, json_pack("{s:s}", "etcd", up ? "up" : "down"),
				NULL);
	}
	if (strncmp(r->url, "/api/v1/", 8))
		return cs_error(r, 404, "not_found", NULL, "no such endpoint");
	if (!r->s->model.loaded)
		return cs_error(r, 503, "starting", NULL,
				"this instance has not read etcd yet (unreachable, or starting)");
	a = cs_auth(r);
	if (a)
		return cs_error(r, 401, "unauthorized", NULL,
				"a valid bearer token is required (Authorization: Bearer TOKEN)");
	if (path_is(r->url, "/api/v1/flags") && !strcmp(r->method, "GET"))
		return cs_serve_doc(r);
	if (path_is(r->url, "/api/v1/flags/stream") && !strcmp(r->method, "GET"))
		return cs_serve_stream(r);
	return cs_api(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *data_size, void **ctx)
{
	cs_server *s = cls;
	cs_req *r = *ctx;

	(void)version;
	if (!r) {
		const char *cl;
		r = calloc(1, sizeof *r);
		if (!r)
			return MHD_NO;
		*ctx = r;
		r->s = s;
		r->c = c;
		r->url = url;
		r->method = method;
		r->t0_us = now_us();
		request_id(s, r);
		if (s->conns > s->opt.max_connections)
			return cs_error(r, 503, "overloaded", NULL,
					"more than %u connections; retry later",
					s->opt.max_connections);
		cl = cs_header(r, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > s->opt.max_body)
			return cs_error(r, 413, "body_too_large", NULL,
					"the body is larger than the limit of %zu bytes (--max-body)",
					s->opt.max_body);
		return MHD_YES;
	}
	if (r->answered) {
		*data_size = 0;
		return MHD_YES;
	}
	if (*data_size > 0) {
		if (!r->too_big && r->len + *data_size > s->opt.max_body)
			r->too_big = true;
		if (!r->too_big) {
			if (r->len + *data_size + 1 > r->cap) {
				size_t cap = r->cap ? r->cap : 4096;
				while (cap < r->len + *data_size + 1)
					cap *= 2;
				char *p = realloc(r->body, cap);
				if (!p)
					return MHD_NO;
				r->body = p;
				r->cap = cap;
			}
			memcpy(r->body + r->len, data, *data_size);
			r->len += *data_size;
			r->body[r->len] = 0;
		}
		*data_size = 0;
		return MHD_YES;
	}
	if (r->too_big)
		return cs_error(r, 413, "body_too_large", NULL,
				"the body is larger than the limit of %zu bytes (--max-body)",
				s->opt.max_body);
	return route(r);
}

/* libmicrohttpd's own messages, one timestamped, escaped line each. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = 0;
	cs_log("http: %s", msg);
}

static char *read_pem(const char *file)
{
	FILE *f = fopen(file, "r");
	char *p = NULL;
	size_t n = 0, cap = 0;
	char b[4096];
	size_t k;

	if (!f)
		return NULL;
	while ((k = fread(b, 1, sizeof b, f)) > 0) {
		if (n + k + 1 > cap) {
			cap = (n + k + 1) * 2;
			char *q = realloc(p, cap);
			if (!q)
				break;
			p = q;
		}
		memcpy(p + n, b, k);
		n += k;
		p[n] = 0;
	}
	fclose(f);
	return p;
}

int cs_listen_parse(const char *listen, struct sockaddr_in *sa, char *err, size_t errlen)
{
	const char *colon = strrchr(listen, ':');
	char host[64], *end;
	unsigned long port;

	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	if (!colon || (size_t)(colon - listen) >= sizeof host) {
		snprintf(err, errlen, "--listen %s: expected HOST:PORT", listen);
		return -1;
	}
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = 0;
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
		snprintf(err, errlen, "--listen %s: HOST must be an IPv4 address", listen);
		return -1;
	}
	port = strtoul(colon + 1, &end, 10);
	if (end == colon + 1 || *end || port > 65535) {
		snprintf(err, errlen, "--listen %s: PORT must be a number from 0 to 65535", listen);
		return -1;
	}
	sa->sin_port = htons((uint16_t)port);
	return 0;
}

int cs_http_start(cs_server *s, char *err, size_t errlen)
{
	struct sockaddr_in sa;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_POLL | MHD_USE_ERROR_LOG;
	char *cert = NULL, *key = NULL;
	const union MHD_DaemonInfo *info;

	if (cs_listen_parse(s->opt.listen, &sa, err, errlen) < 0)
		return -1;
	if (s->opt.tls_cert || s->opt.tls_key) {
		cert = s->opt.tls_cert ? read_pem(s->opt.tls_cert) : NULL;
		key = s->opt.tls_key ? read_pem(s->opt.tls_key) : NULL;
		if (!cert || !key) {
			snprintf(err, errlen, "--tls-cert and --tls-key: both must be readable PEM files");
			free(cert);
			free(key);
			return -1;
		}
		flags |= MHD_USE_TLS;
	}
	struct MHD_OptionItem tls[] = {
		{cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, cert},
		{MHD_OPTION_HTTPS_MEM_KEY, 0, key},
		{MHD_OPTION_END, 0, NULL},
	};
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				MHD_OPTION_CONNECTION_LIMIT, s->opt.max_connections + 64,
				MHD_OPTION_CONNECTION_TIMEOUT, s->opt.client_timeout,
				/* A thread per connection: 2 MiB of stack each (a JSON
				 * body nests up to jansson's 2048 levels), not the
				 * default 8 MiB, for thousands of streams. */
				MHD_OPTION_THREAD_STACK_SIZE, (size_t)(2u << 20),
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
				MHD_OPTION_ARRAY, tls,
				MHD_OPTION_END);
	free(cert);
	free(key);
	if (!s->d) {
		snprintf(err, errlen, "--listen %s: cannot listen there", s->opt.listen);
		return -1;
	}
	info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : ntohs(sa.sin_port);
	return 0;
}

void cs_http_stop(cs_server *s)
{
	if (s->d)
		MHD_stop_daemon(s->d);
	s->d = NULL;
}
