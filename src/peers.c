/* Owns peering (peers.h): the peer id in the cancel keys, the routing of a CancelRequest
 * to this process or another peer, and the forwarding. A forward runs on the loop,
 * non-blocking (cancelreq_start: connect, 16 bytes, the wait for the close, all within
 * server_connect_timeout), to the addresses the peer's host resolved to when [peers] was
 * loaded (an executor job at start and at each reload, never one per request). At most
 * the peer's pool_size forwards to it are in flight, and FWD_MAX_ACTIVE to all peers; the
 * others wait in their peer's FIFO (all peers' together at most max_client_conn; beyond
 * that they are dropped). Drops and failures are logged at most once a second per reason,
 * then counted. The key layout is PgBouncer's: the peer id in the second and third bytes
 * of the 8-byte key (low byte first), and in the last byte's two lowest bits a TTL that
 * each forwarding decrements, so a request bounces between misconfigured peers at most
 * three times. */
#include "peers.h"

#include <event2/event.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "cancelreq.h"
#include "config.h"
#include "executor.h"
#include "log.h"
#include "runtime.h"

#define TTL_MASK 0x03u /* the key's last byte; PgBouncer's CANCELLATION_TTL_MASK */
#define FWD_MAX_ACTIVE 64 /* forwards in flight to all peers at once (a socket each) */

struct fwd {
	struct cancelreq cr; /* first: fwd_done gets it back from its cancelreq */
	struct fwd *prev, *next; /* next: in its pool's FIFO while waiting; both: in flight */
	int peer_id;
	uint32_t pid, key;  /* the request as forwarded (TTL already decremented) */
	char host[256];     /* the peer's, copied when it starts (config may be reloaded) */
	int port;
};

struct peer_pool {
	int peer_id;
	int active;
	int waiting;
	struct fwd *head, *tail; /* waiting, oldest first */
};

/* A [peers] entry's addresses, as resolved for its host and port. */
struct peer_addr {
	int id;
	char host[256];
	int port;
	int naddrs; /* 0: ERR says why */
	struct cancelreq_addr addrs[CANCELREQ_MAX_ADDRS];
	char err[160];
};

struct resolve_job {
	struct exec_job job;
	int n;
	struct peer_addr tab[]; /* [peers]' entries when the job was made */
};

static struct runtime *rt;
static struct peer_pool *pools; /* in peer_id order; kept until exit */
static int npools, cap_pools;
static int waiting_total, active_total;
static int next_pool;               /* run_pools starts there: each pool its turn */
static struct fwd *inflight;        /* started, done not called yet */
static struct resolve_job *resolved; /* the last resolution's, in [peers] order */
static bool resolving, resolve_again;

/* ---- drops, logged at most once a second per reason ---------------------------------- */

enum drop_reason { DROP_NO_PEER, DROP_TTL, DROP_QUEUE, DROP_FAILED, DROP_REASONS };

static const char *const drop_words[DROP_REASONS] = {
    "for peers not in [peers]", "with their TTL exhausted",
    "with max_client_conn requests waiting already (or out of memory)", "forwarding failed"};

static struct {
	bool logged; /* this second's first drop for the reason was logged */
	int more;    /* the others, counted */
} drops[DROP_REASONS];
static struct event drop_timer;
static bool drop_timer_on;

static void drop_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	char buf[512];
	size_t at = 0;
	int total = 0;
	buf[0] = '\0';
	drop_timer_on = false;
	for (int i = 0; i < DROP_REASONS; i++) {
		if (drops[i].more && at < sizeof(buf)) {
			int n = snprintf(buf + at, sizeof(buf) - at, "%s%d %s", total ? ", " : "",
					 drops[i].more, drop_words[i]);
			at += n > 0 ? (size_t)n : 0;
			total += drops[i].more;
		}
		drops[i].logged = false;
		drops[i].more = 0;
	}
	if (total)
		log_warning("%d more cancel requests dropped in the last second: %s", total, buf);
}

/* A request dropped (or a forward failed) for WHY: logged when it is the first for WHY
 * this second, counted otherwise (the count is logged when the second ends). */
