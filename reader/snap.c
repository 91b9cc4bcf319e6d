/*
 * reader/snap.c - validate a snapshot once, then find flags in it.
 *
 * snap_open checks everything evaluation relies on without re-checking:
 * the header, the layout, the checksum, that every table lies inside the
 * blob, that the index is a power of two with only valid entries, and that
 * the prerequisite graph has no cycle and no chain deeper than
 * EVAL_MAX_DEPTH. Everything else (an index inside a record) is checked at
 * each access by the accessors of snap.h.
 */
#include "snap.h"
#include "eval.h"
#include "hash.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const tabname[FS_T_COUNT_] = {
	[FS_T_FLAGS] = "flags",	    [FS_T_INDEX] = "index",	[FS_T_SEGMENTS] = "segments",
	[FS_T_RULES] = "rules",	    [FS_T_CONDS] = "conditions", [FS_T_VALUES] = "values",
	[FS_T_SPLITS] = "splits",   [FS_T_PREREQS] = "prerequisites",
	[FS_T_SEMVERS] = "semvers", [FS_T_REGEXES] = "regexes", [FS_T_U32] = "u32",
	[FS_T_STRS] = "strs",	    [FS_T_POOL] = "string pool",
};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
						       ...)
{
	if (err && errlen) {
		int n = snprintf(err, errlen, "snapshot invalid: ");
		if (n >= 0 && (size_t)n < errlen) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return FLAGSHM_ECORRUPT;
}

/* Height of flag FI in the prerequisite graph (0 without prerequisites).
 * MEMO: 0 unvisited, 1 on the current path, h + 2 once known. Recursion
 * stops at EVAL_MAX_DEPTH + 1 levels, so a hostile graph cannot blow the
 * stack; every flag is finished once, so the walk is linear. Returns the
 * height, or -1 for a cycle, -2 for a chain deeper than EVAL_MAX_DEPTH. */
static int prereq_height(const snap *s, uint8_t *memo, uint32_t fi, unsigned level)
{
	if (memo[fi] == 1)
		return -1;
	if (memo[fi])
		return memo[fi] - 2;
	if (level > EVAL_MAX_DEPTH)
		return -2;
	const fs_flag *f = SNAP_FLAG(s, fi);
	int h = 0;
	/* A range outside the table is the evaluator's to report (ERROR). */
	if (snap_range_ok(s, FS_T_PREREQS, f->f_prereq_first, f->f_prereq_count)) {
		memo[fi] = 1;
		for (uint32_t i = 0; i < f->f_prereq_count; i++) {
			uint32_t p = SNAP_PREREQ(s, f->f_prereq_first + i)->pq_flag;
			if (p >= s->count[FS_T_FLAGS])
				continue;
			int ph = prereq_height(s, memo, p, level + 1);
			if (ph < 0)
				return ph;
			if (ph + 1 > h)
				h = ph + 1;
		}
	}
	if (h > EVAL_MAX_DEPTH)
		return -2;
	memo[fi] = (uint8_t)(h + 2);
	return h;
}

static int check_prereqs(const snap *s, char *err, size_t errlen)
{
	uint32_t n = s->count[FS_T_FLAGS];
	if (!s->count[FS_T_PREREQS] || !n)
		return 0;
	uint8_t *memo = calloc(n, 1);
	if (!memo)
		return FLAGSHM_ENOMEM;
	int rc = 0;
	for (uint32_t i = 0; i < n && !rc; i++) {
		int h = prereq_height(s, memo, i, 0);
		if (h < 0) {
			const fs_flag *f = SNAP_FLAG(s, i);
			const char *key = snap_str(s, f->f_key);
			rc = fail(err, errlen,
				  h == -1 ? "prerequisites of flag %u (\"%s\") form a cycle"
					  : "prerequisite chain of flag %u (\"%s\") is deeper than %d",
				  i, key ? key : "?", EVAL_MAX_DEPTH);
		}
	}
	free(memo);
	return rc;
}

/* Index of the first entry before I with the same pattern bytes and flags
 * as entry I, or I. SLOTS (a power of two NSLOTS, holding entry + 1) is an
 * open-addressing table of the entries seen so far. */
static uint32_t regex_first(const snap *s, uint32_t *slots, uint32_t nslots, uint32_t i,
			    const char *pat)
{
	const fs_regex *rx = SNAP_REGEX(s, i);
	uint32_t h = mm3_hash(pat, rx->rx_pattern.len, rx->rx_flags);
	uint32_t k = h & (nslots - 1);
	for (; slots[k]; k = (k + 1) & (nslots - 1)) {
		const fs_regex *o = SNAP_REGEX(s, slots[k] - 1);
		if (o->rx_flags == rx->rx_flags && o->rx_pattern.len == rx->rx_pattern.len &&
		    memcmp(snap_str(s, o->rx_pattern), pat, rx->rx_pattern.len) == 0)
			return slots[k] - 1;
	}
	slots[k] = i + 1;
	return i;
}

/*
 * Compile each regex table entry, and each distinct pattern (bytes and
 * flags) only once: the writer emits every distinct pattern once, but the
 * bytes may come from anyone, so entries that repeat one share its code.
 * s->regex_own marks the entries that own theirs (snap_close frees those).
 * More than FS_REGEX_MAX entries is refused before anything is compiled.
 */
static int compile_regexes(snap *s, char *err, size_t errlen)
{
	uint32_t n = s->count[FS_T_REGEXES];
	if (!n)
		return 0;
	if (n > FS_REGEX_MAX)
		return fail(err, errlen, "%" PRIu32 " regexes, more than the %u a reader compiles", n,
			    FS_REGEX_MAX);
	uint32_t nslots = 1;
	while (nslots < 2 * n)
		nslots *= 2;
	uint32_t *slots = calloc(nslots, sizeof *slots);
	s->regex = calloc(n, sizeof *s->regex);
	s->regex_own = calloc(n, 1);
	if (!slots || !s->regex || !s->regex_own) {
		free(slots);
		return FLAGSHM_ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		const fs_regex *rx = SNAP_REGEX(s, i);
		const char *pat = snap_str(s, rx->rx_pattern);
		if (!pat) {
			free(slots);
			return fail(err, errlen,
				    "regex %u: pattern at %" PRIu32 "+%" PRIu32
				    " is outside the string pool (%" PRIu32 " bytes)",
				    i, rx->rx_pattern.off, rx->rx_pattern.len, s->count[FS_T_POOL]);
		}
		uint32_t first = regex_first(s, slots, nslots, i, pat);
		if (first != i) {
			s->regex[i] = s->regex[first];
			continue;
		}
		uint32_t opts = PCRE2_UTF;
		if (rx->rx_flags & FS_COND_CASE_INSENSITIVE)
			opts |= PCRE2_CASELESS;
		int ec;
		PCRE2_SIZE eo;
		pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, rx->rx_pattern.len, opts, &ec, &eo, NULL);
		/* The writer validated every pattern with the same options; one
		 * that fails here stays NULL and never matches. */
		if (!re)
			continue;
		/* Without JIT (unsupported platform) the interpreter runs under
		 * the same limits: only slower. */
		(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
		s->regex[i] = re;
		s->regex_own[i] = 1;
	}
	free(slots);
	return 0;
}

int snap_open(snap *s, const void *base, size_t size, char *err, size_t errlen)
{
	void *owner = s->owner;
	memset(s, 0, sizeof *s);
	s->owner = owner;
	if (err && errlen)
		err[0] = '\0';

	const fs_snap_hdr *h = base;
	if (!base)
		return fail(err, errlen, "no bytes (NULL base)");
	if ((uintptr_t)base & 7)
		return fail(err, errlen, "base address %p is not 8-byte aligned", base);
	if (size < sizeof *h)
		return fail(err, errlen, "%zu bytes is smaller than the header (%zu bytes)", size,
			    sizeof *h);
	if (h->sh_magic != FS_SNAP_MAGIC)
		return fail(err, errlen, "bad magic 0x%08" PRIx32 " (expected 0x%08x)", h->sh_magic,
			    FS_SNAP_MAGIC);
	if (h->sh_version != FS_FORMAT_VERSION)
		return fail(err, errlen, "format version %u (this reader reads %u)",
			    (unsigned)h->sh_version, FS_FORMAT_VERSION);
	if (h->sh_hdr_size != sizeof *h)
		return fail(err, errlen, "header size %u (expected %zu)", (unsigned)h->sh_hdr_size,
			    sizeof *h);
	if (h->sh_fingerprint != FS_LAYOUT_FINGERPRINT)
		return fail(err, errlen,
			    "layout fingerprint 0x%08" PRIx32 " (this reader's is 0x%08" PRIx32
			    "): built with another record layout",
			    h->sh_fingerprint, (uint32_t)FS_LAYOUT_FINGERPRINT);
	if (h->sh_size != size || size > FS_SNAP_MAX)
		return fail(err, errlen, "size field %" PRIu64 " but the object has %zu bytes",
			    h->sh_size, size);
	uint64_t sum = fs_checksum((const uint8_t *)base + FS_SNAP_SUMMED_FROM,
				   size - FS_SNAP_SUMMED_FROM);
	if (sum != h->sh_checksum)
		return fail(err, errlen, "checksum 0x%016" PRIx64 " but the bytes sum to 0x%016" PRIx64,
			    h->sh_checksum, sum);

	for (int t = 0; t < FS_T_COUNT_; t++) {
		fs_table tb = h->sh_tables[t];
		/* In 64 bits: count * recsize and off + bytes cannot wrap. */
		uint64_t bytes = (uint64_t)tb.t_count * fs_table_recsize[t];
		if (tb.t_off & 7)
			return fail(err, errlen, "%s table offset %" PRIu32 " is not 8-byte aligned",
				    tabname[t], tb.t_off);
		if (tb.t_off < sizeof *h || (uint64_t)tb.t_off + bytes > size)
			return fail(err, errlen,
				    "%s table [%" PRIu32 ", +%" PRIu64 ") (%" PRIu32
				    " records) is outside the snapshot (header %zu, size %zu)",
				    tabname[t], tb.t_off, bytes, tb.t_count, sizeof *h, size);
		s->tab[t] = (const uint8_t *)base + tb.t_off;
		s->count[t] = tb.t_count;
	}
	s->base = base;
	s->size = size;
	s->generation = h->sh_generation;
	s->published_ms = h->sh_published_ms;
	s->compile_us = h->sh_compile_us;

	if (h->sh_environment.len && !snap_str(s, h->sh_environment))
		return fail(err, errlen, "environment name at %" PRIu32 "+%" PRIu32
			    " is outside the string pool (%" PRIu32 " bytes)",
			    h->sh_environment.off, h->sh_environment.len, s->count[FS_T_POOL]);

	uint32_t nidx = s->count[FS_T_INDEX];
	if (nidx == 0 || (nidx & (nidx - 1)))
		return fail(err, errlen, "index has %" PRIu32 " slots, not a power of two", nidx);
	const uint32_t *idx = s->tab[FS_T_INDEX];
	for (uint32_t i = 0; i < nidx; i++)
		if (idx[i] > s->count[FS_T_FLAGS])
			return fail(err, errlen,
				    "index slot %" PRIu32 " holds flag %" PRIu32 ", past the %" PRIu32
				    " flags",
				    i, idx[i] - 1, s->count[FS_T_FLAGS]);

	int rc = check_prereqs(s, err, errlen);
	if (!rc)
		rc = compile_regexes(s, err, errlen);
	if (rc) {
		if (rc == FLAGSHM_ENOMEM && err && errlen)
			snprintf(err, errlen, "snapshot: out of memory");
		snap_close(s);
		s->base = NULL;
		return rc;
	}
	return 0;
}

void snap_close(snap *s)
{
	if (!s || !s->regex)
		return;
	for (uint32_t i = 0; i < s->count[FS_T_REGEXES]; i++)
		if (s->regex_own && s->regex_own[i])
			pcre2_code_free(s->regex[i]);
	free(s->regex);
	free(s->regex_own);
	s->regex = NULL;
	s->regex_own = NULL;
}

int64_t snap_find(const snap *s, const char *key, size_t len)
{
	const uint32_t *idx = s->tab[FS_T_INDEX];
	uint32_t n = s->count[FS_T_INDEX];
	if (!idx || !n || len > UINT32_MAX)
		return -1;
	uint32_t h = fs_key_hash(key, len);
	uint32_t mask = n - 1;
	/* At most n probes: a full index without the key still ends. */
	for (uint32_t i = 0; i < n; i++) {
		uint32_t slot = idx[(h + i) & mask];
		if (slot == 0)
			return -1;
		const fs_flag *f = SNAP_FLAG(s, slot - 1);
		if (!f || f->f_key_hash != h || f->f_key.len != len)
			continue;
		const char *k = snap_str(s, f->f_key);
		if (k && memcmp(k, key, len) == 0)
			return slot - 1;
	}
	return -1;
}
