/* Owns transparent pinning (pin.h): what a client's statements may do to its session, the
 * question put to its server at the release point and what the answer does (its pins,
 * its settings), the pin_session_state = error refusal, and the pin counters. */
#include "pin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "config.h"
#include "log.h"
#include "pool.h"
#include "proto.h"
#include "server.h"

uint64_t pin_counts[8];

/* ---- the client's statements ----------------------------------------------------------- */

/* Custom settings (a dotted name: "myapp.tenant") that no catalog view lists while they
 * are placeholders: their names are taken from the statements that set them, and asked
 * for one by one. */
#define CUSTOM_MAX 16

/* The client's next question and its answer being read (a client's, while its server is
 * asked). */
struct pin_probe {
	int ncustom;   /* custom names seen since the last answer */
	char custom[CUSTOM_MAX][PIN_CUSTOM_NAME];
	uint32_t pins;
	int n;
	size_t bytes;
	bool overflow; /* more settings than replay carries */
	char *kv[2 * PIN_SETTINGS_MAX];
};

static void probe_free(client_t *c)
{
	struct pin_probe *p = c->probe;
	if (!p)
		return;
	for (int i = 0; i < 2 * p->n; i++)
		free(p->kv[i]);
	free(p);
	c->probe = NULL;
}


/* The statement that stands in for a refused one (pin_session_state = error): it fails
 * on the server, in its turn, as the client's statement would have, so the transaction's
 * state and the order of answers stay PostgreSQL's. %s: what was refused. */
#define REFUSE_SQL                                                                               \
	"DO $pgcoro$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = "                     \
	"'pin_session_state = error: %s makes session state that transaction pooling cannot "      \
	"keep', HINT = 'Use a session-mode pool for this code, or set pin_session_state = on to "  \
	"keep the server for the session while the state lives.'; END$pgcoro$"

static const char *refused_what(uint32_t pins)
{
	if (pins & SESS_PREPARE)
		return "PREPARE";
	if (pins & SESS_HOLD)
		return "a WITH HOLD cursor";
	if (pins & SESS_ADVISORY)
		return "a session advisory lock";
	if (pins & SESS_TEMP)
		return "a temporary object";
	return "LOAD";
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* The Query or Parse at MSG (whole: LEN + 1 bytes) with its statement text replaced by
 * REFUSE_SQL, into C's input at OFF. A Parse keeps its name and parameter types. */
static enum pin_look refuse(client_t *c, size_t off, const uint8_t *msg, uint32_t len,
			    uint32_t pins)
{
	char sql[768];
	int sl = snprintf(sql, sizeof(sql), REFUSE_SQL, refused_what(pins));
	if (sl < 0 || (size_t)sl >= sizeof(sql))
		fatal("pin: refusal text too long");
	const uint8_t *end = msg + 1 + len;
	const uint8_t *name = msg + PROTO_HDR, *text = name, *tail = end;
	size_t name_len = 0;
	if (msg[0] == 'P') {
		const uint8_t *z = memchr(name, 0, (size_t)(end - name));
		if (!z)
			return PIN_PASS; /* malformed: the server answers it */
		name_len = (size_t)(z - name) + 1;
		text = z + 1;
		const uint8_t *tz = memchr(text, 0, (size_t)(end - text));
		if (!tz)
			return PIN_PASS;
		tail = tz + 1; /* the parameter types */
	} else {
		tail = end; /* the Query's text runs to its end (its NUL included) */
	}
	size_t tail_len = msg[0] == 'P' ? (size_t)(end - tail) : 0;
	size_t nlen = PROTO_HDR + name_len + (size_t)sl + 1 + tail_len;
	uint8_t *m = malloc(nlen);
	if (!m) {
		client_disconnect(c, "53200", "out of memory");
		return PIN_FAILED;
	}
	m[0] = msg[0];
	put32(m + 1, (uint32_t)(nlen - 1));
	memcpy(m + PROTO_HDR, name, name_len);
	memcpy(m + PROTO_HDR + name_len, sql, (size_t)sl + 1);
	memcpy(m + PROTO_HDR + name_len + (size_t)sl + 1, tail, tail_len);
	bool ok = stream_input_replace(&c->st, off, (size_t)len + 1, m, nlen);
	free(m);
	if (!ok) {
		client_disconnect(c, "53200", "out of memory");
		return PIN_FAILED;
	}
	char why[96];
	log_info("client %llu %s (%s@%s): statement refused (pin_session_state = error): %s",
		 (unsigned long long)c->id, client_peer(c), c->user, c->pool->dbname,
		 pin_reasons(pins, why, sizeof(why)));
	return PIN_REPLACED;
}

static bool name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '.' || ch == '$';
}

