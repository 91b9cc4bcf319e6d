/*
 * writer/daemon/main.c - flagshm-writer's command line.
 *
 *   flagshm-writer --store NAME --source FILE [--environment ENV] [--once]
 *                  [--limit NAME=VALUE ...]
 *   flagshm-writer --store NAME --source URL [--stream] [--poll-interval S]
 *                  [--key-file FILE] [--state-dir DIR] [--stale-after S]
 *                  [--ca-file PEM] [--idle-timeout S] [--environment ENV] ...
 *   (either with [--metrics-listen ADDR:PORT])
 *   flagshm-writer --check FILE [--environment ENV] [--limit NAME=VALUE ...]
 *   flagshm-writer --remove --store NAME
 *
 * Exit status: 0 success, 1 failure (invalid document, store held by
 * another writer, system error), 2 usage error.
 */
#include "daemon.h"
#include "shm.h"
#include "validate.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: flagshm-writer --store NAME --source FILE [--environment ENV] [--once]\n"
		"                      [--limit NAME=VALUE ...]\n"
		"       flagshm-writer --store NAME --source URL [--stream] [--poll-interval S]\n"
		"                      [--key-file FILE] [--state-dir DIR] [--stale-after S]\n"
		"                      [--ca-file PEM] [--idle-timeout S] [--environment ENV] [--once]\n"
		"       flagshm-writer --check FILE [--environment ENV] [--limit NAME=VALUE ...]\n"
		"       flagshm-writer --remove --store NAME\n"
		"\n"
		"  --store NAME        store to publish (1-64 of [A-Za-z0-9_-])\n"
		"  --source FILE       flag document (docs/flag-format.md); watched for changes\n"
		"  --environment ENV   apply the flags' overrides for ENV (1-128 of [A-Za-z0-9._-])\n"
		"  --once              publish once and exit\n"
		"  --limit NAME=VALUE  doc-bytes, flags, segments, rules, conditions, list,\n"
		"                      string, snapshot, eval-cost, regexes (k, M, G suffixes)\n"
		"  --check FILE        validate only: exit 0 valid, 1 invalid (errors on stderr)\n"
		"\n"
		"  --source URL        sync from a control plane (http:// or https://;\n"
		"                      docs/sync-protocol.md). With a URL:\n"
		"  --stream            Server-Sent Events; polls while the stream is down\n"
		"  --poll-interval S   seconds between polls (default 30)\n"
		"  --key-file FILE     the SDK key (first line); else $FLAGSHM_SDK_KEY.\n"
		"                      Never on the command line, never logged\n"
		"  --state-dir DIR     where the last good document is kept for a cold\n"
		"                      start (default /var/lib/flagshm/NAME)\n"
		"  --stale-after S     readers mark results stale when the last successful\n"
		"                      sync is older than S seconds (default 300; 0: never)\n"
		"  --ca-file PEM       trust these CAs instead of the system's\n"
		"  --idle-timeout S    reconnect a stream silent for S seconds (default 90)\n"
		"  --metrics-listen ADDR:PORT\n"
		"                      serve GET /metrics (Prometheus text format) there;\n"
		"                      PORT alone listens on 127.0.0.1, port 0 on any free\n"
		"                      port (logged); docs/metrics.md\n"
		"  --exposures FILE    append each reader's exposures (flag, variant, reason,\n"
		"                      context id) as JSON lines, one per minute each\n"
		"                      (docs/metrics.md); FILE.1 holds the previous part\n"
		"  --exposures-max-bytes N  rotate FILE at N bytes (default 64 MiB)\n"
		"  --remove            delete the store's shared-memory objects\n"
		"\n"
		"Without --once: republishes on every change of FILE and on SIGHUP (a URL:\n"
		"refetches the whole document); SIGTERM or SIGINT exit 0, leaving the\n"
		"last snapshot published.\n");
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "flagshm-writer: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	usage(stderr);
	return 2;
}

/* A whole number of seconds in [MIN, 86400], or -1. */
static long seconds(const char *arg, bool positive)
{
	char *end;
	errno = 0;
	long v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < (positive ? 1 : 0) || v > 86400)
		return -1;
	return v;
}

/* ARG, copied; a URL's userinfo (a password) is then overwritten with '*'
 * in ARG itself, which is what /proc/PID/cmdline shows every local user
 * (from the next read on: the short window after exec remains). */
static char *source_copy; /* the copy, for the life of the process */

static const char *hide_userinfo(char *arg)
{
	char *host = strstr(arg, "://");
	if (!host)
		return arg;
	host += 3;
	char *at = memrchr(host, '@', strcspn(host, "/?#"));
	free(source_copy); /* --source given twice */
	source_copy = at ? strdup(arg) : NULL;
	if (!source_copy)
		return arg;
	memset(host, '*', (size_t)(at - host));
	return source_copy;
}

/* An environment name as the format has it (docs/flag-format.md, Names):
 * 1 to 128 of [A-Za-z0-9._-]. 0, or -1 with a message in ERR. */
static int environment_check(const char *env, char *err, size_t errlen)
{
	size_t len = strlen(env), bad = wc_name_bad_char(env, len);
	if (len == 0)
		snprintf(err, errlen, "--environment must not be empty");
	else if (len > WC_NAME_MAX)
		snprintf(err, errlen, "--environment is %zu characters long, more than %d", len,
			 WC_NAME_MAX);
	else if (bad < len && env[bad] > 0x20 && env[bad] < 0x7f)
		snprintf(err, errlen, "--environment '%s': invalid character '%c' (names are 1 to %d "
			 "of A-Z a-z 0-9 . _ -)", env, env[bad], WC_NAME_MAX);
	else if (bad < len)
		snprintf(err, errlen, "--environment: invalid character 0x%02x (names are 1 to %d "
			 "of A-Z a-z 0-9 . _ -)", (unsigned char)env[bad], WC_NAME_MAX);
	else
		return 0;
	return -1;
}

