/*
 * shm/shm.h - store names, the control object, and the publish/map
 * protocol between the one writer and any number of readers.
 *
 * Objects of store S (POSIX shared memory, /dev/shm on Linux), all owned by
 * the writer's user (docs/architecture.md, "Who can change what readers see"):
 *   /flagshm.S.lock the store lock, mode 0600: only the writer's user can
 *                   open it, so nobody else can hold a lock on it.
 *   /flagshm.S      control object (fs_ctl), mode 0644, never removed by the
 *                   writer: readers that mapped it keep following new writers.
 *   /flagshm.S.G    the immutable snapshot of generation G, mode 0444.
 * Readers map an object only when it is a regular file owned by a trusted
 * writer user (shm_trust) and not writable by group or others; a snapshot
 * must have the control object's owner. The writer writes only objects its
 * own user owns, and creates snapshots with O_EXCL.
 *
 * Publish (writer, holding the store lock):
 *   1. create /flagshm.S.G with O_EXCL (a number held by someone else is
 *      skipped), write the whole snapshot, and check it reads back valid;
 *   2. store G into ctl_generation with release order;
 *   3. unlink the generation that was current before the previous one. The
 *      previous one stays for readers that read ctl_generation just before
 *      step 2 and have not opened it yet.
 * Map (reader): acquire-load ctl_generation; if it moved since the last map,
 * open /flagshm.S.G O_RDONLY, check owner and type, mmap PROT_READ, validate,
 * swap in. If the object is gone (the writer moved on twice meanwhile)
 * reload and retry.
 *
 * A writer killed at any point leaves either the old generation current (a
 * partial /flagshm.S.G is never referenced; the next writer unlinks it) or
 * the new one complete. The store lock is an open-file-description lock on
 * /flagshm.S.lock: the kernel drops it when the writer dies.
 */
#ifndef FLAGSHM_SHM_SHM_H
#define FLAGSHM_SHM_SHM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define SHM_STORE_NAME_MAX 64
#define SHM_OBJ_NAME_MAX (SHM_STORE_NAME_MAX + 32)

/*
 * The control object. Every field another process reads while the writer
 * writes it is a C11 atomic, accessed only with atomic_*_explicit and a
 * comment naming its pair; the writer's side is in shm/publish.c and
 * shm/ctl.c, nowhere else.
 */
typedef struct fs_ctl {
	/* Release-stored last at creation (after every field below is set);
	 * acquire-loaded first by readers (shm_ctl_map). */
	_Atomic uint32_t ctl_magic; /* FS_CTL_MAGIC */
	uint16_t ctl_version; /* FS_FORMAT_VERSION */
	uint16_t ctl_size;    /* sizeof(fs_ctl) */
	uint32_t ctl_fingerprint; /* SHM_CTL_FINGERPRINT */
	_Atomic int32_t ctl_writer_pid; /* last writer that opened the store; relaxed */
	/* Release-stored by the writer after /flagshm.S.G is complete;
	 * readers acquire-load it before opening that object. */
	_Atomic uint64_t ctl_generation;
	_Atomic int64_t ctl_published_ms;
	uint8_t ctl_pad0[64 - 32];
	/* Written by the writer often; its own cache line so that the
	 * readers' ctl_generation line is not bounced. */
	_Atomic int64_t ctl_heartbeat_ms;
	_Atomic int64_t ctl_last_sync_ms;	  /* last successful source read */
	_Atomic int64_t ctl_stale_after_ms; /* 0 = never stale */
	/* Sequence counter of the two text fields below: odd while the writer
	 * rewrites one (shm_ctl_text_set / shm_ctl_text_get, shm/ctl.c). */
	_Atomic uint32_t ctl_text_seq;
	uint8_t ctl_pad1[64 - 28];
	/* Text, under ctl_text_seq: relaxed byte accesses (shm/ctl.c). */
	_Atomic char ctl_last_error[256]; /* last rejected document, NUL-terminated */
	_Atomic char ctl_sync_state[128]; /* writer-defined: etag, last event id */
} fs_ctl;

/* The control object's layout fingerprint: every field by offset and size,
 * each with its own weight (as FS_LAYOUT_FINGERPRINT for snapshots). */
