/*
 * tests/helpers.c - flag documents in C strings to validated snapshots.
 * See helpers.h. Documents are loaded with the writer's own loader (label
 * "flags.json"), so tests see exactly the messages a user would.
 */
#include "helpers.h"
#include "compile.h"
#include "eval.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TH_LABEL "flags.json"

/* A snap and the bytes it reads: snap must stay first. */
typedef struct th_box {
	snap s;
	uint8_t *bytes;
} th_box;

/* JSON with ' for " (malloc'd). */
static char *unquote(const char *json)
{
	char *s = strdup(json);

	cr_assert_not_null(s);
	for (char *p = s; *p; p++)
		if (*p == '\'')
			*p = '"';
	return s;
}

/* Load and compile; returns 0 or -1 with messages in errs. */
static int compile_doc(const char *json, const char *env, wc_snapshot *out, wc_errors *errs)
{
	wc_limits lim = wc_limits_default();
	char *text = unquote(json);
	json_t *doc;
	int rc;

	memset(out, 0, sizeof *out);
	rc = wc_load_buffer(text, strlen(text), TH_LABEL, &lim, &doc, errs);
	free(text);
	if (rc == 0) {
		rc = wc_compile(doc, env, TH_LABEL, &lim, out, errs);
		json_decref(doc);
	}
	return rc;
}

static char *join_errors(const wc_errors *e)
{
	size_t len = 1;
	char *s, *p;

	for (size_t i = 0; i < e->n; i++)
		len += strlen(e->msg[i]) + 1;
	len += 64; /* "... and N more" */
	s = p = malloc(len);
	cr_assert_not_null(s);
	*p = '\0';
	for (size_t i = 0; i < e->n; i++)
		p += sprintf(p, "%s%s", i ? "\n" : "", e->msg[i]);
	if (e->dropped)
		sprintf(p, "\n... and %zu more", e->dropped);
	return s;
}

snap *th_snap(const char *json, const char *env)
{
	wc_errors errs = {0};
	wc_snapshot out;
	char err[256];
	th_box *box;

	if (compile_doc(json, env, &out, &errs) < 0) {
		char *all = join_errors(&errs);
		wc_errors_free(&errs);
		cr_log_error("%s", all);
		free(all);
		cr_assert_fail("the test document does not compile (errors above)");
	}
	wc_errors_free(&errs);
	box = calloc(1, sizeof *box);
	cr_assert_not_null(box);
	box->bytes = out.bytes;
	if (snap_open(&box->s, box->bytes, out.size, err, sizeof err) != 0) {
		free(box->bytes);
		free(box);
		cr_assert_fail("snap_open refused the compiled snapshot: %s", err);
	}
	return &box->s;
}

void th_snap_free(snap *s)
{
	th_box *box = (th_box *)s;

	if (!s)
		return;
	snap_close(&box->s);
	free(box->bytes);
	free(box);
}

char *th_errors(const char *json, const char *env)
{
	wc_errors errs = {0};
	wc_snapshot out;
	char *all = NULL;

	if (compile_doc(json, env, &out, &errs) < 0)
		all = join_errors(&errs);
	else
		wc_snapshot_free(&out);
	wc_errors_free(&errs);
	return all;
}

flagshm_result th_eval(const snap *s, const char *key, const flagshm_ctx *ctx)
{
	flagshm_result r;

	memset(&r, 0, sizeof r);
	eval_key(s, key, ctx, &r);
	return r;
}

char *th_write_temp(const char *json)
{
	const char *dir = getenv("TMPDIR");
	char *text = unquote(json), *path;
	size_t len = strlen(text);
	int fd;

	cr_assert(asprintf(&path, "%s/flagshm-test-XXXXXX.json", dir && *dir ? dir : "/tmp") > 0);
	fd = mkstemps(path, 5);
	cr_assert(fd >= 0, "mkstemps %s failed", path);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	free(text);
	return path;
}
