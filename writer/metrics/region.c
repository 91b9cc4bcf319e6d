/*
 * writer/metrics/region.c - read a reader's counter region (shm/counters.h).
 *
 * The reader may change any byte at any time, shrink nothing (the seal),
 * and grow the file. So: every field is loaded once into a local before it
 * is checked and used, records are walked only inside the mapping and up to
 * WM_REGION_RECS_MAX, and a record that does not add up is skipped or ends
 * the walk. The worst a region can do is report counts it did not make,
 * under labels of the current document.
 */
#include "region.h"
#include "counters.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int wm_counts_init(wm_counts *c, const wm_doc *doc)
{
	memset(c, 0, sizeof *c);
	c->doc = doc;
	c->vbase = calloc((size_t)doc->nflags + 2, sizeof *c->vbase);
	if (!c->vbase)
		return -1;
	uint32_t n = 0;
	for (uint32_t f = 0; f <= doc->nflags; f++) {
		c->vbase[f] = n;
		n += doc->flags[f].nvar + 2;
	}
	c->vbase[doc->nflags + 1] = n;
	c->cell = calloc(n ? n : 1, sizeof *c->cell);
	c->errors = calloc((size_t)doc->nflags + 1, sizeof *c->errors);
	if (!c->cell || !c->errors) {
		wm_counts_free(c);
		return -1;
	}
	return 0;
}

void wm_counts_free(wm_counts *c)
{
	free(c->vbase);
	free(c->cell);
	free(c->errors);
	memset(c, 0, sizeof *c);
}

void wm_counts_zero(wm_counts *c)
{
	memset(c->cell, 0, c->vbase[c->doc->nflags + 1] * sizeof *c->cell);
	memset(c->errors, 0, ((size_t)c->doc->nflags + 1) * sizeof *c->errors);
}

static void cell_add(wm_cell *d, const wm_cell *s)
{
	for (int i = 0; i < WM_REASONS; i++)
		d->reasons[i] += s->reasons[i];
	d->ok += s->ok;
	d->err += s->err;
	for (int i = 0; i <= WM_BUCKETS; i++)
		d->buckets[i] += s->buckets[i];
	d->sum += s->sum;
}

void wm_counts_add(wm_counts *dst, const wm_counts *src)
{
	uint32_t n = dst->vbase[dst->doc->nflags + 1];
	for (uint32_t i = 0; i < n; i++)
		cell_add(&dst->cell[i], &src->cell[i]);
	for (uint32_t f = 0; f <= dst->doc->nflags; f++)
		for (int e = 0; e < WM_ERRORS; e++)
			dst->errors[f][e] += src->errors[f][e];
}

void wm_counts_relabel(wm_counts *dst, const wm_counts *src)
{
	const wm_doc *sd = src->doc, *dd = dst->doc;
	for (uint32_t f = 0; f <= sd->nflags; f++) {
		const wm_doc_flag *sf = &sd->flags[f];
		uint32_t nf = f == sd->nflags ? dd->nflags : wm_doc_find(dd, sf->key, strlen(sf->key));
		const wm_doc_flag *df = &dd->flags[nf];
		for (uint32_t v = 0; v < sf->nvar + 2; v++) {
			uint32_t nv = v == WM_V_OTHER(sf) ? WM_V_OTHER(df)
				      : nf == dd->nflags && v != WM_V_NONE(sf)
					      ? WM_V_OTHER(df)
					      : wm_doc_variant(df, sf->var[v], strlen(sf->var[v]));
			cell_add(&dst->cell[dst->vbase[nf] + nv], &src->cell[src->vbase[f] + v]);
		}
		for (int e = 0; e < WM_ERRORS; e++)
			dst->errors[nf][e] += src->errors[f][e];
	}
}

int wm_region_open(wm_region *r, int fd, char *err, size_t errlen)
{
	memset(r, 0, sizeof *r);
	r->fd = -1;
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "not a regular file");
		close(fd);
		return -1;
	}
	/* Only a memfd sealed against shrinking: a file that could shrink
	 * under our mapping would fault (SIGBUS) when we read it. */
	if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
		snprintf(err, errlen, "not a memfd sealed against shrinking");
		close(fd);
		return -1;
	}
	if (st.st_size < (off_t)FM_FIRST) {
		snprintf(err, errlen, "%lld bytes: smaller than a region header", (long long)st.st_size);
		close(fd);
		return -1;
	}
	size_t len = st.st_size > (off_t)FM_REGION_MAX ? FM_REGION_MAX : (size_t)st.st_size;
	void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		snprintf(err, errlen, "mmap: %s", strerror(errno));
		close(fd);
		return -1;
	}
	const fm_hdr *h = m;
	if (h->rh_magic != FM_MAGIC || h->rh_version != FM_VERSION) {
		snprintf(err, errlen, "not a flagshm counter region (magic %08x, version %u)",
			 h->rh_magic, h->rh_version);
		munmap(m, len);
		close(fd);
		return -1;
	}
	r->fd = fd;
	r->map = m;
	r->maplen = len;
	return 0;
}

