/* systemd notifications (sd_notify): no-ops when not run by systemd. */
#ifndef PGCORO_SDNOTIFY_H
#define PGCORO_SDNOTIFY_H

void sdnotify_ready(void);
void sdnotify_stopping(void);
void sdnotify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
