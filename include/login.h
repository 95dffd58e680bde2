/* The login dialog (login.c): everything a client sends before it has authenticated.
 * One entry (login_on_input, login_on_tls_ready) and one exit (client_logged_in after
 * AuthenticationOk, or client_disconnect). */
#ifndef PGCORO_LOGIN_H
#define PGCORO_LOGIN_H

#include <stdbool.h>
#include <stdint.h>

#include "types.h"

struct runtime;

void login_init(struct runtime *rt);

/* C was accepted: its login state is allocated (c->login). False if out of memory. */
bool login_begin(client_t *c) __attribute__((warn_unused_result));

/* C (CL_LOGIN) has input: handles each whole message while C is logging in. May end the
 * login either way (client_logged_in, client_disconnect). */
void login_on_input(client_t *c);

/* C's TLS handshake (SSLRequest or direct TLS) is done. May disconnect C. */
void login_on_tls_ready(client_t *c);

/* Frees what the login holds (at its exit, or when C is closed during it); safe to call
 * again. */
void login_free(client_t *c);

/* Cleartext password checks (auth_type plain or ldap, hba password and ldap), for
 * /metrics: RUNNING on the executor now (at most exec_bulk_threads, counting those whose
 * client has left), WAITING for their turn (at most max_password_checks_waiting), RUN
 * since the start. */
void login_check_stats(int *running, int *waiting, uint64_t *run);

/* True when C came over the unix socket from a process of the OS user pgcoro runs as and
 * calls itself "pgbouncer" (or "pgcoro"): PgBouncer admits it to the admin console as an
 * administrator without a password. */
bool login_peer_is_self(const client_t *c);

#endif
