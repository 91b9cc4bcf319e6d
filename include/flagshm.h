/*
 * flagshm.h - read feature flags from a shared-memory store.
 *
 * A store is published by one flagshm-writer per host. Any number of
 * processes open it read-only and evaluate flags without locks, system
 * calls or allocation on the evaluation path. Every process sees the same
 * snapshot generation a few microseconds after it is published.
 *
 * Caveats, up front:
 *  - fork: a store opened before fork() keeps working in the child, with no
 *    call to make; the child sees every later generation. A view (below)
 *    held across fork() must be released in both processes.
 *  - threads: a store handle may be shared by any number of threads. A view
 *    belongs to the thread that acquired it: it pins its snapshot with a
 *    slot of that thread, and a release on another thread is refused.
 *  - memory: each process maps the current snapshot, and keeps an older
 *    one mapped while a view of its own holds it (only that one). /dev/shm
 *    must have room for two snapshots (the writer keeps the previous one
 *    for late readers).
 *  - trust: a reader maps only objects of a writer user it trusts (root,
 *    its own user, the packaged writer user, or FLAGSHM_WRITER_UID /
 *    flagshm_store_options.writer_user), regular files not writable by
 *    group or others; snapshot objects are mode 0444 and the control object
 *    0644. Readers open them O_RDONLY and map them PROT_READ, so no reader
 *    can change what another reader sees.
 *  - a snapshot whose header or table positions fail the checks at map
 *    (magic, version, layout, size, any table outside the object) is never
 *    used: the last good snapshot keeps serving, or, if there was none,
 *    results are ERROR with STORE_UNAVAILABLE. A flag whose records fail a
 *    check when it is first evaluated answers ERROR with SNAPSHOT_INVALID;
 *    the other flags are not affected.
 *
 * Errors: fallible calls return 0 or a negative FLAGSHM_E* code; see
 * flagshm_strerror(). No call prints anything.
 */
#ifndef FLAGSHM_H
#define FLAGSHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define FLAGSHM_API __attribute__((visibility("default")))
#else
#define FLAGSHM_API
#endif

/* The version of this header; flagshm_version() gives the library's. */
#define FLAGSHM_VERSION_MAJOR 0
#define FLAGSHM_VERSION_MINOR 2
#define FLAGSHM_VERSION_PATCH 0
#define FLAGSHM_VERSION_HEX                                                   \
	((FLAGSHM_VERSION_MAJOR << 16) | (FLAGSHM_VERSION_MINOR << 8) |       \
	 FLAGSHM_VERSION_PATCH)
/* The snapshot format this header's library reads (flagshm_format_version()
 * gives the library's; programs that never map a snapshot print this). */
#define FLAGSHM_FORMAT_VERSION 1u

/*
 * Error codes returned by fallible calls: one table, in a band of their own
 * (-30901 and down) so that they never collide with a -errno value. Each
 * entry: name, value, message (flagshm_strerror).
 */
#define FLAGSHM_ERRNO_MAP(XX)                                                         \
	XX(EINVAL, -30901, "invalid argument")                                        \
	XX(ENAME, -30902, "invalid store name (1-64 of [A-Za-z0-9_-])")               \
	XX(ENOSTORE, -30903, "no such store")                                         \
	XX(ECORRUPT, -30904, "shared memory failed validation")                       \
	XX(ESYS, -30905, "system call failed")                                        \
	XX(ENOMEM, -30906, "out of memory")                                           \
	XX(EBUSY, -30907, "another writer holds the store")                           \
	XX(EUNAVAIL, -30908, "nothing published in the store")                        \
	XX(EFULL, -30909, "context is full")                                          \
	XX(ENOTFOUND, -30910, "flag not found")                                       \
	XX(EUNTRUSTED, -30911, "store object not owned by a trusted writer user")

