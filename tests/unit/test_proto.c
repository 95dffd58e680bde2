/* Unit tests for proto.c: exact bytes of every builder, framing limits, startup packet
 * parsing (good and malformed), the small parsers, and a fixed-seed fuzz loop. Inputs
 * are copied into exact-size heap blocks so ASan catches any overread. */
#include <check.h>

#include "unit.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

/* An exact-size heap copy of N bytes at P (the caller frees). */
static uint8_t *dup_exact(const void *p, size_t n)
{
	uint8_t *d = malloc(n);
	if (n) {
		ck_assert_ptr_nonnull(d);
		memcpy(d, p, n);
	}
	return d;
}

/* Compares the whole of B with EXP (N bytes). */
static void expect_bytes(const struct pbuf *b, const uint8_t *exp, size_t n)
{
	ck_assert(!b->failed);
	ck_assert_uint_eq(b->len, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(b->data[i] == exp[i], "byte %zu: got 0x%02x want 0x%02x", i,
			      b->data[i], exp[i]);
}

/* A startup-style packet: int32 length, int32 CODE, then RAW (RAWLEN bytes), exact size. */
static uint8_t *mkpkt(uint32_t code, const void *raw, size_t rawlen, uint32_t *len)
{
	*len = (uint32_t)(8 + rawlen);
	uint8_t *p = malloc(*len);
	ck_assert_ptr_nonnull(p);
	p[0] = (uint8_t)(*len >> 24);
	p[1] = (uint8_t)(*len >> 16);
	p[2] = (uint8_t)(*len >> 8);
	p[3] = (uint8_t)*len;
	p[4] = (uint8_t)(code >> 24);
	p[5] = (uint8_t)(code >> 16);
	p[6] = (uint8_t)(code >> 8);
	p[7] = (uint8_t)code;
	if (rawlen)
		memcpy(p + 8, raw, rawlen);
	return p;
}

/* Parses a v3.0 packet whose pairs are the literal RAW (sizeof - 1 bytes). */
#define PARSE_RAW(raw, outp, whyp) parse_raw(PROTO_V3, raw, sizeof(raw) - 1, outp, whyp)

/* The last packet parse_raw parsed: kept alive so the test can read the strings that point
 * into it; freed by the next parse_raw and by the fixture teardown. */
static uint8_t *last_pkt;

static void free_last_pkt(void)
{
	free(last_pkt);
	last_pkt = NULL;
}

static bool parse_raw(uint32_t code, const void *raw, size_t rawlen, struct proto_startup *out,
		      const char **why)
{
	uint32_t len;
	uint8_t *p = mkpkt(code, raw, rawlen, &len);
	*why = NULL;
	bool ok = proto_parse_startup(p, len, out, why);
	if (!ok)
		ck_assert_ptr_nonnull(*why);
	free_last_pkt();
	last_pkt = p;
	return ok;
}

/* ---- pbuf ---------------------------------------------------------------------------- */

START_TEST(test_pbuf_grow_reset)
{
	struct pbuf b;
	pbuf_init(&b);
	ck_assert_ptr_null(b.data);
	uint8_t chunk[100];
	for (int i = 0; i < 100; i++)
		chunk[i] = (uint8_t)i;
	for (int i = 0; i < 30; i++)
		proto_put_bytes(&b, chunk, sizeof(chunk));
	ck_assert(!b.failed);
	ck_assert_uint_eq(b.len, 3000);
	ck_assert_uint_ge(b.cap, 3000);
	for (size_t i = 0; i < 3000; i++)
		ck_assert_uint_eq(b.data[i], i % 100);
	size_t cap = b.cap;
	uint8_t *data = b.data;
	pbuf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, cap);
	ck_assert_ptr_eq(b.data, data);
	pbuf_free(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.cap, 0);
}
END_TEST

START_TEST(test_pbuf_put_be)
{
	struct pbuf b;
	pbuf_init(&b);
	proto_put_u8(&b, 0xab);
	proto_put_u16(&b, 0x1234);
	proto_put_u32(&b, 0xdeadbeef);
	proto_put_str(&b, "hi");
	proto_put_str(&b, "");
	const uint8_t exp[] = {0xab, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 'h', 'i', 0, 0};
	expect_bytes(&b, exp, sizeof(exp));
	pbuf_free(&b);
}
END_TEST

START_TEST(test_pbuf_failed_ignores_puts)
{
	struct pbuf b;
	pbuf_init(&b);
	proto_put_u32(&b, 1);
	b.failed = true;
	proto_put_u32(&b, 2);
	proto_put_str(&b, "ignored");
	proto_build_ready(&b, 'I');
	ck_assert_uint_eq(b.len, 4);
	pbuf_reset(&b);
	ck_assert(!b.failed);
	proto_build_ready(&b, 'I');
	ck_assert_uint_eq(b.len, 6);
	pbuf_free(&b);
}
END_TEST

/* ---- builders ------------------------------------------------------------------------ */

START_TEST(test_build_error_full)
{
	struct pbuf b;
	pbuf_init(&b);
	proto_build_error(&b, "FATAL", "28P01", "bad", "dd", "hh");
	const uint8_t exp[] = {
		'E', 0, 0, 0, 39,
		'S', 'F', 'A', 'T', 'A', 'L', 0,
		'V', 'F', 'A', 'T', 'A', 'L', 0,
		'C', '2', '8', 'P', '0', '1', 0,
		'M', 'b', 'a', 'd', 0,
		'D', 'd', 'd', 0,
		'H', 'h', 'h', 0,
		0,
	};
	expect_bytes(&b, exp, sizeof(exp));
	pbuf_free(&b);
}
END_TEST

