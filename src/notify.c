/* Owns LISTEN/NOTIFY in transaction and statement mode: each pool's listener connection
 * (made by libpq like a server's: connect steps on the executor; then, like a server's,
 * spoken to by pgcoro itself through a stream: its LISTEN/UNLISTEN queries and their
 * answers and its notifications go through hkquery.h), its channels and their
 * subscribed clients.
 *
 * DESIGN. A client without a server whose simple Query is one LISTEN or UNLISTEN
 * statement is served here instead of by a pooled server (which would keep listening
 * for whoever gets it next). The pool's listener connection issues LISTEN for a channel
 * when its first client subscribes and UNLISTEN when its last one leaves; the client's
 * LISTEN is answered (CommandComplete "LISTEN", ReadyForQuery) once the listener
 * listens, so every NOTIFY committed after the answer reaches it, as with PostgreSQL.
 * Its NotificationResponses go on to each subscriber: at
 * once when it is idle, else held until it gives its server back (PostgreSQL too
 * delivers them between transactions). NOTIFY itself passes through the relay. If the
 * listener connection fails, waiting LISTENs get an error, and it is made again (once
 * a second) while clients subscribe; notifications meanwhile are lost.
 * Any other LISTEN/UNLISTEN runs on the client's server (listenstmt.c reads it there);
 * when it commits, the client is subscribed here (notify_subscribe), and the relay holds
 * that ReadyForQuery until the listener listens (notify_hold). After an UNLISTEN the
 * notifications held for its channels go, as PostgreSQL drops them.
 * Held notifications. What a busy or non-reading client has not been sent yet is held
 * for it, at most NOTIFY_HELD_MAX bytes per client and max_held_notification_bytes for
 * every client together (one NOTIFY is copied to each subscriber, so without the second
 * bound one role could push memory towards max_client_conn x 16 MB). Past either the
 * client furthest behind (the most held) is closed with 53200: PostgreSQL never drops a
 * notification for a session that listens (its queue, 8 GB, refuses NOTIFY at the
 * sender's commit when full), and a NOTIFY reaches pgcoro committed, so ending the
 * session that lags is the one way not to lose notifications silently: its client knows
 * it may have missed some, as after any reconnect. Logged, and counted in /metrics.
 * Bounds and costs. A client listens to at most max_client_listen_channels channels (a
 * LISTEN of one more is answered 53400 and the session goes on; one committed on a server
 * closes it, its transaction being over), each name at most 63 bytes (NAMEDATALEN; a
 * longer one is not read here). A pool's channels and subscriptions (one per client and
 * channel, on the lists of both) are found by hash tables; a change marks its channel
 * dirty and the listener's next query covers the dirty channels only, so a LISTEN or
 * UNLISTEN costs the same whatever the number of channels. */
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>

#include "client.h"
#include "config.h"
#include "executor.h"
#include "hash.h"
#include "hkquery.h"
#include "list.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "proto.h"
#include "rand.h"
#include "relay.h"
#include "runtime.h"
#include "srvconnect.h"
#include "stream.h"

#define NOTIFY_HELD_MAX (16u * 1024 * 1024) /* notifications held for a busy client */
#define CHANNEL_CAP 64                      /* NAMEDATALEN */
#define QUERY_CHANNELS 1024                 /* channels in one query of the listener */
#define REFUSAL_LOG_SEC 10.0                /* at most one refusal line per client this often */

static struct runtime *rt;
static struct pbuf out; /* answers and notifications, reused */
static struct list_head holding; /* clients with notifications held (notify_client.hold) */
static size_t held_total;        /* their bytes (max_held_notification_bytes) */
static uint64_t held_closed[2];  /* clients closed past NOTIFY_HELD_MAX, past the total */
static struct pbuf sql; /* the listener's LISTEN/UNLISTEN query, reused */
static uint64_t seed;   /* of the hashes: names a peer chooses do not aim at one bucket */

/* A channel of a pool: its subscribers and whether the listener listens to it. */
struct chan {
	struct hash_node node; /* in notify_conn.chans, by name */
	struct list link;      /* sent == 0: on notify_conn.dirty when linked; else on .flight */
	struct list_head subs; /* its clients (struct sub.in_chan) */
	bool listening;        /* LISTEN answered on the listener connection */
	int8_t sent;           /* in the query in flight: +1 LISTEN, -1 UNLISTEN, 0 not in it */
	char name[CHANNEL_CAP];
};

/* One client listening to one channel: on both their lists, and in the pool's table. */
struct sub {
	struct hash_node node; /* in notify_conn.subs, by (channel, client) */
	struct list in_chan;   /* chan.subs */
	struct list in_client; /* notify_client.subs */
	struct chan *ch;
	client_t *c;
};

enum nc_state {
	NC_DOWN,       /* no connection (a retry may be armed) */
	NC_CONNECTING, /* connect steps */
	NC_READY,      /* connected, no query in flight */
	NC_BUSY,       /* a LISTEN/UNLISTEN query in flight */
};

