/* Unit tests for scram.c: the RFC 7677 vector, verifier parsing, full exchanges, and every
 * way a client message can be wrong. */
#include <check.h>

#include "unit.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "scram.h"

/* Test hook in scram.c, not in scram.h. */
bool scram_server_first_nonce(struct scram_server *st, const char *msg, size_t len,
                              const char *server_nonce, char *out, size_t outlen);

#define RFC_CLIENT_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SERVER_FIRST                                                                           \
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL                                                                           \
	"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"                             \
	"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/* "pencil" with the RFC's salt, computed independently with Python's hashlib/hmac. */
#define RFC_VERIFIER                                                                               \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"                                             \
	"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"                                            \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static const uint8_t rfc_salt[16] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
                                     0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};

/* The RFC keys, parsed (test_rfc7677_vector checks they equal the derived ones). */
static void rfc_keys(struct scram_keys *k)
{
	ck_assert(scram_parse_verifier(RFC_VERIFIER, k));
}

static bool server_first(struct scram_server *st, const char *msg, char *out, size_t outlen)
{
	return scram_server_first(st, msg, strlen(msg), out, outlen);
}

static bool server_final(struct scram_server *st, const char *msg, char *out, size_t outlen)
{
	return scram_server_final(st, msg, strlen(msg), out, outlen);
}

/* Runs one whole exchange: the server holds KEYS, the client knows PASSWORD. */
static bool exchange(const struct scram_keys *keys, bool mock, const char *gs2,
                     const char *password)
{
	struct scram_server st = {.keys = *keys, .mock = mock};
	char first[600], sfirst[512], cfinal[1024], sfinal[128];
	const char *bare = "n=,r=fyko+d2lbbFgONRv9qkxdawL";
	snprintf(first, sizeof first, "%s%s", gs2, bare);
	ck_assert(server_first(&st, first, sfirst, sizeof sfirst));
	ck_assert(scram_client_final(password, bare, sfirst, gs2, cfinal, sizeof cfinal));
	return server_final(&st, cfinal, sfinal, sizeof sfinal);
}

START_TEST(test_rfc7677_vector)
{
	struct scram_keys k, parsed;
	ck_assert(scram_derive_keys("pencil", rfc_salt, sizeof rfc_salt, 4096, &k));
	ck_assert(scram_parse_verifier(RFC_VERIFIER, &parsed));
	ck_assert_int_eq(parsed.iterations, 4096);
	ck_assert_int_eq(parsed.salt_len, 16);
	ck_assert_mem_eq(parsed.salt, rfc_salt, 16);
	ck_assert_mem_eq(parsed.stored_key, k.stored_key, SCRAM_KEY_LEN);
	ck_assert_mem_eq(parsed.server_key, k.server_key, SCRAM_KEY_LEN);

	struct scram_server st = {.keys = parsed};
	char out[512], cfinal[512];
	ck_assert(scram_server_first_nonce(&st, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
	                                   RFC_SERVER_NONCE, out, sizeof out));
	ck_assert_str_eq(out, RFC_SERVER_FIRST);
	ck_assert_str_eq(st.gs2_header, "n,,");
	ck_assert_str_eq(st.client_first_bare, "n=user,r=rOprNGfwEbeRWgbNEkqO");

	ck_assert(scram_client_final("pencil", "n=user,r=rOprNGfwEbeRWgbNEkqO", out, "n,,", cfinal,
	                             sizeof cfinal));
	ck_assert_str_eq(cfinal, RFC_CLIENT_FINAL);

	ck_assert(server_final(&st, RFC_CLIENT_FINAL, out, sizeof out));
	ck_assert_str_eq(out, RFC_SERVER_FINAL);
}
END_TEST

START_TEST(test_rfc7677_mock_fails)
{
	struct scram_server st = {.mock = true};
	rfc_keys(&st.keys);
	char out[512];
	ck_assert(scram_server_first_nonce(&st, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
	                                   RFC_SERVER_NONCE, out, sizeof out));
	ck_assert_str_eq(out, RFC_SERVER_FIRST);
	ck_assert(!server_final(&st, RFC_CLIENT_FINAL, out, sizeof out));
}
END_TEST

