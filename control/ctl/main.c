/*
 * control/ctl/main.c - flagshm-ctl's command line: options (before or
 * after the command), the usage text (one per command for --help) and the
 * dispatch to the commands.
 */
#include "ctl.h"
#include "flagshm.h"
#include "rollout_cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The usage text; docs/control.md ("flagshm-ctl") is the same text. */
static const char usage_text[] =
	"usage: flagshm-ctl [--url URL] [--token-file FILE] [--json] COMMAND [ARGS]\n"
	"\n"
	"commands (options may come before or after the command):\n"
	"  list                          the flags (key, enabled, rollout, rules)\n"
	"  get KEY                       one flag with its version, createdAt, updatedAt\n"
	"  set KEY FILE|-                create or replace a flag (a format-1 flag object)\n"
	"  enable KEY                    set enabled: true\n"
	"  disable KEY                   set enabled: false (the kill switch)\n"
	"  percent KEY N [--rule ID]     set the rollout percentage (0-100) of the flag\n"
	"                                or of its targeting rule ID\n"
	"  delete KEY                    delete a flag\n"
	"  segment get NAME              one segment\n"
	"  segment set NAME FILE|-       create or replace a segment\n"
	"  segment delete NAME           delete a segment (refused while a rule uses it)\n"
	"  import FILE|-                 replace the whole document (format 1) in one change\n"
	"  export                        the whole document, as writers get it\n"
	"  audit [KEY] [--since T] [--limit N]\n"
	"                                who changed what, when and why, newest first\n"
	"  token create NAME ROLE        a token (sdk, viewer, approver, editor, admin);\n"
	"                                it is shown once\n"
	"  token revoke NAME             revoke a token\n"
	"  token list                    the tokens (names and roles, never the secrets)\n"
	"  bust                          bump the epoch: every writer refetches\n"
	"\n"
	"options:\n"
	"  --url URL          the control plane (http:// or https://); else $FLAGSHM_URL\n"
	"  --token-file FILE  the bearer token (first line); else $FLAGSHM_TOKEN_FILE.\n"
	"                     Never on the command line\n"
	"  --reason TEXT      why (required for every change; kept in the audit log)\n"
	"  --if-version N     change only if the flag or segment is at version N\n"
	"  --json             machine-readable output (one JSON value on stdout)\n"
	"  --help             this text; COMMAND --help: that command's\n"
	"\n"
	"enable, disable and percent read the flag, change it and write it back with the\n"
	"version they read; when someone else changed it meanwhile (412) they re-read and\n"
	"retry, up to 5 times, saying so on stderr. set without --if-version creates the\n"
	"flag or replaces the version it reads just before.\n"
	"\n"
	"exit status: 0 ok, 1 refused or conflict, 2 usage error, 3 authentication\n"
	"(no, unknown or unreadable token; too small a role)\n";

typedef struct cmd_help {
	const char *name;
	const char *text;
} cmd_help;

