/* Owns the /metrics endpoint (see metrics.h): what it serves on metrics_listen (httpd.c
 * serves it, within its limits), the counters that have no pool (login errors and
 * timeouts, cancel requests), and the rendering of every pool's gauges, counters and
 * histograms in the Prometheus text format. A scrape reads the pools on the loop thread;
 * nothing is locked. */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "auth.h"
#include "client.h"
#include "config.h"
#include "httpd.h"
#include "log.h"
#include "login.h"
#include "notify.h"
#include "pin.h"
#include "pool.h"
#include "poolctl.h"
#include "runtime.h"
#include "stats.h"

static struct runtime *rt;
static struct httpd *http;
static char *bound_to;            /* the metrics_listen value the endpoint listens on */
static double started_at;         /* wall-clock start, for process_start_time_seconds */

static struct metrics_errors login_errors; /* errors sent to clients without a pool */
static uint64_t login_timeouts;
static uint64_t cancel_forwarded, cancel_ignored;

static const char *const timeout_names[MT_NTIMEOUTS] = {
    [MT_QUERY_WAIT] = "query_wait",         [MT_CLIENT_IDLE] = "client_idle",
    [MT_IDLE_TRANSACTION] = "idle_transaction", [MT_QUERY] = "query",
    [MT_SERVER_CONNECT] = "server_connect", [MT_TRANSACTION] = "transaction",
    [MT_CLIENT_LOGIN] = "client_login",
};

