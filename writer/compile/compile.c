/*
 * writer/compile/compile.c - a validated flag document to snapshot bytes
 * (shm/format.h), with the overrides of one environment applied.
 *
 * Everything the reader would otherwise do per evaluation is done here
 * once: strings interned, rules sorted by priority, in-lists sorted for
 * binary search, case-insensitive operands lowercased, versions and
 * instants parsed, JSON values turned into canonical text. The document
 * was checked by wc_validate first, so the parsers here cannot fail; the
 * asserts say so.
 */
#include "builder.h"
#include "compile.h"
#include "rules.h"
#include "hash.h"
#include "keyidx.h"
#include "semver.h"
#include "validate.h"

#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct cctx {
	wb b;
	const char *env;
	json_t *flags;	  /* the document's flags array */
	wc_kidx keys;	  /* flag key -> flag index, built on the first prerequisite */
	json_t *segindex; /* segment name -> segment index */
	json_t *regexes;  /* "off:len:flags" of a pattern -> its regex index */
	uint32_t *segstamp; /* per segment: the last rule that referred to it */
	uint32_t stamp;	    /* the rule being emitted */
} cctx;

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static fs_str str_of(cctx *c, const json_t *s)
{
	return wb_str(&c->b, json_string_value(s), json_string_length(s));
}

/* ASCII-lowercase copy of S (malloc'd), for caseInsensitive operands. */
static char *lower_dup(const char *s, size_t len)
{
	char *d = malloc(len + 1);

	if (!d)
		return NULL;
	sem_fold_copy(d, s, len);
	d[len] = '\0';
	return d;
}

/* S interned, lowercased first when LOWER. */
static fs_str str_case(cctx *c, const char *s, size_t len, int lower)
{
	fs_str out;
	char *l;

	if (!lower)
		return wb_str(&c->b, s, len);
	l = lower_dup(s, len);
	if (!l) {
		c->b.failed = 1;
		return (fs_str){0, 0};
	}
	out = wb_str(&c->b, l, len);
	free(l);
	return out;
}

/* ------------------------------------------------------------- values */

/* A flag value or scalar operand; LOWER lowercases a string. */
static uint32_t emit_value(cctx *c, const json_t *j, int lower)
{
	fs_value v;

	memset(&v, 0, sizeof v);
	v.v_type = (uint8_t)wc_vtype(j);
	switch (v.v_type) {
	case FS_V_BOOL:
		v.v_bool = json_is_true(j);
		break;
	case FS_V_NUMBER:
		v.v_num = json_number_value(j);
		break;
	case FS_V_STRING:
		v.v_str = str_case(c, json_string_value(j), json_string_length(j), lower);
		break;
	case FS_V_JSON: {
		/* Sorted keys: equal values have equal text (prerequisites
		 * compare JSON values as text). */
		char *t = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		if (!t) {
			c->b.failed = 1;
			break;
		}
		v.v_str = wb_str(&c->b, t, strlen(t));
		free(t);
		break;
	}
	default:
		assert(!"validated value");
	}
	return wb_add(&c->b, FS_T_VALUES, &v);
}

typedef struct list_item {
	const char *s; /* NULL for a number */
	size_t len;
	double num;
	char *owned; /* lowercased copy */
} list_item;

/* Strings first, in the order of semantics/rules.h (the evaluator
 * binary-searches with it); then numbers ascending. Strings are folded
 * already when caseInsensitive. */
static int item_cmp(const void *a, const void *b)
{
	const list_item *x = a, *y = b;

	if (!x->s != !y->s)
		return x->s ? -1 : 1;
	if (x->s)
		return sem_cmp_bytes(x->s, x->len, y->s, y->len, false);
	return sem_cmp_num(x->num, y->num);
}

/* The operand of in/notIn: elements sorted, contiguous in the values
 * table, then the FS_V_LIST value; *nstr gets the number of strings. */
