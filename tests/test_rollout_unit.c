/*
 * tests/test_rollout_unit.c - the pure parts of rollouts, without etcd or
 * Prometheus: durations, validation, the rules of a stage, the normal
 * distribution and the two-proportion test (with its error rates measured
 * by simulation on a fixed seed), the guard's verdict and the state
 * machine's steps.
 */
#include "rollout.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

Test(rollout_unit, durations)
{
	cr_expect_eq(cs_ro_duration("30s"), 30000);
	cr_expect_eq(cs_ro_duration("5m"), 300000);
	cr_expect_eq(cs_ro_duration("2h"), 7200000);
	cr_expect_eq(cs_ro_duration("1d"), 86400000);
	const char *bad[] = {"", "s", "0s", "5", "5x", "1.5h", "-1s", "30 s", "1dd",
			     "99999999999999999999d", "367d", NULL};
	for (const char **b = bad; *b; b++)
		cr_expect_eq(cs_ro_duration(*b), -1, "'%s' accepted", *b);
}

static json_t *parse_ok(const char *txt, cs_ro_spec *s)
{
	json_t *j = json_loads(txt, 0, NULL), *errs = json_array();
	cr_assert_not_null(j, "%s", txt);
	int rc = cs_ro_spec_parse(j, s, errs);
	char *e = json_dumps(errs, 0);
	cr_assert_eq(rc, 0, "%s", e);
	free(e);
	json_decref(errs);
	return j;
}

Test(rollout_unit, validation_names_every_problem)
{
	cs_ro_spec s;
	json_t *j = json_loads("{\"variation\":true,\"stages\":[{\"percentage\":101,\"duration\":"
			       "\"1s\"},{\"ring\":\"x\",\"soak\":\"1h\"},{\"percentage\":5,"
			       "\"region\":{\"attribute\":\"r\",\"values\":[\"a\"]}}],"
			       "\"successCriteria\":{\"errorRateThreshold\":2,\"confidence\":1},"
			       "\"rollback\":{\"steps\":[0,50]},\"checkInterval\":\"0s\","
			       "\"metrics\":{\"prometheus\":\"file:///etc/passwd\"}}",
			       0, NULL);
	json_t *errs = json_array();

	cr_assert_eq(cs_ro_spec_parse(j, &s, errs), -1);
	char *all = json_dumps(errs, 0);
	const char *want[] = {"stages[0].percentage", "stages[1].segments",
			      "stages[2]: exactly one", "errorRateThreshold", "confidence",
			      "rollback.steps[1]", "checkInterval", "metrics.prometheus", NULL};
	for (const char **w = want; *w; w++)
		cr_expect(strstr(all, *w), "no message about %s in %s", *w, all);
	free(all);
	json_decref(errs);
	json_decref(j);
}

