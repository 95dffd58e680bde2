/* The relay: whole protocol messages between a client and its server, never re-encoded.
 *
 * Each direction keeps "bytes of the current message still to pass" (msg_pending) so that
 * a large message (a 1 GB DataRow) streams through without being buffered whole: the
 * header is read, the body moves chain by chain with evbuffer_remove_buffer. Only the
 * messages the pooler must understand are looked at whole: ReadyForQuery (transaction
 * state, the release point), ParameterStatus (tracked parameters) and Terminate.
 * Fast path: the whole messages lying in the input's first chain are framed by pointer
 * and moved with one evbuffer_remove_buffer (a select's T, D, C, Z in one call); a
 * message that crosses chains, or has not fully arrived, takes the per-message path.
 * The client side counts what it sent that awaits a ReadyForQuery (Query, Sync,
 * FunctionCall) and whether an extended-protocol sequence is open, so the server's state
 * is known clean exactly when nothing is outstanding.
 * Writes are gathered: the pumps move every message available, then one stream_flush
 * per side writes them with one writev.
 * Back-pressure: when the destination still has RELAY_HIGH_WATER queued after a write
 * attempt, moving stops; the source stream then stops reading its socket at its
 * read_high; the destination's drain callback resumes the relay. */
#include "relay.h"

#include <string.h>

#include <event2/buffer.h>

#include "client.h"
#include "config.h"
#include "log.h"
#include "pool.h"
#include "proto.h"
#include "runtime.h"
#include "server.h"
#include "stream.h"

static struct runtime *rt;

#define MAX_INSPECT 8192 /* ParameterStatus larger than this is passed without tracking */

void relay_init(struct runtime *r) { rt = r; }

/* Moves up to *pending bytes from IN to OUT; returns false if nothing could move. */
static bool move_body(struct evbuffer *in, struct evbuffer *out, uint32_t *pending)
{
	size_t avail = evbuffer_get_length(in);
	size_t n = avail < *pending ? avail : *pending;
	if (n == 0)
		return false;
	int moved = evbuffer_remove_buffer(in, out, n);
	if (moved <= 0)
		return false;
	*pending -= (uint32_t)moved;
	return true;
}

enum proto_frame relay_peek_header(struct evbuffer *in, uint32_t max_len, uint8_t *type,
				    uint32_t *len)
{
	uint8_t hdr[PROTO_HDR];
	ev_ssize_t n = evbuffer_copyout(in, hdr, sizeof(hdr));
	if (n < (ev_ssize_t)sizeof(hdr))
		return PROTO_NEED_MORE;
	return proto_frame(hdr, sizeof(hdr), max_len, type, len);
}