static uint32_t emit_in_list(cctx *c, const json_t *list, int lower, uint32_t *nstr)
{
	size_t n = json_array_size(list), i;
	list_item *items = calloc(n ? n : 1, sizeof *items);
	fs_value lv;
	json_t *e;

	*nstr = 0;
	if (!items) {
		c->b.failed = 1;
		return 0;
	}
	json_array_foreach(list, i, e) {
		if (!json_is_string(e)) {
			items[i].num = json_number_value(e);
			continue;
		}
		items[i].s = json_string_value(e);
		items[i].len = json_string_length(e);
		if (lower) {
			items[i].owned = lower_dup(items[i].s, items[i].len);
			if (!items[i].owned)
				c->b.failed = 1;
			else
				items[i].s = items[i].owned;
		}
		(*nstr)++;
	}
	qsort(items, n, sizeof *items, item_cmp);
	memset(&lv, 0, sizeof lv);
	lv.v_type = FS_V_LIST;
	lv.v_count = (uint32_t)n;
	lv.v_first = wb_count(&c->b, FS_T_VALUES);
	for (i = 0; i < n; i++) {
		fs_value v;
		memset(&v, 0, sizeof v);
		if (items[i].s) {
			v.v_type = FS_V_STRING;
			v.v_str = wb_str(&c->b, items[i].s, items[i].len);
		} else {
			v.v_type = FS_V_NUMBER;
			v.v_num = items[i].num;
		}
		wb_add(&c->b, FS_T_VALUES, &v);
		free(items[i].owned);
	}
	free(items);
	return wb_add(&c->b, FS_T_VALUES, &lv);
}

/* --------------------------------------------------------- conditions */

static int is_string_op(int op)
{
	return op >= FS_OP_EQUALS && op <= FS_OP_ENDS_WITH;
}

/* Regex table index of pattern VAL (caseless when CI). Each distinct
 * pattern is emitted once and its conditions share the index: readers
 * compile each entry, and interned strings make equal patterns equal
 * offsets. */
static uint32_t emit_regex(cctx *c, json_t *val, int ci)
{
	fs_regex rx;
	char key[48];
	json_t *seen;
	uint32_t idx;

	memset(&rx, 0, sizeof rx);
	rx.rx_pattern = str_of(c, val); /* as written; CASELESS at compile */
	rx.rx_flags = ci ? FS_COND_CASE_INSENSITIVE : 0;
	snprintf(key, sizeof key, "%u:%u:%u", (unsigned)rx.rx_pattern.off,
		 (unsigned)rx.rx_pattern.len, (unsigned)rx.rx_flags);
	seen = json_object_get(c->regexes, key);
	if (seen)
		return (uint32_t)json_integer_value(seen);
	idx = wb_add(&c->b, FS_T_REGEXES, &rx);
	if (json_object_set_new(c->regexes, key, json_integer(idx)) != 0)
		c->b.failed = 1;
	return idx;
}

static void emit_cond(cctx *c, json_t *j)
{
	json_t *val = json_object_get(j, "value");
	int op = wc_op_parse(json_string_value(json_object_get(j, "operator")));
	int ci = json_is_true(json_object_get(j, "caseInsensitive"));
	fs_cond k;

	memset(&k, 0, sizeof k);
	k.c_attr = str_of(c, json_object_get(j, "attribute"));
	k.c_op = (uint8_t)op;
	k.c_flags = (uint8_t)((json_is_true(json_object_get(j, "negate")) ? FS_COND_NEGATE : 0) |
			      (ci ? FS_COND_CASE_INSENSITIVE : 0));
	k.c_aux = FS_NONE;
	if (op == FS_OP_IN || op == FS_OP_NOT_IN)
		k.c_value = emit_in_list(c, val, ci, &k.c_nstr);
	else
		k.c_value = emit_value(c, val, ci && is_string_op(op));

	if (op >= FS_OP_GT && op <= FS_OP_LTE) {
		k.c_num = json_number_value(val);
	} else if (op >= FS_OP_SEMVER_EQ && op <= FS_OP_SEMVER_LT) {
		fs_semver r;
		semver sv;
		int ok = semver_parse(json_string_value(val), json_string_length(val), &sv);
		assert(ok);
		(void)ok;
		memset(&r, 0, sizeof r);
		r.sv_major = sv.major, r.sv_minor = sv.minor, r.sv_patch = sv.patch;
		r.sv_pre = wb_str(&c->b, sv.pre, sv.pre_len);
		k.c_aux = wb_add(&c->b, FS_T_SEMVERS, &r);
	} else if (op == FS_OP_BEFORE || op == FS_OP_AFTER) {
		const char *why = wc_time(val, &k.c_time_ms);
		assert(!why);
		(void)why;
	} else if (op == FS_OP_MATCHES) {
		k.c_aux = emit_regex(c, val, ci);
	}
	wb_add(&c->b, FS_T_CONDS, &k);
}

