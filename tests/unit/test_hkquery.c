/* Unit tests of hkquery: the reading of a server's answer to pgcoro's own queries (the
 * summary, the callbacks, messages split anywhere, skipped long messages, what is refused),
 * the requests written to a stream, and identifier quoting per client_encoding. */
#include <check.h>

#include "unit.h"
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "hkquery.h"
#include "proto.h"
#include "stream.h"

/* What the callbacks saw, as text. */
static char seen[4096];

/* Appends "K:A=B;" to what was seen. */
static void add_seen(char k, const char *a, const char *b)
{
	size_t n = strlen(seen);
	snprintf(seen + n, sizeof(seen) - n, "%c:%s=%s;", k, a, b);
}

static void cb_param(void *arg, const char *name, const char *value)
{
	add_seen('S', name, value);
}

static void cb_notification(void *arg, uint32_t pid, const char *channel, const char *payload)
{
	char both[256];
	snprintf(both, sizeof(both), "%u/%s", (unsigned)pid, channel);
	add_seen('A', both, payload);
}

static void cb_notice(void *arg, const char *severity, const char *message)
{
	add_seen('N', severity, message);
}

static void cb_row(void *arg, const uint8_t *value, uint32_t len)
{
	char v[128];
	if (value)
		snprintf(v, sizeof(v), "%.*s", (int)len, (const char *)value);
	else
		snprintf(v, sizeof(v), "NULL");
	size_t n = strlen(seen);
	snprintf(seen + n, sizeof(seen) - n, "D:%s;", v);
}

static const struct hkquery_ops ops = {
	.param = cb_param, .notification = cb_notification, .notice = cb_notice, .row = cb_row};

/* Parses B's bytes in pieces of STEP bytes (0: all at once) the way a stream owner does:
 * what was not used stays at the head of what comes next. Returns the status of the last
 * call, *USED the bytes used in all. */
static enum hkquery_status parse_in_pieces(struct hkquery *q, const struct pbuf *b, size_t step,
					   size_t *used, const char **why)
{
	size_t have = 0, off = 0; /* the unconsumed input is b->data[off, have) */
	enum hkquery_status st = HKQUERY_MORE;
	while (have < b->len) {
		have += step ? (b->len - have < step ? b->len - have : step) : b->len - have;
		size_t u;
		st = hkquery_parse(q, b->data + off, have - off, &u, why);
		ck_assert_uint_le(u, have - off);
		off += u;
		if (st != HKQUERY_MORE)
			break;
	}
	*used = off;
	return st;
}

static void begin(struct hkquery *q)
{
	seen[0] = 0;
	memset(q, 0x5a, sizeof(*q)); /* begin clears what it must */
	hkquery_begin(q, &ops, NULL);
}

START_TEST(test_answers)
{
	struct pbuf b;
	pbuf_init(&b);
	proto_build_param_status(&b, "TimeZone", "UTC");
	proto_build_command_complete(&b, "SET");
	proto_build_notice(&b, "WARNING", "01000", "there is no transaction in progress", NULL);
	proto_build_command_complete(&b, "ROLLBACK");
	struct proto_column col = {"set_config", 25, -1};
	proto_build_row_description(&b, &col, 1);
	const char *v[] = {"on"};
	proto_build_data_row(&b, v, 1);
	const char *nul[] = {NULL};
	proto_build_data_row(&b, nul, 1);
	proto_build_data_row(&b, NULL, 0);
	proto_build_command_complete(&b, "SELECT 3");
	proto_build_notification(&b, 42, "chan", "payload");
	proto_build_empty_query(&b);
	proto_build_ready(&b, 'I');
	size_t whole = b.len;
	proto_build_command_complete(&b, "NOT READ"); /* after the ReadyForQuery */
	const char *want = "S:TimeZone=UTC;N:WARNING=there is no transaction in progress;D:on;"
			   "D:NULL;D:NULL;A:42/chan=payload;";
	for (size_t step = 0; step <= 7; step++) {
		struct hkquery q;
		begin(&q);
		const char *why = NULL;
		size_t used;
		ck_assert_int_eq(parse_in_pieces(&q, &b, step, &used, &why), HKQUERY_DONE);
		ck_assert_uint_eq(used, whole);
		ck_assert_str_eq(seen, want);
		ck_assert_uint_eq(q.results, 4);
		ck_assert_uint_eq(q.rows, 3);
		ck_assert(!q.failed);
		ck_assert_int_eq(q.tx_status, 'I');
		ck_assert_str_eq(q.tag, "");
	}
	pbuf_free(&b);
}
END_TEST

