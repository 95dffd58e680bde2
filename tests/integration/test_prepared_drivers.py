"""Drivers' prepared statements in transaction mode where the server-side statement
pgcoro shares would differ from PostgreSQL's own: across a schema change (asyncpg's
statement cache, pgjdbc past prepareThreshold) and when psycopg 3 drops a statement
with SQL DEALLOCATE. Each runs against PostgreSQL directly and through pgcoro (5
servers): the outcomes must be the same."""

import asyncio
import os
import shutil
import subprocess

import pytest

from conftest import APP_PASS, APP_USER, clean_env

FIVE = {"pool_mode": "transaction", "default_pool_size": 5}
JAR = "/usr/share/java/postgresql.jar"


def make_table(pg, table):
    pg.psql_super(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (a int); "
                  f"INSERT INTO {table} VALUES (1); ALTER TABLE {table} OWNER TO app;",
                  db="pooldb")


def asyncpg_across_alter(host, port, table):
    """Five connections cache `select * from TABLE` (each inside a transaction at once:
    through pgcoro five servers prepare it), the table gains a column, then the five and
    three fresh connections run it again; then inside a transaction after another change.
    What each got, or the error it raised."""
    import asyncpg
    sql = f"select * from {table} order by a"

    async def connect():
        return await asyncpg.connect(host=host, port=port, user=APP_USER, password=APP_PASS,
                                     database="pooldb", timeout=60)

    async def fetch(conn):
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        except asyncpg.PostgresError as e:
            return (type(e).__name__, e.sqlstate)

    async def main():
        out = []
        cs = [await connect() for _ in range(5)]
        try:
            trs = [c.transaction() for c in cs]
            for c, t in zip(cs, trs):
                await t.start()
                out.append(await fetch(c))
            for t in trs:
                await t.commit()
            await cs[0].execute(f"alter table {table} add column b int default 7")
            for c in cs:
                out.append(await fetch(c))
            for _ in range(3):
                c = await connect()
                out.append(await fetch(c))
                out.append(await fetch(c))
                await c.close()
            # inside a transaction asyncpg cannot prepare again: the error is raised
            await cs[1].execute(f"alter table {table} drop column b")
            t = cs[1].transaction()
            await t.start()
            out.append(await fetch(cs[1]))
            await t.rollback()
            out.append(await fetch(cs[1]))
            out.append(await fetch(cs[2]))
        finally:
            for c in cs:
                await c.close()
        return out

    return asyncio.run(asyncio.wait_for(main(), 120))


def test_asyncpg_statement_cache_across_alter_table(pgcoro_factory, pg):
    """Before: the retry under a new name mapped to the stale server statement
    (InvalidCachedStatementError for the five), and every fresh connection failed too."""
    make_table(pg, "sa_t")
    want = asyncpg_across_alter(pg.host, pg.port, "sa_t")
    assert want[5:13] == [[(1, 7)]] * 8, want  # PostgreSQL: the new shape, no error
    make_table(pg, "sa_t")
    inst = pgcoro_factory(settings=FIVE)
    got = asyncpg_across_alter(inst.host, inst.port, "sa_t")
    assert got == want
    inst.assert_serving()


def pgjdbc_across_alter(host, port, table):
    src = os.path.join(os.path.dirname(__file__), "java", "StaleJdbc.java")
    url = f"jdbc:postgresql://{host}:{port}/pooldb?sslmode=disable"
    r = subprocess.run(["java", "-cp", JAR, src, url, APP_USER, APP_PASS, table],
                       capture_output=True, text=True, timeout=240, env=clean_env())
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.splitlines()


def test_pgjdbc_past_prepare_threshold_across_alter_table(pgcoro_factory, pg):
    """pgjdbc prepares again (a new S_n) after 0A000 and retries in autocommit: no error,
    the new shape, as directly. Before: 0A000 for ever (each retry mapped to the stale
    statement), fresh connections too once past prepareThreshold."""
    assert shutil.which("java") and os.path.exists(JAR), \
        "needs default-jdk-headless and libpostgresql-jdbc-java (make deps)"
    make_table(pg, "sj_t")
    want = pgjdbc_across_alter(pg.host, pg.port, "sj_t")
    assert "c0 after ok 2 1 7" in want and "c0 in-transaction err 0A000" in want, want
    make_table(pg, "sj_t")
    inst = pgcoro_factory(settings=FIVE)
    got = pgjdbc_across_alter(inst.host, inst.port, "sj_t")
    assert got == want
    inst.assert_serving()


