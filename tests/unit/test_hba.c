/* Unit tests for hba.c: pg_hba.conf syntax (comments, quoting, lists with blanks around
 * the commas, continuation, @file), every connection type, address form and method, rule
 * order, role groups, ident maps (map=, auth_ident_file), PgBouncer's evaluation cases,
 * and the "file:line: reason" errors. */
#include <check.h>

#include "unit.h"
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hba.h"
#include "ldapauth.h"

static struct hba *parse_ok(const char *text)
{
	char err[512] = "";
	struct hba *h = hba_parse(text, "/tmp/hba.conf", NULL, NULL, err, sizeof(err));
	ck_assert_msg(h != NULL, "parse failed: %s", err);
	return h;
}

/* The error for TEXT, which must not parse. */
static const char *parse_err(const char *text)
{
	static char err[512];
	err[0] = 0;
	struct hba *h = hba_parse(text, "/tmp/hba.conf", NULL, NULL, err, sizeof(err));
	ck_assert_msg(h == NULL, "parsed: %s", text);
	return err;
}

/* The method for a TCP connection from ADDR (v4 or v6 text). */
static enum hba_method tcp(const struct hba *h, const char *addr, bool tls, const char *db,
			   const char *user, int *line)
{
	uint8_t a[16];
	int fam = strchr(addr, ':') ? AF_INET6 : AF_INET;
	ck_assert_int_eq(inet_pton(fam, addr, a), 1);
	struct hba_conn c = {false, tls, fam, a, db, user, false};
	return hba_match(h, &c, line, NULL, NULL);
}

static enum hba_method local(const struct hba *h, const char *db, const char *user, int *line)
{
	struct hba_conn c = {true, false, 0, NULL, db, user, false};
	return hba_match(h, &c, line, NULL, NULL);
}

START_TEST(test_methods_each)
{
	static const struct {
		const char *word;
		enum hba_method m;
	} methods[] = {{"trust", HBA_TRUST},     {"reject", HBA_REJECT}, {"password", HBA_PASSWORD},
		       {"md5", HBA_MD5},         {"scram-sha-256", HBA_SCRAM}};
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "host all all 0.0.0.0/0 %s\n", methods[i].word);
		struct hba *h = parse_ok(text);
		int line;
		ck_assert_int_eq(tcp(h, "10.1.2.3", false, "db", "u", &line), methods[i].m);
		ck_assert_int_eq(line, 1);
		ck_assert_str_eq(hba_method_name(methods[i].m), methods[i].word);
		hba_free(h);
	}
	struct hba *h = parse_ok("hostssl all all all cert\nlocal all all peer\n");
	int line;
	ck_assert_int_eq(tcp(h, "10.1.2.3", true, "db", "u", &line), HBA_CERT);
	ck_assert_int_eq(local(h, "db", "u", &line), HBA_PEER);
	ck_assert_int_eq(line, 2);
	hba_free(h);
}
END_TEST

START_TEST(test_connection_types)
{
	struct hba *h = parse_ok("local     all all trust\n"
				 "hostssl   all all 127.0.0.1/32 md5\n"
				 "hostnossl all all 127.0.0.1/32 password\n"
				 "host      all all ::1/128 scram-sha-256\n");
	int line;
	ck_assert_int_eq(local(h, "d", "u", &line), HBA_TRUST);
	ck_assert_int_eq(tcp(h, "127.0.0.1", true, "d", "u", &line), HBA_MD5);
	ck_assert_int_eq(line, 2);
	ck_assert_int_eq(tcp(h, "127.0.0.1", false, "d", "u", &line), HBA_PASSWORD);
	ck_assert_int_eq(line, 3);
	/* host matches both, TLS or not */
	ck_assert_int_eq(tcp(h, "::1", true, "d", "u", &line), HBA_SCRAM);
	ck_assert_int_eq(tcp(h, "::1", false, "d", "u", &line), HBA_SCRAM);
	ck_assert_int_eq(tcp(h, "10.0.0.1", false, "d", "u", &line), HBA_NO_MATCH);
	ck_assert_int_eq(line, 0);
	hba_free(h);
	/* no local rule: unix sockets match nothing */
	h = parse_ok("host all all all trust\n");
	ck_assert_int_eq(local(h, "d", "u", &line), HBA_NO_MATCH);
	hba_free(h);
}
END_TEST

START_TEST(test_addresses)
{
	struct hba *h = parse_ok("host all all 10.1.0.0/16 trust\n"
				 "host all all 192.168.1.0 255.255.255.0 md5\n"
				 "host all all 2001:db8::/32 password\n"
				 "host all all 172.16.0.1/32 scram-sha-256\n"
				 "host all all 0.0.0.0/0 reject\n");
	int line;
	ck_assert_int_eq(tcp(h, "10.1.255.7", false, "d", "u", &line), HBA_TRUST);
	ck_assert_int_eq(tcp(h, "10.2.0.1", false, "d", "u", &line), HBA_REJECT);
	ck_assert_int_eq(tcp(h, "192.168.1.200", false, "d", "u", &line), HBA_MD5);
	ck_assert_int_eq(tcp(h, "192.168.2.1", false, "d", "u", &line), HBA_REJECT);
	ck_assert_int_eq(tcp(h, "2001:db8:ffff::1", false, "d", "u", &line), HBA_PASSWORD);
	ck_assert_int_eq(tcp(h, "2001:db9::1", false, "d", "u", &line), HBA_NO_MATCH);
	ck_assert_int_eq(tcp(h, "172.16.0.1", false, "d", "u", &line), HBA_SCRAM);
	ck_assert_int_eq(tcp(h, "172.16.0.2", false, "d", "u", &line), HBA_REJECT);
	hba_free(h);
	/* an odd prefix length */
	h = parse_ok("host all all 10.0.0.0/9 trust\n");
	ck_assert_int_eq(tcp(h, "10.127.0.1", false, "d", "u", &line), HBA_TRUST);
	ck_assert_int_eq(tcp(h, "10.128.0.1", false, "d", "u", &line), HBA_NO_MATCH);
	hba_free(h);
	/* an IPv4 client seen through a dual-stack (IPv6) listener matches IPv4 rules */
	h = parse_ok("host all all 10.0.0.0/8 trust\n");
	ck_assert_int_eq(tcp(h, "::ffff:10.1.2.3", false, "d", "u", &line), HBA_TRUST);
	ck_assert_int_eq(tcp(h, "::ffff:11.1.2.3", false, "d", "u", &line), HBA_NO_MATCH);
	ck_assert_int_eq(tcp(h, "::1", false, "d", "u", &line), HBA_NO_MATCH);
	hba_free(h);
	/* 0/0 of one family does not match the other */
	h = parse_ok("host all all ::/0 trust\n");
	ck_assert_int_eq(tcp(h, "10.0.0.1", false, "d", "u", &line), HBA_NO_MATCH);
	ck_assert_int_eq(tcp(h, "fe80::1", false, "d", "u", &line), HBA_TRUST);
	hba_free(h);
}
END_TEST