#define SHM_CTL_FIELDS(X)                                                      \
	X(3u, ctl_magic) X(5u, ctl_version) X(7u, ctl_size) X(9u, ctl_fingerprint) \
	X(11u, ctl_writer_pid) X(13u, ctl_generation) X(15u, ctl_published_ms)  \
	X(17u, ctl_heartbeat_ms) X(19u, ctl_last_sync_ms) X(21u, ctl_stale_after_ms) \
	X(23u, ctl_text_seq) X(25u, ctl_last_error) X(27u, ctl_sync_state)
#define SHM_CTL_TERM_(w, f)                                                    \
	+(uint32_t)(w) * 2246822519u *                                         \
		((uint32_t)offsetof(fs_ctl, f) * 1024u + (uint32_t)sizeof(((fs_ctl *)0)->f))
#define SHM_CTL_FINGERPRINT ((uint32_t)(sizeof(fs_ctl) SHM_CTL_FIELDS(SHM_CTL_TERM_)))

/* The atomics another process reads must be lock-free: a lock inside an
 * atomic would live in one process's memory, not in the shared mapping. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
_Static_assert(ATOMIC_POINTER_LOCK_FREE == 2, "pointer atomics must be lock-free");
_Static_assert(sizeof(_Atomic char) == 1, "text fields are bytes");
_Static_assert(sizeof(fs_ctl) == 512, "fs_ctl layout");
_Static_assert(__builtin_offsetof(fs_ctl, ctl_generation) == 16, "fs_ctl layout");
_Static_assert(__builtin_offsetof(fs_ctl, ctl_heartbeat_ms) == 64, "fs_ctl layout");
_Static_assert(__builtin_offsetof(fs_ctl, ctl_last_error) == 128, "fs_ctl layout");

/* Where POSIX shared memory objects live on Linux, for messages and scans. */
#define SHM_DIR "/dev/shm"

/* Format a message into ERR (ignored when ERR is NULL or ERRLEN 0). */
void shm_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* 0 when NAME is 1-64 of [A-Za-z0-9_-]; else FLAGSHM_ENAME and a message. */
int shm_name_check(const char *name, char *err, size_t errlen);
/* "/flagshm.NAME" and "/flagshm.NAME.GEN" into buf (SHM_OBJ_NAME_MAX). */
void shm_ctl_name(char *buf, size_t n, const char *store);
void shm_snap_name(char *buf, size_t n, const char *store, uint64_t gen);
/* "/flagshm.NAME.lock". */
void shm_lock_name(char *buf, size_t n, const char *store);

/* ----- trust (shm/trust.c) */

#define SHM_TRUST_MAX 4
/* The users whose objects a reader maps. */
typedef struct shm_trust {
	unsigned n;
	uid_t uid[SHM_TRUST_MAX];
} shm_trust;

/* FLAGSHM_WRITER_UID (a uid or user name) when set: root and that user;
 * else root, this process's effective user, and the writer user set at
 * build time (meson -Dwriter_user). 0 or FLAGSHM_EINVAL with a message. */
int shm_trust_default(shm_trust *t, char *err, size_t errlen);
/* Root and the user SPEC (a uid or user name). 0 or FLAGSHM_EINVAL. */
int shm_trust_set(shm_trust *t, const char *spec, char *err, size_t errlen);
bool shm_trust_has(const shm_trust *t, uid_t uid);
/* "uid 1001 (alice)", or "uid 1001" for a uid with no passwd entry. */
void shm_uid_describe(char *buf, size_t n, uid_t uid);

/* Open object NAME ("/flagshm...") with FLAGS (O_RDONLY, O_RDWR, O_CREAT,
 * O_EXCL) plus O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC, mode 0600 when created, and
 * fstat it. 0 (a regular file), FLAGSHM_ENOSTORE (no message), FLAGSHM_EBUSY
 * (O_EXCL and it exists; no message), FLAGSHM_EUNTRUSTED (a symlink or not a
 * regular file) or FLAGSHM_ESYS. */
int shm_obj_open(const char *name, int flags, int *fdp, struct stat *st, char *err,
		 size_t errlen);
/* 0 when ST (of object NAME) is owned by a user in T and not writable by
 * group or others; else FLAGSHM_EUNTRUSTED and a message naming the owner. */
int shm_obj_check(const char *name, const struct stat *st, const shm_trust *t, char *err,
		  size_t errlen);

/* ----- control-object text fields (shm/ctl.c) */

typedef enum shm_ctl_text {
	SHM_TEXT_LAST_ERROR,
	SHM_TEXT_SYNC_STATE,
} shm_ctl_text;

/* Writer: set field F to TEXT (cut to the field's size). Readers never see
 * a mix of two texts. */
