/* Owns the pools: one per (database, user), the user being the database's forced user=
 * when it has one (all its clients share that pool, as PgBouncer's), created on first
 * login (or, for a forced user with min_pool_size, by the tick), found by hash, and
 * freed when unused long enough. A pool builds the libpq parameters of its servers while
 * it is used (and rotates a round-robin host list per connection), takes its sizes,
 * limits and timeouts from the [databases] and [users] entries over the global settings,
 * keeps its clients and servers on per-state lists, hands idle servers to waiting clients
 * in FIFO order and opens connections while clients wait and the pool has room; a
 * waiting replication client gets a server started for it alone, in its turn, counted
 * in the pool's size (an idle server closed to make room).
 *
 * Lifetime: a pool counts the clients and servers pointing at it (pool_ref). One with none
 * (min_pool_size keeps a forced user's in use) is unused: its libpq parameters and
 * back-off timer go, and it waits on an unused list in the order it became unused. The
 * tick frees from the head of those lists what pool_idle_timeout (any pool),
 * autodb_idle_timeout (a "*" database, once every pool of it has been unused that long)
 * or a reload that removed its database says, and walks only the pools in use for its
 * other work. */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "authquery.h"
#include "client.h"
#include "config.h"
#include "hash.h"
#include "log.h"
#include "notify.h"
#include "poolctl.h"
#include "rand.h"
#include "runtime.h"
#include "sdnotify.h"
#include "server.h"
#include "srvconnect.h"
#include "tls.h"

/* The lists a pool's use_node is on (pool->use_list). */
enum use_list {
	USE_NONE,    /* being made */
	USE_BUSY,    /* in_use: a client or a server points at it, or min_pool_size keeps a
	              * forced user's */
	USE_AUTO,    /* unused_auto: unused, of a "*" database, a timeout frees it */
	USE_OTHER,   /* unused_other: unused, pool_idle_timeout or a removed database frees it */
	USE_KEPT,    /* kept: unused, no timeout frees it */
};

static struct runtime *rt;
static struct list_head pools;        /* every pool, creation order */
static struct list_head in_use;       /* USE_BUSY: the tick's work */
static struct list_head unused_auto;  /* USE_AUTO, by unused_since */
static struct list_head unused_other; /* USE_OTHER: gone ones first, then by unused_since */
static struct list_head kept;         /* USE_KEPT */
static struct hash_table table;       /* every pool, by (dbname, user) */
static uint64_t seed;                 /* of the hashes: names a client chooses do not aim
                                       * at one bucket */
static struct event tick_ev; /* once a second: idle/lifetime expiry, min_pool_size, reserve,
                              * unused pools freed */

static void tick_cb(evutil_socket_t fd, short what, void *arg);

void pool_init(struct runtime *r)
{
	rt = r;
	list_head_init(&pools);
	list_head_init(&in_use);
	list_head_init(&unused_auto);
	list_head_init(&unused_other);
	list_head_init(&kept);
	if (!rand_bytes(&seed, sizeof(seed)))
		seed = 0xcbf29ce484222325ull; /* FNV's own: only the flooding defence is lost */
	event_assign(&tick_ev, rt->base, -1, EV_PERSIST, tick_cb, NULL);
	struct timeval tv = {1, 0};
	event_add(&tick_ev, &tv);
}

/* ---- the hash table ------------------------------------------------------------------ */

static uint64_t key_hash(const char *dbname, const char *user)
{
	return hash_bytes(hash_bytes(seed, dbname, strlen(dbname) + 1), user, strlen(user));
}

static pool_t *find(const char *dbname, const char *user)
{
	for (struct hash_node *n = hash_first(&table, key_hash(dbname, user)); n; n = hash_next(n)) {
		pool_t *p = hash_entry(n, pool_t, hnode);
		if (strcmp(p->dbname, dbname) == 0 && strcmp(p->user, user) == 0)
			return p;
	}
	return NULL;
}

/* ---- in use or not ------------------------------------------------------------------- */

static struct list_head *use_head(enum use_list which)
{
	switch (which) {
	case USE_BUSY: return &in_use;
	case USE_AUTO: return &unused_auto;
	case USE_OTHER: return &unused_other;
	case USE_KEPT: return &kept;
	case USE_NONE: break;
	}
	return NULL;
}

static void use_unlink(pool_t *p)
{
	if (p->use_list != USE_NONE)
		list_del(use_head(p->use_list), &p->use_node);
	p->use_list = USE_NONE;
}

/* Moves P to the list WHICH, at its end, or before AT (a node of that list). */
static void use_move(pool_t *p, enum use_list which, struct list *at)
{
	use_unlink(p);
	struct list_head *h = use_head(which);
	list_insert_before(h, at ? at : &h->node, &p->use_node);
	p->use_list = (uint8_t)which;
}

static bool in_use_now(const pool_t *p)
{
	return p->refs > 0 || (p->min_pool_size > 0 && p->forced && !p->gone);
}

/* The unused list P waits on under the running config. */
static enum use_list unused_list_of(const pool_t *p)
{
	const struct config *cfg = rt->cfg;
	if (p->gone)
		return USE_OTHER;
	if (p->auto_db && (cfg->autodb_idle_timeout > 0 || cfg->pool_idle_timeout > 0))
		return USE_AUTO;
	return cfg->pool_idle_timeout > 0 ? USE_OTHER : USE_KEPT;
}

