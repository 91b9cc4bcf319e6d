/*
 * writer/metrics/doc.c - label values from a published snapshot. The bytes
 * are our own compiler's, but they are read with the same bounds checks as
 * anything else: a bad table gives no labels, never a crash.
 */
#include "doc.h"
#include "counters.h"
#include "format.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rd {
	const uint8_t *b;
	size_t size;
	const fs_snap_hdr *h;
} rd;

static const void *rec(const rd *r, int t, uint32_t i, size_t recsize)
{
	const fs_table *tb = &r->h->sh_tables[t];
	if (i >= tb->t_count || (uint64_t)tb->t_off + (uint64_t)tb->t_count * recsize > r->size)
		return NULL;
	return r->b + tb->t_off + (size_t)i * recsize;
}

static const char *str(const rd *r, fs_str s)
{
	const fs_table *pool = &r->h->sh_tables[FS_T_POOL];
	if ((uint64_t)pool->t_off + pool->t_count > r->size ||
	    (uint64_t)s.off + s.len >= pool->t_count)
		return NULL;
	return (const char *)r->b + pool->t_off + s.off;
}

static char *dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* Add variant text T (N bytes) to F if new. False without memory. */
static bool var_add(wm_doc_flag *f, uint32_t *cap, const char *t, size_t n)
{
	for (uint32_t i = 0; i < f->nvar; i++)
		if (strlen(f->var[i]) == n && memcmp(f->var[i], t, n) == 0)
			return true;
	if (f->nvar + 2 >= *cap) {
		uint32_t nc = *cap ? *cap * 2 : 8;
		char **nv = realloc(f->var, nc * sizeof *nv);
		if (!nv)
			return false;
		f->var = nv;
		*cap = nc;
	}
	char *d = dupn(t, n);
	if (!d)
		return false;
	f->var[f->nvar++] = d;
	return true;
}

/* Text of value VI as a reader reports it (bool/number/string). */
static bool value_add(const rd *r, wm_doc_flag *f, uint32_t *cap, uint32_t vi)
{
	const fs_value *v = rec(r, FS_T_VALUES, vi, sizeof(fs_value));
	if (!v)
		return true; /* FS_NONE (a split rule) or damaged: nothing to add */
	char buf[FM_VARIANT_MAX + 1];
	size_t n;
	const char *s;
	switch (v->v_type) {
	case FS_V_BOOL:
		return true; /* both added up front */
	case FS_V_NUMBER:
		n = fm_number_text(buf, sizeof buf, v->v_num);
		return var_add(f, cap, buf, n);
	case FS_V_STRING:
		s = str(r, v->v_str);
		return !s || var_add(f, cap, s, fm_variant_cut(s, v->v_str.len));
	default:
		return true;
	}
}

static bool flag_labels(const rd *r, const fs_flag *fl, wm_doc_flag *f)
{
	uint32_t cap = 0;
	char buf[FM_VARIANT_MAX + 16];
	bool ok = true;
	if (fl->f_vtype == FS_V_BOOL) {
		ok = var_add(f, &cap, "true", 4) && var_add(f, &cap, "false", 5);
	} else if (fl->f_vtype == FS_V_JSON) {
		ok = var_add(f, &cap, "default", 7) && var_add(f, &cap, "off", 3);
	} else {
		ok = value_add(r, f, &cap, fl->f_default) && value_add(r, f, &cap, fl->f_off);
	}
	for (uint32_t i = 0; ok && i < fl->f_rule_count && i < 100000; i++) {
		const fs_rule *ru = rec(r, FS_T_RULES, fl->f_rule_first + i, sizeof(fs_rule));
		if (!ru)
			break;
		if (fl->f_vtype == FS_V_JSON) {
			const char *id = str(r, ru->r_id);
			if (ru->r_variation != FS_NONE && id) {
				int n = snprintf(buf, sizeof buf, "rule:%.*s", (int)ru->r_id.len, id);
				size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
				ok = var_add(f, &cap, buf, fm_variant_cut(buf, len));
			}
			for (uint32_t k = 0; ok && ru->r_variation == FS_NONE && k < ru->r_split_count &&
					     k < 1000; k++) {
				int n = snprintf(buf, sizeof buf, "split:%u", k);
				ok = var_add(f, &cap, buf, (size_t)n);
			}
		} else if (fl->f_vtype != FS_V_BOOL) {
			ok = value_add(r, f, &cap, ru->r_variation);
			for (uint32_t k = 0; ok && ru->r_variation == FS_NONE && k < ru->r_split_count &&
					     k < 1000; k++) {
				const fs_split *sp = rec(r, FS_T_SPLITS, ru->r_split_first + k,
							 sizeof(fs_split));
				if (sp)
					ok = value_add(r, f, &cap, sp->sp_value);
			}
		}
	}
	if (!ok)
		return false;
	if (f->nvar + 2 > cap) {
		char **nv = realloc(f->var, (f->nvar + 2) * sizeof *nv);
		if (!nv)
			return false;
		f->var = nv;
	}
	f->var[f->nvar] = dupn("(none)", 6);
	f->var[f->nvar + 1] = dupn("(other)", 7);
	return f->var[f->nvar] && f->var[f->nvar + 1];
}

