/*
 * shm/ctl.c - the control object's text fields (c_last_error, c_sync_state):
 * written by the writer while any number of readers copy them.
 *
 * A sequence lock (the Linux kernel's seqcount): the writer makes c_text_seq
 * odd, rewrites the bytes, makes it even again; a reader copies the bytes
 * between two loads of the counter and keeps the copy only when both loads
 * saw the same even value. Readers never write the control object (they map
 * it PROT_READ), so they cannot slow the writer down; a reader retries a
 * bounded number of times and then reports the field as busy.
 *
 * The bytes themselves are copied with relaxed atomic byte accesses: a
 * racing copy is expected (and thrown away), and must not be a data race in
 * C11's sense.
 */
#include "shm.h"

#include <string.h>

#define TEXT_READ_TRIES 1000

static void text_field(const fs_ctl *ctl, shm_ctl_text f, const char **p, size_t *n)
{
	if (f == SHM_TEXT_LAST_ERROR) {
		*p = ctl->c_last_error;
		*n = sizeof ctl->c_last_error;
	} else {
		*p = ctl->c_sync_state;
		*n = sizeof ctl->c_sync_state;
	}
}

void shm_ctl_text_set(fs_ctl *ctl, shm_ctl_text f, const char *text)
{
	const char *cp;
	size_t n;
	text_field(ctl, f, &cp, &n);
	char *dst = (char *)cp;
	size_t len = strnlen(text, n - 1);

	/* Only the writer holding the store lock stores c_text_seq. Relaxed
	 * increment to odd, then a release fence: the odd value is visible
	 * before any of the bytes below (pairs with the acquire fence in
	 * shm_ctl_text_get, which orders the bytes it copied before its
	 * second load of the counter). */
	uint32_t seq = atomic_load_explicit(&ctl->c_text_seq, memory_order_relaxed);
	atomic_store_explicit(&ctl->c_text_seq, seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	for (size_t i = 0; i < n; i++)
		__atomic_store_n(&dst[i], i < len ? text[i] : '\0', __ATOMIC_RELAXED);
	/* Release: the bytes above are visible before the even value (pairs
	 * with the acquire load of the first read in shm_ctl_text_get). */
	atomic_store_explicit(&ctl->c_text_seq, seq + 2, memory_order_release);
}

int shm_ctl_text_get(const fs_ctl *ctl, shm_ctl_text f, char *buf, size_t bufn)
{
	const char *src;
	size_t n;
	text_field(ctl, f, &src, &n);
	if (!bufn)
		return -1;
	size_t take = n < bufn - 1 ? n : bufn - 1;
	for (int tries = 0; tries < TEXT_READ_TRIES; tries++) {
		/* Acquire: pairs with the release store of the even value. */
		uint32_t s1 = atomic_load_explicit(&ctl->c_text_seq, memory_order_acquire);
		if (s1 & 1)
			continue; /* being rewritten */
		for (size_t i = 0; i < take; i++)
			buf[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
		buf[take] = '\0';
		/* Acquire fence: the copies above happen before the second
		 * load (pairs with the writer's release fence after it made
		 * the counter odd). */
		atomic_thread_fence(memory_order_acquire);
		uint32_t s2 = atomic_load_explicit(&ctl->c_text_seq, memory_order_relaxed);
		if (s1 == s2)
			return 0;
	}
	buf[0] = '\0';
	return -1;
}