struct notify_conn {
	pool_t *pool;
	enum nc_state state;
	PGconn *conn;          /* libpq's, for its connect steps (then only PQfinish) */
	struct srvconnect *login; /* or pgcoro's own login in progress (srvconnect.h) */
	struct event ev;       /* libpq's connect steps wait on its socket */
	struct stream st;      /* the connection once made: queries, answers, notifications */
	struct hkquery q;      /* the answer being read (notifications come between answers) */
	char encoding[32];     /* its client_encoding, for quoting channel names */
	struct event reap_ev;  /* closes the connection of a failure, outside its callbacks */
	struct event retry_ev; /* reconnect after a failure */
	struct exec_job job;
	PostgresPollingStatusType poll;
	bool job_running;
	struct hash_table chans; /* struct chan, by name */
	struct hash_table subs;  /* struct sub, by (channel, client) */
	struct list_head dirty;  /* channels wanted and not listened to, or the reverse */
	struct list_head flight; /* channels in the query in flight */
};

enum await_kind {
	AWAIT_NONE,
	AWAIT_IDLE,  /* its simple Query LISTEN of idle_ch: answered here (input not read) */
	AWAIT_RELAY, /* its server's ReadyForQuery is held until all its channels listen */
};

/* A client's channels and the notifications held while it is busy. */
struct notify_client {
	client_t *c;
	struct list_head subs; /* its channels (struct sub.in_client) */
	int ndark;             /* of them, those the listener does not listen to (yet) */
	enum await_kind await;
	struct chan *idle_ch;
	struct pbuf held;      /* counted in held_total */
	struct list hold;      /* in holding while held.len > 0 */
	struct event resume_ev; /* after the answer: the client's input, or its relay, goes on */
	/* a LISTEN past its limit committed on its server: it is closed; "" none */
	char refused[CHANNEL_CAP];
	double refused_at; /* rt_now() of its last refusal logged */
	uint64_t unlogged; /* refusals since, not logged */
};

void notify_init(struct runtime *r)
{
	rt = r;
	pbuf_init(&out);
	pbuf_init(&sql);
	list_head_init(&holding);
	if (!rand_bytes(&seed, sizeof(seed)))
		seed = 0xcbf29ce484222325ull; /* FNV's own: only the flooding defence is lost */
}

/* ---- answers to clients -------------------------------------------------------------- */

/* What is held for NC changed from BEFORE bytes: the total and the holding list follow;
 * nothing left, its buffer goes. */
static void held_changed(struct notify_client *nc, size_t before)
{
	held_total = held_total - before + nc->held.len;
	if (nc->held.len && !list_linked(&nc->hold))
		list_append(&holding, &nc->hold);
	else if (!nc->held.len && list_linked(&nc->hold))
		list_del(&holding, &nc->hold);
	if (!nc->held.len)
		pbuf_free(&nc->held);
}

/* The client furthest behind: the most bytes held (NULL: none). */
static struct notify_client *held_most(void)
{
	struct notify_client *most = NULL;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &holding) {
		struct notify_client *nc = list_entry(pos, struct notify_client, hold);
		if (!most || nc->held.len > most->held.len)
			most = nc;
	}
	return most;
}

/* NC's client is closed (53200): the notifications held for it are too many (TOTAL: for
 * every client together); they go at once. */
static void held_close(struct notify_client *nc, bool total)
{
	client_t *c = nc->c;
	size_t had = nc->held.len;
	nc->held.len = 0;
	held_changed(nc, had);
	if (c->state == CL_CLOSING)
		return; /* closed already: only its bytes were left */
	held_closed[total]++;
	if (!total) {
		client_disconnect(c, "53200", "more than %u bytes of notifications held for a busy "
					      "client", NOTIFY_HELD_MAX);
		return;
	}
	log_warning("client %llu (%s@%s): %zu bytes of notifications held for it, the most of "
		    "any client: closed, max_held_notification_bytes (%d) reached",
		    (unsigned long long)c->id, c->user ? c->user : "-",
		    c->database ? c->database : "-", had, rt->cfg->max_held_notification_bytes);
	client_disconnect(c, "53200", "too many notifications held for clients that do not read "
				      "them (max_held_notification_bytes): this client had %zu "
				      "bytes, the most", had);
}

/* Sends C what OUT holds (now, or held while C is busy), within the bounds of what is
 * held: past them, the client furthest behind is closed (C, or others first). */
static void send_out(client_t *c, bool now)
{
	struct notify_client *nc = c->notify;
	if (out.failed) {
		pbuf_reset(&out);
		client_disconnect(c, "53200", "out of memory building a notification");
		return;
	}
	if (now) {
		stream_send(&c->st, out.data, out.len);
		pbuf_reset(&out);
		return;
	}
	if (nc->held.len + out.len > NOTIFY_HELD_MAX) {
		pbuf_reset(&out);
		held_close(nc, false);
		return;
	}
	size_t limit = (size_t)rt->cfg->max_held_notification_bytes;
	while (limit && held_total + out.len > limit) {
		struct notify_client *most = held_most();
		if (!most || most->held.len < nc->held.len + out.len)
			most = nc; /* C itself would be furthest behind */
		held_close(most, true);
		if (most == nc) {
			pbuf_reset(&out);
			return;
		}
	}
	size_t before = nc->held.len;
	proto_put_bytes(&nc->held, out.data, out.len);
	held_changed(nc, before);
	pbuf_reset(&out);
}

void notify_held_stats(size_t *bytes, uint64_t *closed_client, uint64_t *closed_total)
{
	*bytes = held_total;
	*closed_client = held_closed[0];
	*closed_total = held_closed[1];
}

