/*
 * tests/test_snap.c - hostile snapshots. Each test compiles a good document,
 * corrupts a copy of its bytes, and (where the damage should get past the
 * header checks) recomputes the checksum. Then either snap_open refuses
 * with a message naming the check, or evaluation answers ERROR with
 * SNAPSHOT_INVALID; never a crash (these tests also run under ASan/UBSan).
 */
#include <criterion/criterion.h>

#include "eval.h"
#include "format.h"
#include "helpers.h"
#include "snap.h"
#include "compile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *DOC =
	"{'formatVersion': 1,"
	" 'segments': {'beta': {'included': ['u-1', 'u-2'],"
	"   'conditions': [{'attribute': 'tier', 'operator': 'equals', 'value': 'beta'}]}},"
	" 'flags': ["
	"  {'key': 'a', 'defaultValue': 'on', 'offValue': 'off', 'rolloutPercentage': 50,"
	"   'targeting': ["
	"    {'id': 'r1', 'segments': ['beta'],"
	"     'conditions': [{'attribute': 'email', 'operator': 'matches', 'value': '@acme'}], 'variation': 'rule'},"
	"    {'id': 'r2', 'conditions': [{'attribute': 'country', 'operator': 'in', 'value': ['DE', 'FR']},"
	"                               {'attribute': 'version', 'operator': 'semverGreaterThan', 'value': '1.0.0-rc.1'}],"
	"     'split': [{'value': 'x', 'weight': 50}, {'value': 'y', 'weight': 50}]}],"
	"   'prerequisites': [{'key': 'b', 'value': true}]},"
	"  {'key': 'b', 'defaultValue': true},"
	"  {'key': 'c', 'defaultValue': true, 'prerequisites': [{'key': 'a', 'value': 'on'}]}]}";

typedef struct blob {
	uint8_t *p;
	size_t n;
	snap *good; /* the compiled original, for lookups */
} blob;

static blob fresh(void)
{
	blob b;
	b.good = th_snap(DOC, NULL);
	b.n = b.good->size;
	b.p = aligned_alloc(8, (b.n + 7) & ~(size_t)7);
	cr_assert_not_null(b.p);
	memcpy(b.p, b.good->base, b.n);
	return b;
}

static void drop(blob *b)
{
	free(b->p);
	th_snap_free(b->good);
}

static fs_snap_hdr *H(blob *b)
{
	return (fs_snap_hdr *)b->p;
}

/* Record I of table T in the copy (writable). */
static void *rec(blob *b, int t, uint32_t i, size_t sz)
{
	return b->p + H(b)->sh_tables[t].t_off + (size_t)i * sz;
}

static fs_flag *flag(blob *b, const char *key)
{
	int64_t i = snap_find(b->good, key, strlen(key));
	cr_assert_geq(i, 0, "flag %s", key);
	return rec(b, FS_T_FLAGS, (uint32_t)i, sizeof(fs_flag));
}

static void resum(blob *b)
{
	H(b)->sh_checksum = fs_checksum(b->p + FS_SNAP_SUMMED_FROM, b->n - FS_SNAP_SUMMED_FROM);
}

static void expect_refused(blob *b, size_t size, const char *needle)
{
	snap s = {0};
	char err[512] = "";
	int rc = snap_open(&s, b->p, size, err, sizeof err);
	cr_expect_eq(rc, FLAGSHM_ECORRUPT, "snap_open returned %d, want ECORRUPT (%s)", rc, needle);
	cr_expect(strstr(err, needle) != NULL, "message \"%s\" should mention \"%s\"", err, needle);
	if (rc == 0)
		snap_close(&s);
}

/* Resum, open (must pass), evaluate KEY for CTX: expect ERROR with
 * SNAPSHOT_INVALID and FLAGSHM_ECORRUPT. */
static void expect_invalid(blob *b, const char *key, const flagshm_ctx *ctx)
{
	resum(b);
	snap s = {0};
	char err[512] = "";
	int rc = snap_open(&s, b->p, b->n, err, sizeof err);
	cr_assert_eq(rc, 0, "snap_open refused: %s", err);
	flagshm_result r;
	rc = eval_key(&s, key, ctx, &r);
	cr_expect_eq(rc, FLAGSHM_ECORRUPT, "eval of %s returned %d (%s/%s)", key, rc,
		     flagshm_reason_name(r.reason),
		     flagshm_error_code_name(r.error_code));
	cr_expect_eq(r.reason, FLAGSHM_REASON_ERROR);
	cr_expect_eq(r.error_code, FLAGSHM_CODE_SNAPSHOT_INVALID);
	cr_expect_eq(r.type, FLAGSHM_TYPE_NONE);
	cr_expect_null(r.rule_id);
	snap_close(&s);
}