/* Puts unused P on the list WHICH in unused_since order (a gone pool: first), looking
 * from the end, where the latest are. */
static void use_insert_sorted(pool_t *p, enum use_list which)
{
	use_unlink(p);
	struct list_head *h = use_head(which);
	struct list *at = &h->node;
	if (p->gone)
		at = h->node.next;
	else
		while (at->prev != &h->node) {
			const pool_t *q = list_entry(at->prev, pool_t, use_node);
			if (q->gone || q->unused_since <= p->unused_since)
				break;
			at = at->prev;
		}
	use_move(p, which, at);
}

static void free_params(const char **kw, const char **val);

/* P has no client and no server now, and nothing keeps it: what only use needs goes (its
 * libpq parameters unless its LISTEN connection may read them, its back-off timer and
 * last failure). */
static void became_unused(pool_t *p)
{
	if (p->retry_ev) {
		event_free(p->retry_ev);
		p->retry_ev = NULL;
	}
	free(p->failure);
	p->failure = NULL;
	if (!p->notify) {
		free_params(p->kw, p->val);
		p->kw = p->val = NULL;
	}
}

/* Puts P on the list its use says (after its references or its settings changed). */
static void settle(pool_t *p)
{
	if (in_use_now(p)) {
		if (p->use_list != USE_BUSY)
			use_move(p, USE_BUSY, NULL);
		return;
	}
	if (p->use_list != USE_BUSY && p->use_list != USE_NONE)
		return; /* unused already: it keeps its place */
	/* idle since its last activity: a pool whose last (idle) server just closed has been
	 * unused since that server went idle, as PgBouncer counts pool_idle_timeout */
	double now = rt_now();
	p->unused_since = p->last_active > 0 && p->last_active < now ? p->last_active : now;
	became_unused(p);
	use_insert_sorted(p, unused_list_of(p));
}

void pool_ref(pool_t *p)
{
	if (p->refs++ == 0)
		settle(p);
}

void pool_unref(pool_t *p)
{
	if (--p->refs == 0)
		settle(p);
}

static bool has_kw(const struct cfg_db *db, const char *kw) { return cfg_db_param(db, kw) != NULL; }

static bool same_db(const pool_t *a, const pool_t *b) { return strcmp(a->dbname, b->dbname) == 0; }
static bool same_user(const pool_t *a, const pool_t *b) { return strcmp(a->user, b->user) == 0; }

static void free_params(const char **kw, const char **val)
{
	for (int i = 0; kw && kw[i]; i++) {
		free((char *)kw[i]);
		free((char *)val[i]);
	}
	free(kw);
	free(val);
}

struct pool_traffic *pool_traffic_new(pool_t *p)
{
	p->traffic = calloc(1, sizeof(*p->traffic));
	if (!p->traffic) {
		log_error("pool %s/%s: out of memory: its parameters are not cached, its metrics "
			  "not counted", p->dbname, p->user);
		return NULL;
	}
	p->traffic->stats.client_login_count = p->early_logins;
	p->early_logins = 0;
	return p->traffic;
}

static void traffic_free(struct pool_traffic *t)
{
	if (!t)
		return;
	for (int i = 0; i < SERVER_NPARAMS; i++)
		free(t->welcome.params[i]);
	pbuf_free(&t->welcome.msgs);
	free(t);
}

/* Frees P, which no client or server points at (nor its listener connection's job): out
 * of every list and the hash table; its counters go (the stats line keeps their sum). */
