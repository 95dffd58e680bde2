/* The relay: whole protocol messages between a client and its server, never re-encoded.
 *
 * The source's input is contiguous (stream.h): during a read it is the bytes just read,
 * in place. The pump frames the messages there by pointer and sends the run of them to
 * the destination with one stream_send, which writes from those very bytes; so a
 * request or a result that arrives whole is read once and written once, never copied.
 * Each direction keeps "bytes of the current message still to pass" (msg_pending), so a
 * large message (a 1 GB DataRow) streams through in read-sized pieces without being
 * held whole. Only the messages the pooler must understand are looked at whole:
 * ReadyForQuery (transaction state, the release point), ParameterStatus (tracked
 * parameters), ErrorResponse (its SQLSTATE class, when metrics are on) and Terminate;
 * one of those not fully arrived stays in the source's input until the rest comes. (With
 * disable_pqexec a client's Query is refused by its type: client_refuse_query.) In transaction mode LISTEN/UNLISTEN are shown to listenstmt.c
 * (listenstmt.h): the client messages that may run one (waited for whole), and while one
 * is outstanding the server's CommandComplete, ErrorResponse and ReadyForQuery, which
 * it may hold until the listener connection listens; a pooled server's notifications are
 * swallowed (the listener connection delivers them).
 * When the server tracks prepared statements (transaction mode, prepared.h), every
 * message header on either side goes through prep_client_msg / prep_server_msg: most
 * pass in the run; a named Parse/Bind/Describe/Close is replaced by what prepared.c
 * built, a completion of pgcoro's own request is swallowed, and answers pgcoro owes
 * go to the client at a message boundary. When it does not track but holds pgcoro's
 * statements, a CommandComplete that may change them (prep_tag_len) goes to
 * prep_server_tag.
 * The client side counts what it sent that awaits a ReadyForQuery (Query, Sync,
 * FunctionCall) and whether an extended-protocol sequence is open, so the server's state
 * is known clean exactly when nothing is outstanding.
 * Back-pressure: when the destination has RELAY_HIGH_WATER queued, the pump stops; what
 * the source sent stays in its input, which stops being read at read_high; the
 * destination's drain callback resumes the relay.
 * A replication client's server is its own (server.h): none of the transaction-mode
 * handling applies, and the replication protocol (CopyBothResponse, CopyData both ways,
 * CopyDone from either side, BASE_BACKUP's result sets) passes like any message. */
#include "relay.h"

#include <string.h>

#include "client.h"
#include "clock.h"
#include "config.h"
#include "listenstmt.h"
#include "log.h"
#include "metrics.h"
#include "pin.h"
#include "pool.h"
#include "prepared.h"
#include "proto.h"
#include "runtime.h"
#include "server.h"
#include "stats.h"
#include "stream.h"

static struct runtime *rt;

#define MAX_INSPECT 8192    /* ParameterStatus larger than this is passed without tracking */
#define RELAY_BATCH (64 * 1024) /* most bytes framed per send */

void relay_init(struct runtime *r) { rt = r; }

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Bookkeeping for a client message of TYPE about to go to S. */
static inline void client_msg_seen(server_t *s, uint8_t type)
{
	switch (type) {
	case 'Q':
		s->out_syncs++;
		goto request; /* may start a COPY */
	case 'S':
		s->out_syncs++;
		s->mid_ext = false;
		if (s->sync_chain && s->syncs_after < UINT16_MAX)
			s->syncs_after++;
		return;
	case 'H':
		s->mid_ext = true;
		return;
	case 'd':
		return;
	case 'c':
	case 'f': /* no COPY known: a stray end, or one sent before its CopyInResponse */
		if (s->copy_ends_unmatched < UINT16_MAX)
			s->copy_ends_unmatched++;
		break;
	case 'F':
		s->out_syncs++;
		break;
	case 'E':
		s->mid_ext = true;
		goto request;
	case 'C':
		s->closes_pending++;
		/* fall through */
	default: /* Parse, Bind, Describe */
		s->mid_ext = true;
		break;
	}
	s->sync_chain = false;
	return;
request:
	s->sync_chain = true;
	s->syncs_after = 0;
}