/* The custom setting named by the N bytes at P, if it is one (a dotted name of name
 * characters only), into NAMES (lower case) unless there already; *COUNT counts them. One
 * that does not fit (too long, or past MAX) sets *LOST. */
static void add_name(const char *p, size_t n, char names[][PIN_CUSTOM_NAME], int max, int *count,
		     bool *lost)
{
	if (n == 0 || !memchr(p, '.', n))
		return;
	for (size_t i = 0; i < n; i++)
		if (!name_char(p[i]))
			return;
	if (n >= PIN_CUSTOM_NAME) {
		*lost = true;
		return;
	}
	char name[PIN_CUSTOM_NAME];
	for (size_t i = 0; i < n; i++)
		name[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
	name[n] = 0;
	for (int i = 0; i < *count; i++)
		if (strcmp(names[i], name) == 0)
			return;
	if (*count < max)
		memcpy(names[(*count)++], name, n + 1);
	else
		*lost = true;
}

static size_t skip_space(const char *t, size_t n, size_t i)
{
	while (i < n && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
		i++;
	return i;
}

/* WORD (lower case) at T[I..N) in any case, followed by a non-name byte: the index after
 * it, else 0. */
static size_t word_at(const char *t, size_t n, size_t i, const char *word)
{
	size_t l = strlen(word);
	if (n - i < l || strncasecmp(t + i, word, l) != 0 || (i + l < n && name_char(t[i + l])))
		return 0;
	return i + l;
}

/* "SET [SESSION] name" at T[I..N): the name into NAMES. */
static void set_at(const char *t, size_t n, size_t i, char names[][PIN_CUSTOM_NAME], int max,
		   int *count, bool *lost)
{
	size_t j;
	i = skip_space(t, n, i);
	if (!(j = word_at(t, n, i, "set")))
		return;
	i = skip_space(t, n, j);
	if ((j = word_at(t, n, i, "session")))
		i = skip_space(t, n, j);
	j = i;
	while (j < n && name_char(t[j]))
		j++;
	add_name(t + i, j - i, names, max, count, lost);
}

int pin_custom_names(const char *t, size_t n, char names[][PIN_CUSTOM_NAME], int max, int count,
		     bool *lost)
{
	/* at the start of the text and after each ';' (one inside a literal only costs a
	 * look-up of a name that is not set) */
	set_at(t, n, 0, names, max, &count, lost);
	for (const char *p = t, *end = t + n; (p = memchr(p, ';', (size_t)(end - p))); p++)
		set_at(t, n, (size_t)(p - t) + 1, names, max, &count, lost);
	for (const char *p = t, *end = t + n; (p = memmem(p, (size_t)(end - p), "_config", 7));) {
		size_t at = (size_t)(p - t);
		p += 7;
		if (at < 3 || strncasecmp(t + at - 3, "set", 3) != 0)
			continue;
		size_t k = skip_space(t, n, at + 7);
		if (k >= n || t[k] != '(')
			continue;
		k = skip_space(t, n, k + 1);
		if (k >= n || t[k] != '\'') {
			*lost = true; /* a name in a parameter or a column: not known */
			continue;
		}
		size_t e = k + 1;
		while (e < n && name_char(t[e]))
			e++;
		if (e < n && t[e] == '\'')
			add_name(t + k + 1, e - k - 1, names, max, &count, lost);
		else
			*lost = true; /* a quote inside the name: not read */
	}
	return count;
}

/* The custom settings TEXT may set, asked for at the next release point; one that cannot
 * be asked for pins the client until it leaves (its value cannot be carried). */
static void note_custom(client_t *c, const char *t, size_t n)
{
	char found[CUSTOM_MAX][PIN_CUSTOM_NAME];
	bool lost = false;
	int k = pin_custom_names(t, n, found, CUSTOM_MAX, 0, &lost);
	if (k && !c->probe && !(c->probe = calloc(1, sizeof(*c->probe))))
		lost = true;
	struct pin_probe *pr = c->probe;
	for (int i = 0; i < k && pr; i++)
		add_name(found[i], strlen(found[i]), pr->custom, CUSTOM_MAX, &pr->ncustom, &lost);
	if (lost)
		c->pin_sticky |= PIN_SETTINGS;
}

/* ---- statements run later than their Parse ------------------------------------------- */

/* What a client's prepared statements may do (only those whose text may do something),
 * by name: their Bind sets pin_check, as a Query's text does. */
#define STMTS_MAX 64
#define STMT_NAME 64
struct pin_stmts {
	int n;
	uint8_t lost_fx; /* of statements not kept (a long name, past STMTS_MAX): every Bind
	                  * gets it */
	struct {
		uint8_t fx;
		char name[STMT_NAME];
	} s[STMTS_MAX];
};

static int stmt_find(const struct pin_stmts *t, const char *name, size_t n)
{
	for (int i = 0; t && i < t->n; i++)
		if (strlen(t->s[i].name) == n && memcmp(t->s[i].name, name, n) == 0)
			return i;
	return -1;
}

/* A Parse of statement NAME (N bytes) whose text may do FX. */
static void stmt_parsed(client_t *c, const char *name, size_t n, uint32_t fx)
{
	struct pin_stmts *t = c->pin_stmts;
	int i = stmt_find(t, name, n);
	if (i >= 0) {
		if (fx) {
			t->s[i].fx = (uint8_t)fx;
		} else { /* the name means another text now */
			t->s[i] = t->s[--t->n];
		}
		return;
	}
	if (!fx)
		return;
	if (!t && !(t = c->pin_stmts = calloc(1, sizeof(*t)))) {
		c->pin_check |= (uint8_t)fx; /* no memory: asked after this transaction at least */
		return;
	}
	if (n >= STMT_NAME || t->n == STMTS_MAX) {
		t->lost_fx |= (uint8_t)fx;
		return;
	}
	memcpy(t->s[t->n].name, name, n);
	t->s[t->n].name[n] = 0;
	t->s[t->n++].fx = (uint8_t)fx;
}

/* Bind (portal, statement names) or Close ('S' or 'P', name) at MSG, whose head (up to
 * its names) is at hand. */
static void stmt_used(client_t *c, const uint8_t *msg, size_t have)
{
	struct pin_stmts *t = c->pin_stmts;
	const char *p = (const char *)msg + PROTO_HDR, *end = (const char *)msg + have;
	if (msg[0] == 'C') {
		if (p >= end || *p != 'S')
			return;
		p++;
		const char *z = memchr(p, 0, (size_t)(end - p));
		int i = z ? stmt_find(t, p, (size_t)(z - p)) : -1;
		if (i >= 0)
			t->s[i] = t->s[--t->n];
		return;
	}
	const char *z = memchr(p, 0, (size_t)(end - p)); /* past the portal's name */
	const char *name = z ? z + 1 : end;
	const char *z2 = name < end ? memchr(name, 0, (size_t)(end - name)) : NULL;
	int i = z2 ? stmt_find(t, name, (size_t)(z2 - name)) : -1;
	uint32_t fx = t->lost_fx | (i >= 0 ? t->s[i].fx : 0);
	if (!z2) /* names longer than the head looked at: whatever any may do */
		for (int k = 0; k < t->n; k++)
			fx |= t->s[k].fx;
	c->pin_check |= (uint8_t)fx;
}

bool pin_must_wait(const client_t *c, const uint8_t *msg, size_t avail, uint32_t len)
{
	if (avail > len)
		return false; /* whole */
	if (msg[0] == 'Q' || msg[0] == 'P')
		return len < PIN_TEXT_MAX;
	if (avail >= PIN_HEAD_MAX || avail <= PROTO_HDR)
		return avail <= PROTO_HDR;
	/* a Bind's two names, a Close's one */
	const uint8_t *p = msg + PROTO_HDR, *end = msg + avail;
	const uint8_t *z = memchr(p, 0, (size_t)(end - p));
	if (msg[0] == 'C' || !z)
		return !z;
	return !memchr(z + 1, 0, (size_t)(end - z - 1));
}

enum pin_look pin_client_msg(client_t *c, size_t off, const uint8_t *msg, size_t avail,
			     uint32_t len)
{
	size_t have = avail < (size_t)len + 1 ? avail : (size_t)len + 1;
	if (have <= PROTO_HDR)
		return PIN_PASS;
	if (msg[0] == 'B' || msg[0] == 'C') {
		stmt_used(c, msg, have);
		return PIN_PASS;
	}
	const uint8_t *text = msg + PROTO_HDR, *name = NULL;
	size_t tlen = have - PROTO_HDR;
	if (msg[0] == 'P') { /* past the statement's name */
		const uint8_t *z = memchr(text, 0, tlen);
		if (!z)
			return PIN_PASS;
		name = text;
		tlen -= (size_t)(z + 1 - text);
		text = z + 1;
	}
	uint32_t fx = sess_scan((const char *)text, tlen);
	if (name && (fx || c->pin_stmts))
		stmt_parsed(c, (const char *)name, strlen((const char *)name), fx);
	if (__builtin_expect(!fx, 1))
		return PIN_PASS;
	if ((fx & SESS_PINS) && c->pool->pin_mode == PIN_ERROR && have == (size_t)len + 1)
		return refuse(c, off, msg, len, fx & SESS_PINS);
	if (fx & SESS_SETTING)
		note_custom(c, (const char *)text, tlen);
	if (name)
		return PIN_PASS; /* what it may do is done by its Bind */
	if (fx == SESS_UNDO && !c->pins && !c->settings)
		return PIN_PASS; /* nothing of the session's that it could undo is known */
	c->pin_check |= (uint8_t)fx;
	return PIN_PASS;
}

/* ---- the release point ----------------------------------------------------------------- */

/* Every name and operator qualified: the client's search_path (its own schema first, or
 * pg_temp's) must not answer for the catalog. */
#define EQ " OPERATOR(pg_catalog.=) "
#define NE " OPERATOR(pg_catalog.<>) "
#define TEXT "::pg_catalog.text"
#define TEMP_COUNT(cat, col)                                                                     \
	"(SELECT pg_catalog.count(*) FROM pg_catalog." cat " WHERE " col EQ                        \
	"pg_catalog.pg_my_temp_schema())"
static const char probe_base[] =
    "SELECT 's'" TEXT ", name, pg_catalog.current_setting(name) FROM pg_catalog.pg_settings "
    "WHERE source" EQ "'session' AND NOT name OPERATOR(pg_catalog.~~) 'transaction\\_%' "
    "UNION ALL SELECT 's', 'role', pg_catalog.current_setting('role') "
    "WHERE pg_catalog.current_setting('role')" NE "'none' "
    "UNION ALL SELECT 'p', 'prepare', pg_catalog.count(*)" TEXT
    " FROM pg_catalog.pg_prepared_statements WHERE from_sql "
    "UNION ALL SELECT 'p', 'hold', pg_catalog.count(*)" TEXT
    " FROM pg_catalog.pg_cursors WHERE is_holdable "
    "UNION ALL SELECT 'p', 'advisory', pg_catalog.count(*)" TEXT " FROM pg_catalog.pg_locks "
    "WHERE locktype" EQ "'advisory' AND pid" EQ "pg_catalog.pg_backend_pid() "
    /* temporary relations, functions and types (a domain, an enum) */
    "UNION ALL SELECT 'p', 'temp', (" TEMP_COUNT("pg_class", "relnamespace") " OPERATOR("
    "pg_catalog.+) " TEMP_COUNT("pg_proc", "pronamespace") " OPERATOR(pg_catalog.+) "
    TEMP_COUNT("pg_type", "typnamespace") ")" TEXT;

/* One custom setting's question: its value unless not set (NULL) or reset (""). */
#define CUSTOM_SQL                                                                               \
	" UNION ALL SELECT 's', '%s', v FROM (SELECT pg_catalog.current_setting('%s', true) AS v) " \
	"x WHERE v" NE "''"

/* CUSTOM_SQL for NAME at SQL[AT] (CAP bytes in all): the new end. The buffer is sized
 * for every name there can be; should it not be, a question is left out, never cut. */
static size_t append(char *sql, size_t cap, size_t at, const char *name)
{
	int n = snprintf(sql + at, cap - at, CUSTOM_SQL, name, name);
	if (n < 0 || (size_t)n >= cap - at) {
		sql[at] = 0;
		return at;
	}
	return at + (size_t)n;
}

const char *pin_probe_sql(const client_t *c)
{
	static char sql[sizeof(probe_base) + (CUSTOM_MAX + PIN_SETTINGS_MAX) *
						      (sizeof(CUSTOM_SQL) + 2 * PIN_CUSTOM_NAME)];
	size_t at = sizeof(probe_base) - 1;
	memcpy(sql, probe_base, at + 1);
	const struct pin_probe *pr = c->probe;
	for (int i = 0; pr && i < pr->ncustom; i++)
		at = append(sql, sizeof(sql), at, pr->custom[i]);
	/* those it has: asked again (a RESET may have ended them) */
	for (int i = 0; c->settings && i < c->settings->n; i++) {
		const char *name = c->settings->kv[2 * i];
		size_t n = strlen(name);
		bool custom = n < PIN_CUSTOM_NAME && strchr(name, '.');
		for (size_t k = 0; custom && k < n; k++)
			custom = name_char(name[k]);
		for (int k = 0; custom && pr && k < pr->ncustom; k++)
			custom = strcmp(pr->custom[k], name) != 0;
		if (custom)
			at = append(sql, sizeof(sql), at, name);
	}
	return sql;
}

static void set_pins(client_t *c, server_t *s, uint32_t pins);

bool pin_release_slow(client_t *c, server_t *s)
{
	/* LOAD cannot be asked about nor undone: it pins until the client leaves */
	c->pin_sticky |= c->pin_check & SESS_LOAD;
	c->pin_check &= (uint8_t)~SESS_LOAD;
	if (c->pin_check) {
		if (!c->probe) /* NULL: pin_probe_done takes it as failed */
			c->probe = calloc(1, sizeof(*c->probe));
		server_probe(s);
		return false;
	}
	if (c->pin_sticky & ~c->pins)
		set_pins(c, s, c->pins | c->pin_sticky);
	return c->pins == 0;
}

bool pin_parse_row(const uint8_t *body, uint32_t blen, uint8_t *kind, const uint8_t **name,
		   uint32_t *nlen, const uint8_t **value, uint32_t *vlen)
{
	if (blen < 2 || ((uint32_t)body[0] << 8 | body[1]) != 3)
		return false;
	const uint8_t *f[3];
	uint32_t fl[3];
	uint32_t at = 2;
	for (int i = 0; i < 3; i++) {
		if (blen - at < 4)
			return false;
		uint32_t l = be32(body + at);
		at += 4;
		if (l == 0xffffffffu || l > blen - at)
			return false; /* NULL or past the row */
		f[i] = body + at;
		fl[i] = l;
		at += l;
	}
	if (at != blen || fl[0] != 1)
		return false;
	*kind = f[0][0];
	*name = f[1];
	*nlen = fl[1];
	*value = f[2];
	*vlen = fl[2];
	return true;
}

static bool is(const uint8_t *p, uint32_t n, const char *word)
{
	return n == strlen(word) && memcmp(p, word, n) == 0;
}

/* A tracked reported parameter: the sync already carries it per client (server.c). */
static bool tracked(const client_t *c, const uint8_t *name, uint32_t n)
{
	char buf[64];
	if (n >= sizeof(buf))
		return false;
	memcpy(buf, name, n);
	buf[n] = 0;
	int i = server_param_index(buf);
	return i >= 0 && (server_tracked_mask(c->pool) & 1u << i);
}

static char *dup_text(const uint8_t *p, uint32_t n)
{
	if (memchr(p, 0, n))
		return NULL;
	char *s = malloc((size_t)n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = 0;
	}
	return s;
}

void pin_probe_row(client_t *c, const uint8_t *body, uint32_t blen)
{
	struct pin_probe *probe = c->probe;
	uint8_t kind;
	const uint8_t *name, *value;
	uint32_t nlen, vlen;
	if (!probe || !pin_parse_row(body, blen, &kind, &name, &nlen, &value, &vlen))
		return;
	if (kind == 'p') {
		bool some = !(vlen == 1 && value[0] == '0');
		if (!some)
			return;
		if (is(name, nlen, "prepare"))
			probe->pins |= SESS_PREPARE;
		else if (is(name, nlen, "hold"))
			probe->pins |= SESS_HOLD;
		else if (is(name, nlen, "advisory"))
			probe->pins |= SESS_ADVISORY;
		else if (is(name, nlen, "temp"))
			probe->pins |= SESS_TEMP;
		return;
	}
	if (kind != 's' || tracked(c, name, nlen))
		return;
	if (is(name, nlen, "temp_buffers")) {
		/* PostgreSQL refuses to set it in a session that used a temporary table: not
		 * carried to another server, kept on this one */
		probe->overflow = true;
		return;
	}
	for (int i = 0; i < probe->n; i++) /* a custom setting asked for twice */
		if (strlen(probe->kv[2 * i]) == nlen && memcmp(probe->kv[2 * i], name, nlen) == 0)
			return;
	if (probe->n == PIN_SETTINGS_MAX || probe->bytes + nlen + vlen + 2 > PIN_SETTINGS_BYTES) {
		probe->overflow = true;
		return;
	}
	char *k = dup_text(name, nlen), *v = dup_text(value, vlen);
	if (!k || !v) {
		free(k);
		free(v);
		probe->overflow = true; /* not carried: pinned instead */
		return;
	}
	probe->kv[2 * probe->n] = k;
	probe->kv[2 * probe->n + 1] = v;
	probe->n++;
	probe->bytes += (size_t)nlen + vlen + 2;
}

/* PROBE's settings as one block (NULL: none, or no memory: *OK false). */
static struct pin_settings *settings_build(const struct pin_probe *probe, bool *ok)
{
	*ok = true;
	if (!probe->n)
		return NULL;
	size_t head = sizeof(struct pin_settings) + 2 * (size_t)probe->n * sizeof(char *);
	struct pin_settings *ps = malloc(head + probe->bytes);
	if (!ps) {
		*ok = false;
		return NULL;
	}
	char *w = (char *)ps + head;
	uint64_t h = 0xcbf29ce484222325ull;
	for (int i = 0; i < 2 * probe->n; i++) {
		size_t n = strlen(probe->kv[i]) + 1;
		ps->kv[i] = memcpy(w, probe->kv[i], n);
		w += n;
		for (size_t j = 0; j < n; j++)
			h = (h ^ (uint8_t)probe->kv[i][j]) * 0x100000001b3ull;
	}
	ps->n = probe->n;
	ps->sig = (h & ~1ull) | 2; /* even and non-zero: client_other_sig is never 0 */
	return ps;
}

static void set_pins(client_t *c, server_t *s, uint32_t pins)
{
	uint32_t old = c->pins;
	c->pins = (uint8_t)pins;
	s->pinned = pins != 0;
	if (old == pins)
		return;
	char why[96];
	for (int b = 0; b < 8; b++)
		if ((pins & ~old) & 1u << b)
			pin_counts[b]++;
	if (!old)
		c->pool->cl_pinned++;
	else if (!pins)
		c->pool->cl_pinned--;
	if (pins & ~old)
		log_info("client %llu %s (%s@%s): pinned to server %llu: %s",
			 (unsigned long long)c->id, client_peer(c), c->user, c->pool->dbname,
			 (unsigned long long)s->id, pin_reasons(pins, why, sizeof(why)));
	else if (!pins)
		log_info("client %llu %s (%s@%s): unpinned from server %llu",
			 (unsigned long long)c->id, client_peer(c), c->user, c->pool->dbname,
			 (unsigned long long)s->id);
}

void pin_probe_done(client_t *c, server_t *s, const struct hkquery *q)
{
	struct pin_probe *probe = c->probe;
	uint32_t seen = c->pin_check;
	c->pin_check = 0;
	if (!probe || q->failed) {
		/* not known: what may have been made is taken as made */
		log_warning("client %llu %s (%s@%s): asking server %llu what the session holds "
				    "failed: %s",
				    (unsigned long long)c->id, client_peer(c), c->user, c->pool->dbname,
				    (unsigned long long)s->id, probe ? q->message : "out of memory");
		uint32_t pins = c->pins | (seen & SESS_PINS) | c->pin_sticky;
		if (seen & SESS_SETTING)
			pins |= PIN_SETTINGS;
		set_pins(c, s, pins);
		probe_free(c);
		return;
	}
	uint32_t pins = probe->pins | c->pin_sticky;
	bool ok = true;
	struct pin_settings *ps = probe->overflow ? NULL : settings_build(probe, &ok);
	if (probe->overflow || !ok) {
		pins |= PIN_SETTINGS;
	} else {
		free(c->settings);
		c->settings = ps;
		c->settings_sig = ps ? ps->sig : 0;
	}
	/* S has the client's settings as its session left them: a sync will set them
	 * again on a later hand-out to C, another client's undoes them first */
	s->applied_sig = 0;
	s->applied_other = true;
	s->synced_sig = 0;
	set_pins(c, s, pins);
	probe_free(c);
}

void pin_client_free(client_t *c)
{
	probe_free(c);
	if (c->pins && c->pool)
		c->pool->cl_pinned--;
	c->pins = 0;
	c->pin_check = 0;
	c->pin_sticky = 0;
	free(c->pin_stmts);
	c->pin_stmts = NULL;
	free(c->settings);
	c->settings = NULL;
	c->settings_sig = 0;
}

const char *pin_reasons(uint32_t reasons, char *buf, size_t cap)
{
	static const char *const names[8] = {"prepare",   "hold_cursor", "advisory_lock",
					     "temp_table", "load",       "setting",
					     "undo",       "settings"};
	size_t at = 0;
	buf[0] = 0;
	for (int b = 0; b < 8; b++) {
		if (!(reasons & 1u << b))
			continue;
		int n = snprintf(buf + at, cap - at, "%s%s", at ? "," : "", names[b]);
		if (n < 0 || (size_t)n >= cap - at)
			break;
		at += (size_t)n;
	}
	return buf;
}