/* A context that reaches rule r1 (segment beta by inclusion, regex). */
static flagshm_ctx ctx_r1(void)
{
	flagshm_ctx c;
	flagshm_ctx_init(&c);
	flagshm_ctx_string(&c, "userId", "u-1");
	flagshm_ctx_string(&c, "email", "bob@acme.com");
	return c;
}

/* A context that reaches the split rule r2. */
static flagshm_ctx ctx_r2(void)
{
	flagshm_ctx c;
	flagshm_ctx_init(&c);
	flagshm_ctx_string(&c, "userId", "u-7");
	flagshm_ctx_string(&c, "country", "DE");
	flagshm_ctx_string(&c, "version", "1.0.0");
	return c;
}

Test(snap, the_uncorrupted_copy_opens_and_evaluates)
{
	blob b = fresh();
	snap s = {0};
	char err[512];
	cr_assert_eq(snap_open(&s, b.p, b.n, err, sizeof err), 0, "%s", err);
	flagshm_ctx c1 = ctx_r1(), c2 = ctx_r2();
	flagshm_result r;
	cr_expect_eq(eval_key(&s, "a", &c1, &r), 0);
	cr_expect_eq(r.reason, FLAGSHM_REASON_RULE_MATCH);
	cr_expect_eq(eval_key(&s, "a", &c2, &r), 0);
	cr_expect_eq(r.reason, FLAGSHM_REASON_SPLIT);
	cr_expect_eq(eval_key(&s, "c", &c2, &r), 0);
	snap_close(&s);
	drop(&b);
}

/* ------------------------------------------------- header checks */

Test(snap, wrong_magic)
{
	blob b = fresh();
	H(&b)->sh_magic = 0x12345678;
	expect_refused(&b, b.n, "magic");
	drop(&b);
}

Test(snap, wrong_version)
{
	blob b = fresh();
	H(&b)->sh_version = FS_FORMAT_VERSION + 1;
	expect_refused(&b, b.n, "format version 2");
	drop(&b);
}

Test(snap, wrong_header_size)
{
	blob b = fresh();
	H(&b)->sh_hdr_size = sizeof(fs_snap_hdr) - 8;
	expect_refused(&b, b.n, "header size");
	drop(&b);
}

Test(snap, wrong_layout_fingerprint)
{
	blob b = fresh();
	H(&b)->sh_fingerprint ^= 1;
	expect_refused(&b, b.n, "fingerprint");
	drop(&b);
}

Test(snap, size_field_does_not_match_the_object)
{
	blob b = fresh();
	expect_refused(&b, b.n - 8, "size field"); /* truncated object */
	H(&b)->sh_size = b.n + 8;
	expect_refused(&b, b.n, "size field");
	H(&b)->sh_size = UINT64_MAX;
	expect_refused(&b, b.n, "size field");
	drop(&b);
}

Test(snap, smaller_than_a_header)
{
	blob b = fresh();
	expect_refused(&b, 16, "smaller than the header");
	expect_refused(&b, 0, "smaller than the header");
	drop(&b);
}

Test(snap, checksum_catches_a_changed_byte)
{
	blob b = fresh();
	b.p[b.n - 3] ^= 0x40;
	expect_refused(&b, b.n, "checksum");
	b.p[b.n - 3] ^= 0x40;
	H(&b)->sh_compile_us += 1; /* inside the summed part of the header */
	expect_refused(&b, b.n, "checksum");
	drop(&b);
}

Test(snap, misaligned_base)
{
	blob b = fresh();
	uint8_t *q = aligned_alloc(8, b.n + 8 + 8);
	memcpy(q + 4, b.p, b.n);
	snap s = {0};
	char err[256] = "";
	cr_expect_eq(snap_open(&s, q + 4, b.n, err, sizeof err), FLAGSHM_ECORRUPT);
	cr_expect(strstr(err, "aligned") != NULL, "%s", err);
	cr_expect_eq(snap_open(&s, NULL, b.n, err, sizeof err), FLAGSHM_ECORRUPT);
	free(q);
	drop(&b);
}

/* ------------------------------------------------- table checks */

Test(snap, table_offset_outside_the_blob)
{
	blob b = fresh();
	H(&b)->sh_tables[FS_T_RULES].t_off = (uint32_t)((b.n + 64) & ~(size_t)7);
	resum(&b);
	expect_refused(&b, b.n, "rules table");
	drop(&b);
}

