/*
 * reader/eval.c - the evaluation order of docs/flag-format.md ("Evaluation
 * order") over a validated snapshot.
 *
 * Every record is reached through the bounds-checked accessors of snap.h;
 * a failed check anywhere makes the whole evaluation ERROR with
 * SNAPSHOT_INVALID (never a partial answer, never a crash). Nothing here
 * allocates, locks or makes a system call (regex match data aside, see
 * ops.h).
 */
#include "eval.h"
#include "ops.h"
#include "hash.h"

#include <string.h>

/* Prerequisite evaluations one top-level evaluation may make. The compiler
 * allows diamonds (A needs B and C, both need D), so the graph is a DAG and
 * not a tree; a hostile snapshot could make 2^32 paths out of 32 levels.
 * Running out counts like running past EVAL_MAX_DEPTH. */
#define EVAL_MAX_PREREQ_VISITS SEM_PREREQ_VISITS_MAX /* semantics/rules.h */

#define CORRUPT FLAGSHM_ECORRUPT

typedef struct ev {
	const snap *s;
	const flagshm_ctx *ctx;
	unsigned visits; /* prerequisite evaluations left */
} ev;

/* Per-flag state: the bucket is computed at most once, and only when a
 * rollout below 100% or a split asks for it. */
typedef struct fstate {
	const fs_flag *f;
	int bucket; /* -2 not yet computed, -1 no bucketing id, else 0..99999 */
} fstate;

const flagshm_attr *eval_ctx_get(const flagshm_ctx *ctx, const char *name, size_t len)
{
	if (!ctx)
		return NULL;
	unsigned n = ctx->n < FLAGSHM_CTX_MAX ? ctx->n : FLAGSHM_CTX_MAX;
	for (unsigned i = 0; i < n; i++) {
		const char *an = ctx->attrs[i].name;
		uint32_t al = ctx->attrs[i].name_len;
		if (al) { /* set by the builders: lengths first, then bytes */
			if (al == len && an && memcmp(an, name, len) == 0)
				return &ctx->attrs[i];
			continue;
		}
		if (!an || an[0] != (len ? name[0] : '\0'))
			continue;
		/* Stop at the NUL of AN, so a shorter name is never read past. */
		size_t j = 0;
		while (j < len && an[j] == name[j] && an[j] != '\0')
			j++;
		if (j == len && an[len] == '\0')
			return &ctx->attrs[i];
	}
	return NULL;
}

uint32_t eval_bucket(const char *salt, size_t salt_len, const char *id, size_t id_len)
{
	/* Usual salts and ids fit a small stack buffer: one pass over
	 * "salt:id" is cheaper than streaming three pieces. */
	char buf[128];
	if (salt_len < sizeof buf && id_len < sizeof buf - 1 - salt_len) {
		memcpy(buf, salt, salt_len);
		buf[salt_len] = ':';
		memcpy(buf + salt_len + 1, id, id_len);
		return mm3_hash(buf, salt_len + 1 + id_len, 0) % 100000u;
	}
	mm3 m;
	mm3_init(&m, 0);
	mm3_feed(&m, salt, salt_len);
	mm3_feed(&m, ":", 1);
	mm3_feed(&m, id, id_len);
	return mm3_final(&m) % 100000u;
}

/*
 * The bucketing id of attribute A (docs/semantics.md): a string as is; a number
 * only when integral and |x| < 2^53, in decimal ("-5", "42"; -0 is "0").
 * False for anything else (missing). BUF holds the digits of a number.
 */
