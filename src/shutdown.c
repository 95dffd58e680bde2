/* Owns the orderly stop (see shutdown.h), as PgBouncer's: SIGINT and the console's
 * SHUTDOWN WAIT_FOR_SERVERS wait for the servers in use, SIGTERM and SHUTDOWN
 * WAIT_FOR_CLIENTS for the clients; the shutdown_timeout timer, a second signal or
 * SIGQUIT cuts it short; main's teardown then closes what is left. */
#include "shutdown.h"

#include <event2/event.h>

#include "client.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "pool.h"
#include "poolctl.h"
#include "sdnotify.h"

static struct runtime *rt;
static struct event *timeout_ev;

void shutdown_init(struct runtime *r) { rt = r; }

static void stop_now(const char *why)
{
	log_info("shutdown: %s: closing %d client(s) now", why, client_count());
	event_base_loopbreak(rt->base);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	stop_now("shutdown_timeout reached");
}

void shutdown_now(const char *why)
{
	if (rt->shutdown == SHUTDOWN_NONE)
		sdnotify_stopping();
	stop_now(why);
}

void shutdown_begin(enum rt_shutdown mode)
{
	if (rt->shutdown != SHUTDOWN_NONE) {
		stop_now("second signal");
		return;
	}
	rt->shutdown = mode;
	log_info("shutdown: no new connections; waiting for %s (%d client(s))",
		 mode == SHUTDOWN_SERVERS ? "the servers in use to be released"
					  : "the clients to leave",
		 client_count());
	sdnotify_stopping();
	poolctl_unsuspend(); /* a SUSPEND would hold the clients it waits for */
	listener_stop_tcp();
	double limit = rt->cfg->shutdown_timeout;
	if (limit > 0) {
		timeout_ev = evtimer_new(rt->base, timeout_cb, NULL);
		struct timeval tv = {(time_t)limit,
				     (suseconds_t)((limit - (double)(time_t)limit) * 1e6)};
		if (!timeout_ev || evtimer_add(timeout_ev, &tv) != 0)
			log_error("shutdown: cannot arm shutdown_timeout: waiting without a limit");
	}
	if (mode == SHUTDOWN_SERVERS) {
		rt->shutting_down = true;
		pool_shutdown_begin();
	}
	shutdown_check();
}

void shutdown_check(void)
{
	if (rt->shutdown == SHUTDOWN_NONE)
		return;
	int left = client_count();
	if (rt->shutdown == SHUTDOWN_SERVERS) /* only the clients of servers keep it up */
		left -= client_console_clients()->count + client_login_clients()->count;
	if (left == 0)
		event_base_loopbreak(rt->base);
}

void shutdown_free(void)
{
	if (timeout_ev)
		event_free(timeout_ev);
	timeout_ev = NULL;
}
