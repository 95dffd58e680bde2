/* Owns the ClientKey store of SCRAM pass-through (clientkey.h): a hash table by user
 * name and a list in storing order (the oldest is dropped past CLIENTKEY_MAX). Each entry
 * holds the verifier its key was proven against, so a changed secret (a reload, or
 * auth_query's fresher one) never pairs with an old key. Keys are wiped when dropped. */
#include "clientkey.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "hash.h"
#include "list.h"
#include "log.h"
#include "rand.h"

struct clientkey {
	struct hash_node hnode;
	struct list node; /* in order, oldest first */
	struct scram_keys keys;
	uint8_t client_key[SCRAM_KEY_LEN];
	char user[];
};

static struct hash_table table;
static struct list_head order = {.node = {&order.node, &order.node}};
static uint64_t seed;
static bool seeded;

static uint64_t user_hash(const char *user)
{
	if (!seeded) {
		if (!rand_bytes(&seed, sizeof(seed)))
			seed = 0xcbf29ce484222325ull;
		seeded = true;
	}
	return hash_bytes(seed, user, strlen(user));
}

static struct clientkey *lookup(const char *user, uint64_t h)
{
	for (struct hash_node *n = hash_first(&table, h); n; n = hash_next(n)) {
		struct clientkey *e = hash_entry(n, struct clientkey, hnode);
		if (strcmp(e->user, user) == 0)
			return e;
	}
	return NULL;
}

static void drop(struct clientkey *e)
{
	hash_del(&table, &e->hnode);
	list_del(&order, &e->node);
	OPENSSL_cleanse(e, sizeof(*e));
	free(e);
}

/* True when A and B are the same verifier. */
static bool same_keys(const struct scram_keys *a, const struct scram_keys *b)
{
	return a->iterations == b->iterations && a->salt_len == b->salt_len &&
	       CRYPTO_memcmp(a->salt, b->salt, (size_t)a->salt_len) == 0 &&
	       CRYPTO_memcmp(a->stored_key, b->stored_key, SCRAM_KEY_LEN) == 0 &&
	       CRYPTO_memcmp(a->server_key, b->server_key, SCRAM_KEY_LEN) == 0;
}

void clientkey_store(const char *user, const struct scram_keys *keys,
		     const uint8_t client_key[SCRAM_KEY_LEN])
{
	uint64_t h = user_hash(user);
	struct clientkey *e = lookup(user, h);
	if (e) {
		list_del(&order, &e->node); /* stored again: the newest */
	} else {
		if (order.count >= CLIENTKEY_MAX)
			drop(list_entry(list_first(&order), struct clientkey, node));
		size_t len = strlen(user) + 1;
		e = calloc(1, sizeof(*e) + len);
		if (!e)
			return;
		memcpy(e->user, user, len);
		list_init(&e->node);
		if (!hash_add(&table, &e->hnode, h)) {
			free(e);
			return;
		}
	}
	e->keys = *keys;
	memcpy(e->client_key, client_key, SCRAM_KEY_LEN);
	list_append(&order, &e->node);
}

bool clientkey_find(const char *user, const struct scram_keys *keys, uint8_t out[SCRAM_KEY_LEN])
{
	struct clientkey *e = lookup(user, user_hash(user));
	if (!e)
		return false;
	if (!same_keys(&e->keys, keys)) {
		log_info("user %s: the SCRAM key kept from a client's login was proven against "
			 "another secret: dropped", user);
		drop(e);
		return false;
	}
	memcpy(out, e->client_key, SCRAM_KEY_LEN);
	return true;
}

void clientkey_reconfigure(const struct auth_file *af)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &order)
	{
		struct clientkey *e = list_entry(pos, struct clientkey, node);
		const char *secret = af ? auth_lookup(af, e->user) : NULL;
		const struct scram_keys *k =
			secret && auth_secret_kind(secret) == SECRET_SCRAM ? auth_scram_keys(af, e->user)
									   : NULL;
		if (!k || !same_keys(k, &e->keys))
			drop(e);
	}
}

int clientkey_count(void)
{
	return (int)order.count;
}

void clientkey_clear(void)
{
	while (!list_empty(&order))
		drop(list_entry(list_first(&order), struct clientkey, node));
	hash_free(&table);
}
