/* Pools: one per (database, user). A pool holds the lists its clients and servers live
 * on, one list per state; client_set_state/server_set_state move objects between them.
 * The pool decides which waiting client gets which server and when to connect more. */
#ifndef PGCORO_POOL_H
#define PGCORO_POOL_H

#include <stdbool.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "list.h"
#include "metrics.h"
#include "proto.h"
#include "server.h"
#include "stats.h"
#include "types.h"

struct runtime;
struct cfg_db;
struct notify_conn;

struct pool {
	struct list node;           /* in the global pool list */
	char *dbname;               /* the name clients ask for */
	char *user;
	const char **kw, **val;     /* NULL-terminated libpq parameters for new servers */
	unsigned conn_gen;          /* bumped when kw/val change (reload): servers made with an
	                             * older one are closed instead of going idle */
	int pool_size;
	int pool_mode;
	int min_pool_size;          /* kept open even when unused (capped at pool_size) */
	int reserve_pool_size;      /* extra servers once a client waited reserve_pool_timeout */
	int max_db_connections;     /* servers of this database across users; 0 = unlimited */
	int max_user_connections;   /* servers of this user across databases; 0 = unlimited */
	int max_db_client_connections;   /* clients of this database; 0 = unlimited */
	int max_user_client_connections; /* clients of this user; 0 = unlimited */
	/* timeouts in force for this pool's clients and servers: the [users] entry's, the
	 * [databases] entry's, else the global ones (seconds; 0 = none) */
	double query_timeout;
	double query_wait_timeout;
	double idle_transaction_timeout;
	double client_idle_timeout;
	double server_lifetime;
	char *connect_query;        /* run on each new server before use; NULL = none */
	int lb_hosts;               /* hosts in a round-robin (load_balance_hosts) host list;
	                             * 0 = none: libpq tries them in order */
	unsigned lb_next;           /* the host the next connection starts at */
	bool paused;                /* PAUSE (pool_set_paused): no hand-outs, servers closed */
	/* the part every transaction touches, together after the settings above: */
	struct stats stats;         /* traffic counters (relay, hand-outs) */
	struct list_head waiting;   /* CL_WAITING, FIFO */
	int repl_waiting;           /* replication clients among them (client_set_state) */
	int repl_connecting;        /* replication servers in sv_connecting (server_set_state) */
	struct list_head clients;   /* CL_ACTIVE and CL_IDLE, one list: a hand-out and a
	                             * release change a client's state, not its list */
	int cl_active;              /* how many of clients are CL_ACTIVE */

	struct list_head sv_connecting; /* SV_CONNECTING */
	struct list_head sv_idle;       /* SV_IDLE */
	struct list_head sv_active;     /* SV_ACTIVE */
	struct list_head sv_housekeeping; /* SV_HOUSEKEEPING */

	/* The reported parameters of a fresh server of this pool (its startup defaults), so
	 * transaction-mode logins are answered without taking a server. */
	char *params[SERVER_NPARAMS];
	bool params_known;
	/* The ParameterStatus messages of params, built once: message i is
	 * welcome.data[welcome_at[i], welcome_at[i + 1]) (empty when not reported). */
	struct pbuf welcome;
	uint32_t welcome_at[SERVER_NPARAMS + 1];

	double retry_delay;         /* back-off after failed connects; 0 = none */
	double retry_at;            /* rt_now() before which no connect starts */
	struct event retry_ev;      /* kicks the pool when the back-off ends */

	struct notify_conn *notify; /* LISTEN connection and channels (notify.c), once used */

	struct stats period_start;  /* stats at the start of the last full stats_period */
	struct stats period;        /* growth over the last full stats_period (SHOW STATS avg_*) */
	struct metrics_pool metrics; /* histograms and error/timeout counters (/metrics) */
};

void pool_init(struct runtime *rt);

/* Clients of P linked to a server (CL_ACTIVE), and logged in without one (CL_IDLE). */
static inline int pool_active_clients(const pool_t *p) { return p->cl_active; }
static inline int pool_idle_clients(const pool_t *p) { return p->clients.count - p->cl_active; }

/* The libpq parameters of a new server connection, a copy in one block (free() it):
 * libpq copies them at PQconnectStartParams, and the pool's own may change on reload. */
