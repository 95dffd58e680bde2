/* Owns the admin console (see console.h): authorization of console users, parsing of
 * console commands, the SHOW results (PgBouncer's columns and types) and the commands
 * that wait for a condition (PAUSE, WAIT_CLOSE, RELOAD). */
#include "console.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "auth.h"
#include "client.h"
#include "config.h"
#include "list.h"
#include "log.h"
#include "pool.h"
#include "poolctl.h"
#include "proto.h"
#include "reload.h"
#include "runtime.h"
#include "server.h"
#include "shutdown.h"
#include "stats.h"
#include "stream.h"

#define OID_INT4 23
#define OID_INT8 20
#define OID_TEXT 25
#define OID_NUMERIC 1700 /* PgBouncer's type for counters */

/* What a console client waits for before its command completes. */
enum console_wait {
	CW_NONE,
	CW_PAUSE,      /* PAUSE: no server left in the paused pools */
	CW_WAIT_CLOSE, /* WAIT_CLOSE: no server of an older generation left */
	CW_RELOAD,     /* RELOAD: the reload running on the executor ended */
};

/* The console part of a client (client->console). */
struct console_session {
	bool admin;           /* admin_users: every command; else SHOW only */
	enum console_wait wait;
	char *arg;            /* the database the waited command names, or NULL */
	char tag[32];         /* its CommandComplete tag */
	struct list node;     /* in waiters while waiting */
	client_t *owner;
};

static struct runtime *rt;
static struct pbuf out;
static struct list_head waiters;

void console_init(struct runtime *r)
{
	rt = r;
	pbuf_init(&out);
	list_head_init(&waiters);
}

bool console_is_console_db(const char *db)
{
	return strcmp(db, "pgcoro") == 0 || strcmp(db, "pgbouncer") == 0;
}

/* True if NAME is in the comma-separated LIST (blanks around names ignored). */
static bool in_list(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; *p;) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		const char *t = e;
		while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
			t--;
		if ((size_t)(t - p) == n && strncmp(p, name, n) == 0)
			return true;
		p = e;
	}
	return false;
}

/* ---- output ---------------------------------------------------------------------------- */

static void flush_out(client_t *c)
{
	if (!out.failed)
		stream_send(&c->st, out.data, out.len);
	pbuf_reset(&out);
}