/* Conditions of OBJ (absent = none), contiguous in the conds table. */
static void emit_conds(cctx *c, json_t *obj, uint32_t *first, uint32_t *count)
{
	json_t *a = json_object_get(obj, "conditions"), *j;
	size_t i;

	*first = wb_count(&c->b, FS_T_CONDS);
	*count = (uint32_t)json_array_size(a);
	json_array_foreach(a, i, j)
		emit_cond(c, j);
}

/* ----------------------------------------------------------- segments */

typedef struct bytes_ref {
	const char *p;
	size_t len;
} bytes_ref;

static int bytes_cmp(const void *a, const void *b)
{
	const bytes_ref *x = a, *y = b;
	int r = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);

	return r ? r : (x->len > y->len) - (x->len < y->len);
}

/* Strings of array A, sorted bytewise when SORT, into the strs table. */
static void emit_strs(cctx *c, json_t *a, int sort, uint32_t *first, uint32_t *count)
{
	size_t n = json_array_size(a), i;
	bytes_ref *r;
	json_t *e;

	*first = wb_count(&c->b, FS_T_STRS);
	*count = (uint32_t)n;
	if (n == 0) /* most flags have no tags: no allocation */
		return;
	r = calloc(n, sizeof *r);
	if (!r) {
		c->b.failed = 1;
		return;
	}
	json_array_foreach(a, i, e)
		r[i] = (bytes_ref){json_string_value(e), json_string_length(e)};
	if (sort)
		qsort(r, n, sizeof *r, bytes_cmp);
	for (i = 0; i < n; i++) {
		fs_str s = wb_str(&c->b, r[i].p, r[i].len);
		wb_add(&c->b, FS_T_STRS, &s);
	}
	free(r);
}

static void emit_segments(cctx *c, json_t *segs)
{
	const char *name;
	json_t *sg;

	json_object_foreach(segs, name, sg) {
		fs_segment g;
		memset(&g, 0, sizeof g);
		g.sg_name = wb_str(&c->b, name, strlen(name));
		emit_strs(c, json_object_get(sg, "included"), 1, &g.sg_incl_first, &g.sg_incl_count);
		emit_conds(c, sg, &g.sg_cond_first, &g.sg_cond_count);
		g.sg_has_conds = json_object_get(sg, "conditions") != NULL;
		json_object_set_new(c->segindex, name,
				    json_integer(wb_add(&c->b, FS_T_SEGMENTS, &g)));
	}
}

/* -------------------------------------------------------------- rules */

/* Percentage P in thousandths; absent (NULL) is 100%. */
static uint32_t percent(json_t *p)
{
	uint32_t t = 100000;

	if (p) {
		const char *why = wc_percent(p, &t);
		assert(!why);
		(void)why;
	}
	return t;
}

