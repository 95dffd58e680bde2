/* Protocol-level prepared statements in transaction and statement mode: the client's
 * named statements are mapped to pgcoro-wide server-side names, prepared on whatever
 * server the client gets, and the server's answers are matched to the requests so the
 * client sees exactly what PostgreSQL would have sent it. */
#ifndef PGCORO_PREPARED_H
#define PGCORO_PREPARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "types.h"

struct runtime;
struct prep_client; /* a client's statement names */
struct prep_server; /* a server's statements, its expected answers, its build buffers */

void prep_init(struct runtime *rt);

/* What a tracking server owes, in wire order: one kind byte per request that gets an
 * answer (PREP_SPECIAL: more is known of it, only prepared.c handles it). prepared.c
 * owns it; the relay's fast paths below read and pop plain entries inline, so passing
 * a message costs a few instructions. */
struct prep_ring {
	uint8_t *kind;   /* kind[(head + i) & mask], i < len */
	uint32_t mask, head, len;
	bool answers;    /* answers of pgcoro's own are due (prep_flush_answers) */
	bool output;     /* prep_output holds bytes for the server */
	bool skip;       /* after an error: client messages dropped until Sync */
};

enum prep_kind {
	PK_SIMPLE = 1, /* Query, FunctionCall: done at ReadyForQuery */
	PK_SYNC,       /* Sync: done at ReadyForQuery */
	PK_PARSE,      /* ParseComplete */
	PK_BIND,       /* BindComplete */
	PK_DESCRIBE,   /* RowDescription or NoData */
	PK_EXECUTE,    /* CommandComplete, EmptyQueryResponse or PortalSuspended */
	PK_CLOSE,      /* CloseComplete */
};
#define PREP_SPECIAL 0x80
#define PREP_USES 0x40 /* a plain entry of a Bind or Describe of a named statement: only an
                        * error answering it is prepared.c's business */

/* Client side: the text at P (AVAIL bytes of it here) of a Query or of a Parse of the
 * unnamed statement may be a DEALLOCATE (prepared.c looks closer). */
static inline bool prep_may_deallocate(const uint8_t *p, size_t avail)
{
	return avail == 0 || (p[0] | 0x20) == 'd' || p[0] == ' ' || (p[0] >= '\t' && p[0] <= '\r');
}

/* Client side, inline: a message (its first AVAIL bytes at MSG) that names no
 * statement and cannot be a DEALLOCATE has its answer recorded: true. False:
 * prep_client_msg must see it. */
static inline __attribute__((always_inline)) bool prep_client_fast(struct prep_ring *r,
								    const uint8_t *msg,
								    size_t avail)
{
	uint8_t k;
	if (r->skip)
		return false;
	switch (msg[0]) {
	case 'Q':
		if (prep_may_deallocate(msg + 5, avail - 5))
			return false;
		/* fall through */
	case 'F':
		k = PK_SIMPLE;
		break;
	case 'S':
		k = PK_SYNC;
		break;
	case 'E':
		k = PK_EXECUTE;
		break;
	case 'P': /* unnamed statement, not a DEALLOCATE */
		if (avail < 6 || msg[5] != 0 || prep_may_deallocate(msg + 6, avail - 6))
			return false;
		k = PK_PARSE;
		break;
	case 'B': /* unnamed portal and statement */
		if (avail < 7 || msg[5] != 0 || msg[6] != 0)
			return false;
		k = PK_BIND;
		break;
	case 'D':
	case 'C': /* a portal, or the unnamed statement */
		if (avail < 7 || (msg[5] == 'S' && msg[6] != 0))
			return false;
		k = msg[0] == 'D' ? PK_DESCRIBE : PK_CLOSE;
		break;
	default:
		return true; /* Flush, COPY data: no answer of their own */
	}
	if (r->len > r->mask)
		return false; /* full: prep_client_msg grows it */
	r->kind[(r->head + r->len) & r->mask] = k;
	r->len++;
	return true;
}

