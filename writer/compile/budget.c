/*
 * writer/compile/budget.c - the parse budget of budget.h.
 *
 * jansson takes one allocator for the whole process
 * (json_set_alloc_funcs); ours is installed once and counts only while a
 * thread has a budget in force, so jansson used elsewhere (the compiler,
 * the tests) is unaffected. Frees go to free() unchanged, which is why the
 * count is gross: nothing needs a size header, and memory allocated before
 * the hook was installed frees as usual.
 */
#include "budget.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

static _Thread_local wc_budget *json_budget;

static bool take(wc_budget *b, size_t n)
{
	if (b->hit || n > b->limit - b->used) {
		b->hit = true;
		return false;
	}
	b->used += n;
	return true;
}

static void *pb_alloc(void *ud, size_t n)
{
	return take(ud, n) ? malloc(n) : NULL;
}

static void pb_free(void *ud, void *p)
{
	(void)ud;
	free(p);
}

static void *json_alloc(size_t n)
{
	wc_budget *b = json_budget;
	return !b || take(b, n) ? malloc(n) : NULL;
}

void wc_budget_init(wc_budget *b, size_t len, size_t factor, size_t max_doc_bytes)
{
	size_t cap = max_doc_bytes > SIZE_MAX / WC_BUDGET_DOC ? SIZE_MAX
							      : max_doc_bytes * WC_BUDGET_DOC;

	b->limit = len > (SIZE_MAX - WC_BUDGET_FLOOR) / factor ? SIZE_MAX
							       : len * factor + WC_BUDGET_FLOOR;
	if (b->limit > cap)
		b->limit = cap;
	b->used = 0;
	b->hit = false;
	b->pb.alloc = pb_alloc;
	b->pb.free = pb_free;
	b->pb.allocator_data = b;
}

void wc_budget_json(wc_budget *b)
{
	static bool installed;

	if (!installed) {
		json_set_alloc_funcs(json_alloc, free);
		installed = true;
	}
	json_budget = b;
}
