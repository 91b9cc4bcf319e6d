/*
 * shm/text.c - escaping control characters and redacting URL userinfo
 * (text.h). Pure functions: no allocation, no I/O.
 */
#include "text.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Output of at most CAP-1 bytes: a piece is written whole or not at all,
 * and once one piece did not fit nothing more is written, so the result is
 * always a prefix of the full text. */
typedef struct out {
	char *dst;
	size_t cap, len, used;
	bool full;
} out;

static void emit(out *o, const char *p, size_t n)
{
	if (!o->full && o->cap > 0 && o->used + n < o->cap) {
		memcpy(o->dst + o->used, p, n);
		o->used += n;
	} else {
		o->full = true;
	}
	o->len += n;
}

static size_t finish(out *o)
{
	if (o->cap > 0)
		o->dst[o->used] = '\0';
	return o->len;
}

/* Length of the valid UTF-8 sequence at P (N bytes left) and its code
 * point, or 0 when the bytes are not valid UTF-8 (overlong forms,
 * surrogates and values above U+10FFFF included). */
static size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t c, min;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, c = p[0] & 0x1f, min = 0x80;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, c = p[0] & 0x0f, min = 0x800;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, c = p[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

static bool hidden_code_point(uint32_t c)
{
	return (c >= 0x80 && c <= 0x9f) || c == 0x200e || c == 0x200f ||
	       (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

/* The escape of control byte C (< 0x20 or 0x7f) in STYLE. */
static size_t control_escape(char *esc, size_t n, unsigned char c, enum fs_text_style style)
{
	if (style == FS_TEXT_PLAIN)
		return (size_t)snprintf(esc, n, "\\x%02x", c);
	static const char short_form[] = {['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f',
					  ['\r'] = 'r', ['"'] = '"', ['\\'] = '\\'};
	if (c < sizeof short_form && short_form[c])
		return (size_t)snprintf(esc, n, "\\%c", short_form[c]);
	return (size_t)snprintf(esc, n, "\\u%04x", c);
}

size_t fs_text_escape(char *dst, size_t cap, const char *src, size_t n, enum fs_text_style style)
{
	out o = {.dst = dst, .cap = cap};
	const unsigned char *p = (const unsigned char *)src;
	bool json = style == FS_TEXT_JSON;
	char esc[16];
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len;
		bool special = json && (p[i] == '"' || p[i] == '\\');
		if (p[i] >= 0x20 && p[i] < 0x7f && !special) {
			size_t j = i + 1; /* a run of printable ASCII at once */
			while (j < n && p[j] >= 0x20 && p[j] < 0x7f &&
			       !(json && (p[j] == '"' || p[j] == '\\')))
				j++;
			emit(&o, src + i, j - i);
			i = j;
		} else if (p[i] < 0x80) {
			emit(&o, esc, control_escape(esc, sizeof esc, p[i], style));
			i++;
		} else if ((len = utf8_seq(p + i, n - i, &cp)) > 0) {
			if (hidden_code_point(cp))
				emit(&o, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp));
			else
				emit(&o, src + i, len);
			i += len;
		} else {
			if (json)
				emit(&o, "\\ufffd", 6);
			else
				emit(&o, esc, (size_t)snprintf(esc, sizeof esc, "\\x%02x", p[i]));
			i++;
		}
	}
	return finish(&o);
}

/* Where the authority of a URL ends: the path, query, fragment, or the
 * end of the word the URL is in. */
static bool authority_end(char c)
{
	return c == '\0' || c == '/' || c == '?' || c == '#' || c == ' ' || c == '\t' ||
	       c == '\n' || c == '\r' || c == '"' || c == '\'' || c == '<' || c == '>' ||
	       c == ')' || c == ',' || c == ';';
}

size_t fs_text_redact(char *dst, size_t cap, const char *src)
{
	out o = {.dst = dst, .cap = cap};
	const char *p = src;
	for (;;) {
		const char *sep = strstr(p, "://");
		if (!sep)
			break;
		const char *host = sep + 3, *end = host, *at = NULL;
		for (; !authority_end(*end); end++)
			if (*end == '@')
				at = end; /* the last '@': a password may hold one */
		emit(&o, p, (size_t)(host - p));
		if (at) {
			emit(&o, "***", 3);
			p = at;
		} else {
			p = host;
		}
		emit(&o, p, (size_t)(end - p));
		p = end;
	}
	emit(&o, p, strlen(p));
	return finish(&o);
}
