/* Owns the listening sockets: one per TCP address of listen_addr ("*" = every IPv4 and
 * IPv6 address; SO_REUSEPORT with so_reuseport, so several processes share the port) and
 * the unix socket UNIX_SOCKET_DIR/.s.PGSQL.PORT (its mode and group) —
 * or, when systemd passes listening sockets (socket activation), those instead; their
 * backlog and TCP_DEFER_ACCEPT. Accepted sockets get the tcp_* options and go to
 * client_accept. When accept fails for want of file descriptors or memory, every
 * listener pauses for ACCEPT_PAUSE_SEC (the pending connections wait in the kernel's
 * backlog) and one warning is logged per episode, not one per attempt. An online
 * restart (takeover.h) lists them, hands them over and adopts them. */
#include "listener.h"

#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <systemd/sd-daemon.h>

#include "client.h"
#include "config.h"
#include "log.h"
#include "runtime.h"
#include "sockopt.h"

#define MAX_LISTENERS 16
#define ACCEPT_PAUSE_SEC 1
#define DEFER_ACCEPT_SEC 45 /* tcp_defer_accept: PgBouncer's */

static const struct config *const *cfgp; /* the config in force (&rt->cfg) */
static struct evconnlistener *listeners[MAX_LISTENERS];
static int nlisteners;
static char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static struct event *resume_ev;   /* ends a pause of accepting */
static double paused_since;       /* rt_now() when the current episode began; 0 = none */
static unsigned pauses;           /* pauses in the current episode */

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	if (paused_since > 0) {
		log_info("accepting connections again after %.1f s (%u pauses)",
			 rt_now() - paused_since, pauses);
		paused_since = 0;
		pauses = 0;
	}
	sockopt_apply(fd, *cfgp);
	client_accept(fd, sa, salen);
}

static bool held; /* SUSPEND */

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	for (int i = 0; i < nlisteners && !held; i++)
		evconnlistener_enable(listeners[i]);
}

void listener_hold(bool hold)
{
	held = hold;
	for (int i = 0; i < nlisteners; i++) {
		if (hold)
			evconnlistener_disable(listeners[i]);
		else
			evconnlistener_enable(listeners[i]);
	}
}

void listener_stop_tcp(void)
{
	int kept = 0;
	for (int i = 0; i < nlisteners; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = evconnlistener_get_fd(listeners[i]);
		if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_UNIX)
			listeners[kept++] = listeners[i];
		else
			evconnlistener_free(listeners[i]);
	}
	nlisteners = kept;
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	bool lack = err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
	if (!lack) {
		log_warning("accept failed: %s", evutil_socket_error_to_string(err));
		return;
	}
	if (paused_since == 0) {
		paused_since = rt_now();
		log_warning("accept failed: %s (%d clients): not accepting for %d s at a time "
			    "until it succeeds; new connections wait in the backlog",
			    evutil_socket_error_to_string(err), client_count(), ACCEPT_PAUSE_SEC);
	}
	pauses++;
	if (!resume_ev) {
		log_error("accept failed: %s, and no timer to pause with",
			  evutil_socket_error_to_string(err));
		return;
	}
	for (int i = 0; i < nlisteners; i++)
		evconnlistener_disable(listeners[i]);
	struct timeval tv = {ACCEPT_PAUSE_SEC, 0};
	evtimer_add(resume_ev, &tv);
}

static bool add_listener(struct runtime *rt, int fd, const char *what)
{
	if (nlisteners == MAX_LISTENERS) {
		log_error("too many listen addresses (max %d)", MAX_LISTENERS);
		close(fd);
		return false;
	}
	evutil_make_socket_nonblocking(fd);
	sockopt_listen(fd, rt->cfg); /* before listen: accepted sockets inherit the buffers */
	struct evconnlistener *l = evconnlistener_new(
		rt->base, accept_cb, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
		rt->cfg->listen_backlog, fd);
	if (!l) {
		log_error("cannot listen on %s: %s", what, strerror(errno));
		close(fd);
		return false;
	}
	evconnlistener_set_error_cb(l, accept_error_cb);
	listeners[nlisteners++] = l;
	log_info("listening on %s", what);
	return true;
}

