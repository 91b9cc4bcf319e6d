/*
 * bench/bench.c - flagshm-bench: options, the store the run publishes
 * into, the order of the sections, and clean-up on every way out.
 *
 * The run owns one store, "bench-PID". It is created here (writer side,
 * shm/shm.h), given the generated document, opened through the public
 * reader API, and removed at exit: normal return, a failure, or SIGINT /
 * SIGTERM / SIGHUP (the handler only sets bench_stop; every loop checks
 * it, so the run unwinds through the same clean-up). Child processes are
 * killed and reaped before the store is removed: a forked child shares
 * the writer's lock until it exits.
 */
#include "bench.h"
#include "wm.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_BUILDTYPE
#define BENCH_BUILDTYPE "unknown"
#endif

volatile sig_atomic_t bench_stop;

static bench_env env;
static bench_opts opts;
static pid_t parent_pid;
static bool store_created;

/* ------------------------------------------------------------- messages */

void bench_note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("flagshm-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void bench_fail(bench_env *e, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "flagshm-bench: FAILED: %s\n", msg);
	if (e && e->failures)
		json_array_append_new(e->failures, json_string(msg));
}

/* ------------------------------------------------------------- options */

static const char *const known_names[] = {
	"simple", "rollout", "rules10", "missing", "string", "json",
	"simple_view", "rollout_view", "rules10_view", "missing_view", "string_view",
	"json_view", "simple_handle", "rollout_handle", "rules10_handle",
	"view_acquire_release", "loop_baseline", "lookup",
	"multiprocess", "propagation", "memory", "publish", "publish_tail", "counting",
};

bool bench_selected(const bench_opts *o, const char *name)
{
	if (!o->cases)
		return true;
	size_t n = strlen(name);
	for (const char *p = o->cases; *p;) {
		size_t l = strcspn(p, ",");
		if (l == n && strncmp(p, name, n) == 0)
			return true;
		p += l;
		if (*p == ',')
			p++;
	}
	return false;
}

/* Every name in LIST is one of known_names. */
static bool cases_valid(const char *list)
{
	for (const char *p = list; *p;) {
		size_t l = strcspn(p, ",");
		bool found = false;
		for (size_t i = 0; i < sizeof known_names / sizeof known_names[0]; i++)
			if (strlen(known_names[i]) == l && strncmp(p, known_names[i], l) == 0)
				found = true;
		if (!found) {
			fprintf(stderr, "flagshm-bench: --cases: unknown name '%.*s'\n", (int)l, p);
			return false;
		}
		p += l;
		if (*p == ',')
			p++;
	}
	return true;
}

static void usage(FILE *f)
{
	fputs("usage: flagshm-bench [options]\n"
	      "\n"
	      "Measures flagshm on a store of its own (bench-PID, removed at exit):\n"
	      "ns per evaluation and p50/p99 of the cases, 1-8 reader processes,\n"
	      "publish cost, propagation to N readers, memory per reader, the tail\n"
	      "latency a publish adds to a worker, and the performance targets beside a\n"
	      "limit probe (lookup).\n"
	      "See bench/README.md for the flags and the method.\n"
	      "\n"
	      "  --flags N          flags in the store (default 1000, at least 5)\n"
	      "  --quick            3 runs of 0.1 s, 100 propagation publishes, publish\n"
	      "                     sizes 1,000 and 10,000 only, publish_tail 3\n"
	      "                     publishes of the 10,000-flag document (CI smoke run)\n"
	      "  --json             print one JSON object instead of the table\n"
	      "  --cases A,B        run only these: simple rollout rules10 missing string\n"
	      "                     json (each with its _view variant; NAME_view alone\n"
	      "                     selects just that), view_acquire_release,\n"
	      "                     loop_baseline, lookup, multiprocess, propagation,\n"
	      "                     memory, publish, publish_tail, counting\n"
	      "  --runs N           repetitions of each measurement (default 5; quick 3)\n"
	      "  --seconds S        length of one run (default 1; quick 0.1)\n"
	      "  --samples N        single-evaluation samples per run (default 50000)\n"
	      "  --publishes N      propagation publishes (default 1000, quick 100; for a\n"
	      "                     snapshot over 8 MiB 100, quick 20)\n"
	      "  --poll-us N        propagation readers sleep N us between checks\n"
	      "                     (default 10); 0: spin, with sched_yield\n"
	      "  --readers N        propagation reader processes (default min(cpus, 8))\n"
	      "  --tail-publishes N publish_tail publishes per document (default 25;\n"
	      "                     quick 3; at most 49 fit its 10 s bound)\n"
	      "  --regexes N        give N filler flags a distinct `matches` condition\n"
	      "                     (the run's document and --emit-doc; default 0)\n"
	      "  --emit-doc FILE    write the generated flag document (format 1) and exit\n"
	      "  --emit-ids FILE    write the 10,000 user ids, one a line, and exit\n"
	      "  --emit-context FILE  write the context's attributes besides userId\n"
	      "                     (JSON) and exit; FILE may be - for stdout\n"
	      "  --help             this text\n"
	      "\n"
	      "Exit status: 0 when every measurement ran and every check held, 1 when\n"
	      "something failed, 2 on a usage error, 130 when interrupted.\n",
	      f);
}

