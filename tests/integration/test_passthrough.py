"""Server logins with the client's secrets (PgBouncer's md5 and SCRAM pass-through): a
database entry without a password logs in to PostgreSQL with the auth_file's secret of
the server user. An md5 secret answers PostgreSQL's md5 request (md5(secret + salt)); a
SCRAM verifier copied from pg_authid logs in with the ClientKey a client's SCRAM login
proved (ClientProof XOR HMAC(StoredKey, AuthMessage)), kept per user while the verifier
stays the same. Without such a key yet the server login fails with PgBouncer's words;
a wrong verifier ends in the server's refusal or pgcoro's own reason; the servers made
this way serve prepared statements, LISTEN/NOTIFY and cancels like any other. The login
is never weaker than libpq's for the same conninfo: CRLs, hostaddr with verify-full,
channel binding, the key file's permissions, port and connect_timeout as libpq."""

import base64
import hashlib
import hmac
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import psycopg2
import psycopg2.errors
import pytest

from conftest import (APP_PASS, APP_USER, MD5_PASS, MD5_USER, PgError, Wire, client_backends,
                      client_key, current_user, parse_fields, wait_until)

pytestmark = pytest.mark.pooler_only


def md5_secret(password, user):
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


def pg_verifier(pg, user):
    v = pg.psql_super(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{user}'").strip()
    assert v.startswith("SCRAM-SHA-256$"), v
    return v


def make_verifier(password, salt, iterations=4096):
    """A SCRAM-SHA-256 verifier of PASSWORD with SALT, as PostgreSQL stores it."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored = hashlib.sha256(client_key).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored)}:{b64(server)}"


def verifier_salt(v):
    return base64.b64decode(v[len("SCRAM-SHA-256$"):].split("$")[0].split(":")[1])


def login_error(inst, user, password, db):
    """The ErrorResponse a client gets logging in to DB and running a query (in session
    mode at the login, in transaction mode at the query: then the connection closes)."""
    with Wire.to(inst) as w:
        try:
            w.login(user, password, db)
        except PgError as e:
            return e
        w.send(w.msg("Q", b"SELECT 1\0"))
        while True:
            t, p = w.read_msg()
            if t == "E":
                return PgError(parse_fields(p))
            assert t in ("N", "S"), (t, p)


def test_md5_secret_pass_through(pgcoro_factory, pg):
    """md5user's stored md5 secret in the auth_file (no password anywhere): the server
    login answers PostgreSQL's md5 request with it; before, libpq had no password."""
    inst = pgcoro_factory(settings={"auth_type": "md5"},
                          users={MD5_USER: md5_secret(MD5_PASS, MD5_USER)})
    assert current_user(inst, MD5_USER, MD5_PASS) == MD5_USER
    # a second server of the same pool, while the first is held (session mode)
    c1 = inst.connect(user=MD5_USER, password=MD5_PASS)
    try:
        c1.cursor().execute("SELECT 1")
        assert current_user(inst, MD5_USER, MD5_PASS) == MD5_USER
    finally:
        c1.close()
    # a wrong md5 secret: the server's refusal reaches the client with its SQLSTATE
    bad = pgcoro_factory(settings={"auth_type": "trust"},
                         users={MD5_USER: md5_secret("wrong", MD5_USER)})
    err = login_error(bad, MD5_USER, None, "postgres")
    assert err.sqlstate == "28P01", err.fields
    assert f'password authentication failed for user "{MD5_USER}"' in err.fields["M"], err.fields
    bad.assert_serving()


def test_scram_pass_through(pgcoro_factory, pg):
    """app's verifier copied from pg_authid: a client's SCRAM login leaves its ClientKey,
    the server login proves it to PostgreSQL; a second client gets a second server so."""
    inst = pgcoro_factory(users={APP_USER: pg_verifier(pg, APP_USER)})
    c1 = inst.connect()
    try:
        cur = c1.cursor()
        cur.execute("SELECT current_user, pg_backend_pid()")
        user, pid1 = cur.fetchone()
        assert user == APP_USER
        c2 = inst.connect()
        try:
            cur2 = c2.cursor()
            cur2.execute("SELECT current_user, pg_backend_pid()")
            user2, pid2 = cur2.fetchone()
            assert user2 == APP_USER and pid2 != pid1
        finally:
            c2.close()
    finally:
        c1.close()
    # a wrong password is refused at pgcoro (the verifier checks it), and keeps nothing
    with pytest.raises(psycopg2.OperationalError, match="SASL authentication failed"):
        inst.connect(password="wrong")
    inst.assert_serving()


def forced_db(pg, user=APP_USER):
    return f"host=127.0.0.1 port={pg.port} dbname=postgres user={user}"


def test_no_client_key_yet(pgcoro_factory, pg):
    """The server user's secret is a SCRAM verifier and no client of that user has logged
    in with SCRAM: PgBouncer's "wrong password type" (28P01) and its log line; once one
    has, the same database works."""
    inst = pgcoro_factory(users={APP_USER: pg_verifier(pg, APP_USER)},
                          databases={"forced": forced_db(pg), "forced2": forced_db(pg)})
    err = login_error(inst, MD5_USER, MD5_PASS, "forced")
    assert err.sqlstate == "28P01", err.fields
    assert "wrong password type" in err.fields["M"], err.fields
    assert "127.0.0.1" not in err.fields["M"] and str(pg.port) not in err.fields["M"]
    wait_until(lambda: "cannot do SCRAM authentication: password is SCRAM secret but client "
               "authentication did not provide SCRAM keys" in inst.log_text(),
               "PgBouncer's reason logged")
    # app logs in itself (with SCRAM): its key is kept, the forced database works
    assert current_user(inst, APP_USER, APP_PASS) == APP_USER
    assert current_user(inst, MD5_USER, MD5_PASS, db="forced2") == APP_USER


def test_changed_verifier_drops_the_key(pgcoro_factory, pg):
    """A reload that changes the user's verifier drops the key proven against the old one:
    a new server login waits for a client's login against the new verifier."""
    v = pg_verifier(pg, APP_USER)
    inst = pgcoro_factory(users={APP_USER: v},
                          databases={"forced": forced_db(pg), "forced2": forced_db(pg)})
    assert current_user(inst, APP_USER, APP_PASS) == APP_USER
    assert current_user(inst, MD5_USER, MD5_PASS, db="forced") == APP_USER
    other = make_verifier(APP_PASS, b"another salt 16b")
    with open(inst.userlist_path, "w") as f:
        f.write(f'"{APP_USER}" "{other}"\n"{MD5_USER}" "{MD5_PASS}"\n')
    inst.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in inst.log_text(), "reload logged")
    err = login_error(inst, MD5_USER, MD5_PASS, "forced2")
    assert err.sqlstate == "28P01" and "wrong password type" in err.fields["M"], err.fields