static const cmd_help helps[] = {
	{"list", "usage: flagshm-ctl list [--json]\n"
		 "The flags of the current document: key, enabled, rollout percentage and the\n"
		 "number of targeting rules. --json: {\"flags\":[flag objects]}.\n"},
	{"get", "usage: flagshm-ctl get KEY [--json]\n"
		"The flag KEY with its server-set version, createdAt and updatedAt.\n"},
	{"set", "usage: flagshm-ctl set KEY FILE|- --reason TEXT [--if-version N] [--json]\n"
		"Create or replace the flag KEY with the flag object in FILE (- reads stdin).\n"
		"With --if-version N only when the flag is at version N (else exit 1); without,\n"
		"the flag is created, or the version read just before is replaced.\n"},
	{"enable", "usage: flagshm-ctl enable KEY --reason TEXT [--if-version N] [--json]\n"
		   "Set \"enabled\": true (read, change, write; retried on a concurrent edit).\n"},
	{"disable", "usage: flagshm-ctl disable KEY --reason TEXT [--if-version N] [--json]\n"
		    "Set \"enabled\": false: everyone gets the offValue.\n"},
	{"percent", "usage: flagshm-ctl percent KEY N [--rule ID] --reason TEXT [--if-version N] [--json]\n"
		    "Set the rolloutPercentage (0-100, at most three decimals) of the flag, or of\n"
		    "its targeting rule ID (a rule with a variation, not a split).\n"},
	{"delete", "usage: flagshm-ctl delete KEY --reason TEXT [--if-version N]\n"
		   "Delete the flag KEY (refused while another flag has it as a prerequisite).\n"},
	{"segment", "usage: flagshm-ctl segment get NAME [--json]\n"
		    "       flagshm-ctl segment set NAME FILE|- --reason TEXT [--if-version N]\n"
		    "       flagshm-ctl segment delete NAME --reason TEXT [--if-version N]\n"
		    "Segments are reusable audiences (docs/flag-format.md); a segment in use\n"
		    "cannot be deleted.\n"},
	{"import", "usage: flagshm-ctl import FILE|- --reason TEXT [--json]\n"
		   "Replace the whole document (flags and segments not in FILE are deleted) in\n"
		   "one change with one audit record.\n"},
	{"export", "usage: flagshm-ctl export [--json]\n"
		   "Print the whole document (format 1), as writers get it; import takes it back.\n"},
	{"audit", "usage: flagshm-ctl audit [KEY] [--since T] [--limit N] [--json]\n"
		  "Audit records, newest first: time, actor (the token's name), action, key,\n"
		  "version and reason. T is RFC 3339 or Unix seconds; N is 1-1000 (default 100).\n"
		  "--json prints the server's {\"entries\":[...],\"next\":...}.\n"},
	{"token", "usage: flagshm-ctl token create NAME ROLE --reason TEXT [--json]\n"
		  "       flagshm-ctl token revoke NAME --reason TEXT\n"
		  "       flagshm-ctl token list [--json]\n"
		  "Roles: sdk, viewer, approver, editor, admin (admin only). The token is shown\n"
		  "once; --json prints {\"name\",\"role\",\"token\"}.\n"},
	{"bust", "usage: flagshm-ctl bust --reason TEXT [--json]\n"
		 "Bump the document's epoch: every writer takes the whole document again.\n"},
};

static int usage_error(const char *fmt, const char *arg)
{
	fputs("flagshm-ctl: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\n(flagshm-ctl --help for the commands)\n", stderr);
	return CTL_USAGE;
}

static const char *help_of(const char *cmd)
{
	for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++)
		if (strcmp(helps[i].name, cmd) == 0)
			return helps[i].text;
	return NULL;
}

/* The options that take a value. */
enum { O_URL, O_TOKEN, O_REASON, O_IFV, O_RULE, O_SINCE, O_LIMIT, O_NVAL };
static const char *const valopts[O_NVAL] = {"url", "token-file", "reason", "if-version",
					    "rule", "since", "limit"};

typedef struct parsed {
	ctl_opts o;
	const char *words[8]; /* the command and its operands */
	int nwords;
	bool help, version, seen[O_NVAL];
} parsed;

