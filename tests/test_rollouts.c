/*
 * tests/test_rollouts.c - progressive rollouts (docs/rollouts.md) against
 * real etcd and real flagshm-control instances: the resource and its
 * validation, a ring -> % -> 100 % rollout, approvals, pause and resume,
 * gradual and immediate rollback, the leader killed mid-rollout (the audit
 * shows every step once, in order), and a user's bucket never flipping out
 * as the share grows (through a real writer and libflagshm).
 *
 * Stage durations are 1-3 s; every wait polls with a generous bound.
 */
#include "control_proc.h"
#include "flagshm.h"
#include "shm.h"
#include "writer_proc.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
	tc_etcd e;
	tc_control c, c2;
	char *body, *hdrs;
	char dir[64], store[64], keyfile[128], log[128], state[128];
	pid_t writer;
	flagshm_store *rd;
} F;

static const char *const ttl_args[] = {"--leader-ttl", "3", NULL};

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_ALL);
	memset(&F, 0, sizeof F);
	F.writer = -1;
	cr_assert_eq(tc_etcd_start(&F.e, 1), 0, "cannot start etcd (etcd-server)");
	cr_assert_eq(tc_control_start(&F.c, F.e.urls, 0, ttl_args), 0,
		     "flagshm-control did not start");
	snprintf(F.dir, sizeof F.dir, "/tmp/flagshm-rotest-XXXXXX");
	cr_assert_not_null(mkdtemp(F.dir));
	snprintf(F.store, sizeof F.store, "ro%d", (int)getpid());
	snprintf(F.keyfile, sizeof F.keyfile, "%s/key", F.dir);
	snprintf(F.log, sizeof F.log, "%s/writer.log", F.dir);
	snprintf(F.state, sizeof F.state, "%s/state", F.dir);
}

static void teardown(void)
{
	char err[256];

	if (F.writer > 0)
		wp_stop(F.writer, 5000);
	flagshm_close(&F.rd);
	shm_store_remove(F.store, err, sizeof err);
	/* The writer's counting socket and stats object (writer/metrics): a
	 * writer stopped by a signal may leave them. */
	for (const char *const *ext = (const char *const[]){"sock", "stats", NULL}; *ext; ext++) {
		char path[160];
		snprintf(path, sizeof path, "/dev/shm/flagshm.%s.%s", F.store, *ext);
		unlink(path);
	}
	if (F.c2.pid > 0)
		tc_control_stop(&F.c2, false);
	if (F.c.pid > 0) {
		char *log = wp_read_file(F.c.log, NULL);
		cr_expect_eq(tc_control_stop(&F.c, false), 0, "flagshm-control did not stop cleanly");
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
		if (F.c2.dir[0])
			wp_rmdir(F.c2.dir);
	}
}

TestSuite(rollouts, .init = setup, .fini = teardown, .timeout = 60);

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
	F.body = F.hdrs = NULL;
	return tc_http(method, url, token, h, body, &F.body, &F.hdrs);
}
#define call(...) call_at(F.c.url, __VA_ARGS__)
#define REASON "X-Flagshm-Reason: test"
#define CREATE "If-None-Match: *"

static json_t *body_json(void)
{
	json_t *j = json_loads(F.body ? F.body : "", 0, NULL);
	cr_assert_not_null(j, "not JSON: %s", F.body);
	return j;
}

static char *mk_token(const char *name, const char *role, const char *groups)
{
	char b[256];
	snprintf(b, sizeof b, "{\"name\":\"%s\",\"role\":\"%s\",\"groups\":%s}", name, role,
		 groups ? groups : "[]");
	cr_assert_eq(call("POST", "/api/v1/tokens", F.c.admin, b, REASON, NULL), 201, "%s", F.body);
	json_t *j = body_json();
	char *t = strdup(json_string_value(json_object_get(j, "token")));
	json_decref(j);
	return t;
}

static void put_segment(const char *name, const char *json)
{
	char p[200];
	snprintf(p, sizeof p, "/api/v1/segments/%s", name);
	cr_assert_eq(call("PUT", p, F.c.admin, json, REASON, CREATE, NULL), 201, "%s", F.body);
}

static void put_flag(const char *key)
{
	char p[200];
	snprintf(p, sizeof p, "/api/v1/flags/%s", key);
	cr_assert_eq(call("PUT", p, F.c.admin,
			  "{\"defaultValue\":false,\"rolloutPercentage\":0}", REASON, CREATE, NULL),
		     201, "%s", F.body);
}

static int start_rollout(const char *flag, const char *json)
{
	char p[200];
	snprintf(p, sizeof p, "/api/v1/rollouts/%s", flag);
	return call("PUT", p, F.c.admin, json, REASON, CREATE, NULL);
}

/* GET the rollout's view at BASE (NULL: the first instance). */
static json_t *view_at(const char *base, const char *flag)
{
	char p[200];
	snprintf(p, sizeof p, "/api/v1/rollouts/%s", flag);
	if (call_at(base ? base : F.c.url, "GET", p, F.c.admin, NULL, NULL) != 200)
		return NULL;
	return json_loads(F.body, 0, NULL);
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* Wait (bounded) until the rollout's status is STATUS (and, when STAGE >=
 * -1, its stage is STAGE); returns the view or fails. */
static json_t *wait_for(const char *base, const char *flag, const char *status, int stage,
			int timeout_ms)
{
	int64_t end = wp_mono_ms() + timeout_ms;
	json_t *v = NULL;

	while (wp_mono_ms() < end) {
		json_decref(v);
		v = view_at(base, flag);
		if (v && !strcmp(jstr(v, "status"), status) &&
		    (stage < -1 || json_integer_value(json_object_get(v, "stage")) == stage))
			return v;
		wp_sleep_ms(100);
	}
	cr_assert_fail("rollout %s never reached %s (stage %d); last: %s", flag, status, stage,
		       F.body ? F.body : "(none)");
	return NULL;
}

/* The audit entries of FLAG (oldest first) by ACTOR with ACTION (NULL: any). */
static json_t *audit_of(const char *flag, const char *actor, const char *action)
{
	char p[256];
	json_t *j, *out = json_array(), *e;
	size_t i;

	snprintf(p, sizeof p, "/api/v1/audit?key=%s&limit=1000", flag);
	cr_assert_eq(call("GET", p, F.c.admin, NULL, NULL), 200, "%s", F.body);
	j = body_json();
	json_t *entries = json_object_get(j, "entries");
	for (i = json_array_size(entries); i-- > 0;) {
		e = json_array_get(entries, i);
		if ((!actor || !strcmp(jstr(e, "actor"), actor)) &&
		    (!action || !strcmp(jstr(e, "action"), action)))
			json_array_append(out, e);
	}
	json_decref(j);
	return out;
}

