/* Owns peering (peers.h): the peer id in the cancel keys, the routing of a CancelRequest
 * to this process or another peer, and the forwarding: per peer, up to its pool_size
 * CancelRequests in flight on the executor (cancelreq_send to the address [peers] gives),
 * the others in a FIFO (all peers' together at most max_client_conn; beyond that they are
 * dropped, logged). The key layout is PgBouncer's: the peer id in the second and third
 * bytes of the 8-byte key (low byte first), and in the last byte's two lowest bits a TTL
 * that each forwarding decrements, so a request bounces between misconfigured peers at
 * most three times. */
#include "peers.h"

#include <netdb.h>
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

struct fwd {
	struct exec_job job;
	struct fwd *next;   /* in its pool's FIFO while waiting */
	int peer_id;
	uint32_t pid, key;  /* the request as forwarded (TTL already decremented) */
	char host[256];     /* the peer's, copied when it starts (config may be reloaded) */
	int port;
	int timeout_ms;
	bool ok;            /* set by the job */
	char err[160];
};

struct peer_pool {
	int peer_id;
	int active;
	int waiting;
	struct fwd *head, *tail; /* waiting, oldest first */
};

static struct runtime *rt;
static struct peer_pool *pools; /* in peer_id order; kept until exit */
static int npools, cap_pools;
static int waiting_total;

void peers_init(struct runtime *r) { rt = r; }

static int key_peer(uint32_t pid) { return (int)((pid >> 16 & 0xff) | (pid >> 8 & 0xff) << 8); }

void peers_stamp_key(uint32_t *pid, uint32_t *key)
{
	uint32_t id = rt ? (uint32_t)rt->cfg->peer_id : 0;
	if (id == 0)
		return;
	*pid = (*pid & 0xff0000ffu) | (id & 0xff) << 16 | (id >> 8 & 0xff) << 8;
	*key |= TTL_MASK; /* three forwardings left */
}

/* The pool of PEER_ID, made when missing; NULL when out of memory. */
static struct peer_pool *pool_of(int peer_id)
{
	int at = 0;
	while (at < npools && pools[at].peer_id < peer_id)
		at++;
	if (at < npools && pools[at].peer_id == peer_id)
		return &pools[at];
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

/* On the executor: touches only F. */
static void fwd_fn(struct exec_job *job)
{
	struct fwd *f = job->arg;
	if (f->host[0] == '/' || f->host[0] == '@') {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.%d", f->host,
				 f->port);
		socklen_t len = sizeof(sun);
		if (f->host[0] == '@') { /* the abstract namespace: a leading NUL, no terminator */
			sun.sun_path[0] = '\0';
			len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n);
		}
		f->ok = cancelreq_send((struct sockaddr *)&sun, len, f->pid, f->key, f->timeout_ms,
				       f->err, sizeof(f->err));
		return;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res;
	char port[16];
	snprintf(port, sizeof(port), "%d", f->port);
	int rc = getaddrinfo(f->host, port, &hints, &res);
	if (rc != 0) {
		snprintf(f->err, sizeof(f->err), "resolving the host: %s", gai_strerror(rc));
		f->ok = false;
		return;
	}
	f->ok = false;
	for (struct addrinfo *ai = res; ai && !f->ok; ai = ai->ai_next)
		f->ok = cancelreq_send(ai->ai_addr, ai->ai_addrlen, f->pid, f->key, f->timeout_ms,
				       f->err, sizeof(f->err));
	freeaddrinfo(res);
}

static void fwd_done(struct exec_job *job);

/* Starts the waiting requests of POOL its peer's pool_size lets run; a request whose peer
 * has left [peers] (a reload) is dropped. */
static void pool_run(struct peer_pool *pool)
{
	while (pool->head && !rt->shutting_down) {
		const struct config *cfg = rt->cfg;
		const struct cfg_peer *peer = cfg_find_peer(cfg, pool->peer_id);
		struct fwd *f = pool->head;
		int limit = peer && peer->pool_size > 0 ? peer->pool_size : cfg->default_pool_size;
		if (peer && pool->active >= limit)
			return;
		pool->head = f->next;
		if (!pool->head)
			pool->tail = NULL;
		pool->waiting--;
		waiting_total--;
		if (!peer) {
			log_warning("cancel request for peer %d dropped: the peer is no longer in "
				    "[peers]", pool->peer_id);
			free(f);
			continue;
		}
		snprintf(f->host, sizeof(f->host), "%s", peer->host);
		f->port = peer->port;
		double t = cfg->server_connect_timeout;
		f->timeout_ms = t > 0 && t < 86400 ? (int)(t * 1000) : 0;
		f->job = (struct exec_job){.fn = fwd_fn, .done = fwd_done, .arg = f};
		pool->active++;
		exec_submit(rt->exec, &f->job);
	}
}

static void fwd_done(struct exec_job *job)
{
	struct fwd *f = job->arg;
	struct peer_pool *pool = pool_of(f->peer_id); /* exists: it has F in flight */
	if (f->ok)
		log_debug("cancel request forwarded to peer %d", f->peer_id);
	else
		log_warning("cancel request for peer %d: forwarding to %s port %d failed: %s",
			    f->peer_id, f->host, f->port, f->err);
	free(f);
	if (pool) {
		pool->active--;
		pool_run(pool);
	}
}

/* Queues the request for PEER_ID (its key's TTL decremented) and starts it when the
 * peer's pool_size allows. */
static void forward(int peer_id, uint32_t pid, uint32_t key)
{
	struct peer_pool *pool = pool_of(peer_id);
	struct fwd *f = pool && waiting_total < rt->cfg->max_client_conn ? calloc(1, sizeof(*f))
									  : NULL;
	if (!f) {
		log_warning("cancel request for peer %d dropped: %s", peer_id,
			    pool && waiting_total >= rt->cfg->max_client_conn
				? "max_client_conn requests wait for their peers already"
				: "out of memory");
		return;
	}
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

bool peers_route_cancel(uint32_t pid, uint32_t *key)
{
	const struct config *cfg = rt ? rt->cfg : NULL;
	if (!cfg || cfg->peer_id == 0)
		return true;
	int peer_id = key_peer(pid);
	if (peer_id == cfg->peer_id) {
		*key |= TTL_MASK; /* as it was given out: the TTL bits are 1s in the stored key */
		return true;
	}
	if (!cfg_find_peer(cfg, peer_id)) {
		log_warning("cancel request for peer %d dropped: could not find peer to forward "
			    "request to (not in [peers])", peer_id);
		return false;
	}
	if ((*key & TTL_MASK) == 0) {
		log_warning("cancel request for peer %d dropped: its TTL was exhausted (forwarded "
			    "three times already)", peer_id);
		return false;
	}
	forward(peer_id, pid, *key - 1);
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
	for (int i = 0; i < npools; i++)
		for (struct fwd *f = pools[i].head, *next; f; f = next) {
			next = f->next;
			free(f);
		}
	free(pools);
	pools = NULL;
	npools = cap_pools = waiting_total = 0;
}
