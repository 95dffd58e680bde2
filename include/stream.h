/* A non-blocking socket with an input and an output evbuffer: the bytes layer under the
 * relay. It knows nothing of PostgreSQL. Reading keeps one persistent EV_READ
 * registration (removed only while paused); writing is tried at once and EV_WRITE is
 * armed only when the kernel would block, so a request/response costs one read and one
 * write per side and no epoll_ctl. */
#ifndef PGCORO_STREAM_H
#define PGCORO_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#define STREAM_READ_HIGH (256 * 1024) /* default read_high */
#define STREAM_DRAIN_LOW (64 * 1024)  /* default drain_low */

struct evbuffer;
struct stream;

enum stream_event {
	STREAM_EOF = 1,   /* the peer closed */
	STREAM_ERROR = 2, /* a socket error (errno kept in st->err) */
};

struct stream_ops {
	void (*on_read)(struct stream *st, void *arg);  /* new input */
	void (*on_drain)(struct stream *st, void *arg); /* output went down to the low mark */
	void (*on_event)(struct stream *st, enum stream_event ev, void *arg);
};

struct stream {
	int fd;
	bool close_fd;        /* close the socket in stream_free */
	bool want_read;       /* the owner wants input */
	bool rev_added;       /* EV_READ registered */
	bool wev_added;       /* EV_WRITE armed (or activated) */
	bool eof;
	int err;
	size_t read_high;     /* reading pauses while the input holds this much */
	size_t drain_low;     /* on_drain once the output is down to this */
	struct evbuffer *in, *out;
	const struct stream_ops *ops;
	void *arg;
	struct event rev;
	struct event *wev;    /* created the first time a write would block: most streams
	                       * never need it, and an idle client is smaller without it */
	struct event_base *base;
};

/* Sets ST up on FD, which must already be non-blocking (libevent's listener accepts with
 * SOCK_NONBLOCK; libpq's sockets are). Reading starts disabled. False on allocation
 * failure (ST is then clean; FD untouched). */
bool stream_init(struct stream *st, struct event_base *base, int fd, bool close_fd,
		 const struct stream_ops *ops, void *arg) __attribute__((warn_unused_result));

/* Unregisters, frees the buffers and closes the socket if close_fd. Never called from
 * ST's own callbacks by the owners (they reap later). */
void stream_free(struct stream *st);

/* Enables or disables reading. */
void stream_set_read(struct stream *st, bool on);

/* Re-registers reading if it was paused by read_high and the input has room again. Call
 * after consuming input. */
void stream_input_consumed(struct stream *st);

/* Writes what it can of the output now; arms EV_WRITE for the rest. A write error is
 * reported through on_event from the loop (never from inside this call). */
void stream_flush(struct stream *st);

/* Appends DATA and flushes. */
void stream_write(struct stream *st, const void *data, size_t len);

#endif
