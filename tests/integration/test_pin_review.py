"""Review of step 11's transparent pinning (branch s27-pin, e2d3d99): each test is one
finding or one checked path. The tests under a FINDING comment fail on s27-pin (14); the
others pass (8) and pin down what was checked: the refusal rewrite outside a read
callback, on a TLS client and at the 64 KiB boundary, a Parse without its text's NUL, and
a client leaving, its server closing, or its next query arriving while the server is asked
what the session holds (that question made slow by the client's own operators)."""

import time

import psycopg2
import pytest

from conftest import (APP_PASS, APP_USER, SYNC, Wire, bind, execute, parse,
                      recreate_database, tls_settings, wait_until)
from test_takeover import reboot

pytestmark = pytest.mark.pooler_only

DB = "pinrev"
SLOW_PROBE_S = 3


@pytest.fixture(scope="module")
def pinrev(pg):
    # hijack.<> (text, text): slow; the question's "current_setting('role') <> 'none'"
    # resolved to it when the client's search_path put hijack before pg_catalog (the
    # review's finding; the question now names pg_catalog's operators)
    recreate_database(pg, DB, setup_sql=f"""
        CREATE SCHEMA hijack AUTHORIZATION app;
        CREATE FUNCTION hijack.slow_ne(text, text) RETURNS bool LANGUAGE sql AS
          $$ SELECT pg_catalog.pg_sleep({SLOW_PROBE_S}) IS NOT NULL
                    AND pg_catalog.textne($1, $2) $$;
        CREATE OPERATOR hijack.<> (LEFTARG = text, RIGHTARG = text,
                                   FUNCTION = hijack.slow_ne);
        CREATE SCHEMA liar AUTHORIZATION app;
        CREATE FUNCTION liar.eq(text, text) RETURNS bool LANGUAGE sql AS
          $$ SELECT CASE WHEN $2 OPERATOR(pg_catalog.=) 'advisory' THEN false
                         ELSE pg_catalog.texteq($1, $2) END $$;
        CREATE OPERATOR liar.= (LEFTARG = text, RIGHTARG = text, FUNCTION = liar.eq);
    """)
    yield DB
    pg.psql_super(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE);")


def start(pgcoro_factory, pg, pool_size=1, mode=None, settings=None):
    extra = f" pin_session_state={mode}" if mode else ""
    s = {"pool_mode": "transaction", "admin_users": APP_USER}
    s.update(settings or {})
    return pgcoro_factory(settings=s, databases={
        DB: f"host=127.0.0.1 port={pg.port} dbname={DB} pool_size={pool_size}{extra}"})


def connect(inst):
    c = psycopg2.connect(host="127.0.0.1", port=inst.port, dbname=DB, user=APP_USER,
                         password=APP_PASS, connect_timeout=10)
    c.autocommit = True
    return c


def one(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0] if cur.description else None


def pool_row(inst):
    c = psycopg2.connect(host="127.0.0.1", port=inst.port, dbname="pgcoro", user=APP_USER,
                         password=APP_PASS, connect_timeout=10)
    c.autocommit = True
    try:
        with c.cursor() as cur:
            cur.execute("SHOW POOLS")
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall() if r[0] == DB][0]
    finally:
        c.close()


def wire(inst):
    w = Wire.to(inst)
    w.login(database=DB)
    return w


def until_ready(w):
    """Reads W's answers up to a ReadyForQuery: the messages (type, payload) before it."""
    out = []
    while True:
        t, p = w.read_msg()
        if t == "Z":
            return out
        out.append((t, p))


def errors(msgs):
    return [dict((chr(f[0]), f[1:].decode()) for f in p.split(b"\0") if f)
            for t, p in msgs if t == "E"]


def advisory_locks(pg, key):
    """Session advisory locks on KEY held by any backend (asked as the superuser)."""
    conn = pg.super_connect(db=DB)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND objid = %s", (key,))
            return cur.fetchone()[0]
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------
# FINDING (High): the text is scanned when it is parsed, the state is made when it is
# executed; with a named (or unnamed) statement run in a later transaction -- asyncpg's
# Parse/Describe/Sync then Bind/Execute/Sync, every driver's statement cache -- nothing
# is asked at that release point.

