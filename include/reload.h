/* Configuration loading and SIGHUP reloads. A reload reads and validates the config file
 * and its auth_file on the executor, then swaps them in on the loop thread in one step
 * (rt->cfg, rt->auth); a file that does not load leaves the running configuration in
 * force and the reason is logged. systemd hears RELOADING=1 before and READY=1 after. */
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
 * follow. Keys that are not reloadable are the caller's to refuse or report. */
void reload_apply(struct config *cfg, struct auth_file *auth);

/* True while a reload's file reading is in flight. */
bool reload_running(void);

#endif
