/*
 * tests/eval_load.c - eval_load STORE FLAG SECONDS: evaluate FLAG for a
 * different userId each time, in views, recording an outcome per view
 * (every fourth one an error), for SECONDS; paced (200 evaluations, then
 * 10 ms asleep) so that it loads a shared machine lightly. The load that
 * tests/top_test.sh watches in `flagshm top`.
 */
#include "flagshm.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: eval_load STORE FLAG SECONDS\n");
		return 2;
	}
	flagshm_store *s = NULL;
	if (flagshm_open(argv[1], &s) != 0) {
		fprintf(stderr, "eval_load: cannot open store %s\n", argv[1]);
		return 1;
	}
	double end = now_s() + atof(argv[3]);
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	for (unsigned long i = 0; now_s() < end; i++) {
		char id[32];
		snprintf(id, sizeof id, "u-%lu", i);
		flagshm_ctx c;
		flagshm_ctx_init(&c);
		flagshm_ctx_string(&c, "userId", id);
		flagshm_view v;
		if (flagshm_view_acquire(s, &v) == 0) {
			flagshm_view_bool(&v, argv[2], &c, false);
			flagshm_view_outcome(&v, i % 4 != 0, 0.002);
			flagshm_view_release(&v);
		}
		if (i % 200 == 199)
			nanosleep(&pause, NULL);
	}
	flagshm_close(&s);
	return 0;
}
