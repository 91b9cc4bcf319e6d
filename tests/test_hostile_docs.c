/*
 * tests/test_hostile_docs.c - malformed and hostile flag documents. Each
 * case is its own test and proves three things:
 *  1. the writer's loader and compiler reject it with exactly the expected
 *     messages, each naming the file, the JSON path and what is wrong;
 *  2. the real flagshm-writer, given it as --source of a store that already
 *     serves a generation, exits 1, prints those messages and says which
 *     generation still serves, and records the failure in the control
 *     object;
 *  3. that generation keeps serving, unchanged, to a reader.
 * tests/test_compile_errors.c covers the message of each rule once; the
 * cases here are the other shapes, positions and sizes an attacker or a
 * broken generator produces. Big inputs (10 MB strings, 100,000-element
 * lists, 100,000-deep nesting) are generated here.
 *
 * HOSTILE_PRINT=1 prints each case's actual messages as C strings instead of
 * asserting (to review a changed message).
 */
#include "rel_helpers.h"
#include "eval.h"
#include "snap.h"

#include <criterion/logging.h>

static char store[64];
static flagshm_store *reader;
static uint64_t base_gen;

#define BASE_DOC                                                                              \
	"{\"formatVersion\":1,\"flags\":[{\"key\":\"keep\",\"defaultValue\":\"kept\","         \
	"\"offValue\":\"off\"},{\"key\":\"n\",\"defaultValue\":42,\"offValue\":0}]}"

/* Publish the baseline generation and open a reader on it. */
static void setup(void)
{
	shm_writer w;
	wc_snapshot s;
	char err[512];
	rh_name(store, sizeof store, "hdoc");
	rh_compile(BASE_DOC, &s);
	cr_assert_eq(shm_writer_open(&w, store, err, sizeof err), 0, "%s", err);
	cr_assert_eq(shm_writer_publish(&w, s.bytes, s.size, err, sizeof err), 0, "%s", err);
	base_gen = w.generation;
	shm_writer_close(&w);
	wc_snapshot_free(&s);
	cr_assert_eq(flagshm_open(store, &reader), 0);
}

static void teardown(void)
{
	flagshm_close(&reader);
	shm_store_remove(store, NULL, 0);
}

TestSuite(hostile_docs, .init = setup, .fini = teardown, .timeout = 60);

/* The baseline still serves, whole and unchanged. */
static void expect_baseline(void)
{
	flagshm_view v;
	flagshm_result r;
	flagshm_view_acquire(reader, &v);
	cr_expect_eq(v.generation, base_gen, "serving generation %llu after a rejected document",
		     (unsigned long long)v.generation);
	cr_expect_str_eq(flagshm_view_string(&v, "keep", NULL, "(fallback)"), "kept");
	cr_expect_eq(flagshm_evaluate(&v, "n", NULL, &r), 0);
	cr_expect_eq(r.value.num, 42);
	cr_expect_eq(r.reason, FLAGSHM_REASON_DEFAULT_ROLLOUT);
	flagshm_view_release(&v);
	uint64_t gens[4];
	cr_expect_eq(rh_store_objects(store, NULL, gens, 4), 1, "generation objects changed");
}

/* Every message, '\n'-joined (malloc'd); NULL when it compiled. */
static char *errors_of(const char *bytes, size_t len)
{
	wc_errors errs = { 0 };
	wc_snapshot out;
	char *all = NULL;
	if (rh_try_compile(bytes, len, NULL, &out, &errs) == 0) {
		wc_snapshot_free(&out);
	} else {
		size_t n = 1;
		for (size_t i = 0; i < errs.n; i++)
			n += strlen(errs.msg[i]) + 1;
		all = calloc(1, n);
		cr_assert_not_null(all);
		for (size_t i = 0; i < errs.n; i++) {
			if (i)
				strcat(all, "\n");
			strcat(all, errs.msg[i]);
		}
	}
	wc_errors_free(&errs);
	return all;
}

static void print_c_string(const char *name, const char *s)
{
	printf("%s: \"", name);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			printf("\\n\"\n\t\"");
		else if (c < 0x20 || c >= 0x7f)
			printf("\\x%02x\"\"", c);
		else
			putchar(c);
	}
	printf("\"\n");
}

/* The whole check for one document of LEN bytes. WANT is every message,
 * '\n'-joined, with "flags.json" as the file name. */
static void reject(const char *name, const char *bytes, size_t len, const char *want)
{
	char *got = errors_of(bytes, len);
	if (getenv("HOSTILE_PRINT")) {
		print_c_string(name, got ? got : "(compiled)");
		free(got);
		return;
	}
	cr_assert_not_null(got, "the document compiled; expected:\n%s", want);
	cr_assert_str_eq(got, want);

	/* The real writer, on a store that serves the baseline. */
	char *path = rh_temp_file(bytes, len);
	const char *writer = rh_bin("FLAGSHM_WRITER");
	char *argv[] = { (char *)writer, "--store", store, "--source", path, "--once", NULL };
	size_t outcap = 64 * 1024;
	char *out = malloc(outcap);
	cr_assert_not_null(out);
	int rc = rh_run(argv, out, outcap, 60000);
	cr_expect_eq(rc, 1, "flagshm-writer exit %d:\n%s", rc, out);
	char line[256];
	snprintf(line, sizeof line, "rejected %s: ", path);
	cr_expect(strstr(out, line) != NULL, "no '%s' in:\n%s", line, out);
	snprintf(line, sizeof line, "still serving generation %llu", (unsigned long long)base_gen);
	cr_expect(strstr(out, line) != NULL, "no '%s' in:\n%s", line, out);
	/* Each message, with the file's path for its name. */
	size_t nmsg = 0;
	for (char *m = got; m && *m; nmsg++) {
		char *nl = strchr(m, '\n');
		size_t ml = nl ? (size_t)(nl - m) : strlen(m);
		cr_assert(strncmp(m, "flags.json", 10) == 0, "message without the file name: %.*s",
			  (int)ml, m);
		char *exp;
		cr_assert(asprintf(&exp, "%s%.*s\n", path, (int)(ml - 10), m + 10) > 0);
		cr_expect(strstr(out, exp) != NULL, "the writer did not print\n  %sin\n%s", exp, out);
		free(exp);
		m = nl ? nl + 1 : m + ml;
	}
	/* The failure is recorded for `flagshm status`. */
	const fs_ctl *ctl;
	cr_assert_eq(shm_ctl_map(store, &ctl, NULL, 0), 0);
	char recorded[300];
	shm_ctl_text_get(ctl, SHM_TEXT_LAST_ERROR, recorded, sizeof recorded);
	shm_ctl_unmap(ctl);
	snprintf(line, sizeof line, "%zu error%s; first: %s", nmsg, nmsg == 1 ? "" : "s", path);
	cr_expect(strncmp(recorded, line, strlen(line)) == 0, "ctl_last_error is '%s'", recorded);

	expect_baseline();
	unlink(path);
	free(path);
	free(out);
	free(got);
}

