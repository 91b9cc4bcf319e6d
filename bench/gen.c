/*
 * bench/gen.c - the flag set, the user ids and the context of every case.
 *
 * Everything here is a pure function of its arguments, so bench/peers can
 * rebuild the same set: it reads --emit-doc, --emit-ids and --emit-context
 * output. bench/README.md describes each flag; a change here must change
 * that description and the peers' mirror of it.
 */
#include "bench.h"
#include "hash.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The ten rules of K_RULES10: each one condition; only r10 holds for the
 * context of gen_ctx, and it serves true to a 50% rollout of it. */
static json_t *rules10_targeting(void)
{
	return json_pack(
		"[{s:s,s:i,s:[{s:s,s:s,s:s}],s:b}," /* r1 equals */
		"{s:s,s:i,s:[{s:s,s:s,s:[s,s,s]}],s:b}," /* r2 in */
		"{s:s,s:i,s:[{s:s,s:s,s:i}],s:b}," /* r3 greaterThan */
		"{s:s,s:i,s:[{s:s,s:s,s:s}],s:b}," /* r4 contains */
		"{s:s,s:i,s:[{s:s,s:s,s:s}],s:b}," /* r5 matches */
		"{s:s,s:i,s:[{s:s,s:s,s:s}],s:b}," /* r6 equals */
		"{s:s,s:i,s:[{s:s,s:s,s:[s,s,s,s,s,s,s,s]}],s:b}," /* r7 in */
		"{s:s,s:i,s:[{s:s,s:s,s:i}],s:b}," /* r8 greaterThan */
		"{s:s,s:i,s:[{s:s,s:s,s:s}],s:b}," /* r9 contains */
		"{s:s,s:i,s:[{s:s,s:s,s:s}],s:i,s:b}]", /* r10 equals, 50% */
		"id", "r1", "priority", 1, "conditions",
		"attribute", "country", "operator", "equals", "value", "ZZ", "variation", 1,
		"id", "r2", "priority", 2, "conditions",
		"attribute", "plan", "operator", "in", "value", "enterprise", "gold", "platinum",
		"variation", 1,
		"id", "r3", "priority", 3, "conditions",
		"attribute", "age", "operator", "greaterThan", "value", 200, "variation", 1,
		"id", "r4", "priority", 4, "conditions",
		"attribute", "email", "operator", "contains", "value", "@internal.", "variation", 1,
		"id", "r5", "priority", 5, "conditions",
		"attribute", "userAgent", "operator", "matches", "value", "(bot|crawler|spider)/[0-9]+",
		"variation", 1,
		"id", "r6", "priority", 6, "conditions",
		"attribute", "plan", "operator", "equals", "value", "staff", "variation", 1,
		"id", "r7", "priority", 7, "conditions",
		"attribute", "country", "operator", "in", "value",
		"FR", "IT", "ES", "NL", "BE", "AT", "CH", "PL", "variation", 1,
		"id", "r8", "priority", 8, "conditions",
		"attribute", "loginCount", "operator", "greaterThan", "value", 100000, "variation", 1,
		"id", "r9", "priority", 9, "conditions",
		"attribute", "userAgent", "operator", "contains", "value", "HeadlessChrome",
		"variation", 1,
		"id", "r10", "priority", 10, "conditions",
		"attribute", "country", "operator", "equals", "value", "DE",
		"rolloutPercentage", 50, "variation", 1);
}

static json_t *case_flags(void)
{
	json_t *json_on = json_loads(V_JSON_ON, 0, NULL);
	if (!json_on)
		return NULL;
	json_t *rules = rules10_targeting();
	if (!rules) {
		json_decref(json_on);
		return NULL;
	}
	/* "o" steals the references. */
	return json_pack("[{s:s,s:b},"
			 "{s:s,s:b,s:b,s:i},"
			 "{s:s,s:b,s:b,s:i,s:o},"
			 "{s:s,s:s,s:s},"
			 "{s:s,s:o,s:{}}]",
			 "key", K_SIMPLE, "defaultValue", 1,
			 "key", K_ROLLOUT, "defaultValue", 1, "offValue", 0, "rolloutPercentage", 25,
			 "key", K_RULES10, "defaultValue", 1, "offValue", 0, "rolloutPercentage", 0,
			 "targeting", rules,
			 "key", K_STRING, "defaultValue", V_STRING_ON, "offValue", "checkout-v1",
			 "key", K_JSON, "defaultValue", json_on, "offValue");
}

