/* Owns the admin console's SHOW results: each is built from the pools' lists and
 * counters with PgBouncer 1.26's column names, types and order (extra columns only after
 * PgBouncer's), ending with CommandComplete "SHOW". The console itself is PgBouncer's
 * admin database and pool "pgbouncer" (user "pgbouncer", statement mode) in every
 * listing; the socket listings are showconn.c, the counters showstats.c. */
#include "show.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "client.h"
#include "config.h"
#include "list.h"
#include "peers.h"
#include "pool.h"
#include "poolctl.h"
#include "runtime.h"
#include "server.h"
#include "showconn.h"
#include "showrow.h"
#include "showstats.h"

static struct runtime *rt;

void show_init(struct runtime *r)
{
	rt = r;
	showconn_init(r);
}

/* ---- HELP, VERSION, CONFIG, STATE ------------------------------------------------------ */

/* One NoticeResponse "Console usage" with the commands in its detail, as PgBouncer's. */
static void show_help(void)
{
	proto_build_notice(showrow_out(), "NOTICE", "00000", "Console usage",
			   "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION"
			   "\n\tSHOW PEERS|PEER_POOLS"
			   "\n\tSHOW FDS|SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE"
			   "\n\tSHOW DNS_HOSTS|DNS_ZONES"
			   "\n\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS"
			   "\n\tSET key = arg"
			   "\n\tRELOAD"
			   "\n\tPAUSE [<db>]"
			   "\n\tRESUME [<db>]"
			   "\n\tDISABLE <db>"
			   "\n\tENABLE <db>"
			   "\n\tRECONNECT [<db>]"
			   "\n\tKILL [<db>]"
			   "\n\tKILL_CLIENT <client_id>"
			   "\n\tSUSPEND"
			   "\n\tSHUTDOWN"
			   "\n\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS"
			   "\n\tWAIT_CLOSE [<db>]");
}

static const struct proto_column version_cols[] = {{"version", OID_TEXT, -1}};

static void show_version(void)
{
	SHOWROW_BEGIN(version_cols);
	showrow_str(0, "pgcoro " PGCORO_VERSION);
	showrow_end();
}

static const struct proto_column config_cols[] = {
    {"key", OID_TEXT, -1}, {"value", OID_TEXT, -1}, {"default", OID_TEXT, -1},
    {"changeable", OID_TEXT, -1}};

static void show_config(void)
{
	SHOWROW_BEGIN(config_cols);
	size_t n;
	const struct cfg_key *keys = cfg_keys(&n);
	for (size_t i = 0; i < n; i++) {
		char value[1024];
		cfg_key_value(rt->cfg, &keys[i], value, sizeof(value));
		showrow_str(0, keys[i].key);
		showrow_str(1, value);
		showrow_str(2, keys[i].def);
		showrow_str(3, cfg_key_reloadable(&keys[i]) ? "yes" : "no");
		showrow_end();
	}
}

static const struct proto_column kv_text_cols[] = {{"key", OID_TEXT, -1},
						   {"value", OID_TEXT, -1}};

static void show_state(void)
{
	const char *mode = poolctl_suspended() ? "suspended" : poolctl_paused(NULL) ? "paused"
										     : "active";
	static const char *const keys[] = {"active", "paused", "suspended"};
	SHOWROW_BEGIN(kv_text_cols);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		showrow_str(0, keys[i]);
		showrow_str(1, strcmp(mode, keys[i]) == 0 ? "yes" : "no");
		showrow_end();
	}
}

/* ---- DATABASES ------------------------------------------------------------------------- */

static const struct proto_column databases_cols[] = {
    {"name", OID_TEXT, -1},          {"host", OID_TEXT, -1},
    {"port", OID_INT4, 4},           {"database", OID_TEXT, -1},
    {"force_user", OID_TEXT, -1},    {"pool_size", OID_INT4, 4},
    {"min_pool_size", OID_INT4, 4},  {"reserve_pool_size", OID_INT4, 4},
    {"server_lifetime", OID_INT4, 4}, {"pool_mode", OID_TEXT, -1},
    {"load_balance_hosts", OID_TEXT, -1}, {"max_connections", OID_INT4, 4},
    {"current_connections", OID_INT4, 4}, {"max_client_connections", OID_INT4, 4},
    {"current_client_connections", OID_INT4, 4}, {"paused", OID_INT4, 4},
    {"disabled", OID_INT4, 4},
    /* pgcoro's, after PgBouncer's: reserve_pool_size under its pre-1.19 name, which
     * exporters of that time read */
    {"reserve_pool", OID_INT4, 4}};

