/* Unit tests of sessstate: what a statement text may do to its session, from a table of
 * texts (every keyword form, cases, comments and quotes between and around keywords,
 * several statements, unterminated quotes, NULs), the same texts changed in ways that
 * must not change the answer (case, a ';' after, a comment before), the bytes past LEN
 * never read, and the effects' names. */
#include <check.h>

#include "unit.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sessstate.h"

#define P SESS_PREPARE
#define H SESS_HOLD
#define A SESS_ADVISORY
#define T SESS_TEMP
#define L SESS_LOAD
#define S SESS_SETTING
#define U SESS_UNDO
#define ALL (P | H | A | T | L | S | U)

struct scase {
	const char *text;
	size_t len;
	uint32_t want;
};

/* The length of a literal, NULs inside it counted. */
#define C(text, want) {text, sizeof(text) - 1, want}

static const struct scase cases[] = {
	/* the common case: nothing */
	C("SELECT abalance FROM pgbench_accounts WHERE aid = $1", 0),
	C("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2", 0),
	C("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, "
	  "CURRENT_TIMESTAMP)",
	  0),
	C("BEGIN", 0),
	C("COMMIT", 0),
	C("", 0),
	C(" ;; ;\n", 0),
	C("EXECUTE p(1)", 0),
	C("INSERT INTO temp VALUES (1)", 0),
	C("SELECT x AS temp FROM s", 0),
	/* PREPARE */
	C("PREPARE p AS SELECT 1", P),
	C("prepare p(int, text) as select $1", P),
	C("PrEpArE \"transaction\" AS SELECT 1", P),
	C("PREPARE transaction AS SELECT 1", P), /* a statement named transaction */
	C("PREPARE /* c */ p AS SELECT 1", P),
	C("PREPARE\0p AS SELECT 1", P),
	C("PREPARE TRANSACTION 'a'", 0),
	C("prepare transaction 'a'", 0),
	C("PREPARE -- c\n TRANSACTION /* c */ 'a'", 0),
	C("PREPARE TRANSACTION E'a\\'b'", 0),
	C("PREPARE TRANSACTION $t$a$t$", 0),
	C("PREPARE", 0),
	C("PREPARE;", 0),
	C("\"prepare\" p AS SELECT 1", 0),
	C("\"PREPARE\" p AS SELECT 1", 0),
	C("SELECT 'PREPARE p AS SELECT 1'", 0),
	C("SELECT 1 AS prepare", 0),
	C("\0PREPARE p AS SELECT 1", 0),
	/* statements split at ';' and nowhere else */
	C("SELECT 1; PREPARE p AS SELECT 1", P),
	C("SELECT 1;PREPARE p AS SELECT 1;", P),
	C("SELECT 1\0; PREPARE p AS SELECT 1", P),
	C("SELECT '\0'; PREPARE p AS SELECT 1", P),
	C("SELECT 1 -- ; PREPARE p AS SELECT 1", 0),
	C("SELECT 1 -- x\n; PREPARE p AS SELECT 1", P),
	C("SELECT 1 -- x\r; PREPARE p AS SELECT 1", P),
	C("SELECT 1 +-- x\n; PREPARE p AS SELECT 1", P),
	C("SELECT $$ ; PREPARE $$", 0),
	C("$$ PREPARE $$", 0),
	C("SELECT $a$ ; PREPARE p AS SELECT 1 $a$", 0),
	C("SELECT $a$ $b$ ; $ab$ $a $a$; PREPARE p AS SELECT 1", P),
	C("SELECT $a$ x $A$; PREPARE p AS SELECT 1", 0), /* tags keep their case */
	C("SELECT $_1$;$_1$; PREPARE p AS SELECT 1", P),
	C("SELECT $1; PREPARE p AS SELECT 1", P),        /* a parameter */
	C("SELECT $12$; PREPARE p AS SELECT 1", P),      /* $12 then a lone $ */
	C("SELECT a$$b; PREPARE p AS SELECT 1", P),      /* a word holding $$ */
	C("SELECT $a; PREPARE p AS SELECT 1", P),        /* a lone $ */
	C("SELECT 1$$;PREPARE p AS SELECT 1$$", 0),      /* a number, then a dollar quote */
	C("SELECT 'it''s; PREPARE p AS SELECT 1'", 0),
	C("SELECT '\\'; PREPARE p AS SELECT 1", P),
	C("SELECT E'\\'; PREPARE p AS SELECT 1; '", 0),
	C("SELECT e'\\\\'; PREPARE p AS SELECT 1", P),
	C("SELECT E'it''s; PREPARE p AS SELECT 1'", 0),
	C("SELECT the'\\'; PREPARE p AS SELECT 1; --'", P), /* 'the' is no E */
	C("SELECT 1e'\\'; PREPARE p AS SELECT 1; --'", 0),  /* 1, then E'...' */
	C("SELECT U&'\\'; PREPARE p AS SELECT 1", P),
	C("SELECT \"a\"\"; PREPARE p AS SELECT 1\"", 0),
	C("SELECT /* /* */ ; PREPARE p AS SELECT 1 */ 1", 0), /* nested */
	C("SELECT /* /* */ */; PREPARE p AS SELECT 1", P),
	C("SELECT /**/; PREPARE p AS SELECT 1", P),
	C("SELECT /*/ ; PREPARE p AS SELECT 1 */ 1", 0),
	C("  \n\t/* lead */ -- line\n PREPARE p AS SELECT 1", P),
	/* unterminated: the scan ends, what was seen stays */
	C("SELECT 'x; PREPARE p AS SELECT 1", 0),
	C("SELECT \"x; PREPARE p AS SELECT 1", 0),
	C("SELECT E'x\\'; PREPARE p AS SELECT 1", 0),
	C("SELECT E'\\", 0),
	C("SELECT $q$ x; PREPARE p AS SELECT 1", 0),
	C("SELECT $$", 0),
	C("SELECT /* x; PREPARE p AS SELECT 1", 0),
	C("SELECT /* /* */ x; PREPARE p AS SELECT 1", 0),
	C("PREPARE p AS SELECT 'x", P),
	C("LOAD 'x'; SELECT \"", L),
	/* DECLARE */
	C("DECLARE c CURSOR WITH HOLD FOR SELECT 1", H),
	C("declare c binary insensitive no scroll cursor with hold for select 1", H),
	C("DECLARE c ASENSITIVE SCROLL CURSOR WITH\nHOLD FOR SELECT 1", H),
	C("DECLARE c CURSOR WITH /* x */ HOLD FOR SELECT 1", H),
	C("DECLARE hold CURSOR With Hold FOR SELECT 1", H),
	C("DECLARE \"c\" CURSOR WITH HOLD FOR SELECT 1", H),
	C("DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1", 0),
	C("DECLARE c CURSOR FOR SELECT 1", 0),
	C("DECLARE c CURSOR FOR WITH hold AS (SELECT 1) SELECT * FROM hold", 0),
	C("DECLARE c CURSOR WITH \"hold\" FOR SELECT 1", 0),
	/* SET, RESET, set_config */
	C("SET search_path = x", S),
	C("set TimeZone to 'UTC'", S),
	C("SET TIME ZONE 'UTC'", S),
	C("SET SESSION work_mem = '1MB'", S),
	C("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", S),
	C("SET ROLE r", S),
	C("SET SESSION AUTHORIZATION u", S),
	C("SET local_preload_libraries = ''", S),
	C("SET \"local\" = 1", S),
	C("SET LOCAL x = 1", 0),
	C("set local statement_timeout = 0", 0),
	C("Set Local x To 1", 0),
	C("SET /* c */ LOCAL x = 1", 0),
	C("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", 0),
	C("SET CONSTRAINTS ALL DEFERRED", 0),
	C("SET", 0),
	C("UPDATE t SET x = 1", 0),
	C("RESET ALL", S),
	C("reset role", S),
	C("RESET SESSION AUTHORIZATION", S),
	C("RESET work_mem", S),
	C("SELECT set_config('a','b',false)", S),
	C("select pg_catalog.set_config('a', 'b', false)", S),
	C("SELECT \"set_config\"('a','b',false)", S),
	C("SELECT SET_CONFIG('a','b',false)", S),
	C("SELECT \"SET_CONFIG\"('a','b',false)", 0),
	C("SELECT my_set_config(1)", 0),
	C("SELECT set_configs(1)", 0),
	C("SELECT 'set_config(1)'", 0),
	/* DISCARD, DEALLOCATE, CLOSE, DROP */
	C("DISCARD ALL", U | S),
	C("discard all;", U | S),
	C("DISCARD TEMP", U),
	C("DISCARD TEMPORARY", U),
	C("DISCARD PLANS", U),
	C("DISCARD SEQUENCES", U),
	C("DEALLOCATE p", U),
	C("deallocate all", U),
	C("DEALLOCATE PREPARE p", U),
	C("CLOSE c", U),
	C("CLOSE ALL", U),
	C("DROP TABLE t", U),
	C("SELECT 1 AS drop", 0),
	/* advisory locks */
	C("SELECT pg_advisory_lock(1)", A),
	C("select pg_catalog.pg_advisory_lock(1)", A),
	C("SELECT \"pg_advisory_lock\"(1)", A),
	C("SELECT pg_catalog.\"pg_try_advisory_lock_shared\"(1)", A),
	C("SELECT PG_TRY_ADVISORY_LOCK(1)", A),
	C("SELECT pg_advisory_lock_shared(1)", A),
	C("SELECT pg_try_advisory_lock(1, 2)", A),
	C("SELECT pg_advisory_lock (1)", A),
	C("INSERT INTO t SELECT pg_advisory_lock(id) FROM s", A),
	C("DECLARE c CURSOR FOR SELECT pg_advisory_lock(1)", A),
	C("SELECT pg_advisory_xact_lock(1)", 0),
	C("SELECT pg_try_advisory_xact_lock(1)", 0),
	C("SELECT pg_advisory_xact_lock_shared(1)", 0),
	C("SELECT pg_try_advisory_xact_lock_shared(1)", 0),
	C("SELECT my_pg_advisory_lock(1)", 0),
	C("SELECT pg_advisory_lock_x(1)", 0),
	C("SELECT pg_advisory_lock$(1)", 0),
	C("SELECT \"PG_ADVISORY_LOCK\"(1)", 0),
	C("SELECT \"pg_advisory_lock \"(1)", 0),
	C("SELECT 'pg_advisory_lock(1)'", 0),
	C("SELECT 1 -- pg_advisory_lock(1)", 0),
	C("SELECT /* pg_advisory_lock(1) */ 1", 0),
	C("SELECT $$pg_advisory_lock(1)$$", 0),
	C("DO $$BEGIN PERFORM pg_advisory_lock(1); END$$", 0), /* a DO block: not seen */
	C("SELECT pg_advisory_unlock(1)", U),
	C("SELECT pg_advisory_unlock_shared(1)", U),
	C("SELECT pg_advisory_unlock_all()", U),
	C("SELECT pg_advisory_lock(1), pg_advisory_unlock(1)", A | U),
	/* temporary tables */
	C("CREATE TEMP TABLE t (a int)", T),
	C("create temporary table t as select 1", T),
	C("CREATE GLOBAL TEMPORARY TABLE t (a int)", T),
	C("CREATE LOCAL TEMP TABLE t (a int)", T),
	C("CREATE TEMP VIEW v AS SELECT 1", T),
	C("CREATE OR REPLACE TEMP VIEW v AS SELECT 1", T),
	C("CREATE TEMPORARY SEQUENCE s", T),
	C("CREATE TEMP RECURSIVE VIEW v(a) AS SELECT 1", T),
	C("CREATE /* x */ TEMP TABLE t (a int)", T),
	C("CREATE TEMP TABLE t (a int) ON COMMIT DROP", T),
	C("CREATE TABLE pg_temp.t (a int)", T),
	C("CREATE TABLE IF NOT EXISTS pg_temp.t (a int)", T),
	C("CREATE UNLOGGED TABLE PG_TEMP.t (a int)", T),
	C("CREATE OR REPLACE FUNCTION pg_temp.f() RETURNS int AS 'select 1' LANGUAGE sql", T),
	C("CREATE VIEW \"pg_temp\".v AS SELECT 1", T),
	C("CREATE TABLE pg_temp_3.t (a int)", T),
	C("CREATE TABLE t (a int)", 0),
	C("CREATE TABLE temp (a int)", 0),
	C("CREATE TABLE pg_temporary.t (a int)", 0),
	C("CREATE TABLE pg_temp_x.t (a int)", 0),
	C("CREATE TABLE pg_temp_.t (a int)", 0),
	C("CREATE TABLE \"PG_TEMP\".t (a int)", 0),
	C("CREATE TABLE t AS SELECT 'pg_temp.x'", 0),
	C("CREATE INDEX ON t (a)", 0),
	C("CREATE FUNCTION f() RETURNS void AS $$ CREATE TEMP TABLE x (); $$ LANGUAGE sql", 0),
	C("SELECT pg_temp.f()", 0),
	C("SELECT 1 INTO TEMP t", T),
	C("select * into temporary table t from s", T),
	C("SELECT * INTO /* x */ TEMP t FROM s", T),
	C("SELECT * INTO UNLOGGED TABLE pg_temp.t FROM s", T),
	C("WITH a AS (SELECT 1) SELECT * INTO TEMP t FROM a", T),
	C("SELECT * INTO t FROM s", 0),
	C("SELECT * INTO TABLE t FROM s", 0),
	C("SELECT * INTO t FROM temp", 0),
	C("SELECT 'INTO TEMP t'", 0),
	C("SELECT \"into\" temp", 0),
	/* LOAD */
	C("LOAD 'auto_explain'", L),
	C("load '$libdir/plugins/x'", L),
	C("SELECT 'LOAD'", 0),
	/* several statements */
	C("SET x = 1; SELECT pg_advisory_lock(1); LOAD 'a'", S | A | L),
	C("BEGIN; CREATE TEMP TABLE t(a int); COMMIT", T),
	C("PREPARE a AS SELECT 1;DECLARE c CURSOR WITH HOLD FOR SELECT 1;DISCARD ALL", P | H | U | S),
};

