/* The auth_file (PgBouncer's userlist.txt format) and password checks for plain and md5.
 * Pure code: no I/O except reading the file in auth_load. */
#ifndef PGCORO_AUTH_H
#define PGCORO_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scram.h"
#include "types.h"

enum auth_secret_kind {
	SECRET_PLAIN,
	SECRET_MD5,   /* "md5" + 32 lowercase hex digits = md5(password || user) */
	SECRET_SCRAM, /* "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>" */
};

/* Reads PATH: lines `"user" "secret" ...` (a doubled quote "" inside a quoted string is a
 * quote; further fields are ignored; blank lines and lines starting with ';' or '#' are
 * skipped). Returns NULL on failure with "path:line: reason" (or "path: reason") in err. */
struct auth_file *auth_load(const char *path, char *err, size_t errlen) __attribute__((warn_unused_result));
void auth_free(struct auth_file *af);

/* An auth_file of one line, USER and SECRET (both copied; what auth_query found), its
 * SCRAM verifier parsed (auth_scram_keys): the login checks take it as they take a loaded
 * file. NULL when memory is short. */
struct auth_file *auth_of_one(const char *user, const char *secret)
    __attribute__((warn_unused_result));
int auth_count(const struct auth_file *af);
/* The user of entry I (0 <= I < auth_count), in file order. Owned by AF. */
const char *auth_user_at(const struct auth_file *af, int i);

/* The secret stored for USER, or NULL. Owned by AF. */
const char *auth_lookup(const struct auth_file *af, const char *user);

enum auth_secret_kind auth_secret_kind(const char *secret);

/* out = "md5" + hex(md5(password || user)), NUL-terminated (36 bytes). */
void auth_md5_secret(const char *password, const char *user, char out[36]);

/* The md5 PasswordMessage that answers SALT for the md5 SECRET ("md5" + hex(md5(password ||
 * user)), as PostgreSQL stores it): "md5" + hex(md5(hex || salt)) into OUT (NUL-terminated),
 * what a client knowing the password would send. False (OUT "") when SECRET is not an md5
 * secret or MD5 is unavailable (FIPS). Thread-safe. */
bool auth_md5_response(const char *secret, const uint8_t salt[4], char out[36])
	__attribute__((warn_unused_result));

/* Checks an md5 PasswordMessage RESPONSE ("md5" + hex(md5(hex(md5(pw||user)) || salt)))
 * against SECRET (plain or md5). False for a SCRAM secret. Constant-time compare. */
bool auth_md5_check(const char *secret, const char *user, const uint8_t salt[4],
		    const char *response) __attribute__((warn_unused_result));

/* As auth_md5_check with USER's secret in AF, md5(password || user) being computed once
 * per entry and cached (as the SCRAM keys are). False if USER is unknown (AF may be NULL),
 * after the same digest as for a listed user: a failure costs the same either way. */
bool auth_md5_check_user(struct auth_file *af, const char *user, const uint8_t salt[4],
			 const char *response) __attribute__((warn_unused_result));

/* A cleartext password check (auth_type plain, an hba password rule) in two steps, so that
 * its PBKDF2 can run off the event loop and cost the same whoever the user is. */
struct auth_plain {
	struct scram_keys keys; /* derived against: the user's SCRAM verifier, else a mock one */
	bool by_keys;           /* the derivation decides (the user has a SCRAM verifier) */
	bool matched;           /* else: the user's plain or md5 secret matched */
};

/* Loop thread (reads AF, which may be NULL): fills CHK for USER's PASSWORD. A SCRAM
 * verifier's keys are copied in; for anyone else (unknown, a plain, md5 or empty secret)
 * the cheap check of the secret is done here and CHK gets scram_mock_keys(USER,
 * MOCK_ITERATIONS), so that auth_plain_verify derives a key for every user. CHK owes
 * nothing to AF afterwards (a reload may free it). */
void auth_plain_prepare(const struct auth_file *af, const char *user, const char *password,
                        int mock_iterations, struct auth_plain *chk);

/* Any thread: derives PASSWORD against CHK's keys (PBKDF2 over their iterations: slow by
 * design) and returns the verdict. Touches nothing but its arguments. */
bool auth_plain_verify(const struct auth_plain *chk, const char *password)
    __attribute__((warn_unused_result));

/* Both steps at once: checks a cleartext PASSWORD against SECRET of any kind (plain, md5,
 * SCRAM verifier; a mock with SCRAM_DEFAULT_ITERATIONS otherwise). For tests. */
bool auth_plain_check(const char *secret, const char *user, const char *password)
	__attribute__((warn_unused_result));

/* The md5 method (auth_type md5, an hba md5 rule) asks USER for SCRAM-SHA-256 instead: md5
 * cannot check a SCRAM verifier, so when AF holds one, every user but those with an md5
 * secret is asked for SCRAM — unknown users (mock keys) and plain secrets too, so the
 * request does not tell who exists. False when AF (may be NULL) holds no SCRAM verifier:
 * then everyone gets md5. */
bool auth_md5_offers_scram(const struct auth_file *af, const char *user);

/* Once AF is loaded, before it is shared (any thread; slow by design: one PBKDF2 of
 * ITERATIONS per plain secret, which is why a reload runs it on the executor): makes the
 * SCRAM keys logins will use, so that no login derives any. Parses every SCRAM verifier;
 * derives the keys of every plain secret when a method may ask its user for SCRAM: SCRAM
 * (auth_type scram-sha-256, or an hba file that may choose it), or MD5 (auth_type md5, or
 * an hba file) while AF holds a SCRAM verifier (auth_md5_offers_scram). False if a
 * derivation failed (that user then has no keys). */
bool auth_make_scram_keys(struct auth_file *af, int iterations, bool scram, bool md5)
    __attribute__((warn_unused_result));

/* The SCRAM keys auth_make_scram_keys made for USER (from a verifier, or from a plain
 * secret with scram_user_salt, the salt an unknown user of that name gets too); a pure
 * look-up, never a derivation. NULL if USER is unknown, has an md5 or empty secret (SCRAM
 * impossible), or a plain one whose keys were not made. Owned by AF. */
const struct scram_keys *auth_scram_keys(const struct auth_file *af, const char *user);

#endif
