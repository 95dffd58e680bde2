/* A non-blocking socket with contiguous input and an output queue: the bytes layer under
 * the relay. It knows nothing of PostgreSQL.
 *
 * Input: a read goes into one scratch buffer shared by every stream (the loop is one
 * thread and reads one socket at a time), and the owner's on_read sees it in place
 * through stream_input(); only what the owner leaves unconsumed (a message's first
 * bytes, input held while paused) is copied into the stream's own buffer. So a stream
 * holds no input memory while it has nothing pending, and a request whose messages
 * arrive whole is never copied on the way in.
 * Output: stream_send() writes at once from the caller's bytes; only what the kernel
 * does not take is queued, and EV_WRITE is armed then. Reading keeps one persistent
 * EV_READ registration (removed only while paused), so a request/response costs one
 * read and one write per side and no epoll_ctl.
 * TLS: a stream may carry an SSL handle (its own after stream_tls_accept, or libpq's
 * after stream_tls_attach); then reads are SSL_read into the same buffers and writes
 * SSL_write from the caller's bytes, with the same queueing. A plain stream pays one
 * predictable branch per read and per write for this. */
#ifndef PGCORO_STREAM_H
#define PGCORO_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/ssl.h>

#define STREAM_READ_HIGH (256 * 1024) /* reading pauses while this much input is unconsumed */
#define STREAM_OUT_HIGH (256 * 1024)  /* a bounded stream's reading pauses while this much
                                       * output is queued (stream_bound_output) */
#define STREAM_DRAIN_LOW (64 * 1024)  /* on_drain once the output is down to this */
#define STREAM_SCRATCH (64 * 1024)    /* the shared read buffer: most one read takes */

struct stream;

enum stream_event {
	STREAM_EOF = 1,   /* the peer closed */
	STREAM_ERROR = 2, /* a socket or TLS error (errno kept in st->err, EPROTO for TLS;
	                   * stream_error_string says more) */
	STREAM_TLS_READY = 3, /* stream_tls_accept's handshake is done */
};

struct stream_ops {
	void (*on_read)(struct stream *st, void *arg);  /* new input */
	void (*on_drain)(struct stream *st, void *arg); /* output went down to the low mark */
	void (*on_event)(struct stream *st, enum stream_event ev, void *arg);
};

/* Output bytes the stream owns: data[off, off + len). Allocated only while it holds
 * bytes. */
struct sbuf {
	uint8_t *data;
	uint32_t off, len, cap;
};

/* A stream's TLS state. */
struct stream_tls {
	SSL *ssl;
	unsigned long err;  /* the OpenSSL error that broke the stream, or 0 */
	bool owned;         /* SSL is the stream's (freed with it), not libpq's */
	bool handshake;     /* the handshake is in progress */
	bool more;          /* SSL may hold more input than the last read took */
	bool read_blocked;  /* SSL_read wants the socket writable (EV_WRITE re-reads) */
};

struct stream {
	int fd;
	bool close_fd;        /* close the socket in stream_free */
	bool want_read;       /* the owner wants input */
	bool rev_added;       /* EV_READ registered */
	bool wev_added;       /* EV_WRITE armed (or activated) */
	bool eof;
	bool out_bound;       /* reading pauses while STREAM_OUT_HIGH of output is queued */
	int err;
	struct stream_tls *tls; /* NULL: a plain socket (allocated only for TLS, so a plain
	                         * stream is one pointer larger) */
	uint32_t ilen;        /* the unconsumed input: ip[0, ilen), in the scratch buffer */
	uint32_t send_max;    /* most bytes one send carries; 0: no limit (stream_limit_send) */
	const uint8_t *ip;    /* during on_read, else in ibuf */
	uint8_t *ibuf;        /* input kept between reads (allocated only while some is) */
	uint32_t icap;        /* size of ibuf */
	struct sbuf out;      /* output the kernel has not taken yet */
	const struct stream_ops *ops; /* NULL until stream_init */
	void *arg;
	struct event rev;
	struct event *wev;    /* created the first time a write would block: most streams
	                       * never need it, and an idle client is smaller without it */
};

/* Sets ST up on FD, which must already be non-blocking (libevent's listener accepts with
 * SOCK_NONBLOCK; libpq's sockets are). Reading starts disabled. Allocates nothing. */
void stream_init(struct stream *st, struct event_base *base, int fd, bool close_fd,
		 const struct stream_ops *ops, void *arg);

/* True once stream_init ran and until stream_free. */
static inline bool stream_is_open(const struct stream *st) { return st->ops != NULL; }

/* Unregisters, frees the buffers and closes the socket if close_fd. Never called from
 * ST's own callbacks by the owners (they reap later). Safe on a stream never opened. */
void stream_free(struct stream *st);

/* Starts the server side of a TLS handshake on ST with CTX (a reference is taken);
 * PREFIX holds bytes of the handshake already read from the socket (direct TLS: the
 * ClientHello's start), LEN may be 0. The handshake runs on the loop; on_event gets
 * STREAM_TLS_READY when it is done (then every byte goes through TLS) or STREAM_ERROR.
 * Output must be empty. False if out of memory (nothing changed). */
bool stream_tls_accept(struct stream *st, SSL_CTX *ctx, const void *prefix, size_t len)
	__attribute__((warn_unused_result));

