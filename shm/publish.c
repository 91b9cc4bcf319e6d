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
 * writes its pid into c_writer_pid right after taking the lock.
 */
#include "shm.h"
#include "clock.h"
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

/* Parse "flagshm.STORE.GEN" (a /dev/shm entry); true and *gen when it is a
 * generation object of STORE. */
static bool parse_gen_entry(const char *ent, const char *store, uint64_t *gen)
{
	size_t sl = strlen(store);
	if (strncmp(ent, "flagshm.", 8) != 0 || strncmp(ent + 8, store, sl) != 0 ||
	    ent[8 + sl] != '.')
		return false;
	const char *d = ent + 8 + sl + 1;
	if (*d < '0' || *d > '9')
		return false;
	uint64_t g = 0;
	for (; *d; d++) {
		if (*d < '0' || *d > '9' || g > (UINT64_MAX - 9) / 10)
			return false;
		g = g * 10 + (uint64_t)(*d - '0');
	}
	*gen = g;
	return true;
}

/* Unlink every generation object of STORE except KEEP (0: none); return the
 * highest generation seen in *maxgen. Best effort: a name we cannot unlink
 * is reported but does not stop the writer (it will never be referenced). */
static int sweep(const char *store, uint64_t keep, uint64_t *maxgen, char *err, size_t errlen)
{
	DIR *d = opendir(SHM_DIR);
	if (!d) {
		shm_seterr(err, errlen, "cannot list %s: %s", SHM_DIR, strerror(errno));
		return FLAGSHM_ESYS;
	}
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d))) {
		uint64_t g;
		if (!parse_gen_entry(de->d_name, store, &g))
			continue;
		if (g > *maxgen)
			*maxgen = g;
		if (g == keep)
			continue;
		char name[SHM_OBJ_NAME_MAX];
		shm_snap_name(name, sizeof name, store, g);
		if (shm_unlink(name) < 0 && errno != ENOENT) {
			shm_seterr(err, errlen, "cannot remove leftover %s%s: %s", SHM_DIR, name,
			       strerror(errno));
			rc = FLAGSHM_ESYS;
		}
	}
	closedir(d);
	return rc;
}

