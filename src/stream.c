/* Owns the socket I/O of clients and servers (see stream.h): reads into the shared
 * scratch buffer (or, when input is pending, onto the end of the stream's own buffer),
 * keeps what the owner leaves unconsumed, writes at once from the caller's bytes and
 * queues only what the kernel refuses. The EV_READ registration stays for the
 * connection's life except while the owner pauses it or the input is over read_high. */
#include "stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/util.h>


#define READ_ROOM 16384 /* least room a read onto pending input gets */

/* The loop thread is never cancelled, so its socket calls go to the kernel directly:
 * glibc's read/send are cancellation points and, in a process with threads (the
 * executor), wrap every call in cancellation bookkeeping that costs about as much as the
 * rest of a relayed message's handling. */
static ssize_t sys_read(int fd, void *buf, size_t n) { return syscall(SYS_read, fd, buf, n); }

static ssize_t sys_send(int fd, const void *buf, size_t n)
{
	return syscall(SYS_sendto, fd, buf, n, MSG_NOSIGNAL, NULL, 0);
}

static uint8_t scratch[STREAM_SCRATCH];
static const struct stream *scratch_user; /* the stream whose on_read has it, or NULL */

#define KEEP_MIN 4096   /* least size of a stream's input buffer */

static void sbuf_free(struct sbuf *b)
{
	free(b->data);
	*b = (struct sbuf){0};
}

/* Makes room for ROOM more bytes after the data of B (moving the data to the front or
 * growing). False if out of memory. */
static bool sbuf_reserve(struct sbuf *b, size_t room)
{
	if ((size_t)b->cap - b->off - b->len >= room)
		return true;
	if (b->off && (size_t)b->cap - b->len >= room) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
		return true;
	}
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->len < room)
		cap *= 2;
	if (cap > UINT32_MAX)
		return false;
	uint8_t *p = malloc(cap);
	if (!p)
		return false;
	if (b->len)
		memcpy(p, b->data + b->off, b->len);
	free(b->data);
	b->data = p;
	b->off = 0;
	b->cap = (uint32_t)cap;
	return true;
}

static bool sbuf_append(struct sbuf *b, const void *data, size_t len)
{
	if (!sbuf_reserve(b, len))
		return false;
	memcpy(b->data + b->off + b->len, data, len);
	b->len += (uint32_t)len;
	return true;
}

static void update_read(struct stream *st)
{
	bool want = st->want_read && !st->eof && st->ilen < STREAM_READ_HIGH;
	if (want && !st->rev_added) {
		event_add(&st->rev, NULL);
		st->rev_added = true;
	} else if (!want && st->rev_added) {
		event_del(&st->rev);
		st->rev_added = false;
	}
}

static void write_cb(evutil_socket_t fd, short what, void *arg);

/* Arms EV_WRITE (ACTIVATE: run the callback from the loop now, to report an error).
 * If the event cannot be created the stream is marked broken and the next read
 * reports it. */
static void wev_arm(struct stream *st, bool activate)
{
	if (!st->wev) {
		st->wev = event_new(event_get_base(&st->rev), st->fd, EV_WRITE, write_cb, st);
		if (!st->wev) {
			st->err = ENOMEM;
			return;
		}
	}
	if (activate)
		event_active(st->wev, EV_WRITE, 0);
	else
		event_add(st->wev, NULL);
	st->wev_added = true;
}

/* A broken stream: ERR is kept and on_event runs from the loop. */
static void fail_later(struct stream *st, int err)
{
	if (!st->err)
		st->err = err;
	if (!st->wev_added)
		wev_arm(st, true);
}

static void drop_input(struct stream *st)
{
	free(st->ibuf);
	st->ibuf = NULL;
	st->icap = 0;
	st->ip = NULL;
	st->ilen = 0;
}

/* Consumed input: an emptied buffer is freed. */
static void drop_consumed(struct stream *st)
{
	if (st->ilen == 0 && (st->ibuf || st->ip))
		drop_input(st);
}

/* After on_read: what the owner left unconsumed moves out of the scratch buffer (when
 * FROM_SCRATCH) into the stream's own buffer; in ibuf it stays where it is (its consumed
 * front is reclaimed by the next read). False if out of memory. */
static bool keep_input(struct stream *st, bool from_scratch)
{
	drop_consumed(st);
	if (st->ilen == 0 || !from_scratch)
		return true;
	uint32_t cap = st->ilen < KEEP_MIN ? KEEP_MIN : st->ilen;
	uint8_t *b = malloc(cap);
	if (!b)
		return false;
	memcpy(b, st->ip, st->ilen);
	free(st->ibuf); /* NULL: the scratch buffer is used only when nothing is pending */
	st->ibuf = b;
	st->icap = cap;
	st->ip = b;
	return true;
}

/* Input pending in ibuf: moves it to the front and makes room for a read after it.
 * False if out of memory. */