void shm_ctl_text_set(fs_ctl *ctl, shm_ctl_text f, const char *text);
/* Writer: the heartbeat (now), the time of the last successful read of the
 * source, and the staleness threshold readers apply (0 = never stale). Each
 * a relaxed store: informational values, each read alone. */
void shm_ctl_beat(fs_ctl *ctl);
void shm_ctl_synced(fs_ctl *ctl, int64_t unix_ms);
void shm_ctl_set_stale_after(fs_ctl *ctl, int64_t ms);

/* Reader: copy field F into BUF (NUL-terminated). Returns 0, or -1 when
 * the writer kept rewriting it for the whole bounded retry (BUF is ""). */
int shm_ctl_text_get(const fs_ctl *ctl, shm_ctl_text f, char *buf, size_t n);

/* ----- writer side (writer/ only) */

typedef struct shm_writer {
	int lock_fd;
	fs_ctl *ctl;
	char store[SHM_STORE_NAME_MAX + 1];
	uint64_t generation; /* last published (current) */
	uint64_t previous;   /* the one current before it, still linked; 0 = none */
	uint64_t next;	     /* the next number to try (above all of ours) */
	/* Something worth a log line that did not stop the call (a foreign
	 * leftover, a skipped generation number): the caller logs and clears
	 * it. The library never prints. */
	char warning[320];
} shm_writer;

/*
 * Take the store lock (creating /flagshm.S.lock), create or open the control
 * object, and remove what a killed writer left (snapshot objects of ours
 * other than the current one). Objects that another user owns are never
 * written: a squatted lock or control object is refused with a message naming
 * its owner and how to remove it; a foreign generation object is a warning.
 * Returns 0, FLAGSHM_ENAME, FLAGSHM_EBUSY ("held by pid N"), FLAGSHM_EUNTRUSTED
 * (squatted), FLAGSHM_ECORRUPT (not a control object of this layout) or
 * FLAGSHM_ESYS.
 */
int shm_writer_open(shm_writer *w, const char *store, char *err, size_t errlen);

/*
 * Publish SIZE bytes at SNAP (a compiled snapshot, header filled by the
 * compiler) as the next free generation number (w->next, skipping numbers
 * whose object someone else holds): sets sh_generation and sh_published_ms
 * in SNAP, then runs the protocol above. On error nothing changed for
 * readers. Returns 0, FLAGSHM_ESYS (e.g. ENOSPC: /dev/shm full; the numbers
 * are exhausted) or FLAGSHM_EINVAL.
 */
int shm_writer_publish(shm_writer *w, void *snap, size_t size, char *err, size_t errlen);

/* Drop the lock and unmap; the published snapshot stays for readers. */
void shm_writer_close(shm_writer *w);

/* Remove the store's objects (flagshm-writer --remove). */
int shm_store_remove(const char *store, char *err, size_t errlen);

/* ----- reader side */

/* Map the control object read-only if a user in T owns it (its owner in
 * *owner). Returns 0, FLAGSHM_ENAME, FLAGSHM_ENOSTORE, FLAGSHM_EUNTRUSTED,
 * FLAGSHM_ECORRUPT or FLAGSHM_ESYS. */
int shm_ctl_map_trusted(const char *store, const shm_trust *t, const fs_ctl **out,
			uid_t *owner, char *err, size_t errlen);
/* The same with shm_trust_default(). */
int shm_ctl_map(const char *store, const fs_ctl **out, char *err, size_t errlen);
void shm_ctl_unmap(const fs_ctl *ctl);

/* Map generation GEN read-only; it must be owned by OWNER (the control
 * object's owner). Returns 0, FLAGSHM_ENOSTORE (gone: reload the generation
 * and retry), FLAGSHM_EUNTRUSTED, FLAGSHM_ECORRUPT (too small/large) or
 * FLAGSHM_ESYS. Validation of the bytes is the caller's (reader/snap.h). */
int shm_snap_map(const char *store, uid_t owner, uint64_t gen, const void **base, size_t *size,
		 char *err, size_t errlen);
void shm_snap_unmap(const void *base, size_t size);

/* PID holding the store lock, 0 if none, <0 on error: FLAGSHM_EUNTRUSTED when this user may not open the lock object (readers of
 * another user: judge by the heartbeat instead), FLAGSHM_EBUSY when held by
 * a writer that has not named itself yet, FLAGSHM_ESYS. */
int shm_lock_holder(const char *store);

#endif