int main(int argc, char **argv)
{
	enum { O_STORE = 1, O_SOURCE, O_ENV, O_ONCE, O_LIMIT, O_CHECK, O_REMOVE, O_HELP,
	       O_KEY_FILE, O_STREAM, O_POLL, O_STATE_DIR, O_STALE, O_CA_FILE, O_IDLE, O_METRICS,
	       O_EXPOSURES, O_EXPO_MAX };
	static const struct option opts[] = {
		{ "store", required_argument, NULL, O_STORE },
		{ "source", required_argument, NULL, O_SOURCE },
		{ "environment", required_argument, NULL, O_ENV },
		{ "once", no_argument, NULL, O_ONCE },
		{ "limit", required_argument, NULL, O_LIMIT },
		{ "check", required_argument, NULL, O_CHECK },
		{ "remove", no_argument, NULL, O_REMOVE },
		{ "help", no_argument, NULL, O_HELP },
		{ "key-file", required_argument, NULL, O_KEY_FILE },
		{ "stream", no_argument, NULL, O_STREAM },
		{ "poll-interval", required_argument, NULL, O_POLL },
		{ "state-dir", required_argument, NULL, O_STATE_DIR },
		{ "stale-after", required_argument, NULL, O_STALE },
		{ "ca-file", required_argument, NULL, O_CA_FILE },
		{ "idle-timeout", required_argument, NULL, O_IDLE },
		{ "metrics-listen", required_argument, NULL, O_METRICS },
		{ "exposures", required_argument, NULL, O_EXPOSURES },
		{ "exposures-max-bytes", required_argument, NULL, O_EXPO_MAX },
		{ NULL, 0, NULL, 0 },
	};
	wd_options o = { .limits = wc_limits_default(), .poll_interval_s = 30,
			 .stale_after_ms = 300 * 1000 };
	const char *check = NULL;
	bool remove = false, sync_opt = false;
	char err[256], state_dir[256];
	long v;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_STORE: o.store = optarg; break;
		case O_SOURCE: o.source = hide_userinfo(optarg); break;
		case O_ENV: o.environment = optarg; break;
		case O_ONCE: o.once = true; break;
		case O_CHECK: check = optarg; break;
		case O_REMOVE: remove = true; break;
		case O_LIMIT:
			if (wd_limit_parse(&o.limits, optarg, err, sizeof err) != 0)
				return usage_error("%s", err);
			break;
		case O_HELP: usage(stdout); return 0;
		case O_KEY_FILE: o.key_file = optarg; sync_opt = true; break;
		case O_STREAM: o.stream = true; sync_opt = true; break;
		case O_STATE_DIR: o.state_dir = optarg; sync_opt = true; break;
		case O_CA_FILE: o.ca_file = optarg; sync_opt = true; break;
		case O_METRICS: o.metrics_listen = optarg; break;
		case O_EXPOSURES: o.exposures = optarg; break;
		case O_EXPO_MAX: {
			char *end;
			unsigned long long b = strtoull(optarg, &end, 10);
			if (*end || b < 4096)
				return usage_error("--exposures-max-bytes %s: expected a number of "
						   "bytes, at least 4096", optarg);
			o.exposures_max_bytes = b;
			break;
		}
		case O_POLL:
		case O_STALE:
		case O_IDLE:
			if ((v = seconds(optarg, c != O_STALE)) < 0)
				return usage_error("%s: expected a number of seconds (at most 1 day)",
						   argv[optind - 1]);
			if (c == O_POLL)
				o.poll_interval_s = (int)v;
			else if (c == O_IDLE)
				o.idle_timeout_s = (int)v;
			else
				o.stale_after_ms = (int64_t)v * 1000;
			sync_opt = true;
			break;
		default:
			if (optopt)
				fprintf(stderr, "flagshm-writer: option needs a value or is unknown: %s\n",
					argv[optind - 1]);
			else
				fprintf(stderr, "flagshm-writer: unknown option %s\n", argv[optind - 1]);
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);

	if (o.environment && environment_check(o.environment, err, sizeof err) != 0)
		return usage_error("%s", err);
	if (check) {
		if (o.store || o.source || o.once || remove || sync_opt || o.metrics_listen)
			return usage_error("%s", "--check takes only FILE, --environment and --limit");
		return wd_check(check, o.environment, &o.limits);
	}
	if (remove) {
		if (!o.store || o.source || o.once || o.environment || o.metrics_listen)
			return usage_error("%s", "--remove takes only --store NAME");
		if (shm_name_check(o.store, err, sizeof err) != 0)
			return usage_error("%s", err);
		return wd_remove(o.store);
	}
	if (!o.store)
		return usage_error("%s", "--store NAME is required");
	if (shm_name_check(o.store, err, sizeof err) != 0)
		return usage_error("%s", err);
	if (!o.source)
		return usage_error("%s", "--source FILE is required");
	if (sync_opt && !wd_source_is_url(o.source))
		return usage_error("%s", "--stream, --poll-interval, --key-file, --state-dir, "
			"--stale-after, --ca-file and --idle-timeout need a URL --source");
	if (wd_source_is_url(o.source) && !o.state_dir) {
		snprintf(state_dir, sizeof state_dir, "/var/lib/flagshm/%s", o.store);
		o.state_dir = state_dir;
	}
	return wd_run(&o);
}
