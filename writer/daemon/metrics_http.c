/*
 * writer/daemon/metrics_http.c - the /metrics endpoint (metrics_http.h).
 *
 * libmicrohttpd with its internal polling thread (epoll): one thread for
 * every connection, so renders are serialised and at most one exposition
 * is being built at a time; each finished one is handed to the library
 * to send and freed when sent or when its client goes away.
 */
#include "metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A connection, from accept to close, for the request deadline. */
typedef struct conn {
	struct conn *prev, *next;
	int fd;
	int64_t since_ms; /* monotonic: accepted, or its last request completed */
	bool cut;	  /* shut down by the watchdog */
} conn;

struct wd_http {
	struct MHD_Daemon *d;
	wd_metrics *m;
	void (*log)(const char *line);
	/* The watchdog: every second, shuts down the sockets of connections
	 * WD_HTTP_REQUEST_S into one request. The server thread adds and
	 * removes connections (notify callbacks) under mu; the socket is
	 * closed only after its CLOSED notification, so the watchdog never
	 * shuts down a descriptor number that was reused. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	conn *conns;
	/* One exposition's buffer kept from the last scrape (under mu): a
	 * large exposition rendered into fresh memory costs more in page
	 * faults than in rendering (BENCHMARKS.md). */
	wd_buf spare;
	bool have_spare;
	/* The last exposition, served again to every scrape within
	 * WD_HTTP_REUSE_MS (under mu; the library counts its users), and
	 * how many rendered bodies are still held by connections: past
	 * WD_HTTP_BODIES a scrape is answered 503, so clients that do not
	 * read cannot make the writer hold one exposition each. */
	struct MHD_Response *last;
	int64_t last_ms;
	int bodies;
	bool stopping;
	bool have_watchdog;
	pthread_t watchdog;
};

/* ----------------------------------------------------------- listen */

static int parse_port(const char *p, char *err, size_t errlen, const char *spec)
{
	char *end;
	errno = 0;
	long v = strtol(p, &end, 10);
	if (!*p || *end || errno || v < 0 || v > 65535) {
		snprintf(err, errlen, "--metrics-listen '%s': expected ADDR:PORT with PORT 0-65535 "
			 "(e.g. 127.0.0.1:9464; 0: any free port)", spec);
		return -2;
	}
	return (int)v;
}

int wd_http_listen(const char *spec, char *shown, size_t shownlen, char *err, size_t errlen)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	char host[64];
	const char *port_s;
	socklen_t sl;

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (!close || close[1] != ':' || (size_t)(close - spec - 1) >= sizeof host)
			goto bad;
		memcpy(host, spec + 1, (size_t)(close - spec - 1));
		host[close - spec - 1] = '\0';
		port_s = close + 2;
	} else {
		const char *colon = strrchr(spec, ':');
		size_t hl = colon ? (size_t)(colon - spec) : 0;
		if (hl >= sizeof host || (colon && memchr(spec, ':', hl)))
			goto bad; /* an IPv6 address without brackets */
		memcpy(host, spec, hl); /* hl < sizeof host, checked above */
		host[hl] = '\0';
		port_s = colon ? colon + 1 : spec;
	}
	int port = parse_port(port_s, err, errlen, spec);
	if (port < 0)
		return -2;
	if (spec[0] == '[') {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &v6->sin6_addr) != 1)
			goto bad;
		sl = sizeof *v6;
	} else {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		if (!host[0] || strcmp(host, "localhost") == 0)
			v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		else if (inet_pton(AF_INET, host, &v4->sin_addr) != 1)
			goto bad;
		sl = sizeof *v4;
	}

	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0) {
		snprintf(err, errlen, "--metrics-listen '%s': socket: %s", spec, strerror(errno));
		return -1;
	}
	/* SO_REUSEADDR lets a restarted writer bind while its predecessor's
	 * connections linger in TIME_WAIT; on Linux it never lets two sockets
	 * listen on one port, so a port in use is still refused. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 64) != 0) {
		int e = errno;
		if (e == EADDRINUSE)
			snprintf(err, errlen, "--metrics-listen '%s': the port is in use by another "
				 "process; stop it or choose another port", spec);
		else
			snprintf(err, errlen, "--metrics-listen '%s': cannot listen: %s", spec,
				 strerror(e));
		close(fd);
		return -1;
	}
	char a[INET6_ADDRSTRLEN];
	sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		snprintf(shown, shownlen, "%s", spec);
	else if (ss.ss_family == AF_INET6)
		snprintf(shown, shownlen, "[%s]:%u", inet_ntop(AF_INET6, &v6->sin6_addr, a, sizeof a),
			 ntohs(v6->sin6_port));
	else
		snprintf(shown, shownlen, "%s:%u", inet_ntop(AF_INET, &v4->sin_addr, a, sizeof a),
			 ntohs(v4->sin_port));
	return fd;
bad:
	snprintf(err, errlen, "--metrics-listen '%s': expected ADDR:PORT, [IPv6]:PORT or PORT "
		 "with a numeric address (e.g. 127.0.0.1:9464)", spec);
	return -2;
}

/* ----------------------------------------------------------- serve */

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *text,
			      const char *allow)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text,
								 MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* The largest buffer kept for the next scrape. */
