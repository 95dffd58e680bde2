"""PgBouncer's wording, which its users' log alerts and scripts grep (issue 19): every
client and server close is logged "closing because: REASON (age=Ns)" with PgBouncer's
reasons, and a client gets the same REASON in its FATAL ErrorResponse: an unknown
database, a failed login per method (the same words for an unknown user and a wrong
password, naming nobody), a server's refusal relayed in its own words (a [databases]
entry or the "*" auto-database naming a missing PostgreSQL database), client_idle_timeout,
KILL_CLIENT, KILL, RECONNECT, shutdown, a server's end, a client's Terminate or EOF; a
server's connect line has PgBouncer's "ADDR:PORT new connection to server (from
ADDR:PORT)", a client's TLS "tls=VERSION/CIPHER"."""

import re

import psycopg2
import pytest

from conftest import (APP_PASS, APP_USER, MD5_PASS, MD5_USER, PgError, Wire, run_psql,
                      tls_settings, wait_until)

pytestmark = pytest.mark.pooler_only

ADMIN, ADMIN_PASS = "admin", "adminpw"
CLIENT = r"client \d+ \S+ \(\S+\)"
SERVER = r"server \d+ \(\S+\)"


def closes(inst, reason, who=CLIENT):
    """The log lines saying WHO closed because of REASON (a regex), in PgBouncer's words."""
    return re.findall(rf"(?m)^.* {who}: (?:pooler error \w{{5}}, |.*; )?closing because: "
                      rf"{reason} \(age=\d+s\)$", inst.log_text())


def wait_closes(inst, reason, n, who=CLIENT):
    wait_until(lambda: len(closes(inst, reason, who)) == n,
               f"{n} line(s) 'closing because: {reason}'", timeout=20)


def refused(inst, user, password, db):
    """A Wire login that is refused: (SQLSTATE, message)."""
    with Wire.to(inst) as w:
        with pytest.raises(PgError) as ei:
            w.login(user, password, db)
    return ei.value.sqlstate, ei.value.fields["M"]


def psql_refused(psql, inst, user, password, db):
    """psql's stderr for a login that is refused."""
    r = psql(inst, "-c", "select 1", user=user, password=password, db=db, check=False)
    assert r.returncode != 0, r.stdout
    return r.stderr


def test_unknown_database(pgcoro_factory, psql):
    """An unknown database: "no such database: X" (3D000), after the password is checked
    (a wrong one is told so first)."""
    inst = pgcoro_factory()
    assert "FATAL:  no such database: nosuchdb\n" in psql_refused(psql, inst, APP_USER, APP_PASS,
                                                                  "nosuchdb")
    assert refused(inst, APP_USER, APP_PASS, "nosuchdb") == ("3D000", "no such database: nosuchdb")
    assert refused(inst, APP_USER, "wrong", "nosuchdb") == ("28P01", "SASL authentication failed")
    wait_closes(inst, re.escape("no such database: nosuchdb"), 2)
    wait_closes(inst, "SASL authentication failed", 1)
    inst.assert_serving()


@pytest.mark.parametrize("auth_type,sqlstate,words", [
    ("trust", "28000", '"trust" authentication failed'),
    ("plain", "28P01", "password authentication failed"),
    ("md5", "28P01", "password authentication failed"),
    ("scram-sha-256", "28P01", "SASL authentication failed"),
])
def test_login_failures(pgcoro_factory, psql, auth_type, sqlstate, words):
    """A failed login in the words of PgBouncer for its method, the same for a user not in
    auth_file and (but with trust) a wrong password, whatever the database: the words name
    no user, so they never tell who exists."""
    inst = pgcoro_factory(settings={"auth_type": auth_type})
    tries = [("nosuchuser", "whatever", "postgres"), ("nosuchuser", "whatever", "nosuchdb")]
    if auth_type != "trust":
        tries += [(APP_USER, "wrong", "postgres"), (MD5_USER, MD5_PASS + "x", "postgres")]
    for user, password, db in tries:
        assert refused(inst, user, password, db) == (sqlstate, words), (user, db)
    assert f"FATAL:  {words}\n" in psql_refused(psql, inst, "nosuchuser", "whatever", "postgres")
    wait_closes(inst, re.escape(words), len(tries) + 1)
    inst.assert_serving()


def test_server_refusal_relayed(pgcoro_factory, pg, psql):
    """PostgreSQL refuses the login ([databases] entry, or the "*" auto-database, naming a
    database it does not have): the client gets its words and SQLSTATE as they are; the log
    has "server login failed: FATAL <its words>" and both closes "closing because: <its
    words>", and the auto-database's registration."""
    inst = pgcoro_factory(databases={"gone": f"host=127.0.0.1 port={pg.port} dbname=nosuch_pg",
                                     "*": f"host=127.0.0.1 port={pg.port}"})
    cases = [("gone", "nosuch_pg"), ("nosuch_auto", "nosuch_auto")]
    for db, pgdb in cases:
        said = f'database "{pgdb}" does not exist'
        assert refused(inst, APP_USER, APP_PASS, db) == ("3D000", said)
        wait_until(lambda: f"server login failed: FATAL {said}" in inst.log_text(),
                   f"{db}: the server's refusal logged")
        wait_closes(inst, re.escape(said), 1)
        wait_closes(inst, re.escape(said), 1, who=SERVER)
    assert "registered new auto-database: nosuch_auto" in inst.log_text()
    assert 'FATAL:  database "nosuch_auto2" does not exist\n' in psql_refused(
        psql, inst, APP_USER, APP_PASS, "nosuch_auto2")
    inst.assert_serving()


