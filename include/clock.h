/* The daemon's clock: precise monotonic time, read at most once per socket callback.
 *
 * libevent's cached time is CLOCK_MONOTONIC_COARSE (4 ms steps here), too coarse for
 * query and transaction times; a clock_gettime per use costs a vDSO call each. So a
 * socket callback (stream.c) is a "turn": the first clock_now_us() in it reads
 * CLOCK_MONOTONIC and the rest of the turn shares that reading, as PgBouncer shares
 * one gettimeofday per loop iteration. Outside a turn every call reads the clock. */
#ifndef PGCORO_CLOCK_H
#define PGCORO_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct clock_turn {
	bool open;   /* inside a socket callback */
	uint64_t us; /* the turn's reading; 0 = not read yet */
};
extern struct clock_turn clock_turn;

static inline uint64_t clock_read_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Monotonic microseconds: the current turn's reading, or a fresh one outside a turn. */
static inline uint64_t clock_now_us(void)
{
	if (clock_turn.us)
		return clock_turn.us;
	uint64_t now = clock_read_us();
	if (clock_turn.open)
		clock_turn.us = now;
	return now;
}

/* Monotonic seconds (the same clock), for timeouts and ages. */
static inline double clock_now(void) { return (double)clock_now_us() / 1e6; }

/* A socket callback begins / ends. Turns do not nest. */
static inline void clock_turn_begin(void)
{
	clock_turn.open = true;
	clock_turn.us = 0;
}

static inline void clock_turn_end(void)
{
	clock_turn.open = false;
	clock_turn.us = 0;
}

#endif
