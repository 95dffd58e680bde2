/* Admin control of pools, by database name (NULL = every database): PAUSE / RESUME,
 * DISABLE / ENABLE, KILL, RECONNECT, SUSPEND, and the conditions PAUSE, WAIT_CLOSE and
 * SUSPEND wait for.
 * The state is kept per database name, so pools created later follow it. */
#ifndef PGCORO_POOLCTL_H
#define PGCORO_POOLCTL_H

#include <stdbool.h>

struct runtime;

void poolctl_init(struct runtime *rt);
void poolctl_free(void);

/* PAUSE: the pools of DB hand out no server (clients wait; query_wait_timeout applies),
 * idle and connecting servers are closed now and busy ones when released. False on
 * allocation failure. */
bool poolctl_pause(const char *db) __attribute__((warn_unused_result));
/* PAUSE has taken effect: no server of a paused pool of DB is left. */
bool poolctl_pause_done(const char *db);
/* RESUME: DB (NULL: everything paused) hands out servers again. */
void poolctl_resume(const char *db);
/* True if a pool of DB must be paused (checked when a pool is created); DB NULL: if
 * everything is paused (PAUSE without a database). */
bool poolctl_paused(const char *db);

/* Whether anything is paused: everything, or a database. */
bool poolctl_any_paused(void);

/* SUSPEND: no server is handed out (requests wait, servers are kept) and no connection
 * accepted. It is in force once no server is in use outside session mode (a session
 * keeps its server and goes on); UNSUSPEND (RESUME) ends it. */
void poolctl_suspend(void);
bool poolctl_suspend_done(void);
void poolctl_unsuspend(void);
bool poolctl_suspended(void);

/* DISABLE / ENABLE: new logins to DB are refused; sessions go on. */
bool poolctl_disable(const char *db) __attribute__((warn_unused_result));
void poolctl_enable(const char *db);
bool poolctl_disabled(const char *db);

/* KILL: DB is paused and its clients and servers are closed now. */
bool poolctl_kill(const char *db) __attribute__((warn_unused_result));

/* RECONNECT: every server of DB is replaced: idle ones closed now, busy ones when
 * released. WAIT_CLOSE is done when no server made before is left. */
void poolctl_reconnect(const char *db);
bool poolctl_close_done(const char *db);

#endif
