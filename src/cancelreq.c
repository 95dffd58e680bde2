/* Owns the CancelRequest pgcoro sends itself (cancelreq.h): a new connection to the
 * server's address, the 16-byte packet, the wait for the server to close it. Blocking
 * system calls with poll() timeouts, run on an executor thread. */
#include "cancelreq.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Waits for EVENTS on FD for at most MS; false with errno (ETIMEDOUT) when they did not
 * come. */
static bool wait_for(int fd, short events, int ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	for (;;) {
		int r = poll(&p, 1, ms);
		if (r > 0)
			return true;
		if (r == 0) {
			errno = ETIMEDOUT;
			return false;
		}
		if (errno != EINTR)
			return false;
	}
}

bool cancelreq_send(const struct sockaddr *addr, socklen_t len, uint32_t pid, uint32_t key,
		    int timeout_ms, char *err, size_t errlen)
{
	const char *step = "socket";
	char buf[128];
	int ms = timeout_ms > 0 ? timeout_ms : 10000;
	uint8_t pkt[16];
	put_be32(pkt, sizeof(pkt));
	put_be32(pkt + 4, PROTO_CANCEL_CODE);
	put_be32(pkt + 8, pid);
	put_be32(pkt + 12, key);
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	step = "connect";
	if (connect(fd, addr, len) != 0) {
		if (errno != EINPROGRESS || !wait_for(fd, POLLOUT, ms))
			goto fail;
		int so = 0;
		socklen_t sl = sizeof(so);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) != 0)
			goto fail;
		if (so) {
			errno = so;
			goto fail;
		}
	}
	step = "send";
	for (size_t off = 0; off < sizeof(pkt);) {
		ssize_t n = send(fd, pkt + off, sizeof(pkt) - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			goto fail;
		if (!wait_for(fd, POLLOUT, ms))
			goto fail;
	}
	/* the server answers nothing and closes once it has handled the request */
	step = "wait for the close";
	for (;;) {
		uint8_t junk[64];
		ssize_t n = recv(fd, junk, sizeof(junk), 0);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			break;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			goto fail;
		if (n < 0 && !wait_for(fd, POLLIN, ms))
			goto fail;
	}
	close(fd);
	return true;
fail:
	snprintf(err, errlen, "%s: %s", step, strerror_r(errno, buf, sizeof(buf)));
	if (fd >= 0)
		close(fd);
	return false;
}
