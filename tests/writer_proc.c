/*
 * tests/writer_proc.c - see writer_proc.h.
 */
#include "writer_proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char *wp_writer_path(void)
{
	const char *p = getenv("FLAGSHM_WRITER");
	return p && p[0] ? p : "flagshm-writer";
}

pid_t wp_spawn(const char *const *argv, const char *log, const char *env_key)
{
	return wp_spawn_prog(wp_writer_path(), argv, log, env_key);
}

pid_t wp_spawn_prog(const char *prog, const char *const *argv, const char *log,
		    const char *env_key)
{
	const char *args[64];
	char *envp[256];
	char keyvar[600];
	size_t n = 0, e = 0;
	posix_spawn_file_actions_t fa;
	pid_t pid;

	args[n++] = prog;
	for (; *argv && n < 63; argv++)
		args[n++] = *argv;
	args[n] = NULL;
	for (char **v = environ; *v && e < 250; v++)
		if (strncmp(*v, "FLAGSHM_SDK_KEY=", 16) != 0)
			envp[e++] = *v;
	if (env_key) {
		snprintf(keyvar, sizeof keyvar, "FLAGSHM_SDK_KEY=%s", env_key);
		envp[e++] = keyvar;
	}
	envp[e] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	int rc = posix_spawnp(&pid, args[0], &fa, NULL, (char *const *)args, envp);
	posix_spawn_file_actions_destroy(&fa);
	return rc == 0 ? pid : -1;
}

int wp_wait_exit(pid_t pid, int timeout_ms)
{
	int64_t end = wp_mono_ms() + timeout_ms;
	int st;
	for (int i = 0; i < timeout_ms / 5 + 2; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (r < 0)
			return -1;
		if (wp_mono_ms() >= end)
			break;
		wp_sleep_ms(5);
	}
	return -2;
}

int wp_stop(pid_t pid, int timeout_ms)
{
	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	int st = wp_wait_exit(pid, timeout_ms);
	if (st != -2)
		return st;
	kill(pid, SIGKILL);
	wp_wait_exit(pid, 30000);
	return -1;
}

char *wp_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;
	if (!f)
		return NULL;
	for (;;) {
		if (n + 4097 > cap) {
			cap = cap ? cap * 2 : 65536;
			char *b = realloc(buf, cap);
			if (!b)
				break;
			buf = b;
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	if (buf)
		buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

int wp_write_file(const char *path, const void *buf, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t w = fwrite(buf, 1, n, f);
	return fclose(f) == 0 && w == n ? 0 : -1;
}

void wp_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[4096];
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			wp_rmdir(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

int64_t wp_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void wp_sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}
