/* Owns the pools: one per (database, user), created on first login. A pool builds the
 * libpq parameters of its servers once (and rotates a round-robin host list per
 * connection), takes its sizes, limits and timeouts from the [databases] and [users]
 * entries over the global settings, keeps its clients and servers on per-state lists,
 * hands idle servers to waiting clients in FIFO order and opens connections while
 * clients wait and the pool has room; a waiting replication client gets a server started
 * for it alone, in its turn, counted in the pool's size (an idle server closed to make
 * room). */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "notify.h"
#include "poolctl.h"
#include "runtime.h"
#include "sdnotify.h"
#include "server.h"
#include "tls.h"

static struct runtime *rt;
static struct list_head pools;
static struct event tick_ev; /* once a second: idle/lifetime expiry, min_pool_size, reserve */

static void tick_cb(evutil_socket_t fd, short what, void *arg);

void pool_init(struct runtime *r)
{
	rt = r;
	list_head_init(&pools);
	event_assign(&tick_ev, rt->base, -1, EV_PERSIST, tick_cb, NULL);
	struct timeval tv = {1, 0};
	event_add(&tick_ev, &tv);
}

static bool has_kw(const struct cfg_db *db, const char *kw) { return cfg_db_param(db, kw) != NULL; }

static void free_params(const char **kw, const char **val)
{
	for (int i = 0; kw && kw[i]; i++) {
		free((char *)kw[i]);
		free((char *)val[i]);
	}
	free(kw);
	free(val);
}

static void pool_free(pool_t *p)
{
	event_del(&p->retry_ev);
	notify_pool_free(p);
	for (int i = 0; i < SERVER_NPARAMS; i++)
		free(p->params[i]);
	pbuf_free(&p->welcome);
	free_params(p->kw, p->val);
	free(p->connect_query);
	free(p->dbname);
	free(p->user);
	free(p);
}

/* Builds the libpq parameters: the entry's conninfo, then what it leaves out — dbname
 * (the name asked for), user (the client's), password (the user's plain secret in the
 * auth_file; otherwise libpq's own passfile rules apply), the server_tls_* settings as
 * sslmode/sslrootcert/sslcert/sslkey/ssl_min_protocol_version/ssl_max_protocol_version. */
static bool same_params(const char *const *kw1, const char *const *val1,
			const char *const *kw2, const char *const *val2)
{
	int i = 0;
	for (; kw1[i] && kw2[i]; i++)
		if (strcmp(kw1[i], kw2[i]) != 0 || strcmp(val1[i], val2[i]) != 0)
			return false;
	return !kw1[i] && !kw2[i];
}

/* A server_tls_* VALUE for libpq keyword KW, unless DB's conninfo sets KW or VALUE is
 * empty (NULL then). */
static const char *server_tls(const struct cfg_db *db, const char *kw, const char *value)
{
	return value[0] && !has_kw(db, kw) ? value : NULL;
}

/* Elements of the comma-separated list S. */
static int list_count(const char *s)
{
	int n = 1;
	for (; *s; s++)
		n += *s == ',';
	return n;
}