static void send_error(client_t *c, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void send_error(client_t *c, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	proto_build_error(&out, "ERROR", sqlstate, msg, NULL, NULL);
	proto_build_ready(&out, 'I');
	flush_out(c);
}

static void complete(client_t *c, const char *tag)
{
	proto_build_command_complete(&out, tag);
	proto_build_ready(&out, 'I');
	flush_out(c);
}

/* Cells of the row being built: values point into cell buffers or at constants. */
#define MAX_COLS 24
static char cells[MAX_COLS][128];
static const char *vals[MAX_COLS];

static void cell_str(int i, const char *s) { vals[i] = s; }
static void cell_i64(int i, int64_t v)
{
	snprintf(cells[i], sizeof(cells[i]), "%" PRId64, v);
	vals[i] = cells[i];
}
static void cell_u64(int i, uint64_t v)
{
	snprintf(cells[i], sizeof(cells[i]), "%" PRIu64, v);
	vals[i] = cells[i];
}

#define NCOLS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- SHOW ------------------------------------------------------------------------------ */


static void show_help(client_t *c)
{
	static const char *const lines[] = {
	    "Console usage",
	    "\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION",
	    "\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS|LISTS|STATE",
	    "\tRELOAD",
	    "\tPAUSE [<db>]",
	    "\tRESUME [<db>]",
	    "\tDISABLE <db>",
	    "\tENABLE <db>",
	    "\tRECONNECT [<db>]",
	    "\tKILL <db>",
	    "\tKILL_CLIENT <id>",
	    "\tWAIT_CLOSE [<db>]",
	    "\tSHUTDOWN",
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		proto_build_notice(&out, "NOTICE", "00000", lines[i]);
	complete(c, "SHOW");
}

static const struct proto_column version_cols[] = {{"version", OID_TEXT, -1}};

static void show_version(client_t *c)
{
	proto_build_row_description(&out, version_cols, NCOLS(version_cols));
	cell_str(0, "pgcoro " PGCORO_VERSION);
	proto_build_data_row(&out, vals, 1);
	complete(c, "SHOW");
}

static const struct proto_column config_cols[] = {
    {"key", OID_TEXT, -1}, {"value", OID_TEXT, -1}, {"default", OID_TEXT, -1},
    {"changeable", OID_TEXT, -1}};

static void show_config(client_t *c)
{
	proto_build_row_description(&out, config_cols, NCOLS(config_cols));
	size_t n;
	const struct cfg_key *keys = cfg_keys(&n);
	for (size_t i = 0; i < n; i++) {
		char value[1024];
		cfg_key_value(rt->cfg, &keys[i], value, sizeof(value));
		cell_str(0, keys[i].key);
		cell_str(1, value);
		cell_str(2, keys[i].def);
		cell_str(3, cfg_key_reloadable(&keys[i]) ? "yes" : "no");
		proto_build_data_row(&out, vals, 4);
	}
	complete(c, "SHOW");
}

/* Sums of the pools of database DB (for per-database rows). */
struct db_sums {
	int pool_count;
	int servers;
	struct stats total, period;
};

static struct db_sums sums_of(const char *db)
{
	struct db_sums s = {0};
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		if (strcmp(p->dbname, db) != 0)
			continue;
		s.pool_count++;
		s.servers += pool_server_count(p);
		stats_add(&s.total, &p->stats);
		stats_add(&s.period, &p->period);
	}
	return s;
}

static const struct proto_column databases_cols[] = {
    {"name", OID_TEXT, -1},         {"host", OID_TEXT, -1},
    {"port", OID_INT4, 4},          {"database", OID_TEXT, -1},
    {"force_user", OID_TEXT, -1},   {"pool_size", OID_INT4, 4},
    {"min_pool_size", OID_INT4, 4}, {"reserve_pool", OID_INT4, 4},
    {"pool_mode", OID_TEXT, -1},    {"max_connections", OID_INT4, 4},
    {"current_connections", OID_INT4, 4}, {"paused", OID_INT4, 4},
    {"disabled", OID_INT4, 4}};

static void show_databases(client_t *c)
{
	const struct config *cfg = rt->cfg;
	proto_build_row_description(&out, databases_cols, NCOLS(databases_cols));
	for (int i = 0; i < cfg->ndbs; i++) {
		const struct cfg_db *db = &cfg->dbs[i];
		const char *host = cfg_db_param(db, "host");
		const char *port = cfg_db_param(db, "port");
		const char *dbname = cfg_db_param(db, "dbname");
		struct db_sums s = sums_of(db->name);
		cell_str(0, db->name);
		cell_str(1, host);
		cell_i64(2, port ? atoi(port) : 5432);
		cell_str(3, dbname ? dbname : db->name);
		cell_str(4, cfg_db_param(db, "user"));
		cell_i64(5, db->pool_size >= 0 ? db->pool_size : cfg->default_pool_size);
		cell_i64(6, db->min_pool_size >= 0 ? db->min_pool_size : cfg->min_pool_size);
		cell_i64(7, db->reserve_pool_size >= 0 ? db->reserve_pool_size
						       : cfg->reserve_pool_size);
		cell_str(8, db->pool_mode != POOL_MODE_UNSET ? cfg_pool_mode_name(db->pool_mode)
							     : NULL);
		cell_i64(9, db->max_db_connections >= 0 ? db->max_db_connections
							: cfg->max_db_connections);
		cell_i64(10, s.servers);
		cell_i64(11, poolctl_paused(db->name));
		cell_i64(12, poolctl_disabled(db->name));
		proto_build_data_row(&out, vals, NCOLS(databases_cols));
	}
	complete(c, "SHOW");
}

static double waited(const struct list_head *waiting, double now)
{
	if (list_empty(waiting))
		return 0;
	const client_t *c = list_entry(list_first(waiting), client_t, node);
	return now - c->since;
}

static const struct proto_column pools_cols[] = {
    {"database", OID_TEXT, -1},        {"user", OID_TEXT, -1},
    {"cl_active", OID_INT4, 4},        {"cl_waiting", OID_INT4, 4},
    {"cl_active_cancel_req", OID_INT4, 4}, {"cl_waiting_cancel_req", OID_INT4, 4},
    {"sv_active", OID_INT4, 4},        {"sv_active_cancel", OID_INT4, 4},
    {"sv_being_canceled", OID_INT4, 4}, {"sv_idle", OID_INT4, 4},
    {"sv_used", OID_INT4, 4},          {"sv_tested", OID_INT4, 4},
    {"sv_login", OID_INT4, 4},         {"maxwait", OID_INT4, 4},
    {"maxwait_us", OID_INT4, 4},       {"pool_mode", OID_TEXT, -1}};

static void show_pools(client_t *c)
{
	double now = rt_now();
	proto_build_row_description(&out, pools_cols, NCOLS(pools_cols));
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		double w = waited(&p->waiting, now);
		cell_str(0, p->dbname);
		cell_str(1, p->user);
		cell_i64(2, p->active.count + p->idle.count);
		cell_i64(3, p->waiting.count);
		cell_i64(4, 0);
		cell_i64(5, 0);
		cell_i64(6, p->sv_active.count);
		cell_i64(7, 0);
		cell_i64(8, 0);
		cell_i64(9, p->sv_idle.count);
		cell_i64(10, 0);
		cell_i64(11, p->sv_housekeeping.count);
		cell_i64(12, p->sv_connecting.count);
		cell_i64(13, (int64_t)w);
		cell_i64(14, (int64_t)((w - (double)(int64_t)w) * 1e6));
		cell_str(15, cfg_pool_mode_name(p->pool_mode));
		proto_build_data_row(&out, vals, NCOLS(pools_cols));
	}
	complete(c, "SHOW");
}

