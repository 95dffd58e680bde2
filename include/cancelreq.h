/* The CancelRequest pgcoro sends itself, for a server whose BackendKeyData it knows (a
 * connection libpq did not make: libpq keeps the secret key of its own to PQcancel). */
#ifndef PGCORO_CANCELREQ_H
#define PGCORO_CANCELREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Connects to ADDR (LEN bytes: the address the server's connection is connected to, a
 * TCP or unix socket), sends a CancelRequest for PID and KEY, and waits for the server to
 * close that connection, as libpq's PQcancel does (then the cancel has been handled, and
 * the query in flight is the one it reached). Each step waits at most TIMEOUT_MS (<= 0:
 * 10 s). Blocking: for an executor thread; touches nothing but its arguments. False, with
 * the reason in ERR (ERRLEN bytes), when the request could not be delivered. */
bool cancelreq_send(const struct sockaddr *addr, socklen_t len, uint32_t pid, uint32_t key,
		    int timeout_ms, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
