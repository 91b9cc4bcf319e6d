/*
 * control/ctl/rollout_cmd.c - flagshm-ctl's rollout commands
 * (docs/rollouts.md, "flagshm-ctl"):
 *   rollout start FLAG FILE|- --reason TEXT
 *   rollout status [FLAG] [--watch] [--json]
 *   rollout approve|pause|resume|rollback FLAG --reason TEXT [--immediate]
 *   rollout report FLAG --svg FILE
 *   stale [--prometheus URL] [--days N] [--json]
 *   token create NAME ROLE --group G [--group G2 ...] --reason TEXT [--json]
 * ctl_rollout_main runs first in main(): it takes these commands (their
 * own options) and leaves every other command to main's parser.
 */
#include "ctl.h"
#include "rollout_cmd.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char rollout_help[] =
	"usage: flagshm-ctl rollout start FLAG FILE|- --reason TEXT [--json]\n"
	"       flagshm-ctl rollout status [FLAG] [--watch] [--json]\n"
	"       flagshm-ctl rollout approve|pause|resume FLAG --reason TEXT [--json]\n"
	"       flagshm-ctl rollout rollback FLAG --reason TEXT [--immediate] [--json]\n"
	"       flagshm-ctl rollout report FLAG --svg FILE\n"
	"       flagshm-ctl stale [--prometheus URL] [--days N] [--json]\n"
	"       flagshm-ctl token create NAME approver --group G [--group G2] --reason TEXT\n"
	"Progressive rollouts (docs/rollouts.md): start one from a JSON file, watch it\n"
	"(a bar per stage and the guard's figures; --watch refreshes every second until\n"
	"it completes or rolls back), steer it, or draw it as SVG (percentage served, error\n"
	"rate and p99 of treatment and control over time, decisions marked).\n";

/* Value options of both parsers (to find the command word). */
static const char *const all_valopts[] = {"url", "token-file", "reason", "if-version", "rule",
					  "since", "limit", "svg", "prometheus", "days",
					  "group", NULL};

static bool takes_value(const char *a)
{
	if (strncmp(a, "--", 2) || strchr(a, '='))
		return false;
	for (const char *const *v = all_valopts; *v; v++)
		if (!strcmp(a + 2, *v))
			return true;
	return false;
}

typedef struct ro_args {
	ctl_opts o;
	const char *words[8];
	int nwords;
	const char *svg, *prometheus, *days;
	const char *groups[16];
	int ngroups;
	bool watch, immediate, help;
} ro_args;

static int usage(const char *fmt, const char *arg)
{
	fputs("flagshm-ctl: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\n(flagshm-ctl rollout --help)\n", stderr);
	return CTL_USAGE;
}

static int parse(int argc, char **argv, ro_args *a)
{
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i], *val = NULL;
		if (s[0] != '-' || !strcmp(s, "-")) {
			if (a->nwords == 8)
				return usage("too many arguments (\"%s\")", s);
			a->words[a->nwords++] = s;
			continue;
		}
		if (!strcmp(s, "--json")) {
			a->o.json = true;
			continue;
		}
		if (!strcmp(s, "--watch")) {
			a->watch = true;
			continue;
		}
		if (!strcmp(s, "--immediate")) {
			a->immediate = true;
			continue;
		}
		if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
			a->help = true;
			continue;
		}
		const char *name = s + 2, *eq = strchr(name, '=');
		char opt[32];
		snprintf(opt, sizeof opt, "%.*s", eq ? (int)(eq - name) : (int)strlen(name), name);
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			return usage("%s needs a value", s);
		if (!strcmp(opt, "url"))
			a->o.url = val;
		else if (!strcmp(opt, "token-file"))
			a->o.token_file = val;
		else if (!strcmp(opt, "reason"))
			a->o.reason = val;
		else if (!strcmp(opt, "svg"))
			a->svg = val;
		else if (!strcmp(opt, "prometheus"))
			a->prometheus = val;
		else if (!strcmp(opt, "days"))
			a->days = val;
		else if (!strcmp(opt, "group") && a->ngroups < 16)
			a->groups[a->ngroups++] = val;
		else
			return usage("unknown option \"%s\"", s);
	}
	return 0;
}