START_TEST(test_verifier_bad)
{
	static const char *const bad[] = {
	    "",
	    "SCRAM-SHA-256$",
	    "SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    /* iterations: missing, zero, negative, leading zero, overflow, junk */
	    "SCRAM-SHA-256$:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$-1:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$04096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$99999999999:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLm"
	    "tbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$40x6:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    /* salt: empty, bad base64, missing padding */
	    "SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$4096:W22ZaJ0S*Y7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    /* keys: short, long, missing, trailing junk, missing separators */
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$W22ZaJ0SNY7soEsUEjb6gQ=="
	    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=AAAA",
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:",
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU= ",
	    "SCRAM-SHA-256$4096W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    /* non-canonical base64 (trailing bits set in the padded group) */
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gR==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "md5"
	    "4a0a68b43b6cd5cf266fa02f196e2371",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct scram_keys k = {.iterations = 7};
		ck_assert_msg(!scram_parse_verifier(bad[i], &k), "accepted: %s", bad[i]);
		ck_assert_int_eq(k.iterations, 7); /* untouched on failure */
	}
}
END_TEST

START_TEST(test_verifier_salt_sizes)
{
	/* A 64-byte salt (the maximum) parses; 65 bytes does not. */
	uint8_t salt[65];
	memset(salt, 0xab, sizeof salt);
	struct scram_keys k;
	ck_assert(scram_derive_keys("pw", salt, 64, 1, &k));
	ck_assert(!scram_derive_keys("pw", salt, 65, 1, &k));
	ck_assert(!scram_derive_keys("pw", salt, 0, 1, &k));
	ck_assert(!scram_derive_keys("pw", salt, 16, 0, &k));
	char v[300];
	snprintf(v, sizeof v,
	         "SCRAM-SHA-256$1:%s$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	         ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	         "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq"
	         "6urqw==");
	ck_assert(scram_parse_verifier(v, &k));
	ck_assert_int_eq(k.salt_len, 64);
	snprintf(v, sizeof v,
	         "SCRAM-SHA-256$1:%s$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	         ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	         "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq"
	         "6urq6s=");
	ck_assert(!scram_parse_verifier(v, &k));
}
END_TEST

START_TEST(test_exchange_derived)
{
	struct scram_keys k;
	uint8_t salt[16] = "0123456789abcdef";
	ck_assert(scram_derive_keys("correct horse", salt, sizeof salt, 4096, &k));
	ck_assert(exchange(&k, false, "n,,", "correct horse"));
	ck_assert(exchange(&k, false, "y,,", "correct horse"));
	ck_assert(exchange(&k, false, "n,a=someone,", "correct horse"));
	ck_assert(!exchange(&k, false, "n,,", "correct horsE"));
	ck_assert(!exchange(&k, false, "n,,", ""));
	/* Non-ASCII is used as is, on both sides. */
	ck_assert(scram_derive_keys("p\xc3\xa4ss", salt, sizeof salt, 10, &k));
	ck_assert(exchange(&k, false, "n,,", "p\xc3\xa4ss"));
	ck_assert(!exchange(&k, false, "n,,", "pass"));
}
END_TEST

START_TEST(test_exchange_verifier)
{
	struct scram_keys k;
	ck_assert(scram_parse_verifier(RFC_VERIFIER, &k));
	ck_assert(exchange(&k, false, "n,,", "pencil"));
	ck_assert(!exchange(&k, false, "n,,", "pencil2"));
}
END_TEST

START_TEST(test_mock_keys)
{
	struct scram_keys a, b, c;
	scram_mock_keys("ghost", SCRAM_DEFAULT_ITERATIONS, &a);
	scram_mock_keys("ghost", SCRAM_DEFAULT_ITERATIONS, &b);
	scram_mock_keys("ghosts", SCRAM_DEFAULT_ITERATIONS, &c);
	ck_assert_int_eq(a.iterations, 4096);
	ck_assert_int_eq(a.salt_len, 16);
	/* An unknown name's salt is the same on every attempt, as a real user's is; another
	 * name's is unrelated; both are the names' scram_user_salt. */
	ck_assert_mem_eq(a.salt, b.salt, 16);
	ck_assert(memcmp(a.salt, c.salt, 16) != 0);
	uint8_t salt[SCRAM_DEFAULT_SALT_LEN];
	ck_assert(scram_user_salt("ghost", salt));
	ck_assert_mem_eq(a.salt, salt, 16);
	ck_assert(scram_user_salt("ghosts", salt));
	ck_assert_mem_eq(c.salt, salt, 16);
	ck_assert(scram_user_salt("", salt));
	ck_assert(memcmp(a.salt, salt, 16) != 0);
	/* the keys themselves are random: nothing to verify a proof against */
	ck_assert(memcmp(a.stored_key, b.stored_key, SCRAM_KEY_LEN) != 0);

	/* The server-first looks like any other; the final step fails whatever the password. */
	struct scram_server st = {.mock = true};
	scram_mock_keys("ghost", SCRAM_DEFAULT_ITERATIONS, &st.keys);
	char out[512];
	ck_assert(server_first(&st, "n,,n=,r=abcdefgh", out, sizeof out));
	ck_assert_int_eq(strncmp(out, "r=abcdefgh", 10), 0);
	ck_assert_ptr_nonnull(strstr(out, ",s="));
	ck_assert_ptr_nonnull(strstr(out, ",i=4096"));
	ck_assert(!exchange(&a, true, "n,,", "anything"));

	/* mock=true fails even with the right password. */
	uint8_t pw_salt[4] = {1, 2, 3, 4};
	ck_assert(scram_derive_keys("pw", pw_salt, 4, 2, &a));
	ck_assert(exchange(&a, false, "n,,", "pw"));
	ck_assert(!exchange(&a, true, "n,,", "pw"));
}
END_TEST

