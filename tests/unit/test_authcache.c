/* Unit tests of authcache.h: a user's secret is found and replaced; the store keeps at
 * most its bound, pushing out the least recently stored first (a user stored again is
 * the most recent); forget and clear empty it; one user name in two sources is two
 * entries. */
#include <check.h>

#include "unit.h"
#include <stdio.h>

#include "authcache.h"

START_TEST(test_put_get_replace)
{
	authcache_set_max(AUTHCACHE_MAX);
	ck_assert(authcache_put("s", "alice", "md5abc"));
	ck_assert_str_eq(authcache_get("s", "alice"), "md5abc");
	ck_assert_ptr_null(authcache_get("s", "bob"));
	ck_assert(authcache_put("s", "alice", "SCRAM-SHA-256$x"));
	ck_assert_str_eq(authcache_get("s", "alice"), "SCRAM-SHA-256$x");
	ck_assert_int_eq(authcache_count(), 1);
	authcache_forget("s", "alice");
	ck_assert_ptr_null(authcache_get("s", "alice"));
	ck_assert_int_eq(authcache_count(), 0);
	authcache_clear();
}
END_TEST

START_TEST(test_sources_apart)
{
	/* one user name in two sources (two clusters): two entries, each its own */
	authcache_set_max(AUTHCACHE_MAX);
	ck_assert(authcache_put("a", "bob", "md5aaa"));
	ck_assert(authcache_put("b", "bob", "md5bbb"));
	ck_assert(authcache_put("ab", "", "x")); /* ("ab", "") is not ("a", "b...") */
	ck_assert_str_eq(authcache_get("a", "bob"), "md5aaa");
	ck_assert_str_eq(authcache_get("b", "bob"), "md5bbb");
	ck_assert_ptr_null(authcache_get("c", "bob"));
	ck_assert_ptr_null(authcache_get("a", "b"));
	authcache_forget("a", "bob");
	ck_assert_ptr_null(authcache_get("a", "bob"));
	ck_assert_str_eq(authcache_get("b", "bob"), "md5bbb");
	authcache_clear();
}
END_TEST

START_TEST(test_bounded)
{
	enum { MAX = 100, N = 5000 };
	authcache_set_max(MAX);
	char user[32], secret[32];
	for (int i = 0; i < N; i++) {
		snprintf(user, sizeof(user), "user%d", i);
		snprintf(secret, sizeof(secret), "pw%d", i);
		ck_assert(authcache_put("s", user, secret));
		ck_assert_int_le(authcache_count(), MAX);
		if (i == N - MAX) /* stored again: the most recent, kept to the end */
			ck_assert(authcache_put("s", "user0", "again"));
	}
	ck_assert_int_eq(authcache_count(), MAX);
	ck_assert_str_eq(authcache_get("s", "user0"), "again");
	ck_assert_ptr_null(authcache_get("s", "user1"));
	ck_assert_ptr_null(authcache_get("s", "user4900"));
	ck_assert_str_eq(authcache_get("s", "user4901"), "pw4901");
	ck_assert_str_eq(authcache_get("s", "user4999"), "pw4999");
	authcache_set_max(10); /* a smaller bound applies at once */
	ck_assert_int_eq(authcache_count(), 10);
	ck_assert_str_eq(authcache_get("s", "user4999"), "pw4999");
	ck_assert_ptr_null(authcache_get("s", "user0"));
	authcache_clear();
	ck_assert_int_eq(authcache_count(), 0);
	ck_assert_ptr_null(authcache_get("s", "user4999"));
}
END_TEST

static Suite *authcache_suite(void)
{
	Suite *s = suite_create("authcache");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_put_get_replace);
	tcase_add_test(tc, test_bounded);
	tcase_add_test(tc, test_sources_apart);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return unit_run(authcache_suite()); }
