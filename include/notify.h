/* LISTEN/NOTIFY in transaction and statement mode: a client's LISTEN and UNLISTEN are
 * served by one listener connection per pool, shared by the pool's clients, and
 * the notifications it receives are delivered to each subscribed client. (A LISTEN or
 * UNLISTEN that runs on a pooled server is read by listenstmt.c, which subscribes the
 * client here when it commits.) */
#ifndef PGCORO_NOTIFY_H
#define PGCORO_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
 * input is not read. A LISTEN of a new channel when C listens to
 * max_client_listen_channels already is answered ERROR 53400 and ReadyForQuery, and C
 * goes on. May close C (out of memory). */
bool notify_answer_idle(client_t *c, const struct proto_msg *m);

/* True while C's LISTEN awaits the listener connection (C's input is not read). */
bool notify_awaiting(const client_t *c);

/* C went idle (gave its server back): notifications held for it while it was busy are
 * sent now. */
void notify_client_idle(client_t *c);

/* C is being freed: its subscriptions end (UNLISTEN on the listener connection when no
 * client listens to a channel any more). */
void notify_client_free(client_t *c);

/* /metrics: the bytes of notifications held for busy clients now, and the clients closed
 * because they had too many (past 16 MB each; past max_held_notification_bytes for every
 * client together, the client furthest behind). */
void notify_held_stats(size_t *bytes, uint64_t *closed_client, uint64_t *closed_total);

/* The pool is being freed: its listener connection is closed. */
void notify_pool_free(pool_t *p);

/* True while P's listener connection has a job on the executor (P must not be freed). */
bool notify_pool_busy(const pool_t *p);

/* ---- for listenstmt.c: LISTEN/UNLISTEN that ran on a server and committed ------------ */

/* C subscribes to CHANNEL (a no-op when it does already); *DARK: the listener does not
 * listen to it yet (its LISTEN is issued now). False: no memory (C is not closed). Past
 * max_client_listen_channels (true, not subscribed): its transaction has committed, so it
 * cannot be refused in its place; C is closed with 53400 once notify_hold holds its
 * ReadyForQuery, from an event of its own (not from inside the relay). */
bool notify_subscribe(client_t *c, const char *channel, bool *dark)
	__attribute__((warn_unused_result));

/* C unsubscribes from CHANNEL, or from every channel when it is NULL; the notifications
 * held for C on them go. */
void notify_unsubscribe(client_t *c, const char *channel);

/* When some channel of C is not listened to yet: C's relay waits for the listener (true),
 * and is resumed (relay_server_to_client) once it listens, or once the listener
 * connection fails. When a LISTEN of C was past its limit: true, and C is closed. */
bool notify_hold(client_t *c);

/* True while C's relay waits for the listener (notify_hold). */
bool notify_holding(const client_t *c);

#endif
