/*
 * tools/flagshm/cli_dump.c - a compiled snapshot back to a format-1 document, for
 * `flagshm show` and `flagshm dump`, and the JSON printer of the tool.
 *
 * The document compiles to an equivalent snapshot: the snapshot keeps each
 * operand as written (fs_cond.c_value), rules already in evaluation order
 * with their priorities, percentages in thousandths (printed back exactly),
 * and every defaulted field resolved, so the dump states every field. What
 * the snapshot no longer has cannot come back: the `environments` overrides
 * are already applied (the dump is the document as the writer's
 * --environment saw it), `in` lists come back sorted, and string operands
 * of caseInsensitive conditions come back lowercased (equivalent).
 *
 * Every record is read through snap.h's bounds-checked accessors; a record
 * out of range fails the whole dump with a message, never a crash.
 *
 * Records may share data (the writer interns strings; a crafted snapshot
 * can point ten thousand conditions at one list of a hundred thousand
 * strings), so what a dump builds is counted as it grows, in bytes of
 * memory it costs, and the dump stops at cli_output_budget(): bounded by
 * a multiple of the snapshot's size, whatever it holds.
 */
#include "cli.h"
#include "text.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct dumper {
	const snap *s;
	char *err;
	size_t errlen;
	bool bad;
	uint64_t cost, budget; /* bytes the JSON tree costs so far, and may */
} dumper;

/* What a node costs in memory: jansson's struct and the allocator's
 * overhead (about 64 bytes), its string or key, and its members. */
#define NODE_COST 64

static uint64_t tree_cost(const json_t *j)
{
	uint64_t c = NODE_COST;
	size_t i;
	const char *k;
	json_t *v;
	if (json_is_string(j))
		c += json_string_length(j);
	else if (json_is_array(j))
		json_array_foreach(j, i, v) c += tree_cost(v);
	else if (json_is_object(j))
		json_object_foreach((json_t *)j, k, v) c += strlen(k) + tree_cost(v);
	return c;
}

/* Count COST; past the budget the dump fails (the first failure wins). */
static bool spend(dumper *d, uint64_t cost)
{
	d->cost += cost;
	if (d->cost <= d->budget)
		return true;
	if (!d->bad)
		snprintf(d->err, d->errlen, "snapshot generation %" PRIu64 ": the output would cost "
			 "more than %" PRIu64 " bytes (%d times the snapshot's %" PRIu64 " bytes, "
			 "plus %d MiB): its records share data, a crafted snapshot?",
			 d->s->generation, d->budget, CLI_OUTPUT_FACTOR, d->s->size,
			 (int)(CLI_OUTPUT_FLOOR >> 20));
	d->bad = true;
	return false;
}

/* Record the first failure; later ones are consequences of it. */
static json_t *fail(dumper *d, const char *what, uint32_t i)
{
	if (!d->bad)
		snprintf(d->err, d->errlen, "snapshot generation %" PRIu64 ": %s %" PRIu32
			 " is out of range (damaged snapshot?)", d->s->generation, what, i);
	d->bad = true;
	return NULL;
}

static void put(dumper *d, json_t *obj, const char *key, json_t *v)
{
	if (v && !spend(d, NODE_COST + strlen(key))) {
		json_decref(v);
		return;
	}
	if (v && json_object_set_new(obj, key, v) == 0)
		return;
	if (!d->bad)
		snprintf(d->err, d->errlen, "out of memory");
	d->bad = true;
}

static void push(dumper *d, json_t *arr, json_t *v)
{
	if (v && !spend(d, NODE_COST)) {
		json_decref(v);
		return;
	}
	if (v && json_array_append_new(arr, v) == 0)
		return;
	if (!d->bad)
		snprintf(d->err, d->errlen, "out of memory");
	d->bad = true;
}

/* A string of the pool. Strings are checked as UTF-8 by json_stringn, so
 * whatever the bytes, the output stays valid JSON. */
