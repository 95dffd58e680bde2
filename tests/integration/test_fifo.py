"""Clients waiting for a server are served first come, first served (transaction mode,
one server): each waiter's query is sent only after pgcoro's debug log shows the previous
waiter queued, so the order of arrival is known, not guessed from sleeps."""

import re
import threading

import pytest

from conftest import APP_PASS, APP_USER, Wire, recreate_database, wait_until, wire_exec

pytestmark = pytest.mark.pooler_only

DB = "fifodb"
WAITERS = 6


@pytest.fixture(scope="module")
def fifodb(pg):
    recreate_database(pg, DB, setup_sql="CREATE TABLE served (seq serial, who int);"
                                        "GRANT ALL ON served, served_seq_seq TO PUBLIC;")
    yield DB
    pg.psql_super(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE);")


def client_id(inst, w):
    """pgcoro's id of the client on Wire W, from its 'login done' log line."""
    port = w.sock.getsockname()[1]
    pat = re.compile(rf"client (\d+) 127\.0\.0\.1:{port} \(.*\): login done")
    m = wait_until(lambda: pat.search(inst.log_text()), f"the login of local port {port}")
    return m.group(1)


def test_waiting_clients_served_in_arrival_order(pgcoro_factory, pg, fifodb):
    inst = pgcoro_factory(settings={"log_level": "debug", "query_wait_timeout": 60},
                          databases={DB: f"host=127.0.0.1 port={pg.port} dbname={DB} "
                                         f"pool_size=1 pool_mode=transaction"})
    holder = Wire.to(inst, timeout=60)
    holder.login(APP_USER, APP_PASS, DB)
    _, errors, ready = wire_exec(holder, "begin; select 1")
    assert not errors and ready == "T"   # the only server is held

    waiters = []
    for _ in range(WAITERS):
        w = Wire.to(inst, timeout=60)
        w.login(APP_USER, APP_PASS, DB)
        waiters.append((w, client_id(inst, w)))

    results = [None] * WAITERS
    threads = []
    for i, (w, cid) in enumerate(waiters):
        def run(i=i, w=w):
            results[i] = wire_exec(w, f"insert into served (who) values ({i})")
        t = threading.Thread(target=run, daemon=True)
        t.start()
        threads.append(t)
        # the next one may only arrive once this one is queued
        wait_until(lambda cid=cid: f"client {cid}: idle -> waiting" in inst.log_text(),
                   f"waiter {i} (client {cid}) queued")

    _, errors, ready = wire_exec(holder, "commit")
    assert not errors and ready == "I"
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a waiter was never served"
    for i, r in enumerate(results):
        assert r is not None and not r[1], f"waiter {i}: {r}"

    rows, errors, _ = wire_exec(holder, "select who from served order by seq")
    assert not errors
    assert [int(r[0]) for r in rows] == list(range(WAITERS)), \
        f"served out of arrival order: {rows}"
    for w, _ in waiters:
        w.close()
    holder.close()
    inst.assert_serving(db=DB)


@pytest.mark.parametrize("round_robin", [0, 1])
def test_idle_server_choice(pgcoro_factory, pg, round_robin):
    """Which idle server a request gets, with three idle (min_pool_size = 3): by default
    the one released last (LIFO, as PgBouncer), so one client's transactions stay on one
    backend; with server_round_robin = 1 the one idle the longest, so they rotate over
    all three in a fixed order."""
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 3,
                                    "min_pool_size": 3, "server_round_robin": round_robin})
    with Wire.to(inst) as w:
        w.login()                  # the pool exists from the first login; it opens three
        wait_until(lambda: inst.log_text().count("connected, backend pid") == 3,
                   "three servers open")
        pids = [int(w.query("select pg_backend_pid()")[0][0]) for _ in range(9)]
        w.terminate()
    if round_robin:
        assert len(set(pids[:3])) == 3, pids
        assert pids[3:6] == pids[:3] and pids[6:9] == pids[:3], pids
    else:
        assert len(set(pids)) == 1, pids