static void emit_split(cctx *c, json_t *split, fs_rule *r)
{
	uint32_t upper = 0;
	json_t *band;
	size_t i;

	/* Values first: the splits of one rule must be contiguous. */
	uint32_t *vals = calloc(json_array_size(split), sizeof *vals);
	if (!vals) {
		c->b.failed = 1;
		return;
	}
	json_array_foreach(split, i, band)
		vals[i] = emit_value(c, json_object_get(band, "value"), 0);
	r->r_split_first = wb_count(&c->b, FS_T_SPLITS);
	r->r_split_count = (uint32_t)json_array_size(split);
	json_array_foreach(split, i, band) {
		fs_split sp;
		memset(&sp, 0, sizeof sp);
		sp.sp_value = vals[i];
		sp.sp_weight = percent(json_object_get(band, "weight"));
		upper += sp.sp_weight;
		sp.sp_upper = upper;
		wb_add(&c->b, FS_T_SPLITS, &sp);
	}
	free(vals);
}

static void emit_rule(cctx *c, json_t *j)
{
	json_t *segs = json_object_get(j, "segments"), *split, *e, *prio;
	fs_rule r;
	size_t i;

	memset(&r, 0, sizeof r);
	r.r_id = str_of(c, json_object_get(j, "id"));
	prio = json_object_get(j, "priority");
	r.r_priority = prio ? (int32_t)json_integer_value(prio) : 0;
	r.r_rollout = percent(json_object_get(j, "rolloutPercentage"));
	emit_conds(c, j, &r.r_cond_first, &r.r_cond_count);
	/* A segment named twice in one rule is one reference: the second
	 * could only repeat the first's answer, at the first's cost. */
	r.r_seg_first = wb_count(&c->b, FS_T_U32);
	r.r_seg_count = 0;
	c->stamp++;
	json_array_foreach(segs, i, e) {
		uint32_t idx = (uint32_t)json_integer_value(
			json_object_get(c->segindex, json_string_value(e)));
		if (c->segstamp && c->segstamp[idx] == c->stamp)
			continue;
		if (c->segstamp)
			c->segstamp[idx] = c->stamp;
		wb_add(&c->b, FS_T_U32, &idx);
		r.r_seg_count++;
	}
	r.r_variation = FS_NONE;
	r.r_split_first = 0;
	split = json_object_get(j, "split");
	if (split)
		emit_split(c, split, &r);
	else
		r.r_variation = emit_value(c, json_object_get(j, "variation"), 0);
	wb_add(&c->b, FS_T_RULES, &r);
}

typedef struct rule_ref {
	json_t *rule;
	json_int_t priority;
	size_t pos;
} rule_ref;

static int rule_cmp(const void *a, const void *b)
{
	const rule_ref *x = a, *y = b;

	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	return (x->pos > y->pos) - (x->pos < y->pos); /* ties keep file order */
}

/* Rules in evaluation order: priority ascending, file order on ties. Each
 * rule's conditions, values and splits go to other tables, so the rule
 * records themselves stay contiguous. */
static void emit_rules(cctx *c, json_t *targeting, uint32_t *first, uint32_t *count)
{
	size_t n = json_array_size(targeting), i;
	rule_ref *refs = calloc(n ? n : 1, sizeof *refs);
	json_t *rule;

	*count = (uint32_t)n;
	*first = wb_count(&c->b, FS_T_RULES);
	if (!refs) {
		c->b.failed = 1;
		return;
	}
	json_array_foreach(targeting, i, rule) {
		json_t *p = json_object_get(rule, "priority");
		refs[i] = (rule_ref){rule, p ? json_integer_value(p) : 0, i};
	}
	qsort(refs, n, sizeof *refs, rule_cmp);
	for (i = 0; i < n; i++)
		emit_rule(c, refs[i].rule);
	free(refs);
}

/* -------------------------------------------------------------- flags */

/*
 * The fields of one flag object, found in one walk over its members
 * instead of a hash lookup per field name: most of the names the compiler
 * asks for are absent from most flags, and at 100,000 flags each lookup is
 * a few cache misses in jansson's table. Names compare by length and bytes,
 * so a member whose name has an embedded NUL matches nothing, as with
 * json_object_get. Members are unique (the parser rejects duplicates).
 */
