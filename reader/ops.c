/*
 * reader/ops.c - condition operators (see ops.h for the contract).
 *
 * Case-insensitive comparisons fold ASCII letters of the attribute as they
 * go: the compiler stored the operand already lowercased (docs/semantics.md), so no
 * buffer is needed and non-ASCII bytes compare as they are.
 */
#include "ops.h"
#include "rules.h"
#include "eval.h"
#include "semver.h"
#include "timeparse.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>


static inline bool ci(const fs_cond *c)
{
	return c->c_flags & FS_COND_CASE_INSENSITIVE;
}


static inline bool eq_bytes(const char *a, size_t na, const char *b, size_t nb, bool do_fold)
{
	if (na != nb)
		return false;
	return do_fold ? sem_cmp_bytes(a, na, b, nb, true) == 0 : memcmp(a, b, na) == 0;
}

/* The operand value of C, or NULL; *STR gets its string when it is one. */
static const fs_value *operand(const snap *s, const fs_cond *c, const char **str)
{
	const fs_value *v = SNAP_VALUE(s, c->c_value);
	if (v && (v->v_type == FS_V_STRING || v->v_type == FS_V_JSON)) {
		*str = snap_str(s, v->v_str);
		if (!*str)
			return NULL;
	}
	return v;
}

int ops_equals(const snap *s, const fs_cond *c, const flagshm_attr *a)
{
	const char *str = NULL;
	const fs_value *v = operand(s, c, &str);
	if (!v)
		return -1;
	switch (v->v_type) {
	case FS_V_STRING:
		return a->type == FLAGSHM_ATTR_STRING &&
		       eq_bytes(a->u.str.ptr, a->u.str.len, str, v->v_str.len, ci(c));
	case FS_V_NUMBER:
		return a->type == FLAGSHM_ATTR_NUMBER && a->u.num == v->v_num;
	case FS_V_BOOL:
		return a->type == FLAGSHM_ATTR_BOOL && a->u.b == (v->v_bool != 0);
	}
	return -1;
}

int ops_in(const snap *s, const fs_cond *c, const flagshm_attr *a)
{
	const fs_value *list = SNAP_VALUE(s, c->c_value);
	if (!list || list->v_type != FS_V_LIST || c->c_nstr > list->v_count ||
	    !snap_range_ok(s, FS_T_VALUES, list->v_first, list->v_count))
		return -1;
	/* Strings live in [first, first+nstr), numbers after them: search
	 * only the part of the attribute's type. */
	uint32_t lo, hi;
	if (a->type == FLAGSHM_ATTR_STRING) {
		lo = list->v_first;
		hi = lo + c->c_nstr;
	} else if (a->type == FLAGSHM_ATTR_NUMBER) {
		if (a->u.num != a->u.num)
			return 0; /* NaN is in no list */
		lo = list->v_first + c->c_nstr;
		hi = list->v_first + list->v_count;
	} else {
		return 0;
	}
	const bool do_fold = ci(c);
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const fs_value *e = SNAP_VALUE(s, mid);
		int r;
		if (a->type == FLAGSHM_ATTR_STRING) {
			const char *es = e->v_type == FS_V_STRING ? snap_str(s, e->v_str) : NULL;
			if (!es)
				return -1;
			r = sem_cmp_bytes(a->u.str.ptr, a->u.str.len, es, e->v_str.len, do_fold);
		} else {
			if (e->v_type != FS_V_NUMBER)
				return -1;
			r = (a->u.num > e->v_num) - (a->u.num < e->v_num);
		}
		if (r == 0)
			return 1;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return 0;
}

/* Whether NEEDLE (already lowercased) occurs in HAY with ASCII folding.
 * Candidates are found by memchr on both cases of the first byte (each
 * result kept until passed, so the scan stays linear): a 256-byte
 * attribute costs a few memchr calls rather than 256 folds, which is what
 * the writer's cost bound assumes (docs/reliability.md, "Cost bounds"). */
static bool contains_fold(const char *hay, size_t nh, const char *needle, size_t nn)
{
	if (nn == 0)
		return true;
	if (nn > nh)
		return false;
	const unsigned char first = (unsigned char)needle[0];
	if ((unsigned)first - 'A' < 26u)
		return false; /* no folded byte is an upper-case letter */
	const unsigned char upper = (unsigned)first - 'a' < 26u ? (unsigned char)(first - 32) : first;
	const char *p = hay, *end = hay + (nh - nn) + 1, *lo = NULL, *up = NULL;
	while (p < end) {
		if (!lo || lo < p) {
			lo = memchr(p, first, (size_t)(end - p));
			if (!lo)
				lo = end;
		}
		const char *c = lo;
		if (upper != first) {
			if (!up || up < p) {
				up = memchr(p, upper, (size_t)(end - p));
				if (!up)
					up = end;
			}
			if (up < c)
				c = up;
		}
		if (c >= end)
			return false;
		size_t j = 1;
		while (j < nn && sem_fold((unsigned char)c[j]) == (unsigned char)needle[j])
			j++;
		if (j == nn)
			return true;
		p = c + 1;
	}
	return false;
}

