/* Listeners: TCP (IPv4/IPv6) and the unix socket UNIX_SOCKET_DIR/.s.PGSQL.PORT. */
#ifndef PGCORO_LISTENER_H
#define PGCORO_LISTENER_H

#include <stdbool.h>

struct runtime;

/* Opens every configured listener. False (with a logged reason) if any fails. */
bool listener_start(struct runtime *rt) __attribute__((warn_unused_result));

/* Closes them and removes the unix socket file. */
void listener_stop(void);

/* An orderly shutdown begins: the TCP listeners close; the unix socket stays open (for
 * the console) until listener_stop, as PgBouncer's. */
void listener_stop_tcp(void);

/* SUSPEND (HOLD true): no connection is accepted (they wait in the backlog) until RESUME
 * (HOLD false). */
void listener_hold(bool hold);

#endif
