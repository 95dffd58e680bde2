/* Owns the console's counter listings (see showstats.h): the pools' counters summed per
 * database (databases by name: one sort of the pools, not a walk of them per database), the console's counters as database "pgbouncer", and PgBouncer's averages of
 * the last full stats_period. */
#include "showstats.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "showrow.h"
#include "stats.h"

#define NFIG 12 /* figures per database: PgBouncer's totals, then the same as averages */

/* PgBouncer's figures, in its column order: the totals of T ... */
static void totals_of(const struct stats *t, uint64_t v[NFIG])
{
	const uint64_t f[NFIG] = {t->assignments,   t->xact_count,    t->query_count,
				  t->bytes_received, t->bytes_sent,   t->xact_time_us,
				  t->query_time_us,  t->wait_time_us, t->client_parse_count,
				  t->server_parse_count, t->bind_count, t->client_login_count};
	memcpy(v, f, sizeof(f));
}

/* ... and the averages of the period D. */
static void averages_of(const struct stats *d, uint64_t v[NFIG])
{
	struct stats_avg a = stats_averages(d, stats_period_seconds());
	const uint64_t f[NFIG] = {a.assignments,   a.xact_count,    a.query_count,
				  a.bytes_received, a.bytes_sent,   a.xact_time_us,
				  a.query_time_us,  a.wait_time_us, a.client_parse_count,
				  a.server_parse_count, a.bind_count, a.client_login_count};
	memcpy(v, f, sizeof(f));
}

static void sums_add(struct showstats_db *s, const pool_t *p)
{
	s->servers += pool_server_count(p);
	s->clients += p->waiting.count + p->clients.count;
	stats_add(&s->total, pool_stats(p));
	s->total.client_login_count += p->early_logins;
	if (p->traffic)
		stats_add(&s->period, &p->traffic->period.growth);
	s->first = p;
}

struct showstats_db showstats_db_of(const char *db)
{
	struct showstats_db s = {0};
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p))
		if (strcmp(p->dbname, db) == 0)
			sums_add(&s, p);
	return s;
}

static int by_dbname(const void *a, const void *b)
{
	return strcmp((*(pool_t *const *)a)->dbname, (*(pool_t *const *)b)->dbname);
}

void showstats_each_db(void (*fn)(const char *db, const struct showstats_db *s, bool arg),
		       bool arg)
{
	int n = 0;
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p))
		n++;
	pool_t **v = malloc((size_t)(n ? n : 1) * sizeof(*v));
	if (!v) {
		for (pool_t *p = pool_next(NULL); p; p = pool_next(p))
			if (pool_first_of_db(p)) {
				struct showstats_db s = showstats_db_of(p->dbname);
				fn(p->dbname, &s, arg);
			}
		return;
	}
	n = 0;
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p))
		v[n++] = p;
	qsort(v, (size_t)n, sizeof(*v), by_dbname);
	for (int i = 0; i < n;) {
		struct showstats_db s = {0};
		int j = i;
		for (; j < n && strcmp(v[j]->dbname, v[i]->dbname) == 0; j++)
			sums_add(&s, v[j]);
		fn(v[i]->dbname, &s, arg);
		i = j;
	}
	free(v);
}

/* FN(db, its sums, AVG) for each database with a pool, by name; then for NULL, the
 * console's counters. */
static void for_each_db(void (*fn)(const char *db, const struct showstats_db *s, bool avg),
			bool avg)
{
	showstats_each_db(fn, avg);
	struct showstats_db s = {0};
	stats_add(&s.total, stats_console());
	stats_add(&s.period, stats_console_period());
	fn(NULL, &s, avg);
}

/* Cells FROM.. of the row: N figures of V. */
static void cells(int from, const uint64_t *v, int n)
{
	for (int k = 0; k < n; k++)
		showrow_uint(from + k, v[k]);
}

static const struct proto_column stats_cols[] = {
    {"database", OID_TEXT, -1},
    {"total_server_assignment_count", OID_NUMERIC, -1},
    {"total_xact_count", OID_NUMERIC, -1},     {"total_query_count", OID_NUMERIC, -1},
    {"total_received", OID_NUMERIC, -1},       {"total_sent", OID_NUMERIC, -1},
    {"total_xact_time", OID_NUMERIC, -1},      {"total_query_time", OID_NUMERIC, -1},
    {"total_wait_time", OID_NUMERIC, -1},      {"total_client_parse_count", OID_NUMERIC, -1},
    {"total_server_parse_count", OID_NUMERIC, -1}, {"total_bind_count", OID_NUMERIC, -1},
    {"total_client_login_count", OID_NUMERIC, -1},
    {"avg_server_assignment_count", OID_NUMERIC, -1},
    {"avg_xact_count", OID_NUMERIC, -1},       {"avg_query_count", OID_NUMERIC, -1},
    {"avg_recv", OID_NUMERIC, -1},             {"avg_sent", OID_NUMERIC, -1},
    {"avg_xact_time", OID_NUMERIC, -1},        {"avg_query_time", OID_NUMERIC, -1},
    {"avg_wait_time", OID_NUMERIC, -1},        {"avg_client_parse_count", OID_NUMERIC, -1},
    {"avg_server_parse_count", OID_NUMERIC, -1}, {"avg_bind_count", OID_NUMERIC, -1},
    {"avg_client_login_count", OID_NUMERIC, -1},
    /* pgcoro's, after PgBouncer's: the pre-1.8 names some exporters still read */
    {"total_requests", OID_NUMERIC, -1},       {"avg_req", OID_NUMERIC, -1}};

