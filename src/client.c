/* Owns client sessions: the login and closing lists, the state transitions, the cancel
 * keys, what follows the login (client_logged_in: the console, a pool, the welcome), the
 * input of a client without a server (whole messages only: client_next / client_take),
 * and the one funnel that ends a session with a proper ErrorResponse. The login dialog
 * itself is login.c. The reaper frees closed clients and servers after the loop
 * iteration. */
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event_struct.h>

#include "auth.h"
#include "config.h"
#include "console.h"
#include "listenstmt.h"
#include "log.h"
#include "login.h"
#include "metrics.h"
#include "notify.h"
#include "peers.h"
#include "pin.h"
#include "pool.h"
#include "poolctl.h"
#include "prepared.h"
#include "proto.h"
#include "rand.h"
#include "relay.h"
#include "runtime.h"
#include "server.h"
#include "shutdown.h"
#include "signals.h"
#include "sockopt.h"
#include "tls.h"

#define CLOSE_DRAIN_SEC 5   /* how long a closing client may take to read its last words */

static struct runtime *rt;
static struct list_head login_list;   /* CL_LOGIN */
static struct list_head closing_list; /* CL_CLOSING */
static struct list_head console_list; /* CL_CONSOLE */
static struct pbuf out;               /* reused for every message pgcoro builds */
static struct event reap_ev;
static int nclients;                  /* every client not yet closing */

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	client_reap(false);
	server_reap(false);
	console_poll(); /* servers closed: a PAUSE or WAIT_CLOSE may be done */
	signals_poll(); /* and a SIGUSR1 pause */
	shutdown_check();
}

void client_init(struct runtime *r)
{
	rt = r;
	list_head_init(&login_list);
	list_head_init(&closing_list);
	list_head_init(&console_list);
	pbuf_init(&out);
	event_assign(&reap_ev, rt->base, -1, 0, reap_cb, NULL);
}

void reaper_schedule(void) { event_active(&reap_ev, EV_TIMEOUT, 0); }

int client_count(void) { return nclients; }

const char *client_state_name(enum client_state state)
{
	switch (state) {
	case CL_LOGIN: return "login";
	case CL_WAITING: return "waiting";
	case CL_ACTIVE: return "active";
	case CL_IDLE: return "idle";
	case CL_CLOSING: return "closing";
	case CL_CONSOLE: return "console";
	}
	return "?";
}

static inline struct list_head *state_list(client_t *c, enum client_state state)
{
	switch (state) {
	case CL_LOGIN: return &login_list;
	case CL_WAITING: return &c->pool->waiting;
	case CL_ACTIVE:
	case CL_IDLE: return &c->pool->clients;
	case CL_CLOSING: return &closing_list;
	case CL_CONSOLE: return &console_list;
	}
	fatal("client %llu: impossible state %d", (unsigned long long)c->id, (int)state);
}

static __attribute__((noinline, cold)) void log_transition(const client_t *c,
								enum client_state to)
{
	log_msg(LOGL_DEBUG, "client %llu: %s -> %s", (unsigned long long)c->id,
		client_state_name(c->state), client_state_name(to));
}

/* A state whose list is the pool's one list of clients with a session there. */
static inline bool in_pool_clients(enum client_state state)
{
	return state == CL_ACTIVE || state == CL_IDLE;
}

void client_set_state(client_t *c, enum client_state state)
{
	bool linked = list_linked(&c->node);
	enum client_state was = c->state;
	if (linked && log_enabled(LOGL_DEBUG))
		log_transition(c, state);
	if (linked && was == CL_ACTIVE)
		c->pool->cl_active--;
	if (state == CL_ACTIVE)
		c->pool->cl_active++;
	if (__builtin_expect(c->replication, 0) && (was == CL_WAITING) != (state == CL_WAITING))
		c->pool->repl_waiting += linked && was == CL_WAITING ? -1 : 1;
	c->state = state;
	if (linked && in_pool_clients(was) && in_pool_clients(state))
		return; /* active <-> idle, every hand-out and release: one list, no jump table */
	if (linked)
		list_del(state_list(c, was), &c->node);
	list_append(state_list(c, state), &c->node);
}

/* ---- output -------------------------------------------------------------------------- */

/* Queues what OUT holds for C. The write happens at the end of the current handler
 * (client_read_cb, client_on_server_ready), so AuthenticationOk and the welcome leave
 * in one writev. */
static void send_out(client_t *c)
{
	if (out.failed || !stream_queue(&c->st, out.data, out.len)) {
		pbuf_reset(&out);
		client_disconnect(c, NULL, "out of memory building a message");
		return;
	}
	pbuf_reset(&out);
}

/* ---- the timer ----------------------------------------------------------------------- */

static void client_timer_cb(evutil_socket_t fd, short what, void *arg);
static void xact_timer_cb(evutil_socket_t fd, short what, void *arg);

static struct timeval sec_tv(double sec)
{
	return (struct timeval){(time_t)sec, (suseconds_t)((sec - (double)(time_t)sec) * 1e6)};
}

/* C's timer *EV, made with CB on first use. False when out of memory (WHAT is then not
 * enforced: logged). */
static bool timer_made(client_t *c, struct event **ev, event_callback_fn cb, const char *what)
{
	if (!*ev && !(*ev = evtimer_new(rt->base, cb, c))) {
		log_warning("client %llu: out of memory for a timer: %s not enforced",
			    (unsigned long long)c->id, what);
		return false;
	}
	return true;
}

