/* Owns the conversation with systemd (Type=notify): READY, STOPPING, STATUS. */
#include "sdnotify.h"

#include <stdarg.h>
#include <stdio.h>

#include <systemd/sd-daemon.h>

void sdnotify_ready(void) { sd_notify(0, "READY=1"); }

void sdnotify_stopping(void) { sd_notify(0, "STOPPING=1"); }

void sdnotify_status(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sd_notifyf(0, "STATUS=%s", buf);
}
