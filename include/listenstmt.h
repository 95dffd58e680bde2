/* LISTEN and UNLISTEN that run on a pooled server (transaction and statement mode): an
 * extended-protocol sequence (asyncpg, pgjdbc), a statement inside a transaction block,
 * a Query behind other requests. The relay shows listenstmt.c the client messages that
 * may run one and, while one is outstanding, the server's answers; when it commits, the
 * client is subscribed (unsubscribed) through notify.c's listener connection, and the
 * relay holds that ReadyForQuery until the listener listens. A pooled server's
 * notifications are dropped, and one that ran a LISTEN or sent one (s->listen_seen) is
 * UNLISTENed (server.c) before it goes to another client. */
#ifndef PGCORO_LISTENSTMT_H
#define PGCORO_LISTENSTMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "proto.h"
#include "types.h"

struct listenstmt_client; /* a client's statements and portals that are one, and those
			   * sent, confirmed and not yet committed */

/* What a client message is to LISTEN. */
enum listenstmt_look {
	LISTENSTMT_NO,   /* nothing: it passes unseen */
	LISTENSTMT_SEE,  /* listenstmt_client_sent must see it as it passes */
	LISTENSTMT_WAIT, /* it may be one: looked at again once all of it is here */
};

/* A message larger than this (type byte included) is never waited for whole: a Query or
 * Parse that large is not taken for one. */
#define LISTENSTMT_TEXT_MAX (64u * 1024)

enum listenstmt_look listenstmt_look_slow(const client_t *c, const uint8_t *msg, size_t avail,
					  uint32_t len);

/* Non-zero for a first byte of a statement text that may begin LISTEN, UNLISTEN or
 * DISCARD (ALL, which unlistens): l, u, d (any case) and white space. */
extern const uint8_t listenstmt_first_byte[256];

/* Relay, client side, and a client without a server: what the client message at MSG
 * (AVAIL bytes of it here, at least its header; LEN its length field) is to LISTEN. No
 * effect: the same message may be looked at again. Inline, a message that cannot be one
 * costs a few instructions. */
static inline enum listenstmt_look listenstmt_look_client(const client_t *c, const uint8_t *msg,
							  size_t avail, uint32_t len)
{
	uint8_t type = msg[0];
	if (type == 'Q') {
		if (avail > PROTO_HDR && !listenstmt_first_byte[msg[PROTO_HDR]])
			return LISTENSTMT_NO;
	} else if (type == 'P') { /* an unnamed statement: its text is at hand */
		if (!c->listenstmt && avail > PROTO_HDR + 1 && msg[PROTO_HDR] == 0 &&
		    !listenstmt_first_byte[msg[PROTO_HDR + 1]])
			return LISTENSTMT_NO;
	} else if (!c->listenstmt || (type != 'B' && type != 'E' && type != 'C')) {
		return LISTENSTMT_NO; /* a Bind, Execute or Close may name a statement noted */
	}
	return listenstmt_look_slow(c, msg, avail, len);
}

/* The client message at MSG (AVAIL bytes here; LEN its length field), which
 * listenstmt_look_client called LISTENSTMT_SEE, goes to S (NULL: answered without a
 * server; a Query or Parse is then only noted). Called before the relay counts it
 * (client_msg_seen). The statement or portal it defines is noted; an Execute or Query
 * that runs LISTEN/UNLISTEN awaits its CommandComplete (S tracks: s->listen_track).
 * False: C was closed (no memory: 53200; more than a few thousand such statements,
 * portals and executions noted at once: 53400); the message must not go on. */
bool listenstmt_client_sent(client_t *c, server_t *s, const uint8_t *msg, size_t avail,
			    uint32_t len) __attribute__((warn_unused_result));

/* What the relay does with a server message listenstmt.c looked at. */
enum listenstmt_act {
	LISTENSTMT_PASS, /* it goes to the client */
	LISTENSTMT_DROP, /* a notification of a pooled server: swallowed */
	LISTENSTMT_HOLD, /* a ReadyForQuery that waits for the listener: it stays in S's input
			  * and the relay stops, to be resumed by notify.c */
};

/* Relay, server side, before the message is passed or counted: MSG is a whole
 * NotificationResponse of LEN (transaction and statement mode: S ran a LISTEN), or, when
 * s->listen_track, a whole ReadyForQuery or an ErrorResponse (only its type is read).
 * May be called again for the same message (held, or waited for). May close S's client
 * (then LISTENSTMT_HOLD). */
enum listenstmt_act listenstmt_server_msg(server_t *s, const uint8_t *msg, uint32_t len);

/* Relay, server side: S's whole CommandComplete MSG of LEN passed (the relay looks at
 * those listenstmt_tag_len says while S tracks) or its ReadyForQuery did; nothing unless
 * s->listen_track. May close S's client (no memory). */
void listenstmt_server_passed(server_t *s, const uint8_t *msg, uint32_t len);

/* Whether the relay must show listenstmt.c a CommandComplete of length field LEN from a
 * server that tracks (s->listen_track): "LISTEN", "COMMIT", "RELEASE", "UNLISTEN",
 * "ROLLBACK", "SAVEPOINT", "DISCARD ALL" have such lengths. */
static inline bool listenstmt_tag_len(uint32_t len) { return len - (4 + 7) <= 5; }

/* C is being freed: what was noted of its statements goes. */
void listenstmt_client_free(client_t *c);

#endif
