/* Fuzzes every parser of proto.h over arbitrary bytes. The first byte picks the parser,
 * the rest is its input, in a buffer of exactly that size (so a read past it is caught).
 * Where a builder is the parser's inverse the message is rebuilt from what was parsed
 * and must come out byte for byte the same. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "proto.h"

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_proto: %s\n", what);
		abort();
	}
}

/* MSG (TYPE, then the length field, then BODY) equals what B holds. */
static void same_message(const struct pbuf *b, uint8_t type, const uint8_t *body, uint32_t blen,
			 const char *what)
{
	check(!b->failed && b->len == (size_t)blen + PROTO_HDR && b->data[0] == type &&
		      memcmp(b->data + PROTO_HDR, body, blen) == 0,
	      what);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void fuzz_frame(const uint8_t *d, size_t n, uint32_t max)
{
	struct proto_msg m;
	switch (proto_next(d, n, max, &m)) {
	case PROTO_OK:
		check(n >= PROTO_HDR && m.type == d[0] && m.len == be32(d + 1) && m.len >= 4 &&
			      m.len <= max && m.size == (size_t)m.len + 1 && m.size <= n &&
			      m.body == d + PROTO_HDR && m.blen == m.len - 4,
		      "proto_next: OK for a bad or partial message");
		break;
	case PROTO_BAD:
		check(n >= PROTO_HDR && (be32(d + 1) < 4 || be32(d + 1) > max),
		      "proto_next: BAD for a good header");
		break;
	case PROTO_NEED_MORE:
		check(n < PROTO_HDR || (size_t)be32(d + 1) + 1 > n, "proto_next: NEED_MORE when whole");
		check(n < PROTO_HDR || m.len == be32(d + 1), "proto_next: NEED_MORE without the length");
		break;
	}
}

/* As on_login_input calls it: framed first, parsed once whole. */
static void fuzz_startup(const uint8_t *d, size_t n)
{
	struct proto_msg m;
	if (proto_next_startup(d, n, &m) != PROTO_OK)
		return;
	uint32_t len = m.len;
	check(len >= 8 && len <= PROTO_STARTUP_MAX && len == be32(d) && m.size == len && len <= n,
	      "proto_next_startup");
	struct proto_startup st;
	memset(&st, 0, sizeof(st));
	const char *why = NULL;
	if (!proto_parse_startup(d, len, &st, &why)) {
		check(why != NULL, "proto_parse_startup: no reason");
		return;
	}
	const char *end = (const char *)d + len;
	if (st.kind != STARTUP_MSG)
		return;
	check(st.user && st.user[0] && st.user < end && st.nparams <= PROTO_MAX_PARAMS &&
		      st.nunrecognized <= PROTO_MAX_PARAMS,
	      "proto_parse_startup: bad result");
	size_t total = strlen(st.user) + (st.database ? strlen(st.database) : 0);
	for (int i = 0; i < st.nparams; i++)
		total += strlen(st.names[i]) + strlen(st.values[i]);
	for (int i = 0; i < st.nunrecognized; i++)
		total += strlen(st.unrecognized[i]);
	check(total < len, "proto_parse_startup: strings longer than the packet");
}

static void fuzz_parse(const uint8_t *b, uint32_t n, struct pbuf *out)
{
	const char *name;
	const uint8_t *rest;
	uint32_t rlen;
	if (!proto_parse_parse(b, n, &name, &rest, &rlen))
		return;
	proto_build_parse(out, name, rest, rlen);
	same_message(out, 'P', b, n, "Parse rebuilt differs");
}

static void fuzz_bind(const uint8_t *b, uint32_t n, struct pbuf *out)
{
	const char *portal, *stmt;
	const uint8_t *rest;
	uint32_t rlen;
	if (!proto_parse_bind(b, n, &portal, &stmt, &rest, &rlen))
		return;
	proto_build_bind(out, portal, stmt, rest, rlen);
	same_message(out, 'B', b, n, "Bind rebuilt differs");
}

static void fuzz_target(const uint8_t *b, uint32_t n, struct pbuf *out)
{
	uint8_t kind;
	const char *name;
	if (!proto_parse_target(b, n, &kind, &name))
		return;
	proto_build_target(out, 'D', kind, name);
	same_message(out, 'D', b, n, "Describe rebuilt differs");
}

static void fuzz_param_status(const uint8_t *b, uint32_t n, struct pbuf *out)
{
	const char *name, *value;
	if (!proto_parse_param_status(b, n, &name, &value))
		return;
	proto_build_param_status(out, name, value);
	same_message(out, 'S', b, n, "ParameterStatus rebuilt differs");
}

static void fuzz_password(const uint8_t *b, uint32_t n)
{
	const char *pw;
	if (proto_parse_password(b, n, &pw))
		check(strlen(pw) + 1 == n, "PasswordMessage: not one string");
}

static void fuzz_sasl(const uint8_t *b, uint32_t n)
{
	const char *mech;
	const uint8_t *data;
	uint32_t dlen;
	if (!proto_parse_sasl_initial(b, n, &mech, &data, &dlen))
		return;
	check(strlen(mech) + 1 + 4 + dlen == n && (!data || data + dlen == b + n),
	      "SASLInitialResponse: parts do not add up");
}

/* One LISTEN/UNLISTEN: its channel, quoted again, must parse to the same. */
static void fuzz_listen(const uint8_t *b, uint32_t n, size_t cap)
{
	char *channel = malloc(cap ? cap : 1);
	enum proto_listen k = proto_parse_listen((const char *)b, n, channel, cap);
	if (k == LISTEN_ONE || k == UNLISTEN_ONE) {
		size_t len = strlen(channel);
		check(len > 0 && len <= 63 && len < cap, "LISTEN: bad channel");
		char sql[200], again[64];
		size_t o = (size_t)snprintf(sql, sizeof(sql), "%s \"", k == LISTEN_ONE ? "listen" : "unlisten");
		for (size_t i = 0; i < len; i++) {
			if (channel[i] == '"')
				sql[o++] = '"';
			sql[o++] = channel[i];
		}
		sql[o++] = '"';
		check(proto_parse_listen(sql, o, again, sizeof(again)) == k &&
			      strcmp(again, channel) == 0,
		      "LISTEN: the channel quoted again parses differently");
	}
	free(channel);
}

/* One DEALLOCATE [PREPARE] name: the name, quoted again, must parse to the same. */
static void fuzz_deallocate(const uint8_t *b, uint32_t n, size_t cap)
{
	char *name = malloc(cap ? cap : 1);
	if (name && proto_parse_deallocate((const char *)b, n, name, cap)) {
		size_t len = strlen(name);
		check(len > 0 && len < cap, "DEALLOCATE: bad name");
		char sql[300], again[256];
		size_t o = (size_t)snprintf(sql, sizeof(sql), "deallocate prepare \"");
		for (size_t i = 0; i < len && o < sizeof(sql) - 4; i++) {
			if (name[i] == '"')
				sql[o++] = '"';
			sql[o++] = name[i];
		}
		sql[o++] = '"';
		if (o < sizeof(sql) - 2 && len < 120)
			check(proto_parse_deallocate(sql, o, again, sizeof(again)) &&
				      strcmp(again, name) == 0,
			      "DEALLOCATE: the name quoted again parses differently");
	}
	free(name);
}

static void fuzz_error_field(const uint8_t *b, uint32_t n, uint8_t code)
{
	const char *v = proto_error_field(b, n, code);
	if (v)
		check((const uint8_t *)v > b && (const uint8_t *)v + strlen(v) < b + n,
		      "proto_error_field: value outside the message");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t which = data[0], arg = data[1];
	const uint8_t *d = data + 2;
	uint32_t n = (uint32_t)(size - 2);
	struct pbuf out;
	pbuf_init(&out);
	switch (which % 13) {
	case 0:
		/* a small max (0..255) or a large one */
		fuzz_frame(d, n, arg < 128 ? arg : (uint32_t)arg << 16);
		break;
	case 1:
		fuzz_startup(d, n);
		break;
	case 2:
		fuzz_password(d, n);
		break;
	case 3:
		fuzz_sasl(d, n);
		break;
	case 4:
		fuzz_param_status(d, n, &out);
		break;
	case 5:
		fuzz_parse(d, n, &out);
		break;
	case 6:
		fuzz_bind(d, n, &out);
		break;
	case 7:
		fuzz_target(d, n, &out);
		break;
	case 8:
		fuzz_listen(d, n, arg);
		break;
	case 9:
		fuzz_error_field(d, n, arg);
		break;
	case 10:
		fuzz_listen(d, n, 64);
		break;
	case 11:
		fuzz_deallocate(d, n, 64 + (size_t)arg); /* CAP: at least 64 */
		break;
	default: /* a whole regular message: framed, then its body to the parser of its type */
	{
		struct proto_msg m;
		if (proto_next(d, n, 1u << 20, &m) != PROTO_OK)
			break;
		uint8_t type = m.type;
		uint32_t blen = m.blen;
		uint8_t *body = malloc(blen ? blen : 1); /* exactly the body: a read past it is caught */
		if (!body)
			break;
		memcpy(body, d + PROTO_HDR, blen);
		switch (type) {
		case 'P': fuzz_parse(body, blen, &out); break;
		case 'B': fuzz_bind(body, blen, &out); break;
		case 'D':
		case 'C': fuzz_target(body, blen, &out); break;
		case 'S': fuzz_param_status(body, blen, &out); break;
		case 'p': fuzz_password(body, blen); fuzz_sasl(body, blen); break;
		case 'E':
		case 'N': fuzz_error_field(body, blen, arg); break;
		case 'Q': fuzz_listen(body, blen, 64); fuzz_deallocate(body, blen, 64); break;
		default: break;
		}
		free(body);
	}
	}
	pbuf_free(&out);
	return 0;
}