/* From now on ST reads and writes through SSL, an established connection (input SSL
 * already holds is read first). OWNED: ST's from now on, freed with it (a handle pgcoro
 * made); else someone else's (libpq's PQsslStruct), not freed with ST. False if out of
 * memory (nothing changed). */
bool stream_tls_attach(struct stream *st, SSL *ssl, bool owned)
	__attribute__((warn_unused_result));

/* ST's SSL handle, or NULL for a plain stream (or one whose TLS handshake has not
 * begun). */
static inline SSL *stream_ssl(const struct stream *st) { return st->tls ? st->tls->ssl : NULL; }

/* True once ST's own TLS handshake is done (stream_tls_accept), or for an attached
 * handle. */
static inline bool stream_tls_ready(const struct stream *st)
{
	return st->tls && !st->tls->handshake;
}

/* What broke ST (the TLS error and certificate verification result, else the errno),
 * for a log line: a static buffer. */
const char *stream_error_string(const struct stream *st);

/* From now on ST stops reading while STREAM_OUT_HIGH bytes of output wait for the peer,
 * and reads again once they have gone below it: a peer that does not read its answers
 * cannot make more of them (a client's stream; PostgreSQL stops reading a client that
 * does not read, too). Output made without input (the relay from a server, notifications)
 * is bounded by its producers, which look at stream_output_len. */
static inline void stream_bound_output(struct stream *st) { st->out_bound = true; }

/* True when ST's output has reached its bound (STREAM_OUT_HIGH): producers of output
 * for it wait for its on_drain. */
static inline bool stream_output_full(const struct stream *st)
{
	return st->out.len >= STREAM_OUT_HIGH;
}

/* From now on each send on ST carries at most N bytes (0: no limit), for a socket whose
 * send buffer was made small (tcp_socket_buffer): the kernel takes one write larger than
 * the buffer whole, as one segment, then refuses the next until the peer acknowledges it,
 * which a peer holding one segment does only at its delayed-ACK timer (~40 ms per write:
 * a 64 MB base backup took 40 s instead of 3). Smaller writes keep two segments in flight,
 * which the peer acknowledges at once. */
static inline void stream_limit_send(struct stream *st, uint32_t n) { st->send_max = n; }

/* Enables or disables reading. */
void stream_set_read(struct stream *st, bool on);

/* Reads now what is already there, as the read callback would on its next wake-up
 * (nothing happens if nothing is there or reading is off). For a just-accepted socket,
 * whose first packet usually came with the connection. May call the owner's callbacks. */
void stream_read_now(struct stream *st);

/* The unconsumed input, contiguous; *LEN gets its length. Valid until the next
 * stream_consume / stream_input_consumed on ST or the end of the read callback. */
static inline const uint8_t *stream_input(const struct stream *st, size_t *len)
{
	*len = st->ilen;
	return st->ip;
}

/* Bytes of unconsumed input. */
static inline size_t stream_input_len(const struct stream *st) { return st->ilen; }

/* Consuming more than the input holds is a bug of the caller: it ends the process with
 * a message (never a wrapped length and a copy past the buffer). */
__attribute__((noreturn, cold)) void stream_overrun(const struct stream *st, size_t n);

/* Marks the first N bytes of the input consumed (N <= its length). For the relay, which
 * passes runs of bytes that may end inside a message; whatever pgcoro handles itself is
 * taken whole with stream_take. */
static inline void stream_consume(struct stream *st, size_t n)
{
	if (__builtin_expect(n > st->ilen, 0))
		stream_overrun(st, n);
	st->ip += n;
	st->ilen -= (uint32_t)n;
}

/* Replaces the OLD_LEN bytes at OFF in the unconsumed input by the LEN bytes at BYTES (a
 * message pgcoro rewrote before passing it on); what is before and after stays. Valid in
 * and out of ST's read callback; the input moves (stream_input again). False if out of
 * memory (nothing changed). */
bool stream_input_replace(struct stream *st, size_t off, size_t old_len, const void *bytes,
			  size_t len) __attribute__((warn_unused_result));

/* Takes the N bytes at AT off the input: AT must be the head of the input and N at most
 * its length (a whole message framed there by proto_next), else stream_overrun. */
static inline void stream_take(struct stream *st, const uint8_t *at, size_t n)
{
	if (__builtin_expect(at != st->ip, 0))
		stream_overrun(st, n);
	stream_consume(st, n);
}

/* After consuming input: outside ST's own read callback, frees the input buffer once
 * empty and re-registers reading if it was paused by STREAM_READ_HIGH (inside it, the
 * callback's end does both). */
void stream_input_consumed(struct stream *st);

/* Bytes queued for writing. */
static inline size_t stream_output_len(const struct stream *st) { return st->out.len; }

/* Writes DATA now as far as the kernel takes it; queues the rest and arms EV_WRITE.
 * Errors (a failed write, no memory) are reported through on_event from the loop, never
 * from inside this call. */
void stream_send(struct stream *st, const void *data, size_t len);

/* Queues DATA without writing (a later stream_flush or stream_send sends it with what
 * follows, in one write). False if out of memory (reported as for stream_send). */
bool stream_queue(struct stream *st, const void *data, size_t len);

/* Writes what it can of the queued output now; arms EV_WRITE for the rest. */
void stream_flush(struct stream *st);

/* Frees the input buffers kept for reuse (at exit). */
void stream_cache_free(void);

#endif
