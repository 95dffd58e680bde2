/* Owns LISTEN/NOTIFY in transaction and statement mode: each pool's listener connection
 * (one libpq connection, made like a server's: connect steps on the executor, then
 * libpq's async API on the loop), its channels and their subscribed clients.
 *
 * DESIGN. A client without a server whose simple Query is one LISTEN or UNLISTEN
 * statement is served here instead of by a pooled server (which would keep listening
 * for whoever gets it next). The pool's listener connection issues LISTEN for a channel
 * when its first client subscribes and UNLISTEN when its last one leaves; the client's
 * LISTEN is answered (CommandComplete "LISTEN", ReadyForQuery) once the listener
 * listens, so every NOTIFY committed after the answer reaches it, as with PostgreSQL.
 * Notifications read with PQnotifies go as NotificationResponse to each subscriber: at
 * once when it is idle, else held until it gives its server back (PostgreSQL too
 * delivers them between transactions). NOTIFY itself passes through the relay. If the
 * listener connection fails, waiting LISTENs get an error, and it is made again (once
 * a second) while clients subscribe; notifications meanwhile are lost.
 * Any other LISTEN/UNLISTEN runs on the client's server (listenstmt.c reads it there);
 * when it commits, the client is subscribed here (notify_subscribe), and the relay holds
 * that ReadyForQuery until the listener listens (notify_hold). After an UNLISTEN the
 * notifications held for its channels go, as PostgreSQL drops them. */
#include "notify.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>

#include "array.h"
#include "client.h"
#include "config.h"
#include "executor.h"
#include "log.h"
#include "pool.h"
#include "proto.h"
#include "relay.h"
#include "runtime.h"
#include "stream.h"

#define NOTIFY_HELD_MAX (16u * 1024 * 1024) /* notifications held for a busy client */
#define CHANNEL_CAP 64                      /* NAMEDATALEN */

static struct runtime *rt;
static struct pbuf out; /* answers and notifications, reused */

/* A channel of a pool: its subscribers and whether the listener listens to it. */
struct chan {
	char name[CHANNEL_CAP];
	client_t **subs;
	int nsubs, cap;
	bool listening; /* LISTEN answered on the listener connection */
	int8_t sent;    /* in the query in flight: +1 LISTEN, -1 UNLISTEN, 0 not in it */
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
	PGconn *conn;
	struct event ev;       /* the socket (connect steps, then reading) */
	struct event retry_ev; /* reconnect after a failure */
	struct exec_job job;
	PostgresPollingStatusType poll;
	bool job_running;
	struct chan **chans;
	int nchans, cap;
};

enum await_kind {
	AWAIT_NONE,
	AWAIT_IDLE,  /* its simple Query LISTEN of idle_ch: answered here (input not read) */
	AWAIT_RELAY, /* its server's ReadyForQuery is held until all its channels listen */
};

/* A client's channels and the notifications held while it is busy. */
struct notify_client {
	struct chan **chans;
	int n, cap;
	enum await_kind await;
	struct chan *idle_ch;
	struct pbuf held;
	struct event resume_ev; /* after the answer: the client's input, or its relay, goes on */
};

void notify_init(struct runtime *r)
{
	rt = r;
	pbuf_init(&out);
}

/* ---- answers to clients -------------------------------------------------------------- */

/* Sends C what OUT holds (now, or held while C is busy). */
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
	} else if (nc->held.len + out.len > NOTIFY_HELD_MAX) {
		pbuf_reset(&out);
		client_disconnect(c, "53200", "more than %u bytes of notifications held for a busy "
					      "client", NOTIFY_HELD_MAX);
		return;
	} else {
		proto_put_bytes(&nc->held, out.data, out.len);
	}
	pbuf_reset(&out);
}

/* Ends C's wait for its simple Query LISTEN: answered, or with the error MSG. */
static void answer_listen(client_t *c, const char *msg)
{
	c->notify->await = AWAIT_NONE;
	c->notify->idle_ch = NULL;
	if (msg)
		proto_build_error(&out, "ERROR", "08006", msg, NULL, NULL);
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

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	client_t *c = arg;
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
	pbuf_free(&nc->held);
}

/* ---- channels ------------------------------------------------------------------------ */

static struct chan *chan_find(struct notify_conn *nc, const char *name)
{
	for (int i = 0; i < nc->nchans; i++)
		if (strcmp(nc->chans[i]->name, name) == 0)
			return nc->chans[i];
	return NULL;
}

static void chan_drop_sub(struct chan *ch, client_t *c)
{
	for (int i = 0; i < ch->nsubs; i++)
		if (ch->subs[i] == c) {
			ch->subs[i] = ch->subs[--ch->nsubs];
			return;
		}
}