static json_t *str(dumper *d, fs_str st, const char *what)
{
	const char *p = snap_str(d->s, st);
	if (p && !spend(d, st.len))
		return NULL;
	json_t *j = p ? json_stringn(p, st.len) : NULL;
	return j ? j : fail(d, what, st.off);
}

static json_t *pct(dumper *d, uint32_t thousandths, const char *what)
{
	if (thousandths > 100000)
		return fail(d, what, thousandths);
	return json_real(thousandths / 1000.0);
}

static json_t *value(dumper *d, uint32_t idx, bool list_ok)
{
	const fs_value *v = SNAP_VALUE(d->s, idx);
	if (!v)
		return fail(d, "value", idx);
	switch (v->v_type) {
	case FS_V_BOOL:
		return json_boolean(v->v_bool);
	case FS_V_NUMBER: {
		json_t *j = json_real(v->v_num); /* NULL for NaN and infinities */
		return j ? j : fail(d, "number value", idx);
	}
	case FS_V_STRING:
		return str(d, v->v_str, "string of value");
	case FS_V_JSON: {
		const char *p = snap_str(d->s, v->v_str);
		json_t *j = p ? json_loadb(p, v->v_str.len, JSON_DECODE_ANY, NULL) : NULL;
		if (j && !spend(d, tree_cost(j))) { /* one text: at most the pool's size */
			json_decref(j);
			return NULL;
		}
		return j ? j : fail(d, "JSON text of value", idx);
	}
	case FS_V_LIST: {
		if (!list_ok || !snap_range_ok(d->s, FS_T_VALUES, v->v_first, v->v_count))
			return fail(d, "list value", idx);
		json_t *arr = json_array();
		for (uint32_t k = 0; arr && !d->bad && k < v->v_count; k++)
			push(d, arr, value(d, v->v_first + k, false));
		return arr;
	}
	default:
		return fail(d, "value type of value", idx);
	}
}

static json_t *conditions(dumper *d, uint32_t first, uint32_t n)
{
	if (!snap_range_ok(d->s, FS_T_CONDS, first, n))
		return fail(d, "condition", first);
	json_t *arr = json_array();
	for (uint32_t k = 0; arr && !d->bad && k < n; k++) {
		const fs_cond *c = SNAP_COND(d->s, first + k);
		if (!c || c->c_op == 0 || c->c_op >= FS_OP_MAX_) {
			push(d, arr, fail(d, "condition", first + k));
			continue;
		}
		json_t *o = json_object();
		put(d, o, "attribute", str(d, c->c_attr, "attribute name of condition"));
		put(d, o, "operator", json_string(fs_op_names[c->c_op]));
		put(d, o, "value", value(d, c->c_value, true));
		if (c->c_flags & FS_COND_NEGATE)
			put(d, o, "negate", json_true());
		if (c->c_flags & FS_COND_CASE_INSENSITIVE)
			put(d, o, "caseInsensitive", json_true());
		push(d, arr, o);
	}
	return arr;
}

static json_t *strings(dumper *d, uint32_t first, uint32_t n, const char *what)
{
	if (!snap_range_ok(d->s, FS_T_STRS, first, n))
		return fail(d, what, first);
	json_t *arr = json_array();
	for (uint32_t k = 0; arr && !d->bad && k < n; k++) {
		const fs_str *st = SNAP_STRS(d->s, first + k);
		push(d, arr, st ? str(d, *st, what) : fail(d, what, first + k));
	}
	return arr;
}

static json_t *segment_name(dumper *d, uint32_t u32_idx)
{
	const uint32_t *seg = SNAP_U32(d->s, u32_idx);
	const fs_segment *sg = seg ? SNAP_SEGMENT(d->s, *seg) : NULL;
	return sg ? str(d, sg->sg_name, "segment name") : fail(d, "segment reference", u32_idx);
}

