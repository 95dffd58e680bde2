/* Owns pgcoro's own queries on connected servers (hkquery.h): building them (simple
 * Query, or Parse/Bind/Execute/Sync with text parameters; identifiers quoted for the
 * connection's encoding), writing them through the connection's stream, and reading
 * their answers. The parser is pure (bytes in, summary and callbacks out) so that it is
 * unit-tested and fuzzed; the stream helpers are its only I/O. */
#include "hkquery.h"

#include <string.h>

#include "stream.h"

static struct pbuf out; /* the request being built, reused */

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- reading ------------------------------------------------------------------------- */

void hkquery_begin(struct hkquery *q, const struct hkquery_ops *ops, void *arg)
{
	/* the text fields are cleared by their first use (the first ErrorResponse) */
	q->ops = ops;
	q->arg = arg;
	q->skip = 0;
	q->results = q->rows = q->copy_in = 0;
	q->failed = q->fatal = false;
	q->tx_status = 0;
	q->sqlstate[0] = q->tag[0] = q->message[0] = q->detail[0] = q->hint[0] = '\0';
}

/* How the parser treats a server message type. */
enum kind {
	K_BAD = 0, /* never part of such an answer */
	K_WHOLE,   /* looked at whole (skipped, with its effect counted, past HKQUERY_MSG_MAX) */
	K_SKIP,    /* passed over unread */
};

static const uint8_t kinds[256] = {
	['C'] = K_WHOLE, ['I'] = K_WHOLE, ['E'] = K_WHOLE, ['N'] = K_WHOLE, ['S'] = K_WHOLE,
	['A'] = K_WHOLE, ['Z'] = K_WHOLE, ['D'] = K_WHOLE, ['G'] = K_WHOLE,
	/* RowDescription, the extended protocol's completions, ParameterDescription, and a
	 * COPY TO STDOUT's data (its end is a CommandComplete) */
	['T'] = K_SKIP, ['1'] = K_SKIP, ['2'] = K_SKIP, ['3'] = K_SKIP, ['n'] = K_SKIP,
	['s'] = K_SKIP, ['t'] = K_SKIP, ['H'] = K_SKIP, ['d'] = K_SKIP, ['c'] = K_SKIP,
};

/* Copies the NUL-terminated SRC (NULL: "") into DST of CAP bytes, cut if need be before
 * a UTF-8 continuation byte (the texts pass on to clients and logs). */
static void copy_text(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strlen(src) : 0;
	if (n >= cap) {
		n = cap - 1;
		while (n > 0 && ((uint8_t)src[n] & 0xC0) == 0x80)
			n--;
	}
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

static bool is_fatal(const char *severity)
{
	return severity && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0);
}

/* The non-localised severity of an ErrorResponse / NoticeResponse body, else the
 * localised one. */
static const char *severity_of(const uint8_t *body, uint32_t blen)
{
	const char *sev = proto_error_field(body, blen, 'V');
	return sev ? sev : proto_error_field(body, blen, 'S');
}

static void on_error(struct hkquery *q, const uint8_t *body, uint32_t blen)
{
	bool first = !q->failed;
	q->failed = true;
	if (!first)
		return;
	const char *sev = severity_of(body, blen);
	q->fatal = is_fatal(sev);
	const char *code = proto_error_field(body, blen, 'C');
	copy_text(q->sqlstate, sizeof(q->sqlstate), code && strlen(code) == 5 ? code : NULL);
	const char *msg = proto_error_field(body, blen, 'M');
	copy_text(q->message, sizeof(q->message), msg ? msg : "server error");
	copy_text(q->detail, sizeof(q->detail), proto_error_field(body, blen, 'D'));
	copy_text(q->hint, sizeof(q->hint), proto_error_field(body, blen, 'H'));
}

/* The effect of a message of TYPE too long to look at: counted, not read. */
static void on_too_long(struct hkquery *q, uint8_t type)
{
	switch (type) {
	case 'C':
		q->results++;
		q->tag[0] = '\0';
		break;
	case 'D':
		q->rows++;
		break;
	case 'E':
		if (!q->failed) {
			q->failed = true;
			copy_text(q->message, sizeof(q->message),
				  "an error message too long for pgcoro to read");
		}
		break;
	default: /* a notice, a ParameterStatus or a notification: not read (the relay
	          * does not read such a ParameterStatus either) */
		break;
	}
}

/* NotificationResponse: int32 pid, channel, payload, ending at BLEN. */
static bool on_notification(struct hkquery *q, const uint8_t *body, uint32_t blen)
{
	if (blen < 6)
		return false;
	const uint8_t *chan = body + 4, *end = body + blen;
	const uint8_t *z = memchr(chan, 0, (size_t)(end - chan));
	if (!z)
		return false;
	const uint8_t *payload = z + 1;
	z = payload < end ? memchr(payload, 0, (size_t)(end - payload)) : NULL;
	if (!z || z + 1 != end)
		return false;
	if (q->ops && q->ops->notification)
		q->ops->notification(q->arg, be32(body), (const char *)chan, (const char *)payload);
	return true;
}

