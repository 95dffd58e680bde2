/* Traffic counters of a pool and the periodic stats line. Counters are plain integers
 * bumped on the loop thread by the relay and the pool (no locks, no clock read of their
 * own: times come from clock.h, read once per socket callback); the line sums every pool each
 * stats_period and logs rates and averages for the period, as PgBouncer's does. */
#ifndef PGCORO_STATS_H
#define PGCORO_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "types.h"

struct runtime;

struct stats {
	uint64_t xact_count;     /* transactions ended (ReadyForQuery 'I', nothing outstanding) */
	uint64_t query_count;    /* requests answered (one per ReadyForQuery) */
	uint64_t bytes_received; /* relayed from clients to servers */
	uint64_t bytes_sent;     /* relayed from servers to clients */
	uint64_t xact_time_us;   /* summed transaction times */
	uint64_t query_time_us;  /* summed times from a request to its last ReadyForQuery */
	uint64_t wait_time_us;   /* summed times clients waited for a server */
	uint64_t assignments;    /* servers handed to clients */
	/* protocol-level prepared statements (transaction and statement mode, prepared.c);
	 * those pgcoro refuses (42P05, 26000, 53400) count nothing */
	uint64_t client_parse_count; /* named statements clients prepared */
	uint64_t server_parse_count; /* Parses pgcoro sent to servers for them */
	uint64_t bind_count;         /* Binds of them pgcoro forwarded */
	uint64_t client_login_count; /* logins that reached their pool (or the console) */
};

/* A pool's counters at the start of the last full stats_period and their growth over it
 * (SHOW STATS avg_*), in the part of a pool made when it has traffic. */
struct stats_period {
	struct stats start;
	struct stats growth;
};

void stats_init(struct runtime *rt);

/* P is being freed: its counters stay in the stats line's totals (so the next line's
 * growth is right); SHOW STATS forgets them, as PgBouncer does. */
void stats_pool_gone(pool_t *p);

/* stats_period may have changed (reload): the line's timer follows it. */
void stats_reconfigure(void);

/* TO += FROM, field by field. */
void stats_add(struct stats *to, const struct stats *from);

/* PgBouncer's avg_* figures of D, the counters' growth over SECONDS: per-second rates of
 * counts and bytes, mean times per transaction, per request and per server assignment
 * (0 when there is nothing to divide by). */
struct stats_avg {
	uint64_t assignments;    /* per second */
	uint64_t xact_count;     /* per second */
	uint64_t query_count;    /* per second */
	uint64_t bytes_received; /* per second */
	uint64_t bytes_sent;     /* per second */
	uint64_t xact_time_us;   /* per transaction */
	uint64_t query_time_us;  /* per request */
	uint64_t wait_time_us;   /* per server assignment */
	uint64_t client_parse_count; /* per second */
	uint64_t server_parse_count; /* per second */
	uint64_t bind_count;         /* per second */
	uint64_t client_login_count; /* per second */
};
struct stats_avg stats_averages(const struct stats *d, double seconds);

/* The stats line for DELTA, the counters' growth over SECONDS, into BUF. */
void stats_format(const struct stats *delta, double seconds, char *buf, size_t len);

/* TO = A - B, field by field. */
void stats_sub(struct stats *to, const struct stats *a, const struct stats *b);

/* Seconds the last full stats_period lasted (0 before the first), for per-second
 * averages of pool->period. */
double stats_period_seconds(void);

/* The admin console's counters (PgBouncer's admin pool "pgbouncer"): its logins, and each
 * command as one query and one transaction. Bumped by console.c; summed with the pools'
 * in the stats line and SHOW TOTALS. */
struct stats *stats_console(void);
/* Their growth over the last full stats_period, as pool->period. */
const struct stats *stats_console_period(void);

void stats_free(void);

#endif
