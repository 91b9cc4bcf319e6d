/*
 * writer/sync/backoff.c - backoff, circuit breaker and Retry-After (backoff.h).
 */
#include "backoff.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRY_AFTER_MAX_MS (3600 * 1000LL)

void ws_backoff_init(ws_backoff *b, uint64_t seed)
{
	memset(b, 0, sizeof *b);
	b->base_ms = 500;
	b->max_ms = 60000;
	b->trip_after = 8;
	b->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
}

static uint64_t next_rand(ws_backoff *b)
{
	uint64_t x = b->rng; /* xorshift64 */
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return b->rng = x;
}

bool ws_backoff_ready(ws_backoff *b, int64_t now_ms)
{
	if (now_ms < b->next_ms)
		return false;
	if (b->state == WS_BREAKER_OPEN)
		b->state = WS_BREAKER_HALF_OPEN;
	return true;
}

void ws_backoff_success(ws_backoff *b)
{
	b->failures = 0;
	b->state = WS_BREAKER_CLOSED;
	b->next_ms = 0;
}

int64_t ws_backoff_failure(ws_backoff *b, int64_t now_ms, int64_t retry_after_ms)
{
	int64_t d;

	if (b->failures < UINT32_MAX)
		b->failures++;
	if (b->state == WS_BREAKER_HALF_OPEN || b->failures >= b->trip_after) {
		/* Open: probe at the ceiling, jittered a little so a fleet of
		 * writers does not probe in step. */
		b->state = WS_BREAKER_OPEN;
		d = b->max_ms - (int64_t)(next_rand(b) % (uint64_t)(b->max_ms / 10 + 1));
	} else {
		unsigned shift = b->failures - 1 < 30 ? b->failures - 1 : 30;
		d = b->base_ms << shift;
		if (d > b->max_ms || d <= 0)
			d = b->max_ms;
		/* "equal jitter": half fixed, half random, so a delay never
		 * collapses to zero. */
		d = d / 2 + (int64_t)(next_rand(b) % (uint64_t)(d / 2 + 1));
	}
	if (retry_after_ms > RETRY_AFTER_MAX_MS)
		retry_after_ms = RETRY_AFTER_MAX_MS;
	if (retry_after_ms > d)
		d = retry_after_ms;
	b->next_ms = now_ms + d;
	return d;
}

int64_t ws_retry_after_parse(const char *value, int64_t now_ms)
{
	struct tm tm;
	const char *end;
	int64_t secs = 0;
	time_t t;

	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	if (*value >= '0' && *value <= '9') {
		const char *p = value;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (secs > RETRY_AFTER_MAX_MS / 1000)
				return RETRY_AFTER_MAX_MS;
			secs = secs * 10 + (*p - '0');
		}
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		return *p ? -1 : secs * 1000;
	}
	/* HTTP-date, IMF-fixdate form: "Sun, 06 Nov 1994 08:49:37 GMT". */
	memset(&tm, 0, sizeof tm);
	end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end)
		return -1;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	secs = (int64_t)t * 1000 - now_ms;
	return secs > 0 ? secs : 0;
}
