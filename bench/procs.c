/*
 * bench/procs.c - the child processes of the multi-process sections.
 *
 * Every child is recorded here as it is forked, dies with the parent
 * (PR_SET_PDEATHSIG), and is killed and reaped on every exit path of the
 * parent (procs_kill_all, called by bench.c's clean-up), so no run leaves
 * a reader spinning. Children leave through _exit: they never run the
 * parent's atexit clean-up (which removes the store).
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t kids[PROCS_MAX];
static int nkids;

static void forget(pid_t pid)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i] == pid) {
			kids[i] = kids[--nkids];
			return;
		}
}

/* In the child, first thing: die with the parent, even if it died before
 * the prctl. */
static void child_setup(pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(3);
}

pid_t procs_fork(bench_env *e, int (*fn)(bench_env *e, void *arg, int idx), void *arg, int idx)
{
	if (nkids == PROCS_MAX) {
		bench_fail(e, "more than %d child processes", PROCS_MAX);
		return -1;
	}
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		bench_fail(e, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		child_setup(parent);
		_exit(fn(e, arg, idx));
	}
	kids[nkids++] = pid;
	return pid;
}

pid_t procs_spawn_self(bench_env *e, char *const argv[], int *to_child, int *from_child)
{
	int in[2], out[2];
	if (nkids == PROCS_MAX) {
		bench_fail(e, "more than %d child processes", PROCS_MAX);
		return -1;
	}
	if (pipe2(in, O_CLOEXEC) < 0) {
		bench_fail(e, "pipe: %s", strerror(errno));
		return -1;
	}
	if (pipe2(out, O_CLOEXEC) < 0) {
		bench_fail(e, "pipe: %s", strerror(errno));
		close(in[0]);
		close(in[1]);
		return -1;
	}
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		bench_fail(e, "fork: %s", strerror(errno));
		close(in[0]), close(in[1]), close(out[0]), close(out[1]);
		return -1;
	}
	if (pid == 0) {
		child_setup(parent);
		/* dup2 clears O_CLOEXEC on the new descriptors only. */
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
			_exit(4);
		execv("/proc/self/exe", argv);
		_exit(5);
	}
	close(in[0]);
	close(out[1]);
	*to_child = in[1];
	*from_child = out[0];
	kids[nkids++] = pid;
	return pid;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Reap what has exited; count those that did not exit 0. */
static int reap(int flags)
{
	int bad = 0;
	for (int i = 0; i < nkids;) {
		int st;
		pid_t pid = kids[i];
		pid_t r = waitpid(pid, &st, flags);
		if (r == pid || (r < 0 && errno == ECHILD)) {
			if (r != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
				bad++;
			forget(pid);
			continue;
		}
		i++;
	}
	return bad;
}

int procs_wait_all(int64_t deadline)
{
	int bad = 0;
	while (nkids && now_ns() < deadline && !bench_stop) {
		bad += reap(WNOHANG);
		if (nkids)
			sleep_ms(1);
	}
	if (!nkids)
		return bad;
	for (int i = 0; i < nkids; i++)
		kill(kids[i], SIGTERM);
	for (int t = 0; t < 200 && nkids; t++) {
		bad += reap(WNOHANG);
		if (nkids)
			sleep_ms(1);
	}
	int left = nkids;
	procs_kill_all();
	return bad + left;
}

void procs_kill_all(void)
{
	for (int i = 0; i < nkids; i++)
		kill(kids[i], SIGKILL);
	while (nkids) {
		int st;
		pid_t pid = kids[nkids - 1];
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		nkids--;
	}
}

void *procs_shared(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void procs_unshared(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}
