"""Integration harness: a throwaway PostgreSQL 15, pgcoro instances in front of it, and
a raw wire-protocol client.

Environment:
  PGCORO_BIN          the daemon to test (default: <repo>/build/san/pgcoro)
  PGCORO_TOOLS        directory holding libpq_client (built here if missing)
  PGCORO_TEST_DIRECT  =1: every "pgcoro" fixture returns PostgreSQL itself, to validate the
                      tests against the real server; pooler-only tests are skipped.
  PGCORO_TEST_WATCHDOG  seconds after which a test's pgcoro instances are killed so that a
                      hung client call returns (default 240, below pytest-timeout's 300).

Test modules import the helpers below (Wire, PgError, clean_env, ...) with
`from conftest import ...`: pytest puts this directory on sys.path (rootdir-less layout).
"""

import base64
import hashlib
import hmac
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DIRECT = os.environ.get("PGCORO_TEST_DIRECT", "") not in ("", "0")
IS_ROOT = os.geteuid() == 0

APP_USER, APP_PASS = "app", "apppass"
MD5_USER, MD5_PASS = "md5user", "md5pass"
REPL_USER, REPL_PASS = "repl", "replpass"  # a role with REPLICATION (app has none)

ASAN_OPTIONS = "detect_leaks=1:abort_on_error=1:quarantine_size_mb=16"
UBSAN_OPTIONS = "print_stacktrace=1:halt_on_error=1"
WATCHDOG_SECONDS = float(os.environ.get("PGCORO_TEST_WATCHDOG", "240"))  # < pytest-timeout 300
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")

# ---------------------------------------------------------------------------------------
# pytest plumbing


def pytest_configure(config):
    config.addinivalue_line("markers", "pooler_only: tests behaviour only pgcoro has (skipped "
                            "with PGCORO_TEST_DIRECT=1)")


def pytest_collection_modifyitems(config, items):
    if not DIRECT:
        return
    skip = pytest.mark.skip(reason="pooler-only behaviour (PGCORO_TEST_DIRECT=1)")
    for item in items:
        if "pooler_only" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for inst in getattr(item, "_pgcoro_instances", []):
            rep.sections.append((f"pgcoro {inst.name} log (tail)", inst.log_tail(60)))


def clean_env(**extra):
    """os.environ without libpq variables that could redirect a client, plus EXTRA."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.setdefault("LC_ALL", "C.UTF-8")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still answers kill(0); look at its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_port(port, proc=None, timeout=30.0, what="server"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout}s")


def vmrss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def find_bindir():
    cand = "/usr/lib/postgresql/15/bin"
    if os.path.exists(os.path.join(cand, "initdb")):
        return cand
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def client_bin(bindir, name):
    for d in ("/usr/bin", bindir):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    return os.path.join(bindir, name)


# ---------------------------------------------------------------------------------------
# PostgreSQL


class Postgres:
    def __init__(self, root):
        self.bindir = find_bindir()
        self.root = root
        self.datadir = os.path.join(root, "data")
        self.sockdir = os.path.join(root, "sock")
        self.logfile = os.path.join(root, "postgres.log")
        self.port = free_port()
        self.host = "127.0.0.1"
        self.pid = None
        self.psql_bin = client_bin(self.bindir, "psql")
        self.pgbench_bin = client_bin(self.bindir, "pgbench")
        self.extra_opts = ""  # more postgres -c options (pg_tls: ssl=on and its files)

    def _as_pg(self, argv):
        return (["runuser", "-u", "postgres", "--"] + argv) if IS_ROOT else argv

    def _run(self, argv, timeout=120, **kw):
        r = subprocess.run(self._as_pg(argv), capture_output=True, text=True, timeout=timeout,
                           env=clean_env(), **kw)
        if r.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def start(self, bench=True):
        """initdb, start, roles app, md5user and repl (REPLICATION; wal_level logical,
        pg_hba lets replication connections in); with BENCH (the session cluster) also the
        databases bench (pgbench -i -s 1) and pooldb."""
        os.makedirs(self.sockdir)
        if IS_ROOT:
            pw = pwd.getpwnam("postgres")
            for d in (self.root, self.sockdir):
                os.chown(d, pw.pw_uid, pw.pw_gid)
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.datadir, "-U", "postgres",
                   "--auth-local=trust", "--auth-host=scram-sha-256", "--no-locale", "-E", "UTF8",
                   "--no-sync"])
        # md5user's stored password is md5, which scram-sha-256 host auth refuses.
        hba = os.path.join(self.datadir, "pg_hba.conf")
        st = os.stat(hba)
        with open(hba, "w") as f:
            f.write("local all all trust\n"
                    f"host all {MD5_USER} 127.0.0.1/32 md5\n"
                    "host all all 127.0.0.1/32 scram-sha-256\n"
                    "host all all ::1/128 scram-sha-256\n"
                    "local replication all trust\n"
                    "host replication all 127.0.0.1/32 scram-sha-256\n")
        os.chown(hba, st.st_uid, st.st_gid)
        self.pg_ctl_start()
        self.psql_super("""
            SET password_encryption = 'scram-sha-256';
            CREATE ROLE app LOGIN PASSWORD 'apppass';
            CREATE ROLE repl LOGIN REPLICATION PASSWORD 'replpass';
            SET password_encryption = 'md5';
            CREATE ROLE md5user LOGIN PASSWORD 'md5pass';
        """)
        if not bench:
            return
        self.psql_super("CREATE DATABASE bench OWNER app;")
        self.psql_super("CREATE DATABASE pooldb OWNER app;")
        r = subprocess.run([self.pgbench_bin, "-i", "-s", "1", "-q", "-h", self.host, "-p",
                            str(self.port), "-U", APP_USER, "bench"], capture_output=True,
                           text=True, timeout=180, env=clean_env(PGPASSWORD=APP_PASS))
        if r.returncode != 0:
            raise RuntimeError(f"pgbench -i failed:\n{r.stdout}\n{r.stderr}")

    def pg_ctl_start(self):
        """Starts the (initialised) cluster, again on the same port after pg_ctl_stop."""
        opts = (f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1 "
                "-c max_connections=300 -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c wal_level=logical" + self.extra_opts)
        self._run([os.path.join(self.bindir, "pg_ctl"), "start", "-w", "-t", "60", "-D",
                   self.datadir, "-l", self.logfile, "-o", opts], timeout=90)
        with open(os.path.join(self.datadir, "postmaster.pid")) as f:
            self.pid = int(f.readline().strip())

    def pg_ctl_stop(self, mode="fast"):
        """pg_ctl -m MODE stop -w (this cluster's data directory, i.e. its postmaster PID)."""
        self._run([os.path.join(self.bindir, "pg_ctl"), "stop", "-w", "-t", "60", "-m", mode,
                   "-D", self.datadir], timeout=90)
        self.pid = None

    def psql_super(self, sql, db="postgres"):
        """Runs SQL as the superuser over the unix socket; returns stdout (unaligned)."""
        r = subprocess.run([self.psql_bin, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h",
                            self.sockdir, "-p", str(self.port), "-U", "postgres", "-d", db, "-f",
                            "-"], input=sql, capture_output=True, text=True, timeout=60,
                           env=clean_env())
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return r.stdout

    def super_connect(self, db="postgres"):
        import psycopg2
        c = psycopg2.connect(host=self.sockdir, port=self.port, user="postgres", dbname=db,
                             connect_timeout=10)
        c.autocommit = True
        return c

    def stop(self):
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        try:
            os.kill(pid, signal.SIGINT)  # fast shutdown
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.1)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def start_cluster(server, bench=True):
    """SERVER.start(bench); on failure it is stopped and its log's tail printed."""
    try:
        server.start(bench=bench)
    except Exception:
        server.stop()
        if os.path.exists(server.logfile):
            with open(server.logfile) as f:
                print(f.read()[-4000:])
        raise


