/* Owns the configuration: the settings table (keys, types, defaults, help), loading an
 * ini file through inih into a struct config, [databases] conninfo splitting and
 * validation through libpq, the pgcoro settings of [databases] and [users] entries,
 * lookups and the "key = value" dump. Every error names "file:line". The table drives
 * parsing, defaults, validation and the dump. */
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
#include <sys/types.h>
#include <sys/un.h>

#include "log.h"
#include "tls.h"

#define CFG_ERRLEN 512
/* Longest accepted line, '\n' included; inih's buffer is sized to hold it (see below). */
#define CFG_MAX_LINE 16384

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
};

static const char *const pool_mode_names[] = {"session", "transaction", "statement", NULL};
static const char *const auth_type_names[] = {"trust", "plain", "md5", "scram-sha-256",
					      "cert",  "hba",   NULL};
/* indexed by enum tls_mode */
static const char *const sslmode_names[] = {"disable", "allow",     "prefer",     "require",
					    "verify-ca", "verify-full", NULL};
/* false spellings at even, true at odd indexes */
static const char *const bool_names[] = {"0", "1", "off", "on", "false", "true", "no", "yes", NULL};

struct cfg_type {
	enum cfg_kind kind;
	long long min, max;       /* K_INT, K_OCTAL, K_BYTES, K_SECONDS */
	const char *const *names; /* K_ENUM, K_ENUM_STR */
};

static const struct cfg_type types[] = {
    [T_STRING] = {K_STRING, 0, 0, NULL},
    [T_PORT] = {K_INT, 1, 65535, NULL},
    [T_MODE] = {K_OCTAL, 0, 07777, NULL},
    [T_POOL_SIZE] = {K_INT, 1, 100000, NULL},
    [T_POOL_COUNT] = {K_INT, 0, 100000, NULL},  /* min_pool_size, reserve_pool_size */
    /* max_*_connections, max_client_prepared_statements; 0 = unlimited */
    [T_CONN_LIMIT] = {K_INT, 0, 1000000, NULL},
    [T_MAX_CLIENT_CONN] = {K_INT, 1, 1000000, NULL},
    [T_PACKET_SIZE] = {K_BYTES, 1024, 1073741823, NULL},
    [T_BYTES_LIMIT] = {K_BYTES, 0, INT_MAX, NULL}, /* 0 = unlimited */
    [T_THREADS] = {K_INT, 1, 64, NULL},
    /* up to INT_MAX milliseconds, so any timeout fits an int of ms */
    [T_SECONDS] = {K_SECONDS, 0, INT_MAX / 1000, NULL},
    [T_POOL_MODE] = {K_ENUM, 0, 0, pool_mode_names},
    [T_AUTH_TYPE] = {K_ENUM, 0, 0, auth_type_names},
    [T_LOG_LEVEL] = {K_ENUM_STR, 0, 0, log_level_names},
    [T_BOOL] = {K_BOOL, 0, 0, bool_names},
    [T_SYSLOG_FACILITY] = {K_ENUM_STR, 0, 0, log_facility_names},
    [T_SSLMODE] = {K_ENUM, 0, 0, sslmode_names},
};

/* ---- the settings table ------------------------------------------------------------ */

/* KEY: a key a reload or SET changes at once; KEY_AT: one taking effect only WHEN. */
#define KEY_AT(when, name, type, def, help)                                                      \
	{                                                                                          \
		"pgcoro", #name, type, offsetof(struct config, name), def, help, when              \
	}
#define KEY(name, type, def, help) KEY_AT(CFG_LIVE, name, type, def, help)

