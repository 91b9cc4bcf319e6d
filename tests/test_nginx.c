/*
 * tests/test_nginx.c - the real flagshm-writer polling a real nginx
 * (Debian's package, /usr/sbin/nginx) that serves a flags file at
 * /api/v1/flags, started by the test on a free 127.0.0.1 port with a
 * generated configuration and its prefix in a temporary directory. nginx
 * sends an ETag (mtime and size) for a static file and answers 304 to a
 * matching If-None-Match, which is all a polling control plane needs.
 *
 * First fetch, 304 on no change (counted in nginx's access log), a change
 * picked up within one interval, nginx down and back. Skipped, saying so,
 * when nginx is not installed.
 */
#include <criterion/criterion.h>

#include "flagshm.h"
#include "shm.h"
#include "writer_proc.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#define NGINX "/usr/sbin/nginx"

static struct {
	char dir[64], store[64], url[64], flags[128];
	unsigned port;
	pid_t nginx, writer;
	flagshm_store *rd;
} N;

static unsigned free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
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

static bool port_open(unsigned port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* The flags file, replaced as a deployment would (write, rename), with an
 * mtime that moves on by whole seconds: nginx's ETag is mtime and size. */
static void write_flags(int limit)
{
	static int bump;
	char *doc, tmp[160];
	int n = asprintf(&doc, "{\"formatVersion\": 1, \"flags\": [{\"key\": \"limit\", \"defaultValue\": %d,"
			       " \"offValue\": 0}]}\n", limit);
	cr_assert_gt(n, 0);
	snprintf(tmp, sizeof tmp, "%s.tmp", N.flags);
	cr_assert_eq(wp_write_file(tmp, doc, (size_t)n), 0);
	free(doc);
	struct timespec t[2];
	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec += 10 * ++bump;
	t[1] = t[0];
	utimensat(AT_FDCWD, tmp, t, 0);
	cr_assert_eq(rename(tmp, N.flags), 0);
}

static void nginx_start(void)
{
	char conf[160], errlog[160], prefix[80];
	snprintf(prefix, sizeof prefix, "%s/", N.dir);
	snprintf(conf, sizeof conf, "%s/nginx.conf", N.dir);
	snprintf(errlog, sizeof errlog, "%s/error.log", N.dir);
	const char *argv[] = {"-p", prefix, "-c", conf, "-e", errlog, NULL};
	N.nginx = wp_spawn_prog(NGINX, argv, errlog, NULL);
	cr_assert_gt(N.nginx, 0);
	bool up = false;
	for (int i = 0; i < 3000 && !up; i++)
		if (!(up = port_open(N.port)))
			wp_sleep_ms(10);
	if (!up) {
		char *log = wp_read_file(errlog, NULL);
		cr_assert_fail("nginx did not start on port %u:\n%s", N.port, log ? log : "");
	}
}

static void nginx_stop(void)
{
	if (N.nginx > 0)
		wp_stop(N.nginx, 30000);
	N.nginx = -1;
}

static void setup(void)
{
	memset(&N, 0, sizeof N);
	N.nginx = N.writer = -1;
	if (access(NGINX, X_OK) != 0)
		return;
	signal(SIGPIPE, SIG_IGN);
	snprintf(N.dir, sizeof N.dir, "/tmp/flagshm-nginx-XXXXXX");
	cr_assert_not_null(mkdtemp(N.dir));
	chmod(N.dir, 0755);
	snprintf(N.flags, sizeof N.flags, "%s/flags.json", N.dir);
	snprintf(N.store, sizeof N.store, "nginx%d", (int)getpid());
	N.port = free_port();
	cr_assert_gt(N.port, 0);
	snprintf(N.url, sizeof N.url, "http://127.0.0.1:%u", N.port);
	char *conf;
	int n = asprintf(&conf,
		"daemon off;\nmaster_process off;\nworker_processes 1;\n%s"
		"pid %s/nginx.pid;\nerror_log %s/error.log;\n"
		"events { worker_connections 64; }\n"
		"http {\n"
		"  log_format t '$status $request_uri inm=\"$http_if_none_match\"';\n"
		"  access_log %s/access.log t;\n"
		"  client_body_temp_path %s/body; proxy_temp_path %s/proxy;\n"
		"  fastcgi_temp_path %s/fastcgi; uwsgi_temp_path %s/uwsgi; scgi_temp_path %s/scgi;\n"
		"  server {\n    listen 127.0.0.1:%u;\n"
		"    location = /api/v1/flags { default_type application/json; alias %s; }\n"
		"  }\n}\n",
		geteuid() == 0 ? "user root;\n" : "", N.dir, N.dir, N.dir, N.dir, N.dir, N.dir, N.dir,
		N.dir, N.port, N.flags);
	cr_assert_gt(n, 0);
	char path[160];
	snprintf(path, sizeof path, "%s/nginx.conf", N.dir);
	cr_assert_eq(wp_write_file(path, conf, (size_t)n), 0);
	free(conf);
}

static void teardown(void)
{
	char err[256];
	if (N.writer > 0)
		cr_expect_eq(wp_stop(N.writer, 30000), 0, "the writer did not exit 0 on SIGTERM");
	nginx_stop();
	flagshm_close(&N.rd);
	if (N.store[0])
		shm_store_remove(N.store, err, sizeof err);
	if (N.dir[0] && !getenv("FLAGSHM_KEEP_LOGS"))
		wp_rmdir(N.dir);
}

TestSuite(nginx, .init = setup, .fini = teardown, .timeout = 90);

static int64_t wait_num(const char *key, double want, int timeout_ms)
{
	int64_t t0 = wp_mono_ms();
	for (int i = 0; i < timeout_ms + 1; i++) {
		if (flagshm_number(N.rd, key, NULL, -1) == want)
			return wp_mono_ms() - t0;
		if (wp_mono_ms() - t0 >= timeout_ms)
			break;
		wp_sleep_ms(1);
	}
	return -1;
}

static uint64_t gen(void)
{
	flagshm_info info;
	return flagshm_store_info(N.rd, &info) == 0 ? info.generation : 0;
}

/* Lines of nginx's access log holding NEEDLE. */
static int access_count(const char *needle)
{
	char path[160];
	snprintf(path, sizeof path, "%s/access.log", N.dir);
	char *log = wp_read_file(path, NULL);
	int n = 0;
	for (const char *p = log; p && (p = strstr(p, needle)); p++)
		n++;
	free(log);
	return n;
}

Test(nginx, polling_first_fetch_304_change_and_server_down_and_back)
{
	if (access(NGINX, X_OK) != 0)
		cr_skip_test("nginx is not installed (" NGINX "); apt-get install nginx-light");
	write_flags(1);
	nginx_start();

	char keyfile[160], log[160], state[160];
	snprintf(keyfile, sizeof keyfile, "%s/key", N.dir);
	snprintf(log, sizeof log, "%s/writer.log", N.dir);
	snprintf(state, sizeof state, "%s/state", N.dir);
	cr_assert_eq(wp_write_file(keyfile, "nginx-ignores-the-key\n", 22), 0);
	const char *argv[] = {"--store", N.store, "--source", N.url, "--key-file", keyfile,
			      "--state-dir", state, "--poll-interval", "1", NULL};
	N.writer = wp_spawn(argv, log, NULL);
	cr_assert_gt(N.writer, 0);
	int rc = -1;
	for (int i = 0; i < 3000 && rc; i++)
		if ((rc = wp_open_existing(N.store, &N.rd)))
			wp_sleep_ms(10);
	cr_assert_eq(rc, 0, "the writer did not create the store");

	/* first fetch */
	cr_assert_geq(wait_num("limit", 1, 30000), 0, "the first fetch was not published");
	uint64_t g = gen();
	cr_expect_eq(g, 1);

	/* no change: conditional requests, 304, no publish */
	int n304 = 0;
	for (int i = 0; i < 600 && n304 < 2; i++) {
		wp_sleep_ms(50);
		n304 = access_count("304 /api/v1/flags");
	}
	if (access_count("304 /api/v1/flags inm=\"-\""))
		n304 = -1;
	cr_expect_geq(n304, 2, "nginx answered 304 %d times (a 304 must carry If-None-Match)", n304);
	cr_expect_eq(gen(), g, "a 304 published a generation");

	/* a change, within one interval */
	write_flags(22);
	int64_t ms = wait_num("limit", 22, 30000);
	/* How soon (about one interval) is a figure, not a condition: a loaded
	 * machine may take longer, and that is not a failure. */
	cr_expect_geq(ms, 0, "the change was not published");
	fprintf(stderr, "FIGURE nginx.change_ms=%ld (poll interval 1 s)\n", (long)ms);
	cr_expect_eq(gen(), g + 1);

	/* nginx down: nothing changes for readers */
	nginx_stop();
	wp_sleep_ms(1500);
	cr_expect_eq(gen(), g + 1);
	cr_expect_eq(flagshm_number(N.rd, "limit", NULL, -1), 22);
	/* and back, with another document */
	write_flags(333);
	nginx_start();
	cr_expect_geq(wait_num("limit", 333, 30000), 0, "did not converge after nginx came back");
	cr_expect_eq(gen(), g + 2);
}
