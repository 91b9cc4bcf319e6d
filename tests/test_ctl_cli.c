/*
 * tests/test_ctl_cli.c - flagshm-ctl's command line without the real
 * service: usage errors (exit 2), --help per command, options before and
 * after the command, $FLAGSHM_URL and $FLAGSHM_TOKEN_FILE, and a hostile
 * or failing server (tests/cp_server.c on 127.0.0.1 speaks the sync
 * endpoints): a wrong token exits 3 and is never printed, an answer that is
 * not JSON or is over the size limit exits 1 with a clear message, 503
 * exits 1. The service itself is in test_ctl.c.
 */
#include <criterion/criterion.h>

#include "cp_server.h"
#include "ctl_run.h"
#include "writer_proc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOKEN "fsh_cli-test-SECRET-token"

static struct {
	cp_server *cp;
	char dir[64], tok[128], badtok[128], url[80];
} F;

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	snprintf(F.dir, sizeof F.dir, "/tmp/flagshm-ctlcli-XXXXXX");
	cr_assert_not_null(mkdtemp(F.dir));
	snprintf(F.tok, sizeof F.tok, "%s/token", F.dir);
	snprintf(F.badtok, sizeof F.badtok, "%s/bad", F.dir);
	cr_assert_eq(wp_write_file(F.tok, "  " TOKEN "  \n", strlen(TOKEN) + 5), 0);
	cr_assert_eq(wp_write_file(F.badtok, "fsh_wrong-SECRET\n", 17), 0);
	F.cp = cp_start();
	cr_assert_not_null(F.cp);
	cp_set_key(F.cp, TOKEN);
	snprintf(F.url, sizeof F.url, "%s", cp_url(F.cp));
	const char *d = "{\"formatVersion\": 1, \"flags\": [{\"key\": \"a\", \"defaultValue\": true, "
			"\"rolloutPercentage\": 25}, {\"key\": \"b\", \"defaultValue\": 1, "
			"\"offValue\": 0, \"enabled\": false}]}";
	cp_set_doc(F.cp, "application/json", d, strlen(d), "\"3\"");
}

static void teardown(void)
{
	cp_stop(F.cp);
	wp_rmdir(F.dir);
}

TestSuite(ctl_cli, .init = setup, .fini = teardown, .timeout = 60);

#define RUN(...) ctl_run((const char *const[]){__VA_ARGS__, NULL}, NULL, NULL)

static void expect_usage(ctl_out o, const char *needle)
{
	cr_expect_eq(o.status, 2, "exit %d, want 2; stderr: %s", o.status, o.err);
	cr_expect_not_null(strstr(o.err, needle), "stderr lacks \"%s\": %s", needle, o.err);
	cr_expect_str_eq(o.out, "", "a usage error printed on stdout: %s", o.out);
	ctl_out_free(&o);
}

