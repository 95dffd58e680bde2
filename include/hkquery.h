/* pgcoro's own queries on a connected server — housekeeping (ROLLBACK, the reset query,
 * parameter sync, health checks, UNLISTEN *) and the LISTEN connection's LISTEN/UNLISTEN
 * — spoken by pgcoro itself once the connection is made, whoever made it (libpq, or a
 * login of pgcoro's own): the request is built here and written through the connection's
 * stream (plain or TLS, the relay's output path), and the answer is read here from the
 * stream's input with the project's framing, whole message by whole message, into a
 * fixed-size summary (struct hkquery) and a few callbacks. Nothing is allocated per
 * message; a message longer than HKQUERY_MSG_MAX is skipped in pieces, never held. */
#ifndef PGCORO_HKQUERY_H
#define PGCORO_HKQUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct stream;

#define HKQUERY_MSG_MAX (64u * 1024) /* a message looked at whole (STREAM_READ_HIGH is more) */
#define HKQUERY_TEXT_MAX 512         /* an error's message kept (its detail, hint: half) */

/* What the answer tells besides the summary; each may be NULL (then it is ignored). The
 * strings are the message's own bytes, valid during the call only. A callback must not
 * touch the stream the answer is read from. */
struct hkquery_ops {
	/* ParameterStatus: NAME is now VALUE. */
	void (*param)(void *arg, const char *name, const char *value);
	/* NotificationResponse (a LISTEN connection's notifications). */
	void (*notification)(void *arg, uint32_t pid, const char *channel, const char *payload);
	/* NoticeResponse: its severity and primary message (either may be ""). */
	void (*notice)(void *arg, const char *severity, const char *message);
	/* DataRow: its first column, LEN bytes at VALUE (not NUL-terminated); VALUE is NULL
	 * for SQL NULL or a row with no column. A DataRow longer than HKQUERY_MSG_MAX is
	 * counted (rows) but not given. */
	void (*row)(void *arg, const uint8_t *value, uint32_t len);
	/* DataRow: its whole body (int16 columns, then each as int32 length, -1 for NULL,
	 * and bytes), BLEN bytes, checked only for its column count; unless longer than
	 * HKQUERY_MSG_MAX, as for row. */
	void (*datarow)(void *arg, const uint8_t *body, uint32_t blen);
};

/* The answer to one query, as read so far. */
struct hkquery {
	const struct hkquery_ops *ops;
	void *arg;
	uint32_t skip;     /* bytes still to come of a message skipped (not looked at) */
	uint32_t results;  /* CommandComplete and EmptyQueryResponse seen */
	uint32_t rows;     /* DataRow seen */
	uint32_t copy_in;  /* CopyInResponse seen and not answered yet: pgcoro's queries send
	                    * no COPY data, so hkquery_read answers each with CopyFail (the
	                    * answer then has the server's error, 57014) */
	bool failed;       /* an ErrorResponse came (the fields below are the first one's) */
	bool fatal;        /* its severity was FATAL or PANIC: the server closes */
	uint8_t tx_status; /* the ReadyForQuery's, once HKQUERY_DONE: 'I', 'T' or 'E' */
	char sqlstate[6];  /* "" when the error had none or was too long to read */
	char tag[64];      /* the last CommandComplete's tag ("" for an empty query) */
	char message[HKQUERY_TEXT_MAX];
	char detail[HKQUERY_TEXT_MAX / 2]; /* "" when none */
	char hint[HKQUERY_TEXT_MAX / 2];   /* "" when none */
};

enum hkquery_status {
	HKQUERY_MORE, /* the answer goes on: feed what comes next */
	HKQUERY_DONE, /* a ReadyForQuery ended it (tx_status); what follows is not read */
	HKQUERY_BAD,  /* not an answer PostgreSQL gives to a simple or parameterised query
	               * (a bad length or layout, a message of login or replication): the
	               * connection's state is unknown and it must be closed */
};

/* Starts reading the answer to a new query into Q, with OPS and ARG (OPS may be NULL):
 * on a new connection, and after each HKQUERY_DONE (a connection's messages between
 * answers, notifications, are read into the next one's Q). */
void hkquery_begin(struct hkquery *q, const struct hkquery_ops *ops, void *arg);

/* Reads the whole messages at the head of DATA (LEN bytes) into Q, up to and including
 * a ReadyForQuery, and skips what it does not look at (the bytes of a skipped message may
 * come in any number of pieces). *USED gets the bytes read: what is left is a message's
 * first part, or follows the ReadyForQuery. On HKQUERY_BAD *WHY gets a static reason. Any
 * bytes are safe: nothing outside DATA[0, LEN) is read. */
enum hkquery_status hkquery_parse(struct hkquery *q, const uint8_t *data, size_t len,
				  size_t *used, const char **why) __attribute__((warn_unused_result));

/* hkquery_parse over ST's input, consuming what it read, and a CopyFail written to ST
 * for each CopyInResponse read; for the owner's on_read (the stream's callback end keeps
 * or frees what is left). */
enum hkquery_status hkquery_read(struct hkquery *q, struct stream *st, const char **why)
	__attribute__((warn_unused_result));

/* Writes a simple Query of SQL to ST. False when memory is short (nothing sent); a
 * failed write is reported by ST's on_event, as for every stream_send. */
bool hkquery_send(struct stream *st, const char *sql) __attribute__((warn_unused_result));

/* Writes SQL with N text parameters VALUES ($1...; a NULL pointer is SQL NULL) as the
 * extended protocol's Parse, Bind, Execute and Sync on the unnamed statement and portal,
 * as libpq's PQsendQueryParams does: the values reach the server as they are, in the
 * connection's client_encoding, never quoted into the text. False when memory is short
 * or N is over 65535 (nothing sent). */
bool hkquery_send_params(struct stream *st, const char *sql, int n, const char *const *values)
	__attribute__((warn_unused_result));

/* Appends NAME, a NUL-terminated identifier, to B as a quoted SQL identifier ("...", each
 * '"' doubled) for a connection whose client_encoding is ENCODING (PostgreSQL's name of
 * it, as ParameterStatus reports it; NULL: unknown). The text is checked to be valid in
 * that encoding first, since the server reads it in that encoding: UTF8 fully (no
 * overlong forms, surrogates or code points past U+10FFFF), SQL_ASCII and the single-byte
 * encodings take any byte; in any other multibyte encoding, or an unknown one, only
 * ASCII text is quoted (a trailing byte there may be '"' or '\\'). False, with a static
 * reason in *WHY and nothing appended, when NAME is empty or not valid. */
bool hkquery_quote_ident(struct pbuf *b, const char *name, const char *encoding,
			 const char **why) __attribute__((warn_unused_result));

#endif
