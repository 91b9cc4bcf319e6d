/*
 * writer/sync/cache.c - the cold-start cache file (cache.h).
 */
#include "cache.h"
#include "clock.h"

#include "flagshm.h"
#include "flagshm.pb-c.h"
#include "format.h"
#include "proto_conv.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PATH_LEN 4096

static int sys_fail(char *err, size_t errlen, const char *what, const char *path)
{
	snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
	return FLAGSHM_ESYS;
}

void ws_cache_meta_free(ws_cache_meta *m)
{
	free(m->source);
	free(m->etag);
	free(m->last_event_id);
	memset(m, 0, sizeof *m);
}

/* mkdir DIR's missing parents (0755) and DIR itself (0700). */
static int make_path(const char *dir, char *err, size_t errlen)
{
	char p[PATH_LEN];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof p) {
		snprintf(err, errlen, "state directory name is empty or too long");
		return FLAGSHM_EINVAL;
	}
	memcpy(p, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		p[i] = '\0';
		if (mkdir(p, i < n ? 0755 : 0700) < 0 && errno != EEXIST)
			return sys_fail(err, errlen, "cannot create", p);
		p[i] = i < n ? '/' : '\0';
	}
	return 0;
}

int ws_cache_dir_open(const char *dir, bool create, char *err, size_t errlen)
{
	char p[PATH_LEN];
	size_t n = strlen(dir);
	struct stat st;
	int dfd, rc;

	if (create && (rc = make_path(dir, err, errlen)) != 0)
		return rc;
	if (n == 0 || n >= sizeof p) {
		snprintf(err, errlen, "state directory name is empty or too long");
		return FLAGSHM_EINVAL;
	}
	/* "link/" would follow the link whatever O_NOFOLLOW says. */
	memcpy(p, dir, n + 1);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	/* O_NOFOLLOW: a symlink in place of the directory (the last component;
	 * its parents are the administrator's) is refused, not followed. */
	dfd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		int e = errno;
		if (lstat(p, &st) == 0 && S_ISLNK(st.st_mode)) {
			snprintf(err, errlen,
				 "refusing state directory %s: it is a symbolic link, not followed "
				 "(give the real path as --state-dir)", dir);
			return FLAGSHM_EINVAL;
		}
		errno = e;
		return sys_fail(err, errlen, "cannot open state directory", dir);
	}
	if (fstat(dfd, &st) < 0) {
		rc = sys_fail(err, errlen, "cannot stat state directory", dir);
		close(dfd);
		return rc;
	}
	/* Whoever else can write here can plant the document the writer
	 * publishes at its next start. */
	if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(err, errlen,
			 "refusing state directory %s: owner uid %u, mode %04o; it must be owned by "
			 "uid %u (this writer) and not writable by group or others "
			 "(chown/chmod it, or choose another --state-dir)",
			 dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), (unsigned)geteuid());
		close(dfd);
		return FLAGSHM_EINVAL;
	}
	return dfd;
}

