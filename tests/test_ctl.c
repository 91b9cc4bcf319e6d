/*
 * tests/test_ctl.c - flagshm-ctl against the real flagshm-control over a
 * real etcd member (control_proc.h: Debian's etcd-server on free loopback
 * ports): every command's exit status and --json shape, conflicts (412
 * exits 1), validation (422 exits 1), roles and tokens (401/403 exit 3),
 * the audit (who and why), and the small edits' retry on 412: once with a
 * proxy that makes a competing edit between flagshm-ctl's read and its
 * write (deterministic), once with five concurrent flagshm-ctl processes
 * (each loses at most four times, it tries five). Every wait is bounded.
 */
#include <criterion/criterion.h>

#include "control_proc.h"
#include "ctl_run.h"
#include "writer_proc.h"

#include <curl/curl.h>
#include <jansson.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
	tc_etcd e;
	tc_control c;
	char dir[64], admin[128];
} F;

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_ALL);
	memset(&F, 0, sizeof F);
	cr_assert_eq(tc_etcd_start(&F.e, 1), 0, "cannot start an etcd member (etcd-server)");
	cr_assert_eq(tc_control_start(&F.c, F.e.urls, 0, NULL), 0, "flagshm-control did not start");
	snprintf(F.dir, sizeof F.dir, "/tmp/flagshm-ctl-XXXXXX");
	cr_assert_not_null(mkdtemp(F.dir));
	snprintf(F.admin, sizeof F.admin, "%s/admin.token", F.dir);
	char line[100];
	int n = snprintf(line, sizeof line, "%s\n", F.c.admin);
	cr_assert_eq(wp_write_file(F.admin, line, (size_t)n), 0);
}

static void teardown(void)
{
	if (F.c.pid > 0)
		tc_control_stop(&F.c, false);
	tc_etcd_stop(&F.e);
	if (!getenv("FLAGSHM_KEEP_LOGS")) {
		wp_rmdir(F.dir);
		if (F.c.dir[0])
			wp_rmdir(F.c.dir);
	}
}

TestSuite(ctl, .init = setup, .fini = teardown, .timeout = 90);

/* flagshm-ctl --url (the service) --token-file TOKEN ARGS... */
#define CTL_AS(token, ...) \
	ctl_run((const char *const[]){"--url", F.c.url, "--token-file", token, __VA_ARGS__, NULL}, \
		NULL, NULL)
#define CTL(...) CTL_AS(F.admin, __VA_ARGS__)

static json_t *out_json(const ctl_out *o)
{
	json_error_t e;
	json_t *v = json_loads(o->out, 0, &e);
	cr_assert_not_null(v, "stdout is not JSON (%s): %s\nstderr: %s", e.text, o->out, o->err);
	return v;
}

static void expect_status(ctl_out o, int want, const char *err_needle)
{
	cr_expect_eq(o.status, want, "exit %d, want %d\nstdout: %s\nstderr: %s", o.status, want,
		     o.out, o.err);
	if (err_needle)
		cr_expect_not_null(strstr(o.err, err_needle), "stderr lacks \"%s\": %s", err_needle,
				   o.err);
	ctl_out_free(&o);
}

static char *file_with(const char *name, const char *text)
{
	char *p;
	cr_assert_gt(asprintf(&p, "%s/%s", F.dir, name), 0);
	cr_assert_eq(wp_write_file(p, text, strlen(text)), 0);
	return p;
}

/* The version of flag KEY (-1 when it cannot be read). */
static long long version_of(const char *key)
{
	ctl_out o = CTL("get", key, "--json");
	long long v = -1;
	if (o.status == 0) {
		json_t *j = out_json(&o);
		v = json_integer_value(json_object_get(j, "version"));
		json_decref(j);
	}
	ctl_out_free(&o);
	return v;
}

/* A new token of ROLE in a file; the path (malloc'd). */
static char *token_file(const char *name, const char *role)
{
	ctl_out o = CTL("token", "create", name, role, "--reason", "test", "--json");
	cr_assert_eq(o.status, 0, "token create: %s", o.err);
	json_t *j = out_json(&o);
	cr_expect_eq(json_object_size(j), 3, "token create --json: %s", o.out);
	cr_expect_str_eq(json_string_value(json_object_get(j, "name")), name);
	cr_expect_str_eq(json_string_value(json_object_get(j, "role")), role);
	const char *tok = json_string_value(json_object_get(j, "token"));
	cr_assert_not_null(tok);
	char line[200];
	snprintf(line, sizeof line, "%s\n", tok);
	char *p = file_with(name, line);
	json_decref(j);
	ctl_out_free(&o);
	return p;
}

