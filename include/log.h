/* Logging: one line per event to stderr (journald) or syslog, and to a log file; levels
 * filter. A message's control characters are escaped (newline as \n, others as \xNN), so
 * one message is one line whatever it quotes. Callable from any thread. */
#ifndef PGCORO_LOG_H
#define PGCORO_LOG_H

#include <stdbool.h>

enum log_level {
	LOGL_ERROR,
	LOGL_WARNING,
	LOGL_INFO,
	LOGL_DEBUG,
};

/* Sets the level and the destinations, once at start: FILE (NULL or "" = none) and
 * either syslog (SYSLOG_IDENT non-NULL, with FACILITY, a name log_facility_parse knows)
 * or stderr. Returns false if the file cannot be opened (errno set) or the facility is
 * unknown; logging then stays on stderr. */
bool log_init(enum log_level level, const char *file, const char *syslog_ident,
	      const char *facility) __attribute__((warn_unused_result));
/* The level names (index = enum log_level) and the syslog facility names, NULL-terminated:
 * the config table validates log_level and syslog_facility against them. */
extern const char *const log_level_names[];
extern const char *const log_facility_names[];
/* The syslog(3) facility named NAME ("daemon", "local0", ...), or -1. */
int log_facility_parse(const char *name);
void log_set_level(enum log_level level);
/* QUIET: nothing goes to stderr (PgBouncer's -q, and -d), only to the file and syslog. */
void log_set_quiet(bool quiet);
/* The current level. Read by the macros below so that a line that is filtered out costs
 * one comparison and no call (its arguments are not even evaluated); set only through
 * log_init / log_set_level. */
extern enum log_level log_cur_level;
static inline bool log_enabled(enum log_level level) { return level <= log_cur_level; }
/* Parses "error|warning|info|debug"; false if unknown. */
bool log_level_parse(const char *s, enum log_level *out) __attribute__((warn_unused_result));
const char *log_level_name(enum log_level level);
void log_close(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A broken invariant: logs and aborts. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define log_at(level, ...) do { if (log_enabled(level)) log_msg(level, __VA_ARGS__); } while (0)
#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_warning(...) log_at(LOGL_WARNING, __VA_ARGS__)
#define log_info(...) log_at(LOGL_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOGL_DEBUG, __VA_ARGS__)

#endif