/* Frees channels nobody wants that the listener does not listen to. */
static void chans_prune(struct notify_conn *nc)
{
	for (int i = 0; i < nc->nchans;) {
		struct chan *ch = nc->chans[i];
		if (ch->nsubs == 0 && !ch->listening && ch->sent == 0) {
			free(ch->subs);
			free(ch);
			nc->chans[i] = nc->chans[--nc->nchans];
		} else {
			i++;
		}
	}
}

static void connect_start(struct notify_conn *nc);
static void reconcile(struct notify_conn *nc);

/* True when every channel of C is listened to by the listener (its LISTENs answered). */
static bool all_live(const struct notify_client *ncl)
{
	for (int i = 0; i < ncl->n; i++)
		if (!ncl->chans[i]->listening || ncl->chans[i]->sent < 0)
			return false;
	return true;
}

/* C no longer has channel CH (already off CH's subscribers). */
static void client_drop_chan(struct notify_client *ncl, const struct chan *ch)
{
	for (int j = 0; j < ncl->n; j++)
		if (ncl->chans[j] == ch) {
			ncl->chans[j] = ncl->chans[--ncl->n];
			return;
		}
}

/* The listener connection failed (REASON): waiting LISTENs get an error, ReadyForQuery
 * held for it goes on (the client stays subscribed: its LISTEN committed on its server),
 * every channel is marked not listened, and a reconnect is armed while clients
 * subscribe. */
static void conn_failed(struct notify_conn *nc, const char *reason)
{
	log_warning("pool %s/%s: LISTEN connection: %s", nc->pool->dbname, nc->pool->user, reason);
	event_del(&nc->ev);
	if (nc->conn && !nc->job_running) {
		PQfinish(nc->conn);
		nc->conn = NULL;
	}
	nc->state = NC_DOWN;
	bool wanted = false;
	for (int i = 0; i < nc->nchans; i++) {
		struct chan *ch = nc->chans[i];
		ch->listening = false;
		ch->sent = 0;
		for (int k = 0; k < ch->nsubs;) {
			client_t *c = ch->subs[k];
			if (c->notify->await == AWAIT_IDLE && c->notify->idle_ch == ch) {
				chan_drop_sub(ch, c); /* not subscribed: PostgreSQL's LISTEN failed */
				client_drop_chan(c->notify, ch);
				answer_listen(c, "LISTEN failed: pgcoro's listener connection is down");
				continue;
			}
			if (c->notify->await == AWAIT_RELAY)
				release_hold(c);
			k++;
		}
		wanted |= ch->nsubs > 0;
	}
	chans_prune(nc);
	if (wanted && !rt->shutting_down) {
		struct timeval tv = {1, 0};
		event_add(&nc->retry_ev, &tv);
	}
}

static void deliver(struct notify_conn *nc, const PGnotify *n)
{
	struct chan *ch = chan_find(nc, n->relname);
	if (!ch || ch->sent < 0)
		return; /* UNLISTEN in flight: its subscribers came after it, their LISTEN waits */
	for (int i = 0; i < ch->nsubs; i++) {
		client_t *c = ch->subs[i];
		if (c->state == CL_CLOSING)
			continue;
		proto_build_notification(&out, (uint32_t)n->be_pid, n->relname,
					 n->extra ? n->extra : "");
		send_out(c, c->state == CL_IDLE && !c->notify->held.len &&
				 !stream_output_full(&c->st)); /* else held, up to NOTIFY_HELD_MAX */
	}
}

