/*
 * control/guard.c - the guard's statistics and verdict (docs/rollouts.md,
 * "Guards"). Pure functions.
 *
 * The regression test is a one-sided two-proportion z-test of
 *   H0: p_treatment - p_control <= maxRegressionVsControl
 * against H1: the treatment's error rate exceeds the control's by more,
 * rejected (the guard fails) when z > z_(confidence). Unpooled variance
 * (H0 does not say the rates are equal), each rate's variance taken at
 * (errors + 0.5) / (n + 1) so that a group with no error yet does not
 * claim zero variance.
 */
#include "rollout.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

double cs_ro_norm_cdf(double x)
{
	return 0.5 * erfc(-x / M_SQRT2);
}

double cs_ro_norm_quantile(double p)
{
	double lo = -40, hi = 40;

	if (!(p > 0 && p < 1))
		return NAN;
	for (int i = 0; i < 200; i++) {
		double mid = (lo + hi) / 2;
		if (cs_ro_norm_cdf(mid) < p)
			lo = mid;
		else
			hi = mid;
	}
	return (lo + hi) / 2;
}

double cs_ro_ztest(double et, double nt, double ec, double nc, double delta)
{
	double pt, pc, vt, vc, se;

	if (!(nt > 0 && nc > 0))
		return NAN;
	pt = et / nt;
	pc = ec / nc;
	vt = (et + 0.5) / (nt + 1);
	vc = (ec + 0.5) / (nc + 1);
	se = sqrt(vt * (1 - vt) / nt + vc * (1 - vc) / nc);
	return (pt - pc - delta) / se;
}

double cs_ro_sample_size(double p, double delta, double effect, double confidence, double power)
{
	double za = cs_ro_norm_quantile(confidence), zb = cs_ro_norm_quantile(power);
	double p2 = p + delta + effect;

	if (!(effect > 0) || p2 >= 1)
		return NAN;
	return ceil((za + zb) * (za + zb) * (p * (1 - p) + p2 * (1 - p2)) / (effect * effect));
}

void cs_ro_guard_decide(const cs_ro_criteria *c, const cs_ro_sample *t, const cs_ro_sample *ctl,
		     cs_ro_verdict *out)
{
	double rt = t->n > 0 ? t->errors / t->n : 0;
	bool ctl_ok = ctl->n >= c->min_samples;

	memset(out, 0, sizeof *out);
	out->z = out->z_crit = NAN;
	if (!(t->n >= c->min_samples)) {
		out->v = CS_RO_WAIT;
		snprintf(out->why, sizeof out->why,
			 "%.0f treatment requests, fewer than minimumSampleSize %.0f", t->n,
			 c->min_samples);
		return;
	}
	if (c->error_rate >= 0 && rt > c->error_rate) {
		out->v = CS_RO_FAIL;
		snprintf(out->why, sizeof out->why,
			 "treatment error rate %.4f above errorRateThreshold %.4f", rt,
			 c->error_rate);
		return;
	}
	if (c->p99 >= 0 && !isnan(t->p99) && t->p99 > c->p99) {
		out->v = CS_RO_FAIL;
		snprintf(out->why, sizeof out->why,
			 "treatment p99 %.4f s above latencyP99Threshold %.4f s", t->p99, c->p99);
		return;
	}
	if (ctl_ok && c->max_regression >= 0) {
		out->z = cs_ro_ztest(t->errors, t->n, ctl->errors, ctl->n, c->max_regression);
		out->z_crit = cs_ro_norm_quantile(c->confidence);
		if (out->z > out->z_crit) {
			out->v = CS_RO_FAIL;
			snprintf(out->why, sizeof out->why,
				 "error rate %.4f vs control %.4f: worse by more than %.4f "
				 "(z %.2f > %.2f, confidence %.3f)",
				 rt, ctl->errors / ctl->n, c->max_regression, out->z, out->z_crit,
				 c->confidence);
			return;
		}
	}
	if (ctl_ok && c->max_latency_regression >= 0 && !isnan(t->p99) && !isnan(ctl->p99) &&
	    t->p99 - ctl->p99 > c->max_latency_regression) {
		out->v = CS_RO_FAIL;
		snprintf(out->why, sizeof out->why,
			 "p99 %.4f s vs control %.4f s: worse by more than %.4f s", t->p99,
			 ctl->p99, c->max_latency_regression);
		return;
	}
	out->v = CS_RO_PASS;
	snprintf(out->why, sizeof out->why, "%s",
		 ctl_ok ? "within thresholds and not worse than control"
			: "within thresholds (too few control requests to compare)");
}

static json_t *num_or_null(double d)
{
	return isfinite(d) ? json_real(d) : json_null();
}

static json_t *sample_json(const cs_ro_sample *s)
{
	return json_pack("{s:f,s:f,s:o,s:o}", "requests", s->n, "errors", s->errors, "errorRate",
			 s->n > 0 ? json_real(s->errors / s->n) : json_null(), "p99",
			 num_or_null(s->p99));
}

json_t *cs_ro_verdict_json(const cs_ro_verdict *v, const cs_ro_sample *t, const cs_ro_sample *ctl)
{
	static const char *const names[] = {"pass", "fail", "wait"};

	return json_pack("{s:s,s:s,s:o,s:o,s:o,s:o}", "verdict", names[v->v], "reason", v->why,
			 "treatment", sample_json(t), "control", sample_json(ctl), "z",
			 num_or_null(v->z), "zCritical", num_or_null(v->z_crit));
}
