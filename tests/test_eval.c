/*
 * tests/test_eval.c - the evaluation steps of docs/flag-format.md: the kill
 * switch, prerequisites, rules in priority order with fall-through,
 * splits, the default rollout, bucketing, environments, every reason and
 * error code, and the value types.
 */
#include <criterion/criterion.h>

#include "eval.h"
#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static flagshm_ctx user(const char *id)
{
	flagshm_ctx c;
	flagshm_ctx_init(&c);
	if (id)
		flagshm_ctx_string(&c, "userId", id);
	return c;
}

#define EXPECT_REASON(r, want)                                                             \
	cr_expect_eq((r).reason, (want), "reason %s, want %s (error %s)",                  \
		     flagshm_reason_name((r).reason), flagshm_reason_name(want),            \
		     flagshm_error_code_name((r).error_code))

#define EXPECT_RULE(r, want)                                                               \
	do {                                                                               \
		const char *w_ = (want);                                                   \
		if (!w_)                                                                   \
			cr_expect_null((r).rule_id, "rule_id %s, want none", (r).rule_id); \
		else                                                                       \
			cr_expect(((r).rule_id && strcmp((r).rule_id, w_) == 0),           \
				  "rule_id %s, want %s", (r).rule_id ? (r).rule_id : "(null)", w_); \
	} while (0)

#define EXPECT_STR(r, want)                                                                \
	do {                                                                               \
		const char *w_ = (want);                                                   \
		cr_expect(((r).value.str.ptr && strcmp((r).value.str.ptr, w_) == 0 &&      \
			   (r).value.str.len == strlen(w_)),                               \
			  "value \"%s\", want \"%s\"", (r).value.str.ptr ? (r).value.str.ptr : "(null)", w_); \
	} while (0)

/* ------------------------------------------------------- rule order */

static const char *RULES_DOC =
	"{'formatVersion': 1, 'flags': [{'key': 'f', 'defaultValue': 'default', 'offValue': 'off',"
	" 'rolloutPercentage': 100, 'targeting': ["
	"  {'id': 'late', 'priority': 5, 'conditions': [{'attribute': 'tier', 'operator': 'equals', 'value': 'beta'}], 'variation': 'late'},"
	"  {'id': 'early', 'priority': 1, 'conditions': [{'attribute': 'tier', 'operator': 'equals', 'value': 'beta'}], 'variation': 'early'},"
	"  {'id': 'tie-first', 'priority': 3, 'conditions': [{'attribute': 'country', 'operator': 'equals', 'value': 'DE'}], 'variation': 'tie-first'},"
	"  {'id': 'tie-second', 'priority': 3, 'conditions': [{'attribute': 'country', 'operator': 'equals', 'value': 'DE'}], 'variation': 'tie-second'},"
	"  {'id': 'nobody', 'priority': 4, 'conditions': [{'attribute': 'country', 'operator': 'equals', 'value': 'FR'}], 'rolloutPercentage': 0, 'variation': 'nobody'},"
	"  {'id': 'no-conditions', 'priority': 9, 'conditions': [], 'rolloutPercentage': 100, 'variation': 'everyone'}"
	"]}]}";

Test(eval, rules_apply_in_priority_order_ties_in_file_order)
{
	snap *s = th_snap(RULES_DOC, NULL);
	flagshm_ctx c = user("u-1");
	flagshm_ctx_string(&c, "tier", "beta");
	flagshm_ctx_string(&c, "country", "DE");
	flagshm_result r = th_eval(s, "f", &c);
	EXPECT_REASON(r, FLAGSHM_REASON_RULE_MATCH);
	EXPECT_RULE(r, "early");
	EXPECT_STR(r, "early");
	cr_expect_eq(r.error_code, FLAGSHM_CODE_NONE);

	c = user("u-1");
	flagshm_ctx_string(&c, "country", "DE");
	r = th_eval(s, "f", &c);
	EXPECT_RULE(r, "tie-first");
	EXPECT_STR(r, "tie-first");
	th_snap_free(s);
}

Test(eval, a_rule_that_holds_but_excludes_the_bucket_falls_through)
{
	snap *s = th_snap(RULES_DOC, NULL);
	flagshm_ctx c = user("u-1");
	flagshm_ctx_string(&c, "country", "FR");
	flagshm_result r = th_eval(s, "f", &c);
	/* "nobody" holds but has rollout 0: on to the catch-all rule. */
	EXPECT_REASON(r, FLAGSHM_REASON_RULE_MATCH);
	EXPECT_RULE(r, "no-conditions");
	EXPECT_STR(r, "everyone");
	th_snap_free(s);
}