def test_advisory_lock_of_a_statement_executed_later_pins(pg, pinrev, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1)
    a = wire(inst)
    a.send(parse("lk", "SELECT pg_advisory_lock(4711)") + SYNC)
    assert not errors(until_ready(a))
    a.send(bind("lk") + execute() + SYNC)  # a later transaction
    assert not errors(until_ready(a))
    assert advisory_locks(pg, 4711) == 1
    try:
        wait_until(lambda: pool_row(inst)["cl_pinned"] == 1, "a pinned by its lock",
                   timeout=5)
    finally:
        a.terminate()
    # the one server goes back to the pool: its session's lock must have gone with a
    wait_until(lambda: advisory_locks(pg, 4711) == 0,
               "a's session advisory lock left on a pooled server", timeout=5)


def test_set_of_a_statement_executed_later_is_kept(pg, pinrev, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1)
    a = wire(inst)
    try:
        a.send(parse("st", "SET statement_timeout = '4321ms'") + SYNC)
        assert not errors(until_ready(a))
        a.send(bind("st") + execute() + SYNC)
        assert not errors(until_ready(a))
        # the server asked after the Parse holds "another client's settings" for pgcoro:
        # a RESET ALL before a's next transaction takes a's own SET away
        assert a.query("SHOW statement_timeout") == [["4321ms"]]
    finally:
        a.terminate()


def back_idle(inst):
    wait_until(lambda: pool_row(inst)["sv_idle"] == 1, "the one server back in the pool")


def test_set_of_a_statement_executed_later_stays_its_own(pg, pinrev, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1)
    a = wire(inst)
    try:
        a.send(parse("st", "SET statement_timeout = '4321ms'") + SYNC)
        assert not errors(until_ready(a))
        back_idle(inst)  # asked (a's Parse may set something), found nothing
        a.query("SELECT 1")  # RESET ALL first, then nothing of a's is known there
        back_idle(inst)
        a.send(bind("st") + execute() + SYNC)  # the SET, not looked at
        assert not errors(until_ready(a))
        back_idle(inst)
        b = connect(inst)  # the one server, a's SET on it
        try:
            assert one(b, "SHOW statement_timeout") == "0", "a's SET reached b's session"
        finally:
            b.close()
    finally:
        a.terminate()


# ---------------------------------------------------------------------------------------
# FINDING (Medium): the replayed settings go through set_config on whatever server the
# client gets; one that PostgreSQL refuses there (temp_buffers, once that session has used
# temporary tables) fails the parameter sync and the client is disconnected, although its
# SET succeeded in its own session.

def test_replayed_temp_buffers_does_not_disconnect_the_client(pg, pinrev, pgcoro_factory):
    # temp_buffers cannot be carried (another server may have used a temporary table): a
    # keeps its server instead, b works on the other one
    inst = start(pgcoro_factory, pg, pool_size=2)
    a, b = connect(inst), connect(inst)
    try:
        one(a, "SET temp_buffers = '16MB'")  # its session had no temporary table: fine
        wait_until(lambda: pool_row(inst)["cl_pinned"] == 1, "a pinned")
        b.autocommit = False  # another client's temporary table, gone at its commit
        with b.cursor() as cur:
            cur.execute("CREATE TEMP TABLE scratch (x int) ON COMMIT DROP")
            cur.execute("INSERT INTO scratch VALUES (1)")
        b.commit()
        assert one(a, "SHOW temp_buffers") == "16MB"
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------------------------------
# FINDING (Medium): the question counts the temporary schema's relations and functions
# only; a temporary domain or enum (pg_type alone) neither pins nor is reset, so the next
# client of the server finds it.

def test_temporary_domain_pins(pg, pinrev, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1)
    a = connect(inst)
    one(a, "CREATE DOMAIN pg_temp.d_pin AS int CHECK (VALUE > 0)")
    try:
        wait_until(lambda: pool_row(inst)["cl_pinned"] == 1, "a pinned by its domain",
                   timeout=5)
    finally:
        a.close()
    b = connect(inst)
    try:
        assert one(b, "SELECT count(*) FROM pg_type WHERE typnamespace = "
                      "pg_my_temp_schema()") == 0, "a's temporary domain reached b"
    finally:
        b.close()