/*
 *   FLAGSHM_EINVAL     a bad argument: NULL, empty key, ...
 *   FLAGSHM_ENAME      the store name is not [A-Za-z0-9_-]{1,64}
 *   FLAGSHM_ENOSTORE   no such store: no writer ever created it
 *   FLAGSHM_ECORRUPT   shared memory failed validation
 *   FLAGSHM_ESYS       a system call failed; see errno / the message
 *   FLAGSHM_ENOMEM     out of memory
 *   FLAGSHM_EBUSY      another writer holds the store
 *   FLAGSHM_EUNAVAIL   the store exists but nothing is published
 *   FLAGSHM_EFULL      the context has FLAGSHM_CTX_MAX attributes
 *   FLAGSHM_ENOTFOUND  no flag with that key
 *   FLAGSHM_EUNTRUSTED an object of the store is not owned by a trusted
 *                      writer user, or is not a regular file
 */
typedef enum flagshm_errno {
#define FLAGSHM_ERRNO_ENUM_(name, value, msg) FLAGSHM_##name = (value),
	FLAGSHM_ERRNO_MAP(FLAGSHM_ERRNO_ENUM_)
#undef FLAGSHM_ERRNO_ENUM_
} flagshm_errno;

/* "0.2.0": the library's version (may differ from the header's). */
FLAGSHM_API const char *flagshm_version(void);
/* The snapshot format version the library reads. */
FLAGSHM_API unsigned flagshm_format_version(void);

/* A static string describing err ("unknown error" for unknown codes). */
FLAGSHM_API const char *flagshm_strerror(int err);
/* "FLAGSHM_EINVAL", ...; "unknown" for a value not in the table. */
FLAGSHM_API const char *flagshm_err_name(int err);

/* ---------------------------------------------------------------- store */

typedef struct flagshm_store flagshm_store;

/* Called with one line (no newline) for each notable event: a snapshot that
 * failed validation, a remap. Called from whichever thread saw it. Control
 * characters from the store are escaped in it ("\x1b"). */
typedef void (*flagshm_log_fn)(void *ud, const char *msg);

/*
 * Open store NAME read-only. On success *out is a handle for any number of
 * threads. A store that no writer has created yet (a worker started before
 * its writer, or a writer restart that removed the store) still opens: the
 * handle looks for it every 250 ms, evaluations return the fallback with
 * STORE_UNAVAILABLE until it exists and has published, and then serve it,
 * with no call to make. Returns 0, or:
 *   FLAGSHM_EINVAL   name or out is NULL
 *   FLAGSHM_ENAME    name is not 1-64 of [A-Za-z0-9_-]
 *   FLAGSHM_ENOSTORE (only with FLAGSHM_OPEN_STRICT) no writer has created
 *                    this store
 *   FLAGSHM_ECORRUPT the control object is not a flagshm control object
 *   FLAGSHM_EUNTRUSTED the control object is not owned by a trusted writer
 *                    user (root, this process's user, the packaged writer
 *                    user, or FLAGSHM_WRITER_UID when set), is writable by
 *                    group or others, or is not a regular file
 *   FLAGSHM_ESYS     shm_open/mmap failed (permissions, fd limit)
 *   FLAGSHM_ENOMEM   out of memory
 * A store that exists but has not published yet opens fine; evaluations
 * return the fallback with STORE_UNAVAILABLE until it publishes.
 */
FLAGSHM_API int flagshm_open(const char *name, flagshm_store **out);

/* As flagshm_open, with a log callback (may be NULL) and a buffer that gets
 * a message naming what failed (may be NULL). */
FLAGSHM_API int flagshm_open_ex(const char *name, flagshm_log_fn log, void *log_ud,
				flagshm_store **out, char *err, size_t errlen);

/* Options of flagshm_store_open. Set size to sizeof(flagshm_store_options):
 * fields added later are then taken as their defaults by this library. */