static const struct proto_column conn_cols[] = {
    {"type", OID_TEXT, -1},         {"user", OID_TEXT, -1},
    {"database", OID_TEXT, -1},     {"state", OID_TEXT, -1},
    {"addr", OID_TEXT, -1},         {"port", OID_INT4, 4},
    {"local_addr", OID_TEXT, -1},   {"local_port", OID_INT4, 4},
    {"connect_time", OID_TEXT, -1}, {"request_time", OID_TEXT, -1},
    {"wait", OID_INT4, 4},          {"wait_us", OID_INT4, 4},
    {"close_needed", OID_INT4, 4},  {"ptr", OID_TEXT, -1},
    {"link", OID_TEXT, -1},         {"remote_pid", OID_INT4, 4},
    {"tls", OID_TEXT, -1},          {"application_name", OID_TEXT, -1},
    {"id", OID_INT8, 8}};

/* Wall-clock text of the monotonic instant AT (rt_now() seconds) into cell I. */
static void cell_time(int i, double at, double now)
{
	time_t t = time(NULL) - (time_t)(now - at);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(cells[i], sizeof(cells[i]), "%Y-%m-%d %H:%M:%S UTC", &tm);
	vals[i] = cells[i];
}

/* The local address of socket FD into cells I (address) and I + 1 (port). */
static void cell_local(int i, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	vals[i] = vals[i + 1] = NULL;
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, cells[i], sizeof(cells[i]));
		cell_i64(i + 1, ntohs(a->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, cells[i], sizeof(cells[i]));
		cell_i64(i + 1, ntohs(a->sin6_port));
	} else {
		snprintf(cells[i], sizeof(cells[i]), "unix");
		cell_i64(i + 1, rt->cfg->listen_port);
	}
	vals[i] = cells[i];
}

/* Cells close_needed .. id of a SHOW CLIENTS / SERVERS row, then the row. */
static void conn_row_end(int close_needed, const void *self, const void *link, int remote_pid,
			 const char *app, uint64_t id)
{
	cell_i64(12, close_needed);
	snprintf(cells[13], sizeof(cells[13]), "%p", self);
	vals[13] = cells[13];
	if (link) {
		snprintf(cells[14], sizeof(cells[14]), "%p", link);
		vals[14] = cells[14];
	} else {
		cell_str(14, "");
	}
	cell_i64(15, remote_pid);
	cell_str(16, "");
	cell_str(17, app);
	cell_u64(18, id);
	proto_build_data_row(&out, vals, NCOLS(conn_cols));
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
	cell_str(0, "C");
	cell_str(1, c->user);
	cell_str(2, c->database);
	cell_str(3, state);
	if (c->peer_family == AF_INET || c->peer_family == AF_INET6) {
		inet_ntop(c->peer_family, c->peer_ip, cells[4], sizeof(cells[4]));
		vals[4] = cells[4];
		cell_i64(5, c->peer_port);
	} else {
		cell_str(4, "unix");
		cell_i64(5, rt->cfg->listen_port);
	}
	cell_local(6, c->st.fd);
	cell_time(8, c->born, now);
	cell_time(9, c->born, now);
	double w = c->state == CL_WAITING ? now - c->since : 0;
	cell_i64(10, (int64_t)w);
	cell_i64(11, (int64_t)((w - (double)(int64_t)w) * 1e6));
	conn_row_end(0, c, c->server, 0, client_app_name(c), c->id);
}

