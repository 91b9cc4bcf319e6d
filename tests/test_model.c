/*
 * tests/test_model.c - stream events applied to the writer's document
 * (writer/sync/model.h): each kind of event changes what it should; an event
 * that would leave the document invalid is rejected with its reason and
 * leaves the model exactly as it was.
 */
#include <criterion/criterion.h>

#include "flagshm.h"
#include "model.h"

#include <stdlib.h>
#include <string.h>

static const char base_doc[] =
	"{\"formatVersion\": 1,"
	" \"segments\": {\"beta\": {\"included\": [\"u-1\"]}},"
	" \"flags\": ["
	"  {\"key\": \"payments-v2\", \"defaultValue\": true},"
	"  {\"key\": \"new-checkout\", \"defaultValue\": true,"
	"   \"prerequisites\": [{\"key\": \"payments-v2\", \"value\": true}]},"
	"  {\"key\": \"beta-banner\", \"defaultValue\": false,"
	"   \"targeting\": [{\"id\": \"b\", \"segments\": [\"beta\"], \"variation\": true}]}"
	" ]}";

typedef struct fixture {
	ws_model m;
	wc_errors errs;
	wc_snapshot snap;
} fixture;

static int apply(fixture *f, const char *type, const char *data)
{
	wc_snapshot_free(&f->snap);
	memset(&f->snap, 0, sizeof f->snap);
	wc_errors_free(&f->errs);
	return ws_model_apply(&f->m, type, data, strlen(data), "test event", &f->snap, &f->errs);
}

static char *joined(const wc_errors *e)
{
	static char buf[4096];
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < e->n && n < sizeof buf - 1; i++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\n", e->msg[i]);
	return buf;
}

static void setup_fixture(fixture *f)
{
	memset(f, 0, sizeof *f);
	cr_assert_eq(ws_model_init(&f->m, NULL, NULL), 0);
	cr_assert_eq(apply(f, "put", base_doc), 0, "put: %s", joined(&f->errs));
	cr_assert_eq(f->snap.nflags, 3);
}

static void teardown_fixture(fixture *f)
{
	wc_snapshot_free(&f->snap);
	wc_errors_free(&f->errs);
	ws_model_free(&f->m);
}

static json_t *flag(const ws_model *m, const char *key)
{
	json_t *flags = json_object_get(m->doc, "flags");
	for (size_t i = 0; i < json_array_size(flags); i++) {
		json_t *fl = json_array_get(flags, i);
		if (strcmp(json_string_value(json_object_get(fl, "key")), key) == 0)
			return fl;
	}
	return NULL;
}

/* Apply an event that must be rejected; the model must not change. */
static void assert_rejected(fixture *f, const char *type, const char *data, const char *reason)
{
	json_t *before = f->m.doc;
	char *dump = json_dumps(before, JSON_SORT_KEYS);
	char *after;

	json_incref(before);
	cr_assert_eq(apply(f, type, data), FLAGSHM_EINVAL, "%s %s was not rejected", type, data);
	cr_assert(strstr(joined(&f->errs), reason), "reason \"%s\" not in:\n%s", reason,
		  joined(&f->errs));
	cr_assert_eq(f->m.doc, before, "the model's document was replaced");
	after = json_dumps(f->m.doc, JSON_SORT_KEYS);
	cr_assert_str_eq(after, dump, "the model's document was changed");
	cr_assert_null(f->snap.bytes, "a snapshot came out of a rejected event");
	free(dump);
	free(after);
	json_decref(before);
}

Test(model, put_sets_the_document_and_yields_its_snapshot)
{
	fixture f;
	setup_fixture(&f);
	cr_assert_not_null(f.snap.bytes);
	cr_assert_gt(f.snap.size, 0);
	cr_assert_not_null(flag(&f.m, "new-checkout"));
	teardown_fixture(&f);
}

Test(model, flag_updated_replaces_by_key_and_appends_new_keys)
{
	fixture f;
	setup_fixture(&f);
	cr_assert_eq(apply(&f, "flag-updated", "{\"key\": \"payments-v2\", \"defaultValue\": true, \"version\": 2}"), 0,
		     "%s", joined(&f.errs));
	cr_assert_eq(json_integer_value(json_object_get(flag(&f.m, "payments-v2"), "version")), 2);
	cr_assert_eq(f.snap.nflags, 3);
	cr_assert_eq(apply(&f, "flag-updated", "{\"key\": \"fresh\", \"defaultValue\": \"x\", \"offValue\": \"y\"}"), 0,
		     "%s", joined(&f.errs));
	cr_assert_eq(f.snap.nflags, 4);
	cr_assert_not_null(flag(&f.m, "fresh"));
	/* order is kept: the replaced flag stays first */
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(f.m.doc, "flags"), 0), "key")),
			 "payments-v2");
	teardown_fixture(&f);
}

