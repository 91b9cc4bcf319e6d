/*
 * control/main.c - flagshm-control: options, start (etcd, the model, the
 * bootstrap token, HTTP), and a clean stop on SIGTERM or SIGINT.
 */
#include "flagshm.h"
#include "rollout_int.h"
#include "server.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
	"usage: flagshm-control [--listen HOST:PORT] [--etcd URL[,URL...]] [--etcd-prefix P]\n"
	"                       [--etcd-user-file FILE] [--tls-cert PEM --tls-key PEM]\n"
	"                       [--bootstrap-token-file FILE] [--max-body BYTES]\n"
	"                       [--max-connections N] [--client-timeout S] [--max-txn-ops N]\n"
	"                       [--keepalive S] [--ready-file FILE] [--leader-ttl S]\n"
	"\n"
	"The flagshm control plane: flags, segments, tokens and audit in etcd v3,\n"
	"served to flagshm-writer (docs/sync-protocol.md) and to people (docs/control.md).\n"
	"\n"
	"  --listen HOST:PORT          where to serve (127.0.0.1:8080; port 0: any free one)\n"
	"  --etcd URL[,URL...]         etcd members, tried in turn (http://127.0.0.1:2379)\n"
	"  --etcd-prefix P             the key space in etcd (/flagshm)\n"
	"  --etcd-user-file FILE       user:password on the first line, when etcd auth is on\n"
	"  --tls-cert PEM, --tls-key PEM   serve HTTPS\n"
	"  --bootstrap-token-file FILE the first admin token (first line), stored as 'bootstrap'\n"
	"                              at the first start only\n"
	"  --max-body BYTES            larger request bodies get 413 (8388608)\n"
	"  --max-connections N         more open connections get 503 (2048)\n"
	"  --client-timeout S          a client silent this long is dropped (30)\n"
	"  --max-txn-ops N             operations per etcd transaction, as etcd's own\n"
	"                              --max-txn-ops (128); larger imports get 413\n"
	"  --keepalive S               seconds between SSE keep-alive comments (15)\n"
	"  --ready-file FILE           write the URL served there once serving\n"
	"  --leader-ttl S              the rollout leader's etcd lease (10): another instance\n"
	"                              takes over rollouts within S seconds of a crash\n";

static int parse_num(const char *opt, const char *v, unsigned long long lo, unsigned long long hi,
		     unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);

	if (errno || end == v || *end || n < lo || n > hi) {
		fprintf(stderr, "flagshm-control: %s %s: expected a number from %llu to %llu\n", opt,
			v, lo, hi);
		return -1;
	}
	*out = n;
	return 0;
}

/* A file of secrets that other users may read is worth a warning: the
 * operator meant it for this service alone. */