/* Inside COPY FROM STDIN a client message of TYPE about to go to S: true when it passes
 * as COPY traffic (data; its end; a Sync, tentative, or a Flush), tracked nowhere. False:
 * anything else, which ends the COPY with PostgreSQL's error: counted as usual. */
static bool copy_msg_seen(server_t *s, uint8_t type)
{
	switch (type) {
	case 'S':
		if (s->copy_syncs < (1u << 30))
			s->copy_syncs++;
		else
			s->copy_unsure = true; /* past any honest count: never released */
		return true;
	case 'c':
	case 'f':
		s->copy_in = false;
		/* fall through */
	case 'd':
	case 'H':
		return true;
	default:
		s->copy_in = false;
		return false;
	}
}

/* S's CopyInResponse is passing: a COPY FROM STDIN began at a request the client sent.
 * If a CopyDone/CopyFail went that the COPY has not met yet, PostgreSQL reads it (in
 * order) and the COPY may be over already: nothing is tentative. Else the Syncs sent
 * right after the last Query/Execute (nothing but Syncs, Flushes and CopyData since)
 * reached PostgreSQL after the COPY began: they become tentative, and so do those the
 * client sends inside it. */
static void copy_begins(server_t *s)
{
	s->copy_open = true;
	if (s->copy_ends_unmatched) {
		s->copy_ends_unmatched--;
		s->sync_chain = false;
		return;
	}
	unsigned k = s->sync_chain ? s->syncs_after : 0;
	if (k > (unsigned)s->out_syncs)
		k = (unsigned)s->out_syncs;
	if (k && s->prep_on)
		k = prep_forget_syncs(s, k); /* the last entries of its ring, if they are those */
	s->out_syncs -= (int)k;
	s->copy_syncs += k;
	s->sync_chain = false;
	s->syncs_after = 0;
	s->copy_in = true;
}

/* S's COPY ended (OK: CommandComplete, after the client's CopyDone with no error before
 * it, so every tentative Sync was read inside it and ignored; else an ErrorResponse, after
 * which some may have been read outside it: all are expected, more than may come). */
static void copy_ends(server_t *s, bool ok)
{
	s->copy_open = false;
	s->copy_in = false;
	if (!ok && s->copy_syncs) {
		s->out_syncs += (int)s->copy_syncs;
		if (s->prep_on)
			s->copy_unsure = true; /* their answers are in no ring: not reusable */
	}
	s->copy_syncs = 0;
}

/* A request begins on S with nothing outstanding: its clock (and the transaction's,
 * when none is open) starts. */
static void request_begins(server_t *s)
{
	s->query_start_us = clock_now_us();
	if (s->tx_status == 'I')
		s->xact_start_us = s->query_start_us;
}

/* Counts a ReadyForQuery on S: one request answered, and a transaction ended when the
 * status is 'I'. The time since the previous answer (or the request's start) goes to the
 * request, so pipelined requests share the time the server was busy with them. */
static void request_answered(server_t *s)
{
	struct stats *st = &s->pool->traffic->stats; /* a pool with a server has traffic */
	uint64_t now = clock_now_us();
	uint64_t query_us = now > s->query_start_us ? now - s->query_start_us : 0;
	st->query_count++;
	st->query_time_us += query_us;
	s->query_start_us = now;
	bool xact_end = s->tx_status == 'I';
	uint64_t xact_us = 0;
	if (xact_end) {
		xact_us = now > s->xact_start_us ? now - s->xact_start_us : 0;
		st->xact_count++;
		st->xact_time_us += xact_us;
		s->xact_start_us = now;
	}
	struct metrics_pool *m = rt->metrics_on ? pool_metrics(s->pool) : NULL;
	if (m) {
		metrics_observe(&m->query, query_us);
		if (xact_end)
			metrics_observe(&m->xact, xact_us);
	}
}

/* Bookkeeping for a whole ReadyForQuery, ParameterStatus or ErrorResponse from S (MSG
 * points at the type byte); nothing for another type the relay looked at. */
