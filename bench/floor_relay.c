/* The floor of a relaying pooler's cost, for `make bench-floor` (bench/user_floor.py):
 * a bare 1:1 TCP byte relay with no logic at all. Each accepted client gets its own
 * connection to PostgreSQL; bytes read on one side are written to the other, one read
 * and one write per wake-up and direction: what the kernel's TCP work costs plus the
 * least user space can add to it. Two loops with the same per-socket code:
 *   - a raw epoll loop, level-triggered (the floor of any relay);
 *   - with --libevent, libevent's loop, one persistent EV_READ event per socket (the
 *     floor of a relay built on libevent, as pgcoro and PgBouncer are).
 * Not a pooler (no pooling, no protocol, no back-pressure beyond a blocking-free best
 * effort) and not part of pgcoro: a measuring stick only.
 *
 * usage: floor_relay [--libevent] LISTEN_PORT UPSTREAM_PORT   (both on 127.0.0.1) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#define MAX_FD 65536

static int peer[MAX_FD];
static struct event *ev_of[MAX_FD]; /* --libevent: each socket's read event */
static char buf[65536];
static struct event_base *base;      /* --libevent, else NULL */

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static void on_readable(int fd);

static void readable_cb(evutil_socket_t fd, short what, void *arg) { on_readable(fd); }

/* Watches FD for input: on the epoll set EP, or on the libevent base. */
static void watch(int ep, int fd)
{
	if (base) {
		ev_of[fd] = event_new(base, fd, EV_READ | EV_PERSIST, readable_cb, NULL);
		if (!ev_of[fd] || event_add(ev_of[fd], NULL) != 0)
			perror("floor_relay: event_add");
		return;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		perror("floor_relay: epoll_ctl");
}

static void unwatch_close(int fd)
{
	if (ev_of[fd]) {
		event_free(ev_of[fd]);
		ev_of[fd] = NULL;
	}
	close(fd);
}

/* A new client: connect its upstream (blocking, loopback: immediate) and watch both. */
static void on_accept(int ep, int ls, int up_port)
{
	int one = 1;
	int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c < 0)
		return;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in up = loopback(up_port);
	if (c >= MAX_FD || s < 0 || s >= MAX_FD || connect(s, (struct sockaddr *)&up, sizeof up)) {
		close(c);
		if (s >= 0)
			close(s);
		return;
	}
	fcntl(s, F_SETFL, O_NONBLOCK);
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	peer[c] = s;
	peer[s] = c;
	watch(ep, c);
	watch(ep, s);
}

/* FD is readable: pass what it has to its peer; either side gone closes both. */
static void on_readable(int fd)
{
	if (peer[fd] < 0)
		return; /* closed earlier in this batch */
	ssize_t n = read(fd, buf, sizeof buf);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		ssize_t off = 0;
		while (off < n) {
			ssize_t w = write(peer[fd], buf + off, (size_t)(n - off));
			if (w < 0 && errno == EAGAIN)
				continue; /* loopback peer momentarily full: spin (a measuring stick) */
			if (w <= 0)
				break;
			off += w;
		}
		if (off == n)
			return;
	}
	int p = peer[fd];
	peer[fd] = peer[p] = -1;
	unwatch_close(fd);
	unwatch_close(p);
}

struct listen_arg {
	int ep, ls, up_port;
};

static void accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listen_arg *a = arg;
	on_accept(a->ep, a->ls, a->up_port);
}

int main(int argc, char **argv)
{
	bool use_libevent = argc == 4 && strcmp(argv[1], "--libevent") == 0;
	if (use_libevent) {
		argv++;
		argc--;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: floor_relay [--libevent] LISTEN_PORT UPSTREAM_PORT\n");
		return 2;
	}
	int lport = atoi(argv[1]), up_port = atoi(argv[2]), one = 1;
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = loopback(lport);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 512)) {
		perror("floor_relay: listen");
		return 1;
	}
	fcntl(ls, F_SETFL, O_NONBLOCK);
	if (use_libevent) {
		base = event_base_new();
		struct listen_arg la = {-1, ls, up_port};
		struct event *lev = base ? event_new(base, ls, EV_READ | EV_PERSIST, accept_cb, &la)
					 : NULL;
		if (!lev || event_add(lev, NULL) != 0) {
			fprintf(stderr, "floor_relay: libevent set-up failed\n");
			return 1;
		}
		return event_base_dispatch(base) == 0 ? 0 : 1;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	watch(ep, ls);
	struct epoll_event evs[64];
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == ls)
				on_accept(ep, ls, up_port);
			else
				on_readable(evs[i].data.fd);
		}
	}
}
