/*
 * tests/test_prom.c - the Prometheus text renderer (writer/daemon/prom.h,
 * metrics.h) without HTTP: escaping, histograms, the size bound, and
 * `promtool check metrics` over whole expositions.
 */
#include "metrics.h"
#include "prom.h"
#include "promtool.h"
#include "compile.h"
#include "wm.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

static char *label(const char *s, size_t n)
{
	wd_buf b;
	wd_buf_init(&b, 1 << 20);
	wd_prom_label_value(&b, s, n);
	cr_assert(!b.over);
	return b.p ? b.p : strdup("");
}

Test(prom, label_values_escape_backslash_quote_and_newline)
{
	char *v = label("a\\b\"c\nd", 7);
	cr_expect_str_eq(v, "a\\\\b\\\"c\\nd");
	free(v);
}

Test(prom, label_values_that_are_not_utf8_become_replacement_characters)
{
	/* a lone continuation byte, an overlong '/', a surrogate, a cut
	 * sequence at the end; valid multi-byte text stays as it is */
	const char in[] = "x\x80y\xc0\xafz\xed\xa0\x80\xc3\xa9\xe2\x82";
	char *v = label(in, sizeof in - 1);
	cr_expect_str_eq(v, "x\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd"
			    "\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd");
	free(v);
}

Test(prom, numbers_are_exact_for_integers_and_shortest_otherwise)
{
	wd_buf b;
	wd_buf_init(&b, 4096);
	wd_prom_number(&b, 42);
	wd_buf_add(&b, " ", 1);
	wd_prom_number(&b, 0.0025);
	wd_buf_add(&b, " ", 1);
	wd_prom_number(&b, 1796301969.123);
	wd_buf_add(&b, " ", 1);
	wd_prom_number(&b, INFINITY);
	wd_buf_add(&b, " ", 1);
	wd_prom_number(&b, 18446744073709551616.0);
	cr_expect_str_eq(b.p, "42 0.0025 1796301969.123 +Inf 1.8446744073709552e+19");
	wd_buf_free(&b);
}

Test(prom, histogram_buckets_are_cumulative_and_inf_equals_count)
{
	wd_hist h = { 0 };
	wd_hist_observe(&h, 0.0005); /* le 0.001 */
	wd_hist_observe(&h, 0.001);  /* le 0.001: bounds are inclusive */
	wd_hist_observe(&h, 0.3);    /* le 0.5 */
	wd_hist_observe(&h, 60);     /* +Inf */
	wd_hist_observe(&h, -1);     /* a clock step: counted as 0 */
	wd_buf b;
	wd_buf_init(&b, 1 << 16);
	wd_prom_hist(&b, "x_seconds", "flag=\"f\"", h.bucket, h.count, h.sum);
	cr_assert(!b.over);
	cr_expect(strstr(b.p, "x_seconds_bucket{flag=\"f\",le=\"0.001\"} 3\n"), "%s", b.p);
	cr_expect(strstr(b.p, "x_seconds_bucket{flag=\"f\",le=\"0.25\"} 3\n"), "%s", b.p);
	cr_expect(strstr(b.p, "x_seconds_bucket{flag=\"f\",le=\"0.5\"} 4\n"), "%s", b.p);
	cr_expect(strstr(b.p, "x_seconds_bucket{flag=\"f\",le=\"10\"} 4\n"), "%s", b.p);
	cr_expect(strstr(b.p, "x_seconds_bucket{flag=\"f\",le=\"+Inf\"} 5\n"), "%s", b.p);
	cr_expect(strstr(b.p, "x_seconds_count{flag=\"f\"} 5\n"), "%s", b.p);
	cr_expect(strstr(b.p, "x_seconds_sum{flag=\"f\"} 60.3015\n"), "%s", b.p);
	wd_buf_free(&b);
}

