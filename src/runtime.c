/* Owns the start of the runtime (runtime.h): its loop and executor, and every module
 * given the context in dependency order. main.c and the fuzz harnesses (tests/fuzz)
 * start the daemon's modules through this one sequence. */
#include "runtime.h"

#include <event2/event.h>

#include "authquery.h"
#include "client.h"
#include "config.h"
#include "console.h"
#include "executor.h"
#include "ldapauth.h"
#include "log.h"
#include "login.h"
#include "metrics.h"
#include "notify.h"
#include "pamauth.h"
#include "peers.h"
#include "pool.h"
#include "poolctl.h"
#include "prepared.h"
#include "relay.h"
#include "reload.h"
#include "server.h"
#include "shutdown.h"
#include "takeover.h"
#include "srvconnect.h"
#include "stats.h"

bool runtime_start(struct runtime *rt, const char *path)
{
	rt->base = event_base_new();
	if (!rt->base) {
		log_error("cannot create the event loop");
		return false;
	}
	ldapauth_init(); /* before any thread may check a password with LDAP */
	/* two threads at least: password checks take all but one (executor.h) */
	int threads = rt->cfg->executor_threads;
	rt->exec = exec_new(rt->base, threads < 2 ? 2 : threads);
	if (!rt->exec)
		return false;
	client_init(rt);
	login_init(rt);
	pamauth_init();
	authquery_init(rt);
	server_init(rt);
	srvconnect_init(rt);
	pool_init(rt);
	relay_init(rt);
	prep_init(rt);
	notify_init(rt);
	stats_init(rt);
	metrics_init(rt);
	poolctl_init(rt);
	console_init(rt);
	reload_init(rt, path);
	shutdown_init(rt);
	takeover_init(rt);
	peers_init(rt);
	return true;
}