Test(ctl_cli, usage_errors_exit_2)
{
	expect_usage(RUN("--url", F.url), "no command");
	expect_usage(RUN("--url", F.url, "frobnicate"), "unknown command");
	expect_usage(RUN("--url", F.url, "list", "--frob"), "unknown option");
	expect_usage(RUN("--url", F.url, "get"), "missing operands");
	expect_usage(RUN("--url", F.url, "get", "a", "b"), "too many operands");
	expect_usage(RUN("--url", F.url, "segment"), "needs a subcommand");
	expect_usage(RUN("--url", F.url, "token", "mint", "x"), "needs a subcommand");
	expect_usage(RUN("--url", F.url, "set", "a", "-"), "needs --reason");
	expect_usage(RUN("--url", F.url, "enable", "a"), "needs --reason");
	expect_usage(RUN("--url", F.url, "disable", "a"), "needs --reason");
	expect_usage(RUN("--url", F.url, "percent", "a", "5"), "needs --reason");
	expect_usage(RUN("--url", F.url, "delete", "a"), "needs --reason");
	expect_usage(RUN("--url", F.url, "import", "f"), "needs --reason");
	expect_usage(RUN("--url", F.url, "token", "create", "n", "viewer"), "needs --reason");
	expect_usage(RUN("--url", F.url, "token", "revoke", "n"), "needs --reason");
	expect_usage(RUN("--url", F.url, "bust"), "needs --reason");
	expect_usage(RUN("--url", F.url, "segment", "delete", "s"), "needs --reason");
	expect_usage(RUN("--url", F.url, "bust", "--reason", ""), "--reason needs");
	expect_usage(RUN("--url", F.url, "bust", "--reason", "a\nb"), "--reason needs");
	expect_usage(RUN("--url", F.url, "get", "a", "--reason", "x"), "does not apply");
	expect_usage(RUN("--url", F.url, "get", "a", "--if-version", "3"), "does not apply");
	expect_usage(RUN("--url", F.url, "enable", "a", "--reason", "x", "--if-version", "-1"),
		     "--if-version needs");
	expect_usage(RUN("--url", F.url, "enable", "a", "--reason", "x", "--if-version", "v3"),
		     "--if-version needs");
	expect_usage(RUN("--url", F.url, "enable", "a", "--reason", "x", "--rule", "r"),
		     "does not apply");
	expect_usage(RUN("--url", F.url, "list", "--since", "2026-01-01T00:00:00Z"), "audit only");
	expect_usage(RUN("--url", F.url, "audit", "--limit", "1001"), "--limit needs");
	expect_usage(RUN("--url", F.url, "list", "--url", F.url), "given twice");
	expect_usage(RUN("list", "--url"), "needs a value");
	expect_usage(RUN("list"), "FLAGSHM_URL");
	expect_usage(RUN("--url", "ftp://127.0.0.1/", "list"), "http://");
	expect_usage(RUN("--url", F.url, "percent", "a", "101", "--reason", "x"), "not a percentage");
	expect_usage(RUN("--url", F.url, "percent", "a", "12.3456", "--reason", "x"),
		     "not a percentage");
}

Test(ctl_cli, help_for_every_command)
{
	ctl_out o = RUN("--help");
	cr_expect_eq(o.status, 0);
	const char *cmds[] = {"list", "get KEY", "set KEY FILE|-", "enable KEY", "disable KEY",
			      "percent KEY N [--rule ID]", "delete KEY", "segment get NAME",
			      "import FILE", "export", "audit [KEY] [--since T]",
			      "token create NAME ROLE", "token revoke NAME", "bust",
			      "FLAGSHM_URL", "FLAGSHM_TOKEN_FILE", "exit status"};
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		cr_expect_not_null(strstr(o.out, cmds[i]), "--help lacks \"%s\"", cmds[i]);
	ctl_out_free(&o);
	const char *one[] = {"list", "get", "set", "enable", "disable", "percent", "delete",
			     "segment", "import", "export", "audit", "token", "bust"};
	for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) {
		o = RUN(one[i], "--help");
		char want[64];
		snprintf(want, sizeof want, "usage: flagshm-ctl %s", one[i]);
		cr_expect_eq(o.status, 0, "%s --help exit %d", one[i], o.status);
		cr_expect_not_null(strstr(o.out, want), "%s --help: %s", one[i], o.out);
		ctl_out_free(&o);
	}
}

Test(ctl_cli, options_before_or_after_the_command_and_from_the_environment)
{
	ctl_out o = RUN("list", "--json", "--token-file", F.tok, "--url", F.url);
	cr_expect_eq(o.status, 0, "%s", o.err);
	cr_expect_not_null(strstr(o.out, "{\"flags\":[{\"key\":\"a\""), "%s", o.out);
	ctl_out_free(&o);

	o = RUN("--url", F.url, "--token-file", F.tok, "list");
	cr_expect_eq(o.status, 0, "%s", o.err);
	cr_expect_str_eq(o.out, "a\tenabled\trollout 25%\trules 0\nb\tdisabled\trollout 100%\trules 0\n");
	ctl_out_free(&o);

	char url[120], tok[200];
	snprintf(url, sizeof url, "FLAGSHM_URL=%s", F.url);
	snprintf(tok, sizeof tok, "FLAGSHM_TOKEN_FILE=%s", F.tok);
	o = ctl_run((const char *const[]){"export", "--json", NULL}, NULL,
		    (const char *const[]){url, tok, NULL});
	cr_expect_eq(o.status, 0, "%s", o.err);
	cr_expect_not_null(strstr(o.out, "\"formatVersion\":1"), "%s", o.out);
	ctl_out_free(&o);

	/* --url wins over FLAGSHM_URL */
	o = ctl_run((const char *const[]){"list", "--url", F.url, NULL}, NULL,
		    (const char *const[]){"FLAGSHM_URL=http://127.0.0.1:1", tok, NULL});
	cr_expect_eq(o.status, 0, "%s", o.err);
	ctl_out_free(&o);
}

