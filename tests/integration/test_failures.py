"""Failures around a session: server backends that die (mid-query, idle in the pool),
clients that vanish (inside a transaction, mid-COPY, mid-extended-protocol), slow and
stalled clients, and clients that never log in. After each, pgcoro serves a fresh client
and (factory teardown / explicit call) stops cleanly with a sanitizer-clean log."""

import os
import socket
import struct
import threading
import time

import pytest

from conftest import (APP_PASS, APP_USER, ConnectionClosed, PgError, RssSampler, Wire,
                      parse_fields, vmrss_kb, pg_rows, wait_until)

IDLE_IN_XACT = ("idle in transaction", "idle in transaction (aborted)")


@pytest.fixture(scope="module")
def failsdb(pg):
    """A database of its own (tables t, t_copy owned by app) so pg_stat_activity and
    pg_locks checks see only this module's sessions."""
    pg.psql_super("DROP DATABASE IF EXISTS failsdb WITH (FORCE);\n"
                  "CREATE DATABASE failsdb OWNER app;")
    pg.psql_super("CREATE TABLE t (a int); CREATE TABLE t_copy (a int);"
                  "ALTER TABLE t OWNER TO app; ALTER TABLE t_copy OWNER TO app;", db="failsdb")
    yield "failsdb"
    pg.psql_super("DROP DATABASE IF EXISTS failsdb WITH (FORCE);")


def start(pgcoro_factory, pg, pool_size):
    """A pgcoro with alias failsdb (pool_size servers at most) besides the defaults."""
    return pgcoro_factory(databases={
        "failsdb": f"host=127.0.0.1 port={pg.port} dbname=failsdb pool_size={pool_size}"})


def wire(inst, db="failsdb", timeout=20.0):
    """A logged-in raw client; every read is bounded by TIMEOUT (socket.timeout)."""
    w = Wire.to(inst, timeout=timeout)
    w.login(APP_USER, APP_PASS, inst.db(db))
    return w


def wire_query(inst, sql, db="failsdb"):
    with wire(inst, db) as w:
        rows = w.query(sql)
        w.terminate()
    return rows


def pgq(pg, sql, args=None, db="failsdb"):
    """Runs SQL on PostgreSQL itself as the superuser; returns the rows (or None)."""
    return pg_rows(pg, sql, args, db)


def sessions(pg, db="failsdb"):
    """(pid, state, query) of the client backends on DB, other than the asking one."""
    return pgq(pg, "select pid, state, query from pg_stat_activity where datname = %s "
               "and backend_type = 'client backend' and pid <> pg_backend_pid()", (db,))


def no_idle_in_xact(pg):
    return not [s for s in sessions(pg) if s[1] in IDLE_IN_XACT]


