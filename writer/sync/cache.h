/*
 * writer/sync/cache.h - the cold-start cache: the last good document, kept in
 * the writer's state directory as protobuf (proto/flagshm.proto,
 * CacheFile) so a restarted writer publishes flags before the control
 * plane answers, or while it is down.
 *
 * The file is STATE_DIR/document.pb, replaced atomically: written to a
 * temporary file in the same directory, fsync'd, renamed over the old one,
 * and the directory fsync'd, so a crash or power loss leaves either the
 * old file or the new one, never a mix. A file that fails to parse or
 * whose checksum does not match is reported and ignored.
 *
 * The directory is trusted only as far as ws_cache_dir_open checks it
 * (owner, mode, not a symlink); files in it are opened with openat and
 * O_NOFOLLOW, and the cache file with O_NONBLOCK and read only once fstat
 * says it is a regular file, so a FIFO or a symlink there is reported as
 * a corrupt cache, never waited on or followed.
 */
#ifndef FLAGSHM_WRITER_CACHE_H
#define FLAGSHM_WRITER_CACHE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_CACHE_FILE "document.pb"

/* What is stored beside the document. Strings may be NULL (none). */
typedef struct ws_cache_meta {
	char *source;	     /* the control plane URL */
	char *etag;	     /* the ETag of the document's last 200 */
	char *last_event_id; /* the stream's last event id */
	int64_t saved_ms;    /* Unix ms of the save (set by ws_cache_save) */
} ws_cache_meta;

void ws_cache_meta_free(ws_cache_meta *m);

/*
 * Open the state directory DIR (O_DIRECTORY, for openat) after checking
 * that only this writer's user can change what is in it. CREATE: first
 * create DIR (mode 0700) and its missing parents (0755). Every save and
 * load goes through it. Returns the descriptor (>= 0; close it), or:
 *   FLAGSHM_EINVAL  DIR is refused: a symbolic link (never followed), not
 *                   owned by the effective uid, or writable by group or
 *                   others; ERR names the path, the owner and the mode
 *   FLAGSHM_ESYS    it cannot be created or opened (errno kept), with
 *                   "cannot create P: reason" or "cannot open state
 *                   directory DIR: reason" in ERR
 */
int ws_cache_dir_open(const char *dir, bool create, char *err, size_t errlen);

/* ws_cache_dir_open(DIR, true) and close: 0 or its error. */
int ws_cache_dir_make(const char *dir, char *err, size_t errlen);

/*
 * Save DOC (a good document) and META (may be NULL) as DIR/document.pb,
 * atomically (above). Returns 0, or:
 *   FLAGSHM_EINVAL  DOC cannot be carried as protobuf (ws_proto_encode)
 *   FLAGSHM_ESYS    a write, fsync or rename failed; the old file is intact
 *   FLAGSHM_EINVAL  also: DIR is refused (ws_cache_dir_open)
 *   FLAGSHM_ENOMEM  out of memory
 * with the reason in ERR.
 */
int ws_cache_save(const char *dir, const json_t *doc, const ws_cache_meta *meta, char *err,
		  size_t errlen);

/*
 * Load DIR/document.pb into *doc (a new reference) and, when META is not
 * NULL, *meta (free with ws_cache_meta_free). MAX_BYTES bounds the file.
 * Returns 0, or:
 *   FLAGSHM_ENOSTORE  there is no cache file (a first start)
 *   FLAGSHM_ECORRUPT  the file is damaged: not a CacheFile, a checksum
 *                     mismatch, an undecodable document, larger than
 *                     MAX_BYTES, not a regular file (a FIFO), a symbolic
 *                     link; ERR says which. Ignore it.
 *   FLAGSHM_EINVAL    DIR is refused (ws_cache_dir_open)
 *   FLAGSHM_ESYS      it could not be read
 *   FLAGSHM_ENOMEM    out of memory
 */
int ws_cache_load(const char *dir, size_t max_bytes, json_t **doc, ws_cache_meta *meta, char *err,
		  size_t errlen);

#endif