static void client_rows(const struct list_head *h, const char *state, double now)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, h)
	{
		client_row(list_entry(pos, client_t, node), state, now);
	}
}

static void show_clients(client_t *c)
{
	double now = rt_now();
	proto_build_row_description(&out, conn_cols, NCOLS(conn_cols));
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		client_rows(&p->active, "active", now);
		client_rows(&p->idle, "active", now);
		client_rows(&p->waiting, "waiting", now);
	}
	complete(c, "SHOW");
}

static void server_row(const server_t *s, const char *state, double now)
{
	const pool_t *p = s->pool;
	cell_str(0, "S");
	cell_str(1, p->user);
	cell_str(2, p->dbname);
	cell_str(3, state);
	const char *host = s->conn ? PQhost(s->conn) : NULL;
	const char *port = s->conn ? PQport(s->conn) : NULL;
	cell_str(4, host);
	cell_i64(5, port && *port ? atoi(port) : 5432);
	cell_local(6, s->conn ? PQsocket(s->conn) : -1);
	cell_time(8, s->connected_at > 0 ? s->connected_at : now, now);
	cell_time(9, s->idle_since > 0 ? s->idle_since : now, now);
	cell_i64(10, 0);
	cell_i64(11, 0);
	conn_row_end(s->conn_gen != p->conn_gen, s, s->client,
		     s->conn && s->state != SV_CONNECTING ? PQbackendPID(s->conn) : 0,
		     s->params[0] ? s->params[0] : "", s->id);
}

static void server_rows(const struct list_head *h, const char *state, double now)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, h)
	{
		server_row(list_entry(pos, server_t, node), state, now);
	}
}

static void show_servers(client_t *c)
{
	double now = rt_now();
	proto_build_row_description(&out, conn_cols, NCOLS(conn_cols));
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		server_rows(&p->sv_active, "active", now);
		server_rows(&p->sv_idle, "idle", now);
		server_rows(&p->sv_housekeeping, "used", now);
		server_rows(&p->sv_connecting, "login", now);
	}
	complete(c, "SHOW");
}

static const struct proto_column users_cols[] = {{"name", OID_TEXT, -1},
						 {"pool_mode", OID_TEXT, -1}};

static void show_users(client_t *c)
{
	const struct config *cfg = rt->cfg;
	proto_build_row_description(&out, users_cols, NCOLS(users_cols));
	for (int i = 0; i < cfg->nusers; i++) {
		cell_str(0, cfg->users[i].name);
		cell_str(1, cfg->users[i].pool_mode != POOL_MODE_UNSET
				? cfg_pool_mode_name(cfg->users[i].pool_mode)
				: NULL);
		proto_build_data_row(&out, vals, 2);
	}
	complete(c, "SHOW");
}

/* The databases that have pools, each once, in pool order: calls FN(db) for each. */
static void for_each_pool_db(void (*fn)(const char *db))
{
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		bool seen = false;
		for (pool_t *q = pool_next(NULL); q != p; q = pool_next(q))
			if (strcmp(q->dbname, p->dbname) == 0) {
				seen = true;
				break;
			}
		if (!seen)
			fn(p->dbname);
	}
}

static uint64_t div0(uint64_t n, uint64_t d) { return d ? n / d : 0; }

static const struct proto_column stats_cols[] = {
    {"database", OID_TEXT, -1},         {"total_xact_count", OID_NUMERIC, -1},
    {"total_query_count", OID_NUMERIC, -1}, {"total_received", OID_NUMERIC, -1},
    {"total_sent", OID_NUMERIC, -1},        {"total_xact_time", OID_NUMERIC, -1},
    {"total_query_time", OID_NUMERIC, -1},  {"total_wait_time", OID_NUMERIC, -1},
    {"avg_xact_count", OID_NUMERIC, -1},    {"avg_query_count", OID_NUMERIC, -1},
    {"avg_recv", OID_NUMERIC, -1},          {"avg_sent", OID_NUMERIC, -1},
    {"avg_xact_time", OID_NUMERIC, -1},     {"avg_query_time", OID_NUMERIC, -1},
    {"avg_wait_time", OID_NUMERIC, -1},     {"total_requests", OID_NUMERIC, -1},
    {"avg_req", OID_NUMERIC, -1}};

