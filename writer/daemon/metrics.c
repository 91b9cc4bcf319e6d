/*
 * writer/daemon/metrics.c - the writer's own numbers and the flag table,
 * shared between the daemon's thread and the exporter's (metrics.h).
 */
#include "metrics.h"
#include "clock.h"
#include "flagshm.h"
#include "format.h"
#include "timeparse.h"
#include "wm.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The flags of one snapshot, as the exporter shows them: built once per
 * publish, never changed, freed by whoever drops the last reference. */
typedef struct flag_table {
	unsigned refs; /* under wd_metrics.mu */
	size_t n;
	wd_prom_flag *flags;
	char *text; /* keys and owners, each NUL-terminated */
} flag_table;

struct wd_metrics {
	pthread_mutex_t mu;
	const fs_ctl *ctl;
	wd_prom_writer w; /* under mu; readers, last_sync_ms and stale are set at render */
	size_t last_len;  /* under mu: the size of the last exposition, a hint for the next */
	flag_table *flags; /* under mu; NULL before the first publish */
};

static void table_unref(wd_metrics *m, flag_table *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&m->mu);
	bool last = --t->refs == 0;
	pthread_mutex_unlock(&m->mu);
	if (last) {
		free(t->flags);
		free(t->text);
		free(t);
	}
}

wd_metrics *wd_metrics_new(const fs_ctl *ctl)
{
	wd_metrics *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	pthread_mutex_init(&m->mu, NULL);
	m->ctl = ctl;
	return m;
}

void wd_metrics_free(wd_metrics **mp)
{
	wd_metrics *m = *mp;
	if (!m)
		return;
	table_unref(m, m->flags);
	pthread_mutex_destroy(&m->mu);
	free(m);
	*mp = NULL;
}

static const char *kind_name(uint8_t kind)
{
	static const char *const names[] = { "release", "operational", "experiment", "permission" };
	return kind < sizeof names / sizeof *names ? names[kind] : "unknown";
}

/* The string S of the pool, or NULL when it is not inside it. The writer
 * compiled and verified these bytes itself; the checks cost nothing and
 * keep a mistake elsewhere from becoming a read out of bounds here. */
static const char *pool_str(const uint8_t *base, const fs_table *pool, fs_str s)
{
	if ((uint64_t)s.off + s.len >= pool->t_count)
		return NULL;
	return (const char *)base + pool->t_off + s.off;
}

/* The flag table of the snapshot at SNAP, or NULL (out of memory, or a
 * snapshot whose tables are not where its header says). */
static flag_table *table_build(const void *snap, size_t size)
{
	const uint8_t *base = snap;
	const fs_snap_hdr *h = snap;
	if (size < sizeof *h)
		return NULL;
	const fs_table *ft = &h->sh_tables[FS_T_FLAGS], *pool = &h->sh_tables[FS_T_POOL];
	if ((uint64_t)ft->t_off + (uint64_t)ft->t_count * sizeof(fs_flag) > size ||
	    (uint64_t)pool->t_off + pool->t_count > size || ft->t_off % 8)
		return NULL;
	const fs_flag *f = (const fs_flag *)(base + ft->t_off);
	size_t n = ft->t_count, text = 0;
	for (size_t i = 0; i < n; i++)
		text += (size_t)f[i].f_key.len + f[i].f_owner.len + 2;

	flag_table *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->refs = 1;
	t->flags = calloc(n ? n : 1, sizeof *t->flags);
	t->text = malloc(text ? text : 1);
	if (!t->flags || !t->text) {
		free(t->flags);
		free(t->text);
		free(t);
		return NULL;
	}
	char *p = t->text;
	for (size_t i = 0; i < n; i++) {
		const char *key = pool_str(base, pool, f[i].f_key);
		const char *owner = f[i].f_owner.len ? pool_str(base, pool, f[i].f_owner) : "";
		const char *exp = f[i].f_expires_at.len ? pool_str(base, pool, f[i].f_expires_at) : NULL;
		if (!key || !owner)
			continue; /* never for our own bytes */
		wd_prom_flag *o = &t->flags[t->n++];
		o->key = memcpy(p, key, f[i].f_key.len);
		o->key_len = f[i].f_key.len;
		p[o->key_len] = '\0';
		p += o->key_len + 1;
		o->owner = memcpy(p, owner, f[i].f_owner.len);
		o->owner_len = f[i].f_owner.len;
		p[o->owner_len] = '\0';
		p += o->owner_len + 1;
		o->type = kind_name(f[i].f_kind);
		o->has_expiry = exp && timeparse_rfc3339(exp, f[i].f_expires_at.len, &o->expiry_ms);
	}
	return t;
}