static void drop(enum drop_reason why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void drop(enum drop_reason why, const char *fmt, ...)
{
	if (drops[why].logged) {
		drops[why].more++;
		return;
	}
	drops[why].logged = true;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warning("%s", msg);
	if (!drop_timer_on) {
		struct timeval second = {.tv_sec = 1};
		evtimer_add(&drop_timer, &second);
		drop_timer_on = true;
	}
}

/* ---- peers' addresses ------------------------------------------------------------------ */

static void resolve_start(void);
static void run_pools(void);

/* On the executor: fills each entry of the job's table. */
static void resolve_fn(struct exec_job *job)
{
	struct resolve_job *j = (struct resolve_job *)job;
	for (int i = 0; i < j->n; i++) {
		struct peer_addr *p = &j->tab[i];
		if (p->host[0] == '/' || p->host[0] == '@') {
			struct sockaddr_un *sun = (struct sockaddr_un *)&p->addrs[0].sa;
			sun->sun_family = AF_UNIX;
			int n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/.s.PGSQL.%d",
					 p->host, p->port);
			p->addrs[0].len = sizeof(*sun);
			if (p->host[0] == '@') { /* abstract namespace: a leading NUL, no terminator */
				sun->sun_path[0] = '\0';
				p->addrs[0].len =
				    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n);
			}
			p->naddrs = 1;
			continue;
		}
		struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
		struct addrinfo *res;
		char port[16];
		snprintf(port, sizeof(port), "%d", p->port);
		int rc = getaddrinfo(p->host, port, &hints, &res);
		if (rc != 0) {
			snprintf(p->err, sizeof(p->err), "%s", gai_strerror(rc));
			continue;
		}
		for (struct addrinfo *ai = res; ai && p->naddrs < CANCELREQ_MAX_ADDRS;
		     ai = ai->ai_next) {
			if (ai->ai_addrlen > sizeof(p->addrs[0].sa))
				continue;
			memcpy(&p->addrs[p->naddrs].sa, ai->ai_addr, ai->ai_addrlen);
			p->addrs[p->naddrs++].len = ai->ai_addrlen;
		}
		if (!p->naddrs)
			snprintf(p->err, sizeof(p->err), "no address");
		freeaddrinfo(res);
	}
}

static void resolve_done(struct exec_job *job)
{
	free(resolved);
	resolved = (struct resolve_job *)job;
	resolving = false;
	for (int i = 0; i < resolved->n; i++)
		if (!resolved->tab[i].naddrs)
			log_warning("peer %d: host %s did not resolve: %s", resolved->tab[i].id,
				    resolved->tab[i].host, resolved->tab[i].err);
	if (rt->shutting_down)
		return;
	if (resolve_again)
		resolve_start();
	else
		run_pools();
}

/* Resolves [peers]' hosts on the executor (one job at a time: when one runs, another
 * follows it). */
static void resolve_start(void)
{
	if (resolving) {
		resolve_again = true;
		return;
	}
	const struct config *cfg = rt->cfg;
	struct resolve_job *j = calloc(1, sizeof(*j) + (size_t)cfg->npeers * sizeof(j->tab[0]));
	if (!j) {
		log_warning("peers: out of memory resolving their addresses");
		return;
	}
	j->n = cfg->npeers;
	for (int i = 0; i < j->n; i++) {
		j->tab[i].id = cfg->peers[i].id;
		snprintf(j->tab[i].host, sizeof(j->tab[i].host), "%s", cfg->peers[i].host);
		j->tab[i].port = cfg->peers[i].port;
	}
	j->job = (struct exec_job){.fn = resolve_fn, .done = resolve_done, .arg = j};
	resolving = true;
	resolve_again = false;
	exec_submit(rt->exec, &j->job);
}

/* PEER's addresses, when they were resolved for its host and port as they are now. */
static const struct peer_addr *addr_of(const struct cfg_peer *peer)
{
	for (int i = 0; resolved && i < resolved->n; i++) {
		const struct peer_addr *a = &resolved->tab[i];
		if (a->id == peer->id)
			return a->port == peer->port && strcmp(a->host, peer->host) == 0 ? a : NULL;
	}
	return NULL;
}

