/* Pools: one per (database, user). A pool holds the lists its clients and servers live
 * on, one list per state; client_set_state/server_set_state move objects between them.
 * The pool decides which waiting client gets which server and when to connect more. */
#ifndef PGCORO_POOL_H
#define PGCORO_POOL_H

#include <stdbool.h>

#include <event2/event.h>

#include "hash.h"
#include "list.h"
#include "metrics.h"
#include "proto.h"
#include "server.h"
#include "stats.h"
#include "types.h"

struct runtime;
struct cfg_db;
struct notify_conn;

/* The reported parameters of a fresh server of a pool (its startup defaults), so
 * transaction-mode logins are answered without taking a server. */
struct pool_welcome {
	char *params[SERVER_NPARAMS];
	/* The ParameterStatus messages of params, built once: message i is
	 * msgs.data[at[i], at[i + 1]) (empty when not reported). */
	struct pbuf msgs;
	uint32_t at[SERVER_NPARAMS + 1];
};

/* The last failed connect of a pool backing off: its SQLSTATE and what a client may be
 * told of it (pool_request's "server login has been failing"). */
struct pool_failure {
	char sqlstate[6];
	char msg[];
};

/* What only a pool with traffic needs, made when it first has some (pool_traffic): at its
 * first server connection (a pool with a server has one), or the first time /metrics
 * counts something of it. */
struct pool_traffic {
	struct stats stats;           /* traffic counters (relay, hand-outs): pool_stats */
	struct pool_welcome welcome;  /* filled at each server connection (params_known) */
	struct stats_period period;   /* SHOW STATS avg_* (stats.c) */
	struct metrics_pool metrics;  /* histograms and error/timeout counters (/metrics) */
};

/* A pool that never had traffic is this struct and its two names in one allocation
 * (under 400 bytes): its libpq parameters exist while it is used, the rest once it has
 * traffic (pool_traffic). */
struct pool {
	struct list node;           /* in the list of every pool, creation order (pool_next) */
	struct list use_node;       /* in pool.c's list of pools in use or of unused ones */
	struct hash_node hnode;     /* in pool.c's table, by (dbname, user) */
	const char *user;           /* stored after dbname */
	const char **kw, **val;     /* NULL-terminated libpq parameters for new servers; made
	                             * while the pool is used, NULL while it is not */
	unsigned conn_gen;          /* bumped when kw/val change (reload): servers made with an
	                             * older one are closed instead of going idle */
	const char *renew_why;      /* static: why conn_gen was last bumped (their close reason) */
	unsigned tls_gen;           /* the config's server_tls_gen when kw/val were made */
	int refs;                   /* clients and servers (closing ones too) pointing at it */
	int pool_size;
	int pool_mode;
	int pin_mode;               /* enum pin_mode in force: PIN_OFF in session mode (pin.h) */
	int cl_pinned;              /* its clients pinned to their servers (pin.h) */
	int min_pool_size;          /* servers kept open while it has a client, or always when
	                             * forced (capped at pool_size) */
	int reserve_pool_size;      /* extra servers once a client waited reserve_pool_timeout */
	int max_db_connections;     /* servers of this database across users; 0 = unlimited */
	int max_user_connections;   /* servers of this user across databases; 0 = unlimited */
	int max_db_client_connections;   /* clients of this database; 0 = unlimited */
	int lb_hosts;               /* hosts in the host list pgcoro chooses from
	                             * (load_balance_hosts); 0 = none: libpq tries them in order */
	unsigned lb_next;           /* round-robin: the host the next connection starts at;
	                             * disable: the one every connection goes to (sticky) */
	bool lb_sticky;             /* load_balance_hosts=disable: one host per connection,
	                             * lb_next, the next one only after a failure there */
	bool lb_proven;             /* sticky: a connection to lb_next was made since it became
	                             * the one; until then one connection at a time tries it */
	int cl_active;              /* how many of clients are CL_ACTIVE */
	uint32_t connect_failures;  /* server connections that could not be made (/metrics) */
	uint32_t early_logins;      /* logins before it had traffic: moved into its counters
	                             * when it gets them (pool_traffic_new) */
	bool paused;                /* PAUSE (pool_set_paused): no hand-outs, servers closed */
	bool params_known;          /* traffic->welcome holds a fresh server's parameters */
	bool auto_db;               /* its database is the "*" entry's (autodb_idle_timeout) */
	bool gone;                  /* its database is no longer configured: freed once unused */
	bool forced;                /* user is its database's forced user= (every client of the
	                             * database shares it): min_pool_size kept with no client */
	bool mixed_users;           /* it has been forced: its clients' users may differ from
	                             * user (counted one by one, pool_user_clients) */
	uint8_t use_list;           /* which of pool.c's lists use_node is on */
	uint8_t auth_pwenc;         /* as an auth_user's pool: its server's password_encryption
	                             * (authquery.c's, 0 until read) */
	uint8_t failed_in_row;      /* connections failed since the last one made: the
	                             * back-off is 50 ms doubling, capped at server_login_retry */
	/* timeouts in force for this pool's clients and servers: the [users] entry's, the
	 * [databases] entry's, else the global ones (seconds; 0 = none) */
	double query_timeout;
	double query_wait_timeout;
	double idle_transaction_timeout;
	double client_idle_timeout;
	double transaction_timeout;
	double server_lifetime;
	char *connect_query;        /* run on each new server before use; NULL = none */
	/* the part every transaction touches, together after the settings above: */
	struct pool_traffic *traffic; /* once it had traffic (pool_traffic): always once a
	                               * server of it connected */
	struct list_head waiting;   /* CL_WAITING, FIFO */
	int repl_waiting;           /* replication clients among them (client_set_state) */
	int repl_connecting;        /* replication servers in sv_connecting (server_set_state) */
	struct list_head tasks;     /* struct server_task waiting for an idle server, FIFO:
	                             * served before the waiting clients (pool_run_task) */
	struct list_head clients;   /* CL_ACTIVE and CL_IDLE, one list: a hand-out and a
	                             * release change a client's state, not its list */

