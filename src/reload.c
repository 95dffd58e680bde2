/* Owns configuration loading, SIGHUP reloads and the console's SET (see reload.h): the
 * files are read on an executor thread, one job at a time; what can change at run time
 * is applied on the loop thread, the rest (listening addresses, executor threads,
 * pidfile) is reported as needing a restart. */
#include "reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "clientkey.h"
#include "config.h"
#include "console.h"
#include "executor.h"
#include "hba.h"
#include "log.h"
#include "metrics.h"
#include "peers.h"
#include "pool.h"
#include "runtime.h"
#include "sdnotify.h"
#include "stats.h"
#include "tls.h"

/* PgBouncer's notice when a SET leaves the TLS context as it was */
#define TLS_KEPT "TLS settings could not be applied, still using old configuration"
/* What the console is told when a SET's files did not load: the reason stays in the log */
#define SET_FILES_FAILED "a file it reads did not load; see the log"

struct reload_job {
	struct exec_job job;
	char path[4096];        /* the file read: conffile (the command line's by default) */
	char *set;              /* a console SET ("key = 'value' by user", for the log): CFG
	                         * is given and the file is not read; NULL for a reload */
	struct config *cfg;     /* the new config, or NULL with err set */
	struct auth_file *auth;
	SSL_CTX *tls;
	bool tls_failed;        /* the TLS context could not be built (why in tls_err): a
	                         * reload fails, a SET leaves the running context in force */
	struct hba *hba;
	char err[1024];
	char tls_err[512];
};

static struct runtime *rt;
static const char *cfg_path;
static struct reload_job rjob;
static bool running, again;

/* CFG's auth_file into *AUTH (NULL when unset). False with the reason in ERR. */
static bool load_auth(const struct config *cfg, struct auth_file **auth, char *err, size_t errlen)
{
	char why[1024];
	*auth = NULL;
	if (cfg->auth_file[0]) {
		*auth = auth_load(cfg->auth_file, why, sizeof(why));
		if (!*auth) {
			snprintf(err, errlen, "auth_file: %s", why);
			return false;
		}
		/* the keys SCRAM logins use, made here (the executor, or the start) rather than
		 * by a login on the loop */
		bool hba = cfg->auth_type == AUTH_HBA;
		if (!auth_make_scram_keys(*auth, cfg->scram_iterations,
					  hba || cfg->auth_type == AUTH_SCRAM,
					  hba || cfg->auth_type == AUTH_MD5)) {
			snprintf(err, errlen, "auth_file: %s: could not derive SCRAM keys",
				 cfg->auth_file);
			auth_free(*auth);
			*auth = NULL;
			return false;
		}
	} else if ((cfg->auth_type == AUTH_PLAIN || cfg->auth_type == AUTH_MD5 ||
		    cfg->auth_type == AUTH_SCRAM) &&
		   !cfg->pgbouncer_ini) {
		/* a pgbouncer.ini may lack one (PgBouncer starts, and no password login
		 * succeeds): config.c warns */
		snprintf(err, errlen, "%s: auth_type %s needs an auth_file", cfg->path,
			 cfg_auth_type_name(cfg->auth_type));
		return false;
	}
	return true;
}

bool reload_load(const char *path, struct config **cfg, struct auth_file **auth, char *err,
		 size_t errlen)
{
	char why[1024];
	*auth = NULL;
	*cfg = cfg_load(path, why, sizeof(why));
	if (!*cfg) {
		snprintf(err, errlen, "%s", why);
		return false;
	}
	if (!load_auth(*cfg, auth, err, errlen)) {
		cfg_free(*cfg);
		*cfg = NULL;
		return false;
	}
	tls_server_files_digest(*cfg, (*cfg)->server_tls_digest);
	return true;
}

/* CFG's auth_hba_file rules, with auth_ident_file's maps, into *HBA (NULL when unset).
 * False with the reason in ERR. */
static bool load_hba(const struct config *cfg, struct hba **hba, char *err, size_t errlen)
{
	char why[1024];
	*hba = NULL;
	if (!cfg->auth_hba_file[0])
		return true;
	*hba = hba_load(cfg->auth_hba_file, cfg->auth_ident_file, why, sizeof(why));
	if (!*hba)
		snprintf(err, errlen, "%s", why); /* names the file's key */
	return *hba != NULL;
}

/* CFG's client TLS context into *TLS (NULL when client_tls_sslmode is disable). False with
 * PgBouncer's "TLS setup failed: reason" in ERR. */
