/*
 * bench/cost_bench.c - flagshm-cost-bench: the figures behind the writer's
 * cost limits (docs/flag-format.md "Evaluation cost", docs/reliability.md
 * "Cost bounds").
 *
 *   flagshm-cost-bench [--eval-cost N] [--evals N]   (default: the writer's
 *       default eval-cost, 2000 evaluations per case)
 *   flagshm-cost-bench --regexes N                   (default: the writer's
 *       default regexes limit)
 *
 * Eval: for each kind of condition, one flag whose worst-case cost is as
 * close to N as the shape allows from below: rules of 10 conditions of that
 * kind, all holding but the last, so that every condition of every rule is
 * evaluated and the flag falls through to its default. The context is the
 * worst a caller can pass the lookup: FLAGSHM_CTX_MAX attributes of 256-byte
 * strings, names of one length, the ones the conditions ask for last. The
 * cost the program computes is checked against the writer's: the document
 * compiles with eval-cost = cost and is rejected with cost - 1. It prints
 * the median and the largest of the evaluations' times.
 *
 * Regexes: N flags of one `matches` condition each, N distinct realistic
 * patterns. A fresh process (this program, exec'd) opens the store and
 * evaluates every flag once; it reports the time of flagshm_open (map,
 * validate, compile every pattern) and how much its RSS grew.
 *
 * Each run publishes into its own store, costbench-PID, removed at exit.
 */
#include "compile.h"
#include "flagshm.h"
#include "shm.h"
#include "validate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char store[64];

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "flagshm-cost-bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	shm_store_remove(store, NULL, 0);
	exit(1);
}

/* ------------------------------------------------------------ buffer */

typedef struct buf {
	char *p;
	size_t n, cap;
} buf;

static void put(buf *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
		va_end(ap);
		if (k >= 0 && (size_t)k < b->cap - b->n) {
			b->n += (size_t)k;
			return;
		}
		b->cap = b->cap ? b->cap * 2 : 1 << 16;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			die("out of memory");
	}
}

/* Compile TEXT with LIM: 0, or -1 (first error in ERR). */
static int compile(const char *text, const wc_limits *lim, wc_snapshot *out, char *err,
		   size_t errlen)
{
	wc_errors errs = {0};
	json_t *doc = NULL;
	int rc = wc_load_buffer(text, strlen(text), "bench", lim, &doc, &errs);
	if (rc == 0)
		rc = wc_compile(doc, NULL, "bench", lim, out, &errs);
	if (rc && err)
		snprintf(err, errlen, "%s", errs.n ? errs.msg[0] : "?");
	json_decref(doc);
	wc_errors_free(&errs);
	return rc;
}

static void publish(const char *text, const wc_limits *lim)
{
	wc_snapshot s;
	shm_writer w;
	char err[1024];
	if (compile(text, lim, &s, err, sizeof err))
		die("the document does not compile: %s", err);
	if (shm_writer_open(&w, store, err, sizeof err) ||
	    shm_writer_publish(&w, s.bytes, s.size, err, sizeof err))
		die("%s", err);
	shm_writer_close(&w);
	wc_snapshot_free(&s);
}

/* ---------------------------------------------------------- the eval */

#define ATTR_LEN 256
#define CONDS 10 /* per rule */

static char subject[ATTR_LEN + 1]; /* "attr-a0": ...@example.com */
static char pathological[ATTR_LEN + 1]; /* "attr-p0": aaa...a! */

typedef struct kind {
	const char *name;
	const char *hold, *fail; /* one condition's JSON each */
	int regex;
	size_t max_rules; /* a smaller document when one condition is large */
} kind;

/* The worst context: FLAGSHM_CTX_MAX attributes, every name 7 bytes, the
 * ones conditions ask for last. */
