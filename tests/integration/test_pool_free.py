"""Pools are freed (audit finding A3): a pool that has never had traffic is small (some
450 bytes); autodb_idle_timeout (default 3600, PgBouncer's) frees a database the "*" entry
made, with its pools, once none has had a client or a server that long; pool_idle_timeout
(default 0) frees any unused pool; a reload that removes a pool's database frees it once
its sessions are over. A freed pool leaves SHOW POOLS, SHOW DATABASES, SHOW STATS and
/metrics; a client asking for its name again gets a new one; a pool with a client or a
server is never freed. Every wait is a poll with a generous bound, never a timing
assertion."""

import os
import re
import signal
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import conftest
from conftest import (APP_PASS, APP_USER, PgError, Wire, free_port, send_cancel_request,
                      vmrss_kb, wait_until)

pytestmark = pytest.mark.pooler_only

ADMIN, ADMIN_PASS = "admin", "adminpw"
FREE_WITHIN = 30  # seconds: a 1 s timeout and the once-a-second tick, with a slow machine


def start(pgcoro_factory, pg, settings=None, databases=None, **kw):
    """An instance whose only [databases] entries are "*" (the test PostgreSQL) and
    DATABASES, with an admin console user."""
    base = {"pool_mode": "transaction", "admin_users": ADMIN}
    base.update(settings or {})
    dbs = {"*": f"host=127.0.0.1 port={pg.port}"}
    dbs.update(databases or {})
    return pgcoro_factory(settings=base, databases=dbs, replace_databases=True,
                          users={APP_USER: APP_PASS, ADMIN: ADMIN_PASS}, **kw)


def show(inst, what):
    """SHOW WHAT on the console, as a list of {column: value} (values as text)."""
    with Wire.to(inst) as w:
        w.login(ADMIN, ADMIN_PASS, "pgcoro")
        w.send(Wire.msg("Q", f"SHOW {what}\0".encode()))
        cols, rows = [], []
        while True:
            t, p = w.read_msg()
            if t == "T":
                n = int.from_bytes(p[:2], "big")
                cols, off = [], 2
                for _ in range(n):
                    end = p.index(b"\0", off)
                    cols.append(p[off:end].decode())
                    off = end + 1 + 18
            elif t == "D":
                rows.append(dict(zip(cols, conftest.parse_data_row(p))))
            elif t == "E":
                raise PgError(conftest.parse_fields(p))
            elif t == "Z":
                return rows


def pools(inst):
    """The (database, user) of every pool, the console's own row ("pgbouncer") left out."""
    return {(r["database"], r["user"]) for r in show(inst, "POOLS")
            if r["database"] != "pgbouncer"}


def databases(inst):
    """The names SHOW DATABASES lists, the console's own ("pgbouncer") left out."""
    return {r["name"] for r in show(inst, "DATABASES") if r["name"] != "pgbouncer"}


def login_fails(inst, db, user=APP_USER, password=APP_PASS):
    """A login to DB whose server connection cannot be made: the SQLSTATE it gets."""
    with Wire.to(inst) as w:
        w.send_startup(user, db)
        with pytest.raises(PgError) as e:
            w.authenticate(user, password)
            w.query("SELECT 1")
        return e.value.fields.get("C")


def select(inst, db, n=1):
    with Wire.to(inst) as w:
        w.login(APP_USER, APP_PASS, db)
        assert w.query(f"SELECT {n}") == [[str(n)]]
        return w.backend_key


# ---- memory -----------------------------------------------------------------------------


