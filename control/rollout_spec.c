/*
 * control/rollout_spec.c - the rollout resource: validation of a PUT body
 * (unknown fields are errors, as in the flag format), durations, and the
 * targeting rules that express a stage (docs/rollouts.md, "Semantics").
 *
 * A stage is served as ordinary rules of the flag, all with ids starting
 * with "rollout.", after the flag's own rules: one rule with the union of
 * the ring segments so far, one per region stage so far, and one
 * `rolloutPercentage` rule without conditions holding the share of
 * everyone else. Percentages use the flag's bucketBy and salt, so raising
 * the share keeps everyone who was in.
 */
#include "rollout.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CS_RO_DURATION_MAX_MS (366LL * 86400 * 1000)

int64_t cs_ro_duration(const char *s)
{
	int64_t n = 0, unit;
	size_t i = 0;

	if (!s)
		return -1;
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		n = n * 10 + (s[i] - '0');
		if (n > CS_RO_DURATION_MAX_MS)
			return -1;
	}
	if (i == 0 || n <= 0 || !s[i] || s[i + 1])
		return -1;
	switch (s[i]) {
	case 's': unit = 1000; break;
	case 'm': unit = 60000; break;
	case 'h': unit = 3600000; break;
	case 'd': unit = 86400000; break;
	default: return -1;
	}
	return n * unit > CS_RO_DURATION_MAX_MS ? -1 : n * unit;
}

static void err(json_t *errs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void err(json_t *errs, const char *fmt, ...)
{
	char b[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b, sizeof b, fmt, ap);
	va_end(ap);
	if (json_array_size(errs) < 100)
		json_array_append_new(errs, json_string(b));
}

/* Unknown members of O are errors. */
static void only(json_t *o, const char *path, const char *const *known, json_t *errs)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v) {
		bool ok = false;
		for (size_t i = 0; known[i] && !ok; i++)
			ok = !strcmp(k, known[i]);
		if (!ok)
			err(errs, "%s.%s: unknown field", path, k);
	}
}

/* A percentage as the flag format takes it: 0..100, at most 3 decimals. */
static bool pct_ok(const json_t *v, double *out)
{
	double d;

	if (!json_is_number(v))
		return false;
	d = json_number_value(v);
	if (!(d >= 0 && d <= 100) || fabs(d * 1000 - round(d * 1000)) > 1e-6)
		return false;
	*out = d;
	return true;
}

static int64_t dur_field(json_t *o, const char *name, const char *path, json_t *errs)
{
	json_t *v = json_object_get(o, name);
	int64_t ms;

	if (!v)
		return -1;
	ms = cs_ro_duration(json_string_value(v));
	if (ms < 0) {
		err(errs, "%s.%s: a duration like \"30s\", \"5m\", \"2h\" or \"1d\" (at most 366d)",
		    path, name);
		return -1;
	}
	return ms;
}

static bool names_ok(json_t *a, size_t max)
{
	if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > max)
		return false;
	for (size_t i = 0; i < json_array_size(a); i++) {
		const char *s = json_string_value(json_array_get(a, i));
		if (!s || !*s || strlen(s) > 128)
			return false;
	}
	return true;
}

static double num_field(json_t *o, const char *name, const char *path, double lo, double hi,
			double dflt, json_t *errs)
{
	json_t *v = json_object_get(o, name);
	double d;

	if (!v)
		return dflt;
	d = json_is_number(v) ? json_number_value(v) : NAN;
	if (!(d >= lo && d <= hi)) {
		err(errs, "%s.%s: a number from %g to %g", path, name, lo, hi);
		return dflt;
	}
	return d;
}