@pytest.fixture(scope="session")
def session_root():
    root = tempfile.mkdtemp(prefix="pgcoro-it-")
    os.chmod(root, 0o755)  # the postgres user must traverse it when we are root
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg(session_root):
    if IS_ROOT:
        # every parent must be traversable by the postgres user
        d = session_root
        while d != "/":
            d = os.path.dirname(d)
            if os.stat(d).st_mode & 0o001 == 0:
                pytest.fail(f"{d} is not traversable by the postgres user")
    server = Postgres(os.path.join(session_root, "pg"))
    os.makedirs(server.root, mode=0o755)
    start_cluster(server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_cluster(session_root):
    """make() -> a new throwaway PostgreSQL 15 (its own data directory and port; roles app
    and md5user, no bench database) for tests that stop, restart or reconfigure it. Every
    cluster made is stopped by its postmaster PID at teardown and its files removed."""
    made = []

    def make():
        root = tempfile.mkdtemp(prefix="pgx-", dir=session_root)
        os.chmod(root, 0o755)
        server = Postgres(os.path.join(root, "pg"))
        os.makedirs(server.root, mode=0o755)
        made.append((root, server))
        try:
            server.start(bench=False)
        except Exception:
            if os.path.exists(server.logfile):
                with open(server.logfile) as f:
                    print(f.read()[-4000:])
            raise
        return server

    try:
        yield make
    finally:
        for root, server in made:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)


class TlsCerts:
    """Certificates made with the openssl CLI in DIR: a CA (ca.crt/ca.key), a server
    certificate for localhost / 127.0.0.1 (server.crt/.key), client certificates
    client-<CN>.crt/.key signed by that CA, and a second, unrelated CA (wrong_ca.crt) with
    a client certificate of its own (wrong-client-app.crt/.key). Keys are readable by the
    postgres user (PostgreSQL's own copy is made private to it)."""

    def __init__(self, d):
        self.dir = d
        self._ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                   "-nodes", "-keyout", self.path("ca.key"), "-out", self.path("ca.crt"),
                   "-days", "2", "-subj", "/CN=pgcoro test CA")
        self._ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                   "-nodes", "-keyout", self.path("wrong_ca.key"), "-out",
                   self.path("wrong_ca.crt"), "-days", "2", "-subj", "/CN=unrelated CA")
        self.issue("server", "localhost", "ca", san="DNS:localhost,IP:127.0.0.1")
        for cn in (APP_USER, MD5_USER, "postgres"):
            self.issue(f"client-{cn}", cn, "ca")
        self.issue(f"wrong-client-{APP_USER}", APP_USER, "wrong_ca")
        for f in os.listdir(d):
            os.chmod(self.path(f), 0o644)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _ossl(self, *args):
        r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"openssl {args[0]} failed:\n{r.stderr}")

    def issue(self, name, cn, ca, san=None):
        key, csr, crt = (self.path(name + ext) for ext in (".key", ".csr", ".crt"))
        self._ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                   "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            if san:
                f.write(f"subjectAltName={san}\n")
        self._ossl("x509", "-req", "-in", csr, "-CA", self.path(ca + ".crt"), "-CAkey",
                   self.path(ca + ".key"), "-CAcreateserial", "-out", crt, "-days", "2",
                   "-extfile", ext)


