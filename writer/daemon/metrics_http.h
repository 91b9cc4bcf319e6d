/*
 * writer/daemon/metrics_http.h - `--metrics-listen ADDR:PORT`: GET /metrics
 * in the Prometheus text format, served by libmicrohttpd on a thread of
 * its own (so a scrape, however slow its client, never delays a publish).
 *
 * Every client is assumed hostile: at most WD_HTTP_CONNS connections
 * (WD_HTTP_CONNS_PER_IP from one address), each closed after
 * WD_HTTP_IDLE_S seconds without progress or WD_HTTP_REQUEST_S seconds
 * into one request (a client trickling a byte at a time cannot hold a
 * connection longer), request headers bounded by
 * WD_HTTP_CONN_MEMORY bytes (a larger request is answered 431 by the
 * library and closed), no request body read, one render at a time of at
 * most WD_HTTP_MAX_BODY bytes, shared by the scrapes of the next
 * WD_HTTP_REUSE_MS, and at most WD_HTTP_BODIES renders held by clients
 * that are slow to read them (then 503 with Retry-After). Paths other
 * than /metrics answer 404, methods other than GET and HEAD 405.
 */
#ifndef FLAGSHM_WRITER_METRICS_HTTP_H
#define FLAGSHM_WRITER_METRICS_HTTP_H

#include "metrics.h"

#include <stddef.h>

#define WD_HTTP_CONNS 32
#define WD_HTTP_CONNS_PER_IP 16
#define WD_HTTP_IDLE_S 10
#define WD_HTTP_REQUEST_S 15 /* Prometheus gives up a scrape after 10 s by default */
#define WD_HTTP_CONN_MEMORY (16 * 1024)
#define WD_HTTP_MAX_BODY ((size_t)256 << 20)
#define WD_HTTP_REUSE_MS 250 /* scrapes within it share one exposition (counts stay fresh: 2 s) */
#define WD_HTTP_BODIES 4      /* expositions held by connections at most; then 503 */

/*
 * Bind and listen on SPEC: "ADDR:PORT" with a numeric IPv4 address,
 * "[ADDR]:PORT" with an IPv6 one, "localhost:PORT", or ":PORT" / "PORT"
 * alone for 127.0.0.1 (loopback unless an address is given); port 0 takes
 * any free port. Returns the listening socket and the address it got in
 * SHOWN ("127.0.0.1:41234", "[::1]:9464"); -1 with a message in ERR when
 * the port is in use by another process (or another system error); -2
 * with a message for a malformed SPEC (a usage error). Called before the
 * store is taken, so that a refused start leaves nothing behind.
 */
int wd_http_listen(const char *spec, char *shown, size_t shownlen, char *err, size_t errlen);

typedef struct wd_http wd_http;

/* Serve M on the listening socket FD (taken over: closed by wd_http_stop,
 * or here on failure). LOG, when not NULL, gets one line per refused
 * render (never per connection: a flood must not flood the log). NULL
 * with a message in ERR when the server cannot start. */
wd_http *wd_http_start(int fd, wd_metrics *m, void (*log)(const char *line), char *err,
		       size_t errlen);

/* Stop serving (waits for the server thread; open connections are
 * closed) and free; *H becomes NULL. */
void wd_http_stop(wd_http **h);

#endif
