/* The daemon's signals, handled on the loop thread with PgBouncer's meanings: SIGHUP
 * reloads; SIGTERM and SIGINT stop in order (shutdown.h); SIGQUIT stops at once;
 * SIGUSR1 pauses every database and SIGUSR2 resumes them, as the console's PAUSE and
 * RESUME without a database; SIGPIPE is ignored. */
#ifndef PGCORO_SIGNALS_H
#define PGCORO_SIGNALS_H

#include <stdbool.h>

struct runtime;

/* Ignores SIGPIPE from now on (a write to a closed socket or pipe fails with EPIPE). */
void signals_init(struct runtime *rt);

/* Handles the other signals on rt->base from now on; false (logged) if libevent
 * refuses one. */
bool signals_start(void) __attribute__((warn_unused_result));

/* Logs once a SIGUSR1 pause has taken effect (no server left). Called by the reaper,
 * which runs after servers close. Cheap when no pause waits. */
void signals_poll(void);

/* Gives the signals back to their former handlers (teardown). */
void signals_free(void);

#endif
