/* Unit tests of config.c: defaults, every value type, [databases] and [users], the exact
 * "file:line: reason" of each kind of bad file, and that conf/pgcoro.ini documents every
 * key and that the shipped examples load. */
#include <check.h>

#include "unit.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

static char tmp_path[64];
static char err[1024];

/* Writes TEXT to a new temp file (its path in tmp_path) and loads it. */
static struct config *load_text(const char *text)
{
	strcpy(tmp_path, "/tmp/test_config_XXXXXX");
	int fd = mkstemp(tmp_path);
	ck_assert_int_ge(fd, 0);
	size_t len = strlen(text);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	err[0] = '\0';
	struct config *cfg = cfg_load(tmp_path, err, sizeof(err));
	unlink(tmp_path);
	return cfg;
}

/* Loading TEXT fails with exactly "<tmpfile>:LINE: REASON" (LINE 0: "<tmpfile>: REASON"). */
static void expect_error(const char *text, int line, const char *reason)
{
	char want[1024];
	struct config *cfg = load_text(text);
	if (line > 0)
		snprintf(want, sizeof(want), "%s:%d: %s", tmp_path, line, reason);
	else
		snprintf(want, sizeof(want), "%s: %s", tmp_path, reason);
	ck_assert_msg(cfg == NULL, "loaded, expected error \"%s\"", want);
	ck_assert_str_eq(err, want);
}

static struct config *load_ok(const char *text)
{
	struct config *cfg = load_text(text);
	ck_assert_msg(cfg != NULL, "load failed: %s", err);
	return cfg;
}

static void check_defaults(const struct config *cfg)
{
	ck_assert_str_eq(cfg->listen_addr, "127.0.0.1");
	ck_assert_int_eq(cfg->listen_port, 6432);
	ck_assert_str_eq(cfg->unix_socket_dir, "/tmp");
	ck_assert_int_eq(cfg->unix_socket_mode, 0777);
	ck_assert_int_eq(cfg->auth_type, AUTH_MD5);
	ck_assert_str_eq(cfg->auth_file, "");
	ck_assert_int_eq(cfg->pool_mode, POOL_SESSION);
	ck_assert_int_eq(cfg->default_pool_size, 20);
	ck_assert_int_eq(cfg->max_client_conn, 100);
	ck_assert_str_eq(cfg->server_reset_query, "DISCARD ALL");
	ck_assert_double_eq(cfg->server_connect_timeout, 15.0);
	ck_assert_double_eq(cfg->client_login_timeout, 60.0);
	ck_assert_int_eq(cfg->max_packet_size, 1073741823);
	ck_assert_int_eq(cfg->executor_threads, 2);
	ck_assert_str_eq(cfg->log_level, "info");
	ck_assert_str_eq(cfg->logfile, "");
	ck_assert_str_eq(cfg->pidfile, "");
	/* limits */
	ck_assert_int_eq(cfg->min_pool_size, 0);
	ck_assert_int_eq(cfg->reserve_pool_size, 0);
	ck_assert_double_eq(cfg->reserve_pool_timeout, 5.0);
	ck_assert_int_eq(cfg->max_db_connections, 0);
	ck_assert_int_eq(cfg->max_user_connections, 0);
	/* timeouts */
	ck_assert_double_eq(cfg->query_wait_timeout, 120.0);
	ck_assert_double_eq(cfg->client_idle_timeout, 0.0);
	ck_assert_double_eq(cfg->idle_transaction_timeout, 0.0);
	ck_assert_double_eq(cfg->query_timeout, 0.0);
	ck_assert_double_eq(cfg->server_login_retry, 0.5);
	ck_assert_double_eq(cfg->server_idle_timeout, 600.0);
	ck_assert_double_eq(cfg->server_lifetime, 3600.0);
	ck_assert_double_eq(cfg->server_check_delay, 30.0);
	ck_assert_str_eq(cfg->server_check_query, "select 1");
	/* logging */
	ck_assert_int_eq(cfg->syslog, 0);
	ck_assert_str_eq(cfg->syslog_ident, "pgcoro");
	ck_assert_str_eq(cfg->syslog_facility, "daemon");
	ck_assert_int_eq(cfg->log_connections, 1);
	ck_assert_int_eq(cfg->log_disconnections, 1);
	ck_assert_int_eq(cfg->log_pooler_errors, 1);
	ck_assert_double_eq(cfg->stats_period, 60.0);
}

START_TEST(test_defaults)
{
	struct config *cfg = cfg_default();
	ck_assert_ptr_nonnull(cfg);
	check_defaults(cfg);
	ck_assert_int_eq(cfg->ndbs, 0);
	ck_assert_int_eq(cfg->nusers, 0);
	ck_assert_ptr_null(cfg_find_db(cfg, "x"));
	ck_assert_ptr_null(cfg_find_user(cfg, "x"));
	cfg_free(cfg);

	/* an empty file and a file of comments are all defaults */
	cfg = load_ok("");
	check_defaults(cfg);
	ck_assert_str_eq(cfg->path, tmp_path);
	cfg_free(cfg);
	cfg = load_ok("; nothing\n# here\n\n[pgcoro]\n");
	check_defaults(cfg);
	cfg_free(cfg);
}
END_TEST

START_TEST(test_every_type)
{
	struct config *cfg = load_ok("[pgcoro]\n"
	                             "listen_addr = *\n"
	                             "listen_port = 7000\n"
	                             "unix_socket_dir = \"\"\n"
	                             "unix_socket_mode = 0700\n"
	                             "auth_type = SCRAM-SHA-256\n"
	                             "auth_file = /etc/pgcoro/users.txt\n"
	                             "pool_mode = transaction\n"
	                             "default_pool_size = 100000\n"
	                             "max_client_conn = 1\n"
	                             "server_reset_query =\n"
	                             "server_connect_timeout = 500ms\n"
	                             "client_login_timeout = 2min\n"
	                             "max_packet_size = 16MB\n"
	                             "executor_threads = 64\n"
	                             "log_level = debug\n"
	                             "logfile = \"/var/log/pg coro.log\"\n"
	                             "  pidfile = /run/pgcoro.pid  \n");
	ck_assert_str_eq(cfg->listen_addr, "*");
	ck_assert_int_eq(cfg->listen_port, 7000);
	ck_assert_str_eq(cfg->unix_socket_dir, "");
	ck_assert_int_eq(cfg->unix_socket_mode, 0700);
	ck_assert_int_eq(cfg->auth_type, AUTH_SCRAM);
	ck_assert_str_eq(cfg->auth_file, "/etc/pgcoro/users.txt");
	ck_assert_int_eq(cfg->pool_mode, POOL_TRANSACTION);
	ck_assert_int_eq(cfg->default_pool_size, 100000);
	ck_assert_int_eq(cfg->max_client_conn, 1);
	ck_assert_str_eq(cfg->server_reset_query, "");
	ck_assert_double_eq_tol(cfg->server_connect_timeout, 0.5, 1e-9);
	ck_assert_double_eq(cfg->client_login_timeout, 120.0);
	ck_assert_int_eq(cfg->max_packet_size, 16 * 1024 * 1024);
	ck_assert_int_eq(cfg->executor_threads, 64);
	ck_assert_str_eq(cfg->log_level, "debug");
	ck_assert_str_eq(cfg->logfile, "/var/log/pg coro.log");
	ck_assert_str_eq(cfg->pidfile, "/run/pgcoro.pid");
	cfg_free(cfg);
}
END_TEST

