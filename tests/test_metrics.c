/*
 * tests/test_metrics.c - the real flagshm-writer with --metrics-listen:
 * its exposition fetched with libcurl and judged by `promtool check
 * metrics`, its answers to other paths and methods, a port in use,
 * hostile clients (huge headers, slowloris, a flood of connections)
 * while it keeps publishing, and a real Prometheus (Debian's package) on
 * 127.0.0.1 that scrapes it and answers queries over its HTTP API.
 *
 * Every wait polls a condition with a generous bound; nothing depends on
 * the machine's speed.
 */
#include <criterion/criterion.h>

#include "cp_server.h"
#include "flagshm.h"
#include "promtool.h"
#include "writer_proc.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROMETHEUS "/usr/bin/prometheus"
#define WAIT_MS 30000

static struct {
	char dir[64], store[64], flags[128], log[128];
	char addr[80]; /* the writer's metrics address, "127.0.0.1:PORT" */
	pid_t writer, prom;
} M;

/* ------------------------------------------------------------ helpers */

static const char doc_v1[] =
	"{\"formatVersion\":1,\"flags\":["
	"{\"key\":\"new-checkout\",\"defaultValue\":true,\"type\":\"experiment\","
	" \"owner\":\"checkout \\\"team\\\"\",\"expiresAt\":\"2020-01-01T00:00:00Z\"},"
	"{\"key\":\"color\",\"defaultValue\":\"green\",\"offValue\":\"red\"},"
	"{\"key\":\"limit\",\"defaultValue\":10,\"offValue\":0}]}\n";

static void write_doc(const char *doc)
{
	char tmp[160];
	snprintf(tmp, sizeof tmp, "%s.tmp", M.flags);
	cr_assert_eq(wp_write_file(tmp, doc, strlen(doc)), 0);
	cr_assert_eq(rename(tmp, M.flags), 0);
}

