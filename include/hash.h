/* Intrusive chained hash table, header-only: a struct hash_node embedded in its owner,
 * buckets a power of two that double as it fills (one node per bucket on average) and
 * shrink when it empties, so what a table costs follows what it holds. The caller hashes
 * its key (hash_bytes, seeded so that a peer cannot aim names at one bucket) and compares
 * keys along the chain. */
#ifndef PGCORO_HASH_H
#define PGCORO_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

struct hash_node {
	struct hash_node *next; /* chain */
	uint64_t hash;
};

struct hash_table {
	struct hash_node **buckets;
	size_t nbuckets; /* 0 or a power of two */
	size_t count;
};

#define HASH_MIN_BUCKETS 16
#define hash_entry(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* FNV-1a of the N bytes at P, continuing from H (a seed, or an earlier hash_bytes). */
static inline uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h ^ (h >> 29); /* the bucket is taken from the low bits */
}

/* Moves T's nodes into NB buckets; false: no memory, T unchanged. */
static inline __attribute__((warn_unused_result)) bool hash_resize(struct hash_table *t, size_t nb)
{
	struct hash_node **b = calloc(nb, sizeof(*b));
	if (!b)
		return false;
	for (size_t i = 0; i < t->nbuckets; i++)
		for (struct hash_node *n = t->buckets[i], *next; n; n = next) {
			next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = nb;
	return true;
}

/* Adds N (not in T) with hash H. False: no memory (only when T has no bucket yet; a
 * table that cannot grow takes it on a longer chain), N not added. */
static inline __attribute__((warn_unused_result)) bool hash_add(struct hash_table *t,
								 struct hash_node *n, uint64_t h)
{
	if (t->count >= t->nbuckets &&
	    !hash_resize(t, t->nbuckets ? t->nbuckets * 2 : HASH_MIN_BUCKETS) && !t->nbuckets)
		return false;
	n->hash = h;
	n->next = t->buckets[h & (t->nbuckets - 1)];
	t->buckets[h & (t->nbuckets - 1)] = n;
	t->count++;
	return true;
}

/* The first node of T with hash H, or NULL; hash_next gives the others. The caller
 * compares its keys: different keys may share a hash. */
static inline struct hash_node *hash_first(const struct hash_table *t, uint64_t h)
{
	struct hash_node *n = t->nbuckets ? t->buckets[h & (t->nbuckets - 1)] : NULL;
	while (n && n->hash != h)
		n = n->next;
	return n;
}

static inline struct hash_node *hash_next(const struct hash_node *prev)
{
	struct hash_node *n = prev->next;
	while (n && n->hash != prev->hash)
		n = n->next;
	return n;
}

/* Takes N (in T) out of T; the buckets shrink when at most one in eight is used (the
 * nodes are not freed, and none is moved in memory). */
static inline void hash_del(struct hash_table *t, struct hash_node *n)
{
	struct hash_node **pp = &t->buckets[n->hash & (t->nbuckets - 1)];
	while (*pp != n)
		pp = &(*pp)->next;
	*pp = n->next;
	t->count--;
	size_t nb = t->nbuckets / 4 < HASH_MIN_BUCKETS ? HASH_MIN_BUCKETS : t->nbuckets / 4;
	if (t->nbuckets > HASH_MIN_BUCKETS && t->count <= t->nbuckets / 8 && !hash_resize(t, nb))
		return; /* no memory: it stays larger */
}

/* Iterates N over T's nodes, NEXT saved first: the body may free N (not hash_del it) but
 * must not add to T or take from it. */
#define hash_for_each(t, i, n, next)                                                       \
	for (size_t i = 0; i < (t)->nbuckets; i++)                                         \
		for (struct hash_node *n = (t)->buckets[i], *next = n ? n->next : NULL; n; \
		     n = next, next = n ? n->next : NULL)

/* Frees T's buckets (not its nodes): T is empty and may be used again. */
static inline void hash_free(struct hash_table *t)
{
	free(t->buckets);
	t->buckets = NULL;
	t->nbuckets = t->count = 0;
}

#endif
