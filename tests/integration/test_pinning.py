"""Transparent pinning (pin_session_state, issue 20): in transaction mode with fewer servers
than clients, a client that makes session state (SQL PREPARE, WITH HOLD cursor, session
advisory lock, temporary table) keeps its server while the state lives and gets the same
answers as in session mode; other clients never see its state; the server is clean after it
leaves; SET of settings PostgreSQL does not report is carried to each server the client
gets and never seen by another client; pin_session_state = error refuses with 0A000 and off
is PgBouncer's behaviour. Real clients: psycopg2 and psql here, asyncpg and pgjdbc in
test_pinning_drivers.py."""

import re
import subprocess
import urllib.request

import psycopg2
import pytest

from conftest import (APP_PASS, APP_USER, clean_env, free_port, recreate_database, wait_port,
                      wait_until)

pytestmark = pytest.mark.pooler_only

DB = "pindb"


@pytest.fixture(scope="module")
def pindb(pg):
    recreate_database(pg, DB, setup_sql="""
        CREATE TABLE t_rows AS SELECT g AS n FROM generate_series(1, 100) g;
        ALTER TABLE t_rows OWNER TO app;
    """)
    yield DB
    pg.psql_super(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE);")


def start(pgcoro_factory, pg, pool_size=2, mode=None, settings=None, user_settings=None,
          metrics=False):
    extra = f" pin_session_state={mode}" if mode else ""
    s = {"pool_mode": "transaction", "admin_users": APP_USER}
    port = free_port()
    if metrics:
        s["metrics_listen"] = f"127.0.0.1:{port}"
    s.update(settings or {})
    inst = pgcoro_factory(settings=s, user_settings=user_settings, databases={
        DB: f"host=127.0.0.1 port={pg.port} dbname={DB} pool_size={pool_size}{extra}"})
    if metrics:
        inst.metrics_port = port
        wait_port(port, inst.proc, what="metrics endpoint")
    return inst


def connect(inst, db=DB, user=APP_USER, password=APP_PASS, autocommit=True):
    c = psycopg2.connect(host="127.0.0.1", port=inst.port, dbname=db, user=user,
                         password=password, connect_timeout=10)
    c.autocommit = autocommit
    return c