void wd_metrics_published(wd_metrics *m, const void *snap, size_t size, double seconds)
{
	const fs_snap_hdr *h = snap;
	flag_table *t = table_build(snap, size), *old;

	pthread_mutex_lock(&m->mu);
	m->w.generation = h->sh_generation;
	m->w.published_ms = h->sh_published_ms;
	m->w.snapshot_bytes = size;
	m->w.flags = h->sh_tables[FS_T_FLAGS].t_count;
	wd_hist_observe(&m->w.publish, seconds);
	old = m->flags;
	if (t) /* out of memory: the old table stays, a scrape shows it */
		m->flags = t;
	pthread_mutex_unlock(&m->mu);
	if (t)
		table_unref(m, old);
}

void wd_metrics_rejected(wd_metrics *m)
{
	pthread_mutex_lock(&m->mu);
	m->w.publish_rejected++;
	pthread_mutex_unlock(&m->mu);
}

void wd_metrics_sync(wd_metrics *m, enum wd_sync_result r)
{
	pthread_mutex_lock(&m->mu);
	if (r == WD_SYNC_OK)
		m->w.sync_ok++;
	else if (r == WD_SYNC_NOT_MODIFIED)
		m->w.sync_not_modified++;
	else
		m->w.sync_error++;
	pthread_mutex_unlock(&m->mu);
}

/* As a reader decides it (reader/store.h, store_stale). */
static void sync_state(const fs_ctl *ctl, wd_prom_writer *w)
{
	/* Relaxed, as the readers' loads: values the daemon's thread stores
	 * alone (shm_ctl_synced, shm_ctl_set_stale_after), shown only. */
	int64_t after = atomic_load_explicit(&ctl->ctl_stale_after_ms, memory_order_relaxed);
	int64_t last = atomic_load_explicit(&ctl->ctl_last_sync_ms, memory_order_relaxed);
	w->last_sync_ms = last > 0 ? last : 0;
	w->stale = after > 0 && last < fs_clock_ms(CLOCK_REALTIME) - after;
	if (!w->generation) {
		/* Nothing published by this writer yet: readers are served what
		 * a previous writer left (a URL writer waiting for its control
		 * plane). Relaxed: shown only, as in `flagshm status`. */
		w->generation = atomic_load_explicit(&ctl->ctl_generation, memory_order_relaxed);
		w->published_ms = atomic_load_explicit(&ctl->ctl_published_ms, memory_order_relaxed);
	}
}

/* Names of the reasons and error codes in flagshm.h order, as
 * flagshm_reason_name / flagshm_error_code_name give them (the writer
 * does not link libflagshm); wm.h counts in the same order. */
static const char *const reason_names[WM_REASONS] = {
	[FLAGSHM_REASON_ERROR] = "ERROR",
	[FLAGSHM_REASON_DISABLED] = "DISABLED",
	[FLAGSHM_REASON_PREREQUISITE_FAILED] = "PREREQUISITE_FAILED",
	[FLAGSHM_REASON_RULE_MATCH] = "RULE_MATCH",
	[FLAGSHM_REASON_SPLIT] = "SPLIT",
	[FLAGSHM_REASON_DEFAULT_ROLLOUT] = "DEFAULT_ROLLOUT",
	[FLAGSHM_REASON_DEFAULT_OFF] = "DEFAULT_OFF",
};
static const char *const error_names[WM_ERRORS] = {
	[FLAGSHM_CODE_NONE] = "NONE",
	[FLAGSHM_CODE_STORE_UNAVAILABLE] = "STORE_UNAVAILABLE",
	[FLAGSHM_CODE_FLAG_NOT_FOUND] = "FLAG_NOT_FOUND",
	[FLAGSHM_CODE_TYPE_MISMATCH] = "TYPE_MISMATCH",
	[FLAGSHM_CODE_SNAPSHOT_INVALID] = "SNAPSHOT_INVALID",
};
_Static_assert(FLAGSHM_REASON_DEFAULT_OFF == WM_REASONS - 1, "one name per reason");
_Static_assert(FLAGSHM_CODE_SNAPSHOT_INVALID == WM_ERRORS - 1, "one name per error code");
_Static_assert(WM_BUCKETS == WD_HIST_BOUNDS, "one set of histogram buckets");

