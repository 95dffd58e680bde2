/* The TLS context pgcoro serves clients with (client_tls_*): built from the files on the
 * executor at start and on reload, swapped in on the loop thread; connections hold a
 * reference, so a swap never disturbs one in progress. Also what a session asks of a
 * client's TLS: the certificate's CN, the ALPN check of direct TLS. */
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

/* The CommonName of SSL's verified peer certificate into BUF; false when there is no
 * verified certificate or no CN (or it does not fit). */
bool tls_peer_cn(SSL *ssl, char *buf, size_t len) __attribute__((warn_unused_result));

/* True when the handshake on SSL negotiated the ALPN protocol "postgresql". */
bool tls_alpn_ok(SSL *ssl);

/* The last OpenSSL error (or the verify result) as text, for a log line: a static
 * buffer. Clears the error queue. */
const char *tls_error_string(SSL *ssl);

#endif
