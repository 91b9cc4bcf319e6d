/*
 * shm/format.h - the bytes of a flagshm snapshot and control object.
 *
 * A snapshot is one immutable, position-independent blob: a header, then
 * tables of fixed-size records that refer to each other by index and to
 * strings by (offset, length) into one string pool. Nothing in it is a
 * pointer, so it reads the same at any address in any process.
 *
 * Readers do not trust these bytes: every index is checked against the
 * table sizes they copied out of the header at map time, and every string
 * against the pool size (see reader/snap.h). The writer (writer/compile/compile.c)
 * is the only producer.
 *
 * All integers are native-endian: a snapshot never leaves its host.
 */
#ifndef FLAGSHM_SHM_FORMAT_H
#define FLAGSHM_SHM_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define FS_SNAP_MAGIC 0x4d485346u /* "FSHM" */
#define FS_CTL_MAGIC 0x4c545346u  /* "FSTL" */
#define FS_FORMAT_VERSION 1u

/* A string in the pool: pool[off .. off+len) followed by a NUL at off+len,
 * so a validated string can be handed out as a C string. len excludes NUL. */
typedef struct fs_str {
	uint32_t off;
	uint32_t len;
} fs_str;

#define FS_NONE UINT32_MAX /* "no index" in any index field */

/* Value types. A flag's values are BOOL, NUMBER, STRING or JSON (JSON text
 * in v_str). LIST appears only as a condition operand (see fs_cond). */
enum fs_vtype {
	FS_V_BOOL = 1,
	FS_V_NUMBER = 2,
	FS_V_STRING = 3,
	FS_V_JSON = 4,
	FS_V_LIST = 5,
};

typedef struct fs_value {
	uint8_t v_type;	 /* enum fs_vtype */
	uint8_t v_bool;	 /* FS_V_BOOL */
	uint8_t v_pad[2];
	uint32_t v_count; /* FS_V_LIST: number of elements */
	union {
		double v_num;	/* FS_V_NUMBER */
		fs_str v_str;	/* FS_V_STRING, FS_V_JSON */
		uint32_t v_first; /* FS_V_LIST: first element in the values table */
	};
} fs_value;

/* Operators, in the order of docs/flag-format.md. */
enum fs_op {
	FS_OP_EQUALS = 1,
	FS_OP_NOT_EQUALS,
	FS_OP_IN,
	FS_OP_NOT_IN,
	FS_OP_CONTAINS,
	FS_OP_NOT_CONTAINS,
	FS_OP_STARTS_WITH,
	FS_OP_ENDS_WITH,
	FS_OP_MATCHES,
	FS_OP_GT,
	FS_OP_GTE,
	FS_OP_LT,
	FS_OP_LTE,
	FS_OP_SEMVER_EQ,
	FS_OP_SEMVER_GT,
	FS_OP_SEMVER_LT,
	FS_OP_BEFORE,
	FS_OP_AFTER,
	FS_OP_MAX_ /* one past the last */
};

#define FS_COND_NEGATE 0x01
#define FS_COND_CASE_INSENSITIVE 0x02

/*
 * A condition. c_value is the operand as written (for dump): a value index.
 * The pre-parsed operand depends on the operator:
 *  - IN/NOT_IN: c_value is a FS_V_LIST whose elements are sorted for binary
 *    search: all strings first, ordered bytewise (or by ASCII-lowercase bytes
 *    when FS_COND_CASE_INSENSITIVE), then all numbers, ascending. c_nstr is
 *    the number of strings at the front.
 *  - GT..LTE: c_num.
 *  - SEMVER_*: c_semver indexes the semver table.
 *  - BEFORE/AFTER: c_time_ms (Unix milliseconds).
 *  - MATCHES: c_regex indexes the regex table.
 *  - EQUALS..ENDS_WITH: c_value only.
 */
typedef struct fs_cond {
	fs_str c_attr;
	uint8_t c_op; /* enum fs_op */
	uint8_t c_flags; /* FS_COND_* */
	uint8_t c_pad[2];
	uint32_t c_value;
	uint32_t c_nstr;
	uint32_t c_aux; /* c_semver or c_regex index, else FS_NONE */
	union {
		double c_num;
		int64_t c_time_ms;
	};
} fs_cond;

typedef struct fs_semver {
	uint64_t sv_major, sv_minor, sv_patch;
	fs_str sv_pre; /* pre-release without the '-', len 0 if none; build metadata dropped */
} fs_semver;

typedef struct fs_regex {
	fs_str rx_pattern; /* PCRE2 syntax, see docs/flag-format.md */
	uint32_t rx_flags; /* FS_COND_CASE_INSENSITIVE */
} fs_regex;

