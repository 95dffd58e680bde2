/* Owns the CancelRequest pgcoro sends itself (cancelreq.h): a new connection to the
 * address, the 16-byte packet, the wait for the other end to close it; within one deadline
 * for it all. Two forms: blocking system calls with poll() timeouts, for an executor
 * thread (server cancels), and non-blocking steps on a libevent event, for the loop
 * thread (cancel requests forwarded to peers). */
#include "cancelreq.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void build_packet(uint8_t pkt[16], uint32_t pid, uint32_t key)
{
	put_be32(pkt, 16);
	put_be32(pkt + 4, PROTO_CANCEL_CODE);
	put_be32(pkt + 8, pid);
	put_be32(pkt + 12, key);
}

/* Monotonic microseconds, read now (safe on any thread). */
static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t deadline_after(int timeout_ms)
{
	return mono_us() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 10000) * 1000u;
}

/* Waits for EVENTS on FD until DEADLINE (mono_us); false with errno (ETIMEDOUT) when they
 * did not come. */
static bool wait_for(int fd, short events, uint64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	for (;;) {
		uint64_t now = mono_us();
		int ms = now >= deadline ? 0 : (int)((deadline - now + 999) / 1000);
		int r = ms > 0 ? poll(&p, 1, ms) : 0;
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
	uint64_t deadline = deadline_after(timeout_ms);
	uint8_t pkt[16];
	build_packet(pkt, pid, key);
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	step = "connect";
	if (connect(fd, addr, len) != 0) {
		if (errno != EINPROGRESS || !wait_for(fd, POLLOUT, deadline))
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
		if (!wait_for(fd, POLLOUT, deadline))
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
		if (!wait_for(fd, POLLIN, deadline)) /* bytes or not, the same deadline */
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

/* ---- on the loop --------------------------------------------------------------------- */

enum cr_step { CR_CONNECT, CR_SEND, CR_WAIT_CLOSE, CR_FAILED };

static const char *const cr_step_names[] = {"connect", "send", "wait for the close", "connect"};

static void cr_event(evutil_socket_t fd, short what, void *arg);

/* CR's error: STEP's name and ERRNUM's text. */
static void cr_error(struct cancelreq *cr, int errnum)
{
	char buf[128];
	snprintf(cr->err, sizeof(cr->err), "%s: %s", cr_step_names[cr->step],
		 strerror_r(errnum, buf, sizeof(buf)));
}

static void cr_close(struct cancelreq *cr)
{
	if (cr->fd >= 0)
		close(cr->fd);
	cr->fd = -1;
}

/* Waits for WHAT on CR's socket until its deadline. */
static void cr_arm(struct cancelreq *cr, short what)
{
	struct event_base *base = event_get_base(&cr->ev);
	uint64_t now = mono_us();
	uint64_t left = cr->deadline_us > now ? cr->deadline_us - now : 0;
	struct timeval tv = {.tv_sec = (time_t)(left / 1000000u),
			     .tv_usec = (suseconds_t)(left % 1000000u)};
	event_assign(&cr->ev, base, cr->fd, what, cr_event, cr);
	event_add(&cr->ev, &tv);
}

/* The end: CR's socket closed, its done called (which may free it). */
static void cr_finish(struct cancelreq *cr, bool ok)
{
	cr_close(cr);
	cr->done(cr, ok);
}

/* Connects to CR's next address; on a failure at once, tries the one after. None left:
 * CR_FAILED, reported from the loop. */
static void cr_connect_next(struct cancelreq *cr)
{
	for (; cr->at < cr->naddrs; cr->at++) {
		const struct cancelreq_addr *a = &cr->addrs[cr->at];
		cr->step = CR_CONNECT;
		cr->fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (cr->fd < 0) {
			cr_error(cr, errno);
			continue;
		}
		if (connect(cr->fd, (const struct sockaddr *)&a->sa, a->len) == 0) {
			cr->step = CR_SEND;
			cr_arm(cr, EV_WRITE);
			return;
		}
		if (errno == EINPROGRESS) {
			cr_arm(cr, EV_WRITE);
			return;
		}
		cr_error(cr, errno);
		cr_close(cr);
	}
	if (!cr->naddrs)
		snprintf(cr->err, sizeof(cr->err), "no address");
	cr->step = CR_FAILED;
	event_assign(&cr->ev, event_get_base(&cr->ev), -1, 0, cr_event, cr);
	event_active(&cr->ev, EV_TIMEOUT, 1);
}

static void cr_event(evutil_socket_t fd, short what, void *arg)
{
	struct cancelreq *cr = arg;
	if (cr->step == CR_FAILED) {
		cr_finish(cr, false);
		return;
	}
	if (what & EV_TIMEOUT) {
		cr_error(cr, ETIMEDOUT);
		cr_finish(cr, false);
		return;
	}
	if (cr->step == CR_CONNECT) {
		int so = 0;
		socklen_t sl = sizeof(so);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) != 0)
			so = errno;
		if (so) {
			cr_error(cr, so);
			cr_close(cr);
			cr->at++;
			cr_connect_next(cr); /* within the same deadline */
			return;
		}
		cr->step = CR_SEND;
	}
	if (cr->step == CR_SEND) {
		ssize_t n = send(fd, cr->pkt + cr->off, sizeof(cr->pkt) - cr->off, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			cr_error(cr, errno);
			cr_finish(cr, false);
			return;
		}
		if (n > 0)
			cr->off += (size_t)n;
		if (cr->off < sizeof(cr->pkt)) {
			cr_arm(cr, EV_WRITE);
			return;
		}
		cr->step = CR_WAIT_CLOSE;
		cr_arm(cr, EV_READ);
		return;
	}
	/* CR_WAIT_CLOSE: the other end answers nothing and closes once it has handled the
	 * request; bytes it sends are dropped, one read per wake-up, and change no deadline */
	uint8_t junk[256];
	ssize_t n = recv(fd, junk, sizeof(junk), 0);
	if (n == 0 || (n < 0 && errno == ECONNRESET)) {
		cr_finish(cr, true);
		return;
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		cr_error(cr, errno);
		cr_finish(cr, false);
		return;
	}
	cr_arm(cr, EV_READ);
}

void cancelreq_start(struct cancelreq *cr, struct event_base *base,
		     const struct cancelreq_addr *addrs, int naddrs, uint32_t pid, uint32_t key,
		     int timeout_ms)
{
	cr->err[0] = '\0';
	cr->fd = -1;
	cr->at = 0;
	cr->off = 0;
	cr->naddrs = naddrs < CANCELREQ_MAX_ADDRS ? naddrs : CANCELREQ_MAX_ADDRS;
	if (cr->naddrs > 0)
		memcpy(cr->addrs, addrs, (size_t)cr->naddrs * sizeof(*addrs));
	cr->deadline_us = deadline_after(timeout_ms);
	build_packet(cr->pkt, pid, key);
	event_assign(&cr->ev, base, -1, 0, cr_event, cr);
	cr_connect_next(cr);
}

void cancelreq_abort(struct cancelreq *cr)
{
	event_del(&cr->ev);
	cr_close(cr);
}