static inline void server_msg_seen(server_t *s, const uint8_t *msg, uint32_t len)
{
	if (msg[0] == 'E') {
		const char *sev = proto_error_field(msg + PROTO_HDR, len - 4, 'V');
		if (!sev)
			sev = proto_error_field(msg + PROTO_HDR, len - 4, 'S');
		if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
			s->fatal_passed = true; /* its close needs no second error */
		if (rt->metrics_on)
			metrics_error(s->pool, proto_error_field(msg + PROTO_HDR, len - 4, 'C'));
	} else if (msg[0] == 'Z') { /* its length is checked by the framing */
		s->tx_status = msg[5];
		s->out_syncs--; /* > 0: the framing closes a server whose ReadyForQuery
		                 * nothing asked for */
		if (!s->out_syncs && !s->mid_ext)
			s->closes_pending = 0; /* nothing outstanding (Closes skipped after an error) */
		request_answered(s);
	} else if (msg[0] == 'S') { /* not a NotificationResponse passed (listenstmt.h) */
		const char *name, *value;
		if (proto_parse_param_status(msg + PROTO_HDR, len - 4, &name, &value))
			server_param_seen(s, name, value);
	}
}

/* Passes LEN bytes of a message starting at offset I of the N bytes at hand: returns
 * the offset after what is here of it, and sets *PENDING to what is still to come. */
static size_t pass_bytes(size_t i, size_t n, size_t len, uint32_t *pending)
{
	if (len <= n - i) {
		*pending = 0;
		return i + len;
	}
	*pending = (uint32_t)(len - (n - i));
	return n;
}

/* How a framing pass ended. */
enum frame_end {
	FE_MORE,      /* all input consumed, or a message's first bytes wait for the rest */
	FE_BATCH,     /* RELAY_BATCH framed: send, then go on */
	FE_READY,     /* server side: a ReadyForQuery ends the run */
	FE_TERMINATE, /* client side: a Terminate (not forwarded) */
	FE_QUERY,     /* client side: a Query with disable_pqexec (not forwarded) */
	FE_BAD,       /* an invalid length: the source is dropped */
	FE_BAD_TYPE,  /* client side: a type no client may send (not forwarded) */
	FE_UNASKED,   /* server side: a ReadyForQuery no request counted awaits */
	FE_PREP,      /* prepared statements: prep took, dropped or awaits this message */
	FE_TRACK,     /* prepared statements: tracking must begin before this message */
	FE_ANSWERS,   /* prepared statements: answers pgcoro owes go after this message */
	FE_DROP,      /* server side: a notification of a pooled server, swallowed */
	FE_HOLD,      /* server side: a ReadyForQuery waits for the listener (listenstmt.h) */
};

/* The whole client message MSG prep replaced or dropped (ACT), at the head of C's input:
 * it is taken off, its replacement goes to S. False when the pump must stop (wait for more input, or C or S
 * was closed). */
static bool prep_took(client_t *c, server_t *s, enum prep_act act, const uint8_t *msg,
		      uint32_t len, bool *request)
{
	switch (act) {
	case PREP_TAKEN: /* its replacement waits in prep_output for what passes after it */
		client_msg_seen(s, msg[0]);
		*request = true;
		/* fall through */
	case PREP_DROP:
		c->pool->traffic->stats.bytes_received += (size_t)len + 1;
		stream_take(&c->st, msg, (size_t)len + 1);
		return true;
	default:
		return false;
	}
}

/* The pumps, specialised by the compiler for TRACK (S->prep_on when they start) true
 * and false, so the untracked relay pays nothing for tracking. True: S's tracking
 * changed (it began before a client message, or the server went to a client that
 * tracks): run the pump again. */
/* Prepared statements are tracked in C's pool mode with the current settings (never for a
 * replication connection: session semantics, and a walsender takes no Parse anyway). */
static bool can_track(const client_t *c)
{
	return c->pool->pool_mode != POOL_SESSION && rt->cfg->max_prepared_statements > 0 &&
	       !c->replication;
}

/* Sends what prep_output holds to S. False if it could not be built (C is closed). */
static bool send_prep_output(client_t *c, server_t *s)
{
	size_t n;
	const uint8_t *o = prep_output(s, &n);
	if (!o) {
		prep_output_done(s);
		client_disconnect(c, "53200", "out of memory rewriting prepared statements");
		return false;
	}
	stream_send(&s->st, o, n);
	prep_output_done(s);
	return true;
}