static bool build_params(pool_t *p, const struct cfg_db *db)
{
	int n = 0;
	while (db->kw[n])
		n++;
	p->kw = calloc((size_t)n + 11, sizeof(char *));
	p->val = calloc((size_t)n + 11, sizeof(char *));
	if (!p->kw || !p->val)
		return false;
	int k = 0;
	for (int i = 0; i < n; i++, k++) {
		p->kw[k] = strdup(db->kw[i]);
		p->val[k] = strdup(db->val[i]);
		if (!p->kw[k] || !p->val[k])
			return false;
	}
	const char *user = cfg_db_param(db, "user");
	if (!user)
		user = p->user;
	const char *password = NULL;
	if (!has_kw(db, "password") && rt->auth) {
		const char *secret = auth_lookup(rt->auth, user);
		if (secret && auth_secret_kind(secret) == SECRET_PLAIN && secret[0])
			password = secret;
	}
	/* server_tls_protocols: only when it is not the default, libpq's own range */
	const char *tls_min = NULL, *tls_max = NULL;
	int min, max;
	char why[256];
	if (strcmp(rt->cfg->server_tls_protocols, "secure") != 0 &&
	    tls_protocols_parse("server_tls_protocols", rt->cfg->server_tls_protocols, &min, &max,
				why, sizeof(why))) {
		tls_min = server_tls(db, "ssl_min_protocol_version", tls_version_libpq(min));
		tls_max = server_tls(db, "ssl_max_protocol_version", tls_version_libpq(max));
	}
	const char *extra[][2] = {
		{"dbname", has_kw(db, "dbname") ? NULL : p->dbname},
		{"user", has_kw(db, "user") ? NULL : p->user},
		{"password", password},
		{"sslmode", server_tls(db, "sslmode", rt->cfg->server_tls_sslmode)},
		{"sslrootcert", server_tls(db, "sslrootcert", rt->cfg->server_tls_ca_file)},
		{"sslcert", server_tls(db, "sslcert", rt->cfg->server_tls_cert_file)},
		{"sslkey", server_tls(db, "sslkey", rt->cfg->server_tls_key_file)},
		{"ssl_min_protocol_version", tls_min},
		{"ssl_max_protocol_version", tls_max},
		/* no fallback_application_name: a client that sets none sees '' (PostgreSQL,
		 * PgBouncer); pgcoro's own listener connection labels itself (notify.c) */
	};
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
		if (!extra[i][1])
			continue;
		p->kw[k] = strdup(extra[i][0]);
		p->val[k] = strdup(extra[i][1]);
		if (!p->kw[k] || !p->val[k])
			return false;
		k++;
	}
	const char *hosts = cfg_db_param(db, "host");
	if (!hosts)
		hosts = cfg_db_param(db, "hostaddr");
	p->lb_hosts = db->load_balance_hosts == LB_ROUND_ROBIN && hosts ? list_count(hosts) : 0;
	if (p->lb_hosts < 2)
		p->lb_hosts = 0;
	return true;
}

/* Copies the comma-separated LIST into OUT (as long) starting at its element K. */
static void rotate_list(const char *list, int k, char *out)
{
	const char *from = list;
	for (int i = 0; i < k; i++)
		from = strchr(from, ',') + 1;
	size_t tail = strlen(from), head = (size_t)(from - list);
	memcpy(out, from, tail);
	if (head > 0) {
		out[tail] = ',';
		memcpy(out + tail + 1, list, head - 1); /* without the comma before FROM */
	}
	out[tail + (head > 0 ? head : 0)] = '\0';
}

struct pool_conn_params *pool_conn_params(pool_t *p)
{
	int n = 0;
	size_t strings = 0;
	for (; p->kw[n]; n++)
		strings += strlen(p->kw[n]) + strlen(p->val[n]) + 2;
	struct pool_conn_params *cp =
		malloc(sizeof(*cp) + 2 * ((size_t)n + 1) * sizeof(char *) + strings);
	if (!cp)
		return NULL;
	cp->kw = (const char **)(cp + 1);
	cp->val = cp->kw + n + 1;
	char *str = (char *)(cp->val + n + 1);
	int k = 0;
	if (p->lb_hosts > 0)
		k = (int)(p->lb_next++ % (unsigned)p->lb_hosts);
	for (int i = 0; i < n; i++) {
		size_t kl = strlen(p->kw[i]) + 1, vl = strlen(p->val[i]) + 1;
		cp->kw[i] = memcpy(str, p->kw[i], kl);
		str += kl;
		bool rotated = k > 0 &&
			       (strcmp(p->kw[i], "host") == 0 || strcmp(p->kw[i], "hostaddr") == 0 ||
				strcmp(p->kw[i], "port") == 0) &&
			       list_count(p->val[i]) == p->lb_hosts;
		if (rotated)
			rotate_list(p->val[i], k, str);
		else
			memcpy(str, p->val[i], vl);
		cp->val[i] = str;
		str += vl;
	}
	cp->kw[n] = cp->val[n] = NULL;
	return cp;
}

