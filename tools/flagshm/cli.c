/*
 * tools/flagshm/cli.c - flagshm, the read-only inspection tool.
 *
 *   flagshm [--store NAME] status | list | show KEY | eval KEY [--context JSON] | dump
 *
 * It opens the store exactly as a server process does (libflagshm's reader
 * internals, linked statically), so what it shows is what workers see. It
 * never writes shared memory: the store is mapped read-only.
 *
 * Exit status: 0 done; 1 the store cannot be read (no such store, nothing
 * valid published, a damaged snapshot) or `show` names no flag; 2 a usage
 * error. Messages go to stderr, results to stdout.
 */
#include "cli.h"
#include "cli_stats.h"
#include "clock.h"
#include "shm.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { EXIT_OK = 0, EXIT_STORE = 1, EXIT_USAGE = 2 };

static const char usage_text[] =
	"usage: flagshm [--store NAME] COMMAND\n"
	"       flagshm --version | --help\n"
	"\n"
	"Read-only inspection of a flagshm store (default: $FLAGSHM_STORE, else \"default\").\n"
	"\n"
	"commands:\n"
	"  status                      generation, publish time, size, writer, last error\n"
	"  list                        one line per flag: key, type, enabled, value type, rules\n"
	"  show KEY                    the flag as format-1 JSON\n"
	"  eval KEY [--context JSON]   evaluate KEY; prints one JSON line\n"
	"                              (JSON: a flat object of strings, numbers, booleans\n"
	"                              and lists of strings, e.g. '{\"userId\":\"u-42\"}')\n"
	"  dump                        the whole snapshot as a format-1 document\n"
	"  stats [--json]              what every reader counted: evaluations per flag,\n"
	"                              variant, reason; errors; outcomes (docs/metrics.md)\n"
	"  top                         live view: flags by evaluations/s, variant shares,\n"
	"                              outcome error rates (q quits)\n"
	"\n"
	"exit status: 0 ok, 1 the store cannot be read, 2 usage error\n";

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fputs("flagshm: ", stderr);
	cli_put_text(stderr, line, n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1,
		     FS_TEXT_PLAIN);
	fputc('\n', stderr);
}

/* "LABEL  TEXT\n" with TEXT from the store, escaped. */
static void field(const char *label, const char *text)
{
	printf("%-12s ", label);
	cli_put_text(stdout, text, strlen(text), FS_TEXT_PLAIN);
	putchar('\n');
}

static int usage_error(const char *what)
{
	msg("%s", what);
	fputs("try 'flagshm --help'\n", stderr);
	return EXIT_USAGE;
}

/* Reader events (a snapshot that failed validation) explain a failure. */
static void log_stderr(void *ud, const char *line)
{
	(void)ud;
	msg("%s", line);
}

/* "2026-11-20T10:00:00.123Z" */
static const char *iso_time(char *buf, size_t n, int64_t ms)
{
	int64_t sec = ms / 1000, frac = ms % 1000;
	if (frac < 0) {
		frac += 1000;
		sec -= 1;
	}
	time_t t = (time_t)sec;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		snprintf(buf, n, "%" PRId64 " ms", ms);
		return buf;
	}
	size_t len = strlen(buf);
	snprintf(buf + len, n - len, ".%03dZ", (int)frac);
	return buf;
}

/* "350 ms ago", "4.2 s ago", "12 min ago", "3 h ago", "2 d ago". MS comes
 * from shared memory: any value, so the difference is taken unsigned. */
static const char *age(char *buf, size_t n, int64_t ms)
{
	int64_t now = fs_clock_ms(CLOCK_REALTIME);
	/* clocks of one host; a step back (or a time ahead) shows as "now" */
	uint64_t d = ms < now ? (uint64_t)now - (uint64_t)ms : 0;
	if (d < 1000)
		snprintf(buf, n, "%" PRIu64 " ms ago", d);
	else if (d < 120000)
		snprintf(buf, n, "%.1f s ago", (double)d / 1000.0);
	else if (d < 2 * 3600000)
		snprintf(buf, n, "%" PRIu64 " min ago", d / 60000);
	else if (d < 2 * 86400000)
		snprintf(buf, n, "%" PRIu64 " h ago", d / 3600000);
	else
		snprintf(buf, n, "%" PRIu64 " d ago", d / 86400000);
	return buf;
}