/* The flag's rules with ids starting with "rollout." as "id=pct,..." */
static void rollout_rules(const char *flag, char *out, size_t n)
{
	char p[200];
	json_t *f, *r;
	size_t i;

	out[0] = 0;
	snprintf(p, sizeof p, "/api/v1/flags/%s", flag);
	cr_assert_eq(call("GET", p, F.c.admin, NULL, NULL), 200);
	f = body_json();
	json_array_foreach(json_object_get(f, "targeting"), i, r) {
		const char *id = jstr(r, "id");
		json_t *pc = json_object_get(r, "rolloutPercentage");
		if (strncmp(id, "rollout.", 8))
			continue;
		snprintf(out + strlen(out), n - strlen(out), "%s%s", out[0] ? "," : "", id);
		if (pc)
			snprintf(out + strlen(out), n - strlen(out), "=%g", json_number_value(pc));
	}
	json_decref(f);
}

/* ------------------------------------------------------------ the resource */

Test(rollouts, the_resource_is_validated_versioned_and_audited)
{
	char *viewer = mk_token("v", "viewer", NULL);
	json_t *v, *j;

	put_flag("f");
	/* Bad shapes: 422 with every problem. */
	cr_expect_eq(start_rollout("f", "{\"variation\":true,\"stages\":[{\"percentage\":5,"
					"\"duration\":\"5x\"},{\"percentage\":100}]}"),
		     422, "%s", F.body);
	cr_expect(strstr(F.body, "stages[0].duration"), "%s", F.body);
	cr_expect_eq(start_rollout("f", "{\"variation\":true,\"stages\":[{\"percentage\":50,"
					"\"duration\":\"1s\"},{\"percentage\":10}],\"bogus\":1}"),
		     422, "%s", F.body);
	cr_expect(strstr(F.body, "rollout.bogus: unknown field"), "%s", F.body);
	cr_expect(strstr(F.body, "below an earlier"), "%s", F.body);
	cr_expect_eq(start_rollout("f", "{\"variation\":true,\"stages\":[{\"percentage\":5},"
					"{\"percentage\":100}]}"),
		     422, "%s", F.body);
	cr_expect(strstr(F.body, "only the last stage may have no duration"), "%s", F.body);
	/* A ring naming a segment that does not exist: the flag could not serve it. */
	cr_expect_eq(start_rollout("f", "{\"variation\":true,\"stages\":[{\"ring\":\"internal\","
					"\"segments\":[\"nope\"],\"soak\":\"1h\"},{\"percentage\":100}]}"),
		     422, "%s", F.body);
	cr_expect(strstr(F.body, "nope"), "%s", F.body);
	/* A variation of another type than the flag's. */
	cr_expect_eq(start_rollout("f", "{\"variation\":\"yes\",\"stages\":[{\"percentage\":100}]}"),
		     422, "%s", F.body);
	/* No flag: 404; a viewer: 403; no reason: 400. */
	cr_expect_eq(start_rollout("nosuch", "{\"variation\":true,\"stages\":[{\"percentage\":100}]}"),
		     404, "%s", F.body);
	cr_expect_eq(call("PUT", "/api/v1/rollouts/f", viewer,
			  "{\"variation\":true,\"stages\":[{\"percentage\":100}]}", REASON, CREATE,
			  NULL),
		     403);
	cr_expect_eq(call("PUT", "/api/v1/rollouts/f", F.c.admin,
			  "{\"variation\":true,\"stages\":[{\"percentage\":100}]}", CREATE, NULL),
		     400);
	/* Roles: sdk reads nothing, an approver starts nothing, no token is 401. */
	{
		char *sdk = mk_token("s", "sdk", NULL), *appr = mk_token("a", "approver", "[\"g\"]");
		const char *ok = "{\"variation\":true,\"stages\":[{\"percentage\":100}]}";
		cr_expect_eq(call("GET", "/api/v1/rollouts", sdk, NULL, NULL), 403);
		cr_expect_eq(call("GET", "/api/v1/rollouts", NULL, NULL, NULL), 401);
		cr_expect_eq(call("PUT", "/api/v1/rollouts/f", appr, ok, REASON, CREATE, NULL), 403);
		cr_expect_eq(call("POST", "/api/v1/rollouts/f/pause", appr, "", REASON, NULL), 403);
		free(sdk), free(appr);
	}
	/* Hostile shapes cost a bounded answer: too many stages, bad keys, bad JSON. */
	{
		char big[8192] = "{\"variation\":true,\"stages\":[";
		for (int i = 0; i < 65; i++)
			strcat(big, i ? ",{\"percentage\":1,\"duration\":\"1s\"}"
				      : "{\"percentage\":1,\"duration\":\"1s\"}");
		strcat(big, "]}");
		cr_expect_eq(start_rollout("f", big), 422, "%s", F.body);
		cr_expect(strstr(F.body, "1 to 64 stages"), "%s", F.body);
		cr_expect_eq(start_rollout("f", "{\"variation\":true,\"stages\":["), 400);
		cr_expect_eq(start_rollout("f", "[1,2]"), 422);
		cr_expect_eq(call("PUT", "/api/v1/rollouts/a%20b", F.c.admin, "{}", REASON, CREATE,
				  NULL),
			     422);
		cr_expect_eq(call("POST", "/api/v1/rollouts/f/explode", F.c.admin, "", REASON, NULL),
			     404);
		cr_expect_eq(call("DELETE", "/api/v1/rollouts/f", F.c.admin, NULL, REASON, NULL), 405);
	}
	/* A good one; its first stage lasts a day, so nothing moves under the test. */
	const char *good = "{\"variation\":true,\"stages\":[{\"percentage\":10,\"duration\":\"1d\"},"
			   "{\"percentage\":100}],\"checkInterval\":\"1s\"}";
	cr_assert_eq(start_rollout("f", good), 201, "%s", F.body);
	v = body_json();
	for (const char *k[] = {"flag", "stage", "since", "status", "lastCheck"}, **p = k;
	     p < k + 5; p++)
		cr_expect(json_object_get(v, *p), "no \"%s\" in %s", *p, F.body);
	json_decref(v);
	cr_expect_eq(start_rollout("f", good), 412, "%s", F.body);
	cr_expect_eq(call("PUT", "/api/v1/rollouts/f", F.c.admin, good, REASON, NULL), 428);
	cr_expect_eq(call("PUT", "/api/v1/rollouts/f", F.c.admin, good, REASON, "If-Match: \"7\"",
			  NULL),
		     412);
	cr_expect_eq(call("PUT", "/api/v1/rollouts/f", F.c.admin, good, REASON, "If-Match: \"1\"",
			  NULL),
		     200, "%s", F.body);
	/* The list, as a viewer. */
	cr_expect_eq(call("GET", "/api/v1/rollouts", viewer, NULL, NULL), 200);
	j = body_json();
	cr_expect_eq(json_array_size(json_object_get(j, "rollouts")), 1, "%s", F.body);
	json_decref(j);
	/* Audited: create and update by the admin token. */
	j = audit_of("f", "bootstrap", NULL);
	size_t n = 0, i;
	json_t *e;
	json_array_foreach(j, i, e)
		n += !strcmp(jstr(e, "kind"), "rollout");
	cr_expect_eq(n, 2, "rollout audit records by the admin: %zu", n);
	json_decref(j);
	free(viewer);
}

