/*
 * tests/test_compile_errors.c - the writer rejects every invalid flag
 * document with messages naming the file, the JSON path and the problem
 * (docs/flag-format.md, "Errors"), reports all of them, and compiles the
 * valid shapes (the new-checkout example, a bare array) into the snapshot
 * layout of shm/format.h.
 */
#include "compile.h"
#include "daemon.h"
#include "helpers.h"
#include "snap.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* A format-1 document with one flag, or with these flags. */
#define DOC(flags) "{'formatVersion':1,'flags':[" flags "]}"
#define BOOLFLAG(extra) "{'key':'f','defaultValue':true" extra "}"
#define RULE(body) DOC(BOOLFLAG(",'targeting':[{'id':'r'," body "}]"))
#define COND(c) RULE("'variation':true,'conditions':[" c "]")

static void expect_errors(const char *doc, const char *want)
{
	char *got = th_errors(doc, NULL);

	cr_assert_not_null(got, "the document compiled, expected:\n%s", want);
	cr_assert_str_eq(got, want);
	free(got);
}

static void expect_error_has(const char *doc, const char *want)
{
	char *got = th_errors(doc, NULL);

	cr_assert_not_null(got, "the document compiled, expected: %s", want);
	cr_assert(strstr(got, want), "expected a message containing\n  %s\ngot\n  %s", want, got);
	free(got);
}

static void expect_compiles(const char *doc, const char *env)
{
	char *got = th_errors(doc, env);

	cr_assert_null(got, "expected no errors, got:\n%s", got);
}

/* Errors of loading and compiling BYTES as a file with limits LIM. */
static char *file_errors(const void *bytes, size_t len, const wc_limits *lim)
{
	char path[] = "/tmp/flagshm-load-XXXXXX";
	int fd = mkstemp(path);
	wc_errors errs = {0};
	wc_snapshot out;
	json_t *doc = NULL;
	char *all = NULL;
	size_t n = 0;

	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
	close(fd);
	if (wc_load_file(path, lim, &doc, &errs) == 0) {
		if (wc_compile(doc, NULL, path, lim, &out, &errs) == 0)
			wc_snapshot_free(&out);
		json_decref(doc);
	}
	unlink(path);
	for (size_t i = 0; i < errs.n; i++)
		n += strlen(errs.msg[i]) + 1;
	if (errs.n) {
		all = calloc(1, n + 1);
		for (size_t i = 0; i < errs.n; i++) {
			/* Drop the random file name: "PATH:" -> "FILE:". */
			const char *m = errs.msg[i] + strlen(path);
			strcat(all, i ? "\nFILE" : "FILE");
			strcat(all, m);
		}
	}
	wc_errors_free(&errs);
	return all;
}

static void expect_file_error(const void *bytes, size_t len, const char *want)
{
	wc_limits lim = wc_limits_default();
	char *got = file_errors(bytes, len, &lim);

	cr_assert_not_null(got, "the file loaded, expected: %s", want);
	cr_assert_str_eq(got, want);
	free(got);
}

/* Errors of DOC (quotes as in helpers.h) compiled with limits LIM. */
static char *limit_errors(const char *doc, const wc_limits *lim)
{
	char *text = strdup(doc);
	size_t len = strlen(text);

	for (char *p = text; *p; p++)
		if (*p == '\'')
			*p = '"';
	char *all = file_errors(text, len, lim);
	free(text);
	return all;
}

/* ----------------------------------------------------------- document */

Test(document, unknown_top_level_field)
{
	expect_errors("{'formatVersion':1,'flags':[],'flagz':[]}",
		      "flags.json: flagz: unknown field");
}

Test(document, format_version_missing)
{
	expect_errors("{'flags':[]}",
		      "flags.json: formatVersion: required field is missing (this format is 1)");
}

Test(document, format_version_wrong)
{
	expect_errors("{'formatVersion':2,'flags':[]}",
		      "flags.json: formatVersion: must be 1 (the only format this writer reads)");
}

Test(document, root_is_not_a_document)
{
	expect_errors("42", "flags.json: $: must be a format-1 object or an array of flags (got number)");
	expect_errors("null", "flags.json: $: must be a format-1 object or an array of flags (got null)");
}

Test(keys, length_rule_before_max_string)
{
	wc_limits lim = wc_limits_default();
	char *e;

	lim.max_string = 4;
	e = limit_errors(DOC("{'key':'abcdefgh','defaultValue':true}"), &lim);
	cr_assert_null(e, "%s", e);
}

Test(document, flags_not_an_array)
{
	expect_errors("{'formatVersion':1,'flags':{}}",
		      "flags.json: flags: must be an array (got object)");
}

Test(document, flags_missing)
{
	expect_errors("{'formatVersion':1}", "flags.json: flags: required field is missing");
}

Test(document, epoch_string_or_integer)
{
	expect_compiles("{'formatVersion':1,'epoch':'e-17','flags':[]}", NULL);
	expect_compiles("{'formatVersion':1,'epoch':17,'flags':[]}", NULL);
	expect_errors("{'formatVersion':1,'epoch':true,'flags':[]}",
		      "flags.json: epoch: must be a string or an integer (got boolean)");
}

Test(document, segments_not_an_object)
{
	expect_errors("{'formatVersion':1,'segments':[],'flags':[]}",
		      "flags.json: segments: must be an object (got array)");
}

Test(document, bare_array_paths_start_at_the_index)
{
	expect_errors("[{'key':'a','defaultValue':true},{'key':'b'}]",
		      "flags.json: [1].defaultValue: required field is missing");
}

/* --------------------------------------------------------------- keys */

Test(keys, missing)
{
	expect_errors(DOC("{'defaultValue':true}"), "flags.json: flags[0].key: required field is missing");
}

Test(keys, bad_charset)
{
	expect_errors(DOC("{'key':'new/checkout','defaultValue':true}"),
		      "flags.json: flags[0].key: invalid character '/' in \"new/checkout\" "
		      "(allowed: A-Z a-z 0-9 . _ -)");
}

Test(keys, space_is_invalid)
{
	expect_error_has(DOC("{'key':'a b','defaultValue':true}"),
			 "flags.json: flags[0].key: invalid character 0x20 in \"a b\"");
}

Test(keys, empty)
{
	expect_errors(DOC("{'key':'','defaultValue':true}"), "flags.json: flags[0].key: must not be empty");
}

Test(keys, length_128_ok_129_rejected)
{
	char k128[129], doc[512], want[512];

	memset(k128, 'k', 128);
	k128[128] = '\0';
	snprintf(doc, sizeof doc, DOC("{'key':'%s','defaultValue':true}"), k128);
	expect_compiles(doc, NULL);
	snprintf(doc, sizeof doc, DOC("{'key':'%sx','defaultValue':true}"), k128);
	snprintf(want, sizeof want,
		 "flags.json: flags[0].key: \"%.64s...\" is 129 characters long, more than 128", k128);
	expect_errors(doc, want);
}

Test(keys, duplicate)
{
	expect_errors(DOC("{'key':'a','defaultValue':true},{'key':'b','defaultValue':true},"
			  "{'key':'a','defaultValue':false}"),
		      "flags.json: flags[2].key: duplicate key \"a\" (also flags[0])");
}

Test(keys, not_a_string)
{
	expect_errors(DOC("{'key':7,'defaultValue':true}"),
		      "flags.json: flags[0].key: must be a string (got number)");
}

/* -------------------------------------------------------- flag fields */

Test(flag, unknown_field)
{
	expect_errors(DOC(BOOLFLAG(",'enable':false")), "flags.json: flags[0].enable: unknown field");
}

Test(flag, not_an_object)
{
	expect_errors(DOC("'f'"), "flags.json: flags[0]: must be an object (got string)");
}

Test(flag, type_unknown)
{
	expect_errors(DOC(BOOLFLAG(",'type':'canary'")),
		      "flags.json: flags[0].type: must be one of release, operational, experiment, "
		      "permission (got \"canary\")");
}