Test(ctl, flag_commands_exit_codes_and_json_shapes)
{
	char *f = file_with("f.json", "{\"defaultValue\": true, \"enabled\": false, \"rolloutPercentage\": 10,"
				      " \"targeting\": [{\"id\": \"r1\", \"variation\": true, \"rolloutPercentage\": 5}]}");
	ctl_out o = CTL("set", "checkout", f, "--reason", "new", "--json");
	cr_assert_eq(o.status, 0, "%s", o.err);
	json_t *j = out_json(&o);
	cr_expect_str_eq(json_string_value(json_object_get(j, "key")), "checkout");
	cr_expect_eq(json_integer_value(json_object_get(j, "version")), 1);
	json_decref(j);
	ctl_out_free(&o);

	o = CTL("get", "checkout", "--json");
	cr_assert_eq(o.status, 0, "%s", o.err);
	j = out_json(&o);
	cr_expect(json_is_string(json_object_get(j, "createdAt")) &&
		  json_is_string(json_object_get(j, "updatedAt")), "%s", o.out);
	json_decref(j);
	ctl_out_free(&o);

	o = CTL("enable", "checkout", "--reason", "go");
	cr_expect_eq(o.status, 0, "%s", o.err);
	cr_expect_str_eq(o.out, "enabled flag checkout: version 2\n");
	ctl_out_free(&o);
	/* options after the command, the --json form of a small edit */
	o = ctl_run((const char *const[]){"percent", "checkout", "33.5", "--reason", "ramp", "--json",
					  "--url", F.c.url, "--token-file", F.admin, NULL},
		    NULL, NULL);
	cr_assert_eq(o.status, 0, "%s", o.err);
	j = out_json(&o);
	cr_expect_eq(json_number_value(json_object_get(j, "rolloutPercentage")), 33.5);
	cr_expect_eq(json_integer_value(json_object_get(j, "version")), 3);
	json_decref(j);
	ctl_out_free(&o);
	expect_status(CTL("percent", "checkout", "7", "--rule", "r1", "--reason", "rule"), 0, NULL);
	expect_status(CTL("percent", "checkout", "7", "--rule", "nope", "--reason", "rule"), 1,
		      "no targeting rule");
	expect_status(CTL("disable", "checkout", "--reason", "stop", "--if-version", "4"), 0, NULL);
	expect_status(CTL("enable", "checkout", "--reason", "stale", "--if-version", "4"), 1,
		      "at version 5");
	cr_expect_eq(version_of("checkout"), 5);

	o = CTL("list", "--json");
	cr_assert_eq(o.status, 0, "%s", o.err);
	j = out_json(&o);
	json_t *flags = json_object_get(j, "flags");
	cr_expect_eq(json_array_size(flags), 1, "%s", o.out);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(flags, 0), "key")), "checkout");
	json_decref(j);
	ctl_out_free(&o);
	o = CTL("list");
	cr_expect_str_eq(o.out, "checkout\tdisabled\trollout 33.5%\trules 1\n");
	ctl_out_free(&o);

	/* replace: stale version 412 -> 1; the current one -> 0; no version: the one read */
	expect_status(CTL("set", "checkout", f, "--reason", "old", "--if-version", "2"), 1, "HTTP 412");
	expect_status(CTL("set", "checkout", f, "--reason", "cur", "--if-version", "5"), 0, NULL);
	expect_status(CTL("set", "checkout", f, "--reason", "blind"), 0, NULL);
	cr_expect_eq(version_of("checkout"), 7);
	/* invalid: 422 with the --check message */
	char *bad = file_with("bad.json", "{\"defaultValue\": \"x\"}");
	expect_status(CTL("set", "broken", bad, "--reason", "x"), 1, "HTTP 422");
	expect_status(CTL("get", "stream"), 1, "reserved");
	expect_status(CTL("set", "stream", f, "--reason", "x"), 1, "reserved");

	expect_status(CTL("delete", "checkout", "--reason", "gone", "--if-version", "3"), 1, "412");
	expect_status(CTL("delete", "checkout", "--reason", "gone"), 0, NULL);
	expect_status(CTL("get", "checkout"), 1, "no flag");
	expect_status(CTL("delete", "checkout", "--reason", "again"), 1, "404");
	expect_status(CTL("enable", "checkout", "--reason", "x"), 1, "no flag");
	free(f);
	free(bad);
}