const char *pool_client_limit(const pool_t *p)
{
	if (p->max_db_client_connections <= 0 && p->max_user_client_connections <= 0)
		return NULL;
	int db_clients = 0, user_clients = 0;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pools)
	{
		const pool_t *q = list_entry(pos, pool_t, node);
		int n = q->waiting.count + q->clients.count;
		if (strcmp(q->dbname, p->dbname) == 0)
			db_clients += n;
		if (strcmp(q->user, p->user) == 0)
			user_clients += n;
	}
	if (p->max_db_client_connections > 0 && db_clients >= p->max_db_client_connections)
		return "max_db_client_connections";
	if (p->max_user_client_connections > 0 && user_clients >= p->max_user_client_connections)
		return "max_user_client_connections";
	return NULL;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg) { pool_kick(arg); }

static void pool_settings(pool_t *p, const struct cfg_db *db);

pool_t *pool_get(const char *dbname, const char *user, const struct cfg_db *db)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pools)
	{
		pool_t *p = list_entry(pos, pool_t, node);
		if (strcmp(p->dbname, dbname) == 0 && strcmp(p->user, user) == 0)
			return p;
	}
	pool_t *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->dbname = strdup(dbname);
	p->user = strdup(user);
	if (!p->dbname || !p->user || !build_params(p, db)) {
		pool_free(p);
		return NULL;
	}
	evtimer_assign(&p->retry_ev, rt->base, retry_cb, p);
	pool_settings(p, db);
	p->paused = poolctl_paused(dbname);
	list_head_init(&p->waiting);
	list_head_init(&p->clients);
	list_head_init(&p->sv_connecting);
	list_head_init(&p->sv_idle);
	list_head_init(&p->sv_active);
	list_head_init(&p->sv_housekeeping);
	list_append(&pools, &p->node);
	log_info("pool %s/%s created: pool_size=%d pool_mode=%s", p->dbname, p->user, p->pool_size,
		 cfg_pool_mode_name(p->pool_mode));
	return p;
}

static bool str_same(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Sizes, mode, limits and timeouts of P from the running config (at creation and on
 * reload): the [users] entry's over the [databases] entry's over the global ones. */
static void pool_settings(pool_t *p, const struct cfg_db *db)
{
	const struct config *cfg = rt->cfg;
	const char *user = p->user;
	const struct cfg_user *u = cfg_find_user(cfg, user);
	if (u && u->pool_size > 0)
		p->pool_size = u->pool_size;
	else
		p->pool_size = db->pool_size > 0 ? db->pool_size : cfg->default_pool_size;
	p->min_pool_size = db->min_pool_size >= 0 ? db->min_pool_size : cfg->min_pool_size;
	if (p->min_pool_size > p->pool_size)
		p->min_pool_size = p->pool_size;
	p->reserve_pool_size =
		db->reserve_pool_size >= 0 ? db->reserve_pool_size : cfg->reserve_pool_size;
	p->max_db_connections =
		db->max_db_connections >= 0 ? db->max_db_connections : cfg->max_db_connections;
	p->max_user_connections = u && u->max_user_connections >= 0 ? u->max_user_connections
								 : cfg->max_user_connections;
	if (u && u->reserve_pool_size >= 0)
		p->reserve_pool_size = u->reserve_pool_size;
	p->max_db_client_connections = db->max_db_client_connections >= 0
					       ? db->max_db_client_connections
					       : cfg->max_db_client_connections;
	p->max_user_client_connections = u && u->max_user_client_connections >= 0
						 ? u->max_user_client_connections
						 : cfg->max_user_client_connections;
	p->query_timeout = u && u->query_timeout >= 0 ? u->query_timeout : cfg->query_timeout;
	p->idle_transaction_timeout = u && u->idle_transaction_timeout >= 0
					      ? u->idle_transaction_timeout
					      : cfg->idle_transaction_timeout;
	p->client_idle_timeout =
		u && u->client_idle_timeout >= 0 ? u->client_idle_timeout : cfg->client_idle_timeout;
	p->query_wait_timeout = u && u->query_wait_timeout >= 0	  ? u->query_wait_timeout
				: db->query_wait_timeout >= 0 ? db->query_wait_timeout
							      : cfg->query_wait_timeout;
	p->server_lifetime = db->server_lifetime >= 0 ? db->server_lifetime : cfg->server_lifetime;
	if (!str_same(p->connect_query, db->connect_query)) {
		char *q = db->connect_query ? strdup(db->connect_query) : NULL;
		if (db->connect_query && !q) {
			log_error("pool %s/%s: out of memory: connect_query stays", p->dbname, p->user);
		} else {
			free(p->connect_query);
			p->connect_query = q;
		}
	}
	if (u && u->pool_mode != POOL_MODE_UNSET)
		p->pool_mode = u->pool_mode;
	else if (db->pool_mode != POOL_MODE_UNSET)
		p->pool_mode = db->pool_mode;
	else
		p->pool_mode = cfg->pool_mode;
}

static void close_clients_with(struct list_head *h, const char *sqlstate, const char *msg)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, h)
	{
		client_disconnect(list_entry(pos, client_t, node), sqlstate, "%s", msg);
	}
}

