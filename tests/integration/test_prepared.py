"""Protocol-level prepared statements in transaction mode (max_prepared_statements):
drivers' named statements keep working although each transaction may run on another
server; answers are exactly PostgreSQL's, errors in the middle of a pipeline included."""

import asyncio
import re
import struct
import threading

import pytest

from conftest import (APP_PASS, APP_USER, FLUSH, SYNC, Wire, bind, close, describe, execute,
                      parse, parse_data_row, parse_fields, pgbench_through, run_jdbc, vmrss_kb)

TXN = {"pool_mode": "transaction", "default_pool_size": 2}


def txn_pgcoro(factory, **settings):
    s = dict(TXN)
    s.update(settings)
    return factory(settings=s)


# ---- raw protocol ------------------------------------------------------------------------

def read_until_ready(w, n_ready=1):
    """The answers up to the N_READY-th ReadyForQuery, as comparable tuples."""
    out = []
    while n_ready:
        t, p = w.read_msg()
        if t in ("N", "S"):
            continue  # notices and parameter reports are not part of the comparison
        if t == "E":
            f = parse_fields(p)
            out.append(("E", f.get("C"), f.get("M")))
        elif t == "D":
            out.append(("D", tuple(parse_data_row(p))))
        elif t == "C":
            out.append(("C", p.rstrip(b"\0").decode()))
        elif t == "Z":
            out.append(("Z", p.decode()))
            n_ready -= 1
        elif t == "T":
            out.append(("T", struct.unpack("!H", p[:2])[0]))
        else:
            out.append((t,))
    return out


# A script of batches: each is sent whole, then its answers are read up to its last
# ReadyForQuery. Errors in the middle of pipelines, statements whose Parse was skipped,
# Close skipped after an error, duplicate names, unknown names.
SCRIPT = [
    # s1 ok; s2 parses but fails at Execute; s3's Parse and the Close of s1 are skipped
    parse("s1", "select $1::int + 1") + bind("s1", [41]) + execute()
    + parse("s2", "select 10 / $1::int") + bind("s2", [0]) + execute()
    + parse("s3", "select 3") + bind("s3") + execute() + close("S", "s1") + SYNC,
    # s3 does not exist; the rest of this batch is skipped
    bind("s3") + execute() + bind("s1", [1]) + execute() + SYNC,
    # s1 survived (its Close was skipped), s2 exists
    bind("s1", [1]) + execute() + describe("S", "s2") + bind("s2", [5]) + execute() + SYNC,
    # a duplicate name fails, and what follows is skipped
    parse("s1", "select 1") + bind("s1", [2]) + execute() + SYNC,
    # Close, Close of an unknown name (no error), Parse again under the closed name
    close("S", "s1") + close("S", "nosuch") + parse("s1", "select 'again'") + bind("s1")
    + execute() + SYNC,
    # a Parse with a syntax error: the name does not exist afterwards
    parse("s4", "selec 1") + bind("s4") + execute() + SYNC + bind("s4") + execute() + SYNC,
    # Describe of an unknown statement
    describe("S", "nosuch") + SYNC,
    # unnamed statements alongside named ones, with Flush
    parse("", "select 'u'") + bind("") + execute() + FLUSH + bind("s2", [2]) + execute()
    + SYNC,
    # a transaction block: an error inside it, then ROLLBACK through a named statement
    Wire.msg("Q", b"BEGIN\0") + bind("s2", [0]) + execute() + SYNC
    + Wire.msg("Q", b"ROLLBACK\0"),
    # many statements in one pipeline, then all of them used again
    b"".join(parse(f"m{i}", f"select {i}") for i in range(12)) + SYNC
    + b"".join(bind(f"m{i}") + execute() for i in range(12)) + SYNC,
    # DEALLOCATE ALL and DISCARD ALL forget the client's statements (and the server's):
    # they do not exist afterwards, and can be prepared again
    Wire.msg("Q", b"DEALLOCATE ALL\0"),
    bind("s2", [1]) + execute() + SYNC,
    bind("m3") + execute() + SYNC + parse("s2", "select 10 / $1::int") + bind("s2", [5])
    + execute() + SYNC,
    Wire.msg("Q", b"DISCARD ALL\0"),
    bind("s2", [5]) + execute() + SYNC,
    parse("m3", "select 'm3 again'") + bind("m3") + execute() + SYNC,
]


def run_script(w, between=None):
    answers = []
    for k, batch in enumerate(SCRIPT):
        if between:
            between(k)
        w.send(batch)
        answers.append(read_until_ready(w, batch.count(SYNC) + batch.count(b"Q\0\0\0")))
    return answers


def direct_answers(pg):
    w = Wire(pg.host, pg.port)
    try:
        w.login(database="postgres")
        return run_script(w)
    finally:
        w.terminate()


@pytest.mark.parametrize("max_prepared", [200, 2])
def test_pipeline_errors_match_postgres(pgcoro_factory, pg, max_prepared):
    """The same bytes sent to PostgreSQL and through pgcoro get the same answers, while
    another client takes the server between batches (so statements are prepared anew on
    the other server), and with an LRU of 2 (statements evicted and prepared again)."""
    inst = txn_pgcoro(pgcoro_factory, max_prepared_statements=max_prepared)
    want = direct_answers(pg)
    holder = Wire.to(inst)
    holder.login()
    holding = [False]

    def between(k):
        # odd batches run while the holder keeps a server in a transaction: the client
        # gets the other server of the pool of 2
        if k % 2 and not holding[0]:
            holder.query("BEGIN")
            holder.query("SELECT 1")
            holding[0] = True
        elif holding[0]:
            holder.query("COMMIT")
            holding[0] = False

    w = Wire.to(inst)
    try:
        w.login()
        got = run_script(w, between)
    finally:
        w.terminate()
        holder.terminate()
    for k, (g, e) in enumerate(zip(got, want)):
        assert g == e, f"batch {k}: through pgcoro {g}\n directly {e}"
    assert len(got) == len(want)
    inst.assert_serving()