	struct list_head sv_connecting; /* SV_CONNECTING */
	struct list_head sv_idle;       /* SV_IDLE */
	struct list_head sv_active;     /* SV_ACTIVE */
	struct list_head sv_housekeeping; /* SV_HOUSEKEEPING */

	double retry_at;            /* rt_now() before which no connect starts */
	struct event *retry_ev;     /* kicks waiting clients when the back-off ends; made
	                             * when one waits for it, freed when the pool is unused */
	struct pool_failure *failure; /* the last failed connect, for clients coming during
	                               * the back-off; only while one runs and P is used */
	double unused_since;        /* rt_now() when it was last used: left unused, or its
	                             * last activity (last_active) if that was earlier */
	double last_active;         /* rt_now() when a server of it last went idle or a
	                             * client of it left (0: never) */

	struct notify_conn *notify; /* LISTEN connection and channels (notify.c), once used */
	char dbname[];              /* the name clients ask for, then user's bytes */
};

void pool_init(struct runtime *rt);

/* Clients of P linked to a server (CL_ACTIVE), and logged in without one (CL_IDLE). */
static inline int pool_active_clients(const pool_t *p) { return p->cl_active; }
static inline int pool_idle_clients(const pool_t *p) { return p->clients.count - p->cl_active; }

/* The libpq parameters of a new server connection, a copy in one block (free() it):
 * libpq copies them at PQconnectStartParams, and the pool's own may change on reload. */
struct pool_conn_params {
	const char **kw, **val; /* NULL-terminated, parallel */
	int host;               /* pool_conn_params' choice in the host list, or -1 */
	const char *database;   /* the pool's [databases] name (whose auth_query secrets its
	                         * server logins use): the pool's string, valid while it is */
};

/* The parameters for P's next server connection: P's own, with the host list rotated to
 * start at the next host when its database balances hosts round-robin (each connection
 * then starts one further, and libpq still tries the others after it), or cut to its one
 * sticky host with load_balance_hosts=disable (as PgBouncer: each connection tries one
 * host; a failure there moves the next ones on, pool_host_result). HOST is the index of
 * that host (the first one tried), -1 when pgcoro does not choose. NULL when out of
 * memory. */
struct pool_conn_params *pool_conn_params(pool_t *p);

/* A server connection of P made with pool_conn_params' HOST was made (OK) or could not
 * be: with load_balance_hosts=disable a failure on the sticky host moves P's next
 * connections to the following host of the list, a success keeps them there. */
void pool_host_result(pool_t *p, int host, bool ok);

/* Whether one more client of P, logged in as USER, fits max_db_client_connections (the
 * clients of every pool of its database) and USER's max_user_client_connections (its
 * clients over every pool, pool_user_clients): NULL if it does, else the name of the
 * limit that is full. */
const char *pool_client_limit(const pool_t *p, const char *user);

/* The pool of client USER for DBNAME, created on first use from DB (the entry cfg_find_db
 * gives for DBNAME), found by hash: the pool of (DBNAME, DB's forced user=) when DB has
 * one, whoever the client is (as PgBouncer: its pool_size bounds them all), else of
 * (DBNAME, USER). NULL only on allocation failure. The pool is not kept for the caller:
 * pool_ref it when a client points at it. */
pool_t *pool_get(const char *dbname, const char *user, const struct cfg_db *db);

/* Clients logged in as USER (waiting or not), over every pool: for
 * max_user_client_connections and SHOW USERS (a forced user's pool has clients of many). */
int pool_user_clients(const char *user);

/* A client or a server now points at P (c->pool, s->pool): P is not freed until the
 * matching pool_unref. */
void pool_ref(pool_t *p);

