"""Transaction and statement pooling: pgbench (200 clients) over a pool of 10, server reuse across
clients, one backend per transaction, extended protocol and COPY never split, statement
mode refusing transaction blocks, pool_mode set per database and per user."""

import io
import re
import struct
import subprocess
import threading

import pytest

from conftest import (APP_PASS, APP_USER, MD5_PASS, MD5_USER, PgError, PgSampler, Wire,
                      clean_env, client_backends, pg_rows, recreate_database, wait_until,
                      wire_exec)

pytestmark = pytest.mark.pooler_only

DB = "txndb"
IDLE_IN_XACT = ("idle in transaction", "idle in transaction (aborted)")


@pytest.fixture(scope="module")
def txndb(pg):
    recreate_database(pg, DB, setup_sql="""
        CREATE TABLE t_txn (client int, txn int, pid int);
        CREATE TABLE t_ext (seq bigserial primary key, who text, pid int);
        CREATE TABLE t_copy (a int, b text);
        CREATE TABLE t_stmt (a int);
        ALTER TABLE t_txn OWNER TO app; ALTER TABLE t_ext OWNER TO app;
        ALTER TABLE t_copy OWNER TO app; ALTER TABLE t_stmt OWNER TO app;
    """)
    yield DB
    pg.psql_super(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE);")


def conninfo(pg, **settings):
    extra = "".join(f" {k}={v}" for k, v in settings.items())
    return f"host=127.0.0.1 port={pg.port} dbname={DB}{extra}"


def start(pgcoro_factory, pg, pool_size, pool_mode="transaction", **settings):
    return pgcoro_factory(settings=settings, databases={
        DB: conninfo(pg, pool_size=pool_size, pool_mode=pool_mode)})


def wire(inst, db=DB, user=APP_USER, password=APP_PASS, timeout=20.0):
    """A logged-in raw client; every read is bounded by TIMEOUT."""
    w = Wire.to(inst, timeout=timeout)
    w.login(user, password, db)
    return w


def no_idle_in_xact(pg, db=DB):
    return not [b for b in client_backends(pg, db) if b[2] in IDLE_IN_XACT]


# ---------------------------------------------------------------------------------------
# 1. pgbench: 200 clients over a transaction pool of 10


class BackendMonitor(PgSampler):
    """Samples, in a thread, how many client backends PostgreSQL shows on a database."""

    interval = 0.02
    min_samples = 2

    def __init__(self, pg, db):
        super().__init__(pg)
        self.db = db
        self.peak = 0

    def sample(self):
        self.cur.execute("select count(*) from pg_stat_activity where datname = %s "
                         "and backend_type = 'client backend'", (self.db,))
        self.peak = max(self.peak, self.cur.fetchone()[0])


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_transaction_mode(pgcoro_factory, pg, mode):
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 10,
                                    "max_client_conn": 400})
    # backends of earlier tests' pgcoro instances on "bench" are gone before we count
    wait_until(lambda: not client_backends(pg, "bench"), "no backend left on bench")
    # -t, not -T 3: pgbench 15 counts -T from before its 200 logins, which take seconds
    # on a loaded machine (a run with 0 transactions proves nothing); 10 transactions per
    # client is about as much work, and the count must then be exact
    argv = [pg.pgbench_bin, "-n", "-c", "200", "-j", "4", "-t", "10", "-M", mode, "-h",
            inst.host, "-p", str(inst.port), "-U", APP_USER, "bench"]
    with BackendMonitor(pg, "bench") as mon:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=180,
                           env=clean_env(PGPASSWORD=APP_PASS, PGCONNECT_TIMEOUT=60))
    out = r.stdout + r.stderr
    print(out)
    assert r.returncode == 0, out
    m = re.search(r"number of transactions actually processed: (\d+)/(\d+)", out)
    assert m and int(m.group(1)) == int(m.group(2)) == 2000, out
    m = re.search(r"number of failed transactions: (\d+)", out)
    assert m and int(m.group(1)) == 0, out
    bad = [ln for ln in out.splitlines() if re.search(r"error|fatal|abort", ln, re.I)]
    assert not bad, out
    assert 0 < mon.peak <= 10, f"PostgreSQL showed {mon.peak} backends for a pool of 10"
    assert re.search(r"pool bench/app created: pool_size=10 pool_mode=transaction",
                     inst.log_text()), inst.log_tail(40)
    inst.assert_serving()
    inst.assert_clean_exit()


