/* Transparent pinning (pin_session_state, transaction and statement mode): a client that
 * makes session state keeps its server until the state is gone; the settings its session
 * SETs go with it to every server it gets.
 *
 * DESIGN. Cheap where nothing happens: the relay shows pin.c each Query and Parse
 * (sessstate.h scans its text; a few instructions per byte). What the scan says is only
 * "may": at the client's next release point (ReadyForQuery 'I', nothing outstanding) the
 * server is asked, by one housekeeping query on the client's own session, what is really
 * there (SQL prepared statements, WITH HOLD cursors, session advisory locks, temporary
 * relations and functions, the settings whose source is the session, the role); its
 * answer sets the client's pins and settings. A pinned client keeps its server across
 * transactions like a session client; when the state is gone (DEALLOCATE, CLOSE,
 * pg_advisory_unlock_all, DROP, DISCARD: the server asked again) it is released as
 * usual; when it leaves pinned, server_reset_query runs before the server serves anyone
 * else (or the server is closed without one). Settings are not pinned: the server's
 * values are kept with the client and set on each server it gets by the parameter sync
 * (server.c), which first undoes another client's (RESET ALL). LOAD cannot be asked
 * about nor undone: it pins until the client leaves. More settings than a sync carries
 * pin too. */
#ifndef PGCORO_PIN_H
#define PGCORO_PIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "config.h"
#include "hkquery.h"
#include "pool.h"
#include "sessstate.h"
#include "types.h"

/* A pin reason beyond sessstate.h's: more settings than replay carries. */
#define PIN_SETTINGS (1u << 7)
#define PIN_REASONS (SESS_PINS | PIN_SETTINGS)

/* Settings replayed per client: at most this many, and these many bytes. */
#define PIN_SETTINGS_MAX 64
#define PIN_SETTINGS_BYTES (64 * 1024)

/* A Query or Parse larger than this (type byte included) is scanned as far as it is at
 * hand, not waited for whole. */
#define PIN_TEXT_MAX (64u * 1024)

/* True if pinning looks at C's messages (pin_session_state on or error; or C is pinned,
 * after a RELOAD turned it off, so that it can be released). */
static inline bool pin_on(const client_t *c)
{
	return (c->pool->pin_mode != PIN_OFF || c->pins) && !c->replication;
}

/* True if C's message of TYPE is shown to pin_client_msg (pin_on being true): a Query or
 * Parse; a Bind or Close once C has a statement that may do something. */
static inline bool pin_looks_at(const client_t *c, uint8_t type)
{
	return type == 'Q' || type == 'P' || ((type == 'B' || type == 'C') && c->pin_stmts);
}

/* The session settings a client's server reported (name, value pairs), one block. */
struct pin_settings {
	uint64_t sig;    /* digest of the pairs, never 0 */
	int n;
	const char *kv[]; /* 2 * n strings, in the same block */
};

/* A Bind or Close is looked at up to its names, at most this many bytes. */
#define PIN_HEAD_MAX 512

/* True if the relay (or an idle client) must wait for more of C's message at MSG (AVAIL
 * bytes at hand, LEN its length field) before pin_client_msg can look at it: a Query or
 * Parse up to PIN_TEXT_MAX whole, a Bind's or Close's names. Only for messages
 * pin_looks_at. */
bool pin_must_wait(const client_t *c, const uint8_t *msg, size_t avail, uint32_t len);

/* What the relay does after pin_client_msg. */
enum pin_look {
	PIN_PASS,     /* the message goes on as it is */
	PIN_REPLACED, /* pin_session_state = error: C's input now holds, at the same place, a
	               * message whose statement fails with 0A000: read the input again */
	PIN_FAILED,   /* C was closed (no memory) */
};

/* Relay, client side: the message at MSG that pin_looks_at, OFF bytes into C's input
 * (AVAIL bytes of it at hand: as pin_must_wait waited for; LEN its length field), is about
 * to go to C's server. Notes what it may do to C's session for the next release point (a
 * Query at once; a Parse with its statement's name, done by its Bind); in PIN_ERROR mode
 * replaces a Query or Parse that makes session state. */
enum pin_look pin_client_msg(client_t *c, size_t off, const uint8_t *msg, size_t avail,
			     uint32_t len) __attribute__((warn_unused_result));

/* At C's release point on S (ReadyForQuery 'I', nothing outstanding): true if S may go
 * back to the pool. False: C keeps S (pinned), or the server is being asked what C's
 * session holds (housekeeping on S; client_on_server_ready follows, which comes back
 * here). Inline: a client that never made state pays one test. */
bool pin_release_slow(client_t *c, server_t *s);
static inline bool pin_may_release(client_t *c, server_t *s)
{
	if (__builtin_expect(!c->pins && !c->pin_check, 1))
		return true;
	return pin_release_slow(c, s);
}

/* The housekeeping query that asks what C's session holds (a static buffer, valid until
 * the next call), and what its answer does:
 * each DataRow (pin_probe_row), then its end (pin_probe_done: FAILED when it failed, as
 * Q says). */
const char *pin_probe_sql(const client_t *c);
void pin_probe_row(client_t *c, const uint8_t *body, uint32_t blen);
void pin_probe_done(client_t *c, server_t *s, const struct hkquery *q);

/* C leaves (its server, if any, still linked): its pins and settings go. */
void pin_client_free(client_t *c);

/* REASONS (pin bits) as "temp_table,advisory_lock", into BUF (CAP bytes, NUL-terminated;
 * "" for none). Returns BUF. */
const char *pin_reasons(uint32_t reasons, char *buf, size_t cap);

/* Pins made since start, by reason bit (index: the bit's position, 0..7), for /metrics. */
extern uint64_t pin_counts[8];

/* Parses one probe DataRow (pure, for the fuzzer): three text columns. False if it is not
 * that shape; else *KIND is the first byte of column 1 and NAME/VALUE point into BODY. */
bool pin_parse_row(const uint8_t *body, uint32_t blen, uint8_t *kind, const uint8_t **name,
		   uint32_t *nlen, const uint8_t **value, uint32_t *vlen);

/* Custom settings (dotted names) are named in at most this many bytes, NUL included. */
#define PIN_CUSTOM_NAME 64

/* The custom settings the statement text T (N bytes) may set — "SET [SESSION] a.b" at its
 * start or after a ';', the literal first argument of each set_config('a.b', ...) — added
 * in lower case to NAMES (COUNT there already, at most MAX; one not there yet), each a
 * dotted name of [A-Za-z0-9_.$] shorter than PIN_CUSTOM_NAME. *LOST is set when a name is
 * not known (set_config's first argument not a literal) or does not fit (longer, or past
 * MAX). Pure (the fuzzer's). Returns the new count. */
int pin_custom_names(const char *t, size_t n, char names[][PIN_CUSTOM_NAME], int max, int count,
		     bool *lost);

#endif