/* Ends C's wait for its simple Query LISTEN: answered, or with the error MSG (SQLSTATE). */
static void answer_listen(client_t *c, const char *sqlstate, const char *msg)
{
	c->notify->await = AWAIT_NONE;
	c->notify->idle_ch = NULL;
	if (msg)
		proto_build_error(&out, "ERROR", sqlstate, msg, NULL, NULL);
	else
		proto_build_command_complete(&out, "LISTEN");
	proto_build_ready(&out, 'I');
	send_out(c, true);
	/* not from here: the caller is walking the channels C's next messages may change */
	event_active(&c->notify->resume_ev, EV_TIMEOUT, 0);
}

/* Ends C's wait for the listener before its ReadyForQuery goes on (AWAIT_RELAY). */
static void release_hold(client_t *c)
{
	c->notify->await = AWAIT_NONE;
	event_active(&c->notify->resume_ev, EV_TIMEOUT, 0); /* not from here, as above */
}

static void close_refused(client_t *c);

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	client_t *c = arg;
	if (c->notify->refused[0]) {
		close_refused(c);
		return;
	}
	if (c->notify->await != AWAIT_NONE)
		return;
	if (c->state == CL_IDLE)
		client_resume_idle(c);
	else if (c->state == CL_ACTIVE && c->server)
		relay_server_to_client(c->server); /* the ReadyForQuery held goes on */
}

bool notify_awaiting(const client_t *c) { return c->notify && c->notify->await == AWAIT_IDLE; }

void notify_client_idle(client_t *c)
{
	struct notify_client *nc = c->notify;
	if (!nc || !nc->held.len)
		return;
	if (!nc->held.failed)
		stream_send(&c->st, nc->held.data, nc->held.len);
	size_t had = nc->held.len;
	nc->held.len = 0;
	held_changed(nc, had);
}

/* ---- channels and subscriptions --------------------------------------------------------- */

static uint64_t name_hash(const char *name) { return hash_bytes(seed, name, strlen(name)); }

static uint64_t sub_hash(const struct chan *ch, const client_t *c)
{
	const void *key[2] = {ch, c};
	return hash_bytes(seed, key, sizeof(key));
}

static struct chan *chan_find(struct notify_conn *nc, const char *name)
{
	for (struct hash_node *n = hash_first(&nc->chans, name_hash(name)); n; n = hash_next(n)) {
		struct chan *ch = hash_entry(n, struct chan, node);
		if (strcmp(ch->name, name) == 0)
			return ch;
	}
	return NULL;
}

static struct sub *sub_find(struct notify_conn *nc, const struct chan *ch, const client_t *c)
{
	for (struct hash_node *n = hash_first(&nc->subs, sub_hash(ch, c)); n; n = hash_next(n)) {
		struct sub *s = hash_entry(n, struct sub, node);
		if (s->ch == ch && s->c == c)
			return s;
	}
	return NULL;
}

/* Whether the listener listens to CH: notifications on it reach its clients. */
static bool chan_live(const struct chan *ch) { return ch->listening && ch->sent >= 0; }

/* Sets CH's state; its clients' counts of channels not live follow. */
static void chan_set(struct chan *ch, bool listening, int8_t sent)
{
	bool was = chan_live(ch);
	ch->listening = listening;
	ch->sent = sent;
	if (was == chan_live(ch))
		return;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &ch->subs)
		list_entry(pos, struct sub, in_chan)->c->notify->ndark += was ? 1 : -1;
}

/* CH's clients changed, or its state: the next query looks at it (unless it is in the
 * query in flight, which looks at it when answered). */
static void chan_mark(struct notify_conn *nc, struct chan *ch)
{
	if (ch->sent == 0 && !list_linked(&ch->link))
		list_append(&nc->dirty, &ch->link);
}

/* Frees CH when nobody wants it and the listener does not listen to it. */
static void chan_prune(struct notify_conn *nc, struct chan *ch)
{
	if (ch->subs.count || ch->listening || ch->sent)
		return;
	if (list_linked(&ch->link))
		list_del(&nc->dirty, &ch->link);
	hash_del(&nc->chans, &ch->node);
	free(ch);
}

/* S ends (its channel is not pruned here). */
static void sub_drop(struct notify_conn *nc, struct sub *s)
{
	struct chan *ch = s->ch;
	struct notify_client *ncl = s->c->notify;
	list_del(&ch->subs, &s->in_chan);
	list_del(&ncl->subs, &s->in_client);
	hash_del(&nc->subs, &s->node);
	if (!chan_live(ch))
		ncl->ndark--;
	free(s);
	if (!ch->subs.count)
		chan_mark(nc, ch);
}

static void connect_start(struct notify_conn *nc);
static void reconcile(struct notify_conn *nc);

/* CH cannot be listened to (its name is not valid in the listener connection's encoding,
 * or no memory): its waiting LISTEN gets the error MSG, and its clients leave it. */
static void chan_refuse(struct notify_conn *nc, struct chan *ch, const char *msg)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &ch->subs) {
		struct sub *s = list_entry(pos, struct sub, in_chan);
		client_t *c = s->c;
		sub_drop(nc, s);
		if (c->notify->await == AWAIT_IDLE && c->notify->idle_ch == ch)
			answer_listen(c, "22021", msg);
		else if (c->notify->await == AWAIT_RELAY && c->notify->ndark == 0)
			release_hold(c);
	}
	chan_prune(nc, ch);
}

