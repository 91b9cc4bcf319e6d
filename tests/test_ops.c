/*
 * tests/test_ops.c - every condition operator: types, coercion, missing
 * attributes, negate, caseInsensitive and list attributes; plus the SemVer
 * and RFC 3339 parsers the operators (and the compiler) rely on.
 *
 * Each check compiles a one-flag document whose only rule has the given
 * condition (rollout 0 otherwise), so RULE_MATCH means "the condition
 * held" and DEFAULT_OFF means it did not.
 */
#include <criterion/criterion.h>

#include "eval.h"
#include "helpers.h"
#include "ops.h"
#include "semver.h"
#include "timeparse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(const char *cond, const flagshm_attr *a)
{
	char doc[8192];
	snprintf(doc, sizeof doc,
		 "{'formatVersion': 1, 'flags': [{'key': 'f', 'defaultValue': false,"
		 " 'rolloutPercentage': 0,"
		 " 'targeting': [{'id': 'r', 'conditions': [%s], 'variation': true}]}]}",
		 cond);
	snap *s = th_snap(doc, NULL);
	flagshm_ctx ctx;
	flagshm_ctx_init(&ctx);
	flagshm_ctx_string(&ctx, "userId", "u-1");
	if (a) {
		switch (a->type) {
		case FLAGSHM_ATTR_STRING: flagshm_ctx_string(&ctx, "a", a->u.str.ptr); break;
		case FLAGSHM_ATTR_NUMBER: flagshm_ctx_number(&ctx, "a", a->u.num); break;
		case FLAGSHM_ATTR_BOOL: flagshm_ctx_bool(&ctx, "a", a->u.b); break;
		case FLAGSHM_ATTR_LIST: flagshm_ctx_list(&ctx, "a", a->u.list.items, a->u.list.n); break;
		}
	}
	flagshm_result r = th_eval(s, "f", &ctx);
	th_snap_free(s);
	cr_assert(r.reason == FLAGSHM_REASON_RULE_MATCH || r.reason == FLAGSHM_REASON_DEFAULT_OFF,
		  "%s: unexpected reason %s (%s)", cond, flagshm_reason_name(r.reason),
		  flagshm_error_code_name(r.error_code));
	return r.reason == FLAGSHM_REASON_RULE_MATCH;
}

static flagshm_attr S(const char *v)
{
	flagshm_attr a = {.name = "a", .type = FLAGSHM_ATTR_STRING};
	a.u.str.ptr = v;
	a.u.str.len = strlen(v);
	return a;
}

static flagshm_attr N(double v)
{
	flagshm_attr a = {.name = "a", .type = FLAGSHM_ATTR_NUMBER};
	a.u.num = v;
	return a;
}

static flagshm_attr B(bool v)
{
	flagshm_attr a = {.name = "a", .type = FLAGSHM_ATTR_BOOL};
	a.u.b = v;
	return a;
}

#define L(...) Lv((const char *const[]){__VA_ARGS__}, sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))
static flagshm_attr Lv(const char *const *items, size_t n)
{
	flagshm_attr a = {.name = "a", .type = FLAGSHM_ATTR_LIST};
	a.u.list.items = items;
	a.u.list.n = n;
	return a;
}
static const flagshm_attr EMPTY_LIST = {.name = "a", .type = FLAGSHM_ATTR_LIST};

#define CHECK(cond, attr, want)                                                            \
	do {                                                                               \
		flagshm_attr a_ = (attr);                                                  \
		int got_ = run((cond), &a_);                                               \
		cr_expect_eq(got_, (want), "%s with %s: got %d, want %d", (cond), #attr, got_, \
			     (want));                                                      \
	} while (0)

#define CHECK_MISSING(cond)                                                                \
	do {                                                                               \
		int got_ = run((cond), NULL);                                              \
		cr_expect_eq(got_, 0, "%s with the attribute missing: got %d, want 0", (cond), \
			     got_);                                                        \
	} while (0)

/* ------------------------------------------------------------ equals */

Test(ops, equals_string_is_exact_and_type_strict)
{
	const char *c = "{'attribute': 'a', 'operator': 'equals', 'value': 'x'}";
	CHECK(c, S("x"), 1);
	CHECK(c, S("X"), 0);
	CHECK(c, S("xy"), 0);
	CHECK(c, S(""), 0);
	CHECK(c, N(0), 0);
	CHECK(c, B(true), 0);
	CHECK(c, L("x"), 0); /* equals is false on a list attribute */
	CHECK_MISSING(c);
}

