/*
 * control/rollout_run.c - the orchestrator: one thread per flagshm-control
 * instance; the instance holding PREFIX/meta/rollout-leader (put with an
 * etcd lease of --leader-ttl seconds, kept alive every TTL/3) drives every
 * rollout, the others wait for the key to vanish.
 *
 * Each pass (every 250 ms) reads each rollout, runs its guard when due,
 * asks the state machine (rollout_step.c) what happens now, and commits
 * the answer as one txn that also compares the leader key's
 * create_revision: a leader that lost its lease cannot step, and a new
 * leader starts from what etcd holds (stage, since, status), so no step is
 * repeated or skipped.
 */
#include "rollout_int.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Two threads: `lease` acquires and keeps the leader key (never blocked
 * by a slow Prometheus), `drive` steps the rollouts while leader. */
typedef struct cs_ro_runner {
	cs_server *s;
	pthread_t lease_th, drive_th;
	volatile bool stop;
	bool started;
	unsigned ttl;
	char id[64];
	char *k_lead;
	_Atomic bool leader;	    /* written by lease, read by drive */
	_Atomic int64_t leader_rev; /* written by lease before leader=true; read by drive */
	int64_t lease, keepalive_ms; /* lease thread only */
} cs_ro_runner;

static cs_ro_runner g;

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void lease_revoke(int64_t id)
{
	char b[32], err[128];
	json_t *resp = NULL;

	snprintf(b, sizeof b, "%lld", (long long)id);
	cs_etcd_call(g.s->etcd, "/v3/lease/revoke", json_pack("{s:s}", "ID", b), &resp, err,
		     sizeof err);
	json_decref(resp);
}

static void try_lead(void)
{
	char b[32], err[256];
	json_t *resp = NULL, *cmps, *put;
	int64_t id;

	snprintf(b, sizeof b, "%u", g.ttl);
	if (cs_etcd_call(g.s->etcd, "/v3/lease/grant", json_pack("{s:s}", "TTL", b), &resp, err,
			 sizeof err))
		return;
	id = cs_jint(resp, "ID");
	json_decref(resp);
	if (id == 0)
		return;
	snprintf(b, sizeof b, "%lld", (long long)id);
	cmps = json_pack("[o]", cs_ro_cmp_create(g.k_lead, 0));
	put = json_pack("{s:{s:o,s:o,s:s}}", "request_put", "key", cs_b64s(g.k_lead), "value",
			cs_b64s(g.id), "lease", b);
	resp = NULL;
	if (cs_etcd_call(g.s->etcd, "/v3/kv/txn",
			 json_pack("{s:o,s:[o]}", "compare", cmps, "success", put), &resp, err,
			 sizeof err) == 0 &&
	    json_is_true(json_object_get(resp, "succeeded"))) {
		g.lease = id;
		g.leader_rev = cs_header_rev(resp);
		g.keepalive_ms = mono_ms();
		g.leader = true; /* after leader_rev: drive reads them in this order */
		cs_log("rollout leader (%s, lease %lld, revision %lld)",
			g.id, (long long)id, (long long)g.leader_rev);
	} else {
		lease_revoke(id);
	}
	json_decref(resp);
}

static void keep_alive(void)
{
	char b[32], err[256];
	json_t *resp = NULL;
	int64_t t = mono_ms();

	if (t - g.keepalive_ms < (int64_t)g.ttl * 1000 / 3)
		return;
	snprintf(b, sizeof b, "%lld", (long long)g.lease);
	if (cs_etcd_call(g.s->etcd, "/v3/lease/keepalive", json_pack("{s:s}", "ID", b), &resp,
			 err, sizeof err) == 0) {
		json_t *res = json_object_get(resp, "result");
		if (cs_jint(res ? res : resp, "TTL") > 0) {
			g.keepalive_ms = t;
		} else {
			g.leader = false;
			cs_log("rollout leadership lost (lease expired)");
		}
	} else if (t - g.keepalive_ms > (int64_t)g.ttl * 1000) {
		g.leader = false;
		cs_log("rollout leadership lost (%s)", err);
	}
	json_decref(resp);
}

