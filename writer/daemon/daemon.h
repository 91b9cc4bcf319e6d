/*
 * writer/daemon/daemon.h - flagshm-writer's work: check a document, publish it
 * once, or keep a store in step with a file.
 */
#ifndef FLAGSHM_WRITER_DAEMON_H
#define FLAGSHM_WRITER_DAEMON_H

#include "compile.h"

#include <stdbool.h>

typedef struct wd_options {
	const char *store;	 /* --store */
	const char *source;	 /* --source FILE or URL (http://, https://) */
	const char *environment; /* --environment, NULL for none */
	bool once;		 /* --once: publish and exit */
	wc_limits limits;	 /* --limit NAME=VALUE, else defaults */
	/* A URL source only (writer/sync/sync.h): */
	const char *key_file;	 /* --key-file, NULL: $FLAGSHM_SDK_KEY */
	const char *state_dir;	 /* --state-dir */
	const char *ca_file;	 /* --ca-file */
	bool stream;		 /* --stream */
	int poll_interval_s;	 /* --poll-interval */
	int idle_timeout_s;	 /* --idle-timeout, 0: default */
	int64_t stale_after_ms;	 /* --stale-after, 0: never stale */
	const char *metrics_listen; /* --metrics-listen ADDR:PORT, NULL: no exporter */
	const char *exposures;	 /* --exposures FILE, NULL: none */
	uint64_t exposures_max_bytes; /* --exposures-max-bytes, 0: default */
} wd_options;

/* True when SOURCE names a control plane rather than a file. */
bool wd_source_is_url(const char *source);

/* Validate FILE; print every error to stderr. Returns the exit status: 0
 * valid (a summary line on stdout), 1 invalid or unreadable. */
int wd_check(const char *file, const char *environment, const wc_limits *lim);

/*
 * Take store o->store (exit 1 when another writer holds it), publish
 * o->source, and unless o->once keep republishing it on every change of
 * the file and on SIGHUP, with a heartbeat every second, until SIGTERM or
 * SIGINT. A URL source is synced instead (writer/sync/sync.h), recording
 * ctl_last_sync_ms, ctl_stale_after_ms, ctl_last_error and ctl_sync_state. Logs
 * to stderr. Returns the exit status: 0, or 1 when the store cannot be
 * taken, the source's directory cannot be watched, there is no SDK key,
 * --metrics-listen's port is in use (2 when its address is malformed),
 * or (with --once) the document is rejected or cannot be published.
 */
int wd_run(const wd_options *o);

/* Remove the store's objects. Returns the exit status (0, 1). */
int wd_remove(const char *store);

/* Set one limit from "NAME=VALUE" (names as in wc_limits without max_,
 * '-' or '_', e.g. "flags=5000", "doc-bytes=16M"). 0, or -1 with a message
 * in err. */
int wd_limit_parse(wc_limits *lim, const char *arg, char *err, size_t errlen);

#endif