/* ------------------------------------------------- ring -> % -> 100 % */

Test(rollouts, a_full_ring_percent_100_rollout_advances_each_stage_once)
{
	char rules[512];
	json_t *v, *a, *e;
	size_t i;

	put_segment("employees", "{\"included\":[\"alice\"]}");
	put_flag("f");
	cr_assert_eq(start_rollout("f", "{\"variation\":true,\"stages\":["
					 "{\"ring\":\"internal\",\"segments\":[\"employees\"],\"soak\":\"1s\"},"
					 "{\"percentage\":1,\"duration\":\"1s\"},"
					 "{\"region\":{\"attribute\":\"region\",\"values\":[\"eu-west-1\"]},"
					 "\"duration\":\"1s\"},"
					 "{\"percentage\":25,\"duration\":\"1s\"},"
					 "{\"percentage\":100}],\"checkInterval\":\"1s\"}"),
		     201, "%s", F.body);
	v = wait_for(NULL, "f", "completed", 4, 45000);
	cr_expect_eq(json_number_value(json_object_get(v, "percentage")), 100);
	json_decref(v);
	rollout_rules("f", rules, sizeof rules);
	cr_expect_str_eq(rules, "rollout.rings,rollout.region.2,rollout.percentage=100");
	/* Every stage entered once, in order, by the orchestrator. */
	a = audit_of("f", "rollout", "advance");
	cr_expect_eq(json_array_size(a), 5, "%zu advances", json_array_size(a));
	json_array_foreach(a, i, e) {
		json_t *ro = json_object_get(e, "rollout");
		cr_expect_eq(json_integer_value(json_object_get(ro, "stage")), (json_int_t)i);
		cr_expect(json_object_get(e, "after"), "an advance without the flag's new state");
	}
	json_decref(a);
}

/* ---------------------------------------------------------- approvals */

Test(rollouts, approvals_gate_a_stage)
{
	char *rm = mk_token("rm", "approver", "[\"release-managers\"]");
	char *other = mk_token("other", "approver", "[\"sre\"]");
	char *editor = mk_token("ed", "editor", NULL);
	json_t *v;

	put_flag("f");
	cr_assert_eq(start_rollout("f", "{\"variation\":true,\"stages\":["
					 "{\"percentage\":5,\"duration\":\"1s\"},"
					 "{\"percentage\":50,\"duration\":\"1s\",\"requiredApprovals\":"
					 "[\"release-managers\"]},{\"percentage\":100}],"
					 "\"checkInterval\":\"1s\"}"),
		     201, "%s", F.body);
	v = wait_for(NULL, "f", "waiting-approval", 0, 30000);
	json_decref(v);
	/* Still waiting after a few stage durations: the gate holds. */
	wp_sleep_ms(2500);
	v = view_at(NULL, "f");
	cr_expect_str_eq(jstr(v, "status"), "waiting-approval");
	cr_expect_eq(json_integer_value(json_object_get(v, "stage")), 0);
	json_decref(v);
	cr_expect_eq(call("POST", "/api/v1/rollouts/f/approve", editor, "", REASON, NULL), 403,
		     "an editor approved: %s", F.body);
	cr_expect_eq(call("POST", "/api/v1/rollouts/f/approve", other, "", REASON, NULL), 403,
		     "a token of another group approved: %s", F.body);
	cr_expect_eq(call("POST", "/api/v1/rollouts/f/approve", rm, "", NULL), 400);
	cr_expect_eq(call("POST", "/api/v1/rollouts/f/approve", rm, "", REASON, NULL), 200, "%s",
		     F.body);
	v = wait_for(NULL, "f", "completed", 2, 30000);
	json_decref(v);
	json_t *a = audit_of("f", "rm", "approve");
	cr_expect_eq(json_array_size(a), 1);
	json_decref(a);
	free(rm), free(other), free(editor);
}

/* ------------------------------------------------------- pause/resume */

Test(rollouts, pause_holds_the_stage_and_resume_continues)
{
	json_t *v;

	put_flag("f");
	cr_assert_eq(start_rollout("f", "{\"variation\":true,\"stages\":["
					 "{\"percentage\":10,\"duration\":\"2s\"},"
					 "{\"percentage\":100}],\"checkInterval\":\"1s\"}"),
		     201, "%s", F.body);
	json_decref(wait_for(NULL, "f", "running", 0, 30000));
	cr_assert_eq(call("POST", "/api/v1/rollouts/f/pause", F.c.admin, "", REASON, NULL), 200,
		     "%s", F.body);
	cr_expect_eq(call("POST", "/api/v1/rollouts/f/pause", F.c.admin, "", REASON, NULL), 409);
	wp_sleep_ms(3500); /* longer than the stage: a paused rollout does not move */
	v = view_at(NULL, "f");
	cr_expect_str_eq(jstr(v, "status"), "paused");
	cr_expect_eq(json_integer_value(json_object_get(v, "stage")), 0);
	json_decref(v);
	cr_assert_eq(call("POST", "/api/v1/rollouts/f/resume", F.c.admin, "", REASON, NULL), 200,
		     "%s", F.body);
	json_decref(wait_for(NULL, "f", "completed", 1, 30000));
}

/* ------------------------------------------------------------ rollback */

