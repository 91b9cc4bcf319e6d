/*
 * tests/promtool.h - run Debian's `promtool check metrics|rules` (package
 * prometheus, scripts/install-deps.sh) over text or a file, for the
 * exporter's tests. Header-only: two suites use it.
 */
#ifndef FLAGSHM_TESTS_PROMTOOL_H
#define FLAGSHM_TESTS_PROMTOOL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROMTOOL "/usr/bin/promtool"

/* `promtool ARGS < IN` with stdout and stderr into OUT (cut to OUTLEN).
 * Returns its exit status, or -1 when it could not run. */
static inline int promtool_run(const char *args, const char *in, char *out, size_t outlen)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, PROMTOOL " %s < '%s' 2>&1", args, in);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	size_t n = fread(out, 1, outlen - 1, p);
	out[n] = '\0';
	while (fgetc(p) != EOF) /* drain past OUTLEN so it can exit */
		;
	int st = pclose(p);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* `promtool check metrics` over LEN bytes of TEXT; its output in OUT. */
static inline int promtool_check_metrics(const char *text, size_t len, char *out, size_t outlen)
{
	char path[] = "/tmp/flagshm-prom-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(fd);
	int rc = off == len ? promtool_run("check metrics", path, out, outlen) : -1;
	unlink(path);
	return rc;
}

#endif