static void parse_stage(json_t *o, size_t i, cs_ro_spec *s, json_t *errs)
{
	static const char *const known[] = {"ring", "segments", "soak", "autoPromote",
					    "percentage", "duration", "region",
					    "requiredApprovals", NULL};
	cs_ro_stage *st = &s->st[i];
	char path[64];
	json_t *v;
	int kinds = 0;

	snprintf(path, sizeof path, "stages[%zu]", i);
	memset(st, 0, sizeof *st);
	st->duration_ms = -1;
	st->auto_promote = true;
	if (!json_is_object(o)) {
		err(errs, "%s: an object", path);
		return;
	}
	only(o, path, known, errs);
	if (json_object_get(o, "ring")) {
		kinds++;
		st->kind = CS_RO_RING;
		if (!json_is_string(json_object_get(o, "ring")))
			err(errs, "%s.ring: a name (string)", path);
		st->segments = json_object_get(o, "segments");
		if (!names_ok(st->segments, 1000))
			err(errs, "%s.segments: a ring needs a non-empty array of segment names", path);
		st->duration_ms = dur_field(o, "soak", path, errs);
		if (json_object_get(o, "duration"))
			err(errs, "%s.duration: a ring stage takes \"soak\"", path);
		if ((v = json_object_get(o, "autoPromote")) && !json_is_boolean(v))
			err(errs, "%s.autoPromote: true or false", path);
		st->auto_promote = !json_is_false(v);
	} else {
		if (json_object_get(o, "segments") || json_object_get(o, "soak") ||
		    json_object_get(o, "autoPromote"))
			err(errs, "%s: segments, soak and autoPromote belong to a ring stage", path);
	}
	if ((v = json_object_get(o, "percentage"))) {
		kinds++;
		st->kind = CS_RO_PCT;
		if (!pct_ok(v, &st->pct))
			err(errs, "%s.percentage: a number from 0 to 100 with at most 3 decimals",
			    path);
	}
	if ((v = json_object_get(o, "region"))) {
		static const char *const rk[] = {"attribute", "values", NULL};
		char rp[80];
		kinds++;
		st->kind = CS_RO_REGION;
		snprintf(rp, sizeof rp, "%s.region", path);
		if (!json_is_object(v)) {
			err(errs, "%s: an object {\"attribute\",\"values\"}", rp);
		} else {
			only(v, rp, rk, errs);
			st->attr = json_string_value(json_object_get(v, "attribute"));
			st->values = json_object_get(v, "values");
			if (!st->attr || !*st->attr)
				err(errs, "%s.attribute: a non-empty string", rp);
			if (!names_ok(st->values, 10000))
				err(errs, "%s.values: a non-empty array of strings", rp);
		}
	}
	if (st->kind != CS_RO_RING)
		st->duration_ms = dur_field(o, "duration", path, errs);
	if (kinds != 1)
		err(errs, "%s: exactly one of \"ring\", \"percentage\" and \"region\"", path);
	if ((v = json_object_get(o, "requiredApprovals"))) {
		if (!names_ok(v, 32))
			err(errs, "%s.requiredApprovals: a non-empty array of group names", path);
		else
			st->approvals = v;
	}
}

