/* The row builder the SHOW modules share (show.c, showconn.c, showstats.c): a
 * RowDescription from a column table, then rows whose cells are set by index and sent
 * as one DataRow. One result is built at a time, on the loop thread. */
#ifndef PGCORO_SHOWROW_H
#define PGCORO_SHOWROW_H

#include <stdint.h>

#include "proto.h"

/* PgBouncer's column types: text, int4, int8, numeric (its counters). */
#define OID_TEXT 25
#define OID_INT4 23
#define OID_INT8 20
#define OID_NUMERIC 1700

/* PgBouncer's admin database, pool and user: the console in every listing. */
#define SHOW_ADMIN_NAME "pgbouncer"

#define SHOWROW_MAX_COLS 32

/* Where the next result goes (show_build sets it), and that buffer. */
void showrow_into(struct pbuf *out);
struct pbuf *showrow_out(void);

/* The RowDescription of COLS (N of them, at most SHOWROW_MAX_COLS): the rows that follow
 * have N cells. */
void showrow_begin(const struct proto_column *cols, int n);
#define SHOWROW_BEGIN(cols) showrow_begin((cols), (int)(sizeof(cols) / sizeof((cols)[0])))

/* Cell I of the current row: S itself (NULL = SQL NULL; it must live until showrow_end),
 * a copy of S (up to 127 bytes), or a number. */
void showrow_str(int i, const char *s);
void showrow_copy(int i, const char *s);
void showrow_int(int i, int64_t v);
void showrow_uint(int i, uint64_t v);
/* Cell I as printf would format it (up to 127 bytes). */
void showrow_fmt(int i, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sends the current row (every cell set since the last one) as a DataRow. */
void showrow_end(void);

#endif
