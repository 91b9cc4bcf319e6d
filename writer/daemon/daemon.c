/*
 * writer/daemon/daemon.c - load, compile and publish a flag file; watch it.
 *
 * An invalid document is rejected whole: every error goes to stderr, a
 * summary to the control object's ctl_last_error, and the last good
 * snapshot keeps serving. Signals are read through a signalfd, so a
 * SIGTERM never interrupts a publish half way: the loop exits between
 * publishes and the current generation stays published.
 */
#include "daemon.h"
#include "wm.h"
#include "clock.h"
#include "compile.h"
#include "http.h"
#include "metrics.h"
#include "metrics_http.h"
#include "shm.h"
#include "sync.h"
#include "text.h"
#include "validate.h"
#include "flagshm.h"
#include "format.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HEARTBEAT_MS 1000
/* Editors write in several steps (truncate, write, close; or write a
 * temporary and rename): wait for the burst of events to settle. */
#define DEBOUNCE_MS 20

/* TEXT made fit to show: URL userinfo redacted, control characters
 * escaped (shm/text.h). DST holds CAP bytes; a longer result is cut. */
static const char *clean(char *dst, size_t cap, const char *text)
{
	char red[1100]; /* a log line's 1024, and "***" for a shorter userinfo */
	fs_text_redact(red, sizeof red, text);
	fs_text_escape(dst, cap, red, strlen(red), FS_TEXT_PLAIN);
	return dst;
}

/* The same for text of any length, malloc'd; NULL when out of memory. */
static char *clean_alloc(const char *text)
{
	size_t n = fs_text_redact(NULL, 0, text) + 1;
	char *red = malloc(n), *out = NULL;
	if (red) {
		fs_text_redact(red, n, text);
		size_t m = fs_text_escape(NULL, 0, red, n - 1, FS_TEXT_PLAIN) + 1;
		if ((out = malloc(m)))
			fs_text_escape(out, m, red, n - 1, FS_TEXT_PLAIN);
	}
	free(red);
	return out;
}

/* One log line: "2026-11-20T10:00:00.123Z flagshm-writer[PID]: ..."; what
 * came from outside (a document, a control plane) cannot forge a line or
 * reach the terminal raw. */
static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void logmsg(const char *fmt, ...)
{
	struct timespec ts;
	struct tm tm;
	char stamp[32];
	char line[1024], shown[2048];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s.%03ldZ flagshm-writer[%d]: %s\n", stamp, ts.tv_nsec / 1000000L,
		(int)getpid(), clean(shown, sizeof shown, line));
}

static void wm_log(const char *line)
{
	logmsg("%s", line);
}

static void print_errors(const wc_errors *e)
{
	for (size_t i = 0; i < e->n; i++) {
		char *shown = clean_alloc(e->msg[i]);
		fprintf(stderr, "%s\n", shown ? shown : "(out of memory)");
		free(shown);
	}
	if (e->dropped)
		fprintf(stderr, "(%zu more errors not shown)\n", e->dropped);
}

/* ----------------------------------------------------------- --check */

int wd_check(const char *file, const char *environment, const wc_limits *lim)
{
	json_t *doc = NULL;
	wc_errors errs = { 0 };
	wc_snapshot snap = { 0 };
	int status = 0;

	if (wc_load_file(file, lim, &doc, &errs) != 0 ||
	    wc_compile(doc, environment, file, lim, &snap, &errs) != 0) {
		print_errors(&errs);
		fprintf(stderr, "%s: invalid: %zu error%s\n", file, errs.n + errs.dropped,
			errs.n + errs.dropped == 1 ? "" : "s");
		status = 1;
	} else {
		if (environment && !wc_doc_mentions_env(doc, environment))
			fprintf(stderr, "%s: warning: no flag has overrides for environment '%s' "
				"(misspelt?); every flag compiles as written\n", file, environment);
		printf("%s: valid: %" PRIu32 " flags, %zu bytes compiled%s%s\n", file, snap.nflags,
		       snap.size, environment ? " for environment " : "",
		       environment ? environment : "");
	}
	wc_snapshot_free(&snap);
	json_decref(doc);
	wc_errors_free(&errs);
	return status;
}