/* A CommandComplete of length field LEN may say the session's statements changed
 * ("PREPARE", "DEALLOCATE", "DISCARD ALL", "DEALLOCATE ALL"): prepared.c looks. */
static inline bool prep_tag_len(uint32_t len)
{
	return len - 12 <= 7 && (0x99u >> (len - 12)) & 1; /* 12, 15, 16, 19 */
}

/* Server side, inline: a message of TYPE and length field LEN that completes a plain
 * entry (popped here) or completes none: true, pass it. False: prep_server_msg must
 * see it (pgcoro's own request, an answer of pgcoro's next, an error in a pipeline, a
 * CommandComplete that may change the session's statements: prep_tag_len). */
static inline bool prep_server_fast(struct prep_ring *r, uint8_t type, uint32_t len)
{
	uint8_t want;
	switch (type) { /* the type first: DataRow and most others touch nothing */
	case 'Z':
		want = PK_SYNC;
		break;
	case '1':
		want = PK_PARSE;
		break;
	case '2':
		want = PK_BIND;
		break;
	case '3':
		want = PK_CLOSE;
		break;
	case 'T':
	case 'n':
		want = PK_DESCRIBE;
		break;
	case 'C':
		if (prep_tag_len(len))
			return false;
		/* fall through */
	case 'I':
	case 's':
		want = PK_EXECUTE;
		break;
	case 'E':
		want = 0;
		break;
	default:
		return true;
	}
	if (!r->len)
		return true;
	uint8_t k = r->kind[r->head & r->mask] & (uint8_t)~PREP_USES;
	if (type == 'Z' && k == PK_SIMPLE)
		want = PK_SIMPLE;
	if (k != want) {
		if (type == 'E') /* an error ends a Query or a Sync's; others skip to the Sync */
			return k == PK_SIMPLE || k == PK_SYNC;
		/* a RowDescription of a Query...: passes; unexpected or special: prepared.c */
		return !(k & PREP_SPECIAL) && want != PK_PARSE && want != PK_BIND &&
		       want != PK_CLOSE && type != 'Z';
	}
	if (r->len > 1 && (r->kind[(r->head + 1) & r->mask] & PREP_SPECIAL))
		return false; /* what comes next is for prep_server_msg to settle */
	r->head++;
	r->len--;
	return true;
}

/* What the relay does with a message prep looked at. */
enum prep_act {
	PREP_PASS, /* forward it unchanged (its answer is expected) */
	PREP_TAKEN, /* replaced: send prep_output() instead (possibly nothing), consume it */
	PREP_DROP, /* consume it without forwarding */
	PREP_WAIT, /* the whole message is needed: wait for the rest */
	PREP_FAIL, /* the client or server was disconnected */
};

/* At a hand-out (S quiet) in transaction or statement mode with max_prepared_statements
 * > 0, to a client that has named statements (the caller checks): S tracks
 * (s->prep_on). Allocates S's state the first time; without memory S is not tracked
 * and named statements pass unchanged (logged). */
void prep_server_start(server_t *s);

/* Relay, client side, S not tracking: true when the message at MSG (AVAIL bytes here)
 * may name a statement (or it cannot tell yet), so tracking must begin before it. */
static inline bool prep_may_name(const uint8_t *msg, size_t avail)
{
	switch (msg[0]) {
	case 'P':
		return avail < 6 || msg[5] != 0;
	case 'B':
		return avail < 7 || msg[5] != 0 || msg[6] != 0;
	case 'D':
	case 'C':
		return avail < 7 || (msg[5] == 'S' && msg[6] != 0);
	default:
		return false;
	}
}

/* S (not tracking, in transaction or statement mode) starts tracking in the middle of
 * a hand-out, before the client message the relay is about to pass. When requests are
 * outstanding, their answers (which nothing recorded) are let through up to a marker:
 * a Close of a portal that does not exist, sent now, whose CloseComplete is swallowed.
 * False when S cannot track (no memory; logged): the message passes unchanged. */
