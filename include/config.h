/* The configuration: one table drives parsing (inih), defaults, validation, SHOW CONFIG
 * and the documentation check of conf/pgcoro.ini. A loaded config is immutable;
 * reload builds a new one and swaps the pointer. pgcoro reads its own pgcoro.ini and
 * PgBouncer's pgbouncer.ini as it is: [pgbouncer] is the main section as [pgcoro] is,
 * %include, every key PgBouncer documents (see enum cfg_compat). */
#ifndef PGCORO_CONFIG_H
#define PGCORO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "log.h"
#include "types.h"

enum pool_mode {
	POOL_MODE_UNSET = -1, /* per-db / per-user: inherit */
	POOL_SESSION = 0,
	POOL_TRANSACTION,
	POOL_STATEMENT,
};

/* pin_session_state (pin.h): what transaction/statement mode does with a client that makes
 * session state. */
enum pin_mode {
	PIN_UNSET = -1, /* per-db / per-user: inherit */
	PIN_ON = 0,     /* it keeps its server while the state lives */
	PIN_OFF,        /* nothing (PgBouncer's way) */
	PIN_ERROR,      /* its statement fails with 0A000 */
};

enum auth_type {
	AUTH_TRUST = 0,
	AUTH_PLAIN,  /* "plain": cleartext password checked against the auth_file */
	AUTH_MD5,    /* "md5" */
	AUTH_SCRAM,  /* "scram-sha-256" */
	AUTH_CERT,   /* "cert": TLS client certificate, its CN must be the user */
	AUTH_HBA,    /* "hba": the method of the first matching auth_hba_file rule */
	AUTH_ANY,    /* "any": no authentication, the user name given is ignored: every login
	              * is its database's user= (PgBouncer's) */
	AUTH_PAM,    /* "pam": cleartext password checked by PAM, service "pgbouncer" */
	AUTH_LDAP,   /* "ldap": cleartext password checked by an LDAP bind (ldapauth.h) */
};

/* load_balance_hosts of a [databases] entry with several hosts. */
enum cfg_load_balance {
	LB_ROUND_ROBIN = 0, /* each new server connection starts at the next host (PgBouncer) */
	LB_DISABLE,         /* every connection tries the hosts in order (libpq's way) */
};

/* One key of [databases]: "name = <libpq conninfo> [pgcoro keys]". Settings absent from
 * the entry are -1 (ints, durations) or NULL (strings): the global value applies. */
struct cfg_db {
	char *name;      /* the database name clients ask for; "*" is the fallback entry */
	char **kw;       /* NULL-terminated libpq keywords given in the conninfo (pgcoro keys
	                  * removed; PgBouncer's datestyle and timezone moved into options) */
	char **val;      /* values, parallel to kw */
	int pool_size;   /* pool_size=N in the entry; -1 = default_pool_size */
	int pool_mode;   /* pool_mode=... in the entry; POOL_MODE_UNSET = global */
	int pin_session_state; /* enum pin_mode; PIN_UNSET = global */
	int min_pool_size;      /* -1 = global min_pool_size */
	int reserve_pool_size;  /* -1 = global reserve_pool_size (also spelt reserve_pool) */
	int max_db_connections; /* -1 = global max_db_connections (0 = unlimited) */
	int max_db_client_connections; /* -1 = global (0 = unlimited) */
	double server_lifetime;    /* -1 = global server_lifetime */
	double query_wait_timeout; /* -1 = the user's, else the global one */
	int load_balance_hosts;    /* enum cfg_load_balance */
	char *connect_query;       /* run on each new server before use; NULL = none */
	char *auth_user;           /* auth_user/auth_dbname/auth_query for this database's */
	char *auth_dbname;         /* logins (authquery.h); NULL = the global one */
	char *auth_query;
	char *file;      /* the %include file it is in; NULL = the main file */
	int line;        /* line in that file, for messages */
};

/* One key of [users]: "name = key=value ...". Absent settings are -1: inherited. */
struct cfg_user {
	char *name;
	int pool_mode;   /* POOL_MODE_UNSET = inherit */
	int pin_session_state; /* PIN_UNSET = inherit */
	int pool_size;   /* -1 = inherit (the database's, else default_pool_size) */
	int reserve_pool_size;    /* -1 = the database's, else the global one */
	int max_user_connections; /* -1 = global max_user_connections (0 = unlimited) */
	int max_user_client_connections; /* -1 = global (0 = unlimited) */
	double query_timeout;            /* -1 = global */
	double query_wait_timeout;       /* -1 = the database's, else global */
	double idle_transaction_timeout; /* -1 = global */
	double client_idle_timeout;      /* -1 = global */
	double transaction_timeout;      /* -1 = global */
	char *file;      /* as in struct cfg_db */
	int line;
};

