/* Unit tests for auth.c: auth_file parsing and errors, secret kinds, md5 and plain checks
 * against each kind of secret (the plain one in its two steps too), the md5 method's SCRAM
 * rule, and the cached SCRAM keys. */
#include <check.h>

#include "unit.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "scram.h"

/* Known values computed independently with Python's hashlib:
 * "md5" + md5("secret" "alice"), then "md5" + md5(hex || 01 02 03 04). */
#define ALICE_MD5 "md54a0a68b43b6cd5cf266fa02f196e2371"
#define ALICE_RESP "md598a0412b9c31436fc53776e863350083"
/* "pencil" for "postgres", salt de ad be ef. */
#define PG_MD5 "md54c21b325d75177d5e9b9789a50ab0c9c"
#define PG_RESP "md5ced99751bea390968e795eaedb0a4935"
/* "pencil" with the RFC 7677 salt and 4096 iterations (hashlib.pbkdf2_hmac + hmac). */
#define PENCIL_VERIFIER                                                                            \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"                                             \
	"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"                                            \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static const uint8_t salt1234[4] = {1, 2, 3, 4};
static const uint8_t salt_deadbeef[4] = {0xde, 0xad, 0xbe, 0xef};

/* Writes CONTENT (LEN bytes) to a new temporary file; its path goes into PATH. */
static void write_file(char path[64], const char *content, size_t len)
{
	strcpy(path, "/tmp/pgcoro_test_auth_XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
	close(fd);
}

static struct auth_file *load_string(const char *content, char *err, size_t errlen)
{
	char path[64];
	write_file(path, content, strlen(content));
	struct auth_file *af = auth_load(path, err, errlen);
	unlink(path);
	return af;
}

/* A file with a user of each kind of secret: alice plain ("secret"), postgres md5
 * ("pencil"), carol a SCRAM verifier ("pencil"), dave empty. */
static struct auth_file *load_every_kind(void)
{
	char err[256] = "";
	struct auth_file *af = load_string("\"alice\" \"secret\"\n\"postgres\" \"" PG_MD5 "\"\n"
					   "\"carol\" \"" PENCIL_VERIFIER "\"\n\"dave\" \"\"\n",
					   err, sizeof err);
	ck_assert_msg(af, "%s", err);
	return af;
}

/* Loading CONTENT fails with "<path>:<LINE>: <REASON>". */
static void expect_error(const char *content, int line, const char *reason)
{
	char path[64], err[256] = "", want[256];
	write_file(path, content, strlen(content));
	struct auth_file *af = auth_load(path, err, sizeof err);
	snprintf(want, sizeof want, "%s:%d: %s", path, line, reason);
	unlink(path);
	ck_assert_ptr_null(af);
	ck_assert_str_eq(err, want);
}

START_TEST(test_load_good)
{
	char err[256] = "";
	struct auth_file *af = load_string("; PgBouncer userlist\n"
	                                   "# another comment\n"
	                                   "\n"
	                                   "   \t\n"
	                                   "\"alice\" \"" ALICE_MD5 "\"\n"
	                                   "\"bob\"\t\"plain pass\" \"extra\" ignored fields\n"
	                                   "  \"carol\"   \"" PENCIL_VERIFIER "\"\r\n"
	                                   "\"da\"\"ve\" \"pa\"\"ss\"\"\"\n"
	                                   "\"\"\"\" \"q\"\n"
	                                   "  ; indented comment\n"
	                                   "\"eve\" \"no newline at end\"",
	                                   err, sizeof err);
	ck_assert_msg(af != NULL, "%s", err);
	ck_assert_int_eq(auth_count(af), 6);
	ck_assert_str_eq(auth_lookup(af, "alice"), ALICE_MD5);
	ck_assert_str_eq(auth_lookup(af, "bob"), "plain pass");
	ck_assert_str_eq(auth_lookup(af, "carol"), PENCIL_VERIFIER);
	ck_assert_str_eq(auth_lookup(af, "da\"ve"), "pa\"ss\"");
	ck_assert_str_eq(auth_lookup(af, "\""), "q");
	ck_assert_str_eq(auth_lookup(af, "eve"), "no newline at end");
	ck_assert_ptr_null(auth_lookup(af, "mallory"));
	ck_assert_ptr_null(auth_lookup(af, "Alice"));
	ck_assert_ptr_null(auth_lookup(af, ""));
	auth_free(af);
}
END_TEST

START_TEST(test_load_empty_and_null)
{
	char err[64] = "";
	struct auth_file *af = load_string("", err, sizeof err);
	ck_assert_ptr_nonnull(af);
	ck_assert_int_eq(auth_count(af), 0);
	ck_assert_ptr_null(auth_lookup(af, "alice"));
	ck_assert_ptr_null(auth_scram_keys(af, "alice"));
	auth_free(af);
	ck_assert_int_eq(auth_count(NULL), 0);
	ck_assert_ptr_null(auth_lookup(NULL, "alice"));
	auth_free(NULL);
}
END_TEST

START_TEST(test_load_duplicate_later_wins)
{
	char err[64] = "";
	struct auth_file *af = load_string(
	    "\"alice\" \"first\"\n\"bob\" \"b\"\n\"alice\" \"second\"\n", err, sizeof err);
	ck_assert_ptr_nonnull(af);
	ck_assert_int_eq(auth_count(af), 2);
	ck_assert_str_eq(auth_lookup(af, "alice"), "second");
	auth_free(af);
}
END_TEST

START_TEST(test_load_many)
{
	/* Enough users to grow the table several times; every one found. */
	size_t cap = 5000 * 40, len = 0;
	char *content = malloc(cap);
	ck_assert_ptr_nonnull(content);
	for (int i = 0; i < 5000; i++)
		len += (size_t)snprintf(content + len, cap - len, "\"user%d\" \"pw%d\"\n", i, i);
	char path[64], err[256] = "";
	write_file(path, content, len);
	free(content);
	struct auth_file *af = auth_load(path, err, sizeof err);
	unlink(path);
	ck_assert_msg(af != NULL, "%s", err);
	ck_assert_int_eq(auth_count(af), 5000);
	for (int i = 0; i < 5000; i++) {
		char user[32], pw[32];
		snprintf(user, sizeof user, "user%d", i);
		snprintf(pw, sizeof pw, "pw%d", i);
		ck_assert_str_eq(auth_lookup(af, user), pw);
	}
	ck_assert_ptr_null(auth_lookup(af, "user5000"));
	auth_free(af);
}
END_TEST

START_TEST(test_load_errors)
{
	expect_error("\"alice\" \"pw\"\n\"bob\"\n", 2, "missing secret");
	expect_error("\"alice\" \"pw\"\n\"bob\"   \r\n", 2, "missing secret");
	expect_error("# c\n\n\"alice\" \"pw\n", 3, "unterminated quoted string");
	expect_error("\"alice\" \"pw\"\n; c\n\n\"bob \"pw\"\n", 4, "expected a quoted secret");
	expect_error("\"ali\"\"ce \"pw\"\n", 1, "expected a quoted secret");
	expect_error("\"ali\"\"\n\"bob\" \"pw\"\n", 1, "unterminated quoted string");
	expect_error("\"alice\n", 1, "unterminated quoted string");
	expect_error("alice \"pw\"\n", 1, "expected a quoted user name");
	expect_error("\"alice\" pw\n", 1, "expected a quoted secret");
	expect_error("\n\n\n\n\"\" \"pw\"\n", 5, "empty user name");

	char path[64], err[256], want[256];
	write_file(path, "\"a\" \"b\"\n\"c\0\" \"d\"\n", 17);
	ck_assert_ptr_null(auth_load(path, err, sizeof err));
	snprintf(want, sizeof want, "%s:2: NUL byte in line", path);
	ck_assert_str_eq(err, want);
	/* A NULL or tiny err buffer is fine. */
	ck_assert_ptr_null(auth_load(path, NULL, 0));
	ck_assert_ptr_null(auth_load(path, err, 4));
	ck_assert_str_eq(err, "/tm");
	unlink(path);
}
END_TEST

START_TEST(test_load_missing_file)
{
	char err[256];
	ck_assert_ptr_null(auth_load("/nonexistent/pgcoro/userlist.txt", err, sizeof err));
	ck_assert_str_eq(
	    err, "/nonexistent/pgcoro/userlist.txt: cannot open: No such file or directory");
	ck_assert_ptr_null(auth_load("/", err, sizeof err)); /* a directory, */
	ck_assert_str_eq(err, "/: not a regular file");
	ck_assert_ptr_null(auth_load("/dev/zero", err, sizeof err)); /* a device: no end */
	ck_assert_str_eq(err, "/dev/zero: not a regular file");
}
END_TEST

START_TEST(test_secret_kind)
{
	ck_assert_int_eq(auth_secret_kind(ALICE_MD5), SECRET_MD5);
	ck_assert_int_eq(auth_secret_kind(PENCIL_VERIFIER), SECRET_SCRAM);
	ck_assert_int_eq(auth_secret_kind("secret"), SECRET_PLAIN);
	ck_assert_int_eq(auth_secret_kind(""), SECRET_PLAIN);
	ck_assert_int_eq(auth_secret_kind("md5"), SECRET_PLAIN);
	ck_assert_int_eq(auth_secret_kind("md54A0A68B43B6CD5CF266FA02F196E2371"), SECRET_PLAIN);
	ck_assert_int_eq(auth_secret_kind("md54a0a68b43b6cd5cf266fa02f196e237"), SECRET_PLAIN);
	ck_assert_int_eq(auth_secret_kind("md54a0a68b43b6cd5cf266fa02f196e23711"), SECRET_PLAIN);
	ck_assert_int_eq(auth_secret_kind("md54a0a68b43b6cd5cf266fa02f196e237g"), SECRET_PLAIN);
	ck_assert_int_eq(auth_secret_kind("SCRAM-SHA-256$4096:bad"), SECRET_PLAIN);
}
END_TEST

START_TEST(test_md5_secret)
{
	char out[36];
	auth_md5_secret("secret", "alice", out);
	ck_assert_str_eq(out, ALICE_MD5);
	auth_md5_secret("pencil", "postgres", out);
	ck_assert_str_eq(out, PG_MD5);
}
END_TEST

START_TEST(test_md5_response)
{
	/* The pass-through answer from a stored md5 secret: what a client with the password
	 * sends (values computed independently with Python's hashlib). */
	static const uint8_t salt[4] = {1, 2, 3, 4};
	char out[36];
	char secret[36];
	auth_md5_secret("md5pass", "md5user", secret);
	ck_assert_str_eq(secret, "md57541d4e65fae11bd07f18dc6fe2b02bc");
	ck_assert(auth_md5_response(secret, salt, out));
	ck_assert_str_eq(out, "md5b5dfd8fbdd6fc9174cc8e85dfa598fa2");
	ck_assert(auth_md5_response(ALICE_MD5, salt1234, out));
	ck_assert_str_eq(out, ALICE_RESP);
	ck_assert(auth_md5_check(ALICE_MD5, "alice", salt1234, out));
	/* not an md5 secret: a plain password, upper-case hex, a short one, a SCRAM verifier */
	ck_assert(!auth_md5_response("secret", salt, out));
	ck_assert_str_eq(out, "");
	ck_assert(!auth_md5_response("md57541D4E65FAE11BD07F18DC6FE2B02BC", salt, out));
	ck_assert(!auth_md5_response("md57541d4e65fae11bd07f18dc6fe2b02b", salt, out));
	ck_assert(!auth_md5_response("SCRAM-SHA-256$4096:AAAA$AAAA:AAAA", salt, out));
}
END_TEST

START_TEST(test_md5_check)
{
	/* From an md5 secret and from the equivalent plain secret. */
	ck_assert(auth_md5_check(ALICE_MD5, "alice", salt1234, ALICE_RESP));
	ck_assert(auth_md5_check("secret", "alice", salt1234, ALICE_RESP));
	ck_assert(auth_md5_check(PG_MD5, "postgres", salt_deadbeef, PG_RESP));
	ck_assert(auth_md5_check("pencil", "postgres", salt_deadbeef, PG_RESP));

	/* Wrong salt, user, password, or a mangled response. */
	ck_assert(!auth_md5_check(ALICE_MD5, "alice", salt_deadbeef, ALICE_RESP));
	ck_assert(!auth_md5_check("secret", "bob", salt1234, ALICE_RESP));
	ck_assert(!auth_md5_check("secreT", "alice", salt1234, ALICE_RESP));
	ck_assert(
	    !auth_md5_check(ALICE_MD5, "alice", salt1234, "md598a0412b9c31436fc53776e86335008"));
	ck_assert(!auth_md5_check(ALICE_MD5, "alice", salt1234, ALICE_RESP "0"));
	ck_assert(
	    !auth_md5_check(ALICE_MD5, "alice", salt1234, "md598A0412B9C31436FC53776E863350083"));
	ck_assert(!auth_md5_check(ALICE_MD5, "alice", salt1234, ""));
	/* The stored md5 secret itself is not a valid response. */
	ck_assert(!auth_md5_check(ALICE_MD5, "alice", salt1234, ALICE_MD5));

	/* A SCRAM verifier cannot check md5; an empty secret never passes. */
	ck_assert(!auth_md5_check(PENCIL_VERIFIER, "postgres", salt_deadbeef, PG_RESP));
	char empty_secret[36];
	auth_md5_secret("", "alice", empty_secret);
	ck_assert(!auth_md5_check("", "alice", salt1234, empty_secret));
}
END_TEST

/* The per-entry cached check agrees with auth_md5_check, for plain and md5 secrets, across
 * repeated logins (the cache) and different salts. */
START_TEST(test_md5_check_user)
{
	struct auth_file *af = load_every_kind();
	for (int round = 0; round < 3; round++) {
		ck_assert(auth_md5_check_user(af, "alice", salt1234, ALICE_RESP));
		ck_assert(!auth_md5_check_user(af, "alice", salt_deadbeef, ALICE_RESP));
		ck_assert(auth_md5_check_user(af, "postgres", salt_deadbeef, PG_RESP));
		ck_assert(!auth_md5_check_user(af, "postgres", salt1234, PG_RESP));
		ck_assert(!auth_md5_check_user(af, "alice", salt1234, ""));
	}
	/* unknown user, a SCRAM verifier, an empty password */
	ck_assert(!auth_md5_check_user(af, "bob", salt1234, ALICE_RESP));
	ck_assert(!auth_md5_check_user(NULL, "bob", salt1234, ALICE_RESP));
	/* the dummy an unlisted user is checked against (md5 of 32 zeros and the salt) fails */
	char dummy_resp[36];
	auth_md5_secret("00000000000000000000000000000000", "\x01\x02\x03\x04", dummy_resp);
	ck_assert(!auth_md5_check_user(af, "bob", salt1234, dummy_resp));
	ck_assert(!auth_md5_check_user(af, "carol", salt1234, dummy_resp));
	ck_assert(!auth_md5_check_user(af, "dave", salt1234, dummy_resp));
	ck_assert(!auth_md5_check_user(af, "carol", salt_deadbeef, PG_RESP));
	char empty_secret[36];
	auth_md5_secret("", "dave", empty_secret);
	ck_assert(!auth_md5_check_user(af, "dave", salt1234, empty_secret));
	auth_free(af);
}
END_TEST

START_TEST(test_plain_check)
{
	/* plain */
	ck_assert(auth_plain_check("secret", "alice", "secret"));
	ck_assert(!auth_plain_check("secret", "alice", "secreT"));
	ck_assert(!auth_plain_check("secret", "alice", "secret "));
	ck_assert(!auth_plain_check("secret", "alice", ""));
	/* md5 */
	ck_assert(auth_plain_check(ALICE_MD5, "alice", "secret"));
	ck_assert(!auth_plain_check(ALICE_MD5, "bob", "secret"));
	ck_assert(!auth_plain_check(ALICE_MD5, "alice", "wrong"));
	ck_assert(!auth_plain_check(ALICE_MD5, "alice", ALICE_MD5));
	/* SCRAM */
	ck_assert(auth_plain_check(PENCIL_VERIFIER, "anyone", "pencil"));
	ck_assert(!auth_plain_check(PENCIL_VERIFIER, "anyone", "pencil "));
	ck_assert(!auth_plain_check(PENCIL_VERIFIER, "anyone", PENCIL_VERIFIER));
	/* empty secret */
	ck_assert(!auth_plain_check("", "alice", ""));
}
END_TEST

/* The split check: every user, listed or not, is derived against a verifier — the user's
 * own SCRAM one, else a mock with the name's salt and the given iterations — and the
 * verdict is the secret's. */
START_TEST(test_plain_prepare_verify)
{
	struct auth_file *af = load_every_kind();
	static const struct {
		const char *user, *password;
		bool by_keys, ok;
	} cases[] = {
	    {"alice", "secret", false, true},     {"alice", "secreT", false, false},
	    {"postgres", "pencil", false, true},  {"postgres", "pencil ", false, false},
	    {"carol", "pencil", true, true},      {"carol", "crayon", true, false},
	    {"dave", "", false, false},           {"mallory", "secret", false, false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct auth_plain chk;
		auth_plain_prepare(af, cases[i].user, cases[i].password, 77, &chk);
		ck_assert_msg(chk.by_keys == cases[i].by_keys, "%s", cases[i].user);
		ck_assert_msg(auth_plain_verify(&chk, cases[i].password) == cases[i].ok, "%s",
			      cases[i].user);
		if (cases[i].by_keys) {
			ck_assert_int_eq(chk.keys.iterations, 4096);
			continue;
		}
		/* the mock: the name's stable salt, the iterations asked for */
		uint8_t salt[SCRAM_DEFAULT_SALT_LEN];
		ck_assert(scram_user_salt(cases[i].user, salt));
		ck_assert_int_eq(chk.keys.iterations, 77);
		ck_assert_int_eq(chk.keys.salt_len, SCRAM_DEFAULT_SALT_LEN);
		ck_assert_mem_eq(chk.keys.salt, salt, SCRAM_DEFAULT_SALT_LEN);
	}
	struct auth_plain chk;
	auth_plain_prepare(NULL, "alice", "secret", 77, &chk);
	ck_assert(!chk.by_keys && !auth_plain_verify(&chk, "secret"));
	auth_free(af);
}
END_TEST

/* The md5 method asks for SCRAM whoever the user is once the file holds a SCRAM verifier
 * (but from users with an md5 secret, which only md5 can check); never without one. */
START_TEST(test_md5_offers_scram)
{
	char err[256] = "";
	struct auth_file *mixed = load_every_kind();
	struct auth_file *md5only =
	    load_string("\"alice\" \"secret\"\n\"postgres\" \"" PG_MD5 "\"\n", err, sizeof err);
	/* a later line replaces carol's verifier: no SCRAM verifier is left */
	struct auth_file *replaced = load_string("\"carol\" \"" PENCIL_VERIFIER "\"\n"
						 "\"carol\" \"pencil\"\n",
						 err, sizeof err);
	ck_assert_ptr_nonnull(mixed);
	ck_assert_ptr_nonnull(md5only);
	ck_assert_ptr_nonnull(replaced);
	ck_assert(auth_md5_offers_scram(mixed, "carol"));
	ck_assert(auth_md5_offers_scram(mixed, "mallory"));
	ck_assert(auth_md5_offers_scram(mixed, "alice"));
	ck_assert(auth_md5_offers_scram(mixed, "dave"));
	ck_assert(!auth_md5_offers_scram(mixed, "postgres"));
	ck_assert(!auth_md5_offers_scram(md5only, "alice"));
	ck_assert(!auth_md5_offers_scram(md5only, "mallory"));
	ck_assert(!auth_md5_offers_scram(replaced, "carol"));
	ck_assert(!auth_md5_offers_scram(replaced, "mallory"));
	ck_assert(!auth_md5_offers_scram(NULL, "mallory"));
	auth_free(mixed);
	auth_free(md5only);
	auth_free(replaced);
}
END_TEST

/* auth_make_scram_keys derives a plain secret's keys only for a method that may ask it for
 * SCRAM: scram-sha-256, or md5 while the file holds a verifier (auth_md5_offers_scram);
 * verifiers are parsed whatever the method. */
START_TEST(test_make_scram_keys_by_method)
{
	static const struct {
		bool scram, md5, verifier, plain_keys;
	} cases[] = {
	    {false, false, false, false}, {false, false, true, false},
	    {false, true, false, false},  {false, true, true, true},
	    {true, false, false, true},   {true, false, true, true},
	    {true, true, true, true},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char err[256] = "";
		struct auth_file *af = load_string(cases[i].verifier
		                                       ? "\"bob\" \"pw\"\n\"carol\" \"" PENCIL_VERIFIER "\"\n"
		                                       : "\"bob\" \"pw\"\n",
		                                   err, sizeof err);
		ck_assert_msg(af, "%s", err);
		ck_assert(auth_make_scram_keys(af, 7, cases[i].scram, cases[i].md5));
		const struct scram_keys *k = auth_scram_keys(af, "bob");
		ck_assert_msg((k != NULL) == cases[i].plain_keys, "case %zu", i);
		if (k)
			ck_assert_int_eq(k->iterations, 7);
		if (cases[i].verifier)
			ck_assert_ptr_nonnull(auth_scram_keys(af, "carol"));
		auth_free(af);
	}
}
END_TEST

/* A whole SCRAM exchange against KEYS with PASSWORD. */
static bool scram_ok(const struct scram_keys *keys, const char *password)
{
	struct scram_server st = {.keys = *keys};
	char sfirst[512], cfinal[512], sfinal[128];
	const char *first = "n,,n=,r=0123456789abcdef";
	if (!scram_server_first(&st, first, strlen(first), sfirst, sizeof sfirst))
		return false;
	ck_assert(scram_client_final(password, first + 3, sfirst, "n,,", cfinal, sizeof cfinal));
	return scram_server_final(&st, cfinal, strlen(cfinal), sfinal, sizeof sfinal);
}

START_TEST(test_scram_keys)
{
	char err[256] = "";
	struct auth_file *af = load_string("\"alice\" \"" ALICE_MD5 "\"\n"
	                                   "\"bob\" \"plain pass\"\n"
	                                   "\"carol\" \"" PENCIL_VERIFIER "\"\n"
	                                   "\"dave\" \"\"\n",
	                                   err, sizeof err);
	ck_assert_msg(af != NULL, "%s", err);
	/* nothing is derived at a login: before the keys are made there are none */
	ck_assert_ptr_null(auth_scram_keys(af, "bob"));
	ck_assert_ptr_null(auth_scram_keys(af, "carol"));
	ck_assert(auth_make_scram_keys(af, 4096, true, false));

	/* plain: derived with the file, a 16-byte salt and 4096 iterations */
	const struct scram_keys *b1 = auth_scram_keys(af, "bob");
	ck_assert_ptr_nonnull(b1);
	ck_assert_int_eq(b1->iterations, 4096);
	ck_assert_int_eq(b1->salt_len, 16);
	struct scram_keys copy = *b1;
	const struct scram_keys *b2 = auth_scram_keys(af, "bob");
	ck_assert_ptr_eq(b1, b2);
	ck_assert_mem_eq(&copy, b2, sizeof copy);
	struct scram_keys check;
	ck_assert(scram_derive_keys("plain pass", b1->salt, b1->salt_len, 4096, &check));
	ck_assert_mem_eq(check.stored_key, b1->stored_key, SCRAM_KEY_LEN);
	ck_assert_mem_eq(check.server_key, b1->server_key, SCRAM_KEY_LEN);
	ck_assert(scram_ok(b1, "plain pass"));
	ck_assert(!scram_ok(b1, "plain pas"));

	/* SCRAM: parsed from the verifier */
	const struct scram_keys *c1 = auth_scram_keys(af, "carol");
	ck_assert_ptr_nonnull(c1);
	ck_assert_int_eq(c1->iterations, 4096);
	ck_assert_int_eq(c1->salt_len, 16);
	ck_assert_ptr_eq(c1, auth_scram_keys(af, "carol"));
	ck_assert(scram_ok(c1, "pencil"));
	ck_assert(!scram_ok(c1, "crayon"));

	/* md5, empty secret, unknown user: no SCRAM possible */
	ck_assert_ptr_null(auth_scram_keys(af, "alice"));
	ck_assert_ptr_null(auth_scram_keys(af, "dave"));
	ck_assert_ptr_null(auth_scram_keys(af, "mallory"));
	ck_assert_ptr_null(auth_scram_keys(NULL, "bob"));
	auth_free(af);
}
END_TEST

START_TEST(test_scram_keys_two_files)
{
	/* Each auth_file has its own keys: a reload derives them again (a changed password
	 * counts), with the same salt: the name's scram_user_salt, the salt an unknown user of
	 * that name would get. A client sees no change when a reload adds or removes a user. */
	char err[64];
	struct auth_file *a = load_string("\"bob\" \"pw\"\n", err, sizeof err);
	struct auth_file *b = load_string("\"bob\" \"pw2\"\n\"eve\" \"pw\"\n", err, sizeof err);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert(auth_make_scram_keys(a, SCRAM_DEFAULT_ITERATIONS, true, true));
	ck_assert(auth_make_scram_keys(b, SCRAM_DEFAULT_ITERATIONS, true, true));
	const struct scram_keys *ka = auth_scram_keys(a, "bob"), *kb = auth_scram_keys(b, "bob");
	ck_assert_ptr_nonnull(ka);
	ck_assert_ptr_nonnull(kb);
	ck_assert_ptr_ne(ka, kb);
	ck_assert_mem_eq(ka->salt, kb->salt, 16);
	ck_assert(memcmp(ka->stored_key, kb->stored_key, SCRAM_KEY_LEN) != 0);
	ck_assert(scram_ok(kb, "pw2"));
	uint8_t salt[SCRAM_DEFAULT_SALT_LEN];
	ck_assert(scram_user_salt("bob", salt));
	ck_assert_mem_eq(ka->salt, salt, 16);
	struct scram_keys mock;
	scram_mock_keys("eve", SCRAM_DEFAULT_ITERATIONS, &mock);
	ck_assert_mem_eq(auth_scram_keys(b, "eve")->salt, mock.salt, 16);
	ck_assert(memcmp(ka->salt, mock.salt, 16) != 0);
	auth_free(a);
	auth_free(b);
}
END_TEST

static Suite *auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_load_good);
	tcase_add_test(tc, test_load_empty_and_null);
	tcase_add_test(tc, test_load_duplicate_later_wins);
	tcase_add_test(tc, test_load_many);
	tcase_add_test(tc, test_load_errors);
	tcase_add_test(tc, test_load_missing_file);
	tcase_add_test(tc, test_secret_kind);
	tcase_add_test(tc, test_md5_secret);
	tcase_add_test(tc, test_md5_check);
	tcase_add_test(tc, test_md5_response);
	tcase_add_test(tc, test_md5_check_user);
	tcase_add_test(tc, test_plain_check);
	tcase_add_test(tc, test_plain_prepare_verify);
	tcase_add_test(tc, test_md5_offers_scram);
	tcase_add_test(tc, test_scram_keys);
	tcase_add_test(tc, test_scram_keys_two_files);
	tcase_add_test(tc, test_make_scram_keys_by_method);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return unit_run(auth_suite()); }
