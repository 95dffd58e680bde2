/* SCRAM-SHA-256 (RFC 5802 / RFC 7677) for the server side of client authentication,
 * with OpenSSL. Pure code over strings: the session sends and receives the messages. */
#ifndef PGCORO_SCRAM_H
#define PGCORO_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_KEY_LEN 32
#define SCRAM_MAX_SALT 64
#define SCRAM_NONCE_LEN 18 /* raw bytes of the server's nonce part, before base64 */

struct scram_keys {
	int iterations;
	uint8_t salt[SCRAM_MAX_SALT];
	int salt_len;
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

/* Parses a verifier "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>". */
bool scram_parse_verifier(const char *verifier, struct scram_keys *out) __attribute__((warn_unused_result));

/* Derives keys from PASSWORD (SASLprep is the identity for ASCII; non-ASCII used as is),
 * SALT and ITERATIONS. */
bool scram_derive_keys(const char *password, const uint8_t *salt, int salt_len, int iterations,
		       struct scram_keys *out) __attribute__((warn_unused_result));

/* Fills OUT with keys for a user that does not exist: random salt and keys, so the exchange
 * runs to the end and then fails like a wrong password. */
void scram_mock_keys(const char *user, struct scram_keys *out);

/* One server-side exchange. Zero-initialise, then call the steps in order. */
struct scram_server {
	struct scram_keys keys;
	char client_first_bare[512];
	char server_first[512];
	char nonce[256];         /* client nonce + server nonce */
	char gs2_header[64];     /* "n,," or "y,," (as sent, for the c= check) */
	bool mock;               /* fail at the end whatever the proof */
};

/* Handles client-first-message MSG (LEN bytes, not NUL-terminated). On success writes the
 * server-first-message into OUT (NUL-terminated) and returns true. False on a malformed
 * message or one asking for channel binding ("p=..."). */
bool scram_server_first(struct scram_server *st, const char *msg, size_t len, char *out,
			size_t outlen) __attribute__((warn_unused_result));

/* Handles client-final-message MSG. Returns true only if it is well-formed, its nonce and
 * channel binding match, and the proof verifies (and !st->mock); then OUT holds the
 * server-final-message "v=...". */
bool scram_server_final(struct scram_server *st, const char *msg, size_t len, char *out,
			size_t outlen) __attribute__((warn_unused_result));

/* Client side of one exchange, for tests: builds client-final from server-first. */
bool scram_client_final(const char *password, const char *client_first_bare,
			const char *server_first, const char *gs2_header, char *out, size_t outlen)
	__attribute__((warn_unused_result));

#endif
