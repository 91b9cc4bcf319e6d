/*
 * control/ctl/admin.c - flagshm-ctl's whole-document and administrative
 * commands: import, export, audit, token create/revoke/list, bust.
 */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A non-success answer R of WHAT: print it, free it, the exit status. */
static int failed(const char *what, ctl_reply *r)
{
	int st = ctl_fail(what, r);
	ctl_reply_free(r);
	return st;
}

/* Print a string field of V, escaped, or DEF. */
static void put_field(const json_t *v, const char *name, const char *def, size_t max)
{
	const char *s = json_string_value(json_object_get(v, name));
	ctl_put_safe(stdout, s ? s : def, max);
}

int ctl_cmd_import(ctl_client *c, const ctl_opts *o)
{
	json_t *doc = ctl_read_json(o->pos[0]);
	if (!doc)
		return CTL_REFUSED;
	char *body = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (!body)
		return CTL_REFUSED;
	ctl_reply r;
	int rc = ctl_request(c, "POST", "/api/v1/import", body, NULL, &r);
	free(body);
	if (rc)
		return CTL_REFUSED;
	if (r.status != 200 && r.status != 201)
		return failed("import", &r);
	json_t *v = ctl_reply_json(&r, "import");
	ctl_reply_free(&r);
	if (!v)
		return CTL_REFUSED;
	if (o->json) {
		ctl_print_json(o, v);
	} else {
		json_t *rev = json_object_get(v, "revision");
		printf("imported");
		if (json_is_integer(rev))
			printf(" at revision %lld", (long long)json_integer_value(rev));
		putchar('\n');
		const char *kinds[] = {"flags", "segments"};
		for (int k = 0; k < 2; k++) {
			json_t *n = json_object_get(v, kinds[k]);
			if (!json_is_object(n))
				continue;
			printf("  %s:", kinds[k]);
			const char *f[] = {"created", "updated", "deleted", "unchanged"};
			for (int i = 0; i < 4; i++) {
				json_t *x = json_object_get(n, f[i]);
				if (json_is_integer(x))
					printf(" %lld %s", (long long)json_integer_value(x), f[i]);
			}
			putchar('\n');
		}
	}
	json_decref(v);
	return CTL_OK;
}

int ctl_cmd_export(ctl_client *c, const ctl_opts *o)
{
	json_t *v;
	int st = ctl_call_json(c, "GET", "/api/v1/flags", NULL, 200, "export", &v);
	if (st != CTL_OK)
		return st;
	ctl_print_json(o, v);
	json_decref(v);
	return CTL_OK;
}

int ctl_cmd_audit(ctl_client *c, const ctl_opts *o)
{
	char path[1400];
	size_t n = (size_t)snprintf(path, sizeof path, "/api/v1/audit?limit=%ld",
				    o->limit ? o->limit : 100);
	const char *params[2][2] = {{"key", o->npos ? o->pos[0] : NULL}, {"since", o->since}};
	for (int i = 0; i < 2; i++) {
		if (!params[i][1])
			continue;
		char *e = ctl_escape(c, params[i][1]);
		if (!e || strlen(e) > 600) {
			ctl_free(e);
			fprintf(stderr, "flagshm-ctl: audit: the %s is too long\n", params[i][0]);
			return CTL_USAGE;
		}
		n += (size_t)snprintf(path + n, sizeof path - n, "&%s=%s", params[i][0], e);
		ctl_free(e);
	}
	json_t *v;
	int st = ctl_call_json(c, "GET", path, NULL, 200, "audit", &v);
	if (st != CTL_OK)
		return st;
	json_t *entries = json_object_get(v, "entries");
	if (!json_is_array(entries)) {
		fprintf(stderr, "flagshm-ctl: audit: the answer has no \"entries\" array\n");
		json_decref(v);
		return CTL_REFUSED;
	}
	if (o->json) {
		ctl_print_json(o, v);
		json_decref(v);
		return CTL_OK;
	}
	size_t i;
	json_t *e;
	json_array_foreach(entries, i, e) {
		put_field(e, "time", "?", 40);
		putchar(' ');
		put_field(e, "actor", "?", 128);
		putchar(' ');
		put_field(e, "action", "?", 40);
		putchar(' ');
		put_field(e, "kind", "?", 20);
		const char *key = json_string_value(json_object_get(e, "key"));
		if (key) {
			putchar(' ');
			ctl_put_safe(stdout, key, 200);
		}
		json_t *ver = json_object_get(e, "version");
		if (json_is_integer(ver))
			printf(" v%lld", (long long)json_integer_value(ver));
		fputs(" reason: ", stdout);
		put_field(e, "reason", "", 1000);
		putchar('\n');
	}
	if (json_is_string(json_object_get(v, "next")))
		fprintf(stderr, "(more: use --since or --limit up to 1000)\n");
	json_decref(v);
	return CTL_OK;
}