Test(rollouts, a_manual_rollback_steps_down_and_immediate_kills)
{
	char rules[512];
	json_t *a, *e;
	size_t i;
	double want[] = {50, 20, 0};

	put_flag("f");
	put_flag("g");
	const char *spec = "{\"variation\":true,\"stages\":[{\"percentage\":100}],"
			   "\"rollback\":{\"steps\":[50,20,0],\"interval\":\"1s\"},"
			   "\"checkInterval\":\"1s\"}";
	cr_assert_eq(start_rollout("f", spec), 201, "%s", F.body);
	cr_assert_eq(start_rollout("g", spec), 201, "%s", F.body);
	json_decref(wait_for(NULL, "f", "completed", 0, 30000));
	json_decref(wait_for(NULL, "g", "completed", 0, 30000));
	rollout_rules("f", rules, sizeof rules);
	cr_expect_str_eq(rules, "rollout.percentage=100");
	cr_assert_eq(call("POST", "/api/v1/rollouts/f/rollback", F.c.admin, "", REASON, NULL), 200,
		     "%s", F.body);
	json_decref(wait_for(NULL, "f", "rolled-back", -2, 30000));
	rollout_rules("f", rules, sizeof rules);
	cr_expect_str_eq(rules, "");
	/* 100 -> 50 (the request) -> 20 -> 0 (the orchestrator), each once. */
	a = audit_of("f", NULL, NULL);
	size_t k = 0;
	json_array_foreach(a, i, e) {
		const char *act = jstr(e, "action");
		if (strcmp(act, "rollback") && strcmp(act, "rollback-step"))
			continue;
		json_t *rr = NULL, *r;
		size_t q;
		double pct = 0;
		json_array_foreach(json_object_get(json_object_get(e, "after"), "targeting"), q, r)
			if (!strcmp(jstr(r, "id"), "rollout.percentage"))
				rr = r;
		if (rr)
			pct = json_number_value(json_object_get(rr, "rolloutPercentage"));
		cr_expect(k < 3 && pct == want[k], "rollback record %zu serves %g%%", k, pct);
		k++;
	}
	cr_expect_eq(k, 3, "%zu rollback records", k);
	json_decref(a);
	/* The kill switch: at once, from 100 % to nothing. */
	cr_assert_eq(call("POST", "/api/v1/rollouts/g/rollback?immediate=true", F.c.admin, "",
			  REASON, NULL),
		     200, "%s", F.body);
	a = json_loads(F.body, 0, NULL);
	cr_expect_str_eq(jstr(a, "status"), "rolled-back");
	json_decref(a);
	rollout_rules("g", rules, sizeof rules);
	cr_expect_str_eq(rules, "");
	cr_expect_eq(call("POST", "/api/v1/rollouts/g/rollback", F.c.admin, "", REASON, NULL), 409);
}

/* -------------------------------------------------------- leader killed */

Test(rollouts, the_leader_killed_mid_rollout_the_other_resumes_without_repeating)
{
	json_t *v, *a, *e;
	size_t i;
	char *log;
	tc_control *leader, *other;

	cr_assert_eq(tc_control_start(&F.c2, F.e.urls, 0, ttl_args), 0);
	put_flag("f");
	cr_assert_eq(start_rollout("f", "{\"variation\":true,\"stages\":["
					 "{\"percentage\":1,\"duration\":\"1s\"},"
					 "{\"percentage\":2,\"duration\":\"1s\"},"
					 "{\"percentage\":5,\"duration\":\"2s\"},"
					 "{\"percentage\":10,\"duration\":\"2s\"},"
					 "{\"percentage\":20,\"duration\":\"1s\"},"
					 "{\"percentage\":50,\"duration\":\"1s\"},"
					 "{\"percentage\":100}],\"checkInterval\":\"1s\"}"),
		     201, "%s", F.body);
	json_decref(wait_for(NULL, "f", "running", 2, 30000));
	log = wp_read_file(F.c.log, NULL);
	bool first = log && strstr(log, "rollout leader");
	free(log);
	leader = first ? &F.c : &F.c2;
	other = first ? &F.c2 : &F.c;
	log = wp_read_file(other->log, NULL);
	cr_assert(!log || !strstr(log, "rollout leader"), "two leaders");
	free(log);
	tc_control_stop(leader, true); /* SIGKILL: the lease must expire */
	v = wait_for(other->url, "f", "completed", 6, 45000);
	json_decref(v);
	log = wp_read_file(other->log, NULL);
	cr_expect(log && strstr(log, "rollout leader"), "the other instance never led");
	free(log);
	if (leader == &F.c) {
		/* The fixture's calls go to F.c: point them at the survivor. */
		tc_control tmp = F.c;
		F.c = F.c2;
		F.c2 = tmp;
		F.c2.pid = 0;
		memcpy(F.c.admin, F.c2.admin, sizeof F.c.admin); /* the token etcd holds */
	}
	a = audit_of("f", "rollout", "advance");
	cr_expect_eq(json_array_size(a), 7, "%zu advances", json_array_size(a));
	json_array_foreach(a, i, e) {
		json_t *ro = json_object_get(e, "rollout");
		cr_expect_eq(json_integer_value(json_object_get(ro, "stage")), (json_int_t)i,
			     "advance %zu entered stage %lld", i,
			     (long long)json_integer_value(json_object_get(ro, "stage")));
		cr_expect_eq(json_integer_value(json_object_get(ro, "steps")), (json_int_t)i + 1);
	}
	json_decref(a);
}

/* --------------------------------------------- buckets never flip out */

#define USERS 3000