void metrics_init(struct runtime *r)
{
	rt = r;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	started_at = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void count_error(struct metrics_errors *e, const char *sqlstate)
{
	if (!sqlstate || strlen(sqlstate) < 2)
		return;
	for (int i = 0; i < METRICS_ERROR_CLASSES; i++) {
		if (e->n[i] == 0) {
			e->cls[i][0] = sqlstate[0];
			e->cls[i][1] = sqlstate[1];
		}
		if (e->cls[i][0] == sqlstate[0] && e->cls[i][1] == sqlstate[1]) {
			e->n[i]++;
			return;
		}
	}
	e->other++;
}

void metrics_error(pool_t *p, const char *sqlstate)
{
	if (!rt->metrics_on)
		return;
	struct metrics_pool *m = p ? pool_metrics(p) : NULL;
	if (m)
		count_error(&m->errors, sqlstate);
	else if (!p)
		count_error(&login_errors, sqlstate);
}

void metrics_timeout(pool_t *p, enum metrics_timeout kind)
{
	struct metrics_pool *m;
	if (kind == MT_CLIENT_LOGIN)
		login_timeouts++;
	else if ((m = pool_metrics(p)))
		m->timeouts[kind]++;
}

void metrics_cancel_sent(pool_t *p)
{
	struct metrics_pool *m = pool_metrics(p);
	if (m)
		m->cancels++;
}

void metrics_cancel_request(bool forwarded)
{
	if (forwarded)
		cancel_forwarded++;
	else
		cancel_ignored++;
}

/* ---- rendering --------------------------------------------------------------------- */

static struct evbuffer *ob; /* the answer being built */

static void family(const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(ob, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* S as a label value: backslash, double quote and newline escaped. */
static void add_escaped(const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add_printf(ob, "\\%c", *s);
		else if (*s == '\n')
			evbuffer_add(ob, "\\n", 2);
		else
			evbuffer_add(ob, s, 1);
	}
}

/* NAME{database="..",user=".."[,EXTRA] } -- EXTRA already formatted, or NULL. */
static void pool_series(const char *name, const pool_t *p, const char *extra)
{
	evbuffer_add_printf(ob, "%s{database=\"", name);
	add_escaped(p->dbname);
	evbuffer_add(ob, "\",user=\"", 8);
	add_escaped(p->user);
	evbuffer_add_printf(ob, "\"%s%s} ", extra ? "," : "", extra ? extra : "");
}

static void pool_u64(const char *name, const pool_t *p, const char *extra, uint64_t v)
{
	pool_series(name, p, extra);
	evbuffer_add_printf(ob, "%" PRIu64 "\n", v);
}

static void pool_double(const char *name, const pool_t *p, const char *extra, double v)
{
	pool_series(name, p, extra);
	evbuffer_add_printf(ob, "%.6f\n", v);
}

static void render_errors(const char *name, const pool_t *p, const struct metrics_errors *e)
{
	char extra[32];
	for (int i = 0; i < METRICS_ERROR_CLASSES && e->n[i]; i++) {
		snprintf(extra, sizeof(extra), "class=\"%c%c\"", e->cls[i][0], e->cls[i][1]);
		if (p)
			pool_u64(name, p, extra, e->n[i]);
		else
			evbuffer_add_printf(ob, "%s{%s} %" PRIu64 "\n", name, extra, e->n[i]);
	}
	if (e->other) {
		if (p)
			pool_u64(name, p, "class=\"other\"", e->other);
		else
			evbuffer_add_printf(ob, "%s{class=\"other\"} %" PRIu64 "\n", name, e->other);
	}
}

static void render_histo(const char *name, const pool_t *p, const struct metrics_histo *h)
{
	char series[128], extra[40];
	snprintf(series, sizeof(series), "%s_bucket", name);
	uint64_t cum = 0;
	for (unsigned i = 0; i < METRICS_BOUNDS; i++) {
		cum += h->bucket[i];
		uint64_t b = metrics_bounds()[i];
		/* seconds as Prometheus clients write them: 0.00025, 0.001, 2.5, 10 */
		int n = snprintf(extra, sizeof(extra), "le=\"%" PRIu64 ".%06" PRIu64, b / 1000000,
				 b % 1000000);
		while (extra[n - 1] == '0')
			n--;
		if (extra[n - 1] == '.')
			n--;
		snprintf(extra + n, sizeof(extra) - (size_t)n, "\"");
		pool_u64(series, p, extra, cum);
	}
	cum += h->bucket[METRICS_BOUNDS];
	pool_u64(series, p, "le=\"+Inf\"", cum);
	snprintf(series, sizeof(series), "%s_sum", name);
	pool_double(series, p, NULL, (double)h->sum_us / 1e6);
	snprintf(series, sizeof(series), "%s_count", name);
	pool_u64(series, p, NULL, h->count);
}

/* Per-pool gauges: clients and servers by state, the longest wait, size and pause. */
static void render_pool_gauges(double now)
{
	family("pgcoro_pool_clients", "gauge", "Client connections of the pool by state.");
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		pool_u64("pgcoro_pool_clients", p, "state=\"active\"", (uint64_t)pool_active_clients(p));
		pool_u64("pgcoro_pool_clients", p, "state=\"waiting\"", (uint64_t)p->waiting.count);
		pool_u64("pgcoro_pool_clients", p, "state=\"idle\"", (uint64_t)pool_idle_clients(p));
	}
	family("pgcoro_pool_servers", "gauge", "Server connections of the pool by state.");
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		pool_u64("pgcoro_pool_servers", p, "state=\"active\"", (uint64_t)p->sv_active.count);
		pool_u64("pgcoro_pool_servers", p, "state=\"idle\"", (uint64_t)p->sv_idle.count);
		pool_u64("pgcoro_pool_servers", p, "state=\"connecting\"",
			 (uint64_t)p->sv_connecting.count);
		pool_u64("pgcoro_pool_servers", p, "state=\"housekeeping\"",
			 (uint64_t)p->sv_housekeeping.count);
	}
	family("pgcoro_pool_max_wait_seconds", "gauge",
	       "How long the pool's longest-waiting client has waited for a server.");
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		double w = 0;
		if (!list_empty(&p->waiting))
			w = now - list_entry(list_first(&p->waiting), client_t, node)->since;
		pool_double("pgcoro_pool_max_wait_seconds", p, NULL, w > 0 ? w : 0);
	}
	family("pgcoro_pool_pinned_clients", "gauge",
	       "Clients of the pool keeping their server across transactions (pin_session_state).");
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p))
		pool_u64("pgcoro_pool_pinned_clients", p, NULL, (uint64_t)p->cl_pinned);
	family("pgcoro_pool_size", "gauge", "Server connections the pool may open (pool_size).");
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p))
		pool_u64("pgcoro_pool_size", p, NULL, (uint64_t)p->pool_size);
	family("pgcoro_pool_paused", "gauge", "1 while the pool is paused (PAUSE).");
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p))
		pool_u64("pgcoro_pool_paused", p, NULL, p->paused);
}

/* What a pool that never counted anything shows (its metrics are not made). */
static const struct metrics_pool zero;

static const struct metrics_pool *metrics_of(const pool_t *p)
{
	return p->traffic ? &p->traffic->metrics : &zero;
}

/* A counter family of struct stats or struct metrics_pool, one series per pool. */
#define POOL_COUNTER(name, help, expr)                                                     \
	do {                                                                               \
		family(name, "counter", help);                                             \
		for (pool_t *p = pool_next(NULL); p; p = pool_next(p))                      \
			pool_u64(name, p, NULL, (expr));                                   \
	} while (0)

