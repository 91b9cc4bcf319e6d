/*
 * tests/test_backoff.c - backoff, circuit breaker and Retry-After
 * (writer/sync/backoff.h), with a fake clock.
 */
#include <criterion/criterion.h>

#include "backoff.h"

Test(backoff, delays_grow_exponentially_with_jitter_up_to_the_ceiling)
{
	ws_backoff b;
	int64_t now = 1000000;

	ws_backoff_init(&b, 12345);
	b.trip_after = 100; /* keep the breaker out of this test */
	for (unsigned n = 1; n <= 20; n++) {
		int64_t full = b.base_ms << (n - 1 < 30 ? n - 1 : 30);
		int64_t d;
		if (full > b.max_ms)
			full = b.max_ms;
		d = ws_backoff_failure(&b, now, -1);
		cr_assert(d >= full / 2 && d <= full, "failure %u: delay %lld not in [%lld, %lld]", n,
			  (long long)d, (long long)full / 2, (long long)full);
		cr_assert(!ws_backoff_ready(&b, now + d - 1));
		cr_assert(ws_backoff_ready(&b, now + d));
		now += d;
	}
}

Test(backoff, jitter_differs_between_writers)
{
	ws_backoff a, b;
	int same = 0;

	ws_backoff_init(&a, 1);
	ws_backoff_init(&b, 2);
	a.trip_after = b.trip_after = 100;
	for (int i = 0; i < 10; i++)
		same += ws_backoff_failure(&a, 0, -1) == ws_backoff_failure(&b, 0, -1);
	cr_assert_lt(same, 10, "two seeds gave the same delays");
}

Test(backoff, success_resets)
{
	ws_backoff b;

	ws_backoff_init(&b, 7);
	for (int i = 0; i < 5; i++)
		ws_backoff_failure(&b, 0, -1);
	ws_backoff_success(&b);
	cr_assert_eq(b.failures, 0);
	cr_assert_eq(b.state, WS_BREAKER_CLOSED);
	cr_assert(ws_backoff_ready(&b, 0));
	cr_assert_leq(ws_backoff_failure(&b, 0, -1), b.base_ms);
}

Test(backoff, breaker_opens_after_repeated_failures_and_probes_at_the_ceiling)
{
	ws_backoff b;
	int64_t now = 0, d = 0;

	ws_backoff_init(&b, 99);
	for (unsigned i = 0; i < b.trip_after; i++) {
		cr_assert_eq(b.state, WS_BREAKER_CLOSED);
		d = ws_backoff_failure(&b, now, -1);
		now += d;
	}
	cr_assert_eq(b.state, WS_BREAKER_OPEN);
	cr_assert(d >= b.max_ms * 9 / 10 && d <= b.max_ms, "probe delay %lld", (long long)d);
	/* One probe at a time: half-open, and a failed probe opens again. */
	cr_assert(ws_backoff_ready(&b, now));
	cr_assert_eq(b.state, WS_BREAKER_HALF_OPEN);
	d = ws_backoff_failure(&b, now, -1);
	cr_assert_eq(b.state, WS_BREAKER_OPEN);
	cr_assert_geq(d, b.max_ms * 9 / 10);
	now += d;
	cr_assert(ws_backoff_ready(&b, now));
	ws_backoff_success(&b);
	cr_assert_eq(b.state, WS_BREAKER_CLOSED);
}

Test(backoff, retry_after_is_honoured_and_capped)
{
	ws_backoff b;

	ws_backoff_init(&b, 3);
	cr_assert_eq(ws_backoff_failure(&b, 0, 45000), 45000);
	cr_assert(!ws_backoff_ready(&b, 44999));
	cr_assert(ws_backoff_ready(&b, 45000));
	/* a shorter Retry-After does not shorten the backoff */
	ws_backoff_init(&b, 3);
	cr_assert_geq(ws_backoff_failure(&b, 0, 1), b.base_ms / 2);
	/* a hostile one is capped at an hour */
	ws_backoff_init(&b, 3);
	cr_assert_eq(ws_backoff_failure(&b, 0, 1000LL * 86400 * 365), 3600 * 1000LL);
}

Test(backoff, retry_after_parses_seconds_and_http_dates)
{
	cr_assert_eq(ws_retry_after_parse("120", 0), 120000);
	cr_assert_eq(ws_retry_after_parse(" 0 ", 0), 0);
	cr_assert_eq(ws_retry_after_parse("99999999999999999999", 0), 3600 * 1000LL);
	/* Sun, 06 Nov 1994 08:49:37 GMT = 784111777 */
	cr_assert_eq(ws_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", 784111777000LL - 5000), 5000);
	cr_assert_eq(ws_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", 784111777000LL + 5000), 0);
	cr_assert_eq(ws_retry_after_parse("soon", 0), -1);
	cr_assert_eq(ws_retry_after_parse("12abc", 0), -1);
	cr_assert_eq(ws_retry_after_parse("", 0), -1);
	cr_assert_eq(ws_retry_after_parse(NULL, 0), -1);
}