Test(eval, no_rule_holds_gives_the_default_rollout_then_off)
{
	const char *doc =
		"{'formatVersion': 1, 'flags': ["
		" {'key': 'all', 'defaultValue': true, 'rolloutPercentage': 100,"
		"  'targeting': [{'id': 'r', 'conditions': [{'attribute': 'x', 'operator': 'equals', 'value': 1}], 'variation': false}]},"
		" {'key': 'none', 'defaultValue': true, 'rolloutPercentage': 0}]}";
	snap *s = th_snap(doc, NULL);
	flagshm_ctx c = user("u-1");
	flagshm_result r = th_eval(s, "all", &c);
	EXPECT_REASON(r, FLAGSHM_REASON_DEFAULT_ROLLOUT);
	EXPECT_RULE(r, NULL);
	cr_expect_eq(r.type, FLAGSHM_TYPE_BOOL);
	cr_expect(r.value.b);
	r = th_eval(s, "none", &c);
	EXPECT_REASON(r, FLAGSHM_REASON_DEFAULT_OFF);
	cr_expect_eq(r.type, FLAGSHM_TYPE_BOOL);
	cr_expect(!r.value.b, "offValue of a boolean flag defaults to false");
	cr_expect_eq(r.error_code, FLAGSHM_CODE_NONE);
	th_snap_free(s);
}

/* ---------------------------------------------------------- rollout */

Test(eval, rollout_is_monotonic_every_id_inside_10_is_inside_20, .timeout = 60)
{
	const char *doc =
		"{'formatVersion': 1, 'flags': ["
		" {'key': 'ten', 'salt': 'same', 'defaultValue': true, 'rolloutPercentage': 10},"
		" {'key': 'twenty', 'salt': 'same', 'defaultValue': true, 'rolloutPercentage': 20}]}";
	snap *s = th_snap(doc, NULL);
	int in10 = 0, in20 = 0;
	for (int i = 0; i < 100000; i++) {
		char id[32];
		snprintf(id, sizeof id, "user-%d", i);
		flagshm_ctx c = user(id);
		flagshm_result a = th_eval(s, "ten", &c), b = th_eval(s, "twenty", &c);
		bool ia = a.reason == FLAGSHM_REASON_DEFAULT_ROLLOUT;
		bool ib = b.reason == FLAGSHM_REASON_DEFAULT_ROLLOUT;
		in10 += ia;
		in20 += ib;
		if (ia && !ib)
			cr_assert_fail("%s is inside 10%% but not inside 20%%", id);
	}
	cr_expect_gt(in20, in10);
	th_snap_free(s);
}

Test(eval, rollout_balance_within_half_a_point_over_100000_ids, .timeout = 60)
{
	const char *doc =
		"{'formatVersion': 1, 'flags': ["
		" {'key': 'p10', 'defaultValue': true, 'rolloutPercentage': 10},"
		" {'key': 'p25', 'defaultValue': true, 'rolloutPercentage': 25},"
		" {'key': 'p50', 'defaultValue': true, 'rolloutPercentage': 50}]}";
	snap *s = th_snap(doc, NULL);
	const char *keys[] = {"p10", "p25", "p50"};
	const double pct[] = {10, 25, 50};
	for (int k = 0; k < 3; k++) {
		int inside = 0;
		for (int i = 0; i < 100000; i++) {
			char id[32];
			snprintf(id, sizeof id, "u%d", i);
			flagshm_ctx c = user(id);
			flagshm_result r = th_eval(s, keys[k], &c);
			inside += r.reason == FLAGSHM_REASON_DEFAULT_ROLLOUT;
		}
		double got = inside / 1000.0;
		cr_expect(fabs(got - pct[k]) <= 0.5, "%s: %.3f%% inside, want %.0f%% +- 0.5", keys[k],
			  got, pct[k]);
	}
	th_snap_free(s);
}

Test(eval, bucket_is_the_documented_formula_and_percentages_have_three_decimals)
{
	const char *doc = "{'formatVersion': 1, 'flags': [{'key': 'f', 'salt': 'pepper',"
			  " 'defaultValue': true, 'rolloutPercentage': 12.345}]}";
	snap *s = th_snap(doc, NULL);
	for (int i = 0; i < 20000; i++) {
		char id[32];
		int n = snprintf(id, sizeof id, "id-%d", i);
		uint32_t b = eval_bucket("pepper", 6, id, (size_t)n);
		flagshm_ctx c = user(id);
		flagshm_result r = th_eval(s, "f", &c);
		bool inside = r.reason == FLAGSHM_REASON_DEFAULT_ROLLOUT;
		if (inside != (b < 12345))
			cr_assert_fail("%s: bucket %u, inside %d", id, b, inside);
	}
	th_snap_free(s);
}

