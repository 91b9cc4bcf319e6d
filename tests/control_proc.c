/*
 * tests/control_proc.c - etcd members, flagshm-control instances and an
 * HTTP client for the control tests (control_proc.h).
 */
#include "control_proc.h"
#include "writer_proc.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* PROG with ARGV (NULL-ended, without argv[0]), stdout and stderr appended
 * to LOG, killed by the kernel if the test process dies first (a test
 * killed on its timeout leaves no etcd or control plane behind). */
static pid_t spawn(const char *prog, const char *const *argv, const char *log)
{
	const char *args[64];
	size_t n = 0;
	pid_t parent = getpid(), pid;

	args[n++] = prog;
	for (; *argv && n < 63; argv++)
		args[n++] = *argv;
	args[n] = NULL;
	pid = fork();
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	execvp(prog, (char *const *)args);
	_exit(127);
}

unsigned tc_free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	unsigned p = 0;

	if (fd < 0)
		return 0;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &l) == 0)
		p = ntohs(sa.sin_port);
	close(fd);
	return p;
}

typedef struct buf {
	char *p;
	size_t n;
	const char *until;
} buf;

static size_t on_data(char *d, size_t sz, size_t nm, void *arg)
{
	buf *b = arg;
	size_t n = sz * nm;
	char *p = realloc(b->p, b->n + n + 1);

	if (!p)
		return 0;
	b->p = p;
	memcpy(b->p + b->n, d, n);
	b->n += n;
	b->p[b->n] = 0;
	if (b->until && strstr(b->p, b->until))
		return 0; /* enough: end the transfer */
	return n;
}

int tc_http(const char *method, const char *url, const char *token,
	    const char *const *headers, const char *body, char **resp, char **hdrs_out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	buf b = {0}, hb = {0};
	char auth[600];
	long st = 0;

	if (!c)
		return 0;
	if (token) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	for (size_t i = 0; headers && headers[i]; i++)
		h = curl_slist_append(h, headers[i]);
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (getenv("TC_CA_FILE"))
		curl_easy_setopt(c, CURLOPT_CAINFO, getenv("TC_CA_FILE"));
	CURLcode cc = curl_easy_perform(c);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	else if (getenv("TC_DEBUG"))
		fprintf(stderr, "tc_http %s %s: %s\n", method, url, curl_easy_strerror(cc));
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (resp)
		*resp = b.p ? b.p : strdup("");
	else
		free(b.p);
	if (hdrs_out)
		*hdrs_out = hb.p ? hb.p : strdup("");
	else
		free(hb.p);
	return (int)st;
}

char *tc_sse(const char *url, const char *token, const char *last_id, const char *until,
	     int timeout_ms, int *status)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	buf b = {.until = until};
	char line[600];
	long st = 0;

	snprintf(line, sizeof line, "Authorization: Bearer %s", token);
	h = curl_slist_append(h, line);
	h = curl_slist_append(h, "Accept: text/event-stream");
	if (last_id) {
		snprintf(line, sizeof line, "Last-Event-ID: %s", last_id);
		h = curl_slist_append(h, line);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	*status = (int)st;
	return b.p ? b.p : strdup("");
}

static bool etcd_answers(const char *url)
{
	char u[128], *resp = NULL;
	int st;

	snprintf(u, sizeof u, "%s/v3/kv/range", url);
	st = tc_http("POST", u, NULL, NULL, "{\"key\":\"AA==\"}", &resp, NULL);
	bool ok = st == 200 && strstr(resp, "header");
	free(resp);
	return ok;
}

static pid_t spawn_member(tc_etcd *e, int i)
{
	const char *argv[17];
	char log[200];

	for (int k = 0; k < 16; k++)
		argv[k] = e->args[i][k][0] ? e->args[i][k] : NULL;
	argv[16] = NULL;
	snprintf(log, sizeof log, "%s/etcd%d.log", e->dir, i);
	return spawn("etcd", argv, log);
}