Test(ops, equals_number_compares_as_double_and_not_with_strings)
{
	const char *c = "{'attribute': 'a', 'operator': 'equals', 'value': 5}";
	CHECK(c, N(5), 1);
	CHECK(c, N(5.0000001), 0);
	CHECK(c, S("5"), 0);
	CHECK(c, B(true), 0);
	const char *f = "{'attribute': 'a', 'operator': 'equals', 'value': 2.5}";
	CHECK(f, N(2.5), 1);
	CHECK(f, S("2.5"), 0);
}

Test(ops, equals_bool)
{
	const char *c = "{'attribute': 'a', 'operator': 'equals', 'value': true}";
	CHECK(c, B(true), 1);
	CHECK(c, B(false), 0);
	CHECK(c, S("true"), 0);
	CHECK(c, N(1), 0);
	const char *f = "{'attribute': 'a', 'operator': 'equals', 'value': false}";
	CHECK(f, B(false), 1);
	CHECK(f, N(0), 0);
}

Test(ops, equals_case_insensitive_folds_ascii_only)
{
	const char *c = "{'attribute': 'a', 'operator': 'equals', 'value': 'HeLLo', 'caseInsensitive': true}";
	CHECK(c, S("hello"), 1);
	CHECK(c, S("HELLO"), 1);
	CHECK(c, S("HeLLo"), 1);
	CHECK(c, S("hello!"), 0);
	const char *u = "{'attribute': 'a', 'operator': 'equals', 'value': '\xc3\x89t\xc3\xa9', 'caseInsensitive': true}";
	CHECK(u, S("\xc3\x89T\xc3\xa9"), 1); /* "ÉTé": only the ASCII T folds */
	CHECK(u, S("\xc3\xa9t\xc3\xa9"), 0); /* "été": É is not folded */
}

Test(ops, not_equals_is_the_negation_of_equals)
{
	const char *c = "{'attribute': 'a', 'operator': 'notEquals', 'value': 'x'}";
	CHECK(c, S("x"), 0);
	CHECK(c, S("y"), 1);
	CHECK(c, N(1), 1);
	CHECK(c, B(false), 1);
	CHECK(c, L("y"), 0); /* every operator but contains/in is false on lists */
	CHECK_MISSING(c);
	const char *n = "{'attribute': 'a', 'operator': 'notEquals', 'value': 3}";
	CHECK(n, N(3), 0);
	CHECK(n, N(4), 1);
	CHECK(n, S("3"), 1);
	const char *ci = "{'attribute': 'a', 'operator': 'notEquals', 'value': 'X', 'caseInsensitive': true}";
	CHECK(ci, S("x"), 0);
	CHECK(ci, S("y"), 1);
}

Test(ops, negate_flips_a_present_attribute_only)
{
	const char *c = "{'attribute': 'a', 'operator': 'equals', 'value': 'x', 'negate': true}";
	CHECK(c, S("x"), 0);
	CHECK(c, S("y"), 1);
	CHECK(c, N(1), 1);
	CHECK(c, L("x"), 1); /* false on a list, then negated */
	CHECK_MISSING(c);
	const char *nn = "{'attribute': 'a', 'operator': 'notEquals', 'value': 'x', 'negate': true}";
	CHECK(nn, S("x"), 1);
	CHECK(nn, S("y"), 0);
	CHECK_MISSING(nn);
}

/* ---------------------------------------------------------------- in */

Test(ops, in_strings_exact_whatever_the_file_order)
{
	const char *c = "{'attribute': 'a', 'operator': 'in', 'value': ['b', 'a', 'C', 'ab', '']}";
	CHECK(c, S("a"), 1);
	CHECK(c, S("b"), 1);
	CHECK(c, S("C"), 1);
	CHECK(c, S("ab"), 1);
	CHECK(c, S(""), 1);
	CHECK(c, S("c"), 0);
	CHECK(c, S("abc"), 0);
	CHECK(c, N(1), 0);
	CHECK(c, B(true), 0);
	CHECK_MISSING(c);
}

Test(ops, in_case_insensitive)
{
	const char *c = "{'attribute': 'a', 'operator': 'in', 'value': ['DE', 'fr', 'It'], 'caseInsensitive': true}";
	CHECK(c, S("de"), 1);
	CHECK(c, S("DE"), 1);
	CHECK(c, S("FR"), 1);
	CHECK(c, S("iT"), 1);
	CHECK(c, S("es"), 0);
	const char *cs = "{'attribute': 'a', 'operator': 'in', 'value': ['DE', 'fr']}";
	CHECK(cs, S("de"), 0);
	CHECK(cs, S("FR"), 0);
}

