"""Timeouts: client_login_timeout, query_wait_timeout, client_idle_timeout,
idle_transaction_timeout, transaction_timeout (global and per user), query_timeout (as
PgBouncer's: the client and its server are closed, the query cancelled; it bounds the
wait for a server too), server_idle_timeout, server_lifetime,
server_check_query/server_check_delay (observable check, failing check closes the server
and the client gets another), and server_login_retry (clients waiting for a server wait
through failed connects; one coming during the back-off fails at once)."""

import re
import signal
import socket
import threading
import time

import pytest

from conftest import (APP_PASS, APP_USER, MD5_PASS, MD5_USER, ConnectionClosed, PgError,
                      Wire, client_backends, pg_rows, recreate_database, wait_until,
                      wire_exec)

pytestmark = pytest.mark.pooler_only

DB = "tmodb"
IDLE_IN_XACT = ("idle in transaction", "idle in transaction (aborted)")
CHECK_QUERY = "select 1 /*pgcoro-check*/"
# fails (division by zero) on a backend whose pid is listed in check_bad
FAILING_CHECK = ("select 1 / (select count(*) = 0 from public.check_bad "
                 "where pid = pg_backend_pid())::int /*pgcoro-check*/")


@pytest.fixture(scope="module")
def tmodb(pg):
    recreate_database(pg, DB, setup_sql="""
        CREATE TABLE t_lock (a int); ALTER TABLE t_lock OWNER TO app;
        CREATE TABLE check_bad (pid int); ALTER TABLE check_bad OWNER TO app;
    """)
    pg.psql_super(f"ALTER DATABASE {DB} SET log_statement = 'all';")
    yield DB
    pg.psql_super(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE);")


def start(pgcoro_factory, pg, pool_size=None, pool_mode="session", user_settings=None,
          **settings):
    conninfo = f"host=127.0.0.1 port={pg.port} dbname={DB} pool_mode={pool_mode}"
    if pool_size:
        conninfo += f" pool_size={pool_size}"
    return pgcoro_factory(settings=settings, databases={DB: conninfo},
                          user_settings=user_settings)


def wire(inst, timeout=30.0, user=APP_USER, password=APP_PASS):
    w = Wire.to(inst, timeout=timeout)
    w.login(user, password, DB)
    return w


def one(w, sql):
    rows, errs, ready = wire_exec(w, sql)
    assert not errs and ready is not None, (sql, errs, ready)
    return rows[0][0] if rows else None


def expect_fatal(w, sqlstate, timeout=20.0):
    """Reads (up to TIMEOUT, no query sent) an ErrorResponse with SQLSTATE, then the close."""
    old = w.sock.gettimeout()
    w.sock.settimeout(timeout)
    try:
        err = w.expect_error()
    except socket.timeout:
        raise AssertionError(f"no {sqlstate} error within {timeout} s")
    except ConnectionClosed:
        raise AssertionError(f"closed without the {sqlstate} error")
    finally:
        w.sock.settimeout(old)
    assert err.get("C") == sqlstate, err
    assert w.at_eof(timeout=20), f"connection still open after the {sqlstate} error"
    return err


def backend_pids(pg):
    return {b[0] for b in client_backends(pg, DB)}


def no_idle_in_xact(pg):
    return not [b for b in client_backends(pg, DB) if b[2] in IDLE_IN_XACT]


# ---------------------------------------------------------------------------------------
# client_login_timeout


def test_client_login_timeout(pgcoro_factory, pg, tmodb):
    inst = start(pgcoro_factory, pg, client_login_timeout=1)
    # stops answering after the startup packet (the SCRAM exchange never goes on)
    stuck = Wire.to(inst, timeout=20)
    stuck.send_startup(APP_USER, DB)
    t, p = stuck.read_msg()
    assert t == "R", t
    silent = Wire.to(inst, timeout=20)      # never sends a byte
    try:
        for i in range(3):                  # others log in meanwhile
            with wire(inst) as w:
                assert one(w, f"select {i}") == str(i)
                w.terminate()
        err = expect_fatal(stuck, "08006")
        assert "client_login_timeout" in err["M"], err
        try:
            t, p = silent.read_msg()
            assert t == "E", f"silent client got {t!r}"
            assert silent.at_eof(timeout=20)
        except ConnectionClosed:
            pass
        except socket.timeout:
            raise AssertionError("silent client still open 20 s after client_login_timeout=1")
    finally:
        stuck.close()
        silent.close()
    wait_until(lambda: inst.log_text().count("client_login_timeout") >= 2,
               "two client_login_timeout log lines")
    inst.assert_serving(db=DB)


