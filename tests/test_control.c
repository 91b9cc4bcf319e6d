/*
 * tests/test_control.c - flagshm-control against real etcd members
 * (control_proc.h): every status of the API, roles, tokens, audit
 * completeness, the lost-update race, SSE resume and compaction, a real
 * flagshm-writer syncing through it, failover of etcd members and of
 * control-plane instances, and etcd down.
 */
#include "control_proc.h"
#include "writer_proc.h"
#include "shm.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static struct {
	tc_etcd e;
	tc_control c;
	char *body, *hdrs;
	char dir[64], store[64], keyfile[128], log[128], state[128];
	pid_t writer;
	flagshm_store *rd;
} F;

static void setup_n(int members, const char *const *extra)
{
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_ALL);
	memset(&F, 0, sizeof F);
	F.writer = -1;
	cr_assert_eq(tc_etcd_start(&F.e, members), 0, "cannot start %d etcd member(s) (etcd-server)",
		     members);
	if (extra != (const char *const *)-1)
		cr_assert_eq(tc_control_start(&F.c, F.e.urls, 0, extra), 0,
			     "flagshm-control did not start");
	snprintf(F.dir, sizeof F.dir, "/tmp/flagshm-ctltest-XXXXXX");
	cr_assert_not_null(mkdtemp(F.dir));
	snprintf(F.store, sizeof F.store, "ctl%d", (int)getpid());
	snprintf(F.keyfile, sizeof F.keyfile, "%s/key", F.dir);
	snprintf(F.log, sizeof F.log, "%s/writer.log", F.dir);
	snprintf(F.state, sizeof F.state, "%s/state", F.dir);
}

static void setup(void)
{
	setup_n(1, NULL);
}

static void teardown(void)
{
	char err[256];
	if (F.writer > 0)
		wp_stop(F.writer, 5000);
	flagshm_close(&F.rd);
	shm_store_remove(F.store, err, sizeof err);
	if (F.c.pid > 0) {
		char *log = wp_read_file(F.c.log, NULL);
		cr_expect_eq(tc_control_stop(&F.c, false), 0, "flagshm-control did not stop cleanly");
		cr_expect(!log || !strstr(log, F.c.admin), "a token appears in the log:\n%s", log);
		cr_expect(!log || !strstr(log, "Sanitizer"), "sanitizer report:\n%s", log);
		free(log);
	}
	tc_etcd_stop(&F.e);
	free(F.body);
	free(F.hdrs);
	if (!getenv("FLAGSHM_KEEP_LOGS")) {
		wp_rmdir(F.dir);
		if (F.c.dir[0])
			wp_rmdir(F.c.dir);
	}
}

TestSuite(control, .init = setup, .fini = teardown, .timeout = 60);

/* METHOD PATH on the instance at URL with TOKEN, BODY and headers (a
 * NULL-ended list after BODY). Returns the status; F.body/F.hdrs hold the
 * answer. */
static int call_at(const char *base, const char *method, const char *path, const char *token,
		   const char *body, ...)
{
	const char *h[16];
	char url[512];
	size_t n = 0;
	va_list ap;

	va_start(ap, body);
	for (const char *x; (x = va_arg(ap, const char *)) && n < 15;)
		h[n++] = x;
	va_end(ap);
	h[n] = NULL;
	snprintf(url, sizeof url, "%s%s", base, path);
	free(F.body);
	free(F.hdrs);
	return tc_http(method, url, token, h, body, &F.body, &F.hdrs);
}
#define call(...) call_at(F.c.url, __VA_ARGS__)
#define REASON "X-Flagshm-Reason: test"

static json_t *body_json(void)
{
	json_t *j = json_loads(F.body, 0, NULL);
	cr_assert_not_null(j, "not JSON: %s", F.body);
	return j;
}

/* A new token of ROLE named NAME (malloc'd). */
static char *mk_token(const char *name, const char *role)
{
	char b[256];
	snprintf(b, sizeof b, "{\"name\":\"%s\",\"role\":\"%s\"}", name, role);
	cr_assert_eq(call("POST", "/api/v1/tokens", F.c.admin, b, REASON, NULL), 201, "%s", F.body);
	json_t *j = body_json();
	char *t = strdup(json_string_value(json_object_get(j, "token")));
	json_decref(j);
	return t;
}

static int create_flag(const char *key, const char *json)
{
	char p[200];
	snprintf(p, sizeof p, "/api/v1/flags/%s", key);
	return call("PUT", p, F.c.admin, json, REASON, "If-None-Match: *", NULL);
}

static const char *err_code(void)
{
	static char code[64];
	json_t *j = json_loads(F.body, 0, NULL);
	snprintf(code, sizeof code, "%s",
		 json_string_value(json_object_get(json_object_get(j, "error"), "code")) ?: "");
	json_decref(j);
	return code;
}

/* -------------------------------------------------------------- statuses */

Test(control, every_status_of_a_flag_write)
{
	const char *A = F.c.admin;

	cr_expect_eq(call("GET", "/api/v1/flags", NULL, NULL, NULL), 401);
	cr_expect_eq(call("GET", "/api/v1/flags", "fsh_wrong_token_0000000", NULL, NULL), 401);
	cr_expect_eq(call("PUT", "/api/v1/flags/f1", A, "{\"defaultValue\":true}",
			  "If-None-Match: *", NULL), 400);
	cr_expect_str_eq(err_code(), "reason_required");
	cr_expect_eq(call("PUT", "/api/v1/flags/f1", A, "{\"defaultValue\":true}", REASON, NULL),
		     428, "%s", F.body);
	cr_expect_eq(create_flag("f1", "{\"defaultValue\":true}"), 201, "%s", F.body);
	cr_expect(strstr(F.hdrs, "ETag: \"1\""), "%s", F.hdrs);
	cr_expect_eq(create_flag("f1", "{\"defaultValue\":true}"), 412, "%s", F.body);
	cr_expect_eq(call("PUT", "/api/v1/flags/f1", A, "{\"defaultValue\":false}", REASON, NULL),
		     428);
	cr_expect_eq(call("PUT", "/api/v1/flags/f1", A, "{\"defaultValue\":false}", REASON,
			  "If-Match: \"7\"", NULL), 412);
	json_t *j = body_json();
	json_t *d = json_object_get(json_object_get(j, "error"), "details");
	cr_expect_eq(json_integer_value(json_object_get(d, "currentVersion")), 1, "%s", F.body);
	cr_expect_str_eq(json_string_value(json_object_get(d, "updatedBy")), "bootstrap");
	json_decref(j);
	cr_expect_eq(call("PUT", "/api/v1/flags/f1", A, "{\"defaultValue\":false,\n  oops}",
			  REASON, "If-Match: \"1\"", NULL), 400);
	cr_expect(strstr(F.body, "body:2:"), "no line and column: %s", F.body);
	cr_expect_eq(call("PUT", "/api/v1/flags/f1", A,
			  "{\"defaultValue\":false,\"rolloutPercentage\":150}", REASON,
			  "If-Match: \"1\"", NULL), 422);
	cr_expect(strstr(F.body, "rolloutPercentage: must be between 0 and 100"), "%s", F.body);
	cr_expect_eq(create_flag("f2", "{\"defaultValue\":false,\"targeting\":[{\"id\":\"r\","
				       "\"segments\":[\"nope\"],\"variation\":true}]}"), 422);
	cr_expect(strstr(F.body, "nope"), "the missing segment is not named: %s", F.body);
	cr_expect_eq(create_flag("stream", "{\"defaultValue\":true}"), 422);
	cr_expect_eq(create_flag("bad/key", "{\"defaultValue\":true}"), 422);
	cr_expect_eq(call("GET", "/api/v1/flags/nope", A, NULL, NULL), 404);
	cr_expect_eq(call("PUT", "/api/v1/flags/f1", A, "{\"defaultValue\":false}", REASON,
			  "If-Match: \"1\"", NULL), 200, "%s", F.body);
	cr_expect(strstr(F.hdrs, "ETag: \"2\""), "%s", F.hdrs);
	cr_expect_eq(call("GET", "/api/v1/flags/f1", A, NULL, NULL), 200);
	j = body_json();
	cr_expect_eq(json_integer_value(json_object_get(j, "version")), 2);
	cr_expect(json_is_string(json_object_get(j, "createdAt")));
	cr_expect(json_is_string(json_object_get(j, "updatedAt")));
	json_decref(j);
	cr_expect_eq(call("GET", "/api/v1/flags/f1", A, NULL, "If-None-Match: \"2\"", NULL), 304);
	cr_expect_eq(call("DELETE", "/api/v1/flags/f1", A, NULL, REASON, "If-Match: \"1\"", NULL),
		     412);
	cr_expect_eq(call("DELETE", "/api/v1/flags/f1", A, NULL, REASON, "If-Match: \"2\"", NULL),
		     204, "%s", F.body);
	cr_expect_eq(call("DELETE", "/api/v1/flags/f1", A, NULL, REASON, NULL), 404);
	/* Nothing refused reached etcd: only f1's create, update, delete. */
	cr_expect_eq(call("GET", "/api/v1/audit?key=f1", A, NULL, NULL), 200);
	j = body_json();
	cr_expect_eq(json_array_size(json_object_get(j, "entries")), 3, "%s", F.body);
	json_decref(j);
	cr_expect_eq(call("GET", "/api/v1/audit?key=f2", A, NULL, NULL), 200);
	cr_expect(strstr(F.body, "\"entries\":[]"), "%s", F.body);
}

