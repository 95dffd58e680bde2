/* Unit tests of stats.c's pure part: summing counters, PgBouncer's averages and the
 * stats line's rates, averages and totals (averages per transaction, per request, per
 * server assignment; an empty period divides by nothing), the newer counters too. */
#include <check.h>

#include "unit.h"
#include <string.h>

#include "stats.h"

START_TEST(test_add)
{
	struct stats a = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
	struct stats b = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120};
	stats_add(&a, &b);
	struct stats want = {11, 22, 33, 44, 55, 66, 77, 88, 99, 110, 121, 132};
	ck_assert_mem_eq(&a, &want, sizeof(a));
}
END_TEST

START_TEST(test_format)
{
	struct stats d = {
	    .xact_count = 300,
	    .query_count = 600,
	    .bytes_received = 12000,
	    .bytes_sent = 45000,
	    .xact_time_us = 300 * 750,
	    .query_time_us = 600 * 250,
	    .wait_time_us = 90,
	    .assignments = 30,
	};
	char line[512];
	stats_format(&d, 60.0, line, sizeof(line));
	ck_assert_str_eq(line, "stats: 5 xacts/s, 10 queries/s, in 200 B/s, out 750 B/s, xact 750 us, "
	                       "query 250 us, wait 3 us (over 60.0 s: 300 xacts, 600 queries, "
	                       "12000 B in, 45000 B out, 30 server assignments)");

	struct stats zero = {0};
	stats_format(&zero, 0.0, line, sizeof(line));
	ck_assert_str_eq(line, "stats: 0 xacts/s, 0 queries/s, in 0 B/s, out 0 B/s, xact 0 us, "
	                       "query 0 us, wait 0 us (over 0.0 s: 0 xacts, 0 queries, 0 B in, "
	                       "0 B out, 0 server assignments)");
}
END_TEST

/* Rates divide by the period's real length, also under a second; times divide by their
 * own events; nothing to divide by gives 0. */
START_TEST(test_averages)
{
	struct stats d = {.xact_count = 10, .query_count = 30, .bytes_received = 1000,
			  .bytes_sent = 4000, .xact_time_us = 500, .query_time_us = 900,
			  .wait_time_us = 70, .assignments = 7};
	struct stats_avg a = stats_averages(&d, 0.5);
	ck_assert_uint_eq(a.xact_count, 20);
	ck_assert_uint_eq(a.query_count, 60);
	ck_assert_uint_eq(a.bytes_received, 2000);
	ck_assert_uint_eq(a.bytes_sent, 8000);
	ck_assert_uint_eq(a.xact_time_us, 50);
	ck_assert_uint_eq(a.query_time_us, 30);
	ck_assert_uint_eq(a.wait_time_us, 10);
	struct stats none = {.xact_time_us = 5, .wait_time_us = 5};
	a = stats_averages(&none, 0);
	ck_assert_uint_eq(a.xact_count, 0);
	ck_assert_uint_eq(a.xact_time_us, 0);
	ck_assert_uint_eq(a.wait_time_us, 0);
}
END_TEST

/* PgBouncer 1.24-1.26's counters (assignments, prepared statements, logins) are summed,
 * subtracted and averaged as rates like the others. */
START_TEST(test_newer_counters)
{
	struct stats a = {.assignments = 4, .client_parse_count = 6, .server_parse_count = 2,
			  .bind_count = 10, .client_login_count = 8};
	struct stats sum = {0}, d;
	stats_add(&sum, &a);
	stats_add(&sum, &a);
	ck_assert_uint_eq(sum.client_parse_count, 12);
	ck_assert_uint_eq(sum.server_parse_count, 4);
	ck_assert_uint_eq(sum.bind_count, 20);
	ck_assert_uint_eq(sum.client_login_count, 16);
	stats_sub(&d, &sum, &a);
	ck_assert_mem_eq(&d, &a, sizeof(d));
	struct stats_avg avg = stats_averages(&a, 2.0);
	ck_assert_uint_eq(avg.assignments, 2);
	ck_assert_uint_eq(avg.client_parse_count, 3);
	ck_assert_uint_eq(avg.server_parse_count, 1);
	ck_assert_uint_eq(avg.bind_count, 5);
	ck_assert_uint_eq(avg.client_login_count, 4);
}
END_TEST

static Suite *stats_suite(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_add);
	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_averages);
	tcase_add_test(tc, test_newer_counters);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return unit_run(stats_suite()); }