bool prep_track_now(server_t *s);

/* A client message of TYPE at MSG (AVAIL bytes of it here, LEN its length field) about to
 * go to S, which tracks. May disconnect C (PREP_FAIL). */
enum prep_act prep_client_msg(server_t *s, client_t *c, const uint8_t *msg, size_t avail,
			      uint32_t len);

/* A server message at MSG (AVAIL bytes of it here, LEN its length field) about to go to
 * S's client. PREP_PASS, PREP_DROP (a whole message to swallow) or PREP_WAIT. */
enum prep_act prep_server_msg(server_t *s, const uint8_t *msg, size_t avail, uint32_t len);

/* Bytes prep built for S's server (after PREP_TAKEN), not sent yet: the relay appends
 * what passes after them (prep_output_append), so one write carries a rewritten Bind
 * and the Execute and Sync behind it, and sends them all before its pump stops.
 * prep_output: the bytes (*LEN; NULL if building them ran out of memory);
 * prep_output_done after sending them. */
const uint8_t *prep_output(server_t *s, size_t *len);
void prep_output_append(server_t *s, const uint8_t *p, size_t n);
void prep_output_done(server_t *s);



/* Answers pgcoro makes itself (CloseComplete, ParseComplete, errors) that are due
 * (s->pring.answers): sent to S's client. The relay calls it at a server message
 * boundary, after the bytes before that boundary. */
void prep_flush_answers(server_t *s);

/* True when nothing is expected from the server of ring R or owed to its client (the
 * hand-over point). */
static inline bool prep_quiet(const struct prep_ring *r)
{
	return !r->len && !r->answers && !r->skip;
}

/* S's server-side statements are gone (DISCARD ALL in housekeeping). */
void prep_server_forget(server_t *s);

/* Relay, S not tracking in this hand-out: a whole CommandComplete at MSG (LEN its length
 * field, prep_tag_len) of S, which may hold pgcoro's statements (S->prep): a PREPARE,
 * DEALLOCATE, DEALLOCATE ALL or DISCARD ALL of its client's SQL makes S forget them (each
 * is prepared again, under a new name, at its next use). */
void prep_server_tag(server_t *s, const uint8_t *msg, uint32_t len);

/* True when more of S's statements were forgotten while they may still be on it
 * (prep_server_tag: a client's SQL PREPARE or DEALLOCATE) than max_prepared_statements:
 * S is closed when released rather than reused, so they do not pile up there. */
bool prep_server_worn(const server_t *s);

/* S (tracking) began a COPY FROM STDIN: the last K Syncs recorded may have reached
 * PostgreSQL inside it: their entries go (as many of the ring's last entries as are plain
 * Syncs, at most K). Returns how many went. */
unsigned prep_forget_syncs(server_t *s, unsigned k);

/* Frees S's tracking state (S is being freed). */
void prep_server_free(server_t *s);

/* C has no server (transaction mode) and M, the whole message at the head of its input
 * (client_next), is a named Parse followed by a whole Sync: when a server already parsed
 * that statement once, the name is entered and C answered (ParseComplete, or the
 * duplicate name's error, and ReadyForQuery) without taking a server, so a client
 * preparing while others hold every server in a transaction does not wait for them. A
 * Parse past C's limits (max_client_prepared_statements / _bytes) is answered so too,
 * with error 53400, parsed or not. True if those two messages were taken off the input. */
bool prep_answer_idle(client_t *c, const struct proto_msg *m);

/* Frees C's statement names (C is being freed). */
void prep_client_free(client_t *c);

/* Statements known pgcoro-wide (SHOW / tests). */
size_t prep_statement_count(void);

/* SHOW CLIENTS / SERVERS' prepared_statements: C's statement names, S's prepared
 * statements. */
size_t prep_client_count(const client_t *c);
size_t prep_server_count(const server_t *s);

#endif
