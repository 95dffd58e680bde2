/* Logging: one line per event to stderr (journald) or a log file; levels filter. */
#ifndef PGCORO_LOG_H
#define PGCORO_LOG_H

#include <stdbool.h>

enum log_level {
	LOGL_ERROR,
	LOGL_WARNING,
	LOGL_INFO,
	LOGL_DEBUG,
};

/* Sets the level and destination (NULL or "" = stderr). Returns false if the file
 * cannot be opened (logging stays on the previous destination). */
bool log_init(enum log_level level, const char *file) __attribute__((warn_unused_result));
void log_set_level(enum log_level level);
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