static void render_pool_counters(void)
{
	POOL_COUNTER("pgcoro_transactions_total", "Transactions ended.", pool_stats(p)->xact_count);
	POOL_COUNTER("pgcoro_queries_total", "Requests answered (one per ReadyForQuery).",
		     pool_stats(p)->query_count);
	POOL_COUNTER("pgcoro_received_bytes_total", "Bytes relayed from clients to servers.",
		     pool_stats(p)->bytes_received);
	POOL_COUNTER("pgcoro_sent_bytes_total", "Bytes relayed from servers to clients.",
		     pool_stats(p)->bytes_sent);
	POOL_COUNTER("pgcoro_server_assignments_total", "Servers handed to clients.",
		     pool_stats(p)->assignments);
	POOL_COUNTER("pgcoro_cancels_total", "Cancel requests sent to the pool's servers.",
		     metrics_of(p)->cancels);
	POOL_COUNTER("pgcoro_server_connect_failures_total",
		     "Server connections that could not be made.", p->connect_failures);

	family("pgcoro_errors_total", "counter",
	       "ErrorResponses the pool's clients got (from servers and from pgcoro), by SQLSTATE "
	       "class.");
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p))
		render_errors("pgcoro_errors_total", p, &metrics_of(p)->errors);

	family("pgcoro_timeouts_total", "counter", "Timeouts that ended a wait, a query or a client.");
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p))
		for (int k = 0; k < MT_CLIENT_LOGIN; k++) {
			char extra[40];
			snprintf(extra, sizeof(extra), "kind=\"%s\"", timeout_names[k]);
			pool_u64("pgcoro_timeouts_total", p, extra, metrics_of(p)->timeouts[k]);
		}
}

/* A histogram family, one histogram per pool. */
#define POOL_HISTO(name, help, field)                                                      \
	do {                                                                               \
		family(name, "histogram", help);                                           \
		for (pool_t *p = pool_next(NULL); p; p = pool_next(p))                      \
			render_histo(name, p, &metrics_of(p)->field);                      \
	} while (0)

static void render_histograms(void)
{
	POOL_HISTO("pgcoro_transaction_duration_seconds",
		   "Transaction times, from the first request to the ReadyForQuery that ends it.",
		   xact);
	POOL_HISTO("pgcoro_query_duration_seconds",
		   "Request times, from the request to its ReadyForQuery.", query);
	POOL_HISTO("pgcoro_wait_duration_seconds",
		   "How long clients waited for a server, one observation per server handed out.",
		   wait);
	POOL_HISTO("pgcoro_server_connect_duration_seconds",
		   "Server connection set-up times (connect, TLS, authentication).", connect);
}