static inline __attribute__((always_inline)) bool pump_client_as(client_t *c, server_t *s,
								  bool track)
{
	uint32_t max = (uint32_t)rt->cfg->max_packet_size;
	bool may_track = !track; /* and, when a message may name a statement: can_track */
	bool pinning = pin_on(c); /* Query, Parse (Bind, Close) are shown to pin.c */
	/* the client's own output bounds it too: answers pgcoro makes (prepared statements)
	 * and the server's wait while it does not read them */
	while (stream_output_len(&s->st) < RELAY_HIGH_WATER && !stream_output_full(&c->st)) {
		bool quiet = s->out_syncs == 0 && !s->mid_ext; /* nothing outstanding yet */
		bool gathering = track && s->pring.output; /* rewritten messages not sent yet */
		size_t n;
		const uint8_t *p = stream_input(&c->st, &n);
		size_t i = 0, limit = n < RELAY_BATCH ? n : RELAY_BATCH;
		enum frame_end end = FE_MORE;
		enum prep_act act = PREP_PASS;
		enum listenstmt_look nl = LISTENSTMT_NO;
		uint8_t type = 0;
		uint32_t len = 0;
		bool request = false;
		while (i < limit) {
			if (c->msg_pending) {
				i = pass_bytes(i, n, c->msg_pending, &c->msg_pending);
				continue;
			}
			if (n - i < PROTO_HDR)
				break;
			type = p[i];
			len = be32(p + i + 1);
			if (len < 4 || len > max) {
				end = FE_BAD;
				break;
			}
			if (!proto_frontend_type[type]) {
				end = FE_BAD_TYPE;
				break;
			}
			if (__builtin_expect(type == 'X' || (type == 'Q' && rt->cfg->disable_pqexec),
					     0)) {
				end = type == 'X' ? FE_TERMINATE : FE_QUERY;
				break;
			}
			if (__builtin_expect(s->copy_in, 0) && copy_msg_seen(s, type)) {
				request = true;
				i = pass_bytes(i, n, (size_t)len + 1, &c->msg_pending);
				continue;
			}
			if (pinning && pin_looks_at(c, type)) {
				if (pin_must_wait(c, p + i, n - i, len))
					break; /* looked at with the next read (on_idle_input waits
					        * for it too) */
				enum pin_look pl = pin_client_msg(c, i, p + i, n - i, len);
				if (pl == PIN_FAILED)
					return false;
				if (pl == PIN_REPLACED) { /* the input moved: frame it again */
					p = stream_input(&c->st, &n);
					limit = n < RELAY_BATCH ? n : RELAY_BATCH;
					continue;
				}
			}
			nl = listenstmt_look_client(c, p + i, n - i, len);
			if (nl == LISTENSTMT_WAIT)
				break; /* a LISTEN perhaps: looked at whole, with the next read */
			if (track && !prep_client_fast(&s->pring, p + i, n - i)) {
				if (i && gathering) {
					end = FE_BATCH; /* what passed first goes after the pending output */
					break;
				}
				if ((act = prep_client_msg(s, c, p + i, n - i, len)) != PREP_PASS) {
					end = FE_PREP;
					break;
				}
			}
			if (!track && may_track && prep_may_name(p + i, n - i) && can_track(c)) {
				end = FE_TRACK; /* a named statement, perhaps: tracking begins here */
				break;
			}
			if (nl == LISTENSTMT_SEE && !listenstmt_client_sent(c, s, p + i, n - i, len))
				return false; /* closed */
			client_msg_seen(s, type);
			request = true;
			i = pass_bytes(i, n, (size_t)len + 1, &c->msg_pending);
		}
		if (end == FE_MORE && i >= limit && i < n)
			end = FE_BATCH;
		if (act == PREP_FAIL)
			return false;
		if (i) {
			c->pool->traffic->stats.bytes_received += i;
			if (gathering)
				prep_output_append(s, p, i); /* one write with the rewritten messages */
			else
				stream_send(&s->st, p, i);
			stream_consume(&c->st, i);
		}
		if (end == FE_PREP && nl == LISTENSTMT_SEE && (act == PREP_TAKEN || act == PREP_DROP) &&
		    !listenstmt_client_sent(c, s, p + i, (size_t)len + 1, len))
			return false; /* closed */
		if (end == FE_PREP && prep_took(c, s, act, p + i, len, &request))
			end = FE_BATCH;
		if (track && s->pring.output) {
			/* rewritten messages gather what follows them into one write, up to a batch,
			 * until the pump stops */
			size_t pending;
			bool gather = end == FE_BATCH && prep_output(s, &pending) && pending < RELAY_BATCH;
			if (!gather && !send_prep_output(c, s))
				return false;
		}
		if (request) {
			if (quiet)
				request_begins(s);
			client_on_request(c);
		}
		switch (end) {
		case FE_BAD:
			client_disconnect(c, "08P01", "invalid message length %u (type '%c') from client",
					  len, type >= 32 && type < 127 ? type : '?');
			return false;
		case FE_BAD_TYPE:
			client_disconnect(c, "08P01", "invalid frontend message type %d", type);
			return false;
		case FE_TERMINATE:
			client_disconnect(c, NULL, "client close request"); /* PgBouncer's words */
			return false;
		case FE_QUERY:
			client_refuse_query(c);
			return false;
		case FE_TRACK:
			if (prep_track_now(s))
				return true;
			may_track = false; /* no memory: passed unchanged */
			continue;
		case FE_BATCH:
			if (c->state != CL_ACTIVE || c->server != s)
				return false;
			continue;
		default:
			return false;
		}
	}
	if (track && s->pring.output) /* stopped by back-pressure while gathering */
		(void)send_prep_output(c, s);
	return false;
}