def pgcoro_server_sockets(inst, pg):
    """pgcoro's TCP sockets to PostgreSQL: [(local port, tcp state hex)], from /proc."""
    inodes = set()
    for fd in os.listdir(f"/proc/{inst.pid}/fd"):
        try:
            inodes.add(os.readlink(f"/proc/{inst.pid}/fd/{fd}")[len("socket:["):-1])
        except OSError:
            pass
    out = []
    with open(f"/proc/{inst.pid}/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            if p[9] in inodes and int(p[2].split(":")[1], 16) == pg.port:
                out.append((int(p[1].split(":")[1], 16), p[3]))
    return out


def terminate_backend(pg, pid):
    # the timeout makes it wait until the backend has exited
    assert pgq(pg, "select pg_terminate_backend(%s, 10000)", (pid,)) == [(True,)]


# ---------------------------------------------------------------------------------------
# 1. the server backend dies under a running query


def test_server_killed_mid_query(pgcoro_factory, pg, failsdb, direct):
    # a raw client: libpq/psycopg2 hide the ErrorResponse of a FATAL followed by EOF
    # (they report "server closed the connection unexpectedly", against PostgreSQL too)
    inst = start(pgcoro_factory, pg, pool_size=2)
    marker = "fail_kill_mid_query"
    a = wire(inst, timeout=60)
    errors, outcome = [], []

    def run():
        try:
            a.send(Wire.msg("Q", f"select pg_sleep(30) /* {marker} */".encode() + b"\0"))
            while True:
                t, p = a.read_msg()
                if t == "E":
                    errors.append(parse_fields(p))
                elif t == "Z":
                    outcome.append("ReadyForQuery: the query finished")
                    return
        except ConnectionClosed:
            outcome.append("closed")
        except Exception as e:  # examined below
            outcome.append(repr(e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        rows = wait_until(lambda: [s for s in sessions(pg) if marker in (s[2] or "")
                                 and s[1] == "active"], "the query active in pg_stat_activity")
        killed = rows[0][0]
        terminate_backend(pg, killed)
        t.join(timeout=20)
        assert not t.is_alive(), "client still waiting 20 s after its backend was terminated"
    finally:
        a.close()
    assert outcome == ["closed"], (outcome, errors)
    # PostgreSQL's own FATAL 57P01 and nothing after it (step 9: not a second error of
    # pgcoro's, "server connection lost")
    assert [e.get("C") for e in errors] == ["57P01"], (
        f"not exactly PostgreSQL's ErrorResponse before the close: {errors}")
    # new clients are served, on as many servers as the pool has
    c1, c2 = wire(inst), wire(inst)
    try:
        pids = {int(w.query("select pg_backend_pid()")[0][0]) for w in (c1, c2)}
        assert len(pids) == 2 and killed not in pids, pids
        if not direct:
            socks = pgcoro_server_sockets(inst, pg)
            assert len(socks) <= 2, f"pool of 2 holds {len(socks)} server sockets: {socks}"
    finally:
        c1.terminate()
        c2.terminate()
    inst.assert_serving()
    inst.assert_clean_exit()


# ---------------------------------------------------------------------------------------
# 2. the server backend dies while idle in the pool


@pytest.mark.pooler_only
def test_server_killed_idle_in_pool(pgcoro_factory, pg, failsdb):
    inst = start(pgcoro_factory, pg, pool_size=1)
    pid = int(wire_query(inst, "select pg_backend_pid()")[0][0])
    for _ in range(2):
        # back in the pool once its reset query has run
        wait_until(lambda: [s for s in sessions(pg) if s[0] == pid and s[1] == "idle"
                          and s[2] == "DISCARD ALL"], f"backend {pid} idle after DISCARD ALL")
        terminate_backend(pg, pid)
        try:
            rows = wire_query(inst, "select pg_backend_pid(), 1")
        except (PgError, ConnectionClosed, OSError) as e:
            raise AssertionError(f"client after the idle server died got {e!r}\n"
                                 f"{inst.log_tail(20)}")
        new_pid = int(rows[0][0])
        assert rows[0][1] == "1" and new_pid != pid, rows
        pid = new_pid
    assert len(pgcoro_server_sockets(inst, pg)) <= 1
    inst.assert_serving()
    inst.assert_clean_exit()


# ---------------------------------------------------------------------------------------
# 3. a client vanishes inside a transaction holding a lock


def holds_lock(pg, pid):
    return pgq(pg, "select count(*) from pg_locks l join pg_class c on c.oid = l.relation "
                  "where c.relname = 't' and l.mode = 'AccessExclusiveLock' and l.granted "
                  "and l.pid = %s", (pid,)) == [(1,)]


@pytest.mark.parametrize("how", ["raw_rst", "psycopg2_shutdown"])
def test_client_vanishes_holding_lock(pgcoro_factory, pg, failsdb, how):
    inst = start(pgcoro_factory, pg, pool_size=1)
    if how == "raw_rst":
        w = wire(inst)
        w.query("begin; lock table t in access exclusive mode")
        pid = int(w.query("select pg_backend_pid()")[0][0])
        assert holds_lock(pg, pid)
        w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.close()   # RST, no Terminate
    else:
        c = inst.connect(db="failsdb")
        cur = c.cursor()
        cur.execute("lock table t in access exclusive mode")
        cur.execute("select pg_backend_pid()")
        pid = cur.fetchone()[0]
        assert holds_lock(pg, pid)
        s = socket.socket(fileno=os.dup(c.fileno()))
        s.shutdown(socket.SHUT_RDWR)
        s.close()
        c.close()
    # the lock is released: taken directly (a leftover shows as 55P03 after 10 s)
    pgq(pg, "set lock_timeout = '10s'; begin; lock table t in access exclusive mode; commit")
    wait_until(lambda: no_idle_in_xact(pg), f"no backend idle in transaction: {sessions(pg)}")
    # pool of 1: the next client gets that server slot, outside any transaction
    with wire(inst) as w2:
        assert w2.query("select now() = statement_timestamp()") == [["t"]], "leftover xact"
        w2.query("set lock_timeout = '10s'")
        w2.query("begin; lock table t in access exclusive mode; commit")
        w2.terminate()
    inst.assert_serving()
    inst.assert_clean_exit()


# ---------------------------------------------------------------------------------------
# 4. a client vanishes mid-COPY FROM STDIN / mid-extended-protocol


@pytest.mark.parametrize("how", ["copy_in", "extended_no_sync"])
def test_client_vanishes_mid_protocol(pgcoro_factory, pg, failsdb, how):
    pgq(pg, "truncate t_copy")
    inst = start(pgcoro_factory, pg, pool_size=1)
    w = wire(inst)
    pid = int(w.query("select pg_backend_pid()")[0][0])
    if how == "copy_in":
        w.send(Wire.msg("Q", b"COPY t_copy FROM STDIN\0"))
        t, _ = w.read_msg()
        assert t == "G", f"expected CopyInResponse, got {t!r}"
        w.send(Wire.msg("d", b"1\n2\n3\n") + Wire.msg("d", b"4\n5\n"))
        wait_until(lambda: [s for s in sessions(pg) if s[0] == pid and s[1] == "active"
                          and s[2].startswith("COPY t_copy")], "the COPY active on the server")
    else:
        # Parse/Bind/Execute + Flush, no Sync: the row is inserted in an open implicit xact
        w.send(Wire.msg("P", b"\0insert into t_copy values (42)\0" + struct.pack("!h", 0))
               + Wire.msg("B", b"\0\0" + struct.pack("!hhh", 0, 0, 0))
               + Wire.msg("E", b"\0" + struct.pack("!i", 0)) + Wire.msg("H"))
        got = [w.read_msg()[0] for _ in range(3)]
        assert got == ["1", "2", "C"], got
        assert pgq(pg, "select backend_xid is not null from pg_stat_activity where pid = %s",
                   (pid,)) == [(True,)], "the insert is not in an open transaction"
    w.close()
    wait_until(lambda: not [s for s in sessions(pg) if s[1] in IDLE_IN_XACT
                          or (s[1] == "active" and "t_copy" in (s[2] or ""))],
             f"no backend left in the abandoned {how}: {sessions(pg)}")
    # pool of 1: the next client gets that server slot, clean
    rows = wire_query(inst, "select count(*), 1 from t_copy")
    assert rows == [["0", "1"]], f"partial rows or a dirty server: {rows}"
    assert pgq(pg, "select count(*) from t_copy") == [(0,)]
    inst.assert_serving()
    inst.assert_clean_exit()


# ---------------------------------------------------------------------------------------
# 5. a slow reader of a large result: bounded memory, the loop keeps serving others

ROWS, WIDTH = 300_000, 1000
RSS_LIMIT_KB = 64 * 1024
SLOW_SECONDS = 3.0


class ResultCounter:
    """Incremental framing of a simple-query result: DataRows, value bytes, errors."""

    def __init__(self):
        self.buf = bytearray()
        self.rows = self.value_bytes = self.total = 0
        self.errors, self.done = [], False

    def feed(self, data):
        self.total += len(data)
        b = self.buf
        b += data
        pos, n = 0, len(b)
        while n - pos >= 5:
            length = int.from_bytes(b[pos + 1:pos + 5], "big")
            if n - pos < 1 + length:
                break
            t = b[pos]
            if t == 0x44:    # 'D', one column
                self.rows += 1
                self.value_bytes += int.from_bytes(b[pos + 7:pos + 11], "big", signed=True)
            elif t == 0x45:  # 'E'
                self.errors.append(bytes(b[pos + 5:pos + 1 + length]))
            elif t == 0x5A:  # 'Z'
                self.done = True
            pos += 1 + length
        del b[:pos]


def test_slow_client_large_result(pgcoro, pg, direct):
    inst = pgcoro
    inst.assert_serving()
    quick = inst.connect()
    quick.autocommit = True
    quick.cursor().execute("select 1")   # its server exists before the baseline
    slow = wire(inst, db="postgres", timeout=60)
    # small, but not below loopback's 64 KiB MSS: that stalls TCP itself (~40 KB/s, same
    # against PostgreSQL directly)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    baseline = None if direct else vmrss_kb(inst.pid)
    counter = ResultCounter()
    fast = threading.Event()
    failure = []

    def reader():
        try:
            counter.feed(slow.buf)
            while not counter.done:
                data = slow.sock.recv(1 << 20 if fast.is_set() else 1024)
                if not data:
                    raise ConnectionClosed(f"EOF after {counter.total} bytes")
                counter.feed(data)
                if not fast.is_set():
                    time.sleep(0.002)
        except Exception as e:  # reported below
            failure.append(repr(e))

    quick_done = []

    def quick_queries():
        cur = quick.cursor()
        for i in range(50):
            cur.execute("select %s + 1", (i,))
            assert cur.fetchone() == (i + 1,)
            quick_done.append(i)

    with RssSampler(inst.pid) as rss:
        slow.send(Wire.msg("Q", f"select repeat('x', {WIDTH}) from generate_series(1, {ROWS})"
                           .encode() + b"\0"))
        rt = threading.Thread(target=reader, daemon=True)
        rt.start()
        started = time.monotonic()
        wait_until(lambda: counter.rows >= 100 or failure, "the slow client receiving rows", 30)
        qt = threading.Thread(target=quick_queries, daemon=True)
        qt.start()
        qt.join(timeout=60)
        assert not qt.is_alive() and len(quick_done) == 50, (
            f"only {len(quick_done)} of 50 quick queries done while a client reads slowly")
        assert not counter.done and not failure, ("the slow result was over before the "
                                                  f"quick queries: {failure}")
        time.sleep(max(0.0, SLOW_SECONDS - (time.monotonic() - started)))  # keep reading slowly
        slow_rows = counter.rows
        fast.set()
        rt.join(timeout=120)
    quick.close()
    slow.terminate()
    assert not rt.is_alive(), f"slow client not done after 120 s ({counter.total} bytes)"
    assert not failure and not counter.errors, (failure, counter.errors)
    assert counter.rows == ROWS and counter.value_bytes == ROWS * WIDTH, (
        counter.rows, counter.value_bytes)
    print(f"slow phase: {slow_rows} rows; RSS baseline {baseline} kB, peak {rss.peak} kB")
    if not direct:
        assert rss.count > 0
        assert rss.peak - baseline < RSS_LIMIT_KB, (
            f"pgcoro RSS grew by {rss.peak - baseline} kB under a slow reader "
            f"(baseline {baseline} kB, peak {rss.peak} kB)")
    inst.assert_serving()
    inst.assert_clean_exit()


# ---------------------------------------------------------------------------------------
# 6. half a message, then a stall


def test_half_message_then_stall(pgcoro_factory, pg, failsdb):
    inst = start(pgcoro_factory, pg, pool_size=1)
    stalled = wire(inst)
    assert stalled.query("select 1") == [["1"]]          # holds failsdb's only server
    stalled.send(b"Q" + struct.pack("!I", 1000) + b"select 1; ")  # 10 of 996 bytes
    for i in range(5):                                   # other pools unaffected
        assert wire_query(inst, f"select {i}", db="postgres") == [[str(i)]]
    inst.assert_serving()
    stalled.close()
    # pool of 1: the next client gets the slot; a server left mid-message would make this
    # query part of the half-sent one (hang or error), not return 1
    with wire(inst) as w:
        assert w.query("select 1") == [["1"]]
        assert w.query("select 2") == [["2"]]
        w.terminate()
    wait_until(lambda: no_idle_in_xact(pg), f"no backend idle in transaction: {sessions(pg)}")
    inst.assert_serving()
    inst.assert_clean_exit()


# ---------------------------------------------------------------------------------------
# 7. clients that never finish logging in


@pytest.mark.pooler_only
def test_client_login_timeout(pgcoro_factory):
    inst = pgcoro_factory(settings={"client_login_timeout": 1})
    silent = Wire.to(inst, timeout=15)
    half = Wire.to(inst, timeout=15)
    half.send(Wire.startup_packet({"user": APP_USER, "database": "postgres"})[:6])
    for _ in range(3):
        inst.assert_serving()
    for name, w in (("silent", silent), ("half startup", half)):
        with w:
            try:
                t, _ = w.read_msg()
                assert t == "E", f"{name} client: got {t!r} instead of an error or a close"
                assert w.at_eof(timeout=15), f"{name} client not closed after its error"
            except ConnectionClosed:
                pass
            except socket.timeout:
                raise AssertionError(f"{name} client still open 15 s after connecting "
                                     "with client_login_timeout = 1")
    wait_until(lambda: inst.log_text().count("client_login_timeout") >= 2,
             "two client_login_timeout lines in the log", 10)
    inst.assert_serving()
    inst.assert_clean_exit()