/* PgBouncer's largest peer_id: the id travels in 16 bits of the cancel keys. */
#define CFG_MAX_PEER_ID 16383

/* One key of [peers]: "id = host=... [port=...] [pool_size=...]", PgBouncer's: where the
 * pgcoro (or PgBouncer) of that peer_id listens, for the cancel requests forwarded to it. */
struct cfg_peer {
	int id;        /* 1..CFG_MAX_PEER_ID */
	char *host;    /* a host name or address, a unix socket directory (/...) or an abstract
	                * unix socket name (@...) */
	int port;      /* 6432 when not given; the number in the unix socket's name */
	int pool_size; /* cancel requests in flight to it at once; -1 = default_pool_size */
};

struct config {
	char *path;                /* the file it was loaded from */
	char **warnings;           /* "file:line: text" for each setting accepted with a
	                            * warning (PgBouncer's keys pgcoro does differently); the
	                            * caller logs them */
	int nwarnings;
	bool pgbouncer_ini;        /* the file has a [pgbouncer] section: PgBouncer's defaults
	                            * (listen_addr, load_balance_hosts) and syntax apply */

	/* [pgcoro] — field names equal the ini keys */
	char *listen_addr;         /* comma list of addresses, "*" = all; "" = no TCP */
	int listen_port;
	char *unix_socket_dir;     /* "" = no unix socket */
	int unix_socket_mode;      /* octal in the file */
	char *unix_socket_group;   /* group of the unix socket; "" = the process's */
	int listen_backlog;        /* listen(2) backlog */
	int tcp_defer_accept;      /* 1 = TCP_DEFER_ACCEPT on the TCP listeners */
	int tcp_socket_buffer;     /* SO_SNDBUF/SO_RCVBUF of client and server sockets; 0 = kernel's */
	int tcp_keepalive;         /* 1 = TCP keepalive on client and server sockets */
	int tcp_keepcnt;           /* keepalive probes; 0 = the OS default */
	int tcp_keepidle;          /* seconds idle before probing; 0 = the OS default */
	int tcp_keepintvl;         /* seconds between probes; 0 = the OS default */
	int tcp_user_timeout;      /* TCP_USER_TIMEOUT, milliseconds; 0 = the OS default */
	int so_reuseport;          /* 1 = SO_REUSEPORT on the TCP listeners */
	char *user;                /* OS user to switch to at start; "" = stay */
	char *conffile;            /* the file RELOAD reads; "" = the one loaded */
	char *job_name;            /* PgBouncer's Windows service name; no effect */
	int auth_type;             /* enum auth_type */
	char *auth_file;           /* "" = none */
	char *auth_hba_file;       /* pg_hba.conf rules for auth_type hba; "" = none */
	char *auth_ident_file;     /* ident maps for auth_hba_file's map=; "" = none */
	char *auth_user;           /* who runs auth_query for users not in auth_file ("": */
	char *auth_query;          /* nobody), the query, and the [databases] entry it runs */
	char *auth_dbname;         /* on ("": the client's) (authquery.h) */
	char *auth_ldap_options;   /* auth_type ldap's options (ldapauth.h); "" = none */
	double auth_ldap_timeout;  /* seconds, each LDAP connection and operation; 0 = none */
	int scram_iterations;      /* SCRAM iterations of the verifiers made from plain
	                            * auth_file passwords */
	int max_password_checks_waiting; /* cleartext checks waiting for the executor */
	int client_tls_sslmode;    /* enum tls_mode */
	char *client_tls_key_file;
	char *client_tls_cert_file;
	char *client_tls_ca_file;
	char *client_tls_protocols; /* "secure" = tlsv1.2,tlsv1.3 */
	char *client_tls_ciphers;   /* OpenSSL cipher list (TLS 1.2 and lower); "default" */
	char *client_tls13_ciphers; /* TLS 1.3 cipher suites; "" = OpenSSL's */
	char *client_tls_ecdhcurve; /* "auto", "none" or a curve (group) name */
	char *client_tls_dheparams; /* "auto" (DHE with OpenSSL's parameters) or "none" */
	/* PgBouncer's server_tls_* keys: defaults for every [databases] conninfo that does not
	 * set the libpq keyword itself (sslmode, sslrootcert, sslcert, sslkey); "" = libpq's */
	char *server_tls_sslmode;
	char *server_tls_ca_file;
	char *server_tls_cert_file;
	char *server_tls_key_file;
	char *server_tls_protocols; /* as libpq ssl_min/max_protocol_version */
	/* OpenSSL cipher list (TLS 1.2 and lower; "default" = OpenSSL's) and TLS 1.3 suites
	 * ("" = OpenSSL's) towards servers: libpq has no setting for them, so other values
	 * make every server login pgcoro's own (srvconnect.h) */
	char *server_tls_ciphers;
	char *server_tls13_ciphers;
	/* Set by reload.c, not by a key: a digest of the server_tls_* files' contents
	 * (tls_server_files_digest), and a generation bumped whenever a new config's digest or
	 * server ciphers differ from the ones in force (pools replace their servers then, as
	 * PgBouncer does when its server TLS configuration changed). */
	unsigned char server_tls_digest[32];
	unsigned server_tls_gen;
	char *admin_users;         /* comma list: every console command */
	char *stats_users;         /* comma list: console SHOW commands */
	int pool_mode;             /* enum pool_mode */
	int pin_session_state;     /* enum pin_mode */
	int default_pool_size;
	int max_client_conn;
	int max_db_client_connections;   /* clients per database; 0 = unlimited */
	int max_user_client_connections; /* clients per user; 0 = unlimited */
	char *server_reset_query;  /* "" = none */
	int server_round_robin;    /* 1 = hand out the longest-idle server, 0 = the latest (LIFO) */
	double server_connect_timeout; /* seconds; 0 = none */
	double client_login_timeout;   /* seconds; 0 = none */
	int max_packet_size;       /* bytes, largest client message accepted */
	int max_prepared_statements; /* per server, transaction mode; 0 = named statements
	                              * pass unchanged */
	int max_client_prepared_statements; /* named statements per client; 0 = unlimited */
	int max_client_prepared_bytes;      /* their statements' bytes per client; 0 = unlimited */
	int max_client_listen_channels;     /* LISTEN channels per client; 0 = unlimited */
	int max_held_notification_bytes;    /* notifications held for busy clients, all
	                                     * together; 0 = unlimited */
	char *track_extra_parameters; /* reported parameters restored per client (transaction
	                               * mode) besides the six always tracked */
	char *ignore_startup_parameters; /* startup parameters dropped, not applied (PgBouncer's
	                                  * list; "options": its settings that are not tracked) */
	int pkt_buf;                  /* PgBouncer's; no effect (warning) */
	int sbuf_loopcnt;             /* PgBouncer's; no effect (warning) */
	int application_name_add_host; /* 1: " - host:port" after the client's application_name */
	int disable_pqexec;            /* a client's Query closes it (client_refuse_query) */
	int peer_id;                   /* this process in [peers]' group; 0 = no peering */
	int server_reset_query_always; /* 1: server_reset_query in every pool mode */
	int server_fast_close;         /* session mode: a server to be replaced is closed, with
	                                * its client, at the end of its transaction */
	double query_wait_notify;      /* a client queued this long gets a notice; 0 = none */
	char *login_notify_message;    /* a notice after login; "" = none */
	char *resolv_conf;             /* only "" (not supported yet) */
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
	double query_timeout;            /* a query running or waiting: the client closed */
	double shutdown_timeout;         /* SIGTERM/SIGINT drain limit; 0 = none */
	double transaction_timeout;      /* a transaction left open */
	double cancel_wait_timeout;      /* PgBouncer's; no effect (warning) */
	double suspend_timeout;          /* SHOW FDS waits this long for a quiet pool */
	double pool_idle_timeout;        /* an unused pool is freed after this; 0 = never */
	double autodb_idle_timeout;      /* an unused "*" database is freed after this */
	double dns_max_ttl;              /* PgBouncer's DNS cache: no effect (warning) */
	double dns_nxdomain_ttl;
	double dns_zone_check_period;
	double server_login_retry;       /* cap of the connect back-off; patience of waiters */
	double server_idle_timeout;      /* an idle server above min_pool_size is closed */
	double server_lifetime;          /* a server this old is closed when next idle */
	double server_check_delay;       /* an idle server unused this long is checked */
	char *server_check_query;        /* the check; "" = none */
	char *log_level;           /* error|warning|info|debug */
	int verbose;               /* PgBouncer's -v count: 1..3 = log_level debug */
	int log_stats;             /* 1 = the stats line every stats_period */
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
	struct cfg_peer *peers;    /* [peers], in ascending id order */
	int npeers;
};

