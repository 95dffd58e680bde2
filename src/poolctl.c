/* Owns the admin state of databases (paused, disabled) and the operations PAUSE, RESUME,
 * DISABLE, ENABLE, KILL and RECONNECT on their pools, and SUSPEND (rt->suspended). A pool
 * reads its paused flag (pool->paused), set here for the pools that exist and at creation
 * for new ones. */
#include "poolctl.h"

#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "list.h"
#include "listener.h"
#include "log.h"
#include "pool.h"
#include "takeover.h"
#include "runtime.h"

struct db_state {
	char *name;
	bool paused;
	bool disabled;
};

static struct runtime *rt;
static struct db_state *dbs;
static int ndbs;
static bool all_paused;

void poolctl_init(struct runtime *r) { rt = r; }

void poolctl_free(void)
{
	for (int i = 0; i < ndbs; i++)
		free(dbs[i].name);
	free(dbs);
	dbs = NULL;
	ndbs = 0;
}

static struct db_state *find(const char *db)
{
	for (int i = 0; i < ndbs; i++)
		if (strcmp(dbs[i].name, db) == 0)
			return &dbs[i];
	return NULL;
}

static struct db_state *find_or_add(const char *db)
{
	struct db_state *d = find(db);
	if (d)
		return d;
	struct db_state *n = realloc(dbs, sizeof(*dbs) * (size_t)(ndbs + 1));
	if (!n)
		return NULL;
	dbs = n;
	char *name = strdup(db);
	if (!name)
		return NULL;
	dbs[ndbs] = (struct db_state){.name = name};
	return &dbs[ndbs++];
}

bool poolctl_paused(const char *db)
{
	const struct db_state *d = db ? find(db) : NULL;
	return all_paused || (d && d->paused);
}

bool poolctl_disabled(const char *db)
{
	const struct db_state *d = find(db);
	return d && d->disabled;
}

static bool matches(const pool_t *p, const char *db) { return !db || strcmp(p->dbname, db) == 0; }

/* Brings every pool's paused flag in line with the state. */
static void apply(void)
{
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p))
		pool_set_paused(p, poolctl_paused(p->dbname));
}

bool poolctl_pause(const char *db)
{
	if (!db) {
		all_paused = true;
	} else {
		struct db_state *d = find_or_add(db);
		if (!d)
			return false;
		d->paused = true;
	}
	log_info("PAUSE %s", db ? db : "(all databases)");
	apply();
	return true;
}

bool poolctl_pause_done(const char *db)
{
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p))
		if (matches(p, db) && p->paused && pool_server_count(p) > 0)
			return false;
	return true;
}

void poolctl_resume(const char *db)
{
	if (!db)
		all_paused = false;
	for (int i = 0; i < ndbs; i++)
		if (!db || strcmp(dbs[i].name, db) == 0)
			dbs[i].paused = false;
	log_info("RESUME %s", db ? db : "(all databases)");
	apply();
}

bool poolctl_any_paused(void)
{
	for (int i = 0; i < ndbs; i++)
		if (dbs[i].paused)
			return true;
	return all_paused;
}

void poolctl_suspend(void)
{
	log_info("SUSPEND: no hand-outs, no new connections until RESUME");
	rt->suspended = true;
	listener_hold(true);
}

bool poolctl_suspend_done(void)
{
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p))
		if (p->pool_mode != POOL_SESSION &&
		    (p->sv_active.count > 0 || p->sv_housekeeping.count > 0))
			return false;
	return true;
}

void poolctl_unsuspend(void)
{
	if (!rt->suspended)
		return;
	log_info("RESUME after SUSPEND");
	takeover_thaw(); /* an online restart that did not end in SHUTDOWN */
	rt->suspended = false;
	listener_hold(false);
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p))
		pool_kick(p);
}

bool poolctl_suspended(void) { return rt->suspended; }

bool poolctl_disable(const char *db)
{
	struct db_state *d = find_or_add(db);
	if (!d)
		return false;
	d->disabled = true;
	log_info("DISABLE %s: new logins refused", db);
	return true;
}

void poolctl_enable(const char *db)
{
	struct db_state *d = find(db);
	if (d)
		d->disabled = false;
	log_info("ENABLE %s", db);
}

bool poolctl_kill(const char *db)
{
	if (!poolctl_pause(db))
		return false;
	log_info("KILL %s: closing its clients and servers", db);
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p))
		if (matches(p, db))
			pool_close_all(p, "57P01", "database removed");
	return true;
}

void poolctl_reconnect(const char *db)
{
	log_info("RECONNECT %s", db ? db : "(all databases)");
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		if (!matches(p, db))
			continue;
		pool_renew_servers(p, "database configuration changed"); /* PgBouncer's words */
		pool_kick(p);
	}
}

bool poolctl_close_done(const char *db)
{
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p))
		if (matches(p, db) && pool_old_servers(p) > 0)
			return false;
	return true;
}