Test(flag, enabled_not_boolean)
{
	expect_errors(DOC(BOOLFLAG(",'enabled':'yes'")),
		      "flags.json: flags[0].enabled: must be a boolean (got string)");
}

Test(flag, default_value_missing)
{
	expect_errors(DOC("{'key':'f'}"), "flags.json: flags[0].defaultValue: required field is missing");
}

Test(flag, default_value_null)
{
	expect_errors(DOC("{'key':'f','defaultValue':null}"),
		      "flags.json: flags[0].defaultValue: must be a boolean, number, string, object or "
		      "array (got null)");
}

Test(flag, off_value_other_type)
{
	expect_errors(DOC("{'key':'f','defaultValue':'a','offValue':false}"),
		      "flags.json: flags[0].offValue: must be a string, like defaultValue (got boolean)");
}

Test(flag, off_value_required_unless_boolean)
{
	expect_errors(DOC("{'key':'f','defaultValue':3}"),
		      "flags.json: flags[0].offValue: required for a flag whose defaultValue is a "
		      "number (only boolean flags default it to false)");
	expect_compiles(DOC("{'key':'f','defaultValue':true}"), NULL);
}

Test(flag, json_values_object_and_array_are_one_type)
{
	expect_compiles(DOC("{'key':'f','defaultValue':{'a':1},'offValue':[]}"), NULL);
	expect_errors(DOC("{'key':'f','defaultValue':{'a':1},'offValue':'x'}"),
		      "flags.json: flags[0].offValue: must be a JSON object or array, like "
		      "defaultValue (got string)");
}

Test(flag, bucket_by_empty)
{
	expect_errors(DOC(BOOLFLAG(",'bucketBy':''")), "flags.json: flags[0].bucketBy: must not be empty");
}

Test(flag, salt_not_string)
{
	expect_errors(DOC(BOOLFLAG(",'salt':5")), "flags.json: flags[0].salt: must be a string (got number)");
}

Test(flag, created_at_not_rfc3339)
{
	expect_errors(DOC(BOOLFLAG(",'createdAt':'2026-11-31T00:00:00Z'")),
		      "flags.json: flags[0].createdAt: \"2026-11-31T00:00:00Z\" is not an RFC 3339 "
		      "date-time (like 2026-11-01T00:00:00Z)");
}

Test(flag, version_negative_or_real)
{
	expect_errors(DOC(BOOLFLAG(",'version':-1")), "flags.json: flags[0].version: must be 0 or more (got -1)");
	expect_errors(DOC(BOOLFLAG(",'version':1.5")),
		      "flags.json: flags[0].version: must be an integer (got number)");
}

Test(flag, tags_of_strings)
{
	expect_errors(DOC(BOOLFLAG(",'tags':['a',2]")), "flags.json: flags[0].tags[1]: must be a string (got number)");
}

/* -------------------------------------------------------- percentages */

Test(percent, above_100)
{
	expect_errors(DOC(BOOLFLAG(",'rolloutPercentage':100.5")),
		      "flags.json: flags[0].rolloutPercentage: must be between 0 and 100 (got 100.5)");
}

Test(percent, negative)
{
	expect_errors(DOC(BOOLFLAG(",'rolloutPercentage':-1")),
		      "flags.json: flags[0].rolloutPercentage: must be between 0 and 100 (got -1)");
}

Test(percent, four_decimals)
{
	expect_errors(DOC(BOOLFLAG(",'rolloutPercentage':33.3333")),
		      "flags.json: flags[0].rolloutPercentage: must have at most 3 decimals (got 33.3333)");
	expect_compiles(DOC(BOOLFLAG(",'rolloutPercentage':33.333")), NULL);
}

Test(percent, string)
{
	expect_errors(DOC(BOOLFLAG(",'rolloutPercentage':'10'")),
		      "flags.json: flags[0].rolloutPercentage: must be a number (got string)");
}

Test(percent, rule_rollout)
{
	expect_errors(RULE("'variation':true,'rolloutPercentage':101"),
		      "flags.json: flags[0].targeting[0].rolloutPercentage: must be between 0 and 100 "
		      "(got 101)");
}

/* -------------------------------------------------------------- rules */

Test(rules, id_missing)
{
	expect_errors(DOC(BOOLFLAG(",'targeting':[{'variation':true}]")),
		      "flags.json: flags[0].targeting[0].id: required field is missing");
}

Test(rules, duplicate_id)
{
	expect_errors(DOC(BOOLFLAG(",'targeting':[{'id':'a','variation':true},"
				   "{'id':'b','variation':true},{'id':'a','variation':false}]")),
		      "flags.json: flags[0].targeting[2].id: duplicate rule id \"a\" (also targeting[0])");
}

Test(rules, same_id_in_two_flags_is_fine)
{
	expect_compiles(DOC("{'key':'a','defaultValue':true,'targeting':[{'id':'r','variation':true}]},"
			    "{'key':'b','defaultValue':true,'targeting':[{'id':'r','variation':true}]}"),
			NULL);
}

Test(rules, priority_not_integer)
{
	expect_errors(RULE("'variation':true,'priority':1.5"),
		      "flags.json: flags[0].targeting[0].priority: must be an integer (got number)");
	expect_errors(RULE("'variation':true,'priority':'1'"),
		      "flags.json: flags[0].targeting[0].priority: must be an integer (got string)");
}

Test(rules, priority_out_of_range)
{
	expect_errors(RULE("'variation':true,'priority':4294967296"),
		      "flags.json: flags[0].targeting[0].priority: must be between -2147483648 and "
		      "2147483647 (got 4294967296)");
}

Test(rules, variation_and_split)
{
	expect_errors(RULE("'variation':true,'split':[{'value':true,'weight':100}]"),
		      "flags.json: flags[0].targeting[0]: has both variation and split; give exactly one");
}

Test(rules, neither_variation_nor_split)
{
	expect_errors(RULE("'priority':1"), "flags.json: flags[0].targeting[0]: needs a variation or a split");
}

Test(rules, variation_type)
{
	expect_errors(RULE("'variation':'on'"),
		      "flags.json: flags[0].targeting[0].variation: must be a boolean, like defaultValue "
		      "(got string)");
}

Test(rules, unknown_field)
{
	expect_errors(RULE("'variation':true,'weight':5"),
		      "flags.json: flags[0].targeting[0].weight: unknown field");
}

Test(rules, targeting_not_array)
{
	expect_errors(DOC(BOOLFLAG(",'targeting':{}")),
		      "flags.json: flags[0].targeting: must be an array (got object)");
}

Test(rules, empty_segments_list)
{
	expect_errors(RULE("'variation':true,'segments':[]"),
		      "flags.json: flags[0].targeting[0].segments: must name at least one segment "
		      "(leave it out for none)");
}

Test(rules, unknown_segment)
{
	expect_errors(RULE("'variation':true,'segments':['beta']"),
		      "flags.json: flags[0].targeting[0].segments[0]: unknown segment \"beta\"");
}

/* ------------------------------------------------------------- splits */

Test(splits, weights_not_100)
{
	expect_errors(RULE("'split':[{'value':true,'weight':50},{'value':false,'weight':49.5}]"),
		      "flags.json: flags[0].targeting[0].split: weights sum to 99.5, not 100");
}

Test(splits, thousandths_sum_exactly)
{
	expect_compiles(RULE("'split':[{'value':true,'weight':33.333},{'value':false,'weight':33.333},"
			     "{'value':true,'weight':33.334}]"),
			NULL);
}

Test(splits, value_type)
{
	expect_errors(RULE("'split':[{'value':1,'weight':100}]"),
		      "flags.json: flags[0].targeting[0].split[0].value: must be a boolean, like "
		      "defaultValue (got number)");
}