Test(prom, the_buffer_stops_at_its_bound_and_says_so)
{
	wd_buf b;
	wd_buf_init(&b, 100);
	for (int i = 0; i < 1000; i++)
		wd_buf_printf(&b, "line %d\n", i);
	cr_expect(b.over);
	cr_expect_leq(b.len, 100);
	cr_expect_leq(b.cap, 101);
	wd_buf_free(&b);
}

/* A snapshot compiled from DOC, as the daemon would have published it. */
static wc_snapshot compiled(const char *doc)
{
	wc_snapshot s = { 0 };
	wc_errors errs = { 0 };
	wc_limits lim = wc_limits_default();
	json_t *j = NULL;
	int rc = wc_load_buffer(doc, strlen(doc), "doc", &lim, &j, &errs);
	if (rc == 0)
		rc = wc_compile(j, NULL, "doc", &lim, &s, &errs);
	cr_assert_eq(rc, 0, "%s", errs.n ? errs.msg[0] : "?");
	json_decref(j);
	wc_errors_free(&errs);
	return s;
}

Test(prom, a_writer_exposition_passes_promtool)
{
	wc_snapshot s = compiled(
		"{\"formatVersion\":1,\"flags\":["
		"{\"key\":\"new-checkout\",\"defaultValue\":true,\"type\":\"experiment\","
		" \"owner\":\"team \\\"q\\\" \\\\ x\\nnext \\u00e9\",\"expiresAt\":\"2027-02-01T00:00:00Z\"},"
		"{\"key\":\"color\",\"defaultValue\":\"green\",\"offValue\":\"red\"}]}");
	wd_metrics *m = wd_metrics_new(NULL);
	cr_assert(m);
	wd_metrics_published(m, s.bytes, s.size, 0.012);
	wd_metrics_rejected(m);
	wd_metrics_sync(m, WD_SYNC_OK);
	wd_metrics_sync(m, WD_SYNC_NOT_MODIFIED);
	wd_metrics_sync(m, WD_SYNC_NOT_MODIFIED);

	wd_buf b;
	wd_buf_init(&b, 1 << 20);
	cr_assert_eq(wd_metrics_render(m, &b), 0);
	cr_expect(strstr(b.p, "flagshm_flags 2\n"), "%s", b.p);
	cr_expect(strstr(b.p, "flagshm_publish_rejected_total 1\n"), "%s", b.p);
	cr_expect(strstr(b.p, "flagshm_sync_requests_total{result=\"not_modified\"} 2\n"), "%s", b.p);
	cr_expect(strstr(b.p, "flagshm_flag_info{flag=\"new-checkout\",type=\"experiment\","
			      "owner=\"team \\\"q\\\" \\\\ x\\nnext \xc3\xa9\"} 1\n"), "%s", b.p);
	cr_expect(strstr(b.p, "flagshm_flag_info{flag=\"color\",type=\"release\",owner=\"\"} 1\n"),
		  "%s", b.p);
	cr_expect(strstr(b.p, "flagshm_flag_expiry_timestamp_seconds{flag=\"new-checkout\"} 1801440000\n"),
		  "%s", b.p);
	cr_expect(!strstr(b.p, "flagshm_flag_expiry_timestamp_seconds{flag=\"color\""), "%s", b.p);
	cr_expect(strstr(b.p, "flagshm_publish_duration_seconds_bucket{le=\"0.025\"} 1\n"), "%s", b.p);

	char out[4096];
	int rc = promtool_check_metrics(b.p, b.len, out, sizeof out);
	cr_expect_eq(rc, 0, "promtool check metrics: exit %d:\n%s\n--- exposition:\n%s", rc, out, b.p);
	cr_expect_str_eq(out, "", "promtool complained:\n%s", out);
	wd_buf_free(&b);
	wd_metrics_free(&m);
	cr_expect_null(m);
	wc_snapshot_free(&s);
}

