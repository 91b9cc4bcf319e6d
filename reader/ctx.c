/*
 * reader/ctx.c - the context builder of flagshm.h. The context lives on the
 * caller's stack and borrows every string: nothing here allocates.
 */
#include "flagshm.h"

#include <string.h>

FLAGSHM_API void flagshm_ctx_init(flagshm_ctx *c)
{
	if (c)
		c->n = 0;
}

/* The slot for NAME: the existing attribute of that name (set replaces), or
 * a fresh one at the end. NULL when the context is full. */
static flagshm_attr *slot(flagshm_ctx *c, const char *name)
{
	unsigned n = c->n < FLAGSHM_CTX_MAX ? c->n : FLAGSHM_CTX_MAX;
	for (unsigned i = 0; i < n; i++)
		if (strcmp(c->attrs[i].name, name) == 0)
			return &c->attrs[i];
	if (n == FLAGSHM_CTX_MAX)
		return NULL;
	c->n = n + 1;
	c->attrs[n].name = name;
	size_t len = strlen(name);
	c->attrs[n].name_len = len < UINT32_MAX ? (uint32_t)len : 0;
	return &c->attrs[n];
}

#define SLOT_OR_FAIL(a, c, name)                                               \
	if (!(c) || !(name))                                                   \
		return FLAGSHM_EINVAL;                                         \
	flagshm_attr *a = slot((c), (name));                                   \
	if (!a)                                                                \
		return FLAGSHM_EFULL

FLAGSHM_API int flagshm_ctx_string(flagshm_ctx *c, const char *name, const char *value)
{
	if (!value)
		return FLAGSHM_EINVAL;
	SLOT_OR_FAIL(a, c, name);
	a->type = FLAGSHM_ATTR_STRING;
	a->u.str.ptr = value;
	a->u.str.len = strlen(value);
	return 0;
}

FLAGSHM_API int flagshm_ctx_number(flagshm_ctx *c, const char *name, double value)
{
	SLOT_OR_FAIL(a, c, name);
	a->type = FLAGSHM_ATTR_NUMBER;
	a->u.num = value;
	return 0;
}

FLAGSHM_API int flagshm_ctx_bool(flagshm_ctx *c, const char *name, bool value)
{
	SLOT_OR_FAIL(a, c, name);
	a->type = FLAGSHM_ATTR_BOOL;
	a->u.b = value;
	return 0;
}

FLAGSHM_API int flagshm_ctx_list(flagshm_ctx *c, const char *name,
				 const char *const *items, size_t n)
{
	if (!items && n)
		return FLAGSHM_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!items[i])
			return FLAGSHM_EINVAL;
	SLOT_OR_FAIL(a, c, name);
	a->type = FLAGSHM_ATTR_LIST;
	a->u.list.items = items;
	a->u.list.n = n;
	return 0;
}