/* DataRow: int16 columns, then each as int32 length (-1: NULL) and bytes. */
static bool on_row(struct hkquery *q, const uint8_t *body, uint32_t blen)
{
	q->rows++;
	if (blen < 2)
		return false;
	uint16_t ncols = (uint16_t)(body[0] << 8 | body[1]);
	const uint8_t *value = NULL;
	uint32_t len = 0;
	if (ncols > 0) {
		if (blen < 6)
			return false;
		len = be32(body + 2);
		if (len == UINT32_MAX) {
			len = 0;
		} else if (len > blen - 6) {
			return false;
		} else {
			value = body + 6;
		}
	}
	if (q->ops && q->ops->row)
		q->ops->row(q->arg, value, len);
	if (q->ops && q->ops->datarow)
		q->ops->datarow(q->arg, body, blen);
	return true;
}

/* Reads one whole message of TYPE; false with *WHY when it is malformed. */
static bool on_message(struct hkquery *q, uint8_t type, const uint8_t *body, uint32_t blen,
		       const char **why)
{
	switch (type) {
	case 'C':
		if (!blen || body[blen - 1] != 0 || memchr(body, 0, blen) != body + blen - 1) {
			*why = "the server sent a malformed CommandComplete";
			return false;
		}
		q->results++;
		copy_text(q->tag, sizeof(q->tag), (const char *)body);
		return true;
	case 'I':
		q->results++;
		q->tag[0] = '\0';
		return true;
	case 'E':
		on_error(q, body, blen);
		return true;
	case 'N':
		if (q->ops && q->ops->notice) {
			const char *sev = severity_of(body, blen), *msg = proto_error_field(body, blen, 'M');
			q->ops->notice(q->arg, sev ? sev : "", msg ? msg : "");
		}
		return true;
	case 'S': {
		const char *name, *value;
		if (!proto_parse_param_status(body, blen, &name, &value)) {
			*why = "the server sent a malformed ParameterStatus";
			return false;
		}
		if (q->ops && q->ops->param)
			q->ops->param(q->arg, name, value);
		return true;
	}
	case 'A':
		if (!on_notification(q, body, blen)) {
			*why = "the server sent a malformed NotificationResponse";
			return false;
		}
		return true;
	case 'D':
		if (!on_row(q, body, blen)) {
			*why = "the server sent a malformed DataRow";
			return false;
		}
		return true;
	case 'G': /* CopyInResponse: int8 format, int16 columns, an int16 format each */
		if (blen < 3 || blen != 3 + 2 * (uint32_t)(body[1] << 8 | body[2])) {
			*why = "the server sent a malformed CopyInResponse";
			return false;
		}
		q->copy_in++;
		return true;
	case 'Z':
		if (body[0] != 'I' && body[0] != 'T' && body[0] != 'E') {
			*why = "the server sent a ReadyForQuery with an unknown transaction status";
			return false;
		}
		q->tx_status = body[0];
		return true;
	default:
		*why = "the server sent an unexpected message";
		return false;
	}
}

enum hkquery_status hkquery_parse(struct hkquery *q, const uint8_t *data, size_t len,
				  size_t *used, const char **why)
{
	size_t i = 0;
	enum hkquery_status st = HKQUERY_MORE;
	while (i < len) {
		if (q->skip) {
			size_t n = len - i < q->skip ? len - i : q->skip;
			q->skip -= (uint32_t)n;
			i += n;
			continue;
		}
		if (len - i < PROTO_HDR)
			break;
		uint8_t type = data[i];
		uint32_t mlen = be32(data + i + 1);
		uint8_t fixed = proto_server_fixed_len[type];
		if (mlen < 4 || (fixed && mlen != fixed) || mlen > UINT32_MAX - 1) {
			*why = "the server sent a message with an invalid length";
			st = HKQUERY_BAD;
			break;
		}
		enum kind k = kinds[type];
		if (k == K_BAD) {
			*why = type == 'W' ? "the server started a COPY of replication"
					   : "the server sent a message that does not answer a query";
			st = HKQUERY_BAD;
			break;
		}
		size_t size = (size_t)mlen + 1;
		if (k == K_SKIP || size > HKQUERY_MSG_MAX) {
			if (k == K_WHOLE)
				on_too_long(q, type);
			q->skip = (uint32_t)size;
			continue;
		}
		if (size > len - i)
			break; /* looked at whole: wait for the rest */
		i += size;
		if (!on_message(q, type, data + i - size + PROTO_HDR, mlen - 4, why)) {
			st = HKQUERY_BAD;
			break;
		}
		if (type == 'Z') {
			st = HKQUERY_DONE;
			break;
		}
	}
	*used = i;
	return st;
}

static bool send_out(struct stream *st)
{
	if (out.failed)
		return false;
	stream_send(st, out.data, out.len);
	return true;
}