/* ---------------------------------------------------------- --limit */

int wd_limit_parse(wc_limits *lim, const char *arg, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		size_t off;
	} names[] = {
		{ "doc_bytes", offsetof(wc_limits, max_doc_bytes) },
		{ "flags", offsetof(wc_limits, max_flags) },
		{ "segments", offsetof(wc_limits, max_segments) },
		{ "rules", offsetof(wc_limits, max_rules) },
		{ "conditions", offsetof(wc_limits, max_conditions) },
		{ "list", offsetof(wc_limits, max_list) },
		{ "string", offsetof(wc_limits, max_string) },
		{ "snapshot", offsetof(wc_limits, max_snapshot) },
		{ "eval_cost", offsetof(wc_limits, max_eval_cost) },
		{ "regexes", offsetof(wc_limits, max_regexes) },
	};
	char name[32];
	const char *eq = strchr(arg, '=');
	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof name) {
		snprintf(err, errlen, "--limit '%s': expected NAME=VALUE", arg);
		return -1;
	}
	size_t n = 0;
	const char *p = arg;
	if (strncmp(p, "max-", 4) == 0 || strncmp(p, "max_", 4) == 0)
		p += 4;
	for (; p < eq; p++)
		name[n++] = *p == '-' ? '_' : *p;
	name[n] = '\0';

	const char *v = eq + 1;
	char *end;
	errno = 0;
	unsigned long long val = strtoull(v, &end, 10);
	unsigned long long mul = 1;
	if (*end == 'k' || *end == 'K')
		mul = 1024ULL, end++;
	else if (*end == 'M')
		mul = 1024ULL * 1024, end++;
	else if (*end == 'G')
		mul = 1024ULL * 1024 * 1024, end++;
	if (!isdigit((unsigned char)*v) || errno || *end || val == 0 || val > SIZE_MAX / mul) {
		snprintf(err, errlen, "--limit '%s': VALUE must be a positive integer (k, M, G allowed)",
			 arg);
		return -1;
	}
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strcmp(name, names[i].name) == 0) {
			if (names[i].off == offsetof(wc_limits, max_regexes) &&
			    val * mul > FS_REGEX_MAX) {
				snprintf(err, errlen, "--limit '%s': at most %u (readers refuse "
					 "snapshots with more regexes)", arg, FS_REGEX_MAX);
				return -1;
			}
			*(size_t *)((char *)lim + names[i].off) = (size_t)(val * mul);
			return 0;
		}
	}
	snprintf(err, errlen, "--limit '%s': unknown limit; known: doc-bytes, flags, segments, "
		 "rules, conditions, list, string, snapshot, eval-cost, regexes", arg);
	return -1;
}

/* --------------------------------------------------------- --remove */

int wd_remove(const char *store)
{
	char err[512];
	int rc = shm_store_remove(store, err, sizeof err);
	if (rc) {
		fprintf(stderr, "flagshm-writer: %s\n", err);
		return 1;
	}
	fprintf(stderr, "flagshm-writer: removed store '%s'\n", store);
	return 0;
}

/* ------------------------------------------------------------ daemon */

typedef struct wd {
	const wd_options *o;
	shm_writer w;
	char dir[PATH_MAX];
	char base[NAME_MAX + 1];
	struct stat st; /* the source as last loaded, to spot a symlink swap */
	bool have_st;
	int dir_wd;	/* the inotify watch of dir */
	/* When the source is a symlink: where it resolves to, watched too, so
	 * an edit of the target itself is seen (tdir "" and twd -1: none). */
	char tdir[PATH_MAX];
	char tbase[NAME_MAX + 1];
	int twd;
	int sfd;	   /* signalfd (URL source) */
	int64_t next_beat; /* monotonic ms */
	wd_metrics *metrics; /* --metrics-listen, else NULL */
} wd;

/* A warning the store left for us (a foreign object under one of its
 * names, a skipped generation number): logged once, then cleared. */
