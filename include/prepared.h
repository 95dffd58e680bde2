/* Protocol-level prepared statements in transaction and statement mode: the client's
 * named statements are mapped to pgcoro-wide server-side names, prepared on whatever
 * server the client gets, and the server's answers are matched to the requests so the
 * client sees exactly what PostgreSQL would have sent it. */
#ifndef PGCORO_PREPARED_H
#define PGCORO_PREPARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

struct runtime;
struct prep_client; /* a client's statement names */
struct prep_server; /* a server's statements, its expected answers, its build buffers */

void prep_init(struct runtime *rt);

/* What the relay does with a message prep looked at. */
enum prep_act {
	PREP_PASS, /* forward it unchanged (its answer is expected) */
	PREP_TAKEN, /* replaced: send prep_output() instead (possibly nothing), consume it */
	PREP_DROP, /* consume it without forwarding */
	PREP_WAIT, /* the whole message is needed: wait for the rest */
	PREP_FAIL, /* the client or server was disconnected */
};

/* At a hand-out (S quiet): S tracks (s->prep_on) when its pool is in transaction or
 * statement mode and max_prepared_statements > 0. Allocates S's state the first time;
 * without memory S is not tracked and named statements pass unchanged (logged). */
void prep_server_start(server_t *s);

/* A client message of TYPE at MSG (AVAIL bytes of it here, LEN its length field) about to
 * go to S, which tracks. May disconnect C (PREP_FAIL). */
enum prep_act prep_client_msg(server_t *s, client_t *c, const uint8_t *msg, size_t avail,
			      uint32_t len);

/* A server message at MSG (AVAIL bytes of it here, LEN its length field) about to go to
 * S's client. PREP_PASS, PREP_DROP (a whole message to swallow) or PREP_WAIT. */
enum prep_act prep_server_msg(server_t *s, const uint8_t *msg, size_t avail, uint32_t len);

/* Bytes prep built for S's server (after PREP_TAKEN); *LEN set. prep_output_done after
 * sending them. */
const uint8_t *prep_output(server_t *s, size_t *len);
void prep_output_done(server_t *s);

/* True when answers pgcoro makes itself (CloseComplete, ParseComplete, errors) are due
 * for S's client; prep_flush_answers sends them. The relay calls it at a server message
 * boundary, after the bytes before that boundary. */
bool prep_has_answers(const server_t *s);
void prep_flush_answers(server_t *s);

/* True when nothing is expected from S or owed to its client (the hand-over point). */
bool prep_server_quiet(const server_t *s);

/* S's server-side statements are gone (DISCARD ALL in housekeeping). */
void prep_server_forget(server_t *s);

/* Frees S's tracking state (S is being freed). */
void prep_server_free(server_t *s);

/* C has no server (transaction mode) and its input starts with a named Parse and a
 * Sync: when a server already parsed that statement once, the name is entered and C
 * answered (ParseComplete, or the duplicate name's error, and ReadyForQuery) without
 * taking a server, so a client preparing while others hold every server in a
 * transaction does not wait for them. True if those two messages were consumed. */
bool prep_answer_idle(client_t *c);

/* Frees C's statement names (C is being freed). */
void prep_client_free(client_t *c);

/* Statements known pgcoro-wide (SHOW / tests). */
size_t prep_statement_count(void);

#endif