static bool id_of(const flagshm_attr *a, char buf[24], const char **p, size_t *n)
{
	if (!a)
		return false;
	if (a->type == FLAGSHM_ATTR_STRING) {
		*p = a->u.str.ptr;
		*n = a->u.str.len;
		return *p != NULL;
	}
	if (a->type != FLAGSHM_ATTR_NUMBER)
		return false;
	double x = a->u.num;
	if (!(x > -9007199254740992.0 && x < 9007199254740992.0))
		return false; /* also NaN */
	int64_t v = (int64_t)x;
	if ((double)v != x)
		return false;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	char *e = buf + 24, *q = e;
	do {
		*--q = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--q = '-';
	*p = q;
	*n = (size_t)(e - q);
	return true;
}

/* Bucket of the flag for this context, or -1 without a bucketing id; -3
 * when the flag's own strings are corrupt. */
static int bucket_of(const ev *e, fstate *fs)
{
	if (fs->bucket != -2)
		return fs->bucket;
	const char *by = snap_str(e->s, fs->f->f_bucket_by);
	const char *salt = snap_str(e->s, fs->f->f_salt);
	if (!by || !salt)
		return -3;
	char buf[24];
	const char *id;
	size_t n;
	if (!id_of(eval_ctx_get(e->ctx, by, fs->f->f_bucket_by.len), buf, &id, &n))
		return fs->bucket = -1;
	return fs->bucket = (int)eval_bucket(salt, fs->f->f_salt.len, id, n);
}

/* Whether the context is inside ROLLOUT (thousandths): 1, 0, or -1 on
 * corruption. Without a bucketing id only 100% holds. */
static int inside(const ev *e, fstate *fs, uint32_t rollout)
{
	if (rollout >= 100000)
		return 1;
	if (rollout == 0)
		return 0;
	int b = bucket_of(e, fs);
	if (b == -3)
		return -1;
	return b >= 0 && (uint32_t)b < rollout;
}

/* All conditions [first, first+n) hold: 1, 0, or -1. */
static int all_conds(const ev *e, uint32_t first, uint32_t n)
{
	if (!snap_range_ok(e->s, FS_T_CONDS, first, n))
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		int r = ops_cond(e->s, SNAP_COND(e->s, first + i), e->ctx);
		if (r <= 0)
			return r;
	}
	return 1;
}

/* Whether ID is in the sorted strs range [first, first+n): 1, 0 or -1. */
static int in_strs(const snap *s, uint32_t first, uint32_t n, const char *id, size_t len)
{
	if (!snap_range_ok(s, FS_T_STRS, first, n))
		return -1;
	uint32_t lo = first, hi = first + n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		fs_str st = *SNAP_STRS(s, mid);
		const char *m = snap_str(s, st);
		if (!m)
			return -1;
		size_t k = len < st.len ? len : st.len;
		int c = memcmp(id, m, k);
		if (!c)
			c = (len > st.len) - (len < st.len);
		if (!c)
			return 1;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return 0;
}

/* A segment matches when the userId is in its included list, or when it
 * has conditions and all of them hold. 1, 0 or -1. */
static int segment_match(const ev *e, uint32_t seg)
{
	const fs_segment *g = SNAP_SEGMENT(e->s, seg);
	if (!g)
		return -1;
	if (g->sg_incl_count) {
		char buf[24];
		const char *id;
		size_t n;
		/* The userId counts as an id the way a bucketing id does, so
		 * that a number userId 42 is in ["42"]. */
		if (id_of(eval_ctx_get(e->ctx, "userId", 6), buf, &id, &n)) {
			int r = in_strs(e->s, g->sg_incl_first, g->sg_incl_count, id, n);
			if (r)
				return r;
		}
	}
	return g->sg_has_conds ? all_conds(e, g->sg_cond_first, g->sg_cond_count) : 0;
}

/* The rule's conditions and segments (at least one, if any) hold. */
static int rule_holds(const ev *e, const fs_rule *r)
{
	int ok = all_conds(e, r->r_cond_first, r->r_cond_count);
	if (ok <= 0 || r->r_seg_count == 0)
		return ok;
	if (!snap_range_ok(e->s, FS_T_U32, r->r_seg_first, r->r_seg_count))
		return -1;
	for (uint32_t i = 0; i < r->r_seg_count; i++) {
		int m = segment_match(e, *SNAP_U32(e->s, r->r_seg_first + i));
		if (m)
			return m;
	}
	return 0;
}