static bool parse_size(const char *s, size_t min, size_t max, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max || s[0] == '-')
		return false;
	*out = (size_t)v;
	return true;
}

enum { O_FLAGS = 256, O_RUNS, O_SECONDS, O_SAMPLES, O_PUBLISHES, O_EMIT_DOC, O_EMIT_IDS,
       O_EMIT_CTX, O_CASES, O_POLL, O_READERS, O_TAIL_PUBS, O_REGEXES };

/* 0 to run, 1 to exit 0 (help, emit), 2 on a usage error. */
static int parse_opts(int argc, char **argv, bench_opts *o)
{
	static const struct option lo[] = {
		{ "flags", required_argument, NULL, O_FLAGS },
		{ "quick", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "cases", required_argument, NULL, O_CASES },
		{ "runs", required_argument, NULL, O_RUNS },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "samples", required_argument, NULL, O_SAMPLES },
		{ "publishes", required_argument, NULL, O_PUBLISHES },
		{ "poll-us", required_argument, NULL, O_POLL },
		{ "readers", required_argument, NULL, O_READERS },
		{ "tail-publishes", required_argument, NULL, O_TAIL_PUBS },
		{ "regexes", required_argument, NULL, O_REGEXES },
		{ "emit-doc", required_argument, NULL, O_EMIT_DOC },
		{ "emit-ids", required_argument, NULL, O_EMIT_IDS },
		{ "emit-context", required_argument, NULL, O_EMIT_CTX },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *emit_doc = NULL, *emit_ids = NULL, *emit_ctx = NULL;
	size_t runs = 0, samples = 0, pubs = 0, poll = 0, readers = 0, tail_pubs = 0;
	bool poll_set = false;
	double secs = 0;
	int c;
	memset(o, 0, sizeof *o);
	o->nflags = 1000;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_FLAGS:
			if (!parse_size(optarg, BENCH_CASE_FLAGS, 100000, &o->nflags)) {
				fprintf(stderr, "flagshm-bench: --flags: a number from %d to 100000\n",
					BENCH_CASE_FLAGS);
				return 2;
			}
			break;
		case 'q':
			o->quick = true;
			break;
		case 'j':
			o->json = true;
			break;
		case O_CASES:
			if (!cases_valid(optarg))
				return 2;
			o->cases = optarg;
			break;
		case O_RUNS:
			if (!parse_size(optarg, 1, 64, &runs)) {
				fprintf(stderr, "flagshm-bench: --runs: a number from 1 to 64\n");
				return 2;
			}
			break;
		case O_SECONDS: {
			char *end;
			secs = strtod(optarg, &end);
			if (end == optarg || *end || !(secs >= 0.001 && secs <= 60)) {
				fprintf(stderr, "flagshm-bench: --seconds: 0.001 to 60\n");
				return 2;
			}
			break;
		}
		case O_SAMPLES:
			if (!parse_size(optarg, 100, 10000000, &samples)) {
				fprintf(stderr, "flagshm-bench: --samples: 100 to 10000000\n");
				return 2;
			}
			break;
		case O_PUBLISHES:
			if (!parse_size(optarg, 1, 100000, &pubs)) {
				fprintf(stderr, "flagshm-bench: --publishes: 1 to 100000\n");
				return 2;
			}
			break;
		case O_POLL:
			if (!parse_size(optarg, 0, 1000000, &poll)) {
				fprintf(stderr, "flagshm-bench: --poll-us: 0 to 1000000\n");
				return 2;
			}
			poll_set = true;
			break;
		case O_READERS:
			if (!parse_size(optarg, 1, PROCS_MAX, &readers)) {
				fprintf(stderr, "flagshm-bench: --readers: 1 to %d\n", PROCS_MAX);
				return 2;
			}
			break;
		case O_TAIL_PUBS:
			if (!parse_size(optarg, 1, 49, &tail_pubs)) {
				fprintf(stderr, "flagshm-bench: --tail-publishes: 1 to 49\n");
				return 2;
			}
			break;
		case O_REGEXES:
			if (!parse_size(optarg, 0, 100000, &o->regexes)) {
				fprintf(stderr, "flagshm-bench: --regexes: 0 to 100000\n");
				return 2;
			}
			break;
		case O_EMIT_DOC:
			emit_doc = optarg;
			break;
		case O_EMIT_IDS:
			emit_ids = optarg;
			break;
		case O_EMIT_CTX:
			emit_ctx = optarg;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "flagshm-bench: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (emit_doc || emit_ids || emit_ctx) {
		if (emit_doc && gen_emit_doc(emit_doc, o->nflags, o->regexes))
			return 3;
		if (emit_ids && gen_emit_ids(emit_ids))
			return 3;
		if (emit_ctx && gen_emit_context(emit_ctx))
			return 3;
		return 1;
	}
	o->runs = runs ? (int)runs : o->quick ? 3 : 5;
	o->run_seconds = secs ? secs : o->quick ? 0.1 : 1.0;
	o->samples = samples ? samples : o->quick ? 10000 : 50000;
	o->prop_publishes = (int)pubs; /* 0: by snapshot size, set_defaults() */
	o->poll_us = poll_set ? (int64_t)poll : PROP_POLL_US_DEFAULT;
	if (!readers) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		readers = cpus < 1 ? 1 : cpus > 8 ? 8 : (size_t)cpus;
	}
	o->readers = (int)readers;
	o->tail_publishes = tail_pubs ? (int)tail_pubs : o->quick ? 3 : 25;
	return 0;
}

