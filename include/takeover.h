/* The online restart (PgBouncer's -R): a new process takes the listening sockets, the
 * clients at rest and their servers from the running one over its admin console's unix
 * socket (SUSPEND, SHOW FDS with each socket passed by SCM_RIGHTS, SHUTDOWN), and the old
 * one exits. Both sides are here: the old one's SHOW FDS and hand-over, the new one's
 * takeover_run. */
#ifndef PGCORO_TAKEOVER_H
#define PGCORO_TAKEOVER_H

#include <stdbool.h>

#include "types.h"

struct config;
struct runtime;

void takeover_init(struct runtime *rt);

/* ---- the old process ------------------------------------------------------------------ */

/* Why ADMIN (a console client) may not have SHOW FDS now, or NULL: it must come over the
 * unix socket from a process of this one's effective OS user (SO_PEERCRED: the rows carry
 * every client's socket and SCRAM keys), from an admin, while SUSPENDed, and no TLS connection may be open (its
 * state cannot leave the process: the takeover is refused, nothing is lost). */
const char *takeover_refusal(const client_t *admin) __attribute__((warn_unused_result));

/* ADMIN's SHOW FDS is accepted: the pools quiesce (waiting clients get servers even
 * though suspended, clients at rest stop reading) until takeover_quiet. */
void takeover_quiesce(const client_t *admin);

/* True if a SHOW FDS is waiting or was answered and the console client that asked it is
 * gone without SHUTDOWN (the new process failed): the caller RESUMEs. */
bool takeover_orphaned(void) __attribute__((warn_unused_result));

/* True once nothing is in flight that could move with a socket (no client waiting, no
 * server busy but session servers at rest, no housekeeping), or suspend_timeout has
 * passed since takeover_quiesce (then what is at rest moves, the rest does not). */
bool takeover_quiet(void);

/* Answers SHOW FDS on ADMIN's socket, blocking for 10 s at most in all: PgBouncer's RowDescription, one DataRow
 * per socket with the socket attached (SCM_RIGHTS) — the listeners, then per pool its
 * servers and clients at rest — CommandComplete "SHOW" and ReadyForQuery. What was sent is
 * remembered for takeover_hand_over and stops reading here. False if the socket failed
 * or the 10 s passed (then ADMIN is closed and the takeover forgotten). */
bool takeover_show_fds(client_t *admin) __attribute__((warn_unused_result));

/* SHUTDOWN after SHOW FDS: the sockets sent are dropped here without a byte written
 * (closing them would end nothing: the new process holds them), the listeners closed and
 * the unix socket file left. What did not move is closed by the shutdown that follows. */
void takeover_hand_over(void);

/* RESUME (or the console left): a takeover that did not end in SHUTDOWN is forgotten and
 * every client held reads again. */
void takeover_thaw(void);

/* ---- the new process ------------------------------------------------------------------ */

/* -R: whether a process answers on CFG's unix socket (else, as PgBouncer, the new one
 * starts normally). */
bool takeover_old_running(const struct config *cfg) __attribute__((warn_unused_result));

/* -R: connects to the running process's console on unix_socket_dir/.s.PGSQL.listen_port
 * (refused unless its process runs as this one's effective OS user: SO_PEERCRED),
 * SUSPEND, SHOW FDS (bounded: each socket must be a stream socket of its row's kind, a
 * listener on an address of the config's, the rows no more than max_client_conn allows,
 * the bytes per message and in all bounded), adopts the listeners, servers and clients, SHUTDOWN, waits for the
 * old process to go (its pidfile); blocking, before the loop runs. False (logged) if it
 * failed before anything was adopted; after adoption began a failure exits the process at
 * once (the old one RESUMEs when the console connection drops, nothing lost). */
bool takeover_run(struct runtime *rt) __attribute__((warn_unused_result));

#endif