def test_wrong_verifier(pgcoro_factory, pg):
    """The auth_file's verifier is not PostgreSQL's: with another salt pgcoro says so
    (28P01) without sending a proof; with the same salt and iterations (another password)
    PostgreSQL refuses the proof and its error reaches the client."""
    salt = verifier_salt(pg_verifier(pg, APP_USER))
    inst = pgcoro_factory(users={APP_USER: make_verifier(APP_PASS, b"another salt 16b")})
    err = login_error(inst, APP_USER, APP_PASS, "postgres")
    assert err.sqlstate == "28P01", err.fields
    assert 'SCRAM secret for user "app" differs' in err.fields["M"], err.fields
    inst2 = pgcoro_factory(users={APP_USER: make_verifier("otherpass", salt)})
    err = login_error(inst2, APP_USER, "otherpass", "postgres")
    assert err.sqlstate == "28P01", err.fields
    assert 'password authentication failed for user "app"' in err.fields["M"], err.fields


def test_prepared_listen_cancel_on_a_pass_through_server(pgcoro_factory, pg):
    """A server logged in by SCRAM pass-through runs protocol-level prepared statements
    (transaction mode), LISTEN/NOTIFY, and is cancelled with pgcoro's own CancelRequest
    (its BackendKeyData came from pgcoro's login, not libpq's)."""
    import psycopg
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "max_prepared_statements": 10},
                          users={APP_USER: pg_verifier(pg, APP_USER)})
    with psycopg.connect(inst.dsn(), prepare_threshold=0, autocommit=True) as conn:
        for i in range(3):
            assert conn.execute("SELECT %s::int + 1", (i,)).fetchone() == (i + 1,)
    # LISTEN/NOTIFY
    listener = inst.connect()
    listener.autocommit = True
    try:
        listener.cursor().execute("LISTEN passthru_chan")
        sender = inst.connect()
        sender.autocommit = True
        try:
            sender.cursor().execute("NOTIFY passthru_chan, 'hello'")
        finally:
            sender.close()

        def heard():
            listener.poll()
            return [n.payload for n in listener.notifies]
        assert wait_until(heard, "the notification") == ["hello"]
    finally:
        listener.close()
    # cancel, once the query runs
    c = inst.connect()
    try:
        result = {}

        def run():
            try:
                c.cursor().execute("SELECT pg_sleep(60) /* passthru-cancel */")
            except Exception as e:  # noqa: BLE001 - the outcome is checked below
                result["exc"] = e
        t = threading.Thread(target=run, daemon=True)
        t.start()
        wait_until(lambda: [b for b in client_backends(pg, "postgres", APP_USER)
                            if b[2] == "active" and "passthru-cancel" in (b[3] or "")],
                   "the query running")
        c.cancel()
        t.join(30)
        assert isinstance(result.get("exc"), psycopg2.errors.QueryCanceled), result
    finally:
        c.close()
    wait_until(lambda: "cancel request sent" in inst.log_text(), "the cancel logged")
    assert "cannot build a cancel request" not in inst.log_text()
    inst.assert_serving()


