/*
 * control/ctl/flags.c - flagshm-ctl's flag and segment commands: list,
 * get, set, delete, and the small edits (enable, disable, percent) that
 * read, change and write back with the version they read, retrying on a
 * concurrent edit (412).
 */
#include "ctl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A small edit is tried this many times before a conflict is reported. */
#define EDIT_TRIES 5

/* "/api/v1/flags/KEY" or "/api/v1/segments/NAME", escaped; NULL on OOM. */
static char *item_path(ctl_client *c, bool segment, const char *name)
{
	char *e = ctl_escape(c, name);
	if (!e)
		return NULL;
	size_t n = strlen(e) + 32;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "/api/v1/%s/%s", segment ? "segments" : "flags", e);
	ctl_free(e);
	return p;
}

static const char *what_of(bool segment)
{
	return segment ? "segment" : "flag";
}

int ctl_cmd_list(ctl_client *c, const ctl_opts *o)
{
	ctl_reply r;
	if (ctl_request(c, "GET", "/api/v1/flags", NULL, NULL, &r))
		return CTL_REFUSED;
	if (r.status != 200) {
		int st = ctl_fail("list", &r);
		ctl_reply_free(&r);
		return st;
	}
	json_t *doc = ctl_reply_json(&r, "list");
	ctl_reply_free(&r);
	if (!doc)
		return CTL_REFUSED;
	json_t *flags = json_is_array(doc) ? doc : json_object_get(doc, "flags");
	if (!json_is_array(flags)) {
		fprintf(stderr, "flagshm-ctl: list: the server's document has no \"flags\" array\n");
		json_decref(doc);
		return CTL_REFUSED;
	}
	if (o->json) {
		json_t *out = json_pack("{sO}", "flags", flags);
		ctl_print_json(o, out);
		json_decref(out);
		json_decref(doc);
		return CTL_OK;
	}
	size_t i;
	json_t *f;
	json_array_foreach(flags, i, f) {
		const char *key = json_string_value(json_object_get(f, "key"));
		json_t *en = json_object_get(f, "enabled");
		json_t *pct = json_object_get(f, "rolloutPercentage");
		ctl_put_safe(stdout, key ? key : "?", 128);
		printf("\t%s\trollout %g%%\trules %zu\n", json_is_false(en) ? "disabled" : "enabled",
		       json_is_number(pct) ? json_number_value(pct) : 100.0,
		       json_array_size(json_object_get(f, "targeting")));
	}
	if (json_array_size(flags) == 0 && isatty(fileno(stdout)))
		fprintf(stderr, "(no flags)\n");
	json_decref(doc);
	return CTL_OK;
}

/* GET the flag or segment NAME into *V (its version into *VERSION, -1
 * when the answer has none). The exit status; *V NULL and 1 with
 * *MISSING when the server says 404 (nothing printed then). */
static int fetch_item(ctl_client *c, bool segment, const char *name, json_t **v,
		      long long *version, bool *missing)
{
	*v = NULL;
	*missing = false;
	*version = -1;
	char *path = item_path(c, segment, name);
	if (!path)
		return CTL_REFUSED;
	ctl_reply r;
	int rc = ctl_request(c, "GET", path, NULL, NULL, &r);
	free(path);
	if (rc)
		return CTL_REFUSED;
	int st = CTL_OK;
	if (r.status == 404 && missing) {
		*missing = true;
		st = CTL_REFUSED;
	} else if (r.status != 200) {
		char what[200];
		snprintf(what, sizeof what, "get %s %s", what_of(segment), name);
		st = ctl_fail(what, &r);
	} else if (!(*v = ctl_reply_json(&r, "get")) || !json_is_object(*v)) {
		if (*v)
			fprintf(stderr, "flagshm-ctl: get %s: the answer is not an object\n", name);
		json_decref(*v);
		*v = NULL;
		st = CTL_REFUSED;
	} else {
		json_t *ver = json_object_get(*v, "version");
		if (json_is_integer(ver))
			*version = json_integer_value(ver);
	}
	ctl_reply_free(&r);
	return st;
}

int ctl_cmd_get(ctl_client *c, const ctl_opts *o, bool segment)
{
	json_t *v;
	long long ver;
	bool missing;
	int st = fetch_item(c, segment, o->pos[0], &v, &ver, &missing);
	if (missing) {
		fprintf(stderr, "flagshm-ctl: no %s \"", what_of(segment));
		ctl_put_safe(stderr, o->pos[0], 200);
		fputs("\"\n", stderr);
	}
	if (st == CTL_OK)
		ctl_print_json(o, v);
	json_decref(v);
	return st;
}