def asan_build(pid):
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def test_wildcard_pools_do_not_accumulate(pgcoro_factory, pg, monkeypatch):
    """Finding A3: every database name a client asks for under a "*" entry makes a pool
    (each login also fails a server connection), kept until autodb_idle_timeout (an hour
    by default). Such a pool costs some 400 bytes: 3,000 names grow pgcoro's RSS by less
    than 2 MB more than 3,000 logins to names it has pools for already (interleaved, after
    a warm-up, so both see the allocator alike). Measured: 1.2 MB; before, 6.8 MB (2.3 kB
    per name), and under ASan 8.2 MB.

    Under ASan the bound is 1.75 times that: a pool's 380 bytes take a 448-byte chunk
    (its redzone) and 56 bytes of shadow there, and the allocator maps memory in steps of
    a few hundred kB (measured: 0.9-2.5 MB). Its quarantine is off for this instance and
    it returns no memory to the system: RSS would measure the quarantine filling (16 MB,
    some 3 kB per login) and those returns, not what pgcoro keeps. The "*" entry points
    at a port nobody listens on, so a failed connection costs no PostgreSQL backend."""
    monkeypatch.setattr(conftest, "ASAN_OPTIONS",
                        re.sub(r"quarantine_size_mb=\d+", "quarantine_size_mb=0",
                               conftest.ASAN_OPTIONS) + ":allocator_release_to_os_interval_ms=-1")
    inst = pgcoro_factory(settings={"auth_type": "trust", "pool_mode": "transaction",
                                    "log_connections": 0, "log_disconnections": 0,
                                    "log_pooler_errors": 0, "admin_users": ADMIN,
                                    # each login's failure at once: a waiting client
                                    # would wait through the back-off (0.5 s) otherwise
                                    "server_login_retry": 0},
                          databases={"*": f"host=127.0.0.1 port={free_port()}",
                                     "postgres": f"host=127.0.0.1 port={pg.port}"},
                          users={APP_USER: APP_PASS, ADMIN: ADMIN_PASS},
                          replace_databases=True)
    bound = 3584 if asan_build(inst.pid) else 2048
    known = 100  # names with a pool already; each comes back every 100+ logins

    def login(name):
        with Wire.to(inst) as w:
            w.send_startup(APP_USER, name)
            try:
                w.authenticate(APP_USER, "")
                w.query("SELECT 1")
            except PgError:
                pass

    for i in range(1000):  # warm-up: the known names' pools, the allocator's caches
        login(f"known_{i % known}")
    grew = {"new": 0, "known": 0}
    n = 0
    for _ in range(10):
        for kind in ("new", "known"):
            before = vmrss_kb(inst.pid)
            for _ in range(300):
                login(f"nosuchdb_{n:06d}" if kind == "new" else f"known_{n % known}")
                n += 1
            grew[kind] += vmrss_kb(inst.pid) - before
    grown = grew["new"] - grew["known"]
    print(f"\nRSS: 3000 logins with new names +{grew['new']} kB, 3000 with known names "
          f"+{grew['known']} kB")
    assert grown < bound, f"3000 database names asked for grew pgcoro's RSS by {grown} kB"
    assert len(pools(inst)) == 3000 + known  # none freed: the names are the new pools
    assert len(databases(inst)) == 3000 + known + 2  # and "*", "postgres"
    assert len(show(inst, "STATS")) == 3000 + known + 1  # and the console's, "pgbouncer"
    inst.assert_serving()


# ---- autodb_idle_timeout ---------------------------------------------------------------


def test_autodb_database_freed_when_unused_and_made_again(pgcoro_factory, pg):
    """autodb_idle_timeout = 1: a "*" database whose pool has had no client and no server
    for a second leaves SHOW POOLS and SHOW DATABASES (its server went at
    server_idle_timeout); a cancel request with the key of its old client is ignored; a
    client asking for the name again gets a new pool that works."""
    inst = start(pgcoro_factory, pg, {"autodb_idle_timeout": 1, "server_idle_timeout": 1})
    key = select(inst, "postgres")
    assert ("postgres", APP_USER) in pools(inst)
    assert {"*", "postgres"} <= databases(inst)
    wait_until(lambda: ("postgres", APP_USER) not in pools(inst), "the pool freed",
               timeout=FREE_WITHIN)
    assert "postgres" not in databases(inst) and "*" in databases(inst)
    assert "dropping database 'postgres' (1 pool) as it is an inactive auto-database" in \
        inst.log_text()
    send_cancel_request(*key, port=inst.port)
    select(inst, "postgres", 2)
    assert ("postgres", APP_USER) in pools(inst)
    inst.assert_serving()