void wm_doc_free(wm_doc *d)
{
	if (!d)
		return;
	for (uint32_t i = 0; i <= d->nflags && d->flags; i++) {
		wm_doc_flag *f = &d->flags[i];
		for (uint32_t k = 0; f->var && k < f->nvar + 2; k++)
			free(f->var[k]);
		free(f->var);
		free(f->key);
	}
	free(d->flags);
	free(d->index);
	free(d);
}

static uint32_t key_hash(const char *k, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)k[i]) * 16777619u;
	return h;
}

static bool finish(wm_doc *d)
{
	wm_doc_flag *u = &d->flags[d->nflags];
	u->key = dupn("(unknown)", 9);
	u->var = calloc(2, sizeof *u->var);
	if (!u->key || !u->var)
		return false;
	u->var[0] = dupn("(none)", 6);
	u->var[1] = dupn("(other)", 7);
	if (!u->var[0] || !u->var[1])
		return false;
	uint32_t cap = 16;
	while (cap < d->nflags * 2 + 2)
		cap *= 2;
	d->index = calloc(cap, sizeof *d->index);
	if (!d->index)
		return false;
	d->index_cap = cap;
	for (uint32_t i = 0; i < d->nflags; i++) {
		const char *k = d->flags[i].key;
		uint32_t j = key_hash(k, strlen(k)) & (cap - 1);
		while (d->index[j])
			j = (j + 1) & (cap - 1);
		d->index[j] = i + 1;
	}
	return true;
}

wm_doc *wm_doc_empty(void)
{
	wm_doc *d = calloc(1, sizeof *d);
	if (!d || !(d->flags = calloc(1, sizeof *d->flags)) || !finish(d)) {
		wm_doc_free(d);
		return NULL;
	}
	return d;
}

wm_doc *wm_doc_build(const void *snap, size_t size)
{
	rd r = {snap, size, snap};
	if (!snap || size < sizeof(fs_snap_hdr) || r.h->sh_magic != FS_SNAP_MAGIC)
		return NULL;
	const fs_table *ft = &r.h->sh_tables[FS_T_FLAGS];
	if ((uint64_t)ft->t_off + (uint64_t)ft->t_count * sizeof(fs_flag) > size)
		return NULL;
	wm_doc *d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	d->generation = r.h->sh_generation;
	d->flags = calloc((size_t)ft->t_count + 1, sizeof *d->flags);
	if (!d->flags) {
		free(d);
		return NULL;
	}
	for (uint32_t i = 0; i < ft->t_count; i++) {
		const fs_flag *fl = rec(&r, FS_T_FLAGS, i, sizeof(fs_flag));
		const char *k = fl ? str(&r, fl->f_key) : NULL;
		if (!k || fl->f_key.len > FM_KEY_MAX)
			continue; /* such a key is counted as "(unknown)" by readers */
		wm_doc_flag *f = &d->flags[d->nflags];
		f->key = dupn(k, fl->f_key.len);
		if (!f->key || !flag_labels(&r, fl, f)) {
			d->nflags++;
			wm_doc_free(d);
			return NULL;
		}
		d->nflags++;
	}
	if (!finish(d)) {
		wm_doc_free(d);
		return NULL;
	}
	return d;
}

uint32_t wm_doc_find(const wm_doc *d, const char *key, size_t len)
{
	if (len == 0)
		return d->nflags;
	for (uint32_t j = key_hash(key, len) & (d->index_cap - 1);; j = (j + 1) & (d->index_cap - 1)) {
		uint32_t e = d->index[j];
		if (!e)
			return d->nflags;
		const char *k = d->flags[e - 1].key;
		if (strlen(k) == len && memcmp(k, key, len) == 0)
			return e - 1;
	}
}

uint32_t wm_doc_variant(const wm_doc_flag *f, const char *v, size_t len)
{
	for (uint32_t i = 0; i < f->nvar + 1; i++) /* the document's and "(none)" */
		if (strlen(f->var[i]) == len && memcmp(f->var[i], v, len) == 0)
			return i;
	return WM_V_OTHER(f);
}
