/* Listeners: TCP (IPv4/IPv6) and the unix socket UNIX_SOCKET_DIR/.s.PGSQL.PORT. */
#ifndef PGCORO_LISTENER_H
#define PGCORO_LISTENER_H

#include <stdbool.h>
#include <sys/socket.h>

struct runtime;

/* Opens every configured listener. False (with a logged reason) if any fails. */
bool listener_start(struct runtime *rt) __attribute__((warn_unused_result));

/* Closes them and removes the unix socket file. */
void listener_stop(void);

/* An orderly shutdown begins: the TCP listeners close; the unix socket stays open (for
 * the console) until listener_stop, as PgBouncer's. */
void listener_stop_tcp(void);

/* SUSPEND (HOLD true): no connection is accepted (they wait in the backlog) until RESUME
 * (HOLD false). */
void listener_hold(bool hold);

/* Calls FN for each listening socket with its address (getsockname), in opening order (the
 * unix socket first); stops at the first false FN returns and returns false then. */
bool listener_each(bool (*fn)(int fd, const struct sockaddr *sa, void *arg), void *arg)
	__attribute__((warn_unused_result));

/* An online restart: listens on FD, a listening socket the old process handed over
 * (takes it, closes it on failure); a unix one is removed at listener_stop as if opened
 * here. False with a logged reason, also if FD is on no address the config's
 * listen_addr, listen_port and unix_socket_dir give. */
bool listener_adopt(struct runtime *rt, int fd) __attribute__((warn_unused_result));

/* The sockets were handed to a new process: closes them here, the unix socket file left
 * in place. */
void listener_hand_over(void);

#endif
