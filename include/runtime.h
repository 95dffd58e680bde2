/* The daemon's shared context: the loop, the config in force, the auth file, the executor.
 * main owns it; modules receive a pointer at init and only read it on the loop thread. */
#ifndef PGCORO_RUNTIME_H
#define PGCORO_RUNTIME_H

#include <stdbool.h>

#include "clock.h"
#include "types.h"

struct event_base;
struct ssl_ctx_st;
struct hba;

#define PGCORO_VERSION "0.1.0"

/* How the daemon is stopping (PgBouncer 1.23's signals). */
enum rt_shutdown {
	SHUTDOWN_NONE,
	SHUTDOWN_SERVERS, /* SIGINT (PgBouncer's SHUTDOWN WAIT_FOR_SERVERS): no new connections
	                   * or hand-outs; a client without a server is closed, one holding a
	                   * server when it would give it back (its transaction's end; in session
	                   * mode, when it leaves) */
	SHUTDOWN_CLIENTS, /* SIGTERM (PgBouncer's SHUTDOWN WAIT_FOR_CLIENTS): no new
	                   * connections; the clients are served as before until they leave */
};

struct runtime {
	struct event_base *base;
	struct config *cfg;     /* swapped on reload */
	struct auth_file *auth; /* NULL when auth_file is unset */
	struct ssl_ctx_st *tls; /* the client-side SSL_CTX; NULL when client_tls_sslmode is
	                         * disable; swapped on reload (connections hold a reference) */
	struct hba *hba;        /* auth_hba_file's rules; NULL when unset */
	struct executor *exec;
	bool shutting_down;     /* no new logins, servers or hand-outs (SHUTDOWN_SERVERS, or
	                         * the final teardown) */
	enum rt_shutdown shutdown;
	bool suspended;         /* SUSPEND: no hand-outs, no accepts, until RESUME (poolctl.c) */
	bool quiescing;         /* an online restart's SHOW FDS waits (takeover.h): hand-outs
	                         * go on while suspended, and clients at rest stop reading */
	uint64_t last_id;       /* the last id given to a client or a server: one sequence, as
	                         * PgBouncer's (SHOW CLIENTS / SERVERS / SOCKETS id) */
	bool metrics_on;        /* metrics_listen is set: histograms and error classes are
	                         * recorded (metrics.h) */
	int verbose;            /* -v on the command line: log_level debug whatever the
	                         * config says */
};

/* With RT's config, auth file, TLS context and hba rules loaded: makes its loop and
 * executor and hands RT to every module (PATH: the config file a reload reads). Nothing
 * listens yet. False if the loop or the executor cannot be made (logged); RT->base may
 * then be set. */
bool runtime_start(struct runtime *rt, const char *path) __attribute__((warn_unused_result));

/* Monotonic seconds, for timeouts and ages (clock.h: shared within a socket callback). */
static inline double rt_now(void) { return clock_now(); }

#endif