void wm_region_close(wm_region *r)
{
	if (r->map)
		munmap((void *)r->map, r->maplen);
	if (r->fd >= 0)
		close(r->fd);
	free(r->res);
	free(r->rings);
	memset(r, 0, sizeof *r);
	r->fd = -1;
}

/* Map more of the file when the reader says it has grown (the seal: it
 * can only grow, so what was mapped stays valid). */
static void region_follow(wm_region *r, uint64_t used)
{
	if (used <= r->maplen || r->maplen >= FM_REGION_MAX)
		return;
	struct stat st;
	if (fstat(r->fd, &st) != 0 || st.st_size <= (off_t)r->maplen)
		return;
	size_t len = st.st_size > (off_t)FM_REGION_MAX ? FM_REGION_MAX : (size_t)st.st_size;
	void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, r->fd, 0);
	if (m == MAP_FAILED)
		return; /* read what we have; try again next time */
	munmap((void *)r->map, r->maplen);
	r->map = m;
	r->maplen = len;
}

static uint64_t ld64(const uint64_t *p)
{
	/* Relaxed: counters each have one writer (the owner thread in the
	 * reader); a 64-bit aligned load is never torn. */
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* The cell of the record at OFF (its texts copied out first). */
static uint32_t resolve(const wm_counts *out, const uint8_t *txt, size_t klen, size_t vlen,
			uint32_t *flag)
{
	char key[FM_KEY_MAX], var[FM_VARIANT_MAX];
	memcpy(key, txt, klen);
	memcpy(var, txt + klen, vlen);
	const wm_doc *d = out->doc;
	uint32_t f = wm_doc_find(d, key, klen);
	const wm_doc_flag *df = &d->flags[f];
	uint32_t v;
	if (vlen == 6 && memcmp(var, "(none)", 6) == 0)
		v = WM_V_NONE(df);
	else if (f == d->nflags)
		v = WM_V_OTHER(df);
	else
		v = wm_doc_variant(df, var, vlen);
	*flag = f;
	return out->vbase[f] + v;
}

static void ring_note(wm_region *r, uint32_t off)
{
	for (uint32_t i = 0; i < r->nrings; i++)
		if (r->rings[i].off == off)
			return;
	if (r->nrings == WM_RINGS_MAX)
		return;
	if (r->nrings == r->caprings) {
		uint32_t nc = r->caprings ? r->caprings * 2 : 8;
		wm_ring *n = realloc(r->rings, nc * sizeof *n);
		if (!n)
			return;
		r->rings = n;
		r->caprings = nc;
	}
	r->rings[r->nrings++] = (wm_ring){off, 0};
}

void wm_region_drain(wm_region *r, const wm_counts *counts, wm_expo_fn fn, void *ud,
		     uint64_t *lost)
{
	const wm_doc *d = counts->doc;
	uint32_t budget = WM_DRAIN_MAX; /* the rest waits for the next drain */
	for (uint32_t i = 0; i < r->nrings && budget; i++) {
		wm_ring *g = &r->rings[i];
		const fm_rec *rec = (const fm_rec *)(r->map + g->off);
		const uint64_t *ring = rec->r_slot;
		/* Acquire: pairs with the owner's release store of the count
		 * after each entry. */
		uint64_t head = __atomic_load_n(&ring[0], __ATOMIC_ACQUIRE);
		if (head < g->pos)
			g->pos = head; /* a count that went back: a lie, start over */
		if (head - g->pos > FM_RING_N) {
			*lost += head - g->pos - FM_RING_N;
			g->pos = head - FM_RING_N;
		}
		for (; g->pos < head && budget; g->pos++, budget--) {
			const uint64_t *e = &ring[1 + (g->pos % FM_RING_N) * FM_RING_WORDS];
			/* The entry's seqlock (reader/count.c, count_expose). */
			uint64_t s1 = __atomic_load_n(&e[0], __ATOMIC_ACQUIRE);
			uint64_t t = __atomic_load_n(&e[1], __ATOMIC_RELAXED);
			uint64_t w = __atomic_load_n(&e[2], __ATOMIC_RELAXED);
			uint64_t id[FM_RING_WORDS - 3];
			for (unsigned k = 0; k < FM_RING_WORDS - 3; k++)
				id[k] = __atomic_load_n(&e[3 + k], __ATOMIC_RELAXED);
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			uint64_t s2 = __atomic_load_n(&e[0], __ATOMIC_RELAXED);
			uint32_t roff = (uint32_t)w;
			unsigned reason = (unsigned)(w >> 32) & 0xff, idl = (unsigned)(w >> 40) & 0xff;
			if (s1 != g->pos + 1 || s2 != s1 || reason >= WM_REASONS ||
			    idl > FM_RING_ID_MAX || roff < FM_FIRST || roff % FM_ALIGN ||
			    (uint64_t)roff + sizeof(fm_rec) > r->maplen) {
				(*lost)++; /* overwritten while we read, or a lie */
				continue;
			}
			/* The evaluation record it names: flag and variant. */
			const fm_rec *er = (const fm_rec *)(r->map + roff);
			uint32_t size = __atomic_load_n(&er->r_size, __ATOMIC_RELAXED);
			uint16_t kind = __atomic_load_n(&er->r_kind, __ATOMIC_RELAXED);
			uint16_t ns = __atomic_load_n(&er->r_nslots, __ATOMIC_RELAXED);
			uint16_t kl = __atomic_load_n(&er->r_key_len, __ATOMIC_RELAXED);
			uint16_t vl = __atomic_load_n(&er->r_var_len, __ATOMIC_RELAXED);
			if (kind != FM_K_EVAL || ns != FM_EVAL_SLOTS || kl > FM_KEY_MAX ||
			    vl > FM_VARIANT_MAX || (uint64_t)roff + size > r->maplen ||
			    sizeof(fm_rec) + (uint64_t)ns * 8u + kl + vl > size) {
				(*lost)++;
				continue;
			}
			uint32_t flag;
			uint32_t cell = resolve(counts, (const uint8_t *)&er->r_slot[ns], kl, vl, &flag);
			const wm_doc_flag *df = &d->flags[flag];
			wm_expo x = {.flag = df->key,
				     .variant = df->var[cell - counts->vbase[flag]],
				     .reason = reason,
				     .flag_idx = flag,
				     .cell = cell,
				     .id = (const char *)id,
				     .idl = idl,
				     .time_ms = (int64_t)t};
			fn(&x, ud);
		}
	}
}

void wm_region_read(wm_region *r, wm_counts *out)
{
	const fm_hdr *h = (const fm_hdr *)r->map;
	/* Acquire: pairs with the owner's release store after it completed
	 * the records below USED. */
	uint64_t used = __atomic_load_n(&h->rh_used, __ATOMIC_ACQUIRE);
	region_follow(r, used);
	if (used > r->maplen)
		used = r->maplen;
	if (r->res_doc != out->doc || r->res_gen != out->doc->generation) {
		r->nres = 0; /* labels of another document: resolve again */
		r->res_doc = out->doc;
		r->res_gen = out->doc->generation;
	}
	uint64_t off = FM_FIRST;
	for (uint32_t n = 0; n < WM_REGION_RECS_MAX && off + sizeof(fm_rec) <= used; n++) {
		const fm_rec *rec = (const fm_rec *)(r->map + off);
		uint32_t size = __atomic_load_n(&rec->r_size, __ATOMIC_RELAXED);
		uint16_t kind = __atomic_load_n(&rec->r_kind, __ATOMIC_RELAXED);
		uint16_t nslots = __atomic_load_n(&rec->r_nslots, __ATOMIC_RELAXED);
		uint16_t klen = __atomic_load_n(&rec->r_key_len, __ATOMIC_RELAXED);
		uint16_t vlen = __atomic_load_n(&rec->r_var_len, __ATOMIC_RELAXED);
		if (size < sizeof(fm_rec) || size % FM_ALIGN || size > used - off)
			break; /* the walk cannot go on from a record that lies */
		if (kind == FM_K_RING && nslots == FM_RING_SLOTS &&
		    sizeof(fm_rec) + (uint64_t)FM_RING_SLOTS * 8u <= size) {
			ring_note(r, (uint32_t)off);
			off += size;
			continue;
		}
		uint64_t body = sizeof(fm_rec) + (uint64_t)nslots * 8u + klen + vlen;
		bool ok = body <= size && klen <= FM_KEY_MAX && vlen <= FM_VARIANT_MAX &&
			  ((kind == FM_K_EVAL && nslots == FM_EVAL_SLOTS) ||
			   (kind == FM_K_OUTCOME && nslots == FM_OUT_SLOTS));
		if (ok) {
			uint32_t cell, flag;
			if (n < r->nres && r->res[n].off == off) {
				cell = r->res[n].cell;
				flag = r->res[n].flag;
			} else {
				cell = resolve(out, (const uint8_t *)&rec->r_slot[nslots], klen, vlen,
					       &flag);
				if (n == r->nres) {
					if (r->nres == r->capres) {
						uint32_t nc = r->capres ? r->capres * 2 : 64;
						wm_res *nr = realloc(r->res, nc * sizeof *nr);
						if (nr) {
							r->res = nr;
							r->capres = nc;
						}
					}
					if (r->nres < r->capres)
						r->res[r->nres++] = (wm_res){(uint32_t)off, cell, flag};
				}
			}
			wm_cell *c = &out->cell[cell];
			const uint64_t *s = rec->r_slot;
			if (kind == FM_K_EVAL) {
				for (int i = 0; i < WM_REASONS; i++)
					c->reasons[i] += ld64(&s[i]);
				for (int e = 1; e < WM_ERRORS; e++)
					out->errors[flag][e] += ld64(&s[7 + e]);
			} else {
				c->ok += ld64(&s[0]);
				c->err += ld64(&s[1]);
				uint64_t bits = ld64(&s[2]);
				double sum;
				memcpy(&sum, &bits, sizeof sum);
				if (isfinite(sum) && sum >= 0)
					c->sum += sum;
				for (int b = 0; b <= WM_BUCKETS; b++)
					c->buckets[b] += ld64(&s[3 + b]);
			}
		}
		off += size;
	}
}