/* Booleans take 0/1 and the usual words in any case; the dump writes 0 or 1. */
START_TEST(test_bools)
{
	static const struct {
		const char *text;
		int value;
	} cases[] = {{"0", 0},   {"1", 1},     {"off", 0}, {"ON", 1}, {"false", 0},
	             {"True", 1}, {"no", 0}, {"yes", 1}};
	char text[128];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text),
		         "[pgcoro]\nsyslog = %s\nlog_connections = %s\nlog_pooler_errors = %s\n",
		         cases[i].text, cases[i].text, cases[i].text);
		struct config *cfg = load_ok(text);
		ck_assert_int_eq(cfg->syslog, cases[i].value);
		ck_assert_int_eq(cfg->log_connections, cases[i].value);
		ck_assert_int_eq(cfg->log_pooler_errors, cases[i].value);
		ck_assert_int_eq(cfg->log_disconnections, 1);
		cfg_free(cfg);
	}
	struct config *cfg = load_ok("[pgcoro]\nsyslog = on\nsyslog_facility = LOCAL3\n"
	                             "syslog_ident = pgc-1\nstats_period = 500ms\n");
	ck_assert_str_eq(cfg->syslog_facility, "local3");
	ck_assert_str_eq(cfg->syslog_ident, "pgc-1");
	ck_assert_double_eq_tol(cfg->stats_period, 0.5, 1e-9);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cfg_dump(cfg, f);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(buf, "\nsyslog = 1\n"));
	ck_assert_ptr_nonnull(strstr(buf, "\nsyslog_facility = local3\n"));
	free(buf);
	cfg_free(cfg);
}
END_TEST

START_TEST(test_limits_and_timeouts)
{
	struct config *cfg = load_ok("[pgcoro]\n"
	                             "default_pool_size = 50\n"
	                             "min_pool_size = 50\n"
	                             "reserve_pool_size = 100000\n"
	                             "reserve_pool_timeout = 250ms\n"
	                             "max_db_connections = 1000000\n"
	                             "max_user_connections = 7\n"
	                             "query_wait_timeout = 0\n"
	                             "client_idle_timeout = 1h\n"
	                             "idle_transaction_timeout = 30s\n"
	                             "query_timeout = 1.5\n"
	                             "server_login_retry = 10\n"
	                             "server_idle_timeout = 2min\n"
	                             "server_lifetime = 0\n"
	                             "server_check_delay = 0\n"
	                             "server_check_query = \"SELECT 'x'\"\n");
	ck_assert_int_eq(cfg->min_pool_size, 50);
	ck_assert_int_eq(cfg->reserve_pool_size, 100000);
	ck_assert_double_eq_tol(cfg->reserve_pool_timeout, 0.25, 1e-9);
	ck_assert_int_eq(cfg->max_db_connections, 1000000);
	ck_assert_int_eq(cfg->max_user_connections, 7);
	ck_assert_double_eq(cfg->query_wait_timeout, 0.0);
	ck_assert_double_eq(cfg->client_idle_timeout, 3600.0);
	ck_assert_double_eq(cfg->idle_transaction_timeout, 30.0);
	ck_assert_double_eq_tol(cfg->query_timeout, 1.5, 1e-9);
	ck_assert_double_eq(cfg->server_login_retry, 10.0);
	ck_assert_double_eq(cfg->server_idle_timeout, 120.0);
	ck_assert_double_eq(cfg->server_lifetime, 0.0);
	ck_assert_double_eq(cfg->server_check_delay, 0.0);
	ck_assert_str_eq(cfg->server_check_query, "SELECT 'x'");
	cfg_free(cfg);

	/* an empty server_check_query disables the check */
	cfg = load_ok("[pgcoro]\nserver_check_query =\n");
	ck_assert_str_eq(cfg->server_check_query, "");
	cfg_free(cfg);
	cfg = load_ok("[pgcoro]\nserver_check_query = \"\"\n");
	ck_assert_str_eq(cfg->server_check_query, "");
	cfg_free(cfg);
}
END_TEST

START_TEST(test_durations)
{
	static const struct {
		const char *text;
		double secs;
	} cases[] = {{"15", 15},   {"1.5", 1.5}, {"500ms", 0.5}, {"15s", 15},  {"2min", 120},
	             {"1h", 3600}, {"0", 0},     {".25", 0.25},  {"10 s", 10}, {"0.5h", 1800}};
	char text[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "[pgcoro]\nclient_login_timeout = %s\n",
		         cases[i].text);
		struct config *cfg = load_ok(text);
		ck_assert_msg(cfg->client_login_timeout > cases[i].secs - 1e-9 &&
		                  cfg->client_login_timeout < cases[i].secs + 1e-9,
		              "%s gave %g", cases[i].text, cfg->client_login_timeout);
		cfg_free(cfg);
	}
}
END_TEST

START_TEST(test_full_file)
{
	struct config *cfg = load_ok(
	    "; a full file\n"
	    "[pgcoro]\n"
	    "listen_port = 6543\n"
	    "pool_mode = statement\n"
	    "\n"
	    "[databases]\n"
	    "app = host=localhost port=5433 dbname=realapp pool_size=5 pool_mode=transaction\n"
	    "plain = host=/var/run/postgresql\n"
	    "empty =\n"
	    "* = host=127.0.0.1\n"
	    "[users]\n"
	    "web = pool_mode=transaction\n"
	    "batch = pool_mode = session\n"
	    "nothing =\n");
	ck_assert_int_eq(cfg->listen_port, 6543);
	ck_assert_int_eq(cfg->pool_mode, POOL_STATEMENT);
	ck_assert_int_eq(cfg->ndbs, 4);

	const struct cfg_db *db = cfg_find_db(cfg, "app");
	ck_assert_ptr_nonnull(db);
	ck_assert_str_eq(db->name, "app");
	ck_assert_int_eq(db->line, 7);
	ck_assert_int_eq(db->pool_size, 5);
	ck_assert_int_eq(db->pool_mode, POOL_TRANSACTION);
	ck_assert_str_eq(cfg_db_param(db, "host"), "localhost");
	ck_assert_str_eq(cfg_db_param(db, "port"), "5433");
	ck_assert_str_eq(cfg_db_param(db, "dbname"), "realapp");
	ck_assert_ptr_null(cfg_db_param(db, "user"));

	db = cfg_find_db(cfg, "plain");
	ck_assert_int_eq(db->pool_size, -1);
	ck_assert_int_eq(db->pool_mode, POOL_MODE_UNSET);
	ck_assert_ptr_null(cfg_db_param(db, "dbname"));
	ck_assert_str_eq(cfg_db_param(db, "host"), "/var/run/postgresql");
	ck_assert_ptr_null(db->kw[1]);

	db = cfg_find_db(cfg, "empty");
	ck_assert_ptr_nonnull(db);
	ck_assert_ptr_null(db->kw[0]);
	ck_assert_ptr_null(db->val[0]);

	ck_assert_int_eq(cfg->nusers, 3);
	const struct cfg_user *u = cfg_find_user(cfg, "web");
	ck_assert_ptr_nonnull(u);
	ck_assert_int_eq(u->pool_mode, POOL_TRANSACTION);
	ck_assert_int_eq(u->line, 12);
	ck_assert_int_eq(cfg_find_user(cfg, "batch")->pool_mode, POOL_SESSION);
	ck_assert_int_eq(cfg_find_user(cfg, "nothing")->pool_mode, POOL_MODE_UNSET);
	ck_assert_ptr_null(cfg_find_user(cfg, "other"));
	cfg_free(cfg);
}
END_TEST

