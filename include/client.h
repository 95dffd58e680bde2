/* A client session: a coroutine written as a state machine. It awaits its startup packet
 * and authentication, then a server from its pool, then relays until it leaves. */
#ifndef PGCORO_CLIENT_H
#define PGCORO_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>

#include "list.h"
#include "proto.h"
#include "stream.h"
#include "types.h"

struct runtime;
struct console_session;
struct login;
struct prep_client;
struct notify_client;
struct listenstmt_client;

enum client_state {
	CL_LOGIN,   /* global login list: startup packet, authentication */
	CL_WAITING, /* pool->waiting: awaiting a server (FIFO) */
	CL_ACTIVE,  /* pool->clients: linked to a server, relaying */
	CL_IDLE,    /* pool->clients: logged in, no server held (transaction mode) */
	CL_CLOSING, /* global closing list: output draining, then freed */
	CL_CONSOLE, /* global console list: logged in to the admin console */
};

/* What the client's one timer is counting down. */
enum client_timer {
	CT_NONE,
	CT_IDLE,      /* client_idle_timeout: nothing outstanding */
	CT_IDLE_XACT, /* idle_transaction_timeout: idle inside a transaction */
	CT_QUERY,     /* query_timeout: a request outstanding (transaction_timeout has its
	               * own timer, xact_timer, running alongside) */
	CT_DRAIN,     /* closing: time to read the last words */
};

#define CLIENT_MAX_PARAMS 80 /* startup parameters plus "options" settings: more get 08P01 */

/* A startup parameter (or an "options" -c setting). */
struct client_param {
	const char *name;
	const char *value;
	int report; /* index in server_param_names, or -1 */
};

struct client {
	/* What the relay and a hand-out touch on every transaction comes first, in the first
	 * cache line (see struct server). */
	struct list node;           /* in the list of its state */
	enum client_state state;
	enum client_timer timer_kind;
	pool_t *pool;               /* set once logged in */
	server_t *server;           /* linked server */
	struct event *timer;        /* one timer, created when first armed; timer_kind says
	                             * for what (NULL: none, as for an idle client by default) */
	uint32_t msg_pending;       /* relay: bytes of the current client message still to pass */
	bool welcomed;              /* ParameterStatus/BackendKeyData/ReadyForQuery sent */
	bool xact_armed;            /* xact_timer counts down its transaction */
	bool wait_notified;         /* CL_WAITING: told it is queued (query_wait_notify) */
	uint8_t pins;               /* PIN_REASONS bits (pin.h): session state that keeps its
	                             * server across transactions */
	uint8_t pin_check;          /* sessstate.h bits its statements may have had since its
	                             * server was last asked (pin.h) */
	uint8_t pin_sticky;         /* pins that hold until it leaves (LOAD, a setting that
	                             * cannot be carried) */
	struct pin_stmts *pin_stmts; /* its prepared statements that may make state (pin.h) */
	uint8_t replication;        /* enum proto_replication (never INVALID): a replication
	                             * connection gets a server of its own, made for it with
	                             * its startup parameters, closed when it leaves, and has
	                             * session semantics whatever the pool mode */
	struct prep_client *prep;   /* its named prepared statements (transaction mode), once
	                             * it has one */
	struct notify_client *notify; /* its LISTEN channels (transaction mode), once it has one */
	struct listenstmt_client *listenstmt; /* its statements that run LISTEN/UNLISTEN on
	                             * servers (transaction mode), once it has one */
	uint64_t param_sig;         /* digest of the startup parameters applied by parameter sync */
	uint64_t session_sig;       /* digest of session_params (0: none) */
	uint64_t settings_sig;      /* settings->sig (0: none) */
	struct stream st;           /* the client's socket */
	uint64_t id;
	uint8_t peer_ip[16];        /* the peer's address (formatted only for a log line) */
	uint16_t peer_port;
	uint8_t peer_family;        /* AF_INET, AF_INET6 or AF_UNIX */

	/* login */
	struct login *login;        /* the login dialog's state (login.c), until its exit */
	struct client_param *params; /* nparams startup parameters to apply on the server; one
	                             * block that also holds user, database and every string
	                             * they point to (the packet is freed once parsed) */
	const char *user;           /* into params' block; NULL before the startup packet */
	const char *database;
	int nparams;
	bool too_many;              /* over max_client_conn: answered 53300 after startup */
	double born;                /* rt_now() when it was accepted (the age in log lines) */
	double since;               /* rt_now() when it was accepted (CL_LOGIN: the pool tick
	                             * enforces client_login_timeout) or started waiting for a
	                             * server (CL_WAITING: query_wait_timeout) */

