/*
 * bench/control_bench.c - flagshm-control-bench: the control plane's
 * targets (issue 12), measured against a real flagshm-control over a real
 * etcd member, both started here on free loopback ports
 * (tests/control_proc.c) and stopped at the end.
 *
 *   sse     N concurrent SSE streams on one instance (raw sockets, one
 *           epoll thread); for each of E edits, the time from sending the
 *           PUT to each stream receiving the edit's event. Target: p99
 *           <= 100 ms at 1,000 streams.
 *   get     GET /api/v1/flags (the whole document, no If-None-Match) of
 *           10,000 flags by 8 concurrent clients. Target: p99 <= 20 ms.
 *   edit    one flag edit (PUT with If-Match: validation and the etcd
 *           transaction included) with 1,000 flags. Target: p99 <= 20 ms.
 *   race    8 editors x 100 read-modify-write edits of one flag with
 *           If-Match and retries: exactly 800 edits and 800 audit records.
 *
 *   flagshm-control-bench [--case sse|get|edit|race|all] [--quick]
 *                         [--streams N] [--edits N] [--flags N] [--requests N]
 *
 * --quick: tiny sizes (a smoke run for CI, figures meaningless). Prints one
 * JSON line per case. Exit 1 when a case fails (not when a target is
 * missed: targets are judged in BENCHMARKS.md).
 */
#include "control_proc.h"
#include "writer_proc.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef CONTROL_BENCH_SERVER
#define CONTROL_BENCH_SERVER "flagshm-control"
#endif

static tc_etcd E;
static tc_control C;

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* {"p50":..,"p99":..,"max":..,"n":..} in milliseconds. */
static void print_pct(const char *name, int64_t *v, size_t n)
{
	if (n == 0) {
		printf("\"%s\":null", name);
		return;
	}
	qsort(v, n, sizeof *v, cmp_i64);
	size_t i99 = (size_t)((double)n * 0.99);
	if (i99 >= n)
		i99 = n - 1;
	printf("\"%s\":{\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f,\"n\":%zu}", name,
	       (double)v[n / 2] / 1000.0, (double)v[i99] / 1000.0, (double)v[n - 1] / 1000.0, n);
}

/* ------------------------------------------------------------ HTTP */

typedef struct buf {
	char *p;
	size_t n;
} buf;

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
	buf *b = ud;
	char *q = realloc(b->p, b->n + sz * n + 1);
	if (!q)
		return 0;
	memcpy(q + b->n, p, sz * n);
	b->p = q;
	b->n += sz * n;
	b->p[b->n] = '\0';
	return sz * n;
}

/* One request on handle K (kept alive between calls); the status, the
 * body in *RESP (malloc'd; may be NULL). */
