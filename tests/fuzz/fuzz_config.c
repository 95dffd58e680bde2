/* Fuzzes the config loader (config.c): the input up to its first NUL byte is an ini file,
 * read from a memory file by cfg_load ([pgcoro] keys and their checks, [databases]
 * libpq conninfo and pgcoro's keys in it, [users]); a config that loads is printed
 * (cfg_dump, every cfg_key_value) and looked into. After the NUL come a key and a value
 * (NUL-separated) given to cfg_with, as the console's SET gives them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "loop.h"

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	devnull = fopen("/dev/null", "w");
	if (!devnull)
		abort();
	return 0;
}

static void look_into(const struct config *cfg)
{
	size_t n;
	const struct cfg_key *keys = cfg_keys(&n);
	char buf[4096];
	for (size_t i = 0; i < n; i++)
		cfg_key_value(cfg, &keys[i], buf, sizeof(buf));
	cfg_dump(cfg, devnull);
	for (int i = 0; i < cfg->ndbs; i++) {
		const struct cfg_db *db = &cfg->dbs[i];
		if (cfg_find_db(cfg, db->name) == NULL)
			abort(); /* an entry is found by its own name */
		for (int k = 0; db->kw[k]; k++)
			if (!db->val[k] || !cfg_db_param(db, db->kw[k]))
				abort();
		(void)cfg_db_param(db, "host");
	}
	for (int i = 0; i < cfg->nusers; i++)
		if (cfg_find_user(cfg, cfg->users[i].name) == NULL)
			abort();
	(void)cfg_find_db(cfg, "postgres");
	(void)cfg_pool_mode_name(cfg->pool_mode);
	(void)cfg_auth_type_name(cfg->auth_type);
	char host[256];
	int port;
	if (cfg->metrics_listen[0])
		(void)cfg_parse_host_port(cfg->metrics_listen, host, sizeof(host), &port);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t ini_len = nul ? (size_t)(nul - data) : size;
	char err[1024];
	struct config *cfg = cfg_load(fz_memfile(data, ini_len), err, sizeof(err));
	if (!cfg) {
		if (!err[0])
			abort(); /* a refused file says why */
		return 0;
	}
	look_into(cfg);
	if (nul) {
		const char *key = (const char *)nul + 1;
		size_t rest = size - ini_len - 1;
		const char *sep = memchr(key, 0, rest);
		char *k = strndup(key, sep ? (size_t)(sep - key) : rest);
		char *v = strndup(sep ? sep + 1 : "", sep ? rest - (size_t)(sep - key) - 1 : 0);
		if (!k || !v)
			abort();
		struct config *with = cfg_with(cfg, k, v, err, sizeof(err));
		if (with) {
			look_into(with);
			cfg_free(with);
		}
		char host[64];
		int port;
		(void)cfg_parse_host_port(v, host, sizeof(host), &port);
		free(k);
		free(v);
	}
	cfg_free(cfg);
	return 0;
}
