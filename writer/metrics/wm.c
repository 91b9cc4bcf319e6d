/*
 * writer/metrics/wm.c - stub of the aggregator (filled in next commits).
 */
#include "wm.h"

#include <stdlib.h>

const double wm_bucket_bounds[WM_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					     0.25,  0.5,    1,     2.5,  5,     10};

int wm_start(const char *store, wm_log_fn log, char *err, size_t errlen)
{
	(void)store, (void)log, (void)err, (void)errlen;
	return 0;
}

void wm_stop(void) {}

void wm_set_document(const void *snap, size_t size)
{
	(void)snap, (void)size;
}

int wm_totals_snapshot(wm_totals **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : -1;
}

void wm_totals_free(wm_totals **t)
{
	if (!t || !*t)
		return;
	free(*t);
	*t = NULL;
}
