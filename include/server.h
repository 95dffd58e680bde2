/* A server: one connection to PostgreSQL. libpq connects it (steps on the executor), or
 * pgcoro's own login when the credential is one libpq cannot use (srvconnect.h); once
 * connected, its stream carries the relay and pgcoro's own queries (hkquery.h), and
 * libpq is needed no more (conn may be NULL: a connection made otherwise). */
#ifndef PGCORO_SERVER_H
#define PGCORO_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>
#include <sys/socket.h>

#include "executor.h"
#include "hkquery.h"
#include "list.h"
#include "prepared.h"
#include "stream.h"
#include "types.h"

struct pool_conn_params;

struct runtime;

enum server_state {
	SV_CONNECTING,   /* pool->sv_connecting: libpq connect steps */
	SV_IDLE,         /* pool->sv_idle: clean, ready for a client */
	SV_ACTIVE,       /* pool->sv_active: linked to one client, relaying */
	SV_HOUSEKEEPING, /* pool->sv_housekeeping: reset / parameter sync (hkquery.h) */
	SV_CLOSING,      /* global closing list: freed after the loop iteration */
};

/* Parameters PostgreSQL reports with ParameterStatus (GUC_REPORT), in a fixed order. */
#define SERVER_NPARAMS 13
extern const char *const server_param_names[SERVER_NPARAMS];

/* Housekeeping steps, run in this order (hkquery.h). */
enum server_hk {
	HK_CONNECT = 1 << 0,  /* the database's connect_query on a new server (errors logged) */
	HK_ROLLBACK = 1 << 1, /* end an open transaction */
	HK_RESET = 1 << 2,    /* server_reset_query */
	HK_UNSET = 1 << 3,    /* RESET ALL: another client's startup settings go */
	HK_SYNC = 1 << 4,     /* apply the linked client's startup parameters */
	HK_CHECK = 1 << 5,    /* server_check_query before handing out a long-idle server */
	HK_UNLISTEN = 1 << 6, /* UNLISTEN *: a released server that listened (listen_seen) */
	HK_TASK = 1 << 7,     /* another module's query (struct server_task), after HK_UNSET */
	HK_PROBE = 1 << 8,    /* ask what the linked client's session holds (pin.h) */
};

/* A parameterised query another module runs on an idle server, outside any session
 * (pool_run_task): auth_query. Owned by that module, which must outlive the run or cancel
 * it (pool_cancel_task). Exactly one of done and failed is called, once, on the loop
 * thread; neither may touch the server. */
struct server_task {
	struct list node;          /* in its pool's tasks while it waits for a server */
	server_t *server;          /* while it runs */
	const char *sql;           /* with NVALUES text parameters VALUES ($1...) */
	int nvalues;
	const char *const *values;
	void *arg;
	/* a DataRow of the answer (hkquery_ops.datarow) */
	void (*row)(void *arg, const uint8_t *body, uint32_t blen);
	/* the answer ended with its ReadyForQuery; Q->failed: the server's error in Q */
	void (*done)(void *arg, const struct hkquery *q);
	/* no answer: no server could be had (SQLSTATE, MSG as pool_connect_failed's), or it
	 * closed first (08006, the reason) */
	void (*failed)(void *arg, const char *sqlstate, const char *msg);
};