static json_t *rule(dumper *d, uint32_t idx)
{
	const fs_rule *r = SNAP_RULE(d->s, idx);
	if (!r)
		return fail(d, "rule", idx);
	json_t *o = json_object();
	put(d, o, "id", str(d, r->r_id, "id of rule"));
	put(d, o, "priority", json_integer(r->r_priority));
	put(d, o, "conditions", conditions(d, r->r_cond_first, r->r_cond_count));
	if (r->r_seg_count > 0) {
		json_t *segs = json_array();
		if (!snap_range_ok(d->s, FS_T_U32, r->r_seg_first, r->r_seg_count))
			fail(d, "segment list of rule", idx);
		for (uint32_t k = 0; segs && !d->bad && k < r->r_seg_count; k++)
			push(d, segs, segment_name(d, r->r_seg_first + k));
		put(d, o, "segments", segs);
	}
	/* A split's weights cover every bucket: it has no rollout. */
	if (r->r_variation != FS_NONE) {
		put(d, o, "rolloutPercentage", pct(d, r->r_rollout, "rollout of rule"));
		put(d, o, "variation", value(d, r->r_variation, false));
		return o;
	}
	if (r->r_split_count == 0 ||
	    !snap_range_ok(d->s, FS_T_SPLITS, r->r_split_first, r->r_split_count)) {
		put(d, o, "split", fail(d, "split of rule", idx));
		return o;
	}
	json_t *split = json_array();
	for (uint32_t k = 0; split && !d->bad && k < r->r_split_count; k++) {
		const fs_split *sp = SNAP_SPLIT(d->s, r->r_split_first + k);
		json_t *band = json_object();
		put(d, band, "value", sp ? value(d, sp->sp_value, false) : fail(d, "split", k));
		put(d, band, "weight", sp ? pct(d, sp->sp_weight, "weight of split") : NULL);
		push(d, split, band);
	}
	put(d, o, "split", split);
	return o;
}

const char *cli_kind_name(uint8_t kind)
{
	static const char *const names[] = {
		[FS_K_RELEASE] = "release",
		[FS_K_OPERATIONAL] = "operational",
		[FS_K_EXPERIMENT] = "experiment",
		[FS_K_PERMISSION] = "permission",
	};
	return kind < sizeof names / sizeof *names ? names[kind] : NULL;
}

/* Optional metadata: len 0 means the document did not give it. */
static void meta(dumper *d, json_t *o, const char *key, fs_str st)
{
	if (st.len > 0)
		put(d, o, key, str(d, st, key));
}

static json_t *flag(dumper *d, uint32_t i)
{
	const fs_flag *f = SNAP_FLAG(d->s, i);
	if (!f)
		return fail(d, "flag", i);
	json_t *o = json_object();
	put(d, o, "key", str(d, f->f_key, "key of flag"));
	meta(d, o, "name", f->f_name);
	meta(d, o, "description", f->f_description);
	const char *kind = cli_kind_name(f->f_kind);
	put(d, o, "type", kind ? json_string(kind) : fail(d, "type of flag", i));
	put(d, o, "enabled", json_boolean(f->f_enabled));
	put(d, o, "defaultValue", value(d, f->f_default, false));
	put(d, o, "offValue", value(d, f->f_off, false));
	put(d, o, "rolloutPercentage", pct(d, f->f_rollout, "rollout of flag"));
	put(d, o, "bucketBy", str(d, f->f_bucket_by, "bucketBy of flag"));
	put(d, o, "salt", str(d, f->f_salt, "salt of flag"));

	json_t *rules = json_array();
	if (!snap_range_ok(d->s, FS_T_RULES, f->f_rule_first, f->f_rule_count))
		fail(d, "rules of flag", i);
	for (uint32_t k = 0; rules && !d->bad && k < f->f_rule_count; k++)
		push(d, rules, rule(d, f->f_rule_first + k));
	put(d, o, "targeting", rules);

	json_t *pre = json_array();
	if (!snap_range_ok(d->s, FS_T_PREREQS, f->f_prereq_first, f->f_prereq_count))
		fail(d, "prerequisites of flag", i);
	for (uint32_t k = 0; pre && !d->bad && k < f->f_prereq_count; k++) {
		const fs_prereq *p = SNAP_PREREQ(d->s, f->f_prereq_first + k);
		const fs_flag *pf = p ? SNAP_FLAG(d->s, p->pq_flag) : NULL;
		json_t *po = json_object();
		put(d, po, "key", pf ? str(d, pf->f_key, "key of prerequisite")
				   : fail(d, "prerequisite of flag", i));
		put(d, po, "value", p ? value(d, p->pq_value, false) : NULL);
		push(d, pre, po);
	}
	put(d, o, "prerequisites", pre);

	meta(d, o, "owner", f->f_owner);
	if (f->f_tag_count > 0)
		put(d, o, "tags", strings(d, f->f_tag_first, f->f_tag_count, "tag"));
	meta(d, o, "createdAt", f->f_created_at);
	meta(d, o, "updatedAt", f->f_updated_at);
	if (f->f_version != INT64_MIN)
		put(d, o, "version", json_integer(f->f_version));
	meta(d, o, "expiresAt", f->f_expires_at);
	return o;
}