static void pool_free(pool_t *p)
{
	use_unlink(p);
	hash_del(&table, &p->hnode);
	list_del(&pools, &p->node);
	if (p->retry_ev)
		event_free(p->retry_ev);
	free(p->failure);
	notify_pool_free(p);
	stats_pool_gone(p);
	traffic_free(p->traffic);
	free_params(p->kw, p->val);
	free(p->connect_query);
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

/* The user P's servers log in as with DB, its entry: DB's user=, else P's. */
static const char *server_user(const pool_t *p, const struct cfg_db *db)
{
	const char *user = cfg_db_param(db, "user");
	return user ? user : p->user;
}

static bool build_params(pool_t *p, const struct cfg_db *db)
{
	int n = 0;
	while (db->kw[n])
		n++;
	p->kw = calloc((size_t)n + 11, sizeof(char *));
	p->val = calloc((size_t)n + 11, sizeof(char *));
	if (!p->kw || !p->val)
		return false; /* the caller frees what was built */
	int k = 0;
	for (int i = 0; i < n; i++, k++) {
		p->kw[k] = strdup(db->kw[i]);
		p->val[k] = strdup(db->val[i]);
		if (!p->kw[k] || !p->val[k])
			return false;
	}
	const char *user = server_user(p, db);
	const char *password = NULL;
	if (!has_kw(db, "password")) {
		/* an md5 secret or a SCRAM verifier is used by pgcoro's own login (srvconnect.h) */
		const char *secret = srvconnect_secret(p->dbname, user);
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
	p->tls_gen = rt->cfg->server_tls_gen;
	p->lb_sticky = db->load_balance_hosts == LB_DISABLE;
	p->lb_hosts = hosts ? list_count(hosts) : 0;
	/* with target_session_attrs, libpq picks the host that has them: it gets them all */
	const char *attrs = cfg_db_param(db, "target_session_attrs");
	if (p->lb_hosts < 2 || (p->lb_sticky && attrs && strcmp(attrs, "any") != 0))
		p->lb_hosts = 0;
	/* lists that do not pair (host and hostaddr of other lengths, ports neither one nor
	 * one per host) go whole, for libpq (or srvconnect) to refuse with its reason */
	const char *addrs = cfg_db_param(db, "hostaddr"), *ports = cfg_db_param(db, "port");
	if ((addrs && list_count(addrs) != p->lb_hosts) ||
	    (ports && list_count(ports) != 1 && list_count(ports) != p->lb_hosts))
		p->lb_hosts = 0;
	return true;
}

/* P's libpq parameters, built from its database's entry when P has none (it was unused).
 * False without memory, or when its database is no longer configured. */
static bool ensure_params(pool_t *p, const struct cfg_db *db)
{
	if (p->kw)
		return true;
	if (!db)
		db = cfg_find_db(rt->cfg, p->dbname);
	if (db && build_params(p, db))
		return true;
	free_params(p->kw, p->val);
	p->kw = p->val = NULL;
	return false;
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

/* Copies element K of the comma-separated LIST into OUT (as long). */
static void list_element(const char *list, int k, char *out)
{
	const char *from = list;
	for (int i = 0; i < k; i++)
		from = strchr(from, ',') + 1;
	size_t n = strcspn(from, ",");
	memcpy(out, from, n);
	out[n] = '\0';
}

struct pool_conn_params *pool_conn_params(pool_t *p)
{
	if (!ensure_params(p, NULL))
		return NULL;
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
	cp->host = -1;
	cp->database = p->dbname;
	if (p->lb_hosts > 0) {
		k = (int)(p->lb_next % (unsigned)p->lb_hosts);
		if (!p->lb_sticky)
			p->lb_next++;
		cp->host = k;
	}
	for (int i = 0; i < n; i++) {
		size_t kl = strlen(p->kw[i]) + 1, vl = strlen(p->val[i]) + 1;
		cp->kw[i] = memcpy(str, p->kw[i], kl);
		str += kl;
		bool listed = p->lb_hosts > 0 &&
			      (strcmp(p->kw[i], "host") == 0 || strcmp(p->kw[i], "hostaddr") == 0 ||
			       strcmp(p->kw[i], "port") == 0) &&
			      list_count(p->val[i]) == p->lb_hosts;
		if (listed && p->lb_sticky)
			list_element(p->val[i], k, str);
		else if (listed && k > 0)
			rotate_list(p->val[i], k, str);
		else
			memcpy(str, p->val[i], vl);
		cp->val[i] = str;
		str += vl;
	}
	cp->kw[n] = cp->val[n] = NULL;
	return cp;
}

void pool_host_result(pool_t *p, int host, bool ok)
{
	if (!p->lb_sticky || p->lb_hosts == 0 || host != (int)(p->lb_next % (unsigned)p->lb_hosts))
		return; /* no choice, or a connection to a host given up already */
	if (ok) {
		p->lb_proven = true;
		return;
	}
	p->lb_next = (p->lb_next + 1) % (unsigned)p->lb_hosts;
	p->lb_proven = false;
}

static int clients_of(const struct list_head *h, const char *user)
{
	int n = 0;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, h)
	{
		n += strcmp(list_entry(pos, client_t, node)->user, user) == 0;
	}
	return n;
}

int pool_user_clients(const char *user)
{
	int n = 0;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &in_use) /* an unused pool has no client */
	{
		const pool_t *q = list_entry(pos, pool_t, use_node);
		if (q->mixed_users)
			n += clients_of(&q->waiting, user) + clients_of(&q->clients, user);
		else if (strcmp(q->user, user) == 0)
			n += q->waiting.count + q->clients.count;
	}
	return n;
}

const char *pool_client_limit(const pool_t *p, const char *user)
{
	if (p->max_db_client_connections > 0) {
		int db_clients = 0;
		struct list *pos, *tmp;
		list_for_each_safe(pos, tmp, &in_use) /* an unused pool has no client */
		{
			const pool_t *q = list_entry(pos, pool_t, use_node);
			if (same_db(p, q))
				db_clients += q->waiting.count + q->clients.count;
		}
		if (db_clients >= p->max_db_client_connections)
			return "max_db_client_connections";
	}
	/* the login user's limit, as PgBouncer: a forced user's pool has clients of many */
	const struct cfg_user *u = cfg_find_user(rt->cfg, user);
	int max = u && u->max_user_client_connections >= 0 ? u->max_user_client_connections
							   : rt->cfg->max_user_client_connections;
	if (max > 0 && pool_user_clients(user) >= max)
		return "max_user_client_connections";
	return NULL;
}

static void pool_settings(pool_t *p, const struct cfg_db *db);

static bool is_auto(const struct cfg_db *db) { return strcmp(db->name, "*") == 0; }

/* No pool but P is for DBNAME. */
static bool is_first_of_db(const pool_t *p, const char *dbname)
{
	for (const pool_t *q = pool_next(NULL); q; q = pool_next(q))
		if (q != p && strcmp(q->dbname, dbname) == 0)
			return false;
	return true;
}

/* A new pool for (DBNAME, USER) of DB, in the hash table and on its lists; NULL without
 * memory. */
static pool_t *pool_new(const char *dbname, const char *user, const struct cfg_db *db)
{
	size_t dl = strlen(dbname) + 1, ul = strlen(user) + 1;
	pool_t *p = calloc(1, sizeof(*p) + dl + ul);
	if (!p)
		return NULL;
	if (!hash_add(&table, &p->hnode, key_hash(dbname, user))) {
		free(p);
		return NULL;
	}
	memcpy(p->dbname, dbname, dl);
	p->user = memcpy(p->dbname + dl, user, ul);
	p->auto_db = is_auto(db);
	list_init(&p->use_node);
	pool_settings(p, db);
	p->paused = poolctl_paused(dbname);
	list_head_init(&p->waiting);
	list_head_init(&p->tasks);
	list_head_init(&p->clients);
	list_head_init(&p->sv_connecting);
	list_head_init(&p->sv_idle);
	list_head_init(&p->sv_active);
	list_head_init(&p->sv_housekeeping);
	list_append(&pools, &p->node);
	settle(p);
	if (p->auto_db && is_first_of_db(p, dbname)) /* PgBouncer's words */
		log_info("registered new auto-database: %s", dbname);
	log_info("pool %s/%s created: pool_size=%d pool_mode=%s", p->dbname, p->user, p->pool_size,
		 cfg_pool_mode_name(p->pool_mode));
	return p;
}

pool_t *pool_get(const char *dbname, const char *user, const struct cfg_db *db)
{
	const char *forced = cfg_db_param(db, "user");
	if (forced)
		user = forced;
	pool_t *p = find(dbname, user);
	if (!p && !(p = pool_new(dbname, user, db)))
		return NULL;
	/* its clients' LISTEN connection reads them (notify.c) */
	return ensure_params(p, db) ? p : NULL;
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
	const char *forced = cfg_db_param(db, "user");
	p->forced = forced && strcmp(forced, user) == 0;
	p->mixed_users |= p->forced; /* for good: clients of other users may stay on it */
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
	p->query_timeout = u && u->query_timeout >= 0 ? u->query_timeout : cfg->query_timeout;
	p->idle_transaction_timeout = u && u->idle_transaction_timeout >= 0
					      ? u->idle_transaction_timeout
					      : cfg->idle_transaction_timeout;
	p->client_idle_timeout =
		u && u->client_idle_timeout >= 0 ? u->client_idle_timeout : cfg->client_idle_timeout;
	p->transaction_timeout =
		u && u->transaction_timeout >= 0 ? u->transaction_timeout : cfg->transaction_timeout;
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
	if (u && u->pin_session_state != PIN_UNSET)
		p->pin_mode = u->pin_session_state;
	else if (db->pin_session_state != PIN_UNSET)
		p->pin_mode = db->pin_session_state;
	else
		p->pin_mode = cfg->pin_session_state;
	if (p->pool_mode == POOL_SESSION)
		p->pin_mode = PIN_OFF; /* a session keeps its server anyway */
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

/* P's back-off ends: the next connection is tried at once, and no client is told of the
 * failures before it. */
static void end_backoff(pool_t *p)
{
	p->failed_in_row = 0;
	p->retry_at = 0;
	free(p->failure);
	p->failure = NULL;
}

void pool_renew_servers(pool_t *p, const char *why)
{
	p->conn_gen++;
	p->renew_why = why;
	end_backoff(p); /* past failures say nothing of the next attempt */
	close_servers_with(&p->sv_idle, why);
	/* a replication connection may last for ever: waiting for its release is no option
	 * (PgBouncer closes it too); its client reconnects */
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &p->sv_active)
	{
		server_t *s = list_entry(pos, server_t, node);
		if (s->replication)
			server_disconnect(s, "%s", why);
		else if (s->client && rt->cfg->server_fast_close)
			client_fast_close(s->client); /* session mode, between transactions */
	}
}

void pool_set_paused(pool_t *p, bool paused)
{
	if (p->paused == paused)
		return;
	p->paused = paused;
	if (paused) {
		close_servers_with(&p->sv_idle, "pause mode"); /* PgBouncer's words */
		close_servers_with(&p->sv_connecting, "pause mode");
	} else {
		pool_kick(p);
	}
}

static int by_unused_since(const void *a, const void *b)
{
	double x = (*(pool_t *const *)a)->unused_since, y = (*(pool_t *const *)b)->unused_since;
	return (x > y) - (x < y);
}

/* After a reload: every unused pool goes to the list the new timeouts and databases say,
 * in unused_since order. */
static void resettle_unused(void)
{
	int n = unused_auto.count + unused_other.count + kept.count, k = 0;
	pool_t **v = malloc((size_t)(n ? n : 1) * sizeof(*v));
	if (!v) {
		log_error("out of memory sorting the unused pools: they are freed as before the "
			  "reload");
		return;
	}
	struct list_head *lists[] = {&unused_auto, &unused_other, &kept};
	for (int l = 0; l < 3; l++) {
		struct list *pos, *tmp;
		list_for_each_safe(pos, tmp, lists[l])
		{
			v[k++] = list_entry(pos, pool_t, use_node);
		}
	}
	qsort(v, (size_t)n, sizeof(*v), by_unused_since);
	for (int i = 0; i < n; i++) {
		use_unlink(v[i]);
		if (v[i]->gone)
			use_insert_sorted(v[i], USE_OTHER);
		else
			use_move(v[i], unused_list_of(v[i]), NULL);
	}
	free(v);
}

/* P's libpq parameters (P has them) made again from DB and the secrets in force: true
 * when they changed (P then forgets which host proved good). Without memory they stay,
 * logged with WHAT was being done. */
static bool remake_params(pool_t *p, const struct cfg_db *db, const char *what)
{
	const char **kw = p->kw, **val = p->val;
	unsigned tls_gen = p->tls_gen;
	p->kw = p->val = NULL;
	if (!build_params(p, db)) {
		log_error("pool %s/%s: out of memory %s: its connection settings stay", p->dbname,
			  p->user, what);
		free_params(p->kw, p->val);
		p->kw = kw;
		p->val = val;
		p->tls_gen = tls_gen;
		return false;
	}
	bool changed = !same_params(kw, val, p->kw, p->val) || tls_gen != p->tls_gen;
	free_params(kw, val);
	if (changed)
		p->lb_proven = false;
	return changed;
}

void pool_secret_changed(const char *user)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pools)
	{
		pool_t *p = list_entry(pos, pool_t, node);
		const struct cfg_db *db = p->kw ? cfg_find_db(rt->cfg, p->dbname) : NULL;
		if (!db || strcmp(server_user(p, db), user) != 0)
			continue; /* unused (made with the secret when next used), or another user's */
		if (remake_params(p, db, "taking the user's new secret"))
			log_info("pool %s/%s: the server login secret changed: new servers use it",
				 p->dbname, p->user);
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
			if (!p->gone)
				log_info("pool %s/%s: database no longer configured: no new logins; its "
					 "sessions go on, and the pool is freed when they are over",
					 p->dbname, p->user);
			p->gone = true;
			settle(p);
			continue;
		}
		p->gone = false;
		p->auto_db = is_auto(db);
		pool_settings(p, db);
		settle(p); /* min_pool_size may have changed */
		if (!p->kw)
			continue; /* unused: made from the new entry when next used */
		if (remake_params(p, db, "applying the new configuration")) {
			log_info("pool %s/%s: connection settings changed: servers are replaced as "
				 "they become idle", p->dbname, p->user);
			/* PgBouncer's words for it, which tools look for */
			pool_renew_servers(p, "database configuration changed");
		}
		pool_kick(p); /* limits may have grown */
	}
	resettle_unused();
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
	list_for_each_safe(pos, tmp, &in_use) /* an unused pool has no server */
	{
		pool_t *q = list_entry(pos, pool_t, use_node);
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
	list_for_each_safe(pos, tmp, &in_use) /* an unused pool has no waiting client */
	{
		pool_t *q = list_entry(pos, pool_t, use_node);
		if (q != p && !list_empty(&q->waiting) && (same_db(p, q) || same_user(p, q)))
			pool_kick(q);
	}
}