void gen_key(size_t i, char *buf, size_t n)
{
	static const char *const named[BENCH_CASE_FLAGS] = {
		K_SIMPLE, K_ROLLOUT, K_RULES10, K_STRING, K_JSON,
	};
	if (i < BENCH_CASE_FLAGS)
		snprintf(buf, n, "%s", named[i]);
	else
		snprintf(buf, n, "flag-%06zu", i - BENCH_CASE_FLAGS);
}

/*
 * Filler flag J (0-based), the bulk of a realistic store: by j % 10,
 * 0-5 boolean, 6-7 string, 8 number, 9 JSON; rolloutPercentage
 * (j * 37) % 101; every third one has a rule on "country"; every
 * seventeenth is disabled. name and owner are kept for inspection.
 */
static json_t *filler_flag(size_t j, const char *rx)
{
	char key[32], name[40], owner[32], sval[40];
	snprintf(key, sizeof key, "flag-%06zu", j);
	snprintf(name, sizeof name, "Filler flag %zu", j);
	snprintf(owner, sizeof owner, "team-%zu", j % 8);
	int kind = (int)(j % 10);
	json_t *def, *off, *var;
	if (kind <= 5) {
		def = json_true();
		off = json_false();
		var = json_true();
	} else if (kind <= 7) {
		snprintf(sval, sizeof sval, "variant-%zu", j);
		def = json_string(sval);
		off = json_string("off");
		var = json_string("rule");
	} else if (kind == 8) {
		def = json_integer((json_int_t)j);
		off = json_integer(0);
		var = json_integer(-1);
	} else {
		def = json_pack("{s:s,s:I}", "mode", "a", "limit", (json_int_t)j);
		off = json_object();
		var = json_pack("{s:s}", "mode", "rule");
	}
	json_t *f = json_pack("{s:s,s:s,s:s,s:b,s:o,s:o,s:i}", "key", key, "name", name,
			      "owner", owner, "enabled", j % 17 != 16, "defaultValue", def,
			      "offValue", off, "rolloutPercentage", (int)((j * 37) % 101));
	if (f && j % 3 == 0) {
		char rid[24];
		snprintf(rid, sizeof rid, "r%zu", j % 5);
		json_t *rules = json_pack("[{s:s,s:[{s:s,s:s,s:[s,s,s]}],s:i,s:O}]", "id", rid,
					  "conditions", "attribute", "country", "operator", "in",
					  "value", "US", "CA", "MX", "rolloutPercentage",
					  (int)(j % 100), "variation", var);
		if (!rules || json_object_set_new(f, "targeting", rules)) {
			json_decref(f);
			f = NULL;
		}
	}
	if (f && rx) {
		/* One more rule, after any other: userAgent matches RX. */
		json_t *rules = json_object_get(f, "targeting");
		if (!rules) {
			rules = json_array();
			if (!rules || json_object_set_new(f, "targeting", rules)) {
				json_decref(f);
				f = NULL;
			}
		}
		json_t *rule = f ? json_pack("{s:s,s:[{s:s,s:s,s:s}],s:O}", "id", "rx",
					     "conditions", "attribute", "userAgent", "operator",
					     "matches", "value", rx, "variation", var)
				 : NULL;
		if (f && (!rule || json_array_append_new(rules, rule))) {
			json_decref(f);
			f = NULL;
		}
	}
	json_decref(var);
	return f;
}

/* Regex I (0-based) of gen_doc_rx: five shapes seen in real flag sets
 * (those of flagshm-cost-bench), each numbered apart, so all differ from
 * each other and from the pattern of bench.rules10's r5. */
void gen_regex(size_t i, char *out, size_t n)
{
	switch (i % 5) {
	case 0: snprintf(out, n, "^user-%zu@(example|acme)\\.com$", i); break;
	case 1: snprintf(out, n, "^/api/v%zu/(orders|carts)/[0-9]+$", i); break;
	case 2: snprintf(out, n, "(?i)chrome/%zu\\.[0-9]+", i); break;
	case 3: snprintf(out, n, "^10\\.%zu\\.[0-9]{1,3}\\.[0-9]{1,3}$", i); break;
	default: snprintf(out, n, "^[a-z]{2}-[A-Z]{2}-%zu$", i); break;
	}
}