static json_t *segment(dumper *d, const fs_segment *sg)
{
	json_t *o = json_object();
	/* A segment given neither list nor conditions matches nobody; say so
	 * with an empty "included" rather than an empty object. */
	if (sg->sg_incl_count > 0 || !sg->sg_has_conds)
		put(d, o, "included", strings(d, sg->sg_incl_first, sg->sg_incl_count,
					     "included id"));
	if (sg->sg_has_conds)
		put(d, o, "conditions", conditions(d, sg->sg_cond_first, sg->sg_cond_count));
	return o;
}

static json_t *finish(dumper *d, json_t *j)
{
	if (!d->bad && j)
		return j;
	if (!d->bad)
		snprintf(d->err, d->errlen, "out of memory");
	json_decref(j);
	return NULL;
}

json_t *cli_dump_flag(const snap *s, uint32_t i, char *err, size_t errlen)
{
	dumper d = {.s = s, .err = err, .errlen = errlen, .budget = cli_output_budget(s)};
	return finish(&d, flag(&d, i));
}

json_t *cli_dump_doc(const snap *s, char *err, size_t errlen)
{
	dumper d = {.s = s, .err = err, .errlen = errlen, .budget = cli_output_budget(s)};
	json_t *doc = json_object();
	put(&d, doc, "formatVersion", json_integer(FS_FORMAT_VERSION));

	json_t *segs = json_object();
	for (uint32_t k = 0; segs && !d.bad && k < s->count[FS_T_SEGMENTS]; k++) {
		const fs_segment *sg = SNAP_SEGMENT(s, k);
		const char *name = snap_str(s, sg->sg_name);
		if (!name || strlen(name) != sg->sg_name.len) {
			fail(&d, "segment name", k);
			break;
		}
		put(&d, segs, name, segment(&d, sg));
	}
	put(&d, doc, "segments", segs);

	json_t *flags = json_array();
	for (uint32_t k = 0; flags && !d.bad && k < s->count[FS_T_FLAGS]; k++)
		push(&d, flags, flag(&d, k));
	put(&d, doc, "flags", flags);
	return finish(&d, doc);
}

/* ------------------------------------------------------------ printing */

void cli_put_text(FILE *f, const char *p, size_t n, enum fs_text_style style)
{
	char buf[(256 + 3) * 6 + 1];
	/* In pieces of about 256 bytes, cut before a byte that starts a
	 * character (a UTF-8 sequence has at most 3 continuation bytes), so
	 * no memory beyond this buffer, however long the text. */
	for (size_t i = 0; i < n;) {
		size_t end = n - i > 256 ? i + 256 : n;
		for (int k = 0; k < 3 && end < n && ((unsigned char)p[end] & 0xc0) == 0x80; k++)
			end++;
		size_t len = fs_text_escape(buf, sizeof buf, p + i, end - i, style);
		fwrite(buf, 1, len, f); /* it fits: at most 6 bytes out per byte in */
		i = end;
	}
}

/* A JSON string: jansson's strings are valid UTF-8; escaped besides are
 * the controls a terminal would obey (shm/text.h). */
static void print_string(FILE *f, const char *p, size_t n)
{
	fputc('"', f);
	cli_put_text(f, p, n, FS_TEXT_JSON);
	fputc('"', f);
}