/* TEXT (LEN bytes) in a buffer of its size exactly, so that ASan sees a read past it. */
static uint32_t scan(const char *text, size_t len)
{
	char *copy = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, text, len);
	uint32_t got = sess_scan(copy, len);
	free(copy);
	return got;
}

/* A printable form of TEXT for failure messages. */
static const char *shown(const char *text, size_t len)
{
	static char out[512];
	size_t o = 0;
	for (size_t i = 0; i < len && o + 5 < sizeof(out); i++) {
		uint8_t c = (uint8_t)text[i];
		if (c >= 0x20 && c < 0x7f)
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, sizeof(out) - o, "\\x%02x", c);
	}
	out[o] = 0;
	return out;
}

START_TEST(test_cases)
{
	const struct scase *c = &cases[_i];
	uint32_t got = scan(c->text, c->len);
	ck_assert_msg(got == c->want, "%s: 0x%x, want 0x%x", shown(c->text, c->len), got, c->want);
	ck_assert_uint_eq(got & ~(uint32_t)ALL, 0);
}
END_TEST

/* The case's text changed by CHANGE (into BUF, at most CAP bytes): its length. */
static size_t changed(const struct scase *c, int change, char *buf, size_t cap)
{
	static const char before[] = " /* c */ ", after[] = ";\n\t ";
	size_t n = 0;
	ck_assert_uint_lt(c->len + sizeof(before) + sizeof(after), cap);
	if (change == 2) {
		memcpy(buf, before, sizeof(before) - 1);
		n = sizeof(before) - 1;
	}
	for (size_t i = 0; i < c->len; i++) {
		char ch = c->text[i];
		if (change == 0 && ch >= 'a' && ch <= 'z')
			ch = (char)(ch - 'a' + 'A');
		if (change == 1 && ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		buf[n++] = ch;
	}
	if (change == 3) {
		memcpy(buf + n, after, sizeof(after) - 1);
		n += sizeof(after) - 1;
	}
	return n;
}

START_TEST(test_unchanged)
{
	/* upper case, lower case (texts without quoted names or dollar quotes, which keep
	 * their case), a comment before, a ';' and white space after: the same answer */
	static const char *const what[] = {"upper case", "lower case", "a comment before",
					   "';' after"};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const struct scase *c = &cases[k];
		for (int change = 0; change < 4; change++) {
			if (change < 2 &&
			    (memchr(c->text, '"', c->len) || memchr(c->text, '$', c->len)))
				continue;
			char buf[512];
			size_t n = changed(c, change, buf, sizeof(buf));
			uint32_t got = scan(buf, n);
			ck_assert_msg(got == c->want, "%s (%s): 0x%x, want 0x%x",
				      shown(c->text, c->len), what[change], got, c->want);
		}
	}
}
END_TEST

