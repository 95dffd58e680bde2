/* A libpq client for the integration tests: exercises the extended protocol through a
 * pooler (binary parameters and results, prepared statements, portals, single-row mode,
 * empty queries, notices, errors, pipeline mode, a large bytea round trip).
 * Usage: libpq_client CONNINFO [LARGE_MB]. Prints "ok" and exits 0, or prints every check
 * that failed and exits 1. Frees everything, so it is clean under LeakSanitizer. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#define INT4OID 23
#define INT8OID 20
#define TEXTOID 25
#define BYTEAOID 17

static int failures;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("FAIL: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	failures++;
}

/* True when RES has STATUS; otherwise reports WHAT with the error and returns false. */
static bool expect_status(PGresult *res, ExecStatusType status, const char *what)
{
	if (res != NULL && PQresultStatus(res) == status)
		return true;
	fail("%s: expected %s, got %s: %s", what, PQresStatus(status),
	     res ? PQresStatus(PQresultStatus(res)) : "(null result)",
	     res ? PQresultErrorMessage(res) : "");
	return false;
}

static uint64_t get_be64(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | u[i];
	return v;
}

static uint32_t get_be32(const char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return ntohl(v);
}

static void put_be64(char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (char)(v & 0xff);
		v >>= 8;
	}
}