typedef struct flagshm_store_options {
	size_t size;
	flagshm_log_fn log; /* may be NULL */
	void *log_ud;
	/* The writer user whose objects this handle maps (besides root): a
	 * user name or a decimal uid. NULL: FLAGSHM_WRITER_UID from the
	 * environment when set, else this process's own user and the writer
	 * user the library was built for (the Debian package's). */
	const char *writer_user;
	unsigned flags; /* FLAGSHM_OPEN_* */
} flagshm_store_options;

/* Fail with FLAGSHM_ENOSTORE when no writer has created the store yet,
 * instead of returning a handle that attaches once the writer has. */
#define FLAGSHM_OPEN_STRICT 0x1u
/* Do not count this handle's evaluations and outcomes (counting is on by
 * default; docs/metrics.md). flagshm_view_flags_json and the evaluation
 * hook work all the same. */
#define FLAGSHM_OPEN_NO_COUNT 0x2u

/* As flagshm_open_ex, with options (OPTS may be NULL for the defaults).
 * Also returns FLAGSHM_EINVAL when opts->writer_user is not a uid or a
 * known user name. */
FLAGSHM_API int flagshm_store_open(const char *name, const flagshm_store_options *opts,
				   flagshm_store **out, char *err, size_t errlen);

/* Close *s and set *s to NULL (NULL or an already closed handle is
 * ignored). All views of it must be released first: a snapshot a view
 * still pins stays mapped until that view's release, but the handle is
 * gone. */
FLAGSHM_API void flagshm_close(flagshm_store **s);

typedef struct flagshm_info {
	uint64_t generation;   /* 0 = nothing published */
	int64_t published_ms;  /* Unix ms of that publish */
	uint32_t flag_count;
	uint64_t snapshot_bytes;
	int32_t writer_pid;    /* 0 = none recorded */
	bool writer_alive;     /* writer_pid exists and holds the store */
	int64_t heartbeat_ms;  /* writer's last heartbeat, Unix ms; 0 = none */
	char environment[64];  /* --environment of the writer, "" if none */
} flagshm_info;

/* Fill *info about the store's current snapshot. Returns 0, or:
 *   FLAGSHM_EINVAL   s or info is NULL, or s is not an open store handle
 *   FLAGSHM_EUNAVAIL nothing valid is published (the writer fields are
 *                    filled all the same)
 * For a store of another user, writer_alive is judged by the heartbeat
 * (at most 3 s old), since its lock cannot be inspected. */
FLAGSHM_API int flagshm_store_info(flagshm_store *s, flagshm_info *info);

/*
 * How old the store's data is, in milliseconds, by this host's clock:
 * *since_sync_ms since the writer's last successful sync with its source
 * (a load of its file, a 200 or 304 from its control plane, bytes on its
 * event stream; after a cold start, the save time of the persisted
 * document), *since_heartbeat_ms since the writer's last heartbeat (it
 * beats every second while it runs). Either pointer may be NULL; a value
 * is -1 when it never happened. Returns 0, or FLAGSHM_EINVAL (s is NULL or
 * not a store handle).
 */
FLAGSHM_API int flagshm_store_age(flagshm_store *s, int64_t *since_sync_ms,
				  int64_t *since_heartbeat_ms);

/* -------------------------------------------------------------- context */

#define FLAGSHM_CTX_MAX 32

enum flagshm_attr_type {
	FLAGSHM_ATTR_STRING = 1,
	FLAGSHM_ATTR_NUMBER,
	FLAGSHM_ATTR_BOOL,
	FLAGSHM_ATTR_LIST, /* list of strings */
};

typedef struct flagshm_attr {
	const char *name;
	/* strlen(name), set by the flagshm_ctx_* builders so that lookups
	 * compare lengths first; 0 in a hand-filled attribute means unknown. */
	uint32_t name_len;
	int type; /* enum flagshm_attr_type */
	union {
		struct { const char *ptr; size_t len; } str;
		double num;
		bool b;
		struct { const char *const *items; size_t n; } list;
	} u;
} flagshm_attr;

