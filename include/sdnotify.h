/* systemd notifications (sd_notify): no-ops when not run by systemd. */
#ifndef PGCORO_SDNOTIFY_H
#define PGCORO_SDNOTIFY_H

struct event_base;

/* Arms the WATCHDOG=1 timer on BASE when systemd asks for one (WatchdogSec). */
void sdnotify_init(struct event_base *base);
void sdnotify_free(void);

void sdnotify_ready(void);
void sdnotify_stopping(void);
/* RELOADING=1 with MONOTONIC_USEC (Type=notify-reload); READY=1 ends the reload. */
void sdnotify_reloading(void);
/* STATUS=<text>, sent only when the text changed since the last one. */
void sdnotify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
