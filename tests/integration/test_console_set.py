"""The console's SET key = value as PgBouncer's: every key a reload can change may be SET
(auth_type, auth_file, auth_hba_file and client_tls_* too, which re-read their files as a
reload does), with PgBouncer's answers: the tag "SET key=value", 08P01 "SET failed" (the
reason as the detail) leaving everything as it was, "SET ignored" for the parameters a
driver sets, a key read only at start accepted and ignored with a warning; the value is
what SHOW CONFIG shows, and a RELOAD reads the file again (the file wins)."""

import errno
import os
import threading
import time

import psycopg2
import pytest

from conftest import (APP_PASS, Wire, parse_data_row, parse_fields, run_psql,
                      verify_full)

pytestmark = pytest.mark.pooler_only

ADMIN, ADMIN_PASS = "admin", "adminpw"
STATS, STATS_PASS = "statsu", "statspw"


def start(pgcoro_factory, **settings):
    base = {"admin_users": ADMIN, "stats_users": STATS}
    base.update(settings)
    return pgcoro_factory(settings=base, users={ADMIN: ADMIN_PASS, STATS: STATS_PASS})


def console(inst, user=ADMIN, password=ADMIN_PASS):
    c = psycopg2.connect(host=inst.host, port=inst.port, user=user, password=password,
                         dbname="pgbouncer", connect_timeout=30)
    c.autocommit = True
    return c


def config(conn):
    cur = conn.cursor()
    cur.execute("SHOW CONFIG")
    return {r[0]: r[1] for r in cur.fetchall()}


def set_ok(conn, key, value, quoted=True):
    """SET KEY = VALUE; returns the notices it brought. The tag is PgBouncer's."""
    del conn.notices[:]
    cur = conn.cursor()
    cur.execute(f"SET {key} = '{value}'" if quoted else f"SET {key} = {value}")
    # libpq keeps the first 63 bytes of a tag
    assert cur.statusmessage == f"SET {key}={value}"[:63], cur.statusmessage
    return list(conn.notices)


def set_refused(conn, stmt):
    """STMT fails as PgBouncer's SET does: 08P01 "SET failed"; returns the detail."""
    with pytest.raises(psycopg2.Error) as e:
        conn.cursor().execute(stmt)
    assert e.value.pgcode == "08P01", (stmt, e.value.pgerror)
    assert e.value.diag.message_primary == "SET failed", (stmt, e.value.pgerror)
    return e.value.diag.message_detail or ""


def login(inst, password=APP_PASS):
    c = inst.connect(password=password)
    try:
        cur = c.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    finally:
        c.close()


def login_refused(inst, password):
    with pytest.raises(psycopg2.OperationalError) as e:
        inst.connect(password=password).close()
    return str(e.value)


def test_set_auth_type_takes_effect_for_the_next_login(pgcoro_factory):
    """SET auth_type: the next login uses it (trust lets a wrong password in, md5 refuses
    it again); SHOW CONFIG shows it; RELOAD gives the file's scram-sha-256 back."""
    inst = start(pgcoro_factory)
    admin = console(inst)
    assert "SASL authentication failed" in login_refused(inst, "wrong")
    set_ok(admin, "auth_type", "trust")
    assert config(admin)["auth_type"] == "trust"
    login(inst, password="wrong")
    set_ok(admin, "auth_type", "md5", quoted=False)
    assert config(admin)["auth_type"] == "md5"
    assert "password authentication failed" in login_refused(inst, "wrong")
    login(inst)
    assert "SET auth_type = 'md5' by admin" in inst.log_text()
    cur = admin.cursor()
    cur.execute("RELOAD")
    assert config(admin)["auth_type"] == "scram-sha-256"
    assert "SASL authentication failed" in login_refused(inst, "wrong")
    login(inst)
    admin.close()


