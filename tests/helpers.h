/*
 * tests/helpers.h - compile a flag document held in a C string straight to a
 * validated in-memory snapshot, for tests of the compiler and evaluator.
 * In the JSON given to these helpers a single quote stands for a double
 * quote, so documents read cleanly inside C strings.
 */
#ifndef FLAGSHM_TESTS_HELPERS_H
#define FLAGSHM_TESTS_HELPERS_H

#include "flagshm.h"
#include "snap.h"

/* Compile (environment ENV, may be NULL) and snap_open the result. Fails
 * the current Criterion test, printing every compile error, when the
 * document does not compile. Free with th_snap_free. */
snap *th_snap(const char *json, const char *env);
void th_snap_free(snap *s);

/* Compile a document that should be rejected: returns every error message
 * joined by '\n' (malloc'd), or NULL when it compiled. */
char *th_errors(const char *json, const char *env);

/* Evaluate KEY in S; returns the result (asserts nothing). */
flagshm_result th_eval(const snap *s, const char *key, const flagshm_ctx *ctx);

/* Write JSON (quotes as above) to a fresh temporary file; returns its path
 * (malloc'd). */
char *th_write_temp(const char *json);

#endif