/* Arms the client's timer for KIND in SEC seconds; SEC <= 0 disarms it. */
static void timer_set(client_t *c, enum client_timer kind, double sec)
{
	if (sec <= 0) {
		if (c->timer_kind != CT_NONE) {
			evtimer_del(c->timer);
			c->timer_kind = CT_NONE;
		}
		return;
	}
	if (!timer_made(c, &c->timer, client_timer_cb, "a timeout"))
		return;
	struct timeval tv = sec_tv(sec);
	c->timer_kind = kind;
	evtimer_add(c->timer, &tv);
}

/* A transaction of C begins: transaction_timeout counts from now. */
static void xact_timer_start(client_t *c)
{
	if (!timer_made(c, &c->xact_timer, xact_timer_cb, "transaction_timeout"))
		return;
	struct timeval tv = sec_tv(c->pool->transaction_timeout);
	evtimer_add(c->xact_timer, &tv);
	c->xact_armed = true;
}

static void xact_timer_stop(client_t *c)
{
	evtimer_del(c->xact_timer);
	c->xact_armed = false;
}

/* After login: with no timeout that applies to a logged-in client, the timer goes (an
 * idle client is smaller without it). */
static void timer_after_login(client_t *c)
{
	const pool_t *p = c->pool;
	if (c->timer && c->timer_kind == CT_NONE && p->client_idle_timeout <= 0 &&
	    p->idle_transaction_timeout <= 0 && p->query_timeout <= 0) {
		event_free(c->timer);
		c->timer = NULL;
	}
}

/* query_timeout for C: its pool's, none for a replication connection (streaming WAL or a
 * base backup is one command that lasts as long as it must). */
static double query_timeout(const client_t *c)
{
	return c->replication ? 0 : c->pool->query_timeout;
}

/* The timer that fits what the session is doing now: a request outstanding, idle in a
 * transaction, or idle. */
static void timer_rearm(client_t *c)
{
	const pool_t *p = c->pool; /* its timeouts: the [users] entry's, else the global ones */
	server_t *s = c->server;
	if (s && (s->out_syncs > 0 || s->mid_ext))
		timer_set(c, CT_QUERY, query_timeout(c));
	else if (s && s->tx_status != 'I')
		timer_set(c, CT_IDLE_XACT, p->idle_transaction_timeout);
	else
		timer_set(c, CT_IDLE, p->client_idle_timeout);
}

void client_on_request(client_t *c)
{
	/* armed from a transaction's first request to the ReadyForQuery that ends it (none
	 * for a replication connection, as query_timeout: a stream is one long command) */
	if (c->pool->transaction_timeout > 0 && !c->xact_armed && !c->replication)
		xact_timer_start(c);
	if (c->timer_kind == CT_QUERY)
		return; /* counted from the first message of the request */
	if (query_timeout(c) > 0)
		timer_set(c, CT_QUERY, query_timeout(c));
	else if (c->timer_kind != CT_NONE)
		timer_set(c, CT_NONE, 0);
}

static bool at_release_point(client_t *c, server_t *s);

void client_shutdown_if_done(client_t *c)
{
	server_t *s = c->server;
	if (c->state != CL_ACTIVE || !s || !at_release_point(c, s))
		return;
	/* its server goes back to the pool here (in session mode, or a replication
	 * connection's, only when it leaves) */
	if (s->tx_status == 'I' && c->pool->pool_mode != POOL_SESSION && !c->replication)
		client_disconnect(c, "57P01", "server shutting down");
}

void client_on_ready(client_t *c)
{
	const server_t *s = c->server;
	if (c->xact_armed && s && s->tx_status == 'I' && s->out_syncs == 0 && !s->mid_ext)
		xact_timer_stop(c); /* its transaction ended, and nothing else is outstanding */
	if (rt->shutdown == SHUTDOWN_SERVERS) {
		client_shutdown_if_done(c);
		if (c->state != CL_ACTIVE)
			return;
	}
	if (c->timer_kind != CT_NONE || c->pool->client_idle_timeout > 0 ||
	    c->pool->idle_transaction_timeout > 0)
		timer_rearm(c);
}

static void disconnect_extra(client_t *c, const char *sqlstate, const char *detail,
			     const char *hint, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Asks the pool for a server: at once if one is free, else C waits in CL_WAITING (FIFO);
 * query_wait_timeout is enforced by the pool's tick from c->since, so queueing costs
 * no timer operation. */
static void wait_for_server(client_t *c) { pool_request(c->pool, c); }

void client_tick(double now)
{
	double limit = rt->cfg->client_login_timeout;
	if (limit <= 0)
		return;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &login_list)
	{
		client_t *c = list_entry(pos, client_t, node);
		if (now - c->since < limit)
			break; /* in accept order: the rest came later */
		metrics_timeout(NULL, MT_CLIENT_LOGIN);
		client_disconnect(c, "08006", "client_login_timeout (%gs) reached", limit);
	}
}

/* query_timeout, not query_wait_timeout, bounds the wait of P's clients. */
static bool wait_bound_by_query_timeout(const pool_t *p)
{
	return p->query_timeout > 0 &&
	       (p->query_wait_timeout <= 0 || p->query_timeout < p->query_wait_timeout);
}

double client_wait_limit(const pool_t *p)
{
	return wait_bound_by_query_timeout(p) ? p->query_timeout : p->query_wait_timeout;
}

void client_wait_timeout(client_t *c)
{
	bool qt = wait_bound_by_query_timeout(c->pool);
	metrics_timeout(c->pool, qt ? MT_QUERY : MT_QUERY_WAIT);
	disconnect_extra(c, "57014", NULL,
			 qt ? "Raise the pool size or query_timeout, or look for sessions "
			      "holding their server."
			    : "Raise the pool size or query_wait_timeout, or look for sessions "
			      "holding their server.",
			 "%s (%gs): no server connection became available",
			 qt ? "query_timeout" : "query_wait_timeout", client_wait_limit(c->pool));
}