def tls_settings(certs, mode="allow", **more):
    """pgcoro settings for client TLS with CERTS' server certificate and CA."""
    s = {"client_tls_sslmode": mode, "client_tls_key_file": certs.path("server.key"),
         "client_tls_cert_file": certs.path("server.crt"),
         "client_tls_ca_file": certs.path("ca.crt")}
    s.update(more)
    return s


def run_psql(pg, inst, sql, user=APP_USER, password=APP_PASS, db="postgres", host=None,
             check=True, timeout=120, **conn):
    """psql with a conninfo string (CONN: sslmode, sslrootcert, sslcert, ...)."""
    parts = {"host": host or inst.host, "port": inst.port, "user": user, "dbname": db,
             "connect_timeout": 60}
    parts.update(conn)
    dsn = " ".join(f"{k}={v}" for k, v in parts.items())
    env = clean_env()
    if password is not None:
        env["PGPASSWORD"] = password
    r = subprocess.run([pg.psql_bin, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", dsn,
                        "-c", sql], capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert r.returncode == 0, f"psql failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def verify_full(certs, **more):
    d = {"sslmode": "verify-full", "sslrootcert": certs.path("ca.crt")}
    d.update(more)
    return d


def client_cert(certs, name):
    return {"sslcert": certs.path(name + ".crt"), "sslkey": client_key(certs, name)}


def client_key(certs, name):
    """libpq refuses a key readable by others: a private copy."""
    src = certs.path(name + ".key")
    dst = certs.path(name + ".private.key")
    if not os.path.exists(dst):
        with open(src, "rb") as f:
            data = f.read()
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return dst


@pytest.fixture(scope="session")
def tls_certs(session_root):
    d = os.path.join(session_root, "certs")
    os.makedirs(d, mode=0o755)
    return TlsCerts(d)


def tls_server_opts(server, tls_certs):
    """Makes SERVER's root with tls_certs' server key in it, readable by PostgreSQL only,
    and returns the postgres options that turn ssl on with that key and certificate."""
    os.makedirs(server.root, mode=0o755)
    key = os.path.join(server.root, "server.key")
    shutil.copy(tls_certs.path("server.key"), key)
    os.chmod(key, 0o600)
    if IS_ROOT:
        pw = pwd.getpwnam("postgres")
        os.chown(key, pw.pw_uid, pw.pw_gid)
    return (f" -c ssl=on -c ssl_cert_file={tls_certs.path('server.crt')}"
            f" -c ssl_key_file={key}")


@pytest.fixture(scope="session")
def pg_tls(session_root, tls_certs):
    """A second PostgreSQL 15 with ssl=on (server certificate for 127.0.0.1/localhost
    signed by tls_certs' CA); roles app and md5user, database bench (pgbench -i -s 1)."""
    server = Postgres(os.path.join(session_root, "pgtls"))
    server.extra_opts = tls_server_opts(server, tls_certs)
    start_cluster(server)
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------
# pgcoro instances


def _conninfo_dbname(conninfo):
    for tok in conninfo.split():
        if tok.startswith("dbname="):
            return tok[len("dbname="):]
    return None


class Pgcoro:
    """One pgcoro process (or, in direct mode, PostgreSQL standing in for it)."""

    host = "127.0.0.1"

    def __init__(self, name, workdir, pg, settings, databases, users, direct,
                 user_settings=None, port=None, extra_ini=None):
        self.name = name
        self.workdir = workdir
        self.pg = pg
        self.direct = direct
        self.databases = databases
        self.proc = None
        self.stopped = False
        self.watchdog_fired = False
        self.returncode = None
        self.logpath = os.path.join(workdir, "pgcoro.log")
        if direct:
            self.port, self.sockdir, self.pid = pg.port, pg.sockdir, pg.pid
            self.config_path = None
            return
        self.port = port or free_port()
        self.sockdir = workdir
        self.settings = settings
        self.config_path = os.path.join(workdir, "pgcoro.ini")
        self.userlist_path = os.path.join(workdir, "userlist.txt")
        with open(self.userlist_path, "w") as f:
            for user, secret in users.items():
                f.write('"%s" "%s"\n' % (user.replace('"', '""'), secret.replace('"', '""')))
        full = {
            "listen_addr": "127.0.0.1",
            "listen_port": self.port,
            "unix_socket_dir": self.sockdir,
            "auth_type": "scram-sha-256",
            "auth_file": self.userlist_path,
            "pool_mode": "session",
            "default_pool_size": 10,
            "max_client_conn": 300,
            "server_reset_query": "DISCARD ALL",
            "log_level": "info",
        }
        full.update(settings)
        with open(self.config_path, "w") as f:
            f.write("[pgcoro]\n")
            for k, v in full.items():
                if v is not None:
                    f.write(f"{k} = {v}\n")
            f.write("\n[databases]\n")
            for k, v in databases.items():
                f.write(f"{k} = {v}\n")
            if user_settings:
                f.write("\n[users]\n")
                for k, v in user_settings.items():
                    f.write(f"{k} = {v}\n")
            if extra_ini:
                f.write("\n" + extra_ini)

    # -- lifecycle
    def start(self, bin_path, extra_env=None, wrapper=()):
        """WRAPPER: argv run before pgcoro's that must exec it (so the pid stays pgcoro's)."""
        self.logf = open(self.logpath, "wb")
        env = clean_env(ASAN_OPTIONS=ASAN_OPTIONS, UBSAN_OPTIONS=UBSAN_OPTIONS, **(extra_env or {}))
        self.proc = subprocess.Popen([*wrapper, bin_path, "-c", self.config_path],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf, env=env, cwd=self.workdir)
        self.pid = self.proc.pid
        try:
            wait_port(self.port, self.proc, timeout=30, what="pgcoro")
        except RuntimeError as e:
            self.kill()
            raise RuntimeError(f"{e}\n--- pgcoro log:\n{self.log_tail(60)}")

    def alive(self):
        if self.direct:
            return pid_alive(self.pid)
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.stopped = True

    def stop(self, timeout=60):
        """SIGTERM, bounded wait; returns the exit code (SIGKILL and None on a hang)."""
        if self.direct or self.stopped:
            return 0 if self.direct else self.returncode
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
                self.returncode = None
                self.logf.close()
                return None
        self.returncode = self.proc.returncode
        self.logf.close()
        return self.returncode

    def assert_clean_exit(self):
        """Stops the instance and asserts exit code 0 and no sanitizer report."""
        if self.direct:
            return
        rc = self.stop()
        log = self.log_text()
        bad = [m for m in SANITIZER_MARKERS if m in log]
        hung = (f"the test hung: pgcoro killed by the watchdog after {WATCHDOG_SECONDS} s; "
                if self.watchdog_fired else "")
        assert rc == 0 and not bad and not self.watchdog_fired, (
            f"{hung}pgcoro {self.name} exit code {rc} (expected 0 after SIGTERM), "
            f"sanitizer markers "
            f"{bad}\n--- log tail:\n{self.log_tail(80)}")

    # -- logs
    def log_text(self):
        if self.direct:
            return ""
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        if self.direct:
            return "(direct mode: no pgcoro)"
        return "\n".join(self.log_text().splitlines()[-n:])

    # -- connection helpers
    def db(self, alias):
        """The database name a client asks for: the alias itself, or in direct mode the
        dbname of that alias' conninfo."""
        if self.direct:
            return _conninfo_dbname(self.databases.get(alias, "")) or alias
        return alias

    def dsn(self, user=APP_USER, password=APP_PASS, db="postgres", unix=False, **extra):
        parts = {"host": self.sockdir if unix else self.host, "port": self.port, "user": user,
                 "dbname": self.db(db), "connect_timeout": 60}
        if password is not None:
            parts["password"] = password
        parts.update(extra)
        return " ".join(f"{k}='{v}'" for k, v in parts.items())

    def connect(self, user=APP_USER, password=APP_PASS, db="postgres", **kw):
        import psycopg2
        return psycopg2.connect(host=self.host, port=self.port, user=user, password=password,
                                dbname=self.db(db), connect_timeout=60, **kw)

    def assert_serving(self, db="postgres"):
        """pgcoro's process is alive and a normal query through it (to DB) works."""
        assert self.alive(), f"pgcoro {self.name} died\n{self.log_tail(60)}"
        c = self.connect(db=db)
        try:
            cur = c.cursor()
            cur.execute("SELECT 40 + 2")
            assert cur.fetchone() == (42,)
        finally:
            c.close()
        assert self.alive(), f"pgcoro {self.name} died\n{self.log_tail(60)}"


def default_databases(pg):
    return {
        "postgres": f"host=127.0.0.1 port={pg.port} dbname=postgres",
        "bench": f"host=127.0.0.1 port={pg.port} dbname=bench",
        "pooldb": f"host=127.0.0.1 port={pg.port} dbname=pooldb",
        "nowhere": "host=127.0.0.1 port=1 dbname=postgres",
    }


def default_users():
    return {APP_USER: APP_PASS, MD5_USER: MD5_PASS}


@pytest.fixture(scope="session")
def pgcoro_bin():
    if DIRECT:
        return None
    path = os.environ.get("PGCORO_BIN") or os.path.join(REPO, "build", "san", "pgcoro")
    if not os.access(path, os.X_OK):
        pytest.fail(f"pgcoro binary {path} not found (build it, or set PGCORO_BIN, or "
                    "PGCORO_TEST_DIRECT=1)")
    return path


@pytest.fixture
def pgcoro_factory(request, pg, pgcoro_bin, session_root):
    """start(settings=None, databases=None, users=None, replace_databases=False,
    replace_users=False, user_settings=None, env=None, wrapper=(), port=None,
    extra_ini=None) -> Pgcoro. USERS are auth_file entries (name -> password); USER_SETTINGS
    are [users] entries (name -> "pool_mode=... ..."); ENV is added to pgcoro's environment;
    WRAPPER is argv that execs pgcoro's; PORT a listen_port to use (another instance's, with
    so_reuseport) instead of a free one; EXTRA_INI text appended to the file (a section).
    Every instance is stopped at teardown, which asserts exit code 0 and a sanitizer-clean
    log."""
    instances = []
    request.node._pgcoro_instances = instances
    counter = [0]

    # A client blocked in libpq (psycopg2) cannot be interrupted by pytest-timeout's
    # signal; if a test hangs, kill its pgcoro instances so every client call returns.
    def watchdog():
        for inst in instances:
            if inst.alive() and not inst.direct:
                inst.watchdog_fired = True
                inst.proc.kill()
    timer = threading.Timer(WATCHDOG_SECONDS, watchdog)
    timer.daemon = True
    timer.start()

    def start(settings=None, databases=None, users=None, replace_databases=False,
              replace_users=False, user_settings=None, env=None, wrapper=(), port=None,
              extra_ini=None):
        counter[0] += 1
        name = f"{request.node.name}-{counter[0]}"
        workdir = tempfile.mkdtemp(prefix="pgc-", dir=session_root)
        os.chmod(workdir, 0o755)
        dbs = {} if replace_databases else default_databases(pg)
        dbs.update(databases or {})
        users_ = {} if replace_users else default_users()
        users_.update(users or {})
        inst = Pgcoro(name, workdir, pg, settings or {}, dbs, users_, DIRECT, user_settings,
                      port, extra_ini)
        instances.append(inst)
        if not DIRECT:
            inst.start(pgcoro_bin, env, wrapper)
        return inst

    try:
        yield start
    finally:
        timer.cancel()
        stop_instances(instances)


def stop_instances(instances):
    """Stops each Pgcoro of INSTANCES (killed at the end whatever happens) and fails the
    test unless each exited with 0 and a sanitizer-clean log."""
    errors = []
    for inst in instances:
        try:
            inst.assert_clean_exit()
        except AssertionError as e:
            errors.append(str(e))
        finally:
            inst.kill()
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def pgcoro(pgcoro_factory):
    """One pgcoro with the default configuration (scram-sha-256, session, pool 10)."""
    return pgcoro_factory()


@pytest.fixture(scope="session")
def tools(session_root):
    """Directory holding libpq_client; built here when PGCORO_TOOLS has none."""
    d = os.environ.get("PGCORO_TOOLS")
    if d and os.access(os.path.join(d, "libpq_client"), os.X_OK):
        return d
    if d:
        pytest.fail(f"{d}/libpq_client not found")
    d = os.path.join(session_root, "tools")
    os.makedirs(d, exist_ok=True)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libpq"], capture_output=True,
                           text=True, timeout=30).stdout.split()
    r = subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-o",
                        os.path.join(d, "libpq_client"), os.path.join(HERE, "libpq_client.c")]
                       + flags, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        pytest.fail(f"building libpq_client failed:\n{r.stderr}")
    return d