int ctl_cmd_token(ctl_client *c, const ctl_opts *o, const char *sub)
{
	ctl_reply r;
	if (strcmp(sub, "create") == 0) {
		json_t *req = json_pack("{ssss}", "name", o->pos[0], "role", o->pos[1]);
		char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
		json_decref(req);
		int rc = body ? ctl_request(c, "POST", "/api/v1/tokens", body, NULL, &r) : -1;
		free(body);
		if (rc)
			return CTL_REFUSED;
		if (r.status != 200 && r.status != 201)
			return failed("token create", &r);
		json_t *v = ctl_reply_json(&r, "token create");
		ctl_reply_free(&r);
		const char *tok = json_string_value(json_object_get(v, "token"));
		if (!tok) {
			fprintf(stderr, "flagshm-ctl: token create: the answer has no \"token\"\n");
			json_decref(v);
			return CTL_REFUSED;
		}
		if (o->json) {
			json_t *out = json_pack("{sOsOss}", "name", json_object_get(v, "name"), "role",
						json_object_get(v, "role"), "token", tok);
			if (!out)
				out = json_pack("{ssssss}", "name", o->pos[0], "role", o->pos[1], "token", tok);
			ctl_print_json(o, out);
			json_decref(out);
		} else {
			ctl_put_safe(stdout, tok, 600);
			putchar('\n');
			fprintf(stderr, "token %s (%s) created; it is shown only this once\n", o->pos[0],
				o->pos[1]);
		}
		json_decref(v);
		return CTL_OK;
	}
	if (strcmp(sub, "revoke") == 0) {
		char *e = ctl_escape(c, o->pos[0]);
		char path[600];
		if (!e || strlen(e) > 500) {
			ctl_free(e);
			fprintf(stderr, "flagshm-ctl: token revoke: the name is too long\n");
			return CTL_USAGE;
		}
		snprintf(path, sizeof path, "/api/v1/tokens/%s", e);
		ctl_free(e);
		if (ctl_request(c, "DELETE", path, NULL, NULL, &r))
			return CTL_REFUSED;
		if (r.status != 200 && r.status != 204)
			return failed("token revoke", &r);
		ctl_reply_free(&r);
		if (o->json)
			ctl_print_done(o, "name", o->pos[0], "revoked");
		else
			printf("revoked token %s\n", o->pos[0]);
		return CTL_OK;
	}
	json_t *v;
	int st = ctl_call_json(c, "GET", "/api/v1/tokens", NULL, 200, "token list", &v);
	if (st != CTL_OK)
		return st;
	if (o->json) {
		ctl_print_json(o, v);
	} else {
		size_t i;
		json_t *t;
		json_array_foreach(json_object_get(v, "tokens"), i, t) {
			put_field(t, "name", "?", 128);
			putchar('\t');
			put_field(t, "role", "?", 20);
			putchar('\t');
			put_field(t, "createdAt", "", 40);
			putchar('\n');
		}
	}
	json_decref(v);
	return CTL_OK;
}

int ctl_cmd_bust(ctl_client *c, const ctl_opts *o)
{
	json_t *v;
	int st = ctl_call_json(c, "POST", "/api/v1/bust", "{}", 200, "bust", &v);
	if (st != CTL_OK)
		return st;
	if (o->json) {
		ctl_print_json(o, v);
	} else {
		json_t *ep = json_object_get(v, "epoch");
		char *s = json_dumps(ep, JSON_ENCODE_ANY);
		fputs("epoch now ", stdout);
		ctl_put_safe(stdout, s ? s : "?", 100);
		putchar('\n');
		free(s);
	}
	json_decref(v);
	return CTL_OK;
}