Test(eval, without_a_bucketing_id_only_a_100_percent_rollout_holds)
{
	const char *doc =
		"{'formatVersion': 1, 'flags': ["
		" {'key': 'full', 'defaultValue': true, 'rolloutPercentage': 100},"
		" {'key': 'almost', 'defaultValue': true, 'rolloutPercentage': 99.999},"
		" {'key': 'rule', 'defaultValue': 'd', 'offValue': 'o', 'rolloutPercentage': 0,"
		"  'targeting': [{'id': 'half', 'conditions': [], 'rolloutPercentage': 50, 'variation': 'half'},"
		"                {'id': 'all', 'conditions': [], 'variation': 'all'}]}]}";
	snap *s = th_snap(doc, NULL);
	flagshm_ctx none = user(NULL);
	EXPECT_REASON(th_eval(s, "full", &none), FLAGSHM_REASON_DEFAULT_ROLLOUT);
	EXPECT_REASON(th_eval(s, "full", NULL), FLAGSHM_REASON_DEFAULT_ROLLOUT);
	EXPECT_REASON(th_eval(s, "almost", &none), FLAGSHM_REASON_DEFAULT_OFF);
	flagshm_result r = th_eval(s, "rule", &none);
	EXPECT_RULE(r, "all");
	/* A bool userId is no bucketing id either. */
	flagshm_ctx b;
	flagshm_ctx_init(&b);
	flagshm_ctx_bool(&b, "userId", true);
	EXPECT_REASON(th_eval(s, "almost", &b), FLAGSHM_REASON_DEFAULT_OFF);
	th_snap_free(s);
}

Test(eval, bucket_by_a_custom_attribute_and_integral_number_ids)
{
	const char *doc = "{'formatVersion': 1, 'flags': [{'key': 'f', 'bucketBy': 'deviceId',"
			  " 'salt': 's', 'defaultValue': true, 'rolloutPercentage': 50}]}";
	snap *s = th_snap(doc, NULL);

	/* userId is not the bucketing attribute here. */
	flagshm_ctx c = user("u-1");
	EXPECT_REASON(th_eval(s, "f", &c), FLAGSHM_REASON_DEFAULT_OFF);

	int agree = 0;
	for (int i = -50; i < 50; i++) {
		char id[16];
		int n = snprintf(id, sizeof id, "%d", i);
		bool want = eval_bucket("s", 1, id, (size_t)n) < 50000;
		flagshm_ctx cs = user("u-1"), cn = user("u-1");
		flagshm_ctx_string(&cs, "deviceId", id);
		flagshm_ctx_number(&cn, "deviceId", i);
		flagshm_result rs = th_eval(s, "f", &cs), rn = th_eval(s, "f", &cn);
		cr_expect_eq(rs.reason == FLAGSHM_REASON_DEFAULT_ROLLOUT, want, "string id %s", id);
		cr_expect_eq(rn.reason, rs.reason, "number id %d buckets like \"%s\"", i, id);
		agree += want;
	}
	cr_expect(agree > 0 && agree < 100, "both sides of 50%% are exercised");

	/* Large integral numbers print in full, not in exponent form. */
	flagshm_ctx big = user(NULL);
	flagshm_ctx_number(&big, "deviceId", 4503599627370496.0); /* 2^52 */
	bool want = eval_bucket("s", 1, "4503599627370496", 16) < 50000;
	cr_expect_eq(th_eval(s, "f", &big).reason == FLAGSHM_REASON_DEFAULT_ROLLOUT, want);

	/* Non-integral, too large, NaN, bool and list ids count as missing:
	 * at 50% such a context is outside. */
	const double bad[] = {1.5, -0.25, 9007199254740992.0, 1e300, NAN, INFINITY};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		flagshm_ctx cb = user(NULL);
		flagshm_ctx_number(&cb, "deviceId", bad[i]);
		EXPECT_REASON(th_eval(s, "f", &cb), FLAGSHM_REASON_DEFAULT_OFF);
	}
	flagshm_ctx cl = user(NULL);
	const char *items[] = {"a"};
	flagshm_ctx_list(&cl, "deviceId", items, 1);
	EXPECT_REASON(th_eval(s, "f", &cl), FLAGSHM_REASON_DEFAULT_OFF);
	th_snap_free(s);
}

/* ----------------------------------------------------------- splits */

