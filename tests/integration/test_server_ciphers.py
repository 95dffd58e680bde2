"""server_tls_ciphers and server_tls13_ciphers (PgBouncer's): the ciphers pgcoro offers
PostgreSQL. libpq cannot set them, so while either asks for other than OpenSSL's own, every
server login that may use TLS is pgcoro's own (srvconnect.c), whatever the credential: the
auth_file's plain password, a conninfo password, an md5 secret; the LISTEN connection and
replication connections too. pg_stat_ssl on the server shows the cipher in use. A list
OpenSSL does not take is refused at start, by a reload (the running configuration stays)
and by a console SET; a change replaces the servers as any server TLS change."""

import hashlib
import re
import subprocess

import psycopg2
import pytest

from conftest import (APP_PASS, APP_USER, MD5_PASS, MD5_USER, REPL_PASS, REPL_USER, Wire,
                      edit_and_reload, wait_until)

pytestmark = pytest.mark.pooler_only

ADMIN, ADMIN_PASS = "admin", "adminpw"
CHACHA = "TLS_CHACHA20_POLY1305_SHA256"
AES128 = "TLS_AES_128_GCM_SHA256"
# the test certificates' keys are EC (prime256v1): TLS 1.2 suites authenticate with ECDSA
ECDSA_AES128 = "ECDHE-ECDSA-AES128-GCM-SHA256"
CHANGED = "database configuration changed"


def tls_entry(pg_tls, certs, extra=""):
    return (f"host=127.0.0.1 port={pg_tls.port} dbname=postgres sslmode=verify-full "
            f"sslrootcert={certs.path('ca.crt')} {extra}").strip()


def start(pgcoro_factory, pg_tls, certs, settings, extra="", users=None):
    s = {"admin_users": ADMIN}
    s.update(settings)
    u = {ADMIN: ADMIN_PASS}
    u.update(users or {})
    return pgcoro_factory(settings=s, users=u, replace_databases=True,
                          databases={"postgres": tls_entry(pg_tls, certs, extra)})


