/* The orderly stop, PgBouncer's. Either way the TCP listeners close at once; the unix
 * socket stays open for the console (other logins get 57P03 "pooler is shutting down").
 * SIGINT or the console's SHUTDOWN WAIT_FOR_SERVERS (SHUTDOWN_SERVERS): clients without a
 * server are told (57P01) and closed; a client holding a server is closed when it gives
 * it back: at the end of its transaction, or in session mode when it leaves; the daemon
 * exits when none of them is left (console sessions do not hold it up). SIGTERM or
 * SHUTDOWN WAIT_FOR_CLIENTS (SHUTDOWN_CLIENTS): the clients are served as before until
 * they leave; the daemon exits when no client is left, console sessions included. Either
 * way shutdown_timeout bounds the wait; a second signal, or SIGQUIT: exit now. */
#ifndef PGCORO_SHUTDOWN_H
#define PGCORO_SHUTDOWN_H

#include "runtime.h"

void shutdown_init(struct runtime *rt);

/* SIGINT / WAIT_FOR_SERVERS (SHUTDOWN_SERVERS) or SIGTERM / WAIT_FOR_CLIENTS
 * (SHUTDOWN_CLIENTS); a second call stops the loop now. */
void shutdown_begin(enum rt_shutdown mode);

/* Stops the loop now (main's teardown closes every client and server), logging WHY. */
void shutdown_now(const char *why);

/* A client went away: while shutting down, the loop stops once none is left. */
void shutdown_check(void);

/* Frees the timer (teardown). */
void shutdown_free(void);

#endif