	bool drained;               /* closing: output flushed or peer gone */
	uint32_t cancel_pid, cancel_key;
	bool cancel_stamped;        /* the key carries peer_id and TTL bits (peers.h) */
	client_t *cancel_next;      /* chain in the cancel-key table */
	char **session_params;      /* transaction mode: the values its session set of the tracked
	                             * reported parameters (indexed like server_param_names, NULL:
	                             * not set), restored on every server it gets; NULL until one */
	struct pin_probe *probe;    /* its server's answer to pin.c's question, while read */
	struct pin_settings *settings; /* transaction mode: the settings its session SET (pin.h),
	                             * set on every server it gets; NULL: none */
	struct console_session *console; /* admin console clients only */
	struct event *xact_timer;   /* transaction_timeout, created when first armed */
};

void client_init(struct runtime *rt);

/* "none", "logical" or "physical": KIND (enum proto_replication) as PgBouncer's SHOW
 * CLIENTS and SHOW SERVERS name it in their replication column. */
static inline const char *client_replication_name(int kind)
{
	return kind == PROTO_REPL_LOGICAL ? "logical" : kind == PROTO_REPL_PHYSICAL ? "physical"
										       : "none";
}

/* Takes ownership of the accepted socket FD. */
void client_accept(int fd, const struct sockaddr *sa, int salen);

/* C's peer as "host:port" or "unix", for a log line: a static buffer, valid until the
 * next call. */
const char *client_peer(const client_t *c);

/* The one state transition: moves C between lists (active and idle share one) and logs
 * it. */
void client_set_state(client_t *c, enum client_state state);
const char *client_state_name(enum client_state state);

/* The one funnel for ending a session: if SQLSTATE is non-NULL the client gets a FATAL
 * ErrorResponse with the formatted message (when at a message boundary); the reason is
 * logged in PgBouncer's words, "closing because: REASON (age=Ns)"; the server is
 * released; the client drains its output and is freed later. */