/* ------------------------------------------------------------- status */

static int cmd_status(flagshm_store *st, const char *store)
{
	char t1[64], t2[64], err[256];
	flagshm_info info;
	/* The writer fields are filled even when nothing valid is published. */
	int rc = flagshm_store_info(st, &info);
	/* The control object's own fields: what the writer last published
	 * (whether or not it validates here), last sync, last error. */
	const fs_ctl *ctl = NULL;
	if (shm_ctl_map(store, &ctl, err, sizeof err) != 0)
		ctl = NULL;

	printf("store        %s\n", store);
	if (rc == 0) {
		printf("generation   %" PRIu64 "\n", info.generation);
		printf("published    %s (%s)\n", iso_time(t1, sizeof t1, info.published_ms),
		       age(t2, sizeof t2, info.published_ms));
		printf("flags        %" PRIu32 "\n", info.flag_count);
		printf("snapshot     %" PRIu64 " bytes", info.snapshot_bytes);
		flagshm_view v;
		char verr[256] = "";
		bool refused = false;
		if (flagshm_view_acquire(st, &v) == 0) {
			const snap *sn = flagshm_view_inspect(&v);
			if (sn && sn->generation == info.generation)
				printf(", compiled in %.3f ms", sn->compile_us / 1000.0);
			refused = sn && flagshm_view_verify(&v, verr, sizeof verr) != 0;
			flagshm_view_release(&v);
		}
		printf("%s\n", refused ? "" : ", verified");
		if (refused) {
			printf("verify       ");
			cli_put_text(stdout, verr, strlen(verr), FS_TEXT_PLAIN);
			printf("\n");
			rc = FLAGSHM_ECORRUPT;
		}
		field("environment", info.environment[0] ? info.environment : "(none)");
	} else {
		uint64_t gen = ctl ? atomic_load_explicit(&ctl->ctl_generation, memory_order_acquire) : 0;
		if (gen > 0)
			printf("generation   %" PRIu64 " published, but refused here (see below)\n", gen);
		else
			printf("generation   none (nothing published yet)\n");
	}
	if (info.writer_pid <= 0)
		printf("writer       none recorded\n");
	else
		printf("writer       pid %" PRId32 ", %s\n", info.writer_pid,
		       info.writer_alive ? "running" : "not running");
	if (info.heartbeat_ms > 0)
		printf("heartbeat    %s (%s)\n", age(t1, sizeof t1, info.heartbeat_ms),
		       iso_time(t2, sizeof t2, info.heartbeat_ms));
	else
		printf("heartbeat    never\n");
	if (ctl) {
		int64_t sync = atomic_load_explicit(&ctl->ctl_last_sync_ms, memory_order_relaxed);
		int64_t stale_after = atomic_load_explicit(&ctl->ctl_stale_after_ms, memory_order_relaxed);
		char state[sizeof ctl->ctl_sync_state + 1];
		shm_ctl_text_get(ctl, SHM_TEXT_SYNC_STATE, state, sizeof state);
		if (state[0])
			field("sync", state); /* mode, etag=, id= (last event) */
		if (sync > 0)
			printf("last sync    %s (%s)\n", age(t1, sizeof t1, sync),
			       iso_time(t2, sizeof t2, sync));
		if (stale_after > 0) {
			int64_t since = -1;
			flagshm_store_age(st, &since, NULL);
			printf("stale        %s (after %.0f s without a sync)\n",
			       since < 0 || since > stale_after ? "yes" : "no",
			       (double)stale_after / 1000.0);
		}
		/* The writer may be rewriting it as we read: the sequence
		 * counter gives a whole text, never a torn one. */
		char last[sizeof ctl->ctl_last_error + 1];
		shm_ctl_text_get(ctl, SHM_TEXT_LAST_ERROR, last, sizeof last);
		field("last error", last[0] ? last : "(none)");
		shm_ctl_unmap(ctl);
	} else {
		printf("last error   (control object unreadable: ");
		cli_put_text(stdout, err, strlen(err), FS_TEXT_PLAIN);
		printf(")\n");
	}
	if (rc != 0) {
		msg("store \"%s\": nothing valid published", store);
		return EXIT_STORE;
	}
	return EXIT_OK;
}