/* The LISTEN/UNLISTEN query in flight has ended (OK: without error). */
static void query_done(struct notify_conn *nc, bool ok)
{
	nc->state = NC_READY;
	for (int i = 0; i < nc->nchans; i++) {
		struct chan *ch = nc->chans[i];
		if (ok && ch->sent)
			ch->listening = ch->sent > 0;
		ch->sent = 0;
		if (!ch->listening)
			continue;
		for (int k = 0; k < ch->nsubs; k++) { /* answer_listen may close nobody here */
			struct notify_client *ncl = ch->subs[k]->notify;
			if (ncl->await == AWAIT_IDLE && ncl->idle_ch == ch)
				answer_listen(ch->subs[k], NULL);
			else if (ncl->await == AWAIT_RELAY && all_live(ncl))
				release_hold(ch->subs[k]);
		}
	}
	chans_prune(nc);
	reconcile(nc);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct notify_conn *nc = arg;
	if (what & EV_WRITE) {
		int r = PQflush(nc->conn);
		if (r < 0) {
			conn_failed(nc, PQerrorMessage(nc->conn));
			return;
		}
		if (r == 0) {
			event_del(&nc->ev);
			event_assign(&nc->ev, rt->base, PQsocket(nc->conn), EV_READ | EV_PERSIST, on_read,
				     nc);
			event_add(&nc->ev, NULL);
		}
		return;
	}
	if (!PQconsumeInput(nc->conn)) {
		conn_failed(nc, PQerrorMessage(nc->conn));
		return;
	}
	while (nc->state == NC_BUSY && !PQisBusy(nc->conn)) {
		PGresult *res = PQgetResult(nc->conn);
		if (!res) {
			query_done(nc, true);
			break;
		}
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			log_warning("pool %s/%s: LISTEN connection: %s", nc->pool->dbname,
				    nc->pool->user, PQresultErrorMessage(res));
			PQclear(res);
			while ((res = PQgetResult(nc->conn)))
				PQclear(res);
			query_done(nc, false);
			break;
		}
		PQclear(res);
	}
	PGnotify *n;
	while (nc->conn && (n = PQnotifies(nc->conn))) {
		deliver(nc, n);
		PQfreemem(n);
	}
	if (nc->conn && PQstatus(nc->conn) == CONNECTION_BAD)
		conn_failed(nc, "connection lost");
}

/* Issues LISTEN for wanted channels not listened to and UNLISTEN for listened ones
 * nobody wants, in one query, when none is in flight. */
static void reconcile(struct notify_conn *nc)
{
	if (nc->state == NC_DOWN) {
		for (int i = 0; i < nc->nchans; i++)
			if (nc->chans[i]->nsubs > 0) {
				if (!event_pending(&nc->retry_ev, EV_TIMEOUT, NULL))
					connect_start(nc);
				return;
			}
		return;
	}
	if (nc->state != NC_READY)
		return;
	struct pbuf sql;
	pbuf_init(&sql);
	for (int i = 0; i < nc->nchans; i++) {
		struct chan *ch = nc->chans[i];
		bool want = ch->nsubs > 0;
		if (want == ch->listening)
			continue;
		char *id = PQescapeIdentifier(nc->conn, ch->name, strlen(ch->name));
		if (!id)
			continue;
		proto_put_bytes(&sql, want ? "LISTEN " : "UNLISTEN ", want ? 7 : 9);
		proto_put_bytes(&sql, id, strlen(id));
		proto_put_bytes(&sql, ";", 1);
		PQfreemem(id);
		ch->sent = want ? 1 : -1;
	}
	if (!sql.len) {
		pbuf_free(&sql);
		return;
	}
	proto_put_u8(&sql, 0);
	bool ok = !sql.failed && PQsendQuery(nc->conn, (const char *)sql.data) == 1;
	pbuf_free(&sql);
	if (!ok) {
		conn_failed(nc, PQerrorMessage(nc->conn));
		return;
	}
	nc->state = NC_BUSY;
	int r = PQflush(nc->conn);
	if (r < 0) {
		conn_failed(nc, PQerrorMessage(nc->conn));
	} else if (r > 0) {
		event_del(&nc->ev);
		event_assign(&nc->ev, rt->base, PQsocket(nc->conn), EV_WRITE | EV_PERSIST, on_read, nc);
		event_add(&nc->ev, NULL);
	}
}

/* ---- connecting ---------------------------------------------------------------------- */

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
		if (PQsetnonblocking(nc->conn, 1) != 0) {
			conn_failed(nc, PQerrorMessage(nc->conn));
			return;
		}
		log_info("pool %s/%s: LISTEN connection made, backend pid %d", nc->pool->dbname,
			 nc->pool->user, PQbackendPID(nc->conn));
		nc->state = NC_READY;
		event_assign(&nc->ev, rt->base, PQsocket(nc->conn), EV_READ | EV_PERSIST, on_read, nc);
		event_add(&nc->ev, NULL);
		reconcile(nc);
		return;
	default:
		conn_failed(nc, nc->conn ? PQerrorMessage(nc->conn) : "out of memory");
		return;
	}
	event_assign(&nc->ev, rt->base, PQsocket(nc->conn), what, on_connect_step, nc);
	event_add(&nc->ev, NULL);
}

static void connect_start(struct notify_conn *nc)
{
	if (nc->state != NC_DOWN || nc->job_running || rt->shutting_down)
		return;
	nc->state = NC_CONNECTING;
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
	event_assign(&nc->ev, rt->base, -1, 0, on_read, nc);
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
	event_del(&nc->retry_ev);
	if (nc->conn)
		PQfinish(nc->conn);
	for (int i = 0; i < nc->nchans; i++) {
		free(nc->chans[i]->subs);
		free(nc->chans[i]);
	}
	free(nc->chans);
	free(nc);
	p->notify = NULL;
}

