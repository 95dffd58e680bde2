/* Owns the log destination and level. Lines: "time [pid] LEVEL message". */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum log_level log_cur_level = LOGL_INFO;
static FILE *log_file; /* NULL = stderr */

static const char *const level_names[] = {"error", "warning", "info", "debug"};

bool log_init(enum log_level level, const char *file)
{
	log_cur_level = level;
	if (!file || !*file) {
		log_close();
		return true;
	}
	FILE *f = fopen(file, "a");
	if (!f)
		return false;
	setvbuf(f, NULL, _IOLBF, 0);
	log_close();
	log_file = f;
	return true;
}

void log_close(void)
{
	if (log_file)
		fclose(log_file);
	log_file = NULL;
}

void log_set_level(enum log_level level) { log_cur_level = level; }

bool log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return true;
		}
	}
	return false;
}

const char *log_level_name(enum log_level level)
{
	return (unsigned)level < 4 ? level_names[level] : "?";
}

__attribute__((format(printf, 2, 0))) static void log_write(enum log_level level, const char *fmt,
								      va_list ap)
{
	static const char *const tags[] = {"ERROR", "WARNING", "LOG", "DEBUG"};
	char tbuf[64];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(tbuf, sizeof(tbuf), "%Y-%m-%d %H:%M:%S", &tm);
	FILE *out = log_file ? log_file : stderr;
	flockfile(out);
	fprintf(out, "%s.%03d UTC [%d] %s ", tbuf, (int)(tv.tv_usec / 1000), (int)getpid(), tags[level]);
	vfprintf(out, fmt, ap);
	fputc('\n', out);
	funlockfile(out);
	fflush(out);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	log_write(level, fmt, ap);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write(LOGL_ERROR, fmt, ap);
	va_end(ap);
	abort();
}
