/* Server login without libpq: pgcoro makes ONE server connection itself, for the
 * credentials libpq 15 cannot log in with — an md5 secret ("md5" + hex) or SCRAM keys
 * (ClientKey + ServerKey, PgBouncer's pass-through of the client's secrets) — and a plain
 * password or none as well, with TLS ciphers libpq cannot set. A non-blocking state machine on the loop: name resolution, TLS
 * files and PBKDF2 run on the executor; it ends with a connected socket (and an SSL
 * handle with TLS) positioned right after the server's first ReadyForQuery, plus what
 * the login learned: BackendKeyData, every ParameterStatus, the transaction status.
 * libpq still makes every other server connection. */
#ifndef PGCORO_SRVLOGIN_H
#define PGCORO_SRVLOGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "scram.h"
#include "types.h"

struct event_base;
struct srvlogin;

#define SRVLOGIN_DEFAULT_PORT 5432
#define SRVLOGIN_DEFAULT_SOCKET_DIR "/var/run/postgresql" /* Debian's libpq default */
/* The most PBKDF2 iterations a password's SCRAM login runs for a server (libpq has no
 * bound; PostgreSQL's scram_iterations is 4096 unless raised): 1,000,000 take about
 * 0.8 s of an executor thread here, so a malicious server (or a man in the middle without
 * TLS) asking for 2^31 - 1 cannot hold one for half an hour. */
#define SRVLOGIN_SCRAM_MAX_ITERATIONS 1000000

/* libpq's sslmode values, with libpq's meaning (TCP only: a unix socket never uses TLS):
 * allow tries plain first and TLS after a server's refusal; prefer tries TLS first, plain
 * after an 'N', a failed handshake or a refusal over TLS; require verifies nothing unless
 * sslrootcert names a file that exists (then as verify-ca); verify-ca checks the chain
 * against sslrootcert; verify-full also the host name (DNS or IP SANs, else the CN).
 * Unlike libpq, nothing is read from ~/.postgresql: files are named or absent. */
enum srvlogin_sslmode {
	SRVLOGIN_SSL_DISABLE,
	SRVLOGIN_SSL_ALLOW,
	SRVLOGIN_SSL_PREFER,
	SRVLOGIN_SSL_REQUIRE,
	SRVLOGIN_SSL_VERIFY_CA,
	SRVLOGIN_SSL_VERIFY_FULL,
};

/* libpq's channel_binding (SCRAM over TLS). PREFER, the zero value, is libpq's default:
 * SCRAM-SHA-256-PLUS bound to the server's certificate (tls-server-end-point) when the
 * connection uses TLS and the server offers it, else SCRAM-SHA-256 with gs2 header "y"
 * over TLS and "n" without. DISABLE: always "n". REQUIRE: only SCRAM-SHA-256-PLUS — any
 * other authentication request, or an AuthenticationOk before a bound exchange, fails
 * the login (28P01, libpq's words). */
enum srvlogin_cbind {
	SRVLOGIN_CB_PREFER,
	SRVLOGIN_CB_DISABLE,
	SRVLOGIN_CB_REQUIRE,
};

/* The one credential a login uses. */
enum srvlogin_cred {
	SRVLOGIN_PASSWORD,   /* secret: a plain password (cleartext, md5 and SCRAM servers) */
	SRVLOGIN_MD5_SECRET, /* secret: "md5" + hex(md5(password || user)) (md5 servers only) */
	SRVLOGIN_SCRAM_KEYS, /* keys + client_key (SCRAM servers only, whose verifier has the
	                      * same salt and iteration count) */
	SRVLOGIN_SCRAM_NO_KEY, /* a SCRAM verifier whose ClientKey no client has provided yet:
	                        * only a server that asks for no password takes it (every
	                        * request fails with PgBouncer's "wrong password type") */
	SRVLOGIN_NO_PASSWORD,  /* none: only a server that asks for no password takes it
	                        * (every request fails with libpq's "no password supplied") */
};

