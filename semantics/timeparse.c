/*
 * semantics/timeparse.c - RFC 3339 and Unix seconds to Unix milliseconds.
 */
#include "timeparse.h"

#include <math.h>

/* N digits at P as a number, or -1 if any is not a digit. */
static int digits(const char *p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		unsigned d = (unsigned char)p[i] - '0';
		if (d > 9)
			return -1;
		v = v * 10 + (int)d;
	}
	return v;
}

/* Days from 1970-01-01 to Y-M-D of the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil), so no gmtime/timegm and no TZ. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const unsigned char dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : dm[m - 1];
}

bool timeparse_rfc3339(const char *p, size_t len, int64_t *ms)
{
	/* The fixed part "YYYY-MM-DDTHH:MM:SS" plus at least "Z". */
	if (!p || len < 20)
		return false;
	int y = digits(p, 4), mo = digits(p + 5, 2), d = digits(p + 8, 2);
	int h = digits(p + 11, 2), mi = digits(p + 14, 2), s = digits(p + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
	    s < 0 || s > 60 || p[4] != '-' || p[7] != '-' || p[13] != ':' || p[16] != ':')
		return false;
	if (p[10] != 'T' && p[10] != 't' && p[10] != ' ')
		return false;
	if (d > days_in_month(y, mo))
		return false;

	size_t i = 19;
	int frac_ms = 0;
	if (p[i] == '.') {
		size_t start = ++i;
		int scale = 100;
		for (; i < len && (unsigned)(unsigned char)p[i] - '0' < 10u; i++) {
			frac_ms += (p[i] - '0') * scale;
			scale /= 10;
		}
		if (i == start)
			return false;
	}
	if (i >= len)
		return false;

	int64_t offset_min = 0;
	if ((p[i] == 'Z' || p[i] == 'z') && i + 1 == len) {
		/* UTC */
	} else if ((p[i] == '+' || p[i] == '-') && i + 6 == len && p[i + 3] == ':') {
		int oh = digits(p + i + 1, 2), om = digits(p + i + 4, 2);
		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return false;
		offset_min = (int64_t)oh * 60 + om;
		if (p[i] == '-')
			offset_min = -offset_min;
	} else {
		return false;
	}

	/* Local time minus its offset is UTC. */
	int64_t secs = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + s -
		       offset_min * 60;
	*ms = secs * 1000 + frac_ms;
	return true;
}

bool timeparse_seconds(double seconds, int64_t *ms)
{
	double v = seconds * 1000.0;
	/* 2^53: beyond it doubles skip milliseconds, and the comparison with
	 * isfinite-free bounds also rejects NaN (every comparison is false). */
	if (!(v > -9007199254740992.0 && v < 9007199254740992.0))
		return false;
	*ms = (int64_t)llround(v);
	return true;
}