START_TEST(test_server_nonce_random)
{
	struct scram_server s1 = {0}, s2 = {0};
	rfc_keys(&s1.keys);
	s2.keys = s1.keys;
	char o1[512], o2[512];
	ck_assert(server_first(&s1, RFC_CLIENT_FIRST, o1, sizeof o1));
	ck_assert(server_first(&s2, RFC_CLIENT_FIRST, o2, sizeof o2));
	ck_assert_str_ne(o1, o2);
	/* client nonce + 24 base64 characters of 18 random bytes */
	ck_assert_uint_eq(strlen(s1.nonce), strlen("rOprNGfwEbeRWgbNEkqO") + 24);
}
END_TEST

START_TEST(test_first_rejected)
{
	static const char *const bad[] = {
	    "",
	    "p=tls-server-end-point,,n=,r=abc", /* channel binding: we offer no -PLUS */
	    "p=tls-unique,,n=,r=abc",
	    "x,,n=,r=abc",
	    "n,n=,r=abc",
	    "n,,",
	    "n,,n=",
	    "n,,n=,r=",
	    "n,,r=abc",
	    "n,,n=user",
	    "n,,n=user,r=abc,",
	    "n,,n=user,r=abc,=x",
	    "n,,n=user,r=abc,1=x",
	    "n,,n=user,r=ab c",
	    "n,,n=user,r=ab\x7f",
	    "n,,m=ext,n=user,r=abc", /* reserved mandatory extension */
	    "n,a,,n=,r=abc",
	    "n,b=x,,n=,r=abc",
	    ",,n=,r=abc",
	    "n",
	    "n,",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct scram_server st = {0};
		rfc_keys(&st.keys);
		char out[512] = "";
		ck_assert_msg(!server_first(&st, bad[i], out, sizeof out), "accepted: %s", bad[i]);
		ck_assert_str_eq(out, "");
	}
	/* Extensions after the nonce are allowed and ignored. */
	struct scram_server st = {0};
	rfc_keys(&st.keys);
	char out[512];
	ck_assert(server_first(&st, "n,,n=user,r=abc,x=1,y=2", out, sizeof out));
}
END_TEST

START_TEST(test_first_bounds)
{
	struct scram_server st = {0};
	rfc_keys(&st.keys);
	char out[512], msg[1200];

	/* An embedded NUL is refused. */
	ck_assert(!scram_server_first(&st, "n,,n=\0,r=abc", 12, out, sizeof out));

	/* A client nonce that leaves no room for ours in st->nonce. */
	memset(msg, 0, sizeof msg);
	strcpy(msg, "n,,n=,r=");
	memset(msg + 8, 'x', sizeof st.nonce - 24);
	ck_assert(!server_first(&st, msg, out, sizeof out));
	msg[8 + sizeof st.nonce - 25] = '\0';
	ck_assert(server_first(&st, msg, out, sizeof out));

	/* client-first-bare longer than its buffer. */
	struct scram_server st2 = {0};
	rfc_keys(&st2.keys);
	memset(msg, 0, sizeof msg);
	strcpy(msg, "n,,n=");
	memset(msg + 5, 'u', 600);
	strcat(msg, ",r=abc");
	ck_assert(!server_first(&st2, msg, out, sizeof out));

	/* An authzid longer than gs2_header. */
	memset(msg, 0, sizeof msg);
	strcpy(msg, "n,a=");
	memset(msg + 4, 'a', 70);
	strcat(msg, ",n=,r=abc");
	ck_assert(!server_first(&st2, msg, out, sizeof out));

	/* OUT too small for the server-first. */
	ck_assert(!server_first(&st2, "n,,n=,r=abc", out, 20));
	ck_assert_str_eq(st2.server_first, "");

	/* Keys not set (zero-initialised, nothing loaded). */
	struct scram_server st3 = {0};
	ck_assert(!server_first(&st3, "n,,n=,r=abc", out, sizeof out));
}
END_TEST

