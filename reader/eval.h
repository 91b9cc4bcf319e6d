/*
 * reader/eval.h - the evaluation semantics of docs/flag-format.md over a
 * validated snapshot. Pure: no allocation, no system call, no lock.
 */
#ifndef FLAGSHM_READER_EVAL_H
#define FLAGSHM_READER_EVAL_H

#include "flagshm.h"
#include "snap.h"
#include "rules.h"

/* Prerequisite chains deeper than this evaluate as PREREQUISITE_FAILED; the
 * compiler rejects them, so only a hostile snapshot reaches it. */
#define EVAL_MAX_DEPTH SEM_PREREQ_DEPTH_MAX /* semantics/rules.h */

/* Evaluate flag index FLAG of S for CTX (may be NULL) into *OUT. Returns 0,
 * or FLAGSHM_ECORRUPT when a record failed a bounds check (out: ERROR,
 * SNAPSHOT_INVALID). out->generation is set from S. */
int eval_flag(const snap *s, uint32_t flag, const flagshm_ctx *ctx, flagshm_result *out);

/* Look KEY up and evaluate it; FLAG_NOT_FOUND gives FLAGSHM_ENOTFOUND. */
int eval_key(const snap *s, const char *key, const flagshm_ctx *ctx, flagshm_result *out);

/* Fill *OUT as an ERROR result with CODE (value cleared, no rule id). */
void eval_error(flagshm_result *out, flagshm_error_code code, uint64_t generation);

/* The bucket of (salt, id): MurmurHash3_x86_32(salt ":" id, 0) % 100000. */
uint32_t eval_bucket(const char *salt, size_t salt_len, const char *id, size_t id_len);

/* Attribute NAME of CTX, or NULL. */
const flagshm_attr *eval_ctx_get(const flagshm_ctx *ctx, const char *name, size_t len);

#endif