# ---------------------------------------------------------------------------------------
# query_wait_timeout


def test_query_wait_timeout(pgcoro_factory, pg, tmodb):
    inst = start(pgcoro_factory, pg, pool_size=1, pool_mode="transaction",
                 query_wait_timeout=1)
    waiter = wire(inst)            # logged in while the server is free
    holder = wire(inst)
    try:
        assert wire_exec(holder, "begin; select 1")[2] == "T"   # holds the only server
        waiter.send(Wire.msg("Q", b"select 'never'\0"))
        err = expect_fatal(waiter, "57014")
        assert "query_wait_timeout" in err["M"], err
        assert "no server connection became available" in err["M"], err
        # the holder is unaffected; once it commits, others are served again
        assert one(holder, "select 2") == "2"
        assert wire_exec(holder, "commit")[2] == "I"
        with wire(inst) as w:
            assert one(w, "select 3") == "3"
            w.terminate()
        holder.terminate()
    finally:
        waiter.close()
        holder.close()
    assert "query_wait_timeout" in inst.log_text()
    inst.assert_serving(db=DB)


# ---------------------------------------------------------------------------------------
# client_idle_timeout


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_client_idle_timeout(pgcoro_factory, pg, tmodb, mode):
    inst = start(pgcoro_factory, pg, pool_size=2, pool_mode=mode, client_idle_timeout=2)
    idle = wire(inst)
    busy = wire(inst)
    try:
        assert one(idle, "select 1") == "1"
        # a client that keeps sending is never idle long enough
        deadline = time.monotonic() + 4
        n = 0
        while time.monotonic() < deadline:
            n += 1
            assert one(busy, f"select {n}") == str(n)
            time.sleep(0.1)
        err = expect_fatal(idle, "57P05")
        assert "client_idle_timeout" in err["M"], err
        assert one(busy, "select 'busy still here'") == "busy still here"
        busy.terminate()
    finally:
        idle.close()
        busy.close()
    wait_until(lambda: no_idle_in_xact(pg), "no backend idle in transaction")
    inst.assert_serving(db=DB)


# ---------------------------------------------------------------------------------------
# idle_transaction_timeout


def t_lock_locks(pg):
    return pg_rows(pg, "select l.pid, l.mode from pg_locks l join pg_class c on "
                       "c.oid = l.relation where c.relname = 't_lock'", db=DB)


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_idle_transaction_timeout(pgcoro_factory, pg, tmodb, mode):
    pg_rows(pg, "truncate t_lock", db=DB)
    inst = start(pgcoro_factory, pg, pool_size=1, pool_mode=mode,
                 idle_transaction_timeout=1)
    w = wire(inst)
    try:
        # not in a transaction: idle longer than the timeout is fine
        pid = one(w, "select pg_backend_pid()")
        time.sleep(1.5)
        assert one(w, "select pg_backend_pid()") == pid
        rows, errs, ready = wire_exec(w, "begin; lock table t_lock in access exclusive mode; "
                                         "insert into t_lock values (1)")
        assert not errs and ready == "T", errs
        assert t_lock_locks(pg), "the lock is not held"
        err = expect_fatal(w, "25P03")
        assert "idle_transaction_timeout" in err["M"], err
    finally:
        w.close()
    # rolled back, the lock released, the server kept
    wait_until(lambda: no_idle_in_xact(pg) and not t_lock_locks(pg),
               f"transaction rolled back and lock released: {client_backends(pg, DB)} "
               f"{t_lock_locks(pg)}")
    assert pg_rows(pg, "select count(*) from t_lock", db=DB) == [(0,)]
    with wire(inst) as w2:
        assert one(w2, "select pg_backend_pid()") == pid, "the server was not reused"
        rows, errs, ready = wire_exec(w2, "begin; lock table t_lock in access exclusive mode; "
                                          "commit")
        assert not errs and ready == "I", errs
        w2.terminate()
    assert "25P03" in inst.log_text()
    inst.assert_serving(db=DB)