def psycopg_rotating(dsn):
    """psycopg 3 with every query prepared (prepare_threshold=0) and prepared_max=3:
    past 3 statements it drops the oldest with DEALLOCATE _pg3_N (libpq < 17), in
    autocommit and inside transactions. The results."""
    import psycopg
    out = []
    with psycopg.connect(dsn, prepare_threshold=0, autocommit=True) as conn:
        conn.prepared_max = 3
        for r in range(3):
            for i in range(8):
                out.append(conn.execute(f"select {i} + %s::int", (r,)).fetchone()[0])
            with conn.transaction():
                for i in range(8):
                    out.append(conn.execute(f"select {i} * %s::int", (r,)).fetchone()[0])
        out.append(conn.execute("select count(*) from pg_prepared_statements "
                                "where name like '\\_pg3\\_%'").fetchone()[0])
    return out


def test_psycopg3_deallocates_with_sql(pgcoro_factory, pg):
    """Before: psycopg.errors.InvalidSqlStatementName: prepared statement "_pg3_0" does
    not exist, at the 4th distinct query. max_client_prepared_statements = 4 shows the
    names really go."""
    import psycopg
    assert psycopg.pq.version() < 170000, "libpq 17 closes statements with the protocol"
    direct = (f"host={pg.host} port={pg.port} user={APP_USER} password={APP_PASS} "
              "dbname=postgres")
    want = psycopg_rotating(direct)
    assert want[-1] == 4, want  # directly: psycopg's 3 and the count's own
    inst = pgcoro_factory(settings=dict(FIVE, max_client_prepared_statements=4))
    got = psycopg_rotating(inst.dsn())
    assert got[:-1] == want[:-1]
    if not inst.direct:
        assert got[-1] == 0  # through pgcoro the server's statements are named PGCORO_n
    inst.assert_serving()


def psycopg_drop_all(dsn, command):
    """PgBouncer's suite scenario (test_deallocate_all, test_discard_all): two psycopg 3
    connections prepare `SELECT 1`, the first runs COMMAND; what each execute then gives,
    and whether the first can prepare its statement names again."""
    import psycopg
    out = []

    def run(cur, **kw):
        try:
            return cur.execute("SELECT 1", **kw).fetchone()
        except psycopg.Error as e:
            return (type(e).__name__, e.sqlstate)

    with psycopg.connect(dsn, autocommit=True) as c1, psycopg.connect(dsn, autocommit=True) as c2:
        cur1, cur2 = c1.cursor(), c2.cursor()
        out += [run(cur1, prepare=True), run(cur1), run(cur2, prepare=True)]
        cur1.execute(command)
        out += [run(cur2), run(cur1), run(cur1)]
        for name in (b"_pg3_0", b"_pg3_1"):
            out.append(c1.pgconn.prepare(name, b"SELECT 2").status)
            out.append(c1.pgconn.exec_prepared(name, []).get_value(0, 0))
        out.append(run(cur2))
    return out


@pytest.mark.parametrize("command", ["DEALLOCATE ALL", "DISCARD ALL"])
def test_psycopg3_deallocate_all_discard_all(pgcoro_factory, pg, command):
    """The outcomes are PostgreSQL's: the first connection's statement does not exist
    (26000, the session goes on), the second's still works, and the names are free
    again. (PgBouncer closes the first connection instead.)"""
    direct = (f"host={pg.host} port={pg.port} user={APP_USER} password={APP_PASS} "
              "dbname=postgres")
    want = psycopg_drop_all(direct, command)
    assert ("InvalidSqlStatementName", "26000") in want, want
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 2})
    assert psycopg_drop_all(inst.dsn(), command) == want
    inst.assert_serving()
