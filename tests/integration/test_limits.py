"""Limits: max_client_conn, min_pool_size (kept open, topped up), reserve_pool_size after
reserve_pool_timeout, pool_size per database and per user."""

import threading
import time

import pytest

from conftest import (APP_PASS, APP_USER, MD5_PASS, MD5_USER, PgError, Wire, client_backends,
                      pg_rows, recreate_database, wait_until, wire_exec)

pytestmark = pytest.mark.pooler_only

DB = "limdb"


@pytest.fixture(scope="module")
def limdb(pg):
    recreate_database(pg, DB)
    yield DB
    pg.psql_super(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE);")


def wire(inst, db=DB, user=APP_USER, password=APP_PASS, timeout=30.0):
    w = Wire.to(inst, timeout=timeout)
    w.login(user, password, db)
    return w


def one(w, sql):
    rows, errs, ready = wire_exec(w, sql)
    assert not errs and ready is not None, (sql, errs, ready)
    return rows[0][0] if rows else None


def count(pg, db=DB, user=APP_USER):
    return len(client_backends(pg, db, user))


# ---------------------------------------------------------------------------------------
# max_client_conn


def test_max_client_conn(pgcoro_factory, pg, limdb):
    inst = pgcoro_factory(settings={"max_client_conn": 3, "pool_mode": "transaction"},
                          databases={DB: f"host=127.0.0.1 port={pg.port} dbname={DB}"})
    held = [wire(inst) for _ in range(3)]
    try:
        for _ in range(2):
            with Wire.to(inst, timeout=20) as w:
                w.send_quietly(Wire.startup_packet({"user": APP_USER, "database": DB}))
                with pytest.raises(PgError) as ei:
                    w.authenticate(APP_USER, APP_PASS)
                assert ei.value.sqlstate == "53300", ei.value.fields
        for i, w in enumerate(held):       # the admitted clients are unaffected
            assert one(w, f"select {i}") == str(i)
        held.pop().terminate()
        # one slot free again (the close is noticed asynchronously: retry, bounded)

        def admitted():
            try:
                w = wire(inst)
            except PgError as e:
                assert e.sqlstate == "53300", e.fields
                return None
            held.append(w)
            return True
        wait_until(admitted, "a client admitted after one left")
        assert one(held[-1], "select 'in'") == "in"
    finally:
        for w in held:
            w.close()


# ---------------------------------------------------------------------------------------
# min_pool_size


def test_min_pool_size(pgcoro_factory, pg, limdb):
    wait_until(lambda: count(pg) == 0, "no backend left on the database")
    inst = pgcoro_factory(settings={"default_pool_size": 5, "min_pool_size": 3,
                                    "server_idle_timeout": 1},
                          databases={DB: f"host=127.0.0.1 port={pg.port} dbname={DB}"})
    time.sleep(1.5)
    assert count(pg) == 0, "servers opened before any login (pools are made at first login)"
    with wire(inst) as w:
        assert one(w, "select 1") == "1"
        w.terminate()
    wait_until(lambda: count(pg) == 3, f"3 backends for min_pool_size=3: "
               f"{client_backends(pg, DB)}")
    # idle past server_idle_timeout, yet not closed below min_pool_size
    time.sleep(2.5)
    assert count(pg) == 3, client_backends(pg, DB)
    # one dies: topped up again
    victim = client_backends(pg, DB, APP_USER)[0][0]
    assert pg_rows(pg, "select pg_terminate_backend(%s, 10000)", (victim,)) == [(True,)]
    wait_until(lambda: count(pg) == 3 and victim not in
               {b[0] for b in client_backends(pg, DB)},
               f"topped up to 3 after a backend died: {client_backends(pg, DB)}")
    with wire(inst) as w:
        assert one(w, "select 2") == "2"
        w.terminate()
    assert count(pg) <= 5
    inst.assert_serving(db=DB)


# ---------------------------------------------------------------------------------------
# reserve_pool_size / reserve_pool_timeout


