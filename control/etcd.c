/*
 * control/etcd.c - the etcd v3 JSON gateway client of etcd.h.
 *
 * A member that does not answer is skipped for the next call too: the
 * index of the member that last answered is kept, and calls start there.
 */
#include "etcd.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CS_MEMBERS_MAX 16
#define CS_RESP_MAX (512u << 20) /* an answer larger than this is refused */

struct cs_etcd {
	char *url[CS_MEMBERS_MAX];
	int n;
	_Atomic int cur; /* the member that answered last: a hint read and
			    written alone (seq_cst), pairs with nothing */
	char *user, *password;
	pthread_mutex_t mu; /* guards token */
	char token[512]; /* etcd auth token, "" without auth */
};

/* Each thread's curl handle (its connections to etcd are reused), cleaned
 * up when the thread ends: libmicrohttpd runs a thread per connection. */
static pthread_key_t curl_key;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_key_free(void *c)
{
	curl_easy_cleanup(c);
}

static void curl_key_make(void)
{
	pthread_key_create(&curl_key, curl_key_free);
}

void cs_etcd_thread_done(void)
{
	CURL *c;

	pthread_once(&curl_once, curl_key_make);
	c = pthread_getspecific(curl_key);
	if (c) {
		curl_easy_cleanup(c);
		pthread_setspecific(curl_key, NULL);
	}
}

static CURL *thread_curl(void)
{
	CURL *c;

	pthread_once(&curl_once, curl_key_make);
	c = pthread_getspecific(curl_key);
	if (c) {
		curl_easy_reset(c);
		return c;
	}
	c = curl_easy_init();
	if (c)
		pthread_setspecific(curl_key, c);
	return c;
}

static int read_user_file(cs_etcd *e, const char *file, char *err, size_t errlen)
{
	char line[1024];
	FILE *f = fopen(file, "r");
	char *colon;

	if (!f) {
		snprintf(err, errlen, "--etcd-user-file %s: %s", file, strerror(errno));
		return -1;
	}
	if (!fgets(line, sizeof line, f))
		line[0] = 0;
	fclose(f);
	line[strcspn(line, "\r\n")] = 0;
	colon = strchr(line, ':');
	if (!colon || colon == line) {
		snprintf(err, errlen, "--etcd-user-file %s: the first line must be user:password",
			 file);
		return -1;
	}
	*colon = 0;
	e->user = strdup(line);
	e->password = strdup(colon + 1);
	explicit_bzero(line, sizeof line);
	return 0;
}

cs_etcd *cs_etcd_new(const char *urls, const char *user_file, char *err, size_t errlen)
{
	cs_etcd *e = calloc(1, sizeof *e);
	char *copy = strdup(urls ? urls : ""), *save = NULL, *tok;

	if (!e || !copy) {
		free(e);
		free(copy);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&e->mu, NULL);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t l = strlen(tok);
		if (l == 0)
			continue;
		if (e->n == CS_MEMBERS_MAX || (strncmp(tok, "http://", 7) && strncmp(tok, "https://", 8))) {
			snprintf(err, errlen, "--etcd: '%s' is not an http:// or https:// URL "
				 "(or more than %d members)", tok, CS_MEMBERS_MAX);
			goto fail;
		}
		while (l > 0 && tok[l - 1] == '/')
			tok[--l] = 0;
		e->url[e->n++] = strdup(tok);
	}
	if (e->n == 0) {
		snprintf(err, errlen, "--etcd: no member URL given");
		goto fail;
	}
	free(copy);
	copy = NULL;
	if (user_file && read_user_file(e, user_file, err, errlen) < 0)
		goto fail;
	return e;
fail:
	free(copy);
	cs_etcd_free(&e);
	return NULL;
}

void cs_etcd_free(cs_etcd **pe)
{
	cs_etcd *e = *pe;

	if (!e)
		return;
	for (int i = 0; i < e->n; i++)
		free(e->url[i]);
	if (e->password)
		explicit_bzero(e->password, strlen(e->password));
	free(e->user);
	free(e->password);
	pthread_mutex_destroy(&e->mu);
	free(e);
	*pe = NULL;
}

typedef struct buf {
	char *p;
	size_t n, cap;
} buf;

static size_t buf_write(char *d, size_t sz, size_t nm, void *arg)
{
	buf *b = arg;
	size_t n = sz * nm;

	if (b->n + n + 1 > CS_RESP_MAX)
		return 0;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return 0;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, d, n);
	b->n += n;
	b->p[b->n] = 0;
	return n;
}

/* The headers of a gateway call: JSON, and the auth token when etcd's
 * auth is on (AUTH holds the header line; curl copies it). */
static struct curl_slist *json_headers(cs_etcd *e, char *auth, size_t n)
{
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	pthread_mutex_lock(&e->mu);
	if (e->token[0]) {
		snprintf(auth, n, "Authorization: %s", e->token);
		h = curl_slist_append(h, auth);
	}
	pthread_mutex_unlock(&e->mu);
	return h;
}