START_TEST(test_step_order)
{
	struct scram_server st = {0};
	rfc_keys(&st.keys);
	char out[512];
	/* Final before first. */
	ck_assert(!server_final(&st, RFC_CLIENT_FINAL, out, sizeof out));
	/* First twice. */
	ck_assert(scram_server_first_nonce(&st, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
	                                   RFC_SERVER_NONCE, out, sizeof out));
	ck_assert(!scram_server_first_nonce(&st, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
	                                    RFC_SERVER_NONCE, out, sizeof out));
	/* A failed final spends the nonce: the right proof afterwards fails too. */
	ck_assert(!server_final(&st, "c=biws,r=x,p=AAAA", out, sizeof out));
	ck_assert(!server_final(&st, RFC_CLIENT_FINAL, out, sizeof out));
}
END_TEST

/* Server state right after the RFC client-first, ready for a client-final. */
static void rfc_started(struct scram_server *st)
{
	char out[512];
	memset(st, 0, sizeof *st);
	rfc_keys(&st->keys);
	ck_assert(scram_server_first_nonce(st, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
	                                   RFC_SERVER_NONCE, out, sizeof out));
}

START_TEST(test_final_rejected)
{
	static const char *const bad[] = {
	    "",
	    ",",
	    "c=biws",
	    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    /* nonce mismatch: short, long, different, missing */
	    "c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0X,"
	    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1,"
	    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    "c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    /* tampered channel binding: "y,,", "p=...", missing, empty */
	    "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    "c=cD10bHMtdW5pcXVlLCw=,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    "c=,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    /* proof: flipped, short, long, bad base64, empty, not last */
	    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVq=",
	    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	    "p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7And===",
	    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQAAAA=",
	    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",
	    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=",
	    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1",
	    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
	    /* an extension changes the AuthMessage, so the RFC proof no longer verifies */
	    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,x=1,"
	    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    /* order */
	    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,c=biws,"
	    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct scram_server st;
		char out[512] = "";
		rfc_started(&st);
		ck_assert_msg(!server_final(&st, bad[i], out, sizeof out), "accepted: %s", bad[i]);
		ck_assert_str_eq(out, "");
	}

	/* An embedded NUL, an oversized message, and OUT too small. */
	struct scram_server st;
	char out[512], big[2000];
	rfc_started(&st);
	ck_assert(!scram_server_final(&st, "c=biws\0", 7, out, sizeof out));
	rfc_started(&st);
	snprintf(big, sizeof big, "%s", RFC_CLIENT_FINAL);
	memset(big + strlen(big), 'A', sizeof big - strlen(big) - 1);
	big[sizeof big - 1] = '\0';
	ck_assert(!server_final(&st, big, out, sizeof out));
	rfc_started(&st);
	ck_assert(!server_final(&st, RFC_CLIENT_FINAL, out, 10));
	rfc_started(&st);
	ck_assert(server_final(&st, RFC_CLIENT_FINAL, out, sizeof out));
}
END_TEST

START_TEST(test_gs2_mismatch)
{
	/* The client claims "y,," in c= but sent "n,," first: a downgrade, refused. */
	struct scram_keys k;
	uint8_t salt[8] = {9, 8, 7, 6, 5, 4, 3, 2};
	ck_assert(scram_derive_keys("pw", salt, sizeof salt, 16, &k));
	struct scram_server st = {.keys = k};
	char sfirst[512], cfinal[512], out[128];
	const char *bare = "n=,r=clientnonce";
	ck_assert(server_first(&st, "n,,n=,r=clientnonce", sfirst, sizeof sfirst));
	ck_assert(scram_client_final("pw", bare, sfirst, "y,,", cfinal, sizeof cfinal));
	ck_assert(!server_final(&st, cfinal, out, sizeof out));

	/* The authzid is part of the gs2 header echoed in c=. */
	struct scram_server st2 = {.keys = k};
	ck_assert(server_first(&st2, "n,a=bob,n=,r=clientnonce", sfirst, sizeof sfirst));
	ck_assert(scram_client_final("pw", bare, sfirst, "n,,", cfinal, sizeof cfinal));
	ck_assert(!server_final(&st2, cfinal, out, sizeof out));
}
END_TEST