void client_wait_notify(client_t *c)
{
	c->wait_notified = true;
	proto_build_notice(&out, "NOTICE", "00000",
			   "No server connection available in postgres backend, client being queued",
			   NULL);
	if (!out.failed)
		stream_send(&c->st, out.data, out.len);
	pbuf_reset(&out);
}

/* ---- cancel keys --------------------------------------------------------------------- */

#define CANCEL_BUCKETS 16384 /* chains stay short up to ~100k clients */
static client_t *cancel_table[CANCEL_BUCKETS];

static unsigned cancel_bucket(uint32_t pid, uint32_t key)
{
	uint64_t h = ((uint64_t)pid << 32 | key) * 0x9E3779B97F4A7C15ull;
	return (unsigned)(h >> 50) & (CANCEL_BUCKETS - 1);
}

static client_t *cancel_lookup(uint32_t pid, uint32_t key)
{
	for (client_t *c = cancel_table[cancel_bucket(pid, key)]; c; c = c->cancel_next)
		if (c->cancel_pid == pid && c->cancel_key == key)
			return c;
	return NULL;
}

/* Gives C a key no other client holds (KEEP: C's own, kept unless another holds it) and
 * enters it in the table. */
static void cancel_register(client_t *c, bool keep)
{
	if (keep && !cancel_lookup(c->cancel_pid, c->cancel_key))
		goto enter;
	do {
		uint32_t key[2];
		if (!rand_bytes(key, sizeof(key))) {
			key[0] = (uint32_t)c->id;
			key[1] = (uint32_t)random();
		}
		c->cancel_pid = key[0] & 0x7fffffff;
		c->cancel_key = key[1];
		c->cancel_stamped = peers_stamp_key(&c->cancel_pid, &c->cancel_key);
	} while (cancel_lookup(c->cancel_pid, c->cancel_key));
enter:;
	unsigned b = cancel_bucket(c->cancel_pid, c->cancel_key);
	c->cancel_next = cancel_table[b];
	cancel_table[b] = c;
}

static void cancel_unregister(client_t *c)
{
	client_t **pp = &cancel_table[cancel_bucket(c->cancel_pid, c->cancel_key)];
	while (*pp && *pp != c)
		pp = &(*pp)->cancel_next;
	if (*pp)
		*pp = c->cancel_next;
}

void client_cancel_request(uint32_t pid, uint32_t key)
{
	/* this process's clients first, whatever peer id the key carries: peer_id may have
	 * changed (a reload) since their keys were given out; with the TTL bits restored, for
	 * a key a peer forwarded here */
	client_t *target = cancel_lookup(pid, key);
	uint32_t given = peers_key_as_given(key);
	if (!target && given != key) {
		/* only a key given out with TTL bits has them restored: an unstamped key's two
		 * bits are secret like the rest (else key ^ 1 could cancel) */
		client_t *t = cancel_lookup(pid, given);
		if (t && t->cancel_stamped)
			target = t;
	}
	if (!target && !peers_route_cancel(pid, key))
		return; /* another peer's: forwarded or dropped */
	if (!target || target->state != CL_ACTIVE || !target->server) {
		log_info("cancel request for %s: ignored", target ? "a client without a running query"
								  : "unknown keys");
		metrics_cancel_request(false);
		return;
	}
	metrics_cancel_request(true);
	server_cancel(target->server);
}

static void vdisconnect(client_t *c, const char *sqlstate, const char *detail, const char *hint,
			const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void vdisconnect(client_t *c, const char *sqlstate, const char *detail, const char *hint,
			const char *fmt, va_list ap)
{
	if (c->state == CL_CLOSING)
		return;
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	server_t *s = c->server;
	/* not mid-message towards the client, nor in the middle of a TLS handshake */
	bool handshaking = c->st.tls && !stream_tls_ready(&c->st);
	bool can_send = sqlstate && !(s && s->msg_pending) && !handshaking;

	/* PgBouncer's words, which its users' log alerts look for: "closing because: REASON
	 * (age=Ns)", the age in whole seconds */
	const struct config *cfg = rt->cfg;
	unsigned long long age = (unsigned long long)(rt_now() - c->born);
	if (sqlstate && cfg->log_pooler_errors)
		log_warning("client %llu %s (%s@%s): pooler error %s, closing because: %s (age=%llus)",
			    (unsigned long long)c->id, client_peer(c), c->user ? c->user : "-",
			    c->database ? c->database : "-", sqlstate, msg, age);
	else if (cfg->log_disconnections)
		log_info("client %llu %s (%s@%s): closing because: %s (age=%llus)",
			 (unsigned long long)c->id, client_peer(c), c->user ? c->user : "-",
			 c->database ? c->database : "-", msg, age);
	if (s) {
		if (c->msg_pending)
			s->mid_ext = true; /* the server got part of a message: not reusable */
		if (c->pins || c->pin_check)
			s->pinned = true; /* what its session made goes with server_reset_query */
		c->server = NULL;
		server_release(s);
	}
	pin_client_free(c);
	if (can_send) {
		metrics_error(c->state == CL_LOGIN ? NULL : c->pool, sqlstate);
		proto_build_error(&out, "FATAL", sqlstate, msg, detail, hint);
		if (!out.failed)
			stream_send(&c->st, out.data, out.len);
		pbuf_reset(&out);
	}
	if (c->xact_armed)
		xact_timer_stop(c);
	client_set_state(c, CL_CLOSING);
	nclients--;
	login_free(c);
	stream_set_read(&c->st, false);
	stream_flush(&c->st); /* what was queued (the login's answers): written now */
	if (stream_output_len(&c->st) == 0) {
		timer_set(c, CT_NONE, 0);
		c->drained = true;
		reaper_schedule();
	} else {
		timer_set(c, CT_DRAIN, CLOSE_DRAIN_SEC); /* time to read its last words */
	}
}

void client_disconnect(client_t *c, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdisconnect(c, sqlstate, NULL, NULL, fmt, ap);
	va_end(ap);
}

static void disconnect_extra(client_t *c, const char *sqlstate, const char *detail,
			     const char *hint, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdisconnect(c, sqlstate, detail, hint, fmt, ap);
	va_end(ap);
}

void client_disconnect_hint(client_t *c, const char *sqlstate, const char *hint,
			    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdisconnect(c, sqlstate, NULL, hint, fmt, ap);
	va_end(ap);
}

void client_disconnect_error(client_t *c, const char *sqlstate, const char *detail,
			     const char *hint, const char *message)
{
	disconnect_extra(c, sqlstate, detail, hint, "%s", message);
}

static void client_free(client_t *c)
{
	cancel_unregister(c);
	if (c->timer)
		event_free(c->timer);
	c->timer = NULL;
	if (c->xact_timer)
		event_free(c->xact_timer);
	stream_free(&c->st);
	login_free(c);
	console_forget(c);
	prep_client_free(c);
	notify_client_free(c);
	listenstmt_client_free(c);
	pin_client_free(c);
	if (c->session_params)
		for (int i = 0; i < SERVER_NPARAMS; i++)
			free(c->session_params[i]);
	free(c->session_params);
	free(c->params);
	if (c->pool) {
		c->pool->last_active = rt_now(); /* pool_idle_timeout counts from here */
		pool_unref(c->pool);
	}
	free(c);
}

void client_reap(bool force)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &closing_list)
	{
		client_t *c = list_entry(pos, client_t, node);
		if (!force && !c->drained)
			continue;
		list_del(&closing_list, &c->node);
		client_free(c);
	}
}