/* One POST of BODY to member I. Returns the HTTP status (0 when the member
 * could not be reached) with the answer in *out. */
static long post(cs_etcd *e, int i, const char *path, const char *body, buf *out,
		 long timeout_ms)
{
	char url[1024], auth[600];
	CURL *c = thread_curl();
	struct curl_slist *h = NULL;
	long status = 0;

	if (!c)
		return 0;
	snprintf(url, sizeof url, "%s%s", e->url[i], path);
	h = json_headers(e, auth, sizeof auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	return status;
}

/* A gateway error that another member may not have. */
static bool member_trouble(long status, const char *body)
{
	if (status == 0 || status >= 500)
		return !body || !strstr(body, "compacted");
	return body && (strstr(body, "no leader") || strstr(body, "leader changed") ||
			strstr(body, "timed out"));
}

static int authenticate(cs_etcd *e, int i)
{
	json_t *req = json_pack("{s:s,s:s}", "name", e->user, "password", e->password);
	char *body = json_dumps(req, JSON_COMPACT);
	buf out = {0};
	long st;
	int rc = -1;

	json_decref(req);
	pthread_mutex_lock(&e->mu);
	e->token[0] = 0;
	pthread_mutex_unlock(&e->mu);
	st = body ? post(e, i, "/v3/auth/authenticate", body, &out, 5000) : 0;
	if (body) {
		explicit_bzero(body, strlen(body));
		free(body);
	}
	if (st == 200) {
		json_t *r = json_loads(out.p, 0, NULL);
		const char *t = json_string_value(json_object_get(r, "token"));
		if (t && strlen(t) < sizeof e->token) {
			pthread_mutex_lock(&e->mu);
			snprintf(e->token, sizeof e->token, "%s", t);
			pthread_mutex_unlock(&e->mu);
			rc = 0;
		}
		json_decref(r);
	}
	free(out.p);
	return rc;
}

int cs_etcd_call(cs_etcd *e, const char *path, json_t *req, json_t **resp, char *err,
		 size_t errlen)
{
	char *body = json_dumps(req, JSON_COMPACT);
	int start = e->cur, rc = CS_EUNAVAIL;

	json_decref(req);
	*resp = NULL;
	if (!body) {
		snprintf(err, errlen, "out of memory");
		return CS_ENOMEM;
	}
	snprintf(err, errlen, "no etcd member answered");
	for (int k = 0; k < e->n; k++) {
		int i = (start + k) % e->n;
		buf out = {0};
		long st;

		pthread_mutex_lock(&e->mu);
		bool need_auth = e->user && !e->token[0];
		pthread_mutex_unlock(&e->mu);
		if (need_auth && authenticate(e, i) < 0)
			continue;
		st = post(e, i, path, body, &out, 10000);
		if (st != 200 && e->user && out.p && strstr(out.p, "token")) {
			/* An expired or unknown auth token: once more with a new one. */
			free(out.p);
			out = (buf){0};
			st = authenticate(e, i) == 0 ? post(e, i, path, body, &out, 10000) : 0;
		}
		if (member_trouble(st, out.p)) {
			snprintf(err, errlen, "etcd %s: %s", e->url[i],
				 st ? "unavailable" : "not reachable");
			free(out.p);
			continue;
		}
		e->cur = i;
		json_t *r = out.p ? json_loads(out.p, 0, NULL) : NULL;
		if (st == 200 && r) {
			*resp = r;
			rc = 0;
		} else {
			const char *m = json_string_value(json_object_get(r, "error"));
			snprintf(err, errlen, "etcd: %s", m ? m : "unreadable answer");
			rc = m && strstr(m, "compacted") ? CS_ECOMPACTED : CS_EETCD;
			json_decref(r);
		}
		free(out.p);
		break;
	}
	free(body);
	return rc;
}

typedef struct watch_ctx {
	buf line;
	cs_watch_fn fn;
	void *arg;
	const volatile bool *stop;
	bool stopped, got_any;
	int64_t compact_rev;
} watch_ctx;

/* One JSON object per line; each "result" goes to the callback. */
static size_t watch_write(char *d, size_t sz, size_t nm, void *arg)
{
	watch_ctx *w = arg;
	size_t n = sz * nm, i = 0;

	while (i < n) {
		char *nl = memchr(d + i, '\n', n - i);
		size_t take = nl ? (size_t)(nl - (d + i)) : n - i;
		if (take && buf_write(d + i, 1, take, &w->line) != take)
			return 0;
		i += take;
		if (!nl)
			break;
		i++; /* the newline: one whole JSON object in w->line */
		json_t *o = w->line.n ? json_loadb(w->line.p, w->line.n, 0, NULL) : NULL;
		json_t *r = json_object_get(o, "result");
		w->line.n = 0;
		if (r) {
			w->got_any = true;
			if (json_is_true(json_object_get(r, "canceled"))) {
				w->compact_rev = cs_jint(r, "compact_revision");
				w->stopped = true;
			} else if (!w->fn(r, w->arg)) {
				w->stopped = true;
			}
		}
		json_decref(o);
		if (w->stopped)
			return 0;
	}
	return n;
}

static int watch_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	watch_ctx *w = arg;

	(void)a, (void)b, (void)c, (void)d;
	return *w->stop ? 1 : 0;
}