def test_eviction_bounds_server_statements(pgcoro_factory, pg):
    """max_prepared_statements = 3: 10 distinct statements cycled by 6 clients over 2
    servers; each backend holds at most 3 (the least recently used are closed), all
    named PGCORO_*, and the clients never see an error."""
    import psycopg
    inst = txn_pgcoro(pgcoro_factory, max_prepared_statements=3)
    errors = []

    def worker(k):
        try:
            with psycopg.connect(inst.dsn(), prepare_threshold=0, autocommit=True) as conn:
                for r in range(15):
                    i = (r * 7 + k) % 10
                    got = conn.execute(f"select %s::int + {i}", (r,)).fetchone()[0]
                    assert got == r + i
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    # The workers may all have run on one server (they are quick): a client holding one
    # in a transaction while another runs makes sure both prepared statements.
    with psycopg.connect(inst.dsn(), prepare_threshold=0, autocommit=True) as a, \
            psycopg.connect(inst.dsn(), prepare_threshold=0, autocommit=True) as b:
        with a.transaction():
            for conn in (a, b):
                for i in range(5):
                    assert conn.execute(f"select %s::int + {i}", (1,)).fetchone() == (1 + i,)
    # Look at each server: two clients each hold one in a transaction.
    import psycopg2
    conns = [inst.connect() for _ in range(2)]
    try:
        seen = []
        for c in conns:
            cur = c.cursor()
            cur.execute("select pg_backend_pid(), count(*), "
                        "count(*) filter (where name like 'PGCORO\\_%') "
                        "from pg_prepared_statements")
            seen.append(cur.fetchone())
        assert seen[0][0] != seen[1][0], seen
        for pid, n, ours in seen:
            assert 1 <= n <= 3 and ours == n, seen
    finally:
        for c in conns:
            c.close()
    inst.assert_serving()


def test_pgbench_prepared_100_clients_pool_5(pgcoro_factory, pg):
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 5})
    # -j 4: 25 clients per thread, and pgbench prepares with a blocking PQprepare: a
    # Parse from a client without a server is answered at once (the statement is known),
    # else the thread would wait for a server held by its own clients' transactions
    out = pgbench_through(pg, inst, "-j", "4", "-c", "100", "-T", "4", "-M", "prepared")
    assert not re.search(r"exist", out), out
    inst.assert_serving()


# ---- drivers -----------------------------------------------------------------------------

