/* Unit tests of server_connect_error: what a waiting client is told of a failed connect,
 * from libpq 15's messages (captured with PQERRORS_VERBOSE): the server's SQLSTATE and
 * message when it refused, libpq's reason otherwise, never a host, address, port or
 * socket path. */
#include <check.h>

#include "unit.h"
#include <string.h>

#include "server.h"

/* Runs server_connect_error on MSG and checks the SQLSTATE and the text told. */
static void told(const char *msg, const char *want_state, const char *want)
{
	char state[6] = "?????", text[256];
	server_connect_error(msg, state, text, sizeof(text));
	ck_assert_str_eq(state, want_state);
	ck_assert_str_eq(text, want);
}

START_TEST(test_server_errors)
{
	told("connection to server at \"127.0.0.1\", port 55261 failed: FATAL:  28P01: password "
	     "authentication failed for user \"app\"\nLOCATION:  auth_failed, auth.c:334\n",
	     "28P01", "password authentication failed for user \"app\"");
	told("connection to server at \"db.example\" (10.1.2.3), port 5432 failed: FATAL:  3D000: "
	     "database \"nope\" does not exist\nLOCATION:  InitPostgres, postinit.c:948\n",
	     "3D000", "database \"nope\" does not exist");
	told("connection to server on socket \"/run/postgresql/.s.PGSQL.5432\" failed: FATAL:  "
	     "53300: sorry, too many clients already\n",
	     "53300", "sorry, too many clients already");
	/* a localised severity */
	told("connection to server at \"h\", port 1 failed: FATAL:  57P03: le système de bases de "
	     "données se lance\n",
	     "57P03", "le système de bases de données se lance");
}
END_TEST

START_TEST(test_local_reasons)
{
	told("connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the "
	     "server running on that host and accepting TCP/IP connections?\n",
	     "08006", "Connection refused");
	told("connection to server on socket \"/tmp/nonexist/.s.PGSQL.1\" failed: No such file or "
	     "directory\n\tIs the server running locally and accepting connections on that "
	     "socket?\n",
	     "08006", "No such file or directory");
	told("connection to server at \"10.0.0.9\", port 5432 failed: timeout expired\n", "08006",
	     "timeout expired");
	told("connection to server at \"h\", port 5432 failed: SSL error: certificate verify "
	     "failed\n",
	     "08006", "SSL error: certificate verify failed");
	/* several hosts tried: the last attempt counts */
	told("connection to server at \"127.0.0.1\", port 1 failed: FATAL:  28P01: password "
	     "authentication failed for user \"app\"\nconnection to server at \"localhost\" "
	     "(127.0.0.1), port 2 failed: Connection refused\n\tIs the server running on that host "
	     "and accepting TCP/IP connections?\n",
	     "08006", "Connection refused");
}
END_TEST

START_TEST(test_names_withheld)
{
	/* a reason that quotes a name (host, file), or no attempt line at all: nothing told */
	told("connection to server at \"127.0.0.1\", port 5432 failed: server certificate for "
	     "\"db1\" does not match host name \"127.0.0.1\"\n",
	     "08006", "");
	told("could not translate host name \"no.such.host.invalid\" to address: Name or service "
	     "not known\n",
	     "08006", "");
	told("", "08006", "");
	told("connection to server at \"h\", port 1 failed", "08006", "");
	/* not the verbose server form: "ERROR:  28P01 x" lacks the ": " after the code */
	told("connection to server at \"h\", port 1 failed: FATAL:  28P01 x\n", "08006",
	     "FATAL:  28P01 x");
	/* cut to the buffer */
	char state[6], text[8];
	server_connect_error("connection to server at \"h\", port 1 failed: Connection refused",
			     state, text, sizeof(text));
	ck_assert_str_eq(text, "Connect");
}
END_TEST

static Suite *server_suite(void)
{
	Suite *s = suite_create("server");
	TCase *tc = tcase_create("connect_error");
	tcase_add_test(tc, test_server_errors);
	tcase_add_test(tc, test_local_reasons);
	tcase_add_test(tc, test_names_withheld);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return unit_run(server_suite()); }