START_TEST(test_error)
{
	struct pbuf b;
	pbuf_init(&b);
	proto_build_command_complete(&b, "SET");
	proto_build_error(&b, "ERROR", "22023", "invalid value for parameter \"DateStyle\": \"x\"",
			  "Unrecognized key word: \"x\".", "Use ISO.");
	proto_build_error(&b, "ERROR", "XX000", "a second one is not kept", NULL, NULL);
	proto_build_ready(&b, 'E');
	struct hkquery q;
	begin(&q);
	const char *why = NULL;
	size_t used;
	ck_assert_int_eq(parse_in_pieces(&q, &b, 3, &used, &why), HKQUERY_DONE);
	ck_assert(q.failed && !q.fatal);
	ck_assert_str_eq(q.sqlstate, "22023");
	ck_assert_str_eq(q.message, "invalid value for parameter \"DateStyle\": \"x\"");
	ck_assert_str_eq(q.detail, "Unrecognized key word: \"x\".");
	ck_assert_str_eq(q.hint, "Use ISO.");
	ck_assert_str_eq(q.tag, "SET");
	ck_assert_int_eq(q.tx_status, 'E');

	/* a FATAL without detail; a long message is cut before a UTF-8 character */
	char msg[1101];
	for (size_t i = 0; i < 1100; i += 2)
		memcpy(msg + i, "\xc3\xa9", 2);
	msg[1100] = 0;
	pbuf_reset(&b);
	proto_build_error(&b, "FATAL", "57P01", msg, NULL, NULL);
	begin(&q);
	ck_assert_int_eq(parse_in_pieces(&q, &b, 0, &used, &why), HKQUERY_MORE);
	ck_assert(q.failed && q.fatal);
	ck_assert_str_eq(q.detail, "");
	ck_assert_str_eq(q.hint, "");
	/* 511 bytes would end inside a character: 510 */
	ck_assert_uint_eq(strlen(q.message), sizeof(q.message) - 2);
	ck_assert_int_eq(memcmp(q.message, msg, sizeof(q.message) - 2), 0);
	pbuf_free(&b);
}
END_TEST

START_TEST(test_copy)
{
	/* COPY TO STDOUT passes unread; each COPY FROM STDIN is counted for a CopyFail */
	struct pbuf b;
	pbuf_init(&b);
	static const uint8_t copy_out[] = {'H', 0, 0, 0, 9, 0, 0, 1, 0, 0};
	proto_put_bytes(&b, copy_out, sizeof(copy_out));
	proto_begin(&b, 'd');
	proto_put_bytes(&b, "1\n", 2);
	proto_end(&b);
	proto_build_empty(&b, 'c');
	proto_build_command_complete(&b, "COPY 1");
	static const uint8_t copy_in[] = {'G', 0, 0, 0, 9, 0, 0, 1, 0, 0};
	proto_put_bytes(&b, copy_in, sizeof(copy_in));
	proto_build_error(&b, "ERROR", "57014", "COPY from stdin failed: no", NULL, NULL);
	proto_build_ready(&b, 'I');
	for (size_t step = 0; step <= 3; step++) {
		struct hkquery q;
		begin(&q);
		const char *why = NULL;
		size_t used;
		ck_assert_int_eq(parse_in_pieces(&q, &b, step, &used, &why), HKQUERY_DONE);
		ck_assert_uint_eq(q.copy_in, 1);
		ck_assert_uint_eq(q.results, 1);
		ck_assert(q.failed);
		ck_assert_str_eq(q.sqlstate, "57014");
	}
	pbuf_free(&b);
}
END_TEST

/* A message of TYPE with BODYLEN bytes of body (all 'x', a DataRow's layout kept). */
static void long_msg(struct pbuf *b, uint8_t type, size_t bodylen)
{
	proto_begin(b, type);
	if (type == 'D') {
		proto_put_u16(b, 1);
		proto_put_u32(b, (uint32_t)(bodylen - 6));
		bodylen -= 6;
	}
	for (size_t i = 0; i < bodylen; i++)
		proto_put_u8(b, type == 'E' && i == 0 ? 'M' : 'x');
	proto_end(b);
}

START_TEST(test_long_messages_skipped)
{
	struct pbuf b;
	pbuf_init(&b);
	long_msg(&b, 'T', 3 * HKQUERY_MSG_MAX);
	long_msg(&b, 'D', HKQUERY_MSG_MAX); /* over the limit with its header */
	const char *v[] = {"small"};
	proto_build_data_row(&b, v, 1);
	long_msg(&b, 'S', HKQUERY_MSG_MAX + 10);
	long_msg(&b, 'N', HKQUERY_MSG_MAX + 10);
	long_msg(&b, 'A', HKQUERY_MSG_MAX + 10);
	long_msg(&b, 'C', HKQUERY_MSG_MAX + 10);
	long_msg(&b, 'E', 2 * HKQUERY_MSG_MAX);
	proto_build_ready(&b, 'I');
	for (size_t step = 0; step <= 4096; step += 4093) {
		struct hkquery q;
		begin(&q);
		const char *why = NULL;
		size_t used;
		ck_assert_int_eq(parse_in_pieces(&q, &b, step, &used, &why), HKQUERY_DONE);
		ck_assert_uint_eq(used, b.len);
		ck_assert_str_eq(seen, "D:small;");
		ck_assert_uint_eq(q.rows, 2);
		ck_assert_uint_eq(q.results, 1);
		ck_assert(q.failed);
		ck_assert_str_eq(q.sqlstate, "");
		ck_assert_str_eq(q.message, "an error message too long for pgcoro to read");
	}
	pbuf_free(&b);
}
END_TEST