Test(splits, weight_decimals)
{
	expect_errors(RULE("'split':[{'value':true,'weight':50.0001},{'value':false,'weight':49.9999}]"),
		      "flags.json: flags[0].targeting[0].split[0].weight: must have at most 3 decimals "
		      "(got 50.0001)\n"
		      "flags.json: flags[0].targeting[0].split[1].weight: must have at most 3 decimals "
		      "(got 49.9999)");
}

Test(splits, empty)
{
	expect_errors(RULE("'split':[]"),
		      "flags.json: flags[0].targeting[0].split: must have at least one band");
}

Test(splits, weight_missing)
{
	expect_errors(RULE("'split':[{'value':true}]"),
		      "flags.json: flags[0].targeting[0].split[0].weight: required field is missing");
}

/* --------------------------------------------------------- conditions */

Test(conditions, unknown_operator)
{
	expect_errors(COND("{'attribute':'country','operator':'like','value':'DE'}"),
		      "flags.json: flags[0].targeting[0].conditions[0].operator: unknown operator \"like\"");
}

Test(conditions, operator_missing)
{
	expect_errors(COND("{'attribute':'country','value':'DE'}"),
		      "flags.json: flags[0].targeting[0].conditions[0].operator: required field is missing");
}

Test(conditions, attribute_missing_and_value_missing)
{
	expect_errors(COND("{'operator':'equals'}"),
		      "flags.json: flags[0].targeting[0].conditions[0].attribute: required field is missing\n"
		      "flags.json: flags[0].targeting[0].conditions[0].value: required field is missing");
}

Test(conditions, unknown_field)
{
	expect_errors(COND("{'attribute':'a','operator':'equals','value':'x','negated':true}"),
		      "flags.json: flags[0].targeting[0].conditions[0].negated: unknown field");
}

Test(conditions, negate_not_boolean)
{
	expect_errors(COND("{'attribute':'a','operator':'equals','value':'x','negate':1}"),
		      "flags.json: flags[0].targeting[0].conditions[0].negate: must be a boolean (got number)");
}

Test(conditions, equals_operand_type)
{
	expect_errors(COND("{'attribute':'a','operator':'equals','value':['x']}"),
		      "flags.json: flags[0].targeting[0].conditions[0].value: must be a string, number or "
		      "boolean for equals (got array)");
}

Test(conditions, in_operand_not_list)
{
	expect_errors(COND("{'attribute':'a','operator':'in','value':'DE'}"),
		      "flags.json: flags[0].targeting[0].conditions[0].value: must be an array of strings "
		      "and numbers for in (got string)");
}

Test(conditions, in_list_boolean_element)
{
	expect_errors(COND("{'attribute':'a','operator':'notIn','value':['DE',true]}"),
		      "flags.json: flags[0].targeting[0].conditions[0].value[1]: must be a string or a "
		      "number (got boolean)");
}

Test(conditions, contains_operand_type)
{
	expect_errors(COND("{'attribute':'a','operator':'contains','value':5}"),
		      "flags.json: flags[0].targeting[0].conditions[0].value: must be a string for "
		      "contains (got number)");
}

Test(conditions, greater_than_operand_type)
{
	expect_errors(COND("{'attribute':'age','operator':'greaterThan','value':'18'}"),
		      "flags.json: flags[0].targeting[0].conditions[0].value: must be a number for "
		      "greaterThan (got string)");
}

Test(conditions, invalid_regex_reports_pcre2)
{
	expect_errors(COND("{'attribute':'email','operator':'matches','value':'(abc'}"),
		      "flags.json: flags[0].targeting[0].conditions[0].value: invalid regular expression "
		      "at offset 4: missing closing parenthesis");
}

Test(conditions, invalid_semver)
{
	expect_errors(COND("{'attribute':'v','operator':'semverGreaterThan','value':'1.2'}"),
		      "flags.json: flags[0].targeting[0].conditions[0].value: \"1.2\" is not a SemVer "
		      "2.0.0 version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])");
	expect_error_has(COND("{'attribute':'v','operator':'semverEqual','value':'v1.2.3'}"),
			 "\"v1.2.3\" is not a SemVer 2.0.0 version");
	expect_error_has(COND("{'attribute':'v','operator':'semverLessThan','value':'01.2.3'}"),
			 "\"01.2.3\" is not a SemVer 2.0.0 version");
}

Test(conditions, invalid_date)
{
	expect_errors(COND("{'attribute':'t','operator':'before','value':'2026-13-01T00:00:00Z'}"),
		      "flags.json: flags[0].targeting[0].conditions[0].value: \"2026-13-01T00:00:00Z\" "
		      "is not an RFC 3339 date-time (like 2026-11-01T00:00:00Z)");
	expect_errors(COND("{'attribute':'t','operator':'after','value':true}"),
		      "flags.json: flags[0].targeting[0].conditions[0].value: must be an RFC 3339 string "
		      "or Unix seconds for after (got boolean)");
	expect_compiles(COND("{'attribute':'t','operator':'after','value':1700000000.5}"), NULL);
}

Test(conditions, case_insensitive_only_for_strings)
{
	expect_errors(COND("{'attribute':'n','operator':'lessThan','value':3,'caseInsensitive':true}"),
		      "flags.json: flags[0].targeting[0].conditions[0].caseInsensitive: applies only to "
		      "string operators, not lessThan");
}

Test(conditions, huge_integer_not_exact)
{
	expect_errors(COND("{'attribute':'n','operator':'equals','value':9007199254740993}"),
		      "flags.json: flags[0].targeting[0].conditions[0].value: integer 9007199254740993 "
		      "is too large to be exact as a double (more than 2^53)");
}

/* ----------------------------------------------------------- segments */

Test(segments, unknown_field)
{
	expect_errors("{'formatVersion':1,'segments':{'beta':{'include':['u1']}},'flags':[]}",
		      "flags.json: segments.beta.include: unknown field");
}

Test(segments, condition_path)
{
	expect_errors("{'formatVersion':1,'segments':{'beta':{'conditions':["
		      "{'attribute':'tier','operator':'in','value':'beta'}]}},'flags':[]}",
		      "flags.json: segments.beta.conditions[0].value: must be an array of strings and "
		      "numbers for in (got string)");
}

Test(segments, included_not_strings)
{
	expect_errors("{'formatVersion':1,'segments':{'beta':{'included':['u1',2]}},'flags':[]}",
		      "flags.json: segments.beta.included[1]: must be a string (got number)");
}

Test(segments, bad_name)
{
	expect_errors("{'formatVersion':1,'segments':{'be ta':{}},'flags':[]}",
		      "flags.json: segments.be ta: invalid character 0x20 in \"be ta\" (allowed: A-Z a-z "
		      "0-9 . _ -)");
}

/* ------------------------------------------------------ prerequisites */

Test(prereqs, unknown_flag)
{
	expect_errors(DOC(BOOLFLAG(",'prerequisites':[{'key':'payments-v2','value':true}]")),
		      "flags.json: flags[0].prerequisites[0].key: unknown flag \"payments-v2\"");
}

Test(prereqs, value_type)
{
	expect_errors(DOC("{'key':'a','defaultValue':'x','offValue':'y'},"
			  "{'key':'b','defaultValue':true,'prerequisites':[{'key':'a','value':true}]}"),
		      "flags.json: flags[1].prerequisites[0].value: must be a string, like the "
		      "defaultValue of \"a\" (got boolean)");
}

Test(prereqs, cycle)
{
	expect_errors(DOC("{'key':'a','defaultValue':true,'prerequisites':[{'key':'b','value':true}]},"
			  "{'key':'b','defaultValue':true,'prerequisites':[{'key':'c','value':true}]},"
			  "{'key':'c','defaultValue':true,'prerequisites':[{'key':'a','value':true}]}"),
		      "flags.json: flags[2].prerequisites[0].key: prerequisite cycle: a -> b -> c -> a");
}