typedef struct flag_fields {
	json_t *key, *dv, *off, *enabled, *rollout, *targeting, *bucket, *salt, *version, *type,
		*prereqs, *name, *description, *owner, *created, *updated, *expires, *tags, *envs;
} flag_fields;

static void fields_of(json_t *flag, flag_fields *ff)
{
	static const struct {
		const char *name;
		size_t off;
	} map[] = {
		{"key", offsetof(flag_fields, key)},
		{"defaultValue", offsetof(flag_fields, dv)},
		{"offValue", offsetof(flag_fields, off)},
		{"enabled", offsetof(flag_fields, enabled)},
		{"rolloutPercentage", offsetof(flag_fields, rollout)},
		{"targeting", offsetof(flag_fields, targeting)},
		{"bucketBy", offsetof(flag_fields, bucket)},
		{"salt", offsetof(flag_fields, salt)},
		{"version", offsetof(flag_fields, version)},
		{"type", offsetof(flag_fields, type)},
		{"prerequisites", offsetof(flag_fields, prereqs)},
		{"name", offsetof(flag_fields, name)},
		{"description", offsetof(flag_fields, description)},
		{"owner", offsetof(flag_fields, owner)},
		{"createdAt", offsetof(flag_fields, created)},
		{"updatedAt", offsetof(flag_fields, updated)},
		{"expiresAt", offsetof(flag_fields, expires)},
		{"tags", offsetof(flag_fields, tags)},
		{"environments", offsetof(flag_fields, envs)},
	};
	const char *k;
	size_t klen;
	json_t *val;

	memset(ff, 0, sizeof *ff);
	json_object_keylen_foreach(flag, k, klen, val) {
		for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
			if (map[i].name[0] == k[0] && strlen(map[i].name) == klen &&
			    memcmp(map[i].name, k, klen) == 0) {
				*(json_t **)((char *)ff + map[i].off) = val;
				break;
			}
		}
	}
}

/* Field F of the flag, overridden by environment ENV when it sets it. */
static json_t *env_field(json_t *env, const char *name, json_t *f)
{
	json_t *o = env ? json_object_get(env, name) : NULL;

	return o ? o : f;
}

static uint8_t kind_of(json_t *type)
{
	static const char *const names[] = {"release", "operational", "experiment", "permission"};
	const char *t = json_string_value(type);

	for (uint8_t k = 0; t && k < 4; k++)
		if (strcmp(t, names[k]) == 0)
			return k;
	return FS_K_RELEASE;
}

static fs_str opt_str(cctx *c, json_t *s)
{
	return s ? str_of(c, s) : (fs_str){0, 0};
}

/* Flag keys to indexes, for prerequisites: built only when a document has
 * any (most have none, and this is a walk over every flag). Keys are
 * unique (validated); strlen as json_object_get did. */
static void map_keys(cctx *c)
{
	json_t *flag;
	size_t i;

	if (wc_kidx_init(&c->keys, json_array_size(c->flags)) < 0) {
		c->b.failed = 1;
		return;
	}
	json_array_foreach(c->flags, i, flag) {
		const char *k = json_string_value(json_object_get(flag, "key"));
		if (wc_kidx_put(&c->keys, k, strlen(k), (uint32_t)i) < 0)
			c->b.failed = 1;
	}
}