def one(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()[0] if cur.description else None


def console(inst, sql):
    c = connect(inst, db="pgcoro")
    try:
        with c.cursor() as cur:
            cur.execute(sql)
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        c.close()


def pinned_of(inst):
    """SHOW CLIENTS' pinned column of the pindb clients, by client id."""
    return {r["id"]: r["pinned"] for r in console(inst, "SHOW CLIENTS") if r["database"] == DB}


def pool_row(inst):
    return [r for r in console(inst, "SHOW POOLS") if r["database"] == DB][0]


def busy_other(inst, n=2):
    """N clients, each one transaction, so the next transaction of another client is likely
    to land elsewhere; returns their backend pids."""
    pids = []
    for _ in range(n):
        c = connect(inst)
        pids.append(one(c, "SELECT pg_backend_pid()"))
        c.close()
    return pids


# ---------------------------------------------------------------------------------------
# each kind of state: kept for its client, invisible to the others, gone after it leaves

def test_sql_prepare_pins_until_deallocate(pg, pindb, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=2)
    a, b, c = connect(inst), connect(inst), connect(inst)
    one(a, "PREPARE p(int) AS SELECT $1 * 2, pg_backend_pid()")
    pid = one(a, "SELECT pg_backend_pid()")
    for i in range(10):
        # the others' transactions in between, on the one server left
        assert one(b, "SELECT count(*) FROM pg_prepared_statements") == 0
        assert one(c, "SELECT pg_backend_pid()") != pid
        with a.cursor() as cur:
            cur.execute("EXECUTE p(%s)", (i,))
            assert cur.fetchone() == (2 * i, pid)
    assert "prepare" in pinned_of(inst).values()
    assert pool_row(inst)["cl_pinned"] == 1
    one(a, "DEALLOCATE p")
    wait_until(lambda: pool_row(inst)["cl_pinned"] == 0, "a unpinned")
    assert set(pinned_of(inst).values()) == {""}
    for x in (a, b, c):
        x.close()
    inst.stop()
    log = open(inst.logpath).read()
    assert re.search(r"pinned to server \d+: prepare", log), log[-3000:]
    assert "unpinned from server" in log


def test_pinned_client_leaves_server_is_reset(pg, pindb, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1)
    a = connect(inst)
    one(a, "PREPARE leftover AS SELECT 1")
    one(a, "CREATE TEMP TABLE tmp_left (x int)")
    one(a, "SELECT pg_advisory_lock(4242)")
    pid = one(a, "SELECT pg_backend_pid()")
    a.close()
    b = connect(inst)
    # the one server, cleaned by server_reset_query before b got it
    assert one(b, "SELECT pg_backend_pid()") == pid
    assert one(b, "SELECT count(*) FROM pg_prepared_statements") == 0
    assert one(b, "SELECT to_regclass('tmp_left') IS NULL")
    assert one(b, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
    b.close()


def test_temp_table_pins_and_stays_private(pg, pindb, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=2)
    a, b = connect(inst), connect(inst)
    one(a, "CREATE TEMP TABLE tmp_a (x int)")
    for i in range(5):
        one(a, "INSERT INTO tmp_a VALUES (%s)", (i,))
        assert one(b, "SELECT to_regclass('tmp_a') IS NULL")
        busy_other(inst)
    assert one(a, "SELECT count(*) FROM tmp_a") == 5
    assert "temp_table" in pinned_of(inst).values()
    one(a, "DROP TABLE tmp_a")
    wait_until(lambda: pool_row(inst)["cl_pinned"] == 0, "a unpinned after DROP")
    a.close()
    b.close()


def test_temp_on_commit_drop_does_not_pin(pg, pindb, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=2)
    a = connect(inst, autocommit=False)
    with a.cursor() as cur:
        cur.execute("CREATE TEMP TABLE tmp_x (x int) ON COMMIT DROP")
        cur.execute("INSERT INTO tmp_x VALUES (1)")
    a.commit()
    assert pool_row(inst)["cl_pinned"] == 0
    a.close()


def test_advisory_lock_held_across_transactions(pg, pindb, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=2)
    a, b = connect(inst), connect(inst)
    assert one(a, "SELECT pg_try_advisory_lock(77)") is True
    for _ in range(5):
        busy_other(inst)
        assert one(b, "SELECT pg_try_advisory_lock(77)") is False
        assert one(a, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                      "AND pid = pg_backend_pid()") == 1
    assert "advisory_lock" in pinned_of(inst).values()
    one(a, "SELECT pg_advisory_unlock_all()")
    wait_until(lambda: pool_row(inst)["cl_pinned"] == 0, "a unpinned after unlock_all")
    assert one(b, "SELECT pg_try_advisory_lock(77)") is True
    one(b, "SELECT pg_advisory_unlock(77)")
    a.close()
    b.close()


def test_advisory_xact_lock_does_not_pin(pg, pindb, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=2)
    a = connect(inst)
    one(a, "SELECT pg_advisory_xact_lock(5)")
    assert pool_row(inst)["cl_pinned"] == 0
    a.close()


def test_with_hold_cursor_survives_commit(pg, pindb, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=2)
    a = connect(inst, autocommit=False)
    cur = a.cursor("held", withhold=True)
    cur.execute("SELECT n FROM t_rows ORDER BY n")
    assert [r[0] for r in cur.fetchmany(10)] == list(range(1, 11))
    a.commit()
    for _ in range(3):
        busy_other(inst)
        other = connect(inst)
        assert one(other, "SELECT count(*) FROM pg_cursors") == 0
        other.close()
    assert [r[0] for r in cur.fetchmany(10)] == list(range(11, 21))
    a.commit()
    assert "hold_cursor" in pinned_of(inst).values()
    cur.close()
    a.commit()
    wait_until(lambda: pool_row(inst)["cl_pinned"] == 0, "a unpinned after CLOSE")
    a.close()


# ---------------------------------------------------------------------------------------
# settings: replayed on each server, never seen by another client

def test_set_unreported_setting_follows_the_client(pg, pindb, pgcoro_factory):
    # longest-idle first: a holder's transaction takes the server a used last, so a's
    # transactions alternate between the two servers
    inst = start(pgcoro_factory, pg, pool_size=2, settings={"server_round_robin": 1})
    a, b, h = connect(inst), connect(inst), connect(inst, autocommit=False)
    one(a, "SET statement_timeout = '1234ms'")
    one(a, "SET search_path = pg_catalog, public")
    one(a, "SELECT set_config('myapp.tenant', '42', false)")
    pids = set()
    for _ in range(8):
        one(h, "SELECT 1")  # h holds a server until its commit
        pids.add(one(a, "SELECT pg_backend_pid()"))
        h.commit()
        assert one(a, "SHOW statement_timeout") == "1234ms"
        assert one(a, "SHOW search_path") == "pg_catalog, public"
        assert one(a, "SELECT current_setting('myapp.tenant')") == "42"
        assert one(b, "SHOW statement_timeout") == "0"
        assert one(b, "SHOW search_path") == '"$user", public'
        assert one(b, "SELECT current_setting('myapp.tenant', true)") in (None, "")
    assert pool_row(inst)["cl_pinned"] == 0  # settings replay, they do not pin
    assert len(pids) == 2, "a's transactions ran on both servers"
    one(a, "RESET statement_timeout")
    one(h, "SELECT 1")
    assert one(a, "SHOW statement_timeout") == "0"
    h.commit()
    assert one(a, "SHOW statement_timeout") == "0"
    assert one(a, "SHOW search_path") == "pg_catalog, public"
    one(a, "RESET ALL")
    assert one(a, "SHOW search_path") == '"$user", public'
    assert one(a, "SELECT current_setting('myapp.tenant', true)") in (None, "")
    for x in (a, b, h):
        x.close()


def test_reported_untracked_parameter_is_carried(pg, pindb, pgcoro_factory):
    """default_transaction_read_only is reported but not tracked by default
    (track_extra_parameters): carried as a setting all the same."""
    inst = start(pgcoro_factory, pg, pool_size=2, settings={"server_round_robin": 1})
    a, b, h = connect(inst), connect(inst), connect(inst, autocommit=False)
    one(a, "SET default_transaction_read_only = on")
    pids = set()
    for _ in range(4):
        one(h, "SELECT 1")
        pids.add(one(a, "SELECT pg_backend_pid()"))
        assert one(a, "SHOW default_transaction_read_only") == "on"
        h.commit()
    assert len(pids) == 2
    for _ in range(2):  # on both servers
        one(h, "SELECT 1")
        assert one(b, "SHOW default_transaction_read_only") == "off"
        h.commit()
    for x in (a, b, h):
        x.close()


def test_set_local_and_rolled_back_set_are_not_kept(pg, pindb, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1)
    a = connect(inst, autocommit=False)
    with a.cursor() as cur:
        cur.execute("SET LOCAL work_mem = '7MB'")
    a.commit()
    with a.cursor() as cur:
        cur.execute("SET work_mem = '9MB'")
    a.rollback()
    a.autocommit = True
    assert one(a, "SHOW work_mem") == "4MB"
    b = connect(inst)
    assert one(b, "SHOW work_mem") == "4MB"
    a.close()
    b.close()


# ---------------------------------------------------------------------------------------
# error and off

def test_error_mode_refuses_with_0A000(pg, pindb, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1, mode="error")
    a = connect(inst)
    for sql in ("PREPARE p AS SELECT 1", "CREATE TEMP TABLE t (x int)",
                "SELECT pg_advisory_lock(1)", "select 1; prepare q as select 2"):
        with pytest.raises(psycopg2.Error) as e:
            one(a, sql)
        assert e.value.pgcode == "0A000", sql
        assert "pin_session_state = error" in e.value.pgerror
        assert e.value.diag.message_hint and "session" in e.value.diag.message_hint
    # the session goes on, on a clean server; SET is still carried, not refused
    one(a, "SET statement_timeout = '5s'")
    assert one(a, "SHOW statement_timeout") == "5s"
    assert one(a, "SELECT count(*) FROM pg_prepared_statements") == 0
    # inside a transaction block the refusal aborts it, as a server error would
    a.autocommit = False
    with a.cursor() as cur:
        cur.execute("SELECT 1")
        with pytest.raises(psycopg2.Error) as e:
            cur.execute("DECLARE c CURSOR WITH HOLD FOR SELECT 1")
        assert e.value.pgcode == "0A000"
    a.rollback()
    a.close()
    inst.stop()
    assert "statement refused (pin_session_state = error)" in open(inst.logpath).read()


def test_off_is_pgbouncers_behaviour(pg, pindb, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1, mode="off")
    a = connect(inst)
    one(a, "PREPARE p AS SELECT 1")
    assert pool_row(inst)["cl_pinned"] == 0
    b = connect(inst)
    # the one server, with a's statement left on it: what pinning prevents
    assert one(b, "SELECT count(*) FROM pg_prepared_statements") == 1
    a.close()
    b.close()


def test_per_user_setting_wins(pg, pindb, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1, mode="off",
                 user_settings={APP_USER: "pin_session_state=error"})
    a = connect(inst)
    with pytest.raises(psycopg2.Error) as e:
        one(a, "PREPARE p AS SELECT 1")
    assert e.value.pgcode == "0A000"
    a.close()


# ---------------------------------------------------------------------------------------
# psql, bounds, visibility

def test_psql_session_script(pg, pindb, pgcoro_factory):
    """psql -c runs each statement as its own Query in one session: the same output as in
    session mode."""
    inst = start(pgcoro_factory, pg, pool_size=1)
    other = connect(inst)
    script = ["PREPARE s(int) AS SELECT $1 + 1", "CREATE TEMP TABLE tt AS SELECT 5 AS v",
              "SET statement_timeout = '3s'", "EXECUTE s(41)", "SELECT v FROM tt",
              "SHOW statement_timeout"]
    argv = [pg.psql_bin, "-X", "-At", "-h", "127.0.0.1", "-p", str(inst.port), "-U", APP_USER,
            "-d", DB]
    for s in script:
        argv += ["-c", s]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       env=clean_env(PGPASSWORD=APP_PASS))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[-4:-1] == ["42", "5", "3s"], r.stdout
    assert one(other, "SELECT to_regclass('tt') IS NULL")
    assert one(other, "SHOW statement_timeout") == "0"
    other.close()


def test_pinned_client_bounded_by_client_idle_timeout(pg, pindb, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1, settings={"client_idle_timeout": 1})
    a = connect(inst)
    one(a, "PREPARE p AS SELECT 1")
    # the server is asked after the ReadyForQuery went to the client: the pin follows it
    wait_until(lambda: pool_row(inst)["cl_pinned"] == 1, "a pinned")
    wait_until(lambda: pool_row(inst)["cl_pinned"] == 0, "the idle pinned client closed")
    with pytest.raises(psycopg2.Error):
        one(a, "EXECUTE p")
    b = connect(inst)
    assert one(b, "SELECT count(*) FROM pg_prepared_statements") == 0
    b.close()


def test_metrics_count_pins(pg, pindb, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=2, metrics=True)
    a = connect(inst)
    one(a, "CREATE TEMP TABLE m (x int)")
    wait_until(lambda: pool_row(inst)["cl_pinned"] == 1, "a pinned")
    text = urllib.request.urlopen(f"http://127.0.0.1:{inst.metrics_port}/metrics",
                                  timeout=10).read().decode()
    assert 'pgcoro_pins_total{reason="temp_table"} 1' in text, text
    assert re.search(r'pgcoro_pool_pinned_clients\{[^}]*database="pindb"[^}]*\} 1', text), text
    a.close()