static void warn_if_shared(const char *opt, const char *file)
{
	struct stat st;

	if (file && stat(file, &st) == 0 && (st.st_mode & 077))
		cs_log("warning: %s %s is readable or writable by other users (mode %04o); "
		       "chmod 600 it", opt, file, (unsigned)(st.st_mode & 07777));
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"listen", 1, 0, 'l'},	   {"etcd", 1, 0, 'e'},	   {"etcd-prefix", 1, 0, 'p'},
		{"etcd-user-file", 1, 0, 'u'}, {"tls-cert", 1, 0, 'c'}, {"tls-key", 1, 0, 'k'},
		{"bootstrap-token-file", 1, 0, 'b'}, {"max-body", 1, 0, 'B'},
		{"max-connections", 1, 0, 'C'}, {"client-timeout", 1, 0, 'T'},
		{"max-txn-ops", 1, 0, 'O'}, {"keepalive", 1, 0, 'K'}, {"ready-file", 1, 0, 'r'}, {"leader-ttl", 1, 0, 'L'},
		{"help", 0, 0, 'h'}, {"version", 0, 0, 'V'}, {0, 0, 0, 0}};
	static cs_server s;
	const char *ready = NULL;
	char err[512];
	unsigned long long n;
	int o, rc = 0;
	unsigned leader_ttl = 10;
	sigset_t sigs;

	s.opt = (cs_options){.listen = "127.0.0.1:8080", .etcd = "http://127.0.0.1:2379",
			     .prefix = "/flagshm", .max_body = 8u << 20, .max_connections = 2048,
			     .client_timeout = 30, .max_txn_ops = 128, .keepalive = 15};
	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case 'l': s.opt.listen = optarg; break;
		case 'e': s.opt.etcd = optarg; break;
		case 'p': s.opt.prefix = optarg; break;
		case 'u': s.opt.etcd_user_file = optarg; break;
		case 'c': s.opt.tls_cert = optarg; break;
		case 'k': s.opt.tls_key = optarg; break;
		case 'b': s.opt.bootstrap_token_file = optarg; break;
		case 'r': ready = optarg; break;
		case 'B':
			if (parse_num("--max-body", optarg, 1, 1ull << 30, &n))
				return 2;
			s.opt.max_body = n;
			break;
		case 'C':
			if (parse_num("--max-connections", optarg, 1, 100000, &n))
				return 2;
			s.opt.max_connections = (unsigned)n;
			break;
		case 'T':
			if (parse_num("--client-timeout", optarg, 1, 86400, &n))
				return 2;
			s.opt.client_timeout = (unsigned)n;
			break;
		case 'O':
			if (parse_num("--max-txn-ops", optarg, 8, 1000000, &n))
				return 2;
			s.opt.max_txn_ops = (unsigned)n;
			break;
		case 'K':
			if (parse_num("--keepalive", optarg, 1, 30, &n))
				return 2;
			s.opt.keepalive = (unsigned)n;
			break;
		case 'L':
			if (parse_num("--leader-ttl", optarg, 2, 300, &n))
				return 2;
			leader_ttl = (unsigned)n;
			break;
		case 'h': fputs(usage, stdout); return 0;
		case 'V':
			printf("flagshm-control %s (snapshot format %u)\n", FLAGSHM_VERSION_STRING,
			       FLAGSHM_FORMAT_VERSION);
			return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "flagshm-control: unexpected argument '%s'\n%s", argv[optind], usage);
		return 2;
	}
	struct sockaddr_in sa;
	if (cs_listen_parse(s.opt.listen, &sa, err, sizeof err) < 0) {
		fprintf(stderr, "flagshm-control: %s\n", err);
		return 2;
	}
	if (s.opt.prefix[0] != '/' || strlen(s.opt.prefix) > 200) {
		fprintf(stderr, "flagshm-control: --etcd-prefix %s: must start with '/'\n", s.opt.prefix);
		return 2;
	}
	warn_if_shared("--bootstrap-token-file", s.opt.bootstrap_token_file);
	warn_if_shared("--etcd-user-file", s.opt.etcd_user_file);
	warn_if_shared("--tls-key", s.opt.tls_key);
	/* Signals are taken by sigwait below; every thread inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A socket per connection and per etcd call: the soft limit on
	 * descriptors (often 1024) would cap --max-connections below its
	 * default, so take what the hard limit allows. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	curl_global_init(CURL_GLOBAL_ALL);
	s.lim = wc_limits_default();
	s.etcd = cs_etcd_new(s.opt.etcd, s.opt.etcd_user_file, err, sizeof err);
	if (!s.etcd) {
		fprintf(stderr, "flagshm-control: %s\n", err);
		return 2;
	}
	/* Listen at once, answering 503 until etcd has been read, so that
	 * clients see "not yet" rather than a refused connection. */
	cs_model_init(&s.model, s.etcd, s.opt.prefix);
	pthread_mutex_init(&s.rev_mu, NULL);
	pthread_cond_init(&s.rev_cv, NULL);
	if (cs_http_start(&s, err, sizeof err) < 0) {
		fprintf(stderr, "flagshm-control: %s\n", err);
		rc = 1;
		goto stop;
	}
	for (int tries = 0; cs_model_load(&s.model, err, sizeof err) != 0; tries++) {
		if (tries % 10 == 0)
			cs_log("cannot load from etcd (%s); retrying every second", err);
		if (sigtimedwait(&sigs, NULL, &(struct timespec){1, 0}) > 0)
			goto stop;
	}
	if (s.opt.bootstrap_token_file &&
	    cs_bootstrap(&s, s.opt.bootstrap_token_file, err, sizeof err) < 0) {
		fprintf(stderr, "flagshm-control: %s\n", err);
		rc = 1;
		goto stop;
	}
	char url[128], host[64];
	snprintf(host, sizeof host, "%.*s", (int)strcspn(s.opt.listen, ":"), s.opt.listen);
	snprintf(url, sizeof url, "%s://%s:%u", s.opt.tls_cert ? "https" : "http", host, s.port);
	cs_log("serving %s from etcd %s prefix %s", url, s.opt.etcd, s.model.prefix);
	if (cs_instances_start(&s, url, err, sizeof err) < 0)
		fprintf(stderr, "flagshm-control: %s\n", err);
	if (cs_ro_run_start(&s, leader_ttl, err, sizeof err) < 0) {
		fprintf(stderr, "flagshm-control: %s\n", err);
		rc = 1;
		goto stop;
	}
	if (ready) {
		char tmp[4096];
		snprintf(tmp, sizeof tmp, "%s.tmp", ready);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%s\n", url) < 0 || fclose(f) != 0 || rename(tmp, ready) != 0)
			fprintf(stderr, "flagshm-control: --ready-file %s: %s\n", ready,
				strerror(errno));
	}
	while (sigwaitinfo(&sigs, NULL) < 0 && errno == EINTR)
		;
stop:
	cs_log("stopping");
	/* Streams end when the model stops; then the HTTP threads can join. */
	s.model.stop = true;
	pthread_mutex_lock(&s.model.mu);
	pthread_cond_broadcast(&s.model.cv);
	pthread_mutex_unlock(&s.model.mu);
	cs_ro_run_stop();
	cs_http_stop(&s);
	cs_instances_stop(&s);
	cs_model_stop(&s.model);
	cs_etcd_thread_done();
	cs_etcd_free(&s.etcd);
	curl_global_cleanup();
	return rc;
}
