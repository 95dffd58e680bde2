/* Configuration loading, SIGHUP reloads and the console's SET. A reload reads and
 * validates the config file and its auth_file on the executor, then swaps them in on the
 * loop thread in one step (rt->cfg, rt->auth); a file that does not load leaves the
 * running configuration in force and the reason is logged. systemd hears RELOADING=1
 * before and READY=1 after. A SET is a reload of one key: the same validation, the same
 * files re-read, the same swap; it lasts until the next reload reads the file again. */
#ifndef PGCORO_RELOAD_H
#define PGCORO_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

struct runtime;
struct config;
struct auth_file;

/* Reads PATH and the auth_file it names. On failure returns false with the reason in ERR
 * (nothing allocated). Pure: safe on any thread. */
bool reload_load(const char *path, struct config **cfg, struct auth_file **auth, char *err,
		 size_t errlen) __attribute__((warn_unused_result));

struct ssl_ctx_st;
struct hba;

/* Builds what CFG's other files give: the client TLS context (NULL when
 * client_tls_sslmode is disable) and the auth_hba_file rules with auth_ident_file's maps
 * (NULL when auth_hba_file is unset). On failure returns false with the reason in ERR
 * (nothing allocated). Safe on any thread. */
bool reload_load_tls_hba(const struct config *cfg, struct ssl_ctx_st **tls, struct hba **hba,
			 char *err, size_t errlen) __attribute__((warn_unused_result));

/* Remembers RT and the config file PATH (which must outlive the daemon's run). */
void reload_init(struct runtime *rt, const char *path);

/* Starts a reload (SIGHUP). One runs at a time; a request during one runs after it. */
void reload_start(void);

/* Puts CFG and AUTH in force at once (on the loop thread; they become rt's, the old ones
 * are freed, AUTH may be the current rt->auth): log level, pools, stats and metrics
 * follow; server TLS files whose digest changed make every pool replace its servers. Keys that are not reloadable are the caller's to refuse or report. */
void reload_apply(struct config *cfg, struct auth_file *auth);

/* True while a reload's or a SET's file reading is in flight. */
bool reload_running(void);

/* What reload_set did. */
enum reload_set_status {
	RELOAD_SET_DONE,    /* in force now */
	RELOAD_SET_IGNORED, /* a key read only at start: nothing changed, MSG says so (PgBouncer
	                     * answers such a SET as done and ignores it) */
	RELOAD_SET_READING, /* the files the key goes with are being read on the executor;
	                     * console_set_done() tells the end */
	RELOAD_SET_BUSY,    /* a reload or another SET is reading files: nothing done; ask again
	                     * when it ends (console_reload_done, console_set_done) */
	RELOAD_SET_FAILED,  /* refused, the reason in MSG (unknown key, a value the file could
	                     * not have, a check across keys): nothing changed */
};

/* The console's SET KEY = VALUE (KEY any case) by user WHO, as a reload with the file
 * changed so: the running config with KEY set, checked as a loaded file is, put in force
 * by reload_apply. A key read with files (cfg_key_reads_files: auth_type, auth_file,
 * auth_hba_file, client_tls_*, the server_tls_* files) re-reads auth_file and
 * auth_hba_file, rebuilds the TLS context and digests the server TLS files first, on the
 * executor; a file that does not load refuses the SET, except a TLS
 * context that does not build: as PgBouncer's SET, the value is set and the running
 * context stays. Logs what it did. */
enum reload_set_status reload_set(const char *key, const char *value, const char *who, char *msg,
				  size_t msglen) __attribute__((warn_unused_result));

#endif
