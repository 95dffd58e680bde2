/* Owns the configuration: the settings table (keys, types, defaults, help, and how each
 * relates to PgBouncer's key of that name), loading an ini file through inih into a
 * struct config (with %include, and PgBouncer's pgbouncer.ini as it is), [databases]
 * conninfo splitting and validation through libpq, the pgcoro settings of [databases]
 * and [users] entries, lookups and the "key = value" dump. Every error names
 * "file:line". The table drives parsing, defaults, validation and the dump. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <libpq-fe.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>

#include "ldapauth.h"
#include "log.h"
#include "tls.h"

#define CFG_ERRLEN 512
/* Longest accepted line, '\n' included; inih's buffer is sized to hold it (see below). */
#define CFG_MAX_LINE 16384
/* Deepest %include nesting (PgBouncer's limit): the main file is level 0. */
#define CFG_MAX_INCLUDE 10

/* ---- value types ------------------------------------------------------------------- */

/* How a value is read and stored. */
enum cfg_kind {
	K_STRING,   /* char *; one pair of surrounding double quotes is removed */
	K_INT,      /* int, decimal, [min, max] */
	K_OCTAL,    /* int, octal digits, [min, max] */
	K_BYTES,    /* int, bytes with optional B/kB/MB/GB (1024-based), [min, max] */
	K_SECONDS,  /* double, number with optional ms/s/min/h, [min, max] seconds */
	K_ENUM,     /* int, index into names */
	K_ENUM_STR, /* char *, one of names (stored in canonical spelling) */
	K_BOOL,     /* int 0 or 1: 0/1, off/on, false/true, no/yes */
};

/* The type of a key (cfg_key.type indexes types[]): a kind and its domain. */
enum {
	T_STRING,
	T_PORT,
	T_MODE,
	T_POOL_SIZE,
	T_POOL_COUNT,
	T_CONN_LIMIT,
	T_MAX_CLIENT_CONN,
	T_PACKET_SIZE,
	T_BYTES_LIMIT,
	T_THREADS,
	T_SECONDS,
	T_POOL_MODE,
	T_AUTH_TYPE,
	T_LOG_LEVEL,
	T_BOOL,
	T_SYSLOG_FACILITY,
	T_SSLMODE,
	T_INT,            /* any count, 0..INT_MAX */
	T_POSITIVE,       /* 1..INT_MAX */
	T_ZERO,           /* PgBouncer's integer keys pgcoro lacks: only 0 */
	T_ZERO_SECONDS,   /* PgBouncer's timeouts pgcoro lacks: only 0 */
	T_EMPTY,          /* PgBouncer's string keys pgcoro lacks: only "" */
	T_CIPHERS,        /* a cipher list OpenSSL takes (tls_set_cipher_list) */
	T_CIPHERSUITES,   /* TLS 1.3 suites OpenSSL takes (tls_set_ciphersuites) */
	T_DHEPARAMS,
	T_LOAD_BALANCE,
	T_PEER_ID,        /* peer_id: 0 = no peering; 16383 at most, PgBouncer's limit */
	T_PIN,            /* pin_session_state */
};

static const char *const pool_mode_names[] = {"session", "transaction", "statement", NULL};
/* indexed by enum auth_type */
static const char *const auth_type_names[] = {"trust", "plain", "md5", "scram-sha-256", "cert",
					      "hba",   "any",   "pam", "ldap", NULL};
static const char *const empty_names[] = {"", NULL};
static const char *const dheparams_names[] = {"auto", "none", NULL};
/* indexed by enum cfg_load_balance */
static const char *const load_balance_names[] = {"round-robin", "disable", NULL};
/* indexed by enum pin_mode */
static const char *const pin_names[] = {"on", "off", "error", NULL};
/* indexed by enum tls_mode */
static const char *const sslmode_names[] = {"disable", "allow",     "prefer",     "require",
					    "verify-ca", "verify-full", NULL};
/* false spellings at even, true at odd indexes */
static const char *const bool_names[] = {"0", "1", "off", "on", "false", "true", "no", "yes", NULL};

struct cfg_type {
	enum cfg_kind kind;
	long long min, max;       /* K_INT, K_OCTAL, K_BYTES, K_SECONDS */
	const char *const *names; /* K_ENUM, K_ENUM_STR */
	/* K_STRING: what else a value must pass (the reason in WHY when not); NULL: nothing */
	bool (*check)(const char *value, char *why, size_t whylen);
};

static const struct cfg_type types[] = {
    [T_STRING] = {K_STRING, 0, 0, NULL, NULL},
    [T_PORT] = {K_INT, 1, 65535, NULL, NULL},
    [T_MODE] = {K_OCTAL, 0, 07777, NULL, NULL},
    [T_POOL_SIZE] = {K_INT, 1, 100000, NULL, NULL},
    [T_POOL_COUNT] = {K_INT, 0, 100000, NULL, NULL},  /* min_pool_size, reserve_pool_size */
    /* max_*_connections, max_client_prepared_statements, max_client_listen_channels;
     * 0 = unlimited */
    [T_CONN_LIMIT] = {K_INT, 0, 1000000, NULL, NULL},
    [T_MAX_CLIENT_CONN] = {K_INT, 1, 1000000, NULL, NULL},
    /* PgBouncer's default is INT_MAX */
    [T_PACKET_SIZE] = {K_BYTES, 1024, INT_MAX, NULL, NULL},
    [T_BYTES_LIMIT] = {K_BYTES, 0, INT_MAX, NULL, NULL}, /* 0 = unlimited */
    [T_THREADS] = {K_INT, 1, 64, NULL, NULL},
    /* up to INT_MAX milliseconds, so any timeout fits an int of ms */
    [T_SECONDS] = {K_SECONDS, 0, INT_MAX / 1000, NULL, NULL},
    [T_POOL_MODE] = {K_ENUM, 0, 0, pool_mode_names, NULL},
    [T_AUTH_TYPE] = {K_ENUM, 0, 0, auth_type_names, NULL},
    [T_LOG_LEVEL] = {K_ENUM_STR, 0, 0, log_level_names, NULL},
    [T_BOOL] = {K_BOOL, 0, 0, bool_names, NULL},
    [T_SYSLOG_FACILITY] = {K_ENUM_STR, 0, 0, log_facility_names, NULL},
    [T_SSLMODE] = {K_ENUM, 0, 0, sslmode_names, NULL},
    [T_INT] = {K_INT, 0, INT_MAX, NULL, NULL},
    [T_POSITIVE] = {K_INT, 1, INT_MAX, NULL, NULL},
    [T_ZERO] = {K_INT, 0, 0, NULL, NULL},
    [T_ZERO_SECONDS] = {K_SECONDS, 0, 0, NULL, NULL},
    [T_EMPTY] = {K_ENUM_STR, 0, 0, empty_names, NULL},
    [T_CIPHERS] = {K_STRING, 0, 0, NULL, tls_check_cipher_list},
    [T_CIPHERSUITES] = {K_STRING, 0, 0, NULL, tls_check_ciphersuites},
    [T_DHEPARAMS] = {K_ENUM_STR, 0, 0, dheparams_names, NULL},
    [T_LOAD_BALANCE] = {K_ENUM, 0, 0, load_balance_names, NULL},
    [T_PEER_ID] = {K_INT, 0, CFG_MAX_PEER_ID, NULL, NULL},
    [T_PIN] = {K_ENUM, 0, 0, pin_names, NULL},
};

/* ---- the settings table ------------------------------------------------------------ */

/* KEY: a key a reload or SET changes at once; KEY_AT: one taking effect only WHEN;
 * KEY_PGB: one whose meaning differs from PgBouncer's key of that name (NOTE is logged
 * when a [pgbouncer] section sets it); KEY_WARN, KEY_NOT_YET: PgBouncer's keys pgcoro does
 * differently or lacks (enum cfg_compat). */
#define KEY_FULL(when, compat, note, name, type, def, help)                                      \
	{                                                                                          \
		"pgcoro", #name, type, offsetof(struct config, name), def, help, when, compat,     \
		    note                                                                           \
	}
#define KEY_AT(when, name, type, def, help) KEY_FULL(when, CFG_NATIVE, NULL, name, type, def, help)
#define KEY(name, type, def, help) KEY_AT(CFG_LIVE, name, type, def, help)
#define KEY_PGB(when, name, type, def, help, note)                                                \
	KEY_FULL(when, CFG_NATIVE, note, name, type, def, help)
#define KEY_WARN(name, type, def, help, note) KEY_FULL(CFG_LIVE, CFG_WARN, note, name, type, def, help)
#define KEY_NOT_YET(when, name, type, def, help, note)                                           \
	KEY_FULL(when, CFG_NOT_YET, note, name, type, def, help)

/* PgBouncer's default auth_query */
#define PGB_AUTH_QUERY                                                                           \
	"SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM "     \
	"pg_authid WHERE rolname=$1 AND rolcanlogin"

