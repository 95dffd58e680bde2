/* LISTEN/NOTIFY in transaction and statement mode: a client's LISTEN and UNLISTEN are
 * served by one libpq listener connection per pool, shared by the pool's clients, and
 * the notifications it receives are delivered to each subscribed client. A LISTEN or
 * UNLISTEN that runs on a pooled server (either protocol, inside a transaction block or
 * not) is read as it passes and takes effect on the listener when it commits. */
#ifndef PGCORO_NOTIFY_H
#define PGCORO_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
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

/* ---- LISTEN and UNLISTEN that reach a server (the relay's hooks) ----------------------
 * A client that holds a server sends LISTEN/UNLISTEN there (an extended-protocol
 * sequence, a statement inside a transaction block, a Query pipelined behind another).
 * The relay shows notify.c the client messages that may name one (a Query or Parse whose
 * text is one LISTEN/UNLISTEN statement; a Bind, Execute or Close of a statement or
 * portal that is one), and the server's answers while one is outstanding: each
 * CommandComplete "LISTEN"/"UNLISTEN" confirms the oldest one sent, an error drops those
 * its request skipped, and when the transaction commits (COMMIT, or the ReadyForQuery
 * 'I' of an implicit transaction without error) the client is subscribed (unsubscribed)
 * through the listener connection; that ReadyForQuery is held until the listener
 * listens. A ROLLBACK drops them (ROLLBACK TO SAVEPOINT those since the last SAVEPOINT).
 * A server that ran a LISTEN (s->listen_seen) drops every notification it sends and is
 * UNLISTENed before it goes to another client. */

/* What a client message is to LISTEN. */
enum notify_look {
	NOTIFY_NO,   /* nothing: it passes unseen */
	NOTIFY_SEE,  /* notify_client_sent must see it as it passes */
	NOTIFY_WAIT, /* it may be one: looked at again once all of it is here */
};

/* A message larger than this (type byte included) is never waited for whole: a Query or
 * Parse that large is not taken for one. */
#define NOTIFY_TEXT_MAX (64u * 1024)

enum notify_look notify_look_slow(const client_t *c, const uint8_t *msg, size_t avail,
				  uint32_t len);

/* A statement text beginning with CH may be LISTEN or UNLISTEN (or white space). */
static inline bool notify_maybe_keyword(uint8_t ch)
{
	return (ch | 0x20) == 'l' || (ch | 0x20) == 'u' || ch <= ' ';
}

/* Relay, client side, and a client without a server: what the client message at MSG
 * (AVAIL bytes of it here, at least its header; LEN its length field) is to LISTEN. No
 * effect: the same message may be looked at again. Inline, a message that cannot be one
 * costs a few instructions. */
static inline enum notify_look notify_look_client(const client_t *c, const uint8_t *msg,
						  size_t avail, uint32_t len)
{
	switch (msg[0]) {
	case 'Q':
		if (avail > PROTO_HDR && !notify_maybe_keyword(msg[PROTO_HDR]))
			return NOTIFY_NO;
		break;
	case 'P': /* an unnamed statement: its text is at hand */
		if (!c->notify && avail > PROTO_HDR + 1 && msg[PROTO_HDR] == 0 &&
		    !notify_maybe_keyword(msg[PROTO_HDR + 1]))
			return NOTIFY_NO;
		break;
	case 'B':
	case 'E':
	case 'C':
		if (!c->notify)
			return NOTIFY_NO; /* names no statement that is one */
		break;
	default:
		return NOTIFY_NO;
	}
	return notify_look_slow(c, msg, avail, len);
}

/* The client message at MSG (AVAIL bytes here; LEN its length field), which
 * notify_look_client called NOTIFY_SEE, goes to S (NULL: answered without a server, a
 * Parse is then only noted). Called before the relay counts it (client_msg_seen). The
 * statement or portal it defines is noted; one that runs LISTEN/UNLISTEN awaits its
 * CommandComplete (S tracks: s->notify_track). Out of memory: logged, not tracked. */
void notify_client_sent(client_t *c, server_t *s, const uint8_t *msg, size_t avail,
			uint32_t len);

/* What the relay does with a server message notify.c looked at. */
enum notify_act {
	NOTIFY_PASS, /* it goes to the client */
	NOTIFY_DROP, /* a notification of a pooled server: swallowed */
	NOTIFY_HOLD, /* a ReadyForQuery that waits for the listener: it stays in S's input
		      * and the relay stops; the relay is resumed when the listener listens */
};

/* Relay, server side, before the message is passed or counted, when s->listen_seen or
 * s->notify_track: MSG is a whole NotificationResponse or ReadyForQuery of LEN, or an
 * ErrorResponse (only its type is read). May be called again for the same message (held,
 * or waited for). May close S's client (then NOTIFY_HOLD). */
enum notify_act notify_server_msg(server_t *s, const uint8_t *msg, uint32_t len);

/* Relay, server side: S's whole CommandComplete MSG of LEN passed (the relay looks at
 * those of length notify_tag_len) or its ReadyForQuery did (when s->notify_track). */
void notify_server_passed(server_t *s, const uint8_t *msg, uint32_t len);

/* Whether the relay must show notify.c a CommandComplete of length field LEN, with
 * TRACKING its server's s->notify_track. */
static inline bool notify_tag_len(uint32_t len, bool tracking)
{
	/* "LISTEN"/"COMMIT", "DISCARD ALL"; while tracking also "RELEASE",
	 * "UNLISTEN"/"ROLLBACK", "SAVEPOINT" */
	return len == 4 + 7 || len == 4 + 12 || (tracking && len >= 4 + 7 && len <= 4 + 10);
}

#endif