START_TEST(test_build_error_minimal_and_notice)
{
	struct pbuf b;
	pbuf_init(&b);
	proto_build_error(&b, "ERROR", "08P01", "x", NULL, NULL);
	const uint8_t exp[] = {
		'E', 0, 0, 0, 29,
		'S', 'E', 'R', 'R', 'O', 'R', 0,
		'V', 'E', 'R', 'R', 'O', 'R', 0,
		'C', '0', '8', 'P', '0', '1', 0,
		'M', 'x', 0,
		0,
	};
	expect_bytes(&b, exp, sizeof(exp));

	pbuf_reset(&b);
	proto_build_notice(&b, "NOTICE", "00000", "hi", NULL);
	const uint8_t exp2[] = {
		'N', 0, 0, 0, 32,
		'S', 'N', 'O', 'T', 'I', 'C', 'E', 0,
		'V', 'N', 'O', 'T', 'I', 'C', 'E', 0,
		'C', '0', '0', '0', '0', '0', 0,
		'M', 'h', 'i', 0,
		0,
	};
	expect_bytes(&b, exp2, sizeof(exp2));
	pbuf_free(&b);
}
END_TEST

START_TEST(test_build_auth)
{
	struct pbuf b;
	pbuf_init(&b);
	proto_build_auth(&b, AUTH_REQ_OK, NULL, 0);
	const uint8_t ok[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0};
	expect_bytes(&b, ok, sizeof(ok));

	pbuf_reset(&b);
	const uint8_t salt[4] = {1, 2, 3, 0xff};
	proto_build_auth(&b, AUTH_REQ_MD5, salt, sizeof(salt));
	const uint8_t md5[] = {'R', 0, 0, 0, 12, 0, 0, 0, 5, 1, 2, 3, 0xff};
	expect_bytes(&b, md5, sizeof(md5));

	pbuf_reset(&b);
	proto_build_auth_sasl(&b);
	const uint8_t sasl[] = {'R', 0, 0, 0, 23, 0, 0, 0, 10, 'S', 'C', 'R', 'A', 'M', '-', 'S',
				'H', 'A', '-', '2', '5', '6', 0, 0};
	expect_bytes(&b, sasl, sizeof(sasl));
	pbuf_free(&b);
}
END_TEST

START_TEST(test_build_misc_sequence)
{
	/* Several messages back to back: each length is patched at its own start. */
	struct pbuf b;
	pbuf_init(&b);
	proto_build_param_status(&b, "TimeZone", "UTC");
	proto_build_backend_key(&b, 0x01020304, 0xa0b0c0d0);
	proto_build_ready(&b, 'I');
	const uint8_t exp[] = {
		'S', 0, 0, 0, 17, 'T', 'i', 'm', 'e', 'Z', 'o', 'n', 'e', 0, 'U', 'T', 'C', 0,
		'K', 0, 0, 0, 12, 1, 2, 3, 4, 0xa0, 0xb0, 0xc0, 0xd0,
		'Z', 0, 0, 0, 5, 'I',
	};
	expect_bytes(&b, exp, sizeof(exp));
	pbuf_free(&b);
}
END_TEST

START_TEST(test_build_result)
{
	/* RowDescription, DataRow with a NULL, CommandComplete: a console result. */
	struct pbuf b;
	pbuf_init(&b);
	const struct proto_column cols[] = {{"db", 25, -1}, {"n", 20, 8}};
	proto_build_row_description(&b, cols, 2);
	const char *vals[] = {"x", NULL};
	proto_build_data_row(&b, vals, 2);
	proto_build_command_complete(&b, "SHOW");
	const uint8_t exp[] = {
		'T', 0, 0, 0, 47, 0, 2,
		'd', 'b', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0,
		'n', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20, 0, 8, 0xff, 0xff, 0xff, 0xff, 0, 0,
		'D', 0, 0, 0, 15, 0, 2, 0, 0, 0, 1, 'x', 0xff, 0xff, 0xff, 0xff,
		'C', 0, 0, 0, 9, 'S', 'H', 'O', 'W', 0,
	};
	expect_bytes(&b, exp, sizeof(exp));
	pbuf_free(&b);
}
END_TEST

START_TEST(test_build_negotiate)
{
	struct pbuf b;
	pbuf_init(&b);
	const char *const names[] = {"_pq_.a", "_pq_.bc"};
	proto_build_negotiate(&b, PROTO_V3, names, 2);
	const uint8_t exp[] = {
		'v', 0, 0, 0, 27, 0, 3, 0, 0, 0, 0, 0, 2,
		'_', 'p', 'q', '_', '.', 'a', 0,
		'_', 'p', 'q', '_', '.', 'b', 'c', 0,
	};
	expect_bytes(&b, exp, sizeof(exp));

	pbuf_reset(&b);
	proto_build_negotiate(&b, PROTO_V3 | 2, NULL, 0);
	const uint8_t exp2[] = {'v', 0, 0, 0, 12, 0, 3, 0, 2, 0, 0, 0, 0};
	expect_bytes(&b, exp2, sizeof(exp2));
	pbuf_free(&b);
}
END_TEST

START_TEST(test_build_startup_bytes)
{
	struct pbuf b;
	pbuf_init(&b);
	proto_put_u8(&b, 'Z'); /* something before: msg_start must be honoured */
	proto_begin(&b, 0);
	proto_put_u32(&b, PROTO_V3);
	proto_put_str(&b, "user");
	proto_put_str(&b, "u");
	proto_put_u8(&b, 0);
	proto_end(&b);
	const uint8_t exp[] = {'Z', 0, 0, 0, 16, 0, 3, 0, 0, 'u', 's', 'e', 'r', 0, 'u', 0, 0};
	expect_bytes(&b, exp, sizeof(exp));
	pbuf_free(&b);
}
END_TEST

/* ---- round trip ---------------------------------------------------------------------- */

