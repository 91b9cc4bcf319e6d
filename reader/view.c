/*
 * reader/view.c - views (one pinned generation per request), evaluation,
 * and the typed shortcuts of flagshm.h.
 *
 * A view is the map that was current when it began, pinned by a hazard
 * slot of the acquiring thread (store_pin). Acquire first follows the
 * writer if the generation moved, also when the thread already holds a
 * view: nested views may then see a newer generation than the outer one,
 * each being whole. The outer view's map stays mapped until its own
 * release, because a pinned map is never freed.
 */
#include "store.h"
#include "eval.h"
#include "count.h"
#include "flagshm.h"

#include <string.h>

FLAGSHM_API int flagshm_view_acquire(flagshm_store *s, flagshm_view *v)
{
	if (!v)
		return FLAGSHM_EINVAL;
	if (!s || s->magic != STORE_MAGIC) {
		memset(v, 0, sizeof *v);
		return FLAGSHM_EINVAL;
	}
	store_map *m = store_pin(s, &v->pin_);
	v->magic = VIEW_MAGIC;
	v->store = s;
	v->snap = m ? &m->snap : NULL;
	v->generation = m ? m->generation : 0;
	v->stale = store_stale(s);
	count_view_begin(v);
	return 0;
}

FLAGSHM_API void flagshm_view_release(flagshm_view *v)
{
	if (!v || v->magic != VIEW_MAGIC)
		return; /* never acquired, or released twice: nothing to unpin */
	if (!store_unpin(v->pin_)) {
		/* Released on another thread than the one that acquired it:
		 * that thread's slot is not ours to clear. The view stays
		 * valid (and its snapshot mapped) until the acquiring thread
		 * exits; say so, since it is a caller's bug. */
		flagshm_store *s = v->store;
		if (s && s->magic == STORE_MAGIC && s->log)
			s->log(s->log_ud, "flagshm_view_release: the view was acquired on another "
					  "thread; refused (release a view on its own thread)");
		return;
	}
	count_view_end(v);
	v->magic = 0;
	v->snap = NULL;
	v->pin_ = NULL;
}

/* Evaluate KEY in V (a checked view) without counting; *FLAG gets its
 * index, or COUNT_UNKNOWN. */
static int view_eval(const flagshm_view *v, const char *key, const flagshm_ctx *ctx,
		     flagshm_result *out, uint32_t *flag)
{
	*flag = COUNT_UNKNOWN;
	if (!key) {
		eval_error(out, FLAGSHM_CODE_FLAG_NOT_FOUND, v->generation);
		return FLAGSHM_EINVAL;
	}
	if (!v->snap) {
		eval_error(out, FLAGSHM_CODE_STORE_UNAVAILABLE, 0);
		out->stale = v->stale;
		return FLAGSHM_EUNAVAIL;
	}
	const snap *sn = v->snap;
	int64_t i = snap_find(sn, key, strlen(key));
	if (i < 0) {
		eval_error(out, FLAGSHM_CODE_FLAG_NOT_FOUND, sn->generation);
		out->stale = v->stale;
		return FLAGSHM_ENOTFOUND;
	}
	*flag = (uint32_t)i;
	int rc = eval_flag(sn, (uint32_t)i, ctx, out);
	out->stale = v->stale;
	return rc;
}

FLAGSHM_API int flagshm_evaluate(const flagshm_view *v, const char *key,
				 const flagshm_ctx *ctx, flagshm_result *out)
{
	if (!out)
		return FLAGSHM_EINVAL;
	if (!v || v->magic != VIEW_MAGIC) {
		eval_error(out, FLAGSHM_CODE_STORE_UNAVAILABLE, 0);
		return FLAGSHM_EINVAL;
	}
	uint32_t flag;
	int rc = view_eval(v, key, ctx, out, &flag);
	count_eval(v, key, flag, ctx, out);
	return rc;
}

/* Evaluate and check the flag's type: a typed call on a flag of another
 * type is TYPE_MISMATCH. 0 when OUT holds a value of type WANT. Counted
 * once, with the answer the caller gets. */
static int eval_typed(const flagshm_view *v, const char *key, const flagshm_ctx *ctx,
		      flagshm_type want, flagshm_result *out)
{
	if (!v || v->magic != VIEW_MAGIC) {
		eval_error(out, FLAGSHM_CODE_STORE_UNAVAILABLE, 0);
		return FLAGSHM_EINVAL;
	}
	uint32_t flag;
	int rc = view_eval(v, key, ctx, out, &flag);
	if (rc == 0 && out->type != want) {
		eval_error(out, FLAGSHM_CODE_TYPE_MISMATCH, out->generation);
		out->stale = v->stale;
		rc = FLAGSHM_EINVAL;
	}
	count_eval(v, key, flag, ctx, out);
	return rc;
}