Test(ops, in_numbers_are_type_strict)
{
	const char *c = "{'attribute': 'a', 'operator': 'in', 'value': [3, 1, 2.5, -7, 'x', '1']}";
	CHECK(c, N(1), 1);
	CHECK(c, N(2.5), 1);
	CHECK(c, N(3), 1);
	CHECK(c, N(-7), 1);
	CHECK(c, N(4), 0);
	CHECK(c, N(NAN), 0);
	CHECK(c, S("x"), 1);
	CHECK(c, S("1"), 1);
	CHECK(c, S("3"), 0);
}

Test(ops, in_large_list_finds_every_member_and_nothing_else)
{
	/* Enough elements that a wrong binary search shows. */
	char cond[8192];
	size_t n = (size_t)snprintf(cond, sizeof cond, "{'attribute': 'a', 'operator': 'in', 'value': [");
	for (int i = 299; i >= 0; i -= 3)
		n += (size_t)snprintf(cond + n, sizeof cond - n, "'v%03d', %d, ", i, i);
	snprintf(cond + n - 2, sizeof cond - n + 2, "]}");
	char doc[10000];
	snprintf(doc, sizeof doc,
		 "{'formatVersion': 1, 'flags': [{'key': 'f', 'defaultValue': false, 'rolloutPercentage': 0,"
		 " 'targeting': [{'id': 'r', 'conditions': [%s], 'variation': true}]}]}",
		 cond);
	snap *s = th_snap(doc, NULL);
	for (int i = 0; i < 300; i++) {
		char v[8];
		snprintf(v, sizeof v, "v%03d", i);
		bool member = i % 3 == 299 % 3;
		flagshm_ctx ctx;
		flagshm_ctx_init(&ctx);
		flagshm_ctx_string(&ctx, "a", v);
		flagshm_result r = th_eval(s, "f", &ctx);
		cr_expect_eq(r.reason == FLAGSHM_REASON_RULE_MATCH, member, "string %s: member %d", v, member);
		flagshm_ctx_number(&ctx, "a", i);
		r = th_eval(s, "f", &ctx);
		cr_expect_eq(r.reason == FLAGSHM_REASON_RULE_MATCH, member, "number %d: member %d", i, member);
	}
	th_snap_free(s);
}

Test(ops, not_in_is_the_negation_of_in)
{
	const char *c = "{'attribute': 'a', 'operator': 'notIn', 'value': ['a', 'b', 1]}";
	CHECK(c, S("a"), 0);
	CHECK(c, S("c"), 1);
	CHECK(c, N(1), 0);
	CHECK(c, N(2), 1);
	CHECK(c, B(true), 1);
	CHECK_MISSING(c);
	const char *n = "{'attribute': 'a', 'operator': 'notIn', 'value': ['a'], 'negate': true}";
	CHECK(n, S("a"), 1);
	CHECK(n, S("b"), 0);
}

Test(ops, in_on_a_list_attribute_holds_when_any_element_is_in)
{
	const char *c = "{'attribute': 'a', 'operator': 'in', 'value': ['beta', 'premium']}";
	CHECK(c, L("free", "beta"), 1);
	CHECK(c, L("premium"), 1);
	CHECK(c, L("free", "trial"), 0);
	CHECK(c, EMPTY_LIST, 0);
	const char *ci = "{'attribute': 'a', 'operator': 'in', 'value': ['beta'], 'caseInsensitive': true}";
	CHECK(ci, L("x", "BETA"), 1);
	const char *n = "{'attribute': 'a', 'operator': 'notIn', 'value': ['beta', 'premium']}";
	CHECK(n, L("free", "beta"), 0);
	CHECK(n, L("free", "trial"), 1);
	CHECK(n, EMPTY_LIST, 1);
}

/* ------------------------------------------------ substring operators */