static const struct cfg_key keys[] = {
    KEY_AT(CFG_AT_START, listen_addr, T_STRING, "127.0.0.1",
        "TCP addresses to listen on, comma-separated; * = all; empty = no TCP (the default "
        "in a file with a [pgbouncer] section, as PgBouncer's)"),
    KEY_AT(CFG_AT_START, listen_port, T_PORT, "6432",
        "TCP port, also the number in the unix socket name"),
    KEY_AT(CFG_AT_START, unix_socket_dir, T_STRING, "/tmp",
        "directory of the unix socket .s.PGSQL.<listen_port>; empty = no unix socket"),
    KEY_AT(CFG_AT_START, unix_socket_mode, T_MODE, "0777",
        "permissions of the unix socket, octal"),
    KEY_AT(CFG_AT_START, unix_socket_group, T_STRING, "",
        "group the unix socket belongs to; empty = the process's"),
    KEY_AT(CFG_AT_START, listen_backlog, T_POSITIVE, "512",
        "backlog of the listening sockets (listen(2)): connections the kernel queues"),
    KEY_AT(CFG_AT_START, tcp_defer_accept, T_BOOL, "0",
        "1 = TCP_DEFER_ACCEPT on the TCP listeners: a connection is accepted once it sends"),
    KEY(tcp_socket_buffer, T_INT, "0",
        "send buffer size of client and server sockets and receive buffer of client sockets "
        "(from the listening sockets, set at start), bytes; 0 = the kernel's"),
    KEY(tcp_keepalive, T_BOOL, "1", "TCP keepalive on client and server sockets"),
    KEY(tcp_keepcnt, T_INT, "0", "keepalive probes before a connection is dropped; 0 = OS default"),
    KEY(tcp_keepidle, T_INT, "0", "idle seconds before the first keepalive probe; 0 = OS default"),
    KEY(tcp_keepintvl, T_INT, "0", "seconds between keepalive probes; 0 = OS default"),
    KEY(tcp_user_timeout, T_INT, "0",
        "TCP_USER_TIMEOUT of client and server sockets, milliseconds; 0 = OS default"),
    KEY_AT(CFG_AT_START, so_reuseport, T_BOOL, "0",
        "1 = SO_REUSEPORT on the TCP listeners: several pgcoro processes listen on one port "
        "and the kernel spreads the connections (each with its own unix_socket_dir and "
        "pidfile; see peer_id and [peers] for their cancel requests)"),
    KEY_AT(CFG_WITH_FILES, auth_type, T_AUTH_TYPE, "md5",
        "client authentication: trust, plain, md5, scram-sha-256, cert, hba, any (no "
        "authentication: every login is its database's user=, and any user name gets into the "
        "admin console: SHOW only, admin_users all), pam (cleartext password checked by PAM "
        "service \"pgbouncer\"; auth_file unused; the password is the server login's) or ldap "
        "(cleartext password checked by an LDAP bind with auth_ldap_options; auth_file unused; "
        "the password is the server login's)"),
    KEY_AT(CFG_WITH_FILES, auth_file, T_STRING, "",
        "file of \"user\" \"password\" lines; empty = none"),
    KEY_AT(CFG_WITH_FILES, auth_hba_file, T_STRING, "",
        "pg_hba.conf-style rules choosing the method per connection (auth_type hba)"),
    KEY_AT(CFG_WITH_FILES, auth_ident_file, T_STRING, "",
        "pg_ident.conf-style maps named by map= in auth_hba_file's peer and cert rules"),
    KEY(auth_user, T_STRING, "",
        "user that runs auth_query to look up users not in auth_file (its own password comes "
        "from auth_file); empty = no look-up"),
    KEY(auth_query, T_STRING, PGB_AUTH_QUERY,
        "query returning (user name, secret) for $1, run as auth_user (no expired password "
        "is returned by the default)"),
    KEY(auth_dbname, T_STRING, "",
        "the [databases] entry auth_query runs on; empty = the client's database"),
    KEY(auth_ldap_options, T_STRING, "",
        "LDAP options of auth_type ldap, PostgreSQL's (ldapserver=, ldapport=, ldapprefix=, "
        "ldapsuffix=, ldapbasedn=, ldapurl=, ...) as PgBouncer's"),
    KEY(auth_ldap_timeout, T_SECONDS, "10",
        "bound on each LDAP connection and operation of a login (auth_type ldap, hba ldap "
        "rules); 0 = none"),
    KEY_AT(CFG_WITH_FILES, scram_iterations, T_POSITIVE, "4096",
        "SCRAM iterations of the verifiers pgcoro makes from plain auth_file passwords"),
    KEY(max_password_checks_waiting, T_POSITIVE, "1000",
        "cleartext password checks waiting for an executor thread; a login past it is "
        "refused with 53300"),
    KEY_AT(CFG_WITH_FILES, client_tls_sslmode, T_SSLMODE, "disable",
        "TLS for clients: disable, allow, prefer, require, verify-ca or verify-full"),
    KEY_AT(CFG_WITH_FILES, client_tls_key_file, T_STRING, "",
        "private key of the certificate shown to clients"),
    KEY_AT(CFG_WITH_FILES, client_tls_cert_file, T_STRING, "",
        "certificate (chain) shown to clients"),
    KEY_AT(CFG_WITH_FILES, client_tls_ca_file, T_STRING, "",
        "CA that client certificates must be signed by; empty = none asked for"),
    KEY_AT(CFG_WITH_FILES, client_tls_protocols, T_STRING, "secure",
        "TLS versions for clients: tlsv1.0 .. tlsv1.3, all, secure (tlsv1.2,tlsv1.3)"),
    KEY_AT(CFG_WITH_FILES, client_tls_ciphers, T_STRING, "default",
        "OpenSSL cipher list for clients (TLS 1.2 and lower); default (also secure, fast, "
        "normal) = OpenSSL's"),
    KEY_AT(CFG_WITH_FILES, client_tls13_ciphers, T_STRING, "",
        "TLS 1.3 cipher suites for clients, colon-separated; empty = OpenSSL's"),
    KEY_AT(CFG_WITH_FILES, client_tls_ecdhcurve, T_STRING, "auto",
        "elliptic curve (group) for ECDHE with clients; auto or none = OpenSSL's choice"),
    KEY_AT(CFG_WITH_FILES, client_tls_dheparams, T_DHEPARAMS, "auto",
        "DHE key exchange with clients: auto (OpenSSL's parameters) or none"),
    KEY(server_tls_sslmode, T_STRING, "",
        "libpq sslmode for servers unless the conninfo sets one; empty = libpq's (prefer)"),
    KEY_AT(CFG_WITH_FILES, server_tls_ca_file, T_STRING, "",
        "libpq sslrootcert for servers unless the conninfo sets one"),
    KEY_AT(CFG_WITH_FILES, server_tls_cert_file, T_STRING, "",
        "libpq sslcert (client certificate towards servers) unless the conninfo sets one"),
    KEY_AT(CFG_WITH_FILES, server_tls_key_file, T_STRING, "",
        "libpq sslkey (its key) unless the conninfo sets one"),
    KEY(server_tls_protocols, T_STRING, "secure",
        "TLS versions towards servers (libpq ssl_min/max_protocol_version) unless the "
        "conninfo sets them"),
    KEY(server_tls_ciphers, T_CIPHERS, "default",
        "OpenSSL cipher list towards servers (TLS 1.2 and lower); default (also secure, "
        "fast, normal) = OpenSSL's; another value makes pgcoro log in to servers itself"),
    KEY(server_tls13_ciphers, T_CIPHERSUITES, "",
        "TLS 1.3 cipher suites towards servers, colon-separated; empty = OpenSSL's; another "
        "value makes pgcoro log in to servers itself"),
    KEY(admin_users, T_STRING, "",
        "users (comma-separated) allowed every command of the admin console (database pgcoro "
        "or pgbouncer)"),
    KEY(stats_users, T_STRING, "",
        "users (comma-separated) allowed the admin console's SHOW commands"),
    KEY(pool_mode, T_POOL_MODE, "session",
        "when a server goes back to the pool: session, transaction or statement"),
    KEY(pin_session_state, T_PIN, "on",
        "transaction/statement mode: a client that makes session state (SQL PREPARE, WITH "
        "HOLD cursor, session advisory lock, temporary table, LOAD) keeps its server until "
        "the state is gone (on), or its statement is refused with 0A000 (error), or nothing "
        "is done (off: PgBouncer's way); SET is replayed on each server, not pinned"),
    KEY(default_pool_size, T_POOL_SIZE, "20",
        "server connections per (database, user) pool, unless the database sets pool_size"),
    KEY(min_pool_size, T_POOL_COUNT, "0",
        "server connections kept open per pool while it has a client (always for a "
        "database's fixed user=), unless the database sets it"),
    KEY(reserve_pool_size, T_POOL_COUNT, "0",
        "extra server connections a pool may open when a client waits reserve_pool_timeout"),
    KEY(reserve_pool_timeout, T_SECONDS, "5",
        "how long a client waits for a server before the reserve pool is used"),
    KEY(max_client_conn, T_MAX_CLIENT_CONN, "100", "most client connections at once"),
    KEY(max_db_connections, T_CONN_LIMIT, "0",
        "most server connections per database across its users; 0 = unlimited"),
    KEY(max_db_client_connections, T_CONN_LIMIT, "0",
        "most client connections per database; 0 = unlimited"),
    KEY(max_user_connections, T_CONN_LIMIT, "0",
        "most server connections per user across databases; 0 = unlimited"),
    KEY(max_user_client_connections, T_CONN_LIMIT, "0",
        "most client connections per user; 0 = unlimited"),
    KEY(server_round_robin, T_BOOL, "0",
        "0 = hand out the idle server used last (LIFO); 1 = the one idle longest (rotate)"),
    KEY(max_prepared_statements, T_POOL_COUNT, "200",
        "transaction/statement mode: protocol-level prepared statements kept per server "
        "(LRU); 0 = not tracked"),
    KEY(max_client_prepared_statements, T_CONN_LIMIT, "10000",
        "transaction/statement mode: most named prepared statements one client may hold in "
        "pgcoro; a Parse past it gets error 53400; 0 = unlimited"),
    KEY(max_client_prepared_bytes, T_BYTES_LIMIT, "16MB",
        "transaction/statement mode: most bytes of statements (query text, parameter types, "
        "name) one client's named prepared statements may hold in pgcoro; past it 53400; "
        "0 = unlimited"),
    KEY(max_client_listen_channels, T_CONN_LIMIT, "1024",
        "transaction/statement mode: most LISTEN channels one client may listen to through "
        "pgcoro; a LISTEN past it gets error 53400; 0 = unlimited"),
    KEY(max_held_notification_bytes, T_BYTES_LIMIT, "64MB",
        "transaction/statement mode: most bytes of notifications pgcoro holds for clients "
        "that are busy or do not read, all together; past it the client furthest behind is "
        "closed (53200); 0 = unlimited (16MB per client still)"),
    KEY(track_extra_parameters, T_STRING, "IntervalStyle",
        "transaction/statement mode: reported parameters restored per client besides "
        "client_encoding, DateStyle, TimeZone, IntervalStyle, standard_conforming_strings, "
        "application_name"),
    KEY(ignore_startup_parameters, T_STRING, "",
        "startup parameters (comma-separated) a client may send that are dropped, not "
        "applied on the server, unless tracked; \"options\" = the untracked settings of "
        "the options parameter; others are applied"),
    KEY(server_reset_query, T_STRING, "DISCARD ALL",
        "query run on a server before another client gets it; empty = none"),
    KEY(server_reset_query_always, T_BOOL, "0",
        "run server_reset_query in transaction and statement mode too, after every "
        "transaction (PgBouncer's; for applications that leave session state behind)"),
    KEY(server_check_query, T_STRING, "select 1",
        "query run on a server idle longer than server_check_delay before use; empty = "
        "none; <empty> = an empty query (the default in a file with a [pgbouncer] section)"),
    KEY(server_check_delay, T_SECONDS, "30",
        "idle time after which a server is checked with server_check_query before use"),
    KEY(server_fast_close, T_BOOL, "0",
        "session mode: a server RECONNECT or a reload is replacing is closed with its client "
        "as soon as it is between transactions, rather than when the client leaves"),
    KEY(server_connect_timeout, T_SECONDS, "15",
        "limit on connecting and logging in to a server; 0 = none"),
    KEY_PGB(CFG_LIVE, server_login_retry, T_SECONDS, "0.5",
        "cap of the exponential back-off between failed server connection attempts, and how "
        "long a waiting client waits through failed attempts (in a file with a [pgbouncer] "
        "section: until query_wait_timeout, as PgBouncer; PgBouncer's default: 15)",
        "differs from PgBouncer's fixed pause: it caps pgcoro's exponential back-off between "
        "failed server connections (50 ms doubling), so a PostgreSQL that comes back is used "
        "again within it"),
    KEY(server_idle_timeout, T_SECONDS, "600",
        "an idle server connection above min_pool_size is closed after this; 0 = never"),
    KEY(server_lifetime, T_SECONDS, "3600",
        "a server connection this old is closed when next idle; 0 = each is used once "
        "(closed when its client releases it, as PgBouncer)"),
    KEY(client_login_timeout, T_SECONDS, "60",
        "limit on a client's startup and authentication, checked every second; 0 = none"),
    KEY(query_wait_timeout, T_SECONDS, "120",
        "limit on a client waiting for a server (error 57014), checked every second; 0 = none"),
    KEY(query_wait_notify, T_SECONDS, "5",
        "a client waiting this long for a server gets a notice that it is queued (once per "
        "wait), checked every second; 0 = none"),
    KEY(client_idle_timeout, T_SECONDS, "0",
        "a logged-in client idle this long is disconnected; 0 = none"),
    KEY(idle_transaction_timeout, T_SECONDS, "0",
        "a client idle inside a transaction this long is disconnected (25P03); 0 = none"),
    KEY(transaction_timeout, T_SECONDS, "0",
        "a client whose transaction stays open this long is disconnected (25P04); 0 = none"),
    KEY(query_timeout, T_SECONDS, "0",
        "a client whose query runs (or waits for a server) this long is disconnected "
        "(57014), its query cancelled; 0 = none"),
    KEY_WARN(cancel_wait_timeout, T_SECONDS, "10",
        "PgBouncer's limit on a cancel request waiting: no effect (pgcoro never queues one)",
        "no effect: pgcoro sends a cancel request at once, over its own connection, and "
        "never queues it for a pool slot"),
    KEY(shutdown_timeout, T_SECONDS, "30",
        "on SIGTERM/SIGINT, clients still busy after this are closed and pgcoro exits; 0 = wait"),
    KEY_AT(CFG_LIVE, suspend_timeout, T_SECONDS, "10",
        "how long SHOW FDS (online restart, -R) waits for busy connections to quiesce"),
    KEY(pool_idle_timeout, T_SECONDS, "0",
        "a pool with no client and no server this long is freed (its counters go); "
        "0 = never"),
    KEY(autodb_idle_timeout, T_SECONDS, "3600",
        "a database the \"*\" entry made is freed with its pools once none has had a "
        "client or a server this long (their counters go); 0 = never"),
    KEY(max_packet_size, T_PACKET_SIZE, "1073741823",
        "largest message accepted from a client, in bytes (kB, MB, GB allowed)"),
    KEY_WARN(pkt_buf, T_POSITIVE, "4096",
        "PgBouncer's packet buffer size: no effect (pgcoro's buffers grow to each message)",
        "no effect: pgcoro reads each message whole into buffers that grow to it "
        "(max_packet_size bounds one)"),
    KEY_WARN(sbuf_loopcnt, T_INT, "5",
        "PgBouncer's rounds per connection per wake-up: no effect (pgcoro bounds the work "
        "per socket itself)",
        "no effect: pgcoro bounds the work it does for one socket per wake-up itself"),
    KEY_WARN(dns_max_ttl, T_SECONDS, "15",
        "PgBouncer's DNS cache: no effect (libpq looks host names up at each connect)",
        "no effect: pgcoro keeps no DNS cache; libpq looks host names up at each server "
        "connect"),
    KEY_WARN(dns_nxdomain_ttl, T_SECONDS, "15",
        "PgBouncer's DNS cache of failures: no effect (see dns_max_ttl)",
        "no effect: pgcoro keeps no DNS cache; libpq looks host names up at each server "
        "connect"),
    KEY_WARN(dns_zone_check_period, T_SECONDS, "0",
        "PgBouncer's DNS zone serial check: no effect (see dns_max_ttl)",
        "no effect: pgcoro keeps no DNS cache; libpq looks host names up at each server "
        "connect"),
    KEY_NOT_YET(CFG_AT_START, resolv_conf, T_EMPTY, "",
        "PgBouncer's own resolv.conf; only empty (the system's resolver is used)",
        "a resolv.conf of its own is not there yet (libpq uses the system's resolver); only "
        "an empty value is accepted"),
    KEY(application_name_add_host, T_BOOL, "0",
        "add the client's address and port to the application_name it sets (\"app\" when "
        "it sets none), as PgBouncer: \"psql - 10.0.0.7:51234\""),
    KEY_AT(CFG_AT_START, disable_pqexec, T_BOOL, "0",
        "refuse the simple query protocol, as PgBouncer: a client's Query message closes "
        "it (FATAL 08P01 \"PQexec disallowed\"); the admin console is exempt"),
    KEY(login_notify_message, T_STRING, "",
        "a notice sent to every client once it has logged in (with its welcome); empty = "
        "none"),
    KEY(peer_id, T_PEER_ID, "0",
        "this process's id (1..16383) in a group of peered processes ([peers]): it is in "
        "the cancel keys clients get, so a peer that receives their CancelRequest forwards "
        "it here; 0 = no peering"),
    KEY_AT(CFG_AT_START, executor_threads, T_THREADS, "2",
        "threads for blocking work: connect steps, cancels, reloads, password checks"),
    KEY(log_level, T_LOG_LEVEL, "info", "error, warning, info or debug"),
    KEY(verbose, T_INT, "0", "PgBouncer's verbosity (the -v count): 1 or more = log_level debug"),
    KEY_AT(CFG_AT_START, logfile, T_STRING, "", "log file; empty = stderr (journald)"),
    KEY_AT(CFG_AT_START, syslog, T_BOOL, "0",
        "1 = log to syslog instead of stderr (a logfile, if set, is written as well)"),
    KEY_AT(CFG_AT_START, syslog_ident, T_STRING, "pgcoro", "the program name syslog lines carry"),
    KEY_AT(CFG_AT_START, syslog_facility, T_SYSLOG_FACILITY, "daemon",
        "syslog facility: auth, authpriv, daemon, user or local0 to local7"),
    KEY(log_connections, T_BOOL, "1", "log each successful client login"),
    KEY(log_disconnections, T_BOOL, "1", "log each client disconnection and its reason"),
    KEY(log_pooler_errors, T_BOOL, "1",
        "log (as a warning) each error pgcoro itself sends to a client"),
    KEY(stats_period, T_SECONDS, "60",
        "interval of the stats line (transactions, queries, bytes, times); 0 = none"),
    KEY(log_stats, T_BOOL, "1", "write the stats line every stats_period"),
    KEY(metrics_listen, T_STRING, "",
        "host:port of the Prometheus endpoint http://host:port/metrics ([::1]:port for IPv6, "
        "*:port for every address); empty = none, and no histograms are recorded"),
    KEY_AT(CFG_AT_START, pidfile, T_STRING, "", "file to write the process id to; empty = none"),
    KEY_AT(CFG_AT_START, user, T_STRING, "",
        "OS user to switch to after start (when started as root); empty = stay"),
    KEY(conffile, T_STRING, "",
        "the file RELOAD and SIGHUP read; empty = the one pgcoro was started with"),
    KEY_AT(CFG_AT_START, job_name, T_STRING, "pgbouncer",
        "PgBouncer's Windows service name; no effect"),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* PgBouncer's defaults where they differ from pgcoro's in a way a pgbouncer.ini relies on:
 * in force in a file with a [pgbouncer] section, for the keys it does not set. */
static const struct {
	const char *key, *def;
} pgb_defaults[] = {
    {"listen_addr", ""},                  /* unix socket only */
    {"server_check_query", "<empty>"},    /* an empty query */
    {"server_login_retry", "15"},         /* the back-off's cap */
};

/* pgcoro settings of one [databases] entry (mixed into its conninfo) or one [users]
 * entry: fields of struct cfg_db / struct cfg_user of the C type of their kind (int,
 * double, char *), -1 or NULL when absent. */
struct cfg_entry_key {
	const char *key;
	int type;
	size_t offset;
	enum cfg_compat compat; /* CFG_WARN: NOTE is logged when set; CFG_NOT_YET: NOTE is
	                         * the reason a value outside the type is refused */
	const char *note;
};

_Static_assert(POOL_MODE_UNSET == -1, "absent entry settings are all -1");

#define ENTRY(st, name, type) {#name, type, offsetof(struct st, name), CFG_NATIVE, NULL}
static const struct cfg_entry_key db_keys[] = {
    ENTRY(cfg_db, pool_size, T_POOL_SIZE),
    ENTRY(cfg_db, pool_mode, T_POOL_MODE),
    ENTRY(cfg_db, pin_session_state, T_PIN),
    ENTRY(cfg_db, min_pool_size, T_POOL_COUNT),
    ENTRY(cfg_db, reserve_pool_size, T_POOL_COUNT),
    /* PgBouncer's old name of reserve_pool_size */
    {"reserve_pool", T_POOL_COUNT, offsetof(struct cfg_db, reserve_pool_size), CFG_NATIVE, NULL},
    ENTRY(cfg_db, max_db_connections, T_CONN_LIMIT),
    ENTRY(cfg_db, max_db_client_connections, T_CONN_LIMIT),
    ENTRY(cfg_db, server_lifetime, T_SECONDS),
    ENTRY(cfg_db, query_wait_timeout, T_SECONDS),
    ENTRY(cfg_db, load_balance_hosts, T_LOAD_BALANCE),
    ENTRY(cfg_db, connect_query, T_STRING),
    ENTRY(cfg_db, auth_user, T_STRING),
    ENTRY(cfg_db, auth_dbname, T_STRING),
    ENTRY(cfg_db, auth_query, T_STRING),
    {NULL, 0, 0, CFG_NATIVE, NULL},
};

static const struct cfg_entry_key user_keys[] = {
    ENTRY(cfg_user, pool_mode, T_POOL_MODE),
    ENTRY(cfg_user, pin_session_state, T_PIN),
    ENTRY(cfg_user, pool_size, T_POOL_SIZE),
    ENTRY(cfg_user, reserve_pool_size, T_POOL_COUNT),
    ENTRY(cfg_user, max_user_connections, T_CONN_LIMIT),
    ENTRY(cfg_user, max_user_client_connections, T_CONN_LIMIT),
    ENTRY(cfg_user, query_timeout, T_SECONDS),
    ENTRY(cfg_user, query_wait_timeout, T_SECONDS),
    ENTRY(cfg_user, idle_transaction_timeout, T_SECONDS),
    ENTRY(cfg_user, client_idle_timeout, T_SECONDS),
    ENTRY(cfg_user, transaction_timeout, T_SECONDS),
    {NULL, 0, 0, CFG_NATIVE, NULL},
};

static const struct cfg_entry_key peer_keys[] = {
    ENTRY(cfg_peer, host, T_STRING),
    ENTRY(cfg_peer, port, T_PORT),
    ENTRY(cfg_peer, pool_size, T_POOL_SIZE),
    {NULL, 0, 0, CFG_NATIVE, NULL},
};

const struct cfg_key *cfg_keys(size_t *n)
{
	if (n)
		*n = NKEYS;
	return keys;
}

/* ---- small helpers ----------------------------------------------------------------- */

static void cfg_fmt(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cfg_fmt(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Case-insensitive index of S in NAMES, or -1. */
static int cfg_name_index(const char *const *names, const char *s)
{
	for (int i = 0; names[i]; i++)
		if (strcasecmp(names[i], s) == 0)
			return i;
	return -1;
}

/* "a, b or c" into buf. */
static void cfg_names_list(const char *const *names, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; names[i] && off < len; i++) {
		const char *sep = i == 0 ? "" : names[i + 1] ? ", " : " or ";
		int r = snprintf(buf + off, len - off, "%s%s", sep, names[i]);
		if (r < 0)
			break;
		off += (size_t)r;
	}
}

enum log_level cfg_log_level(const struct config *cfg)
{
	enum log_level level = LOGL_INFO;
	if (!log_level_parse(cfg->log_level, &level))
		level = LOGL_INFO; /* validated at load: not reached */
	return cfg->verbose > 0 ? LOGL_DEBUG : level;
}

const char *cfg_pool_mode_name(int mode)
{
	if (mode >= 0 && mode < (int)(sizeof(pool_mode_names) / sizeof(*pool_mode_names)) - 1)
		return pool_mode_names[mode];
	return mode == POOL_MODE_UNSET ? "unset" : "?";
}

const char *cfg_auth_type_name(int type)
{
	if (type >= 0 && type < (int)(sizeof(auth_type_names) / sizeof(*auth_type_names)) - 1)
		return auth_type_names[type];
	return "?";
}

/* Decimal integer, whole string, optional sign. */
static bool cfg_parse_ll(const char *s, long long *out) __attribute__((warn_unused_result));
static bool cfg_parse_ll(const char *s, long long *out)
{
	char *end;

	if (!*s || isspace((unsigned char)*s))
		return false;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno == 0 && end != s && *end == '\0';
}

/* ---- parsing one [pgcoro] value ----------------------------------------------------- */

/* Parses VALUE as a value of TYPE (an index into types[]) into FIELD, which has the
 * kind's C type (a [pgcoro] field, or an int of a [databases]/[users] entry). On failure
 * writes the reason (without "file:line: ", without the key) into why and leaves FIELD
 * unchanged. */
static bool cfg_set_value(void *field, int type, const char *value, char *why, size_t whylen)
    __attribute__((warn_unused_result));
static bool cfg_set_value(void *field, int type, const char *value, char *why, size_t whylen)
{
	const struct cfg_type *t = &types[type];
	long long ll = 0;
	char *end;

	switch (t->kind) {
	case K_STRING: {
		size_t len = strlen(value);
		if (len >= 2 && value[0] == '"' && value[len - 1] == '"') {
			value++;
			len -= 2;
		}
		char *s = strndup(value, len);
		if (!s) {
			cfg_fmt(why, whylen, "out of memory");
			return false;
		}
		if (t->check && !t->check(s, why, whylen)) {
			free(s);
			return false;
		}
		free(*(char **)field);
		*(char **)field = s;
		return true;
	}
	case K_INT:
		if (!cfg_parse_ll(value, &ll)) {
			cfg_fmt(why, whylen, "not an integer");
			return false;
		}
		break;
	case K_OCTAL:
		if (!*value || strspn(value, "01234567") != strlen(value) || strlen(value) > 8) {
			cfg_fmt(why, whylen, "not an octal mode (e.g. 0770)");
			return false;
		}
		ll = strtoll(value, NULL, 8);
		break;
	case K_BYTES: {
		static const struct {
			const char *unit;
			long long mul;
		} units[] = {{"", 1},
		             {"B", 1},
		             {"kB", 1024},
		             {"MB", 1024 * 1024},
		             {"GB", 1024 * 1024 * 1024}};
		size_t i, n = sizeof(units) / sizeof(units[0]);

		if (!isdigit((unsigned char)*value)) {
			cfg_fmt(why, whylen, "not a size (e.g. 1048576, 64kB, 16MB)");
			return false;
		}
		errno = 0;
		ll = strtoll(value, &end, 10);
		while (isspace((unsigned char)*end))
			end++;
		for (i = 0; i < n; i++)
			if (strcasecmp(end, units[i].unit) == 0)
				break;
		if (errno || i == n) {
			cfg_fmt(why, whylen, "not a size (e.g. 1048576, 64kB, 16MB)");
			return false;
		}
		if (ll > LLONG_MAX / units[i].mul)
			ll = LLONG_MAX;
		else
			ll *= units[i].mul;
		break;
	}
	case K_SECONDS: {
		static const struct {
			const char *unit;
			double mul;
		} units[] = {{"", 1}, {"s", 1}, {"ms", 0.001}, {"min", 60}, {"h", 3600}};
		size_t i, n = sizeof(units) / sizeof(units[0]);
		double d;

		/* starts with a digit and no 'x': no sign, hex, inf or nan */
		if ((!isdigit((unsigned char)*value) &&
		     !(*value == '.' && isdigit((unsigned char)value[1]))) ||
		    strpbrk(value, "xX")) {
			cfg_fmt(why, whylen, "not a duration (e.g. 15, 1.5, 500ms, 15s, 2min, 1h)");
			return false;
		}
		errno = 0;
		d = strtod(value, &end);
		while (isspace((unsigned char)*end))
			end++;
		for (i = 0; i < n; i++)
			if (strcmp(end, units[i].unit) == 0)
				break;
		if (errno == ERANGE || i == n || !isfinite(d)) {
			cfg_fmt(why, whylen, "not a duration (e.g. 15, 1.5, 500ms, 15s, 2min, 1h)");
			return false;
		}
		d *= units[i].mul;
		if (d < (double)t->min || d > (double)t->max) {
			cfg_fmt(why, whylen, "out of range (%lld..%lld seconds)", t->min, t->max);
			return false;
		}
		*(double *)field = d;
		return true;
	}
	case K_BOOL: {
		int i = cfg_name_index(t->names, value);
		if (i < 0) {
			cfg_fmt(why, whylen, "expected 0 or 1 (also off/on, false/true, no/yes)");
			return false;
		}
		*(int *)field = i % 2;
		return true;
	}
	case K_ENUM:
	case K_ENUM_STR: {
		char unq[64];
		size_t len = strlen(value);
		if (len >= 2 && len < sizeof(unq) + 2 && value[0] == '"' && value[len - 1] == '"') {
			memcpy(unq, value + 1, len - 2);
			unq[len - 2] = '\0';
			value = unq;
		}
		int i = cfg_name_index(t->names, value);
		if (i < 0) {
			char list[128];
			cfg_names_list(t->names, list, sizeof(list));
			cfg_fmt(why, whylen, "expected %s", list);
			return false;
		}
		if (t->kind == K_ENUM) {
			*(int *)field = i;
			return true;
		}
		char *s = strdup(t->names[i]);
		if (!s) {
			cfg_fmt(why, whylen, "out of memory");
			return false;
		}
		free(*(char **)field);
		*(char **)field = s;
		return true;
	}
	}

	/* the integer kinds */
	if (ll < t->min || ll > t->max) {
		if (t->kind == K_OCTAL)
			cfg_fmt(why, whylen, "out of range (%04llo..%04llo)", t->min, t->max);
		else
			cfg_fmt(why, whylen, "out of range (%lld..%lld)", t->min, t->max);
		return false;
	}
	*(int *)field = (int)ll;
	return true;
}

/* ---- settings of [databases] and [users] entries ---------------------------------- */

static const struct cfg_entry_key *cfg_entry_find(const struct cfg_entry_key *ek, const char *name)
{
	for (; ek->key; ek++)
		if (strcmp(ek->key, name) == 0)
			return ek;
	return NULL;
}

/* The C type of a field of kind K. */
enum cfg_ctype { C_INT, C_DOUBLE, C_STRING };
static enum cfg_ctype cfg_ctype(int type)
{
	switch (types[type].kind) {
	case K_SECONDS:
		return C_DOUBLE;
	case K_STRING:
	case K_ENUM_STR:
		return C_STRING;
	default:
		return C_INT;
	}
}

/* Marks every setting of ENTRY (described by EK) absent: -1, or NULL. */
static void cfg_entry_unset(const struct cfg_entry_key *ek, void *entry)
{
	for (; ek->key; ek++) {
		void *f = (char *)entry + ek->offset;
		switch (cfg_ctype(ek->type)) {
		case C_INT:
			*(int *)f = -1;
			break;
		case C_DOUBLE:
			*(double *)f = -1;
			break;
		case C_STRING:
			*(char **)f = NULL;
			break;
		}
	}
}

/* Frees the strings of ENTRY's settings (EK). */
static void cfg_entry_free(const struct cfg_entry_key *ek, void *entry)
{
	for (; ek->key; ek++)
		if (cfg_ctype(ek->type) == C_STRING) {
			char **f = (char **)((char *)entry + ek->offset);
			free(*f);
			*f = NULL;
		}
}

/* Replaces the strings of ENTRY's settings with copies (after a struct copy); false when
 * out of memory (the strings not yet copied are NULL then, so cfg_entry_free is safe). */
static bool cfg_entry_dup(const struct cfg_entry_key *ek, void *entry)
{
	bool ok = true;
	for (; ek->key; ek++)
		if (cfg_ctype(ek->type) == C_STRING) {
			char **f = (char **)((char *)entry + ek->offset);
			if (*f && ok && !(*f = strdup(*f)))
				ok = false;
			else if (!ok)
				*f = NULL;
		}
	return ok;
}

/* Parses VALUE into setting K of ENTRY; on failure "invalid K "VALUE": reason" in why
 * (for a CFG_NOT_YET key: "K = VALUE is not supported yet: note"). A duration of -1 is
 * PgBouncer's "not set". */
static bool cfg_entry_set(const struct cfg_entry_key *k, void *entry, const char *value, char *why,
                          size_t whylen) __attribute__((warn_unused_result));
static bool cfg_entry_set(const struct cfg_entry_key *k, void *entry, const char *value, char *why,
                          size_t whylen)
{
	char reason[CFG_ERRLEN / 2];
	void *f = (char *)entry + k->offset;

	if (cfg_ctype(k->type) == C_DOUBLE && strcmp(value, "-1") == 0) {
		*(double *)f = -1;
		return true;
	}
	if (cfg_set_value(f, k->type, value, reason, sizeof(reason)))
		return true;
	if (k->compat == CFG_NOT_YET)
		cfg_fmt(why, whylen, "%s = %s is not supported yet: %s", k->key, value, k->note);
	else
		cfg_fmt(why, whylen, "invalid %s \"%s\": %s", k->key, value, reason);
	return false;
}

/* "a, b, c": the names of EK, into buf. */
static void cfg_entry_names(const struct cfg_entry_key *ek, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; ek[i].key && off < len; i++) {
		int r = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", ek[i].key);
		if (r < 0)
			break;
		off += (size_t)r;
	}
}

/* Writes the current value of K in CFG, as it would be written in the file. */
static void cfg_format_value(const struct config *cfg, const struct cfg_key *k, char *buf,
                             size_t len)
{
	const struct cfg_type *t = &types[k->type];
	const void *field = (const char *)cfg + k->offset;

	switch (t->kind) {
	case K_STRING:
	case K_ENUM_STR: {
		const char *s = *(char *const *)field;
		if (!s || !*s)
			snprintf(buf, len, "\"\"");
		else
			snprintf(buf, len, "%s", s);
		break;
	}
	case K_INT:
	case K_BYTES:
	case K_BOOL:
		snprintf(buf, len, "%d", *(const int *)field);
		break;
	case K_OCTAL:
		snprintf(buf, len, "%04o", (unsigned)*(const int *)field);
		break;
	case K_SECONDS:
		snprintf(buf, len, "%g", *(const double *)field);
		break;
	case K_ENUM: {
		int i = *(const int *)field;
		snprintf(buf, len, "%s", t->names[i]);
		break;
	}
	}
}

void cfg_key_value(const struct config *cfg, const struct cfg_key *k, char *buf, size_t len)
{
	cfg_format_value(cfg, k, buf, len);
}

bool cfg_key_reloadable(const struct cfg_key *k) { return k->when != CFG_AT_START; }

bool cfg_key_copy(struct config *dst, const struct config *src, const struct cfg_key *k)
{
	void *to = (char *)dst + k->offset;
	const void *from = (const char *)src + k->offset;
	switch (cfg_ctype(k->type)) {
	case C_INT:
		*(int *)to = *(const int *)from;
		return true;
	case C_DOUBLE:
		*(double *)to = *(const double *)from;
		return true;
	case C_STRING: {
		const char *v = *(char *const *)from;
		char *copy = v ? strdup(v) : NULL;
		if (v && !copy)
			return false;
		free(*(char **)to);
		*(char **)to = copy;
		return true;
	}
	}
	return false;
}

bool cfg_key_reads_files(const struct cfg_key *k) { return k->when == CFG_WITH_FILES; }

void cfg_dump(const struct config *cfg, FILE *out)
{
	char buf[1024];

	for (size_t i = 0; i < NKEYS; i++) {
		cfg_format_value(cfg, &keys[i], buf, sizeof(buf));
		fprintf(out, "%s = %s\n", keys[i].key, buf);
	}
}

/* ---- conninfo tokens --------------------------------------------------------------- */

/* "key=value ..." split by libpq's rules (conninfo_parse in fe-connect.c): blanks around
 * '=', values unquoted (to the next blank) or single-quoted, backslash escapes the next
 * character. In a pgbouncer.ini, PgBouncer's rules instead: no escapes, '' is a quote
 * inside a quoted value, and a value may not be empty. Pointers point into the owned
 * copy buf. */
struct tokens {
	char *buf;
	char **kw;
	char **val;
	int n;
};

static void cfg_tokens_free(struct tokens *t)
{
	free(t->buf);
	free(t->kw);
	free(t->val);
	memset(t, 0, sizeof(*t));
}

static bool cfg_tokenize(const char *s, bool pgb, struct tokens *t, char *why, size_t whylen)
    __attribute__((warn_unused_result));
static bool cfg_tokenize(const char *s, bool pgb, struct tokens *t, char *why, size_t whylen)
{
	size_t max = strlen(s) / 2 + 1;
	char *cp;

	memset(t, 0, sizeof(*t));
	t->buf = strdup(s);
	t->kw = calloc(max, sizeof(char *));
	t->val = calloc(max, sizeof(char *));
	if (!t->buf || !t->kw || !t->val) {
		cfg_fmt(why, whylen, "out of memory");
		goto fail;
	}
	cp = t->buf;
	while (*cp) {
		char *name, *v, *out;

		if (isspace((unsigned char)*cp)) {
			cp++;
			continue;
		}
		name = cp;
		while (*cp && *cp != '=' && !isspace((unsigned char)*cp))
			cp++;
		if (isspace((unsigned char)*cp)) {
			*cp++ = '\0';
			while (isspace((unsigned char)*cp))
				cp++;
		}
		if (*cp != '=') {
			if (*cp)
				*cp = '\0';
			cfg_fmt(why, whylen, "missing \"=\" after \"%s\" in connection info string",
			        name);
			goto fail;
		}
		*cp++ = '\0';
		while (isspace((unsigned char)*cp))
			cp++;
		v = out = cp;
		if (*cp == '\'') {
			cp++;
			for (;;) {
				if (*cp == '\0') {
					cfg_fmt(
					    why, whylen,
					    "unterminated quoted string in connection info string");
					goto fail;
				}
				if (*cp == '\\' && !pgb) {
					cp++;
					if (*cp)
						*out++ = *cp++;
					continue;
				}
				if (*cp == '\'' && pgb && cp[1] == '\'') {
					*out++ = '\'';
					cp += 2;
					continue;
				}
				if (*cp == '\'') {
					cp++;
					break;
				}
				*out++ = *cp++;
			}
		} else {
			while (*cp && !isspace((unsigned char)*cp)) {
				if (*cp == '\\' && !pgb) {
					cp++;
					if (*cp)
						*out++ = *cp++;
				} else {
					*out++ = *cp++;
				}
			}
			if (*cp)
				cp++; /* the blank that ended the value */
		}
		/* out stays behind cp, so the terminator never overwrites unread input */
		*out = '\0';
		if (pgb && out == v) {
			cfg_fmt(why, whylen, "empty value for \"%s\"", name);
			goto fail;
		}
		t->kw[t->n] = name;
		t->val[t->n] = v;
		t->n++;
	}
	return true;
fail:
	cfg_tokens_free(t);
	return false;
}

/* ---- the loader ---------------------------------------------------------------------- */

/* A file being read: the main file or an %include. */
struct src {
	FILE *f;
	const char *path; /* in reader.paths */
	int lineno;       /* current line, 1-based; 0 before the first */
};

/* Hands inih one physical line at a time (in pieces if its buffer is smaller) and counts
 * lines, since the installed inih reports no line numbers to the handler. It follows
 * "%include FILE" lines (PgBouncer's: FILE relative to the working directory, at most
 * CFG_MAX_INCLUDE deep), so inih sees one stream and sections carry across files. */
struct reader {
	struct src stack[CFG_MAX_INCLUDE + 1];
	int depth;          /* stack[depth] is being read */
	char *line;
	size_t cap;
	size_t len, pos;
	char **paths;       /* every file opened, owned: messages and entries point here */
	int npaths;
	const char *section_file; /* where the last [section] header is */
	int section_lineno;
	bool pgbouncer_section; /* a [pgbouncer] header was read */
	const char *why_file;   /* where reading failed */
	int why_line;
	char why[CFG_ERRLEN / 2]; /* set when reading failed: inih then stops */
};

static const char *cfg_cur_file(const struct reader *r) { return r->stack[r->depth].path; }
static int cfg_cur_line(const struct reader *r) { return r->stack[r->depth].lineno; }

static void cfg_read_fail(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cfg_read_fail(struct reader *r, const char *fmt, ...)
{
	va_list ap;

	r->why_file = cfg_cur_file(r);
	r->why_line = cfg_cur_line(r);
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
}

/* A copy of PATH kept for the whole load, or NULL (out of memory). */
static const char *cfg_keep_path(struct reader *r, const char *path)
{
	char **paths = realloc(r->paths, (size_t)(r->npaths + 1) * sizeof(*paths));
	if (!paths)
		return NULL;
	r->paths = paths;
	if (!(paths[r->npaths] = strdup(path)))
		return NULL;
	return paths[r->npaths++];
}

/* "%include REST": opens the file named by REST and reads on from it. */
static bool cfg_include(struct reader *r, const char *rest)
{
	char buf[128], name[PATH_MAX];
	size_t n;

	while (*rest == ' ' || *rest == '\t')
		rest++;
	n = strlen(rest);
	while (n > 0 && isspace((unsigned char)rest[n - 1]))
		n--;
	if (n == 0) {
		cfg_read_fail(r, "%%include without a file name");
		return false;
	}
	if (n >= sizeof(name)) {
		cfg_read_fail(r, "%%include: file name too long");
		return false;
	}
	memcpy(name, rest, n);
	name[n] = '\0';
	if (r->depth >= CFG_MAX_INCLUDE) {
		cfg_read_fail(r, "%%include nested too deep (at most %d levels)", CFG_MAX_INCLUDE);
		return false;
	}
	/* a FIFO or a device could block the load (even its open) or never end */
	struct stat st;
	FILE *f = NULL;
	if (stat(name, &st) == 0 && !S_ISREG(st.st_mode)) {
		cfg_read_fail(r, "%%include: \"%s\" is not a regular file", name);
		return false;
	}
	if (!(f = fopen(name, "r"))) {
		cfg_read_fail(r, "%%include: cannot open \"%s\": %s", name,
		              strerror_r(errno, buf, sizeof(buf)));
		return false;
	}
	const char *path = cfg_keep_path(r, name);
	if (!path) {
		fclose(f);
		cfg_read_fail(r, "out of memory");
		return false;
	}
	r->stack[++r->depth] = (struct src){f, path, 0};
	return true;
}

/* Reads one line of F ('\n' included) into r->line, at most CFG_MAX_LINE bytes kept:
 * its length, 0 at the end of F, -1 on a read error (errno set), -2 when it is longer
 * (the rest is not read: a file without newlines cannot make it grow without bound). */
static ssize_t cfg_getline(struct reader *r, FILE *f)
{
	size_t n = 0;
	int ch;

	if (!r->line) {
		r->cap = CFG_MAX_LINE + 1;
		if (!(r->line = malloc(r->cap))) {
			errno = ENOMEM;
			return -1;
		}
	}
	errno = 0;
	while ((ch = getc_unlocked(f)) != EOF) {
		if (n == CFG_MAX_LINE)
			return -2;
		r->line[n++] = (char)ch;
		if (ch == '\n')
			break;
	}
	if (ch == EOF && ferror(f))
		return -1;
	r->line[n] = '\0';
	return (ssize_t)n;
}

/* Reads the next physical line of the stream into r->line; false at its end or on
 * failure (why set). */
static bool cfg_next_line(struct reader *r)
{
	char buf[128];

	for (;;) {
		struct src *src = &r->stack[r->depth];
		ssize_t got = cfg_getline(r, src->f);
		if (got == -1) {
			cfg_read_fail(r, "cannot read: %s", strerror_r(errno, buf, sizeof(buf)));
			return false;
		}
		if (got == 0) {
			if (r->depth == 0)
				return false;
			fclose(src->f);
			src->f = NULL;
			r->depth--; /* back to the file that included it */
			continue;
		}
		src->lineno++;
		r->len = got < 0 ? CFG_MAX_LINE : (size_t)got;
		r->pos = 0;
		if (got == -2 || r->len > CFG_MAX_LINE - 1) {
			cfg_read_fail(r, "line too long (more than %d characters)", CFG_MAX_LINE - 2);
			return false;
		}
		if (memchr(r->line, '\0', r->len)) {
			cfg_read_fail(r, "line contains a NUL byte");
			return false;
		}
		const char *p = r->line;
		while (isspace((unsigned char)*p))
			p++;
		if (strncmp(p, "%include", 8) == 0 && (p[8] == ' ' || p[8] == '\t')) {
			if (!cfg_include(r, p + 8))
				return false;
			continue;
		}
		if (*p == '[') {
			r->section_file = src->path;
			r->section_lineno = src->lineno;
			if (strncmp(p, "[pgbouncer]", 11) == 0)
				r->pgbouncer_section = true;
		}
		return true;
	}
}

static char *cfg_reader(char *str, int num, void *stream)
{
	struct reader *r = stream;
	size_t n;

	if (r->why[0] || num < 2)
		return NULL;
	if (r->pos >= r->len && !cfg_next_line(r))
		return NULL;
	n = r->len - r->pos;
	if (n > (size_t)num - 1)
		n = (size_t)num - 1;
	memcpy(str, r->line + r->pos, n);
	str[n] = '\0';
	r->pos += n;
	return str;
}

static void cfg_reader_free(struct reader *r)
{
	for (int i = 0; i <= r->depth; i++)
		if (r->stack[i].f)
			fclose(r->stack[i].f);
	for (int i = 0; i < r->npaths; i++)
		free(r->paths[i]);
	free(r->paths);
	free(r->line);
}

/* One [databases] or [users] line as read: parsed once the whole file is known (its
 * syntax, and whether a later line of the same name replaces it, depend on whether it is
 * a pgbouncer.ini). */
struct raw_entry {
	char *name, *value;
	const char *file; /* in reader.paths */
	int line;
	bool replaced;    /* a later line of the same name replaced it (pgbouncer.ini) */
};

struct raw_list {
	struct raw_entry *v;
	int n, cap;
};

struct parser {
	struct config *cfg;
	struct reader rd;
	int key_line[NKEYS];         /* where each main key was last set, 0 = not */
	const char *key_file[NKEYS];
	bool key_pgb[NKEYS];         /* ... in a [pgbouncer] section */
	struct raw_list dbs, users, peers;
	const char *err_file;        /* NULL = no error */
	int err_line;
	char err[CFG_ERRLEN];        /* reason, without "file:line: " */
};

static int cfg_fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records the first error at the current line; returns 0 for inih. */
static int cfg_fail(struct parser *p, const char *fmt, ...)
{
	va_list ap;

	if (p->err_file)
		return 0;
	p->err_file = cfg_cur_file(&p->rd);
	p->err_line = cfg_cur_line(&p->rd);
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
	return 0;
}

/* Adds "FILE:LINE: text" to CFG's warnings (LINE 0: "FILE: text"). */
static bool cfg_warn(struct config *cfg, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool cfg_warn(struct config *cfg, const char *file, int line, const char *fmt, ...)
{
	char text[CFG_ERRLEN * 2];
	va_list ap;
	int off = line > 0 ? snprintf(text, sizeof(text), "%s:%d: ", file, line)
	                   : snprintf(text, sizeof(text), "%s: ", file);

	if (off < 0 || (size_t)off >= sizeof(text))
		off = 0;
	va_start(ap, fmt);
	vsnprintf(text + off, sizeof(text) - (size_t)off, fmt, ap);
	va_end(ap);
	char **w = realloc(cfg->warnings, (size_t)(cfg->nwarnings + 1) * sizeof(*w));
	if (!w)
		return false;
	cfg->warnings = w;
	if (!(w[cfg->nwarnings] = strdup(text)))
		return false;
	cfg->nwarnings++;
	return true;
}

/* True when K's value in CFG is its default. */
static bool cfg_is_default(const struct config *cfg, const struct cfg_key *k)
{
	char now[1024], def[1024];
	struct config *d = calloc(1, sizeof(*d));
	char why[CFG_ERRLEN];
	bool same = false;

	if (!d)
		return true; /* out of memory: no warning rather than a false one */
	if (cfg_set_value((char *)d + k->offset, k->type, k->def, why, sizeof(why))) {
		cfg_format_value(cfg, k, now, sizeof(now));
		cfg_format_value(d, k, def, sizeof(def));
		same = strcmp(now, def) == 0;
	}
	if (cfg_ctype(k->type) == C_STRING)
		free(*(char **)((char *)d + k->offset));
	free(d);
	return same;
}

/* Sets main key K of CFG to VALUE; false with the reason (as a message tail) in WHY. */
static bool cfg_set_key(struct config *cfg, const struct cfg_key *k, const char *value, char *why,
                        size_t whylen) __attribute__((warn_unused_result));
static bool cfg_set_key(struct config *cfg, const struct cfg_key *k, const char *value, char *why,
                        size_t whylen)
{
	char reason[CFG_ERRLEN / 2];

	if (cfg_set_value((char *)cfg + k->offset, k->type, value, reason, sizeof(reason)))
		return true;
	if (k->compat == CFG_NOT_YET && strcmp(reason, "out of memory") != 0)
		cfg_fmt(why, whylen, "%s = %s is not supported yet: %s", k->key, value, k->note);
	else
		cfg_fmt(why, whylen, "invalid value \"%s\" for %s: %s", value, k->key, reason);
	return false;
}

/* A key of [pgcoro] or [pgbouncer] (SECTION). A key set twice is refused in [pgcoro]; in
 * [pgbouncer] the later value wins, as in PgBouncer (tools append keys to its file). */
static int cfg_on_main(struct parser *p, const char *section, const char *name, const char *value)
{
	char why[CFG_ERRLEN];
	bool pgb = strcmp(section, "pgbouncer") == 0;
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].key, name) == 0)
			break;
	if (i == NKEYS)
		return cfg_fail(p, "unknown key \"%s\" in [%s]", name, section);
	if (p->key_line[i] && !pgb)
		return cfg_fail(p, "duplicate key \"%s\" in [%s] (first set on line %d)", name,
		                section, p->key_line[i]);
	if (!cfg_set_key(p->cfg, &keys[i], value, why, sizeof(why)))
		return cfg_fail(p, "%s", why);
	p->key_line[i] = cfg_cur_line(&p->rd);
	p->key_file[i] = cfg_cur_file(&p->rd);
	p->key_pgb[i] = pgb;
	return 1;
}