static void close_servers_with(struct list_head *h, const char *reason)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, h)
	{
		server_disconnect(list_entry(pos, server_t, node), "%s", reason);
	}
}

void pool_renew_servers(pool_t *p, const char *why)
{
	p->conn_gen++;
	close_servers_with(&p->sv_idle, why);
	/* a replication connection may last for ever: waiting for its release is no option
	 * (PgBouncer closes it too); its client reconnects */
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &p->sv_active)
	{
		server_t *s = list_entry(pos, server_t, node);
		if (s->replication)
			server_disconnect(s, "%s", why);
	}
}

void pool_set_paused(pool_t *p, bool paused)
{
	if (p->paused == paused)
		return;
	p->paused = paused;
	if (paused) {
		close_servers_with(&p->sv_idle, "PAUSE");
		close_servers_with(&p->sv_connecting, "PAUSE");
	} else {
		pool_kick(p);
	}
}

void pool_reconfigure(void)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pools)
	{
		pool_t *p = list_entry(pos, pool_t, node);
		const struct cfg_db *db = cfg_find_db(rt->cfg, p->dbname);
		if (!db) {
			log_info("pool %s/%s: database no longer configured: no new logins; its "
				 "sessions go on", p->dbname, p->user);
			continue;
		}
		pool_settings(p, db);
		const char **kw = p->kw, **val = p->val;
		p->kw = p->val = NULL;
		if (!build_params(p, db)) {
			log_error("pool %s/%s: out of memory applying the new configuration: "
				  "its connection settings stay", p->dbname, p->user);
			free_params(p->kw, p->val);
			p->kw = kw;
			p->val = val;
		} else if (!same_params(kw, val, p->kw, p->val)) {
			free_params(kw, val);
			log_info("pool %s/%s: connection settings changed: servers are replaced as "
				 "they become idle", p->dbname, p->user);
			pool_renew_servers(p, "connection settings changed (reload)");
		} else {
			free_params(kw, val);
		}
		pool_kick(p); /* limits may have grown */
	}
}

int pool_server_count(const pool_t *p)
{
	return p->sv_connecting.count + p->sv_idle.count + p->sv_active.count +
	       p->sv_housekeeping.count;
}

/* The most servers P may have now: its size, plus the reserve once the longest waiting
 * client has waited reserve_pool_timeout. */
static int pool_limit(const pool_t *p, double now)
{
	if (p->reserve_pool_size > 0 && !list_empty(&p->waiting)) {
		const client_t *c = list_entry(list_first(&p->waiting), client_t, node);
		if (now - c->since >= rt->cfg->reserve_pool_timeout)
			return p->pool_size + p->reserve_pool_size;
	}
	return p->pool_size;
}

static bool same_db(const pool_t *a, const pool_t *b) { return strcmp(a->dbname, b->dbname) == 0; }
static bool same_user(const pool_t *a, const pool_t *b) { return strcmp(a->user, b->user) == 0; }

/* Room under max_db_connections and max_user_connections for one more server of P.
 * When full, an idle server of a sibling pool (same database or user) is closed to make
 * room, as its pool does not need it now. */
