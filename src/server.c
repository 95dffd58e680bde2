/* Owns server connections: their states, their lists, and everything pgcoro says to a
 * server once it is connected.
 * Connecting: libpq makes the connection — PQconnectStartParams and every PQconnectPoll
 * step run on the executor (they may resolve host names, run SCRAM's PBKDF2, do a TLS
 * handshake); the loop only waits on PQsocket() between steps, re-armed each time. When
 * the server user's secret is an md5 secret or a SCRAM verifier (pass-through), or the
 * server ciphers are set, pgcoro's own login makes it instead (srvconnect.h); both end in the same connected bookkeeping
 * and their failures in the same funnel (close_server, pool_connect_failed).
 * DESIGN. Once connected, a server needs nothing of libpq: the stream (plain, or TLS on
 * libpq's handle) carries the relay and pgcoro's own queries alike. Housekeeping
 * (rollback, server_reset_query, the parameter sync, health checks, UNLISTEN * after a
 * client's LISTEN ran there, connect_query) is written and its answer read by hkquery.h
 * at a ReadyForQuery boundary, on the same stream, so a server made without libpq
 * (conn == NULL: a login of pgcoro's own, a socket an online restart passed on) is
 * served the same way. The server keeps its reported parameters itself: at connect
 * (from libpq's, or the login's list), then from every ParameterStatus the relay passes
 * (server_param_seen) or housekeeping reads. libpq's PGconn, when there is one, is kept
 * only for its cancel (PQgetCancel/PQcancel: libpq does not show the cancel key) and to
 * be finished; a server whose BackendKeyData pgcoro knows is cancelled with pgcoro's own
 * CancelRequest (cancelreq.h) to the address it is connected to.
 * A replication client's server is made for it (its replication parameter and startup
 * settings in the conninfo; by libpq or pgcoro's own login, as any), linked from its
 * start, and closed when it leaves: it never goes idle nor through housekeeping (a
 * walsender takes neither a reset nor SQL). */
#include "server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cancelreq.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "pin.h"
#include "prepared.h"
#include "relay.h"
#include "runtime.h"
#include "sockopt.h"
#include "srvconnect.h"

const char *const server_param_names[SERVER_NPARAMS] = {
	"application_name", "client_encoding", "DateStyle", "default_transaction_read_only",
	"in_hot_standby", "integer_datetimes", "IntervalStyle", "is_superuser",
	"server_encoding", "server_version", "session_authorization",
	"standard_conforming_strings", "TimeZone",
};

static struct runtime *rt;
static struct list_head closing; /* SV_CLOSING */

static void pq_connect_cb(evutil_socket_t fd, short what, void *arg);
static void hk_next(server_t *s);
static const char *hk_name(unsigned step);

void server_init(struct runtime *r)
{
	rt = r;
	list_head_init(&closing);
}

const char *server_state_name(enum server_state state)
{
	switch (state) {
	case SV_CONNECTING: return "connecting";
	case SV_IDLE: return "idle";
	case SV_ACTIVE: return "active";
	case SV_HOUSEKEEPING: return "housekeeping";
	case SV_CLOSING: return "closing";
	}
	return "?";
}

/* Where each pool state's list lies in the pool: the state change every hand-out and
 * release makes is one table load, not a jump table. */
static const size_t sv_list_at[SV_CLOSING] = {
	[SV_CONNECTING] = offsetof(pool_t, sv_connecting),
	[SV_IDLE] = offsetof(pool_t, sv_idle),
	[SV_ACTIVE] = offsetof(pool_t, sv_active),
	[SV_HOUSEKEEPING] = offsetof(pool_t, sv_housekeeping),
};

static inline struct list_head *state_list(server_t *s, enum server_state state)
{
	if (__builtin_expect((unsigned)state < SV_CLOSING, 1))
		return (struct list_head *)((char *)s->pool + sv_list_at[state]);
	if (state == SV_CLOSING)
		return &closing;
	fatal("server %llu: impossible state %d", (unsigned long long)s->id, (int)state);
}

static __attribute__((noinline, cold)) void log_transition(const server_t *s,
								enum server_state to)
{
	log_msg(LOGL_DEBUG, "server %llu: %s -> %s", (unsigned long long)s->id,
		server_state_name(s->state), server_state_name(to));
}

void server_set_state(server_t *s, enum server_state state)
{
	if (list_linked(&s->node)) {
		list_del(state_list(s, s->state), &s->node);
		if (log_enabled(LOGL_DEBUG))
			log_transition(s, state);
		if (__builtin_expect(s->replication, 0) && s->state == SV_CONNECTING)
			s->pool->repl_connecting--;
	}
	if (__builtin_expect(s->replication, 0) && state == SV_CONNECTING)
		s->pool->repl_connecting++;
	s->state = state;
	list_append(state_list(s, state), &s->node);
}

static char *dup_or_null(const char *v) { return v ? strdup(v) : NULL; }

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static void set_param(server_t *s, int i, const char *value)
{
	if (str_eq(s->params[i], value))
		return;
	free(s->params[i]);
	s->params[i] = dup_or_null(value);
	s->params_gen++;
}

int server_param_index(const char *name)
{
	for (int i = 0; i < SERVER_NPARAMS; i++)
		if (strcasecmp(server_param_names[i], name) == 0)
			return i;
	return -1;
}

/* The reported parameters restored per client in transaction/statement mode: these,
 * and those of server_param_names listed in track_extra_parameters. */
static const char *const tracked_always[] = {"client_encoding", "DateStyle", "TimeZone",
					     "IntervalStyle", "standard_conforming_strings",
					     "application_name"};

/* Bit i set: server_param_names[i] is tracked per client (0 in session mode). */
static uint32_t tracked_mask(const pool_t *p)
{
	if (p->pool_mode == POOL_SESSION)
		return 0;
	uint32_t m = 0;
	for (size_t k = 0; k < sizeof(tracked_always) / sizeof(tracked_always[0]); k++)
		m |= 1u << server_param_index(tracked_always[k]);
	const char *list = rt->cfg->track_extra_parameters;
	while (list && *list) {
		size_t n = strcspn(list, ", \t");
		char name[64];
		if (n > 0 && n < sizeof(name)) {
			memcpy(name, list, n);
			name[n] = 0;
			int i = server_param_index(name);
			if (i >= 0)
				m |= 1u << i;
		}
		list += n;
		list += strspn(list, ", \t");
	}
	return m;
}

/* The index of NAME, as the server spells it in ParameterStatus, or -1. */
uint32_t server_tracked_mask(const pool_t *p) { return tracked_mask(p); }

static int reported_index(const char *name)
{
	for (int i = 0; i < SERVER_NPARAMS; i++)
		if (strcmp(server_param_names[i], name) == 0)
			return i;
	return -1;
}

void server_param_seen(server_t *s, const char *name, const char *value)
{
	int i = reported_index(name);
	if (i < 0)
		return;
	set_param(s, i, value);
	if (s->client && !s->replication && (tracked_mask(s->pool) & 1u << i))
		client_param_changed(s->client, i, value);
}

/* ---- closing ------------------------------------------------------------------------- */

