/*
 * writer/compile/validate.h - the checks of a flag document (docs/flag-format.md),
 * and the parsers of values that the compiler shares with them, so that
 * what validates is exactly what compiles.
 */
#ifndef FLAGSHM_WRITER_VALIDATE_H
#define FLAGSHM_WRITER_VALIDATE_H

#include "compile.h"
#include "rules.h"
#include "format.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WC_NAME_MAX 128	/* flag keys, segment and environment names (not
				   http.h's WS_KEY_MAX, an SDK key) */
#define WC_PREREQ_DEPTH_MAX SEM_PREREQ_DEPTH_MAX /* semantics/rules.h */
#define WC_PREREQ_VISITS_MAX SEM_PREREQ_VISITS_MAX /* semantics/rules.h */

/*
 * The static cost bound (docs/flag-format.md, "Evaluation cost"): the most
 * work one evaluation of a flag can make a reader do, whatever the context,
 * in units of about 5 ns on the reference machine (docs/reliability.md,
 * "Cost bounds"). Each flag's own part is that of its costliest targeting,
 * its own or an environment's, so the bound holds for every environment;
 * each prerequisite adds its whole cost again on every path that reaches it.
 */
#define WC_COST_COND 16	   /* a condition: attribute lookup and operator */
#define WC_COST_REGEX 160   /* a `matches` condition (a regex match) */
#define WC_COST_SEGMENT 16  /* a segment named by a rule (once per rule): its
			       userId lookup; its conditions count as conditions */
#define WC_COST_RULE 1	   /* a rule tried */
#define WC_COST_FLAG 1	   /* a flag evaluated: the flag itself, each prerequisite visit */

/*
 * Check all of DOC, every environment's overrides included, adding one
 * message per problem ("LABEL: path: what is wrong") to ERRS. Returns 0 when
 * DOC may be compiled, -1 otherwise.
 */
int wc_validate(json_t *doc, const char *label, const wc_limits *lim, wc_errors *errs);

/* The flags array (DOC itself when it is a bare array) and the segments
 * object (NULL when there is none) of a validated document. */
json_t *wc_doc_flags(json_t *doc);
json_t *wc_doc_segments(json_t *doc);

/* Field NAME of FLAG as environment override ENV (an object or NULL) leaves
 * it: ENV's own value when it has one, else FLAG's. NULL when absent. */
json_t *wc_flag_field(json_t *flag, json_t *env, const char *name);
/* FLAG's override object for environment NAME (may be NULL), or NULL. */
json_t *wc_flag_env(json_t *flag, const char *name);
/* True when some flag of DOC has overrides for environment NAME: a name no
 * flag mentions is likely misspelt (the writer warns). */
bool wc_doc_mentions_env(json_t *doc, const char *name);

/* Ask for flag I + WC_PREFETCH_AHEAD of FLAGS to be brought into the cache
 * while flag I is worked on. Each pass over 100,000 flags (they are spread
 * over hundreds of MB of parsed JSON) otherwise stalls on a cache miss at
 * every flag's first byte. Only a hint. */
#define WC_PREFETCH_AHEAD 8
static inline void wc_prefetch_flag(json_t *flags, size_t i)
{
	json_t *f = json_array_get(flags, i + WC_PREFETCH_AHEAD);

	if (f)
		__builtin_prefetch(f);
}

/* The index of the first byte of S[0..LEN) outside a name's alphabet
 * [A-Za-z0-9._-] (flag keys, segment and environment names), or LEN. The
 * length rule (1 to WC_NAME_MAX) is the caller's. */
size_t wc_name_bad_char(const char *s, size_t len);

/* enum fs_vtype of a flag value (object and array are both FS_V_JSON), or 0
 * for null. */
int wc_vtype(const json_t *v);
/* enum fs_op for an operator name, or 0. */
int wc_op_parse(const char *name);

/* Parsers: NULL on success, else a static description of what is wrong. */
/* A percentage 0..100 with at most 3 decimals, as thousandths 0..100000. */
const char *wc_percent(const json_t *v, uint32_t *out);

/* An instant: an RFC 3339 string or a number of Unix seconds (fractions
 * allowed), as Unix milliseconds (semantics/timeparse.h does the parsing, so
 * operands and attributes read alike). SemVer operands use
 * semantics/semver.h's semver_parse directly. */
const char *wc_time(const json_t *v, int64_t *ms);

#endif