struct server {
	/* What the relay and a hand-out touch on every transaction comes first, in the first
	 * two cache lines: after the kernel's TCP work the caches are cold, and each line
	 * touched costs more than the instructions that use it. */
	struct list node;            /* in the list of its state */
	enum server_state state;
	uint8_t tx_status;           /* from the last ReadyForQuery: 'I', 'T' or 'E' */
	bool mid_ext;                /* extended-protocol messages sent since the last Sync */
	bool prep_on;                /* this hand-out tracks prepared statements (prepared.h) */
	bool fresh;                  /* just connected or checked: no check before next use */
	bool cancel_running;         /* a cancel runs (the cancel fields below) */
	bool release_pending;        /* released while a cancel ran: finish when it ends */
	bool cancel_again;           /* a cancel asked for while one ran: sent after it */
	bool fatal_passed;           /* the relay passed the server's FATAL to its client: when
	                             * the server closes, the client needs no second error */
	bool listen_seen;            /* it ran a LISTEN or sent a notification (transaction/
	                             * statement mode): UNLISTEN * before idle */
	bool listen_track;           /* its client's LISTEN/UNLISTEN are outstanding or not yet
	                             * committed: the relay shows listenstmt.c tags, errors and
	                             * ReadyForQuery (listenstmt.h) */
	uint8_t replication;         /* enum proto_replication: made for one replication client
	                             * (linked from its start), never idle, never housekeeping,
	                             * closed when that client leaves */
	pool_t *pool;
	client_t *client;            /* linked client (SV_ACTIVE, or SV_HOUSEKEEPING for a sync) */
	uint32_t msg_pending;        /* bytes of the current server message still to pass */
	int out_syncs;               /* Query/Sync/FunctionCall sent, ReadyForQuery not yet seen */
	/* COPY FROM STDIN (relay.c): PostgreSQL ignores Sync and Flush inside it, so a Sync
	 * the client sends there is counted only once the COPY's end says whether it was
	 * inside: never fewer answers expected than will come (the server would change hands
	 * with answers still due), at worst more (then the server stays this client's and is
	 * closed when it leaves). */
	bool copy_open;              /* the server's CopyInResponse passed, not yet its
	                             * CommandComplete / ErrorResponse */
	bool copy_in;                /* the client is inside that COPY: its Syncs are tentative */
	bool copy_unsure;            /* the count cannot be known (tracked, an error ended the
	                             * COPY after tentative Syncs): never released, closed */
	bool sync_chain;             /* only Syncs (Flush, CopyData) since the last Query/Execute */
	uint16_t syncs_after;        /* those Syncs */
	uint16_t copy_ends_unmatched; /* CopyDone/CopyFail sent outside a known COPY */
	uint32_t copy_syncs;         /* tentative Syncs: ignored if the COPY succeeds */
	uint32_t closes_pending;     /* untracked: Close messages sent, CloseComplete not seen */
	unsigned conn_gen;           /* the pool's conn_gen when it was made */
	int lb_host;                 /* the pool's choice in its host list (pool_conn_params) */
	uint64_t query_start_us;     /* clock_now_us() when the request in flight began */
	uint64_t xact_start_us;      /* clock_now_us() when the transaction began */
	double idle_since;           /* rt_now() when it last became idle */
	double connected_at;         /* rt_now() when the connection was made (its start, until) */
	uint64_t synced_sig;         /* client_sync_key of the last client found in sync, */
	uint32_t synced_gen;         /* at this params_gen: the same client again needs no check */
	uint32_t params_gen;         /* bumped whenever a reported value changes */
	uint64_t id;

	PGconn *conn;                /* libpq's connection, if libpq made it: its connect steps,
	                             * then only its cancel and PQfinish */
	struct stream st;            /* every byte once connected: the relay, housekeeping */
	struct event pq_ev;          /* libpq's connect steps wait on its socket */
	struct event timer;          /* connect timeout */
	struct exec_job job;         /* a connect step running on the executor */
	struct pool_conn_params *conn_params; /* what the first connect step connects with */
	struct srvconnect *login;    /* pgcoro's own login in progress (srvconnect.h), instead
	                             * of libpq's steps */
	PostgresPollingStatusType poll;
	bool job_running;

	/* cancel (on the executor); the server never changes hands meanwhile */
	uint32_t backend_pid;        /* BackendKeyData's process ID (0: not known) */
	uint32_t cancel_key;         /* and its secret key, when cancel_key_known */
	bool cancel_key_known;       /* else a libpq server's cancel is libpq's (PQgetCancel) */
	int cancel_timeout_ms;       /* each step of pgcoro's own CancelRequest */
	socklen_t peer_len;          /* 0: not known */
	struct sockaddr_storage peer; /* where the connection goes (a CancelRequest too) */
	struct exec_job cancel_job;
	PGcancel *cancel;            /* libpq's request in flight, or NULL for pgcoro's own */
	bool cancel_ok;
	char cancel_err[256];

	/* relay tracking (server side of the session) */
	struct prep_ring pring;      /* the answers it owes, while tracked (prepared.c) */
	struct prep_server *prep;    /* its statements and build buffers, once tracked */

	/* housekeeping */
	unsigned hk_plan;            /* enum server_hk bits still to run */
	unsigned hk_running;         /* the step in flight */
	struct hkquery hk;           /* its answer, as read so far */
	struct server_task *task;    /* HK_TASK's, until it is told (NULL: cancelled) */

	char *params[SERVER_NPARAMS]; /* current reported values (NULL = not reported) */
	uint64_t applied_sig;        /* param_sig of the client whose other parameters it has */
	bool applied_other;          /* it has startup settings of that client that only a
	                             * RESET ALL undoes (not tracked reported parameters) */
	bool pinned;                 /* its client is pinned (pin.h): server_reset_query when it
	                             * leaves */
	char *close_reason;
};

void server_init(struct runtime *rt);

/* Starts a new connection for POOL (SV_CONNECTING). False on allocation failure. */
bool server_connect(pool_t *pool) __attribute__((warn_unused_result));

/* Starts the server of replication client C (CL_WAITING in POOL, its replication field
 * set): a connection of its own, linked to C from now on, made with POOL's parameters plus
 * libpq's replication keyword and C's startup parameters (application_name, the rest as
 * "-c" settings in options), as PostgreSQL would have got them. When it is ready C becomes
 * active (client_on_server_ready); when it fails C gets the reason. False on allocation
 * failure (nothing changed). */
bool server_connect_replication(pool_t *pool, client_t *c) __attribute__((warn_unused_result));