/* One band of a split: value served when bucket < sp_upper (cumulative). */
typedef struct fs_split {
	uint32_t sp_value;
	uint32_t sp_weight; /* thousandths of a percent, for dump */
	uint32_t sp_upper;  /* exclusive, 0..100000 */
} fs_split;

typedef struct fs_rule {
	fs_str r_id;
	int32_t r_priority;
	uint32_t r_rollout; /* 0..100000: bucket < r_rollout is inside */
	uint32_t r_cond_first, r_cond_count;	/* conds table */
	uint32_t r_seg_first, r_seg_count;	/* u32 table, segment indexes */
	uint32_t r_variation;			/* value index, or FS_NONE when split */
	uint32_t r_split_first, r_split_count;	/* splits table */
} fs_rule;

typedef struct fs_segment {
	fs_str sg_name;
	uint32_t sg_incl_first, sg_incl_count; /* strs table, sorted bytewise */
	uint32_t sg_cond_first, sg_cond_count; /* conds table */
	uint32_t sg_has_conds;		       /* "conditions" given (may be empty) */
	uint32_t sg_pad;
} fs_segment;

typedef struct fs_prereq {
	uint32_t pq_flag;  /* flag index */
	uint32_t pq_value; /* value index */
} fs_prereq;

enum fs_kind { FS_K_RELEASE = 0, FS_K_OPERATIONAL, FS_K_EXPERIMENT, FS_K_PERMISSION };

typedef struct fs_flag {
	fs_str f_key;
	uint32_t f_key_hash; /* fs_key_hash(key) */
	uint8_t f_vtype;     /* enum fs_vtype of defaultValue */
	uint8_t f_kind;	     /* enum fs_kind */
	uint8_t f_enabled;
	uint8_t f_pad;
	uint32_t f_default, f_off; /* value indexes */
	uint32_t f_rollout;	   /* 0..100000 */
	fs_str f_bucket_by;
	fs_str f_salt;
	uint32_t f_rule_first, f_rule_count;	 /* rules, already in evaluation order */
	uint32_t f_prereq_first, f_prereq_count; /* prereqs */
	/* Metadata, kept for inspection only; len 0 = absent. */
	fs_str f_name, f_description, f_owner;
	fs_str f_created_at, f_updated_at, f_expires_at;
	uint32_t f_tag_first, f_tag_count; /* strs table */
	int64_t f_version;		   /* INT64_MIN = absent */
} fs_flag;

/* Open-addressing index: nbuckets (a power of two) u32 slots holding a flag
 * index + 1, 0 for empty. Probe linearly from fs_key_hash(key) & (n-1). */

typedef struct fs_table {
	uint32_t t_off;	  /* byte offset from the start of the snapshot */
	uint32_t t_count; /* records */
} fs_table;

enum fs_tables {
	FS_T_FLAGS = 0, /* fs_flag */
	FS_T_INDEX,	/* uint32_t */
	FS_T_SEGMENTS,	/* fs_segment */
	FS_T_RULES,	/* fs_rule */
	FS_T_CONDS,	/* fs_cond */
	FS_T_VALUES,	/* fs_value */
	FS_T_SPLITS,	/* fs_split */
	FS_T_PREREQS,	/* fs_prereq */
	FS_T_SEMVERS,	/* fs_semver */
	FS_T_REGEXES,	/* fs_regex */
	FS_T_U32,	/* uint32_t */
	FS_T_STRS,	/* fs_str */
	FS_T_POOL,	/* char: the string pool; t_count is its size in bytes */
	FS_T_COUNT_
};

/*
 * The layout fingerprint: every field of every record, by offset and size,
 * each with a weight of its own, and the number of tables. Field order,
 * offsets and sizes all move it (a weighted sum of record sizes alone would
 * not see two fields swapped), so a reader built against another layout
 * refuses the snapshot instead of misreading it (as LMDB folds its lock
 * layout into MDB_LOCK_FORMAT). The header's own fields are checked one by
 * one (magic, version, header size) before the fingerprint is read.
 */
