/*
 * tests/cp_server.c - the test control plane of cp_server.h.
 *
 * libmicrohttpd runs a thread per connection, so the stream's content
 * reader may block: it waits on a condition variable, 100 ms at a time,
 * for bytes to send, a close, or the server stopping.
 */
#include "cp_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cp_server {
	struct MHD_Daemon *d;
	char url[64];
	unsigned port;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char key[256]; /* "" = none required */
	char *doc;
	size_t doc_len;
	char ctype[64], etag[128];
	int doc_status, doc_delay_ms;
	char doc_retry[64];
	int stream_status;
	char stream_retry[64], stream_ctype[64];
	char *q; /* bytes queued for the stream */
	size_t q_len, q_cap;
	bool close_pending; /* end a stream once the queue is empty */
	bool close_abrupt;
	bool stopping;
	cp_seen seen;
};

typedef struct stream_conn {
	cp_server *s;
	int seq; /* the stream_requests count when it was accepted */
} stream_conn;

static void copy_header(struct MHD_Connection *c, const char *name, char *out, size_t n)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
	snprintf(out, n, "%s", v ? v : "");
}

/* Wait on the server's condition until WHEN (CLOCK_REALTIME) or a signal. */
static void wait_until(cp_server *s, const struct timespec *when)
{
	pthread_cond_timedwait(&s->cv, &s->mu, when);
}

static struct timespec after_ms(int ms)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L)
		t.tv_sec++, t.tv_nsec -= 1000000000L;
	return t;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	stream_conn *sc = cls;
	cp_server *s = sc->s;
	ssize_t r;

	(void)pos;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		struct timespec t;
		/* A newer stream connection supersedes this one (its client
		 * went away without us noticing): queued bytes are the new
		 * connection's. */
		if (s->stopping || sc->seq != s->seen.stream_requests) {
			r = MHD_CONTENT_READER_END_WITH_ERROR;
			break;
		}
		if (s->q_len > 0) {
			size_t n = s->q_len < max ? s->q_len : max;
			memcpy(buf, s->q, n);
			memmove(s->q, s->q + n, s->q_len - n);
			s->q_len -= n;
			r = (ssize_t)n;
			break;
		}
		if (s->close_pending) {
			s->close_pending = false;
			r = s->close_abrupt ? MHD_CONTENT_READER_END_WITH_ERROR
					    : MHD_CONTENT_READER_END_OF_STREAM;
			break;
		}
		t = after_ms(100);
		wait_until(s, &t);
	}
	pthread_mutex_unlock(&s->mu);
	return r;
}

static enum MHD_Result reply(struct MHD_Connection *c, int status, const char *ctype,
			     const void *body, size_t n, const char *etag, const char *retry)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(n, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (ctype && ctype[0])
		MHD_add_response_header(r, "Content-Type", ctype);
	if (etag && etag[0])
		MHD_add_response_header(r, "ETag", etag);
	if (retry && retry[0])
		MHD_add_response_header(r, "Retry-After", retry);
	ret = MHD_queue_response(c, (unsigned)status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result serve_doc(cp_server *s, struct MHD_Connection *c)
{
	enum MHD_Result ret;

	pthread_mutex_lock(&s->mu);
	if (s->doc_delay_ms > 0) {
		struct timespec t = after_ms(s->doc_delay_ms);
		struct timespec now;
		for (;;) {
			clock_gettime(CLOCK_REALTIME, &now);
			if (s->stopping || now.tv_sec > t.tv_sec ||
			    (now.tv_sec == t.tv_sec && now.tv_nsec >= t.tv_nsec))
				break;
			wait_until(s, &t);
		}
	}
	if (s->doc_status)
		ret = reply(c, s->doc_status, "text/plain", "forced", 6, NULL, s->doc_retry);
	else if (s->etag[0] && strcmp(s->seen.if_none_match, s->etag) == 0)
		s->seen.doc_not_modified++, ret = reply(c, 304, NULL, "", 0, s->etag, NULL);
	else
		ret = reply(c, 200, s->ctype, s->doc ? s->doc : "", s->doc_len, s->etag, NULL);
	pthread_mutex_unlock(&s->mu);
	return ret;
}

static enum MHD_Result serve_stream(cp_server *s, struct MHD_Connection *c)
{
	struct MHD_Response *r;
	stream_conn *sc;
	enum MHD_Result ret;
	int status;
	char ctype[64], retry[64];

	pthread_mutex_lock(&s->mu);
	status = s->stream_status ? s->stream_status : 200;
	snprintf(ctype, sizeof ctype, "%s", s->stream_ctype[0] ? s->stream_ctype : "text/event-stream");
	snprintf(retry, sizeof retry, "%s", s->stream_retry);
	pthread_mutex_unlock(&s->mu);
	if (status != 200)
		return reply(c, status, "text/plain", "forced", 6, NULL, retry);
	sc = malloc(sizeof *sc);
	if (!sc)
		return MHD_NO;
	sc->s = s;
	pthread_mutex_lock(&s->mu);
	sc->seq = s->seen.stream_requests;
	pthread_mutex_unlock(&s->mu);
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, sc, free);
	MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	cp_server *s = cls;
	bool stream = strcmp(url, "/api/v1/flags/stream") == 0;
	char want[300];
	bool authorized;

	(void)version, (void)upload, (void)upload_size, (void)con_cls;
	if (strcmp(method, "GET") != 0)
		return reply(c, 405, "text/plain", "GET only", 8, NULL, NULL);
	pthread_mutex_lock(&s->mu);
	copy_header(c, "Authorization", s->seen.authorization, sizeof s->seen.authorization);
	copy_header(c, "If-None-Match", s->seen.if_none_match, sizeof s->seen.if_none_match);
	copy_header(c, "Accept", s->seen.accept, sizeof s->seen.accept);
	copy_header(c, "Last-Event-ID", s->seen.last_event_id, sizeof s->seen.last_event_id);
	if (stream)
		s->seen.stream_requests++;
	else
		s->seen.doc_requests++;
	if (!stream && s->seen.if_none_match[0])
		s->seen.doc_conditional++;
	snprintf(want, sizeof want, "Bearer %s", s->key);
	authorized = !s->key[0] || strcmp(s->seen.authorization, want) == 0;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);

	if (!authorized)
		return reply(c, 401, "text/plain", "unauthorized", 12, NULL, NULL);
	if (stream)
		return serve_stream(s, c);
	if (strcmp(url, "/api/v1/flags") == 0)
		return serve_doc(s, c);
	return reply(c, 404, "text/plain", "not found", 9, NULL, NULL);
}

