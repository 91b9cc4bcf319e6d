/*
 * writer/daemon/metrics.h - what the writer knows about itself, for the
 * exporter (metrics_http.c) to read from another thread, and the
 * evaluation counts of every reader (writer/metrics/wm.h).
 *
 * The daemon's thread records publishes, rejections and sync requests;
 * the exporter's thread renders. They share one mutex, held only to copy
 * a few numbers and take a reference on the current flag table (built
 * once per publish, immutable afterwards): a scrape never holds it while
 * rendering, so publishing never waits for a scrape, however slow.
 */
#ifndef FLAGSHM_WRITER_METRICS_H
#define FLAGSHM_WRITER_METRICS_H

#include "prom.h"
#include "shm.h"

#include <stddef.h>
#include <stdint.h>

typedef struct wd_metrics wd_metrics;

/* Results of one document request to a control plane. */
enum wd_sync_result { WD_SYNC_OK, WD_SYNC_NOT_MODIFIED, WD_SYNC_ERROR };

/* A new, empty set; NULL when out of memory. CTL, the store's control
 * object, stays mapped for the life of the set: the staleness and the
 * last sync time are read from it at each scrape, as readers see them. */
wd_metrics *wd_metrics_new(const fs_ctl *ctl);
void wd_metrics_free(wd_metrics **m);

/* The daemon published SNAP (SIZE bytes, already given its generation
 * and publish time) in SECONDS (compile + publish). The flag table is
 * rebuilt from it. */
void wd_metrics_published(wd_metrics *m, const void *snap, size_t size, double seconds);
/* A document was not published (invalid, or the publish failed). */
void wd_metrics_rejected(wd_metrics *m);
void wd_metrics_sync(wd_metrics *m, enum wd_sync_result r);

/* The evaluation and outcome families from T, a copy of the counting
 * totals (NULL: counting is off; the families are then empty). Part of
 * wd_metrics_render, apart for the tests and the scrape benchmark. */
struct wm_totals;
void wd_metrics_render_counts(wd_buf *out, const struct wm_totals *t);

/* The whole exposition into OUT (initialised by the caller with its size
 * bound). 0, or -1 when OUT's bound was reached (OUT->over). */
int wd_metrics_render(wd_metrics *m, wd_buf *out);

#endif