static void make_ctx(flagshm_ctx *ctx, char names[][8], char values[][ATTR_LEN + 1])
{
	flagshm_ctx_init(ctx);
	int fill = FLAGSHM_CTX_MAX - 4;
	for (int i = 0; i < fill; i++) {
		snprintf(names[i], 8, "attr-%02d", i);
		memset(values[i], 'x', ATTR_LEN);
		values[i][ATTR_LEN] = '\0';
		flagshm_ctx_string(ctx, names[i], values[i]);
	}
	flagshm_ctx_string(ctx, "attr-v0", "10.20.30-rc.1");
	flagshm_ctx_string(ctx, "attr-t0", "2026-06-01T12:00:00Z");
	flagshm_ctx_string(ctx, "attr-p0", pathological);
	flagshm_ctx_string(ctx, "attr-a0", subject);
}

static char in_list[64 * 1024];

static void make_kinds(kind *k, int *n)
{
	/* 244 bytes of a plausible local part, then the domain. */
	size_t o = 0;
	while (o < ATTR_LEN - 12)
		subject[o] = "abcdefghij.0123456789-"[o % 22], o++;
	memcpy(subject + o, "@example.com", 12);
	subject[ATTR_LEN] = '\0';
	memset(pathological, 'a', ATTR_LEN - 1);
	pathological[ATTR_LEN - 1] = '!';
	pathological[ATTR_LEN] = '\0';
	/* 64 256-byte strings around the subject. */
	size_t l = 0;
	l += (size_t)snprintf(in_list + l, sizeof in_list - l, "[");
	for (int i = 0; i < 63; i++)
		l += (size_t)snprintf(in_list + l, sizeof in_list - l, "\"%.*s%03d\",", ATTR_LEN - 3,
				      subject, i);
	snprintf(in_list + l, sizeof in_list - l, "\"%s\"]", subject);

	static char eq_hold[600], in_hold[sizeof in_list + 100], in_fail[sizeof in_list + 100];
	snprintf(eq_hold, sizeof eq_hold,
		 "{\"attribute\":\"attr-a0\",\"operator\":\"equals\",\"value\":\"%s\"}", subject);
	snprintf(in_hold, sizeof in_hold,
		 "{\"attribute\":\"attr-a0\",\"operator\":\"in\",\"value\":%s}", in_list);
	snprintf(in_fail, sizeof in_fail,
		 "{\"attribute\":\"attr-a0\",\"operator\":\"notIn\",\"value\":%s}", in_list);
	int i = 0;
	k[i++] = (kind){"equals", eq_hold,
			"{\"attribute\":\"attr-a0\",\"operator\":\"equals\",\"value\":\"no\"}", 0, 0};
	k[i++] = (kind){"contains",
			"{\"attribute\":\"attr-a0\",\"operator\":\"contains\",\"value\":\"@example.com\","
			"\"caseInsensitive\":true}",
			"{\"attribute\":\"attr-a0\",\"operator\":\"contains\",\"value\":\"@example.org\","
			"\"caseInsensitive\":true}", 0, 0};
	k[i++] = (kind){"in", in_hold, in_fail, 0, 100};
	k[i++] = (kind){"semver",
			"{\"attribute\":\"attr-v0\",\"operator\":\"semverGreaterThan\",\"value\":\"1.2.3\"}",
			"{\"attribute\":\"attr-v0\",\"operator\":\"semverLessThan\",\"value\":\"1.0.0\"}", 0, 0};
	k[i++] = (kind){"after",
			"{\"attribute\":\"attr-t0\",\"operator\":\"after\",\"value\":\"2020-01-01T00:00:00Z\"}",
			"{\"attribute\":\"attr-t0\",\"operator\":\"before\",\"value\":\"2000-01-01T00:00:00Z\"}", 0, 0};
	k[i++] = (kind){"matches",
			"{\"attribute\":\"attr-a0\",\"operator\":\"matches\",\"value\":"
			"\"^[a-z0-9._-]+@example\\\\.com$\"}",
			"{\"attribute\":\"attr-a0\",\"operator\":\"matches\",\"value\":"
			"\"^[a-z0-9._-]+@example\\\\.org$\"}", 1, 0};
	k[i++] = (kind){"matches-at-limit",
			"{\"attribute\":\"attr-a0\",\"operator\":\"matches\",\"value\":\"example\"}",
			"{\"attribute\":\"attr-p0\",\"operator\":\"matches\",\"value\":\"(a+)+$\"}", 1, 0};
	*n = i;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* One case: rules of CONDS conditions of kind K, as many as fit LIMIT. */
static void eval_case(const kind *k, size_t limit, int evals, const flagshm_ctx *ctx)
{
	uint64_t unit = k->regex ? WC_COST_REGEX : WC_COST_COND;
	uint64_t per_rule = WC_COST_RULE + CONDS * unit;
	size_t rules = (size_t)((limit - WC_COST_FLAG) / per_rule);
	if (rules > (k->max_rules ? k->max_rules : 1000))
		rules = k->max_rules ? k->max_rules : 1000;
	if (rules == 0)
		die("eval-cost %zu is below one rule of %s (%llu)", limit, k->name,
		    (unsigned long long)per_rule + 1);
	uint64_t cost = WC_COST_FLAG + rules * per_rule;
	buf b = {0};
	put(&b, "{\"formatVersion\":1,\"flags\":[{\"key\":\"f\",\"defaultValue\":\"default\","
		"\"offValue\":\"off\",\"targeting\":[");
	for (size_t r = 0; r < rules; r++) {
		put(&b, "%s{\"id\":\"r%zu\",\"variation\":\"rule\",\"conditions\":[", r ? "," : "", r);
		for (int c = 0; c < CONDS; c++)
			put(&b, "%s%s", c ? "," : "", c == CONDS - 1 ? k->fail : k->hold);
		put(&b, "]}");
	}
	put(&b, "]}]}");

	/* The writer's count is this program's. */
	wc_limits lim = wc_limits_default();
	wc_snapshot s;
	char err[1024];
	lim.max_doc_bytes = (size_t)1 << 30;
	lim.max_eval_cost = cost - 1;
	if (compile(b.p, &lim, &s, err, sizeof err) == 0 || !strstr(err, "worst-case evaluation cost"))
		die("%s: expected a rejection at eval-cost=%llu, got: %s", k->name,
		    (unsigned long long)cost - 1, err);
	lim.max_eval_cost = cost;
	publish(b.p, &lim);
	free(b.p);

	flagshm_store *st;
	if (flagshm_open(store, &st) != 0)
		die("cannot open store %s", store);
	int64_t *t = malloc((size_t)evals * sizeof *t);
	if (!t)
		die("out of memory");
	flagshm_view v;
	flagshm_result res;
	flagshm_view_acquire(st, &v);
	for (int i = 0; i < evals; i++) {
		int64_t t0 = now_ns();
		int rc = flagshm_evaluate(&v, "f", ctx, &res);
		t[i] = now_ns() - t0;
		if (rc || res.reason != FLAGSHM_REASON_DEFAULT_ROLLOUT)
			die("%s: evaluation %d: rc %d reason %s", k->name, i, rc,
			    flagshm_reason_name(res.reason));
	}
	flagshm_view_release(&v);
	flagshm_close(&st);
	qsort(t, (size_t)evals, sizeof *t, cmp_i64);
	int64_t med = t[evals / 2], max = t[evals - 1];
	printf("%-17s %4zu rules %6zu conditions  cost %6llu  median %8.1f us  max %8.1f us  "
	       "%6.1f ns/condition\n",
	       k->name, rules, rules * CONDS, (unsigned long long)cost, med / 1000.0, max / 1000.0,
	       (double)med / (double)(rules * CONDS));
	free(t);
}

/* -------------------------------------------------------- the regexes */

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Pattern I: five shapes seen in real flag sets, numbered apart. */
static void pattern(size_t i, char *out, size_t n)
{
	switch (i % 5) {
	case 0: snprintf(out, n, "^user-%zu@(example|acme)\\\\.com$", i); break;
	case 1: snprintf(out, n, "^/api/v%zu/(orders|carts)/[0-9]+$", i); break;
	case 2: snprintf(out, n, "(?i)chrome/%zu\\\\.[0-9]+", i); break;
	case 3: snprintf(out, n, "^10\\\\.%zu\\\\.[0-9]{1,3}\\\\.[0-9]{1,3}$", i % 256 + i / 256 * 1000); break;
	default: snprintf(out, n, "^[a-z]{2}-[A-Z]{2}-%zu$", i); break;
	}
}

static int regex_child(const char *st_name, size_t n)
{
	long before = rss_kb();
	int64_t t0 = now_ns();
	flagshm_store *st;
	if (flagshm_open(st_name, &st) != 0)
		return 1;
	flagshm_view v;
	flagshm_view_acquire(st, &v);
	int64_t t1 = now_ns();
	flagshm_ctx ctx;
	flagshm_ctx_init(&ctx);
	flagshm_ctx_string(&ctx, "path", "/api/v3/orders/12345");
	char key[32];
	flagshm_result r;
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof key, "rx%zu", i);
		if (flagshm_evaluate(&v, key, &ctx, &r) != 0)
			return 1;
	}
	int64_t t2 = now_ns();
	flagshm_view_release(&v);
	long after = rss_kb();
	printf("%zu flags of one regex condition: open (map, validate, compile) %.1f ms, first evaluation of "
	       "every flag %.1f ms, RSS %ld kB -> %ld kB (+%ld kB, %.1f kB per pattern)\n",
	       n, (t1 - t0) / 1e6, (t2 - t1) / 1e6, before, after, after - before,
	       n ? (double)(after - before) / (double)n : 0.0);
	flagshm_close(&st);
	return 0;
}