static void log_store_warning(wd *d)
{
	if (d->w.warning[0]) {
		logmsg("warning: %s", d->w.warning);
		d->w.warning[0] = '\0';
	}
}

/* Every local user can read the control object: no password, no raw
 * control character goes in. */
static void set_last_error(wd *d, const char *text)
{
	char shown[sizeof d->w.ctl->ctl_last_error];
	shm_ctl_text_set(d->w.ctl, SHM_TEXT_LAST_ERROR, clean(shown, sizeof shown, text));
}

static void set_sync_state(wd *d, const char *text)
{
	char shown[sizeof d->w.ctl->ctl_sync_state];
	shm_ctl_text_set(d->w.ctl, SHM_TEXT_SYNC_STATE, clean(shown, sizeof shown, text));
}

static int publish(wd *d, const wc_snapshot *snap, char *err, size_t errlen);

/* Load, compile, publish. 0 when a new generation was published. */
static int reload(wd *d)
{
	const wd_options *o = d->o;
	json_t *doc = NULL;
	wc_errors errs = { 0 };
	wc_snapshot snap = { 0 };
	char err[512];
	int rc = -1;

	struct stat st;
	bool have_st = stat(o->source, &st) == 0;

	if (wc_load_file(o->source, &o->limits, &doc, &errs) != 0 ||
	    wc_compile(doc, o->environment, o->source, &o->limits, &snap, &errs) != 0) {
		size_t total = errs.n + errs.dropped;
		if (d->w.generation)
			logmsg("rejected %s: %zu error%s; still serving generation %" PRIu64,
			       o->source, total, total == 1 ? "" : "s", d->w.generation);
		else
			logmsg("rejected %s: %zu error%s; nothing published yet", o->source, total,
			       total == 1 ? "" : "s");
		print_errors(&errs);
		snprintf(err, sizeof err, "%zu error%s; first: %s", total, total == 1 ? "" : "s",
			 errs.n ? errs.msg[0] : "(none recorded)");
		set_last_error(d, err);
		if (d->metrics)
			wd_metrics_rejected(d->metrics);
		goto out;
	}
	if (o->environment && !wc_doc_mentions_env(doc, o->environment))
		logmsg("warning: no flag of %s has overrides for environment '%s' (misspelt?); "
		       "every flag is compiled as written", o->source, o->environment);
	shm_ctl_synced(d->w.ctl, fs_clock_ms(CLOCK_REALTIME));
	if (have_st) {
		d->st = st;
		d->have_st = true;
	}
	if (publish(d, &snap, err, sizeof err) != 0)
		goto out;
	set_last_error(d, "");
	logmsg("published generation %" PRIu64 ": %" PRIu32 " flags, %zu bytes, compiled in %.1f ms",
	       d->w.generation, snap.nflags, snap.size, (double)snap.compile_us / 1000.0);
	rc = 0;
out:
	wc_snapshot_free(&snap);
	json_decref(doc);
	wc_errors_free(&errs);
	return rc;
}

/* Publish SNAP; counted for the exporter (the compile time the compiler
 * measured plus the publish). 0, or -1 logged and in ctl_last_error. */
static int publish(wd *d, const wc_snapshot *snap, char *err, size_t errlen)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int prc = shm_writer_publish(&d->w, snap->bytes, snap->size, err, errlen);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_store_warning(d);
	if (prc != 0) {
		logmsg("%s", err);
		set_last_error(d, err);
		if (d->metrics)
			wd_metrics_rejected(d->metrics);
		return -1;
	}
	wm_set_document(snap->bytes, snap->size); /* the labels of the counts */
	if (d->metrics) {
		double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		wd_metrics_published(d->metrics, snap->bytes, snap->size,
				     s + (double)snap->compile_us / 1e6);
	}
	return 0;
}

static void heartbeat(wd *d)
{
	shm_ctl_beat(d->w.ctl);
}

