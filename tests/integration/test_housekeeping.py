"""pgcoro's own queries on its servers (hkquery.c): connect_query, server_reset_query,
the parameter sync, server_check_query — written and read by pgcoro itself on the
connection libpq made, the way the relay speaks to it. What their answers may hold: a COPY
(TO STDOUT passes unread; FROM STDIN is refused with CopyFail and counts as the query's
error), notices (logged), errors, parameter values whatever their bytes."""

import re

import pytest

from conftest import Wire, parse_fields, pg_rows, wait_until

pytestmark = pytest.mark.pooler_only


def test_copy_in_connect_query(pgcoro_factory, pg):
    """A connect_query with COPY TO STDOUT or COPY FROM STDIN: the server is used all the
    same (a failed connect_query is logged, as PgBouncer does). libpq's PQgetResult
    answers a COPY with a COPY result for ever: the housekeeping loop never ended and
    pgcoro hung."""
    base = f"host=127.0.0.1 port={pg.port} dbname=postgres"
    inst = pgcoro_factory(databases={
        "hk_copy_out": base + " connect_query='COPY (SELECT 1 UNION ALL SELECT 2) TO STDOUT'",
        "hk_copy_in": base + " connect_query='CREATE TEMP TABLE hk_in (a int); "
                             "COPY hk_in FROM STDIN'",
    })
    for db in ("hk_copy_out", "hk_copy_in"):
        with Wire.to(inst, timeout=20) as w:
            w.login(database=db)
            assert w.query("SELECT 40 + 2") == [["42"]]
    wait_until(lambda: "connect_query failed: COPY from stdin failed" in inst.log_text(),
               "the refused COPY FROM STDIN logged as connect_query's failure")
    assert "(hk_copy_out/app): connect_query failed" not in inst.log_text()
    inst.assert_serving()


def test_reset_query_notice_and_error(pgcoro_factory, pg):
    """A WARNING raised by server_reset_query is logged; an error closes the server (its
    state is not known), and the next client gets a fresh one."""
    inst = pgcoro_factory(settings={
        "default_pool_size": 1,
        "server_reset_query": "DO $$BEGIN RAISE WARNING 'hk says %', 42; END$$; "
                              "SELECT 1 / (length(current_setting('application_name')) - 4) "
                              "WHERE current_setting('application_name') = 'boom'; "
                              "RESET ALL"})  # several statements: no DISCARD ALL
    with Wire.to(inst) as w:
        w.login()
        pid = w.query("SELECT pg_backend_pid()")[0][0]
    wait_until(lambda: "WARNING:  hk says 42" in inst.log_text(), "the reset's WARNING logged")
    with Wire.to(inst) as w:
        w.login()
        assert w.query("SELECT pg_backend_pid()")[0][0] == pid  # the reset passed: reused
        w.query("SET application_name = boom")
    wait_until(lambda: "server_reset_query failed: division by zero" in inst.log_text(),
               "the reset's error closing the server")
    with Wire.to(inst) as w:
        w.login()
        assert w.query("SELECT pg_backend_pid()")[0][0] != pid
    inst.assert_serving()


def test_sync_values_pass_as_they_are(pgcoro_factory, pg):
    """The parameter sync sends a client's startup values as parameters, never quoted into
    the text: quotes, backslashes and non-ASCII bytes reach set_config unchanged, in
    transaction mode on every hand-out; a value the server refuses reaches the client as
    the server's error, and the server is kept."""
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 1})
    app = "it's \\ \"x\" ''; SELECT 1"  # PostgreSQL makes non-ASCII '?' in it
    path = "\"a'b\", caf\u00e9, public"
    with Wire.to(inst) as a, Wire.to(inst) as b:
        a.login(application_name=app, search_path=path)
        b.login(application_name="other")
        for _ in range(2):  # the server goes to B and back: synced each time
            assert a.query("SELECT current_setting('application_name'), "
                           "current_setting('search_path')") == [[app, path]]
            assert b.query("SELECT current_setting('application_name')") == [["other"]]
        pid = a.query("SELECT pg_backend_pid()")[0][0]
    with Wire.to(inst) as c:
        c.login(DateStyle="no such style")
        c.send(Wire.msg("Q", b"SELECT 1\0"))
        t, p = c.read_msg()
        assert t == "E", (t, p)
        fields = parse_fields(p)
        assert fields["C"] == "22023" and "DateStyle" in fields["M"], fields
    with Wire.to(inst) as d:
        d.login()
        assert d.query("SELECT pg_backend_pid()") == [[pid]]
    inst.assert_serving()


