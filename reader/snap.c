/*
 * reader/snap.c - map a snapshot (checks whose cost does not depend on its
 * size), check each flag and compile each regex on first use, verify a
 * whole snapshot, and find flags in it. See snap.h for what is checked
 * where.
 */
#include "snap.h"
#include "eval.h"
#include "hash.h"
#include "rules.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
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

/* ------------------------------------------------------ prerequisites */

/* Depth-first walk of flag FI's prerequisites, as the evaluator would take
 * them: PATH holds the flags of the current chain (a flag on it again is a
 * cycle), *VISITS counts prerequisite evaluations over every path. False
 * on a cycle, a chain deeper than SEM_PREREQ_DEPTH_MAX or more than
 * SEM_PREREQ_VISITS_MAX visits: the compiler refuses all three, so only
 * hostile bytes get there. Bounded: depth and visits are. */
static bool prereq_walk(const snap *s, uint32_t fi, uint32_t *path, unsigned depth,
			unsigned *visits)
{
	const fs_flag *f = SNAP_FLAG(s, fi);
	if (!f || !f->f_prereq_count)
		return true; /* a bad index is the evaluator's to report */
	if (depth >= SEM_PREREQ_DEPTH_MAX)
		return false;
	if (!snap_range_ok(s, FS_T_PREREQS, f->f_prereq_first, f->f_prereq_count))
		return true; /* likewise: the evaluator answers SNAPSHOT_INVALID */
	path[depth] = fi;
	for (uint32_t i = 0; i < f->f_prereq_count; i++) {
		uint32_t p = SNAP_PREREQ(s, f->f_prereq_first + i)->pq_flag;
		if (++*visits > SEM_PREREQ_VISITS_MAX)
			return false;
		for (unsigned k = 0; k <= depth; k++)
			if (path[k] == p)
				return false; /* a cycle */
		if (!prereq_walk(s, p, path, depth + 1, visits))
			return false;
	}
	return true;
}

uint8_t snap_flag_check(const snap *cs, uint32_t i)
{
	const fs_flag *f = SNAP_FLAG(cs, i);
	if (!f)
		return SNAP_FLAG_BAD;
	if (!f->f_prereq_count)
		return SNAP_FLAG_OK; /* nothing spans records: no state at all */
	snap *s = (snap *)cs; /* the lazily filled parts are the map's own memory */
	/* The state array is made on the first flag with prerequisites: a
	 * map of flags without any costs nothing here. Acquire: pairs with
	 * the release CAS below (the zeroed array is seen whole). */
	_Atomic uint8_t *state = atomic_load_explicit(&s->flag_state, memory_order_acquire);
	if (!state) {
		_Atomic uint8_t *mine = calloc(s->count[FS_T_FLAGS], 1), *none = NULL;
		if (mine && !atomic_compare_exchange_strong_explicit(&s->flag_state, &none, mine,
								     memory_order_acq_rel,
								     memory_order_acquire)) {
			free((void *)mine);
			mine = none; /* another thread's */
		}
		state = mine; /* NULL without memory: checked every time */
	}
	uint8_t st = state ? atomic_load_explicit(&state[i], memory_order_relaxed) : 0;
	if (st)
		return st;
	uint32_t path[SEM_PREREQ_DEPTH_MAX + 1];
	unsigned visits = 0;
	st = prereq_walk(s, i, path, 0, &visits) ? SNAP_FLAG_OK : SNAP_FLAG_BAD;
	/* Relaxed: a racing check stores the same value; the answer is a
	 * pure function of bytes that never change under a map. */
	if (state)
		atomic_store_explicit(&state[i], st, memory_order_relaxed);
	return st;
}

static int check_prereqs(const snap *s, char *err, size_t errlen)
{
	for (uint32_t i = 0; i < s->count[FS_T_FLAGS]; i++) {
		if (snap_flag_check(s, i) == SNAP_FLAG_OK)
			continue;
		const fs_flag *f = SNAP_FLAG(s, i);
		const char *key = snap_str(s, f->f_key);
		return fail(err, errlen,
			    "prerequisites of flag %u (\"%s\") form a cycle, or a chain deeper than "
			    "%d, or more than %d evaluations",
			    i, key ? key : "?", SEM_PREREQ_DEPTH_MAX, SEM_PREREQ_VISITS_MAX);
	}
	return 0;
}