/* Whether NEEDLE occurs in HAY. Short needles (the usual "@acme.com") go
 * by memchr on the first byte and memcmp, several times faster than glibc's
 * memmem on short haystacks; its worst case is 16 x |HAY|. Longer needles
 * keep memmem's linear two-way search, so no operand can stall a reader. */
static bool contains_exact(const char *hay, size_t nh, const char *needle, size_t nn)
{
	if (nn == 0)
		return true;
	if (nn > nh)
		return false;
	if (nn > 16)
		return memmem(hay, nh, needle, nn) != NULL;
	const char *p = hay, *end = hay + (nh - nn) + 1;
	while ((p = memchr(p, needle[0], (size_t)(end - p))) != NULL) {
		if (memcmp(p + 1, needle + 1, nn - 1) == 0)
			return true;
		p++;
	}
	return false;
}

int ops_substr(const snap *s, const fs_cond *c, const flagshm_attr *a)
{
	const char *str = NULL;
	const fs_value *v = operand(s, c, &str);
	if (!v || v->v_type != FS_V_STRING)
		return -1;
	if (a->type != FLAGSHM_ATTR_STRING)
		return 0;
	const char *h = a->u.str.ptr;
	size_t nh = a->u.str.len, nn = v->v_str.len;
	const bool do_fold = ci(c);
	switch (c->c_op) {
	case FS_OP_CONTAINS:
	case FS_OP_NOT_CONTAINS:
		if (do_fold)
			return contains_fold(h, nh, str, nn);
		return contains_exact(h, nh, str, nn);
	case FS_OP_STARTS_WITH:
		return nn <= nh && eq_bytes(h, nn, str, nn, do_fold);
	case FS_OP_ENDS_WITH:
		return nn <= nh && eq_bytes(h + nh - nn, nn, str, nn, do_fold);
	}
	return -1;
}

/*
 * Regex state shared by all threads: one match context (read-only once
 * made) that bounds every match. Each thread gets its own match data on its
 * first match; a pthread key frees it when the thread exits.
 */
static pthread_once_t rx_once = PTHREAD_ONCE_INIT;
static pcre2_match_context *rx_mctx;
static pthread_key_t rx_key;
static bool rx_key_ok;
static _Thread_local pcre2_match_data *rx_md;

static void rx_free_md(void *md)
{
	pcre2_match_data_free(md);
}

static void rx_init(void)
{
	rx_mctx = pcre2_match_context_create(NULL);
	if (rx_mctx) {
		pcre2_set_match_limit(rx_mctx, 100000);
		pcre2_set_depth_limit(rx_mctx, 1000);
	}
	rx_key_ok = pthread_key_create(&rx_key, rx_free_md) == 0;
}

int ops_matches(const snap *s, const fs_cond *c, const flagshm_attr *a)
{
	if (a->type != FLAGSHM_ATTR_STRING)
		return c->c_aux < s->count[FS_T_REGEXES] ? 0 : -1;
	/* Compiled on the first match in this map (snap.c). */
	const void *re = snap_regex(s, c->c_aux);
	if (re == SNAP_RX_CORRUPT)
		return -1;
	if (!re)
		return 0;
	if (!rx_md) {
		pthread_once(&rx_once, rx_init);
		/* One pair is enough: we only ask whether there is a match. */
		rx_md = pcre2_match_data_create(1, NULL);
		if (!rx_md)
			return 0;
		if (rx_key_ok)
			pthread_setspecific(rx_key, rx_md);
	}
	/* Without the limits a pattern could stall the reader: no match. */
	if (!rx_mctx)
		return 0;
	int rc = pcre2_match((const pcre2_code *)re, (PCRE2_SPTR)a->u.str.ptr, a->u.str.len, 0, 0, rx_md, rx_mctx);
	/* Limits hit, invalid UTF-8 in the subject and any other error all
	 * count as no match. */
	return rc >= 0;
}

static pthread_once_t num_once = PTHREAD_ONCE_INIT;
static locale_t num_locale;

static void num_init(void)
{
	num_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

bool ops_parse_number(const char *p, size_t n, double *out)
{
	/* Longer strings are no number a condition compares sensibly; the
	 * copy gives strtod its NUL without trusting the caller's buffer. */
	char buf[64];
	if (n == 0 || n >= sizeof buf)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (!((unsigned)ch - '0' < 10u || ch == '.' || ch == '-' || ch == '+' || (ch | 0x20) == 'e'))
			return false;
	}
	memcpy(buf, p, n);
	buf[n] = '\0';
	pthread_once(&num_once, num_init);
	char *end;
	double v = num_locale ? strtod_l(buf, &end, num_locale) : strtod(buf, &end);
	if (end != buf + n || !isfinite(v))
		return false;
	*out = v;
	return true;
}