static const struct cfg_key keys[] = {
    KEY_AT(CFG_AT_START, listen_addr, T_STRING, "127.0.0.1",
        "TCP addresses to listen on, comma-separated; * = all; empty = no TCP"),
    KEY_AT(CFG_AT_START, listen_port, T_PORT, "6432",
        "TCP port, also the number in the unix socket name"),
    KEY_AT(CFG_AT_START, unix_socket_dir, T_STRING, "/tmp",
        "directory of the unix socket .s.PGSQL.<listen_port>; empty = no unix socket"),
    KEY_AT(CFG_AT_START, unix_socket_mode, T_MODE, "0777",
        "permissions of the unix socket, octal"),
    KEY_AT(CFG_WITH_FILES, auth_type, T_AUTH_TYPE, "md5",
        "client authentication: trust, plain, md5, scram-sha-256, cert or hba"),
    KEY_AT(CFG_WITH_FILES, auth_file, T_STRING, "",
        "file of \"user\" \"password\" lines; empty = none"),
    KEY_AT(CFG_WITH_FILES, auth_hba_file, T_STRING, "",
        "pg_hba.conf-style rules choosing the method per connection (auth_type hba)"),
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
        "OpenSSL cipher list for clients (TLS 1.2 and lower); default = OpenSSL's"),
    KEY(server_tls_sslmode, T_STRING, "",
        "libpq sslmode for servers unless the conninfo sets one; empty = libpq's (prefer)"),
    KEY(server_tls_ca_file, T_STRING, "",
        "libpq sslrootcert for servers unless the conninfo sets one"),
    KEY(server_tls_cert_file, T_STRING, "",
        "libpq sslcert (client certificate towards servers) unless the conninfo sets one"),
    KEY(server_tls_key_file, T_STRING, "",
        "libpq sslkey (its key) unless the conninfo sets one"),
    KEY(admin_users, T_STRING, "",
        "users (comma-separated) allowed every command of the admin console (database pgcoro "
        "or pgbouncer)"),
    KEY(stats_users, T_STRING, "",
        "users (comma-separated) allowed the admin console's SHOW commands"),
    KEY(pool_mode, T_POOL_MODE, "session",
        "when a server goes back to the pool: session, transaction or statement"),
    KEY(default_pool_size, T_POOL_SIZE, "20",
        "server connections per (database, user) pool, unless the database sets pool_size"),
    KEY(min_pool_size, T_POOL_COUNT, "0",
        "server connections kept open per pool even when unused, unless the database sets it"),
    KEY(reserve_pool_size, T_POOL_COUNT, "0",
        "extra server connections a pool may open when a client waits reserve_pool_timeout"),
    KEY(reserve_pool_timeout, T_SECONDS, "5",
        "how long a client waits for a server before the reserve pool is used"),
    KEY(max_client_conn, T_MAX_CLIENT_CONN, "100", "most client connections at once"),
    KEY(max_db_connections, T_CONN_LIMIT, "0",
        "most server connections per database across its users; 0 = unlimited"),
    KEY(max_user_connections, T_CONN_LIMIT, "0",
        "most server connections per user across databases; 0 = unlimited"),
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
    KEY(track_extra_parameters, T_STRING, "IntervalStyle",
        "transaction/statement mode: reported parameters restored per client besides "
        "client_encoding, DateStyle, TimeZone, IntervalStyle, standard_conforming_strings, "
        "application_name"),
    KEY(server_reset_query, T_STRING, "DISCARD ALL",
        "query run on a server before another client gets it; empty = none"),
    KEY(server_check_query, T_STRING, "select 1",
        "query run on a server idle longer than server_check_delay before use; empty = none"),
    KEY(server_check_delay, T_SECONDS, "30",
        "idle time after which a server is checked with server_check_query before use"),
    KEY(server_connect_timeout, T_SECONDS, "15",
        "limit on connecting and logging in to a server; 0 = none"),
    KEY(server_login_retry, T_SECONDS, "0.5",
        "cap of the exponential back-off between failed server connection attempts"),
    KEY(server_idle_timeout, T_SECONDS, "600",
        "an idle server connection above min_pool_size is closed after this; 0 = never"),
    KEY(server_lifetime, T_SECONDS, "3600",
        "a server connection this old is closed when next idle; 0 = never"),
    KEY(client_login_timeout, T_SECONDS, "60",
        "limit on a client's startup and authentication, checked every second; 0 = none"),
    KEY(query_wait_timeout, T_SECONDS, "120",
        "limit on a client waiting for a server (error 57014), checked every second; 0 = none"),
    KEY(client_idle_timeout, T_SECONDS, "0",
        "a logged-in client idle this long is disconnected; 0 = none"),
    KEY(idle_transaction_timeout, T_SECONDS, "0",
        "a client idle inside a transaction this long is disconnected (25P03); 0 = none"),
    KEY(query_timeout, T_SECONDS, "0",
        "a query running this long is cancelled (57014), the server kept; 0 = none"),
    KEY(shutdown_timeout, T_SECONDS, "30",
        "on SIGTERM/SIGINT, clients still busy after this are closed and pgcoro exits; 0 = wait"),
    KEY(max_packet_size, T_PACKET_SIZE, "1073741823",
        "largest message accepted from a client, in bytes (kB, MB, GB allowed)"),
    KEY_AT(CFG_AT_START, executor_threads, T_THREADS, "2",
        "threads for blocking work: connect steps, cancels, reloads"),
    KEY(log_level, T_LOG_LEVEL, "info", "error, warning, info or debug"),
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
    KEY(metrics_listen, T_STRING, "",
        "host:port of the Prometheus endpoint http://host:port/metrics ([::1]:port for IPv6, "
        "*:port for every address); empty = none, and no histograms are recorded"),
    KEY_AT(CFG_AT_START, pidfile, T_STRING, "", "file to write the process id to; empty = none"),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* pgcoro settings of one [databases] entry (mixed into its conninfo) or one [users]
 * entry: int fields of struct cfg_db / struct cfg_user, -1 when absent. */
