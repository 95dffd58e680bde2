/* Owns the socket I/O of clients and servers: reads into an evbuffer with readv into
 * reserved space (no FIONREAD per read), writes with writev at once and waits for
 * EV_WRITE only when the kernel's buffer is full. The EV_READ registration stays for the
 * connection's life except while the owner pauses it or the input is over read_high. */
#include "stream.h"

#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/util.h>

#define READ_CHUNK 16384

static void update_read(struct stream *st)
{
	bool want = st->want_read && !st->eof && evbuffer_get_length(st->in) < st->read_high;
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
		st->wev = event_new(st->base, st->fd, EV_WRITE, write_cb, st);
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

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *st = arg;
	if (st->err) {
		st->ops->on_event(st, STREAM_ERROR, st->arg);
		return;
	}
	struct evbuffer_iovec vec[2];
	int nvec = evbuffer_reserve_space(st->in, READ_CHUNK, vec, 2);
	if (nvec <= 0) {
		st->err = ENOMEM;
		st->ops->on_event(st, STREAM_ERROR, st->arg);
		return;
	}
	struct iovec iov[2];
	for (int i = 0; i < nvec; i++) {
		iov[i].iov_base = vec[i].iov_base;
		iov[i].iov_len = vec[i].iov_len;
	}
	ssize_t n = readv(st->fd, iov, nvec);
	if (n > 0) {
		size_t left = (size_t)n;
		for (int i = 0; i < nvec; i++) {
			size_t take = left < vec[i].iov_len ? left : vec[i].iov_len;
			vec[i].iov_len = take;
			left -= take;
		}
		evbuffer_commit_space(st->in, vec, nvec);
		st->ops->on_read(st, st->arg);
		update_read(st);
		return;
	}
	evbuffer_commit_space(st->in, vec, 0);
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

/* Writes as much as the kernel takes. Returns false on a hard error (st->err set). */
static bool write_now(struct stream *st)
{
	while (evbuffer_get_length(st->out) > 0) {
		int n = evbuffer_write(st->out, st->fd);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			break;
		st->err = n < 0 ? errno : EPIPE;
		return false;
	}
	return true;
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *st = arg;
	st->wev_added = false;
	if (st->err || !write_now(st)) {
		st->ops->on_event(st, STREAM_ERROR, st->arg);
		return;
	}
	if (evbuffer_get_length(st->out) > 0)
		wev_arm(st, false);
	if (evbuffer_get_length(st->out) <= st->drain_low)
		st->ops->on_drain(st, st->arg);
}

void stream_flush(struct stream *st)
{
	if (st->err || evbuffer_get_length(st->out) == 0 || st->wev_added)
		return;
	if (!write_now(st)) {
		wev_arm(st, true); /* reported from the loop */
		return;
	}
	if (evbuffer_get_length(st->out) > 0)
		wev_arm(st, false);
}

void stream_write(struct stream *st, const void *data, size_t len)
{
	if (evbuffer_add(st->out, data, len) != 0) {
		st->err = ENOMEM;
		wev_arm(st, true);
		return;
	}
	stream_flush(st);
}

void stream_set_read(struct stream *st, bool on)
{
	st->want_read = on;
	update_read(st);
}

void stream_input_consumed(struct stream *st)
{
	if (!st->rev_added && st->want_read)
		update_read(st);
}

bool stream_init(struct stream *st, struct event_base *base, int fd, bool close_fd,
		 const struct stream_ops *ops, void *arg)
{
	*st = (struct stream){.fd = fd, .close_fd = close_fd, .ops = ops, .arg = arg, .base = base,
			      .read_high = STREAM_READ_HIGH, .drain_low = STREAM_DRAIN_LOW};
	st->in = evbuffer_new();
	st->out = evbuffer_new();
	if (!st->in || !st->out) {
		if (st->in)
			evbuffer_free(st->in);
		if (st->out)
			evbuffer_free(st->out);
		st->in = st->out = NULL;
		return false;
	}
	event_assign(&st->rev, base, fd, EV_READ | EV_PERSIST, read_cb, st);
	return true;
}

void stream_free(struct stream *st)
{
	if (!st->in)
		return;
	event_del(&st->rev);
	if (st->wev)
		event_free(st->wev);
	st->wev = NULL;
	evbuffer_free(st->in);
	evbuffer_free(st->out);
	st->in = st->out = NULL;
	if (st->close_fd && st->fd >= 0)
		close(st->fd);
	st->fd = -1;
}