/* True if DST's output is over the high-water mark even after a write attempt. */
static bool dst_full(struct stream *dst)
{
	if (evbuffer_get_length(dst->out) < RELAY_HIGH_WATER)
		return false;
	stream_flush(dst);
	return evbuffer_get_length(dst->out) >= RELAY_HIGH_WATER;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Bookkeeping for a client message of TYPE about to go to S. False for a Terminate,
 * which is not forwarded. */
static bool client_msg_seen(server_t *s, uint8_t type)
{
	switch (type) {
	case 'X':
		return false;
	case 'Q':
	case 'F':
		s->out_syncs++;
		break;
	case 'S':
		s->out_syncs++;
		s->mid_ext = false;
		break;
	case 'P':
	case 'B':
	case 'D':
	case 'E':
	case 'C':
	case 'H':
		s->mid_ext = true;
		break;
	default:
		break;
	}
	return true;
}

/* Bookkeeping for a whole ReadyForQuery or ParameterStatus from S (MSG points at the
 * type byte). False if the server must be dropped. */
static bool server_msg_seen(server_t *s, const uint8_t *msg, uint32_t len)
{
	if (msg[0] == 'Z') {
		if (len != 5) {
			server_disconnect(s, "invalid ReadyForQuery length %u", len);
			return false;
		}
		s->tx_status = msg[5];
		if (s->out_syncs > 0)
			s->out_syncs--;
	} else {
		const char *name, *value;
		if (proto_parse_param_status(msg + PROTO_HDR, len - 4, &name, &value))
			server_param_seen(s, name, value);
	}
	return true;
}

enum run {
	RUN_NONE,  /* no whole message at the head of the first chain: take the slow path */
	RUN_MOVED, /* a run of whole messages was moved */
	RUN_STOP,  /* stop pumping (Terminate, a ReadyForQuery handed the server on, an error) */
};

/* Fast path, client side: frames the whole messages lying in IN's first chain by pointer
 * and moves them with one evbuffer_remove_buffer. */
static enum run run_client(client_t *c, server_t *s, struct evbuffer *in, struct evbuffer *out)
{
	struct evbuffer_iovec v;
	if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
		return RUN_NONE;
	const uint8_t *p = v.iov_base;
	size_t avail = v.iov_len, run = 0;
	uint32_t max = (uint32_t)rt->cfg->max_packet_size;
	bool terminate = false;
	while (avail - run >= PROTO_HDR && run < RELAY_HIGH_WATER) {
		uint8_t type = p[run];
		uint32_t len = be32(p + run + 1);
		if (len < 4 || len > max)
			break; /* the slow path reports it */
		if ((size_t)len + 1 > avail - run)
			break;
		if (!client_msg_seen(s, type)) {
			terminate = true;
			break;
		}
		run += (size_t)len + 1;
	}
	if (run) {
		evbuffer_remove_buffer(in, out, run);
		client_on_request(c);
	}
	if (terminate) {
		client_disconnect(c, NULL, "client sent Terminate");
		return RUN_STOP;
	}
	return run ? RUN_MOVED : RUN_NONE;
}

/* Slow path, client side: one message, which may span chains or be larger than what
 * has arrived; its body streams with msg_pending. Returns false to stop pumping. */
static bool step_client(client_t *c, server_t *s, struct evbuffer *in, struct evbuffer *out)
{
	if (c->msg_pending == 0) {
		uint8_t type = 0;
		uint32_t len = 0;
		switch (relay_peek_header(in, (uint32_t)rt->cfg->max_packet_size, &type, &len)) {
		case PROTO_NEED_MORE:
			return false;
		case PROTO_BAD:
			client_disconnect(c, "08P01", "invalid message length %u (type '%c') from client",
					  len, type >= 32 && type < 127 ? type : '?');
			return false;
		case PROTO_OK:
			break;
		}
		if (!client_msg_seen(s, type)) {
			client_disconnect(c, NULL, "client sent Terminate");
			return false;
		}
		c->msg_pending = len + 1;
		client_on_request(c);
	}
	return move_body(in, out, &c->msg_pending);
}

static void pump_client(client_t *c, server_t *s)
{
	struct evbuffer *in = c->st.in;
	struct evbuffer *out = s->st.out;
	for (;;) {
		if (dst_full(&s->st))
			return; /* resumed by the server's drain callback */
		if (c->msg_pending == 0) {
			enum run r = run_client(c, s, in, out);
			if (r == RUN_STOP)
				return;
			if (r == RUN_MOVED)
				continue;
		}
		if (!step_client(c, s, in, out))
			return;
	}
}

/* After a ReadyForQuery reached the client: timers, and in transaction/statement mode
 * the hand-over. False if the server is no longer C's. */
static bool after_ready(server_t *s, client_t *c)
{
	client_on_ready(c);
	if (c->pool->pool_mode != POOL_SESSION)
		client_maybe_release(c);
	return s->client == c && c->state == CL_ACTIVE;
}

/* Fast path, server side: as run_client; a run ends after a ReadyForQuery. */
static enum run run_server(server_t *s, client_t *c, struct evbuffer *in, struct evbuffer *out)
{
	struct evbuffer_iovec v;
	if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
		return RUN_NONE;
	const uint8_t *p = v.iov_base;
	size_t avail = v.iov_len, run = 0;
	bool ready = false;
	while (avail - run >= PROTO_HDR && run < RELAY_HIGH_WATER) {
		uint8_t type = p[run];
		uint32_t len = be32(p + run + 1);
		if (len < 4 || (size_t)len + 1 > avail - run)
			break; /* bad lengths are reported by the slow path */
		if (type == 'Z' || (type == 'S' && len <= MAX_INSPECT)) {
			if (!server_msg_seen(s, p + run, len))
				return RUN_STOP;
			if (type == 'Z') {
				run += (size_t)len + 1;
				ready = true;
				break;
			}
		}
		run += (size_t)len + 1;
	}
	if (!run)
		return RUN_NONE;
	evbuffer_remove_buffer(in, out, run);
	if (ready && !after_ready(s, c))
		return RUN_STOP;
	return RUN_MOVED;
}

/* Slow path, server side: one message (see step_client). */
static bool step_server(server_t *s, client_t *c, struct evbuffer *in, struct evbuffer *out)
{
	if (s->msg_pending == 0) {
		uint8_t type = 0;
		uint32_t len = 0;
		enum proto_frame f = relay_peek_header(in, 0x7fffffffu, &type, &len);
		if (f == PROTO_NEED_MORE)
			return false;
		if (f == PROTO_BAD) {
			server_disconnect(s, "invalid message length %u from server", len);
			return false;
		}
		if (type == 'Z' || (type == 'S' && len <= MAX_INSPECT)) {
			if (evbuffer_get_length(in) < (size_t)len + 1)
				return false;
			uint8_t *msg = evbuffer_pullup(in, (ev_ssize_t)len + 1);
			if (!msg || !server_msg_seen(s, msg, len))
				return false;
			evbuffer_remove_buffer(in, out, len + 1);
			return type != 'Z' || after_ready(s, c);
		}
		s->msg_pending = len + 1;
	}
	return move_body(in, out, &s->msg_pending);
}

static void pump_server(server_t *s, client_t *c)
{
	struct evbuffer *in = s->st.in;
	struct evbuffer *out = c->st.out;
	for (;;) {
		if (dst_full(&c->st))
			return; /* resumed by the client's drain callback */
		if (s->msg_pending == 0) {
			enum run r = run_server(s, c, in, out);
			if (r == RUN_STOP)
				return;
			if (r == RUN_MOVED)
				continue;
		}
		if (!step_server(s, c, in, out))
			return;
	}
}

/* The pumps move what is there; the one write per wake-up happens here, after them, so
 * every message moved in this wake-up goes out in one writev. */
void relay_client_to_server(client_t *c)
{
	server_t *s = c->server;
	if (!s || s->state != SV_ACTIVE || c->state != CL_ACTIVE)
		return;
	pump_client(c, s);
	if (s->state != SV_CLOSING)
		stream_flush(&s->st);
	stream_input_consumed(&c->st);
}

void relay_server_to_client(server_t *s)
{
	client_t *c = s->client;
	if (!c || s->state != SV_ACTIVE || c->state != CL_ACTIVE)
		return;
	pump_server(s, c);
	stream_flush(&c->st);
	if (s->state != SV_CLOSING)
		stream_input_consumed(&s->st);
}