static const char *SPLIT_DOC =
	"{'formatVersion': 1, 'flags': [{'key': 'exp', 'type': 'experiment', 'salt': 'exp-salt',"
	" 'defaultValue': 'control', 'offValue': 'off', 'rolloutPercentage': 0,"
	" 'targeting': ["
	"  {'id': 'ab', 'conditions': [{'attribute': 'country', 'operator': 'equals', 'value': 'DE'}],"
	"   'split': [{'value': 'a', 'weight': 20}, {'value': 'b', 'weight': 30.5}, {'value': 'c', 'weight': 49.5}]},"
	"  {'id': 'fallback', 'conditions': [], 'variation': 'fallback'}]}]}";

Test(eval, split_serves_the_value_whose_band_holds_the_bucket, .timeout = 60)
{
	snap *s = th_snap(SPLIT_DOC, NULL);
	int count[3] = {0, 0, 0};
	for (int i = 0; i < 100000; i++) {
		char id[32];
		int n = snprintf(id, sizeof id, "user-%d", i);
		uint32_t b = eval_bucket("exp-salt", 8, id, (size_t)n);
		const char *want = b < 20000 ? "a" : b < 50500 ? "b" : "c";
		flagshm_ctx c = user(id);
		flagshm_ctx_string(&c, "country", "DE");
		flagshm_result r = th_eval(s, "exp", &c);
		if (r.reason != FLAGSHM_REASON_SPLIT || strcmp(r.value.str.ptr, want) != 0 ||
		    !r.rule_id || strcmp(r.rule_id, "ab") != 0)
			cr_assert_fail("%s (bucket %u): %s \"%s\" rule %s, want SPLIT \"%s\" rule ab", id,
				       b, flagshm_reason_name(r.reason),
				       r.value.str.ptr ? r.value.str.ptr : "", r.rule_id ? r.rule_id : "-",
				       want);
		count[want[0] - 'a']++;
	}
	cr_expect(fabs(count[0] / 1000.0 - 20) <= 0.5, "a: %.3f%%", count[0] / 1000.0);
	cr_expect(fabs(count[1] / 1000.0 - 30.5) <= 0.5, "b: %.3f%%", count[1] / 1000.0);
	cr_expect(fabs(count[2] / 1000.0 - 49.5) <= 0.5, "c: %.3f%%", count[2] / 1000.0);
	th_snap_free(s);
}

Test(eval, a_split_rule_is_skipped_without_a_bucketing_id)
{
	snap *s = th_snap(SPLIT_DOC, NULL);
	flagshm_ctx c = user(NULL);
	flagshm_ctx_string(&c, "country", "DE");
	flagshm_result r = th_eval(s, "exp", &c);
	EXPECT_REASON(r, FLAGSHM_REASON_RULE_MATCH);
	EXPECT_RULE(r, "fallback");
	EXPECT_STR(r, "fallback");
	/* And a split rule whose conditions fail is skipped like any rule. */
	c = user("u-1");
	flagshm_ctx_string(&c, "country", "FR");
	r = th_eval(s, "exp", &c);
	EXPECT_RULE(r, "fallback");
	th_snap_free(s);
}

/* ---------------------------------------------------- prerequisites */

static const char *PREREQ_DOC =
	"{'formatVersion': 1, 'flags': ["
	" {'key': 'payments-v2', 'defaultValue': true, 'rolloutPercentage': 100,"
	"  'targeting': [{'id': 'no-fr', 'conditions': [{'attribute': 'country', 'operator': 'equals', 'value': 'FR'}], 'variation': false}]},"
	" {'key': 'theme', 'defaultValue': 'dark', 'offValue': 'light', 'rolloutPercentage': 100,"
	"  'targeting': [{'id': 'uk', 'conditions': [{'attribute': 'country', 'operator': 'equals', 'value': 'UK'}], 'variation': 'light'}]},"
	" {'key': 'checkout', 'defaultValue': 'new', 'offValue': 'old', 'rolloutPercentage': 100,"
	"  'prerequisites': [{'key': 'payments-v2', 'value': true}, {'key': 'theme', 'value': 'dark'}]},"
	" {'key': 'top', 'defaultValue': 1, 'offValue': 0, 'rolloutPercentage': 100,"
	"  'prerequisites': [{'key': 'checkout', 'value': 'new'}]},"
	" {'key': 'wants-off', 'defaultValue': true, 'rolloutPercentage': 100,"
	"  'prerequisites': [{'key': 'payments-v2', 'value': false}]}]}";