Test(ops, contains)
{
	const char *c = "{'attribute': 'a', 'operator': 'contains', 'value': 'ell'}";
	CHECK(c, S("hello"), 1);
	CHECK(c, S("ell"), 1);
	CHECK(c, S("HELLO"), 0);
	CHECK(c, S("el"), 0);
	CHECK(c, S(""), 0);
	CHECK(c, N(1), 0);
	CHECK(c, B(true), 0);
	CHECK_MISSING(c);
	CHECK(c, L("x", "yellow"), 1);
	CHECK(c, L("x", "y"), 0);
	CHECK(c, EMPTY_LIST, 0);
	const char *ci = "{'attribute': 'a', 'operator': 'contains', 'value': 'ELL', 'caseInsensitive': true}";
	CHECK(ci, S("HELLO"), 1);
	CHECK(ci, S("heLlo"), 1);
	CHECK(ci, S("eeeLl"), 1); /* a restart after a partial match */
	CHECK(ci, S("hel"), 0);
	CHECK(ci, L("a", "YELLOW"), 1);
	/* Short needles take the memchr path, long ones memmem: same answers,
	 * also after a partial match and at the very end of the attribute. */
	const char *r = "{'attribute': 'a', 'operator': 'contains', 'value': 'aab'}";
	CHECK(r, S("aaab"), 1);
	CHECK(r, S("aaaa"), 0);
	CHECK(r, S("xaab"), 1);
	CHECK(r, S("aa"), 0);
	const char *lng = "{'attribute': 'a', 'operator': 'contains', 'value': 'abcdefghijklmnopqrs'}";
	CHECK(lng, S("--abcdefghijklmnopqrs--"), 1);
	CHECK(lng, S("--abcdefghijklmnopqr--"), 0);
}

/* contains with caseInsensitive finds candidates by memchr on both cases
 * of the needle's first byte (the cost bound counts it as one condition):
 * it agrees with a byte-by-byte folded search on 400 random attributes and
 * needles over a small alphabet, so that partial matches, both cases and
 * overlapping candidates all occur. */
static bool naive_contains_fold(const char *h, const char *n)
{
	size_t nh = strlen(h), nn = strlen(n);
	for (size_t i = 0; i + nn <= nh; i++) {
		size_t j = 0;
		while (j < nn && (h[i + j] | 0x20) == (n[j] | 0x20))
			j++;
		if (j == nn)
			return true;
	}
	return nn == 0;
}

Test(ops, contains_case_insensitive_agrees_with_a_folded_search)
{
	static const char alpha[] = "aAbBab";
	unsigned seed = 12345;
	for (int k = 0; k < 400; k++) {
		char h[16], n[5], cond[128];
		size_t nh = (size_t)(rand_r(&seed) % 15), nn = 1 + (size_t)(rand_r(&seed) % 4);
		for (size_t i = 0; i < nh; i++)
			h[i] = alpha[rand_r(&seed) % 6];
		h[nh] = '\0';
		for (size_t i = 0; i < nn; i++)
			n[i] = alpha[rand_r(&seed) % 6];
		n[nn] = '\0';
		snprintf(cond, sizeof cond,
			 "{'attribute': 'a', 'operator': 'contains', 'value': '%s', "
			 "'caseInsensitive': true}", n);
		cr_assert_eq(run(cond, &(flagshm_attr){.name = "a", .type = FLAGSHM_ATTR_STRING,
							.u.str = {h, nh}}),
			     naive_contains_fold(h, n), "'%s' in '%s'", n, h);
	}
}

Test(ops, not_contains)
{
	const char *c = "{'attribute': 'a', 'operator': 'notContains', 'value': 'ell'}";
	CHECK(c, S("hello"), 0);
	CHECK(c, S("help"), 1);
	CHECK(c, N(1), 1);
	CHECK_MISSING(c);
	CHECK(c, L("help", "yellow"), 0);
	CHECK(c, L("help"), 1);
	CHECK(c, EMPTY_LIST, 1);
	const char *ci = "{'attribute': 'a', 'operator': 'notContains', 'value': 'Ell', 'caseInsensitive': true}";
	CHECK(ci, S("HELLO"), 0);
	CHECK(ci, S("HELP"), 1);
}

Test(ops, starts_with)
{
	const char *c = "{'attribute': 'a', 'operator': 'startsWith', 'value': 'he'}";
	CHECK(c, S("hello"), 1);
	CHECK(c, S("he"), 1);
	CHECK(c, S("h"), 0);
	CHECK(c, S("the"), 0);
	CHECK(c, S("Hello"), 0);
	CHECK(c, N(1), 0);
	CHECK(c, L("hello"), 0); /* only contains/in look into lists */
	CHECK_MISSING(c);
	const char *ci = "{'attribute': 'a', 'operator': 'startsWith', 'value': 'HE', 'caseInsensitive': true}";
	CHECK(ci, S("hello"), 1);
	CHECK(ci, S("HEllo"), 1);
	const char *neg = "{'attribute': 'a', 'operator': 'startsWith', 'value': 'he', 'negate': true}";
	CHECK(neg, S("hello"), 0);
	CHECK(neg, S("ahe"), 1);
	CHECK_MISSING(neg);
}

