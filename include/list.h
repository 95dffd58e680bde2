/* Intrusive circular doubly-linked list with a count, header-only.
 * A struct list is either a list head or a node embedded in its owner. */
#ifndef PGCORO_LIST_H
#define PGCORO_LIST_H

#include <stddef.h>
#include <stdbool.h>

struct list {
	struct list *next, *prev;
};

struct list_head {
	struct list node; /* sentinel */
	int count;
};

#define list_entry(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static inline void list_init(struct list *n) { n->next = n->prev = n; }
static inline void list_head_init(struct list_head *h) { list_init(&h->node); h->count = 0; }
static inline bool list_empty(const struct list_head *h) { return h->count == 0; }
static inline bool list_linked(const struct list *n) { return n->next != n; }

/* Links N into H just before AT (a node of H, or its sentinel: the end). */
static inline void list_insert_before(struct list_head *h, struct list *at, struct list *n)
{
	n->prev = at->prev;
	n->next = at;
	at->prev->next = n;
	at->prev = n;
	h->count++;
}

static inline void list_append(struct list_head *h, struct list *n)
{
	list_insert_before(h, &h->node, n);
}

static inline void list_del(struct list_head *h, struct list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	list_init(n);
	h->count--;
}

static inline struct list *list_first(const struct list_head *h)
{
	return h->count ? h->node.next : NULL;
}

static inline struct list *list_last(const struct list_head *h)
{
	return h->count ? h->node.prev : NULL;
}

#define list_for_each_safe(pos, tmp, h) \
	for (pos = (h)->node.next, tmp = pos->next; pos != &(h)->node; pos = tmp, tmp = pos->next)

#endif