START_TEST(test_len_bounds)
{
	/* nothing past LEN is read */
	static const char prep[] = "PREPARE p AS SELECT 1";
	ck_assert_uint_eq(sess_scan(prep, 7), 0);
	ck_assert_uint_eq(sess_scan(prep, 9), P);
	static const char two[] = "SELECT 1; LOAD 'x'";
	ck_assert_uint_eq(sess_scan(two, 9), 0);
	ck_assert_uint_eq(sess_scan(two, 14), L);
	static const char lock[] = "SELECT pg_advisory_lock_shared(1)";
	ck_assert_uint_eq(sess_scan(lock, 23), A);
	ck_assert_uint_eq(sess_scan(lock, 22), 0);
	static const char quoted[] = "SELECT '1'; SET x = 1";
	ck_assert_uint_eq(sess_scan(quoted, 9), 0); /* the quote is unterminated */
	ck_assert_uint_eq(sess_scan(quoted, 17), S);
	static const char dollar[] = "SELECT $a$ $a$; SET x = 1";
	ck_assert_uint_eq(sess_scan(dollar, 13), 0);
	ck_assert_uint_eq(sess_scan(dollar, 21), S);
	static const char comment[] = "/* */SET x";
	ck_assert_uint_eq(sess_scan(comment, 4), 0);
	ck_assert_uint_eq(sess_scan(comment, 10), S);
	ck_assert_uint_eq(sess_scan(NULL, 0), 0);
}
END_TEST

