/* The admin console's SHOW commands (see console.h), as PgBouncer 1.26 answers them. */
#ifndef PGCORO_SHOW_H
#define PGCORO_SHOW_H

#include <stdbool.h>

#include "proto.h"

struct runtime;

void show_init(struct runtime *rt);

/* Appends the result of SHOW WHAT (any case) to OUT: RowDescription, DataRows (or
 * NOTICEs for HELP) and CommandComplete "SHOW". False, with nothing written, if there is
 * no such SHOW. */
bool show_build(struct pbuf *out, const char *what);

/* SHOW USERS' current_client_connections of USER: its clients in every pool and its
 * console sessions. */
int show_user_clients(const char *user);

#endif