static void retry_cb(evutil_socket_t fd, short what, void *arg) { pool_kick(arg); }

/* Keeps SQLSTATE and MSG of P's last failed connect for the clients coming during its
 * back-off (pool_request); without memory they wait for the next attempt instead. */
static void keep_failure(pool_t *p, const char *sqlstate, const char *msg)
{
	size_t n = strlen(msg) + 1;
	struct pool_failure *f = realloc(p->failure, sizeof(*f) + n);
	if (!f) {
		free(p->failure);
		p->failure = NULL;
		return;
	}
	snprintf(f->sqlstate, sizeof(f->sqlstate), "%s", sqlstate);
	memcpy(f->msg, msg, n);
	p->failure = f;
}

/* Arms P's back-off timer to kick its waiting clients SECONDS from now (made on first
 * use; without memory the tick kicks them within a second). */
static void arm_retry(pool_t *p, double seconds)
{
	if (!p->retry_ev && !(p->retry_ev = evtimer_new(rt->base, retry_cb, p)))
		return;
	if (evtimer_pending(p->retry_ev, NULL))
		return;
	struct timeval tv = {(time_t)seconds,
			     (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
	evtimer_add(p->retry_ev, &tv);
}

/* Opens connections while WANT says more are needed, the limits allow and no back-off
 * is running. */
static void grow(pool_t *p, int want, double now)
{
	if (now < p->retry_at) {
		if (!list_empty(&p->waiting) || !list_empty(&p->tasks))
			arm_retry(p, p->retry_at - now); /* it kicks the pool when the back-off ends */
		return;
	}
	int limit = pool_limit(p, now);
	while (want > 0 && pool_server_count(p) < limit && shared_room(p)) {
		/* load_balance_hosts=disable: a host not known to work is tried by one at a time,
		 * so that a failure there moves the next connection on (PgBouncer tries one) */
		if (p->lb_sticky && p->lb_hosts > 0 && !p->lb_proven &&
		    p->sv_connecting.count > p->repl_connecting)
			return;
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
		p->traffic->stats.wait_time_us += waited_us; /* it has a server */
	}
	struct metrics_pool *m = rt->metrics_on ? pool_metrics(p) : NULL;
	if (m)
		metrics_observe(&m->wait, waited_us);
	p->traffic->stats.assignments++;
	client_set_state(c, CL_ACTIVE);
}

void pool_replication_ready(pool_t *p, client_t *c) { hand_over(p, c); }

/* Gives C an idle server of P that needs no check now (a stale one leaves the idle list
 * to be checked and comes back): the one idle the shortest time (LIFO, as PgBouncer: few
 * servers carry the load, stay warm, and the rest reach server_idle_timeout), or with
 * server_round_robin the one idle the longest. False if there is none. */
static server_t *idle_server(pool_t *p)
{
	bool fifo = rt->cfg->server_round_robin;
	while (!list_empty(&p->sv_idle)) {
		server_t *s = list_entry(fifo ? list_first(&p->sv_idle) : list_last(&p->sv_idle),
					 server_t, node);
		if (!server_check_if_stale(s))
			return s;
	}
	return NULL;
}

static bool hand_idle(pool_t *p, client_t *c)
{
	server_t *s = idle_server(p);
	if (!s)
		return false;
	hand_over(p, c);
	server_assign(s, c);
	return true;
}

/* Room in P for replication client C's own server: under the pool's limit and under
 * max_db_connections / max_user_connections (shared_room), idle servers of P closed to
 * make it (PgBouncer evicts them for a replication client too). Closing one kicks P,
 * which may have started C's server meanwhile: false then, as when there is no room. */
static bool replication_room(pool_t *p, client_t *c)
{
	double now = rt_now();
	if (now < p->retry_at) {
		arm_retry(p, p->retry_at - now); /* it kicks the pool when the back-off ends */
		return false;
	}
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
	if (rt->shutting_down || (rt->suspended && !rt->quiescing) || p->paused)
		return;
	server_t *s;
	while (!list_empty(&p->tasks) && (s = idle_server(p))) {
		struct server_task *t = list_entry(list_first(&p->tasks), struct server_task, node);
		list_del(&p->tasks, &t->node);
		server_run_task(s, t);
	}
	if (__builtin_expect(p->repl_waiting > 0, 0))
		serve_in_order(p, true);
	else
		while (!list_empty(&p->waiting) &&
		       hand_idle(p, list_entry(list_first(&p->waiting), client_t, node)))
			;
	/* replication clients and their servers aside: each is the other's */
	int want = p->waiting.count - p->repl_waiting + p->tasks.count -
		   (p->sv_connecting.count - p->repl_connecting);
	/* the common cases, every waiter served or the pool at its largest, need no clock */
	if (want > 0 && pool_server_count(p) < p->pool_size + p->reserve_pool_size)
		grow(p, want, rt_now());
	if (__builtin_expect(p->repl_waiting > 0, 0))
		serve_in_order(p, false); /* room left after those ahead of them */
}

void pool_request(pool_t *p, client_t *c)
{
	if (!rt->shutting_down && (!rt->suspended || rt->quiescing) && !p->paused &&
	    list_empty(&p->waiting) &&
	    !c->replication &&
	    hand_idle(p, c))
		return;
	if (p->failure && !p->paused && pool_server_count(p) == p->sv_connecting.count &&
	    rt_now() < p->retry_at) {
		client_disconnect(c, p->failure->sqlstate,
				  "server login has been failing%s%s (server_login_retry)",
				  p->failure->msg[0] ? ", cached error: " : "", p->failure->msg);
		return;
	}
	client_set_state(c, CL_WAITING);
	c->since = rt_now();
	c->wait_notified = false;
	pool_kick(p);
}

void pool_run_task(pool_t *p, struct server_task *t)
{
	list_init(&t->node);
	t->server = NULL;
	if (p->failure && !p->paused && pool_server_count(p) == p->sv_connecting.count &&
	    rt_now() < p->retry_at) {
		t->failed(t->arg, p->failure->sqlstate, p->failure->msg);
		return;
	}
	list_append(&p->tasks, &t->node);
	pool_serve_waiting(p);
}

void pool_cancel_task(pool_t *p, struct server_task *t)
{
	if (list_linked(&t->node)) {
		list_del(&p->tasks, &t->node);
	} else if (t->server) {
		t->server->task = NULL;
		t->server = NULL;
	}
}

bool pool_connect_ok(pool_t *p, char *const *params)
{
	struct pool_traffic *t = pool_traffic(p);
	if (!t)
		return false;
	end_backoff(p);
	struct pool_welcome *w = &t->welcome;
	for (int i = 0; i < SERVER_NPARAMS; i++) {
		free(w->params[i]);
		w->params[i] = params[i] ? strdup(params[i]) : NULL;
		if (params[i] && !w->params[i])
			return true; /* out of memory: params_known stays as it was */
	}
	pbuf_reset(&w->msgs);
	for (int i = 0; i < SERVER_NPARAMS; i++) {
		w->at[i] = (uint32_t)w->msgs.len;
		if (w->params[i])
			proto_build_param_status(&w->msgs, server_param_names[i], w->params[i]);
	}
	w->at[SERVER_NPARAMS] = (uint32_t)w->msgs.len;
	p->params_known = !w->msgs.failed;
	return true;
}

/* Servers of P connected with its current settings: an older one (RECONNECT, a reload)
 * is closed when released, so no waiting client will get it. */
static int current_servers(const pool_t *p)
{
	const struct list_head *lists[] = {&p->sv_active, &p->sv_idle, &p->sv_housekeeping};
	int n = 0;
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		for (const struct list *pos = lists[i]->node.next; pos != &lists[i]->node;
		     pos = pos->next)
			n += list_entry(pos, server_t, node)->conn_gen == p->conn_gen;
	return n;
}

void pool_connect_failed(pool_t *p, const char *sqlstate, const char *msg)
{
	/* Back off exponentially from 50 ms up to server_login_retry, so a PostgreSQL that
	 * comes back is used again within that cap. */
	double cap = rt->cfg->server_login_retry, delay = 0.05;
	if (p->failed_in_row < UINT8_MAX)
		p->failed_in_row++;
	for (int i = 1; i < p->failed_in_row && delay < cap; i++)
		delay *= 2;
	if (delay > cap)
		delay = cap;
	if (delay > 0) {
		p->retry_at = rt_now() + delay; /* grow arms the timer for the waiters */
		keep_failure(p, sqlstate, msg);
	}
	/* Waiters keep waiting while a server may still come: one connecting, or one in use
	 * that will be released. With none, a login the server refused would be refused
	 * again: they learn why now; after a failure on the way (unreachable, timed out, TLS,
	 * the server starting up) the next attempt may succeed: they wait for it, up to
	 * server_login_retry, or as PgBouncer until query_wait_timeout in a file with a
	 * [pgbouncer] section (a fix to the settings, a SET or RELOAD, then serves them). A
	 * refusal reaches them as it came, with its SQLSTATE (PgBouncer's kill_pool_logins).
	 * A server made before RECONNECT or a reload changed the settings does not count: it
	 * is closed when released (PgBouncer's kill_pool_logins on a pool no longer
	 * welcome_msg_ready). */
	bool refused = strcmp(sqlstate, "08006") != 0 && strcmp(sqlstate, "57P03") != 0;
	if (current_servers(p) == 0 && (refused || !rt->cfg->pgbouncer_ini)) {
		double now = rt_now();
		/* tasks are served first; they wait for the next attempt as long as their
		 * owner lets them (a login: client_login_timeout) unless the login was refused */
		while (refused && p->tasks.count > p->sv_connecting.count - p->repl_connecting) {
			struct server_task *t =
			    list_entry(list_first(&p->tasks), struct server_task, node);
			list_del(&p->tasks, &t->node);
			t->failed(t->arg, sqlstate, msg);
		}
		/* replication clients wait for their own connection, which tells them its fate */
		while (p->waiting.count - p->repl_waiting >
		       p->sv_connecting.count - p->repl_connecting) {
			struct list *pos = list_first(&p->waiting);
			while (list_entry(pos, client_t, node)->replication)
				pos = pos->next;
			client_t *c = list_entry(pos, client_t, node);
			if (!refused && now - c->since < cap)
				break; /* FIFO: the rest waited less */
			if (refused && *msg) /* the refusal as the server worded it (PgBouncer) */
				client_disconnect(c, sqlstate, "%s", msg);
			else
				client_disconnect(c, sqlstate, "server connection failed%s%s",
						  *msg ? ": " : "", msg);
		}
	}
	if ((!list_empty(&p->waiting) || !list_empty(&p->tasks)) && delay > 0)
		arm_retry(p, delay); /* then a new connection is tried for them */
}

/* ---- freeing unused pools ------------------------------------------------------------ */

/* Frees unused P (WHY logged). False when its listener connection's job still runs
 * (notify.c): tried again at the next tick. */
static bool free_unused(pool_t *p, const char *why, double now)
{
	if (notify_pool_busy(p))
		return false;
	if (strcmp(why, "pool_idle_timeout") == 0) /* PgBouncer's words, which alerts look for */
		log_info("cleaning up idle pool for user %s on db %s because: pool idle timeout "
			 "(pool_idle_timeout; unused for %.0f s)", p->user, p->dbname,
			 now - p->unused_since);
	else
		log_info("pool %s/%s freed: %s (unused for %.0f s)", p->dbname, p->user, why,
			 now - p->unused_since);
	pool_free(p);
	return true;
}

enum db_verdict { DB_FREE, DB_WAIT, DB_IN_USE };

/* Whether every pool of P's database has been unused for AGE seconds (DB_FREE), one is
 * in use or unused for less (DB_IN_USE), or one cannot be freed just now (DB_WAIT). */
static enum db_verdict db_unused_for(const pool_t *p, double now, double age)
{
	enum db_verdict v = DB_FREE;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pools)
	{
		const pool_t *q = list_entry(pos, pool_t, node);
		if (!same_db(p, q))
			continue;
		if (q->use_list == USE_BUSY || now - q->unused_since < age)
			return DB_IN_USE;
		if (notify_pool_busy(q))
			v = DB_WAIT;
	}
	return v;
}

/* Frees every pool of P's database (P included, none busy): an auto database goes with
 * its pools, in one log line (PgBouncer's words). */
static void free_db(pool_t *p)
{
	int n = 0;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pools)
	{
		pool_t *q = list_entry(pos, pool_t, node);
		if (q != p && same_db(p, q)) {
			pool_free(q);
			n++;
		}
	}
	log_info("dropping database '%s' (%d pool%s) as it is an inactive auto-database: "
		 "autodb_idle_timeout (%gs)", p->dbname, n + 1, n ? "s" : "",
		 rt->cfg->autodb_idle_timeout);
	pool_free(p);
}

