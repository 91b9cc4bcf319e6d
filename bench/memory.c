/*
 * bench/memory.c - the memory each reader process adds.
 *
 * For N = 1, 2, 4, 8: this program is started N times as a reader
 * (--memory-child STORE NFLAGS: open the store, evaluate every flag once,
 * report ready, wait) and once as a baseline (--memory-child -: the same
 * binary and libraries, nothing opened), all at the same time. They are
 * fresh processes (fork + exec of /proc/self/exe), so nothing of this
 * process's heap is shared with them and counted. While they all wait,
 * /proc/PID/smaps_rollup gives each one's RSS and PSS, and /proc/PID/smaps
 * the part of both that is the snapshot mapping (/dev/shm/flagshm.S.G).
 * A reader's "added" figure is its value minus the baseline's, which
 * shares the same binary and library pages in the same proportion.
 * Private_Dirty (heap, thread stacks, written data pages) is the part no
 * other process can share; the rest of the added PSS is the reader's share
 * of the snapshot and of library code the baseline never ran.
 *
 * This process closes its own store handle first, so the snapshot's pages
 * are shared by the N readers only: each should carry about 1/N of it.
 */
#include "bench.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define MEM_MAX 8

typedef struct mem_stat {
	long rss_kb, pss_kb;
	long dirty_kb; /* Private_Dirty: memory no other process can share */
	long snap_rss_kb, snap_pss_kb;
	long ctr_rss_kb, ctr_dirty_kb; /* the counter region (docs/metrics.md), apart */
} mem_stat;

/* ---------------------------------------------------------------- child */

int memory_child_main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	const char *store = argv[2];
	size_t nflags = strtoul(argv[3], NULL, 10);
	flagshm_store *s = NULL;
	char ok = 'R';
	/* The baseline prepares the same ids and context (160 KB of ids),
	 * so that the difference is flagshm's alone. */
	static bench_id ids[BENCH_NIDS];
	flagshm_ctx ctx;
	gen_ids(ids);
	gen_ctx(&ctx, ids);
	if (strcmp(store, "-") != 0) {
		flagshm_result r;
		flagshm_view v;
		char key[64];
		if (flagshm_open(store, &s) != 0) {
			ok = 'E';
		} else {
			flagshm_view_acquire(s, &v);
			for (size_t i = 0; i < nflags; i++) {
				gen_key(i, key, sizeof key);
				set_user(&ctx, &ids[i % BENCH_NIDS]);
				if (flagshm_evaluate(&v, key, &ctx, &r) != 0)
					ok = 'E';
			}
			flagshm_view_release(&v);
		}
	}
	if (write(1, &ok, 1) != 1)
		return 2;
	/* Hold everything mapped until the parent has measured: it closes
	 * our stdin then (or dies, and PR_SET_PDEATHSIG ends us). */
	char c;
	while (read(0, &c, 1) < 0 && errno == EINTR)
		;
	if (s)
		flagshm_close(&s);
	return ok == 'R' ? 0 : 1;
}

/* --------------------------------------------------------------- parent */

/* The value in kB of FIELD ("Rss:") on a line of smaps. */
static bool field_kb(const char *line, const char *field, long *kb)
{
	size_t n = strlen(field);
	if (strncmp(line, field, n) != 0)
		return false;
	*kb = strtol(line + n, NULL, 10);
	return true;
}

