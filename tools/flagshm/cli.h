/*
 * tools/flagshm/cli.h - internals shared by the files of the flagshm inspection
 * tool (cli.c: commands; cli_context.c: --context; cli_dump.c: a snapshot
 * back to format-1 JSON). Not part of libflagshm.
 */
#ifndef FLAGSHM_TOOLS_CLI_H
#define FLAGSHM_TOOLS_CLI_H

#include "flagshm.h"
#include "inspect.h"
#include "text.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* ---- cli_context.c */

/* A context parsed from --context. ctx borrows its strings from doc and its
 * lists from items: both live until cli_context_free. */
typedef struct cli_context {
	flagshm_ctx ctx;
	json_t *doc;
	const char **items[FLAGSHM_CTX_MAX];
	unsigned nitems;
} cli_context;

/* Parse TEXT, a flat JSON object whose values are strings, numbers,
 * booleans or lists of strings. Returns 0, or -1 with a message in ERR
 * (naming the attribute when one is at fault); *c is then already freed. */
int cli_context_parse(cli_context *c, const char *text, char *err, size_t errlen);
void cli_context_free(cli_context *c);

/* ---- cli_top.c */

/* `flagshm top` on ST until q (or SIGINT, SIGTERM, SIGHUP). Needs a
 * terminal on stdin and stdout. Returns the exit status. */
int cli_top(flagshm_store *st, const char *store);

/* ---- cli_dump.c */

/* Flag I of S as a format-1 flag object, or NULL with a message in ERR
 * (a record out of range, or out of memory). */
json_t *cli_dump_flag(const snap *s, uint32_t i, char *err, size_t errlen);
/* The whole snapshot as a format-1 document (formatVersion, segments,
 * flags), or NULL with a message in ERR. */
json_t *cli_dump_doc(const snap *s, char *err, size_t errlen);

/*
 * What `list` and `dump` (and `show`) may cost for S, in bytes of output or
 * of memory for the JSON tree: CLI_OUTPUT_FACTOR times the snapshot, plus
 * a floor (the writer's default doc-bytes) for small snapshots whose
 * interned strings are used many times. Past it the command refuses with a message:
 * records that share one large list or string cannot make it use
 * gigabytes.
 */
#define CLI_OUTPUT_FACTOR 16
#define CLI_OUTPUT_FLOOR ((uint64_t)64 << 20)
static inline uint64_t cli_output_budget(const snap *s)
{
	return CLI_OUTPUT_FACTOR * s->size + CLI_OUTPUT_FLOOR;
}

/* Write N bytes of P to F escaped (shm/text.h): FS_TEXT_PLAIN for text
 * lines, FS_TEXT_JSON for the body of a JSON string. Uses no heap. */
void cli_put_text(FILE *f, const char *p, size_t n, enum fs_text_style style);

/* "release", "operational", ... for an enum fs_kind; NULL when out of range. */
const char *cli_kind_name(uint8_t kind);

/* Write J to F as JSON. Pretty: two-space indent, arrays of scalars on one
 * line. Compact: no spaces at all. Numbers are written in the shortest form
 * that reads back to the same double (12.5, not 12.500000000000002). */
void cli_json_print(FILE *f, const json_t *j, bool pretty);
/* J compact, without the newline. */
void cli_json_write(FILE *f, const json_t *j);

#endif
