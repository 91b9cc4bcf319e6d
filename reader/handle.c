/*
 * reader/handle.c - pre-resolved flags: a handle remembers where its key
 * was found, so the hottest flags skip hashing and probing the index.
 *
 * The hint is only a guess: it is checked against the key at that index of
 * the view's snapshot (bounds-checked like every read), and refreshed by a
 * normal lookup when the flag moved in a new generation. Threads may share
 * a handle: the hint is a relaxed atomic, and any value it holds is safe.
 */
#include "eval.h"
#include "flagshm.h"
#include "snap.h"
#include "store.h"
#include "count.h"

#include <string.h>

#define HANDLE_MAGIC 0x464c4831u /* "FLH1" */

FLAGSHM_API int flagshm_handle_init(flagshm_handle *h, const char *key)
{
	if (!h || !key || !key[0])
		return FLAGSHM_EINVAL;
	h->magic = HANDLE_MAGIC;
	h->key = key;
	h->len = strlen(key);
	__atomic_store_n(&h->hint, 0, __ATOMIC_RELAXED);
	return 0;
}

/* The flag index of H in S, or -1. */
static int64_t handle_find(const snap *s, flagshm_handle *h)
{
	uint32_t i = __atomic_load_n(&h->hint, __ATOMIC_RELAXED);
	const fs_flag *f = SNAP_FLAG(s, i);
	if (f && f->f_key.len == h->len) {
		const char *k = snap_str(s, f->f_key);
		if (k && memcmp(k, h->key, h->len) == 0)
			return i;
	}
	int64_t found = snap_find(s, h->key, h->len);
	if (found >= 0)
		__atomic_store_n(&h->hint, (uint32_t)found, __ATOMIC_RELAXED);
	return found;
}

/* As flagshm_evaluate_handle, without counting; *FLAG gets the index. */
static int handle_eval(const flagshm_view *v, flagshm_handle *h, const flagshm_ctx *ctx,
		       flagshm_result *out, uint32_t *flag)
{
	*flag = COUNT_UNKNOWN;
	if (!v->snap) {
		eval_error(out, FLAGSHM_CODE_STORE_UNAVAILABLE, 0);
		return FLAGSHM_EUNAVAIL;
	}
	const snap *s = v->snap;
	if (!h || h->magic != HANDLE_MAGIC) {
		eval_error(out, FLAGSHM_CODE_FLAG_NOT_FOUND, s->generation);
		return FLAGSHM_EINVAL;
	}
	int64_t i = handle_find(s, h);
	if (i < 0) {
		eval_error(out, FLAGSHM_CODE_FLAG_NOT_FOUND, s->generation);
		return FLAGSHM_ENOTFOUND;
	}
	*flag = (uint32_t)i;
	return eval_flag(s, (uint32_t)i, ctx, out);
}

FLAGSHM_API int flagshm_evaluate_handle(const flagshm_view *v, flagshm_handle *h,
					const flagshm_ctx *ctx, flagshm_result *out)
{
	if (!out)
		return FLAGSHM_EINVAL;
	if (!v || v->magic != VIEW_MAGIC) {
		eval_error(out, FLAGSHM_CODE_STORE_UNAVAILABLE, 0);
		return FLAGSHM_EINVAL;
	}
	uint32_t flag;
	int rc = handle_eval(v, h, ctx, out, &flag);
	count_eval(v, h && h->magic == HANDLE_MAGIC ? h->key : NULL, flag, ctx, out);
	return rc;
}

FLAGSHM_API bool flagshm_view_bool_handle(const flagshm_view *v, flagshm_handle *h,
					  const flagshm_ctx *ctx, bool fallback)
{
	flagshm_result r;
	if (!v || v->magic != VIEW_MAGIC)
		return fallback;
	uint32_t flag;
	int rc = handle_eval(v, h, ctx, &r, &flag);
	if (rc == 0 && r.type != FLAGSHM_TYPE_BOOL) {
		eval_error(&r, FLAGSHM_CODE_TYPE_MISMATCH, r.generation);
		rc = FLAGSHM_EINVAL;
	}
	count_eval(v, h && h->magic == HANDLE_MAGIC ? h->key : NULL, flag, ctx, &r);
	return rc ? fallback : r.value.b;
}

FLAGSHM_API bool flagshm_bool_handle(flagshm_store *s, flagshm_handle *h,
				     const flagshm_ctx *ctx, bool fallback)
{
	flagshm_view v;
	if (flagshm_view_acquire(s, &v))
		return fallback;
	bool b = flagshm_view_bool_handle(&v, h, ctx, fallback);
	flagshm_view_release(&v);
	return b;
}
