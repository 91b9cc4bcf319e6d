/*
 * writer/compile/builder.c - growable snapshot tables and the interning string pool.
 * See builder.h.
 */
#include "builder.h"
#include "hash.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SLOT_EMPTY UINT32_MAX

#define BIG_ALIGN ((size_t)2 << 20)

/*
 * N bytes for a large table or the snapshot, free()-able, not zeroed. A
 * fresh buffer costs one page fault per 4 KiB as it is first written, and
 * a fault is dear in a virtual machine (most of wb_finish at 100,000 flags
 * was faults): one MADV_POPULATE_WRITE maps every page in a single call
 * (half the compile time at 10,000 flags on the bench host). Only a hint:
 * EINVAL before Linux 5.14, and the buffer works the same.
 *
 * Measured on the bench host, 100,000 flags: aligned to 2 MiB (its own
 * mapping, populated once) compiled in 0.6 times the time of a plain malloc
 * with the same populate; adding MADV_HUGEPAGE made it 1.7 times slower
 * (with THP "madvise" the kernel compacts memory synchronously).
 */
static void *snap_alloc(size_t n)
{
	void *p;

	if (n < BIG_ALIGN)
		return malloc(n);
	if (posix_memalign(&p, BIG_ALIGN, n) != 0)
		return NULL;
#ifdef MADV_POPULATE_WRITE
	(void)madvise(p, n & ~((size_t)4095), MADV_POPULATE_WRITE);
#endif
	return p;
}

/* Make room for N more records in T. Indexes are uint32 with FS_NONE
 * reserved, and the pool's offsets are uint32 too. */
static int reserve(wb *b, int t, size_t n)
{
	wb_table *tb = &b->tab[t];
	size_t need, cap;
	uint8_t *p;

	if (b->failed)
		return -1;
	if (n > (size_t)UINT32_MAX - 1 - tb->count) {
		b->failed = 1;
		return -1;
	}
	need = tb->count + n;
	if (need <= tb->cap)
		return 0;
	cap = tb->cap ? tb->cap : 64;
	while (cap < need)
		cap *= 2;
	if (cap * tb->recsize >= BIG_ALIGN) { /* populated in one go, see snap_alloc */
		p = snap_alloc(cap * tb->recsize);
		if (p && tb->count)
			memcpy(p, tb->data, tb->count * tb->recsize);
		if (p)
			free(tb->data);
	} else {
		p = realloc(tb->data, cap * tb->recsize);
	}
	if (!p) {
		b->failed = 1;
		return -1;
	}
	tb->data = p;
	tb->cap = cap;
	return 0;
}