static int parse(int argc, char **argv, parsed *p)
{
	bool only_words = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (only_words || a[0] != '-' || strcmp(a, "-") == 0) {
			if (p->nwords == (int)(sizeof p->words / sizeof p->words[0]))
				return usage_error("too many arguments (\"%s\")", a);
			p->words[p->nwords++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_words = true;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			p->help = true;
			continue;
		}
		if (strcmp(a, "--version") == 0) {
			p->version = true;
			continue;
		}
		if (strcmp(a, "--json") == 0) {
			p->o.json = true;
			continue;
		}
		if (strncmp(a, "--", 2) != 0)
			return usage_error("unknown option \"%s\"", a);
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t nl = eq ? (size_t)(eq - name) : strlen(name);
		int k = 0;
		while (k < O_NVAL && !(strlen(valopts[k]) == nl && strncmp(valopts[k], name, nl) == 0))
			k++;
		if (k == O_NVAL)
			return usage_error("unknown option \"%s\"", a);
		const char *val = eq ? eq + 1 : NULL;
		if (!val) {
			if (i + 1 >= argc)
				return usage_error("%s needs a value", a);
			val = argv[++i];
		}
		if (p->seen[k])
			return usage_error("--%s given twice", valopts[k]);
		p->seen[k] = true;
		char *end;
		switch (k) {
		case O_URL: p->o.url = val; break;
		case O_TOKEN: p->o.token_file = val; break;
		case O_REASON: p->o.reason = val; break;
		case O_RULE: p->o.rule = val; break;
		case O_SINCE: p->o.since = val; break;
		case O_IFV:
			errno = 0;
			p->o.if_version = strtoll(val, &end, 10);
			if (errno || end == val || *end || p->o.if_version < 0 || val[0] == '-')
				return usage_error("--if-version needs a version (an integer >= 0), not \"%s\"",
						   val);
			break;
		case O_LIMIT:
			errno = 0;
			p->o.limit = strtol(val, &end, 10);
			if (errno || end == val || *end || p->o.limit < 1 || p->o.limit > 1000)
				return usage_error("--limit needs 1-1000, not \"%s\"", val);
			break;
		}
	}
	return 0;
}

/* What each command takes: its operands and the options that apply. */
typedef struct cmd_spec {
	const char *name, *sub;
	int min, max;	/* operands after name (and sub) */
	bool write;	/* needs --reason */
	bool ifv, rule, since;
} cmd_spec;

static const cmd_spec specs[] = {
	{"list", NULL, 0, 0, false, false, false, false},
	{"get", NULL, 1, 1, false, false, false, false},
	{"set", NULL, 2, 2, true, true, false, false},
	{"enable", NULL, 1, 1, true, true, false, false},
	{"disable", NULL, 1, 1, true, true, false, false},
	{"percent", NULL, 2, 2, true, true, true, false},
	{"delete", NULL, 1, 1, true, true, false, false},
	{"segment", "get", 1, 1, false, false, false, false},
	{"segment", "set", 2, 2, true, true, false, false},
	{"segment", "delete", 1, 1, true, true, false, false},
	{"import", NULL, 1, 1, true, false, false, false},
	{"export", NULL, 0, 0, false, false, false, false},
	{"audit", NULL, 0, 1, false, false, false, true},
	{"token", "create", 2, 2, true, false, false, false},
	{"token", "revoke", 1, 1, true, false, false, false},
	{"token", "list", 0, 0, false, false, false, false},
	{"bust", NULL, 0, 0, true, false, false, false},
};

static bool good_reason(const char *r)
{
	size_t n = strlen(r);
	if (n == 0 || n > 1000)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)r[i] < 0x20 || r[i] == 0x7f)
			return false;
	return true;
}