void client_disconnect(client_t *c, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* disable_pqexec: C sent a simple Query (not passed on): C is closed with PgBouncer's
 * FATAL 08P01 "PQexec disallowed" and its log line. */
void client_refuse_query(client_t *c);

/* client_disconnect with a hint (the ErrorResponse's H field). */
void client_disconnect_hint(client_t *c, const char *sqlstate, const char *hint,
			    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Sends the client an error it must see as coming from a server: SQLSTATE, MESSAGE, and
 * DETAIL and HINT when not NULL; then as client_disconnect. */
void client_disconnect_error(client_t *c, const char *sqlstate, const char *detail,
			     const char *hint, const char *message);

/* Sends ParameterStatus for PARAMS (indexed like server_param_names; NULL: C's pool's
 * cached values with C's own startup values over them), BackendKeyData and
 * ReadyForQuery. */
void client_send_welcome(client_t *c, char *const *params);

/* Frames the message at the head of C's input (proto_next): PROTO_OK when it is all
 * there, NEED_MORE until then (M->len is 0 while not even its header is), BAD for an
 * invalid length (over MAX or under 4), in which case C is closed with 08P01. A caller
 * that waits for a whole message bounds it below STREAM_READ_HIGH (reading pauses there). */
enum proto_frame client_next(client_t *c, uint32_t max, struct proto_msg *m)
	__attribute__((warn_unused_result));

/* Takes the whole message M, framed by client_next at the head of C's input, off it. */
static inline void client_take(client_t *c, const struct proto_msg *m)
{
	stream_take(&c->st, m->data, m->size);
}

/* The exit of a successful login (login.c, after AuthenticationOk): the console, or C's
 * pool, the welcome and a server; then input already there (sent behind the login's last
 * message) is handled as the read callback would, for every destination. May disconnect
 * C. */
void client_logged_in(client_t *c);

/* A CancelRequest: cancels the query of the client holding those keys, if it has one
 * running on a server. The requester never gets an answer (as with PostgreSQL). */
void client_cancel_request(uint32_t pid, uint32_t key);

/* The client with pgcoro id ID (SHOW CLIENTS' id), or NULL. */
client_t *client_find(uint64_t id);

/* The linked server is prepared: send the welcome (first time) and start relaying. */
void client_on_server_ready(client_t *c);

/* How long a client of P may wait for a server: the smaller of its query_wait_timeout
 * and query_timeout that are set (0: no limit). */
double client_wait_limit(const pool_t *p);

/* C (CL_WAITING) has waited client_wait_limit: it gets 57014 naming the timeout that
 * expired and is closed. Called by the pool's tick, which walks its FIFO waiting list
 * from the oldest. */
void client_wait_timeout(client_t *c);

/* server_fast_close: C (session mode) holds a server that is to be replaced (RECONNECT,
 * a reload) and is between transactions: C is closed (57P01 "database configuration
 * changed"), and its server with it. Else nothing. */
void client_fast_close(client_t *c);

/* C (CL_WAITING) has waited query_wait_notify: it gets PgBouncer's NOTICE that it is
 * queued, once per wait (sets wait_notified). A session-mode login waiting for its
 * server gets it before its welcome (after AuthenticationOk, where PostgreSQL's own
 * startup notices go), where PgBouncer's waits at the first query. */
void client_wait_notify(client_t *c);

/* Once a second (the pool's tick): clients still logging in after client_login_timeout
 * get 08006 and are closed. The login list is in accept order, so this looks only at
 * those that are due, and a login costs no timer. */
void client_tick(double now);

/* Transaction mode: C's session changed reported parameter I (an index in
 * server_param_names) to VALUE; it is restored on the next servers C gets. */
void client_param_changed(client_t *c, int i, const char *value);

/* What identifies the parameters C wants on a server: equal keys, equal wants. */
static inline uint64_t client_sync_key(const client_t *c)
{
	return c->param_sig ^ c->session_sig ^ c->settings_sig * 3;
}

/* What identifies the settings a sync applies to a server that only a RESET ALL undoes:
 * C's startup settings and its session's (pin.h). Never 0. */
static inline uint64_t client_other_sig(const client_t *c) { return c->param_sig ^ c->settings_sig; }

/* C (CL_IDLE) may read and handle its input again (notify.c answered its LISTEN). */
void client_resume_idle(client_t *c);

/* The relay saw the client start a message (a request to the server): query_timeout
 * counts from the first of a request, transaction_timeout from the first of a
 * transaction. */
void client_on_request(client_t *c);

/* The relay passed a ReadyForQuery to the client: what it ended stops counting. */
void client_on_ready(client_t *c);

/* In transaction and statement mode: if nothing is outstanding between C and its server,
 * gives the server back to the pool (C goes idle). In session mode, client_fast_close
 * when the server is to be replaced. Called at each ReadyForQuery. May close C. */
void client_maybe_release(client_t *c);

/* Shutting down on SIGINT (SHUTDOWN_SERVERS): C (CL_ACTIVE) is closed with 57P01 when it
 * would give its server back: nothing outstanding, its transaction ended, and not in
 * session mode (where that is when it leaves). Called at each ReadyForQuery and once
 * when the shutdown begins. */
void client_shutdown_if_done(client_t *c);

/* True if C may move to another process as it is (an online restart, takeover.h): logged
 * in, no TLS, nothing buffered either way, nothing of its session kept only in this
 * process (named prepared statements, LISTEN, replication), and either idle without a
 * server or, in session mode, holding a server with nothing outstanding. */
bool client_at_rest(client_t *c) __attribute__((warn_unused_result));

/* An online restart quiesces (HOLD true): C, idle or at rest with its session server,
 * stops reading, so its next request waits in the kernel; HOLD false reads again. */
void client_hold_input(client_t *c, bool hold);

/* A client an online restart hands over: its socket, peer, login and, in session mode,
 * the server it holds. */
struct client_adopt {
	int fd;
	const struct sockaddr *sa;  /* its peer (AF_UNIX for the unix socket) */
	const char *user, *database;
	int nparams;                /* startup parameters to apply on servers */
	const char *const *names, *const *values;
	uint32_t cancel_pid, cancel_key; /* the BackendKeyData it was given */
	server_t *server;           /* session mode: its server (SV_IDLE, adopted), or NULL */
};

/* Takes A's socket as a logged-in, welcomed client of A's pool: CL_IDLE, or CL_ACTIVE
 * linked to A's server (then SV_ACTIVE). NULL (logged; the socket still the caller's and
 * the server untouched) if the database is not configured here or out of memory. */
client_t *client_adopt(const struct client_adopt *a) __attribute__((warn_unused_result));

/* Frees closing clients whose output has drained (all of them if FORCE). */
void client_reap(bool force);

/* Number of client connections (all states but closing). */
int client_count(void);

/* The admin console's clients (CL_CONSOLE), for SHOW CLIENTS. */
const struct list_head *client_console_clients(void);
/* The clients still logging in (CL_LOGIN), for SHOW SOCKETS. */
const struct list_head *client_login_clients(void);

/* Closes every client (shutdown). */
void client_close_all(void);

/* Asks the reaper to run after the current callbacks. */
void reaper_schedule(void);

#endif