int cs_ro_spec_parse(json_t *j, cs_ro_spec *s, json_t *errs)
{
	static const char *const known[] = {"variation", "stages", "autoProgress",
					    "successCriteria", "rollback", "checkInterval",
					    "metrics", NULL};
	static const char *const ck[] = {"errorRateThreshold", "latencyP99Threshold",
					 "minimumSampleSize", "maxRegressionVsControl",
					 "maxLatencyRegressionVsControl", "maxWait", "confidence",
					 NULL};
	static const char *const rk[] = {"steps", "interval", NULL};
	static const char *const mk[] = {"prometheus", "window", NULL};
	size_t before = json_array_size(errs);
	json_t *v, *stages;
	double last_pct = 0;

	memset(s, 0, sizeof *s);
	s->crit = (cs_ro_criteria){.error_rate = -1, .p99 = -1, .max_regression = -1,
				.max_latency_regression = -1, .min_samples = 100,
				.confidence = 0.95, .max_wait_ms = -1};
	s->check_ms = 10000;
	s->window_ms = 300000;
	s->rb_interval_ms = 60000;
	s->auto_progress = true;
	if (!json_is_object(j)) {
		err(errs, "rollout: a JSON object");
		return -1;
	}
	only(j, "rollout", known, errs);
	s->variation = json_object_get(j, "variation");
	if (!s->variation || json_is_null(s->variation))
		err(errs, "variation: required (the value the rollout serves)");
	stages = json_object_get(j, "stages");
	if (!json_is_array(stages) || json_array_size(stages) == 0 ||
	    json_array_size(stages) > CS_RO_STAGES_MAX) {
		err(errs, "stages: an array of 1 to %d stages", CS_RO_STAGES_MAX);
	} else {
		s->nstages = json_array_size(stages);
		for (size_t i = 0; i < s->nstages; i++) {
			parse_stage(json_array_get(stages, i), i, s, errs);
			if (s->st[i].kind == CS_RO_PCT) {
				if (s->st[i].pct < last_pct)
					err(errs, "stages[%zu].percentage: %g is below an earlier "
						  "stage's %g (a share only grows)",
					    i, s->st[i].pct, last_pct);
				else
					last_pct = s->st[i].pct;
			}
			if (i + 1 < s->nstages && s->st[i].duration_ms < 0)
				err(errs, "stages[%zu]: only the last stage may have no %s", i,
				    s->st[i].kind == CS_RO_RING ? "soak" : "duration");
		}
	}
	if ((v = json_object_get(j, "autoProgress"))) {
		if (!json_is_boolean(v))
			err(errs, "autoProgress: true or false");
		s->auto_progress = !json_is_false(v);
	}
	if ((v = json_object_get(j, "successCriteria"))) {
		const char *p = "successCriteria";
		if (!json_is_object(v)) {
			err(errs, "%s: an object", p);
		} else {
			only(v, p, ck, errs);
			s->crit.error_rate = num_field(v, "errorRateThreshold", p, 0, 1, -1, errs);
			s->crit.p99 = num_field(v, "latencyP99Threshold", p, 0, 3600, -1, errs);
			s->crit.min_samples = num_field(v, "minimumSampleSize", p, 1, 1e12, 100, errs);
			s->crit.max_regression =
				num_field(v, "maxRegressionVsControl", p, 0, 1, -1, errs);
			s->crit.max_latency_regression =
				num_field(v, "maxLatencyRegressionVsControl", p, 0, 3600, -1, errs);
			s->crit.confidence = num_field(v, "confidence", p, 0.5, 0.9999, 0.95, errs);
			s->crit.max_wait_ms = dur_field(v, "maxWait", p, errs);
		}
	}
	if ((v = json_object_get(j, "rollback"))) {
		json_t *steps = json_object_get(v, "steps");
		if (!json_is_object(v)) {
			err(errs, "rollback: an object");
		} else {
			only(v, "rollback", rk, errs);
			if (steps && (!json_is_array(steps) || json_array_size(steps) > CS_RO_STEPS_MAX)) {
				err(errs, "rollback.steps: an array of at most %d percentages",
				    CS_RO_STEPS_MAX);
			} else {
				for (size_t i = 0; i < json_array_size(steps); i++) {
					double p;
					if (!pct_ok(json_array_get(steps, i), &p) ||
					    (i > 0 && p >= s->rb_steps[i - 1]))
						err(errs, "rollback.steps[%zu]: a percentage below "
							  "the one before it",
						    i);
					s->rb_steps[s->nrb++] = p;
				}
			}
			if (json_object_get(v, "interval"))
				s->rb_interval_ms = dur_field(v, "interval", "rollback", errs);
		}
	}
	if ((v = json_object_get(j, "checkInterval"))) {
		s->check_ms = dur_field(j, "checkInterval", "rollout", errs);
		if (s->check_ms < 0)
			s->check_ms = 10000;
	}
	if ((v = json_object_get(j, "metrics"))) {
		if (!json_is_object(v)) {
			err(errs, "metrics: an object");
		} else {
			const char *u = json_string_value(json_object_get(v, "prometheus"));
			only(v, "metrics", mk, errs);
			if (!u || (strncmp(u, "http://", 7) && strncmp(u, "https://", 8)) ||
			    strlen(u) > 512 || strpbrk(u, " \r\n\t?#"))
				err(errs, "metrics.prometheus: an http:// or https:// base URL "
					  "(no query)");
			else
				s->prometheus = u;
			if (json_object_get(v, "window"))
				s->window_ms = dur_field(v, "window", "metrics", errs);
		}
	}
	return json_array_size(errs) > before ? -1 : 0;
}

