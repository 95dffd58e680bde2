"""Real drivers through pgcoro: psycopg2, psycopg 3, asyncpg."""

import asyncio
import io

import psycopg2
import psycopg2.extras
import pytest

from conftest import APP_PASS, APP_USER


def test_psycopg2(pgcoro):
    conn = pgcoro.connect()
    try:
        cur = conn.cursor()
        cur.execute("create temp table items (id serial primary key, name text, price numeric,"
                    " tags text[], meta jsonb)")
        psycopg2.extras.execute_values(
            cur, "insert into items (name, price, tags, meta) values %s",
            [(f"item {i}", i * 1.25, ["a", str(i)], psycopg2.extras.Json({"i": i}))
             for i in range(500)])
        conn.commit()
        cur.execute("select name, price, tags, meta from items where id = %s", (42,))
        name, price, tags, meta = cur.fetchone()
        assert (name, float(price), tags, meta) == ("item 41", 51.25, ["a", "41"], {"i": 41})

        # an error, a rollback, and the session (and its temp table) carries on
        with pytest.raises(psycopg2.errors.UndefinedTable) as ei:
            cur.execute("select * from nosuch")
        assert ei.value.pgcode == "42P01"
        conn.rollback()
        cur.execute("select count(*) from items")
        assert cur.fetchone() == (500,)

        # notices
        cur.execute("DO $$ BEGIN RAISE NOTICE 'n1'; RAISE WARNING 'w1'; END $$")
        assert any("n1" in n for n in conn.notices) and any("w1" in n for n in conn.notices)

        # a named (server-side) cursor fetched in batches
        conn.commit()
        with conn.cursor(name="big") as sc:
            sc.itersize = 100
            sc.execute("select g from generate_series(1, 10000) g")
            assert sum(r[0] for r in sc) == 50005000
        conn.commit()

        # COPY both ways
        buf = io.StringIO("".join(f"x{i}\t{i}\n" for i in range(1000)))
        cur.execute("create temp table cp (a text, b int)")
        cur.copy_expert("copy cp from stdin", buf)
        out = io.StringIO()
        cur.copy_expert("copy (select * from cp order by b) to stdout", out)
        assert out.getvalue() == buf.getvalue()
        conn.commit()
    finally:
        conn.close()


def test_psycopg3(pgcoro):
    import psycopg
    conninfo = pgcoro.dsn()
    with psycopg.connect(conninfo) as conn:
        with conn.cursor() as cur:
            # binary results, server-side prepared statement
            for i in range(10):
                cur.execute("select %s::int4 * 2, %s::text, %s::bytea", (i, f"t{i}", b"\0\1\0"),
                            prepare=True, binary=True)
                assert cur.fetchone() == (i * 2, f"t{i}", b"\0\1\0")
            cur.execute("select count(*) from pg_prepared_statements")
            assert cur.fetchone()[0] >= 1
        # a server-side binary cursor
        with conn.transaction():
            with conn.cursor(name="ssc", binary=True) as sc:
                sc.itersize = 250
                sc.execute("select g, md5(g::text) from generate_series(1, 3000) g")
                n = s = 0
                for g, h in sc:
                    n, s = n + 1, s + g
                    assert len(h) == 32
                assert (n, s) == (3000, 4501500)
        # pipeline mode
        with conn.pipeline():
            curs = [conn.execute("select %s::int + 1", (i,)) for i in range(20)]
        assert [c.fetchone()[0] for c in curs] == list(range(1, 21))
        # COPY with rows
        conn.execute("create temp table p3 (a int, b text)")
        with conn.cursor() as cur:
            with cur.copy("copy p3 (a, b) from stdin") as cp:
                for i in range(2000):
                    cp.write_row((i, f"r{i}"))
            got = []
            with cur.copy("copy (select a, b from p3 order by a) to stdout") as cp:
                for row in cp.rows():
                    got.append(row)
            assert got[0] == ("0", "r0") and got[-1] == ("1999", "r1999") and len(got) == 2000
        # an error keeps its SQLSTATE
        with pytest.raises(psycopg.errors.DivisionByZero) as ei:
            conn.execute("select 1/0")
        assert ei.value.sqlstate == "22012"
        conn.rollback()
        assert conn.execute("select 'ok'").fetchone() == ("ok",)


def test_asyncpg(pgcoro):
    import asyncpg

    async def main():
        conn = await asyncpg.connect(host=pgcoro.host, port=pgcoro.port, user=APP_USER,
                                     password=APP_PASS, database=pgcoro.db("postgres"),
                                     timeout=60)
        try:
            rows = await conn.fetch("select g, g::text || 'x' as s, null::int as n "
                                    "from generate_series(1, 1000) g where g % $1 = 0", 10)
            assert len(rows) == 100 and rows[0]["s"] == "10x" and rows[0]["n"] is None
            assert await conn.fetchval("select $1::bytea", b"\0a\0") == b"\0a\0"
            assert await conn.fetchval("select $1::int8 * 2", 2 ** 40) == 2 ** 41

            await conn.execute("create temp table ap (id int primary key, name text, "
                               "v float8, at timestamptz default now())")
            await conn.executemany("insert into ap (id, name, v) values ($1, $2, $3)",
                                   [(i, f"n{i}", i / 4) for i in range(300)])
            stmt = await conn.prepare("select name, v from ap where id = $1")
            for i in (0, 7, 299):
                r = await stmt.fetchrow(i)
                assert (r["name"], r["v"]) == (f"n{i}", i / 4)

            n = await conn.copy_records_to_table(
                "ap", records=[(1000 + i, f"c{i}", 0.5) for i in range(5000)],
                columns=["id", "name", "v"])
            assert n == "COPY 5000"
            assert await conn.fetchval("select count(*) from ap") == 5300

            out = io.BytesIO()
            res = await conn.copy_from_query("select id, name from ap where id < $1 order by id",
                                             3, output=out)
            assert res == "COPY 3"
            assert out.getvalue() == b"0\tn0\n1\tn1\n2\tn2\n"

            async with conn.transaction():
                total = 0
                async for rec in conn.cursor("select id from ap", prefetch=333):
                    total += rec["id"]
                assert total == sum(range(300)) + sum(range(1000, 6000))

            with pytest.raises(asyncpg.exceptions.UndefinedTableError) as ei:
                await conn.fetch("select * from nosuch")
            assert ei.value.sqlstate == "42P01"
            assert await conn.fetchval("select 1") == 1
        finally:
            await conn.close()

    asyncio.run(asyncio.wait_for(main(), 180))
