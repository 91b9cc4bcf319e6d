/*
 * control/ctl/client.c - flagshm-ctl's HTTP client (libcurl): one request,
 * its answer bounded in size and time, the token read from its file, and
 * the server's errors printed safely.
 *
 * A server may be hostile: an answer over CTL_MAX_BODY ends the transfer,
 * no redirect is followed (the token must not go elsewhere), only http and
 * https are spoken, a whole request is bounded in time, and every string
 * of the server is printed with control characters escaped.
 */
#include "ctl.h"

#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ctl_client {
	CURL *curl;
	char *base;	  /* the URL without trailing '/' */
	char *auth;	  /* "Authorization: Bearer ..."; NULL without a token */
	const char *reason;
};

/* The token: the file's first line, surrounding whitespace trimmed,
 * 1-511 printable ASCII characters without spaces. */
static char *read_token(const char *file)
{
	FILE *f = fopen(file, "r");
	if (!f) {
		fprintf(stderr, "flagshm-ctl: cannot read the token file %s: %s\n", file,
			strerror(errno));
		return NULL;
	}
	char line[1024];
	bool got = fgets(line, sizeof line, f) != NULL;
	fclose(f);
	char *s = line, *e;
	if (got) {
		while (*s == ' ' || *s == '\t')
			s++;
		e = s + strlen(s);
		while (e > s && isspace((unsigned char)e[-1]))
			*--e = '\0';
	}
	size_t n = got ? strlen(s) : 0;
	bool ok = n >= 1 && n <= 511;
	for (size_t i = 0; ok && i < n; i++)
		ok = s[i] > 0x20 && s[i] < 0x7f;
	if (!ok) {
		fprintf(stderr, "flagshm-ctl: the token file %s does not start with a token "
				"(1-511 printable characters, no spaces)\n", file);
		return NULL;
	}
	char *auth = malloc(n + 32);
	if (auth)
		snprintf(auth, n + 32, "Authorization: Bearer %s", s);
	explicit_bzero(line, sizeof line);
	return auth;
}

ctl_client *ctl_client_new(const ctl_opts *o, int *status)
{
	*status = CTL_REFUSED;
	ctl_client *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->reason = o->reason;
	c->base = strdup(o->url);
	if (!c->base)
		goto fail;
	size_t n = strlen(c->base);
	while (n > 0 && c->base[n - 1] == '/')
		c->base[--n] = '\0';
	if (o->token_file) {
		c->auth = read_token(o->token_file);
		if (!c->auth) {
			*status = CTL_AUTH;
			goto fail;
		}
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(c->curl = curl_easy_init())) {
		fprintf(stderr, "flagshm-ctl: cannot start libcurl\n");
		goto fail;
	}
	return c;
fail:
	ctl_client_free(c);
	return NULL;
}

void ctl_client_free(ctl_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	if (c->auth) {
		explicit_bzero(c->auth, strlen(c->auth));
		free(c->auth);
	}
	free(c->base);
	free(c);
}

char *ctl_escape(ctl_client *c, const char *s)
{
	return curl_easy_escape(c->curl, s, 0);
}

void ctl_free(void *p)
{
	curl_free(p);
}

typedef struct sink {
	ctl_reply *r;
	size_t cap;
	bool too_big;
} sink;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	sink *s = ud;
	size_t len = sz * n;
	if (len > CTL_MAX_BODY - s->r->len) {
		s->too_big = true;
		return 0;
	}
	if (s->r->len + len + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->r->len + len + 1)
			cap *= 2;
		char *b = realloc(s->r->body, cap);
		if (!b)
			return 0;
		s->r->body = b;
		s->cap = cap;
	}
	memcpy(s->r->body + s->r->len, p, len);
	s->r->len += len;
	s->r->body[s->r->len] = '\0';
	return len;
}

/* Copy header NAME's value into DST when LINE is that header. */
static void take_header(const char *line, size_t len, const char *name, char *dst, size_t cap)
{
	size_t nl = strlen(name);
	if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return;
	const char *v = line + nl + 1;
	const char *e = line + len;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && isspace((unsigned char)e[-1]))
		e--;
	size_t n = (size_t)(e - v) < cap - 1 ? (size_t)(e - v) : cap - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	ctl_reply *r = ud;
	size_t len = sz * n;
	take_header(p, len, "ETag", r->etag, sizeof r->etag);
	take_header(p, len, "X-Request-Id", r->request_id, sizeof r->request_id);
	return len;
}