Test(prereqs, self)
{
	expect_errors(DOC("{'key':'a','defaultValue':true,'prerequisites':[{'key':'a','value':true}]}"),
		      "flags.json: flags[0].prerequisites[0].key: prerequisite cycle: a -> a");
}

/* A chain f0 -> f1 -> ... -> fN of N links. */
static char *chain(int links)
{
	size_t cap = (size_t)(links + 1) * 128 + 64, len = 0;
	char *s = malloc(cap);

	len += (size_t)snprintf(s, cap, "{'formatVersion':1,'flags':[");
	for (int i = 0; i <= links; i++) {
		if (i < links)
			len += (size_t)snprintf(s + len, cap - len,
						"%s{'key':'f%d','defaultValue':true,'prerequisites':"
						"[{'key':'f%d','value':true}]}",
						i ? "," : "", i, i + 1);
		else
			len += (size_t)snprintf(s + len, cap - len, ",{'key':'f%d','defaultValue':true}", i);
	}
	snprintf(s + len, cap - len, "]}");
	return s;
}

Test(prereqs, depth_32_ok_33_rejected)
{
	char *ok = chain(32), *bad = chain(33);

	expect_compiles(ok, NULL);
	expect_errors(bad, "flags.json: flags[0].prerequisites: a prerequisite chain 33 links deep, "
			   "more than 32");
	free(ok);
	free(bad);
}

/* ------------------------------------------------------- environments */

Test(environments, unknown_override)
{
	expect_errors(DOC(BOOLFLAG(",'environments':{'staging':{'salt':'x'}}")),
		      "flags.json: flags[0].environments.staging.salt: unknown field");
}

Test(environments, errors_in_unselected_environments_count)
{
	expect_errors(DOC(BOOLFLAG(",'environments':{'staging':{'targeting':[{'id':'r',"
				   "'variation':true,'conditions':[{'attribute':'a','operator':'is',"
				   "'value':1}]}]}}")),
		      "flags.json: flags[0].environments.staging.targeting[0].conditions[0].operator: "
		      "unknown operator \"is\"");
}

Test(environments, default_value_keeps_the_type)
{
	expect_errors(DOC(BOOLFLAG(",'environments':{'prod':{'defaultValue':'yes'}}")),
		      "flags.json: flags[0].environments.prod.defaultValue: must be a boolean, like the "
		      "flag's defaultValue (got string)");
}

Test(environments, not_an_object)
{
	expect_errors(DOC(BOOLFLAG(",'environments':{'prod':true}")),
		      "flags.json: flags[0].environments.prod: must be an object (got boolean)");
}

/* ---------------------------------------------------- files and syntax */

Test(files, empty)
{
	expect_file_error("", 0, "FILE: the file is empty (expected a JSON object or array)");
}

Test(files, only_whitespace)
{
	expect_file_error("  \n", 3, "FILE: the file is empty (expected a JSON object or array)");
}

Test(files, truncated)
{
	const char *t = "{\"formatVersion\": 1, \"flags\": [{\"key\": \"a\",";
	expect_file_error(t, strlen(t), "FILE:1:43: string or '}' expected near end of file");
}

Test(files, binary_garbage)
{
	const unsigned char junk[] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0};
	expect_file_error(junk, sizeof junk, "FILE: binary data (NUL byte at offset 7), not JSON text");
}

Test(files, invalid_utf8)
{
	const char *t = "{\"formatVersion\": 1,\n \"flags\": [\"\xff\"]}";
	expect_file_error(t, strlen(t), "FILE:2:13: invalid UTF-8 (byte 0xff)");
}

Test(files, overlong_utf8)
{
	const char *t = "[\"\xc0\xaf\"]";
	expect_file_error(t, strlen(t), "FILE:1:3: invalid UTF-8 (byte 0xc0)");
}

Test(files, trailing_garbage)
{
	const char *t = "[] []";
	expect_file_error(t, strlen(t), "FILE:1:4: end of file expected near '['");
}

Test(files, duplicate_object_key)
{
	const char *t = "{\"formatVersion\": 1, \"flags\": [], \"flags\": []}";
	expect_file_error(t, strlen(t), "FILE:1:41: duplicate object key near '\"flags\"'");
}

Test(files, deep_nesting)
{
	size_t n = 5000;
	char *t = malloc(2 * n);

	memset(t, '[', n);
	memset(t + n, ']', n);
	expect_file_error(t, 2 * n, "FILE:1:2049: maximum parsing depth reached near '['");
	free(t);
}

Test(files, number_overflow_1e400)
{
	expect_error_has(DOC("{'key':'f','defaultValue':1e400,'offValue':0}"),
			 "flags.json:1:59: real number overflow near '1e400'");
}

Test(files, integer_overflow)
{
	expect_error_has(DOC("{'key':'f','defaultValue':99999999999999999999,'offValue':0}"),
			 "flags.json:1:74: too big integer near '99999999999999999999'");
}

Test(files, nan_is_not_json)
{
	expect_error_has(DOC("{'key':'f','defaultValue':NaN,'offValue':0}"),
			 "flags.json:1:");
}

Test(files, missing_file)
{
	wc_errors errs = {0};
	json_t *doc;

	cr_assert_eq(wc_load_file("/nonexistent/flags.json", NULL, &doc, &errs), -1);
	cr_assert_eq(errs.n, 1);
	cr_assert_str_eq(errs.msg[0], "/nonexistent/flags.json: cannot open: No such file or directory");
	wc_errors_free(&errs);
}

Test(files, utf8_bom_is_skipped)
{
	const char *t = "\xef\xbb\xbf[]";
	wc_limits lim = wc_limits_default();
	char *e = file_errors(t, strlen(t), &lim);

	cr_assert_null(e, "%s", e);
}

/* ------------------------------------------------------------- limits */

/* Segment s: one plain and one regex condition. Flag a: a cheap base
 * targeting, and an environment whose rule names s three times (one
 * reference once compiled) beside two conditions; b needs a. */
#define COSTLY                                                                                 \
	"{'formatVersion':1,'segments':{'s':{'conditions':["                                    \
	"{'attribute':'x','operator':'equals','value':1},"                                      \
	"{'attribute':'m','operator':'matches','value':'^a+$'}]}},'flags':["                    \
	"{'key':'a','defaultValue':true,'targeting':[{'id':'r','variation':false,"              \
	"'conditions':[{'attribute':'x','operator':'equals','value':1}]}],"                     \
	"'environments':{'big':{'targeting':[{'id':'r','variation':false,'segments':['s','s','s'],"\
	"'conditions':[{'attribute':'x','operator':'equals','value':1},"                        \
	"{'attribute':'y','operator':'equals','value':2}]}]}}}"

/* Flag a costs 1 + 1 rule + 2 x 16 + 1 segment x 16 + 16 + 160 = 226 in
 * environment big (18 in its own targeting); b adds itself: 227. */
Test(limits, eval_cost_names_the_flag_its_cost_and_counts_the_costliest_environment)
{
	wc_limits lim = wc_limits_default();
	char *e;

	lim.max_eval_cost = 225;
	e = limit_errors(COSTLY ",{'key':'b','defaultValue':true,'prerequisites':"
				"[{'key':'a','value':true}]}]}", &lim);
	cr_assert_str_eq(e,
		"FILE: flags[0] (\"a\"): worst-case evaluation cost 226 exceeds the limit "
		"eval-cost=225 (4 condition evaluations, 1 of them regex matches; 1 segment lookups, "
		"1 rules, 1 flag evaluations)\n"
		"FILE: flags[1] (\"b\"): worst-case evaluation cost 227 exceeds the limit "
		"eval-cost=225 (4 condition evaluations, 1 of them regex matches; 1 segment lookups, "
		"1 rules, 2 flag evaluations)");
	free(e);
}

