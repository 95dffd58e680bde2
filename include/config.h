/* The configuration: one table drives parsing (inih), defaults, validation, SHOW CONFIG
 * and the documentation check of conf/pgcoro.ini. A loaded config is immutable;
 * reload builds a new one and swaps the pointer. */
#ifndef PGCORO_CONFIG_H
#define PGCORO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "types.h"

enum pool_mode {
	POOL_MODE_UNSET = -1, /* per-db / per-user: inherit */
	POOL_SESSION = 0,
	POOL_TRANSACTION,
	POOL_STATEMENT,
};

enum auth_type {
	AUTH_TRUST = 0,
	AUTH_PLAIN,  /* "plain": cleartext password checked against the auth_file */
	AUTH_MD5,    /* "md5" */
	AUTH_SCRAM,  /* "scram-sha-256" */
	AUTH_CERT,   /* "cert": TLS client certificate, its CN must be the user */
	AUTH_HBA,    /* "hba": the method of the first matching auth_hba_file rule */
};

/* One key of [databases]: "name = <libpq conninfo> [pgcoro keys]". */
struct cfg_db {
	char *name;      /* the database name clients ask for; "*" is the fallback entry */
	char **kw;       /* NULL-terminated libpq keywords given in the conninfo (pgcoro keys removed) */
	char **val;      /* values, parallel to kw */
	int pool_size;   /* pool_size=N in the entry; -1 = default_pool_size */
	int pool_mode;   /* pool_mode=... in the entry; POOL_MODE_UNSET = global */
	int min_pool_size;      /* -1 = global min_pool_size */
	int reserve_pool_size;  /* -1 = global reserve_pool_size */
	int max_db_connections; /* -1 = global max_db_connections (0 = unlimited) */
	int line;        /* line in the file, for messages */
};

/* One key of [users]: "name = key=value ...". */
struct cfg_user {
	char *name;
	int pool_mode;   /* POOL_MODE_UNSET = inherit */
	int pool_size;   /* -1 = inherit (the database's, else default_pool_size) */
	int max_user_connections; /* -1 = global max_user_connections (0 = unlimited) */
	int line;
};

struct config {
	char *path;                /* the file it was loaded from */

	/* [pgcoro] — field names equal the ini keys */
	char *listen_addr;         /* comma list of addresses, "*" = all; "" = no TCP */
	int listen_port;
	char *unix_socket_dir;     /* "" = no unix socket */
	int unix_socket_mode;      /* octal in the file */
	int auth_type;             /* enum auth_type */
	char *auth_file;           /* "" = none */
	char *auth_hba_file;       /* pg_hba.conf rules for auth_type hba; "" = none */
	int client_tls_sslmode;    /* enum tls_mode */
	char *client_tls_key_file;
	char *client_tls_cert_file;
	char *client_tls_ca_file;
	char *client_tls_protocols; /* "secure" = tlsv1.2,tlsv1.3 */
	char *client_tls_ciphers;   /* OpenSSL cipher list (TLS 1.2 and lower); "default" */
	/* PgBouncer's server_tls_* keys: defaults for every [databases] conninfo that does not
	 * set the libpq keyword itself (sslmode, sslrootcert, sslcert, sslkey); "" = libpq's */
	char *server_tls_sslmode;
	char *server_tls_ca_file;
	char *server_tls_cert_file;
	char *server_tls_key_file;
	char *admin_users;         /* comma list: every console command */
	char *stats_users;         /* comma list: console SHOW commands */
	int pool_mode;             /* enum pool_mode */
	int default_pool_size;
	int max_client_conn;
	char *server_reset_query;  /* "" = none */
	int server_round_robin;    /* 1 = hand out the longest-idle server, 0 = the latest (LIFO) */
	double server_connect_timeout; /* seconds; 0 = none */
	double client_login_timeout;   /* seconds; 0 = none */
	int max_packet_size;       /* bytes, largest client message accepted */
	int max_prepared_statements; /* per server, transaction mode; 0 = named statements
	                              * pass unchanged */
	int max_client_prepared_statements; /* named statements per client; 0 = unlimited */
	int max_client_prepared_bytes;      /* their statements' bytes per client; 0 = unlimited */
	char *track_extra_parameters; /* reported parameters restored per client (transaction
	                               * mode) besides the six always tracked */
	int executor_threads;

	/* limits */
	int min_pool_size;           /* servers kept open per pool even when unused */
	int reserve_pool_size;       /* extra servers a pool may open when clients wait too long */
	double reserve_pool_timeout; /* seconds a client waits before the reserve is used */
	int max_db_connections;      /* servers per database across users; 0 = unlimited */
	int max_user_connections;    /* servers per user across databases; 0 = unlimited */

