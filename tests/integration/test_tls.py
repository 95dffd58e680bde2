"""TLS on both sides: clients to pgcoro (SSLRequest and PostgreSQL 17's direct TLS,
client_tls_sslmode, client certificates, auth_type cert) and pgcoro to a PostgreSQL with
ssl=on (libpq's sslmode=verify-full, the relay through libpq's TLS handle). Certificates
are made by the test with the openssl CLI (conftest's tls_certs)."""

import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import threading

import psycopg2
import pytest

from conftest import (APP_PASS, APP_USER, MD5_USER, RssSampler, Wire, clean_env, client_cert,
                      read_copy_out, run_pgbench, run_psql, tls_settings, verify_full,
                      vmrss_kb, wait_until)

pytestmark = pytest.mark.pooler_only

SSL_REQUEST = struct.pack("!II", 8, 80877103)


def tls_databases(pg_tls, certs, rootcert="ca.crt"):
    """pgcoro's databases on the ssl=on PostgreSQL, verify-full with ROOTCERT."""
    conn = (f"host=127.0.0.1 port={pg_tls.port} sslmode=verify-full "
            f"sslrootcert={certs.path(rootcert)}")
    return {"postgres": conn + " dbname=postgres", "bench": conn + " dbname=bench"}


def start_tls(pgcoro_factory, pg_tls, certs, mode="allow", rootcert="ca.crt", **more):
    return pgcoro_factory(settings=tls_settings(certs, mode, **more),
                          databases=tls_databases(pg_tls, certs, rootcert),
                          replace_databases=True)


SERVER_SSL_SQL = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def test_psql_verify_full_both_hops(pgcoro_factory, pg_tls, tls_certs):
    inst = start_tls(pgcoro_factory, pg_tls, tls_certs, "require")
    # client -> pgcoro: verify-full against the CA, by IP and by name (SANs)
    for host in ("127.0.0.1", "localhost"):
        r = run_psql(pg_tls, inst, SERVER_SSL_SQL, host=host, **verify_full(tls_certs))
        assert r.stdout.strip() == "t"  # pgcoro -> PostgreSQL is TLS too
    r = subprocess.run([pg_tls.psql_bin, "-X", "-d",
                        f"host=127.0.0.1 port={inst.port} user={APP_USER} dbname=postgres "
                        f"sslmode=verify-full sslrootcert={tls_certs.path('ca.crt')}",
                        "-c", "\\conninfo"], capture_output=True, text=True, timeout=60,
                       env=clean_env(PGPASSWORD=APP_PASS))
    assert r.returncode == 0, r.stderr
    assert "SSL connection (protocol: TLSv1.3" in r.stdout, r.stdout
    inst_log = inst.log_text()
    assert "TLS error" not in inst_log


def test_require_refuses_plain_clients_tcp_not_unix(pgcoro_factory, pg_tls, tls_certs):
    inst = start_tls(pgcoro_factory, pg_tls, tls_certs, "require")
    r = run_psql(pg_tls, inst, "SELECT 1", check=False, sslmode="disable")
    assert r.returncode != 0
    assert "TLS required: pgcoro's client_tls_sslmode is require" in r.stderr, r.stderr
    # unix sockets are exempt (no TLS there: SSLRequest answered 'N')
    r = run_psql(pg_tls, inst, "SELECT 1", host=inst.sockdir, sslmode="prefer")
    assert r.stdout.strip() == "1"
    with Wire(None, inst.port, unix_dir=inst.sockdir) as w:
        w.send(SSL_REQUEST)
        assert w.recv_exact(1) == b"N"
        w.login()


