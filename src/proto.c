/* The PostgreSQL v3 wire protocol as pure functions: a growable output buffer with
 * big-endian builders for the messages pgcoro originates, framing of regular and
 * startup-style packets, and bounds-checked parsers for the few client messages it must
 * decode. Nothing here does I/O; parsers never read outside [body, body + blen). */
#include "proto.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PBUF_MIN_CAP 256u

/* ---- building ------------------------------------------------------------------------ */

void pbuf_init(struct pbuf *b)
{
	memset(b, 0, sizeof(*b));
}

void pbuf_reset(struct pbuf *b)
{
	b->len = 0;
	b->msg_start = 0;
	b->failed = false;
}

void pbuf_free(struct pbuf *b)
{
	free(b->data);
	pbuf_init(b);
}

/* Makes room for N more bytes; false (and failed set) when that is impossible. */
static bool pbuf_reserve(struct pbuf *b, size_t n)
{
	if (b->failed)
		return false;
	if (n <= b->cap - b->len)
		return true;
	if (n > SIZE_MAX / 2 - b->len) {
		b->failed = true;
		return false;
	}
	size_t need = b->len + n;
	size_t cap = b->cap ? b->cap : PBUF_MIN_CAP;
	while (cap < need)
		cap *= 2;
	uint8_t *p = realloc(b->data, cap);
	if (!p) {
		b->failed = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

static void put_be32_at(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void proto_put_bytes(struct pbuf *b, const void *p, size_t n)
{
	if (n == 0 || !pbuf_reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void proto_put_u8(struct pbuf *b, uint8_t v)
{
	proto_put_bytes(b, &v, 1);
}

void proto_put_u16(struct pbuf *b, uint16_t v)
{
	uint8_t be[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	proto_put_bytes(b, be, sizeof(be));
}

void proto_put_u32(struct pbuf *b, uint32_t v)
{
	uint8_t be[4];
	put_be32_at(be, v);
	proto_put_bytes(b, be, sizeof(be));
}

void proto_put_str(struct pbuf *b, const char *s)
{
	proto_put_bytes(b, s, strlen(s) + 1);
}

/* The length placeholder is 0, so a non-zero byte at msg_start can only be a type byte:
 * that is how proto_end knows where the length field is. */
void proto_begin(struct pbuf *b, uint8_t type)
{
	b->msg_start = b->len;
	if (type)
		proto_put_u8(b, type);
	proto_put_u32(b, 0);
}

void proto_end(struct pbuf *b)
{
	if (b->failed || b->len < b->msg_start + 4)
		return;
	size_t off = b->msg_start + (b->data[b->msg_start] != 0 ? 1 : 0);
	size_t n = b->len - off;
	if (n > UINT32_MAX) {
		b->failed = true;
		return;
	}
	put_be32_at(b->data + off, (uint32_t)n);
}

static void build_err_notice(struct pbuf *b, uint8_t type, const char *severity,
			     const char *sqlstate, const char *message, const char *detail,
			     const char *hint)
{
	proto_begin(b, type);
	proto_put_u8(b, 'S');
	proto_put_str(b, severity);
	proto_put_u8(b, 'V');
	proto_put_str(b, severity);
	proto_put_u8(b, 'C');
	proto_put_str(b, sqlstate);
	proto_put_u8(b, 'M');
	proto_put_str(b, message);
	if (detail) {
		proto_put_u8(b, 'D');
		proto_put_str(b, detail);
	}
	if (hint) {
		proto_put_u8(b, 'H');
		proto_put_str(b, hint);
	}
	proto_put_u8(b, 0);
	proto_end(b);
}

void proto_build_error(struct pbuf *b, const char *severity, const char *sqlstate,
		       const char *message, const char *detail, const char *hint)
{
	build_err_notice(b, 'E', severity, sqlstate, message, detail, hint);
}

void proto_build_notice(struct pbuf *b, const char *severity, const char *sqlstate,
			const char *message, const char *detail)
{
	build_err_notice(b, 'N', severity, sqlstate, message, detail, NULL);
}

void proto_build_auth(struct pbuf *b, uint32_t code, const void *data, size_t len)
{
	proto_begin(b, 'R');
	proto_put_u32(b, code);
	proto_put_bytes(b, data, len);
	proto_end(b);
}

void proto_build_auth_sasl(struct pbuf *b)
{
	proto_begin(b, 'R');
	proto_put_u32(b, AUTH_REQ_SASL);
	proto_put_str(b, "SCRAM-SHA-256");
	proto_put_u8(b, 0);
	proto_end(b);
}

void proto_build_param_status(struct pbuf *b, const char *name, const char *value)
{
	proto_begin(b, 'S');
	proto_put_str(b, name);
	proto_put_str(b, value);
	proto_end(b);
}

void proto_build_backend_key(struct pbuf *b, uint32_t pid, uint32_t key)
{
	proto_begin(b, 'K');
	proto_put_u32(b, pid);
	proto_put_u32(b, key);
	proto_end(b);
}

void proto_build_ready(struct pbuf *b, uint8_t status)
{
	proto_begin(b, 'Z');
	proto_put_u8(b, status);
	proto_end(b);
}

void proto_build_row_description(struct pbuf *b, const struct proto_column *cols, int n)
{
	proto_begin(b, 'T');
	proto_put_u16(b, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		proto_put_str(b, cols[i].name);
		proto_put_u32(b, 0); /* table oid */
		proto_put_u16(b, 0); /* column number */
		proto_put_u32(b, cols[i].type_oid);
		proto_put_u16(b, (uint16_t)cols[i].type_len);
		proto_put_u32(b, 0xFFFFFFFFu); /* typmod -1 */
		proto_put_u16(b, 0);           /* text format */
	}
	proto_end(b);
}

void proto_build_data_row(struct pbuf *b, const char *const *values, int n)
{
	proto_begin(b, 'D');
	proto_put_u16(b, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		if (!values[i]) {
			proto_put_u32(b, 0xFFFFFFFFu);
			continue;
		}
		size_t len = strlen(values[i]);
		proto_put_u32(b, (uint32_t)len);
		proto_put_bytes(b, values[i], len);
	}
	proto_end(b);
}

void proto_build_empty_query(struct pbuf *b)
{
	proto_begin(b, 'I');
	proto_end(b);
}

void proto_build_command_complete(struct pbuf *b, const char *tag)
{
	proto_begin(b, 'C');
	proto_put_str(b, tag);
	proto_end(b);
}

void proto_build_negotiate(struct pbuf *b, uint32_t version, const char *const *names, int n)
{
	proto_begin(b, 'v');
	proto_put_u32(b, version);
	proto_put_u32(b, (uint32_t)(n > 0 ? n : 0));
	for (int i = 0; i < n; i++)
		proto_put_str(b, names[i]);
	proto_end(b);
}

/* ---- framing ------------------------------------------------------------------------- */

const uint8_t proto_server_fixed_len[256] = {
    ['1'] = 4, ['2'] = 4, ['3'] = 4, ['n'] = 4, ['s'] = 4, ['I'] = 4, ['Z'] = 5,
};

const uint8_t proto_frontend_type[256] = {
    ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['H'] = 1, ['P'] = 1,
    ['Q'] = 1, ['S'] = 1, ['X'] = 1, ['c'] = 1, ['d'] = 1, ['f'] = 1,
};

enum proto_frame proto_next(const uint8_t *data, size_t avail, uint32_t max_len,
			    struct proto_msg *m)
{
	*m = (struct proto_msg){.data = data};
	if (avail < PROTO_HDR)
		return PROTO_NEED_MORE;
	m->type = data[0];
	m->len = get_be32(data + 1);
	if (m->len < 4 || m->len > max_len)
		return PROTO_BAD;
	m->size = (size_t)m->len + 1;
	if (avail < m->size)
		return PROTO_NEED_MORE;
	m->body = data + PROTO_HDR;
	m->blen = m->len - 4;
	return PROTO_OK;
}

enum proto_frame proto_next_startup(const uint8_t *data, size_t avail, struct proto_msg *m)
{
	*m = (struct proto_msg){.data = data};
	if (avail < 4)
		return PROTO_NEED_MORE;
	m->len = get_be32(data);
	if (m->len < 8 || m->len > PROTO_STARTUP_MAX)
		return PROTO_BAD;
	m->size = m->len;
	if (avail < m->size)
		return PROTO_NEED_MORE;
	m->body = data + 4;
	m->blen = m->len - 4;
	return PROTO_OK;
}

/* ---- parsing ------------------------------------------------------------------------- */

/* The NUL-terminated string at P[*POS], which must end before P[END]. Advances *POS past
 * the NUL. NULL when there is no NUL in range. */
static const char *take_str(const uint8_t *p, uint32_t end, uint32_t *pos)
{
	if (*pos >= end)
		return NULL;
	const uint8_t *nul = memchr(p + *pos, 0, end - *pos);
	if (!nul)
		return NULL;
	const char *s = (const char *)(p + *pos);
	*pos = (uint32_t)(nul - p) + 1;
	return s;
}

bool proto_parse_startup(const uint8_t *pkt, uint32_t len, struct proto_startup *out,
			 const char **why)
{
	memset(out, 0, sizeof(*out));
	if (len < 8 || get_be32(pkt) != len) {
		*why = "invalid length of startup packet";
		return false;
	}
	uint32_t code = get_be32(pkt + 4);

	if (code == PROTO_SSL_CODE || code == PROTO_GSSENC_CODE) {
		out->kind = code == PROTO_SSL_CODE ? STARTUP_SSL : STARTUP_GSSENC;
		if (len != 8) {
			*why = "invalid length of encryption request packet";
			return false;
		}
		return true;
	}
	if (code == PROTO_CANCEL_CODE) {
		out->kind = STARTUP_CANCEL;
		if (len != 16) {
			*why = "invalid length of cancel request packet";
			return false;
		}
		out->cancel_pid = get_be32(pkt + 8);
		out->cancel_key = get_be32(pkt + 12);
		return true;
	}

	out->kind = STARTUP_MSG;
	out->version = code;
	if (code >> 16 != 3) {
		*why = "unsupported protocol version";
		return false;
	}

	uint32_t pos = 8;
	for (;;) {
		if (pos >= len) {
			*why = "invalid startup packet layout: missing terminator";
			return false;
		}
		if (pkt[pos] == 0)
			break;
		const char *name = take_str(pkt, len, &pos);
		if (!name) {
			*why = "invalid startup packet layout: unterminated parameter name";
			return false;
		}
		if (pos >= len) {
			*why = "invalid startup packet layout: parameter name without value";
			return false;
		}
		const char *value = take_str(pkt, len, &pos);
		if (!value) {
			*why = "invalid startup packet layout: unterminated parameter value";
			return false;
		}
		if (strcmp(name, "user") == 0) {
			out->user = value;
		} else if (strcmp(name, "database") == 0) {
			out->database = value;
		} else if (strncmp(name, "_pq_.", 5) == 0) {
			if (out->nunrecognized >= PROTO_MAX_PARAMS) {
				*why = "too many protocol options in startup packet";
				return false;
			}
			out->unrecognized[out->nunrecognized++] = name;
		} else {
			if (out->nparams >= PROTO_MAX_PARAMS) {
				*why = "too many parameters in startup packet";
				return false;
			}
			out->names[out->nparams] = name;
			out->values[out->nparams] = value;
			out->nparams++;
		}
	}
	if (pos != len - 1) {
		*why = "invalid startup packet layout: expected terminator as last byte";
		return false;
	}
	if (!out->user || !out->user[0]) {
		*why = "no PostgreSQL user name specified in startup packet";
		return false;
	}
	return true;
}

bool proto_parse_password(const uint8_t *body, uint32_t blen, const char **password)
{
	if (blen == 0 || memchr(body, 0, blen) != body + blen - 1)
		return false;
	*password = (const char *)body;
	return true;
}

bool proto_parse_sasl_initial(const uint8_t *body, uint32_t blen, const char **mech,
			      const uint8_t **data, uint32_t *datalen)
{
	uint32_t pos = 0;
	const char *m = take_str(body, blen, &pos);
	if (!m || blen - pos < 4)
		return false;
	int32_t n = (int32_t)get_be32(body + pos);
	pos += 4;
	if (n == -1) {
		if (pos != blen)
			return false;
		*data = NULL;
		*datalen = 0;
	} else {
		if (n < 0 || (uint32_t)n != blen - pos)
			return false;
		*data = body + pos;
		*datalen = (uint32_t)n;
	}
	*mech = m;
	return true;
}

bool proto_parse_param_status(const uint8_t *body, uint32_t blen, const char **name,
			      const char **value)
{
	uint32_t pos = 0;
	const char *n = take_str(body, blen, &pos);
	const char *v = n ? take_str(body, blen, &pos) : NULL;
	if (!v || pos != blen)
		return false;
	*name = n;
	*value = v;
	return true;
}

const char *proto_error_field(const uint8_t *body, uint32_t blen, uint8_t code)
{
	uint32_t pos = 0;
	while (pos < blen) {
		uint8_t c = body[pos++];
		if (c == 0)
			return NULL;
		const char *s = take_str(body, blen, &pos);
		if (!s)
			return NULL;
		if (c == code)
			return s;
	}
	return NULL;
}

/* ---- extended protocol: renaming statements (prepared.c) ---------------------------- */

bool proto_parse_parse(const uint8_t *body, uint32_t blen, const char **name,
		       const uint8_t **rest, uint32_t *rlen)
{
	uint32_t pos = 0;
	const char *n = take_str(body, blen, &pos);
	if (!n)
		return false;
	*name = n;
	*rest = body + pos;
	*rlen = blen - pos;
	return true;
}

bool proto_parse_bind(const uint8_t *body, uint32_t blen, const char **portal, const char **stmt,
		      const uint8_t **rest, uint32_t *rlen)
{
	uint32_t pos = 0;
	const char *p = take_str(body, blen, &pos);
	const char *s = p ? take_str(body, blen, &pos) : NULL;
	if (!s)
		return false;
	*portal = p;
	*stmt = s;
	*rest = body + pos;
	*rlen = blen - pos;
	return true;
}

bool proto_parse_target(const uint8_t *body, uint32_t blen, uint8_t *kind, const char **name)
{
	uint32_t pos = 1;
	if (blen < 2)
		return false;
	const char *n = take_str(body, blen, &pos);
	if (!n || pos != blen)
		return false;
	*kind = body[0];
	*name = n;
	return true;
}

void proto_build_parse(struct pbuf *b, const char *name, const uint8_t *rest, uint32_t rlen)
{
	proto_begin(b, 'P');
	proto_put_str(b, name);
	proto_put_bytes(b, rest, rlen);
	proto_end(b);
}

void proto_build_bind(struct pbuf *b, const char *portal, const char *stmt, const uint8_t *rest,
		      uint32_t rlen)
{
	proto_begin(b, 'B');
	proto_put_str(b, portal);
	proto_put_str(b, stmt);
	proto_put_bytes(b, rest, rlen);
	proto_end(b);
}

void proto_build_target(struct pbuf *b, uint8_t type, uint8_t kind, const char *name)
{
	proto_begin(b, type);
	proto_put_u8(b, kind);
	proto_put_str(b, name);
	proto_end(b);
}

void proto_build_empty(struct pbuf *b, uint8_t type)
{
	proto_begin(b, type);
	proto_end(b);
}

void proto_build_execute(struct pbuf *b, const char *portal, uint32_t max_rows)
{
	proto_begin(b, 'E');
	proto_put_str(b, portal);
	proto_put_u32(b, max_rows);
	proto_end(b);
}

void proto_build_query(struct pbuf *b, const char *sql)
{
	proto_begin(b, 'Q');
	proto_put_str(b, sql);
	proto_end(b);
}

/* ---- LISTEN / UNLISTEN (notify.c), DEALLOCATE (prepared.c) ------------------------- */

#define IDENT_MAX 63 /* NAMEDATALEN - 1 */

static size_t skip_space(const char *s, size_t i, size_t len)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' ||
			   s[i] == '\f' || s[i] == '\v'))
		i++;
	return i;
}

static bool keyword_at(const char *s, size_t i, size_t len, const char *kw)
{
	size_t n = strlen(kw);
	if (len - i < n)
		return false;
	for (size_t k = 0; k < n; k++) {
		char ch = s[i + k];
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (ch != kw[k])
			return false;
	}
	return true;
}

static bool ident_char(char ch, bool first)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
	       (!first && ((ch >= '0' && ch <= '9') || ch == '$'));
}

/* The identifier at SQL[*I] (LEN bytes) as PostgreSQL names it, into OUT (at least
 * IDENT_MAX + 1 bytes): quoted as written ("" for a quote), else lower-cased (ASCII). *I
 * moves past it. False for none, one over IDENT_MAX bytes, a non-ASCII unquoted one and
 * an empty quoted one. */
static bool ident_at(const char *sql, size_t *i, size_t len, char *out)
{
	size_t k = *i, o = 0;
	if (k >= len)
		return false;
	if (sql[k] == '"') {
		for (k++;; k++) {
			if (k >= len)
				return false;
			if (sql[k] == '"') {
				if (k + 1 < len && sql[k + 1] == '"')
					k++;
				else
					break;
			}
			if (sql[k] == 0 || o >= IDENT_MAX)
				return false;
			out[o++] = sql[k];
		}
		k++;
		if (o == 0)
			return false;
	} else {
		if (!ident_char(sql[k], true))
			return false;
		while (k < len && ident_char(sql[k], false)) {
			if (o >= IDENT_MAX)
				return false;
			char ch = sql[k++];
			out[o++] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
		}
	}
	out[o] = 0;
	*i = k;
	return true;
}

/* Keyword KW at SQL[*I], followed by white space (skipped: *I moves past it) or, when
 * QUOTE, a quoted identifier. */
static bool keyword_then(const char *sql, size_t *i, size_t len, const char *kw, bool quote)
{
	if (!keyword_at(sql, *i, len, kw))
		return false;
	size_t k = *i + strlen(kw), j = skip_space(sql, k, len);
	if (j == k && !(quote && j < len && sql[j] == '"'))
		return false; /* "LISTENx" */
	*i = j;
	return true;
}

/* Only white space and one optional ';' from SQL[I] to LEN. */
static bool statement_ends(const char *sql, size_t i, size_t len)
{
	i = skip_space(sql, i, len);
	if (i < len && sql[i] == ';')
		i = skip_space(sql, i + 1, len);
	return i == len;
}

enum proto_listen proto_parse_listen(const char *sql, size_t len, char *channel, size_t cap)
{
	size_t i = skip_space(sql, 0, len);
	enum proto_listen kind;
	if (keyword_then(sql, &i, len, "listen", true))
		kind = LISTEN_ONE;
	else if (keyword_then(sql, &i, len, "unlisten", true))
		kind = UNLISTEN_ONE;
	else
		return LISTEN_OTHER;
	if (cap < IDENT_MAX + 1 || i >= len)
		return LISTEN_OTHER;
	if (kind == UNLISTEN_ONE && sql[i] == '*') {
		kind = UNLISTEN_ALL;
		i++;
	} else if (!ident_at(sql, &i, len, channel)) {
		return LISTEN_OTHER;
	}
	return statement_ends(sql, i, len) ? kind : LISTEN_OTHER;
}

enum proto_replication proto_parse_replication(const char *value)
{
	static const struct {
		const char *word;
		size_t min; /* the shortest prefix that names it */
		bool yes;
	} words[] = {{"true", 1, true},  {"yes", 1, true}, {"on", 2, true},  {"1", 1, true},
		     {"false", 1, false}, {"no", 1, false}, {"off", 2, false}, {"0", 1, false}};
	if (strcmp(value, "database") == 0)
		return PROTO_REPL_LOGICAL;
	size_t n = strlen(value);
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (n >= words[i].min && strncasecmp(value, words[i].word, n) == 0)
			return words[i].yes ? PROTO_REPL_PHYSICAL : PROTO_REPL_NONE;
	return PROTO_REPL_INVALID;
}

bool proto_parse_deallocate(const char *sql, size_t len, char *name, size_t cap)
{
	size_t i = skip_space(sql, 0, len);
	if (cap < IDENT_MAX + 1 || !keyword_then(sql, &i, len, "deallocate", true))
		return false;
	size_t k = i;
	if (keyword_then(sql, &k, len, "prepare", true))
		i = k; /* else a name that begins "prepare..." */
	if (keyword_at(sql, i, len, "all") && (i + 3 == len || !ident_char(sql[i + 3], false)))
		return false; /* DEALLOCATE ALL: every statement (prepared.c sees its tag) */
	return ident_at(sql, &i, len, name) && statement_ends(sql, i, len);
}

void proto_build_notification(struct pbuf *b, uint32_t pid, const char *channel,
			      const char *payload)
{
	proto_begin(b, 'A');
	proto_put_u32(b, pid);
	proto_put_str(b, channel);
	proto_put_str(b, payload);
	proto_end(b);
}
