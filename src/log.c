/* Owns the log destinations and level. File and stderr lines: "time [pid] LEVEL message";
 * syslog lines: "LEVEL message" at the matching priority (syslog adds time and pid).
 * Every line goes through log_write, which escapes the control characters of the message:
 * whatever a line quotes (a client's user name, SQL, a server's message), it stays one
 * line, so nobody can forge another. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

enum log_level log_cur_level = LOGL_INFO;
static FILE *log_file;     /* NULL = none */
static bool log_to_syslog; /* else to stderr */
static bool log_quiet;     /* -q / --quiet, -d: never to stderr */
static char syslog_ident_buf[64]; /* openlog keeps the pointer: storage that lives on */

const char *const log_level_names[] = {"error", "warning", "info", "debug", NULL};

const char *const log_facility_names[] = {"auth",   "authpriv", "daemon", "user",
					  "local0", "local1",   "local2", "local3",
					  "local4", "local5",   "local6", "local7", NULL};
static const int facility_codes[] = {LOG_AUTH,   LOG_AUTHPRIV, LOG_DAEMON, LOG_USER,
				     LOG_LOCAL0, LOG_LOCAL1,   LOG_LOCAL2, LOG_LOCAL3,
				     LOG_LOCAL4, LOG_LOCAL5,   LOG_LOCAL6, LOG_LOCAL7};
_Static_assert(sizeof(facility_codes) / sizeof(facility_codes[0]) ==
		   sizeof(log_facility_names) / sizeof(log_facility_names[0]) - 1,
	       "one code per facility name");

int log_facility_parse(const char *name)
{
	for (size_t i = 0; log_facility_names[i]; i++)
		if (strcasecmp(name, log_facility_names[i]) == 0)
			return facility_codes[i];
	return -1;
}

bool log_init(enum log_level level, const char *file, const char *syslog_ident,
	      const char *facility)
{
	log_cur_level = level;
	log_close();
	if (file && *file) {
		FILE *f = fopen(file, "a");
		if (!f)
			return false;
		setvbuf(f, NULL, _IOLBF, 0);
		log_file = f;
	}
	if (syslog_ident) {
		int fac = log_facility_parse(facility ? facility : "daemon");
		if (fac < 0)
			return false;
		snprintf(syslog_ident_buf, sizeof(syslog_ident_buf), "%s", syslog_ident);
		openlog(syslog_ident_buf, LOG_PID | LOG_NDELAY, fac);
		log_to_syslog = true;
	}
	return true;
}

void log_close(void)
{
	if (log_file)
		fclose(log_file);
	log_file = NULL;
	if (log_to_syslog)
		closelog();
	log_to_syslog = false;
}

void log_set_level(enum log_level level) { log_cur_level = level; }

void log_set_quiet(bool quiet) { log_quiet = quiet; }

bool log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; log_level_names[i]; i++) {
		if (strcasecmp(s, log_level_names[i]) == 0) {
			*out = (enum log_level)i;
			return true;
		}
	}
	return false;
}

const char *log_level_name(enum log_level level)
{
	return (unsigned)level < 4 ? log_level_names[level] : "?";
}

#define LOG_ESCAPED(n) (4 * (n) + 1) /* room for N bytes escaped, and the NUL */

/* Copies IN to OUT (at least LOG_ESCAPED(strlen(IN)) bytes) with its control characters
 * escaped: a newline as the two characters \n, other bytes below 0x20 and 0x7f as \xNN.
 * Bytes from 0x80 up (UTF-8) are copied as they are. */
static void escape_controls(const char *in, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		if (*p >= 0x20 && *p != 0x7f) {
			*out++ = (char)*p;
			continue;
		}
		*out++ = '\\';
		if (*p == '\n') {
			*out++ = 'n';
			continue;
		}
		*out++ = 'x';
		*out++ = hex[*p >> 4];
		*out++ = hex[*p & 15];
	}
	*out = '\0';
}

__attribute__((format(printf, 2, 0))) static void log_write(enum log_level level, const char *fmt,
								      va_list ap)
{
	static const char *const tags[] = {"ERROR", "WARNING", "LOG", "DEBUG"};
	static const int priorities[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char raw[2048], msg[LOG_ESCAPED(sizeof(raw))];
	if (vsnprintf(raw, sizeof(raw), fmt, ap) < 0)
		raw[0] = '\0';
	/* A trailing newline (libpq's messages end with one) ends the line anyway. */
	size_t len = strlen(raw);
	while (len > 0 && raw[len - 1] == '\n')
		raw[--len] = '\0';
	escape_controls(raw, msg);
	if (log_to_syslog)
		syslog(priorities[level], "%s %s", tags[level], msg);
	FILE *outs[2] = {log_to_syslog || log_quiet ? NULL : stderr, log_file};
	char tbuf[64];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(tbuf, sizeof(tbuf), "%Y-%m-%d %H:%M:%S", &tm);
	for (int i = 0; i < 2; i++) {
		if (!outs[i])
			continue;
		fprintf(outs[i], "%s.%03d UTC [%d] %s %s\n", tbuf, (int)(tv.tv_usec / 1000),
			(int)getpid(), tags[level], msg);
		fflush(outs[i]);
	}
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