START_TEST(test_truncations_and_garbage)
{
	/* Every prefix of valid messages, and pseudo-random bytes: refused, never a crash. */
	char out[512];
	for (size_t n = 0; n < strlen(RFC_CLIENT_FIRST); n++) {
		struct scram_server st = {0};
		rfc_keys(&st.keys);
		bool ok = scram_server_first_nonce(&st, RFC_CLIENT_FIRST, n, RFC_SERVER_NONCE, out,
		                                   sizeof out);
		/* Only prefixes that are themselves complete messages (a shorter nonce) pass. */
		ck_assert(!ok || n > strlen("n,,n=user,r="));
	}
	for (size_t n = 0; n < strlen(RFC_CLIENT_FINAL); n++) {
		struct scram_server st;
		rfc_started(&st);
		ck_assert(!scram_server_final(&st, RFC_CLIENT_FINAL, n, out, sizeof out));
	}
	uint32_t seed = 12345;
	char buf[700];
	for (int round = 0; round < 2000; round++) {
		size_t n = (size_t)(round % 700);
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			/* bias toward the characters the parser cares about */
			static const char alphabet[] = "nyp,=racsm+/AZaz09$%";
			buf[i] = (round & 1) ? (char)(seed >> 16)
			                     : alphabet[(seed >> 16) % (sizeof alphabet - 1)];
		}
		struct scram_server st;
		rfc_started(&st);
		ck_assert(!scram_server_final(&st, buf, n, out, sizeof out));
		struct scram_server st2 = {0};
		rfc_keys(&st2.keys);
		if (scram_server_first(&st2, buf, n, out, sizeof out))
			ck_assert_uint_lt(strlen(out), sizeof out);
	}
}
END_TEST

START_TEST(test_client_final_rejects)
{
	char out[512];
	const char *bare = "n=,r=abc";
	/* server nonce does not extend ours, or does not add to it */
	ck_assert(!scram_client_final("pw", bare, "r=xyzdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1", "n,,",
	                              out, sizeof out));
	ck_assert(!scram_client_final("pw", bare, "r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1", "n,,",
	                              out, sizeof out));
	ck_assert(!scram_client_final("pw", bare, "r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ,i=1", "n,,",
	                              out, sizeof out));
	ck_assert(!scram_client_final("pw", bare, "r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0", "n,,",
	                              out, sizeof out));
	ck_assert(!scram_client_final("pw", bare, "r=abcdef,i=1", "n,,", out, sizeof out));
	ck_assert(!scram_client_final("pw", bare, "r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1", "n,,",
	                              out, 20));
	ck_assert(scram_client_final("pw", bare, "r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1", "n,,",
	                             out, sizeof out));
	ck_assert_int_eq(strncmp(out, "c=biws,r=abcdef,p=", 18), 0);
}
END_TEST

/* A client exchange (scram_client_*) against pgcoro's server side holding KEYS: the client
 * has CLIENT_KEY and SERVER_KEY. Returns whether the server accepted the proof; then
 * *VERIFIED says whether the client accepted the server's signature. */
static bool client_exchange(const struct scram_keys *keys, const uint8_t *client_key,
                            const uint8_t *server_key, bool *verified)
{
	struct scram_server st = {.keys = *keys};
	struct scram_client cl;
	memset(&cl, 0, sizeof cl);
	char first[128], sfirst[512], cfinal[1024], sfinal[128];
	ck_assert(scram_client_first(&cl, first, sizeof first));
	ck_assert_int_eq(strncmp(first, "n,,n=,r=", 8), 0);
	ck_assert(server_first(&st, first, sfirst, sizeof sfirst));
	ck_assert(scram_client_server_first(&cl, sfirst, strlen(sfirst)));
	ck_assert_int_eq(cl.iterations, keys->iterations);
	ck_assert_int_eq(cl.salt_len, keys->salt_len);
	ck_assert_mem_eq(cl.salt, keys->salt, (size_t)keys->salt_len);
	ck_assert(scram_client_final_keys(&cl, client_key, server_key, cfinal, sizeof cfinal));
	*verified = false;
	if (!server_final(&st, cfinal, sfinal, sizeof sfinal))
		return false;
	*verified = scram_client_verify(&cl, sfinal, strlen(sfinal));
	return true;
}

/* The client-final c= of CL (after a client-first) against a server-first extending its
 * nonce, into OUT (NUL-terminated, the value only). */