/* The one funnel for closing S with REASON; CONNECT_FAILED: the connection could not be
 * made, worth a warning whatever log_disconnections says, and SQLSTATE and TOLD (REASON
 * without where the connection went) go to its pool (pool_connect_failed). The log says
 * it in PgBouncer's words, which its users' alerts look for: "closing because: WHY
 * (age=Ns)", WHY being REASON, or for a failed connect "connect failed" ("connect
 * timeout" when TIMED_OUT, "server DNS lookup failed" for a host name that does not
 * resolve) or the server's refusal (TOLD; "login failed" for a
 * replication connection), which is logged first as "server login failed: FATAL TOLD". */
static void close_server(server_t *s, bool connect_failed, const char *reason,
			 const char *sqlstate, const char *told, bool timed_out)
{
	if (s->state == SV_CLOSING)
		return;
	enum server_state was = s->state;
	unsigned long long id = (unsigned long long)s->id;
	unsigned long long age = (unsigned long long)(rt_now() - s->connected_at);
	/* a login PostgreSQL refused: it answers a startup packet only with a FATAL error */
	bool refused = connect_failed && strcmp(sqlstate, "08006") != 0 && *told;
	if (connect_failed) {
		s->pool->connect_failures++;
		pool_host_result(s->pool, s->lb_host, false);
		const char *because = refused ? (s->replication ? "login failed" : told)
				      : timed_out ? "connect timeout"
						  : "connect failed";
		/* libpq's and srvlogin's words for a host name that does not resolve */
		if (!refused && strstr(reason, "could not translate host name"))
			because = "server DNS lookup failed";
		if (refused)
			log_warning("server %llu (%s/%s): server login failed: FATAL %s", id,
				    s->pool->dbname, s->pool->user, told);
		log_warning("server %llu (%s/%s): connection failed: %s; closing because: %s "
			    "(age=%llus)",
			    id, s->pool->dbname, s->pool->user, reason, because, age);
	} else if (rt->cfg->log_disconnections)
		log_info("server %llu (%s/%s): closing because: %s (age=%llus)", id, s->pool->dbname,
			 s->pool->user, reason, age);
	client_t *c = s->client;
	s->client = NULL;
	prep_server_free(s); /* while its client, whose names its queue holds, is alive */
	server_set_state(s, SV_CLOSING);
	struct server_task *task = s->task;
	if (task) {
		s->task = NULL;
		task->server = NULL;
		task->failed(task->arg, "08006", reason);
	}
	event_del(&s->pq_ev);
	evtimer_del(&s->timer);
	srvconnect_free(s->login); /* an own login in progress is abandoned */
	s->login = NULL;
	if (stream_is_open(&s->st))
		stream_set_read(&s->st, false);
	if (c) {
		c->server = NULL;
		if (was == SV_CONNECTING && !connect_failed)
			; /* a replication client's, closed by PAUSE or shutdown: it waits for another */
		else if (refused) /* its own login failed (a replication client): PgBouncer's words */
			client_disconnect_error(c, sqlstate, told, NULL, "login failed");
		else if (connect_failed)
			client_disconnect(c, sqlstate, "server %s failed%s%s",
					  strcmp(sqlstate, "08006") == 0 ? "connection" : "login",
					  *told ? ": " : "", told);
		else if (s->fatal_passed) /* the client has the server's last words, as from PostgreSQL */
			client_disconnect(c, NULL, "server sent FATAL and closed: %s", reason);
		else
			client_disconnect(c, "08006", "server connection lost: %s", reason);
	}
	if (connect_failed && !s->replication)
		pool_connect_failed(s->pool, sqlstate, told);
	else if (!rt->shutting_down) {
		pool_kick(s->pool); /* waiters may need a replacement */
		pool_kick_related(s->pool);
	}
	reaper_schedule();
}

void server_disconnect(server_t *s, const char *fmt, ...)
{
	if (s->state == SV_CLOSING)
		return;
	char reason[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	close_server(s, false, reason, NULL, NULL, false);
}

static void server_free(server_t *s)
{
	if (s->cancel)
		PQfreeCancel(s->cancel);
	prep_server_free(s);
	stream_free(&s->st);
	if (s->conn)
		PQfinish(s->conn);
	free(s->conn_params);
	for (int i = 0; i < SERVER_NPARAMS; i++)
		free(s->params[i]);
	pool_unref(s->pool);
	free(s);
}

void server_reap(bool force)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &closing)
	{
		server_t *s = list_entry(pos, server_t, node);
		if ((s->job_running || s->cancel_running) && !force)
			continue;
		list_del(&closing, &s->node);
		server_free(s);
	}
}

/* ---- connecting ---------------------------------------------------------------------- */

/* A notice libpq receives while it connects: logged, through the log's escaping, instead
 * of written raw to stderr by libpq's default (housekeeping's are hk_notice's). May run
 * on an executor thread (connect steps): reads only what never changes. */
static void on_notice(void *arg, const char *message)
{
	const server_t *s = arg;
	log_info("server %llu (%s/%s): %s", (unsigned long long)s->id, s->pool->dbname,
		 s->pool->user, message);
}

static void job_start(struct exec_job *job)
{
	server_t *s = job->arg;
	s->conn = PQconnectStartParams(s->conn_params->kw, s->conn_params->val, 0);
	free(s->conn_params); /* libpq keeps its own copy */
	s->conn_params = NULL;
	if (s->conn && PQstatus(s->conn) != CONNECTION_BAD) {
		PQsetNoticeProcessor(s->conn, on_notice, s);
		/* a server's refusal then carries its SQLSTATE (server_connect_error) */
		PQsetErrorVerbosity(s->conn, PQERRORS_VERBOSE);
		s->poll = PGRES_POLLING_WRITING;
	} else {
		s->poll = PGRES_POLLING_FAILED;
	}
}

static void job_poll(struct exec_job *job)
{
	server_t *s = job->arg;
	s->poll = PQconnectPoll(s->conn);
}

