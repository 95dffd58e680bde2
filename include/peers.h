/* Peering, PgBouncer's (1.19+): processes of a group (so_reuseport on one port, or behind
 * one TCP load balancer) each have a peer_id, carried in the cancel keys they give their
 * clients; a CancelRequest that reaches the wrong process is forwarded to the one named in
 * its key, as listed in [peers]. The keys are laid out as PgBouncer's, so pgcoro and
 * PgBouncer processes peer with each other. */
#ifndef PGCORO_PEERS_H
#define PGCORO_PEERS_H

#include <stdbool.h>
#include <stdint.h>

struct runtime;

/* Remembers RT (its base and executor made) and starts resolving [peers]' hosts. */
void peers_init(struct runtime *rt);

/* Puts this process's peer_id (when it is not 0) into a new cancel key: PID and KEY as the
 * client gets them in BackendKeyData, random before the call. 45 bits stay random. True
 * when it did (the key has TTL bits then: peers_key_as_given). */
bool peers_stamp_key(uint32_t *pid, uint32_t *key);

/* A key KEY as this process gave it out, when a peer forwarded it here (its TTL bits
 * decremented): the client table is looked up with it too. */
uint32_t peers_key_as_given(uint32_t key) __attribute__((warn_unused_result));

/* A CancelRequest for PID and KEY arrived that no client of this process holds. True when
 * this process is the one to handle it (peering off, or its key names this process's
 * peer_id). False when it was for another peer: it is then forwarded to that peer (a new
 * connection, a CancelRequest, on the loop, within server_connect_timeout; at most the
 * peer's pool_size at once, the others waiting in turn) or, when the peer is not in
 * [peers] or the request has been forwarded three times already, dropped; either is
 * logged (drops and failed forwards at most once a second per reason, then counted). */
bool peers_route_cancel(uint32_t pid, uint32_t key) __attribute__((warn_unused_result));

/* A reload put a new config in force: [peers]' hosts are resolved again (on the
 * executor), the waiting requests of peers gone from it are dropped. */
void peers_reconfigure(void);

/* SHOW PEER_POOLS: the peers cancel requests have been forwarded to, in id order. */
struct peers_pool_stats {
	int peer_id;
	int active;  /* forwarded cancel requests in flight */
	int waiting; /* waiting for one of those to end (the peer's pool_size) */
};
/* The Ith such peer (0-based) into *OUT; false past the last. */
bool peers_pool_stats(int i, struct peers_pool_stats *out) __attribute__((warn_unused_result));

/* At exit, after exec_free (no resolution in flight): stops the forwards in flight and
 * frees them and the waiting requests. */
void peers_free(void);

#endif