def test_client_demanding_tls_when_pgcoro_has_none(pgcoro_factory, pg_tls, tls_certs):
    inst = pgcoro_factory(databases=tls_databases(pg_tls, tls_certs), replace_databases=True)
    r = run_psql(pg_tls, inst, "SELECT 1", check=False, sslmode="require")
    assert r.returncode != 0
    assert "server does not support SSL, but SSL was required" in r.stderr, r.stderr
    # direct TLS to a pgcoro without TLS: refused, nothing else happens
    ctx = ssl.create_default_context(cafile=tls_certs.path("ca.crt"))
    ctx.set_alpn_protocols(["postgresql"])
    with socket.create_connection((inst.host, inst.port), timeout=20) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            ctx.wrap_socket(raw, server_hostname="localhost")
    r = run_psql(pg_tls, inst, SERVER_SSL_SQL, sslmode="prefer")
    assert r.stdout.strip() == "t"


def test_wrong_ca_refused_by_client(pgcoro_factory, pg_tls, tls_certs):
    inst = start_tls(pgcoro_factory, pg_tls, tls_certs, "allow")
    r = run_psql(pg_tls, inst, "SELECT 1", check=False, sslmode="verify-ca",
                 sslrootcert=tls_certs.path("wrong_ca.crt"))
    assert r.returncode != 0
    assert "certificate verify failed" in r.stderr, r.stderr
    assert inst.alive()


def test_wrong_ca_refused_by_pgcoro_towards_server(pgcoro_factory, pg_tls, tls_certs):
    inst = start_tls(pgcoro_factory, pg_tls, tls_certs, "allow", rootcert="wrong_ca.crt")
    r = run_psql(pg_tls, inst, "SELECT 1", check=False, **verify_full(tls_certs))
    assert r.returncode != 0
    assert "certificate verify failed" in r.stderr, r.stderr


def test_verify_ca_needs_a_client_certificate_from_the_ca(pgcoro_factory, pg_tls, tls_certs):
    inst = start_tls(pgcoro_factory, pg_tls, tls_certs, "verify-ca")
    r = run_psql(pg_tls, inst, "SELECT 1", **verify_full(tls_certs),
                 **client_cert(tls_certs, f"client-{APP_USER}"))
    assert r.stdout.strip() == "1"
    r = run_psql(pg_tls, inst, "SELECT 1", check=False, **verify_full(tls_certs))
    assert r.returncode != 0, r.stdout
    r = run_psql(pg_tls, inst, "SELECT 1", check=False, **verify_full(tls_certs),
                 **client_cert(tls_certs, f"wrong-client-{APP_USER}"))
    assert r.returncode != 0, r.stdout
    assert re.search(r"unknown ca|certificate verify failed|alert", r.stderr, re.I), r.stderr
    # psql may exit on the alert before pgcoro has written its line
    wait_until(lambda: "unable to get local issuer certificate" in inst.log_text(),
               "the verification failure logged")
    assert inst.alive()


def test_auth_cert_user_from_the_cn(pgcoro_factory, pg_tls, tls_certs):
    inst = start_tls(pgcoro_factory, pg_tls, tls_certs, "allow", auth_type="cert")
    r = run_psql(pg_tls, inst, "SELECT current_user", password=None,
                 **verify_full(tls_certs), **client_cert(tls_certs, f"client-{APP_USER}"))
    assert r.stdout.strip() == APP_USER
    # the CN is app, the user md5user: refused
    r = run_psql(pg_tls, inst, "SELECT 1", user=MD5_USER, password=None, check=False,
                 **verify_full(tls_certs), **client_cert(tls_certs, f"client-{APP_USER}"))
    assert r.returncode != 0
    assert f'certificate authentication failed for user "{MD5_USER}"' in r.stderr, r.stderr
    # no certificate, or no TLS at all
    for conn in (verify_full(tls_certs), {"sslmode": "disable"}):
        r = run_psql(pg_tls, inst, "SELECT 1", password=None, check=False, **conn)
        assert r.returncode != 0
        assert "connection requires a valid client certificate" in r.stderr, r.stderr


