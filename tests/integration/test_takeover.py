"""Online restart (pgcoro -R, PgBouncer's takeover): under a light steady load the new
process takes the listeners, the clients and their servers, the old one exits, and every
client goes on on its own connection (a session client on its own backend); a takeover
cut short before SHUTDOWN leaves the old process serving. SHOW FDS is refused outside the
unix socket, to a non-admin, and before SUSPEND."""

import os
import signal
import subprocess
import threading
import time

import psycopg2
import pytest

from conftest import (ASAN_OPTIONS, SANITIZER_MARKERS, UBSAN_OPTIONS, clean_env, wait_until)

pytestmark = pytest.mark.pooler_only

ADMIN, ADMIN_PASS = "tkadmin", "tkadminpass"


def start(pgcoro_factory, pg):
    base = f"host=127.0.0.1 port={pg.port} dbname=postgres"
    return pgcoro_factory(
        settings={"admin_users": ADMIN, "stats_users": "app", "suspend_timeout": 20},
        users={ADMIN: ADMIN_PASS},
        databases={"tx": f"{base} pool_mode=transaction pool_size=3",
                   "sess": f"{base} pool_mode=session pool_size=4"})


def spawn_reboot(inst, env=None):
    """Starts `pgcoro -R` (INST's binary) on INST's config; returns (Popen, log path)."""
    logpath = os.path.join(inst.workdir, f"pgcoro-R-{time.monotonic_ns()}.log")
    logf = open(logpath, "wb")
    proc = subprocess.Popen(
        [inst.proc.args[0], "-R", "-c", inst.config_path], stdin=subprocess.DEVNULL,
        stdout=logf, stderr=logf, cwd=inst.workdir,
        env=clean_env(ASAN_OPTIONS=ASAN_OPTIONS, UBSAN_OPTIONS=UBSAN_OPTIONS, **(env or {})))
    logf.close()
    return proc, logpath


def read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def adopt(inst, proc, logpath):
    """INST is the new process from now on (the fixture stops and checks it at teardown);
    the old one must have exited 0, sanitizer-clean."""
    old = inst.proc
    rc = old.wait(timeout=60)
    old_log = inst.log_text()
    assert rc == 0 and not [m for m in SANITIZER_MARKERS if m in old_log], \
        f"old pgcoro exit code {rc}\n{inst.log_tail(60)}"
    inst.logf.close()
    inst.proc, inst.pid, inst.logpath = proc, proc.pid, logpath
    inst.logf = open(os.devnull, "wb")


def reboot(inst, env=None):
    """`pgcoro -R` on INST's config (ENV added to its environment), adopted as INST once
    the old process has exited (killed if that fails); returns its log path."""
    proc, logpath = spawn_reboot(inst, env)
    try:
        adopt(inst, proc, logpath)
    except BaseException:
        proc.kill()
        proc.wait(timeout=30)
        raise
    return logpath


class Loop(threading.Thread):
    """A transaction-mode client running short transactions until stopped."""

    def __init__(self, inst, n):
        super().__init__(daemon=True)
        self.conn = inst.connect(db="tx", application_name=f"loop{n}")
        self.conn.autocommit = True
        self.n = n
        self.done = 0
        self.errors = []
        self.stop = threading.Event()

    def run(self):
        cur = self.conn.cursor()
        while not self.stop.is_set():
            try:
                cur.execute("begin; select %s; commit", (self.n,))
                self.done += 1
            except psycopg2.Error as e:
                self.errors.append(repr(e))
                return
            time.sleep(0.005)


@pytest.fixture
def load(pgcoro_factory, pg):
    inst = start(pgcoro_factory, pg)
    loops = [Loop(inst, i) for i in range(3)]
    for t in loops:
        t.start()
    sessions = []
    for host in (inst.host, inst.sockdir, inst.host):
        c = psycopg2.connect(user="app", password="apppass", dbname="sess", host=host,
                             port=inst.port, connect_timeout=30)
        c.autocommit = True
        cur = c.cursor()
        cur.execute("select pg_backend_pid()")
        sessions.append((c, cur.fetchone()[0]))
    sessions[2][0].cursor().execute("begin; create temp table t (x int)")  # left open
    wait_until(lambda: all(t.done > 5 for t in loops), "the load runs")
    try:
        yield inst, loops, sessions
    finally:
        for t in loops:
            t.stop.set()
        for t in loops:
            t.join(timeout=30)
            t.conn.close()
        for c, _ in sessions:
            c.close()


