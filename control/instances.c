/*
 * control/instances.c - every instance registers itself under
 * PREFIX/instances/ID on an etcd lease (TTL CS_LEASE_TTL seconds, kept
 * alive every third of it), so that GET /api/v1/instances lists the
 * instances alive and a killed one disappears by itself; stopping revokes
 * the lease. Room for issue 13: a rollout scheduler can elect one leader
 * on the same lease.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CS_LEASE_TTL 15

static int grant_and_put(cs_server *s, char *err, size_t errlen)
{
	json_t *resp = NULL;
	char ttl[16], id[32], *key, *v;
	int rc;

	snprintf(ttl, sizeof ttl, "%d", CS_LEASE_TTL);
	rc = cs_etcd_call(s->etcd, "/v3/lease/grant", json_pack("{s:s}", "TTL", ttl), &resp, err,
			  errlen);
	if (rc)
		return rc;
	s->lease_id = cs_jint(resp, "ID");
	json_decref(resp);
	snprintf(id, sizeof id, "%lld", (long long)s->lease_id);
	key = cs_key(&s->model, "instances/", s->instance_id);
	v = json_dumps(s->instance, JSON_COMPACT);
	json_t *put = json_pack("{s:o,s:o,s:s}", "key", cs_b64s(key), "value", cs_b64s(v), "lease",
				id);
	free(key);
	free(v);
	rc = cs_etcd_call(s->etcd, "/v3/kv/put", put, &resp, err, errlen);
	json_decref(resp);
	return rc;
}

static void *keeper(void *arg)
{
	cs_server *s = arg;
	char err[256];

	while (!s->inst_stop) {
		for (int i = 0; i < CS_LEASE_TTL * 10 / 3 && !s->inst_stop; i++)
			usleep(100000);
		if (s->inst_stop)
			break;
		json_t *resp = NULL;
		char id[32];
		snprintf(id, sizeof id, "%lld", (long long)s->lease_id);
		int rc = s->lease_id ? cs_etcd_call(s->etcd, "/v3/lease/keepalive",
						     json_pack("{s:s}", "ID", id), &resp, err,
						     sizeof err)
				     : CS_EUNAVAIL;
		/* An expired lease (etcd was away longer than the TTL) has
		 * taken the key with it: register again. */
		if (rc == 0 && cs_jint(json_object_get(resp, "result"), "TTL") <= 0)
			rc = grant_and_put(s, err, sizeof err);
		else if (rc && s->lease_id == 0)
			rc = grant_and_put(s, err, sizeof err);
		json_decref(resp);
	}
	return NULL;
}

int cs_instances_start(cs_server *s, const char *url, char *err, size_t errlen)
{
	char host[64] = "host", now[32];

	gethostname(host, sizeof host - 1);
	for (char *p = host; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '.'))
			*p = '_';
	snprintf(s->instance_id, sizeof s->instance_id, "%s-%u-%d", host, s->port, (int)getpid());
	cs_now(now);
	s->instance = json_pack("{s:s,s:s,s:i,s:s,s:s}", "id", s->instance_id, "url", url, "pid",
				(int)getpid(), "startedAt", now, "version", FLAGSHM_VERSION_STRING);
	if (grant_and_put(s, err, errlen))
		s->lease_id = 0; /* the keeper tries again */
	if (pthread_create(&s->inst_thread, NULL, keeper, s)) {
		snprintf(err, errlen, "cannot start the lease thread");
		return -1;
	}
	s->inst_started = true;
	return 0;
}

void cs_instances_stop(cs_server *s)
{
	json_t *resp = NULL;
	char id[32], err[256];

	s->inst_stop = true;
	if (s->inst_started)
		pthread_join(s->inst_thread, NULL);
	if (s->lease_id) {
		snprintf(id, sizeof id, "%lld", (long long)s->lease_id);
		cs_etcd_call(s->etcd, "/v3/lease/revoke", json_pack("{s:s}", "ID", id), &resp, err,
			     sizeof err);
		json_decref(resp);
	}
	json_decref(s->instance);
	s->instance = NULL;
}

enum MHD_Result cs_instances_list(cs_req *r)
{
	cs_model *m = &r->s->model;
	char *from = cs_key(m, "instances/", NULL), *to = cs_prefix_end(from), err[256];
	json_t *resp = NULL, *out = json_array(), *kvs;
	int rc;

	if (!(r->rights & CS_R_READ)) {
		json_decref(out);
		free(from), free(to);
		return cs_forbidden(r, "read");
	}
	rc = cs_etcd_call(r->s->etcd, "/v3/kv/range",
			  json_pack("{s:o,s:o}", "key", cs_b64s(from), "range_end", cs_b64s(to)),
			  &resp, err, sizeof err);
	free(from), free(to);
	if (rc) {
		json_decref(out);
		return cs_etcd_error(r, rc, err);
	}
	kvs = cs_kvs(resp);
	for (size_t i = 0; i < json_array_size(kvs); i++) {
		size_t n;
		char *v = cs_unb64(json_string_value(json_object_get(json_array_get(kvs, i), "value")) ?: "", &n);
		json_t *o = v ? json_loadb(v, n, 0, NULL) : NULL;
		free(v);
		if (o)
			json_array_append_new(out, o);
	}
	json_decref(resp);
	return cs_reply(r, 200, json_pack("{s:o}", "instances", out), NULL);
}
