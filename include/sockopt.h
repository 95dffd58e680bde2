/* The socket options pgcoro sets from its config (PgBouncer's tcp_* keys) on the TCP
 * connections of clients and servers. */
#ifndef PGCORO_SOCKOPT_H
#define PGCORO_SOCKOPT_H

#include <stdint.h>

struct config;

/* Applies CFG's tcp_keepalive (with tcp_keepidle, tcp_keepintvl, tcp_keepcnt: 0 keeps the
 * OS default), tcp_user_timeout and tcp_socket_buffer's send buffer to FD, an established
 * connection (its receive buffer comes from the listener, or stays the kernel's: see
 * sockopt_listen). Only tcp_socket_buffer applies to a unix socket. A failure leaves the
 * kernel's setting (and is logged at debug level): the connection works either way. */
void sockopt_apply(int fd, const struct config *cfg);

/* The most bytes one send on FD, a connection sockopt_apply tuned, should carry
 * (stream_limit_send): half its send buffer (the kernel doubles the size asked for) on a
 * TCP connection when CFG's tcp_socket_buffer made it small, else 0 (no limit). */
uint32_t sockopt_send_max(int fd, const struct config *cfg);

/* Applies tcp_socket_buffer (send and receive buffers) to FD, a listening socket, before
 * any connection's handshake: the connections it accepts inherit both. */
void sockopt_listen(int fd, const struct config *cfg);

#endif