def test_set_client_tls_enables_and_swaps_tls(pgcoro_factory, pg, tls_certs):
    """client_tls_key_file, _cert_file, _ca_file then client_tls_sslmode = require by SET:
    new clients get TLS (verify-full passes) and a plain TCP client is refused. A key
    that does not fit the certificate yet is set with PgBouncer's notice and the running
    context stays; with its certificate the new pair is in force. An unknown TLS 1.3
    cipher suite: the same notice, PgBouncer's log line. sslmode disable: plain again."""
    tls_certs.issue("server-set", "localhost", "wrong_ca", san="DNS:localhost,IP:127.0.0.1")
    inst = start(pgcoro_factory)
    admin = console(inst)
    r = run_psql(pg, inst, "SELECT 1", check=False, sslmode="require")
    assert r.returncode != 0 and "does not support SSL" in r.stderr, r.stderr
    for key, name in (("client_tls_key_file", "server.key"),
                      ("client_tls_cert_file", "server.crt"),
                      ("client_tls_ca_file", "ca.crt")):
        assert set_ok(admin, key, tls_certs.path(name)) == []
    set_ok(admin, "client_tls_sslmode", "require", quoted=False)
    conf = config(admin)
    assert conf["client_tls_sslmode"] == "require"
    assert conf["client_tls_key_file"] == tls_certs.path("server.key")
    run_psql(pg, inst, "SELECT 1", **verify_full(tls_certs))
    r = run_psql(pg, inst, "SELECT 1", check=False, sslmode="disable")
    assert r.returncode != 0 and "TLS required" in r.stderr, r.stderr

    kept = "TLS settings could not be applied, still using old configuration"
    notices = set_ok(admin, "client_tls_key_file", tls_certs.path("server-set.key"))
    assert len(notices) == 1 and kept in notices[0], notices
    assert config(admin)["client_tls_key_file"] == tls_certs.path("server-set.key")
    run_psql(pg, inst, "SELECT 1", **verify_full(tls_certs))  # the old pair still serves
    assert set_ok(admin, "client_tls_cert_file", tls_certs.path("server-set.crt")) == []
    r = run_psql(pg, inst, "SELECT 1", check=False, **verify_full(tls_certs))
    assert r.returncode != 0 and "certificate verify failed" in r.stderr, r.stderr
    wrong_ca = verify_full(tls_certs, sslrootcert=tls_certs.path("wrong_ca.crt"))
    run_psql(pg, inst, "SELECT 1", **wrong_ca)

    notices = set_ok(admin, "client_tls13_ciphers", "unknown")
    assert len(notices) == 1 and kept in notices[0], notices
    assert "failed to set the TLSv1.3 cipher suites" in inst.log_text()
    run_psql(pg, inst, "SELECT 1", **wrong_ca)

    set_ok(admin, "client_tls_sslmode", "disable", quoted=False)
    run_psql(pg, inst, "SELECT 1", sslmode="disable")
    r = run_psql(pg, inst, "SELECT 1", check=False, sslmode="require")
    assert r.returncode != 0 and "does not support SSL" in r.stderr, r.stderr
    admin.close()


def test_set_refused_changes_nothing(pgcoro_factory):
    """What PgBouncer's SET refuses gets 08P01 "SET failed", the reason in the detail, and
    changes nothing: an unknown key, a value the file could not have, a check across keys,
    an auth_file that does not load (its reason in the log only). A key read only at start is answered as done (as
    PgBouncer's) with a warning and stays; the parameters a driver sets get "SET
    ignored", from a stats user too, whose other SETs need admin access; bad syntax is
    PgBouncer's invalid command."""
    inst = start(pgcoro_factory)
    admin = console(inst)
    before = config(admin)
    assert "unknown config parameter: nosuch" in set_refused(admin, "SET nosuch = 1")
    detail = set_refused(admin, "SET auth_type = 'nosuch'")
    assert 'invalid value "nosuch" for auth_type' in detail, detail
    detail = set_refused(admin, "SET default_pool_size = abc")
    assert "default_pool_size: not an integer" in detail, detail
    detail = set_refused(admin, "SET client_tls_sslmode = require")
    assert "needs client_tls_key_file and client_tls_cert_file" in detail, detail
    detail = set_refused(admin, "SET auth_file = '/nonexistent/users.txt'")
    # why a file did not load goes to the log only: it may quote the file (audit B1)
    assert detail == "a file it reads did not load; see the log", detail
    assert "SET auth_file = '/nonexistent/users.txt' by admin failed" in inst.log_text()
    assert "auth_file: /nonexistent/users.txt: cannot open" in inst.log_text()
    assert config(admin) == before
    login(inst)
    assert "SASL authentication failed" in login_refused(inst, "wrong")

    notices = set_ok(admin, "listen_port", "1", quoted=False)
    assert len(notices) == 1, notices
    assert notices[0].startswith("NOTICE:  listen_port takes effect only at a restart: "
                                 "SET ignored"), notices
    assert config(admin) == before

    stats = console(inst, STATS, STATS_PASS)
    cur = stats.cursor()
    cur.execute("SET client_encoding = 'UTF8'")
    assert cur.statusmessage == "SET"
    assert stats.notices == ["NOTICE:  SET ignored\n"], stats.notices
    with pytest.raises(psycopg2.Error) as e:
        cur.execute("SET default_pool_size = 9")
    assert e.value.pgcode == "08P01" and "admin access needed" in e.value.pgerror
    stats.close()

    with pytest.raises(psycopg2.Error) as e:
        admin.cursor().execute("SET default_pool_size")
    assert e.value.pgcode == "08P01"
    assert "invalid command 'SET default_pool_size', use SHOW HELP;" in e.value.pgerror
    assert config(admin) == before
    admin.close()
    inst.assert_serving()