/* load_balance_hosts of DB as PgBouncer shows it: only for a list of hosts. */
static const char *load_balance_of(const struct cfg_db *db)
{
	const char *host = db ? cfg_db_param(db, "host") : NULL;
	if (!host || !strchr(host, ','))
		return NULL;
	return db->load_balance_hosts == LB_DISABLE ? "disable" : "round-robin";
}

/* The row of database NAME, configured by DB (its own entry, or "*"), with the sums S
 * of its pools. */
static void database_row(const char *name, const struct cfg_db *db,
			 const struct showstats_db *s)
{
	const struct config *cfg = rt->cfg;
	const char *port = cfg_db_param(db, "port");
	const char *dbname = cfg_db_param(db, "dbname");
	showrow_str(0, name);
	showrow_str(1, cfg_db_param(db, "host"));
	showrow_int(2, port ? atoi(port) : 5432);
	showrow_str(3, dbname ? dbname : name);
	showrow_str(4, cfg_db_param(db, "user"));
	showrow_int(5, db->pool_size >= 0 ? db->pool_size : cfg->default_pool_size);
	showrow_int(6, db->min_pool_size >= 0 ? db->min_pool_size : cfg->min_pool_size);
	int reserve = db->reserve_pool_size >= 0 ? db->reserve_pool_size : cfg->reserve_pool_size;
	showrow_int(7, reserve);
	showrow_int(8, (int64_t)(db->server_lifetime >= 0 ? db->server_lifetime
							  : cfg->server_lifetime));
	showrow_str(9, db->pool_mode != POOL_MODE_UNSET ? cfg_pool_mode_name(db->pool_mode)
							: NULL);
	showrow_str(10, load_balance_of(db));
	showrow_int(11, db->max_db_connections >= 0 ? db->max_db_connections
						    : cfg->max_db_connections);
	showrow_int(12, s->servers);
	showrow_int(13, db->max_db_client_connections >= 0 ? db->max_db_client_connections
							   : cfg->max_db_client_connections);
	showrow_int(14, s->clients);
	showrow_int(15, poolctl_paused(name));
	showrow_int(16, poolctl_disabled(name));
	showrow_int(17, reserve);
	showrow_end();
}

/* A database the "*" entry made, if S's is one. */
static void auto_database_row(const char *name, const struct showstats_db *s, bool unused)
{
	const struct cfg_db *db = s->first->auto_db ? cfg_find_db(rt->cfg, name) : NULL;
	if (db && strcmp(db->name, "*") == 0)
		database_row(name, db, s);
}

/* The configured databases, then those the "*" entry made (as PgBouncer's auto-databases:
 * listed while they have pools, gone with them), then the console's. */
static void show_databases(void)
{
	const struct config *cfg = rt->cfg;
	SHOWROW_BEGIN(databases_cols);
	for (int i = 0; i < cfg->ndbs; i++) {
		struct showstats_db s = showstats_db_of(cfg->dbs[i].name);
		database_row(cfg->dbs[i].name, &cfg->dbs[i], &s);
	}
	showstats_each_db(auto_database_row, false);
	/* the console: PgBouncer's admin database */
	showrow_str(0, SHOW_ADMIN_NAME);
	showrow_str(1, NULL);
	showrow_int(2, cfg->listen_port);
	showrow_str(3, SHOW_ADMIN_NAME);
	showrow_str(4, SHOW_ADMIN_NAME);
	showrow_int(5, 2);
	showrow_int(6, cfg->min_pool_size);
	showrow_int(7, cfg->reserve_pool_size);
	showrow_int(8, (int64_t)cfg->server_lifetime);
	showrow_str(9, "statement");
	showrow_str(10, NULL);
	showrow_int(11, cfg->max_db_connections);
	showrow_int(12, 0);
	showrow_int(13, cfg->max_db_client_connections);
	showrow_int(14, client_console_clients()->count);
	showrow_int(15, 0);
	showrow_int(16, 0);
	showrow_int(17, cfg->reserve_pool_size);
	showrow_end();
}