static void stats_row(const char *db)
{
	struct db_sums s = sums_of(db);
	const struct stats *t = &s.total, *d = &s.period;
	double secs = stats_period_seconds();
	uint64_t per_s = secs > 0 ? (uint64_t)secs : 0;
	cell_str(0, db);
	cell_u64(1, t->xact_count);
	cell_u64(2, t->query_count);
	cell_u64(3, t->bytes_received);
	cell_u64(4, t->bytes_sent);
	cell_u64(5, t->xact_time_us);
	cell_u64(6, t->query_time_us);
	cell_u64(7, t->wait_time_us);
	cell_u64(8, div0(d->xact_count, per_s));
	cell_u64(9, div0(d->query_count, per_s));
	cell_u64(10, div0(d->bytes_received, per_s));
	cell_u64(11, div0(d->bytes_sent, per_s));
	cell_u64(12, div0(d->xact_time_us, d->xact_count));
	cell_u64(13, div0(d->query_time_us, d->query_count));
	cell_u64(14, div0(d->wait_time_us, d->assignments));
	cell_u64(15, t->query_count);
	cell_u64(16, div0(d->query_count, per_s));
	proto_build_data_row(&out, vals, NCOLS(stats_cols));
}

static void show_stats(client_t *c)
{
	proto_build_row_description(&out, stats_cols, NCOLS(stats_cols));
	for_each_pool_db(stats_row);
	complete(c, "SHOW");
}

static const struct proto_column stats_part_cols[] = {
    {"database", OID_TEXT, -1},      {"xact_count", OID_NUMERIC, -1},
    {"query_count", OID_NUMERIC, -1},    {"bytes_received", OID_NUMERIC, -1},
    {"bytes_sent", OID_NUMERIC, -1},     {"xact_time", OID_NUMERIC, -1},
    {"query_time", OID_NUMERIC, -1},     {"wait_time", OID_NUMERIC, -1}};

static void totals_row(const char *db)
{
	struct db_sums s = sums_of(db);
	const struct stats *t = &s.total;
	cell_str(0, db);
	cell_u64(1, t->xact_count);
	cell_u64(2, t->query_count);
	cell_u64(3, t->bytes_received);
	cell_u64(4, t->bytes_sent);
	cell_u64(5, t->xact_time_us);
	cell_u64(6, t->query_time_us);
	cell_u64(7, t->wait_time_us);
	proto_build_data_row(&out, vals, NCOLS(stats_part_cols));
}

static void averages_row(const char *db)
{
	struct db_sums s = sums_of(db);
	const struct stats *d = &s.period;
	double secs = stats_period_seconds();
	uint64_t per_s = secs > 0 ? (uint64_t)secs : 0;
	cell_str(0, db);
	cell_u64(1, div0(d->xact_count, per_s));
	cell_u64(2, div0(d->query_count, per_s));
	cell_u64(3, div0(d->bytes_received, per_s));
	cell_u64(4, div0(d->bytes_sent, per_s));
	cell_u64(5, div0(d->xact_time_us, d->xact_count));
	cell_u64(6, div0(d->query_time_us, d->query_count));
	cell_u64(7, div0(d->wait_time_us, d->assignments));
	proto_build_data_row(&out, vals, NCOLS(stats_part_cols));
}

static void show_stats_totals(client_t *c)
{
	proto_build_row_description(&out, stats_part_cols, NCOLS(stats_part_cols));
	for_each_pool_db(totals_row);
	complete(c, "SHOW");
}

static void show_stats_averages(client_t *c)
{
	proto_build_row_description(&out, stats_part_cols, NCOLS(stats_part_cols));
	for_each_pool_db(averages_row);
	complete(c, "SHOW");
}

static const struct proto_column kv_cols[] = {{"name", OID_TEXT, -1}, {"value", OID_NUMERIC, -1}};

static void kv_row(const char *name, uint64_t v)
{
	cell_str(0, name);
	cell_u64(1, v);
	proto_build_data_row(&out, vals, 2);
}

