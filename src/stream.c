/* Owns the socket I/O of clients and servers (see stream.h): reads into the shared
 * scratch buffer (or, when input is pending, onto the end of the stream's own buffer),
 * keeps what the owner leaves unconsumed, writes at once from the caller's bytes and
 * queues only what the kernel refuses. The EV_READ registration stays for the
 * connection's life except while the owner pauses it or the input is over read_high.
 * TLS is a mode of the same stream (an SSL handle): the handshake (server side, on the
 * loop), SSL_read into the same buffers, SSL_write from the caller's bytes, and input
 * SSL holds beyond one read is drained by re-activating the read event. */
#include "stream.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "clock.h"
#include "log.h"

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

static void wev_arm(struct stream *st, bool activate);

/* ---- TLS ----------------------------------------------------------------------------- */

/* An OpenSSL failure of SSL_* call result R on ST: EAGAIN for want-read/write, 0 for
 * the end of the stream (close_notify, or the peer closing without one), else -1 with
 * errno (EPROTO for a TLS error, kept in tls->err). */
static ssize_t tls_fail(struct stream *st, int r)
{
	int e = SSL_get_error(st->tls->ssl, r);
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0) {
			if (errno == 0 || r == 0)
				return 0;
			return -1;
		}
		break;
	default:
		break;
	}
	unsigned long le = ERR_peek_last_error();
	if (ERR_GET_REASON(le) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
		ERR_clear_error();
		return 0;
	}
	st->tls->err = le ? le : (unsigned long)-1;
	ERR_clear_error();
	errno = EPROTO;
	return -1;
}

/* SSL_read until ROOM is full or SSL wants the socket; tls->more says whether SSL may
 * still hold input (so the read event is re-activated). */
static ssize_t tls_read(struct stream *st, uint8_t *dst, size_t room)
{
	struct stream_tls *t = st->tls;
	size_t got = 0;
	t->more = false;
	ERR_clear_error();
	errno = 0;
	while (got < room) {
		size_t want = room - got;
		int r = SSL_read(t->ssl, dst + got, want > INT_MAX ? INT_MAX : (int)want);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (got > 0) {
			/* what ended this read (the peer's end, an error) is met again next time */
			if (SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ)
				t->more = true;
			ERR_clear_error();
			return (ssize_t)got;
		}
		if (SSL_get_error(t->ssl, r) == SSL_ERROR_WANT_WRITE) {
			t->read_blocked = true;
			if (!st->wev_added)
				wev_arm(st, false);
		}
		return tls_fail(st, r);
	}
	t->more = true;
	return (ssize_t)got;
}

/* SSL_write of what the kernel takes (partial writes are enabled on every SSL a stream
 * uses, and a retry may come from a moved buffer: the queue). */
