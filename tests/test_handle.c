/* Pre-resolved flag handles: same results as a lookup by key, and still
 * right after a new generation moves the flag or removes it. */
#include "helpers.h"
#include "store.h"

#include <criterion/criterion.h>
#include <stdio.h>

static flagshm_view view_of(const snap *s)
{
	flagshm_view v = {.magic = VIEW_MAGIC, .store = NULL, .snap = s,
			  .generation = s->generation};
	return v;
}

Test(handle, same_result_as_key_lookup)
{
	snap *s = th_snap("{'formatVersion':1,'flags':["
			  "{'key':'a','defaultValue':true},"
			  "{'key':'b','defaultValue':false,'offValue':true,'enabled':false},"
			  "{'key':'c','defaultValue':true,'rolloutPercentage':50}]}", NULL);
	flagshm_view v = view_of(s);
	flagshm_ctx ctx;
	flagshm_ctx_init(&ctx);
	char id[32];
	/* One handle per key for the whole loop: after the first lookup every
	 * evaluation goes through the remembered index. */
	const char *keys[] = {"a", "b", "c"};
	flagshm_handle hs[3];
	for (int k = 0; k < 3; k++)
		cr_assert_eq(flagshm_handle_init(&hs[k], keys[k]), 0);
	for (int i = 0; i < 200; i++) {
		snprintf(id, sizeof id, "u-%d", i);
		flagshm_ctx_string(&ctx, "userId", id);
		for (int k = 0; k < 3; k++) {
			flagshm_handle *hp = &hs[k];
			flagshm_result byh, byk;
			cr_assert_eq(flagshm_evaluate_handle(&v, hp, &ctx, &byh),
				     flagshm_evaluate(&v, keys[k], &ctx, &byk));
			/* The remembered index is the flag's own. */
			int64_t at = snap_find(s, keys[k], 1);
			cr_assert_eq((int64_t)hp->hint, at, "%s: hint %u, index %lld", keys[k],
				     hp->hint, (long long)at);
			cr_assert_eq(byh.value.b, byk.value.b, "%s for %s: %d vs %d", keys[k], id,
				     byh.value.b, byk.value.b);
			cr_assert_eq(byh.reason, byk.reason);
		}
	}
	th_snap_free(s);
}

Test(handle, follows_a_flag_that_moved_or_went)
{
	snap *s1 = th_snap("{'formatVersion':1,'flags':[{'key':'x','defaultValue':1,'offValue':0},"
			   "{'key':'hot','defaultValue':true}]}", NULL);
	snap *s2 = th_snap("{'formatVersion':1,'flags':[{'key':'hot','defaultValue':false,"
			   "'offValue':false},{'key':'y','defaultValue':2,'offValue':0},{'key':'z','defaultValue':3,'offValue':0}]}",
			   NULL);
	snap *s3 = th_snap("{'formatVersion':1,'flags':[{'key':'other','defaultValue':true}]}", NULL);
	flagshm_handle h;
	cr_assert_eq(flagshm_handle_init(&h, "hot"), 0);
	flagshm_view v1 = view_of(s1), v2 = view_of(s2), v3 = view_of(s3);
	cr_assert_eq(flagshm_view_bool_handle(&v1, &h, NULL, false), true);
	cr_assert_eq((int64_t)h.hint, snap_find(s1, "hot", 3));
	/* A stale hint pointing at another flag is not trusted: a hint that
	 * names the wrong flag ("x" in s1) still finds "hot". */
	h.hint = (uint32_t)snap_find(s1, "x", 1);
	cr_assert_eq(flagshm_view_bool_handle(&v1, &h, NULL, false), true);
	cr_assert_eq(flagshm_view_bool_handle(&v2, &h, NULL, true), false);
	cr_assert_eq((int64_t)h.hint, snap_find(s2, "hot", 3), "the hint follows the move");
	cr_assert_eq(flagshm_view_bool_handle(&v1, &h, NULL, false), true);
	flagshm_result r;
	cr_assert_eq(flagshm_evaluate_handle(&v3, &h, NULL, &r), FLAGSHM_ENOTFOUND);
	cr_assert_eq(r.error_code, FLAGSHM_CODE_FLAG_NOT_FOUND);
	th_snap_free(s1);
	th_snap_free(s2);
	th_snap_free(s3);
}

Test(handle, bad_arguments)
{
	flagshm_handle h;
	cr_assert_eq(flagshm_handle_init(&h, ""), FLAGSHM_EINVAL);
	cr_assert_eq(flagshm_handle_init(NULL, "k"), FLAGSHM_EINVAL);
	flagshm_result r;
	flagshm_view none = {0};
	cr_assert_eq(flagshm_handle_init(&h, "k"), 0);
	cr_assert_eq(flagshm_evaluate_handle(&none, &h, NULL, &r), FLAGSHM_EINVAL);
	cr_assert_eq(r.error_code, FLAGSHM_CODE_STORE_UNAVAILABLE);
	cr_assert_eq(flagshm_view_bool_handle(&none, &h, NULL, true), true);
}