/* ---- USERS ----------------------------------------------------------------------------- */

static const struct proto_column users_cols[] = {
    {"name", OID_TEXT, -1},           {"pool_size", OID_TEXT, -1},
    {"reserve_pool_size", OID_TEXT, -1}, {"pool_mode", OID_TEXT, -1},
    {"max_user_connections", OID_INT4, 4}, {"current_connections", OID_INT4, 4},
    {"max_user_client_connections", OID_INT4, 4},
    {"current_client_connections", OID_INT4, 4}};

int show_user_clients(const char *user)
{
	int n = pool_user_clients(user);
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, client_console_clients())
	{
		if (strcmp(list_entry(pos, client_t, node)->user, user) == 0)
			n++;
	}
	return n;
}

/* PgBouncer's "%9d" of a [users] setting, "" when unset. */
static void cell_setting(int i, int v)
{
	char s[16] = "";
	if (v >= 0)
		snprintf(s, sizeof(s), "%9d", v);
	showrow_copy(i, s);
}

static void user_row(const char *name)
{
	const struct config *cfg = rt->cfg;
	const struct cfg_user *u = cfg_find_user(cfg, name);
	int servers = 0;
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p))
		if (strcmp(p->user, name) == 0)
			servers += pool_server_count(p);
	showrow_str(0, name);
	cell_setting(1, u ? u->pool_size : -1);
	cell_setting(2, u ? u->reserve_pool_size : -1);
	showrow_str(3, u && u->pool_mode != POOL_MODE_UNSET ? cfg_pool_mode_name(u->pool_mode)
							  : NULL);
	showrow_int(4, u && u->max_user_connections >= 0 ? u->max_user_connections
							  : cfg->max_user_connections);
	showrow_int(5, servers);
	showrow_int(6, u && u->max_user_client_connections >= 0 ? u->max_user_client_connections
								 : cfg->max_user_client_connections);
	showrow_int(7, show_user_clients(name));
	showrow_end();
}

/* Whether NAME was listed by for_each_user before: a [users] entry, an auth_file user,
 * the console user, or (AT, an index into the pools and console clients walked in that
 * order) one of those before it. */
static bool user_seen(const char *name, int at)
{
	if (cfg_find_user(rt->cfg, name) || (rt->auth && auth_lookup(rt->auth, name)) ||
	    strcmp(name, SHOW_ADMIN_NAME) == 0)
		return true;
	int i = 0;
	for (pool_t *p = pool_next(NULL); p && i < at; p = pool_next(p), i++)
		if (strcmp(p->user, name) == 0)
			return true;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, client_console_clients())
	{
		if (i++ >= at)
			break;
		if (strcmp(list_entry(pos, client_t, node)->user, name) == 0)
			return true;
	}
	return false;
}

/* PgBouncer's user list: the [users] entries, the auth_file's users, the console user
 * "pgbouncer", and any other user with a pool or a console session; FN for each once.
 * Returns how many. */
static int for_each_user(void (*fn)(const char *name))
{
	const struct config *cfg = rt->cfg;
	int n = 0;
	for (int i = 0; i < cfg->nusers; i++, n++)
		if (fn)
			fn(cfg->users[i].name);
	for (int i = 0; i < auth_count(rt->auth); i++) {
		const char *name = auth_user_at(rt->auth, i);
		if (!cfg_find_user(cfg, name) && ++n && fn)
			fn(name);
	}
	if (!cfg_find_user(cfg, SHOW_ADMIN_NAME) &&
	    !(rt->auth && auth_lookup(rt->auth, SHOW_ADMIN_NAME)) && ++n && fn)
		fn(SHOW_ADMIN_NAME);
	int at = 0;
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p), at++)
		if (!user_seen(p->user, at) && ++n && fn)
			fn(p->user);
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, client_console_clients())
	{
		const char *name = list_entry(pos, client_t, node)->user;
		if (!user_seen(name, at++) && ++n && fn)
			fn(name);
	}
	return n;
}

static void show_users(void)
{
	SHOWROW_BEGIN(users_cols);
	for_each_user(user_row);
}

/* ---- POOLS ----------------------------------------------------------------------------- */