/* Split o->source into the directory to watch and the name to look for. */
static int split_source(wd *d)
{
	const char *src = d->o->source;
	const char *slash = strrchr(src, '/');
	if (!slash) {
		snprintf(d->dir, sizeof d->dir, ".");
		snprintf(d->base, sizeof d->base, "%s", src);
	} else {
		size_t dl = (size_t)(slash - src);
		if (dl >= sizeof d->dir || strlen(slash + 1) >= sizeof d->base)
			return -1;
		if (dl == 0)
			snprintf(d->dir, sizeof d->dir, "/");
		else
			snprintf(d->dir, sizeof d->dir, "%.*s", (int)dl, src);
		snprintf(d->base, sizeof d->base, "%s", slash + 1);
	}
	return d->base[0] ? 0 : -1;
}

/* True when the source now names another file or other contents than the
 * one last loaded: catches a symlink swapped by a name we do not watch
 * (a Kubernetes ConfigMap's "..data"). */
static bool source_moved(wd *d)
{
	struct stat st;
	if (stat(d->o->source, &st) != 0)
		return false;
	return !d->have_st || st.st_ino != d->st.st_ino || st.st_dev != d->st.st_dev ||
	       st.st_size != d->st.st_size || st.st_mtim.tv_sec != d->st.st_mtim.tv_sec ||
	       st.st_mtim.tv_nsec != d->st.st_mtim.tv_nsec;
}

#define WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_MODIFY | IN_DELETE | \
		    IN_MOVED_FROM)

/* Watch the directory of what the source resolves to, when that is not
 * the source's own directory entry (a symlink, or a chain of them: a
 * Kubernetes ConfigMap). Called after each load: a swapped link moves the
 * watch to the new target. */
static void watch_target(wd *d, int ifd)
{
	char real[PATH_MAX], dir[PATH_MAX], link[PATH_MAX * 2 + 2];
	if (!realpath(d->o->source, real) || !realpath(d->dir, dir))
		return; /* gone for now: the directory watch sees it come back */
	const char *slash = strrchr(real, '/');
	snprintf(link, sizeof link, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, d->base);
	if (strcmp(real, link) == 0 || !slash || strlen(slash + 1) >= sizeof d->tbase) {
		/* not (or no longer) a symlink: the directory watch is enough */
		if (d->twd >= 0 && d->twd != d->dir_wd)
			inotify_rm_watch(ifd, d->twd);
		d->twd = -1;
		return;
	}
	size_t dl = slash == real ? 1 : (size_t)(slash - real);
	if (d->twd >= 0 && strlen(d->tdir) == dl && strncmp(d->tdir, real, dl) == 0) {
		/* The same directory (a link re-pointed within it): keep the
		 * watch, so that no event falls between a remove and an add. */
		snprintf(d->tbase, sizeof d->tbase, "%s", slash + 1);
		return;
	}
	/* Add the new watch before dropping the old one, for the same
	 * reason. The link's own directory gives the same descriptor: add to
	 * its mask, do not replace it. */
	char tdir[PATH_MAX];
	snprintf(tdir, sizeof tdir, "%.*s", (int)dl, real);
	int nwd = inotify_add_watch(ifd, tdir, WATCH_MASK | IN_ONLYDIR | IN_MASK_ADD);
	if (nwd < 0)
		logmsg("cannot watch %s, the directory of %s's target: %s (SIGHUP still reloads)",
		       tdir, d->o->source, strerror(errno));
	if (d->twd >= 0 && d->twd != d->dir_wd && d->twd != nwd)
		inotify_rm_watch(ifd, d->twd);
	d->twd = nwd;
	snprintf(d->tdir, sizeof d->tdir, "%s", tdir);
	snprintf(d->tbase, sizeof d->tbase, "%s", slash + 1);
}