Test(eval, prerequisites_that_hold_let_evaluation_continue)
{
	snap *s = th_snap(PREREQ_DOC, NULL);
	flagshm_ctx c = user("u-1");
	flagshm_ctx_string(&c, "country", "DE");
	flagshm_result r = th_eval(s, "checkout", &c);
	EXPECT_REASON(r, FLAGSHM_REASON_DEFAULT_ROLLOUT);
	EXPECT_STR(r, "new");
	r = th_eval(s, "top", &c);
	EXPECT_REASON(r, FLAGSHM_REASON_DEFAULT_ROLLOUT);
	cr_expect_eq(r.type, FLAGSHM_TYPE_NUMBER);
	cr_expect_eq(r.value.num, 1);
	th_snap_free(s);
}

Test(eval, a_prerequisite_with_another_value_gives_off_and_prerequisite_failed)
{
	snap *s = th_snap(PREREQ_DOC, NULL);
	/* payments-v2 is false for FR (same context, fully evaluated). */
	flagshm_ctx c = user("u-1");
	flagshm_ctx_string(&c, "country", "FR");
	flagshm_result r = th_eval(s, "checkout", &c);
	EXPECT_REASON(r, FLAGSHM_REASON_PREREQUISITE_FAILED);
	EXPECT_STR(r, "old");
	EXPECT_RULE(r, NULL);
	cr_expect_eq(r.error_code, FLAGSHM_CODE_NONE);
	/* Transitively. */
	r = th_eval(s, "top", &c);
	EXPECT_REASON(r, FLAGSHM_REASON_PREREQUISITE_FAILED);
	cr_expect_eq(r.value.num, 0);
	/* A string prerequisite: theme is "light" in the UK. */
	c = user("u-1");
	flagshm_ctx_string(&c, "country", "UK");
	r = th_eval(s, "checkout", &c);
	EXPECT_REASON(r, FLAGSHM_REASON_PREREQUISITE_FAILED);
	/* A prerequisite may require false. */
	EXPECT_REASON(th_eval(s, "wants-off", &c), FLAGSHM_REASON_PREREQUISITE_FAILED);
	c = user("u-1");
	flagshm_ctx_string(&c, "country", "FR");
	EXPECT_REASON(th_eval(s, "wants-off", &c), FLAGSHM_REASON_DEFAULT_ROLLOUT);
	c = user("u-1");
	EXPECT_REASON(th_eval(s, "wants-off", &c), FLAGSHM_REASON_PREREQUISITE_FAILED);
	th_snap_free(s);
}

Test(eval, a_disabled_prerequisite_serves_its_off_value)
{
	const char *doc = "{'formatVersion': 1, 'flags': ["
			  " {'key': 'p', 'enabled': false, 'defaultValue': true},"
			  " {'key': 'f', 'defaultValue': true, 'prerequisites': [{'key': 'p', 'value': true}]},"
			  " {'key': 'g', 'defaultValue': true, 'prerequisites': [{'key': 'p', 'value': false}]}]}";
	snap *s = th_snap(doc, NULL);
	flagshm_ctx c = user("u-1");
	EXPECT_REASON(th_eval(s, "f", &c), FLAGSHM_REASON_PREREQUISITE_FAILED);
	EXPECT_REASON(th_eval(s, "g", &c), FLAGSHM_REASON_DEFAULT_ROLLOUT);
	th_snap_free(s);
}

Test(eval, json_prerequisites_compare_canonical_text)
{
	const char *doc = "{'formatVersion': 1, 'flags': ["
			  " {'key': 'cfg', 'defaultValue': {'b': 2, 'a': [1, 'x']}, 'offValue': {}},"
			  " {'key': 'f', 'defaultValue': true,"
			  "  'prerequisites': [{'key': 'cfg', 'value': {'a': [1, 'x'], 'b': 2}}]}]}";
	snap *s = th_snap(doc, NULL);
	flagshm_ctx c = user("u-1");
	flagshm_result r = th_eval(s, "cfg", &c);
	cr_expect_eq(r.type, FLAGSHM_TYPE_JSON);
	EXPECT_STR(r, "{\"a\":[1,\"x\"],\"b\":2}");
	EXPECT_REASON(th_eval(s, "f", &c), FLAGSHM_REASON_DEFAULT_ROLLOUT);
	th_snap_free(s);
}

/* ----------------------------------------------- kill switch, types */