/* True if S[0..5) is a SQLSTATE: five digits or upper-case letters. */
static bool is_sqlstate(const char *s)
{
	for (int i = 0; i < 5; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return true;
}

void server_connect_error(const char *msg, char sqlstate[6], char *told, size_t len)
{
	static const char attempt[] = "connection to server ", failed[] = " failed: ";
	memcpy(sqlstate, "08006", 6);
	told[0] = '\0';
	/* libpq writes one "connection to server at "host" (addr), port N failed: why" line
	 * per host or address it tried (more lines may follow each): the last one counts */
	const char *line = NULL;
	for (const char *p = msg; p;) {
		if (strncmp(p, attempt, sizeof(attempt) - 1) == 0)
			line = p;
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	size_t line_len = line ? strcspn(line, "\n") : 0;
	const char *why = line ? memmem(line, line_len, failed, sizeof(failed) - 1) : NULL;
	if (!why)
		return; /* e.g. "could not translate host name "db1" to address" */
	why += sizeof(failed) - 1;
	const char *end = line + line_len;
	/* the server's ErrorResponse, verbose: "SEVERITY:  SQLSTATE: message" */
	const char *colon = memchr(why, ':', (size_t)(end - why));
	if (colon && end - colon > 10 && colon[1] == ' ' && colon[2] == ' ' &&
	    is_sqlstate(colon + 3) && colon[8] == ':' && colon[9] == ' ') {
		memcpy(sqlstate, colon + 3, 5);
		why = colon + 10;
	} else if (memchr(why, '"', (size_t)(end - why))) {
		return; /* libpq quotes a host or a file name ("server certificate for "x" ...") */
	}
	snprintf(told, len, "%.*s", (int)(end - why), why);
}

static void connect_failed(server_t *s, const char *msg)
{
	char sqlstate[6], told[256];
	server_connect_error(msg, sqlstate, told, sizeof(told));
	/* libpq's message may span lines ("connection to server ... failed: ...\n\tIs the
	 * server running ...?"): keep it on one line for the log. */
	char buf[512];
	size_t n = 0;
	for (const char *p = msg; *p && n < sizeof(buf) - 1; p++) {
		char ch = (*p == '\n' || *p == '\t') ? ' ' : *p;
		if (ch == ' ' && (n == 0 || buf[n - 1] == ' '))
			continue;
		buf[n++] = ch;
	}
	while (n > 0 && buf[n - 1] == ' ')
		n--;
	buf[n] = 0;
	close_server(s, true, n ? buf : "connection failed", sqlstate, told, false);
}

static void connect_wait(server_t *s, short what)
{
	int fd = PQsocket(s->conn);
	if (fd < 0) {
		connect_failed(s, PQerrorMessage(s->conn));
		return;
	}
	event_del(&s->pq_ev);
	event_assign(&s->pq_ev, rt->base, fd, what, pq_connect_cb, s);
	event_add(&s->pq_ev, NULL);
}

static const struct stream_ops server_stream_ops;
static void hk_start(server_t *s, unsigned plan);
static bool take_conn(server_t *s, const struct server_conn *c);

/* S's stream is open on a connection positioned after a ReadyForQuery, its reported
 * parameters and BackendKeyData taken: S starts its life as a connected server, made by
 * libpq or not. */
/* Where S's stream is connected: for pgcoro's own CancelRequest. */
static void learn_peer(server_t *s)
{
	s->peer_len = sizeof(s->peer);
	if (getpeername(s->st.fd, (struct sockaddr *)&s->peer, &s->peer_len) != 0)
		s->peer_len = 0;
}

int server_peer(const server_t *s, char *host, size_t len)
{
	host[0] = '\0';
	if (s->conn) {
		const char *h = PQhost(s->conn), *port = PQport(s->conn);
		snprintf(host, len, "%s", h ? h : "");
		return port && *port ? atoi(port) : 5432;
	}
	if (s->peer_len == 0)
		return 0;
	if (s->peer.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&s->peer;
		inet_ntop(AF_INET, &a->sin_addr, host, (socklen_t)len);
		return ntohs(a->sin_port);
	}
	if (s->peer.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&s->peer;
		inet_ntop(AF_INET6, &a->sin6_addr, host, (socklen_t)len);
		return ntohs(a->sin6_port);
	}
	if (s->peer.ss_family == AF_UNIX) {
		const struct sockaddr_un *a = (const struct sockaddr_un *)&s->peer;
		const char *slash = strrchr(a->sun_path, '/');
		const char *dot = strrchr(a->sun_path, '.');
		if (slash)
			snprintf(host, len, "%.*s", (int)(slash - a->sun_path), a->sun_path);
		return dot ? atoi(dot + 1) : 5432;
	}
	return 0;
}

/* "host:port" ("[host]:port" for IPv6) of SA into BUF; "" for another family. */
static void addr_str(const struct sockaddr_storage *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];
	buf[0] = '\0';
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(a->sin_port));
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
	}
}

/* The log_connections line of S, with PgBouncer's words, which its users' tools look for:
 * "ADDR:PORT new connection to server (from LOCAL:PORT)" (no addresses over a unix
 * socket). */
static void log_connected(const server_t *s)
{
	struct sockaddr_storage local;
	socklen_t local_len = sizeof(local);
	char peer[INET6_ADDRSTRLEN + 8], from[INET6_ADDRSTRLEN + 8] = "";
	addr_str(&s->peer, peer, sizeof(peer));
	if (*peer && getsockname(s->st.fd, (struct sockaddr *)&local, &local_len) == 0)
		addr_str(&local, from, sizeof(from));
	log_info("server %llu (%s/%s): connected, backend pid %u%s; %s%snew connection to "
		 "server%s%s%s",
		 (unsigned long long)s->id, s->pool->dbname, s->pool->user,
		 (unsigned)s->backend_pid, s->replication ? ", replication" : "", peer,
		 *peer ? " " : "", *from ? " (from " : "", from, *from ? ")" : "");
}

static void connected(server_t *s)
{
	learn_peer(s);
	stream_set_read(&s->st, true);
	s->tx_status = 'I';
	double now = rt_now();
	struct metrics_pool *m = rt->metrics_on ? pool_metrics(s->pool) : NULL;
	if (m)
		metrics_observe(&m->connect,
				now > s->connected_at ? (uint64_t)((now - s->connected_at) * 1e6) : 0);
	s->connected_at = s->idle_since = now;
	s->fresh = true;
	/* a replication server's parameters are its client's, not the pool's defaults; its
	 * pool gets a traffic part all the same (a pool with a server has one) */
	if (s->replication ? !pool_traffic(s->pool) : !pool_connect_ok(s->pool, s->params)) {
		connect_failed(s, "out of memory");
		return;
	}
	pool_host_result(s->pool, s->lb_host, true);
	if (rt->cfg->log_connections)
		log_connected(s);
	sockopt_apply(s->st.fd, rt->cfg);
	stream_limit_send(&s->st, sockopt_send_max(s->st.fd, rt->cfg));
	if (s->replication) {
		/* no connect_query: a physical walsender runs no SQL, and the session is its
		 * client's alone */
		client_t *c = s->client;
		pool_replication_ready(s->pool, c);
		server_set_state(s, SV_ACTIVE);
		client_on_server_ready(c);
		return;
	}
	if (s->pool->connect_query) {
		hk_start(s, HK_CONNECT); /* then idle */
		return;
	}
	server_set_state(s, SV_IDLE);
	pool_kick(s->pool);
}

/* libpq's last connect step succeeded: S takes the connection over (libpq's socket, and
 * its TLS handle) with what libpq learnt at the login — the reported parameters and the
 * process ID; the cancel key stays inside libpq (its PQgetCancel). */
static void on_connected(server_t *s)
{
	evtimer_del(&s->timer);
	event_del(&s->pq_ev);
	/* libpq writes nothing more but PQfinish's Terminate, which must not block */
	if (PQsetnonblocking(s->conn, 1) != 0) {
		connect_failed(s, PQerrorMessage(s->conn));
		return;
	}
	stream_init(&s->st, rt->base, PQsocket(s->conn), false, &server_stream_ops, s);
	if (PQsslInUse(s->conn)) {
		/* libpq did the handshake; the stream reads and writes through its handle */
		SSL *ssl = PQsslStruct(s->conn, "OpenSSL");
		if (!ssl) {
			connect_failed(s, "TLS in use but libpq gives no OpenSSL handle");
			return;
		}
		if (!stream_tls_attach(&s->st, ssl, false)) {
			connect_failed(s, "out of memory");
			return;
		}
	}
	for (int i = 0; i < SERVER_NPARAMS; i++)
		set_param(s, i, PQparameterStatus(s->conn, server_param_names[i]));
	s->backend_pid = (uint32_t)PQbackendPID(s->conn);
	connected(s);
}

