/* LISTEN/NOTIFY in transaction and statement mode: a client's LISTEN and UNLISTEN are
 * served by one libpq listener connection per pool, shared by the pool's clients, and
 * the notifications it receives are delivered to each subscribed client. */
#ifndef PGCORO_NOTIFY_H
#define PGCORO_NOTIFY_H

#include <stdbool.h>

#include "proto.h"
#include "types.h"

struct runtime;
struct notify_conn;   /* a pool's listener connection and its channels */
struct notify_client; /* a client's channels and the notifications it has not read yet */

void notify_init(struct runtime *rt);

/* C has no server (transaction mode) and M, the whole simple Query at the head of its
 * input (client_next): if that is one LISTEN or UNLISTEN statement, pgcoro serves it (the
 * answer, CommandComplete and ReadyForQuery, comes once the listener connection listens
 * to the channel) and M is taken off the input: true. While C awaits that answer its
 * input is not read. May close C (out of memory). */
bool notify_answer_idle(client_t *c, const struct proto_msg *m);

/* True while C's LISTEN awaits the listener connection (C's input is not read). */
bool notify_awaiting(const client_t *c);

/* C went idle (gave its server back): notifications held for it while it was busy are
 * sent now. */
void notify_client_idle(client_t *c);

/* C is being freed: its subscriptions end (UNLISTEN on the listener connection when no
 * client listens to a channel any more). */
void notify_client_free(client_t *c);

/* The pool is being freed: its listener connection is closed. */
void notify_pool_free(pool_t *p);

#endif
