"""pgcoro's own server login (src/srvlogin.c), driven by the srvlogin_client tool against a
real PostgreSQL 15: a plain password (md5, SCRAM and cleartext servers), an md5 secret, SCRAM
keys taken from pg_authid (the ClientKey derived here from the known password: pgcoro gets
it from a client's proof), over TCP and the unix socket, TLS (require, verify-ca,
verify-full, a client certificate, allow's and prefer's second tries), SCRAM channel
binding as libpq 15 (SCRAM-SHA-256-PLUS over TLS, the gs2 headers, channel_binding), and
the failures: wrong password, keys of another salt, a server that closes mid-login,
connection refused, a server that never answers (connect_timeout)."""

import base64
import hashlib
import hmac
import os
import socket
import subprocess
import threading

import pytest

from conftest import APP_PASS, APP_USER, MD5_PASS, MD5_USER, REPO, free_port
from conftest import client_key as client_key_file

pytestmark = pytest.mark.pooler_only

CLEAR_USER, CLEAR_PASS = "clearuser", "clearpass"


@pytest.fixture(scope="session")
def srvlogin_client(session_root):
    """The srvlogin_client tool: from PGCORO_TOOLS, else built with make (plain build)."""
    d = os.environ.get("PGCORO_TOOLS")
    if d and os.access(os.path.join(d, "srvlogin_client"), os.X_OK):
        return os.path.join(d, "srvlogin_client")
    r = subprocess.run(["make", "-s", "build/plain/tools/srvlogin_client"], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.fail(f"building srvlogin_client failed:\n{r.stdout}\n{r.stderr}")
    return os.path.join(REPO, "build/plain/tools/srvlogin_client")


def run(tool, wait=60, **opts):
    """Runs srvlogin_client with OPTS; returns (exit code, stdout lines, stderr)."""
    argv = [tool]
    for k, v in opts.items():
        if k == "params":
            for p in v:
                argv += ["param", p]
        else:
            argv += [k, str(v)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    r = subprocess.run(argv, capture_output=True, text=True, timeout=wait, env=env)
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r.returncode, r.stdout.splitlines(), r.stderr


def logged_in(tool, user, expect_tls=False, **opts):
    """Logs in as USER and checks SELECT current_user answers USER; returns the output."""
    rc, out, err = run(tool, user=user, **opts)
    assert rc == 0, (out, err)
    assert out[0].startswith(f"ok tls={1 if expect_tls else 0} "), out
    assert "key=1" in out[0] and out[0].endswith("tx=I"), out
    params = dict(line[len("param "):].split("=", 1) for line in out if line.startswith("param "))
    assert params.get("server_version", "").startswith("15"), params
    assert params.get("session_authorization") == user, params
    assert out[-1] == f"row {user}", out
    return out


def failed(tool, **opts):
    """Runs a login that must fail; returns (sqlstate, the rest of the error line)."""
    rc, out, err = run(tool, **opts)
    assert rc == 1, (out, err)
    assert out and out[0].startswith("error "), (out, err)
    sqlstate, rest = out[0][len("error "):].split(" ", 1)
    return sqlstate, rest


def md5_secret(password, user):
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


def scram_verifier(pg, user):
    rows = pg.psql_super(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{user}'")
    v = rows.strip()
    assert v.startswith("SCRAM-SHA-256$"), v
    return v


def client_key(password, verifier):
    """ClientKey = HMAC(SaltedPassword, "Client Key") for the verifier's salt and count."""
    iters, salt = verifier[len("SCRAM-SHA-256$"):].split("$")[0].split(":")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt),
                                 int(iters))
    return hmac.new(salted, b"Client Key", hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def pgauth(session_root, tls_certs):
    """A PostgreSQL 15 with ssl=on (asking TLS clients for a certificate, optional) whose
    unix socket and TCP both ask for passwords: md5user md5, clearuser cleartext
    (password), sslonly and plainonly scram-sha-256 with and only without TLS, everyone
    else scram-sha-256 (postgres trusted on the unix socket, for the fixtures)."""
    import tempfile
    from conftest import Postgres, start_cluster, tls_server_opts
    root = tempfile.mkdtemp(prefix="pgsl-", dir=session_root)
    os.chmod(root, 0o755)
    server = Postgres(os.path.join(root, "pg"))
    server.extra_opts = (tls_server_opts(server, tls_certs)
                         + f" -c ssl_ca_file={tls_certs.path('ca.crt')}")
    start_cluster(server, bench=False)
    try:
        server.psql_super("SET password_encryption = 'scram-sha-256';\n"
                          f"CREATE ROLE {CLEAR_USER} LOGIN PASSWORD '{CLEAR_PASS}';\n"
                          f"CREATE ROLE sslonly LOGIN PASSWORD '{APP_PASS}';\n"
                          f"CREATE ROLE plainonly LOGIN PASSWORD '{APP_PASS}';")
        hba = os.path.join(server.datadir, "pg_hba.conf")
        st = os.stat(hba)
        with open(hba, "w") as f:
            f.write("local all postgres trust\n"
                    f"local all {MD5_USER} md5\n"
                    f"local all {CLEAR_USER} password\n"
                    "local all all scram-sha-256\n"
                    f"host all {MD5_USER} 127.0.0.1/32 md5\n"
                    f"host all {CLEAR_USER} 127.0.0.1/32 password\n"
                    "hostssl all sslonly 127.0.0.1/32 scram-sha-256\n"
                    "hostnossl all sslonly 127.0.0.1/32 reject\n"
                    "hostnossl all plainonly 127.0.0.1/32 scram-sha-256\n"
                    "hostssl all plainonly 127.0.0.1/32 reject\n"
                    "host all all 127.0.0.1/32 scram-sha-256\n")
        os.chown(hba, st.st_uid, st.st_gid)
        server.psql_super("SELECT pg_reload_conf();")
        yield server
    finally:
        server.stop()


def tcp(pg):
    return {"host": "127.0.0.1", "port": pg.port, "dbname": "postgres"}


def unix(pg):
    return {"host": pg.sockdir, "port": pg.port, "dbname": "postgres"}


@pytest.mark.parametrize("where", [tcp, unix], ids=["tcp", "unix"])
def test_password_scram_md5_cleartext(srvlogin_client, pgauth, where):
    logged_in(srvlogin_client, APP_USER, password=APP_PASS, **where(pgauth))
    logged_in(srvlogin_client, MD5_USER, password=MD5_PASS, **where(pgauth))
    logged_in(srvlogin_client, CLEAR_USER, password=CLEAR_PASS, **where(pgauth))


@pytest.mark.parametrize("where", [tcp, unix], ids=["tcp", "unix"])
def test_md5_secret(srvlogin_client, pgauth, where):
    logged_in(srvlogin_client, MD5_USER, md5=md5_secret(MD5_PASS, MD5_USER), **where(pgauth))


@pytest.mark.parametrize("where", [tcp, unix], ids=["tcp", "unix"])
def test_scram_keys_from_pg_authid(srvlogin_client, pgauth, where):
    v = scram_verifier(pgauth, APP_USER)
    logged_in(srvlogin_client, APP_USER, verifier=v, client_key=client_key(APP_PASS, v),
              **where(pgauth))


def test_startup_parameters_reach_the_server(srvlogin_client, pgauth):
    out = logged_in(srvlogin_client, APP_USER, password=APP_PASS,
                    params=["application_name=srvlogin-test", "options=-c work_mem=5MB"],
                    **tcp(pgauth))
    assert "param application_name=srvlogin-test" in out, out
    rc, out, err = run(srvlogin_client, user=APP_USER, password=APP_PASS,
                       params=["options=-c work_mem=5MB"], query="SHOW work_mem", **tcp(pgauth))
    assert rc == 0 and out[-1] == "row 5MB", (out, err)


def test_wrong_password_is_the_servers_28P01(srvlogin_client, pgauth):
    for user in (APP_USER, MD5_USER, CLEAR_USER):
        sqlstate, rest = failed(srvlogin_client, user=user, password="wrong", **tcp(pgauth))
        assert sqlstate == "28P01", rest
        assert "password authentication failed" in rest and rest.endswith("(server)"), rest
    sqlstate, rest = failed(srvlogin_client, user=MD5_USER,
                            md5=md5_secret("wrong", MD5_USER), **unix(pgauth))
    assert sqlstate == "28P01" and "password authentication failed" in rest, rest


def test_keys_of_another_salt_or_password(srvlogin_client, pgauth):
    v = scram_verifier(pgauth, APP_USER)
    iters, rest = v[len("SCRAM-SHA-256$"):].split(":", 1)
    other_salt = base64.b64encode(b"another salt 16b").decode()
    other = f"SCRAM-SHA-256${iters}:{other_salt}${rest.split('$', 1)[1]}"
    sqlstate, why = failed(srvlogin_client, user=APP_USER, verifier=other,
                           client_key=client_key(APP_PASS, other), **tcp(pgauth))
    assert sqlstate == "28P01", why
    assert "SCRAM secret for user \"app\" differs from the one pgcoro has" in why, why
    # the right salt, a wrong ClientKey: the server refuses the proof
    sqlstate, why = failed(srvlogin_client, user=APP_USER, verifier=v,
                           client_key=client_key("wrong", v), **tcp(pgauth))
    assert sqlstate == "28P01" and why.endswith("(server)"), why
    # the right ClientKey, a wrong ServerKey: pgcoro refuses the server's signature
    parts = v.split(":")
    bad_server_key = base64.b64encode(bytes(32)).decode()
    bad = ":".join(parts[:-1] + [bad_server_key])
    sqlstate, why = failed(srvlogin_client, user=APP_USER, verifier=bad,
                           client_key=client_key(APP_PASS, v), **tcp(pgauth))
    assert sqlstate == "28P01" and "SCRAM signature is wrong" in why, why


def test_credentials_that_cannot_answer(srvlogin_client, pgauth):
    # an md5 secret to a SCRAM user, SCRAM keys to an md5 user, a hash to a cleartext user
    sqlstate, why = failed(srvlogin_client, user=APP_USER, md5=md5_secret(APP_PASS, APP_USER),
                           **tcp(pgauth))
    assert sqlstate == "28P01" and "only an md5 secret" in why, why
    v = scram_verifier(pgauth, APP_USER)
    sqlstate, why = failed(srvlogin_client, user=MD5_USER, verifier=v,
                           client_key=client_key(APP_PASS, v), **tcp(pgauth))
    assert sqlstate == "28P01" and "md5 authentication" in why and "SCRAM keys" in why, why
    sqlstate, why = failed(srvlogin_client, user=CLEAR_USER,
                           md5=md5_secret(CLEAR_PASS, CLEAR_USER), **tcp(pgauth))
    assert sqlstate == "28P01" and "cleartext password" in why, why


def test_connection_refused(srvlogin_client):
    port = free_port()
    sqlstate, why = failed(srvlogin_client, host="127.0.0.1", port=port, user=APP_USER,
                           password=APP_PASS)
    assert sqlstate == "08006" and f"127.0.0.1:{port}: Connection refused" in why, why
    sqlstate, why = failed(srvlogin_client, host="/nonexistent-dir", port=port, user=APP_USER,
                           password=APP_PASS)
    assert sqlstate == "08006" and "No such file or directory" in why, why


def test_host_name_resolved_off_the_loop(srvlogin_client, pgauth):
    logged_in(srvlogin_client, APP_USER, password=APP_PASS, host="localhost",
              port=pgauth.port, dbname="postgres")
    sqlstate, why = failed(srvlogin_client, host="no-such-host.invalid", port=pgauth.port,
                           user=APP_USER, password=APP_PASS)
    assert sqlstate == "08006" and "could not translate host name" in why, why


class FakeServer:
    """A TCP listener on 127.0.0.1 run by a thread: each connection gets HANDLER(sock)."""

    def __init__(self, handler, accept=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.handler = handler
        self.stop = threading.Event()
        self.thread = None
        if accept:
            self.thread = threading.Thread(target=self._serve, daemon=True)
            self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(c)
            c.settimeout(30)
            try:
                self.handler(c)
            except OSError:
                pass

    def close(self):
        self.stop.set()
        if self.thread:
            self.thread.join(timeout=30)
            assert not self.thread.is_alive(), "the fake server's thread is stuck"
        for c in self.conns:
            c.close()
        self.sock.close()


def read_startup(c):
    n = int.from_bytes(c.recv(4, socket.MSG_WAITALL), "big")
    return c.recv(n - 4, socket.MSG_WAITALL)


def test_server_closes_mid_login(srvlogin_client):
    def after_startup(c):
        read_startup(c)
        # an md5 request, then the end: the server went away during authentication
        c.sendall(b"R" + (12).to_bytes(4, "big") + (5).to_bytes(4, "big") + b"salt")
        c.recv(100)
        c.close()

    srv = FakeServer(after_startup)
    try:
        sqlstate, why = failed(srvlogin_client, host="127.0.0.1", port=srv.port, user=APP_USER,
                               password=APP_PASS)
    finally:
        srv.close()
    assert sqlstate == "08006" and "server closed the connection unexpectedly" in why, why


def test_garbage_from_the_server(srvlogin_client):
    def garbage(c):
        read_startup(c)
        c.sendall(b"R" + (0x7fffffff).to_bytes(4, "big"))  # an absurd length
        c.recv(100)

    srv = FakeServer(garbage)
    try:
        sqlstate, why = failed(srvlogin_client, host="127.0.0.1", port=srv.port, user=APP_USER,
                               password=APP_PASS)
    finally:
        srv.close()
    assert sqlstate == "08006" and "invalid length" in why, why


def scram_server(iterations, finals):
    """A fake server's handler: SCRAM-SHA-256 with ITERATIONS; what the login sends after
    the server-first-message (its client-final, or nothing: it closed) goes to FINALS."""
    def handler(c):
        read_startup(c)
        mech = b"SCRAM-SHA-256\0\0"
        c.sendall(b"R" + (8 + len(mech)).to_bytes(4, "big") + (10).to_bytes(4, "big") + mech)
        t, n = c.recv(1), int.from_bytes(c.recv(4, socket.MSG_WAITALL), "big")
        body = c.recv(n - 4, socket.MSG_WAITALL)
        assert t == b"p", t
        first = body[body.index(b"\0") + 5:].decode()  # after the mechanism and the length
        nonce = dict(kv.split("=", 1) for kv in first.split(",")[2:])["r"]
        sfirst = (f"r={nonce}srv,s={base64.b64encode(b'saltsaltsaltsalt').decode()},"
                  f"i={iterations}").encode()
        c.sendall(b"R" + (8 + len(sfirst)).to_bytes(4, "big") + (11).to_bytes(4, "big") + sfirst)
        finals.append(c.recv(1000))
        c.shutdown(socket.SHUT_RDWR)  # no server-final: the login ends
    return handler


@pytest.mark.parametrize("iterations", [2147483647, 1000001])
def test_scram_iterations_bounded(srvlogin_client, iterations):
    """A server (or a man in the middle without TLS) asking a password's SCRAM login for
    2^31 - 1 PBKDF2 iterations: refused at once with 28P01 (past 1,000,000). Before: the
    derivation held an executor thread for about half an hour (here the tool's 30 s ran
    out)."""
    finals = []
    srv = FakeServer(scram_server(iterations, finals))
    try:
        sqlstate, why = failed(srvlogin_client, wait=30, host="127.0.0.1", port=srv.port,
                               user=APP_USER, password=APP_PASS)
    finally:
        srv.close()
    assert sqlstate == "28P01", (sqlstate, why)
    assert f"asks for {iterations} SCRAM iterations, more than the 1000000" in why, why
    assert finals == [b""], finals  # no client-final: the login closed


def test_scram_iterations_at_the_bound_are_run(srvlogin_client):
    """1,000,000 iterations are derived (about a second): the login answers with its
    client-final (the fake server then closes)."""
    finals = []
    srv = FakeServer(scram_server(1000000, finals))
    try:
        sqlstate, why = failed(srvlogin_client, wait=60, host="127.0.0.1", port=srv.port,
                               user=APP_USER, password=APP_PASS)
    finally:
        srv.close()
    assert len(finals) == 1 and finals[0][:1] == b"p" and b"c=biws" in finals[0], finals
    assert sqlstate == "08006" and "iterations" not in why, (sqlstate, why)


def test_timeout_when_the_server_never_answers(srvlogin_client):
    # a listening socket nobody accepts on: the connect succeeds, no answer ever comes
    srv = FakeServer(None, accept=False)
    try:
        sqlstate, why = failed(srvlogin_client, wait=120, host="127.0.0.1", port=srv.port,
                               user=APP_USER, password=APP_PASS, timeout=1)
    finally:
        srv.close()
    assert sqlstate == "08006" and "timeout expired" in why, why


def test_tls_require_and_verify_full(srvlogin_client, pgauth, tls_certs):
    base = {"port": pgauth.port, "dbname": "postgres"}
    logged_in(srvlogin_client, APP_USER, expect_tls=True, password=APP_PASS, host="127.0.0.1",
              sslmode="require", **base)
    for host in ("127.0.0.1", "localhost"):
        logged_in(srvlogin_client, APP_USER, expect_tls=True, password=APP_PASS, host=host,
                  sslmode="verify-full", sslrootcert=tls_certs.path("ca.crt"), **base)
    v = scram_verifier(pgauth, APP_USER)
    logged_in(srvlogin_client, APP_USER, expect_tls=True, verifier=v,
              client_key=client_key(APP_PASS, v), host="localhost", sslmode="verify-full",
              sslrootcert=tls_certs.path("ca.crt"), **base)
    logged_in(srvlogin_client, MD5_USER, expect_tls=True, md5=md5_secret(MD5_PASS, MD5_USER),
              host="127.0.0.1", sslmode="verify-ca", sslrootcert=tls_certs.path("ca.crt"),
              **base)
    # prefer: TLS when the server has it
    logged_in(srvlogin_client, APP_USER, expect_tls=True, password=APP_PASS, host="127.0.0.1",
              sslmode="prefer", **base)
    # a certificate from another CA: refused, also by require once a root file is named
    for mode in ("verify-full", "verify-ca", "require"):
        sqlstate, why = failed(srvlogin_client, user=APP_USER, password=APP_PASS,
                               host="127.0.0.1", sslmode=mode,
                               sslrootcert=tls_certs.path("wrong_ca.crt"), **base)
        assert sqlstate == "08006" and "certificate verify failed" in why, (mode, why)
    sqlstate, why = failed(srvlogin_client, user=APP_USER, password=APP_PASS, host="127.0.0.1",
                           sslmode="verify-full", **base)
    assert "need sslrootcert" in why, why


def test_tls_required_but_not_offered(srvlogin_client, pg):
    # the session's cluster has ssl=off
    sqlstate, why = failed(srvlogin_client, user=APP_USER, password=APP_PASS, sslmode="require",
                           **tcp(pg))
    assert sqlstate == "08006" and "server does not support SSL, but SSL was required" in why
    # prefer and allow go on without it
    for mode in ("prefer", "allow"):
        logged_in(srvlogin_client, APP_USER, password=APP_PASS, sslmode=mode, **tcp(pg))


def test_sslmode_second_tries(srvlogin_client, pgauth):
    # allow: plain first; refused by a hostssl-only rule, again with TLS
    logged_in(srvlogin_client, "sslonly", expect_tls=True, password=APP_PASS, sslmode="allow",
              **tcp(pgauth))
    sqlstate, why = failed(srvlogin_client, user="sslonly", password=APP_PASS,
                           sslmode="disable", **tcp(pgauth))
    assert sqlstate == "28000" and why.endswith("(server)"), why
    # prefer: TLS first; refused by a hostnossl-only rule, again without
    logged_in(srvlogin_client, "plainonly", password=APP_PASS, sslmode="prefer", **tcp(pgauth))
    sqlstate, why = failed(srvlogin_client, user="plainonly", password=APP_PASS,
                           sslmode="require", **tcp(pgauth))
    assert sqlstate == "28000" and why.endswith("(server)"), why
    # a unix socket never asks for TLS, whatever the mode
    logged_in(srvlogin_client, APP_USER, password=APP_PASS, sslmode="require", **unix(pgauth))


def test_client_certificate(srvlogin_client, pgauth, tls_certs):
    rc, out, err = run(srvlogin_client, user=APP_USER, password=APP_PASS, sslmode="verify-full",
                       sslrootcert=tls_certs.path("ca.crt"),
                       sslcert=tls_certs.path(f"client-{APP_USER}.crt"),
                       sslkey=client_key_file(tls_certs, f"client-{APP_USER}"),
                       query="SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                       host="localhost", port=pgauth.port, dbname="postgres")
    assert rc == 0 and out[-1] == f"row /CN={APP_USER}", (out, err)
    sqlstate, why = failed(srvlogin_client, user=APP_USER, password=APP_PASS, sslmode="require",
                           sslcert=tls_certs.path(f"client-{APP_USER}.crt"), **tcp(pgauth))
    assert sqlstate == "08006" and "sslcert and sslkey go together" in why, why


def test_verify_full_host_name_mismatch(srvlogin_client, tls_certs):
    # a server whose certificate, signed by the trusted CA, names someone else (CN app, no
    # SAN): the chain verifies, the host name does not
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_certs.path("client-app.crt"), tls_certs.path("client-app.key"))

    def tls_server(c):
        read_startup(c)  # the SSLRequest
        c.sendall(b"S")
        try:
            with ctx.wrap_socket(c, server_side=True) as t:
                t.recv(100)
        except (ssl.SSLError, OSError):
            pass

    srv = FakeServer(tls_server)
    try:
        sqlstate, why = failed(srvlogin_client, user=APP_USER, password=APP_PASS,
                               host="127.0.0.1", port=srv.port, sslmode="verify-full",
                               sslrootcert=tls_certs.path("ca.crt"))
    finally:
        srv.close()
    assert sqlstate == "08006" and 'does not match host name "127.0.0.1"' in why, why


def mech_of(out):
    return dict(kv.split("=", 1) for kv in out[0].split()[1:])["mech"]


def test_channel_binding_as_libpq(srvlogin_client, pgauth, tls_certs):
    """libpq 15's choice: over TLS SCRAM-SHA-256-PLUS bound to the server's certificate
    (PostgreSQL checks tls-server-end-point, so a login is the proof), with a password
    and with pass-through keys; channel_binding=disable: SCRAM-SHA-256; without TLS
    (unix socket): SCRAM-SHA-256, and require refuses; require over TLS works. Before:
    SCRAM-SHA-256 always, gs2 header "n"."""
    tls = {"host": "localhost", "port": pgauth.port, "dbname": "postgres",
           "sslmode": "verify-full", "sslrootcert": tls_certs.path("ca.crt")}
    v = scram_verifier(pgauth, APP_USER)
    for cred in ({"password": APP_PASS}, {"verifier": v, "client_key": client_key(APP_PASS, v)}):
        out = logged_in(srvlogin_client, APP_USER, expect_tls=True, **cred, **tls)
        assert mech_of(out) == "SCRAM-SHA-256-PLUS", out
        out = logged_in(srvlogin_client, APP_USER, expect_tls=True, channel_binding="require",
                        **cred, **tls)
        assert mech_of(out) == "SCRAM-SHA-256-PLUS", out
        out = logged_in(srvlogin_client, APP_USER, expect_tls=True, channel_binding="disable",
                        **cred, **tls)
        assert mech_of(out) == "SCRAM-SHA-256", out
    out = logged_in(srvlogin_client, APP_USER, password=APP_PASS, **unix(pgauth))
    assert mech_of(out) == "SCRAM-SHA-256", out
    sqlstate, why = failed(srvlogin_client, user=APP_USER, password=APP_PASS,
                           channel_binding="require", **unix(pgauth))
    assert sqlstate == "28P01" and "channel binding is required" in why, why
    # an md5 server over TLS: require refuses to answer it
    sqlstate, why = failed(srvlogin_client, user=MD5_USER, password=MD5_PASS,
                           channel_binding="require", **tls)
    assert sqlstate == "28P01" and "channel binding required but not supported" in why, why
    out = logged_in(srvlogin_client, MD5_USER, expect_tls=True, password=MD5_PASS, **tls)
    assert mech_of(out) == "none", out


def tls_scram_server(tls_certs, mechs, firsts):
    """A fake TLS server offering MECHS whose SASLInitialResponse goes to FIRSTS."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_certs.path("server.crt"), tls_certs.path("server.key"))

    def exactly(t, n):
        b = b""
        while len(b) < n:
            more = t.recv(n - len(b))
            assert more, "the login closed"
            b += more
        return b

    def handler(c):
        read_startup(c)  # the SSLRequest
        c.sendall(b"S")
        with ctx.wrap_socket(c, server_side=True) as t:
            exactly(t, int.from_bytes(exactly(t, 4), "big") - 4)  # the startup packet
            body = (10).to_bytes(4, "big") + b"".join(m + b"\0" for m in mechs) + b"\0"
            t.sendall(b"R" + (4 + len(body)).to_bytes(4, "big") + body)
            typ, n = exactly(t, 1), int.from_bytes(exactly(t, 4), "big")
            firsts.append(typ + exactly(t, n - 4))
    return handler


def test_gs2_header_over_tls(srvlogin_client, tls_certs):
    """Over TLS with a server offering no -PLUS, the client says it could bind ("y", as
    libpq: a server stripped of -PLUS by a man in the middle then refuses); a server
    offering only -PLUS gets "p=tls-server-end-point"; channel_binding=disable says "n"."""
    for mechs, opts, want in (([b"SCRAM-SHA-256"], {}, b"SCRAM-SHA-256\0"),
                              ([b"SCRAM-SHA-256"], {"channel_binding": "disable"},
                               b"SCRAM-SHA-256\0"),
                              ([b"SCRAM-SHA-256-PLUS"], {}, b"SCRAM-SHA-256-PLUS\0")):
        firsts = []
        srv = FakeServer(tls_scram_server(tls_certs, mechs, firsts))
        try:
            failed(srvlogin_client, user=APP_USER, password=APP_PASS, host="localhost",
                   port=srv.port, sslmode="verify-full", sslrootcert=tls_certs.path("ca.crt"),
                   **opts)
        finally:
            srv.close()
        assert len(firsts) == 1 and firsts[0][:1] == b"p", firsts
        body = firsts[0][1:]
        assert body.startswith(want), body
        gs2 = body[len(want) + 4:].split(b"n=", 1)[0]
        expect = (b"n,," if opts else b"y,," if mechs == [b"SCRAM-SHA-256"]
                  else b"p=tls-server-end-point,,")
        assert gs2 == expect, body
