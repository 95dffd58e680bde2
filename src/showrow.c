/* Owns the row being built by a SHOW (see showrow.h): its cells' text and the number of
 * columns of the result in progress. */
#include "showrow.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

static struct pbuf *out;
static int ncols;
static char cells[SHOWROW_MAX_COLS][128];
static const char *vals[SHOWROW_MAX_COLS];

void showrow_into(struct pbuf *o) { out = o; }
struct pbuf *showrow_out(void) { return out; }

void showrow_begin(const struct proto_column *cols, int n)
{
	ncols = n;
	proto_build_row_description(out, cols, n);
}

void showrow_str(int i, const char *s) { vals[i] = s; }

void showrow_fmt(int i, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cells[i], sizeof(cells[i]), fmt, ap);
	va_end(ap);
	vals[i] = cells[i];
}

void showrow_copy(int i, const char *s) { showrow_fmt(i, "%s", s); }
void showrow_int(int i, int64_t v) { showrow_fmt(i, "%" PRId64, v); }
void showrow_uint(int i, uint64_t v) { showrow_fmt(i, "%" PRIu64, v); }

void showrow_end(void) { proto_build_data_row(out, vals, ncols); }