START_TEST(test_pgcoro_keys_split)
{
	struct config *cfg =
	    load_ok("[databases]\n"
	            "x = pool_size=7 host=h1 min_pool_size = 3 pool_mode=statement "
	            "reserve_pool_size=0 user=u max_db_connections='25'\n"
	            "y = host=h2\n");
	const struct cfg_db *db = cfg_find_db(cfg, "x");
	ck_assert_int_eq(db->pool_size, 7);
	ck_assert_int_eq(db->pool_mode, POOL_STATEMENT);
	ck_assert_int_eq(db->min_pool_size, 3);
	ck_assert_int_eq(db->reserve_pool_size, 0);
	ck_assert_int_eq(db->max_db_connections, 25);
	int n = 0;
	for (int i = 0; db->kw[i]; i++, n++) {
		ck_assert_ptr_nonnull(db->val[i]);
		ck_assert_str_ne(db->kw[i], "pool_size");
		ck_assert_str_ne(db->kw[i], "pool_mode");
		ck_assert_str_ne(db->kw[i], "min_pool_size");
		ck_assert_str_ne(db->kw[i], "reserve_pool_size");
		ck_assert_str_ne(db->kw[i], "max_db_connections");
	}
	ck_assert_int_eq(n, 2);
	ck_assert_ptr_null(db->val[n]);
	ck_assert_str_eq(cfg_db_param(db, "host"), "h1");
	ck_assert_str_eq(cfg_db_param(db, "user"), "u");
	ck_assert_ptr_null(cfg_db_param(db, "pool_size"));
	ck_assert_ptr_null(cfg_db_param(db, "max_db_connections"));

	/* absent: -1, inherit the global value */
	db = cfg_find_db(cfg, "y");
	ck_assert_int_eq(db->pool_size, -1);
	ck_assert_int_eq(db->pool_mode, POOL_MODE_UNSET);
	ck_assert_int_eq(db->min_pool_size, -1);
	ck_assert_int_eq(db->reserve_pool_size, -1);
	ck_assert_int_eq(db->max_db_connections, -1);
	cfg_free(cfg);
}
END_TEST

START_TEST(test_user_settings)
{
	struct config *cfg = load_ok("[users]\n"
	                             "web = pool_mode=transaction pool_size=30 "
	                             "max_user_connections=40\n"
	                             "batch = pool_size = 1\n"
	                             "admin = max_user_connections=0\n"
	                             "plain =\n");
	const struct cfg_user *u = cfg_find_user(cfg, "web");
	ck_assert_int_eq(u->pool_mode, POOL_TRANSACTION);
	ck_assert_int_eq(u->pool_size, 30);
	ck_assert_int_eq(u->max_user_connections, 40);
	u = cfg_find_user(cfg, "batch");
	ck_assert_int_eq(u->pool_mode, POOL_MODE_UNSET);
	ck_assert_int_eq(u->pool_size, 1);
	ck_assert_int_eq(u->max_user_connections, -1);
	u = cfg_find_user(cfg, "admin");
	ck_assert_int_eq(u->pool_size, -1);
	ck_assert_int_eq(u->max_user_connections, 0);
	u = cfg_find_user(cfg, "plain");
	ck_assert_int_eq(u->pool_mode, POOL_MODE_UNSET);
	ck_assert_int_eq(u->pool_size, -1);
	ck_assert_int_eq(u->max_user_connections, -1);
	ck_assert_int_eq(u->line, 5);
	cfg_free(cfg);
}
END_TEST

START_TEST(test_quoted_values)
{
	struct config *cfg =
	    load_ok("[databases]\n"
	            "q = application_name='my app' password='it\\'s a \\\\ secret;x' "
	            "host = h  options='-c search_path=a,b'\n"
	            "u = user=na\\ me\n");
	const struct cfg_db *db = cfg_find_db(cfg, "q");
	ck_assert_str_eq(cfg_db_param(db, "application_name"), "my app");
	ck_assert_str_eq(cfg_db_param(db, "password"), "it's a \\ secret;x");
	ck_assert_str_eq(cfg_db_param(db, "host"), "h");
	ck_assert_str_eq(cfg_db_param(db, "options"), "-c search_path=a,b");
	ck_assert_str_eq(cfg_db_param(cfg_find_db(cfg, "u"), "user"), "na me");
	cfg_free(cfg);
}
END_TEST

START_TEST(test_uri)
{
	struct config *cfg =
	    load_ok("[databases]\n"
	            "a = postgresql://bob@db.example.com:5433/analytics?sslmode=require\n"
	            "b = postgres:///\n");
	const struct cfg_db *db = cfg_find_db(cfg, "a");
	ck_assert_str_eq(cfg_db_param(db, "host"), "db.example.com");
	ck_assert_str_eq(cfg_db_param(db, "port"), "5433");
	ck_assert_str_eq(cfg_db_param(db, "user"), "bob");
	ck_assert_str_eq(cfg_db_param(db, "dbname"), "analytics");
	ck_assert_str_eq(cfg_db_param(db, "sslmode"), "require");
	ck_assert_int_eq(db->pool_size, -1);
	db = cfg_find_db(cfg, "b");
	ck_assert_ptr_null(cfg_db_param(db, "dbname"));
	cfg_free(cfg);

	/* pgcoro keys cannot ride in a URI */
	expect_error(
	    "[databases]\na = postgresql://h/d?pool_size=3\n", 2,
	    "database \"a\": invalid conninfo: invalid URI query parameter: \"pool_size\"");
}
END_TEST

