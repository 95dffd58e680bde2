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
 * characters only), into NAMES (lower case) unless there already; *N counts them. */
static void add_name(const char *p, size_t n, char names[][PIN_CUSTOM_NAME], int max, int *count)
{
	if (n == 0 || n >= PIN_CUSTOM_NAME || !memchr(p, '.', n))
		return;
	for (size_t i = 0; i < n; i++)
		if (!name_char(p[i]))
			return;
	char name[PIN_CUSTOM_NAME];
	for (size_t i = 0; i < n; i++)
		name[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
	name[n] = 0;
	for (int i = 0; i < *count; i++)
		if (strcmp(names[i], name) == 0)
			return;
	if (*count < max)
		memcpy(names[(*count)++], name, n + 1);
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

int pin_custom_names(const char *t, size_t n, char names[][PIN_CUSTOM_NAME], int max, int count)
{
	size_t i = skip_space(t, n, 0), j;
	if ((j = word_at(t, n, i, "set"))) {
		i = skip_space(t, n, j);
		if ((j = word_at(t, n, i, "session")))
			i = skip_space(t, n, j);
		j = i;
		while (j < n && name_char(t[j]))
			j++;
		add_name(t + i, j - i, names, max, &count);
	}
	for (const char *p = t, *end = t + n; (p = memmem(p, (size_t)(end - p), "_config", 7));) {
		size_t at = (size_t)(p - t);
		p += 7;
		if (at < 3 || strncasecmp(t + at - 3, "set", 3) != 0)
			continue;
		size_t k = skip_space(t, n, at + 7);
		if (k >= n || t[k] != '(')
			continue;
		k = skip_space(t, n, k + 1);
		if (k >= n || t[k] != '\'')
			continue;
		size_t e = k + 1;
		while (e < n && name_char(t[e]))
			e++;
		if (e < n && t[e] == '\'')
			add_name(t + k + 1, e - k - 1, names, max, &count);
	}
	return count;
}

/* The custom settings TEXT may set, asked for at the next release point. */
static void note_custom(client_t *c, const char *t, size_t n)
{
	char found[CUSTOM_MAX][PIN_CUSTOM_NAME];
	int k = pin_custom_names(t, n, found, CUSTOM_MAX, 0);
	if (!k || (!c->probe && !(c->probe = calloc(1, sizeof(*c->probe)))))
		return; /* none, or not asked for (no memory): not carried */
	struct pin_probe *pr = c->probe;
	for (int i = 0; i < k; i++)
		add_name(found[i], strlen(found[i]), pr->custom, CUSTOM_MAX, &pr->ncustom);
}

enum pin_look pin_client_msg(client_t *c, size_t off, const uint8_t *msg, size_t avail,
			     uint32_t len)
{
	size_t have = avail < (size_t)len + 1 ? avail : (size_t)len + 1;
	if (have <= PROTO_HDR)
		return PIN_PASS;
	const uint8_t *text = msg + PROTO_HDR;
	size_t tlen = have - PROTO_HDR;
	if (msg[0] == 'P') { /* past the statement's name */
		const uint8_t *z = memchr(text, 0, tlen);
		if (!z)
			return PIN_PASS;
		tlen -= (size_t)(z + 1 - text);
		text = z + 1;
	}
	uint32_t fx = sess_scan((const char *)text, tlen);
	if (__builtin_expect(!fx, 1))
		return PIN_PASS;
	if ((fx & SESS_PINS) && c->pool->pin_mode == PIN_ERROR && have == (size_t)len + 1)
		return refuse(c, off, msg, len, fx & SESS_PINS);
	if (fx == SESS_UNDO && !c->pins && !c->settings)
		return PIN_PASS; /* nothing of the session's that it could undo is known */
	if (fx & SESS_SETTING)
		note_custom(c, (const char *)text, tlen);
	c->pin_check |= (uint8_t)fx;
	return PIN_PASS;
}

/* ---- the release point ----------------------------------------------------------------- */

static const char probe_base[] =
    "SELECT 's', name, pg_catalog.current_setting(name) FROM pg_catalog.pg_settings "
    "WHERE source = 'session' AND name NOT LIKE 'transaction\\_%' "
    "UNION ALL SELECT 's', 'role', pg_catalog.current_setting('role') "
    "WHERE pg_catalog.current_setting('role') <> 'none' "
    "UNION ALL SELECT 'p', 'prepare', pg_catalog.count(*)::text "
    "FROM pg_catalog.pg_prepared_statements WHERE from_sql "
    "UNION ALL SELECT 'p', 'hold', pg_catalog.count(*)::text "
    "FROM pg_catalog.pg_cursors WHERE is_holdable "
    "UNION ALL SELECT 'p', 'advisory', pg_catalog.count(*)::text FROM pg_catalog.pg_locks "
    "WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid() "
    "UNION ALL SELECT 'p', 'temp', ((SELECT pg_catalog.count(*) FROM pg_catalog.pg_class "
    "WHERE relnamespace = pg_catalog.pg_my_temp_schema()) + (SELECT pg_catalog.count(*) "
    "FROM pg_catalog.pg_proc WHERE pronamespace = pg_catalog.pg_my_temp_schema()))::text";

/* One custom setting's question: its value unless not set (NULL) or reset (""). */
#define CUSTOM_SQL                                                                               \
	" UNION ALL SELECT 's', '%s', v FROM (SELECT pg_catalog.current_setting('%s', true) AS v) " \
	"x WHERE v <> ''"

const char *pin_probe_sql(const client_t *c)
{
	static char sql[sizeof(probe_base) + (CUSTOM_MAX + PIN_SETTINGS_MAX) *
						      (sizeof(CUSTOM_SQL) + 2 * PIN_CUSTOM_NAME)];
	size_t at = sizeof(probe_base) - 1;
	memcpy(sql, probe_base, at + 1);
	const struct pin_probe *pr = c->probe;
	for (int i = 0; pr && i < pr->ncustom; i++)
		at += (size_t)snprintf(sql + at, sizeof(sql) - at, CUSTOM_SQL, pr->custom[i],
				       pr->custom[i]);
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
			at += (size_t)snprintf(sql + at, sizeof(sql) - at, CUSTOM_SQL, name, name);
	}
	return sql;
}

bool pin_release_slow(client_t *c, server_t *s)
{
	if (c->pin_check & ~SESS_LOAD) {
		if (!c->probe) /* NULL: pin_probe_done takes it as failed */
			c->probe = calloc(1, sizeof(*c->probe));
		server_probe(s);
		return false;
	}
	if (c->pin_check) { /* LOAD alone: nothing to ask, nothing undoes it */
		c->pin_check = 0;
		uint32_t old = c->pins;
		c->pins |= SESS_LOAD;
		if (old != c->pins) {
			char why[96];
			pin_counts[4]++;
			if (!old)
				c->pool->cl_pinned++;
			s->pinned = true;
			log_info("client %llu %s (%s@%s): pinned to server %llu: %s",
				 (unsigned long long)c->id, client_peer(c), c->user, c->pool->dbname,
				 (unsigned long long)s->id, pin_reasons(c->pins, why, sizeof(why)));
		}
	}
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
		uint32_t pins = c->pins | (seen & SESS_PINS);
		if (seen & SESS_SETTING)
			pins |= PIN_SETTINGS;
		set_pins(c, s, pins);
		probe_free(c);
		return;
	}
	uint32_t pins = probe->pins | (c->pins & SESS_LOAD) | (seen & SESS_LOAD);
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