def test_client_idle_timeout(pgcoro_factory):
    """client_idle_timeout: FATAL 57P05 "client_idle_timeout (1s)", logged as such."""
    inst = pgcoro_factory(settings={"client_idle_timeout": 1})
    with Wire.to(inst) as w:
        w.login()
        assert w.query("select 1") == [["1"]]
        err = w.expect_error()
        assert (err["C"], err["M"]) == ("57P05", "client_idle_timeout (1s)"), err
    wait_closes(inst, re.escape("client_idle_timeout (1s)"), 1)


def test_admin_commands_and_shutdown(pgcoro_factory):
    """The connect line; KILL_CLIENT ("admin forced disconnect"), RECONNECT (its server:
    "database configuration changed"), KILL ("database removed"; its server: "pause
    mode") and SHUTDOWN WAIT_FOR_SERVERS ("server shutting down") in PgBouncer's words, to
    the client and in the log."""
    inst = pgcoro_factory(settings={"admin_users": ADMIN, "pool_mode": "transaction"},
                          users={ADMIN: ADMIN_PASS})
    admin = psycopg2.connect(host=inst.host, port=inst.port, user=ADMIN, password=ADMIN_PASS,
                             dbname="pgcoro", connect_timeout=30)
    admin.autocommit = True
    try:
        def closed_by(cmd, reason, n):
            with Wire.to(inst) as w:
                w.login()
                assert w.query("select 1") == [["1"]]
                port = w.sock.getsockname()[1]
                cur = admin.cursor()
                if cmd == "KILL_CLIENT":
                    cur.execute("SHOW CLIENTS")
                    names = [d.name for d in cur.description]
                    [cid] = [r[names.index("id")] for r in cur.fetchall()
                             if r[names.index("port")] == port]
                    cmd = f"KILL_CLIENT {cid}"
                cur.execute(cmd)
                err = w.expect_error()
                assert (err["S"], err["C"], err["M"]) == ("FATAL", "57P01", reason), err
            wait_closes(inst, re.escape(reason), n)

        closed_by("KILL_CLIENT", "admin forced disconnect", 1)
        assert re.search(rf"{SERVER}: connected, backend pid \d+; 127\.0\.0\.1:{inst.pg.port} "
                         r"new connection to server \(from 127\.0\.0\.1:\d+\)$",
                         inst.log_text(), re.M), inst.log_tail()
        admin.cursor().execute("RECONNECT postgres")
        wait_closes(inst, "database configuration changed", 1, who=SERVER)
        closed_by("KILL postgres", "database removed", 1)
        wait_closes(inst, "pause mode", 1, who=SERVER)
        admin.cursor().execute("RESUME postgres")
        with Wire.to(inst) as idle:
            idle.login()
            admin.cursor().execute("SHUTDOWN WAIT_FOR_SERVERS")
            err = idle.expect_error()
            assert (err["C"], err["M"]) == ("57P01", "server shutting down"), err
        wait_closes(inst, "server shutting down", 2)  # and the console's session
    finally:
        admin.close()
    inst.proc.wait(timeout=30)


def test_server_gone(pgcoro_factory, pg):
    """A server whose backend ends: "server conn crashed?" (PgBouncer's words) first; its
    client has PostgreSQL's own FATAL."""
    inst = pgcoro_factory()
    with Wire.to(inst) as w:
        w.login()
        pid = w.query("select pg_backend_pid()")[0][0]
        pg.psql_super(f"select pg_terminate_backend({pid})")
        assert w.expect_error()["C"] == "57P01"
    # the backend's end reaches pgcoro as an EOF or, when bytes were in flight, a reset
    wait_closes(inst, r"server conn crashed\? \((server closed the connection|socket error: "
                r"Connection reset by peer)\)", 1, who=SERVER)
    inst.assert_serving()


def test_client_leaves(pgcoro_factory):
    """A client's Terminate is PgBouncer's "client close request", its leaving without one
    "client unexpected eof"."""
    inst = pgcoro_factory()
    app = r"client \d+ \S+ \(app@postgres\)"  # not the harness' probe of the port
    with Wire.to(inst) as w:
        w.login()
        w.terminate()
    wait_closes(inst, "client close request", 1, who=app)
    with Wire.to(inst) as w:
        w.login()
        assert w.query("select 1") == [["1"]]
    wait_closes(inst, "client unexpected eof", 1, who=app)


def test_tls_login_line(pgcoro_factory, pg, tls_certs):
    """With log_connections, a client's TLS is logged "tls=VERSION/CIPHER" (PgBouncer's
    words)."""
    inst = pgcoro_factory(settings=tls_settings(tls_certs, "require",
                                                client_tls_protocols="tlsv1.3",
                                                client_tls13_ciphers="TLS_AES_256_GCM_SHA384"))
    assert run_psql(pg, inst, "select 1", sslmode="require").stdout.strip() == "1"
    wait_until(lambda: re.search(r"client \d+ \S+: TLS established, tls=TLSv1\.3/"
                                 r"TLS_AES_256_GCM_SHA384$", inst.log_text(), re.M),
               "the TLS line")
