/*
 * tools/flagshm/cli_top.c - `flagshm top`: a live view of a store's
 * counters, like varnishstat or top. Every second it takes the totals
 * `flagshm stats` reads, and shows the flags sorted by evaluations per
 * second over the last interval, each with its variants' shares of those
 * evaluations and the error rate of its outcomes. `q` quits.
 *
 * Plain ANSI escape sequences and termios, no curses: it needs only a
 * VT100-like terminal of any size (80x24 over ssh is the design case),
 * draws into the alternate screen, rewrites whole lines (ESC [K) rather
 * than clearing the screen (no flicker over a slow link), and puts the
 * terminal back on q, SIGINT, SIGTERM and SIGHUP. Everything shown that
 * came from the store (keys, variant values) is escaped first: a served
 * value cannot drive the terminal.
 */
#include "cli.h"
#include "cli_stats.h"
#include "clock.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define REFRESH_MS 1000
#define KEY_COLS 24 /* flag key column; longer keys are cut with '~' */

/* ------------------------------------------------------------- data */

#define TOP_VARIANTS 16 /* variants kept per flag; more count in the flag's total */
#define TOP_KEY_MAX 128 /* docs/flag-format.md: keys are 1-128 bytes */
#define TOP_VARIANT_MAX 64 /* variant labels are cut to 64 bytes (issue 11) */

typedef struct top_variant {
	char name[TOP_VARIANT_MAX + 1];
	uint64_t evaluations;
} top_variant;

/* The totals of one flag, as `flagshm stats` reads them. */
typedef struct top_flag {
	char key[TOP_KEY_MAX + 1];
	uint64_t evaluations;
	uint64_t outcomes_ok, outcomes_error;
	size_t nvariants;
	top_variant variants[TOP_VARIANTS];
} top_flag;

typedef struct top_sample {
	int64_t taken_ms; /* Unix ms of the writer's aggregation it shows */
	uint64_t generation, readers;
	top_flag *flags; /* sorted by key */
	size_t nflags;
} top_sample;

static void sample_free(top_sample *s)
{
	free(s->flags);
	memset(s, 0, sizeof *s);
}

static int by_key(const void *a, const void *b)
{
	return strcmp(((const top_flag *)a)->key, ((const top_flag *)b)->key);
}

static uint64_t count_of(const json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);
	return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

/* The writer's latest aggregate, as `flagshm stats` reads it
 * (cli_stats_load). 0, or -1 with a message in ERR. */
static int sample_take(const char *store, top_sample *s, char *err, size_t errlen)
{
	json_t *j = NULL;
	memset(s, 0, sizeof *s);
	if (cli_stats_load(store, &j, err, errlen) != 0)
		return -1;
	json_t *flags = json_object_get(j, "flags");
	size_t n = json_is_object(flags) ? json_object_size(flags) : 0;
	s->flags = calloc(n ? n : 1, sizeof *s->flags);
	if (!s->flags) {
		snprintf(err, errlen, "out of memory");
		json_decref(j);
		return -1;
	}
	s->generation = count_of(j, "generation");
	s->readers = count_of(j, "readers");
	s->taken_ms = (int64_t)count_of(j, "time_ms");
	const char *key;
	json_t *f;
	json_object_foreach(flags, key, f) {
		top_flag *t = &s->flags[s->nflags++];
		snprintf(t->key, sizeof t->key, "%s", key);
		t->evaluations = count_of(f, "evaluations");
		const char *vname;
		json_t *v;
		json_object_foreach(json_object_get(f, "variants"), vname, v) {
			if (t->nvariants == TOP_VARIANTS)
				break; /* the rest count in the flag's total only */
			top_variant *tv = &t->variants[t->nvariants++];
			snprintf(tv->name, sizeof tv->name, "%s", vname);
			tv->evaluations = json_is_integer(v) && json_integer_value(v) > 0
						  ? (uint64_t)json_integer_value(v) : 0;
		}
		json_object_foreach(json_object_get(f, "outcomes"), vname, v) {
			t->outcomes_ok += count_of(v, "success");
			t->outcomes_error += count_of(v, "error");
		}
	}
	json_decref(j);
	qsort(s->flags, s->nflags, sizeof *s->flags, by_key);
	return 0;
}

static volatile sig_atomic_t got_stop, got_winch;

static void on_stop(int sig)
{
	(void)sig;
	got_stop = 1;
}

static void on_winch(int sig)
{
	(void)sig;
	got_winch = 1;
}

/* ------------------------------------------------------------ screen */

/* One frame of text, written at once. */
typedef struct frame {
	char *p;
	size_t len, cap;
	int cols;
} frame;