/* sess_scan's quick look (sessstate.c): TEXT in a buffer of its size exactly, with AVX2
 * (when the processor has it) and without: both the same answer, "nothing" only when the
 * full scan finds nothing; sess_scan's answer the full scan's. Returns the quick look's. */
static bool quick(const char *text, size_t len)
{
	char *copy = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, text, len);
	bool clean = sess_scan_quick(copy, len, true);
	ck_assert_msg(clean == sess_scan_quick(copy, len, false), "%s: quick looks disagree",
		      shown(text, len));
	uint32_t full = sess_scan_full(copy, len);
	ck_assert_msg(!clean || full == 0, "%s: quick says nothing, full 0x%x", shown(text, len),
		      full);
	ck_assert_uint_eq(sess_scan(copy, len), full);
	free(copy);
	return clean;
}

#define QUICK(lit) quick(lit, sizeof(lit) - 1)

START_TEST(test_quick_common)
{
	/* what clients send most goes no further than the quick look */
	ck_assert(QUICK("SELECT abalance FROM pgbench_accounts WHERE aid = $1;"));
	ck_assert(QUICK("SELECT abalance FROM pgbench_accounts WHERE aid = $1;\0"));
	ck_assert(QUICK("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;"));
	ck_assert(QUICK("UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;"));
	ck_assert(QUICK("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, "
			"$3, $4, CURRENT_TIMESTAMP);"));
	ck_assert(QUICK("BEGIN;"));
	ck_assert(QUICK("END;"));
	ck_assert(QUICK("COMMIT"));
	ck_assert(QUICK("ROLLBACK"));
	ck_assert(QUICK("SELECT 1"));
	ck_assert(QUICK("  select now()  ;  \n"));
	ck_assert(QUICK("SELECT o.id, c.name, count(*) AS n, coalesce(sum(l.qty), 0) AS total, "
			"now() - o.created_at AS age FROM orders o JOIN customers c ON c.id = "
			"o.customer_id LEFT JOIN order_lines l ON l.order_id = o.id WHERE o.status "
			"= $1 GROUP BY o.id, c.name ORDER BY o.created_at DESC LIMIT 50"));
	ck_assert(QUICK("INSERT INTO temp VALUES (1)")); /* "temp" matters after SELECT only */
	ck_assert(QUICK("(SELECT 1)"));
	ck_assert(QUICK("'x'"));
	ck_assert(QUICK(""));
	ck_assert(QUICK(" \t\n"));
	ck_assert(QUICK(";"));
}
END_TEST