struct pool_conn_params {
	const char **kw, **val; /* NULL-terminated, parallel */
};

/* The parameters for P's next server connection: P's own, with the host list rotated to
 * start at the next host when its database balances hosts round-robin (each connection
 * then starts one further, and libpq still tries the others after it). NULL when out of
 * memory. */
struct pool_conn_params *pool_conn_params(pool_t *p);

/* Whether one more client of P fits max_db_client_connections and
 * max_user_client_connections (counted over every pool of its database, or of its user):
 * NULL if it does, else the name of the limit that is full. */
const char *pool_client_limit(const pool_t *p);

/* The pool for (DBNAME, USER), created on first use from DB. NULL only on allocation failure. */
pool_t *pool_get(const char *dbname, const char *user, const struct cfg_db *db);

/* Hands idle servers to waiting clients (FIFO) and starts connections while the pool
 * has waiters and room. Safe to call at any time on the loop thread; free when nobody
 * waits (pool_serve_waiting does the work). */
void pool_serve_waiting(pool_t *pool);
static inline void pool_kick(pool_t *pool)
{
	if (!list_empty(&pool->waiting))
		pool_serve_waiting(pool);
}

/* A logged-in client C (CL_IDLE) asks for a server. With nobody waiting before it and an
 * idle server that needs no check, C gets it now (no waiting-list visit, no clock read);
 * otherwise C joins the FIFO waiting list. A replication client always waits there, for
 * a server started for it alone when its turn comes and the pool has room (an idle
 * server of the pool is closed to make it, as PgBouncer evicts one): it counts against
 * the pool's size and limits like any other. */
void pool_request(pool_t *pool, client_t *c);

/* Replication client C (CL_WAITING) has its own server ready: its wait is counted and it
 * becomes CL_ACTIVE (the caller links and starts relaying). */
void pool_replication_ready(pool_t *pool, client_t *c);

/* After a reload swapped rt->cfg and rt->auth: every pool takes its new sizes, mode and
 * limits at once; when its connection settings changed, idle servers are closed now
 * and busy ones when they are released. */
void pool_reconfigure(void);

/* The pool after PREV in creation order (the first if PREV is NULL), or NULL. */
pool_t *pool_next(const pool_t *prev);

/* Every server of P is to be replaced (its connection settings changed, or RECONNECT):
 * idle ones are closed now (WHY logged), busy ones when released. */
void pool_renew_servers(pool_t *p, const char *why);

/* PAUSE (PAUSED true): P hands out no server (clients wait), its idle and connecting
 * servers are closed now and busy ones when released. RESUME: P serves again. */
void pool_set_paused(pool_t *p, bool paused);

/* Closes every client of P (they get SQLSTATE and MSG) and every server. */
void pool_close_all(pool_t *p, const char *sqlstate, const char *msg);

/* Servers of P made before its connection settings last changed (RECONNECT, reload),
 * still open. */
int pool_old_servers(const pool_t *p);

/* Servers in any state but closing. */
int pool_server_count(const pool_t *pool);

/* A server of P closed or went idle: pools sharing its database or user that have
 * waiting clients may now proceed (max_db_connections / max_user_connections; free
 * without those limits, pool_kick_siblings does the work). */
void pool_kick_siblings(pool_t *p);
static inline void pool_kick_related(pool_t *p)
{
	if (p->max_db_connections > 0 || p->max_user_connections > 0)
		pool_kick_siblings(p);
}

/* A connection succeeded: the back-off ends, and PARAMS (its reported parameters)
 * become the pool's cached welcome values. */
void pool_connect_ok(pool_t *pool, char *const *params);

/* A connection attempt failed: waiting clients that no connecting server can serve get
 * SQLSTATE (08006, or the server's own) and MSG (what a client may be told: no host or
 * port; "" for none). */
void pool_connect_failed(pool_t *pool, const char *sqlstate, const char *msg);

/* The orderly stop begins: clients without a server are closed (57P01), and so are idle
 * and connecting servers; clients holding a server are closed when done
 * (client_shutdown_if_done). */
void pool_shutdown_begin(void);

/* Shutdown, first step: closes every client and server of every pool. */
void pool_shutdown_all(void);

/* Shutdown, last step (after the reaper freed every client and server): frees the pools. */
void pool_free_all(void);

#endif