Test(ops, ends_with)
{
	const char *c = "{'attribute': 'a', 'operator': 'endsWith', 'value': '@acme.com'}";
	CHECK(c, S("bob@acme.com"), 1);
	CHECK(c, S("@acme.com"), 1);
	CHECK(c, S("acme.com"), 0);
	CHECK(c, S("bob@acme.com.evil"), 0);
	CHECK(c, S("bob@ACME.com"), 0);
	CHECK(c, L("bob@acme.com"), 0);
	CHECK_MISSING(c);
	const char *ci = "{'attribute': 'a', 'operator': 'endsWith', 'value': '@ACME.com', 'caseInsensitive': true}";
	CHECK(ci, S("Bob@Acme.COM"), 1);
	CHECK(ci, S("bob@acme.org"), 0);
}

/* ----------------------------------------------------------- matches */

Test(ops, matches_is_an_unanchored_pcre2_search)
{
	const char *c = "{'attribute': 'a', 'operator': 'matches', 'value': '^u-[0-9]+$'}";
	CHECK(c, S("u-42"), 1);
	CHECK(c, S("u-"), 0);
	CHECK(c, S("xu-42"), 0);
	CHECK(c, N(42), 0);
	CHECK(c, B(true), 0);
	CHECK(c, L("u-42"), 0);
	CHECK_MISSING(c);
	const char *u = "{'attribute': 'a', 'operator': 'matches', 'value': 'b+c'}";
	CHECK(u, S("abbbcd"), 1);
	CHECK(u, S("ac"), 0);
	const char *esc = "{'attribute': 'a', 'operator': 'matches', 'value': '@acme\\\\.com$'}";
	CHECK(esc, S("bob@acme.com"), 1);
	CHECK(esc, S("bob@acmeXcom"), 0);
	CHECK(esc, S("bob@ACME.com"), 0);
}

Test(ops, matches_case_insensitive_and_utf8)
{
	const char *c = "{'attribute': 'a', 'operator': 'matches', 'value': '@acme\\\\.com$', 'caseInsensitive': true}";
	CHECK(c, S("BOB@ACME.COM"), 1);
	CHECK(c, S("bob@acme.org"), 0);
	/* PCRE2_UTF: one code point is one '.' */
	const char *u = "{'attribute': 'a', 'operator': 'matches', 'value': '^.$'}";
	CHECK(u, S("\xc3\xa9"), 1);
	CHECK(u, S("ab"), 0);
	CHECK(u, S("\xff"), 0); /* invalid UTF-8 subject: no match, no crash */
	const char *neg = "{'attribute': 'a', 'operator': 'matches', 'value': 'x', 'negate': true}";
	CHECK(neg, S("abc"), 1);
	CHECK(neg, S("xyz"), 0);
	CHECK_MISSING(neg);
}

Test(ops, matches_is_bounded_so_catastrophic_patterns_do_not_stall, .timeout = 10)
{
	const char *c = "{'attribute': 'a', 'operator': 'matches', 'value': '^(a+)+$'}";
	char subject[64];
	memset(subject, 'a', 48);
	subject[48] = '!';
	subject[49] = '\0';
	/* Exponential backtracking: hits the match limit and counts as no
	 * match, within the timeout. */
	CHECK(c, S(subject), 0);
	CHECK(c, S("aaaa"), 1);
}

/* ---------------------------------------------------------- numeric */

Test(ops, numeric_comparisons_with_number_attributes)
{
	CHECK("{'attribute': 'a', 'operator': 'greaterThan', 'value': 10}", N(11), 1);
	CHECK("{'attribute': 'a', 'operator': 'greaterThan', 'value': 10}", N(10), 0);
	CHECK("{'attribute': 'a', 'operator': 'greaterThanOrEqual', 'value': 10}", N(10), 1);
	CHECK("{'attribute': 'a', 'operator': 'greaterThanOrEqual', 'value': 10}", N(9.999), 0);
	CHECK("{'attribute': 'a', 'operator': 'lessThan', 'value': 10}", N(-5), 1);
	CHECK("{'attribute': 'a', 'operator': 'lessThan', 'value': 10}", N(10), 0);
	CHECK("{'attribute': 'a', 'operator': 'lessThanOrEqual', 'value': 10.5}", N(10.5), 1);
	CHECK("{'attribute': 'a', 'operator': 'lessThanOrEqual', 'value': 10.5}", N(10.6), 0);
	CHECK("{'attribute': 'a', 'operator': 'greaterThan', 'value': 10}", N(NAN), 0);
	CHECK("{'attribute': 'a', 'operator': 'lessThan', 'value': 10}", N(-INFINITY), 1);
}