#define SPARE_MAX ((size_t)64 << 20)

/* A rendered exposition being sent, until the library lets it go. */
typedef struct body {
	wd_http *h;
	wd_buf b;
} body;

static wd_buf take_buffer(wd_http *h)
{
	wd_buf b;
	pthread_mutex_lock(&h->mu);
	if (h->have_spare) {
		b = h->spare;
		h->have_spare = false;
		pthread_mutex_unlock(&h->mu);
		b.len = 0;
		b.over = false;
		if (b.p)
			b.p[0] = '\0';
		return b;
	}
	pthread_mutex_unlock(&h->mu);
	wd_buf_init(&b, WD_HTTP_MAX_BODY);
	return b;
}

static void give_buffer(wd_http *h, wd_buf *b)
{
	pthread_mutex_lock(&h->mu);
	if (!h->have_spare && b->cap <= SPARE_MAX && !b->borrowed) {
		h->spare = *b;
		h->have_spare = true;
		*b = (wd_buf){ 0 };
	}
	pthread_mutex_unlock(&h->mu);
	wd_buf_free(b);
}

/* The library is done with a response body (sent to every connection
 * that was given it, or their clients gone). */
static void body_done(void *cls)
{
	body *bd = cls;
	pthread_mutex_lock(&bd->h->mu);
	bd->h->bodies--;
	pthread_mutex_unlock(&bd->h->mu);
	give_buffer(bd->h, &bd->b);
	free(bd);
}

static int64_t mono_ms(void);

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	wd_http *h = cls;
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;

	/* Answered at the first call, with the headers: a body is never
	 * read (the library closes a connection whose body it skipped). */
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return answer(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD are allowed\n",
			      "GET, HEAD");
	if (strcmp(url, "/metrics") != 0)
		return answer(c, MHD_HTTP_NOT_FOUND, "not found: this server has only /metrics\n",
			      NULL);

	/* Every connection is served from this one thread: mu only guards
	 * against body_done from MHD_stop_daemon and the watchdog. */
	pthread_mutex_lock(&h->mu);
	if (h->last && mono_ms() - h->last_ms < WD_HTTP_REUSE_MS) {
		struct MHD_Response *same = h->last;
		pthread_mutex_unlock(&h->mu);
		return MHD_queue_response(c, MHD_HTTP_OK, same);
	}
	bool busy = h->bodies >= WD_HTTP_BODIES;
	pthread_mutex_unlock(&h->mu);
	if (busy) {
		static const char text[] = "too many slow scrapers; retry\n";
		struct MHD_Response *r = MHD_create_response_from_buffer(
			sizeof text - 1, (void *)text, MHD_RESPMEM_PERSISTENT);
		if (!r)
			return MHD_NO;
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
		enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_SERVICE_UNAVAILABLE, r);
		MHD_destroy_response(r);
		return ret;
	}

	wd_buf b = take_buffer(h);
	if (wd_metrics_render(h->m, &b) != 0) {
		give_buffer(h, &b);
		if (h->log) {
			char line[160];
			snprintf(line, sizeof line, "metrics: the exposition needs more than %zu bytes "
				 "(or memory ran out); answered 500", WD_HTTP_MAX_BODY);
			h->log(line);
		}
		return answer(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
			      "the exposition is larger than this exporter's bound\n", NULL);
	}
	body *bd = malloc(sizeof *bd);
	struct MHD_Response *r = NULL;
	if (bd) {
		*bd = (body){ .h = h, .b = b };
		r = MHD_create_response_from_buffer_with_free_callback_cls(
			b.len, b.p ? b.p : (void *)"", body_done, bd);
	}
	if (!r) {
		free(bd);
		give_buffer(h, &b);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; version=0.0.4; charset=utf-8");
	pthread_mutex_lock(&h->mu);
	h->bodies++;
	struct MHD_Response *old = h->last;
	h->last = r; /* our reference, dropped when the next one replaces it */
	h->last_ms = mono_ms();
	pthread_mutex_unlock(&h->mu);
	if (old)
		MHD_destroy_response(old);
	return MHD_queue_response(c, MHD_HTTP_OK, r);
}

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	wd_http *h = cls;
	conn *k = *socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (!ci || !(k = calloc(1, sizeof *k)))
			return; /* not watched: the idle timeout still applies */
		k->fd = ci->connect_fd;
		k->since_ms = mono_ms();
		pthread_mutex_lock(&h->mu);
		k->next = h->conns;
		if (h->conns)
			h->conns->prev = k;
		h->conns = k;
		pthread_mutex_unlock(&h->mu);
		*socket_context = k;
	} else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && k) {
		pthread_mutex_lock(&h->mu);
		if (k->prev)
			k->prev->next = k->next;
		else
			h->conns = k->next;
		if (k->next)
			k->next->prev = k->prev;
		pthread_mutex_unlock(&h->mu);
		free(k);
		*socket_context = NULL;
	}
}