def test_pool_with_a_client_or_a_server_is_not_freed(pgcoro_factory, pg):
    """autodb_idle_timeout = 1, servers never idle out: a "*" pool whose client stays, and
    one whose client left but whose server stays, are still there after a "*" pool that
    never had a server (a database PostgreSQL lacks) was freed; so is a configured
    database's pool without either (pool_idle_timeout is 0). The staying client still
    works."""
    inst = start(pgcoro_factory, pg, {"autodb_idle_timeout": 1, "server_idle_timeout": 0},
                 databases={"nowhere": "host=127.0.0.1 port=1 dbname=postgres"})
    stays = Wire.to(inst)
    try:
        stays.login(APP_USER, APP_PASS, "postgres")
        assert stays.query("SELECT 1") == [["1"]]
        select(inst, "bench")  # leaves; its server stays idle
        assert login_fails(inst, "nowhere") == "08006"
        assert login_fails(inst, "nosuchdb_x") == "3D000"
        assert ("nosuchdb_x", APP_USER) in pools(inst)
        wait_until(lambda: ("nosuchdb_x", APP_USER) not in pools(inst),
                   "the pool without client or server freed", timeout=FREE_WITHIN)
        rows = {(r["database"], r["user"]): r for r in show(inst, "POOLS")}
        assert {("postgres", APP_USER), ("bench", APP_USER), ("nowhere", APP_USER)} <= set(rows)
        assert int(rows[("bench", APP_USER)]["sv_idle"]) == 1, rows
        assert {"postgres", "bench", "nowhere"} <= databases(inst)
        assert stays.query("SELECT 2") == [["2"]]
    finally:
        stays.terminate()
    inst.assert_serving()


def test_autodb_waits_for_every_pool_of_the_database(pgcoro_factory, pg):
    """As PgBouncer's: a "*" database is freed with all its pools once none of them has
    had a client or a server for autodb_idle_timeout. Another user's pool of it (its
    server connection refused: no such role in PostgreSQL), unused for longer, stays while
    app's pool has a client; once that client and its server are gone, both go."""
    inst = start(pgcoro_factory, pg, {"autodb_idle_timeout": 1, "server_idle_timeout": 1})
    stays = Wire.to(inst)
    try:
        stays.login(APP_USER, APP_PASS, "postgres")
        assert login_fails(inst, "postgres", ADMIN, ADMIN_PASS) == "28P01"
        assert login_fails(inst, "nosuchdb_z") == "3D000"
        wait_until(lambda: ("nosuchdb_z", APP_USER) not in pools(inst),
                   "a database unused for longer freed", timeout=FREE_WITHIN)
        assert {("postgres", APP_USER), ("postgres", ADMIN)} <= pools(inst)
        assert stays.query("SELECT 1") == [["1"]]
    finally:
        stays.terminate()
    wait_until(lambda: not {("postgres", APP_USER), ("postgres", ADMIN)} & pools(inst),
               "the database freed with both pools", timeout=FREE_WITHIN)
    assert "dropping database 'postgres' (2 pools)" in inst.log_text()
    inst.assert_serving()


# ---- pool_idle_timeout, reload -------------------------------------------------------------


def test_pool_idle_timeout_frees_configured_pools(pgcoro_factory, pg):
    """pool_idle_timeout = 1 frees a configured database's unused pool (the database
    stays in SHOW DATABASES, as its entry does), not one with a client; a new login makes
    the pool again."""
    inst = start(pgcoro_factory, pg, {"pool_idle_timeout": 1, "autodb_idle_timeout": 0,
                                      "server_idle_timeout": 3},
                 databases={"cfgdb": f"host=127.0.0.1 port={pg.port} dbname=postgres"})
    stays = Wire.to(inst)
    try:
        stays.login(APP_USER, APP_PASS, "bench")
        select(inst, "cfgdb")
        wait_until(lambda: ("cfgdb", APP_USER) not in pools(inst), "the pool freed",
                   timeout=FREE_WITHIN)
        assert "cfgdb" in databases(inst)
        # PgBouncer's words, which alerts written for it look for; the pool was unused
        # since its server went idle (it closed server_idle_timeout = 3 s later), as
        # PgBouncer counts, not since that close (then 1 or 2 s)
        m = re.search(r"cleaning up idle pool for user app on db cfgdb because: pool idle "
                      r"timeout \(pool_idle_timeout; unused for (\d+) s\)", inst.log_text())
        assert m and int(m.group(1)) >= 3, inst.log_text()
        assert ("bench", APP_USER) in pools(inst)
        assert stays.query("SELECT 1") == [["1"]]
        select(inst, "cfgdb", 3)
    finally:
        stays.terminate()
    inst.assert_serving()