/* The listener connection failed (REASON): waiting LISTENs get an error, ReadyForQuery
 * held for it goes on (the client stays subscribed: its LISTEN committed on its server),
 * every channel is marked not listened, and a reconnect is armed while clients
 * subscribe. */
static void conn_failed(struct notify_conn *nc, const char *reason)
{
	log_warning("pool %s/%s: LISTEN connection: %s", nc->pool->dbname, nc->pool->user, reason);
	event_del(&nc->ev);
	if (stream_is_open(&nc->st)) { /* maybe inside its callbacks: closed by reap_cb */
		stream_set_read(&nc->st, false);
		event_active(&nc->reap_ev, EV_TIMEOUT, 0);
	} else if (nc->conn && !nc->job_running) {
		PQfinish(nc->conn);
		nc->conn = NULL;
	}
	nc->state = NC_DOWN;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &nc->flight)
		list_del(&nc->flight, pos);
	hash_for_each(&nc->chans, i, n, next) {
		struct chan *ch = hash_entry(n, struct chan, node);
		chan_set(ch, false, 0);
		list_for_each_safe(pos, tmp, &ch->subs) {
			struct sub *s = list_entry(pos, struct sub, in_chan);
			client_t *c = s->c;
			if (c->notify->await == AWAIT_IDLE && c->notify->idle_ch == ch) {
				sub_drop(nc, s); /* not subscribed: PostgreSQL's LISTEN failed */
				answer_listen(c, "08006",
					      "LISTEN failed: pgcoro's listener connection is down");
			} else if (c->notify->await == AWAIT_RELAY) {
				release_hold(c);
			}
		}
		chan_mark(nc, ch);
	}
	list_for_each_safe(pos, tmp, &nc->dirty) /* every channel: those nobody wants go */
		chan_prune(nc, list_entry(pos, struct chan, link));
	if (nc->chans.count && !rt->shutting_down) {
		struct timeval tv = {1, 0};
		event_add(&nc->retry_ev, &tv);
	}
}

/* A notification of the listener connection (hkquery_ops). */
static void deliver(void *arg, uint32_t pid, const char *channel, const char *payload)
{
	struct notify_conn *nc = arg;
	struct chan *ch = chan_find(nc, channel);
	if (!ch || ch->sent < 0)
		return; /* UNLISTEN in flight: its subscribers came after it, their LISTEN waits */
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &ch->subs) {
		client_t *c = list_entry(pos, struct sub, in_chan)->c;
		if (c->state == CL_CLOSING)
			continue;
		proto_build_notification(&out, pid, channel, payload);
		send_out(c, c->state == CL_IDLE && !c->notify->held.len &&
				 !stream_output_full(&c->st)); /* else held, up to NOTIFY_HELD_MAX */
	}
}

/* The LISTEN/UNLISTEN query in flight has ended (OK: without error): its channels'
 * waiting clients go on. */
static void query_done(struct notify_conn *nc, bool ok)
{
	nc->state = NC_READY;
	struct list *pos, *tmp, *spos, *stmp;
	list_for_each_safe(pos, tmp, &nc->flight) {
		struct chan *ch = list_entry(pos, struct chan, link);
		list_del(&nc->flight, pos);
		chan_set(ch, ok ? ch->sent > 0 : ch->listening, 0);
		chan_mark(nc, ch); /* wanted no more, or again, meanwhile; or not done */
		if (chan_live(ch))
			list_for_each_safe(spos, stmp, &ch->subs) { /* answer_listen closes nobody */
				client_t *c = list_entry(spos, struct sub, in_chan)->c;
				struct notify_client *ncl = c->notify;
				if (ncl->await == AWAIT_IDLE && ncl->idle_ch == ch)
					answer_listen(c, NULL, NULL);
				else if (ncl->await == AWAIT_RELAY && ncl->ndark == 0)
					release_hold(c);
			}
		chan_prune(nc, ch);
	}
	reconcile(nc);
}

/* What the listener's ParameterStatus tells: its client_encoding (quoting follows it). */
static void listener_param(void *arg, const char *name, const char *value)
{
	struct notify_conn *nc = arg;
	if (strcmp(name, "client_encoding") == 0)
		snprintf(nc->encoding, sizeof(nc->encoding), "%s", value);
}

static void listener_notice(void *arg, const char *severity, const char *message)
{
	const struct notify_conn *nc = arg;
	log_info("pool %s/%s: LISTEN connection: %s:  %s", nc->pool->dbname, nc->pool->user,
		 severity, message);
}

static const struct hkquery_ops listener_ops = {
	.param = listener_param, .notification = deliver, .notice = listener_notice};

/* The listener connection's input: the answers to its queries, notifications between
 * them. */
static void on_input(struct stream *st, void *arg)
{
	struct notify_conn *nc = arg;
	while (nc->state == NC_READY || nc->state == NC_BUSY) {
		const char *why = "?";
		enum hkquery_status r = hkquery_read(&nc->q, &nc->st, &why);
		if (r == HKQUERY_MORE)
			return;
		if (r == HKQUERY_BAD) {
			conn_failed(nc, why);
			return;
		}
		if (nc->state != NC_BUSY) {
			conn_failed(nc, "the server sent a ReadyForQuery nothing asked for");
			return;
		}
		bool ok = !nc->q.failed;
		if (!ok)
			log_warning("pool %s/%s: LISTEN connection: ERROR:  %s", nc->pool->dbname,
				    nc->pool->user, nc->q.message);
		hkquery_begin(&nc->q, &listener_ops, nc); /* the next answer */
		query_done(nc, ok);
	}
}

