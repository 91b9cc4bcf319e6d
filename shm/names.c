/*
 * shm/names.c - store names and the POSIX shared-memory object names
 * derived from them.
 *
 * A store name becomes part of an object name under /dev/shm, so it is held
 * to a small alphabet: no '/', no '.', nothing that could walk out of the
 * directory or collide with another store's generation objects
 * ("/flagshm.a.5" can only belong to store "a", because names have no '.').
 */
#include "shm.h"
#include "flagshm.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int name_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Quote at most the first 40 bytes of NAME, printable ASCII only, so that a
 * hostile name cannot forge log lines. */
static void quote_name(char *out, size_t n, const char *name)
{
	size_t o = 0;
	for (size_t i = 0; name[i] && i < 40 && o + 5 < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, n - o, "\\x%02x", c);
	}
	if (name[0] && strlen(name) > 40 && o + 4 < n) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o < n ? o : n - 1] = '\0';
}

int shm_name_check(const char *name, char *err, size_t errlen)
{
	char q[200];

	if (!name) {
		if (err && errlen)
			snprintf(err, errlen, "store name is missing");
		return FLAGSHM_ENAME;
	}
	size_t len = strlen(name);
	if (len == 0) {
		if (err && errlen)
			snprintf(err, errlen, "store name is empty; use 1-%d of [A-Za-z0-9_-]",
				 SHM_STORE_NAME_MAX);
		return FLAGSHM_ENAME;
	}
	if (len > SHM_STORE_NAME_MAX) {
		quote_name(q, sizeof q, name);
		if (err && errlen)
			snprintf(err, errlen,
				 "store name '%s' is %zu bytes long; the limit is %d of [A-Za-z0-9_-]",
				 q, len, SHM_STORE_NAME_MAX);
		return FLAGSHM_ENAME;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (name_char_ok(c))
			continue;
		quote_name(q, sizeof q, name);
		if (err && errlen) {
			if (c >= 0x20 && c < 0x7f)
				snprintf(err, errlen,
					 "store name '%s' has '%c' at position %zu; only [A-Za-z0-9_-] is allowed",
					 q, c, i);
			else
				snprintf(err, errlen,
					 "store name '%s' has byte 0x%02x at position %zu; only [A-Za-z0-9_-] is allowed",
					 q, c, i);
		}
		return FLAGSHM_ENAME;
	}
	return 0;
}

void shm_ctl_name(char *buf, size_t n, const char *store)
{
	snprintf(buf, n, "/flagshm.%s", store);
}

void shm_snap_name(char *buf, size_t n, const char *store, uint64_t gen)
{
	snprintf(buf, n, "/flagshm.%s.%" PRIu64, store, gen);
}

void shm_lock_name(char *buf, size_t n, const char *store)
{
	snprintf(buf, n, "/flagshm.%s.lock", store);
}

void shm_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