static void show_totals(client_t *c)
{
	struct stats t = {0}, d = {0};
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		stats_add(&t, &p->stats);
		stats_add(&d, &p->period);
	}
	double secs = stats_period_seconds();
	uint64_t per_s = secs > 0 ? (uint64_t)secs : 0;
	proto_build_row_description(&out, kv_cols, 2);
	kv_row("total_xact_count", t.xact_count);
	kv_row("total_query_count", t.query_count);
	kv_row("total_received", t.bytes_received);
	kv_row("total_sent", t.bytes_sent);
	kv_row("total_xact_time", t.xact_time_us);
	kv_row("total_query_time", t.query_time_us);
	kv_row("total_wait_time", t.wait_time_us);
	kv_row("avg_xact_count", div0(d.xact_count, per_s));
	kv_row("avg_query_count", div0(d.query_count, per_s));
	kv_row("avg_recv", div0(d.bytes_received, per_s));
	kv_row("avg_sent", div0(d.bytes_sent, per_s));
	kv_row("avg_xact_time", div0(d.xact_time_us, d.xact_count));
	kv_row("avg_query_time", div0(d.query_time_us, d.query_count));
	kv_row("avg_wait_time", div0(d.wait_time_us, d.assignments));
	complete(c, "SHOW");
}

static const struct proto_column lists_cols[] = {{"list", OID_TEXT, -1}, {"items", OID_INT4, 4}};

static void show_lists(client_t *c)
{
	int pools = 0, used_clients = 0, used_servers = 0, login = 0;
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		pools++;
		used_clients += p->active.count + p->idle.count + p->waiting.count;
		used_servers += pool_server_count(p);
		login += p->sv_connecting.count;
	}
	const struct {
		const char *name;
		int n;
	} rows[] = {{"databases", rt->cfg->ndbs},
		    {"users", rt->auth ? auth_count(rt->auth) : 0},
		    {"pools", pools},
		    {"free_clients", 0},
		    {"used_clients", used_clients},
		    {"login_clients", client_count() - used_clients},
		    {"free_servers", 0},
		    {"used_servers", used_servers},
		    {"dns_names", 0},
		    {"dns_zones", 0},
		    {"dns_queries", 0},
		    {"dns_pending", 0}};
	(void)login;
	proto_build_row_description(&out, lists_cols, 2);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		cell_str(0, rows[i].name);
		cell_i64(1, rows[i].n);
		proto_build_data_row(&out, vals, 2);
	}
	complete(c, "SHOW");
}

static const struct proto_column state_cols[] = {{"key", OID_TEXT, -1}, {"value", OID_TEXT, -1}};

static void show_state(client_t *c)
{
	proto_build_row_description(&out, state_cols, 2);
	cell_str(0, "active");
	cell_str(1, poolctl_paused("") ? "no" : "yes");
	proto_build_data_row(&out, vals, 2);
	cell_str(0, "paused");
	cell_str(1, poolctl_paused("") ? "yes" : "no");
	proto_build_data_row(&out, vals, 2);
	cell_str(0, "suspended");
	cell_str(1, "no");
	proto_build_data_row(&out, vals, 2);
	complete(c, "SHOW");
}

static const struct {
	const char *name;
	void (*fn)(client_t *c);
} shows[] = {
    {"help", show_help},       {"version", show_version},
    {"config", show_config},   {"databases", show_databases},
    {"pools", show_pools},     {"clients", show_clients},
    {"servers", show_servers}, {"users", show_users},
    {"stats", show_stats},     {"stats_totals", show_stats_totals},
    {"stats_averages", show_stats_averages}, {"totals", show_totals},
    {"lists", show_lists},     {"state", show_state},
};

/* ---- commands -------------------------------------------------------------------------- */

/* Splits the query into at most MAX blank-separated words (trailing ';' dropped), in
 * place. Returns the count, or -1 if there are more. */
static int split_words(char *q, char **w, int max)
{
	size_t len = strlen(q);
	while (len > 0 && (isspace((unsigned char)q[len - 1]) || q[len - 1] == ';'))
		q[--len] = '\0';
	int n = 0;
	for (char *p = q; *p;) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		if (n == max)
			return -1;
		w[n++] = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		if (*p)
			*p++ = '\0';
	}
	return n;
}

static struct console_session *session(client_t *c) { return c->console; }