void eval_error(flagshm_result *out, flagshm_error_code code, uint64_t generation)
{
	memset(out, 0, sizeof *out);
	out->type = FLAGSHM_TYPE_NONE;
	out->reason = FLAGSHM_REASON_ERROR;
	out->rule_id = NULL;
	out->error_code = code;
	out->generation = generation;
}

static int corrupt(flagshm_result *out)
{
	eval_error(out, FLAGSHM_CODE_SNAPSHOT_INVALID, 0); /* eval_flag sets the generation */
	return CORRUPT;
}

/* Serve value VI of flag F with REASON. The value must have the flag's
 * type: anything else is a corrupt snapshot, not a value to hand out. */
static int serve(const snap *s, const fs_flag *f, uint32_t vi, flagshm_reason reason,
		 const char *rule_id, flagshm_result *out)
{
	const fs_value *v = SNAP_VALUE(s, vi);
	if (!v || v->v_type != f->f_vtype)
		return corrupt(out);
	switch (v->v_type) {
	case FS_V_BOOL:
		out->type = FLAGSHM_TYPE_BOOL;
		out->value.b = v->v_bool != 0;
		break;
	case FS_V_NUMBER:
		out->type = FLAGSHM_TYPE_NUMBER;
		out->value.num = v->v_num;
		break;
	case FS_V_STRING:
	case FS_V_JSON:
		out->type = v->v_type == FS_V_STRING ? FLAGSHM_TYPE_STRING : FLAGSHM_TYPE_JSON;
		out->value.str.ptr = snap_str(s, v->v_str);
		out->value.str.len = v->v_str.len;
		if (!out->value.str.ptr)
			return corrupt(out);
		break;
	default:
		return corrupt(out);
	}
	out->reason = reason;
	out->rule_id = rule_id;
	out->error_code = FLAGSHM_CODE_NONE;
	return 0;
}

/* Whether result R is exactly value VI: type-strict, JSON by its canonical
 * text (docs/semantics.md). 1, 0 or -1. */
static int result_is(const snap *s, const flagshm_result *r, uint32_t vi)
{
	const fs_value *v = SNAP_VALUE(s, vi);
	if (!v)
		return -1;
	switch (v->v_type) {
	case FS_V_BOOL:
		return r->type == FLAGSHM_TYPE_BOOL && r->value.b == (v->v_bool != 0);
	case FS_V_NUMBER:
		return r->type == FLAGSHM_TYPE_NUMBER && r->value.num == v->v_num;
	case FS_V_STRING:
	case FS_V_JSON: {
		const char *str = snap_str(s, v->v_str);
		if (!str)
			return -1;
		flagshm_type t = v->v_type == FS_V_STRING ? FLAGSHM_TYPE_STRING : FLAGSHM_TYPE_JSON;
		return r->type == t && r->value.str.len == v->v_str.len &&
		       memcmp(r->value.str.ptr, str, v->v_str.len) == 0;
	}
	}
	return -1;
}

