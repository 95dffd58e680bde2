/* Unit tests of log.c's one funnel: whatever a message quotes, it is written as one line
 * with its control characters escaped (a newline as \n, others as \xNN), UTF-8 kept. The
 * lines are read back from a logfile (stderr gets them as well). */
#include <check.h>

#include "unit.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Logs with a logfile at LOGL_DEBUG, runs LOG_LINES, then returns the file's contents
 * (malloc'd) and its number of lines in *NLINES. */
static char *logged(void (*log_lines)(void), int *nlines)
{
	char path[] = "/tmp/pgcoro-test-log-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert(log_init(LOGL_DEBUG, path, NULL, NULL));
	log_lines();
	log_close();
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	unlink(path);
	*nlines = 0;
	for (size_t i = 0; i < n; i++)
		*nlines += buf[i] == '\n';
	return strdup(buf);
}

static void forged(void)
{
	log_info("client (%s@%s): closing", "x\nFAKE LINE", "db\r\nFAKE DB");
	log_warning("app %s", "a\tb\001c\037d\177e");
	log_debug("utf-8 %s stays", "\xc3\xa4\xe2\x82\xac");
	log_error("%s", "ends with newlines\n\n");
}

START_TEST(test_controls_escaped)
{
	int nlines;
	char *text = logged(forged, &nlines);
	ck_assert_int_eq(nlines, 4);
	ck_assert_ptr_null(strstr(text, "\nFAKE"));
	ck_assert_ptr_nonnull(
	    strstr(text, " LOG client (x\\nFAKE LINE@db\\x0d\\nFAKE DB): closing\n"));
	ck_assert_ptr_nonnull(strstr(text, " WARNING app a\\x09b\\x01c\\x1fd\\x7fe\n"));
	ck_assert_ptr_nonnull(strstr(text, " DEBUG utf-8 \xc3\xa4\xe2\x82\xac stays\n"));
	/* a message's trailing newlines end its line: no \n shown, no empty line */
	ck_assert_ptr_nonnull(strstr(text, " ERROR ends with newlines\n"));
	free(text);
}
END_TEST

static void longest(void)
{
	char msg[4096];
	memset(msg, '\x01', sizeof(msg) - 1); /* each byte grows to four: the worst case */
	msg[sizeof(msg) - 1] = '\0';
	log_info("%s", msg);
	for (size_t i = 0; i < sizeof(msg) - 1; i++)
		msg[i] = i % 2 ? '\n' : 'x'; /* cut after 2047 bytes: an 'x' */
	log_info("%s", msg);
}

START_TEST(test_longest_message)
{
	int nlines;
	char *text = logged(longest, &nlines);
	ck_assert_int_eq(nlines, 2);
	/* the message is cut at 2047 bytes before escaping, then every byte is kept */
	const char *first = strstr(text, " LOG \\x01");
	ck_assert_ptr_nonnull(first);
	ck_assert_uint_eq(strcspn(first + 5, "\n"), 2047 * 4);
	const char *second = strstr(first, " LOG x\\n");
	ck_assert_ptr_nonnull(second);
	ck_assert_uint_eq(strcspn(second + 5, "\n"), 1024 + 1023 * 2);
	free(text);
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_controls_escaped);
	tcase_add_test(tc, test_longest_message);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(log_suite());
}