Test(ops, numeric_coerces_strings_that_are_wholly_a_number)
{
	const char *c = "{'attribute': 'a', 'operator': 'greaterThan', 'value': 10}";
	CHECK(c, S("11"), 1);
	CHECK(c, S("10.5"), 1);
	CHECK(c, S("1e2"), 1);
	CHECK(c, S("+11"), 1);
	CHECK(c, S("10"), 0);
	CHECK(c, S("-11"), 0);
	CHECK(c, S(" 11"), 0);
	CHECK(c, S("11 "), 0);
	CHECK(c, S("11abc"), 0);
	CHECK(c, S("abc"), 0);
	CHECK(c, S(""), 0);
	CHECK(c, S("0x20"), 0);
	CHECK(c, S("inf"), 0);
	CHECK(c, S("nan"), 0);
	CHECK(c, S("1e999"), 0);
	CHECK(c, B(true), 0);
	CHECK(c, L("11"), 0);
	CHECK_MISSING(c);
	const char *lt = "{'attribute': 'a', 'operator': 'lessThanOrEqual', 'value': 0.5}";
	CHECK(lt, S(".5"), 1);
	CHECK(lt, S("-0"), 1);
}

Test(ops, numeric_negate_flips_a_non_numeric_present_attribute)
{
	const char *c = "{'attribute': 'a', 'operator': 'greaterThan', 'value': 10, 'negate': true}";
	CHECK(c, N(11), 0);
	CHECK(c, N(5), 1);
	CHECK(c, S("abc"), 1);
	CHECK_MISSING(c);
}

Test(ops, parse_number_directly)
{
	double d = 0;
	cr_expect(ops_parse_number("42", 2, &d) && d == 42);
	cr_expect(ops_parse_number("-1.5e3", 6, &d) && d == -1500);
	/* Only LEN bytes count: the rest is not part of the number. */
	cr_expect(ops_parse_number("12345", 2, &d) && d == 12);
	cr_expect(!ops_parse_number("1.", 1, &d) || d == 1);
	cr_expect(!ops_parse_number("e5", 2, &d));
	cr_expect(!ops_parse_number("-", 1, &d));
	cr_expect(!ops_parse_number("1_000", 5, &d));
}

/* ----------------------------------------------------------- semver */

Test(ops, semver_equal)
{
	const char *c = "{'attribute': 'a', 'operator': 'semverEqual', 'value': '1.2.3'}";
	CHECK(c, S("1.2.3"), 1);
	CHECK(c, S("1.2.3+build.7"), 1); /* build metadata has no precedence */
	CHECK(c, S("1.2.3-rc.1"), 0);
	CHECK(c, S("1.2.4"), 0);
	CHECK(c, S("v1.2.3"), 0);
	CHECK(c, S("1.2"), 0);
	CHECK(c, S("01.2.3"), 0);
	CHECK(c, N(1.2), 0);
	CHECK(c, L("1.2.3"), 0);
	CHECK_MISSING(c);
	const char *neg = "{'attribute': 'a', 'operator': 'semverEqual', 'value': '1.2.3', 'negate': true}";
	CHECK(neg, S("junk"), 1);
	CHECK(neg, S("1.2.3"), 0);
}

Test(ops, semver_greater_and_less_follow_spec_precedence)
{
	const char *gt = "{'attribute': 'a', 'operator': 'semverGreaterThan', 'value': '1.2.3-rc.1'}";
	CHECK(gt, S("1.2.3"), 1);
	CHECK(gt, S("1.2.3-rc.2"), 1);
	CHECK(gt, S("1.2.3-rc.10"), 1); /* numeric identifiers compare as numbers */
	CHECK(gt, S("1.2.3-rc.1.1"), 1);
	CHECK(gt, S("1.2.3-rc.1"), 0);
	CHECK(gt, S("1.2.3-beta"), 0);
	CHECK(gt, S("1.2.2"), 0);
	CHECK(gt, S("1.2.3-rc.01"), 0); /* not a valid version */
	const char *lt = "{'attribute': 'a', 'operator': 'semverLessThan', 'value': '2.0.0'}";
	CHECK(lt, S("1.99.99"), 1);
	CHECK(lt, S("2.0.0-alpha"), 1);
	CHECK(lt, S("2.0.0"), 0);
	CHECK(lt, S("10.0.0"), 0);
	CHECK(lt, S("2.0"), 0);
}

