/*
 * writer/load.c - read a flag file and parse it as JSON.
 *
 * jansson would report an empty file, binary data or bad UTF-8 with a
 * message about an unexpected token; those are checked first so the user
 * learns what is actually wrong with the file.
 */
#include "compile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Length of the UTF-8 sequence at P (at most N bytes), 0 when invalid:
 * overlong forms, surrogates and code points past U+10FFFF included. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp, min;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f, min = 0x80;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f, min = 0x800;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Text checks jansson would report confusingly. 0 or -1 with a message. */
static int check_text(const unsigned char *p, size_t n, const char *label, wr_errors *errs)
{
	size_t line = 1, col = 1, ws = 0;

	/* Only whitespace is as empty as no bytes, to the user. */
	while (ws < n && (p[ws] == ' ' || p[ws] == '\t' || p[ws] == '\r' || p[ws] == '\n'))
		ws++;
	if (ws == n) {
		wr_errors_add(errs, "%s: the file is empty (expected a JSON object or array)", label);
		return -1;
	}
	if (memchr(p, '\0', n)) {
		size_t at = (size_t)((const unsigned char *)memchr(p, '\0', n) - p);
		wr_errors_add(errs, "%s: binary data (NUL byte at offset %zu), not JSON text", label, at);
		return -1;
	}
	for (size_t i = 0; i < n;) {
		size_t len = utf8_seq(p + i, n - i);
		if (len == 0) {
			wr_errors_add(errs, "%s:%zu:%zu: invalid UTF-8 (byte 0x%02x)", label, line, col,
				      p[i]);
			return -1;
		}
		if (p[i] == '\n')
			line++, col = 1;
		else
			col++;
		i += len;
	}
	return 0;
}

int wr_load_buffer(const char *buf, size_t len, const char *label, const wr_limits *lim,
		   json_t **doc, wr_errors *errs)
{
	const unsigned char *p = (const unsigned char *)buf;
	json_error_t jerr;

	*doc = NULL;
	if (lim && len > lim->max_doc_bytes) {
		wr_errors_add(errs, "%s: the file is %zu bytes, more than the limit max_doc_bytes (%zu)",
			      label, len, lim->max_doc_bytes);
		return -1;
	}
	/* A UTF-8 byte order mark, as some editors write, is not JSON: skip it. */
	if (len >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
		p += 3, len -= 3;
	if (check_text(p, len, label, errs) < 0)
		return -1;
	/* DECODE_ANY: a scalar root parses, so the validator can say what a
	 * document must be instead of jansson's "'[' or '{' expected". */
	*doc = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!*doc) {
		wr_errors_add(errs, "%s:%d:%d: %s", label, jerr.line, jerr.column, jerr.text);
		return -1;
	}
	return 0;
}

/* Read all of FD, at most MAX bytes: 0, -1 (errno set) or -2 (too large). */
static int read_all(int fd, size_t max, char **out, size_t *outlen)
{
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap);

	if (!buf)
		return -1;
	for (;;) {
		ssize_t r;
		if (len == cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				return -1;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			errno = e;
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > max) {
			free(buf);
			return -2;
		}
	}
	*out = buf;
	*outlen = len;
	return 0;
}

int wr_load_file(const char *file, const wr_limits *lim, json_t **doc, wr_errors *errs)
{
	wr_limits def = wr_limits_default();
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd, rc;

	*doc = NULL;
	if (!lim)
		lim = &def;
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		wr_errors_add(errs, "%s: cannot open: %s", file, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > lim->max_doc_bytes) {
		wr_errors_add(errs, "%s: the file is %jd bytes, more than the limit max_doc_bytes (%zu)",
			      file, (intmax_t)st.st_size, lim->max_doc_bytes);
		close(fd);
		return -1;
	}
	rc = read_all(fd, lim->max_doc_bytes, &buf, &len);
	close(fd);
	if (rc == -2) {
		wr_errors_add(errs, "%s: the file is more than the limit max_doc_bytes (%zu) bytes", file,
			      lim->max_doc_bytes);
		return -1;
	}
	if (rc < 0) {
		wr_errors_add(errs, "%s: cannot read: %s", file, strerror(errno));
		return -1;
	}
	rc = wr_load_buffer(buf, len, file, lim, doc, errs);
	free(buf);
	return rc;
}