struct cfg_entry_key {
	const char *key;
	int type;
	size_t offset;
};

_Static_assert(POOL_MODE_UNSET == -1, "absent entry settings are all -1");

static const struct cfg_entry_key db_keys[] = {
    {"pool_size", T_POOL_SIZE, offsetof(struct cfg_db, pool_size)},
    {"pool_mode", T_POOL_MODE, offsetof(struct cfg_db, pool_mode)},
    {"min_pool_size", T_POOL_COUNT, offsetof(struct cfg_db, min_pool_size)},
    {"reserve_pool_size", T_POOL_COUNT, offsetof(struct cfg_db, reserve_pool_size)},
    {"max_db_connections", T_CONN_LIMIT, offsetof(struct cfg_db, max_db_connections)},
    {NULL, 0, 0},
};

static const struct cfg_entry_key user_keys[] = {
    {"pool_mode", T_POOL_MODE, offsetof(struct cfg_user, pool_mode)},
    {"pool_size", T_POOL_SIZE, offsetof(struct cfg_user, pool_size)},
    {"max_user_connections", T_CONN_LIMIT, offsetof(struct cfg_user, max_user_connections)},
    {NULL, 0, 0},
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

/* Marks every setting of ENTRY (described by EK) absent. */
static void cfg_entry_unset(const struct cfg_entry_key *ek, void *entry)
{
	for (; ek->key; ek++)
		*(int *)((char *)entry + ek->offset) = -1;
}

/* Parses VALUE into setting K of ENTRY; on failure "invalid K "VALUE": reason" in why. */
static bool cfg_entry_set(const struct cfg_entry_key *k, void *entry, const char *value, char *why,
                          size_t whylen) __attribute__((warn_unused_result));
static bool cfg_entry_set(const struct cfg_entry_key *k, void *entry, const char *value, char *why,
                          size_t whylen)
{
	char reason[CFG_ERRLEN / 2];

	if (cfg_set_value((char *)entry + k->offset, k->type, value, reason, sizeof(reason)))
		return true;
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

bool cfg_key_settable(const struct cfg_key *k) { return k->when == CFG_LIVE; }

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
 * character. Pointers point into the owned copy buf. */
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

static bool cfg_tokenize(const char *s, struct tokens *t, char *why, size_t whylen)
    __attribute__((warn_unused_result));
static bool cfg_tokenize(const char *s, struct tokens *t, char *why, size_t whylen)
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
				if (*cp == '\\') {
					cp++;
					if (*cp)
						*out++ = *cp++;
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
				if (*cp == '\\') {
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

/* Hands inih one physical line at a time (in pieces if its buffer is smaller) and counts
 * lines, since the installed inih reports no line numbers to the handler. */
struct reader {
	FILE *f;
	char *line;
	size_t cap;
	size_t len, pos;
	int lineno;         /* current line, 1-based */
	int section_lineno; /* line of the last [section] header */
	char why[128];      /* set when reading failed: inih then stops */
};

static char *cfg_reader(char *str, int num, void *stream)
{
	struct reader *r = stream;
	size_t n;

	if (r->why[0] || num < 2)
		return NULL;
	if (r->pos >= r->len) {
		errno = 0;
		ssize_t got = getline(&r->line, &r->cap, r->f);
		if (got < 0) {
			if (ferror(r->f)) {
				char buf[64];
				snprintf(r->why, sizeof(r->why), "cannot read: %s",
				         strerror_r(errno, buf, sizeof(buf)));
			}
			return NULL;
		}
		r->lineno++;
		r->len = (size_t)got;
		r->pos = 0;
		if (r->len > CFG_MAX_LINE - 1) {
			snprintf(r->why, sizeof(r->why), "line too long (more than %d characters)",
			         CFG_MAX_LINE - 2);
			return NULL;
		}
		if (memchr(r->line, '\0', r->len)) {
			snprintf(r->why, sizeof(r->why), "line contains a NUL byte");
			return NULL;
		}
		const char *p = r->line;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '[')
			r->section_lineno = r->lineno;
	}
	n = r->len - r->pos;
	if (n > (size_t)num - 1)
		n = (size_t)num - 1;
	memcpy(str, r->line + r->pos, n);
	str[n] = '\0';
	r->pos += n;
	return str;
}

struct parser {
	struct config *cfg;
	struct reader rd;
	int key_line[NKEYS]; /* where each [pgcoro] key was set, 0 = not yet */
	int dbs_cap, users_cap;
	int err_line;         /* 0 = no error */
	char err[CFG_ERRLEN]; /* reason, without "file:line: " */
};

static int cfg_fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records the first error at the current line; returns 0 for inih. */
static int cfg_fail(struct parser *p, const char *fmt, ...)
{
	va_list ap;

	if (p->err_line)
		return 0;
	p->err_line = p->rd.lineno;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
	return 0;
}

static int cfg_on_pgcoro(struct parser *p, const char *name, const char *value)
{
	char why[CFG_ERRLEN / 2];
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].key, name) == 0)
			break;
	if (i == NKEYS)
		return cfg_fail(p, "unknown key \"%s\" in [pgcoro]", name);
	if (p->key_line[i])
		return cfg_fail(p, "duplicate key \"%s\" in [pgcoro] (first set on line %d)", name,
		                p->key_line[i]);
	if (!cfg_set_value((char *)p->cfg + keys[i].offset, keys[i].type, value, why, sizeof(why)))
		return cfg_fail(p, "invalid value \"%s\" for %s: %s", value, name, why);
	p->key_line[i] = p->rd.lineno;
	return 1;
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
}

