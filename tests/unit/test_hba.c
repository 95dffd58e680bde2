/* Unit tests for hba.c: pg_hba.conf syntax (comments, quoting, lists, continuation,
 * @file), every connection type, address form and method, rule order, and the
 * "file:line: reason" errors. */
#include <check.h>

#include "unit.h"
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hba.h"

static struct hba *parse_ok(const char *text)
{
	char err[512] = "";
	struct hba *h = hba_parse(text, "/tmp/hba.conf", err, sizeof(err));
	ck_assert_msg(h != NULL, "parse failed: %s", err);
	return h;
}

/* The error for TEXT, which must not parse. */
static const char *parse_err(const char *text)
{
	static char err[512];
	err[0] = 0;
	struct hba *h = hba_parse(text, "/tmp/hba.conf", err, sizeof(err));
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
	return hba_match(h, &c, line);
}

static enum hba_method local(const struct hba *h, const char *db, const char *user, int *line)
{
	struct hba_conn c = {true, false, 0, NULL, db, user, false};
	return hba_match(h, &c, line);
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
	ck_assert_int_eq(hba_match(h, &phys, &line), HBA_MD5); /* not "all" of line 1 */
	ck_assert_int_eq(line, 2);
	phys.user = "app";
	ck_assert_int_eq(hba_match(h, &phys, &line), HBA_NO_MATCH); /* reject names no replication */
	phys.addr = b;
	phys.user = "repl";
	ck_assert_int_eq(hba_match(h, &phys, &line), HBA_MD5);
	struct hba_conn local_phys = {true, false, 0, NULL, "postgres", "x", true};
	ck_assert_int_eq(hba_match(h, &local_phys, &line), HBA_PEER);
	struct hba_conn logical = {false, false, AF_INET, b, "db1", "repl", false};
	ck_assert_int_eq(hba_match(h, &logical, &line), HBA_MD5); /* by its database db1 */
	logical.database = "db2";
	ck_assert_int_eq(hba_match(h, &logical, &line), HBA_REJECT);
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
	struct hba *h = hba_load(conf, err, sizeof(err));
	ck_assert_msg(h != NULL, "%s", err);
	int line;
	ck_assert_int_eq(tcp(h, "1.1.1.1", false, "d", "carol", &line), HBA_TRUST);
	ck_assert_int_eq(tcp(h, "1.1.1.1", false, "d", "bob", &line), HBA_TRUST);
	ck_assert_int_eq(tcp(h, "1.1.1.1", false, "d", "dave", &line), HBA_REJECT);
	hba_free(h);
	f = fopen(conf, "w");
	fputs("host all @missing.txt all trust\n", f);
	fclose(f);
	ck_assert_ptr_null(hba_load(conf, err, sizeof(err)));
	ck_assert_msg(strstr(err, "hba.conf:1: @missing.txt: cannot open") != NULL, "%s", err);
	unlink(conf);
	unlink(names);
	rmdir(dir);
	ck_assert_ptr_null(hba_load(conf, err, sizeof(err)));
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
	    {"host all all all peer\n", "/tmp/hba.conf:1: peer authentication is only supported"},
	    {"host all all all cert\n", "/tmp/hba.conf:1: cert authentication is only supported"},
	    {"local all all md5 map=x\n", "/tmp/hba.conf:1: authentication options are not"},
	    {"local samerole all trust\n", "/tmp/hba.conf:1: \"samerole\" is not supported"},
	    {"local all +admins trust\n", "/tmp/hba.conf:1: group membership"},
	    {"local \"all all trust\n", "/tmp/hba.conf:1: unterminated quoted string"},
	    {"local a,,b all trust\n", "/tmp/hba.conf:1: empty name in a list"},
	    {"local all all trust,md5\n", "/tmp/hba.conf:1: the authentication method cannot"},
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
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return unit_run(hba_suite()); }