static bool read_stat(pid_t pid, const char *store, mem_stat *st)
{
	char path[64], line[1024], snap_prefix[SHM_OBJ_NAME_MAX + 16];
	long kb;
	memset(st, 0, sizeof *st);
	snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof line, f)) {
		if (field_kb(line, "Rss:", &kb))
			st->rss_kb = kb;
		else if (field_kb(line, "Pss:", &kb))
			st->pss_kb = kb;
		else if (field_kb(line, "Private_Dirty:", &kb))
			st->dirty_kb = kb;
	}
	fclose(f);

	/* The snapshot objects: "/flagshm.STORE.GEN" under /dev/shm. */
	snprintf(snap_prefix, sizeof snap_prefix, "/flagshm.%s.", store);
	snprintf(path, sizeof path, "/proc/%d/smaps", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	bool in_snap = false, in_ctr = false;
	while (fgets(line, sizeof line, f)) {
		/* A mapping's header line starts with its address range;
		 * field lines start with a capital name. */
		if (line[0] >= 'A' && line[0] <= 'Z') {
			if (in_snap && field_kb(line, "Rss:", &kb))
				st->snap_rss_kb += kb;
			else if (in_snap && field_kb(line, "Pss:", &kb))
				st->snap_pss_kb += kb;
			else if (in_ctr && field_kb(line, "Rss:", &kb))
				st->ctr_rss_kb += kb;
			else if (in_ctr && field_kb(line, "Private_Dirty:", &kb))
				st->ctr_dirty_kb += kb;
			continue;
		}
		in_snap = strstr(line, snap_prefix) != NULL;
		in_ctr = strstr(line, "/memfd:flagshm-counters") != NULL;
	}
	fclose(f);
	return true;
}

/* Read one byte from each of N pipes, within 10 s. */
static bool await_ready(bench_env *e, const int *fds, int n)
{
	int64_t limit = now_ns() + 10000000000LL;
	for (int i = 0; i < n; i++) {
		struct pollfd p = { .fd = fds[i], .events = POLLIN };
		for (;;) {
			int left = (int)((limit - now_ns()) / 1000000);
			if (left <= 0 || bench_stop) {
				if (!bench_stop)
					bench_fail(e, "memory: a reader was not ready after 10 s");
				return false;
			}
			int rc = poll(&p, 1, left);
			if (rc < 0 && errno == EINTR)
				continue;
			if (rc <= 0)
				continue;
			char c = 0;
			if (read(fds[i], &c, 1) != 1 || c != 'R') {
				bench_fail(e, "memory: reader %d failed to open or evaluate", i);
				return false;
			}
			break;
		}
	}
	return true;
}

static json_t *mem_json(const mem_stat *s, const mem_stat *base)
{
	json_t *j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "counters_private_dirty_kb",
			      (json_int_t)s->ctr_dirty_kb, "rss_kb", (json_int_t)s->rss_kb,
			      "pss_kb", (json_int_t)s->pss_kb, "private_dirty_kb",
			      (json_int_t)s->dirty_kb, "snapshot_rss_kb", (json_int_t)s->snap_rss_kb,
			      "snapshot_pss_kb", (json_int_t)s->snap_pss_kb, "counters_rss_kb",
			      (json_int_t)s->ctr_rss_kb);
	if (base) {
		json_object_set_new(j, "added_rss_kb", json_integer(s->rss_kb - base->rss_kb));
		json_object_set_new(j, "added_pss_kb", json_integer(s->pss_kb - base->pss_kb));
		json_object_set_new(j, "added_private_dirty_kb",
				    json_integer(s->dirty_kb - base->dirty_kb));
	}
	return j;
}

