"""Transparent pinning (issue 20) with real drivers: asyncpg, psycopg 3 and pgjdbc
(psycopg2 and psql: test_pinning.py). Each kind of session state (SQL PREPARE, WITH HOLD
cursor, session advisory lock, temporary table, settings with SET / set_config, RESET and
DISCARD ALL; the same statements executed again through the drivers' prepared path) is a
script of steps each driver runs on three connections: a makes the state, b and c
interleave transactions and look for it. The driver prints one line per step; through
pgcoro (transaction mode, pool_size = 2, so the three share two servers) the lines must be
those PostgreSQL gives directly, where each connection is its own session. At the
script's checkpoints the console (SHOW CLIENTS' pinned, SHOW POOLS' cl_pinned) shows the
pin made and gone; after the driver leaves, the servers hold none of its state (and with
one server, after it leaves pinned). pin_session_state = error refuses with 0A000 and the
connection goes on.

A step is (op, who, args, params, want): WANT, when given, is how PostgreSQL's answer
begins (checked on the direct run, so a script that stopped testing what it says fails).
The ops are those of java/PinJdbc.java (its header): x, q, p, begin, commit, rollback,
open, fetch, close, pid, check."""

import asyncio
import re
import types

import psycopg2
import pytest

from conftest import APP_PASS, APP_USER, console_show, run_jdbc, wait_until
from test_pinning import DB, pindb  # noqa: F401 -- the database (t_rows) and its fixture

pytestmark = [pytest.mark.pooler_only, pytest.mark.usefixtures("pindb")]

DRIVERS = ("asyncpg", "psycopg3", "pgjdbc")


def start(pgcoro_factory, pg, pool_size=2, mode=None):
    extra = f" pin_session_state={mode}" if mode else ""
    return pgcoro_factory(
        settings={"pool_mode": "transaction", "admin_users": APP_USER},
        databases={DB: f"host=127.0.0.1 port={pg.port} dbname={DB} pool_size={pool_size}{extra}"})


def direct(pg):
    """PostgreSQL itself as a run's target."""
    return types.SimpleNamespace(host=pg.host, port=pg.port, db=lambda alias: alias)


# ---------------------------------------------------------------------------------------
# the scripts

def X(who, sql, want=None):
    return ("x", who, (sql,), (), want)


def Q(who, sql, *params, want=None):
    return ("q", who, (sql,), params, want)


def P(who, sql, *params, want=None):
    return ("p", who, (sql,), params, want)


def BEGIN(who):
    return ("begin", who, (), (), "ok")


def COMMIT(who):
    return ("commit", who, (), (), "ok")


def ROLLBACK(who):
    return ("rollback", who, (), (), "ok")


def OPEN(who, name, sql):
    return ("open", who, (name, sql), (), "ok")


def FETCH(who, name, n, want=None):
    return ("fetch", who, (name, str(n)), (), want)


def CLOSE(who, name):
    return ("close", who, (name,), (), "ok")


def PID(who):
    return ("pid", who, (), (), None)


def CHECK(tag):
    """At this point through pgcoro: "pinned:r1,r2" (one client pinned, for these reasons),
    "unpinned" (none, in a while: the server is asked after the ReadyForQuery), "nopin"."""
    return ("check", tag, (), (), None)


PREPARED = "SELECT count(*) FROM pg_prepared_statements WHERE from_sql"
HOLDABLE = "SELECT count(*) FROM pg_cursors WHERE is_holdable"
MY_LOCKS = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
SETTINGS = ("SELECT current_setting('statement_timeout') || ' ' || current_setting('search_path')"
            " || ' ' || coalesce(nullif(current_setting('app.tenant', true), ''), '-')")
# NULL and '' alike: a custom setting another client made stays on the server as a
# placeholder, '' after RESET (test_custom_setting_placeholder_left_to_others)
DEFAULTS = '0 "$user", public -'

PIDS = [PID("a"), PID("b"), PID("c")]  # pinned: a's the same, b's and c's another