Test(snap, table_overlapping_the_header)
{
	blob b = fresh();
	H(&b)->sh_tables[FS_T_FLAGS].t_off = 8;
	resum(&b);
	expect_refused(&b, b.n, "flags table");
	drop(&b);
}

Test(snap, table_offset_not_aligned)
{
	blob b = fresh();
	H(&b)->sh_tables[FS_T_VALUES].t_off += 4;
	resum(&b);
	expect_refused(&b, b.n, "not 8-byte aligned");
	drop(&b);
}

Test(snap, huge_counts_cannot_wrap_the_bounds_check)
{
	const int tabs[] = {FS_T_FLAGS, FS_T_CONDS, FS_T_VALUES, FS_T_POOL, FS_T_STRS, FS_T_INDEX};
	for (size_t i = 0; i < sizeof tabs / sizeof tabs[0]; i++) {
		blob b = fresh();
		H(&b)->sh_tables[tabs[i]].t_count = UINT32_MAX;
		resum(&b);
		expect_refused(&b, b.n, "outside the snapshot");
		drop(&b);
		b = fresh();
		H(&b)->sh_tables[tabs[i]].t_off = UINT32_MAX & ~7u;
		H(&b)->sh_tables[tabs[i]].t_count = 0x20000000;
		resum(&b);
		expect_refused(&b, b.n, "outside the snapshot");
		drop(&b);
	}
}

Test(snap, index_of_size_zero_or_not_a_power_of_two)
{
	blob b = fresh();
	uint32_t n = H(&b)->sh_tables[FS_T_INDEX].t_count;
	cr_assert_geq(n, 4u, "the compiler sizes the index with room to spare");
	H(&b)->sh_tables[FS_T_INDEX].t_count = 0;
	resum(&b);
	expect_refused(&b, b.n, "index has 0 slots");
	H(&b)->sh_tables[FS_T_INDEX].t_count = 3;
	resum(&b);
	expect_refused(&b, b.n, "index has 3 slots, not a power of two");
	drop(&b);
}

Test(snap, index_slot_naming_a_flag_that_does_not_exist)
{
	blob b = fresh();
	uint32_t *slot = rec(&b, FS_T_INDEX, 0, sizeof(uint32_t));
	*slot = H(&b)->sh_tables[FS_T_FLAGS].t_count + 1;
	resum(&b);
	expect_refused(&b, b.n, "index slot 0");
	drop(&b);
}

Test(snap, regex_pattern_outside_the_pool)
{
	blob b = fresh();
	cr_assert_geq(H(&b)->sh_tables[FS_T_REGEXES].t_count, 1u);
	fs_regex *rx = rec(&b, FS_T_REGEXES, 0, sizeof(fs_regex));
	rx->rx_pattern.off = H(&b)->sh_tables[FS_T_POOL].t_count + 100;
	resum(&b);
	expect_refused(&b, b.n, "regex 0");
	rx->rx_pattern.off = 1;
	rx->rx_pattern.len = UINT32_MAX; /* off + len wraps */
	resum(&b);
	expect_refused(&b, b.n, "regex 0");
	drop(&b);
}

Test(snap, environment_outside_the_pool)
{
	blob b = fresh();
	H(&b)->sh_environment.off = 0;
	H(&b)->sh_environment.len = H(&b)->sh_tables[FS_T_POOL].t_count;
	resum(&b);
	expect_refused(&b, b.n, "environment");
	drop(&b);
}

/* ------------------------------------------- prerequisite graphs */

Test(snap, prerequisite_self_loop)
{
	blob b = fresh();
	fs_flag *a = flag(&b, "a");
	fs_prereq *p = rec(&b, FS_T_PREREQS, a->f_prereq_first, sizeof(fs_prereq));
	p->pq_flag = (uint32_t)snap_find(b.good, "a", 1);
	resum(&b);
	expect_refused(&b, b.n, "cycle");
	drop(&b);
}

Test(snap, prerequisite_loop_across_flags)
{
	/* a needs b; c needs a. Point b at c's record (needs a): a -> b -> a. */
	blob b = fresh();
	fs_flag *fb = flag(&b, "b"), *fc = flag(&b, "c");
	cr_assert_eq(fb->f_prereq_count, 0u);
	fb->f_prereq_first = fc->f_prereq_first;
	fb->f_prereq_count = 1;
	resum(&b);
	expect_refused(&b, b.n, "cycle");
	drop(&b);
}

