"""Errors pgcoro itself reports: server unreachable (08006) or refusing (its own SQLSTATE),
without the server's address; too many clients (53300)."""

import subprocess
import time

import pytest

from conftest import APP_PASS, APP_USER, PgError, Wire, clean_env, free_port, wait_until


@pytest.mark.pooler_only
def test_server_unreachable(pgcoro, pg):
    with Wire.to(pgcoro) as w:
        with pytest.raises(PgError) as ei:
            w.login(APP_USER, APP_PASS, "nowhere")
            # a pooler that connects lazily reports it at the first query at the latest
            w.query("select 1")
    err = ei.value
    assert err.sqlstate == "08006", err.fields
    assert "Connection refused" in err.fields["M"], err.fields
    # the same through psql: the reason reaches the user
    r = subprocess.run([pg.psql_bin, "-X", "-h", pgcoro.host, "-p", str(pgcoro.port), "-U",
                        APP_USER, "-d", "nowhere", "-c", "select 1"], capture_output=True,
                       text=True, timeout=60, env=clean_env(PGPASSWORD=APP_PASS))
    assert r.returncode != 0
    assert "Connection refused" in r.stderr, r.stderr
    pgcoro.assert_serving()


@pytest.mark.pooler_only
def test_server_failure_without_address(pgcoro_factory, pg):
    """A server connection that fails: the waiting client gets the reason with the right
    SQLSTATE (08006, or the server's own and its very words when it refused, as PgBouncer
    relays them) but not the server's host or port; the log line has them."""
    closed = free_port()
    inst = pgcoro_factory(databases={
        "closed": f"host=127.0.0.1 port={closed} dbname=postgres",
        "badpass": f"host=localhost port={pg.port} dbname=postgres password=wrong",
        "nodb": f"host=localhost port={pg.port} dbname=nosuchdb",
    })
    cases = [("closed", closed, "08006", "server connection failed: Connection refused"),
             ("badpass", pg.port, "28P01", 'password authentication failed for user "app"'),
             ("nodb", pg.port, "3D000", 'database "nosuchdb" does not exist')]
    for db, port, sqlstate, message in cases:
        with Wire.to(inst) as w:
            with pytest.raises(PgError) as ei:
                w.login(APP_USER, APP_PASS, db)
                w.query("select 1")
        err = ei.value
        assert (err.sqlstate, err.fields["M"]) == (sqlstate, message), err.fields
        shown = " ".join(err.fields.values())
        assert str(port) not in shown and "127.0.0.1" not in shown and "localhost" not in shown, \
            err.fields
        wait_until(lambda: f'({db}/app): connection failed: connection to server at ' in
                   inst.log_text(), f"{db}: the failure logged")
        line = [ln for ln in inst.log_text().splitlines() if f"({db}/app): connection failed" in ln]
        assert f"port {port} failed" in line[0] and "127.0.0.1" in line[0], line
    inst.assert_serving()


@pytest.mark.pooler_only
def test_max_client_conn(pgcoro_factory):
    inst = pgcoro_factory(settings={"max_client_conn": 5, "default_pool_size": 10})
    held = []
    try:
        for i in range(5):
            c = inst.connect()
            c.cursor().execute("select 1")
            held.append(c)
        with Wire.to(inst) as w:
            w.send_quietly(Wire.startup_packet({"user": APP_USER, "database": "postgres"}))
            with pytest.raises(PgError) as ei:
                w.authenticate(APP_USER, APP_PASS)
            assert ei.value.sqlstate == "53300", ei.value.fields
        # the held clients are unaffected
        for c in held:
            cur = c.cursor()
            cur.execute("select 2")
            assert cur.fetchone() == (2,)
    finally:
        for c in held:
            c.close()
    # with the clients gone, new ones are admitted again (pgcoro notices the closes
    # asynchronously: retry, bounded)
    deadline = time.monotonic() + 30
    while True:
        try:
            inst.assert_serving()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