Test(rollouts, a_users_bucket_never_flips_out_as_the_share_grows)
{
	static bool was_in[USERS];
	char line[128], *sdk = mk_token("host1", "sdk", NULL);
	double last_share = -1;
	int seen_shares = 0;

	put_flag("f");
	int n = snprintf(line, sizeof line, "%s\n", sdk);
	cr_assert_eq(wp_write_file(F.keyfile, line, (size_t)n), 0);
	const char *argv[] = {"--store", F.store, "--source", F.c.url, "--key-file", F.keyfile,
			      "--state-dir", F.state, "--stream", "--poll-interval", "1", NULL};
	F.writer = wp_spawn(argv, F.log, NULL);
	cr_assert_gt(F.writer, 0);
	int rc = -1;
	for (int i = 0; i < 3000 && rc != 0; i++)
		if ((rc = wp_open_existing(F.store, &F.rd)))
			wp_sleep_ms(10);
	cr_assert_eq(rc, 0, "the writer did not create its store");
	cr_assert_eq(start_rollout("f", "{\"variation\":true,\"stages\":["
					 "{\"percentage\":5,\"duration\":\"2s\"},"
					 "{\"percentage\":20,\"duration\":\"2s\"},"
					 "{\"percentage\":60,\"duration\":\"2s\"},"
					 "{\"percentage\":100}],\"checkInterval\":\"1s\"}"),
		     201, "%s", F.body);
	int64_t end = wp_mono_ms() + 50000;
	while (wp_mono_ms() < end) {
		flagshm_view v;
		int in = 0;
		cr_assert_eq(flagshm_view_acquire(F.rd, &v), 0);
		for (int u = 0; u < USERS; u++) {
			flagshm_ctx c;
			char id[32];
			snprintf(id, sizeof id, "user-%d", u);
			flagshm_ctx_init(&c);
			flagshm_ctx_string(&c, "userId", id);
			bool on = flagshm_view_bool(&v, "f", &c, false);
			cr_assert(!was_in[u] || on, "user %d flipped out of the rollout", u);
			was_in[u] = on;
			in += on;
		}
		flagshm_view_release(&v);
		double share = 100.0 * in / USERS;
		if (share != last_share)
			seen_shares++;
		last_share = share;
		if (in == USERS)
			break;
		wp_sleep_ms(50);
	}
	cr_expect_eq(last_share, 100, "the workers never saw 100%% (last %g%%)", last_share);
	cr_expect_geq(seen_shares, 3, "the workers saw only %d distinct shares", seen_shares);
	free(sdk);
}

/* ------------------------------------- guards: a real Prometheus, workers */

#define PROMETHEUS "/usr/bin/prometheus"

static struct {
	pid_t prom, load[4];
	unsigned port;
	char url[64], addr[64];
} P = {.prom = -1};

/* The writer syncing from the control plane, its exporter on a free port. */
static void start_metrics_writer(void)
{
	char line[128], *sdk = mk_token("host1", "sdk", NULL);
	int n = snprintf(line, sizeof line, "%s\n", sdk);
	const char *tag = "serving metrics on http://";

	free(sdk);
	cr_assert_eq(wp_write_file(F.keyfile, line, (size_t)n), 0);
	const char *argv[] = {"--store", F.store, "--source", F.c.url, "--key-file", F.keyfile,
			      "--state-dir", F.state, "--stream", "--poll-interval", "1",
			      "--metrics-listen", "127.0.0.1:0", NULL};
	F.writer = wp_spawn(argv, F.log, NULL);
	cr_assert_gt(F.writer, 0);
	int64_t end = wp_mono_ms() + 30000;
	while (wp_mono_ms() < end && !P.addr[0]) {
		char *log = wp_read_file(F.log, NULL);
		const char *at = log ? strstr(log, tag) : NULL;
		if (at) {
			at += strlen(tag);
			size_t k = strcspn(at, "/\n");
			snprintf(P.addr, sizeof P.addr, "%.*s", (int)k, at);
		}
		free(log);
		if (!P.addr[0])
			wp_sleep_ms(20);
	}
	cr_assert(P.addr[0], "the writer did not start its exporter");
	int rc = -1;
	for (int i = 0; i < 3000 && rc != 0; i++)
		if ((rc = wp_open_existing(F.store, &F.rd)))
			wp_sleep_ms(10);
	cr_assert_eq(rc, 0, "the writer did not create its store");
}

/* Prometheus on 127.0.0.1 scraping the writer every second. */
static void start_prometheus(void)
{
	char conf[160], plog[160], text[512], listen[64], cfg[200], tsdb[200];

	cr_assert_eq(access(PROMETHEUS, X_OK), 0,
		     PROMETHEUS " is missing: install Debian's prometheus (scripts/install-deps.sh)");
	snprintf(conf, sizeof conf, "%s/prometheus.yml", F.dir);
	snprintf(plog, sizeof plog, "%s/prometheus.log", F.dir);
	snprintf(text, sizeof text,
		 "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
		 "scrape_configs:\n  - job_name: flagshm\n    static_configs:\n"
		 "      - targets: ['%s']\n",
		 P.addr);
	cr_assert_eq(wp_write_file(conf, text, strlen(text)), 0);
	for (int attempt = 0; attempt < 3 && P.prom < 0; attempt++) {
		P.port = tc_free_port();
		snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%u", P.port);
		snprintf(cfg, sizeof cfg, "--config.file=%s", conf);
		snprintf(tsdb, sizeof tsdb, "--storage.tsdb.path=%s/tsdb", F.dir);
		const char *argv[] = {cfg, tsdb, listen, "--log.level=warn",
				      "--storage.tsdb.retention.time=1h", NULL};
		P.prom = wp_spawn_prog(PROMETHEUS, argv, plog, NULL);
		cr_assert_gt(P.prom, 0);
		snprintf(P.url, sizeof P.url, "http://127.0.0.1:%u", P.port);
		char url[128], *b = NULL;
		snprintf(url, sizeof url, "%s/-/ready", P.url);
		bool ready = false;
		int64_t end = wp_mono_ms() + 30000;
		while (!ready && wp_mono_ms() < end && wp_wait_exit(P.prom, 0) == -2) {
			ready = tc_http("GET", url, NULL, NULL, NULL, &b, NULL) == 200;
			free(b);
			b = NULL;
			if (!ready)
				wp_sleep_ms(100);
		}
		if (!ready) {
			wp_stop(P.prom, 5000);
			P.prom = -1;
		}
	}
	char *log = wp_read_file(plog, NULL);
	cr_assert_gt(P.prom, 0, "Prometheus did not become ready; its log:\n%s", log ? log : "");
	free(log);
}

static void start_load(int procs, const char *flag, int seconds, int per_s, double e_on,
		       double e_off)
{
	const char *prog = getenv("FLAGSHM_ROLLOUT_LOAD");
	char secs[16], rate[16], on[32], off[32], log[160];

	cr_assert(prog && *prog, "FLAGSHM_ROLLOUT_LOAD is not set");
	snprintf(secs, sizeof secs, "%d", seconds);
	snprintf(rate, sizeof rate, "%d", per_s);
	snprintf(on, sizeof on, "%g", e_on);
	snprintf(off, sizeof off, "%g", e_off);
	snprintf(log, sizeof log, "%s/load.log", F.dir);
	const char *argv[] = {F.store, flag, secs, rate, on, off, NULL};
	for (int i = 0; i < procs && i < 4; i++) {
		P.load[i] = wp_spawn_prog(prog, argv, log, NULL);
		cr_assert_gt(P.load[i], 0);
	}
}