static bool make_room(struct stream *st)
{
	if (st->ip != st->ibuf) {
		memmove(st->ibuf, st->ip, st->ilen);
		st->ip = st->ibuf;
	}
	if (st->icap - st->ilen >= READ_ROOM)
		return true;
	size_t cap = (size_t)st->icap * 2;
	while (cap - st->ilen < READ_ROOM)
		cap *= 2;
	if (cap > UINT32_MAX)
		return false;
	uint8_t *b = realloc(st->ibuf, cap);
	if (!b)
		return false;
	st->ibuf = b;
	st->ip = b;
	st->icap = (uint32_t)cap;
	return true;
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *st = arg;
	if (st->err) {
		st->ops->on_event(st, STREAM_ERROR, st->arg);
		return;
	}
	uint8_t *dst = scratch;
	size_t room = sizeof(scratch);
	if (st->ilen) {
		/* input pending (in ibuf: a read callback's leftovers were kept): read onto its
		 * end, so it stays contiguous */
		if (!make_room(st)) {
			st->err = ENOMEM;
			st->ops->on_event(st, STREAM_ERROR, st->arg);
			return;
		}
		dst = st->ibuf + st->ilen;
		room = st->icap - st->ilen;
	}
	ssize_t n = sys_read(st->fd, dst, room);
	if (n > 0) {
		bool from_scratch = dst == scratch;
		if (from_scratch) {
			st->ip = scratch;
			scratch_user = st;
		}
		st->ilen += (uint32_t)n;
		st->ops->on_read(st, st->arg);
		scratch_user = NULL;
		if (!keep_input(st, from_scratch)) {
			st->ilen = 0;
			st->ip = NULL;
			fail_later(st, ENOMEM);
			return;
		}
		update_read(st);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n == 0) {
		st->eof = true;
		update_read(st);
		st->ops->on_event(st, STREAM_EOF, st->arg);
	} else {
		st->err = errno;
		st->eof = true;
		update_read(st);
		st->ops->on_event(st, STREAM_ERROR, st->arg);
	}
}

/* Writes as much of the queue as the kernel takes. Returns false on a hard error
 * (st->err set). */
static bool write_queue(struct stream *st)
{
	while (st->out.len > 0) {
		ssize_t n = sys_send(st->fd, st->out.data + st->out.off, st->out.len);
		if (n > 0) {
			st->out.off += (uint32_t)n;
			st->out.len -= (uint32_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return true;
		st->err = n < 0 ? errno : EPIPE;
		return false;
	}
	sbuf_free(&st->out);
	return true;
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *st = arg;
	st->wev_added = false;
	if (st->err || !write_queue(st)) {
		st->ops->on_event(st, STREAM_ERROR, st->arg);
		return;
	}
	if (st->out.len > 0)
		wev_arm(st, false);
	if (st->out.len <= STREAM_DRAIN_LOW)
		st->ops->on_drain(st, st->arg);
}

void stream_flush(struct stream *st)
{
	if (st->err || st->out.len == 0 || st->wev_added)
		return;
	if (!write_queue(st)) {
		wev_arm(st, true); /* reported from the loop */
		return;
	}
	if (st->out.len > 0)
		wev_arm(st, false);
}

bool stream_queue(struct stream *st, const void *data, size_t len)
{
	if (sbuf_append(&st->out, data, len))
		return true;
	fail_later(st, ENOMEM);
	return false;
}

void stream_send(struct stream *st, const void *data, size_t len)
{
	if (st->err)
		return;
	if (st->out.len > 0 || st->wev_added) {
		if (stream_queue(st, data, len))
			stream_flush(st);
		return;
	}
	const uint8_t *p = data;
	while (len > 0) {
		ssize_t n = sys_send(st->fd, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			break;
		fail_later(st, n < 0 ? errno : EPIPE);
		return;
	}
	if (len > 0 && stream_queue(st, p, len))
		wev_arm(st, false);
}

void stream_set_read(struct stream *st, bool on)
{
	st->want_read = on;
	update_read(st);
}

void stream_input_consumed(struct stream *st)
{
	if (scratch_user == st)
		return; /* the read callback's end keeps the rest */
	drop_consumed(st);
	if (!st->rev_added && st->want_read)
		update_read(st);
}

void stream_init(struct stream *st, struct event_base *base, int fd, bool close_fd,
		 const struct stream_ops *ops, void *arg)
{
	*st = (struct stream){.fd = fd, .close_fd = close_fd, .ops = ops, .arg = arg};
	event_assign(&st->rev, base, fd, EV_READ | EV_PERSIST, read_cb, st);
}

void stream_free(struct stream *st)
{
	if (!st->ops)
		return;
	event_del(&st->rev);
	if (st->wev)
		event_free(st->wev);
	st->wev = NULL;
	if (scratch_user == st)
		scratch_user = NULL;
	drop_input(st);
	sbuf_free(&st->out);
	if (st->close_fd && st->fd >= 0)
		close(st->fd);
	st->fd = -1;
	st->ops = NULL;
}