/* Closes every client on H with 57P01 (shutting down). */
static void close_list_shutdown(struct list_head *h)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, h)
	{
		client_t *c = list_entry(pos, client_t, node);
		client_disconnect(c, "57P01", "server shutting down");
	}
}

const struct list_head *client_console_clients(void) { return &console_list; }
const struct list_head *client_login_clients(void) { return &login_list; }

void client_close_all(void)
{
	close_list_shutdown(&login_list);
	close_list_shutdown(&console_list);
}

static client_t *find_in(const struct list_head *h, uint64_t id)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, h)
	{
		client_t *c = list_entry(pos, client_t, node);
		if (c->id == id)
			return c;
	}
	return NULL;
}

client_t *client_find(uint64_t id)
{
	client_t *c = find_in(&console_list, id);
	for (pool_t *p = pool_next(NULL); p && !c; p = pool_next(p)) {
		c = find_in(&p->clients, id);
		if (!c)
			c = find_in(&p->waiting, id);
	}
	return c;
}

/* ---- the welcome --------------------------------------------------------------------- */

/* Sends ParameterStatus for every reported parameter, BackendKeyData and ReadyForQuery.
 * The values are the server's PARAMS (session mode: the server C got), or, when PARAMS
 * is NULL, those of C's pool, whose messages are built once (transaction mode: the login
 * is answered without a server) with C's own startup values over them. */
void client_send_welcome(client_t *c, char *const *params)
{
	if (params) {
		for (int i = 0; i < SERVER_NPARAMS; i++)
			if (params[i])
				proto_build_param_status(&out, server_param_names[i], params[i]);
	} else {
		const struct pool_welcome *w = &c->pool->traffic->welcome; /* params_known */
		const char *own[SERVER_NPARAMS] = {0};
		for (int k = 0; k < c->nparams; k++)
			if (c->params[k].report >= 0)
				own[c->params[k].report] = c->params[k].value;
		uint32_t from = 0;
		for (int i = 0; i < SERVER_NPARAMS; i++) {
			if (!own[i])
				continue;
			proto_put_bytes(&out, w->msgs.data + from, w->at[i] - from);
			proto_build_param_status(&out, server_param_names[i], own[i]);
			from = w->at[i + 1];
		}
		proto_put_bytes(&out, w->msgs.data + from, w->at[SERVER_NPARAMS] - from);
	}
	proto_build_backend_key(&out, c->cancel_pid, c->cancel_key);
	if (rt->cfg->login_notify_message[0])
		proto_build_notice(&out, "NOTICE", "00000", rt->cfg->login_notify_message, NULL);
	proto_build_ready(&out, 'I');
	c->welcomed = true;
	send_out(c);
}

void client_on_server_ready(client_t *c)
{
	server_t *s = c->server;
	if (c->state != CL_ACTIVE || !s)
		fatal("client %llu: server ready in state %s", (unsigned long long)c->id,
		      client_state_name(c->state));
	if (!c->welcomed) {
		if (rt->cfg->log_connections) {
			char tls[128];
			log_info("client %llu %s (%s@%s): login done, server %llu, tls=%s",
				 (unsigned long long)c->id, client_peer(c), c->user,
				 c->pool->dbname, (unsigned long long)s->id,
				 tls_conn_info(stream_ssl(&c->st), tls, sizeof(tls)));
		}
		/* transaction/statement mode: as every later login's, from the pool's
		 * parameters (its server may not have its settings: server_assign) */
		bool pooled = c->pool->pool_mode != POOL_SESSION && !c->replication &&
			      c->pool->params_known;
		client_send_welcome(c, pooled ? NULL : s->params);
		stream_flush(&c->st);
		if (c->state != CL_ACTIVE)
			return;
	}
	relay_client_to_server(c);
	if (c->state == CL_ACTIVE && c->server == s) {
		const pool_t *p = c->pool;
		if (c->timer || p->query_timeout > 0 || p->client_idle_timeout > 0 ||
		    p->idle_transaction_timeout > 0) { /* else no timer to arm or free */
			timer_rearm(c);
			timer_after_login(c);
		}
		client_maybe_release(c);
	}
}