static bool shared_room(pool_t *p)
{
	if (p->max_db_connections <= 0 && p->max_user_connections <= 0)
		return true;
	int db_total = 0, user_total = 0;
	pool_t *db_victim = NULL, *user_victim = NULL; /* first siblings with an idle server */
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pools)
	{
		pool_t *q = list_entry(pos, pool_t, node);
		bool d = same_db(p, q), u = same_user(p, q), idle = q != p && !list_empty(&q->sv_idle);
		if (d)
			db_total += pool_server_count(q);
		if (u)
			user_total += pool_server_count(q);
		if (d && idle && !db_victim)
			db_victim = q;
		if (u && idle && !user_victim)
			user_victim = q;
	}
	bool db_full = p->max_db_connections > 0 && db_total >= p->max_db_connections;
	bool user_full = p->max_user_connections > 0 && user_total >= p->max_user_connections;
	if (!db_full && !user_full)
		return true;
	/* the victim shares the limit that is full (the database's first when both are; the
	 * call below then makes room for the user): closing one that does not frees nothing */
	pool_t *victim = db_full ? db_victim : user_victim;
	if (!victim)
		return false; /* the clients wait; a release elsewhere kicks this pool */
	server_t *s = list_entry(list_first(&victim->sv_idle), server_t, node);
	server_disconnect(s, "making room for pool %s/%s (%s)", p->dbname, p->user,
			  db_full ? "max_db_connections" : "max_user_connections");
	return shared_room(p);
}

pool_t *pool_next(const pool_t *prev)
{
	const struct list *n = prev ? prev->node.next : pools.node.next;
	return n == &pools.node ? NULL : list_entry(n, pool_t, node);
}

void pool_close_all(pool_t *p, const char *sqlstate, const char *msg)
{
	close_clients_with(&p->waiting, sqlstate, msg);
	close_clients_with(&p->clients, sqlstate, msg);
	close_servers_with(&p->sv_connecting, msg);
	close_servers_with(&p->sv_idle, msg);
	close_servers_with(&p->sv_active, msg);
	close_servers_with(&p->sv_housekeeping, msg);
}

static int old_in(const struct list_head *h, unsigned gen)
{
	int n = 0;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, h)
	{
		n += list_entry(pos, server_t, node)->conn_gen != gen;
	}
	return n;
}

int pool_old_servers(const pool_t *p)
{
	return old_in(&p->sv_connecting, p->conn_gen) + old_in(&p->sv_idle, p->conn_gen) +
	       old_in(&p->sv_active, p->conn_gen) + old_in(&p->sv_housekeeping, p->conn_gen);
}

void pool_kick_siblings(pool_t *p)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pools)
	{
		pool_t *q = list_entry(pos, pool_t, node);
		if (q != p && !list_empty(&q->waiting) && (same_db(p, q) || same_user(p, q)))
			pool_kick(q);
	}
}

/* Opens connections while WANT says more are needed, the limits allow and no back-off
 * is running. */
static void grow(pool_t *p, int want, double now)
{
	if (now < p->retry_at)
		return; /* retry_ev kicks the pool when the back-off ends */
	int limit = pool_limit(p, now);
	while (want > 0 && pool_server_count(p) < limit && shared_room(p)) {
		if (pool_server_count(p) >= p->pool_size) /* PgBouncer's words: a pool too small */
			log_warning("pool %s/%s: taking connection from reserve_pool (%d of %d)",
				    p->dbname, p->user, pool_server_count(p) - p->pool_size + 1,
				    p->reserve_pool_size);
		if (!server_connect(p)) {
			log_error("pool %s/%s: out of memory starting a connection", p->dbname, p->user);
			return;
		}
		want--;
	}
}

/* C (waiting, or asking with nobody waiting before it) gets its server now: the wait is
 * counted and C becomes active. */
static void hand_over(pool_t *p, client_t *c)
{
	uint64_t waited_us = 0; /* the fast path (pool_request) waited for nothing */
	if (c->state == CL_WAITING) {
		double waited = rt_now() - c->since;
		waited_us = waited > 0 ? (uint64_t)(waited * 1e6) : 0;
		p->stats.wait_time_us += waited_us;
	}
	if (rt->metrics_on)
		metrics_observe(&p->metrics.wait, waited_us);
	p->stats.assignments++;
	client_set_state(c, CL_ACTIVE);
}

