/*
 * writer/compile/validate.c - every check of a flag document (docs/flag-format.md).
 *
 * The whole document is walked once and every problem is reported with its
 * JSON path, so a user fixes a file in one round. Environments are checked
 * whether or not the writer selects one, so --check catches a broken
 * staging override before staging does. The compiler (compile.c) runs only
 * on a document that passed, and shares the value parsers at the end of
 * this file.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "validate.h"
#include "hash.h"
#include "keyidx.h"
#include "semver.h"
#include "timeparse.h"

#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_ 768
#define MSG_MAX 1024
#define QUOTE_MAX 64 /* bytes of a user string quoted in a message */

/* Worst-case work of one evaluation, by kind (validate.h): conditions
 * (regex ones included), regex matches among them, segment lookups, rules
 * tried and flags evaluated. Saturating. */
typedef struct vcost {
	uint64_t conds, rx, segs, rules, flags;
} vcost;

#define COST_CAP ((uint64_t)1 << 60)

/* The distinct regex patterns seen so far (pattern bytes + caseless):
 * open addressing over the document's own strings. */
typedef struct rxent {
	const char *p;
	size_t len;
	uint32_t h;
	int ci; /* -1: empty slot */
} rxent;

typedef struct rxset {
	rxent *e;
	size_t cap, n;
} rxset;

typedef struct vctx {
	const char *label;
	const wc_limits *lim;
	wc_errors *errs;
	json_t *segments; /* the document's segments object, or NULL */
	wc_kidx keys;	  /* flag key -> index of its first definition */
	wc_kidx ids;	  /* rule id -> position, in the targeting being checked */
	int *vtypes;	  /* per flag: wc_vtype of defaultValue, 0 if unusable */
	json_t **pre;	  /* per flag: its prerequisites array, or NULL */
	size_t nflags;
	const char *flags_path; /* "flags", or "" for a bare array */
	/* The cost bound and the regex limit. */
	json_t *segidx;	    /* segment name -> index into segcost */
	vcost *segcost;	    /* per segment: its conditions */
	uint32_t *segstamp; /* per segment: the last rule that counted it */
	uint32_t stamp;	    /* the rule being counted */
	vcost *own;	    /* per flag: its costliest targeting and itself */
	size_t cur_flag;    /* the flag being checked */
	rxset rx;
	char path[PATH_MAX_];
	size_t plen;
} vctx;

/* ------------------------------------------------------------ messages */

