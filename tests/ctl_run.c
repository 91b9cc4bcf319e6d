/*
 * tests/ctl_run.c - run flagshm-ctl for the tests (ctl_run.h).
 */
#include "ctl_run.h"
#include "writer_proc.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static const char *ctl_path(void)
{
	const char *p = getenv("FLAGSHM_CTL");
	return p && *p ? p : "build/control/ctl/flagshm-ctl";
}

static pid_t spawn(const char *const *argv, const char *in, const char *out, const char *err,
		   const char *const *env)
{
	const char *args[64];
	char *envp[300];
	size_t n = 0, e = 0;
	args[n++] = ctl_path();
	for (; *argv && n < 63; argv++)
		args[n++] = *argv;
	args[n] = NULL;
	for (char **v = environ; *v && e < 250; v++) {
		if (strncmp(*v, "FLAGSHM_URL=", 12) == 0 || strncmp(*v, "FLAGSHM_TOKEN_FILE=", 19) == 0)
			continue;
		envp[e++] = *v;
	}
	for (size_t i = 0; env && env[i] && e < 298; i++)
		envp[e++] = (char *)env[i];
	envp[e] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, in ? in : "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	pid_t pid;
	int rc = posix_spawn(&pid, args[0], &fa, NULL, (char *const *)args, envp);
	posix_spawn_file_actions_destroy(&fa);
	return rc == 0 ? pid : -1;
}

pid_t ctl_spawn(const char *const *argv, const char *out_file, const char *err_file)
{
	return spawn(argv, NULL, out_file, err_file, NULL);
}

ctl_out ctl_run(const char *const *argv, const char *stdin_file, const char *const *env)
{
	ctl_out o = {.status = -1};
	char dir[] = "/tmp/flagshm-ctlrun-XXXXXX", out[64], err[64];
	if (!mkdtemp(dir)) {
		o.out = strdup("");
		o.err = strdup("mkdtemp failed");
		return o;
	}
	snprintf(out, sizeof out, "%s/out", dir);
	snprintf(err, sizeof err, "%s/err", dir);
	pid_t pid = spawn(argv, stdin_file, out, err, env);
	if (pid > 0) {
		o.status = wp_wait_exit(pid, 60000);
		if (o.status == -2) {
			kill(pid, SIGKILL);
			o.status = wp_wait_exit(pid, 5000);
		}
	}
	o.out = wp_read_file(out, NULL);
	o.err = wp_read_file(err, NULL);
	if (!o.out)
		o.out = strdup("");
	if (!o.err)
		o.err = strdup("");
	unlink(out);
	unlink(err);
	rmdir(dir);
	return o;
}

void ctl_out_free(ctl_out *o)
{
	free(o->out);
	free(o->err);
	o->out = o->err = NULL;
}
