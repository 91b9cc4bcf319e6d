/*
 * control/rollout.h - progressive rollouts (docs/rollouts.md): the rollout
 * resource, its stages expressed as targeting rules the orchestrator owns
 * in the flag, the guard's statistics and the state machine.
 *
 * Pure parts (no I/O; unit-tested in tests/test_rollout_unit.c):
 *   rollout_spec.c  the resource's validation, durations, the rules of a stage
 *   guard.c         the normal distribution, the two-proportion test, the verdict
 *   rollout_step.c  the state machine: a state and a time in, the next state out
 * Parts with I/O (inside flagshm-control):
 *   guard_prom.c    Prometheus' /api/v1/query with libcurl
 *   rollout_api.c   /api/v1/rollouts..., /api/v1/reports/stale
 *   rollout_run.c   the leader lease and the orchestrator thread
 */
#ifndef FLAGSHM_CONTROL_ROLLOUT_H
#define FLAGSHM_CONTROL_ROLLOUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CS_RO_STAGES_MAX 64
#define CS_RO_STEPS_MAX 16
#define CS_RO_HISTORY_MAX 600 /* checks and decisions kept in the state (report) */
#define CS_RO_RULE_PREFIX "rollout." /* ids of the rules the orchestrator owns */

enum { CS_RO_RING, CS_RO_PCT, CS_RO_REGION };

typedef struct cs_ro_stage {
	int kind;
	double pct;	     /* CS_RO_PCT: 0..100 */
	json_t *segments;    /* CS_RO_RING: borrowed array of names */
	const char *attr;    /* CS_RO_REGION */
	json_t *values;	     /* CS_RO_REGION: borrowed array */
	int64_t duration_ms; /* duration or soak; -1: none */
	bool auto_promote;   /* CS_RO_RING: false waits for an approval */
	json_t *approvals;   /* borrowed array of group names, or NULL */
} cs_ro_stage;

typedef struct cs_ro_criteria {
	double error_rate;	/* errorRateThreshold; < 0: none */
	double p99;		/* latencyP99Threshold (seconds); < 0: none */
	double max_regression;	/* maxRegressionVsControl (error-rate points); < 0: none */
	double max_latency_regression; /* maxLatencyRegressionVsControl (seconds); < 0: none */
	double min_samples;	/* minimumSampleSize */
	double confidence;	/* of the one-sided test, 0.95 */
	int64_t max_wait_ms;	/* maxWait; -1: wait forever */
} cs_ro_criteria;

typedef struct cs_ro_spec {
	json_t *variation; /* borrowed */
	size_t nstages;
	cs_ro_stage st[CS_RO_STAGES_MAX];
	bool auto_progress;
	cs_ro_criteria crit;
	double rb_steps[CS_RO_STEPS_MAX];
	size_t nrb;
	int64_t rb_interval_ms;
	int64_t check_ms;
	const char *prometheus; /* NULL: no guard (time alone decides) */
	int64_t window_ms;
} cs_ro_spec;

/* "30s", "5m", "2h", "1d" (a positive integer and one unit) -> ms; -1. */
int64_t cs_ro_duration(const char *s);

/* Validate J (the PUT body) and fill S (pointers borrowed from J, which
 * must outlive S). Every problem is appended to ERRS as "path: message".
 * 0 when valid. */
int cs_ro_spec_parse(json_t *j, cs_ro_spec *s, json_t *errs);

/* The share of everyone else at stage N (the largest percentage of
 * stages 0..N; 0 before any). */
double cs_ro_share(const cs_ro_spec *s, int stage);

/* The rules the orchestrator owns for STAGE (-1: none), or, when RB_PCT
 * >= 0, for a rollback step at RB_PCT percent: a new array. */
json_t *cs_ro_rules(const cs_ro_spec *s, int stage, double rb_pct);

/* FLAG (a flag object) with its rules whose id starts with CS_RO_RULE_PREFIX
 * replaced by RULES (consumed), placed after the flag's own rules: a new
 * object. */
json_t *cs_ro_flag_with_rules(const json_t *flag, json_t *rules);

/* The effective rollback steps below SHARE (always ending with 0). */
size_t cs_ro_rb_steps(const cs_ro_spec *s, double share, double out[CS_RO_STEPS_MAX + 1]);

