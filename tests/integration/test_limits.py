"""Limits: max_client_conn, min_pool_size (kept open, topped up while a client is there, or
always for a database's fixed user=), reserve_pool_size after reserve_pool_timeout,
pool_size per database and per user, one pool for a database's fixed user=."""

import threading
import time

import pytest

import conftest
from conftest import (APP_PASS, APP_USER, MD5_PASS, MD5_USER, PgError, Wire, client_backends,
                      console_show, pg_rows, recreate_database, wait_until, wire_exec)

pytestmark = pytest.mark.pooler_only

DB = "limdb"
ADMIN, ADMIN_PASS = "admin", "adminpw"


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


def kill_one_backend(pg, user=APP_USER, spare=None):
    """Terminates one backend of USER on the database (not SPARE's); returns its pid."""
    victim = [b[0] for b in client_backends(pg, DB, user) if b[0] != spare][0]
    assert pg_rows(pg, "select pg_terminate_backend(%s, 10000)", (victim,)) == [(True,)]
    return victim


def test_min_pool_size(pgcoro_factory, pg, limdb):
    """A pool keeps min_pool_size servers open while it has a client (an idle one too),
    as PgBouncer; server_idle_timeout does not close them below it."""
    wait_until(lambda: count(pg) == 0, "no backend left on the database")
    inst = pgcoro_factory(settings={"default_pool_size": 5, "min_pool_size": 3,
                                    "server_idle_timeout": 1},
                          databases={DB: f"host=127.0.0.1 port={pg.port} dbname={DB}"})
    time.sleep(1.5)
    assert count(pg) == 0, "servers opened before any login (pools are made at first login)"
    with wire(inst) as w:
        mine = int(one(w, "select pg_backend_pid()"))   # session mode: w keeps it
        wait_until(lambda: count(pg) == 3, f"3 backends for min_pool_size=3: "
                   f"{client_backends(pg, DB)}")
        # idle past server_idle_timeout, yet not closed below min_pool_size
        time.sleep(2.5)
        assert count(pg) == 3, client_backends(pg, DB)
        # one dies while the client is there: topped up again
        victim = kill_one_backend(pg, spare=mine)
        wait_until(lambda: count(pg) == 3 and victim not in
                   {b[0] for b in client_backends(pg, DB)},
                   f"topped up to 3 after a backend died: {client_backends(pg, DB)}")
        assert one(w, "select 1") == "1"
        w.terminate()
    # the client gone, the servers stay (server_idle_timeout spares min_pool_size), but
    # one that dies is not replaced while no client is there (PgBouncer's rule)
    time.sleep(2.5)
    assert count(pg) == 3, client_backends(pg, DB)
    kill_one_backend(pg)
    wait_until(lambda: count(pg) == 2, "a backend gone")
    time.sleep(2.5)
    assert count(pg) == 2, client_backends(pg, DB)
    with wire(inst) as w:
        assert one(w, "select 2") == "2"
        w.terminate()
    assert count(pg) <= 5
    inst.assert_serving(db=DB)


def test_min_pool_size_fixed_user_without_clients(pgcoro_factory, pg, limdb):
    """A database with a fixed user= and min_pool_size has its pool from the start: its
    servers are opened, and topped up after one dies, without any client ever logging in
    (PgBouncer's janitor does the same); pool_idle_timeout does not free that pool."""
    wait_until(lambda: count(pg) == 0, "no backend left on the database")
    inst = pgcoro_factory(
        settings={"server_idle_timeout": 1, "pool_idle_timeout": 1, "admin_users": ADMIN},
        users={ADMIN: ADMIN_PASS},
        databases={"fixed": f"host=127.0.0.1 port={pg.port} dbname={DB} user={APP_USER} "
                            "pool_size=4 min_pool_size=2"})
    wait_until(lambda: count(pg) == 2, f"2 backends for min_pool_size=2 with no client: "
               f"{client_backends(pg, DB)}")
    victim = kill_one_backend(pg)
    wait_until(lambda: count(pg) == 2 and victim not in
               {b[0] for b in client_backends(pg, DB)},
               f"topped up to 2 after a backend died: {client_backends(pg, DB)}")
    pools = [(p["database"], p["user"]) for p in console_show(inst, "POOLS", ADMIN, ADMIN_PASS)]
    assert ("fixed", APP_USER) in pools, pools
    assert "cleaning up idle pool" not in inst.log_text()
    inst.assert_serving(db="fixed")


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


