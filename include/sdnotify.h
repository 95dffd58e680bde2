/* systemd notifications (sd_notify): no-ops when not run by systemd. */
#ifndef PGCORO_SDNOTIFY_H
#define PGCORO_SDNOTIFY_H

void sdnotify_ready(void);
void sdnotify_stopping(void);
/* RELOADING=1 with MONOTONIC_USEC (Type=notify-reload); READY=1 ends the reload. */
void sdnotify_reloading(void);
void sdnotify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