/* C's command waits for KIND (DB its argument, TAG its completion tag). */
static void wait_for(client_t *c, enum console_wait kind, const char *db, const char *tag)
{
	struct console_session *cs = session(c);
	free(cs->arg);
	cs->arg = db ? strdup(db) : NULL;
	if (db && !cs->arg) {
		send_error(c, "53200", "out of memory");
		return;
	}
	cs->wait = kind;
	snprintf(cs->tag, sizeof(cs->tag), "%s", tag);
	list_append(&waiters, &cs->node);
	stream_set_read(&c->st, false); /* the next command waits for this one */
	console_poll();
}

static bool db_known(client_t *c, const char *db)
{
	if (cfg_find_db(rt->cfg, db))
		return true;
	send_error(c, "08P01", "no such database: %s", db);
	return false;
}

static void run(client_t *c, char *query)
{
	struct console_session *cs = session(c);
	char copy[4096];
	snprintf(copy, sizeof(copy), "%s", query);
	char *w[4];
	int n = split_words(copy, w, 4);
	if (n == 0) {
		proto_build_empty_query(&out);
		proto_build_ready(&out, 'I');
		flush_out(c);
		return;
	}
	if (n < 0) {
		send_error(c, "08P01", "invalid command: %s", query);
		return;
	}
	if (strcasecmp(w[0], "show") == 0) {
		if (n != 2) {
			send_error(c, "08P01", "SHOW needs one argument: SHOW HELP lists them");
			return;
		}
		for (size_t i = 0; i < sizeof(shows) / sizeof(shows[0]); i++) {
			if (strcasecmp(w[1], shows[i].name) == 0) {
				shows[i].fn(c);
				return;
			}
		}
		send_error(c, "08P01", "unknown SHOW: %s (SHOW HELP lists them)", w[1]);
		return;
	}
	if (!cs->admin) {
		send_error(c, "08P01", "admin access needed");
		return;
	}
	const char *db = n >= 2 ? w[1] : NULL;
	if (n > 2) {
		send_error(c, "08P01", "invalid command: %s", query);
	} else if (strcasecmp(w[0], "pause") == 0) {
		if (db && !db_known(c, db))
			return;
		if (!poolctl_pause(db))
			send_error(c, "53200", "out of memory");
		else
			wait_for(c, CW_PAUSE, db, "PAUSE");
	} else if (strcasecmp(w[0], "resume") == 0) {
		poolctl_resume(db);
		complete(c, "RESUME");
	} else if (strcasecmp(w[0], "disable") == 0 || strcasecmp(w[0], "enable") == 0 ||
		   strcasecmp(w[0], "kill") == 0) {
		if (!db) {
			send_error(c, "08P01", "%s needs a database name", w[0]);
			return;
		}
		if (!db_known(c, db))
			return;
		bool ok = true;
		if (strcasecmp(w[0], "enable") == 0)
			poolctl_enable(db);
		else if (strcasecmp(w[0], "disable") == 0)
			ok = poolctl_disable(db);
		else
			ok = poolctl_kill(db);
		if (!ok)
			send_error(c, "53200", "out of memory");
		else
			complete(c, strcasecmp(w[0], "kill") == 0	 ? "KILL"
				    : strcasecmp(w[0], "enable") == 0 ? "ENABLE"
								       : "DISABLE");
	} else if (strcasecmp(w[0], "reconnect") == 0) {
		if (db && !db_known(c, db))
			return;
		poolctl_reconnect(db);
		complete(c, "RECONNECT");
	} else if (strcasecmp(w[0], "wait_close") == 0) {
		if (db && !db_known(c, db))
			return;
		wait_for(c, CW_WAIT_CLOSE, db, "WAIT_CLOSE");
	} else if (strcasecmp(w[0], "kill_client") == 0) {
		char *end;
		unsigned long long id = db ? strtoull(db, &end, 10) : 0;
		client_t *victim = db && *end == '\0' ? client_find(id) : NULL;
		if (!victim) {
			send_error(c, "42704", "no such client: %s", db ? db : "(none given)");
			return;
		}
		client_disconnect(victim, "57P01",
				  "terminating connection: KILL_CLIENT by an administrator");
		complete(c, "KILL_CLIENT");
	} else if (strcasecmp(w[0], "reload") == 0 && n == 1) {
		reload_start();
		wait_for(c, CW_RELOAD, NULL, "RELOAD");
	} else if (strcasecmp(w[0], "shutdown") == 0 && n == 1) {
		complete(c, "SHUTDOWN");
		stream_flush(&c->st);
		log_info("SHUTDOWN by %s", c->user);
		shutdown_begin(SHUTDOWN_TXN);
	} else {
		send_error(c, "08P01", "invalid command '%s', use SHOW HELP;", query);
	}
}

