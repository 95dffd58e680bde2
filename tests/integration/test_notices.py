"""The notices pgcoro itself sends, as PgBouncer's: login_notify_message (a NOTICE with
the welcome, before the first ReadyForQuery) and query_wait_notify (a NOTICE to a client
queued that long for a server, once per wait)."""

import time

import pytest

from conftest import Wire, parse_data_row, parse_fields

pytestmark = pytest.mark.pooler_only

QUEUED = "No server connection available in postgres backend, client being queued"


def start(pgcoro_factory, pg, pool_mode="session", **settings):
    conninfo = (f"host=127.0.0.1 port={pg.port} dbname=postgres pool_size=1 "
                f"pool_mode={pool_mode}")
    return pgcoro_factory(settings=settings, databases={"one": conninfo})


def test_login_notify_message(pgcoro_factory, pg, psql):
    inst = start(pgcoro_factory, pg, login_notify_message="You are now connected to pgcoro")
    with Wire.to(inst) as w:
        w.login(database="one")
        assert [(n["S"], n["C"], n["M"]) for n in w.notices] == [
            ("NOTICE", "00000", "You are now connected to pgcoro")]
        assert w.query("SELECT 1") == [["1"]]
        assert len(w.notices) == 1  # at login only
    r = psql(inst, "-c", "SELECT 1", db="one")
    assert r.returncode == 0, r.stderr
    assert "NOTICE:  You are now connected to pgcoro" in r.stderr


def test_login_notify_message_empty(pgcoro_factory, pg):
    inst = start(pgcoro_factory, pg)
    with Wire.to(inst) as w:
        w.login(database="one")
        assert w.notices == []


def next_notice(w):
    """Reads W's messages up to a NoticeResponse (the login's 'R', 'S', 'K' skipped;
    bounded by W's socket timeout): its fields."""
    while True:
        t, payload = w.read_msg()
        if t == "N":
            return parse_fields(payload)
        assert t in "RSK", (t, payload)


def result(w):
    """The rows of the answer to a query W has sent, up to its ReadyForQuery; notices go
    to W.notices."""
    rows = []
    while True:
        t, payload = w.read_msg()
        if t == "D":
            rows.append(parse_data_row(payload))
        elif t == "N":
            w.notices.append(parse_fields(payload))
        elif t == "Z":
            return rows
        else:
            assert t in "TC", (t, payload)


def test_query_wait_notify_transaction(pgcoro_factory, pg):
    """A client queued query_wait_notify (1 s) for the pool's one server is told so, once
    per wait and again at its next wait; a query that gets a server at once is not."""
    inst = start(pgcoro_factory, pg, pool_mode="transaction", query_wait_notify=1)
    with Wire.to(inst) as holder, Wire.to(inst) as waiter:
        holder.login(database="one")
        waiter.login(database="one")
        holder.query("BEGIN")  # holds the one server
        waiter.send(Wire.msg("Q", b"SELECT 2\0"))
        n = next_notice(waiter)
        assert (n["S"], n["C"], n["M"]) == ("NOTICE", "00000", QUEUED)
        time.sleep(2.5)  # more of the pool's ticks: still one notice for this wait
        holder.query("COMMIT")
        assert result(waiter) == [["2"]]
        assert waiter.notices == []
        holder.query("BEGIN")
        waiter.send(Wire.msg("Q", b"SELECT 3\0"))
        assert next_notice(waiter)["M"] == QUEUED
        holder.query("COMMIT")
        assert result(waiter) == [["3"]]
        assert waiter.query("SELECT 4") == [["4"]]
        assert waiter.notices == []


def test_query_wait_notify_session_login(pgcoro_factory, pg):
    """Session mode: a login waiting for the pool's one server is told so (before its
    welcome) and logs in once the server is free."""
    inst = start(pgcoro_factory, pg, query_wait_notify=1, auth_type="trust")
    with Wire.to(inst) as holder, Wire.to(inst) as waiter:
        holder.login(database="one")
        waiter.send_startup("app", "one")  # trust: AuthenticationOk, then the wait
        assert next_notice(waiter)["M"] == QUEUED
        holder.terminate()
        waiter.authenticate("app", "app")
        assert waiter.query("SELECT 5") == [["5"]]
        assert waiter.notices == []


def test_query_wait_notify_off(pgcoro_factory, pg):
    """query_wait_notify = 0: a client queued for longer than a tick is not told."""
    inst = start(pgcoro_factory, pg, pool_mode="transaction", query_wait_notify=0)
    with Wire.to(inst) as holder, Wire.to(inst) as waiter:
        holder.login(database="one")
        waiter.login(database="one")
        holder.query("BEGIN")
        waiter.send(Wire.msg("Q", b"SELECT 2\0"))
        time.sleep(2.5)
        holder.query("COMMIT")
        assert result(waiter) == [["2"]]
        assert waiter.notices == []
