"""Logging: the log_connections / log_disconnections / log_pooler_errors switches (also
changed by a reload), the periodic stats line with exact totals for a known workload in
session and transaction mode, and syslog as a destination (received on a test socket
bound over /dev/log in a private mount namespace)."""

import os
import re
import signal
import socket
import struct
import subprocess

import pytest

from conftest import APP_PASS, APP_USER, PgError, Wire, console_show, wait_until

pytestmark = pytest.mark.pooler_only

LOGIN_RE = re.compile(r"client \d+ \S+ \(\S+\): login done")
CLOSE_RE = re.compile(r"client \d+ \S+ \(\S+\): closing because: client close request \(age=\d+s\)")
POOLER_ERR_RE = re.compile(r"WARNING client \d+ \S+ \(\S+\): pooler error 28P01, closing because: "
                           r"SASL authentication failed \(age=\d+s\)")
# then PgBouncer's words, which tools written for it look for
SERVER_UP_RE = re.compile(r"server \d+ \(\S+\): connected, backend pid \d+; "
                          r"127\.0\.0\.1:\d+ new connection to server \(from 127\.0\.0\.1:\d+\)")
STATS_RE = re.compile(r"LOG stats: \d+ xacts/s, \d+ queries/s, in \d+ B/s, out \d+ B/s, "
                      r"xact \d+ us, query \d+ us, wait \d+ us \(over (\d+\.\d) s: (\d+) xacts, "
                      r"(\d+) queries, (\d+) B in, (\d+) B out, (\d+) server assignments\)")


def session_once(inst, db="postgres"):
    """A login, one query and a Terminate; then a login with a wrong password."""
    with Wire.to(inst) as w:
        w.login(database=db)
        assert w.query("select 1") == [["1"]]
        w.terminate()
    with Wire.to(inst) as w:
        with pytest.raises(PgError) as e:
            w.login(password="wrong", database=db)
        assert e.value.sqlstate == "28P01"


def set_keys(inst, **values):
    text = open(inst.config_path).read()
    for k, v in values.items():
        text, n = re.subn(rf"(?m)^{k} = .*$", f"{k} = {v}", text)
        assert n == 1, (k, text)
    with open(inst.config_path, "w") as f:
        f.write(text)


def test_log_switches_and_reload(pgcoro_factory, pg):
    """With the three switches off a login, a query, a Terminate and a wrong password leave
    no line; a reload turns them on and the same session logs each event once."""
    inst = pgcoro_factory(settings={"log_connections": "off", "log_disconnections": 0,
                                    "log_pooler_errors": "no"},
                          databases={"second": f"host=127.0.0.1 port={pg.port} dbname=postgres"})
    session_once(inst)
    log = inst.log_text()
    for rx in (LOGIN_RE, CLOSE_RE, POOLER_ERR_RE, SERVER_UP_RE):
        assert not rx.search(log), (rx.pattern, log)
    assert "28P01" not in log and "closing" not in log, log

    set_keys(inst, log_connections="on", log_disconnections="yes", log_pooler_errors=1)
    inst.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in inst.log_text(), "reload logged")
    session_once(inst, db="second")   # a new pool: its server connects now
    wait_until(lambda: len(POOLER_ERR_RE.findall(inst.log_text())) == 1, "pooler error logged")
    log = inst.log_text()
    assert len(LOGIN_RE.findall(log)) == 1, log
    assert len(CLOSE_RE.findall(log)) == 1, log
    assert len(SERVER_UP_RE.findall(log)) == 1, log

    # only log_disconnections: the pooler error is logged as a disconnection (LOG)
    set_keys(inst, log_pooler_errors=0)
    inst.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: inst.log_text().count("configuration reloaded") == 2, "second reload")
    with Wire.to(inst) as w:
        with pytest.raises(PgError):
            w.login(password="wrong")
    wait_until(lambda: re.search(r"LOG client \d+ \S+ \(app@postgres\): closing because: SASL "
                                 r"authentication failed \(age=\d+s\)", inst.log_text()),
               "a wrong password logged as a disconnection")
    assert len(POOLER_ERR_RE.findall(inst.log_text())) == 1
    inst.assert_serving()


def test_client_names_cannot_forge_lines(pgcoro_factory):
    """A newline (or another control character) in a startup packet's user, database or
    application_name is escaped in every line that quotes it: no line starts with the
    text that follows it."""
    inst = pgcoro_factory(settings={"log_level": "debug"})
    for user, db in (("x\nFAKE LINE", "postgres"), (APP_USER, "nosuch\r\nFAKE DB\t")):
        with Wire.to(inst) as w:
            w.send_startup(user, db, application_name="a\nFAKE APP")
            with pytest.raises(PgError):
                w.authenticate(user, APP_PASS)
    wait_until(lambda: "FAKE DB" in inst.log_text() and "FAKE LINE" in inst.log_text(),
               "both logins logged")
    log = inst.log_text()
    assert not [ln for ln in log.splitlines() if "FAKE" in ln and not ln[:4].isdigit()], log
    assert "startup user=x\\nFAKE LINE database=postgres" in log, log
    assert "nosuch\\x0d\\nFAKE DB\\x09" in log, log
    inst.assert_serving()


