/* Owns the admin console's SHOW results: each is built from the pools' lists and
 * counters with PgBouncer's column names, types and order (extra columns only after
 * PgBouncer's), ending with CommandComplete "SHOW". */
#include "show.h"

#include <arpa/inet.h>
#include <inttypes.h>
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
#include "pool.h"
#include "poolctl.h"
#include "runtime.h"
#include "server.h"
#include "stats.h"

#define OID_INT4 23
#define OID_INT8 20
#define OID_TEXT 25
#define OID_NUMERIC 1700 /* PgBouncer's type for counters */

static struct runtime *rt;
static struct pbuf *out; /* where show_build writes */

void show_init(struct runtime *r) { rt = r; }

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


/* One NoticeResponse "Console usage" with the commands in its detail, as PgBouncer's. */
static void show_help(void)
{
	proto_build_notice(out, "NOTICE", "00000", "Console usage",
			   "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION"
			   "\n\tSHOW LISTS|STATE"
			   "\n\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS"
			   "\n\tSET key = arg"
			   "\n\tRELOAD"
			   "\n\tPAUSE [<db>]"
			   "\n\tRESUME [<db>]"
			   "\n\tDISABLE <db>"
			   "\n\tENABLE <db>"
			   "\n\tRECONNECT [<db>]"
			   "\n\tKILL <db>"
			   "\n\tKILL_CLIENT <id>"
			   "\n\tSHUTDOWN"
			   "\n\tWAIT_CLOSE [<db>]");
}

static const struct proto_column version_cols[] = {{"version", OID_TEXT, -1}};

static void show_version(void)
{
	proto_build_row_description(out, version_cols, NCOLS(version_cols));
	cell_str(0, "pgcoro " PGCORO_VERSION);
	proto_build_data_row(out, vals, 1);
}

static const struct proto_column config_cols[] = {
    {"key", OID_TEXT, -1}, {"value", OID_TEXT, -1}, {"default", OID_TEXT, -1},
    {"changeable", OID_TEXT, -1}};