static void emit_prereqs(cctx *c, json_t *a, fs_flag *f)
{
	json_t *p;
	size_t n = json_array_size(a), i;
	uint32_t *vals;

	if (n == 0) { /* the common case: no allocation, no key map */
		f->f_prereq_first = wb_count(&c->b, FS_T_PREREQS);
		f->f_prereq_count = 0;
		return;
	}
	vals = calloc(n, sizeof *vals);
	if (!vals) {
		c->b.failed = 1;
		return;
	}
	json_array_foreach(a, i, p)
		vals[i] = emit_value(c, json_object_get(p, "value"), 0);
	f->f_prereq_first = wb_count(&c->b, FS_T_PREREQS);
	f->f_prereq_count = (uint32_t)n;
	if (n && !c->keys.e)
		map_keys(c);
	json_array_foreach(a, i, p) {
		fs_prereq q;
		const char *k = json_string_value(json_object_get(p, "key"));
		long idx = wc_kidx_get(&c->keys, k, strlen(k));
		memset(&q, 0, sizeof q);
		q.pq_flag = idx < 0 ? 0 : (uint32_t)idx;
		q.pq_value = vals[i];
		wb_add(&c->b, FS_T_PREREQS, &q);
	}
	free(vals);
}

static void emit_flag(cctx *c, json_t *flag)
{
	flag_fields ff;
	fields_of(flag, &ff);
	json_t *env = c->env && ff.envs ? json_object_get(ff.envs, c->env) : NULL;
	json_t *key = ff.key;
	json_t *dv = env_field(env, "defaultValue", ff.dv);
	json_t *off = env_field(env, "offValue", ff.off);
	json_t *en = env_field(env, "enabled", ff.enabled);
	json_t *rollout = env_field(env, "rolloutPercentage", ff.rollout);
	json_t *bucket = ff.bucket;
	json_t *salt = ff.salt;
	json_t *version = ff.version;
	fs_flag f;

	memset(&f, 0, sizeof f);
	f.f_key = str_of(c, key);
	f.f_key_hash = fs_key_hash(json_string_value(key), json_string_length(key));
	f.f_vtype = (uint8_t)wc_vtype(dv);
	f.f_kind = kind_of(ff.type);
	f.f_enabled = en ? json_is_true(en) : 1;
	f.f_default = emit_value(c, dv, 0);
	if (off) {
		f.f_off = emit_value(c, off, 0);
	} else { /* only boolean flags may leave it out: false */
		json_t *no = json_false();
		f.f_off = emit_value(c, no, 0);
	}
	f.f_rollout = percent(rollout);
	f.f_bucket_by = bucket ? str_of(c, bucket) : wb_str(&c->b, "userId", 6);
	f.f_salt = salt ? str_of(c, salt) : f.f_key;
	emit_rules(c, env_field(env, "targeting", ff.targeting), &f.f_rule_first, &f.f_rule_count);
	emit_prereqs(c, ff.prereqs, &f);
	f.f_name = opt_str(c, ff.name);
	f.f_description = opt_str(c, ff.description);
	f.f_owner = opt_str(c, ff.owner);
	f.f_created_at = opt_str(c, ff.created);
	f.f_updated_at = opt_str(c, ff.updated);
	f.f_expires_at = opt_str(c, ff.expires);
	emit_strs(c, ff.tags, 0, &f.f_tag_first, &f.f_tag_count);
	f.f_version = version ? (int64_t)json_integer_value(version) : INT64_MIN;
	wb_add(&c->b, FS_T_FLAGS, &f);
}

/* Open-addressing index over the flags: a power of two of at least twice
 * the flag count, so probes stay short; a slot holds flag index + 1. The
 * key hashes come from the flag records (flag I is record I), not from
 * another walk over the document. */
static size_t index_slots(size_t nflags)
{
	size_t n = 1;

	while (n < 2 * nflags)
		n *= 2;
	return n;
}

static void emit_index(cctx *c, size_t nflags)
{
	size_t n = index_slots(nflags);
	uint32_t *slots, first;

	first = wb_add_zeroed(&c->b, FS_T_INDEX, n);
	if (c->b.failed || wb_count(&c->b, FS_T_FLAGS) != nflags)
		return;
	slots = wb_at(&c->b, FS_T_INDEX, first);
	for (size_t i = 0; i < nflags; i++) {
		const fs_flag *f = wb_at(&c->b, FS_T_FLAGS, (uint32_t)i);
		size_t s = f->f_key_hash & (n - 1);
		while (slots[s])
			s = (s + 1) & (n - 1);
		slots[s] = (uint32_t)i + 1;
	}
}


