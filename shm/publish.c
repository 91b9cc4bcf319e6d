/*
 * shm/publish.c - the writer's side of the protocol (see shm.h): take the
 * store, recover from a killed writer, publish generations, remove a store.
 *
 * Only writer/ calls these. Readers never wait for anything here: publish
 * creates a new object and flips one 64-bit word; it never touches an
 * object a reader may have mapped, except to unlink it (the reader's
 * mapping stays valid until it unmaps).
 *
 * The store lock is an open-file-description lock (F_OFD_SETLK), not a
 * classic POSIX record lock: a classic lock belongs to the process and is
 * dropped when the process closes *any* descriptor of the file, so a
 * writer process that also opened the store as a reader (tests, tools,
 * a future embedded writer) would silently lose it. An OFD lock belongs to
 * the writer's own descriptor; the kernel still drops it when the writer
 * dies. OFD locks report no pid (F_OFD_GETLK gives -1), so the holder
 * writes its pid into ctl_writer_pid right after taking the lock.
 */
#include "shm.h"
#include "clock.h"
#include "counters.h"
#include "format.h"
#include "flagshm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CTL_MODE 0644
#define SNAP_MODE 0444
/* Generation names held by other users that one publish skips at most. */
#define PUBLISH_SKIPS_MAX 64


/* The process umask, applied to the modes below with an explicit fchmod so
 * that the result does not depend on how shm_open treats it, and so that
 * an existing control object is brought to the same mode. umask(2) can
 * only be read by setting it: the writer is single-threaded here. A umask
 * of 027 gives 0640/0440, the group model of docs/architecture.md. */
static mode_t masked(mode_t mode)
{
	mode_t um = umask(0);
	umask(um);
	return mode & ~um;
}

/* "flagshm.STORE." followed by digits only: a name of a generation object
 * of STORE (possibly a number too large to be one of ours). Sets *gen, or 0
 * when the number does not fit in 64 bits. */
static bool gen_entry(const char *ent, const char *store, uint64_t *gen)
{
	size_t sl = strlen(store);
	if (strncmp(ent, "flagshm.", 8) != 0 || strncmp(ent + 8, store, sl) != 0 ||
	    ent[8 + sl] != '.')
		return false;
	const char *d = ent + 8 + sl + 1;
	if (*d < '0' || *d > '9')
		return false;
	uint64_t g = 0;
	bool fits = true;
	for (; *d; d++) {
		if (*d < '0' || *d > '9')
			return false;
		if (g > (UINT64_MAX - (uint64_t)(*d - '0')) / 10)
			fits = false;
		else
			g = g * 10 + (uint64_t)(*d - '0');
	}
	*gen = fits ? g : 0;
	return true;
}