static void put(frame *f, const char *s, size_t n)
{
	if (f->len + n + 1 > f->cap) {
		size_t cap = f->cap ? f->cap : 8192;
		while (cap < f->len + n + 1)
			cap *= 2;
		char *p = realloc(f->p, cap);
		if (!p)
			return; /* a short frame; the next one may fit */
		f->p = p;
		f->cap = cap;
	}
	memcpy(f->p + f->len, s, n);
	f->len += n;
	f->p[f->len] = '\0';
}

static void puts_(frame *f, const char *s)
{
	put(f, s, strlen(s));
}

/* TEXT (already escaped, UTF-8) cut to COLS columns (a code point is one
 * column: keys are ASCII, and a wide character in a value at most
 * shortens the line's tail), then "clear to end of line" and CRLF. */
static void line(frame *f, const char *text)
{
	const char *p = text;
	int cols = 0;
	while (*p && cols < f->cols) {
		p++;
		while ((*p & 0xc0) == 0x80)
			p++;
		cols++;
	}
	put(f, text, (size_t)(p - text));
	puts_(f, "\x1b[K\r\n");
}

/* Escape N bytes of S for the terminal into DST (CAP bytes). */
static const char *shown(char *dst, size_t cap, const char *s, size_t n)
{
	fs_text_escape(dst, cap, s, n, FS_TEXT_PLAIN);
	return dst;
}

/* "1234", "12.3k", "4.5M", "6.7G": at most 6 columns. */
static const char *human(char *buf, size_t n, double v)
{
	if (v < 10000)
		snprintf(buf, n, "%.0f", v);
	else if (v < 1e6)
		snprintf(buf, n, "%.1fk", v / 1e3);
	else if (v < 1e9)
		snprintf(buf, n, "%.1fM", v / 1e6);
	else
		snprintf(buf, n, "%.1fG", v / 1e9);
	return buf;
}

/* ---------------------------------------------------------- intervals */

/* One flag's row: the counts of this sample minus the previous one's. */
typedef struct row {
	const top_flag *f;
	double rate;		/* evaluations per second over the interval */
	uint64_t d_evals;	/* evaluations in the interval */
	uint64_t d_ok, d_err;	/* outcomes in the interval */
} row;