START_TEST(test_databases_and_users)
{
	struct hba *h = parse_ok("host sameuser all all trust\n"
				 "host db1,db2 alice,bob all md5\n"
				 "host \"all\" all all password\n"
				 "host all \"Carol Q\" all scram-sha-256\n"
				 "host replication all all trust\n"
				 "host all all all reject\n");
	int line;
	ck_assert_int_eq(tcp(h, "1.2.3.4", false, "alice", "alice", &line), HBA_TRUST);
	ck_assert_int_eq(tcp(h, "1.2.3.4", false, "db2", "bob", &line), HBA_MD5);
	ck_assert_int_eq(tcp(h, "1.2.3.4", false, "db3", "bob", &line), HBA_REJECT);
	ck_assert_int_eq(tcp(h, "1.2.3.4", false, "db1", "eve", &line), HBA_REJECT);
	/* a quoted keyword is a name */
	ck_assert_int_eq(tcp(h, "1.2.3.4", false, "all", "eve", &line), HBA_PASSWORD);
	ck_assert_int_eq(line, 3);
	ck_assert_int_eq(tcp(h, "1.2.3.4", false, "x", "Carol Q", &line), HBA_SCRAM);
	/* "replication" is no database name: a normal connection to one named so skips it */
	ck_assert_int_eq(tcp(h, "1.2.3.4", false, "replication", "eve", &line), HBA_REJECT);
	hba_free(h);
}
END_TEST

/* As PostgreSQL's check_db: a physical replication connection matches only rules naming
 * "replication" (whatever its database); a logical one (replication=database) matches as
 * a normal connection, never those rules. */
START_TEST(test_replication)
{
	struct hba *h = parse_ok("host all all 10.0.0.0/8 trust\n"
				 "host db1,replication repl all md5\n"
				 "local replication all peer\n"
				 "host all all all reject\n");
	uint8_t a[4] = {10, 0, 0, 1}, b[4] = {192, 168, 0, 1};
	int line;
	struct hba_conn phys = {false, false, AF_INET, a, "db1", "repl", true};
	ck_assert_int_eq(hba_match(h, &phys, &line, NULL, NULL), HBA_MD5); /* not "all" of line 1 */
	ck_assert_int_eq(line, 2);
	phys.user = "app";
	ck_assert_int_eq(hba_match(h, &phys, &line, NULL, NULL), HBA_NO_MATCH); /* reject names no replication */
	phys.addr = b;
	phys.user = "repl";
	ck_assert_int_eq(hba_match(h, &phys, &line, NULL, NULL), HBA_MD5);
	struct hba_conn local_phys = {true, false, 0, NULL, "postgres", "x", true};
	ck_assert_int_eq(hba_match(h, &local_phys, &line, NULL, NULL), HBA_PEER);
	struct hba_conn logical = {false, false, AF_INET, b, "db1", "repl", false};
	ck_assert_int_eq(hba_match(h, &logical, &line, NULL, NULL), HBA_MD5); /* by its database db1 */
	logical.database = "db2";
	ck_assert_int_eq(hba_match(h, &logical, &line, NULL, NULL), HBA_REJECT);
	hba_free(h);
}
END_TEST

START_TEST(test_syntax)
{
	struct hba *h = parse_ok("# a comment\n"
				 "\n"
				 "   \t\n"
				 "host all all 10.0.0.0/8 \\\n"
				 "   md5   # continued\n"
				 "host \"we#ird\" all all trust\r\n");
	ck_assert_int_eq(hba_count(h), 2);
	int line;
	ck_assert_int_eq(tcp(h, "10.0.0.1", false, "d", "u", &line), HBA_MD5);
	ck_assert_int_eq(line, 4);
	ck_assert_int_eq(tcp(h, "11.0.0.1", false, "we#ird", "u", &line), HBA_TRUST);
	ck_assert_int_eq(line, 6);
	hba_free(h);
	h = parse_ok("");
	ck_assert_int_eq(hba_count(h), 0);
	ck_assert_int_eq(local(h, "d", "u", &line), HBA_NO_MATCH);
	hba_free(h);
}
END_TEST

START_TEST(test_include_file)
{
	char dir[] = "/tmp/pgcoro_test_hba_XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char names[128], conf[128];
	snprintf(names, sizeof(names), "%s/users.txt", dir);
	snprintf(conf, sizeof(conf), "%s/hba.conf", dir);
	FILE *f = fopen(names, "w");
	ck_assert_ptr_nonnull(f);
	fputs("alice, bob # the team\ncarol\n", f);
	fclose(f);
	f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fputs("host all @users.txt all trust\nhost all all all reject\n", f);
	fclose(f);
	char err[512] = "";
	struct hba *h = hba_load(conf, NULL, err, sizeof(err));
	ck_assert_msg(h != NULL, "%s", err);
	int line;
	ck_assert_int_eq(tcp(h, "1.1.1.1", false, "d", "carol", &line), HBA_TRUST);
	ck_assert_int_eq(tcp(h, "1.1.1.1", false, "d", "bob", &line), HBA_TRUST);
	ck_assert_int_eq(tcp(h, "1.1.1.1", false, "d", "dave", &line), HBA_REJECT);
	hba_free(h);
	f = fopen(conf, "w");
	fputs("host all @missing.txt all trust\n", f);
	fclose(f);
	ck_assert_ptr_null(hba_load(conf, NULL, err, sizeof(err)));
	ck_assert_msg(strstr(err, "hba.conf:1: @missing.txt: cannot open") != NULL, "%s", err);
	unlink(conf);
	unlink(names);
	rmdir(dir);
	ck_assert_ptr_null(hba_load(conf, NULL, err, sizeof(err)));
	ck_assert_msg(strstr(err, "cannot open") != NULL, "%s", err);
}
END_TEST