cp_server *cp_start(void)
{
	return cp_start_on(0);
}

unsigned cp_port(const cp_server *s)
{
	return s->port;
}

cp_server *cp_start_on(unsigned port)
{
	cp_server *s = calloc(1, sizeof *s);
	struct sockaddr_in addr;
	const union MHD_DaemonInfo *info;

	if (!s)
		return NULL;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	snprintf(s->ctype, sizeof s->ctype, "application/json");
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
				NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, &addr,
				MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
	info = s->d ? MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
	if (!info || info->port == 0) {
		if (s->d)
			MHD_stop_daemon(s->d);
		free(s);
		return NULL;
	}
	s->port = info->port;
	snprintf(s->url, sizeof s->url, "http://127.0.0.1:%u", (unsigned)info->port);
	return s;
}

void cp_stop(cp_server *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	MHD_stop_daemon(s->d);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->doc);
	free(s->q);
	free(s);
}

const char *cp_url(const cp_server *s)
{
	return s->url;
}

void cp_set_key(cp_server *s, const char *key)
{
	pthread_mutex_lock(&s->mu);
	snprintf(s->key, sizeof s->key, "%s", key ? key : "");
	pthread_mutex_unlock(&s->mu);
}

void cp_set_doc(cp_server *s, const char *content_type, const void *body, size_t n,
		const char *etag)
{
	char *copy = malloc(n + 1);

	if (!copy)
		abort();
	memcpy(copy, body, n);
	pthread_mutex_lock(&s->mu);
	free(s->doc);
	s->doc = copy;
	s->doc_len = n;
	snprintf(s->ctype, sizeof s->ctype, "%s", content_type ? content_type : "");
	snprintf(s->etag, sizeof s->etag, "%s", etag ? etag : "");
	pthread_mutex_unlock(&s->mu);
}

void cp_set_doc_status(cp_server *s, int status, const char *retry_after)
{
	pthread_mutex_lock(&s->mu);
	s->doc_status = status;
	snprintf(s->doc_retry, sizeof s->doc_retry, "%s", retry_after ? retry_after : "");
	pthread_mutex_unlock(&s->mu);
}

void cp_set_doc_delay(cp_server *s, int delay_ms)
{
	pthread_mutex_lock(&s->mu);
	s->doc_delay_ms = delay_ms;
	pthread_mutex_unlock(&s->mu);
}

void cp_set_stream_status(cp_server *s, int status, const char *retry_after,
			  const char *content_type)
{
	pthread_mutex_lock(&s->mu);
	s->stream_status = status;
	snprintf(s->stream_retry, sizeof s->stream_retry, "%s", retry_after ? retry_after : "");
	snprintf(s->stream_ctype, sizeof s->stream_ctype, "%s", content_type ? content_type : "");
	pthread_mutex_unlock(&s->mu);
}

void cp_stream_push(cp_server *s, const void *b, size_t n)
{
	pthread_mutex_lock(&s->mu);
	if (s->q_len + n > s->q_cap) {
		size_t cap = s->q_cap ? s->q_cap : 4096;
		while (cap < s->q_len + n)
			cap *= 2;
		s->q = realloc(s->q, cap);
		if (!s->q)
			abort();
		s->q_cap = cap;
	}
	memcpy(s->q + s->q_len, b, n);
	s->q_len += n;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

void cp_stream_push_str(cp_server *s, const char *str)
{
	cp_stream_push(s, str, strlen(str));
}

void cp_stream_close(cp_server *s, bool abrupt)
{
	pthread_mutex_lock(&s->mu);
	s->close_pending = true;
	s->close_abrupt = abrupt;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

bool cp_wait_streams(cp_server *s, int n, int timeout_ms)
{
	struct timespec t = after_ms(timeout_ms);
	bool ok;
	int rounds = timeout_ms / 10 + 2; /* bounded in count as well as time */

	pthread_mutex_lock(&s->mu);
	while (s->seen.stream_requests < n && !s->stopping && rounds-- > 0) {
		if (pthread_cond_timedwait(&s->cv, &s->mu, &t) != 0)
			break;
	}
	ok = s->seen.stream_requests >= n;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

cp_seen cp_get_seen(cp_server *s)
{
	cp_seen v;
	pthread_mutex_lock(&s->mu);
	v = s->seen;
	pthread_mutex_unlock(&s->mu);
	return v;
}