/* Binary parameters of every kind and binary results. */
static void check_binary_params(PGconn *conn)
{
	uint32_t i4 = htonl((uint32_t)-123456);
	char i8[8];
	const char text[] = "h\xc3\xa9llo w\xc3\xb6rld";
	const char bytea[] = { 'a', 0, 'b', 0, 0, (char)0xff, 'c' };
	Oid types[5] = { INT4OID, INT8OID, TEXTOID, BYTEAOID, TEXTOID };
	const char *values[5];
	int lengths[5];
	int formats[5] = { 1, 1, 1, 1, 1 };
	PGresult *res;

	put_be64(i8, (uint64_t)-9000000000123LL);
	values[0] = (const char *)&i4;
	lengths[0] = 4;
	values[1] = i8;
	lengths[1] = 8;
	values[2] = text;
	lengths[2] = (int)strlen(text);
	values[3] = bytea;
	lengths[3] = (int)sizeof(bytea);
	values[4] = NULL;
	lengths[4] = 0;

	res = PQexecParams(conn, "SELECT $1::int4, $2::int8, $3::text, $4::bytea, $5::text, 42::int4",
			   5, types, values, lengths, formats, 1);
	if (expect_status(res, PGRES_TUPLES_OK, "binary params")) {
		if (PQntuples(res) != 1 || PQnfields(res) != 6) {
			fail("binary params: shape %dx%d", PQntuples(res), PQnfields(res));
		} else {
			for (int c = 0; c < 6; c++)
				if (PQfformat(res, c) != 1)
					fail("binary params: column %d format %d", c, PQfformat(res, c));
			if (PQftype(res, 0) != INT4OID || PQftype(res, 1) != INT8OID ||
			    PQftype(res, 2) != TEXTOID || PQftype(res, 3) != BYTEAOID)
				fail("binary params: column types");
			if (PQgetlength(res, 0, 0) != 4 || (int32_t)get_be32(PQgetvalue(res, 0, 0)) != -123456)
				fail("binary params: int4 value");
			if (PQgetlength(res, 0, 1) != 8 ||
			    (int64_t)get_be64(PQgetvalue(res, 0, 1)) != -9000000000123LL)
				fail("binary params: int8 value");
			if (PQgetlength(res, 0, 2) != (int)strlen(text) ||
			    memcmp(PQgetvalue(res, 0, 2), text, strlen(text)) != 0)
				fail("binary params: text value");
			if (PQgetlength(res, 0, 3) != (int)sizeof(bytea) ||
			    memcmp(PQgetvalue(res, 0, 3), bytea, sizeof(bytea)) != 0)
				fail("binary params: bytea value with zero bytes");
			if (!PQgetisnull(res, 0, 4))
				fail("binary params: NULL expected");
			if (PQgetisnull(res, 0, 5) || (int32_t)get_be32(PQgetvalue(res, 0, 5)) != 42)
				fail("binary params: constant int4");
		}
	}
	PQclear(res);

	/* Text parameters, text results, through the same extended protocol. */
	{
		const char *tv[2] = { "21", "abc" };

		res = PQexecParams(conn, "SELECT $1::int * 2, upper($2)", 2, NULL, tv, NULL, NULL, 0);
		if (expect_status(res, PGRES_TUPLES_OK, "text params")) {
			if (strcmp(PQgetvalue(res, 0, 0), "42") != 0 || strcmp(PQgetvalue(res, 0, 1), "ABC") != 0)
				fail("text params: got %s, %s", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
		}
		PQclear(res);
	}
}

static void check_prepared(PGconn *conn)
{
	Oid types[1] = { INT4OID };
	PGresult *res;

	res = PQprepare(conn, "stmt_add", "SELECT $1::int4 + 1, repeat('a', $1::int4)", 1, types);
	expect_status(res, PGRES_COMMAND_OK, "PQprepare");
	PQclear(res);

	res = PQdescribePrepared(conn, "stmt_add");
	if (expect_status(res, PGRES_COMMAND_OK, "PQdescribePrepared")) {
		if (PQnparams(res) != 1 || PQparamtype(res, 0) != INT4OID || PQnfields(res) != 2)
			fail("PQdescribePrepared: nparams %d nfields %d", PQnparams(res), PQnfields(res));
	}
	PQclear(res);

	for (int i = 0; i < 50; i++) {
		char arg[16], want[16];
		const char *values[1] = { arg };

		snprintf(arg, sizeof(arg), "%d", i);
		snprintf(want, sizeof(want), "%d", i + 1);
		res = PQexecPrepared(conn, "stmt_add", 1, values, NULL, NULL, 0);
		if (expect_status(res, PGRES_TUPLES_OK, "PQexecPrepared")) {
			if (strcmp(PQgetvalue(res, 0, 0), want) != 0 ||
			    PQgetlength(res, 0, 1) != i) {
				fail("PQexecPrepared(%d): got %s len %d", i, PQgetvalue(res, 0, 0),
				     PQgetlength(res, 0, 1));
			}
		}
		PQclear(res);
		if (PQstatus(conn) != CONNECTION_OK)
			return;
	}

	/* Unnamed statement, described then executed. */
	res = PQprepare(conn, "", "SELECT $1::text || '!'", 1, NULL);
	expect_status(res, PGRES_COMMAND_OK, "PQprepare unnamed");
	PQclear(res);
	{
		const char *values[1] = { "hi" };

		res = PQexecPrepared(conn, "", 1, values, NULL, NULL, 0);
		if (expect_status(res, PGRES_TUPLES_OK, "PQexecPrepared unnamed") &&
		    strcmp(PQgetvalue(res, 0, 0), "hi!") != 0)
			fail("unnamed prepared: got %s", PQgetvalue(res, 0, 0));
		PQclear(res);
	}

	res = PQexec(conn, "DEALLOCATE stmt_add");
	expect_status(res, PGRES_COMMAND_OK, "DEALLOCATE");
	PQclear(res);
}

/* A cursor fetched in batches, and single-row mode over the extended protocol. */
static void check_portals(PGconn *conn)
{
	PGresult *res;
	long sum = 0;
	int rows = 0;

	res = PQexec(conn, "BEGIN");
	expect_status(res, PGRES_COMMAND_OK, "BEGIN");
	PQclear(res);
	res = PQexec(conn, "DECLARE cur CURSOR FOR SELECT g FROM generate_series(1, 1000) g");
	expect_status(res, PGRES_COMMAND_OK, "DECLARE");
	PQclear(res);
	for (;;) {
		int n;

		res = PQexecParams(conn, "FETCH 128 FROM cur", 0, NULL, NULL, NULL, NULL, 0);
		if (!expect_status(res, PGRES_TUPLES_OK, "FETCH")) {
			PQclear(res);
			break;
		}
		n = PQntuples(res);
		for (int i = 0; i < n; i++)
			sum += atol(PQgetvalue(res, i, 0));
		rows += n;
		PQclear(res);
		if (n == 0)
			break;
	}
	if (rows != 1000 || sum != 500500)
		fail("cursor: %d rows, sum %ld", rows, sum);
	res = PQexec(conn, "COMMIT");
	expect_status(res, PGRES_COMMAND_OK, "COMMIT");
	PQclear(res);

	/* single-row mode */
	if (!PQsendQueryParams(conn, "SELECT g, md5(g::text) FROM generate_series(1, 5000) g", 0, NULL,
			       NULL, NULL, NULL, 0)) {
		fail("PQsendQueryParams: %s", PQerrorMessage(conn));
		return;
	}
	if (!PQsetSingleRowMode(conn))
		fail("PQsetSingleRowMode refused");
	rows = 0;
	sum = 0;
	while ((res = PQgetResult(conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);

		if (st == PGRES_SINGLE_TUPLE) {
			rows++;
			sum += atol(PQgetvalue(res, 0, 0));
		} else if (st != PGRES_TUPLES_OK) {
			fail("single-row mode: %s %s", PQresStatus(st), PQresultErrorMessage(res));
		}
		PQclear(res);
	}
	if (rows != 5000 || sum != 12502500L)
		fail("single-row mode: %d rows, sum %ld", rows, sum);
}

static void check_empty_and_errors(PGconn *conn)
{
	PGresult *res;

	res = PQexec(conn, "");
	expect_status(res, PGRES_EMPTY_QUERY, "empty simple query");
	PQclear(res);

	res = PQexecParams(conn, "", 0, NULL, NULL, NULL, NULL, 0);
	expect_status(res, PGRES_EMPTY_QUERY, "empty extended query");
	PQclear(res);

	res = PQexec(conn, "SELECT 1/0");
	if (expect_status(res, PGRES_FATAL_ERROR, "division by zero")) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		if (state == NULL || strcmp(state, "22012") != 0)
			fail("division by zero: SQLSTATE %s", state ? state : "(none)");
	}
	PQclear(res);

	res = PQexecParams(conn, "SELECT * FROM no_such_table_xyz", 0, NULL, NULL, NULL, NULL, 0);
	if (expect_status(res, PGRES_FATAL_ERROR, "undefined table")) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);

		if (state == NULL || strcmp(state, "42P01") != 0)
			fail("undefined table: SQLSTATE %s", state ? state : "(none)");
		if (pos == NULL || strcmp(pos, "15") != 0)
			fail("undefined table: position %s", pos ? pos : "(none)");
	}
	PQclear(res);

	/* the connection is still usable */
	res = PQexec(conn, "SELECT 'still alive'");
	if (expect_status(res, PGRES_TUPLES_OK, "after errors") &&
	    strcmp(PQgetvalue(res, 0, 0), "still alive") != 0)
		fail("after errors: %s", PQgetvalue(res, 0, 0));
	PQclear(res);
}