# ---------------------------------------------------------------------------------------
# 2. servers reused across clients


def test_server_reuse_across_sessions(pgcoro_factory, pg, txndb):
    inst = start(pgcoro_factory, pg, pool_size=3)
    pids = []
    for i in range(50):
        c = inst.connect(db=DB)
        try:
            cur = c.cursor()
            cur.execute("insert into t_txn values (%s, 0, pg_backend_pid())", (1000 + i,))
            cur.execute("select pg_backend_pid()")
            pids.append(cur.fetchone()[0])
            c.commit()
        finally:
            c.close()
    assert len(pids) == 50
    assert len(set(pids)) <= 3, f"{len(set(pids))} distinct backends for a pool of 3: {pids}"
    rows = pg_rows(pg, "select count(*) from t_txn where client >= 1000 and client < 1050",
                   db=DB)
    assert rows == [(50,)], rows
    wait_until(lambda: no_idle_in_xact(pg), f"no backend idle in transaction: "
               f"{client_backends(pg, DB)}")


# ---------------------------------------------------------------------------------------
# 3. every statement of a transaction on the same backend, 20 clients over 3 servers


def test_transaction_stays_on_one_backend(pgcoro_factory, pg, txndb):
    inst = start(pgcoro_factory, pg, pool_size=3)
    nclients, ntxn = 20, 5
    # all 20 are logged in at once over 3 servers: only transaction pooling allows it
    barrier = threading.Barrier(nclients)
    errors, seen = [], {}

    def client(i):
        try:
            c = inst.connect(db=DB)
            try:
                barrier.wait(timeout=60)
                cur = c.cursor()
                mine = []
                for n in range(ntxn):
                    got = []
                    cur.execute("select pg_backend_pid()")          # BEGIN; then this
                    got.append(cur.fetchone()[0])
                    cur.execute("insert into t_txn values (%s, %s, pg_backend_pid())", (i, n))
                    cur.execute("select pg_sleep(0.005), pg_backend_pid()")
                    got.append(cur.fetchone()[1])
                    cur.execute("select pid from t_txn where client = %s and txn = %s", (i, n))
                    got.append(cur.fetchone()[0])
                    cur.execute("select pg_backend_pid()")
                    got.append(cur.fetchone()[0])
                    c.commit()
                    assert len(set(got)) == 1, (
                        f"client {i} transaction {n} ran on several backends: {got}")
                    mine.append(got[0])
                seen[i] = mine
            finally:
                c.close()
        except Exception as e:  # reported below
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(nclients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "clients still running after 120 s"
    assert not errors, errors[:5]
    assert sorted(seen) == list(range(nclients))
    all_pids = {p for v in seen.values() for p in v}
    assert len(all_pids) <= 3, f"{len(all_pids)} backends for a pool of 3"
    rows = pg_rows(pg, "select count(*), count(distinct (client, txn)) from t_txn "
                       "where client < %s", (nclients,), db=DB)
    assert rows == [(nclients * ntxn, nclients * ntxn)], rows
    wait_until(lambda: no_idle_in_xact(pg), f"no backend idle in transaction: "
               f"{client_backends(pg, DB)}")


# ---------------------------------------------------------------------------------------
# 4. extended protocol: no release before Sync


def ext_insert(who):
    """Parse/Bind/Execute (unnamed) of an insert into t_ext."""
    sql = f"insert into t_ext (who, pid) values ('{who}', pg_backend_pid())".encode()
    return (Wire.msg("P", b"\0" + sql + b"\0" + struct.pack("!h", 0))
            + Wire.msg("B", b"\0\0" + struct.pack("!hhh", 0, 0, 0))
            + Wire.msg("E", b"\0" + struct.pack("!i", 0)))


def test_extended_protocol_not_released_before_sync(pgcoro_factory, pg, txndb):
    pg_rows(pg, "truncate t_ext", db=DB)
    inst = start(pgcoro_factory, pg, pool_size=1)
    a = wire(inst)
    b = wire(inst)     # logged in before A holds the only server
    try:
        a.send(ext_insert("A1") + Wire.msg("H"))                 # Flush, no Sync
        got = [a.read_msg()[0] for _ in range(3)]
        assert got == ["1", "2", "C"], got
        b_result = {}

        def b_query():
            try:
                b_result["r"] = wire_exec(b, "insert into t_ext (who, pid) values "
                                             "('B', pg_backend_pid())")
            except Exception as e:  # examined below
                b_result["exc"] = repr(e)

        bt = threading.Thread(target=b_query, daemon=True)
        bt.start()
        # the pause: B's query is in pgcoro; with A's server wrongly released it would
        # run now, inside or after A's open implicit transaction
        bt.join(timeout=1.5)
        assert bt.is_alive(), f"B was answered while A was mid extended protocol: {b_result}"
        a.send(ext_insert("A2") + Wire.msg("S"))
        got = []
        while not got or got[-1][0] != "Z":
            t, p = a.read_msg()
            got.append((t, p))
        assert [t for t, _ in got] == ["1", "2", "C", "Z"], got
        assert got[-1][1] == b"I", got
        bt.join(timeout=20)
        assert not bt.is_alive(), "B not answered 20 s after A's Sync"
        assert "exc" not in b_result, b_result
        rows, errs, ready = b_result["r"]
        assert not errs and ready == "I", b_result
        a.terminate()
        b.terminate()
    finally:
        a.close()
        b.close()
    rows = pg_rows(pg, "select who, pid, xmin::text from t_ext order by seq", db=DB)
    assert [r[0] for r in rows] == ["A1", "A2", "B"], rows
    assert len({r[1] for r in rows}) == 1, f"pool of 1, several backends: {rows}"
    assert rows[0][2] == rows[1][2], f"A's two inserts not in one transaction: {rows}"
    assert rows[2][2] != rows[0][2], f"B ran inside A's transaction: {rows}"


# ---------------------------------------------------------------------------------------
# 5. COPY in transaction mode, the only server shared with a busy client


def test_copy_in_transaction_mode(pgcoro_factory, pg, txndb):
    pg_rows(pg, "truncate t_copy", db=DB)
    inst = start(pgcoro_factory, pg, pool_size=1)
    stop = threading.Event()
    other = {"n": 0, "errors": []}

    def busy():
        try:
            c = inst.connect(db=DB)
            c.autocommit = True
            try:
                cur = c.cursor()
                while not stop.is_set():
                    cur.execute("select %s::int + 1", (other["n"],))
                    assert cur.fetchone() == (other["n"] + 1,)
                    other["n"] += 1
            finally:
                c.close()
        except Exception as e:  # reported below
            other["errors"].append(repr(e))

    bt = threading.Thread(target=busy, daemon=True)
    bt.start()
    c = inst.connect(db=DB)
    try:
        cur = c.cursor()
        total = 0
        for it in range(6):
            c.autocommit = bool(it % 2)        # inside BEGIN ... COMMIT and on its own
            data = "".join(f"{it * 1000 + k}\trow {it} {k}\n" for k in range(1000))
            cur.copy_expert("COPY t_copy (a, b) FROM STDIN", io.StringIO(data))
            if not c.autocommit:
                c.commit()
            total += 1000
            out = io.StringIO()
            cur.copy_expert(f"COPY (select a, b from t_copy where a >= {it * 1000} and "
                            f"a < {(it + 1) * 1000} order by a) TO STDOUT", out)
            if not c.autocommit:
                c.commit()
            assert out.getvalue() == data, f"COPY round trip {it} differs"
        c.autocommit = True
        cur.execute("select count(*), count(distinct a) from t_copy")
        assert cur.fetchone() == (total, total)
    finally:
        c.close()
        stop.set()
        bt.join(timeout=30)
    assert not bt.is_alive() and not other["errors"], other
    assert other["n"] > 0, "the other client never ran"
    wait_until(lambda: no_idle_in_xact(pg), f"no backend idle in transaction: "
               f"{client_backends(pg, DB)}")
    inst.assert_serving(db=DB)


# ---------------------------------------------------------------------------------------
# 6. statement mode


def test_statement_mode(pgcoro_factory, pg, txndb):
    pg_rows(pg, "truncate t_stmt", db=DB)
    inst = start(pgcoro_factory, pg, pool_size=1, pool_mode="statement")
    # single statements, and an implicit multi-statement transaction, from two clients
    # sharing the only server
    c1, c2 = wire(inst), wire(inst)
    try:
        pids = set()
        for i in range(5):
            for w in (c1, c2):
                rows, errs, ready = wire_exec(w, f"select pg_backend_pid(), {i}")
                assert not errs and ready == "I" and rows[0][1] == str(i), (rows, errs)
                pids.add(rows[0][0])
        rows, errs, ready = wire_exec(c1, "insert into t_stmt values (1); select 7")
        assert not errs and ready == "I" and rows == [["7"]], (rows, errs, ready)
        assert len(pids) == 1, pids
        pid = int(pids.pop())
        c2.terminate()
        # a transaction block: FATAL 0A000, the client is closed
        c1.send(Wire.msg("Q", b"begin; insert into t_stmt values (2)\0"))
        err = c1.expect_error()
        assert err.get("S") == "FATAL" and err.get("C") == "0A000", err
        assert err["M"] == "transaction blocks not allowed in statement pooling mode", err
        assert c1.at_eof(timeout=20), "client not closed after the FATAL"
    finally:
        c1.close()
        c2.close()
    # the server was rolled back and is reused: same backend, nothing left open
    wait_until(lambda: no_idle_in_xact(pg), f"no backend idle in transaction: "
               f"{client_backends(pg, DB)}")
    with wire(inst) as w:
        rows, errs, ready = wire_exec(w, "select pg_backend_pid(), (select array_agg(a order "
                                         "by a) from t_stmt), txid_current_if_assigned()")
        assert not errs and ready == "I", errs
        assert rows == [[str(pid), "{1}", None]], rows
        w.terminate()
    assert pg_rows(pg, "select array_agg(a) from t_stmt", db=DB) == [([1],)]
    # (assert_serving's psycopg2 opens a transaction block, refused in statement mode)
    inst.assert_serving(db="postgres")


# ---------------------------------------------------------------------------------------
# 7. pool_mode per database and per user (user wins over database over global)


def expect_login_wait_timeout(inst, db, user=APP_USER, password=APP_PASS):
    """A login that must wait for a server and get query_wait_timeout's 57014."""
    w = Wire.to(inst, timeout=30)
    try:
        with pytest.raises(PgError) as ei:
            w.login(user, password, db)
            wire_exec(w, "select 1")   # a pooler that links lazily: the first query waits
        assert ei.value.sqlstate == "57014", ei.value.fields
    finally:
        w.close()


def test_pool_mode_per_database_and_user(pgcoro_factory, pg, txndb):
    inst = pgcoro_factory(
        settings={"pool_mode": "session", "default_pool_size": 1, "query_wait_timeout": 2},
        databases={DB: conninfo(pg, pool_mode="transaction")},
        user_settings={MD5_USER: "pool_mode=statement"})

    # global session (app@postgres): a logged-in client keeps the only server, across
    # its transactions; a second client cannot get one
    x = wire(inst, db="postgres")
    try:
        p1 = wire_exec(x, "begin; select pg_backend_pid()")[0][0][0]
        assert wire_exec(x, "commit")[2] == "I"
        p2 = wire_exec(x, "select pg_backend_pid()")[0][0][0]
        assert p1 == p2
        expect_login_wait_timeout(inst, "postgres")
        rows, errs, ready = wire_exec(x, "begin; select 1; commit")
        assert not errs and ready == "I", errs
    finally:
        x.terminate()

    # database transaction (app@txndb): two logged-in clients share the only server,
    # transaction blocks allowed
    a, b = wire(inst), wire(inst)
    try:
        pids = set()
        for i in range(3):
            for w in (a, b):
                rows, errs, ready = wire_exec(w, "begin")
                assert not errs and ready == "T", errs
                rows, errs, ready = wire_exec(w, f"select pg_backend_pid(), {i}")
                assert not errs and ready == "T", errs
                pids.add(rows[0][0])
                rows, errs, ready = wire_exec(w, "commit")
                assert not errs and ready == "I", errs
        assert len(pids) == 1, pids
    finally:
        a.terminate()
        b.terminate()

    # user statement (md5user) wins over the database's transaction and the global session
    for db in (DB, "postgres"):
        u1, u2 = (wire(inst, db=db, user=MD5_USER, password=MD5_PASS) for _ in range(2))
        try:
            for w in (u1, u2):    # both logged in at once over a pool of 1
                rows, errs, ready = wire_exec(w, "select current_user")
                assert not errs and rows == [[MD5_USER]], (rows, errs)
            u1.send(Wire.msg("Q", b"begin\0"))
            err = u1.expect_error()
            assert err.get("C") == "0A000", (db, err)
            assert u1.at_eof(timeout=20)
            rows, errs, ready = wire_exec(u2, "select 2")
            assert not errs and rows == [["2"]], (rows, errs)
        finally:
            u1.close()
            u2.terminate()
    log = inst.log_text()
    for line in (f"pool postgres/{APP_USER} created: pool_size=1 pool_mode=session",
                 f"pool {DB}/{APP_USER} created: pool_size=1 pool_mode=transaction",
                 f"pool {DB}/{MD5_USER} created: pool_size=1 pool_mode=statement",
                 f"pool postgres/{MD5_USER} created: pool_size=1 pool_mode=statement"):
        assert line in log, f"missing log line {line!r}\n{inst.log_tail(40)}"
    inst.assert_serving()
    inst.assert_clean_exit()


def test_client_leaving_inside_a_transaction_passes_nothing_on(pgcoro_factory, pg, txndb):
    """A client that disconnects inside a transaction: what its session made then and a
    ROLLBACK does not undo (a session advisory lock here) never reaches the next client:
    server_reset_query (DISCARD ALL) runs after the ROLLBACK, or, with none, the server
    is closed (as PgBouncer). Before: the next client got that backend, lock held."""
    for reset in ("DISCARD ALL", ""):
        inst = start(pgcoro_factory, pg, 1, server_reset_query=reset)
        left_mid_transaction(inst, closed=not reset)


def left_mid_transaction(inst, closed):
    with wire(inst) as a:
        assert wire_exec(a, "BEGIN")[1] == []
        rows, errors, _ = wire_exec(a, "SELECT pg_backend_pid(), pg_advisory_lock(4242)")
        assert not errors, errors
        a_pid = rows[0][0]
    with wire(inst) as b:
        rows, errors, _ = wire_exec(
            b, "SELECT pg_backend_pid(), count(*) FROM pg_locks "
               "WHERE locktype = 'advisory' AND objid = 4242 AND granted")
        assert not errors, errors
        assert rows[0][1] == "0", f"the departed client's lock came along: {rows}"
        assert (rows[0][0] != a_pid) == closed, (rows, a_pid)
    if closed:
        wait_until(lambda: "client left inside a transaction" in inst.log_text(),
                   "the server's close logged")


def test_default_application_name_is_empty(pgcoro_factory, pg, txndb):
    """A client that sets no application_name sees '' (as with PostgreSQL and PgBouncer),
    in its login ParameterStatus and in SHOW, in transaction and session mode; one that
    sets it sees its own."""
    for mode in ("transaction", "session"):
        inst = start(pgcoro_factory, pg, 2, pool_mode=mode)
        with wire(inst) as w:
            assert w.params.get("application_name") == "", w.params
            assert wire_exec(w, "SHOW application_name")[0] == [[""]]
        w = Wire.to(inst)
        try:
            w.login(APP_USER, APP_PASS, DB, application_name="mine")
            assert w.params.get("application_name") == "mine", w.params
            assert wire_exec(w, "SHOW application_name")[0] == [["mine"]]
        finally:
            w.close()