Test(limits, eval_cost_equal_to_the_limit_compiles)
{
	wc_limits lim = wc_limits_default();
	char *e;

	lim.max_eval_cost = 226;
	e = limit_errors(COSTLY "]}", &lim);
	cr_assert_null(e, "%s", e);
	lim.max_eval_cost = 225;
	e = limit_errors(COSTLY "]}", &lim);
	cr_assert_not_null(e);
	free(e);
}

/* Identical patterns (bytes and caseInsensitive) count once; the first
 * condition past the limit is named. */
Test(limits, regexes_counts_distinct_patterns_and_names_the_first_past_the_limit)
{
	wc_limits lim = wc_limits_default();
	char *e;

	lim.max_regexes = 2;
	e = limit_errors(COND("{'attribute':'m','operator':'matches','value':'a'},"
			      "{'attribute':'n','operator':'matches','value':'a'},"
			      "{'attribute':'m','operator':'matches','value':'a','caseInsensitive':true},"
			      "{'attribute':'m','operator':'matches','value':'b'},"
			      "{'attribute':'m','operator':'matches','value':'c'}"),
			 &lim);
	cr_assert_str_eq(e, "FILE: flags[0].targeting[0].conditions[3].value: a regular expression "
			    "past the limit regexes (2 distinct patterns per document, counting "
			    "every environment)");
	free(e);
	lim.max_regexes = 3;
	e = limit_errors(COND("{'attribute':'m','operator':'matches','value':'a'},"
			      "{'attribute':'n','operator':'matches','value':'a'},"
			      "{'attribute':'m','operator':'matches','value':'a','caseInsensitive':true},"
			      "{'attribute':'m','operator':'matches','value':'b'}"),
			 &lim);
	cr_assert_null(e, "%s", e);
}

Test(limits, eval_cost_and_regexes_are_writer_options)
{
	wc_limits lim = wc_limits_default();
	char err[256];

	cr_assert_eq(lim.max_eval_cost, 7000);
	cr_assert_eq(lim.max_regexes, 1000);
	cr_assert_eq(wd_limit_parse(&lim, "eval-cost=5000", err, sizeof err), 0, "%s", err);
	cr_assert_eq(lim.max_eval_cost, 5000);
	cr_assert_eq(wd_limit_parse(&lim, "regexes=10000", err, sizeof err), 0, "%s", err);
	cr_assert_eq(lim.max_regexes, FS_REGEX_MAX);
	cr_assert_eq(wd_limit_parse(&lim, "regexes=10001", err, sizeof err), -1);
	cr_assert_str_eq(err, "--limit 'regexes=10001': at most 10000 (readers refuse snapshots "
			      "with more regexes)");
	cr_assert_eq(lim.max_regexes, FS_REGEX_MAX);
}

Test(limits, max_doc_bytes)
{
	wc_limits lim = wc_limits_default();
	char *e;

	lim.max_doc_bytes = 10;
	e = limit_errors("{'formatVersion':1,'flags':[]}", &lim);
	cr_assert_str_eq(e, "FILE: the file is 30 bytes, more than the limit max_doc_bytes (10)");
	free(e);
}

Test(limits, max_flags)
{
	wc_limits lim = wc_limits_default();
	char *e;

	lim.max_flags = 1;
	e = limit_errors(DOC("{'key':'a','defaultValue':true},{'key':'b','defaultValue':true}"), &lim);
	/* Counted on the text, before jansson builds the flags. */
	cr_assert_str_eq(e, "FILE:1: flags: more than the limit max_flags (1): flags[1] starts at "
			    "byte 60; refused before parsing");
	free(e);
}

Test(limits, max_segments)
{
	wc_limits lim = wc_limits_default();
	char *e;

	lim.max_segments = 1;
	e = limit_errors("{'formatVersion':1,'segments':{'a':{},'b':{}},'flags':[]}", &lim);
	cr_assert_str_eq(e, "FILE:1: segments: more than the limit max_segments (1): segments[1] "
			    "starts at byte 38; refused before parsing");
	free(e);
}

/* This process's peak RSS so far, in MiB. */
static long peak_mib(void)
{
	struct rusage ru;
	cr_assert_eq(getrusage(RUSAGE_SELF, &ru), 0);
	return ru.ru_maxrss / 1024;
}

/* Without the count on the text, 38 MB of JSON with 10^6 flags was parsed
 * whole, about 600 MB, before max_flags rejected it. Now the text is
 * counted first. */
Test(limits, a_million_flags_with_the_default_limits_cost_no_parse)
{
	const char head[] = "{\"formatVersion\":1,\"flags\":[";
	const char one[] = "{\"key\":\"f0000000\",\"defaultValue\":true},";
	size_t n1 = sizeof one - 1, len = sizeof head - 1 + 1000000 * n1 + 1;
	char *text = malloc(len + 1);
	wc_limits lim = wc_limits_default();
	wc_errors errs = {0};
	json_t *doc = NULL;

	cr_assert_not_null(text);
	memcpy(text, head, sizeof head - 1);
	for (size_t i = 0; i < 1000000; i++)
		memcpy(text + sizeof head - 1 + i * n1, one, n1);
	memcpy(text + len - 2, "]}", 3);
	long before = peak_mib();
	cr_assert_eq(wc_load_buffer(text, len, "FILE", &lim, &doc, &errs), -1);
	long grew = peak_mib() - before;
	cr_assert_eq(errs.n, 1);
	cr_assert_str_eq(errs.msg[0], "FILE:1: flags: more than the limit max_flags (100000): "
				      "flags[100000] starts at byte 3900028; refused before parsing");
	fprintf(stderr, "FIGURE limits.million_flags with the default limits: peak RSS grew %ld MiB\n",
		grew);
	cr_assert_lt(grew, 8, "refusing grew the peak RSS by %ld MiB", grew);
	wc_errors_free(&errs);
	free(text);
}

/* The count before parsing is lexical: brackets, commas and quotes inside
 * strings, a "flags" key below the root and nested objects in segments
 * must not be counted. At exactly the limits the document is valid. */
Test(limits, the_count_before_parsing_sees_only_top_level_entries)
{
	wc_limits lim = wc_limits_default();
	char *e;

	lim.max_flags = 2;
	lim.max_segments = 1;
	e = limit_errors("{'segments':{'s':{'included':['a,b','[{'],'conditions':[{'attribute':'x',"
			 "'operator':'equals','value':'},{'}]}},'formatVersion':1,"
			 "'flags':[{'key':'a','description':'x\\\\\\\",[],{},','defaultValue':true,"
			 "'tags':['flags',',',']'],'environments':{'flags':{'enabled':true}}},"
			 "{'key':'b','defaultValue':true,'targeting':[{'id':'r','segments':['s'],"
			 "'variation':false},{'id':'q','segments':['s'],'variation':true}]}]}",
			 &lim);
	cr_assert_null(e, "%s", e);
	/* A bare array of flags is counted too. */
	e = limit_errors("[{'key':'a','defaultValue':true},{'key':'b','defaultValue':true},"
			 "{'key':'c','defaultValue':true}]",
			 &lim);
	cr_assert_str_eq(e, "FILE:1: flags: more than the limit max_flags (2): flags[2] starts at "
			    "byte 65; refused before parsing");
	free(e);
}

