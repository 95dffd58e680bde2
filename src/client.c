/* Owns client sessions: the login and closing lists, the state transitions, the login
 * dialog (startup packet, TLS by SSLRequest or direct, GSS refusal, protocol
 * negotiation, the method from auth_type or the first auth_hba_file rule, trust/plain/
 * md5/SCRAM/cert/peer authentication), the welcome, and the one funnel that ends a
 * session with a proper ErrorResponse. The reaper frees closed clients and servers after
 * the loop iteration. */
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event_struct.h>

#include "auth.h"
#include "config.h"
#include "console.h"
#include "hba.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "pool.h"
#include "poolctl.h"
#include "prepared.h"
#include "proto.h"
#include "relay.h"
#include "runtime.h"
#include "server.h"
#include "shutdown.h"
#include "tls.h"

#define AUTH_MSG_MAX 8192   /* a password or SASL message larger than this is malformed */
#define CLOSE_DRAIN_SEC 5   /* how long a closing client may take to read its last words */

static struct runtime *rt;
static struct list_head login_list;   /* CL_LOGIN */
static struct list_head closing_list; /* CL_CLOSING */
static struct list_head console_list; /* CL_CONSOLE */
static struct pbuf out;               /* reused for every message pgcoro builds */
static struct event reap_ev;
static uint64_t next_id;
static int nclients;                  /* every client not yet closing */

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	client_reap(false);
	server_reap(false);
	console_poll(); /* servers closed: a PAUSE or WAIT_CLOSE may be done */
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

/* Random bytes from a pool refilled 4 KiB at a time: one getrandom() serves hundreds of
 * logins (cancel keys, md5 salts). */
static bool random_fill(void *buf, size_t n)
{
	static uint8_t pool_bytes[4096];
	static size_t left;
	if (n > sizeof(pool_bytes))
		return false;
	if (left < n) {
		if (getrandom(pool_bytes, sizeof(pool_bytes), 0) != (ssize_t)sizeof(pool_bytes))
			return false;
		left = sizeof(pool_bytes);
	}
	memcpy(buf, pool_bytes + sizeof(pool_bytes) - left, n);
	memset(pool_bytes + sizeof(pool_bytes) - left, 0, n); /* not kept once handed out */
	left -= n;
	return true;
}

static void send_auth(client_t *c, uint32_t code, const void *data, size_t len)
{
	proto_build_auth(&out, code, data, len);
	send_out(c);
}

/* ---- the timer ----------------------------------------------------------------------- */

static void client_timer_cb(evutil_socket_t fd, short what, void *arg);

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
	if (!c->timer) {
		c->timer = evtimer_new(rt->base, client_timer_cb, c);
		if (!c->timer) {
			log_warning("client %llu: out of memory for a timer: %s not enforced",
				    (unsigned long long)c->id, "a timeout");
			return;
		}
	}
	struct timeval tv = {(time_t)sec, (suseconds_t)((sec - (double)(time_t)sec) * 1e6)};
	c->timer_kind = kind;
	evtimer_add(c->timer, &tv);
}

/* After login: with no timeout that applies to a logged-in client, the timer goes (an
 * idle client is smaller without it). */
static void timer_after_login(client_t *c)
{
	const struct config *cfg = rt->cfg;
	if (c->timer && c->timer_kind == CT_NONE && cfg->client_idle_timeout <= 0 &&
	    cfg->idle_transaction_timeout <= 0 && cfg->query_timeout <= 0) {
		event_free(c->timer);
		c->timer = NULL;
	}
}

/* The timer that fits what the session is doing now: a request outstanding, idle in a
 * transaction, or idle. */
static void timer_rearm(client_t *c)
{
	const struct config *cfg = rt->cfg;
	server_t *s = c->server;
	if (s && (s->out_syncs > 0 || s->mid_ext))
		timer_set(c, CT_QUERY, cfg->query_timeout);
	else if (s && s->tx_status != 'I')
		timer_set(c, CT_IDLE_XACT, cfg->idle_transaction_timeout);
	else
		timer_set(c, CT_IDLE, cfg->client_idle_timeout);
}

void client_on_request(client_t *c)
{
	if (c->timer_kind == CT_QUERY)
		return; /* counted from the first message of the request */
	if (rt->cfg->query_timeout > 0)
		timer_set(c, CT_QUERY, rt->cfg->query_timeout);
	else if (c->timer_kind != CT_NONE)
		timer_set(c, CT_NONE, 0);
}

static bool at_release_point(client_t *c, server_t *s);

void client_shutdown_if_done(client_t *c)
{
	server_t *s = c->server;
	if (c->state != CL_ACTIVE || !s || !at_release_point(c, s))
		return;
	if (s->tx_status == 'I' || rt->shutdown == SHUTDOWN_QUERY)
		client_disconnect(c, "57P01", "terminating connection: pgcoro is shutting down");
}