Test(control, segments_prerequisites_and_conflicts)
{
	const char *A = F.c.admin;

	cr_expect_eq(call("PUT", "/api/v1/segments/beta", A, "{\"included\":[\"u1\"]}", REASON,
			  "If-None-Match: *", NULL), 201, "%s", F.body);
	cr_expect_eq(create_flag("f2", "{\"defaultValue\":false,\"targeting\":[{\"id\":\"r\","
				       "\"segments\":[\"beta\"],\"variation\":true}]}"), 201, "%s",
		     F.body);
	cr_expect_eq(call("DELETE", "/api/v1/segments/beta", A, NULL, REASON, NULL), 409, "%s",
		     F.body);
	cr_expect_str_eq(err_code(), "in_use");
	cr_expect_eq(call("GET", "/api/v1/segments/beta", A, NULL, NULL), 200);
	cr_expect(strstr(F.body, "\"u1\""), "%s", F.body);
	cr_expect_eq(create_flag("base", "{\"defaultValue\":true}"), 201);
	cr_expect_eq(create_flag("dep", "{\"defaultValue\":true,\"prerequisites\":[{\"key\":\"base\","
					"\"value\":true}]}"), 201, "%s", F.body);
	cr_expect_eq(call("DELETE", "/api/v1/flags/base", A, NULL, REASON, NULL), 422, "%s", F.body);
	cr_expect_eq(call("DELETE", "/api/v1/flags/f2", A, NULL, REASON, NULL), 204);
	cr_expect_eq(call("DELETE", "/api/v1/segments/beta", A, NULL, REASON, NULL), 204);
}

Test(control, document_etag_304_protobuf_and_body_limit)
{
	const char *A = F.c.admin;

	cr_assert_eq(create_flag("f1", "{\"defaultValue\":true}"), 201);
	cr_assert_eq(call("GET", "/api/v1/flags", A, NULL, NULL), 200);
	cr_expect(strstr(F.body, "\"formatVersion\":1"), "%s", F.body);
	char *et = strstr(F.hdrs, "ETag: ");
	cr_assert_not_null(et, "%s", F.hdrs);
	char etag[64], inm[80];
	snprintf(etag, sizeof etag, "%.*s", (int)strcspn(et + 6, "\r\n"), et + 6);
	snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
	cr_expect_eq(call("GET", "/api/v1/flags", A, NULL, inm, NULL), 304);
	cr_expect_eq(call("GET", "/api/v1/flags", A, NULL,
			  "Accept: application/x-protobuf, application/json", NULL), 200);
	cr_expect(strstr(F.hdrs, "Content-Type: application/x-protobuf"), "%s", F.hdrs);
	/* A token change is no document change: same ETag. */
	free(mk_token("t1", "viewer"));
	cr_expect_eq(call("GET", "/api/v1/flags", A, NULL, inm, NULL), 304);
	cr_expect_eq(call("PUT", "/api/v1/flags/f1", A, "{\"defaultValue\":false}", REASON,
			  "If-Match: \"1\"", NULL), 200);
	cr_expect_eq(call("GET", "/api/v1/flags", A, NULL, inm, NULL), 200);
	/* Over --max-body (8 MiB by default): 413, before and after reading. */
	size_t big = (8u << 20) + 10;
	char *b = malloc(big + 1);
	memset(b, ' ', big);
	b[big] = 0;
	b[0] = '{';
	b[big - 1] = '}';
	cr_expect_eq(call("PUT", "/api/v1/flags/f9", A, b, REASON, "If-None-Match: *", NULL), 413);
	free(b);
}

/* ----------------------------------------------------------------- roles */

Test(control, roles_allow_what_they_say)
{
	char *sdk = mk_token("sdk1", "sdk"), *viewer = mk_token("viewer1", "viewer");
	char *appr = mk_token("appr1", "approver"), *ed = mk_token("ed1", "editor");
	const char *flag = "{\"defaultValue\":true}";

	cr_expect_eq(call("GET", "/api/v1/flags", sdk, NULL, NULL), 200);
	cr_expect_eq(call("GET", "/api/v1/flags/x", sdk, NULL, NULL), 403);
	cr_expect_eq(call("GET", "/api/v1/audit", sdk, NULL, NULL), 403);
	cr_expect_eq(call("GET", "/api/v1/audit", viewer, NULL, NULL), 200);
	cr_expect_eq(call("GET", "/api/v1/flags/x", viewer, NULL, NULL), 404);
	cr_expect_eq(call("PUT", "/api/v1/flags/x", viewer, flag, REASON, "If-None-Match: *", NULL),
		     403);
	cr_expect_eq(call("PUT", "/api/v1/flags/x", appr, flag, REASON, "If-None-Match: *", NULL),
		     403);
	cr_expect_eq(call("GET", "/api/v1/audit", appr, NULL, NULL), 200);
	cr_expect_eq(call("PUT", "/api/v1/flags/x", ed, flag, REASON, "If-None-Match: *", NULL), 201);
	cr_expect_eq(call("POST", "/api/v1/bust", ed, NULL, REASON, NULL), 200);
	cr_expect_eq(call("POST", "/api/v1/bust", viewer, NULL, REASON, NULL), 403);
	cr_expect_eq(call("GET", "/api/v1/tokens", ed, NULL, NULL), 403);
	cr_expect_eq(call("POST", "/api/v1/tokens", ed, "{\"name\":\"z\",\"role\":\"admin\"}", REASON,
			  NULL), 403);
	cr_expect_eq(call("GET", "/api/v1/tokens", F.c.admin, NULL, NULL), 200);
	/* The audit names the token. */
	cr_expect_eq(call("GET", "/api/v1/audit?key=x", viewer, NULL, NULL), 200);
	cr_expect(strstr(F.body, "\"actor\":\"ed1\""), "%s", F.body);
	free(sdk), free(viewer), free(appr), free(ed);
}