static const top_flag *find(const top_sample *s, const top_flag *f)
{
	/* Flags come sorted by key (sample_take): binary search. */
	size_t lo = 0, hi = s ? s->nflags : 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->flags[mid].key, f->key);
		if (c == 0)
			return &s->flags[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static uint64_t delta(uint64_t now, uint64_t before)
{
	return now >= before ? now - before : now; /* a new writer restarted the totals */
}

static const top_variant *find_variant(const top_flag *f, const char *name)
{
	for (size_t i = 0; f && i < f->nvariants; i++)
		if (strcmp(f->variants[i].name, name) == 0)
			return &f->variants[i];
	return NULL;
}

static int by_rate(const void *a, const void *b)
{
	const row *x = a, *y = b;
	if (x->rate != y->rate)
		return x->rate < y->rate ? 1 : -1;
	if (x->f->evaluations != y->f->evaluations)
		return x->f->evaluations < y->f->evaluations ? 1 : -1;
	return strcmp(x->f->key, y->f->key);
}

/* "true 62% false 38%", shares of the interval's evaluations (of all
 * evaluations when the interval had none), the largest first, as many
 * as fit in COLS columns. */
static void variants(char *out, size_t cap, int cols, const top_flag *f,
		     const top_flag *prev, bool interval)
{
	size_t order[TOP_VARIANTS];
	uint64_t n[TOP_VARIANTS], total = 0;
	size_t nv = f->nvariants;
	for (size_t i = 0; i < nv; i++) {
		const top_variant *pv = interval ? find_variant(prev, f->variants[i].name) : NULL;
		n[i] = delta(f->variants[i].evaluations, pv ? pv->evaluations : 0);
		total += n[i];
		order[i] = i;
	}
	for (size_t i = 1; i < nv; i++) /* a handful: insertion sort */
		for (size_t j = i; j > 0 && n[order[j]] > n[order[j - 1]]; j--) {
			size_t t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	size_t len = 0;
	out[0] = '\0';
	for (size_t k = 0; k < nv && total; k++) {
		size_t i = order[k];
		char name[20 * 4 + 8], item[160]; /* 20 bytes, each escaped to at most 4 */
		/* Variant values are cut to 20 bytes here: the column is short. */
		const char *v = f->variants[i].name;
		size_t vl = strlen(v);
		shown(name, sizeof name, v, vl > 20 ? 20 : vl);
		int w = snprintf(item, sizeof item, "%s%s%s %.0f%%", len ? " " : "", name,
				 vl > 20 ? "~" : "", 100.0 * (double)n[i] / (double)total);
		if (w < 0 || len + (size_t)w >= cap || (int)(len + (size_t)w) > cols) {
			if (len + 4 < cap && (int)len + 4 <= cols)
				memcpy(out + len, " ...", 5);
			break;
		}
		memcpy(out + len, item, (size_t)w + 1);
		len += (size_t)w;
	}
}

/* Draw one frame: header, column titles, the flags with the highest
 * rates that fit in ROWS lines. */
/* What went wrong with the last sample ("" when nothing), shown on the
 * third line while the last good sample stays on screen. */
static char note[300];

static void draw(const char *store, const top_sample *cur, const top_sample *prev, int rows,
		 int cols)
{
	frame f = { .cols = cols };
	double dt = prev ? (double)(cur->taken_ms - prev->taken_ms) / 1000.0 : 0;
	row *r = calloc(cur->nflags ? cur->nflags : 1, sizeof *r);
	double all_rate = 0;
	uint64_t all_ok = 0, all_err = 0;
	char buf[1024], a[16], b[16], c[16], vs[512], key[KEY_COLS * 4 + 8];

	for (size_t i = 0; r && i < cur->nflags; i++) {
		const top_flag *p = prev ? find(prev, &cur->flags[i]) : NULL;
		r[i].f = &cur->flags[i];
		r[i].d_evals = delta(cur->flags[i].evaluations, p ? p->evaluations : 0);
		r[i].d_ok = delta(cur->flags[i].outcomes_ok, p ? p->outcomes_ok : 0);
		r[i].d_err = delta(cur->flags[i].outcomes_error, p ? p->outcomes_error : 0);
		r[i].rate = dt > 0 ? (double)r[i].d_evals / dt : 0;
		all_rate += r[i].rate;
		all_ok += r[i].d_ok;
		all_err += r[i].d_err;
	}
	if (r)
		qsort(r, cur->nflags, sizeof *r, by_rate);

	puts_(&f, "\x1b[H");
	char when[16];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(when, sizeof when, "%H:%M:%S", &tm);
	snprintf(buf, sizeof buf, "flagshm top  store %.40s  gen %" PRIu64 "  readers %" PRIu64
		 "  flags %zu  %s UTC", store, cur->generation, cur->readers, cur->nflags, when);
	line(&f, buf);
	snprintf(buf, sizeof buf, "evaluations/s %s   outcomes/s %s   outcome errors %s   "
		 "(q quits)",
		 human(a, sizeof a, all_rate),
		 human(b, sizeof b, dt > 0 ? (double)(all_ok + all_err) / dt : 0),
		 all_ok + all_err ? (snprintf(c, sizeof c, "%.1f%%", 100.0 * (double)all_err /
					      (double)(all_ok + all_err)), c) : "-");
	line(&f, buf);
	line(&f, note);
	snprintf(buf, sizeof buf, "\x1b[7m%-*s %8s %7s %6s  %-*s\x1b[0m", KEY_COLS, "FLAG", "EVAL/S",
		 "TOTAL", "ERR%", cols > KEY_COLS + 27 ? cols - KEY_COLS - 27 : 0, "VARIANTS");
	put(&f, buf, strlen(buf));
	puts_(&f, "\x1b[K\r\n");

	int shown_rows = 0;
	for (size_t i = 0; r && i < cur->nflags && shown_rows < rows - 4; i++, shown_rows++) {
		const top_flag *fl = r[i].f;
		const top_flag *p = prev ? find(prev, fl) : NULL;
		size_t kl = strlen(fl->key);
		shown(key, sizeof key, fl->key, kl > KEY_COLS - 1 ? KEY_COLS - 1 : kl);
		if (kl > KEY_COLS - 1)
			strcat(key, "~");
		/* Error rate of the interval's outcomes, else of all of them. */
		uint64_t ok = r[i].d_ok, err = r[i].d_err;
		if (ok + err == 0)
			ok = fl->outcomes_ok, err = fl->outcomes_error;
		char erate[16] = "-";
		if (ok + err)
			snprintf(erate, sizeof erate, "%.1f", 100.0 * (double)err / (double)(ok + err));
		variants(vs, sizeof vs, cols - KEY_COLS - 27, fl, p, r[i].d_evals > 0);
		char rate[16];
		if (r[i].rate < 100000) /* 8 columns at most */
			snprintf(rate, sizeof rate, "%.1f", r[i].rate);
		else
			human(rate, sizeof rate, r[i].rate);
		snprintf(buf, sizeof buf, "%-*s %8s %7s %6s  %s", KEY_COLS, key, rate,
			 human(a, sizeof a, (double)fl->evaluations), erate, vs);
		line(&f, buf);
	}
	if (!cur->nflags)
		line(&f, "(no flag evaluated yet)");
	puts_(&f, "\x1b[J");
	if (f.p) {
		size_t off = 0;
		while (off < f.len) {
			ssize_t w = write(STDOUT_FILENO, f.p + off, f.len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			off += (size_t)w;
		}
	}
	free(f.p);
	free(r);
}

/* ---------------------------------------------------------- terminal */

static struct termios saved;

static void term_size(int *rows, int *cols)
{
	struct winsize ws;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	} else {
		*rows = 24;
		*cols = 80;
	}
}

static void out(const char *s)
{
	ssize_t w = write(STDOUT_FILENO, s, strlen(s));
	(void)w;
}

static int term_enter(void)
{
	if (tcgetattr(STDIN_FILENO, &saved) != 0)
		return -1;
	struct termios raw = saved;
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	raw.c_cc[VMIN] = 0;
	raw.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) != 0)
		return -1;
	out("\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J"); /* alternate screen, no cursor */
	return 0;
}