/* Append to w->warning ("; " between), cut at its size. */
static void warn(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void warn(char *buf, size_t n, const char *fmt, ...)
{
	size_t o = strlen(buf);
	if (o + 3 >= n)
		return;
	if (o) {
		memcpy(buf + o, "; ", 3);
		o += 2;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + o, n - o, fmt, ap);
	va_end(ap);
}

/* The message for an object under a store's name that this user did not
 * create: who owns it and how to get rid of it. */
static void squat_message(char *err, size_t errlen, const char *store, const char *name,
			  const struct stat *st)
{
	char who[64], me[64];
	shm_uid_describe(who, sizeof who, st->st_uid);
	shm_uid_describe(me, sizeof me, geteuid());
	shm_seterr(err, errlen,
		   "%s%s exists but was not created by this writer's user: it is owned by %s, "
		   "mode 0%03o, %s (this writer runs as %s); it will not be used. If that is not "
		   "another writer's store, remove it (as root or that user: flagshm-writer --remove "
		   "--store %s) and start again",
		   SHM_DIR, name, who, (unsigned)(st->st_mode & 07777),
		   S_ISREG(st->st_mode) ? "a regular file" : "not a regular file", me, store);
}

/* Open object NAME for writing, creating it (mode 0600 until the caller
 * sets the final mode) when absent. An existing
 * object must be a regular file that our own user owns and that group and
 * others cannot write: anything else is somebody else's (squatting) and
 * gives FLAGSHM_EUNTRUSTED with a message, untouched. FLAGSHM_ENOSTORE when
 * it vanished between the two opens (the caller retries). */
static int open_own(const char *store, const char *name, int *fdp, char *err, size_t errlen)
{
	struct stat st;
	int rc = shm_obj_open(name, O_RDWR | O_CREAT | O_EXCL, fdp, &st, err, errlen);
	if (rc != FLAGSHM_EBUSY)
		return rc; /* created (0), or a real failure */
	rc = shm_obj_open(name, O_RDWR, fdp, &st, err, errlen);
	if (rc == FLAGSHM_ENOSTORE)
		return rc;
	if (rc == 0 && st.st_uid == geteuid() && !(st.st_mode & (S_IWGRP | S_IWOTH)))
		return 0;
	if (rc == 0)
		close(*fdp);
	else if (rc == FLAGSHM_ESYS && errno != EACCES && errno != EPERM)
		return rc; /* a real failure, already described */
	/* Not ours, or not openable by us, or a symlink or FIFO: describe
	 * what sits under the name, without following or opening it. */
	char path[sizeof SHM_DIR + SHM_OBJ_NAME_MAX];
	snprintf(path, sizeof path, "%s%s", SHM_DIR, name);
	if (lstat(path, &st) < 0) {
		shm_seterr(err, errlen, "cannot stat %s: %s", path, strerror(errno));
		return errno == ENOENT ? FLAGSHM_ENOSTORE : FLAGSHM_ESYS;
	}
	squat_message(err, errlen, store, name, &st);
	return FLAGSHM_EUNTRUSTED;
}

/* Unlink every generation object of STORE that our user owns, except KEEP
 * (0: none); the highest of our numbers seen goes to *maxgen. Objects of
 * other users are left alone (we could not unlink them from the sticky
 * /dev/shm anyway, and readers never map them): a warning, not an error,
 * and their numbers are skipped when publishing reaches them. Best effort:
 * an object we cannot unlink is a warning too, never fatal, so that nobody
 * can stop a writer from starting. */
static int sweep(const char *store, uint64_t keep, uint64_t *maxgen, char *warning, size_t wn,
		 char *err, size_t errlen)
{
	DIR *d = opendir(SHM_DIR);
	if (!d) {
		shm_seterr(err, errlen, "cannot list %s: %s", SHM_DIR, strerror(errno));
		return FLAGSHM_ESYS;
	}
	uid_t me = geteuid();
	unsigned foreign = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t g;
		struct stat st;
		if (!gen_entry(de->d_name, store, &g))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone meanwhile */
		if (st.st_uid != me || !S_ISREG(st.st_mode)) {
			if (foreign++ == 0) {
				char who[64];
				shm_uid_describe(who, sizeof who, st.st_uid);
				warn(warning, wn, "%s/%s is not this writer's (owned by %s): left alone, "
				     "its number is skipped", SHM_DIR, de->d_name, who);
			}
			continue;
		}
		if (g > *maxgen)
			*maxgen = g;
		if (g == keep && g != 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
			warn(warning, wn, "cannot remove leftover %s/%s: %s", SHM_DIR, de->d_name,
			     strerror(errno));
	}
	closedir(d);
	if (foreign > 1)
		warn(warning, wn, "%u objects named like generations of store '%s' are not this "
		     "writer's", foreign, store);
	return 0;
}

/* Take the store lock: open (or create) /flagshm.S.lock, lock it, and make
 * sure the name still points at the object we locked (a --remove between
 * our open and our lock unlinks it; a second writer would then create and
 * lock a new one). */
static int take_lock(const char *store, int *fdp, char *err, size_t errlen)
{
	char name[SHM_OBJ_NAME_MAX], path[sizeof SHM_DIR + SHM_OBJ_NAME_MAX];
	shm_lock_name(name, sizeof name, store);
	snprintf(path, sizeof path, "%s%s", SHM_DIR, name);
	for (int attempt = 0; attempt < 8; attempt++) {
		int fd;
		int rc = open_own(store, name, &fd, err, errlen);
		if (rc == FLAGSHM_ENOSTORE)
			continue;
		if (rc)
			return rc;
		if (fchmod(fd, 0600) < 0) {
			shm_seterr(err, errlen, "cannot set the mode of %s: %s", path, strerror(errno));
			close(fd);
			return FLAGSHM_ESYS;
		}
		/* One writer per store: a write lock on the whole lock object.
		 * The kernel releases it when this descriptor is closed,
		 * including by the writer's death. Nobody but our own user can
		 * open the object (0600), so nobody else can hold a lock on it. */
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
		if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
			int e = errno;
			close(fd);
			if (e == EAGAIN || e == EACCES)
				return FLAGSHM_EBUSY;
			shm_seterr(err, errlen, "cannot lock %s: %s", path, strerror(e));
			return FLAGSHM_ESYS;
		}
		struct stat a, b;
		if (fstat(fd, &a) == 0 && lstat(path, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino) {
			*fdp = fd;
			return 0;
		}
		close(fd); /* unlinked or replaced under us: take the new one */
	}
	shm_seterr(err, errlen, "cannot take the store lock %s: it keeps being removed and "
		   "recreated", path);
	return FLAGSHM_ESYS;
}

/* The message for a store held by another writer: its pid from our own
 * control object (we own it, so the pid is the one a writer of ours wrote). */
static void busy_message(const char *store, char *err, size_t errlen)
{
	char name[SHM_OBJ_NAME_MAX];
	int32_t pid = 0;
	int fd;
	struct stat st;
	shm_ctl_name(name, sizeof name, store);
	if (shm_obj_open(name, O_RDONLY, &fd, &st, NULL, 0) == 0) {
		if (st.st_uid != geteuid() ||
		    pread(fd, &pid, sizeof pid, offsetof(fs_ctl, ctl_writer_pid)) != sizeof pid)
			pid = 0;
		close(fd);
	}
	if (pid > 0)
		shm_seterr(err, errlen, "store '%s' is held by flagshm-writer pid %d", store, (int)pid);
	else
		shm_seterr(err, errlen, "store '%s' is held by another flagshm-writer (pid not yet recorded)",
			   store);
}

int shm_writer_open(shm_writer *w, const char *store, char *err, size_t errlen)
{
	char name[SHM_OBJ_NAME_MAX];
	struct stat st;
	int rc;

	memset(w, 0, sizeof *w);
	w->lock_fd = -1;
	if ((rc = shm_name_check(store, err, errlen)))
		return rc;
	int lock_fd;
	rc = take_lock(store, &lock_fd, err, errlen);
	if (rc == FLAGSHM_EBUSY)
		busy_message(store, err, errlen);
	if (rc)
		return rc;

	/* Under the lock, nobody of our user initializes the control object
	 * but us; somebody else's object under its name is refused. */
	shm_ctl_name(name, sizeof name, store);
	int fd = -1;
	for (int attempt = 0; attempt < 4; attempt++) {
		rc = open_own(store, name, &fd, err, errlen);
		if (rc != FLAGSHM_ENOSTORE)
			break;
	}
	if (rc) {
		close(lock_fd);
		return rc == FLAGSHM_ENOSTORE ? FLAGSHM_ESYS : rc;
	}
	if (fchmod(fd, masked(CTL_MODE)) < 0 || fstat(fd, &st) < 0) {
		shm_seterr(err, errlen, "cannot set the mode of %s%s: %s", SHM_DIR, name, strerror(errno));
		goto fail;
	}
	if (st.st_size != 0 && st.st_size != (off_t)sizeof(fs_ctl)) {
		shm_seterr(err, errlen, "%s%s is %lld bytes, a control object is %zu: not a flagshm store "
		       "(remove it with flagshm-writer --remove --store %s)",
		       SHM_DIR, name, (long long)st.st_size, sizeof(fs_ctl), store);
		rc = FLAGSHM_ECORRUPT;
		goto fail;
	}
	if (st.st_size == 0 && ftruncate(fd, sizeof(fs_ctl)) < 0) {
		shm_seterr(err, errlen, "cannot size %s%s: %s", SHM_DIR, name, strerror(errno));
		goto fail;
	}
	void *p = mmap(NULL, sizeof(fs_ctl), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		shm_seterr(err, errlen, "cannot map %s%s: %s", SHM_DIR, name, strerror(errno));
		goto fail;
	}
	close(fd); /* the mapping keeps it; the lock is on the lock object */
	fd = -1;
	fs_ctl *ctl = p;
	/* Relaxed: we hold the lock; nobody else stores it. */
	uint32_t magic = atomic_load_explicit(&ctl->ctl_magic, memory_order_relaxed);
	if (magic == 0) {
		/* New, or a writer died while initializing it: nobody can have
		 * used it (readers refuse a control object without magic). */
		memset(ctl, 0, sizeof *ctl);
		ctl->ctl_version = FS_FORMAT_VERSION;
		ctl->ctl_size = sizeof(fs_ctl);
		ctl->ctl_fingerprint = SHM_CTL_FINGERPRINT;
		/* Release: pairs with the acquire load of ctl_magic in
		 * shm_ctl_map; a reader that sees the magic sees the fields
		 * above. */
		atomic_store_explicit(&ctl->ctl_magic, FS_CTL_MAGIC, memory_order_release);
	} else if (magic != FS_CTL_MAGIC || ctl->ctl_version != FS_FORMAT_VERSION ||
		   ctl->ctl_size != sizeof(fs_ctl) || ctl->ctl_fingerprint != SHM_CTL_FINGERPRINT) {
		shm_seterr(err, errlen, "%s%s is not a flagshm control object of this version (magic 0x%08x, "
		       "version %u, layout 0x%08x); remove it with flagshm-writer --remove --store %s",
		       SHM_DIR, name, magic, ctl->ctl_version, ctl->ctl_fingerprint, store);
		munmap(p, sizeof(fs_ctl));
		close(lock_fd);
		return FLAGSHM_ECORRUPT;
	}
	/* Relaxed: informational, read alone (shm_lock_holder, EBUSY). */
	atomic_store_explicit(&ctl->ctl_writer_pid, (int32_t)getpid(), memory_order_relaxed);
	shm_ctl_beat(ctl);

	/* Recovery: whatever a killed writer of ours left (a generation object
	 * created but never made current, or old ones it had not unlinked
	 * yet) goes, except the current generation, which readers may be
	 * using. Only we write ctl_generation, and we hold the lock: a relaxed
	 * load reads our own (or a dead writer's) last store. */
	uint64_t cur = atomic_load_explicit(&ctl->ctl_generation, memory_order_relaxed);
	uint64_t maxgen = cur;
	rc = sweep(store, cur, &maxgen, w->warning, sizeof w->warning, err, errlen);
	if (rc) {
		munmap(p, sizeof(fs_ctl));
		close(lock_fd);
		return rc;
	}
	w->lock_fd = lock_fd;
	w->ctl = ctl;
	snprintf(w->store, sizeof w->store, "%s", store);
	w->generation = cur;
	w->previous = 0; /* the sweep removed everything but the current one */
	/* Continue above every number of ours seen, so that no generation
	 * number is ever reused for different bytes; 0 = exhausted. */
	w->next = maxgen + 1;
	return 0;

fail:
	if (fd >= 0)
		close(fd);
	close(lock_fd);
	return rc ? rc : FLAGSHM_ESYS;
}

/* Write all of BUF at offset 0. */
static int write_all(int fd, const uint8_t *buf, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pwrite(fd, buf + done, n - done, (off_t)done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)r;
	}
	return 0;
}