# ---------------------------------------------------------------------------------------
# FINDING (Low): pin_session_state = error keeps a Parse's parameter types but replaces
# its text by a DO block; a parameter whose type the client left to the server (0, as
# libpq's PQexecParams and most drivers send) cannot be typed in a DO, so the client gets
# 42P18 "could not determine data type of parameter $1" instead of the 0A000 refusal.

@pytest.mark.xfail(strict=True, reason="known limit: the refusal is a DO block, which takes no parameters; an untyped parameter fails first with 42P18 (README)")
def test_error_mode_refuses_a_parameterised_statement_with_0A000(pg, pinrev, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1, mode="error")
    a = wire(inst)
    try:
        a.send(parse("", "SELECT pg_advisory_lock($1)", types=(0,)) + bind("", ("5",))
               + execute() + SYNC)
        errs = errors(until_ready(a))
        assert [e["C"] for e in errs] == ["0A000"], errs
    finally:
        a.terminate()


# ---------------------------------------------------------------------------------------
# FINDING (Low, cost): set_config(..., true) is transaction-local, like SET LOCAL, but
# counts as a setting: every such transaction (PostgREST's and RLS code's per-request
# claims) costs one more round trip to ask the server, which then finds nothing.

@pytest.mark.xfail(strict=True, reason="known cost: set_config(..., true) is not told from set_config(..., false) by the tokenizer; one question per such transaction (README)")
def test_local_set_config_is_not_asked_about(pg, pinrev, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1, settings={"log_level": "debug"})
    a = connect(inst)
    try:
        for i in range(5):
            one(a, f"SELECT set_config('request.claims', '{i}', true)")
    finally:
        a.close()
    inst.stop()
    asked = open(inst.logpath).read().count("housekeeping: session state check")
    assert asked == 0, f"{asked} questions for 5 transaction-local set_config calls"


# ---------------------------------------------------------------------------------------
# FINDING (Medium): custom settings are asked for by the names taken from the statements,
# at most CUSTOM_MAX (16) of them and each shorter than CUSTOM_NAME (64): others are
# dropped without a word (add_custom), neither carried nor pinned, although the README
# promises that settings past the bounds pin.

def test_seventeen_custom_settings_are_all_kept(pg, pinrev, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1)
    a = connect(inst)
    try:
        names = [f"app.s{i:02d}" for i in range(17)]
        one(a, "SELECT " + ", ".join(f"set_config('{n}', 'v', false)" for n in names))
        # more names than are asked for one by one: a keeps its server (pinned)
        wait_until(lambda: pool_row(inst)["cl_pinned"] == 1, "a pinned")
        got = one(a, "SELECT string_agg(coalesce(current_setting(n, true), '-'), ',') FROM "
                     "unnest(%s::text[]) n" % ("ARRAY[" + ",".join(f"'{n}'" for n in names)
                                               + "]"))
        assert got == ",".join(["v"] * 17), got
    finally:
        a.close()


def test_long_custom_setting_name_is_kept(pg, pinrev, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1)
    a = connect(inst)
    name = "myapplication." + "tenant_context_" * 4 + "id"  # 76 bytes
    try:
        one(a, f"SELECT set_config('{name}', '42', false)")
        # a name longer than pgcoro asks for: a keeps its server (pinned)
        wait_until(lambda: pool_row(inst)["cl_pinned"] == 1, "a pinned")
        assert one(a, f"SELECT current_setting('{name}', true)") == "42"
    finally:
        a.close()


def test_custom_set_after_another_statement_is_kept(pg, pinrev, pgcoro_factory):
    """note_custom reads "SET a.b" at the start of the whole text only."""
    inst = start(pgcoro_factory, pg, pool_size=1)
    a = connect(inst)
    try:
        one(a, "SELECT 1; SET app.tenant = '7'")
        back_idle(inst)
        assert one(a, "SELECT current_setting('app.tenant', true)") == "7"
    finally:
        a.close()