/* ------------------------------------------------------------ clean-up */

static void on_signal(int sig)
{
	(void)sig;
	bench_stop = 1;
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal; /* no SA_RESTART: blocking waits return EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* A closed stdout must not kill us before the store is removed. */
	signal(SIGPIPE, SIG_IGN);
}

static void cleanup(void)
{
	if (getpid() != parent_pid)
		return; /* a forked child that called exit(): not its store */
	procs_kill_all();
	if (env.store)
		flagshm_close(&env.store);
	wm_stop();
	if (env.writer_open) {
		shm_writer_close(&env.writer);
		env.writer_open = false;
	}
	if (store_created) {
		char err[256];
		store_created = false;
		if (shm_store_remove(env.store_name, err, sizeof err))
			fprintf(stderr, "flagshm-bench: removing store %s: %s\n", env.store_name, err);
	}
	wc_snapshot_free(&env.snap);
	free(env.ids);
	env.ids = NULL;
}

/* -------------------------------------------------------------- set-up */

static bool setup_store(bench_env *e)
{
	char err[512];
	wc_errors errs = { 0 };
	wc_limits lim = wc_limits_default();

	snprintf(e->store_name, sizeof e->store_name, "bench-%d", (int)getpid());
	int rc = shm_writer_open(&e->writer, e->store_name, err, sizeof err);
	if (rc) {
		bench_fail(e, "cannot create store %s: %s", e->store_name, err);
		return false;
	}
	e->writer_open = true;
	store_created = true;

	json_t *doc = gen_doc_rx(e->opt->nflags, e->opt->regexes);
	if (!doc) {
		bench_fail(e, "out of memory generating %zu flags", e->opt->nflags);
		return false;
	}
	rc = wc_compile(doc, NULL, "bench", &lim, &e->snap, &errs);
	json_decref(doc);
	if (rc) {
		for (size_t i = 0; i < errs.n && i < 20; i++)
			fprintf(stderr, "flagshm-bench: %s\n", errs.msg[i]);
		bench_fail(e, "the generated document does not compile (%zu errors)", errs.n);
		wc_errors_free(&errs);
		return false;
	}
	wc_errors_free(&errs);
	rc = shm_writer_publish(&e->writer, e->snap.bytes, e->snap.size, err, sizeof err);
	if (rc) {
		bench_fail(e, "cannot publish to %s: %s", e->store_name, err);
		return false;
	}
	/* The writer's counting side, as flagshm-writer runs it. */
	if (wm_start(e->store_name, NULL, err, sizeof err) == 0)
		wm_set_document(e->snap.bytes, e->snap.size);
	else
		bench_note("counting is not handed to a writer: %s", err);
	rc = flagshm_open_ex(e->store_name, NULL, NULL, &e->store, err, sizeof err);
	if (rc) {
		bench_fail(e, "flagshm_open(%s): %s (%s)", e->store_name, flagshm_strerror(rc), err);
		return false;
	}
	e->ids = calloc(BENCH_NIDS, sizeof *e->ids);
	if (!e->ids) {
		bench_fail(e, "out of memory");
		return false;
	}
	gen_ids(e->ids);
	gen_ctx(&e->ctx, e->ids);
	return true;
}