Test(control, token_lifecycle_shown_once_hashed_revocable)
{
	char *t = mk_token("alice", "editor");

	cr_expect_eq(strncmp(t, "fsh_", 4), 0);
	cr_expect_eq(call("POST", "/api/v1/tokens", F.c.admin, "{\"name\":\"alice\",\"role\":\"viewer\"}",
			  REASON, NULL), 409);
	cr_expect_eq(call("POST", "/api/v1/tokens", F.c.admin, "{\"name\":\"bob\",\"role\":\"root\"}",
			  REASON, NULL), 422);
	cr_expect_eq(call("GET", "/api/v1/tokens", F.c.admin, NULL, NULL), 200);
	cr_expect(strstr(F.body, "\"alice\""), "%s", F.body);
	cr_expect(!strstr(F.body, t) && !strstr(F.body, "sha256"), "the list shows a secret: %s",
		  F.body);
	cr_expect_eq(call("GET", "/api/v1/audit", F.c.admin, NULL, NULL), 200);
	cr_expect(!strstr(F.body, t), "the audit shows the token");
	cr_expect_eq(call("GET", "/api/v1/flags", t, NULL, NULL), 200);
	cr_expect_eq(call("DELETE", "/api/v1/tokens/alice", F.c.admin, NULL, REASON, NULL), 204);
	cr_expect_eq(call("GET", "/api/v1/flags", t, NULL, NULL), 401);
	cr_expect_eq(call("DELETE", "/api/v1/tokens/alice", F.c.admin, NULL, REASON, NULL), 404);
	free(mk_token("carol", "viewer"));
	free(mk_token("dave", "viewer"));
	cr_expect_eq(call("DELETE", "/api/v1/tokens?name=carol", F.c.admin, NULL, REASON, NULL), 204);
	cr_expect_eq(call("DELETE", "/api/v1/tokens", F.c.admin, "{\"name\":\"dave\"}", REASON, NULL),
		     204);
	cr_expect_eq(call("DELETE", "/api/v1/tokens", F.c.admin, NULL, REASON, NULL), 400);
	/* The bootstrap token is revoked like any other, and a restart does
	 * not bring it back. */
	char *admin2 = mk_token("admin2", "admin");
	cr_expect_eq(call("DELETE", "/api/v1/tokens/bootstrap", admin2, NULL, REASON, NULL), 204);
	cr_expect_eq(call("GET", "/api/v1/flags", F.c.admin, NULL, NULL), 401);
	cr_assert_eq(tc_control_stop(&F.c, false), 0);
	cr_assert_eq(tc_control_start(&F.c, F.e.urls, 0, NULL), 0);
	cr_expect_eq(call("GET", "/api/v1/flags", F.c.admin, NULL, NULL), 401);
	cr_expect_eq(call("GET", "/api/v1/flags", admin2, NULL, NULL), 200);
	/* etcd holds the hash, never the token. */
	char u[200];
	snprintf(u, sizeof u, "%s/v3/kv/range", F.e.url[0]);
	char *all = NULL;
	tc_http("POST", u, NULL, NULL, "{\"key\":\"AA==\",\"range_end\":\"AA==\"}", &all, NULL);
	cr_expect(all && !strstr(all, admin2), "etcd holds a token");
	free(all);
	free(t);
	free(admin2);
}

/* ----------------------------------------------------------------- audit */

Test(control, audit_has_exactly_one_record_per_write)
{
	const char *A = F.c.admin;
	int writes = 1; /* the bootstrap token */

	cr_assert_eq(create_flag("f", "{\"defaultValue\":1,\"offValue\":0}"), 201); writes++;
	cr_assert_eq(call("PUT", "/api/v1/flags/f", A, "{\"defaultValue\":2,\"offValue\":0}", REASON,
			  "If-Match: \"1\"", NULL), 200); writes++;
	cr_assert_eq(call("PUT", "/api/v1/flags/f", A, "{\"defaultValue\":3}", REASON,
			  "If-Match: \"1\"", NULL), 412);
	cr_assert_eq(call("PUT", "/api/v1/segments/s", A, "{\"included\":[\"a\"]}", REASON,
			  "If-None-Match: *", NULL), 201); writes++;
	cr_assert_eq(call("POST", "/api/v1/bust", A, NULL, REASON, NULL), 200); writes++;
	free(mk_token("v", "viewer")); writes++;
	cr_assert_eq(call("DELETE", "/api/v1/tokens/v", A, NULL, REASON, NULL), 204); writes++;
	cr_assert_eq(call("POST", "/api/v1/import", A,
			  "{\"formatVersion\":1,\"segments\":{},\"flags\":[{\"key\":\"g\","
			  "\"defaultValue\":true}]}", REASON, NULL), 200, "%s", F.body); writes++;
	cr_assert_eq(call("POST", "/api/v1/import", A, "{\"formatVersion\":1,\"flags\":[{\"key\":1}]}",
			  REASON, NULL), 422);
	cr_assert_eq(call("GET", "/api/v1/audit?limit=1000", A, NULL, NULL), 200);
	json_t *j = body_json(), *es = json_object_get(j, "entries");
	cr_expect_eq((int)json_array_size(es), writes, "%s", F.body);
	cr_expect(json_is_null(json_object_get(j, "next")));
	/* Newest first, every field there. */
	const char *order[] = {"import", "delete", "create", "bust", "create", "update", "create",
			       "create"};
	for (size_t i = 0; i < json_array_size(es); i++) {
		json_t *e = json_array_get(es, i);
		static const char *fields[] = {"id", "time", "actor", "action", "kind", "key",
					       "version", "before", "after", "reason", "requestId"};
		for (size_t k = 0; k < sizeof fields / sizeof *fields; k++)
			cr_expect_not_null(json_object_get(e, fields[k]), "entry %zu lacks %s", i,
					   fields[k]);
		cr_expect_str_eq(json_string_value(json_object_get(e, "action")), order[i]);
	}
	json_t *imp = json_array_get(es, 0);
	cr_expect_str_eq(json_string_value(json_object_get(imp, "kind")), "import");
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(imp, "before"), "flags")), 1);
	/* The update of f: before 1, after 2. */
	json_t *upd = json_array_get(es, 5);
	cr_expect_str_eq(json_string_value(json_object_get(upd, "key")), "f");
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(upd, "before"), "defaultValue")), 1);
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(upd, "after"), "defaultValue")), 2);
	cr_expect_eq(json_integer_value(json_object_get(upd, "version")), 2);
	cr_expect_str_eq(json_string_value(json_object_get(upd, "reason")), "test");
	json_decref(j);
	/* Pages: two at a time, until next is null. */
	int seen = 0;
	char path[200] = "/api/v1/audit?limit=2";
	for (int page = 0; page < 20; page++) {
		cr_assert_eq(call("GET", path, A, NULL, NULL), 200);
		j = body_json();
		seen += (int)json_array_size(json_object_get(j, "entries"));
		json_t *nx = json_object_get(j, "next");
		if (json_is_null(nx)) {
			json_decref(j);
			break;
		}
		snprintf(path, sizeof path, "/api/v1/audit?limit=2&next=%s", json_string_value(nx));
		json_decref(j);
	}
	cr_expect_eq(seen, writes);
	cr_expect_eq(call("GET", "/api/v1/audit?limit=1001", A, NULL, NULL), 400);
	cr_expect_eq(call("GET", "/api/v1/audit?since=2999-01-01T00:00:00Z", A, NULL, NULL), 200);
	cr_expect(strstr(F.body, "\"entries\":[]"), "%s", F.body);
}