START_TEST(test_fallback)
{
	struct config *cfg = load_ok("[databases]\n"
	                             "* = host=fallback\n"
	                             "one = host=h1\n");
	ck_assert_str_eq(cfg_find_db(cfg, "one")->name, "one");
	ck_assert_str_eq(cfg_find_db(cfg, "two")->name, "*");
	ck_assert_str_eq(cfg_db_param(cfg_find_db(cfg, "two"), "host"), "fallback");
	ck_assert_ptr_null(cfg_db_param(NULL, "host"));
	cfg_free(cfg);

	cfg = load_ok("[databases]\none = host=h1\n");
	ck_assert_ptr_null(cfg_find_db(cfg, "two"));
	cfg_free(cfg);
}
END_TEST

START_TEST(test_bad_files)
{
	expect_error("[pgcoro]\nlisten_port = 1\n\n\n\n\nlisten_prot = 5\n", 7,
	             "unknown key \"listen_prot\" in [pgcoro]");
	expect_error("; c\n\n[pgcoro]\nlisten_port = abc\n", 4,
	             "invalid value \"abc\" for listen_port: not an integer");
	expect_error("[pgcoro]\nlisten_port = 70000\n", 2,
	             "invalid value \"70000\" for listen_port: out of range (1..65535)");
	expect_error("[pgcoro]\ndefault_pool_size = 0\n", 2,
	             "invalid value \"0\" for default_pool_size: out of range (1..100000)");
	expect_error("[pgcoro]\nexecutor_threads = 65\n", 2,
	             "invalid value \"65\" for executor_threads: out of range (1..64)");
	expect_error("[pgcoro]\nmax_client_conn = 12x\n", 2,
	             "invalid value \"12x\" for max_client_conn: not an integer");
	expect_error("[pgcoro]\nmax_packet_size = 1000\n", 2,
	             "invalid value \"1000\" for max_packet_size: out of range (1024..2147483647)");
	expect_error(
	    "[pgcoro]\nmax_packet_size = 1TB\n", 2,
	    "invalid value \"1TB\" for max_packet_size: not a size (e.g. 1048576, 64kB, 16MB)");
	expect_error("[pgcoro]\nunix_socket_mode = 0778\n", 2,
	             "invalid value \"0778\" for unix_socket_mode: not an octal mode (e.g. 0770)");
	expect_error("[pgcoro]\nunix_socket_mode = 17777\n", 2,
	             "invalid value \"17777\" for unix_socket_mode: out of range (0000..7777)");
	expect_error(
	    "[pgcoro]\npool_mode = sesion\n", 2,
	    "invalid value \"sesion\" for pool_mode: expected session, transaction or statement");
	expect_error("[pgcoro]\nauth_type = password\n", 2,
	             "invalid value \"password\" for auth_type: expected trust, plain, md5, "
	             "scram-sha-256, cert, hba, any, pam or ldap");
	expect_error("[pgcoro]\nclient_tls_sslmode = on\n", 2,
	             "invalid value \"on\" for client_tls_sslmode: expected disable, allow, prefer, "
	             "require, verify-ca or verify-full");
	expect_error("[pgcoro]\nclient_tls_sslmode = require\nclient_tls_key_file = k\n", 0,
	             "client_tls_sslmode require needs client_tls_key_file and client_tls_cert_file");
	expect_error("[pgcoro]\nclient_tls_sslmode = verify-ca\nclient_tls_key_file = k\n"
	             "client_tls_cert_file = c\n", 0,
	             "client_tls_sslmode verify-ca needs client_tls_ca_file");
	expect_error("[pgcoro]\nauth_type = hba\n", 0, "auth_type hba needs auth_hba_file");
	expect_error("[pgcoro]\nauth_type = ldap\n", 0, "auth_type ldap needs auth_ldap_options");
	expect_error("[pgcoro]\nauth_type = ldap\nauth_ldap_options = ldapserver=h\n", 0,
	             "auth_ldap_options: authentication method \"ldap\" requires argument "
	             "\"ldapbasedn\", \"ldapprefix\", or \"ldapsuffix\" to be set");
	expect_error("[pgcoro]\nauth_ldap_options = ldapserver=h ldapprefix=x ldaptimeout=3\n", 0,
	             "auth_ldap_options: invalid LDAP option: \"ldaptimeout\"");
	expect_error("[pgcoro]\nserver_tls_sslmode = on\n", 0,
	             "invalid value \"on\" for server_tls_sslmode: expected disable, allow, prefer, "
	             "require, verify-ca or verify-full");
	expect_error("[pgcoro]\nauth_type = cert\n", 0,
	             "auth_type cert needs client TLS (client_tls_sslmode other than disable) and "
	             "client_tls_ca_file");
	expect_error("[pgcoro]\nauth_type = cert\nclient_tls_ca_file = ca\n", 0,
	             "auth_type cert needs client TLS (client_tls_sslmode other than disable) and "
	             "client_tls_ca_file");
	expect_error(
	    "[pgcoro]\nlog_level = verbose\n", 2,
	    "invalid value \"verbose\" for log_level: expected error, warning, info or debug");
	expect_error("[pgcoro]\nsyslog = 2\n", 2,
	             "invalid value \"2\" for syslog: expected 0 or 1 (also off/on, false/true, "
	             "no/yes)");
	expect_error("[pgcoro]\nlog_disconnections = maybe\n", 2,
	             "invalid value \"maybe\" for log_disconnections: expected 0 or 1 (also off/on, "
	             "false/true, no/yes)");
	expect_error("[pgcoro]\nsyslog_facility = kern\n", 2,
	             "invalid value \"kern\" for syslog_facility: expected auth, authpriv, daemon, "
	             "user, local0, local1, local2, local3, local4, local5, local6 or local7");
	expect_error("[pgcoro]\nmin_pool_size = -1\n", 2,
	             "invalid value \"-1\" for min_pool_size: out of range (0..100000)");
	expect_error("[pgcoro]\nreserve_pool_size = 100001\n", 2,
	             "invalid value \"100001\" for reserve_pool_size: out of range (0..100000)");
	expect_error("[pgcoro]\nreserve_pool_size = five\n", 2,
	             "invalid value \"five\" for reserve_pool_size: not an integer");
	expect_error("[pgcoro]\nmax_db_connections = -1\n", 2,
	             "invalid value \"-1\" for max_db_connections: out of range (0..1000000)");
	expect_error(
	    "[pgcoro]\n\nmax_user_connections = 1000001\n", 3,
	    "invalid value \"1000001\" for max_user_connections: out of range (0..1000000)");
	expect_error("[pgcoro]\nmax_user_connections = 1.5\n", 2,
	             "invalid value \"1.5\" for max_user_connections: not an integer");
	expect_error("[pgcoro]\nlisten_port = 1\nlisten_port = 2\n", 3,
	             "duplicate key \"listen_port\" in [pgcoro] (first set on line 2)");
	expect_error("listen_port = 1\n", 1, "key \"listen_port\" outside any section");
}
END_TEST