/* ------------------------------------------------------ list show dump */

static const char *type_name(uint8_t vtype)
{
	switch (vtype) {
	case FS_V_BOOL: return "bool";
	case FS_V_NUMBER: return "number";
	case FS_V_STRING: return "string";
	case FS_V_JSON: return "json";
	default: return "?";
	}
}

/* The key column is as wide as the longest key up to the format's longest
 * name (docs/flag-format.md); a longer key (a crafted snapshot) overflows
 * its line instead of padding every other line. */
#define LIST_KEY_WIDTH_MAX 128
/* A line without its key: "  operational  disabled  number  4294967295 rules\n". */
#define LIST_LINE_REST 64

static int cmd_list(const snap *s)
{
	uint32_t n = s->count[FS_T_FLAGS];
	uint64_t budget = cli_output_budget(s), raw = 0, out = 0;
	size_t width = 0;
	/* Keys may share pool bytes: bound the output before printing any,
	 * first by the raw lengths (cheap), then escaped (each key scanned). */
	for (uint32_t i = 0; i < n; i++) {
		const fs_flag *f = SNAP_FLAG(s, i);
		if (!snap_str(s, f->f_key)) {
			msg("snapshot generation %" PRIu64 ": the key of flag %" PRIu32
			    " is out of range (damaged snapshot?)", s->generation, i);
			return EXIT_STORE;
		}
		raw += f->f_key.len;
	}
	for (uint32_t i = 0; i < n && raw <= budget && out <= budget; i++) {
		const fs_flag *f = SNAP_FLAG(s, i);
		size_t len = fs_text_escape(NULL, 0, snap_str(s, f->f_key), f->f_key.len,
					    FS_TEXT_PLAIN);
		if (len > width)
			width = len < LIST_KEY_WIDTH_MAX ? len : LIST_KEY_WIDTH_MAX;
		out += len + LIST_KEY_WIDTH_MAX + LIST_LINE_REST;
	}
	if (raw > budget || out > budget) {
		msg("snapshot generation %" PRIu64 ": the list would be more than %" PRIu64
		    " bytes (%d times the snapshot's %" PRIu64 " bytes, plus %d MiB): its flags "
		    "share key bytes, a crafted snapshot?", s->generation, budget,
		    CLI_OUTPUT_FACTOR, s->size, (int)(CLI_OUTPUT_FLOOR >> 20));
		return EXIT_STORE;
	}
	for (uint32_t i = 0; i < n; i++) {
		const fs_flag *f = SNAP_FLAG(s, i);
		const char *kind = cli_kind_name(f->f_kind);
		const char *key = snap_str(s, f->f_key);
		size_t len = fs_text_escape(NULL, 0, key, f->f_key.len, FS_TEXT_PLAIN);
		cli_put_text(stdout, key, f->f_key.len, FS_TEXT_PLAIN);
		printf("%*s  %-11s  %-8s  %-6s  %" PRIu32 " rule%s\n",
		       (int)(len < width ? width - len : 0), "", kind ? kind : "?",
		       f->f_enabled ? "enabled" : "disabled", type_name(f->f_vtype), f->f_rule_count,
		       f->f_rule_count == 1 ? "" : "s");
	}
	return EXIT_OK;
}

/* Print J (then free it), or ERR when it could not be built. */
static int print_pretty(json_t *j, const char *err)
{
	if (!j) {
		msg("%s", err);
		return EXIT_STORE;
	}
	cli_json_print(stdout, j, true);
	json_decref(j);
	return EXIT_OK;
}

static int cmd_show(const snap *s, const char *store, const char *key)
{
	int64_t i = snap_find(s, key, strlen(key));
	if (i < 0) {
		msg("store \"%s\" (generation %" PRIu64 "): no flag \"%s\"", store,
		    s->generation, key);
		return EXIT_STORE;
	}
	char err[256];
	return print_pretty(cli_dump_flag(s, (uint32_t)i, err, sizeof err), err);
}