Test(rollout_unit, rules_accumulate_rings_regions_and_the_share)
{
	cs_ro_spec s;
	json_t *j = parse_ok("{\"variation\":true,\"stages\":["
			     "{\"ring\":\"internal\",\"segments\":[\"employees\"],\"soak\":\"1h\"},"
			     "{\"percentage\":1,\"duration\":\"30m\"},"
			     "{\"ring\":\"early\",\"segments\":[\"beta\",\"employees\"],\"soak\":\"1h\"},"
			     "{\"region\":{\"attribute\":\"region\",\"values\":[\"eu-west-1\"]},"
			     "\"duration\":\"1d\"},{\"percentage\":100}],"
			     "\"rollback\":{\"steps\":[50,10,0]}}",
			     &s);
	json_t *r = cs_ro_rules(&s, 3, -1);
	char *t = json_dumps(r, JSON_COMPACT);
	cr_expect_str_eq(t, "[{\"id\":\"rollout.rings\",\"segments\":[\"employees\",\"beta\"],"
			    "\"variation\":true},{\"id\":\"rollout.region.3\",\"conditions\":"
			    "[{\"attribute\":\"region\",\"operator\":\"in\",\"value\":[\"eu-west-1\"]}],"
			    "\"variation\":true},{\"id\":\"rollout.percentage\",\"rolloutPercentage\":"
			    "1.0,\"variation\":true}]");
	free(t);
	json_decref(r);
	cr_expect_eq(cs_ro_share(&s, 0), 0);
	cr_expect_eq(cs_ro_share(&s, 3), 1);
	cr_expect_eq(cs_ro_share(&s, 4), 100);
	/* Rollback steps below the share, ending at 0. */
	double st[CS_RO_STEPS_MAX + 1];
	cr_expect_eq(cs_ro_rb_steps(&s, 100, st), 3);
	cr_expect(st[0] == 50 && st[1] == 10 && st[2] == 0);
	cr_expect_eq(cs_ro_rb_steps(&s, 20, st), 2);
	cr_expect(st[0] == 10 && st[1] == 0);
	cr_expect_eq(cs_ro_rb_steps(&s, 1, st), 1);
	/* The flag's own rules first; old rollout rules replaced. */
	json_t *flag = json_loads("{\"key\":\"f\",\"defaultValue\":false,\"targeting\":["
				  "{\"id\":\"rollout.percentage\",\"rolloutPercentage\":3,\"variation\":true},"
				  "{\"id\":\"block\",\"priority\":5,\"conditions\":[],\"variation\":false}]}",
				  0, NULL);
	json_t *nf = cs_ro_flag_with_rules(flag, cs_ro_rules(&s, 1, -1));
	t = json_dumps(json_object_get(nf, "targeting"), JSON_COMPACT);
	cr_expect_str_eq(t, "[{\"id\":\"block\",\"priority\":5,\"conditions\":[],\"variation\":false},"
			    "{\"id\":\"rollout.rings\",\"segments\":[\"employees\"],\"variation\":true,"
			    "\"priority\":5},{\"id\":\"rollout.percentage\",\"rolloutPercentage\":1.0,"
			    "\"variation\":true,\"priority\":5}]");
	free(t);
	json_decref(nf);
	json_decref(flag);
	json_decref(j);
}

Test(rollout_unit, the_normal_distribution)
{
	cr_expect(fabs(cs_ro_norm_cdf(1.959964) - 0.975) < 1e-6);
	cr_expect(fabs(cs_ro_norm_quantile(0.95) - 1.644854) < 1e-5);
	cr_expect(fabs(cs_ro_norm_quantile(0.99) - 2.326348) < 1e-5);
	cr_expect(isnan(cs_ro_norm_quantile(1)));
	/* 1% base rate, a 1-point regression, 95% confidence, 80% power. */
	double n = cs_ro_sample_size(0.01, 0, 0.01, 0.95, 0.80);
	cr_expect(n > 1800 && n < 1850, "n = %g", n);
}

/* A fixed-seed generator: the simulation gives the same figures on every run. */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double unif(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}

static double binom(double n, double p)
{
	double k = 0;
	for (int i = 0; i < (int)n; i++)
		k += unif() < p;
	return k;
}

Test(rollout_unit, the_test_keeps_its_error_rates)
{
	const int trials = 2000;
	double zc = cs_ro_norm_quantile(0.95);
	int false_alarms = 0, detected = 0;
	double n = cs_ro_sample_size(0.02, 0.005, 0.01, 0.95, 0.80);

	/* Equal rates, 2% each, tolerance 0: about 5% false alarms at 95%. */
	for (int t = 0; t < trials; t++)
		false_alarms += cs_ro_ztest(binom(4000, 0.02), 4000, binom(4000, 0.02), 4000, 0) > zc;
	cr_expect(false_alarms > trials * 0.03 && false_alarms < trials * 0.07,
		  "false alarms %d of %d", false_alarms, trials);
	/* A regression of tolerance + 1 point at the documented sample size: ~80% found. */
	for (int t = 0; t < trials; t++)
		detected += cs_ro_ztest(binom(n, 0.035), n, binom(n, 0.02), n, 0.005) > zc;
	cr_log_info("false alarms %d/%d, detected %d/%d at n=%g", false_alarms, trials, detected,
		    trials, n);
	cr_expect(detected > trials * 0.72 && detected < trials * 0.88, "detected %d of %d (n %g)",
		  detected, trials, n);
}