START_TEST(test_bad_seconds)
{
	static const char *const bad[] = {"abc", "-1",   "15x", "1m",       "inf",
	                                  "nan", "0x10", "",    "1.5 hours"};
	char text[128], reason[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[pgcoro]\n\nserver_connect_timeout = %s\n", bad[i]);
		snprintf(
		    reason, sizeof(reason),
		    "invalid value \"%s\" for server_connect_timeout: not a duration (e.g. 15, "
		    "1.5, 500ms, 15s, 2min, 1h)",
		    bad[i]);
		expect_error(text, 3, reason);
	}
	expect_error(
	    "[pgcoro]\nclient_login_timeout = 1000h\n", 2,
	    "invalid value \"1000h\" for client_login_timeout: out of range (0..2147483 seconds)");

	/* every new duration key is a duration */
	static const char *const dkeys[] = {
	    "reserve_pool_timeout",     "query_wait_timeout", "client_idle_timeout",
	    "idle_transaction_timeout", "query_timeout",      "server_login_retry",
	    "server_idle_timeout",      "server_lifetime",    "server_check_delay"};
	for (size_t i = 0; i < sizeof(dkeys) / sizeof(dkeys[0]); i++) {
		snprintf(text, sizeof(text), "[pgcoro]\n%s = 5 sec\n", dkeys[i]);
		snprintf(reason, sizeof(reason),
		         "invalid value \"5 sec\" for %s: not a duration (e.g. 15, 1.5, 500ms, "
		         "15s, 2min, 1h)",
		         dkeys[i]);
		expect_error(text, 2, reason);
		snprintf(text, sizeof(text), "[pgcoro]\n%s = -0.5\n", dkeys[i]);
		snprintf(reason, sizeof(reason),
		         "invalid value \"-0.5\" for %s: not a duration (e.g. 15, 1.5, 500ms, "
		         "15s, 2min, 1h)",
		         dkeys[i]);
		expect_error(text, 2, reason);
		snprintf(text, sizeof(text), "[pgcoro]\n\n%s = 600h\n", dkeys[i]);
		snprintf(reason, sizeof(reason),
		         "invalid value \"600h\" for %s: out of range (0..2147483 seconds)",
		         dkeys[i]);
		expect_error(text, 3, reason);
	}
}
END_TEST

START_TEST(test_bad_sections)
{
	expect_error("[pgcoro]\nlisten_port = 1\n\n[pooler]\n; comment\nfoo = 1\n", 4,
	             "unknown section [pooler] (known: [pgcoro] or [pgbouncer], [databases], [users], "
	             "[peers])");
	/* inih's own syntax errors */
	expect_error("[pgcoro]\nlisten_port = 1\nthis is not a key\nlog_level = info\n", 3,
	             "syntax error: expected \"[section]\" or \"key = value\"");
	expect_error("[pgcoro]\n[databases\nx = host=h\n", 2,
	             "syntax error: expected \"[section]\" or \"key = value\"");
	/* an overlong line is refused, not cut */
	size_t n = 20000;
	char *text = malloc(n + 64);
	strcpy(text, "[databases]\nx = host=");
	memset(text + strlen(text), 'a', n);
	strcpy(text + strlen("[databases]\nx = host=") + n, "\n");
	expect_error(text, 2, "line too long (more than 16382 characters)");
	free(text);
}
END_TEST