Test(model, an_equal_flag_changes_nothing)
{
	fixture f;
	setup_fixture(&f);
	cr_assert_eq(apply(&f, "flag-updated", "{\"key\": \"payments-v2\", \"defaultValue\": true}"),
		     WS_MODEL_UNCHANGED);
	cr_assert_null(f.snap.bytes);
	cr_assert_eq(apply(&f, "put", base_doc), WS_MODEL_UNCHANGED);
	teardown_fixture(&f);
}

Test(model, flag_deleted_removes_and_deleting_a_missing_flag_changes_nothing)
{
	fixture f;
	setup_fixture(&f);
	cr_assert_eq(apply(&f, "flag-deleted", "{\"key\": \"beta-banner\"}"), 0, "%s", joined(&f.errs));
	cr_assert_null(flag(&f.m, "beta-banner"));
	cr_assert_eq(f.snap.nflags, 2);
	cr_assert_eq(apply(&f, "flag-deleted", "{\"key\": \"beta-banner\"}"), WS_MODEL_UNCHANGED);
	teardown_fixture(&f);
}

Test(model, deleting_a_prerequisite_is_rejected_and_changes_nothing)
{
	fixture f;
	setup_fixture(&f);
	assert_rejected(&f, "flag-deleted", "{\"key\": \"payments-v2\"}", "payments-v2");
	cr_assert_eq(f.m.rejected, 1);
	/* the model stays in sync for later events */
	cr_assert_eq(apply(&f, "flag-deleted", "{\"key\": \"new-checkout\"}"), 0, "%s", joined(&f.errs));
	cr_assert_eq(apply(&f, "flag-deleted", "{\"key\": \"payments-v2\"}"), 0, "%s", joined(&f.errs));
	cr_assert_eq(f.snap.nflags, 1);
	teardown_fixture(&f);
}

Test(model, an_invalid_flag_is_rejected_with_the_compilers_reasons)
{
	fixture f;
	setup_fixture(&f);
	assert_rejected(&f, "flag-updated", "{\"key\": \"bad\", \"defaultValue\": true, \"rolloutPercentage\": 140}",
			"rolloutPercentage");
	assert_rejected(&f, "flag-updated", "{\"key\": \"new-checkout\", \"defaultValue\": true,"
			" \"prerequisites\": [{\"key\": \"nope\", \"value\": true}]}", "nope");
	/* a cycle through an update */
	assert_rejected(&f, "flag-updated", "{\"key\": \"payments-v2\", \"defaultValue\": true,"
			" \"prerequisites\": [{\"key\": \"new-checkout\", \"value\": true}]}", "");
	teardown_fixture(&f);
}

Test(model, segment_events_add_replace_and_guard_segments_in_use)
{
	fixture f;
	json_t *segs;
	setup_fixture(&f);
	cr_assert_eq(apply(&f, "segment-updated", "{\"name\": \"staff\", \"segment\": {\"included\": [\"u-7\"]}}"), 0,
		     "%s", joined(&f.errs));
	segs = json_object_get(f.m.doc, "segments");
	cr_assert_not_null(json_object_get(segs, "staff"));
	cr_assert_eq(apply(&f, "segment-updated", "{\"name\": \"beta\", \"segment\": {\"included\": [\"u-2\"]}}"), 0,
		     "%s", joined(&f.errs));
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(
				 json_object_get(json_object_get(f.m.doc, "segments"), "beta"), "included"), 0)),
			 "u-2");
	cr_assert_eq(apply(&f, "segment-updated", "{\"name\": \"beta\", \"segment\": {\"included\": [\"u-2\"]}}"),
		     WS_MODEL_UNCHANGED);
	assert_rejected(&f, "segment-deleted", "{\"name\": \"beta\"}", "beta");
	cr_assert_eq(apply(&f, "segment-deleted", "{\"name\": \"staff\"}"), 0, "%s", joined(&f.errs));
	cr_assert_null(json_object_get(json_object_get(f.m.doc, "segments"), "staff"));
	cr_assert_eq(apply(&f, "segment-deleted", "{\"name\": \"staff\"}"), WS_MODEL_UNCHANGED);
	assert_rejected(&f, "segment-updated", "{\"name\": \"x\", \"segment\": {\"conditions\": [{\"attribute\": \"a\","
			" \"operator\": \"nope\", \"value\": 1}]}}", "nope");
	teardown_fixture(&f);
}

