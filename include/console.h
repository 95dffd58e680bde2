/* The admin console: the virtual databases "pgcoro" and "pgbouncer" (an alias, so
 * PgBouncer's scripts and exporters work). Users in admin_users may run every command,
 * those in stats_users the SHOW commands; simple query protocol only. Results use
 * PgBouncer 1.26's column names and types, errors its texts. */
#ifndef PGCORO_CONSOLE_H
#define PGCORO_CONSOLE_H

#include <stdbool.h>

#include "types.h"

struct runtime;

void console_init(struct runtime *rt);

/* True if DB names the console. */
bool console_is_console_db(const char *db);

/* C has authenticated to the console database: it is refused (28000) unless its user is
 * in admin_users or stats_users, and (53300) past max_db_client_connections (the
 * console's sessions) or its user's max_user_client_connections unless it is in
 * admin_users; else it is welcomed and goes to CL_CONSOLE. */
void console_login(client_t *c);

/* Input from a console client: each whole Query is answered; Terminate closes it. */
void console_on_input(client_t *c);

/* Completes the commands that wait (PAUSE, WAIT_CLOSE, SUSPEND) once their condition
 * holds: no server left (of the paused pools / of an older generation), no server in
 * use (SUSPEND: also polled by a timer while it waits). Ends a SUSPEND whose console
 * sessions all left, as PgBouncer does. Called by the reaper, which runs after servers
 * close. Cheap when nothing waits. */
void console_poll(void);

/* A reload ended (OK false: the running config stayed): RELOAD commands complete, SETs
 * that waited for it run. */
void console_reload_done(bool ok);

/* The SET that reload_set left reading files ended. OK true: in force, MSG NULL or a
 * notice for its client (the TLS context stayed as it was); OK false: refused, MSG the
 * reason, nothing changed. SETs that waited for it run now. */
void console_set_done(bool ok, const char *msg);

/* C is being freed: its console state goes. */
void console_forget(client_t *c);

#endif