static void notice_receiver(void *arg, const PGresult *res)
{
	int *count = arg;
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	if (msg != NULL && strcmp(msg, "hello from plpgsql") == 0)
		(*count)++;
}

static void check_notices(PGconn *conn)
{
	int count = 0;
	PQnoticeReceiver old = PQsetNoticeReceiver(conn, notice_receiver, &count);
	PGresult *res = PQexec(conn, "DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; END $$");

	expect_status(res, PGRES_COMMAND_OK, "DO with NOTICE");
	PQclear(res);
	if (count != 1)
		fail("notice: received %d times", count);
	PQsetNoticeReceiver(conn, old, NULL);
}

/* Reads the next result of a pipeline and checks its status, then the NULL after it. */
static void pipeline_expect(PGconn *conn, ExecStatusType status, const char *want_value, const char *what)
{
	PGresult *res = PQgetResult(conn);

	if (expect_status(res, status, what) && want_value != NULL &&
	    (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), want_value) != 0))
		fail("%s: got %s", what, PQntuples(res) ? PQgetvalue(res, 0, 0) : "(no rows)");
	PQclear(res);
	if (status == PGRES_PIPELINE_SYNC)
		return;
	res = PQgetResult(conn);
	if (res != NULL) {
		fail("%s: expected NULL after the result, got %s", what, PQresStatus(PQresultStatus(res)));
		PQclear(res);
	}
}