def goes_on(inst, loops, sessions):
    """Every client's next query works on its own connection, a session on its backend."""
    marks = [t.done for t in loops]
    wait_until(lambda: all(t.done > m + 5 or t.errors for t, m in zip(loops, marks)),
               "the transaction clients go on", timeout=60)
    assert [t.errors for t in loops] == [[], [], []]
    for t in loops:  # their startup parameters came along
        t.stop.set()
        t.join(timeout=30)
        cur = t.conn.cursor()
        cur.execute("select current_setting('application_name')")
        assert cur.fetchone()[0] == f"loop{t.n}"
    fresh = inst.connect(db="tx")  # its welcome has every parameter
    assert fresh.server_version >= 150000, fresh.server_version
    fresh.close()
    for c, pid in sessions:
        cur = c.cursor()
        cur.execute("select pg_backend_pid()")
        assert cur.fetchone()[0] == pid
    cur = sessions[2][0].cursor()  # its transaction went on where it was
    cur.execute("insert into t values (1); select count(*) from t")
    assert cur.fetchone()[0] == 1
    inst.assert_serving(db="tx")
    inst.assert_serving(db="sess")


def test_takeover_under_load(load):
    inst, loops, sessions = load
    old_pid = inst.pid
    logpath = reboot(inst)
    assert inst.pid != old_pid and inst.alive()
    log = read(logpath)
    assert "online restart: 2 listeners" in log, log
    assert "6 clients taken over" in log, log  # 3 + 3: all of them
    goes_on(inst, loops, sessions)


def admin(inst, host):
    c = psycopg2.connect(user=ADMIN, password=ADMIN_PASS, dbname="pgbouncer", host=host,
                         port=inst.port, connect_timeout=30)
    c.autocommit = True
    return c


def test_takeover_cut_short_leaves_the_old_one_serving(load):
    """Killed after SHOW FDS, before SHUTDOWN: the old process resumes (though another
    console session stays connected) and every client goes on there."""
    inst, loops, sessions = load
    other = admin(inst, inst.host)
    proc, logpath = spawn_reboot(inst, {"PGCORO_TEST_TAKEOVER_SLEEP": "60"})
    try:
        wait_until(lambda: "test hook: sleeping" in read(logpath) or proc.poll() is not None,
                   "the new process took the sockets", timeout=60)
        assert proc.poll() is None, read(logpath)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)  # by its PID
        proc.wait(timeout=30)
    wait_until(lambda: "online restart abandoned" in inst.log_text(), "the old one resumes")
    assert inst.alive()
    goes_on(inst, loops, sessions)
    cur = other.cursor()
    cur.execute("SHOW STATE")
    assert dict(cur.fetchall())["suspended"] == "no"
    other.close()


