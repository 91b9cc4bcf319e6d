/*
 * writer/sync/sync.c - the control-plane sync loop of flagshm-writer (sync.h).
 *
 * One thread, two endpoints, one backoff each: the stream (with --stream)
 * and the document, which is polled every interval, or, with --stream,
 * only while the stream is down. Everything that reaches readers goes
 * through the model (model.h), so a document or an event is compiled
 * before it is published, and a rejected one changes nothing.
 *
 * The ETag names the document of the last 200. Once a stream event changes
 * the model the ETag no longer describes it and is dropped, so the next
 * poll is unconditional.
 */
#include "sync.h"
#include "clock.h"

#include "backoff.h"
#include "cache.h"
#include "flagshm.h"
#include "http.h"
#include "model.h"
#include "sse.h"
#include "text.h"
#include "validate.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A stream connection counts as healthy (its backoff resets) once it has
 * delivered an event, or bytes for this long. */
#define STREAM_HEALTHY_MS 10000
/* The longest single wait: signals are seen at once anyway (host->wait
 * returns on one); this only bounds how stale a computed deadline gets. */
#define WAIT_MAX_MS 1000
/* A stream's changes are persisted once it has been quiet this long (or
 * when it ends), not after every publish: an fsync must not delay the
 * next event of a burst. The file then lags by at most about a second,
 * its document and last event id always from the same moment. */
#define SAVE_QUIET_MS 100
/* ws_http_stream returns this from the stop hook. */
#define WS_END 1000
/* --source URL1,URL2,...: at most this many control-plane instances. */
#define WS_SOURCES_MAX 16

enum ws_mode { WS_STARTING = 0, WS_POLLING, WS_STREAMING, WS_BACKOFF };
static const char *const mode_names[] = {"starting", "polling", "streaming", "backoff"};

typedef struct ws {
	const ws_options *o;
	const ws_host *h;
	ws_http_opts http;
	char key[WS_KEY_MAX];
	char url_shown[2100]; /* the current source without its userinfo (a password) */
	char src_shown[2100]; /* all of --source so: the cache's source */
	char *src_buf;	      /* --source split at its commas */
	const char *src[WS_SOURCES_MAX];
	int nsrc, cur;	      /* the instances, the one in use */
	char doc_label[2100];
	ws_model model;
	ws_backoff bo_doc, bo_stream;
	ws_sse sse;
	char etag[256]; /* of the last 200 that is still the model, "" if none */
	int mode;	/* enum ws_mode */
	bool stop, hup;
	int64_t next_doc_ms; /* monotonic; INT64_MAX: not due (stream up) */
	/* the current stream connection */
	int64_t conn_start_ms;
	uint64_t conn_events;
	bool conn_ok; /* counted as healthy */
	bool unpublished; /* the model is ahead of what readers have */
	bool unsaved;	  /* ... ahead of the state directory (stream) */
	bool state_ok;	  /* --state-dir was created or passed its checks at start */
	int64_t published_ms; /* monotonic, the last publish */
	uint64_t published;
	wc_snapshot pending; /* the last event's compile, published after the read */
	char pending_what[160];
	/* what the control object holds, to write only changes */
	char state_txt[128];
	char err_txt[256];
} ws;