bool notify_pool_busy(const pool_t *p) { return p->notify && p->notify->job_running; }

/* ---- clients ------------------------------------------------------------------------- */

/* The client's notification state, made the first time it is needed (NULL: no memory). */
static struct notify_client *ncl_of(client_t *c)
{
	if (!c->notify && (c->notify = calloc(1, sizeof(*c->notify))))
		event_assign(&c->notify->resume_ev, rt->base, -1, 0, resume_cb, c);
	return c->notify;
}

/* C subscribes to NAME; *DARK: the listener does not listen to it yet (its LISTEN is
 * issued now). False: no memory. */
static bool subscribe(client_t *c, struct notify_conn *nc, const char *name, bool *dark)
{
	struct notify_client *ncl = c->notify;
	struct chan *ch = chan_find(nc, name);
	for (int i = 0; ch && i < ncl->n; i++)
		if (ncl->chans[i] == ch) {
			*dark = false; /* already listening: a no-op, as in PostgreSQL */
			return true;
		}
	if (!ch) {
		if (!array_grow((void **)&nc->chans, &nc->cap, nc->nchans + 1, sizeof(*nc->chans)))
			return false;
		ch = calloc(1, sizeof(*ch));
		if (!ch)
			return false;
		strcpy(ch->name, name);
		nc->chans[nc->nchans++] = ch;
	}
	if (!array_grow((void **)&ch->subs, &ch->cap, ch->nsubs + 1, sizeof(*ch->subs)) ||
	    !array_grow((void **)&ncl->chans, &ncl->cap, ncl->n + 1, sizeof(*ncl->chans))) {
		chans_prune(nc);
		return false;
	}
	ch->subs[ch->nsubs++] = c;
	ncl->chans[ncl->n++] = ch;
	*dark = !ch->listening || ch->sent < 0;
	reconcile(nc);
	return true;
}

/* Drops the notifications held for C on channels it no longer listens to (PostgreSQL
 * does not deliver what it received before an UNLISTEN committed). */
static void held_filter(struct notify_client *ncl)
{
	struct pbuf *h = &ncl->held;
	size_t kept = 0, at = 0;
	if (h->failed)
		return;
	while (at + PROTO_HDR + 4 < h->len) { /* NotificationResponse: pid, channel, payload */
		size_t size = 1 + ((size_t)h->data[at + 1] << 24 | (size_t)h->data[at + 2] << 16 |
				   (size_t)h->data[at + 3] << 8 | h->data[at + 4]);
		const char *chan = (const char *)h->data + at + PROTO_HDR + 4;
		bool keep = false;
		for (int i = 0; i < ncl->n && !keep; i++)
			keep = strcmp(ncl->chans[i]->name, chan) == 0;
		if (keep) {
			memmove(h->data + kept, h->data + at, size);
			kept += size;
		}
		at += size;
	}
	h->len = kept;
}

/* C unsubscribes from NAME, or from every channel when NAME is NULL. */
static void unsubscribe(client_t *c, struct notify_conn *nc, const char *name)
{
	struct notify_client *ncl = c->notify;
	for (int i = 0; i < ncl->n;) {
		struct chan *ch = ncl->chans[i];
		if (name && strcmp(ch->name, name) != 0) {
			i++;
			continue;
		}
		chan_drop_sub(ch, c);
		ncl->chans[i] = ncl->chans[--ncl->n];
	}
	if (ncl->held.len)
		held_filter(ncl);
	chans_prune(nc);
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
		if (!subscribe(c, nc, name, &dark)) {
			client_disconnect(c, "53200", "out of memory serving LISTEN");
			return true;
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
		return true;
	}
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
	free(ncl->chans);
	pbuf_free(&ncl->held);
	free(ncl);
	c->notify = NULL;
}

bool notify_subscribe(client_t *c, const char *channel, bool *dark)
{
	struct notify_conn *nc = conn_of(c->pool);
	return nc && ncl_of(c) && subscribe(c, nc, channel, dark);
}

void notify_unsubscribe(client_t *c, const char *channel)
{
	if (c->notify && c->pool->notify)
		unsubscribe(c, c->pool->notify, channel);
}

bool notify_hold(client_t *c)
{
	if (!c->notify || all_live(c->notify))
		return false;
	c->notify->await = AWAIT_RELAY;
	return true;
}

bool notify_holding(const client_t *c) { return c->notify && c->notify->await == AWAIT_RELAY; }