/* After a ReadyForQuery reached the client: timers, and in transaction/statement mode
 * the hand-over (in session mode, server_fast_close of a server to be replaced). False
 * if the server is no longer C's. */
static bool after_ready(server_t *s, client_t *c)
{
	client_on_ready(c);
	if (c->pool->pool_mode != POOL_SESSION ||
	    __builtin_expect(s->conn_gen != c->pool->conn_gen, 0))
		client_maybe_release(c);
	return s->client == c && c->state == CL_ACTIVE;
}

static inline __attribute__((always_inline)) bool pump_server_as(server_t *s, client_t *c,
								  bool track)
{
	bool count_closes = !track && s->closes_pending;
	while (stream_output_len(&c->st) < RELAY_HIGH_WATER) {
		/* only the client side turns it on (listenstmt.h): read once per batch */
		bool watch = s->listen_track;
		size_t n;
		const uint8_t *p = stream_input(&s->st, &n);
		size_t i = 0, limit = n < RELAY_BATCH ? n : RELAY_BATCH;
		enum frame_end end = FE_MORE;
		uint32_t len = 0;
		while (i < limit) {
			if (s->msg_pending) {
				i = pass_bytes(i, n, s->msg_pending, &s->msg_pending);
				if (track && !s->msg_pending && s->pring.answers) {
					end = FE_ANSWERS;
					break;
				}
				continue;
			}
			if (n - i < PROTO_HDR)
				break;
			uint8_t type = p[i];
			len = be32(p + i + 1);
			uint8_t fixed = proto_server_fixed_len[type];
			if (len < 4 || (fixed && len != fixed)) {
				end = FE_BAD;
				break;
			}
			bool inspect = type == 'Z' || ((type == 'S' || type == 'E') && len <= MAX_INSPECT);
			if (__builtin_expect(watch || type == 'A', 0)) {
				/* a notification of a pooled server (the listener delivers them); while
				 * LISTEN is tracked, CommandComplete tags, errors, ReadyForQuery */
				bool pooled_a = type == 'A' && c->pool->pool_mode != POOL_SESSION &&
						!c->replication;
				inspect |= pooled_a || (type == 'C' && watch && listenstmt_tag_len(len));
				if (inspect && (size_t)len + 1 > n - i)
					break; /* looked at whole: wait for the rest */
				if (pooled_a || (watch && (type == 'E' || type == 'Z'))) {
					enum listenstmt_act na = listenstmt_server_msg(s, p + i, len);
					if (na != LISTENSTMT_PASS) {
						end = na == LISTENSTMT_DROP ? FE_DROP : FE_HOLD;
						break;
					}
				}
			} else if (inspect && (size_t)len + 1 > n - i) {
				break; /* looked at whole: wait for the rest */
			}
			if (count_closes && type == '3' && s->closes_pending)
				s->closes_pending--;
			if (!track && __builtin_expect(type == 'C' && s->prep != NULL, 0) &&
			    prep_tag_len(len)) {
				if ((size_t)len + 1 > n - i)
					break; /* looked at whole: wait for the rest */
				prep_server_tag(s, p + i, len); /* SQL that may change its statements */
			}
			if (__builtin_expect(type == 'G' || s->copy_open, 0)) {
				if (type == 'G')
					copy_begins(s);
				else if (type == 'C' || type == 'E')
					copy_ends(s, type == 'C');
			}
			if (track && !prep_server_fast(&s->pring, type, len)) {
				enum prep_act act = prep_server_msg(s, p + i, n - i, len);
				if (act == PREP_WAIT)
					break;
				if (act == PREP_DROP) {
					end = FE_PREP;
					break;
				}
			}
			if (inspect) {
				if (__builtin_expect(type == 'Z' && s->out_syncs <= 0, 0)) {
					/* an answer nothing counted: the count is wrong, and the
					 * server must never change hands on it */
					end = FE_UNASKED;
					break;
				}
				server_msg_seen(s, p + i, len);
				if (__builtin_expect(watch, 0) && (type == 'C' || type == 'Z'))
					listenstmt_server_passed(s, p + i, len);
				i += (size_t)len + 1;
				if (type == 'Z') {
					end = FE_READY;
					break;
				}
				if (track && s->pring.answers) {
					end = FE_ANSWERS; /* due after this message (a CommandComplete) */
					break;
				}
				continue;
			}
			i = pass_bytes(i, n, (size_t)len + 1, &s->msg_pending);
			if (track && !s->msg_pending && s->pring.answers) {
				end = FE_ANSWERS;
				break;
			}
		}
		if (end == FE_MORE && i >= limit && i < n)
			end = FE_BATCH;
		if (i) {
			s->pool->traffic->stats.bytes_sent += i;
			stream_send(&c->st, p, i);
			stream_consume(&s->st, i);
		}
		if (track && s->pring.answers)
			prep_flush_answers(s); /* due after the bytes just sent */
		switch (end) {
		case FE_BAD:
			server_disconnect(s, "invalid message length %u (type '%c') from server", len,
					  p[i] >= 32 && p[i] < 127 ? p[i] : '?');
			return false;
		case FE_UNASKED:
			server_disconnect(s, "a ReadyForQuery no request awaited (the count of requests "
					     "is wrong: not reused)");
			return false;
		case FE_READY:
			if (!after_ready(s, c))
				return false;
			if (s->prep_on != track)
				return true; /* handed out again meanwhile, to a client that tracks */
			continue;
		case FE_PREP: /* a whole message of ours to swallow */
			stream_take(&s->st, p + i, (size_t)len + 1);
			prep_flush_answers(s);
			continue;
		case FE_DROP:
			stream_take(&s->st, p + i, (size_t)len + 1);
			if (stream_input_len(&s->st) == 0) {
				client_maybe_release(c); /* it may have been the last thing in the way */
				if (s->client != c || c->state != CL_ACTIVE)
					return false;
			}
			continue;
		case FE_ANSWERS:
		case FE_BATCH:
			continue;
		default:
			return false;
		}
	}
	return false;
}

void relay_client_to_server(client_t *c)
{
	server_t *s = c->server;
	if (!s || s->state != SV_ACTIVE || c->state != CL_ACTIVE)
		return;
	bool again = s->prep_on ? pump_client_as(c, s, true) : pump_client_as(c, s, false);
	if (again && c->server == s && c->state == CL_ACTIVE && s->state == SV_ACTIVE)
		pump_client_as(c, s, true);
	stream_input_consumed(&c->st);
}

void relay_server_to_client(server_t *s)
{
	client_t *c = s->client;
	if (!c || s->state != SV_ACTIVE || c->state != CL_ACTIVE)
		return;
	while (s->prep_on ? pump_server_as(s, c, true) : pump_server_as(s, c, false)) {
		if (s->client != c || s->state != SV_ACTIVE || c->state != CL_ACTIVE)
			break;
	}
	if (s->state != SV_CLOSING)
		stream_input_consumed(&s->st);
}
