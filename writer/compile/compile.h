/*
 * writer/compile/compile.h - validate a flag document (docs/flag-format.md) and
 * compile it into a snapshot (shm/format.h).
 */
#ifndef FLAGSHM_WRITER_COMPILE_H
#define FLAGSHM_WRITER_COMPILE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Every problem found in one document, each a full line:
 *   "FILE: flags[3].targeting[1].conditions[0].operator: unknown operator \"foo\""
 * (for JSON syntax errors: "FILE:LINE:COL: message"). */
typedef struct wc_errors {
	char **msg;
	size_t n, cap;
	size_t dropped; /* past WC_ERRORS_MAX */
} wc_errors;

#define WC_ERRORS_MAX 1000

void wc_errors_add(wc_errors *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wc_errors_free(wc_errors *e);

/* Limits on what a document may hold. wc_limits_default() gives the
 * documented defaults; every one is a writer option. */
typedef struct wc_limits {
	size_t max_doc_bytes;	 /* 64 MiB */
	size_t max_flags;	 /* 100000 */
	size_t max_segments;	 /* 10000 */
	size_t max_rules;	 /* per flag, 1000 */
	size_t max_conditions;	 /* per rule or segment, 100 */
	size_t max_list;	 /* elements in a list value or included, 100000 */
	size_t max_string;	 /* bytes in any string, 65536 */
	size_t max_snapshot;	 /* bytes, 1 GiB */
	size_t max_eval_cost;	 /* per flag, worst-case evaluation cost (validate.h), 7000 */
	size_t max_regexes;	 /* distinct regex patterns, 1000; at most FS_REGEX_MAX */
} wc_limits;

wc_limits wc_limits_default(void);

/* Compiled snapshot: malloc'd bytes; the header is complete except
 * sh_generation and sh_published_ms (set at publish). */
typedef struct wc_snapshot {
	uint8_t *bytes;
	size_t size;
	uint32_t nflags;
	int64_t compile_us;
} wc_snapshot;

void wc_snapshot_free(wc_snapshot *s);

/*
 * Read and parse FILE (JSON; duplicate object keys rejected) into *doc.
 * Returns 0, or -1 with messages in errs (unreadable file, size limit,
 * syntax error with line and column).
 */
int wc_load_file(const char *file, const wc_limits *lim, json_t **doc, wc_errors *errs);

/* As wc_load_file for LEN bytes at BUF, LABEL standing for the file name in
 * messages (empty, binary or invalid UTF-8 text, syntax errors). */
int wc_load_buffer(const char *buf, size_t len, const char *label, const wc_limits *lim,
		   json_t **doc, wc_errors *errs);

/*
 * Validate DOC (a format-1 document or a bare array of flags), apply the
 * overrides of ENVIRONMENT (NULL: none) and compile it. LABEL names the
 * source in messages (the file name). Returns 0 and fills *out, or -1 with
 * every error found in errs; nothing is compiled from an invalid document.
 */
int wc_compile(json_t *doc, const char *environment, const char *label,
	       const wc_limits *lim, wc_snapshot *out, wc_errors *errs);

#endif
