/* The socket options pgcoro sets from its config (PgBouncer's tcp_* keys) on the TCP
 * connections of clients and servers. */
#ifndef PGCORO_SOCKOPT_H
#define PGCORO_SOCKOPT_H

struct config;

/* Applies CFG's tcp_keepalive (with tcp_keepidle, tcp_keepintvl, tcp_keepcnt: 0 keeps the
 * OS default), tcp_user_timeout and tcp_socket_buffer to socket FD. Only tcp_socket_buffer
 * applies to a unix socket. A failure leaves the kernel's setting (and is logged at debug
 * level): the connection works either way. */
void sockopt_apply(int fd, const struct config *cfg);

#endif
