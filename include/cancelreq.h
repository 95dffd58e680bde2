/* The CancelRequest pgcoro sends itself: for a server whose BackendKeyData it knows (a
 * connection libpq did not make: libpq keeps the secret key of its own to PQcancel), on an
 * executor thread; and for a peer a cancel request is forwarded to, on the loop thread,
 * without blocking it. */
#ifndef PGCORO_CANCELREQ_H
#define PGCORO_CANCELREQ_H

#include <event2/event_struct.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Connects to ADDR (LEN bytes: the address the server's connection is connected to, a
 * TCP or unix socket), sends a CancelRequest for PID and KEY, and waits for the server to
 * close that connection, as libpq's PQcancel does (then the cancel has been handled, and
 * the query in flight is the one it reached). All of it takes at most TIMEOUT_MS (<= 0:
 * 10 s), one deadline however the server trickles its bytes. Blocking: for an executor
 * thread; touches nothing but its arguments. False, with the reason in ERR (ERRLEN bytes),
 * when the request could not be delivered. */
bool cancelreq_send(const struct sockaddr *addr, socklen_t len, uint32_t pid, uint32_t key,
		    int timeout_ms, char *err, size_t errlen) __attribute__((warn_unused_result));

/* One address to try (a resolved host's, or a unix socket's). */
struct cancelreq_addr {
	struct sockaddr_storage sa;
	socklen_t len;
};

#define CANCELREQ_MAX_ADDRS 4 /* a host's first addresses tried, in getaddrinfo's order */

/* A CancelRequest sent from the loop thread: the fields up to ev are the caller's to set
 * before cancelreq_start; the others are its own. */
struct cancelreq {
	void (*done)(struct cancelreq *cr, bool ok); /* once, on the loop; may free CR */
	char err[160];                               /* why, when !ok */
	/* internal */
	struct event ev;
	int fd;
	int step; /* what ev waits for */
	int at, naddrs;
	size_t off;
	uint64_t deadline_us;
	uint8_t pkt[16];
	struct cancelreq_addr addrs[CANCELREQ_MAX_ADDRS];
};

/* Starts sending a CancelRequest for PID and KEY on BASE to the first of ADDRS (NADDRS,
 * copied; the next on a failed connect): connect, the 16 bytes, the wait for the close,
 * all non-blocking and within TIMEOUT_MS (<= 0: 10 s) from now. CR->done is called exactly
 * once, later (never from within this call), unless cancelreq_abort comes first. */
void cancelreq_start(struct cancelreq *cr, struct event_base *base,
		     const struct cancelreq_addr *addrs, int naddrs, uint32_t pid, uint32_t key,
		     int timeout_ms);

/* Stops CR (started, done not called yet): its socket is closed, done is not called. */
void cancelreq_abort(struct cancelreq *cr);

#endif