static void regex_case(size_t n)
{
	buf b = {0};
	char p[128];
	put(&b, "{\"formatVersion\":1,\"flags\":[");
	for (size_t i = 0; i < n; i++) {
		pattern(i, p, sizeof p);
		put(&b, "%s{\"key\":\"rx%zu\",\"defaultValue\":false,\"targeting\":[{\"id\":\"r\","
			"\"variation\":true,\"conditions\":[{\"attribute\":\"path\",\"operator\":"
			"\"matches\",\"value\":\"%s\"}]}]}",
		    i ? "," : "", i, p);
	}
	put(&b, "]}");
	wc_limits lim = wc_limits_default();
	lim.max_regexes = n;
	publish(b.p, &lim);
	free(b.p);

	char num[32];
	snprintf(num, sizeof num, "%zu", n);
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		execl("/proc/self/exe", "flagshm-cost-bench", "--regex-child", store, num, (char *)NULL);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		die("the reader process failed");
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	wc_limits def = wc_limits_default();
	size_t limit = def.max_eval_cost, regexes = 0;
	int evals = 2000, do_regex = 0;

	if (argc == 4 && strcmp(argv[1], "--regex-child") == 0)
		return regex_child(argv[2], strtoul(argv[3], NULL, 10));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--eval-cost") == 0 && i + 1 < argc)
			limit = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--evals") == 0 && i + 1 < argc)
			evals = atoi(argv[++i]);
		else if (strcmp(argv[i], "--regexes") == 0 && i + 1 < argc)
			do_regex = 1, regexes = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--regexes") == 0)
			do_regex = 1, regexes = def.max_regexes;
		else {
			fprintf(stderr, "usage: flagshm-cost-bench [--eval-cost N] [--evals N] | "
					"--regexes [N]\n");
			return 2;
		}
	}
	if (evals < 1 || evals > 1000000 || limit < 2)
		return 2;
	snprintf(store, sizeof store, "costbench-%d", (int)getpid());
	if (do_regex) {
		regex_case(regexes);
	} else {
		static char names[FLAGSHM_CTX_MAX][8], values[FLAGSHM_CTX_MAX][ATTR_LEN + 1];
		flagshm_ctx ctx;
		kind k[8];
		int n;
		make_kinds(k, &n);
		make_ctx(&ctx, names, values);
		printf("eval-cost %zu (condition %d, regex %d, rule %d, flag %d), %d evaluations "
		       "per case\n",
		       limit, WC_COST_COND, WC_COST_REGEX, WC_COST_RULE, WC_COST_FLAG, evals);
		for (int i = 0; i < n; i++)
			eval_case(&k[i], limit, evals, &ctx);
	}
	shm_store_remove(store, NULL, 0);
	return 0;
}