Test(snap, prerequisite_pointing_at_no_flag_is_invalid_at_evaluation)
{
	blob b = fresh();
	fs_flag *a = flag(&b, "a");
	fs_prereq *p = rec(&b, FS_T_PREREQS, a->f_prereq_first, sizeof(fs_prereq));
	p->pq_flag = 1000000;
	flagshm_ctx c = ctx_r1();
	expect_invalid(&b, "a", &c);
	drop(&b);
}

Test(snap, prerequisite_range_outside_the_table)
{
	blob b = fresh();
	fs_flag *a = flag(&b, "a");
	a->f_prereq_first = 1;
	a->f_prereq_count = UINT32_MAX;
	flagshm_ctx c = ctx_r1();
	expect_invalid(&b, "a", &c);
	drop(&b);
}

/* ------------------------------------ records checked at evaluation */

Test(snap, rule_range_outside_the_table)
{
	blob b = fresh();
	fs_flag *a = flag(&b, "a");
	a->f_rule_first = H(&b)->sh_tables[FS_T_RULES].t_count;
	a->f_rule_count = 1;
	flagshm_ctx c = ctx_r1();
	expect_invalid(&b, "a", &c);
	a->f_rule_first = 1;
	a->f_rule_count = UINT32_MAX; /* first + count wraps */
	expect_invalid(&b, "a", &c);
	drop(&b);
}

Test(snap, string_offsets_outside_the_pool)
{
	uint32_t pool;
	flagshm_ctx c = ctx_r1();
	{
		blob b = fresh(); /* the served value's string */
		pool = H(&b)->sh_tables[FS_T_POOL].t_count;
		fs_rule *r = rec(&b, FS_T_RULES, flag(&b, "a")->f_rule_first, sizeof(fs_rule));
		fs_value *v = rec(&b, FS_T_VALUES, r->r_variation, sizeof(fs_value));
		v->v_str.off = pool;
		expect_invalid(&b, "a", &c);
		v->v_str.off = pool - 1;
		v->v_str.len = 2;
		expect_invalid(&b, "a", &c);
		drop(&b);
	}
	{
		blob b = fresh(); /* a rule id */
		fs_rule *r = rec(&b, FS_T_RULES, flag(&b, "a")->f_rule_first, sizeof(fs_rule));
		r->r_id.len = UINT32_MAX;
		expect_invalid(&b, "a", &c);
		drop(&b);
	}
	{
		blob b = fresh(); /* a condition's attribute name */
		fs_rule *r = rec(&b, FS_T_RULES, flag(&b, "a")->f_rule_first, sizeof(fs_rule));
		fs_cond *cd = rec(&b, FS_T_CONDS, r->r_cond_first, sizeof(fs_cond));
		cd->c_attr.off = UINT32_MAX;
		expect_invalid(&b, "a", &c);
		drop(&b);
	}
	{
		blob b = fresh(); /* the salt, needed for the 50% rollout */
		fs_flag *a = flag(&b, "a");
		a->f_salt.off = pool + 8;
		a->f_rule_count = 0;
		expect_invalid(&b, "a", &c);
		drop(&b);
	}
	{
		blob b = fresh(); /* a string without its NUL */
		fs_flag *a = flag(&b, "a");
		fs_value *v = rec(&b, FS_T_VALUES, a->f_off, sizeof(fs_value));
		a->f_enabled = 0;
		v->v_str.len = 1; /* "off" cut to "o": no NUL at off+1 */
		expect_invalid(&b, "a", &c);
		drop(&b);
	}
	{
		blob b = fresh(); /* a key outside the pool: the flag cannot be found */
		fs_flag *a = flag(&b, "a");
		a->f_key.off = pool + 1000;
		resum(&b);
		snap s = {0};
		char err[256];
		cr_assert_eq(snap_open(&s, b.p, b.n, err, sizeof err), 0, "%s", err);
		flagshm_result r;
		cr_expect_eq(eval_key(&s, "a", &c, &r), FLAGSHM_ENOTFOUND);
		cr_expect_eq(eval_key(&s, "b", &c, &r), 0);
		snap_close(&s);
		drop(&b);
	}
}

