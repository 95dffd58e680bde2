/* Listeners: TCP (IPv4/IPv6) and the unix socket UNIX_SOCKET_DIR/.s.PGSQL.PORT. */
#ifndef PGCORO_LISTENER_H
#define PGCORO_LISTENER_H

#include <stdbool.h>

struct runtime;

/* Opens every configured listener. False (with a logged reason) if any fails. */
bool listener_start(struct runtime *rt) __attribute__((warn_unused_result));

/* Closes them and removes the unix socket file. */
void listener_stop(void);

#endif