int main(int argc, char **argv)
{
	parsed p = {.o.if_version = -1};
	int st = ctl_rollout_main(argc, argv); /* rollout, stale: rollout_cmd.c */
	if (st >= 0)
		return st;
	st = parse(argc, argv, &p);
	if (st)
		return st;
	if (p.version) {
		printf("flagshm-ctl %s (snapshot format %u)\n", FLAGSHM_VERSION_STRING,
		       FLAGSHM_FORMAT_VERSION);
		return 0;
	}
	if (p.nwords == 0) {
		if (p.help) {
			fputs(usage_text, stdout);
			return 0;
		}
		return usage_error("%s", "no command given");
	}
	const char *cmd = p.words[0];
	const char *help = help_of(cmd);
	if (!help)
		return usage_error("unknown command \"%s\"", cmd);
	if (p.help) {
		fputs(help, stdout);
		return 0;
	}
	const cmd_spec *s = NULL;
	bool has_sub = false;
	for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
		if (strcmp(specs[i].name, cmd) != 0)
			continue;
		has_sub = specs[i].sub != NULL;
		if (!has_sub || (p.nwords > 1 && strcmp(specs[i].sub, p.words[1]) == 0)) {
			s = &specs[i];
			break;
		}
	}
	if (!s) {
		fprintf(stderr, "flagshm-ctl: %s needs a subcommand\n", cmd);
		fputs(help, stderr);
		return CTL_USAGE;
	}
	int first = has_sub ? 2 : 1, n = p.nwords - first;
	if (n < s->min || n > s->max) {
		fprintf(stderr, "flagshm-ctl: %s%s%s: %s operands\n", cmd, has_sub ? " " : "",
			has_sub ? s->sub : "", n < s->min ? "missing" : "too many");
		fputs(help, stderr);
		return CTL_USAGE;
	}
	if (p.o.if_version >= 0 && !s->ifv)
		return usage_error("--if-version does not apply to %s", cmd);
	if (p.o.rule && !s->rule)
		return usage_error("--rule does not apply to %s", cmd);
	if ((p.o.since || p.o.limit) && !s->since)
		return usage_error("--since and --limit apply to audit only, not to %s", cmd);
	if (p.o.reason && !s->write)
		return usage_error("%s changes nothing: --reason does not apply", cmd);
	if (s->write && !p.o.reason)
		return usage_error("%s needs --reason TEXT (it is kept in the audit log)", cmd);
	if (p.o.reason && !good_reason(p.o.reason))
		return usage_error("%s", "--reason needs 1-1000 characters without control characters");
	for (int i = 0; i < n; i++)
		p.o.pos[i] = p.words[first + i];
	p.o.npos = n;

	/* GET /api/v1/flags/stream is the event stream, not a flag. */
	if (!has_sub && s->min > 0 && strcmp(cmd, "audit") != 0 && strcmp(cmd, "import") != 0 &&
	    strcmp(p.o.pos[0], "stream") == 0) {
		fprintf(stderr, "flagshm-ctl: %s: the flag key \"stream\" is reserved\n", cmd);
		return CTL_REFUSED;
	}
	if (!p.o.url)
		p.o.url = getenv("FLAGSHM_URL");
	if (!p.o.token_file)
		p.o.token_file = getenv("FLAGSHM_TOKEN_FILE");
	if (!p.o.url || !*p.o.url)
		return usage_error("%s", "no control plane: give --url URL or set FLAGSHM_URL");
	if (strncasecmp(p.o.url, "http://", 7) != 0 && strncasecmp(p.o.url, "https://", 8) != 0)
		return usage_error("--url needs an http:// or https:// URL, not \"%s\"", p.o.url);
	if (p.o.token_file && !*p.o.token_file)
		return usage_error("%s", "--token-file needs a file name");

	ctl_client *c = ctl_client_new(&p.o, &st);
	if (!c)
		return st;
	if (strcmp(cmd, "list") == 0)
		st = ctl_cmd_list(c, &p.o);
	else if (strcmp(cmd, "get") == 0)
		st = ctl_cmd_get(c, &p.o, false);
	else if (strcmp(cmd, "set") == 0)
		st = ctl_cmd_set(c, &p.o, false);
	else if (strcmp(cmd, "delete") == 0)
		st = ctl_cmd_delete(c, &p.o, false);
	else if (strcmp(cmd, "enable") == 0 || strcmp(cmd, "disable") == 0 ||
		 strcmp(cmd, "percent") == 0)
		st = ctl_cmd_edit(c, &p.o, cmd);
	else if (strcmp(cmd, "segment") == 0)
		st = strcmp(s->sub, "get") == 0   ? ctl_cmd_get(c, &p.o, true)
		     : strcmp(s->sub, "set") == 0 ? ctl_cmd_set(c, &p.o, true)
						  : ctl_cmd_delete(c, &p.o, true);
	else if (strcmp(cmd, "import") == 0)
		st = ctl_cmd_import(c, &p.o);
	else if (strcmp(cmd, "export") == 0)
		st = ctl_cmd_export(c, &p.o);
	else if (strcmp(cmd, "audit") == 0)
		st = ctl_cmd_audit(c, &p.o);
	else if (strcmp(cmd, "token") == 0)
		st = ctl_cmd_token(c, &p.o, s->sub);
	else
		st = ctl_cmd_bust(c, &p.o);
	ctl_client_free(c);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "flagshm-ctl: cannot write the output: %s\n", strerror(errno));
		return CTL_REFUSED;
	}
	return st;
}