START_TEST(test_startup_round_trip)
{
	struct pbuf b;
	pbuf_init(&b);
	proto_begin(&b, 0);
	proto_put_u32(&b, PROTO_V3);
	proto_put_str(&b, "user");
	proto_put_str(&b, "alice");
	proto_put_str(&b, "database");
	proto_put_str(&b, "db1");
	proto_put_str(&b, "application_name");
	proto_put_str(&b, "psql");
	proto_put_str(&b, "options");
	proto_put_str(&b, "-c search_path=x");
	proto_put_str(&b, "_pq_.foo");
	proto_put_str(&b, "1");
	proto_put_u8(&b, 0);
	proto_end(&b);
	ck_assert(!b.failed);

	struct proto_msg fm;
	ck_assert_int_eq(proto_next_startup(b.data, 3, &fm), PROTO_NEED_MORE);
	ck_assert_int_eq(proto_next_startup(b.data, b.len - 1, &fm), PROTO_NEED_MORE);
	ck_assert_int_eq(proto_next_startup(b.data, b.len, &fm), PROTO_OK);
	ck_assert_uint_eq(fm.len, b.len);
	ck_assert_uint_eq(fm.size, b.len);
	uint32_t len = fm.len;

	uint8_t *pkt = dup_exact(b.data, b.len);
	struct proto_startup st;
	const char *why = NULL;
	ck_assert(proto_parse_startup(pkt, len, &st, &why));
	ck_assert_int_eq(st.kind, STARTUP_MSG);
	ck_assert_uint_eq(st.version, PROTO_V3);
	ck_assert_str_eq(st.user, "alice");
	ck_assert_str_eq(st.database, "db1");
	ck_assert_int_eq(st.nparams, 2);
	ck_assert_str_eq(st.names[0], "application_name");
	ck_assert_str_eq(st.values[0], "psql");
	ck_assert_str_eq(st.names[1], "options");
	ck_assert_str_eq(st.values[1], "-c search_path=x");
	ck_assert_int_eq(st.nunrecognized, 1);
	ck_assert_str_eq(st.unrecognized[0], "_pq_.foo");
	/* strings point into the packet */
	ck_assert((const uint8_t *)st.user > pkt && (const uint8_t *)st.user < pkt + len);
	free(pkt);
	pbuf_free(&b);
}
END_TEST

START_TEST(test_error_round_trip)
{
	struct pbuf b;
	pbuf_init(&b);
	proto_build_error(&b, "FATAL", "3D000", "no such database", NULL, "try another");
	struct proto_msg fm;
	ck_assert_int_eq(proto_next(b.data, b.len, 1 << 20, &fm), PROTO_OK);
	ck_assert_uint_eq(fm.type, 'E');
	ck_assert_uint_eq(fm.size, b.len);
	uint32_t len = fm.len;
	uint8_t *body = dup_exact(b.data + PROTO_HDR, len - 4);
	ck_assert_str_eq(proto_error_field(body, len - 4, 'S'), "FATAL");
	ck_assert_str_eq(proto_error_field(body, len - 4, 'V'), "FATAL");
	ck_assert_str_eq(proto_error_field(body, len - 4, 'C'), "3D000");
	ck_assert_str_eq(proto_error_field(body, len - 4, 'M'), "no such database");
	ck_assert_str_eq(proto_error_field(body, len - 4, 'H'), "try another");
	ck_assert_ptr_null(proto_error_field(body, len - 4, 'D'));
	ck_assert_ptr_null(proto_error_field(body, len - 4, 0));
	free(body);

	pbuf_reset(&b);
	proto_build_param_status(&b, "server_version", "16.1");
	ck_assert_int_eq(proto_next(b.data, b.len, 1 << 20, &fm), PROTO_OK);
	ck_assert_uint_eq(fm.type, 'S');
	len = fm.len;
	body = dup_exact(b.data + PROTO_HDR, len - 4);
	const char *n, *v;
	ck_assert(proto_parse_param_status(body, len - 4, &n, &v));
	ck_assert_str_eq(n, "server_version");
	ck_assert_str_eq(v, "16.1");
	free(body);
	pbuf_free(&b);
}
END_TEST

/* ---- framing ------------------------------------------------------------------------- */

START_TEST(test_frame)
{
	struct proto_msg fm;
	uint8_t *m = dup_exact((const uint8_t[]){'Q', 0, 0, 0, 4}, 5);
	for (size_t a = 0; a < 5; a++)
		ck_assert_int_eq(proto_next(m, a, 100, &fm), PROTO_NEED_MORE);
	ck_assert_int_eq(proto_next(m, 5, 100, &fm), PROTO_OK);
	ck_assert_uint_eq(fm.type, 'Q');
	ck_assert_uint_eq(fm.len, 4);
	ck_assert_uint_eq(fm.size, 5);
	ck_assert_uint_eq(fm.blen, 0);
	ck_assert_ptr_eq(fm.body, m + 5);
	free(m);

	m = dup_exact((const uint8_t[]){'Q', 0, 0, 0, 3}, 5);
	ck_assert_int_eq(proto_next(m, 5, 100, &fm), PROTO_BAD);
	free(m);
	m = dup_exact((const uint8_t[]){'Q', 0, 0, 0, 0}, 5);
	ck_assert_int_eq(proto_next(m, 5, 100, &fm), PROTO_BAD);
	free(m);

	/* a header alone is not a message: OK only once every byte of it is there */
	uint8_t buf[101] = {'D', 0, 0, 0, 100};
	for (size_t a = 5; a < sizeof(buf); a++) {
		ck_assert_int_eq(proto_next(buf, a, 100, &fm), PROTO_NEED_MORE);
		ck_assert_uint_eq(fm.len, 100);
	}
	ck_assert_int_eq(proto_next(buf, sizeof(buf), 100, &fm), PROTO_OK);
	ck_assert_uint_eq(fm.len, 100);
	ck_assert_uint_eq(fm.blen, 96);
	ck_assert_int_eq(proto_next(buf, sizeof(buf), 99, &fm), PROTO_BAD);
	ck_assert_uint_eq(fm.len, 100);

	m = dup_exact((const uint8_t[]){'D', 0xff, 0xff, 0xff, 0xff}, 5);
	ck_assert_int_eq(proto_next(m, 5, UINT32_MAX, &fm), PROTO_NEED_MORE);
	ck_assert_uint_eq(fm.size, (size_t)UINT32_MAX + 1);
	ck_assert_int_eq(proto_next(m, 5, 0x7fffffff, &fm), PROTO_BAD);
	free(m);
}
END_TEST