Test(eval, the_kill_switch_serves_off_before_anything_else)
{
	const char *doc = "{'formatVersion': 1, 'flags': [{'key': 'f', 'enabled': false,"
			  " 'defaultValue': 'on', 'offValue': 'killed', 'rolloutPercentage': 100,"
			  " 'prerequisites': [{'key': 'g', 'value': true}],"
			  " 'targeting': [{'id': 'r', 'conditions': [], 'variation': 'rule'}]},"
			  " {'key': 'g', 'defaultValue': false}]}";
	snap *s = th_snap(doc, NULL);
	flagshm_ctx c = user("u-1");
	flagshm_result r = th_eval(s, "f", &c);
	EXPECT_REASON(r, FLAGSHM_REASON_DISABLED);
	EXPECT_STR(r, "killed");
	EXPECT_RULE(r, NULL);
	cr_expect_eq(r.error_code, FLAGSHM_CODE_NONE);
	th_snap_free(s);
}

Test(eval, value_types_number_string_json)
{
	const char *doc = "{'formatVersion': 1, 'flags': ["
			  " {'key': 'n', 'defaultValue': 2.5, 'offValue': -1},"
			  " {'key': 's', 'defaultValue': 'hello', 'offValue': ''},"
			  " {'key': 'j', 'defaultValue': [1, {'z': null, 'y': true}], 'offValue': []}]}";
	snap *s = th_snap(doc, NULL);
	flagshm_result r = th_eval(s, "n", NULL);
	cr_expect_eq(r.type, FLAGSHM_TYPE_NUMBER);
	cr_expect_eq(r.value.num, 2.5);
	r = th_eval(s, "s", NULL);
	cr_expect_eq(r.type, FLAGSHM_TYPE_STRING);
	EXPECT_STR(r, "hello");
	r = th_eval(s, "j", NULL);
	cr_expect_eq(r.type, FLAGSHM_TYPE_JSON);
	EXPECT_STR(r, "[1,{\"y\":true,\"z\":null}]");
	th_snap_free(s);
}

/* ---------------------------------------------------- segments */

Test(eval, segments_match_by_included_ids_or_conditions)
{
	const char *doc =
		"{'formatVersion': 1,"
		" 'segments': {"
		"  'internal': {'conditions': [{'attribute': 'email', 'operator': 'endsWith', 'value': '@acme.com'}]},"
		"  'beta': {'included': ['u-2', 'u-1', '42'], 'conditions': [{'attribute': 'tier', 'operator': 'in', 'value': ['beta', 'premium']}]}},"
		" 'flags': [{'key': 'f', 'defaultValue': 'd', 'offValue': 'o', 'rolloutPercentage': 0,"
		"  'targeting': ["
		"   {'id': 'staff', 'priority': 1, 'segments': ['internal'], 'variation': 'staff'},"
		"   {'id': 'eu-beta', 'priority': 2, 'conditions': [{'attribute': 'country', 'operator': 'in', 'value': ['DE', 'FR']}],"
		"    'segments': ['beta'], 'variation': 'eu-beta'}]}]}";
	snap *s = th_snap(doc, NULL);

	flagshm_ctx c = user("u-9");
	flagshm_ctx_string(&c, "email", "bob@acme.com");
	EXPECT_RULE(th_eval(s, "f", &c), "staff");

	c = user("u-1"); /* included, in DE */
	flagshm_ctx_string(&c, "country", "DE");
	EXPECT_RULE(th_eval(s, "f", &c), "eu-beta");

	c = user("u-1"); /* included, but the rule's conditions fail */
	flagshm_ctx_string(&c, "country", "US");
	EXPECT_REASON(th_eval(s, "f", &c), FLAGSHM_REASON_DEFAULT_OFF);

	c = user("u-9"); /* not included, but the segment's conditions hold */
	flagshm_ctx_string(&c, "country", "FR");
	flagshm_ctx_string(&c, "tier", "premium");
	EXPECT_RULE(th_eval(s, "f", &c), "eu-beta");

	c = user("u-9"); /* neither */
	flagshm_ctx_string(&c, "country", "FR");
	flagshm_ctx_string(&c, "tier", "free");
	EXPECT_REASON(th_eval(s, "f", &c), FLAGSHM_REASON_DEFAULT_OFF);

	flagshm_ctx_init(&c); /* a number userId is an id like a bucketing id */
	flagshm_ctx_number(&c, "userId", 42);
	flagshm_ctx_string(&c, "country", "FR");
	EXPECT_RULE(th_eval(s, "f", &c), "eu-beta");
	th_snap_free(s);
}

/* ----------------------------------------------------- environments */