Test(rollout_unit, the_verdict)
{
	cs_ro_criteria c = {.error_rate = 0.05, .p99 = 0.5, .max_regression = 0.005,
			 .max_latency_regression = -1, .min_samples = 1000, .confidence = 0.95,
			 .max_wait_ms = -1};
	cs_ro_verdict v;
	cs_ro_sample t = {999, 0, 0.1}, k = {100000, 100, 0.1};

	cs_ro_guard_decide(&c, &t, &k, &v);
	cr_expect_eq(v.v, CS_RO_WAIT, "%s", v.why);
	t = (cs_ro_sample){2000, 200, 0.1};
	cs_ro_guard_decide(&c, &t, &k, &v);
	cr_expect_eq(v.v, CS_RO_FAIL, "%s", v.why);
	cr_expect(strstr(v.why, "errorRateThreshold"), "%s", v.why);
	t = (cs_ro_sample){2000, 2, 0.9};
	cs_ro_guard_decide(&c, &t, &k, &v);
	cr_expect_eq(v.v, CS_RO_FAIL);
	cr_expect(strstr(v.why, "latencyP99Threshold"), "%s", v.why);
	/* 3% vs 0.1% control: a regression though under the 5% threshold. */
	t = (cs_ro_sample){5000, 150, 0.1};
	cs_ro_guard_decide(&c, &t, &k, &v);
	cr_expect_eq(v.v, CS_RO_FAIL, "%s", v.why);
	cr_expect(v.z > v.z_crit);
	/* The same rate as control: pass. */
	t = (cs_ro_sample){5000, 5, 0.1};
	cs_ro_guard_decide(&c, &t, &k, &v);
	cr_expect_eq(v.v, CS_RO_PASS, "%s", v.why);
	/* Too few control requests (at 100%): the thresholds alone decide. */
	k = (cs_ro_sample){10, 0, NAN};
	t = (cs_ro_sample){5000, 150, 0.1};
	cs_ro_guard_decide(&c, &t, &k, &v);
	cr_expect_eq(v.v, CS_RO_PASS, "%s", v.why);
	cr_expect(isnan(v.z));
}

static json_t *check(const char *verdict)
{
	return json_pack("{s:s,s:s}", "verdict", verdict, "reason", verdict);
}

static const char *status(json_t *st)
{
	return json_string_value(json_object_get(st, "status"));
}

static json_int_t stage(json_t *st)
{
	return json_integer_value(json_object_get(st, "stage"));
}

Test(rollout_unit, the_state_machine)
{
	cs_ro_spec s;
	cs_ro_step o;
	json_t *j = parse_ok("{\"variation\":true,\"stages\":[{\"percentage\":10,\"duration\":\"2s\"},"
			     "{\"percentage\":100}],\"checkInterval\":\"1s\","
			     "\"successCriteria\":{\"maxWait\":\"5s\"},"
			     "\"rollback\":{\"steps\":[50,5,0],\"interval\":\"3s\"},"
			     "\"metrics\":{\"prometheus\":\"http://127.0.0.1:1\"}}",
			     &s);
	json_t *st = cs_ro_state_new(0);
	int64_t t = 1000;

	/* Stage 0 is entered at once (no gate), with the flag's rules. */
	cs_ro_decide(&s, st, t, NULL, &o);
	cr_assert_not_null(o.state);
	cr_expect(o.flag_change && !strcmp(o.action, "advance"));
	json_decref(st), st = o.state;
	cr_expect_eq(stage(st), 0);
	cr_expect(!cs_ro_check_due(&s, st, t + 500));
	cr_expect(cs_ro_check_due(&s, st, t + 1000));
	/* Too few samples: waiting-samples, then paused after maxWait. */
	cs_ro_decide(&s, st, t + 1000, check("wait"), &o);
	json_decref(st), st = o.state;
	cr_expect_str_eq(status(st), "waiting-samples");
	cs_ro_decide(&s, st, t + 3000, check("wait"), &o);
	json_decref(st), st = o.state;
	cr_expect_str_eq(status(st), "waiting-samples", "the duration passed without a pass");
	cs_ro_decide(&s, st, t + 6500, check("wait"), &o);
	json_decref(st), st = o.state;
	cr_expect_str_eq(status(st), "paused");
	cr_expect(strstr(json_string_value(json_object_get(st, "message")), "maxWait"));
	/* Resume, pass, advance to 100%: completed (no duration). */
	char why[128];
	json_t *r = cs_ro_resume(st, t + 7000, why, sizeof why);
	json_decref(st), st = r;
	cs_ro_decide(&s, st, t + 7000, check("pass"), &o);
	json_decref(st), st = o.state;
	cr_expect_str_eq(status(st), "completed");
	cr_expect_eq(stage(st), 1);
	/* A failed guard at 100%: 50, then the guard fails again on the 50%
	 * step's data: straight to 0. */
	json_object_set_new(st, "status", json_string("running"));
	cs_ro_decide(&s, st, t + 8000, check("fail"), &o);
	json_decref(st), st = o.state;
	cr_expect_str_eq(status(st), "rolling-back");
	json_t *rules = cs_ro_state_rules(&s, st);
	cr_expect_eq(json_number_value(json_object_get(json_array_get(rules, 0),
						       "rolloutPercentage")), 50);
	json_decref(rules);
	cs_ro_decide(&s, st, t + 9000, check("fail"), &o);
	json_decref(st), st = o.state;
	cr_expect_str_eq(status(st), "rolled-back");
	rules = cs_ro_state_rules(&s, st);
	cr_expect_eq(json_array_size(rules), 0);
	json_decref(rules);
	json_decref(st);
	json_decref(j);
}