static void setup(void)
{
	memset(&M, 0, sizeof M);
	M.writer = M.prom = -1;
	signal(SIGPIPE, SIG_IGN);
	snprintf(M.dir, sizeof M.dir, "/tmp/flagshm-metrics-XXXXXX");
	cr_assert_not_null(mkdtemp(M.dir));
	chmod(M.dir, 0755);
	snprintf(M.store, sizeof M.store, "metrics%d", (int)getpid());
	snprintf(M.flags, sizeof M.flags, "%s/flags.json", M.dir);
	snprintf(M.log, sizeof M.log, "%s/writer.log", M.dir);
	write_doc(doc_v1);
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void teardown(void)
{
	if (M.prom > 0) {
		kill(M.prom, SIGKILL);
		waitpid(M.prom, NULL, 0);
	}
	if (M.writer > 0)
		wp_stop(M.writer, 5000);
	const char *rm[] = { "--remove", "--store", M.store, NULL };
	pid_t p = wp_spawn(rm, "/dev/null", NULL);
	if (p > 0)
		wp_wait_exit(p, 5000);
	wp_rmdir(M.dir);
	curl_global_cleanup();
}

/* Start the writer with ARGV (--metrics-listen 127.0.0.1:0 among them)
 * and KEY in its environment (NULL: none); M.addr gets the port it logged. */
static void start_writer_with(const char *const *argv, const char *key)
{
	truncate(M.log, 0); /* a previous writer's address must not be read */
	M.writer = wp_spawn(argv, M.log, key);
	cr_assert_gt(M.writer, 0);
	const char *tag = "serving metrics on http://";
	int64_t end = wp_mono_ms() + WAIT_MS;
	while (wp_mono_ms() < end) {
		char *log = wp_read_file(M.log, NULL);
		const char *at = log ? strstr(log, tag) : NULL;
		if (at) {
			at += strlen(tag);
			size_t n = strcspn(at, "/");
			cr_assert_lt(n, sizeof M.addr);
			memcpy(M.addr, at, n);
			M.addr[n] = '\0';
			free(log);
			return;
		}
		free(log);
		cr_assert_eq(wp_wait_exit(M.writer, 0), -2, "the writer exited");
		wp_sleep_ms(20);
	}
	cr_assert_fail("the writer did not start its exporter");
}

/* The writer on the flags file, its exporter on a free port of 127.0.0.1. */
static void start_writer(void)
{
	const char *argv[] = { "--store", M.store, "--source", M.flags,
			       "--metrics-listen", "127.0.0.1:0", NULL };
	start_writer_with(argv, NULL);
}

typedef struct body {
	char *p;
	size_t n;
} body;

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud)
{
	body *b = ud;
	size_t n = size * nmemb;
	char *q = realloc(b->p, b->n + n + 1);
	if (!q)
		return 0;
	memcpy(q + b->n, p, n);
	b->p = q;
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

/* METHOD (NULL: GET) of URL; the status, or -1 when there was no answer.
 * The body (malloc'd, NUL-terminated) in *OUT when OUT is not NULL. */
static long http(const char *method, const char *url, const char *post, char **out)
{
	CURL *c = curl_easy_init();
	body b = { .p = calloc(1, 1) };
	long status = -1;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (method && strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (method)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (post)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (out)
		*out = b.p;
	else
		free(b.p);
	return status;
}

/* GET /metrics; the body (malloc'd). */
static char *scrape(void)
{
	char url[128], *text;
	snprintf(url, sizeof url, "http://%s/metrics", M.addr);
	long st = http(NULL, url, NULL, &text);
	cr_assert_eq(st, 200, "GET %s: status %ld: %s", url, st, text);
	return text;
}

/* Scrape until LINE (a whole sample line, without the newline) is in the
 * exposition; fails with the last one after WAIT_MS. A failed scrape is
 * tried again until then: just after a flood of connections closes, the
 * exporter may not have freed their slots yet. */
static void wait_sample(const char *line)
{
	char want[512], url[128];
	snprintf(want, sizeof want, "\n%s\n", line);
	snprintf(url, sizeof url, "http://%s/metrics", M.addr);
	int64_t end = wp_mono_ms() + WAIT_MS;
	char *text = NULL;
	do {
		free(text);
		text = NULL;
		long st = http(NULL, url, NULL, &text);
		if (!text)
			text = strdup("");
		if (st == 200 && strstr(text, want)) {
			free(text);
			return;
		}
		wp_sleep_ms(50);
	} while (wp_mono_ms() < end);
	cr_assert_fail("no sample '%s' within %d ms; last exposition:\n%s", line, WAIT_MS, text);
}

/* The value of the sample SERIES (name and labels as written) in TEXT,
 * or -1 when absent. */
static double sample_value(const char *text, const char *series)
{
	char want[512];
	snprintf(want, sizeof want, "\n%s ", series);
	const char *at = strstr(text, want);
	return at ? strtod(at + strlen(want), NULL) : -1;
}

/* Scrape until SERIES is at least MIN. */
static void wait_at_least(const char *series, double min)
{
	int64_t end = wp_mono_ms() + WAIT_MS;
	char *text = NULL;
	do {
		free(text);
		text = scrape();
		if (sample_value(text, series) >= min) {
			free(text);
			return;
		}
		wp_sleep_ms(50);
	} while (wp_mono_ms() < end);
	cr_assert_fail("%s did not reach %g within %d ms; last exposition:\n%s", series, min,
		       WAIT_MS, text);
}

/* A TCP connection to the writer's exporter, or -1. */
static int connect_exporter(void)
{
	char host[64];
	unsigned port;
	cr_assert_eq(sscanf(M.addr, "%63[^:]:%u", host, &port), 2);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, host, &a.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int count_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	int n = 0;
	DIR *d = opendir(path);
	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* Wait until the store's current generation is at least GEN. */
static void wait_generation(flagshm_store *s, uint64_t gen)
{
	flagshm_info info = { 0 };
	int64_t end = wp_mono_ms() + WAIT_MS;
	while (wp_mono_ms() < end) {
		if (flagshm_store_info(s, &info) == 0 && info.generation >= gen)
			return;
		wp_sleep_ms(20);
	}
	cr_assert_fail("generation %llu not reached within %d ms (at %llu)",
		       (unsigned long long)gen, WAIT_MS, (unsigned long long)info.generation);
}

/* Each test takes seconds (the request-deadline ones 10-15 s); the bound
 * is for a loaded machine or a sanitized build. */
TestSuite(metrics, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------ the exposition */

Test(metrics, a_real_writers_exposition_passes_promtool)
{
	start_writer();
	wait_sample("flagshm_snapshot_generation 1");
	char *text = scrape();
	char out[4096];
	int rc = promtool_check_metrics(text, strlen(text), out, sizeof out);
	cr_expect_eq(rc, 0, "promtool check metrics: exit %d:\n%s\n--- exposition:\n%s", rc, out, text);
	cr_expect_str_eq(out, "", "promtool complained:\n%s", out);
	cr_expect(strstr(text, "\nflagshm_flags 3\n"), "%s", text);
	cr_expect(strstr(text, "\nflagshm_stale 0\n"), "%s", text);
	cr_expect(strstr(text, "\nflagshm_flag_info{flag=\"new-checkout\",type=\"experiment\","
			       "owner=\"checkout \\\"team\\\"\"} 1\n"), "%s", text);
	cr_expect(strstr(text, "\nflagshm_flag_expiry_timestamp_seconds{flag=\"new-checkout\"} "
			       "1577836800\n"), "%s", text);
	cr_expect(strstr(text, "\nflagshm_publish_duration_seconds_count 1\n"), "%s", text);
	free(text);
}

Test(metrics, a_publish_and_a_rejected_document_show_in_the_next_scrape)
{
	start_writer();
	wait_sample("flagshm_snapshot_generation 1");
	write_doc("[{\"key\":\"only\",\"defaultValue\":false}]");
	wait_sample("flagshm_snapshot_generation 2");
	wait_sample("flagshm_flags 1");
	wait_sample("flagshm_publish_duration_seconds_count 2");
	write_doc("{ not json");
	wait_sample("flagshm_publish_rejected_total 1");
	wait_sample("flagshm_snapshot_generation 2"); /* the last good one stays */
}

Test(metrics, other_paths_are_404_other_methods_405_and_head_is_served)
{
	char url[128], *text;
	start_writer();
	snprintf(url, sizeof url, "http://%s/", M.addr);
	cr_expect_eq(http(NULL, url, NULL, NULL), 404);
	snprintf(url, sizeof url, "http://%s/metrics/x", M.addr);
	cr_expect_eq(http(NULL, url, NULL, NULL), 404);
	snprintf(url, sizeof url, "http://%s/metrics", M.addr);
	cr_expect_eq(http("POST", url, "a=b", NULL), 405);
	cr_expect_eq(http("PUT", url, "x", NULL), 405);
	cr_expect_eq(http("DELETE", url, NULL, NULL), 405);
	cr_expect_eq(http("HEAD", url, NULL, NULL), 200);
	cr_expect_eq(http(NULL, url, NULL, &text), 200);
	cr_expect(strstr(text, "# TYPE flagshm_readers gauge\n"), "%s", text);
	free(text);
}

Test(metrics, a_port_in_use_refuses_the_start_and_leaves_no_store)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(fd, 1), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	char spec[64];
	snprintf(spec, sizeof spec, "127.0.0.1:%u", ntohs(a.sin_port));
	const char *argv[] = { "--store", M.store, "--source", M.flags, "--metrics-listen", spec,
			       NULL };
	pid_t p = wp_spawn(argv, M.log, NULL);
	cr_assert_eq(wp_wait_exit(p, WAIT_MS), 1);
	char *log = wp_read_file(M.log, NULL);
	cr_expect(log && strstr(log, "the port is in use by another process"), "%s", log);
	free(log);
	char obj[128];
	snprintf(obj, sizeof obj, "/dev/shm/flagshm.%s", M.store);
	cr_expect_neq(access(obj, F_OK), 0, "%s exists after a refused start", obj);
	close(fd);

	const char *bad[] = { "--store", M.store, "--source", M.flags, "--metrics-listen",
			      "example.com:80", NULL };
	p = wp_spawn(bad, M.log, NULL);
	cr_expect_eq(wp_wait_exit(p, WAIT_MS), 2, "a malformed address is a usage error");
}

Test(metrics, a_port_alone_listens_on_loopback)
{
	const char *argv[] = { "--store", M.store, "--source", M.flags, "--metrics-listen", "0",
			       NULL };
	M.writer = wp_spawn(argv, M.log, NULL);
	cr_assert_gt(M.writer, 0);
	char *log = NULL;
	int64_t end = wp_mono_ms() + WAIT_MS;
	while (wp_mono_ms() < end) {
		free(log);
		log = wp_read_file(M.log, NULL);
		if (log && strstr(log, "serving metrics on http://"))
			break;
		wp_sleep_ms(20);
	}
	cr_expect(log && strstr(log, "serving metrics on http://127.0.0.1:"), "%s", log);
	free(log);
}

Test(metrics, sync_requests_staleness_and_the_last_success_are_counted)
{
	cp_server *cp = cp_start();
	cr_assert_not_null(cp);
	cp_set_key(cp, "sekrit");
	const char doc[] = "[{\"key\":\"a\",\"defaultValue\":true}]";
	cp_set_doc(cp, "application/json", doc, strlen(doc), "\"v1\"");
	char state[128];
	snprintf(state, sizeof state, "%s/state", M.dir);
	const char *argv[] = { "--store", M.store, "--source", cp_url(cp), "--poll-interval", "1",
			       "--stale-after", "2", "--state-dir", state,
			       "--metrics-listen", "127.0.0.1:0", NULL };
	start_writer_with(argv, "sekrit");

	wait_sample("flagshm_sync_requests_total{result=\"ok\"} 1");
	wait_at_least("flagshm_sync_requests_total{result=\"not_modified\"}", 1);
	char *text = scrape();
	cr_expect_gt(sample_value(text, "flagshm_sync_last_success_timestamp_seconds"), 1e9, "%s", text);
	cr_expect_eq(sample_value(text, "flagshm_sync_requests_total{result=\"error\"}"), 0, "%s", text);
	free(text);

	cp_set_doc_status(cp, 500, NULL);
	wait_at_least("flagshm_sync_requests_total{result=\"error\"}", 1);
	wait_sample("flagshm_stale 1"); /* 2 s without a successful sync */

	cp_set_doc_status(cp, 0, NULL);
	const char bad[] = "{ not json";
	cp_set_doc(cp, "application/json", bad, strlen(bad), "\"v2\"");
	wait_at_least("flagshm_publish_rejected_total", 1);
	cp_stop(cp);
}

/* -------------------------------------------------------------- counts */

enum { PROCS = 3, THREADS = 2, EVALS = 1000 };

static void *worker(void *arg)
{
	flagshm_store *s = arg;
	for (int i = 0; i < EVALS; i++) {
		flagshm_view v;
		if (flagshm_view_acquire(s, &v) != 0)
			continue;
		flagshm_view_bool(&v, "new-checkout", NULL, false);
		/* every tenth request fails; each takes 3 ms (le="0.005") */
		flagshm_view_outcome(&v, i % 10 != 0, 0.003);
		flagshm_view_release(&v);
	}
	flagshm_bool(s, "no-such-flag", NULL, false);
	return NULL;
}

/* PROCS processes of THREADS threads, each EVALS evaluations of
 * new-checkout with an outcome, then one of a flag that is not there.
 * They exit: their counts must survive them. */
static void run_workers(void)
{
	pid_t kids[PROCS];
	for (int p = 0; p < PROCS; p++) {
		kids[p] = fork();
		cr_assert_geq(kids[p], 0);
		if (kids[p] == 0) {
			flagshm_store *s = NULL;
			if (wp_open_existing(M.store, &s) != 0)
				_exit(3);
			pthread_t t[THREADS];
			for (int i = 0; i < THREADS; i++)
				pthread_create(&t[i], NULL, worker, s);
			for (int i = 0; i < THREADS; i++)
				pthread_join(t[i], NULL);
			flagshm_close(&s);
			_exit(0);
		}
	}
	for (int p = 0; p < PROCS; p++) {
		int st;
		cr_assert_eq(waitpid(kids[p], &st, 0), kids[p]);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker %d: status %d", p, st);
	}
}

Test(metrics, every_evaluation_and_outcome_of_exited_workers_is_in_the_exposition)
{
	char line[256];
	start_writer();
	wait_sample("flagshm_snapshot_generation 1");
	run_workers();

	const int n = PROCS * THREADS * EVALS;
	snprintf(line, sizeof line, "flagshm_evaluations_total{flag=\"new-checkout\",variant=\"true\","
		 "reason=\"DEFAULT_ROLLOUT\"} %d", n);
	wait_sample(line);
	snprintf(line, sizeof line, "flagshm_outcomes_total{flag=\"new-checkout\",variant=\"true\","
		 "outcome=\"success\"} %d", n - n / 10);
	wait_sample(line);
	snprintf(line, sizeof line, "flagshm_outcomes_total{flag=\"new-checkout\",variant=\"true\","
		 "outcome=\"error\"} %d", n / 10);
	wait_sample(line);
	snprintf(line, sizeof line, "flagshm_outcome_duration_seconds_bucket{flag=\"new-checkout\","
		 "variant=\"true\",le=\"0.0025\"} 0");
	wait_sample(line);
	snprintf(line, sizeof line, "flagshm_outcome_duration_seconds_bucket{flag=\"new-checkout\","
		 "variant=\"true\",le=\"0.005\"} %d", n);
	wait_sample(line);
	snprintf(line, sizeof line, "flagshm_evaluation_errors_total{flag=\"(unknown)\","
		 "error=\"FLAG_NOT_FOUND\"} %d", PROCS * THREADS);
	wait_sample(line);

	char *text = scrape();
	char out[4096];
	int rc = promtool_check_metrics(text, strlen(text), out, sizeof out);
	cr_expect_eq(rc, 0, "promtool check metrics: exit %d:\n%s\n--- exposition:\n%s", rc, out, text);
	free(text);

	/* The workers are gone; a reader that stays is counted as attached. */
	wait_sample("flagshm_readers 0");
	flagshm_store *s = NULL;
	cr_assert_eq(wp_open_existing(M.store, &s), 0);
	flagshm_bool(s, "new-checkout", NULL, false);
	wait_sample("flagshm_readers 1");
	flagshm_close(&s);
	wait_sample("flagshm_readers 0");
}

Test(metrics, before_its_first_publish_a_writer_shows_the_generation_readers_are_served)
{
	start_writer();
	wait_sample("flagshm_snapshot_generation 1");
	cr_assert_eq(wp_stop(M.writer, 5000), 0);
	M.writer = -1;

	/* A URL writer whose control plane fails, with no persisted copy:
	 * it publishes nothing, and readers keep generation 1. */
	cp_server *cp = cp_start();
	cr_assert_not_null(cp);
	cp_set_doc_status(cp, 500, NULL);
	char state[128];
	snprintf(state, sizeof state, "%s/state", M.dir);
	const char *argv[] = { "--store", M.store, "--source", cp_url(cp), "--poll-interval", "1",
			       "--state-dir", state, "--metrics-listen", "127.0.0.1:0", NULL };
	start_writer_with(argv, "k");
	wait_at_least("flagshm_sync_requests_total{result=\"error\"}", 1);
	wait_sample("flagshm_snapshot_generation 1");
	wp_stop(M.writer, 5000);
	M.writer = -1;
	cp_stop(cp);
}

/* -------------------------------------------------------------- hostile */

Test(metrics, hostile_clients_cost_bounded_resources_and_publishing_goes_on)
{
	enum { FLOOD = 300, HUGE = 4 };
	static int fds[FLOOD];
	flagshm_store *s = NULL;

	start_writer();
	cr_assert_eq(wp_open_existing(M.store, &s), 0);
	wait_generation(s, 1);
	int base_fds = count_fds(M.writer);
	long base_rss = rss_kib(M.writer);

	/* Slowloris: many connections, each with half a request line. The
	 * kernel's backlog takes what the exporter does not accept. */
	int opened = 0;
	for (int i = 0; i < FLOOD; i++) {
		fds[i] = connect_exporter();
		if (fds[i] >= 0) {
			opened++;
			send(fds[i], "GET /met", 8, MSG_NOSIGNAL);
		}
	}
	cr_assert_gt(opened, 64, "only %d connections opened", opened);

	/* Huge headers: a megabyte of one header line. The exporter answers
	 * (431) or closes once its per-connection memory is used up. */
	static char junk[1 << 20];
	memset(junk, 'a', sizeof junk);
	for (int i = 0; i < HUGE; i++) {
		int fd = connect_exporter();
		if (fd < 0)
			continue;
		const char *head = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Junk: ";
		send(fd, head, strlen(head), MSG_NOSIGNAL);
		/* Non-blocking: a server that stops reading must not stall us. */
		fcntl(fd, F_SETFL, O_NONBLOCK);
		size_t off = 0;
		int64_t end = wp_mono_ms() + 5000;
		while (off < sizeof junk && wp_mono_ms() < end) {
			ssize_t w = send(fd, junk + off, sizeof junk - off, MSG_NOSIGNAL);
			if (w > 0)
				off += (size_t)w;
			else if (w < 0 && errno != EAGAIN)
				break; /* closed by the exporter: good */
			else
				wp_sleep_ms(5);
		}
		close(fd);
	}

	/* Meanwhile the writer publishes, every time. */
	for (int g = 2; g <= 4; g++) {
		char doc[128];
		snprintf(doc, sizeof doc, "[{\"key\":\"k\",\"defaultValue\":%d,\"offValue\":0}]", g);
		write_doc(doc);
		wait_generation(s, (uint64_t)g);
	}

	/* Bounded: no more than the connection limit of descriptors, and
	 * no memory to speak of beyond the start. */
	int fds_now = count_fds(M.writer);
	cr_expect_leq(fds_now, base_fds + 32 + 1, "the writer holds %d descriptors (%d at start)",
		      fds_now, base_fds);
	long rss = rss_kib(M.writer);
	cr_expect_leq(rss, base_rss + 32 * 1024, "RSS grew from %ld to %ld KiB", base_rss, rss);

	/* The attackers leave: scrapes work again (slots free at once). */
	for (int i = 0; i < FLOOD; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	wait_sample("flagshm_snapshot_generation 4");
	flagshm_close(&s);
}

Test(metrics, clients_that_do_not_read_hold_a_few_expositions_not_one_each)
{
	enum { BATCHES = 6, PER = 2, FLAGS = 20000 }; /* 12 connections: under the per-address limit */
	static int fds[BATCHES * PER];
	/* About 7 MB of exposition: 20,000 flags with 300-byte owners. */
	size_t cap = (size_t)FLAGS * 400 + 64;
	char *doc = malloc(cap), owner[301];
	memset(owner, 'o', 300);
	owner[300] = '\0';
	size_t n = (size_t)snprintf(doc, cap, "[");
	for (int i = 0; i < FLAGS; i++)
		n += (size_t)snprintf(doc + n, cap - n, "%s{\"key\":\"f%05d\",\"defaultValue\":true,"
				      "\"owner\":\"%s\"}", i ? "," : "", i, owner);
	n += (size_t)snprintf(doc + n, cap - n, "]");
	write_doc(doc);
	free(doc);
	start_writer();
	char *text = NULL;
	int64_t end = wp_mono_ms() + WAIT_MS;
	do {
		free(text);
		text = scrape();
	} while (!strstr(text, "\nflagshm_flags 20000\n") && wp_mono_ms() < end);
	size_t size = strlen(text);
	free(text);
	cr_assert_gt(size, (size_t)5 << 20, "the exposition is only %zu bytes", size);
	long base_rss = rss_kib(M.writer);

	/* Batches more than the sharing window apart: each would be a render
	 * of its own; none of them reads its answer. */
	const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	for (int b = 0; b < BATCHES; b++) {
		for (int i = 0; i < PER; i++) {
			int fd = connect_exporter();
			int small = 4096;
			if (fd >= 0) {
				setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
				send(fd, req, sizeof req - 1, MSG_NOSIGNAL);
			}
			fds[b * PER + i] = fd;
		}
		wp_sleep_ms(400); /* past the 250 ms in which scrapes share one */
	}
	/* Bounded: a few expositions (WD_HTTP_BODIES, the spare buffer), not
	 * one per connection; the later batches were told to come back. */
	long rss = rss_kib(M.writer);
	/* Generous (an ASan build keeps freed memory in quarantine): the
	 * 503s below are what prove the cap. */
	long limit_kib = (long)(8 * size / 1024) + 64 * 1024;
	cr_expect_leq(rss - base_rss, limit_kib, "RSS grew by %ld KiB for %zu-byte expositions",
		      rss - base_rss, size);
	int busy = 0;
	for (int i = 0; i < BATCHES * PER; i++) {
		char head[16] = "";
		if (fds[i] < 0)
			continue;
		struct pollfd pf = { .fd = fds[i], .events = POLLIN };
		if (poll(&pf, 1, 100) > 0 && recv(fds[i], head, sizeof head - 1, MSG_DONTWAIT) > 0 &&
		    strncmp(head, "HTTP/1.1 503", 12) == 0)
			busy++;
	}
	cr_expect_gt(busy, 0, "no scrape was refused while %d bodies were held", BATCHES * PER);
	for (int i = 0; i < BATCHES * PER; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	wait_sample("flagshm_flags 20000");
}

Test(metrics, a_silent_connection_is_closed_by_the_exporter)
{
	start_writer();
	int fd = connect_exporter();
	cr_assert_geq(fd, 0);
	send(fd, "GET /metr", 9, MSG_NOSIGNAL);
	/* The idle timeout is 10 s; wait up to 40 s for the close. */
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	char c;
	int64_t end = wp_mono_ms() + 40000;
	bool closed = false;
	while (!closed && wp_mono_ms() < end)
		if (poll(&pf, 1, 500) > 0 && recv(fd, &c, 1, 0) <= 0)
			closed = true;
	cr_expect(closed, "the connection was still open after 40 s");
	close(fd);
}

Test(metrics, a_client_trickling_a_request_is_cut_at_the_request_deadline)
{
	start_writer();
	int fd = connect_exporter();
	cr_assert_geq(fd, 0);
	/* One byte a second: never idle for the 10 s idle timeout, but past
	 * the 15 s request deadline. Bound: 45 s. */
	const char req[] = "GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	int64_t start = wp_mono_ms(), end = start + 45000;
	bool closed = false;
	for (size_t i = 0; !closed && wp_mono_ms() < end; i = (i + 1) % (sizeof req - 1)) {
		if (send(fd, req + i, 1, MSG_NOSIGNAL) < 0) {
			closed = true;
			break;
		}
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		char c;
		if (poll(&pf, 1, 1000) > 0 && recv(fd, &c, 1, 0) <= 0)
			closed = true;
	}
	cr_expect(closed, "a trickling client kept its connection for 45 s");
	close(fd);
	/* And the exporter still serves. */
	wait_sample("flagshm_snapshot_generation 1");
}

/* ------------------------------------------------------------ Prometheus */

static unsigned free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	unsigned port = 0;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* Start Prometheus on PORT with a temporary TSDB; it dies with the test
 * process (PR_SET_PDEATHSIG), so a crash cannot leave it running. */
static pid_t prom_spawn(unsigned port, const char *conf, const char *log)
{
	char listen[64], cfg[256], tsdb[256];
	snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%u", port);
	snprintf(cfg, sizeof cfg, "--config.file=%s", conf);
	snprintf(tsdb, sizeof tsdb, "--storage.tsdb.path=%s/tsdb", M.dir);
	pid_t parent = getpid();
	pid_t p = fork();
	if (p == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(PROMETHEUS, PROMETHEUS, cfg, tsdb, listen, "--log.level=warn",
		      "--storage.tsdb.retention.time=1h", (char *)NULL);
		_exit(127);
	}
	return p;
}

/* The value of the first series of QUERY, or NULL (malloc'd). */
static char *prom_query(unsigned port, const char *query)
{
	char url[1024], *text = NULL, *value = NULL;
	CURL *c = curl_easy_init();
	char *q = curl_easy_escape(c, query, 0);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/api/v1/query?query=%s", port, q);
	curl_free(q);
	curl_easy_cleanup(c);
	if (http(NULL, url, NULL, &text) == 200) {
		json_t *j = json_loads(text, 0, NULL);
		json_t *v = json_array_get(json_object_get(json_array_get(json_object_get(
			json_object_get(j, "data"), "result"), 0), "value"), 1);
		if (json_is_string(v))
			value = strdup(json_string_value(v));
		json_decref(j);
	}
	free(text);
	return value;
}

/* Poll QUERY until it returns WANT. */
static void prom_wait(unsigned port, const char *query, const char *want)
{
	char *v = NULL;
	int64_t end = wp_mono_ms() + WAIT_MS;
	while (wp_mono_ms() < end) {
		free(v);
		v = prom_query(port, query);
		if (v && strcmp(v, want) == 0) {
			free(v);
			return;
		}
		wp_sleep_ms(250);
	}
	char plog[160];
	snprintf(plog, sizeof plog, "%s/prometheus.log", M.dir);
	char *log = wp_read_file(plog, NULL);
	cr_assert_fail("Prometheus: %s is %s, not %s, after %d ms; its log:\n%s", query,
		       v ? v : "(no result)", want, WAIT_MS, log ? log : "");
}

Test(metrics, prometheus_scrapes_the_writer_and_answers_queries)
{
	cr_assert_eq(access(PROMETHEUS, X_OK), 0,
		     PROMETHEUS " is missing: install Debian's prometheus (scripts/install-deps.sh)");
	start_writer();
	char conf[160], plog[160], text[1024];
	const char *src = getenv("FLAGSHM_SRC");
	cr_assert(src && *src, "FLAGSHM_SRC (the source tree) is not set");
	snprintf(conf, sizeof conf, "%s/prometheus.yml", M.dir);
	snprintf(plog, sizeof plog, "%s/prometheus.log", M.dir);
	snprintf(text, sizeof text,
		 "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
		 "rule_files:\n  - %s/contrib/prometheus/alerts.yml\n"
		 "scrape_configs:\n  - job_name: flagshm\n    static_configs:\n"
		 "      - targets: ['%s']\n", src, M.addr);
	cr_assert_eq(wp_write_file(conf, text, strlen(text)), 0);

	/* A port taken between free_port and the bind: try another. */
	unsigned port = 0;
	for (int attempt = 0; attempt < 3 && M.prom < 0; attempt++) {
		port = free_port();
		M.prom = prom_spawn(port, conf, plog);
		cr_assert_gt(M.prom, 0);
		char url[80], *body = NULL;
		snprintf(url, sizeof url, "http://127.0.0.1:%u/-/ready", port);
		bool ready = false;
		int64_t end = wp_mono_ms() + WAIT_MS;
		while (!ready && wp_mono_ms() < end && waitpid(M.prom, NULL, WNOHANG) == 0) {
			ready = http(NULL, url, NULL, &body) == 200;
			free(body);
			if (!ready)
				wp_sleep_ms(100);
		}
		if (!ready) {
			kill(M.prom, SIGKILL);
			waitpid(M.prom, NULL, 0);
			M.prom = -1;
		}
	}
	char *log = wp_read_file(plog, NULL);
	cr_assert_gt(M.prom, 0, "Prometheus did not become ready; its log:\n%s", log ? log : "");
	free(log);

	prom_wait(port, "up{job=\"flagshm\"}", "1");
	prom_wait(port, "flagshm_flags", "3");
	/* Evaluations in two batches, so that Prometheus has seen the series
	 * before it grows: the total is exact, its rate positive. */
	char want[64];
	run_workers();
	snprintf(want, sizeof want, "%d", PROCS * THREADS * EVALS);
	prom_wait(port, "sum(flagshm_evaluations_total{flag=\"new-checkout\"})", want);
	run_workers();
	snprintf(want, sizeof want, "%d", 2 * PROCS * THREADS * EVALS);
	prom_wait(port, "sum(flagshm_evaluations_total{flag=\"new-checkout\"})", want);
	prom_wait(port, "sum(rate(flagshm_evaluations_total{flag=\"new-checkout\"}[1m])) > bool 0", "1");
	/* contrib/prometheus/alerts.yml's recording rule, in a real Prometheus:
	 * every tenth outcome failed. */
	prom_wait(port, "round(flagshm:outcome_error_ratio:rate5m{flag=\"new-checkout\","
			"variant=\"true\"}, 0.01)", "0.1");
	prom_wait(port, "flagshm_flag_info{flag=\"new-checkout\",type=\"experiment\"}", "1");
	/* The alert expression for an expired flag (contrib/prometheus). */
	prom_wait(port, "count(flagshm_flag_expiry_timestamp_seconds < time())", "1");
	/* Two more publishes: the counter reaches 3, and its rate over the
	 * last minute is positive (its exact value depends on timing). */
	write_doc("[{\"key\":\"a\",\"defaultValue\":true}]");
	wait_sample("flagshm_snapshot_generation 2");
	write_doc("[{\"key\":\"b\",\"defaultValue\":true}]");
	wait_sample("flagshm_snapshot_generation 3");
	prom_wait(port, "flagshm_publish_duration_seconds_count", "3");
	prom_wait(port, "rate(flagshm_publish_duration_seconds_count[1m]) > bool 0", "1");
}