/*
 * The evaluation context: up to FLAGSHM_CTX_MAX attributes, on the caller's
 * stack. It borrows every string and list it is given: they must outlive
 * the evaluations that use the context. "userId" is the targeting key and
 * the default bucketing attribute.
 */
typedef struct flagshm_ctx {
	unsigned n;
	flagshm_attr attrs[FLAGSHM_CTX_MAX];
} flagshm_ctx;

FLAGSHM_API void flagshm_ctx_init(flagshm_ctx *c);
/* Set an attribute, replacing one of the same name. Return 0, or:
 *   FLAGSHM_EINVAL   c, name or value is NULL (for a list: items, or one of
 *                    its n strings)
 *   FLAGSHM_EFULL    c has FLAGSHM_CTX_MAX attributes and none is NAME */
FLAGSHM_API int flagshm_ctx_string(flagshm_ctx *c, const char *name, const char *value);
FLAGSHM_API int flagshm_ctx_number(flagshm_ctx *c, const char *name, double value);
FLAGSHM_API int flagshm_ctx_bool(flagshm_ctx *c, const char *name, bool value);
FLAGSHM_API int flagshm_ctx_list(flagshm_ctx *c, const char *name,
				 const char *const *items, size_t n);

/* --------------------------------------------------------------- result */

typedef enum flagshm_reason {
	FLAGSHM_REASON_ERROR = 0,
	FLAGSHM_REASON_DISABLED,
	FLAGSHM_REASON_PREREQUISITE_FAILED,
	FLAGSHM_REASON_RULE_MATCH,
	FLAGSHM_REASON_SPLIT,
	FLAGSHM_REASON_DEFAULT_ROLLOUT,
	FLAGSHM_REASON_DEFAULT_OFF,
} flagshm_reason;

typedef enum flagshm_error_code {
	FLAGSHM_CODE_NONE = 0,
	FLAGSHM_CODE_STORE_UNAVAILABLE,
	FLAGSHM_CODE_FLAG_NOT_FOUND,
	FLAGSHM_CODE_TYPE_MISMATCH,
	FLAGSHM_CODE_SNAPSHOT_INVALID, /* a record failed a bounds check */
} flagshm_error_code;

typedef enum flagshm_type {
	FLAGSHM_TYPE_NONE = 0, /* only with reason ERROR */
	FLAGSHM_TYPE_BOOL,
	FLAGSHM_TYPE_NUMBER,
	FLAGSHM_TYPE_STRING,
	FLAGSHM_TYPE_JSON, /* value.str holds JSON text */
} flagshm_type;

typedef struct flagshm_result {
	flagshm_type type;
	union {
		bool b;
		double num;
		struct { const char *ptr; size_t len; } str; /* NUL-terminated */
	} value;
	flagshm_reason reason;
	const char *rule_id; /* NULL unless RULE_MATCH or SPLIT */
	flagshm_error_code error_code;
	uint64_t generation; /* 0 when the store was unavailable */
	/* The writer's last successful sync with its control plane is older
	 * than the threshold it published (flagshm-writer --stale-after):
	 * the value may be out of date. Computed once per view acquire;
	 * never set for a store kept from a file. */
	bool stale;
} flagshm_result;

/* "RULE_MATCH", "FLAG_NOT_FOUND", ...: static strings. */
FLAGSHM_API const char *flagshm_reason_name(flagshm_reason r);
FLAGSHM_API const char *flagshm_error_code_name(flagshm_error_code c);

/* ---------------------------------------------------------------- views */

/*
 * A view pins one snapshot, so that every flag a request reads comes from
 * one generation. Acquire at the start of a request, release at its end, on
 * the same thread. Views nest and cost a few nanoseconds. Holding a view
 * never delays the writer; it only keeps that snapshot mapped in this
 * process. Strings in results from a view are valid until its release.
 */
