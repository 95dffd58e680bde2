/* Support for the libFuzzer harnesses (tests/fuzz/fuzz_*.c): reading a fuzz input piece
 * by piece, files written from memory, and, for the harnesses that drive pgcoro's real
 * code, a runtime set up as main.c sets it up, sessions over socketpairs and the event
 * loop run until nothing is left to do. */
#ifndef PGCORO_FUZZ_LOOP_H
#define PGCORO_FUZZ_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime.h"
#include "types.h"

/* libFuzzer's entry points. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* ---- the input ----------------------------------------------------------------------- */

/* What is left of a fuzz input. */
struct fz_in {
	const uint8_t *p;
	size_t n;
};

/* The next byte (0 once the input is used up). */
static inline uint8_t fz_u8(struct fz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

/* The next LEN bytes, or fewer at the end; *GOT gets how many. */
static inline const uint8_t *fz_bytes(struct fz_in *in, size_t len, size_t *got)
{
	const uint8_t *p = in->p;
	*got = len < in->n ? len : in->n;
	in->p += *got;
	in->n -= *got;
	return p;
}

/* ---- files --------------------------------------------------------------------------- */

/* A scratch directory (/tmp/pgcoro-fuzz-PID) made on first use and removed at exit
 * with the files written into it; those of harness processes that died are removed
 * then. */
const char *fz_dir(void);

/* Writes TEXT into the scratch directory as NAME, "@DIR@" in TEXT replaced by the
 * directory's path; returns the file's path (a static buffer per call site is the
 * caller's business: this one is valid until the next call). Aborts on failure. */
const char *fz_write_file(const char *name, const char *text);

/* A path naming a memory file that holds exactly DATA (LEN bytes), for the loaders that
 * read a path (config, auth_file): rewritten in place on each call. */
const char *fz_memfile(const void *data, size_t len);

/* ---- the loop ------------------------------------------------------------------------ */

/* The [pgcoro] section every loop harness's config starts with: nothing to listen on (the
 * harnesses never listen), errors only, no stats line, one executor thread, no shutdown
 * timer, no server check before a hand-out. */
#define FZ_INI_PGCORO                                                                      \
	"[pgcoro]\n"                                                                        \
	"listen_addr =\n"                                                                   \
	"unix_socket_dir = @DIR@\n"                                                         \
	"log_level = error\n"                                                               \
	"stats_period = 0\n"                                                                \
	"executor_threads = 1\n"                                                            \
	"shutdown_timeout = 0\n"                                                            \
	"server_check_query =\n"

/* Loads CONFIG_PATH (with its auth_file and auth_hba_file) and starts every module main
 * starts, except listeners, metrics and signals, on a new event loop; the log (stderr)
 * shows errors only, or the level named by $PGCORO_FUZZ_LOG. Aborts on failure. */
struct runtime *fz_start(const char *config_path);

/* Sets the log level fz_start chose again (a config applied since set its own). */
void fz_log_restore(void);

/* The config fz_start loaded. The runtime always runs on a copy (see fz_set_config), so
 * this one outlives a SET or RELOAD. */
const struct config *fz_base_config(void);

/* Installs a copy of CFG as the runtime's config (the old one is freed). For switching
 * between configs that differ only in what pools do not keep (auth_type). */
void fz_set_config(const struct config *cfg);

/* After an input that could reach the admin console: undoes what its commands changed,
 * so the next input starts from the same state. A SHUTDOWN (its state and timer), PAUSE,
 * DISABLE and KILL state (PAUSED: everything paused again, as a harness may keep it),
 * and a config SET or RELOAD installed: a copy of CFG is applied instead, pools
 * reconfigured. */
void fz_undo_commands(const struct config *cfg, bool paused);

/* POOL answers logins at once, as after its first server connected (pool_connect_ok with
 * the parameters a PostgreSQL 15 reports). */
void fz_pool_ready(pool_t *pool);

/* The harness's end of a socketpair whose other end pgcoro holds. */
struct fz_peer {
	int fd;         /* ours; -1 once closed */
	int pg_fd;      /* pgcoro's */
	dev_t pg_dev;   /* what pg_fd is, to tell when pgcoro has closed it */
	ino_t pg_ino;
	bool eof;       /* pgcoro closed its end */
	bool open;      /* in the list fz_settle reads */
	/* Called with what pgcoro sent (may be NULL: discarded). */
	void (*on_output)(struct fz_peer *p, const uint8_t *data, size_t len);
	void *arg;
};

/* A new socketpair; P->pg_fd is pgcoro's end (non-blocking), to hand to client_accept or
 * server_adopt. P is read by fz_settle until fz_close. */
void fz_pair(struct fz_peer *p);

/* A new client connection: fz_pair, pgcoro's end accepted as a unix-socket client. */
void fz_client(struct fz_peer *p);

/* Sends DATA (LEN bytes) to pgcoro through P, running the loop while the socket is full.
 * False if pgcoro closed its end or stopped reading (the rest is dropped). */
bool fz_send(struct fz_peer *p, const void *data, size_t len);

/* Runs the loop until nothing is left to do now: no callback active, no executor job
 * pending, nothing more read from the open peers (their output goes to on_output). */
void fz_settle(void);

/* Closes the harness's ends of the N peers, settles, and aborts if pgcoro still holds
 * any of its ends: a session or server whose peer left must be freed. */
void fz_close(struct fz_peer *const *peers, int n);

/* Appends a StartupMessage (protocol 3.0) with the NULL-terminated name/value pairs KV
 * to BUF (CAP bytes); returns its length (0 if it does not fit). */
size_t fz_startup(uint8_t *buf, size_t cap, const char *const *kv);

#endif
