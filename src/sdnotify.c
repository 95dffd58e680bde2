/* Owns the conversation with systemd (Type=notify / notify-reload): READY, RELOADING,
 * STOPPING, STATUS with live counts, and WATCHDOG=1 keep-alives when the unit sets
 * WatchdogSec (sent from the loop, so a stuck loop is noticed). All are no-ops when not
 * run by systemd. */
#include "sdnotify.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "log.h"

static struct event *watchdog_ev;
static char last_status[256];

static void watchdog_cb(evutil_socket_t fd, short what, void *arg) { sd_notify(0, "WATCHDOG=1"); }

void sdnotify_init(struct event_base *base)
{
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return;
	watchdog_ev = event_new(base, -1, EV_PERSIST, watchdog_cb, NULL);
	uint64_t half = usec / 2; /* twice per period, as sd_watchdog_enabled(3) advises */
	struct timeval tv = {(time_t)(half / 1000000u), (suseconds_t)(half % 1000000u)};
	if (!watchdog_ev || event_add(watchdog_ev, &tv) != 0) {
		log_error("cannot arm the systemd watchdog timer");
		return;
	}
	sd_notify(0, "WATCHDOG=1");
	log_info("systemd watchdog: WATCHDOG=1 every %.3f s", (double)half / 1e6);
}

void sdnotify_free(void)
{
	if (watchdog_ev)
		event_free(watchdog_ev);
	watchdog_ev = NULL;
}

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
	char buf[sizeof(last_status)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (strcmp(buf, last_status) == 0)
		return; /* unchanged: no message */
	memcpy(last_status, buf, sizeof(buf));
	sd_notifyf(0, "STATUS=%s", buf);
}