def test_show_fds_refused(load):
    inst, _, _ = load
    for host, why in ((inst.host, "SHOW FDS needs the unix socket"),
                      (inst.sockdir, "SHOW FDS needs SUSPEND first")):
        c = admin(inst, host)
        with pytest.raises(psycopg2.Error) as e:
            c.cursor().execute("SHOW FDS")
        assert e.value.diag.message_primary == why
        c.close()
    c = psycopg2.connect(user="app", password="apppass", dbname="pgbouncer", host=inst.sockdir,
                         port=inst.port, connect_timeout=30)
    c.autocommit = True
    with pytest.raises(psycopg2.Error) as e:
        c.cursor().execute("SHOW FDS")
    assert e.value.diag.message_primary == "admin access needed"
    c.close()
    if os.geteuid() == 0:  # an admin, but as another OS user: no sockets, no SCRAM keys
        import sys
        code = ("import psycopg2\n"
                f"c = psycopg2.connect(user={ADMIN!r}, password={ADMIN_PASS!r}, "
                f"dbname='pgbouncer', host={inst.sockdir!r}, port={inst.port}, "
                "connect_timeout=30)\n"
                "c.autocommit = True\n"
                "try:\n    c.cursor().execute('SHOW FDS')\n"
                "except psycopg2.Error as e:\n    print(e.diag.message_primary)\n")
        out = subprocess.run([sys.executable, "-c", code], user="postgres", cwd="/",
                             capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "SHOW FDS needs the OS user pgcoro runs as", out


def test_show_fds_rows_carry_their_sockets(load):
    """SHOW FDS as PgBouncer's new process reads it: PgBouncer's 15 columns first (then
    pgcoro_params), the listeners first, every DataRow with exactly one socket attached
    (SCM_RIGHTS), a session client linked to its server; the console leaving without
    SHUTDOWN resumes the old process."""
    import array
    import socket
    import struct
    inst, loops, sessions = load
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(os.path.join(inst.sockdir, f".s.PGSQL.{inst.port}"))
    body = struct.pack("!I", 3 << 16) + b"user\0pgbouncer\0database\0pgbouncer\0\0"
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    buf, fds = b"", []

    def until_ready():
        nonlocal buf
        msgs = []
        while True:
            while len(buf) >= 5 and len(buf) >= 1 + struct.unpack("!I", buf[1:5])[0]:
                n = 1 + struct.unpack("!I", buf[1:5])[0]
                msgs.append((buf[:1], buf[5:n], len(fds)))
                buf = buf[n:]
                if msgs[-1][0] == b"Z":
                    return msgs
            data, anc, flags, _ = s.recvmsg(65536, socket.CMSG_SPACE(64 * 4))
            assert data, "the console closed"
            assert not flags & socket.MSG_CTRUNC
            for level, kind, payload in anc:
                assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
                got = array.array("i")
                got.frombytes(payload[:len(payload) - len(payload) % 4])
                fds.extend(got)
            buf += data

    def query(sql):
        s.sendall(b"Q" + struct.pack("!I", len(sql) + 5) + sql.encode() + b"\0")
        return until_ready()

    try:
        assert not [m for m in until_ready() if m[0] == b"E"]
        assert not [m for m in query("SUSPEND;") if m[0] == b"E"]
        msgs = query("SHOW FDS;")
        assert not [m for m in msgs if m[0] == b"E"], msgs
        desc = msgs[0][1]
        cols, off = [], 2
        for _ in range(struct.unpack("!H", desc[:2])[0]):
            end = desc.index(b"\0", off)
            cols.append(desc[off:end].decode())
            off = end + 1 + 18
        assert cols == ["fd", "task", "user", "database", "addr", "port", "cancel", "link",
                        "client_encoding", "std_strings", "datestyle", "timezone",
                        "password", "scram_client_key", "scram_server_key",
                        "pgcoro_params"], cols
        rows = []
        for kind, payload, nfds in msgs:
            if kind != b"D":
                continue
            vals, off = [], 2
            for _ in range(struct.unpack("!H", payload[:2])[0]):
                n = struct.unpack("!i", payload[off:off + 4])[0]
                vals.append(None if n < 0 else payload[off + 4:off + 4 + n].decode())
                off += 4 + max(n, 0)
            rows.append(vals)
            assert nfds == len(rows)  # its socket came with it (or before its last byte)
        assert len(fds) == len(rows)
        tasks = [r[1] for r in rows]
        assert tasks[:2] == ["pooler", "pooler"] and "pooler" not in tasks[2:], tasks
        assert tasks.count("client") == 6, tasks  # 3 transaction loops, 3 sessions
        by_fd = {r[0]: r for r in rows}
        linked = [r for r in rows if r[1] == "client" and r[7] != "0"]
        assert len(linked) == 3 and all(by_fd[r[7]][1] == "server" and by_fd[r[7]][7] == r[0]
                                        for r in linked), rows
        for fd in fds:
            with socket.socket(fileno=os.dup(fd)) as passed:
                assert passed.type == socket.SOCK_STREAM
    finally:
        s.close()
        for fd in fds:
            os.close(fd)
    wait_until(lambda: "online restart abandoned" in inst.log_text(), "the old one resumes")
    goes_on(inst, loops, sessions)


def test_takeover_with_a_session_login_waiting(pgcoro_factory, pg):
    """A session-mode login waiting for a server while the pool's only one is held cannot
    move and is not waited for (no suspend_timeout): the holder moves with its backend,
    the waiting login is closed by the old process."""
    base = f"host=127.0.0.1 port={pg.port} dbname=postgres"
    inst = pgcoro_factory(settings={"suspend_timeout": 60},
                          databases={"one": f"{base} pool_mode=session pool_size=1"})
    holder = inst.connect(db="one")
    holder.autocommit = True
    cur = holder.cursor()
    cur.execute("select pg_backend_pid()")
    pid = cur.fetchone()[0]
    outcome = {}

    def late():
        try:
            outcome["conn"] = inst.connect(db="one")
        except psycopg2.Error as e:
            outcome["error"] = e

    t = threading.Thread(target=late, daemon=True)
    t.start()
    console = psycopg2.connect(user="pgbouncer", dbname="pgbouncer", host=inst.sockdir,
                               port=inst.port, connect_timeout=30)  # its own OS user
    console.autocommit = True

    def waiting():
        c = console.cursor()
        c.execute("SHOW POOLS")
        cols = [d[0] for d in c.description]
        return any(r[0] == "one" and r[cols.index("cl_waiting")] == 1 for r in c.fetchall())
    wait_until(waiting, "the late login waits for the server")
    console.close()
    old_logpath = inst.logpath
    logpath = reboot(inst)
    t.join(timeout=60)
    assert "error" in outcome, outcome
    cur.execute("select pg_backend_pid()")
    assert cur.fetchone()[0] == pid
    assert "suspend_timeout" not in read(old_logpath)
    holder.close()


def fake_takeover(pg, pgcoro_bin, session_root, mode, as_user=None):
    """`pgcoro -R` against takeover_fake_old.py (MODE; run as AS_USER if given) on a config
    of its own; returns (-R's exit code or None if it still ran after 30 s, its log, the
    fake's output). Both processes are ended by their PIDs."""
    import sys
    import tempfile
    from conftest import free_port
    d = tempfile.mkdtemp(prefix="pgc-fake-", dir=session_root)
    os.chmod(d, 0o777)  # the fake, as another user, binds its socket here
    port = free_port()
    with open(f"{d}/users.txt", "w") as f:
        f.write('"app" "apppass"\n')
    with open(f"{d}/p.ini", "w") as f:
        f.write(f"[pgcoro]\nlisten_addr=127.0.0.1\nlisten_port={port}\nunix_socket_dir={d}\n"
                f"auth_type=scram-sha-256\nauth_file={d}/users.txt\npool_mode=session\n"
                f"max_client_conn=10\n"
                f"[databases]\npostgres = host={pg.sockdir} port={pg.port} dbname=postgres\n")
    fake = subprocess.Popen(
        [sys.executable, os.path.join(os.path.dirname(__file__), "takeover_fake_old.py"),
         f"{d}/.s.PGSQL.{port}", str(port), mode],
        stdout=subprocess.PIPE, text=True, user=as_user, cwd=d)
    logpath = f"{d}/pgcoro-R.log"
    proc = None
    try:
        assert fake.stdout.readline().strip() == "READY"
        with open(logpath, "wb") as logf:
            proc = subprocess.Popen(
                [pgcoro_bin, "-R", f"{d}/p.ini"], stdin=subprocess.DEVNULL, stdout=logf,
                stderr=logf, cwd=d,
                env=clean_env(ASAN_OPTIONS=ASAN_OPTIONS, UBSAN_OPTIONS=UBSAN_OPTIONS))
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rc = None
        if rc is not None:
            out = fake.communicate(timeout=60)[0]
        else:
            fake.kill()
            out = fake.communicate(timeout=30)[0]
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if fake.poll() is None:
            fake.kill()
            fake.wait(timeout=30)
    return rc, read(logpath), out


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the fake as another user")
def test_takeover_refuses_another_users_process(pg, pgcoro_bin, session_root):
    """Whatever answers on the unix socket path as another OS user (the default
    unix_socket_dir is /tmp: anyone can bind it while no pgcoro runs) is refused: -R exits
    non-zero and adopts nothing (the client row claiming user postgres gets no session)."""
    rc, log, out = fake_takeover(pg, pgcoro_bin, session_root, "spoof", as_user="postgres")
    assert rc not in (0, None), log
    assert "is not pgcoro's: its process runs as uid" in log, log
    assert "ANSWER: b''" in out, out
    assert not [m for m in SANITIZER_MARKERS if m in log], log


@pytest.mark.parametrize("mode,why", [
    ("pipe", "the socket of client fd 99 is not a connected stream socket"),
    ("dgram", "the socket of client fd 99 is not a connected stream socket"),
    ("listening_client", "the socket of client fd 99 is not a connected stream socket"),
    ("connected_pooler", "is not a listening stream socket"),
    ("foreign_pooler", "a listening socket handed over is on no address listen_addr"),
    ("notices", "too many messages from the old process"),
    ("big_notice", "a malformed message from the old process"),
    ("error_cut", "the old process answered: ?"),
])
def test_takeover_refuses_bad_sockets(pg, pgcoro_bin, session_root, mode, why):
    """The old process (same OS user) hands over what no pgcoro would: a socket that is not
    the row's kind, a listener on an address the config does not give, an endless or huge
    answer, an error whose text lacks its NUL (read within its message). -R refuses it and
    exits non-zero, the client socket not adopted."""
    rc, log, out = fake_takeover(pg, pgcoro_bin, session_root, mode)
    assert rc not in (0, None), log
    assert why in log, log
    assert "ANSWER: b''" in out, out
    assert not [m for m in SANITIZER_MARKERS if m in log], log


def restart_then_end_servers(inst, pg, user, console, env=None):
    """`pgcoro -R` on INST (ENV added to its environment), which takes over one client and
    becomes INST (adopt); then PostgreSQL ends USER's backends, and the new process is
    waited for until it sees its servers of USER gone (CONSOLE() connects to its admin
    console): the client's next query needs a new server login there."""
    logpath = reboot(inst, env)
    assert "1 clients taken over" in read(logpath), read(logpath)
    pg.psql_super("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  f"WHERE usename = '{user}'")
    con = console()
    try:
        def no_server():
            cur = con.cursor()
            cur.execute("SHOW SERVERS")
            names = [d[0] for d in cur.description]
            return not [r for r in cur.fetchall() if r[names.index("user")] == user]
        wait_until(no_server, f"the new process sees its {user} server gone")
    finally:
        con.close()


def test_takeover_keeps_the_secrets_auth_query_found(pgcoro_factory, pg):
    """A user auth_query found (not in auth_file) keeps its secret across -R: the row's
    password column carries it, so the new process can log in a new server for the client
    it adopted (here after PostgreSQL ended the one it had) without a look-up."""
    from conftest import MD5_PASS, MD5_USER
    inst = pgcoro_factory(
        settings={"admin_users": ADMIN, "auth_type": "md5", "auth_user": "postgres",
                  "auth_dbname": "local"},
        users={ADMIN: ADMIN_PASS, "postgres": "superpw"}, replace_users=True,
        databases={"local": f"host={pg.sockdir} port={pg.port} dbname=postgres",
                   # md5 over TCP: the server login needs md5user's secret
                   "tcp": f"host=127.0.0.1 port={pg.port} dbname=postgres "
                          "pool_mode=transaction"})
    c = psycopg2.connect(user=MD5_USER, password=MD5_PASS, dbname="tcp", host=inst.host,
                         port=inst.port, connect_timeout=30)
    c.autocommit = True
    try:
        c.cursor().execute("SELECT 1")
        restart_then_end_servers(inst, pg, MD5_USER, lambda: admin(inst, inst.sockdir))
        cur = c.cursor()
        cur.execute("SELECT current_user")
        assert cur.fetchone()[0] == MD5_USER
    finally:
        c.close()