static const char *jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static double jnum(const json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

/* Answer R as the command's result: the JSON, or a failure status. */
static int done(const ro_args *a, const char *what, ctl_reply *r, bool print)
{
	int st = CTL_OK;

	if (r->status < 200 || r->status > 299) {
		st = ctl_fail(what, r);
	} else if (print) {
		json_t *v = ctl_reply_json(r, what);
		if (!v)
			st = CTL_REFUSED;
		else if (a->o.json)
			ctl_print_json(&a->o, v);
		else
			fprintf(stdout, "%s: %s at stage %lld (%g%%)\n", jstr(v, "flag"),
				jstr(v, "status"), (long long)json_integer_value(json_object_get(v, "stage")),
				jnum(v, "percentage"));
		json_decref(v);
	}
	ctl_reply_free(r);
	return st;
}

static void bar(FILE *f, double pct)
{
	int n = (int)(pct / 5 + 0.5);
	fputc('[', f);
	for (int i = 0; i < 20; i++)
		fputc(i < n ? '#' : '.', f);
	fputc(']', f);
}

static void group(FILE *f, const char *name, const json_t *g)
{
	const json_t *er = json_object_get(g, "errorRate"), *p = json_object_get(g, "p99");
	fprintf(f, "  %-9s %8.0f requests", name, jnum(g, "requests"));
	if (json_is_number(er))
		fprintf(f, "  error rate %.4f", json_number_value(er));
	if (json_is_number(p))
		fprintf(f, "  p99 %.4f s", json_number_value(p));
	fputc('\n', f);
}

static bool terminal(const json_t *v);

/* "  12s of 30m" for the current stage (the client's clock). */
static void elapsed(FILE *f, const char *since, const char *dur)
{
	struct tm tm = {0};
	const char *end = strptime(since, "%Y-%m-%dT%H:%M:%S", &tm);
	long long d = 0, mult = 1;
	char unit = 0;

	if (!end)
		return;
	long long secs = (long long)time(NULL) - (long long)timegm(&tm);
	if (secs < 0)
		secs = 0;
	fprintf(f, "  %llds", secs);
	if (dur && sscanf(dur, "%lld%c", &d, &unit) == 2) {
		mult = unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400 : 1;
		fprintf(f, " of %llds", d * mult);
	}
}

/* One rollout, for people: a bar per stage, the guard's last figures. */
static void show(FILE *f, const json_t *v)
{
	const json_t *spec = json_object_get(v, "rollout"), *st = json_object_get(spec, "stages");
	const json_t *lc = json_object_get(v, "lastCheck");
	long long cur = (long long)json_integer_value(json_object_get(v, "stage"));
	size_t i;
	const json_t *s;

	fputs("rollout ", f);
	ctl_put_safe(f, jstr(v, "flag"), 200);
	fprintf(f, ": %s, stage %lld of %zu, serving %g%% of everyone else, since ",
		jstr(v, "status"), cur, json_array_size(st), jnum(v, "percentage"));
	ctl_put_safe(f, jstr(v, "since"), 40);
	fputc('\n', f);
	json_array_foreach(st, i, s) {
		double p = json_is_number(json_object_get(s, "percentage"))
				   ? jnum(s, "percentage")
				   : 0;
		fprintf(f, " %c %2zu ", (long long)i == cur ? '>' : ' ', i);
		bar(f, (long long)i <= cur ? (json_object_get(s, "percentage") ? p : 100) : 0);
		if (json_object_get(s, "ring")) {
			fputs(" ring ", f);
			ctl_put_safe(f, jstr(s, "ring"), 60);
		} else if (json_object_get(s, "region")) {
			fputs(" region ", f);
			ctl_put_safe(f, jstr(json_object_get(s, "region"), "attribute"), 60);
		} else {
			fprintf(f, " %g%%", p);
		}
		const char *d = json_object_get(s, "duration") ? jstr(s, "duration") : jstr(s, "soak");
		if (*d) {
			fputs(" for ", f);
			ctl_put_safe(f, d, 20);
		}
		if (json_object_get(s, "requiredApprovals"))
			fputs(" (approvals)", f);
		if ((long long)i == cur && !terminal(v))
			elapsed(f, jstr(v, "since"), *d ? d : NULL);
		fputc('\n', f);
	}
	if (*jstr(v, "message")) {
		fputs("  ", f);
		ctl_put_safe(f, jstr(v, "message"), 300);
		fputc('\n', f);
	}
	if (json_is_object(lc)) {
		fputs("  last check: ", f);
		ctl_put_safe(f, jstr(lc, "verdict"), 10);
		fputs(" (", f);
		ctl_put_safe(f, jstr(lc, "reason"), 300);
		fputs(")\n", f);
		group(f, "treatment", json_object_get(lc, "treatment"));
		group(f, "control", json_object_get(lc, "control"));
	}
}

static bool terminal(const json_t *v)
{
	return !strcmp(jstr(v, "status"), "completed") || !strcmp(jstr(v, "status"), "rolled-back");
}

static int status(ctl_client *c, const ro_args *a, const char *flag)
{
	char path[600];
	char *e = flag ? ctl_escape(c, flag) : NULL;

	if (flag && (!e || strlen(e) > 500)) {
		ctl_free(e);
		return usage("bad flag key \"%s\"", flag);
	}
	snprintf(path, sizeof path, flag ? "/api/v1/rollouts/%s" : "/api/v1/rollouts",
		 flag ? e : "");
	ctl_free(e);
	for (unsigned round = 0;; round++) {
		ctl_reply r;
		json_t *v, *list;
		bool all_done = true;
		if (ctl_request(c, "GET", path, NULL, NULL, &r))
			return CTL_REFUSED;
		if (r.status != 200)
			return done(a, "rollout status", &r, false);
		v = ctl_reply_json(&r, "rollout status");
		ctl_reply_free(&r);
		if (!v)
			return CTL_REFUSED;
		list = flag ? json_pack("[O]", v) : json_incref(json_object_get(v, "rollouts"));
		if (a->watch && !a->o.json)
			fputs("\033[H\033[2J", stdout);
		if (a->o.json) {
			ctl_print_json(&a->o, v);
		} else {
			size_t i;
			json_t *x;
			json_array_foreach(list, i, x)
				show(stdout, x);
			if (json_array_size(list) == 0)
				puts("no rollouts");
		}
		size_t i;
		json_t *x;
		json_array_foreach(list, i, x)
			all_done = all_done && terminal(x);
		json_decref(list);
		json_decref(v);
		fflush(stdout);
		if (!a->watch || all_done || round > 86400)
			return CTL_OK;
		sleep(1);
	}
}

static int act(ctl_client *c, const ro_args *a, const char *what, const char *flag)
{
	char path[700];
	char *e = ctl_escape(c, flag);
	ctl_reply r;

	if (!e || strlen(e) > 500) {
		ctl_free(e);
		return usage("bad flag key \"%s\"", flag);
	}
	snprintf(path, sizeof path, "/api/v1/rollouts/%s/%s%s", e, what,
		 a->immediate ? "?immediate=true" : "");
	ctl_free(e);
	if (ctl_request(c, "POST", path, "", NULL, &r))
		return CTL_REFUSED;
	return done(a, what, &r, true);
}

static int start(ctl_client *c, const ro_args *a, const char *flag, const char *file)
{
	char path[600];
	char *e = ctl_escape(c, flag), *body;
	json_t *j = ctl_read_json(file);
	const char *const hdr[] = {"If-None-Match: *", NULL};
	ctl_reply r;
	int rc;

	if (!j) {
		ctl_free(e);
		return CTL_REFUSED;
	}
	if (!e || strlen(e) > 500) {
		ctl_free(e);
		json_decref(j);
		return usage("bad flag key \"%s\"", flag);
	}
	snprintf(path, sizeof path, "/api/v1/rollouts/%s", e);
	ctl_free(e);
	body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	rc = body ? ctl_request(c, "PUT", path, body, hdr, &r) : -1;
	free(body);
	if (rc)
		return CTL_REFUSED;
	return done(a, "rollout start", &r, true);
}

static int report(ctl_client *c, const ro_args *a, const char *flag)
{
	char path[600];
	char *e = ctl_escape(c, flag);
	ctl_reply r;
	json_t *v;
	int rc;

	if (!a->svg)
		return usage("%s", "rollout report needs --svg FILE");
	if (!e || strlen(e) > 500) {
		ctl_free(e);
		return usage("bad flag key \"%s\"", flag);
	}
	snprintf(path, sizeof path, "/api/v1/rollouts/%s?history=true", e);
	ctl_free(e);
	if (ctl_request(c, "GET", path, NULL, NULL, &r))
		return CTL_REFUSED;
	if (r.status != 200)
		return done(a, "rollout report", &r, false);
	v = ctl_reply_json(&r, "rollout report");
	ctl_reply_free(&r);
	if (!v)
		return CTL_REFUSED;
	FILE *f = !strcmp(a->svg, "-") ? stdout : fopen(a->svg, "w");
	if (!f) {
		fprintf(stderr, "flagshm-ctl: %s: %s\n", a->svg, strerror(errno));
		json_decref(v);
		return CTL_REFUSED;
	}
	rc = ctl_rollout_svg(f, v);
	if (f != stdout && fclose(f) != 0)
		rc = -1;
	json_decref(v);
	if (rc) {
		fprintf(stderr, "flagshm-ctl: %s: cannot write the report\n", a->svg);
		return CTL_REFUSED;
	}
	if (f != stdout)
		fprintf(stderr, "report of %s written to %s\n", flag, a->svg);
	return CTL_OK;
}

static int stale(ctl_client *c, const ro_args *a)
{
	char path[1400] = "/api/v1/reports/stale";
	ctl_reply r;
	json_t *v, *x;
	size_t i;

	if (a->prometheus || a->days) {
		char *p = a->prometheus ? ctl_escape(c, a->prometheus) : NULL;
		char *d = a->days ? ctl_escape(c, a->days) : NULL;
		snprintf(path + strlen(path), sizeof path - strlen(path), "?%s%.1100s%s%s%.20s",
			 p ? "prometheus=" : "", p ? p : "", p && d ? "&" : "", d ? "days=" : "",
			 d ? d : "");
		ctl_free(p);
		ctl_free(d);
	}
	if (ctl_request(c, "GET", path, NULL, NULL, &r))
		return CTL_REFUSED;
	if (r.status != 200)
		return done(a, "stale", &r, false);
	v = ctl_reply_json(&r, "stale");
	ctl_reply_free(&r);
	if (!v)
		return CTL_REFUSED;
	if (a->o.json) {
		ctl_print_json(&a->o, v);
	} else {
		json_array_foreach(json_object_get(v, "flags"), i, x) {
			size_t k;
			json_t *why;
			ctl_put_safe(stdout, jstr(x, "key"), 200);
			fputs(" (owner ", stdout);
			ctl_put_safe(stdout, *jstr(x, "owner") ? jstr(x, "owner") : "none", 200);
			fputs("): ", stdout);
			json_array_foreach(json_object_get(x, "reasons"), k, why) {
				fputs(k ? "; " : "", stdout);
				ctl_put_safe(stdout, json_string_value(why), 200);
			}
			fputs(" -> ", stdout);
			ctl_put_safe(stdout, jstr(x, "suggestedAction"), 200);
			fputc('\n', stdout);
		}
		if (json_array_size(json_object_get(v, "flags")) == 0)
			puts("no stale flags");
	}
	json_decref(v);
	return CTL_OK;
}

static int token_with_groups(ctl_client *c, const ro_args *a)
{
	json_t *req = json_pack("{s:s,s:s,s:[]}", "name", a->words[2], "role", a->words[3],
				"groups");
	char *body;
	ctl_reply r;
	int rc;

	for (int i = 0; i < a->ngroups; i++)
		json_array_append_new(json_object_get(req, "groups"), json_string(a->groups[i]));
	body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	rc = body ? ctl_request(c, "POST", "/api/v1/tokens", body, NULL, &r) : -1;
	free(body);
	if (rc)
		return CTL_REFUSED;
	if (r.status != 201)
		return done(a, "token create", &r, false);
	json_t *v = ctl_reply_json(&r, "token create");
	ctl_reply_free(&r);
	if (!v)
		return CTL_REFUSED;
	if (a->o.json) {
		ctl_print_json(&a->o, v);
	} else {
		ctl_put_safe(stdout, jstr(v, "token"), 600);
		putchar('\n');
		fprintf(stderr, "token %s (%s) created; it is shown only this once\n", a->words[2],
			a->words[3]);
	}
	json_decref(v);
	return CTL_OK;
}

int ctl_rollout_main(int argc, char **argv)
{
	const char *cmd = NULL, *sub;
	bool group = false;
	ro_args a = {.o.if_version = -1};
	ctl_client *c;
	int st;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return -1;
		if (!strncmp(argv[i], "--group", 7))
			group = true;
		if (takes_value(argv[i]))
			i++;
		else if (argv[i][0] != '-' && !cmd)
			cmd = argv[i];
	}
	if (!cmd || !(!strcmp(cmd, "rollout") || !strcmp(cmd, "stale") ||
		      (!strcmp(cmd, "token") && group)))
		return -1;
	if ((st = parse(argc, argv, &a)))
		return st;
	if (a.help) {
		fputs(rollout_help, stdout);
		return CTL_OK;
	}
	sub = a.nwords > 1 ? a.words[1] : "";
	bool write = !strcmp(cmd, "token") ||
		     (!strcmp(cmd, "rollout") &&
		      (!strcmp(sub, "start") || !strcmp(sub, "approve") || !strcmp(sub, "pause") ||
		       !strcmp(sub, "resume") || !strcmp(sub, "rollback")));
	int want = !strcmp(cmd, "stale")			? 1
		   : !strcmp(cmd, "token")			? 4
		   : !strcmp(sub, "start")			? 4
		   : !strcmp(sub, "status")			? -1
		   : !strcmp(sub, "report") || write	? 3
							: 0;
	if (want == 0)
		return usage("unknown rollout command \"%s\"", sub);
	if (!strcmp(cmd, "token") && strcmp(sub, "create"))
		return usage("%s", "--group applies to token create only");
	if (want > 0 ? a.nwords != want : (a.nwords < 2 || a.nwords > 3))
		return usage("wrong number of operands for \"%s\"", !strcmp(cmd, "stale") ? cmd : sub);
	if (write && (!a.o.reason || !*a.o.reason))
		return usage("%s needs --reason TEXT (it is kept in the audit log)", sub);
	if (!write && a.o.reason)
		return usage("%s changes nothing: --reason does not apply", *sub ? sub : cmd);
	if (a.immediate && strcmp(sub, "rollback"))
		return usage("%s", "--immediate applies to rollout rollback only");
	if (a.watch && strcmp(sub, "status"))
		return usage("%s", "--watch applies to rollout status only");
	if (!a.o.url)
		a.o.url = getenv("FLAGSHM_URL");
	if (!a.o.token_file)
		a.o.token_file = getenv("FLAGSHM_TOKEN_FILE");
	if (!a.o.url || (strncasecmp(a.o.url, "http://", 7) && strncasecmp(a.o.url, "https://", 8)))
		return usage("%s", "no control plane: give --url http(s)://... or set FLAGSHM_URL");
	if (!(c = ctl_client_new(&a.o, &st)))
		return st;
	if (!strcmp(cmd, "stale"))
		st = stale(c, &a);
	else if (!strcmp(cmd, "token"))
		st = token_with_groups(c, &a);
	else if (!strcmp(sub, "start"))
		st = start(c, &a, a.words[2], a.words[3]);
	else if (!strcmp(sub, "status"))
		st = status(c, &a, a.nwords > 2 ? a.words[2] : NULL);
	else if (!strcmp(sub, "report"))
		st = report(c, &a, a.words[2]);
	else
		st = act(c, &a, sub, a.words[2]);
	ctl_client_free(c);
	if (fflush(stdout) != 0)
		return CTL_REFUSED;
	return st;
}
