/*
 * writer/sync/backoff.h - when to try the control plane again after failures:
 * exponential backoff with full jitter up to a ceiling, a circuit breaker
 * after repeated failures, and the server's Retry-After honoured.
 *
 * Pure: the caller passes the time and a random source, so tests are
 * deterministic. Delays are milliseconds.
 *
 * States: CLOSED (healthy; failures back off base * 2^(n-1), jittered in
 * [d/2, d], capped at max), OPEN (after `trip_after` consecutive failures:
 * no attempt until the ceiling interval has passed, then one probe),
 * HALF_OPEN (a probe is allowed; success closes, failure opens again).
 * A success always resets to CLOSED with no delay.
 */
#ifndef FLAGSHM_WRITER_BACKOFF_H
#define FLAGSHM_WRITER_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

enum ws_breaker { WS_BREAKER_CLOSED = 0, WS_BREAKER_OPEN, WS_BREAKER_HALF_OPEN };

typedef struct ws_backoff {
	int64_t base_ms;     /* first delay, default 500 */
	int64_t max_ms;	     /* ceiling, default 60000; also the breaker's probe interval */
	unsigned trip_after; /* consecutive failures that open the breaker, default 8 */
	unsigned failures;   /* consecutive, since the last success */
	int state;	     /* enum ws_breaker */
	int64_t next_ms;     /* no attempt before this time (0: now) */
	uint64_t rng;	     /* xorshift state for the jitter */
} ws_backoff;

/* Defaults as above; SEED seeds the jitter (e.g. time ^ pid). */
void ws_backoff_init(ws_backoff *b, uint64_t seed);

/* May an attempt start at NOW_MS? In OPEN state, true once the probe time
 * has come (and the state becomes HALF_OPEN). */
bool ws_backoff_ready(ws_backoff *b, int64_t now_ms);

/* The attempt succeeded: CLOSED, no failures, no delay. */
void ws_backoff_success(ws_backoff *b);

/*
 * The attempt failed at NOW_MS. RETRY_AFTER_MS is the server's Retry-After
 * (-1 if none): the next attempt waits at least that long (capped at one
 * hour, so a hostile header cannot park the writer). Returns the delay
 * until the next attempt is allowed.
 */
int64_t ws_backoff_failure(ws_backoff *b, int64_t now_ms, int64_t retry_after_ms);

/* Parse a Retry-After header value: delta-seconds or an HTTP-date, relative
 * to NOW_MS. Returns milliseconds >= 0, or -1 when it is neither. */
int64_t ws_retry_after_parse(const char *value, int64_t now_ms);

#endif