int cs_etcd_watch(cs_etcd *e, const char *key, const char *end, int64_t start_rev,
		  cs_watch_fn on_result, void *arg, const volatile bool *stop, int timeout_ms,
		  int64_t *compact_rev, char *err, size_t errlen)
{
	json_t *cr = json_pack("{s:o,s:o}", "key", cs_b64s(key), "range_end", cs_b64s(end));
	char rev[32], url[1024], auth[600];
	watch_ctx w = {.fn = on_result, .arg = arg, .stop = stop};
	struct curl_slist *h = NULL;
	CURL *c;
	char *body;
	int i = e->cur;

	snprintf(rev, sizeof rev, "%lld", (long long)start_rev);
	json_object_set_new(cr, "start_revision", json_string(rev));
	json_t *req = json_pack("{s:o}", "create_request", cr);
	body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	*compact_rev = 0;
	if (e->user && authenticate(e, i) < 0) {
		free(body);
		e->cur = (i + 1) % e->n;
		snprintf(err, errlen, "etcd %s: authentication failed", e->url[i]);
		return CS_EUNAVAIL;
	}
	c = thread_curl();
	snprintf(url, sizeof url, "%s/v3/watch", e->url[i]);
	h = json_headers(e, auth, sizeof auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, watch_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &w);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, watch_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, &w);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 5L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 2L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (timeout_ms > 0)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_perform(c);
	curl_slist_free_all(h);
	free(body);
	free(w.line.p);
	if (w.compact_rev > 0) {
		*compact_rev = w.compact_rev;
		snprintf(err, errlen, "etcd: revision %lld was compacted (now %lld)",
			 (long long)start_rev, (long long)w.compact_rev);
		return CS_ECOMPACTED;
	}
	if (w.stopped)
		return 0; /* ON_RESULT said stop */
	if (timeout_ms > 0 && w.got_any) {
		snprintf(err, errlen, "etcd %s: watch timed out", e->url[i]);
		return CS_EUNAVAIL;
	}
	if (!w.got_any || !*stop) {
		/* The member went away (or never answered): next time, the next. */
		e->cur = (i + 1) % e->n;
		snprintf(err, errlen, "etcd %s: watch ended", e->url[i]);
		return CS_EUNAVAIL;
	}
	return 0;
}

json_t *cs_b64(const void *p, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);
	json_t *s;

	if (!out)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	s = json_string(out);
	free(out);
	return s;
}

json_t *cs_b64s(const char *s)
{
	return cs_b64(s, strlen(s));
}

char *cs_unb64(const char *s, size_t *n)
{
	size_t l = s ? strlen(s) : 0, pad = 0;
	unsigned char *out;
	int r;

	if (l % 4)
		return NULL;
	out = malloc(l / 4 * 3 + 1);
	if (!out)
		return NULL;
	r = l ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)l) : 0;
	if (r < 0) {
		free(out);
		return NULL;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	while (pad < 2 && l > pad && s[l - 1 - pad] == '=')
		pad++;
	*n = (size_t)r - pad;
	out[*n] = 0;
	return (char *)out;
}

char *cs_prefix_end(const char *prefix)
{
	char *e = strdup(prefix);
	size_t l = strlen(e);

	if (e && l)
		e[l - 1]++;
	return e;
}

json_t *cs_op_put(const char *key, const char *value, size_t vlen)
{
	return json_pack("{s:{s:o,s:o}}", "request_put", "key", cs_b64s(key), "value",
			 cs_b64(value, vlen));
}

json_t *cs_op_range(const char *key, const char *end)
{
	json_t *r = json_pack("{s:o}", "key", cs_b64s(key));

	if (end)
		json_object_set_new(r, "range_end", cs_b64s(end));
	return json_pack("{s:o}", "request_range", r);
}

json_t *cs_op_delete(const char *key)
{
	return json_pack("{s:{s:o}}", "request_delete_range", "key", cs_b64s(key));
}

json_t *cs_cmp_mod(const char *key, int64_t rev)
{
	char r[32];

	snprintf(r, sizeof r, "%lld", (long long)rev);
	if (rev == 0)
		return json_pack("{s:s,s:o,s:s,s:s}", "target", "CREATE", "key", cs_b64s(key),
				 "result", "EQUAL", "create_revision", "0");
	return json_pack("{s:s,s:o,s:s,s:s}", "target", "MOD", "key", cs_b64s(key), "result",
			 "EQUAL", "mod_revision", r);
}

int64_t cs_jint(const json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);

	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	return 0;
}

int64_t cs_header_rev(const json_t *resp)
{
	return cs_jint(json_object_get(resp, "header"), "revision");
}

json_t *cs_kvs(json_t *range_resp)
{
	return json_object_get(range_resp, "kvs");
}