static void job_done(struct exec_job *job)
{
	server_t *s = job->arg;
	s->job_running = false;
	if (s->state == SV_CLOSING) {
		reaper_schedule();
		return;
	}
	switch (s->poll) {
	case PGRES_POLLING_READING:
		connect_wait(s, EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		connect_wait(s, EV_WRITE);
		break;
	case PGRES_POLLING_OK:
		on_connected(s);
		break;
	default:
		connect_failed(s, s->conn ? PQerrorMessage(s->conn) : "out of memory");
		break;
	}
}

static void submit(server_t *s, void (*fn)(struct exec_job *))
{
	s->job.fn = fn;
	s->job.done = job_done;
	s->job.arg = s;
	s->job_running = true;
	exec_submit(rt->exec, &s->job);
}

static void pq_connect_cb(evutil_socket_t fd, short what, void *arg)
{
	server_t *s = arg;
	if (s->state != SV_CONNECTING)
		fatal("server %llu: connect step in state %s", (unsigned long long)s->id,
		      server_state_name(s->state));
	submit(s, job_poll);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	server_t *s = arg;
	if (s->state == SV_CONNECTING) {
		char reason[64];
		snprintf(reason, sizeof(reason), "server_connect_timeout (%.1fs) reached",
			 rt->cfg->server_connect_timeout);
		metrics_timeout(s->pool, MT_SERVER_CONNECT);
		close_server(s, true, reason, "08006", reason, true);
	}
}

static struct timeval seconds_tv(double sec)
{
	struct timeval tv;
	tv.tv_sec = (time_t)sec;
	tv.tv_usec = (suseconds_t)((sec - (double)tv.tv_sec) * 1e6);
	return tv;
}

/* A new server of POOL, in no list yet; NULL if out of memory. */
static server_t *server_new(pool_t *pool)
{
	server_t *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->id = ++rt->last_id;
	s->pool = pool;
	pool_ref(pool);
	s->conn_gen = pool->conn_gen;
	s->lb_host = -1;
	s->connected_at = rt_now(); /* the connect's start until it is made (ages in logs) */
	list_init(&s->node);
	event_assign(&s->pq_ev, rt->base, -1, 0, pq_connect_cb, s);
	evtimer_assign(&s->timer, rt->base, timer_cb, s);
	return s;
}

/* pgcoro's own login of S ended (srvconnect.h): S takes the connection and starts its
 * life as any connected server, or the failure goes the way of libpq's. */
static void own_login_done(struct srvconnect *sc, void *arg)
{
	server_t *s = arg;
	if (!srvconnect_ok(sc)) {
		struct srvlogin_error e = *srvconnect_error(sc); /* close_server frees SC */
		char reason[640];
		snprintf(reason, sizeof(reason), "%s%s%s", e.where, e.where[0] ? ": " : "",
			 e.reason);
		log_debug("server %llu (%s/%s): pgcoro's own login failed (%s)",
			  (unsigned long long)s->id, s->pool->dbname, s->pool->user,
			  e.from_server ? "the server's error" : "pgcoro's");
		close_server(s, true, reason, e.sqlstate, e.reason, false);
		return;
	}
	struct server_conn c;
	bool ok = srvconnect_take(sc, &c);
	if (ok && !take_conn(s, &c)) {
		if (c.ssl)
			SSL_free(c.ssl);
		close(c.fd);
		ok = false;
	}
	srvconnect_free(sc); /* after take_conn: the parameters were its */
	s->login = NULL;
	if (!ok) {
		close_server(s, true, "out of memory", "53200", "out of memory", false);
		return;
	}
	evtimer_del(&s->timer);
	connected(s);
}

/* S (new, its conn_params set) starts connecting: SV_CONNECTING, the connect timeout, and
 * the first step on the executor, or pgcoro's own login for a credential libpq cannot use.
 * False (nothing changed, S still to be freed) without memory for that login. */
static bool connect_start(server_t *s)
{
	if (srvconnect_wanted(s->conn_params)) {
		/* an md5 secret or a SCRAM verifier, or ciphers: libpq cannot use those */
		if (!(s->login = srvconnect_start(s->conn_params, own_login_done, s)))
			return false;
		free(s->conn_params);
		s->conn_params = NULL;
	}
	server_set_state(s, SV_CONNECTING);
	if (s->client)
		log_debug("server %llu (%s/%s): connecting for replication client %llu",
			  (unsigned long long)s->id, s->pool->dbname, s->pool->user,
			  (unsigned long long)s->client->id);
	else
		log_debug("server %llu (%s/%s): connecting%s", (unsigned long long)s->id,
			  s->pool->dbname, s->pool->user,
			  s->login ? " (pgcoro's own login)" : "");
	if (rt->cfg->server_connect_timeout > 0) {
		struct timeval tv = seconds_tv(rt->cfg->server_connect_timeout);
		evtimer_add(&s->timer, &tv);
	}
	if (!s->login)
		submit(s, job_start);
	return true;
}

bool server_connect(pool_t *pool)
{
	server_t *s = server_new(pool);
	if (!s)
		return false;
	if ((s->conn_params = pool_conn_params(pool)))
		s->lb_host = s->conn_params->host;
	if (!s->conn_params || !connect_start(s)) {
		free(s->conn_params);
		pool_unref(pool);
		free(s);
		return false;
	}
	return true;
}

/* Appends STR to *W, escaped as PostgreSQL's pg_split_opts reads "options": a backslash
 * before white space and before a backslash. */
static void put_escaped(char **w, const char *str)
{
	for (; *str; str++) {
		if (strchr(" \t\n\r\f\v\\", *str))
			*(*w)++ = '\\';
		*(*w)++ = *str;
	}
}

/* Appends KW = VAL to CP at *K, the strings copied to *W. */
static void add_param(struct pool_conn_params *cp, int *k, char **w, const char *kw,
		      const char *val)
{
	cp->kw[*k] = *w;
	*w = stpcpy(*w, kw) + 1;
	cp->val[(*k)++] = *w;
	*w = stpcpy(*w, val) + 1;
}

/* The libpq parameters of replication client C's server: POOL's, with "replication"
 * (database or true), C's application_name, and "options" = the database entry's options
 * followed by C's other startup parameters and -c settings as "-c name=value" (the last
 * setting of a name wins, so C's override the entry's). NULL if out of memory. */
static struct pool_conn_params *replication_params(pool_t *pool, const client_t *c)
{
	struct pool_conn_params *base = pool_conn_params(pool);
	if (!base)
		return NULL;
	const char *entry_opts = "", *app = NULL;
	size_t strings = sizeof("replication") + sizeof("database") + sizeof("options") + 1;
	int n = 0;
	for (; base->kw[n]; n++) {
		if (strcmp(base->kw[n], "options") == 0)
			entry_opts = base->val[n];
		strings += strlen(base->kw[n]) + strlen(base->val[n]) + 2;
	}
	for (int i = 0; i < c->nparams; i++) {
		if (strcmp(c->params[i].name, "application_name") == 0)
			app = c->params[i].value;
		else
			strings += 5 + 2 * (strlen(c->params[i].name) + strlen(c->params[i].value));
	}
	if (app)
		strings += sizeof("application_name") + strlen(app) + 1;
	size_t slots = (size_t)n + 4;
	struct pool_conn_params *cp = malloc(sizeof(*cp) + 2 * slots * sizeof(char *) + strings);
	if (!cp) {
		free(base);
		return NULL;
	}
	cp->kw = (const char **)(cp + 1);
	cp->val = cp->kw + slots;
	char *w = (char *)(cp->val + slots);
	int k = 0;
	for (int i = 0; i < n; i++) {
		const char *kw = base->kw[i];
		if (strcmp(kw, "replication") != 0 && strcmp(kw, "options") != 0 &&
		    !(app && strcmp(kw, "application_name") == 0))
			add_param(cp, &k, &w, kw, base->val[i]);
	}
	add_param(cp, &k, &w, "replication",
		  c->replication == PROTO_REPL_LOGICAL ? "database" : "true");
	if (app)
		add_param(cp, &k, &w, "application_name", app);
	add_param(cp, &k, &w, "options", entry_opts);
	w--; /* the options go on where the entry's end */
	for (int i = 0; i < c->nparams; i++) {
		if (strcmp(c->params[i].name, "application_name") == 0)
			continue;
		w = stpcpy(w, *cp->val[k - 1] ? " -c " : "-c ");
		put_escaped(&w, c->params[i].name);
		*w++ = '=';
		put_escaped(&w, c->params[i].value);
	}
	*w = '\0';
	cp->kw[k] = cp->val[k] = NULL;
	cp->host = base->host;
	cp->database = base->database;
	free(base);
	return cp;
}

bool server_connect_replication(pool_t *pool, client_t *c)
{
	server_t *s = server_new(pool);
	if (!s)
		return false;
	if (!(s->conn_params = replication_params(pool, c))) {
		pool_unref(pool);
		free(s);
		return false;
	}
	s->lb_host = s->conn_params->host;
	s->replication = c->replication;
	s->client = c;
	c->server = s;
	if (!connect_start(s)) { /* no memory for pgcoro's own login */
		c->server = NULL;
		free(s->conn_params);
		pool_unref(pool);
		free(s);
		return false;
	}
	return true;
}

/* S takes over connection C: its stream (C's socket, and TLS handle), its reported
 * parameters (C's, else the pool's) and BackendKeyData. False without memory: C's socket
 * and handle are then still the caller's. */
static bool take_conn(server_t *s, const struct server_conn *c)
{
	stream_init(&s->st, rt->base, c->fd, true, &server_stream_ops, s);
	if (c->ssl && !stream_tls_attach(&s->st, c->ssl, true)) {
		s->st.close_fd = false; /* the caller's still */
		stream_free(&s->st);
		return false;
	}
	if (c->names) {
		for (int k = 0; k < c->nparams; k++) {
			int i = reported_index(c->names[k]);
			if (i >= 0)
				set_param(s, i, c->values[k]);
		}
	} else {
		for (int i = 0; i < SERVER_NPARAMS; i++)
			set_param(s, i, pool_param(s->pool, i));
	}
	s->backend_pid = c->backend_pid;
	s->cancel_key = c->cancel_key;
	s->cancel_key_known = c->have_key;
	return true;
}

server_t *server_adopt_conn(pool_t *pool, const struct server_conn *c)
{
	if (!pool_traffic(pool)) /* a pool with a server has it */
		return NULL;
	server_t *s = server_new(pool);
	if (!s)
		return NULL;
	if (!take_conn(s, c)) {
		pool_unref(pool);
		free(s);
		return NULL;
	}
	learn_peer(s);
	stream_set_read(&s->st, true);
	s->tx_status = 'I';
	s->idle_since = s->connected_at;
	s->fresh = true;
	server_set_state(s, SV_IDLE);
	return s;
}

server_t *server_adopt(pool_t *pool, int fd)
{
	return server_adopt_conn(pool, &(struct server_conn){.fd = fd});
}

/* ---- relay-time callbacks ------------------------------------------------------------ */

static void hk_input(server_t *s);

static void server_read_cb(struct stream *st, void *arg)
{
	server_t *s = arg;
	switch (s->state) {
	case SV_ACTIVE:
		relay_server_to_client(s);
		break;
	case SV_HOUSEKEEPING:
		hk_input(s);
		break;
	case SV_IDLE:
		server_disconnect(s, "unexpected data from idle server");
		break;
	default:
		break;
	}
}

static void server_drain_cb(struct stream *st, void *arg)
{
	server_t *s = arg;
	if (s->state == SV_ACTIVE && s->client)
		relay_client_to_server(s->client);
}

static void server_event_cb(struct stream *st, enum stream_event ev, void *arg)
{
	server_t *s = arg;
	if (s->state == SV_HOUSEKEEPING && s->hk_running && s->hk.failed) /* its last words */
		server_disconnect(s, "%s failed: %s", hk_name(s->hk_running), s->hk.message);
	else if (ev == STREAM_EOF) /* PgBouncer's words first, which alerts look for */
		server_disconnect(s, "server conn crashed? (server closed the connection)");
	else
		server_disconnect(s, "server conn crashed? (%s error: %s)", st->tls ? "TLS" : "socket",
				  stream_error_string(st));
}

static const struct stream_ops server_stream_ops = {
	.on_read = server_read_cb,
	.on_drain = server_drain_cb,
	.on_event = server_event_cb,
};

/* ---- housekeeping -------------------------------------------------------------------- */

/* S is clean and unlinked: back to the idle list (or closed if past server_lifetime). */
static void server_to_idle(server_t *s)
{
	if (s->conn_gen != s->pool->conn_gen) {
		server_disconnect(s, "%s", s->pool->renew_why);
		return;
	}
	if (s->pool->paused) {
		server_disconnect(s, "pause mode");
		return;
	}
	double now = rt_now();
	double lifetime = s->pool->server_lifetime;
	if (lifetime > 0 && now - s->connected_at >= lifetime) {
		server_disconnect(s, "server lifetime over (server_lifetime = %gs)", lifetime);
		return;
	}
	s->idle_since = s->pool->last_active = now;
	server_set_state(s, SV_IDLE);
	pool_kick(s->pool);
	if (s->state == SV_IDLE)
		pool_kick_related(s->pool); /* unused here: a sibling pool may take its place */
}

static void hk_finish(server_t *s)
{
	s->tx_status = 'I';
	s->out_syncs = 0;
	s->mid_ext = false;
	s->msg_pending = 0;
	s->copy_open = s->copy_in = s->copy_unsure = false;
	s->copy_syncs = 0;
	if (rt->shutting_down) {
		server_disconnect(s, "shutting down");
		return;
	}
	if (s->client) {
		server_set_state(s, SV_ACTIVE);
		client_on_server_ready(s->client);
	} else {
		server_to_idle(s);
	}
}

static const char *const hk_names[] = {"connect_query",  "ROLLBACK",
				       "server_reset_query", "RESET ALL",
				       "parameter sync", "server_check_query",
				       "UNLISTEN *", "auth_query", "session state check"};

static const char *hk_name(unsigned step)
{
	for (unsigned i = 0; i < sizeof(hk_names) / sizeof(hk_names[0]); i++)
		if (step == 1u << i)
			return hk_names[i];
	return "?";
}

/* The parameters the linked client wants that differ from the server's, as set_config
 * arguments (name, value pairs; at most MAX / 2). In transaction/statement mode each
 * tracked reported parameter is wanted at the value the client's session last set, else
 * its startup value, else the pool's default, so one client's SET neither leaks into
 * another's transactions nor is lost on its own next server. Returns the number of
 * pairs. */
static int sync_params(server_t *s, const char **vals, int max)
{
	client_t *c = s->client;
	int n = 0;
	if (!c)
		return 0;
	uint32_t tracked = tracked_mask(s->pool);
	const char *want[SERVER_NPARAMS] = {0};
	for (int i = 0; i < SERVER_NPARAMS; i++)
		if (tracked & 1u << i)
			want[i] = c->session_params && c->session_params[i] ? c->session_params[i]
									    : pool_param(s->pool, i);
	for (int i = 0; i < c->nparams; i++) {
		/* reported parameters: compare with the server's value; others: known applied
		 * when the server last synced this same set */
		const struct client_param *p = &c->params[i];
		if (p->report >= 0 && (tracked & 1u << p->report)) {
			if (!c->session_params || !c->session_params[p->report])
				want[p->report] = p->value;
			continue;
		}
		bool same = p->report >= 0 ? str_eq(s->params[p->report], p->value)
					   : s->applied_sig == client_other_sig(c);
		if (same || n + 2 > max)
			continue;
		vals[n++] = p->name;
		vals[n++] = p->value;
	}
	/* then its session's settings (pin.h), which come after its startup ones */
	if (c->settings && s->applied_sig != client_other_sig(c))
		for (int i = 0; i < c->settings->n && n + 2 <= max; i++) {
			vals[n++] = c->settings->kv[2 * i];
			vals[n++] = c->settings->kv[2 * i + 1];
		}
	for (int i = 0; i < SERVER_NPARAMS && n + 2 <= max; i++) {
		if (!want[i] || str_eq(s->params[i], want[i]))
			continue;
		vals[n++] = server_param_names[i];
		vals[n++] = want[i];
	}
	return n / 2;
}

/* True when C has startup settings a sync applies to S that only a RESET ALL undoes:
 * any but the tracked reported parameters, which every hand-out sets as each client
 * wants them. */
static bool has_other_params(server_t *s, const client_t *c)
{
	uint32_t tracked = tracked_mask(s->pool);
	for (int i = 0; i < c->nparams; i++)
		if (c->params[i].report < 0 || !(tracked & 1u << c->params[i].report))
			return true;
	return c->settings != NULL;
}

/* After a sync applied C's settings on S: a tracked parameter C wants at its startup
 * value that S reports in other words ("ISO" -> "ISO, MDY") is C's in S's words from
 * now on, so the next servers compare equal and need no sync for it (PgBouncer's
 * canonical varcache values; the debug line is in its words). */
static void canonicalize(server_t *s, client_t *c)
{
	uint32_t tracked = tracked_mask(s->pool);
	for (int k = 0; k < c->nparams; k++) {
		const struct client_param *p = &c->params[k];
		int i = p->report;
		if (i < 0 || !(tracked & 1u << i) || !s->params[i] ||
		    (c->session_params && c->session_params[i]) || str_eq(s->params[i], p->value))
			continue;
		log_debug("client %llu: varcache_set_canonical: setting %s to its canonical version "
			  "%s -> %s",
			  (unsigned long long)c->id, server_param_names[i], p->value, s->params[i]);
		client_param_changed(c, i, s->params[i]);
	}
}

/* set_config calls in one sync */
#define SYNC_MAX (CLIENT_MAX_PARAMS + SERVER_NPARAMS + PIN_SETTINGS_MAX)

static bool hk_send_sync(server_t *s, bool *sent)
{
	const char *vals[2 * SYNC_MAX];
	int n = sync_params(s, vals, 2 * SYNC_MAX);
	*sent = n > 0;
	if (!n)
		return true;
	if (log_enabled(LOGL_DEBUG))
		for (int i = 0; i < n; i++) /* PgBouncer's words */
			log_debug("server %llu: varcache_apply: SET %s='%s'", (unsigned long long)s->id,
				  vals[2 * i], vals[2 * i + 1]);
	char sql[SYNC_MAX * 48];
	size_t off = (size_t)snprintf(sql, sizeof(sql), "SELECT");
	for (int i = 0; i < n; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off,
					"%s pg_catalog.set_config($%d, $%d, false)", i ? "," : "",
					2 * i + 1, 2 * i + 2);
	/* the values as parameters: whatever their bytes, never quoted into the text */
	return hkquery_send_params(&s->st, sql, 2 * n, vals);
}

/* A ParameterStatus in a housekeeping answer (the sync's own SETs, a RESET): S's table
 * follows; the client is not told (its session did not set it). */
static void hk_param(void *arg, const char *name, const char *value)
{
	server_t *s = arg;
	int i = reported_index(name);
	if (i >= 0)
		set_param(s, i, value);
}

/* A WARNING or NOTICE a housekeeping query raised: logged, as libpq's notice processor
 * did (on_notice). */
static void hk_notice(void *arg, const char *severity, const char *message)
{
	const server_t *s = arg;
	log_info("server %llu (%s/%s): %s:  %s", (unsigned long long)s->id, s->pool->dbname,
		 s->pool->user, severity, message);
}

/* A notification (of a server that listened, before its UNLISTEN *) is nobody's. */
static const struct hkquery_ops hk_ops = {.param = hk_param, .notice = hk_notice};

/* A DataRow of HK_TASK's answer goes to the task, if it still waits for it. */
static void hk_task_row(void *arg, const uint8_t *body, uint32_t blen)
{
	server_t *s = arg;
	if (s->task && s->task->row)
		s->task->row(s->task->arg, body, blen);
}

static const struct hkquery_ops hk_task_ops = {
    .param = hk_param, .notice = hk_notice, .datarow = hk_task_row};

/* A DataRow of HK_PROBE's answer goes to pin.c. */
static void hk_probe_row(void *arg, const uint8_t *body, uint32_t blen)
{
	server_t *s = arg;
	if (s->client)
		pin_probe_row(s->client, body, blen);
}

static const struct hkquery_ops hk_probe_ops = {
    .param = hk_param, .notice = hk_notice, .datarow = hk_probe_row};

static void hk_next(server_t *s)
{
	unsigned step = 0;
	for (unsigned bit = HK_CONNECT; bit <= HK_PROBE; bit <<= 1) {
		if (s->hk_plan & bit) {
			step = bit;
			break;
		}
	}
	if (!step) {
		hk_finish(s);
		return;
	}
	s->hk_plan &= ~step;
	s->hk_running = step;
	hkquery_begin(&s->hk,
		      step == HK_TASK ? &hk_task_ops : step == HK_PROBE ? &hk_probe_ops : &hk_ops, s);
	const char *sql = NULL;
	bool ok = true, sent = true;
	switch (step) {
	case HK_CONNECT:
		sql = s->pool->connect_query;
		break;
	case HK_ROLLBACK:
		sql = "ROLLBACK";
		break;
	case HK_RESET:
		sql = rt->cfg->server_reset_query;
		break;
	case HK_UNSET:
		/* RESET ALL leaves what PostgreSQL marks GUC_NO_RESET_ALL: the role and the
		 * session authorization a startup -c may have set go first */
		sql = "SET SESSION AUTHORIZATION DEFAULT; RESET ROLE; RESET ALL";
		/* before a task (auth_query) the session's temporary tables go too: one named
		 * as a catalog (pg_temp pg_authid) would be read before it, pg_temp being
		 * searched first */
		if (s->task)
			sql = "SET SESSION AUTHORIZATION DEFAULT; RESET ROLE; RESET ALL; DISCARD TEMP";
		break;
	case HK_SYNC:
		ok = hk_send_sync(s, &sent);
		break;
	case HK_CHECK: /* PgBouncer's "<empty>" is an empty query */
		sql = strcmp(rt->cfg->server_check_query, "<empty>") == 0 ? ""
									  : rt->cfg->server_check_query;
		break;
	case HK_UNLISTEN:
		sql = "UNLISTEN *";
		break;
	case HK_PROBE:
		sql = s->client ? pin_probe_sql(s->client) : "";
		break;
	case HK_TASK:
		/* cancelled meanwhile: an empty query keeps the step's shape */
		ok = s->task ? hkquery_send_params(&s->st, s->task->sql, s->task->nvalues,
						    s->task->values)
			     : hkquery_send(&s->st, "");
		break;
	}
	if (sql)
		ok = hkquery_send(&s->st, sql);
	if (!ok) {
		server_disconnect(s, "%s: out of memory", hk_name(step));
		return;
	}
	if (!sent) {
		hk_next(s);
		return;
	}
	log_debug("server %llu: housekeeping: %s", (unsigned long long)s->id, hk_name(step));
}

/* The answer to the step in flight has ended with its ReadyForQuery: acts on it, then
 * runs the next step (or ends housekeeping). */
static void hk_step_done(server_t *s)
{
	unsigned step = s->hk_running;
	const struct hkquery *q = &s->hk;
	if (step == HK_TASK && s->task) {
		/* its error is its owner's to report: the server is fine after it */
		struct server_task *t = s->task;
		s->task = NULL;
		t->server = NULL;
		t->done(t->arg, q);
	}
	if (step == HK_PROBE && s->client) /* its failure is the client's to weigh */
		pin_probe_done(s->client, s, q);
	if (q->failed && step != HK_TASK && step != HK_PROBE) {
		if (step == HK_SYNC && s->client) {
			/* The client asked for a bad parameter: it gets the error, the server
			 * (back to idle after the failed statement) is kept. */
			client_disconnect_error(s->client, q->sqlstate[0] ? q->sqlstate : "08006",
						q->detail[0] ? q->detail : NULL,
						q->hint[0] ? q->hint : NULL, q->message);
		} else if (step == HK_CONNECT) {
			/* as PgBouncer: logged, and the server is used all the same */
			log_warning("server %llu (%s/%s): connect_query failed: %s",
				    (unsigned long long)s->id, s->pool->dbname, s->pool->user,
				    q->message);
		} else {
			server_disconnect(s, "%s failed: %s", hk_name(step), q->message);
			return;
		}
	}
	s->hk_running = 0;
	if (q->tx_status != 'I') {
		server_disconnect(s, "not idle after %s", hk_name(step));
		return;
	}
	if (step == HK_CHECK)
		s->fresh = true;
	if (step == HK_UNLISTEN)
		s->listen_seen = false;
	if (step == HK_RESET || step == HK_UNSET) {
		s->applied_sig = 0;
		s->applied_other = false;
	}
	if (step == HK_RESET) {
		prep_server_forget(s); /* DISCARD ALL, or whatever it is: not known to remain */
		s->pinned = false;
	}
	if (step == HK_SYNC && s->client) {
		s->applied_sig = client_other_sig(s->client);
		s->applied_other = has_other_params(s, s->client);
		canonicalize(s, s->client);
	}
	if (step == HK_RESET || step == HK_UNSET || step == HK_SYNC)
		s->synced_sig = 0; /* what it holds changed: the next client is compared again */
	hk_next(s);
}

/* S's input while it runs housekeeping: the answers, read whole (hkquery.h). */
static void hk_input(server_t *s)
{
	while (s->state == SV_HOUSEKEEPING) {
		if (!s->hk_running)
			fatal("server %llu: housekeeping input with no step in flight",
			      (unsigned long long)s->id);
		const char *why = "?";
		switch (hkquery_read(&s->hk, &s->st, &why)) {
		case HKQUERY_MORE:
			return;
		case HKQUERY_BAD:
			server_disconnect(s, "%s: %s", hk_name(s->hk_running), why);
			return;
		case HKQUERY_DONE:
			break;
		}
		if (!s->hk_plan && stream_input_len(&s->st)) {
			/* nothing asked for it (an idle server would be closed for it too) */
			server_disconnect(s, "unexpected data after %s", hk_name(s->hk_running));
			return;
		}
		hk_step_done(s); /* sends the next step, whose answer may be here already */
	}
}

static void hk_start(server_t *s, unsigned plan)
{
	s->hk_plan = plan;
	server_set_state(s, SV_HOUSEKEEPING);
	stream_set_read(&s->st, true);
	hk_next(s);
}

/* ---- linking ------------------------------------------------------------------------- */

void server_assign(server_t *s, client_t *c)
{
	if (s->state != SV_IDLE)
		fatal("server %llu: assigned in state %s", (unsigned long long)s->id,
		      server_state_name(s->state));
	s->client = c;
	c->server = s;
	s->prep_on = false;
	s->closes_pending = 0;
	s->fatal_passed = false;
	s->sync_chain = false; /* what the last client sent tells nothing of this one */
	s->syncs_after = 0;
	s->copy_ends_unmatched = 0;
	s->listen_track = false;
	if (c->prep && s->pool->pool_mode != POOL_SESSION && rt->cfg->max_prepared_statements > 0)
		prep_server_start(s); /* a client that has named statements: tracked from here */
	/* The first login of a transaction/statement-mode pool takes a server only for its
	 * welcome: with nothing to run, nothing is synced (its settings go with its first
	 * query, as those of every later login, welcomed from the pool's parameters). */
	bool welcome_only = !c->welcomed && s->pool->pool_mode != POOL_SESSION &&
			    !c->replication && s->pool->params_known && stream_input_len(&c->st) == 0;
	/* another client's startup settings on S: undone first (its own stay its own) */
	bool unset = s->applied_other && s->applied_sig != client_other_sig(c);
	if (!welcome_only &&
	    (unset || s->synced_sig != client_sync_key(c) || s->synced_gen != s->params_gen)) {
		const char *vals[2];
		if (unset || sync_params(s, vals, 2) > 0) {
			hk_start(s, unset ? HK_UNSET | HK_SYNC : HK_SYNC);
			return;
		}
		s->synced_sig = client_sync_key(c);
		s->synced_gen = s->params_gen;
	}
	server_set_state(s, SV_ACTIVE);
	client_on_server_ready(c);
}

void server_release(server_t *s)
{
	s->client = NULL;
	if (s->replication) {
		/* its session was its client's alone (a walsender takes neither a reset nor
		 * another client): never reused */
		server_disconnect(s, "replication client left");
		return;
	}
	if (s->prep_on && !prep_quiet(&s->pring))
		prep_server_free(s); /* answers still due: it is closed below or after a cancel */
	if (s->cancel_running && s->state == SV_ACTIVE) {
		s->release_pending = true; /* a cancel must not hit the next client's query */
		return;
	}
	if (s->state == SV_HOUSEKEEPING && s->pinned && s->pool->pool_mode != POOL_SESSION) {
		/* it left while its server was asked what its session holds (pin.h) */
		if (!rt->cfg->server_reset_query[0]) {
			server_disconnect(s, "pinned client left (no server_reset_query)");
			return;
		}
		s->hk_plan |= HK_RESET;
	}
	if (s->state != SV_ACTIVE)
		return; /* housekeeping goes on and ends in idle; closing servers stay closed */
	if (rt->shutting_down) {
		server_disconnect(s, "shutting down");
		return;
	}
	if (s->pool->server_lifetime <= 0) { /* PgBouncer's meaning of 0: used once */
		server_disconnect(s, "server_lifetime = 0: a server serves one client");
		return;
	}
	if (s->msg_pending || s->out_syncs || s->mid_ext || s->copy_open || s->copy_in ||
	    s->copy_unsure || s->copy_syncs || stream_input_len(&s->st) ||
	    stream_output_len(&s->st)) {
		server_disconnect(s, "client left in the middle of a query");
		return;
	}
	if (s->conn_gen != s->pool->conn_gen) {
		server_to_idle(s); /* which closes it: an outdated server needs no reset */
		return;
	}
	if (prep_server_worn(s)) {
		server_disconnect(s, "SQL PREPARE/DEALLOCATE left more statements of pgcoro's "
				     "unknown than max_prepared_statements");
		return;
	}
	/* In transaction/statement mode a release inside a transaction means its client
	 * left there: what the session made (session advisory locks, SQL PREPAREs, SETs
	 * outside the block...) is not passed on, and a ROLLBACK does not undo it; so
	 * server_reset_query runs after it, or without one the server is closed (PgBouncer
	 * closes it). */
	bool left_mid_xact = s->tx_status != 'I' && s->pool->pool_mode != POOL_SESSION;
	if (left_mid_xact && !rt->cfg->server_reset_query[0]) {
		server_disconnect(s, "client left inside a transaction (no server_reset_query)");
		return;
	}
	/* a pinned client's session state (pin.h) goes with server_reset_query, as a
	 * session client's */
	if (s->pinned && s->pool->pool_mode != POOL_SESSION && !rt->cfg->server_reset_query[0]) {
		server_disconnect(s, "pinned client left (no server_reset_query)");
		return;
	}
	unsigned plan = 0;
	if (s->tx_status != 'I')
		plan |= HK_ROLLBACK;
	if ((s->pool->pool_mode == POOL_SESSION || left_mid_xact || s->pinned ||
	     rt->cfg->server_reset_query_always) &&
	    rt->cfg->server_reset_query[0])
		plan |= HK_RESET;
	if (s->listen_seen)
		plan |= HK_UNLISTEN; /* its client's LISTEN: served by the listener connection */
	if (!plan) {
		server_to_idle(s);
		return;
	}
	hk_start(s, plan);
}

void server_probe(server_t *s)
{
	if (s->state != SV_ACTIVE || !s->client)
		fatal("server %llu: probed in state %s", (unsigned long long)s->id,
		      server_state_name(s->state));
	hk_start(s, HK_PROBE);
}

void server_run_task(server_t *s, struct server_task *t)
{
	if (s->state != SV_IDLE || s->client)
		fatal("server %llu: task run in state %s", (unsigned long long)s->id,
		      server_state_name(s->state));
	s->task = t;
	t->server = s;
	hk_start(s, HK_UNSET | HK_TASK);
}

bool server_check_if_stale(server_t *s)
{
	const struct config *cfg = rt->cfg;
	/* Just connected or checked (within a second): good for this hand-out. */
	bool fresh = s->fresh;
	s->fresh = false;
	if (!cfg->server_check_query[0])
		return false;
	double idle = rt_now() - s->idle_since;
	if ((fresh && idle < 1.0) || idle < cfg->server_check_delay)
		return false;
	hk_start(s, HK_CHECK);
	return true;
}

void server_expire_idle(pool_t *pool, double now)
{
	if (rt->suspended)
		return; /* SUSPEND: an online restart may be handing them over (takeover.h) */
	const struct config *cfg = rt->cfg;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pool->sv_idle)
	{
		server_t *s = list_entry(pos, server_t, node);
		if (pool->server_lifetime > 0 && now - s->connected_at >= pool->server_lifetime)
			server_disconnect(s, "server lifetime over (server_lifetime = %gs)",
					  pool->server_lifetime);
		else if (cfg->server_idle_timeout > 0 && now - s->idle_since >= cfg->server_idle_timeout &&
			 pool_server_count(pool) > pool->min_pool_size)
			server_disconnect(s, "server idle timeout (server_idle_timeout = %gs)",
					  cfg->server_idle_timeout);
	}
}