# ---------------------------------------------------------------------------------------
# FINDING (Low): LOAD pins on the word alone (pin_release_slow): a LOAD that failed (no
# such library, not allowed) pins its client until it leaves.

@pytest.mark.xfail(strict=True, reason="known limit: LOAD pins on its word, whether it succeeded or not (README)")
def test_failed_load_does_not_pin(pg, pinrev, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1)
    a = connect(inst)
    try:
        with pytest.raises(psycopg2.Error):
            one(a, "LOAD 'no_such_library_here'")
        one(a, "SELECT 1")
        assert pool_row(inst)["cl_pinned"] == 0
    finally:
        a.close()


# ---------------------------------------------------------------------------------------
# checked, no finding: the refusal rewrite outside the client's read callback (the client
# waited for a server, its input kept in its own buffer) with a query after it in the same
# packet; a Parse without a NUL after its text; the 64 KiB boundary.

def test_refusal_of_a_waiting_client_keeps_what_follows(pg, pinrev, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1, mode="error")
    holder = connect(inst)
    holder.autocommit = False
    one(holder, "SELECT 1")  # holds the one server until its commit
    a = wire(inst)
    try:
        a.send(Wire.msg("Q", b"PREPARE p AS SELECT 1\0") + Wire.msg("Q", b"SELECT 42\0"))
        time.sleep(0.3)  # a waits for the server with both queries unread
        holder.commit()
        first = until_ready(a)
        assert [e["C"] for e in errors(first)] == ["0A000"]
        second = until_ready(a)
        rows = [p for t, p in second if t == "D"]
        assert len(rows) == 1 and rows[0].endswith(b"42"), second
        assert a.query("SELECT count(*) FROM pg_prepared_statements") == [["0"]]
    finally:
        a.terminate()
        holder.close()


def test_error_mode_parse_without_text_nul_is_left_to_the_server(pg, pinrev, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1, mode="error")
    a = wire(inst)
    try:
        a.send(Wire.msg("P", b"\0PREPARE p AS SELECT 1") + SYNC)
        errs = errors(until_ready(a))
        assert len(errs) == 1 and errs[0]["C"] == "08P01", errs
        assert a.query("SELECT count(*) FROM pg_prepared_statements") == [["0"]]
    finally:
        a.terminate()


@pytest.mark.parametrize("size", [64 * 1024 - 1, 64 * 1024])
def test_error_mode_at_the_64k_boundary(pg, pinrev, pgcoro_factory, size):
    """A Query of SIZE bytes (type byte included) ending with a PREPARE, sent in two pieces:
    up to 64 KiB it is read whole and refused."""
    inst = start(pgcoro_factory, pg, pool_size=1, mode="error")
    a = wire(inst)
    try:
        tail = b"; PREPARE p AS SELECT 1\0"
        head = b"SELECT 1 /*"
        pad = size - 5 - len(head) - len(tail) - 2
        text = head + b"x" * pad + b"*/" + tail
        msg = Wire.msg("Q", text)
        assert len(msg) == size
        a.send(msg[:1000])
        time.sleep(0.2)
        a.send(msg[1000:])
        errs = errors(until_ready(a))
        assert [e["C"] for e in errs] == ["0A000"], errs
        assert a.query("SELECT count(*) FROM pg_prepared_statements") == [["0"]]
    finally:
        a.terminate()


