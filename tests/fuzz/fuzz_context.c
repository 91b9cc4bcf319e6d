/*
 * tests/fuzz/fuzz_context.c - libFuzzer target: the context parser of the
 * flagshm tool (`flagshm eval KEY --context JSON`, tools/flagshm/cli_context.c),
 * and then the evaluator with whatever context it produced, over a fixed
 * snapshot that uses every operator. The context is the one input an
 * application takes from outside (request headers, user ids), so every
 * operator must cope with any attribute value.
 */
#include "cli.h"
#include "compile.h"
#include "eval.h"
#include "snap.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char doc[] =
	"{\"formatVersion\":1,\"segments\":{\"s\":{\"included\":[\"u-1\",\"42\"],"
	"\"conditions\":[{\"attribute\":\"tier\",\"operator\":\"in\",\"value\":[\"beta\",1,2.5]}]}},"
	"\"flags\":["
	"{\"key\":\"eq\",\"defaultValue\":false,\"targeting\":[{\"id\":\"r\",\"variation\":true,"
	"\"conditions\":[{\"attribute\":\"a\",\"operator\":\"equals\",\"value\":\"x\"},"
	"{\"attribute\":\"b\",\"operator\":\"notEquals\",\"value\":5,\"negate\":true}]}]},"
	"{\"key\":\"str\",\"defaultValue\":\"d\",\"offValue\":\"o\",\"rolloutPercentage\":50,"
	"\"targeting\":[{\"id\":\"r\",\"variation\":\"v\",\"conditions\":["
	"{\"attribute\":\"a\",\"operator\":\"contains\",\"value\":\"Ab\",\"caseInsensitive\":true},"
	"{\"attribute\":\"a\",\"operator\":\"startsWith\",\"value\":\"a\",\"caseInsensitive\":true},"
	"{\"attribute\":\"a\",\"operator\":\"endsWith\",\"value\":\"z\",\"negate\":true},"
	"{\"attribute\":\"tags\",\"operator\":\"notContains\",\"value\":\"q\"}]}]},"
	"{\"key\":\"re\",\"defaultValue\":1,\"offValue\":0,\"targeting\":[{\"id\":\"r\",\"variation\":2,"
	"\"conditions\":[{\"attribute\":\"a\",\"operator\":\"matches\",\"value\":\"(a+)+$\"},"
	"{\"attribute\":\"b\",\"operator\":\"matches\",\"value\":\"^\\\\p{L}+\\\\d*$\","
	"\"caseInsensitive\":true}]}]},"
	"{\"key\":\"num\",\"defaultValue\":true,\"targeting\":[{\"id\":\"r\",\"variation\":false,"
	"\"conditions\":[{\"attribute\":\"n\",\"operator\":\"greaterThan\",\"value\":1},"
	"{\"attribute\":\"n\",\"operator\":\"lessThanOrEqual\",\"value\":1e9},"
	"{\"attribute\":\"m\",\"operator\":\"greaterThanOrEqual\",\"value\":-3},"
	"{\"attribute\":\"m\",\"operator\":\"lessThan\",\"value\":0.5}]}]},"
	"{\"key\":\"ver\",\"defaultValue\":\"a\",\"offValue\":\"b\",\"targeting\":["
	"{\"id\":\"r1\",\"variation\":\"c\",\"conditions\":[{\"attribute\":\"v\",\"operator\":"
	"\"semverGreaterThan\",\"value\":\"1.2.3-rc.1\"}]},"
	"{\"id\":\"r2\",\"variation\":\"d\",\"conditions\":[{\"attribute\":\"v\",\"operator\":"
	"\"semverLessThan\",\"value\":\"2.0.0\"},{\"attribute\":\"v\",\"operator\":\"semverEqual\","
	"\"value\":\"1.0.0+b\",\"negate\":true}]}]},"
	"{\"key\":\"time\",\"defaultValue\":{\"x\":1},\"offValue\":[],\"targeting\":["
	"{\"id\":\"r\",\"variation\":{\"y\":2},\"conditions\":[{\"attribute\":\"t\",\"operator\":"
	"\"before\",\"value\":\"2027-01-01T00:00:00+01:00\"},{\"attribute\":\"t\",\"operator\":"
	"\"after\",\"value\":1700000000.5}]}]},"
	"{\"key\":\"seg\",\"defaultValue\":false,\"bucketBy\":\"id\",\"targeting\":["
	"{\"id\":\"s\",\"segments\":[\"s\"],\"split\":[{\"value\":true,\"weight\":33.333},"
	"{\"value\":false,\"weight\":66.667}]},{\"id\":\"in\",\"variation\":true,\"rolloutPercentage\":"
	"12.5,\"conditions\":[{\"attribute\":\"a\",\"operator\":\"notIn\",\"value\":[\"x\",3]}]}]},"
	"{\"key\":\"pre\",\"defaultValue\":true,\"prerequisites\":[{\"key\":\"eq\",\"value\":true},"
	"{\"key\":\"time\",\"value\":{\"x\":1}}]}"
	"]}";

static snap fixed;
static uint8_t *fixed_bytes;

static void init_fixed(void)
{
	wc_limits lim = wc_limits_default();
	wc_errors errs = { 0 };
	wc_snapshot out;
	json_t *j = NULL;
	char err[256];
	if (wc_load_buffer(doc, strlen(doc), "fixed.json", &lim, &j, &errs) != 0 ||
	    wc_compile(j, NULL, "fixed.json", &lim, &out, &errs) != 0) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msg[i]);
		abort();
	}
	json_decref(j);
	wc_errors_free(&errs);
	fixed_bytes = out.bytes;
	if (snap_open(&fixed, out.bytes, out.size, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fixed_bytes)
		init_fixed();
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	cli_context c;
	char err[512];
	if (cli_context_parse(&c, text, err, sizeof err) == 0) {
		for (uint32_t i = 0; i < fixed.count[FS_T_FLAGS]; i++) {
			flagshm_result r;
			if (eval_flag(&fixed, i, &c.ctx, &r) == FLAGSHM_ECORRUPT) {
				fprintf(stderr, "flag %u: SNAPSHOT_INVALID for a parsed context\n", i);
				abort();
			}
		}
		cli_context_free(&c);
	} else if (!err[0]) {
		fprintf(stderr, "cli_context_parse failed without a message\n");
		abort();
	}
	free(text);
	return 0;
}