struct srvlogin_params {
	const char *host;   /* a host name, an IP address, or a unix socket directory (starts
	                     * with '/'; '@': an abstract unix socket, as libpq); NULL or "":
	                     * SRVLOGIN_DEFAULT_SOCKET_DIR. With HOSTADDR, only the name TLS
	                     * sends (SNI) and verify-full checks, none when NULL or "" */
	const char *hostaddr; /* libpq's hostaddr: an IP address to connect to, no look-up;
	                       * NULL or "": HOST is where */
	int port;           /* 0: SRVLOGIN_DEFAULT_PORT */
	const char *dbname; /* NULL: the user's name */
	const char *user;
	/* Other startup parameters (application_name, options, client_encoding, ...), not
	 * user or database. */
	int nparams;
	const char *const *names;
	const char *const *values;
	enum srvlogin_sslmode sslmode;
	const char *sslrootcert, *sslcert, *sslkey; /* file names, NULL or "": none; the key must
	                                             * not be group/world readable (libpq's rule:
	                                             * 0600 or less, 0640 if root owns it) */
	/* Certificate revocation lists (libpq's sslcrl, a PEM file, and sslcrldir, a directory
	 * of hashed names), NULL or "": none. When the chain is verified and either is given,
	 * every certificate of the chain is checked against them (as libpq:
	 * X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL); a file that cannot be read
	 * fails the login (libpq ignores it silently: pgcoro will not be weaker). */
	const char *sslcrl, *sslcrldir;
	enum srvlogin_cbind channel_binding;
	/* TLS versions (OpenSSL's TLS1_2_VERSION ...), libpq's ssl_min/max_protocol_version:
	 * 0 = TLS 1.2 at least (libpq's default), no upper bound */
	int tls_min, tls_max;
	/* Ciphers (PgBouncer's server_tls_ciphers and server_tls13_ciphers, tls.h: an OpenSSL
	 * cipher list for TLS 1.2 and lower, TLS 1.3 suites), which libpq has no keyword for;
	 * NULL or "": OpenSSL's. One OpenSSL refuses fails the login. */
	const char *ciphers, *ciphersuites;
	double connect_timeout; /* seconds for each address tried; <= 0: none */
	enum srvlogin_cred cred;
	const char *secret;                /* SRVLOGIN_PASSWORD, SRVLOGIN_MD5_SECRET */
	struct scram_keys keys;            /* SRVLOGIN_SCRAM_KEYS: salt, iterations, server_key */
	uint8_t client_key[SCRAM_KEY_LEN]; /* SRVLOGIN_SCRAM_KEYS */
	/* A password's SCRAM login refuses a server asking for more PBKDF2 iterations than
	 * this (<= 0: SRVLOGIN_SCRAM_MAX_ITERATIONS); 28P01, before any PBKDF2 runs. */
	int scram_max_iterations;
};

/* Why a login failed: SQLSTATE 08006 (no connection, TLS, a broken server message, the
 * timeout), 28P01 (authentication pgcoro refused or could not do), or the server's own
 * with its message (FROM_SERVER). */
struct srvlogin_error {
	char sqlstate[6];
	char where[160];   /* the address tried ("127.0.0.1:5432", "/run/pg/.s.PGSQL.5432") */
	char reason[400];  /* what went wrong: fit for a client's ErrorResponse */
	bool from_server;  /* REASON and SQLSTATE are the server's ErrorResponse */
};

/* Called once, on the loop thread, from the loop (never from srvlogin_start), when the
 * login ended: srvlogin_ok says how. DONE may call srvlogin_free(SL). */
typedef void (*srvlogin_done_fn)(struct srvlogin *sl, void *arg);

/* Starts a login with P (copied: the caller may free its strings at once) on BASE, using
 * EX for what would block. NULL with the reason in ERR when P is unusable (no user, no
 * secret, a startup packet too long) or memory is short; otherwise DONE will run. */
struct srvlogin *srvlogin_start(struct event_base *base, executor_t *ex,
				const struct srvlogin_params *p, srvlogin_done_fn done, void *arg,
				char *err, size_t errlen) __attribute__((warn_unused_result));

/* True once the login succeeded (the server's first ReadyForQuery was read). */
bool srvlogin_ok(const struct srvlogin *sl);

/* Why it failed (meaningful once DONE ran and !srvlogin_ok). Owned by SL. */
const struct srvlogin_error *srvlogin_error(const struct srvlogin *sl);

/* What a successful login learned. */
uint32_t srvlogin_backend_pid(const struct srvlogin *sl);
uint32_t srvlogin_backend_key(const struct srvlogin *sl);
bool srvlogin_have_backend_key(const struct srvlogin *sl); /* the server sent BackendKeyData */
char srvlogin_tx_status(const struct srvlogin *sl);        /* 'I', 'T' or 'E' */
bool srvlogin_tls(const struct srvlogin *sl);              /* the connection uses TLS */
/* The SASL mechanism the login authenticated with ("SCRAM-SHA-256" or
 * "SCRAM-SHA-256-PLUS"), NULL when the server asked for none. */
const char *srvlogin_mechanism(const struct srvlogin *sl);

/* The ParameterStatus messages, in the order received (0 <= I < srvlogin_nparams):
 * pointers owned by SL, valid until srvlogin_free. */
int srvlogin_nparams(const struct srvlogin *sl);
void srvlogin_param(const struct srvlogin *sl, int i, const char **name, const char **value);
/* The last value reported for NAME, or NULL. */
const char *srvlogin_param_value(const struct srvlogin *sl, const char *name);

/* Hands over the connection of a successful login: *FD, a non-blocking socket, and *SSL,
 * the TLS handle over it or NULL. Both are the caller's from now on (SSL_free, then
 * close); no byte after the ReadyForQuery was read from them (with TLS, some may wait in
 * SSL's buffer: SSL_pending). False (nothing handed over) unless srvlogin_ok and not taken
 * already. */
bool srvlogin_take(struct srvlogin *sl, int *fd, SSL **ssl) __attribute__((warn_unused_result));

/* Ends SL at any time: a login in progress is abandoned (its executor job, if one runs,
 * is left to free itself), the socket closed unless taken, secrets wiped. DONE does not
 * run after this. */
void srvlogin_free(struct srvlogin *sl);

#endif