static bool listen_tcp(struct runtime *rt, const char *host, int port)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_ADDRCONFIG};
	struct addrinfo *res;
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	int rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, portstr, &hints, &res);
	if (rc != 0) {
		log_error("listen_addr \"%s\": %s", host, gai_strerror(rc));
		return false;
	}
	bool ok = true;
	for (struct addrinfo *ai = res; ai && ok; ai = ai->ai_next) {
		char name[NI_MAXHOST + 16], h[NI_MAXHOST];
		getnameinfo(ai->ai_addr, ai->ai_addrlen, h, sizeof(h), NULL, 0, NI_NUMERICHOST);
		snprintf(name, sizeof(name), ai->ai_family == AF_INET6 ? "[%s]:%d" : "%s:%d", h, port);
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			log_error("socket for %s: %s", name, strerror(errno));
			ok = false;
			break;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (rt->cfg->so_reuseport &&
		    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
			log_error("so_reuseport on %s: %s", name, strerror(errno));
			close(fd);
			ok = false;
			break;
		}
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (rt->cfg->tcp_defer_accept) {
			int secs = DEFER_ACCEPT_SEC;
			setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs));
		}
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			log_error("cannot bind %s: %s", name, strerror(errno));
			close(fd);
			ok = false;
			break;
		}
		ok = add_listener(rt, fd, name);
	}
	freeaddrinfo(res);
	return ok;
}

static bool listen_unix(struct runtime *rt, const char *dir, int port, int mode)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.%d", dir, port);
	if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
		log_error("unix socket path too long: %s/.s.PGSQL.%d", dir, port);
		return false;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("unix socket: %s", strerror(errno));
		return false;
	}
	/* A socket file nobody answers on is stale: remove it. One that answers is in use. */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		log_error("%s is in use by another process", sun.sun_path);
		close(fd);
		return false;
	}
	close(fd);
	unlink(sun.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		log_error("cannot bind %s: %s", sun.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	chmod(sun.sun_path, (mode_t)mode);
	snprintf(unix_path, sizeof(unix_path), "%s", sun.sun_path);
	const char *group = rt->cfg->unix_socket_group;
	if (group[0]) {
		struct group *gr = getgrnam(group);
		if (!gr || chown(sun.sun_path, (uid_t)-1, gr->gr_gid) != 0) {
			log_error("unix_socket_group \"%s\": %s", group,
				  gr ? strerror(errno) : "no such group");
			close(fd);
			return false;
		}
	}
	return add_listener(rt, fd, sun.sun_path);
}

/* Sockets passed by systemd (sd_listen_fds): used as they are; the unit decides the
 * addresses, and systemd keeps them open across restarts, so connections queue in the
 * kernel while pgcoro is down. Returns the number taken, or -1 on failure. */
static int listen_passed(struct runtime *rt)
{
	int n = sd_listen_fds(1);
	if (n < 0) {
		log_error("sd_listen_fds: %s", strerror(-n));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		char what[64];
		snprintf(what, sizeof(what), "socket %d passed by systemd", fd);
		if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
			log_error("%s is not a listening stream socket", what);
			return -1;
		}
		if (!add_listener(rt, fd, what))
			return -1;
	}
	return n;
}

bool listener_start(struct runtime *rt)
{
	const struct config *cfg = rt->cfg;
	cfgp = (const struct config *const *)&rt->cfg;
	resume_ev = evtimer_new(rt->base, resume_cb, NULL);
	int passed = listen_passed(rt);
	if (passed != 0) {
		if (passed > 0)
			log_info("socket activation: %d socket(s) from systemd; listen_addr, "
				 "listen_port and unix_socket_dir are not used", passed);
		return passed > 0;
	}
	char *addrs = strdup(cfg->listen_addr);
	if (!addrs)
		return false;
	/* the unix socket first: whoever sees the TCP port accept may use it at once */
	bool ok = true;
	if (cfg->unix_socket_dir[0])
		ok = listen_unix(rt, cfg->unix_socket_dir, cfg->listen_port, cfg->unix_socket_mode);
	char *save = NULL;
	for (char *a = strtok_r(addrs, ", ", &save); a && ok; a = strtok_r(NULL, ", ", &save))
		ok = listen_tcp(rt, a, cfg->listen_port);
	free(addrs);
	if (ok && nlisteners == 0) {
		log_error("no listener configured");
		ok = false;
	}
	return ok;
}

