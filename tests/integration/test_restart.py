"""Server failures and failover: a busy server terminated, PostgreSQL stopped and started
under load (the same pgcoro serves again), and multi-host target_session_attrs choosing
the read-write server, before and after a flip."""

import socket
import threading
import time

import psycopg2
import pytest

from conftest import (APP_PASS, APP_USER, ConnectionClosed, PgError, Wire, client_backends,
                      pg_rows, recreate_database, wait_until, wire_exec)

pytestmark = pytest.mark.pooler_only

DB = "rstdb"


@pytest.fixture(scope="module")
def rstdb(pg):
    recreate_database(pg, DB)
    yield DB
    pg.psql_super(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE);")


def wire(inst, db, timeout=20.0):
    w = Wire.to(inst, timeout=timeout)
    w.login(APP_USER, APP_PASS, db)
    return w


def one(w, sql):
    rows, errs, ready = wire_exec(w, sql)
    assert not errs and ready is not None, (sql, errs, ready)
    return rows[0][0] if rows else None


# ---------------------------------------------------------------------------------------
# 1. a busy server terminated: the client gets an error, the pool recovers


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_terminate_busy_server(pgcoro_factory, pg, rstdb, mode):
    inst = pgcoro_factory(databases={
        DB: f"host=127.0.0.1 port={pg.port} dbname={DB} pool_size=2 pool_mode={mode}"})
    c = inst.connect(db=DB)
    c.autocommit = True
    marker = f"rst_terminate_{mode}"
    outcome = {}

    def run():
        try:
            c.cursor().execute(f"select pg_sleep(30) /* {marker} */")
            outcome["result"] = "the query completed"
        except psycopg2.Error as e:
            outcome["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        rows = wait_until(lambda: [b for b in client_backends(pg, DB) if b[2] == "active"
                                   and marker in (b[3] or "")], "the query active")
        killed = rows[0][0]
        assert pg_rows(pg, "select pg_terminate_backend(%s, 10000)", (killed,)) == [(True,)]
        t.join(timeout=20)
        assert not t.is_alive(), "client still waiting 20 s after its backend was terminated"
    finally:
        c.close()
    assert "error" in outcome, outcome
    assert isinstance(outcome["error"], psycopg2.OperationalError), repr(outcome["error"])
    # the pool recovers: two clients at once, on fresh servers, within the pool size
    c1, c2 = wire(inst, DB), wire(inst, DB)
    try:
        pids = {int(one(w, "select pg_backend_pid()")) for w in (c1, c2)} if mode == "session" \
            else {int(one(w, "begin; select pg_backend_pid()")) for w in (c1, c2)}
        assert len(pids) == 2 and killed not in pids, pids
        assert len(client_backends(pg, DB)) <= 2, client_backends(pg, DB)
        if mode == "transaction":
            for w in (c1, c2):
                assert wire_exec(w, "commit")[2] == "I"
        c1.terminate()
        c2.terminate()
    finally:
        c1.close()
        c2.close()
    inst.assert_serving(db=DB)


# ---------------------------------------------------------------------------------------
# 2. PostgreSQL stopped and started again under load