static int cfg_raw_add(struct parser *p, struct raw_list *l, const char *name, const char *value)
{
	if (l->n == l->cap) {
		int cap = l->cap ? 2 * l->cap : 16;
		struct raw_entry *v = realloc(l->v, (size_t)cap * sizeof(*v));
		if (!v)
			return cfg_fail(p, "out of memory");
		l->v = v;
		l->cap = cap;
	}
	struct raw_entry *e = &l->v[l->n];
	*e = (struct raw_entry){.file = cfg_cur_file(&p->rd), .line = cfg_cur_line(&p->rd)};
	/* PgBouncer quotes names with other characters than [_0-9A-Za-z]: 'name' or "name"
	 * ("" inside for one quote) */
	size_t n = strlen(name);
	if (n >= 2 && (name[0] == '"' || name[0] == '\'') && name[n - 1] == name[0]) {
		char q = name[0];
		e->name = malloc(n);
		if (e->name) {
			char *o = e->name;
			for (size_t i = 1; i + 1 < n; i++) {
				*o++ = name[i];
				if (name[i] == q && name[i + 1] == q && i + 2 < n)
					i++;
			}
			*o = '\0';
		}
	} else {
		e->name = strdup(name);
	}
	e->value = strdup(value);
	if (!e->name || !e->value) {
		free(e->name);
		free(e->value);
		return cfg_fail(p, "out of memory");
	}
	l->n++;
	return 1;
}