/* ------------------------------------------------------------- regexes */

/* One lock for every compile of every snapshot of the process: compiling
 * is rare (once per distinct pattern and map) and slow anyway, and one
 * lock is what the fork handlers must hold. Nothing else waits on it. */
static pthread_mutex_t rx_lock = PTHREAD_MUTEX_INITIALIZER;

void snap_fork_prepare(void)
{
	pthread_mutex_lock(&rx_lock);
}

void snap_fork_parent(void)
{
	pthread_mutex_unlock(&rx_lock);
}

void snap_fork_child(void)
{
	pthread_mutex_init(&rx_lock, NULL);
}

/* Under rx_lock: an entry before I... of any index with the same pattern
 * bytes and flags, already compiled, or I itself (then inserted). The table
 * is allocated on the first compile of the map: memory for regexes only in
 * a process that matches one. */
static uint32_t regex_first(snap *s, uint32_t i, const char *pat)
{
	const fs_regex *rx = SNAP_REGEX(s, i);
	if (!s->rx_slots) {
		uint32_t n = s->count[FS_T_REGEXES], ns = 1;
		while (ns < 2 * n)
			ns *= 2;
		s->rx_slots = calloc(ns, sizeof *s->rx_slots);
		if (!s->rx_slots)
			return i; /* no sharing; still correct */
		s->rx_nslots = ns;
	}
	uint32_t h = mm3_hash(pat, rx->rx_pattern.len, rx->rx_flags);
	uint32_t k = h & (s->rx_nslots - 1);
	for (; s->rx_slots[k]; k = (k + 1) & (s->rx_nslots - 1)) {
		const fs_regex *o = SNAP_REGEX(s, s->rx_slots[k] - 1);
		if (o->rx_flags == rx->rx_flags && o->rx_pattern.len == rx->rx_pattern.len &&
		    memcmp(snap_str(s, o->rx_pattern), pat, rx->rx_pattern.len) == 0)
			return s->rx_slots[k] - 1;
	}
	s->rx_slots[k] = i + 1;
	return i;
}

const void *snap_regex(const snap *cs, uint32_t i)
{
	if (i >= cs->count[FS_T_REGEXES])
		return SNAP_RX_CORRUPT;
	/* Acquire: pairs with the release stores under rx_lock; the array
	 * and the compiled code are complete before their pointers are seen. */
	void *_Atomic *arr = atomic_load_explicit(&cs->regex, memory_order_acquire);
	void *re = arr ? atomic_load_explicit(&arr[i], memory_order_acquire) : NULL;
	if (re)
		return re == SNAP_RX_NONE ? NULL : re;

	snap *s = (snap *)cs; /* the lazily filled parts are the map's own memory */
	const fs_regex *rx = SNAP_REGEX(s, i);
	const char *pat = snap_str(s, rx->rx_pattern);
	if (!pat)
		return SNAP_RX_CORRUPT;
	/* A thread cancelled here must not leave the lock held. */
	int cs_old;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs_old);
	pthread_mutex_lock(&rx_lock);
	/* The arrays are made on the first match of the map (under the lock:
	 * relaxed loads, release store). */
	if (!atomic_load_explicit(&s->regex, memory_order_relaxed)) {
		void *_Atomic *a = calloc(s->count[FS_T_REGEXES], sizeof *a);
		s->regex_own = calloc(s->count[FS_T_REGEXES], 1);
		if (!a || !s->regex_own) {
			free((void *)a);
			free(s->regex_own);
			s->regex_own = NULL;
			pthread_mutex_unlock(&rx_lock);
			pthread_setcancelstate(cs_old, NULL);
			return NULL; /* out of memory: no match, retried next time */
		}
		atomic_store_explicit(&s->regex, a, memory_order_release);
	}
	re = atomic_load_explicit(&s->regex[i], memory_order_relaxed); /* under the lock */
	if (!re) {
		uint32_t first = regex_first(s, i, pat);
		if (first != i) {
			re = atomic_load_explicit(&s->regex[first], memory_order_relaxed);
		} else {
			uint32_t opts = PCRE2_UTF;
			if (rx->rx_flags & FS_COND_CASE_INSENSITIVE)
				opts |= PCRE2_CASELESS;
			int ec;
			PCRE2_SIZE eo;
			pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat, rx->rx_pattern.len, opts, &ec,
							 &eo, NULL);
			/* The writer validated every pattern with the same
			 * options; one that fails here never matches. Without
			 * JIT the interpreter runs under the same limits. */
			if (code) {
				(void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
				s->regex_own[i] = 1;
				re = code;
			} else {
				re = SNAP_RX_NONE;
			}
		}
		/* Release: pairs with the acquire load above. */
		atomic_store_explicit(&s->regex[i], re, memory_order_release);
	}
	pthread_mutex_unlock(&rx_lock);
	pthread_setcancelstate(cs_old, NULL);
	return re == SNAP_RX_NONE ? NULL : re;
}