/* Valid counts, but 3 MB of empty objects: the parse budget stops it. */
Test(limits, a_document_of_empty_objects_stops_at_the_memory_budget)
{
	const char head[] = "{\"formatVersion\":1,\"flags\":[{\"key\":\"a\",\"defaultValue\":[";
	size_t n = 1000000, len = sizeof head - 1 + 3 * n + 3;
	char *text = malloc(len + 1);
	wc_limits lim = wc_limits_default();
	wc_errors errs = {0};
	json_t *doc = NULL;

	cr_assert_not_null(text);
	memcpy(text, head, sizeof head - 1);
	for (size_t i = 0; i < n; i++)
		memcpy(text + sizeof head - 1 + 3 * i, "{},", 3);
	memcpy(text + sizeof head - 1 + 3 * n - 1, "]}]}", 5); /* over the last "," */
	long before = peak_mib();
	cr_assert_eq(wc_load_buffer(text, len, "FILE", &lim, &doc, &errs), -1);
	long grew = peak_mib() - before, budget = (long)((24 * len + (16u << 20)) >> 20);
	cr_assert_eq(errs.n, 1);
	cr_assert(strncmp(errs.msg[0], "FILE: parsing needs more than ", 30) == 0 &&
			  strstr(errs.msg[0], "(24 times the document's 3000058 bytes plus 16 MiB"),
		  "%s", errs.msg[0]);
	fprintf(stderr, "FIGURE limits.empty_objects_3mb: peak RSS grew %ld MiB (budget %ld MiB)\n",
		grew, budget);
	/* The budget counts bytes asked for; RSS adds malloc's headers (and
	 * ASan's redzones, so it is not checked there). */
#ifndef __SANITIZE_ADDRESS__
	cr_assert_leq(grew, budget * 3 / 2 + 16, "grew %ld MiB past a budget of %ld MiB", grew,
		      budget);
#endif
	wc_errors_free(&errs);
	free(text);
}

Test(limits, max_rules_and_conditions)
{
	wc_limits lim = wc_limits_default();
	char *e;

	lim.max_rules = 1;
	lim.max_conditions = 1;
	e = limit_errors(DOC(BOOLFLAG(",'targeting':[{'id':'a','variation':true,'conditions':["
				      "{'attribute':'x','operator':'equals','value':1},"
				      "{'attribute':'y','operator':'equals','value':2}]},"
				      "{'id':'b','variation':true}]")),
			 &lim);
	cr_assert_str_eq(e, "FILE: flags[0].targeting: 2 rules, more than the limit max_rules (1)\n"
			    "FILE: flags[0].targeting[0].conditions: 2 conditions, more than the "
			    "limit max_conditions (1)");
	free(e);
}

Test(limits, max_list)
{
	wc_limits lim = wc_limits_default();
	char *e;

	lim.max_list = 2;
	e = limit_errors(COND("{'attribute':'c','operator':'in','value':['a','b','c']}"), &lim);
	cr_assert_str_eq(e, "FILE: flags[0].targeting[0].conditions[0].value: 3 elements, more than the "
			    "limit max_list (2)");
	free(e);
}

Test(limits, max_string)
{
	wc_limits lim = wc_limits_default();
	char *e;

	lim.max_string = 4;
	e = limit_errors(DOC("{'key':'f','defaultValue':'abcdef','offValue':'x'}"), &lim);
	cr_assert_str_eq(e, "FILE: flags[0].defaultValue: a string of 6 bytes, more than the limit "
			    "max_string (4)");
	free(e);
}

Test(limits, max_snapshot)
{
	wc_limits lim = wc_limits_default();
	char *e;

	lim.max_snapshot = 256;
	e = limit_errors(DOC(BOOLFLAG("")), &lim);
	cr_assert_not_null(e);
	cr_assert(strstr(e, "FILE: the snapshot would be ") && strstr(e, " bytes, more than the limit max_snapshot (256)"),
		  "got %s", e);
	free(e);
}

/* ------------------------------------------------------ all the errors */

Test(collect, every_error_is_reported)
{
	expect_errors("{'formatVersion':1,'segments':{'s':{'conditions':[{'attribute':'a',"
		      "'operator':'nope','value':1}]}},'flags':["
		      "{'key':'a b','defaultValue':true,'rolloutPercentage':200},"
		      "{'key':'c','defaultValue':'x','targeting':[{'id':'r','variation':1}]}]}",
		      "flags.json: segments.s.conditions[0].operator: unknown operator \"nope\"\n"
		      "flags.json: flags[0].key: invalid character 0x20 in \"a b\" (allowed: A-Z a-z "
		      "0-9 . _ -)\n"
		      "flags.json: flags[0].rolloutPercentage: must be between 0 and 100 (got 200)\n"
		      "flags.json: flags[1].offValue: required for a flag whose defaultValue is a string "
		      "(only boolean flags default it to false)\n"
		      "flags.json: flags[1].targeting[0].variation: must be a string, like defaultValue "
		      "(got number)");
}

Test(collect, capped_at_errors_max)
{
	size_t n = WC_ERRORS_MAX + 50, cap = n * 40 + 64, len = 0;
	char *doc = malloc(cap), *e;
	size_t lines = 1;

	len += (size_t)snprintf(doc, cap, "[");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(doc + len, cap - len, "%s{'key':'k%zu'}", i ? "," : "", i);
	snprintf(doc + len, cap - len, "]");
	e = th_errors(doc, NULL);
	cr_assert_not_null(e);
	for (char *p = e; *p; p++)
		lines += *p == '\n';
	cr_assert_eq(lines, WC_ERRORS_MAX + 1, "lines %zu", lines);
	cr_assert(strstr(e, "\n... and 50 more"), "%s", strrchr(e, '\n'));
	free(e);
	free(doc);
}

/* --------------------------------------------------- valid documents */

#define ISSUE_FLAG                                                                             \
	"{'key':'new-checkout','name':'New checkout','description':'...','type':'release',"    \
	"'enabled':true,'defaultValue':true,'offValue':false,'rolloutPercentage':10,"          \
	"'bucketBy':'userId','salt':'new-checkout','targeting':["                              \
	"{'id':'staff','priority':1,'segments':['internal'],'variation':true},"                \
	"{'id':'eu-beta','priority':2,'conditions':[{'attribute':'country','operator':'in',"   \
	"'value':['DE','FR']}],'segments':['beta'],'rolloutPercentage':50,'variation':true}]," \
	"'prerequisites':[{'key':'payments-v2','value':true}],"                                \
	"'environments':{'staging':{'rolloutPercentage':100}},"                                \
	"'createdAt':'2026-11-01T00:00:00Z','updatedAt':'2026-11-20T00:00:00Z','version':7,"   \
	"'owner':'checkout-team','expiresAt':'2027-02-01T00:00:00Z'}"
#define ISSUE_SEGMENTS                                                                         \
	"'segments':{'internal':{'conditions':[{'attribute':'email','operator':'endsWith',"     \
	"'value':'@acme.com'}]},'beta':{'included':['u-1','u-2'],'conditions':[{'attribute':"  \
	"'tier','operator':'in','value':['beta','premium']}]}}"

Test(valid, issue_example_needs_its_prerequisite)
{
	expect_errors("{'formatVersion':1," ISSUE_SEGMENTS ",'flags':[" ISSUE_FLAG "]}",
		      "flags.json: flags[0].prerequisites[0].key: unknown flag \"payments-v2\"");
}

Test(valid, issue_example_compiles)
{
	snap *s = th_snap("{'formatVersion':1," ISSUE_SEGMENTS ",'flags':[" ISSUE_FLAG
			  ",{'key':'payments-v2','defaultValue':true}]}",
			  NULL);
	const fs_flag *f = SNAP_FLAG(s, 0);

	cr_assert_eq(s->count[FS_T_FLAGS], 2);
	cr_assert_eq(snap_find(s, "new-checkout", 12), 0);
	cr_assert_eq(snap_find(s, "payments-v2", 11), 1);
	cr_assert_str_eq(snap_str(s, f->f_name), "New checkout");
	cr_assert_str_eq(snap_str(s, f->f_owner), "checkout-team");
	cr_assert_str_eq(snap_str(s, f->f_expires_at), "2027-02-01T00:00:00Z");
	cr_assert_eq(f->f_version, 7);
	cr_assert_eq(f->f_rollout, 10000);
	cr_assert_eq(f->f_rule_count, 2);
	cr_assert_eq(f->f_prereq_count, 1);
	cr_assert_eq(SNAP_PREREQ(s, f->f_prereq_first)->pq_flag, 1);
	cr_assert_eq(SNAP_FLAG(s, 1)->f_version, INT64_MIN);
	cr_assert_str_eq(snap_str(s, SNAP_FLAG(s, 1)->f_salt), "payments-v2");
	cr_assert_str_eq(snap_str(s, SNAP_FLAG(s, 1)->f_bucket_by), "userId");
	cr_assert_eq(s->count[FS_T_SEGMENTS], 2);
	th_snap_free(s);
}

