/* Owns the daemon's signal handlers (see signals.h): each one logs and calls the module
 * that does the work (shutdown, reload, poolctl), and whether a SIGUSR1 pause is still
 * waiting for busy servers. */
#include "signals.h"

#include <signal.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "log.h"
#include "poolctl.h"
#include "reload.h"
#include "runtime.h"
#include "shutdown.h"

static struct runtime *rt;
static bool pause_waits; /* SIGUSR1 paused everything and servers are still left */

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	log_info("received signal %d (%s)", (int)sig, strsignal((int)sig));
	shutdown_begin(sig == SIGINT ? SHUTDOWN_SERVERS : SHUTDOWN_CLIENTS);
}

static void on_quit(evutil_socket_t sig, short what, void *arg)
{
	shutdown_now("SIGQUIT: immediate shutdown");
}

static void on_hup(evutil_socket_t sig, short what, void *arg) { reload_start(); }

static void on_pause(evutil_socket_t sig, short what, void *arg)
{
	if (poolctl_paused(NULL)) {
		log_info("SIGUSR1: all databases are paused already");
		return;
	}
	log_info("SIGUSR1: pausing all databases");
	if (!poolctl_pause(NULL)) {
		log_error("SIGUSR1: out of memory: not paused");
		return;
	}
	pause_waits = true;
	signals_poll();
}

static void on_resume(evutil_socket_t sig, short what, void *arg)
{
	if (rt->shutdown != SHUTDOWN_NONE) {
		log_info("got SIGUSR2 while shutting down, ignoring"); /* PgBouncer's words */
		return;
	}
	log_info("SIGUSR2: resuming all databases");
	pause_waits = false;
	poolctl_unsuspend();
	poolctl_resume(NULL);
}

static const struct {
	int signo;
	event_callback_fn fn;
} handlers[] = {
	{SIGTERM, on_stop},
	{SIGINT, on_stop},
	{SIGQUIT, on_quit},
	{SIGHUP, on_hup},
	{SIGUSR1, on_pause},
	{SIGUSR2, on_resume},
};

#define NHANDLERS (sizeof(handlers) / sizeof(handlers[0]))

static struct event evs[NHANDLERS];
static size_t nadded; /* evs[0 .. nadded) are added */

void signals_init(struct runtime *r)
{
	rt = r;
	signal(SIGPIPE, SIG_IGN);
}

bool signals_start(void)
{
	for (; nadded < NHANDLERS; nadded++) {
		struct event *ev = &evs[nadded];
		if (evsignal_assign(ev, rt->base, handlers[nadded].signo, handlers[nadded].fn,
				    NULL) != 0 ||
		    evsignal_add(ev, NULL) != 0) {
			log_error("cannot handle signal %s", strsignal(handlers[nadded].signo));
			return false;
		}
	}
	return true;
}

void signals_poll(void)
{
	if (!pause_waits)
		return;
	if (!poolctl_paused(NULL)) {
		pause_waits = false; /* resumed (console RESUME) before it took effect */
		return;
	}
	if (!poolctl_pause_done(NULL))
		return;
	pause_waits = false;
	log_info("SIGUSR1: pause complete: no server left");
}

void signals_free(void)
{
	while (nadded > 0)
		event_del(&evs[--nadded]);
}
