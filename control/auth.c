/*
 * control/auth.c - bearer tokens: roles as rights, SHA-256 hashes
 * (OpenSSL's libcrypto: a maintained, constant-time-compare-providing
 * library already on every Debian host), the bootstrap token.
 *
 * A token is never stored, logged or kept after the check: only its
 * SHA-256, compared with CRYPTO_memcmp against every stored hash.
 */
#include "server.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

unsigned cs_role_rights(const char *role)
{
	if (!role)
		return 0;
	if (!strcmp(role, "sdk"))
		return CS_R_SYNC;
	if (!strcmp(role, "viewer"))
		return CS_R_SYNC | CS_R_READ;
	if (!strcmp(role, "approver"))
		return CS_R_SYNC | CS_R_READ | CS_R_APPROVE;
	if (!strcmp(role, "editor"))
		return CS_R_SYNC | CS_R_READ | CS_R_WRITE;
	if (!strcmp(role, "admin"))
		return CS_R_SYNC | CS_R_READ | CS_R_WRITE | CS_R_APPROVE | CS_R_ADMIN;
	return 0;
}

void cs_sha256_hex(const char *s, size_t n, char hex[65])
{
	unsigned char md[32];
	unsigned len = 0;

	EVP_Digest(s, n, md, &len, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	OPENSSL_cleanse(md, sizeof md);
}

int cs_token_new(char out[64])
{
	unsigned char rnd[32];

	if (RAND_bytes(rnd, sizeof rnd) != 1)
		return -1;
	memcpy(out, "fsh_", 4);
	EVP_EncodeBlock((unsigned char *)out + 4, rnd, sizeof rnd); /* 44 chars, '=' last */
	for (char *p = out + 4; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	out[4 + 43] = 0;
	OPENSSL_cleanse(rnd, sizeof rnd);
	return 0;
}

int cs_auth(cs_req *r)
{
	const char *h = cs_header(r, "Authorization");
	cs_model *m = &r->s->model;
	char hex[65];
	const char *name;
	json_t *rec;
	size_t n;

	if (!h || strncasecmp(h, "Bearer ", 7))
		return 401;
	h += 7;
	while (*h == ' ')
		h++;
	n = strlen(h);
	if (n == 0 || n > 511)
		return 401;
	cs_sha256_hex(h, n, hex);
	pthread_mutex_lock(&m->mu);
	json_object_foreach(m->tokens, name, rec) {
		const char *stored = json_string_value(json_object_get(rec, "sha256"));
		if (stored && strlen(stored) == 64 && CRYPTO_memcmp(stored, hex, 64) == 0) {
			snprintf(r->actor, sizeof r->actor, "%s", name);
			r->rights = cs_role_rights(json_string_value(json_object_get(rec, "role")));
		}
	}
	pthread_mutex_unlock(&m->mu);
	OPENSSL_cleanse(hex, sizeof hex);
	return r->actor[0] ? 0 : 401;
}

/* The first line of FILE, trimmed, into OUT. */
static int read_token_file(const char *file, char *out, size_t cap, char *err, size_t errlen)
{
	FILE *f = fopen(file, "r");
	size_t n;
	char *p = out;

	if (!f) {
		snprintf(err, errlen, "--bootstrap-token-file %s: %s", file, strerror(errno));
		return -1;
	}
	if (!fgets(out, (int)cap, f))
		out[0] = 0;
	fclose(f);
	while (isspace((unsigned char)*p))
		p++;
	memmove(out, p, strlen(p) + 1);
	n = strlen(out);
	while (n > 0 && isspace((unsigned char)out[n - 1]))
		out[--n] = 0;
	for (size_t i = 0; i < n; i++)
		if (out[i] <= ' ' || out[i] > '~')
			n = 0;
	if (n < 16 || n > 511) {
		snprintf(err, errlen, "--bootstrap-token-file %s: the first line must be a token of "
			 "16 to 511 printable characters without spaces", file);
		return -1;
	}
	return 0;
}

int cs_bootstrap(cs_server *s, const char *file, char *err, size_t errlen)
{
	char tok[600], hex[65], now[32];
	char *k_done = cs_key(&s->model, "meta/bootstrapped", NULL);
	char *k_tok = cs_key(&s->model, "tokens/", "bootstrap");
	char *k_rev = cs_key(&s->model, "meta/rev", NULL);
	cs_req r = {.s = s, .actor = "bootstrap", .id = "bootstrap",
		    .reason = "first start with --bootstrap-token-file"};
	int rc = -1;

	if (read_token_file(file, tok, sizeof tok, err, errlen) < 0)
		goto out;
	cs_sha256_hex(tok, strlen(tok), hex);
	OPENSSL_cleanse(tok, sizeof tok);
	cs_now(now);
	for (int attempt = 0; attempt < 20; attempt++) {
		json_t *ops = json_array(), *resp = NULL, *rr;
		json_t *rec = json_pack("{s:s,s:s,s:s,s:s,s:s,s:[]}", "name", "bootstrap", "role",
					"admin", "sha256", hex, "createdAt", now, "createdBy",
					"--bootstrap-token-file", "groups");
		json_t *after = json_pack("{s:s,s:s}", "name", "bootstrap", "role", "admin");
		char *v = json_dumps(rec, JSON_COMPACT);
		int64_t rev;

		json_array_append_new(ops, cs_op_range(k_done, NULL));
		json_array_append_new(ops, cs_op_range(k_rev, NULL));
		rc = cs_etcd_call(s->etcd, "/v3/kv/txn", json_pack("{s:o}", "success", ops), &resp,
				  err, errlen);
		if (rc) {
			free(v), json_decref(rec), json_decref(after);
			goto out;
		}
		rr = json_object_get(resp, "responses");
		bool done = json_array_size(cs_kvs(json_object_get(json_array_get(rr, 0),
								    "response_range"))) > 0;
		json_t *kv = json_array_get(cs_kvs(json_object_get(json_array_get(rr, 1),
								    "response_range")), 0);
		cs_change c = {.kind = "token", .action = "create", .name = "bootstrap",
			       .after = after, .rev_seen = cs_jint(kv, "mod_revision"),
			       .cmps = json_array(), .ops = json_array()};
		json_decref(resp);
		if (done) {
			free(v), json_decref(rec), json_decref(after);
			json_decref(c.cmps), json_decref(c.ops);
			rc = 0;
			goto out;
		}
		json_array_append_new(c.cmps, cs_cmp_mod(k_done, 0));
		json_array_append_new(c.ops, cs_op_put(k_tok, v, strlen(v)));
		json_array_append_new(c.ops, cs_op_put(k_done, now, strlen(now)));
		rc = cs_commit(&r, &c, &rev, err, errlen);
		free(v), json_decref(rec), json_decref(after);
		if (rc < 0)
			goto out;
		if (rc == 1) {
			cs_model_wait(&s->model, rev, 5000);
			rc = 0;
			goto out;
		}
	}
	snprintf(err, errlen, "bootstrap: etcd kept changing under us");
	rc = -1;
out:
	free(k_done);
	free(k_tok);
	free(k_rev);
	return rc;
}