static void show_config(void)
{
	proto_build_row_description(out, config_cols, NCOLS(config_cols));
	size_t n;
	const struct cfg_key *keys = cfg_keys(&n);
	for (size_t i = 0; i < n; i++) {
		char value[1024];
		cfg_key_value(rt->cfg, &keys[i], value, sizeof(value));
		cell_str(0, keys[i].key);
		cell_str(1, value);
		cell_str(2, keys[i].def);
		cell_str(3, cfg_key_reloadable(&keys[i]) ? "yes" : "no");
		proto_build_data_row(out, vals, 4);
	}
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

static void show_databases(void)
{
	const struct config *cfg = rt->cfg;
	proto_build_row_description(out, databases_cols, NCOLS(databases_cols));
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
		proto_build_data_row(out, vals, NCOLS(databases_cols));
	}
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

static void show_pools(void)
{
	double now = rt_now();
	proto_build_row_description(out, pools_cols, NCOLS(pools_cols));
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		double w = waited(&p->waiting, now);
		cell_str(0, p->dbname);
		cell_str(1, p->user);
		cell_i64(2, p->clients.count);
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
		proto_build_data_row(out, vals, NCOLS(pools_cols));
	}
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
	proto_build_data_row(out, vals, NCOLS(conn_cols));
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

static void show_clients(void)
{
	double now = rt_now();
	proto_build_row_description(out, conn_cols, NCOLS(conn_cols));
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		client_rows(&p->clients, "active", now);
		client_rows(&p->waiting, "waiting", now);
	}
	client_rows(client_console_clients(), "active", now); /* PgBouncer's admin pool */
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
	cell_local(6, stream_is_open(&s->st) ? s->st.fd : s->conn ? PQsocket(s->conn) : -1);
	cell_time(8, s->connected_at, now);
	cell_time(9, s->idle_since > 0 ? s->idle_since : s->connected_at, now);
	cell_i64(10, 0);
	cell_i64(11, 0);
	conn_row_end(s->conn_gen != p->conn_gen, s, s->client,
		     s->state != SV_CONNECTING ? (int)s->backend_pid : 0,
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

static void show_servers(void)
{
	double now = rt_now();
	proto_build_row_description(out, conn_cols, NCOLS(conn_cols));
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		server_rows(&p->sv_active, "active", now);
		server_rows(&p->sv_idle, "idle", now);
		server_rows(&p->sv_housekeeping, "used", now);
		server_rows(&p->sv_connecting, "login", now);
	}
}

static const struct proto_column users_cols[] = {{"name", OID_TEXT, -1},
						 {"pool_mode", OID_TEXT, -1}};

static void show_users(void)
{
	const struct config *cfg = rt->cfg;
	proto_build_row_description(out, users_cols, NCOLS(users_cols));
	for (int i = 0; i < cfg->nusers; i++) {
		cell_str(0, cfg->users[i].name);
		cell_str(1, cfg->users[i].pool_mode != POOL_MODE_UNSET
				? cfg_pool_mode_name(cfg->users[i].pool_mode)
				: NULL);
		proto_build_data_row(out, vals, 2);
	}
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

static const struct proto_column stats_cols[] = {
    {"database", OID_TEXT, -1},             {"total_xact_count", OID_NUMERIC, -1},
    {"total_query_count", OID_NUMERIC, -1}, {"total_received", OID_NUMERIC, -1},
    {"total_sent", OID_NUMERIC, -1},        {"total_xact_time", OID_NUMERIC, -1},
    {"total_query_time", OID_NUMERIC, -1},  {"total_wait_time", OID_NUMERIC, -1},
    {"avg_xact_count", OID_NUMERIC, -1},    {"avg_query_count", OID_NUMERIC, -1},
    {"avg_recv", OID_NUMERIC, -1},          {"avg_sent", OID_NUMERIC, -1},
    {"avg_xact_time", OID_NUMERIC, -1},     {"avg_query_time", OID_NUMERIC, -1},
    {"avg_wait_time", OID_NUMERIC, -1},     {"total_requests", OID_NUMERIC, -1},
    {"avg_req", OID_NUMERIC, -1}};

/* Cells I .. I + 6: the seven totals of T, in PgBouncer's column order. */
static void cells_totals(int i, const struct stats *t)
{
	const uint64_t v[] = {t->xact_count,   t->query_count,   t->bytes_received, t->bytes_sent,
			      t->xact_time_us, t->query_time_us, t->wait_time_us};
	for (int k = 0; k < 7; k++)
		cell_u64(i + k, v[k]);
}

/* Cells I .. I + 6: the seven averages of A, in PgBouncer's column order. */
static void cells_averages(int i, const struct stats_avg *a)
{
	const uint64_t v[] = {a->xact_count,   a->query_count,   a->bytes_received, a->bytes_sent,
			      a->xact_time_us, a->query_time_us, a->wait_time_us};
	for (int k = 0; k < 7; k++)
		cell_u64(i + k, v[k]);
}

static void stats_row(const char *db)
{
	struct db_sums s = sums_of(db);
	struct stats_avg a = stats_averages(&s.period, stats_period_seconds());
	cell_str(0, db);
	cells_totals(1, &s.total);
	cells_averages(8, &a);
	cell_u64(15, s.total.query_count); /* total_requests: the pre-1.8 name exporters read */
	cell_u64(16, a.query_count);       /* avg_req */
	proto_build_data_row(out, vals, NCOLS(stats_cols));
}

static void show_stats(void)
{
	proto_build_row_description(out, stats_cols, NCOLS(stats_cols));
	for_each_pool_db(stats_row);
}

static const struct proto_column stats_part_cols[] = {
    {"database", OID_TEXT, -1},          {"xact_count", OID_NUMERIC, -1},
    {"query_count", OID_NUMERIC, -1},    {"bytes_received", OID_NUMERIC, -1},
    {"bytes_sent", OID_NUMERIC, -1},     {"xact_time", OID_NUMERIC, -1},
    {"query_time", OID_NUMERIC, -1},     {"wait_time", OID_NUMERIC, -1}};

static void totals_row(const char *db)
{
	struct db_sums s = sums_of(db);
	cell_str(0, db);
	cells_totals(1, &s.total);
	proto_build_data_row(out, vals, NCOLS(stats_part_cols));
}

static void averages_row(const char *db)
{
	struct db_sums s = sums_of(db);
	struct stats_avg a = stats_averages(&s.period, stats_period_seconds());
	cell_str(0, db);
	cells_averages(1, &a);
	proto_build_data_row(out, vals, NCOLS(stats_part_cols));
}

static void show_stats_totals(void)
{
	proto_build_row_description(out, stats_part_cols, NCOLS(stats_part_cols));
	for_each_pool_db(totals_row);
}

static void show_stats_averages(void)
{
	proto_build_row_description(out, stats_part_cols, NCOLS(stats_part_cols));
	for_each_pool_db(averages_row);
}

static const struct proto_column kv_cols[] = {{"name", OID_TEXT, -1}, {"value", OID_NUMERIC, -1}};

/* PgBouncer's row names (its byte counters are "client"/"server" bytes here). */
static const char *const totals_names[] = {
    "total_xact_count", "total_query_count",  "total_client_bytes", "total_server_bytes",
    "total_xact_time",  "total_query_time",   "total_wait_time",    "avg_xact_count",
    "avg_query_count",  "avg_client_bytes",   "avg_server_bytes",   "avg_xact_time",
    "avg_query_time",   "avg_wait_time"};

static void show_totals(void)
{
	struct stats t = {0}, d = {0};
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		stats_add(&t, &p->stats);
		stats_add(&d, &p->period);
	}
	struct stats_avg a = stats_averages(&d, stats_period_seconds());
	cells_totals(0, &t);
	cells_averages(7, &a);
	const char *values[14];
	memcpy(values, vals, sizeof(values));
	proto_build_row_description(out, kv_cols, 2);
	for (int i = 0; i < 14; i++) {
		vals[0] = totals_names[i];
		vals[1] = values[i];
		proto_build_data_row(out, vals, 2);
	}
}

static const struct proto_column lists_cols[] = {{"list", OID_TEXT, -1}, {"items", OID_INT4, 4}};

static void show_lists(void)
{
	int pools = 0, used_clients = 0, used_servers = 0;
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		pools++;
		used_clients += p->clients.count + p->waiting.count;
		used_servers += pool_server_count(p);
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
	proto_build_row_description(out, lists_cols, 2);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		cell_str(0, rows[i].name);
		cell_i64(1, rows[i].n);
		proto_build_data_row(out, vals, 2);
	}
}