/* Read inotify events; true when the source may have changed. */
static bool drain_inotify(wd *d, int fd)
{
	_Alignas(struct inotify_event) char buf[8192];
	bool changed = false;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof *ev + ev->len;
			if (ev->mask & IN_Q_OVERFLOW)
				changed = true;
			else if ((ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) &&
				 ev->wd == d->dir_wd)
				logmsg("the directory %s is gone; no longer watching (SIGHUP still reloads)",
				       d->dir);
			else if ((ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) &&
				 ev->wd == d->twd) {
				changed = true; /* the target's directory went: look again */
				if (ev->mask & IN_IGNORED)
					d->twd = -1;
			} else if (ev->len && ev->wd == d->dir_wd && strcmp(ev->name, d->base) == 0)
				changed = true; /* write in place, or rename onto it */
			else if (ev->len && ev->wd == d->twd && strcmp(ev->name, d->tbase) == 0)
				changed = true; /* the symlink's target, edited */
			else if (ev->len && (ev->mask & (IN_CREATE | IN_MOVED_TO)) && source_moved(d))
				changed = true;
		}
	}
	return changed;
}

/* SIGHUP, SIGTERM and SIGINT, blocked and read from a signalfd, so a
 * signal never interrupts a publish. The descriptor, or -1. */
static int signals_open(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* The file source's loop: signals, inotify (debounced), the heartbeat.
 * Returns the exit status. */
static int watch_file(wd *d)
{
	const wd_options *o = d->o;
	int sfd = signals_open();
	int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (sfd < 0 || ifd < 0) {
		logmsg("cannot set up signals and file watching: %s", strerror(errno));
		if (sfd >= 0)
			close(sfd);
		if (ifd >= 0)
			close(ifd);
		return 1;
	}
	d->twd = -1;
	d->dir_wd = inotify_add_watch(ifd, d->dir, WATCH_MASK | IN_DELETE_SELF | IN_MOVE_SELF |
						     IN_ONLYDIR);
	if (d->dir_wd < 0) {
		logmsg("cannot watch the directory %s of %s: %s", d->dir, o->source, strerror(errno));
		close(sfd);
		close(ifd);
		return 1;
	}

	/* Watch first, then read: an edit right after the read is an event. */
	watch_target(d, ifd);
	reload(d);
	heartbeat(d);
	int64_t next_beat = fs_clock_ms(CLOCK_MONOTONIC) + HEARTBEAT_MS;
	int64_t reload_at = -1; /* debounce deadline, -1: none pending */
	int status = 0;

	for (;;) {
		int64_t now = fs_clock_ms(CLOCK_MONOTONIC);
		int64_t until = next_beat;
		if (reload_at >= 0 && reload_at < until)
			until = reload_at;
		int timeout = until > now ? (int)(until - now) : 0;
		struct pollfd pf[2] = { { .fd = sfd, .events = POLLIN }, { .fd = ifd, .events = POLLIN } };
		int n = poll(pf, 2, timeout);
		if (n < 0 && errno != EINTR) {
			logmsg("poll: %s", strerror(errno));
			status = 1;
			break;
		}
		if (n > 0 && (pf[0].revents & POLLIN)) {
			struct signalfd_siginfo si;
			int stop = 0;
			while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
				if (si.ssi_signo == SIGHUP) {
					logmsg("SIGHUP: reloading %s", o->source);
					reload_at = fs_clock_ms(CLOCK_MONOTONIC); /* now, no debounce */
				} else {
					stop = (int)si.ssi_signo;
				}
			}
			if (stop) {
				logmsg("exiting on %s; generation %" PRIu64 " stays published",
				       stop == SIGINT ? "SIGINT" : "SIGTERM", d->w.generation);
				break;
			}
		}
		if (n > 0 && (pf[1].revents & POLLIN) && drain_inotify(d, ifd))
			reload_at = fs_clock_ms(CLOCK_MONOTONIC) + DEBOUNCE_MS; /* restart on each event */
		now = fs_clock_ms(CLOCK_MONOTONIC);
		if (reload_at >= 0 && now >= reload_at) {
			reload_at = -1;
			/* Watch what the source resolves to now before reading
			 * it: an edit right after our read is then an event. */
			watch_target(d, ifd);
			reload(d);
		}
		if (now >= next_beat) {
			heartbeat(d);
			next_beat = now + HEARTBEAT_MS;
		}
	}
	close(sfd);
	close(ifd);
	return status;
}