def direct_tls(inst, certs, alpn=("postgresql",)):
    ctx = ssl.create_default_context(cafile=certs.path("ca.crt"))
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    raw = socket.create_connection((inst.host, inst.port), timeout=20)
    try:
        return ctx.wrap_socket(raw, server_hostname="localhost")
    except Exception:
        raw.close()
        raise


def wire_over(sock):
    """A Wire speaking over SOCK (a TLS socket made here)."""
    w = Wire.__new__(Wire)
    w.sock, w.buf, w.nsent, w.nrecv = sock, b"", 0, 0
    w.auth_codes, w.params, w.notices, w.backend_key, w.negotiate = [], {}, [], None, None
    return w


def test_direct_tls_with_alpn(pgcoro_factory, pg_tls, tls_certs):
    inst = start_tls(pgcoro_factory, pg_tls, tls_certs, "require")
    s = direct_tls(inst, tls_certs)
    assert s.selected_alpn_protocol() == "postgresql"
    with wire_over(s) as w:
        w.login()
        assert w.query(SERVER_SSL_SQL) == [["t"]]
        assert w.query("SELECT 6 * 7") == [["42"]]
        w.terminate()


def test_direct_tls_without_alpn_refused(pgcoro_factory, pg_tls, tls_certs):
    inst = start_tls(pgcoro_factory, pg_tls, tls_certs, "allow")
    s = direct_tls(inst, tls_certs, alpn=None)
    with wire_over(s) as w:
        w.send(Wire.startup_packet({"user": APP_USER, "database": "postgres"}))
        err = w.expect_error()
        assert err["C"] == "08P01"
        assert "without ALPN" in err["M"]
    # another protocol offered: the handshake fails with an alert
    with pytest.raises(ssl.SSLError):
        direct_tls(inst, tls_certs, alpn=("http/1.1",)).close()
    inst.assert_serving()


def test_unencrypted_bytes_after_ssl_request(pgcoro_factory, pg_tls, tls_certs):
    inst = start_tls(pgcoro_factory, pg_tls, tls_certs, "allow")
    with Wire.to(inst) as w:
        w.send(SSL_REQUEST + Wire.startup_packet({"user": APP_USER, "database": "postgres"}))
        # answered in plain text, never 'S' (the startup would be taken for TLS)
        data = w.recv_exact(1)
        assert data == b"E"
        w.buf = b"E" + w.buf
        err = w.expect_error()
        assert err["C"] == "08P01" and "unencrypted data after SSL request" in err["M"]


def test_reload_swaps_the_certificate(pgcoro_factory, pg_tls, tls_certs):
    tls_certs.issue("server2", "localhost", "wrong_ca", san="DNS:localhost,IP:127.0.0.1")
    inst = start_tls(pgcoro_factory, pg_tls, tls_certs, "allow")
    run_psql(pg_tls, inst, "SELECT 1", **verify_full(tls_certs))
    held = inst.connect(sslmode="verify-full", sslrootcert=tls_certs.path("ca.crt"))
    with open(inst.config_path) as f:
        text = f.read()
    with open(inst.config_path, "w") as f:
        f.write(text.replace(tls_certs.path("server.crt"), tls_certs.path("server2.crt"))
                .replace(tls_certs.path("server.key"), tls_certs.path("server2.key")))
    os.kill(inst.pid, signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in inst.log_text(), "reload")
    r = run_psql(pg_tls, inst, "SELECT 1", check=False, **verify_full(tls_certs))
    assert r.returncode != 0 and "certificate verify failed" in r.stderr, r.stderr
    run_psql(pg_tls, inst, "SELECT 1",
             **verify_full(tls_certs, sslrootcert=tls_certs.path("wrong_ca.crt")))
    cur = held.cursor()  # the session that began before the swap goes on
    cur.execute("SELECT 2")
    assert cur.fetchone() == (2,)
    held.close()


