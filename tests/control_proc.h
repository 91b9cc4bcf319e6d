/*
 * tests/control_proc.h - real etcd members (Debian's etcd-server) and real
 * flagshm-control instances for tests, on free loopback ports with
 * temporary data directories, and a small HTTP client for their API.
 *
 * etcd: tc_etcd_start(&e, 1 or 3) starts a cluster and waits (up to 30 s)
 * until every member answers; tc_etcd_kill(&e, i) SIGKILLs member i;
 * tc_etcd_stop(&e) stops all and removes the data.
 * flagshm-control: tc_control_start(&c, etcd_urls, extra_args) starts the
 * binary ($FLAGSHM_CONTROL, else build/control/flagshm-control) with
 * --listen 127.0.0.1:0, a bootstrap admin token (c.admin) and --ready-file,
 * and waits (up to 30 s) for the file with its URL (c.url).
 * Every wait is bounded.
 */
#ifndef FLAGSHM_TESTS_CONTROL_PROC_H
#define FLAGSHM_TESTS_CONTROL_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define TC_MEMBERS_MAX 3

typedef struct tc_etcd {
	int n;
	pid_t pid[TC_MEMBERS_MAX];
	unsigned client_port[TC_MEMBERS_MAX], peer_port[TC_MEMBERS_MAX];
	char dir[128];
	char urls[512]; /* "http://127.0.0.1:P1,..." */
	char url[TC_MEMBERS_MAX][64];
	char args[TC_MEMBERS_MAX][16][160]; /* kept to restart a member */
} tc_etcd;

int tc_etcd_start(tc_etcd *e, int members);
void tc_etcd_kill(tc_etcd *e, int i);
/* Start member I again (after tc_etcd_kill) on its data directory. */
int tc_etcd_restart(tc_etcd *e, int i);
void tc_etcd_stop(tc_etcd *e);

typedef struct tc_control {
	pid_t pid;
	char dir[128];
	char url[64];
	char admin[64]; /* the bootstrap token */
	char log[160];
	char ready[160];
	unsigned port;
} tc_control;

/* $FLAGSHM_CONTROL, else build/control/flagshm-control. */
const char *tc_control_path(void);

/* EXTRA: NULL-ended extra arguments (may be NULL). PORT 0: any. */
int tc_control_start(tc_control *c, const char *etcd_urls, unsigned port,
		     const char *const *extra);
/* SIGTERM (SIGKILL when KILL), wait; returns the exit status as wp_stop. */
int tc_control_stop(tc_control *c, bool kill);

/* One HTTP request. TOKEN NULL: no Authorization. HEADERS: NULL-ended
 * "Name: value" lines (may be NULL). Fills *body (malloc'd, NUL-ended) and
 * returns the status, 0 when no answer. HDRS_OUT (may be NULL) gets the
 * response headers (malloc'd). */
int tc_http(const char *method, const char *url, const char *token,
	    const char *const *headers, const char *body, char **resp, char **hdrs_out);

/* Read SSE from URL until the bytes received contain UNTIL or TIMEOUT_MS
 * passes; LAST_ID NULL: no Last-Event-ID. Returns what was received
 * (malloc'd) and the status in *status. */
char *tc_sse(const char *url, const char *token, const char *last_id, const char *until,
	     int timeout_ms, int *status);

/* A free TCP port on 127.0.0.1 (bound and released). */
unsigned tc_free_port(void);

#endif
