/*
 * writer/compile/keyidx.c - open addressing, linear probing, load under
 * one half. See keyidx.h.
 */
#include "keyidx.h"
#include "format.h"
#include "hash.h"

#include <stdlib.h>
#include <string.h>

static int alloc_slots(wc_kidx *m, size_t cap)
{
	wc_kent *e = calloc(cap, sizeof *e);

	if (!e)
		return -1;
	m->e = e;
	m->cap = cap;
	m->n = 0;
	m->gen = 1; /* calloc'd slots have gen 0: all free */
	return 0;
}

int wc_kidx_init(wc_kidx *m, size_t expect)
{
	size_t cap = 16;

	memset(m, 0, sizeof *m);
	while (cap < 2 * expect && cap < ((size_t)1 << 40))
		cap *= 2;
	return alloc_slots(m, cap);
}

void wc_kidx_free(wc_kidx *m)
{
	free(m->e);
	memset(m, 0, sizeof *m);
}

void wc_kidx_reset(wc_kidx *m)
{
	m->n = 0;
	if (++m->gen == 0) { /* wrapped: stale stamps could look live */
		memset(m->e, 0, m->cap * sizeof *m->e);
		m->gen = 1;
	}
}

static size_t find(const wc_kidx *m, const char *s, size_t len, uint32_t h)
{
	size_t mask = m->cap - 1, i = h & mask;

	for (; m->e[i].gen == m->gen; i = (i + 1) & mask) {
		const wc_kent *k = &m->e[i];
		if (k->hash == h && k->len == len && memcmp(k->s, s, len) == 0)
			return i;
	}
	return i;
}

long wc_kidx_get(const wc_kidx *m, const char *s, size_t len)
{
	if (!m->e || len > UINT32_MAX)
		return -1;
	uint32_t h = fs_key_hash(s, len);
	size_t i = find(m, s, len, h);

	return m->e[i].gen == m->gen ? (long)m->e[i].val : -1;
}

static int grow(wc_kidx *m)
{
	wc_kidx old = *m;

	if (alloc_slots(m, old.cap * 2) < 0) {
		*m = old;
		return -1;
	}
	for (size_t i = 0; i < old.cap; i++) {
		if (old.e[i].gen != old.gen)
			continue;
		size_t j = find(m, old.e[i].s, old.e[i].len, old.e[i].hash);
		m->e[j] = old.e[i];
		m->e[j].gen = m->gen;
		m->n++;
	}
	free(old.e);
	return 0;
}

int wc_kidx_put(wc_kidx *m, const char *s, size_t len, uint32_t val)
{
	if (!m->e || len > UINT32_MAX)
		return -1;
	if ((m->n + 1) * 2 > m->cap && grow(m) < 0)
		return -1;
	uint32_t h = fs_key_hash(s, len);
	size_t i = find(m, s, len, h);

	if (m->e[i].gen != m->gen)
		m->n++;
	m->e[i] = (wc_kent){s, (uint32_t)len, h, val, m->gen};
	return 0;
}