/* ------------------------------------------------ control-plane sync */

/* The host side of writer/sync/sync.h: the control object, signals, the log. */

static int host_publish(void *ud, const wc_snapshot *snap, const char *what)
{
	wd *d = ud;
	char err[512];

	if (publish(d, snap, err, sizeof err) != 0)
		return -1;
	logmsg("published generation %" PRIu64 " from %s: %" PRIu32
	       " flags, %zu bytes, compiled in %.1f ms",
	       d->w.generation, what, snap->nflags, snap->size, (double)snap->compile_us / 1000.0);
	return 0;
}

static void host_state(void *ud, int64_t last_sync_ms, const char *last_error,
		       const char *sync_state)
{
	wd *d = ud;

	if (last_sync_ms > 0)
		shm_ctl_synced(d->w.ctl, last_sync_ms);
	if (last_error)
		set_last_error(d, last_error);
	if (sync_state)
		set_sync_state(d, sync_state);
}

/* Wait up to TIMEOUT_MS for a signal, beating every HEARTBEAT_MS. */
static int host_wait(void *ud, int timeout_ms)
{
	wd *d = ud;
	int64_t end = fs_clock_ms(CLOCK_MONOTONIC) + (timeout_ms > 0 ? timeout_ms : 0);
	int sig = 0;

	for (;;) {
		int64_t now = fs_clock_ms(CLOCK_MONOTONIC);
		if (now >= d->next_beat) {
			heartbeat(d);
			d->next_beat = now + HEARTBEAT_MS;
		}
		int64_t until = end < d->next_beat ? end : d->next_beat;
		struct pollfd pf = {.fd = d->sfd, .events = POLLIN};
		int n = poll(&pf, 1, until > now ? (int)(until - now) : 0);
		if (n > 0 && (pf.revents & POLLIN)) {
			struct signalfd_siginfo si;
			while (read(d->sfd, &si, sizeof si) == (ssize_t)sizeof si) {
				if (si.ssi_signo == SIGHUP) {
					sig |= WS_SIG_HUP;
				} else {
					logmsg("exiting on %s; generation %" PRIu64 " stays published",
					       si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM",
					       d->w.generation);
					sig |= WS_SIG_STOP;
				}
			}
		}
		if (sig || fs_clock_ms(CLOCK_MONOTONIC) >= end)
			return sig;
	}
}

static void host_log(void *ud, const char *line)
{
	(void)ud;
	logmsg("%s", line);
}

static void host_count(void *ud, int what)
{
	wd *d = ud;
	if (!d->metrics)
		return;
	if (what == WS_COUNT_REJECTED)
		wd_metrics_rejected(d->metrics);
	else
		wd_metrics_sync(d->metrics, what == WS_COUNT_OK		  ? WD_SYNC_OK
					    : what == WS_COUNT_NOT_MODIFIED ? WD_SYNC_NOT_MODIFIED
									    : WD_SYNC_ERROR);
}

/* The exporter's thread logs through here (refused renders only). */
static void http_log(const char *line)
{
	logmsg("%s", line);
}

static int sync_source(wd *d, const char *key)
{
	const wd_options *o = d->o;
	ws_options so = {
		.url = o->source,
		.key = key,
		.state_dir = o->state_dir,
		.ca_file = o->ca_file,
		.environment = o->environment,
		.stream = o->stream,
		.once = o->once,
		.poll_interval_s = o->poll_interval_s > 0 ? o->poll_interval_s : 30,
		.idle_timeout_s = o->idle_timeout_s,
		.limits = o->limits,
	};
	ws_host h = {.publish = host_publish, .state = host_state, .wait = host_wait,
		     .log = host_log, .count = host_count, .ud = d};

	if (ws_http_global_init() != 0) {
		logmsg("cannot initialise libcurl");
		return 1;
	}
	d->sfd = signals_open();
	if (d->sfd < 0) {
		logmsg("cannot set up signals: %s", strerror(errno));
		return 1;
	}
	shm_ctl_set_stale_after(d->w.ctl, o->stale_after_ms);
	heartbeat(d);
	d->next_beat = fs_clock_ms(CLOCK_MONOTONIC) + HEARTBEAT_MS;
	int status = ws_run(&so, &h);
	close(d->sfd);
	return status;
}