/* The answer B must be refused. */
static void refused(const struct pbuf *b, const char *why_part)
{
	struct hkquery q;
	begin(&q);
	const char *why = NULL;
	size_t used;
	ck_assert_int_eq(parse_in_pieces(&q, b, 0, &used, &why), HKQUERY_BAD);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(strstr(why, why_part), "%s", why);
}

START_TEST(test_refused)
{
	struct pbuf b;
	pbuf_init(&b);
	proto_begin(&b, 'G'); /* CopyInResponse of two columns, one too few formats */
	proto_put_u8(&b, 0);
	proto_put_u16(&b, 2);
	proto_put_u16(&b, 0);
	proto_end(&b);
	refused(&b, "CopyInResponse");
	pbuf_reset(&b);
	proto_begin(&b, 'W'); /* CopyBothResponse */
	proto_put_u8(&b, 0);
	proto_put_u16(&b, 0);
	proto_end(&b);
	refused(&b, "replication");
	pbuf_reset(&b);
	proto_build_auth(&b, AUTH_REQ_OK, NULL, 0);
	refused(&b, "does not answer");
	pbuf_reset(&b);
	proto_build_backend_key(&b, 1, 2);
	refused(&b, "does not answer");
	pbuf_reset(&b);
	proto_begin(&b, 'Z');
	proto_put_u16(&b, 0x4949); /* two status bytes */
	proto_end(&b);
	refused(&b, "invalid length");
	pbuf_reset(&b);
	proto_build_ready(&b, 'X');
	refused(&b, "unknown transaction status");
	pbuf_reset(&b);
	static const uint8_t short_len[] = {'C', 0, 0, 0, 3};
	proto_put_bytes(&b, short_len, sizeof(short_len));
	refused(&b, "invalid length");
	pbuf_reset(&b);
	static const uint8_t huge_len[] = {'D', 0xff, 0xff, 0xff, 0xff};
	proto_put_bytes(&b, huge_len, sizeof(huge_len));
	refused(&b, "invalid length");
	pbuf_reset(&b);
	proto_begin(&b, 'S');
	proto_put_bytes(&b, "name", 4); /* no NUL, no value */
	proto_end(&b);
	refused(&b, "ParameterStatus");
	pbuf_reset(&b);
	proto_begin(&b, 'C');
	proto_put_bytes(&b, "SET\0x", 5); /* bytes after the tag */
	proto_end(&b);
	refused(&b, "CommandComplete");
	pbuf_reset(&b);
	proto_begin(&b, 'A');
	proto_put_u32(&b, 1);
	proto_put_str(&b, "chan"); /* no payload */
	proto_end(&b);
	refused(&b, "NotificationResponse");
	pbuf_reset(&b);
	proto_begin(&b, 'D');
	proto_put_u16(&b, 1);
	proto_put_u32(&b, 10); /* a value longer than the message */
	proto_put_bytes(&b, "abc", 3);
	proto_end(&b);
	refused(&b, "DataRow");
	pbuf_free(&b);
}
END_TEST

/* ---- requests ---------------------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void noop_read(struct stream *st, void *arg) {}
static void noop_event(struct stream *st, enum stream_event ev, void *arg) {}
static const struct stream_ops sops = {.on_read = noop_read, .on_event = noop_event};

START_TEST(test_requests)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	struct event_base *base = event_base_new();
	struct stream st;
	memset(&st, 0, sizeof(st));
	stream_init(&st, base, sv[0], true, &sops, NULL);
	ck_assert(hkquery_send(&st, "ROLLBACK"));
	const char *vals[] = {"TimeZone", "it's \\ \xc3\xa9", NULL};
	ck_assert(hkquery_send_params(&st, "SELECT $1, $2, $3", 3, vals));
	uint8_t got[512];
	ssize_t n = read(sv[1], got, sizeof(got));
	static const uint8_t want[] =
		"Q\0\0\0\x0dROLLBACK\0"
		"P\0\0\0\x19\0SELECT $1, $2, $3\0\0\0"
		"B\0\0\0\x29\0\0\0\0\0\x03\0\0\0\x08TimeZone\0\0\0\x09it's \\ \xc3\xa9\xff\xff\xff\xff\0\0"
		"E\0\0\0\x09\0\0\0\0\0"
		"S\0\0\0\x04";
	ck_assert_int_eq(n, sizeof(want) - 1);
	ck_assert_int_eq(memcmp(got, want, sizeof(want) - 1), 0);
	ck_assert_uint_eq(be32(got + 1), 13);
	stream_free(&st);
	close(sv[1]);
	event_base_free(base);
}
END_TEST

/* ---- quoting ------------------------------------------------------------------------------ */

