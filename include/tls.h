/* The TLS context pgcoro serves clients with (client_tls_*): built from the files on the
 * executor at start and on reload, swapped in on the loop thread; connections hold a
 * reference, so a swap never disturbs one in progress. Also what a session asks of a
 * client's TLS: the certificate's CN, the ALPN check of direct TLS; PgBouncer's cipher
 * lists (for servers too); and the digest of the server_tls_* files by which a reload sees
 * them changed. */
#ifndef PGCORO_TLS_H
#define PGCORO_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct config;

/* client_tls_sslmode values, PgBouncer's meaning on the client side. */
enum tls_mode {
	TLS_DISABLE = 0, /* SSLRequest answered 'N'; direct TLS refused */
	TLS_ALLOW,       /* TLS when the client asks for it */
	TLS_PREFER,      /* the same as allow (the client decides) */
	TLS_REQUIRE,     /* TCP clients must use TLS */
	TLS_VERIFY_CA,   /* ... and present a certificate signed by client_tls_ca_file */
	TLS_VERIFY_FULL, /* the same as verify-ca (no host name to check on a client) */
};

/* A server-side SSL_CTX from CFG's client_tls_* settings, or NULL with *CTX NULL when
 * client_tls_sslmode is disable. False with "reason" in ERR when a file does not load or a
 * setting is invalid. Safe on any thread. */
bool tls_ctx_build(const struct config *cfg, SSL_CTX **ctx, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* PgBouncer's TLS protocol list SPEC (KEY's value: tlsv1.0 .. tlsv1.3, all, secure,
 * legacy; comma or blank separated) as the range from the lowest to the highest named:
 * OpenSSL versions into *MIN and *MAX (either may be NULL). False with "KEY: reason" in
 * ERR when a name is unknown or none is given. */
bool tls_protocols_parse(const char *key, const char *spec, int *min, int *max, char *err,
			 size_t errlen) __attribute__((warn_unused_result));

/* A digest of the contents of CFG's server_tls_ca_file, server_tls_cert_file and
 * server_tls_key_file (with their names; a file that cannot be read counts as such) into
 * OUT: equal digests, the same files. Reads the files: for the executor or the start. */
void tls_server_files_digest(const struct config *cfg, unsigned char out[32]);

/* True when PgBouncer's cipher list LIST names OpenSSL's own list: "default", "secure",
 * "fast" or "normal" (any case). */
bool tls_default_cipher_list(const char *list);

/* PgBouncer's cipher list LIST (client_tls_ciphers, server_tls_ciphers: TLS 1.2 and
 * lower) set on CTX: an OpenSSL cipher string; "all" = every cipher; "default", "secure",
 * "fast" or "normal" leave OpenSSL's own list (PgBouncer's meaning: its names for it).
 * False with OpenSSL's reason in ERR when OpenSSL takes none of it. */
bool tls_set_cipher_list(SSL_CTX *ctx, const char *list, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* TLS 1.3 cipher suites SUITES (client_tls13_ciphers, server_tls13_ciphers:
 * colon-separated, e.g. TLS_AES_256_GCM_SHA384) set on CTX; "" leaves OpenSSL's. False
 * with PgBouncer's "failed to set the TLSv1.3 cipher suites: reason" in ERR. */
bool tls_set_ciphersuites(SSL_CTX *ctx, const char *suites, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Whether tls_set_cipher_list / tls_set_ciphersuites would take the value (tried on a
 * context of their own, so that a config is refused when it is read); the reason in WHY
 * when not. Safe on any thread. */
bool tls_check_cipher_list(const char *list, char *why, size_t whylen)
	__attribute__((warn_unused_result));
bool tls_check_ciphersuites(const char *suites, char *why, size_t whylen)
	__attribute__((warn_unused_result));

/* libpq's name (ssl_min_protocol_version) of OpenSSL version VERSION: "TLSv1" .. "TLSv1.3". */
const char *tls_version_libpq(int version);

/* The OpenSSL version libpq's NAME ("TLSv1" .. "TLSv1.3", any case) means, or 0. */
int tls_version_of_libpq(const char *name);

/* The CommonName of SSL's verified peer certificate into BUF; false when there is no
 * verified certificate or no CN (or it does not fit). */
bool tls_peer_cn(SSL *ssl, char *buf, size_t len) __attribute__((warn_unused_result));

/* SSL's protocol version and cipher as "TLSv1.3/TLS_AES_256_GCM_SHA384" (PgBouncer's
 * tls= of its login line) into BUF; "no" when SSL is NULL. Returns BUF. */
const char *tls_conn_info(SSL *ssl, char *buf, size_t len);

/* True when the handshake on SSL negotiated the ALPN protocol "postgresql". */
bool tls_alpn_ok(SSL *ssl);

/* The last OpenSSL error (or the verify result) as text, for a log line: a static
 * buffer. Clears the error queue. */
const char *tls_error_string(SSL *ssl);

#endif