typedef struct flagshm_view {
	uint32_t magic;
	flagshm_store *store;
	const void *snap; /* internal: the pinned snapshot, NULL if none */
	uint64_t generation;
	bool stale; /* as flagshm_result.stale, at acquire */
	void *pin_; /* internal: what holds the snapshot mapped */
	void *trail_; /* internal: the flags evaluated in it (NULL: none kept) */
} flagshm_view;

/* Returns 0, or:
 *   FLAGSHM_EINVAL   s or v is NULL, or s is not an open store handle
 * A view of a store with nothing valid published (or not created yet) is
 * still a view: its evaluations give STORE_UNAVAILABLE. */
FLAGSHM_API int flagshm_view_acquire(flagshm_store *s, flagshm_view *v);
/* Release V on the thread that acquired it. A view never acquired, or
 * released twice, is ignored; one acquired on another thread is refused
 * (the store's log callback says so) and stays valid. */
FLAGSHM_API void flagshm_view_release(flagshm_view *v);

/*
 * Evaluate flag KEY for CTX (NULL = empty context) in view V and fill *out.
 * Returns 0 when a value came from the snapshot, else a negative code, and
 * *out says why (reason ERROR and its error_code, value unset):
 *   FLAGSHM_EINVAL    v, key or out is NULL
 *   FLAGSHM_EUNAVAIL  STORE_UNAVAILABLE
 *   FLAGSHM_ENOTFOUND FLAG_NOT_FOUND
 *   FLAGSHM_ECORRUPT  SNAPSHOT_INVALID
 */
FLAGSHM_API int flagshm_evaluate(const flagshm_view *v, const char *key,
				 const flagshm_ctx *ctx, flagshm_result *out);

/* Typed shortcuts: the flag's value, or FALLBACK on any error (including a
 * flag of another type: TYPE_MISMATCH). String results live until release. */
FLAGSHM_API bool flagshm_view_bool(const flagshm_view *v, const char *key,
				   const flagshm_ctx *ctx, bool fallback);
FLAGSHM_API double flagshm_view_number(const flagshm_view *v, const char *key,
				       const flagshm_ctx *ctx, double fallback);
FLAGSHM_API const char *flagshm_view_string(const flagshm_view *v, const char *key,
					    const flagshm_ctx *ctx, const char *fallback);
FLAGSHM_API const char *flagshm_view_json(const flagshm_view *v, const char *key,
					  const flagshm_ctx *ctx, const char *fallback);

/* As a typed result, with the reason and error code: out may be NULL. */
FLAGSHM_API bool flagshm_view_bool_detail(const flagshm_view *v, const char *key,
					  const flagshm_ctx *ctx, bool fallback,
					  flagshm_result *out);

/* -------------------------------------------------- pre-resolved flags */

/*
 * A handle for a hot flag: evaluations through it skip the key lookup
 * (hash and index probe) while the flag stays at the same place, and fall
 * back to a lookup when a new generation moved it. Initialise once (e.g. a
 * static per call site); threads may share it. KEY is borrowed: it must
 * outlive the handle (a string literal is the usual case).
 */
typedef struct flagshm_handle {
	uint32_t magic;
	uint32_t hint; /* internal: index where the key was last found */
	const char *key;
	size_t len;
} flagshm_handle;

/* Returns 0, or FLAGSHM_EINVAL (NULL or empty key). */
FLAGSHM_API int flagshm_handle_init(flagshm_handle *h, const char *key);
/* As flagshm_evaluate, with the same returns; a handle that was never
 * initialised gives FLAGSHM_EINVAL with FLAG_NOT_FOUND. */
FLAGSHM_API int flagshm_evaluate_handle(const flagshm_view *v, flagshm_handle *h,
					const flagshm_ctx *ctx, flagshm_result *out);
FLAGSHM_API bool flagshm_view_bool_handle(const flagshm_view *v, flagshm_handle *h,
					  const flagshm_ctx *ctx, bool fallback);
