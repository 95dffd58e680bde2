/* The secrets auth_query found, by user name: one bounded store for the whole daemon
 * (loop thread only). A login stores what its look-up found; a server login of that user
 * reads it (authquery_secret). */
#ifndef PGCORO_AUTHCACHE_H
#define PGCORO_AUTHCACHE_H

#include <stdbool.h>

#define AUTHCACHE_MAX 10000 /* users kept at most, by default (authcache_set_max) */

/* Keeps at most MAX (>= 1) users from now on: the least recently stored go first. */
void authcache_set_max(int max);

/* USER's secret is SECRET from now on (both copied): replaces what was stored, and when
 * the store is full the least recently stored user goes. False when memory is short
 * (USER is then not in the store). */
bool authcache_put(const char *user, const char *secret) __attribute__((warn_unused_result));

/* USER's stored secret, or NULL. Owned by the store: valid until USER is stored again,
 * forgotten or pushed out. */
const char *authcache_get(const char *user);

/* USER is not in the store any more (auth_query found no such user). */
void authcache_forget(const char *user);

/* Users stored. */
int authcache_count(void);

/* Empties the store (secrets cleansed). */
void authcache_clear(void);

#endif