Test(prom, an_exposition_past_the_bound_is_refused_not_cut)
{
	wc_snapshot s = compiled("[{\"key\":\"a\",\"defaultValue\":true}]");
	wd_metrics *m = wd_metrics_new(NULL);
	wd_metrics_published(m, s.bytes, s.size, 0.001);
	wd_buf b;
	wd_buf_init(&b, 300);
	cr_expect_eq(wd_metrics_render(m, &b), -1);
	cr_expect(b.over);
	wd_buf_free(&b);
	wd_metrics_free(&m);
	wc_snapshot_free(&s);
}

Test(prom, long_escaped_labels_render_whole_in_samples_and_histograms)
{
	char flag[129], variant[65];
	memset(flag, 'k', 128);
	flag[128] = '\0';
	memset(variant, '"', 64); /* each one escaped: 128 bytes */
	variant[64] = '\0';
	wd_label l[] = { { "flag", flag, 128 }, { "variant", variant, 64 } };
	uint64_t buckets[WD_HIST_BOUNDS + 1] = { 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
	wd_buf b;
	wd_buf_init(&b, 1 << 20);
	wd_prom_family(&b, "x_total", "counter", "x.");
	wd_prom_sample(&b, "x_total", l, 2, 7);
	wd_prom_family(&b, "y_seconds", "histogram", "y.");
	wd_prom_hist_labels(&b, "y_seconds", l, 2, buckets, 2, 20.0005);
	cr_assert(!b.over);
	char want[512];
	snprintf(want, sizeof want, "y_seconds_bucket{flag=\"%s\",variant=\"", flag);
	cr_expect(strstr(b.p, want), "%s", b.p);
	cr_expect(strstr(b.p, "\\\"\\\"\"} 7\n"), "%s", b.p);
	char out[4096];
	int rc = promtool_check_metrics(b.p, b.len, out, sizeof out);
	cr_expect_eq(rc, 0, "promtool: exit %d:\n%s\n%s", rc, out, b.p);
	wd_buf_free(&b);
}

Test(prom, evaluation_and_outcome_families_from_the_totals_pass_promtool)
{
	wm_variant nc[2] = {
		{ .variant = "true", .reasons = { [3] = 5, [5] = 7 }, .outcome_ok = 3, .outcome_err = 1,
		  .buckets = { [0] = 2, [4] = 1, [13] = 1 }, .sum_seconds = 12.0215 },
		{ .variant = "false", .reasons = { [6] = 2 } },
	};
	wm_variant odd[1] = {
		{ .variant = "say \"hi\"\n\\ \xff", .reasons = { [3] = 1 } },
	};
	wm_variant unk[1] = { { .variant = "(none)", .reasons = { [0] = 4 } } };
	wm_flag flags[3] = {
		{ .flag = "new-checkout", .evaluations = 14, .nvariants = 2, .variants = nc },
		{ .flag = "greeting", .evaluations = 1, .nvariants = 1, .variants = odd,
		  .errors = { [3] = 2 } },
		{ .flag = "(unknown)", .evaluations = 4, .nvariants = 1, .variants = unk,
		  .errors = { [2] = 4 } },
	};
	wm_totals t = { .generation = 3, .readers = 2, .nflags = 3, .flags = flags };

	wd_buf b;
	wd_buf_init(&b, 1 << 20);
	wd_metrics_render_counts(&b, &t);
	cr_assert(!b.over);
	const char *want[] = {
		"flagshm_evaluations_total{flag=\"new-checkout\",variant=\"true\",reason=\"RULE_MATCH\"} 5\n",
		"flagshm_evaluations_total{flag=\"new-checkout\",variant=\"true\",reason=\"DEFAULT_ROLLOUT\"} 7\n",
		"flagshm_evaluations_total{flag=\"new-checkout\",variant=\"false\",reason=\"DEFAULT_OFF\"} 2\n",
		"flagshm_evaluations_total{flag=\"greeting\",variant=\"say \\\"hi\\\"\\n\\\\ \xef\xbf\xbd\",reason=\"RULE_MATCH\"} 1\n",
		"flagshm_evaluations_total{flag=\"(unknown)\",variant=\"(none)\",reason=\"ERROR\"} 4\n",
		"flagshm_evaluation_errors_total{flag=\"greeting\",error=\"TYPE_MISMATCH\"} 2\n",
		"flagshm_evaluation_errors_total{flag=\"(unknown)\",error=\"FLAG_NOT_FOUND\"} 4\n",
		"flagshm_outcomes_total{flag=\"new-checkout\",variant=\"true\",outcome=\"success\"} 3\n",
		"flagshm_outcomes_total{flag=\"new-checkout\",variant=\"true\",outcome=\"error\"} 1\n",
		"flagshm_outcome_duration_seconds_bucket{flag=\"new-checkout\",variant=\"true\",le=\"0.001\"} 2\n",
		"flagshm_outcome_duration_seconds_bucket{flag=\"new-checkout\",variant=\"true\",le=\"0.025\"} 3\n",
		"flagshm_outcome_duration_seconds_bucket{flag=\"new-checkout\",variant=\"true\",le=\"10\"} 3\n",
		"flagshm_outcome_duration_seconds_bucket{flag=\"new-checkout\",variant=\"true\",le=\"+Inf\"} 4\n",
		"flagshm_outcome_duration_seconds_count{flag=\"new-checkout\",variant=\"true\"} 4\n",
		"flagshm_outcome_duration_seconds_sum{flag=\"new-checkout\",variant=\"true\"} 12.0215\n",
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++)
		cr_expect(strstr(b.p, want[i]), "missing: %s--- in:\n%s", want[i], b.p);
	/* no outcome series for a variant without outcomes, no zero counts */
	cr_expect(!strstr(b.p, "variant=\"false\",outcome="), "%s", b.p);
	cr_expect(!strstr(b.p, "} 0\n"), "%s", b.p);

	char out[4096];
	int rc = promtool_check_metrics(b.p, b.len, out, sizeof out);
	cr_expect_eq(rc, 0, "promtool: exit %d:\n%s\n%s", rc, out, b.p);
	cr_expect_str_eq(out, "", "promtool complained:\n%s", out);
	wd_buf_free(&b);

	/* counting off: the families are there, empty */
	wd_buf_init(&b, 1 << 20);
	wd_metrics_render_counts(&b, NULL);
	cr_expect(strstr(b.p, "# TYPE flagshm_evaluations_total counter\n"), "%s", b.p);
	rc = promtool_check_metrics(b.p, b.len, out, sizeof out);
	cr_expect_eq(rc, 0, "promtool: exit %d:\n%s\n%s", rc, out, b.p);
	wd_buf_free(&b);
}

Test(prom, histogram_lines_never_decrease_nor_pass_the_count_whatever_the_buckets_say)
{
	/* What a lying reader region could sum to: more in the buckets than
	 * the count, and a bucket that would wrap a 64-bit sum. */
	uint64_t buckets[WD_HIST_BOUNDS + 1] = { 5, UINT64_MAX, 7 };
	wd_buf b;
	wd_buf_init(&b, 1 << 16);
	wd_prom_family(&b, "x_seconds", "histogram", "x.");
	wd_prom_hist(&b, "x_seconds", "", buckets, 3, 1.5);
	cr_assert(!b.over);
	uint64_t last = 0;
	int lines = 0;
	for (const char *p = strstr(b.p, "x_seconds_bucket"); p; p = strstr(p + 1, "x_seconds_bucket")) {
		const char *v = strstr(p, "} ");
		cr_assert(v);
		uint64_t n = strtoull(v + 2, NULL, 10);
		cr_expect_geq(n, last, "a bucket decreased:\n%s", b.p);
		cr_expect_leq(n, 3, "a bucket passed the count:\n%s", b.p);
		last = n;
		lines++;
	}
	cr_expect_eq(lines, WD_HIST_BOUNDS + 1);
	cr_expect(strstr(b.p, "x_seconds_bucket{le=\"+Inf\"} 3\n"), "%s", b.p);
	wd_buf_free(&b);
}