void pool_replication_ready(pool_t *p, client_t *c) { hand_over(p, c); }

/* Gives C an idle server of P that needs no check now (a stale one leaves the idle list
 * to be checked and comes back): the one idle the shortest time (LIFO, as PgBouncer: few
 * servers carry the load, stay warm, and the rest reach server_idle_timeout), or with
 * server_round_robin the one idle the longest. False if there is none. */
static bool hand_idle(pool_t *p, client_t *c)
{
	bool fifo = rt->cfg->server_round_robin;
	while (!list_empty(&p->sv_idle)) {
		server_t *s = list_entry(fifo ? list_first(&p->sv_idle) : list_last(&p->sv_idle),
					 server_t, node);
		if (server_check_if_stale(s))
			continue;
		hand_over(p, c);
		server_assign(s, c);
		return true;
	}
	return false;
}

/* Room in P for replication client C's own server: under the pool's limit and under
 * max_db_connections / max_user_connections (shared_room), idle servers of P closed to
 * make it (PgBouncer evicts them for a replication client too). Closing one kicks P,
 * which may have started C's server meanwhile: false then, as when there is no room. */
static bool replication_room(pool_t *p, client_t *c)
{
	double now = rt_now();
	if (now < p->retry_at)
		return false; /* retry_ev kicks the pool when the back-off ends */
	for (;;) {
		bool room = pool_server_count(p) < pool_limit(p, now) && shared_room(p);
		if (c->state != CL_WAITING || c->server)
			return false;
		if (room)
			return true;
		if (list_empty(&p->sv_idle))
			return false;
		server_disconnect(list_entry(list_first(&p->sv_idle), server_t, node),
				  "evicted: making room for a replication connection");
	}
}

/* P has replication clients waiting: in FIFO order, each that has no server yet gets one
 * started while there is room, and (HAND) the others get idle servers, up to the first
 * that none is left for (grow starts servers for it and those behind it first). Looks
 * from the head again after each: what it starts or hands may kick P. */
static void serve_in_order(pool_t *p, bool hand)
{
	bool room = true;
	while (room || hand) {
		client_t *c = NULL;
		struct list *pos, *tmp;
		list_for_each_safe(pos, tmp, &p->waiting)
		{
			client_t *w = list_entry(pos, client_t, node);
			if (w->replication ? room && !w->server : hand) {
				c = w;
				break;
			}
		}
		if (!c)
			return;
		if (!c->replication) {
			if (!hand_idle(p, c))
				return;
		} else if (!replication_room(p, c))
			room = false;
		else if (!server_connect_replication(p, c))
			client_disconnect(c, "53200", "out of memory starting a replication connection");
	}
}

void pool_serve_waiting(pool_t *p)
{
	if (rt->shutting_down || p->paused)
		return;
	if (__builtin_expect(p->repl_waiting > 0, 0))
		serve_in_order(p, true);
	else
		while (!list_empty(&p->waiting) &&
		       hand_idle(p, list_entry(list_first(&p->waiting), client_t, node)))
			;
	/* replication clients and their servers aside: each is the other's */
	int want = p->waiting.count - p->repl_waiting - (p->sv_connecting.count - p->repl_connecting);
	/* the common cases, every waiter served or the pool at its largest, need no clock */
	if (want > 0 && pool_server_count(p) < p->pool_size + p->reserve_pool_size)
		grow(p, want, rt_now());
	if (__builtin_expect(p->repl_waiting > 0, 0))
		serve_in_order(p, false); /* room left after those ahead of them */
}

void pool_request(pool_t *p, client_t *c)
{
	if (!rt->shutting_down && !p->paused && list_empty(&p->waiting) && !c->replication &&
	    hand_idle(p, c))
		return;
	client_set_state(c, CL_WAITING);
	c->since = rt_now();
	pool_kick(p);
}