FLAGSHM_API int flagshm_view_outcome(const flagshm_view *v, bool ok, double seconds)
{
	if (!v || v->magic != VIEW_MAGIC)
		return FLAGSHM_EINVAL;
	return count_outcome(v, ok, seconds);
}

FLAGSHM_API int flagshm_view_flags_json(const flagshm_view *v, char *buf, size_t len)
{
	if (!v || v->magic != VIEW_MAGIC || !buf || len < 3)
		return FLAGSHM_EINVAL;
	return count_flags_json(v, buf, len);
}

FLAGSHM_API bool flagshm_view_bool_detail(const flagshm_view *v, const char *key,
					  const flagshm_ctx *ctx, bool fallback,
					  flagshm_result *out)
{
	flagshm_result r;
	if (!out)
		out = &r;
	if (eval_typed(v, key, ctx, FLAGSHM_TYPE_BOOL, out))
		return fallback;
	return out->value.b;
}

FLAGSHM_API bool flagshm_view_bool(const flagshm_view *v, const char *key,
				   const flagshm_ctx *ctx, bool fallback)
{
	return flagshm_view_bool_detail(v, key, ctx, fallback, NULL);
}

FLAGSHM_API double flagshm_view_number(const flagshm_view *v, const char *key,
				       const flagshm_ctx *ctx, double fallback)
{
	flagshm_result r;
	if (eval_typed(v, key, ctx, FLAGSHM_TYPE_NUMBER, &r))
		return fallback;
	return r.value.num;
}

FLAGSHM_API const char *flagshm_view_string(const flagshm_view *v, const char *key,
					    const flagshm_ctx *ctx, const char *fallback)
{
	flagshm_result r;
	if (eval_typed(v, key, ctx, FLAGSHM_TYPE_STRING, &r))
		return fallback;
	return r.value.str.ptr;
}

FLAGSHM_API const char *flagshm_view_json(const flagshm_view *v, const char *key,
					  const flagshm_ctx *ctx, const char *fallback)
{
	flagshm_result r;
	if (eval_typed(v, key, ctx, FLAGSHM_TYPE_JSON, &r))
		return fallback;
	return r.value.str.ptr;
}

/* ------------------------------------------------------ store-level calls */

FLAGSHM_API bool flagshm_bool(flagshm_store *s, const char *key, const flagshm_ctx *ctx,
			      bool fallback)
{
	flagshm_view v;
	if (flagshm_view_acquire(s, &v))
		return fallback;
	bool b = flagshm_view_bool(&v, key, ctx, fallback);
	flagshm_view_release(&v);
	return b;
}

FLAGSHM_API double flagshm_number(flagshm_store *s, const char *key, const flagshm_ctx *ctx,
				  double fallback)
{
	flagshm_view v;
	if (flagshm_view_acquire(s, &v))
		return fallback;
	double d = flagshm_view_number(&v, key, ctx, fallback);
	flagshm_view_release(&v);
	return d;
}

/* The view's string copied into BUF before the view (and with it the
 * mapping the string lives in) is released. */
static const char *copy_out(flagshm_store *s, const char *key, const flagshm_ctx *ctx,
			    const char *fallback, char *buf, size_t buflen, flagshm_type want)
{
	flagshm_view v;
	flagshm_result r;
	if (!buf || !buflen || flagshm_view_acquire(s, &v))
		return fallback;
	const char *res = fallback;
	if (eval_typed(&v, key, ctx, want, &r) == 0 && r.value.str.ptr &&
	    r.value.str.len < buflen) {
		memcpy(buf, r.value.str.ptr, r.value.str.len);
		buf[r.value.str.len] = '\0';
		res = buf;
	}
	flagshm_view_release(&v);
	return res;
}

FLAGSHM_API const char *flagshm_string(flagshm_store *s, const char *key,
				       const flagshm_ctx *ctx, const char *fallback,
				       char *buf, size_t buflen)
{
	return copy_out(s, key, ctx, fallback, buf, buflen, FLAGSHM_TYPE_STRING);
}

FLAGSHM_API const char *flagshm_json(flagshm_store *s, const char *key,
				     const flagshm_ctx *ctx, const char *fallback,
				     char *buf, size_t buflen)
{
	return copy_out(s, key, ctx, fallback, buf, buflen, FLAGSHM_TYPE_JSON);
}