/* ---- forwarding ------------------------------------------------------------------------ */

void peers_init(struct runtime *r)
{
	rt = r;
	evtimer_assign(&drop_timer, rt->base, drop_timer_cb, NULL);
	if (rt->cfg->npeers)
		resolve_start();
}

void peers_reconfigure(void)
{
	resolve_start(); /* hosts may have moved, or their names resolve otherwise now */
	run_pools();     /* peers gone from [peers], new pool_size */
}

static int key_peer(uint32_t pid) { return (int)((pid >> 16 & 0xff) | (pid >> 8 & 0xff) << 8); }

bool peers_stamp_key(uint32_t *pid, uint32_t *key)
{
	uint32_t id = rt ? (uint32_t)rt->cfg->peer_id : 0;
	if (id == 0)
		return false;
	*pid = (*pid & 0xff0000ffu) | (id & 0xff) << 16 | (id >> 8 & 0xff) << 8;
	*key |= TTL_MASK; /* three forwardings left */
	return true;
}

uint32_t peers_key_as_given(uint32_t key) { return key | TTL_MASK; }

/* The pool of PEER_ID, or NULL. Never allocates. */
static struct peer_pool *pool_find(int peer_id)
{
	int lo = 0, hi = npools;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		if (pools[mid].peer_id < peer_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < npools && pools[lo].peer_id == peer_id ? &pools[lo] : NULL;
}

/* The pool of PEER_ID, made when missing; NULL when out of memory. */
static struct peer_pool *pool_of(int peer_id)
{
	struct peer_pool *found = pool_find(peer_id);
	if (found)
		return found;
	int at = 0;
	while (at < npools && pools[at].peer_id < peer_id)
		at++;
	if (npools == cap_pools) {
		int cap = cap_pools ? 2 * cap_pools : 4;
		struct peer_pool *p = realloc(pools, (size_t)cap * sizeof(*p));
		if (!p)
			return NULL;
		pools = p;
		cap_pools = cap;
	}
	memmove(&pools[at + 1], &pools[at], (size_t)(npools - at) * sizeof(*pools));
	pools[at] = (struct peer_pool){.peer_id = peer_id};
	npools++;
	return &pools[at];
}

static void fwd_done(struct cancelreq *cr, bool ok);

/* Starts the waiting requests of POOL its peer's pool_size and FWD_MAX_ACTIVE let run;
 * a request whose peer has left [peers] (a reload) is dropped; one whose peer's address is
 * being resolved waits for it. */
static void pool_run(struct peer_pool *pool)
{
	while (pool->head && !rt->shutting_down && active_total < FWD_MAX_ACTIVE) {
		const struct config *cfg = rt->cfg;
		const struct cfg_peer *peer = cfg_find_peer(cfg, pool->peer_id);
		const struct peer_addr *addr = NULL;
		struct fwd *f = pool->head;
		if (peer) {
			int limit = peer->pool_size > 0 ? peer->pool_size : cfg->default_pool_size;
			if (pool->active >= limit)
				return;
			if (!(addr = addr_of(peer))) {
				if (!resolving)
					resolve_start();
				return; /* run_pools again when resolved */
			}
		}
		pool->head = f->next;
		if (!pool->head)
			pool->tail = NULL;
		pool->waiting--;
		waiting_total--;
		if (!peer || !addr->naddrs) {
			if (!peer)
				drop(DROP_NO_PEER, "cancel request for peer %d dropped: the peer is no "
						   "longer in [peers]", pool->peer_id);
			else
				drop(DROP_FAILED, "cancel request for peer %d dropped: its host %s did "
						  "not resolve: %s", pool->peer_id, addr->host, addr->err);
			free(f);
			continue;
		}
		snprintf(f->host, sizeof(f->host), "%s", peer->host);
		f->port = peer->port;
		double t = cfg->server_connect_timeout;
		int timeout_ms = t > 0 && t < 86400 ? (int)(t * 1000) : 0;
		f->cr.done = fwd_done;
		f->prev = NULL;
		f->next = inflight;
		if (inflight)
			inflight->prev = f;
		inflight = f;
		pool->active++;
		active_total++;
		cancelreq_start(&f->cr, rt->base, addr->addrs, addr->naddrs, f->pid, f->key,
				timeout_ms);
	}
}

/* Runs the pools' waiting requests, a different pool first each time. */
static void run_pools(void)
{
	for (int i = 0; i < npools && active_total < FWD_MAX_ACTIVE; i++)
		pool_run(&pools[(next_pool + i) % npools]);
	if (npools)
		next_pool = (next_pool + 1) % npools;
}

static void fwd_done(struct cancelreq *cr, bool ok)
{
	struct fwd *f = (struct fwd *)cr;
	if (f->prev)
		f->prev->next = f->next;
	else
		inflight = f->next;
	if (f->next)
		f->next->prev = f->prev;
	active_total--;
	struct peer_pool *pool = pool_find(f->peer_id); /* exists: it had F in flight */
	if (pool)
		pool->active--;
	if (ok)
		log_debug("cancel request forwarded to peer %d", f->peer_id);
	else
		drop(DROP_FAILED, "cancel request for peer %d: forwarding to %s port %d failed: %s",
		     f->peer_id, f->host, f->port, cr->err);
	free(f);
	run_pools();
}

/* Queues the request for PEER_ID (its key's TTL decremented) and starts it when the
 * peer's pool_size and FWD_MAX_ACTIVE allow. */
static void forward(int peer_id, uint32_t pid, uint32_t key)
{
	struct peer_pool *pool = waiting_total < rt->cfg->max_client_conn ? pool_of(peer_id) : NULL;
	struct fwd *f = pool ? malloc(sizeof(*f)) : NULL;
	if (!f) {
		drop(DROP_QUEUE, "cancel request for peer %d dropped: %s", peer_id,
		     waiting_total >= rt->cfg->max_client_conn
			 ? "max_client_conn requests wait for their peers already"
			 : "out of memory");
		return;
	}
	f->next = NULL;
	f->peer_id = peer_id;
	f->pid = pid;
	f->key = key;
	if (pool->tail)
		pool->tail->next = f;
	else
		pool->head = f;
	pool->tail = f;
	pool->waiting++;
	waiting_total++;
	log_debug("forwarding cancel request to peer %d", peer_id);
	pool_run(pool);
}

bool peers_route_cancel(uint32_t pid, uint32_t key)
{
	const struct config *cfg = rt ? rt->cfg : NULL;
	if (!cfg || cfg->peer_id == 0)
		return true;
	int peer_id = key_peer(pid);
	if (peer_id == cfg->peer_id)
		return true;
	if (!cfg_find_peer(cfg, peer_id)) {
		drop(DROP_NO_PEER, "cancel request for peer %d dropped: could not find peer to "
				   "forward request to (not in [peers])", peer_id);
		return false;
	}
	if ((key & TTL_MASK) == 0) {
		drop(DROP_TTL, "cancel request for peer %d dropped: its TTL was exhausted "
			       "(forwarded three times already)", peer_id);
		return false;
	}
	forward(peer_id, pid, key - 1);
	return false;
}

bool peers_pool_stats(int i, struct peers_pool_stats *out)
{
	if (i < 0 || i >= npools)
		return false;
	*out = (struct peers_pool_stats){
	    .peer_id = pools[i].peer_id, .active = pools[i].active, .waiting = pools[i].waiting};
	return true;
}

void peers_free(void)
{
	while (inflight) {
		struct fwd *f = inflight;
		inflight = f->next;
		cancelreq_abort(&f->cr);
		free(f);
	}
	for (int i = 0; i < npools; i++)
		for (struct fwd *f = pools[i].head, *next; f; f = next) {
			next = f->next;
			free(f);
		}
	free(pools);
	pools = NULL;
	npools = cap_pools = waiting_total = active_total = 0;
	free(resolved);
	resolved = NULL;
	if (rt)
		event_del(&drop_timer);
}