class Worker:
    """A client thread running `select <n>` in a loop through pgcoro, reconnecting after
    any error. Every socket read is bounded (a hang shows as a timeout, never blocks)."""

    def __init__(self, inst, db, idx):
        self.inst, self.db, self.idx = inst, db, idx
        self.oks, self.errors, self.hangs = [], [], []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        w, n = None, 0
        while not self.stop.is_set():
            n += 1
            try:
                if w is None:
                    w = Wire.to(self.inst, timeout=15)
                    w.login(APP_USER, APP_PASS, self.db)
                rows, errs, ready = wire_exec(w, f"select {n}")
                if errs or ready is None:
                    self.errors.append((time.monotonic(), errs, ready))
                    w.close()
                    w = None
                    time.sleep(0.05)
                    continue
                assert rows == [[str(n)]], rows
                self.oks.append(time.monotonic())
                time.sleep(0.01)
            except socket.timeout as e:
                self.hangs.append((time.monotonic(), repr(e)))
                if w:
                    w.close()
                w = None
            except (PgError, ConnectionClosed, OSError) as e:
                self.errors.append((time.monotonic(), repr(e), None))
                if w:
                    w.close()
                w = None
                time.sleep(0.05)
        if w:
            w.terminate()

    def ok_after(self, t0):
        return any(t > t0 for t in self.oks)


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_postgres_restart_under_load(pgcoro_factory, pg_cluster, mode):
    other = pg_cluster()
    inst = pgcoro_factory(settings={"query_wait_timeout": 10, "server_connect_timeout": 5},
                          databases={"rdb": f"host=127.0.0.1 port={other.port} "
                                            f"dbname=postgres pool_size=3 pool_mode={mode}"})
    pid = inst.pid
    workers = [Worker(inst, "rdb", i) for i in range(3)]
    try:
        t0 = time.monotonic()
        wait_until(lambda: all(w.ok_after(t0) for w in workers) or
                   any(not w.t.is_alive() for w in workers), "all workers served", 30)
        time.sleep(0.5)
        t_stop = time.monotonic()
        other.pg_ctl_stop("fast")
        # the outage: the workers keep trying, and get errors
        wait_until(lambda: all(any(e[0] > t_stop for e in w.errors) for w in workers),
                   "every worker got an error during the outage", 20)
        time.sleep(1.0)
        other.pg_ctl_start()
        t_back = time.monotonic()
        wait_until(lambda: all(w.ok_after(t_back) for w in workers),
                   "every worker served again after PostgreSQL came back", 20)
        time.sleep(0.5)
    finally:
        for w in workers:
            w.stop.set()
        for w in workers:
            w.t.join(timeout=40)
    assert not any(w.t.is_alive() for w in workers), "a worker is stuck"
    print(f"restart ({mode}): oks {[len(w.oks) for w in workers]}, errors "
          f"{[len(w.errors) for w in workers]}, e.g. {workers[0].errors[:2]}")
    hangs = [h for w in workers for h in w.hangs]
    assert not hangs, f"queries hung (no answer within 15 s): {hangs[:5]}"
    assert inst.alive() and inst.pid == pid
    # the errors were pgcoro's or PostgreSQL's answers
    for w in workers:
        for _, errs, _ in w.errors:
            if isinstance(errs, list):
                assert all(e.get("C") for e in errs), errs
    inst.assert_serving(db="rdb")
    inst.assert_clean_exit()


# ---------------------------------------------------------------------------------------
# 3. multi-host: target_session_attrs=read-write picks the writable server


def set_read_only(cluster, on):
    cluster.psql_super(("ALTER SYSTEM SET default_transaction_read_only = on;" if on else
                        "ALTER SYSTEM RESET default_transaction_read_only;")
                       + "\nSELECT pg_reload_conf();")
    want = "on" if on else "off"
    # new sessions see the reloaded setting
    wait_until(lambda: cluster.psql_super("SHOW default_transaction_read_only;").strip()
               == want, f"default_transaction_read_only = {want} on port {cluster.port}")


def test_multi_host_read_write(pgcoro_factory, pg_cluster):
    a, b = pg_cluster(), pg_cluster()
    set_read_only(a, True)
    inst = pgcoro_factory(
        settings={"server_lifetime": 1, "server_idle_timeout": 0},
        databases={"mh": f"host=127.0.0.1,127.0.0.1 port={a.port},{b.port} dbname=postgres "
                         "target_session_attrs=read-write"})
    with wire(inst, "mh") as w:
        rows, errs, ready = wire_exec(w, "select inet_server_port(), "
                                         "current_setting('transaction_read_only')")
        assert not errs and rows == [[str(b.port), "off"]], (rows, errs, a.port, b.port)
        w.terminate()
    # flip: A writable, B read-only; the server on B ends at server_lifetime
    set_read_only(a, False)
    set_read_only(b, True)
    wait_until(lambda: not client_backends(b, "postgres", APP_USER),
               "the server connection to B closed (server_lifetime=1)")
    with wire(inst, "mh") as w:
        rows, errs, ready = wire_exec(w, "select inet_server_port(), "
                                         "current_setting('transaction_read_only')")
        assert not errs and rows == [[str(a.port), "off"]], (rows, errs, a.port, b.port)
        rows, errs, ready = wire_exec(w, "create temp table mh_t (x int); "
                                         "insert into mh_t values (1)")
        assert not errs, errs
        w.terminate()
    inst.assert_serving(db="mh")
    inst.assert_clean_exit()