/* ------------------------------------------------------- lost updates */

#define EDITORS 8
#define EDITS 100

static void *editor(void *arg)
{
	const char *tok = arg;
	char url[200], *resp;
	int done = 0;

	snprintf(url, sizeof url, "%s/api/v1/flags/counter", F.c.url);
	for (int tries = 0; done < EDITS && tries < 20000; tries++) {
		if (tc_http("GET", url, tok, NULL, NULL, &resp, NULL) != 200) {
			free(resp);
			wp_sleep_ms(10);
			continue;
		}
		json_t *j = json_loads(resp, 0, NULL);
		free(resp);
		long long v = json_integer_value(json_object_get(j, "version"));
		long long n = json_integer_value(json_object_get(j, "defaultValue"));
		json_decref(j);
		char body[128], im[64];
		snprintf(body, sizeof body, "{\"defaultValue\":%lld,\"offValue\":0}", n + 1);
		snprintf(im, sizeof im, "If-Match: \"%lld\"", v);
		const char *h[] = {REASON, im, NULL};
		int st = tc_http("PUT", url, tok, h, body, &resp, NULL);
		free(resp);
		if (st == 200)
			done++;
	}
	return (void *)(intptr_t)done;
}

Test(control, no_lost_update_under_concurrent_read_modify_write, .timeout = 120)
{
	pthread_t t[EDITORS];
	char *tok = mk_token("racer", "editor");
	int total = 0;

	cr_assert_eq(create_flag("counter", "{\"defaultValue\":0,\"offValue\":0}"), 201);
	for (int i = 0; i < EDITORS; i++)
		pthread_create(&t[i], NULL, editor, tok);
	for (int i = 0; i < EDITORS; i++) {
		void *r;
		pthread_join(t[i], &r);
		total += (int)(intptr_t)r;
	}
	cr_expect_eq(total, EDITORS * EDITS);
	cr_assert_eq(call("GET", "/api/v1/flags/counter", tok, NULL, NULL), 200);
	json_t *j = body_json();
	cr_expect_eq(json_integer_value(json_object_get(j, "defaultValue")), EDITORS * EDITS,
		     "lost updates: %s", F.body);
	cr_expect_eq(json_integer_value(json_object_get(j, "version")), EDITORS * EDITS + 1);
	json_decref(j);
	cr_assert_eq(call("GET", "/api/v1/audit?key=counter&limit=1000", tok, NULL, NULL), 200);
	j = body_json();
	cr_expect_eq(json_array_size(json_object_get(j, "entries")), EDITORS * EDITS + 1);
	json_decref(j);
	free(tok);
}

/* ------------------------------------------------------------------ SSE */

/* The id of the first event named NAME in the SSE text S, or -1. */
static long long event_id(const char *s, const char *name)
{
	char pat[64];
	snprintf(pat, sizeof pat, "event: %s\nid: ", name);
	const char *p = strstr(s, pat);
	return p ? atoll(p + strlen(pat)) : -1;
}

Test(control, stream_resumes_from_last_event_id_and_puts_after_compaction)
{
	char url[200], id[32];
	int st;

	cr_assert_eq(create_flag("f1", "{\"defaultValue\":true}"), 201);
	snprintf(url, sizeof url, "%s/api/v1/flags/stream", F.c.url);
	char *s = tc_sse(url, F.c.admin, NULL, "}\n\n", 20000, &st);
	cr_assert_eq(st, 200);
	long long first = event_id(s, "put");
	cr_assert_gt(first, 0, "no put: %s", s);
	cr_expect(strstr(s, "\"f1\""), "%s", s);
	free(s);
	cr_assert_eq(call("PUT", "/api/v1/flags/f1", F.c.admin, "{\"defaultValue\":false}", REASON,
			  "If-Match: \"1\"", NULL), 200);
	cr_assert_eq(create_flag("f2", "{\"defaultValue\":true}"), 201);
	cr_assert_eq(call("DELETE", "/api/v1/flags/f2", F.c.admin, NULL, REASON, NULL), 204);
	snprintf(id, sizeof id, "%lld", first);
	s = tc_sse(url, F.c.admin, id, "event: flag-deleted", 20000, &st);
	cr_expect_eq(st, 200);
	cr_expect_null(strstr(s, "event: put"), "a resume sent a put:\n%s", s);
	long long upd = event_id(s, "flag-updated");
	cr_expect_gt(upd, first, "%s", s);
	cr_expect_gt(event_id(s, "flag-deleted"), upd, "%s", s);
	cr_expect(strstr(s, "\"defaultValue\":false"), "%s", s);
	free(s);
	/* Compact etcd past FIRST: the resume must become a put. */
	char cu[200], cb[64], *r = NULL;
	snprintf(cu, sizeof cu, "%s/v3/kv/range", F.e.url[0]);
	tc_http("POST", cu, NULL, NULL, "{\"key\":\"AA==\"}", &r, NULL);
	json_t *j = json_loads(r, 0, NULL);
	long long head = atoll(json_string_value(json_object_get(json_object_get(j, "header"),
								  "revision")));
	json_decref(j);
	free(r);
	snprintf(cu, sizeof cu, "%s/v3/kv/compaction", F.e.url[0]);
	snprintf(cb, sizeof cb, "{\"revision\":\"%lld\",\"physical\":true}", head);
	cr_assert_eq(tc_http("POST", cu, NULL, NULL, cb, &r, NULL), 200, "%s", r);
	free(r);
	s = tc_sse(url, F.c.admin, id, "}\n\n", 20000, &st);
	cr_expect_eq(st, 200);
	cr_expect_gt(event_id(s, "put"), upd, "no put after compaction:\n%s", s);
	free(s);
	/* A bust is a put on open streams (and a new epoch). */
	cr_assert_eq(call("POST", "/api/v1/bust", F.c.admin, NULL, REASON, NULL), 200);
	s = tc_sse(url, F.c.admin, NULL, "}\n\n", 20000, &st);
	cr_expect(strstr(s, "\"epoch\":1"), "%s", s);
	free(s);
}

/* --------------------------------------------------- a writer syncing */

static void start_writer(const char *url, const char *token)
{
	char line[128];
	int n = snprintf(line, sizeof line, "%s\n", token);
	cr_assert_eq(wp_write_file(F.keyfile, line, (size_t)n), 0);
	const char *argv[] = {"--store", F.store, "--source", url, "--key-file", F.keyfile,
			      "--state-dir", F.state, "--stream", "--poll-interval", "1", NULL};
	F.writer = wp_spawn(argv, F.log, NULL);
	cr_assert_gt(F.writer, 0);
	int rc = -1;
	for (int i = 0; i < 3000 && rc != 0; i++) {
		rc = wp_open_existing(F.store, &F.rd);
		if (rc)
			wp_sleep_ms(10);
	}
	cr_assert_eq(rc, 0, "the writer did not create its store");
}

static bool wait_num(flagshm_store *rd, const char *key, double want, int timeout_ms)
{
	int64_t end = wp_mono_ms() + timeout_ms;
	while (wp_mono_ms() < end) {
		if (flagshm_number(rd, key, NULL, -1) == want)
			return true;
		wp_sleep_ms(20);
	}
	return false;
}

