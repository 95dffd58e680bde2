/* Owns the console's socket listings (see showconn.h): one row per client or server
 * connection with PgBouncer's columns; SOCKETS and ACTIVE_SOCKETS add its buffer
 * columns and name the list each is on (cl_active, sv_idle, ...). A client on its pool's
 * active list without a server is "idle" in CLIENTS, as PgBouncer shows it. */
#include "showconn.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "client.h"
#include "config.h"
#include "list.h"
#include "pin.h"
#include "pool.h"
#include "prepared.h"
#include "runtime.h"
#include "server.h"
#include "showrow.h"

static struct runtime *rt;

void showconn_init(struct runtime *r) { rt = r; }

#define NBASE 21 /* CLIENTS and SERVERS; SOCKETS adds the seven buffer columns */

#define BASE_COLS                                                                                \
	{"type", OID_TEXT, -1}, {"user", OID_TEXT, -1}, {"database", OID_TEXT, -1},               \
	    {"replication", OID_TEXT, -1}, {"state", OID_TEXT, -1}, {"addr", OID_TEXT, -1},        \
	    {"port", OID_INT4, 4}, {"local_addr", OID_TEXT, -1}, {"local_port", OID_INT4, 4},      \
	    {"connect_time", OID_TEXT, -1}, {"request_time", OID_TEXT, -1}, {"wait", OID_INT4, 4}, \
	    {"wait_us", OID_INT4, 4}, {"close_needed", OID_INT4, 4}, {"ptr", OID_TEXT, -1},        \
	    {"link", OID_TEXT, -1}, {"remote_pid", OID_INT4, 4}, {"tls", OID_TEXT, -1},            \
	    {"application_name", OID_TEXT, -1}, {"prepared_statements", OID_INT4, 4},             \
	    {"id", OID_INT4, 4}
/* pgcoro's, after PgBouncer's: why the client keeps its server across transactions (pin.h),
 * "" if it does not */
#define PIN_COL {"pinned", OID_TEXT, -1}

static const struct proto_column conn_cols[] = {BASE_COLS, PIN_COL};
static const struct proto_column sock_cols[] = {
    BASE_COLS,
    {"recv_pos", OID_INT4, 4},
    {"pkt_pos", OID_INT4, 4},
    {"pkt_remain", OID_INT4, 4},
    {"send_pos", OID_INT4, 4},
    {"send_remain", OID_INT4, 4},
    {"pkt_avail", OID_INT4, 4},
    {"send_avail", OID_INT4, 4},
    PIN_COL};

static bool with_buffers; /* the result being built is SOCKETS or ACTIVE_SOCKETS */
static bool only_busy;    /* ACTIVE_SOCKETS: rows of connections with bytes buffered */

static void header(bool buffers, bool busy)
{
	with_buffers = buffers;
	only_busy = busy;
	if (buffers)
		showrow_begin(sock_cols, (int)(sizeof(sock_cols) / sizeof(sock_cols[0])));
	else
		showrow_begin(conn_cols, (int)(sizeof(conn_cols) / sizeof(conn_cols[0])));
}

/* Wall-clock text of the monotonic instant AT (rt_now() seconds) into cell I. */
static void cell_time(int i, double at, double now)
{
	time_t t = time(NULL) - (time_t)(now - at);
	struct tm tm;
	char text[64];
	gmtime_r(&t, &tm);
	strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S UTC", &tm);
	showrow_copy(i, text);
}

