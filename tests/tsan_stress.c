/*
 * tests/tsan_stress.c - the store's threading and fork paths without
 * Criterion, for ThreadSanitizer builds: Criterion cannot run under TSan
 * (its BoxFort arena is mapped at random fixed addresses inside TSan's
 * shadow range and fails with "Could not initialize inheritable arena",
 * Snaipe/Criterion#274), so test_store and test_process cannot be run
 * there. This covers what TSan needs to see: reader threads in views
 * while the writer publishes and call_rcu unmaps old generations, a fork
 * with reader threads running, and close.
 *
 * Exit 0 on success; prints what failed otherwise. Run with
 * TSAN_OPTIONS="die_after_fork=0 suppressions=tests/tsan.supp".
 */
#include "compile.h"
#include "flagshm.h"
#include "shm.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char store[80];
static _Atomic int stop;
static _Atomic int failures;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int publish(shm_writer *w)
{
	char doc[512], err[512];
	unsigned long long g = (unsigned long long)w->next;
	snprintf(doc, sizeof doc,
		 "{\"formatVersion\":1,\"flags\":[{\"key\":\"a\",\"defaultValue\":%llu,\"offValue\":0},"
		 "{\"key\":\"b\",\"defaultValue\":%llu,\"offValue\":0},"
		 "{\"key\":\"s\",\"defaultValue\":\"g%llu\",\"offValue\":\"\"}]}",
		 g, g, g);
	json_t *j = json_loads(doc, 0, NULL);
	wc_limits lim = wc_limits_default();
	wc_errors errs = { 0 };
	wc_snapshot s = { 0 };
	int rc = wc_compile(j, NULL, "stress", &lim, &s, &errs);
	if (rc == 0)
		rc = shm_writer_publish(w, s.bytes, s.size, err, sizeof err);
	if (rc)
		fprintf(stderr, "publish %llu failed: %s\n", g, errs.n ? errs.msg[0] : err);
	wc_snapshot_free(&s);
	wc_errors_free(&errs);
	json_decref(j);
	return rc;
}

/* One view: every flag equals the view's generation. */
static int check_view(flagshm_store *s, uint64_t *last)
{
	flagshm_view v;
	flagshm_view_acquire(s, &v);
	int bad = 0;
	if (v.generation) {
		char want[32];
		snprintf(want, sizeof want, "g%llu", (unsigned long long)v.generation);
		bad = flagshm_view_number(&v, "a", NULL, -1) != (double)v.generation ||
		      flagshm_view_number(&v, "b", NULL, -1) != (double)v.generation ||
		      strcmp(flagshm_view_string(&v, "s", NULL, ""), want) != 0 ||
		      v.generation < *last;
	}
	*last = v.generation;
	flagshm_view_release(&v);
	return bad;
}

static void *reader(void *p)
{
	flagshm_store *s = p;
	uint64_t last = 0;
	while (!atomic_load(&stop))
		if (check_view(s, &last))
			atomic_fetch_add(&failures, 1);
	return NULL;
}

int main(void)
{
	shm_writer w;
	flagshm_store *s;
	char err[512];

	snprintf(store, sizeof store, "tsan-%d", (int)getpid());
	if (shm_writer_open(&w, store, err, sizeof err) || publish(&w)) {
		fprintf(stderr, "writer: %s\n", err);
		return 1;
	}
	if (flagshm_open_ex(store, NULL, NULL, &s, err, sizeof err)) {
		fprintf(stderr, "open: %s\n", err);
		return 1;
	}
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, reader, s);

	int status = 0;
	for (int g = 0; g < 300 && !status; g++) {
		status = publish(&w);
		if (g == 150) {
			/* fork with the readers running: the child follows the
			 * writer with no hook to call. */
			pid_t pid = fork();
			if (pid == 0) {
				uint64_t last = 0, target = w.generation + 5;
				for (int64_t end = now_ms() + 20000; last < target && now_ms() < end;)
					if (check_view(s, &last))
						_exit(2);
				flagshm_close(&s);
				_exit(last >= target ? 0 : 3);
			}
			for (int k = 0; k < 10; k++)
				publish(&w);
			int st;
			waitpid(pid, &st, 0);
			if (!WIFEXITED(st) || WEXITSTATUS(st)) {
				fprintf(stderr, "forked child: status 0x%x\n", st);
				status = 1;
			}
		}
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	if (atomic_load(&failures)) {
		fprintf(stderr, "%d torn or backward views\n", atomic_load(&failures));
		status = 1;
	}
	flagshm_close(&s);
	shm_writer_close(&w);
	shm_store_remove(store, NULL, 0);
	if (!status)
		printf("tsan_stress: ok, %llu generations\n", (unsigned long long)w.generation);
	return status;
}
