/* The auth_file (PgBouncer's userlist.txt format) and password checks for plain and md5.
 * Pure code: no I/O except reading the file in auth_load. */
#ifndef PGCORO_AUTH_H
#define PGCORO_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

struct scram_keys;

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
int auth_count(const struct auth_file *af);
/* The user of entry I (0 <= I < auth_count), in file order. Owned by AF. */
const char *auth_user_at(const struct auth_file *af, int i);

/* The secret stored for USER, or NULL. Owned by AF. */
const char *auth_lookup(const struct auth_file *af, const char *user);

enum auth_secret_kind auth_secret_kind(const char *secret);

/* out = "md5" + hex(md5(password || user)), NUL-terminated (36 bytes). */
void auth_md5_secret(const char *password, const char *user, char out[36]);

/* Checks an md5 PasswordMessage RESPONSE ("md5" + hex(md5(hex(md5(pw||user)) || salt)))
 * against SECRET (plain or md5). False for a SCRAM secret. Constant-time compare. */
bool auth_md5_check(const char *secret, const char *user, const uint8_t salt[4],
		    const char *response) __attribute__((warn_unused_result));

/* As auth_md5_check with USER's secret in AF, md5(password || user) being computed once
 * per entry and cached (as the SCRAM keys are). False if USER is unknown (AF may be NULL),
 * after the same digest as for a listed user: a failure costs the same either way. */
bool auth_md5_check_user(struct auth_file *af, const char *user, const uint8_t salt[4],
			 const char *response) __attribute__((warn_unused_result));

/* Checks a cleartext PASSWORD against SECRET of any kind (plain, md5, SCRAM verifier). */
bool auth_plain_check(const char *secret, const char *user, const char *password)
	__attribute__((warn_unused_result));

/* The iterations of the SCRAM verifiers AF makes from plain secrets (scram_iterations;
 * SCRAM_DEFAULT_ITERATIONS after auth_load). Set before the first auth_scram_keys. */
void auth_set_scram_iterations(struct auth_file *af, int iterations);

/* The SCRAM keys for USER, derived once from a plain secret (scram_user_salt, the salt an
 * unknown user of that name gets too, and AF's iterations) or parsed from a SCRAM
 * verifier, then cached in AF. NULL if USER is unknown or has an
 * md5 secret (SCRAM impossible). Owned by AF. */
const struct scram_keys *auth_scram_keys(struct auth_file *af, const char *user);

#endif