/* Print the outcome of a write: --json the stored object, else one line. */
static void report_write(const ctl_opts *o, const ctl_reply *r, const char *verb,
			 bool segment, const char *name)
{
	json_t *v = r->len ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	json_t *ver = json_object_get(v, "version");
	if (o->json) {
		if (v)
			ctl_print_json(o, v);
		else
			printf("{\"%s\":\"%s\"}\n", segment ? "name" : "key", name);
	} else {
		printf("%s %s ", verb, what_of(segment));
		ctl_put_safe(stdout, name, 200);
		if (json_is_integer(ver))
			printf(": version %lld", (long long)json_integer_value(ver));
		putchar('\n');
	}
	json_decref(v);
}

/* The details of a 412: the current version and who set it. */
static void conflict_details(const ctl_reply *r, long long *cur, char *who, size_t cap)
{
	*cur = -1;
	snprintf(who, cap, "someone");
	json_t *v = json_loadb(r->body, r->len, 0, NULL);
	json_t *d = json_object_get(json_object_get(v, "error"), "details");
	json_t *cv = json_object_get(d, "currentVersion");
	if (json_is_integer(cv))
		*cur = json_integer_value(cv);
	const char *by = json_string_value(json_object_get(d, "updatedBy"));
	if (by) {
		size_t j = 0;
		for (size_t i = 0; by[i] && j + 1 < cap && i < 128; i++)
			who[j++] = (unsigned char)by[i] < 0x20 || by[i] == 0x7f ? '?' : by[i];
		who[j] = '\0';
	}
	json_decref(v);
}

/* PUT V as NAME: with If-Match VERSION (>= 0) or If-None-Match: * (-1). */
static int put_item(ctl_client *c, bool segment, const char *name, json_t *v, long long version,
		    ctl_reply *r)
{
	json_object_del(v, "version");
	json_object_del(v, "createdAt");
	json_object_del(v, "updatedAt");
	char *body = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
	char *path = item_path(c, segment, name);
	char cond[64];
	if (version >= 0)
		snprintf(cond, sizeof cond, "If-Match: \"%lld\"", version);
	else
		snprintf(cond, sizeof cond, "If-None-Match: *");
	const char *h[] = {cond, NULL};
	int rc = body && path ? ctl_request(c, "PUT", path, body, h, r) : -1;
	free(body);
	free(path);
	return rc;
}

int ctl_cmd_set(ctl_client *c, const ctl_opts *o, bool segment)
{
	const char *name = o->pos[0];
	json_t *v = ctl_read_json(o->pos[1]);
	if (!v)
		return CTL_REFUSED;
	if (!json_is_object(v)) {
		fprintf(stderr, "flagshm-ctl: %s: a %s is a JSON object\n", o->pos[1], what_of(segment));
		json_decref(v);
		return CTL_REFUSED;
	}
	long long version = o->if_version;
	if (version < 0) {
		json_t *cur;
		bool missing;
		int st = fetch_item(c, segment, name, &cur, &version, &missing);
		json_decref(cur);
		if (st != CTL_OK && !missing) {
			json_decref(v);
			return st;
		}
		if (missing)
			version = -1;
		else if (version < 0) {
			fprintf(stderr, "flagshm-ctl: set %s: the server's %s has no version\n", name,
				what_of(segment));
			json_decref(v);
			return CTL_REFUSED;
		}
	}
	ctl_reply r;
	int rc = put_item(c, segment, name, v, version, &r);
	json_decref(v);
	if (rc)
		return CTL_REFUSED;
	int st = CTL_OK;
	if (r.status == 200 || r.status == 201) {
		report_write(o, &r, r.status == 201 ? "created" : "replaced", segment, name);
	} else {
		char what[200];
		snprintf(what, sizeof what, "set %s %s", what_of(segment), name);
		st = ctl_fail(what, &r);
		if (r.status == 412 && o->if_version >= 0)
			fprintf(stderr, "flagshm-ctl: %s is not at version %lld: get it, merge, retry\n",
				name, o->if_version);
	}
	ctl_reply_free(&r);
	return st;
}

int ctl_cmd_delete(ctl_client *c, const ctl_opts *o, bool segment)
{
	const char *name = o->pos[0];
	char *path = item_path(c, segment, name);
	if (!path)
		return CTL_REFUSED;
	char cond[64];
	snprintf(cond, sizeof cond, "If-Match: \"%lld\"", o->if_version);
	const char *h[] = {cond, NULL};
	ctl_reply r;
	int rc = ctl_request(c, "DELETE", path, NULL, o->if_version >= 0 ? h : NULL, &r);
	free(path);
	if (rc)
		return CTL_REFUSED;
	int st = CTL_OK;
	if (r.status == 200 || r.status == 204) {
		if (o->json)
			printf("{\"%s\":\"%s\",\"deleted\":true}\n", segment ? "name" : "key", name);
		else {
			printf("deleted %s ", what_of(segment));
			ctl_put_safe(stdout, name, 200);
			putchar('\n');
		}
	} else {
		char what[200];
		snprintf(what, sizeof what, "delete %s %s", what_of(segment), name);
		st = ctl_fail(what, &r);
	}
	ctl_reply_free(&r);
	return st;
}