int shm_writer_publish(shm_writer *w, void *snap, size_t size, char *err, size_t errlen)
{
	char name[SHM_OBJ_NAME_MAX];

	if (!w || !w->ctl || !snap) {
		shm_seterr(err, errlen, "publish: writer not open or no snapshot");
		return FLAGSHM_EINVAL;
	}
	fs_snap_hdr *h = snap;
	if (size < sizeof(fs_snap_hdr) || (uint64_t)size > FS_SNAP_MAX || h->sh_size != size ||
	    h->sh_magic != FS_SNAP_MAGIC) {
		shm_seterr(err, errlen, "publish: %zu bytes are not a compiled snapshot (magic 0x%08x, "
		       "sh_size %llu)", size, size >= sizeof(fs_snap_hdr) ? h->sh_magic : 0,
		       size >= sizeof(fs_snap_hdr) ? (unsigned long long)h->sh_size : 0ULL);
		return FLAGSHM_EINVAL;
	}
	uint64_t sum = fs_checksum((const uint8_t *)snap + FS_SNAP_SUMMED_FROM,
				   size - FS_SNAP_SUMMED_FROM);
	if (sum != h->sh_checksum) {
		shm_seterr(err, errlen, "publish: the compiled snapshot's checksum is wrong "
		       "(0x%016llx, computed 0x%016llx)", (unsigned long long)h->sh_checksum,
		       (unsigned long long)sum);
		return FLAGSHM_EINVAL;
	}
	/* 1. A new object, which no reader can know of yet: O_EXCL, so we
	 * never write into an object someone else created or mapped. A number
	 * whose name someone else holds is skipped (bounded: each skip is one
	 * name another user had to create). */
	uint64_t gen = 0;
	int fd = -1;
	for (int skips = 0;; skips++) {
		if (w->next == 0) {
			shm_seterr(err, errlen, "store '%s': generation numbers are exhausted (current "
				   "%llu); remove the store (flagshm-writer --remove --store %s) and start "
				   "again", w->store, (unsigned long long)w->generation, w->store);
			return FLAGSHM_ESYS;
		}
		if (skips == PUBLISH_SKIPS_MAX) {
			shm_seterr(err, errlen, "store '%s': the next %d generation names after %llu are "
				   "all held by objects of other users; not published", w->store,
				   PUBLISH_SKIPS_MAX, (unsigned long long)w->generation);
			return FLAGSHM_ESYS;
		}
		gen = w->next;
		shm_snap_name(name, sizeof name, w->store, gen);
		struct stat st;
		int rc = shm_obj_open(name, O_RDWR | O_CREAT | O_EXCL, &fd, &st, err, errlen);
		if (rc == 0)
			break;
		if (rc != FLAGSHM_EBUSY)
			return rc;
		/* Taken. One of ours (above every number seen at open, so a
		 * leftover can only come from a bug) is removed and retried;
		 * anybody else's number is skipped, never opened. */
		char path[sizeof SHM_DIR + SHM_OBJ_NAME_MAX];
		snprintf(path, sizeof path, "%s%s", SHM_DIR, name);
		if (lstat(path, &st) == 0 && st.st_uid == geteuid() && S_ISREG(st.st_mode) &&
		    unlink(path) == 0)
			continue;
		char who[64];
		shm_uid_describe(who, sizeof who, st.st_uid);
		warn(w->warning, sizeof w->warning, "generation %llu skipped: %s is held by %s",
		     (unsigned long long)gen, path, who);
		w->next = gen + 1; /* 0 after UINT64_MAX: exhausted */
	}
	h->sh_generation = gen; /* outside the checksummed range */
	h->sh_published_ms = fs_clock_ms(CLOCK_REALTIME);

	const char *step = "set the mode of";
	if (fchmod(fd, masked(SNAP_MODE)) < 0)
		goto fail;
	step = "size";
	if (ftruncate(fd, (off_t)size) < 0)
		goto fail;
	/* Reserve the pages now, so that a full /dev/shm is an ENOSPC here
	 * and not a SIGBUS later. tmpfs supports it; others may not. */
	step = "allocate";
	int fe = posix_fallocate(fd, 0, (off_t)size);
	if (fe && fe != EOPNOTSUPP && fe != EINVAL) {
		errno = fe;
		goto fail;
	}
	step = "write";
	if (write_all(fd, snap, size) < 0)
		goto fail;

	/* Read it back through a mapping, as a reader will see it. */
	step = "map for checking";
	void *rb = mmap(NULL, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (rb == MAP_FAILED)
		goto fail;
	const fs_snap_hdr *rh = rb;
	bool ok = rh->sh_size == size && rh->sh_generation == gen &&
		  fs_checksum((const uint8_t *)rb + FS_SNAP_SUMMED_FROM, size - FS_SNAP_SUMMED_FROM) ==
			  h->sh_checksum;
	munmap(rb, size);
	if (!ok) {
		close(fd);
		shm_unlink(name);
		shm_seterr(err, errlen, "%s%s did not read back as written (size or checksum differs); "
		       "generation %llu not published", SHM_DIR, name, (unsigned long long)gen);
		return FLAGSHM_ESYS;
	}
	close(fd);

	/* 2. Make it current. ctl_published_ms first (relaxed: it is only
	 * informative, status may pair it with the previous generation for
	 * an instant). The release store of ctl_generation pairs with the
	 * acquire load in reader/store.c (refresh and the evaluation fast
	 * path): a reader that sees GEN opens an object that is complete. */
	atomic_store_explicit(&w->ctl->ctl_published_ms, h->sh_published_ms, memory_order_relaxed);
	atomic_store_explicit(&w->ctl->ctl_generation, gen, memory_order_release);

	/* 3. The generation current until now stays for readers that loaded
	 * it just before step 2 and have not opened it yet; the one before it
	 * goes. Tracked by name, not by arithmetic: numbers may have been
	 * skipped, and a recovery may have started above the current one.
	 * Unlinking never disturbs a reader that has one mapped. */
	if (w->previous) {
		shm_snap_name(name, sizeof name, w->store, w->previous);
		shm_unlink(name);
	}
	w->previous = w->generation;
	w->generation = gen;
	w->next = gen + 1; /* 0 after UINT64_MAX: exhausted, never wraps */
	return 0;

fail:;
	int e = errno;
	close(fd);
	shm_unlink(name);
	if (e == ENOSPC)
		shm_seterr(err, errlen, "cannot %s %s%s (%zu bytes): %s; %s must have room for two "
		       "snapshots; generation %llu not published, readers keep %llu",
		       step, SHM_DIR, name, size, strerror(e), SHM_DIR, (unsigned long long)gen,
		       (unsigned long long)w->generation);
	else
		shm_seterr(err, errlen, "cannot %s %s%s (%zu bytes): %s; generation %llu not published",
		       step, SHM_DIR, name, size, strerror(e), (unsigned long long)gen);
	return FLAGSHM_ESYS;
}

void shm_writer_close(shm_writer *w)
{
	if (!w)
		return;
	if (w->ctl)
		munmap(w->ctl, sizeof(fs_ctl));
	if (w->lock_fd >= 0)
		close(w->lock_fd); /* drops the store lock */
	w->ctl = NULL;
	w->lock_fd = -1;
}

/* Unlink object DIR/ENT; a failure is described in ERR (the first one
 * only) and counted. */
static void remove_one(int dfd, const char *ent, char *err, size_t errlen, int *rc)
{
	struct stat st;
	if (unlinkat(dfd, ent, 0) == 0 || errno == ENOENT)
		return;
	int e = errno;
	if (*rc == 0) {
		char who[64] = "?";
		if (fstatat(dfd, ent, &st, AT_SYMLINK_NOFOLLOW) == 0)
			shm_uid_describe(who, sizeof who, st.st_uid);
		shm_seterr(err, errlen, "cannot remove %s/%s (owned by %s): %s; remove it as root or "
			   "as its owner", SHM_DIR, ent, who, strerror(e));
	}
	*rc = FLAGSHM_ESYS;
}

int shm_store_remove(const char *store, char *err, size_t errlen)
{
	char lname[SHM_OBJ_NAME_MAX];
	int rc = shm_name_check(store, err, errlen);
	if (rc)
		return rc;

	/* Take the lock for the removal, so that a running writer is not
	 * pulled out from under its readers. A lock object that is not ours
	 * (squatted) proves nothing and is removed like the rest. */
	int lock_fd = -1;
	rc = take_lock(store, &lock_fd, err, errlen);
	if (rc == FLAGSHM_EBUSY) {
		busy_message(store, err, errlen);
		if (err && errlen > strlen(err))
			shm_seterr(err + strlen(err), errlen - strlen(err), "; stop it first");
		return rc;
	}
	if (rc && rc != FLAGSHM_EUNTRUSTED)
		return rc;
	if (rc == FLAGSHM_EUNTRUSTED) {
		/* Not ours: root removing another user's store, or a squatted
		 * name. A writer of that user holding it still counts. */
		int h = shm_lock_holder(store);
		if (h > 0 || h == FLAGSHM_EBUSY) {
			shm_seterr(err, errlen, "store '%s' is held by a flagshm-writer of another "
				   "user%s; stop it first", store, h > 0 ? "" : " (pid not recorded)");
			return FLAGSHM_EBUSY;
		}
	}

	/* Every name of the store, whoever owns it and whatever number it
	 * carries (also numbers too large to be ours), and the control object;
	 * the lock object last, so that no writer can start between. */
	DIR *d = opendir(SHM_DIR);
	if (!d) {
		shm_seterr(err, errlen, "cannot list %s: %s", SHM_DIR, strerror(errno));
		if (lock_fd >= 0)
			close(lock_fd);
		return FLAGSHM_ESYS;
	}
	char ctl_ent[SHM_OBJ_NAME_MAX];
	shm_ctl_name(ctl_ent, sizeof ctl_ent, store);
	shm_lock_name(lname, sizeof lname, store);
	/* The writer's counting socket and stats object (docs/metrics.md) go
	 * with the store; a killed writer leaves them. They do not make a
	 * store exist. */
	char stats_ent[SHM_OBJ_NAME_MAX + 8], sock_path[sizeof SHM_DIR + SHM_OBJ_NAME_MAX + 8];
	fm_stats_name(stats_ent, sizeof stats_ent, store);
	fm_sock_path(sock_path, sizeof sock_path, store);
	const char *sock_ent = strrchr(sock_path, '/') + 1;
	size_t stats_len = strlen(stats_ent + 1);
	int found = rc == FLAGSHM_EUNTRUSTED; /* a foreign lock object is something to remove */
	rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t g;
		if (gen_entry(de->d_name, store, &g) || strcmp(de->d_name, ctl_ent + 1) == 0) {
			found++;
			remove_one(dirfd(d), de->d_name, err, errlen, &rc);
		} else if (strcmp(de->d_name, sock_ent) == 0 ||
			   (strncmp(de->d_name, stats_ent + 1, stats_len) == 0 &&
			    (de->d_name[stats_len] == '\0' ||
			     strcmp(de->d_name + stats_len, ".new") == 0))) {
			remove_one(dirfd(d), de->d_name, err, errlen, &rc);
		}
	}
	remove_one(dirfd(d), lname + 1, err, errlen, &rc);
	closedir(d);
	if (lock_fd >= 0)
		close(lock_fd);
	if (!rc && !found) { /* a lone lock object is ours, just taken */
		shm_seterr(err, errlen, "store '%s' does not exist (no %s%s)", store, SHM_DIR, ctl_ent);
		return FLAGSHM_ENOSTORE;
	}
	return rc;
}
