/*
 * control/rollout_int.h - the rollout parts that live inside
 * flagshm-control (etcd, the model, HTTP): storage, the orchestrator, the
 * endpoints. The pure parts are in rollout.h.
 */
#ifndef FLAGSHM_CONTROL_ROLLOUT_INT_H
#define FLAGSHM_CONTROL_ROLLOUT_INT_H

#include "rollout.h"
#include "server.h"

#define CS_RO_LEADER_KEY "meta/rollout-leader" /* under the prefix; held with a lease */
#define CS_RO_EINVALID (-10) /* the step would make the document invalid */

typedef struct cs_ro_cur {
	json_t *rec;	       /* the rollout record, NULL when absent */
	int64_t rec_mod;
	json_t *flag;	       /* the flag's record ({"object",...}), NULL when absent */
	int64_t flag_mod;
	int64_t meta_rev;      /* meta/rev's mod_revision */
	int64_t leader_create; /* the leader key's create_revision, 0: no leader */
} cs_ro_cur;

/* rollout_store.c */
int cs_ro_read(cs_server *s, const char *flag, cs_ro_cur *cur, char *err, size_t errlen);
void cs_ro_cur_free(cs_ro_cur *cur);
/* One txn: REC (the new rollout record; updatedAt/By set here), the
 * flag's rollout rules replaced by RULES (consumed; NULL: the flag is not
 * touched) and the audit record (kind "rollout", ACTION, actor r->actor,
 * reason r->reason, EXTRA's fields). LEADER_REV > 0: only while the
 * leader key has that create_revision. 1 committed, 0 lost a race,
 * CS_RO_EINVALID (ERR says why) or a CS_E* error. */
int cs_ro_commit(cs_req *r, const char *flag, cs_ro_cur *cur, json_t *rec, json_t *rules,
	      const char *action, json_t *extra, int64_t leader_rev, int64_t *rev, char *err,
	      size_t errlen);
/* The record alone (check figures), same compares; 1, 0 or CS_E*. */
int cs_ro_put_state(cs_server *s, const char *flag, cs_ro_cur *cur, json_t *rec, int64_t leader_rev,
		 char *err, size_t errlen);
/* The document with FLAG replaced by SERVED_FLAG validated; 0 or -1 with
 * the first message in ERR and all of them in *DETAILS (may be NULL). */
int cs_ro_validate_flag(cs_server *s, const char *flag, json_t *served_flag, char *err,
		     size_t errlen, json_t **details);
json_t *cs_ro_cmp_create(const char *key, int64_t rev);

/* rollout_run.c: the leader lease (TTL seconds) and the orchestrator. */
int cs_ro_run_start(cs_server *s, unsigned ttl, char *err, size_t errlen);
void cs_ro_run_stop(void);

/* rollout_api.c: /api/v1/rollouts... and /api/v1/reports/stale. */
enum MHD_Result cs_ro_api(cs_req *r);
/* The public view of a record: {"flag","stage","since","status","lastCheck",...}. */
json_t *cs_ro_view(const json_t *rec);

#endif
