/* Server connections made by pgcoro's own login (srvlogin.h) instead of libpq: those whose
 * credential libpq cannot log in with — the server user's md5 secret (md5 pass-through)
 * or SCRAM verifier (SCRAM pass-through, with the ClientKey a client's SCRAM login left in
 * clientkey.h) — when the database entry names no password, and every one that may use
 * TLS while server_tls_ciphers or server_tls13_ciphers asks for ciphers libpq cannot set
 * (then with the entry's password, the auth_file's plain one, or none). The others stay
 * libpq's (server.c), with everything libpq does. Owns the choice of login and
 * credential, the mapping of the pool's libpq parameters to a login, and the host list. */
#ifndef PGCORO_SRVCONNECT_H
#define PGCORO_SRVCONNECT_H

#include <stdbool.h>

#include "server.h"
#include "srvlogin.h"

struct runtime;
struct pool_conn_params;
struct srvconnect;

void srvconnect_init(struct runtime *rt);

/* THE secret pgcoro logs in to PostgreSQL with as server user USER for a pool of the
 * [databases] entry DATABASE when the entry names no password: a plain password, an md5
 * secret ("md5" + hex) or a SCRAM verifier; NULL when there is none (then libpq's own
 * rules apply: passfile, trust...). The password USER last passed PAM or LDAP with
 * (srvconnect_keep_password), else the auth_file's entry, else what DATABASE's
 * auth_query found (authquery_secret), so that every server login (libpq's and pgcoro's
 * own) finds it. Owned by the store it comes from: valid until the next reload. */
const char *srvconnect_secret(const char *database, const char *user);

/* USER logged in with PASSWORD, which an external check (PAM, LDAP) accepted: it is THE
 * secret of USER's server logins from now on (srvconnect_secret gives it before any
 * other), as PgBouncer logs in with a PAM or LDAP user's password: a pool made with
 * another takes it for its next server logins (pool_secret_changed). Kept for at most
 * AUTHCACHE_MAX users (the least recently kept go first). False without memory (USER then
 * has none kept). */
bool srvconnect_keep_password(const char *user, const char *password)
	__attribute__((warn_unused_result));

/* Whether a server made with the libpq parameters CP logs in through pgcoro's own login:
 * CP names no password, and the server user's secret is an md5 secret or a SCRAM
 * verifier; or the config in force sets server_tls_ciphers (other than OpenSSL's list) or
 * server_tls13_ciphers, and CP may use TLS (its sslmode is not disable, a host is reached
 * over TCP). A replication connection's ("replication", its client's settings in
 * "options", application_name) too: they go into the startup packet as libpq's would. */
bool srvconnect_wanted(const struct pool_conn_params *cp);

/* Called once, from the loop (never from srvconnect_start), when the login ended. DONE
 * may srvconnect_free(SC). */
typedef void (*srvconnect_done_fn)(struct srvconnect *sc, void *arg);

/* Starts a login with CP (for which srvconnect_wanted is true; copied: the caller frees
 * it) and the server ciphers in force: each host of its host list in turn until one logs
 * in (a failure on one host, the server's refusal included, tries the next, as libpq
 * does). NULL only without memory;
 * a login that cannot start (a parameter it cannot honour, no usable secret) fails
 * through DONE like any other. */
struct srvconnect *srvconnect_start(const struct pool_conn_params *cp, srvconnect_done_fn done,
				    void *arg) __attribute__((warn_unused_result));

/* True once a login succeeded. */
bool srvconnect_ok(const struct srvconnect *sc);

/* Why the last attempt failed (meaningful once DONE ran and !srvconnect_ok), and where
 * it went (WHERE: the address, or "" for a failure before any connection). */
const struct srvlogin_error *srvconnect_error(const struct srvconnect *sc);

/* Hands over the connection of a successful login into OUT (server_adopt_conn's form):
 * its socket and TLS handle become the caller's; the parameter names and values stay
 * SC's (valid until srvconnect_free). False if !srvconnect_ok or taken already. */
bool srvconnect_take(struct srvconnect *sc, struct server_conn *out)
	__attribute__((warn_unused_result));

/* Ends SC at any time (a login in progress is abandoned; DONE does not run after this);
 * secrets wiped. */
void srvconnect_free(struct srvconnect *sc);

#endif