Test(ctl, segments_import_export_and_bust)
{
	char *doc = file_with("doc.json",
		"{\"formatVersion\": 1, \"segments\": {\"beta\": {\"included\": [\"u1\"]}},"
		" \"flags\": [{\"key\": \"a\", \"defaultValue\": true},"
		" {\"key\": \"b\", \"defaultValue\": false, \"targeting\": [{\"id\": \"t\","
		" \"segments\": [\"beta\"], \"variation\": true}]}]}");
	ctl_out o = CTL("import", doc, "--reason", "seed", "--json");
	cr_assert_eq(o.status, 0, "%s", o.err);
	json_t *j = out_json(&o);
	cr_expect(json_is_integer(json_object_get(j, "revision")), "%s", o.out);
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "flags"), "created")), 2,
		     "%s", o.out);
	json_decref(j);
	ctl_out_free(&o);

	o = CTL("segment", "get", "beta", "--json");
	cr_expect_eq(o.status, 0, "%s", o.err);
	cr_expect_not_null(strstr(o.out, "\"u1\""), "%s", o.out);
	ctl_out_free(&o);
	char *seg = file_with("seg.json", "{\"included\": [\"u2\"]}");
	expect_status(CTL("segment", "set", "beta", seg, "--reason", "u2 too"), 0, NULL);
	expect_status(CTL("segment", "set", "gamma", seg, "--reason", "new"), 0, NULL);
	expect_status(CTL("segment", "delete", "beta", "--reason", "in use"), 1, "409");
	expect_status(CTL("segment", "delete", "gamma", "--reason", "unused"), 0, NULL);
	expect_status(CTL("segment", "get", "gamma"), 1, "no segment");

	o = CTL("export", "--json");
	cr_assert_eq(o.status, 0, "%s", o.err);
	j = out_json(&o);
	cr_expect_eq(json_integer_value(json_object_get(j, "formatVersion")), 1);
	cr_expect_eq(json_array_size(json_object_get(j, "flags")), 2, "%s", o.out);
	cr_expect_not_null(strstr(o.out, "\"u2\""), "%s", o.out);
	json_decref(j);
	/* export | import round-trips */
	char *round = file_with("round.json", o.out);
	ctl_out_free(&o);
	expect_status(CTL("import", round, "--reason", "round trip"), 0, NULL);

	o = CTL("bust", "--reason", "restore", "--json");
	cr_assert_eq(o.status, 0, "%s", o.err);
	j = out_json(&o);
	cr_expect(json_object_get(j, "epoch") != NULL, "%s", o.out);
	json_decref(j);
	ctl_out_free(&o);
	o = CTL("export", "--json");
	cr_expect_not_null(strstr(o.out, "\"epoch\""), "%s", o.out);
	ctl_out_free(&o);
	free(doc);
	free(seg);
	free(round);
}

Test(ctl, audit_shows_who_did_it_and_why)
{
	char *ed = token_file("alice", "editor");
	char *f = file_with("f.json", "{\"defaultValue\": true}");
	expect_status(CTL_AS(ed, "set", "pay", f, "--reason", "ticket FL-1"), 0, NULL);
	expect_status(CTL_AS(ed, "disable", "pay", "--reason", "incident 42"), 0, NULL);

	ctl_out o = CTL("audit", "pay", "--json");
	cr_assert_eq(o.status, 0, "%s", o.err);
	json_t *j = out_json(&o);
	json_t *en = json_object_get(j, "entries");
	cr_assert_eq(json_array_size(en), 2, "%s", o.out);
	json_t *last = json_array_get(en, 0);
	cr_expect_str_eq(json_string_value(json_object_get(last, "actor")), "alice");
	cr_expect_str_eq(json_string_value(json_object_get(last, "reason")), "incident 42");
	cr_expect_str_eq(json_string_value(json_object_get(last, "key")), "pay");
	cr_expect_eq(json_integer_value(json_object_get(last, "version")), 2);
	json_decref(j);
	ctl_out_free(&o);

	o = ctl_run((const char *const[]){"audit", "--url", F.c.url, "--token-file", F.admin, "pay",
					  "--limit", "1", NULL},
		    NULL, NULL);
	cr_expect_eq(o.status, 0, "%s", o.err);
	cr_expect(strstr(o.out, " alice update flag pay v2 reason: incident 42\n") &&
		  !strstr(o.out, "FL-1"), "%s", o.out);
	ctl_out_free(&o);

	o = CTL("audit", "--since", "2999-01-01T00:00:00Z", "--json");
	cr_expect_eq(o.status, 0, "%s", o.err);
	j = out_json(&o);
	cr_expect_eq(json_array_size(json_object_get(j, "entries")), 0, "%s", o.out);
	json_decref(j);
	ctl_out_free(&o);
	free(ed);
	free(f);
}