static void client_final_cbind(struct scram_client *cl, const uint8_t *ck, char *out, size_t len)
{
	char sfirst[256], cfinal[1024];
	snprintf(sfirst, sizeof sfirst, "r=%ssrv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		 cl->client_first_bare + 5);
	ck_assert(scram_client_server_first(cl, sfirst, strlen(sfirst)));
	ck_assert(scram_client_final_keys(cl, ck, ck, cfinal, sizeof cfinal));
	ck_assert_int_eq(strncmp(cfinal, "c=", 2), 0);
	size_t n = strcspn(cfinal + 2, ",");
	ck_assert_uint_lt(n, len);
	memcpy(out, cfinal + 2, n);
	out[n] = '\0';
}

START_TEST(test_client_channel_binding)
{
	/* libpq's gs2 headers: "y" (could bind, not offered) goes through pgcoro's server
	 * side; "p=tls-server-end-point" carries the hash after the header in c= (base64 of
	 * both, RFC 5802), with the -PLUS mechanism. */
	uint8_t ck[SCRAM_KEY_LEN] = {0}, hash[SCRAM_MAX_CBIND_DATA + 1];
	for (size_t i = 0; i < sizeof hash; i++)
		hash[i] = (uint8_t)(i * 7 + 1);
	char first[128], c[256];
	struct scram_client cl;
	memset(&cl, 0, sizeof cl);
	ck_assert_str_eq(scram_client_mechanism(&cl), "SCRAM-SHA-256");
	ck_assert(scram_client_channel_binding(&cl, SCRAM_CB_NOT_OFFERED, NULL, 0));
	ck_assert_str_eq(scram_client_mechanism(&cl), "SCRAM-SHA-256");
	ck_assert(scram_client_first(&cl, first, sizeof first));
	ck_assert_int_eq(strncmp(first, "y,,n=,r=", 8), 0);
	client_final_cbind(&cl, ck, c, sizeof c);
	ck_assert_str_eq(c, "eSws"); /* "y,," */

	memset(&cl, 0, sizeof cl);
	ck_assert(!scram_client_channel_binding(&cl, SCRAM_CB_SERVER_END_POINT, NULL, 0));
	ck_assert(!scram_client_channel_binding(&cl, SCRAM_CB_SERVER_END_POINT, hash, 0));
	ck_assert(!scram_client_channel_binding(&cl, SCRAM_CB_SERVER_END_POINT, hash,
						 SCRAM_MAX_CBIND_DATA + 1));
	ck_assert(scram_client_channel_binding(&cl, SCRAM_CB_SERVER_END_POINT, hash, 32));
	ck_assert_str_eq(scram_client_mechanism(&cl), "SCRAM-SHA-256-PLUS");
	ck_assert(scram_client_first(&cl, first, sizeof first));
	ck_assert_int_eq(strncmp(first, "p=tls-server-end-point,,n=,r=", 29), 0);
	client_final_cbind(&cl, ck, c, sizeof c);
	uint8_t want[24 + 32];
	unsigned char want64[sizeof want * 2];
	memcpy(want, "p=tls-server-end-point,,", 24);
	memcpy(want + 24, hash, 32);
	EVP_EncodeBlock(want64, want, (int)sizeof want);
	ck_assert_str_eq(c, (const char *)want64);
	/* the longest hash (SHA-512) fits */
	memset(&cl, 0, sizeof cl);
	ck_assert(scram_client_channel_binding(&cl, SCRAM_CB_SERVER_END_POINT, hash,
					       SCRAM_MAX_CBIND_DATA));
	ck_assert(scram_client_first(&cl, first, sizeof first));
	client_final_cbind(&cl, ck, c, sizeof c);
}
END_TEST

START_TEST(test_client_keys_against_server)
{
	/* The keys alone (no password, no PBKDF2 on the client) log in, and the server's
	 * signature is checked against ServerKey. */
	struct scram_keys k, again;
	uint8_t ck[SCRAM_KEY_LEN], ck2[SCRAM_KEY_LEN], wrong[SCRAM_KEY_LEN];
	ck_assert(scram_derive_client_key("pencil", rfc_salt, sizeof rfc_salt, 4096, &k, ck));
	ck_assert(scram_derive_keys("pencil", rfc_salt, sizeof rfc_salt, 4096, &again));
	ck_assert_mem_eq(k.stored_key, again.stored_key, SCRAM_KEY_LEN);
	struct scram_keys rfc;
	rfc_keys(&rfc);
	ck_assert_mem_eq(k.server_key, rfc.server_key, SCRAM_KEY_LEN);
	bool verified;
	ck_assert(client_exchange(&rfc, ck, rfc.server_key, &verified));
	ck_assert(verified);
	/* a wrong ClientKey: the server refuses the proof */
	memcpy(wrong, ck, sizeof wrong);
	wrong[0] ^= 1;
	ck_assert(!client_exchange(&rfc, wrong, rfc.server_key, &verified));
	/* a wrong ServerKey: the server accepts, the client refuses its signature */
	memcpy(wrong, rfc.server_key, sizeof wrong);
	wrong[31] ^= 0x80;
	ck_assert(client_exchange(&rfc, ck, wrong, &verified));
	ck_assert(!verified);
	/* another password's keys */
	ck_assert(scram_derive_client_key("pencil2", rfc_salt, sizeof rfc_salt, 4096, &k, ck2));
	ck_assert(!client_exchange(&rfc, ck2, k.server_key, &verified));
}
END_TEST

START_TEST(test_client_rfc7677_proof)
{
	/* With the RFC's nonce in place, scram_client_final_keys gives the RFC's proof. */
	struct scram_keys k;
	uint8_t ck[SCRAM_KEY_LEN];
	ck_assert(scram_derive_client_key("pencil", rfc_salt, sizeof rfc_salt, 4096, &k, ck));
	struct scram_client cl;
	memset(&cl, 0, sizeof cl);
	snprintf(cl.client_first_bare, sizeof cl.client_first_bare, "n=,r=rOprNGfwEbeRWgbNEkqO");
	ck_assert(scram_client_server_first(&cl, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST)));
	char cfinal[512];
	ck_assert(scram_client_final_keys(&cl, ck, k.server_key, cfinal, sizeof cfinal));
	/* the bare message differs from the RFC's ("n=user"), so the proof does too; the
	 * password helper with the same bare message must agree byte for byte */
	char helper[512];
	ck_assert(scram_client_final("pencil", cl.client_first_bare, RFC_SERVER_FIRST, "n,,", helper,
	                             sizeof helper));
	ck_assert_str_eq(cfinal, helper);
	ck_assert_int_eq(strncmp(cfinal, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=",
	                         62), 0);
}
END_TEST

