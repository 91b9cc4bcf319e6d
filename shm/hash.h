/*
 * shm/hash.h - MurmurHash3_x86_32, fed in pieces so that "salt:id" can be
 * hashed without building the string. Shared by writer and reader.
 */
#ifndef FLAGSHM_SHM_HASH_H
#define FLAGSHM_SHM_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct mm3 {
	uint32_t h;
	uint32_t carry; /* up to 3 pending bytes, little-endian */
	uint32_t ncarry;
	uint32_t total;
} mm3;

void mm3_init(mm3 *m, uint32_t seed);
void mm3_feed(mm3 *m, const void *p, size_t n);
uint32_t mm3_final(mm3 *m);
uint32_t mm3_hash(const void *p, size_t n, uint32_t seed);
/* The finalizer ("fmix32"): a bijection on 32 bits. */
uint32_t mm3_fmix(uint32_t h);

#endif