/* Nothing outstanding between C and S: every request answered by its ReadyForQuery,
 * no extended-protocol sequence open, no partial message either way, no cancel running;
 * with prepared statements tracked, no answer of pgcoro's due and no client message
 * waiting to be whole. */
static bool at_release_point(client_t *c, server_t *s)
{
	return s->state == SV_ACTIVE && s->out_syncs == 0 && !s->mid_ext && s->msg_pending == 0 &&
	       !(s->copy_open | s->copy_in | s->copy_unsure) && s->copy_syncs == 0 &&
	       c->msg_pending == 0 && !s->cancel_running &&
	       stream_input_len(&s->st) == 0 && stream_output_len(&s->st) == 0 &&
	       (!s->prep_on || (prep_quiet(&s->pring) && stream_input_len(&c->st) == 0));
}

static void on_idle_input(client_t *c);

void client_fast_close(client_t *c)
{
	server_t *s = c->server;
	if (!rt->cfg->server_fast_close || c->state != CL_ACTIVE || !s || c->replication ||
	    c->pool->pool_mode != POOL_SESSION || s->conn_gen == c->pool->conn_gen ||
	    s->tx_status != 'I' || !at_release_point(c, s))
		return;
	client_disconnect(c, "57P01", "database configuration changed"); /* PgBouncer's words */
}

void client_maybe_release(client_t *c)
{
	server_t *s = c->server;
	/* most calls come with a request outstanding: that test first */
	if (!s || s->out_syncs || c->state != CL_ACTIVE || c->replication) {
		if (__builtin_expect(rt->quiescing, 0) && client_at_rest(c))
			stream_set_read(&c->st, false); /* a session at rest waits for its new home */
		return;
	}
	if (c->pool->pool_mode == POOL_SESSION) {
		if (__builtin_expect(s->conn_gen != c->pool->conn_gen, 0))
			client_fast_close(c);
		else if (__builtin_expect(rt->quiescing, 0) && client_at_rest(c))
			stream_set_read(&c->st, false); /* a session at rest waits for its new home */
		return;
	}
	if (!at_release_point(c, s))
		return;
	if (s->tx_status != 'I') {
		if (c->pool->pool_mode == POOL_STATEMENT)
			client_disconnect(c, "0A000",
					  "transaction blocks not allowed in statement pooling mode");
		return;
	}
	if (!pin_may_release(c, s))
		return; /* pinned, or its server is asked whether it still is */
	c->server = NULL;
	client_set_state(c, CL_IDLE);
	server_release(s);
	if (c->notify)
		notify_client_idle(c);
	if (__builtin_expect(rt->quiescing, 0) && client_at_rest(c)) {
		stream_set_read(&c->st, false); /* its next query waits in the kernel */
		return;
	}
	if (c->state == CL_IDLE && stream_input_len(&c->st) > 0)
		on_idle_input(c);
}

void client_refuse_query(client_t *c)
{
	log_error("client %llu %s (%s@%s): client used \"Query\" packet type (disable_pqexec)",
		  (unsigned long long)c->id, client_peer(c), c->user ? c->user : "-",
		  c->database ? c->database : "-");
	client_disconnect(c, "08P01", "PQexec disallowed");
}

bool client_at_rest(client_t *c)
{
	/* settings move with it (takeover.c: as startup settings), within the row's room;
	 * pins and what a statement of its may do yet do not */
	if (c->login || c->replication || c->st.tls || c->prep || c->notify || c->listenstmt ||
	    c->pins || c->pin_check || c->pin_stmts ||
	    (c->settings && c->nparams + c->settings->n > CLIENT_MAX_PARAMS) ||
	    !c->welcomed || stream_input_len(&c->st) > 0 || stream_output_len(&c->st) > 0)
		return false;
	if (c->state == CL_IDLE)
		return c->server == NULL;
	server_t *s = c->server;
	return c->state == CL_ACTIVE && c->pool->pool_mode == POOL_SESSION && s && !s->st.tls &&
	       !s->prep_on && !s->listen_track && at_release_point(c, s);
}

void client_hold_input(client_t *c, bool hold)
{
	if (c->state == CL_IDLE && !hold)
		client_resume_idle(c);
	else if (c->state == CL_IDLE || (c->state == CL_ACTIVE && client_at_rest(c)))
		stream_set_read(&c->st, !hold);
}

enum proto_frame client_next(client_t *c, uint32_t max, struct proto_msg *m)
{
	size_t n;
	const uint8_t *p = stream_input(&c->st, &n);
	enum proto_frame f = proto_next(p, n, max, m);
	if (f == PROTO_BAD)
		client_disconnect(c, "08P01", "invalid message length %u (type '%c') from client",
				  m->len, m->type >= 32 && m->type < 127 ? m->type : '?');
	return f;
}

/* A LISTEN or named Parse pgcoro may answer itself, or a message the relay would wait
 * for whole (a LISTEN perhaps, listenstmt.h), is waited for whole up to this size;
 * anything larger goes to a server as it comes. */
#define IDLE_WHOLE_MAX (64 * 1024)
_Static_assert(LISTENSTMT_TEXT_MAX <= IDLE_WHOLE_MAX, "what the relay waits for, idle clients do");
_Static_assert(PIN_TEXT_MAX <= IDLE_WHOLE_MAX, "what the relay waits for, idle clients do");

/* A client without a server sent something: a Terminate ends it; a LISTEN/UNLISTEN
 * (notify.c) or a named Parse of a statement a server knows (prepared.c) may be answered
 * here, once whole; anything else makes it wait for a server (FIFO), and the relay
 * passes it as it comes. */
