/*
 * shm/hash.c - MurmurHash3_x86_32 (Austin Appleby's reference, public
 * domain) fed in pieces, the index key hash, and the snapshot checksum.
 *
 * The streaming form gives exactly the reference result for the
 * concatenation of everything fed: blocks are read little-endian as the
 * reference does on x86, so a bucket is the same on every host.
 */
#include "hash.h"
#include "format.h"

#include <string.h>

#define MM3_C1 0xcc9e2d51u
#define MM3_C2 0x1b873593u

static inline uint32_t rotl32(uint32_t x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static inline uint32_t load_le32(const unsigned char *p)
{
	/* Compilers turn this into one load on little-endian hosts. */
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint32_t mm3_mixk(uint32_t k)
{
	k *= MM3_C1;
	k = rotl32(k, 15);
	return k * MM3_C2;
}

static inline uint32_t mm3_block(uint32_t h, uint32_t k)
{
	h ^= mm3_mixk(k);
	h = rotl32(h, 13);
	return h * 5 + 0xe6546b64u;
}

void mm3_init(mm3 *m, uint32_t seed)
{
	m->h = seed;
	m->carry = 0;
	m->ncarry = 0;
	m->total = 0;
}

void mm3_feed(mm3 *m, const void *p, size_t n)
{
	const unsigned char *b = p;
	uint32_t h = m->h;

	/* The reference xors the length in as a 32-bit int: wrap the same way. */
	m->total += (uint32_t)n;

	/* Complete a block started by an earlier piece. */
	if (m->ncarry) {
		while (n && m->ncarry < 4) {
			m->carry |= (uint32_t)*b++ << (8 * m->ncarry++);
			n--;
		}
		if (m->ncarry < 4) {
			m->h = h;
			return;
		}
		h = mm3_block(h, m->carry);
		m->carry = 0;
		m->ncarry = 0;
	}
	for (; n >= 4; n -= 4, b += 4)
		h = mm3_block(h, load_le32(b));
	/* Keep the tail: it is a block if more bytes follow, the tail if not. */
	for (uint32_t i = 0; i < n; i++)
		m->carry |= (uint32_t)b[i] << (8 * i);
	m->ncarry = (uint32_t)n;
	m->h = h;
}

uint32_t mm3_fmix(uint32_t h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

uint32_t mm3_final(mm3 *m)
{
	uint32_t h = m->h;

	if (m->ncarry)
		h ^= mm3_mixk(m->carry);
	return mm3_fmix(h ^ m->total);
}

/* The one-shot form skips the carry bookkeeping: it is on the path of every
 * lookup by key. */
uint32_t mm3_hash(const void *p, size_t n, uint32_t seed)
{
	const unsigned char *b = p;
	uint32_t h = seed;
	size_t i = 0;

	for (; i + 4 <= n; i += 4)
		h = mm3_block(h, load_le32(b + i));
	uint32_t k = 0;
	switch (n & 3) {
	case 3: k ^= (uint32_t)b[i + 2] << 16; /* fall through */
	case 2: k ^= (uint32_t)b[i + 1] << 8;  /* fall through */
	case 1: k ^= b[i]; h ^= mm3_mixk(k);
	}
	return mm3_fmix(h ^ (uint32_t)n);
}

uint32_t fs_key_hash(const char *key, size_t len)
{
	return mm3_hash(key, len, 0x9747b28cu);
}

/*
 * fs_checksum: four lanes, each h_j = rotl64(h_j ^ (w * K1), 31) * K2 over
 * every fourth native-endian 64-bit word (lane j takes words 4i+j; the tail
 * is zero-padded to a whole word and goes to the lanes in turn), lanes
 * seeded K0 ^ (n * K2) ^ j, then folded h = (h * K2) ^ h_j and finished with
 * an avalanche (xor-shift 33, * K1, xor-shift 29). Four independent
 * multiply chains run in parallel on one core, so a reader validating a
 * new generation spends about a quarter of the time of a single chain.
 * It catches torn and damaged bytes, not an attacker.
 */
#define CK_K0 0x9e3779b97f4a7c15ull
#define CK_K1 0xbf58476d1ce4e5b9ull
#define CK_K2 0x94d049bb133111ebull

static inline uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t ck_step(uint64_t h, uint64_t w)
{
	return rotl64(h ^ (w * CK_K1), 31) * CK_K2;
}

uint64_t fs_checksum(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t seed = CK_K0 ^ ((uint64_t)n * CK_K2);
	uint64_t h[4] = {seed, seed ^ 1, seed ^ 2, seed ^ 3};
	uint64_t w[4];
	size_t i = 0;

	for (; i + 32 <= n; i += 32) {
		memcpy(w, b + i, 32);
		h[0] = ck_step(h[0], w[0]);
		h[1] = ck_step(h[1], w[1]);
		h[2] = ck_step(h[2], w[2]);
		h[3] = ck_step(h[3], w[3]);
	}
	for (unsigned lane = 0; i < n; i += 8, lane++) {
		uint64_t t = 0;
		memcpy(&t, b + i, n - i < 8 ? n - i : 8);
		h[lane] = ck_step(h[lane], t);
	}
	uint64_t r = h[0];
	for (int j = 1; j < 4; j++)
		r = (r * CK_K2) ^ h[j];
	r ^= r >> 33;
	r *= CK_K1;
	r ^= r >> 29;
	return r;
}
