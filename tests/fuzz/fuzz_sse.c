/*
 * tests/fuzz/fuzz_sse.c - libFuzzer target for the SSE parser
 * (writer/sync/sse.h). The input is split into chunks at places chosen by its
 * first bytes, and the events must be the same as when it is fed whole:
 * chunk boundaries never change what a stream means.
 */
#include "sse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct digest {
	uint64_t h;
	uint64_t n;
} digest;

static void mix(digest *d, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		d->h = (d->h ^ b[i]) * 0x100000001b3ull;
	d->h = (d->h ^ 0xff) * 0x100000001b3ull;
}

static int on_event(void *ud, const ws_sse_event *ev)
{
	digest *d = ud;
	mix(d, ev->type, strlen(ev->type));
	mix(d, ev->id, strlen(ev->id));
	mix(d, ev->data, ev->data_len);
	d->n++;
	return 0;
}

static int run(const uint8_t *data, size_t size, size_t step, digest *d, int *rc)
{
	ws_sse p;
	char err[128];

	ws_sse_init(&p, 4096, on_event, d);
	*rc = 0;
	for (size_t i = 0; i < size && *rc == 0; i += step) {
		size_t n = size - i < step ? size - i : step;
		*rc = ws_sse_feed(&p, data + i, n, err, sizeof err);
	}
	ws_sse_free(&p);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	digest whole = {0xcbf29ce484222325ull, 0}, split = {0xcbf29ce484222325ull, 0};
	size_t step;
	int rc1, rc2;

	if (size == 0)
		return 0;
	step = (size_t)data[0] % 17 + 1;
	run(data, size, size, &whole, &rc1);
	run(data, size, step, &split, &rc2);
	/* An oversize event may be detected at a different point when fed in
	 * pieces, so compare only streams that parsed whole both ways. */
	if (rc1 == 0 && rc2 == 0 && (whole.h != split.h || whole.n != split.n))
		abort();
	if ((rc1 == 0) != (rc2 == 0))
		abort();
	return 0;
}