def prepare_script():
    # a's pid once pinned (before its PREPARE, a may run on either server)
    s = [X("a", "PREPARE pp(int) AS SELECT $1 * 2", want="ok"),
         Q("a", "PREPARE pq AS SELECT 'q'::text"),  # through the driver's query path
         CHECK("pinned:prepare"), PID("a")]
    for i in range(3):
        s += [Q("b", PREPARED, want="0"), X("b", "EXECUTE pp(1)", want="err 26000"),
              Q("a", f"EXECUTE pp({i})", want=str(2 * i)), Q("c", PREPARED, want="0"),
              P("a", "EXECUTE pq", want="q"), *PIDS]
    return s + [
        Q("a", "SELECT string_agg(name, ',' ORDER BY name) FROM pg_prepared_statements "
               "WHERE from_sql", want="pp,pq"),
        X("a", "DEALLOCATE pp", want="ok"), CHECK("pinned:prepare"), PID("a"),
        X("a", "DEALLOCATE pq", want="ok"), CHECK("unpinned"),
        X("a", "EXECUTE pp(1)", want="err 26000"), Q("a", PREPARED, want="0"),
        Q("b", PREPARED, want="0")]


def hold_script():
    s = [BEGIN("a"),
         X("a", "DECLARE hc CURSOR WITH HOLD FOR SELECT n FROM t_rows ORDER BY n", want="ok"),
         Q("a", "FETCH 3 FROM hc", want="1;2;3"),
         OPEN("a", "nc", "SELECT n * 10 FROM t_rows ORDER BY n"),  # psycopg 3: ServerCursor
         FETCH("a", "nc", 2, want="10;20"), COMMIT("a"), PID("a"), CHECK("pinned:hold_cursor")]
    for i in range(3):
        s += [Q("b", HOLDABLE, want="0"), Q("b", "FETCH 1 FROM hc", want="err 34000"),
              Q("a", "FETCH 2 FROM hc", want=f"{4 + 2 * i};{5 + 2 * i}"),
              Q("c", HOLDABLE, want="0"), FETCH("a", "nc", 1, want=str(30 + 10 * i)),
              *PIDS]
    return s + [
        Q("a", "SELECT string_agg(name, ',' ORDER BY name) FROM pg_cursors WHERE is_holdable",
          want="hc,nc"),
        CLOSE("a", "nc"), CHECK("pinned:hold_cursor"), PID("a"),
        X("a", "CLOSE hc", want="ok"), CHECK("unpinned"),
        Q("a", "FETCH 1 FROM hc", want="err 34000"), Q("a", HOLDABLE, want="0")]


