/* SCRAM-SHA-256 (RFC 5802 / RFC 7677) with OpenSSL: the server side of client
 * authentication, and the client side pgcoro logs in to servers with (srvlogin.c). Pure
 * code over strings: the session sends and receives the messages. */
#ifndef PGCORO_SCRAM_H
#define PGCORO_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_KEY_LEN 32
#define SCRAM_MAX_SALT 64
#define SCRAM_NONCE_LEN 18 /* raw bytes of the server's nonce part, before base64 */
/* The keys pgcoro derives itself (plain auth_file secrets, unknown users) use PostgreSQL's
 * defaults: its scram_iterations and SCRAM_DEFAULT_SALT_LEN. */
#define SCRAM_DEFAULT_ITERATIONS 4096
#define SCRAM_DEFAULT_SALT_LEN 16

struct scram_keys {
	int iterations;
	uint8_t salt[SCRAM_MAX_SALT];
	int salt_len;
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

/* Parses a verifier "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>". */
bool scram_parse_verifier(const char *verifier, struct scram_keys *out) __attribute__((warn_unused_result));

/* K as a verifier string (the form scram_parse_verifier reads) into OUT (LEN bytes); false
 * when it does not fit. */
bool scram_format_verifier(const struct scram_keys *k, char *out, size_t len)
	__attribute__((warn_unused_result));

/* Derives keys from PASSWORD (SASLprep is the identity for ASCII; non-ASCII used as is),
 * SALT and ITERATIONS. */
bool scram_derive_keys(const char *password, const uint8_t *salt, int salt_len, int iterations,
		       struct scram_keys *out) __attribute__((warn_unused_result));

/* The salt pgcoro gives USER when it derives keys itself: HMAC-SHA-256 of USER under a
 * secret drawn once per process, cut to SCRAM_DEFAULT_SALT_LEN bytes (PostgreSQL's
 * scram_mock_salt() hashes the name with a per-cluster nonce alike). The same name gets the
 * same salt for the life of the process, two names unrelated ones, and nobody outside can
 * compute it. False only if no random secret could be drawn. Thread-safe. */
bool scram_user_salt(const char *user, uint8_t salt[SCRAM_DEFAULT_SALT_LEN])
	__attribute__((warn_unused_result));

/* Fills OUT with keys for a user that does not exist (or cannot use SCRAM): USER's
 * scram_user_salt, ITERATIONS (scram_iterations, as a real user's verifier made from a
 * plain password) and random keys, so that the server-first
 * message looks like a real user's (the same salt on every attempt, as a real user's) and
 * the exchange runs to the end, then fails like a wrong password (with st->mock set). */
void scram_mock_keys(const char *user, int iterations, struct scram_keys *out);

/* One server-side exchange. Zero-initialise, then call the steps in order. */
struct scram_server {
	struct scram_keys keys;
	char client_first_bare[512];
	char server_first[512];
	char nonce[256];         /* client nonce + server nonce */
	char gs2_header[64];     /* "n,," or "y,," (as sent, for the c= check) */
	bool mock;               /* fail at the end whatever the proof */
	/* Set by the caller before scram_server_final to keep the client's ClientKey (the
	 * proof XOR HMAC(StoredKey, AuthMessage)) once the proof verified: what SCRAM
	 * pass-through logs in to a server with (srvlogin.h). The caller wipes it. */
	bool keep_client_key;
	bool have_client_key;
	uint8_t client_key[SCRAM_KEY_LEN];
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

/* Derives, as scram_derive_keys, the keys of PASSWORD into OUT and also the ClientKey
 * (HMAC(SaltedPassword, "Client Key")) into CLIENT_KEY: what a client needs to log in. */
bool scram_derive_client_key(const char *password, const uint8_t *salt, int salt_len,
			     int iterations, struct scram_keys *out,
			     uint8_t client_key[SCRAM_KEY_LEN]) __attribute__((warn_unused_result));

/* The channel binding of a client exchange (RFC 5802's gs2 header, libpq's choices). */
enum scram_cbind {
	SCRAM_CB_NONE,       /* "n": no channel binding (no TLS, or channel_binding=disable) */
	SCRAM_CB_NOT_OFFERED, /* "y": the client could bind, the server offered no -PLUS */
	SCRAM_CB_SERVER_END_POINT, /* "p=tls-server-end-point": SCRAM-SHA-256-PLUS, bound to
	                            * the hash of the server's certificate (RFC 5929) */
};
#define SCRAM_MAX_CBIND_DATA 64 /* the longest certificate hash (SHA-512) */

/* The client side of one exchange (pgcoro logging in to a server, srvlogin.c):
 * zero-initialise (no channel binding: "n,,"), scram_client_channel_binding if there is
 * to be one, then call the steps in order.
 * Messages are parsed from (msg, len) against these sizes; anything longer is refused. */
struct scram_client {
	enum scram_cbind cbind;
	uint8_t cbind_data[SCRAM_MAX_CBIND_DATA]; /* SCRAM_CB_SERVER_END_POINT's hash */
	size_t cbind_len;
	char client_first_bare[64];  /* "n=,r=" + our nonce */
	char server_first[512];      /* as the server sent it */
	char nonce[256];             /* the whole nonce: ours + the server's */
	uint8_t salt[SCRAM_MAX_SALT]; /* the server's salt and iteration count, once */
	int salt_len;                 /* scram_client_server_first has read them */
	int iterations;
	uint8_t server_signature[SCRAM_KEY_LEN]; /* the one to expect, once the final is built */
	bool final_built;
};

/* Sets the exchange's channel binding (before scram_client_first): KIND, and for
 * SCRAM_CB_SERVER_END_POINT the certificate hash DATA (LEN bytes, 1 to
 * SCRAM_MAX_CBIND_DATA) that client-final's c= carries after the gs2 header. False (CL
 * unchanged) for a hash missing or too long. */
bool scram_client_channel_binding(struct scram_client *cl, enum scram_cbind kind,
				  const uint8_t *data, size_t len) __attribute__((warn_unused_result));

/* The SASL mechanism CL's channel binding goes with: "SCRAM-SHA-256-PLUS" for
 * SCRAM_CB_SERVER_END_POINT, else "SCRAM-SHA-256". */
const char *scram_client_mechanism(const struct scram_client *cl);

/* Writes the client-first-message "<gs2 header>n=,r=<nonce>" (18 random bytes, base64; the
 * gs2 header "n,,", "y,," or "p=tls-server-end-point,," by the channel binding) into OUT
 * (NUL-terminated). The user name is left empty, as libpq does: PostgreSQL takes the one
 * of the startup packet. False if OUT is too small or no random bytes could be drawn. */
bool scram_client_first(struct scram_client *cl, char *out, size_t outlen)
	__attribute__((warn_unused_result));

/* Reads the server-first-message MSG (LEN bytes, not NUL-terminated): its nonce must
 * extend ours (and be printable), its salt decode and its iteration count be a positive
 * int; then CL->salt, salt_len and iterations hold them. False otherwise, also for the
 * reserved mandatory extension "m=". */
bool scram_client_server_first(struct scram_client *cl, const char *msg, size_t len)
	__attribute__((warn_unused_result));

/* Writes the client-final-message "c=<base64 of the gs2 header and any binding
 * data>,r=<nonce>,p=<proof>" ("c=biws" without channel binding) into OUT, the proof being
 * CLIENT_KEY XOR HMAC(H(CLIENT_KEY), AuthMessage), and remembers the server signature to
 * expect, HMAC(SERVER_KEY, AuthMessage). Needs no password: ClientKey and ServerKey are
 * enough (a client's keys recovered from its proof, or derived from a password). */
bool scram_client_final_keys(struct scram_client *cl, const uint8_t client_key[SCRAM_KEY_LEN],
			     const uint8_t server_key[SCRAM_KEY_LEN], char *out, size_t outlen)
	__attribute__((warn_unused_result));

/* True when the server-final-message MSG is "v=<signature>" (extensions after it are
 * ignored) with the signature scram_client_final_keys expects, compared in constant time.
 * False for anything else, "e=<error>" included. */
bool scram_client_verify(struct scram_client *cl, const char *msg, size_t len)
	__attribute__((warn_unused_result));

/* Client side of one exchange with any gs2 header and client-first-bare, for tests:
 * builds client-final from server-first with PASSWORD. */
bool scram_client_final(const char *password, const char *client_first_bare,
			const char *server_first, const char *gs2_header, char *out, size_t outlen)
	__attribute__((warn_unused_result));

#endif