static bool load_tls(const struct config *cfg, SSL_CTX **tls, char *err, size_t errlen)
{
	char why[512];
	if (tls_ctx_build(cfg, tls, why, sizeof(why)))
		return true;
	snprintf(err, errlen, "TLS setup failed: %s", why);
	return false;
}

bool reload_load_tls_hba(const struct config *cfg, SSL_CTX **tls, struct hba **hba, char *err,
			 size_t errlen)
{
	char why[1024];
	*tls = NULL;
	if (!load_hba(cfg, hba, err, errlen))
		return false;
	if (!load_tls(cfg, tls, why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", cfg->path, why);
		hba_free(*hba);
		*hba = NULL;
		return false;
	}
	return true;
}

void reload_init(struct runtime *r, const char *path)
{
	rt = r;
	cfg_path = path;
}

bool reload_running(void) { return running; }

/* On the executor: a reload reads the file and everything it names; a SET has its config
 * and reads what it names. A TLS context that does not build fails a reload; a SET goes on
 * without it (the running one stays). */
static void load_job(struct exec_job *job)
{
	struct reload_job *j = (struct reload_job *)job;
	bool ok = j->set ? load_auth(j->cfg, &j->auth, j->err, sizeof(j->err))
			 : reload_load(j->path, &j->cfg, &j->auth, j->err, sizeof(j->err));
	if (ok && j->set)
		tls_server_files_digest(j->cfg, j->cfg->server_tls_digest);
	ok = ok && load_hba(j->cfg, &j->hba, j->err, sizeof(j->err));
	if (ok && !load_tls(j->cfg, &j->tls, j->tls_err, sizeof(j->tls_err))) {
		j->tls_failed = true;
		if (!j->set) {
			snprintf(j->err, sizeof(j->err), "%s: %s", j->cfg->path, j->tls_err);
			hba_free(j->hba);
			j->hba = NULL;
			ok = false;
		}
	}
	if (!ok) {
		cfg_free(j->cfg);
		auth_free(j->auth);
		j->cfg = NULL;
		j->auth = NULL;
	}
}

/* Settings read only at start (cfg_key_reloadable false): a change is logged, not
 * applied, and NEW keeps the value in force, so that SHOW CONFIG and every reader of
 * rt->cfg see what the process runs with (a listener still on the old unix_socket_dir). */
static void keep_restart_only(const struct config *old, struct config *new)
{
	size_t n;
	const struct cfg_key *keys = cfg_keys(&n);
	for (size_t i = 0; i < n; i++) {
		if (cfg_key_reloadable(&keys[i]))
			continue;
		char was[1024], now[1024];
		cfg_key_value(old, &keys[i], was, sizeof(was));
		cfg_key_value(new, &keys[i], now, sizeof(now));
		if (strcmp(was, now) == 0)
			continue;
		log_warning("reload: %s takes effect at the next restart (%s stays in force)",
			    keys[i].key, was);
		if (!cfg_key_copy(new, old, &keys[i]))
			log_warning("reload: out of memory: SHOW CONFIG shows %s = %s, not in force "
				    "before a restart", keys[i].key, now);
	}
}

void reload_apply(struct config *cfg, struct auth_file *auth)
{
	struct config *old_cfg = rt->cfg;
	struct auth_file *old_auth = rt->auth;
	rt->cfg = cfg;
	rt->auth = auth;
	/* server TLS files with other contents, or other ciphers (which the pools' libpq
	 * parameters do not show): every pool replaces its servers */
	cfg->server_tls_gen = old_cfg->server_tls_gen +
			      (memcmp(cfg->server_tls_digest, old_cfg->server_tls_digest,
				      sizeof(cfg->server_tls_digest)) != 0 ||
			       strcmp(cfg->server_tls_ciphers, old_cfg->server_tls_ciphers) != 0 ||
			       strcmp(cfg->server_tls13_ciphers, old_cfg->server_tls13_ciphers) != 0);
	log_set_level(rt->verbose ? LOGL_DEBUG : cfg_log_level(rt->cfg));
	/* a setting accepted with a warning is logged once, not again on each reload */
	for (int i = 0; i < cfg->nwarnings; i++) {
		bool known = false;
		for (int j = 0; j < old_cfg->nwarnings && !known; j++)
			known = strcmp(cfg->warnings[i], old_cfg->warnings[j]) == 0;
		if (!known)
			log_warning("%s", cfg->warnings[i]);
	}
	pool_reconfigure();
	peers_reconfigure();
	stats_reconfigure();
	metrics_reconfigure();
	cfg_free(old_cfg);
	if (old_auth != auth) {
		clientkey_reconfigure(auth); /* a changed verifier's kept key goes */
		auth_free(old_auth);
	}
}

/* On the loop thread: J's files and config go in force together (a SET whose TLS context
 * did not build keeps the running one). */
static void put_in_force(struct reload_job *j)
{
	if (!j->tls_failed) {
		SSL_CTX_free(rt->tls); /* connections in progress hold their own reference */
		rt->tls = j->tls;
	}
	hba_free(rt->hba);
	rt->hba = j->hba;
	reload_apply(j->cfg, j->auth);
}

static void load_done(struct exec_job *job)
{
	struct reload_job *j = (struct reload_job *)job;
	bool ok = j->cfg != NULL;
	running = false;
	if (j->tls_failed)
		log_error("%s", j->tls_err); /* PgBouncer's line, which tools look for */
	if (!j->cfg) {
		if (j->set)
			log_error("SET %s failed, nothing changed: %s", j->set, j->err);
		else
			log_error("reload failed, the running configuration stays in force: %s",
				  j->err);
	} else if (rt->shutting_down) {
		ok = false;
		snprintf(j->err, sizeof(j->err), "shutting down");
		cfg_free(j->cfg);
		auth_free(j->auth);
		SSL_CTX_free(j->tls);
		hba_free(j->hba);
	} else if (j->set) {
		put_in_force(j);
		log_info("SET %s", j->set);
		if (j->tls_failed)
			log_warning("SET %s: %s", j->set, TLS_KEPT);
	} else {
		keep_restart_only(rt->cfg, j->cfg);
		put_in_force(j);
		log_info("configuration reloaded from %s: %d databases, %d auth_file users",
			 j->path, rt->cfg->ndbs, rt->auth ? auth_count(rt->auth) : 0);
	}
	char *set = j->set;
	bool tls_kept = j->tls_failed;
	char err[sizeof(j->err)];
	snprintf(err, sizeof(err), "%s", j->err);
	rjob = (struct reload_job){0}; /* free for the next job, which a waiter may start */
	if (set) {
		free(set);
		/* why a file did not load quotes the file (a parser names the token at fault),
		 * and the file may be any the process can read: the reason goes to the log
		 * only, as RELOAD's does (audit B1) */
		console_set_done(ok, !ok ? (rt->shutting_down ? "shutting down" : SET_FILES_FAILED)
					  : tls_kept ? TLS_KEPT
						     : NULL);
	} else {
		sdnotify_ready();
		console_reload_done(ok);
	}
	if (again && !rt->shutting_down) {
		again = false;
		reload_start();
	}
}

void reload_start(void)
{
	if (running) {
		again = true;
		return;
	}
	sdnotify_reloading();
	running = true;
	rjob = (struct reload_job){.job = {.fn = load_job, .done = load_done}};
	snprintf(rjob.path, sizeof(rjob.path), "%s", rt->cfg->conffile[0] ? rt->cfg->conffile : cfg_path);
	log_info("reloading the configuration from %s", rjob.path);
	exec_submit(rt->exec, &rjob.job);
}

enum reload_set_status reload_set(const char *key, const char *value, const char *who, char *msg,
				  size_t msglen)
{
	size_t n;
	const struct cfg_key *keys = cfg_keys(&n), *k = NULL;
	for (size_t i = 0; i < n && !k; i++)
		if (strcasecmp(keys[i].key, key) == 0)
			k = &keys[i];
	if (k && !cfg_key_reloadable(k)) {
		snprintf(msg, msglen, "%s takes effect only at a restart: SET ignored", k->key);
		log_warning("SET %s = '%s' by %s ignored: %s takes effect only at a restart", key,
			    value, who, k->key);
		return RELOAD_SET_IGNORED;
	}
	if (running)
		return RELOAD_SET_BUSY; /* its config is the one this SET must change */
	struct config *cfg = cfg_with(rt->cfg, key, value, msg, msglen);
	if (!cfg)
		return RELOAD_SET_FAILED;
	if (!cfg_key_reads_files(k)) {
		reload_apply(cfg, rt->auth);
		log_info("SET %s = '%s' by %s", k->key, value, who);
		return RELOAD_SET_DONE;
	}
	size_t len = strlen(k->key) + strlen(value) + strlen(who) + sizeof(" = '' by ");
	char *line = malloc(len);
	if (!line) {
		cfg_free(cfg);
		snprintf(msg, msglen, "out of memory");
		return RELOAD_SET_FAILED;
	}
	snprintf(line, len, "%s = '%s' by %s", k->key, value, who);
	running = true;
	rjob = (struct reload_job){.job = {.fn = load_job, .done = load_done}, .set = line,
				   .cfg = cfg};
	exec_submit(rt->exec, &rjob.job);
	return RELOAD_SET_READING;
}