bool listener_each(bool (*fn)(int fd, const struct sockaddr *sa, void *arg), void *arg)
{
	for (int i = 0; i < nlisteners; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = evconnlistener_get_fd(listeners[i]);
		if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 || !fn(fd, (struct sockaddr *)&ss, arg))
			return false;
	}
	return true;
}

static bool same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
	return a->sa_family == AF_INET6 && x->sin6_port == y->sin6_port &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* Whether SA (a listening socket's address) is one CFG configures: its unix socket, or
 * an address of listen_addr on listen_port, resolved as listen_tcp does. */
static bool configured(const struct config *cfg, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_UNIX) {
		char path[sizeof(unix_path)];
		snprintf(path, sizeof(path), "%s/.s.PGSQL.%d", cfg->unix_socket_dir, cfg->listen_port);
		return cfg->unix_socket_dir[0] &&
		       strcmp(((const struct sockaddr_un *)sa)->sun_path, path) == 0;
	}
	char *addrs = strdup(cfg->listen_addr), *save = NULL, portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", cfg->listen_port);
	bool found = false;
	for (char *a = addrs ? strtok_r(addrs, ", ", &save) : NULL; a && !found;
	     a = strtok_r(NULL, ", ", &save)) {
		struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
					 .ai_flags = AI_PASSIVE | AI_ADDRCONFIG};
		struct addrinfo *res;
		if (getaddrinfo(strcmp(a, "*") == 0 ? NULL : a, portstr, &hints, &res) != 0)
			continue;
		for (struct addrinfo *ai = res; ai && !found; ai = ai->ai_next)
			found = same_addr(ai->ai_addr, sa);
		freeaddrinfo(res);
	}
	free(addrs);
	return found;
}

bool listener_adopt(struct runtime *rt, int fd)
{
	cfgp = (const struct config *const *)&rt->cfg;
	if (!resume_ev)
		resume_ev = evtimer_new(rt->base, resume_cb, NULL);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char what[NI_MAXHOST + 64];
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
		log_error("a listening socket handed over: getsockname: %s", strerror(errno));
		close(fd);
		return false;
	}
	if (!configured(rt->cfg, (struct sockaddr *)&ss)) {
		log_error("a listening socket handed over is on no address listen_addr, "
			  "listen_port and unix_socket_dir configure: refused");
		close(fd);
		return false;
	}
	if (ss.ss_family == AF_UNIX) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
		snprintf(unix_path, sizeof(unix_path), "%.*s", (int)sizeof(unix_path) - 1, un->sun_path);
		snprintf(what, sizeof(what), "%s (handed over)", unix_path);
	} else {
		char h[NI_MAXHOST], port[16];
		getnameinfo((struct sockaddr *)&ss, len, h, sizeof(h), port, sizeof(port),
			    NI_NUMERICHOST | NI_NUMERICSERV);
		snprintf(what, sizeof(what), ss.ss_family == AF_INET6 ? "[%s]:%s (handed over)"
								      : "%s:%s (handed over)", h, port);
	}
	return add_listener(rt, fd, what);
}

void listener_hand_over(void)
{
	unix_path[0] = 0; /* the socket file is the new process's now */
	listener_stop();
}

void listener_stop(void)
{
	if (resume_ev)
		event_free(resume_ev);
	resume_ev = NULL;
	for (int i = 0; i < nlisteners; i++)
		evconnlistener_free(listeners[i]);
	nlisteners = 0;
	if (unix_path[0]) {
		unlink(unix_path);
		unix_path[0] = 0;
	}
}
