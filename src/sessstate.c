/* TEMPORARY stand-in (not committed): crude first-keyword matcher */
#include "sessstate.h"
#include <string.h>
#include <strings.h>
#define _GNU_SOURCE
#include <ctype.h>
static int kw(const char *t, size_t n, size_t *i, const char *w)
{
	while (*i < n && isspace((unsigned char)t[*i])) (*i)++;
	size_t l = strlen(w);
	if (n - *i >= l && strncasecmp(t + *i, w, l) == 0 && (n - *i == l || !isalnum((unsigned char)t[*i + l]))) { *i += l; return 1; }
	return 0;
}
static int has(const char *t, size_t n, const char *w) { return memmem(t, n, w, strlen(w)) != NULL; }
uint32_t sess_scan(const char *t, size_t n)
{
	uint32_t r = 0; size_t i = 0;
	if (has(t, n, "pg_advisory_lock") || has(t, n, "pg_try_advisory_lock")) r |= SESS_ADVISORY;
	if (has(t, n, "pg_advisory_unlock")) r |= SESS_UNDO;
	if (has(t, n, "set_config")) r |= SESS_SETTING;
	if (kw(t, n, &i, "PREPARE")) { if (!kw(t, n, &i, "TRANSACTION")) r |= SESS_PREPARE; }
	else if (kw(t, n, &i, "DECLARE")) { if (memmem(t, n, "HOLD", 4) || memmem(t, n, "hold", 4)) r |= SESS_HOLD; }
	else if (kw(t, n, &i, "CREATE")) { if (kw(t, n, &i, "TEMP") || kw(t, n, &i, "TEMPORARY")) r |= SESS_TEMP; }
	else if (kw(t, n, &i, "LOAD")) r |= SESS_LOAD;
	else if (kw(t, n, &i, "SET")) { if (!kw(t, n, &i, "LOCAL") && !kw(t, n, &i, "TRANSACTION")) r |= SESS_SETTING; }
	else if (kw(t, n, &i, "RESET")) r |= SESS_SETTING;
	else if (kw(t, n, &i, "DISCARD")) r |= SESS_SETTING | SESS_UNDO;
	else if (kw(t, n, &i, "DEALLOCATE") || kw(t, n, &i, "CLOSE") || kw(t, n, &i, "DROP")) r |= SESS_UNDO;
	return r;
}
const char *sess_effect_name(uint32_t b) { (void)b; return "?"; }