static void guard_fini(void)
{
	for (int i = 0; i < 4; i++)
		if (P.load[i] > 0)
			wp_stop(P.load[i], 5000);
	if (P.prom > 0)
		wp_stop(P.prom, 10000);
	memset(&P, 0, sizeof P);
	P.prom = -1;
	/* The suite's teardown runs after this. */
}

static void guard_init(void)
{
	memset(&P, 0, sizeof P);
	P.prom = -1;
	/* The suite's setup ran before this. */
	put_flag("f");
	start_metrics_writer();
	start_prometheus();
}

/* The share of USERS contexts that get true now (what workers see). */
static double share_now(void)
{
	flagshm_view v;
	int in = 0;

	cr_assert_eq(flagshm_view_acquire(F.rd, &v), 0);
	for (int u = 0; u < 2000; u++) {
		flagshm_ctx c;
		char id[32];
		snprintf(id, sizeof id, "probe-%d", u);
		flagshm_ctx_init(&c);
		flagshm_ctx_string(&c, "userId", id);
		in += flagshm_view_bool(&v, "f", &c, false);
	}
	flagshm_view_release(&v);
	/* Rounded to the nearest step of 5 points: the probe is a sample. */
	return 5.0 * (int)((100.0 * in / 2000) / 5 + 0.5);
}

Test(rollouts, a_worse_treatment_is_detected_and_rolled_back_gradually, .init = guard_init,
     .fini = guard_fini)
{
	char spec[1024];
	double seen[16];
	int nseen = 0;
	json_t *v = NULL;

	/* Treatment errs 25% of the time, control 1%. */
	start_load(2, "f", 55, 250, 0.25, 0.01);
	snprintf(spec, sizeof spec,
		 "{\"variation\":true,\"stages\":[{\"percentage\":50,\"duration\":\"1m\"},"
		 "{\"percentage\":100}],\"checkInterval\":\"1s\","
		 "\"successCriteria\":{\"minimumSampleSize\":100,\"maxRegressionVsControl\":0.02,"
		 "\"confidence\":0.99},"
		 "\"rollback\":{\"steps\":[25,10,0],\"interval\":\"20s\"},"
		 "\"metrics\":{\"prometheus\":\"%s\",\"window\":\"1m\"}}",
		 P.url);
	cr_assert_eq(start_rollout("f", spec), 201, "%s", F.body);
	/* Watch what the workers are served until the rollout is rolled back. */
	int64_t end = wp_mono_ms() + 50000;
	while (wp_mono_ms() < end) {
		double s = share_now();
		if (nseen == 0 || (seen[nseen - 1] != s && nseen < 16))
			seen[nseen++] = s;
		json_decref(v);
		v = view_at(NULL, "f");
		if (v && !strcmp(jstr(v, "status"), "rolled-back") && s == 0)
			break;
		wp_sleep_ms(100);
	}
	cr_assert(v && !strcmp(jstr(v, "status"), "rolled-back"), "not rolled back: %s", F.body);
	char list[256] = "";
	for (int i = 0; i < nseen; i++)
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s%g", i ? " " : "", seen[i]);
	/* 0 (before), 50, then down the steps: 25, then (10 or straight) 0. */
	cr_expect(nseen >= 4 && seen[0] == 0 && seen[1] == 50 && seen[2] == 25 &&
			  seen[nseen - 1] == 0,
		  "the workers saw %s", list);
	for (int i = 2; i < nseen; i++)
		cr_expect_lt(seen[i], seen[i - 1], "the workers saw %s", list);
	/* The decision and its figures are in the audit record. */
	json_t *a = audit_of("f", "rollout", "rollback");
	cr_assert_eq(json_array_size(a), 1, "rollback records: %zu", json_array_size(a));
	json_t *m = json_object_get(json_array_get(a, 0), "measurements");
	cr_expect_str_eq(jstr(m, "verdict"), "fail");
	double ter = json_number_value(json_object_get(json_object_get(m, "treatment"), "errorRate"));
	double cer = json_number_value(json_object_get(json_object_get(m, "control"), "errorRate"));
	cr_expect(ter > 0.1 && cer < 0.05, "treatment %g, control %g", ter, cer);
	cr_expect(json_number_value(json_object_get(m, "z")) >
		  json_number_value(json_object_get(m, "zCritical")));
	json_decref(a);
	cr_log_info("the workers saw %s; last: %s", list, F.body);
	json_decref(v);
}

Test(rollouts, a_healthy_treatment_passes_every_guard_ring_1_percent_to_100,
     .init = guard_init, .fini = guard_fini)
{
	char spec[1024];
	json_t *v, *a, *e;
	size_t i;

	/* The ring: users whose id ends in 7 (a tenth of the workers' users). */
	put_segment("employees", "{\"conditions\":[{\"attribute\":\"userId\","
				 "\"operator\":\"endsWith\",\"value\":\"7\"}]}");
	start_load(2, "f", 55, 200, 0.01, 0.01);
	snprintf(spec, sizeof spec,
		 "{\"variation\":true,\"stages\":["
		 "{\"ring\":\"internal\",\"segments\":[\"employees\"],\"soak\":\"2s\"},"
		 "{\"percentage\":1,\"duration\":\"2s\"},"
		 "{\"percentage\":20,\"duration\":\"2s\"},{\"percentage\":100}],"
		 "\"checkInterval\":\"1s\",\"successCriteria\":{\"minimumSampleSize\":30,"
		 "\"errorRateThreshold\":0.2,\"latencyP99Threshold\":0.5,"
		 "\"maxRegressionVsControl\":0.05},"
		 "\"metrics\":{\"prometheus\":\"%s\",\"window\":\"1m\"}}",
		 P.url);
	cr_assert_eq(start_rollout("f", spec), 201, "%s", F.body);
	v = wait_for(NULL, "f", "completed", 3, 55000);
	json_decref(v);
	a = audit_of("f", "rollout", "advance");
	cr_expect_eq(json_array_size(a), 4, "%zu advances", json_array_size(a));
	/* Leaving each stage took a passing check on that stage's requests. */
	json_array_foreach(a, i, e) {
		json_t *m = json_object_get(e, "measurements");
		if (i == 0)
			continue;
		cr_expect_str_eq(jstr(m, "verdict"), "pass", "advance %zu: %s", i, jstr(m, "reason"));
		cr_expect_geq(json_number_value(json_object_get(json_object_get(m, "treatment"),
								"requests")), 30);
		cr_expect_lt(json_number_value(json_object_get(json_object_get(m, "treatment"), "p99")),
			     0.5);
	}
	json_decref(a);
	/* Flag debt from Prometheus: a flag nobody evaluates is reported, f is not. */
	put_flag("idle");
	char path[256];
	snprintf(path, sizeof path, "/api/v1/reports/stale?prometheus=%s&days=1", P.url);
	cr_assert_eq(call("GET", path, F.c.admin, NULL, NULL), 200, "%s", F.body);
	json_t *j = body_json(), *x;
	bool idle = false;
	json_array_foreach(json_object_get(j, "flags"), i, x) {
		cr_expect_str_neq(jstr(x, "key"), "f", "%s", F.body);
		idle = idle || !strcmp(jstr(x, "key"), "idle");
	}
	cr_expect(idle && strstr(F.body, "not evaluated in 1 days"), "%s", F.body);
	json_decref(j);
}

