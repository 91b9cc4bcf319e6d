/*
 * reader/inspect.c - see inspect.h. view.c keeps the validated struct snap
 * of the pinned generation in the public view's opaque `snap` member; this
 * is the one place outside the library's evaluation code that names it.
 */
#include "inspect.h"
#include "store.h"

const snap *flagshm_view_inspect(const flagshm_view *v)
{
	if (!v || v->magic != VIEW_MAGIC)
		return NULL;
	return (const snap *)v->snap;
}

int flagshm_view_verify(const flagshm_view *v, char *err, size_t errlen)
{
	const snap *s = flagshm_view_inspect(v);
	if (!s)
		return FLAGSHM_EUNAVAIL;
	/* The lazily filled parts of the map are its own memory, filled
	 * under their own rules (atomics, the regex lock). */
	return snap_verify((snap *)s, err, errlen);
}