static const struct proto_column pools_cols[] = {
    {"database", OID_TEXT, -1},        {"user", OID_TEXT, -1},
    {"cl_active", OID_INT4, 4},        {"cl_waiting", OID_INT4, 4},
    {"cl_active_cancel_req", OID_INT4, 4}, {"cl_waiting_cancel_req", OID_INT4, 4},
    {"sv_active", OID_INT4, 4},        {"sv_active_cancel", OID_INT4, 4},
    {"sv_being_canceled", OID_INT4, 4}, {"sv_idle", OID_INT4, 4},
    {"sv_used", OID_INT4, 4},          {"sv_tested", OID_INT4, 4},
    {"sv_login", OID_INT4, 4},         {"maxwait", OID_INT4, 4},
    {"maxwait_us", OID_INT4, 4},       {"pool_mode", OID_TEXT, -1},
    {"load_balance_hosts", OID_TEXT, -1},
    /* pgcoro's: clients keeping their servers across transactions (pin.h) */
    {"cl_pinned", OID_INT4, 4}};

static void show_pools(void)
{
	double now = rt_now();
	SHOWROW_BEGIN(pools_cols);
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		double w = 0;
		if (!list_empty(&p->waiting))
			w = now - list_entry(list_first(&p->waiting), client_t, node)->since;
		int counts[11] = {p->clients.count, p->waiting.count, 0, 0, p->sv_active.count, 0, 0,
				  p->sv_idle.count, 0, p->sv_housekeeping.count,
				  p->sv_connecting.count};
		showrow_str(0, p->dbname);
		showrow_str(1, p->user);
		for (int i = 0; i < 11; i++)
			showrow_int(2 + i, counts[i]);
		showrow_int(13, (int64_t)w);
		showrow_int(14, (int64_t)((w - (double)(int64_t)w) * 1e6));
		showrow_str(15, cfg_pool_mode_name(p->pool_mode));
		showrow_str(16, load_balance_of(cfg_find_db(rt->cfg, p->dbname)));
		showrow_int(17, p->cl_pinned);
		showrow_end();
	}
	showrow_str(0, SHOW_ADMIN_NAME); /* the console's pool */
	showrow_str(1, SHOW_ADMIN_NAME);
	showrow_int(2, client_console_clients()->count);
	for (int i = 3; i <= 14; i++)
		showrow_int(i, 0);
	showrow_str(15, "statement");
	showrow_str(16, NULL);
	showrow_int(17, 0);
	showrow_end();
}

/* ---- LISTS, PEERS, PEER_POOLS, MEM, DNS_HOSTS, DNS_ZONES ------------------------------- */

static const struct proto_column lists_cols[] = {{"list", OID_TEXT, -1}, {"items", OID_INT4, 4}};

static void show_lists(void)
{
	int pools = 1, used_clients = client_console_clients()->count, used_servers = 0;
	int peer_pools = 0;
	struct peers_pool_stats pp;
	while (peers_pool_stats(peer_pools, &pp))
		peer_pools++;
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		pools++;
		used_clients += p->clients.count + p->waiting.count;
		used_servers += pool_server_count(p);
	}
	const struct {
		const char *name;
		int n;
	} rows[] = {{"databases", rt->cfg->ndbs + 1}, /* and the console's */
		    {"users", for_each_user(NULL)},
		    {"peers", rt->cfg->npeers},
		    {"pools", pools},
		    {"peer_pools", peer_pools},
		    {"free_clients", 0},
		    {"used_clients", used_clients},
		    {"login_clients", client_login_clients()->count},
		    {"free_servers", 0},
		    {"used_servers", used_servers},
		    {"dns_names", 0},
		    {"dns_zones", 0},
		    {"dns_queries", 0},
		    {"dns_pending", 0}};
	SHOWROW_BEGIN(lists_cols);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		showrow_str(0, rows[i].name);
		showrow_int(1, rows[i].n);
		showrow_end();
	}
}

/* [peers], in id order, pool_size resolved */
static const struct proto_column peers_cols[] = {
    {"peer_id", OID_INT4, 4}, {"host", OID_TEXT, -1}, {"port", OID_INT4, 4},
    {"pool_size", OID_INT4, 4}};