# ---------------------------------------------------------------------------------------
# query_timeout (PgBouncer's semantics: the client and its server are closed)


def expect_closed_by(rows_errs_ready, sqlstate, words, key):
    """The answer (wire_exec's) to a query a timeout ended: one FATAL SQLSTATE whose
    message has PgBouncer's WORDS and pgcoro's KEY, then the close."""
    rows, errs, ready = rows_errs_ready
    assert ready is None, f"the connection stayed open: {errs} {ready}"
    assert [(e.get("C"), e.get("S")) for e in errs] == [(sqlstate, "FATAL")], errs
    assert words in errs[0]["M"] and key in errs[0]["M"], errs
    return errs[0]


def test_query_timeout_session(pgcoro_factory, pg, tmodb):
    """A query running longer than query_timeout: its client gets FATAL 57014 "query
    timeout" and is closed, and its server is closed too (PgBouncer's behaviour, which
    alerts look for); the query is cancelled, so the backend does not run on. Queries
    under the limit are untouched, also several in one transaction longer than it."""
    inst = start(pgcoro_factory, pg, pool_size=1, query_timeout=1)
    with wire(inst) as w:
        pid = int(one(w, "select pg_backend_pid()"))
        assert wire_exec(w, "begin")[2] == "T"
        for i in range(3):
            assert one(w, f"select {i} from pg_sleep(0.4)") == str(i)
        assert wire_exec(w, "commit")[2] == "I"
        expect_closed_by(wire_exec(w, "select pg_sleep(600)"), "57014", "query timeout",
                         "query_timeout = 1s")
        assert w.at_eof(timeout=20)
    # cancelled and closed: gone long before pg_sleep(600) would have ended
    wait_until(lambda: pid not in backend_pids(pg), f"backend {pid} (pg_sleep(600)) gone")
    wait_until(lambda: "closing because: query timeout" in inst.log_text(), "the server's close logged")
    assert "cancel request sent" in inst.log_text()
    with wire(inst) as w:
        assert int(one(w, "select pg_backend_pid()")) != pid
        w.terminate()
    inst.assert_serving(db=DB)


def test_query_timeout_transaction_mode(pgcoro_factory, pg, tmodb):
    """Transaction mode: the client over query_timeout is closed with the server it held;
    the pool's other clients go on, on a new server. Idle inside a transaction longer
    than query_timeout is no query running: not ended (PgBouncer's
    test_query_timeout_when_no_active_query)."""
    inst = start(pgcoro_factory, pg, pool_size=1, pool_mode="transaction", query_timeout=1)
    a = wire(inst)
    b = wire(inst)
    try:
        assert wire_exec(b, "begin; select 1")[2] == "T"
        time.sleep(1.5)
        assert one(b, "select 2") == "2"
        assert wire_exec(b, "commit")[2] == "I"
        pid = int(one(a, "select pg_backend_pid()"))
        expect_closed_by(wire_exec(a, "select pg_sleep(600)"), "57014", "query timeout",
                         "query_timeout = 1s")
        assert a.at_eof(timeout=20)
        # b, logged in all along, is served by another server
        assert int(one(b, "select pg_backend_pid()")) != pid
        b.terminate()
    finally:
        a.close()
        b.close()
    wait_until(lambda: pid not in backend_pids(pg), f"backend {pid} (pg_sleep(600)) gone")
    inst.assert_serving(db=DB)


def test_query_timeout_bounds_the_wait(pgcoro_factory, pg, tmodb):
    """query_timeout shorter than query_wait_timeout bounds a client's wait for a server,
    as PgBouncer's: 57014 naming query_timeout. The client holding the server, idle in
    its transaction, is not ended."""
    inst = start(pgcoro_factory, pg, pool_size=1, pool_mode="transaction", query_timeout=1,
                 query_wait_timeout=60)
    holder = wire(inst)
    waiter = wire(inst)
    try:
        assert wire_exec(holder, "begin; select 1")[2] == "T"   # holds the only server
        waiter.send(Wire.msg("Q", b"select 'never'\0"))
        err = expect_fatal(waiter, "57014")
        assert "query_timeout (1s): no server connection became available" in err["M"], err
        assert one(holder, "select 2") == "2"
        assert wire_exec(holder, "commit")[2] == "I"
        holder.terminate()
    finally:
        holder.close()
        waiter.close()
    inst.assert_serving(db=DB)


