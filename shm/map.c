/*
 * shm/map.c - the reader's side of the protocol: map the control object
 * and snapshot objects read-only, and ask the kernel who holds the store.
 *
 * Everything here opens O_RDONLY and maps PROT_READ: a reader has no way
 * to change what another reader sees, even through a bug of its own (a
 * store through one of these pointers is a SIGSEGV, not a corruption).
 * Nothing here trusts the bytes beyond the control object's header; the
 * snapshot's contents are checked by reader/snap.c.
 */
#include "shm.h"
#include "format.h"
#include "flagshm.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>



int shm_ctl_map_trusted(const char *store, const shm_trust *t, const fs_ctl **out,
			uid_t *owner, char *err, size_t errlen)
{
	char name[SHM_OBJ_NAME_MAX];
	struct stat st;
	int rc = shm_name_check(store, err, errlen);
	if (rc)
		return rc;
	shm_ctl_name(name, sizeof name, store);

	int fd;
	int orc = shm_obj_open(name, O_RDONLY, &fd, &st, err, errlen);
	if (orc == FLAGSHM_ENOSTORE)
		shm_seterr(err, errlen, "store '%s' does not exist (no %s%s): no writer has created it",
			   store, SHM_DIR, name);
	if (orc)
		return orc;
	/* Before looking at a single byte: a control object that a user we
	 * do not trust owns could point us at that user's snapshots. */
	if ((orc = shm_obj_check(name, &st, t, err, errlen))) {
		close(fd);
		return orc;
	}
	if (st.st_size == 0) {
		/* The writer creates the object, then sizes it, then writes the
		 * header: between those steps the store is not there yet. */
		close(fd);
		shm_seterr(err, errlen, "store '%s' is being created (%s%s is empty)", store, SHM_DIR, name);
		return FLAGSHM_ENOSTORE;
	}
	if (st.st_size < (off_t)sizeof(fs_ctl)) {
		close(fd);
		shm_seterr(err, errlen, "%s%s is %lld bytes, a control object is %zu: not a flagshm store",
		       SHM_DIR, name, (long long)st.st_size, sizeof(fs_ctl));
		return FLAGSHM_ECORRUPT;
	}
	void *p = mmap(NULL, sizeof(fs_ctl), PROT_READ, MAP_SHARED, fd, 0);
	int e = errno;
	close(fd); /* the mapping keeps the object; no fd stays open */
	if (p == MAP_FAILED) {
		shm_seterr(err, errlen, "cannot map %s%s read-only: %s", SHM_DIR, name, strerror(e));
		return FLAGSHM_ESYS;
	}
	const fs_ctl *ctl = p;
	/* Acquire: pairs with the release store of ctl_magic in
	 * shm_writer_open (publish.c), which comes after every other header
	 * field is written. */
	uint32_t magic = atomic_load_explicit(&ctl->ctl_magic, memory_order_acquire);
	if (magic == 0) {
		munmap(p, sizeof(fs_ctl));
		shm_seterr(err, errlen, "store '%s' is being created (%s%s has no header yet)", store,
		       SHM_DIR, name);
		return FLAGSHM_ENOSTORE;
	}
	if (magic != FS_CTL_MAGIC || ctl->ctl_version != FS_FORMAT_VERSION ||
	    ctl->ctl_size != sizeof(fs_ctl) || ctl->ctl_fingerprint != SHM_CTL_FINGERPRINT) {
		shm_seterr(err, errlen,
		       "%s%s is not a flagshm control object of this version (magic 0x%08x, version %u, "
		       "size %u, layout 0x%08x; expected 0x%08x, %u, %zu, 0x%08x)",
		       SHM_DIR, name, magic, ctl->ctl_version, ctl->ctl_size, ctl->ctl_fingerprint,
		       FS_CTL_MAGIC, FS_FORMAT_VERSION, sizeof(fs_ctl), SHM_CTL_FINGERPRINT);
		munmap(p, sizeof(fs_ctl));
		return FLAGSHM_ECORRUPT;
	}
	*out = ctl;
	if (owner)
		*owner = st.st_uid;
	return 0;
}

int shm_ctl_map(const char *store, const fs_ctl **out, char *err, size_t errlen)
{
	shm_trust t;
	int rc = shm_trust_default(&t, err, errlen);
	if (rc)
		return rc;
	return shm_ctl_map_trusted(store, &t, out, NULL, err, errlen);
}

