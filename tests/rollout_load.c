/*
 * tests/rollout_load.c - rollout_load STORE FLAG SECONDS PER_SECOND
 * ERR_TREATMENT ERR_CONTROL: a worker process for the rollout tests. It
 * evaluates FLAG (a boolean) for a new userId each time, in views, and
 * records the request's outcome with flagshm_view_outcome: an error with
 * probability ERR_TREATMENT when the flag served true, ERR_CONTROL when
 * it served false; each request took 2 ms. Paced at about PER_SECOND
 * evaluations a second (in 10 ms slices) so that a shared machine is
 * loaded lightly, for SECONDS.
 */
#include "flagshm.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	flagshm_store *s = NULL;
	unsigned seed = (unsigned)getpid();

	if (argc != 7) {
		fprintf(stderr, "usage: rollout_load STORE FLAG SECONDS PER_SECOND ERR_TREATMENT "
				"ERR_CONTROL\n");
		return 2;
	}
	if (flagshm_open(argv[1], &s) != 0) {
		fprintf(stderr, "rollout_load: cannot open store %s\n", argv[1]);
		return 1;
	}
	double start = now_s(), end = start + atof(argv[3]), rate = atof(argv[4]);
	double e_on = atof(argv[5]), e_off = atof(argv[6]);
	unsigned long done = 0;
	while (now_s() < end) {
		double due = (now_s() - start) * rate;
		for (; (double)done < due; done++) {
			char id[48];
			flagshm_ctx c;
			flagshm_view v;
			snprintf(id, sizeof id, "u-%d-%lu", (int)getpid(), done);
			flagshm_ctx_init(&c);
			flagshm_ctx_string(&c, "userId", id);
			if (flagshm_view_acquire(s, &v) != 0)
				continue;
			bool on = flagshm_view_bool(&v, argv[2], &c, false);
			double r = (double)rand_r(&seed) / ((double)RAND_MAX + 1);
			flagshm_view_outcome(&v, r >= (on ? e_on : e_off), 0.002);
			flagshm_view_release(&v);
		}
		struct timespec pause = {0, 10 * 1000 * 1000};
		nanosleep(&pause, NULL);
	}
	flagshm_close(&s);
	return 0;
}