Test(valid, environment_override_applies)
{
	const char *doc = "{'formatVersion':1," ISSUE_SEGMENTS ",'flags':[" ISSUE_FLAG
			  ",{'key':'payments-v2','defaultValue':true}]}";
	snap *s = th_snap(doc, "staging");
	const fs_snap_hdr *h = (const fs_snap_hdr *)s->base;

	cr_assert_eq(SNAP_FLAG(s, 0)->f_rollout, 100000);
	cr_assert_str_eq(snap_str(s, h->sh_environment), "staging");
	th_snap_free(s);
	s = th_snap(doc, "production"); /* not in the flag: no override */
	cr_assert_eq(SNAP_FLAG(s, 0)->f_rollout, 10000);
	th_snap_free(s);
}

Test(valid, environment_targeting_replaces_the_list)
{
	snap *s = th_snap(DOC(BOOLFLAG(",'targeting':[{'id':'a','variation':true},{'id':'b',"
				       "'variation':true}],'environments':{'dev':{'enabled':false,"
				       "'targeting':[{'id':'c','variation':false}]}}")),
			  "dev");
	const fs_flag *f = SNAP_FLAG(s, 0);

	cr_assert_eq(f->f_enabled, 0);
	cr_assert_eq(f->f_rule_count, 1);
	cr_assert_str_eq(snap_str(s, SNAP_RULE(s, f->f_rule_first)->r_id), "c");
	th_snap_free(s);
}

Test(valid, bare_array)
{
	snap *s = th_snap("[{'key':'a','defaultValue':'x','offValue':'y'},{'key':'b','defaultValue':"
			  "{'z':1,'a':[1,2]},'offValue':{}}]",
			  NULL);
	const fs_value *v = SNAP_VALUE(s, SNAP_FLAG(s, 1)->f_default);

	cr_assert_eq(s->count[FS_T_FLAGS], 2);
	cr_assert_eq(s->count[FS_T_SEGMENTS], 0);
	cr_assert_eq(v->v_type, FS_V_JSON);
	cr_assert_str_eq(snap_str(s, v->v_str), "{\"a\":[1,2],\"z\":1}");
	th_snap_free(s);
}

Test(valid, empty_document)
{
	snap *s = th_snap("{'formatVersion':1,'flags':[]}", NULL);

	cr_assert_eq(s->count[FS_T_FLAGS], 0);
	cr_assert_eq(snap_find(s, "x", 1), -1);
	th_snap_free(s);
}

Test(layout, rules_sorted_by_priority_ties_in_file_order)
{
	snap *s = th_snap(DOC(BOOLFLAG(",'targeting':[{'id':'p5','priority':5,'variation':true},"
				       "{'id':'d1','variation':true},{'id':'m1','priority':-1,"
				       "'variation':true},{'id':'d2','priority':0,'variation':true}]")),
			  NULL);
	const fs_flag *f = SNAP_FLAG(s, 0);
	const char *want[] = {"m1", "d1", "d2", "p5"};

	for (uint32_t i = 0; i < 4; i++)
		cr_assert_str_eq(snap_str(s, SNAP_RULE(s, f->f_rule_first + i)->r_id), want[i]);
	th_snap_free(s);
}

Test(layout, in_list_sorted_and_lowercased)
{
	snap *s = th_snap(COND("{'attribute':'c','operator':'in','caseInsensitive':true,"
			       "'value':[3,'FR','de',-1,'AT']}"),
			  NULL);
	const fs_cond *c = SNAP_COND(s, SNAP_RULE(s, SNAP_FLAG(s, 0)->f_rule_first)->r_cond_first);
	const fs_value *l = SNAP_VALUE(s, c->c_value);

	cr_assert_eq(c->c_op, FS_OP_IN);
	cr_assert_eq(c->c_flags, FS_COND_CASE_INSENSITIVE);
	cr_assert_eq(l->v_type, FS_V_LIST);
	cr_assert_eq(l->v_count, 5);
	cr_assert_eq(c->c_nstr, 3);
	cr_assert_str_eq(snap_str(s, SNAP_VALUE(s, l->v_first)->v_str), "at");
	cr_assert_str_eq(snap_str(s, SNAP_VALUE(s, l->v_first + 1)->v_str), "de");
	cr_assert_str_eq(snap_str(s, SNAP_VALUE(s, l->v_first + 2)->v_str), "fr");
	cr_assert_eq(SNAP_VALUE(s, l->v_first + 3)->v_num, -1);
	cr_assert_eq(SNAP_VALUE(s, l->v_first + 4)->v_num, 3);
	th_snap_free(s);
}

Test(layout, parsed_operands)
{
	snap *s = th_snap(COND("{'attribute':'v','operator':'semverGreaterThan','value':'1.2.3-rc.1+b7'},"
			       "{'attribute':'t','operator':'before','value':'2026-11-01T00:00:00Z'},"
			       "{'attribute':'e','operator':'matches','value':'^A.*Z$','caseInsensitive':true},"
			       "{'attribute':'n','operator':'greaterThanOrEqual','value':2.5,'negate':true}"),
			  NULL);
	uint32_t first = SNAP_RULE(s, SNAP_FLAG(s, 0)->f_rule_first)->r_cond_first;
	const fs_semver *sv = SNAP_SEMVER(s, SNAP_COND(s, first)->c_aux);
	const fs_regex *rx = SNAP_REGEX(s, SNAP_COND(s, first + 2)->c_aux);

	cr_assert_eq(sv->sv_major, 1);
	cr_assert_eq(sv->sv_patch, 3);
	cr_assert_str_eq(snap_str(s, sv->sv_pre), "rc.1");
	cr_assert_eq(SNAP_COND(s, first + 1)->c_time_ms, 1793491200000LL);
	cr_assert_str_eq(snap_str(s, rx->rx_pattern), "^A.*Z$");
	cr_assert_eq(rx->rx_flags, FS_COND_CASE_INSENSITIVE);
	cr_assert_eq(SNAP_COND(s, first + 3)->c_num, 2.5);
	cr_assert_eq(SNAP_COND(s, first + 3)->c_flags, FS_COND_NEGATE);
	th_snap_free(s);
}

Test(layout, splits_are_cumulative_bands)
{
	snap *s = th_snap(DOC("{'key':'f','defaultValue':'a','offValue':'off','targeting':[{'id':'x',"
			      "'split':[{'value':'a','weight':25.5},{'value':'b','weight':74.5}]}]}"),
			  NULL);
	const fs_rule *r = SNAP_RULE(s, SNAP_FLAG(s, 0)->f_rule_first);

	cr_assert_eq(r->r_variation, FS_NONE);
	cr_assert_eq(r->r_split_count, 2);
	cr_assert_eq(SNAP_SPLIT(s, r->r_split_first)->sp_upper, 25500);
	cr_assert_eq(SNAP_SPLIT(s, r->r_split_first + 1)->sp_weight, 74500);
	cr_assert_eq(SNAP_SPLIT(s, r->r_split_first + 1)->sp_upper, 100000);
	th_snap_free(s);
}