void shm_ctl_unmap(const fs_ctl *ctl)
{
	if (ctl)
		munmap((void *)ctl, sizeof(fs_ctl));
}

int shm_snap_map(const char *store, uid_t owner, uint64_t gen, const void **base, size_t *size,
		 char *err, size_t errlen)
{
	char name[SHM_OBJ_NAME_MAX];
	struct stat st;
	int rc = shm_name_check(store, err, errlen);
	if (rc)
		return rc;
	shm_snap_name(name, sizeof name, store, gen);

	int fd;
	int orc = shm_obj_open(name, O_RDONLY, &fd, &st, err, errlen);
	if (orc == FLAGSHM_ENOSTORE)
		shm_seterr(err, errlen, "%s%s is gone (the writer has moved on)", SHM_DIR, name);
	if (orc)
		return orc;
	/* The name may have been unlinked by the writer and taken by someone
	 * else since ctl_generation pointed at it: only the control object's
	 * owner writes snapshots. */
	shm_trust only = { .n = 1, .uid = { owner } };
	if ((orc = shm_obj_check(name, &st, &only, err, errlen))) {
		close(fd);
		return orc;
	}
	if (st.st_size < (off_t)sizeof(fs_snap_hdr) || (uint64_t)st.st_size > FS_SNAP_MAX) {
		close(fd);
		shm_seterr(err, errlen, "%s%s is %lld bytes: not a snapshot (%zu to %llu bytes)", SHM_DIR,
		       name, (long long)st.st_size, sizeof(fs_snap_hdr),
		       (unsigned long long)FS_SNAP_MAX);
		return FLAGSHM_ECORRUPT;
	}
	/* No MAP_POPULATE: pages are mapped as flags are read, so a map (and
	 * its unmap) costs the same whatever the snapshot size. */
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	int e = errno;
	close(fd);
	if (p == MAP_FAILED) {
		shm_seterr(err, errlen, "cannot map %s%s (%lld bytes) read-only: %s", SHM_DIR, name,
		       (long long)st.st_size, strerror(e));
		return FLAGSHM_ESYS;
	}
	*base = p;
	*size = (size_t)st.st_size;
	return 0;
}

void shm_snap_unmap(const void *base, size_t size)
{
	if (base)
		munmap((void *)base, size);
}

/*
 * The store lock is an open-file-description lock on /flagshm.S.lock (see
 * publish.c for why): F_OFD_GETLK tells whether some description holds it,
 * but reports pid -1 for OFD locks, so the holder's pid is the ctl_writer_pid
 * it wrote after taking the lock. The lock object is mode 0600: a user other
 * than the writer's cannot open it (FLAGSHM_EUNTRUSTED, judge by the
 * heartbeat), and so cannot hold it either.
 */
int shm_lock_holder(const char *store)
{
	char name[SHM_OBJ_NAME_MAX];
	struct stat st;
	int rc = shm_name_check(store, NULL, 0);
	if (rc)
		return rc;
	shm_lock_name(name, sizeof name, store);
	int fd;
	rc = shm_obj_open(name, O_RDONLY, &fd, &st, NULL, 0);
	if (rc == FLAGSHM_ENOSTORE)
		return 0;
	if (rc == FLAGSHM_ESYS && errno == EACCES)
		return FLAGSHM_EUNTRUSTED;
	if (rc)
		return rc;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	int r = fcntl(fd, F_OFD_GETLK, &fl);
	close(fd);
	if (r < 0)
		return FLAGSHM_ESYS;
	if (fl.l_type == F_UNLCK)
		return 0;
	if (fl.l_pid > 0)
		return fl.l_pid; /* a classic POSIX lock: the kernel knows */
	/* The pid the holder wrote into its control object, if we trust it. */
	const fs_ctl *ctl;
	int32_t pid = 0;
	if (shm_ctl_map(store, &ctl, NULL, 0) == 0) {
		pid = atomic_load_explicit(&ctl->ctl_writer_pid, memory_order_relaxed);
		shm_ctl_unmap(ctl);
	}
	return pid > 0 ? pid : FLAGSHM_EBUSY; /* held, but not named (yet) */
}