/* Compile every entry (snap_verify): more than FS_REGEX_MAX is refused by
 * snap_map already; a pattern outside the pool is refused here. */
static int compile_regexes(snap *s, char *err, size_t errlen)
{
	for (uint32_t i = 0; i < s->count[FS_T_REGEXES]; i++) {
		if (snap_regex(s, i) != SNAP_RX_CORRUPT)
			continue;
		const fs_regex *rx = SNAP_REGEX(s, i);
		return fail(err, errlen,
			    "regex %u: pattern at %" PRIu32 "+%" PRIu32
			    " is outside the string pool (%" PRIu32 " bytes)",
			    i, rx->rx_pattern.off, rx->rx_pattern.len, s->count[FS_T_POOL]);
	}
	return 0;
}

/* ------------------------------------------------------------ map, verify */

int snap_map(snap *s, const void *base, size_t size, char *err, size_t errlen)
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
	uint32_t nrx = s->count[FS_T_REGEXES];
	if (nrx > FS_REGEX_MAX)
		return fail(err, errlen, "%" PRIu32 " regexes, more than the %u a reader compiles",
			    nrx, FS_REGEX_MAX);

	/* Nothing is allocated here: the per-flag and per-regex state is
	 * made on first use (snap_flag_check, snap_regex), so a map costs
	 * the same whatever the snapshot's size. */
	return 0;
}

int snap_verify(snap *s, char *err, size_t errlen)
{
	const fs_snap_hdr *h = (const fs_snap_hdr *)s->base;
	uint64_t sum = fs_checksum(s->base + FS_SNAP_SUMMED_FROM, s->size - FS_SNAP_SUMMED_FROM);
	if (sum != h->sh_checksum)
		return fail(err, errlen, "checksum 0x%016" PRIx64 " but the bytes sum to 0x%016" PRIx64,
			    h->sh_checksum, sum);
	const uint32_t *idx = s->tab[FS_T_INDEX];
	for (uint32_t i = 0; i < s->count[FS_T_INDEX]; i++)
		if (idx[i] > s->count[FS_T_FLAGS])
			return fail(err, errlen,
				    "index slot %" PRIu32 " holds flag %" PRIu32 ", past the %" PRIu32
				    " flags",
				    i, idx[i] - 1, s->count[FS_T_FLAGS]);
	int rc = check_prereqs(s, err, errlen);
	if (!rc)
		rc = compile_regexes(s, err, errlen);
	return rc;
}

int snap_open(snap *s, const void *base, size_t size, char *err, size_t errlen)
{
	int rc = snap_map(s, base, size, err, errlen);
	if (rc)
		return rc;
	rc = snap_verify(s, err, errlen);
	if (rc) {
		snap_close(s);
		s->base = NULL;
	}
	return rc;
}

void snap_close(snap *s)
{
	if (!s)
		return;
	void *_Atomic *arr = atomic_load_explicit(&s->regex, memory_order_relaxed);
	if (arr) {
		for (uint32_t i = 0; i < s->count[FS_T_REGEXES]; i++)
			if (s->regex_own && s->regex_own[i])
				pcre2_code_free(atomic_load_explicit(&arr[i], memory_order_relaxed));
	}
	free((void *)arr);
	free(s->regex_own);
	free(s->rx_slots);
	free((void *)atomic_load_explicit(&s->flag_state, memory_order_relaxed));
	s->regex = NULL;
	s->regex_own = NULL;
	s->rx_slots = NULL;
	s->flag_state = NULL;
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