int shm_writer_open(shm_writer *w, const char *store, char *err, size_t errlen)
{
	char name[SHM_OBJ_NAME_MAX];
	struct stat st;
	int rc;

	memset(w, 0, sizeof *w);
	w->ctl_fd = -1;
	if ((rc = shm_name_check(store, err, errlen)))
		return rc;
	shm_ctl_name(name, sizeof name, store);

	int fd = shm_open(name, O_RDWR | O_CREAT | O_CLOEXEC, CTL_MODE);
	if (fd < 0) {
		shm_seterr(err, errlen, "cannot open or create %s%s: %s", SHM_DIR, name, strerror(errno));
		return FLAGSHM_ESYS;
	}
	/* One writer per store: a write lock on the whole control object,
	 * taken before anything is initialized, so two writers starting at
	 * once cannot both initialize it. The kernel releases it when this
	 * descriptor is closed, including by the writer's death. */
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		int e = errno;
		if (e == EAGAIN || e == EACCES) {
			int32_t pid = 0;
			if (pread(fd, &pid, sizeof pid, offsetof(fs_ctl, c_writer_pid)) != sizeof pid)
				pid = 0;
			if (pid > 0)
				shm_seterr(err, errlen, "store '%s' is held by flagshm-writer pid %d", store,
				       (int)pid);
			else
				shm_seterr(err, errlen, "store '%s' is held by another flagshm-writer (pid not yet recorded)",
				       store);
			close(fd);
			return FLAGSHM_EBUSY;
		}
		close(fd);
		shm_seterr(err, errlen, "cannot lock %s%s: %s", SHM_DIR, name, strerror(e));
		return FLAGSHM_ESYS;
	}
	if (fchmod(fd, masked(CTL_MODE)) < 0 || fstat(fd, &st) < 0) {
		shm_seterr(err, errlen, "cannot set the mode of %s%s: %s", SHM_DIR, name, strerror(errno));
		close(fd);
		return FLAGSHM_ESYS;
	}
	if (st.st_size != 0 && st.st_size != (off_t)sizeof(fs_ctl)) {
		shm_seterr(err, errlen, "%s%s is %lld bytes, a control object is %zu: not a flagshm store "
		       "(remove it with flagshm-writer --remove --store %s)",
		       SHM_DIR, name, (long long)st.st_size, sizeof(fs_ctl), store);
		close(fd);
		return FLAGSHM_ECORRUPT;
	}
	if (st.st_size == 0 && ftruncate(fd, sizeof(fs_ctl)) < 0) {
		shm_seterr(err, errlen, "cannot size %s%s: %s", SHM_DIR, name, strerror(errno));
		close(fd);
		return FLAGSHM_ESYS;
	}
	void *p = mmap(NULL, sizeof(fs_ctl), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		shm_seterr(err, errlen, "cannot map %s%s: %s", SHM_DIR, name, strerror(errno));
		close(fd);
		return FLAGSHM_ESYS;
	}
	fs_ctl *ctl = p;
	uint32_t magic = __atomic_load_n(&ctl->c_magic, __ATOMIC_RELAXED); /* we hold the lock */
	if (magic == 0) {
		/* New, or a writer died while initializing it: nobody can have
		 * used it (readers refuse a control object without magic). */
		memset(ctl, 0, sizeof *ctl);
		ctl->c_version = FS_FORMAT_VERSION;
		ctl->c_size = sizeof(fs_ctl);
		ctl->c_fingerprint = FS_LAYOUT_FINGERPRINT;
		/* Release: pairs with the acquire load of c_magic in
		 * shm_ctl_map; a reader that sees the magic sees the fields
		 * above. */
		__atomic_store_n(&ctl->c_magic, FS_CTL_MAGIC, __ATOMIC_RELEASE);
	} else if (magic != FS_CTL_MAGIC || ctl->c_version != FS_FORMAT_VERSION ||
		   ctl->c_size != sizeof(fs_ctl) || ctl->c_fingerprint != FS_LAYOUT_FINGERPRINT) {
		shm_seterr(err, errlen, "%s%s is not a flagshm control object of this version (magic 0x%08x, "
		       "version %u, layout 0x%08x); remove it with flagshm-writer --remove --store %s",
		       SHM_DIR, name, magic, ctl->c_version, ctl->c_fingerprint, store);
		munmap(p, sizeof(fs_ctl));
		close(fd);
		return FLAGSHM_ECORRUPT;
	}
	ctl->c_writer_pid = (int32_t)getpid(); /* names us to shm_lock_holder and EBUSY */
	atomic_store_explicit(&ctl->c_heartbeat_ms, fs_clock_ms(CLOCK_REALTIME), memory_order_relaxed);

	/* Recovery: whatever a killed writer left (a generation object
	 * created but never made current, or old ones it had not unlinked
	 * yet) goes, except the current generation, which readers may be
	 * using. Only we write c_generation, and we hold the lock: a relaxed
	 * load reads our own (or a dead writer's) last store. */
	uint64_t cur = atomic_load_explicit(&ctl->c_generation, memory_order_relaxed);
	uint64_t maxgen = cur;
	rc = sweep(store, cur, &maxgen, err, errlen);
	if (rc) {
		munmap(p, sizeof(fs_ctl));
		close(fd);
		return rc;
	}
	w->ctl_fd = fd;
	w->ctl = ctl;
	snprintf(w->store, sizeof w->store, "%s", store);
	/* Continue above everything seen, so that no generation number is
	 * ever reused for different bytes. */
	w->generation = maxgen;
	return 0;
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
	uint64_t gen = w->generation + 1;
	h->sh_generation = gen; /* outside the checksummed range */
	h->sh_published_ms = fs_clock_ms(CLOCK_REALTIME);
	shm_snap_name(name, sizeof name, w->store, gen);

	/* 1. A new object, which no reader can know of yet: O_EXCL, so we
	 * never write into an object someone else created or mapped. */
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, SNAP_MODE);
	if (fd < 0 && errno == EEXIST) {
		/* Not referenced (above every current generation): a
		 * leftover created after our sweep cannot exist while we
		 * hold the lock, but be safe. */
		shm_unlink(name);
		fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, SNAP_MODE);
	}
	if (fd < 0) {
		shm_seterr(err, errlen, "cannot create %s%s: %s", SHM_DIR, name, strerror(errno));
		return FLAGSHM_ESYS;
	}
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

	/* 2. Make it current. c_published_ms first (relaxed: it is only
	 * informative, status may pair it with the previous generation for
	 * an instant). The release store of c_generation pairs with the
	 * acquire load in reader/store.c (refresh and the evaluation fast
	 * path): a reader that sees GEN opens an object that is complete. */
	atomic_store_explicit(&w->ctl->c_published_ms, h->sh_published_ms, memory_order_relaxed);
	atomic_store_explicit(&w->ctl->c_generation, gen, memory_order_release);
	w->generation = gen;

	/* 3. GEN-1 stays for readers that loaded it just before step 2 and
	 * have not opened it yet; older ones go. Unlinking never disturbs a
	 * reader that has one mapped. */
	if (gen > 2) {
		shm_snap_name(name, sizeof name, w->store, gen - 2);
		shm_unlink(name);
	}
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
	if (w->ctl_fd >= 0)
		close(w->ctl_fd); /* drops the store lock */
	w->ctl = NULL;
	w->ctl_fd = -1;
}

int shm_store_remove(const char *store, char *err, size_t errlen)
{
	char name[SHM_OBJ_NAME_MAX];
	int rc = shm_name_check(store, err, errlen);
	if (rc)
		return rc;
	shm_ctl_name(name, sizeof name, store);

	/* Take the lock for the removal, so that a running writer is not
	 * pulled out from under its readers. */
	int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
	bool had_ctl = fd >= 0;
	if (fd < 0 && errno != ENOENT) {
		shm_seterr(err, errlen, "cannot open %s%s: %s", SHM_DIR, name, strerror(errno));
		return FLAGSHM_ESYS;
	}
	if (fd >= 0) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
		if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
			int32_t pid = 0;
			if (pread(fd, &pid, sizeof pid, offsetof(fs_ctl, c_writer_pid)) != sizeof pid)
				pid = 0;
			shm_seterr(err, errlen, "store '%s' is held by flagshm-writer pid %d; stop it first",
			       store, (int)pid);
			close(fd);
			return FLAGSHM_EBUSY;
		}
	}
	uint64_t maxgen = 0;
	rc = sweep(store, 0, &maxgen, err, errlen);
	bool had_gen = maxgen > 0;
	if (had_ctl && shm_unlink(name) < 0 && errno != ENOENT && !rc) {
		shm_seterr(err, errlen, "cannot remove %s%s: %s", SHM_DIR, name, strerror(errno));
		rc = FLAGSHM_ESYS;
	}
	if (fd >= 0)
		close(fd);
	if (!rc && !had_ctl && !had_gen) {
		shm_seterr(err, errlen, "store '%s' does not exist (no %s%s)", store, SHM_DIR, name);
		return FLAGSHM_ENOSTORE;
	}
	return rc;
}