#define FS_LAYOUT_FIELDS(X) \
	X(w1, fs_str, off) \
	X(w2, fs_str, len) \
	X(w3, fs_value, v_type) \
	X(w4, fs_value, v_bool) \
	X(w5, fs_value, v_count) \
	X(w6, fs_value, v_num) \
	X(w7, fs_value, v_str) \
	X(w8, fs_value, v_first) \
	X(w9, fs_cond, c_attr) \
	X(w10, fs_cond, c_op) \
	X(w11, fs_cond, c_flags) \
	X(w12, fs_cond, c_value) \
	X(w13, fs_cond, c_nstr) \
	X(w14, fs_cond, c_aux) \
	X(w15, fs_cond, c_num) \
	X(w16, fs_cond, c_time_ms) \
	X(w17, fs_semver, sv_major) \
	X(w18, fs_semver, sv_minor) \
	X(w19, fs_semver, sv_patch) \
	X(w20, fs_semver, sv_pre) \
	X(w21, fs_regex, rx_pattern) \
	X(w22, fs_regex, rx_flags) \
	X(w23, fs_split, sp_value) \
	X(w24, fs_split, sp_weight) \
	X(w25, fs_split, sp_upper) \
	X(w26, fs_rule, r_id) \
	X(w27, fs_rule, r_priority) \
	X(w28, fs_rule, r_rollout) \
	X(w29, fs_rule, r_cond_first) \
	X(w30, fs_rule, r_cond_count) \
	X(w31, fs_rule, r_seg_first) \
	X(w32, fs_rule, r_seg_count) \
	X(w33, fs_rule, r_variation) \
	X(w34, fs_rule, r_split_first) \
	X(w35, fs_rule, r_split_count) \
	X(w36, fs_segment, sg_name) \
	X(w37, fs_segment, sg_incl_first) \
	X(w38, fs_segment, sg_incl_count) \
	X(w39, fs_segment, sg_cond_first) \
	X(w40, fs_segment, sg_cond_count) \
	X(w41, fs_segment, sg_has_conds) \
	X(w42, fs_prereq, pq_flag) \
	X(w43, fs_prereq, pq_value) \
	X(w44, fs_flag, f_key) \
	X(w45, fs_flag, f_key_hash) \
	X(w46, fs_flag, f_vtype) \
	X(w47, fs_flag, f_kind) \
	X(w48, fs_flag, f_enabled) \
	X(w49, fs_flag, f_default) \
	X(w50, fs_flag, f_off) \
	X(w51, fs_flag, f_rollout) \
	X(w52, fs_flag, f_bucket_by) \
	X(w53, fs_flag, f_salt) \
	X(w54, fs_flag, f_rule_first) \
	X(w55, fs_flag, f_rule_count) \
	X(w56, fs_flag, f_prereq_first) \
	X(w57, fs_flag, f_prereq_count) \
	X(w58, fs_flag, f_name) \
	X(w59, fs_flag, f_description) \
	X(w60, fs_flag, f_owner) \
	X(w61, fs_flag, f_created_at) \
	X(w62, fs_flag, f_updated_at) \
	X(w63, fs_flag, f_expires_at) \
	X(w64, fs_flag, f_tag_first) \
	X(w65, fs_flag, f_tag_count) \
	X(w66, fs_flag, f_version) \
	X(w67, fs_table, t_off) \
	X(w68, fs_table, t_count)

/* Distinct odd weights, one per field. */
#define FS_W_w1 3u
#define FS_W_w2 5u
#define FS_W_w3 7u
#define FS_W_w4 9u
#define FS_W_w5 11u
#define FS_W_w6 13u
#define FS_W_w7 15u
#define FS_W_w8 17u
#define FS_W_w9 19u
#define FS_W_w10 21u
#define FS_W_w11 23u
#define FS_W_w12 25u
#define FS_W_w13 27u
#define FS_W_w14 29u
#define FS_W_w15 31u
#define FS_W_w16 33u
#define FS_W_w17 35u
#define FS_W_w18 37u
#define FS_W_w19 39u
#define FS_W_w20 41u
#define FS_W_w21 43u
#define FS_W_w22 45u
#define FS_W_w23 47u
#define FS_W_w24 49u
#define FS_W_w25 51u
#define FS_W_w26 53u
#define FS_W_w27 55u
#define FS_W_w28 57u
#define FS_W_w29 59u
#define FS_W_w30 61u
#define FS_W_w31 63u
#define FS_W_w32 65u
#define FS_W_w33 67u
#define FS_W_w34 69u
#define FS_W_w35 71u
#define FS_W_w36 73u
#define FS_W_w37 75u
#define FS_W_w38 77u
#define FS_W_w39 79u
#define FS_W_w40 81u
#define FS_W_w41 83u
#define FS_W_w42 85u
#define FS_W_w43 87u
#define FS_W_w44 89u
#define FS_W_w45 91u
#define FS_W_w46 93u
#define FS_W_w47 95u
#define FS_W_w48 97u
#define FS_W_w49 99u
#define FS_W_w50 101u
#define FS_W_w51 103u
#define FS_W_w52 105u
#define FS_W_w53 107u
#define FS_W_w54 109u
#define FS_W_w55 111u
#define FS_W_w56 113u
#define FS_W_w57 115u
#define FS_W_w58 117u
#define FS_W_w59 119u
#define FS_W_w60 121u
#define FS_W_w61 123u
#define FS_W_w62 125u
#define FS_W_w63 127u
#define FS_W_w64 129u
#define FS_W_w65 131u
#define FS_W_w66 133u
#define FS_W_w67 135u
#define FS_W_w68 137u