# ---------------------------------------------------------------------------------------
# transaction_timeout


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_transaction_timeout(pgcoro_factory, pg, tmodb, mode):
    """A transaction open longer than transaction_timeout: FATAL 25P04 "transaction
    timeout", the client closed. Idle in it, the transaction is rolled back and the server
    kept; with a query running, the query is cancelled and the server closed. Outside a
    transaction nothing counts: autocommit queries one after another, and idling."""
    pg_rows(pg, "truncate t_lock", db=DB)
    inst = start(pgcoro_factory, pg, pool_size=1, pool_mode=mode, transaction_timeout=1)
    w = wire(inst)
    try:
        pid = one(w, "select pg_backend_pid()")
        for i in range(3):
            assert one(w, f"select {i} from pg_sleep(0.4)") == str(i)
        time.sleep(1.5)
        rows, errs, ready = wire_exec(w, "begin; insert into t_lock values (1)")
        assert not errs and ready == "T", errs
        err = expect_fatal(w, "25P04")
        assert "transaction timeout" in err["M"] and "transaction_timeout = 1s" in err["M"], err
    finally:
        w.close()
    wait_until(lambda: no_idle_in_xact(pg) and not t_lock_locks(pg),
               f"transaction rolled back: {client_backends(pg, DB)}")
    assert pg_rows(pg, "select count(*) from t_lock", db=DB) == [(0,)]
    with wire(inst) as w:
        assert one(w, "select pg_backend_pid()") == pid, "the server was not kept"
        pid = int(pid)
        expect_closed_by(wire_exec(w, "begin; select pg_sleep(600)"), "25P04",
                         "transaction timeout", "transaction_timeout = 1s")
    wait_until(lambda: pid not in backend_pids(pg), f"backend {pid} (pg_sleep(600)) gone")
    assert "closing because: transaction timeout" in inst.log_text()
    inst.assert_serving(db=DB)


@pytest.mark.parametrize("settings,users", [
    ({}, {APP_USER: "transaction_timeout=1"}),                          # the user's own
    ({"transaction_timeout": 60}, {APP_USER: "transaction_timeout=1"}),  # over the global
    ({"transaction_timeout": 1}, {MD5_USER: "transaction_timeout=0"}),   # 0: none for him
], ids=["user", "user-over-global", "user-zero-over-global"])
def test_transaction_timeout_per_user(pgcoro_factory, pg, tmodb, settings, users):
    """transaction_timeout in [users] wins over the global one for that user's clients:
    app's transactions are limited to 1 s, md5user's are not (PgBouncer's
    test_transaction_timeout_user and _user_overide_global)."""
    inst = start(pgcoro_factory, pg, pool_size=2, pool_mode="transaction",
                 user_settings=users, **settings)
    a = wire(inst)
    m = wire(inst, user=MD5_USER, password=MD5_PASS)
    try:
        assert wire_exec(m, "begin; select 1")[2] == "T"
        assert wire_exec(a, "begin; select 1")[2] == "T"
        err = expect_fatal(a, "25P04")
        assert "transaction timeout" in err["M"], err
        time.sleep(1)              # md5user's transaction, as old as app's was and older
        assert one(m, "select 'still open'") == "still open"
        assert wire_exec(m, "commit")[2] == "I"
        m.terminate()
    finally:
        a.close()
        m.close()
    inst.assert_serving(db=DB)


# ---------------------------------------------------------------------------------------
# server_idle_timeout, server_lifetime


def test_server_idle_timeout(pgcoro_factory, pg, tmodb):
    wait_until(lambda: not backend_pids(pg), "no backend left on the database")
    inst = start(pgcoro_factory, pg, server_idle_timeout=1)
    with wire(inst) as w:
        pid = int(one(w, "select pg_backend_pid()"))
        w.terminate()
    wait_until(lambda: pid not in backend_pids(pg),
               f"backend {pid} closed after server_idle_timeout=1")
    assert "server_idle_timeout" in inst.log_text()
    with wire(inst) as w:
        assert int(one(w, "select pg_backend_pid()")) != pid
        w.terminate()
    inst.assert_serving(db=DB)


