/*
 * writer/daemon/prom.c - render metric families in the Prometheus text
 * exposition format (prom.h). `promtool check metrics` is the judge: the
 * unit suite `prom` and the process test run it over this output.
 */
#include "prom.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double wd_hist_bounds[WD_HIST_BOUNDS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
/* The same as the le="..." text, so a scrape formats no float per line. */
static const char *const bound_text[WD_HIST_BOUNDS + 1] = {
	"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
	"10", "+Inf",
};

/* A string literal, without its NUL. */
#define ADD(b, lit) wd_buf_add((b), (lit), sizeof(lit) - 1)

/* ------------------------------------------------------------ buffer */

void wd_buf_init(wd_buf *b, size_t max)
{
	*b = (wd_buf){ .max = max };
}

void wd_buf_free(wd_buf *b)
{
	if (!b->borrowed)
		free(b->p);
	*b = (wd_buf){ 0 };
}

/* Room for N more bytes and a NUL; false (and `over`) past max. */
static bool reserve(wd_buf *b, size_t n)
{
	if (b->over)
		return false;
	if (n > b->max || b->len > b->max - n) {
		b->over = true;
		return false;
	}
	if (b->len + n + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n + 1)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	char *p = b->borrowed ? malloc(cap) : realloc(b->p, cap);
	if (!p) {
		b->over = true;
		return false;
	}
	if (b->borrowed)
		memcpy(p, b->p, b->len + 1);
	b->borrowed = false;
	b->p = p;
	b->cap = cap;
	return true;
}

void wd_buf_reserve(wd_buf *b, size_t n)
{
	bool over = b->over;
	if (n > b->max)
		n = b->max;
	if (n > b->len)
		reserve(b, n - b->len);
	b->over = over; /* a hint only: no room for it is not an overflow */
}

void wd_buf_add(wd_buf *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* " V\n" for a sample value: the hot path of a scrape, without printf. */
static void add_u64_line(wd_buf *b, uint64_t v)
{
	char t[24], *p = t + sizeof t;
	*--p = '\n';
	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	*--p = ' ';
	wd_buf_add(b, p, (size_t)(t + sizeof t - p));
}

void wd_buf_printf(wd_buf *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line) {
		b->over = true; /* only our own short formats come here */
		return;
	}
	wd_buf_add(b, line, (size_t)n);
}

/* ------------------------------------------------------------- text */

/* Length of the valid UTF-8 sequence at S[0..N), 0 when it is not one
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void wd_prom_label_value(wd_buf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		/* Copy the longest run that needs nothing, then one escape. */
		size_t run = i;
		while (run < n && u[run] >= 0x20 && u[run] < 0x80 && u[run] != '\\' && u[run] != '"')
			run++;
		if (run > i)
			wd_buf_add(b, s + i, run - i);
		i = run;
		if (i == n)
			break;
		size_t l;
		if (u[i] == '\\')
			ADD(b, "\\\\"), l = 1;
		else if (u[i] == '"')
			ADD(b, "\\\""), l = 1;
		else if (u[i] == '\n')
			ADD(b, "\\n"), l = 1;
		else if ((l = utf8_len(u + i, n - i)) != 0)
			wd_buf_add(b, s + i, l); /* other controls are valid UTF-8 */
		else
			ADD(b, "\xef\xbf\xbd"), l = 1;
		i += l;
	}
}

void wd_prom_family(wd_buf *b, const char *name, const char *type, const char *help)
{
	wd_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void wd_prom_number(wd_buf *b, double v)
{
	if (isnan(v)) {
		ADD(b, "NaN");
	} else if (isinf(v)) {
		wd_buf_printf(b, "%sInf", v > 0 ? "+" : "-");
	} else if (v == trunc(v) && fabs(v) < 9007199254740992.0) {
		wd_buf_printf(b, "%.0f", v);
	} else {
		char t[40];
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(t, sizeof t, "%.*g", prec, v);
			if (strtod(t, NULL) == v)
				break;
		}
		wd_buf_add(b, t, strlen(t));
	}
}

static void labels(wd_buf *b, const wd_label *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i)
			ADD(b, ",");
		wd_buf_add(b, l[i].name, strlen(l[i].name));
		ADD(b, "=\"");
		wd_prom_label_value(b, l[i].value, l[i].len);
		ADD(b, "\"");
	}
}

void wd_prom_sample(wd_buf *b, const char *name, const wd_label *l, size_t n, uint64_t v)
{
	wd_buf_add(b, name, strlen(name));
	if (n) {
		ADD(b, "{");
		labels(b, l, n);
		ADD(b, "}");
	}
	add_u64_line(b, v);
}

/* ------------------------------------------------------- histograms */

void wd_hist_observe(wd_hist *h, double seconds)
{
	size_t i = 0;
	if (!(seconds >= 0)) /* NaN or negative: a clock step; count it as 0 */
		seconds = 0;
	while (i < WD_HIST_BOUNDS && seconds > wd_hist_bounds[i])
		i++;
	h->bucket[i]++;
	h->count++;
	h->sum += seconds;
}

