/*
 * tests/test_proto.c - the JSON and protobuf forms of a document carry the
 * same information (writer/sync/proto_conv.h): JSON -> protobuf -> JSON is
 * equal, protobuf -> JSON -> protobuf is byte-identical, and what cannot be
 * carried or decoded is refused with its path.
 */
#include <criterion/criterion.h>

#include "flagshm.h"
#include "flagshm.pb-c.h"
#include "proto_conv.h"

#include <stdlib.h>
#include <string.h>

/* Every field of the format, each list that may be given empty, every
 * value type, and numbers both integral and fractional. */
static const char full_doc[] =
	"{"
	" \"formatVersion\": 1, \"epoch\": \"2026-11-20#3\","
	" \"segments\": {"
	"  \"internal\": {\"conditions\": [{\"attribute\": \"email\", \"operator\": \"endsWith\","
	"                 \"value\": \"@acme.com\", \"caseInsensitive\": true}]},"
	"  \"beta\": {\"included\": [\"u-1\", \"u-2\"], \"conditions\": [{\"attribute\": \"tier\","
	"             \"operator\": \"in\", \"value\": [\"beta\", \"premium\", 3]}]},"
	"  \"everyone\": {\"conditions\": []},"
	"  \"listed\": {\"included\": [\"u-9\"]}"
	" },"
	" \"flags\": ["
	"  {\"key\": \"new-checkout\", \"name\": \"New checkout\", \"description\": \"d\\u00e9j\\u00e0\","
	"   \"type\": \"release\", \"enabled\": true, \"defaultValue\": true, \"offValue\": false,"
	"   \"rolloutPercentage\": 12.345, \"bucketBy\": \"deviceId\", \"salt\": \"nc\","
	"   \"targeting\": ["
	"    {\"id\": \"staff\", \"priority\": -1, \"segments\": [\"internal\"], \"variation\": true,"
	"     \"conditions\": []},"
	"    {\"id\": \"eu\", \"priority\": 2, \"conditions\": [{\"attribute\": \"country\","
	"     \"operator\": \"in\", \"value\": [\"DE\", \"FR\"], \"negate\": false}],"
	"     \"segments\": [\"beta\"], \"rolloutPercentage\": 50, \"variation\": true},"
	"    {\"id\": \"old\", \"conditions\": [{\"attribute\": \"signup\", \"operator\": \"before\","
	"     \"value\": 1700000000.5, \"negate\": true}], \"variation\": false}"
	"   ],"
	"   \"prerequisites\": [{\"key\": \"payments-v2\", \"value\": true}],"
	"   \"environments\": {\"staging\": {\"rolloutPercentage\": 100, \"enabled\": true},"
	"                      \"prod\": {\"targeting\": [], \"offValue\": false, \"defaultValue\": true}},"
	"   \"createdAt\": \"2026-11-01T00:00:00Z\", \"updatedAt\": \"2026-11-20T00:00:00Z\","
	"   \"version\": 7, \"owner\": \"checkout-team\", \"expiresAt\": \"2027-02-01T00:00:00Z\","
	"   \"tags\": [\"checkout\", \"q4\"]},"
	"  {\"key\": \"payments-v2\", \"defaultValue\": true},"
	"  {\"key\": \"color\", \"type\": \"experiment\", \"defaultValue\": \"blue\", \"offValue\": \"grey\","
	"   \"targeting\": [{\"id\": \"ab\", \"split\": [{\"value\": \"blue\", \"weight\": 33.333},"
	"    {\"value\": \"green\", \"weight\": 66.667}]}]},"
	"  {\"key\": \"limits\", \"defaultValue\": {\"max\": 10, \"tiers\": [\"a\", {\"b\": null}]},"
	"   \"offValue\": [], \"targeting\": [{\"id\": \"v\", \"conditions\": [{\"attribute\": \"app\","
	"    \"operator\": \"semverGreaterThan\", \"value\": \"2.0.0-rc.1\"}], \"variation\": {\"max\": 99}}]},"
	"  {\"key\": \"ratio\", \"defaultValue\": 0.25, \"offValue\": -3, \"rolloutPercentage\": 0}"
	" ]"
	"}";