static void cfg_raw_free(struct raw_list *l)
{
	for (int i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].value);
	}
	free(l->v);
}

static void cfg_db_clear(struct cfg_db *db)
{
	if (db->kw)
		for (int i = 0; db->kw[i]; i++) {
			free(db->kw[i]);
			free(db->val[i]);
		}
	free(db->kw);
	free(db->val);
	free(db->name);
	free(db->file);
	cfg_entry_free(db_keys, db);
}

static bool cfg_is_uri(const char *s)
{
	return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0;
}

/* Appends "-c NAME=VALUE" to OPT (libpq's options: blanks and backslashes escaped). */
static bool cfg_add_option(char **opt, const char *name, const char *value)
{
	size_t old = *opt ? strlen(*opt) : 0;
	char *s = realloc(*opt, old + strlen(name) + 2 * strlen(value) + 8);
	if (!s)
		return false;
	char *o = s + old;
	o += sprintf(o, "%s-c %s=", old ? " " : "", name);
	for (const char *c = value; *c; c++) {
		if (isspace((unsigned char)*c) || *c == '\\')
			*o++ = '\\';
		*o++ = *c;
	}
	*o = '\0';
	*opt = s;
	return true;
}

/* Appends KW='VAL' (libpq's quoting) to the conninfo string at *OFF in BUF. */
static void cfg_put_conninfo(char *buf, size_t *off, const char *kw, const char *val)
{
	*off += (size_t)sprintf(buf + *off, "%s='", kw);
	for (const char *c = val; *c; c++) {
		if (*c == '\'' || *c == '\\')
			buf[(*off)++] = '\\';
		buf[(*off)++] = *c;
	}
	buf[(*off)++] = '\'';
	buf[(*off)++] = ' ';
	buf[*off] = '\0';
}