START_TEST(test_quick_doubtful)
{
	/* anything that may matter is left to the full scan, which answers */
	ck_assert(!QUICK("INSERT INTO t VALUES (pg_advisory_lock(1))"));
	ck_assert_uint_eq(sess_scan("INSERT INTO t VALUES (pg_advisory_lock(1))", 42), A);
	ck_assert(!QUICK("select x from t where a = 'it;s'"));
	ck_assert(!QUICK("SELECT 1;;"));
	ck_assert(!QUICK("SELECT 1; SET x = 1"));
	ck_assert(!QUICK("SELECT 1 ;\0SET x = 1"));
	ck_assert(!QUICK("a;set x"));
	ck_assert(!QUICK("set"));
	ck_assert(!QUICK("  set"));
	ck_assert(!QUICK("LOAD"));
	ck_assert(!QUICK("/* c */ SELECT 1"));
	ck_assert(!QUICK("-- c\nSELECT 1"));
	ck_assert(!QUICK("SELECT x INTO TEMP t FROM s"));
	ck_assert(!QUICK("WITH a AS (SELECT 1) SELECT * INTO pg_temp.t FROM a"));
	ck_assert(!QUICK("SELECT set_config('a', 'b', false)"));
	ck_assert(!QUICK("SELECT \"pg_advisory_unlock_all\"()"));
	ck_assert(!QUICK("SELECT PG_TRY_ADVISORY_LOCK_SHARED(1)"));
	ck_assert(!QUICK("SELECT pg_advisory_lock FROM t")); /* any word of that name */
	static const char *const first[] = {"SET", "RESET", "PREPARE", "DECLARE", "DISCARD",
					    "DEALLOCATE", "CLOSE", "DROP", "LOAD", "CREATE"};
	for (size_t k = 0; k < sizeof(first) / sizeof(first[0]); k++) {
		char buf[64];
		int n = snprintf(buf, sizeof(buf), "%s x y z w", first[k]);
		ck_assert_msg(!quick(buf, (size_t)n), "%s", buf);
	}
}
END_TEST