static bool cfg_is_uri(const char *s)
{
	return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0;
}

/* Fills DB's kw/val and its pgcoro settings (db_keys) from VALUE. */
static bool cfg_db_parse(struct cfg_db *db, const char *value, char *why, size_t whylen)
    __attribute__((warn_unused_result));
static bool cfg_db_parse(struct cfg_db *db, const char *value, char *why, size_t whylen)
{
	struct tokens t = {0};
	PQconninfoOption *opts = NULL;
	char *conninfo = NULL, *errmsg = NULL;
	bool ok = false;
	int n = 0;

	if (cfg_is_uri(value)) {
		conninfo = strdup(value);
		if (!conninfo)
			goto oom;
	} else {
		size_t need = 1, off = 0;

		if (!cfg_tokenize(value, &t, why, whylen)) {
			/* prefer libpq's own words for what is wrong */
			opts = PQconninfoParse(value, &errmsg);
			if (!opts && errmsg)
				goto libpq_error;
			PQconninfoFree(opts);
			opts = NULL;
			return false;
		}
		for (int i = 0; i < t.n; i++)
			need += strlen(t.kw[i]) + 2 * strlen(t.val[i]) + 4;
		conninfo = malloc(need);
		if (!conninfo)
			goto oom;
		for (int i = 0; i < t.n; i++) {
			const struct cfg_entry_key *k = cfg_entry_find(db_keys, t.kw[i]);

			if (k) {
				if (!cfg_entry_set(k, db, t.val[i], why, whylen))
					goto out;
				continue;
			}
			/* re-quote so libpq sees exactly the value we tokenized */
			off += (size_t)sprintf(conninfo + off, "%s='", t.kw[i]);
			for (const char *c = t.val[i]; *c; c++) {
				if (*c == '\'' || *c == '\\')
					conninfo[off++] = '\\';
				conninfo[off++] = *c;
			}
			conninfo[off++] = '\'';
			conninfo[off++] = ' ';
		}
		conninfo[off] = '\0';
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
	cfg_tokens_free(&t);
	return ok;
}

static int cfg_on_database(struct parser *p, const char *name, const char *value)
{
	struct config *cfg = p->cfg;
	char why[CFG_ERRLEN / 2];
	struct cfg_db db = {0};

	if (!*name)
		return cfg_fail(p, "empty database name in [databases]");
	for (int i = 0; i < cfg->ndbs; i++)
		if (strcmp(cfg->dbs[i].name, name) == 0)
			return cfg_fail(p, "duplicate database \"%s\" (first defined on line %d)",
			                name, cfg->dbs[i].line);
	if (cfg->ndbs == p->dbs_cap) {
		int cap = p->dbs_cap ? 2 * p->dbs_cap : 8;
		struct cfg_db *dbs = realloc(cfg->dbs, (size_t)cap * sizeof(*dbs));
		if (!dbs)
			return cfg_fail(p, "out of memory");
		cfg->dbs = dbs;
		p->dbs_cap = cap;
	}
	cfg_entry_unset(db_keys, &db);
	db.line = p->rd.lineno;
	db.name = strdup(name);
	if (!db.name)
		return cfg_fail(p, "out of memory");
	if (!cfg_db_parse(&db, value, why, sizeof(why))) {
		cfg_db_clear(&db);
		return cfg_fail(p, "database \"%s\": %s", name, why);
	}
	cfg->dbs[cfg->ndbs++] = db;
	return 1;
}

static int cfg_on_user(struct parser *p, const char *name, const char *value)
{
	struct config *cfg = p->cfg;
	char why[CFG_ERRLEN / 2];
	struct tokens t;
	struct cfg_user u = {0};

	if (!*name)
		return cfg_fail(p, "empty user name in [users]");
	for (int i = 0; i < cfg->nusers; i++)
		if (strcmp(cfg->users[i].name, name) == 0)
			return cfg_fail(p, "duplicate user \"%s\" (first defined on line %d)", name,
			                cfg->users[i].line);
	if (!cfg_tokenize(value, &t, why, sizeof(why)))
		return cfg_fail(p, "user \"%s\": %s", name, why);
	cfg_entry_unset(user_keys, &u);
	u.line = p->rd.lineno;
	for (int i = 0; i < t.n; i++) {
		const struct cfg_entry_key *k = cfg_entry_find(user_keys, t.kw[i]);

		if (!k) {
			char known[128];
			cfg_entry_names(user_keys, known, sizeof(known));
			cfg_fail(p, "user \"%s\": unknown setting \"%s\" (known: %s)", name,
			         t.kw[i], known);
			cfg_tokens_free(&t);
			return 0;
		}
		if (!cfg_entry_set(k, &u, t.val[i], why, sizeof(why))) {
			cfg_fail(p, "user \"%s\": %s", name, why);
			cfg_tokens_free(&t);
			return 0;
		}
	}
	cfg_tokens_free(&t);
	if (cfg->nusers == p->users_cap) {
		int cap = p->users_cap ? 2 * p->users_cap : 8;
		struct cfg_user *users = realloc(cfg->users, (size_t)cap * sizeof(*users));
		if (!users)
			return cfg_fail(p, "out of memory");
		cfg->users = users;
		p->users_cap = cap;
	}
	u.name = strdup(name);
	if (!u.name)
		return cfg_fail(p, "out of memory");
	cfg->users[cfg->nusers++] = u;
	return 1;
}

static int cfg_handler(void *user, const char *section, const char *name, const char *value)
{
	struct parser *p = user;

	if (p->err_line)
		return 0;
	if (strcmp(section, "pgcoro") == 0)
		return cfg_on_pgcoro(p, name, value);
	if (strcmp(section, "databases") == 0)
		return cfg_on_database(p, name, value);
	if (strcmp(section, "users") == 0)
		return cfg_on_user(p, name, value);
	if (!*section)
		return cfg_fail(p, "key \"%s\" outside any section", name);
	/* blame the header line, not the first key under it */
	cfg_fail(p, "unknown section [%s] (known: [pgcoro], [databases], [users])", section);
	p->err_line = p->rd.section_lineno ? p->rd.section_lineno : p->rd.lineno;
	return 0;
}

/* Checks that span keys, once the whole file is read: "reason" in why, and in *line the
 * line of the [databases] entry at fault (0 = a [pgcoro] matter, no line). */
static bool cfg_validate(const struct config *cfg, int *line, char *why, size_t whylen)
    __attribute__((warn_unused_result));
static bool cfg_validate(const struct config *cfg, int *line, char *why, size_t whylen)
{
	struct sockaddr_un sun;

	*line = 0;

	if (!*cfg->listen_addr && !*cfg->unix_socket_dir) {
		cfg_fmt(why, whylen, "no listener: listen_addr and unix_socket_dir are both empty");
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
	if (cfg->auth_type == AUTH_HBA && !*cfg->auth_hba_file) {
		cfg_fmt(why, whylen, "auth_type hba needs auth_hba_file");
		return false;
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
			*line = db->line;
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

struct config *cfg_load(const char *path, char *err, size_t errlen)
{
	struct parser *p = NULL;
	struct config *cfg = NULL;
	char why[CFG_ERRLEN];
	FILE *f;
	int rc, line;

	pthread_once(&ini_once, cfg_ini_setup);
	f = fopen(path, "r");
	if (!f) {
		char buf[128];
		cfg_fmt(err, errlen, "%s: cannot open: %s", path,
		        strerror_r(errno, buf, sizeof(buf)));
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	cfg = cfg_default();
	if (!p || !cfg)
		goto oom;
	free(cfg->path);
	cfg->path = strdup(path);
	if (!cfg->path)
		goto oom;
	p->cfg = cfg;
	p->rd.f = f;

	rc = ini_parse_stream(cfg_reader, &p->rd, cfg_handler, p);
	if (p->err_line) {
		if (rc > 0 && rc < p->err_line)
			cfg_fmt(err, errlen,
			        "%s:%d: syntax error: expected \"[section]\" or \"key = value\"",
			        path, rc);
		else
			cfg_fmt(err, errlen, "%s:%d: %s", path, p->err_line, p->err);
		goto fail;
	}
	if (p->rd.why[0]) {
		if (p->rd.lineno > 0)
			cfg_fmt(err, errlen, "%s:%d: %s", path, p->rd.lineno, p->rd.why);
		else
			cfg_fmt(err, errlen, "%s: %s", path, p->rd.why);
		goto fail;
	}
	if (rc == -2)
		goto oom;
	if (rc != 0) {
		cfg_fmt(err, errlen,
		        "%s:%d: syntax error: expected \"[section]\" or \"key = value\"", path, rc);
		goto fail;
	}
	if (!cfg_validate(cfg, &line, why, sizeof(why))) {
		if (line > 0)
			cfg_fmt(err, errlen, "%s:%d: %s", path, line, why);
		else
			cfg_fmt(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	free(p->rd.line);
	free(p);
	fclose(f);
	return cfg;

oom:
	cfg_fmt(err, errlen, "%s: out of memory", path);
fail:
	if (p)
		free(p->rd.line);
	free(p);
	fclose(f);
	cfg_free(cfg);
	return NULL;
}

void cfg_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct cfg_type *t = &types[keys[i].type];
		if (t->kind == K_STRING || t->kind == K_ENUM_STR)
			free(*(char **)((char *)cfg + keys[i].offset));
	}
	for (int i = 0; i < cfg->ndbs; i++)
		cfg_db_clear(&cfg->dbs[i]);
	free(cfg->dbs);
	for (int i = 0; i < cfg->nusers; i++)
		free(cfg->users[i].name);
	free(cfg->users);
	free(cfg->path);
	free(cfg);
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

/* A deep copy of CFG, or NULL (out of memory). */
static struct config *cfg_copy(const struct config *cfg)
{
	struct config *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	*c = *cfg;
	c->path = NULL;
	c->dbs = NULL;
	c->ndbs = 0;
	c->users = NULL;
	c->nusers = 0;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct cfg_type *t = &types[keys[i].type];
		if (t->kind == K_STRING || t->kind == K_ENUM_STR)
			*(char **)((char *)c + keys[i].offset) = NULL;
	}
	if (!(c->path = strdup(cfg->path)))
		goto fail;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct cfg_type *t = &types[keys[i].type];
		if (t->kind != K_STRING && t->kind != K_ENUM_STR)
			continue;
		const char *from = *(char *const *)((const char *)cfg + keys[i].offset);
		if (!(*(char **)((char *)c + keys[i].offset) = strdup(from)))
			goto fail;
	}
	if (cfg->ndbs) {
		if (!(c->dbs = calloc((size_t)cfg->ndbs, sizeof(*c->dbs))))
			goto fail;
		for (int i = 0; i < cfg->ndbs; i++, c->ndbs++) {
			struct cfg_db *d = &c->dbs[i];
			*d = cfg->dbs[i];
			d->name = strdup(cfg->dbs[i].name);
			d->kw = cfg_strv_dup(cfg->dbs[i].kw);
			d->val = cfg_strv_dup(cfg->dbs[i].val);
			if (!d->name || !d->kw || !d->val) {
				free(d->name);
				cfg_strv_free(d->kw);
				cfg_strv_free(d->val);
				goto fail;
			}
		}
	}
	if (cfg->nusers) {
		if (!(c->users = calloc((size_t)cfg->nusers, sizeof(*c->users))))
			goto fail;
		for (int i = 0; i < cfg->nusers; i++, c->nusers++) {
			c->users[i] = cfg->users[i];
			if (!(c->users[i].name = strdup(cfg->users[i].name)))
				goto fail;
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
	int line;
	if (!cfg_set_value((char *)c + k->offset, k->type, value, why, sizeof(why))) {
		cfg_fmt(err, errlen, "%s: %s", k->key, why);
		goto fail;
	}
	if (!cfg_validate(c, &line, why, sizeof(why))) {
		cfg_fmt(err, errlen, "%s", why);
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