/* One rollout, one pass. */
static void drive(const char *flag)
{
	cs_server *s = g.s;
	char err[512];
	cs_ro_cur cur;
	cs_ro_spec spec;
	cs_ro_step step;
	json_t *errs = json_array(), *state, *check = NULL, *rec;
	int64_t now = now_ms(), rev, lrev = g.leader_rev;
	int rc;

	if (cs_ro_read(s, flag, &cur, err, sizeof err)) {
		json_decref(errs);
		return;
	}
	if (!cur.rec || cur.leader_create != lrev ||
	    cs_ro_spec_parse(json_object_get(cur.rec, "spec"), &spec, errs))
		goto out;
	state = json_object_get(cur.rec, "state");
	if (cs_ro_check_due(&spec, state, now)) {
		cs_ro_sample t, c;
		cs_ro_verdict v;
		int64_t from = cs_ro_check_from(&spec, state, now);
		if (cs_ro_prom_measure(spec.prometheus, flag, spec.variation, from / 1000.0,
				    now / 1000.0, &t, &c, err, sizeof err)) {
			/* No figures is not a failure and not a pass. */
			memset(&v, 0, sizeof v);
			v.v = CS_RO_WAIT;
			v.z = v.z_crit = NAN;
			snprintf(v.why, sizeof v.why, "%.250s", err);
			t = c = (cs_ro_sample){0, 0, NAN};
		} else {
			cs_ro_guard_decide(&spec.crit, &t, &c, &v);
		}
		check = cs_ro_verdict_json(&v, &t, &c);
		json_object_set_new(check, "from", json_integer(from));
	}
	cs_ro_decide(&spec, state, now, check, &step);
	if (!step.state)
		goto out;
	rec = json_deep_copy(cur.rec);
	json_object_set_new(rec, "state", step.state);
	if (step.audit) {
		cs_req r = {.s = s, .actor = "rollout", .reason = step.message};
		json_t *extra = json_pack("{s:{s:O,s:O,s:O,s:s},s:O}", "rollout", "stage",
					  json_object_get(step.state, "stage"), "status",
					  json_object_get(step.state, "status"), "steps",
					  json_object_get(step.state, "steps"), "message",
					  step.message, "measurements",
					  json_object_get(step.state, "lastCheck"));
		snprintf(r.id, sizeof r.id, "rollout-%lld", (long long)now);
		rc = cs_ro_commit(&r, flag, &cur, rec,
			       step.flag_change ? cs_ro_state_rules(&spec, step.state) : NULL,
			       step.action, extra, lrev, &rev, err, sizeof err);
		if (rc == CS_RO_EINVALID) {
			/* The flag or a segment changed under the rollout: stop and say why. */
			json_t *st = json_deep_copy(json_object_get(cur.rec, "state"));
			json_object_set_new(st, "pausedStatus",
					    json_incref(json_object_get(st, "status")));
			json_object_set_new(st, "pausedAt", json_integer(now));
			json_object_set_new(st, "status", json_string("paused"));
			snprintf(step.message, sizeof step.message, "paused: %.20s cannot be served: %.150s",
				 step.action, err);
			json_object_set_new(st, "message", json_string(step.message));
			json_object_set_new(rec, "state", st);
			r.reason = step.message;
			rc = cs_ro_commit(&r, flag, &cur, rec, NULL, "pause", extra, lrev, &rev,
				       err, sizeof err);
		}
		if (rc < 0)
			cs_log("rollout %s: %s: %s", flag, step.action,
				err);
		json_decref(extra);
	} else {
		cs_ro_put_state(s, flag, &cur, rec, lrev, err, sizeof err);
	}
	json_decref(rec);
out:
	json_decref(errs);
	cs_ro_cur_free(&cur);
}

static void pass(void)
{
	cs_model *m = &g.s->model;
	char *from = cs_key(m, "rollouts/", NULL), *to = cs_prefix_end(from), err[256];
	json_t *resp = NULL, *kvs;
	size_t pl = strlen(from);

	if (cs_etcd_call(g.s->etcd, "/v3/kv/range",
			 json_pack("{s:o,s:o,s:b}", "key", cs_b64s(from), "range_end", cs_b64s(to),
				   "keys_only", 1),
			 &resp, err, sizeof err) == 0) {
		kvs = cs_kvs(resp);
		for (size_t i = 0; i < json_array_size(kvs) && !g.stop && g.leader; i++) {
			size_t n;
			char *k = cs_unb64(json_string_value(json_object_get(json_array_get(kvs, i),
									      "key")) ?: "", &n);
			if (k && n > pl)
				drive(k + pl);
			free(k);
		}
	}
	json_decref(resp);
	free(from);
	free(to);
}

static void *lease_loop(void *arg)
{
	(void)arg;
	while (!g.stop) {
		if (!g.leader)
			try_lead();
		else
			keep_alive();
		for (int i = 0; i < 5 && !g.stop; i++)
			usleep(50 * 1000);
	}
	if (g.leader) {
		g.leader = false;
		lease_revoke(g.lease); /* a clean stop hands over at once */
	}
	return NULL;
}

static void *drive_loop(void *arg)
{
	(void)arg;
	while (!g.stop) {
		if (g.leader)
			pass();
		for (int i = 0; i < 5 && !g.stop; i++)
			usleep(50 * 1000);
	}
	return NULL;
}

int cs_ro_run_start(cs_server *s, unsigned ttl, char *err, size_t errlen)
{
	unsigned char rnd[8];
	FILE *f = fopen("/dev/urandom", "r");

	memset(&g, 0, sizeof g);
	g.s = s;
	g.ttl = ttl;
	if (!f || fread(rnd, 1, sizeof rnd, f) != sizeof rnd) {
		if (f)
			fclose(f);
		snprintf(err, errlen, "/dev/urandom: cannot read");
		return -1;
	}
	fclose(f);
	snprintf(g.id, sizeof g.id, "pid %d port %u id %02x%02x%02x%02x%02x%02x%02x%02x",
		 (int)getpid(), s->port, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6],
		 rnd[7]);
	g.k_lead = cs_key(&s->model, CS_RO_LEADER_KEY, NULL);
	if (pthread_create(&g.lease_th, NULL, lease_loop, NULL)) {
		snprintf(err, errlen, "rollout thread: cannot start");
		free(g.k_lead);
		return -1;
	}
	if (pthread_create(&g.drive_th, NULL, drive_loop, NULL)) {
		g.stop = true;
		pthread_join(g.lease_th, NULL);
		snprintf(err, errlen, "rollout thread: cannot start");
		free(g.k_lead);
		return -1;
	}
	g.started = true;
	return 0;
}

void cs_ro_run_stop(void)
{
	if (!g.started)
		return;
	g.stop = true;
	pthread_join(g.drive_th, NULL); /* first: its steps need the lease */
	pthread_join(g.lease_th, NULL);
	free(g.k_lead);
	g.started = false;
}