int ctl_request(ctl_client *c, const char *method, const char *path, const char *body,
		const char *const *headers, ctl_reply *r)
{
	memset(r, 0, sizeof *r);
	size_t ul = strlen(c->base) + strlen(path) + 1;
	char *url = malloc(ul);
	if (!url)
		return -1;
	snprintf(url, ul, "%s%s", c->base, path);

	struct curl_slist *h = NULL, *t;
	char reason[1100];
	bool ok = true;
#define ADD(s)                                    \
	do {                                      \
		if (!(t = curl_slist_append(h, s))) \
			ok = false;               \
		else                              \
			h = t;                    \
	} while (0)
	if (c->auth)
		ADD(c->auth);
	ADD("Accept: application/json");
	if (body)
		ADD("Content-Type: application/json");
	if (c->reason && strcmp(method, "GET") != 0) {
		snprintf(reason, sizeof reason, "X-Flagshm-Reason: %s", c->reason);
		ADD(reason);
	}
	for (size_t i = 0; headers && headers[i]; i++)
		ADD(headers[i]);
	ADD("Expect:");
#undef ADD

	sink s = {.r = r};
	CURL *k = c->curl;
	curl_easy_reset(k);
	curl_easy_setopt(k, CURLOPT_URL, url);
	curl_easy_setopt(k, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(k, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	}
	curl_easy_setopt(k, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(k, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(k, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(k, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(k, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(k, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(k, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(k, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(k, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(k, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(k, CURLOPT_LOW_SPEED_TIME, 30L);
	curl_easy_setopt(k, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)CTL_MAX_BODY);
	curl_easy_setopt(k, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(k, CURLOPT_NOSIGNAL, 1L);
	if (getenv("FLAGSHM_CA_FILE"))
		curl_easy_setopt(k, CURLOPT_CAINFO, getenv("FLAGSHM_CA_FILE"));

	CURLcode rc = ok ? curl_easy_perform(k) : CURLE_OUT_OF_MEMORY;
	curl_slist_free_all(h);
	explicit_bzero(reason, sizeof reason);
	int ret = 0;
	if (s.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		fprintf(stderr, "flagshm-ctl: %s %s: the answer is larger than the limit of %u bytes\n",
			method, url, CTL_MAX_BODY);
		ret = -1;
	} else if (rc != CURLE_OK) {
		fprintf(stderr, "flagshm-ctl: %s %s: %s\n", method, url, curl_easy_strerror(rc));
		ret = -1;
	} else {
		curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, &r->status);
		if (!r->body) {
			r->body = calloc(1, 1);
			if (!r->body)
				ret = -1;
		}
	}
	free(url);
	if (ret)
		ctl_reply_free(r);
	return ret;
}

void ctl_reply_free(ctl_reply *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

void ctl_put_safe(FILE *f, const char *s, size_t max)
{
	size_t i = 0;
	for (; s[i] && i < max; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f)
			fprintf(f, "\\x%02x", ch);
		else
			fputc(ch, f);
	}
	if (s[i])
		fputs("...", f);
}

json_t *ctl_reply_json(const ctl_reply *r, const char *what)
{
	json_error_t e;
	json_t *v = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &e);
	if (!v || !(json_is_object(v) || json_is_array(v))) {
		fprintf(stderr, "flagshm-ctl: %s: the server's answer is not JSON (line %d, column %d: ",
			what, e.line, e.column);
		ctl_put_safe(stderr, v ? "not an object or array" : e.text, 200);
		fputs(")\n", stderr);
		json_decref(v);
		return NULL;
	}
	return v;
}

int ctl_call_json(ctl_client *c, const char *method, const char *path, const char *body,
		  long want, const char *what, json_t **out)
{
	ctl_reply r;
	*out = NULL;
	if (ctl_request(c, method, path, body, NULL, &r))
		return CTL_REFUSED;
	int st = CTL_OK;
	if (r.status != want)
		st = ctl_fail(what, &r);
	else if (!(*out = ctl_reply_json(&r, what)))
		st = CTL_REFUSED;
	ctl_reply_free(&r);
	return st;
}

int ctl_fail(const char *what, const ctl_reply *r)
{
	int st = r->status == 401 || r->status == 403 ? CTL_AUTH : CTL_REFUSED;
	fprintf(stderr, "flagshm-ctl: %s: HTTP %ld", what, r->status);
	json_t *v = json_loadb(r->body, r->len, 0, NULL);
	json_t *err = json_object_get(v, "error");
	const char *code = json_string_value(json_object_get(err, "code"));
	const char *msg = json_string_value(json_object_get(err, "message"));
	if (code) {
		fputc(' ', stderr);
		ctl_put_safe(stderr, code, 64);
	}
	if (msg) {
		fputs(": ", stderr);
		ctl_put_safe(stderr, msg, 1000);
	} else if (!err && r->len) {
		fputs(": ", stderr);
		ctl_put_safe(stderr, r->body, 200);
	}
	if (r->status == 401)
		fputs(" (check the token)", stderr);
	fputc('\n', stderr);
	json_t *d = json_object_get(err, "details");
	size_t i;
	json_t *x;
	if (json_is_array(d)) {
		json_array_foreach(d, i, x) {
			if (i == 50) {
				fprintf(stderr, "  ... and %zu more\n", json_array_size(d) - 50);
				break;
			}
			const char *t = json_string_value(x);
			char *dump = t ? NULL : json_dumps(x, JSON_COMPACT);
			fputs("  ", stderr);
			ctl_put_safe(stderr, t ? t : dump ? dump : "?", 1000);
			fputc('\n', stderr);
			free(dump);
		}
	} else if (json_is_object(d) && json_object_size(d) > 0) {
		char *dump = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
		if (dump) {
			fputs("  ", stderr);
			ctl_put_safe(stderr, dump, 1000);
			fputc('\n', stderr);
		}
		free(dump);
	}
	json_decref(v);
	return st;
}

json_t *ctl_read_json(const char *file)
{
	bool in = strcmp(file, "-") == 0;
	FILE *f = in ? stdin : fopen(file, "r");
	if (!f) {
		fprintf(stderr, "flagshm-ctl: %s: %s\n", file, strerror(errno));
		return NULL;
	}
	size_t len = 0, cap = 65536;
	char *b = malloc(cap);
	bool big = false;
	while (b) {
		if (len + 1 >= cap) {
			if (cap > CTL_MAX_BODY) {
				big = true;
				break;
			}
			char *nb = realloc(b, cap * 2);
			if (!nb) {
				free(b);
				b = NULL;
				break;
			}
			b = nb;
			cap *= 2;
		}
		size_t n = fread(b + len, 1, cap - len - 1, f);
		if (n == 0)
			break;
		len += n;
	}
	bool rerr = ferror(f);
	if (!in)
		fclose(f);
	if (!b || big || rerr) {
		fprintf(stderr, "flagshm-ctl: %s: %s\n", in ? "standard input" : file,
			!b ? "out of memory" : big ? "larger than 64 MiB" : "read error");
		free(b);
		return NULL;
	}
	json_error_t e;
	json_t *v = json_loadb(b, len, JSON_REJECT_DUPLICATES, &e);
	free(b);
	if (!v)
		fprintf(stderr, "%s:%d:%d: %s\n", in ? "-" : file, e.line, e.column, e.text);
	return v;
}

void ctl_print_json(const ctl_opts *o, const json_t *v)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_PRESERVE_ORDER |
				     (o->json ? JSON_COMPACT : JSON_INDENT(2)));
	if (s) {
		fputs(s, stdout);
		fputc('\n', stdout);
	}
	free(s);
}

void ctl_print_done(const ctl_opts *o, const char *field, const char *name, const char *flag)
{
	json_t *v = json_pack("{ss}", field, name);
	if (v && flag)
		json_object_set_new(v, flag, json_true());
	if (v)
		ctl_print_json(o, v);
	json_decref(v);
}