/* The local address of socket FD into cells I (address) and I + 1 (port). */
static void cell_local(int i, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char text[INET6_ADDRSTRLEN] = "";
	showrow_str(i, NULL);
	showrow_str(i + 1, NULL);
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
		showrow_int(i + 1, ntohs(a->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
		showrow_int(i + 1, ntohs(a->sin6_port));
	} else {
		strcpy(text, "unix");
		showrow_int(i + 1, rt->cfg->listen_port);
	}
	showrow_copy(i, text);
}

/* Cells close_needed .. pinned (PINS: pin.h reasons), the buffer cells of ST when listed,
 * then the row. */
static void row_end(int close_needed, const void *self, const void *link, int remote_pid,
		    const char *app, int prepared, uint64_t id, uint32_t pins,
		    const struct stream *st)
{
	showrow_int(13, close_needed);
	showrow_fmt(14, "%p", self);
	if (link)
		showrow_fmt(15, "%p", link);
	else
		showrow_str(15, "");
	showrow_int(16, remote_pid);
	showrow_str(17, "");
	showrow_str(18, app);
	showrow_int(19, prepared);
	showrow_uint(20, id);
	int at = NBASE;
	if (with_buffers) {
		for (int i = 0; i < 5; i++)
			showrow_int(at++, 0);
		showrow_int(at++, st ? (int64_t)stream_input_len(st) : 0);
		showrow_int(at++, st ? (int64_t)stream_output_len(st) : 0);
	}
	char why[96];
	showrow_copy(at, pin_reasons(pins, why, sizeof(why)));
	showrow_end();
}

static bool busy(const struct stream *st)
{
	return stream_input_len(st) > 0 || stream_output_len(st) > 0;
}

static const char *client_app_name(const client_t *c)
{
	for (int i = 0; i < c->nparams; i++)
		if (strcmp(c->params[i].name, "application_name") == 0)
			return c->params[i].value;
	return "";
}

static void client_row(const client_t *c, const char *state, double now)
{
	if (only_busy && !busy(&c->st))
		return;
	char addr[INET6_ADDRSTRLEN];
	showrow_str(0, "C");
	showrow_str(1, c->user ? c->user : "(nouser)");
	showrow_str(2, c->database ? c->database : "(nodb)");
	showrow_str(3, client_replication_name(c->replication));
	showrow_str(4, state);
	if (c->peer_family == AF_INET || c->peer_family == AF_INET6) {
		inet_ntop(c->peer_family, c->peer_ip, addr, sizeof(addr));
		showrow_copy(5, addr);
		showrow_int(6, c->peer_port);
	} else {
		showrow_str(5, "unix");
		showrow_int(6, rt->cfg->listen_port);
	}
	cell_local(7, c->st.fd);
	cell_time(9, c->born, now);
	cell_time(10, c->born, now);
	double w = c->state == CL_WAITING ? now - c->since : 0;
	showrow_int(11, (int64_t)w);
	showrow_int(12, (int64_t)((w - (double)(int64_t)w) * 1e6));
	row_end(0, c, c->server, 0, client_app_name(c), (int)prep_client_count(c), c->id, c->pins,
		&c->st);
}

/* Rows of the clients on H: STATE, or, when IDLE_STATE is set, that for those without a
 * server. */
static void client_rows(const struct list_head *h, const char *state, const char *idle_state,
			double now)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, h)
	{
		const client_t *c = list_entry(pos, client_t, node);
		client_row(c, idle_state && !c->server ? idle_state : state, now);
	}
}

void showconn_clients(void)
{
	double now = rt_now();
	header(false, false);
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		client_rows(&p->clients, "active", "idle", now);
		client_rows(&p->waiting, "waiting", NULL, now);
	}
	client_rows(client_console_clients(), "active", "idle", now); /* the admin pool's */
}

static void server_row(const server_t *s, const char *state, double now)
{
	const pool_t *p = s->pool;
	bool open = s->state != SV_CONNECTING && stream_is_open(&s->st);
	if (only_busy && !(open && busy(&s->st)))
		return;
	showrow_str(0, "S");
	showrow_str(1, p->user);
	showrow_str(2, p->dbname);
	showrow_str(3, client_replication_name(s->replication));
	showrow_str(4, state);
	char host[256];
	int port = server_peer(s, host, sizeof(host));
	showrow_str(5, host[0] ? host : NULL);
	showrow_int(6, port);
	cell_local(7, open ? s->st.fd : -1);
	cell_time(9, s->connected_at, now);
	cell_time(10, s->idle_since > 0 ? s->idle_since : s->connected_at, now);
	showrow_int(11, 0);
	showrow_int(12, 0);
	row_end(s->conn_gen != p->conn_gen, s, s->client, open ? (int)s->backend_pid : 0,
		s->params[0] ? s->params[0] : "", (int)prep_server_count(s), s->id,
		s->client ? s->client->pins : 0, open ? &s->st : NULL);
}

static void server_rows(const struct list_head *h, const char *state, double now)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, h)
	{
		server_row(list_entry(pos, server_t, node), state, now);
	}
}

void showconn_servers(void)
{
	double now = rt_now();
	header(false, false);
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		server_rows(&p->sv_active, "active", now);
		server_rows(&p->sv_idle, "idle", now);
		server_rows(&p->sv_housekeeping, "used", now);
		server_rows(&p->sv_connecting, "login", now);
	}
}

/* SOCKETS and ACTIVE_SOCKETS: each pool's lists as PgBouncer names them, the console's
 * clients as its admin pool's, then the clients logging in. */
static void sockets(bool busy_only)
{
	double now = rt_now();
	header(true, busy_only);
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		client_rows(&p->clients, "cl_active", NULL, now);
		client_rows(&p->waiting, "cl_waiting", NULL, now);
		server_rows(&p->sv_active, "sv_active", now);
		server_rows(&p->sv_idle, "sv_idle", now);
		server_rows(&p->sv_housekeeping, "sv_used", now);
		server_rows(&p->sv_connecting, "sv_login", now);
	}
	client_rows(client_console_clients(), "cl_active", NULL, now);
	client_rows(client_login_clients(), "cl_login", NULL, now);
}

void showconn_sockets(void) { sockets(false); }
void showconn_active_sockets(void) { sockets(true); }