static void on_drain(struct stream *st, void *arg) {}

static void on_event(struct stream *st, enum stream_event ev, void *arg)
{
	struct notify_conn *nc = arg;
	if (ev != STREAM_EOF)
		conn_failed(nc, stream_error_string(st));
	else /* a FATAL's message, when it sent one */
		conn_failed(nc, nc->q.fatal ? nc->q.message : "connection lost");
}

static const struct stream_ops listener_stream_ops = {
	.on_read = on_input, .on_drain = on_drain, .on_event = on_event};

/* Issues LISTEN for the channels marked that are wanted and not listened to, and UNLISTEN
 * for those listened to that nobody wants (up to QUERY_CHANNELS of them), in one query,
 * when none is in flight: the work follows what changed, not how many channels there
 * are. */
static void reconcile(struct notify_conn *nc)
{
	if (nc->state == NC_DOWN) {
		/* down, every channel kept is wanted (conn_failed and chan_prune) */
		if (nc->chans.count && !event_pending(&nc->retry_ev, EV_TIMEOUT, NULL))
			connect_start(nc);
		return;
	}
	if (nc->state != NC_READY)
		return;
	pbuf_reset(&sql);
	int n = 0;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &nc->dirty) {
		struct chan *ch = list_entry(pos, struct chan, link);
		bool want = ch->subs.count > 0;
		if (n == QUERY_CHANNELS)
			break; /* the rest goes in the next query */
		if (want == ch->listening) {
			list_del(&nc->dirty, pos);
			continue;
		}
		const char *why;
		size_t at = sql.len;
		proto_put_bytes(&sql, want ? "LISTEN " : "UNLISTEN ", want ? 7 : 9);
		if (!hkquery_quote_ident(&sql, ch->name, nc->encoding, &why)) {
			/* else its LISTEN would wait for ever */
			sql.len = at;
			char msg[256];
			snprintf(msg, sizeof(msg), "LISTEN failed: the channel name is not valid in the "
				 "connection's encoding %s (%s)", nc->encoding, why);
			log_warning("pool %s/%s: LISTEN connection: %s", nc->pool->dbname,
				    nc->pool->user, msg);
			chan_refuse(nc, ch, msg); /* freed (kept and tried again if listened to) */
			continue;
		}
		proto_put_bytes(&sql, ";", 1);
		list_del(&nc->dirty, pos);
		chan_set(ch, ch->listening, want ? 1 : -1);
		list_append(&nc->flight, &ch->link);
		n++;
	}
	if (!n)
		return;
	proto_put_u8(&sql, 0);
	if (sql.failed || !hkquery_send(&nc->st, (const char *)sql.data)) {
		conn_failed(nc, "out of memory");
		return;
	}
	nc->state = NC_BUSY;
}

/* ---- connecting ---------------------------------------------------------------------- */

/* NC's stream is open on a connection after its login's ReadyForQuery, whose
 * client_encoding is ENC (NULL: not reported): it listens from now on. */
static void listener_ready(struct notify_conn *nc, const char *enc, unsigned pid)
{
	listener_param(nc, "client_encoding", enc ? enc : "");
	hkquery_begin(&nc->q, &listener_ops, nc);
	log_info("pool %s/%s: LISTEN connection made, backend pid %u", nc->pool->dbname,
		 nc->pool->user, pid);
	nc->state = NC_READY;
	stream_set_read(&nc->st, true);
	reconcile(nc);
}

/* pgcoro's own login of the listener connection ended (the pool's server user logs in
 * with an md5 secret or a SCRAM verifier, as its servers do). */
static void own_login_done(struct srvconnect *sc, void *arg)
{
	struct notify_conn *nc = arg;
	nc->login = NULL;
	if (rt->shutting_down || nc->state != NC_CONNECTING) {
		srvconnect_free(sc);
		return;
	}
	struct server_conn c;
	if (!srvconnect_ok(sc) || !srvconnect_take(sc, &c)) {
		const struct srvlogin_error *e = srvconnect_error(sc);
		char reason[640];
		snprintf(reason, sizeof(reason), "%s%s%s", e->where, e->where[0] ? ": " : "",
			 srvconnect_ok(sc) ? "out of memory" : e->reason);
		srvconnect_free(sc);
		conn_failed(nc, reason);
		return;
	}
	stream_init(&nc->st, rt->base, c.fd, true, &listener_stream_ops, nc);
	if (c.ssl && !stream_tls_attach(&nc->st, c.ssl, true)) {
		SSL_free(c.ssl);
		srvconnect_free(sc);
		conn_failed(nc, "out of memory"); /* the stream (its socket) is reaped */
		return;
	}
	const char *enc = NULL;
	for (int i = 0; i < c.nparams; i++)
		if (strcmp(c.names[i], "client_encoding") == 0)
			enc = c.values[i];
	listener_ready(nc, enc, c.backend_pid);
	srvconnect_free(sc); /* after listener_ready copied the encoding */
}

