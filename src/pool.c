/* Owns the pools: one per (database, user), created on first login. A pool builds the
 * libpq parameters of its servers once, keeps its clients and servers on per-state
 * lists, hands idle servers to waiting clients in FIFO order and opens connections
 * while clients wait and the pool has room. */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "runtime.h"
#include "server.h"

static struct runtime *rt;
static struct list_head pools;

void pool_init(struct runtime *r)
{
	rt = r;
	list_head_init(&pools);
}

static bool has_kw(const struct cfg_db *db, const char *kw) { return cfg_db_param(db, kw) != NULL; }

static void pool_free(pool_t *p)
{
	if (p->kw) {
		for (int i = 0; p->kw[i]; i++) {
			free((char *)p->kw[i]);
			free((char *)p->val[i]);
		}
	}
	free(p->kw);
	free(p->val);
	free(p->dbname);
	free(p->user);
	free(p);
}

/* Builds the libpq parameters: the entry's conninfo, then what it leaves out — dbname
 * (the name asked for), user (the client's), password (the user's plain secret in the
 * auth_file; otherwise libpq's own passfile rules apply), fallback_application_name. */
static bool build_params(pool_t *p, const struct cfg_db *db)
{
	int n = 0;
	while (db->kw[n])
		n++;
	p->kw = calloc((size_t)n + 5, sizeof(char *));
	p->val = calloc((size_t)n + 5, sizeof(char *));
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
	const char *extra[][2] = {
		{"dbname", has_kw(db, "dbname") ? NULL : p->dbname},
		{"user", has_kw(db, "user") ? NULL : p->user},
		{"password", password},
		{"fallback_application_name", "pgcoro"},
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
	return true;
}

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
	p->db = db;
	p->pool_size = db->pool_size > 0 ? db->pool_size : rt->cfg->default_pool_size;
	const struct cfg_user *u = cfg_find_user(rt->cfg, user);
	if (u && u->pool_mode != POOL_MODE_UNSET)
		p->pool_mode = u->pool_mode;
	else if (db->pool_mode != POOL_MODE_UNSET)
		p->pool_mode = db->pool_mode;
	else
		p->pool_mode = rt->cfg->pool_mode;
	list_head_init(&p->waiting);
	list_head_init(&p->active);
	list_head_init(&p->idle);
	list_head_init(&p->sv_connecting);
	list_head_init(&p->sv_idle);
	list_head_init(&p->sv_active);
	list_head_init(&p->sv_housekeeping);
	list_append(&pools, &p->node);
	log_info("pool %s/%s created: pool_size=%d pool_mode=%s", p->dbname, p->user, p->pool_size,
		 cfg_pool_mode_name(p->pool_mode));
	return p;
}

int pool_server_count(const pool_t *p)
{
	return p->sv_connecting.count + p->sv_idle.count + p->sv_active.count +
	       p->sv_housekeeping.count;
}

void pool_kick(pool_t *p)
{
	if (rt->shutting_down)
		return;
	while (!list_empty(&p->waiting) && !list_empty(&p->sv_idle)) {
		client_t *c = list_entry(list_first(&p->waiting), client_t, node);
		server_t *s = list_entry(list_first(&p->sv_idle), server_t, node);
		client_set_state(c, CL_ACTIVE);
		server_assign(s, c);
	}
	int uncovered = p->waiting.count - p->sv_connecting.count;
	while (uncovered > 0 && pool_server_count(p) < p->pool_size) {
		if (!server_connect(p)) {
			log_error("pool %s/%s: out of memory starting a connection", p->dbname, p->user);
			break;
		}
		uncovered--;
	}
}

void pool_connect_failed(pool_t *p, const char *msg)
{
	/* Waiters keep waiting while a server may still come: one connecting, or one in use
	 * that will be released. With none, nothing can serve them: they learn why now. */
	if (p->sv_active.count + p->sv_idle.count + p->sv_housekeeping.count > 0)
		return;
	while (p->waiting.count > p->sv_connecting.count) {
		client_t *c = list_entry(list_first(&p->waiting), client_t, node);
		client_disconnect(c, "08006", "server connection failed: %s", msg);
	}
}

static void close_clients(struct list_head *h)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, h)
	{
		client_t *c = list_entry(pos, client_t, node);
		client_disconnect(c, "57P01", "terminating connection: pgcoro is shutting down");
	}
}

static void close_servers(struct list_head *h)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, h)
	{
		server_t *s = list_entry(pos, server_t, node);
		server_disconnect(s, "shutting down");
	}
}

void pool_shutdown_all(void)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pools)
	{
		pool_t *p = list_entry(pos, pool_t, node);
		close_clients(&p->waiting);
		close_clients(&p->active);
		close_clients(&p->idle);
		close_servers(&p->sv_connecting);
		close_servers(&p->sv_idle);
		close_servers(&p->sv_active);
		close_servers(&p->sv_housekeeping);
	}
}

void pool_free_all(void)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pools)
	{
		pool_t *p = list_entry(pos, pool_t, node);
		list_del(&pools, &p->node);
		pool_free(p);
	}
}