static void on_idle_input(client_t *c)
{
	struct proto_msg m;
	for (;;) {
		if (stream_output_full(&c->st))
			return; /* answers pgcoro makes wait for room (client_drain_cb) */
		enum proto_frame f = client_next(c, (uint32_t)rt->cfg->max_packet_size, &m);
		if (f == PROTO_BAD || m.len == 0)
			return; /* closed, or not even a header yet */
		if (m.type == 'X') {
			client_disconnect(c, NULL, "client close request"); /* PgBouncer's words */
			return;
		}
		if (!proto_frontend_type[m.type]) {
			client_disconnect(c, "08P01", "invalid frontend message type %d", m.type);
			return;
		}
		if (m.type == 'Q' && rt->cfg->disable_pqexec) {
			client_refuse_query(c);
			return;
		}
		/* cheap looks at the type and the first byte before anything is waited for */
		uint8_t first = stream_input_len(&c->st) > PROTO_HDR ? m.data[PROTO_HDR] : 0;
		uint8_t lower = first | 0x20;
		bool maybe_ours = m.type == 'P' ? first != 0
						: m.type == 'Q' && (lower == 'l' || lower == 'u' || first <= ' ');
		/* one the relay would wait for whole (a LISTEN perhaps): waited for here too, or
		 * a server would come and go while nothing can be sent to it */
		if (f == PROTO_NEED_MORE && pin_on(c) && pin_looks_at(c, m.type) &&
		    pin_must_wait(c, m.data, stream_input_len(&c->st), m.len))
			return; /* as the relay waits for it (pin.h: bounded) */
		bool whole_first = maybe_ours ||
				   (f == PROTO_NEED_MORE &&
				    listenstmt_look_client(c, m.data, stream_input_len(&c->st), m.len) ==
					    LISTENSTMT_WAIT);
		if (whole_first && f == PROTO_NEED_MORE && m.size <= IDLE_WHOLE_MAX)
			return; /* the rest comes with the next read */
		if (maybe_ours && f == PROTO_OK && (m.type == 'P' || c->listenstmt) &&
		    listenstmt_look_client(c, m.data, m.size, m.len) == LISTENSTMT_SEE &&
		    !listenstmt_client_sent(c, NULL, m.data, m.size, m.len))
			return; /* closed */
		if (!maybe_ours || f != PROTO_OK ||
		    !(m.type == 'P' ? prep_answer_idle(c, &m) : notify_answer_idle(c, &m))) {
			wait_for_server(c);
			return;
		}
		stream_input_consumed(&c->st);
		if (c->state != CL_IDLE || notify_awaiting(c))
			return; /* closed, or awaiting its LISTEN's answer */
	}
}

void client_resume_idle(client_t *c)
{
	stream_set_read(&c->st, true);
	if (stream_input_len(&c->st) > 0)
		on_idle_input(c);
}

void client_param_changed(client_t *c, int i, const char *value)
{
	if (!c->session_params)
		c->session_params = calloc(SERVER_NPARAMS, sizeof(char *));
	char *v = value ? strdup(value) : NULL;
	if (!c->session_params || (value && !v)) {
		free(v);
		log_warning("client %llu: out of memory: %s = %s not kept for its next transactions",
			    (unsigned long long)c->id, server_param_names[i], value ? value : "");
		return;
	}
	free(c->session_params[i]);
	c->session_params[i] = v;
	uint64_t sig = 0xcbf29ce484222325ull; /* FNV-1a over index and value of each */
	for (int k = 0; k < SERVER_NPARAMS; k++) {
		const char *q = c->session_params[k];
		if (!q)
			continue;
		sig = (sig ^ (uint64_t)(k + 1)) * 0x100000001b3ull;
		for (; *q; q++)
			sig = (sig ^ (uint8_t)*q) * 0x100000001b3ull;
	}
	c->session_sig = sig;
}

/* ---- after the login ----------------------------------------------------------------- */

static void client_on_input(client_t *c);

/* The destination of a login: the console, or C's pool (the welcome now or with a server). */
static void logged_in_route(client_t *c)
{
	if (console_is_console_db(c->database)) {
		if (c->replication) {
			client_disconnect(c, "0A000",
					  "replication connections to the admin console are not supported");
			return;
		}
		console_login(c);
		return;
	}
	if (rt->shutdown != SHUTDOWN_NONE) { /* the unix socket is still open for the console */
		client_disconnect(c, "57P03", "pooler is shutting down");
		return;
	}
	if (poolctl_disabled(c->database)) {
		client_disconnect(c, "55000", "database \"%s\" is disabled", c->database);
		return;
	}
	const struct cfg_db *db = cfg_find_db(rt->cfg, c->database);
	if (!db) {
		client_disconnect(c, "3D000", "no such database: %s", c->database);
		return;
	}
	pool_t *pool = pool_get(c->database, c->user, db);
	if (!pool) {
		client_disconnect(c, "53200", "out of memory");
		return;
	}
	const char *full = pool_client_limit(pool, c->user);
	if (full) {
		client_disconnect(c, "53300", "client connections exceeded (%s)", full);
		return;
	}
	c->pool = pool;
	pool_ref(pool);
	if (pool->traffic) /* not made for a login alone: a pool without traffic stays small */
		pool->traffic->stats.client_login_count++;
	else
		pool->early_logins++;
	if (pool->pool_mode != POOL_SESSION && pool->params_known && !c->replication) {
		/* Transaction/statement mode: answer from the pool's parameters now; the client
		 * waits for a server only with its first query (which applies its settings). */
		if (rt->cfg->log_connections) {
			char tls[128];
			log_info("client %llu %s (%s@%s): login done, tls=%s", (unsigned long long)c->id,
				 client_peer(c), c->user, pool->dbname,
				 tls_conn_info(stream_ssl(&c->st), tls, sizeof(tls)));
		}
		client_send_welcome(c, NULL);
		client_set_state(c, CL_IDLE);
		timer_rearm(c);
		timer_after_login(c);
		return;
	}
	wait_for_server(c);
}

