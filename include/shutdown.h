/* The orderly stop. SIGTERM: stop accepting; clients without a server are told (57P01)
 * and closed; a client holding a server is closed once its transaction has ended; the
 * daemon exits when no client is left or after shutdown_timeout. SIGINT: the same, but
 * a client is closed as soon as its running query has ended (an open transaction is
 * rolled back). A second signal, or SIGQUIT: exit now. */
#ifndef PGCORO_SHUTDOWN_H
#define PGCORO_SHUTDOWN_H

#include "runtime.h"

void shutdown_init(struct runtime *rt);

/* SIGTERM (SHUTDOWN_TXN) or SIGINT (SHUTDOWN_QUERY); a second call stops the loop now. */
void shutdown_begin(enum rt_shutdown mode);

/* Stops the loop now (main's teardown closes every client and server), logging WHY. */
void shutdown_now(const char *why);

/* A client went away: while shutting down, the loop stops once none is left. */
void shutdown_check(void);

/* Frees the timer (teardown). */
void shutdown_free(void);

#endif
