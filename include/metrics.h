/* Prometheus metrics: per-pool histograms and counters, bumped on the loop thread (no
 * locks; times from clock.h, read once per socket callback), and the HTTP endpoint
 * /metrics (httpd.h, on metrics_listen) that renders them, with the pools'
 * gauges and the traffic counters of struct stats, in the Prometheus text format
 * (version 0.0.4).
 * Histograms and error classes are recorded only while metrics_listen is set
 * (rt->metrics_on): with it empty the hot path pays one predictable branch. Counters of
 * rare events (timeouts, cancels, failed connects) are always kept. */
#ifndef PGCORO_METRICS_H
#define PGCORO_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "types.h"

struct runtime;

/* Histogram bucket bounds, microseconds (Prometheus' le, in seconds, is bound / 1e6);
 * one more bucket counts what is above the last bound (+Inf). */
#define METRICS_BOUNDS 16
#define METRICS_BUCKETS (METRICS_BOUNDS + 1)

/* A histogram: bucket[i] counts observations in (bound[i-1], bound[i]] (not cumulative;
 * the rendering sums them). */
struct metrics_histo {
	uint64_t count;
	uint64_t sum_us;
	uint64_t bucket[METRICS_BUCKETS];
};

/* The timeouts counted per pool (label kind). */
enum metrics_timeout {
	MT_QUERY_WAIT,         /* query_wait_timeout: a client waited too long for a server */
	MT_CLIENT_IDLE,        /* client_idle_timeout */
	MT_IDLE_TRANSACTION,   /* idle_transaction_timeout */
	MT_QUERY,              /* query_timeout: the client was closed, its query cancelled */
	MT_SERVER_CONNECT,     /* server_connect_timeout */
	MT_TRANSACTION,        /* transaction_timeout */
	MT_CLIENT_LOGIN,       /* client_login_timeout: counted without a pool */
	MT_NTIMEOUTS,
};

/* ErrorResponses by SQLSTATE class (the first two characters): a few classes each with
 * a count, the rest counted as class "other". */
#define METRICS_ERROR_CLASSES 16
struct metrics_errors {
	char cls[METRICS_ERROR_CLASSES][2];
	uint64_t n[METRICS_ERROR_CLASSES];
	uint64_t other;
};

/* A pool's metrics (pool_metrics), in the part made when it first has traffic or
 * something to count: a pool that never had any costs none of these bytes. Its failed
 * server connections are counted in the pool itself (pool->connect_failures). */
struct metrics_pool {
	struct metrics_histo xact;    /* transaction times */
	struct metrics_histo query;   /* request times (to each ReadyForQuery) */
	struct metrics_histo wait;    /* clients' waits for a server, one per assignment */
	struct metrics_histo connect; /* server connection set-up times (successful ones) */
	struct metrics_errors errors; /* ErrorResponses its clients got (servers' and pgcoro's) */
	uint64_t timeouts[MT_NTIMEOUTS];
	uint64_t cancels;             /* cancel requests sent to its servers */
};

/* The histogram bucket bounds, microseconds, ascending. */
static inline const uint32_t *metrics_bounds(void)
{
	static const uint32_t bound[METRICS_BOUNDS] = {
	    100,    250,    500,     1000,    2500,    5000,    10000,   25000,
	    50000,  100000, 250000,  500000,  1000000, 2500000, 5000000, 10000000};
	return bound;
}

/* Adds an observation of US microseconds to H. */
static inline void metrics_observe(struct metrics_histo *h, uint64_t us)
{
	const uint32_t *bound = metrics_bounds();
	unsigned i = 0;
	while (i < METRICS_BOUNDS && us > bound[i])
		i++;
	h->bucket[i]++;
	h->count++;
	h->sum_us += us;
}

void metrics_init(struct runtime *rt);

/* Opens the endpoint on metrics_listen (nothing when empty). False if it cannot listen
 * (the reason is logged). */
bool metrics_start(void) __attribute__((warn_unused_result));

/* After a reload or SET: listens anew when metrics_listen changed (a failure is logged
 * and the endpoint is off until the next change). */
void metrics_reconfigure(void);

/* An ErrorResponse with SQLSTATE went to a client of P; P NULL: a client not in a pool
 * yet (login). */
void metrics_error(pool_t *p, const char *sqlstate);

/* Counts the timeout KIND in P (MT_CLIENT_LOGIN: in no pool; P is ignored). */
void metrics_timeout(pool_t *p, enum metrics_timeout kind);

/* A cancel request went to a server of P. */
void metrics_cancel_sent(pool_t *p);

/* A CancelRequest arrived: FORWARDED to a server, or ignored (unknown keys, nothing
 * running). */
void metrics_cancel_request(bool forwarded);

/* Stops listening and frees the endpoint. */
void metrics_free(void);

#endif