def test_refused_login_with_only_old_servers(pgcoro_factory, pg):
    """The server user's password changed, RECONNECT marked the one server old (held by a
    transaction): a new login the server refuses fails the waiting client at once with the
    server's 28P01, as PgBouncer's kill_pool_logins does (the old server, closed when
    released, will serve nobody); before, the client waited for it."""
    pg.psql_super("DROP ROLE IF EXISTS chguser; SET password_encryption = 'scram-sha-256'; "
                  "CREATE ROLE chguser LOGIN PASSWORD 'pw1';")
    try:
        inst = pgcoro_factory(
            settings={"admin_users": APP_USER, "pool_mode": "transaction",
                      "query_wait_timeout": 30},
            databases={"chg": f"host=127.0.0.1 port={pg.port} dbname=postgres user=chguser "
                              "password=pw1 pool_size=2"})
        holder = inst.connect(db="chg")
        try:
            holder.cursor().execute("BEGIN; SELECT 1")
            pg.psql_super("ALTER ROLE chguser PASSWORD 'pw2';")
            admin = psycopg2.connect(host=inst.host, port=inst.port, user=APP_USER,
                                     password=APP_PASS, dbname="pgcoro", connect_timeout=30)
            try:
                admin.autocommit = True
                admin.cursor().execute("RECONNECT chg")
            finally:
                admin.close()
            err = login_error(inst, APP_USER, APP_PASS, "chg")
            assert err.sqlstate == "28P01", err.fields
            assert 'password authentication failed for user "chguser"' in err.fields["M"]
            log = inst.log_text()
            assert 'closing because: password authentication failed for user "chguser"' in log
        finally:
            holder.close()
    finally:
        pg.psql_super("DROP ROLE IF EXISTS chguser;")


@pytest.mark.parametrize("protocols,want", [("tlsv1.2", "TLSv1.2"), ("tlsv1.3", "TLSv1.3")])
def test_pass_through_login_keeps_server_tls_protocols(pgcoro_factory, pg_tls, tls_certs,
                                                       protocols, want):
    """A pass-through login (pgcoro's own, not libpq's) speaks the TLS versions
    server_tls_protocols allows, as a libpq login does: tlsv1.2 alone caps a server that
    offers 1.3, tlsv1.3 alone refuses anything older."""
    inst = pgcoro_factory(
        settings={"auth_type": "md5", "server_tls_sslmode": "verify-full",
                  "server_tls_ca_file": tls_certs.path("ca.crt"),
                  "server_tls_protocols": protocols},
        users={MD5_USER: md5_secret(MD5_PASS, MD5_USER)},
        databases={"postgres": f"host=127.0.0.1 port={pg_tls.port} dbname=postgres"})
    c = inst.connect(user=MD5_USER, password=MD5_PASS)
    try:
        cur = c.cursor()
        cur.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cur.fetchone() == (True, want)
    finally:
        c.close()