/* Frees, from the heads of the unused lists, the pools their timeouts say (each list is
 * in unused_since order, so the walk stops at the first pool not due). */
static void free_due(double now)
{
	double tp = rt->cfg->pool_idle_timeout, ta = rt->cfg->autodb_idle_timeout;
	struct list *pos = unused_other.node.next;
	while (pos != &unused_other.node) {
		pool_t *p = list_entry(pos, pool_t, use_node);
		pos = pos->next;
		if (p->gone)
			free_unused(p, "its database is no longer configured", now);
		else if (tp > 0 && now - p->unused_since >= tp)
			free_unused(p, "pool_idle_timeout", now);
		else
			break;
	}
	/* a "*" database's pool: pool_idle_timeout frees it alone, autodb_idle_timeout with
	 * its whole database */
	double first = ta > 0 && (tp <= 0 || ta < tp) ? ta : tp;
	pos = unused_auto.node.next;
	while (pos != &unused_auto.node) {
		pool_t *p = list_entry(pos, pool_t, use_node);
		pos = pos->next;
		double age = now - p->unused_since;
		if (first <= 0 || age < first)
			break;
		if (tp > 0 && age >= tp) {
			free_unused(p, "pool_idle_timeout", now);
			continue;
		}
		switch (db_unused_for(p, now, ta)) {
		case DB_FREE:
			free_db(p);
			pos = unused_auto.node.next; /* it may have freed the next ones */
			break;
		case DB_WAIT:
			break;
		case DB_IN_USE:
			/* freed with its database when the pool in use has been unused that long
			 * (or by pool_idle_timeout): off this list until then */
			if (tp > 0)
				use_insert_sorted(p, USE_OTHER);
			else
				use_move(p, USE_KEPT, NULL);
			break;
		}
	}
}

