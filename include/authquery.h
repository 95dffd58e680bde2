/* auth_user / auth_query / auth_dbname (PgBouncer's): the secret of a user who is not in
 * auth_file, looked up in PostgreSQL by running auth_query as auth_user on a server of
 * auth_user's pool (on auth_dbname, else the client's database), for every login of such
 * a user; what it finds is kept (authcache.h) for that user's server logins in the
 * databases that look users up the same way. */
#ifndef PGCORO_AUTHQUERY_H
#define PGCORO_AUTHQUERY_H

#include <stdbool.h>
#include <stdint.h>

#include "types.h"

struct runtime;
struct authquery_lookup;
struct auth_file;

void authquery_init(struct runtime *rt);

/* The secret a server login of USER to DATABASE (a [databases] name; NULL: none) uses:
 * auth_file's, else the one auth_query last found for USER where DATABASE's logins look
 * users up (its auth database, auth_user and query: another database's look-ups, maybe
 * in another cluster, are not its); NULL when neither has one. Owned by its store: valid
 * until the next reload or the next look-up of USER (copy it to keep it). */
const char *authquery_secret(const char *database, const char *user);

/* Keeps SECRET as what auth_query found for USER where DATABASE's logins look users up
 * (an online restart passes it on): authquery_secret(DATABASE, USER) gives it until a
 * look-up of USER there replaces it. Nothing is kept for a database that looks nobody
 * up. False without memory. */
bool authquery_keep(const char *database, const char *user, const char *secret)
	__attribute__((warn_unused_result));

/* Whether a login of C (CL_LOGIN, startup packet read) needs a look-up: its user is not
 * in auth_file, an auth_user is set (its database's, else the global one) and its
 * database is configured (or is the admin console). */
bool authquery_needed(const client_t *c);

/* Starts C's look-up (authquery_needed was true). When it ends, DONE(C, FOUND) runs outside
 * C's callbacks: FOUND (the caller's to free) is an auth_file of one line, C's user and
 * the secret found (the answer's one row, naming C's user), with its SCRAM keys made (a
 * verifier's; with SCRAM, a plain secret's too, derived on the executor first). A user
 * the query does not find, or finds with a NULL secret (no password, or an expired one:
 * no secret, forgotten for server logins too), gets, when MOCK_UNKNOWN (the method asks
 * a password), a mock secret in FOUND — a SCRAM verifier; with MD5 (the method is md5)
 * an md5 secret of random bytes when the server's password_encryption is md5, as
 * PostgreSQL's own mock (read once per auth_user pool, with a SHOW before the first
 * look-up that needs it) —: its login fails as a wrong password
 * would, not telling the name is unknown (without: "no such user", PgBouncer's). When it
 * fails DONE(C, NULL) runs (the look-up is over: DONE only forgets it), then C is
 * disconnected with PgBouncer's words ("no such user"; "bouncer config error", the
 * server's error or the bad answer — more than one row, another user's, one too long —
 * logged; or the server's failure). Returns the look-up for authquery_cancel, or NULL
 * when C was disconnected at once (an auth_dbname that is not configured, reserved or
 * disabled, or a pool backing off). */
struct authquery_lookup *authquery_begin(client_t *c, bool scram, bool md5, bool mock_unknown,
				 void (*done)(client_t *c, struct auth_file *found));

/* ---- the answer (pure code over the DataRows a server sent; fuzzed by
 * tests/fuzz/fuzz_authquery.c) ---- */

/* What a look-up's answer said so far. Zeroed to begin; authquery_answer_free ends it. */
struct authquery_answer {
	int rows;          /* DataRows read */
	bool bad;          /* a row PgBouncer refuses: why in BAD_WHY (terminated) */
	char bad_why[96];
	char *secret;      /* malloc'd, terminated, no NUL inside: the one row's secret; NULL
	                    * for no row, a NULL secret or a refused first row */
};

/* One DataRow (BODY, BLEN bytes: its column count, then its columns) of auth_query's
 * answer for USER, PgBouncer's checks: the answer must be at most one row of two columns,
 * the user name (not NULL, exactly USER) and the secret (NULL: none; no NUL byte in it,
 * inside the row); a second row, another name, a column past BLEN is A->bad, not guessed
 * at. Reads nothing outside BODY; allocates A->secret only for a row accepted. */
void authquery_answer_row(struct authquery_answer *a, const char *user, const uint8_t *body,
			  uint32_t blen);

/* Frees A's secret (its bytes cleansed first); A may be read again (no secret). */
void authquery_answer_free(struct authquery_answer *a);

/* Whether BODY (BLEN bytes), a DataRow of SHOW password_encryption, says md5. */
bool authquery_pwenc_md5(const uint8_t *body, uint32_t blen) __attribute__((warn_unused_result));

/* C's login ends before its look-up L did (L may be NULL): L is freed, its query's answer
 * ignored. */
void authquery_cancel(struct authquery_lookup *l);

#endif