Test(snap, condition_and_segment_indexes_outside_their_tables)
{
	flagshm_ctx c1 = ctx_r1(), c2 = ctx_r2();
	{
		blob b = fresh();
		fs_rule *r = rec(&b, FS_T_RULES, flag(&b, "a")->f_rule_first, sizeof(fs_rule));
		r->r_cond_first = H(&b)->sh_tables[FS_T_CONDS].t_count;
		expect_invalid(&b, "a", &c1);
		drop(&b);
	}
	{
		blob b = fresh();
		fs_rule *r = rec(&b, FS_T_RULES, flag(&b, "a")->f_rule_first, sizeof(fs_rule));
		uint32_t *seg = rec(&b, FS_T_U32, r->r_seg_first, sizeof(uint32_t));
		*seg = 12345;
		expect_invalid(&b, "a", &c1);
		drop(&b);
	}
	{
		blob b = fresh();
		fs_rule *r = rec(&b, FS_T_RULES, flag(&b, "a")->f_rule_first, sizeof(fs_rule));
		r->r_seg_first = UINT32_MAX;
		expect_invalid(&b, "a", &c1);
		drop(&b);
	}
	{
		blob b = fresh();
		fs_segment *g = rec(&b, FS_T_SEGMENTS, 0, sizeof(fs_segment));
		g->sg_incl_first = H(&b)->sh_tables[FS_T_STRS].t_count;
		expect_invalid(&b, "a", &c1);
		drop(&b);
	}
	{
		blob b = fresh(); /* the regex index of the matches condition */
		fs_rule *r = rec(&b, FS_T_RULES, flag(&b, "a")->f_rule_first, sizeof(fs_rule));
		fs_cond *cd = rec(&b, FS_T_CONDS, r->r_cond_first, sizeof(fs_cond));
		cr_assert_eq(cd->c_op, FS_OP_MATCHES);
		cd->c_aux = 99;
		expect_invalid(&b, "a", &c1);
		drop(&b);
	}
	{
		blob b = fresh(); /* an operator this reader does not know */
		fs_rule *r = rec(&b, FS_T_RULES, flag(&b, "a")->f_rule_first, sizeof(fs_rule));
		fs_cond *cd = rec(&b, FS_T_CONDS, r->r_cond_first, sizeof(fs_cond));
		cd->c_op = 200;
		expect_invalid(&b, "a", &c1);
		drop(&b);
	}
	{
		blob b = fresh(); /* the in-list of r2 */
		fs_rule *r = rec(&b, FS_T_RULES, flag(&b, "a")->f_rule_first + 1, sizeof(fs_rule));
		fs_cond *cd = rec(&b, FS_T_CONDS, r->r_cond_first, sizeof(fs_cond));
		cr_assert_eq(cd->c_op, FS_OP_IN);
		fs_value *l = rec(&b, FS_T_VALUES, cd->c_value, sizeof(fs_value));
		l->v_count = UINT32_MAX;
		expect_invalid(&b, "a", &c2);
		drop(&b);
	}
	{
		blob b = fresh(); /* nstr larger than the list */
		fs_rule *r = rec(&b, FS_T_RULES, flag(&b, "a")->f_rule_first + 1, sizeof(fs_rule));
		fs_cond *cd = rec(&b, FS_T_CONDS, r->r_cond_first, sizeof(fs_cond));
		cd->c_nstr = 1000;
		expect_invalid(&b, "a", &c2);
		drop(&b);
	}
	{
		blob b = fresh(); /* the semver operand */
		fs_rule *r = rec(&b, FS_T_RULES, flag(&b, "a")->f_rule_first + 1, sizeof(fs_rule));
		fs_cond *cd = rec(&b, FS_T_CONDS, r->r_cond_first + 1, sizeof(fs_cond));
		cr_assert_eq(cd->c_op, FS_OP_SEMVER_GT);
		cd->c_aux = FS_NONE;
		expect_invalid(&b, "a", &c2);
		drop(&b);
	}
}

Test(snap, split_bands_and_value_types)
{
	flagshm_ctx c2 = ctx_r2();
	{
		blob b = fresh();
		fs_rule *r = rec(&b, FS_T_RULES, flag(&b, "a")->f_rule_first + 1, sizeof(fs_rule));
		r->r_split_first = UINT32_MAX - 1;
		expect_invalid(&b, "a", &c2);
		drop(&b);
	}
	{
		blob b = fresh(); /* bands that leave buckets uncovered */
		fs_rule *r = rec(&b, FS_T_RULES, flag(&b, "a")->f_rule_first + 1, sizeof(fs_rule));
		for (uint32_t i = 0; i < r->r_split_count; i++)
			((fs_split *)rec(&b, FS_T_SPLITS, r->r_split_first + i, sizeof(fs_split)))->sp_upper = 0;
		expect_invalid(&b, "a", &c2);
		drop(&b);
	}
	{
		blob b = fresh(); /* a split without bands */
		fs_rule *r = rec(&b, FS_T_RULES, flag(&b, "a")->f_rule_first + 1, sizeof(fs_rule));
		r->r_split_count = 0;
		expect_invalid(&b, "a", &c2);
		drop(&b);
	}
	{
		blob b = fresh(); /* a value of another type than the flag's */
		fs_flag *fb = flag(&b, "b");
		fs_value *v = rec(&b, FS_T_VALUES, fb->f_default, sizeof(fs_value));
		v->v_type = FS_V_NUMBER;
		expect_invalid(&b, "b", NULL);
		drop(&b);
	}
	{
		blob b = fresh(); /* ... and the flag that needs it as a prerequisite */
		fs_flag *fb = flag(&b, "b");
		fs_value *v = rec(&b, FS_T_VALUES, fb->f_default, sizeof(fs_value));
		v->v_type = 77;
		flagshm_ctx c = ctx_r1();
		expect_invalid(&b, "a", &c);
		drop(&b);
	}
}

