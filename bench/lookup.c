/*
 * bench/lookup.c - the limit probe: one key looked up in an mmapped
 * open-addressing table, and nothing else.
 *
 * Issue 10 states every evaluation target as a ratio to this: what a
 * lookup of a short key costs on this machine when the table is laid out
 * as the snapshot's index (shm/format.h): u32 slots holding a record index
 * + 1, probed linearly from fs_key_hash(key) & (slots - 1); a record holds
 * the key's hash, its offset in a string pool and its length; a hit
 * compares hash, length, then bytes. The keys are the run's own (gen_key,
 * --flags of them) plus LOOKUP_KEY, 14 bytes, the one looked up; the slot
 * count follows the writer's rule (the smallest power of two >= 2 x keys).
 * The table is written into a memfd and mapped read-only and shared, as a
 * reader maps a snapshot. There are no bounds checks here: the probe is
 * the floor, not a reader (a reader must check every offset it follows).
 */
#include "bench.h"
#include "format.h" /* fs_key_hash */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct lk_rec {
	uint32_t hash, off, len;
	uint8_t value;
	uint8_t pad[3];
} lk_rec;

struct lookup_table {
	void *base;
	size_t size;
	const uint32_t *slots;
	const lk_rec *recs;
	const char *pool;
	uint32_t mask;
};

lookup_table *lookup_build(size_t nkeys, char *err, size_t errlen)
{
	size_t nrec = nkeys + 1, nslots = 16, pool_len = 0;
	while (nslots < 2 * nrec)
		nslots *= 2;
	char key[64];
	for (size_t i = 0; i < nkeys; i++) {
		gen_key(i, key, sizeof key);
		pool_len += strlen(key);
	}
	pool_len += strlen(LOOKUP_KEY);
	size_t off_recs = nslots * sizeof(uint32_t);
	size_t off_pool = off_recs + nrec * sizeof(lk_rec);
	size_t size = off_pool + pool_len;

	lookup_table *t = calloc(1, sizeof *t);
	char *w = calloc(1, size);
	int fd = memfd_create("flagshm-bench-probe", MFD_CLOEXEC);
	if (!t || !w || fd < 0) {
		snprintf(err, errlen, "lookup probe: %s", fd < 0 ? strerror(errno) : "out of memory");
		goto fail;
	}
	uint32_t *slots = (uint32_t *)w;
	lk_rec *recs = (lk_rec *)(w + off_recs);
	char *pool = w + off_pool;
	size_t at = 0;
	for (size_t i = 0; i < nrec; i++) {
		if (i < nkeys)
			gen_key(i, key, sizeof key);
		else
			snprintf(key, sizeof key, "%s", LOOKUP_KEY);
		size_t len = strlen(key);
		memcpy(pool + at, key, len);
		uint32_t h = fs_key_hash(key, len);
		recs[i] = (lk_rec){ .hash = h, .off = (uint32_t)at, .len = (uint32_t)len,
				    .value = (uint8_t)(i & 1) | 1 };
		at += len;
		size_t s = h & (nslots - 1);
		while (slots[s])
			s = (s + 1) & (nslots - 1);
		slots[s] = (uint32_t)i + 1;
	}
	for (size_t done = 0; done < size;) {
		ssize_t n = write(fd, w + done, size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "lookup probe: write: %s", strerror(errno));
			goto fail;
		}
		done += (size_t)n;
	}
	void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		snprintf(err, errlen, "lookup probe: mmap: %s", strerror(errno));
		goto fail;
	}
	close(fd);
	free(w);
	t->base = m;
	t->size = size;
	t->slots = m;
	t->recs = (const lk_rec *)((const char *)m + off_recs);
	t->pool = (const char *)m + off_pool;
	t->mask = (uint32_t)nslots - 1;
	return t;
fail:
	if (fd >= 0)
		close(fd);
	free(w);
	free(t);
	return NULL;
}

void lookup_free(lookup_table *t)
{
	if (!t)
		return;
	munmap(t->base, t->size);
	free(t);
}

size_t lookup_slots(const lookup_table *t)
{
	return (size_t)t->mask + 1;
}

/* Not inlined into the loop: a call into another function, as an
 * evaluation is (the cases call into the library's translation units). */
__attribute__((noinline)) unsigned lookup_find(const lookup_table *t, const char *key)
{
	size_t len = strlen(key);
	uint32_t h = fs_key_hash(key, len);
	for (uint32_t i = 0; i <= t->mask; i++) {
		uint32_t slot = t->slots[(h + i) & t->mask];
		if (!slot)
			return 0xff;
		const lk_rec *r = &t->recs[slot - 1];
		if (r->hash == h && r->len == len && memcmp(t->pool + r->off, key, len) == 0)
			return r->value;
	}
	return 0xff;
}