static void close_list_shutdown(struct list_head *h);

void client_shutdown_begin(void)
{
	close_list_shutdown(&login_list);
	close_list_shutdown(&console_list);
}

void client_on_ready(client_t *c)
{
	if (rt->shutdown != SHUTDOWN_NONE) {
		client_shutdown_if_done(c);
		if (c->state != CL_ACTIVE)
			return;
	}
	if (c->timer_kind != CT_NONE || rt->cfg->client_idle_timeout > 0 ||
	    rt->cfg->idle_transaction_timeout > 0)
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

void client_wait_timeout(client_t *c)
{
	metrics_timeout(c->pool, MT_QUERY_WAIT);
	disconnect_extra(c, "57014", NULL,
			 "Raise the pool size or query_wait_timeout, or look for sessions holding "
			 "their server.",
			 "query_wait_timeout (%gs): no server connection became available",
			 rt->cfg->query_wait_timeout);
}

/* ---- closing ------------------------------------------------------------------------- */

/* What only the login needs: the startup packet, the "options" copy and the SCRAM state.
 * (The parameters' block stays for the session: its parameters are applied to every
 * server the client gets.) */
static void free_packet(client_t *c)
{
	free(c->startup);
	c->startup = NULL;
	free(c->options_copy);
	c->options_copy = NULL;
}

static void free_login_state(client_t *c)
{
	free_packet(c);
	free(c->scram);
	c->scram = NULL;
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

/* Gives C a key no other client holds and enters it in the table. */
static void cancel_register(client_t *c)
{
	do {
		uint32_t key[2];
		if (!random_fill(key, sizeof(key))) {
			key[0] = (uint32_t)c->id;
			key[1] = (uint32_t)random();
		}
		c->cancel_pid = key[0] & 0x7fffffff;
		c->cancel_key = key[1];
	} while (cancel_lookup(c->cancel_pid, c->cancel_key));
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

/* A CancelRequest: cancels the query of the client holding those keys, if it has one
 * running on a server. The requester never gets an answer (as with PostgreSQL). */
static void on_cancel_request(uint32_t pid, uint32_t key)
{
	client_t *target = cancel_lookup(pid, key);
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

	const struct config *cfg = rt->cfg;
	if (sqlstate && cfg->log_pooler_errors)
		log_warning("client %llu %s (%s@%s): closing: pooler error %s: %s (age %.3f s)",
			    (unsigned long long)c->id, client_peer(c), c->user ? c->user : "-",
			    c->database ? c->database : "-", sqlstate, msg, rt_now() - c->born);
	else if (cfg->log_disconnections)
		log_info("client %llu %s (%s@%s): closing: %s%s%s (age %.3f s)",
			 (unsigned long long)c->id, client_peer(c), c->user ? c->user : "-",
			 c->database ? c->database : "-", sqlstate ? sqlstate : "", sqlstate ? ": " : "",
			 msg, rt_now() - c->born);
	if (s) {
		if (c->msg_pending)
			s->mid_ext = true; /* the server got part of a message: not reusable */
		c->server = NULL;
		server_release(s);
	}
	if (can_send) {
		metrics_error(c->state == CL_LOGIN ? NULL : c->pool, sqlstate);
		proto_build_error(&out, "FATAL", sqlstate, msg, detail, hint);
		if (!out.failed)
			stream_send(&c->st, out.data, out.len);
		pbuf_reset(&out);
	}
	client_set_state(c, CL_CLOSING);
	nclients--;
	free_login_state(c);
	stream_set_read(&c->st, false);
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

void client_disconnect_result(client_t *c, const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	disconnect_extra(c, state ? state : "08006", detail, hint, "%s",
			 msg ? msg : "server error");
}

static void client_free(client_t *c)
{
	cancel_unregister(c);
	if (c->timer)
		event_free(c->timer);
	c->timer = NULL;
	stream_free(&c->st);
	free_login_state(c);
	console_forget(c);
	prep_client_free(c);
	notify_client_free(c);
	if (c->session_params)
		for (int i = 0; i < SERVER_NPARAMS; i++)
			free(c->session_params[i]);
	free(c->session_params);
	free(c->params);
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
		client_disconnect(c, "57P01", "terminating connection: pgcoro is shutting down");
	}
}

const struct list_head *client_console_clients(void) { return &console_list; }

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
		const pool_t *p = c->pool;
		const char *own[SERVER_NPARAMS] = {0};
		for (int k = 0; k < c->nparams; k++)
			if (c->params[k].report >= 0)
				own[c->params[k].report] = c->params[k].value;
		uint32_t from = 0;
		for (int i = 0; i < SERVER_NPARAMS; i++) {
			if (!own[i])
				continue;
			proto_put_bytes(&out, p->welcome.data + from, p->welcome_at[i] - from);
			proto_build_param_status(&out, server_param_names[i], own[i]);
			from = p->welcome_at[i + 1];
		}
		proto_put_bytes(&out, p->welcome.data + from, p->welcome_at[SERVER_NPARAMS] - from);
	}
	proto_build_backend_key(&out, c->cancel_pid, c->cancel_key);
	proto_build_ready(&out, 'I');
	c->welcomed = true;
	free(c->scram);
	c->scram = NULL;
	send_out(c);
}

void client_on_server_ready(client_t *c)
{
	server_t *s = c->server;
	if (c->state != CL_ACTIVE || !s)
		fatal("client %llu: server ready in state %s", (unsigned long long)c->id,
		      client_state_name(c->state));
	if (!c->welcomed) {
		if (rt->cfg->log_connections)
			log_info("client %llu %s (%s@%s): login done, server %llu",
				 (unsigned long long)c->id, client_peer(c), c->pool->user,
				 c->pool->dbname, (unsigned long long)s->id);
		client_send_welcome(c, s->params);
		stream_flush(&c->st);
		if (c->state != CL_ACTIVE)
			return;
	}
	relay_client_to_server(c);
	if (c->state == CL_ACTIVE && c->server == s) {
		const struct config *cfg = rt->cfg;
		if (c->timer || cfg->query_timeout > 0 || cfg->client_idle_timeout > 0 ||
		    cfg->idle_transaction_timeout > 0) { /* else no timer to arm or free */
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
	       c->msg_pending == 0 && !s->cancel_running &&
	       stream_input_len(&s->st) == 0 && stream_output_len(&s->st) == 0 &&
	       (!s->prep_on || (prep_quiet(&s->pring) && stream_input_len(&c->st) == 0));
}

static void on_idle_input(client_t *c);

void client_maybe_release(client_t *c)
{
	server_t *s = c->server;
	/* most calls come with a request outstanding: that test first */
	if (!s || s->out_syncs || c->state != CL_ACTIVE || c->pool->pool_mode == POOL_SESSION)
		return;
	if (!at_release_point(c, s))
		return;
	if (s->tx_status != 'I') {
		if (c->pool->pool_mode == POOL_STATEMENT)
			client_disconnect(c, "0A000",
					  "transaction blocks are not allowed in statement pooling mode");
		return;
	}
	c->server = NULL;
	client_set_state(c, CL_IDLE);
	server_release(s);
	if (c->notify)
		notify_client_idle(c);
	if (c->state == CL_IDLE && stream_input_len(&c->st) > 0)
		on_idle_input(c);
}

/* A client without a server sent something: a Terminate ends it, anything else makes it
 * wait for a server (FIFO). */
const uint8_t *client_next_message(client_t *c, uint32_t max, uint8_t *type, uint32_t *len)
{
	size_t n;
	const uint8_t *p = stream_input(&c->st, &n);
	switch (proto_frame(p, n, max, type, len)) {
	case PROTO_OK:
		return p;
	case PROTO_BAD:
		client_disconnect(c, "08P01", "invalid message length %u from client", *len);
		return NULL;
	case PROTO_NEED_MORE:
		break;
	}
	return NULL;
}

static void on_idle_input(client_t *c)
{
	uint8_t type = 0;
	uint32_t len = 0;
	const uint8_t *m;
	while ((m = client_next_message(c, (uint32_t)rt->cfg->max_packet_size, &type, &len))) {
		if (type == 'X') {
			client_disconnect(c, NULL, "client sent Terminate");
			return;
		}
		/* answered without a server: a named Parse of a statement a server knows
		 * (prepared.c), a LISTEN/UNLISTEN (notify.c); cheap looks at its first byte */
		uint8_t first = stream_input_len(&c->st) > PROTO_HDR ? m[PROTO_HDR] : 0;
		uint8_t lower = first | 0x20;
		if (!(type == 'P' ? first && prep_answer_idle(c)
				  : type == 'Q' && (lower == 'l' || lower == 'u' || first <= ' ') &&
					    notify_answer_idle(c))) {
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

/* ---- login --------------------------------------------------------------------------- */

static void login_ok(client_t *c)
{
	send_auth(c, AUTH_REQ_OK, NULL, 0);
	if (c->state == CL_CLOSING)
		return;
	if (console_is_console_db(c->database)) {
		console_login(c);
		return;
	}
	if (poolctl_disabled(c->database)) {
		client_disconnect(c, "55000", "database \"%s\" is disabled (DISABLE)", c->database);
		return;
	}
	const struct cfg_db *db = cfg_find_db(rt->cfg, c->database);
	if (!db) {
		client_disconnect(c, "3D000", "database \"%s\" does not exist", c->database);
		return;
	}
	pool_t *pool = pool_get(c->database, c->user, db);
	if (!pool) {
		client_disconnect(c, "53200", "out of memory");
		return;
	}
	c->pool = pool;
	if (pool->pool_mode != POOL_SESSION && pool->params_known) {
		/* Transaction/statement mode: answer from the pool's parameters now; the client
		 * waits for a server only with its first query (which applies its settings). */
		if (rt->cfg->log_connections)
			log_info("client %llu %s (%s@%s): login done", (unsigned long long)c->id,
				 client_peer(c), pool->user, pool->dbname);
		client_send_welcome(c, NULL);
		client_set_state(c, CL_IDLE);
		timer_rearm(c);
		timer_after_login(c);
		if (c->state == CL_IDLE && stream_input_len(&c->st) > 0)
			on_idle_input(c);
		return;
	}
	wait_for_server(c);
}

static void auth_failed(client_t *c)
{
	client_disconnect(c, "28P01", "password authentication failed for user \"%s\"", c->user);
}

static void start_scram(client_t *c, const char *secret)
{
	c->scram = calloc(1, sizeof(*c->scram));
	if (!c->scram) {
		client_disconnect(c, "53200", "out of memory");
		return;
	}
	const struct scram_keys *keys = secret ? auth_scram_keys(rt->auth, c->user) : NULL;
	if (keys) {
		c->scram->keys = *keys;
	} else {
		scram_mock_keys(c->user, &c->scram->keys);
		c->scram->mock = true;
	}
	proto_build_auth_sasl(&out);
	send_out(c);
	c->phase = LOGIN_SASL_INITIAL;
}

/* The host as PostgreSQL's messages name it: the address, or "[local]". */
static const char *peer_host(const client_t *c, char *buf, size_t len)
{
	if (c->peer_family != AF_INET && c->peer_family != AF_INET6)
		return "[local]";
	inet_ntop(c->peer_family, c->peer_ip, buf, (socklen_t)len);
	return buf;
}

/* auth cert: the verified client certificate's CN must be the user. */
static void check_cert(client_t *c)
{
	char cn[256];
	if (!stream_tls_ready(&c->st) || !tls_peer_cn(stream_ssl(&c->st), cn, sizeof(cn))) {
		client_disconnect(c, "28000", "connection requires a valid client certificate");
		return;
	}
	if (strcmp(cn, c->user) != 0) {
		log_info("client %llu %s: certificate CN \"%s\" is not user \"%s\"",
			 (unsigned long long)c->id, client_peer(c), cn, c->user);
		client_disconnect(c, "28000", "certificate authentication failed for user \"%s\"",
				  c->user);
		return;
	}
	login_ok(c);
}

/* auth peer (unix sockets): the peer process's OS user must be the user. */
static void check_peer(client_t *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char buf[4096];
	struct passwd pw, *res = NULL;
	if (c->peer_family != AF_UNIX ||
	    getsockopt(c->st.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
		client_disconnect(c, "28000", "could not get peer credentials: %s",
				  c->peer_family != AF_UNIX ? "not a unix socket" : strerror(errno));
		return;
	}
	int rc = getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &res);
	if (rc != 0 || !res) {
		client_disconnect(c, "28000", "could not look up local user ID %ld: %s",
				  (long)cred.uid, rc ? strerror(rc) : "user does not exist");
		return;
	}
	if (strcmp(pw.pw_name, c->user) != 0) {
		log_info("client %llu: peer OS user \"%s\" is not user \"%s\"",
			 (unsigned long long)c->id, pw.pw_name, c->user);
		client_disconnect(c, "28000", "Peer authentication failed for user \"%s\"", c->user);
		return;
	}
	login_ok(c);
}

/* The method for C: auth_type, or with auth_type hba the first matching rule (none, or
 * reject: refused with 28000 in PostgreSQL's words). */
static enum hba_method choose_method(client_t *c)
{
	static const enum hba_method of_type[] = {
	    [AUTH_TRUST] = HBA_TRUST, [AUTH_PLAIN] = HBA_PASSWORD, [AUTH_MD5] = HBA_MD5,
	    [AUTH_SCRAM] = HBA_SCRAM, [AUTH_CERT] = HBA_CERT,
	};
	int type = rt->cfg->auth_type;
	if (type != AUTH_HBA)
		return of_type[type];
	struct hba_conn conn = {
	    .unix_socket = c->peer_family != AF_INET && c->peer_family != AF_INET6,
	    .tls = stream_tls_ready(&c->st),
	    .family = c->peer_family,
	    .addr = c->peer_ip,
	    .database = c->database,
	    .user = c->user,
	};
	int line;
	enum hba_method m = hba_match(rt->hba, &conn, &line);
	char host[INET6_ADDRSTRLEN];
	const char *enc = conn.unix_socket ? "" : conn.tls ? ", SSL encryption" : ", no encryption";
	if (m == HBA_NO_MATCH) {
		client_disconnect(c, "28000",
				  "no pg_hba.conf entry for host \"%s\", user \"%s\", database \"%s\"%s",
				  peer_host(c, host, sizeof(host)), c->user, c->database, enc);
	} else if (m == HBA_REJECT) {
		client_disconnect(c, "28000",
				  "pg_hba.conf rejects connection for host \"%s\", user \"%s\", "
				  "database \"%s\"%s",
				  peer_host(c, host, sizeof(host)), c->user, c->database, enc);
	} else {
		log_debug("client %llu: auth_hba_file line %d: %s", (unsigned long long)c->id, line,
			  hba_method_name(m));
	}
	return m;
}

static void start_auth(client_t *c)
{
	enum hba_method m = choose_method(c);
	if (c->state != CL_LOGIN)
		return;
	c->method = (int8_t)m;
	const char *secret = rt->auth ? auth_lookup(rt->auth, c->user) : NULL;
	switch (m) {
	case HBA_TRUST:
		login_ok(c);
		return;
	case HBA_PASSWORD:
		send_auth(c, AUTH_REQ_PASSWORD, NULL, 0);
		c->phase = LOGIN_PASSWORD;
		return;
	case HBA_MD5:
		if (secret && auth_secret_kind(secret) == SECRET_SCRAM) {
			start_scram(c, secret); /* md5 is impossible against a SCRAM verifier */
			return;
		}
		if (!random_fill(c->md5_salt, sizeof(c->md5_salt))) {
			client_disconnect(c, "58000", "could not generate a random salt");
			return;
		}
		send_auth(c, AUTH_REQ_MD5, c->md5_salt, sizeof(c->md5_salt));
		c->phase = LOGIN_PASSWORD;
		return;
	case HBA_SCRAM:
		start_scram(c, secret);
		return;
	case HBA_CERT:
		check_cert(c);
		return;
	case HBA_PEER:
		check_peer(c);
		return;
	case HBA_REJECT:
	case HBA_NO_MATCH:
		break;
	}
	fatal("impossible authentication method %d", (int)m);
}

/* Splits the "options" startup parameter ("-c a=b --c=d", backslash escapes a space)
 * into parameters. Returns false on anything but -c / -- settings. */
static bool parse_options(client_t *c, const char *options, int max)
{
	c->options_copy = strdup(options);
	if (!c->options_copy)
		return false;
	char *p = c->options_copy;
	bool expect_value = false;
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		char *tok = p, *w = p;
		while (*p && *p != ' ' && *p != '\t') {
			if (*p == '\\' && p[1])
				p++;
			*w++ = *p++;
		}
		if (*p)
			p++;
		*w = 0;
		char *setting;
		if (expect_value) {
			setting = tok;
			expect_value = false;
		} else if (strcmp(tok, "-c") == 0) {
			expect_value = true;
			continue;
		} else if (strncmp(tok, "-c", 2) == 0) {
			setting = tok + 2;
		} else if (strncmp(tok, "--", 2) == 0) {
			setting = tok + 2;
		} else {
			return false;
		}
		char *eq = strchr(setting, '=');
		if (!eq || eq == setting || c->nparams >= max)
			return false;
		*eq = 0;
		for (char *q = setting; *q; q++)
			if (*q == '-')
				*q = '_';
		c->params[c->nparams++] = (struct client_param){setting, eq + 1, -1};
	}
	return !expect_value;
}

static char *put_str(char **w, const char *v)
{
	char *at = *w;
	size_t n = strlen(v) + 1;
	memcpy(at, v, n);
	*w += n;
	return at;
}

/* Moves the parameters, USER and DATABASE (which point into the startup packet and the
 * "options" copy) into one block, and frees the packet and the copy: an idle client
 * keeps only what it needs, in one allocation. False if out of memory. */
static bool keep_params(client_t *c, const char *user, const char *database)
{
	size_t arr = (size_t)c->nparams * sizeof(struct client_param);
	size_t need = arr + strlen(user) + strlen(database) + 2;
	for (int i = 0; i < c->nparams; i++)
		need += strlen(c->params[i].name) + strlen(c->params[i].value) + 2;
	struct client_param *blk = malloc(need);
	if (!blk)
		return false;
	char *w = (char *)blk + arr;
	c->user = put_str(&w, user);
	c->database = put_str(&w, database);
	for (int i = 0; i < c->nparams; i++) {
		blk[i].report = c->params[i].report;
		blk[i].name = put_str(&w, c->params[i].name);
		blk[i].value = put_str(&w, c->params[i].value);
	}
	free(c->params);
	c->params = blk;
	free_packet(c);
	return true;
}

static void on_startup(client_t *c, const struct proto_startup *st)
{
	if (c->too_many) {
		client_disconnect(c, "53300", "sorry, too many clients already (max_client_conn %d)",
				  rt->cfg->max_client_conn);
		return;
	}
	if (rt->cfg->client_tls_sslmode >= TLS_REQUIRE && !stream_tls_ready(&c->st) &&
	    (c->peer_family == AF_INET || c->peer_family == AF_INET6)) {
		disconnect_extra(c, "28000", NULL,
				 "Connect with TLS (libpq: sslmode=require or stronger).",
				 "TLS required: pgcoro's client_tls_sslmode is %s",
				 rt->cfg->client_tls_sslmode == TLS_REQUIRE ? "require" : "verify-ca/verify-full");
		return;
	}
	int max = st->nparams; /* plus one per '=' of "options", an upper bound of its settings */
	for (int i = 0; i < st->nparams; i++)
		if (strcmp(st->names[i], "options") == 0)
			for (const char *q = st->values[i]; *q; q++)
				max += *q == '=';
	if (max > CLIENT_MAX_PARAMS)
		max = CLIENT_MAX_PARAMS; /* parse_options refuses more */
	free(c->params);
	c->params = calloc((size_t)max + 1, sizeof(*c->params));
	if (!c->params) {
		client_disconnect(c, "53200", "out of memory");
		return;
	}
	for (int i = 0; i < st->nparams; i++) {
		if (strcmp(st->names[i], "replication") == 0) {
			client_disconnect(c, "0A000", "replication connections are not supported");
			return;
		}
		if (strcmp(st->names[i], "options") == 0) {
			if (!parse_options(c, st->values[i], max)) {
				client_disconnect(c, "0A000",
						  "unsupported startup option \"%s\": only -c "
						  "name=value settings are accepted",
						  st->values[i]);
				return;
			}
			continue;
		}
		c->params[c->nparams++] = (struct client_param){st->names[i], st->values[i], -1};
	}
	uint64_t sig = 0xcbf29ce484222325ull; /* FNV-1a over the parameters, in order */
	for (int i = 0; i < c->nparams; i++) {
		c->params[i].report = server_param_index(c->params[i].name);
		for (const char *q = c->params[i].name; *q; q++)
			sig = (sig ^ (uint8_t)*q) * 0x100000001b3ull;
		sig = (sig ^ '=') * 0x100000001b3ull;
		for (const char *q = c->params[i].value; *q; q++)
			sig = (sig ^ (uint8_t)*q) * 0x100000001b3ull;
		sig = (sig ^ 0) * 0x100000001b3ull;
	}
	c->param_sig = sig | 1; /* never 0, the value of a server with nothing applied */
	if ((st->version & 0xffff) != 0 || st->nunrecognized > 0) {
		proto_build_negotiate(&out, PROTO_V3, st->unrecognized, st->nunrecognized);
		send_out(c);
	}
	/* the packet goes here: nothing below reads ST */
	if (!keep_params(c, st->user, st->database && st->database[0] ? st->database : st->user)) {
		client_disconnect(c, "53200", "out of memory");
		return;
	}
	log_debug("client %llu %s: startup user=%s database=%s", (unsigned long long)c->id,
		  client_peer(c), c->user, c->database);
	start_auth(c);
}

/* An SSLRequest: 'S' and the TLS handshake when pgcoro has TLS for this client (TCP,
 * client_tls_sslmode not disable), else 'N'. */
static void on_ssl_request(client_t *c)
{
	bool tcp = c->peer_family == AF_INET || c->peer_family == AF_INET6;
	if (c->st.tls) {
		client_disconnect(c, "08P01", "SSLRequest received on a TLS connection");
		return;
	}
	if (!rt->tls || !tcp) {
		(void)stream_queue(&c->st, "N", 1); /* a failure is reported by the stream */
		return;
	}
	if (stream_input_len(&c->st) > 0) {
		/* bytes sent before our answer would be taken as if they came over TLS */
		client_disconnect(c, "08P01", "received unencrypted data after SSL request");
		return;
	}
	(void)stream_queue(&c->st, "S", 1);
	stream_flush(&c->st);
	if (stream_output_len(&c->st) > 0 || c->st.err) {
		client_disconnect(c, NULL, "could not answer the SSLRequest");
		return;
	}
	if (!stream_tls_accept(&c->st, rt->tls, NULL, 0))
		client_disconnect(c, NULL, "out of memory starting TLS");
}

/* A first byte 0x16 (a TLS handshake record): PostgreSQL 17's direct TLS. The bytes
 * read so far are the ClientHello's start; the handshake takes them over. ALPN
 * "postgresql" is checked when it is done. */
static void on_direct_tls(client_t *c)
{
	size_t n;
	const uint8_t *p = stream_input(&c->st, &n);
	if (!rt->tls || (c->peer_family != AF_INET && c->peer_family != AF_INET6)) {
		stream_consume(&c->st, n);
		client_disconnect(c, NULL, "direct TLS connection refused: %s",
				  rt->tls ? "not over TCP" : "client_tls_sslmode is disable");
		return;
	}
	c->direct_tls = true;
	bool ok = stream_tls_accept(&c->st, rt->tls, p, n);
	stream_consume(&c->st, n);
	if (!ok)
		client_disconnect(c, NULL, "out of memory starting TLS");
}

/* The TLS handshake is done. */
static void on_tls_ready(client_t *c)
{
	if (c->direct_tls && !tls_alpn_ok(stream_ssl(&c->st))) {
		client_disconnect(c, "08P01",
				  "received direct SSL connection request without ALPN protocol "
				  "negotiation extension");
		return;
	}
	log_debug("client %llu %s: TLS %s %s", (unsigned long long)c->id, client_peer(c),
		  SSL_get_version(stream_ssl(&c->st)), SSL_get_cipher_name(stream_ssl(&c->st)));
}

/* Handles the whole startup-style packet at the head of the input (LEN bytes). */
static void on_startup_packet(client_t *c, uint32_t len)
{
	size_t n;
	const uint8_t *p = stream_input(&c->st, &n);
	free(c->startup);
	c->startup = malloc(len);
	if (!c->startup) {
		client_disconnect(c, "53200", "out of memory");
		return;
	}
	memcpy(c->startup, p, len);
	stream_consume(&c->st, len);
	struct proto_startup st;
	const char *why = NULL;
	if (!proto_parse_startup(c->startup, len, &st, &why)) {
		uint32_t v = (uint32_t)c->startup[4] << 24 | (uint32_t)c->startup[5] << 16 |
			     (uint32_t)c->startup[6] << 8 | c->startup[7];
		if (v >> 16 != 3)
			client_disconnect(c, "0A000",
					  "unsupported frontend protocol %u.%u: pgcoro supports 3.0",
					  v >> 16, v & 0xffff);
		else
			client_disconnect(c, "08P01", "invalid startup packet: %s",
					  why ? why : "malformed");
		return;
	}
	switch (st.kind) {
	case STARTUP_SSL:
		on_ssl_request(c);
		return;
	case STARTUP_GSSENC:
		(void)stream_queue(&c->st, "N", 1); /* a failure is reported by the stream */
		return;
	case STARTUP_CANCEL:
		on_cancel_request(st.cancel_pid, st.cancel_key);
		client_disconnect(c, NULL, "cancel request handled");
		return;
	case STARTUP_MSG:
		on_startup(c, &st);
		return;
	}
}

static void on_auth_message(client_t *c, const uint8_t *body, uint32_t blen)
{
	const char *secret = rt->auth ? auth_lookup(rt->auth, c->user) : NULL;
	char reply[512];
	switch (c->phase) {
	case LOGIN_PASSWORD: {
		const char *pw;
		if (!proto_parse_password(body, blen, &pw)) {
			client_disconnect(c, "08P01", "invalid password packet");
			return;
		}
		bool ok = c->method == HBA_PASSWORD
				  ? secret && auth_plain_check(secret, c->user, pw)
				  : auth_md5_check_user(rt->auth, c->user, c->md5_salt, pw);
		if (ok)
			login_ok(c);
		else
			auth_failed(c);
		return;
	}
	case LOGIN_SASL_INITIAL: {
		const char *mech;
		const uint8_t *data;
		uint32_t dlen;
		if (!proto_parse_sasl_initial(body, blen, &mech, &data, &dlen)) {
			client_disconnect(c, "08P01", "invalid SASL initial response");
			return;
		}
		if (strcmp(mech, "SCRAM-SHA-256") != 0) {
			client_disconnect(c, "08P01",
					  "client selected an invalid SASL authentication mechanism");
			return;
		}
		if (!data || !scram_server_first(c->scram, (const char *)data, dlen, reply,
						 sizeof(reply))) {
			client_disconnect(c, "08P01", "malformed SCRAM message");
			return;
		}
		send_auth(c, AUTH_REQ_SASL_CONT, reply, strlen(reply));
		c->phase = LOGIN_SASL_FINAL;
		return;
	}
	case LOGIN_SASL_FINAL:
		if (!scram_server_final(c->scram, (const char *)body, blen, reply, sizeof(reply))) {
			auth_failed(c);
			return;
		}
		send_auth(c, AUTH_REQ_SASL_FIN, reply, strlen(reply));
		if (c->state == CL_LOGIN)
			login_ok(c);
		return;
	case LOGIN_STARTUP:
		break;
	}
	fatal("client %llu: auth message in phase %d", (unsigned long long)c->id, (int)c->phase);
}

static void on_login_input(client_t *c)
{
	while (c->state == CL_LOGIN) {
		size_t n;
		const uint8_t *p = stream_input(&c->st, &n);
		if (n == 0)
			return;
		uint32_t len = 0;
		uint8_t type = 0;
		if (c->phase == LOGIN_STARTUP) {
			if (p[0] == 0x16 && !c->st.tls) {
				on_direct_tls(c);
				return;
			}
			switch (proto_startup_frame(p, n, &len)) {
			case PROTO_NEED_MORE:
				return;
			case PROTO_BAD:
				client_disconnect(c, "08P01", "invalid startup packet length %u", len);
				return;
			case PROTO_OK:
				break;
			}
			if (n < len)
				return;
			on_startup_packet(c, len);
			continue;
		}
		switch (proto_frame(p, n, AUTH_MSG_MAX, &type, &len)) {
		case PROTO_NEED_MORE:
			return;
		case PROTO_BAD:
			client_disconnect(c, "08P01", "invalid authentication message length %u", len);
			return;
		case PROTO_OK:
			break;
		}
		if (type != 'p') {
			client_disconnect(c, "08P01",
					  "expected password response, got message type %d", type);
			return;
		}
		if (n < (size_t)len + 1)
			return;
		/* Take the message out before handling it: a successful login may link a
		 * server at once, and the relay must not see this message. */
		uint8_t msg[AUTH_MSG_MAX + 1];
		memcpy(msg, p, (size_t)len + 1);
		stream_consume(&c->st, (size_t)len + 1);
		on_auth_message(c, msg + PROTO_HDR, len - 4);
	}
}

/* ---- events -------------------------------------------------------------------------- */

static void client_read_cb(struct stream *st, void *arg)
{
	client_t *c = arg;
	switch (c->state) {
	case CL_LOGIN:
		on_login_input(c);
		stream_input_consumed(st);
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
	stream_flush(st); /* what the login queued */
}

static void client_drain_cb(struct stream *st, void *arg)
{
	client_t *c = arg;
	if (c->state == CL_CLOSING) {
		if (stream_output_len(st) == 0) {
			c->drained = true;
			reaper_schedule();
		}
	} else if (c->state == CL_ACTIVE && c->server) {
		relay_server_to_client(c->server);
	}
}

static void client_event_cb(struct stream *st, enum stream_event ev, void *arg)
{
	client_t *c = arg;
	if (ev == STREAM_TLS_READY) {
		if (c->state == CL_LOGIN)
			on_tls_ready(c);
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
		client_disconnect(c, NULL, "client closed the connection");
}

static const struct stream_ops client_stream_ops = {
	.on_read = client_read_cb,
	.on_drain = client_drain_cb,
	.on_event = client_event_cb,
};

static void client_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	client_t *c = arg;
	const struct config *cfg = rt->cfg;
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
			client_disconnect(c, "57P05",
					  "terminating connection due to client_idle_timeout (%gs)",
					  cfg->client_idle_timeout);
		}
		break;
	case CT_IDLE_XACT:
		if (c->state == CL_ACTIVE) {
			metrics_timeout(c->pool, MT_IDLE_TRANSACTION);
			client_disconnect(c, "25P03",
					  "terminating connection due to idle_transaction_timeout "
					  "(%gs)",
					  cfg->idle_transaction_timeout);
		}
		break;
	case CT_QUERY:
		if (c->state == CL_ACTIVE && c->server) {
			log_info("client %llu %s (%s@%s): query_timeout (%gs): cancelling its query",
				 (unsigned long long)c->id, client_peer(c), c->user, c->database,
				 cfg->query_timeout);
			metrics_timeout(c->pool, MT_QUERY);
			server_cancel(c->server);
		}
		break;
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

void client_accept(int fd, const struct sockaddr *sa, int salen)
{
	client_t *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->id = ++next_id;
	list_init(&c->node);
	keep_peer(c, sa);
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	stream_init(&c->st, rt->base, fd, true, &client_stream_ops, c);
	cancel_register(c);
	client_set_state(c, CL_LOGIN);
	nclients++;
	c->too_many = nclients > rt->cfg->max_client_conn;
	c->since = c->born = rt_now();
	log_debug("client %llu %s: accepted", (unsigned long long)c->id, client_peer(c));
	stream_set_read(&c->st, true);
	/* the first packet (SSLRequest, StartupMessage) usually came with the connection:
	 * read it now instead of after one more wake-up, as PgBouncer does */
	stream_read_now(&c->st);
}
