/*
 * tests/writer_proc.h - run the real flagshm-writer binary (env
 * FLAGSHM_WRITER) as a child with its log in a file, stop it with a bound,
 * and small bounded waits. Shared by the sync tests and the sync benchmark.
 */
#ifndef FLAGSHM_TESTS_WRITER_PROC_H
#define FLAGSHM_TESTS_WRITER_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "flagshm.h"

/* The writer binary: $FLAGSHM_WRITER, else "flagshm-writer". */
const char *wp_writer_path(void);

/* Start the writer with ARGV (NULL-ended, without argv[0]); stdout and
 * stderr appended to LOG. ENV_KEY, when not NULL, is put in the child's
 * FLAGSHM_SDK_KEY. Returns the pid, or -1. */
pid_t wp_spawn(const char *const *argv, const char *log, const char *env_key);
/* The same for another program PROG. */
pid_t wp_spawn_prog(const char *prog, const char *const *argv, const char *log,
		    const char *env_key);

/* SIGTERM, wait up to TIMEOUT_MS, then SIGKILL. Returns the exit status,
 * 128+N for a signal, -1 if it had to be killed. */
int wp_stop(pid_t pid, int timeout_ms);

/* Exit status of PID if it has exited within TIMEOUT_MS, else -2. */
int wp_wait_exit(pid_t pid, int timeout_ms);

/* The whole file, NUL-terminated (malloc'd), or NULL. */
char *wp_read_file(const char *path, size_t *len);
int wp_write_file(const char *path, const void *buf, size_t n);

/* `rm -rf DIR` (files and directories; symlinks are not followed). */
void wp_rmdir(const char *dir);

int64_t wp_mono_ms(void);
void wp_sleep_ms(int ms);

/* flagshm_open that fails (FLAGSHM_ENOSTORE) until a writer has created
 * the store, for tests that wait for it: without FLAGSHM_OPEN_STRICT a
 * handle would open at once and attach later. */
static inline int wp_open_existing(const char *name, flagshm_store **s)
{
	flagshm_store_options o = { .size = sizeof o, .flags = FLAGSHM_OPEN_STRICT };
	return flagshm_store_open(name, &o, s, NULL, 0);
}

#endif