Test(rollouts, low_traffic_waits_for_samples_then_pauses_saying_why, .init = guard_init,
     .fini = guard_fini)
{
	char spec[1024];
	json_t *v;

	/* A trickle, and a terrible one: still never a failure without samples. */
	start_load(1, "f", 55, 3, 0.9, 0.9);
	snprintf(spec, sizeof spec,
		 "{\"variation\":true,\"stages\":[{\"percentage\":50,\"duration\":\"1s\"},"
		 "{\"percentage\":100}],\"checkInterval\":\"1s\","
		 "\"successCriteria\":{\"minimumSampleSize\":1000,\"errorRateThreshold\":0.01,"
		 "\"maxWait\":\"4s\"},"
		 "\"metrics\":{\"prometheus\":\"%s\",\"window\":\"1m\"}}",
		 P.url);
	cr_assert_eq(start_rollout("f", spec), 201, "%s", F.body);
	v = wait_for(NULL, "f", "waiting-samples", 0, 30000);
	json_decref(v);
	v = wait_for(NULL, "f", "paused", 0, 30000);
	cr_expect(strstr(jstr(v, "message"), "maxWait") &&
			  strstr(jstr(v, "message"), "minimumSampleSize"),
		  "%s", F.body);
	cr_expect_str_eq(jstr(json_object_get(v, "lastCheck"), "verdict"), "wait");
	json_decref(v);
	json_t *a = audit_of("f", "rollout", NULL);
	json_t *e;
	size_t i;
	json_array_foreach(a, i, e)
		cr_expect(strncmp(jstr(e, "action"), "rollback", 8), "rolled back on no data");
	json_decref(a);
}

/* ------------------------------------------------------------ flagshm-ctl */

#include "ctl_run.h"

static ctl_out ctl(const char *a0, const char *a1, const char *a2, const char *a3,
		   const char *a4, const char *a5)
{
	char tokfile[200];
	snprintf(tokfile, sizeof tokfile, "%s/admin.token", F.dir);
	char line[128];
	int n = snprintf(line, sizeof line, "%s\n", F.c.admin);
	cr_assert_eq(wp_write_file(tokfile, line, (size_t)n), 0);
	const char *argv[12] = {"--url", F.c.url, "--token-file", tokfile};
	const char *rest[] = {a0, a1, a2, a3, a4, a5};
	int k = 4;
	for (int i = 0; i < 6 && rest[i]; i++)
		argv[k++] = rest[i];
	argv[k] = NULL;
	return ctl_run(argv, NULL, NULL);
}

Test(rollouts, flagshm_ctl_starts_steers_shows_and_draws_a_rollout)
{
	char file[200], svg[200];
	ctl_out o;

	put_flag("f");
	snprintf(file, sizeof file, "%s/rollout.json", F.dir);
	snprintf(svg, sizeof svg, "%s/report.svg", F.dir);
	const char *spec = "{\"variation\":true,\"stages\":[{\"percentage\":10,\"duration\":\"1s\"},"
			   "{\"percentage\":50,\"duration\":\"1s\"},{\"percentage\":100}],"
			   "\"checkInterval\":\"1s\"}";
	cr_assert_eq(wp_write_file(file, spec, strlen(spec)), 0);
	/* Usage errors: 2. */
	o = ctl("rollout", "start", "f", file, NULL, NULL);
	cr_expect_eq(o.status, 2, "start without --reason: %d %s", o.status, o.err);
	ctl_out_free(&o);
	o = ctl("rollout", "frobnicate", "f", NULL, NULL, NULL);
	cr_expect_eq(o.status, 2);
	ctl_out_free(&o);
	/* An approver with a group, through the ctl. */
	o = ctl("token", "create", "rm", "approver", "--group", "release-managers");
	cr_expect_eq(o.status, 2, "token create without --reason");
	ctl_out_free(&o);
	{
		const char *argv[] = {"--url", F.c.url, "--token-file", NULL, "token", "create", "rm",
				      "approver", "--group", "release-managers", "--reason", "t",
				      "--json", NULL};
		char tokfile[200];
		snprintf(tokfile, sizeof tokfile, "%s/admin.token", F.dir);
		argv[3] = tokfile;
		o = ctl("status", NULL, NULL, NULL, NULL, NULL); /* writes the token file */
		ctl_out_free(&o);
		o = ctl_run(argv, NULL, NULL);
		cr_expect_eq(o.status, 0, "%s", o.err);
		cr_expect(strstr(o.out, "release-managers"), "%s", o.out);
		ctl_out_free(&o);
	}
	o = ctl("rollout", "start", "f", file, "--reason", "ship it");
	cr_assert_eq(o.status, 0, "%s", o.err);
	ctl_out_free(&o);
	o = ctl("rollout", "status", "f", "--watch", NULL, NULL); /* returns once completed */
	cr_expect_eq(o.status, 0, "%s", o.err);
	cr_expect(strstr(o.out, "completed") && strstr(o.out, "[####################]"), "%s",
		  o.out);
	ctl_out_free(&o);
	o = ctl("rollout", "status", "--json", NULL, NULL, NULL);
	cr_expect_eq(o.status, 0);
	cr_expect(strstr(o.out, "\"status\":\"completed\""), "%s", o.out);
	ctl_out_free(&o);
	o = ctl("rollout", "rollback", "f", "--immediate", "--reason", "kill");
	cr_expect_eq(o.status, 0, "%s", o.err);
	cr_expect(strstr(o.out, "rolled-back"), "%s", o.out);
	ctl_out_free(&o);
	o = ctl("rollout", "pause", "f", "--reason", "x", NULL);
	cr_expect_eq(o.status, 1, "pausing a rolled-back rollout: %d", o.status);
	ctl_out_free(&o);
	o = ctl("rollout", "report", "f", "--svg", svg, NULL);
	cr_expect_eq(o.status, 0, "%s", o.err);
	ctl_out_free(&o);
	char *s = wp_read_file(svg, NULL);
	cr_assert_not_null(s);
	cr_expect(strstr(s, "<svg") && strstr(s, "</svg>") && strstr(s, "advance") &&
			  strstr(s, "rollback-now") && strstr(s, "<polyline"),
		  "%s", s);
	free(s);
	o = ctl("stale", "--json", NULL, NULL, NULL, NULL);
	cr_expect_eq(o.status, 0, "%s", o.err);
	cr_expect(strstr(o.out, "\"flags\""), "%s", o.out);
	ctl_out_free(&o);
}