/* Fills DB's kw/val and its pgcoro settings (db_keys) from VALUE, in PgBouncer's syntax
 * when PGB. PgBouncer's datestyle and timezone become "-c" settings of libpq's options. */
static bool cfg_db_parse(struct cfg_db *db, const char *value, bool pgb, char *why, size_t whylen)
    __attribute__((warn_unused_result));
static bool cfg_db_parse(struct cfg_db *db, const char *value, bool pgb, char *why, size_t whylen)
{
	struct tokens t = {0};
	PQconninfoOption *opts = NULL;
	char *conninfo = NULL, *errmsg = NULL, *options = NULL;
	bool ok = false;
	int n = 0;

	if (cfg_is_uri(value)) {
		conninfo = strdup(value);
		if (!conninfo)
			goto oom;
	} else {
		size_t need = 1, off = 0;
		int opt_at = -1;

		if (!cfg_tokenize(value, pgb, &t, why, whylen)) {
			if (pgb)
				return false;
			/* prefer libpq's own words for what is wrong */
			opts = PQconninfoParse(value, &errmsg);
			if (!opts && errmsg)
				goto libpq_error;
			PQconninfoFree(opts);
			opts = NULL;
			return false;
		}
		for (int i = 0; i < t.n; i++) {
			const struct cfg_entry_key *k = cfg_entry_find(db_keys, t.kw[i]);

			if (k) {
				if (!cfg_entry_set(k, db, t.val[i], why, whylen))
					goto out;
				t.kw[i] = NULL; /* taken */
			} else if (strcmp(t.kw[i], "datestyle") == 0 ||
			           strcmp(t.kw[i], "timezone") == 0) {
				if (!cfg_add_option(&options, t.kw[i], t.val[i]))
					goto oom;
				t.kw[i] = NULL;
			} else if (strcmp(t.kw[i], "options") == 0) {
				opt_at = i;
			}
		}
		if (options && opt_at >= 0) {
			/* the entry's own options first, then datestyle and timezone */
			char *both = malloc(strlen(t.val[opt_at]) + strlen(options) + 2);
			if (!both)
				goto oom;
			sprintf(both, "%s%s%s", t.val[opt_at], *t.val[opt_at] ? " " : "", options);
			free(options);
			options = both;
		}
		for (int i = 0; i < t.n; i++)
			if (t.kw[i])
				need += strlen(t.kw[i]) + 2 * strlen(t.val[i]) + 4;
		if (options)
			need += strlen("options") + 2 * strlen(options) + 4;
		conninfo = malloc(need);
		if (!conninfo)
			goto oom;
		conninfo[0] = '\0';
		/* re-quoted so libpq sees exactly the values we tokenized */
		for (int i = 0; i < t.n; i++)
			if (t.kw[i] && i != opt_at)
				cfg_put_conninfo(conninfo, &off, t.kw[i], t.val[i]);
		if (options)
			cfg_put_conninfo(conninfo, &off, "options", options);
		else if (opt_at >= 0)
			cfg_put_conninfo(conninfo, &off, "options", t.val[opt_at]);
	}

	opts = PQconninfoParse(conninfo, &errmsg);
	if (!opts) {
		if (!errmsg)
			goto oom;
		goto libpq_error;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (o->val)
			n++;
	db->kw = calloc((size_t)n + 1, sizeof(char *));
	db->val = calloc((size_t)n + 1, sizeof(char *));
	if (!db->kw || !db->val)
		goto oom;
	n = 0;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val)
			continue;
		db->kw[n] = strdup(o->keyword);
		db->val[n] = strdup(o->val);
		if (!db->kw[n] || !db->val[n]) {
			free(db->kw[n]);
			free(db->val[n]);
			db->kw[n] = db->val[n] = NULL;
			goto oom;
		}
		n++;
	}
	ok = true;
	goto out;