START_TEST(test_startup_frame)
{
	struct proto_msg fm;
	uint8_t *m = dup_exact((const uint8_t[]){0, 0, 0, 8, 0, 3, 0, 0}, 8);
	for (size_t a = 0; a < 8; a++)
		ck_assert_int_eq(proto_next_startup(m, a, &fm), PROTO_NEED_MORE);
	ck_assert_int_eq(proto_next_startup(m, 8, &fm), PROTO_OK);
	ck_assert_uint_eq(fm.len, 8);
	ck_assert_uint_eq(fm.size, 8);
	ck_assert_uint_eq(fm.type, 0);
	free(m);

	m = dup_exact((const uint8_t[]){0, 0, 0, 7}, 4);
	ck_assert_int_eq(proto_next_startup(m, 4, &fm), PROTO_BAD);
	free(m);
	m = dup_exact((const uint8_t[]){0, 0, 0x27, 0x10}, 4); /* 10000 */
	ck_assert_int_eq(proto_next_startup(m, 4, &fm), PROTO_NEED_MORE);
	ck_assert_uint_eq(fm.len, 10000);
	free(m);
	m = dup_exact((const uint8_t[]){0, 0, 0x27, 0x11}, 4); /* 10001 */
	ck_assert_int_eq(proto_next_startup(m, 4, &fm), PROTO_BAD);
	free(m);
	m = dup_exact((const uint8_t[]){0x80, 0, 0, 8}, 4);
	ck_assert_int_eq(proto_next_startup(m, 4, &fm), PROTO_BAD);
	free(m);
}
END_TEST

/* ---- parse_startup ------------------------------------------------------------------- */

START_TEST(test_parse_ssl_gssenc)
{
	struct proto_startup st;
	const char *why;
	ck_assert(parse_raw(PROTO_SSL_CODE, NULL, 0, &st, &why));
	ck_assert_int_eq(st.kind, STARTUP_SSL);
	ck_assert(parse_raw(PROTO_GSSENC_CODE, NULL, 0, &st, &why));
	ck_assert_int_eq(st.kind, STARTUP_GSSENC);
	ck_assert(!parse_raw(PROTO_SSL_CODE, "\0\0\0\0", 4, &st, &why));
	ck_assert(!parse_raw(PROTO_GSSENC_CODE, "\0", 1, &st, &why));
}
END_TEST

START_TEST(test_parse_cancel)
{
	struct proto_startup st;
	const char *why;
	const uint8_t body[] = {0, 0, 0x30, 0x39, 0xca, 0xfe, 0xba, 0xbe};
	ck_assert(parse_raw(PROTO_CANCEL_CODE, body, sizeof(body), &st, &why));
	ck_assert_int_eq(st.kind, STARTUP_CANCEL);
	ck_assert_uint_eq(st.cancel_pid, 12345);
	ck_assert_uint_eq(st.cancel_key, 0xcafebabe);
	ck_assert(!parse_raw(PROTO_CANCEL_CODE, body, 7, &st, &why));
	ck_assert(!parse_raw(PROTO_CANCEL_CODE, NULL, 0, &st, &why));
	const uint8_t longer[12] = {0};
	ck_assert(!parse_raw(PROTO_CANCEL_CODE, longer, sizeof(longer), &st, &why));
}
END_TEST

START_TEST(test_parse_versions)
{
	struct proto_startup st;
	const char *why;
	ck_assert(parse_raw(3u << 16 | 2, "user\0u\0\0", 8, &st, &why));
	ck_assert_uint_eq(st.version, 3u << 16 | 2);
	ck_assert_str_eq(st.user, "u");
	ck_assert_ptr_null(st.database);
	ck_assert(!parse_raw(2u << 16, "user\0u\0\0", 8, &st, &why));
	ck_assert_str_eq(why, "unsupported protocol version");
	ck_assert(!parse_raw(4u << 16, "user\0u\0\0", 8, &st, &why));
	ck_assert_str_eq(why, "unsupported protocol version");
}
END_TEST

START_TEST(test_parse_bad_layouts)
{
	struct proto_startup st;
	const char *why;
	/* missing user, empty user */
	ck_assert(!PARSE_RAW("database\0d\0\0", &st, &why));
	ck_assert(!PARSE_RAW("user\0\0\0", &st, &why));
	ck_assert(!PARSE_RAW("\0", &st, &why));
	/* no pairs and no terminator at all */
	ck_assert(!PARSE_RAW("", &st, &why));
	/* missing final terminator */
	ck_assert(!PARSE_RAW("user\0u\0", &st, &why));
	/* value without terminator at the end of the packet */
	ck_assert(!PARSE_RAW("user\0u\0database\0dd", &st, &why));
	/* name without terminator */
	ck_assert(!PARSE_RAW("user\0u\0datab", &st, &why));
	/* name without value: odd number of strings */
	ck_assert(!PARSE_RAW("user\0u\0database\0", &st, &why));
	ck_assert(!PARSE_RAW("user\0u\0database\0\0", &st, &why));
	/* bytes after the terminator */
	ck_assert(!PARSE_RAW("user\0u\0\0x", &st, &why));
	ck_assert(!PARSE_RAW("user\0u\0\0\0", &st, &why));
	/* empty value other than user is fine */
	ck_assert(PARSE_RAW("user\0u\0options\0\0\0", &st, &why));
	ck_assert_int_eq(st.nparams, 1);
	ck_assert_str_eq(st.values[0], "");

	/* length field disagreeing with LEN */
	uint32_t len;
	uint8_t *p = mkpkt(PROTO_V3, "user\0u\0\0", 8, &len);
	ck_assert(!proto_parse_startup(p, len - 1, &st, &why));
	free(p);
	p = mkpkt(PROTO_V3, NULL, 0, &len);
	ck_assert(!proto_parse_startup(p, 4, &st, &why));
	free(p);
}
END_TEST

