/*
 * writer/compile/messages.c - the list of problems found in one document.
 * Each message is one malloc'd line; past WC_ERRORS_MAX (or when memory
 * runs out) messages are only counted in e->dropped.
 */
#include "compile.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(wc_errors *e)
{
	size_t cap = e->cap ? e->cap * 2 : 16;
	char **m = realloc(e->msg, cap * sizeof *m);

	if (!m)
		return -1;
	e->msg = m;
	e->cap = cap;
	return 0;
}

void wc_errors_add(wc_errors *e, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	if (e->n >= WC_ERRORS_MAX || (e->n == e->cap && grow(e) < 0)) {
		e->dropped++;
		return;
	}
	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		e->dropped++;
		return;
	}
	e->msg[e->n++] = s;
}

void wc_errors_free(wc_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->msg[i]);
	free(e->msg);
	memset(e, 0, sizeof *e);
}