def test_server_lifetime(pgcoro_factory, pg, tmodb):
    inst = start(pgcoro_factory, pg, server_lifetime=1, server_idle_timeout=0)
    with wire(inst) as w:
        pid = int(one(w, "select pg_backend_pid()"))
        time.sleep(1.5)               # older than server_lifetime, but in use: kept
        assert int(one(w, "select pg_backend_pid()")) == pid
        w.terminate()
    wait_until(lambda: pid not in backend_pids(pg),
               f"backend {pid} closed once idle after server_lifetime=1")
    wait_until(lambda: "closing because: server lifetime over (server_lifetime = 1s)" in
               inst.log_text(), "server_lifetime logged")
    with wire(inst) as w:
        assert int(one(w, "select pg_backend_pid()")) != pid
        w.terminate()
    inst.assert_serving(db=DB)


@pytest.mark.parametrize("where", ["global", "database"])
def test_server_lifetime_zero_uses_a_server_once(pgcoro_factory, pg, tmodb, where):
    """server_lifetime = 0 is PgBouncer's "use a connection once": a server is closed when
    its client releases it (here each transaction, in transaction mode), so no two
    transactions share a backend; an idle one made for a waiting client still serves it."""
    conninfo = f"host=127.0.0.1 port={pg.port} dbname={DB} pool_mode=transaction"
    settings = {"server_idle_timeout": 0}
    if where == "global":
        settings["server_lifetime"] = 0
    else:
        conninfo += " server_lifetime=0"
    inst = pgcoro_factory(settings=settings, databases={DB: conninfo})
    with wire(inst) as w:
        pids = [int(one(w, "select pg_backend_pid()")) for _ in range(3)]
        w.terminate()
    assert len(set(pids)) == 3, pids
    for pid in pids:
        wait_until(lambda: pid not in backend_pids(pg), f"backend {pid} closed after use")
    assert inst.log_text().count("server_lifetime = 0") >= 3, inst.log_tail(20)
    inst.assert_serving(db=DB)


# ---------------------------------------------------------------------------------------
# server_check_query / server_check_delay


def statements_logged(pg, pid):
    """The statements PostgreSQL logged (log_statement=all on DB) for backend PID."""
    with open(pg.logfile, errors="replace") as f:
        text = f.read()
    return re.findall(rf"\[{pid}\] LOG:  statement: (.*)", text)


# delay 0 = "check before every use"
@pytest.mark.parametrize("delay", [0, 0.3])
def test_server_check_query_runs_before_handing_out(pgcoro_factory, pg, tmodb, delay):
    inst = start(pgcoro_factory, pg, pool_size=1, pool_mode="transaction",
                 server_check_delay=delay, server_check_query=f'"{CHECK_QUERY}"',
                 query_wait_timeout=10)
    with wire(inst) as w:
        pid = int(one(w, "select pg_backend_pid() /*first*/"))
        w.terminate()
    time.sleep(delay + 0.5)            # idle longer than server_check_delay
    with wire(inst) as w:
        # logged in: in transaction mode the welcome comes from the pool's cached
        # parameters, so the login did not touch the server (no check yet)
        rows = [b for b in client_backends(pg, DB) if b[0] == pid]
        assert rows and rows[0][2] == "idle" and "/*first*/" in rows[0][3], (
            client_backends(pg, DB))
        # the first query takes the server: the check runs on it first
        assert int(one(w, "select pg_backend_pid() /*second*/")) == pid
        w.terminate()
    logged = statements_logged(pg, pid)
    first = logged.index("select pg_backend_pid() /*first*/")
    second = logged.index("select pg_backend_pid() /*second*/")
    assert CHECK_QUERY in logged[first + 1:second], logged
    inst.assert_serving(db=DB)


@pytest.mark.parametrize("delay", [0, 0.3])
def test_server_check_query_failing_closes_server(pgcoro_factory, pg, tmodb, delay):
    pg_rows(pg, "truncate check_bad", db=DB)
    inst = start(pgcoro_factory, pg, pool_size=1, pool_mode="transaction",
                 server_check_delay=delay, server_check_query=f'"{FAILING_CHECK}"',
                 query_wait_timeout=10)
    with wire(inst) as w:
        pid = int(one(w, "select pg_backend_pid()"))
        w.terminate()
    # from now on the check fails on that backend (it is still open and idle)
    pg_rows(pg, "insert into check_bad values (%s)", (pid,), db=DB)
    time.sleep(delay + 0.5)
    with wire(inst) as w:
        new_pid = int(one(w, "select pg_backend_pid()"))
        assert new_pid != pid, "the server that failed its check was handed out"
        assert one(w, "select 'served'") == "served"
        w.terminate()
    wait_until(lambda: pid not in backend_pids(pg), f"backend {pid} closed after its "
               "failed check")
    wait_until(lambda: "server_check_query failed" in inst.log_text(),
               "the failed check logged")
    inst.assert_serving(db=DB)