def test_server_notices_cannot_forge_lines(pgcoro_factory):
    """A notice on one of pgcoro's own server queries (here a WARNING with a newline raised
    by server_reset_query) is logged through the same escaping, not written raw to stderr
    by libpq."""
    inst = pgcoro_factory(settings={
        "server_reset_query": "DO $$BEGIN RAISE WARNING 'reset%FAKE NOTICE', chr(10); END$$"})
    with Wire.to(inst) as w:
        w.login()
        w.query("select 1")
        w.terminate()
    wait_until(lambda: "FAKE NOTICE" in inst.log_text(), "the reset query's warning logged")
    log = inst.log_text()
    assert not [ln for ln in log.splitlines() if "FAKE" in ln and not ln[:4].isdigit()], log
    assert re.search(r"LOG server \d+ \(postgres/app\): WARNING:  reset\\nFAKE NOTICE$", log,
                     re.M), log
    inst.assert_serving()


def msg(t, payload=b""):
    return t.encode() + struct.pack("!I", len(payload) + 4) + payload


def read_until_ready(w):
    while True:
        t, _ = w.read_msg()
        if t == "Z":
            return


def workload(w):
    """10 transactions, 12 requests answered: 5 autocommit queries, BEGIN/select/COMMIT
    (1 transaction, 3 requests), a two-statement Query (1 and 1), an error (1 and 1), and
    two pipelined extended-protocol Syncs (2 and 2)."""
    for _ in range(5):
        assert w.query("select 1") == [["1"]]
    w.query("begin")
    w.query("select 2")
    w.query("commit")
    assert w.query("select 1; select 2") == [["2"]]
    with pytest.raises(PgError) as e:
        w.query("select 1/0")
    assert e.value.sqlstate == "22012"
    ext = b""
    for i in range(2):
        ext += (msg("P", b"\0" + f"select {i}".encode() + b"\0\0\0") +
                msg("B", b"\0\0" + b"\0\0" + b"\0\0" + b"\0\0") +
                msg("E", b"\0" + b"\0\0\0\0") + msg("S"))
    w.send(ext)
    read_until_ready(w)
    read_until_ready(w)


def stats_totals(log):
    """Sums of the totals of every stats line: xacts, queries, B in, B out, assignments."""
    sums = [0, 0, 0, 0, 0]
    for m in STATS_RE.finditer(log):
        for i in range(5):
            sums[i] += int(m.group(i + 2))
    return sums


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_stats_line_totals(pgcoro_factory, mode):
    """The stats lines' totals add up exactly to a known workload: transactions, requests,
    the bytes relayed each way (all the client sent and got after its login, Terminate
    excepted) and server hand-outs (one in session mode; one per transaction, or one more
    if the pipelined pair arrived in two reads, in transaction mode)."""
    inst = pgcoro_factory(settings={"pool_mode": mode, "default_pool_size": 1,
                                    "stats_period": "500ms"})
    with Wire.to(inst) as w:
        w.login()
        sent0, recv0 = w.nsent, w.nrecv
        workload(w)
        sent, recv = w.nsent - sent0, w.nrecv - recv0
        w.terminate()

    def settled():
        got = stats_totals(inst.log_text())
        return got if got[:4] == [10, 12, sent, recv] else None
    got = wait_until(settled, f"stats lines adding up to 10 xacts, 12 queries, {sent} B in, "
                     f"{recv} B out", timeout=30)
    if mode == "session":
        assert got[4] == 1, got
    else:
        assert got[4] in (9, 10), got
    lines = STATS_RE.findall(inst.log_text())
    assert all(0.3 <= float(g[0]) <= 30 for g in lines), lines


def test_stats_period_zero_and_reload(pgcoro_factory):
    """stats_period = 0: no stats line; a reload to 500ms starts them."""
    inst = pgcoro_factory(settings={"stats_period": 0})
    inst.assert_serving()
    with Wire.to(inst) as w:      # a round trip after a full second tick of the pool
        w.login()
        w.query("select pg_sleep(1.2)")
        w.terminate()
    assert "stats:" not in inst.log_text()
    set_keys(inst, stats_period="500ms")
    inst.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: len(STATS_RE.findall(inst.log_text())) >= 2, "stats lines after reload")


def can_unshare():
    if os.geteuid() != 0:
        return False
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "true"],
                       capture_output=True, timeout=30)
    return r.returncode == 0