json_t *gen_doc(size_t nflags)
{
	return gen_doc_rx(nflags, 0);
}

json_t *gen_doc_rx(size_t nflags, size_t nregex)
{
	json_t *flags = case_flags();
	if (!flags)
		return NULL;
	size_t nfill = nflags > BENCH_CASE_FLAGS ? nflags - BENCH_CASE_FLAGS : 0;
	if (nregex > nfill)
		nregex = nfill;
	/* Spread over the filler flags: every STEP-th carries one. */
	size_t step = nregex ? nfill / nregex : 0;
	for (size_t j = 0; j + BENCH_CASE_FLAGS < nflags; j++) {
		char rx[96];
		bool has_rx = step && j % step == 0 && j / step < nregex;
		if (has_rx)
			gen_regex(j / step, rx, sizeof rx);
		json_t *f = filler_flag(j, has_rx ? rx : NULL);
		if (!f || json_array_append_new(flags, f)) {
			json_decref(flags);
			return NULL;
		}
	}
	return json_pack("{s:i,s:{},s:o}", "formatVersion", 1, "segments", "flags", flags);
}

void gen_ids(bench_id *ids)
{
	for (uint32_t i = 0; i < BENCH_NIDS; i++) {
		int n = snprintf(ids[i].s, sizeof ids[i].s, "u-%08x", mm3_fmix(i + 1));
		ids[i].len = (uint8_t)n;
	}
}

/* The context's constant attributes (besides userId). */
#define CTX_COUNTRY "DE"
#define CTX_PLAN "free"
#define CTX_EMAIL "jane.doe@example.com"
#define CTX_AGENT "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0"
#define CTX_AGE 35
#define CTX_LOGINS 17

void gen_ctx(flagshm_ctx *c, const bench_id *ids)
{
	flagshm_ctx_init(c);
	/* userId first: set_user rewrites attrs[0]. */
	flagshm_ctx_string(c, "userId", ids[0].s);
	flagshm_ctx_string(c, "country", CTX_COUNTRY);
	flagshm_ctx_string(c, "plan", CTX_PLAN);
	flagshm_ctx_string(c, "email", CTX_EMAIL);
	flagshm_ctx_string(c, "userAgent", CTX_AGENT);
	flagshm_ctx_number(c, "age", CTX_AGE);
	flagshm_ctx_number(c, "loginCount", CTX_LOGINS);
}

json_t *gen_ctx_json(void)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:i,s:i}", "country", CTX_COUNTRY, "plan", CTX_PLAN,
			 "email", CTX_EMAIL, "userAgent", CTX_AGENT, "age", CTX_AGE,
			 "loginCount", CTX_LOGINS);
}

static FILE *open_out(const char *file)
{
	if (strcmp(file, "-") == 0)
		return stdout;
	FILE *f = fopen(file, "w");
	if (!f)
		fprintf(stderr, "flagshm-bench: cannot write %s: %s\n", file, strerror(errno));
	return f;
}

static int close_out(FILE *f, const char *file)
{
	int bad = ferror(f);
	if (f == stdout)
		bad |= fflush(f);
	else
		bad |= fclose(f);
	if (bad) {
		fprintf(stderr, "flagshm-bench: error writing %s\n", file);
		return -1;
	}
	return 0;
}

static int emit_json(const char *file, json_t *j)
{
	if (!j) {
		fprintf(stderr, "flagshm-bench: out of memory\n");
		return -1;
	}
	FILE *f = open_out(file);
	if (!f) {
		json_decref(j);
		return -1;
	}
	int rc = json_dumpf(j, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(j);
	fputc('\n', f);
	return close_out(f, file) || rc ? -1 : 0;
}

int gen_emit_doc(const char *file, size_t nflags, size_t nregex)
{
	return emit_json(file, gen_doc_rx(nflags, nregex));
}

int gen_emit_context(const char *file)
{
	return emit_json(file, gen_ctx_json());
}

int gen_emit_ids(const char *file)
{
	static bench_id ids[BENCH_NIDS];
	gen_ids(ids);
	FILE *f = open_out(file);
	if (!f)
		return -1;
	for (size_t i = 0; i < BENCH_NIDS; i++)
		fprintf(f, "%s\n", ids[i].s);
	return close_out(f, file);
}