/* A percentage: 0 to 100 with at most three decimals, or -1. */
static double percentage(const char *s)
{
	char *end;
	errno = 0;
	double p = strtod(s, &end);
	if (errno || end == s || *end || !(p >= 0 && p <= 100))
		return -1;
	const char *dot = strchr(s, '.');
	if (dot && strlen(dot + 1) > 3)
		return -1;
	return p;
}

/* Change V as CMD says; 0, or 1 after a message (no such rule). */
static int apply_edit(json_t *v, const ctl_opts *o, const char *cmd, double pct)
{
	if (strcmp(cmd, "enable") == 0 || strcmp(cmd, "disable") == 0)
		return json_object_set_new(v, "enabled", json_boolean(cmd[0] == 'e'));
	json_t *num = fmod(pct, 1.0) == 0 ? json_integer((json_int_t)pct) : json_real(pct);
	if (!o->rule)
		return json_object_set_new(v, "rolloutPercentage", num);
	size_t i;
	json_t *rule;
	json_array_foreach(json_object_get(v, "targeting"), i, rule) {
		const char *id = json_string_value(json_object_get(rule, "id"));
		if (!id || strcmp(id, o->rule) != 0)
			continue;
		if (json_object_get(rule, "split")) {
			fprintf(stderr, "flagshm-ctl: rule %s of %s is a split: it has weights, "
					"not a rollout percentage\n", o->rule, o->pos[0]);
			json_decref(num);
			return 1;
		}
		return json_object_set_new(rule, "rolloutPercentage", num);
	}
	fprintf(stderr, "flagshm-ctl: flag %s has no targeting rule \"%s\"\n", o->pos[0], o->rule);
	json_decref(num);
	return 1;
}

int ctl_cmd_edit(ctl_client *c, const ctl_opts *o, const char *cmd)
{
	const char *key = o->pos[0];
	double pct = 0;
	if (strcmp(cmd, "percent") == 0 && (pct = percentage(o->pos[1])) < 0) {
		fprintf(stderr, "flagshm-ctl: percent: \"%s\" is not a percentage (0-100, at most "
				"three decimals)\n", o->pos[1]);
		return CTL_USAGE;
	}
	for (int attempt = 1;; attempt++) {
		json_t *v;
		long long ver;
		bool missing;
		int st = fetch_item(c, false, key, &v, &ver, &missing);
		if (missing) {
			fprintf(stderr, "flagshm-ctl: %s: no flag \"%s\"\n", cmd, key);
			return CTL_REFUSED;
		}
		if (st != CTL_OK)
			return st;
		if (ver < 0) {
			fprintf(stderr, "flagshm-ctl: %s: the server's flag %s has no version\n", cmd, key);
			json_decref(v);
			return CTL_REFUSED;
		}
		if (o->if_version >= 0 && ver != o->if_version) {
			fprintf(stderr, "flagshm-ctl: %s: flag %s is at version %lld, not %lld: "
					"nothing changed\n", cmd, key, ver, o->if_version);
			json_decref(v);
			return CTL_REFUSED;
		}
		if (apply_edit(v, o, cmd, pct)) {
			json_decref(v);
			return CTL_REFUSED;
		}
		ctl_reply r;
		int rc = put_item(c, false, key, v, ver, &r);
		json_decref(v);
		if (rc)
			return CTL_REFUSED;
		if (r.status == 200 || r.status == 201) {
			report_write(o, &r, cmd[0] == 'e' ? "enabled" : cmd[0] == 'd' ? "disabled" : "rollout of",
				     false, key);
			ctl_reply_free(&r);
			return CTL_OK;
		}
		if (r.status != 412 || o->if_version >= 0 || attempt == EDIT_TRIES) {
			char what[200];
			snprintf(what, sizeof what, "%s %s", cmd, key);
			st = ctl_fail(what, &r);
			if (r.status == 412 && attempt == EDIT_TRIES)
				fprintf(stderr, "flagshm-ctl: %s: gave up after %d conflicting edits\n", key,
					EDIT_TRIES);
			ctl_reply_free(&r);
			return st;
		}
		long long cur;
		char who[130];
		conflict_details(&r, &cur, who, sizeof who);
		ctl_reply_free(&r);
		fprintf(stderr, "flagshm-ctl: %s changed meanwhile (version %lld by %s, we read %lld); "
				"re-reading and retrying (%d/%d)\n", key, cur, who, ver, attempt + 1,
			EDIT_TRIES);
	}
}