@pytest.mark.skipif(not can_unshare(), reason="needs root and mount namespaces (unshare -m)")
def test_syslog(pgcoro_factory, session_root):
    """syslog = 1 with an ident and a facility: lines arrive on /dev/log (a test socket
    bound over it in pgcoro's own mount namespace) with the facility's priority, the
    ident and pgcoro's pid; stderr no longer gets them."""
    sockdir = os.path.join(session_root, f"syslog-{os.getpid()}")
    os.makedirs(sockdir, exist_ok=True)
    os.chmod(sockdir, 0o755)
    path = os.path.join(sockdir, "log")
    if os.path.exists(path):
        os.unlink(path)
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(0.2)
    # /dev is a fresh tmpfs in the namespace: null, zero, urandom and our log socket
    setup = ("mount -t tmpfs -o mode=755 tmpfs /dev && "
             "mknod -m 666 /dev/null c 1 3 && mknod -m 666 /dev/zero c 1 5 && "
             "mknod -m 666 /dev/urandom c 1 9 && mknod -m 666 /dev/random c 1 8 && "
             f"touch /dev/log && mount --bind {path} /dev/log && exec \"$0\" \"$@\"")
    wrapper = ["unshare", "-m", "--propagation", "private", "sh", "-c", setup]
    try:
        inst = pgcoro_factory(settings={"syslog": 1, "syslog_ident": "pgc-test",
                                        "syslog_facility": "local3"}, wrapper=wrapper)
        got = []

        def drain():
            while True:
                try:
                    got.append(rx.recv(65536).decode("utf-8", "replace"))
                except socket.timeout:
                    return

        with Wire.to(inst) as w:
            w.login()
            w.query("select 1")
            w.terminate()
        with Wire.to(inst) as w:
            with pytest.raises(PgError):
                w.login(password="wrong")

        def logged():
            drain()
            text = "\n".join(got)
            return ("login done" in text and "pooler error 28P01" in text and
                    "client close request" in text)
        wait_until(logged, "login, Terminate and the wrong password on syslog", timeout=30)
        local3 = 19 * 8
        pid = inst.pid
        login = [g for g in got if "login done" in g]
        assert re.match(rf"<{local3 + 6}>.* pgc-test\[{pid}\]: LOG client \d+ ", login[0]), got
        err = [g for g in got if "pooler error 28P01" in g]
        assert re.match(rf"<{local3 + 4}>.* pgc-test\[{pid}\]: WARNING client \d+ ", err[0]), got
        started = [g for g in got if "started:" in g]
        assert started, got
        # stderr has none of those lines (sanitizer output would still go there)
        log = inst.log_text()
        assert "login done" not in log and "pooler error" not in log, log
        # a newline in a user name reaches syslog escaped: one datagram, no line break
        with Wire.to(inst) as w:
            w.send_startup("x\nFAKE LINE", "postgres")
            with pytest.raises(PgError):
                w.authenticate("x\nFAKE LINE", "any")
        wait_until(lambda: drain() or any("FAKE LINE" in g for g in got),
                   "the forged user's failed login on syslog", timeout=30)
        forged = [g for g in got if "FAKE LINE" in g]
        assert all("x\\nFAKE LINE" in g and "\n" not in g for g in forged), forged
        inst.assert_serving()
    finally:
        rx.close()
        os.unlink(path)


def edit_and_reload(inst, *subs):
    """Applies each (pattern, replacement) of SUBS to INST's file, then SIGHUP, and waits
    until the reload is logged."""
    text = open(inst.config_path).read()
    for pattern, repl in subs:
        text = re.sub(pattern, repl, text)
    with open(inst.config_path, "w") as f:
        f.write(text)
    inst.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in inst.log_text(), "reload logged")


def test_reload_restart_only_keys(pgcoro_factory):
    """A reload that changes keys read only at start (listen_port, syslog_ident) says so
    for each, and the running values stay: the old port still serves; keys that did not
    change are not mentioned."""
    inst = pgcoro_factory(settings={"syslog_ident": "before"})
    edit_and_reload(inst, (r"(?m)^listen_port = .*$", "listen_port = 1"),
                    (r"(?m)^syslog_ident = .*$", "syslog_ident = after"))
    log = inst.log_text()
    assert re.search(rf"WARNING reload: listen_port takes effect at the next restart "
                     rf"\({inst.port} stays in force\)", log), log
    assert "WARNING reload: syslog_ident takes effect at the next restart (before stays" in log
    assert len(re.findall(r"takes effect at the next restart", log)) == 2, log
    inst.assert_serving()


def test_show_config_after_reload_shows_restart_only_keys_in_force(pgcoro_factory):
    """SHOW CONFIG after a reload that removed unix_socket_dir and changed listen_port
    shows the values the process still runs with (the socket is still there), not the
    file's."""
    inst = pgcoro_factory(settings={"admin_users": APP_USER})
    edit_and_reload(inst, (r"(?m)^unix_socket_dir = .*\n", ""),
                    (r"(?m)^listen_port = .*$", "listen_port = 1"))
    config = {r["key"]: r["value"]
              for r in console_show(inst, "CONFIG", APP_USER, APP_PASS)}
    assert config["unix_socket_dir"] == inst.sockdir
    assert config["listen_port"] == str(inst.port)
    assert os.path.exists(os.path.join(inst.sockdir, f".s.PGSQL.{inst.port}"))
    inst.assert_serving()
