/* Owns the socket options set from the config on client and server connections
 * (sockopt.h): keepalive, TCP_USER_TIMEOUT and buffer sizes, as PgBouncer sets them —
 * except a receive buffer on an established connection: shrunk after the handshake, it
 * leaves a window below one segment, and a bulk transfer crawls at one delayed ACK per
 * window (a 4096-byte tcp_socket_buffer: ~40 KB/s over loopback, measured). The
 * listening sockets get it instead, before any handshake, and accepted ones inherit it.
 * A small send buffer needs small writes (sockopt_send_max; see stream_limit_send). */
#include "sockopt.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "log.h"

static void set_int(int fd, int level, int name, int value, const char *what)
{
	if (setsockopt(fd, level, name, &value, sizeof(value)) != 0)
		log_debug("socket %d: cannot set %s to %d: %s", fd, what, value, strerror(errno));
}

void sockopt_listen(int fd, const struct config *cfg)
{
	if (cfg->tcp_socket_buffer > 0) {
		set_int(fd, SOL_SOCKET, SO_SNDBUF, cfg->tcp_socket_buffer, "SO_SNDBUF");
		set_int(fd, SOL_SOCKET, SO_RCVBUF, cfg->tcp_socket_buffer, "SO_RCVBUF");
	}
}

void sockopt_apply(int fd, const struct config *cfg)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (cfg->tcp_socket_buffer > 0)
		set_int(fd, SOL_SOCKET, SO_SNDBUF, cfg->tcp_socket_buffer, "SO_SNDBUF");
	if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
		return;
	set_int(fd, SOL_SOCKET, SO_KEEPALIVE, cfg->tcp_keepalive ? 1 : 0, "SO_KEEPALIVE");
	if (cfg->tcp_keepalive) {
		if (cfg->tcp_keepidle > 0)
			set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, cfg->tcp_keepidle, "TCP_KEEPIDLE");
		if (cfg->tcp_keepintvl > 0)
			set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, cfg->tcp_keepintvl, "TCP_KEEPINTVL");
		if (cfg->tcp_keepcnt > 0)
			set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, cfg->tcp_keepcnt, "TCP_KEEPCNT");
	}
	if (cfg->tcp_user_timeout > 0)
		set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, cfg->tcp_user_timeout, "TCP_USER_TIMEOUT");
}

uint32_t sockopt_send_max(int fd, const struct config *cfg)
{
	if (cfg->tcp_socket_buffer <= 0)
		return 0;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
		return 0;
	int buf = 0;
	len = sizeof(buf);
	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, &len) != 0 || buf <= 1)
		return 0;
	return (uint32_t)buf / 2;
}