int ops_numeric(const snap *s, const fs_cond *c, const flagshm_attr *a)
{
	(void)s;
	double x;
	if (a->type == FLAGSHM_ATTR_NUMBER)
		x = a->u.num;
	else if (a->type != FLAGSHM_ATTR_STRING || !ops_parse_number(a->u.str.ptr, a->u.str.len, &x))
		return 0;
	switch (c->c_op) {
	case FS_OP_GT: return x > c->c_num;
	case FS_OP_GTE: return x >= c->c_num;
	case FS_OP_LT: return x < c->c_num;
	case FS_OP_LTE: return x <= c->c_num;
	}
	return -1;
}

int ops_semver(const snap *s, const fs_cond *c, const flagshm_attr *a)
{
	const fs_semver *sv = SNAP_SEMVER(s, c->c_aux);
	if (!sv)
		return -1;
	semver want = {sv->sv_major, sv->sv_minor, sv->sv_patch, NULL, sv->sv_pre.len};
	if (want.pre_len && !(want.pre = snap_str(s, sv->sv_pre)))
		return -1;
	semver got;
	if (a->type != FLAGSHM_ATTR_STRING || !semver_parse(a->u.str.ptr, a->u.str.len, &got))
		return 0;
	int r = semver_cmp(&got, &want);
	switch (c->c_op) {
	case FS_OP_SEMVER_EQ: return r == 0;
	case FS_OP_SEMVER_GT: return r > 0;
	case FS_OP_SEMVER_LT: return r < 0;
	}
	return -1;
}

int ops_time(const snap *s, const fs_cond *c, const flagshm_attr *a)
{
	(void)s;
	int64_t t;
	if (a->type == FLAGSHM_ATTR_STRING) {
		if (!timeparse_rfc3339(a->u.str.ptr, a->u.str.len, &t))
			return 0;
	} else if (a->type == FLAGSHM_ATTR_NUMBER) {
		if (!timeparse_seconds(a->u.num, &t))
			return 0;
	} else {
		return 0;
	}
	switch (c->c_op) {
	case FS_OP_BEFORE: return t < c->c_time_ms;
	case FS_OP_AFTER: return t > c->c_time_ms;
	}
	return -1;
}

/* The positive operator's family for OP (notX shares X's). */
static int family(const snap *s, const fs_cond *c, const flagshm_attr *a)
{
	switch (c->c_op) {
	case FS_OP_EQUALS:
	case FS_OP_NOT_EQUALS:
		return ops_equals(s, c, a);
	case FS_OP_IN:
	case FS_OP_NOT_IN:
		return ops_in(s, c, a);
	case FS_OP_CONTAINS:
	case FS_OP_NOT_CONTAINS:
	case FS_OP_STARTS_WITH:
	case FS_OP_ENDS_WITH:
		return ops_substr(s, c, a);
	case FS_OP_MATCHES:
		return ops_matches(s, c, a);
	case FS_OP_GT:
	case FS_OP_GTE:
	case FS_OP_LT:
	case FS_OP_LTE:
		return ops_numeric(s, c, a);
	case FS_OP_SEMVER_EQ:
	case FS_OP_SEMVER_GT:
	case FS_OP_SEMVER_LT:
		return ops_semver(s, c, a);
	case FS_OP_BEFORE:
	case FS_OP_AFTER:
		return ops_time(s, c, a);
	}
	return -1;
}

static inline bool is_not_op(uint8_t op)
{
	return op == FS_OP_NOT_EQUALS || op == FS_OP_NOT_IN || op == FS_OP_NOT_CONTAINS;
}

int ops_cond(const snap *s, const fs_cond *c, const flagshm_ctx *ctx)
{
	const char *name = snap_str(s, c->c_attr);
	if (!name)
		return -1;
	const flagshm_attr *a = eval_ctx_get(ctx, name, c->c_attr.len);
	/* Missing: false, negate ignored. A string or list without its
	 * pointer (a hand-filled flagshm_attr) counts as missing too. */
	if (!a || (a->type == FLAGSHM_ATTR_STRING && !a->u.str.ptr) ||
	    (a->type == FLAGSHM_ATTR_LIST && !a->u.list.items && a->u.list.n))
		return 0;

	int r;
	if (a->type != FLAGSHM_ATTR_LIST) {
		r = family(s, c, a);
		if (r < 0)
			return r;
		r ^= is_not_op(c->c_op);
	} else if (c->c_op == FS_OP_CONTAINS || c->c_op == FS_OP_NOT_CONTAINS ||
		   c->c_op == FS_OP_IN || c->c_op == FS_OP_NOT_IN) {
		/* Any element for contains/in; notX holds when none does. */
		r = 0;
		for (size_t i = 0; i < a->u.list.n && !r; i++) {
			const char *it = a->u.list.items[i];
			flagshm_attr e = {.name = a->name, .type = FLAGSHM_ATTR_STRING};
			e.u.str.ptr = it ? it : "";
			e.u.str.len = it ? strlen(it) : 0;
			r = family(s, c, &e);
			if (r < 0)
				return r;
		}
		r ^= is_not_op(c->c_op);
	} else {
		r = 0;
	}
	return r ^ ((c->c_flags & FS_COND_NEGATE) != 0);
}