FLAGSHM_API bool flagshm_bool_handle(flagshm_store *s, flagshm_handle *h,
				     const flagshm_ctx *ctx, bool fallback);

/* ------------------------------------------- one-shot, store-level calls */

/* Each is a view acquired and released around one evaluation. */
FLAGSHM_API bool flagshm_bool(flagshm_store *s, const char *key,
			      const flagshm_ctx *ctx, bool fallback);
FLAGSHM_API double flagshm_number(flagshm_store *s, const char *key,
				  const flagshm_ctx *ctx, double fallback);
/* String and JSON values are copied into BUF (BUFLEN bytes, NUL included)
 * and BUF is returned; FALLBACK is returned on any error and when the value
 * does not fit. */
FLAGSHM_API const char *flagshm_string(flagshm_store *s, const char *key,
				       const flagshm_ctx *ctx, const char *fallback,
				       char *buf, size_t buflen);
FLAGSHM_API const char *flagshm_json(flagshm_store *s, const char *key,
				     const flagshm_ctx *ctx, const char *fallback,
				     char *buf, size_t buflen);

/* ------------------------------------------- counting (docs/metrics.md) */

/*
 * Every evaluation counts itself (per flag, variant and reason; errors per
 * flag and error code) into memory of this process that the store's writer
 * sums: no lock, no system call. The counts show in `flagshm stats` and the
 * writer's /metrics. Off per handle with FLAGSHM_OPEN_NO_COUNT.
 *
 * Record the outcome of the request that view V served (OK: success or
 * not; SECONDS: its duration) against every flag and variant evaluated in
 * V (the first 64 distinct ones), in a histogram with the bounds 0.001,
 * 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 s.
 * Call it once per request, before the release. Returns 0, or:
 *   FLAGSHM_EINVAL  V is not an acquired view, or SECONDS is negative or
 *                   not a number
 * A view with counting off (FLAGSHM_OPEN_NO_COUNT) returns 0 and records
 * nothing.
 */
FLAGSHM_API int flagshm_view_outcome(const flagshm_view *v, bool ok, double seconds);

/*
 * Write into BUF (LEN bytes, NUL included) a JSON object of the flags
 * evaluated in V and the value each first got, in order of first
 * evaluation, at most 64 (`{"new-checkout":true,"checkout-button":"green"}`),
 * for tagging analytics events. Evaluations that failed are left out.
 * Returns 0, or:
 *   FLAGSHM_EINVAL  V is not an acquired view, BUF is NULL or LEN < 3
 *   FLAGSHM_EFULL   BUF is too small: it holds the members that fit, as a
 *                   whole object
 */
FLAGSHM_API int flagshm_view_flags_json(const flagshm_view *v, char *buf, size_t len);

/* What the evaluation hook gets; valid during the call only. */
typedef struct flagshm_eval_event {
	const char *key;		/* as asked (may be a key not in the snapshot) */
	const flagshm_result *result;	/* value, reason, error code, generation */
	const char *variant;		/* as counted: value text, "rule:<id>", "(none)" */
	flagshm_reason reason;
	flagshm_error_code error;	/* FLAGSHM_CODE_NONE on success */
} flagshm_eval_event;

typedef void (*flagshm_hook_fn)(void *ud, const flagshm_eval_event *ev);

/*
 * Call FN(UD, event) after every evaluation through handle S, on the
 * evaluating thread (for OpenTelemetry or error-tracker integrations;
 * docs/metrics.md maps the fields to the feature_flag.evaluation event).
 * FN NULL turns it off (the default: then an evaluation pays one branch).
 * FN must not acquire or release views of S. Returns 0, or FLAGSHM_EINVAL
 * (S is not an open store handle).
 */
FLAGSHM_API int flagshm_store_set_hook(flagshm_store *s, flagshm_hook_fn fn, void *ud);

#ifdef __cplusplus
}
#endif
#endif
