/* Unit tests for ldapauth.c: auth_ldap_options as PgBouncer writes them (quotes, commas,
 * ldapurl), PostgreSQL's rules on which options go together, the user names refused, the
 * RFC 4515 escaping of search filters, and the checks that must fail before any network
 * (empty password, a refused user name, no server at all). */
#include <check.h>

#include "unit.h"
#include <ldap.h>
#include <string.h>

#include "ldapauth.h"

static struct ldapauth_opts *parse_ok(const char *text)
{
	char err[256] = "";
	struct ldapauth_opts *o = ldapauth_parse(text, err, sizeof(err));
	ck_assert_msg(o != NULL, "%s: %s", text, err);
	return o;
}

static const char *parse_err(const char *text)
{
	static char err[256];
	err[0] = 0;
	struct ldapauth_opts *o = ldapauth_parse(text, err, sizeof(err));
	ck_assert_msg(o == NULL, "parsed: %s", text);
	return err;
}

START_TEST(test_simple_bind_options)
{
	struct ldapauth_opts *o =
	    parse_ok("ldapserver=127.0.0.1 ldapport=12345 ldapprefix=\"uid=\" "
		     "ldapsuffix=\",dc=example,dc=net\" ldaptls=1");
	ck_assert_str_eq(o->server, "127.0.0.1");
	ck_assert_int_eq(o->port, 12345);
	ck_assert_str_eq(o->prefix, "uid=");
	ck_assert_str_eq(o->suffix, ",dc=example,dc=net");
	ck_assert(o->tls);
	ck_assert_ptr_null(o->basedn);
	struct ldapauth_opts *d = ldapauth_dup(o);
	ck_assert_ptr_nonnull(d);
	ldapauth_free(o);
	ck_assert_str_eq(d->suffix, ",dc=example,dc=net"); /* its own copy */
	ldapauth_free(d);
}
END_TEST

START_TEST(test_search_bind_options)
{
	/* PgBouncer's test 9 form: a quoted key, a comma before an option, "" in quotes */
	struct ldapauth_opts *o =
	    parse_ok("ldapserver=127.0.0.1 \"ldapport\"=389 ldapbasedn=\"dc=example,dc=net\" "
		     ",ldapsearchfilter=\"uid=$username\" ldapbindpasswd=\"a\"\"b c\"\n");
	ck_assert_int_eq(o->port, 389);
	ck_assert_str_eq(o->basedn, "dc=example,dc=net");
	ck_assert_str_eq(o->searchfilter, "uid=$username");
	ck_assert_str_eq(o->bindpasswd, "a\"b c");
	ck_assert_int_eq(o->scope, LDAP_SCOPE_SUBTREE);
	ldapauth_free(o);
	o = parse_ok("ldapurl=\"ldaps://h1:636/dc=example,dc=net??one?(mail=$username)\"");
	ck_assert_str_eq(o->scheme, "ldaps");
	ck_assert_str_eq(o->server, "h1");
	ck_assert_int_eq(o->port, 636);
	ck_assert_str_eq(o->basedn, "dc=example,dc=net");
	ck_assert_ptr_null(o->searchattribute);
	ck_assert_int_eq(o->scope, LDAP_SCOPE_ONELEVEL);
	ck_assert_str_eq(o->searchfilter, "(mail=$username)");
	ldapauth_free(o);
	o = parse_ok("ldapurl=\"ldap://h1/dc=example,dc=net?cn\"");
	ck_assert_str_eq(o->searchattribute, "cn");
	ck_assert_int_eq(o->port, 389); /* the scheme's, as libldap fills it in */
	ldapauth_free(o);
	/* no ldapserver: DNS SRV records of the base DN's domain */
	o = parse_ok("ldapbasedn=\"dc=example,dc=net\"");
	ck_assert_ptr_null(o->server);
	ldapauth_free(o);
}
END_TEST