/* A database with a forced user and a min_pool_size gets its pool without waiting for a
 * client (PgBouncer's janitor does so too), so the tick opens its servers. */
static void make_forced_pools(void)
{
	const struct config *cfg = rt->cfg;
	for (int i = 0; i < cfg->ndbs; i++) {
		const struct cfg_db *db = &cfg->dbs[i];
		const char *forced = cfg_db_param(db, "user");
		int min = db->min_pool_size >= 0 ? db->min_pool_size : cfg->min_pool_size;
		if (!forced || min <= 0 || is_auto(db) || find(db->name, forced))
			continue;
		if (!pool_get(db->name, forced, db))
			log_error("pool %s/%s: out of memory: min_pool_size waits for a client",
				  db->name, forced);
	}
}

/* query_wait_notify: P's clients queued that long are told so, once per wait. The FIFO
 * is in the order they started waiting, so the walk stops at the first one not due. */
static void notify_waiting(pool_t *p, double now)
{
	double limit = rt->cfg->query_wait_notify;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &p->waiting)
	{
		client_t *c = list_entry(pos, client_t, node);
		if (now - c->since < limit)
			break;
		if (!c->wait_notified)
			client_wait_notify(c);
	}
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	double now = rt_now();
	client_tick(now);
	int servers = 0;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &in_use) /* an unused pool has no server */
	{
		servers += pool_server_count(list_entry(pos, pool_t, use_node));
	}
	sdnotify_status("%d client(s), %d server connection(s)%s", client_count(), servers,
			rt->shutting_down ? ", shutting down" : "");
	if (!rt->shutting_down && !rt->suspended)
		make_forced_pools();
	list_for_each_safe(pos, tmp, &in_use)
	{
		pool_t *p = list_entry(pos, pool_t, use_node);
		double qwt = client_wait_limit(p);
		while (qwt > 0 && !list_empty(&p->waiting)) {
			client_t *c = list_entry(list_first(&p->waiting), client_t, node);
			if (now - c->since < qwt)
				break; /* FIFO: the rest waited less */
			client_wait_timeout(c);
		}
		if (rt->cfg->query_wait_notify > 0)
			notify_waiting(p, now);
		server_expire_idle(p, now);
		/* min_pool_size: kept while a client is there, or always for a forced user */
		if (!p->paused && !p->gone &&
		    (p->forced || p->clients.count + p->waiting.count > 0))
			grow(p, p->min_pool_size - pool_server_count(p), now);
		if (!list_empty(&p->waiting))
			pool_kick(p); /* the reserve may have opened */
	}
	free_due(now);
}

bool pool_first_of_db(const pool_t *p)
{
	for (const pool_t *q = pool_next(NULL); q != p; q = pool_next(q))
		if (same_db(p, q))
			return false;
	return true;
}

#define SHUTDOWN_MSG "server shutting down" /* PgBouncer's words */

void pool_shutdown_begin(void)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &in_use)
	{
		pool_t *p = list_entry(pos, pool_t, use_node);
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
	list_for_each_safe(pos, tmp, &in_use)
	{
		pool_close_all(list_entry(pos, pool_t, use_node), "57P01", SHUTDOWN_MSG);
	}
}

void pool_free_all(void)
{
	event_del(&tick_ev);
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pools)
	{
		pool_free(list_entry(pos, pool_t, node));
	}
	hash_free(&table);
}