def read_result(w):
    """The tag, notices, data rows and error (fields, or None) of W's next answer."""
    tag, notices, rows, err = None, [], [], None
    while True:
        t, p = w.read_msg()
        if t == "C":
            tag = p.rstrip(b"\0").decode()
        elif t == "N":
            notices.append(parse_fields(p))
        elif t == "D":
            rows.append(parse_data_row(p))
        elif t == "E":
            err = parse_fields(p)
        elif t == "Z":
            return tag, notices, rows, err


def open_fifo_writer(path, timeout=30.0):
    """A write end of the FIFO PATH once a reader has it open (None if none by TIMEOUT)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno != errno.ENXIO or time.monotonic() > deadline:
                return None
        time.sleep(0.02)


def test_set_waits_for_the_files_and_queues_other_sets(pgcoro_factory):
    """A SET of auth_file reads it on the executor and answers once it is read (here a
    FIFO the test fills when it likes); the same console's next command is answered after
    it. Meanwhile another console's SET of a plain key waits for it, rather than being
    lost when the first SET's config goes in force: both end up in force."""
    inst = start(pgcoro_factory)
    fifo = os.path.join(inst.workdir, "users.fifo")
    os.mkfifo(fifo)
    with open(inst.userlist_path, "rb") as f:
        users = f.read()
    w = Wire.to(inst)
    w.login(user=ADMIN, password=ADMIN_PASS, database="pgbouncer")
    other = console(inst)
    done = {}

    def other_set():
        cur = other.cursor()
        cur.execute("SET default_pool_size = 3")
        done["tag"] = cur.statusmessage

    t = threading.Thread(target=other_set, daemon=True)
    fd = None
    try:
        w.send(Wire.msg("Q", f"SET auth_file = '{fifo}'".encode() + b"\0")
               + Wire.msg("Q", b"SHOW CONFIG\0"))
        fd = open_fifo_writer(fifo)  # the executor has opened it: the SET is reading
        assert fd is not None, "the SET never opened the auth_file"
        t.start()
        t.join(1)  # time for the second SET to reach pgcoro, which holds it
        assert "tag" not in done, "the second SET did not wait for the first"
        os.write(fd, users)
    finally:
        if fd is None:
            fd = open_fifo_writer(fifo, timeout=0)
        if fd is not None:
            os.close(fd)
    tag, _, _, err = read_result(w)
    assert err is None and tag == f"SET auth_file={fifo}", (tag, err)
    tag, _, rows, err = read_result(w)
    assert err is None and tag == "SHOW", (tag, err)
    assert {r[0]: r[1] for r in rows}["auth_file"] == fifo
    t.join(30)
    assert done.get("tag") == "SET default_pool_size=3", done
    final = config(other)
    assert final["auth_file"] == fifo and final["default_pool_size"] == "3", final
    login(inst)
    w.terminate()
    other.close()
