/*
 * control/ctl/rollout_svg.c - a rollout's report as SVG, written by hand
 * (no dependency): three panels over the same time axis - the share served
 * (%), the error rate and the p99 latency of treatment (red) and control
 * (blue) from each guard check - and every decision (advance, rollback,
 * pause, ...) as a dashed vertical line with its name. The data is the
 * rollout's history as the server keeps it (bounded; older checks
 * thinned). Text from the server is XML-escaped.
 */
#include "rollout_cmd.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#define W 960
#define LEFT 80
#define RIGHT 30
#define TOP 50
#define PANEL 190
#define GAP 50

static void esc(FILE *f, const char *s, size_t max)
{
	for (size_t i = 0; s && s[i] && i < max; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '<')
			fputs("&lt;", f);
		else if (ch == '>')
			fputs("&gt;", f);
		else if (ch == '&')
			fputs("&amp;", f);
		else if (ch == '"')
			fputs("&quot;", f);
		else if (ch < 0x20 || ch == 0x7f)
			fputc(' ', f);
		else
			fputc(ch, f);
	}
}

typedef struct axis {
	double t0, t1; /* ms */
} axis;

static double xpos(const axis *ax, double t)
{
	double span = ax->t1 > ax->t0 ? ax->t1 - ax->t0 : 1;
	return LEFT + (W - LEFT - RIGHT) * (t - ax->t0) / span;
}

static double ypos(int panel, double v, double max)
{
	double top = TOP + panel * (PANEL + GAP);
	if (!(max > 0))
		max = 1;
	if (v > max)
		v = max;
	return top + PANEL - PANEL * v / max;
}

static bool num(const json_t *e, const char *k, double *v)
{
	const json_t *x = json_object_get(e, k);
	if (!json_is_number(x))
		return false;
	*v = json_number_value(x);
	return isfinite(*v);
}

/* A polyline of K over the entries that have it (a step line when STEP). */
static void series(FILE *f, const json_t *h, const axis *ax, int panel, const char *k,
		   double max, const char *color, bool step)
{
	size_t i, n = 0;
	const json_t *e;
	double last_y = 0;

	fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
	json_array_foreach(h, i, e) {
		double v, t;
		if (!num(e, k, &v) || !num(e, "t", &t))
			continue;
		double x = xpos(ax, t), y = ypos(panel, v, max);
		if (step && n > 0)
			fprintf(f, "%.1f,%.1f ", x, last_y);
		fprintf(f, "%.1f,%.1f ", x, y);
		last_y = y;
		n++;
	}
	if (step && n > 0)
		fprintf(f, "%.1f,%.1f", xpos(ax, ax->t1), last_y);
	fputs("\"/>\n", f);
}

static double max_of(const json_t *h, const char *a, const char *b)
{
	size_t i;
	const json_t *e;
	double m = 0, v;

	json_array_foreach(h, i, e) {
		if (num(e, a, &v) && v > m)
			m = v;
		if (b && num(e, b, &v) && v > m)
			m = v;
	}
	return m > 0 ? m * 1.15 : 0;
}

static void panel_frame(FILE *f, int panel, const char *title, double max, const char *unit)
{
	double top = TOP + panel * (PANEL + GAP);

	fprintf(f, "<rect x=\"%d\" y=\"%.0f\" width=\"%d\" height=\"%d\" fill=\"#fafafa\" "
		   "stroke=\"#999\"/>\n", LEFT, top, W - LEFT - RIGHT, PANEL);
	fprintf(f, "<text x=\"%d\" y=\"%.0f\" font-size=\"14\" font-weight=\"bold\">%s</text>\n",
		LEFT, top - 8, title);
	for (int k = 0; k <= 2; k++) {
		double v = max * k / 2, y = ypos(panel, v, max);
		fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.4g%s</text>\n",
			LEFT - 6, y + 4, v, unit);
		fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
			LEFT, y, W - RIGHT, y);
	}
}

int ctl_rollout_svg(FILE *f, const json_t *v)
{
	const json_t *h = json_object_get(v, "history"), *e;
	size_t i;
	axis ax = {0, 0};
	bool any = false;
	int H = TOP + 3 * (PANEL + GAP) + 10;

	json_array_foreach(h, i, e) {
		double t;
		if (!num(e, "t", &t))
			continue;
		if (!any || t < ax.t0)
			ax.t0 = t;
		if (!any || t > ax.t1)
			ax.t1 = t;
		any = true;
	}
	double er_max = max_of(h, "ter", "cer"), p_max = max_of(h, "tp99", "cp99");
	if (er_max <= 0)
		er_max = 0.01;
	if (p_max <= 0)
		p_max = 0.01;
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		   "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n"
		   "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
		W, H, W, H);
	fputs("<text x=\"20\" y=\"24\" font-size=\"16\" font-weight=\"bold\">Rollout of ", f);
	esc(f, json_string_value(json_object_get(v, "flag")), 128);
	fputs(": ", f);
	esc(f, json_string_value(json_object_get(v, "status")), 32);
	fputs("</text>\n", f);
	fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"12\" text-anchor=\"end\">"
		   "<tspan fill=\"#d62728\">&#9632; treatment</tspan> "
		   "<tspan fill=\"#1f77b4\">&#9632; control</tspan> "
		   "<tspan fill=\"#2ca02c\">&#9632; served</tspan></text>\n", W - RIGHT);
	panel_frame(f, 0, "share served (%)", 100, "%");
	panel_frame(f, 1, "error rate", er_max, "");
	panel_frame(f, 2, "p99 latency (s)", p_max, "");
	series(f, h, &ax, 0, "pct", 100, "#2ca02c", true);
	series(f, h, &ax, 1, "ter", er_max, "#d62728", false);
	series(f, h, &ax, 1, "cer", er_max, "#1f77b4", false);
	series(f, h, &ax, 2, "tp99", p_max, "#d62728", false);
	series(f, h, &ax, 2, "cp99", p_max, "#1f77b4", false);
	/* Decisions. */
	int k = 0;
	json_array_foreach(h, i, e) {
		double t;
		const char *ev = json_string_value(json_object_get(e, "event"));
		if (!ev || !num(e, "t", &t))
			continue;
		double x = xpos(&ax, t);
		bool bad = !strncmp(ev, "rollback", 8) || !strcmp(ev, "pause");
		fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" "
			   "stroke-dasharray=\"4,3\"><title>", x, TOP, x,
			TOP + 3 * PANEL + 2 * GAP, bad ? "#d62728" : "#555");
		esc(f, json_string_value(json_object_get(e, "message")), 300);
		fputs("</title></line>\n", f);
		fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" fill=\"%s\">", x + 2,
			TOP + 12 + 11 * (k++ % 4), bad ? "#d62728" : "#333");
		esc(f, ev, 32);
		fputs("</text>\n", f);
	}
	/* Time axis, in seconds from the first entry. */
	for (int q = 0; q <= 4; q++) {
		double t = ax.t0 + (ax.t1 - ax.t0) * q / 4;
		fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%.0f s</text>\n",
			xpos(&ax, t), TOP + 3 * PANEL + 2 * GAP + 16, (t - ax.t0) / 1000);
	}
	if (!any)
		fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"14\">no checks or decisions yet</text>\n",
			LEFT + 20, TOP + PANEL / 2);
	fputs("</svg>\n", f);
	return ferror(f) ? -1 : 0;
}