def pgbench_through(pg, inst, *args, db="bench"):
    """pgbench ARGS through INST to DB as the app user (run_pgbench's checks); returns its
    output."""
    argv = [pg.pgbench_bin, "-n", *args, "-h", inst.host, "-p", str(inst.port), "-U", APP_USER,
            inst.db(db)]
    return run_pgbench(argv, clean_env(PGPASSWORD=APP_PASS, PGCONNECT_TIMEOUT=60))


# ---------------------------------------------------------------------------------------
# psql


@pytest.fixture
def psql(pg):
    """psql(inst, *args, user=, password=, db=, unix=False, input=None) -> CompletedProcess."""

    def run(inst, *args, user=APP_USER, password=APP_PASS, db="postgres", unix=False,
            input=None, timeout=120, check=True):
        argv = [pg.psql_bin, "-X", "-v", "ON_ERROR_STOP=1", "-h",
                inst.sockdir if unix else inst.host, "-p", str(inst.port), "-U", user, "-d",
                inst.db(db)] + list(args)
        env = clean_env(PGCONNECT_TIMEOUT=60)
        if password is not None:
            env["PGPASSWORD"] = password
        r = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                           env=env)
        if check:
            assert r.returncode == 0, (
                f"psql {args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    return run


# ---------------------------------------------------------------------------------------
# raw wire protocol


class PgError(Exception):
    """An ErrorResponse: .fields maps field codes (S, V, C, M, D, H, P, ...) to values."""

    def __init__(self, fields):
        self.fields = fields
        self.sqlstate = fields.get("C")
        super().__init__(f"{fields.get('S')} {fields.get('C')}: {fields.get('M')}")


class ConnectionClosed(Exception):
    pass


def parse_data_row(payload):
    """A DataRow's columns as str (text format), None for NULL."""
    n = struct.unpack("!H", payload[:2])[0]
    off, row = 2, []
    for _ in range(n):
        ln = struct.unpack("!i", payload[off:off + 4])[0]
        off += 4
        if ln < 0:
            row.append(None)
        else:
            row.append(payload[off:off + ln].decode())
            off += ln
    return row


def parse_fields(payload):
    fields = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


class Wire:
    """A minimal PostgreSQL v3 client over a raw socket, for malformed input and for
    reading ErrorResponse fields that drivers hide. Speaks cleartext, md5 and
    SCRAM-SHA-256 (and verifies the server's SCRAM signature)."""

    PROTO_V3 = 196608

    def __init__(self, host, port, timeout=20.0, unix_dir=None):
        if unix_dir:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(os.path.join(unix_dir, f".s.PGSQL.{port}"))
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.nsent = 0   # bytes sent and received on the socket, for byte-count checks
        self.nrecv = 0
        self.auth_codes = []
        self.params = {}
        self.notices = []
        self.backend_key = None
        self.negotiate = None

    @classmethod
    def to(cls, inst, **kw):
        return cls(inst.host, inst.port, **kw)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- bytes
    def send(self, data):
        self.sock.sendall(data)
        self.nsent += len(data)

    def send_quietly(self, data):
        """Sends, ignoring a peer that has already closed (it may answer and close first)."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self, n):
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise ConnectionClosed(f"closed after {len(self.buf)} of {n} bytes")
            self.nrecv += len(chunk)
            self.buf += chunk

    def recv_exact(self, n):
        self._fill(n)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_byte(self):
        return self.recv_exact(1)

    def read_msg(self):
        """(type char, payload). Raises ConnectionClosed on EOF."""
        hdr = self.recv_exact(5)
        t, length = chr(hdr[0]), struct.unpack("!I", hdr[1:])[0]
        if length < 4:
            raise AssertionError(f"server sent a message {t!r} with length {length}")
        return t, self.recv_exact(length - 4)

    def at_eof(self, timeout=20.0):
        """True if the peer closes with nothing more to read (waits up to TIMEOUT)."""
        if self.buf:
            return False
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(1)
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(old)
        if chunk:
            self.buf += chunk
            return False
        return True

    # -- messages
    @staticmethod
    def startup_packet(params, proto=PROTO_V3):
        body = struct.pack("!I", proto)
        for k, v in params.items():
            body += k.encode() + b"\0" + v.encode() + b"\0"
        body += b"\0"
        return struct.pack("!I", len(body) + 4) + body

    @staticmethod
    def msg(t, payload=b""):
        return t.encode() + struct.pack("!I", len(payload) + 4) + payload

    def send_startup(self, user=None, database=None, proto=PROTO_V3, **params):
        p = {}
        if user is not None:
            p["user"] = user
        if database is not None:
            p["database"] = database
        p.update(params)
        self.send(self.startup_packet(p, proto))

    def expect_error(self):
        """Reads until an ErrorResponse (skipping notices etc.) and returns its fields."""
        while True:
            t, payload = self.read_msg()
            if t == "E":
                return parse_fields(payload)
            if t == "N":
                self.notices.append(parse_fields(payload))

    # -- authentication
    def authenticate(self, user, password):
        """After the startup packet: answers authentication requests until AuthenticationOk
        and ReadyForQuery. Raises PgError on an ErrorResponse."""
        scram = None
        while True:
            t, p = self.read_msg()
            if t == "E":
                raise PgError(parse_fields(p))
            if t == "N":
                self.notices.append(parse_fields(p))
            elif t == "v":
                minor, n = struct.unpack("!II", p[:8])
                self.negotiate = (minor, [x.decode() for x in p[8:].split(b"\0")[:n]])
            elif t == "R":
                code = struct.unpack("!I", p[:4])[0]
                self.auth_codes.append(code)
                if code == 0:
                    pass
                elif code == 3:
                    self.send(self.msg("p", password.encode() + b"\0"))
                elif code == 5:
                    salt = p[4:8]
                    inner = hashlib.md5((password + user).encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + salt).hexdigest()
                    self.send(self.msg("p", b"md5" + outer.encode() + b"\0"))
                elif code == 10:
                    mechs = [m.decode() for m in p[4:].split(b"\0") if m]
                    assert "SCRAM-SHA-256" in mechs, mechs
                    scram = _ScramClient(password)
                    first = scram.client_first()
                    self.send(self.msg("p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first))
                                       + first))
                elif code == 11:
                    self.send(self.msg("p", scram.client_final(p[4:])))
                elif code == 12:
                    scram.verify_server_final(p[4:])
                else:
                    raise AssertionError(f"unsupported authentication request {code}")
            elif t == "S":
                k, v = p.split(b"\0")[:2]
                self.params[k.decode()] = v.decode()
            elif t == "K":
                self.backend_key = struct.unpack("!II", p[:8])
            elif t == "Z":
                return p
            else:
                raise AssertionError(f"unexpected message {t!r} during login")

    def login(self, user=APP_USER, password=APP_PASS, database="postgres", proto=PROTO_V3,
              **params):
        self.send_startup(user, database, proto, **params)
        return self.authenticate(user, password)

    def query(self, sql):
        """Simple query; returns the rows (lists of str/None) of the last result set."""
        self.send(self.msg("Q", sql.encode() + b"\0"))
        rows, err = [], None
        while True:
            t, p = self.read_msg()
            if t == "T":
                rows = []
            elif t == "D":
                rows.append(parse_data_row(p))
            elif t == "E":
                err = PgError(parse_fields(p))
            elif t == "N":
                self.notices.append(parse_fields(p))
            elif t == "Z":
                if err:
                    raise err
                return rows

    def terminate(self):
        self.send_quietly(self.msg("X"))
        self.close()


class _ScramClient:
    def __init__(self, password):
        self.password = password.encode()
        self.nonce = base64.b64encode(secrets.token_bytes(18)).decode()

    def client_first(self):
        self.first_bare = f"n=,r={self.nonce}"
        return ("n,," + self.first_bare).encode()

    def client_final(self, server_first):
        server_first = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        assert attrs["r"].startswith(self.nonce), "server nonce does not extend ours"
        salt = base64.b64decode(attrs["s"])
        iters = int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iters)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        self.auth_message = f"{self.first_bare},{server_first},{without_proof}".encode()
        sig = hmac.new(stored_key, self.auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        self.server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify_server_final(self, data):
        data = data.decode()
        assert data.startswith("v="), f"SCRAM server-final: {data}"
        want = hmac.new(self.server_key, self.auth_message, hashlib.sha256).digest()
        assert base64.b64decode(data[2:]) == want, "SCRAM server signature mismatch"


# ---------------------------------------------------------------------------------------
# extended-protocol messages (text parameters; None is NULL)


def parse(name, sql, types=()):
    return Wire.msg("P", name.encode() + b"\0" + sql.encode() + b"\0"
                    + struct.pack("!H", len(types)) + b"".join(struct.pack("!I", t) for t in types))


def bind(stmt, params=(), portal=""):
    body = portal.encode() + b"\0" + stmt.encode() + b"\0" + struct.pack("!H", 0)
    body += struct.pack("!H", len(params))
    for p in params:
        if p is None:
            body += struct.pack("!i", -1)
        else:
            v = str(p).encode()
            body += struct.pack("!i", len(v)) + v
    return Wire.msg("B", body + struct.pack("!H", 0))


def execute(portal="", rows=0):
    return Wire.msg("E", portal.encode() + b"\0" + struct.pack("!I", rows))


def describe(kind, name):
    return Wire.msg("D", kind.encode() + name.encode() + b"\0")


def close(kind, name):
    return Wire.msg("C", kind.encode() + name.encode() + b"\0")


SYNC = Wire.msg("S")
FLUSH = Wire.msg("H")


def extended(sql, params=()):
    """Parse/Bind/Describe/Execute/Sync of SQL with PARAMS (unnamed statement and portal)."""
    return parse("", sql) + bind("", params) + describe("P", "") + execute() + SYNC


class Sampler:
    """Calls sample() every INTERVAL seconds in a thread from __enter__ to __exit__, and
    once more after the stop (so the end is seen). setup()/teardown() run on the thread
    around the samples. __exit__ asserts that the thread stopped, that nothing raised,
    and that at least MIN_SAMPLES were taken (.count)."""

    interval = 0.1
    min_samples = 0

    def __init__(self):
        self.count = 0
        self.error = None
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def setup(self):
        pass

    def teardown(self):
        pass

    def sample(self):
        raise NotImplementedError

    def _run(self):
        try:
            self.setup()
            try:
                while True:
                    done = self._stop.is_set()
                    self.sample()
                    self.count += 1
                    if done:
                        return
                    self._stop.wait(self.interval)
            finally:
                self.teardown()
        except Exception as e:  # reported by __exit__
            self.error = repr(e)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(timeout=30)
        name = type(self).__name__
        assert not self._t.is_alive(), f"{name} is stuck"
        assert self.error is None, f"{name} failed: {self.error}"
        assert self.count >= self.min_samples, f"{name}: only {self.count} samples"


class PgSampler(Sampler):
    """A Sampler whose sample() queries PostgreSQL (PG) as the superuser with self.cur."""

    def __init__(self, pg):
        super().__init__()
        self.pg = pg

    def setup(self):
        self.conn = self.pg.super_connect()
        self.cur = self.conn.cursor()

    def teardown(self):
        self.conn.close()


class RssSampler(Sampler):
    """The peak VmRSS (kB) of PID, sampled every INTERVAL seconds (.peak)."""

    def __init__(self, pid, interval=0.1):
        super().__init__()
        self.pid, self.interval = pid, interval
        self.peak = 0

    def sample(self):
        try:
            self.peak = max(self.peak, vmrss_kb(self.pid))
        except (OSError, RuntimeError):
            pass  # the process is exiting: its peak is already known


def read_copy_out(argv, env, timeout=240):
    """Runs ARGV (a psql COPY ... TO STDOUT), counting its output as it streams;
    returns (exit code, bytes received, stderr)."""
    total = 0
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        while True:
            chunk = proc.stdout.read(1 << 20)
            if not chunk:
                break
            total += len(chunk)
        err = proc.stderr.read().decode(errors="replace")
        rc = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    return rc, total, err


def run_pgbench(argv, env, timeout=180):
    """Runs pgbench ARGV; asserts it succeeded, processed transactions, none failed and
    printed no error. Returns its output."""
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    assert m and int(m.group(1)) > 0, out
    m = re.search(r"number of failed transactions: (\d+)", out)
    if m:
        assert int(m.group(1)) == 0, out
    bad = [ln for ln in out.splitlines() if re.search(r"error|fatal|abort", ln, re.I)]
    assert not bad, out
    return out


@pytest.fixture(scope="session")
def direct():
    """True when the suite runs against PostgreSQL itself (PGCORO_TEST_DIRECT=1)."""
    return DIRECT


# ---------------------------------------------------------------------------------------
# helpers for the pooling-mode, cancel, timeout, limit and restart tests

CANCEL_REQUEST_CODE = 80877102


def edit_and_reload(inst, old, new):
    """Replaces OLD (which must be there) by NEW in INST's config file and sends SIGHUP."""
    with open(inst.config_path) as f:
        text = f.read()
    assert old in text, (old, text)
    with open(inst.config_path, "w") as f:
        f.write(text.replace(old, new))
    inst.proc.send_signal(signal.SIGHUP)


def wait_until(pred, what, timeout=20.0, interval=0.05):
    """Polls PRED until it returns a true value (returned); AssertionError after TIMEOUT."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(interval)


def console_show(inst, what, user, password, host=None):
    """SHOW WHAT on INST's admin console (as USER), as a list of {column: value}; HOST:
    another host than INST's (its unix socket directory, say)."""
    import psycopg2
    c = psycopg2.connect(host=host or inst.host, port=inst.port, user=user, password=password,
                         dbname="pgcoro", connect_timeout=30)
    try:
        c.autocommit = True
        cur = c.cursor()
        cur.execute(f"SHOW {what}")
        names = [d.name for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        c.close()


def pg_rows(pg, sql, args=None, db="postgres"):
    """Runs SQL on PostgreSQL itself (PG: a Postgres) as the superuser; the rows or None."""
    c = pg.super_connect(db)
    try:
        cur = c.cursor()
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else None
    finally:
        c.close()


def client_backends(pg, db, user=None):
    """[(pid, usename, state, query)] of PostgreSQL's client backends on database DB (and
    user USER), not counting the asking one."""
    sql = ("select pid, usename, state, query from pg_stat_activity where datname = %s "
           "and backend_type = 'client backend' and pid <> pg_backend_pid()")
    args = [db]
    if user is not None:
        sql += " and usename = %s"
        args.append(user)
    return pg_rows(pg, sql + " order by pid", args)


def current_user(inst, user, password, db="postgres", **kw):
    """Logs in to INST as USER (psycopg2) and returns what SELECT current_user says."""
    c = inst.connect(user=user, password=password, db=db, **kw)
    try:
        cur = c.cursor()
        cur.execute("SELECT current_user")
        return cur.fetchone()[0]
    finally:
        c.close()


def recreate_database(pg, name, owner=APP_USER, setup_sql=None):
    """Drops (forcing out its sessions) and creates database NAME owned by OWNER, then runs
    SETUP_SQL in it as the superuser."""
    pg.psql_super(f"DROP DATABASE IF EXISTS {name} WITH (FORCE);\n"
                  f"CREATE DATABASE {name} OWNER {owner};")
    if setup_sql:
        pg.psql_super(setup_sql, db=name)


class Background:
    """Runs FN in a thread, keeping its result or exception."""

    def __init__(self, fn):
        self.result = self.exc = None
        self._t = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._t.start()

    def _run(self, fn):
        try:
            self.result = fn()
        except BaseException as e:  # examined by the test
            self.exc = e

    def join(self, timeout):
        self._t.join(timeout)
        assert not self._t.is_alive(), f"still running after {timeout} s"
        return self


def send_cancel_request(pid, key, host="127.0.0.1", port=None, unix_dir=None, timeout=20.0):
    """Sends a CancelRequest (PID, KEY) on a new connection (TCP, or the unix socket in
    UNIX_DIR) and waits, up to TIMEOUT, for the peer to close it. Returns True if it
    closed without sending anything (what PostgreSQL does)."""
    if unix_dir:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(os.path.join(unix_dir, f".s.PGSQL.{port}"))
    else:
        s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(struct.pack("!IIII", 16, CANCEL_REQUEST_CODE, pid & 0xFFFFFFFF,
                              key & 0xFFFFFFFF))
        try:
            data = s.recv(1)
        except ConnectionResetError:
            return True
        return data == b""
    finally:
        s.close()


def wire_exec(w, sql):
    """Sends SQL as a simple query on Wire W and reads to its end. Returns (rows, errors,
    ready): ERRORS the ErrorResponse field dicts, READY the transaction status byte of
    the ReadyForQuery (str) or None if the connection closed first. Socket timeouts
    propagate (a hang is never mistaken for an answer)."""
    w.send(Wire.msg("Q", sql.encode() + b"\0"))
    rows, errors = [], []
    try:
        while True:
            t, p = w.read_msg()
            if t == "T":
                rows = []
            elif t == "D":
                rows.append(parse_data_row(p))
            elif t == "E":
                errors.append(parse_fields(p))
            elif t == "N":
                w.notices.append(parse_fields(p))
            elif t == "Z":
                return rows, errors, p.decode()
    except ConnectionClosed:
        return rows, errors, None


JDBC_JAR = "/usr/share/java/postgresql.jar"


def run_jdbc(inst, program, *args, timeout=240, db="postgres", checkpoint=None):
    """Runs tests/integration/java/PROGRAM.java with pgjdbc against INST's database DB
    (INST: anything with host, port and db(alias)) as APP_USER, with ARGS after the URL,
    user and password. CHECKPOINT: called with each line of its output that starts with
    '@' (the program then waits for a line on its stdin, sent when the call returns).
    Returns its exit code and output (stdout then stderr); killed after TIMEOUT."""
    assert shutil.which("java") and os.path.exists(JDBC_JAR), \
        "needs default-jdk-headless and libpostgresql-jdbc-java (make deps)"
    src = os.path.join(HERE, "java", f"{program}.java")
    url = f"jdbc:postgresql://{inst.host}:{inst.port}/{inst.db(db)}?sslmode=disable"
    argv = ["java", "-cp", JDBC_JAR, src, url, APP_USER, APP_PASS, *args]
    if checkpoint is None:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           env=clean_env())
        return r.returncode, r.stdout + r.stderr
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, text=True, env=clean_env())
        timer = threading.Timer(timeout, proc.kill)  # a hung program: its own pid only
        timer.start()
        try:
            out = []
            for line in proc.stdout:
                out.append(line)
                if line.startswith("@"):
                    checkpoint(line.rstrip("\n"))
                    proc.stdin.write("\n")
                    proc.stdin.flush()
            rc = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        return rc, "".join(out) + err.read()