libpq_error : {
	size_t len = strlen(errmsg);
	while (len > 0 && (errmsg[len - 1] == '\n' || errmsg[len - 1] == ' '))
		errmsg[--len] = '\0';
	cfg_fmt(why, whylen, "invalid conninfo: %s", errmsg);
	goto out;
}
oom:
	cfg_fmt(why, whylen, "out of memory");
out:
	if (errmsg)
		PQfreemem(errmsg);
	PQconninfoFree(opts);
	free(conninfo);
	free(options);
	cfg_tokens_free(&t);
	return ok;
}

/* Parses USER's settings from VALUE (PGB: PgBouncer's syntax). */
static bool cfg_user_parse(struct cfg_user *u, const char *value, bool pgb, char *why,
                           size_t whylen) __attribute__((warn_unused_result));
static bool cfg_user_parse(struct cfg_user *u, const char *value, bool pgb, char *why,
                           size_t whylen)
{
	struct tokens t;
	bool ok = true;

	if (!cfg_tokenize(value, pgb, &t, why, whylen))
		return false;
	for (int i = 0; i < t.n && ok; i++) {
		const struct cfg_entry_key *k = cfg_entry_find(user_keys, t.kw[i]);

		if (!k) {
			char known[512];
			cfg_entry_names(user_keys, known, sizeof(known));
			cfg_fmt(why, whylen, "unknown setting \"%s\" (known: %s)", t.kw[i], known);
			ok = false;
		} else {
			ok = cfg_entry_set(k, u, t.val[i], why, whylen);
		}
	}
	cfg_tokens_free(&t);
	return ok;
}

/* Marks the entries of L that a later one of the same name replaces (PGB, as PgBouncer
 * does), or fails on the first such pair (pgcoro's files name each entry once). */
static bool cfg_raw_dups(struct parser *p, struct raw_list *l, bool pgb, const char *what)
{
	for (int i = 1; i < l->n; i++)
		for (int j = 0; j < i; j++) {
			if (l->v[j].replaced || strcmp(l->v[i].name, l->v[j].name) != 0)
				continue;
			if (!pgb) {
				p->err_file = l->v[i].file;
				p->err_line = l->v[i].line;
				cfg_fmt(p->err, sizeof(p->err),
				        "duplicate %s \"%s\" (first defined on line %d)", what, l->v[i].name,
				        l->v[j].line);
				return false;
			}
			l->v[j].replaced = true;
		}
	return true;
}

/* The entries' file field: NULL for the main file, else a copy of FILE. */
static bool cfg_entry_file(const struct config *cfg, const char *file, char **out)
{
	*out = NULL;
	if (strcmp(file, cfg->path) == 0)
		return true;
	return (*out = strdup(file)) != NULL;
}

/* Makes entry E's line the error position (for what follows); false with the error when
 * its name is empty. */
static bool cfg_raw_named(struct parser *p, const struct raw_entry *e, const char *what)
{
	p->err_file = e->file;
	p->err_line = e->line;
	if (*e->name)
		return true;
	cfg_fmt(p->err, sizeof(p->err), "empty %s name in [%ss]", what, what);
	return false;
}

/* One [peers] line: E's name is the id, its value PgBouncer's "host=... port=...
 * pool_size=..."; the reason in why when it is refused. */
static bool cfg_peer_parse(struct cfg_peer *peer, const struct raw_entry *e, bool pgb, char *why,
                           size_t whylen) __attribute__((warn_unused_result));
static bool cfg_peer_parse(struct cfg_peer *peer, const struct raw_entry *e, bool pgb, char *why,
                           size_t whylen)
{
	struct tokens t;
	long long id;
	bool ok = true;

	*peer = (struct cfg_peer){0};
	cfg_entry_unset(peer_keys, peer);
	if (!cfg_parse_ll(e->name, &id) || id < 1 || id > CFG_MAX_PEER_ID) {
		cfg_fmt(why, whylen, "peer \"%s\": the id of a peer must be a number from 1 to %d",
		        e->name, CFG_MAX_PEER_ID);
		return false;
	}
	peer->id = (int)id;
	if (!cfg_tokenize(e->value, pgb, &t, why, whylen))
		return false;
	for (int i = 0; i < t.n && ok; i++) {
		const struct cfg_entry_key *k = cfg_entry_find(peer_keys, t.kw[i]);
		if (!k) {
			char known[128];
			cfg_entry_names(peer_keys, known, sizeof(known));
			cfg_fmt(why, whylen, "peer %d: unknown setting \"%s\" (known: %s)", peer->id,
			        t.kw[i], known);
			ok = false;
		} else if (!cfg_entry_set(k, peer, t.val[i], why, whylen)) {
			ok = false;
		}
	}
	cfg_tokens_free(&t);
	if (ok && (!peer->host || !*peer->host)) {
		cfg_fmt(why, whylen, "peer %d: no host (host=<name, address or unix socket "
		        "directory>)", peer->id);
		ok = false;
	}
	if (ok && peer->port < 0)
		peer->port = 6432;
	/* a unix socket's path must fit sockaddr_un, a host name DNS's 255 bytes */
	if (ok && ((peer->host[0] == '/' || peer->host[0] == '@')
	               ? strlen(peer->host) + sizeof("/.s.PGSQL.65535") >
	                     sizeof(((struct sockaddr_un *)0)->sun_path)
	               : strlen(peer->host) > 255)) {
		cfg_fmt(why, whylen, "peer %d: host is too long", peer->id);
		ok = false;
	}
	if (!ok)
		cfg_entry_free(peer_keys, peer);
	return ok;
}

/* Parses the [peers] lines read into cfg->peers, in id order; an id given twice is
 * refused (in a pgbouncer.ini the later line of one spelling replaces the earlier). */
static bool cfg_peers(struct parser *p)
{
	struct config *cfg = p->cfg;
	char why[CFG_ERRLEN / 2];

	if (!cfg_raw_dups(p, &p->peers, cfg->pgbouncer_ini, "peer"))
		return false;
	if (p->peers.n && !(cfg->peers = calloc((size_t)p->peers.n, sizeof(*cfg->peers)))) {
		p->err_file = cfg->path;
		p->err_line = 0;
		cfg_fmt(p->err, sizeof(p->err), "out of memory");
		return false;
	}
	for (int i = 0; i < p->peers.n; i++) {
		const struct raw_entry *e = &p->peers.v[i];
		struct cfg_peer peer;
		int at;

		if (e->replaced)
			continue;
		p->err_file = e->file;
		p->err_line = e->line;
		if (!cfg_peer_parse(&peer, e, cfg->pgbouncer_ini, why, sizeof(why))) {
			cfg_fmt(p->err, sizeof(p->err), "%s", why);
			return false;
		}
		for (at = cfg->npeers; at > 0 && cfg->peers[at - 1].id >= peer.id; at--)
			;
		if (at < cfg->npeers && cfg->peers[at].id == peer.id) {
			cfg_entry_free(peer_keys, &peer);
			cfg_fmt(p->err, sizeof(p->err), "peer %d is given twice", peer.id);
			return false;
		}
		memmove(&cfg->peers[at + 1], &cfg->peers[at],
		        (size_t)(cfg->npeers - at) * sizeof(*cfg->peers));
		cfg->peers[at] = peer;
		cfg->npeers++;
	}
	return true;
}

