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
        # with a server (inside a transaction): refused in its place, the rest skipped
        assert run_batch(w, Wire.msg("Q", b"BEGIN\0")) == [("C", "BEGIN"), ("Z", "T")]
        got = run_batch(w, parse("s5", "select 5") + bind("s5") + execute() + SYNC)
        assert refused(got, "max_client_prepared_statements") == [("Z", "T")]
        assert run_batch(w, bind("s0") + execute() + bind("s4") + execute() + SYNC) == [
            ("2",), ("D", ("0",)), ("C", "SELECT 1"),
            ("2",), ("D", ("4",)), ("C", "SELECT 1"), ("Z", "T")]
        assert run_batch(w, Wire.msg("Q", b"COMMIT\0")) == [("C", "COMMIT"), ("Z", "I")]
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
