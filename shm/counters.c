/*
 * shm/counters.c - what reader and writer must compute alike for counter
 * regions: variant texts and the names of the socket and stats object.
 */
#include "counters.h"
#include "shm.h"

#include <stdio.h>
#include <stdlib.h>

size_t fm_number_text(char *buf, size_t cap, double v)
{
	int n = snprintf(buf, cap, "%.15g", v);
	if (n > 0 && (size_t)n < cap && strtod(buf, NULL) != v)
		n = snprintf(buf, cap, "%.17g", v);
	if (n < 0)
		n = 0;
	return (size_t)n < cap ? (size_t)n : cap - 1;
}

size_t fm_variant_cut(const char *text, size_t len)
{
	if (len <= FM_VARIANT_MAX)
		return len;
	size_t n = FM_VARIANT_MAX;
	/* Back off continuation bytes (10xxxxxx) so the cut is at a start. */
	while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
		n--;
	return n;
}

void fm_sock_path(char *buf, size_t n, const char *store)
{
	snprintf(buf, n, "%s/flagshm.%s.sock", SHM_DIR, store);
}

void fm_stats_name(char *buf, size_t n, const char *store)
{
	snprintf(buf, n, "/flagshm.%s.stats", store);
}