START_TEST(test_parse_too_many_params)
{
	struct proto_startup st;
	const char *why;
	char raw[4096];
	size_t n = 0;
	n += (size_t)sprintf(raw + n, "user") + 1;
	n += (size_t)sprintf(raw + n, "u") + 1;
	for (int i = 0; i < PROTO_MAX_PARAMS; i++) {
		n += (size_t)sprintf(raw + n, "p%d", i) + 1;
		n += (size_t)sprintf(raw + n, "v") + 1;
	}
	raw[n] = 0;
	ck_assert(parse_raw(PROTO_V3, raw, n + 1, &st, &why));
	ck_assert_int_eq(st.nparams, PROTO_MAX_PARAMS);
	ck_assert_str_eq(st.names[PROTO_MAX_PARAMS - 1], "p63");

	n += (size_t)sprintf(raw + n, "extra") + 1;
	n += (size_t)sprintf(raw + n, "v") + 1;
	raw[n] = 0;
	ck_assert(!parse_raw(PROTO_V3, raw, n + 1, &st, &why));

	/* too many _pq_ options */
	n = 0;
	n += (size_t)sprintf(raw + n, "user") + 1;
	n += (size_t)sprintf(raw + n, "u") + 1;
	for (int i = 0; i <= PROTO_MAX_PARAMS; i++) {
		n += (size_t)sprintf(raw + n, "_pq_.%d", i) + 1;
		n += (size_t)sprintf(raw + n, "v") + 1;
	}
	raw[n] = 0;
	ck_assert(!parse_raw(PROTO_V3, raw, n + 1, &st, &why));
}
END_TEST

/* ---- the small parsers --------------------------------------------------------------- */

START_TEST(test_parse_password)
{
	const char *pw = NULL;
	uint8_t *b = dup_exact("secret", 7);
	ck_assert(proto_parse_password(b, 7, &pw));
	ck_assert_str_eq(pw, "secret");
	ck_assert(!proto_parse_password(b, 6, &pw)); /* no NUL in range */
	free(b);
	b = dup_exact("", 1);
	ck_assert(proto_parse_password(b, 1, &pw));
	ck_assert_str_eq(pw, "");
	free(b);
	b = dup_exact("a\0b", 4);
	ck_assert(!proto_parse_password(b, 4, &pw)); /* two NULs */
	free(b);
	b = dup_exact("", 0);
	ck_assert(!proto_parse_password(b, 0, &pw));
	free(b);
}
END_TEST

START_TEST(test_parse_sasl_initial)
{
	const char *mech = NULL;
	const uint8_t *data = NULL;
	uint32_t dl = 99;
	const uint8_t ok[] = {'S', 'C', 'R', 'A', 'M', '-', 'S', 'H', 'A', '-', '2', '5', '6', 0,
			      0, 0, 0, 3, 'a', 'b', 'c'};
	uint8_t *b = dup_exact(ok, sizeof(ok));
	ck_assert(proto_parse_sasl_initial(b, sizeof(ok), &mech, &data, &dl));
	ck_assert_str_eq(mech, "SCRAM-SHA-256");
	ck_assert_uint_eq(dl, 3);
	ck_assert(memcmp(data, "abc", 3) == 0);
	ck_assert(!proto_parse_sasl_initial(b, sizeof(ok) - 1, &mech, &data, &dl)); /* short */
	ck_assert(!proto_parse_sasl_initial(b, 17, &mech, &data, &dl));  /* truncated int32 */
	ck_assert(!proto_parse_sasl_initial(b, 13, &mech, &data, &dl));  /* no NUL */
	free(b);

	const uint8_t longer[] = {'M', 0, 0, 0, 0, 1, 'a', 'b'}; /* trailing byte */
	b = dup_exact(longer, sizeof(longer));
	ck_assert(!proto_parse_sasl_initial(b, sizeof(longer), &mech, &data, &dl));
	free(b);

	const uint8_t none[] = {'M', 0, 0xff, 0xff, 0xff, 0xff};
	b = dup_exact(none, sizeof(none));
	ck_assert(proto_parse_sasl_initial(b, sizeof(none), &mech, &data, &dl));
	ck_assert_ptr_null(data);
	ck_assert_uint_eq(dl, 0);
	free(b);

	const uint8_t none_trailing[] = {'M', 0, 0xff, 0xff, 0xff, 0xff, 'x'};
	b = dup_exact(none_trailing, sizeof(none_trailing));
	ck_assert(!proto_parse_sasl_initial(b, sizeof(none_trailing), &mech, &data, &dl));
	free(b);

	const uint8_t neg[] = {'M', 0, 0xff, 0xff, 0xff, 0xfe};
	b = dup_exact(neg, sizeof(neg));
	ck_assert(!proto_parse_sasl_initial(b, sizeof(neg), &mech, &data, &dl));
	free(b);

	const uint8_t huge[] = {'M', 0, 0x7f, 0xff, 0xff, 0xff, 'a'};
	b = dup_exact(huge, sizeof(huge));
	ck_assert(!proto_parse_sasl_initial(b, sizeof(huge), &mech, &data, &dl));
	free(b);

	const uint8_t empty[] = {'M', 0, 0, 0, 0, 0};
	b = dup_exact(empty, sizeof(empty));
	ck_assert(proto_parse_sasl_initial(b, sizeof(empty), &mech, &data, &dl));
	ck_assert_uint_eq(dl, 0);
	free(b);

	b = dup_exact("", 0);
	ck_assert(!proto_parse_sasl_initial(b, 0, &mech, &data, &dl));
	free(b);
}
END_TEST