	/* timeouts, seconds; 0 = none */
	double query_wait_timeout;       /* a client waiting for a server */
	double client_idle_timeout;      /* a logged-in client sending nothing */
	double idle_transaction_timeout; /* a client idle inside a transaction */
	double query_timeout;            /* a query running: cancelled, the server kept */
	double shutdown_timeout;         /* SIGTERM/SIGINT drain limit; 0 = none */
	double server_login_retry;       /* cap of the back-off between failed connects */
	double server_idle_timeout;      /* an idle server above min_pool_size is closed */
	double server_lifetime;          /* a server this old is closed when next idle */
	double server_check_delay;       /* an idle server unused this long is checked */
	char *server_check_query;        /* the check; "" = none */
	char *log_level;           /* error|warning|info|debug */
	char *logfile;             /* "" = stderr */
	int syslog;                /* 1 = to syslog instead of stderr */
	char *syslog_ident;
	char *syslog_facility;     /* auth|authpriv|daemon|user|local0..7 */
	int log_connections;       /* 1 = a line per login */
	int log_disconnections;    /* 1 = a line per disconnection */
	int log_pooler_errors;     /* 1 = a warning per error pgcoro sends a client */
	double stats_period;       /* seconds between stats lines; 0 = none */
	char *metrics_listen;      /* "host:port" of /metrics; "" = none */
	char *pidfile;             /* "" = none */

	struct cfg_db *dbs;
	int ndbs;
	struct cfg_user *users;
	int nusers;
};

/* Loads and validates FILE. On success returns a new config (caller frees with cfg_free).
 * On failure returns NULL and writes "file:line: reason" (or "file: reason") into err. */
struct config *cfg_load(const char *path, char *err, size_t errlen) __attribute__((warn_unused_result));

/* A copy of CFG with KEY (a [pgcoro] key, any case) set to VALUE as the file would set it,
 * validated like a loaded file (console SET). NULL with the reason in ERR: unknown key,
 * bad value, a failed validation or out of memory. CFG is not changed. */
struct config *cfg_with(const struct config *cfg, const char *key, const char *value, char *err,
			size_t errlen) __attribute__((warn_unused_result));

/* A config with every default and no databases (for tests and the embedded demo). */
struct config *cfg_default(void);

void cfg_free(struct config *cfg);

/* The [databases] entry for NAME: an exact match, else the "*" entry, else NULL. */
const struct cfg_db *cfg_find_db(const struct config *cfg, const char *name);

/* The [users] entry for NAME, or NULL. */
const struct cfg_user *cfg_find_user(const struct config *cfg, const char *name);

/* Splits "host:port" ("[v6addr]:port"; "*" = every address, given as "0.0.0.0") into
 * HOST (NUL-terminated, at most HOSTLEN bytes) and *PORT. False if it does not parse. */
bool cfg_parse_host_port(const char *s, char *host, size_t hostlen, int *port)
	__attribute__((warn_unused_result));

/* The value of libpq keyword KW in DB's conninfo, or NULL. */
const char *cfg_db_param(const struct cfg_db *db, const char *kw);

const char *cfg_pool_mode_name(int mode);
const char *cfg_auth_type_name(int type);

/* When a changed value takes effect. */
enum cfg_when {
	CFG_LIVE,       /* at once, on reload or console SET */
	CFG_WITH_FILES, /* on reload, with the files it reads (auth_file, hba rules, TLS
	                 * context): SET cannot change it */
	CFG_AT_START,   /* at the next start only */
};

/* The settings table, for SHOW CONFIG and the documentation test. */
struct cfg_key {
	const char *section;   /* "pgcoro" */
	const char *key;
	int type;              /* internal */
	size_t offset;         /* into struct config */
	const char *def;       /* default, as written in the ini file */
	const char *help;      /* one line */
	enum cfg_when when;
};
const struct cfg_key *cfg_keys(size_t *n);

/* The current value of K in CFG as written in the file, into BUF. */
void cfg_key_value(const struct config *cfg, const struct cfg_key *k, char *buf, size_t len);
/* False for keys read only at start (a reload or SET does not change them). */
bool cfg_key_reloadable(const struct cfg_key *k);

/* False for keys the console's SET cannot change: those read only at start and those
 * that take effect with files RELOAD reads (auth_file, hba rules, TLS context). */
bool cfg_key_settable(const struct cfg_key *k);

/* Writes "key = value" for every [pgcoro] key of CFG (current values). */
void cfg_dump(const struct config *cfg, FILE *out);

#endif
