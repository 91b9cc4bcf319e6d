/*
 * shm/trust.c - who may own a store's objects, and opening an object under
 * /dev/shm without trusting its name.
 *
 * /dev/shm is a sticky world-writable directory: any local user can create
 * any name in it first. A name therefore proves nothing; the owner of the
 * object behind it does, because only that user (and root) can write it or
 * its mode. Readers map only regular files owned by a trusted writer user and
 * not writable by group or others; the writer only ever writes objects it
 * created or that its own user owns. See docs/architecture.md, "Who can
 * change what readers see".
 *
 * Every open here is O_NOFOLLOW (a symlink is refused, not followed) and
 * O_NONBLOCK (a FIFO planted under the name cannot block the open), and the
 * type is checked on the descriptor after the open, so there is no window
 * between the check and the use.
 */
#include "shm.h"
#include "flagshm.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The writer user the packaging sets at build time (meson -Dwriter_user=),
 * e.g. Debian's system user; "" for none. */
#ifndef FLAGSHM_WRITER_USER
#define FLAGSHM_WRITER_USER ""
#endif

static void trust_add(shm_trust *t, uid_t uid)
{
	for (unsigned i = 0; i < t->n; i++)
		if (t->uid[i] == uid)
			return;
	if (t->n < SHM_TRUST_MAX)
		t->uid[t->n++] = uid;
}

/* A user name or a decimal uid. */
static int uid_parse(const char *spec, uid_t *out)
{
	if (!spec || !*spec)
		return -1;
	char *end;
	errno = 0;
	unsigned long v = strtoul(spec, &end, 10);
	if (*end == '\0' && errno == 0 && spec[0] != '-' && v < (unsigned long)(uid_t)-1) {
		*out = (uid_t)v;
		return 0;
	}
	struct passwd pw, *res = NULL;
	char buf[1024];
	if (getpwnam_r(spec, &pw, buf, sizeof buf, &res) != 0 || !res)
		return -1;
	*out = res->pw_uid;
	return 0;
}

int shm_trust_set(shm_trust *t, const char *spec, char *err, size_t errlen)
{
	uid_t uid;
	if (uid_parse(spec, &uid) != 0) {
		shm_seterr(err, errlen, "writer user '%.64s' is neither a uid nor a known user name",
			   spec ? spec : "");
		return FLAGSHM_EINVAL;
	}
	t->n = 0;
	trust_add(t, 0); /* root can rewrite anything anyway */
	trust_add(t, uid);
	return 0;
}

int shm_trust_default(shm_trust *t, char *err, size_t errlen)
{
	const char *env = getenv("FLAGSHM_WRITER_UID");
	if (env && *env) {
		int rc = shm_trust_set(t, env, err, errlen);
		if (rc)
			shm_seterr(err, errlen, "FLAGSHM_WRITER_UID='%.64s' is neither a uid nor a known "
				   "user name", env);
		return rc;
	}
	t->n = 0;
	trust_add(t, 0);
	trust_add(t, geteuid());
	uid_t built;
	if (FLAGSHM_WRITER_USER[0] && uid_parse(FLAGSHM_WRITER_USER, &built) == 0)
		trust_add(t, built);
	return 0;
}

bool shm_trust_has(const shm_trust *t, uid_t uid)
{
	for (unsigned i = 0; i < t->n; i++)
		if (t->uid[i] == uid)
			return true;
	return false;
}

/* "uid 1001 (alice)" or "uid 1001". */
void shm_uid_describe(char *buf, size_t n, uid_t uid)
{
	struct passwd pw, *res = NULL;
	char pbuf[1024];
	if (getpwuid_r(uid, &pw, pbuf, sizeof pbuf, &res) == 0 && res)
		snprintf(buf, n, "uid %u (%.32s)", (unsigned)uid, res->pw_name);
	else
		snprintf(buf, n, "uid %u", (unsigned)uid);
}

static void trust_describe(char *buf, size_t n, const shm_trust *t)
{
	size_t o = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < t->n && o < n; i++) {
		char one[64];
		shm_uid_describe(one, sizeof one, t->uid[i]);
		o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? ", " : "", one);
	}
}

int shm_obj_open(const char *name, int flags, int *fdp, struct stat *st, char *err, size_t errlen)
{
	char path[sizeof SHM_DIR + SHM_OBJ_NAME_MAX];
	snprintf(path, sizeof path, "%s%s", SHM_DIR, name);
	int fd = open(path, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return FLAGSHM_ENOSTORE;
		if (e == ELOOP) {
			shm_seterr(err, errlen, "%s is a symbolic link, not a flagshm object: refused", path);
			return FLAGSHM_EUNTRUSTED;
		}
		if (e == EEXIST)
			return FLAGSHM_EBUSY; /* O_EXCL: the caller says what it means */
		shm_seterr(err, errlen, "cannot open %s: %s", path, strerror(e));
		errno = e; /* for callers that tell EACCES apart */
		return FLAGSHM_ESYS;
	}
	if (fstat(fd, st) < 0) {
		int e = errno;
		close(fd);
		shm_seterr(err, errlen, "cannot stat %s: %s", path, strerror(e));
		return FLAGSHM_ESYS;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		shm_seterr(err, errlen, "%s is not a regular file (mode 0%o): not a flagshm object, "
			   "refused", path, (unsigned)st->st_mode);
		return FLAGSHM_EUNTRUSTED;
	}
	*fdp = fd;
	return 0;
}

int shm_obj_check(const char *name, const struct stat *st, const shm_trust *t, char *err,
		  size_t errlen)
{
	char who[64], trusted[256];
	if (!shm_trust_has(t, st->st_uid)) {
		shm_uid_describe(who, sizeof who, st->st_uid);
		trust_describe(trusted, sizeof trusted, t);
		shm_seterr(err, errlen, "%s%s is owned by %s, not by a trusted writer user (%s): "
			   "refused; set FLAGSHM_WRITER_UID to trust that user", SHM_DIR, name, who,
			   trusted);
		return FLAGSHM_EUNTRUSTED;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		shm_seterr(err, errlen, "%s%s has mode 0%03o: writable by group or others, refused",
			   SHM_DIR, name, (unsigned)(st->st_mode & 0777));
		return FLAGSHM_EUNTRUSTED;
	}
	return 0;
}
