/* The manual pages, written from the settings table (the same table that drives the ini
 * parser and that conf/pgcoro.ini documents). */
#ifndef PGCORO_MANPAGE_H
#define PGCORO_MANPAGE_H

#include <stdbool.h>
#include <stdio.h>

/* Writes the roff source of page NAME ("pgcoro.ini.5" or "pgcoro.8") to F. False if
 * NAME is not one of them. */
bool manpage_write(FILE *f, const char *name, const char *version);

#endif
