/* The console's counters: SHOW STATS, STATS_TOTALS, STATS_AVERAGES (one row per database,
 * the console's own as "pgbouncer") and TOTALS (one row per figure), with PgBouncer
 * 1.26's columns (see show.h). */
#ifndef PGCORO_SHOWSTATS_H
#define PGCORO_SHOWSTATS_H

/* Each writes its whole result but the CommandComplete (showrow.h). */
void showstats_stats(void);
void showstats_totals_by_db(void);   /* STATS_TOTALS */
void showstats_averages_by_db(void); /* STATS_AVERAGES */
void showstats_totals(void);         /* TOTALS */

#endif