/* N readers and a baseline at once; their figures into OUT. */
static bool mem_once(bench_env *e, int n, json_t *out)
{
	char nflags[32];
	snprintf(nflags, sizeof nflags, "%zu", e->opt->nflags);
	int to[MEM_MAX + 1], from[MEM_MAX + 1];
	pid_t pid[MEM_MAX + 1];
	int started = 0;
	bool ok = false;
	mem_stat st[MEM_MAX + 1] = { 0 };

	for (int i = 0; i <= n; i++) {
		/* Child 0 is the baseline. */
		char *argv[] = { "flagshm-bench", "--memory-child",
				 i ? e->store_name : "-", nflags, NULL };
		pid[i] = procs_spawn_self(e, argv, &to[i], &from[i]);
		if (pid[i] < 0)
			goto out;
		started++;
	}
	if (!await_ready(e, from, started))
		goto out;
	for (int i = 0; i <= n; i++)
		if (!read_stat(pid[i], e->store_name, &st[i])) {
			bench_fail(e, "memory: cannot read /proc/%d/smaps_rollup: %s", (int)pid[i],
				   strerror(errno));
			goto out;
		}
	json_t *readers = json_array();
	double added_pss = 0, added_rss = 0, added_dirty = 0, snap_pss = 0, ctr_rss = 0, ctr_dirty = 0;
	for (int i = 1; i <= n; i++) {
		json_array_append_new(readers, mem_json(&st[i], &st[0]));
		added_pss += (double)(st[i].pss_kb - st[0].pss_kb);
		added_rss += (double)(st[i].rss_kb - st[0].rss_kb);
		added_dirty += (double)(st[i].dirty_kb - st[0].dirty_kb);
		snap_pss += (double)st[i].snap_pss_kb;
		ctr_rss += (double)st[i].ctr_rss_kb;
		ctr_dirty += (double)st[i].ctr_dirty_kb;
	}
	double snap_kb = (double)e->snap.size / 1024;
	json_object_set_new(out, "baseline", mem_json(&st[0], NULL));
	json_object_set_new(out, "readers", readers);
	json_object_set_new(out, "added_rss_kb_avg", jnum(added_rss / n, 1));
	json_object_set_new(out, "added_pss_kb_avg", jnum(added_pss / n, 1));
	json_object_set_new(out, "added_private_dirty_kb_avg", jnum(added_dirty / n, 1));
	json_object_set_new(out, "snapshot_pss_kb_avg", jnum(snap_pss / n, 1));
	/* The counter region, apart (docs/metrics.md): it holds one record
	 * per flag and variant the reader evaluated (here: every flag). */
	json_object_set_new(out, "counters_rss_kb_avg", jnum(ctr_rss / n, 1));
	json_object_set_new(out, "counters_private_dirty_kb_avg", jnum(ctr_dirty / n, 1));
	json_object_set_new(out, "total_added_pss_kb", jnum(added_pss, 1));
	json_object_set_new(out, "added_pss_per_snapshot", jnum(added_pss / n / snap_kb, 3));
	ok = true;
out:
	for (int i = 0; i < started; i++) {
		close(to[i]); /* the child reads EOF and exits */
		close(from[i]);
	}
	if (procs_wait_all(now_ns() + 5000000000LL) && ok && !bench_stop) {
		bench_fail(e, "memory: a reader process failed");
		ok = false;
	}
	return ok;
}

bool memory_run(bench_env *e)
{
	if (!bench_selected(e->opt, "memory"))
		return true;
	static const int counts[] = { 1, 2, 4, 8 };
	json_t *out = json_object();
	json_object_set_new(out, "snapshot_bytes", json_integer((json_int_t)e->snap.size));
	json_object_set_new(out, "flags", json_integer((json_int_t)e->opt->nflags));
	json_object_set_new(e->out, "memory", out);

	/* Our own mapping would take a share of the snapshot's PSS. */
	flagshm_close(&e->store);
	bool ok = true;
	for (size_t i = 0; i < sizeof counts / sizeof counts[0] && ok && !bench_stop; i++) {
		bench_note("memory: %d reader process%s", counts[i], counts[i] == 1 ? "" : "es");
		char key[8];
		snprintf(key, sizeof key, "%d", counts[i]);
		json_t *j = json_object();
		json_object_set_new(out, key, j);
		ok = mem_once(e, counts[i], j);
	}
	char err[256];
	int rc = flagshm_open_ex(e->store_name, NULL, NULL, &e->store, err, sizeof err);
	if (rc) {
		bench_fail(e, "memory: reopening the store: %s", err);
		ok = false;
	}
	return ok;
}