/* ------------------------------------------------------------- public */

wc_limits wc_limits_default(void)
{
	return (wc_limits){
		.max_doc_bytes = (size_t)64 << 20,
		.max_flags = 100000,
		.max_segments = 10000,
		.max_rules = 1000,
		.max_conditions = 100,
		.max_list = 100000,
		.max_string = 65536,
		.max_snapshot = (size_t)1 << 30,
		.max_eval_cost = 7000,
		.max_regexes = 1000,
	};
}

void wc_snapshot_free(wc_snapshot *s)
{
	if (!s)
		return;
	free(s->bytes);
	s->bytes = NULL;
	s->size = 0;
}

static int emit_all(cctx *c, json_t *doc, const char *label, const wc_limits *lim,
		    int64_t t0, wc_snapshot *out, wc_errors *errs)
{
	json_t *flags = wc_doc_flags(doc), *flag, *segs = wc_doc_segments(doc);
	size_t i, size = 0;
	uint8_t *bytes = NULL;
	int rc;

	c->flags = flags;
	/* Tables whose size is known (or roughly: a flag has a default and
	 * an off value, and a few dozen bytes of strings) are sized once. */
	wb_reserve(&c->b, FS_T_FLAGS, json_array_size(flags));
	wb_reserve(&c->b, FS_T_INDEX, index_slots(json_array_size(flags)));
	wb_reserve(&c->b, FS_T_VALUES, 4 * json_array_size(flags));
	wb_reserve(&c->b, FS_T_POOL, 48 * json_array_size(flags));
	wb_expect_strings(&c->b, 2 * json_array_size(flags));
	if (segs)
		emit_segments(c, segs);
	c->segstamp = calloc(segs ? json_object_size(segs) + 1 : 1, sizeof *c->segstamp);
	if (!c->segstamp) {
		wc_errors_add(errs, "%s: out of memory while compiling", label);
		return -1;
	}
	json_array_foreach(flags, i, flag) {
		wc_prefetch_flag(flags, i);
		emit_flag(c, flag);
	}
	emit_index(c, json_array_size(flags));
	rc = wb_finish(&c->b, c->env, now_us() - t0, lim->max_snapshot, &bytes, &size);
	if (rc == -2) {
		wc_errors_add(errs, "%s: the snapshot would be %zu bytes, more than the limit max_snapshot (%zu)",
			      label, size, lim->max_snapshot);
		return -1;
	}
	if (rc < 0) {
		wc_errors_add(errs, "%s: out of memory while compiling", label);
		return -1;
	}
	out->bytes = bytes;
	out->size = size;
	out->nflags = (uint32_t)json_array_size(flags);
	out->compile_us = ((fs_snap_hdr *)bytes)->sh_compile_us;
	return 0;
}

int wc_compile(json_t *doc, const char *environment, const char *label,
	       const wc_limits *lim, wc_snapshot *out, wc_errors *errs)
{
	wc_limits def = wc_limits_default();
	int64_t t0 = now_us();
	cctx c;
	int rc;

	memset(out, 0, sizeof *out);
	if (!lim)
		lim = &def;
	if (!label)
		label = "flags";
	if (wc_validate(doc, label, lim, errs) < 0)
		return -1;
	memset(&c, 0, sizeof c);
	c.env = environment && *environment ? environment : NULL;
	c.segindex = json_object();
	c.regexes = json_object();
	if (!c.segindex || !c.regexes || wb_init(&c.b) < 0) {
		wc_errors_add(errs, "%s: out of memory while compiling", label);
		rc = -1;
	} else {
		rc = emit_all(&c, doc, label, lim, t0, out, errs);
	}
	wb_free(&c.b);
	wc_kidx_free(&c.keys);
	json_decref(c.segindex);
	json_decref(c.regexes);
	free(c.segstamp);
	return rc;
}
