/*
 * writer/compile/keyidx.h - a string -> index map over the document's own
 * strings, for the names the compiler looks up per flag (flag keys, rule
 * ids). A jansson object did this before: it copies every key and
 * allocates a value per entry, which was a tenth of compile time at
 * 100,000 flags.
 *
 * Keys are not copied: they must outlive the map (they are the parsed
 * document's). Lookups take the key by length; callers pass strlen() of a
 * jansson string, as json_object_get did, so a key with an embedded NUL
 * means what it meant before.
 */
#ifndef FLAGSHM_WRITER_KEYIDX_H
#define FLAGSHM_WRITER_KEYIDX_H

#include <stddef.h>
#include <stdint.h>

typedef struct wc_kent {
	const char *s;
	uint32_t len, hash;
	uint32_t val;
	uint32_t gen; /* the entry is live when gen == the map's gen */
} wc_kent;

typedef struct wc_kidx {
	wc_kent *e;
	size_t cap, n; /* cap a power of two; n live entries */
	uint32_t gen;
} wc_kidx;

/* Empty map sized for about EXPECT keys. 0, or -1 out of memory
 * (wc_kidx_free is safe after either). */
int wc_kidx_init(wc_kidx *m, size_t expect);
void wc_kidx_free(wc_kidx *m);

/* Forget every key in O(1) (the slots stay allocated for the next use). */
void wc_kidx_reset(wc_kidx *m);

/* The value of S[0..len), or -1 when absent. */
long wc_kidx_get(const wc_kidx *m, const char *s, size_t len);

/* Add S[0..len) -> VAL (S not present). 0, or -1 out of memory. */
int wc_kidx_put(wc_kidx *m, const char *s, size_t len, uint32_t val);

#endif
