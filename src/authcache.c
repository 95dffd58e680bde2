/* Owns the store of secrets auth_query found (authcache.h): a hash by user name and a list
 * in the order they were stored, so the oldest is pushed out when the store is full. Each
 * entry is one allocation (node, user, secret); a secret is cleansed before it is freed. */
#include "authcache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "hash.h"
#include "list.h"

struct entry {
	struct hash_node hnode;
	struct list node; /* in order, the oldest first */
	char *secret;     /* after user, in this allocation */
	size_t size;      /* of the allocation */
	char user[];
};

static struct hash_table table;
static struct list_head order = {.node = {&order.node, &order.node}, .count = 0};
static int max_users = AUTHCACHE_MAX;

static uint64_t user_hash(const char *user)
{
	return hash_bytes(0x9e3779b97f4a7c15ull, user, strlen(user));
}

static struct entry *find(const char *user)
{
	uint64_t h = user_hash(user);
	for (struct hash_node *n = hash_first(&table, h); n; n = hash_next(n)) {
		struct entry *e = hash_entry(n, struct entry, hnode);
		if (strcmp(e->user, user) == 0)
			return e;
	}
	return NULL;
}

static void drop(struct entry *e)
{
	hash_del(&table, &e->hnode);
	list_del(&order, &e->node);
	OPENSSL_cleanse(e, e->size);
	free(e);
}

void authcache_set_max(int max)
{
	max_users = max < 1 ? 1 : max;
	while (order.count > max_users)
		drop(list_entry(list_first(&order), struct entry, node));
}

bool authcache_put(const char *user, const char *secret)
{
	authcache_forget(user);
	size_t ul = strlen(user) + 1, sl = strlen(secret) + 1;
	struct entry *e = malloc(sizeof(*e) + ul + sl);
	if (!e)
		return false;
	e->size = sizeof(*e) + ul + sl;
	memcpy(e->user, user, ul);
	e->secret = e->user + ul;
	memcpy(e->secret, secret, sl);
	if (!hash_add(&table, &e->hnode, user_hash(user))) {
		OPENSSL_cleanse(e, e->size);
		free(e);
		return false;
	}
	list_append(&order, &e->node);
	while (order.count > max_users)
		drop(list_entry(list_first(&order), struct entry, node));
	return true;
}

const char *authcache_get(const char *user)
{
	const struct entry *e = find(user);
	return e ? e->secret : NULL;
}

void authcache_forget(const char *user)
{
	struct entry *e = find(user);
	if (e)
		drop(e);
}

int authcache_count(void) { return order.count; }

void authcache_clear(void)
{
	while (!list_empty(&order))
		drop(list_entry(list_first(&order), struct entry, node));
	hash_free(&table);
}