/* NAME quoted for ENCODING: WANT, or refused when WANT is NULL (then nothing is added). */
static void quoted(const char *name, const char *encoding, const char *want)
{
	struct pbuf b;
	pbuf_init(&b);
	proto_put_u8(&b, '>');
	const char *why = NULL;
	bool ok = hkquery_quote_ident(&b, name, encoding, &why);
	if (!want) {
		ck_assert_msg(!ok, "%s quoted in %s", name, encoding ? encoding : "?");
		ck_assert_ptr_nonnull(why);
		ck_assert_uint_eq(b.len, 1);
	} else {
		ck_assert_msg(ok, "%s refused in %s: %s", name, encoding ? encoding : "?", why);
		ck_assert_uint_eq(b.len, 1 + strlen(want));
		ck_assert_int_eq(memcmp(b.data + 1, want, strlen(want)), 0);
	}
	pbuf_free(&b);
}

START_TEST(test_quote_ident)
{
	quoted("chan", "UTF8", "\"chan\"");
	quoted("Mixed Case; DROP", "UTF8", "\"Mixed Case; DROP\"");
	quoted("a\"b\"\"", "UTF8", "\"a\"\"b\"\"\"\"\"");
	quoted("\"", "UTF8", "\"\"\"\"");
	quoted("back\\slash'", "UTF8", "\"back\\slash'\"");
	quoted("", "UTF8", NULL);
	/* UTF-8 as PostgreSQL verifies it */
	quoted("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \xed\x9f\xbf", "UTF8",
	       "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \xed\x9f\xbf\"");
	quoted("\xff\xfe", "UTF8", NULL);
	quoted("\x80", "UTF8", NULL);            /* a continuation byte alone */
	quoted("\xc0\x80", "UTF8", NULL);        /* overlong */
	quoted("\xc1\xbf", "UTF8", NULL);        /* overlong */
	quoted("\xe0\x9f\xbf", "UTF8", NULL);    /* overlong */
	quoted("\xf0\x8f\xbf\xbf", "UTF8", NULL); /* overlong */
	quoted("\xed\xa0\x80", "UTF8", NULL);    /* a surrogate */
	quoted("\xf4\x90\x80\x80", "UTF8", NULL); /* past U+10FFFF */
	quoted("\xf5\x80\x80\x80", "UTF8", NULL);
	quoted("\xf8\x88\x80\x80\x80", "UTF8", NULL); /* five bytes */
	quoted("\xe2\x82", "UTF8", NULL);        /* cut short */
	quoted("\xe2\x82\"", "UTF8", NULL);      /* a quote where a continuation byte goes */
	quoted("\xc3\xa9\xc3", "UTF8", NULL);
	/* single-byte encodings take any byte */
	quoted("\xff\xfe\"", "LATIN1", "\"\xff\xfe\"\"\"");
	quoted("\xe9", "WIN1252", "\"\xe9\"");
	quoted("\x80\xc0", "SQL_ASCII", "\"\x80\xc0\"");
	/* other multibyte encodings, or an unknown one: ASCII only (in SJIS "\x95\x5c" is one
	 * character whose second byte is a backslash) */
	quoted("abc\"", "SJIS", "\"abc\"\"\"");
	quoted("\x95\x5c", "SJIS", NULL);
	quoted("\xa4\xa2", "EUC_JP", NULL);
	quoted("\xc3\xa9", NULL, NULL);
	quoted("plain", NULL, "\"plain\"");
}
END_TEST

static Suite *hkquery_suite(void)
{
	Suite *s = suite_create("hkquery");
	TCase *tc = tcase_create("answers");
	tcase_add_test(tc, test_answers);
	tcase_add_test(tc, test_error);
	tcase_add_test(tc, test_copy);
	tcase_add_test(tc, test_long_messages_skipped);
	tcase_add_test(tc, test_refused);
	suite_add_tcase(s, tc);
	tc = tcase_create("requests");
	tcase_add_test(tc, test_requests);
	tcase_add_test(tc, test_quote_ident);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return unit_run(hkquery_suite()); }
