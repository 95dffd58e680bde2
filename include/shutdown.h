/* The orderly stop, PgBouncer 1.23's. SIGINT (SHUTDOWN_SERVERS): stop accepting; clients
 * without a server are told (57P01) and closed; a client holding a server is closed when
 * it gives it back: at the end of its transaction, or in session mode when it leaves.
 * SIGTERM (SHUTDOWN_CLIENTS): stop accepting; the clients are served as before until they
 * leave. Either way the daemon exits when no client is left, or after shutdown_timeout. A
 * second signal, or SIGQUIT: exit now. */
#ifndef PGCORO_SHUTDOWN_H
#define PGCORO_SHUTDOWN_H

#include "runtime.h"

void shutdown_init(struct runtime *rt);

/* SIGINT (SHUTDOWN_SERVERS) or SIGTERM (SHUTDOWN_CLIENTS); a second call stops the loop
 * now. */
void shutdown_begin(enum rt_shutdown mode);

/* Stops the loop now (main's teardown closes every client and server), logging WHY. */
void shutdown_now(const char *why);

/* A client went away: while shutting down, the loop stops once none is left. */
void shutdown_check(void);

/* Frees the timer (teardown). */
void shutdown_free(void);

#endif