static void job_start(struct exec_job *job)
{
	struct notify_conn *nc = job->arg;
	/* the pool's parameters, and a name in pg_stat_activity unless the entry sets one */
	int n = 0;
	while (nc->pool->kw[n])
		n++;
	const char **kw = calloc((size_t)n + 2, sizeof(*kw));
	const char **val = calloc((size_t)n + 2, sizeof(*val));
	if (kw && val) {
		memcpy(kw, nc->pool->kw, (size_t)n * sizeof(*kw));
		memcpy(val, nc->pool->val, (size_t)n * sizeof(*val));
		kw[n] = "fallback_application_name";
		val[n] = "pgcoro listener";
		nc->conn = PQconnectStartParams(kw, val, 0);
	}
	free(kw);
	free(val);
	nc->poll = nc->conn && PQstatus(nc->conn) != CONNECTION_BAD ? PGRES_POLLING_WRITING
								    : PGRES_POLLING_FAILED;
}

static void job_poll(struct exec_job *job)
{
	struct notify_conn *nc = job->arg;
	nc->poll = PQconnectPoll(nc->conn);
}

static void job_done(struct exec_job *job);

static void submit(struct notify_conn *nc, void (*fn)(struct exec_job *))
{
	nc->job.fn = fn;
	nc->job.done = job_done;
	nc->job.arg = nc;
	nc->job_running = true;
	exec_submit(rt->exec, &nc->job);
}

static void on_connect_step(evutil_socket_t fd, short what, void *arg)
{
	submit(arg, job_poll);
}

static void job_done(struct exec_job *job)
{
	struct notify_conn *nc = job->arg;
	nc->job_running = false;
	if (rt->shutting_down || nc->state != NC_CONNECTING) {
		if (nc->conn)
			PQfinish(nc->conn);
		nc->conn = NULL;
		return;
	}
	short what = 0;
	switch (nc->poll) {
	case PGRES_POLLING_READING:
		what = EV_READ;
		break;
	case PGRES_POLLING_WRITING:
		what = EV_WRITE;
		break;
	case PGRES_POLLING_OK:
		/* libpq writes nothing more but PQfinish's Terminate, which must not block */
		if (PQsetnonblocking(nc->conn, 1) != 0) {
			conn_failed(nc, PQerrorMessage(nc->conn));
			return;
		}
		stream_init(&nc->st, rt->base, PQsocket(nc->conn), false, &listener_stream_ops, nc);
		if (PQsslInUse(nc->conn)) { /* libpq did the handshake: the stream uses its handle */
			SSL *ssl = PQsslStruct(nc->conn, "OpenSSL");
			if (!ssl || !stream_tls_attach(&nc->st, ssl, false)) {
				conn_failed(nc, ssl ? "out of memory" : "TLS without an OpenSSL handle");
				return;
			}
		}
		const char *enc = PQparameterStatus(nc->conn, "client_encoding");
		listener_ready(nc, enc, (unsigned)PQbackendPID(nc->conn));
		return;
	default:
		conn_failed(nc, nc->conn ? PQerrorMessage(nc->conn) : "out of memory");
		return;
	}
	event_assign(&nc->ev, rt->base, PQsocket(nc->conn), what, on_connect_step, nc);
	event_add(&nc->ev, NULL);
}

/* Closes the connection (its stream, then libpq's PGconn). Never inside the stream's
 * callbacks. */
static void conn_close(struct notify_conn *nc)
{
	srvconnect_free(nc->login);
	nc->login = NULL;
	stream_free(&nc->st);
	if (nc->conn && !nc->job_running) {
		PQfinish(nc->conn);
		nc->conn = NULL;
	}
}

/* After a failure, outside the stream's callbacks: the connection goes, and a new one is
 * made if channels wait for it. */
static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct notify_conn *nc = arg;
	if (nc->state != NC_DOWN)
		return;
	conn_close(nc);
	reconcile(nc);
}

static void connect_start(struct notify_conn *nc)
{
	if (nc->state != NC_DOWN || nc->job_running || rt->shutting_down)
		return;
	if (stream_is_open(&nc->st)) {
		event_active(&nc->reap_ev, EV_TIMEOUT, 0); /* it connects once the old one went */
		return;
	}
	nc->state = NC_CONNECTING;
	/* the pool's parameters, as job_start's: its server user's secret decides the login */
	int n = 0;
	while (nc->pool->kw[n])
		n++;
	const char **kw = calloc((size_t)n + 2, sizeof(*kw));
	const char **val = calloc((size_t)n + 2, sizeof(*val));
	bool own = false;
	if (kw && val) {
		memcpy(kw, nc->pool->kw, (size_t)n * sizeof(*kw));
		memcpy(val, nc->pool->val, (size_t)n * sizeof(*val));
		kw[n] = "fallback_application_name";
		val[n] = "pgcoro listener";
		struct pool_conn_params cp = {kw, val, -1, nc->pool->dbname};
		if ((own = srvconnect_wanted(&cp)))
			nc->login = srvconnect_start(&cp, own_login_done, nc);
	}
	free(kw);
	free(val);
	if (own && !nc->login)
		conn_failed(nc, "out of memory");
	else if (!own)
		submit(nc, job_start);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg) { reconcile(arg); }

static struct notify_conn *conn_of(pool_t *p)
{
	if (p->notify)
		return p->notify;
	struct notify_conn *nc = calloc(1, sizeof(*nc));
	if (!nc)
		return NULL;
	nc->pool = p;
	list_head_init(&nc->dirty);
	list_head_init(&nc->flight);
	event_assign(&nc->ev, rt->base, -1, 0, on_connect_step, nc);
	evtimer_assign(&nc->reap_ev, rt->base, reap_cb, nc);
	evtimer_assign(&nc->retry_ev, rt->base, retry_cb, nc);
	p->notify = nc;
	return nc;
}

