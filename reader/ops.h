/*
 * reader/ops.h - the condition operators of docs/flag-format.md, one
 * function per family. Pure over a validated snapshot: no allocation except
 * one pcre2_match_data per thread, created on that thread's first regex
 * match; no system call, no lock.
 *
 * Each returns 1 when the condition's operator holds for the present,
 * non-list attribute A, 0 when it does not, and -1 when an operand failed a
 * bounds check (the evaluator answers ERROR/SNAPSHOT_INVALID). The "not"
 * operators, negate, list attributes and missing attributes are
 * ops_cond()'s job.
 */
#ifndef FLAGSHM_READER_OPS_H
#define FLAGSHM_READER_OPS_H

#include "flagshm.h"
#include "snap.h"

/* A condition over CTX, with every rule of the format applied: a missing
 * attribute is false whatever negate says; on a list attribute only
 * contains/notContains/in/notIn look at the elements (any/none), every
 * other operator is false; then negate flips. 1, 0 or -1 as above. */
int ops_cond(const snap *s, const fs_cond *c, const flagshm_ctx *ctx);

/* equals: type-strict (string, number as double, bool). */
int ops_equals(const snap *s, const fs_cond *c, const flagshm_attr *a);
/* in: binary search of a string or number in the sorted operand list. */
int ops_in(const snap *s, const fs_cond *c, const flagshm_attr *a);
/* contains, startsWith, endsWith on a string attribute. */
int ops_substr(const snap *s, const fs_cond *c, const flagshm_attr *a);
/* matches: unanchored PCRE2 search, bounded; a failed pattern never matches. */
int ops_matches(const snap *s, const fs_cond *c, const flagshm_attr *a);
/* greaterThan .. lessThanOrEqual: number, or a string that is wholly one. */
int ops_numeric(const snap *s, const fs_cond *c, const flagshm_attr *a);
/* semverEqual/GreaterThan/LessThan: the attribute must be a strict SemVer. */
int ops_semver(const snap *s, const fs_cond *c, const flagshm_attr *a);
/* before/after: RFC 3339 string or number of Unix seconds. */
int ops_time(const snap *s, const fs_cond *c, const flagshm_attr *a);

/* Whether P[0..N) is wholly a finite decimal number (no spaces, no hex,
 * no inf/nan; '.' as decimal point whatever the locale), into *OUT. */
bool ops_parse_number(const char *p, size_t n, double *out);

#endif