START_TEST(test_client_server_first_rejects)
{
	static const char *const bad[] = {
	    "",
	    "r=NONCE",                                     /* no salt */
	    "r=NONCE,s=W22ZaJ0SNY7soEsUEjb6gQ==",          /* no iterations */
	    "r=NONCE,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",      /* zero iterations */
	    "r=NONCE,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",
	    "r=NONCE,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999",
	    "r=NONCE,s=,i=4096",                           /* empty salt */
	    "r=NONCE,s=W22ZaJ0SNY7soEsUEjb6gQ,i=4096",     /* bad base64 */
	    "m=x,r=NONCE,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", /* mandatory extension */
	    "r=NONCE,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,",  /* trailing comma */
	    "r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",     /* nonce not ours */
	    "r=,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct scram_client cl;
		memset(&cl, 0, sizeof cl);
		char first[128], msg[1024];
		ck_assert(scram_client_first(&cl, first, sizeof first));
		const char *nonce = cl.client_first_bare + 5;
		/* NONCE: ours followed by a server part */
		const char *at = strstr(bad[i], "NONCE");
		if (at)
			snprintf(msg, sizeof msg, "%.*s%sSRV%s", (int)(at - bad[i]), bad[i], nonce, at + 5);
		else
			snprintf(msg, sizeof msg, "%s", bad[i]);
		ck_assert_msg(!scram_client_server_first(&cl, msg, strlen(msg)), "accepted: %s", msg);
	}
	/* the nonce must be longer than ours (the server adds to it), printable; and a NUL
	 * inside the message is refused */
	struct scram_client cl;
	memset(&cl, 0, sizeof cl);
	char first[128], msg[1024];
	ck_assert(scram_client_first(&cl, first, sizeof first));
	const char *nonce = cl.client_first_bare + 5;
	snprintf(msg, sizeof msg, "r=%s,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", nonce);
	ck_assert(!scram_client_server_first(&cl, msg, strlen(msg)));
	snprintf(msg, sizeof msg, "r=%s\x7f,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", nonce);
	ck_assert(!scram_client_server_first(&cl, msg, strlen(msg)));
	snprintf(msg, sizeof msg, "r=%sX,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", nonce);
	ck_assert(!scram_client_server_first(&cl, msg, strlen(msg) + 1));
	ck_assert(scram_client_server_first(&cl, msg, strlen(msg)));
	ck_assert_int_eq(cl.iterations, 4096);
	/* once only, and the final only after it */
	ck_assert(!scram_client_server_first(&cl, msg, strlen(msg)));
	struct scram_client fresh;
	memset(&fresh, 0, sizeof fresh);
	uint8_t key[SCRAM_KEY_LEN] = {0};
	char out[512];
	ck_assert(!scram_client_final_keys(&fresh, key, key, out, sizeof out));
	ck_assert(!scram_client_verify(&fresh, "v=", 2));
}
END_TEST