/* A client or a server that pointed at P is being freed. P itself is never freed here:
 * with no reference left it is unused, and the once-a-second tick frees it when
 * pool_idle_timeout, autodb_idle_timeout (a "*" database's pool) or a reload that
 * removed its database says so. */
void pool_unref(pool_t *p);

/* Makes P's traffic part (pool_traffic does, the first time): zeroed, freed with P.
 * NULL without memory. */
struct pool_traffic *pool_traffic_new(pool_t *p);

/* P's traffic part, made on first use; NULL without memory (what was to be kept or counted
 * there is then lost). */
static inline struct pool_traffic *pool_traffic(pool_t *p)
{
	return p->traffic ? p->traffic : pool_traffic_new(p);
}

/* P's histograms and counters for /metrics (made on first use; NULL without memory). */
static inline struct metrics_pool *pool_metrics(pool_t *p)
{
	struct pool_traffic *t = pool_traffic(p);
	return t ? &t->metrics : NULL;
}

/* P's traffic counters (zero before it had traffic). While P has a server,
 * p->traffic->stats is the same, for the relay to bump. */
static inline const struct stats *pool_stats(const pool_t *p)
{
	static const struct stats none;
	return p->traffic ? &p->traffic->stats : &none;
}

/* The reported parameter I (server_param_names) of a fresh server of P, or NULL. */
static inline const char *pool_param(const pool_t *p, int i)
{
	return p->traffic ? p->traffic->welcome.params[i] : NULL;
}

/* True when no pool before P (creation order) has P's database: to list each database
 * of the pools once. */
bool pool_first_of_db(const pool_t *p);

/* Hands idle servers to waiting clients (FIFO) and starts connections while the pool
 * has waiters and room. Safe to call at any time on the loop thread; free when nobody
 * waits (pool_serve_waiting does the work). */
void pool_serve_waiting(pool_t *pool);
static inline void pool_kick(pool_t *pool)
{
	if (!list_empty(&pool->waiting) || !list_empty(&pool->tasks))
		pool_serve_waiting(pool);
}

/* Runs T (server.h) on an idle server of P as soon as there is one, before any waiting
 * client, connecting one if need be as for a waiting client; without any, while P backs
 * off after failed connects, T fails at once with the last failure. The caller keeps a
 * reference on P (pool_ref) until T is told or cancelled. */
void pool_run_task(pool_t *p, struct server_task *t);

/* T (given to pool_run_task, not told yet) is not wanted any more: it waits no longer, or
 * its answer is ignored (the server still returns to idle). T may be freed after. */
void pool_cancel_task(pool_t *p, struct server_task *t);

/* A logged-in client C (CL_IDLE) asks for a server. With nobody waiting before it and an
 * idle server that needs no check, C gets it now (no waiting-list visit, no clock read);
 * otherwise C joins the FIFO waiting list, unless P has no server and is backing off
 * after failed connects: then C gets the last failure's error at once (PgBouncer's
 * "server login has been failing") and is closed. A replication client always waits
 * there, for a server started for it alone when its turn comes and the pool has room (an
 * idle server of the pool is closed to make it, as PgBouncer evicts one): it counts
 * against the pool's size and limits like any other. */
void pool_request(pool_t *pool, client_t *c);

/* Replication client C (CL_WAITING) has its own server ready: its wait is counted and it
 * becomes CL_ACTIVE (the caller links and starts relaying). */
void pool_replication_ready(pool_t *pool, client_t *c);

/* After a reload swapped rt->cfg and rt->auth: every pool takes its new sizes, mode and
 * limits at once; when its connection settings changed, idle servers are closed now
 * and busy ones when they are released. */
void pool_reconfigure(void);

/* USER's server login secret (srvconnect_secret) changed (a client passed PAM or LDAP with
 * a new password): the pools in use whose servers log in as USER take it for their next
 * server logins (servers already logged in stay). */
void pool_secret_changed(const char *user);

/* The pool after PREV in creation order (the first if PREV is NULL), or NULL. */
pool_t *pool_next(const pool_t *prev);

/* Every server of P is to be replaced (its connection settings changed, or RECONNECT):
 * idle ones are closed now and busy ones when released, each logging WHY (a static
 * string, kept); a back-off after failed connects ends (the next attempt is made with the
 * new settings). */
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
 * become the pool's cached welcome values. False when out of memory for the pool's
 * traffic part: the server must be closed (a pool with a server has that part). */
bool pool_connect_ok(pool_t *pool, char *const *params) __attribute__((warn_unused_result));

/* A connection attempt failed with SQLSTATE (08006, or the server's own when it refused
 * the login) and MSG (what a client may be told: no host or port; "" for none). When no
 * other server of P may serve them, the waiting clients no connecting server can serve
 * get that error and are closed: at once when the server refused the login (but for
 * 57P03, it is starting or stopping), else those that have waited server_login_retry;
 * the others wait for the next attempt. */
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
