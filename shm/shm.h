/*
 * shm/shm.h - store names, the control object, and the publish/map
 * protocol between the one writer and any number of readers.
 *
 * Objects of store S (POSIX shared memory, /dev/shm on Linux):
 *   /flagshm.S      control object (fs_ctl), mode 0644, never removed by the
 *                   writer: readers that mapped it keep following new writers.
 *   /flagshm.S.G    the immutable snapshot of generation G, mode 0444.
 *
 * Publish (writer, holding the store lock):
 *   1. create /flagshm.S.G with O_EXCL, write the whole snapshot, and check
 *      it reads back valid (size, checksum);
 *   2. store G into c_generation with release order;
 *   3. unlink generations older than G-1. G-1 stays for readers that read
 *      c_generation just before step 2 and have not opened it yet.
 * Map (reader): acquire-load c_generation; if it moved since the last map,
 * open /flagshm.S.G O_RDONLY, mmap PROT_READ, validate, swap in. If the
 * object is gone (the writer moved on twice meanwhile) reload and retry.
 *
 * A writer killed at any point leaves either the old generation current (a
 * partial /flagshm.S.G is never referenced; the next writer unlinks it) or
 * the new one complete. The store lock is an fcntl write lock on the
 * control object: the kernel drops it when the writer dies, and F_GETLK
 * names the process holding it.
 */
#ifndef FLAGSHM_SHM_SHM_H
#define FLAGSHM_SHM_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SHM_STORE_NAME_MAX 64
#define SHM_OBJ_NAME_MAX (SHM_STORE_NAME_MAX + 32)

typedef struct fs_ctl {
	uint32_t c_magic; /* FS_CTL_MAGIC */
	uint16_t c_version; /* FS_FORMAT_VERSION */
	uint16_t c_size;    /* sizeof(fs_ctl) */
	uint32_t c_fingerprint; /* FS_LAYOUT_FINGERPRINT */
	int32_t c_writer_pid;	/* last writer that opened the store */
	/* Release-stored by the writer after /flagshm.S.G is complete;
	 * readers acquire-load it before opening that object. */
	_Atomic uint64_t c_generation;
	_Atomic int64_t c_published_ms;
	uint8_t c_pad0[64 - 32];
	/* Written by the writer often; its own cache line so that the
	 * readers' c_generation line is not bounced. */
	_Atomic int64_t c_heartbeat_ms;
	_Atomic int64_t c_last_sync_ms;	  /* last successful source read */
	_Atomic int64_t c_stale_after_ms; /* 0 = never stale */
	uint8_t c_pad1[64 - 24];
	char c_last_error[256]; /* last rejected document, NUL-terminated */
	char c_sync_state[128]; /* writer-defined: etag, last event id */
} fs_ctl;

_Static_assert(sizeof(fs_ctl) == 512, "fs_ctl layout");
_Static_assert(__builtin_offsetof(fs_ctl, c_generation) == 16, "fs_ctl layout");

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

/* ----- writer side (writer/ only) */

typedef struct shm_writer {
	int ctl_fd;
	fs_ctl *ctl;
	char store[SHM_STORE_NAME_MAX + 1];
	uint64_t generation; /* last published */
} shm_writer;

/*
 * Create or open the control object, take the store lock, and remove what a
 * killed writer left (snapshot objects other than the current one). Returns
 * 0, FLAGSHM_ENAME, FLAGSHM_EBUSY ("held by pid N"), FLAGSHM_ECORRUPT (the
 * object is not a control object of this layout) or FLAGSHM_ESYS.
 */
int shm_writer_open(shm_writer *w, const char *store, char *err, size_t errlen);

/*
 * Publish SIZE bytes at SNAP (a compiled snapshot, header filled by the
 * compiler) as generation w->generation + 1: sets sh_generation and
 * sh_published_ms in SNAP, then runs the protocol above. On error nothing
 * changed for readers. Returns 0, FLAGSHM_ESYS (e.g. ENOSPC: /dev/shm full)
 * or FLAGSHM_EINVAL.
 */
int shm_writer_publish(shm_writer *w, void *snap, size_t size, char *err, size_t errlen);

/* Drop the lock and unmap; the published snapshot stays for readers. */
void shm_writer_close(shm_writer *w);

/* Remove the store's objects (flagshm-writer --remove). */
int shm_store_remove(const char *store, char *err, size_t errlen);

/* ----- reader side */

/* Map the control object read-only. Returns 0, FLAGSHM_ENAME,
 * FLAGSHM_ENOSTORE, FLAGSHM_ECORRUPT or FLAGSHM_ESYS. */
int shm_ctl_map(const char *store, const fs_ctl **out, char *err, size_t errlen);
void shm_ctl_unmap(const fs_ctl *ctl);

/* Map generation GEN read-only. Returns 0, FLAGSHM_ENOSTORE (gone: reload
 * the generation and retry), FLAGSHM_ECORRUPT (too small/large) or
 * FLAGSHM_ESYS. Validation of the bytes is the caller's (reader/snap.h). */
int shm_snap_map(const char *store, uint64_t gen, const void **base, size_t *size,
		 char *err, size_t errlen);
void shm_snap_unmap(const void *base, size_t size);

/* PID holding the store lock, 0 if none, <0 on error. */
int shm_lock_holder(const char *store);

#endif