/* ------------------------------------------------- a hostile Prometheus */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

/* Answers every query with MODE: 0 a body over the client's 1 MiB bound,
 * 1 not JSON, 2 a "success" with negative and NaN counts, 3 a slow drip. */
static struct {
	int fd, mode;
	volatile bool stop;
	pthread_t th;
	unsigned port;
} H;

static void *hostile(void *arg)
{
	(void)arg;
	while (!H.stop) {
		struct pollfd p = {.fd = H.fd, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0)
			continue;
		int c = accept(H.fd, NULL, NULL);
		if (c < 0)
			continue;
		char req[4096];
		(void)!read(c, req, sizeof req);
		const char *hdr = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
		(void)!write(c, hdr, strlen(hdr));
		if (H.mode == 0) {
			static char junk[65536];
			memset(junk, '[', sizeof junk);
			for (int i = 0; i < 40 && !H.stop; i++) /* 2.5 MiB */
				if (write(c, junk, sizeof junk) <= 0)
					break;
		} else if (H.mode == 1) {
			(void)!write(c, "<html>no</html>", 15);
		} else if (H.mode == 2) {
			const char *b = "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\","
					"\"result\":[{\"metric\":{},\"value\":[1,\"-5e9\"]},"
					"{\"metric\":{},\"value\":[1,\"NaN\"]}]}}";
			(void)!write(c, b, strlen(b));
		} else {
			for (int i = 0; i < 100 && !H.stop; i++) { /* 10 s: past the 5 s bound */
				(void)!write(c, " ", 1);
				wp_sleep_ms(100);
			}
		}
		close(c);
	}
	return NULL;
}

static void hostile_start(int mode)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;

	H.mode = mode;
	H.stop = false;
	H.fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(H.fd, 0);
	cr_assert_eq(bind(H.fd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(H.fd, 16), 0);
	getsockname(H.fd, (struct sockaddr *)&a, &len);
	H.port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&H.th, NULL, hostile, NULL), 0);
}

static void hostile_stop(void)
{
	H.stop = true;
	pthread_join(H.th, NULL);
	close(H.fd);
}

Test(rollouts, a_hostile_or_absent_prometheus_never_passes_or_fails_a_stage)
{
	char spec[1024], key[8];
	json_t *v;

	/* Four hostile answers and a port where nothing listens. */
	for (int mode = 0; mode < 5; mode++) {
		snprintf(key, sizeof key, "f%d", mode);
		put_flag(key);
		unsigned port;
		if (mode < 4) {
			hostile_start(mode);
			port = H.port;
		} else {
			port = tc_free_port();
		}
		snprintf(spec, sizeof spec,
			 "{\"variation\":true,\"stages\":[{\"percentage\":10,\"duration\":\"1s\"},"
			 "{\"percentage\":100}],\"checkInterval\":\"1s\","
			 "\"successCriteria\":{\"minimumSampleSize\":10,\"errorRateThreshold\":0.01,"
			 "\"maxWait\":\"%s\"},"
			 "\"metrics\":{\"prometheus\":\"http://127.0.0.1:%u\",\"window\":\"1m\"}}",
			 mode == 3 ? "6s" : "2s", port);
		cr_assert_eq(start_rollout(key, spec), 201, "%s", F.body);
		v = wait_for(NULL, key, "paused", 0, 40000);
		cr_expect(strstr(jstr(v, "message"), "maxWait"), "mode %d: %s", mode, F.body);
		cr_expect_str_eq(jstr(json_object_get(v, "lastCheck"), "verdict"), "wait",
				 "mode %d: %s", mode, F.body);
		json_decref(v);
		if (mode < 4)
			hostile_stop();
		json_t *a = audit_of(key, "rollout", "advance");
		cr_expect_eq(json_array_size(a), 1, "mode %d: it went past stage 0", mode);
		json_decref(a);
	}
	/* The server is still well. */
	cr_expect_eq(call("GET", "/api/v1/rollouts", F.c.admin, NULL, NULL), 200);
}

Test(rollouts, stale_flags_are_reported_with_owner_and_action)
{
	json_t *j, *e;
	size_t i;
	bool found = false;

	cr_assert_eq(call("PUT", "/api/v1/flags/old", F.c.admin,
			  "{\"defaultValue\":false,\"owner\":\"team-a\",\"expiresAt\":"
			  "\"2020-01-01T00:00:00Z\"}",
			  REASON, CREATE, NULL),
		     201, "%s", F.body);
	put_flag("fresh");
	cr_assert_eq(call("GET", "/api/v1/reports/stale", F.c.admin, NULL, NULL), 200, "%s", F.body);
	j = body_json();
	json_array_foreach(json_object_get(j, "flags"), i, e) {
		cr_expect_str_neq(jstr(e, "key"), "fresh");
		if (!strcmp(jstr(e, "key"), "old")) {
			found = true;
			cr_expect_str_eq(jstr(e, "owner"), "team-a");
			cr_expect(strstr(F.body, "past its expiresAt"), "%s", F.body);
			cr_expect(*jstr(e, "suggestedAction"));
		}
	}
	cr_expect(found, "%s", F.body);
	json_decref(j);
	cr_expect_eq(call("GET", "/api/v1/reports/stale?days=0", F.c.admin, NULL, NULL), 400);
	cr_expect_eq(call("GET", "/api/v1/reports/stale?prometheus=file:///etc/passwd", F.c.admin,
			  NULL, NULL),
		     400);
}