START_TEST(test_errors)
{
	static const struct {
		const char *text, *err;
	} cases[] = {
	    {"hostx all all all trust\n", "/tmp/hba.conf:1: invalid connection type \"hostx\""},
	    {"\nhostgssenc all all all trust\n", "/tmp/hba.conf:2: \"hostgssenc\" is not supported"},
	    {"host all\n", "/tmp/hba.conf:1: end of line before the user field"},
	    {"host all all\n", "/tmp/hba.conf:1: end of line before the address field"},
	    {"host all all 1.2.3.4/8\n", "/tmp/hba.conf:1: end of line before the authentication"},
	    {"host all all 1.2.3.4/33 trust\n", "/tmp/hba.conf:1: invalid CIDR mask"},
	    {"host all all 1.2.3.4 trust\n", "/tmp/hba.conf:1: IP address \"1.2.3.4\" needs a CIDR"},
	    {"host all all 1.2.3.4 ffff:: trust\n", "/tmp/hba.conf:1: IP address and mask do not"},
	    {"host all all db.example.com trust\n", "/tmp/hba.conf:1: invalid IP address"},
	    {"host all all samenet trust\n", "/tmp/hba.conf:1: \"samenet\" is not supported"},
	    {"host all all all ident\n", "/tmp/hba.conf:1: invalid or unsupported authentication"},
	    /* PgBouncer's global-only methods (its hba refuses them too) */
	    {"host all all all pam\n",
	     "/tmp/hba.conf:1: authentication method \"pam\" works only as auth_type"},
	    {"local all all any\n",
	     "/tmp/hba.conf:1: authentication method \"any\" works only as auth_type"},
	    {"local all all md5 map=x\n",
	     "/tmp/hba.conf:1: ident map \"x\" is not in auth_ident_file (not set)"},
	    {"local all all md5 clientcert=verify-full\n",
	     "/tmp/hba.conf:1: authentication option \"clientcert=verify-full\" is not supported"},
	    {"local samerole all reject\n", "/tmp/hba.conf:1: \"samerole\": pgcoro knows no role"},
	    {"local all +admins reject\n", "/tmp/hba.conf:1: \"+admins\": pgcoro knows no role"},
	    {"local \"all all trust\n", "/tmp/hba.conf:1: unterminated quoted string"},
	    {"local a,,b all trust\n", "/tmp/hba.conf:1: empty name in a list"},
	    {"local a, ,b all trust\n", "/tmp/hba.conf:1: empty name in a list"},
	    {",local all all trust\n", "/tmp/hba.conf:1: empty name in a list"},
	    /* a comma after blanks continues the list before them */
	    {"local ,all all trust\n", "/tmp/hba.conf:1: invalid connection type \"local\""},
	    {"local a, \n", "/tmp/hba.conf:1: end of line after a comma"},
	    {"local all all trust,md5\n", "/tmp/hba.conf:1: the authentication method cannot"},
	    {"local all all trust , md5\n", "/tmp/hba.conf:1: the authentication method cannot"},
	    {"local all @ trust\n", "/tmp/hba.conf:1: @ without a file name"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *err = parse_err(cases[i].text);
		ck_assert_msg(strncmp(err, cases[i].err, strlen(cases[i].err)) == 0,
			      "case %zu: got \"%s\", want \"%s...\"", i, err, cases[i].err);
	}
}
END_TEST

START_TEST(test_first_match_wins)
{
	struct hba *h = parse_ok("host all alice all reject\n"
				 "host all all 127.0.0.1/32 trust\n"
				 "host all alice 127.0.0.1/32 trust\n");
	int line;
	ck_assert_int_eq(tcp(h, "127.0.0.1", false, "d", "alice", &line), HBA_REJECT);
	ck_assert_int_eq(line, 1);
	ck_assert_int_eq(tcp(h, "127.0.0.1", false, "d", "bob", &line), HBA_TRUST);
	ck_assert_int_eq(line, 2);
	hba_free(h);
}
END_TEST

/* The method for a connection from ADDR ("unix", or an IPv4/IPv6 address) under RULES. */
static enum hba_method eval(const char *rules, const char *addr, bool tls, const char *db,
			    const char *user)
{
	struct hba *h = parse_ok(rules);
	int line;
	enum hba_method m = strcmp(addr, "unix") == 0 ? local(h, db, user, &line)
						      : tcp(h, addr, tls, db, user, &line);
	hba_free(h);
	return m;
}

/* PgBouncer's own evaluation cases (its test/hba_test.eval over hba_test.rules), restated
 * as small rule sets of ours: every case it checks but replication connections, which
 * pgcoro refuses before any rule. */
START_TEST(test_pgbouncer_cases)
{
	static const char *const ws = "# odd blanks\n \t \t \t\n\t\t\t# indented comment\n\n"
				      "host\t\tconsole\tconsole\t127.0.0.1/32\ttrust\n";
	static const char *const locals = "local peerdb all peer\n"
					  "local all pwuser password\n"
					  "local trustdb trustuser trust\n"
					  "local scramdb scramuser scram-sha-256\n"
					  "local all all md5\n";
	static const char *const types = "hostssl all all 10.0.0.0/8 cert\n"
					 "hostnossl all all 11.0.0.0/8 md5\n"
					 "host all all 127.0.0.0 255.255.255.0 password\n";
	static const char *const filters = "host dbone all 0.0.0.0/0 md5\n"
					   "host all uone 15.0.0.0/8 md5\n";
	static const char *const lists =
	    "host tmp1,all u1,u2 , u3 16.0.0.0/8 md5\n"
	    "host tmp2,all v1,v2,v3,v4,v5,v6,v7,v8,v9,v10,v11,v2 17.0.0.0/8 md5\n"
	    "host e1,e2,e3,e4,e5,e6,e7,e8,e9,e10,e11 manydb 18.0.0.0/8 trust # a comment\n";
	static const char *const quoting = "host \"all\" \"all\" 19.0.0.0/8 cert\n"
					   "host \"q1\"\"q2\" \"a , b\" 19.0.0.0/8 cert\n";
	static const char *const masks = "host mdb muser 199.199.199.199/32 cert\n"
					 "host mdb2 muser 128.0.0.0/9 trust\n"
					 "host mdb2 muser 128.0.0.0/8 md5\n"
					 "host mdb2 muser 128.0.0.0/7 cert\n"
					 "host mdb2 muser 128.0.0.0/6 password\n"
					 "host mdb2 muser 128.0.0.0/5 cert\n"
					 "host mdb2 muser 128.0.0.0/4 trust\n"
					 "host mdb2 muser 128.0.0.0/3 md5\n"
					 "host mdb2 muser 128.0.0.0/2 password\n"
					 "host mdb2 muser 128.0.0.0/1 cert\n";
	static const char *const v6 = "host mdb muser ff11::0/16 md5\n"
				      "host mdb muser ff20::/12 md5\n"
				      "host mdb muser ::1/128 trust\n";
	static const char *const anyaddr = "host mdb3 muser all scram-sha-256\n"
					   "host mdb4 muser all reject\n";
	static const char *const repl = "host replication admin ::1/128 trust\n"
					"host db2,replication admin2 ::1/128 trust\n";
	static const struct {
		const char *rules, *addr;
		bool tls;
		const char *db, *user;
		enum hba_method want;
	} cases[] = {
	    {ws, "127.0.0.1", false, "console", "console", HBA_TRUST},
	    {locals, "unix", false, "db", "user", HBA_MD5},
	    {locals, "unix", false, "peerdb", "user", HBA_PEER},
	    {locals, "unix", false, "db", "pwuser", HBA_PASSWORD},
	    {locals, "unix", false, "trustdb", "trustuser", HBA_TRUST},
	    {locals, "unix", false, "scramdb", "scramuser", HBA_SCRAM},
	    {locals, "127.0.0.1", false, "db", "user", HBA_NO_MATCH},
	    {types, "10.1.1.1", true, "db", "user", HBA_CERT},
	    {types, "10.1.1.1", false, "db", "user", HBA_NO_MATCH},
	    {types, "13.1.1.1", false, "db", "user", HBA_NO_MATCH},
	    {types, "11.1.1.1", true, "db", "user", HBA_NO_MATCH},
	    {types, "11.1.1.1", false, "db", "user", HBA_MD5},
	    {types, "13.1.1.1", true, "db", "user", HBA_NO_MATCH},
	    {types, "127.0.0.2", true, "db", "user", HBA_PASSWORD},
	    {types, "127.0.0.3", false, "db", "user", HBA_PASSWORD},
	    {types, "127.0.1.4", false, "db", "user", HBA_NO_MATCH},
	    {types, "unix", false, "db", "user", HBA_NO_MATCH},
	    {filters, "127.0.1.4", false, "dbonex", "user", HBA_NO_MATCH},
	    {filters, "127.0.1.4", false, "dbone", "user", HBA_MD5},
	    {filters, "15.0.0.1", false, "dbz", "uone", HBA_MD5},
	    {filters, "15.0.0.1", false, "dbz", "utwo", HBA_NO_MATCH},
	    {lists, "16.0.0.1", false, "db2", "user", HBA_NO_MATCH},
	    {lists, "16.0.0.1", false, "db2", "u1", HBA_MD5},
	    {lists, "16.0.0.1", false, "db2", "u2", HBA_MD5},
	    {lists, "16.0.0.1", false, "db2", "u3", HBA_MD5},
	    {lists, "16.0.0.1", false, "db2", "u4", HBA_NO_MATCH},
	    {lists, "17.0.0.1", false, "db2", "v1", HBA_MD5},
	    {lists, "17.0.0.1", false, "db2", "v2", HBA_MD5},
	    {lists, "17.0.0.1", false, "db2", "v6", HBA_MD5},
	    {lists, "17.0.0.1", false, "db2", "v10", HBA_MD5},
	    {lists, "17.0.0.1", false, "db2", "v11", HBA_MD5},
	    {lists, "17.0.0.1", false, "db2", "v12", HBA_NO_MATCH},
	    {lists, "18.0.0.2", false, "e1", "user", HBA_NO_MATCH},
	    {lists, "18.0.0.2", false, "e1", "manydb", HBA_TRUST},
	    {lists, "18.0.0.2", false, "e2", "manydb", HBA_TRUST},
	    {lists, "18.0.0.2", false, "e7", "manydb", HBA_TRUST},
	    {lists, "18.0.0.2", false, "e10", "manydb", HBA_TRUST},
	    {lists, "18.0.0.2", false, "e11", "manydb", HBA_TRUST},
	    {lists, "18.0.0.2", false, "e12", "manydb", HBA_NO_MATCH},
	    {quoting, "19.0.0.2", false, "db", "t19user", HBA_NO_MATCH},
	    {quoting, "19.0.0.2", false, "all", "all", HBA_CERT},
	    {quoting, "19.0.0.2", false, "q1\"q2", "a , b", HBA_CERT},
	    {quoting, "19.0.0.2", false, "q1q2", "a , b", HBA_NO_MATCH},
	    {quoting, "19.0.0.2", false, "q1\"q2", "a", HBA_NO_MATCH},
	    {masks, "199.199.199.199", false, "mdb", "muser", HBA_CERT},
	    {masks, "199.199.199.198", false, "mdb", "muser", HBA_NO_MATCH},
	    {masks, "199.199.199.200", false, "mdb", "muser", HBA_NO_MATCH},
	    {masks, "254.1.1.1", false, "mdb2", "muser", HBA_CERT},
	    {masks, "128.1.1.1", false, "mdb2", "muser", HBA_TRUST},
	    {masks, "128.200.1.1", false, "mdb2", "muser", HBA_MD5},
	    {masks, "129.1.1.1", false, "mdb2", "muser", HBA_CERT},
	    {masks, "131.1.1.1", false, "mdb2", "muser", HBA_PASSWORD},
	    {masks, "135.1.1.1", false, "mdb2", "muser", HBA_CERT},
	    {masks, "143.1.1.1", false, "mdb2", "muser", HBA_TRUST},
	    {masks, "159.1.1.1", false, "mdb2", "muser", HBA_MD5},
	    {masks, "191.1.1.1", false, "mdb2", "muser", HBA_PASSWORD},
	    {masks, "127.1.1.1", false, "mdb2", "muser", HBA_NO_MATCH},
	    {v6, "ff11:2::1", false, "mdb", "muser", HBA_MD5},
	    {v6, "ff22:3::1", false, "mdb", "muser", HBA_MD5},
	    {v6, "ff30::1", false, "mdb", "muser", HBA_NO_MATCH},
	    {v6, "::1", false, "mdb", "muser", HBA_TRUST},
	    {v6, "::2", false, "mdb", "muser", HBA_NO_MATCH},
	    {anyaddr, "1.2.3.4", false, "mdb3", "muser", HBA_SCRAM},
	    {anyaddr, "face::1", false, "mdb3", "muser", HBA_SCRAM},
	    {anyaddr, "1.2.3.4", false, "mdb4", "muser", HBA_REJECT},
	    {anyaddr, "face::1", false, "mdb4", "muser", HBA_REJECT},
	    {repl, "::1", false, "db", "admin", HBA_NO_MATCH},
	    {repl, "::1", false, "replication", "admin", HBA_NO_MATCH},
	    {repl, "::1", false, "db2", "admin2", HBA_TRUST},
	    {repl, "::1", false, "replication", "admin2", HBA_NO_MATCH},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum hba_method m = eval(cases[i].rules, cases[i].addr, cases[i].tls, cases[i].db,
					 cases[i].user);
		ck_assert_msg(m == cases[i].want, "case %zu (%s%s db=%s user=%s): got %s, want %s",
			      i, cases[i].addr, cases[i].tls ? " tls" : "", cases[i].db,
			      cases[i].user, hba_method_name(m), hba_method_name(cases[i].want));
	}
}
END_TEST

/* Blanks around list commas, as PgBouncer accepts them. */
START_TEST(test_blanks_around_commas)
{
	struct hba *h = parse_ok("host\tt1 , all\tu1,u2 , u3\t16.0.0.0/8\tmd5\n"
				 "local d1 ,d2,  d3\t,\td4 all trust\n");
	int line;
	ck_assert_int_eq(hba_count(h), 2);
	ck_assert_int_eq(tcp(h, "16.0.0.1", false, "x", "u3", &line), HBA_MD5);
	ck_assert_int_eq(tcp(h, "16.0.0.1", false, "x", "u2", &line), HBA_MD5);
	ck_assert_int_eq(tcp(h, "16.0.0.1", false, "x", "u4", &line), HBA_NO_MATCH);
	for (int i = 1; i <= 4; i++) {
		char db[8];
		snprintf(db, sizeof(db), "d%d", i);
		ck_assert_int_eq(local(h, db, "u", &line), HBA_TRUST);
	}
	ck_assert_int_eq(local(h, "d5", "u", &line), HBA_NO_MATCH);
	hba_free(h);
}
END_TEST

/* peer off a unix socket and cert without TLS parse (PgBouncer accepts them: such a
 * login fails); the rule's method is what matches. */
START_TEST(test_methods_anywhere)
{
	struct hba *h = parse_ok("host all all 10.0.0.0/8 cert\n"
				 "host all all all peer\n"
				 "local all all cert\n");
	int line;
	ck_assert_int_eq(tcp(h, "10.1.1.1", false, "d", "u", &line), HBA_CERT);
	ck_assert_int_eq(tcp(h, "11.1.1.1", true, "d", "u", &line), HBA_PEER);
	ck_assert_int_eq(local(h, "d", "u", &line), HBA_CERT);
	hba_free(h);
}
END_TEST

/* A rule naming a role group never matches (PgBouncer skips it); a reject rule naming
 * one is refused. */
START_TEST(test_role_groups)
{
	struct hba *h = parse_ok("host all alice,+admins all trust\n"
				 "local samerole all trust\n"
				 "local samegroup all trust\n"
				 "host all all all password\n"
				 "local all all peer\n");
	int line;
	ck_assert_int_eq(hba_count(h), 2);
	ck_assert_int_eq(tcp(h, "1.2.3.4", false, "d", "alice", &line), HBA_PASSWORD);
	ck_assert_int_eq(line, 4);
	ck_assert_int_eq(local(h, "d", "u", &line), HBA_PEER);
	ck_assert_int_eq(line, 5);
	hba_free(h);
	/* a quoted "+x" is a user name, and "+x" in the database field a database name */
	h = parse_ok("host all \"+admins\" all trust\nhost +db all all md5\n");
	ck_assert_int_eq(tcp(h, "1.2.3.4", false, "d", "+admins", &line), HBA_TRUST);
	ck_assert_int_eq(tcp(h, "1.2.3.4", false, "+db", "u", &line), HBA_MD5);
	hba_free(h);
	ck_assert_str_eq(parse_err("host all +x all trust\nhost samegroup all all reject\n"),
			 "/tmp/hba.conf:2: \"samegroup\": pgcoro knows no role membership, so it "
			 "cannot tell whom this reject rule rejects");
}
END_TEST

static struct hba *parse_ident(const char *rules, const char *ident)
{
	char err[512] = "";
	struct hba *h = hba_parse(rules, "/tmp/hba.conf", ident, "/tmp/ident.conf", err,
				  sizeof(err));
	ck_assert_msg(h != NULL, "parse failed: %s", err);
	return h;
}

static const char *parse_ident_err(const char *rules, const char *ident)
{
	static char err[512];
	err[0] = 0;
	struct hba *h = hba_parse(rules, "/tmp/hba.conf", ident, "/tmp/ident.conf", err,
				  sizeof(err));
	ck_assert_msg(h == NULL, "parsed: %s / %s", rules, ident);
	return err;
}

START_TEST(test_ident_maps)
{
	struct hba *h = parse_ident("local all all peer map=os\n"
				    "hostssl certdb all all cert map=\"cn\"\n"
				    "hostssl all all all cert\n",
				    "# MAP SYSTEM-USER DATABASE-USER\n"
				    "os   root        app\n"
				    "os   root        md5user   # a comment\n"
				    "os   \"svc one\"   all\n"
				    "os   alice       \"all\"\n"
				    "cn   /^(.*)\\.example\\.com$   \\1\n"
				    "cn   /^admin-(.*)$   admin\n"
				    "cn   \"/^[[:alpha:]]{1,64}-(x|y)+[]a-z]*(z{2,9})?$\"   sized\n"
				    "cn   /^(a)?b$        pre\\1\n");
	int line;
	const struct hba_map *os = NULL, *cn = NULL, *none = (const struct hba_map *)&line;
	struct hba_conn unix_conn = {true, false, 0, NULL, "d", "u", false};
	ck_assert_int_eq(hba_match(h, &unix_conn, &line, &os, NULL), HBA_PEER);
	ck_assert_ptr_nonnull(os);
	ck_assert_str_eq(hba_map_name(os), "os");
	uint8_t a[4] = {10, 0, 0, 1};
	struct hba_conn tls_conn = {false, true, AF_INET, a, "certdb", "u", false};
	ck_assert_int_eq(hba_match(h, &tls_conn, &line, &cn, NULL), HBA_CERT);
	ck_assert_str_eq(hba_map_name(cn), "cn");
	tls_conn.database = "other";
	ck_assert_int_eq(hba_match(h, &tls_conn, &line, &none, NULL), HBA_CERT);
	ck_assert_ptr_null(none);
	ck_assert_int_eq(line, 3);

	/* literal lines: each pair, nothing else */
	ck_assert(hba_map_allows(os, "root", "app"));
	ck_assert(hba_map_allows(os, "root", "md5user"));
	ck_assert(!hba_map_allows(os, "root", "root"));
	ck_assert(!hba_map_allows(os, "roo", "app"));
	ck_assert(!hba_map_allows(os, "rootx", "app"));
	/* unquoted all: any user; quoted "all": the user named all */
	ck_assert(hba_map_allows(os, "svc one", "anyone"));
	ck_assert(hba_map_allows(os, "alice", "all"));
	ck_assert(!hba_map_allows(os, "alice", "alice"));
	/* a regular expression, \1 replaced by its first group */
	ck_assert(hba_map_allows(cn, "bob.example.com", "bob"));
	ck_assert(!hba_map_allows(cn, "bob.example.com", "bob.example.com"));
	ck_assert(!hba_map_allows(cn, "bob.example.org", "bob"));
	ck_assert(!hba_map_allows(cn, "bob.example.com", "bo"));
	ck_assert(!hba_map_allows(cn, "bob.example.com", "bobx"));
	ck_assert(hba_map_allows(cn, "admin-zed", "admin"));
	ck_assert(hba_map_allows(cn, "abc-xyx]zzz", "sized"));
	/* an optional group that took no part matches nothing */
	ck_assert(hba_map_allows(cn, "ab", "prea"));
	ck_assert(!hba_map_allows(cn, "b", "pre"));
	/* the map of another name is not consulted */
	ck_assert(!hba_map_allows(cn, "root", "app"));
	/* no map: the names must be equal */
	ck_assert(hba_map_allows(NULL, "app", "app"));
	ck_assert(!hba_map_allows(NULL, "app", "App"));
	hba_free(h);
}
END_TEST

START_TEST(test_ident_errors)
{
	static const struct {
		const char *rules, *ident, *err;
	} cases[] = {
	    {"local all all peer map=nope\n", "os root app\n",
	     "/tmp/hba.conf:1: ident map \"nope\" is not in /tmp/ident.conf"},
	    {"local all all peer map=os map=os\n", "os root app\n",
	     "/tmp/hba.conf:1: map= is given twice"},
	    {"local all all peer map=\n", "os root app\n",
	     "/tmp/hba.conf:1: ident map \"\" is not in /tmp/ident.conf"},
	    {"", "os root\n", "/tmp/ident.conf:1: missing field: an ident map line is MAPNAME"},
	    {"", "\nos root app extra\n", "/tmp/ident.conf:2: extra field: an ident map line"},
	    {"", "os root,alice app\n", "/tmp/ident.conf:1: an ident map field cannot be a list"},
	    /* a regular expression with a comma is quoted (as for PostgreSQL) */
	    {"", "os /^a{1,2}$ x\n", "/tmp/ident.conf:1: an ident map field cannot be a list"},
	    {"", "os /(a app\n", "/tmp/ident.conf:1: invalid regular expression \"(a\": "},
	    {"", "os /^a$ x\\1\n",
	     "/tmp/ident.conf:1: regular expression \"^a$\" has no group for the \\1 in \"x\\1\""},
	    {"", "os \"root app\n", "/tmp/ident.conf:1: unterminated quoted string"},
	    /* regcomp would expand these to gigabytes, or its matcher take minutes */
	    {"", "os /b+++++++++++++++++++++++++++ x\n",
	     "/tmp/ident.conf:1: regular expression \"b+++++++++++++++++++++++++++\": a quantifier "
	     "right after another is not supported"},
	    {"", "os /^(.*)+*\\.com$ x\n", "/tmp/ident.conf:1: regular expression \"^(.*)+*\\.com$\": "
	     "a quantifier right after another"},
	    {"", "os /((((((((((a+)+)+)+)+)+)+)+)+)+) x\n",
	     "/tmp/ident.conf:1: regular expression \"((((((((((a+)+)+)+)+)+)+)+)+)+)\": too large "
	     "once its repetitions are expanded"},
	    {"", "os /(a{99}){99} x\n", "/tmp/ident.conf:1: regular expression \"(a{99}){99}\": too"},
	    {"", "os /[a]{2000} x\n", "/tmp/ident.conf:1: regular expression \"[a]{2000}\": too"},
	    {"", "os /(a*)\\1b x\n",
	     "/tmp/ident.conf:1: regular expression \"(a*)\\1b\": back references are not supported"},
	    {"", "os /((((((((((((((((((((((((((((((((a)))))))))))))))))))))))))))))))) x\n",
	     "/tmp/ident.conf:1: regular expression \"(((((((((((((((((((((((((((((((("
	     "a))))))))))))))))))))))))))))))))\": nested too deeply"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *err = parse_ident_err(cases[i].rules, cases[i].ident);
		ck_assert_msg(strncmp(err, cases[i].err, strlen(cases[i].err)) == 0,
			      "case %zu: got \"%s\", want \"%s...\"", i, err, cases[i].err);
	}
	/* an empty ident file is no map at all */
	ck_assert_str_eq(parse_ident_err("local all all peer map=os\n", "# none\n"),
			 "/tmp/hba.conf:1: ident map \"os\" is not in /tmp/ident.conf");
}
END_TEST

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* @file: the syntax and keywords of the field that names it, nested files relative to
 * their includer, errors with the included file's line; only regular files are read. */
START_TEST(test_include_syntax)
{
	char dir[] = "/tmp/pgcoro_test_hba_XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char sub[128], conf[128], fifo[128], err[1024] = "";
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	snprintf(conf, sizeof(conf), "%s/hba.conf", dir);
	write_file(dir, "dbs.txt", "sameuser, \"all\"\nreplication @sub/more.txt\n");
	write_file(sub, "more.txt", "\"x,y\" \"we#ird\" # comment\n@deeper.txt\n");
	write_file(sub, "deeper.txt", "deep\n");
	write_file(dir, "hba.conf", "host @dbs.txt all all trust\nhost all all all reject\n");
	struct hba *h = hba_load(conf, NULL, err, sizeof(err));
	ck_assert_msg(h != NULL, "%s", err);
	int line;
	/* sameuser keeps its meaning in the file; "all" quoted is a name */
	ck_assert_int_eq(tcp(h, "1.1.1.1", false, "bob", "bob", &line), HBA_TRUST);
	ck_assert_int_eq(tcp(h, "1.1.1.1", false, "all", "bob", &line), HBA_TRUST);
	ck_assert_int_eq(tcp(h, "1.1.1.1", false, "other", "bob", &line), HBA_REJECT);
	ck_assert_int_eq(tcp(h, "1.1.1.1", false, "replication", "bob", &line), HBA_REJECT);
	/* quotes keep commas and '#' in a name */
	ck_assert_int_eq(tcp(h, "1.1.1.1", false, "x,y", "bob", &line), HBA_TRUST);
	ck_assert_int_eq(tcp(h, "1.1.1.1", false, "x", "bob", &line), HBA_REJECT);
	ck_assert_int_eq(tcp(h, "1.1.1.1", false, "we#ird", "bob", &line), HBA_TRUST);
	/* sub/more.txt's @deeper.txt is sub/deeper.txt */
	ck_assert_int_eq(tcp(h, "1.1.1.1", false, "deep", "bob", &line), HBA_TRUST);
	hba_free(h);
	/* a +group in a users file: the rule never matches */
	write_file(dir, "users.txt", "alice\n+admins\n");
	write_file(dir, "hba.conf", "host all @users.txt all trust\nhost all all all md5\n");
	ck_assert_ptr_nonnull(h = hba_load(conf, NULL, err, sizeof(err)));
	ck_assert_int_eq(tcp(h, "1.1.1.1", false, "d", "alice", &line), HBA_MD5);
	hba_free(h);
	/* an error in an included file names it and its line */
	write_file(sub, "deeper.txt", "ok\n\"unterminated\n");
	write_file(dir, "hba.conf", "\nhost @dbs.txt all all trust\n");
	ck_assert_ptr_null(hba_load(conf, NULL, err, sizeof(err)));
	char want[512];
	snprintf(want, sizeof(want),
		 "auth_hba_file: %s:2: @dbs.txt: %s/dbs.txt:2: @sub/more.txt: %s/more.txt:2: "
		 "@deeper.txt: %s/deeper.txt:2: unterminated quoted string",
		 conf, dir, sub, sub);
	ck_assert_str_eq(err, want);
	/* a fifo (or a directory) is not read: it could block the reader forever */
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	write_file(dir, "hba.conf", "host @fifo all all trust\n");
	ck_assert_ptr_null(hba_load(conf, NULL, err, sizeof(err)));
	ck_assert_msg(strstr(err, "hba.conf:1: @fifo: not a regular file") != NULL, "%s", err);
	write_file(dir, "hba.conf", "host @sub all all trust\n");
	ck_assert_ptr_null(hba_load(conf, NULL, err, sizeof(err)));
	ck_assert_msg(strstr(err, "hba.conf:1: @sub: not a regular file") != NULL, "%s", err);
	ck_assert_ptr_null(hba_load(fifo, NULL, err, sizeof(err)));
	ck_assert_msg(strstr(err, "fifo: not a regular file") != NULL, "%s", err);
	/* @ files including each other stop at a depth */
	write_file(dir, "loop.txt", "@loop.txt\n");
	write_file(dir, "hba.conf", "host @loop.txt all all trust\n");
	ck_assert_ptr_null(hba_load(conf, NULL, err, sizeof(err)));
	ck_assert_msg(strstr(err, "@loop.txt: included too deeply") != NULL, "%s", err);
	const char *const files[] = {"hba.conf", "dbs.txt", "users.txt", "fifo", "loop.txt",
				     "sub/more.txt", "sub/deeper.txt"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[256];
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(sub);
	rmdir(dir);
}
END_TEST

/* hba_load with auth_ident_file: the maps, and each file's errors named by its key. */
START_TEST(test_load_ident)
{
	char dir[] = "/tmp/pgcoro_test_hba_XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char conf[128], ident[128], err[1024] = "";
	snprintf(conf, sizeof(conf), "%s/hba.conf", dir);
	snprintf(ident, sizeof(ident), "%s/ident.conf", dir);
	write_file(dir, "hba.conf", "local all all peer map=m\n");
	write_file(dir, "ident.conf", "m root app\n");
	struct hba *h = hba_load(conf, ident, err, sizeof(err));
	ck_assert_msg(h != NULL, "%s", err);
	int line;
	const struct hba_map *map;
	struct hba_conn c = {true, false, 0, NULL, "d", "u", false};
	ck_assert_int_eq(hba_match(h, &c, &line, &map, NULL), HBA_PEER);
	ck_assert(hba_map_allows(map, "root", "app"));
	hba_free(h);
	/* an ident file is read even when no rule names a map; "" is none */
	ck_assert_ptr_null(hba_load(conf, "", err, sizeof(err)));
	ck_assert_msg(strstr(err, "auth_hba_file: ") == err && strstr(err, "ident map \"m\""),
		      "%s", err);
	write_file(dir, "ident.conf", "m root\n");
	ck_assert_ptr_null(hba_load(conf, ident, err, sizeof(err)));
	char want[512];
	snprintf(want, sizeof(want), "auth_ident_file: %s:1: missing field", ident);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
	unlink(ident);
	ck_assert_ptr_null(hba_load(conf, ident, err, sizeof(err)));
	snprintf(want, sizeof(want), "auth_ident_file: %s: cannot open", ident);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
	unlink(conf);
	ck_assert_ptr_null(hba_load(conf, NULL, err, sizeof(err)));
	snprintf(want, sizeof(want), "auth_hba_file: %s: cannot open", conf);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
	rmdir(dir);
}
END_TEST

/* ldap rules: the rest of the line is LDAP options as PgBouncer reads them (quoted keys
 * and values, a comma before an option), checked when the file is loaded. */
START_TEST(test_ldap_rules)
{
	struct hba *h = parse_ok(
	    "host all ldapuser 127.0.0.1/32 ldap ldapserver=127.0.0.1 \"ldapport\"=12345 "
	    "ldapbasedn=\"dc=example,dc=net\" ,ldapsearchfilter=\"uid=$username\"\n"
	    "host all all all ldap ldapurl=\"ldap://h:389/dc=x?uid?sub\"\n"
	    "local all all ldap ldapserver=h ldapprefix=\"uid=\" ldapsuffix=\",dc=x\"\n");
	uint8_t a[4] = {127, 0, 0, 1};
	struct hba_conn c = {false, false, AF_INET, a, "db", "ldapuser", false};
	const struct ldapauth_opts *o;
	int line;
	ck_assert_int_eq(hba_match(h, &c, &line, NULL, &o), HBA_LDAP);
	ck_assert_int_eq(line, 1);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(o->server, "127.0.0.1");
	ck_assert_int_eq(o->port, 12345);
	ck_assert_str_eq(o->basedn, "dc=example,dc=net");
	ck_assert_str_eq(o->searchfilter, "uid=$username");
	c.user = "other";
	ck_assert_int_eq(hba_match(h, &c, &line, NULL, &o), HBA_LDAP);
	ck_assert_str_eq(o->searchattribute, "uid");
	struct hba_conn u = {true, false, 0, NULL, "db", "x", false};
	ck_assert_int_eq(hba_match(h, &u, &line, NULL, &o), HBA_LDAP);
	ck_assert_str_eq(o->suffix, ",dc=x");
	ck_assert_str_eq(hba_method_name(HBA_LDAP), "ldap");
	hba_free(h);
	/* other methods have no LDAP options */
	h = parse_ok("host all all all md5\n");
	o = (const struct ldapauth_opts *)1;
	ck_assert_int_eq(hba_match(h, &c, &line, NULL, &o), HBA_MD5);
	ck_assert_ptr_null(o);
	hba_free(h);
	ck_assert_str_eq(parse_err("host all all all ldap\n"),
			 "/tmp/hba.conf:1: authentication method \"ldap\" requires argument "
			 "\"ldapbasedn\", \"ldapprefix\", or \"ldapsuffix\" to be set");
	ck_assert_str_eq(parse_err("local all all peer\nhost all all all ldap ldapserver=h "
				   "ldapprefix=a ldapbasedn=b\n"),
			 "/tmp/hba.conf:2: cannot mix options for simple bind and search+bind modes");
	ck_assert_str_eq(parse_err("host all all all ldap ldapserver=h ldapprefix=a map=m\n"),
			 "/tmp/hba.conf:1: invalid LDAP option: \"map\"");
	ck_assert_str_eq(parse_err("host all all all ldap ldapserver=h ldapprefix\n"),
			 "/tmp/hba.conf:1: LDAP option \"ldapprefix\" is not name=value");
}
END_TEST

static Suite *hba_suite(void)
{
	Suite *s = suite_create("hba");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_methods_each);
	tcase_add_test(tc, test_connection_types);
	tcase_add_test(tc, test_addresses);
	tcase_add_test(tc, test_databases_and_users);
	tcase_add_test(tc, test_replication);
	tcase_add_test(tc, test_syntax);
	tcase_add_test(tc, test_include_file);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_first_match_wins);
	tcase_add_test(tc, test_pgbouncer_cases);
	tcase_add_test(tc, test_blanks_around_commas);
	tcase_add_test(tc, test_methods_anywhere);
	tcase_add_test(tc, test_role_groups);
	tcase_add_test(tc, test_ident_maps);
	tcase_add_test(tc, test_ident_errors);
	tcase_add_test(tc, test_include_syntax);
	tcase_add_test(tc, test_load_ident);
	tcase_add_test(tc, test_ldap_rules);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return unit_run(hba_suite()); }