/* A document in C-friendly form: ' stands for ". */
static void reject_q(const char *name, const char *doc, const char *want)
{
	char *text = strdup(doc);
	cr_assert_not_null(text);
	for (char *p = text; *p; p++)
		if (*p == '\'')
			*p = '"';
	reject(name, text, strlen(text), want);
	free(text);
}

#define REJECT(name, doc, want)                                                               \
	Test(hostile_docs, name)                                                               \
	{                                                                                      \
		reject_q(#name, doc, want);                                                    \
	}
#define REJECT_RAW(name, bytes, want)                                                         \
	Test(hostile_docs, name)                                                               \
	{                                                                                      \
		reject(#name, bytes, sizeof bytes - 1, want);                                  \
	}

#define DOC(flags) "{'formatVersion':1,'flags':[" flags "]}"
#define FLAG(extra) "{'key':'f','defaultValue':true" extra "}"
#define RULE(body) DOC(FLAG(",'targeting':[{'id':'r'," body "}]"))
#define COND(c) RULE("'variation':true,'conditions':[" c "]")
#define P "flags.json: "

/* ---------------------------------------------------------- the root */

REJECT(root_is_a_string, "'flags'",
       P "$: must be a format-1 object or an array of flags (got string)")
REJECT(root_is_a_number, "42",
       P "$: must be a format-1 object or an array of flags (got number)")
REJECT(root_is_null, "null",
       P "$: must be a format-1 object or an array of flags (got null)")
REJECT(root_is_an_empty_object, "{}",
       P "formatVersion: required field is missing (this format is 1)\n"
       P "flags: required field is missing")
REJECT(format_version_as_a_string, "{'formatVersion':'1','flags':[]}",
       P "formatVersion: must be 1 (the only format this writer reads)")
REJECT(format_version_as_a_real, "{'formatVersion':1.0,'flags':[]}",
       P "formatVersion: must be 1 (the only format this writer reads)")
REJECT(bare_array_of_strings, "['new-checkout','dark-mode']",
       P "[0]: must be an object (got string)\n" P "[1]: must be an object (got string)")

/* ---------------------------------------------------------- wrong types */

REJECT(name_is_a_number, DOC(FLAG(",'name':5")), P "flags[0].name: must be a string (got number)")
REJECT(description_is_an_array, DOC(FLAG(",'description':['x']")),
       P "flags[0].description: must be a string (got array)")
REJECT(owner_is_an_object, DOC(FLAG(",'owner':{}")),
       P "flags[0].owner: must be a string (got object)")
REJECT(updated_at_is_a_number, DOC(FLAG(",'updatedAt':1700000000")),
       P "flags[0].updatedAt: must be a string (got number)")
REJECT(expires_at_is_february_30, DOC(FLAG(",'expiresAt':'2027-02-30T00:00:00Z'")),
       P "flags[0].expiresAt: \"2027-02-30T00:00:00Z\" is not an RFC 3339 date-time (like "
	 "2026-11-01T00:00:00Z)")
REJECT(tags_is_a_string, DOC(FLAG(",'tags':'a,b'")),
       P "flags[0].tags: must be an array (got string)")
REJECT(type_in_the_wrong_case, DOC(FLAG(",'type':'Release'")),
       P "flags[0].type: must be one of release, operational, experiment, permission (got "
	 "\"Release\")")
REJECT(type_is_a_number, DOC(FLAG(",'type':1")), P "flags[0].type: must be a string (got number)")
REJECT(bucket_by_is_a_number, DOC(FLAG(",'bucketBy':5")),
       P "flags[0].bucketBy: must be a string (got number)")
REJECT(salt_is_empty, DOC(FLAG(",'salt':''")), P "flags[0].salt: must not be empty")
REJECT(version_is_a_string, DOC(FLAG(",'version':'7'")),
       P "flags[0].version: must be an integer (got string)")
REJECT(enabled_is_null, DOC(FLAG(",'enabled':null")),
       P "flags[0].enabled: must be a boolean (got null)")
REJECT(string_flag_with_a_number_off_value,
       DOC("{'key':'f','defaultValue':'a','offValue':0}"),
       P "flags[0].offValue: must be a string, like defaultValue (got number)")
REJECT(json_flag_with_a_string_off_value,
       DOC("{'key':'f','defaultValue':{'a':1},'offValue':'{}'}"),
       P "flags[0].offValue: must be a JSON object or array, like defaultValue (got string)")

/* ---------------------------------------------------------- flag keys */

REJECT(key_tries_a_path, DOC("{'key':'../x','defaultValue':true}"),
       P "flags[0].key: invalid character '/' in \"../x\" (allowed: A-Z a-z 0-9 . _ -)")
REJECT(key_is_not_ascii, DOC("{'key':'caf\xc3\xa9','defaultValue':true}"),
       P "flags[0].key: invalid character 0xc3 in \"caf\xc3\xa9\" (allowed: A-Z a-z 0-9 . _ -)")
REJECT(key_with_a_control_character, DOC("{'key':'a\\u0001b','defaultValue':true}"),
       P "flags[0].key: invalid character 0x01 in \"a\\x01b\" (allowed: A-Z a-z 0-9 . _ -)")
REJECT(key_with_a_nul_escape, DOC("{'key':'a\\u0000b','defaultValue':true}"),
       "flags.json:1:45: \\u0000 is not allowed without JSON_ALLOW_NUL near '\"a\\u0000b\"'")
REJECT(key_with_a_lone_surrogate, DOC("{'key':'\\ud800','defaultValue':true}"),
       "flags.json:1:43: invalid Unicode '\\uD800' near '\"\\ud800\"'")
REJECT(duplicate_key_three_times,
       DOC("{'key':'f','defaultValue':true},{'key':'f','defaultValue':true},"
	   "{'key':'f','defaultValue':false}"),
       P "flags[1].key: duplicate key \"f\" (also flags[0])\n"
       P "flags[2].key: duplicate key \"f\" (also flags[0])")

/* --------------------------------------------------------- percentages */

REJECT(rollout_is_a_boolean, DOC(FLAG(",'rolloutPercentage':true")),
       P "flags[0].rolloutPercentage: must be a number (got boolean)")
REJECT(rollout_is_null, DOC(FLAG(",'rolloutPercentage':null")),
       P "flags[0].rolloutPercentage: must be a number (got null)")
REJECT(rollout_below_a_thousandth, DOC(FLAG(",'rolloutPercentage':0.0001")),
       P "flags[0].rolloutPercentage: must have at most 3 decimals (got 0.0001)")
REJECT(rollout_just_above_100, DOC(FLAG(",'rolloutPercentage':100.001")),
       P "flags[0].rolloutPercentage: must be between 0 and 100 (got 100.001)")
REJECT(rollout_1e308, DOC(FLAG(",'rolloutPercentage':1e308")),
       P "flags[0].rolloutPercentage: must be between 0 and 100 (got 1e+308)")

/* ------------------------------------------------------- rules, splits */

REJECT(rule_is_a_number, DOC(FLAG(",'targeting':[1]")),
       P "flags[0].targeting[0]: must be an object (got number)")
REJECT(rule_id_is_empty, DOC(FLAG(",'targeting':[{'id':'','variation':true}]")),
       P "flags[0].targeting[0].id: must not be empty")
REJECT(rule_id_is_a_number, DOC(FLAG(",'targeting':[{'id':1,'variation':true}]")),
       P "flags[0].targeting[0].id: must be a string (got number)")
REJECT(split_weight_negative,
       RULE("'split':[{'value':true,'weight':-10},{'value':false,'weight':110}]"),
       P "flags[0].targeting[0].split[0].weight: must be between 0 and 100 (got -10)\n"
       P "flags[0].targeting[0].split[1].weight: must be between 0 and 100 (got 110)")
REJECT(split_thirds_sum_to_99_999,
       RULE("'split':[{'value':true,'weight':33.333},{'value':false,'weight':33.333},"
	    "{'value':true,'weight':33.333}]"),
       P "flags[0].targeting[0].split: weights sum to 99.999, not 100")
REJECT(split_over_100, RULE("'split':[{'value':true,'weight':60},{'value':false,'weight':60}]"),
       P "flags[0].targeting[0].split: weights sum to 120, not 100")
REJECT(split_band_is_a_number, RULE("'split':[100]"),
       P "flags[0].targeting[0].split[0]: must be an object with value and weight (got number)")
REJECT(split_band_with_an_unknown_field,
       RULE("'split':[{'value':true,'weight':100,'label':'a'}]"),
       P "flags[0].targeting[0].split[0].label: unknown field")
REJECT(split_value_is_null, RULE("'split':[{'value':null,'weight':100}]"),
       P "flags[0].targeting[0].split[0].value: must be a boolean, number, string, object or "
	 "array (got null)")
REJECT(split_value_missing, RULE("'split':[{'weight':100}]"),
       P "flags[0].targeting[0].split[0].value: required field is missing")
REJECT(split_is_an_object, RULE("'split':{'true':50,'false':50}"),
       P "flags[0].targeting[0].split: must be an array (got object)")
REJECT(rule_segments_without_a_segments_object, RULE("'variation':true,'segments':['beta']"),
       P "flags[0].targeting[0].segments[0]: unknown segment \"beta\"")

/* ---------------------------------------------------------- conditions */

REJECT(conditions_is_an_object, RULE("'variation':true,'conditions':{}"),
       P "flags[0].targeting[0].conditions: must be an array (got object)")
REJECT(condition_is_a_string, COND("'country == DE'"),
       P "flags[0].targeting[0].conditions[0]: must be an object (got string)")
REJECT(operator_is_a_number, COND("{'attribute':'a','operator':1,'value':1}"),
       P "flags[0].targeting[0].conditions[0].operator: must be a string (got number)")
REJECT(operator_in_the_wrong_case, COND("{'attribute':'a','operator':'Equals','value':1}"),
       P "flags[0].targeting[0].conditions[0].operator: unknown operator \"Equals\"")
REJECT(operator_is_sql, COND("{'attribute':'a','operator':'equals; DROP TABLE flags','value':1}"),
       P "flags[0].targeting[0].conditions[0].operator: unknown operator \"equals; DROP TABLE "
	 "flags\"")
REJECT(attribute_is_empty, COND("{'attribute':'','operator':'equals','value':1}"),
       P "flags[0].targeting[0].conditions[0].attribute: must not be empty")
REJECT(attribute_is_a_number, COND("{'attribute':7,'operator':'equals','value':1}"),
       P "flags[0].targeting[0].conditions[0].attribute: must be a string (got number)")
REJECT(equals_null, COND("{'attribute':'a','operator':'equals','value':null}"),
       P "flags[0].targeting[0].conditions[0].value: must be a string, number or boolean for "
	 "equals (got null)")
REJECT(equals_an_object, COND("{'attribute':'a','operator':'notEquals','value':{'a':1}}"),
       P "flags[0].targeting[0].conditions[0].value: must be a string, number or boolean for "
	 "notEquals (got object)")
REJECT(in_a_nested_list, COND("{'attribute':'a','operator':'in','value':[['a']]}"),
       P "flags[0].targeting[0].conditions[0].value[0]: must be a string or a number (got array)")
REJECT(not_in_with_null, COND("{'attribute':'a','operator':'notIn','value':['a',null]}"),
       P "flags[0].targeting[0].conditions[0].value[1]: must be a string or a number (got null)")
REJECT(starts_with_a_number, COND("{'attribute':'a','operator':'startsWith','value':5}"),
       P "flags[0].targeting[0].conditions[0].value: must be a string for startsWith (got "
	 "number)")
REJECT(ends_with_a_boolean, COND("{'attribute':'a','operator':'endsWith','value':true}"),
       P "flags[0].targeting[0].conditions[0].value: must be a string for endsWith (got "
	 "boolean)")
REJECT(greater_than_a_numeric_string, COND("{'attribute':'a','operator':'greaterThanOrEqual','value':'5'}"),
       P "flags[0].targeting[0].conditions[0].value: must be a number for greaterThanOrEqual "
	 "(got string)")
REJECT(less_than_null, COND("{'attribute':'a','operator':'lessThan','value':null}"),
       P "flags[0].targeting[0].conditions[0].value: must be a number for lessThan (got null)")
REJECT(in_list_integer_past_2_53,
       COND("{'attribute':'a','operator':'in','value':[1,9007199254740993]}"),
       P "flags[0].targeting[0].conditions[0].value[1]: integer 9007199254740993 is too large "
	 "to be exact as a double (more than 2^53)")

/* ------------------------------------------------------------- regexes */

REJECT(regex_is_a_number, COND("{'attribute':'a','operator':'matches','value':5}"),
       P "flags[0].targeting[0].conditions[0].value: must be a string for matches (got number)")
REJECT(regex_unclosed_group, COND("{'attribute':'a','operator':'matches','value':'(abc'}"),
       P "flags[0].targeting[0].conditions[0].value: invalid regular expression at offset 4: "
	 "missing closing parenthesis")
REJECT(regex_nothing_to_repeat, COND("{'attribute':'a','operator':'matches','value':'*a'}"),
       P "flags[0].targeting[0].conditions[0].value: invalid regular expression at offset 0: "
	 "quantifier does not follow a repeatable item")
REJECT(regex_range_out_of_order,
       COND("{'attribute':'a','operator':'matches','value':'[z-a]','caseInsensitive':true}"),
       P "flags[0].targeting[0].conditions[0].value: invalid regular expression at offset 3: "
	 "range out of order in character class")
REJECT(regex_missing_backreference, COND("{'attribute':'a','operator':'matches','value':'(a)\\\\2'}"),
       "flags.json: flags[0].targeting[0].conditions[0].value: invalid regular expression at offset 4: reference to non-existent subpattern")
REJECT(regex_code_point_too_large,
       COND("{'attribute':'a','operator':'matches','value':'\\\\x{110000}'}"),
       P "flags[0].targeting[0].conditions[0].value: invalid regular expression at offset 9: "
	 "character code point value in \\x{} or \\o{} is too large")
REJECT(regex_unbounded_lookbehind,
       COND("{'attribute':'a','operator':'matches','value':'(?<=a+)b'}"),
       "flags.json: flags[0].targeting[0].conditions[0].value: invalid regular expression at offset 0: lookbehind assertion is not fixed length")
REJECT(regex_in_a_segment,
       "{'formatVersion':1,'segments':{'s':{'conditions':[{'attribute':'email','operator':"
       "'matches','value':'[a-'}]}},'flags':[]}",
       P "segments.s.conditions[0].value: invalid regular expression at offset 3: missing "
	 "terminating ] for character class")

/* ------------------------------------------------------ semver and dates */

REJECT(semver_with_a_v, COND("{'attribute':'a','operator':'semverEqual','value':'v1.2.3'}"),
       P "flags[0].targeting[0].conditions[0].value: \"v1.2.3\" is not a SemVer 2.0.0 version "
	 "(MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])")
REJECT(semver_two_parts, COND("{'attribute':'a','operator':'semverGreaterThan','value':'1.2'}"),
       P "flags[0].targeting[0].conditions[0].value: \"1.2\" is not a SemVer 2.0.0 version "
	 "(MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])")
REJECT(semver_leading_zero, COND("{'attribute':'a','operator':'semverLessThan','value':'01.2.3'}"),
       P "flags[0].targeting[0].conditions[0].value: \"01.2.3\" is not a SemVer 2.0.0 version "
	 "(MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])")
REJECT(semver_empty_prerelease, COND("{'attribute':'a','operator':'semverEqual','value':'1.2.3-'}"),
       P "flags[0].targeting[0].conditions[0].value: \"1.2.3-\" is not a SemVer 2.0.0 version "
	 "(MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])")
REJECT(semver_component_overflows,
       COND("{'attribute':'a','operator':'semverEqual','value':'99999999999999999999.0.0'}"),
       P "flags[0].targeting[0].conditions[0].value: \"99999999999999999999.0.0\" is not a SemVer "
	 "2.0.0 version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])")
REJECT(semver_as_a_number, COND("{'attribute':'a','operator':'semverEqual','value':1.2}"),
       P "flags[0].targeting[0].conditions[0].value: must be a version string for semverEqual "
	 "(got number)")
REJECT(date_month_13, COND("{'attribute':'a','operator':'before','value':'2026-13-01T00:00:00Z'}"),
       P "flags[0].targeting[0].conditions[0].value: \"2026-13-01T00:00:00Z\" is not an RFC 3339 "
	 "date-time (like 2026-11-01T00:00:00Z)")
REJECT(date_february_30, COND("{'attribute':'a','operator':'after','value':'2026-02-30T00:00:00Z'}"),
       P "flags[0].targeting[0].conditions[0].value: \"2026-02-30T00:00:00Z\" is not an RFC 3339 "
	 "date-time (like 2026-11-01T00:00:00Z)")
REJECT(date_without_a_time, COND("{'attribute':'a','operator':'after','value':'2026-11-01'}"),
       P "flags[0].targeting[0].conditions[0].value: \"2026-11-01\" is not an RFC 3339 "
	 "date-time (like 2026-11-01T00:00:00Z)")
REJECT(date_is_a_boolean, COND("{'attribute':'a','operator':'before','value':true}"),
       P "flags[0].targeting[0].conditions[0].value: must be an RFC 3339 string or Unix seconds "
	 "for before (got boolean)")
REJECT(date_unix_seconds_1e300, COND("{'attribute':'a','operator':'before','value':1e300}"),
       P "flags[0].targeting[0].conditions[0].value: Unix seconds out of range (|ms| must be "
	 "below 2^53)")

/* ------------------------------------------------------- prerequisites */

REJECT(prerequisites_is_an_object, DOC(FLAG(",'prerequisites':{'g':true}")),
       P "flags[0].prerequisites: must be an array (got object)")
REJECT(prerequisite_is_a_key_string,
       DOC(FLAG(",'prerequisites':['g']") ",{'key':'g','defaultValue':true}"),
       P "flags[0].prerequisites[0]: must be an object with key and value (got string)")
REJECT(prerequisite_value_missing,
       DOC(FLAG(",'prerequisites':[{'key':'g'}]") ",{'key':'g','defaultValue':true}"),
       P "flags[0].prerequisites[0].value: required field is missing")
REJECT(prerequisite_unknown_field,
       DOC(FLAG(",'prerequisites':[{'key':'g','value':true,'negate':true}]")
	   ",{'key':'g','defaultValue':true}"),
       P "flags[0].prerequisites[0].negate: unknown field")
REJECT(prerequisite_cycle_of_three,
       DOC("{'key':'a','defaultValue':true,'prerequisites':[{'key':'b','value':true}]},"
	   "{'key':'b','defaultValue':true,'prerequisites':[{'key':'c','value':true}]},"
	   "{'key':'c','defaultValue':true,'prerequisites':[{'key':'a','value':true}]}"),
       P "flags[2].prerequisites[0].key: prerequisite cycle: a -> b -> c -> a")
REJECT(two_prerequisite_cycles,
       DOC("{'key':'a','defaultValue':true,'prerequisites':[{'key':'b','value':true}]},"
	   "{'key':'b','defaultValue':true,'prerequisites':[{'key':'a','value':true}]},"
	   "{'key':'c','defaultValue':true,'prerequisites':[{'key':'d','value':true}]},"
	   "{'key':'d','defaultValue':true,'prerequisites':[{'key':'c','value':true}]}"),
       P "flags[1].prerequisites[0].key: prerequisite cycle: a -> b -> a\n"
       P "flags[3].prerequisites[0].key: prerequisite cycle: c -> d -> c")

/* --------------------------------------------------------- environments */

REJECT(environment_name_tries_a_path, DOC(FLAG(",'environments':{'../prod':{}}")),
       P "flags[0].environments.../prod: invalid character '/' in \"../prod\" (allowed: A-Z a-z "
	 "0-9 . _ -)")
REJECT(environment_rollout_101, DOC(FLAG(",'environments':{'prod':{'rolloutPercentage':101}}")),
       P "flags[0].environments.prod.rolloutPercentage: must be between 0 and 100 (got 101)")
REJECT(environment_duplicate_rule_ids,
       DOC(FLAG(",'environments':{'prod':{'targeting':[{'id':'r','variation':true},"
		"{'id':'r','variation':false}]}}")),
       P "flags[0].environments.prod.targeting[1].id: duplicate rule id \"r\" (also targeting[0])")
REJECT(environment_enabled_string, DOC(FLAG(",'environments':{'prod':{'enabled':'no'}}")),
       P "flags[0].environments.prod.enabled: must be a boolean (got string)")
REJECT(environment_is_an_array, DOC(FLAG(",'environments':[]")),
       P "flags[0].environments: must be an object (got array)")

/* ------------------------------------------------- segments, syntax, files */

REJECT(segment_is_an_array, "{'formatVersion':1,'segments':{'s':[]},'flags':[]}",
       P "segments.s: must be an object (got array)")
REJECT(segment_duplicate_name, "{'formatVersion':1,'segments':{'s':{},'s':{}},'flags':[]}",
       "flags.json:1:41: duplicate object key near '\"s\"'")
REJECT(trailing_comma, DOC("{'key':'a','defaultValue':true},"),
       "flags.json:1:61: unexpected token near ']'")
REJECT(comments, "{'formatVersion':1, // the format\n'flags':[]}",
       "flags.json:1:21: string or '}' expected near '/'")
REJECT(unquoted_keys, "{formatVersion:1,flags:[]}",
       "flags.json:1:14: string or '}' expected near 'formatVersion'")
REJECT(negative_huge_number, DOC("{'key':'f','defaultValue':-1e400,'offValue':0}"),
       "flags.json:1:60: real number overflow near '-1e400'")
REJECT(raw_tab_in_a_string, DOC("{'key':'f','defaultValue':'a\tb','offValue':''}"),
       "flags.json:1:56: control character 0x9 near '\"a'")
REJECT(truncated_inside_a_string, "{'formatVersion':1,'flags':[{'key':'ab",
       "flags.json:1:38: premature end of input near '\"ab'")
REJECT(truncated_inside_an_escape, "{'formatVersion':1,'flags':[{'key':'a\\u00",
       "flags.json:1:41: invalid escape near '\"a\\u00'")
REJECT_RAW(utf16_file, "\xff\xfe{\0\"\0",
       "flags.json: binary data (NUL byte at offset 3), not JSON text")
REJECT_RAW(png_file, "\x89PNG\r\n\x1a\n",
       "flags.json:1:1: invalid UTF-8 (byte 0x89)")
REJECT_RAW(gzip_file, "\x1f\x8b\x08\x00\x00\x00\x00\x00",
       "flags.json: binary data (NUL byte at offset 3), not JSON text")
REJECT_RAW(only_a_byte_order_mark, "\xef\xbb\xbf",
       "flags.json: the file is empty (expected a JSON object or array)")
REJECT_RAW(utf8_surrogate_bytes, "[\"\xed\xa0\x80\"]",
       "flags.json:1:3: invalid UTF-8 (byte 0xed)")
REJECT_RAW(utf8_past_u10ffff, "[\"\xf4\x90\x80\x80\"]",
       "flags.json:1:3: invalid UTF-8 (byte 0xf4)")
REJECT_RAW(utf8_cut_at_the_end, "[\"\xe2\x82",
       "flags.json:1:3: invalid UTF-8 (byte 0xe2)")

/* ------------------------------------------------- generated, big inputs */

/* PREFIX, N copies of UNIT separated by SEP, SUFFIX (malloc'd, *len). */
static char *repeat(const char *prefix, const char *unit, const char *sep, size_t n,
		    const char *suffix, size_t *len)
{
	size_t pl = strlen(prefix), ul = strlen(unit), sl = strlen(sep), xl = strlen(suffix);
	size_t cap = pl + n * (ul + sl) + xl + 1;
	char *d = malloc(cap);
	cr_assert_not_null(d);
	char *o = d;
	memcpy(o, prefix, pl), o += pl;
	for (size_t i = 0; i < n; i++) {
		if (i)
			memcpy(o, sep, sl), o += sl;
		memcpy(o, unit, ul), o += ul;
	}
	memcpy(o, suffix, xl), o += xl;
	*o = '\0';
	*len = (size_t)(o - d);
	return d;
}

#define MB10 (10u << 20)

Test(hostile_docs, string_of_10_mb_in_a_description)
{
	size_t len;
	char *d = repeat("{\"formatVersion\":1,\"flags\":[{\"key\":\"f\",\"defaultValue\":true,"
			 "\"description\":\"", "x", "", MB10, "\"}]}", &len);
	reject("string_of_10_mb_in_a_description", d, len,
	       P "flags[0].description: a string of 10485760 bytes, more than the limit max_string "
		 "(65536)");
	free(d);
}

Test(hostile_docs, string_of_10_mb_as_a_value)
{
	size_t len;
	char *d = repeat("[{\"key\":\"f\",\"offValue\":\"\",\"defaultValue\":\"", "\\u00e9", "",
			 MB10 / 6, "\"}]", &len);
	reject("string_of_10_mb_as_a_value", d, len,
	       P "[0].defaultValue: a string of 3495252 bytes, more than the limit max_string "
		 "(65536)");
	free(d);
}

Test(hostile_docs, key_of_100000_characters)
{
	size_t len;
	char *d = repeat("[{\"defaultValue\":true,\"key\":\"", "k", "", 100000, "\"}]", &len);
	reject("key_of_100000_characters", d, len,
	       P "[0].key: \"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...\" is "
		 "100000 characters long, more than 128");
	free(d);
}

Test(hostile_docs, in_list_of_100001_elements)
{
	size_t len;
	char *d = repeat("{\"formatVersion\":1,\"flags\":[{\"key\":\"f\",\"defaultValue\":true,"
			 "\"targeting\":[{\"id\":\"r\",\"variation\":true,\"conditions\":[{"
			 "\"attribute\":\"a\",\"operator\":\"in\",\"value\":[",
			 "\"abcdefgh\"", ",", 100001, "]}]}]}]}", &len);
	reject("in_list_of_100001_elements", d, len,
	       P "flags[0].targeting[0].conditions[0].value: 100001 elements, more than the limit "
		 "max_list (100000)");
	free(d);
}

Test(hostile_docs, segment_of_100001_ids)
{
	size_t len;
	char *d = repeat("{\"formatVersion\":1,\"segments\":{\"all\":{\"included\":[", "\"u-1\"", ",",
			 100001, "]}},\"flags\":[]}", &len);
	reject("segment_of_100001_ids", d, len,
	       P "segments.all.included: 100001 ids, more than the limit max_list (100000)");
	free(d);
}

Test(hostile_docs, json_value_nested_100000_deep)
{
	/* [{"key":"f","offValue":{},"defaultValue":{"a":{"a":...1}...}}] */
	size_t n = 100000, len;
	char *open = repeat("[{\"key\":\"f\",\"offValue\":{},\"defaultValue\":", "{\"a\":", "", n,
			    "", &len);
	char *d = malloc(len + n + 8);
	cr_assert_not_null(d);
	memcpy(d, open, len);
	d[len] = '1';
	memset(d + len + 1, '}', n);
	memcpy(d + len + 1 + n, "}]", 3);
	reject("json_value_nested_100000_deep", d, len + 1 + n + 2,
	       "flags.json:1:10272: maximum parsing depth reached near '{'");
	free(open);
	free(d);
}

Test(hostile_docs, nesting_100000_deep_arrays)
{
	size_t n = 100000;
	char *d = malloc(2 * n);
	cr_assert_not_null(d);
	memset(d, '[', n);
	memset(d + n, ']', n);
	reject("nesting_100000_deep_arrays", d, 2 * n,
	       "flags.json:1:2049: maximum parsing depth reached near '['");
	free(d);
}

/* ------------------------------- hostile but valid: bounded evaluation */

/* Publish TEXT to the fixture's store as the next generation. */
static void publish_text(const char *text)
{
	shm_writer w;
	wc_snapshot s;
	char err[512];
	rh_compile(text, &s);
	cr_assert_eq(shm_writer_open(&w, store, err, sizeof err), 0, "%s", err);
	cr_assert_eq(shm_writer_publish(&w, s.bytes, s.size, err, sizeof err), 0, "%s", err);
	shm_writer_close(&w);
	wc_snapshot_free(&s);
}

/*
 * (a+)+$ is valid PCRE2 and compiles; against "aaaa...!" a backtracking
 * matcher takes exponential time. The reader's match limit (docs/semantics.md:
 * 100000, depth 1000) makes it give up: "no match", so the flag falls
 * through to its default, within a bound.
 */
Test(hostile_docs, catastrophic_regex_is_bounded, .timeout = 60)
{
	publish_text("{\"formatVersion\":1,\"flags\":[{\"key\":\"re\",\"defaultValue\":\"default\","
		     "\"offValue\":\"off\",\"targeting\":[{\"id\":\"evil\",\"variation\":\"matched\","
		     "\"conditions\":[{\"attribute\":\"a\",\"operator\":\"matches\","
		     "\"value\":\"(a+)+$\"}]},{\"id\":\"evil2\",\"variation\":\"matched2\","
		     "\"conditions\":[{\"attribute\":\"a\",\"operator\":\"matches\","
		     "\"value\":\"^(\\\\w+\\\\s?)*$\"}]}]}]}");
	static const size_t lens[] = { 30, 1000, 65536 };
	for (size_t k = 0; k < sizeof lens / sizeof *lens; k++) {
		size_t n = lens[k];
		char *s = malloc(n + 2);
		cr_assert_not_null(s);
		memset(s, 'a', n);
		s[n] = '!';
		s[n + 1] = '\0';
		flagshm_ctx ctx;
		flagshm_ctx_init(&ctx);
		flagshm_ctx_string(&ctx, "a", s);
		flagshm_view v;
		flagshm_result r;
		flagshm_view_acquire(reader, &v);
		int64_t t0 = rh_cpu_us();
		int rc = flagshm_evaluate(&v, "re", &ctx, &r);
		int64_t us = rh_cpu_us() - t0;
		cr_expect_eq(rc, 0);
		cr_expect_str_eq(r.value.str.ptr, "default", "'%s' for %zu a's", r.value.str.ptr, n);
		cr_expect_eq(r.reason, FLAGSHM_REASON_DEFAULT_ROLLOUT);
		cr_expect_lt(us, 500000, "%lld us for %zu a's", (long long)us, n);
		fprintf(stderr, "FIGURE hostile.catastrophic_regex len=%zu us=%lld\n", n + 1,
			(long long)us);
		flagshm_view_release(&v);
		free(s);
	}
	/* A matching input still matches. */
	flagshm_ctx ctx;
	flagshm_ctx_init(&ctx);
	flagshm_ctx_string(&ctx, "a", "aaaa");
	char buf[32];
	cr_expect_str_eq(flagshm_string(reader, "re", &ctx, "x", buf, sizeof buf), "matched");
}

/* The largest list the limits allow compiles, and a lookup in it is a
 * binary search: fast for a hit, a miss and a miss past the end. */
Test(hostile_docs, in_list_of_100000_elements_is_fast, .timeout = 60)
{
	size_t n = 100000, cap = n * 16 + 512, o = 0;
	char *d = malloc(cap);
	cr_assert_not_null(d);
	o += (size_t)snprintf(d + o, cap - o,
			      "{\"formatVersion\":1,\"flags\":[{\"key\":\"f\",\"defaultValue\":false,"
			      "\"targeting\":[{\"id\":\"r\",\"variation\":true,\"conditions\":[{"
			      "\"attribute\":\"userId\",\"operator\":\"in\",\"value\":[");
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(d + o, cap - o, "%s\"u-%zu\"", i ? "," : "", i * 7);
	snprintf(d + o, cap - o, "]}]}]}]}");
	publish_text(d);
	free(d);
	static const char *const ids[] = { "u-0", "u-699993", "u-8", "u-~", "" };
	static const bool want[] = { true, true, false, false, false };
	for (int k = 0; k < 5; k++) {
		flagshm_ctx ctx;
		flagshm_ctx_init(&ctx);
		flagshm_ctx_string(&ctx, "userId", ids[k]);
		int64_t t0 = rh_cpu_us();
		bool b = false;
		for (int i = 0; i < 1000; i++)
			b = flagshm_bool(reader, "f", &ctx, !want[k]);
		int64_t us = rh_cpu_us() - t0;
		cr_expect_eq(b, want[k], "userId '%s'", ids[k]);
		cr_expect_lt(us, 200000, "1000 lookups of '%s' took %lld us of CPU", ids[k], (long long)us);
	}
}

/*
 * Prerequisites may share flags (a DAG, not a tree): a_i and b_i both need
 * a_{i+1} and b_{i+1}. LEVELS of such diamonds are only LEVELS links deep,
 * far inside the compiler's 32, but a reader evaluates every path: 2^(k+1)-2
 * prerequisite evaluations for a flag k levels above the bottom, and it
 * stops at 1024 (EVAL_MAX_PREREQ_VISITS), answering PREREQUISITE_FAILED
 * although every prerequisite holds. So the writer must reject what the
 * reader cannot evaluate in full, and evaluate right what it accepts.
 */
static char *diamonds(int levels)
{
	size_t cap = 256 + (size_t)levels * 256, o = 0;
	char *doc = malloc(cap);
	cr_assert_not_null(doc);
	o += (size_t)snprintf(doc + o, cap - o, "{\"formatVersion\":1,\"flags\":[");
	for (int i = 0; i < levels; i++) {
		for (int k = 0; k < 2; k++) {
			o += (size_t)snprintf(doc + o, cap - o, "%s{\"key\":\"%c%d\",\"defaultValue\":true",
					      i || k ? "," : "", "ab"[k], i);
			if (i + 1 < levels)
				o += (size_t)snprintf(doc + o, cap - o,
						      ",\"prerequisites\":[{\"key\":\"a%d\",\"value\":true},"
						      "{\"key\":\"b%d\",\"value\":true}]",
						      i + 1, i + 1);
			o += (size_t)snprintf(doc + o, cap - o, "}");
		}
	}
	snprintf(doc + o, cap - o, "]}");
	return doc;
}

/* Every flag of the published document evaluates to DEFAULT_ROLLOUT. */
static void expect_all_default(const char *fmt, int n)
{
	for (int i = 0; i < n; i++) {
		char key[16];
		snprintf(key, sizeof key, fmt, i);
		flagshm_view v;
		flagshm_result r;
		flagshm_view_acquire(reader, &v);
		int64_t t0 = rh_cpu_us();
		cr_expect_eq(flagshm_evaluate(&v, key, NULL, &r), 0, "%s", key);
		int64_t us = rh_cpu_us() - t0;
		flagshm_view_release(&v);
		cr_expect_lt(us, 100000, "%s took %lld us of CPU", key, (long long)us);
		cr_expect_eq(r.reason, FLAGSHM_REASON_DEFAULT_ROLLOUT,
			     "%s: every prerequisite holds, reason %s", key,
			     flagshm_reason_name(r.reason));
	}
}

Test(hostile_docs, prerequisite_diamonds_9_levels_evaluate_right)
{
	char *doc = diamonds(10); /* a0: 1022 evaluations */
	publish_text(doc);
	free(doc);
	expect_all_default("a%d", 10);
}

Test(hostile_docs, prerequisite_diamonds_past_the_reader_limit)
{
	char *doc = diamonds(12); /* a0, b0: 4094 evaluations; a1, b1: 2046 */
	reject("prerequisite_diamonds_past_the_reader_limit", doc, strlen(doc),
	       P "flags[0].prerequisites: more than 1024 prerequisite evaluations, counting every "
		 "path through shared prerequisites (a reader evaluates at most 1024)\n"
	       P "flags[1].prerequisites: more than 1024 prerequisite evaluations, counting every "
		 "path through shared prerequisites (a reader evaluates at most 1024)\n"
	       P "flags[2].prerequisites: more than 1024 prerequisite evaluations, counting every "
		 "path through shared prerequisites (a reader evaluates at most 1024)\n"
	       P "flags[3].prerequisites: more than 1024 prerequisite evaluations, counting every "
		 "path through shared prerequisites (a reader evaluates at most 1024)");
	free(doc);
}

/* One flag needing N leaf flags: N prerequisite evaluations. */
static char *fan_out(int n)
{
	size_t cap = 256 + (size_t)n * 96, o = 0;
	char *doc = malloc(cap);
	cr_assert_not_null(doc);
	o += (size_t)snprintf(doc + o, cap - o,
			      "{\"formatVersion\":1,\"flags\":[{\"key\":\"top\",\"defaultValue\":true,"
			      "\"prerequisites\":[");
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(doc + o, cap - o, "%s{\"key\":\"l%d\",\"value\":true}",
				      i ? "," : "", i);
	o += (size_t)snprintf(doc + o, cap - o, "]}");
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(doc + o, cap - o, ",{\"key\":\"l%d\",\"defaultValue\":true}", i);
	snprintf(doc + o, cap - o, "]}");
	return doc;
}

Test(hostile_docs, prerequisites_1024_evaluate_right)
{
	char *doc = fan_out(1024);
	publish_text(doc);
	free(doc);
	expect_all_default("top", 1);
}

Test(hostile_docs, prerequisites_1025_rejected)
{
	char *doc = fan_out(1025);
	reject("prerequisites_1025_rejected", doc, strlen(doc),
	       P "flags[0].prerequisites: more than 1024 prerequisite evaluations, counting every "
		 "path through shared prerequisites (a reader evaluates at most 1024)");
	free(doc);
}

/* ------------------------------------------- bounded evaluation cost */

/*
 * A valid document that stalled a reader: segment s has 100 conditions
 * of which the last fails; leaf's only rule names s REFS times; top needs
 * leaf PREREQS times.
 * Before the cost bound, 82 KB of this passed --check and one evaluation of
 * top with {"a":"x"} made 1024 x 12000 x 100 condition evaluations (about
 * 10 s). Now the repeats of s compile to one reference and the writer
 * counts what is left: 1 + 1024 x (1 flag + 1 rule + 16 + 100 x 16).
 */
static char *segment_bomb(int refs, int prereqs)
{
	size_t cap = 8192 + (size_t)refs * 4 + (size_t)prereqs * 32, o = 0;
	char *d = malloc(cap);
	cr_assert_not_null(d);
	o += (size_t)snprintf(d + o, cap - o, "{\"formatVersion\":1,\"segments\":{\"s\":{\"conditions\":[");
	for (int i = 0; i < 100; i++)
		o += (size_t)snprintf(d + o, cap - o,
				      "%s{\"attribute\":\"a\",\"operator\":\"%s\",\"value\":\"y\"}",
				      i ? "," : "", i < 99 ? "notEquals" : "equals");
	o += (size_t)snprintf(d + o, cap - o,
			      "]}},\"flags\":[{\"key\":\"leaf\",\"defaultValue\":true,\"targeting\":"
			      "[{\"id\":\"r\",\"variation\":false,\"segments\":[");
	for (int i = 0; i < refs; i++)
		o += (size_t)snprintf(d + o, cap - o, "%s\"s\"", i ? "," : "");
	o += (size_t)snprintf(d + o, cap - o,
			      "]}]},{\"key\":\"top\",\"defaultValue\":true,\"prerequisites\":[");
	for (int i = 0; i < prereqs; i++)
		o += (size_t)snprintf(d + o, cap - o, "%s{\"key\":\"leaf\",\"value\":true}",
				      i ? "," : "");
	snprintf(d + o, cap - o, "]}]}");
	return d;
}

#define BOMB_MSG                                                                               \
	"flags[1] (\"top\"): worst-case evaluation cost 1656833 exceeds the limit "             \
	"eval-cost=7000 (102400 condition evaluations, 0 of them regex matches; 1024 segment "  \
	"lookups, 1024 rules, 1025 flag evaluations)"

Test(hostile_docs, repeated_segments_times_prerequisites_rejected_with_path_and_cost)
{
	char *doc = segment_bomb(12000, 1024);
	size_t len = strlen(doc);
	cr_assert_gt(len, 80000);
	reject("repeated_segments_times_prerequisites_rejected_with_path_and_cost", doc, len,
	       P BOMB_MSG);

	/* flagshm-writer --check says the same, and exits 1. */
	char *path = rh_temp_file(doc, len);
	const char *writer = rh_bin("FLAGSHM_WRITER");
	char *argv[] = { (char *)writer, "--check", path, NULL };
	char out[4096], want[1024];
	int rc = rh_run(argv, out, sizeof out, 60000);
	cr_expect_eq(rc, 1, "--check exit %d:\n%s", rc, out);
	snprintf(want, sizeof want, "%s: " BOMB_MSG "\n", path);
	cr_expect(strstr(out, want) != NULL, "no\n  %sin\n%s", want, out);
	unlink(path);
	free(path);
	free(doc);
}

/* The repeats alone are no longer a cost: leaf naming s 12000 times is
 * one segment reference, and top needing leaf 4 times costs 6473. */
Test(hostile_docs, repeated_segment_references_compile_to_one_and_evaluate_right)
{
	char *doc = segment_bomb(12000, 4);
	publish_text(doc);
	free(doc);
	flagshm_ctx ctx;
	flagshm_ctx_init(&ctx);
	flagshm_ctx_string(&ctx, "a", "x");
	flagshm_view v;
	flagshm_result r;
	flagshm_view_acquire(reader, &v);
	cr_expect_eq(flagshm_evaluate(&v, "top", &ctx, &r), 0);
	cr_expect_eq(r.reason, FLAGSHM_REASON_DEFAULT_ROLLOUT);
	cr_expect_eq(flagshm_evaluate(&v, "leaf", &ctx, &r), 0);
	cr_expect_eq(r.reason, FLAGSHM_REASON_DEFAULT_ROLLOUT);
	flagshm_view_release(&v);
}

/* Flag f: RULES rules of one condition and LEAVES prerequisites on
 * leaf flags: cost 1 + RULES x 17 + LEAVES. */
static char *costed(int rules, int leaves)
{
	size_t cap = 4096 + (size_t)rules * 128 + (size_t)leaves * 96, o = 0;
	char *d = malloc(cap);
	cr_assert_not_null(d);
	o += (size_t)snprintf(d + o, cap - o,
			      "{\"formatVersion\":1,\"flags\":[{\"key\":\"f\",\"defaultValue\":true,"
			      "\"targeting\":[");
	for (int i = 0; i < rules; i++)
		o += (size_t)snprintf(d + o, cap - o,
				      "%s{\"id\":\"r%d\",\"variation\":false,\"conditions\":[{"
				      "\"attribute\":\"a\",\"operator\":\"equals\",\"value\":\"x\"}]}",
				      i ? "," : "", i);
	o += (size_t)snprintf(d + o, cap - o, "],\"prerequisites\":[");
	for (int i = 0; i < leaves; i++)
		o += (size_t)snprintf(d + o, cap - o, "%s{\"key\":\"l%d\",\"value\":true}",
				      i ? "," : "", i);
	o += (size_t)snprintf(d + o, cap - o, "]}");
	for (int i = 0; i < leaves; i++)
		o += (size_t)snprintf(d + o, cap - o, ",{\"key\":\"l%d\",\"defaultValue\":true}", i);
	snprintf(d + o, cap - o, "]}");
	return d;
}

Test(hostile_docs, eval_cost_at_the_default_limit_is_accepted_and_evaluates)
{
	char *doc = costed(411, 12); /* 1 + 6987 + 12 = 7000 */
	publish_text(doc);
	free(doc);
	flagshm_ctx ctx;
	flagshm_ctx_init(&ctx);
	flagshm_ctx_string(&ctx, "a", "y");
	flagshm_view v;
	flagshm_result r;
	flagshm_view_acquire(reader, &v);
	cr_expect_eq(flagshm_evaluate(&v, "f", &ctx, &r), 0);
	cr_expect_eq(r.reason, FLAGSHM_REASON_DEFAULT_ROLLOUT);
	flagshm_ctx_string(&ctx, "a", "x");
	cr_expect_eq(flagshm_evaluate(&v, "f", &ctx, &r), 0);
	cr_expect_eq(r.reason, FLAGSHM_REASON_RULE_MATCH);
	cr_expect_str_eq(r.rule_id, "r0");
	flagshm_view_release(&v);
}

Test(hostile_docs, eval_cost_one_past_the_default_limit_rejected)
{
	char *doc = costed(411, 13);
	reject("eval_cost_one_past_the_default_limit_rejected", doc, strlen(doc),
	       P "flags[0] (\"f\"): worst-case evaluation cost 7001 exceeds the limit eval-cost=7000 "
		 "(411 condition evaluations, 0 of them regex matches; 0 segment lookups, 411 rules, "
		 "14 flag evaluations)");
	free(doc);
}