/* Parses the [databases], [users] and [peers] lines read, now that the whole file is
 * known. */
static bool cfg_entries(struct parser *p)
{
	struct config *cfg = p->cfg;
	bool pgb = cfg->pgbouncer_ini;
	char why[CFG_ERRLEN / 2];

	if (!cfg_raw_dups(p, &p->dbs, pgb, "database") ||
	    !cfg_raw_dups(p, &p->users, pgb, "user"))
		return false;
	if (p->dbs.n && !(cfg->dbs = calloc((size_t)p->dbs.n, sizeof(*cfg->dbs))))
		goto oom;
	for (int i = 0; i < p->dbs.n; i++) {
		struct raw_entry *e = &p->dbs.v[i];
		struct cfg_db db = {0};

		if (e->replaced)
			continue;
		if (!cfg_raw_named(p, e, "database"))
			return false;
		if (strcmp(e->name, "pgcoro") == 0 || strcmp(e->name, "pgbouncer") == 0) {
			cfg_fmt(p->err, sizeof(p->err),
			        "database name \"%s\" is reserved for the admin console", e->name);
			return false;
		}
		cfg_entry_unset(db_keys, &db);
		db.line = e->line;
		if (!(db.name = strdup(e->name)) || !cfg_entry_file(cfg, e->file, &db.file)) {
			cfg_db_clear(&db);
			goto oom;
		}
		if (!cfg_db_parse(&db, e->value, pgb, why, sizeof(why))) {
			cfg_db_clear(&db);
			cfg_fmt(p->err, sizeof(p->err), "database \"%s\": %s", e->name, why);
			return false;
		}
		if (db.load_balance_hosts < 0)
			db.load_balance_hosts = pgb ? LB_ROUND_ROBIN : LB_DISABLE;
		cfg->dbs[cfg->ndbs++] = db;
		for (const struct cfg_entry_key *k = db_keys; k->key; k++)
			if (k->compat == CFG_WARN && *(char **)((char *)&db + k->offset) &&
			    !cfg_warn(cfg, e->file, e->line, "database \"%s\": %s: %s", e->name, k->key,
			              k->note))
				goto oom;
	}
	if (p->users.n && !(cfg->users = calloc((size_t)p->users.n, sizeof(*cfg->users))))
		goto oom;
	for (int i = 0; i < p->users.n; i++) {
		struct raw_entry *e = &p->users.v[i];
		struct cfg_user u = {0};

		if (e->replaced)
			continue;
		if (!cfg_raw_named(p, e, "user"))
			return false;
		cfg_entry_unset(user_keys, &u);
		u.line = e->line;
		if (!cfg_user_parse(&u, e->value, pgb, why, sizeof(why))) {
			cfg_entry_free(user_keys, &u);
			cfg_fmt(p->err, sizeof(p->err), "user \"%s\": %s", e->name, why);
			return false;
		}
		if (!(u.name = strdup(e->name)) || !cfg_entry_file(cfg, e->file, &u.file)) {
			free(u.name);
			cfg_entry_free(user_keys, &u);
			goto oom;
		}
		cfg->users[cfg->nusers++] = u;
	}
	if (!cfg_peers(p))
		return false;
	p->err_file = NULL;
	p->err_line = 0;
	return true;
oom:
	p->err_file = cfg->path;
	p->err_line = 0;
	cfg_fmt(p->err, sizeof(p->err), "out of memory");
	return false;
}

/* The warnings of the main keys: each CFG_WARN key set to other than its default, and
 * each key whose meaning differs from PgBouncer's set in a [pgbouncer] section. */
static bool cfg_key_warnings(struct parser *p)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct cfg_key *k = &keys[i];
		bool warn = p->key_line[i] &&
		            ((k->compat == CFG_WARN && !cfg_is_default(p->cfg, k)) ||
		             (k->compat == CFG_NATIVE && k->note && p->key_pgb[i]));
		if (warn && !cfg_warn(p->cfg, p->key_file[i], p->key_line[i], "%s: %s", k->key, k->note))
			return false;
	}
	return true;
}

static int cfg_handler(void *user, const char *section, const char *name, const char *value)
{
	struct parser *p = user;

	if (p->err_file)
		return 0;
	if (strcmp(section, "pgcoro") == 0 || strcmp(section, "pgbouncer") == 0)
		return cfg_on_main(p, section, name, value);
	if (strcmp(section, "databases") == 0)
		return cfg_raw_add(p, &p->dbs, name, value);
	if (strcmp(section, "users") == 0)
		return cfg_raw_add(p, &p->users, name, value);
	if (strcmp(section, "peers") == 0)
		return cfg_raw_add(p, &p->peers, name, value);
	if (!*section)
		return cfg_fail(p, "key \"%s\" outside any section", name);
	/* blame the header line, not the first key under it */
	cfg_fail(p, "unknown section [%s] (known: [pgcoro] or [pgbouncer], [databases], [users], "
	         "[peers])", section);
	if (p->rd.section_file) {
		p->err_file = p->rd.section_file;
		p->err_line = p->rd.section_lineno;
	}
	return 0;
}

/* Checks that span keys, once the whole file is read: "reason" in why, and in *db the
 * [databases] entry at fault (NULL = a matter of the main keys). */
static bool cfg_validate(const struct config *cfg, const struct cfg_db **bad, char *why,
                         size_t whylen) __attribute__((warn_unused_result));
static bool cfg_validate(const struct config *cfg, const struct cfg_db **bad, char *why,
                         size_t whylen)
{
	struct sockaddr_un sun;

	*bad = NULL;

	if (!*cfg->listen_addr && !*cfg->unix_socket_dir) {
		cfg_fmt(why, whylen, "no listener: listen_addr and unix_socket_dir are both empty");
		return false;
	}
	if (cfg->unix_socket_dir[0] == '@') {
		cfg_fmt(why, whylen, "unix_socket_dir = %s is not supported yet: a unix socket in "
		        "the abstract namespace (PgBouncer's @) is not there yet",
		        cfg->unix_socket_dir);
		return false;
	}
	if (strlen(cfg->unix_socket_dir) + sizeof("/.s.PGSQL.65535") > sizeof(sun.sun_path)) {
		cfg_fmt(
		    why, whylen,
		    "unix_socket_dir \"%s\" is too long for a socket path (at most %zu characters)",
		    cfg->unix_socket_dir, sizeof(sun.sun_path) - sizeof("/.s.PGSQL.65535"));
		return false;
	}
	if (cfg->metrics_listen[0]) {
		char host[256];
		int port;
		if (!cfg_parse_host_port(cfg->metrics_listen, host, sizeof(host), &port)) {
			cfg_fmt(why, whylen, "metrics_listen \"%s\": expected host:port (e.g. "
			        "127.0.0.1:9127)", cfg->metrics_listen);
			return false;
		}
	}
	if (strcmp(cfg->auth_dbname, "pgbouncer") == 0 || strcmp(cfg->auth_dbname, "pgcoro") == 0) {
		/* the admin console's names; PgBouncer's words */
		cfg_fmt(why, whylen, "cannot use the reserved \"%s\" database as an auth_dbname",
		        cfg->auth_dbname);
		return false;
	}
	if (cfg->client_tls_sslmode != TLS_DISABLE &&
	    (!*cfg->client_tls_key_file || !*cfg->client_tls_cert_file)) {
		cfg_fmt(why, whylen, "client_tls_sslmode %s needs client_tls_key_file and "
		        "client_tls_cert_file", sslmode_names[cfg->client_tls_sslmode]);
		return false;
	}
	if (cfg->client_tls_sslmode >= TLS_VERIFY_CA && !*cfg->client_tls_ca_file) {
		cfg_fmt(why, whylen, "client_tls_sslmode %s needs client_tls_ca_file",
		        sslmode_names[cfg->client_tls_sslmode]);
		return false;
	}
	if (*cfg->server_tls_sslmode) {
		static const char *const modes[] = {"disable", "allow", "prefer", "require",
		                                    "verify-ca", "verify-full"};
		size_t i = 0;
		while (i < 6 && strcmp(cfg->server_tls_sslmode, modes[i]) != 0)
			i++;
		if (i == 6) {
			cfg_fmt(why, whylen, "invalid value \"%s\" for server_tls_sslmode: expected "
			        "disable, allow, prefer, require, verify-ca or verify-full",
			        cfg->server_tls_sslmode);
			return false;
		}
	}
	if (!tls_protocols_parse("client_tls_protocols", cfg->client_tls_protocols, NULL, NULL, why,
	                         whylen) ||
	    !tls_protocols_parse("server_tls_protocols", cfg->server_tls_protocols, NULL, NULL, why,
	                         whylen))
		return false;
	if (cfg->auth_type == AUTH_HBA && !*cfg->auth_hba_file) {
		cfg_fmt(why, whylen, "auth_type hba needs auth_hba_file");
		return false;
	}
	if (cfg->auth_type == AUTH_LDAP && !*cfg->auth_ldap_options) {
		cfg_fmt(why, whylen, "auth_type ldap needs auth_ldap_options");
		return false;
	}
	if (*cfg->auth_ldap_options) {
		char err[256];
		struct ldapauth_opts *o = ldapauth_parse(cfg->auth_ldap_options, err, sizeof(err));
		if (!o) {
			cfg_fmt(why, whylen, "auth_ldap_options: %s", err);
			return false;
		}
		ldapauth_free(o);
	}
	if (cfg->auth_type == AUTH_CERT &&
	    (!*cfg->client_tls_ca_file || cfg->client_tls_sslmode == TLS_DISABLE)) {
		cfg_fmt(why, whylen, "auth_type cert needs client TLS (client_tls_sslmode other "
		        "than disable) and client_tls_ca_file");
		return false;
	}
	if (cfg->min_pool_size > cfg->default_pool_size) {
		cfg_fmt(why, whylen, "min_pool_size (%d) exceeds default_pool_size (%d)",
		        cfg->min_pool_size, cfg->default_pool_size);
		return false;
	}
	/* a database's own min_pool_size against its pool size; the global min_pool_size
	 * inherited by a smaller pool (or a user's pool_size) is capped by the pool */
	for (int i = 0; i < cfg->ndbs; i++) {
		const struct cfg_db *db = &cfg->dbs[i];
		int size = db->pool_size >= 0 ? db->pool_size : cfg->default_pool_size;

		if (db->min_pool_size > size) {
			*bad = db;
			cfg_fmt(why, whylen, "database \"%s\": min_pool_size (%d) exceeds %s (%d)",
			        db->name, db->min_pool_size,
			        db->pool_size >= 0 ? "pool_size" : "default_pool_size", size);
			return false;
		}
	}
	return true;
}

/* Sets inih's run-time options once (Debian's libinih exposes them as variables):
 * lines grow to CFG_MAX_LINE (conninfo lines can be long), the first error stops the
 * parse, no multi-line values (an indented line is a key of its own), no inline
 * comments (';' may be part of a value such as a password). */
static pthread_once_t ini_once = PTHREAD_ONCE_INIT;

static void cfg_ini_setup(void)
{
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_max_line = CFG_MAX_LINE + 8;
	ini_stop_on_first_error = true;
	ini_allow_multiline = false;
	ini_allow_inline_comments = false;
}

struct config *cfg_default(void)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	char why[CFG_ERRLEN];

	if (!cfg)
		return NULL;
	cfg->path = strdup("(defaults)");
	if (!cfg->path)
		goto fail;
	for (size_t i = 0; i < NKEYS; i++)
		if (!cfg_set_value((char *)cfg + keys[i].offset, keys[i].type, keys[i].def, why,
		                   sizeof(why))) {
			if (strcmp(why, "out of memory") == 0)
				goto fail;
			fatal("config: default \"%s\" of %s does not parse: %s", keys[i].def,
			      keys[i].key, why);
		}
	return cfg;
fail:
	cfg_free(cfg);
	return NULL;
}

/* "FILE:LINE: WHY" (LINE 0: "FILE: WHY") into err. */
static void cfg_fmt_at(char *err, size_t errlen, const char *file, int line, const char *why)
{
	if (line > 0)
		cfg_fmt(err, errlen, "%s:%d: %s", file, line, why);
	else
		cfg_fmt(err, errlen, "%s: %s", file, why);
}

struct config *cfg_load(const char *path, char *err, size_t errlen)
{
	struct parser *p = NULL;
	struct config *cfg = NULL;
	const struct cfg_db *bad;
	char why[CFG_ERRLEN];
	FILE *f;
	int rc;

