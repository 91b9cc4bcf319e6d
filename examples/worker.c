/*
 * examples/worker.c - a server process reading one flag, as the README shows.
 *
 *   worker STORE FLAG [USERID]                    evaluate once and print
 *   worker --watch SECONDS STORE FLAG [USERID]    print once, then again
 *                                                 each time a new generation
 *                                                 is published, for SECONDS
 *
 * Each line: "pid 123  generation 4  checkout-banner = \"...\"  (DEFAULT_ROLLOUT)",
 * and on a change, how long after the publish this process saw it.
 * examples/demo.sh runs four of these against one writer. Built in CI so
 * the README's code cannot rot.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep under -std=c17 */
#include <flagshm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void print_result(flagshm_store *store, const char *flag, const flagshm_result *r,
			 bool changed)
{
	printf("pid %d  generation %llu  %s = ", (int)getpid(),
	       (unsigned long long)r->generation, flag);
	switch (r->type) {
	case FLAGSHM_TYPE_BOOL: printf("%s", r->value.b ? "true" : "false"); break;
	case FLAGSHM_TYPE_NUMBER: printf("%g", r->value.num); break;
	case FLAGSHM_TYPE_STRING: printf("\"%s\"", r->value.str.ptr); break;
	case FLAGSHM_TYPE_JSON: printf("%s", r->value.str.ptr); break;
	default: printf("(none: %s)", flagshm_error_code_name(r->error_code)); break;
	}
	printf("  (%s)", flagshm_reason_name(r->reason));
	/* How long after the publish this process saw it (the clock is the
	 * host's, so writer and workers agree). */
	flagshm_info info;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	if (changed && flagshm_store_info(store, &info) == 0 && info.generation == r->generation)
		printf("  seen %.1f ms after publish",
		       (double)now.tv_sec * 1e3 + now.tv_nsec / 1e6 - (double)info.published_ms);
	printf("\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	double watch = 0;
	if (argc > 2 && strcmp(argv[1], "--watch") == 0) {
		watch = atof(argv[2]);
		argv += 2;
		argc -= 2;
	}
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: worker [--watch SECONDS] STORE FLAG [USERID]\n");
		return 2;
	}
	const char *store_name = argv[1], *flag = argv[2];

	/* The README's example: open once per process (before fork() is fine),
	 * then one context per request, on the stack. */
	flagshm_store *store;
	int rc = flagshm_open(store_name, &store);
	if (rc != 0) {
		fprintf(stderr, "worker: store %s: %s\n", store_name, flagshm_strerror(rc));
		return 1;
	}
	flagshm_ctx ctx;
	flagshm_ctx_init(&ctx);
	flagshm_ctx_string(&ctx, "userId", argc == 4 ? argv[3] : "u-42");
	flagshm_ctx_string(&ctx, "country", "DE");

	/* A request loop: each pass is one request holding one view, so every
	 * flag it reads comes from one generation. */
	double deadline = now_s() + watch;
	uint64_t seen = UINT64_MAX;
	do {
		flagshm_view view;
		flagshm_view_acquire(store, &view);
		if (view.generation != seen) {
			flagshm_result r;
			flagshm_evaluate(&view, flag, &ctx, &r);
			print_result(store, flag, &r, seen != UINT64_MAX);
			seen = view.generation;
		}
		flagshm_view_release(&view);
		if (watch > 0)
			nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL); /* 100 us */
	} while (watch > 0 && now_s() < deadline);

	flagshm_close(&store);
	return 0;
}
