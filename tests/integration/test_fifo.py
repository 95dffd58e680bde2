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