#define FS_LAYOUT_TERM_(w, T, f)                                               \
	+(uint32_t)(w) * 2654435761u *                                         \
		((uint32_t)offsetof(T, f) * 256u + (uint32_t)sizeof(((T *)0)->f))
#define FS_LAYOUT_TERM_W_(w, T, f) FS_LAYOUT_TERM_(FS_W_##w, T, f)
#define FS_LAYOUT_FINGERPRINT                                                  \
	((uint32_t)(FS_T_COUNT_ FS_LAYOUT_FIELDS(FS_LAYOUT_TERM_W_)))
typedef struct fs_snap_hdr {
	uint32_t sh_magic;   /* FS_SNAP_MAGIC */
	uint16_t sh_version; /* FS_FORMAT_VERSION */
	uint16_t sh_hdr_size; /* sizeof(fs_snap_hdr) */
	uint32_t sh_fingerprint; /* FS_LAYOUT_FINGERPRINT */
	uint32_t sh_pad;
	uint64_t sh_size;     /* whole snapshot, header included */
	uint64_t sh_checksum; /* fs_checksum of bytes [FS_SNAP_SUMMED_FROM, sh_size) */
	uint64_t sh_generation;
	int64_t sh_published_ms; /* Unix ms, set by the writer at publish */
	int64_t sh_compile_us;	 /* how long compile took, for status */
	fs_str sh_environment;	 /* --environment, len 0 if none */
	fs_table sh_tables[FS_T_COUNT_];
} fs_snap_hdr;

/* The checksum covers everything from sh_compile_us on: the fields before it
 * are set at publish (generation, time) or are checked one by one. */
#define FS_SNAP_SUMMED_FROM offsetof(fs_snap_hdr, sh_compile_us)

/* Every record's size, so that a change to one is a decision, not an
 * accident (it also moves the fingerprint). */
_Static_assert(sizeof(fs_str) == 8, "fs_str layout");
_Static_assert(sizeof(fs_value) == 16, "fs_value layout");
_Static_assert(sizeof(fs_cond) == 32, "fs_cond layout");
_Static_assert(sizeof(fs_split) == 12, "fs_split layout");
_Static_assert(sizeof(fs_semver) == 32, "fs_semver layout");
_Static_assert(sizeof(fs_regex) == 12, "fs_regex layout");
_Static_assert(sizeof(fs_rule) == 44, "fs_rule layout");
_Static_assert(sizeof(fs_segment) == 32, "fs_segment layout");
_Static_assert(sizeof(fs_prereq) == 8, "fs_prereq layout");
_Static_assert(sizeof(fs_flag) == 128, "fs_flag layout");
_Static_assert(sizeof(fs_table) == 8, "fs_table layout");
_Static_assert(sizeof(fs_flag) % 8 == 0, "fs_flag alignment");
_Static_assert(offsetof(fs_snap_hdr, sh_size) == 16, "header layout");
_Static_assert(sizeof(fs_snap_hdr) % 8 == 0, "header alignment");
_Static_assert(sizeof(fs_snap_hdr) == 168, "header layout");
_Static_assert(offsetof(fs_snap_hdr, sh_compile_us) == 48, "header layout: the summed range");

/* Every table starts 8-byte aligned. The snapshot's size is bounded by
 * uint32 offsets: FS_SNAP_MAX bytes. */
#define FS_SNAP_MAX ((uint64_t)UINT32_MAX)

/* Entries of the regex table a reader compiles at most: a snapshot with
 * more is refused at map time, so that hostile bytes cannot make every
 * reader compile millions of patterns. The writer emits each distinct
 * pattern once and its limit `regexes` may not exceed this. */
#define FS_REGEX_MAX 10000u

/* Size of one record of each table (shm/format.c); the pool's is 1. */
extern const size_t fs_table_recsize[FS_T_COUNT_];
/* The document's name of each operator ("equals", ...); NULL for 0. */
extern const char *const fs_op_names[FS_OP_MAX_];

/* Key hash for the index (and f_key_hash): MurmurHash3_x86_32, seed 0x9747b28c. */
uint32_t fs_key_hash(const char *key, size_t len);
/* Snapshot checksum: a four-lane 64-bit multiply-rotate hash over 8-byte
 * words (shm/hash.c gives the exact definition). Detects torn or damaged
 * snapshots; it is not a MAC. */
uint64_t fs_checksum(const void *p, size_t n);

#endif