void pool_connect_ok(pool_t *p, char *const *params)
{
	p->retry_delay = 0;
	p->retry_at = 0;
	for (int i = 0; i < SERVER_NPARAMS; i++) {
		free(p->params[i]);
		p->params[i] = params[i] ? strdup(params[i]) : NULL;
		if (params[i] && !p->params[i])
			return; /* out of memory: params_known stays as it was */
	}
	pbuf_reset(&p->welcome);
	for (int i = 0; i < SERVER_NPARAMS; i++) {
		p->welcome_at[i] = (uint32_t)p->welcome.len;
		if (p->params[i])
			proto_build_param_status(&p->welcome, server_param_names[i], p->params[i]);
	}
	p->welcome_at[SERVER_NPARAMS] = (uint32_t)p->welcome.len;
	p->params_known = !p->welcome.failed;
}

void pool_connect_failed(pool_t *p, const char *sqlstate, const char *msg)
{
	/* Back off exponentially from 50 ms up to server_login_retry, so a PostgreSQL that
	 * comes back is used again within that cap. */
	double cap = rt->cfg->server_login_retry;
	p->retry_delay = p->retry_delay > 0 ? p->retry_delay * 2 : 0.05;
	if (p->retry_delay > cap)
		p->retry_delay = cap;
	if (p->retry_delay > 0) {
		p->retry_at = rt_now() + p->retry_delay;
		struct timeval tv = {(time_t)p->retry_delay,
				     (suseconds_t)((p->retry_delay - (double)(time_t)p->retry_delay) * 1e6)};
		evtimer_add(&p->retry_ev, &tv);
	}
	/* Waiters keep waiting while a server may still come: one connecting, or one in use
	 * that will be released. With none, nothing can serve them: they learn why now. */
	if (p->sv_active.count + p->sv_idle.count + p->sv_housekeeping.count > 0)
		return;
	/* replication clients wait for their own connection, which tells them its fate */
	while (p->waiting.count - p->repl_waiting > p->sv_connecting.count - p->repl_connecting) {
		struct list *pos = list_first(&p->waiting);
		while (list_entry(pos, client_t, node)->replication)
			pos = pos->next;
		client_disconnect(list_entry(pos, client_t, node), sqlstate,
				  "server connection failed%s%s", *msg ? ": " : "", msg);
	}
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	double now = rt_now();
	client_tick(now);
	int servers = 0;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pools)
	{
		servers += pool_server_count(list_entry(pos, pool_t, node));
	}
	sdnotify_status("%d client(s), %d server connection(s)%s", client_count(), servers,
			rt->shutting_down ? ", shutting down" : "");
	list_for_each_safe(pos, tmp, &pools)
	{
		pool_t *p = list_entry(pos, pool_t, node);
		double qwt = p->query_wait_timeout;
		while (qwt > 0 && !list_empty(&p->waiting)) {
			client_t *c = list_entry(list_first(&p->waiting), client_t, node);
			if (now - c->since < qwt)
				break; /* FIFO: the rest waited less */
			client_wait_timeout(c);
		}
		server_expire_idle(p, now);
		if (!p->paused)
			grow(p, p->min_pool_size - pool_server_count(p), now);
		if (!list_empty(&p->waiting))
			pool_kick(p); /* the reserve may have opened */
	}
}

#define SHUTDOWN_MSG "terminating connection: pgcoro is shutting down"

void pool_shutdown_begin(void)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pools)
	{
		pool_t *p = list_entry(pos, pool_t, node);
		close_clients_with(&p->waiting, "57P01", SHUTDOWN_MSG);
		struct list *cpos, *ctmp;
		list_for_each_safe(cpos, ctmp, &p->clients)
		{
			client_t *c = list_entry(cpos, client_t, node);
			if (c->state == CL_IDLE)
				client_disconnect(c, "57P01", "%s", SHUTDOWN_MSG);
		}
		close_servers_with(&p->sv_connecting, "shutting down");
		close_servers_with(&p->sv_idle, "shutting down");
		list_for_each_safe(cpos, ctmp, &p->clients)
		{
			client_shutdown_if_done(list_entry(cpos, client_t, node));
		}
	}
}

void pool_shutdown_all(void)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pools)
	{
		pool_close_all(list_entry(pos, pool_t, node), "57P01", SHUTDOWN_MSG);
	}
}

void pool_free_all(void)
{
	event_del(&tick_ev);
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pools)
	{
		pool_t *p = list_entry(pos, pool_t, node);
		list_del(&pools, &p->node);
		pool_free(p);
	}
}