static const char *ENV_DOC =
	"{'formatVersion': 1, 'flags': [{'key': 'f', 'defaultValue': 'prod-default', 'offValue': 'prod-off',"
	" 'rolloutPercentage': 0,"
	" 'targeting': [{'id': 'prod-rule', 'conditions': [{'attribute': 'tier', 'operator': 'equals', 'value': 'gold'}], 'variation': 'prod-rule'}],"
	" 'environments': {"
	"  'staging': {'rolloutPercentage': 100, 'defaultValue': 'staging-default'},"
	"  'dev': {'enabled': false, 'offValue': 'dev-off'},"
	"  'qa': {'targeting': [{'id': 'qa-rule', 'conditions': [], 'variation': 'qa-rule'}]}}}]}";

Test(eval, environments_override_the_flag)
{
	flagshm_ctx c = user("u-1");
	flagshm_ctx_string(&c, "tier", "gold");
	flagshm_ctx plain = user("u-1");

	snap *s = th_snap(ENV_DOC, NULL);
	EXPECT_RULE(th_eval(s, "f", &c), "prod-rule");
	flagshm_result r = th_eval(s, "f", &plain);
	EXPECT_REASON(r, FLAGSHM_REASON_DEFAULT_OFF);
	EXPECT_STR(r, "prod-off");
	th_snap_free(s);

	s = th_snap(ENV_DOC, "staging");
	r = th_eval(s, "f", &plain);
	EXPECT_REASON(r, FLAGSHM_REASON_DEFAULT_ROLLOUT);
	EXPECT_STR(r, "staging-default");
	EXPECT_RULE(th_eval(s, "f", &c), "prod-rule"); /* targeting not overridden */
	th_snap_free(s);

	s = th_snap(ENV_DOC, "dev");
	r = th_eval(s, "f", &c);
	EXPECT_REASON(r, FLAGSHM_REASON_DISABLED);
	EXPECT_STR(r, "dev-off");
	th_snap_free(s);

	s = th_snap(ENV_DOC, "qa"); /* a given targeting replaces the whole list */
	EXPECT_RULE(th_eval(s, "f", &c), "qa-rule");
	EXPECT_RULE(th_eval(s, "f", &plain), "qa-rule");
	th_snap_free(s);
}

/* ------------------------------------------ reasons and error codes */

Test(eval, unknown_flag_is_error_flag_not_found)
{
	snap *s = th_snap("{'formatVersion': 1, 'flags': [{'key': 'f', 'defaultValue': true}]}", NULL);
	flagshm_result r;
	int rc = eval_key(s, "nope", NULL, &r);
	cr_expect_eq(rc, FLAGSHM_ENOTFOUND);
	EXPECT_REASON(r, FLAGSHM_REASON_ERROR);
	cr_expect_eq(r.error_code, FLAGSHM_CODE_FLAG_NOT_FOUND);
	cr_expect_eq(r.type, FLAGSHM_TYPE_NONE);
	EXPECT_RULE(r, NULL);
	cr_expect_eq(r.generation, s->generation);
	/* Prefixes and extensions of a key are other keys. */
	cr_expect_eq(eval_key(s, "", NULL, &r), FLAGSHM_ENOTFOUND);
	cr_expect_eq(eval_key(s, "ff", NULL, &r), FLAGSHM_ENOTFOUND);
	cr_expect_eq(eval_key(s, "f", NULL, &r), 0);
	th_snap_free(s);
}

Test(eval, many_flags_are_all_found_by_key)
{
	static char doc[200000];
	size_t n = (size_t)snprintf(doc, sizeof doc, "{'formatVersion': 1, 'flags': [");
	for (int i = 0; i < 2000; i++)
		n += (size_t)snprintf(doc + n, sizeof doc - n, "%s{'key': 'flag-%d', 'defaultValue': %d, 'offValue': -1}",
				      i ? ", " : "", i, i);
	snprintf(doc + n, sizeof doc - n, "]}");
	snap *s = th_snap(doc, NULL);
	for (int i = 0; i < 2000; i++) {
		char key[32];
		snprintf(key, sizeof key, "flag-%d", i);
		flagshm_result r = th_eval(s, key, NULL);
		cr_assert_eq(r.type, FLAGSHM_TYPE_NUMBER, "%s: type %d", key, r.type);
		cr_assert_eq(r.value.num, i, "%s: value %g", key, r.value.num);
		cr_assert_eq(snap_find(s, key, strlen(key)), (int64_t)i, "%s: index", key);
	}
	cr_expect_eq(snap_find(s, "flag-2000", 9), -1);
	th_snap_free(s);
}

Test(eval, result_carries_the_generation_of_its_snapshot)
{
	snap *s = th_snap("{'formatVersion': 1, 'flags': [{'key': 'f', 'defaultValue': true}]}", NULL);
	s->generation = 77; /* as a published snapshot would have */
	flagshm_result r;
	cr_expect_eq(eval_key(s, "f", NULL, &r), 0);
	cr_expect_eq(r.generation, 77);
	eval_key(s, "missing", NULL, &r);
	cr_expect_eq(r.generation, 77);
	th_snap_free(s);
}