START_TEST(test_long_line_ok)
{
	/* lines longer than inih's default 200 bytes are read whole */
	char text[4096], host[3000];
	memset(host, 'h', sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(text, sizeof(text),
	         "[databases]\nx = host=%s pool_size=3\n\n[pgcoro]\nlisten_port = 9\n", host);
	struct config *cfg = load_ok(text);
	ck_assert_str_eq(cfg_db_param(cfg_find_db(cfg, "x"), "host"), host);
	ck_assert_int_eq(cfg_find_db(cfg, "x")->pool_size, 3);
	ck_assert_int_eq(cfg->listen_port, 9);
	cfg_free(cfg);
	/* line numbers stay right after a long line */
	snprintf(text, sizeof(text), "[databases]\nx = host=%s\n\n[pgcoro]\nlisten_prot = 9\n",
	         host);
	expect_error(text, 5, "unknown key \"listen_prot\" in [pgcoro]");
}
END_TEST

START_TEST(test_bad_databases)
{
	expect_error("[pgcoro]\n\n[databases]\na = host=h\n\n\n\n\n\n\n\ndb = hostx=1\n", 12,
	             "database \"db\": invalid conninfo: invalid connection option \"hostx\"");
	expect_error("[databases]\na = host=h\nb = host=h\na = host=i\n", 4,
	             "duplicate database \"a\" (first defined on line 2)");
	expect_error("[databases]\na = host\n", 2,
	             "database \"a\": invalid conninfo: missing \"=\" after \"host\" in connection "
	             "info string");
	expect_error("[databases]\na = password='abc\n", 2,
	             "database \"a\": invalid conninfo: unterminated quoted string in connection "
	             "info string");
	expect_error("[databases]\na = host=h pool_size=many\n", 2,
	             "database \"a\": invalid pool_size \"many\": not an integer");
	expect_error("[databases]\na = host=h pool_size=0\n", 2,
	             "database \"a\": invalid pool_size \"0\": out of range (1..100000)");
	expect_error("[databases]\na = host=h min_pool_size=-1\n", 2,
	             "database \"a\": invalid min_pool_size \"-1\": out of range (0..100000)");
	expect_error("[databases]\na = host=h reserve_pool_size=2x\n", 2,
	             "database \"a\": invalid reserve_pool_size \"2x\": not an integer");
	expect_error(
	    "[databases]\na = host=h max_db_connections=1000001\n", 2,
	    "database \"a\": invalid max_db_connections \"1000001\": out of range (0..1000000)");
	expect_error("[databases]\na = host=h max_db_connections=\n", 2,
	             "database \"a\": invalid max_db_connections \"\": not an integer");
	expect_error("[databases]\na = postgresql://h/d?min_pool_size=1\n", 2,
	             "database \"a\": invalid conninfo: invalid URI query parameter: "
	             "\"min_pool_size\"");
	expect_error("[databases]\na = pool_mode=sometimes\n", 2,
	             "database \"a\": invalid pool_mode \"sometimes\": expected session, "
	             "transaction or statement");
	expect_error(
	    "[databases]\na = postgresql://h/d?x\n", 2,
	    "database \"a\": invalid conninfo: missing key/value separator \"=\" in URI query "
	    "parameter: \"x\"");
}
END_TEST

START_TEST(test_bad_users)
{
	expect_error("[users]\nbob = pool_mode=never\n", 2,
	             "user \"bob\": invalid pool_mode \"never\": expected session, transaction or "
	             "statement");
	expect_error("[users]\nbob = min_pool_size=3\n", 2,
	             "user \"bob\": unknown setting \"min_pool_size\" (known: pool_mode, "
	             "pin_session_state, pool_size, reserve_pool_size, max_user_connections, "
	             "max_user_client_connections, query_timeout, query_wait_timeout, "
	             "idle_transaction_timeout, client_idle_timeout, transaction_timeout)");
	expect_error("[users]\n\nbob = pool_mode=session pool_size=0\n", 3,
	             "user \"bob\": invalid pool_size \"0\": out of range (1..100000)");
	expect_error("[users]\nbob = pool_size=lots\n", 2,
	             "user \"bob\": invalid pool_size \"lots\": not an integer");
	expect_error(
	    "[users]\nbob = max_user_connections=-1\n", 2,
	    "user \"bob\": invalid max_user_connections \"-1\": out of range (0..1000000)");
	expect_error("[users]\nbob = pool_mode=session\nbob = pool_mode=session\n", 3,
	             "duplicate user \"bob\" (first defined on line 2)");
	expect_error("[users]\nbob = pool_mode\n", 2,
	             "user \"bob\": missing \"=\" after \"pool_mode\" in connection info string");
}
END_TEST

START_TEST(test_cross_key)
{
	expect_error("[pgcoro]\nlisten_addr =\nunix_socket_dir = \"\"\n", 0,
	             "no listener: listen_addr and unix_socket_dir are both empty");
	char text[512], dir[200];
	memset(dir, 'd', sizeof(dir) - 1);
	dir[0] = '/';
	dir[sizeof(dir) - 1] = '\0';
	snprintf(text, sizeof(text), "[pgcoro]\nunix_socket_dir = %s\n", dir);
	struct config *cfg = load_text(text);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(strstr(err, "unix_socket_dir") && strstr(err, "too long"), "%s", err);
}
END_TEST

/* auth_type ldap with PgBouncer's example of auth_ldap_options (a quoted URL) */
START_TEST(test_auth_ldap)
{
	struct config *cfg = load_ok("[pgbouncer]\nauth_type = ldap\nauth_ldap_options = "
	                             "ldapurl=\"ldap://127.0.0.1:12345/dc=example,dc=net?uid?sub\"\n"
	                             "auth_ldap_timeout = 2500ms\n");
	ck_assert_int_eq(cfg->auth_type, AUTH_LDAP);
	ck_assert_str_eq(cfg->auth_ldap_options,
	                 "ldapurl=\"ldap://127.0.0.1:12345/dc=example,dc=net?uid?sub\"");
	ck_assert(cfg->auth_ldap_timeout == 2.5);
	ck_assert_str_eq(cfg_auth_type_name(cfg->auth_type), "ldap");
	cfg_free(cfg);
	cfg = load_ok("[pgcoro]\nauth_type = trust\n");
	ck_assert(cfg->auth_ldap_timeout == 10);
	ck_assert_str_eq(cfg->auth_ldap_options, "");
	cfg_free(cfg);
}
END_TEST

START_TEST(test_min_pool_size)
{
	/* global: against default_pool_size, whatever the order of the keys */
	expect_error("[pgcoro]\nmin_pool_size = 21\n", 0,
	             "min_pool_size (21) exceeds default_pool_size (20)");
	expect_error("[pgcoro]\nmin_pool_size = 10\ndefault_pool_size = 5\n", 0,
	             "min_pool_size (10) exceeds default_pool_size (5)");
	struct config *cfg = load_ok("[pgcoro]\nmin_pool_size = 20\n");
	ck_assert_int_eq(cfg->min_pool_size, 20);
	cfg_free(cfg);

	/* a database's own: against its pool_size, else default_pool_size */
	expect_error("[databases]\na = host=h\n\nb = host=h pool_size=4 min_pool_size=5\n", 4,
	             "database \"b\": min_pool_size (5) exceeds pool_size (4)");
	expect_error("[databases]\na = host=h min_pool_size=21\n", 2,
	             "database \"a\": min_pool_size (21) exceeds default_pool_size (20)");
	/* default_pool_size set after [databases] still counts */
	expect_error("[databases]\na = host=h min_pool_size=8\n[pgcoro]\ndefault_pool_size = 7\n",
	             2, "database \"a\": min_pool_size (8) exceeds default_pool_size (7)");
	/* the global check comes first */
	expect_error("[pgcoro]\nmin_pool_size = 30\n[databases]\na = host=h min_pool_size=99\n", 0,
	             "min_pool_size (30) exceeds default_pool_size (20)");

	cfg = load_ok("[pgcoro]\ndefault_pool_size = 8\nmin_pool_size = 6\n"
	              "[databases]\n"
	              "a = host=h min_pool_size=8\n"
	              "b = host=h pool_size=30 min_pool_size=30\n"
	              "c = host=h pool_size=2\n" /* inherits 6: capped by the pool */
	              "d = host=h min_pool_size=0\n");
	ck_assert_int_eq(cfg_find_db(cfg, "a")->min_pool_size, 8);
	ck_assert_int_eq(cfg_find_db(cfg, "b")->min_pool_size, 30);
	ck_assert_int_eq(cfg_find_db(cfg, "c")->min_pool_size, -1);
	ck_assert_int_eq(cfg_find_db(cfg, "d")->min_pool_size, 0);
	cfg_free(cfg);
}
END_TEST

START_TEST(test_missing_file)
{
	char want[256];
	struct config *cfg = cfg_load("/nonexistent/pgcoro.ini", err, sizeof(err));
	ck_assert_ptr_null(cfg);
	snprintf(want, sizeof(want),
	         "/nonexistent/pgcoro.ini: cannot open: No such file or directory");
	ck_assert_str_eq(err, want);
	cfg = cfg_load("/tmp", err, sizeof(err));
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(err, "/tmp: cannot read: Is a directory");
	/* err may be left out */
	ck_assert_ptr_null(cfg_load("/nonexistent/pgcoro.ini", NULL, 0));
}
END_TEST

START_TEST(test_dump)
{
	struct config *cfg =
	    load_ok("[pgcoro]\nunix_socket_mode = 0750\nclient_login_timeout = 1500ms\n"
	            "auth_type = trust\nquery_timeout = 2.25\nmin_pool_size = 3\n");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cfg_dump(cfg, f);
	fclose(f);
	size_t nkeys;
	const struct cfg_key *keys = cfg_keys(&nkeys);
	int lines = 0;
	for (char *p = buf; *p; p++)
		lines += *p == '\n';
	ck_assert_int_eq(lines, (int)nkeys);
	ck_assert_ptr_nonnull(strstr(buf, "listen_port = 6432\n"));
	ck_assert_ptr_nonnull(strstr(buf, "unix_socket_mode = 0750\n"));
	ck_assert_ptr_nonnull(strstr(buf, "client_login_timeout = 1.5\n"));
	ck_assert_ptr_nonnull(strstr(buf, "auth_type = trust\n"));
	ck_assert_ptr_nonnull(strstr(buf, "server_reset_query = DISCARD ALL\n"));
	ck_assert_ptr_nonnull(strstr(buf, "logfile = \"\"\n"));
	ck_assert_ptr_nonnull(strstr(buf, "server_login_retry = 0.5\n"));
	ck_assert_ptr_nonnull(strstr(buf, "server_check_query = select 1\n"));
	ck_assert_ptr_nonnull(strstr(buf, "query_wait_timeout = 120\n"));
	ck_assert_ptr_nonnull(strstr(buf, "reserve_pool_size = 0\n"));
	ck_assert_ptr_nonnull(strstr(buf, "max_db_connections = 0\n"));
	for (size_t i = 0; i < nkeys; i++) {
		ck_assert_str_eq(keys[i].section, "pgcoro");
		ck_assert_ptr_nonnull(keys[i].help);
	}
	cfg_free(cfg);

	/* the dump reads back to the same values */
	char *text = malloc(len + 16);
	snprintf(text, len + 16, "[pgcoro]\n%s", buf);
	cfg = load_ok(text);
	ck_assert_int_eq(cfg->unix_socket_mode, 0750);
	ck_assert_int_eq(cfg->auth_type, AUTH_TRUST);
	ck_assert_double_eq_tol(cfg->client_login_timeout, 1.5, 1e-9);
	ck_assert_str_eq(cfg->logfile, "");
	ck_assert_double_eq_tol(cfg->query_timeout, 2.25, 1e-9);
	ck_assert_double_eq_tol(cfg->server_login_retry, 0.5, 1e-9);
	ck_assert_int_eq(cfg->min_pool_size, 3);
	ck_assert_str_eq(cfg->server_check_query, "select 1");
	cfg_free(cfg);
	free(text);
	free(buf);

	ck_assert_str_eq(cfg_pool_mode_name(POOL_TRANSACTION), "transaction");
	ck_assert_str_eq(cfg_pool_mode_name(POOL_MODE_UNSET), "unset");
	ck_assert_str_eq(cfg_auth_type_name(AUTH_SCRAM), "scram-sha-256");
}
END_TEST

/* auth_type any and pam (PgBouncer's) load; any warns that it lets everyone in, pam needs
 * no auth_file. */
START_TEST(test_auth_any_pam)
{
	struct config *cfg = load_ok("[pgcoro]\nauth_type = any\n[databases]\n"
	                             "db = host=h user=app\n");
	ck_assert_int_eq(cfg->auth_type, AUTH_ANY);
	ck_assert_str_eq(cfg_auth_type_name(AUTH_ANY), "any");
	ck_assert_int_eq(cfg->nwarnings, 1);
	ck_assert_msg(strstr(cfg->warnings[0], "auth_type any: no client is authenticated"),
	              "%s", cfg->warnings[0]);
	cfg_free(cfg);
	cfg = load_ok("[pgcoro]\nauth_type = pam\n");
	ck_assert_int_eq(cfg->auth_type, AUTH_PAM);
	ck_assert_str_eq(cfg_auth_type_name(AUTH_PAM), "pam");
	ck_assert_int_eq(cfg->nwarnings, 0);
	cfg_free(cfg);
}
END_TEST

/* Every key of the table appears in conf/pgcoro.ini as "key =" or ";key =". */
/* cfg_with: a deep copy with one key changed and validated; the original untouched and
 * both freed independently (ASan would see a shared pointer). */
START_TEST(test_cfg_with)
{
	struct config *cfg = load_ok("[pgcoro]\ndefault_pool_size = 5\nmin_pool_size = 2\n"
				     "[databases]\nappdb = host=db1 dbname=app pool_size=7\n"
				     "[users]\nbob = pool_mode=session\n");
	struct config *c2 = cfg_with(cfg, "DEFAULT_POOL_SIZE", "9", err, sizeof(err));
	ck_assert_msg(c2 != NULL, "%s", err);
	ck_assert_int_eq(c2->default_pool_size, 9);
	ck_assert_int_eq(cfg->default_pool_size, 5);
	ck_assert_int_eq(c2->ndbs, 1);
	ck_assert_str_eq(c2->dbs[0].name, "appdb");
	ck_assert_ptr_ne(c2->dbs[0].name, cfg->dbs[0].name);
	ck_assert_str_eq(cfg_db_param(&c2->dbs[0], "host"), "db1");
	ck_assert_int_eq(c2->dbs[0].pool_size, 7);
	ck_assert_int_eq(c2->nusers, 1);
	ck_assert_str_eq(c2->users[0].name, "bob");
	ck_assert_str_eq(c2->server_reset_query, cfg->server_reset_query);
	ck_assert_ptr_ne(c2->server_reset_query, cfg->server_reset_query);
	struct config *c3 = cfg_with(c2, "server_reset_query", "\"RESET ALL\"", err, sizeof(err));
	ck_assert_msg(c3 != NULL, "%s", err);
	ck_assert_str_eq(c3->server_reset_query, "RESET ALL");
	ck_assert_str_eq(c2->server_reset_query, "DISCARD ALL");
	cfg_free(c3);

	ck_assert_ptr_null(cfg_with(cfg, "nosuch", "1", err, sizeof(err)));
	ck_assert_str_eq(err, "unknown config parameter: nosuch");
	ck_assert_ptr_null(cfg_with(cfg, "default_pool_size", "x", err, sizeof(err)));
	ck_assert_str_eq(err, "invalid value \"x\" for default_pool_size: not an integer");
	ck_assert_ptr_null(cfg_with(cfg, "default_pool_size", "1", err, sizeof(err)));
	ck_assert_str_eq(err, "min_pool_size (2) exceeds default_pool_size (1)");
	ck_assert_ptr_null(cfg_with(cfg, "metrics_listen", "9127", err, sizeof(err)));
	ck_assert_str_eq(err, "metrics_listen \"9127\": expected host:port (e.g. 127.0.0.1:9127)");
	cfg_free(c2);
	cfg_free(cfg);
}
END_TEST

/* When each kind of key takes effect: at once (reload and SET), with the files a reload
 * reads (reload and SET, which re-read them), or at the next start. */
START_TEST(test_key_when)
{
	size_t n;
	const struct cfg_key *keys = cfg_keys(&n);
	int live = 0, files = 0, start = 0;
	for (size_t i = 0; i < n; i++) {
		const struct cfg_key *k = &keys[i];
		if (strcmp(k->key, "default_pool_size") == 0 || strcmp(k->key, "metrics_listen") == 0) {
			ck_assert(cfg_key_reloadable(k) && !cfg_key_reads_files(k));
			live++;
		} else if (strcmp(k->key, "auth_file") == 0 || strcmp(k->key, "client_tls_sslmode") == 0) {
			ck_assert(cfg_key_reloadable(k) && cfg_key_reads_files(k));
			files++;
		} else if (strcmp(k->key, "listen_port") == 0 || strcmp(k->key, "syslog") == 0) {
			ck_assert(!cfg_key_reloadable(k) && !cfg_key_reads_files(k));
			start++;
		}
	}
	ck_assert_int_eq(live, 2);
	ck_assert_int_eq(files, 2);
	ck_assert_int_eq(start, 2);
}
END_TEST

START_TEST(test_host_port)
{
	char host[64];
	int port = 0;
	ck_assert(cfg_parse_host_port("127.0.0.1:9127", host, sizeof(host), &port));
	ck_assert_str_eq(host, "127.0.0.1");
	ck_assert_int_eq(port, 9127);
	ck_assert(cfg_parse_host_port("[::1]:80", host, sizeof(host), &port));
	ck_assert_str_eq(host, "::1");
	ck_assert_int_eq(port, 80);
	ck_assert(cfg_parse_host_port("*:1", host, sizeof(host), &port));
	ck_assert_str_eq(host, "0.0.0.0");
	ck_assert(cfg_parse_host_port("localhost:65535", host, sizeof(host), &port));
	const char *bad[] = {"9127", ":9127", "h:", "h:0", "h:65536", "h:12x", "::1:80",
			     "[::1:80", "[]:80", "h: 80"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!cfg_parse_host_port(bad[i], host, sizeof(host), &port), "%s", bad[i]);
	ck_assert(!cfg_parse_host_port("abcdefgh:1", host, 8, &port)); /* host too long */
}
END_TEST

START_TEST(test_documented)
{
	const char *path = SRCDIR "/conf/pgcoro.ini";
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	char *doc = NULL;
	size_t cap = 0;
	FILE *m = open_memstream(&doc, &cap);
	char line[4096];
	while (fgets(line, sizeof(line), f))
		fprintf(m, "\n%s", line); /* "\n" before each line: match at line starts */
	fclose(m);
	fclose(f);

	size_t n;
	const struct cfg_key *keys = cfg_keys(&n);
	ck_assert_int_ge(n, 31);
	for (size_t i = 0; i < n; i++) {
		char a[128], b[128];
		snprintf(a, sizeof(a), "\n%s =", keys[i].key);
		snprintf(b, sizeof(b), "\n;%s =", keys[i].key);
		ck_assert_msg(strstr(doc, a) || strstr(doc, b), "key %s is not documented in %s",
		              keys[i].key, path);
		/* and its default is the one shown */
		char d[256];
		snprintf(d, sizeof(d), "\n;%s = %s\n", keys[i].key,
		         *keys[i].def ? keys[i].def : "\"\"");
		ck_assert_msg(strstr(doc, d), "%s does not show the default of %s as \"%s\"", path,
		              keys[i].key, d + 1);
	}
	free(doc);
}
END_TEST

START_TEST(test_shipped_files_load)
{
	static const char *const files[] = {SRCDIR "/conf/pgcoro.ini", SRCDIR "/conf/minimal.ini"};
	for (size_t i = 0; i < 2; i++) {
		struct config *cfg = cfg_load(files[i], err, sizeof(err));
		ck_assert_msg(cfg != NULL, "%s", err);
		cfg_free(cfg);
	}
	/* the reference file sets nothing: it is all defaults */
	struct config *cfg = cfg_load(files[0], err, sizeof(err));
	check_defaults(cfg);
	cfg_free(cfg);
	cfg = cfg_load(files[1], err, sizeof(err));
	ck_assert_ptr_nonnull(cfg_find_db(cfg, "anything"));
	cfg_free(cfg);
}
END_TEST

/* The commented-out examples of conf/pgcoro.ini are valid when uncommented. */
START_TEST(test_examples_valid)
{
	FILE *f = fopen(SRCDIR "/conf/pgcoro.ini", "r");
	ck_assert_ptr_nonnull(f);
	char *text = NULL;
	size_t cap = 0;
	FILE *m = open_memstream(&text, &cap);
	char line[4096];
	int examples = 0;
	while (fgets(line, sizeof(line), f)) {
		/* ";name = value" with no blank after ';' is an example line */
		if (line[0] == ';' && line[1] != ';' && line[1] != ' ' && line[1] != '\n' &&
		    strchr(line, '=')) {
			fputs(line + 1, m);
			examples++;
		} else {
			fputs(line, m);
		}
	}
	fclose(m);
	fclose(f);
	ck_assert_int_ge(examples, 20);
	struct config *cfg = load_ok(text);
	ck_assert_ptr_nonnull(cfg_find_db(cfg, "reports"));
	ck_assert_int_eq(cfg_find_db(cfg, "reports")->pool_size, 50);
	ck_assert_str_eq(cfg_find_db(cfg, "unlisted")->name, "*");
	ck_assert_str_eq(cfg_db_param(cfg_find_db(cfg, "billing"), "application_name"),
	                 "pgcoro billing");
	ck_assert_int_eq(cfg_find_user(cfg, "web")->pool_mode, POOL_TRANSACTION);
	const struct cfg_db *wh = cfg_find_db(cfg, "warehouse");
	ck_assert_str_ne(wh->name, "*");
	ck_assert_int_eq(wh->min_pool_size, 5);
	ck_assert_int_eq(wh->reserve_pool_size, 5);
	ck_assert_int_eq(wh->max_db_connections, 60);
	ck_assert_int_eq(cfg_find_user(cfg, "web")->max_user_connections, 40);
	ck_assert_int_eq(cfg_find_user(cfg, "batch")->pool_size, 2);
	cfg_free(cfg);
	free(text);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_auth_any_pam);
	tcase_add_test(tc, test_every_type);
	tcase_add_test(tc, test_bools);
	tcase_add_test(tc, test_limits_and_timeouts);
	tcase_add_test(tc, test_durations);
	tcase_add_test(tc, test_full_file);
	tcase_add_test(tc, test_pgcoro_keys_split);
	tcase_add_test(tc, test_user_settings);
	tcase_add_test(tc, test_quoted_values);
	tcase_add_test(tc, test_uri);
	tcase_add_test(tc, test_fallback);
	tcase_add_test(tc, test_bad_files);
	tcase_add_test(tc, test_bad_seconds);
	tcase_add_test(tc, test_bad_sections);
	tcase_add_test(tc, test_long_line_ok);
	tcase_add_test(tc, test_bad_databases);
	tcase_add_test(tc, test_bad_users);
	tcase_add_test(tc, test_cross_key);
	tcase_add_test(tc, test_auth_ldap);
	tcase_add_test(tc, test_min_pool_size);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_dump);
	tcase_add_test(tc, test_cfg_with);
	tcase_add_test(tc, test_key_when);
	tcase_add_test(tc, test_host_port);
	tcase_add_test(tc, test_documented);
	tcase_add_test(tc, test_shipped_files_load);
	tcase_add_test(tc, test_examples_valid);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return unit_run(config_suite()); }
