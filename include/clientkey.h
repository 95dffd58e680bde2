/* SCRAM pass-through's ClientKeys: when a client logs in with SCRAM against a user's
 * stored verifier (not keys pgcoro derived from a plain secret), its proof yields the
 * ClientKey (ClientProof XOR HMAC(StoredKey, AuthMessage)); kept here by user name, it
 * lets pgcoro log in to PostgreSQL as that user with the verifier's ServerKey (srvconnect.h),
 * as PgBouncer does, as long as PostgreSQL holds the same verifier. One bounded store on
 * the loop thread; an entry is valid only for the verifier it was proven against. */
#ifndef PGCORO_CLIENTKEY_H
#define PGCORO_CLIENTKEY_H

#include <stdbool.h>
#include <stdint.h>

#include "scram.h"
#include "types.h"

/* The most users kept: past it, storing one more drops the one stored longest ago. */
#define CLIENTKEY_MAX 10000

/* Keeps CLIENT_KEY for USER, proven by a login against KEYS (the user's verifier):
 * replaces USER's entry if any. Nothing is kept without memory (the next login tries
 * again). */
void clientkey_store(const char *user, const struct scram_keys *keys,
		     const uint8_t client_key[SCRAM_KEY_LEN]);

/* The ClientKey kept for USER into OUT, if it was proven against a verifier equal to KEYS
 * (iterations, salt, StoredKey, ServerKey); an entry proven against another verifier (the
 * user's secret changed) is dropped. False when there is none. */
bool clientkey_find(const char *user, const struct scram_keys *keys,
		    uint8_t out[SCRAM_KEY_LEN]) __attribute__((warn_unused_result));

/* After a reload swapped the auth_file to AF (may be NULL): drops the entries of users
 * whose verifier in AF is no longer the one their key was proven against (or who have
 * none now). */
void clientkey_reconfigure(const struct auth_file *af);

/* Users with a key kept. */
int clientkey_count(void);

/* Drops every entry, wiping the keys (at exit). */
void clientkey_clear(void);

#endif
