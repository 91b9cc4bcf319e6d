/*
 * semantics/semver.c - strict SemVer 2.0.0 parse and precedence.
 */
#include "semver.h"

#include <string.h>

static inline bool is_digit(unsigned char c)
{
	return (unsigned)c - '0' < 10u;
}

static inline bool is_ident(unsigned char c)
{
	return is_digit(c) || (unsigned)(c | 0x20) - 'a' < 26u || c == '-';
}

/* A numeric core part at P[*i..): no leading zero, fits in uint64. */
static bool core_number(const char *p, size_t len, size_t *i, uint64_t *out)
{
	size_t j = *i;
	uint64_t v = 0;

	if (j >= len || !is_digit((unsigned char)p[j]))
		return false;
	if (p[j] == '0' && j + 1 < len && is_digit((unsigned char)p[j + 1]))
		return false;
	for (; j < len && is_digit((unsigned char)p[j]); j++) {
		unsigned d = (unsigned)(p[j] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*i = j;
	*out = v;
	return true;
}

/* Dot-separated identifiers at P[*i..) up to END_CH (or the end). With
 * NUMERIC_STRICT, all-digit identifiers may not have a leading zero. */
static bool identifiers(const char *p, size_t len, size_t *i, char end_ch, bool numeric_strict)
{
	size_t j = *i;

	for (;;) {
		size_t start = j;
		bool all_digits = true;
		for (; j < len && is_ident((unsigned char)p[j]); j++)
			all_digits &= is_digit((unsigned char)p[j]);
		if (j == start)
			return false; /* empty identifier */
		if (numeric_strict && all_digits && p[start] == '0' && j - start > 1)
			return false;
		if (j < len && p[j] == '.') {
			j++;
			continue;
		}
		if (j == len || p[j] == end_ch)
			break;
		return false;
	}
	*i = j;
	return true;
}

bool semver_parse(const char *p, size_t len, semver *out)
{
	semver v;
	size_t i = 0;

	if (!p)
		return false;
	if (!core_number(p, len, &i, &v.major) || i >= len || p[i++] != '.' ||
	    !core_number(p, len, &i, &v.minor) || i >= len || p[i++] != '.' ||
	    !core_number(p, len, &i, &v.patch))
		return false;
	v.pre = NULL;
	v.pre_len = 0;
	if (i < len && p[i] == '-') {
		size_t start = ++i;
		if (!identifiers(p, len, &i, '+', true))
			return false;
		v.pre = p + start;
		v.pre_len = i - start;
	}
	if (i < len && p[i] == '+') {
		i++;
		if (!identifiers(p, len, &i, '\0', false) || i != len)
			return false;
	}
	if (i != len)
		return false;
	*out = v;
	return true;
}

static int cmp_u64(uint64_t a, uint64_t b)
{
	return (a > b) - (a < b);
}

/* One identifier ends at '.' or at the end of its span. */
static size_t ident_len(const char *p, size_t n)
{
	const char *dot = memchr(p, '.', n);
	return dot ? (size_t)(dot - p) : n;
}

static bool all_digits(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_digit((unsigned char)p[i]))
			return false;
	return true;
}

int semver_cmp(const semver *a, const semver *b)
{
	int c;

	if ((c = cmp_u64(a->major, b->major)) || (c = cmp_u64(a->minor, b->minor)) ||
	    (c = cmp_u64(a->patch, b->patch)))
		return c;
	/* A version with a pre-release has lower precedence than without. */
	if (!a->pre_len || !b->pre_len)
		return (a->pre_len == 0) - (b->pre_len == 0);

	const char *pa = a->pre, *pb = b->pre;
	size_t na = a->pre_len, nb = b->pre_len;
	for (;;) {
		size_t la = ident_len(pa, na), lb = ident_len(pb, nb);
		bool da = all_digits(pa, la), db = all_digits(pb, lb);
		if (da && db) {
			/* Numeric identifiers have no leading zeros, so the longer
			 * is larger and equal lengths compare bytewise: no overflow
			 * however many digits they have. */
			if (la != lb)
				return la < lb ? -1 : 1;
			if ((c = memcmp(pa, pb, la)))
				return c < 0 ? -1 : 1;
		} else if (da != db) {
			return da ? -1 : 1; /* numeric < alphanumeric */
		} else {
			c = memcmp(pa, pb, la < lb ? la : lb);
			if (c)
				return c < 0 ? -1 : 1;
			if (la != lb)
				return la < lb ? -1 : 1;
		}
		/* Equal so far: the one with more identifiers is higher. */
		bool ma = la < na, mb = lb < nb;
		if (!ma || !mb)
			return (int)ma - (int)mb;
		pa += la + 1, na -= la + 1;
		pb += lb + 1, nb -= lb + 1;
	}
}