static const struct proto_column state_cols[] = {{"key", OID_TEXT, -1}, {"value", OID_TEXT, -1}};

static void show_state(void)
{
	proto_build_row_description(out, state_cols, 2);
	cell_str(0, "active");
	cell_str(1, poolctl_paused(NULL) ? "no" : "yes");
	proto_build_data_row(out, vals, 2);
	cell_str(0, "paused");
	cell_str(1, poolctl_paused(NULL) ? "yes" : "no");
	proto_build_data_row(out, vals, 2);
	cell_str(0, "suspended");
	cell_str(1, "no");
	proto_build_data_row(out, vals, 2);
}

static const struct {
	const char *name;
	void (*fn)(void);
} shows[] = {
    {"help", show_help},       {"version", show_version},
    {"config", show_config},   {"databases", show_databases},
    {"pools", show_pools},     {"clients", show_clients},
    {"servers", show_servers}, {"users", show_users},
    {"stats", show_stats},     {"stats_totals", show_stats_totals},
    {"stats_averages", show_stats_averages}, {"totals", show_totals},
    {"lists", show_lists},     {"state", show_state},
};

bool show_build(struct pbuf *into, const char *what)
{
	for (size_t i = 0; i < sizeof(shows) / sizeof(shows[0]); i++) {
		if (strcasecmp(what, shows[i].name) == 0) {
			out = into;
			shows[i].fn();
			proto_build_command_complete(out, "SHOW");
			return true;
		}
	}
	return false;
}