def rewrite(inst, settings=None, drop_db=None):
    text = open(inst.config_path).read()
    for key, value in (settings or {}).items():
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        if not n:
            text = text.replace("[pgcoro]\n", f"[pgcoro]\n{key} = {value}\n", 1)
    if drop_db:
        text, n = re.subn(rf"(?m)^{re.escape(drop_db)} = .*\n", "", text)
        assert n == 1
    with open(inst.config_path + ".tmp", "w") as f:
        f.write(text)
    os.replace(inst.config_path + ".tmp", inst.config_path)
    reloads = inst.log_text().count("configuration reloaded")
    inst.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: inst.log_text().count("configuration reloaded") > reloads, "reload")


def test_reload_sets_the_timeout_and_removes_the_entry(pgcoro_factory, pg):
    """A pool kept under autodb_idle_timeout = 0 is freed once a reload sets it to 1. A
    reload that removes the "*" entry: the session on a pool it made goes on; new logins
    to the name get 3D000; the pool is freed when its client and server are gone."""
    inst = start(pgcoro_factory, pg, {"autodb_idle_timeout": 0, "server_idle_timeout": 1})
    assert login_fails(inst, "nosuchdb_k") == "3D000"
    stays = Wire.to(inst)
    try:
        stays.login(APP_USER, APP_PASS, "postgres")
        rewrite(inst, {"autodb_idle_timeout": 1})
        wait_until(lambda: ("nosuchdb_k", APP_USER) not in pools(inst), "freed after reload",
                   timeout=FREE_WITHIN)
        assert ("postgres", APP_USER) in pools(inst)
        rewrite(inst, {"autodb_idle_timeout": 3600}, drop_db="*")
        assert stays.query("SELECT 1") == [["1"]]
        assert login_fails(inst, "postgres") == "3D000"
        assert ("postgres", APP_USER) in pools(inst)
    finally:
        stays.terminate()
    wait_until(lambda: ("postgres", APP_USER) not in pools(inst),
               "the pool of the removed entry freed", timeout=FREE_WITHIN)
    assert re.search(r"pool postgres/app freed: its database is no longer configured",
                     inst.log_text())
    assert "postgres" not in databases(inst)


# ---- what shows a freed pool ---------------------------------------------------------------


def test_metrics_and_stats_after_pools_freed(pgcoro_factory, pg):
    """/metrics, scraped while pools are being made and freed, stays valid Prometheus text
    (python3-prometheus-client's parser); a freed pool's series are gone, a live one's
    remain with their counts; SHOW STATS lists only databases with pools."""
    port = free_port()
    inst = start(pgcoro_factory, pg, {"autodb_idle_timeout": 1, "server_idle_timeout": 1,
                                      "metrics_listen": f"127.0.0.1:{port}"})

    def scrape():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=20) as r:
            text = r.read().decode()
        series = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                series[(s.name, frozenset(s.labels.items()))] = s.value
        return series

    def dbs_in(series):
        return {dict(labels).get("database") for _, labels in series} - {None}

    stays = Wire.to(inst)
    try:
        stays.login(APP_USER, APP_PASS, "postgres")
        for i in range(3):
            assert stays.query(f"SELECT {i}") == [[str(i)]]
        for i in range(20):
            assert login_fails(inst, f"gone_{i}") == "3D000"
            if i % 5 == 0:
                assert f"gone_{i}" in dbs_in(scrape())
        wait_until(lambda: not {f"gone_{i}" for i in range(20)} & dbs_in(scrape()),
                   "the freed pools' series gone", timeout=FREE_WITHIN)
        series = scrape()
        live = frozenset({"database": "postgres", "user": APP_USER}.items())
        assert series[("pgcoro_queries_total", live)] >= 3
        assert series[("pgcoro_pool_clients", frozenset(
            {"database": "postgres", "user": APP_USER, "state": "idle"}.items()))] == 1
        stats = {r["database"] for r in show(inst, "STATS")}
        assert "postgres" in stats and not any(d.startswith("gone_") for d in stats)
        assert not any(d.startswith("gone_") for d in databases(inst))
        assert stays.query("SELECT 9") == [["9"]]
    finally:
        stays.terminate()
    inst.assert_serving()
