/*
 * writer/metrics/doc.h - the label values counts may carry, from the
 * document just published: its flag keys, and per flag the variant texts a
 * reader can report (docs/metrics.md). Nothing a reader says becomes a label
 * unless it is in here: a key that is not is "(unknown)", a variant that is
 * not is "(other)".
 */
#ifndef FLAGSHM_WRITER_METRICS_DOC_H
#define FLAGSHM_WRITER_METRICS_DOC_H

#include <stddef.h>
#include <stdint.h>

typedef struct wm_doc_flag {
	char *key;
	uint32_t nvar;	/* document variants; then "(none)", "(other)" */
	char **var;	/* nvar + 2 texts */
} wm_doc_flag;

typedef struct wm_doc {
	uint64_t generation;
	uint32_t nflags;      /* flags[nflags] is "(unknown)" (nvar 0) */
	wm_doc_flag *flags;
	uint32_t *index;      /* open addressing: flag index + 1, 0 empty */
	uint32_t index_cap;   /* a power of two */
} wm_doc;

#define WM_V_NONE(f) ((f)->nvar)
#define WM_V_OTHER(f) ((f)->nvar + 1)

/* Labels of snapshot SNAP (SIZE bytes, as published). NULL on a snapshot
 * it cannot read (checked like any bytes) or without memory. */
wm_doc *wm_doc_build(const void *snap, size_t size);
/* An empty document (only "(unknown)"). */
wm_doc *wm_doc_empty(void);
void wm_doc_free(wm_doc *d);
/* Index of KEY, or d->nflags ("(unknown)"). */
uint32_t wm_doc_find(const wm_doc *d, const char *key, size_t len);
/* Index of variant V of flag F: a document variant, or WM_V_OTHER. */
uint32_t wm_doc_variant(const wm_doc_flag *f, const char *v, size_t len);

#endif