static void wlog(ws *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void wlog(ws *w, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	w->h->log(w->h->ud, line);
}

static void log_errors(ws *w, const wc_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		w->h->log(w->h->ud, e->msg[i]);
	if (e->dropped)
		wlog(w, "(%zu more errors not shown)", e->dropped);
}

static void set_error(ws *w, const char *text)
{
	if (strncmp(w->err_txt, text, sizeof w->err_txt - 1) == 0)
		return;
	/* Cut to the control object's field, on purpose. */
	size_t n = strnlen(text, sizeof w->err_txt - 1);
	memcpy(w->err_txt, text, n);
	w->err_txt[n] = '\0';
	w->h->state(w->h->ud, 0, w->err_txt, NULL);
}

/* Record the mode, ETag and last event id, and SYNC_MS (0: no new sync). */
static void report(ws *w, int64_t sync_ms)
{
	char s[sizeof w->state_txt];
	const char *id = ws_sse_last_id(&w->sse);

	snprintf(s, sizeof s, "%s%s%s%.56s%s%.32s", mode_names[w->mode],
		 w->o->stream && w->mode != WS_STREAMING ? " (stream down)" : "",
		 w->etag[0] ? " etag=" : "", w->etag[0] ? w->etag : "", id[0] ? " id=" : "", id);
	bool changed = strcmp(s, w->state_txt) != 0;
	if (changed)
		memcpy(w->state_txt, s, sizeof s);
	if (changed || sync_ms)
		w->h->state(w->h->ud, sync_ms, NULL, changed ? w->state_txt : NULL);
}

static void count(ws *w, int what)
{
	if (w->h->count)
		w->h->count(w->h->ud, what);
}

/* "N errors; first: ..." for ctl_last_error, and every error to the log. */
static void rejected(ws *w, const char *what, int rc, wc_errors *errs)
{
	char sum[256];
	size_t total = errs->n + errs->dropped;

	count(w, WS_COUNT_REJECTED);

	if (rc == FLAGSHM_ENOMEM && total == 0)
		wc_errors_add(errs, "%s: out of memory", what);
	total = errs->n + errs->dropped;
	wlog(w, "rejected %s: %zu error%s; nothing changed, the published snapshot stays", what,
	     total, total == 1 ? "" : "s");
	log_errors(w, errs);
	snprintf(sum, sizeof sum, "rejected %s: %s", what, errs->n ? errs->msg[0] : "(no reason)");
	set_error(w, sum);
}

/* Save the model's document with the ETag and last event id. */
static void save(ws *w)
{
	char err[512];
	char *id = (char *)ws_sse_last_id(&w->sse);
	ws_cache_meta meta = {.source = w->src_shown,
			      .etag = w->etag[0] ? w->etag : NULL,
			      .last_event_id = id[0] ? id : NULL};

	if (!w->o->state_dir || !w->model.doc)
		return;
	if (ws_cache_save(w->o->state_dir, w->model.doc, &meta, err, sizeof err) != 0)
		wlog(w, "cannot persist the document: %s", err);
}

/* Publish SNAP; LATER: persist it when the stream is quiet, else now. */
static int publish(ws *w, const wc_snapshot *snap, const char *what, bool later)
{
	int rc = w->h->publish(w->h->ud, snap, what);
	w->unpublished = rc != 0;
	if (rc != 0) /* the host wrote its own ctl_last_error: ours is unknown */
		snprintf(w->err_txt, sizeof w->err_txt, "\x01");
	if (rc == 0) {
		w->published++;
		w->published_ms = fs_clock_ms(CLOCK_MONOTONIC);
		w->unsaved = later;
		if (!later)
			save(w);
	}
	return rc;
}

static void save_if_quiet(ws *w, bool now)
{
	if (w->unsaved && (now || fs_clock_ms(CLOCK_MONOTONIC) - w->published_ms >= SAVE_QUIET_MS)) {
		w->unsaved = false;
		save(w);
	}
}

/* Forget the stream's last event id: the next connection starts anew and
 * the control plane sends a put. */
static void forget_event_id(ws *w)
{
	ws_sse_free(&w->sse);
	ws_sse_init(&w->sse, w->http.max_event, w->sse.cb, w->sse.ud);
}

static bool same_epoch(const json_t *a, const json_t *b)
{
	const json_t *ea = json_is_object(a) ? json_object_get(a, "epoch") : NULL;
	const json_t *eb = json_is_object(b) ? json_object_get(b, "epoch") : NULL;
	return (!ea && !eb) || (ea && eb && json_equal(ea, eb));
}

/* An unchanged document compiled again, for a forced republish. */
static int recompile(ws *w, const char *label, wc_snapshot *out, wc_errors *errs)
{
	return wc_compile(w->model.doc, w->model.environment, label, &w->model.lim, out, errs)
		       ? FLAGSHM_EINVAL
		       : 0;
}

/* ----------------------------------------------------------- failover */

/* Talk to source I from now on: requests, labels and the log. */
static void use_source(ws *w, int i)
{
	w->cur = i;
	w->http.url = w->src[i];
	fs_text_redact(w->url_shown, sizeof w->url_shown, w->src[i]);
	size_t len = strlen(w->url_shown);
	while (len > 0 && w->url_shown[len - 1] == '/')
		len--;
	snprintf(w->doc_label, sizeof w->doc_label, "%.*s/api/v1/flags", (int)(len > 2000 ? 2000 : len),
		 w->url_shown);
}

/* After a failure of the current instance, the next one (of several).
 * The ETag and the last event id are kept: instances of one control plane
 * serve one document with one history (docs/control.md). */
static void next_source(ws *w)
{
	if (w->nsrc < 2)
		return;
	use_source(w, (w->cur + 1) % w->nsrc);
	wlog(w, "failing over to %s (source %d of %d)", w->url_shown, w->cur + 1, w->nsrc);
}

/* ------------------------------------------------------------ polling */

static int stop_hook(void *ud);

/* The document endpoint answered with something usable. */
static void synced(ws *w)
{
	ws_backoff_success(&w->bo_doc);
	w->next_doc_ms = fs_clock_ms(CLOCK_MONOTONIC) + (int64_t)w->o->poll_interval_s * 1000;
	if (w->mode != WS_STREAMING)
		w->mode = WS_POLLING;
	set_error(w, "");
	report(w, fs_clock_ms(CLOCK_REALTIME));
}

/* One GET of the document. BUST: without If-None-Match, and republish
 * even an unchanged document. 0 when the control plane answered with a
 * usable 200 or 304. */
static int do_fetch(ws *w, bool bust)
{
	const ws_options *o = w->o;
	ws_http_resp r;
	wc_errors errs = {0};
	wc_snapshot snap = {0};
	json_t *doc = NULL;
	char err[512], what[2500];
	int rc = ws_http_fetch(&w->http, bust ? NULL : w->etag, &r, err, sizeof err);

	if (rc != 0 && rc != WS_HTTP_NOT_MODIFIED && (w->stop || w->hup)) {
		ws_http_resp_free(&r); /* a signal cut it short: not a failure */
		return rc;
	}
	if (rc == WS_HTTP_NOT_MODIFIED) {
		count(w, WS_COUNT_NOT_MODIFIED);
		synced(w);
		ws_http_resp_free(&r);
		return 0;
	}
	if (rc != 0) {
		count(w, WS_COUNT_ERROR);
		int64_t d = ws_backoff_failure(&w->bo_doc, fs_clock_ms(CLOCK_MONOTONIC), r.retry_after_ms);
		if (o->once) /* there is no next attempt */
			wlog(w, "%s", err);
		else
			wlog(w, "%s; next attempt in %.1f s%s", err, (double)d / 1000.0,
			     w->bo_doc.state == WS_BREAKER_OPEN ? " (circuit open)" : "");
		set_error(w, err);
		w->next_doc_ms = fs_clock_ms(CLOCK_MONOTONIC) + d;
		if (w->mode != WS_STREAMING)
			w->mode = WS_BACKOFF;
		report(w, 0);
		ws_http_resp_free(&r);
		next_source(w);
		return rc;
	}
	rc = ws_http_doc(&r, w->doc_label, &o->limits, &doc, &errs);
	bool new_epoch = rc == 0 && w->model.doc && !same_epoch(w->model.doc, doc);
	if (rc == 0)
		rc = ws_model_set(&w->model, doc, w->doc_label, &snap, &errs);
	if (rc == WS_MODEL_UNCHANGED && (bust || w->unpublished))
		rc = recompile(w, w->doc_label, &snap, &errs);
	if (rc < 0) {
		count(w, WS_COUNT_ERROR);
		snprintf(what, sizeof what, "%s (ETag %s)", w->doc_label, r.etag[0] ? r.etag : "none");
		rejected(w, what, rc, &errs);
		/* The answer was not usable: retry as after a failure. */
		int64_t d = ws_backoff_failure(&w->bo_doc, fs_clock_ms(CLOCK_MONOTONIC), -1);
		w->next_doc_ms = fs_clock_ms(CLOCK_MONOTONIC) + d;
		w->etag[0] = '\0';
		json_decref(doc);
		wc_errors_free(&errs);
		ws_http_resp_free(&r);
		report(w, 0);
		next_source(w); /* a broken instance: try the next */
		return rc;
	}
	if (rc == 0 && o->environment && !wc_doc_mentions_env(doc, o->environment))
		wlog(w, "warning: no flag of %s has overrides for environment '%s' (misspelt?); "
		     "every flag is compiled as written", w->doc_label, o->environment);
	if (new_epoch) {
		wlog(w, "the document's epoch changed: taking it whole");
		forget_event_id(w);
	}
	count(w, WS_COUNT_OK);
	snprintf(w->etag, sizeof w->etag, "%s", r.etag);
	synced(w); /* before the publish: readers never see new data marked stale */
	if (rc == 0) {
		snprintf(what, sizeof what, "%s%s%s%s", w->doc_label, r.etag[0] ? " (ETag " : "",
			 r.etag, r.etag[0] ? ")" : "");
		if (publish(w, &snap, what, false) != 0) {
			/* The host logged it; the model moved on, so the
			 * next poll must not be answered 304. */
			w->etag[0] = '\0';
			report(w, 0);
		}
	}
	json_decref(doc);
	wc_snapshot_free(&snap);
	wc_errors_free(&errs);
	ws_http_resp_free(&r);
	return 0;
}

/* ---------------------------------------------------------- streaming */

static void flush_pending(ws *w)
{
	if (!w->pending.bytes)
		return;
	publish(w, &w->pending, w->pending_what, true);
	wc_snapshot_free(&w->pending);
}

static int on_event(void *ud, const ws_sse_event *ev)
{
	ws *w = ud;
	wc_snapshot snap = {0};
	wc_errors errs = {0};
	char label[160];
	bool put = strcmp(ev->type, "put") == 0;

	w->conn_events++;
	snprintf(label, sizeof label, "stream event %.40s%s%.64s", ev->type, ev->id[0] ? " id " : "",
		 ev->id);
	int rc = ws_model_apply(&w->model, ev->type, ev->data, ev->data_len, label, &snap, &errs);
	if (rc == WS_MODEL_UNCHANGED && put) /* a put is a cache bust: republish */
		rc = recompile(w, label, &snap, &errs);
	if (rc == 0) {
		wc_snapshot_free(&w->pending);
		w->pending = snap;
		snprintf(w->pending_what, sizeof w->pending_what, "%s", label);
		w->etag[0] = '\0';
	} else if (rc < 0) {
		rejected(w, label, rc, &errs);
	}
	wc_errors_free(&errs);
	return 0;
}

static void stream_healthy(ws *w)
{
	if (w->conn_ok)
		return;
	w->conn_ok = true;
	ws_backoff_success(&w->bo_stream);
	w->mode = WS_STREAMING;
	w->next_doc_ms = INT64_MAX;
	set_error(w, "");
}

/* After the events of one network read: publish what they changed, once. */
static int after_chunk(void *ud)
{
	ws *w = ud;

	if (w->conn_events > 0 || fs_clock_ms(CLOCK_MONOTONIC) - w->conn_start_ms >= STREAM_HEALTHY_MS)
		stream_healthy(w);
	/* The sync time first: readers never see new data marked stale. */
	report(w, w->conn_ok ? fs_clock_ms(CLOCK_REALTIME) : 0);
	flush_pending(w);
	return 0;
}

static void take_signals(ws *w, int sig)
{
	if (sig & WS_SIG_STOP)
		w->stop = true;
	if (sig & WS_SIG_HUP)
		w->hup = true;
}

static int stop_hook(void *ud)
{
	ws *w = ud;

	take_signals(w, w->h->wait(w->h->ud, 0));
	save_if_quiet(w, false);
	return w->stop || w->hup ? WS_END : 0;
}

static void run_stream(ws *w)
{
	ws_stream_hooks hooks = {.after_chunk = after_chunk, .stop = stop_hook, .ud = w};
	ws_http_resp r;
	char err[512] = "";

	w->conn_start_ms = fs_clock_ms(CLOCK_MONOTONIC);
	w->conn_events = 0;
	w->conn_ok = false;
	int rc = ws_http_stream(&w->http, &w->sse, &hooks, &r, err, sizeof err);
	flush_pending(w); /* events of a read cut short by an error */
	save_if_quiet(w, true);
	if (rc == WS_END) {
		ws_http_resp_free(&r);
		return;
	}
	int64_t d = ws_backoff_failure(&w->bo_stream, fs_clock_ms(CLOCK_MONOTONIC), r.retry_after_ms);
	wlog(w, "%s; reconnecting in %.1f s%s, polling the document meanwhile", err,
	     (double)d / 1000.0, w->bo_stream.state == WS_BREAKER_OPEN ? " (circuit open)" : "");
	set_error(w, err);
	/* Polling that works is what readers depend on now; say so. */
	if (w->mode != WS_POLLING || w->bo_doc.failures > 0)
		w->mode = WS_BACKOFF;
	if (w->next_doc_ms == INT64_MAX)
		w->next_doc_ms = fs_clock_ms(CLOCK_MONOTONIC); /* the stream just went down: poll now */
	report(w, 0);
	ws_http_resp_free(&r);
	next_source(w); /* the stream reconnects to the next instance */
}

/* ---------------------------------------------------------- cold start */

/* Create the state directory (0700) if missing and check it can be trusted
 * (writer/sync/cache.h), in every mode, --once too: a directory refused now is
 * neither loaded from nor written to here; each later save checks again
 * and logs why it cannot persist. */
static void state_dir_ready(ws *w)
{
	char err[512];

	if (!w->o->state_dir)
		return;
	w->state_ok = ws_cache_dir_make(w->o->state_dir, err, sizeof err) == 0;
	if (!w->state_ok) {
		wlog(w, "%s; documents will not be persisted", err);
		set_error(w, err);
	}
}

static void cold_start(ws *w)
{
	const ws_options *o = w->o;
	char err[512], label[4200];
	json_t *doc = NULL;
	ws_cache_meta meta = {0};
	wc_snapshot snap = {0};
	wc_errors errs = {0};

	if (!o->state_dir || !w->state_ok)
		return;
	snprintf(label, sizeof label, "cache %s/%s", o->state_dir, WS_CACHE_FILE);
	int rc = ws_cache_load(o->state_dir, o->limits.max_doc_bytes, &doc, &meta, err, sizeof err);
	if (rc == FLAGSHM_ENOSTORE) {
		wlog(w, "no persisted document in %s (first start)", o->state_dir);
		return;
	}
	if (rc != 0) {
		wlog(w, "persisted document ignored: %s", err);
		snprintf(label, sizeof label, "persisted document ignored: %s", err);
		set_error(w, label);
		return;
	}
	rc = ws_model_set(&w->model, doc, label, &snap, &errs);
	if (rc < 0) {
		rejected(w, label, rc, &errs);
	} else if (rc == 0 && w->h->publish(w->h->ud, &snap, label) == 0) {
		wlog(w, "published the persisted document (saved %.1f s ago) before syncing",
		     (double)(fs_clock_ms(CLOCK_REALTIME) - meta.saved_ms) / 1000.0);
		/* The same control plane: its ETag and event id still name
		 * this document, so a 304 or a resumed stream can follow. */
		if (meta.source && strcmp(meta.source, w->src_shown) == 0) {
			if (meta.etag)
				snprintf(w->etag, sizeof w->etag, "%s", meta.etag);
			if (meta.last_event_id && !strpbrk(meta.last_event_id, "\r\n")) {
				char line[300];
				int n = snprintf(line, sizeof line, "id:%s\n\n", meta.last_event_id);
				if (n > 0 && (size_t)n < sizeof line)
					ws_sse_feed(&w->sse, line, (size_t)n, err, sizeof err);
			}
		}
		/* The data is as old as the save, not as this start. */
		report(w, meta.saved_ms > 0 ? meta.saved_ms : 1);
	}
	wc_snapshot_free(&snap);
	wc_errors_free(&errs);
	ws_cache_meta_free(&meta);
	json_decref(doc);
}

/* ---------------------------------------------------------------- run */

static int setup(ws *w)
{
	const ws_options *o = w->o;

	snprintf(w->key, sizeof w->key, "%s", o->key);
	/* What the control object holds was written by an earlier writer,
	 * maybe an error: unknown, so the first success clears it. */
	snprintf(w->err_txt, sizeof w->err_txt, "\x01");
	fs_text_redact(w->src_shown, sizeof w->src_shown, o->url);
	if (!(w->src_buf = strdup(o->url))) {
		wlog(w, "out of memory");
		return -1;
	}
	for (char *save = NULL, *u = strtok_r(w->src_buf, ",", &save);
	     u && w->nsrc < WS_SOURCES_MAX; u = strtok_r(NULL, ",", &save))
		w->src[w->nsrc++] = u;
	if (w->nsrc == 0)
		w->src[w->nsrc++] = w->src_buf;
	use_source(w, 0);
	w->http.key = w->key;
	w->http.ca_file = o->ca_file;
	w->http.max_body = o->limits.max_doc_bytes;
	w->http.max_event = o->limits.max_doc_bytes;
	w->http.idle_timeout_ms = o->idle_timeout_s > 0 ? o->idle_timeout_s * 1000L : 0;
	/* Signals and the heartbeat during a slow fetch, too. */
	w->http.fetch_stop = stop_hook;
	w->http.fetch_stop_ud = w;
	ws_http_opts_default(&w->http);
	if (ws_model_init(&w->model, o->environment, &o->limits) != 0) {
		wlog(w, "out of memory");
		return -1;
	}
	uint64_t seed = (uint64_t)fs_clock_ms(CLOCK_REALTIME) ^ ((uint64_t)getpid() << 32);
	ws_backoff_init(&w->bo_doc, seed);
	ws_backoff_init(&w->bo_stream, seed * 0x9e3779b97f4a7c15ull);
	ws_sse_init(&w->sse, w->http.max_event, on_event, w);
	return 0;
}

static void loop(ws *w)
{
	const ws_options *o = w->o;

	w->next_doc_ms = o->stream ? INT64_MAX : 0;
	while (!w->stop) {
		int64_t now = fs_clock_ms(CLOCK_MONOTONIC);
		if (w->hup) {
			w->hup = false;
			wlog(w, "SIGHUP: fetching the whole document again");
			forget_event_id(w);
			do_fetch(w, true);
			continue;
		}
		if (o->stream && ws_backoff_ready(&w->bo_stream, now)) {
			run_stream(w);
			continue;
		}
		if (w->next_doc_ms <= now && ws_backoff_ready(&w->bo_doc, now)) {
			do_fetch(w, false);
			continue;
		}
		int64_t until = now + WAIT_MAX_MS;
		int64_t doc_at = w->next_doc_ms > w->bo_doc.next_ms ? w->next_doc_ms : w->bo_doc.next_ms;
		if (doc_at < until)
			until = doc_at;
		if (o->stream && w->bo_stream.next_ms < until)
			until = w->bo_stream.next_ms;
		take_signals(w, w->h->wait(w->h->ud, until > now ? (int)(until - now) : 0));
	}
}

int ws_run(const ws_options *o, const ws_host *h)
{
	ws *w = calloc(1, sizeof *w);
	int status = 0;

	if (!w) {
		h->log(h->ud, "out of memory");
		return 1;
	}
	w->o = o;
	w->h = h;
	if (setup(w) != 0) {
		status = 1;
		goto out;
	}
	wlog(w, "syncing from %s by %s%s", w->src_shown, o->stream ? "streaming" : "polling",
	     o->stream ? ", polling while the stream is down" : "");
	state_dir_ready(w);
	if (o->once) { /* one fetch per instance until one succeeds (a failure moves on) */
		status = 1;
		for (int i = 0; i < w->nsrc && status && !w->stop; i++)
			status = do_fetch(w, true) == 0 && w->published ? 0 : 1;
		goto out;
	}
	cold_start(w);
	report(w, 0);
	loop(w);
	save_if_quiet(w, true);
out:
	wc_snapshot_free(&w->pending);
	ws_sse_free(&w->sse);
	ws_model_free(&w->model);
	memset(w->key, 0, sizeof w->key);
	free(w->src_buf);
	free(w);
	return status;
}
