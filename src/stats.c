/* Owns the periodic stats line: every stats_period it sums the counters of every pool
 * and of the admin console (and of the pools freed since the start), takes the growth
 * since the previous line and logs rates and average times; and each pool's growth over
 * the period (SHOW STATS), and the console's counters themselves. */
#include "stats.h"

#include <inttypes.h>
#include <stdio.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "pool.h"
#include "runtime.h"

static struct runtime *rt;
static struct event *period_ev;
static struct stats last;  /* the totals at the previous line */
static struct stats gone;  /* the counters of the pools freed, for the totals */
static double last_at;     /* rt_now() of the previous line */
static double armed_period; /* the period the timer runs with; 0 = stopped */
static double period_seconds; /* length of the last full period */
static struct stats console_now, console_start, console_period; /* as a pool's */

struct stats *stats_console(void) { return &console_now; }
const struct stats *stats_console_period(void) { return &console_period; }

void stats_add(struct stats *to, const struct stats *from)
{
	to->xact_count += from->xact_count;
	to->query_count += from->query_count;
	to->bytes_received += from->bytes_received;
	to->bytes_sent += from->bytes_sent;
	to->xact_time_us += from->xact_time_us;
	to->query_time_us += from->query_time_us;
	to->wait_time_us += from->wait_time_us;
	to->assignments += from->assignments;
	to->client_parse_count += from->client_parse_count;
	to->server_parse_count += from->server_parse_count;
	to->bind_count += from->bind_count;
	to->client_login_count += from->client_login_count;
}

static uint64_t per(uint64_t n, uint64_t d) { return d ? n / d : 0; }
static uint64_t rate(uint64_t n, double s) { return s > 0 ? (uint64_t)((double)n / s) : 0; }

struct stats_avg stats_averages(const struct stats *d, double seconds)
{
	return (struct stats_avg){
	    .assignments = rate(d->assignments, seconds),
	    .xact_count = rate(d->xact_count, seconds),
	    .query_count = rate(d->query_count, seconds),
	    .bytes_received = rate(d->bytes_received, seconds),
	    .bytes_sent = rate(d->bytes_sent, seconds),
	    .xact_time_us = per(d->xact_time_us, d->xact_count),
	    .query_time_us = per(d->query_time_us, d->query_count),
	    .wait_time_us = per(d->wait_time_us, d->assignments),
	    .client_parse_count = rate(d->client_parse_count, seconds),
	    .server_parse_count = rate(d->server_parse_count, seconds),
	    .bind_count = rate(d->bind_count, seconds),
	    .client_login_count = rate(d->client_login_count, seconds),
	};
}

void stats_format(const struct stats *d, double seconds, char *buf, size_t len)
{
	struct stats_avg a = stats_averages(d, seconds);
	snprintf(buf, len,
		 "stats: %" PRIu64 " xacts/s, %" PRIu64 " queries/s, in %" PRIu64 " B/s, out %" PRIu64
		 " B/s, xact %" PRIu64 " us, query %" PRIu64 " us, wait %" PRIu64 " us (over %.1f s: %" PRIu64
		 " xacts, %" PRIu64 " queries, %" PRIu64 " B in, %" PRIu64 " B out, %" PRIu64
		 " server assignments)",
		 a.xact_count, a.query_count, a.bytes_received, a.bytes_sent, a.xact_time_us,
		 a.query_time_us, a.wait_time_us, seconds, d->xact_count, d->query_count,
		 d->bytes_received, d->bytes_sent, d->assignments);
}

void stats_sub(struct stats *to, const struct stats *a, const struct stats *b)
{
	to->xact_count = a->xact_count - b->xact_count;
	to->query_count = a->query_count - b->query_count;
	to->bytes_received = a->bytes_received - b->bytes_received;
	to->bytes_sent = a->bytes_sent - b->bytes_sent;
	to->xact_time_us = a->xact_time_us - b->xact_time_us;
	to->query_time_us = a->query_time_us - b->query_time_us;
	to->wait_time_us = a->wait_time_us - b->wait_time_us;
	to->assignments = a->assignments - b->assignments;
	to->client_parse_count = a->client_parse_count - b->client_parse_count;
	to->server_parse_count = a->server_parse_count - b->server_parse_count;
	to->bind_count = a->bind_count - b->bind_count;
	to->client_login_count = a->client_login_count - b->client_login_count;
}

double stats_period_seconds(void) { return period_seconds; }

void stats_pool_gone(pool_t *p) { stats_add(&gone, pool_stats(p)); }

static void period_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stats total = gone;
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		struct pool_traffic *t = p->traffic;
		if (!t)
			continue; /* no traffic yet: its first period starts from zero */
		stats_add(&total, &t->stats);
		stats_sub(&t->period.growth, &t->stats, &t->period.start);
		t->period.start = t->stats;
	}
	stats_add(&total, &console_now);
	stats_sub(&console_period, &console_now, &console_start);
	console_start = console_now;
	double now = rt_now();
	struct stats d;
	stats_sub(&d, &total, &last);
	period_seconds = now - last_at;
	if (rt->cfg->log_stats) { /* else the period still feeds SHOW STATS' averages */
		char line[512];
		stats_format(&d, now - last_at, line, sizeof(line));
		log_info("%s", line);
	}
	last = total;
	last_at = now;
}

void stats_reconfigure(void)
{
	double period = rt->cfg->stats_period;
	if (period == armed_period)
		return;
	if (period_ev)
		event_del(period_ev);
	armed_period = period;
	if (period <= 0 || !period_ev)
		return;
	/* the next line covers the time since the previous one (or since the start) */
	struct timeval tv = {(time_t)period, (suseconds_t)((period - (double)(time_t)period) * 1e6)};
	if (event_add(period_ev, &tv) != 0)
		log_warning("stats: cannot arm the stats_period timer");
}

void stats_init(struct runtime *r)
{
	rt = r;
	last_at = rt_now();
	period_ev = event_new(rt->base, -1, EV_PERSIST, period_cb, NULL);
	if (!period_ev)
		log_warning("stats: out of memory: no stats line");
	stats_reconfigure();
}

void stats_free(void)
{
	if (period_ev)
		event_free(period_ev);
	period_ev = NULL;
	armed_period = 0;
}
