/*
 * shm/clock.h - milliseconds on a clock, for writer, reader and tools.
 * CLOCK_REALTIME for instants stored in shared memory or shown to people
 * (publish time, heartbeat, last sync); CLOCK_MONOTONIC for intervals and
 * timeouts. Both are vDSO reads on Linux: no system call.
 */
#ifndef FLAGSHM_SHM_CLOCK_H
#define FLAGSHM_SHM_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t fs_clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