static semver sv(const char *s)
{
	semver v;
	cr_assert(semver_parse(s, strlen(s), &v), "\"%s\" should parse", s);
	return v;
}

Test(ops, semver_spec_examples)
{
	/* semver.org section 11, in ascending order. */
	const char *chain[] = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
			       "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0",
			       "2.0.0", "2.1.0", "2.1.1"};
	size_t n = sizeof chain / sizeof chain[0];
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++) {
			semver a = sv(chain[i]), b = sv(chain[j]);
			int c = semver_cmp(&a, &b);
			int want = (i > j) - (i < j);
			cr_expect_eq((c > 0) - (c < 0), want, "cmp(%s, %s) = %d, want %d", chain[i],
				     chain[j], c, want);
		}
	semver v = sv("1.2.3-x.7+meta.01");
	cr_expect_eq(v.major, 1);
	cr_expect_eq(v.minor, 2);
	cr_expect_eq(v.patch, 3);
	cr_expect_eq(v.pre_len, 3);
	cr_expect_eq(memcmp(v.pre, "x.7", 3), 0);
	semver big = sv("18446744073709551615.0.0-99999999999999999999999");
	semver big2 = sv("18446744073709551615.0.0-100000000000000000000000");
	cr_expect_lt(semver_cmp(&big, &big2), 0);
}

