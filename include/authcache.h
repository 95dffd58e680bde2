/* The secrets auth_query found, by (source, user name): one bounded store for the whole
 * daemon (loop thread only). SOURCE names where a look-up ran (authquery.c's: the auth
 * database, auth_user and query), so that a user of the same name looked up elsewhere —
 * another cluster — is another entry. A login stores what its look-up found; a server
 * login of that user in a database looking users up in the same source reads it
 * (authquery_secret). */
#ifndef PGCORO_AUTHCACHE_H
#define PGCORO_AUTHCACHE_H

#include <stdbool.h>

#define AUTHCACHE_MAX 10000 /* users kept at most, by default (authcache_set_max) */

/* Keeps at most MAX (>= 1) users from now on: the least recently stored go first. */
void authcache_set_max(int max);

/* USER's secret in SOURCE is SECRET from now on (all copied): replaces what was stored,
 * and when the store is full the least recently stored entry goes. False when memory is
 * short (USER is then not in the store for SOURCE). */
bool authcache_put(const char *source, const char *user, const char *secret)
    __attribute__((warn_unused_result));

/* USER's stored secret in SOURCE, or NULL. Owned by the store: valid until USER is stored
 * again in SOURCE, forgotten or pushed out. */
const char *authcache_get(const char *source, const char *user);

/* USER is not in the store for SOURCE any more (auth_query found no secret). */
void authcache_forget(const char *source, const char *user);

/* Users stored. */
int authcache_count(void);

/* Empties the store (secrets cleansed). */
void authcache_clear(void);

#endif