# ---- the own login is never weaker than libpq's for the same conninfo --------------------


def tls_entry(pg_tls, certs, host="localhost", extra=""):
    """A conninfo to the TLS cluster, verify-full against the test CA."""
    return (f"host={host} port={pg_tls.port} dbname=postgres sslmode=verify-full "
            f"sslrootcert={certs.path('ca.crt')} {extra}").strip()


def md5_pass_through(pgcoro_factory, databases, settings=None):
    """pgcoro logging in to DATABASES with md5user's md5 secret (its own login)."""
    s = {"auth_type": "md5"}
    s.update(settings or {})
    return pgcoro_factory(settings=s, databases=databases,
                          users={MD5_USER: md5_secret(MD5_PASS, MD5_USER)})


def make_crl(certs, d, revoke):
    """A CRL of the test CA in directory D (made here), revoking the server's certificate
    when REVOKE; returns its path."""
    os.makedirs(d)
    cnf = os.path.join(d, "ca.cnf")
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "crlnumber"), "w") as f:
        f.write("01\n")
    with open(cnf, "w") as f:
        f.write(f"[ca]\ndefault_ca=c\n[c]\ndatabase={d}/index.txt\ncrlnumber={d}/crlnumber\n"
                f"default_md=sha256\ndefault_crl_days=2\ncertificate={certs.path('ca.crt')}\n"
                f"private_key={certs.path('ca.key')}\n")
    crl = os.path.join(d, "crl.pem")
    steps = ([["-revoke", certs.path("server.crt")]] if revoke else []) + [["-gencrl", "-out", crl]]
    for args in steps:
        r = subprocess.run(["openssl", "ca", "-config", cnf] + args, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    return crl


def crl_dir(crl, d):
    """Directory D holding CRL under its hashed name (what sslcrldir reads)."""
    os.makedirs(d)
    h = subprocess.run(["openssl", "crl", "-hash", "-noout", "-in", crl], capture_output=True,
                       text=True, timeout=60, check=True).stdout.strip()
    shutil.copy(crl, os.path.join(d, h + ".r0"))
    return d


def test_pass_through_checks_revocation_lists(pgcoro_factory, pg_tls, tls_certs, tmp_path):
    """sslcrl / sslcrldir as libpq: a revoked server certificate fails the own login (it
    was ignored before, so the login went through where libpq refuses); a CRL revoking
    nothing lets it through; an unreadable CRL file is refused, not ignored."""
    revoked = make_crl(tls_certs, str(tmp_path / "revoked"), revoke=True)
    clean = make_crl(tls_certs, str(tmp_path / "clean"), revoke=False)
    dbs = {"clean": tls_entry(pg_tls, tls_certs, extra=f"sslcrl={clean}"),
           "revoked": tls_entry(pg_tls, tls_certs, extra=f"sslcrl={revoked}"),
           "revokeddir": tls_entry(pg_tls, tls_certs,
                                   extra=f"sslcrldir={crl_dir(revoked, str(tmp_path / 'd'))}"),
           "nocrl": tls_entry(pg_tls, tls_certs, extra=f"sslcrl={tmp_path}/missing.pem")}
    inst = md5_pass_through(pgcoro_factory, dbs)
    assert current_user(inst, MD5_USER, MD5_PASS, "clean") == MD5_USER
    for db in ("revoked", "revokeddir"):
        err = login_error(inst, MD5_USER, MD5_PASS, db)
        assert err.sqlstate == "08006" and "certificate revoked" in err.fields["M"], (db, err.fields)
    err = login_error(inst, MD5_USER, MD5_PASS, "nocrl")
    assert "could not load SSL certificate revocation list file" in err.fields["M"], err.fields
    inst.assert_serving()


def test_pass_through_hostaddr_verifies_host(pgcoro_factory, pg_tls, tls_certs):
    """hostaddr is where to connect, host the name verify-full checks (and SNI): before,
    the address was checked, so host=wrong.example hostaddr=127.0.0.1 was accepted. Lists
    pair by index; lists of different lengths are refused as libpq refuses them."""
    dbs = {"wrong": tls_entry(pg_tls, tls_certs, host="wrong.example", extra="hostaddr=127.0.0.1"),
           "right": tls_entry(pg_tls, tls_certs, extra="hostaddr=127.0.0.1"),
           "pairs": tls_entry(pg_tls, tls_certs, host="localhost,wrong.example",
                              extra="hostaddr=127.0.0.1,127.0.0.1"),
           "noname": (f"hostaddr=127.0.0.1 port={pg_tls.port} dbname=postgres "
                      f"sslmode=verify-full sslrootcert={tls_certs.path('ca.crt')}"),
           "lengths": tls_entry(pg_tls, tls_certs, host="localhost,localhost",
                                extra="hostaddr=127.0.0.1")}
    inst = md5_pass_through(pgcoro_factory, dbs)
    err = login_error(inst, MD5_USER, MD5_PASS, "wrong")
    assert err.sqlstate == "08006", err.fields
    assert 'does not match host name "wrong.example"' in err.fields["M"], err.fields
    assert current_user(inst, MD5_USER, MD5_PASS, "right") == MD5_USER
    assert current_user(inst, MD5_USER, MD5_PASS, "pairs") == MD5_USER  # the first entry
    err = login_error(inst, MD5_USER, MD5_PASS, "noname")
    assert "host name must be specified" in err.fields["M"], err.fields
    err = login_error(inst, MD5_USER, MD5_PASS, "lengths")
    assert err.sqlstate == "08001", err.fields
    assert "could not match 2 host names to 1 hostaddr values" in err.fields["M"], err.fields
    inst.assert_serving()


def test_scram_pass_through_binds_the_tls_channel(pgcoro_factory, pg, pg_tls, tls_certs):
    """Over TLS the own SCRAM login binds to the server's certificate as libpq 15 does:
    SCRAM-SHA-256-PLUS with tls-server-end-point by default (PostgreSQL checks the
    binding: the login succeeding proves the hash), SCRAM-SHA-256 with channel_binding=
    disable; channel_binding=require is honoured (refused before) and fails the login
    where binding is impossible (no TLS; an md5 server)."""
    plain = f"host=127.0.0.1 port={pg.port} dbname=postgres"
    dbs = {"prefer": tls_entry(pg_tls, tls_certs),
           "require": tls_entry(pg_tls, tls_certs, extra="channel_binding=require"),
           "disable": tls_entry(pg_tls, tls_certs, extra="channel_binding=disable"),
           "plainreq": f"{plain} channel_binding=require",
           "bogus": f"{plain} channel_binding=maybe"}
    inst = pgcoro_factory(settings={"verbose": "1"}, databases=dbs,
                          users={APP_USER: pg_verifier(pg_tls, APP_USER)})
    for db in ("prefer", "require", "disable"):
        c = inst.connect(db=db)
        try:
            cur = c.cursor()
            cur.execute("SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert cur.fetchone() == (APP_USER, True), db
        finally:
            c.close()
    log = inst.log_text()
    assert f"as {APP_USER}: logged in over TLS with SCRAM-SHA-256-PLUS" in log, log
    assert f"as {APP_USER}: logged in over TLS with SCRAM-SHA-256\n" in log, log
    err = login_error(inst, APP_USER, APP_PASS, "plainreq")
    assert err.sqlstate == "28P01", err.fields
    assert "channel binding is required, but server did not offer" in err.fields["M"], err.fields
    err = login_error(inst, APP_USER, APP_PASS, "bogus")
    assert err.sqlstate == "08001", err.fields
    assert 'invalid channel_binding value: "maybe"' in err.fields["M"], err.fields
    # md5: libpq's check_expected_areq refuses any request but SASL's under require
    md5 = md5_pass_through(pgcoro_factory, {
        "md5req": tls_entry(pg_tls, tls_certs, extra="channel_binding=require")})
    err = login_error(md5, MD5_USER, MD5_PASS, "md5req")
    assert "channel binding required but not supported by server's authentication request" \
        in err.fields["M"], err.fields
    inst.assert_serving("prefer")


def test_pass_through_port_and_connect_timeout_as_libpq(pgcoro_factory, pg):
    """A port libpq refuses is refused (atoi made "54x32" port 54 and "abc" 5432); so is a
    connect_timeout that is not an integer; a connect_timeout under 2 s is 2 s."""
    base = "host=127.0.0.1 dbname=postgres"
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(1)  # nobody accepts: the connect succeeds, no answer ever comes
    try:
        dbs = {"garbage": f"{base} port=54x32", "big": f"{base} port=70000",
               "word": f"{base} port=abc",
               "ok": f"{base} port={pg.port} connect_timeout=3",
               "frac": f"{base} port={pg.port} connect_timeout=0.5",
               "short": f"{base} port={hang.getsockname()[1]} connect_timeout=1 sslmode=disable"}
        inst = md5_pass_through(pgcoro_factory, dbs)
        for db, want in (("garbage", 'invalid integer value "54x32" for connection option "port"'),
                         ("word", 'invalid integer value "abc" for connection option "port"'),
                         ("big", 'invalid port number: "70000"'),
                         ("frac", 'invalid integer value "0.5" for connection option '
                                  '"connect_timeout"')):
            err = login_error(inst, MD5_USER, MD5_PASS, db)
            assert err.sqlstate == "08001" and want in err.fields["M"], (db, err.fields)
        assert current_user(inst, MD5_USER, MD5_PASS, "ok") == MD5_USER
        t0 = time.monotonic()
        err = login_error(inst, MD5_USER, MD5_PASS, "short")
        waited = time.monotonic() - t0
        assert "timeout expired" in err.fields["M"], err.fields
        assert waited >= 1.95, waited  # a lower bound only: the timer cannot fire earlier
    finally:
        hang.close()
    inst.assert_serving()


def test_pass_through_abstract_unix_socket(pgcoro_factory):
    """host=@name is an abstract unix socket, as libpq has it (it was looked up in DNS)."""
    name = f"pgcoro-test-{os.getpid()}-{time.monotonic_ns()}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(f"\0{name}/.s.PGSQL.5433")
    srv.listen(4)
    srv.settimeout(60)

    def serve():
        # read each startup packet, answer with an error naming this server
        try:
            while True:
                c, _ = srv.accept()
                with c:
                    n = struct.unpack("!I", c.recv(4, socket.MSG_WAITALL))[0]
                    c.recv(n - 4, socket.MSG_WAITALL)
                    body = b"SFATAL\0C28000\0Mthe abstract socket answers\0\0"
                    c.sendall(b"E" + struct.pack("!I", len(body) + 4) + body)
        except OSError:
            pass
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        inst = md5_pass_through(pgcoro_factory, {"abs": f"host=@{name} port=5433 dbname=x"})
        err = login_error(inst, MD5_USER, MD5_PASS, "abs")
        assert "the abstract socket answers" in err.fields["M"], err.fields
    finally:
        srv.close()
        t.join(10)


def test_pass_through_refuses_a_readable_key_file(pgcoro_factory, pg_tls, tls_certs, tmp_path):
    """sslkey readable by group or others is refused with libpq's words (it was loaded);
    a private copy (0600) is used."""
    open_key = str(tmp_path / "open.key")
    shutil.copy(tls_certs.path(f"client-{MD5_USER}.key"), open_key)
    os.chmod(open_key, 0o644)
    cert = tls_certs.path(f"client-{MD5_USER}.crt")
    dbs = {"open": tls_entry(pg_tls, tls_certs, extra=f"sslcert={cert} sslkey={open_key}"),
           "private": tls_entry(pg_tls, tls_certs,
                                extra=f"sslcert={cert} "
                                      f"sslkey={client_key(tls_certs, f'client-{MD5_USER}')}")}
    inst = md5_pass_through(pgcoro_factory, dbs)
    err = login_error(inst, MD5_USER, MD5_PASS, "open")
    assert f'private key file "{open_key}" has group or world access' in err.fields["M"], \
        err.fields
    assert current_user(inst, MD5_USER, MD5_PASS, "private") == MD5_USER
    inst.assert_serving()