Test(ctl_cli, authentication_failures_exit_3_without_the_token)
{
	ctl_out o = RUN("--url", F.url, "--token-file", F.badtok, "list");
	cr_expect_eq(o.status, 3, "wrong token: exit %d (%s)", o.status, o.err);
	cr_expect_not_null(strstr(o.err, "HTTP 401"), "%s", o.err);
	cr_expect_null(strstr(o.err, "SECRET"), "the token was printed: %s", o.err);
	ctl_out_free(&o);

	o = RUN("--url", F.url, "list");
	cr_expect_eq(o.status, 3, "no token: exit %d (%s)", o.status, o.err);
	ctl_out_free(&o);

	char missing[160];
	snprintf(missing, sizeof missing, "%s/nope", F.dir);
	o = RUN("--url", F.url, "--token-file", missing, "list");
	cr_expect_eq(o.status, 3, "unreadable token file: exit %d (%s)", o.status, o.err);
	cr_expect_not_null(strstr(o.err, "cannot read the token file"), "%s", o.err);
	ctl_out_free(&o);

	cr_assert_eq(wp_write_file(missing, "two words\n", 10), 0);
	o = RUN("--url", F.url, "--token-file", missing, "list");
	cr_expect_eq(o.status, 3, "a malformed token: exit %d (%s)", o.status, o.err);
	ctl_out_free(&o);

	cp_set_doc_status(F.cp, 403, NULL);
	o = RUN("--url", F.url, "--token-file", F.tok, "list");
	cr_expect_eq(o.status, 3, "403: exit %d (%s)", o.status, o.err);
	ctl_out_free(&o);
}

Test(ctl_cli, a_hostile_or_failing_server_exits_1_with_a_clear_message)
{
	const char *garbage = "{\"flags\": [\x1b[31m";
	cp_set_doc(F.cp, "application/json", garbage, strlen(garbage), "\"4\"");
	ctl_out o = RUN("--url", F.url, "--token-file", F.tok, "export");
	cr_expect_eq(o.status, 1, "%s", o.err);
	cr_expect_not_null(strstr(o.err, "not JSON"), "%s", o.err);
	cr_expect_null(strchr(o.err, '\x1b'), "a control character reached the terminal: %s", o.err);
	ctl_out_free(&o);

	size_t big = (64u << 20) + 4096;
	char *b = malloc(big);
	cr_assert_not_null(b);
	memset(b, ' ', big);
	b[0] = '[';
	b[big - 1] = ']';
	cp_set_doc(F.cp, "application/json", b, big, "\"5\"");
	free(b);
	o = RUN("--url", F.url, "--token-file", F.tok, "list");
	cr_expect_eq(o.status, 1, "%s", o.err);
	cr_expect_not_null(strstr(o.err, "larger than the limit"), "%s", o.err);
	ctl_out_free(&o);

	cp_set_doc_status(F.cp, 503, "1");
	o = RUN("--url", F.url, "--token-file", F.tok, "list");
	cr_expect_eq(o.status, 1, "%s", o.err);
	cr_expect_not_null(strstr(o.err, "HTTP 503"), "%s", o.err);
	ctl_out_free(&o);

	cp_stop(F.cp);
	F.cp = NULL;
	o = RUN("--url", F.url, "--token-file", F.tok, "list");
	cr_expect_eq(o.status, 1, "server gone: %s", o.err);
	cr_expect_not_null(strstr(o.err, "/api/v1/flags"), "%s", o.err);
	ctl_out_free(&o);
}

Test(ctl_cli, a_bad_input_file_is_refused_before_any_request)
{
	char f[160];
	snprintf(f, sizeof f, "%s/flag.json", F.dir);
	cr_assert_eq(wp_write_file(f, "{\"defaultValue\": tru}", 21), 0);
	ctl_out o = RUN("--url", F.url, "--token-file", F.tok, "set", "a", f, "--reason", "x");
	cr_expect_eq(o.status, 1, "%s", o.err);
	cr_expect_not_null(strstr(o.err, "flag.json:1:"), "no FILE:LINE:COL: %s", o.err);
	ctl_out_free(&o);
	cr_expect_eq(cp_get_seen(F.cp).doc_requests, 0);
}