/* Defaults that depend on the compiled document. */
static void set_defaults(bench_opts *o, const bench_env *e)
{
	/* A large snapshot takes each of N readers tens of ms to remap
	 * today: 1,000 publishes of 25 MB would take minutes. */
	if (!o->prop_publishes)
		o->prop_publishes = e->snap.size > PROP_BIG_SNAPSHOT ? (o->quick ? 20 : 100)
								  : (o->quick ? 100 : 1000);
}

static json_t *machine_info(void)
{
	char model[256] = "unknown", line[512];
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		while (fgets(line, sizeof line, f))
			if (strncmp(line, "model name", 10) == 0) {
				char *p = strchr(line, ':');
				if (p) {
					p += 1 + strspn(p + 1, " \t");
					p[strcspn(p, "\n")] = '\0';
					snprintf(model, sizeof model, "%s", p);
				}
				break;
			}
		fclose(f);
	}
	struct utsname u;
	char kernel[256] = "unknown";
	if (uname(&u) == 0)
		snprintf(kernel, sizeof kernel, "%s %s %s", u.sysname, u.release, u.machine);
	char date[32];
	time_t t = time(NULL);
	strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	return json_pack("{s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o}", "cpu", model, "cpus",
			 (json_int_t)sysconf(_SC_NPROCESSORS_ONLN), "kernel", kernel,
			 "compiler", __VERSION__, "build", BENCH_BUILDTYPE, "date", date, "timer",
			 btimer.tsc ? "rdtsc (invariant TSC, lfence-serialized)" : "clock_gettime",
			 "timer_overhead_ns", jnum(btimer.overhead_ns, 2), "timer_resolution_ns",
			 jnum(btimer.resolution_ns, 2), "tsc_ghz",
			 btimer.tsc ? jnum(1.0 / btimer.ns_per_tick, 4) : json_null(),
			 "clock_gettime_ns", jnum(btimer.clock_gettime_ns, 1));
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "--memory-child") == 0)
		return memory_child_main(argc, argv);

	int rc = parse_opts(argc, argv, &opts);
	if (rc)
		return rc == 1 ? 0 : rc == 3 ? 1 : 2;

	parent_pid = getpid();
	env.opt = &opts;
	env.out = json_object();
	env.failures = json_array();
	install_signals();
	atexit(cleanup);

	bench_note("calibrating the timer");
	timer_calibrate(opts.quick);
	bool ok = setup_store(&env);
	set_defaults(&opts, &env);
	json_object_set_new(env.out, "version", json_integer(1));
	json_object_set_new(env.out, "quick", json_boolean(opts.quick));
	json_object_set_new(env.out, "config",
			    json_pack("{s:I,s:i,s:I,s:f,s:I,s:i,s:s,s:I,s:i,s:I,s:i}", "flags",
				      (json_int_t)opts.nflags, "ids", BENCH_NIDS, "runs",
				      (json_int_t)opts.runs, "run_seconds", opts.run_seconds,
				      "samples_per_run", (json_int_t)opts.samples,
				      "propagation_publishes", opts.prop_publishes, "store",
				      env.store_name, "snapshot_bytes", (json_int_t)env.snap.size,
				      "propagation_readers", opts.readers, "regexes",
				      (json_int_t)opts.regexes, "tail_publishes",
				      opts.tail_publishes));
	json_object_set_new(env.out, "machine", machine_info());
	if (ok) {
		/* The cases first, on a quiet machine; publish last, as it
		 * replaces the store's document for a while. */
		ok &= cases_run(&env);
		if (!bench_stop)
			ok &= counting_run(&env);
		if (!bench_stop)
			ok &= multiproc_run(&env);
		if (!bench_stop)
			ok &= propagation_run(&env);
		if (!bench_stop)
			ok &= memory_run(&env);
		if (!bench_stop)
			ok &= tail_run(&env);
		if (!bench_stop)
			ok &= publish_run(&env);
		targets_run(&env);
	}
	if (bench_stop)
		json_array_append_new(env.failures, json_string("interrupted"));
	json_object_set_new(env.out, "ok", json_boolean(ok && !bench_stop));
	json_object_set(env.out, "failures", env.failures);

	if (opts.json) {
		if (json_dumpf(env.out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
							JSON_REAL_PRECISION(12)) == 0)
			fputc('\n', stdout);
	} else {
		report_table(env.out);
	}
	if (fflush(stdout) != 0)
		ok = false;
	json_decref(env.failures);
	json_decref(env.out);
	cleanup();
	if (bench_stop)
		return 130;
	return ok ? 0 : 1;
}
