"""server_fast_close, as PgBouncer's: in session mode a server that RECONNECT (or a reload
changing its connection settings) is replacing is closed with its client as soon as it
is between transactions, rather than when the client leaves; a transaction in progress
is never cut. Off, or in transaction mode, the sessions go on."""

import psycopg2
import pytest

from conftest import Wire, pg_rows, wait_until

pytestmark = pytest.mark.pooler_only

ADMIN, ADMIN_PASS = "admin", "adminpw"


def start(pgcoro_factory, pg, fast_close, pool_mode="session"):
    conninfo = f"host=127.0.0.1 port={pg.port} dbname=postgres pool_mode={pool_mode}"
    return pgcoro_factory(settings={"admin_users": ADMIN, "server_fast_close": fast_close},
                          databases={"fc": conninfo}, users={ADMIN: ADMIN_PASS})


def reconnect(inst):
    c = psycopg2.connect(host=inst.host, port=inst.port, user=ADMIN, password=ADMIN_PASS,
                         dbname="pgbouncer", connect_timeout=30)
    c.autocommit = True
    try:
        c.cursor().execute("RECONNECT fc")
    finally:
        c.close()


def backend_gone(pg, pid):
    return not pg_rows(pg, "select 1 from pg_stat_activity where pid = %s", (pid,))


def closed_with(w, message):
    """W gets FATAL 57P01 MESSAGE, then the end of its connection."""
    e = w.expect_error()
    assert (e["S"], e["C"], e["M"]) == ("FATAL", "57P01", message), e
    assert w.at_eof()


def pid_of(w):
    return int(w.query("select pg_backend_pid()")[0][0])


def test_fast_close_session(pgcoro_factory, pg):
    inst = start(pgcoro_factory, pg, 1)
    with Wire.to(inst) as idle, Wire.to(inst) as busy:
        idle.login(database="fc")
        busy.login(database="fc")
        idle_pid, busy_pid = pid_of(idle), pid_of(busy)
        busy.query("BEGIN")
        reconnect(inst)
        # between transactions: closed at once, and its server with it
        closed_with(idle, "database configuration changed")
        wait_until(lambda: backend_gone(pg, idle_pid), "the idle session's server closed")
        # inside a transaction: it goes on to its end, then both are closed
        assert busy.query("select 7") == [["7"]]
        assert pid_of(busy) == busy_pid
        assert busy.query("COMMIT") == []
        closed_with(busy, "database configuration changed")
        wait_until(lambda: backend_gone(pg, busy_pid), "the busy session's server closed")
    # a new session gets a new server
    with Wire.to(inst) as w:
        w.login(database="fc")
        assert pid_of(w) not in (idle_pid, busy_pid)
    inst.assert_serving()


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_fast_close_off_or_not_session(pgcoro_factory, pg, pool_mode):
    """Off (session mode) the session keeps its server until it leaves; in transaction
    mode the setting changes nothing (servers are replaced between transactions)."""
    inst = start(pgcoro_factory, pg, 0 if pool_mode == "session" else 1, pool_mode)
    with Wire.to(inst) as w:
        w.login(database="fc")
        pid = pid_of(w)
        reconnect(inst)
        assert w.query("select 8") == [["8"]]
        if pool_mode == "session":
            assert pid_of(w) == pid  # the same server, to the end of the session
        else:
            wait_until(lambda: backend_gone(pg, pid), "the replaced server closed")
    if pool_mode == "session":
        wait_until(lambda: backend_gone(pg, pid), "the server closed when its client left")
    inst.assert_serving()