static int eval_rec(ev *e, uint32_t fi, unsigned depth, flagshm_result *out)
{
	const snap *s = e->s;
	fstate fs = {SNAP_FLAG(s, fi), -2};
	const fs_flag *f = fs.f;
	if (!f)
		return corrupt(out);

	if (!f->f_enabled)
		return serve(s, f, f->f_off, FLAGSHM_REASON_DISABLED, NULL, out);

	if (f->f_prereq_count) {
		if (!snap_range_ok(s, FS_T_PREREQS, f->f_prereq_first, f->f_prereq_count))
			return corrupt(out);
		for (uint32_t i = 0; i < f->f_prereq_count; i++) {
			const fs_prereq *p = SNAP_PREREQ(s, f->f_prereq_first + i);
			/* Past the limits only a hostile snapshot gets here
			 * (snap_open refuses cycles and deep chains): fail the
			 * prerequisite rather than recurse on. */
			if (depth >= EVAL_MAX_DEPTH || e->visits == 0)
				return serve(s, f, f->f_off, FLAGSHM_REASON_PREREQUISITE_FAILED, NULL,
					     out);
			e->visits--;
			flagshm_result sub;
			if (eval_rec(e, p->pq_flag, depth + 1, &sub))
				return corrupt(out);
			int ok = result_is(s, &sub, p->pq_value);
			if (ok < 0)
				return corrupt(out);
			if (!ok)
				return serve(s, f, f->f_off, FLAGSHM_REASON_PREREQUISITE_FAILED, NULL,
					     out);
		}
	}

	if (!snap_range_ok(s, FS_T_RULES, f->f_rule_first, f->f_rule_count))
		return corrupt(out);
	for (uint32_t i = 0; i < f->f_rule_count; i++) {
		const fs_rule *r = SNAP_RULE(s, f->f_rule_first + i);
		int h = rule_holds(e, r);
		if (h < 0)
			return corrupt(out);
		if (!h)
			continue;
		const char *rid = snap_str(s, r->r_id);
		if (!rid)
			return corrupt(out);
		if (r->r_variation == FS_NONE) {
			int b = bucket_of(e, &fs);
			if (b == -3 || r->r_split_count == 0 ||
			    !snap_range_ok(s, FS_T_SPLITS, r->r_split_first, r->r_split_count))
				return corrupt(out);
			if (b < 0)
				continue; /* no bucketing id: the rule is skipped */
			for (uint32_t k = 0; k < r->r_split_count; k++) {
				const fs_split *sp = SNAP_SPLIT(s, r->r_split_first + k);
				if ((uint32_t)b < sp->sp_upper)
					return serve(s, f, sp->sp_value, FLAGSHM_REASON_SPLIT, rid, out);
			}
			/* Weights sum to 100: some band holds every bucket. */
			return corrupt(out);
		}
		int in = inside(e, &fs, r->r_rollout);
		if (in < 0)
			return corrupt(out);
		if (in)
			return serve(s, f, r->r_variation, FLAGSHM_REASON_RULE_MATCH, rid, out);
	}

	int in = inside(e, &fs, f->f_rollout);
	if (in < 0)
		return corrupt(out);
	return in ? serve(s, f, f->f_default, FLAGSHM_REASON_DEFAULT_ROLLOUT, NULL, out)
		  : serve(s, f, f->f_off, FLAGSHM_REASON_DEFAULT_OFF, NULL, out);
}

int eval_flag(const snap *s, uint32_t flag, const flagshm_ctx *ctx, flagshm_result *out)
{
	/* The first evaluation of a flag in a map checks what spans its
	 * records (snap_flag_check); a flag that fails answers
	 * SNAPSHOT_INVALID and the others are not affected. */
	if (__builtin_expect(snap_flag_check(s, flag) != SNAP_FLAG_OK, 0)) {
		eval_error(out, FLAGSHM_CODE_SNAPSHOT_INVALID, s->generation);
		return CORRUPT;
	}
	ev e = {s, ctx, EVAL_MAX_PREREQ_VISITS};
	int rc = eval_rec(&e, flag, 0, out);
	out->generation = s->generation;
	return rc;
}

int eval_key(const snap *s, const char *key, const flagshm_ctx *ctx, flagshm_result *out)
{
	int64_t i = key ? snap_find(s, key, strlen(key)) : -1;
	if (i < 0) {
		eval_error(out, FLAGSHM_CODE_FLAG_NOT_FOUND, s->generation);
		return FLAGSHM_ENOTFOUND;
	}
	return eval_flag(s, (uint32_t)i, ctx, out);
}