# ---------------------------------------------------------------------------------------
# server_login_retry: what clients meet while server connections fail


def failed_attempts(inst, db):
    """The failed connection attempts to DB logged, with PgBouncer's words for them."""
    return re.findall(rf"\({db}/app\): connection failed: .*; closing because: connect failed",
                      inst.log_text())


def login_in_thread(w, db, sql=None):
    """Logs W in to DB (and runs SQL) in a thread: returns it and a dict that gets
    "served" (True, or SQL's rows) or "error" when it ends."""
    result = {}

    def run():
        try:
            w.login(APP_USER, APP_PASS, db)
            result["served"] = w.query(sql) if sql else True
        except Exception as e:      # noqa: BLE001 - reported by the test
            result["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


def test_server_login_retry_waiting_client_is_served(pgcoro_factory, pg_cluster):
    """A client waiting for a server while PostgreSQL is down waits through the failed
    attempts (up to server_login_retry) and is served once PostgreSQL is up, instead of
    getting the first failure (PgBouncer's test_server_login_retry)."""
    other = pg_cluster()
    other.pg_ctl_stop("fast")
    inst = pgcoro_factory(settings={"server_login_retry": 15},
                          databases={"later": f"host=127.0.0.1 port={other.port} "
                                              "dbname=postgres"})
    w = Wire.to(inst, timeout=60)
    t, result = login_in_thread(w, "later", "select current_setting('port')")
    try:
        wait_until(lambda: len(failed_attempts(inst, "later")) >= 2 or result,
                   "two failed attempts while the client waits")
        assert not result, f"the waiting client did not wait: {result}"
        other.pg_ctl_start()
    finally:
        t.join(timeout=60)
        w.close()
    assert not t.is_alive(), "the client is still waiting 60 s later"
    assert result.get("served") == [[str(other.port)]], result
    inst.assert_serving(db="later")


def test_server_login_retry_new_client_fails_fast(pgcoro_factory, pg):
    """While a pool has no server and backs off after failed attempts, a client that
    needs one gets the last failure at once, in PgBouncer's words, instead of queueing;
    a client already waiting keeps waiting (server_login_retry = 30). A reload that
    changes the database's connection settings ends the back-off: the next client is
    served, and so is the one waiting."""
    inst = pgcoro_factory(settings={"server_login_retry": 30})
    first = Wire.to(inst, timeout=60)
    t, result = login_in_thread(first, "nowhere")
    try:
        # six failures: the back-off is 1.6 s long now, and doubles
        wait_until(lambda: len(failed_attempts(inst, "nowhere")) >= 6 or result,
                   "six failed attempts while the first client waits")
        assert not result, f"the first client did not wait: {result}"
        with Wire.to(inst, timeout=20) as w:
            with pytest.raises(PgError) as ei:
                w.login(APP_USER, APP_PASS, "nowhere")
        err = ei.value
        assert err.sqlstate == "08006", err.fields
        assert err.fields["M"] == ("server login has been failing, cached error: Connection "
                                   "refused (server_login_retry)"), err.fields
        assert t.is_alive() and not result, f"the first client stopped waiting: {result}"
        with open(inst.config_path) as f:
            text = f.read()
        with open(inst.config_path, "w") as f:
            f.write(text.replace("nowhere = host=127.0.0.1 port=1 ",
                                 f"nowhere = host=127.0.0.1 port={pg.port} "))
        inst.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "configuration reloaded" in inst.log_text(), "the reload")
        with Wire.to(inst, timeout=20) as w:
            w.login(APP_USER, APP_PASS, "nowhere")
            assert w.query("select current_setting('port')") == [[str(pg.port)]]
            w.terminate()
        t.join(timeout=30)
        assert result == {"served": True}, result
    finally:
        try:                        # it would wait 30 s: its login ends now
            first.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        t.join(timeout=30)
        first.close()
    inst.assert_serving()