static ssize_t tls_send(struct stream *st, const void *p, size_t n)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_write(st->tls->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
	if (r > 0)
		return r;
	ssize_t f = tls_fail(st, r);
	if (f == 0) {
		errno = EPIPE;
		return -1;
	}
	return f;
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

static void update_read_change(struct stream *st, bool want);

/* Registers or removes EV_READ as the owner's wish, the end of input and read_high
 * decide; most calls find it as it should be. */
static inline void update_read(struct stream *st)
{
	bool want = st->want_read && !st->eof && st->ilen < STREAM_READ_HIGH &&
		    !(st->out_bound && st->out.len >= STREAM_OUT_HIGH);
	if (want != st->rev_added)
		update_read_change(st, want);
}

/* WANT differs from st->rev_added: registers or removes EV_READ. */
static void update_read_change(struct stream *st, bool want)
{
	if (want) {
		event_add(&st->rev, NULL);
		if (st->tls && st->tls->more)
			event_active(&st->rev, EV_READ, 0); /* SSL kept input while paused */
	} else {
		event_del(&st->rev);
	}
	st->rev_added = want;
}

static void write_cb(evutil_socket_t fd, short what, void *arg);

static inline ssize_t io_send(struct stream *st, const void *p, size_t n)
{
	if (__builtin_expect(st->send_max != 0, 0) && n > st->send_max)
		n = st->send_max;
	if (__builtin_expect(st->tls != NULL, 0))
		return tls_send(st, p, n);
	return sys_send(st->fd, p, n);
}

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

/* Input buffers of KEEP_MIN bytes are kept for reuse (at most IBUF_CACHE of them), so a
 * client that waits for a server with its request unread costs no malloc/free pair. */
#define IBUF_CACHE 256
static uint8_t *ibuf_cache[IBUF_CACHE];
static int ibuf_cached;

static uint8_t *ibuf_get(uint32_t cap)
{
	if (cap == KEEP_MIN && ibuf_cached > 0)
		return ibuf_cache[--ibuf_cached];
	return malloc(cap);
}

static void ibuf_put(uint8_t *b, uint32_t cap)
{
	if (b && cap == KEEP_MIN && ibuf_cached < IBUF_CACHE)
		ibuf_cache[ibuf_cached++] = b;
	else
		free(b);
}

void stream_cache_free(void)
{
	while (ibuf_cached > 0)
		free(ibuf_cache[--ibuf_cached]);
}

static void drop_input(struct stream *st)
{
	if (st->ibuf) /* usually none: input read into the scratch buffer was all consumed */
		ibuf_put(st->ibuf, st->icap);
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
static inline __attribute__((always_inline)) bool keep_input(struct stream *st, bool from_scratch)
{
	if (st->ilen == 0 && from_scratch && !st->ibuf) {
		st->ip = NULL; /* the usual end: all of a read consumed in place */
		return true;
	}
	drop_consumed(st);
	if (st->ilen == 0 || !from_scratch)
		return true;
	uint32_t cap = st->ilen < KEEP_MIN ? KEEP_MIN : st->ilen;
	uint8_t *b = ibuf_get(cap);
	if (!b)
		return false;
	memcpy(b, st->ip, st->ilen);
	ibuf_put(st->ibuf, st->icap); /* NULL: the scratch buffer is used only when nothing is pending */
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

bool stream_input_replace(struct stream *st, size_t off, size_t old_len, const void *bytes,
			  size_t len)
{
	if (off > st->ilen || old_len > st->ilen - off)
		stream_overrun(st, off + old_len);
	size_t rest = st->ilen - off - old_len, need = off + len + rest;
	if (need > UINT32_MAX / 2)
		return false;
	uint32_t cap = need < KEEP_MIN ? KEEP_MIN : (uint32_t)need;
	uint8_t *b = ibuf_get(cap);
	if (!b)
		return false;
	memcpy(b, st->ip, off);
	memcpy(b + off, bytes, len);
	memcpy(b + off + len, st->ip + off + old_len, rest);
	/* the scratch buffer (inside a read callback) is not ibuf: keep_input copies from ip,
	 * which is now B, and frees B after */
	ibuf_put(st->ibuf, st->icap);
	st->ibuf = b;
	st->icap = cap;
	st->ip = b;
	st->ilen = (uint32_t)need;
	return true;
}

static void tls_handshake(struct stream *st);

/* One read and its hand-over to the owner; TLS is a constant in each of the two copies
 * read_cb makes, so the plain path carries no TLS test. */
static inline __attribute__((always_inline)) void read_input(struct stream *st, bool tls)
{
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
	ssize_t n = tls ? tls_read(st, dst, room) : sys_read(st->fd, dst, room);
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
		if (tls && st->tls && st->tls->more && st->rev_added)
			event_active(&st->rev, EV_READ, 0); /* SSL holds more: read it next */
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

/* Each socket callback is a clock turn (clock.h): its handlers share one reading. */
static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *st = arg;
	clock_turn_begin();
	if (st->err)
		st->ops->on_event(st, STREAM_ERROR, st->arg);
	else if (__builtin_expect(st->tls == NULL, 1))
		read_input(st, false);
	else if (st->tls->handshake)
		tls_handshake(st);
	else
		read_input(st, true);
	clock_turn_end();
}

/* Writes as much of the queue as the kernel takes. Returns false on a hard error
 * (st->err set). */
static bool write_queue(struct stream *st)
{
	while (st->out.len > 0) {
		ssize_t n = io_send(st, st->out.data + st->out.off, st->out.len);
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

static void on_writable(struct stream *st);

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
	clock_turn_begin();
	on_writable(arg);
	clock_turn_end();
}

static void on_writable(struct stream *st)
{
	st->wev_added = false;
	if (__builtin_expect(st->tls != NULL, 0) && !st->err) {
		if (st->tls->handshake) {
			tls_handshake(st);
			return;
		}
		if (st->tls->read_blocked) {
			st->tls->read_blocked = false;
			if (st->rev_added)
				event_active(&st->rev, EV_READ, 0);
		}
	}
	if (st->err || !write_queue(st)) {
		st->ops->on_event(st, STREAM_ERROR, st->arg);
		return;
	}
	if (st->out_bound)
		update_read(st); /* below the output bound again: reading resumes */
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
	if (sbuf_append(&st->out, data, len)) {
		if (st->out_bound)
			update_read(st); /* at the output bound: reading pauses */
		return true;
	}
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
		ssize_t n = io_send(st, p, len);
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

void stream_overrun(const struct stream *st, size_t n)
{
	fatal("stream fd %d: %zu bytes taken off %u of input (not at its head, or more than "
	      "there is)",
	      st->fd, n, st->ilen);
}

void stream_read_now(struct stream *st)
{
	if (st->rev_added)
		read_cb(st->fd, EV_READ, st);
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
	if (st->tls && st->tls->owned) {
		if (!st->tls->handshake && !st->err)
			(void)SSL_shutdown(st->tls->ssl); /* close_notify, if the socket takes it */
		SSL_free(st->tls->ssl);
		ERR_clear_error();
	}
	free(st->tls);
	st->tls = NULL;
	drop_input(st);
	sbuf_free(&st->out);
	if (st->close_fd && st->fd >= 0)
		close(st->fd);
	st->fd = -1;
	st->ops = NULL;
}

/* ---- TLS set-up ---------------------------------------------------------------------- */

/* One step of the server-side handshake; the read and write events call it until it
 * ends. */
static void tls_handshake(struct stream *st)
{
	SSL *ssl = st->tls->ssl;
	int r;
	for (;;) {
		ERR_clear_error();
		errno = 0;
		r = SSL_do_handshake(ssl);
		if (r == 1) {
			st->tls->handshake = false;
			st->ops->on_event(st, STREAM_TLS_READY, st->arg);
			if (st->rev_added && !st->err)
				event_active(&st->rev, EV_READ, 0); /* input SSL already holds */
			return;
		}
		int e = SSL_get_error(ssl, r);
		if (e == SSL_ERROR_WANT_READ) {
			BIO *rb = SSL_get_rbio(ssl);
			if (BIO_method_type(rb) == BIO_TYPE_MEM && BIO_ctrl_pending(rb) == 0) {
				/* the bytes read before the handshake began are used up: the rest
				 * comes from the socket */
				BIO *sb = BIO_new_socket(st->fd, BIO_NOCLOSE);
				if (!sb) {
					st->err = ENOMEM;
					goto failed;
				}
				SSL_set0_rbio(ssl, sb);
				continue;
			}
			return; /* the persistent read event calls again */
		}
		if (e == SSL_ERROR_WANT_WRITE) {
			if (!st->wev_added)
				wev_arm(st, false);
			return;
		}
		break;
	}
	st->err = tls_fail(st, r) == 0 ? ECONNRESET : errno;
	if (!st->err || st->err == EAGAIN)
		st->err = EPROTO;
failed:
	st->eof = true;
	update_read(st);
	st->ops->on_event(st, STREAM_ERROR, st->arg);
}

bool stream_tls_accept(struct stream *st, SSL_CTX *ctx, const void *prefix, size_t len)
{
	struct stream_tls *t = calloc(1, sizeof(*t));
	SSL *ssl = t ? SSL_new(ctx) : NULL;
	if (!ssl)
		goto fail;
	if (len > 0) {
		BIO *sock = BIO_new_socket(st->fd, BIO_NOCLOSE);
		BIO *rb = BIO_new(BIO_s_mem());
		if (!rb || !sock || BIO_write(rb, prefix, (int)len) != (int)len) {
			BIO_free(rb);
			BIO_free(sock);
			SSL_free(ssl);
			goto fail;
		}
		BIO_set_mem_eof_return(rb, -1);
		SSL_set_bio(ssl, rb, sock);
	} else if (SSL_set_fd(ssl, st->fd) != 1) {
		SSL_free(ssl);
		goto fail;
	}
	SSL_set_accept_state(ssl);
	*t = (struct stream_tls){.ssl = ssl, .owned = true, .handshake = true};
	st->tls = t;
	if (st->rev_added)
		event_active(&st->rev, EV_READ, 0); /* start now: the client waits for us */
	return true;
fail:
	free(t);
	ERR_clear_error();
	return false;
}

bool stream_tls_attach(struct stream *st, SSL *ssl, bool owned)
{
	struct stream_tls *t = calloc(1, sizeof(*t));
	if (!t)
		return false;
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	*t = (struct stream_tls){.ssl = ssl, .owned = owned, .more = SSL_pending(ssl) > 0};
	st->tls = t;
	return true;
}

const char *stream_error_string(const struct stream *st)
{
	static char buf[400];
	if (!st->tls || !st->tls->err) {
		snprintf(buf, sizeof(buf), "%s", evutil_socket_error_to_string(st->err));
		return buf;
	}
	char e[256] = "TLS error";
	if (st->tls->err != (unsigned long)-1)
		ERR_error_string_n(st->tls->err, e, sizeof(e));
	long v = SSL_get_verify_result(st->tls->ssl);
	if (v != X509_V_OK)
		snprintf(buf, sizeof(buf), "%s (%s)", e, X509_verify_cert_error_string(v));
	else
		snprintf(buf, sizeof(buf), "%s", e);
	return buf;
}