	pthread_once(&ini_once, cfg_ini_setup);
	f = fopen(path, "r");
	if (!f) {
		char buf[128];
		cfg_fmt(err, errlen, "%s: cannot open: %s", path,
		        strerror_r(errno, buf, sizeof(buf)));
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		fclose(f);
		cfg_fmt(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	p->rd.stack[0].f = f;
	if (!(p->rd.stack[0].path = cfg_keep_path(&p->rd, path)))
		goto oom;
	cfg = cfg_default();
	if (!cfg)
		goto oom;
	free(cfg->path);
	cfg->path = strdup(path);
	if (!cfg->path)
		goto oom;
	p->cfg = cfg;

	rc = ini_parse_stream(cfg_reader, &p->rd, cfg_handler, p);
	if (p->err_file) {
		cfg_fmt_at(err, errlen, p->err_file, p->err_line, p->err);
		goto fail;
	}
	if (p->rd.why[0]) {
		cfg_fmt_at(err, errlen, p->rd.why_file, p->rd.why_line, p->rd.why);
		goto fail;
	}
	if (rc == -2)
		goto oom;
	if (rc != 0) {
		/* inih stops at the first bad line: the one just read */
		cfg_fmt_at(err, errlen, cfg_cur_file(&p->rd), cfg_cur_line(&p->rd),
		           "syntax error: expected \"[section]\" or \"key = value\"");
		goto fail;
	}
	cfg->pgbouncer_ini = p->rd.pgbouncer_section;
	if (!cfg->conffile[0]) {
		free(cfg->conffile);
		if (!(cfg->conffile = strdup(path)))
			goto oom;
	}
	for (size_t d = 0; cfg->pgbouncer_ini && d < sizeof(pgb_defaults) / sizeof(*pgb_defaults);
	     d++)
		for (size_t i = 0; i < NKEYS; i++)
			if (!p->key_line[i] && strcmp(keys[i].key, pgb_defaults[d].key) == 0 &&
			    !cfg_set_value((char *)cfg + keys[i].offset, keys[i].type,
			                   pgb_defaults[d].def, why, sizeof(why)))
				goto oom;
	if (!cfg_entries(p)) {
		cfg_fmt_at(err, errlen, p->err_file, p->err_line, p->err);
		goto fail;
	}
	if (!cfg_key_warnings(p))
		goto oom;
	if (cfg->pgbouncer_ini && !cfg->auth_file[0] &&
	    (cfg->auth_type == AUTH_PLAIN || cfg->auth_type == AUTH_MD5 ||
	     cfg->auth_type == AUTH_SCRAM) &&
	    !cfg_warn(cfg, path, 0,
	              "auth_type %s without auth_file: no user can log in with a password (as "
	              "in PgBouncer; pgcoro refuses this in its own files)",
	              cfg_auth_type_name(cfg->auth_type)))
		goto oom;
	if (cfg->auth_type == AUTH_ANY &&
	    !cfg_warn(cfg, path, 0,
	              "auth_type any: no client is authenticated: every login to a database logs "
	              "in as its user= (a database without user= refuses every login), and any "
	              "user name gets into the admin console without a password (SHOW commands; "
	              "admin_users every command), as in PgBouncer"))
		goto oom;
	if (!cfg_validate(cfg, &bad, why, sizeof(why))) {
		if (bad)
			cfg_fmt_at(err, errlen, bad->file ? bad->file : path, bad->line, why);
		else
			cfg_fmt(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	cfg_reader_free(&p->rd);
	cfg_raw_free(&p->dbs);
	cfg_raw_free(&p->users);
	cfg_raw_free(&p->peers);
	free(p);
	return cfg;

oom:
	cfg_fmt(err, errlen, "%s: out of memory", path);
fail:
	cfg_reader_free(&p->rd);
	cfg_raw_free(&p->dbs);
	cfg_raw_free(&p->users);
	cfg_raw_free(&p->peers);
	free(p);
	cfg_free(cfg);
	return NULL;
}

void cfg_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < NKEYS; i++)
		if (cfg_ctype(keys[i].type) == C_STRING)
			free(*(char **)((char *)cfg + keys[i].offset));
	for (int i = 0; i < cfg->ndbs; i++)
		cfg_db_clear(&cfg->dbs[i]);
	free(cfg->dbs);
	for (int i = 0; i < cfg->nusers; i++) {
		free(cfg->users[i].name);
		free(cfg->users[i].file);
		cfg_entry_free(user_keys, &cfg->users[i]);
	}
	free(cfg->users);
	for (int i = 0; i < cfg->npeers; i++)
		cfg_entry_free(peer_keys, &cfg->peers[i]);
	free(cfg->peers);
	for (int i = 0; i < cfg->nwarnings; i++)
		free(cfg->warnings[i]);
	free(cfg->warnings);
	free(cfg->path);
	free(cfg);
}

bool cfg_list_has(const char *list, const char *name)
{
	size_t len = strlen(name);
	while (list && *list) {
		size_t n = strcspn(list, ", \t");
		if (n == len && strncasecmp(list, name, n) == 0)
			return true;
		list += n;
		list += strspn(list, ", \t");
	}
	return false;
}

const struct cfg_db *cfg_find_db(const struct config *cfg, const char *name)
{
	const struct cfg_db *fallback = NULL;

	for (int i = 0; i < cfg->ndbs; i++) {
		if (strcmp(cfg->dbs[i].name, name) == 0)
			return &cfg->dbs[i];
		if (strcmp(cfg->dbs[i].name, "*") == 0)
			fallback = &cfg->dbs[i];
	}
	return fallback;
}

const struct cfg_peer *cfg_find_peer(const struct config *cfg, int id)
{
	for (int i = 0; i < cfg->npeers; i++)
		if (cfg->peers[i].id == id)
			return &cfg->peers[i];
	return NULL;
}

const struct cfg_user *cfg_find_user(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->nusers; i++)
		if (strcmp(cfg->users[i].name, name) == 0)
			return &cfg->users[i];
	return NULL;
}

/* A NULL-terminated copy of the string array A, or NULL (out of memory). */
static char **cfg_strv_dup(char *const *a)
{
	size_t n = 0;
	while (a[n])
		n++;
	char **b = calloc(n + 1, sizeof(*b));
	if (!b)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!(b[i] = strdup(a[i]))) {
			while (i > 0)
				free(b[--i]);
			free(b);
			return NULL;
		}
	return b;
}

static void cfg_strv_free(char **a)
{
	for (size_t i = 0; a && a[i]; i++)
		free(a[i]);
	free(a);
}

/* A copy of S (NULL stays NULL) into *OUT; false when out of memory. */
static bool cfg_strdup_opt(const char *s, char **out)
{
	*out = s ? strdup(s) : NULL;
	return !s || *out;
}

/* A deep copy of CFG, or NULL (out of memory). */
static struct config *cfg_copy(const struct config *cfg)
{
	struct config *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	*c = *cfg;
	c->path = NULL;
	c->warnings = NULL;
	c->nwarnings = 0;
	c->dbs = NULL;
	c->ndbs = 0;
	c->users = NULL;
	c->nusers = 0;
	c->peers = NULL;
	c->npeers = 0;
	for (size_t i = 0; i < NKEYS; i++)
		if (cfg_ctype(keys[i].type) == C_STRING)
			*(char **)((char *)c + keys[i].offset) = NULL;
	if (!(c->path = strdup(cfg->path)))
		goto fail;
	for (size_t i = 0; i < NKEYS; i++) {
		if (cfg_ctype(keys[i].type) != C_STRING)
			continue;
		const char *from = *(char *const *)((const char *)cfg + keys[i].offset);
		if (!(*(char **)((char *)c + keys[i].offset) = strdup(from)))
			goto fail;
	}
	if (cfg->nwarnings) {
		if (!(c->warnings = calloc((size_t)cfg->nwarnings, sizeof(*c->warnings))))
			goto fail;
		for (; c->nwarnings < cfg->nwarnings; c->nwarnings++)
			if (!(c->warnings[c->nwarnings] = strdup(cfg->warnings[c->nwarnings])))
				goto fail;
	}
	if (cfg->ndbs) {
		if (!(c->dbs = calloc((size_t)cfg->ndbs, sizeof(*c->dbs))))
			goto fail;
		for (int i = 0; i < cfg->ndbs; i++, c->ndbs++) {
			struct cfg_db *d = &c->dbs[i];
			*d = cfg->dbs[i];
			bool ok = cfg_entry_dup(db_keys, d);
			d->name = strdup(cfg->dbs[i].name);
			d->kw = cfg_strv_dup(cfg->dbs[i].kw);
			d->val = cfg_strv_dup(cfg->dbs[i].val);
			ok = cfg_strdup_opt(cfg->dbs[i].file, &d->file) && ok;
			if (!ok || !d->name || !d->kw || !d->val) {
				free(d->name);
				free(d->file);
				cfg_strv_free(d->kw);
				cfg_strv_free(d->val);
				cfg_entry_free(db_keys, d);
				goto fail;
			}
		}
	}
	if (cfg->nusers) {
		if (!(c->users = calloc((size_t)cfg->nusers, sizeof(*c->users))))
			goto fail;
		for (int i = 0; i < cfg->nusers; i++, c->nusers++) {
			struct cfg_user *u = &c->users[i];
			*u = cfg->users[i];
			bool ok = cfg_entry_dup(user_keys, u);
			u->name = strdup(cfg->users[i].name);
			ok = cfg_strdup_opt(cfg->users[i].file, &u->file) && ok;
			if (!ok || !u->name) {
				free(u->name);
				free(u->file);
				cfg_entry_free(user_keys, u);
				goto fail;
			}
		}
	}
	if (cfg->npeers) {
		if (!(c->peers = calloc((size_t)cfg->npeers, sizeof(*c->peers))))
			goto fail;
		for (int i = 0; i < cfg->npeers; i++, c->npeers++) {
			c->peers[i] = cfg->peers[i];
			if (!cfg_entry_dup(peer_keys, &c->peers[i])) {
				cfg_entry_free(peer_keys, &c->peers[i]);
				goto fail;
			}
		}
	}
	return c;
fail:
	cfg_free(c);
	return NULL;
}

struct config *cfg_with(const struct config *cfg, const char *key, const char *value, char *err,
			size_t errlen)
{
	const struct cfg_key *k = NULL;
	for (size_t i = 0; i < NKEYS; i++)
		if (strcasecmp(keys[i].key, key) == 0)
			k = &keys[i];
	if (!k) {
		cfg_fmt(err, errlen, "unknown config parameter: %s", key);
		return NULL;
	}
	struct config *c = cfg_copy(cfg);
	if (!c) {
		cfg_fmt(err, errlen, "out of memory");
		return NULL;
	}
	char why[CFG_ERRLEN];
	const struct cfg_db *bad;
	if (!cfg_set_key(c, k, value, why, sizeof(why))) {
		cfg_fmt(err, errlen, "%s", why);
		goto fail;
	}
	if (!cfg_validate(c, &bad, why, sizeof(why))) {
		cfg_fmt(err, errlen, "%s", why);
		goto fail;
	}
	if (k->compat == CFG_WARN && !cfg_is_default(c, k) &&
	    !cfg_warn(c, "SET", 0, "%s: %s", k->key, k->note)) {
		cfg_fmt(err, errlen, "out of memory");
		goto fail;
	}
	return c;
fail:
	cfg_free(c);
	return NULL;
}

bool cfg_parse_host_port(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s)
		return false;
	const char *h = s;
	size_t hlen = (size_t)(colon - s);
	if (h[0] == '[') {
		if (hlen < 3 || h[hlen - 1] != ']')
			return false;
		h++;
		hlen -= 2;
	} else if (memchr(h, ':', hlen)) {
		return false; /* an IPv6 address needs brackets */
	}
	if (hlen == 1 && h[0] == '*') {
		h = "0.0.0.0";
		hlen = 7;
	}
	if (hlen >= hostlen)
		return false;
	long long p;
	if (!cfg_parse_ll(colon + 1, &p) || p < 1 || p > 65535)
		return false;
	memcpy(host, h, hlen);
	host[hlen] = 0;
	*port = (int)p;
	return true;
}

const char *cfg_db_param(const struct cfg_db *db, const char *kw)
{
	if (!db || !db->kw)
		return NULL;
	for (int i = 0; db->kw[i]; i++)
		if (strcmp(db->kw[i], kw) == 0)
			return db->val[i];
	return NULL;
}