def advisory_script():
    s = [Q("a", "SELECT 'locked' FROM pg_advisory_lock($1::bigint)", 4711, want="locked"),
         Q("a", "SELECT pg_try_advisory_lock(4712)::int", want="1"), PID("a"),
         CHECK("pinned:advisory_lock")]
    for _ in range(3):
        s += [Q("b", "SELECT pg_try_advisory_xact_lock(4711)::int", want="0"),
              Q("c", MY_LOCKS, want="0"), Q("a", MY_LOCKS, want="2"),
              Q("b", "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                     "AND objid IN (4711, 4712)", want="2"), *PIDS]
    return s + [
        Q("a", "SELECT pg_advisory_unlock($1::bigint)::int", 4712, want="1"),
        CHECK("pinned:advisory_lock"), PID("a"),
        Q("a", "SELECT 'unlocked' FROM pg_advisory_unlock_all()", want="unlocked"),
        CHECK("unpinned"), Q("b", "SELECT pg_try_advisory_xact_lock(4711)::int", want="1"),
        Q("a", MY_LOCKS, want="0")]


def temp_script():
    s = [X("a", "CREATE TEMP TABLE tmp_drv (x int, t text)", want="ok"), PID("a"),
         CHECK("pinned:temp_table")]
    for i in range(1, 4):
        s += [P("a", "INSERT INTO tmp_drv VALUES ($1, $2)", i, f"v{i}"),
              Q("b", "SELECT (to_regclass('tmp_drv') IS NULL)::int", want="1"),
              P("b", "SELECT count(*) FROM tmp_drv", want="err 42P01"),
              Q("c", "SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()",
                want="0"),
              P("a", "SELECT count(*), max(t) FROM tmp_drv WHERE x <= $1", i, want=f"{i},v{i}"),
              *PIDS]
    return s + [X("a", "DROP TABLE tmp_drv", want="ok"), CHECK("unpinned"),
                Q("a", "SELECT (to_regclass('tmp_drv') IS NULL)::int", want="1")]


def settings_rounds(n, a_want, sql=SETTINGS):
    """N rounds: a's SQL while b holds a server in a transaction (so a's runs on the
    other one), then alone (on b's: the last one released), and c's."""
    s = []
    for _ in range(n):
        s += [BEGIN("b"), Q("b", sql, want=DEFAULTS), Q("a", sql, want=a_want), PID("a"),
              COMMIT("b"), Q("a", sql, want=a_want), PID("a"), Q("c", sql, want=DEFAULTS)]
    return s


def settings_script():
    return [
        X("a", "SET statement_timeout = '1234ms'", want="ok"),
        X("a", "SET search_path = pg_catalog, public", want="ok"),
        Q("a", "SELECT set_config('app.tenant', $1, false)", "t42", want="t42"),
        CHECK("nopin"),
        *settings_rounds(3, "1234ms pg_catalog, public t42"),
        X("a", "RESET statement_timeout", want="ok"),
        *settings_rounds(1, "0 pg_catalog, public t42"),
        X("a", "DISCARD ALL", want="ok"),
        # another text: asyncpg's cached statements are gone with DISCARD ALL (26000)
        *settings_rounds(1, DEFAULTS, SETTINGS + " AS after_discard"),
        CHECK("nopin")]


# Statements executed again and again, as applications do: past the first execution the
# drivers' prepared path sends only Bind/Execute for them (asyncpg's statement cache,
# psycopg 3's prepare=True, pgjdbc's server-prepared S_n).

def reused_lock_script():
    s = []
    for _ in range(3):
        s += [P("a", "SELECT 'locked' FROM pg_advisory_lock($1::bigint)", 4711, want="locked"),
              CHECK("pinned:advisory_lock"),
              Q("b", "SELECT pg_try_advisory_xact_lock(4711)::int", want="0"),
              Q("c", "SELECT pg_try_advisory_xact_lock(4711)::int", want="0"), *PIDS,
              P("a", "SELECT 'unlocked' FROM pg_advisory_unlock_all()", want="unlocked"),
              CHECK("unpinned"),
              Q("b", "SELECT pg_try_advisory_xact_lock(4711)::int", want="1")]
    return s


def reused_temp_script():
    s = []
    for i in range(3):
        s += [P("a", "CREATE TEMP TABLE tmp_drv (x int)"), CHECK("pinned:temp_table"),
              P("a", "INSERT INTO tmp_drv VALUES ($1)", i),
              Q("b", "SELECT (to_regclass('tmp_drv') IS NULL)::int", want="1"),
              Q("c", "SELECT (to_regclass('tmp_drv') IS NULL)::int", want="1"),
              P("a", "SELECT count(*) FROM tmp_drv", want="1"), *PIDS,
              P("a", "DROP TABLE tmp_drv"), CHECK("unpinned")]
    return s


def reused_set_config_script():
    s = []
    for t in ("t1", "t2", "t3"):
        s += [P("a", "SELECT set_config('app.tenant', $1, false)", t, want=t),
              *settings_rounds(2, f'0 "$user", public {t}'), CHECK("nopin")]
    return s


def set_config_named_by_parameter_script():
    """The custom setting's name a parameter, not in the text: it cannot be asked for, so
    a keeps its server (pinned: settings)."""
    return [Q("a", "SELECT set_config($1, $2, false)", "app.tenant", "d1", want="d1"),
            CHECK("pinned:settings"), *settings_rounds(2, '0 "$user", public d1')]


SCRIPTS = {"prepare": prepare_script, "hold": hold_script, "advisory": advisory_script,
           "temp": temp_script, "settings": settings_script,
           "reused_lock": reused_lock_script, "reused_temp": reused_temp_script,
           "reused_set_config": reused_set_config_script,
           "set_config_named_by_parameter": set_config_named_by_parameter_script}


# ---------------------------------------------------------------------------------------
# running a script with each driver

def sql_with(sql, params, marker):
    """SQL with $n as the driver's parameter MARKER ("%s", "?") when it has parameters."""
    return re.sub(r"\$\d+", marker, sql) if params else sql


def shown(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "t" if v else "f"
    return str(v)


def render(rows):
    """Rows as PinJdbc.java prints them; None (no result set) is "ok"."""
    if rows is None:
        return "ok"
    if not rows:
        return "(none)"
    return ";".join(",".join(shown(v) for v in r) for r in rows)


class Driver:
    """What both Python drivers do alike; WITH HOLD cursors in SQL."""

    def sqlstate(self, e):
        return getattr(e, "sqlstate", None) or "-"

    async def x(self, conn, sql):
        await conn.execute(sql)

    async def open(self, conn, name, sql):
        await self.x(conn, f"DECLARE {name} CURSOR WITH HOLD FOR {sql}")

    async def fetch(self, conn, name, n):
        return await self.q(conn, f"FETCH {n} FROM {name}", (), False)

    async def close(self, conn, name):
        await self.x(conn, f"CLOSE {name}")

    async def disconnect(self, conn):
        await conn.close()


class Asyncpg(Driver):
    """asyncpg: fetch with or without arguments goes through its statement cache (named
    statements, the extended protocol), prepare() makes a new named statement; execute
    without arguments is a simple Query."""

    def __init__(self):
        import asyncpg
        self.asyncpg = asyncpg
        self.tx = {}

    async def connect(self, host, port):
        return await self.asyncpg.connect(host=host, port=port, user=APP_USER,
                                          password=APP_PASS, database=DB, timeout=60)

    async def q(self, conn, sql, params, prepared):
        if prepared:
            return [tuple(r) for r in await (await conn.prepare(sql)).fetch(*params)]
        return [tuple(r) for r in await conn.fetch(sql, *params)]

    async def begin(self, conn):
        self.tx[id(conn)] = conn.transaction()
        await self.tx[id(conn)].start()

    async def end(self, conn, commit):
        tx = self.tx.pop(id(conn))
        await (tx.commit() if commit else tx.rollback())


class Psycopg3(Driver):
    """psycopg 3 (async): without parameters a simple Query, with them the extended
    protocol (unnamed), prepared (named _pg3_n) with prepare=True; WITH HOLD cursors are
    its ServerCursor(withhold=True)."""

    def __init__(self):
        import psycopg
        self.psycopg = psycopg
        self.cursors = {}

    async def connect(self, host, port):
        return await self.psycopg.AsyncConnection.connect(
            host=host, port=port, user=APP_USER, password=APP_PASS, dbname=DB,
            connect_timeout=60, autocommit=True)

    async def q(self, conn, sql, params, prepared):
        if params:
            sql = sql_with(sql.replace("%", "%%"), params, "%s")
        cur = await conn.execute(sql, params or None, prepare=True if prepared else None)
        return await cur.fetchall() if cur.description else None

    async def begin(self, conn):
        await conn.set_autocommit(False)

    async def end(self, conn, commit):
        try:
            await (conn.commit() if commit else conn.rollback())
        finally:
            await conn.set_autocommit(True)

    async def open(self, conn, name, sql):
        cur = conn.cursor(name, withhold=True)
        self.cursors[name] = cur
        await cur.execute(sql)

    async def fetch(self, conn, name, n):
        return await self.cursors[name].fetchmany(n)

    async def close(self, conn, name):
        await self.cursors.pop(name).close()


async def step(drv, conn, op, args, params):
    if op == "x":
        return await drv.x(conn, args[0])
    if op in ("q", "p"):
        return await drv.q(conn, args[0], params, op == "p")
    if op == "begin":
        return await drv.begin(conn)
    if op in ("commit", "rollback"):
        return await drv.end(conn, op == "commit")
    if op == "open":
        return await drv.open(conn, *args)
    if op == "fetch":
        return await drv.fetch(conn, args[0], int(args[1]))
    if op == "close":
        return await drv.close(conn, args[0])
    raise AssertionError(f"unknown op {op}")


async def run_python(drv, target, script, checkpoint):
    conns = {}
    out = []
    try:
        for who in "abc":
            conns[who] = await drv.connect(target.host, target.port)
        for i, s in enumerate(script):
            op, who, args, params, _ = s
            if op == "check":
                out.append(f"@check {who}")
                checkpoint(out[-1])
                continue
            if op == "pid":
                op, args = "q", ("SELECT pg_backend_pid()",)
            try:
                res = render(await step(drv, conns[who], op, args, params))
            except Exception as e:  # noqa: BLE001 -- the outcome is what is compared
                res = f"err {drv.sqlstate(e)} {type(e).__name__}"
            out.append(f"#pid {who} {res}" if s[0] == "pid" else f"{i:02d} {who} {res}")
    finally:
        for c in conns.values():
            await drv.disconnect(c)
    return out


def run(driver, target, script, tmp_path, checkpoint=lambda line: None):
    """SCRIPT run by DRIVER against TARGET (pgcoro, or direct(pg)): its output lines."""
    if driver == "pgjdbc":
        path = tmp_path / "script.txt"
        lines = []
        for op, who, args, params, _ in script:
            typed = [("i:" if isinstance(p, int) else "s:") + str(p) for p in params]
            fields = [op, who, *args, *typed]
            assert not any("\t" in f or "\n" in f for f in fields), fields
            lines.append("\t".join(fields))
        path.write_text("\n".join(lines) + "\n")
        rc, out = run_jdbc(target, "PinJdbc", str(path), db=DB, checkpoint=checkpoint)
        assert rc == 0, out
        return out.splitlines()
    drv = Asyncpg() if driver == "asyncpg" else Psycopg3()
    return asyncio.run(asyncio.wait_for(run_python(drv, target, script, checkpoint), 180))


def results(out):
    """{step index: result} of a run's output."""
    res = {}
    for line in out:
        m = re.match(r"(\d+) \w+ (.*)$", line)
        if m:
            res[int(m.group(1))] = m.group(2)
    return res


def compared(out):
    """The lines that must be the same through pgcoro (not the backend pids)."""
    return [line for line in out if not line.startswith("#")]


def pids_of(out, who="a"):
    return [line.split()[2] for line in out
            if line.startswith(f"#pid {who} ") and line.split()[2].isdigit()]


def check_wants(script, out):
    res = results(out)
    for i, s in enumerate(script):
        if s[4] is not None:
            assert res.get(i, "").startswith(s[4]), (i, s, res.get(i), out)


# ---------------------------------------------------------------------------------------
# pgcoro's side: its console at the checkpoints, its servers afterwards

def pin_state(inst):
    """(SHOW POOLS' cl_pinned, the non-empty SHOW CLIENTS pinned of the pool's clients)."""
    pool = [r for r in console_show(inst, "POOLS", APP_USER, APP_PASS)
            if r["database"] == DB][0]
    pinned = [r["pinned"] for r in console_show(inst, "CLIENTS", APP_USER, APP_PASS)
              if r["database"] == DB and r["pinned"]]
    return pool["cl_pinned"], pinned


def console_checkpoint(inst, seen):
    def check(line):
        tag = line.split(" ", 1)[1]
        seen.append(tag)
        if tag == "nopin":
            assert pin_state(inst) == (0, [])
        elif tag == "unpinned":
            wait_until(lambda: pin_state(inst) == (0, []), f"checkpoint {len(seen)}: no pin",
                       interval=0.2)
        else:
            want = set(tag.split(":", 1)[1].split(","))

            def pinned():
                n, pins = pin_state(inst)
                return n == 1 and len(pins) == 1 and want <= set(pins[0].split(","))
            wait_until(pinned, f"checkpoint {len(seen)}: one client pinned for {want}",
                       interval=0.2)
    return check


LEFT_SQL = (
    f"SELECT ({PREPARED}), ({HOLDABLE}), ({MY_LOCKS}), to_regclass('tmp_drv') IS NULL, "
    "current_setting('statement_timeout'), current_setting('search_path'), "
    "coalesce(current_setting('app.tenant', true), ''), pg_backend_pid()")
CLEAN = (0, 0, 0, True, "0", '"$user", public', "")


def servers_clean(inst, n):
    """Looks at N servers of the pool at once (the first N-1 held in transactions): none
    holds a client's state. Their backend pids."""
    conns, pids = [], []
    try:
        for _ in range(n):
            c = psycopg2.connect(host=inst.host, port=inst.port, dbname=DB, user=APP_USER,
                                 password=APP_PASS, connect_timeout=10)
            conns.append(c)
            with c.cursor() as cur:
                cur.execute(LEFT_SQL)
                row = cur.fetchone()
            assert row[:-1] == CLEAN, row
            pids.append(row[-1])
    finally:
        for c in conns:
            c.close()
    assert len(set(pids)) == n, pids
    return pids


# ---------------------------------------------------------------------------------------
# the tests

# Statements executed in another Sync than their Parse (Bind/Execute only: asyncpg's
# statement cache and prepare(), pgjdbc past prepareThreshold, psycopg 3's prepared
# statements; psycopg 3's prepare=True even the first time) are noted at their Bind
# (pin.c keeps what each statement's text may do by name): the reused_* scripts. A
# set_config whose name is a parameter pins (the name cannot be asked for).
@pytest.mark.parametrize("driver,kind", [
    pytest.param(d, k, id=f"{d}-{k}") for d in DRIVERS for k in SCRIPTS])
def test_same_answers_as_postgres(pg, pgcoro_factory, tmp_path, driver, kind):
    script = SCRIPTS[kind]()
    want = run(driver, direct(pg), script, tmp_path)
    check_wants(script, want)
    inst = start(pgcoro_factory, pg)
    seen = []
    got = run(driver, inst, script, tmp_path, console_checkpoint(inst, seen))
    assert compared(got) == compared(want)
    assert seen == [s[1] for s in script if s[0] == "check"]
    a_pids = set(pids_of(got))
    others = set(pids_of(got, "b") + pids_of(got, "c"))
    if kind in ("settings", "reused_set_config"):
        # replayed, not pinned: a's transactions ran on both servers
        assert len(a_pids) == 2, got
    else:
        # pinned: one server for a's session, never lent to b or c meanwhile
        assert len(a_pids) == 1 and not a_pids & others, got
    wait_until(lambda: pin_state(inst) == (0, []), "the driver's clients gone")
    servers_clean(inst, 2)


LEAVE = [
    PID("a"), X("a", "PREPARE leftover AS SELECT 1", want="ok"),
    X("a", "DECLARE lc CURSOR WITH HOLD FOR SELECT 1", want="ok"),
    Q("a", "SELECT 'locked' FROM pg_advisory_lock($1::bigint)", 99, want="locked"),
    X("a", "CREATE TEMP TABLE tmp_drv (x int)", want="ok"),
    X("a", "SET statement_timeout = '4321ms'", want="ok"),
    X("a", "SET search_path = pg_catalog, public", want="ok"),
    Q("a", "SELECT set_config('app.tenant', 'left', false)", want="left"),
    CHECK("pinned:prepare,hold_cursor,advisory_lock,temp_table"), PID("a"),
    Q("a", LEFT_SQL.replace(", pg_backend_pid()", ", 1"),
      want="1,1,1,f,4321ms,pg_catalog, public,left,1")]


@pytest.mark.parametrize("driver", DRIVERS)
def test_pinned_driver_leaves_server_clean(pg, pgcoro_factory, tmp_path, driver):
    """One server: the driver's a makes every kind of state and disconnects with it; the
    next client gets that server, clean."""
    inst = start(pgcoro_factory, pg, pool_size=1)
    seen = []
    out = run(driver, inst, LEAVE, tmp_path, console_checkpoint(inst, seen))
    check_wants(LEAVE[:-1], out)
    res = results(out)
    assert res[len(LEAVE) - 1].replace("true", "t").replace("false", "f") == LEAVE[-1][4], out
    assert len(seen) == 1 and len(set(pids_of(out))) == 1, out
    wait_until(lambda: pin_state(inst) == (0, []), "the driver's clients gone")
    assert servers_clean(inst, 1) == [int(pids_of(out)[0])]


ERROR = [
    X("a", "PREPARE p AS SELECT 1", want="err 0A000"),
    Q("a", "PREPARE p2 AS SELECT 1", want="err 0A000"),
    Q("a", "SELECT pg_advisory_lock(6)", want="err 0A000"),
    X("a", "CREATE TEMP TABLE te (x int)", want="err 0A000"),
    P("a", "CREATE TEMP TABLE te2 (x int)", want="err 0A000"),
    BEGIN("a"), Q("a", "SELECT 1", want="1"),
    X("a", "DECLARE c CURSOR WITH HOLD FOR SELECT 1", want="err 0A000"),
    Q("a", "SELECT 1", want="err 25P02"), ROLLBACK("a"),
    X("a", "SET statement_timeout = '5s'", want="ok"),
    Q("a", f"SELECT current_setting('statement_timeout') || ' ' || ({PREPARED}) || ' ' || "
           f"({MY_LOCKS}) || ' ' || (to_regclass('te') IS NULL)", want="5s 0 0 true"),
    Q("b", "SELECT current_setting('statement_timeout')", want="0"),
    Q("a", "SELECT 40 + $1::int", 2, want="42")]

# A refused statement with parameters (asyncpg: fetchval with arguments; psycopg 3: with
# a str argument, sent untyped)
ERROR_PARAMS = [
    Q("a", "SELECT 'locked' FROM pg_advisory_lock($1::bigint)", 5, want="err 0A000"),
    Q("a", "SELECT 'locked' FROM pg_advisory_lock(hashtext($1))", "k", want="err 0A000"),
    P("a", "SELECT pg_try_advisory_lock($1::bigint)::int", 8, want="err 0A000"),
    Q("a", f"SELECT ({PREPARED}) || ' ' || ({MY_LOCKS})", want="0 0"),
    Q("a", "SELECT 40 + $1::int", 2, want="42")]


@pytest.mark.parametrize("driver", DRIVERS)
def test_error_mode_refuses_with_0A000(pg, pgcoro_factory, tmp_path, driver):
    inst = start(pgcoro_factory, pg, pool_size=1, mode="error")
    out = run(driver, inst, ERROR, tmp_path)
    check_wants(ERROR, out)
    if driver == "asyncpg":
        assert all(r.endswith("FeatureNotSupportedError")
                   for r in results(out).values() if r.startswith("err 0A000")), out
    assert pin_state(inst) == (0, [])
    inst.stop()
    assert "statement refused (pin_session_state = error)" in inst.log_text()


# The stand-in pin.c puts in a refused Parse (a DO block) has no parameters. A driver that
# Describes the statement before it binds (asyncpg) learns it takes none and raises its own
# InterfaceError ("the server expects 0 arguments for this query, 1 was passed") without
# executing it; a parameter sent with type 0 (psycopg 3's str) fails the Parse with 42P18
# (could not determine data type of parameter $1). pgjdbc types every parameter: 0A000.
PARSE_STAND_IN = ("pin_session_state = error: the stand-in for a refused Parse has no "
                  "parameters (%s)")


@pytest.mark.parametrize("driver", [
    pytest.param("asyncpg", marks=pytest.mark.xfail(
        strict=True, reason=PARSE_STAND_IN % "asyncpg: InterfaceError, not 0A000")),
    pytest.param("psycopg3", marks=pytest.mark.xfail(
        strict=True, reason=PARSE_STAND_IN % "psycopg 3, untyped str parameter: 42P18")),
    "pgjdbc"])
def test_error_mode_refuses_parse_with_parameters(pg, pgcoro_factory, tmp_path, driver):
    inst = start(pgcoro_factory, pg, pool_size=1, mode="error")
    out = run(driver, inst, ERROR_PARAMS, tmp_path)
    check_wants(ERROR_PARAMS, out)


PLACEHOLDER = [
    Q("a", "SELECT set_config('app.tenant', '42', false)", want="42"),
    Q("b", "SELECT coalesce(current_setting('app.tenant', true), '<null>')", want="<null>"),
    Q("b", "SELECT coalesce(current_setting('app.tenant', true)::int, -1)", want="-1")]


@pytest.mark.xfail(strict=True, reason=(
    "a custom setting a client set stays on the server as a placeholder: RESET ALL / "
    "DISCARD ALL make it '', not NULL (PostgreSQL cannot drop one); another client on that "
    "server then sees '' (and current_setting(..., true)::int fails with 22P02) where "
    "PostgreSQL gives it NULL. PgBouncer's servers do the same."))
@pytest.mark.parametrize("driver", ["psycopg3"])
def test_custom_setting_placeholder_left_to_others(pg, pgcoro_factory, tmp_path, driver):
    want = run(driver, direct(pg), PLACEHOLDER, tmp_path)
    check_wants(PLACEHOLDER, want)
    inst = start(pgcoro_factory, pg, pool_size=1)  # a's server is b's
    assert run(driver, inst, PLACEHOLDER, tmp_path) == want
