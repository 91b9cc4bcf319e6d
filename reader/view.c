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
	v->magic = 0;
	v->snap = NULL;
	v->pin_ = NULL;
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
	if (!key) {
		eval_error(out, FLAGSHM_CODE_FLAG_NOT_FOUND, v->generation);
		return FLAGSHM_EINVAL;
	}
	if (!v->snap) {
		eval_error(out, FLAGSHM_CODE_STORE_UNAVAILABLE, 0);
		out->stale = v->stale;
		return FLAGSHM_EUNAVAIL;
	}
	int rc = eval_key(v->snap, key, ctx, out);
	out->stale = v->stale;
	return rc;
}

/* Evaluate and check the flag's type: a typed call on a flag of another
 * type is TYPE_MISMATCH. 0 when OUT holds a value of type WANT. */
static int eval_typed(const flagshm_view *v, const char *key, const flagshm_ctx *ctx,
		      flagshm_type want, flagshm_result *out)
{
	int rc = flagshm_evaluate(v, key, ctx, out);
	if (rc)
		return rc;
	if (out->type != want) {
		eval_error(out, FLAGSHM_CODE_TYPE_MISMATCH, out->generation);
		out->stale = v->stale;
		return FLAGSHM_EINVAL;
	}
	return 0;
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
