/*
 * shm/counters.h - the bytes of a reader's counter region (docs/metrics.md).
 *
 * Each reader process (per store handle) creates its own region with
 * memfd_create, sealed against shrinking, and hands the descriptor to the
 * writer over the store's unix socket. Only the reader writes it; the
 * writer maps it read-only and trusts nothing in it: every size and offset
 * is checked against what it mapped, and a region can only lie about its
 * own counts.
 *
 * Layout: a header (fm_hdr), then records from FM_FIRST up to rh_used,
 * each FM_ALIGN-aligned (one cache line or more: a record belongs to one
 * thread, so no two threads write the same line) and holding a record
 * header, nslots 64-bit counters, then the key and variant bytes. Records
 * are only appended; the owner stores rh_used with release after a record
 * is complete, and the writer loads it with acquire. Counters are written
 * by their one owner thread with relaxed load + store (no read-modify-write
 * needed, nobody else writes them) and read by the writer with relaxed
 * loads: a count is monotonic and a torn read is impossible on 64-bit
 * aligned words.
 */
#ifndef FLAGSHM_SHM_COUNTERS_H
#define FLAGSHM_SHM_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

#define FM_MAGIC 0x544e4346u /* "FCNT" */
#define FM_VERSION 1u
#define FM_ALIGN 64u
#define FM_FIRST 128u		   /* first record offset */
#define FM_CHUNK (64u << 10)	   /* the region grows by this much */
#define FM_REGION_MAX (16u << 20)  /* and no further (the writer maps no more) */
#define FM_KEY_MAX 512u		   /* longer keys count as "(unknown)" */
#define FM_VARIANT_MAX 64u	   /* variant texts are cut to this */
#define FM_BUCKETS 13u		   /* outcome histogram bounds, then +Inf */

enum fm_kind {
	/* Evaluations of (key, variant): slots 0..6 per flagshm_reason,
	 * 7..11 per flagshm_error_code (evaluation errors; variant "(none)"). */
	FM_K_EVAL = 1,
	/* Outcomes of (key, variant): 0 ok, 1 error, 2 sum of seconds (the
	 * bits of a double), 3.. the FM_BUCKETS + 1 buckets (not cumulative). */
	FM_K_OUTCOME = 2,
	/* Exposures (docs/metrics.md): a ring of one thread. Slot 0: entries
	 * written so far (release-stored after each), then FM_RING_N entries
	 * of FM_RING_WORDS words: seq (n + 1 of the entry, release-stored
	 * last), Unix ms, the offset of the FM_K_EVAL record naming flag and
	 * variant | reason << 32 | id length << 40, then the context id. */
	FM_K_RING = 3,
};
#define FM_RING_N 512u
#define FM_RING_WORDS 8u
#define FM_RING_ID_MAX 40u /* context id bytes kept */
#define FM_RING_SLOTS (1u + FM_RING_N * FM_RING_WORDS)
#define FM_EVAL_SLOTS 12u
#define FM_OUT_SLOTS (3u + FM_BUCKETS + 1u)

typedef struct fm_hdr {
	uint32_t rh_magic;   /* FM_MAGIC */
	uint32_t rh_version; /* FM_VERSION */
	uint32_t rh_hdr_size; /* sizeof(fm_hdr) */
	int32_t rh_pid;	     /* informational: the writer uses SO_PEERCRED */
	/* Bytes of records + FM_FIRST; release-stored by the owner after the
	 * record below it is complete, acquire-loaded by the writer. */
	uint64_t rh_used;
	/* Counts the owner could not record (the region is full). Relaxed. */
	uint64_t rh_lost;
} fm_hdr;

typedef struct fm_rec {
	uint32_t r_size;	/* bytes, a multiple of FM_ALIGN */
	uint16_t r_kind;	/* enum fm_kind */
	uint16_t r_nslots;
	uint16_t r_key_len;	/* key bytes after the slots; 0: "(unknown)" */
	uint16_t r_var_len;	/* then variant bytes */
	uint32_t r_pad;
	uint64_t r_slot[];	/* r_nslots counters */
} fm_rec;

_Static_assert(sizeof(fm_hdr) <= FM_FIRST, "fm_hdr fits before the first record");
_Static_assert(sizeof(fm_rec) == 16, "fm_rec layout");
_Static_assert(FM_REGION_MAX % FM_CHUNK == 0, "chunks");

/* The byte the writer answers a region with: exposures wanted or not. */
#define FM_EXPO_ON 'X'
#define FM_EXPO_OFF 'N'

/* Text of a number variant: the shortest of %.15g/%.17g that reads back
 * as V. Both sides use it, so the writer finds the reader's text in the
 * document. Returns the length (< CAP). */
size_t fm_number_text(char *buf, size_t cap, double v);
/* Length of TEXT cut to FM_VARIANT_MAX bytes without splitting a UTF-8
 * sequence. */
size_t fm_variant_cut(const char *text, size_t len);

/* "/dev/shm/flagshm.NAME.sock" (the writer's listening socket) and
 * "/flagshm.NAME.stats" (the writer's aggregate, an shm object). */
void fm_sock_path(char *buf, size_t n, const char *store);
void fm_stats_name(char *buf, size_t n, const char *store);

#endif