def finish(w):
    """Reads W's answer to a query sent before, to its ReadyForQuery: (rows, status)."""
    rows = []
    while True:
        t, p = w.read_msg()
        if t == "D":
            rows.append(conftest.parse_data_row(p))
        elif t == "E":
            raise PgError(conftest.parse_fields(p))
        elif t == "Z":
            return rows, p.decode()


def test_fixed_user_one_pool(pgcoro_factory, pg, limdb):
    """A database with a fixed user= has ONE pool, of that server user, whatever names its
    clients log in with (PgBouncer's): its pool_size bounds them all (three names with
    pool_size 2 opened six servers before), the fixed user's settings apply, not a
    client's [users] entry, and max_user_client_connections counts a login name's
    clients on that shared pool."""
    wait_until(lambda: count(pg) == 0, "no backend left on the database")
    names = {"fu1": "fu1pw", "fu2": "fu2pw", "fu3": "fu3pw"}
    inst = pgcoro_factory(
        settings={"pool_mode": "transaction", "admin_users": ADMIN},
        users={**names, ADMIN: ADMIN_PASS},
        user_settings={"fu1": "pool_size=5 max_user_client_connections=2"},
        databases={"fdb": f"host=127.0.0.1 port={pg.port} dbname={DB} user={APP_USER} "
                          "pool_size=2"})
    ws = [wire(inst, db="fdb", user=n, password=pw) for n, pw in names.items()]
    try:
        for w in ws[:2]:     # two names hold the pool's two servers in transactions
            assert wire_exec(w, "begin; select 1")[2] == "T"
        ws[2].send(Wire.msg("Q", b"select current_user\0"))   # the third name waits

        def fdb_pools():
            return [(p["user"], p["cl_active"], p["cl_waiting"])
                    for p in console_show(inst, "POOLS", ADMIN, ADMIN_PASS)
                    if p["database"] == "fdb"]
        wait_until(lambda: fdb_pools() == [(APP_USER, 2, 1)],
                   f"one pool fdb/{APP_USER}, the third client waiting: {fdb_pools()}")
        assert count(pg) == 2, client_backends(pg, DB)
        assert wire_exec(ws[0], "commit")[2] == "I"
        assert finish(ws[2]) == ([[APP_USER]], "I")
        assert count(pg) == 2, client_backends(pg, DB)
        # fu1's own limit: 2 clients of that name (whichever pool they share)
        ws.append(wire(inst, db="fdb", user="fu1", password="fu1pw"))
        with Wire.to(inst, timeout=20) as w:
            w.send_quietly(Wire.startup_packet({"user": "fu1", "database": "fdb"}))
            with pytest.raises(PgError) as ei:
                w.authenticate("fu1", "fu1pw")
            assert ei.value.sqlstate == "53300", ei.value.fields
        ws.append(wire(inst, db="fdb", user="fu2", password="fu2pw"))  # others still come
        users = {u["name"]: u for u in console_show(inst, "USERS", ADMIN, ADMIN_PASS)}
        assert users["fu1"]["current_client_connections"] == 2, users["fu1"]
        assert users["fu2"]["current_client_connections"] == 2, users["fu2"]
    finally:
        for w in ws:
            w.close()
    log = inst.log_text()
    assert f"pool fdb/{APP_USER} created: pool_size=2 " in log
    assert "pool fdb/fu" not in log
    inst.assert_serving(db="fdb")