Test(control, a_writer_syncs_through_the_control_plane)
{
	char *sdk = mk_token("host1", "sdk");

	cr_assert_eq(create_flag("price", "{\"defaultValue\":10,\"offValue\":0}"), 201);
	start_writer(F.c.url, sdk);
	cr_expect(wait_num(F.rd, "price", 10, 30000), "the reader never saw the flag");
	cr_assert_eq(call("PUT", "/api/v1/flags/price", F.c.admin,
			  "{\"defaultValue\":11,\"offValue\":0}", REASON, "If-Match: \"1\"", NULL), 200);
	cr_expect(wait_num(F.rd, "price", 11, 30000), "the reader never saw the edit");
	free(sdk);
}

Test(control, etcd_down_reads_fail_503_and_writers_keep_their_flags)
{
	char *sdk = mk_token("host1", "sdk");

	cr_assert_eq(create_flag("price", "{\"defaultValue\":10,\"offValue\":0}"), 201);
	start_writer(F.c.url, sdk);
	cr_assert(wait_num(F.rd, "price", 10, 30000));
	tc_etcd_kill(&F.e, 0);
	cr_expect_eq(call("GET", "/api/v1/flags", sdk, NULL, NULL), 503);
	cr_expect(strstr(F.hdrs, "Retry-After:"), "%s", F.hdrs);
	cr_expect_eq(call("GET", "/api/v1/flags/price", F.c.admin, NULL, NULL), 503);
	cr_expect_eq(call("PUT", "/api/v1/flags/price", F.c.admin, "{\"defaultValue\":1}", REASON,
			  "If-Match: \"1\"", NULL), 503);
	wp_sleep_ms(1500); /* the writer polls and fails meanwhile */
	cr_expect_eq(flagshm_number(F.rd, "price", NULL, -1), 10);
	cr_expect_eq(wp_wait_exit(F.writer, 0), -2, "the writer exited");
	free(sdk);
}

/* ---------------------------------------------- failover under edits */

Test(control, two_instances_over_three_members_lose_no_acknowledged_write, .timeout = 120)
{
	tc_control b = {0};
	flagshm_store *rd_b = NULL;
	char store_b[64], state_b[160], log_b[160], keyfile_b[160], err[256];
	int acked = 0;

	/* The fixture's etcd has one member: this test wants three. */
	tc_control_stop(&F.c, false);
	tc_etcd_stop(&F.e);
	cr_assert_eq(tc_etcd_start(&F.e, 3), 0, "cannot start three etcd members");
	cr_assert_eq(tc_control_start(&F.c, F.e.urls, 0, NULL), 0);
	memcpy(b.admin, F.c.admin, sizeof b.admin);
	snprintf(b.dir, sizeof b.dir, "/tmp/flagshm-control-XXXXXX");
	cr_assert_not_null(mkdtemp(b.dir));
	cr_assert_eq(tc_control_start(&b, F.e.urls, 0, NULL), 0);
	char *sdk = mk_token("hosts", "sdk");
	cr_assert_eq(create_flag("n", "{\"defaultValue\":0,\"offValue\":0}"), 201);

	/* Writer A on instance A (the fixture's), writer B on instance B. */
	start_writer(F.c.url, sdk);
	snprintf(store_b, sizeof store_b, "ctlb%d", (int)getpid());
	snprintf(state_b, sizeof state_b, "%s/state-b", F.dir);
	snprintf(log_b, sizeof log_b, "%s/writer-b.log", F.dir);
	snprintf(keyfile_b, sizeof keyfile_b, "%s/key", F.dir);
	shm_store_remove(store_b, err, sizeof err);
	const char *argv[] = {"--store", store_b, "--source", b.url, "--key-file", keyfile_b,
			      "--state-dir", state_b, "--stream", "--poll-interval", "1", NULL};
	pid_t wb = wp_spawn(argv, log_b, NULL);
	cr_assert_gt(wb, 0);
	for (int i = 0; i < 3000 && wp_open_existing(store_b, &rd_b); i++)
		wp_sleep_ms(10);
	cr_assert_not_null(rd_b);

	/* 30 edits, alternating instances; etcd member 0 dies after 10,
	 * instance A after 20 (later edits go to B). An edit counts once
	 * acknowledged (200); an unanswered one is retried with the version
	 * read again, so the value says how many were applied. */
	for (int i = 1; i <= 30; i++) {
		if (i == 11)
			tc_etcd_kill(&F.e, 0);
		if (i == 21)
			tc_control_stop(&F.c, true);
		bool done = false;
		for (int tries = 0; !done && tries < 200; tries++) {
			const char *base = (i > 20 || i % 2 == 0) ? b.url : F.c.url;
			if (call_at(base, "GET", "/api/v1/flags/n", F.c.admin, NULL, NULL) != 200) {
				wp_sleep_ms(100);
				continue;
			}
			json_t *j = body_json();
			long long v = json_integer_value(json_object_get(j, "version"));
			long long n = json_integer_value(json_object_get(j, "defaultValue"));
			json_decref(j);
			if (n >= i) { /* an unanswered earlier try was applied */
				done = true;
				break;
			}
			char body[96], im[48];
			snprintf(body, sizeof body, "{\"defaultValue\":%d,\"offValue\":0}", i);
			snprintf(im, sizeof im, "If-Match: \"%lld\"", v);
			int st = call_at(base, "PUT", "/api/v1/flags/n", F.c.admin, body, REASON, im,
					 NULL);
			if (st == 200)
				done = true, acked = i;
			else
				wp_sleep_ms(100);
		}
		cr_assert(done, "edit %d never went through", i);
	}
	cr_expect_eq(acked, 30);
	/* Instance A back on its port; both writers converge on the last edit. */
	unsigned port_a = F.c.port;
	cr_assert_eq(tc_control_start(&F.c, F.e.urls, port_a, NULL), 0);
	cr_expect(wait_num(rd_b, "n", 30, 45000), "writer B did not converge");
	cr_expect(wait_num(F.rd, "n", 30, 45000), "writer A did not converge");
	cr_expect_eq(call_at(b.url, "GET", "/api/v1/audit?key=n&limit=1000", F.c.admin, NULL, NULL),
		     200);
	json_t *j = body_json();
	size_t records = json_array_size(json_object_get(j, "entries"));
	json_decref(j);
	cr_assert_eq(call_at(b.url, "GET", "/api/v1/flags/n", F.c.admin, NULL, NULL), 200);
	j = body_json();
	cr_expect_eq(json_integer_value(json_object_get(j, "defaultValue")), 30);
	cr_expect_eq((size_t)json_integer_value(json_object_get(j, "version")), records,
		     "a version without its audit record, or the reverse");
	json_decref(j);
	wp_stop(wb, 5000);
	flagshm_close(&rd_b);
	shm_store_remove(store_b, err, sizeof err);
	tc_control_stop(&b, false);
	if (!getenv("FLAGSHM_KEEP_LOGS"))
		wp_rmdir(b.dir);
	free(sdk);
}

/* ------------------------------------------------ limits and hostility */