static wd_label lab(const char *name, const char *value)
{
	return (wd_label){ .name = name, .value = value, .len = strlen(value) };
}

void wd_metrics_render_counts(wd_buf *b, const wm_totals *t)
{
	size_t nf = t ? t->nflags : 0;

	wd_prom_family(b, "flagshm_evaluations_total", "counter",
		       "Evaluations by every reader process, per flag, variant and reason.");
	for (size_t i = 0; i < nf && !b->over; i++)
		for (size_t v = 0; v < t->flags[i].nvariants; v++)
			for (size_t r = 0; r < WM_REASONS; r++) {
				const wm_variant *wv = &t->flags[i].variants[v];
				if (!wv->reasons[r])
					continue;
				wd_label l[] = { lab("flag", t->flags[i].flag), lab("variant", wv->variant),
						 lab("reason", reason_names[r]) };
				wd_prom_sample(b, "flagshm_evaluations_total", l, 3, wv->reasons[r]);
			}

	wd_prom_family(b, "flagshm_evaluation_errors_total", "counter",
		       "Evaluations that returned an error code, per flag and error.");
	for (size_t i = 0; i < nf && !b->over; i++)
		for (size_t e = 1; e < WM_ERRORS; e++) {
			if (!t->flags[i].errors[e])
				continue;
			wd_label l[] = { lab("flag", t->flags[i].flag), lab("error", error_names[e]) };
			wd_prom_sample(b, "flagshm_evaluation_errors_total", l, 2, t->flags[i].errors[e]);
		}

	/* Both outcomes of a variant appear once it has any: an error ratio
	 * is then 0, not absent. */
	wd_prom_family(b, "flagshm_outcomes_total", "counter",
		       "Request outcomes (flagshm_view_outcome) per flag and variant evaluated.");
	for (size_t i = 0; i < nf && !b->over; i++)
		for (size_t v = 0; v < t->flags[i].nvariants; v++) {
			const wm_variant *wv = &t->flags[i].variants[v];
			if (!wv->outcome_ok && !wv->outcome_err)
				continue;
			wd_label l[] = { lab("flag", t->flags[i].flag), lab("variant", wv->variant),
					 lab("outcome", "success") };
			wd_prom_sample(b, "flagshm_outcomes_total", l, 3, wv->outcome_ok);
			l[2] = lab("outcome", "error");
			wd_prom_sample(b, "flagshm_outcomes_total", l, 3, wv->outcome_err);
		}

	wd_prom_family(b, "flagshm_outcome_duration_seconds", "histogram",
		       "Durations of the request outcomes per flag and variant evaluated.");
	for (size_t i = 0; i < nf && !b->over; i++)
		for (size_t v = 0; v < t->flags[i].nvariants; v++) {
			const wm_variant *wv = &t->flags[i].variants[v];
			if (!wv->outcome_ok && !wv->outcome_err)
				continue;
			wd_label l[] = { lab("flag", t->flags[i].flag), lab("variant", wv->variant) };
			wd_prom_hist_labels(b, "flagshm_outcome_duration_seconds", l, 2, wv->buckets,
					    wv->outcome_ok + wv->outcome_err, wv->sum_seconds);
		}
}

int wd_metrics_render(wd_metrics *m, wd_buf *out)
{
	wd_prom_writer w;
	flag_table *t;
	wm_totals *counts = NULL;

	pthread_mutex_lock(&m->mu);
	w = m->w;
	if ((t = m->flags))
		t->refs++;
	size_t hint = m->last_len + m->last_len / 8 + 4096;
	pthread_mutex_unlock(&m->mu);
	wd_buf_reserve(out, hint);
	if (m->ctl)
		sync_state(m->ctl, &w);
	/* A copy of the counting totals, taken without any lock of ours;
	 * NULL when counting is off (--once) or out of memory. */
	if (wm_totals_snapshot(&counts) == 0 && counts)
		w.readers = counts->readers;

	wd_metrics_render_counts(out, counts);
	wd_prom_render_writer(out, &w);
	wd_prom_render_flags(out, t ? t->flags : NULL, t ? t->n : 0);
	wm_totals_free(&counts);
	table_unref(m, t);
	if (!out->over) {
		pthread_mutex_lock(&m->mu);
		m->last_len = out->len;
		pthread_mutex_unlock(&m->mu);
	}
	return out->over ? -1 : 0;
}
