/* The console's counters: SHOW STATS, STATS_TOTALS, STATS_AVERAGES (one row per database,
 * the console's own as "pgbouncer") and TOTALS (one row per figure), with PgBouncer
 * 1.26's columns (see show.h). */
#ifndef PGCORO_SHOWSTATS_H
#define PGCORO_SHOWSTATS_H

#include <stdbool.h>

#include "stats.h"
#include "types.h"

/* What the pools of one database add up to. */
struct showstats_db {
	int servers;              /* their server connections */
	int clients;              /* their clients, waiting or not */
	struct stats total;       /* their counters */
	struct stats period;      /* their growth over the last stats_period */
	const pool_t *first;      /* one of them (NULL: none) */
};

/* The sums of the pools of database DB. */
struct showstats_db showstats_db_of(const char *db);

/* FN(db, sums, ARG) for each database that has pools, once, by name (as PgBouncer lists
 * them): one sort of the pools, not a walk of every pool per database (thousands of "*"
 * databases); without memory for the sort, those walks. */
void showstats_each_db(void (*fn)(const char *db, const struct showstats_db *s, bool arg),
		       bool arg);

/* Each writes its whole result but the CommandComplete (showrow.h). */
void showstats_stats(void);
void showstats_totals_by_db(void);   /* STATS_TOTALS */
void showstats_averages_by_db(void); /* STATS_AVERAGES */
void showstats_totals(void);         /* TOTALS */

#endif