def test_reserve_pool(pgcoro_factory, pg, limdb):
    wait_until(lambda: count(pg) == 0, "no backend left on the database")
    inst = pgcoro_factory(
        settings={"pool_mode": "transaction", "reserve_pool_timeout": 0.5,
                  "query_wait_timeout": 3},
        databases={DB: f"host=127.0.0.1 port={pg.port} dbname={DB} pool_size=2 "
                       "reserve_pool_size=2"})
    # all log in first (a login needs a server for its welcome in transaction mode)
    clients = [wire(inst) for _ in range(5)]
    h1, h2, c3, c4, c5 = clients
    try:
        assert count(pg) <= 2
        for h in (h1, h2):       # the pool's 2 servers held in open transactions
            assert wire_exec(h, "begin; select pg_backend_pid()")[2] == "T"
        held = {one(h, "select pg_backend_pid()") for h in (h1, h2)}
        assert len(held) == 2
        # a third client's query waits reserve_pool_timeout, then gets a reserve server
        pid3 = one(c3, "select pg_backend_pid()")
        assert pid3 not in held
        assert count(pg) == 3, client_backends(pg, DB)
        # the reserve holds 2: a fourth too, in a transaction
        assert wire_exec(c3, "begin; select 1")[2] == "T"
        assert wire_exec(c4, "begin; select 1")[2] == "T"
        assert count(pg) == 4, client_backends(pg, DB)
        # pool (2) + reserve (2) all held: a fifth waits and gets query_wait_timeout
        c5.send(Wire.msg("Q", b"select 'never'\0"))
        err = c5.expect_error()
        assert err.get("C") == "57014" and "query_wait_timeout" in err["M"], err
        assert count(pg) == 4, client_backends(pg, DB)
        for w in (h1, h2, c3, c4):
            assert wire_exec(w, "commit")[2] == "I"
            w.terminate()
    finally:
        for w in clients:
            w.close()
    inst.assert_serving(db=DB)


# ---------------------------------------------------------------------------------------
# pool_size per database and per user


def test_pool_size_per_database_and_user(pgcoro_factory, pg, limdb):
    inst = pgcoro_factory(
        settings={"pool_mode": "transaction", "default_pool_size": 10, "max_client_conn": 200},
        databases={"pdb": f"host=127.0.0.1 port={pg.port} dbname=pooldb pool_size=2",
                   "udb": f"host=127.0.0.1 port={pg.port} dbname={DB}"},
        user_settings={MD5_USER: "pool_size=3"})
    # (alias, client user, PostgreSQL database, the pool's size)
    combos = [("pdb", APP_USER, "pooldb", 2),      # the database's pool_size
              ("pdb", MD5_USER, "pooldb", 3),      # the user's wins over the database's
              ("udb", MD5_USER, DB, 3),            # the user's over default_pool_size
              ("udb", APP_USER, DB, 10)]           # default_pool_size
    for _, user, db, _ in combos:
        wait_until(lambda: count(pg, db, user) == 0, f"no backend left for {user}@{db}")
    nclients = 12
    peak = {(db, user): 0 for _, user, db, _ in combos}
    errors = []
    stop = threading.Event()

    def monitor():
        c = pg.super_connect()
        try:
            cur = c.cursor()
            while True:
                done = stop.is_set()
                cur.execute("select datname, usename, count(*) from pg_stat_activity where "
                            "backend_type = 'client backend' and pid <> pg_backend_pid() "
                            "group by 1, 2")
                for db, user, n in cur.fetchall():
                    if (db, user) in peak:
                        peak[(db, user)] = max(peak[(db, user)], n)
                if done:
                    return
                stop.wait(0.02)
        finally:
            c.close()

    barrier = threading.Barrier(nclients * len(combos))

    def client(alias, user):
        try:
            w = wire(inst, db=alias, user=user,
                     password=APP_PASS if user == APP_USER else MD5_PASS, timeout=60)
            try:
                barrier.wait(timeout=60)
                for _ in range(3):
                    assert one(w, "select pg_sleep(0.1), current_user") == ""
                w.terminate()
            finally:
                w.close()
        except Exception as e:  # reported below
            errors.append((alias, user, repr(e)))

    mon = threading.Thread(target=monitor, daemon=True)
    mon.start()
    threads = [threading.Thread(target=client, args=(alias, user), daemon=True)
               for alias, user, _, _ in combos for _ in range(nclients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    stop.set()
    mon.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "clients still running after 120 s"
    assert not errors, errors[:5]
    for alias, user, db, size in combos:
        assert peak[(db, user)] <= size, (
            f"{user}@{alias}: PostgreSQL showed {peak[(db, user)]} backends for a pool of "
            f"{size}: {peak}")
        if size < nclients:
            # 12 concurrent clients fill a smaller pool: the limit itself was reached
            assert peak[(db, user)] == size, (user, alias, peak)
    log = inst.log_text()
    for alias, user, _, size in combos:
        assert f"pool {alias}/{user} created: pool_size={size} " in log, (alias, user, size)
    inst.assert_serving(db="udb")
