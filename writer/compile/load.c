/*
 * writer/compile/load.c - read a flag file and parse it as JSON.
 *
 * jansson would report an empty file, binary data or bad UTF-8 with a
 * message about an unexpected token; those are checked first so the user
 * learns what is actually wrong with the file.
 */
#include "budget.h"
#include "compile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
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
static int check_text(const unsigned char *p, size_t n, const char *label, wc_errors *errs)
{
	size_t line = 1, col = 1, ws = 0;

	/* Only whitespace is as empty as no bytes, to the user. */
	while (ws < n && (p[ws] == ' ' || p[ws] == '\t' || p[ws] == '\r' || p[ws] == '\n'))
		ws++;
	if (ws == n) {
		wc_errors_add(errs, "%s: the file is empty (expected a JSON object or array)", label);
		return -1;
	}
	if (memchr(p, '\0', n)) {
		size_t at = (size_t)((const unsigned char *)memchr(p, '\0', n) - p);
		wc_errors_add(errs, "%s: binary data (NUL byte at offset %zu), not JSON text", label, at);
		return -1;
	}
	for (size_t i = 0; i < n;) {
		size_t len = utf8_seq(p + i, n - i);
		if (len == 0) {
			wc_errors_add(errs, "%s:%zu:%zu: invalid UTF-8 (byte 0x%02x)", label, line, col,
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

/*
 * Count the flags and segments of the text before parsing it: a document
 * with a million flags is refused at the first flag past max_flags, in
 * one pass that allocates nothing, instead of after jansson has built all
 * of them (600 MB for 38 MB of text). Lexical only: it tracks strings and
 * nesting; what it cannot make sense of is left for jansson to report.
 */
typedef struct scan {
	int depth;	 /* of the container the byte is in; 0 outside the root */
	int target;	 /* depth of the container being counted, 0 none */
	bool root_obj;	 /* the root is an object (else a bare array of flags) */
	bool key_next;	 /* the next string at depth 1 is a key */
	bool first;	 /* the counted container was just opened */
	int pending;	 /* the last key at depth 1: 1 "flags", 2 "segments" */
	const char *what; /* "flags" or "segments" */
	size_t max, count;
	const char *limit; /* the limit's name */
} scan;

static void scan_start(scan *s, int which, const wc_limits *lim)
{
	s->target = s->depth;
	s->first = true;
	s->count = 0;
	s->what = which == 1 ? "flags" : "segments";
	s->max = which == 1 ? lim->max_flags : lim->max_segments;
	s->limit = which == 1 ? "max_flags" : "max_segments";
}

static int scan_counts(const unsigned char *p, size_t n, const char *label, const wc_limits *lim,
		       wc_errors *errs)
{
	scan s = {0};
	bool in_str = false, esc = false;
	size_t key_at = 0, line = 1;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];

		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"') {
				in_str = false;
				if (s.root_obj && s.depth == 1 && s.key_next) {
					size_t kl = i - key_at;
					s.pending = kl == 5 && !memcmp(p + key_at, "flags", 5) ? 1
						  : kl == 8 && !memcmp(p + key_at, "segments", 8) ? 2
						  : 0;
					s.key_next = false;
				}
			}
			continue;
		}
		if (c == '\n')
			line++;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (s.first) { /* the first byte of an entry, or the container's end */
			s.first = false;
			if (c != ']' && c != '}' && ++s.count > s.max) {
				wc_errors_add(errs,
					      "%s:%zu: %s: more than the limit %s (%zu): %s[%zu] starts "
					      "at byte %zu; refused before parsing",
					      label, line, s.what, s.limit, s.max, s.what, s.count - 1, i);
				return -1;
			}
		}
		if (c == ',' && s.depth == s.target && s.target)
			s.first = true;
		switch (c) {
		case '"':
			in_str = true;
			key_at = i + 1;
			break;
		case '{':
		case '[':
			s.depth++;
			if (s.depth == 1) {
				s.root_obj = c == '{';
				s.key_next = s.root_obj;
				if (c == '[')
					scan_start(&s, 1, lim);
			} else if (s.depth == 2 && s.pending && !s.target &&
				   (s.pending == 1 ? c == '[' : c == '{')) {
				scan_start(&s, s.pending, lim);
			}
			s.pending = 0;
			break;
		case '}':
		case ']':
			if (s.depth == s.target)
				s.target = 0;
			s.depth--;
			break;
		case ',':
			if (s.depth == 1 && s.root_obj) {
				s.key_next = true;
				s.pending = 0;
			}
			break;
		default:
			break;
		}
	}
	return 0;
}

int wc_load_buffer(const char *buf, size_t len, const char *label, const wc_limits *lim,
		   json_t **doc, wc_errors *errs)
{
	const unsigned char *p = (const unsigned char *)buf;
	json_error_t jerr;
	wc_budget budget;

	*doc = NULL;
	if (lim && len > lim->max_doc_bytes) {
		wc_errors_add(errs, "%s: the file is %zu bytes, more than the limit max_doc_bytes (%zu)",
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
	if (lim && scan_counts(p, len, label, lim, errs) < 0)
		return -1;
	wc_budget_init(&budget, len, WC_BUDGET_JSON,
		       lim ? lim->max_doc_bytes : wc_limits_default().max_doc_bytes);
	wc_budget_json(&budget);
	*doc = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	wc_budget_json(NULL);
	if (!*doc && budget.hit) {
		/* jansson gives no position for a failed allocation. */
		wc_errors_add(errs,
			      "%s: parsing needs more than %zu bytes of memory (%d times the "
			      "document's %zu bytes plus %u MiB, at most %d times doc-bytes): a "
			      "document this dense in small values ({}, [], 1) is refused",
			      label, budget.limit, WC_BUDGET_JSON, len, WC_BUDGET_FLOOR >> 20,
			      WC_BUDGET_DOC);
		return -1;
	}
	if (!*doc) {
		wc_errors_add(errs, "%s:%d:%d: %s", label, jerr.line, jerr.column, jerr.text);
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

int wc_load_file(const char *file, const wc_limits *lim, json_t **doc, wc_errors *errs)
{
	wc_limits def = wc_limits_default();
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd, rc;

	*doc = NULL;
	if (!lim)
		lim = &def;
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		wc_errors_add(errs, "%s: cannot open: %s", file, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > lim->max_doc_bytes) {
		wc_errors_add(errs, "%s: the file is %jd bytes, more than the limit max_doc_bytes (%zu)",
			      file, (intmax_t)st.st_size, lim->max_doc_bytes);
		close(fd);
		return -1;
	}
	rc = read_all(fd, lim->max_doc_bytes, &buf, &len);
	close(fd);
	if (rc == -2) {
		wc_errors_add(errs, "%s: the file is more than the limit max_doc_bytes (%zu) bytes", file,
			      lim->max_doc_bytes);
		return -1;
	}
	if (rc < 0) {
		wc_errors_add(errs, "%s: cannot read: %s", file, strerror(errno));
		return -1;
	}
	rc = wc_load_buffer(buf, len, file, lim, doc, errs);
	free(buf);
	return rc;
}
