/*
 * control/rollout_step.c - a rollout's state machine (docs/rollouts.md,
 * "States"). Pure: a state, a time and maybe fresh guard figures in, the
 * next state out; the orchestrator (rollout_run.c) commits the result
 * with the flag's new rules and the audit record in one etcd txn, so a
 * step happens once or not at all, whichever instance leads.
 *
 * State: {"stage","since","status","message","rbSteps","rbStep","rbSince",
 * "approvals":{"stage","groups":{G:actor},"by":[actor]},"waitSince",
 * "pausedAt","pausedStatus","lastCheck","nextCheck","steps","completedAt",
 * "history"}; times are Unix milliseconds.
 */
#include "rollout.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int64_t geti(const json_t *st, const char *k)
{
	json_t *v = json_object_get(st, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static const char *gets_(const json_t *st, const char *k)
{
	const char *s = json_string_value(json_object_get(st, k));
	return s ? s : "";
}

static void seti(json_t *st, const char *k, int64_t v)
{
	json_object_set_new(st, k, json_integer(v));
}

static void sets(json_t *st, const char *k, const char *v)
{
	json_object_set_new(st, k, json_string(v));
}

json_t *cs_ro_state_new(int64_t now_ms)
{
	return json_pack("{s:i,s:I,s:s,s:s,s:[],s:i,s:I,s:n,s:I,s:n,s:I,s:i,s:[]}", "stage", -1,
			 "since", (json_int_t)now_ms, "status", "running", "message", "",
			 "rbSteps", "rbStep", -1, "rbSince", (json_int_t)0, "approvals",
			 "waitSince", (json_int_t)0, "lastCheck", "nextCheck", (json_int_t)0,
			 "steps", 0, "history");
}

bool cs_ro_terminal(const json_t *st)
{
	const char *s = gets_(st, "status");
	return !strcmp(s, "completed") || !strcmp(s, "rolled-back");
}

/* The share served now. */
static double served_pct(const cs_ro_spec *s, const json_t *st)
{
	int64_t k = geti(st, "rbStep");
	json_t *steps = json_object_get(st, "rbSteps");

	if (k >= 0 && json_object_get(st, "rbStep") && (size_t)k < json_array_size(steps))
		return json_number_value(json_array_get(steps, (size_t)k));
	return cs_ro_share(s, (int)geti(st, "stage"));
}

static bool rolling(const json_t *st)
{
	return geti(st, "rbStep") >= 0 && json_array_size(json_object_get(st, "rbSteps")) > 0;
}

json_t *cs_ro_state_rules(const cs_ro_spec *s, const json_t *st)
{
	if (rolling(st))
		return cs_ro_rules(s, -1, served_pct(s, st));
	return cs_ro_rules(s, (int)geti(st, "stage"), -1);
}

static int64_t step_since(const json_t *st)
{
	return rolling(st) ? geti(st, "rbSince") : geti(st, "since");
}

int64_t cs_ro_check_from(const cs_ro_spec *s, const json_t *st, int64_t now_ms)
{
	int64_t from = step_since(st);
	return now_ms - s->window_ms > from ? now_ms - s->window_ms : from;
}

bool cs_ro_check_due(const cs_ro_spec *s, const json_t *st, int64_t now_ms)
{
	const char *status = gets_(st, "status");

	if (!s->prometheus || cs_ro_terminal(st) || !strcmp(status, "paused"))
		return false;
	if (!rolling(st) && geti(st, "stage") < 0)
		return false;
	return now_ms >= geti(st, "nextCheck");
}

void cs_ro_history_add(json_t *st, json_t *entry)
{
	json_t *h = json_object_get(st, "history");

	if (!json_is_array(h)) {
		h = json_array();
		json_object_set_new(st, "history", h);
	}
	if (json_array_size(h) >= CS_RO_HISTORY_MAX) {
		/* Thin the older half (every other entry) so the whole rollout
		 * stays in view at half the resolution. */
		for (size_t i = 1; i < CS_RO_HISTORY_MAX / 4 && i < json_array_size(h); i++)
			json_array_remove(h, i); /* originals 1, 3, 5, ... below the middle */
	}
	json_array_append_new(h, entry);
}

static void event(cs_ro_step *out, json_t *st, const cs_ro_spec *s, int64_t now, const char *action,
		  bool flag, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void event(cs_ro_step *out, json_t *st, const cs_ro_spec *s, int64_t now, const char *action,
		  bool flag, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out->message, sizeof out->message, fmt, ap);
	va_end(ap);
	snprintf(out->action, sizeof out->action, "%s", action);
	out->audit = true;
	out->flag_change = out->flag_change || flag;
	if (flag)
		seti(st, "steps", geti(st, "steps") + 1);
	sets(st, "message", out->message);
	cs_ro_history_add(st, json_pack("{s:I,s:s,s:f,s:i,s:s,s:s}", "t", (json_int_t)now, "event",
				     action, "pct", served_pct(s, st), "stage",
				     (int)geti(st, "stage"), "status", gets_(st, "status"),
				     "message", out->message));
}

static void start_rollback(const cs_ro_spec *s, json_t *st, int64_t now, bool immediate)
{
	double steps[CS_RO_STEPS_MAX + 1];
	size_t n = immediate ? (steps[0] = 0, 1)
			     : cs_ro_rb_steps(s, served_pct(s, st), steps);
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_real(steps[i]));
	json_object_set_new(st, "rbSteps", a);
	seti(st, "rbStep", 0);
	seti(st, "rbSince", now);
	seti(st, "nextCheck", 0);
	sets(st, "status", steps[0] == 0 ? "rolled-back" : "rolling-back");
	json_object_set_new(st, "approvals", json_null());
}

/* Whether the approvals for stage NEXT are all there. */
static bool gate_open(const cs_ro_spec *s, const json_t *st, int next, bool manual)
{
	json_t *ap = json_object_get(st, "approvals");
	json_t *need = s->st[next].approvals, *groups = json_object_get(ap, "groups");

	if (!manual && !need)
		return true;
	if (!json_is_object(ap) || geti(ap, "stage") != next)
		return false;
	if (manual && json_array_size(json_object_get(ap, "by")) == 0)
		return false;
	for (size_t i = 0; i < json_array_size(need); i++)
		if (!json_object_get(groups, json_string_value(json_array_get(need, i))))
			return false;
	return true;
}

static bool manual_gate(const cs_ro_spec *s, int stage)
{
	return stage >= 0 && (!s->auto_progress ||
			      (s->st[stage].kind == CS_RO_RING && !s->st[stage].auto_promote));
}

void cs_ro_decide(const cs_ro_spec *s, const json_t *state, int64_t now, json_t *check, cs_ro_step *out)
{
	json_t *st = json_deep_copy(state);
	const char *status = gets_(st, "status");
	bool changed = false;
	const char *fresh = "none"; /* verdict of a check on the current step */
	const json_t *lc;
	int stage = (int)geti(st, "stage");

	memset(out, 0, sizeof *out);
	if (cs_ro_terminal(st) || !strcmp(status, "paused")) {
		json_decref(st);
		json_decref(check);
		return;
	}
	if (check) {
		json_object_set_new(check, "time", json_integer(now));
		json_object_set_new(check, "stepSince", json_integer(step_since(st)));
		seti(st, "nextCheck", now + s->check_ms);
		json_t *t = json_object_get(check, "treatment"), *c = json_object_get(check, "control");
		cs_ro_history_add(st, json_pack("{s:I,s:s,s:f,s:O?,s:O?,s:O?,s:O?,s:O?,s:O?}", "t",
					     (json_int_t)now, "check",
					     gets_(check, "verdict"), "pct", served_pct(s, st),
					     "tn", json_object_get(t, "requests"), "ter",
					     json_object_get(t, "errorRate"), "tp99",
					     json_object_get(t, "p99"), "cn",
					     json_object_get(c, "requests"), "cer",
					     json_object_get(c, "errorRate"), "cp99",
					     json_object_get(c, "p99")));
		json_object_set_new(st, "lastCheck", check);
		changed = true;
	}
	lc = json_object_get(st, "lastCheck");
	if (json_is_object(lc) && geti(lc, "stepSince") == step_since(st))
		fresh = gets_(lc, "verdict");
	if (!s->prometheus)
		fresh = "pass";

	if (!strcmp(status, "rolling-back")) {
		json_t *steps = json_object_get(st, "rbSteps");
		size_t k = (size_t)geti(st, "rbStep"), last = json_array_size(steps) - 1;
		if (check && !strcmp(fresh, "fail") && k < last) {
			seti(st, "rbStep", (int64_t)last);
			seti(st, "rbSince", now);
			sets(st, "status", "rolled-back");
			event(out, st, s, now, "rollback-step", true,
			      "guard failed again at %g%%: %s; to 0%%",
			      json_number_value(json_array_get(steps, k)), gets_(lc, "reason"));
		} else if (now - geti(st, "rbSince") >= s->rb_interval_ms && k < last) {
			seti(st, "rbStep", (int64_t)k + 1);
			seti(st, "rbSince", now);
			double p = json_number_value(json_array_get(steps, k + 1));
			if (k + 1 == last)
				sets(st, "status", "rolled-back");
			event(out, st, s, now, "rollback-step", true, "rollback step: %g%%", p);
		}
		goto done;
	}
	if (stage >= 0 && !strcmp(fresh, "fail")) {
		char why[256];
		snprintf(why, sizeof why, "%s", gets_(lc, "reason"));
		start_rollback(s, st, now, false);
		event(out, st, s, now, "rollback", true, "guard failed at stage %d: %s", stage,
		      why);
		goto done;
	}
	if (stage >= 0 && !strcmp(fresh, "wait")) {
		if (geti(st, "waitSince") == 0) {
			seti(st, "waitSince", now);
			changed = true;
		}
		if (!strcmp(status, "running")) {
			sets(st, "status", "waiting-samples");
			event(out, st, s, now, "waiting-samples", false, "%s", gets_(lc, "reason"));
		}
		if (s->crit.max_wait_ms >= 0 && now - geti(st, "waitSince") >= s->crit.max_wait_ms) {
			char why[256];
			snprintf(why, sizeof why, "%s", gets_(lc, "reason"));
			sets(st, "pausedStatus", "running");
			seti(st, "pausedAt", now);
			sets(st, "status", "paused");
			event(out, st, s, now, "pause", false,
			      "paused after maxWait: %s", why);
		}
		goto done;
	}
	if (!strcmp(fresh, "pass") && geti(st, "waitSince") != 0) {
		seti(st, "waitSince", 0);
		changed = true;
	}
	if (!strcmp(status, "waiting-samples") && !strcmp(fresh, "pass")) {
		sets(st, "status", "running");
		changed = true;
	}
	if (stage >= 0) {
		int64_t dur = s->st[stage].duration_ms;
		if (dur < 0 || now - geti(st, "since") < dur || strcmp(fresh, "pass"))
			goto done;
	}
	if (stage + 1 >= (int)s->nstages) {
		sets(st, "status", "completed");
		seti(st, "completedAt", now);
		event(out, st, s, now, "complete", false, "completed at stage %d", stage);
		goto done;
	}
	if (!gate_open(s, st, stage + 1, manual_gate(s, stage))) {
		if (strcmp(status, "waiting-approval")) {
			sets(st, "status", "waiting-approval");
			event(out, st, s, now, "waiting-approval", false,
			      "stage %d waits for approval", stage + 1);
		}
		goto done;
	}
	stage++;
	seti(st, "stage", stage);
	seti(st, "since", now);
	seti(st, "waitSince", 0);
	seti(st, "nextCheck", now + s->check_ms);
	json_object_set_new(st, "approvals", json_null());
	sets(st, "status", "running");
	if (stage + 1 == (int)s->nstages && s->st[stage].duration_ms < 0) {
		sets(st, "status", "completed");
		seti(st, "completedAt", now);
	}
	event(out, st, s, now, "advance", true, "stage %d: %g%% of everyone else%s", stage,
	      cs_ro_share(s, stage), !strcmp(gets_(st, "status"), "completed") ? "; completed" : "");
done:
	if (changed || out->audit)
		out->state = st;
	else
		json_decref(st);
}

json_t *cs_ro_pause(const json_t *state, int64_t now, char *why, size_t n)
{
	json_t *st;

	if (cs_ro_terminal(state) || !strcmp(gets_(state, "status"), "paused")) {
		snprintf(why, n, "the rollout is %s", gets_(state, "status"));
		return NULL;
	}
	st = json_deep_copy(state);
	sets(st, "pausedStatus", gets_(state, "status"));
	seti(st, "pausedAt", now);
	sets(st, "status", "paused");
	sets(st, "message", "paused");
	cs_ro_history_add(st, json_pack("{s:I,s:s,s:s}", "t", (json_int_t)now, "event", "pause",
				     "message", "paused by request"));
	return st;
}

json_t *cs_ro_resume(const json_t *state, int64_t now, char *why, size_t n)
{
	json_t *st;
	const char *back = gets_(state, "pausedStatus");
	int64_t d = now - geti(state, "pausedAt");

	if (strcmp(gets_(state, "status"), "paused")) {
		snprintf(why, n, "the rollout is %s, not paused", gets_(state, "status"));
		return NULL;
	}
	st = json_deep_copy(state);
	/* The time paused does not count towards the stage or the step. */
	if (d > 0) {
		seti(st, "since", geti(st, "since") + d);
		if (rolling(st))
			seti(st, "rbSince", geti(st, "rbSince") + d);
	}
	sets(st, "status", !strcmp(back, "rolling-back") ? "rolling-back"
			   : !strcmp(back, "waiting-approval") ? "waiting-approval"
							       : "running");
	seti(st, "waitSince", 0);
	seti(st, "nextCheck", 0);
	sets(st, "message", "resumed");
	cs_ro_history_add(st, json_pack("{s:I,s:s,s:s}", "t", (json_int_t)now, "event", "resume",
				     "message", "resumed by request"));
	return st;
}

json_t *cs_ro_rollback(const cs_ro_spec *s, const json_t *state, int64_t now, bool immediate,
		    const char *reason, char *why, size_t n)
{
	json_t *st;
	const char *status = gets_(state, "status");

	if (!strcmp(status, "rolled-back") || (!immediate && !strcmp(status, "rolling-back"))) {
		snprintf(why, n, "the rollout is already %s", status);
		return NULL;
	}
	st = json_deep_copy(state);
	start_rollback(s, st, now, immediate);
	snprintf(why, n, "%s", reason ? reason : "");
	sets(st, "message", immediate ? "rolled back at once" : "rolling back");
	cs_ro_history_add(st, json_pack("{s:I,s:s,s:f,s:i,s:s,s:s}", "t", (json_int_t)now, "event",
				     immediate ? "rollback-now" : "rollback", "pct",
				     served_pct(s, st), "stage", (int)geti(st, "stage"), "status",
				     gets_(st, "status"), "message", reason ? reason : ""));
	seti(st, "steps", geti(st, "steps") + 1);
	return st;
}

json_t *cs_ro_approve(const cs_ro_spec *s, const json_t *state, const char *actor,
		   const json_t *groups, char *why, size_t n, int *status)
{
	int next = (int)geti(state, "stage") + 1;
	json_t *st, *ap, *need, *g;
	bool any = false;

	if (cs_ro_terminal(state) || rolling(state) || next >= (int)s->nstages) {
		snprintf(why, n, "nothing to approve: the rollout is %s at stage %d of %zu",
			 gets_(state, "status"), next - 1, s->nstages);
		*status = 409;
		return NULL;
	}
	need = s->st[next].approvals;
	st = json_deep_copy(state);
	ap = json_object_get(st, "approvals");
	if (!json_is_object(ap) || geti(ap, "stage") != next) {
		ap = json_pack("{s:i,s:{},s:[]}", "stage", next, "groups", "by");
		json_object_set_new(st, "approvals", ap);
	}
	g = json_object_get(ap, "groups");
	for (size_t i = 0; i < json_array_size(need); i++) {
		const char *want = json_string_value(json_array_get(need, i));
		for (size_t k = 0; k < json_array_size(groups); k++) {
			const char *have = json_string_value(json_array_get(groups, k));
			if (want && have && !strcmp(want, have)) {
				json_object_set_new(g, want, json_string(actor));
				any = true;
			}
		}
	}
	if (need && !any && !manual_gate(s, next - 1)) {
		char list[200] = "";
		for (size_t i = 0; i < json_array_size(need); i++)
			snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
				 i ? ", " : "", json_string_value(json_array_get(need, i)));
		snprintf(why, n, "stage %d needs approvals from groups %s; this token is in none",
			 next, list);
		json_decref(st);
		*status = 403;
		return NULL;
	}
	json_array_append_new(json_object_get(ap, "by"), json_string(actor));
	return st;
}
