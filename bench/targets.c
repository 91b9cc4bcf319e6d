/*
 * bench/targets.c - the performance targets, each figure beside the limit probe.
 *
 * Nothing is measured here: every figure is read back from the results
 * tree the sections filled, so the targets cannot disagree with them. The
 * evaluation targets are ratios to cases.lookup.ns_per_eval (the probe,
 * lookup.c), both with the same loop and id switch around them; the
 * one-shot call's limit adds one read-side section, taken as
 * view_acquire_release - loop_baseline (the acquire/release's own cost;
 * the whole of view_acquire_release when loop_baseline did not run). A
 * target whose figure did not run (not selected, failed) has figure and
 * met null. "met" is the comparison alone; "note" says when the run's
 * conditions differ from the target's (flags, readers vs cores). Each ns
 * target also has its twin over CPU time (figure_cpu, ratio_cpu,
 * limit_cpu, met_cpu: cpu_ns_per_eval throughout), which a busy machine
 * inflates much less than the wall figures.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static double num(const json_t *o, const char *path)
{
	/* PATH: keys separated by '/'. */
	char key[64];
	while (o && *path) {
		size_t l = strcspn(path, "/");
		if (l >= sizeof key)
			return NAN;
		memcpy(key, path, l);
		key[l] = '\0';
		o = json_object_get(o, key);
		path += l + (path[l] == '/');
	}
	return json_is_number(o) ? json_number_value(o) : NAN;
}

/* The CPU-time twin of an ns target: on a shared machine the wall figures
 * carry time spent descheduled, which the ratios should not. */
static void add_cpu(json_t *t, double fig, double lookup, double limit)
{
	json_object_set_new(t, "figure_cpu", jnum(fig, 3));
	json_object_set_new(t, "ratio_cpu", isfinite(lookup) && lookup > 0 ? jnum(fig / lookup, 3)
									   : json_null());
	json_object_set_new(t, "limit_cpu", jnum(limit, 3));
	json_object_set_new(t, "met_cpu", isfinite(fig) && isfinite(limit) ? json_boolean(fig <= limit)
									  : json_null());
}

static json_t *add(json_t *list, const char *name, const char *what, double fig, const char *unit,
		   double lookup, double limit, const char *rule, int met, const char *note)
{
	bool have = isfinite(fig) && isfinite(limit);
	json_t *t = json_object();
	json_object_set_new(t, "name", json_string(name));
	json_object_set_new(t, "what", json_string(what));
	json_object_set_new(t, "figure", jnum(fig, 3));
	json_object_set_new(t, "unit", json_string(unit));
	json_object_set_new(t, "ratio", strcmp(unit, "ns") == 0 && isfinite(lookup) && lookup > 0
						 ? jnum(fig / lookup, 3)
						 : json_null());
	json_object_set_new(t, "limit", jnum(limit, 3));
	json_object_set_new(t, "rule", json_string(rule));
	/* met: -1 = compare figure <= limit; 0/1 = decided by the caller. */
	json_object_set_new(t, "met", !have ? json_null()
					    : json_boolean(met < 0 ? fig <= limit : met));
	if (note && *note)
		json_object_set_new(t, "note", json_string(note));
	json_array_append_new(list, t);
	return t;
}