/* Parse, Bind, Describe and Close under a new statement name: parsed back to the same
 * fields, the rest of the message unchanged; truncated bodies refused. */
START_TEST(test_rename_statements)
{
	struct pbuf b;
	pbuf_init(&b);
	const uint8_t rest[] = "select $1\0\0\1\0\0\0\x17";
	proto_build_parse(&b, "PGCORO_7", rest, sizeof(rest) - 1);
	ck_assert(!b.failed);
	ck_assert_int_eq(b.data[0], 'P');
	ck_assert_uint_eq(b.len, 1 + 4 + 9 + sizeof(rest) - 1);
	const char *name, *portal;
	const uint8_t *r;
	uint32_t rlen;
	ck_assert(proto_parse_parse(b.data + 5, (uint32_t)b.len - 5, &name, &r, &rlen));
	ck_assert_str_eq(name, "PGCORO_7");
	ck_assert_uint_eq(rlen, sizeof(rest) - 1);
	ck_assert(memcmp(r, rest, rlen) == 0);
	ck_assert(!proto_parse_parse((const uint8_t *)"abc", 3, &name, &r, &rlen));

	pbuf_reset(&b);
	const uint8_t brest[] = "\0\0\0\1\0\0\0\2" "42\0\0";
	proto_build_bind(&b, "c1", "PGCORO_7", brest, sizeof(brest) - 1);
	ck_assert(proto_parse_bind(b.data + 5, (uint32_t)b.len - 5, &portal, &name, &r, &rlen));
	ck_assert_str_eq(portal, "c1");
	ck_assert_str_eq(name, "PGCORO_7");
	ck_assert_uint_eq(rlen, sizeof(brest) - 1);
	ck_assert(memcmp(r, brest, rlen) == 0);
	ck_assert(!proto_parse_bind((const uint8_t *)"c1\0S_1", 6, &portal, &name, &r, &rlen));
	ck_assert(proto_parse_bind((const uint8_t *)"\0\0", 2, &portal, &name, &r, &rlen));
	ck_assert_str_eq(name, "");
	ck_assert_uint_eq(rlen, 0);

	pbuf_reset(&b);
	uint8_t kind;
	proto_build_target(&b, 'D', 'S', "PGCORO_9");
	ck_assert_int_eq(b.data[0], 'D');
	ck_assert(proto_parse_target(b.data + 5, (uint32_t)b.len - 5, &kind, &name));
	ck_assert_int_eq(kind, 'S');
	ck_assert_str_eq(name, "PGCORO_9");
	ck_assert(!proto_parse_target((const uint8_t *)"S", 1, &kind, &name));
	ck_assert(!proto_parse_target((const uint8_t *)"Sab", 3, &kind, &name));
	ck_assert(!proto_parse_target((const uint8_t *)"Sa\0b", 4, &kind, &name));

	pbuf_reset(&b);
	proto_build_empty(&b, '3');
	ck_assert_uint_eq(b.len, 5);
	ck_assert(memcmp(b.data, "3\0\0\0\4", 5) == 0);
	pbuf_free(&b);
}
END_TEST

static enum proto_listen listen_of(const char *sql, char *ch)
{
	return proto_parse_listen(sql, strlen(sql), ch, 64);
}

START_TEST(test_parse_listen)
{
	char ch[64];
	ck_assert_int_eq(listen_of("LISTEN foo", ch), LISTEN_ONE);
	ck_assert_str_eq(ch, "foo");
	ck_assert_int_eq(listen_of("  listen FooBar_1$ ; \n", ch), LISTEN_ONE);
	ck_assert_str_eq(ch, "foobar_1$");
	ck_assert_int_eq(listen_of("LISTEN \"Mixed \"\"Case\"\"\";", ch), LISTEN_ONE);
	ck_assert_str_eq(ch, "Mixed \"Case\"");
	ck_assert_int_eq(listen_of("listen\"q\"", ch), LISTEN_ONE);
	ck_assert_str_eq(ch, "q");
	ck_assert_int_eq(listen_of("UNLISTEN x", ch), UNLISTEN_ONE);
	ck_assert_str_eq(ch, "x");
	ck_assert_int_eq(listen_of("unlisten *;", ch), UNLISTEN_ALL);
	ck_assert_int_eq(listen_of("LISTEN * ", ch), LISTEN_OTHER);
	ck_assert_int_eq(listen_of("LISTENfoo", ch), LISTEN_OTHER);
	ck_assert_int_eq(listen_of("LISTEN foo; select 1", ch), LISTEN_OTHER);
	ck_assert_int_eq(listen_of("LISTEN foo bar", ch), LISTEN_OTHER);
	ck_assert_int_eq(listen_of("LISTEN \"\"", ch), LISTEN_OTHER);
	ck_assert_int_eq(listen_of("LISTEN \"open", ch), LISTEN_OTHER);
	ck_assert_int_eq(listen_of("LISTEN 1abc", ch), LISTEN_OTHER);
	ck_assert_int_eq(listen_of("LISTEN", ch), LISTEN_OTHER);
	ck_assert_int_eq(listen_of("NOTIFY foo", ch), LISTEN_OTHER);
	ck_assert_int_eq(listen_of("LISTEN a -- comment", ch), LISTEN_OTHER);
	char longname[80];
	memset(longname, 'a', sizeof(longname));
	memcpy(longname, "LISTEN ", 7);
	longname[7 + 63] = 0;
	ck_assert_int_eq(listen_of(longname, ch), LISTEN_ONE);
	ck_assert_uint_eq(strlen(ch), 63);
	longname[7 + 63] = 'a';
	longname[7 + 64] = 0;
	ck_assert_int_eq(listen_of(longname, ch), LISTEN_OTHER);
	ck_assert_int_eq(proto_parse_listen("LISTEN foo", 10, ch, 10), LISTEN_OTHER); /* cap */

	struct pbuf b;
	pbuf_init(&b);
	proto_build_notification(&b, 42, "ch", "hi");
	ck_assert_uint_eq(b.len, 1 + 4 + 4 + 3 + 3);
	ck_assert(memcmp(b.data, "A\0\0\0\x0e\0\0\0\x2a" "ch\0hi\0", b.len) == 0);
	pbuf_free(&b);
}
END_TEST

