/*
 * tools/flagshm/cli_stats.c - `flagshm stats`: what every reader of the
 * store counted, as the writer sums it.
 */
#include "cli_stats.h"
#include "cli.h"
#include "counters.h"
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STATS_MAX ((size_t)64 << 20)

int cli_stats_load(const char *store, json_t **out, char *err, size_t errlen)
{
	*out = NULL;
	shm_trust trust;
	const fs_ctl *ctl;
	uid_t owner;
	int rc = shm_name_check(store, err, errlen);
	if (rc == 0)
		rc = shm_trust_default(&trust, err, errlen);
	if (rc == 0)
		rc = shm_ctl_map_trusted(store, &trust, &ctl, &owner, err, errlen);
	if (rc == FLAGSHM_ENOSTORE) {
		snprintf(err, errlen, "no store \"%s\" (no writer created %s/flagshm.%s)", store,
			 SHM_DIR, store);
		return 1;
	}
	if (rc)
		return 1;
	shm_ctl_unmap(ctl);

	char name[SHM_OBJ_NAME_MAX];
	fm_stats_name(name, sizeof name, store);
	int fd;
	struct stat st;
	rc = shm_obj_open(name, O_RDONLY, &fd, &st, err, errlen);
	if (rc == FLAGSHM_ENOSTORE) {
		snprintf(err, errlen, "store \"%s\" has no statistics (%s%s): its writer is not "
			 "running or not counting", store, SHM_DIR, name);
		return 1;
	}
	if (rc)
		return 1;
	if (st.st_uid != owner) {
		snprintf(err, errlen, "%s%s is not owned by the store's writer user: refused", SHM_DIR,
			 name);
		close(fd);
		return 1;
	}
	if (shm_obj_check(name, &st, &trust, err, errlen) != 0 || (size_t)st.st_size > STATS_MAX) {
		if (!err[0])
			snprintf(err, errlen, "%s%s is too large", SHM_DIR, name);
		close(fd);
		return 1;
	}
	json_error_t je;
	json_t *j = NULL;
	if (st.st_size > 0) {
		void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m != MAP_FAILED) {
			j = json_loadb(m, (size_t)st.st_size, 0, &je);
			munmap(m, (size_t)st.st_size);
		}
	}
	close(fd);
	if (!json_is_object(j) || !json_is_object(json_object_get(j, "flags"))) {
		json_decref(j);
		snprintf(err, errlen, "%s%s is not a statistics object", SHM_DIR, name);
		return 1;
	}
	*out = j;
	return 0;
}

static uint64_t num(const json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
}

static double real(const json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_number(v) ? json_number_value(v) : 0;
}

/* "KEY N (P%), ..." of an object of counts. */
static void counts_line(const char *label, const json_t *o, uint64_t total)
{
	if (!json_object_size(o))
		return;
	printf("  %-9s", label);
	const char *k;
	json_t *v;
	const char *sep = "";
	json_object_foreach((json_t *)o, k, v) {
		printf("%s", sep);
		cli_put_text(stdout, k, strlen(k), FS_TEXT_PLAIN);
		uint64_t n = json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
		if (total)
			printf(" %" PRIu64 " (%.1f%%)", n, 100.0 * (double)n / (double)total);
		else
			printf(" %" PRIu64, n);
		sep = ", ";
	}
	putchar('\n');
}

static void text(const json_t *j)
{
	int64_t now = (int64_t)num(j, "time_ms");
	printf("generation %" PRIu64 ", %" PRIu64 " reader process%s attached\n",
	       num(j, "generation"), num(j, "readers"), num(j, "readers") == 1 ? "" : "es");
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (wall - now > 5000) /* the writer rewrites it every second */
		printf("(written %.0f s ago: is the writer still running?)\n",
		       (double)(wall - now) / 1000.0);
	const json_t *x = json_object_get(j, "exposures");
	if (x)
		printf("exposures: %" PRIu64 " written, %" PRIu64 " deduplicated, %" PRIu64
		       " lost, %" PRIu64 " dropped\n",
		       num(x, "written"), num(x, "deduplicated"), num(x, "lost"), num(x, "dropped"));
	const char *key;
	json_t *f;
	json_object_foreach(json_object_get(j, "flags"), key, f) {
		uint64_t n = num(f, "evaluations");
		int64_t last = (int64_t)num(f, "last_evaluated_ms");
		putchar('\n');
		cli_put_text(stdout, key, strlen(key), FS_TEXT_PLAIN);
		printf("  %" PRIu64 " evaluations, %.1f/s over 10 s", n, real(f, "rate"));
		if (last > 0)
			printf(", last %.0f s ago", now > last ? (double)(now - last) / 1000.0 : 0.0);
		putchar('\n');
		counts_line("variants", json_object_get(f, "variants"), n);
		counts_line("reasons", json_object_get(f, "reasons"), n);
		counts_line("errors", json_object_get(f, "errors"), 0);
		const char *v;
		json_t *o;
		json_object_foreach(json_object_get(f, "outcomes"), v, o) {
			printf("  outcome  ");
			cli_put_text(stdout, v, strlen(v), FS_TEXT_PLAIN);
			printf(": %" PRIu64 " requests, %.2f%% errors, p99 %.4g s\n", num(o, "count"),
			       100.0 * real(o, "error_rate"), real(o, "p99_seconds"));
		}
	}
}

int cli_stats_main(const char *store, bool json)
{
	char err[512] = "";
	json_t *j;
	if (cli_stats_load(store, &j, err, sizeof err) != 0) {
		fputs("flagshm: ", stderr);
		cli_put_text(stderr, err, strlen(err), FS_TEXT_PLAIN);
		fputc('\n', stderr);
		return 1;
	}
	if (json) {
		cli_json_write(stdout, j);
		putchar('\n');
	} else {
		text(j);
	}
	json_decref(j);
	return 0;
}