/* A connection to PostgreSQL made without libpq, positioned right after a ReadyForQuery
 * outside any transaction: a login of pgcoro's own (srvlogin.h), a socket an online
 * restart passed on, a fuzzer's socketpair. */
struct server_conn {
	int fd;                    /* connected, non-blocking: closed with the server */
	SSL *ssl;                  /* the TLS handle over FD, or NULL: freed with the server */
	uint32_t backend_pid;      /* its BackendKeyData, when have_key */
	uint32_t cancel_key;
	bool have_key;             /* then a cancel is pgcoro's own CancelRequest */
	int nparams;               /* the ParameterStatus received, in order (the last wins); */
	const char *const *names;  /* names NULL: POOL's reported parameters */
	const char *const *values;
};

/* A server of POOL over C: SV_IDLE at once, its reported parameters and BackendKeyData
 * C's, housekeeping and cancels as on any server (no connect bookkeeping: no
 * connect_query, no connect metrics). NULL if out of memory: then C's socket and handle
 * are still the caller's. */
server_t *server_adopt_conn(pool_t *pool, const struct server_conn *c)
	__attribute__((warn_unused_result));

/* For tests (the relay's fuzzers): server_adopt_conn of FD alone, a socketpair whose peer
 * plays a PostgreSQL backend after its login (POOL's reported parameters, no key: a
 * cancel is not sent). */
server_t *server_adopt(pool_t *pool, int fd) __attribute__((warn_unused_result));

/* The one state transition: moves S between its pool's lists and logs it. */
void server_set_state(server_t *s, enum server_state state);
const char *server_state_name(enum server_state state);

/* True if S (SV_IDLE) has been idle longer than server_check_delay and must be checked
 * before use; then the check is started (S leaves the idle list, comes back when done). */
bool server_check_if_stale(server_t *s);

/* Closes idle servers past server_lifetime or server_idle_timeout (above min_pool_size);
 * none while SUSPENDed. */
void server_expire_idle(pool_t *pool, double now);

/* Links S (SV_IDLE) to C and prepares it (parameter sync). When the server is ready,
 * client_on_server_ready(C) runs; on failure the client is disconnected. */
void server_assign(server_t *s, client_t *c);

/* Pinning (pin.h): asks S, linked to its client at a release point, what the client's
 * session holds (HK_PROBE); pin_probe_row / pin_probe_done get the answer, then the
 * client continues (client_on_server_ready). */
void server_probe(server_t *s);

/* Bit i set: server_param_names[i] is restored per client by the parameter sync (0 in
 * session mode). */
uint32_t server_tracked_mask(const pool_t *p);

/* Runs T on S (SV_IDLE, unlinked): RESET ALL and DISCARD TEMP first, so that no setting
 * (search_path) nor temporary table a session left there bears on T's query, then T's
 * query; S is idle again after (or
 * closed, T failed, if it breaks). For pool.c, which hands T an idle server. */
void server_run_task(server_t *s, struct server_task *t);

/* The linked client is gone: the server is cleaned (rollback, reset) and returns to idle,
 * or is closed if its state is not known clean. */
void server_release(server_t *s);

/* The one funnel for closing a server: logs "closing because: REASON (age=Ns)" (PgBouncer's
 * words), fails its client, marks it closing.
 * The memory is reclaimed later (never inside the caller's callback). */
void server_disconnect(server_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What a client waiting for a server may be told of a failed connect, from MSG, libpq's
 * error message made with PQERRORS_VERBOSE: never where the connection went (host name,
 * address, port, socket path), which goes to the log only. Reads the last attempt's
 * "connection to server ... failed: WHY" line: when WHY is the server's ErrorResponse
 * ("FATAL:  28P01: password authentication failed ..."), SQLSTATE gets its code and TOLD its
 * message; otherwise SQLSTATE is 08006 and TOLD libpq's reason ("Connection refused",
 * "timeout expired") unless it quotes a name (a host, a file), and then "". TOLD is
 * NUL-terminated, cut to LEN. */
void server_connect_error(const char *msg, char sqlstate[6], char *told, size_t len);

/* Cancels the query running on S (for its linked client), on the executor: with libpq's
 * PQcancel for a server libpq made, else with pgcoro's own CancelRequest when S's
 * BackendKeyData is known (else only a warning is logged). Until that ends, S is not
 * handed to another client. */
void server_cancel(server_t *s);

/* Where S is connected: the host (or unix socket directory) into HOST (LEN bytes, empty
 * when not known); returns the port (0 when not known). */
int server_peer(const server_t *s, char *host, size_t len);

/* The index of NAME (any case) in server_param_names, or -1. */
int server_param_index(const char *name);

/* Records a ParameterStatus the relay passed to the client (S's table, and the client's
 * session value when tracked). */
void server_param_seen(server_t *s, const char *name, const char *value);

/* Frees servers marked closing whose executor job has ended (all of them if FORCE). */
void server_reap(bool force);

#endif