START_TEST(test_client_verify_rejects)
{
	struct scram_keys rfc;
	rfc_keys(&rfc);
	uint8_t ck[SCRAM_KEY_LEN];
	struct scram_keys k;
	ck_assert(scram_derive_client_key("pencil", rfc_salt, sizeof rfc_salt, 4096, &k, ck));
	static const char *const bad[] = {"", "v=", "e=invalid-proof", "x=abc", "v=AAAA",
	                                  "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4"};
	for (size_t i = 0; i <= sizeof bad / sizeof bad[0]; i++) {
		struct scram_server st = {.keys = rfc};
		struct scram_client cl;
		memset(&cl, 0, sizeof cl);
		char first[128], sfirst[512], cfinal[1024], sfinal[128];
		ck_assert(scram_client_first(&cl, first, sizeof first));
		ck_assert(server_first(&st, first, sfirst, sizeof sfirst));
		ck_assert(scram_client_server_first(&cl, sfirst, strlen(sfirst)));
		ck_assert(scram_client_final_keys(&cl, ck, rfc.server_key, cfinal, sizeof cfinal));
		ck_assert(!scram_client_final_keys(&cl, ck, rfc.server_key, cfinal, sizeof cfinal));
		ck_assert(server_final(&st, cfinal, sfinal, sizeof sfinal));
		if (i == sizeof bad / sizeof bad[0]) {
			/* the right one, with an extension after it; and only once */
			strcat(sfinal, ",x=ext");
			ck_assert(scram_client_verify(&cl, sfinal, strlen(sfinal)));
			ck_assert(!scram_client_verify(&cl, sfinal, strlen(sfinal)));
		} else {
			ck_assert_msg(!scram_client_verify(&cl, bad[i], strlen(bad[i])), "accepted %s",
			              bad[i]);
		}
	}
}
END_TEST

START_TEST(test_server_keeps_client_key)
{
	/* The ClientKey a verified proof reveals is the one the password derives: SCRAM
	 * pass-through can log in to a server with it and the verifier's ServerKey. */
	struct scram_keys k;
	uint8_t ck[SCRAM_KEY_LEN];
	ck_assert(scram_derive_client_key("pencil", rfc_salt, sizeof rfc_salt, 4096, &k, ck));
	for (int keep = 0; keep < 2; keep++) {
		for (int right = 0; right < 2; right++) {
			struct scram_server st = {.keys = k, .keep_client_key = keep};
			char sfirst[512], cfinal[1024], sfinal[128];
			const char *bare = "n=,r=fyko+d2lbbFgONRv9qkxdawL";
			ck_assert(scram_server_first(&st, "n,,n=,r=fyko+d2lbbFgONRv9qkxdawL", 32,
			                             sfirst, sizeof sfirst));
			ck_assert(scram_client_final(right ? "pencil" : "pencil!", bare, sfirst, "n,,",
			                             cfinal, sizeof cfinal));
			ck_assert(server_final(&st, cfinal, sfinal, sizeof sfinal) == (bool)right);
			ck_assert(st.have_client_key == (keep && right));
			if (keep && right)
				ck_assert_mem_eq(st.client_key, ck, SCRAM_KEY_LEN);
		}
	}
	/* a mock exchange (unknown user) never reveals one */
	struct scram_server st = {.keys = k, .keep_client_key = true, .mock = true};
	char sfirst[512], cfinal[1024], sfinal[128];
	ck_assert(scram_server_first(&st, "n,,n=,r=abc", 11, sfirst, sizeof sfirst));
	ck_assert(scram_client_final("pencil", "n=,r=abc", sfirst, "n,,", cfinal, sizeof cfinal));
	ck_assert(!server_final(&st, cfinal, sfinal, sizeof sfinal));
	ck_assert(!st.have_client_key);
}
END_TEST

static Suite *scram_suite(void)
{
	Suite *s = suite_create("scram");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_rfc7677_vector);
	tcase_add_test(tc, test_rfc7677_mock_fails);
	tcase_add_test(tc, test_verifier_bad);
	tcase_add_test(tc, test_verifier_salt_sizes);
	tcase_add_test(tc, test_exchange_derived);
	tcase_add_test(tc, test_exchange_verifier);
	tcase_add_test(tc, test_mock_keys);
	tcase_add_test(tc, test_server_nonce_random);
	tcase_add_test(tc, test_first_rejected);
	tcase_add_test(tc, test_first_bounds);
	tcase_add_test(tc, test_step_order);
	tcase_add_test(tc, test_final_rejected);
	tcase_add_test(tc, test_gs2_mismatch);
	tcase_add_test(tc, test_truncations_and_garbage);
	tcase_add_test(tc, test_client_final_rejects);
	tcase_add_test(tc, test_client_keys_against_server);
	tcase_add_test(tc, test_client_channel_binding);
	tcase_add_test(tc, test_client_rfc7677_proof);
	tcase_add_test(tc, test_client_server_first_rejects);
	tcase_add_test(tc, test_client_verify_rejects);
	tcase_add_test(tc, test_server_keeps_client_key);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return unit_run(scram_suite()); }
