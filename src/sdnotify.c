/* Owns the conversation with systemd (Type=notify / notify-reload): READY, RELOADING,
 * STOPPING, STATUS. */
#include "sdnotify.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include <systemd/sd-daemon.h>

void sdnotify_ready(void) { sd_notify(0, "READY=1"); }

void sdnotify_stopping(void) { sd_notify(0, "STOPPING=1"); }

void sdnotify_reloading(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
		   (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u);
}

void sdnotify_status(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sd_notifyf(0, "STATUS=%s", buf);
}
