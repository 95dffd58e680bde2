/* Unit tests of config.c reading PgBouncer's pgbouncer.ini: [pgbouncer] as the main
 * section, %include, later keys and entries winning, PgBouncer's [databases] and [users]
 * keys and syntax, its defaults, and the three ways a PgBouncer key is taken (works,
 * warns once naming what pgcoro does instead, refused as not supported yet). */
#include <check.h>

#include "unit.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char dir[64];
static char err[2048];

static void make_dir(void)
{
	strcpy(dir, "/tmp/test_pgbini_XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* Writes TEXT to DIR/NAME; returns the path (static buffer of 4). */
static const char *put(const char *name, const char *text)
{
	static char paths[4][256];
	static int next;
	char *p = paths[next++ % 4];
	snprintf(p, 256, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return p;
}

static void rm_dir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static struct config *load(const char *text)
{
	err[0] = '\0';
	return cfg_load(put("pgbouncer.ini", text), err, sizeof(err));
}

static struct config *load_ok(const char *text)
{
	struct config *cfg = load(text);
	ck_assert_msg(cfg != NULL, "load failed: %s", err);
	return cfg;
}

/* Loading TEXT fails with "DIR/pgbouncer.ini:LINE: REASON". */
static void expect_error(const char *text, int line, const char *reason)
{
	char want[2048];
	struct config *cfg = load(text);
	snprintf(want, sizeof(want), "%s/pgbouncer.ini:%d: %s", dir, line, reason);
	ck_assert_msg(cfg == NULL, "loaded, expected \"%s\"", want);
	ck_assert_str_eq(err, want);
}

/* How many of CFG's warnings contain S. */
static int warned(const struct config *cfg, const char *s)
{
	int n = 0;
	for (int i = 0; i < cfg->nwarnings; i++)
		n += strstr(cfg->warnings[i], s) != NULL;
	return n;
}

START_TEST(test_main_section)
{
	make_dir();
	struct config *cfg = load_ok("[databases]\n"
	                             "app = host=127.0.0.1 port=5432\n"
	                             "[pgbouncer]\n"
	                             "listen_port = 6999\n"
	                             "pool_mode = transaction\n"
	                             "auth_type = trust\n"
	                             "disable_pqexec = 1\n");
	ck_assert(cfg->pgbouncer_ini);
	ck_assert_int_eq(cfg->listen_port, 6999);
	ck_assert_int_eq(cfg->disable_pqexec, 1); /* taken, not refused as not supported yet */
	ck_assert_int_eq(cfg->pool_mode, POOL_TRANSACTION);
	/* PgBouncer's defaults where pgcoro's differ: no TCP unless listen_addr says so,
	 * hosts balanced round-robin */
	ck_assert_str_eq(cfg->listen_addr, "");
	ck_assert_str_eq(cfg->server_check_query, "<empty>");
	ck_assert_double_eq(cfg->server_login_retry, 15);
	ck_assert_int_eq(cfg->dbs[0].load_balance_hosts, LB_ROUND_ROBIN);
	ck_assert_int_eq(cfg->nwarnings, 0);
	/* conffile shows the file read */
	ck_assert_str_eq(cfg->conffile, cfg->path);
	cfg_free(cfg);

	/* pgcoro's own file keeps pgcoro's defaults */
	cfg = load_ok("[pgcoro]\nlisten_port = 6999\n[databases]\napp = host=h1,h2\n");
	ck_assert(!cfg->pgbouncer_ini);
	ck_assert_str_eq(cfg->listen_addr, "127.0.0.1");
	ck_assert_str_eq(cfg->server_check_query, "select 1");
	ck_assert_double_eq(cfg->server_login_retry, 0.5);
	ck_assert_int_eq(cfg->dbs[0].load_balance_hosts, LB_DISABLE);
	cfg_free(cfg);

	/* an empty [pgbouncer] section is a pgbouncer.ini too (PgBouncer's own minimal
	 * example); md5 without an auth_file is taken, with a warning */
	cfg = load_ok("[databases]\n[pgbouncer]\n");
	ck_assert(cfg->pgbouncer_ini);
	ck_assert_str_eq(cfg->listen_addr, "");
	ck_assert_int_eq(cfg->nwarnings, 1);
	ck_assert_msg(strstr(cfg->warnings[0], "auth_type md5 without auth_file: no user can log "
	                                       "in with a password"),
	              "%s", cfg->warnings[0]);
	cfg_free(cfg);
	rm_dir();
}
END_TEST

/* PgBouncer's later key or entry replaces the earlier one (its tools append keys). */
START_TEST(test_later_wins)
{
	make_dir();
	struct config *cfg = load_ok("[pgbouncer]\n"
	                             "listen_port = 6001\n"
	                             "pidfile = test.pid\n"
	                             "[databases]\n"
	                             "a = host=h1 pool_size=2\n"
	                             "b = host=h2\n"
	                             "a = host=h3\n"
	                             "[users]\n"
	                             "bob = pool_size=4\n"
	                             "bob = pool_mode=session\n"
	                             "[pgbouncer]\n"
	                             "listen_port = 6002\n"
	                             "pidfile = \n");
	ck_assert_int_eq(cfg->listen_port, 6002);
	ck_assert_str_eq(cfg->pidfile, "");
	ck_assert_int_eq(cfg->ndbs, 2);
	const struct cfg_db *a = cfg_find_db(cfg, "a");
	ck_assert_str_eq(cfg_db_param(a, "host"), "h3");
	ck_assert_int_eq(a->pool_size, -1);
	ck_assert_int_eq(a->line, 7);
	ck_assert_int_eq(cfg->nusers, 1);
	ck_assert_int_eq(cfg_find_user(cfg, "bob")->pool_size, -1);
	ck_assert_int_eq(cfg_find_user(cfg, "bob")->pool_mode, POOL_SESSION);
	cfg_free(cfg);

	/* pgcoro's own file names each once, whatever the order */
	expect_error("[databases]\na = host=h1\n[pgcoro]\nlisten_port = 1\n[databases]\na = host=h2\n",
	             6, "duplicate database \"a\" (first defined on line 2)");
	expect_error("[users]\nbob = pool_size=1\nbob = pool_size=2\n", 3,
	             "duplicate user \"bob\" (first defined on line 2)");
	expect_error("[pgbouncer]\nlisten_port = 1\n[pgcoro]\nlisten_port = 2\n", 4,
	             "duplicate key \"listen_port\" in [pgcoro] (first set on line 2)");
	rm_dir();
}
END_TEST

START_TEST(test_include)
{
	make_dir();
	char text[1024];
	const char *users = put("users.ini", "[users]\nbob = pool_size=3\n");
	char inner_text[512];
	snprintf(inner_text, sizeof(inner_text), "app = host=h1\n%%include %s\n", users);
	const char *inner = put("dbs.ini", inner_text);
	snprintf(text, sizeof(text),
	         "[pgbouncer]\nlisten_port = 7000\n[databases]\n  %%include %s  \n"
	         "alice = pool_size=2\n[databases]\nafter = host=h2\n[pgbouncer]\n"
	         "max_client_conn = 7\n",
	         inner);
	struct config *cfg = load_ok(text);
	ck_assert_int_eq(cfg->ndbs, 2);
	const struct cfg_db *app = cfg_find_db(cfg, "app");
	ck_assert_ptr_nonnull(app);
	ck_assert_str_eq(app->file, inner);
	ck_assert_int_eq(app->line, 1);
	const struct cfg_db *after = cfg_find_db(cfg, "after");
	ck_assert_ptr_null(after->file);
	ck_assert_int_eq(after->line, 7);
	ck_assert_int_eq(cfg_find_user(cfg, "bob")->pool_size, 3);
	/* the included file's [users] section is in force after it, as in PgBouncer */
	ck_assert_int_eq(cfg_find_user(cfg, "alice")->pool_size, 2);
	ck_assert_int_eq(cfg->max_client_conn, 7);
	cfg_free(cfg);

	/* errors name the included file and its line */
	const char *bad = put("bad.ini", "[pgbouncer]\n\nno_such_key = 1\n");
	snprintf(text, sizeof(text), "[pgbouncer]\n%%include %s\n", bad);
	ck_assert_ptr_null(load(text));
	char want[512];
	snprintf(want, sizeof(want), "%s:3: unknown key \"no_such_key\" in [pgbouncer]", bad);
	ck_assert_str_eq(err, want);

	snprintf(text, sizeof(text), "[pgbouncer]\n\n%%include %s/absent.ini\n", dir);
	snprintf(want, sizeof(want), "%s/absent.ini", dir);
	ck_assert_ptr_null(load(text));
	char want2[1200];
	snprintf(want2, sizeof(want2),
	         "%s/pgbouncer.ini:3: %%include: cannot open \"%s\": No such file or directory", dir,
	         want);
	ck_assert_str_eq(err, want2);
	expect_error("[pgbouncer]\n%include \n", 2, "%include without a file name");
	expect_error("[pgbouncer]\n%include /dev/null\n", 2,
	             "%include: \"/dev/null\" is not a regular file");

	/* at most 10 levels: a file that includes itself stops there */
	const char *loop_path = put("loop.ini", "");
	snprintf(text, sizeof(text), "[pgbouncer]\n%%include %s\n", loop_path);
	put("loop.ini", text);
	ck_assert_ptr_null(cfg_load(loop_path, err, sizeof(err)));
	ck_assert_msg(strstr(err, "%include nested too deep (at most 10 levels)"), "%s", err);
	rm_dir();
}
END_TEST

START_TEST(test_databases_pgbouncer_form)
{
	make_dir();
	struct config *cfg = load_ok(
	    "[databases]\n"
	    "p0 = port=5433 host=127.0.0.1 dbname=p0 user=bouncer pool_size=2 reserve_pool=3\n"
	    "p1 = host=h1 min_pool_size=1 reserve_pool_size=4 max_db_connections=5 "
	    "max_db_client_connections=6 server_lifetime=7 query_wait_timeout=8 pool_mode=session "
	    "connect_query='set enable_seqscan=off; select ''x''' client_encoding=UTF8 "
	    "datestyle='SQL, DMY' timezone=Asia/Tokyo application_name=app1 "
	    "load_balance_hosts=disable password=a\\b\n"
	    "p2 = host=h2 options='-c work_mem=64kB' timezone=UTC query_wait_timeout=-1\n"
	    "'my db' = host=h3\n"
	    "\"it\"\"s\" = host=h4\n"
	    "[pgbouncer]\n");
	const struct cfg_db *db = cfg_find_db(cfg, "p0");
	ck_assert_int_eq(db->pool_size, 2);
	ck_assert_int_eq(db->reserve_pool_size, 3);
	ck_assert_str_eq(cfg_db_param(db, "user"), "bouncer");
	ck_assert_str_eq(cfg_db_param(db, "port"), "5433");
	db = cfg_find_db(cfg, "p1");
	ck_assert_int_eq(db->min_pool_size, 1);
	ck_assert_int_eq(db->reserve_pool_size, 4);
	ck_assert_int_eq(db->max_db_connections, 5);
	ck_assert_int_eq(db->max_db_client_connections, 6);
	ck_assert_double_eq(db->server_lifetime, 7);
	ck_assert_double_eq(db->query_wait_timeout, 8);
	ck_assert_int_eq(db->pool_mode, POOL_SESSION);
	ck_assert_int_eq(db->load_balance_hosts, LB_DISABLE);
	/* PgBouncer's quoting: '' is a quote, a backslash is itself */
	ck_assert_str_eq(db->connect_query, "set enable_seqscan=off; select 'x'");
	ck_assert_str_eq(cfg_db_param(db, "password"), "a\\b");
	ck_assert_str_eq(cfg_db_param(db, "client_encoding"), "UTF8");
	ck_assert_str_eq(cfg_db_param(db, "application_name"), "app1");
	/* datestyle and timezone go to the server as options */
	ck_assert_str_eq(cfg_db_param(db, "options"), "-c datestyle=SQL,\\ DMY -c timezone=Asia/Tokyo");
	ck_assert_ptr_null(cfg_db_param(db, "datestyle"));
	db = cfg_find_db(cfg, "p2");
	ck_assert_str_eq(cfg_db_param(db, "options"), "-c work_mem=64kB -c timezone=UTC");
	ck_assert_double_eq(db->query_wait_timeout, -1);
	ck_assert_int_eq(db->server_lifetime, -1);
	ck_assert_ptr_null(db->connect_query);
	ck_assert_int_eq(db->load_balance_hosts, LB_ROUND_ROBIN);
	ck_assert_str_eq(cfg_db_param(cfg_find_db(cfg, "my db"), "host"), "h3");
	ck_assert_str_eq(cfg_db_param(cfg_find_db(cfg, "it\"s"), "host"), "h4");
	cfg_free(cfg);

	/* PgBouncer refuses an empty value and an unknown key */
	expect_error("[pgbouncer]\n[databases]\na = host=h1 dbname=\n", 3,
	             "database \"a\": empty value for \"dbname\"");
	expect_error("[pgbouncer]\n[databases]\na = host=h1 hostx=1\n", 3,
	             "database \"a\": invalid conninfo: invalid connection option \"hostx\"");
	expect_error("[databases]\na = host=h load_balance_hosts=random\n", 2,
	             "database \"a\": invalid load_balance_hosts \"random\": expected round-robin "
	             "or disable");
	expect_error("[databases]\npgbouncer = host=h\n", 2,
	             "database name \"pgbouncer\" is reserved for the admin console");
	expect_error("[databases]\npgcoro = host=h\n", 2,
	             "database name \"pgcoro\" is reserved for the admin console");
	/* pgcoro's libpq syntax outside a pgbouncer.ini: a backslash escapes */
	cfg = load_ok("[databases]\na = password=a\\\\b datestyle=ISO\n");
	ck_assert_str_eq(cfg_db_param(&cfg->dbs[0], "password"), "a\\b");
	ck_assert_str_eq(cfg_db_param(&cfg->dbs[0], "options"), "-c datestyle=ISO");
	cfg_free(cfg);
	rm_dir();
}
END_TEST

START_TEST(test_users_pgbouncer_keys)
{
	make_dir();
	struct config *cfg = load_ok("[users]\n"
	                             "u1 = pool_mode=transaction pool_size=3 reserve_pool_size=2 "
	                             "max_user_connections=4 max_user_client_connections=5 "
	                             "query_timeout=6 query_wait_timeout=7 "
	                             "idle_transaction_timeout=8 client_idle_timeout=9 "
	                             "transaction_timeout=10\n"
	                             "u2 = query_wait_timeout=-1\n"
	                             "[pgbouncer]\n");
	const struct cfg_user *u = cfg_find_user(cfg, "u1");
	ck_assert_int_eq(u->pool_mode, POOL_TRANSACTION);
	ck_assert_int_eq(u->pool_size, 3);
	ck_assert_int_eq(u->reserve_pool_size, 2);
	ck_assert_int_eq(u->max_user_connections, 4);
	ck_assert_int_eq(u->max_user_client_connections, 5);
	ck_assert_double_eq(u->query_timeout, 6);
	ck_assert_double_eq(u->query_wait_timeout, 7);
	ck_assert_double_eq(u->idle_transaction_timeout, 8);
	ck_assert_double_eq(u->client_idle_timeout, 9);
	ck_assert_double_eq(u->transaction_timeout, 10);
	u = cfg_find_user(cfg, "u2");
	ck_assert_double_eq(u->query_wait_timeout, -1);
	ck_assert_double_eq(u->query_timeout, -1);
	ck_assert_double_eq(u->transaction_timeout, -1);
	ck_assert_int_eq(u->reserve_pool_size, -1);
	cfg_free(cfg);
	expect_error("[pgbouncer]\n[users]\nu = transaction_timeout=x\n", 3,
	             "user \"u\": invalid transaction_timeout \"x\": not a duration (e.g. 15, "
	             "1.5, 500ms, 15s, 2min, 1h)");
	rm_dir();
}
END_TEST

/* Each of PgBouncer's keys pgcoro does differently: accepted, one warning (naming what
 * pgcoro does instead) only when set to other than pgcoro's behaviour. */
START_TEST(test_warned_keys)
{
	make_dir();
	struct config *cfg = load_ok("[pgbouncer]\n"
	                             "auth_type = trust\n"
	                             "pkt_buf = 8192\n"
	                             "sbuf_loopcnt = 5\n"
	                             "dns_max_ttl = 30\n"
	                             "cancel_wait_timeout = 10\n"
	                             "ignore_startup_parameters = extra_float_digits\n"
	                             "server_login_retry = 1\n"
	                             "auth_user = pgbouncer_auth\n"
	                             "listen_port = 6432\n"
	                             "pkt_buf = 16384\n"
	                             "[databases]\n"
	                             "a = host=h auth_user=x\n");
	ck_assert_int_eq(warned(cfg, "pkt_buf: no effect"), 1);
	ck_assert_int_eq(cfg->pkt_buf, 16384);
	ck_assert_int_eq(warned(cfg, "sbuf_loopcnt"), 0);          /* the default */
	ck_assert_int_eq(warned(cfg, "cancel_wait_timeout"), 0);   /* the default */
	ck_assert_int_eq(warned(cfg, "dns_max_ttl: no effect: pgcoro keeps no DNS cache"), 1);
	ck_assert_int_eq(warned(cfg, "ignore_startup_parameters"), 0); /* done as PgBouncer's */
	ck_assert_int_eq(warned(cfg, "server_login_retry: differs from PgBouncer's"), 1);
	ck_assert_int_eq(warned(cfg, "auth_user"), 0); /* supported (authquery.h) */
	ck_assert_int_eq(warned(cfg, "listen_port"), 0);
	ck_assert_int_eq(cfg->nwarnings, 3);
	/* each names where it was set: the last line of a key set twice */
	char want[256];
	snprintf(want, sizeof(want), "%s/pgbouncer.ini:11: pkt_buf: ", dir);
	ck_assert_int_eq(warned(cfg, want), 1);

	/* SET of such a key warns too (the console logs it) */
	struct config *c2 = cfg_with(cfg, "dns_nxdomain_ttl", "1", err, sizeof(err));
	ck_assert_msg(c2 != NULL, "%s", err);
	ck_assert_int_eq(warned(c2, "SET: dns_nxdomain_ttl: no effect"), 1);
	cfg_free(c2);
	cfg_free(cfg);

	/* server_login_retry in pgcoro's own section: pgcoro's meaning, no warning */
	cfg = load_ok("[pgcoro]\nserver_login_retry = 1\n");
	ck_assert_int_eq(cfg->nwarnings, 0);
	cfg_free(cfg);
	rm_dir();
}
END_TEST

/* PgBouncer's keys for what pgcoro lacks: their "off" value is taken, any other refused. */
START_TEST(test_not_yet)
{
	make_dir();
	struct config *cfg =
	    load_ok("[pgbouncer]\nauth_type = trust\npeer_id = 0\nso_reuseport = 0\n"
	            "login_notify_message = \"\"\nserver_tls_ciphers = secure\n"
	            "server_tls13_ciphers =\nauth_ldap_options =\n");
	ck_assert_int_eq(cfg->nwarnings, 0);
	ck_assert_str_eq(cfg->server_tls_ciphers, "secure");
	cfg_free(cfg);
	/* PgBouncer's auth_type values are all there (test_config's test_auth_any_pam and
	 * test_auth_ldap): none is refused as not supported yet */
	cfg = load_ok("[pgbouncer]\nauth_type = pam\n");
	cfg_free(cfg);
	cfg = load_ok("[pgbouncer]\nauth_type = any\n");
	cfg_free(cfg);
	cfg = load_ok("[pgbouncer]\nauth_type = ldap\nauth_ldap_options = ldapserver=h "
	              "ldapprefix=uid=\n");
	cfg_free(cfg);
	ck_assert_ptr_null(load("[pgbouncer]\nunix_socket_dir = @pgb\n"));
	ck_assert_msg(strstr(err, "unix_socket_dir = @pgb is not supported yet: a unix socket in "
	                          "the abstract namespace"),
	              "%s", err);
	/* keys PgBouncer itself refuses stay refused */
	expect_error("[pgbouncer]\nservice_name = x\n", 2,
	             "unknown key \"service_name\" in [pgbouncer]");
	expect_error("[pgbouncer]\nlisten_addr = *\nfoo = 1\n", 3,
	             "unknown key \"foo\" in [pgbouncer]");
	/* SET refuses the same way */
	cfg = load_ok("[pgbouncer]\n");
	ck_assert_ptr_null(cfg_with(cfg, "resolv_conf", "/etc/resolv.conf", err, sizeof(err)));
	ck_assert_str_eq(err, "resolv_conf = /etc/resolv.conf is not supported yet: a resolv.conf "
	                      "of its own is not there yet (libpq uses the system's resolver); only "
	                      "an empty value is accepted");
	cfg_free(cfg);
	rm_dir();
}
END_TEST

/* server_tls_ciphers and server_tls13_ciphers: whatever OpenSSL takes (PgBouncer's names
 * for its own list kept as written); what it does not is refused with its reason, in the
 * file and by SET. */
START_TEST(test_server_ciphers)
{
	make_dir();
	struct config *cfg = load_ok("[pgbouncer]\nauth_type = trust\n"
	                             "server_tls_ciphers = HIGH:!aNULL\n"
	                             "server_tls13_ciphers = TLS_AES_128_GCM_SHA256\n");
	ck_assert_int_eq(cfg->nwarnings, 0);
	ck_assert_str_eq(cfg->server_tls_ciphers, "HIGH:!aNULL");
	ck_assert_str_eq(cfg->server_tls13_ciphers, "TLS_AES_128_GCM_SHA256");
	cfg_free(cfg);
	cfg = load_ok("[pgbouncer]\nauth_type = trust\nserver_tls_ciphers = \"fast\"\n");
	ck_assert_str_eq(cfg->server_tls_ciphers, "fast");
	cfg_free(cfg);

	ck_assert_ptr_null(load("[pgbouncer]\nauth_type = trust\nserver_tls_ciphers = NOSUCH\n"));
	char want[1024];
	snprintf(want, sizeof(want), "%s/pgbouncer.ini:3: invalid value \"NOSUCH\" for "
	         "server_tls_ciphers: ", dir);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0 && strstr(err, "no cipher match"), "%s",
	              err);
	ck_assert_ptr_null(load("[pgbouncer]\nserver_tls13_ciphers = TLS_NOSUCH\n"));
	snprintf(want, sizeof(want), "%s/pgbouncer.ini:2: invalid value \"TLS_NOSUCH\" for "
	         "server_tls13_ciphers: failed to set the TLSv1.3 cipher suites: ", dir);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);

	cfg = load_ok("[pgbouncer]\n");
	struct config *set = cfg_with(cfg, "server_tls13_ciphers", "TLS_CHACHA20_POLY1305_SHA256",
	                              err, sizeof(err));
	ck_assert_msg(set != NULL, "%s", err);
	ck_assert_str_eq(set->server_tls13_ciphers, "TLS_CHACHA20_POLY1305_SHA256");
	cfg_free(set);
	ck_assert_ptr_null(cfg_with(cfg, "server_tls_ciphers", "NOSUCH", err, sizeof(err)));
	const char *bad = "invalid value \"NOSUCH\" for server_tls_ciphers: ";
	ck_assert_msg(strncmp(err, bad, strlen(bad)) == 0 && strstr(err, "no cipher match"), "%s",
	              err);
	cfg_free(cfg);
	rm_dir();
}
END_TEST

/* PgBouncer's peering: so_reuseport, peer_id (0..16383, live) and [peers] entries, each
 * "id = host=... [port=...] [pool_size=...]", kept in id order; bad entries refused. */
START_TEST(test_peers)
{
	make_dir();
	struct config *cfg = load_ok("[pgbouncer]\nauth_type = trust\nso_reuseport = 1\n"
	                             "peer_id = 16383\n[peers]\n"
	                             "7 = host=/tmp/p7 port=6433 pool_size=3\n"
	                             "2 = host=db2.example.com\n"
	                             "16383 = host=@abstract port=7000\n"
	                             "2 = host=10.0.0.2\n"); /* a later line replaces */
	ck_assert_int_eq(cfg->so_reuseport, 1);
	ck_assert_int_eq(cfg->peer_id, 16383);
	ck_assert_int_eq(cfg->nwarnings, 0);
	ck_assert_int_eq(cfg->npeers, 3);
	ck_assert_int_eq(cfg->peers[0].id, 2);
	ck_assert_str_eq(cfg->peers[0].host, "10.0.0.2");
	ck_assert_int_eq(cfg->peers[0].port, 6432);
	ck_assert_int_eq(cfg->peers[0].pool_size, -1);
	ck_assert_int_eq(cfg->peers[1].id, 7);
	ck_assert_str_eq(cfg->peers[1].host, "/tmp/p7");
	ck_assert_int_eq(cfg->peers[1].port, 6433);
	ck_assert_int_eq(cfg->peers[1].pool_size, 3);
	ck_assert_int_eq(cfg->peers[2].id, 16383);
	ck_assert_ptr_eq(cfg_find_peer(cfg, 7), &cfg->peers[1]);
	ck_assert_ptr_null(cfg_find_peer(cfg, 3));
	/* SET peer_id: a copy that keeps [peers] */
	struct config *c2 = cfg_with(cfg, "peer_id", "2", err, sizeof(err));
	ck_assert_msg(c2 != NULL, "%s", err);
	ck_assert_int_eq(c2->peer_id, 2);
	ck_assert_int_eq(c2->npeers, 3);
	ck_assert_str_eq(c2->peers[1].host, "/tmp/p7");
	ck_assert_ptr_ne(c2->peers[1].host, cfg->peers[1].host);
	cfg_free(c2);
	ck_assert_ptr_null(cfg_with(cfg, "peer_id", "16384", err, sizeof(err)));
	cfg_free(cfg);
	/* an empty [peers] section is fine */
	cfg = load_ok("[pgbouncer]\n[peers]\n");
	ck_assert_int_eq(cfg->npeers, 0);
	cfg_free(cfg);

	expect_error("[pgbouncer]\npeer_id = 16384\n", 2,
	             "invalid value \"16384\" for peer_id: out of range (0..16383)");
	expect_error("[pgbouncer]\npeer_id = -1\n", 2,
	             "invalid value \"-1\" for peer_id: out of range (0..16383)");
	expect_error("[pgbouncer]\n[peers]\n0 = host=/tmp\n", 3,
	             "peer \"0\": the id of a peer must be a number from 1 to 16383");
	expect_error("[pgbouncer]\n[peers]\n16384 = host=/tmp\n", 3,
	             "peer \"16384\": the id of a peer must be a number from 1 to 16383");
	expect_error("[pgbouncer]\n[peers]\nfirst = host=/tmp\n", 3,
	             "peer \"first\": the id of a peer must be a number from 1 to 16383");
	expect_error("[pgbouncer]\n[peers]\n1 = host=/tmp\n2 = port=6000\n", 4,
	             "peer 2: no host (host=<name, address or unix socket directory>)");
	expect_error("[pgbouncer]\n[peers]\n3 = host=/tmp dbname=x\n", 3,
	             "peer 3: unknown setting \"dbname\" (known: host, port, pool_size)");
	expect_error("[pgbouncer]\n[peers]\n3 = host=/tmp port=0\n", 3,
	             "invalid port \"0\": out of range (1..65535)");
	expect_error("[pgbouncer]\n[peers]\n3 = host=/tmp pool_size=x\n", 3,
	             "invalid pool_size \"x\": not an integer");
	expect_error("[pgbouncer]\n[peers]\n3 = host\n", 3,
	             "missing \"=\" after \"host\" in connection info string");
	expect_error("[pgbouncer]\n[peers]\n3 = host=/tmp\n03 = host=/var/run\n", 4,
	             "peer 3 is given twice");
	char text[512];
	snprintf(text, sizeof(text), "[pgbouncer]\n[peers]\n3 = host=/%0100d\n", 0);
	expect_error(text, 3, "peer 3: host is too long");
	/* pgcoro's own files name each peer once */
	ck_assert_ptr_null(load("[pgcoro]\n[peers]\n1 = host=/a\n1 = host=/b\n"));
	ck_assert_msg(strstr(err, ":4: duplicate peer \"1\" (first defined on line 3)"), "%s", err);
	rm_dir();
}
END_TEST

/* Every key PgBouncer 1.25/1.26 documents loads in a [pgbouncer] section with its
 * PgBouncer default (or the value pgcoro honours where it lacks the feature). */
START_TEST(test_every_pgbouncer_key)
{
	static const char *const lines[] = {
	    "admin_users = admin",
	    "application_name_add_host = 0",
	    "auth_dbname = authdb",
	    "auth_file = /nonexistent/userlist.txt",
	    "auth_hba_file = /nonexistent/hba.conf",
	    "auth_ident_file = /nonexistent/ident.conf",
	    "auth_ldap_options = ",
	    "auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1",
	    "auth_type = md5",
	    "auth_user = authuser",
	    "autodb_idle_timeout = 3600",
	    "cancel_wait_timeout = 10",
	    "client_idle_timeout = 0",
	    "client_login_timeout = 60",
	    "client_tls13_ciphers = TLS_AES_256_GCM_SHA384",
	    "client_tls_ca_file = ",
	    "client_tls_cert_file = ",
	    "client_tls_ciphers = fast",
	    "client_tls_dheparams = auto",
	    "client_tls_ecdhcurve = auto",
	    "client_tls_key_file = ",
	    "client_tls_protocols = secure",
	    "client_tls_sslmode = disable",
	    "conffile = /etc/pgbouncer/pgbouncer.ini",
	    "default_pool_size = 20",
	    "disable_pqexec = 0",
	    "dns_max_ttl = 15",
	    "dns_nxdomain_ttl = 15",
	    "dns_zone_check_period = 0",
	    "idle_transaction_timeout = 0",
	    "ignore_startup_parameters = extra_float_digits",
	    "job_name = pgbouncer",
	    "listen_addr = localhost",
	    "listen_backlog = 128",
	    "listen_port = 6432",
	    "log_connections = 1",
	    "log_disconnections = 1",
	    "log_pooler_errors = 1",
	    "log_stats = 1",
	    "logfile = /var/log/postgresql/pgbouncer.log",
	    "login_notify_message = ",
	    "max_client_conn = 100",
	    "max_db_client_connections = 0",
	    "max_db_connections = 0",
	    "max_packet_size = 2147483647",
	    "max_prepared_statements = 200",
	    "max_user_client_connections = 0",
	    "max_user_connections = 0",
	    "min_pool_size = 0",
	    "peer_id = 0",
	    "pidfile = /var/run/postgresql/pgbouncer.pid",
	    "pkt_buf = 4096",
	    "pool_idle_timeout = 0",
	    "pool_mode = session",
	    "query_timeout = 0",
	    "query_wait_notify = 5",
	    "query_wait_timeout = 120",
	    "reserve_pool_size = 0",
	    "reserve_pool_timeout = 5",
	    "resolv_conf = ",
	    "sbuf_loopcnt = 5",
	    "scram_iterations = 4096",
	    "server_check_delay = 30",
	    "server_check_query = <empty>",
	    "server_connect_timeout = 15",
	    "server_fast_close = 0",
	    "server_idle_timeout = 600",
	    "server_lifetime = 3600",
	    "server_login_retry = 15",
	    "server_reset_query = DISCARD ALL",
	    "server_reset_query_always = 0",
	    "server_round_robin = 0",
	    "server_tls13_ciphers = ",
	    "server_tls_ca_file = ",
	    "server_tls_cert_file = ",
	    "server_tls_ciphers = default",
	    "server_tls_key_file = ",
	    "server_tls_protocols = secure",
	    "server_tls_sslmode = prefer",
	    "so_reuseport = 0",
	    "stats_period = 60",
	    "stats_users = stats",
	    "suspend_timeout = 10",
	    "syslog = 0",
	    "syslog_facility = daemon",
	    "syslog_ident = pgbouncer",
	    "tcp_defer_accept = 1",
	    "tcp_keepalive = 1",
	    "tcp_keepcnt = 0",
	    "tcp_keepidle = 0",
	    "tcp_keepintvl = 0",
	    "tcp_socket_buffer = 0",
	    "tcp_user_timeout = 0",
	    "track_extra_parameters = IntervalStyle",
	    "transaction_timeout = 0",
	    "unix_socket_dir = /var/run/postgresql",
	    "unix_socket_group = ",
	    "unix_socket_mode = 0777",
	    "user = postgres",
	    "verbose = 0",
	};
	size_t n = sizeof(lines) / sizeof(lines[0]);
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	fputs("[databases]\n* = host=127.0.0.1\n[pgbouncer]\n", f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s\n", lines[i]);
	fclose(f);
	make_dir();
	struct config *cfg = load_ok(text);
	/* the keys set to a value pgcoro does not act on, each warned once */
	static const char *const warn[] = {"server_login_retry"};
	for (size_t i = 0; i < sizeof(warn) / sizeof(warn[0]); i++) {
		char pat[64];
		snprintf(pat, sizeof(pat), ": %s: ", warn[i]);
		ck_assert_msg(warned(cfg, pat) == 1, "%s warned %d times", warn[i], warned(cfg, pat));
	}
	ck_assert_int_eq(cfg->nwarnings, 1); /* auth_ident_file, auth_user... are read */
	ck_assert_int_eq(cfg->max_packet_size, 2147483647);
	ck_assert_int_eq(cfg->listen_backlog, 128);
	ck_assert_int_eq(cfg->tcp_defer_accept, 1);
	ck_assert_str_eq(cfg->server_check_query, "<empty>");
	/* and every key of that list is in the table, where SHOW CONFIG lists it */
	size_t nkeys;
	const struct cfg_key *keys = cfg_keys(&nkeys);
	for (size_t i = 0; i < n; i++) {
		size_t klen = strcspn(lines[i], " ");
		bool found = false;
		for (size_t k = 0; k < nkeys && !found; k++)
			found = strlen(keys[k].key) == klen && strncmp(keys[k].key, lines[i], klen) == 0;
		ck_assert_msg(found, "%.*s is not in the table", (int)klen, lines[i]);
	}
	cfg_free(cfg);
	free(text);
	rm_dir();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pgbouncer_ini");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_main_section);
	tcase_add_test(tc, test_later_wins);
	tcase_add_test(tc, test_include);
	tcase_add_test(tc, test_databases_pgbouncer_form);
	tcase_add_test(tc, test_users_pgbouncer_keys);
	tcase_add_test(tc, test_warned_keys);
	tcase_add_test(tc, test_not_yet);
	tcase_add_test(tc, test_server_ciphers);
	tcase_add_test(tc, test_peers);
	tcase_add_test(tc, test_every_pgbouncer_key);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