Test(snap, a_pattern_that_fails_to_compile_never_matches)
{
	blob b = fresh();
	fs_regex *rx = rec(&b, FS_T_REGEXES, 0, sizeof(fs_regex));
	char *pat = (char *)rec(&b, FS_T_POOL, rx->rx_pattern.off, 1);
	pat[0] = '('; /* "(acme": missing ) */
	resum(&b);
	snap s = {0};
	char err[256];
	cr_assert_eq(snap_open(&s, b.p, b.n, err, sizeof err), 0, "%s", err);
	cr_expect_null(snap_regex(&s, 0));
	flagshm_ctx c = ctx_r1();
	flagshm_result r;
	cr_expect_eq(eval_key(&s, "a", &c, &r), 0);
	cr_expect_neq(r.reason, FLAGSHM_REASON_RULE_MATCH);
	cr_expect_neq(r.reason, FLAGSHM_REASON_ERROR);
	snap_close(&s);
	drop(&b);
}

/* Two flags with distinct patterns; a hostile copy then points regex
 * entry 1 at entry 0's pattern and flags. */
static blob fresh_two_regexes(void)
{
	blob b;
	b.good = th_snap("{'formatVersion':1,'flags':["
			 "{'key':'x','defaultValue':false,'targeting':[{'id':'r','variation':true,"
			 "'conditions':[{'attribute':'e','operator':'matches','value':'@acme$'}]}]},"
			 "{'key':'y','defaultValue':false,'targeting':[{'id':'r','variation':true,"
			 "'conditions':[{'attribute':'e','operator':'matches','value':'@other$'}]}]}]}",
			 NULL);
	b.n = b.good->size;
	b.p = aligned_alloc(8, (b.n + 7) & ~(size_t)7);
	cr_assert_not_null(b.p);
	memcpy(b.p, b.good->base, b.n);
	return b;
}

/* The writer emits each pattern once, but a snapshot's bytes may come from
 * anyone: entries that repeat a pattern (bytes and flags) share one
 * compiled code, and closing frees it once (a double free would abort
 * here and under ASan). */
Test(snap, repeated_regex_entries_share_one_compiled_pattern)
{
	blob b = fresh_two_regexes();
	cr_assert_eq(H(&b)->sh_tables[FS_T_REGEXES].t_count, 2u);
	fs_regex *r0 = rec(&b, FS_T_REGEXES, 0, sizeof(fs_regex));
	fs_regex *r1 = rec(&b, FS_T_REGEXES, 1, sizeof(fs_regex));
	*r1 = *r0;
	resum(&b);
	snap s = {0};
	char err[256];
	cr_assert_eq(snap_open(&s, b.p, b.n, err, sizeof err), 0, "%s", err);
	cr_assert_not_null(s.regex[0]);
	cr_assert_eq(s.regex[1], s.regex[0]);
	cr_assert_eq(s.regex_own[0], 1);
	cr_assert_eq(s.regex_own[1], 0);
	flagshm_ctx c;
	flagshm_ctx_init(&c);
	flagshm_ctx_string(&c, "e", "bob@acme");
	flagshm_result r;
	cr_expect_eq(eval_key(&s, "y", &c, &r), 0);
	cr_expect_eq(r.reason, FLAGSHM_REASON_RULE_MATCH);
	snap_close(&s);
	/* The same bytes with other flags are another pattern. */
	r1->rx_flags = FS_COND_CASE_INSENSITIVE;
	resum(&b);
	cr_assert_eq(snap_open(&s, b.p, b.n, err, sizeof err), 0, "%s", err);
	cr_assert_neq(s.regex[1], s.regex[0]);
	cr_assert_eq(s.regex_own[1], 1);
	snap_close(&s);
	drop(&b);
}