double cs_ro_share(const cs_ro_spec *s, int stage)
{
	double p = 0;

	for (int i = 0; i <= stage && i < (int)s->nstages; i++)
		if (s->st[i].kind == CS_RO_PCT && s->st[i].pct > p)
			p = s->st[i].pct;
	return p;
}

static json_t *pct_rule(const cs_ro_spec *s, double p)
{
	return json_pack("{s:s,s:f,s:O}", "id", CS_RO_RULE_PREFIX "percentage", "rolloutPercentage",
			 p, "variation", s->variation);
}

json_t *cs_ro_rules(const cs_ro_spec *s, int stage, double rb_pct)
{
	json_t *rules = json_array(), *segs = NULL;
	double p;

	if (rb_pct >= 0) {
		if (rb_pct > 0)
			json_array_append_new(rules, pct_rule(s, rb_pct));
		return rules;
	}
	for (int i = 0; i <= stage && i < (int)s->nstages; i++) {
		const cs_ro_stage *st = &s->st[i];
		if (st->kind == CS_RO_RING) {
			if (!segs)
				segs = json_array();
			for (size_t k = 0; k < json_array_size(st->segments); k++) {
				json_t *n = json_array_get(st->segments, k);
				bool dup = false;
				for (size_t q = 0; q < json_array_size(segs) && !dup; q++)
					dup = json_equal(json_array_get(segs, q), n);
				if (!dup)
					json_array_append(segs, n);
			}
		}
	}
	if (segs)
		json_array_append_new(rules, json_pack("{s:s,s:o,s:O}", "id", CS_RO_RULE_PREFIX "rings",
						       "segments", segs, "variation", s->variation));
	for (int i = 0; i <= stage && i < (int)s->nstages; i++) {
		const cs_ro_stage *st = &s->st[i];
		char id[48];
		if (st->kind != CS_RO_REGION)
			continue;
		snprintf(id, sizeof id, CS_RO_RULE_PREFIX "region.%d", i);
		json_array_append_new(
			rules, json_pack("{s:s,s:[{s:s,s:s,s:O}],s:O}", "id", id, "conditions",
					 "attribute", st->attr, "operator", "in", "value",
					 st->values, "variation", s->variation));
	}
	p = cs_ro_share(s, stage);
	if (p > 0)
		json_array_append_new(rules, pct_rule(s, p));
	return rules;
}

json_t *cs_ro_flag_with_rules(const json_t *flag, json_t *rules)
{
	json_t *f = json_deep_copy(flag), *old = json_object_get(f, "targeting");
	json_t *t = json_array(), *r;
	json_int_t maxp = 0;
	size_t i;
	bool any = false;

	json_array_foreach(old, i, r) {
		const char *id = json_string_value(json_object_get(r, "id"));
		if (id && !strncmp(id, CS_RO_RULE_PREFIX, strlen(CS_RO_RULE_PREFIX)))
			continue;
		json_t *p = json_object_get(r, "priority");
		json_int_t pv = json_is_integer(p) ? json_integer_value(p) : 0;
		if (!any || pv > maxp)
			maxp = pv;
		any = true;
		json_array_append(t, r);
	}
	/* Equal priorities keep file order: ours come after the flag's own. */
	json_array_foreach(rules, i, r) {
		if (maxp != 0)
			json_object_set_new(r, "priority", json_integer(maxp));
		json_array_append(t, r);
	}
	json_decref(rules);
	if (json_array_size(t) == 0 && !old)
		json_decref(t);
	else
		json_object_set_new(f, "targeting", t);
	return f;
}

size_t cs_ro_rb_steps(const cs_ro_spec *s, double share, double out[CS_RO_STEPS_MAX + 1])
{
	size_t n = 0;

	for (size_t i = 0; i < s->nrb; i++)
		if (s->rb_steps[i] < share && s->rb_steps[i] > 0)
			out[n++] = s->rb_steps[i];
	out[n++] = 0;
	return n;
}
