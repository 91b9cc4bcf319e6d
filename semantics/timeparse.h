/*
 * semantics/timeparse.h - instants as Unix milliseconds, for the before/after
 * operators. Shared by the evaluator (attributes) and the compiler
 * (operands, pre-parsed into fs_cond.c_time_ms). Pure: no allocation, no
 * locale, no time zone database.
 */
#ifndef FLAGSHM_READER_TIMEPARSE_H
#define FLAGSHM_READER_TIMEPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Parse P[0..LEN) as a whole as an RFC 3339 date-time:
 *   YYYY-MM-DD(T|t| )HH:MM:SS[.fraction](Z|z|+HH:MM|-HH:MM)
 * Years 0000-9999; the day must exist in its month (leap years included);
 * second 60 (a leap second) is accepted and counts as the next second. The
 * fraction may have any number of digits; sub-millisecond digits are
 * dropped (rounding toward the past). Returns true and sets *MS, else false.
 */
bool timeparse_rfc3339(const char *p, size_t len, int64_t *ms);

/* A number of Unix seconds (fractions allowed) to milliseconds, rounded to
 * the nearest. False for NaN, infinities and |ms| >= 2^53. */
bool timeparse_seconds(double seconds, int64_t *ms);

#endif
