/* Owns configuration loading and SIGHUP reloads (see reload.h): the files are read on an
 * executor thread; what can change at run time is applied on the loop thread, the rest
 * (listening addresses, executor threads, pidfile) is reported as needing a restart. */
#include "reload.h"

#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "console.h"
#include "executor.h"
#include "hba.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "runtime.h"
#include "sdnotify.h"
#include "stats.h"
#include "tls.h"

struct reload_job {
	struct exec_job job;
	char path[4096];        /* the file read: conffile (the command line's by default) */
	struct config *cfg;     /* the new files, or NULL with err set */
	struct auth_file *auth;
	SSL_CTX *tls;
	struct hba *hba;
	char err[1024];
};

static struct runtime *rt;
static const char *cfg_path;
static struct reload_job rjob;
static bool running, again;

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
	if ((*cfg)->auth_file[0]) {
		*auth = auth_load((*cfg)->auth_file, why, sizeof(why));
		if (!*auth) {
			snprintf(err, errlen, "auth_file: %s", why);
			goto fail;
		}
		auth_set_scram_iterations(*auth, (*cfg)->scram_iterations);
	} else if (((*cfg)->auth_type == AUTH_PLAIN || (*cfg)->auth_type == AUTH_MD5 ||
		    (*cfg)->auth_type == AUTH_SCRAM) &&
		   !(*cfg)->pgbouncer_ini) {
		/* a pgbouncer.ini may lack one (PgBouncer starts, and no password login
		 * succeeds): config.c warns */
		snprintf(err, errlen, "%s: auth_type %s needs an auth_file", path,
			 cfg_auth_type_name((*cfg)->auth_type));
		goto fail;
	}
	return true;
fail:
	cfg_free(*cfg);
	*cfg = NULL;
	return false;
}

bool reload_load_tls_hba(const struct config *cfg, SSL_CTX **tls, struct hba **hba, char *err,
			 size_t errlen)
{
	char why[1024];
	*tls = NULL;
	*hba = NULL;
	if (!tls_ctx_build(cfg, tls, why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", cfg->path, why);
		return false;
	}
	if (cfg->auth_hba_file[0]) {
		*hba = hba_load(cfg->auth_hba_file, cfg->auth_ident_file, why, sizeof(why));
		if (!*hba) {
			snprintf(err, errlen, "%s", why);
			SSL_CTX_free(*tls);
			*tls = NULL;
			return false;
		}
	}
	return true;
}

void reload_init(struct runtime *r, const char *path)
{
	rt = r;
	cfg_path = path;
}

bool reload_running(void) { return running; }

static void load_job(struct exec_job *job)
{
	struct reload_job *j = (struct reload_job *)job;
	if (!reload_load(j->path, &j->cfg, &j->auth, j->err, sizeof(j->err))) {
		j->cfg = NULL;
		j->auth = NULL;
	} else if (!reload_load_tls_hba(j->cfg, &j->tls, &j->hba, j->err, sizeof(j->err))) {
		cfg_free(j->cfg);
		auth_free(j->auth);
		j->cfg = NULL;
		j->auth = NULL;
	}
}

/* Settings read only at start (cfg_key_reloadable false): a change is logged, not
 * applied. */
static void note_restart_only(const struct config *old, const struct config *new)
{
	size_t n;
	const struct cfg_key *keys = cfg_keys(&n);
	for (size_t i = 0; i < n; i++) {
		if (cfg_key_reloadable(&keys[i]))
			continue;
		char was[1024], now[1024];
		cfg_key_value(old, &keys[i], was, sizeof(was));
		cfg_key_value(new, &keys[i], now, sizeof(now));
		if (strcmp(was, now) != 0)
			log_warning("reload: %s takes effect at the next restart (%s stays in force)",
				    keys[i].key, was);
	}
}

void reload_apply(struct config *cfg, struct auth_file *auth)
{
	struct config *old_cfg = rt->cfg;
	struct auth_file *old_auth = rt->auth;
	rt->cfg = cfg;
	rt->auth = auth;
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
	stats_reconfigure();
	metrics_reconfigure();
	cfg_free(old_cfg);
	if (old_auth != auth)
		auth_free(old_auth);
}

static void load_done(struct exec_job *job)
{
	struct reload_job *j = (struct reload_job *)job;
	running = false;
	if (!j->cfg) {
		log_error("reload failed, the running configuration stays in force: %s", j->err);
	} else if (rt->shutting_down) {
		cfg_free(j->cfg);
		auth_free(j->auth);
		SSL_CTX_free(j->tls);
		hba_free(j->hba);
	} else {
		note_restart_only(rt->cfg, j->cfg);
		SSL_CTX_free(rt->tls); /* connections in progress hold their own reference */
		rt->tls = j->tls;
		hba_free(rt->hba);
		rt->hba = j->hba;
		reload_apply(j->cfg, j->auth);
		log_info("configuration reloaded from %s: %d databases, %d auth_file users",
			 j->path, rt->cfg->ndbs, rt->auth ? auth_count(rt->auth) : 0);
	}
	bool ok = j->cfg != NULL;
	j->cfg = NULL;
	j->auth = NULL;
	j->tls = NULL;
	j->hba = NULL;
	sdnotify_ready();
	console_reload_done(ok);
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