def test_bad_tls_files_refused_at_check_and_reload(pgcoro_factory, pgcoro_bin, pg_tls,
                                                   tls_certs):
    inst = start_tls(pgcoro_factory, pg_tls, tls_certs, "allow")
    with open(inst.config_path) as f:
        text = f.read()
    with open(inst.config_path, "w") as f:
        f.write(text.replace(tls_certs.path("server.key"), tls_certs.path("client-app.key")))
    r = subprocess.run([pgcoro_bin, "--check-config",
                        inst.config_path], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "client_tls_key_file" in r.stderr, r.stderr
    os.kill(inst.pid, signal.SIGHUP)
    wait_until(lambda: "reload failed" in inst.log_text(), "failed reload")
    run_psql(pg_tls, inst, "SELECT 1", **verify_full(tls_certs))


def test_pgbench_through_both_tls_hops(pgcoro_factory, pg_tls, tls_certs):
    inst = start_tls(pgcoro_factory, pg_tls, tls_certs, "require", pool_mode="transaction",
                     default_pool_size=4)
    argv = [pg_tls.pgbench_bin, "-n", "-c", "8", "-j", "2", "-T", "3", "-h", "127.0.0.1",
            "-p", str(inst.port), "-U", APP_USER, "bench"]
    run_pgbench(argv, clean_env(PGPASSWORD=APP_PASS, PGCONNECT_TIMEOUT=60,
                                PGSSLMODE="verify-full", PGSSLROOTCERT=tls_certs.path("ca.crt")))
    r = run_psql(pg_tls, inst, "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a "
                 "USING (pid) WHERE a.datname = 'bench' AND NOT s.ssl", db="bench",
                 **verify_full(tls_certs))
    assert r.stdout.strip() == "0"  # every server connection pgcoro made is TLS


ROWS = 1_000_000
WIDTH = 1000
LIMIT_KB = 100 * 1024


def test_1gb_copy_through_both_tls_hops(pgcoro_factory, pg_tls, tls_certs):
    inst = start_tls(pgcoro_factory, pg_tls, tls_certs, "require")
    run_psql(pg_tls, inst, "SELECT 1", **verify_full(tls_certs))  # warm up
    baseline = vmrss_kb(inst.pid)
    sql = f"COPY (SELECT repeat('x', {WIDTH}) FROM generate_series(1, {ROWS})) TO STDOUT"
    dsn = (f"host=127.0.0.1 port={inst.port} user={APP_USER} dbname=postgres "
           f"sslmode=verify-full sslrootcert={tls_certs.path('ca.crt')}")
    with RssSampler(inst.pid) as rss:
        rc, total, err = read_copy_out([pg_tls.psql_bin, "-X", "-v", "ON_ERROR_STOP=1", "-d", dsn,
                                        "-c", sql], clean_env(PGPASSWORD=APP_PASS))
    assert rc == 0, err
    assert total == ROWS * (WIDTH + 1), f"received {total} bytes"
    growth = rss.peak - baseline
    assert rss.count > 0
    assert growth < LIMIT_KB, f"pgcoro RSS grew by {growth} kB (baseline {baseline} kB)"
    run_psql(pg_tls, inst, "SELECT 1", **verify_full(tls_certs))


def test_copy_in_through_both_tls_hops(pgcoro_factory, pg_tls, tls_certs):
    """The client -> server direction: 200 MB of COPY FROM STDIN, row count and bytes
    checked on the server."""
    inst = start_tls(pgcoro_factory, pg_tls, tls_certs, "require")
    rows, width = 200_000, 1000
    dsn = (f"host=127.0.0.1 port={inst.port} user={APP_USER} dbname=postgres "
           f"sslmode=verify-full sslrootcert={tls_certs.path('ca.crt')}")
    proc = subprocess.Popen([pg_tls.psql_bin, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
                             dsn, "-c", "CREATE TEMP TABLE t (x text)", "-c",
                             "COPY t FROM STDIN", "-c",
                             "SELECT count(*), sum(length(x)) FROM t"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=clean_env(PGPASSWORD=APP_PASS))
    try:
        line = b"y" * width + b"\n"
        chunk = line * 1000
        for _ in range(rows // 1000):
            proc.stdin.write(chunk)
        proc.stdin.close()
        out = proc.stdout.read().decode()
        err = proc.stderr.read().decode(errors="replace")
        rc = proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert rc == 0, err
    assert out.split()[-1] == f"{rows}|{rows * width}", out


def test_stalled_handshake_ends_at_login_timeout(pgcoro_factory, pg_tls, tls_certs):
    inst = start_tls(pgcoro_factory, pg_tls, tls_certs, "allow", client_login_timeout=1)
    with Wire.to(inst) as w:
        w.send(SSL_REQUEST)
        assert w.recv_exact(1) == b"S"
        # no ClientHello: pgcoro closes the connection, sending nothing in plain text
        assert w.at_eof(timeout=20)
        assert w.buf == b""
    wait_until(lambda: "client_login_timeout" in inst.log_text(), "login timeout logged")
    run_psql(pg_tls, inst, "SELECT 1", **verify_full(tls_certs))


def test_server_tls_keys_as_conninfo_defaults(pgcoro_factory, pg_tls, tls_certs):
    """PgBouncer's server_tls_* keys: libpq's sslmode/sslrootcert for every conninfo that
    does not set them; a conninfo's own value wins; channel_binding passes to libpq."""
    plain = f"host=127.0.0.1 port={pg_tls.port}"
    inst = pgcoro_factory(
        settings={"server_tls_sslmode": "verify-full",
                  "server_tls_ca_file": tls_certs.path("ca.crt")},
        databases={"postgres": plain + " dbname=postgres",
                   "nossl": plain + " dbname=postgres sslmode=disable",
                   "bound": plain + " dbname=postgres channel_binding=require"},
        replace_databases=True)
    assert run_psql(pg_tls, inst, SERVER_SSL_SQL).stdout.strip() == "t"
    assert run_psql(pg_tls, inst, SERVER_SSL_SQL, db="nossl").stdout.strip() == "f"
    assert run_psql(pg_tls, inst, SERVER_SSL_SQL, db="bound").stdout.strip() == "t"
    inst2 = pgcoro_factory(
        settings={"server_tls_sslmode": "verify-ca",
                  "server_tls_ca_file": tls_certs.path("wrong_ca.crt")},
        databases={"postgres": plain + " dbname=postgres"}, replace_databases=True)
    r = run_psql(pg_tls, inst2, "SELECT 1", check=False)
    assert r.returncode != 0 and "certificate verify failed" in r.stderr, r.stderr


def test_cancel_with_tls_required(pgcoro_factory, pg_tls, tls_certs):
    """libpq's cancel comes as a plain CancelRequest on a new connection: accepted even
    with client_tls_sslmode=require, and PostgreSQL (ssl=on) gets pgcoro's PQcancel."""
    inst = start_tls(pgcoro_factory, pg_tls, tls_certs, "require")
    c = inst.connect(sslmode="verify-full", sslrootcert=tls_certs.path("ca.crt"))
    c.autocommit = True
    sup = pg_tls.super_connect()
    try:
        def active():
            cur = sup.cursor()
            cur.execute("SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND "
                        "query LIKE '%tls_cancel_marker%' AND pid <> pg_backend_pid()")
            return cur.fetchall()

        def canceller():
            wait_until(active, "the query running")
            c.cancel()
        t = threading.Thread(target=canceller, daemon=True)
        t.start()
        cur = c.cursor()
        with pytest.raises(psycopg2.errors.QueryCanceled):
            cur.execute("SELECT pg_sleep(30) /* tls_cancel_marker */")
        t.join(30)
        assert not t.is_alive()
        cur.execute("SELECT 6 * 7")
        assert cur.fetchone() == (42,)
    finally:
        c.close()
        sup.close()
