/*
 * semantics/semver.h - strict SemVer 2.0.0 (https://semver.org): parse and
 * precedence. Shared by the evaluator (attributes) and the compiler
 * (operands, pre-parsed into fs_semver). Pure: no allocation.
 */
#ifndef FLAGSHM_READER_SEMVER_H
#define FLAGSHM_READER_SEMVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct semver {
	uint64_t major, minor, patch;
	const char *pre; /* pre-release, without the '-'; points into the input */
	size_t pre_len;	 /* 0 when there is none */
} semver;

/*
 * Parse P[0..LEN) as a whole: MAJOR.MINOR.PATCH[-PRE][+BUILD], numbers
 * without leading zeros, each at most UINT64_MAX; no "v" prefix, no
 * spaces. Pre-release identifiers are non-empty [0-9A-Za-z-], numeric ones
 * without leading zeros; build identifiers are non-empty [0-9A-Za-z-] and
 * are validated, then dropped (they do not take part in precedence).
 * Returns true and fills *OUT, or false (OUT untouched).
 */
bool semver_parse(const char *p, size_t len, semver *out);

/* Precedence (spec section 11): <0, 0 or >0 as A is lower, equal, higher. */
int semver_cmp(const semver *a, const semver *b);

#endif