Test(eval, every_reason_and_error_code_has_its_name)
{
	const char *reasons[] = {"ERROR", "DISABLED", "PREREQUISITE_FAILED", "RULE_MATCH",
				 "SPLIT", "DEFAULT_ROLLOUT", "DEFAULT_OFF"};
	for (int i = 0; i <= FLAGSHM_REASON_DEFAULT_OFF; i++)
		cr_expect_str_eq(flagshm_reason_name((flagshm_reason)i), reasons[i]);
	cr_expect_str_eq(flagshm_error_code_name(FLAGSHM_CODE_NONE), "NONE");
	cr_expect_str_eq(flagshm_error_code_name((flagshm_error_code)99), "GENERAL");
	cr_expect_str_eq(flagshm_error_code_name(FLAGSHM_CODE_STORE_UNAVAILABLE), "STORE_UNAVAILABLE");
	cr_expect_str_eq(flagshm_error_code_name(FLAGSHM_CODE_FLAG_NOT_FOUND), "FLAG_NOT_FOUND");
	cr_expect_str_eq(flagshm_error_code_name(FLAGSHM_CODE_TYPE_MISMATCH), "TYPE_MISMATCH");
	cr_expect_str_eq(flagshm_error_code_name(FLAGSHM_CODE_SNAPSHOT_INVALID), "SNAPSHOT_INVALID");
	static const int codes[] = {
#define XX(name, value, msg) FLAGSHM_##name,
		FLAGSHM_ERRNO_MAP(XX)
#undef XX
	};
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		cr_expect_str_neq(flagshm_strerror(codes[i]), "unknown error", "code %d", codes[i]);
		cr_expect_lt(codes[i], -4095, "code %d collides with -errno", codes[i]);
		cr_expect_eq(strncmp(flagshm_err_name(codes[i]), "FLAGSHM_E", 9), 0);
	}
	cr_expect_str_eq(flagshm_strerror(0), "success");
	cr_expect_str_eq(flagshm_strerror(-999), "unknown error");
	cr_expect_str_eq(flagshm_strerror(-22), "unknown error", "-EINVAL is not one of ours");
}

Test(eval, the_header_and_the_library_agree_on_the_version)
{
	char want[32];
	snprintf(want, sizeof want, "%d.%d.%d", FLAGSHM_VERSION_MAJOR, FLAGSHM_VERSION_MINOR,
		 FLAGSHM_VERSION_PATCH);
	cr_expect_str_eq(flagshm_version(), want);
	cr_expect_eq(flagshm_format_version(), FS_FORMAT_VERSION);
}

Test(eval, context_builder_replaces_by_name_and_refuses_past_the_limit)
{
	flagshm_ctx c;
	flagshm_ctx_init(&c);
	cr_expect_eq(flagshm_ctx_string(&c, "a", "1"), 0);
	cr_expect_eq(flagshm_ctx_number(&c, "a", 2), 0);
	cr_expect_eq(c.n, 1u);
	const flagshm_attr *a = eval_ctx_get(&c, "a", 1);
	cr_assert_not_null(a);
	cr_expect_eq(a->type, FLAGSHM_ATTR_NUMBER);
	cr_expect_null(eval_ctx_get(&c, "ab", 2));
	cr_expect_null(eval_ctx_get(&c, "", 0));
	cr_expect_null(eval_ctx_get(NULL, "a", 1));
	static char names[FLAGSHM_CTX_MAX + 1][8];
	for (int i = 1; i < FLAGSHM_CTX_MAX; i++) {
		snprintf(names[i], sizeof names[i], "n%d", i);
		cr_expect_eq(flagshm_ctx_bool(&c, names[i], true), 0);
	}
	cr_expect_eq(flagshm_ctx_bool(&c, "one-too-many", true), FLAGSHM_EFULL);
	cr_expect_eq(flagshm_ctx_bool(&c, "a", true), 0, "replacing still works when full");
	cr_expect_eq(flagshm_ctx_string(&c, "x", NULL), FLAGSHM_EINVAL);
	cr_expect_eq(flagshm_ctx_string(&c, NULL, "x"), FLAGSHM_EINVAL);
	cr_expect_eq(flagshm_ctx_list(&c, "x", NULL, 1), FLAGSHM_EINVAL);
	cr_expect_eq(c.n, (unsigned)FLAGSHM_CTX_MAX);
}