Test(ops, semver_rejects_what_the_spec_rejects)
{
	const char *bad[] = {"", "1", "1.2", "1.2.3.4", "v1.2.3", " 1.2.3", "1.2.3 ", "01.2.3",
			     "1.02.3", "1.2.03", "1.2.3-", "1.2.3-01", "1.2.3-a..b", "1.2.3-a.",
			     "1.2.3+", "1.2.3+a..b", "1.2.3-a_b", "1.2.3+a+b", "-1.2.3", "1.-2.3",
			     "18446744073709551616.0.0", "1.2.x"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		semver v;
		cr_expect(!semver_parse(bad[i], strlen(bad[i]), &v), "\"%s\" parsed", bad[i]);
	}
	const char *good[] = {"0.0.0", "1.2.3-0", "1.2.3-0a", "1.2.3-a-b.c", "1.2.3+001",
			      "1.2.3-rc.1+build.2", "1.2.3----RC-SNAPSHOT.12.9.1--.12+788"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		sv(good[i]);
}

/* ------------------------------------------------------------- time */

Test(ops, before_and_after_with_rfc3339_and_unix_seconds)
{
	const char *b = "{'attribute': 'a', 'operator': 'before', 'value': '2026-11-01T00:00:00Z'}";
	CHECK(b, S("2026-10-31T23:59:59Z"), 1);
	CHECK(b, S("2026-10-31T23:59:59.999Z"), 1);
	CHECK(b, S("2026-11-01T00:00:00Z"), 0);
	CHECK(b, S("2026-11-01T01:00:00+02:00"), 1); /* 23:00 UTC the day before */
	CHECK(b, S("2026-10-31T20:00:00-04:00"), 0); /* midnight UTC */
	CHECK(b, N(1700000000), 1);
	CHECK(b, N(1793491200), 0); /* 2026-11-01T00:00:00Z */
	CHECK(b, N(1793491199.5), 1);
	CHECK(b, S("2026-10-31"), 0);
	CHECK(b, S("1700000000"), 0); /* a string must be RFC 3339 */
	CHECK(b, S("garbage"), 0);
	CHECK(b, B(true), 0);
	CHECK(b, L("2020-01-01T00:00:00Z"), 0);
	CHECK_MISSING(b);
	const char *a = "{'attribute': 'a', 'operator': 'after', 'value': 1767225600}";
	CHECK(a, S("2026-01-01T00:00:00.001Z"), 1);
	CHECK(a, S("2026-01-01T00:00:00Z"), 0);
	CHECK(a, S("2025-12-31T19:00:00.5-05:00"), 1);
	CHECK(a, N(1767225600.5), 1);
	CHECK(a, N(1767225600), 0);
	const char *neg = "{'attribute': 'a', 'operator': 'after', 'value': 0, 'negate': true}";
	CHECK(neg, S("not a time"), 1);
	CHECK(neg, N(-1), 1);
	CHECK(neg, N(1), 0);
}

static int64_t rfc(const char *s)
{
	int64_t ms = 0;
	cr_assert(timeparse_rfc3339(s, strlen(s), &ms), "\"%s\" should parse", s);
	return ms;
}

Test(ops, rfc3339_parser)
{
	cr_expect_eq(rfc("1970-01-01T00:00:00Z"), 0);
	cr_expect_eq(rfc("2000-02-29T12:00:00Z"), 951825600000LL);
	cr_expect_eq(rfc("2000-02-29t12:00:00z"), 951825600000LL);
	cr_expect_eq(rfc("2000-02-29 12:00:00Z"), 951825600000LL);
	cr_expect_eq(rfc("2000-02-29T13:30:00+01:30"), 951825600000LL);
	cr_expect_eq(rfc("1970-01-01T00:00:00.123456Z"), 123);
	cr_expect_eq(rfc("1970-01-01T00:00:00.5Z"), 500);
	cr_expect_eq(rfc("1969-12-31T23:59:59.5Z"), -500);
	cr_expect_eq(rfc("0000-01-01T00:00:00Z"), -62167219200000LL);
	cr_expect_eq(rfc("9999-12-31T23:59:59Z"), 253402300799000LL);
	cr_expect_eq(rfc("2016-12-31T23:59:60Z"), rfc("2017-01-01T00:00:00Z"));
	const char *bad[] = {"", "2001-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
			     "2026-04-31T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z",
			     "2026-01-01T00:00:61Z", "2026-01-01T00:00:00", "2026-01-01T00:00:00.Z",
			     "2026-01-01T00:00:00+0100", "2026-01-01T00:00:00+24:00", "2026-1-01T00:00:00Z",
			     "2026-01-01X00:00:00Z", "2026-01-01T00:00:00Zjunk", " 2026-01-01T00:00:00Z"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t ms;
		cr_expect(!timeparse_rfc3339(bad[i], strlen(bad[i]), &ms), "\"%s\" parsed", bad[i]);
	}
	int64_t ms;
	cr_expect(timeparse_seconds(1.001, &ms) && ms == 1001);
	cr_expect(timeparse_seconds(-1.5, &ms) && ms == -1500);
	cr_expect(!timeparse_seconds(NAN, &ms));
	cr_expect(!timeparse_seconds(INFINITY, &ms));
	cr_expect(!timeparse_seconds(1e300, &ms));
}

/* ----------------------------------------------------- every operator */

Test(ops, a_missing_attribute_is_false_for_every_operator_negated_or_not)
{
	const char *conds[] = {
		"'operator': 'equals', 'value': 'x'",
		"'operator': 'notEquals', 'value': 'x'",
		"'operator': 'in', 'value': ['x']",
		"'operator': 'notIn', 'value': ['x']",
		"'operator': 'contains', 'value': 'x'",
		"'operator': 'notContains', 'value': 'x'",
		"'operator': 'startsWith', 'value': 'x'",
		"'operator': 'endsWith', 'value': 'x'",
		"'operator': 'matches', 'value': 'x'",
		"'operator': 'greaterThan', 'value': 1",
		"'operator': 'greaterThanOrEqual', 'value': 1",
		"'operator': 'lessThan', 'value': 1",
		"'operator': 'lessThanOrEqual', 'value': 1",
		"'operator': 'semverEqual', 'value': '1.0.0'",
		"'operator': 'semverGreaterThan', 'value': '1.0.0'",
		"'operator': 'semverLessThan', 'value': '1.0.0'",
		"'operator': 'before', 'value': '2026-01-01T00:00:00Z'",
		"'operator': 'after', 'value': '2026-01-01T00:00:00Z'",
	};
	for (size_t i = 0; i < sizeof conds / sizeof conds[0]; i++)
		for (int neg = 0; neg < 2; neg++) {
			char c[256];
			snprintf(c, sizeof c, "{'attribute': 'a', %s, 'negate': %s}", conds[i],
				 neg ? "true" : "false");
			CHECK_MISSING(c);
			/* A bool attribute is present: negate makes each true,
			 * except the not-operators which already are. */
			int plain = run(c, &(flagshm_attr){.name = "a", .type = FLAGSHM_ATTR_BOOL});
			bool is_not = strstr(conds[i], "'not") != NULL;
			cr_expect_eq(plain, is_not ^ neg, "%s with a bool attribute: got %d", c, plain);
		}
}