Test(layout, segment_included_sorted_and_strings_interned)
{
	snap *s = th_snap("{'formatVersion':1,'segments':{'beta':{'included':['u-2','u-10','u-1']}},"
			  "'flags':[{'key':'u-1','defaultValue':true,'tags':['u-2']}]}",
			  NULL);
	const fs_segment *g = SNAP_SEGMENT(s, 0);

	cr_assert_eq(g->sg_incl_count, 3);
	cr_assert_eq(g->sg_has_conds, 0);
	cr_assert_str_eq(snap_str(s, *SNAP_STRS(s, g->sg_incl_first)), "u-1");
	cr_assert_str_eq(snap_str(s, *SNAP_STRS(s, g->sg_incl_first + 1)), "u-10");
	cr_assert_str_eq(snap_str(s, *SNAP_STRS(s, g->sg_incl_first + 2)), "u-2");
	/* One copy of "u-1" and of "u-2" in the pool. */
	cr_assert_eq(SNAP_FLAG(s, 0)->f_key.off, SNAP_STRS(s, g->sg_incl_first)->off);
	cr_assert_eq(SNAP_STRS(s, SNAP_FLAG(s, 0)->f_tag_first)->off,
		     SNAP_STRS(s, g->sg_incl_first + 2)->off);
	th_snap_free(s);
}

/* A rule naming a segment again compiles to one reference (the evaluator
 * would only repeat the first's answer at its cost); order is kept. */
Test(layout, a_segment_named_twice_in_a_rule_is_one_reference)
{
	snap *s = th_snap("{'formatVersion':1,'segments':{'s':{'included':['u-1']},"
			  "'t':{'included':['u-2']}},'flags':[{'key':'f','defaultValue':false,"
			  "'targeting':[{'id':'r','variation':true,"
			  "'segments':['t','s','t','t','s']}]}]}",
			  NULL);
	const fs_rule *r = SNAP_RULE(s, SNAP_FLAG(s, 0)->f_rule_first);
	const fs_segment *t = SNAP_SEGMENT(s, *SNAP_U32(s, r->r_seg_first));
	flagshm_ctx ctx;

	cr_assert_eq(r->r_seg_count, 2);
	cr_assert_str_eq(snap_str(s, t->sg_name), "t");
	cr_assert_str_eq(snap_str(s, SNAP_SEGMENT(s, *SNAP_U32(s, r->r_seg_first + 1))->sg_name), "s");
	flagshm_ctx_init(&ctx);
	flagshm_ctx_string(&ctx, "userId", "u-1");
	cr_assert_eq(th_eval(s, "f", &ctx).reason, FLAGSHM_REASON_RULE_MATCH);
	flagshm_ctx_string(&ctx, "userId", "u-3");
	cr_assert_eq(th_eval(s, "f", &ctx).reason, FLAGSHM_REASON_DEFAULT_ROLLOUT);
	th_snap_free(s);
}

/* Each distinct pattern (bytes and caseInsensitive) is one regex table
 * entry, shared by its conditions in rules and segments alike. */
Test(layout, each_distinct_regex_is_emitted_once)
{
	snap *s = th_snap("{'formatVersion':1,'segments':{'g':{'conditions':["
			  "{'attribute':'e','operator':'matches','value':'@acme$'}]}},"
			  "'flags':[{'key':'f','defaultValue':'none','offValue':'off','targeting':["
			  "{'id':'a','variation':'a','conditions':[{'attribute':'e','operator':"
			  "'matches','value':'@acme$'},{'attribute':'k','operator':'matches',"
			  "'value':'@acme$'}]},"
			  "{'id':'b','variation':'b','conditions':[{'attribute':'e','operator':"
			  "'matches','value':'@ACME$','caseInsensitive':true}]},"
			  "{'id':'c','variation':'c','conditions':[{'attribute':'e','operator':"
			  "'matches','value':'@acme$','caseInsensitive':true}]},"
			  "{'id':'d','variation':'d','segments':['g']}]}]}",
			  NULL);
	const fs_segment *g = SNAP_SEGMENT(s, 0);
	const fs_flag *f = SNAP_FLAG(s, 0);
	uint32_t a0 = SNAP_COND(s, SNAP_RULE(s, f->f_rule_first)->r_cond_first)->c_aux;
	uint32_t a1 = SNAP_COND(s, SNAP_RULE(s, f->f_rule_first)->r_cond_first + 1)->c_aux;
	uint32_t b0 = SNAP_COND(s, SNAP_RULE(s, f->f_rule_first + 1)->r_cond_first)->c_aux;
	uint32_t c0 = SNAP_COND(s, SNAP_RULE(s, f->f_rule_first + 2)->r_cond_first)->c_aux;
	flagshm_ctx ctx;

	/* @acme$, @ACME$ caseless, @acme$ caseless: three entries. */
	cr_assert_eq(s->count[FS_T_REGEXES], 3);
	cr_assert_eq(SNAP_COND(s, g->sg_cond_first)->c_aux, a0);
	cr_assert_eq(a1, a0);
	cr_assert_neq(b0, a0);
	cr_assert_neq(c0, a0);
	cr_assert_neq(c0, b0);
	flagshm_ctx_init(&ctx);
	flagshm_ctx_string(&ctx, "e", "bob@ACME");
	cr_assert_str_eq(th_eval(s, "f", &ctx).rule_id, "b");
	flagshm_ctx_string(&ctx, "e", "bob@acme");
	cr_assert_str_eq(th_eval(s, "f", &ctx).rule_id, "b");
	flagshm_ctx_string(&ctx, "k", "x@acme");
	cr_assert_str_eq(th_eval(s, "f", &ctx).rule_id, "a");
	th_snap_free(s);
}

Test(layout, header_and_checksum)
{
	wc_errors errs = {0};
	wc_snapshot out;
	json_t *doc = json_loads("[{\"key\":\"a\",\"defaultValue\":true}]", 0, NULL);
	const fs_snap_hdr *h;

	cr_assert_eq(wc_compile(doc, NULL, "x", NULL, &out, &errs), 0);
	h = (const fs_snap_hdr *)out.bytes;
	cr_assert_eq(h->sh_magic, FS_SNAP_MAGIC);
	cr_assert_eq(h->sh_size, out.size);
	cr_assert_eq(out.size % 8, 0);
	cr_assert_eq(h->sh_generation, 0);
	cr_assert_eq(h->sh_published_ms, 0);
	cr_assert_eq(h->sh_environment.len, 0);
	cr_assert_eq(out.nflags, 1);
	cr_assert_eq(h->sh_checksum, fs_checksum(out.bytes + FS_SNAP_SUMMED_FROM,
						 out.size - FS_SNAP_SUMMED_FROM));
	cr_assert_eq(h->sh_tables[FS_T_INDEX].t_count, 2);
	for (int t = 0; t < FS_T_COUNT_; t++)
		cr_assert_eq(h->sh_tables[t].t_off % 8, 0);
	wc_snapshot_free(&out);
	json_decref(doc);
}

Test(layout, compiled_snapshot_evaluates)
{
	snap *s = th_snap(DOC("{'key':'f','defaultValue':'on','offValue':'off','rolloutPercentage':0,"
			      "'targeting':[{'id':'eu','conditions':[{'attribute':'country','operator':"
			      "'in','value':['DE','FR'],'caseInsensitive':true}],'variation':'eu'}]}"),
			  NULL);
	flagshm_ctx ctx;
	flagshm_result r;

	flagshm_ctx_init(&ctx);
	flagshm_ctx_string(&ctx, "country", "de");
	r = th_eval(s, "f", &ctx);
	cr_assert_eq(r.reason, FLAGSHM_REASON_RULE_MATCH);
	cr_assert_str_eq(r.value.str.ptr, "eu");
	cr_assert_str_eq(r.rule_id, "eu");
	flagshm_ctx_string(&ctx, "country", "US");
	r = th_eval(s, "f", &ctx);
	cr_assert_eq(r.reason, FLAGSHM_REASON_DEFAULT_OFF);
	cr_assert_str_eq(r.value.str.ptr, "off");
	th_snap_free(s);
}

Test(splits, rollout_percentage_is_an_error)
{
	expect_errors(RULE("'rolloutPercentage':50,'split':[{'value':true,'weight':100}]"),
		      "flags.json: flags[0].targeting[0].rolloutPercentage: does not apply to a split "
		      "rule (its weights cover every bucket)");
}