START_TEST(test_quick_offsets)
{
	/* every needle at every offset (across the pairs, the 32-byte blocks and the
	 * shorter copies), in texts of every length up to 80: the quick look says nothing
	 * wrong (quick() checks it) and never "nothing" where there is something */
	static const struct {
		const char *head, *needle, *tail;
		uint32_t want;
	} forms[] = {
	    {"SELECT ", "pg_advisory_lock", "(1)", A},
	    {"SELECT ", "pg_try_advisory_lock_shared", "(1)", A},
	    {"SELECT ", "pg_advisory_unlock_all", "()", U},
	    {"UPDATE t SET a = ", "set_config", "('a', 'b', false)", S},
	    {"INSERT INTO t VALUES (", "pg_advisory_lock", "(1))", A},
	    {"SELECT x INTO ", "temp", " t", T},
	    {"SELECT x INTO ", "TEMPORARY", " t", T},
	    {"WITH a AS (SELECT 1) SELECT * INTO ", "pg_temp", ".t FROM a", T},
	    {"SELECT 1", ";", " SET x = 1", S},
	    {"SELECT 1", ";", "LOAD 'a'", L},
	};
	for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
		for (size_t pad = 0; pad <= 40; pad++) {
			char buf[160];
			int n = snprintf(buf, sizeof(buf), "%s%*s%s%s", forms[f].head, (int)pad, "",
					 forms[f].needle, forms[f].tail);
			ck_assert_int_lt(n, (int)sizeof(buf));
			ck_assert_msg(!quick(buf, (size_t)n), "%s", buf);
			ck_assert_uint_eq(sess_scan(buf, (size_t)n), forms[f].want);
		}
	}
	/* '(' at 0, 15, 16, 31 and "pg_advisory_lock" before it */
	static const size_t paren[] = {0, 15, 16, 31, 32, 33};
	for (size_t k = 0; k < sizeof(paren) / sizeof(paren[0]); k++) {
		char buf[96];
		memset(buf, ' ', sizeof(buf));
		memcpy(buf, "SELECT", 6);
		size_t at = paren[k];
		if (at >= 6 + 1 + 16) {
			memcpy(buf + at - 16, "pg_advisory_lock", 16);
			buf[at] = '(';
			memcpy(buf + at + 1, "1)", 2);
			ck_assert(!quick(buf, at + 3));
			ck_assert_uint_eq(sess_scan(buf, at + 3), A);
		}
		buf[at] = '(';
		ck_assert(!quick(buf, at + 3) || sess_scan_full(buf, at + 3) == 0);
	}
	/* plain texts of every length, ';' and white space after or not */
	for (size_t len = 0; len <= 80; len++) {
		char buf[96];
		static const char body[] = "SELECT abalance FROM pgbench_accounts WHERE aid = 1 "
					   "AND bid = 2 OR tid = 3 ORDER BY aid LIMIT 9";
		memcpy(buf, body, len);
		ck_assert_msg(quick(buf, len), "%zu: %s", len, shown(buf, len));
		buf[len] = ';';
		ck_assert_msg(quick(buf, len + 1) || len == 0, "%zu;", len);
		buf[len + 1] = ';'; /* ";;": a ';' last once one is dropped, odd lengths too */
		ck_assert_msg(!quick(buf, len + 2), "%zu;;", len);
		if (len >= 2 && buf[len - 1] != ' ') {
			buf[len - 2] = ';'; /* a ';' then one more byte: maybe a statement */
			ck_assert_msg(!quick(buf, len), "%zu: %s", len, shown(buf, len));
		}
	}
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(sess_effect_name(SESS_PREPARE), "prepare");
	ck_assert_str_eq(sess_effect_name(SESS_HOLD), "hold_cursor");
	ck_assert_str_eq(sess_effect_name(SESS_ADVISORY), "advisory_lock");
	ck_assert_str_eq(sess_effect_name(SESS_TEMP), "temp_table");
	ck_assert_str_eq(sess_effect_name(SESS_LOAD), "load");
	ck_assert_str_eq(sess_effect_name(SESS_SETTING), "setting");
	ck_assert_str_eq(sess_effect_name(SESS_UNDO), "undo");
	ck_assert_str_eq(sess_effect_name(0), "?");
	ck_assert_str_eq(sess_effect_name(SESS_PREPARE | SESS_HOLD), "?");
	ck_assert_str_eq(sess_effect_name(1u << 7), "?");
	ck_assert_uint_eq(SESS_PINS & (SESS_SETTING | SESS_UNDO), 0);
}
END_TEST

static Suite *sessstate_suite(void)
{
	Suite *s = suite_create("sessstate");
	TCase *tc = tcase_create("scan");
	tcase_add_loop_test(tc, test_cases, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, test_unchanged);
	tcase_add_test(tc, test_len_bounds);
	tcase_add_test(tc, test_quick_common);
	tcase_add_test(tc, test_quick_doubtful);
	tcase_add_test(tc, test_quick_offsets);
	tcase_add_test(tc, test_names);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return unit_run(sessstate_suite()); }
