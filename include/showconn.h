/* The console's socket listings: SHOW CLIENTS, SERVERS, SOCKETS and ACTIVE_SOCKETS, with
 * PgBouncer 1.26's columns (see show.h). */
#ifndef PGCORO_SHOWCONN_H
#define PGCORO_SHOWCONN_H

struct runtime;

void showconn_init(struct runtime *rt);

/* Each writes its whole result but the CommandComplete (showrow.h). */
void showconn_clients(void);
void showconn_servers(void);
void showconn_sockets(void);        /* every client and server, with the buffer columns */
void showconn_active_sockets(void); /* those of them with bytes buffered */

#endif
