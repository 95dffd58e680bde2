/* The SHOW FDS answer of an online restart (takeover.h) as bytes: its row format —
 * PgBouncer's 15 columns, then pgcoro's pgcoro_params — which the old process writes, and
 * the reading of that answer in the new process, message by message: pure functions over
 * the bytes the old process sent (no socket, no allocation; fuzzed by
 * tests/fuzz/fuzz_takeover.c). */
#ifndef PGCORO_SHOWFDS_H
#define PGCORO_SHOWFDS_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"
#include "scram.h"

/* PgBouncer's columns ("issssiqisssssbb": a PgBouncer reads its 15 and ignores more; its
 * rows have only those), then pgcoro's own: every parameter. */
#define SHOWFDS_PGB_NCOLS 15
#define SHOWFDS_NCOLS 16
extern const struct proto_column showfds_cols[SHOWFDS_NCOLS];

/* pgcoro_params: NAME US VALUE RS, for each: a server's reported parameters, a client's
 * startup parameters (with what its session SET of the tracked ones). */
#define SHOWFDS_PARAM_US '\x1f'
#define SHOWFDS_PARAM_RS '\x1e'

/* The reported parameters PgBouncer's columns carry, in their column order. */
extern const char *const showfds_reported[4];

/* One DataRow of the answer, read: every string is a NUL-terminated value inside the
 * row's message (NULL: SQL NULL, or a column a PgBouncer row lacks). */
struct showfds_row {
	int oldfd, port, link; /* atoi of their columns (0 when NULL) */
	uint64_t cancel;       /* backend pid << 32 | cancel key (strtoull of its column) */
	char *task;            /* never NULL: "pooler", "client", "server" or what was sent */
	char *user, *db, *addr;
	char *params[4]; /* showfds_reported's values */
	char *all;       /* pgcoro_params, or NULL (a PgBouncer's row) */
	char *password;  /* the secret auth_query found for user, or NULL */
	uint8_t ckey[SCRAM_KEY_LEN], skey[SCRAM_KEY_LEN];
	bool keys; /* both key columns were "\x" and SCRAM_KEY_LEN bytes in hex */
};

/* What one message of the old process's answer is. */
enum showfds_msg {
	SHOWFDS_OTHER,    /* nothing to act on (RowDescription, CommandComplete, ...) */
	SHOWFDS_ROW,      /* a DataRow: showfds_parse_row reads it */
	SHOWFDS_ERROR,    /* an ErrorResponse */
	SHOWFDS_PASSWORD, /* an Authentication request other than AuthenticationOk */
	SHOWFDS_READY,    /* ReadyForQuery: the answer ended */
};

/* The kind of message M (whole, as proto_next framed it). For SHOWFDS_ERROR *TEXT is its
 * message field, inside M's body, or "?" when it has none (or it is not terminated
 * there); otherwise *TEXT is left alone. */
enum showfds_msg showfds_msg_kind(const struct proto_msg *m, const char **text)
    __attribute__((warn_unused_result));

/* Reads the DataRow body BODY (BLEN bytes) into *ROW, in place: each value is moved over
 * its length field and NUL-terminated there, so ROW's strings point into BODY (which must
 * stay as long as ROW is used). False (BODY's bytes then undefined, *ROW unset) if the
 * row is malformed: fewer than SHOWFDS_PGB_NCOLS columns, a value past BLEN, or no task or
 * fd. Columns past SHOWFDS_NCOLS are ignored. */
bool showfds_parse_row(uint8_t *body, uint32_t blen, struct showfds_row *row)
    __attribute__((warn_unused_result));

/* ROW's parameters as NAMES/VALUES (CAP room each): its pgcoro_params, cut in place (once:
 * row->all is NULL after), else the showfds_reported values it has; returns their count
 * (at most CAP). The pairs point into ROW's message, or at showfds_reported. */
int showfds_row_params(struct showfds_row *row, const char **names, const char **values, int cap);

#endif