static int slots_grow(wb *b, size_t n)
{
	wb_intern *s = malloc(n * sizeof *s);

	if (!s) {
		b->failed = 1;
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		s[i].len = SLOT_EMPTY;
	for (size_t i = 0; i < b->nslots; i++) {
		size_t j;
		if (b->slots[i].len == SLOT_EMPTY)
			continue;
		for (j = b->slots[i].hash & (n - 1); s[j].len != SLOT_EMPTY; j = (j + 1) & (n - 1))
			;
		s[j] = b->slots[i];
	}
	free(b->slots);
	b->slots = s;
	b->nslots = n;
	return 0;
}

int wb_init(wb *b)
{
	static const char nul = '\0';

	memset(b, 0, sizeof *b);
	for (int t = 0; t < FS_T_COUNT_; t++)
		b->tab[t].recsize = fs_table_recsize[t];
	if (slots_grow(b, 1024) < 0)
		return -1;
	wb_add(b, FS_T_POOL, &nul);
	return b->failed ? -1 : 0;
}

void wb_free(wb *b)
{
	for (int t = 0; t < FS_T_COUNT_; t++)
		free(b->tab[t].data);
	free(b->slots);
	memset(b, 0, sizeof *b);
}

uint32_t wb_add(wb *b, int t, const void *rec)
{
	wb_table *tb = &b->tab[t];

	if (reserve(b, t, 1) < 0)
		return 0;
	memcpy(tb->data + tb->count * tb->recsize, rec, tb->recsize);
	return (uint32_t)tb->count++;
}

uint32_t wb_add_zeroed(wb *b, int t, size_t n)
{
	wb_table *tb = &b->tab[t];
	size_t first = tb->count;

	if (reserve(b, t, n) < 0)
		return 0;
	memset(tb->data + first * tb->recsize, 0, n * tb->recsize);
	tb->count += n;
	return (uint32_t)first;
}

void wb_reserve(wb *b, int t, size_t n)
{
	(void)reserve(b, t, n);
}

void wb_expect_strings(wb *b, size_t n)
{
	size_t slots = b->nslots;

	while (slots < 2 * n && slots < ((size_t)1 << 32))
		slots *= 2;
	if (!b->failed && slots > b->nslots)
		slots_grow(b, slots);
}

uint32_t wb_count(const wb *b, int t)
{
	return (uint32_t)b->tab[t].count;
}

void *wb_at(wb *b, int t, uint32_t i)
{
	return b->tab[t].data + (size_t)i * b->tab[t].recsize;
}

fs_str wb_str(wb *b, const char *s, size_t len)
{
	wb_table *pool = &b->tab[FS_T_POOL];
	fs_str out = {0, 0};
	uint32_t h;
	size_t i;

	if (len == 0 || b->failed)
		return out;
	if (len >= UINT32_MAX) {
		b->failed = 1;
		return out;
	}
	h = mm3_hash(s, len, 0);
	for (i = h & (b->nslots - 1); b->slots[i].len != SLOT_EMPTY; i = (i + 1) & (b->nslots - 1)) {
		const wb_intern *e = &b->slots[i];
		if (e->hash == h && e->len == len && memcmp(pool->data + e->off, s, len) == 0)
			return (fs_str){e->off, e->len};
	}
	if (reserve(b, FS_T_POOL, len + 1) < 0)
		return out;
	out.off = (uint32_t)pool->count;
	out.len = (uint32_t)len;
	memcpy(pool->data + pool->count, s, len);
	pool->data[pool->count + len] = '\0';
	pool->count += len + 1;
	b->slots[i] = (wb_intern){out.off, out.len, h};
	/* Keep the load under one half so probes stay short. */
	if (++b->nused * 2 > b->nslots)
		slots_grow(b, b->nslots * 2);
	return out;
}

static uint64_t align8(uint64_t n)
{
	return (n + 7) & ~(uint64_t)7;
}

int wb_finish(wb *b, const char *env, int64_t compile_us, uint64_t max,
	      uint8_t **bytes, size_t *size)
{
	fs_snap_hdr h;
	uint64_t off[FS_T_COUNT_];
	uint64_t total = align8(sizeof h);
	uint8_t *p;

	memset(&h, 0, sizeof h);
	if (env && *env)
		h.sh_environment = wb_str(b, env, strlen(env));
	if (b->failed)
		return -1;
	for (int t = 0; t < FS_T_COUNT_; t++) {
		off[t] = total;
		total = align8(total + (uint64_t)b->tab[t].count * b->tab[t].recsize);
	}
	*size = (size_t)total;
	if (max > FS_SNAP_MAX)
		max = FS_SNAP_MAX;
	if (total > max)
		return -2;
	p = snap_alloc((size_t)total);
	if (!p) {
		b->failed = 1;
		return -1;
	}
	memset(p + sizeof h, 0, (size_t)(off[0] - sizeof h)); /* padding */
	h.sh_magic = FS_SNAP_MAGIC;
	h.sh_version = FS_FORMAT_VERSION;
	h.sh_hdr_size = sizeof h;
	h.sh_fingerprint = FS_LAYOUT_FINGERPRINT;
	h.sh_size = total;
	h.sh_compile_us = compile_us;
	for (int t = 0; t < FS_T_COUNT_; t++) {
		h.sh_tables[t].t_off = (uint32_t)off[t];
		h.sh_tables[t].t_count = (uint32_t)b->tab[t].count;
		size_t len = b->tab[t].count * b->tab[t].recsize;
		uint64_t end = t + 1 < FS_T_COUNT_ ? off[t + 1] : total;
		if (len)
			memcpy(p + off[t], b->tab[t].data, len);
		memset(p + off[t] + len, 0, (size_t)(end - off[t] - len)); /* padding */
	}
	memcpy(p, &h, sizeof h);
	/* Last: the checksum covers the header from sh_compile_us on. */
	h.sh_checksum = fs_checksum(p + FS_SNAP_SUMMED_FROM, (size_t)total - FS_SNAP_SUMMED_FROM);
	memcpy(p, &h, sizeof h);
	*bytes = p;
	return 0;
}