/* Loads and validates FILE. On success returns a new config (caller frees with cfg_free).
 * On failure returns NULL and writes "file:line: reason" (or "file: reason") into err. */
struct config *cfg_load(const char *path, char *err, size_t errlen) __attribute__((warn_unused_result));

/* A copy of CFG with KEY (a [pgcoro] key, any case) set to VALUE as the file would set it,
 * validated like a loaded file (console SET), with the file's messages. NULL with the
 * reason in ERR: unknown key, bad value, a failed validation or out of memory. CFG is not
 * changed. */
struct config *cfg_with(const struct config *cfg, const char *key, const char *value, char *err,
			size_t errlen) __attribute__((warn_unused_result));

/* A config with every default and no databases (for tests and the embedded demo). */
struct config *cfg_default(void);

void cfg_free(struct config *cfg);

/* The [databases] entry for NAME: an exact match, else the "*" entry, else NULL. */
const struct cfg_db *cfg_find_db(const struct config *cfg, const char *name);

/* The [peers] entry of ID, or NULL. */
const struct cfg_peer *cfg_find_peer(const struct config *cfg, int id);

/* The [users] entry for NAME, or NULL. */
const struct cfg_user *cfg_find_user(const struct config *cfg, const char *name);

/* Splits "host:port" ("[v6addr]:port"; "*" = every address, given as "0.0.0.0") into
 * HOST (NUL-terminated, at most HOSTLEN bytes) and *PORT. False if it does not parse. */
