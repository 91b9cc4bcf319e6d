/*
 * examples/request.c - what a request handler does with counting
 * (docs/metrics.md): one view per request, its flags as JSON for the
 * analytics event, its outcome recorded against every flag it evaluated,
 * and an evaluation hook of the kind an OpenTelemetry integration uses.
 *
 *   request STORE [N]      serve N requests (default 1000) for rotating users
 *
 * Then `flagshm --store STORE stats` shows them. Built in CI so that
 * docs/metrics.md's code cannot rot.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c17 */
#include <flagshm.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* An OpenTelemetry feature_flag.evaluation event would be emitted here;
 * this one counts the errors. */
static void on_eval(void *ud, const flagshm_eval_event *ev)
{
	if (ev->error != FLAGSHM_CODE_NONE)
		++*(unsigned long *)ud;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: request STORE [N]\n");
		return 2;
	}
	long n = argc == 3 ? atol(argv[2]) : 1000;
	flagshm_store *store;
	int rc = flagshm_open(argv[1], &store);
	if (rc != 0) {
		fprintf(stderr, "request: store %s: %s\n", argv[1], flagshm_strerror(rc));
		return 1;
	}
	unsigned long errors = 0;
	flagshm_store_set_hook(store, on_eval, &errors);

	char flags[1024], user[32];
	for (long i = 0; i < n; i++) {
		double t0 = now_s();
		flagshm_ctx ctx;
		flagshm_ctx_init(&ctx);
		snprintf(user, sizeof user, "u-%ld", i % 100);
		flagshm_ctx_string(&ctx, "userId", user);

		flagshm_view v;
		flagshm_view_acquire(store, &v);
		bool fast = flagshm_view_bool(&v, "new-checkout", &ctx, false);
		const char *banner = flagshm_view_string(&v, "checkout-banner", &ctx, "");
		/* ... serve the request; tag its analytics event ... */
		if (flagshm_view_flags_json(&v, flags, sizeof flags) == 0 && i == 0)
			printf("first request's flags: %s (banner \"%s\")\n", flags, banner);
		bool ok = fast || i % 50 != 0; /* say one in 50 fails on the old path */
		flagshm_view_outcome(&v, ok, now_s() - t0);
		flagshm_view_release(&v);
	}
	printf("%ld requests, %lu evaluation errors; see: flagshm --store %s stats\n", n, errors,
	       argv[1]);
	flagshm_close(&store);
	return 0;
}
