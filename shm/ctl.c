/*
 * shm/ctl.c - the control object's text fields (ctl_last_error, ctl_sync_state):
 * written by the writer while any number of readers copy them.
 *
 * A sequence lock (the Linux kernel's seqcount): the writer makes ctl_text_seq
 * odd, rewrites the bytes, makes it even again; a reader copies the bytes
 * between two loads of the counter and keeps the copy only when both loads
 * saw the same even value. Readers never write the control object (they map
 * it PROT_READ), so they cannot slow the writer down; a reader retries a
 * bounded number of times and then reports the field as busy.
 *
 * The bytes themselves are copied with relaxed atomic byte accesses: a
 * racing copy is expected (and thrown away), and must not be a data race in
 * C11's sense. Also here: the writer's other stores into the control
 * object's second cache line (heartbeat, last sync, staleness threshold).
 */
#include "shm.h"
#include "clock.h"

#include <string.h>

#define TEXT_READ_TRIES 1000

void shm_ctl_beat(fs_ctl *ctl)
{
	/* Relaxed: read alone, as a time (flagshm_store_info, status). */
	atomic_store_explicit(&ctl->ctl_heartbeat_ms, fs_clock_ms(CLOCK_REALTIME),
			      memory_order_relaxed);
}

void shm_ctl_synced(fs_ctl *ctl, int64_t unix_ms)
{
	/* Relaxed: read alone (store_stale, flagshm_store_age, status). */
	atomic_store_explicit(&ctl->ctl_last_sync_ms, unix_ms, memory_order_relaxed);
}

void shm_ctl_set_stale_after(fs_ctl *ctl, int64_t ms)
{
	/* Relaxed: read alone (store_stale); a reader that pairs it with an
	 * older last-sync time for an instant answers stale one call late. */
	atomic_store_explicit(&ctl->ctl_stale_after_ms, ms, memory_order_relaxed);
}

static void text_field(const fs_ctl *ctl, shm_ctl_text f, _Atomic char **p, size_t *n)
{
	/* The fields are written only through shm_ctl_text_set (the writer's
	 * mapping is writable; a reader's PROT_READ one is only read). */
	fs_ctl *c = (fs_ctl *)ctl;
	if (f == SHM_TEXT_LAST_ERROR) {
		*p = c->ctl_last_error;
		*n = sizeof c->ctl_last_error;
	} else {
		*p = c->ctl_sync_state;
		*n = sizeof c->ctl_sync_state;
	}
}

void shm_ctl_text_set(fs_ctl *ctl, shm_ctl_text f, const char *text)
{
	_Atomic char *dst;
	size_t n;
	text_field(ctl, f, &dst, &n);
	size_t len = strnlen(text, n - 1);

	/* Only the writer holding the store lock stores ctl_text_seq. Relaxed
	 * increment to odd, then a release fence: the odd value is visible
	 * before any of the bytes below (pairs with the acquire fence in
	 * shm_ctl_text_get, which orders the bytes it copied before its
	 * second load of the counter). */
	uint32_t seq = atomic_load_explicit(&ctl->ctl_text_seq, memory_order_relaxed);
	atomic_store_explicit(&ctl->ctl_text_seq, seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	for (size_t i = 0; i < n; i++)
		atomic_store_explicit(&dst[i], i < len ? text[i] : '\0', memory_order_relaxed);
	/* Release: the bytes above are visible before the even value (pairs
	 * with the acquire load of the first read in shm_ctl_text_get). */
	atomic_store_explicit(&ctl->ctl_text_seq, seq + 2, memory_order_release);
}

int shm_ctl_text_get(const fs_ctl *ctl, shm_ctl_text f, char *buf, size_t bufn)
{
	_Atomic char *src;
	size_t n;
	text_field(ctl, f, &src, &n);
	if (!bufn)
		return -1;
	size_t take = n < bufn - 1 ? n : bufn - 1;
	for (int tries = 0; tries < TEXT_READ_TRIES; tries++) {
		/* Acquire: pairs with the release store of the even value. */
		uint32_t s1 = atomic_load_explicit(&ctl->ctl_text_seq, memory_order_acquire);
		if (s1 & 1)
			continue; /* being rewritten */
		for (size_t i = 0; i < take; i++)
			buf[i] = atomic_load_explicit(&src[i], memory_order_relaxed);
		buf[take] = '\0';
		/* Acquire fence: the copies above happen before the second
		 * load (pairs with the writer's release fence after it made
		 * the counter odd). */
		atomic_thread_fence(memory_order_acquire);
		uint32_t s2 = atomic_load_explicit(&ctl->ctl_text_seq, memory_order_relaxed);
		if (s1 == s2)
			return 0;
	}
	buf[0] = '\0';
	return -1;
}