void targets_run(bench_env *e)
{
	const json_t *o = e->out;
	double L = num(o, "cases/lookup/ns_per_eval");
	double var = num(o, "cases/view_acquire_release/ns_per_eval");
	double base = num(o, "cases/loop_baseline/ns_per_eval");
	double section = isfinite(base) && isfinite(var) ? var - base : var;
	double Lc = num(o, "cases/lookup/cpu_ns_per_eval");
	double var_c = num(o, "cases/view_acquire_release/cpu_ns_per_eval");
	double base_c = num(o, "cases/loop_baseline/cpu_ns_per_eval");
	double section_c = isfinite(base_c) && isfinite(var_c) ? var_c - base_c : var_c;
	json_t *list = json_array();
	json_t *t = json_object();
	json_object_set_new(t, "lookup_ns", jnum(L, 2));
	json_object_set_new(t, "view_section_ns", jnum(section, 2));
	json_object_set_new(t, "lookup_cpu_ns", jnum(Lc, 2));
	json_object_set_new(t, "view_section_cpu_ns", jnum(section_c, 2));
	json_object_set_new(t, "list", list);
	json_object_set_new(e->out, "targets", t);
	char note[256];

	static const struct {
		const char *c, *what, *rule;
		double k;
	} ev[] = {
		{ "simple_view", "simple in a view", "<= 1.5 x lookup", 1.5 },
		{ "simple_handle", "simple by handle", "<= 1.1 x lookup", 1.1 },
		{ "missing_view", "missing key in a view", "<= 1.5 x lookup", 1.5 },
		{ "rollout_view", "25% rollout in a view", "<= 1.3 x lookup", 1.3 },
		{ "rules10_view", "rules10 in a view", "<= 14 x lookup", 14 },
	};
	for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++) {
		char path[64], cpath[64];
		snprintf(path, sizeof path, "cases/%s/ns_per_eval", ev[i].c);
		snprintf(cpath, sizeof cpath, "cases/%s/cpu_ns_per_eval", ev[i].c);
		json_t *e1 = add(list, ev[i].c, ev[i].what, num(o, path), "ns", L, ev[i].k * L,
				 ev[i].rule, -1, NULL);
		add_cpu(e1, num(o, cpath), Lc, ev[i].k * Lc);
		if (i == 1) { /* the one-shot call after the handle, as the targets list them */
			json_t *e2 = add(list, "simple", "simple, one-shot flagshm_bool",
					 num(o, "cases/simple/ns_per_eval"), "ns", L, 1.5 * L + section,
					 "<= 1.5 x lookup + one view acquire/release (view_section_ns)",
					 -1, NULL);
			add_cpu(e2, num(o, "cases/simple/cpu_ns_per_eval"), Lc, 1.5 * Lc + section_c);
		}
	}

	static const char *const docs[] = { "100000", "10000_regex" };
	for (size_t i = 0; i < 2; i++) {
		const json_t *d = json_object_get(json_object_get(o, "publish_tail"), docs[i]);
		char name[48], what[128];
		snprintf(name, sizeof name, "publish_tail.%s", docs[i]);
		snprintf(what, sizeof what, "worst one-shot call while publishing every 200 ms, %s",
			 i ? "10,000 flags, 1,000 regexes" : "100,000 flags");
		double over = num(d, "over_1ms");
		snprintf(note, sizeof note, "p99.99 %.2f us, %.0f calls > 100 us, %.0f > 1 ms, %.0f "
			 "publishes", num(d, "p9999_us"), num(d, "over_100us"), over,
			 num(d, "publishes"));
		double fig = num(d, "max_us"), lim = num(d, "limit_us");
		add(list, name, what, fig, "us", L, lim,
		    "max <= 100 us + own evaluation (median), and 0 calls > 1 ms",
		    isfinite(fig) && isfinite(lim) ? fig <= lim && over == 0 : -1, d ? note : NULL);
	}

	{
		const json_t *p = json_object_get(o, "propagation_us");
		double readers = num(p, "readers"), cpus = (double)sysconf(_SC_NPROCESSORS_ONLN);
		snprintf(note, sizeof note, "%.0f readers, %.0f cpus, %.0f flags (%.0f bytes)%s",
			 readers, cpus, num(p, "flags"), num(p, "snapshot_bytes"),
			 readers > cpus ? "; the limit is for readers <= cores" : "");
		add(list, "propagation_p99", "publish call -> every reader sees it, p99",
		    num(p, "p99"), "us", L, 200, "<= 200 us (readers <= cores; any snapshot size)",
		    -1, p ? note : NULL);
	}

	static const struct {
		const char *n;
		double lim;
	} pub[] = { { "10000", 50 }, { "100000", 500 } };
	for (size_t i = 0; i < 2; i++) {
		char name[32], path[64], what[96], rule[48];
		snprintf(name, sizeof name, "publish_%s", pub[i].n);
		snprintf(what, sizeof what, "compile + publish, %s flags", pub[i].n);
		snprintf(rule, sizeof rule, "<= %.0f ms", pub[i].lim);
		snprintf(path, sizeof path, "publish/%s/parse_compile_publish_ms", pub[i].n);
		double all = num(o, path);
		snprintf(path, sizeof path, "publish_ms/%s", pub[i].n);
		snprintf(note, sizeof note, "with JSON parse: %.2f ms", all);
		add(list, name, what, num(o, path), "ms", L, pub[i].lim, rule, -1,
		    isfinite(all) ? note : NULL);
	}

	{
		/* The most readers measured, as with many workers. */
		const json_t *m = json_object_get(o, "memory");
		static const char *const ns[] = { "8", "4", "2", "1" };
		const json_t *r = NULL;
		const char *at = "";
		for (size_t i = 0; i < 4 && !r; i++)
			if (json_object_get(json_object_get(m, ns[i]), "readers")) {
				r = json_object_get(m, ns[i]);
				at = ns[i];
			}
		/* Private_Dirty: heap, stacks, written data pages - what no
		 * other process shares; the snapshot mapping is clean. */
		double fig = num(r, "added_private_dirty_kb_avg") -
			     num(r, "counters_private_dirty_kb_avg");
		snprintf(note, sizeof note, "added Private_Dirty per reader, %s readers, %.0f flags, "
			 "without the counter region (%.0f KiB RSS, every flag evaluated; the "
			 "counting heap is in the figure); added PSS beyond the snapshot's %.1f KiB%s",
			 at, num(m, "flags"), num(r, "counters_rss_kb_avg"),
			 num(r, "added_pss_kb_avg") - num(r, "snapshot_pss_kb_avg"),
			 num(m, "flags") != 1000 ? "; the limit is at 1,000 flags" : "");
		add(list, "reader_memory", "memory per reader beyond its snapshot share", fig, "KiB",
		    L, 16, "<= 16 KB at 1,000 flags", -1, r ? note : NULL);
	}
}