bool wd_source_is_url(const char *source)
{
	return source && (strncasecmp(source, "http://", 7) == 0 ||
			  strncasecmp(source, "https://", 8) == 0);
}

int wd_run(const wd_options *o)
{
	wd d = { .o = o, .sfd = -1 };
	char err[512], key[WS_KEY_MAX];
	bool url = wd_source_is_url(o->source);

	if (!url && split_source(&d) != 0) {
		fprintf(stderr, "flagshm-writer: --source '%s' is not a file name\n", o->source);
		return 1;
	}
	/* Everything that can refuse the start is checked before the store
	 * exists: a refused start leaves nothing in /dev/shm. */
	if (url && ws_key_load(o->key_file, key, sizeof key, err, sizeof err) != 0) {
		logmsg("%s", err);
		return 1;
	}
	int mfd = -1;
	char maddr[80];
	if (o->metrics_listen &&
	    (mfd = wd_http_listen(o->metrics_listen, maddr, sizeof maddr, err, sizeof err)) < 0) {
		fprintf(stderr, "flagshm-writer: %s\n", err);
		return mfd == -2 ? 2 : 1;
	}
	int rc = shm_writer_open(&d.w, o->store, err, sizeof err);
	if (rc) {
		fprintf(stderr, "flagshm-writer: %s\n", err);
		if (mfd >= 0)
			close(mfd);
		return 1;
	}
	wd_http *http = NULL;
	if (mfd >= 0 && (!(d.metrics = wd_metrics_new(d.w.ctl)) ||
			 !(http = wd_http_start(mfd, d.metrics, http_log, err, sizeof err)))) {
		logmsg("%s", d.metrics ? err : "metrics: out of memory");
		if (!d.metrics)
			close(mfd);
		wd_metrics_free(&d.metrics);
		shm_writer_close(&d.w);
		return 1;
	}

	if (d.w.generation)
		logmsg("took store '%s' (generation %" PRIu64 " serving)", o->store,
		       (uint64_t)atomic_load(&d.w.ctl->ctl_generation));
	else
		logmsg("took store '%s' (new)", o->store);
	log_store_warning(&d);
	if (http)
		logmsg("serving metrics on http://%s/metrics", maddr);
	/* Counting (docs/metrics.md): readers hand their regions over. A
	 * writer that cannot listen still serves flags. Its thread inherits
	 * our mask: SIGHUP, SIGTERM and SIGINT stay blocked there, for the
	 * signalfd (signals_open) to read, instead of killing the process. */
	if (o->exposures)
		wm_set_exposures(o->exposures, o->exposures_max_bytes);
	if (!o->once) {
		sigset_t sigs;
		sigemptyset(&sigs);
		sigaddset(&sigs, SIGHUP);
		sigaddset(&sigs, SIGTERM);
		sigaddset(&sigs, SIGINT);
		sigprocmask(SIG_BLOCK, &sigs, NULL);
		if (wm_start(o->store, wm_log, err, sizeof err) != 0)
			logmsg("warning: %s; evaluations are not counted", err);
	}

	int status;
	if (url) {
		status = sync_source(&d, key);
		memset(key, 0, sizeof key);
	} else {
		/* A file is never stale; a previous URL writer's threshold must
		 * not stay in force. */
		shm_ctl_set_stale_after(d.w.ctl, 0);
		set_sync_state(&d, "file");
		if (o->once) {
			heartbeat(&d);
			status = reload(&d) == 0 ? 0 : 1;
		} else {
			status = watch_file(&d);
		}
	}
	wd_http_stop(&http); /* before the totals and the control object it reads go */
	wd_metrics_free(&d.metrics);
	wm_stop();
	shm_writer_close(&d.w);
	return status;
}