def run_threads(n, fn):
    errors = []

    def wrap(k):
        try:
            fn(k)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"client {k}: {e!r}")

    threads = [threading.Thread(target=wrap, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    assert not any(t.is_alive() for t in threads), "clients still running"
    assert not errors, errors


def test_asyncpg_statement_cache_and_cursors(pgcoro_factory, pg):
    """30 asyncpg connections over 2 servers: the statement cache (named statements),
    explicit prepare, cursors in transactions, executemany, a schema-independent error."""
    import asyncpg
    inst = txn_pgcoro(pgcoro_factory)

    async def client(k):
        conn = await asyncpg.connect(host=inst.host, port=inst.port, user=APP_USER,
                                     password=APP_PASS, database=inst.db("postgres"),
                                     timeout=60)
        try:
            for r in range(10):
                assert await conn.fetchval("select $1::int + $2::int", r, k) == r + k
                rows = await conn.fetch("select g from generate_series(1, $1::int) g", r + 1)
                assert [x[0] for x in rows] == list(range(1, r + 2))
            stmt = await conn.prepare("select $1::text || '-' || $2::text")
            for r in range(5):
                assert await stmt.fetchval(str(k), str(r)) == f"{k}-{r}"
            async with conn.transaction():
                total = 0
                async for rec in conn.cursor("select g from generate_series(1, 500) g",
                                             prefetch=50):
                    total += rec[0]
                assert total == 125250
                cur = await conn.cursor("select g from generate_series(1, 100) g")
                assert [x[0] for x in await cur.fetch(10)] == list(range(1, 11))
                await cur.forward(40)
                assert (await cur.fetchrow())[0] == 51
            with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
                await conn.fetchval("select 1 / $1::int", 0)
            assert await conn.fetchval("select $1::int + $2::int", 1, 1) == 2
        finally:
            await conn.close()

    async def main():
        await asyncio.gather(*(client(k) for k in range(30)))

    asyncio.run(asyncio.wait_for(main(), 150))
    inst.assert_serving()


def test_psycopg3_prepare_threshold_0_and_pipeline(pgcoro_factory, pg):
    """psycopg 3 with prepare_threshold=0 (every query a named statement) from 20
    clients over 2 servers, in autocommit, in transactions and in pipeline mode."""
    import psycopg
    inst = txn_pgcoro(pgcoro_factory)

    def client(k):
        with psycopg.connect(inst.dsn(), prepare_threshold=0, autocommit=True) as conn:
            for r in range(10):
                assert conn.execute("select %s::int * %s::int", (r, k)).fetchone() == (r * k,)
            with conn.transaction():
                conn.execute("create temp table t3 (a int) on commit drop")
                conn.execute("insert into t3 select generate_series(1, %s)", (k + 1,))
                assert conn.execute("select sum(a) from t3").fetchone() == ((k + 1) * (k + 2) // 2,)
            for r in range(3):
                with conn.pipeline():
                    curs = [conn.execute("select %s::int + %s::int", (i, k)) for i in range(15)]
                assert [c.fetchone()[0] for c in curs] == [i + k for i in range(15)]

    run_threads(20, client)
    inst.assert_serving()


def pipeline_outcomes(dsn):
    """A psycopg 3 pipeline with an error in the middle, run twice (the second time the
    statements are prepared): what each query gave."""
    import psycopg
    out = []
    with psycopg.connect(dsn, prepare_threshold=0, autocommit=True) as conn:
        for _ in range(2):
            results, curs = [], []
            try:
                with conn.pipeline():
                    curs.append(conn.execute("select %s::int + 1", (1,)))
                    curs.append(conn.execute("select 10 / %s::int", (0,)))
                    curs.append(conn.execute("select %s::text", ("after",)))
            except psycopg.Error as e:
                results.append(("raised", type(e).__name__, e.sqlstate))
            # (when the error surfaces, at the third execute or at the end of the block,
            # depends on timing: only the first result and what follows are compared)
            results.append(("row", curs[0].fetchone()))
            results.append(("then", conn.execute("select %s::int * 3", (3,)).fetchone()))
            out.append(results)
    return out


def test_psycopg3_pipeline_error_matches_postgres(pgcoro_factory, pg):
    inst = txn_pgcoro(pgcoro_factory)
    direct = (f"host={pg.host} port={pg.port} user={APP_USER} password={APP_PASS} "
              "dbname=postgres")
    assert pipeline_outcomes(inst.dsn()) == pipeline_outcomes(direct)
    inst.assert_serving()


def test_pgjdbc_prepare_threshold_and_fetch_size(pgcoro_factory, pg):
    inst = txn_pgcoro(pgcoro_factory)
    rc, out = run_jdbc(inst, "PreparedJdbc", "12")
    assert rc == 0 and out.startswith("ok "), out
    assert "does not exist" not in out and "already exists" not in out, out
    inst.assert_serving()


# A client's first named statement comes after unnamed requests still unanswered:
# tracking begins there, the answers to what came before pass up to a marker.
FIRST_NAMED = {
    "after-open-sequence": [
        parse("", "select 1") + bind("") + execute() + close("P", "") + parse("n1", "select 2")
        + bind("n1") + execute() + SYNC,
        bind("n1") + execute() + SYNC],
    "after-query": [
        Wire.msg("Q", b"select 1; select 2\0") + parse("", "select 3") + bind("") + execute()
        + parse("n1", "select 4") + bind("n1") + execute() + SYNC,
        bind("n1") + execute() + SYNC],
    "error-before": [
        parse("", "select 1/0") + bind("") + execute() + close("P", "")
        + parse("n1", "select 2") + bind("n1") + execute() + SYNC,
        bind("n1") + execute() + SYNC],
    "query-error-before": [
        Wire.msg("Q", b"select 1/0\0") + parse("", "select 1") + bind("") + execute()
        + parse("n1", "select 2") + describe("S", "n1") + bind("n1") + execute() + SYNC,
        bind("n1") + execute() + close("S", "n1") + SYNC],
}


@pytest.mark.parametrize("case", sorted(FIRST_NAMED))
def test_first_named_statement_mid_pipeline(pgcoro_factory, pg, case):
    inst = txn_pgcoro(pgcoro_factory)

    def run(w):
        out = []
        for batch in FIRST_NAMED[case]:
            w.send(batch)
            out.append(read_until_ready(w, batch.count(SYNC) + batch.count(b"Q\0\0\0")))
        return out

    d = Wire(pg.host, pg.port)
    d.login()
    want = run(d)
    d.terminate()
    w = Wire.to(inst)
    w.login()
    got = run(w)
    w.terminate()
    assert got == want
    inst.assert_serving()


# ---- what one client may make pgcoro hold ------------------------------------------------
# max_client_prepared_statements (names) and max_client_prepared_bytes (their statements):
# a Parse past either is refused with ERROR 53400 in its place in the pipeline (the rest
# up to Sync skipped, as PostgreSQL does after an error), with a server and without one;
# the session goes on, and a Close (or DISCARD ALL) frees the room.

ONE_SERVER = {"pool_mode": "transaction", "default_pool_size": 1}

OK_IDLE = [("1",), ("Z", "I")]


def run_batch(w, batch):
    w.send(batch)
    return read_until_ready(w, batch.count(SYNC) + batch.count(b"Q\0\0\0"))


def refused(answers, setting):
    """The answers start with pgcoro's 53400 naming SETTING."""
    assert answers[0][:2] == ("E", "53400"), answers
    assert setting in answers[0][2], answers
    return answers[1:]


def test_client_limit_count_both_paths(pgcoro_factory):
    """max_client_prepared_statements = 5: the 6th name is refused without a server
    (Parse+Sync while idle) and with one (inside a transaction, Bind and Execute behind it
    skipped); earlier statements and queries keep working; a Close makes room, DISCARD ALL
    too. Before: every name was taken, without limit."""
    inst = pgcoro_factory(settings=dict(ONE_SERVER, max_client_prepared_statements=5))
    w = Wire.to(inst)
    holder = Wire.to(inst)
    try:
        w.login()
        holder.login()
        for i in range(5):
            assert run_batch(w, parse(f"s{i}", f"select {i}") + SYNC) == OK_IDLE
        # no server free (the holder's transaction has the only one): answered at once,
        # without a server; the text is known (s0's), so before the limit this was
        # answered at once as well, with ParseComplete
        holder.query("BEGIN")
        assert refused(run_batch(w, parse("s5", "select 0") + SYNC),
                       "max_client_prepared_statements") == [("Z", "I")]
        holder.query("COMMIT")
        # with a server (inside a transaction): refused in its place, the rest skipped,
        # and the block fails there, as after any error in PostgreSQL
        assert run_batch(w, Wire.msg("Q", b"BEGIN\0")) == [("C", "BEGIN"), ("Z", "T")]
        got = run_batch(w, parse("s5", "select 5") + bind("s5") + execute() + SYNC)
        assert refused(got, "max_client_prepared_statements") == [("Z", "E")]
        assert run_batch(w, Wire.msg("Q", b"COMMIT\0")) == [("C", "ROLLBACK"), ("Z", "I")]
        assert run_batch(w, bind("s0") + execute() + bind("s4") + execute() + SYNC) == [
            ("2",), ("D", ("0",)), ("C", "SELECT 1"),
            ("2",), ("D", ("4",)), ("C", "SELECT 1"), ("Z", "I")]
        assert w.query("select 42") == [["42"]]
        # s5 does not exist; a pipeline whose first Parse fits and second does not
        got = run_batch(w, bind("s5") + execute() + SYNC)
        assert got[0][:2] == ("E", "26000") and got[1:] == [("Z", "I")], got
        got = run_batch(w, close("S", "s1") + parse("s5", "select 5") + parse("s6", "select 6")
                  + bind("s5") + execute() + SYNC)
        assert refused(got[2:], "max_client_prepared_statements") == [("Z", "I")]
        assert got[:2] == [("3",), ("1",)], got
        assert run_batch(w, bind("s5") + execute() + SYNC) == [
            ("2",), ("D", ("5",)), ("C", "SELECT 1"), ("Z", "I")]
        # DISCARD ALL forgets every name: room for 5 again
        assert run_batch(w, Wire.msg("Q", b"DISCARD ALL\0")) == [("C", "DISCARD ALL"), ("Z", "I")]
        for i in range(5):
            assert run_batch(w, parse(f"t{i}", f"select {i}") + SYNC) == OK_IDLE
        # a burst of 20 refusals in one pipeline
        got = run_batch(w, (parse("t5", "select 1") + SYNC) * 20)
        assert len(got) == 40 and all(a[:2] == ("E", "53400") for a in got[::2]), got
    finally:
        w.terminate()
        holder.terminate()
    # 24 refusals: logged, but at most one line per client per 10 s
    lines = [ln for ln in inst.log_text().splitlines() if "max_client_prepared_statements" in ln]
    assert 1 <= len(lines) <= 5, lines
    inst.assert_serving()


def big(i, size):
    """A distinct statement of about SIZE bytes."""
    return f"select {i} as n, '" + "x" * size + "'::text as pad"


def test_client_limit_bytes(pgcoro_factory):
    """max_client_prepared_bytes = 64kB, statements of 20 kB: the 4th is refused (idle and
    with a server), a Close makes room. Before: all were taken."""
    inst = pgcoro_factory(settings=dict(ONE_SERVER, max_client_prepared_bytes="64kB"))
    w = Wire.to(inst)
    try:
        w.login()
        for i in range(3):
            assert run_batch(w, parse(f"b{i}", big(i, 20000)) + SYNC) == OK_IDLE
        assert refused(run_batch(w, parse("b3", big(3, 20000)) + SYNC),
                       "max_client_prepared_bytes") == [("Z", "I")]
        got = run_batch(w, parse("b3", big(3, 20000)) + bind("b3") + execute() + SYNC)
        assert refused(got, "max_client_prepared_bytes") == [("Z", "I")]
        # a small one still fits
        assert run_batch(w, parse("small", "select 1") + SYNC) == OK_IDLE
        got = run_batch(w, bind("b1") + execute() + SYNC)
        assert got[0] == ("2",) and got[1][1][0] == "1" and got[-1] == ("Z", "I"), got[:2]
        assert run_batch(w, close("S", "b0") + SYNC) == [("3",), ("Z", "I")]
        got = run_batch(w, parse("b3", big(3, 20000)) + bind("b3") + execute() + SYNC)
        assert got[:2] == [("1",), ("2",)] and got[2][1][0] == "3", got[:3]
    finally:
        w.terminate()
    inst.assert_serving()


def test_client_limit_memory_bounded(pgcoro_factory):
    """A client preparing distinct 20 kB statements past max_client_prepared_bytes = 2MB
    (alternately Parse+Sync, answered without a server, and Parse+Bind+Execute+Sync, with
    one): pgcoro's RSS stays within 2 MB of statements, ASan's quarantine (16 MB, filled
    at ~2.5 kB per refused statement) and buffers: under 40 MB over its start all along,
    and once the quarantine is full (8,000 refused), 4,000 more refused grow it by less
    than 2 MB. Before: every statement was kept, ~30 kB each (60 MB per 2,000)."""
    inst = pgcoro_factory(settings=dict(ONE_SERVER, max_client_prepared_bytes="2MB"))
    w = Wire.to(inst)
    n = [0]

    def burst(count, chunk=25):
        for _ in range(count // chunk):
            batch = b""
            for _ in range(chunk):
                i = n[0]
                n[0] += 1
                text = big(i, 20000)
                if i % 2:
                    batch += parse(f"m{i}", text) + SYNC
                else:
                    batch += parse(f"m{i}", text) + bind(f"m{i}") + execute() + SYNC
            w.send(batch)
            read_until_ready(w, chunk)

    try:
        w.login()
        base = vmrss_kb(inst.pid)
        rss = []
        for _ in range(6):
            burst(2000)
            rss.append(vmrss_kb(inst.pid))
            assert rss[-1] - base < 40000, f"RSS grew {rss[-1] - base} kB after {n[0]}: {rss}"
        assert rss[-1] - rss[-3] < 2000, f"RSS kB from {base}: {rss}"
        assert w.query("select 1") == [["1"]]
    finally:
        w.terminate()
    inst.assert_serving()


# ---- errors pgcoro makes end the transaction as PostgreSQL's do --------------------------
# A duplicate name (42P05), an unknown name (26000) and a Parse past a client limit (53400)
# are answered by pgcoro; PostgreSQL would abort the transaction there: an explicit block
# goes to the failed state ('E'), the implicit transaction of a pipeline is rolled back at
# Sync. The server is made to fail at that point too, so what came before in the pipeline
# is not committed.

def Q(sql):
    return Wire.msg("Q", sql.encode() + b"\0")


def insert(table, v):
    return parse("", f"insert into {table} values ({v})") + bind("") + execute()


def make_table(pg, table, columns="a int", rows=()):
    sql = f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({columns});"
    sql += "".join(f"INSERT INTO {table} VALUES ({r});" for r in rows)
    pg.psql_super(sql + f"ALTER TABLE {table} OWNER TO app;", db="pooldb")


def compare_with_postgres(pg, inst, script, setup=None, n_clients=1):
    """SCRIPT: (client index, batch) pairs, each batch sent whole and answered up to its
    last ReadyForQuery. Run against PostgreSQL and through INST (SETUP before each run):
    the answers must be the same. Numbers in error messages (type OIDs) are not compared."""
    def run(connect):
        if setup:
            setup()
        ws = []
        try:
            for _ in range(n_clients):
                w = connect()
                w.login(database="pooldb")
                ws.append(w)
            out = []
            for k, batch in script:
                if callable(batch):
                    batch()  # a step outside the clients (DDL)
                    continue
                got = run_batch(ws[k], batch)
                out.append([(a[0], a[1], re.sub(r"\d+", "N", a[2])) if a[0] == "E" else a
                            for a in got])
            return out
        finally:
            for w in ws:
                w.terminate()

    want = run(lambda: Wire(pg.host, pg.port))
    got = run(lambda: Wire.to(inst))
    for k, (g, e) in enumerate(zip(got, want)):
        assert g == e, f"step {k}: through pgcoro {g}\n directly {e}"
    assert len(got) == len(want)


def aborts_script(t):
    count = Q(f"select count(*) from {t}")
    return [
        parse("d1", "select 1") + SYNC,
        # a pipeline: an INSERT, then a duplicate name: the INSERT is rolled back
        insert(t, 1) + parse("d1", "select 2") + bind("d1") + execute() + SYNC,
        count,
        # an unknown name (Bind, Describe) after an INSERT
        insert(t, 2) + bind("nosuch") + execute() + SYNC,
        insert(t, 3) + describe("S", "nosuch") + SYNC,
        count,
        # inside a transaction block: the block fails, later statements are refused
        Q("BEGIN"),
        insert(t, 4) + SYNC,
        parse("d1", "select 3") + SYNC,
        Q("select 1"),
        bind("d1") + execute() + SYNC,
        Q("ROLLBACK"),
        Q("BEGIN") + bind("nosuch") + execute() + SYNC + Q("ROLLBACK"),
        count,
        # the statement pgcoro refused nothing of survived: d1 still works
        bind("d1") + execute() + SYNC,
        # an error before pgcoro's own: PostgreSQL skips both; pgcoro's is not sent
        parse("", "select 1/0") + bind("") + execute() + parse("d1", "select 4") + SYNC,
        insert(t, 5) + SYNC + count,
    ]


def test_pooler_errors_abort_like_postgres(pgcoro_factory, pg):
    """Before: the server committed the INSERT before pgcoro's error (count 1, then 2...)
    and a transaction block stayed 'T' after it."""
    inst = txn_pgcoro(pgcoro_factory)
    script = [(0, b) for b in aborts_script("pe_t")]
    compare_with_postgres(pg, inst, script, setup=lambda: make_table(pg, "pe_t"))
    inst.assert_serving()


@pytest.mark.pooler_only
def test_client_limit_refusal_aborts(pgcoro_factory, pg):
    """A Parse past max_client_prepared_statements inside a pipeline or a block ends the
    transaction as an error there does in PostgreSQL. Before: the INSERT before it was
    committed and the block stayed 'T'."""
    make_table(pg, "pl_t")
    inst = pgcoro_factory(settings=dict(ONE_SERVER, max_client_prepared_statements=1))
    w = Wire.to(inst)
    try:
        w.login(database="pooldb")
        assert run_batch(w, parse("p1", "select 1") + SYNC) == OK_IDLE
        got = run_batch(w, insert("pl_t", 1) + parse("p2", "select 2") + SYNC)
        assert got[:2] == [("1",), ("2",)] and got[2] == ("C", "INSERT 0 1"), got
        assert refused(got[3:], "max_client_prepared_statements") == [("Z", "I")]
        assert w.query("select count(*) from pl_t") == [["0"]]
        assert run_batch(w, Q("BEGIN") + insert("pl_t", 2) + SYNC)[-1] == ("Z", "T")
        got = run_batch(w, parse("p2", "select 2") + bind("p1") + execute() + SYNC)
        assert refused(got, "max_client_prepared_statements") == [("Z", "E")]
        got = run_batch(w, Q("select 1"))
        assert got[0][:2] == ("E", "25P02") and got[1:] == [("Z", "E")], got
        assert run_batch(w, Q("ROLLBACK")) == [("C", "ROLLBACK"), ("Z", "I")]
        assert w.query("select count(*) from pl_t") == [["0"]]
        assert run_batch(w, bind("p1") + execute() + SYNC) == [
            ("2",), ("D", ("1",)), ("C", "SELECT 1"), ("Z", "I")]
    finally:
        w.terminate()
    inst.assert_serving()


# ---- SQL DEALLOCATE of a protocol-level statement ------------------------------------------
# psycopg 3 (libpq < 17) drops its statements with DEALLOCATE name; pgcoro renamed them on
# the server, so it translates: the client's name goes, as in PostgreSQL, with PostgreSQL's
# answers (in a failed block: 25P02 and the statement stays; DEALLOCATE is not undone by a
# ROLLBACK).

def dealloc_script():
    ext = lambda sql: parse("", sql) + bind("") + describe("P", "") + execute() + SYNC
    return [
        parse("Mixed", "select 1") + parse("lower", "select 2") + parse("_pg3_0", "select 3")
        + SYNC,
        Q('DEALLOCATE "Mixed"'),
        bind("Mixed") + execute() + SYNC,
        Q("deallocate prepare LOWER ;"),
        Q("DEALLOCATE lower"),  # gone already: the server's 26000
        parse("lower", "select 'again'") + bind("lower") + execute() + SYNC,
        # the extended protocol, as psycopg 3 sends it
        ext("DEALLOCATE _pg3_0"),
        bind("_pg3_0") + execute() + SYNC,
        parse("_pg3_0", "select 4") + bind("_pg3_0") + execute() + SYNC,
        ext("DEALLOCATE PREPARE _pg3_0"),
        # in a transaction block: done at once, not undone by ROLLBACK
        Q("BEGIN"),
        Q("DEALLOCATE lower"),
        Q("ROLLBACK"),
        bind("lower") + execute() + SYNC,
        # in a failed block: 25P02, and the statement stays
        parse("keep", "select 5") + SYNC,
        Q("BEGIN"),
        Q("select 1/0"),
        Q("DEALLOCATE keep"),
        ext("DEALLOCATE keep"),
        Q("ROLLBACK"),
        bind("keep") + execute() + SYNC,
        # an error earlier in the pipeline: the DEALLOCATE is skipped, the name stays
        parse("", "select 1/0") + bind("") + execute() + parse("", "DEALLOCATE keep")
        + bind("") + execute() + SYNC,
        bind("keep") + execute() + SYNC,
        # DEALLOCATE and a new Parse of the name in one batch
        Q("DEALLOCATE keep") + parse("keep", "select 6") + bind("keep") + execute() + SYNC,
        ext("DEALLOCATE keep") + parse("keep", "select 7") + bind("keep") + execute() + SYNC,
        # names that are not the client's pass to the server as they are
        Q("DEALLOCATE nosuch"),
        ext("DEALLOCATE nosuch"),
    ]


def test_deallocate_like_postgres(pgcoro_factory, pg):
    """Before: "prepared statement does not exist" for each DEALLOCATE of a protocol-level
    name, which stayed (a new Parse of it: 42P05)."""
    inst = txn_pgcoro(pgcoro_factory)
    compare_with_postgres(pg, inst, [(0, b) for b in dealloc_script()])
    inst.assert_serving()


def test_deallocate_frees_the_name(pgcoro_factory):
    """A DEALLOCATE gives the name's room back (max_client_prepared_statements = 2)."""
    inst = pgcoro_factory(settings=dict(ONE_SERVER, max_client_prepared_statements=2))
    w = Wire.to(inst)
    try:
        w.login()
        for i in range(10):
            got = run_batch(w, parse(f"_pg3_{i}", f"select {i}") + bind(f"_pg3_{i}")
                            + execute() + SYNC)
            assert got == [("1",), ("2",), ("D", (str(i),)), ("C", "SELECT 1"), ("Z", "I")], got
            if i % 2:
                assert run_batch(w, Q(f"DEALLOCATE _pg3_{i}")) == [
                    ("C", "DEALLOCATE"), ("Z", "I")]
            else:
                assert run_batch(w, parse("", f"DEALLOCATE _pg3_{i}") + bind("") + execute()
                                 + SYNC) == [("1",), ("2",), ("C", "DEALLOCATE"), ("Z", "I")]
    finally:
        w.terminate()
    inst.assert_serving()


# ---- a statement prepared before a schema change ------------------------------------------
# PostgreSQL answers a statement whose result type changed with 0A000 "cached plan must not
# change result type", one that names a dropped type with XX000 "cache lookup failed for
# type", until the client prepares it again. Through pgcoro the server statement is shared
# by every client preparing that text: it is retired on the first such error, and the
# next Parse of the text prepares a fresh one.

SEL = "select * from st_t order by a"
MOOD = "select $1::st_mood"


def stale_setup(pg):
    pg.psql_super("DROP TYPE IF EXISTS st_mood; CREATE TYPE st_mood AS ENUM ('a', 'b');",
                  db="pooldb")
    make_table(pg, "st_t", rows=(1,))


def stale_ddl(pg):
    pg.psql_super("ALTER TABLE st_t ADD COLUMN b int DEFAULT 7; DROP TYPE st_mood; "
                  "CREATE TYPE st_mood AS ENUM ('a', 'b');", db="pooldb")


def stale_script(pg):
    use = lambda n, sql, params=(): (parse(n, sql) + describe("S", n) + bind(n, params)
                                     + execute())
    return [
        # clients 0 and 1 prepare the same texts, each inside a transaction (so through
        # pgcoro on two servers, both preparing them)
        (0, Q("BEGIN") + use("a1", SEL) + use("m1", MOOD, ["a"]) + SYNC),
        (1, Q("BEGIN") + use("b1", SEL) + use("n1", MOOD, ["a"]) + SYNC),
        (0, Q("COMMIT")),
        (1, Q("COMMIT")),
        (0, lambda: stale_ddl(pg)),
        # the statement prepared before: an error (once per statement, as in PostgreSQL)
        (0, bind("a1") + execute() + SYNC),
        # prepared again under a new name (asyncpg, pgjdbc): the new row shape
        (0, use("a2", SEL) + SYNC),
        (0, bind("m1", ["a"]) + execute() + SYNC),
        (0, use("m2", MOOD, ["b"]) + SYNC),
        (0, bind("a1") + execute() + SYNC),
        # the other client's statements: the same errors, in a block too (aborted)
        (1, Q("BEGIN") + bind("b1") + execute() + SYNC),
        (1, Q("select 1") + Q("ROLLBACK")),
        (1, bind("n1", ["b"]) + execute() + SYNC),
        # closed and prepared again under the same name; DEALLOCATE and again
        (1, close("S", "b1") + use("b1", SEL) + SYNC),
        (1, Q("DEALLOCATE n1") + use("n1", MOOD, ["b"]) + SYNC),
        # a client that prepares after the change: no error at all
        (2, use("c1", SEL) + use("c2", MOOD, ["a"]) + SYNC),
    ]


def test_stale_statement_like_postgres(pgcoro_factory, pg):
    """Before: the new Parse of the same text (a2, m2, b1 again, c1) mapped to the stale
    server statement: the same error again, for every client, until servers were
    recycled."""
    inst = txn_pgcoro(pgcoro_factory)
    compare_with_postgres(pg, inst, stale_script(pg), setup=lambda: stale_setup(pg),
                          n_clients=3)
    inst.assert_serving()


@pytest.mark.pooler_only
def test_statement_dropped_behind_pgcoro_is_prepared_again(pgcoro_factory):
    """A server statement deallocated behind pgcoro's back by dynamic SQL (which pgcoro
    cannot see): its next use gets PostgreSQL's 26000 once, then it is prepared there
    again. Before: 26000 for ever on that server. By plain SQL (a "DEALLOCATE" tag
    pgcoro did not cause) the server's statements are forgotten at once and prepared
    again under new names: no error at all (before: the 26000 once)."""
    inst = pgcoro_factory(settings=ONE_SERVER)
    w = Wire.to(inst)
    try:
        w.login()
        ok = [("2",), ("D", ("1",)), ("C", "SELECT 1"), ("Z", "I")]
        assert run_batch(w, parse("s1", "select 1") + bind("s1") + execute() + SYNC) == \
            [("1",)] + ok
        [[name]] = w.query("select name from pg_prepared_statements")
        assert name.startswith("PGCORO_"), name
        w.query(f"DO $$ BEGIN EXECUTE 'DEALLOCATE \"{name}\"'; END $$")
        got = run_batch(w, bind("s1") + execute() + SYNC)
        assert got[0][:2] == ("E", "26000") and got[1:] == [("Z", "I")], got
        assert run_batch(w, bind("s1") + execute() + SYNC) == ok
        assert run_batch(w, bind("s1") + execute() + SYNC) == ok
        [[name2]] = w.query("select name from pg_prepared_statements")
        assert name2 != name, name
        w.query(f'DEALLOCATE "{name2}"')
        assert run_batch(w, bind("s1") + execute() + SYNC) == ok
        assert run_batch(w, bind("s1") + execute() + SYNC) == ok
        [[name3]] = w.query("select name from pg_prepared_statements")
        assert name3 not in (name, name2), name3
    finally:
        w.terminate()
    inst.assert_serving()


# ---- DEALLOCATE ALL and DISCARD ALL -------------------------------------------------------
# PgBouncer closes a client that uses a statement after its own DEALLOCATE ALL or DISCARD
# ALL ("prepared statement did not exist"); PostgreSQL answers 26000 and the session goes
# on, and so does pgcoro: the client's names are forgotten, others' are not, and the same
# names can be prepared again.

def drop_all_script():
    both = parse("a", "select 1") + parse("b", "select 2") + SYNC
    use = lambda n: bind(n) + execute() + SYNC
    return [
        (0, both),
        (1, parse("a", "select 1") + SYNC),
        # the extended protocol
        (0, parse("", "DEALLOCATE ALL") + bind("") + execute() + SYNC),
        (0, use("a")),
        (0, describe("S", "b") + SYNC),
        (1, use("a")),
        (0, both),
        # inside a Query of several statements
        (0, Q("select 1; DEALLOCATE ALL")),
        (0, use("b")),
        (0, both),
        (0, Q("DISCARD ALL") + use("a")),
        # and a Parse of the same name after it (in the same batch pgcoro would still
        # see the name: 42P05)
        (0, parse("a", "select 3") + SYNC + Q("DEALLOCATE PREPARE ALL")),
        (0, parse("a", "select 4") + use("a")),
        # in a failed block: 25P02, and the names stay
        (0, Q("BEGIN") + Q("select 1/0") + Q("DEALLOCATE ALL") + Q("ROLLBACK")),
        (0, use("a")),
        (1, Q("DISCARD ALL")),
        (1, use("a")),
        (0, use("a")),
    ]


def test_drop_all_like_postgres(pgcoro_factory, pg):
    inst = txn_pgcoro(pgcoro_factory)
    compare_with_postgres(pg, inst, drop_all_script(), n_clients=2)
    inst.assert_serving()


# ---- a failed transaction block -----------------------------------------------------------
# In a failed block PostgreSQL refuses a Parse (25P02, the name is not made) before it
# looks at the name, while a Bind or Describe of an unknown name is still 26000 and a
# Close still works. pgcoro answers some of these itself (a text the server already has,
# a duplicate name): it must answer as PostgreSQL does.

def failed_block_script():
    fail = Q("BEGIN") + Q("select 1/0")
    return [
        parse("f1", "select 1") + SYNC,
        fail,
        # a duplicate name; a new name for a text the server has; that name, unknown
        parse("f1", "select 2") + SYNC,
        parse("f2", "select 1") + SYNC,
        bind("f2") + execute() + SYNC,
        describe("S", "nosuch") + SYNC,
        bind("nosuch") + execute() + SYNC,
        # a Close works in a failed block
        close("S", "f1") + SYNC,
        Q("ROLLBACK"),
        bind("f1") + execute() + SYNC,
        bind("f2") + execute() + SYNC,
        # the block fails in the same batch as the Parse (pipelined behind Syncs)
        parse("f3", "select 3") + SYNC,
        fail + parse("f4", "select 3") + SYNC + parse("f3", "select 4") + SYNC + Q("ROLLBACK"),
        bind("f4") + execute() + SYNC,
        bind("f3") + execute() + SYNC,
        # not failed: a Parse pipelined behind a Sync is answered as usual
        Q("BEGIN") + parse("f5", "select 3") + SYNC + bind("f5") + execute() + SYNC
        + Q("COMMIT"),
        bind("f5") + execute() + SYNC,
    ]


def test_failed_block_like_postgres(pgcoro_factory, pg):
    """Before: in a failed block, the Parse of a text the server already had was answered
    ParseComplete (and the name made), a duplicate name 42P05, where PostgreSQL answers
    25P02."""
    inst = pgcoro_factory(settings=ONE_SERVER)
    compare_with_postgres(pg, inst, [(0, b) for b in failed_block_script()])
    inst.assert_serving()


# ---- counters ------------------------------------------------------------------------------
# SHOW STATS has PgBouncer's (1.21+) prepared-statement counters: named Parses of clients
# (total_client_parse_count), Parses pgcoro sent to servers (total_server_parse_count) and
# Binds of named statements it forwarded (total_bind_count), with their per-second
# averages over the last stats_period.

PS_COUNTERS = ("client_parse_count", "server_parse_count", "bind_count")


def ps_stats(inst, db="postgres"):
    import psycopg2
    c = psycopg2.connect(host=inst.host, port=inst.port, user="admin", password="adminpw",
                         dbname="pgcoro", connect_timeout=30)
    c.autocommit = True
    try:
        cur = c.cursor()
        cur.execute("SHOW STATS")
        names = [d.name for d in cur.description]
        row = next(dict(zip(names, r)) for r in cur.fetchall() if r[0] == db)
    finally:
        c.close()
    for k in PS_COUNTERS:
        assert int(row["avg_" + k]) >= 0, row
    return tuple(int(row["total_" + k]) for k in PS_COUNTERS)


@pytest.mark.pooler_only
def test_prepared_counters_in_show_stats(pgcoro_factory):
    """The suite's scenario (test_prepared_statement_counters) with raw messages: 2 named
    Parses of one text by two clients, prepared on 2 servers, 5 Binds of it; unnamed
    statements, a duplicate name and an unknown one count nothing. Before: no such
    columns."""
    inst = pgcoro_factory(settings=dict(TXN, admin_users="admin"),
                          users={"admin": "adminpw"})
    a, b = Wire.to(inst), Wire.to(inst)
    use = bind("s") + execute() + SYNC
    try:
        a.login()
        b.login()
        assert run_batch(a, parse("", "select 1") + bind("") + execute() + SYNC)[-1] == ("Z", "I")
        assert ps_stats(inst) == (0, 0, 0)
        assert run_batch(a, parse("s", "select 1") + use)[:2] == [("1",), ("2",)]
        assert ps_stats(inst) == (1, 1, 1)
        run_batch(a, use)
        run_batch(a, use)
        assert ps_stats(inst) == (1, 1, 3)
        # b holds the only server in a transaction: a's next Bind gets the second one,
        # which prepares the statement; b's Parse of the same text on the first does not
        assert run_batch(b, Q("BEGIN")) == [("C", "BEGIN"), ("Z", "T")]
        assert run_batch(a, use)[0] == ("2",)
        assert ps_stats(inst) == (1, 2, 4)
        assert run_batch(b, parse("t", "select 1") + bind("t") + execute() + SYNC)[:2] == [
            ("1",), ("2",)]
        assert run_batch(b, Q("COMMIT"))[-1] == ("Z", "I")
        assert ps_stats(inst) == (2, 2, 5)
        # refused ones: a duplicate name, an unknown one (by the other client: at most one
        # such line per client in 10 s)
        assert run_batch(a, parse("s", "select 2") + SYNC)[0][:2] == ("E", "42P05")
        assert run_batch(b, bind("nosuch") + execute() + SYNC)[0][:2] == ("E", "26000")
        assert ps_stats(inst) == (2, 2, 5)
    finally:
        a.terminate()
        b.terminate()
    # pgcoro's own refusals are logged, in PgBouncer's words
    log = inst.log_text()
    assert "pooler error 42P05: prepared statement 's' was already prepared" in log, log
    assert "pooler error 26000: prepared statement 'nosuch' not found" in log, log
    inst.assert_serving()