/* A reader compiles at most FS_REGEX_MAX entries: more is refused at map
 * time, before any is compiled. The copy's table is made to claim
 * FS_REGEX_MAX + 1 entries inside its bytes (a long description gives the
 * room), so that only the ceiling can refuse it. */
Test(snap, more_regex_entries_than_a_reader_compiles_is_refused)
{
	size_t dl = 60000, o = 0;
	char *doc = malloc(3 * dl + 1024);
	cr_assert_not_null(doc);
	o += (size_t)sprintf(doc, "{'formatVersion':1,'flags':[");
	for (int k = 0; k < 3; k++) {
		o += (size_t)sprintf(doc + o, "%s{'key':'d%d','defaultValue':true,'description':'",
				     k ? "," : "", k);
		memset(doc + o, 'a' + k, dl);
		o += dl;
		o += (size_t)sprintf(doc + o, "'}");
	}
	sprintf(doc + o, ",{'key':'x','defaultValue':false,'targeting':[{'id':'r','variation':true,"
			 "'conditions':[{'attribute':'e','operator':'matches','value':'@acme$'}]}]}]}");
	blob b;
	b.good = th_snap(doc, NULL);
	free(doc);
	b.n = b.good->size;
	b.p = aligned_alloc(8, (b.n + 7) & ~(size_t)7);
	cr_assert_not_null(b.p);
	memcpy(b.p, b.good->base, b.n);
	fs_table *t = &H(&b)->sh_tables[FS_T_REGEXES];
	t->t_off = H(&b)->sh_tables[FS_T_POOL].t_off;
	t->t_count = FS_REGEX_MAX + 1;
	cr_assert_leq((uint64_t)t->t_off + (uint64_t)t->t_count * sizeof(fs_regex), b.n);
	resum(&b);
	expect_refused(&b, b.n, "10001 regexes, more than the 10000 a reader compiles");
	drop(&b);
}

/* --------------------------------------------------------- fuzzing */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

Test(snap, random_damage_never_crashes, .timeout = 120)
{
	blob orig = fresh();
	size_t hdr = sizeof(fs_snap_hdr);
	flagshm_ctx ctxs[3] = {ctx_r1(), ctx_r2()};
	flagshm_ctx_init(&ctxs[2]);
	const char *keys[] = {"a", "b", "c"};
	unsigned opened = 0;
	for (int it = 0; it < 3000; it++) {
		uint8_t *p = aligned_alloc(8, (orig.n + 7) & ~(size_t)7);
		memcpy(p, orig.p, orig.n);
		int hits = 1 + (int)(rng() % 4);
		for (int k = 0; k < hits; k++) {
			size_t at = hdr + rng() % (orig.n - hdr);
			if (rng() & 1) {
				p[at] ^= (uint8_t)(1u << (rng() % 8));
			} else {
				/* An aligned word set to an interesting value. */
				static const uint32_t vals[] = {0, 1, 2, 0x7fffffff, 0x80000000, UINT32_MAX,
								UINT32_MAX - 1, 1000000};
				at &= ~(size_t)3;
				if (at + 4 <= orig.n)
					memcpy(p + at, &vals[rng() % 8], 4);
			}
		}
		((fs_snap_hdr *)p)->sh_checksum =
			fs_checksum(p + FS_SNAP_SUMMED_FROM, orig.n - FS_SNAP_SUMMED_FROM);
		snap s = {0};
		char err[256];
		if (snap_open(&s, p, orig.n, err, sizeof err) == 0) {
			opened++;
			for (int k = 0; k < 3; k++)
				for (int ci = 0; ci < 3; ci++) {
					flagshm_result r;
					int rc = eval_key(&s, keys[k], &ctxs[ci], &r);
					cr_assert(rc == 0 || rc == FLAGSHM_ECORRUPT || rc == FLAGSHM_ENOTFOUND,
						  "rc %d", rc);
					cr_assert((rc == 0) == (r.reason != FLAGSHM_REASON_ERROR));
				}
			snap_close(&s);
		} else {
			cr_assert_neq(err[0], '\0', "a refusal says why");
		}
		free(p);
	}
	cr_expect_gt(opened, 0u, "some damaged snapshots pass validation and get evaluated");
	drop(&orig);
}

/* The compiler's output for one document is pinned: a change that speeds
 * up compiling (issue 10) must not change a byte of what readers get.
 * Every kind of record is in it: segments (a repeated one), prerequisites
 * forward and back, rules out of priority order, a shared regex, semver,
 * an instant, a mixed in-list, a split, JSON values, an environment. The
 * checksum covers every byte after the header's first fields, with
 * sh_compile_us (a timing) zeroed; the values are those of the compiler
 * before issue 10. */