Test(model, malformed_events_are_rejected)
{
	fixture f;
	setup_fixture(&f);
	assert_rejected(&f, "flag-updated", "{\"key\": ", "test event");
	assert_rejected(&f, "flag-updated", "[1, 2]", "string \"key\"");
	assert_rejected(&f, "flag-updated", "{\"name\": \"no key\"}", "string \"key\"");
	assert_rejected(&f, "flag-deleted", "{\"key\": 5}", "{\"key\": K}");
	assert_rejected(&f, "segment-updated", "{\"name\": \"s\"}", "segment-updated");
	assert_rejected(&f, "segment-deleted", "{}", "segment-deleted");
	assert_rejected(&f, "message", "{}", "unknown event type \"message\"");
	assert_rejected(&f, "put", "{\"formatVersion\": 2, \"flags\": []}", "formatVersion");
	assert_rejected(&f, "put", "", "empty");
	teardown_fixture(&f);
}

Test(model, a_delta_before_any_document_is_rejected)
{
	fixture f;
	memset(&f, 0, sizeof f);
	cr_assert_eq(ws_model_init(&f.m, NULL, NULL), 0);
	cr_assert_eq(apply(&f, "flag-updated", "{\"key\": \"a\", \"defaultValue\": true}"), FLAGSHM_EINVAL);
	cr_assert(strstr(joined(&f.errs), "before any whole document"));
	cr_assert_null(f.m.doc);
	teardown_fixture(&f);
}

Test(model, a_bare_array_document_takes_flag_and_segment_events)
{
	fixture f;
	memset(&f, 0, sizeof f);
	cr_assert_eq(ws_model_init(&f.m, NULL, NULL), 0);
	cr_assert_eq(apply(&f, "put", "[{\"key\": \"a\", \"defaultValue\": true}]"), 0, "%s", joined(&f.errs));
	cr_assert_eq(apply(&f, "flag-updated", "{\"key\": \"b\", \"defaultValue\": false}"), 0, "%s", joined(&f.errs));
	cr_assert(json_is_array(f.m.doc));
	cr_assert_eq(json_array_size(f.m.doc), 2);
	cr_assert_eq(apply(&f, "segment-updated", "{\"name\": \"s\", \"segment\": {\"included\": [\"u\"]}}"), 0,
		     "%s", joined(&f.errs));
	cr_assert(json_is_object(f.m.doc));
	cr_assert_eq(json_integer_value(json_object_get(f.m.doc, "formatVersion")), 1);
	cr_assert_eq(json_array_size(json_object_get(f.m.doc, "flags")), 2);
	teardown_fixture(&f);
}

Test(model, an_applied_event_leaves_the_previous_document_untouched)
{
	fixture f;
	json_t *old;
	char *before, *after;

	setup_fixture(&f);
	old = json_incref(f.m.doc);
	before = json_dumps(old, JSON_SORT_KEYS);
	cr_assert_eq(apply(&f, "flag-updated", "{\"key\": \"payments-v2\", \"defaultValue\": false}"), 0,
		     "%s", joined(&f.errs));
	cr_assert_eq(apply(&f, "segment-updated", "{\"name\": \"beta\", \"segment\": {\"included\": []}}"), 0,
		     "%s", joined(&f.errs));
	after = json_dumps(old, JSON_SORT_KEYS);
	cr_assert_str_eq(after, before);
	free(before);
	free(after);
	json_decref(old);
	teardown_fixture(&f);
}

Test(model, set_takes_a_whole_document_and_refuses_an_invalid_one)
{
	fixture f;
	json_t *doc = json_loads("{\"formatVersion\": 1, \"flags\": [{\"key\": \"only\", \"defaultValue\": 1, \"offValue\": 0}]}", 0, NULL);
	json_t *bad = json_loads("{\"formatVersion\": 1, \"flags\": [{\"key\": \"only\"}]}", 0, NULL);

	setup_fixture(&f);
	wc_snapshot_free(&f.snap);
	memset(&f.snap, 0, sizeof f.snap);
	cr_assert_eq(ws_model_set(&f.m, doc, "poll", &f.snap, &f.errs), 0, "%s", joined(&f.errs));
	cr_assert_eq(f.snap.nflags, 1);
	cr_assert_eq(ws_model_set(&f.m, doc, "poll", NULL, &f.errs), WS_MODEL_UNCHANGED);
	cr_assert_eq(ws_model_set(&f.m, bad, "poll", NULL, &f.errs), FLAGSHM_EINVAL);
	cr_assert(json_equal(f.m.doc, doc));
	json_decref(doc);
	json_decref(bad);
	teardown_fixture(&f);
}
