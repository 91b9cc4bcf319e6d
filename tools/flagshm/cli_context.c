/*
 * tools/flagshm/cli_context.c - `flagshm eval --context JSON`: a flat JSON object
 * to a flagshm_ctx. Anything the library's context cannot hold (null,
 * nested objects, lists of non-strings) is the user's mistake, reported
 * with the attribute's name.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static int attr_list(cli_context *c, const char *name, json_t *arr, char *err, size_t errlen)
{
	size_t n = json_array_size(arr);
	const char **items = calloc(n ? n : 1, sizeof *items);
	if (!items) {
		snprintf(err, errlen, "--context: out of memory");
		return -1;
	}
	c->items[c->nitems++] = items;
	for (size_t i = 0; i < n; i++) {
		items[i] = json_string_value(json_array_get(arr, i));
		if (!items[i]) {
			snprintf(err, errlen,
				 "--context: attribute \"%s\": element %zu is not a string "
				 "(a list attribute holds strings only)", name, i);
			return -1;
		}
	}
	return flagshm_ctx_list(&c->ctx, name, items, n);
}

int cli_context_parse(cli_context *c, const char *text, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	flagshm_ctx_init(&c->ctx);

	json_error_t jerr;
	c->doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!c->doc) {
		snprintf(err, errlen, "--context: invalid JSON at line %d, column %d: %s",
			 jerr.line, jerr.column, jerr.text);
		return -1;
	}
	if (!json_is_object(c->doc)) {
		snprintf(err, errlen, "--context: must be a JSON object, like "
			 "'{\"userId\":\"u-42\",\"country\":\"DE\"}'");
		goto fail;
	}
	if (json_object_size(c->doc) > FLAGSHM_CTX_MAX) {
		snprintf(err, errlen, "--context: %zu attributes; at most %d",
			 json_object_size(c->doc), FLAGSHM_CTX_MAX);
		goto fail;
	}

	const char *name;
	json_t *val;
	json_object_foreach(c->doc, name, val) {
		int rc;
		if (json_is_string(val))
			rc = flagshm_ctx_string(&c->ctx, name, json_string_value(val));
		else if (json_is_number(val))
			rc = flagshm_ctx_number(&c->ctx, name, json_number_value(val));
		else if (json_is_boolean(val))
			rc = flagshm_ctx_bool(&c->ctx, name, json_is_true(val));
		else if (json_is_array(val)) {
			*err = '\0';
			rc = attr_list(c, name, val, err, errlen);
			if (rc != 0 && *err)
				goto fail;
		} else {
			snprintf(err, errlen,
				 "--context: attribute \"%s\": must be a string, number, "
				 "boolean or list of strings, not %s", name,
				 json_is_null(val) ? "null" : "an object");
			goto fail;
		}
		if (rc != 0) {
			snprintf(err, errlen, "--context: attribute \"%s\": %s", name,
				 flagshm_strerror(rc));
			goto fail;
		}
	}
	return 0;
fail:
	cli_context_free(c);
	return -1;
}

void cli_context_free(cli_context *c)
{
	for (unsigned i = 0; i < c->nitems; i++)
		free(c->items[i]);
	c->nitems = 0;
	json_decref(c->doc);
	c->doc = NULL;
	flagshm_ctx_init(&c->ctx);
}