static const char pinned_doc[] =
	"{\"formatVersion\": 1,\n"
	" \"segments\": {\"beta\": {\"included\": [\"u3\", \"u1\", \"u2\"], \"conditions\": [{\"attribute\": \"country\", \"operator\": \"in\", \"value\": [\"US\", \"fr\", \"De\"], \"caseInsensitive\": true}]},\n"
	"              \"staff\": {\"conditions\": [{\"attribute\": \"email\", \"operator\": \"endsWith\", \"value\": \"@example.com\"}]}},\n"
	" \"flags\": [\n"
	"  {\"key\": \"a.base\", \"defaultValue\": true, \"tags\": [\"x\", \"y\"], \"name\": \"Base\", \"owner\": \"team\", \"version\": 3},\n"
	"  {\"key\": \"b.dep\", \"defaultValue\": \"blue\", \"offValue\": \"grey\", \"prerequisites\": [{\"key\": \"a.base\", \"value\": true}, {\"key\": \"c.later\", \"value\": 7}],\n"
	"   \"targeting\": [{\"id\": \"r2\", \"priority\": 2, \"segments\": [\"beta\", \"beta\", \"staff\"], \"variation\": \"green\"},\n"
	"                 {\"id\": \"r1\", \"priority\": 1, \"conditions\": [{\"attribute\": \"email\", \"operator\": \"matches\", \"value\": \".*@ex\\\\.com$\"}, {\"attribute\": \"v\", \"operator\": \"semverGreaterThan\", \"value\": \"1.2.3-rc.1\"}], \"split\": [{\"value\": \"red\", \"weight\": 33.333}, {\"value\": \"blue\", \"weight\": 66.667}]},\n"
	"                 {\"id\": \"r0\", \"priority\": 1, \"conditions\": [{\"attribute\": \"name\", \"operator\": \"matches\", \"value\": \".*@ex\\\\.com$\", \"caseInsensitive\": true}, {\"attribute\": \"at\", \"operator\": \"before\", \"value\": \"2030-01-02T03:04:05Z\"}, {\"attribute\": \"n\", \"operator\": \"in\", \"value\": [3, 1, \"b\", \"a\", 2]}], \"rolloutPercentage\": 12.5, \"variation\": \"red\"}],\n"
	"   \"environments\": {\"staging\": {\"enabled\": false, \"defaultValue\": \"pink\", \"rolloutPercentage\": 50}}},\n"
	"  {\"key\": \"c.later\", \"defaultValue\": 7, \"offValue\": 0, \"rolloutPercentage\": 25, \"bucketBy\": \"orgId\", \"salt\": \"s1\",\n"
	"   \"prerequisites\": [{\"key\": \"a.base\", \"value\": true}], \"targeting\": [{\"id\": \"only\", \"conditions\": [{\"attribute\": \"email\", \"operator\": \"matches\", \"value\": \".*@ex\\\\.com$\"}], \"variation\": 8}]},\n"
	"  {\"key\": \"d.json\", \"defaultValue\": {\"b\": [1, 2], \"a\": null}, \"offValue\": {}, \"description\": \"json\", \"createdAt\": \"2024-01-01T00:00:00Z\"}\n"
	" ]}\n";

static uint64_t pinned_sum(const char *env)
{
	wc_limits lim = wc_limits_default();
	wc_errors errs = {0};
	wc_snapshot out = {0};
	json_t *doc = NULL;

	cr_assert_eq(wc_load_buffer(pinned_doc, strlen(pinned_doc), "pinned", &lim, &doc, &errs), 0);
	cr_assert_eq(wc_compile(doc, env, "pinned", &lim, &out, &errs), 0, "%s",
		     errs.n ? errs.msg[0] : "");
	((fs_snap_hdr *)out.bytes)->sh_compile_us = 0;
	uint64_t sum = fs_checksum(out.bytes + FS_SNAP_SUMMED_FROM, out.size - FS_SNAP_SUMMED_FROM);
	cr_expect_eq(out.size, env ? 2152u : 2136u);
	json_decref(doc);
	wc_snapshot_free(&out);
	wc_errors_free(&errs);
	return sum;
}

Test(snap, compiled_bytes_of_a_document_stay_the_same)
{
	cr_expect_eq(pinned_sum(NULL), 0x74519fbb021a37f7ull);
	cr_expect_eq(pinned_sum("staging"), 0x1826c767b4e4a7e0ull);
}