/* As PostgreSQL's ProcessStartupPacket reads "replication": "database", else parse_bool. */
START_TEST(test_parse_replication)
{
	ck_assert_int_eq(proto_parse_replication("database"), PROTO_REPL_LOGICAL);
	const char *yes[] = {"true", "TRUE", "t", "tr", "yes", "Y", "on", "ON", "1"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		ck_assert_msg(proto_parse_replication(yes[i]) == PROTO_REPL_PHYSICAL, "%s", yes[i]);
	const char *no[] = {"false", "f", "FAL", "no", "n", "off", "of", "OFF", "0"};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		ck_assert_msg(proto_parse_replication(no[i]) == PROTO_REPL_NONE, "%s", no[i]);
	const char *bad[] = {"", "o", "Database", "db", "truee", "yess", "onn", "offf", "10",
			     "01", "2", " true", "true ", "maybe"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(proto_parse_replication(bad[i]) == PROTO_REPL_INVALID, "%s", bad[i]);
}
END_TEST

static bool dealloc_of(const char *sql, char *name)
{
	return proto_parse_deallocate(sql, strlen(sql), name, 64);
}

START_TEST(test_parse_deallocate)
{
	char n[64];
	ck_assert(dealloc_of("DEALLOCATE _pg3_0", n));
	ck_assert_str_eq(n, "_pg3_0");
	ck_assert(dealloc_of("  deallocate prepare S_1 ;\n", n));
	ck_assert_str_eq(n, "s_1");
	ck_assert(dealloc_of("Deallocate \"Mixed \"\"Name\"\"\";", n));
	ck_assert_str_eq(n, "Mixed \"Name\"");
	ck_assert(dealloc_of("DEALLOCATE\"q\"", n));
	ck_assert_str_eq(n, "q");
	ck_assert(dealloc_of("DEALLOCATE PREPARE\"Q\"", n));
	ck_assert_str_eq(n, "Q");
	ck_assert(dealloc_of("DEALLOCATE prepared", n)); /* a name that begins "prepare" */
	ck_assert_str_eq(n, "prepared");
	ck_assert(dealloc_of("DEALLOCATE allx", n));
	ck_assert_str_eq(n, "allx");
	ck_assert(dealloc_of("DEALLOCATE \"ALL\"", n)); /* quoted: a name */
	ck_assert_str_eq(n, "ALL");
	ck_assert(dealloc_of("DEALLOCATE a$1", n));
	ck_assert_str_eq(n, "a$1");
	static const char *const others[] = {
		"DEALLOCATE ALL", "deallocate prepare all;", "DEALLOCATE", "DEALLOCATE ;",
		"DEALLOCATEx", "DEALLOCATE a b", "DEALLOCATE a; select 1", "DEALLOCATE a -- comment",
		"DEALLOCATE /* c */ a", "DEALLOCATE \"\"", "DEALLOCATE \"open", "DEALLOCATE 1a",
		"DEALLOCATE caf\xc3\xa9" /* non-ASCII unquoted */, "PREPARE a AS SELECT 1",
		"DISCARD ALL",
	};
	for (size_t i = 0; i < sizeof(others) / sizeof(*others); i++)
		ck_assert_msg(!dealloc_of(others[i], n), "%s", others[i]);
	char longname[90];
	memset(longname, 'a', sizeof(longname));
	memcpy(longname, "DEALLOCATE ", 11);
	longname[11 + 63] = 0;
	ck_assert(dealloc_of(longname, n));
	ck_assert_uint_eq(strlen(n), 63);
	longname[11 + 63] = 'a';
	longname[11 + 64] = 0;
	ck_assert(!dealloc_of(longname, n));
	ck_assert(!proto_parse_deallocate("DEALLOCATE a", 12, n, 10)); /* cap */
	ck_assert(!proto_parse_deallocate("DEALLOCATE a", 10, n, 64));  /* LEN ends the text */

	struct pbuf b;
	pbuf_init(&b);
	proto_build_execute(&b, "p", 7);
	ck_assert_uint_eq(b.len, 1 + 4 + 2 + 4);
	ck_assert(memcmp(b.data, "E\0\0\0\x0ap\0\0\0\0\x07", b.len) == 0);
	pbuf_reset(&b);
	proto_build_query(&b, "x");
	ck_assert(b.len == 7 && memcmp(b.data, "Q\0\0\0\x06x\0", 7) == 0);
	pbuf_free(&b);
}
END_TEST

START_TEST(test_parse_param_status)
{
	const char *n, *v;
	uint8_t *b = dup_exact("a\0b", 4);
	ck_assert(proto_parse_param_status(b, 4, &n, &v));
	ck_assert_str_eq(n, "a");
	ck_assert_str_eq(v, "b");
	ck_assert(!proto_parse_param_status(b, 3, &n, &v)); /* value unterminated */
	ck_assert(!proto_parse_param_status(b, 2, &n, &v)); /* no value */
	free(b);
	b = dup_exact("a\0b\0c", 6);
	ck_assert(!proto_parse_param_status(b, 6, &n, &v)); /* trailing string */
	free(b);
	b = dup_exact("abc", 3);
	ck_assert(!proto_parse_param_status(b, 3, &n, &v));
	free(b);
	b = dup_exact("", 0);
	ck_assert(!proto_parse_param_status(b, 0, &n, &v));
	free(b);
}
END_TEST

START_TEST(test_error_field_garbage)
{
	uint8_t *b = dup_exact("Sxx", 3); /* unterminated value */
	ck_assert_ptr_null(proto_error_field(b, 3, 'S'));
	free(b);
	b = dup_exact("S", 1); /* code with nothing after it */
	ck_assert_ptr_null(proto_error_field(b, 1, 'S'));
	free(b);
	b = dup_exact("Sa\0Cb", 6); /* no final 0, but the field before is intact */
	ck_assert_str_eq(proto_error_field(b, 6, 'C'), "b");
	ck_assert_ptr_null(proto_error_field(b, 5, 'C'));
	ck_assert_ptr_null(proto_error_field(b, 6, 'M'));
	free(b);
	b = dup_exact("\0Cx", 4); /* fields after the terminator are not read */
	ck_assert_ptr_null(proto_error_field(b, 4, 'C'));
	free(b);
	b = dup_exact("", 0);
	ck_assert_ptr_null(proto_error_field(b, 0, 'C'));
	free(b);
}
END_TEST

/* ---- fuzz ---------------------------------------------------------------------------- */

static uint32_t fuzz_state = 12345;

static uint32_t fuzz_rand(void)
{
	fuzz_state ^= fuzz_state << 13;
	fuzz_state ^= fuzz_state >> 17;
	fuzz_state ^= fuzz_state << 5;
	return fuzz_state;
}

START_TEST(test_fuzz)
{
	static const char alphabet[] = {0, 0, 0, 'u', 's', 'e', 'r', 'd', '_', 'p', 'q', '.', 'x'};
	fuzz_state = 12345;
	int accepted = 0;
	for (int it = 0; it < 20000; it++) {
		uint32_t n = fuzz_rand() % 80;
		uint8_t *buf = malloc(n ? n : 1);
		ck_assert_ptr_nonnull(buf);
		bool text = fuzz_rand() & 1;
		for (uint32_t i = 0; i < n; i++)
			buf[i] = text ? (uint8_t)alphabet[fuzz_rand() % sizeof(alphabet)]
				      : (uint8_t)fuzz_rand();

		/* Startup: a plausible header most of the time so the pair walk is exercised. */
		if (n >= 8) {
			uint32_t r = fuzz_rand() % 8;
			uint32_t code = r < 5 ? PROTO_V3 + r % 3
				      : r == 5 ? PROTO_CANCEL_CODE
				      : r == 6 ? PROTO_SSL_CODE : fuzz_rand();
			uint32_t lf = (fuzz_rand() % 4) ? n : fuzz_rand();
			buf[0] = (uint8_t)(lf >> 24);
			buf[1] = (uint8_t)(lf >> 16);
			buf[2] = (uint8_t)(lf >> 8);
			buf[3] = (uint8_t)lf;
			buf[4] = (uint8_t)(code >> 24);
			buf[5] = (uint8_t)(code >> 16);
			buf[6] = (uint8_t)(code >> 8);
			buf[7] = (uint8_t)code;
		}
		struct proto_startup st;
		const char *why = NULL;
		if (proto_parse_startup(buf, n, &st, &why)) {
			accepted++;
			if (st.kind == STARTUP_MSG)
				ck_assert(st.user && st.user[0]);
		} else {
			ck_assert_ptr_nonnull(why);
		}

		struct proto_msg fm;
		if (proto_next_startup(buf, n, &fm) == PROTO_OK)
			ck_assert(fm.size <= n && fm.body + fm.blen == buf + fm.size);
		if (proto_next(buf, n, fuzz_rand(), &fm) == PROTO_OK)
			ck_assert(fm.size <= n && fm.body + fm.blen == buf + fm.size);

		const char *s1, *s2;
		const uint8_t *data;
		uint32_t dl;
		if (proto_parse_password(buf, n, &s1))
			ck_assert_uint_eq(strlen(s1), n - 1);
		if (proto_parse_sasl_initial(buf, n, &s1, &data, &dl))
			ck_assert(dl <= n);
		if (proto_parse_param_status(buf, n, &s1, &s2))
			ck_assert_uint_eq(strlen(s1) + strlen(s2) + 2, n);
		const char *f = proto_error_field(buf, n, (uint8_t)alphabet[fuzz_rand() % sizeof(alphabet)]);
		if (f)
			ck_assert((const uint8_t *)f >= buf && (const uint8_t *)f < buf + n);
		free(buf);
	}
	ck_assert_int_gt(accepted, 0);
}
END_TEST

static Suite *proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, NULL, free_last_pkt);
	tcase_add_test(tc, test_pbuf_grow_reset);
	tcase_add_test(tc, test_pbuf_put_be);
	tcase_add_test(tc, test_pbuf_failed_ignores_puts);
	tcase_add_test(tc, test_build_error_full);
	tcase_add_test(tc, test_build_error_minimal_and_notice);
	tcase_add_test(tc, test_build_auth);
	tcase_add_test(tc, test_build_misc_sequence);
	tcase_add_test(tc, test_build_negotiate);
	tcase_add_test(tc, test_build_result);
	tcase_add_test(tc, test_build_startup_bytes);
	tcase_add_test(tc, test_startup_round_trip);
	tcase_add_test(tc, test_error_round_trip);
	tcase_add_test(tc, test_frame);
	tcase_add_test(tc, test_startup_frame);
	tcase_add_test(tc, test_parse_ssl_gssenc);
	tcase_add_test(tc, test_parse_cancel);
	tcase_add_test(tc, test_parse_versions);
	tcase_add_test(tc, test_parse_bad_layouts);
	tcase_add_test(tc, test_parse_too_many_params);
	tcase_add_test(tc, test_parse_password);
	tcase_add_test(tc, test_parse_sasl_initial);
	tcase_add_test(tc, test_parse_param_status);
	tcase_add_test(tc, test_rename_statements);
	tcase_add_test(tc, test_parse_listen);
	tcase_add_test(tc, test_parse_deallocate);
	tcase_add_test(tc, test_parse_replication);
	tcase_add_test(tc, test_error_field_garbage);
	tcase_add_test(tc, test_fuzz);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return unit_run(proto_suite()); }