def test_error_mode_refusal_on_a_tls_client(pg, pinrev, pgcoro_factory, tls_certs):
    """A TLS client's large Query (read in several SSL reads, kept in its own buffer)
    rewritten in place, directly and after waiting for the server."""
    inst = start(pgcoro_factory, pg, pool_size=1, mode="error",
                 settings=tls_settings(tls_certs, "require"))
    conn = psycopg2.connect(host="127.0.0.1", port=inst.port, dbname=DB, user=APP_USER,
                            password=APP_PASS, connect_timeout=10, sslmode="require")
    conn.autocommit = True
    holder = None
    try:
        sql = "SELECT 1 /*" + "x" * 60000 + "*/; PREPARE p AS SELECT 1"
        with pytest.raises(psycopg2.Error) as e:
            one(conn, sql)
        assert e.value.pgcode == "0A000"
        assert one(conn, "SELECT 42") == 42
        holder = psycopg2.connect(host="127.0.0.1", port=inst.port, dbname=DB, user=APP_USER,
                                  password=APP_PASS, connect_timeout=10, sslmode="require")
        one(holder, "SELECT 1")  # in a transaction: holds the one server
        from conftest import Background
        bg = Background(lambda: one(conn, sql))
        wait_until(lambda: pool_row(inst)["cl_waiting"] == 1, "conn waits for the server")
        holder.commit()
        bg.join(60)
        assert isinstance(bg.exc, psycopg2.Error) and bg.exc.pgcode == "0A000", bg.exc
        assert one(conn, "SELECT count(*) FROM pg_prepared_statements") == 0
    finally:
        conn.close()
        if holder:
            holder.close()


# ---------------------------------------------------------------------------------------
# checked, no finding: while the server is asked (made slow by a superuser holding an
# exclusive lock on this database's pg_proc, which the question counts temporary
# functions in; the review first did it through the client's search_path, which the
# question no longer follows)

SLOW = "SELECT pg_advisory_lock(%d)"