static size_t path_push(vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append to the path; returns the length to restore with path_pop. A path
 * that would not fit is cut (messages stay readable; nothing overflows). */
static size_t path_push(vctx *v, const char *fmt, ...)
{
	size_t old = v->plen;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(v->path + v->plen, sizeof v->path - v->plen, fmt, ap);
	va_end(ap);
	if (n > 0)
		v->plen += (size_t)n < sizeof v->path - v->plen ? (size_t)n : sizeof v->path - v->plen - 1;
	return old;
}

/* Append ".KEY" (KEY alone at the root). Control bytes of a user's key
 * show as '?', so a message stays one line. */
static size_t path_key(vctx *v, const char *key)
{
	size_t old = v->plen ? path_push(v, ".") : v->plen;

	for (; *key && v->plen < sizeof v->path - 1; key++)
		v->path[v->plen++] = (unsigned char)*key < 0x20 || *key == 0x7f ? '?' : *key;
	v->path[v->plen] = '\0';
	return old;
}

/* Append "[I]": as path_push(v, "[%zu]", i), cut the same way, without
 * printf (it ran for every element of the document). */
static size_t path_idx(vctx *v, size_t i)
{
	char t[24], *e = t + sizeof t, *d = e;
	size_t old = v->plen, room = sizeof v->path - v->plen, n;

	*--d = ']';
	do
		*--d = (char)('0' + i % 10);
	while ((i /= 10) != 0);
	*--d = '[';
	n = (size_t)(e - d);
	if (n > room - 1)
		n = room - 1;
	memcpy(v->path + v->plen, d, n);
	v->plen += n;
	v->path[v->plen] = '\0';
	return old;
}

static void path_pop(vctx *v, size_t old)
{
	v->plen = old;
	v->path[old] = '\0';
}

static void verr(vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void verr_at(vctx *v, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void vverr(vctx *v, const char *fmt, va_list ap)
{
	char msg[MSG_MAX];

	vsnprintf(msg, sizeof msg, fmt, ap);
	wc_errors_add(v->errs, "%s: %s: %s", v->label, v->plen ? v->path : "$", msg);
}

static void verr(vctx *v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vverr(v, fmt, ap);
	va_end(ap);
}

/* An error about FIELD of the object at the current path. */
static void verr_at(vctx *v, const char *field, const char *fmt, ...)
{
	size_t old = path_key(v, field);
	va_list ap;

	va_start(ap, fmt);
	vverr(v, fmt, ap);
	va_end(ap);
	path_pop(v, old);
}

/* S[0..len) quoted for a message: control bytes escaped, cut after
 * QUOTE_MAX bytes (on a UTF-8 boundary). BUF needs QUOTE_MAX * 4 + 8. */
static const char *quote(char *buf, const char *s, size_t len)
{
	char *o = buf;
	size_t i;

	*o++ = '"';
	for (i = 0; i < len && i < QUOTE_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			*o++ = '\\', *o++ = (char)c;
		else if (c < 0x20 || c == 0x7f)
			o += sprintf(o, "\\x%02x", c);
		else
			*o++ = (char)c;
	}
	if (i < len) {
		while (o > buf + 1 && ((unsigned char)o[-1] & 0xc0) == 0x80)
			o--; /* drop a cut UTF-8 sequence's continuation bytes */
		if (o > buf + 1 && (unsigned char)o[-1] >= 0xc0)
			o--;
		o += sprintf(o, "...");
	}
	*o++ = '"';
	*o = '\0';
	return buf;
}
#define QBUF (QUOTE_MAX * 4 + 8)

static const char *jtype(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER:
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

static const char *vtype_name(int t)
{
	switch (t) {
	case FS_V_BOOL: return "a boolean";
	case FS_V_NUMBER: return "a number";
	case FS_V_STRING: return "a string";
	case FS_V_JSON: return "a JSON object or array";
	}
	return "?";
}

/* The shortest text that reads back as D. */
static const char *fmt_num(char buf[40], double d)
{
	if (d == trunc(d) && fabs(d) < 1e15) {
		snprintf(buf, 40, "%.0f", d);
		return buf;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, 40, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	return buf;
}

/* ------------------------------------------------------------- getters */

/* Unknown fields of OBJ (ALLOWED ends with NULL). */
static void check_fields(vctx *v, json_t *obj, const char *const *allowed)
{
	const char *k;
	json_t *val;

	json_object_foreach(obj, k, val) {
		size_t i;
		for (i = 0; allowed[i] && (allowed[i][0] != k[0] || strcmp(allowed[i], k) != 0); i++)
			;
		if (!allowed[i])
			verr_at(v, k, "unknown field");
		(void)val;
	}
}

static int string_ok(vctx *v, json_t *s)
{
	if (json_string_length(s) > v->lim->max_string) {
		verr(v, "a string of %zu bytes, more than the limit max_string (%zu)",
		     json_string_length(s), v->lim->max_string);
		return 0;
	}
	return 1;
}

/* Field NAME of OBJ as a string: 1 when present and valid, 0 when absent
 * (an error if REQUIRED), -1 when invalid (reported). NONEMPTY rejects "". */
static int get_str(vctx *v, json_t *obj, const char *name, int required, int nonempty,
		   json_t **out)
{
	json_t *s = json_object_get(obj, name);
	size_t old;
	int rc = 1;

	*out = NULL;
	if (!s) {
		if (required)
			verr_at(v, name, "required field is missing");
		return 0;
	}
	old = path_key(v, name);
	if (!json_is_string(s)) {
		verr(v, "must be a string (got %s)", jtype(s));
		rc = -1;
	} else if (nonempty && json_string_length(s) == 0) {
		verr(v, "must not be empty");
		rc = -1;
	} else if (!string_ok(v, s)) {
		rc = -1;
	}
	path_pop(v, old);
	if (rc == 1)
		*out = s;
	return rc;
}

static void check_bool(vctx *v, json_t *obj, const char *name)
{
	json_t *b = json_object_get(obj, name);

	if (b && !json_is_boolean(b))
		verr_at(v, name, "must be a boolean (got %s)", jtype(b));
}

/* Field NAME of OBJ as an array of at most LIMIT elements (LIMIT_NAME
 * names the limit, WHAT the elements): the array, or NULL (absent or bad). */
static json_t *get_array(vctx *v, json_t *obj, const char *name, size_t limit,
			 const char *limit_name, const char *what)
{
	json_t *a = json_object_get(obj, name);

	if (!a)
		return NULL;
	if (!json_is_array(a)) {
		verr_at(v, name, "must be an array (got %s)", jtype(a));
		return NULL;
	}
	if (json_array_size(a) > limit)
		verr_at(v, name, "%zu %s, more than the limit %s (%zu)", json_array_size(a), what,
			limit_name, limit);
	return a;
}

size_t wc_name_bad_char(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return i;
	}
	return len;
}

/* A flag key, segment or environment name: 1-128 of [A-Za-z0-9._-]. */
static int name_ok(vctx *v, const char *s, size_t len)
{
	char q[QBUF];

	if (len == 0) {
		verr(v, "must not be empty");
		return 0;
	}
	if (len > WC_NAME_MAX) {
		verr(v, "%s is %zu characters long, more than %d", quote(q, s, len), len, WC_NAME_MAX);
		return 0;
	}
	size_t i = wc_name_bad_char(s, len);
	if (i < len) {
		unsigned char c = (unsigned char)s[i];
		if (c > 0x20 && c < 0x7f)
			verr(v, "invalid character '%c' in %s (allowed: A-Z a-z 0-9 . _ -)", c,
			     quote(q, s, len));
		else
			verr(v, "invalid character 0x%02x in %s (allowed: A-Z a-z 0-9 . _ -)", c,
			     quote(q, s, len));
		return 0;
	}
	return 1;
}

/* A number that can stand as a double: integers past 2^53 would change. */
static int number_ok(vctx *v, json_t *n)
{
	if (json_is_integer(n)) {
		json_int_t i = json_integer_value(n);
		if (i > (json_int_t)1 << 53 || i < -((json_int_t)1 << 53)) {
			verr(v, "integer %lld is too large to be exact as a double (more than 2^53)",
			     (long long)i);
			return 0;
		}
	}
	return 1;
}

/* A flag value that must have type VT (the flag's); LIKE says whose type. */
static void check_value(vctx *v, json_t *val, int vt, const char *like)
{
	int t = wc_vtype(val);

	if (!t) {
		verr(v, "must be a boolean, number, string, object or array (got null)");
		return;
	}
	if (vt && t != vt) {
		verr(v, "must be %s, like %s (got %s)", vtype_name(vt), like, jtype(val));
		return;
	}
	if (t == FS_V_NUMBER)
		number_ok(v, val);
	else if (t == FS_V_STRING)
		string_ok(v, val);
	else if (t == FS_V_JSON) {
		char *text = json_dumps(val, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		size_t len = text ? strlen(text) : 0;
		if (len > v->lim->max_string)
			verr(v, "JSON text of %zu bytes, more than the limit max_string (%zu)", len,
			     v->lim->max_string);
		free(text);
	}
}

static void check_value_at(vctx *v, json_t *obj, const char *name, int vt, const char *like)
{
	json_t *val = json_object_get(obj, name);
	size_t old;

	if (!val)
		return;
	old = path_key(v, name);
	check_value(v, val, vt, like);
	path_pop(v, old);
}

static void check_percent_at(vctx *v, json_t *obj, const char *name)
{
	json_t *p = json_object_get(obj, name);
	const char *why;
	uint32_t out;

	if (p && (why = wc_percent(p, &out)) != NULL) {
		char n[40];
		if (json_is_number(p))
			verr_at(v, name, "%s (got %s)", why, fmt_num(n, json_number_value(p)));
		else
			verr_at(v, name, "%s (got %s)", why, jtype(p));
	}
}

static void check_date_at(vctx *v, json_t *obj, const char *name)
{
	json_t *s;
	int64_t ms;
	char q[QBUF];

	if (get_str(v, obj, name, 0, 0, &s) == 1 &&
	    !timeparse_rfc3339(json_string_value(s), json_string_length(s), &ms))
		verr_at(v, name, "%s is not an RFC 3339 date-time (like 2026-11-01T00:00:00Z)",
			quote(q, json_string_value(s), json_string_length(s)));
}

/* ----------------------------------------------------------- the cost */

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a + b > COST_CAP || a + b < a ? COST_CAP : a + b;
}

static void cost_add(vcost *a, const vcost *b)
{
	a->conds = sat_add(a->conds, b->conds);
	a->rx = sat_add(a->rx, b->rx);
	a->segs = sat_add(a->segs, b->segs);
	a->rules = sat_add(a->rules, b->rules);
	a->flags = sat_add(a->flags, b->flags);
}

static uint64_t sat_mul(uint64_t a, uint64_t w)
{
	return a > COST_CAP / w ? COST_CAP : a * w;
}

/* The single figure the limit eval-cost bounds. */
static uint64_t cost_total(const vcost *c)
{
	uint64_t plain = c->conds > c->rx ? c->conds - c->rx : 0;
	uint64_t t = sat_mul(plain, WC_COST_COND);

	t = sat_add(t, sat_mul(c->rx, WC_COST_REGEX));
	t = sat_add(t, sat_mul(c->segs, WC_COST_SEGMENT));
	t = sat_add(t, sat_mul(c->rules, WC_COST_RULE));
	return sat_add(t, sat_mul(c->flags, WC_COST_FLAG));
}

/* The conditions array of OBJ as evaluated: every one, a `matches` one
 * also as a regex match. Whatever the array holds (invalid entries are
 * reported elsewhere). */
static vcost conds_cost(json_t *obj)
{
	json_t *a = json_object_get(obj, "conditions"), *c;
	vcost k = {0, 0, 0, 0, 0};
	size_t i;

	if (!json_is_array(a))
		return k;
	json_array_foreach(a, i, c) {
		const char *op = json_string_value(json_object_get(c, "operator"));
		k.conds++;
		if (op && strcmp(op, "matches") == 0)
			k.rx++;
	}
	return k;
}

/* The rules of targeting array A, each tried in full: its conditions, and
 * each segment it names once (the compiler drops repeats within a rule)
 * with that segment's conditions. */
static vcost targeting_cost(vctx *v, json_t *a)
{
	json_t *rule, *segs, *e;
	vcost k = {0, 0, 0, 0, 0};
	size_t i, j;

	json_array_foreach(a, i, rule) {
		vcost rc = conds_cost(rule);
		k.rules = sat_add(k.rules, 1);
		cost_add(&k, &rc);
		segs = json_object_get(rule, "segments");
		if (!json_is_array(segs) || !v->segidx)
			continue;
		v->stamp++;
		json_array_foreach(segs, j, e) {
			json_t *idx = json_is_string(e) ? json_object_get(v->segidx, json_string_value(e))
						     : NULL;
			if (!idx)
				continue;
			size_t g = (size_t)json_integer_value(idx);
			if (v->segstamp[g] == v->stamp)
				continue;
			v->segstamp[g] = v->stamp;
			k.segs = sat_add(k.segs, 1);
			cost_add(&k, &v->segcost[g]);
		}
	}
	return k;
}

/* Add pattern P (LEN bytes, CI caseless) to the set: 1 when new, 0 when
 * seen, -1 out of memory. */
static int rxset_add(rxset *s, const char *p, size_t len, int ci)
{
	uint32_t h = mm3_hash(p, len, (uint32_t)ci);
	size_t i;

	if (2 * (s->n + 1) > s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		rxent *e = malloc(cap * sizeof *e);
		if (!e)
			return -1;
		for (i = 0; i < cap; i++)
			e[i].ci = -1;
		for (size_t k = 0; k < s->cap; k++) {
			if (s->e[k].ci < 0)
				continue;
			for (i = s->e[k].h & (cap - 1); e[i].ci >= 0; i = (i + 1) & (cap - 1))
				;
			e[i] = s->e[k];
		}
		free(s->e);
		s->e = e;
		s->cap = cap;
	}
	for (i = h & (s->cap - 1); s->e[i].ci >= 0; i = (i + 1) & (s->cap - 1))
		if (s->e[i].h == h && s->e[i].ci == ci && s->e[i].len == len &&
		    memcmp(s->e[i].p, p, len) == 0)
			return 0;
	s->e[i] = (rxent){p, len, h, ci};
	s->n++;
	return 1;
}

/* A valid pattern at the current path: counted, and the first one past
 * the limit `regexes` is reported (once). */
static void count_regex(vctx *v, json_t *val, int caseless)
{
	int r = rxset_add(&v->rx, json_string_value(val), json_string_length(val), caseless);
	/* Past FS_REGEX_MAX readers would refuse the snapshot. */
	size_t max = v->lim->max_regexes < FS_REGEX_MAX ? v->lim->max_regexes : FS_REGEX_MAX;

	if (r < 0)
		wc_errors_add(v->errs, "%s: out of memory", v->label);
	else if (r && v->rx.n == max + 1)
		verr(v, "a regular expression past the limit regexes (%zu distinct patterns "
		     "per document, counting every environment)", max);
}

/* ---------------------------------------------------------- conditions */

static int check_regex(vctx *v, json_t *val, int caseless)
{
	uint32_t opts = PCRE2_UTF | (caseless ? PCRE2_CASELESS : 0);
	int code;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)json_string_value(val),
				       json_string_length(val), opts, &code, &off, NULL);
	char msg[256];

	if (re) {
		pcre2_code_free(re);
		return 1;
	}
	if (pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof msg) < 0)
		snprintf(msg, sizeof msg, "PCRE2 error %d", code);
	verr(v, "invalid regular expression at offset %zu: %s", (size_t)off, msg);
	return 0;
}

static void check_in_list(vctx *v, json_t *val)
{
	size_t i;
	json_t *e;

	if (json_array_size(val) > v->lim->max_list)
		verr(v, "%zu elements, more than the limit max_list (%zu)", json_array_size(val),
		     v->lim->max_list);
	json_array_foreach(val, i, e) {
		size_t old = path_idx(v, i);
		if (json_is_string(e))
			string_ok(v, e);
		else if (json_is_number(e))
			number_ok(v, e);
		else
			verr(v, "must be a string or a number (got %s)", jtype(e));
		path_pop(v, old);
	}
}

/* The operand VAL of operator OP, at the current path (".value"). */
static void check_operand(vctx *v, int op, json_t *val, int caseless)
{
	const char *name = fs_op_names[op];
	char q[QBUF];
	int64_t ms;
	semver sv;

	switch (op) {
	case FS_OP_EQUALS:
	case FS_OP_NOT_EQUALS:
		if (json_is_string(val))
			string_ok(v, val);
		else if (json_is_number(val))
			number_ok(v, val);
		else if (!json_is_boolean(val))
			verr(v, "must be a string, number or boolean for %s (got %s)", name, jtype(val));
		break;
	case FS_OP_IN:
	case FS_OP_NOT_IN:
		if (!json_is_array(val))
			verr(v, "must be an array of strings and numbers for %s (got %s)", name,
			     jtype(val));
		else
			check_in_list(v, val);
		break;
	case FS_OP_CONTAINS:
	case FS_OP_NOT_CONTAINS:
	case FS_OP_STARTS_WITH:
	case FS_OP_ENDS_WITH:
	case FS_OP_MATCHES:
		if (!json_is_string(val))
			verr(v, "must be a string for %s (got %s)", name, jtype(val));
		else if (string_ok(v, val) && op == FS_OP_MATCHES && check_regex(v, val, caseless))
			count_regex(v, val, caseless);
		break;
	case FS_OP_GT:
	case FS_OP_GTE:
	case FS_OP_LT:
	case FS_OP_LTE:
		if (!json_is_number(val))
			verr(v, "must be a number for %s (got %s)", name, jtype(val));
		else
			number_ok(v, val);
		break;
	case FS_OP_SEMVER_EQ:
	case FS_OP_SEMVER_GT:
	case FS_OP_SEMVER_LT:
		if (!json_is_string(val))
			verr(v, "must be a version string for %s (got %s)", name, jtype(val));
		else if (!semver_parse(json_string_value(val), json_string_length(val), &sv))
			verr(v, "%s is not a SemVer 2.0.0 version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])",
			     quote(q, json_string_value(val), json_string_length(val)));
		break;
	case FS_OP_BEFORE:
	case FS_OP_AFTER:
		if (!json_is_string(val) && !json_is_number(val))
			verr(v, "must be an RFC 3339 string or Unix seconds for %s (got %s)", name,
			     jtype(val));
		else if (wc_time(val, &ms) != NULL && json_is_string(val))
			verr(v, "%s is not an RFC 3339 date-time (like 2026-11-01T00:00:00Z)",
			     quote(q, json_string_value(val), json_string_length(val)));
		else if (wc_time(val, &ms) != NULL)
			verr(v, "Unix seconds out of range (|ms| must be below 2^53)");
		break;
	}
}

static void check_cond(vctx *v, json_t *c)
{
	static const char *const fields[] = {"attribute", "operator", "value", "negate",
					     "caseInsensitive", NULL};
	json_t *attr, *opj, *val, *ci;
	int op = 0;

	if (!json_is_object(c)) {
		verr(v, "must be an object (got %s)", jtype(c));
		return;
	}
	check_fields(v, c, fields);
	get_str(v, c, "attribute", 1, 1, &attr);
	if (get_str(v, c, "operator", 1, 0, &opj) == 1) {
		op = wc_op_parse(json_string_value(opj));
		if (!op) {
			char q[QBUF];
			verr_at(v, "operator", "unknown operator %s",
				quote(q, json_string_value(opj), json_string_length(opj)));
		}
	}
	check_bool(v, c, "negate");
	check_bool(v, c, "caseInsensitive");
	ci = json_object_get(c, "caseInsensitive");
	if (op >= FS_OP_GT && json_is_true(ci))
		verr_at(v, "caseInsensitive", "applies only to string operators, not %s", fs_op_names[op]);
	val = json_object_get(c, "value");
	if (!val)
		verr_at(v, "value", "required field is missing");
	else if (op) {
		size_t old = path_key(v, "value");
		check_operand(v, op, val, json_is_true(ci));
		path_pop(v, old);
	}
}

static void check_conds(vctx *v, json_t *obj)
{
	json_t *a = get_array(v, obj, "conditions", v->lim->max_conditions, "max_conditions",
			      "conditions");
	size_t i, old = 0;
	json_t *c;

	if (!a)
		return;
	old = path_key(v, "conditions");
	json_array_foreach(a, i, c) {
		size_t o = path_idx(v, i);
		check_cond(v, c);
		path_pop(v, o);
	}
	path_pop(v, old);
}

/* ------------------------------------------------------------ segments */

static void check_segment(vctx *v, json_t *sg)
{
	static const char *const fields[] = {"included", "conditions", NULL};
	json_t *incl, *e;
	size_t i;

	if (!json_is_object(sg)) {
		verr(v, "must be an object (got %s)", jtype(sg));
		return;
	}
	check_fields(v, sg, fields);
	incl = get_array(v, sg, "included", v->lim->max_list, "max_list", "ids");
	if (incl) {
		size_t old = path_key(v, "included");
		json_array_foreach(incl, i, e) {
			size_t o = path_idx(v, i);
			if (!json_is_string(e))
				verr(v, "must be a string (got %s)", jtype(e));
			else
				string_ok(v, e);
			path_pop(v, o);
		}
		path_pop(v, old);
	}
	check_conds(v, sg);
}

static void check_segments(vctx *v, json_t *segs)
{
	size_t old = path_key(v, "segments");
	const char *name;
	json_t *sg;

	size_t n = json_object_size(segs), k = 0;

	if (n > v->lim->max_segments)
		verr(v, "%zu segments, more than the limit max_segments (%zu)", n,
		     v->lim->max_segments);
	v->segidx = json_object();
	v->segcost = calloc(n ? n : 1, sizeof *v->segcost);
	v->segstamp = calloc(n ? n : 1, sizeof *v->segstamp);
	if (!v->segidx || !v->segcost || !v->segstamp) {
		wc_errors_add(v->errs, "%s: out of memory", v->label);
		json_decref(v->segidx);
		v->segidx = NULL;
	}
	json_object_foreach(segs, name, sg) {
		size_t o = path_key(v, name);
		if (name_ok(v, name, strlen(name)))
			check_segment(v, sg);
		if (v->segidx) {
			v->segcost[k] = conds_cost(sg);
			json_object_set_new(v->segidx, name, json_integer((json_int_t)k));
		}
		k++;
		path_pop(v, o);
	}
	path_pop(v, old);
}

/* --------------------------------------------------------------- rules */

static void check_split(vctx *v, json_t *split, int vt)
{
	static const char *const fields[] = {"value", "weight", NULL};
	uint32_t sum = 0;
	int sum_ok = 1;
	json_t *band;
	size_t i;

	if (json_array_size(split) == 0) {
		verr(v, "must have at least one band");
		return;
	}
	if (json_array_size(split) > v->lim->max_list)
		verr(v, "%zu bands, more than the limit max_list (%zu)", json_array_size(split),
		     v->lim->max_list);
	json_array_foreach(split, i, band) {
		size_t o = path_idx(v, i);
		json_t *w;
		uint32_t t;
		if (!json_is_object(band)) {
			verr(v, "must be an object with value and weight (got %s)", jtype(band));
			sum_ok = 0;
			path_pop(v, o);
			continue;
		}
		check_fields(v, band, fields);
		if (!json_object_get(band, "value"))
			verr_at(v, "value", "required field is missing");
		check_value_at(v, band, "value", vt, "defaultValue");
		w = json_object_get(band, "weight");
		if (!w) {
			verr_at(v, "weight", "required field is missing");
			sum_ok = 0;
		} else if (wc_percent(w, &t) != NULL) {
			check_percent_at(v, band, "weight");
			sum_ok = 0;
		} else {
			sum += t;
		}
		path_pop(v, o);
	}
	if (sum_ok && sum != 100000) {
		char n[40];
		verr(v, "weights sum to %s, not 100", fmt_num(n, sum / 1000.0));
	}
}

static void check_rule_segments(vctx *v, json_t *rule)
{
	json_t *a = get_array(v, rule, "segments", v->lim->max_list, "max_list", "segments");
	json_t *e;
	size_t i, old;

	if (!a)
		return;
	old = path_key(v, "segments");
	if (json_array_size(a) == 0)
		verr(v, "must name at least one segment (leave it out for none)");
	json_array_foreach(a, i, e) {
		size_t o = path_idx(v, i);
		char q[QBUF];
		if (!json_is_string(e))
			verr(v, "must be a segment name (got %s)", jtype(e));
		else if (!v->segments || !json_object_get(v->segments, json_string_value(e)))
			verr(v, "unknown segment %s",
			     quote(q, json_string_value(e), json_string_length(e)));
		path_pop(v, o);
	}
	path_pop(v, old);
}

static void check_priority(vctx *v, json_t *rule)
{
	json_t *p = json_object_get(rule, "priority");

	if (!p)
		return;
	if (!json_is_integer(p))
		verr_at(v, "priority", "must be an integer (got %s)", jtype(p));
	else if (json_integer_value(p) < INT32_MIN || json_integer_value(p) > INT32_MAX)
		verr_at(v, "priority", "must be between %d and %d (got %lld)", INT32_MIN, INT32_MAX,
			(long long)json_integer_value(p));
}

/* Rule I of a targeting list; v->ids maps the ids seen so far to positions. */
static void check_rule(vctx *v, json_t *rule, int vt, size_t i)
{
	static const char *const fields[] = {"id",		  "priority",  "conditions",
					     "segments",	  "rolloutPercentage",
					     "variation",	  "split",     NULL};
	json_t *id, *var, *split;

	if (!json_is_object(rule)) {
		verr(v, "must be an object (got %s)", jtype(rule));
		return;
	}
	check_fields(v, rule, fields);
	if (get_str(v, rule, "id", 1, 1, &id) == 1) {
		const char *ids = json_string_value(id);
		long first = wc_kidx_get(&v->ids, ids, strlen(ids));
		char q[QBUF];
		if (first >= 0)
			verr_at(v, "id", "duplicate rule id %s (also targeting[%lld])",
				quote(q, json_string_value(id), json_string_length(id)),
				(long long)first);
		else if (wc_kidx_put(&v->ids, ids, strlen(ids), (uint32_t)i) < 0)
			wc_errors_add(v->errs, "%s: out of memory", v->label);
	}
	check_priority(v, rule);
	check_conds(v, rule);
	check_rule_segments(v, rule);
	check_percent_at(v, rule, "rolloutPercentage");
	var = json_object_get(rule, "variation");
	split = json_object_get(rule, "split");
	if (var && split)
		verr(v, "has both variation and split; give exactly one");
	else if (!var && !split)
		verr(v, "needs a variation or a split");
	if (split && json_object_get(rule, "rolloutPercentage"))
		verr_at(v, "rolloutPercentage",
			"does not apply to a split rule (its weights cover every bucket)");
	check_value_at(v, rule, "variation", vt, "defaultValue");
	if (split && !json_is_array(split))
		verr_at(v, "split", "must be an array (got %s)", jtype(split));
	else if (split) {
		size_t old = path_key(v, "split");
		check_split(v, split, vt);
		path_pop(v, old);
	}
}

static void check_targeting(vctx *v, json_t *obj, int vt)
{
	json_t *a = get_array(v, obj, "targeting", v->lim->max_rules, "max_rules", "rules");
	json_t *rule;
	size_t i, old;

	if (!a)
		return;
	wc_kidx_reset(&v->ids);
	old = path_key(v, "targeting");
	json_array_foreach(a, i, rule) {
		size_t o = path_idx(v, i);
		check_rule(v, rule, vt, i);
		path_pop(v, o);
	}
	path_pop(v, old);
	if (v->own) {
		vcost k = targeting_cost(v, a);
		if (cost_total(&k) > cost_total(&v->own[v->cur_flag]))
			v->own[v->cur_flag] = k;
	}
}

/* --------------------------------------------------------------- flags */

static const char *const kind_names[] = {"release", "operational", "experiment", "permission"};

static void check_kind(vctx *v, json_t *flag)
{
	json_t *t;

	if (get_str(v, flag, "type", 0, 0, &t) != 1)
		return;
	for (size_t i = 0; i < sizeof kind_names / sizeof *kind_names; i++)
		if (strcmp(json_string_value(t), kind_names[i]) == 0)
			return;
	char q[QBUF];
	verr_at(v, "type", "must be one of release, operational, experiment, permission (got %s)",
		quote(q, json_string_value(t), json_string_length(t)));
}

static void check_prereqs(vctx *v, json_t *flag)
{
	static const char *const fields[] = {"key", "value", NULL};
	json_t *a = get_array(v, flag, "prerequisites", v->lim->max_list, "max_list",
			      "prerequisites");
	json_t *p, *key;
	size_t i, old;

	if (!a)
		return;
	v->pre[v->cur_flag] = a; /* for check_prereq_graph */
	old = path_key(v, "prerequisites");
	json_array_foreach(a, i, p) {
		size_t o = path_idx(v, i);
		long idx;
		char q[QBUF], like[QBUF + 32];
		if (!json_is_object(p)) {
			verr(v, "must be an object with key and value (got %s)", jtype(p));
			path_pop(v, o);
			continue;
		}
		check_fields(v, p, fields);
		if (!json_object_get(p, "value"))
			verr_at(v, "value", "required field is missing");
		if (get_str(v, p, "key", 1, 1, &key) != 1) {
			path_pop(v, o);
			continue;
		}
		quote(q, json_string_value(key), json_string_length(key));
		idx = wc_kidx_get(&v->keys, json_string_value(key), strlen(json_string_value(key)));
		if (idx < 0) {
			verr_at(v, "key", "unknown flag %s", q);
		} else {
			snprintf(like, sizeof like, "the defaultValue of %s", q);
			check_value_at(v, p, "value", v->vtypes[idx], like);
		}
		path_pop(v, o);
	}
	path_pop(v, old);
}

static void check_tags(vctx *v, json_t *flag)
{
	json_t *a = get_array(v, flag, "tags", v->lim->max_list, "max_list", "tags");
	json_t *t;
	size_t i, old;

	if (!a)
		return;
	old = path_key(v, "tags");
	json_array_foreach(a, i, t) {
		size_t o = path_idx(v, i);
		if (!json_is_string(t))
			verr(v, "must be a string (got %s)", jtype(t));
		else
			string_ok(v, t);
		path_pop(v, o);
	}
	path_pop(v, old);
}

/* The fields an environment may override, checked as the flag's own. */
static void check_overridable(vctx *v, json_t *obj, int vt, int is_env)
{
	check_bool(v, obj, "enabled");
	if (is_env)
		check_value_at(v, obj, "defaultValue", vt, "the flag's defaultValue");
	check_value_at(v, obj, "offValue", vt, "defaultValue");
	check_percent_at(v, obj, "rolloutPercentage");
	check_targeting(v, obj, vt);
}

static void check_environments(vctx *v, json_t *flag, int vt)
{
	static const char *const fields[] = {"enabled", "defaultValue", "offValue",
					     "rolloutPercentage", "targeting", NULL};
	json_t *envs = json_object_get(flag, "environments"), *e;
	const char *name;
	size_t old;

	if (!envs)
		return;
	if (!json_is_object(envs)) {
		verr_at(v, "environments", "must be an object (got %s)", jtype(envs));
		return;
	}
	old = path_key(v, "environments");
	json_object_foreach(envs, name, e) {
		size_t o = path_key(v, name);
		if (!name_ok(v, name, strlen(name)))
			; /* reported; its overrides could not be selected anyway */
		else if (!json_is_object(e)) {
			verr(v, "must be an object (got %s)", jtype(e));
		} else {
			check_fields(v, e, fields);
			check_overridable(v, e, vt, 1);
		}
		path_pop(v, o);
	}
	path_pop(v, old);
}

static void check_version(vctx *v, json_t *flag)
{
	json_t *n = json_object_get(flag, "version");

	if (!n)
		return;
	if (!json_is_integer(n))
		verr_at(v, "version", "must be an integer (got %s)", jtype(n));
	else if (json_integer_value(n) < 0)
		verr_at(v, "version", "must be 0 or more (got %lld)", (long long)json_integer_value(n));
}

static void check_flag(vctx *v, json_t *flag, int vt)
{
	static const char *const fields[] = {
		"key",	      "name",	       "description", "type",	   "enabled",
		"defaultValue", "offValue",      "rolloutPercentage", "bucketBy", "salt",
		"targeting",    "prerequisites", "environments", "createdAt", "updatedAt",
		"version",      "owner",	       "expiresAt",   "tags",	   NULL};
	json_t *s, *dv = json_object_get(flag, "defaultValue");

	check_fields(v, flag, fields);
	get_str(v, flag, "name", 0, 0, &s);
	get_str(v, flag, "description", 0, 0, &s);
	get_str(v, flag, "owner", 0, 0, &s);
	get_str(v, flag, "bucketBy", 0, 1, &s);
	get_str(v, flag, "salt", 0, 1, &s);
	check_kind(v, flag);
	if (!dv)
		verr_at(v, "defaultValue", "required field is missing");
	else
		check_value_at(v, flag, "defaultValue", 0, NULL);
	if (vt && vt != FS_V_BOOL && !json_object_get(flag, "offValue"))
		verr_at(v, "offValue",
			"required for a flag whose defaultValue is %s (only boolean flags default it to false)",
			vtype_name(vt));
	check_overridable(v, flag, vt, 0);
	check_prereqs(v, flag);
	check_environments(v, flag, vt);
	check_date_at(v, flag, "createdAt");
	check_date_at(v, flag, "updatedAt");
	check_date_at(v, flag, "expiresAt");
	check_version(v, flag);
	check_tags(v, flag);
}

/* First pass: keys (charset, uniqueness) and value types, which the second
 * pass needs for prerequisites. */
static void index_flags(vctx *v, json_t *flags)
{
	json_t *flag, *key;
	size_t i;

	json_array_foreach(flags, i, flag) {
		size_t o = path_idx(v, i);
		json_t *dv;
		wc_prefetch_flag(flags, i);
		if (!json_is_object(flag)) {
			verr(v, "must be an object (got %s)", jtype(flag));
			path_pop(v, o);
			continue;
		}
		dv = json_object_get(flag, "defaultValue");
		v->vtypes[i] = dv ? wc_vtype(dv) : 0;
		/* Not get_str: a key's own length rule says more than max_string. */
		key = json_object_get(flag, "key");
		if (!key)
			verr_at(v, "key", "required field is missing");
		else if (!json_is_string(key))
			verr_at(v, "key", "must be a string (got %s)", jtype(key));
		else {
			size_t ko = path_key(v, "key");
			const char *k = json_string_value(key);
			long first = wc_kidx_get(&v->keys, k, strlen(k));
			char q[QBUF];
			if (!name_ok(v, k, json_string_length(key)))
				;
			else if (first >= 0)
				verr(v, "duplicate key %s (also %s[%lld])",
				     quote(q, k, json_string_length(key)), v->flags_path,
				     (long long)first);
			else if (wc_kidx_put(&v->keys, k, strlen(k), (uint32_t)i) < 0)
				wc_errors_add(v->errs, "%s: out of memory", v->label);
			path_pop(v, ko);
		}
		path_pop(v, o);
	}
}

/* ------------------------------------------------------- prerequisites */

/* Flag index of prerequisite P, or -1. */
static long prereq_target(vctx *v, json_t *p)
{
	json_t *k = json_is_object(p) ? json_object_get(p, "key") : NULL;

	return json_is_string(k) ? wc_kidx_get(&v->keys, json_string_value(k),
						strlen(json_string_value(k)))
				 : -1;
}

/* Flag I's prerequisites array (noted by check_prereqs), or NULL. */
static json_t *prereqs_of(vctx *v, size_t i)
{
	return v->pre[i];
}

static const char *key_of(json_t *flags, size_t i)
{
	return json_string_value(json_object_get(json_array_get(flags, i), "key"));
}

/* Report the cycle closed by edge (stack top -> node J) at that edge. */
static void report_cycle(vctx *v, json_t *flags, const size_t *stack, const size_t *edge,
			 size_t depth, size_t j)
{
	char msg[MSG_MAX];
	size_t len = 0, from = depth;

	while (from > 0 && stack[from - 1] != j)
		from--;
	if (from > 0)
		from--;
	for (size_t s = from; s < depth && len < sizeof msg - 8; s++)
		len += (size_t)snprintf(msg + len, sizeof msg - len, "%s -> ", key_of(flags, stack[s]));
	if (len < sizeof msg - 8)
		snprintf(msg + len, sizeof msg - len, "%s", key_of(flags, j));
	size_t top = stack[depth - 1];
	size_t o = v->plen;
	path_push(v, "%s[%zu].prerequisites[%zu].key", v->flags_path, top, edge[depth - 1] - 1);
	verr(v, "prerequisite cycle: %s", msg);
	path_pop(v, o);
}

/* Flag I's whole cost C against the limit eval-cost. */
static void report_cost(vctx *v, json_t *flags, size_t i, const vcost *c)
{
	uint64_t total = cost_total(c);
	char q[QBUF];
	size_t o = v->plen;

	if (total <= v->lim->max_eval_cost)
		return;
	/* Only now: the key is one more lookup in a flag's object, a cache
	 * miss per flag at 100,000 flags, for a message that is rare. */
	const char *key = key_of(flags, i);
	path_push(v, "%s[%zu] (%s)", v->flags_path, i, key ? quote(q, key, strlen(key)) : "?");
	verr(v, "worst-case evaluation cost %llu exceeds the limit eval-cost=%zu (%llu condition "
	     "evaluations, %llu of them regex matches; %llu segment lookups, %llu rules, %llu flag "
	     "evaluations)",
	     (unsigned long long)total, v->lim->max_eval_cost, (unsigned long long)c->conds,
	     (unsigned long long)c->rx, (unsigned long long)c->segs, (unsigned long long)c->rules,
	     (unsigned long long)c->flags);
	path_pop(v, o);
}

/*
 * Depth-first search over prerequisite edges with an explicit stack (a
 * chain may be as long as the document). Colours: 0 new, 1 on the stack,
 * 2 done. depth[i] is the longest chain of links below flag i.
 */
static void check_prereq_graph(vctx *v, json_t *flags)
{
	size_t n = v->nflags;
	unsigned char *colour = calloc(n ? n : 1, 1);
	size_t *depth = calloc(n ? n : 1, sizeof *depth);
	size_t *visits = calloc(n ? n : 1, sizeof *visits);
	size_t *stack = malloc((n ? n : 1) * sizeof *stack);
	size_t *edge = malloc((n ? n : 1) * sizeof *edge);
	vcost *cost = calloc(n ? n : 1, sizeof *cost);

	if (!colour || !depth || !visits || !stack || !edge || !cost) {
		wc_errors_add(v->errs, "%s: out of memory", v->label);
		goto out;
	}
	for (size_t root = 0; root < n; root++) {
		size_t sp = 0;
		if (colour[root])
			continue;
		stack[sp] = root, edge[sp++] = 0, colour[root] = 1;
		while (sp) {
			size_t i = stack[sp - 1];
			json_t *a = prereqs_of(v, i);
			if (a && edge[sp - 1] < json_array_size(a)) {
				long j = prereq_target(v, json_array_get(a, edge[sp - 1]++));
				if (j < 0)
					continue;
				if (colour[j] == 1)
					report_cycle(v, flags, stack, edge, sp, (size_t)j);
				else if (colour[j] == 0)
					stack[sp] = (size_t)j, edge[sp++] = 0, colour[j] = 1;
				continue;
			}
			/* All edges done: depth over the children that finished,
			 * and the evaluations the reader makes for flag i when
			 * every prerequisite holds: one per path, since shared
			 * prerequisites (diamonds) are evaluated again on each
			 * (saturated past the limit). The cost adds up the
			 * same way: the flag's own, then each prerequisite's
			 * whole cost, once per edge. */
			cost[i] = v->own[i];
			cost[i].flags = sat_add(cost[i].flags, 1);
			for (size_t e = 0; a && e < json_array_size(a); e++) {
				long j = prereq_target(v, json_array_get(a, e));
				if (j >= 0 && colour[j] == 2 && depth[j] + 1 > depth[i])
					depth[i] = depth[j] + 1;
				if (j >= 0 && colour[j] == 2) {
					cost_add(&cost[i], &cost[j]);
					visits[i] += 1 + visits[j];
					if (visits[i] > WC_PREREQ_VISITS_MAX)
						visits[i] = WC_PREREQ_VISITS_MAX + 1;
				}
			}
			colour[i] = 2;
			sp--;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (depth[i] <= WC_PREREQ_DEPTH_MAX && visits[i] <= WC_PREREQ_VISITS_MAX) {
			report_cost(v, flags, i, &cost[i]);
			continue;
		}
		size_t o = v->plen;
		path_push(v, "%s[%zu].prerequisites", v->flags_path, i);
		if (depth[i] > WC_PREREQ_DEPTH_MAX)
			verr(v, "a prerequisite chain %zu links deep, more than %d", depth[i],
			     WC_PREREQ_DEPTH_MAX);
		else
			verr(v, "more than %d prerequisite evaluations, counting every path through "
			     "shared prerequisites (a reader evaluates at most %d)",
			     WC_PREREQ_VISITS_MAX, WC_PREREQ_VISITS_MAX);
		path_pop(v, o);
	}
out:
	free(cost);
	free(colour);
	free(depth);
	free(visits);
	free(stack);
	free(edge);
}

/* ------------------------------------------------------------ document */

static void check_flags(vctx *v, json_t *flags)
{
	json_t *flag;
	size_t i, old;

	v->nflags = json_array_size(flags);
	v->vtypes = calloc(v->nflags ? v->nflags : 1, sizeof *v->vtypes);
	v->own = calloc(v->nflags ? v->nflags : 1, sizeof *v->own);
	v->pre = calloc(v->nflags ? v->nflags : 1, sizeof *v->pre);
	if (!v->vtypes || !v->own || !v->pre || wc_kidx_init(&v->keys, v->nflags) < 0 ||
	    wc_kidx_init(&v->ids, 8) < 0) {
		wc_errors_add(v->errs, "%s: out of memory", v->label);
		return;
	}
	old = path_push(v, "%s", v->flags_path);
	if (v->nflags > v->lim->max_flags)
		verr(v, "%zu flags, more than the limit max_flags (%zu)", v->nflags, v->lim->max_flags);
	index_flags(v, flags);
	json_array_foreach(flags, i, flag) {
		size_t o = path_idx(v, i);
		v->cur_flag = i;
		wc_prefetch_flag(flags, i);
		if (json_is_object(flag))
			check_flag(v, flag, v->vtypes[i]);
		path_pop(v, o);
	}
	path_pop(v, old);
	check_prereq_graph(v, flags);
}

static void check_root(vctx *v, json_t *doc)
{
	static const char *const fields[] = {"formatVersion", "segments", "flags", "epoch", NULL};
	json_t *fv = json_object_get(doc, "formatVersion");
	json_t *ep = json_object_get(doc, "epoch");
	json_t *segs = json_object_get(doc, "segments");
	json_t *flags = json_object_get(doc, "flags");

	check_fields(v, doc, fields);
	if (!fv)
		verr_at(v, "formatVersion", "required field is missing (this format is 1)");
	else if (!json_is_integer(fv) || json_integer_value(fv) != 1)
		verr_at(v, "formatVersion", "must be 1 (the only format this writer reads)");
	if (ep && !json_is_string(ep) && !json_is_integer(ep))
		verr_at(v, "epoch", "must be a string or an integer (got %s)", jtype(ep));
	if (segs && !json_is_object(segs))
		verr_at(v, "segments", "must be an object (got %s)", jtype(segs));
	else if (segs) {
		v->segments = segs;
		check_segments(v, segs);
	}
	if (!flags)
		verr_at(v, "flags", "required field is missing");
	else if (!json_is_array(flags))
		verr_at(v, "flags", "must be an array (got %s)", jtype(flags));
	else
		check_flags(v, flags);
}

int wc_validate(json_t *doc, const char *label, const wc_limits *lim, wc_errors *errs)
{
	size_t before = errs->n + errs->dropped;
	vctx v;

	memset(&v, 0, sizeof v);
	v.label = label ? label : "flags";
	v.lim = lim;
	v.errs = errs;
	if (json_is_array(doc)) {
		v.flags_path = "";
		check_flags(&v, doc);
	} else if (json_is_object(doc)) {
		v.flags_path = "flags";
		check_root(&v, doc);
	} else {
		verr(&v, "must be a format-1 object or an array of flags (got %s)",
		     doc ? jtype(doc) : "nothing");
	}
	wc_kidx_free(&v.keys);
	wc_kidx_free(&v.ids);
	free(v.pre);
	json_decref(v.segidx);
	free(v.segcost);
	free(v.segstamp);
	free(v.own);
	free(v.rx.e);
	free(v.vtypes);
	return errs->n + errs->dropped > before ? -1 : 0;
}

/* ------------------------------------------------------ shared helpers */

json_t *wc_doc_flags(json_t *doc)
{
	return json_is_array(doc) ? doc : json_object_get(doc, "flags");
}

json_t *wc_doc_segments(json_t *doc)
{
	return json_is_object(doc) ? json_object_get(doc, "segments") : NULL;
}

json_t *wc_flag_env(json_t *flag, const char *name)
{
	json_t *envs = json_object_get(flag, "environments");

	return name && envs ? json_object_get(envs, name) : NULL;
}

bool wc_doc_mentions_env(json_t *doc, const char *name)
{
	json_t *flags = wc_doc_flags(doc), *flag;
	size_t i;

	json_array_foreach(flags, i, flag) {
		if (wc_flag_env(flag, name))
			return true;
	}
	return false;
}

json_t *wc_flag_field(json_t *flag, json_t *env, const char *name)
{
	json_t *o = env ? json_object_get(env, name) : NULL;

	return o ? o : json_object_get(flag, name);
}

int wc_vtype(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_TRUE:
	case JSON_FALSE: return FS_V_BOOL;
	case JSON_INTEGER:
	case JSON_REAL: return FS_V_NUMBER;
	case JSON_STRING: return FS_V_STRING;
	case JSON_OBJECT:
	case JSON_ARRAY: return FS_V_JSON;
	case JSON_NULL: return 0;
	}
	return 0;
}

int wc_op_parse(const char *name)
{
	for (int op = 1; op < FS_OP_MAX_; op++)
		if (strcmp(fs_op_names[op], name) == 0)
			return op;
	return 0;
}

const char *wc_percent(const json_t *v, uint32_t *out)
{
	double p, t;

	if (!json_is_number(v))
		return "must be a number";
	p = json_number_value(v);
	if (!(p >= 0 && p <= 100))
		return "must be between 0 and 100";
	t = p * 1000.0;
	/* 33.333 * 1000 is 33332.999999999996: allow for the binary error. */
	if (fabs(t - round(t)) > 1e-6)
		return "must have at most 3 decimals";
	*out = (uint32_t)llround(t);
	return NULL;
}

const char *wc_time(const json_t *v, int64_t *ms)
{
	if (json_is_string(v))
		return timeparse_rfc3339(json_string_value(v), json_string_length(v), ms)
			       ? NULL
			       : "not an RFC 3339 date-time";
	if (json_is_number(v))
		return timeparse_seconds(json_number_value(v), ms) ? NULL : "Unix seconds out of range";
	return "must be an RFC 3339 string or Unix seconds";
}