/* ---- cancel -------------------------------------------------------------------------- */

/* On the executor: reads only what server_cancel set and the loop leaves alone while
 * cancel_running. */
static void cancel_job_fn(struct exec_job *job)
{
	server_t *s = job->arg;
	if (s->cancel)
		s->cancel_ok = PQcancel(s->cancel, s->cancel_err, sizeof(s->cancel_err)) == 1;
	else
		s->cancel_ok = cancelreq_send((const struct sockaddr *)&s->peer, s->peer_len,
					      s->backend_pid, s->cancel_key, s->cancel_timeout_ms,
					      s->cancel_err, sizeof(s->cancel_err));
}

static void cancel_done(struct exec_job *job)
{
	server_t *s = job->arg;
	if (s->cancel)
		PQfreeCancel(s->cancel);
	s->cancel = NULL;
	s->cancel_running = false;
	if (s->cancel_ok)
		log_info("server %llu (%s/%s): cancel request sent", (unsigned long long)s->id,
			 s->pool->dbname, s->pool->user);
	else
		log_warning("server %llu (%s/%s): cancel failed: %s", (unsigned long long)s->id,
			    s->pool->dbname, s->pool->user, s->cancel_err);
	bool again = s->cancel_again;
	s->cancel_again = false;
	if (s->state == SV_CLOSING) {
		reaper_schedule();
	} else if (again && s->client && !s->release_pending && (s->out_syncs || s->mid_ext)) {
		/* a second cancel came while the first was in flight: the query running now
		 * is the one it meant */
		server_cancel(s);
	} else if (s->release_pending) {
		s->release_pending = false;
		server_release(s);
	} else if (s->client) {
		client_maybe_release(s->client);
	}
}

void server_cancel(server_t *s)
{
	if (s->state != SV_ACTIVE)
		return;
	if (s->cancel_running) {
		s->cancel_again = true; /* sent when the one in flight is done, if still due */
		return;
	}
	if (s->cancel_key_known && s->peer_len) {
		/* pgcoro's own CancelRequest, to where the connection goes */
		double t = rt->cfg->server_connect_timeout;
		s->cancel_timeout_ms = t > 0 && t < 86400 ? (int)(t * 1000) : 0;
	} else if (!s->conn || !(s->cancel = PQgetCancel(s->conn))) {
		log_warning("server %llu: cannot build a cancel request%s", (unsigned long long)s->id,
			    s->conn ? "" : " (its BackendKeyData is not known)");
		return;
	}
	s->cancel_running = true;
	metrics_cancel_sent(s->pool);
	s->cancel_job.fn = cancel_job_fn;
	s->cancel_job.done = cancel_done;
	s->cancel_job.arg = s;
	exec_submit(rt->exec, &s->cancel_job);
}
