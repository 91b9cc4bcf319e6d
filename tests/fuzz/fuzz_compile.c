/*
 * tests/fuzz/fuzz_compile.c - libFuzzer target: the flag-document loader
 * and compiler (wc_load_buffer + wc_compile) on arbitrary bytes.
 *
 * Oracle beyond "no crash, no sanitizer report": whatever the compiler
 * accepts must be a snapshot the reader validates (snap_open), and every
 * flag in it must evaluate without a SNAPSHOT_INVALID error, for an empty
 * context and for one with the usual attributes. Limits are lowered so
 * that one input stays fast.
 */
#include "compile.h"
#include "eval.h"
#include "snap.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void eval_all(const snap *s)
{
	static const char *const tags[] = { "beta", "premium" };
	flagshm_ctx ctx;
	flagshm_ctx_init(&ctx);
	flagshm_ctx_string(&ctx, "userId", "u-42");
	flagshm_ctx_string(&ctx, "country", "DE");
	flagshm_ctx_string(&ctx, "email", "a@acme.com");
	flagshm_ctx_string(&ctx, "app", "1.2.3");
	flagshm_ctx_number(&ctx, "age", 42);
	flagshm_ctx_bool(&ctx, "staff", true);
	flagshm_ctx_list(&ctx, "tags", tags, 2);
	for (uint32_t i = 0; i < s->count[FS_T_FLAGS]; i++) {
		flagshm_result r;
		if (eval_flag(s, i, NULL, &r) == FLAGSHM_ECORRUPT ||
		    eval_flag(s, i, &ctx, &r) == FLAGSHM_ECORRUPT) {
			fprintf(stderr, "flag %u of a compiled snapshot evaluates as corrupt\n", i);
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	wc_limits lim = wc_limits_default();
	lim.max_doc_bytes = 1 << 20;
	lim.max_list = 1000;
	lim.max_string = 4096;
	lim.max_snapshot = 16 << 20;
	wc_errors errs = { 0 };
	json_t *doc = NULL;
	wc_snapshot out = { 0 };

	if (wc_load_buffer((const char *)data, size, "fuzz.json", &lim, &doc, &errs) == 0) {
		const char *env = size && (data[0] & 1) ? "staging" : NULL;
		if (wc_compile(doc, env, "fuzz.json", &lim, &out, &errs) == 0) {
			snap s;
			char err[256];
			memset(&s, 0, sizeof s);
			if (snap_open(&s, out.bytes, out.size, err, sizeof err) != 0) {
				fprintf(stderr, "the reader refuses a compiled snapshot: %s\n", err);
				abort();
			}
			eval_all(&s);
			snap_close(&s);
			wc_snapshot_free(&out);
		} else if (errs.n == 0 && errs.dropped == 0) {
			fprintf(stderr, "wc_compile failed without a message\n");
			abort();
		}
	} else if (errs.n == 0) {
		fprintf(stderr, "wc_load_buffer failed without a message\n");
		abort();
	}
	json_decref(doc);
	wc_errors_free(&errs);
	return 0;
}