/* A request ended: the next one on this connection gets its own time. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	wd_http *h = cls;
	(void)con_cls;
	(void)toe;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	conn *k = ci ? ci->socket_context : NULL;
	if (k) {
		pthread_mutex_lock(&h->mu);
		k->since_ms = mono_ms();
		pthread_mutex_unlock(&h->mu);
	}
}

static void *watchdog(void *arg)
{
	wd_http *h = arg;
	pthread_mutex_lock(&h->mu);
	while (!h->stopping) {
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_sec += 1;
		pthread_cond_timedwait(&h->cv, &h->mu, &t);
		int64_t now = mono_ms();
		for (conn *k = h->conns; k; k = k->next)
			if (!k->cut && now - k->since_ms > (int64_t)WD_HTTP_REQUEST_S * 1000) {
				/* The server thread sees the end of the stream
				 * and closes the connection itself. */
				shutdown(k->fd, SHUT_RDWR);
				k->cut = true;
			}
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

wd_http *wd_http_start(int fd, wd_metrics *m, void (*log)(const char *line), char *err,
		       size_t errlen)
{
	wd_http *h = calloc(1, sizeof *h);
	if (!h) {
		snprintf(err, errlen, "metrics: out of memory");
		close(fd);
		return NULL;
	}
	h->m = m;
	h->log = log;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);

	/* The server thread inherits our signal mask: with every signal
	 * blocked there, SIGTERM and SIGHUP stay for the daemon's signalfd
	 * and never kill the process from that thread. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL,
				handle, h,
				MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)WD_HTTP_CONNS,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)WD_HTTP_CONNS_PER_IP,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)WD_HTTP_IDLE_S,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)WD_HTTP_CONN_MEMORY,
				MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
				MHD_OPTION_END);
	if (h->d)
		h->have_watchdog = pthread_create(&h->watchdog, NULL, watchdog, h) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!h->d || !h->have_watchdog) {
		snprintf(err, errlen, "metrics: cannot start the HTTP server (libmicrohttpd)%s",
			 h->d ? ": no thread for its watchdog" : "");
		if (h->d)
			MHD_stop_daemon(h->d);
		else
			close(fd);
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		free(h);
		return NULL;
	}
	return h;
}

void wd_http_stop(wd_http **hp)
{
	wd_http *h = *hp;
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->stopping = true;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->watchdog, NULL);
	MHD_stop_daemon(h->d); /* closes the listening socket and every connection */
	if (h->last)
		MHD_destroy_response(h->last); /* the last reference: body_done runs */
	if (h->have_spare)
		wd_buf_free(&h->spare);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
	*hp = NULL;
}