void client_logged_in(client_t *c)
{
	logged_in_route(c);
	/* bytes sent behind the login's last message (pipelined, or while a password was
	 * checked): no read event announces them again, whatever the destination */
	if (stream_input_len(&c->st) > 0) {
		client_on_input(c);
		stream_input_consumed(&c->st);
	}
}

/* ---- events -------------------------------------------------------------------------- */

/* C's input, handled as its state says: from the read callback, and once after the login
 * for what came with it. */
static void client_on_input(client_t *c)
{
	struct stream *st = &c->st;
	switch (c->state) {
	case CL_LOGIN:
		login_on_input(c);
		break;
	case CL_ACTIVE:
		relay_client_to_server(c);
		break;
	case CL_IDLE:
		on_idle_input(c);
		break;
	case CL_WAITING:
		break; /* kept until a server is linked; read_high bounds it */
	case CL_CLOSING:
		stream_consume(st, stream_input_len(st));
		break;
	case CL_CONSOLE:
		console_on_input(c);
		break;
	}
}

static void client_read_cb(struct stream *st, void *arg)
{
	client_on_input(arg);
	stream_flush(st); /* what the login queued */
}

/* C's output went down to STREAM_DRAIN_LOW: what waited for room goes on (the server's
 * answers, then C's own input, which stopped at the output bound). */
static void client_drain_cb(struct stream *st, void *arg)
{
	client_t *c = arg;
	switch (c->state) {
	case CL_CLOSING:
		if (stream_output_len(st) == 0) {
			c->drained = true;
			reaper_schedule();
		}
		break;
	case CL_ACTIVE:
		if (c->server)
			relay_server_to_client(c->server);
		if (c->state == CL_ACTIVE && c->server && stream_input_len(st) > 0)
			relay_client_to_server(c);
		break;
	case CL_IDLE:
		if (c->notify)
			notify_client_idle(c); /* notifications held while its output was full */
		if (c->state == CL_IDLE && stream_input_len(st) > 0)
			on_idle_input(c);
		break;
	case CL_CONSOLE:
		if (stream_input_len(st) > 0) {
			console_on_input(c);
			if (c->state == CL_CONSOLE)
				stream_input_consumed(st);
		}
		break;
	case CL_LOGIN:
	case CL_WAITING:
		break;
	}
}

static void client_event_cb(struct stream *st, enum stream_event ev, void *arg)
{
	client_t *c = arg;
	if (ev == STREAM_TLS_READY) {
		if (c->state == CL_LOGIN)
			login_on_tls_ready(c);
		return;
	}
	if (c->state == CL_CLOSING) {
		c->drained = true;
		reaper_schedule();
		return;
	}
	if (ev == STREAM_ERROR && c->st.tls && !stream_tls_ready(st))
		client_disconnect(c, NULL, "TLS handshake failed: %s", stream_error_string(st));
	else if (ev == STREAM_ERROR)
		client_disconnect(c, NULL, "%s error: %s", c->st.tls ? "TLS" : "socket",
				  stream_error_string(st));
	else
		client_disconnect(c, NULL, "client unexpected eof"); /* PgBouncer's words */
}

static const struct stream_ops client_stream_ops = {
	.on_read = client_read_cb,
	.on_drain = client_drain_cb,
	.on_event = client_event_cb,
};

/* Ends C's session on a timeout PgBouncer calls WHAT (the words its users' alerts look
 * for): C gets FATAL SQLSTATE "WHAT (KEY = SECs)", logged "closing because: WHAT ...". A
 * request still running on its server is cancelled, so the backend stops at once, and
 * the server is closed, as PgBouncer closes it; a server idle in a transaction goes back
 * through the release, which rolls the transaction back. */
static void end_on_timeout(client_t *c, const char *sqlstate, const char *what,
			   const char *key, double sec)
{
	server_t *s = c->server;
	bool running = s && (s->out_syncs > 0 || s->mid_ext);
	if (running)
		server_cancel(s);
	client_disconnect(c, sqlstate, "%s (%s = %gs)", what, key, sec);
	if (running)
		server_disconnect(s, "%s", what);
}

static void client_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	client_t *c = arg;
	const pool_t *p = c->pool;
	enum client_timer kind = c->timer_kind;
	c->timer_kind = CT_NONE;
	switch (kind) {
	case CT_NONE:
		break;
	case CT_DRAIN:
		c->drained = true; /* it had CLOSE_DRAIN_SEC to read its last words */
		reaper_schedule();
		break;
	case CT_IDLE:
		if (c->state == CL_ACTIVE || c->state == CL_IDLE) {
			metrics_timeout(c->pool, MT_CLIENT_IDLE);
			client_disconnect(c, "57P05", "client_idle_timeout (%gs)",
					  p->client_idle_timeout);
		}
		break;
	case CT_IDLE_XACT:
		if (c->state == CL_ACTIVE) {
			metrics_timeout(c->pool, MT_IDLE_TRANSACTION);
			end_on_timeout(c, "25P03", "idle transaction timeout",
				       "idle_transaction_timeout", p->idle_transaction_timeout);
		}
		break;
	case CT_QUERY:
		if (c->state == CL_ACTIVE && c->server) {
			metrics_timeout(c->pool, MT_QUERY);
			end_on_timeout(c, "57014", "query timeout", "query_timeout",
				       p->query_timeout);
		}
		break;
	}
}

