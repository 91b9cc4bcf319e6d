/*
 * writer/main.c - flagshm-writer's command line.
 *
 *   flagshm-writer --store NAME --source FILE [--environment ENV] [--once]
 *                  [--limit NAME=VALUE ...]
 *   flagshm-writer --check FILE [--environment ENV] [--limit NAME=VALUE ...]
 *   flagshm-writer --remove --store NAME
 *
 * Exit status: 0 success, 1 failure (invalid document, store held by
 * another writer, system error), 2 usage error.
 */
#include "daemon.h"
#include "shm.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: flagshm-writer --store NAME --source FILE [--environment ENV] [--once]\n"
		"                      [--limit NAME=VALUE ...]\n"
		"       flagshm-writer --check FILE [--environment ENV] [--limit NAME=VALUE ...]\n"
		"       flagshm-writer --remove --store NAME\n"
		"\n"
		"  --store NAME        store to publish (1-64 of [A-Za-z0-9_-])\n"
		"  --source FILE       flag document (docs/flag-format.md); watched for changes\n"
		"  --environment ENV   apply the flags' overrides for ENV\n"
		"  --once              publish once and exit\n"
		"  --limit NAME=VALUE  doc-bytes, flags, segments, rules, conditions, list,\n"
		"                      string, snapshot (k, M, G suffixes)\n"
		"  --check FILE        validate only: exit 0 valid, 1 invalid (errors on stderr)\n"
		"  --remove            delete the store's shared-memory objects\n"
		"\n"
		"Without --once: republishes on every change of FILE and on SIGHUP;\n"
		"SIGTERM or SIGINT exit 0, leaving the last snapshot published.\n");
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "flagshm-writer: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	usage(stderr);
	return 2;
}

int main(int argc, char **argv)
{
	enum { O_STORE = 1, O_SOURCE, O_ENV, O_ONCE, O_LIMIT, O_CHECK, O_REMOVE, O_HELP };
	static const struct option opts[] = {
		{ "store", required_argument, NULL, O_STORE },
		{ "source", required_argument, NULL, O_SOURCE },
		{ "environment", required_argument, NULL, O_ENV },
		{ "once", no_argument, NULL, O_ONCE },
		{ "limit", required_argument, NULL, O_LIMIT },
		{ "check", required_argument, NULL, O_CHECK },
		{ "remove", no_argument, NULL, O_REMOVE },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	wd_options o = { .limits = wr_limits_default() };
	const char *check = NULL;
	bool remove = false;
	char err[256];
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_STORE: o.store = optarg; break;
		case O_SOURCE: o.source = optarg; break;
		case O_ENV: o.environment = optarg; break;
		case O_ONCE: o.once = true; break;
		case O_CHECK: check = optarg; break;
		case O_REMOVE: remove = true; break;
		case O_LIMIT:
			if (wd_limit_parse(&o.limits, optarg, err, sizeof err) != 0)
				return usage_error("%s", err);
			break;
		case O_HELP: usage(stdout); return 0;
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

	if (check) {
		if (o.store || o.source || o.once || remove)
			return usage_error("%s", "--check takes only FILE, --environment and --limit");
		return wd_check(check, o.environment, &o.limits);
	}
	if (remove) {
		if (!o.store || o.source || o.once || o.environment)
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
	if (o.environment && !o.environment[0])
		return usage_error("%s", "--environment must not be empty");
	return wd_run(&o);
}