void notify_pool_free(pool_t *p)
{
	struct notify_conn *nc = p->notify;
	if (!nc)
		return;
	event_del(&nc->ev);
	event_del(&nc->reap_ev);
	event_del(&nc->retry_ev);
	conn_close(nc);
	hash_for_each(&nc->chans, i, n, next) {
		struct chan *ch = hash_entry(n, struct chan, node);
		struct list *pos, *tmp;
		list_for_each_safe(pos, tmp, &ch->subs) {
			struct sub *s = list_entry(pos, struct sub, in_chan);
			list_del(&s->c->notify->subs, &s->in_client);
			free(s);
		}
		free(ch);
	}
	hash_free(&nc->chans);
	hash_free(&nc->subs);
	free(nc);
	p->notify = NULL;
}

bool notify_pool_busy(const pool_t *p) { return p->notify && p->notify->job_running; }

/* ---- clients ------------------------------------------------------------------------- */

/* The client's notification state, made the first time it is needed (NULL: no memory). */
static struct notify_client *ncl_of(client_t *c)
{
	if (!c->notify && (c->notify = calloc(1, sizeof(*c->notify)))) {
		c->notify->c = c;
		list_head_init(&c->notify->subs);
		list_init(&c->notify->hold);
		event_assign(&c->notify->resume_ev, rt->base, -1, 0, resume_cb, c);
	}
	return c->notify;
}

/* The outcome of a LISTEN. */
enum sub_result { SUB_OK, SUB_NO_MEMORY, SUB_TOO_MANY };

/* C subscribes to NAME; *DARK: the listener does not listen to it yet (the caller's
 * reconcile issues its LISTEN, once C's wait is set: that may end it at once).
 * SUB_TOO_MANY: C listens to max_client_listen_channels channels already. */
static enum sub_result subscribe(client_t *c, struct notify_conn *nc, const char *name,
				 bool *dark)
{
	struct notify_client *ncl = c->notify;
	struct chan *ch = chan_find(nc, name);
	*dark = false;
	if (ch && sub_find(nc, ch, c))
		return SUB_OK; /* already listening: a no-op, as in PostgreSQL */
	int limit = rt->cfg->max_client_listen_channels;
	if (limit > 0 && ncl->subs.count >= limit)
		return SUB_TOO_MANY;
	if (!ch) {
		if (!(ch = calloc(1, sizeof(*ch))))
			return SUB_NO_MEMORY;
		if (!hash_add(&nc->chans, &ch->node, name_hash(name))) {
			free(ch);
			return SUB_NO_MEMORY;
		}
		strcpy(ch->name, name);
		list_init(&ch->link);
		list_head_init(&ch->subs);
	}
	struct sub *s = malloc(sizeof(*s));
	if (!s || !hash_add(&nc->subs, &s->node, sub_hash(ch, c))) {
		free(s);
		chan_prune(nc, ch);
		return SUB_NO_MEMORY;
	}
	s->ch = ch;
	s->c = c;
	list_append(&ch->subs, &s->in_chan);
	list_append(&ncl->subs, &s->in_client);
	*dark = !chan_live(ch);
	ncl->ndark += *dark;
	if (ch->subs.count == 1)
		chan_mark(nc, ch);
	return SUB_OK;
}

#define LIMIT_HINT "UNLISTEN the channels no longer used, or raise the limit in pgcoro's " \
		   "configuration."

/* The message of C's LISTEN of NAME refused (SUB_TOO_MANY), in MSG (N bytes). */
static void refusal_msg(const client_t *c, const char *name, char *msg, size_t n)
{
	snprintf(msg, n, "LISTEN \"%s\" refused: this client listens to %d channels, "
		 "max_client_listen_channels is %d", name, c->notify->subs.count,
		 rt->cfg->max_client_listen_channels);
}

/* C is answered MSG (53400) and goes on: counted in the metrics and logged (one line per
 * client per REFUSAL_LOG_SEC at most). */
static void refusal_log(client_t *c, const char *msg)
{
	struct notify_client *ncl = c->notify;
	metrics_error(c->pool, "53400");
	double now = rt_now();
	if (ncl->refused_at > 0 && now - ncl->refused_at < REFUSAL_LOG_SEC) {
		ncl->unlogged++;
		return;
	}
	char more[64] = "";
	if (ncl->unlogged)
		snprintf(more, sizeof(more), " (and %llu more since the last such line)",
			 (unsigned long long)ncl->unlogged);
	if (rt->cfg->log_pooler_errors)
		log_warning("client %llu %s (%s@%s): pooler error 53400: %s%s",
			    (unsigned long long)c->id, client_peer(c), c->user ? c->user : "-",
			    c->database ? c->database : "-", msg, more);
	ncl->refused_at = now;
	ncl->unlogged = 0;
}

/* Drops the notifications held for C on channels it no longer listens to (PostgreSQL
 * does not deliver what it received before an UNLISTEN committed). */