int tc_etcd_start(tc_etcd *e, int members)
{
	char cluster[512] = "";

	memset(e, 0, sizeof *e);
	e->n = members;
	snprintf(e->dir, sizeof e->dir, "/tmp/flagshm-etcd-XXXXXX");
	if (!mkdtemp(e->dir))
		return -1;
	for (int i = 0; i < members; i++) {
		e->client_port[i] = tc_free_port();
		e->peer_port[i] = tc_free_port();
		while (e->peer_port[i] == e->client_port[i])
			e->peer_port[i] = tc_free_port();
		snprintf(e->url[i], sizeof e->url[i], "http://127.0.0.1:%u", e->client_port[i]);
		size_t l = strlen(cluster);
		snprintf(cluster + l, sizeof cluster - l, "%sm%d=http://127.0.0.1:%u", i ? "," : "",
			 i, e->peer_port[i]);
		l = strlen(e->urls);
		snprintf(e->urls + l, sizeof e->urls - l, "%s%s", i ? "," : "", e->url[i]);
	}
	for (int i = 0; i < members; i++) {
		int k = 0;
		char (*a)[160] = e->args[i];
		snprintf(a[k++], 160, "--name=m%d", i);
		snprintf(a[k++], 160, "--data-dir=%s/m%d", e->dir, i);
		snprintf(a[k++], 160, "--listen-client-urls=%s", e->url[i]);
		snprintf(a[k++], 160, "--advertise-client-urls=%s", e->url[i]);
		snprintf(a[k++], 160, "--listen-peer-urls=http://127.0.0.1:%u", e->peer_port[i]);
		snprintf(a[k++], 160, "--initial-advertise-peer-urls=http://127.0.0.1:%u",
			 e->peer_port[i]);
		snprintf(a[k++], 160, "--initial-cluster=%s", cluster);
		snprintf(a[k++], 160, "--initial-cluster-token=%s", e->dir + 5);
		snprintf(a[k++], 160, "--initial-cluster-state=new");
		snprintf(a[k++], 160, "--max-txn-ops=10000");
		snprintf(a[k++], 160, "--logger=zap");
		snprintf(a[k++], 160, "--log-level=warn");
		e->pid[i] = spawn_member(e, i);
		if (e->pid[i] <= 0)
			return -1;
	}
	for (int i = 0; i < members; i++) {
		int64_t end = wp_mono_ms() + 30000;
		while (!etcd_answers(e->url[i])) {
			if (wp_mono_ms() > end)
				return -1;
			wp_sleep_ms(50);
		}
	}
	return 0;
}

void tc_etcd_kill(tc_etcd *e, int i)
{
	if (e->pid[i] > 0) {
		kill(e->pid[i], SIGKILL);
		wp_wait_exit(e->pid[i], 10000);
	}
	e->pid[i] = -1;
}

int tc_etcd_restart(tc_etcd *e, int i)
{
	e->pid[i] = spawn_member(e, i);
	return e->pid[i] > 0 ? 0 : -1;
}

void tc_etcd_stop(tc_etcd *e)
{
	for (int i = 0; i < e->n; i++)
		if (e->pid[i] > 0)
			wp_stop(e->pid[i], 10000);
	if (e->dir[0] && !getenv("FLAGSHM_KEEP_LOGS"))
		wp_rmdir(e->dir);
}

const char *tc_control_path(void)
{
	const char *p = getenv("FLAGSHM_CONTROL");
	return p && *p ? p : "build/control/flagshm-control";
}

int tc_control_start(tc_control *c, const char *etcd_urls, unsigned port,
		     const char *const *extra)
{
	const char *argv[40];
	char listen[64], tokfile[160], line[80];
	size_t n = 0;
	int64_t end;

	if (!c->dir[0]) {
		snprintf(c->dir, sizeof c->dir, "/tmp/flagshm-control-XXXXXX");
		if (!mkdtemp(c->dir))
			return -1;
		snprintf(c->admin, sizeof c->admin, "fsh_test_admin_%d_%ld", (int)getpid(),
			 (long)random());
	}
	snprintf(tokfile, sizeof tokfile, "%s/bootstrap", c->dir);
	int ln = snprintf(line, sizeof line, "%s\n", c->admin);
	if (wp_write_file(tokfile, line, (size_t)ln) || chmod(tokfile, 0600))
		return -1;
	snprintf(c->log, sizeof c->log, "%s/control.log", c->dir);
	snprintf(c->ready, sizeof c->ready, "%s/ready", c->dir);
	unlink(c->ready);
	snprintf(listen, sizeof listen, "127.0.0.1:%u", port);
	argv[n++] = "--listen";
	argv[n++] = listen;
	argv[n++] = "--etcd";
	argv[n++] = etcd_urls;
	argv[n++] = "--bootstrap-token-file";
	argv[n++] = tokfile;
	argv[n++] = "--ready-file";
	argv[n++] = c->ready;
	argv[n++] = "--max-txn-ops";
	argv[n++] = "10000";
	for (size_t i = 0; extra && extra[i] && n < 38; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	c->pid = spawn(tc_control_path(), argv, c->log);
	if (c->pid <= 0)
		return -1;
	end = wp_mono_ms() + 30000;
	for (;;) {
		char *u = wp_read_file(c->ready, NULL);
		if (u) {
			u[strcspn(u, "\n")] = 0;
			snprintf(c->url, sizeof c->url, "%s", u);
			free(u);
			c->port = (unsigned)atoi(strrchr(c->url, ':') + 1);
			return 0;
		}
		if (wp_mono_ms() > end || wp_wait_exit(c->pid, 0) != -2)
			return -1;
		wp_sleep_ms(20);
	}
}

int tc_control_stop(tc_control *c, bool kill_it)
{
	int st = 0;

	if (c->pid > 0) {
		if (kill_it) {
			kill(c->pid, SIGKILL);
			st = wp_wait_exit(c->pid, 10000);
		} else {
			st = wp_stop(c->pid, 10000);
		}
	}
	c->pid = -1;
	return st;
}