bool cfg_parse_host_port(const char *s, char *host, size_t hostlen, int *port)
	__attribute__((warn_unused_result));

/* True if NAME is in LIST, a comma- (or blank-) separated list, ignoring case (as
 * parameter names are compared). */
bool cfg_list_has(const char *list, const char *name);

/* The value of libpq keyword KW in DB's conninfo, or NULL. */
const char *cfg_db_param(const struct cfg_db *db, const char *kw);

/* The log level CFG asks for: log_level, or debug when PgBouncer's verbose is 1 or more. */
enum log_level cfg_log_level(const struct config *cfg);

const char *cfg_pool_mode_name(int mode);
const char *cfg_auth_type_name(int type);

/* When a changed value takes effect. */
enum cfg_when {
	CFG_LIVE,       /* at once, on reload or console SET */
	CFG_WITH_FILES, /* on reload or console SET, with the files a reload reads
	                 * (auth_file, hba rules, TLS context), which are read again */
	CFG_AT_START,   /* at the next start only (a console SET of it is ignored) */
};

/* How a key relates to PgBouncer's key of the same name. */
enum cfg_compat {
	CFG_NATIVE, /* pgcoro's own key, or PgBouncer's with PgBouncer's meaning */
	CFG_WARN,   /* PgBouncer's key for a job pgcoro does differently: any valid value is
	             * accepted; one other than the default logs the note, which names what
	             * pgcoro does instead */
	CFG_NOT_YET, /* PgBouncer's key for a feature pgcoro lacks: only the values pgcoro
	              * honours are valid (its type's domain); another is refused as "not
	              * supported yet", with the note */
};

/* The settings table, for SHOW CONFIG and the documentation test. */
struct cfg_key {
	const char *section;   /* "pgcoro" (also read as [pgbouncer]) */
	const char *key;
	int type;              /* internal */
	size_t offset;         /* into struct config */
	const char *def;       /* default, as written in the ini file */
	const char *help;      /* one line */
	enum cfg_when when;
	enum cfg_compat compat;
	const char *note;      /* CFG_WARN, CFG_NOT_YET: see there; CFG_NATIVE: logged when
	                        * the key is set in a [pgbouncer] section, where its meaning
	                        * differs from PgBouncer's (NULL: it does not) */
};
const struct cfg_key *cfg_keys(size_t *n);

/* The current value of K in CFG as written in the file, into BUF. */
void cfg_key_value(const struct config *cfg, const struct cfg_key *k, char *buf, size_t len);
/* False for keys read only at start (a reload or SET does not change them). */
bool cfg_key_reloadable(const struct cfg_key *k);

/* Sets K in DST to its value in SRC (a string is copied). False, DST unchanged, if out of
 * memory. */
bool cfg_key_copy(struct config *dst, const struct config *src, const struct cfg_key *k)
	__attribute__((warn_unused_result));

/* True for keys that take effect with the files a reload reads (auth_file, hba rules,
 * TLS context): a reload or console SET of one re-reads them. */
bool cfg_key_reads_files(const struct cfg_key *k);

/* Writes "key = value" for every [pgcoro] key of CFG (current values). */
void cfg_dump(const struct config *cfg, FILE *out);

#endif