static int cmd_dump(const snap *s)
{
	char err[256];
	return print_pretty(cli_dump_doc(s, err, sizeof err), err);
}

/* ---------------------------------------------------------------- eval */

static json_t *result_value(const flagshm_result *r)
{
	switch (r->type) {
	case FLAGSHM_TYPE_BOOL:
		return json_boolean(r->value.b);
	case FLAGSHM_TYPE_NUMBER:
		return json_real(r->value.num);
	case FLAGSHM_TYPE_STRING:
		return json_stringn(r->value.str.ptr, r->value.str.len);
	case FLAGSHM_TYPE_JSON: /* the flag's value, not a string holding it */
		return json_loadb(r->value.str.ptr, r->value.str.len, JSON_DECODE_ANY, NULL);
	default:
		return json_null();
	}
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static int cmd_eval(flagshm_store *st, const char *store, const char *key, cli_context *c)
{
	flagshm_view v;
	flagshm_result r = {.reason = FLAGSHM_REASON_ERROR};
	if (flagshm_view_acquire(st, &v) != 0) {
		msg("store \"%s\": cannot acquire a view", store);
		return EXIT_STORE;
	}
	/* The tool checks the whole snapshot (the library only what it
	 * uses): a damaged one is refused, as the library would refuse it
	 * at the first flag it could not trust. */
	char verr[256] = "";
	int rc;
	if (v.snap && flagshm_view_verify(&v, verr, sizeof verr) != 0) {
		msg("store \"%s\": generation %" PRIu64 " refused: %s", store, v.generation, verr);
		memset(&r, 0, sizeof r);
		r.reason = FLAGSHM_REASON_ERROR;
		r.error_code = FLAGSHM_CODE_STORE_UNAVAILABLE;
		rc = FLAGSHM_EUNAVAIL;
	} else {
		rc = flagshm_evaluate(&v, key, &c->ctx, &r);
	}

	/* Member by member: "generation" is a uint64, which a jansson
	 * integer (int64) cannot hold above INT64_MAX. */
	static const char *const names[] = {"flag", "value", "reason", "ruleId", "errorCode"};
	json_t *m[] = {
		json_string(key),
		rc == 0 ? result_value(&r) : json_null(),
		json_string(flagshm_reason_name(r.reason)),
		str_or_null(r.rule_id),
		r.error_code == FLAGSHM_CODE_NONE ? json_null()
						  : json_string(flagshm_error_code_name(r.error_code)),
	};
	/* Every member is there, or the line would silently lose a field. */
	bool complete = true;
	for (size_t i = 0; i < sizeof m / sizeof *m; i++)
		complete = complete && m[i];
	for (size_t i = 0; complete && i < sizeof m / sizeof *m; i++) {
		printf("%s\"%s\":", i ? "," : "{", names[i]);
		cli_json_write(stdout, m[i]);
	}
	if (complete)
		printf(",\"generation\":%" PRIu64 ",\"stale\":%s}\n", r.generation,
		       r.stale ? "true" : "false");
	for (size_t i = 0; i < sizeof m / sizeof *m; i++)
		json_decref(m[i]);
	flagshm_view_release(&v);

	if (!complete) {
		msg("cannot format the result of \"%s\"", key);
		return EXIT_STORE;
	}
	switch (rc) {
	case 0:
	case FLAGSHM_ENOTFOUND: /* a result like any other: the caller's fallback */
		return EXIT_OK;
	case FLAGSHM_EINVAL:
		msg("invalid flag key \"%s\"", key);
		return EXIT_USAGE;
	default:
		msg("store \"%s\": %s", store, flagshm_strerror(rc));
		return EXIT_STORE;
	}
}

/* ---------------------------------------------------------------- main */

enum cmd { CMD_STATUS, CMD_LIST, CMD_SHOW, CMD_EVAL, CMD_DUMP, CMD_TOP };

static const struct {
	const char *name;
	int nargs;
} cmds[] = {
	[CMD_STATUS] = {"status", 0}, [CMD_LIST] = {"list", 0}, [CMD_SHOW] = {"show", 1},
	[CMD_EVAL] = {"eval", 1},     [CMD_DUMP] = {"dump", 0},
	[CMD_TOP] = {"top", 0},
};

static int run(enum cmd cmd, const char *store, const char *key, cli_context *c)
{
	char err[256] = "";
	flagshm_store *st = NULL;
	/* Strict: a tool asked about a store that does not exist says so,
	 * rather than waiting for a writer to create it. */
	flagshm_store_options o = { .size = sizeof o, .log = log_stderr,
				    .flags = FLAGSHM_OPEN_STRICT | FLAGSHM_OPEN_NO_COUNT };
	int rc = flagshm_store_open(store, &o, &st, err, sizeof err);
	if (rc != 0) {
		msg("store \"%s\": %s", store, err[0] ? err : flagshm_strerror(rc));
		return rc == FLAGSHM_ENAME ? EXIT_USAGE : EXIT_STORE;
	}

	int code;
	if (cmd == CMD_STATUS) {
		code = cmd_status(st, store);
	} else if (cmd == CMD_EVAL) {
		code = cmd_eval(st, store, key, c);
	} else if (cmd == CMD_TOP) {
		code = cli_top(st, store);
	} else {
		flagshm_view v;
		const snap *s;
		if (flagshm_view_acquire(st, &v) != 0) {
			msg("store \"%s\": cannot acquire a view", store);
			code = EXIT_STORE;
		} else {
			char verr[256] = "";
			if (!(s = flagshm_view_inspect(&v))) {
				msg("store \"%s\": nothing valid published", store);
				code = EXIT_STORE;
			} else if (flagshm_view_verify(&v, verr, sizeof verr) != 0) {
				msg("store \"%s\": generation %" PRIu64 " refused: %s", store,
				    v.generation, verr);
				code = EXIT_STORE;
			} else if (cmd == CMD_LIST) {
				code = cmd_list(s);
			} else if (cmd == CMD_SHOW) {
				code = cmd_show(s, store, key);
			} else {
				code = cmd_dump(s);
			}
			flagshm_view_release(&v);
		}
	}
	flagshm_close(&st);
	return code;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"version", no_argument, NULL, 'V'},
		{"store", required_argument, NULL, 's'},
		{"context", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	const char *store = getenv("FLAGSHM_STORE");
	const char *context = NULL;
	bool json = false;
	if (!store || !*store)
		store = "default";

	int ch;
	while ((ch = getopt_long(argc, argv, "s:c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			store = optarg;
			break;
		case 'c':
			context = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_OK;
		case 'V':
			printf("flagshm %s (snapshot format %u)\n", flagshm_version(),
			       flagshm_format_version());
			return EXIT_OK;
		default: /* getopt said what */
			fputs("try 'flagshm --help'\n", stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return usage_error("no command given");

	const char *name = argv[optind++];
	if (strcmp(name, "stats") == 0) {
		if (optind != argc)
			return usage_error("stats takes no arguments");
		return cli_stats_main(store, json);
	}
	if (json)
		return usage_error("--json goes with stats only");
	size_t cmd = 0;
	while (cmd < sizeof cmds / sizeof *cmds && strcmp(cmds[cmd].name, name) != 0)
		cmd++;
	if (cmd == sizeof cmds / sizeof *cmds) {
		msg("unknown command \"%s\"", name);
		return usage_error("commands: status, list, show KEY, eval KEY, dump, top");
	}
	if (argc - optind != cmds[cmd].nargs) {
		char m[128];
		snprintf(m, sizeof m, "%s takes %s", name,
			 cmds[cmd].nargs ? "one argument: the flag key" : "no arguments");
		return usage_error(m);
	}
	const char *key = cmds[cmd].nargs ? argv[optind] : NULL;
	if (key && !*key)
		return usage_error("the flag key is empty");
	if (context && cmd != CMD_EVAL)
		return usage_error("--context goes with eval only");

	/* Usage errors come before the store is touched. */
	cli_context c;
	if (cmd == CMD_EVAL) {
		char err[256];
		if (cli_context_parse(&c, context ? context : "{}", err, sizeof err) != 0)
			return usage_error(err);
	}
	int code = run((enum cmd)cmd, store, key, &c);
	if (cmd == CMD_EVAL)
		cli_context_free(&c);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		msg("writing the output failed");
		return EXIT_STORE;
	}
	return code;
}
