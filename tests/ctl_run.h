/*
 * tests/ctl_run.h - run flagshm-ctl ($FLAGSHM_CTL, else
 * build/control/ctl/flagshm-ctl) as a process and collect its exit status,
 * stdout and stderr separately. Bounded: a run longer than 60 s is killed.
 */
#ifndef FLAGSHM_TESTS_CTL_RUN_H
#define FLAGSHM_TESTS_CTL_RUN_H

#include <sys/types.h>

typedef struct ctl_out {
	int status; /* the exit status; 128+N for signal N; -1: could not run */
	char *out, *err; /* malloc'd, NUL-terminated */
} ctl_out;

/* ARGV: NULL-ended, without argv[0]. STDIN_FILE: NULL for /dev/null.
 * ENV: NULL-ended "NAME=value" added to (or replacing in) the environment;
 * FLAGSHM_URL and FLAGSHM_TOKEN_FILE are removed unless ENV gives them. */
ctl_out ctl_run(const char *const *argv, const char *stdin_file, const char *const *env);
/* Start without waiting: stdout and stderr go to OUT_FILE and ERR_FILE. */
pid_t ctl_spawn(const char *const *argv, const char *out_file, const char *err_file);
void ctl_out_free(ctl_out *o);

#endif
