/*
 * tools/flagshm/cli_stats.h - the writer's aggregate of every reader's
 * counts (docs/metrics.md), for `flagshm stats` and `flagshm top`.
 */
#ifndef FLAGSHM_TOOLS_CLI_STATS_H
#define FLAGSHM_TOOLS_CLI_STATS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * The aggregate of STORE, from /dev/shm/flagshm.<store>.stats (replaced
 * whole by the writer about every second), trusted only when it belongs to
 * the owner of the store's control object (and that owner is a trusted
 * writer user) and is not writable by group or others. The object:
 * {"generation":G,"readers":N,"time_ms":T,"flags":{"KEY":{"evaluations":N,
 * "rate":R,"last_evaluated_ms":T,"variants":{"true":N},"reasons":{...},
 * "errors":{...},"outcomes":{"true":{"success":N,"error":N,"count":N,
 * "error_rate":X,"p99_seconds":X,"sum_seconds":X}}}}}.
 * 0, or 1 with a message in ERR (no such store, no writer counting, not
 * trusted, unreadable).
 */
int cli_stats_load(const char *store, json_t **out, char *err, size_t errlen);

/* `flagshm stats [--json]`: the exit status. */
int cli_stats_main(const char *store, bool json);

#endif