START_TEST(test_option_errors)
{
	ck_assert_str_eq(parse_err(""), "authentication method \"ldap\" requires argument "
					"\"ldapbasedn\", \"ldapprefix\", or \"ldapsuffix\" to be set");
	ck_assert_str_eq(parse_err("ldapserver=h ldapprefix=a ldapbasedn=b"),
			 "cannot mix options for simple bind and search+bind modes");
	ck_assert_str_eq(parse_err("ldapserver=h ldapbasedn=b ldapsearchattribute=uid "
				   "ldapsearchfilter=x"),
			 "cannot use ldapsearchattribute together with ldapsearchfilter");
	ck_assert_str_eq(parse_err("ldapprefix=a"), "LDAP server not specified, and no ldapbasedn");
	ck_assert_str_eq(parse_err("ldapserver=h ldapport=0 ldapprefix=a"),
			 "invalid LDAP port number: \"0\"");
	ck_assert_str_eq(parse_err("ldapserver=h ldapport=x ldapprefix=a"),
			 "invalid LDAP port number: \"x\"");
	ck_assert_str_eq(parse_err("ldapserver=h ldapscheme=http ldapprefix=a"),
			 "invalid ldapscheme value: \"http\"");
	ck_assert_str_eq(parse_err("ldapserver=h ldapprefix=a map=x"), "invalid LDAP option: \"map\"");
	ck_assert_str_eq(parse_err("ldapurl=\"http://h/dc=x\""),
			 "could not parse LDAP URL \"http://h/dc=x\"");
	ck_assert_str_eq(parse_err("ldapurl=\"ldap://h/dc=x?cn?sub?(cn=$username)\""),
			 "cannot use ldapsearchattribute together with ldapsearchfilter");
	/* an unquoted comma ends a value, as in PgBouncer: dc=net is an option then */
	ck_assert_str_eq(parse_err("ldapserver=h ldapbasedn=dc=example,dc=net"),
			 "invalid LDAP option: \"dc\"");
	ck_assert_str_eq(parse_err("ldapserver=h ldapbasedn="), "no value for ldapbasedn");
	ck_assert_str_eq(parse_err("ldapserver=h ldapbasedn=\"x"),
			 "unterminated quoted value of ldapbasedn");
	ck_assert_str_eq(parse_err("ldapserver"), "expected KEY=VALUE at \"\"");
}
END_TEST

START_TEST(test_user_names)
{
	ck_assert(ldapauth_user_ok("ldapuser1"));
	ck_assert(ldapauth_user_ok("o'neil@example.net"));
	const char *bad[] = {"*", "a*", "x)(uid=*", "(", "a\\b", "a/b"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!ldapauth_user_ok(bad[i]), "%s", bad[i]);
}
END_TEST

START_TEST(test_filter_escaping)
{
	char out[64];
	ck_assert(ldapauth_filter("(uid=$username)", "bob", out, sizeof(out)));
	ck_assert_str_eq(out, "(uid=bob)");
	ck_assert(ldapauth_filter("(|(uid=$username)(mail=$username))", "b", out, sizeof(out)));
	ck_assert_str_eq(out, "(|(uid=b)(mail=b))");
	/* RFC 4515: the characters that would change the filter become \XX */
	ck_assert(ldapauth_filter("(uid=$username)", "*)(uid=*\\", out, sizeof(out)));
	ck_assert_str_eq(out, "(uid=\\2a\\29\\28uid=\\2a\\5c)");
	ck_assert(!ldapauth_filter("(uid=$username)", "a-very-long-user-name-indeed", out, 20));
	ck_assert(!ldapauth_filter("(uid=$username)", "*", out, 9)); /* "(uid=\2a" does not fit */
	ck_assert(ldapauth_filter("(uid=$username)", "*", out, 10));
	ck_assert_str_eq(out, "(uid=\\2a)");
}
END_TEST

/* Refused before any connection: an empty password (an anonymous bind would succeed) and
 * a user name with filter characters; a server that is not there is "unavailable". */
START_TEST(test_check_without_network)
{
	struct ldapauth_opts *o = parse_ok("ldapserver=127.0.0.1 ldapport=1 ldapprefix=\"uid=\"");
	char why[256];
	ck_assert_int_eq(ldapauth_check(o, "bob", "", 1000, why, sizeof(why)), LDAPAUTH_DENIED);
	ck_assert_str_eq(why, "empty password");
	ck_assert_int_eq(ldapauth_check(o, "*", "pw", 1000, why, sizeof(why)), LDAPAUTH_DENIED);
	ck_assert_str_eq(why, "invalid character in user name for LDAP authentication");
	ck_assert_int_eq(ldapauth_check(o, "bob", "pw", 1000, why, sizeof(why)),
			 LDAPAUTH_UNAVAILABLE); /* nothing listens on port 1 */
	ck_assert_msg(strstr(why, "Can't contact LDAP server"), "%s", why);
	ldapauth_free(o);
}
END_TEST

static Suite *ldapauth_suite(void)
{
	Suite *s = suite_create("ldapauth");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_simple_bind_options);
	tcase_add_test(tc, test_search_bind_options);
	tcase_add_test(tc, test_option_errors);
	tcase_add_test(tc, test_user_names);
	tcase_add_test(tc, test_filter_escaping);
	tcase_add_test(tc, test_check_without_network);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	ldapauth_init();
	return unit_run(ldapauth_suite());
}