enum hkquery_status hkquery_read(struct hkquery *q, struct stream *st, const char **why)
{
	size_t n, used;
	const uint8_t *p = stream_input(st, &n);
	enum hkquery_status r = hkquery_parse(q, p, n, &used, why);
	stream_consume(st, used);
	for (; q->copy_in && r != HKQUERY_BAD; q->copy_in--) {
		pbuf_reset(&out);
		proto_begin(&out, 'f');
		proto_put_str(&out, "pgcoro's own queries send no COPY data");
		proto_end(&out);
		if (!send_out(st)) {
			*why = "out of memory for a CopyFail";
			return HKQUERY_BAD;
		}
	}
	return r;
}

/* ---- writing ------------------------------------------------------------------------- */

bool hkquery_send(struct stream *st, const char *sql)
{
	pbuf_reset(&out);
	proto_build_query(&out, sql);
	return send_out(st);
}

bool hkquery_send_params(struct stream *st, const char *sql, int n, const char *const *values)
{
	if (n < 0 || n > UINT16_MAX)
		return false;
	pbuf_reset(&out);
	proto_begin(&out, 'P');
	proto_put_str(&out, ""); /* the unnamed statement */
	proto_put_str(&out, sql);
	proto_put_u16(&out, 0); /* parameter types: the server infers them */
	proto_end(&out);
	proto_begin(&out, 'B');
	proto_put_str(&out, ""); /* the unnamed portal */
	proto_put_str(&out, "");
	proto_put_u16(&out, 0); /* every parameter in text */
	proto_put_u16(&out, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		size_t vlen = values[i] ? strlen(values[i]) : 0;
		if (vlen > INT32_MAX)
			return false;
		proto_put_u32(&out, values[i] ? (uint32_t)vlen : UINT32_MAX);
		proto_put_bytes(&out, values[i], vlen);
	}
	proto_put_u16(&out, 0); /* every result column in text */
	proto_end(&out);
	proto_build_execute(&out, "", 0);
	proto_build_empty(&out, 'S');
	return send_out(st);
}

/* ---- quoting ------------------------------------------------------------------------- */

/* PostgreSQL's encodings whose every byte is one character (and SQL_ASCII, which takes
 * any byte), as it names them in ParameterStatus. */
static const char *const single_byte[] = {
	"SQL_ASCII", "LATIN1",     "LATIN2",     "LATIN3",     "LATIN4",  "LATIN5",
	"LATIN6",    "LATIN7",     "LATIN8",     "LATIN9",     "LATIN10", "ISO_8859_5",
	"ISO_8859_6", "ISO_8859_7", "ISO_8859_8", "WIN1250",   "WIN1251", "WIN1252",
	"WIN1253",   "WIN1254",    "WIN1255",    "WIN1256",    "WIN1257", "WIN1258",
	"WIN866",    "WIN874",     "KOI8R",      "KOI8U",
};

/* Bytes of the valid UTF-8 character at P (AVAIL bytes), or 0 if none starts there: the
 * lead byte's length, continuation bytes 80-BF, and the second byte's narrower ranges
 * that exclude overlong forms (E0, F0), surrogates (ED) and past U+10FFFF (F4). */
static size_t utf8_char(const uint8_t *p, size_t avail)
{
	uint8_t c = p[0];
	size_t n;
	uint8_t lo = 0x80, hi = 0xBF; /* the second byte's range */
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else {
		return 0;
	}
	if (avail < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return n;
}

/* Why NAME (LEN bytes) cannot be sent as text in ENCODING, or NULL if it can. */
static const char *invalid_in(const char *name, size_t len, const char *encoding)
{
	const uint8_t *p = (const uint8_t *)name;
	bool ascii = true;
	for (size_t i = 0; i < len && ascii; i++)
		ascii = p[i] < 0x80;
	if (ascii)
		return NULL;
	if (encoding && strcmp(encoding, "UTF8") == 0) {
		for (size_t i = 0; i < len;) {
			size_t n = utf8_char(p + i, len - i);
			if (!n)
				return "invalid byte sequence for encoding \"UTF8\"";
			i += n;
		}
		return NULL;
	}
	for (size_t k = 0; encoding && k < sizeof(single_byte) / sizeof(single_byte[0]); k++)
		if (strcmp(encoding, single_byte[k]) == 0)
			return NULL;
	return "non-ASCII text in a multibyte client_encoding other than UTF8";
}

bool hkquery_quote_ident(struct pbuf *b, const char *name, const char *encoding,
			 const char **why)
{
	size_t len = strlen(name);
	if (!len) {
		*why = "an empty identifier";
		return false;
	}
	if ((*why = invalid_in(name, len, encoding)))
		return false;
	proto_put_u8(b, '"');
	for (const char *p = name, *q; *p; p = q) {
		q = strchr(p, '"');
		if (!q) {
			proto_put_bytes(b, p, strlen(p));
			break;
		}
		q++; /* up to and with the quote, which is then doubled */
		proto_put_bytes(b, p, (size_t)(q - p));
		proto_put_u8(b, '"');
	}
	proto_put_u8(b, '"');
	return true;
}