static int raw_connect(unsigned port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

Test(control, over_max_connections_503_and_slow_clients_time_out)
{
	const char *extra[] = {"--max-connections", "2", "--client-timeout", "5", NULL};
	int fd[2];

	tc_control_stop(&F.c, false);
	cr_assert_eq(tc_control_start(&F.c, F.e.urls, 0, extra), 0);
	for (int i = 0; i < 2; i++) {
		fd[i] = raw_connect(F.c.port);
		cr_assert_geq(fd[i], 0);
		/* Half a request: a slow client. */
		cr_assert_eq(write(fd[i], "GET /api/v1/flags HTTP/1.1\r\n", 28), 28);
	}
	/* Once the server has accepted both, a third connection is one too
	 * many (polled: no speed assumed). */
	int st = 0;
	for (int64_t end = wp_mono_ms() + 4000; wp_mono_ms() < end && st != 503;)
		st = call("GET", "/api/v1/flags", F.c.admin, NULL, NULL);
	cr_expect_eq(st, 503);
	cr_expect(strstr(F.hdrs, "Retry-After:"), "%s", F.hdrs);
	/* The slow clients are dropped after --client-timeout: the server
	 * closes them (EOF), within a generous bound. */
	for (int i = 0; i < 2; i++) {
		struct timeval tv = {20, 0};
		char b[256];
		setsockopt(fd[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		ssize_t n;
		int64_t end = wp_mono_ms() + 20000;
		while ((n = read(fd[i], b, sizeof b)) > 0 && wp_mono_ms() < end)
			;
		cr_expect_leq(n, 0, "slow client %d not dropped", i);
		close(fd[i]);
	}
	/* With them gone, requests are served again. */
	int64_t end = wp_mono_ms() + 20000;
	while ((st = call("GET", "/api/v1/flags", F.c.admin, NULL, NULL)) != 200 &&
	       wp_mono_ms() < end)
		wp_sleep_ms(100);
	cr_expect_eq(st, 200);
}

Test(control, keepalive_comments_bad_last_event_id_and_audit_after_compaction)
{
	const char *extra[] = {"--keepalive", "1", NULL};
	char url[200];
	int st;

	tc_control_stop(&F.c, false);
	cr_assert_eq(tc_control_start(&F.c, F.e.urls, 0, extra), 0);
	cr_assert_eq(create_flag("f1", "{\"defaultValue\":true}"), 201);
	snprintf(url, sizeof url, "%s/api/v1/flags/stream", F.c.url);
	char *s = tc_sse(url, F.c.admin, NULL, ": keep-alive", 20000, &st);
	cr_expect(strstr(s, ": keep-alive\n\n"), "no keep-alive comment: %s", s);
	free(s);
	/* Ids that are not ours get a put. */
	const char *bad[] = {"abc", "-5", "99999999999", "12abc", " ", "1e3"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		s = tc_sse(url, F.c.admin, bad[i], "}\n\n", 20000, &st);
		cr_expect_eq(st, 200);
		cr_expect(strstr(s, "event: put"), "Last-Event-ID '%s': no put: %s", bad[i], s);
		free(s);
	}
	/* Audit records are keys, not history: compaction keeps them. */
	char cu[200], *r = NULL;
	snprintf(cu, sizeof cu, "%s/v3/kv/range", F.e.url[0]);
	tc_http("POST", cu, NULL, NULL, "{\"key\":\"AA==\"}", &r, NULL);
	json_t *j = json_loads(r, 0, NULL);
	char cb[96];
	snprintf(cb, sizeof cb, "{\"revision\":\"%s\"}",
		 json_string_value(json_object_get(json_object_get(j, "header"), "revision")));
	json_decref(j);
	free(r);
	snprintf(cu, sizeof cu, "%s/v3/kv/compaction", F.e.url[0]);
	cr_assert_eq(tc_http("POST", cu, NULL, NULL, cb, &r, NULL), 200);
	free(r);
	cr_expect_eq(call("GET", "/api/v1/audit?key=f1", F.c.admin, NULL, NULL), 200);
	cr_expect(strstr(F.body, "\"action\":\"create\""), "%s", F.body);
	/* Unknown endpoints and methods. */
	cr_expect_eq(call("GET", "/api/v2/flags", F.c.admin, NULL, NULL), 404);
	cr_expect_eq(call("POST", "/api/v1/flags", F.c.admin, "{}", REASON, NULL), 405);
	cr_expect_eq(call("GET", "/healthz", NULL, NULL, NULL), 200);
	/* The instance is registered on a lease. */
	cr_expect_eq(call("GET", "/api/v1/instances", F.c.admin, NULL, NULL), 200);
	char want[96];
	snprintf(want, sizeof want, "\"url\":\"%s\"", F.c.url);
	cr_expect(strstr(F.body, want), "%s not in %s", want, F.body);
}

Test(control, import_replaces_the_document_and_respects_max_txn_ops)
{
	const char *A = F.c.admin;

	cr_assert_eq(create_flag("old", "{\"defaultValue\":true}"), 201);
	cr_assert_eq(call("POST", "/api/v1/import", A,
			  "{\"formatVersion\":1,\"segments\":{\"s\":{\"included\":[\"u\"]}},"
			  "\"flags\":[{\"key\":\"a\",\"defaultValue\":true,\"version\":99},"
			  "{\"key\":\"b\",\"defaultValue\":false}]}", REASON, NULL), 200, "%s", F.body);
	cr_expect(strstr(F.body, "\"deleted\":1"), "%s", F.body);
	cr_assert_eq(call("GET", "/api/v1/flags", A, NULL, NULL), 200);
	cr_expect(!strstr(F.body, "\"old\"") && strstr(F.body, "\"a\"") && strstr(F.body, "\"s\""),
		  "%s", F.body);
	cr_assert_eq(call("GET", "/api/v1/flags/a", A, NULL, NULL), 200);
	cr_expect(strstr(F.body, "\"version\":1"), "server-set version ignored: %s", F.body);
	/* Over --max-txn-ops: 413, nothing changed. */
	const char *extra[] = {"--max-txn-ops", "8", NULL};
	tc_control_stop(&F.c, false);
	cr_assert_eq(tc_control_start(&F.c, F.e.urls, 0, extra), 0);
	char doc[4096] = "{\"formatVersion\":1,\"flags\":[";
	for (int i = 0; i < 20; i++) {
		size_t l = strlen(doc);
		snprintf(doc + l, sizeof doc - l, "%s{\"key\":\"k%d\",\"defaultValue\":true}",
			 i ? "," : "", i);
	}
	strcat(doc, "]}");
	cr_expect_eq(call("POST", "/api/v1/import", A, doc, REASON, NULL), 413, "%s", F.body);
	cr_expect(strstr(F.body, "--max-txn-ops"), "%s", F.body);
	cr_expect_eq(call("GET", "/api/v1/flags/k1", A, NULL, NULL), 404);
}

/* ------------------------------------------------- etcd auth and TLS */

static int etcd_post(const char *path, const char *body, const char *auth_token)
{
	char u[200], *r = NULL, h[600];
	const char *hs[] = {h, NULL};
	snprintf(u, sizeof u, "%s%s", F.e.url[0], path);
	snprintf(h, sizeof h, "Authorization: %s", auth_token ? auth_token : "");
	int st = tc_http("POST", u, NULL, auth_token ? hs : NULL, body, &r, NULL);
	free(r);
	return st;
}

Test(control, works_with_etcd_auth_on)
{
	char file[200];

	tc_control_stop(&F.c, false);
	cr_assert_eq(etcd_post("/v3/auth/user/add", "{\"name\":\"root\",\"password\":\"pw-root\"}", NULL),
		     200);
	cr_assert_eq(etcd_post("/v3/auth/user/grant", "{\"user\":\"root\",\"role\":\"root\"}", NULL),
		     200);
	cr_assert_eq(etcd_post("/v3/auth/enable", "{}", NULL), 200);
	/* Without credentials etcd refuses. */
	cr_assert_neq(etcd_post("/v3/kv/range", "{\"key\":\"AA==\"}", NULL), 200);
	snprintf(file, sizeof file, "%s/etcd-user", F.dir);
	cr_assert_eq(wp_write_file(file, "root:pw-root\n", 13), 0);
	const char *extra[] = {"--etcd-user-file", file, NULL};
	cr_assert_eq(tc_control_start(&F.c, F.e.urls, 0, extra), 0);
	cr_expect_eq(create_flag("f1", "{\"defaultValue\":true}"), 201, "%s", F.body);
	cr_expect_eq(call("GET", "/api/v1/flags", F.c.admin, NULL, NULL), 200);
	cr_expect(strstr(F.body, "\"f1\""), "%s", F.body);
	char url[200];
	int st;
	snprintf(url, sizeof url, "%s/api/v1/flags/stream", F.c.url);
	char *s = tc_sse(url, F.c.admin, NULL, "}\n\n", 20000, &st);
	cr_expect(strstr(s, "event: put"), "%s", s);
	free(s);
	char *log = wp_read_file(F.c.log, NULL);
	cr_expect(!log || !strstr(log, "pw-root"), "the etcd password is in the log");
	free(log);
}

Test(control, serves_https_to_a_writer)
{
	char cert[200], key[200], cmd[1024];

	snprintf(cert, sizeof cert, "%s/cert.pem", F.dir);
	snprintf(key, sizeof key, "%s/key.pem", F.dir);
	snprintf(cmd, sizeof cmd,
		 "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
		 "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s 2>/dev/null", key, cert);
	cr_assert_eq(system(cmd), 0, "openssl (Debian's openssl) could not make a certificate");
	tc_control_stop(&F.c, false);
	const char *extra[] = {"--tls-cert", cert, "--tls-key", key, NULL};
	cr_assert_eq(tc_control_start(&F.c, F.e.urls, 0, extra), 0);
	cr_assert_eq(strncmp(F.c.url, "https://", 8), 0, "%s", F.c.url);
	setenv("TC_CA_FILE", cert, 1);
	cr_assert_eq(create_flag("price", "{\"defaultValue\":5,\"offValue\":0}"), 201, "%s", F.body);
	char *sdk = mk_token("host1", "sdk");
	char line[128];
	int n = snprintf(line, sizeof line, "%s\n", sdk);
	cr_assert_eq(wp_write_file(F.keyfile, line, (size_t)n), 0);
	const char *argv[] = {"--store", F.store, "--source", F.c.url, "--key-file", F.keyfile,
			      "--state-dir", F.state, "--stream", "--ca-file", cert, NULL};
	F.writer = wp_spawn(argv, F.log, NULL);
	int rc = -1;
	for (int i = 0; i < 3000 && rc != 0; i++) {
		rc = wp_open_existing(F.store, &F.rd);
		if (rc)
			wp_sleep_ms(10);
	}
	cr_assert_eq(rc, 0);
	cr_expect(wait_num(F.rd, "price", 5, 30000), "the writer never got the flag over https");
	unsetenv("TC_CA_FILE");
	free(sdk);
}

/* A hostile neighbour on the loopback port: garbage, lies and floods cost
 * it bounded time and memory, and the server keeps serving. */
Test(control, hostile_bytes_on_the_port_leave_it_serving)
{
	static const char *attacks[] = {
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-tls-hello\r\n\r\n",
		"GET /api/v1/flags HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"PUT /api/v1/flags/x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
		"GET /\x01\x02\x7f HTTP/1.1\r\n\r\n",
		"POST /api/v1/import HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	};
	for (size_t i = 0; i < sizeof attacks / sizeof *attacks; i++) {
		int fd = raw_connect(F.c.port);
		cr_assert_geq(fd, 0);
		ssize_t w = write(fd, attacks[i], strlen(attacks[i]));
		(void)w;
		close(fd);
	}
	/* A 1 MiB header line. */
	int fd = raw_connect(F.c.port);
	cr_assert_geq(fd, 0);
	char *big = malloc(1 << 20);
	memset(big, 'a', 1 << 20);
	ssize_t w = write(fd, "GET /api/v1/flags HTTP/1.1\r\nX-A: ", 33);
	w = write(fd, big, 1 << 20);
	(void)w;
	free(big);
	close(fd);
	/* A token as long as a header can be, a header with a NUL-like byte. */
	char longtok[8192];
	memset(longtok, 'x', sizeof longtok - 1);
	longtok[sizeof longtok - 1] = 0;
	cr_expect_eq(call("GET", "/api/v1/flags", longtok, NULL, NULL), 401);
	/* Deep nesting: refused before it is stored. */
	size_t dn = 1500, bl = 64 + 2 * dn;
	char *deep = malloc(bl);
	size_t o = (size_t)snprintf(deep, bl, "{\"offValue\":[],\"defaultValue\":");
	for (size_t i = 0; i < dn; i++)
		deep[o++] = '[';
	for (size_t i = 0; i < dn; i++)
		deep[o++] = ']';
	deep[o++] = '}';
	deep[o] = 0;
	cr_expect_eq(create_flag("deep", deep), 422, "%s", F.body);
	free(deep);
	cr_expect_eq(call("GET", "/api/v1/flags", F.c.admin, NULL, NULL), 200);
	cr_expect_eq(create_flag("after", "{\"defaultValue\":true}"), 201);
}

Test(control, started_before_etcd_it_answers_503_then_serves)
{
	tc_control_stop(&F.c, false);
	tc_etcd_kill(&F.e, 0);
	/* No ready file until etcd is read: start it by hand and poll the port. */
	tc_control b = {0};
	unsigned port = tc_free_port();
	char listen[32], url[64];
	snprintf(listen, sizeof listen, "127.0.0.1:%u", port);
	snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
	const char *argv[] = {"--listen", listen, "--etcd", F.e.urls, NULL};
	char log[160];
	snprintf(log, sizeof log, "%s/control-b.log", F.dir);
	b.pid = wp_spawn_prog(tc_control_path(), argv, log, NULL);
	cr_assert_gt(b.pid, 0);
	int st = 0;
	for (int64_t end = wp_mono_ms() + 20000; wp_mono_ms() < end && st != 503;) {
		st = call_at(url, "GET", "/api/v1/flags", F.c.admin, NULL, NULL);
		if (st != 503)
			wp_sleep_ms(50);
	}
	cr_expect_eq(st, 503, "before etcd: %d %s", st, F.body);
	cr_expect(strstr(F.hdrs, "Retry-After:"), "%s", F.hdrs);
	cr_assert_eq(tc_etcd_restart(&F.e, 0), 0);
	for (int64_t end = wp_mono_ms() + 30000; wp_mono_ms() < end && st != 200;) {
		st = call_at(url, "GET", "/api/v1/flags", F.c.admin, NULL, NULL);
		if (st != 200)
			wp_sleep_ms(100);
	}
	cr_expect_eq(st, 200, "after etcd came back: %d %s", st, F.body);
	cr_expect_eq(tc_control_stop(&b, false), 0);
}

/* The 422 messages are flagshm-writer --check's, on the same document. */
Test(control, invalid_writes_get_the_messages_of_writer_check)
{
	const char *A = F.c.admin;

	cr_assert_eq(create_flag("a", "{\"defaultValue\":true}"), 201);
	cr_assert_eq(create_flag("b", "{\"defaultValue\":true,\"prerequisites\":[{\"key\":\"a\","
				      "\"value\":true}]}"), 201);
	/* A cycle: a -> b -> a. */
	cr_expect_eq(call("PUT", "/api/v1/flags/a", A,
			  "{\"defaultValue\":true,\"prerequisites\":[{\"key\":\"b\",\"value\":true}]}",
			  REASON, "If-Match: \"1\"", NULL), 422);
	cr_expect(strstr(F.body, "prerequisite cycle"), "%s", F.body);
	/* A cost over the limit: 200 rules of 3 conditions each. */
	size_t cap = 200 * 200 + 256, l;
	char *big = malloc(cap);
	l = (size_t)snprintf(big, cap, "{\"defaultValue\":true,\"targeting\":[");
	for (int i = 0; i < 200; i++)
		l += (size_t)snprintf(big + l, cap - l,
				      "%s{\"id\":\"r%d\",\"variation\":false,\"conditions\":["
				      "{\"attribute\":\"a\",\"operator\":\"equals\",\"value\":\"x\"},"
				      "{\"attribute\":\"b\",\"operator\":\"equals\",\"value\":\"x\"},"
				      "{\"attribute\":\"c\",\"operator\":\"equals\",\"value\":\"x\"}]}",
				      i ? "," : "", i);
	snprintf(big + l, cap - l, "]}");
	cr_expect_eq(create_flag("costly", big), 422);
	cr_expect(strstr(F.body, "exceeds the limit eval-cost"), "%s", F.body);
	free(big);
	/* The same document through flagshm-writer --check: the same messages
	 * but for the label. */
	cr_assert_eq(call("PUT", "/api/v1/flags/b", A,
			  "{\"defaultValue\":true,\"rolloutPercentage\":101,\"prerequisites\":[{\"key\":"
			  "\"a\",\"value\":true}]}", REASON, "If-Match: \"1\"", NULL), 422);
	json_t *j = body_json();
	const char *msg = json_string_value(json_array_get(
		json_object_get(json_object_get(j, "error"), "details"), 0));
	cr_assert_not_null(msg, "%s", F.body);
	char *doc = NULL;
	cr_assert_eq(call("GET", "/api/v1/flags", A, NULL, NULL), 200);
	json_t *d = json_loads(F.body, 0, NULL);
	json_t *fb = json_array_get(json_object_get(d, "flags"), 1);
	json_object_set_new(fb, "rolloutPercentage", json_integer(101));
	doc = json_dumps(d, 0);
	json_decref(d);
	char file[200], out[200];
	snprintf(file, sizeof file, "%s/document", F.dir);
	snprintf(out, sizeof out, "%s/check.out", F.dir);
	cr_assert_eq(wp_write_file(file, doc, strlen(doc)), 0);
	free(doc);
	const char *argv[] = {"--check", file, NULL};
	pid_t p = wp_spawn(argv, out, NULL);
	cr_expect_eq(wp_wait_exit(p, 30000), 1);
	char *o = wp_read_file(out, NULL);
	const char *path = strchr(msg, ' '); /* after "document:" */
	cr_expect(o && path && strstr(o, path + 1), "--check said:\n%s\nthe API said: %s", o, msg);
	free(o);
	json_decref(j);
}

/* A writer that fails over to an instance started after its last event
 * resumes from etcd's history (no put), unless etcd compacted it. */
Test(control, resume_on_a_younger_instance_replays_etcd_history)
{
	char url[200], id[32];
	int st;

	cr_assert_eq(create_flag("f1", "{\"defaultValue\":true}"), 201);
	snprintf(url, sizeof url, "%s/api/v1/flags/stream", F.c.url);
	char *s = tc_sse(url, F.c.admin, NULL, "}\n\n", 20000, &st);
	long long first = event_id(s, "put");
	cr_assert_gt(first, 0, "%s", s);
	free(s);
	cr_assert_eq(call("PUT", "/api/v1/flags/f1", F.c.admin, "{\"defaultValue\":false}", REASON,
			  "If-Match: \"1\"", NULL), 200);
	cr_assert_eq(call("PUT", "/api/v1/segments/sg", F.c.admin, "{\"included\":[\"u\"]}", REASON,
			  "If-None-Match: *", NULL), 201);
	free(mk_token("other", "viewer")); /* a change outside the document */
	/* A new instance: its ring starts after all of that. */
	cr_assert_eq(tc_control_stop(&F.c, false), 0);
	cr_assert_eq(tc_control_start(&F.c, F.e.urls, 0, NULL), 0);
	cr_assert_eq(create_flag("f2", "{\"defaultValue\":true}"), 201);
	snprintf(url, sizeof url, "%s/api/v1/flags/stream", F.c.url);
	snprintf(id, sizeof id, "%lld", first);
	s = tc_sse(url, F.c.admin, id, "\"f2\"", 20000, &st);
	cr_expect_eq(st, 200);
	cr_expect_null(strstr(s, "event: put"), "a put instead of the history:\n%s", s);
	long long a = event_id(s, "flag-updated"), b = event_id(s, "segment-updated");
	cr_expect(a > first && b > a, "events out of order:\n%s", s);
	const char *f2 = strstr(s, "\"f2\"");
	cr_expect(f2 && f2 > strstr(s, "event: segment-updated"), "the ring's event first:\n%s", s);
	free(s);
}

/* Editors of different flags race on meta/rev only: the server retries
 * for them, and every edit lands once. */
static void *own_flag_editor(void *arg)
{
	int me = (int)(intptr_t)arg, ok = 0;
	char url[200], body[96], im[48], *resp;

	snprintf(url, sizeof url, "%s/api/v1/flags/own%d", F.c.url, me);
	const char *create[] = {REASON, "If-None-Match: *", NULL};
	if (tc_http("PUT", url, F.c.admin, create, "{\"defaultValue\":0,\"offValue\":0}", &resp,
		    NULL) == 201)
		ok++;
	free(resp);
	for (int v = 1; v <= 20; v++) {
		snprintf(body, sizeof body, "{\"defaultValue\":%d,\"offValue\":0}", v);
		snprintf(im, sizeof im, "If-Match: \"%d\"", v);
		const char *h[] = {REASON, im, NULL};
		if (tc_http("PUT", url, F.c.admin, h, body, &resp, NULL) == 200)
			ok++;
		free(resp);
	}
	return (void *)(intptr_t)ok;
}

Test(control, editors_of_different_flags_all_land)
{
	pthread_t t[8];
	int total = 0;

	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, own_flag_editor, (void *)(intptr_t)i);
	for (int i = 0; i < 8; i++) {
		void *r;
		pthread_join(t[i], &r);
		total += (int)(intptr_t)r;
	}
	cr_expect_eq(total, 8 * 21, "some edits were refused (busy?)");
	cr_assert_eq(call("GET", "/api/v1/audit?limit=1000", F.c.admin, NULL, NULL), 200);
	json_t *j = body_json();
	cr_expect_eq(json_array_size(json_object_get(j, "entries")), 8 * 21 + 1);
	json_decref(j);
	cr_assert_eq(call("GET", "/api/v1/flags", F.c.admin, NULL, NULL), 200);
	j = body_json();
	json_t *fl = json_object_get(j, "flags");
	cr_expect_eq(json_array_size(fl), 8);
	for (size_t i = 0; i < json_array_size(fl); i++)
		cr_expect_eq(json_integer_value(json_object_get(json_array_get(fl, i), "defaultValue")),
			     20);
	json_decref(j);
}