/* Whole numbers as integers (6000, not 6e+03); others in the shortest
 * "%.Ng" that reads back as X: 0.1 prints as 0.1. */
static void print_real(FILE *f, double x)
{
	char buf[40];
	if (x > -1e15 && x < 1e15 && x == (double)(int64_t)x) {
		fprintf(f, "%" PRId64, (int64_t)x);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, x);
		if (strtod(buf, NULL) == x)
			break;
	}
	fputs(buf, f);
}

/* Line layout: COMPACT (no spaces, for eval), INLINE (one line with
 * spaces), PRETTY (one member per line, nested two spaces deeper). */
enum layout { COMPACT, INLINE, PRETTY };

#define PRETTY_WIDTH 100

/* Objects and arrays whose members are scalars or lists of scalars (a
 * condition, a split band, a list of ids) read best on one line. */
static bool flat(const json_t *j, int level)
{
	size_t i;
	const char *k;
	json_t *v;
	if (!json_is_object(j) && !json_is_array(j))
		return true;
	if (level > 1)
		return false;
	if (json_is_array(j)) {
		json_array_foreach(j, i, v) {
			if (!flat(v, level + 1))
				return false;
		}
	} else {
		json_object_foreach((json_t *)j, k, v) {
			if (!flat(v, level + 1))
				return false;
		}
	}
	return true;
}

static void print_json(FILE *f, const json_t *j, enum layout lay, int depth);

/* PRETTY: print J on one line when it is flat and fits; true if done. */
static bool print_inline(FILE *f, const json_t *j, int depth)
{
	if (!flat(j, 0))
		return false;
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m)
		return false;
	print_json(m, j, INLINE, depth);
	bool ok = fclose(m) == 0 && buf && len + 2 * (size_t)depth <= PRETTY_WIDTH;
	if (ok)
		fwrite(buf, 1, len, f);
	free(buf);
	return ok;
}

static void print_json(FILE *f, const json_t *j, enum layout lay, int depth)
{
	bool multi = lay == PRETTY && !print_inline(f, j, depth);
	if (lay == PRETTY && !multi)
		return;
	const char *sep = lay == COMPACT ? "," : ", ";
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		const char *key;
		const json_t *v;
		bool first = true;
		fputc('{', f);
		json_object_foreach((json_t *)j, key, v) {
			fputs(first ? "" : multi ? "," : sep, f);
			first = false;
			if (multi)
				fprintf(f, "\n%*s", 2 * (depth + 1), "");
			print_string(f, key, strlen(key));
			fputs(lay == COMPACT ? ":" : ": ", f);
			print_json(f, v, lay, depth + 1);
		}
		if (multi)
			fprintf(f, "\n%*s", 2 * depth, "");
		fputc('}', f);
		return;
	}
	case JSON_ARRAY: {
		size_t i;
		const json_t *v;
		fputc('[', f);
		json_array_foreach(j, i, v) {
			fputs(i == 0 ? "" : multi ? "," : sep, f);
			if (multi)
				fprintf(f, "\n%*s", 2 * (depth + 1), "");
			print_json(f, v, lay, depth + 1);
		}
		if (multi)
			fprintf(f, "\n%*s", 2 * depth, "");
		fputc(']', f);
		return;
	}
	case JSON_STRING:
		print_string(f, json_string_value(j), json_string_length(j));
		return;
	case JSON_INTEGER:
		fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
		return;
	case JSON_REAL:
		print_real(f, json_real_value(j));
		return;
	case JSON_TRUE:
		fputs("true", f);
		return;
	case JSON_FALSE:
		fputs("false", f);
		return;
	case JSON_NULL:
		fputs("null", f);
		return;
	}
}

void cli_json_write(FILE *f, const json_t *j)
{
	print_json(f, j, COMPACT, 0);
}

void cli_json_print(FILE *f, const json_t *j, bool pretty)
{
	print_json(f, j, pretty ? PRETTY : COMPACT, 0);
	fputc('\n', f);
}