static long http(CURL *k, const char *method, const char *path, const char *body,
		 const char *const *hdrs, char **resp)
{
	char url[512], auth[200];
	buf b = {0};
	struct curl_slist *h = NULL;
	snprintf(url, sizeof url, "%s%s", C.url, path);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", C.admin);
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Expect:");
	if (body)
		h = curl_slist_append(h, "Content-Type: application/json");
	for (size_t i = 0; hdrs && hdrs[i]; i++)
		h = curl_slist_append(h, hdrs[i]);
	curl_easy_reset(k);
	curl_easy_setopt(k, CURLOPT_URL, url);
	curl_easy_setopt(k, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(k, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(k, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(k, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(k, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(k, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(k, CURLOPT_NOSIGNAL, 1L);
	long st = 0;
	if (curl_easy_perform(k) == CURLE_OK)
		curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, &st);
	curl_slist_free_all(h);
	if (resp)
		*resp = b.p;
	else
		free(b.p);
	return st;
}

/* The version of flag KEY, -1 on failure. */
static long long version_of(CURL *k, const char *key)
{
	char path[200], *r = NULL;
	snprintf(path, sizeof path, "/api/v1/flags/%s", key);
	long st = http(k, "GET", path, NULL, NULL, &r);
	json_t *v = st == 200 && r ? json_loads(r, 0, NULL) : NULL;
	long long ver = v ? json_integer_value(json_object_get(v, "version")) : -1;
	json_decref(v);
	free(r);
	return ver;
}

/* PUT flag KEY with BODY at VERSION (-1: create). The status. */
static long put_flag(CURL *k, const char *key, const char *body, long long version)
{
	char path[200], cond[64];
	snprintf(path, sizeof path, "/api/v1/flags/%s", key);
	if (version >= 0)
		snprintf(cond, sizeof cond, "If-Match: \"%lld\"", version);
	else
		snprintf(cond, sizeof cond, "If-None-Match: *");
	const char *h[] = {cond, "X-Flagshm-Reason: control-bench", NULL};
	return http(k, "PUT", path, body, h, NULL);
}

/* One import carries at most this many flags: etcd's --max-txn-ops
 * (10,000 in tests/control_proc.c) bounds one transaction, and the import
 * adds its audit record and meta keys. The rest are created one by one. */
#define IMPORT_MAX 5000

typedef struct creator {
	pthread_t t;
	int from, to, fails;
} creator;

static void *create_range(void *arg)
{
	creator *c = arg;
	CURL *k = curl_easy_init();
	for (int i = c->from; i < c->to; i++) {
		char key[32];
		snprintf(key, sizeof key, "f%d", i);
		if (put_flag(k, key, "{\"defaultValue\":true,\"rolloutPercentage\":50}", -1) != 201)
			c->fails++;
	}
	curl_easy_cleanup(k);
	return NULL;
}

static int load_flags_import(CURL *k, int n);

/* Replace the document with N flags f0..f(N-1). 0 or -1. */
static int load_flags(CURL *k, int n)
{
	if (load_flags_import(k, n < IMPORT_MAX ? n : IMPORT_MAX) != 0)
		return -1;
	if (n <= IMPORT_MAX)
		return 0;
	creator c[8];
	int per = (n - IMPORT_MAX + 7) / 8, fails = 0;
	for (int i = 0; i < 8; i++) {
		c[i].from = IMPORT_MAX + i * per;
		c[i].to = c[i].from + per < n ? c[i].from + per : n;
		c[i].fails = 0;
		pthread_create(&c[i].t, NULL, create_range, &c[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(c[i].t, NULL);
		fails += c[i].fails;
	}
	if (fails)
		fprintf(stderr, "control-bench: %d flags could not be created\n", fails);
	return fails ? -1 : 0;
}

static int load_flags_import(CURL *k, int n)
{
	size_t cap = (size_t)n * 120 + 100, len = 0;
	char *doc = malloc(cap);
	if (!doc)
		return -1;
	len += (size_t)snprintf(doc, cap, "{\"formatVersion\":1,\"flags\":[");
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(doc + len, cap - len,
					"%s{\"key\":\"f%d\",\"defaultValue\":true,\"rolloutPercentage\":50}",
					i ? "," : "", i);
	snprintf(doc + len, cap - len, "]}");
	const char *h[] = {"X-Flagshm-Reason: control-bench load", NULL};
	char *r = NULL;
	long st = http(k, "POST", "/api/v1/import", doc, h, &r);
	free(doc);
	if (st != 200 && st != 201) {
		fprintf(stderr, "control-bench: import of %d flags: HTTP %ld %s\n", n, st, r ? r : "");
		free(r);
		return -1;
	}
	free(r);
	return 0;
}

/* ------------------------------------------------------------- sse */

typedef struct stream {
	int fd;
	char tail[64]; /* the last bytes seen, for a marker cut across reads */
	size_t tail_n;
	bool put_seen;
	int64_t got_us; /* when the current marker arrived, 0: not yet */
} stream;

static bool find_in(stream *s, const char *data, size_t n, const char *needle)
{
	size_t nl = strlen(needle);
	char joined[64 + 4096];
	bool found = false;
	while (n > 0 && !found) {
		size_t take = n > 4096 ? 4096 : n;
		memcpy(joined, s->tail, s->tail_n);
		memcpy(joined + s->tail_n, data, take);
		size_t jn = s->tail_n + take;
		found = memmem(joined, jn, needle, nl) != NULL;
		size_t keep = jn < 48 ? jn : 48;
		memcpy(s->tail, joined + jn - keep, keep);
		s->tail_n = keep;
		data += take;
		n -= take;
	}
	return found;
}

static int connect_stream(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	char req[512];
	int n = snprintf(req, sizeof req,
			 "GET /api/v1/flags/stream HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
			 "Authorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n",
			 port, C.admin);
	if (write(fd, req, (size_t)n) != n || fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Read what is ready on every stream for up to WAIT_MS; mark those that
 * saw NEEDLE. Returns how many have it (got_us set, or put_seen when PUT). */
static int pump(int ep, stream *ss, int n, const char *needle, bool put, int wait_ms)
{
	struct epoll_event evs[256];
	char b[65536];
	int got = 0;
	int64_t end = now_us() + wait_ms * 1000LL;
	for (int i = 0; i < n; i++)
		got += put ? ss[i].put_seen : ss[i].got_us != 0;
	while (got < n && now_us() < end) {
		int k = epoll_wait(ep, evs, 256, 50);
		for (int j = 0; j < k; j++) {
			stream *s = &ss[evs[j].data.u32];
			for (int rounds = 0; rounds < 64; rounds++) {
				ssize_t r = read(s->fd, b, sizeof b);
				if (r <= 0)
					break;
				bool was = put ? s->put_seen : s->got_us != 0;
				if (!was && find_in(s, b, (size_t)r, needle)) {
					if (put)
						s->put_seen = true;
					else
						s->got_us = now_us();
					got++;
				}
			}
		}
	}
	return got;
}

static int case_sse(int nstreams, int edits)
{
	CURL *k = curl_easy_init();
	if (load_flags(k, 100) != 0)
		return 1;
	stream *ss = calloc((size_t)nstreams, sizeof *ss);
	int ep = epoll_create1(0);
	int64_t *lat = calloc((size_t)nstreams * (size_t)edits, sizeof *lat);
	int64_t *worst = calloc((size_t)edits, sizeof *worst);
	size_t nl = 0;
	int rc = 1;
	if (!ss || ep < 0 || !lat || !worst)
		goto out;
	int64_t t0 = now_us();
	for (int i = 0; i < nstreams; i++) {
		ss[i].fd = connect_stream(C.port);
		if (ss[i].fd < 0) {
			fprintf(stderr, "control-bench: stream %d: cannot connect: %s\n", i, strerror(errno));
			goto out;
		}
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
		epoll_ctl(ep, EPOLL_CTL_ADD, ss[i].fd, &ev);
		/* keep the accept queue short: read the puts as they come */
		if (i % 50 == 49)
			pump(ep, ss, i + 1, "event: put", true, 0);
	}
	int have = pump(ep, ss, nstreams, "event: put", true, 60000);
	int64_t connect_ms = (now_us() - t0) / 1000;
	if (have < nstreams) {
		fprintf(stderr, "control-bench: only %d of %d streams got their put\n", have, nstreams);
		goto out;
	}
	for (int e = 0; e < edits; e++) {
		char body[200], marker[40];
		snprintf(marker, sizeof marker, "mark-%d-%d", (int)getpid(), e);
		snprintf(body, sizeof body,
			 "{\"defaultValue\":true,\"rolloutPercentage\":50,\"description\":\"%s\"}", marker);
		for (int i = 0; i < nstreams; i++)
			ss[i].got_us = 0;
		long long ver = version_of(k, "f0");
		int64_t start = now_us();
		long st = put_flag(k, "f0", body, ver);
		if (st != 200) {
			fprintf(stderr, "control-bench: edit %d: HTTP %ld\n", e, st);
			goto out;
		}
		have = pump(ep, ss, nstreams, marker, false, 30000);
		if (have < nstreams) {
			fprintf(stderr, "control-bench: edit %d reached %d of %d streams in 30 s\n", e, have,
				nstreams);
			goto out;
		}
		for (int i = 0; i < nstreams; i++) {
			int64_t d = ss[i].got_us - start;
			lat[nl++] = d;
			if (d > worst[e])
				worst[e] = d;
		}
		usleep(100000);
	}
	printf("{\"case\":\"sse\",\"streams\":%d,\"edits\":%d,\"connect_all_ms\":%lld,", nstreams, edits,
	       (long long)connect_ms);
	print_pct("edit_to_stream", lat, nl);
	printf(",");
	print_pct("edit_to_last_stream", worst, (size_t)edits);
	printf("}\n");
	rc = 0;
out:
	for (int i = 0; ss && i < nstreams; i++)
		if (ss[i].fd > 0)
			close(ss[i].fd);
	if (ep >= 0)
		close(ep);
	free(ss);
	free(lat);
	free(worst);
	curl_easy_cleanup(k);
	return rc;
}

/* ------------------------------------------------------------- get */

typedef struct getter {
	pthread_t t;
	int n;
	int64_t *lat;
	size_t bytes;
	int fails;
} getter;

static void *get_loop(void *arg)
{
	getter *g = arg;
	CURL *k = curl_easy_init();
	for (int i = 0; i < g->n; i++) {
		char *r = NULL;
		int64_t t = now_us();
		long st = http(k, "GET", "/api/v1/flags", NULL, NULL, &r);
		g->lat[i] = now_us() - t;
		if (st != 200)
			g->fails++;
		else
			g->bytes = r ? strlen(r) : 0;
		free(r);
	}
	curl_easy_cleanup(k);
	return NULL;
}

static int case_get(int nflags, int clients, int requests)
{
	CURL *k = curl_easy_init();
	int rc = load_flags(k, nflags);
	curl_easy_cleanup(k);
	if (rc)
		return 1;
	getter *g = calloc((size_t)clients, sizeof *g);
	int64_t *all = calloc((size_t)clients * (size_t)requests, sizeof *all);
	size_t n = 0;
	int fails = 0;
	for (int i = 0; i < clients; i++) {
		g[i].n = requests;
		g[i].lat = calloc((size_t)requests, sizeof(int64_t));
		pthread_create(&g[i].t, NULL, get_loop, &g[i]);
	}
	for (int i = 0; i < clients; i++) {
		pthread_join(g[i].t, NULL);
		memcpy(all + n, g[i].lat, (size_t)requests * sizeof *all);
		n += (size_t)requests;
		fails += g[i].fails;
		free(g[i].lat);
	}
	printf("{\"case\":\"get\",\"flags\":%d,\"clients\":%d,\"doc_bytes\":%zu,\"failures\":%d,", nflags,
	       clients, g[0].bytes, fails);
	print_pct("get_flags", all, n);
	printf("}\n");
	free(g);
	free(all);
	return fails ? 1 : 0;
}

/* ------------------------------------------------------------ edit */

static int case_edit(int nflags, int edits)
{
	CURL *k = curl_easy_init();
	if (load_flags(k, nflags) != 0)
		return 1;
	int64_t *lat = calloc((size_t)edits, sizeof *lat);
	long long ver = version_of(k, "f1");
	int rc = 0;
	for (int e = 0; e < edits; e++) {
		char body[200];
		snprintf(body, sizeof body, "{\"defaultValue\":true,\"rolloutPercentage\":%d}", e % 100);
		int64_t t = now_us();
		long st = put_flag(k, "f1", body, ver);
		lat[e] = now_us() - t;
		if (st != 200) {
			fprintf(stderr, "control-bench: edit %d: HTTP %ld\n", e, st);
			rc = 1;
			break;
		}
		ver++;
	}
	if (rc == 0) {
		printf("{\"case\":\"edit\",\"flags\":%d,", nflags);
		print_pct("flag_edit", lat, (size_t)edits);
		printf("}\n");
	}
	free(lat);
	curl_easy_cleanup(k);
	return rc;
}

/* ------------------------------------------------------------ race */

typedef struct editor {
	pthread_t t;
	int id, n, done, conflicts, errors;
} editor;

static void *edit_loop(void *arg)
{
	editor *ed = arg;
	CURL *k = curl_easy_init();
	for (int i = 0; i < ed->n; i++) {
		for (int tries = 0; tries < 10000; tries++) {
			char *r = NULL;
			long st = http(k, "GET", "/api/v1/flags/race", NULL, NULL, &r);
			json_t *v = st == 200 && r ? json_loads(r, 0, NULL) : NULL;
			free(r);
			if (!v) {
				ed->errors++;
				continue;
			}
			long long ver = json_integer_value(json_object_get(v, "version"));
			json_int_t cnt = json_integer_value(json_object_get(v, "defaultValue"));
			json_decref(v);
			char body[100];
			snprintf(body, sizeof body, "{\"defaultValue\":%lld,\"offValue\":0}",
				 (long long)cnt + 1);
			st = put_flag(k, "race", body, ver);
			if (st == 200) {
				ed->done++;
				break;
			}
			if (st == 412)
				ed->conflicts++;
			else
				ed->errors++;
		}
	}
	curl_easy_cleanup(k);
	return NULL;
}

static int case_race(int editors, int each)
{
	CURL *k = curl_easy_init();
	if (load_flags(k, 10) != 0 || put_flag(k, "race", "{\"defaultValue\":0,\"offValue\":0}", -1) != 201)
		return 1;
	editor *ed = calloc((size_t)editors, sizeof *ed);
	int64_t t = now_us();
	for (int i = 0; i < editors; i++) {
		ed[i].id = i;
		ed[i].n = each;
		pthread_create(&ed[i].t, NULL, edit_loop, &ed[i]);
	}
	int done = 0, conflicts = 0, errors = 0;
	for (int i = 0; i < editors; i++) {
		pthread_join(ed[i].t, NULL);
		done += ed[i].done;
		conflicts += ed[i].conflicts;
		errors += ed[i].errors;
	}
	int64_t ms = (now_us() - t) / 1000;
	char *r = NULL;
	http(k, "GET", "/api/v1/flags/race", NULL, NULL, &r);
	json_t *v = r ? json_loads(r, 0, NULL) : NULL;
	free(r);
	long long value = json_integer_value(json_object_get(v, "defaultValue"));
	long long version = json_integer_value(json_object_get(v, "version"));
	json_decref(v);
	/* audit records of the key, paged */
	long long records = 0;
	char next[300] = "";
	for (int page = 0; page < 100; page++) {
		char path[600];
		snprintf(path, sizeof path, "/api/v1/audit?key=race&limit=1000%s%s", next[0] ? "&next=" : "",
			 next);
		r = NULL;
		if (http(k, "GET", path, NULL, NULL, &r) != 200) {
			free(r);
			records = -1;
			break;
		}
		v = json_loads(r, 0, NULL);
		free(r);
		json_t *en = json_object_get(v, "entries");
		size_t i;
		json_t *x;
		json_array_foreach(en, i, x) {
			if (strcmp(json_string_value(json_object_get(x, "action")) ?: "", "update") == 0)
				records++;
		}
		const char *nx = json_string_value(json_object_get(v, "next"));
		if (nx) {
			char *esc = curl_easy_escape(k, nx, 0);
			snprintf(next, sizeof next, "%s", esc ? esc : "");
			curl_free(esc);
		}
		json_decref(v);
		if (!nx)
			break;
	}
	int want = editors * each;
	bool ok = done == want && value == want && version == want + 1 && records == want;
	printf("{\"case\":\"race\",\"editors\":%d,\"each\":%d,\"acknowledged\":%d,\"final_value\":%lld,"
	       "\"final_version\":%lld,\"update_audit_records\":%lld,\"conflicts_retried\":%d,"
	       "\"errors\":%d,\"ms\":%lld,\"ok\":%s}\n",
	       editors, each, done, value, version, records, conflicts, errors, (long long)ms,
	       ok ? "true" : "false");
	free(ed);
	curl_easy_cleanup(k);
	return ok ? 0 : 1;
}

/* ------------------------------------------------------------ main */

static void stop_all(void)
{
	if (C.pid > 0)
		tc_control_stop(&C, false);
	tc_etcd_stop(&E);
	if (C.dir[0])
		wp_rmdir(C.dir);
}

static void on_signal(int sig)
{
	(void)sig;
	/* kill() is async-signal-safe; the temporary directories stay. */
	if (C.pid > 0)
		kill(C.pid, SIGKILL);
	for (int i = 0; i < E.n; i++)
		if (E.pid[i] > 0)
			kill(E.pid[i], SIGKILL);
	_exit(130);
}

int main(int argc, char **argv)
{
	const char *which = "all";
	bool quick = false;
	int streams = 1000, edits = 20, flags_get = 10000, requests = 200, flags_edit = 1000;
	int edit_n = 500, editors = 8, each = 100;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--case") == 0 && i + 1 < argc)
			which = argv[++i];
		else if (strcmp(argv[i], "--quick") == 0)
			quick = true;
		else if (strcmp(argv[i], "--streams") == 0 && i + 1 < argc)
			streams = atoi(argv[++i]);
		else if (strcmp(argv[i], "--edits") == 0 && i + 1 < argc)
			edits = atoi(argv[++i]);
		else if (strcmp(argv[i], "--flags") == 0 && i + 1 < argc)
			flags_get = atoi(argv[++i]);
		else if (strcmp(argv[i], "--requests") == 0 && i + 1 < argc)
			requests = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: flagshm-control-bench [--case sse|get|edit|race|all] [--quick]\n"
					"       [--streams N] [--edits N] [--flags N] [--requests N]\n");
			return 2;
		}
	}
	if (quick) {
		streams = 20, edits = 3, flags_get = 200, requests = 10, flags_edit = 100;
		edit_n = 20, editors = 2, each = 10;
	}
	if (streams < 1 || edits < 1 || flags_get < 1 || requests < 1) {
		fprintf(stderr, "control-bench: counts must be positive\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	/* 1,000 streams: both ends need descriptors (the server inherits this). */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (!getenv("FLAGSHM_CONTROL"))
		setenv("FLAGSHM_CONTROL", CONTROL_BENCH_SERVER, 1);
	curl_global_init(CURL_GLOBAL_ALL);
	if (tc_etcd_start(&E, 1) != 0) {
		fprintf(stderr, "control-bench: cannot start etcd (etcd-server installed?)\n");
		return 1;
	}
	atexit(stop_all);
	int rc = 0;
	const char *cases[] = {"get", "edit", "race", "sse"};
	for (size_t i = 0; i < 4; i++) {
		if (strcmp(which, "all") != 0 && strcmp(which, cases[i]) != 0)
			continue;
		/* a fresh server for each case (the etcd member is shared) */
		if (C.pid > 0)
			tc_control_stop(&C, false);
		if (tc_control_start(&C, E.urls, 0, NULL) != 0) {
			fprintf(stderr, "control-bench: flagshm-control did not start (%s)\n", C.log);
			return 1;
		}
		int r = i == 0	 ? case_get(flags_get, 8, requests)
			: i == 1 ? case_edit(flags_edit, edit_n)
			: i == 2 ? case_race(editors, each)
				 : case_sse(streams, edits);
		fflush(stdout);
		rc |= r;
	}
	return rc;
}