void wd_prom_hist(wd_buf *b, const char *name, const char *labels, const uint64_t *buckets,
		  uint64_t count, double sum)
{
	/* Names and labels go in with wd_buf_add: labels from a document can
	 * be longer than one formatted line. */
	size_t nl = strlen(name), ll = strlen(labels);
	uint64_t cum = 0;
	for (size_t i = 0; i <= WD_HIST_BOUNDS; i++) {
		cum = buckets[i] > UINT64_MAX - cum ? UINT64_MAX : cum + buckets[i];
		wd_buf_add(b, name, nl);
		ADD(b, "_bucket{");
		wd_buf_add(b, labels, ll);
		if (ll)
			ADD(b, ",");
		ADD(b, "le=\"");
		wd_buf_add(b, bound_text[i], strlen(bound_text[i]));
		ADD(b, "\"}");
		/* Buckets never decrease and +Inf equals _count, whatever a
		 * hostile reader's region says (its counts reach us summed):
		 * Prometheus would otherwise compute nonsense quantiles. */
		add_u64_line(b, i < WD_HIST_BOUNDS && cum < count ? cum : count);
	}
	for (int part = 0; part < 2; part++) {
		wd_buf_add(b, name, nl);
		if (part == 0)
			ADD(b, "_sum");
		else
			ADD(b, "_count");
		if (ll) {
			ADD(b, "{");
			wd_buf_add(b, labels, ll);
			ADD(b, "}");
		}
		if (part == 0) {
			ADD(b, " ");
			wd_prom_number(b, sum);
			ADD(b, "\n");
		} else {
			add_u64_line(b, count);
		}
	}
}

void wd_prom_hist_labels(wd_buf *b, const char *name, const wd_label *l, size_t n,
			 const uint64_t *buckets, uint64_t count, double sum)
{
	/* The labels rendered once, for the 16 lines; on the stack unless a
	 * document's long values need more. */
	char stack[1024];
	wd_buf lb = { .p = stack, .cap = sizeof stack, .max = b->max, .borrowed = true };
	stack[0] = '\0';
	labels(&lb, l, n);
	if (lb.over)
		b->over = true;
	else
		wd_prom_hist(b, name, lb.p, buckets, count, sum);
	wd_buf_free(&lb); /* frees only what outgrew the stack */
}

/* ------------------------------------------------- writer families */

static void gauge(wd_buf *b, const char *name, const char *help, double v)
{
	wd_prom_family(b, name, "gauge", help);
	wd_buf_printf(b, "%s ", name);
	wd_prom_number(b, v);
	ADD(b, "\n");
}

void wd_prom_render_writer(wd_buf *b, const wd_prom_writer *w)
{
	gauge(b, "flagshm_readers", "Reader processes attached to the store.", (double)w->readers);
	gauge(b, "flagshm_snapshot_generation", "Generation of the current snapshot (0: none yet).",
	      (double)w->generation);
	gauge(b, "flagshm_snapshot_published_timestamp_seconds",
	      "Unix time the current snapshot was published (0: none yet).",
	      (double)w->published_ms / 1000.0);
	gauge(b, "flagshm_snapshot_bytes", "Size of the current snapshot in bytes.",
	      (double)w->snapshot_bytes);
	gauge(b, "flagshm_flags", "Flags in the current snapshot.", (double)w->flags);

	wd_prom_family(b, "flagshm_publish_duration_seconds", "histogram",
		       "Time to compile a loaded document and publish it as a generation.");
	wd_prom_hist(b, "flagshm_publish_duration_seconds", "", w->publish.bucket, w->publish.count,
		     w->publish.sum);
	wd_prom_family(b, "flagshm_publish_rejected_total", "counter",
		       "Documents not published: invalid, or the publish failed; the last good "
		       "snapshot kept serving.");
	wd_buf_printf(b, "flagshm_publish_rejected_total %" PRIu64 "\n", w->publish_rejected);

	wd_prom_family(b, "flagshm_sync_requests_total", "counter",
		       "Document requests to the control plane, by result.");
	wd_buf_printf(b,
		      "flagshm_sync_requests_total{result=\"ok\"} %" PRIu64 "\n"
		      "flagshm_sync_requests_total{result=\"not_modified\"} %" PRIu64 "\n"
		      "flagshm_sync_requests_total{result=\"error\"} %" PRIu64 "\n",
		      w->sync_ok, w->sync_not_modified, w->sync_error);
	gauge(b, "flagshm_sync_last_success_timestamp_seconds",
	      "Unix time of the last successful read of the source (0: never).",
	      (double)w->last_sync_ms / 1000.0);
	gauge(b, "flagshm_stale", "1 when readers mark results stale (no successful sync within "
				  "--stale-after), else 0.",
	      w->stale ? 1 : 0);
}

void wd_prom_render_flags(wd_buf *b, const wd_prom_flag *f, size_t n)
{
	wd_prom_family(b, "flagshm_flag_info", "gauge",
		       "1 for each flag of the current snapshot, with its type and owner.");
	for (size_t i = 0; i < n && !b->over; i++) {
		ADD(b, "flagshm_flag_info{flag=\"");
		wd_prom_label_value(b, f[i].key, f[i].key_len);
		ADD(b, "\",type=\"");
		wd_prom_label_value(b, f[i].type, strlen(f[i].type));
		ADD(b, "\",owner=\"");
		wd_prom_label_value(b, f[i].owner, f[i].owner_len);
		ADD(b, "\"} 1\n");
	}
	wd_prom_family(b, "flagshm_flag_expiry_timestamp_seconds", "gauge",
		       "expiresAt of each flag that has one, as Unix time.");
	for (size_t i = 0; i < n && !b->over; i++) {
		if (!f[i].has_expiry)
			continue;
		ADD(b, "flagshm_flag_expiry_timestamp_seconds{flag=\"");
		wd_prom_label_value(b, f[i].key, f[i].key_len);
		ADD(b, "\"} ");
		wd_prom_number(b, (double)f[i].expiry_ms / 1000.0);
		ADD(b, "\n");
	}
}