/* ---- sessions -------------------------------------------------------------------------- */

void console_login(client_t *c)
{
	const struct config *cfg = rt->cfg;
	bool admin = in_list(cfg->admin_users, c->user);
	if (!admin && !in_list(cfg->stats_users, c->user)) {
		client_disconnect(c, "28000", "not allowed: user \"%s\" is not in admin_users or "
				  "stats_users", c->user);
		return;
	}
	c->console = calloc(1, sizeof(*c->console));
	if (!c->console) {
		client_disconnect(c, "53200", "out of memory");
		return;
	}
	c->console->admin = admin;
	c->console->owner = c;
	list_init(&c->console->node);
	char *params[SERVER_NPARAMS] = {0};
	params[server_param_index("server_version")] = "15.0 (pgcoro " PGCORO_VERSION ")";
	params[server_param_index("client_encoding")] = "UTF8";
	params[server_param_index("server_encoding")] = "UTF8";
	params[server_param_index("DateStyle")] = "ISO";
	params[server_param_index("TimeZone")] = "UTC";
	params[server_param_index("standard_conforming_strings")] = "on";
	params[server_param_index("integer_datetimes")] = "on";
	params[server_param_index("application_name")] = "pgcoro";
	client_set_state(c, CL_CONSOLE);
	client_send_welcome(c, params);
	if (rt->cfg->log_connections)
		log_info("client %llu %s (%s@%s): console login (%s)", (unsigned long long)c->id,
			 client_peer(c), c->user, c->database, admin ? "admin" : "stats");
}

void console_on_input(client_t *c)
{
	while (c->state == CL_CONSOLE && session(c)->wait == CW_NONE) {
		size_t n;
		const uint8_t *p = stream_input(&c->st, &n);
		uint8_t type = 0;
		uint32_t len = 0;
		switch (proto_frame(p, n, 1024 * 1024, &type, &len)) {
		case PROTO_NEED_MORE:
			return;
		case PROTO_BAD:
			client_disconnect(c, "08P01", "invalid message length %u from client", len);
			return;
		case PROTO_OK:
			break;
		}
		if (type == 'X') {
			client_disconnect(c, NULL, "client sent Terminate");
			return;
		}
		if (type != 'Q') {
			client_disconnect(c, "08P01",
					  "the admin console supports only the simple query protocol");
			return;
		}
		char q[4096];
		size_t qlen = len - 4 < sizeof(q) - 1 ? len - 4 : sizeof(q) - 1;
		memcpy(q, p + PROTO_HDR, qlen);
		q[qlen] = '\0';
		stream_consume(&c->st, (size_t)len + 1);
		if (len - 4 >= sizeof(q)) {
			send_error(c, "54000", "console command too long");
			continue;
		}
		run(c, q);
	}
}

/* C's wait is over: its command completes and its next input is read. */
static void wait_done(client_t *c, bool ok)
{
	struct console_session *cs = session(c);
	list_del(&waiters, &cs->node);
	cs->wait = CW_NONE;
	if (ok)
		complete(c, cs->tag);
	else
		send_error(c, "F0000", "%s failed: the running configuration stays (see the log)",
			   cs->tag);
	stream_set_read(&c->st, true);
	console_on_input(c);
}

void console_poll(void)
{
	if (list_empty(&waiters))
		return;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &waiters)
	{
		struct console_session *cs = list_entry(pos, struct console_session, node);
		client_t *c = cs->owner;
		if ((cs->wait == CW_PAUSE && poolctl_pause_done(cs->arg)) ||
		    (cs->wait == CW_WAIT_CLOSE && poolctl_close_done(cs->arg)))
			wait_done(c, true);
	}
}

void console_reload_done(bool ok)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &waiters)
	{
		struct console_session *cs = list_entry(pos, struct console_session, node);
		if (cs->wait == CW_RELOAD)
			wait_done(cs->owner, ok);
	}
}

void console_forget(client_t *c)
{
	struct console_session *cs = c->console;
	if (!cs)
		return;
	if (cs->wait != CW_NONE)
		list_del(&waiters, &cs->node);
	free(cs->arg);
	free(cs);
	c->console = NULL;
}