static void stats_row(const char *db, const struct showstats_db *s, bool avg)
{
	uint64_t tv[NFIG], av[NFIG];
	totals_of(&s->total, tv);
	averages_of(&s->period, av);
	showrow_str(0, db ? db : SHOW_ADMIN_NAME);
	cells(1, tv, NFIG);
	cells(1 + NFIG, av, NFIG);
	showrow_uint(1 + 2 * NFIG, tv[2]);     /* total_requests: the queries */
	showrow_uint(2 + 2 * NFIG, av[2]);     /* avg_req */
	showrow_end();
}

void showstats_stats(void)
{
	SHOWROW_BEGIN(stats_cols);
	for_each_db(stats_row, false);
}

static const struct proto_column by_db_cols[] = {
    {"database", OID_TEXT, -1},          {"server_assignment_count", OID_NUMERIC, -1},
    {"xact_count", OID_NUMERIC, -1},     {"query_count", OID_NUMERIC, -1},
    {"bytes_received", OID_NUMERIC, -1}, {"bytes_sent", OID_NUMERIC, -1},
    {"xact_time", OID_NUMERIC, -1},      {"query_time", OID_NUMERIC, -1},
    {"wait_time", OID_NUMERIC, -1},      {"client_parse_count", OID_NUMERIC, -1},
    {"server_parse_count", OID_NUMERIC, -1}, {"bind_count", OID_NUMERIC, -1},
    {"client_login_count", OID_NUMERIC, -1}};

/* PgBouncer names STATS_AVERAGES' last four columns avg_*, unlike the others. */
static const struct proto_column averages_cols[] = {
    {"database", OID_TEXT, -1},          {"server_assignment_count", OID_NUMERIC, -1},
    {"xact_count", OID_NUMERIC, -1},     {"query_count", OID_NUMERIC, -1},
    {"bytes_received", OID_NUMERIC, -1}, {"bytes_sent", OID_NUMERIC, -1},
    {"xact_time", OID_NUMERIC, -1},      {"query_time", OID_NUMERIC, -1},
    {"wait_time", OID_NUMERIC, -1},      {"avg_client_parse_count", OID_NUMERIC, -1},
    {"avg_server_parse_count", OID_NUMERIC, -1}, {"avg_bind_count", OID_NUMERIC, -1},
    {"avg_client_login_count", OID_NUMERIC, -1}};

/* A row of STATS_TOTALS, or of STATS_AVERAGES (AVG). */
static void figures_row(const char *db, const struct showstats_db *s, bool avg)
{
	uint64_t v[NFIG];
	if (avg)
		averages_of(&s->period, v);
	else
		totals_of(&s->total, v);
	showrow_str(0, db ? db : SHOW_ADMIN_NAME);
	cells(1, v, NFIG);
	showrow_end();
}

void showstats_totals_by_db(void)
{
	SHOWROW_BEGIN(by_db_cols);
	for_each_db(figures_row, false);
}

void showstats_averages_by_db(void)
{
	SHOWROW_BEGIN(averages_cols);
	for_each_db(figures_row, true);
}

static const struct proto_column kv_cols[] = {{"name", OID_TEXT, -1},
					      {"value", OID_NUMERIC, -1}};

/* PgBouncer's row names (its byte counters are "client"/"server" bytes here). */
static const char *const figure_names[NFIG] = {
    "server_assignment_count", "xact_count",    "query_count",
    "client_bytes",            "server_bytes",  "xact_time",
    "query_time",              "wait_time",     "ps_client_parse_count",
    "ps_server_parse_count",   "ps_bind_count", "client_login_count"};

void showstats_totals(void)
{
	struct stats t = {0}, d = {0};
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		stats_add(&t, pool_stats(p));
		t.client_login_count += p->early_logins;
		if (p->traffic)
			stats_add(&d, &p->traffic->period.growth);
	}
	stats_add(&t, stats_console());
	stats_add(&d, stats_console_period());
	uint64_t v[2][NFIG];
	totals_of(&t, v[0]);
	averages_of(&d, v[1]);
	SHOWROW_BEGIN(kv_cols);
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < NFIG; i++) {
			showrow_fmt(0, "%s_%s", k ? "avg" : "total", figure_names[i]);
			showrow_uint(1, v[k][i]);
			showrow_end();
		}
	}
}