int ws_cache_dir_make(const char *dir, char *err, size_t errlen)
{
	int dfd = ws_cache_dir_open(dir, true, err, errlen);

	if (dfd < 0)
		return dfd;
	close(dfd);
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* A new file DFD/.document.pb.XXXXXX (NAME gets its name), never an
 * existing file or a symlink's target. */
static int make_temp(int dfd, char name[static 32])
{
	static const char az[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

	for (int tries = 0; tries < 100; tries++) {
		unsigned char r[6];
		int fd;
		if (getentropy(r, sizeof r) < 0)
			return -1;
		snprintf(name, 32, ".%s.%c%c%c%c%c%c", WS_CACHE_FILE, az[r[0] % 62], az[r[1] % 62],
			 az[r[2] % 62], az[r[3] % 62], az[r[4] % 62], az[r[5] % 62]);
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	return -1;
}

/* Write BUF to DIR/document.pb: temp file, fsync, rename, fsync DIR. */
static int replace_file(const char *dir, const uint8_t *buf, size_t n, char *err, size_t errlen)
{
	char tmp[32];
	int fd, dfd, rc = 0;

	dfd = ws_cache_dir_open(dir, false, err, errlen);
	if (dfd < 0)
		return dfd;
	fd = make_temp(dfd, tmp);
	if (fd < 0) {
		rc = sys_fail(err, errlen, "cannot create a file in", dir);
		close(dfd);
		return rc;
	}
	if (write_all(fd, buf, n) < 0)
		rc = sys_fail(err, errlen, "cannot write a temporary file in", dir);
	else if (fsync(fd) < 0)
		rc = sys_fail(err, errlen, "cannot fsync a temporary file in", dir);
	if (close(fd) < 0 && rc == 0)
		rc = sys_fail(err, errlen, "cannot close a temporary file in", dir);
	if (rc == 0 && renameat(dfd, tmp, dfd, WS_CACHE_FILE) < 0)
		rc = sys_fail(err, errlen, "cannot rename over " WS_CACHE_FILE " in", dir);
	if (rc) {
		unlinkat(dfd, tmp, 0);
		close(dfd);
		return rc;
	}
	/* The rename is durable once the directory is. */
	if (fsync(dfd) < 0)
		rc = sys_fail(err, errlen, "cannot fsync", dir);
	close(dfd);
	return rc;
}

int ws_cache_save(const char *dir, const json_t *doc, const ws_cache_meta *meta, char *err,
		  size_t errlen)
{
	Flagshm__V1__CacheFile cf = FLAGSHM__V1__CACHE_FILE__INIT;
	uint8_t *pb = NULL, *file;
	size_t pblen, flen;
	int rc;

	rc = ws_proto_encode(doc, &pb, &pblen, err, errlen);
	if (rc)
		return rc;
	cf.has_document = 1;
	cf.document.data = pb;
	cf.document.len = pblen;
	cf.has_checksum = 1;
	cf.checksum = fs_checksum(pb, pblen);
	cf.has_saved_ms = 1;
	cf.saved_ms = fs_clock_ms(CLOCK_REALTIME);
	if (meta) {
		cf.source = meta->source;
		cf.etag = meta->etag;
		cf.last_event_id = meta->last_event_id;
	}
	flen = flagshm__v1__cache_file__get_packed_size(&cf);
	file = malloc(flen ? flen : 1);
	if (!file) {
		free(pb);
		snprintf(err, errlen, "out of memory");
		return FLAGSHM_ENOMEM;
	}
	flagshm__v1__cache_file__pack(&cf, file);
	free(pb);
	rc = replace_file(dir, file, flen, err, errlen);
	free(file);
	return rc;
}

/* Read DIR/document.pb whole, at most MAX bytes: 0, FLAGSHM_ENOSTORE,
 * FLAGSHM_ECORRUPT (too large, not a regular file, a symlink),
 * FLAGSHM_EINVAL (DIR refused), FLAGSHM_ESYS or FLAGSHM_ENOMEM. PATH names
 * the file in ERR. */
static int read_file(const char *dir, const char *path, size_t max, uint8_t **out,
		     size_t *outlen, char *err, size_t errlen)
{
	struct stat st;
	uint8_t *buf;
	size_t len = 0;
	int dfd, fd;

	dfd = ws_cache_dir_open(dir, false, err, errlen);
	if (dfd == FLAGSHM_ESYS && errno == ENOENT) {
		snprintf(err, errlen, "no cache file %s", path);
		return FLAGSHM_ENOSTORE;
	}
	if (dfd < 0)
		return dfd;
	/* O_NONBLOCK: a FIFO planted here must not stop the writer; the type
	 * is checked below, before any read. */
	fd = openat(dfd, WS_CACHE_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	close(dfd);
	if (fd < 0 && errno == ENOENT) {
		snprintf(err, errlen, "no cache file %s", path);
		return FLAGSHM_ENOSTORE;
	}
	if (fd < 0 && errno == ELOOP) {
		snprintf(err, errlen, "corrupt cache file %s: a symbolic link, not followed", path);
		return FLAGSHM_ECORRUPT;
	}
	if (fd < 0)
		return sys_fail(err, errlen, "cannot open", path);
	if (fstat(fd, &st) < 0) {
		close(fd);
		return sys_fail(err, errlen, "cannot stat", path);
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		close(fd);
		snprintf(err, errlen, "corrupt cache file %s: not a regular file of at most %zu bytes",
			 path, max);
		return FLAGSHM_ECORRUPT;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return FLAGSHM_ENOMEM;
	}
	while (len < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int rc = sys_fail(err, errlen, "cannot read", path);
			free(buf);
			close(fd);
			return rc;
		}
		if (r == 0)
			break; /* shrank under us: the parse will tell */
		len += (size_t)r;
	}
	close(fd);
	*out = buf;
	*outlen = len;
	return 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int ws_cache_load(const char *dir, size_t max_bytes, json_t **doc, ws_cache_meta *meta, char *err,
		  size_t errlen)
{
	char path[PATH_LEN], why[512];
	Flagshm__V1__CacheFile *cf;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	*doc = NULL;
	if (meta)
		memset(meta, 0, sizeof *meta);
	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, WS_CACHE_FILE) >= sizeof path) {
		snprintf(err, errlen, "state directory name too long");
		return FLAGSHM_EINVAL;
	}
	rc = read_file(dir, path, max_bytes, &buf, &len, err, errlen);
	if (rc)
		return rc;
	cf = flagshm__v1__cache_file__unpack(NULL, len, buf);
	free(buf);
	if (!cf || !cf->has_document || !cf->has_checksum) {
		if (cf)
			flagshm__v1__cache_file__free_unpacked(cf, NULL);
		snprintf(err, errlen, "corrupt cache file %s: not a flagshm cache file (%zu bytes)",
			 path, len);
		return FLAGSHM_ECORRUPT;
	}
	if (fs_checksum(cf->document.data, cf->document.len) != cf->checksum) {
		flagshm__v1__cache_file__free_unpacked(cf, NULL);
		snprintf(err, errlen, "corrupt cache file %s: checksum mismatch", path);
		return FLAGSHM_ECORRUPT;
	}
	rc = ws_proto_decode(cf->document.data, cf->document.len, NULL, doc, why, sizeof why);
	if (rc == FLAGSHM_EINVAL) {
		snprintf(err, errlen, "corrupt cache file %s: %s", path, why);
		rc = FLAGSHM_ECORRUPT;
	} else if (rc) {
		snprintf(err, errlen, "%s", why);
	}
	if (rc == 0 && meta) {
		meta->source = dup_or_null(cf->source);
		meta->etag = dup_or_null(cf->etag);
		meta->last_event_id = dup_or_null(cf->last_event_id);
		meta->saved_ms = cf->has_saved_ms ? cf->saved_ms : 0;
		if ((cf->source && !meta->source) || (cf->etag && !meta->etag) ||
		    (cf->last_event_id && !meta->last_event_id)) {
			ws_cache_meta_free(meta);
			json_decref(*doc);
			*doc = NULL;
			snprintf(err, errlen, "out of memory");
			rc = FLAGSHM_ENOMEM;
		}
	}
	flagshm__v1__cache_file__free_unpacked(cf, NULL);
	return rc;
}