static void xact_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	client_t *c = arg;
	c->xact_armed = false;
	if (c->state == CL_ACTIVE && c->server) {
		metrics_timeout(c->pool, MT_TRANSACTION);
		end_on_timeout(c, "25P04", "transaction timeout", "transaction_timeout",
			       c->pool->transaction_timeout);
	}
}

static void keep_peer(client_t *c, const struct sockaddr *sa)
{
	c->peer_family = (uint8_t)sa->sa_family;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
		memcpy(c->peer_ip, &in4->sin_addr, 4);
		c->peer_port = ntohs(in4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		memcpy(c->peer_ip, &in6->sin6_addr, 16);
		c->peer_port = ntohs(in6->sin6_port);
	}
}

const char *client_peer(const client_t *c)
{
	static char buf[INET6_ADDRSTRLEN + 8];
	char host[INET6_ADDRSTRLEN] = "?";
	if (c->peer_family == AF_INET)
		inet_ntop(AF_INET, c->peer_ip, host, sizeof(host));
	else if (c->peer_family == AF_INET6)
		inet_ntop(AF_INET6, c->peer_ip, host, sizeof(host));
	else
		return "unix";
	snprintf(buf, sizeof(buf), c->peer_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
		 (unsigned)c->peer_port);
	return buf;
}

/* C's socket FD: set up as an accepted one's, C counted and its cancel key registered. */
static void client_open(client_t *c, int fd, const struct sockaddr *sa, bool keep_key)
{
	c->id = ++rt->last_id;
	list_init(&c->node);
	keep_peer(c, sa);
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	stream_init(&c->st, rt->base, fd, true, &client_stream_ops, c);
	stream_limit_send(&c->st, sockopt_send_max(fd, rt->cfg));
	stream_bound_output(&c->st); /* a client that does not read its answers gets no more */
	cancel_register(c, keep_key);
	nclients++;
	c->since = c->born = rt_now();
}

/* The one block of A's user, database and parameters, with their digest (login.c's
 * keep_params makes the same from a startup packet). False if out of memory. */
static bool adopt_params(client_t *c, const struct client_adopt *a)
{
	size_t arr = (size_t)a->nparams * sizeof(struct client_param);
	size_t need = arr + strlen(a->user) + strlen(a->database) + 2;
	for (int i = 0; i < a->nparams; i++)
		need += strlen(a->names[i]) + strlen(a->values[i]) + 2;
	struct client_param *blk = malloc(need);
	if (!blk)
		return false;
	char *w = (char *)blk + arr;
	size_t n = strlen(a->user) + 1;
	c->user = memcpy(w, a->user, n);
	w += n;
	n = strlen(a->database) + 1;
	c->database = memcpy(w, a->database, n);
	w += n;
	uint64_t sig = 0xcbf29ce484222325ull;
	for (int i = 0; i < a->nparams; i++) {
		const char *kv[2] = {a->names[i], a->values[i]};
		const char **dst[2] = {&blk[i].name, &blk[i].value};
		for (int k = 0; k < 2; k++) {
			n = strlen(kv[k]) + 1;
			*dst[k] = memcpy(w, kv[k], n);
			w += n;
			for (size_t j = 0; j < n; j++) /* the name, '\0', the value, '\0' */
				sig = (sig ^ (uint8_t)(j + 1 < n ? kv[k][j] : k ? 0 : '=')) *
				      0x100000001b3ull;
		}
		blk[i].report = server_param_index(a->names[i]);
	}
	c->params = blk;
	c->nparams = a->nparams;
	c->param_sig = sig | 1;
	return true;
}

client_t *client_adopt(const struct client_adopt *a)
{
	const struct cfg_db *db = cfg_find_db(rt->cfg, a->database);
	if (!db || console_is_console_db(a->database)) {
		log_warning("a client handed over for database \"%s\": no such database here",
			    a->database);
		return NULL;
	}
	pool_t *pool = pool_get(a->database, a->user, db);
	client_t *c = pool ? calloc(1, sizeof(*c)) : NULL;
	if (!c || !adopt_params(c, a)) {
		free(c);
		log_warning("out of memory adopting a client");
		return NULL;
	}
	c->cancel_pid = a->cancel_pid;
	c->cancel_key = a->cancel_key;
	client_open(c, a->fd, a->sa, true);
	c->pool = pool;
	pool_ref(pool);
	c->welcomed = true;
	server_t *s = a->server;
	if (s) { /* session mode: the server it held, as in sync with it as it was there */
		c->server = s;
		s->client = c;
		s->synced_sig = client_sync_key(c);
		s->synced_gen = s->params_gen;
		s->applied_sig = c->param_sig;
		server_set_state(s, SV_ACTIVE);
	}
	client_set_state(c, s ? CL_ACTIVE : CL_IDLE);
	timer_rearm(c);
	timer_after_login(c);
	log_debug("client %llu %s (%s@%s): handed over%s", (unsigned long long)c->id,
		  client_peer(c), c->user, c->database, s ? ", with its server" : "");
	stream_set_read(&c->st, true);
	return c;
}

void client_accept(int fd, const struct sockaddr *sa, int salen)
{
	client_t *c = calloc(1, sizeof(*c));
	if (!c || !login_begin(c)) {
		free(c);
		log_warning("out of memory accepting a connection: closed");
		close(fd);
		return;
	}
	client_open(c, fd, sa, false);
	client_set_state(c, CL_LOGIN);
	c->too_many = nclients > rt->cfg->max_client_conn;
	log_debug("client %llu %s: accepted", (unsigned long long)c->id, client_peer(c));
	stream_set_read(&c->st, true);
	/* the first packet (SSLRequest, StartupMessage) usually came with the connection:
	 * read it now instead of after one more wake-up, as PgBouncer does */
	stream_read_now(&c->st);
}