Test(rollout_unit, gates_and_approvals)
{
	cs_ro_spec s;
	cs_ro_step o;
	char why[256];
	int code = 0;
	json_t *j = parse_ok("{\"variation\":true,\"autoProgress\":false,\"stages\":["
			     "{\"percentage\":10,\"duration\":\"1s\"},"
			     "{\"percentage\":50,\"duration\":\"1s\",\"requiredApprovals\":[\"rm\",\"sre\"]},"
			     "{\"percentage\":100}]}",
			     &s);
	json_t *st = cs_ro_state_new(0), *g_rm = json_pack("[s]", "rm"), *g_x = json_pack("[s]", "x");

	cs_ro_decide(&s, st, 0, NULL, &o); /* stage 0: no gate before the first stage */
	json_decref(st), st = o.state;
	cs_ro_decide(&s, st, 1000, NULL, &o);
	json_decref(st), st = o.state;
	cr_expect_str_eq(status(st), "waiting-approval");
	json_t *a = cs_ro_approve(&s, st, "ann", g_rm, why, sizeof why, &code);
	cr_assert_not_null(a, "%s", why);
	json_decref(st), st = a;
	cs_ro_decide(&s, st, 1100, NULL, &o);
	cr_expect_null(o.state, "advanced without the sre group");
	json_t *g_sre = json_pack("[s]", "sre");
	a = cs_ro_approve(&s, st, "bob", g_sre, why, sizeof why, &code);
	json_decref(g_sre);
	json_decref(st), st = a;
	cs_ro_decide(&s, st, 1200, NULL, &o);
	json_decref(st), st = o.state;
	cr_expect_eq(stage(st), 1);
	/* autoProgress false: the next stage needs someone's approval too. */
	cs_ro_decide(&s, st, 2300, NULL, &o);
	json_decref(st), st = o.state;
	cr_expect_str_eq(status(st), "waiting-approval");
	a = cs_ro_approve(&s, st, "carl", g_x, why, sizeof why, &code);
	cr_assert_not_null(a, "%s", why);
	json_decref(st), st = a;
	cs_ro_decide(&s, st, 2400, NULL, &o);
	json_decref(st), st = o.state;
	cr_expect_str_eq(status(st), "completed");
	json_decref(st);
	json_decref(g_rm);
	json_decref(g_x);
	json_decref(j);
}

Test(rollout_unit, the_history_stays_bounded_and_keeps_its_ends)
{
	json_t *st = cs_ro_state_new(0);

	for (int i = 0; i < 5 * CS_RO_HISTORY_MAX; i++)
		cs_ro_history_add(st, json_pack("{s:i}", "t", i));
	json_t *h = json_object_get(st, "history");
	cr_expect_leq(json_array_size(h), CS_RO_HISTORY_MAX);
	cr_expect_geq(json_array_size(h), CS_RO_HISTORY_MAX / 2);
	cr_expect_eq(json_integer_value(json_object_get(json_array_get(h, 0), "t")), 0);
	cr_expect_eq(json_integer_value(json_object_get(json_array_get(h, json_array_size(h) - 1),
							"t")),
		     5 * CS_RO_HISTORY_MAX - 1);
	/* Still in time order. */
	for (size_t i = 1; i < json_array_size(h); i++)
		cr_expect_lt(json_integer_value(json_object_get(json_array_get(h, i - 1), "t")),
			     json_integer_value(json_object_get(json_array_get(h, i), "t")));
	json_decref(st);
}