static void show_peers(void)
{
	const struct config *cfg = rt->cfg;
	SHOWROW_BEGIN(peers_cols);
	for (int i = 0; i < cfg->npeers; i++) {
		const struct cfg_peer *p = &cfg->peers[i];
		showrow_int(0, p->id);
		showrow_str(1, p->host);
		showrow_int(2, p->port);
		showrow_int(3, p->pool_size > 0 ? p->pool_size : cfg->default_pool_size);
		showrow_end();
	}
}

static const struct proto_column peer_pools_cols[] = {
    {"peer_id", OID_INT4, 4}, {"cl_active_cancel_req", OID_INT4, 4},
    {"cl_waiting_cancel_req", OID_INT4, 4}, {"sv_active_cancel", OID_INT4, 4},
    {"sv_login", OID_INT4, 4}};

/* the peers cancel requests were forwarded to; a request in flight is a client and a
 * server both active (its connection, its send and the wait for the close are one step) */
static void show_peer_pools(void)
{
	struct peers_pool_stats pp;
	SHOWROW_BEGIN(peer_pools_cols);
	for (int i = 0; peers_pool_stats(i, &pp); i++) {
		showrow_int(0, pp.peer_id);
		showrow_int(1, pp.active);
		showrow_int(2, pp.waiting);
		showrow_int(3, pp.active);
		showrow_int(4, 0);
		showrow_end();
	}
}

/* PgBouncer lists its slab caches; pgcoro allocates clients, servers and pools one by
 * one: their sizes and counts, none kept free. */
static const struct proto_column mem_cols[] = {
    {"name", OID_TEXT, -1}, {"size", OID_INT4, 4}, {"used", OID_INT4, 4},
    {"free", OID_INT4, 4},  {"memtotal", OID_INT4, 4}};

static void show_mem(void)
{
	int pools = 0, servers = 0;
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		pools++;
		servers += pool_server_count(p);
	}
	const struct {
		const char *name;
		size_t size;
		int used;
	} rows[] = {{"client_cache", sizeof(client_t), client_count()},
		    {"server_cache", sizeof(server_t), servers},
		    {"pool_cache", sizeof(pool_t), pools}};
	SHOWROW_BEGIN(mem_cols);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		showrow_str(0, rows[i].name);
		showrow_int(1, (int64_t)rows[i].size);
		showrow_int(2, rows[i].used);
		showrow_int(3, 0);
		showrow_int(4, (int64_t)rows[i].size * rows[i].used);
		showrow_end();
	}
}

/* libpq resolves host names itself: no cache to show. */
static const struct proto_column dns_hosts_cols[] = {
    {"hostname", OID_TEXT, -1}, {"ttl", OID_INT8, 8}, {"addrs", OID_TEXT, -1}};

static void show_dns_hosts(void) { SHOWROW_BEGIN(dns_hosts_cols); }

static const struct proto_column dns_zones_cols[] = {
    {"zonename", OID_TEXT, -1}, {"serial", OID_INT8, 8}, {"count", OID_INT4, 4}};

static void show_dns_zones(void) { SHOWROW_BEGIN(dns_zones_cols); }

/* ---- dispatch -------------------------------------------------------------------------- */

static const struct {
	const char *name;
	void (*fn)(void);
} shows[] = {
    {"help", show_help},           {"version", show_version},
    {"config", show_config},       {"databases", show_databases},
    {"pools", show_pools},         {"clients", showconn_clients},
    {"servers", showconn_servers}, {"sockets", showconn_sockets},
    {"active_sockets", showconn_active_sockets},
    {"users", show_users},         {"stats", showstats_stats},
    {"stats_totals", showstats_totals_by_db},
    {"stats_averages", showstats_averages_by_db},
    {"totals", showstats_totals},  {"lists", show_lists},
    {"state", show_state},         {"peers", show_peers},
    {"peer_pools", show_peer_pools}, {"mem", show_mem},
    {"dns_hosts", show_dns_hosts}, {"dns_zones", show_dns_zones},
};

bool show_build(struct pbuf *into, const char *what)
{
	for (size_t i = 0; i < sizeof(shows) / sizeof(shows[0]); i++) {
		if (strcasecmp(what, shows[i].name) == 0) {
			showrow_into(into);
			shows[i].fn();
			proto_build_command_complete(into, "SHOW");
			return true;
		}
	}
	return false;
}