Test(ctl, roles_and_tokens_exit_3)
{
	char *viewer = token_file("val", "viewer");
	char *sdk = token_file("sam", "sdk");
	char *f = file_with("f.json", "{\"defaultValue\": true}");
	expect_status(CTL("set", "x", f, "--reason", "x"), 0, NULL);
	expect_status(CTL_AS(viewer, "list"), 0, NULL);
	expect_status(CTL_AS(viewer, "audit"), 0, NULL);
	expect_status(CTL_AS(viewer, "enable", "x", "--reason", "no"), 3, "HTTP 403");
	expect_status(CTL_AS(viewer, "set", "y", f, "--reason", "no"), 3, "HTTP 403");
	expect_status(CTL_AS(viewer, "token", "create", "m", "admin", "--reason", "no"), 3, "403");
	expect_status(CTL_AS(sdk, "get", "x"), 3, "403");
	expect_status(CTL_AS(sdk, "export"), 0, NULL);

	ctl_out o = CTL("token", "list", "--json");
	cr_expect_eq(o.status, 0, "%s", o.err);
	cr_expect(strstr(o.out, "\"val\"") && !strstr(o.out, "fsh_"), "%s", o.out);
	ctl_out_free(&o);
	expect_status(CTL("token", "revoke", "val", "--reason", "left"), 0, NULL);
	expect_status(CTL_AS(viewer, "list"), 3, "HTTP 401");
	expect_status(CTL("token", "revoke", "val", "--reason", "again"), 1, "404");
	expect_status(CTL("token", "create", "sam", "viewer", "--reason", "dup"), 1, "409");
	free(viewer);
	free(sdk);
	free(f);
}

/* ------------------------------------------------- retries on 412 */

/* A proxy in front of the service that, on the first PUT of a flag, makes
 * a competing edit of that flag (description "competitor") before it
 * forwards the PUT: flagshm-ctl's write then meets a 412 for certain. */
static struct {
	struct MHD_Daemon *d;
	char url[64];
	bool injected;
} P;

typedef struct pbody {
	char *p;
	size_t n;
} pbody;

static void compete(const char *path)
{
	char url[300], *resp = NULL, ifm[64];
	snprintf(url, sizeof url, "%s%s", F.c.url, path);
	int st = tc_http("GET", url, F.c.admin, NULL, NULL, &resp, NULL);
	json_t *v = st == 200 ? json_loads(resp, 0, NULL) : NULL;
	free(resp);
	if (!v)
		return;
	snprintf(ifm, sizeof ifm, "If-Match: \"%lld\"",
		 (long long)json_integer_value(json_object_get(v, "version")));
	json_object_set_new(v, "description", json_string("competitor"));
	char *body = json_dumps(v, JSON_COMPACT);
	const char *h[] = {ifm, "X-Flagshm-Reason: competing edit", "Content-Type: application/json",
			   NULL};
	tc_http("PUT", url, F.c.admin, h, body, &resp, NULL);
	free(resp);
	free(body);
	json_decref(v);
}

static enum MHD_Result proxy(void *cls, struct MHD_Connection *c, const char *url,
			     const char *method, const char *version, const char *up, size_t *up_n,
			     void **ptr)
{
	(void)cls;
	(void)version;
	pbody *b = *ptr;
	if (!b) {
		*ptr = calloc(1, sizeof *b);
		return *ptr ? MHD_YES : MHD_NO;
	}
	if (*up_n) {
		char *p = realloc(b->p, b->n + *up_n + 1);
		if (!p)
			return MHD_NO;
		memcpy(p + b->n, up, *up_n);
		b->p = p;
		b->n += *up_n;
		b->p[b->n] = '\0';
		*up_n = 0;
		return MHD_YES;
	}
	if (!P.injected && strcmp(method, "PUT") == 0 && strncmp(url, "/api/v1/flags/", 14) == 0) {
		P.injected = true;
		compete(url);
	}
	const char *names[] = {"Authorization", "If-Match", "If-None-Match", "X-Flagshm-Reason",
			       "Content-Type"};
	char hv[5][1200];
	const char *h[6];
	size_t n = 0;
	for (size_t i = 0; i < 5; i++) {
		const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, names[i]);
		if (v) {
			snprintf(hv[n], sizeof hv[n], "%s: %s", names[i], v);
			h[n] = hv[n];
			n++;
		}
	}
	h[n] = NULL;
	char full[400], *resp = NULL;
	snprintf(full, sizeof full, "%s%s", F.c.url, url);
	int st = tc_http(method, full, NULL, h, b->p, &resp, NULL);
	free(b->p);
	free(b);
	*ptr = NULL;
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(resp), resp,
								 MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result ret = MHD_queue_response(c, st ? (unsigned)st : 502, r);
	MHD_destroy_response(r);
	return ret;
}