def server(inst, user=APP_USER, password=APP_PASS):
    """(TLS version, cipher, backend pid) of the server a new client gets."""
    c = inst.connect(user=user, password=password)
    try:
        cur = c.cursor()
        cur.execute("SELECT version, cipher, pid FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        return cur.fetchone()
    finally:
        c.close()


def cipher(inst, user=APP_USER, password=APP_PASS):
    return server(inst, user, password)[:2]


def test_default_is_openssls(pgcoro_factory, pg_tls, tls_certs):
    """Control: without the keys, libpq's connection and OpenSSL's first choice."""
    inst = start(pgcoro_factory, pg_tls, tls_certs, {})
    assert cipher(inst) == ("TLSv1.3", "TLS_AES_256_GCM_SHA384")
    assert "own login" not in inst.log_text()


def test_tls13_suite(pgcoro_factory, pg_tls, tls_certs):
    """server_tls13_ciphers: the auth_file's plain password, once libpq's login, is now
    pgcoro's own with that suite."""
    inst = start(pgcoro_factory, pg_tls, tls_certs,
                 {"server_tls13_ciphers": CHACHA, "log_level": "debug"})
    assert cipher(inst) == ("TLSv1.3", CHACHA)
    assert "(pgcoro's own login)" in inst.log_text()


def test_tls12_cipher_list(pgcoro_factory, pg_tls, tls_certs):
    """server_tls_ciphers with server_tls_protocols = tlsv1.2: that cipher, where OpenSSL's
    list would have given ECDHE-ECDSA-AES256-GCM-SHA384."""
    inst = start(pgcoro_factory, pg_tls, tls_certs,
                 {"server_tls_protocols": "tlsv1.2", "server_tls_ciphers": ECDSA_AES128})
    assert cipher(inst) == ("TLSv1.2", ECDSA_AES128)


def test_conninfo_password(pgcoro_factory, pg_tls, tls_certs):
    """A password in the database entry (libpq's login before): the same."""
    inst = start(pgcoro_factory, pg_tls, tls_certs, {"server_tls13_ciphers": CHACHA},
                 extra=f"user={APP_USER} password={APP_PASS}",
                 users={APP_USER: APP_PASS})
    assert cipher(inst) == ("TLSv1.3", CHACHA)


def test_md5_pass_through(pgcoro_factory, pg_tls, tls_certs):
    """An md5 secret (pgcoro's own login already) gets the ciphers too."""
    secret = "md5" + hashlib.md5((MD5_PASS + MD5_USER).encode()).hexdigest()
    inst = start(pgcoro_factory, pg_tls, tls_certs,
                 {"auth_type": "md5", "server_tls_protocols": "tlsv1.2",
                  "server_tls_ciphers": ECDSA_AES128}, users={MD5_USER: secret})
    assert cipher(inst, MD5_USER, MD5_PASS) == ("TLSv1.2", ECDSA_AES128)


def test_listen_connection(pgcoro_factory, pg_tls, tls_certs):
    """Transaction mode's LISTEN connection (notify.c) logs in with the ciphers as well."""
    inst = start(pgcoro_factory, pg_tls, tls_certs,
                 {"pool_mode": "transaction", "server_tls13_ciphers": CHACHA},
                 users={APP_USER: APP_PASS})
    c = inst.connect()
    c.autocommit = True
    try:
        c.cursor().execute("LISTEN ciphers_ch")
        sql = ("SELECT s.cipher FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
               "WHERE a.application_name = 'pgcoro listener'")
        got = wait_until(lambda: pg_tls.psql_super(sql).strip(), "the listener connection")
        assert got == CHACHA
    finally:
        c.close()


def test_replication_connection(pgcoro_factory, pg_tls, tls_certs):
    """A replication connection (its own server, made as the client's) too."""
    inst = start(pgcoro_factory, pg_tls, tls_certs, {"server_tls13_ciphers": CHACHA},
                 users={REPL_USER: REPL_PASS})
    with Wire.to(inst) as w:
        w.login(REPL_USER, REPL_PASS, "postgres", replication="database")
        assert w.query("IDENTIFY_SYSTEM")
        sql = ("SELECT s.cipher FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
               f"WHERE a.backend_type = 'walsender' AND a.usename = '{REPL_USER}'")
        assert pg_tls.psql_super(sql).strip() == CHACHA
        w.terminate()


def test_no_shared_cipher(pgcoro_factory, pg_tls, tls_certs):
    """A TLS 1.2 list PostgreSQL cannot use (RSA suites; its key is EC): the handshake
    fails, the client gets the server login's error and pgcoro logs it."""
    inst = start(pgcoro_factory, pg_tls, tls_certs,
                 {"server_tls_protocols": "tlsv1.2",
                  "server_tls_ciphers": "ECDHE-RSA-AES128-GCM-SHA256"})
    with pytest.raises(psycopg2.OperationalError) as e:
        cipher(inst)
    assert "server connection failed" in str(e.value), str(e.value)
    assert "handshake failure" in str(e.value), str(e.value)
    log = inst.log_text()
    assert re.search(r"server \d+ \(postgres/app\): connection failed: .*handshake failure",
                     log), log


def test_without_tls(pgcoro_factory, pg):
    """Ciphers do not matter where TLS cannot be used: a unix socket stays libpq's; a TCP
    server without ssl is reached by pgcoro's own login, which, as libpq's sslmode prefer,
    goes on without TLS."""
    inst = pgcoro_factory(settings={"server_tls13_ciphers": CHACHA, "log_level": "debug"},
                          databases={"unix": f"host={pg.sockdir} port={pg.port} "
                                             "dbname=postgres"})
    for db in ("postgres", "unix"):
        c = inst.connect(db=db)
        try:
            cur = c.cursor()
            cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert cur.fetchone() == (False,)
        finally:
            c.close()
    log = inst.log_text()
    assert re.search(r"server \d+ \(postgres/app\): connecting \(pgcoro's own login\)", log)
    assert re.search(r"server \d+ \(unix/app\): connecting\n", log), log


def test_no_password(pgcoro_factory, pg_tls, tls_certs):
    """A server user without a password anywhere: libpq's words when the server asks for
    one (a trust server would take the login)."""
    inst = start(pgcoro_factory, pg_tls, tls_certs, {"server_tls13_ciphers": CHACHA},
                 extra=f"user={REPL_USER}")
    with pytest.raises(psycopg2.OperationalError) as e:
        cipher(inst)
    assert "fe_sendauth: no password supplied" in str(e.value), str(e.value)


def run_pgcoro(pgcoro_bin, path, timeout=60):
    return subprocess.run([pgcoro_bin, "-c", str(path)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("key,value,reason", [
    ("server_tls_ciphers", "NO-SUCH-CIPHER", "no cipher match"),
    ("server_tls13_ciphers", "TLS_NO_SUCH_SUITE",
     "failed to set the TLSv1.3 cipher suites"),
])
def test_bad_list_refused_at_start(pgcoro_bin, tmp_path, key, value, reason):
    path = tmp_path / "pgcoro.ini"
    path.write_text(f"[pgcoro]\nlisten_addr = 127.0.0.1\nunix_socket_dir =\n"
                    f"auth_type = trust\n{key} = {value}\n[databases]\n")
    r = run_pgcoro(pgcoro_bin, path)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert f'{path}:5: invalid value "{value}" for {key}: ' in out, out
    assert reason in out, out


def console_set(inst, key, value):
    admin = psycopg2.connect(host=inst.host, port=inst.port, user=ADMIN, password=ADMIN_PASS,
                             dbname="pgbouncer", connect_timeout=30)
    admin.autocommit = True
    try:
        admin.cursor().execute(f"SET {key} = '{value}'")
    finally:
        admin.close()


def test_reload_and_set(pgcoro_factory, pg_tls, tls_certs):
    """A bad list on reload fails it (the running ciphers stay, the server too); a good
    one replaces the servers (PgBouncer's "database configuration changed"); a SET of a
    bad list is refused, a good one applied."""
    inst = start(pgcoro_factory, pg_tls, tls_certs, {"server_tls13_ciphers": CHACHA})
    version, suite, first = server(inst)
    assert (version, suite) == ("TLSv1.3", CHACHA)

    edit_and_reload(inst, f"server_tls13_ciphers = {CHACHA}", "server_tls13_ciphers = BOGUS")
    wait_until(lambda: "reload failed" in inst.log_text(), "the failed reload")
    assert re.search(r"reload failed, the running configuration stays in force: .*"
                     r"invalid value \"BOGUS\" for server_tls13_ciphers: failed to set "
                     r"the TLSv1.3 cipher suites", inst.log_text()), inst.log_tail()
    assert server(inst) == ("TLSv1.3", CHACHA, first)   # the same server, kept
    assert CHANGED not in inst.log_text()

    edit_and_reload(inst, "server_tls13_ciphers = BOGUS", f"server_tls13_ciphers = {AES128}")
    wait_until(lambda: CHANGED in inst.log_text(), "the idle server replaced")
    version, suite, second = server(inst)
    assert (version, suite) == ("TLSv1.3", AES128) and second != first

    with pytest.raises(psycopg2.Error) as e:
        console_set(inst, "server_tls_ciphers", "NO-SUCH-CIPHER")
    assert "no cipher match" in str(e.value), str(e.value)
    console_set(inst, "server_tls13_ciphers", CHACHA)
    wait_until(lambda: inst.log_text().count(CHANGED) == 2, "the idle server replaced again")
    assert server(inst)[:2] == ("TLSv1.3", CHACHA)
