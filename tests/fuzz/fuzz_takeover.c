/* Fuzzes the new process's reading of the old one's answer in an online restart
 * (showfds.h, as takeover.c's takeover_run reads it): the input is what the old process
 * sends on the console connection, messages back to back. Each whole message is copied
 * into a buffer of exactly its size (as takeover.c copies it), its kind read, an
 * ErrorResponse's text taken, a DataRow parsed in place and its parameters cut.
 * Oracles: nothing read or written outside the message (ASan); an error's text inside
 * the message and terminated there; a DataRow accepted exactly when a separate reading of
 * its columns finds at least 15, each inside the message, with a task and an fd, and then
 * every field the value of its column (up to a NUL in it), the SCRAM keys its hex; the
 * parameters within their room, inside the message, NAME without US, VALUE without RS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "proto.h"
#include "showfds.h"

#define MSG_MAX (1u << 20) /* takeover.c's bound on one message (OLD_MSG_MAX) */
#define MAX_PARAMS 93      /* takeover.c's room (CLIENT_MAX_PARAMS + SERVER_NPARAMS) */

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_takeover: %s\n", what);
		abort();
	}
}

/* Whether S is a string inside [LO, HI): it starts there and its NUL is there too. */
static bool inside(const char *s, const uint8_t *lo, const uint8_t *hi)
{
	const uint8_t *p = (const uint8_t *)s;
	return p >= lo && p < hi && memchr(p, 0, (size_t)(hi - p)) != NULL;
}

/* A column as the reference reading found it: NULL, or LEN bytes at P (in the pristine
 * copy of the row). */
struct col {
	const uint8_t *p;
	size_t len;
};

/* The reference reading of the DataRow body B (N bytes): whether it is well formed, its
 * first SHOWFDS_NCOLS columns into COLS. */
static bool ref_read(const uint8_t *b, size_t n, struct col *cols)
{
	memset(cols, 0, sizeof(*cols) * SHOWFDS_NCOLS);
	if (n < 2)
		return false;
	size_t ncols = (size_t)b[0] * 256 + b[1], pos = 2;
	if (ncols < SHOWFDS_PGB_NCOLS)
		return false;
	for (size_t i = 0; i < ncols && i < SHOWFDS_NCOLS; i++) {
		if (n - pos < 4)
			return false;
		uint32_t len = (uint32_t)b[pos] << 24 | (uint32_t)b[pos + 1] << 16 |
			       (uint32_t)b[pos + 2] << 8 | b[pos + 3];
		pos += 4;
		if (len & 0x80000000u)
			continue; /* negative: NULL */
		if (n - pos < len)
			return false;
		cols[i] = (struct col){b + pos, len};
		pos += len;
	}
	return cols[0].p && cols[1].p;
}

/* Field V (from column C) is the column's value up to its first NUL. */
static void same(const char *v, const struct col *c, const uint8_t *lo, const uint8_t *hi,
		 const char *what)
{
	if (!c->p) {
		check(v == NULL, what);
		return;
	}
	check(v != NULL && inside(v, lo, hi), what);
	const uint8_t *nul = memchr(c->p, 0, c->len);
	size_t len = nul ? (size_t)(nul - c->p) : c->len;
	check(strlen(v) == len && memcmp(v, c->p, len) == 0, what);
}

/* C as a NUL-terminated string (cut at 63 bytes: enough for the numbers). */
static const char *text_of(const struct col *c, char *buf)
{
	size_t len = c->len < 63 ? c->len : 63;
	memcpy(buf, c->p, len);
	buf[len] = 0;
	return buf;
}

static void check_key(const uint8_t *key, const struct col *c)
{
	static const char digits[] = "0123456789abcdef";
	check(c->p && c->len >= 2 + 2 * SCRAM_KEY_LEN && c->p[0] == '\\' && c->p[1] == 'x',
	      "keys from a column not \\x...");
	for (int i = 0; i < SCRAM_KEY_LEN; i++) {
		char h[2] = {digits[key[i] >> 4], digits[key[i] & 15]};
		for (int k = 0; k < 2; k++) {
			char got = (char)c->p[2 + 2 * i + k];
			if (got >= 'A' && got <= 'F')
				got = (char)(got - 'A' + 'a');
			check(got == h[k], "a key byte not its hex");
		}
	}
}

