/*
 * control/guard_prom.c - the guard's figures from Prometheus' HTTP query
 * API (GET /api/v1/query) over the writers' metrics (docs/metrics.md):
 * flagshm_outcomes_total{flag,variant,outcome} and the histogram
 * flagshm_outcome_duration_seconds{flag,variant}.
 *
 * Counts are differences of the counters between the window's start and
 * now (`@` modifier), so a check after a step sees only requests served
 * since that step. Treatment: the variant that is the rollout's variation;
 * control: every other variant except "(none)" (evaluations that failed).
 * Each answer is bounded (1 MiB, 5 s): the URL comes from an editor.
 */
#include "rollout.h"

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROM_MAX_BODY (1u << 20)

typedef struct buf {
	char *p;
	size_t n;
	bool over;
} buf;

static size_t on_data(char *d, size_t sz, size_t nm, void *arg)
{
	buf *b = arg;
	size_t n = sz * nm;
	char *q;

	if (b->n + n > PROM_MAX_BODY) {
		b->over = true;
		return 0;
	}
	if (!(q = realloc(b->p, b->n + n + 1)))
		return 0;
	b->p = q;
	memcpy(b->p + b->n, d, n);
	b->n += n;
	b->p[b->n] = 0;
	return n;
}

int cs_ro_prom_scalar(const char *prom, const char *query, double at_s, double *out, char *err,
		   size_t errlen)
{
	CURL *h = curl_easy_init();
	buf b = {0};
	char *q, *url, ts[64];
	size_t n;
	long code = 0;
	int rc = -1;
	json_t *j = NULL, *res, *v;
	CURLcode cc;

	if (!h) {
		snprintf(err, errlen, "prometheus: no curl handle");
		return -1;
	}
	q = curl_easy_escape(h, query, 0);
	size_t pl = strlen(prom);
	if (pl && prom[pl - 1] == '/')
		pl--; /* a trailing slash in the base URL is dropped */
	n = pl + (q ? strlen(q) : 0) + 64;
	url = q ? malloc(n) : NULL;
	if (!url) {
		curl_free(q);
		snprintf(err, errlen, "prometheus: out of memory");
		return -1;
	}
	snprintf(ts, sizeof ts, "%.3f", at_s);
	snprintf(url, n, "%.*s/api/v1/query?query=%s&time=%s", (int)pl, prom, q, ts);
	curl_free(q);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "prometheus %s: %s", prom,
			 b.over ? "answer over 1 MiB" : curl_easy_strerror(cc));
		goto out;
	}
	j = b.p ? json_loads(b.p, 0, NULL) : NULL;
	if (code != 200 || !j ||
	    strcmp(json_string_value(json_object_get(j, "status")) ?: "", "success")) {
		snprintf(err, errlen, "prometheus %s: HTTP %ld: %.160s", prom, code,
			 json_string_value(json_object_get(j, "error")) ?: "not a query answer");
		goto out;
	}
	res = json_object_get(json_object_get(j, "data"), "result");
	v = json_object_get(json_object_get(j, "data"), "resultType");
	if (json_is_string(v) && !strcmp(json_string_value(v), "scalar"))
		v = res;
	else
		v = json_object_get(json_array_get(res, 0), "value");
	if (v) {
		const char *s = json_string_value(json_array_get(v, 1));
		if (!s) {
			snprintf(err, errlen, "prometheus %s: a value without a number", prom);
			goto out;
		}
		*out = strtod(s, NULL); /* "NaN" and "+Inf" parse too */
	}
	rc = 0;
out:
	json_decref(j);
	free(b.p);
	free(url);
	curl_easy_cleanup(h);
	return rc;
}

/* V as a PromQL string literal's body (\ and " escaped). */
static void esc(char *out, size_t cap, const char *v)
{
	size_t o = 0;

	for (; *v && o + 3 < cap; v++) {
		if (*v == '\\' || *v == '"')
			out[o++] = '\\';
		if (*v == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
			continue;
		}
		out[o++] = *v;
	}
	out[o] = 0;
}

/* The variant label of VARIATION as the library writes it: the value's
 * text for booleans, numbers and strings (cut to 64 bytes). */
static void variant_text(const json_t *v, char out[80])
{
	if (json_is_string(v))
		snprintf(out, 65, "%s", json_string_value(v));
	else if (json_is_boolean(v))
		snprintf(out, 80, "%s", json_is_true(v) ? "true" : "false");
	else if (json_is_integer(v))
		snprintf(out, 80, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(out, 80, "%.17g", json_real_value(v));
	else
		out[0] = 0;
}

int cs_ro_prom_measure(const char *prom, const char *flag, const json_t *variation, double from_s,
		    double now_s, cs_ro_sample *t, cs_ro_sample *ctl, char *err, size_t errlen)
{
	char var[80], ev[200], sel[2][400], q[4096];
	cs_ro_sample *out[2] = {t, ctl};

	variant_text(variation, var);
	esc(ev, sizeof ev, var);
	if (json_is_object(variation) || json_is_array(variation)) {
		/* JSON flags count by source: our rules are "rule:rollout.*". */
		snprintf(sel[0], sizeof sel[0], "flag=\"%s\",variant=~\"rule:rollout\\\\..+\"", flag);
		snprintf(sel[1], sizeof sel[1],
			 "flag=\"%s\",variant!~\"rule:rollout\\\\..+\",variant!=\"(none)\"", flag);
	} else {
		snprintf(sel[0], sizeof sel[0], "flag=\"%s\",variant=\"%s\"", flag, ev);
		snprintf(sel[1], sizeof sel[1], "flag=\"%s\",variant!=\"%s\",variant!=\"(none)\"",
			 flag, ev);
	}
	for (int g = 0; g < 2; g++) {
		const char *s = sel[g];
		out[g]->n = out[g]->errors = 0;
		snprintf(q, sizeof q,
			 "sum(flagshm_outcomes_total{%s}) - (sum(flagshm_outcomes_total{%s} @ %.3f) "
			 "or vector(0))",
			 s, s, from_s);
		if (cs_ro_prom_scalar(prom, q, now_s, &out[g]->n, err, errlen))
			return -1;
		snprintf(q, sizeof q,
			 "sum(flagshm_outcomes_total{%s,outcome=\"error\"}) - "
			 "(sum(flagshm_outcomes_total{%s,outcome=\"error\"} @ %.3f) or vector(0))",
			 s, s, from_s);
		if (cs_ro_prom_scalar(prom, q, now_s, &out[g]->errors, err, errlen))
			return -1;
		snprintf(q, sizeof q,
			 "histogram_quantile(0.99, sum by (le) "
			 "(flagshm_outcome_duration_seconds_bucket{%s}) - (sum by (le) "
			 "(flagshm_outcome_duration_seconds_bucket{%s} @ %.3f) or 0 * sum by (le) "
			 "(flagshm_outcome_duration_seconds_bucket{%s})))",
			 s, s, from_s, s);
		out[g]->p99 = NAN;
		if (cs_ro_prom_scalar(prom, q, now_s, &out[g]->p99, err, errlen))
			return -1;
		if (out[g]->n <= 0)
			out[g]->p99 = NAN;
		if (out[g]->n < 0 || out[g]->errors < 0) /* a counter reset: no figure */
			out[g]->n = out[g]->errors = 0;
	}
	return 0;
}