class CatalogLock:
    """A superuser session of DB holding ACCESS EXCLUSIVE on pg_catalog.pg_proc until
    release(): pgcoro's question waits on it. Its own connection asks pg_stat_activity."""

    def __init__(self, pg):
        self.conn = pg.super_connect(db=DB)
        self.conn.autocommit = False
        with self.conn.cursor() as cur:
            cur.execute("LOCK TABLE pg_catalog.pg_proc IN ACCESS EXCLUSIVE MODE")

    def asking_pid(self):
        """The backend running pgcoro's question (waiting for the lock), or None."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE state = 'active' AND "
                        "query LIKE 'SELECT ''s''::pg_catalog.text, name%'")
            r = cur.fetchone()
            return r[0] if r else None

    def terminate(self, pid):
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))

    def release(self):
        if self.conn:
            self.conn.rollback()
            self.conn.close()
            self.conn = None


def asked_client(inst):
    """A logged-in raw client whose server is connected (a backend starting in DB would
    wait for the catalog lock too)."""
    a = wire(inst)
    # the lock functions looked up (in the backend's caches) before pg_proc is locked, and
    # the question they bring asked once
    a.query("SELECT pg_advisory_lock(0), pg_advisory_unlock(0)")
    assert a.query("SELECT 1") == [["1"]]
    return a


def test_client_leaves_while_its_server_is_asked(pg, pinrev, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1)
    a = asked_client(inst)
    lock = CatalogLock(pg)
    try:
        a.send(Wire.msg("Q", (SLOW % 901).encode() + b"\0"))
        until_ready(a)
        wait_until(lock.asking_pid, "the question in flight")
        a.close()
    finally:
        lock.release()
    wait_until(lambda: advisory_locks(pg, 901) == 0, "the lock reset after a left",
               timeout=SLOW_PROBE_S + 15)
    wait_until(lambda: pool_row(inst)["cl_pinned"] == 0, "cl_pinned back to 0")
    b = connect(inst)
    try:
        assert one(b, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
    finally:
        b.close()
    assert inst.alive()


def test_pipelined_query_during_the_question(pg, pinrev, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1)
    a = asked_client(inst)
    lock = CatalogLock(pg)
    try:
        a.send(Wire.msg("Q", (SLOW % 902).encode() + b"\0"))
        until_ready(a)
        wait_until(lock.asking_pid, "the question in flight")
        a.send(Wire.msg("Q", b"SELECT 42\0"))  # sent while the server is asked
        time.sleep(0.3)
        lock.release()
        got = until_ready(a)
        assert [p for t, p in got if t == "D"], got
        wait_until(lambda: pool_row(inst)["cl_pinned"] == 1, "a pinned by its lock")
    finally:
        lock.release()
        a.terminate()
    wait_until(lambda: advisory_locks(pg, 902) == 0, "the lock reset after a left",
               timeout=SLOW_PROBE_S * 3 + 15)


def test_server_closes_during_the_question(pg, pinrev, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1)
    a = asked_client(inst)
    lock = CatalogLock(pg)
    try:
        a.send(Wire.msg("Q", (SLOW % 903).encode() + b"\0"))
        until_ready(a)
        pid = wait_until(lock.asking_pid, "the question in flight")
        lock.terminate(pid)
        lock.release()
        with pytest.raises(Exception):
            a.query("SELECT 1")
        wait_until(lambda: pool_row(inst)["cl_pinned"] == 0, "cl_pinned back to 0")
        assert inst.alive()
    finally:
        lock.release()
        a.close()


# ---------------------------------------------------------------------------------------
# FINDING (Low): the question's operators (=, <>, LIKE, +) are not schema-qualified and
# resolve through the client's own search_path: an operator of the client's schema
# answers for pg_catalog's (the slow tests above use that), so the client decides what
# the server "holds" -- here no advisory lock: unpinned, its lock goes to the pool.

def test_question_is_not_answered_by_the_clients_operators(pg, pinrev, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=1)
    a = connect(inst)
    try:
        one(a, "SET search_path = liar, pg_catalog, public")
        one(a, "SELECT pg_advisory_lock(905)")
        one(a, "SELECT 1")  # after the question
        assert pool_row(inst)["cl_pinned"] == 1, "a holds a session lock, unpinned"
    finally:
        a.close()
        wait_until(lambda: pool_row(inst)["sv_idle"] == 1, "server back")


# ---------------------------------------------------------------------------------------
# FINDING (Medium, operational, fixed): client_at_rest refused a client that carries
# settings, so an online restart (-R) closed every transaction-mode client that ever ran a
# SET (ORMs SET search_path, client_min_messages... at connect). Its settings now move as
# startup settings. (A pinned client holds its server: the takeover waits suspend_timeout
# for it, then it is closed -- the README says so.)

def test_online_restart_moves_a_client_with_settings(pg, pinrev, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=2, settings={"suspend_timeout": 5})
    plain, setter = connect(inst), connect(inst)
    try:
        one(plain, "SELECT 1")
        one(setter, "SET client_min_messages = warning")
        wait_until(lambda: pool_row(inst)["sv_active"] == 0, "both released")
        reboot(inst)
        assert one(plain, "SELECT 1") == 1  # moved
        assert one(setter, "SHOW client_min_messages") == "warning"
        # still its own: another client of the new process does not see it
        other = connect(inst)
        try:
            assert one(other, "SHOW client_min_messages") == "notice"
        finally:
            other.close()
    finally:
        plain.close()
        setter.close()


# ---------------------------------------------------------------------------------------
# FINDING (Low): after a RELOAD to pin_session_state = off a pinned client is never looked
# at again (relay.c: pin_on), so it keeps its server until it leaves, its state gone or not.

def test_reload_to_off_does_not_keep_a_client_pinned_for_ever(pg, pinrev, pgcoro_factory):
    inst = start(pgcoro_factory, pg, pool_size=2)
    a = connect(inst)
    try:
        one(a, "PREPARE p AS SELECT 1")
        wait_until(lambda: pool_row(inst)["cl_pinned"] == 1, "a pinned")
        text = open(inst.config_path).read()
        assert "pool_size=2" in text
        with open(inst.config_path, "w") as f:
            f.write(text.replace("pool_size=2", "pool_size=2 pin_session_state=off"))
        c = psycopg2.connect(host="127.0.0.1", port=inst.port, dbname="pgcoro",
                             user=APP_USER, password=APP_PASS, connect_timeout=10)
        c.autocommit = True
        c.cursor().execute("RELOAD")
        c.close()
        one(a, "DEALLOCATE p")
        one(a, "SELECT 1")
        wait_until(lambda: pool_row(inst)["cl_pinned"] == 0, "a unpinned", timeout=5)
    finally:
        a.close()