static void render_global(void)
{
	family("pgcoro_info", "gauge", "pgcoro's version.");
	evbuffer_add_printf(ob, "pgcoro_info{version=\"%s\"} 1\n", PGCORO_VERSION);
	family("pgcoro_client_connections", "gauge", "Client connections, every state.");
	evbuffer_add_printf(ob, "pgcoro_client_connections %d\n", client_count());
	family("pgcoro_max_client_conn", "gauge", "The max_client_conn setting.");
	evbuffer_add_printf(ob, "pgcoro_max_client_conn %d\n", rt->cfg->max_client_conn);
	int servers = 0;
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p))
		servers += pool_server_count(p);
	family("pgcoro_pins_total", "counter",
	       "Clients pinned to their server (pin_session_state), by the state that pinned them.");
	for (int b = 0; b < 8; b++) {
		char why[32];
		if (PIN_REASONS & 1u << b)
			evbuffer_add_printf(ob, "pgcoro_pins_total{reason=\"%s\"} %llu\n",
					    pin_reasons(1u << b, why, sizeof(why)),
					    (unsigned long long)pin_counts[b]);
	}
	family("pgcoro_server_connections", "gauge", "Server connections, every state.");
	evbuffer_add_printf(ob, "pgcoro_server_connections %d\n", servers);
	family("pgcoro_paused", "gauge", "1 while pgcoro is paused (PAUSE without a database).");
	evbuffer_add_printf(ob, "pgcoro_paused %d\n", poolctl_paused(NULL) ? 1 : 0);

	family("pgcoro_login_errors_total", "counter",
	       "ErrorResponses sent to clients before they were in a pool (login), by SQLSTATE "
	       "class.");
	render_errors("pgcoro_login_errors_total", NULL, &login_errors);
	family("pgcoro_client_login_timeouts_total", "counter",
	       "Clients closed by client_login_timeout.");
	evbuffer_add_printf(ob, "pgcoro_client_login_timeouts_total %" PRIu64 "\n", login_timeouts);
	family("pgcoro_cancel_requests_total", "counter",
	       "CancelRequests received: forwarded to a server, or ignored (unknown keys, nothing "
	       "running).");
	evbuffer_add_printf(ob, "pgcoro_cancel_requests_total{result=\"forwarded\"} %" PRIu64 "\n",
			    cancel_forwarded);
	evbuffer_add_printf(ob, "pgcoro_cancel_requests_total{result=\"ignored\"} %" PRIu64 "\n",
			    cancel_ignored);
	int running, waiting;
	uint64_t run;
	login_check_stats(&running, &waiting, &run);
	family("pgcoro_password_checks", "gauge",
	       "Cleartext password checks (plain, ldap, hba password and ldap): running on the "
	       "executor (their client may have left), waiting for their turn.");
	evbuffer_add_printf(ob, "pgcoro_password_checks{state=\"running\"} %d\n", running);
	evbuffer_add_printf(ob, "pgcoro_password_checks{state=\"waiting\"} %d\n", waiting);
	family("pgcoro_password_checks_total", "counter",
	       "Cleartext password checks run on the executor, listed and unknown users alike.");
	evbuffer_add_printf(ob, "pgcoro_password_checks_total %" PRIu64 "\n", run);
	size_t held;
	uint64_t closed_client, closed_total;
	notify_held_stats(&held, &closed_client, &closed_total);
	family("pgcoro_notification_held_bytes", "gauge",
	       "Bytes of notifications held for clients that are busy or do not read.");
	evbuffer_add_printf(ob, "pgcoro_notification_held_bytes %zu\n", held);
	family("pgcoro_notification_clients_closed_total", "counter",
	       "Clients closed for the notifications held for them: past 16 MB for the client, "
	       "or the furthest behind past max_held_notification_bytes for all.");
	evbuffer_add_printf(ob,
			    "pgcoro_notification_clients_closed_total{limit=\"client\"} %" PRIu64 "\n",
			    closed_client);
	evbuffer_add_printf(ob,
			    "pgcoro_notification_clients_closed_total{limit=\"total\"} %" PRIu64 "\n",
			    closed_total);

	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
			     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
		family("process_cpu_seconds_total", "counter", "User and system CPU time spent.");
		evbuffer_add_printf(ob, "process_cpu_seconds_total %.6f\n", cpu);
		family("process_max_resident_memory_bytes", "gauge", "Peak resident set size.");
		evbuffer_add_printf(ob, "process_max_resident_memory_bytes %ld\n", ru.ru_maxrss * 1024L);
	}
	family("process_start_time_seconds", "gauge", "Start time since the Unix epoch.");
	evbuffer_add_printf(ob, "process_start_time_seconds %.3f\n", started_at);
}

static void render(struct evbuffer *into)
{
	ob = into;
	render_global();
	render_pool_gauges(rt_now());
	render_pool_counters();
	render_histograms();
	ob = NULL;
}

/* ---- the endpoint ------------------------------------------------------------------ */

static const struct httpd_site site = {
    .name = "metrics",
    .path = "/metrics",
    .content_type = "text/plain; version=0.0.4; charset=utf-8",
    .render = render,
};

/* Listens on ADDR ("host:port"). False if it cannot (logged). */
static bool listen_on(const char *addr)
{
	char host[256];
	int port;
	if (!cfg_parse_host_port(addr, host, sizeof(host), &port)) {
		log_error("metrics_listen \"%s\": expected host:port", addr);
		return false;
	}
	http = httpd_new(rt->base, host, port, &site);
	if (!http) {
		log_error("metrics: cannot listen on %s: %s", addr, strerror(errno));
		return false;
	}
	bound_to = strdup(addr);
	log_info("metrics: serving http://%s/metrics", addr);
	return true;
}

static void stop(void)
{
	httpd_free(http);
	http = NULL;
	free(bound_to);
	bound_to = NULL;
}

bool metrics_start(void)
{
	rt->metrics_on = rt->cfg->metrics_listen[0] != 0;
	if (!rt->metrics_on)
		return true;
	return listen_on(rt->cfg->metrics_listen);
}

void metrics_reconfigure(void)
{
	const char *want = rt->cfg->metrics_listen;
	if (bound_to && strcmp(bound_to, want) == 0)
		return;
	stop();
	if (want[0] && !listen_on(want))
		log_warning("metrics: the endpoint stays off until metrics_listen changes");
	rt->metrics_on = want[0] != 0;
}

void metrics_free(void) { stop(); }
