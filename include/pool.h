/* Pools: one per (database, user). A pool holds the lists its clients and servers live
 * on, one list per state; client_set_state/server_set_state move objects between them.
 * The pool decides which waiting client gets which server and when to connect more. */
#ifndef PGCORO_POOL_H
#define PGCORO_POOL_H

#include <stdbool.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "list.h"
#include "server.h"
#include "types.h"

struct runtime;
struct cfg_db;

struct pool {
	struct list node;           /* in the global pool list */
	char *dbname;               /* the name clients ask for */
	char *user;
	const struct cfg_db *db;
	const char **kw, **val;     /* NULL-terminated libpq parameters for new servers */
	int pool_size;
	int pool_mode;
	int min_pool_size;          /* kept open even when unused (capped at pool_size) */
	int reserve_pool_size;      /* extra servers once a client waited reserve_pool_timeout */
	int max_db_connections;     /* servers of this database across users; 0 = unlimited */
	int max_user_connections;   /* servers of this user across databases; 0 = unlimited */

	/* The reported parameters of a fresh server of this pool (its startup defaults), so
	 * transaction-mode logins are answered without taking a server. */
	char *params[SERVER_NPARAMS];
	bool params_known;

	double retry_delay;         /* back-off after failed connects; 0 = none */
	double retry_at;            /* rt_now() before which no connect starts */
	struct event retry_ev;      /* kicks the pool when the back-off ends */

	struct list_head waiting;   /* CL_WAITING, FIFO */
	struct list_head active;    /* CL_ACTIVE: linked to a server */
	struct list_head idle;      /* CL_IDLE: logged in, no server */

	struct list_head sv_connecting; /* SV_CONNECTING */
	struct list_head sv_idle;       /* SV_IDLE */
	struct list_head sv_active;     /* SV_ACTIVE */
	struct list_head sv_housekeeping; /* SV_HOUSEKEEPING */
};

void pool_init(struct runtime *rt);

/* The pool for (DBNAME, USER), created on first use from DB. NULL only on allocation failure. */
pool_t *pool_get(const char *dbname, const char *user, const struct cfg_db *db);

/* Hands idle servers to waiting clients (FIFO) and starts connections while the pool
 * has waiters and room. Safe to call at any time on the loop thread. */
void pool_kick(pool_t *pool);

/* Servers in any state but closing. */
int pool_server_count(const pool_t *pool);

/* A server of P closed or went idle: pools sharing its database or user that have
 * waiting clients may now proceed (max_db_connections / max_user_connections). */
void pool_kick_related(pool_t *p);

/* A connection succeeded: the back-off ends, and PARAMS (its reported parameters)
 * become the pool's cached welcome values. */
void pool_connect_ok(pool_t *pool, char *const *params);

/* A connection attempt failed with MSG: waiting clients that no connecting server can
 * serve get 08006 with MSG. */
void pool_connect_failed(pool_t *pool, const char *msg);

/* Shutdown, first step: closes every client and server of every pool. */
void pool_shutdown_all(void);

/* Shutdown, last step (after the reaper freed every client and server): frees the pools. */
void pool_free_all(void);

#endif
