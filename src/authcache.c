/* Owns the store of secrets auth_query found (authcache.h): a hash by (source, user name)
 * and a list in the order they were stored, so the oldest is pushed out when the store is
 * full. Each entry is one allocation (node, source, user, secret); a secret is cleansed
 * before it is freed. */
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
	char *user;       /* after source, in this allocation */
	char *secret;     /* after user */
	size_t size;      /* of the allocation */
	char source[];
};

static struct hash_table table;
static struct list_head order = {.node = {&order.node, &order.node}, .count = 0};
static int max_users = AUTHCACHE_MAX;

static uint64_t key_hash(const char *source, const char *user)
{
	/* with their NULs: ("ab", "c") and ("a", "bc") differ */
	uint64_t h = hash_bytes(0x9e3779b97f4a7c15ull, source, strlen(source) + 1);
	return hash_bytes(h, user, strlen(user));
}

static struct entry *find(const char *source, const char *user)
{
	uint64_t h = key_hash(source, user);
	for (struct hash_node *n = hash_first(&table, h); n; n = hash_next(n)) {
		struct entry *e = hash_entry(n, struct entry, hnode);
		if (strcmp(e->user, user) == 0 && strcmp(e->source, source) == 0)
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

bool authcache_put(const char *source, const char *user, const char *secret)
{
	authcache_forget(source, user);
	size_t kl = strlen(source) + 1, ul = strlen(user) + 1, sl = strlen(secret) + 1;
	struct entry *e = malloc(sizeof(*e) + kl + ul + sl);
	if (!e)
		return false;
	e->size = sizeof(*e) + kl + ul + sl;
	memcpy(e->source, source, kl);
	e->user = e->source + kl;
	memcpy(e->user, user, ul);
	e->secret = e->user + ul;
	memcpy(e->secret, secret, sl);
	if (!hash_add(&table, &e->hnode, key_hash(source, user))) {
		OPENSSL_cleanse(e, e->size);
		free(e);
		return false;
	}
	list_append(&order, &e->node);
	while (order.count > max_users)
		drop(list_entry(list_first(&order), struct entry, node));
	return true;
}

const char *authcache_get(const char *source, const char *user)
{
	const struct entry *e = find(source, user);
	return e ? e->secret : NULL;
}

void authcache_forget(const char *source, const char *user)
{
	struct entry *e = find(source, user);
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