def test_check_query_and_values(pgcoro_factory, pg):
    """server_check_query runs on a server idle past server_check_delay (here: always),
    any answer it gives (rows, an empty query) being read to its end."""
    for check in ("SELECT repeat('x', 200000), 2 FROM generate_series(1, 3)", "<empty>"):
        inst = pgcoro_factory(settings={"default_pool_size": 1, "server_check_delay": 0,
                                        "server_check_query": check})
        with Wire.to(inst) as w:
            w.login()
            pid = w.query("SELECT pg_backend_pid()")[0][0]
        for _ in range(3):
            with Wire.to(inst) as w:
                w.login()
                assert w.query("SELECT pg_backend_pid()")[0][0] == pid
        inst.assert_serving()
        rows = pg_rows(pg, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (int(pid),))
        assert rows == [(1,)]


def listener_activity(pg):
    """(pid, query, state) of pgcoro's LISTEN connections."""
    return pg_rows(pg, "SELECT pid, query, state FROM pg_stat_activity "
                       "WHERE application_name = 'pgcoro listener'")


def notified(w, direct_pg, channel, payload):
    """A NOTIFY sent straight to PostgreSQL reaches W (logged in, listening to CHANNEL)."""
    c = direct_pg.super_connect()
    try:
        c.autocommit = True
        c.cursor().execute(f"NOTIFY {channel}, '{payload}'")
    finally:
        c.close()
    t, p = w.read_msg()
    assert t == "A" and p[4:] == channel.encode() + b"\0" + payload.encode() + b"\0", (t, p)


def test_listener_connection_lost_and_made_again(pgcoro_factory, pg):
    """The LISTEN connection's server goes (pg_terminate_backend): its FATAL is logged, the
    connection is made again a second later and listens to its clients' channels again."""
    inst = pgcoro_factory(settings={"pool_mode": "transaction"})
    with Wire.to(inst, timeout=20) as w:
        w.login()
        assert w.query("LISTEN hk_chan") == []
        notified(w, pg, "hk_chan", "one")
        (pid, _, _), = listener_activity(pg)
        pg.psql_super(f"SELECT pg_terminate_backend({pid})")
        wait_until(lambda: "LISTEN connection: terminating connection due to administrator "
                           "command" in inst.log_text(), "the listener's FATAL logged")
        wait_until(lambda: [(q, s) for p, q, s in listener_activity(pg) if p != pid] ==
                   [('LISTEN "hk_chan";', "idle")], "a new listener connection listening")
        notified(w, pg, "hk_chan", "two")
        assert w.query("SELECT 1") == [["1"]]
    inst.assert_serving()


def test_over_tls(pgcoro_factory, pg_tls, tls_certs):
    """The same queries on servers and the LISTEN connection over TLS (libpq's handle,
    verify-full): the sync, ROLLBACK and the reset of a client that left inside a
    transaction, LISTEN and a notification."""
    conn = (f"host=127.0.0.1 port={pg_tls.port} sslmode=verify-full "
            f"sslrootcert={tls_certs.path('ca.crt')} dbname=postgres")
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 1},
                          databases={"postgres": conn}, replace_databases=True)
    with Wire.to(inst, timeout=20) as a:
        a.login(application_name="tls-a", DateStyle="German")
        assert a.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == [["t"]]
        assert a.query("SELECT current_setting('application_name'), "
                       "current_setting('DateStyle')") == [["tls-a", "German, DMY"]]
        a.query("BEGIN")
        a.query("CREATE TEMP TABLE hk_tmp (a int)")
    for _ in range(2):
        with Wire.to(inst, timeout=20) as b:
            b.login()
            assert b.query("SELECT current_setting('application_name'), "
                           "current_setting('DateStyle'), "
                           "to_regclass('pg_temp.hk_tmp') IS NULL") == [["", "ISO, MDY", "t"]]
            assert b.query("LISTEN hk_tls") == []
            notified(b, pg_tls, "hk_tls", "over tls")
    log = inst.log_text()
    assert "TLS error" not in log, inst.log_tail(30)
    assert not re.search(r"server \d+ \(\S+\): closing", log), inst.log_tail(30)
    inst.assert_serving()