static void check_pipeline(PGconn *conn)
{
	const char *one[1] = { "7" };

	if (!PQenterPipelineMode(conn)) {
		fail("PQenterPipelineMode: %s", PQerrorMessage(conn));
		return;
	}
	if (!PQsendQueryParams(conn, "SELECT $1::int * 6", 1, NULL, one, NULL, NULL, 0) ||
	    !PQsendQueryParams(conn, "SELECT 'second'", 0, NULL, NULL, NULL, NULL, 0) ||
	    !PQsendPrepare(conn, "pstmt", "SELECT $1::int + 100", 1, NULL) ||
	    !PQsendQueryPrepared(conn, "pstmt", 1, one, NULL, NULL, 0) ||
	    !PQpipelineSync(conn) ||
	    /* second batch: an error aborts the rest of the batch until the sync */
	    !PQsendQueryParams(conn, "SELECT 1/0", 0, NULL, NULL, NULL, NULL, 0) ||
	    !PQsendQueryParams(conn, "SELECT 'skipped'", 0, NULL, NULL, NULL, NULL, 0) ||
	    !PQpipelineSync(conn) ||
	    /* third batch: works again */
	    !PQsendQueryParams(conn, "SELECT 'after sync'", 0, NULL, NULL, NULL, NULL, 0) ||
	    !PQpipelineSync(conn)) {
		fail("pipeline send: %s", PQerrorMessage(conn));
		(void)PQexitPipelineMode(conn);
		return;
	}
	pipeline_expect(conn, PGRES_TUPLES_OK, "42", "pipeline q1");
	pipeline_expect(conn, PGRES_TUPLES_OK, "second", "pipeline q2");
	pipeline_expect(conn, PGRES_COMMAND_OK, NULL, "pipeline prepare");
	pipeline_expect(conn, PGRES_TUPLES_OK, "107", "pipeline exec prepared");
	pipeline_expect(conn, PGRES_PIPELINE_SYNC, NULL, "pipeline sync 1");
	pipeline_expect(conn, PGRES_FATAL_ERROR, NULL, "pipeline error");
	pipeline_expect(conn, PGRES_PIPELINE_ABORTED, NULL, "pipeline aborted");
	pipeline_expect(conn, PGRES_PIPELINE_SYNC, NULL, "pipeline sync 2");
	pipeline_expect(conn, PGRES_TUPLES_OK, "after sync", "pipeline q after sync");
	pipeline_expect(conn, PGRES_PIPELINE_SYNC, NULL, "pipeline sync 3");
	if (!PQexitPipelineMode(conn))
		fail("PQexitPipelineMode: %s", PQerrorMessage(conn));
}

static void check_large_bytea(PGconn *conn, size_t size)
{
	char *buf = malloc(size);
	uint32_t x = 2463534242u;
	Oid types[1] = { BYTEAOID };
	const char *values[1];
	int lengths[1];
	int formats[1] = { 1 };
	PGresult *res;

	if (buf == NULL) {
		fail("malloc(%zu)", size);
		return;
	}
	for (size_t i = 0; i < size; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (i % 97 == 0) ? 0 : (char)(x & 0xff);
	}
	values[0] = buf;
	lengths[0] = (int)size;
	res = PQexecParams(conn, "SELECT $1::bytea, length($1::bytea)", 1, types, values, lengths, formats, 1);
	if (expect_status(res, PGRES_TUPLES_OK, "large bytea")) {
		if ((size_t)PQgetlength(res, 0, 0) != size)
			fail("large bytea: got %d bytes, want %zu", PQgetlength(res, 0, 0), size);
		else if (memcmp(PQgetvalue(res, 0, 0), buf, size) != 0)
			fail("large bytea: content differs");
		if (get_be32(PQgetvalue(res, 0, 1)) != (uint32_t)size)
			fail("large bytea: server saw length %u", get_be32(PQgetvalue(res, 0, 1)));
	}
	PQclear(res);
	free(buf);
}

int main(int argc, char **argv)
{
	PGconn *conn;
	size_t large_mb = 20;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s CONNINFO [LARGE_MB]\n", argv[0]);
		return 2;
	}
	if (argc == 3)
		large_mb = (size_t)strtoul(argv[2], NULL, 10);

	conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK) {
		printf("FAIL: connect: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return 1;
	}

	{
		static const struct {
			const char *name;
			void (*fn)(PGconn *);
		} checks[] = {
			{ "binary params", check_binary_params },
			{ "prepared statements", check_prepared },
			{ "portals", check_portals },
			{ "empty queries and errors", check_empty_and_errors },
			{ "notices", check_notices },
			{ "pipeline", check_pipeline },
		};

		for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
			checks[i].fn(conn);
			if (PQstatus(conn) != CONNECTION_OK) {
				fail("connection lost during the %s checks: %s", checks[i].name,
				     PQerrorMessage(conn));
				break;
			}
		}
	}
	if (PQstatus(conn) == CONNECTION_OK) {
		check_large_bytea(conn, large_mb * 1024 * 1024);
		if (PQstatus(conn) != CONNECTION_OK)
			fail("connection lost during the large bytea check: %s", PQerrorMessage(conn));
	}
	PQfinish(conn);
	if (failures) {
		printf("%d check(s) failed\n", failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