static void term_leave(void)
{
	out("\x1b[0m\x1b[?25h\x1b[?1049l");
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
}

int cli_top(flagshm_store *st, const char *store)
{
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "flagshm: top needs a terminal; for scripts use 'flagshm stats --json'\n");
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_winch;
	sigaction(SIGWINCH, &sa, NULL);

	top_sample prev = { 0 }, cur = { 0 };
	char err[256];
	(void)st; /* opened by the caller: the store exists */
	/* A writer just started aggregates within a second or two. */
	int rc = -1;
	for (int i = 0; i < 30 && (rc = sample_take(store, &cur, err, sizeof err)) != 0; i++)
		usleep(100 * 1000);
	if (rc != 0) {
		fprintf(stderr, "flagshm: store \"%s\": %s\n", store, err);
		return 1;
	}
	if (term_enter() != 0) {
		fprintf(stderr, "flagshm: cannot set up the terminal: %s\n", strerror(errno));
		sample_free(&cur);
		return 1;
	}
	int rows, cols, status = 0;
	term_size(&rows, &cols);
	bool have_prev = false;
	int64_t next = fs_clock_ms(CLOCK_MONOTONIC) + REFRESH_MS;
	draw(store, &cur, NULL, rows, cols);
	while (!got_stop) {
		int64_t now = fs_clock_ms(CLOCK_MONOTONIC);
		struct pollfd pf = { .fd = STDIN_FILENO, .events = POLLIN };
		int n = poll(&pf, 1, next > now ? (int)(next - now) : 0);
		if (n > 0 && (pf.revents & (POLLHUP | POLLERR)))
			break; /* the terminal went away */
		if (n > 0) {
			char keys[64];
			ssize_t k = read(STDIN_FILENO, keys, sizeof keys);
			if (k > 0 && (memchr(keys, 'q', (size_t)k) || memchr(keys, 'Q', (size_t)k)))
				break;
			if (k == 0)
				break;
		}
		if (got_winch) {
			got_winch = 0;
			term_size(&rows, &cols);
			out("\x1b[2J");
			draw(store, &cur, have_prev ? &prev : NULL, rows, cols);
		}
		if (fs_clock_ms(CLOCK_MONOTONIC) < next)
			continue;
		next += REFRESH_MS;
		if (next < fs_clock_ms(CLOCK_MONOTONIC))
			next = fs_clock_ms(CLOCK_MONOTONIC) + REFRESH_MS; /* stopped, then resumed */
		top_sample fresh;
		if (sample_take(store, &fresh, err, sizeof err) != 0) {
			/* The writer restarting, say: keep the last numbers. */
			char shown[sizeof note - 16];
			fs_text_escape(shown, sizeof shown, err, strlen(err), FS_TEXT_PLAIN);
			snprintf(note, sizeof note, "no new data: %s", shown);
			draw(store, &cur, have_prev ? &prev : NULL, rows, cols);
			continue;
		}
		note[0] = '\0';
		if (fresh.taken_ms == cur.taken_ms) {
			/* The writer has not aggregated since: look again soon. */
			sample_free(&fresh);
			next = fs_clock_ms(CLOCK_MONOTONIC) + 200;
			continue;
		}
		sample_free(&prev);
		prev = cur;
		cur = fresh;
		have_prev = true;
		draw(store, &cur, &prev, rows, cols);
	}
	term_leave();
	sample_free(&prev);
	sample_free(&cur);
	return status;
}
