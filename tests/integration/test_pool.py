"""Session pooling: many clients over few servers."""

import threading
import time

import psycopg2
import pytest

from conftest import APP_PASS, APP_USER


def run_clients(inst, pg, nclients, dbname, direct):
    """NCLIENTS threads each connect, run a query, disconnect. Returns (results, errors,
    the most server connections PostgreSQL showed on DBNAME at once)."""
    results, errors = {}, []
    barrier = threading.Barrier(nclients)
    stop = threading.Event()
    peak = [0]

    samples = [0]

    def monitor():
        conn = pg.super_connect()
        try:
            cur = conn.cursor()
            while True:
                done = stop.is_set()   # one last sample after the clients are gone
                cur.execute("select count(*) from pg_stat_activity where datname = %s "
                            "and backend_type = 'client backend'", (dbname,))
                peak[0] = max(peak[0], cur.fetchone()[0])
                samples[0] += 1
                if done:
                    break
                stop.wait(0.02)
        finally:
            conn.close()

    def client(i):
        try:
            barrier.wait(timeout=120)
            c = psycopg2.connect(host=inst.host, port=inst.port, user=APP_USER,
                                 password=APP_PASS, dbname=dbname, connect_timeout=120)
            try:
                cur = c.cursor()
                cur.execute("select pg_backend_pid(), %s, current_database(), pg_sleep(0.01)",
                            (i,))
                pid, echo, db, _ = cur.fetchone()
                assert echo == i and db == dbname
                results[i] = pid
            finally:
                c.close()
        except Exception as e:  # reported below with the client number
            errors.append((i, repr(e)))

    mon = threading.Thread(target=monitor, daemon=True)
    mon.start()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(nclients)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 240
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    stop.set()
    mon.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "clients still running after 240 s"
    assert not mon.is_alive() and samples[0] >= 2, "pg_stat_activity monitor did not run"
    return results, errors, peak[0]


def test_200_clients_pool_of_5(pgcoro_factory, pg, direct):
    inst = pgcoro_factory(settings={"default_pool_size": 5, "max_client_conn": 300})
    results, errors, peak = run_clients(inst, pg, 200, inst.db("pooldb"), direct)
    assert not errors, errors[:10]
    assert sorted(results) == list(range(200))
    if not direct:
        assert peak <= 5, f"PostgreSQL showed {peak} server connections for a pool of 5"
        assert len(set(results.values())) <= 5, "more distinct backends than the pool size"
    inst.assert_serving()


@pytest.mark.pooler_only
def test_per_database_pool_size(pgcoro_factory, pg):
    inst = pgcoro_factory(
        settings={"default_pool_size": 20},
        databases={"pooldb": f"host=127.0.0.1 port={pg.port} dbname=pooldb pool_size=2"})
    results, errors, peak = run_clients(inst, pg, 30, "pooldb", False)
    assert not errors, errors[:10]
    assert sorted(results) == list(range(30))
    assert peak <= 2, f"PostgreSQL showed {peak} server connections for pool_size=2"
    assert len(set(results.values())) <= 2


def test_session_state_reset_between_clients(pgcoro_factory):
    # a pool of 1: the second client gets the first one's server, after DISCARD ALL
    inst = pgcoro_factory(settings={"default_pool_size": 1})
    c = inst.connect()
    cur = c.cursor()
    cur.execute("set application_name = 'dirty'; set search_path = nosuch; "
                "prepare leftover as select 1; create temp table leftover_t (a int)")
    c.commit()
    c.close()
    c = inst.connect()
    try:
        cur = c.cursor()
        cur.execute("select current_setting('search_path'), "
                    "(select count(*) from pg_prepared_statements), "
                    "(select count(*) from pg_class where relname = 'leftover_t')")
        search_path, nprep, ntemp = cur.fetchone()
        assert search_path != "nosuch" and nprep == 0 and ntemp == 0
    finally:
        c.close()