static void proxy_start(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	P.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
			       proxy, NULL, MHD_OPTION_SOCK_ADDR, &a, MHD_OPTION_END);
	cr_assert_not_null(P.d, "cannot start the proxy");
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(P.d, MHD_DAEMON_INFO_BIND_PORT);
	snprintf(P.url, sizeof P.url, "http://127.0.0.1:%u", (unsigned)i->port);
}

Test(ctl, a_small_edit_rereads_and_retries_on_a_concurrent_edit)
{
	char *f = file_with("f.json", "{\"defaultValue\": true, \"enabled\": false}");
	expect_status(CTL("set", "race", f, "--reason", "new"), 0, NULL);
	proxy_start();
	ctl_out o = ctl_run((const char *const[]){"--url", P.url, "--token-file", F.admin, "enable",
						  "race", "--reason", "mine", NULL},
			    NULL, NULL);
	MHD_stop_daemon(P.d);
	cr_expect(P.injected, "the proxy saw no PUT");
	cr_expect_eq(o.status, 0, "stdout: %s\nstderr: %s", o.out, o.err);
	cr_expect_not_null(strstr(o.err, "race changed meanwhile (version 2 by bootstrap, we read 1); "
					 "re-reading and retrying (2/5)"), "%s", o.err);
	ctl_out_free(&o);

	/* Both edits are there: nothing was lost. */
	o = CTL("get", "race", "--json");
	json_t *j = out_json(&o);
	cr_expect(json_is_true(json_object_get(j, "enabled")), "%s", o.out);
	cr_expect_str_eq(json_string_value(json_object_get(j, "description")), "competitor");
	cr_expect_eq(json_integer_value(json_object_get(j, "version")), 3);
	json_decref(j);
	ctl_out_free(&o);
	o = CTL("audit", "race", "--json");
	j = out_json(&o);
	cr_expect_eq(json_array_size(json_object_get(j, "entries")), 3, "%s", o.out);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "entries"), 0),
							   "reason")), "mine");
	json_decref(j);
	ctl_out_free(&o);
	free(f);
}

Test(ctl, five_concurrent_small_edits_all_land)
{
	char *f = file_with("f.json", "{\"defaultValue\": true, \"rolloutPercentage\": 0}");
	expect_status(CTL("set", "ramp", f, "--reason", "new"), 0, NULL);
	enum { N = 5 };
	pid_t pid[N];
	char out[N][128], err[N][128], pct[N][8], reason[N][16];
	for (int i = 0; i < N; i++) {
		snprintf(out[i], sizeof out[i], "%s/out%d", F.dir, i);
		snprintf(err[i], sizeof err[i], "%s/err%d", F.dir, i);
		snprintf(pct[i], sizeof pct[i], "%d", 10 * (i + 1));
		snprintf(reason[i], sizeof reason[i], "editor %d", i);
		pid[i] = ctl_spawn((const char *const[]){"--url", F.c.url, "--token-file", F.admin,
							 "percent", "ramp", pct[i], "--reason",
							 reason[i], NULL},
				   out[i], err[i]);
		cr_assert_gt(pid[i], 0);
	}
	for (int i = 0; i < N; i++) {
		int st = wp_wait_exit(pid[i], 60000);
		char *e = wp_read_file(err[i], NULL);
		cr_expect_eq(st, 0, "editor %d exited %d: %s", i, st, e ? e : "");
		free(e);
	}
	cr_expect_eq(version_of("ramp"), 1 + N);
	ctl_out o = CTL("audit", "ramp", "--json");
	json_t *j = out_json(&o);
	cr_expect_eq(json_array_size(json_object_get(j, "entries")), 1 + N, "%s", o.out);
	json_decref(j);
	ctl_out_free(&o);
	free(f);
}