static json_t *load(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
	cr_assert_not_null(j, "bad test JSON: %s at %d:%d", e.text, e.line, e.column);
	return j;
}

static char *dump(const json_t *j)
{
	return json_dumps(j, JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

static void assert_round_trip(const char *text)
{
	json_t *in = load(text), *out = NULL, *out2 = NULL;
	uint8_t *pb = NULL, *pb2 = NULL;
	size_t n = 0, n2 = 0;
	char err[256] = "";

	cr_assert_eq(ws_proto_encode(in, &pb, &n, err, sizeof err), 0, "encode: %s", err);
	cr_assert_eq(ws_proto_decode(pb, n, NULL, &out, err, sizeof err), 0, "decode: %s", err);
	if (!json_equal(in, out)) {
		char *a = dump(in), *b = dump(out);
		cr_assert_fail("JSON -> protobuf -> JSON differs:\n in: %s\nout: %s", a, b);
	}
	/* And the other way: protobuf -> JSON -> protobuf, byte for byte. */
	cr_assert_eq(ws_proto_encode(out, &pb2, &n2, err, sizeof err), 0, "re-encode: %s", err);
	cr_assert_eq(n2, n, "sizes %zu and %zu", n, n2);
	cr_assert_eq(memcmp(pb, pb2, n), 0, "protobuf bytes differ");
	cr_assert_eq(ws_proto_decode(pb2, n2, NULL, &out2, err, sizeof err), 0);
	cr_assert(json_equal(out, out2));
	free(pb);
	free(pb2);
	json_decref(in);
	json_decref(out);
	json_decref(out2);
}

Test(proto, full_document_round_trips_json_protobuf_json)
{
	assert_round_trip(full_doc);
}

Test(proto, bare_array_of_flags_round_trips_as_a_bare_array)
{
	assert_round_trip("[{\"key\": \"a\", \"defaultValue\": false}, {\"key\": \"b\", \"defaultValue\": 3}]");
	assert_round_trip("[]");
}

Test(proto, integer_epoch_and_minimal_document_round_trip)
{
	assert_round_trip("{\"formatVersion\": 1, \"epoch\": 42, \"flags\": []}");
	assert_round_trip("{\"formatVersion\": 1, \"flags\": [{\"key\": \"k\", \"defaultValue\": \"\"}]}");
}

Test(proto, numbers_keep_their_value_exactly)
{
	json_t *in = load("{\"formatVersion\": 1, \"flags\": [{\"key\": \"n\", \"defaultValue\": 0.1,"
			  " \"offValue\": 1e300, \"rolloutPercentage\": 99.999, \"version\": 9007199254740993}]}");
	json_t *out = NULL, *f;
	uint8_t *pb;
	size_t n;
	char err[256];

	cr_assert_eq(ws_proto_encode(in, &pb, &n, err, sizeof err), 0, "%s", err);
	cr_assert_eq(ws_proto_decode(pb, n, NULL, &out, err, sizeof err), 0, "%s", err);
	f = json_array_get(json_object_get(out, "flags"), 0);
	cr_assert_eq(json_real_value(json_object_get(f, "defaultValue")), 0.1);
	cr_assert_eq(json_real_value(json_object_get(f, "offValue")), 1e300);
	cr_assert_eq(json_real_value(json_object_get(f, "rolloutPercentage")), 99.999);
	/* version is an int64 field: exact past 2^53 */
	cr_assert_eq(json_integer_value(json_object_get(f, "version")), 9007199254740993LL);
	free(pb);
	json_decref(in);
	json_decref(out);
}

Test(proto, a_control_plane_built_message_decodes_to_the_json_form)
{
	/* What a control plane in another language would build from the .proto. */
	Flagshm__V1__Value dv = FLAGSHM__V1__VALUE__INIT, off = FLAGSHM__V1__VALUE__INIT;
	Flagshm__V1__Flag flag = FLAGSHM__V1__FLAG__INIT, *flags[1] = {&flag};
	Flagshm__V1__Document doc = FLAGSHM__V1__DOCUMENT__INIT;
	uint8_t buf[256];
	size_t n;
	json_t *out, *want;
	char err[256];

	dv.kind_case = FLAGSHM__V1__VALUE__KIND_STRING_VALUE;
	dv.string_value = "on";
	off.kind_case = FLAGSHM__V1__VALUE__KIND_JSON_VALUE;
	off.json_value = "{\"a\":[1,2]}";
	flag.key = "k";
	flag.default_value = &dv;
	flag.off_value = &off;
	flag.has_rollout_percentage = 1;
	flag.rollout_percentage = 25;
	doc.has_format_version = 1;
	doc.format_version = 1;
	doc.n_flags = 1;
	doc.flags = flags;
	n = flagshm__v1__document__pack(&doc, buf);
	cr_assert(n < sizeof buf);

	cr_assert_eq(ws_proto_decode(buf, n, NULL, &out, err, sizeof err), 0, "%s", err);
	want = load("{\"formatVersion\": 1, \"flags\": [{\"key\": \"k\", \"defaultValue\": \"on\","
		    " \"offValue\": {\"a\": [1, 2]}, \"rolloutPercentage\": 25}]}");
	cr_assert(json_equal(out, want), "got %s", dump(out));
	json_decref(out);
	json_decref(want);
}

static void assert_encode_error(const char *text, int want_rc, const char *want_err)
{
	json_t *in = load(text);
	uint8_t *pb = (uint8_t *)"x";
	size_t n = 1;
	char err[256] = "";

	cr_assert_eq(ws_proto_encode(in, &pb, &n, err, sizeof err), want_rc, "for %s: %s", text, err);
	cr_assert_str_eq(err, want_err);
	cr_assert_null(pb);
	cr_assert_eq(n, 0);
	json_decref(in);
}

Test(proto, encode_refuses_what_protobuf_cannot_carry_with_its_path)
{
	assert_encode_error("{\"formatVersion\": 1, \"flags\": [{\"key\": \"a\", \"colour\": 1}]}",
			    FLAGSHM_EINVAL, "flags[0].colour: unknown field");
	assert_encode_error("{\"formatVersion\": 1, \"flags\": [{\"key\": \"a\", \"rolloutPercentage\": \"10\"}]}",
			    FLAGSHM_EINVAL, "flags[0].rolloutPercentage: expected a number");
	assert_encode_error("{\"formatVersion\": 1, \"segments\": {\"s\": {\"included\": [\"a\", 5]}}, \"flags\": []}",
			    FLAGSHM_EINVAL, "segments.s.included[1]: expected a string");
	assert_encode_error("{\"formatVersion\": 1.5, \"flags\": []}", FLAGSHM_EINVAL,
			    "formatVersion: expected an integer");
	assert_encode_error("{\"formatVersion\": 1, \"flags\": [{\"key\": null}]}", FLAGSHM_EINVAL,
			    "flags[0].key: null is not a value here (leave the field out)");
	assert_encode_error("{\"formatVersion\": 1, \"flags\": {}}", FLAGSHM_EINVAL,
			    "flags: expected an array");
	assert_encode_error("{\"formatVersion\": 1, \"flags\": [{\"key\": \"a\", \"targeting\": [{\"conditions\": {}}]}]}",
			    FLAGSHM_EINVAL, "flags[0].targeting[0].conditions: expected an array");
	assert_encode_error("\"text\"", FLAGSHM_EINVAL,
			    "a document is a JSON object or an array of flags");
}

Test(proto, encode_refuses_a_string_with_nul)
{
	json_t *doc = json_pack("{s:i, s:[{s:s#}]}", "formatVersion", 1, "flags", "key", "a\0b", (size_t)3);
	uint8_t *pb;
	size_t n;
	char err[256];

	cr_assert_not_null(doc);
	cr_assert_eq(ws_proto_encode(doc, &pb, &n, err, sizeof err), FLAGSHM_EINVAL);
	cr_assert_str_eq(err, "flags[0].key: a string with a NUL byte");
	json_decref(doc);
}

static void assert_decode_error(const uint8_t *buf, size_t n, const char *want_prefix)
{
	json_t *out = (json_t *)1;
	char err[256] = "";

	cr_assert_eq(ws_proto_decode(buf, n, NULL, &out, err, sizeof err), FLAGSHM_EINVAL);
	cr_assert_null(out);
	cr_assert(strncmp(err, want_prefix, strlen(want_prefix)) == 0, "got \"%s\"", err);
}

Test(proto, decode_refuses_bad_wire_format_and_bad_contents)
{
	Flagshm__V1__Value v = FLAGSHM__V1__VALUE__INIT;
	Flagshm__V1__Flag flag = FLAGSHM__V1__FLAG__INIT, *flags[1] = {&flag};
	Flagshm__V1__Document doc = FLAGSHM__V1__DOCUMENT__INIT;
	uint8_t buf[256];
	size_t n;

	assert_decode_error((const uint8_t *)"\xff\xff\xff", 3, "not a flagshm.v1.Document");
	assert_decode_error((const uint8_t *)"\x22\x05\x0a\x03", 4, "not a flagshm.v1.Document");

	doc.n_flags = 1;
	doc.flags = flags;
	flag.key = "k";
	flag.default_value = &v; /* a Value with no kind */
	n = flagshm__v1__document__pack(&doc, buf);
	assert_decode_error(buf, n, "flags[0].defaultValue: a value with no kind");

	v.kind_case = FLAGSHM__V1__VALUE__KIND_JSON_VALUE;
	v.json_value = "{\"a\":";
	n = flagshm__v1__document__pack(&doc, buf);
	assert_decode_error(buf, n, "flags[0].defaultValue: json_value is not JSON");

	v.kind_case = FLAGSHM__V1__VALUE__KIND_BOOL_VALUE;
	flag.key = "bad\xff";
	n = flagshm__v1__document__pack(&doc, buf);
	assert_decode_error(buf, n, "flags[0].key: a string that is not UTF-8");
}

Test(proto, decode_refuses_duplicate_map_keys)
{
	Flagshm__V1__Segment s = FLAGSHM__V1__SEGMENT__INIT;
	Flagshm__V1__Document__SegmentsEntry e1 = FLAGSHM__V1__DOCUMENT__SEGMENTS_ENTRY__INIT;
	Flagshm__V1__Document__SegmentsEntry e2 = FLAGSHM__V1__DOCUMENT__SEGMENTS_ENTRY__INIT;
	Flagshm__V1__Document__SegmentsEntry *es[2] = {&e1, &e2};
	Flagshm__V1__Document doc = FLAGSHM__V1__DOCUMENT__INIT;
	uint8_t buf[256];
	size_t n;

	e1.key = e2.key = "dup";
	e1.value = e2.value = &s;
	doc.has_format_version = 1;
	doc.format_version = 1;
	doc.n_segments = 2;
	doc.segments = es;
	n = flagshm__v1__document__pack(&doc, buf);
	assert_decode_error(buf, n, "segments.dup: duplicate key");
}

Test(proto, empty_input_is_an_empty_bare_document)
{
	json_t *out = NULL;
	char err[64];

	cr_assert_eq(ws_proto_decode((const uint8_t *)"", 0, NULL, &out, err, sizeof err), 0);
	cr_assert(json_is_array(out) && json_array_size(out) == 0);
	json_decref(out);
}

/* -------------------------------------------- memory while decoding */

#include <sys/resource.h>

/* This process's peak RSS so far, in MiB. */
static long peak_mib(void)
{
	struct rusage ru;
	cr_assert_eq(getrusage(RUSAGE_SELF, &ru), 0);
	return ru.ru_maxrss / 1024;
}

/* N copies of the 2-byte field PAIR, after PREFIX bytes. */
static uint8_t *repeat2(const uint8_t *prefix, size_t plen, const char pair[2], size_t n,
			size_t *len)
{
	uint8_t *b = malloc(plen + 2 * n);
	cr_assert_not_null(b);
	if (plen)
		memcpy(b, prefix, plen);
	for (size_t i = 0; i < n; i++)
		memcpy(b + plen + 2 * i, pair, 2);
	*len = plen + 2 * n;
	return b;
}

/* Before: 8 MB of empty `flags` entries grew the writer to 1.9 GB before
 * max_flags applied. Now they are counted on the wire first. */
Test(proto, an_8mb_body_of_empty_flags_is_refused_before_unpacking)
{
	wc_limits lim = wc_limits_default();
	size_t n;
	uint8_t *body = repeat2(NULL, 0, "\x22\x00", 4u << 20, &n);
	json_t *out = NULL;
	char err[512] = "";
	long before = peak_mib();

	cr_assert_eq(ws_proto_decode(body, n, &lim, &out, err, sizeof err), FLAGSHM_EINVAL);
	cr_assert_str_eq(err, "flags: more than the limit max_flags (100000): flags[100000] starts "
			      "at byte 200000 of the flagshm.v1.Document; refused before unpacking");
	cr_assert_null(out);
	long grew = peak_mib() - before;
	fprintf(stderr, "FIGURE proto.empty_flags_8mb peak RSS grew %ld MiB\n", grew);
	cr_assert_lt(grew, 16, "decoding grew the peak RSS by %ld MiB", grew);
	free(body);
}

Test(proto, too_many_segments_are_refused_before_unpacking)
{
	wc_limits lim = wc_limits_default();
	json_t *out = NULL;
	char err[512] = "";

	lim.max_segments = 2;
	cr_assert_eq(ws_proto_decode((const uint8_t *)"\x1a\x00\x1a\x00\x1a\x00", 6, &lim, &out, err,
				     sizeof err),
		     FLAGSHM_EINVAL);
	cr_assert_str_eq(err, "segments: more than the limit max_segments (2): segments[2] starts "
			      "at byte 4 of the flagshm.v1.Document; refused before unpacking");
}

/* Within every count limit but made of empty rules (2 bytes each, as
 * costly as a valid rule once unpacked): the budget stops the unpack. */
Test(proto, a_body_of_empty_rules_stops_at_the_memory_budget)
{
	wc_limits lim = wc_limits_default();
	size_t rules = 1u << 20, n; /* 2 MiB of rules in one flag */
	uint8_t head[8] = {0x22}, *body;
	size_t inner = 2 * rules, h = 1;
	json_t *out = NULL;
	char err[512] = "";

	for (size_t v = inner; ; v >>= 7) { /* the flag's length, a varint */
		head[h++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
		if (v < 0x80)
			break;
	}
	body = repeat2(head, h, "\x5a\x00", rules, &n);
	long before = peak_mib();
	cr_assert_eq(ws_proto_decode(body, n, &lim, &out, err, sizeof err), FLAGSHM_EINVAL, "%s",
		     err);
	/* Unpacked within the budget, it runs out while converting to JSON:
	 * the message names the rule it had reached. */
	cr_assert(strncmp(err, "flags[0].targeting[", 19) == 0 &&
			  strstr(err, "]: the document needs more than ") &&
			  strstr(err, "a body this dense in small messages is refused"),
		  "%s", err);
	cr_assert_null(out);
	long grew = peak_mib() - before;
	long budget = (long)((96 * n + (16u << 20)) >> 20);
	fprintf(stderr, "FIGURE proto.empty_rules_2mb peak RSS grew %ld MiB (budget %ld MiB)\n",
		grew, budget);
	/* The budget counts bytes asked for; RSS adds malloc's headers (and
	 * ASan's redzones, so it is not checked there). */
#ifndef __SANITIZE_ADDRESS__
	cr_assert_leq(grew, budget * 3 / 2 + 16, "grew %ld MiB past a budget of %ld MiB", grew,
		      budget);
#endif
	free(body);
}
