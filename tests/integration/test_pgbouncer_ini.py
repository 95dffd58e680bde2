"""PgBouncer's pgbouncer.ini taken as it is (step 10): a Debian-style file ([databases]
first in PgBouncer's form, %include, [users], [pgbouncer]) starts pgcoro and serves;
PgBouncer's keys either work, warn once naming what pgcoro does instead, or — for what
pgcoro lacks — are refused as not supported yet, and a key PgBouncer refuses is refused;
PgBouncer's command line (-q, -d, -u, -v, -V, -h, -R) and its admin console reached as
user pgbouncer over the unix socket by the same OS user."""

import hashlib
import os
import re
import signal
import subprocess
import threading

import pytest

from conftest import (APP_PASS, APP_USER, ASAN_OPTIONS, MD5_PASS, MD5_USER, UBSAN_OPTIONS,
                      PgError, Pgcoro, Wire, clean_env, default_users, extended,
                      parse_data_row, parse_fields, pg_rows, pid_alive, stop_instances,
                      wait_port, wait_until, wire_exec)

pytestmark = pytest.mark.pooler_only

SAN_ENV = dict(ASAN_OPTIONS=ASAN_OPTIONS, UBSAN_OPTIONS=UBSAN_OPTIONS)


class PgbInst(Pgcoro):
    """pgcoro started on a pgbouncer.ini of the test's, with PgBouncer's command line. Its
    stdout and stderr go to pgcoro.stderr, its log to the file the ini names."""

    def __init__(self, name, workdir, pg, text, files=None, users=None):
        super().__init__(name, workdir, pg, {}, {}, users or default_users(), False)
        self.stderr_path = os.path.join(workdir, "pgcoro.stderr")
        self.logpath = os.path.join(workdir, "pgbouncer.log")
        self.pidfile = os.path.join(workdir, "pgbouncer.pid")
        subst = dict(dir=workdir, port=self.port, pgport=pg.port, pgsock=pg.sockdir)
        for fname, ftext in (files or {}).items():
            with open(os.path.join(workdir, fname), "w") as f:
                f.write(ftext.format(**subst))
        self.config_path = os.path.join(workdir, "pgbouncer.ini")
        with open(self.config_path, "w") as f:
            f.write(text.format(**subst))

    def start_with(self, bin_path, *args, tcp=True):
        """Runs BIN_PATH ARGS (ARGS name the ini) and waits until it serves."""
        self.logf = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([bin_path, *args], stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf,
                                     env=clean_env(**SAN_ENV), cwd=self.workdir)
        self.pid = self.proc.pid
        sock = os.path.join(self.sockdir, f".s.PGSQL.{self.port}")
        if tcp:
            wait_port(self.port, self.proc, timeout=30, what="pgcoro")
        else:
            wait_until(lambda: os.path.exists(sock) or self.proc.poll() is not None,
                       "the unix socket", timeout=30)
            assert self.proc.poll() is None, self.log_tail()

    def stderr_text(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_text(self):
        try:
            with open(self.logpath, errors="replace") as f:
                log = f.read()
        except FileNotFoundError:
            log = ""
        return log + self.stderr_text()


@pytest.fixture
def pgb(request, pg, pgcoro_bin, session_root):
    """pgb(text, *args, files=None, users=None, tcp=True) -> PgbInst: writes TEXT (with
    {dir}, {port}, {pgport}, {pgsock}) as DIR/pgbouncer.ini and FILES beside it, starts
    pgcoro with ARGS (the ini path appended unless ARGS hold "{ini}"). Each instance is
    stopped at teardown, which asserts exit code 0 and a sanitizer-clean log."""
    instances = []
    request.node._pgcoro_instances = instances

    def start(text, *args, files=None, users=None, tcp=True):
        workdir = os.path.join(session_root, f"pgb-{request.node.name}-{len(instances)}")
        os.makedirs(workdir)
        os.chmod(workdir, 0o755)
        inst = PgbInst(f"{request.node.name}-{len(instances)}", workdir, pg, text, files, users)
        instances.append(inst)
        argv = [a.replace("{ini}", inst.config_path) for a in args]
        if not any(inst.config_path in a for a in argv):
            argv.append(inst.config_path)
        inst.start_with(pgcoro_bin, *argv, tcp=tcp)
        return inst

    yield start
    stop_instances(instances)


def run(pgcoro_bin, *args, cwd=None):
    return subprocess.run([pgcoro_bin, *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env=clean_env(**SAN_ENV))


def console(inst, sql, user="pgbouncer"):
    """SQL on the admin console (database pgbouncer) over the unix socket, logged in as
    USER with no password (as PgBouncer's own tools and tests do)."""
    with Wire(None, inst.port, unix_dir=inst.sockdir) as w:
        w.send_startup(user, "pgbouncer")
        w.authenticate(user, "")
        rows, errors, _ = wire_exec(w, sql)
        assert not errors, errors
        return rows


DEBIAN = """\
;; a pgbouncer.ini as Debian ships it, filled in: [databases] first, in PgBouncer's form
[databases]
postgres = host=127.0.0.1 port={pgport} dbname=postgres
tuned = host=127.0.0.1 port={pgport} dbname=postgres pool_size=3 reserve_pool=1 connect_query='SET work_mem = ''1234kB''' datestyle='SQL, DMY' timezone=Asia/Tokyo client_encoding=LATIN1 application_name=tunedapp server_lifetime=600

[users]
app = pool_mode=session

[pgbouncer]
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir = {dir}
auth_type = md5
auth_file = {dir}/userlist.txt
admin_users = {md5user}
stats_users = nobody
pool_mode = transaction
max_client_conn = 100
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
server_check_query = <empty>
server_check_delay = 0
tcp_keepalive = 1
tcp_keepidle = 60
%include {dir}/more.ini
"""

MORE = """\
; included: its own sections
[databases]
included = host=127.0.0.1 port={pgport} dbname=postgres
[pgbouncer]
log_stats = 0
pkt_buf = 8192
"""


def test_debian_pgbouncer_ini_serves(pgb, pg):
    """`pgcoro -q pgbouncer.ini`: every part of the file in force, nothing on stderr, the
    log in the logfile, one warning per key pgcoro does differently."""
    inst = pgb(DEBIAN.replace("{md5user}", MD5_USER), "-q", files={"more.ini": MORE})
    # a plain database, the one from the %include, over TCP and the unix socket
    for db in ("postgres", "included"):
        with Wire.to(inst) as w:
            w.login(APP_USER, APP_PASS, db, extra_float_digits="2")
            assert w.query("SELECT 40 + 2") == [["42"]]
    with Wire(None, inst.port, unix_dir=inst.sockdir) as w:
        w.login(MD5_USER, MD5_PASS, "postgres")
        assert w.query("SELECT 1") == [["1"]]
    # PgBouncer's database settings: connect_query, datestyle, timezone, client_encoding
    # and application_name reach the server ([users] makes app's pool a session pool)
    with Wire.to(inst) as w:
        w.login(APP_USER, APP_PASS, "tuned")
        assert w.query("SHOW work_mem") == [["1234kB"]]
        assert w.query("SHOW DateStyle") == [["SQL, DMY"]]
        assert w.query("SHOW TimeZone") == [["Asia/Tokyo"]]
        assert w.query("SHOW client_encoding") == [["LATIN1"]]
        assert w.query("SHOW application_name") == [["tunedapp"]]
        assert w.params.get("client_encoding") == "LATIN1", w.params
    # the admin console: PgBouncer's database and user, over the unix socket, by the OS
    # user pgcoro runs as: no password, every command
    assert console(inst, "SHOW VERSION")[0][0].startswith("pgcoro ")
    conf = dict((r[0], r[1]) for r in console(inst, "SHOW CONFIG"))
    assert conf["pool_mode"] == "transaction" and conf["pkt_buf"] == "8192", conf
    assert conf["conffile"] == inst.config_path
    # ... but not over TCP, where user pgbouncer is nobody's
    with Wire.to(inst) as w:
        w.send_startup("pgbouncer", "pgbouncer")
        with pytest.raises(PgError):
            w.authenticate("pgbouncer", "")
    # the pidfile, the logfile, quiet stderr, one warning per differing key
    with open(inst.pidfile) as f:
        assert int(f.read()) == inst.proc.pid
    log = open(inst.logpath).read()
    assert "pgcoro 0.1.0 started" in log or "started" in log, log
    assert inst.stderr_text() == "", inst.stderr_text()
    for key in ("pkt_buf",):
        hits = re.findall(rf"WARNING \S+:\d+: {key}: \S", log)
        assert len(hits) == 1, (key, log)
    assert "more.ini:6: pkt_buf: no effect" in log, log
    for key in ("server_check_query", "tcp_keepalive", "log_stats", "listen_addr"):
        assert f": {key}: " not in log, (key, log)


# the [pgbouncer] lines most files here share
COMMON = """\
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir = {dir}
auth_type = md5
auth_file = {dir}/userlist.txt
logfile = {dir}/pgbouncer.log
"""

LB = """\
[databases]
rr = host=127.0.0.1,{pgsock} port={pgport} dbname=postgres pool_size=2
inorder = host=127.0.0.1,{pgsock} port={pgport} dbname=postgres pool_size=2 load_balance_hosts=disable
[pgbouncer]
pool_mode = session
""" + COMMON


def test_load_balance_hosts(pgb, pg):
    """A host list is used round-robin in a pgbouncer.ini (PgBouncer's default): two
    sessions' servers come over both hosts; with load_balance_hosts=disable, over the
    first."""
    inst = pgb(LB)

    def origins(db, appname):
        with Wire.to(inst) as a, Wire.to(inst) as b:
            a.login(APP_USER, APP_PASS, db, application_name=appname)
            b.login(APP_USER, APP_PASS, db, application_name=appname)
            rows = pg_rows(pg, "SELECT coalesce(host(client_addr), 'unix') FROM "
                               "pg_stat_activity WHERE application_name = %s", (appname,))
            return sorted(r[0] for r in rows)

    assert origins("rr", "lb-rr") == ["127.0.0.1", "unix"]
    assert origins("inorder", "lb-in") == ["127.0.0.1", "127.0.0.1"]


STICKY = """\
[databases]
sticky = host=unresolvable-host.invalid,127.0.0.1 port={pgport} dbname=postgres load_balance_hosts=disable
warm = host=unresolvable-host.invalid,127.0.0.1 port={pgport} dbname=postgres user=%s password=%s application_name=lb-warm min_pool_size=2 load_balance_hosts=disable
[pgbouncer]
pool_mode = session
""" % (APP_USER, APP_PASS) + COMMON

DNS_FAILED = "closing because: server DNS lookup failed"


def test_load_balance_hosts_disable_sticky(pgb, pg):
    """load_balance_hosts=disable as PgBouncer: each server connection tries one host; a
    failure there (logged with PgBouncer's "closing because: server DNS lookup failed")
    moves the pool on to the next host, where its later connections stay. The same with
    pgcoro's own login (md5user's auth_file entry is an md5 secret), and a host not known
    to work is tried by one connection at a time (min_pool_size=2: one failure, not two).
    Before, libpq was given both hosts and the first one's failure never showed."""
    md5 = "md5" + hashlib.md5((MD5_PASS + MD5_USER).encode()).hexdigest()
    inst = pgb(STICKY, users={APP_USER: APP_PASS, MD5_USER: md5})

    def failures():
        with open(inst.logpath, errors="replace") as f:
            return f.read().count(DNS_FAILED)

    def origins(user, password, appname):
        with Wire.to(inst) as a:
            a.login(user, password, "sticky", application_name=appname)
            with Wire.to(inst) as b:  # after A's server: the host it found stays
                b.login(user, password, "sticky", application_name=appname)
                rows = pg_rows(pg, "SELECT coalesce(host(client_addr), 'unix') FROM "
                                   "pg_stat_activity WHERE application_name = %s", (appname,))
                return sorted(r[0] for r in rows)

    wait_until(lambda: len(pg_rows(pg, "SELECT 1 FROM pg_stat_activity WHERE "
                                       "application_name = 'lb-warm'")) == 2,
               "min_pool_size=2 servers of the forced user's pool")
    assert failures() == 1, inst.log_text()
    assert origins(APP_USER, APP_PASS, "lb-app") == ["127.0.0.1", "127.0.0.1"]
    assert failures() == 2, inst.log_text()
    assert origins(MD5_USER, MD5_PASS, "lb-md5") == ["127.0.0.1", "127.0.0.1"]
    assert failures() == 3, inst.log_text()
    inst.assert_serving(db="sticky")


PQEXEC = """\
[databases]
sess = host=127.0.0.1 port={pgport} dbname=postgres pool_mode=session
tx = host=127.0.0.1 port={pgport} dbname=postgres pool_mode=transaction
[pgbouncer]
disable_pqexec = 1
""" + COMMON


def test_disable_pqexec(pgb):
    """disable_pqexec = 1 as PgBouncer: the extended query protocol serves, a simple Query
    closes the client with FATAL 08P01 "PQexec disallowed" (not passed to the server),
    whether it holds a server (session mode: the relay) or not (transaction mode, idle);
    PgBouncer's log line names it. The admin console, which only speaks the simple
    protocol, is exempt (PgBouncer closes its clients too, leaving it unusable). Before,
    disable_pqexec = 1 was refused as not supported yet."""
    inst = pgb(PQEXEC)
    for db in ("sess", "tx"):
        with Wire.to(inst) as w:
            w.login(APP_USER, APP_PASS, db)
            w.send(extended("SELECT $1::int * 2", ("21",)))
            rows = []
            while True:
                t, p = w.read_msg()
                assert t != "E", parse_fields(p)
                if t == "D":
                    rows.append(parse_data_row(p))
                if t == "Z":
                    break
            assert rows == [["42"]], rows
            rows, errors, ready = wire_exec(w, "SELECT pg_sleep(0)")
            assert ready is None and rows == [], (rows, ready)
            assert [(e.get("S"), e.get("C"), e.get("M")) for e in errors] == \
                [("FATAL", "08P01", "PQexec disallowed")], errors
    assert console(inst, "SHOW VERSION")
    with open(inst.logpath, errors="replace") as f:
        log = f.read()
    assert len(re.findall(r'client \d+ .*: client used "Query" packet type', log)) == 2, log
    assert len(re.findall(r"client \d+ .*closing.*: PQexec disallowed", log)) == 2, log


LIMITS = """\
[databases]
postgres = host=127.0.0.1 port={pgport} dbname=postgres
capped = host=127.0.0.1 port={pgport} dbname=postgres max_db_client_connections=1
[users]
app = max_user_client_connections=2 query_timeout=1 client_idle_timeout=2
[pgbouncer]
pool_mode = session
""" + COMMON


def test_users_and_client_limits(pgb):
    """[users] and [databases] settings of PgBouncer's: client connection limits per
    database and per user, and a user's own query_timeout and client_idle_timeout."""
    inst = pgb(LIMITS)
    with Wire.to(inst) as a, Wire.to(inst) as b:
        a.login(MD5_USER, MD5_PASS, "capped")
        b.send_startup(MD5_USER, "capped")
        with pytest.raises(PgError) as e:
            b.authenticate(MD5_USER, MD5_PASS)
        assert e.value.fields.get("C") == "53300", e.value.fields
        assert "max_db_client_connections" in e.value.fields.get("M", "")
    with Wire.to(inst) as a, Wire.to(inst) as b, Wire.to(inst) as c:
        a.login(APP_USER, APP_PASS, "postgres")
        b.login(APP_USER, APP_PASS, "postgres")
        c.send_startup(APP_USER, "postgres")
        with pytest.raises(PgError) as e:
            c.authenticate(APP_USER, APP_PASS)
        assert "max_user_client_connections" in e.value.fields.get("M", ""), e.value.fields
        # app's query_timeout (1 s): as PgBouncer's, the client is closed ("query timeout")
        rows, errors, ready = wire_exec(a, "SELECT pg_sleep(30)")
        assert ready is None and [e.get("C") for e in errors] == ["57014"], (errors, ready)
        assert "query timeout (query_timeout = 1s)" in errors[0].get("M", ""), errors
        assert a.at_eof(timeout=20)
        # app's client_idle_timeout (2 s): b, idle, is closed
        fields = b.expect_error()
        assert fields.get("C") == "57P05", fields
    # md5user has none of app's limits
    with Wire.to(inst) as a:
        a.login(MD5_USER, MD5_PASS, "postgres")
        rows, errors, ready = wire_exec(a, "SELECT pg_sleep(1.5), 'slept'")
        assert errors == [] and rows == [["", "slept"]], (rows, errors)


AUTH_USER = """\
[databases]
looked_up = host=127.0.0.1 port={pgport} dbname=postgres user={app} password={apppass} auth_user=someone
plain = host=127.0.0.1 port={pgport} dbname=postgres user={app} password={apppass}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir = {dir}
auth_type = trust
logfile = {dir}/pgbouncer.log
"""


def test_auth_user_is_refused_not_ignored(pgb):
    """auth_user is honoured, not ignored: with auth_type trust and no auth_file, where an
    unknown name is otherwise let in, a user of a database with auth_user is looked up
    with auth_query first (here as app, who may not read pg_authid: refused, the server's
    error logged). tests/integration/test_auth_query.py tests the look-ups that succeed."""
    inst = pgb(AUTH_USER.replace("{app}", APP_USER).replace("{apppass}", APP_PASS))
    with Wire.to(inst) as w:
        w.login("whoever", "", "plain")
        assert w.query("SELECT current_user") == [[APP_USER]]
    with Wire.to(inst) as w:
        w.send_startup("whoever", "looked_up")
        with pytest.raises(PgError) as e:
            w.authenticate("whoever", "")
        assert e.value.fields.get("C") == "08P01", e.value.fields
        assert e.value.fields.get("M") == "bouncer config error", e.value.fields
    assert "permission denied for table pg_authid" in inst.log_text(), inst.log_text()


CHECK = """\
[databases]
postgres = host=127.0.0.1 port=5432 dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
auth_type = trust
{line}
"""


@pytest.mark.parametrize("line,exit_code,message", [
    ("pkt_buf = 512", 0, "pkt_buf: no effect: pgcoro reads each message whole"),
    ("dns_max_ttl = 30", 0, "dns_max_ttl: no effect: pgcoro keeps no DNS cache"),
    ("cancel_wait_timeout = 3", 0, "cancel_wait_timeout: no effect: pgcoro sends a cancel"),
    ("server_login_retry = 15", 0, "server_login_retry: differs from PgBouncer's"),
    ("auth_dbname = pgbouncer", 2,
     'cannot use the reserved "pgbouncer" database as an auth_dbname'),
    ("peer_id = 16384", 2, "invalid value \"16384\" for peer_id: out of range (0..16383)"),
    ("server_tls_ciphers = NO-SUCH", 2, 'invalid value "NO-SUCH" for server_tls_ciphers: '),
    ("auth_type = ldap", 2, "auth_type ldap needs auth_ldap_options"),
    ("disable_pqexec = maybe", 2, "invalid value \"maybe\" for disable_pqexec: expected 0 or 1"),
    ("[peers]\n1 = port=6000", 2, "peer 1: no host"),
    ("service_name = pgbouncer", 2, "unknown key \"service_name\" in [pgbouncer]"),
    ("no_such_key = 1", 2, "unknown key \"no_such_key\" in [pgbouncer]"),
])
def test_each_kind_of_key(pgcoro_bin, tmp_path, line, exit_code, message):
    """--check-config of a pgbouncer.ini: a key pgcoro does differently warns once,
    naming what pgcoro does instead; a value it cannot honour yet is refused as not
    supported yet; a key PgBouncer refuses is refused."""
    path = tmp_path / "pgbouncer.ini"
    path.write_text(CHECK.format(line=line))
    r = run(pgcoro_bin, "--check-config", str(path))
    assert r.returncode == exit_code, (r.returncode, r.stderr)
    assert r.stderr.count(message) == 1, r.stderr
    if exit_code == 0:
        assert r.stderr.count("warning") == 1, r.stderr


def test_command_line(pgb, pgcoro_bin, tmp_path):
    """PgBouncer's switches: -V (its first line is SHOW VERSION's), -h, -v (debug lines),
    -u with an unknown user, -R (starts normally when no pooler answers on the unix
    socket, as PgBouncer's), and
    pgcoro's -c."""
    r = run(pgcoro_bin, "-V")
    assert r.returncode == 0, r.stderr
    version = r.stdout.splitlines()[0]
    assert run(pgcoro_bin, "--version").stdout.splitlines()[0] == version
    for flag in ("-h", "--help"):
        r = run(pgcoro_bin, flag)
        assert r.returncode == 0 and "--quiet" in r.stdout and "--daemon" in r.stdout, r
    r = run(pgcoro_bin, "--no-such-flag", "x.ini")
    assert r.returncode == 2, r
    ini = tmp_path / "bad-user.ini"
    ini.write_text("[pgbouncer]\nlisten_addr = 127.0.0.1\nauth_type = trust\n")
    r = run(pgcoro_bin, "-u", "no-such-os-user-here", str(ini))
    assert r.returncode == 2 and "no-such-os-user-here" in r.stderr, r

    inst = pgb(LB, "-v", "-R", "-c", "{ini}")
    assert console(inst, "SHOW VERSION") == [[version]]
    log = inst.log_text()
    assert " DEBUG " in log, log
    assert "-R (online restart): no running pgcoro on the unix socket: starting normally" \
        in log, log


DAEMON = """\
[databases]
postgres = host=127.0.0.1 port={pgport} dbname=postgres
[pgbouncer]
pidfile = {dir}/pgbouncer.pid
""" + COMMON


def test_daemon(pg, pgcoro_bin, session_root):
    """-d: the command returns 0 at once, the daemon (the pid in the pidfile) serves, logs
    to the logfile only, and stops on SIGQUIT (PgBouncer's immediate shutdown); -d without
    a pidfile is refused."""
    workdir = os.path.join(session_root, "pgb-daemon")
    os.makedirs(workdir)
    os.chmod(workdir, 0o755)
    inst = PgbInst("daemon", workdir, pg, DAEMON)
    pid = None
    try:
        r = run(pgcoro_bin, "-d", inst.config_path, cwd=workdir)
        assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r
        wait_until(lambda: os.path.exists(inst.pidfile) and open(inst.pidfile).read().strip(),
                   "the pidfile")
        pid = int(open(inst.pidfile).read())
        wait_port(inst.port, timeout=30, what="the daemon")
        with Wire.to(inst) as w:
            w.login(APP_USER, APP_PASS, "postgres")
            assert w.query("SELECT 7") == [["7"]]
        os.kill(pid, signal.SIGQUIT)
        wait_until(lambda: not pid_alive(pid), "the daemon's exit", timeout=30)
        pid = None
        log = open(inst.logpath).read()
        assert "started" in log and "stopped" in log, log
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert marker not in log, log
    finally:
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    nopid = os.path.join(workdir, "nopid.ini")
    with open(nopid, "w") as f:
        f.write(open(inst.config_path).read().replace("pidfile =", "; pidfile ="))
    r = run(pgcoro_bin, "-d", nopid, cwd=workdir)
    assert r.returncode == 2 and "pidfile" in r.stderr, r


APPEND = """\
[databases]
postgres = host=127.0.0.1 port={pgport} dbname=postgres
[pgbouncer]
default_pool_size = 20
""" + COMMON


def test_appended_keys_win_on_reload(pgb):
    """As PgBouncer's tools and tests do: keys appended to the file (set a second time)
    take effect on SIGHUP; the later value wins."""
    inst = pgb(APPEND)
    with open(inst.config_path, "a") as f:
        f.write("default_pool_size = 3\nmax_client_conn = 55\n")
    inst.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in inst.log_text(), "the reload")
    conf = dict((r[0], r[1]) for r in console(inst, "SHOW CONFIG"))
    assert conf["default_pool_size"] == "3" and conf["max_client_conn"] == "55", conf


TLS_WAIT = """\
[databases]
tlsdb = host=127.0.0.1 port=PGTLSPORT dbname=postgres
[pgbouncer]
pool_mode = session
server_tls_sslmode = verify-ca
server_tls_ca_file = CAFILE
server_login_retry = 0.2
""" + COMMON


def test_waiting_client_waits_through_server_tls_failures(pgb, pg_tls, tls_certs):
    """As PgBouncer (its test_server_ssl_verify): a client waiting for a server waits
    through failed attempts on the way (here the server's certificate does not verify)
    past server_login_retry (0.2 s), until query_wait_timeout; the reload that fixes
    server_tls_ca_file serves it."""
    inst = pgb(TLS_WAIT.replace("PGTLSPORT", str(pg_tls.port))
               .replace("CAFILE", tls_certs.path("wrong_ca.crt")))
    result = {}
    w = Wire.to(inst, timeout=60)

    def run():
        try:
            w.login(APP_USER, APP_PASS, "tlsdb")
            result["served"] = w.query("select 42")
        except Exception as e:      # noqa: BLE001 - reported by the test
            result["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        # 50 + 100 + 200 + 200 + 200 ms of back-off: longer than server_login_retry
        wait_until(lambda: len(re.findall(r"\(tlsdb/app\): connection failed: .*certificate "
                                          r"verify failed", inst.log_text())) >= 6 or result,
                   "six failed attempts while the client waits")
        assert not result, f"the waiting client did not wait: {result}"
        with open(inst.config_path) as f:
            text = f.read()
        with open(inst.config_path, "w") as f:
            f.write(text.replace(tls_certs.path("wrong_ca.crt"), tls_certs.path("ca.crt")))
        inst.proc.send_signal(signal.SIGHUP)
        t.join(timeout=60)
    finally:
        w.close()
    assert result.get("served") == [["42"]], result


DEBIAN_EXAMPLE = "/usr/share/doc/pgbouncer/examples/pgbouncer.ini"


def test_debian_files(pgcoro_bin, tmp_path):
    """The files Debian's pgbouncer package ships (make deps installs it) load: its
    /etc/pgbouncer/pgbouncer.ini, its minimal example (md5 and no auth_file: PgBouncer
    starts, so pgcoro does, with a warning), and its annotated example with every key
    line uncommented — but service_name, which PgBouncer itself refuses on Linux, and
    resolv_conf's path, which pgcoro cannot honour yet — with a warning for just the keys
    pgcoro does differently."""
    for path in ("/etc/pgbouncer/pgbouncer.ini", "/usr/share/doc/pgbouncer/pgbouncer-minimal.ini"):
        r = run(pgcoro_bin, "--check-config", path)
        assert r.returncode == 0, (path, r.stderr)
    text = open(DEBIAN_EXAMPLE).read()
    every = re.sub(r"(?m)^;([a-z_0-9]+ *=)", r"\1", text)
    assert len(re.findall(r"(?m)^[a-z_0-9]+ *=", every)) >= 80
    refused = tmp_path / "refused.ini"
    refused.write_text(every)
    r = run(pgcoro_bin, "--check-config", str(refused))
    assert r.returncode == 2 and "is not supported yet" in r.stderr, r.stderr
    every = re.sub(r"(?m)^service_name *=.*$", "", every)
    every = re.sub(r"(?m)^resolv_conf *=.*$", "resolv_conf =", every)
    path = tmp_path / "every.ini"
    path.write_text(every)
    r = run(pgcoro_bin, "--check-config", str(path))
    assert r.returncode == 0, r.stderr
    warned = sorted(re.findall(r"warning: \S+:\d+: ([a-z_]+): ", r.stderr))
    assert warned == ["server_login_retry"], r.stderr
    with_service = tmp_path / "service.ini"
    with_service.write_text(every + "service_name = pgbouncer\n")
    r = run(pgcoro_bin, "--check-config", str(with_service))
    assert r.returncode == 2 and 'unknown key "service_name"' in r.stderr, r.stderr
