/* Unit tests of hash.h: nodes added are found by hash, several per hash (the caller tells
 * keys apart), taken out singly; the buckets grow with the count and shrink back when it
 * falls; hash_for_each visits every node once and lets the body free it. */
#include <check.h>

#include "unit.h"
#include <stdint.h>
#include <stdlib.h>

#include "hash.h"

struct item {
	struct hash_node node;
	int key;
};

static uint64_t key_hash(int key) { return hash_bytes(42, &key, sizeof(key)); }

static struct item *find(struct hash_table *t, int key)
{
	for (struct hash_node *n = hash_first(t, key_hash(key)); n; n = hash_next(n))
		if (hash_entry(n, struct item, node)->key == key)
			return hash_entry(n, struct item, node);
	return NULL;
}

START_TEST(test_add_find_del)
{
	enum { N = 5000 };
	struct hash_table t = {0};
	static struct item items[N];
	for (int i = 0; i < N; i++) {
		items[i].key = i;
		ck_assert(hash_add(&t, &items[i].node, key_hash(i)));
	}
	ck_assert_uint_eq(t.count, N);
	ck_assert_uint_ge(t.nbuckets, N);
	ck_assert_uint_le(t.nbuckets, 2 * N);
	for (int i = 0; i < N; i++)
		ck_assert_ptr_eq(find(&t, i), &items[i]);
	ck_assert_ptr_null(find(&t, N));
	for (int i = 0; i < N; i += 2)
		hash_del(&t, &items[i].node);
	for (int i = 0; i < N; i++)
		ck_assert_ptr_eq(find(&t, i), i % 2 ? &items[i] : NULL);
	for (int i = 1; i < N; i += 2)
		hash_del(&t, &items[i].node);
	ck_assert_uint_eq(t.count, 0);
	ck_assert_uint_eq(t.nbuckets, HASH_MIN_BUCKETS); /* shrunk back */
	ck_assert_ptr_null(find(&t, 1));
	hash_free(&t);
	ck_assert_ptr_null(find(&t, 1));
}
END_TEST

START_TEST(test_same_hash)
{
	struct hash_table t = {0};
	struct item a = {.key = 1}, b = {.key = 2};
	ck_assert(hash_add(&t, &a.node, 7));
	ck_assert(hash_add(&t, &b.node, 7));
	int seen = 0;
	for (struct hash_node *n = hash_first(&t, 7); n; n = hash_next(n))
		seen |= hash_entry(n, struct item, node)->key;
	ck_assert_int_eq(seen, 3);
	hash_del(&t, &a.node);
	ck_assert_ptr_eq(hash_first(&t, 7), &b.node);
	ck_assert_ptr_null(hash_next(&b.node));
	hash_free(&t);
}
END_TEST

START_TEST(test_for_each_frees)
{
	struct hash_table t = {0};
	int sum = 0;
	for (int i = 1; i <= 100; i++) {
		struct item *it = malloc(sizeof(*it));
		ck_assert_ptr_nonnull(it);
		it->key = i;
		ck_assert(hash_add(&t, &it->node, key_hash(i)));
	}
	hash_for_each(&t, i, n, next) {
		sum += hash_entry(n, struct item, node)->key;
		free(hash_entry(n, struct item, node));
	}
	ck_assert_int_eq(sum, 5050);
	hash_free(&t);
}
END_TEST

START_TEST(test_bytes_seeded)
{
	ck_assert(hash_bytes(1, "chan", 4) != hash_bytes(2, "chan", 4));
	ck_assert(hash_bytes(1, "chan", 4) == hash_bytes(1, "chan", 4));
	ck_assert(hash_bytes(1, "chan", 4) != hash_bytes(1, "chao", 4));
}
END_TEST

static Suite *hash_suite(void)
{
	Suite *s = suite_create("hash");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_add_find_del);
	tcase_add_test(tc, test_same_hash);
	tcase_add_test(tc, test_for_each_frees);
	tcase_add_test(tc, test_bytes_seeded);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return unit_run(hash_suite()); }