/* ---- guard.c: statistics and the verdict ---- */
enum { CS_RO_PASS, CS_RO_FAIL, CS_RO_WAIT };

typedef struct cs_ro_sample {
	double n, errors; /* requests and failed ones in the window */
	double p99;	  /* seconds; NaN when unknown */
} cs_ro_sample;

typedef struct cs_ro_verdict {
	int v;
	double z, z_crit; /* of the two-proportion test; NaN when not run */
	char why[256];
} cs_ro_verdict;

double cs_ro_norm_cdf(double x);
double cs_ro_norm_quantile(double p); /* 0 < p < 1 */
/* One-sided two-proportion z statistic for H0: pt - pc <= DELTA. */
double cs_ro_ztest(double et, double nt, double ec, double nc, double delta);
/* Requests per group to detect a true difference of DELTA + EFFECT over
 * base rate P at CONFIDENCE with POWER (normal approximation). */
double cs_ro_sample_size(double p, double delta, double effect, double confidence, double power);
void cs_ro_guard_decide(const cs_ro_criteria *c, const cs_ro_sample *t, const cs_ro_sample *ctl,
		     cs_ro_verdict *out);
/* The verdict as {"verdict","reason","treatment":{...},"control":{...},"z","zCritical"}. */
json_t *cs_ro_verdict_json(const cs_ro_verdict *v, const cs_ro_sample *t, const cs_ro_sample *ctl);

/* ---- guard_prom.c ---- */
/* Query PROM for the treatment and control figures of FLAG serving
 * VARIATION between FROM_S and NOW_S (Unix seconds). 0, or -1 with ERR. */
int cs_ro_prom_measure(const char *prom, const char *flag, const json_t *variation, double from_s,
		    double now_s, cs_ro_sample *t, cs_ro_sample *ctl, char *err, size_t errlen);
/* One instant query's first value (0 when the result is empty). */
int cs_ro_prom_scalar(const char *prom, const char *query, double at_s, double *out, char *err,
		   size_t errlen);

/* ---- rollout_step.c: the state machine ---- */
/* The state of a new rollout (stage -1: nothing served yet). */
json_t *cs_ro_state_new(int64_t now_ms);

typedef struct cs_ro_step {
	json_t *state;	    /* the next state (new), or NULL: nothing changes */
	bool flag_change;   /* the rules change (new rules from cs_ro_state_rules) */
	bool audit;	    /* a decision worth an audit record */
	char action[32];    /* the audit action: "advance", "complete", ... */
	char message[256];
} cs_ro_step;

/* Decide what happens at NOW_MS for a rollout in STATE. CHECK: the
 * figures of a guard run just now (its "verdict" decides), or NULL when no
 * check was due. Pure. */
void cs_ro_decide(const cs_ro_spec *s, const json_t *state, int64_t now_ms, json_t *check,
	       cs_ro_step *out);
/* The rules STATE serves. */
json_t *cs_ro_state_rules(const cs_ro_spec *s, const json_t *state);
/* The start of the window a check at NOW_MS may use (the current stage
 * or rollback step, at most `window` ago), in ms. */
int64_t cs_ro_check_from(const cs_ro_spec *s, const json_t *state, int64_t now_ms);
/* Whether a guard check is due. */
bool cs_ro_check_due(const cs_ro_spec *s, const json_t *state, int64_t now_ms);
/* Append an entry to the state's history (bounded, older half thinned). */
void cs_ro_history_add(json_t *state, json_t *entry);
/* Manual actions (the API): a new state, or NULL with WHY (HTTP 409). */
json_t *cs_ro_pause(const json_t *state, int64_t now_ms, char *why, size_t n);
json_t *cs_ro_resume(const json_t *state, int64_t now_ms, char *why, size_t n);
json_t *cs_ro_rollback(const cs_ro_spec *s, const json_t *state, int64_t now_ms, bool immediate,
		    const char *reason, char *why, size_t n);
/* Approve the gate the rollout waits at (or the next stage's) by ACTOR
 * with GROUPS (token groups). NULL with WHY and *STATUS (403/409). */
json_t *cs_ro_approve(const cs_ro_spec *s, const json_t *state, const char *actor,
		   const json_t *groups, char *why, size_t n, int *status);
bool cs_ro_terminal(const json_t *state);

#endif