static void held_filter(client_t *c, struct notify_conn *nc)
{
	struct pbuf *h = &c->notify->held;
	size_t kept = 0, at = 0, before = h->len;
	if (h->failed)
		return;
	while (at + PROTO_HDR + 4 < h->len) { /* NotificationResponse: pid, channel, payload */
		size_t size = 1 + ((size_t)h->data[at + 1] << 24 | (size_t)h->data[at + 2] << 16 |
				   (size_t)h->data[at + 3] << 8 | h->data[at + 4]);
		struct chan *ch = chan_find(nc, (const char *)h->data + at + PROTO_HDR + 4);
		if (ch && sub_find(nc, ch, c)) {
			memmove(h->data + kept, h->data + at, size);
			kept += size;
		}
		at += size;
	}
	h->len = kept;
	held_changed(c->notify, before);
}

/* C unsubscribes from NAME, or from every channel when NAME is NULL. */
static void unsubscribe(client_t *c, struct notify_conn *nc, const char *name)
{
	struct notify_client *ncl = c->notify;
	if (name) {
		struct chan *ch = chan_find(nc, name);
		struct sub *s = ch ? sub_find(nc, ch, c) : NULL;
		if (s) {
			sub_drop(nc, s);
			chan_prune(nc, ch);
		}
	} else {
		struct list *pos, *tmp;
		list_for_each_safe(pos, tmp, &ncl->subs) {
			struct sub *s = list_entry(pos, struct sub, in_client);
			struct chan *ch = s->ch;
			sub_drop(nc, s);
			chan_prune(nc, ch);
		}
	}
	if (ncl->held.len)
		held_filter(c, nc);
	reconcile(nc);
}

bool notify_answer_idle(client_t *c, const struct proto_msg *m)
{
	if (c->pool->pool_mode == POOL_SESSION || m->blen < 1 || m->body[m->blen - 1] != 0)
		return false; /* a server says what is wrong with a Query without its NUL */
	char name[CHANNEL_CAP];
	enum proto_listen kind =
		proto_parse_listen((const char *)m->body, m->blen - 1, name, sizeof(name));
	if (kind == LISTEN_OTHER)
		return false;
	struct notify_conn *nc = conn_of(c->pool);
	if (!nc || !ncl_of(c)) {
		client_disconnect(c, "53200", "out of memory serving LISTEN");
		return true;
	}
	client_take(c, m);
	bool dark = false;
	switch (kind) {
	case LISTEN_ONE:
		switch (subscribe(c, nc, name, &dark)) {
		case SUB_OK:
			break;
		case SUB_NO_MEMORY:
			client_disconnect(c, "53200", "out of memory serving LISTEN");
			return true;
		case SUB_TOO_MANY: {
			char msg[256];
			refusal_msg(c, name, msg, sizeof(msg));
			refusal_log(c, msg);
			proto_build_error(&out, "ERROR", "53400", msg, NULL, LIMIT_HINT);
			proto_build_ready(&out, 'I');
			send_out(c, true);
			return true;
		}
		}
		break;
	case UNLISTEN_ONE:
		unsubscribe(c, nc, name);
		break;
	default:
		unsubscribe(c, nc, NULL);
		break;
	}
	if (dark) {
		c->notify->await = AWAIT_IDLE;
		c->notify->idle_ch = chan_find(nc, name);
		stream_set_read(&c->st, false); /* the answer comes when the listener listens */
		reconcile(nc);
		return true;
	}
	if (kind == LISTEN_ONE)
		reconcile(nc);
	proto_build_command_complete(&out, kind == LISTEN_ONE ? "LISTEN" : "UNLISTEN");
	proto_build_ready(&out, 'I');
	send_out(c, true);
	return true;
}

void notify_client_free(client_t *c)
{
	struct notify_client *ncl = c->notify;
	if (!ncl)
		return;
	event_del(&ncl->resume_ev);
	if (c->pool && c->pool->notify)
		unsubscribe(c, c->pool->notify, NULL);
	size_t had = ncl->held.len;
	ncl->held.len = 0;
	held_changed(ncl, had);
	free(ncl);
	c->notify = NULL;
}

/* C's LISTEN past its limit committed on its server (notify_subscribe): C is closed. */
static void close_refused(client_t *c)
{
	char msg[256];
	refusal_msg(c, c->notify->refused, msg, sizeof(msg));
	client_disconnect_hint(c, "53400", LIMIT_HINT, "%s", msg);
}

bool notify_subscribe(client_t *c, const char *channel, bool *dark)
{
	struct notify_conn *nc = conn_of(c->pool);
	enum sub_result r = nc && ncl_of(c) ? subscribe(c, nc, channel, dark) : SUB_NO_MEMORY;
	if (r == SUB_TOO_MANY && !c->notify->refused[0])
		strcpy(c->notify->refused, channel); /* closed by notify_hold's event */
	if (r == SUB_OK)
		reconcile(nc);
	return r != SUB_NO_MEMORY;
}

void notify_unsubscribe(client_t *c, const char *channel)
{
	if (c->notify && c->pool->notify)
		unsubscribe(c, c->pool->notify, channel);
}

bool notify_hold(client_t *c)
{
	struct notify_client *ncl = c->notify;
	if (!ncl || (ncl->ndark == 0 && !ncl->refused[0]))
		return false;
	ncl->await = AWAIT_RELAY;
	if (ncl->refused[0])
		event_active(&ncl->resume_ev, EV_TIMEOUT, 0); /* closed from there */
	return true;
}

bool notify_holding(const client_t *c) { return c->notify && c->notify->await == AWAIT_RELAY; }