static void check_params(struct showfds_row *row, const uint8_t *lo, const uint8_t *hi,
			 int cap)
{
	const char **names = malloc(sizeof(*names) * (size_t)cap);
	const char **values = malloc(sizeof(*values) * (size_t)cap);
	check(names && values, "out of memory");
	bool all = row->all != NULL;
	int n = showfds_row_params(row, names, values, cap);
	check(n >= 0 && n <= cap, "more parameters than room");
	check(row->all == NULL, "pgcoro_params not cut");
	for (int i = 0; i < n; i++) {
		if (all) {
			check(inside(names[i], lo, hi) && inside(values[i], lo, hi),
			      "a parameter outside the row");
			check(!strchr(names[i], SHOWFDS_PARAM_US) &&
				      !strchr(values[i], SHOWFDS_PARAM_RS),
			      "a separator inside a parameter");
		} else {
			check(inside(values[i], lo, hi), "a reported value outside the row");
		}
	}
	if (!all) {
		int want = 0;
		for (int i = 0; i < 4; i++)
			want += row->params[i] != NULL;
		check(n == (want < cap ? want : cap), "reported values lost");
	}
	free(names);
	free(values);
}

static void read_row(uint8_t *body, uint32_t blen)
{
	uint8_t *pristine = malloc(blen ? blen : 1);
	check(pristine != NULL, "out of memory");
	memcpy(pristine, body, blen);
	struct col cols[SHOWFDS_NCOLS];
	bool want = ref_read(pristine, blen, cols);
	struct showfds_row row;
	bool got = showfds_parse_row(body, blen, &row);
	check(got == want, got ? "a malformed row accepted" : "a well-formed row refused");
	if (got) {
		const uint8_t *lo = body, *hi = body + blen;
		char buf[64];
		same(row.task, &cols[1], lo, hi, "task");
		same(row.user, &cols[2], lo, hi, "user");
		same(row.db, &cols[3], lo, hi, "database");
		same(row.addr, &cols[4], lo, hi, "addr");
		for (int i = 0; i < 4; i++)
			same(row.params[i], &cols[8 + i], lo, hi, "a reported parameter");
		same(row.password, &cols[12], lo, hi, "password");
		same(row.all, &cols[15], lo, hi, "pgcoro_params");
		check(row.oldfd == atoi(text_of(&cols[0], buf)), "fd");
		check(row.port == (cols[5].p ? atoi(text_of(&cols[5], buf)) : 0), "port");
		check(row.link == (cols[7].p ? atoi(text_of(&cols[7], buf)) : 0), "link");
		check(row.cancel ==
			      (cols[6].p ? strtoull(text_of(&cols[6], buf), NULL, 10) : 0),
		      "cancel");
		if (row.keys) {
			check_key(row.ckey, &cols[13]);
			check_key(row.skey, &cols[14]);
		}
		check_params(&row, lo, hi, (blen & 1) ? MAX_PARAMS : 1 + (int)(blen % 7));
		check_params(&row, lo, hi, MAX_PARAMS); /* cut once: the reported ones now */
	}
	free(pristine);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	struct proto_msg m;
	while (proto_next(data + off, size - off, MSG_MAX, &m) == PROTO_OK) {
		off += m.size;
		uint8_t *copy = malloc(m.size); /* exactly its size: a read past it is caught */
		check(copy != NULL, "out of memory");
		memcpy(copy, m.data, m.size);
		m.data = copy;
		m.body = copy + PROTO_HDR;
		const char *text = NULL;
		enum showfds_msg kind = showfds_msg_kind(&m, &text);
		switch (kind) {
		case SHOWFDS_ROW:
			check(m.type == 'D', "a row not a DataRow");
			read_row(copy + PROTO_HDR, m.blen);
			break;
		case SHOWFDS_ERROR:
			check(m.type == 'E', "an error not an ErrorResponse");
			check(text && (strcmp(text, "?") == 0 ||
				       inside(text, m.body, m.body + m.blen)),
			      "an error's text outside the message");
			break;
		case SHOWFDS_PASSWORD:
			check(m.type == 'R' && m.blen >= 4, "a password request not one");
			break;
		case SHOWFDS_READY:
			check(m.type == 'Z', "ready not a ReadyForQuery");
			break;
		case SHOWFDS_OTHER:
			check(m.type != 'D' && m.type != 'E' && m.type != 'Z', "a message missed");
			break;
		}
		free(copy);
	}
	return 0;
}
