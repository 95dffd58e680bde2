"""Operations: SIGHUP reload under load (valid and invalid files), the orderly stop as
PgBouncer 1.23's: SIGINT (the servers in use are released: transactions finish) and SIGTERM
(the clients leave), and the systemd notifications on a NOTIFY_SOCKET."""

import os
import re
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import (APP_PASS, APP_USER, ConnectionClosed, PgError, Wire, clean_env, pg_rows,
                      recreate_database, wait_until, wire_exec)

pytestmark = pytest.mark.pooler_only

DRAIN_DB = "opsdb"


@pytest.fixture
def opsdb(pg):
    recreate_database(pg, DRAIN_DB, setup_sql=(
        "CREATE TABLE drain_t (tx bigint NOT NULL, step int NOT NULL);\n"
        "CREATE SEQUENCE drain_seq;\n"
        "CREATE TABLE kv (k text PRIMARY KEY, v int);\n"
        f"ALTER TABLE drain_t OWNER TO {APP_USER};\n"
        f"ALTER SEQUENCE drain_seq OWNER TO {APP_USER};\n"
        f"ALTER TABLE kv OWNER TO {APP_USER};\n"))
    return DRAIN_DB


def ops_inst(pgcoro_factory, pg, env=None, **settings):
    return pgcoro_factory(settings=settings, env=env, databases={
        DRAIN_DB: f"host=127.0.0.1 port={pg.port} dbname={DRAIN_DB}"})


def pgbench_popen(pg, inst, db, seconds, clients, script=None, extra=()):
    argv = [pg.pgbench_bin, "-n", "-j", "2", "-c", str(clients), "-T", str(seconds),
            "-h", inst.host, "-p", str(inst.port), "-U", APP_USER, *extra]
    if script:
        argv += ["-f", script]
    argv.append(db)
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=clean_env(PGPASSWORD=APP_PASS, PGCONNECT_TIMEOUT=60))


def processed(out):
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    assert m, out
    return int(m.group(1))


def rewrite_config(inst, **changes):
    """Rewrites inst's config file with CHANGES applied to [pgcoro] keys (None removes)."""
    text = open(inst.config_path).read()
    for key, value in changes.items():
        text, n = re.subn(rf"(?m)^{key} = .*$", "" if value is None else f"{key} = {value}",
                          text)
        if not n and value is not None:
            text = text.replace("[pgcoro]\n", f"[pgcoro]\n{key} = {value}\n", 1)
    with open(inst.config_path + ".tmp", "w") as f:
        f.write(text)
    os.replace(inst.config_path + ".tmp", inst.config_path)


def backends(pg, db):
    return pg_rows(pg, "SELECT pid, backend_start FROM pg_stat_activity "
                       "WHERE datname = %s AND usename = %s", (db, APP_USER))


def test_reload_valid_and_invalid_under_pgbench(pgcoro_factory, pg, opsdb):
    """SIGHUP with a valid file (a larger pool, changed server settings: servers are
    replaced) and with an invalid one (the running config stays), while pgbench runs in
    transaction mode: no transaction fails."""
    inst = ops_inst(pgcoro_factory, pg, pool_mode="transaction", default_pool_size=3)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write("SELECT count(*) FROM kv;\n")
        script = f.name
    os.chmod(script, 0o644)
    bench = pgbench_popen(pg, inst, opsdb, 8, 10, script=script)
    try:
        wait_until(lambda: len(backends(pg, opsdb)) == 3, "pool of 3 in use")
        # valid: pool 3 -> 6 and new server settings (recycles every server)
        t_reload = pg_rows(pg, "SELECT now()")[0][0]
        text = open(inst.config_path).read()
        text, n = re.subn(rf"(?m)^({opsdb} = .*)$", r"\1 application_name=reloaded", text)
        assert n == 1, text
        with open(inst.config_path, "w") as f:
            f.write(text)
        rewrite_config(inst, default_pool_size=6)
        inst.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "configuration reloaded" in inst.log_text(), "reload logged")
        wait_until(lambda: len(backends(pg, opsdb)) == 6, "pool grown to 6 after reload")
        wait_until(lambda: all(b[1] > t_reload for b in backends(pg, opsdb)),
                   "every server replaced after the connection settings changed")
        # invalid: a line that is not key = value; the running config stays
        good = open(inst.config_path).read()
        with open(inst.config_path, "w") as f:
            f.write(good + "\nthis is not a setting\n")
        inst.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in inst.log_text(), "failed reload logged")
        assert inst.alive()
        assert len(backends(pg, opsdb)) == 6
        out, _ = bench.communicate(timeout=120)
    finally:
        os.unlink(script)
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    assert bench.returncode == 0, out
    assert processed(out) > 0
    assert not re.search(r"error|abort", out, re.I), out
    log = inst.log_text()
    assert re.search(r"reload failed, the running configuration stays in force: .*:\d+:", log), log
    with open(inst.config_path, "w") as f:
        f.write(good)
    inst.assert_serving()


def test_reload_removes_database(pgcoro_factory, pg, opsdb):
    """A database taken out of the file on reload: new logins get 3D000, a session
    already on it goes on."""
    inst = ops_inst(pgcoro_factory, pg, pool_mode="transaction")
    with Wire.to(inst) as w:
        w.login(APP_USER, APP_PASS, opsdb)
        assert wire_exec(w, "SELECT 1") == ([["1"]], [], "I")
        text = open(inst.config_path).read()
        text, n = re.subn(rf"(?m)^{opsdb} = .*\n", "", text)
        assert n == 1
        with open(inst.config_path, "w") as f:
            f.write(text)
        inst.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "configuration reloaded" in inst.log_text(), "reload logged")
        assert wire_exec(w, "SELECT 2") == ([["2"]], [], "I")
        with Wire.to(inst) as late:
            late.send_startup(APP_USER, opsdb)
            with pytest.raises(PgError) as e:
                late.authenticate(APP_USER, APP_PASS)
            assert e.value.fields.get("C") == "3D000", e.value.fields
        assert wire_exec(w, "SELECT 3") == ([["3"]], [], "I")
        w.terminate()
    inst.assert_serving()


DRAIN_SCRIPT = """BEGIN;
INSERT INTO drain_t (tx, step) VALUES (nextval('drain_seq'), 1);
SELECT pg_sleep(0.002);
INSERT INTO drain_t (tx, step) VALUES (currval('drain_seq'), 2);
COMMIT;
"""


def test_sigint_during_pgbench_keeps_every_committed_transaction(pgcoro_factory, pg, opsdb):
    inst = ops_inst(pgcoro_factory, pg, pool_mode="transaction", default_pool_size=4)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(DRAIN_SCRIPT)
        script = f.name
    os.chmod(script, 0o644)
    bench = pgbench_popen(pg, inst, opsdb, 60, 12, script=script)
    try:
        wait_until(lambda: pg_rows(pg, "SELECT count(*) FROM drain_t", db=opsdb)[0][0] > 200,
                   "pgbench running")
        inst.proc.send_signal(signal.SIGINT)
        out, _ = bench.communicate(timeout=120)
        inst.proc.wait(timeout=60)
    finally:
        os.unlink(script)
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    assert inst.proc.returncode == 0, inst.log_tail()
    half = pg_rows(pg, "SELECT tx, count(*) FROM drain_t GROUP BY tx HAVING count(*) <> 2",
                   db=opsdb)
    assert half == [], f"half-done transactions: {half}"
    done = pg_rows(pg, "SELECT count(DISTINCT tx) FROM drain_t", db=opsdb)[0][0]
    assert done >= processed(out), (done, out)
    assert "57P01" in inst.log_text() or "terminating connection" in out, out
    # nothing is left: pgcoro closed its servers
    wait_until(lambda: backends(pg, opsdb) == [], "servers closed")


def test_sigint_waits_for_open_transaction(pgcoro_factory, pg, opsdb):
    """SIGINT (PgBouncer's SHUTDOWN WAIT_FOR_SERVERS), transaction mode: a client without a
    server is told at once; one inside a transaction may still commit, then it is told
    and closed, and pgcoro exits. New connections are refused meanwhile."""
    inst = ops_inst(pgcoro_factory, pg, pool_mode="transaction")
    with Wire.to(inst) as idle, Wire.to(inst) as w:
        idle.login(APP_USER, APP_PASS, opsdb)
        w.login(APP_USER, APP_PASS, opsdb)
        assert wire_exec(w, "BEGIN")[2] == "T"
        assert wire_exec(w, "INSERT INTO kv VALUES ('term', 1)")[2] == "T"
        inst.proc.send_signal(signal.SIGINT)
        fields = idle.expect_error()  # idle, no server: told at once
        assert fields.get("C") == "57P01", fields
        wait_until(lambda: "shutdown" in inst.log_text(), "shutdown logged")
        with pytest.raises(OSError):
            socket.create_connection((inst.host, inst.port), timeout=5).close()
        assert inst.alive()
        rows, errors, ready = wire_exec(w, "COMMIT")
        assert errors == [] and ready == "I", (errors, ready)
        fields = w.expect_error()
        assert fields.get("C") == "57P01", fields
        assert w.at_eof()
    inst.proc.wait(timeout=60)
    assert inst.proc.returncode == 0, inst.log_tail()
    assert pg_rows(pg, "SELECT v FROM kv WHERE k = 'term'", db=opsdb) == [(1,)]


def test_sigint_session_mode_waits_for_the_session(pgcoro_factory, pg, opsdb):
    """SIGINT, session mode: the server is released only when its client leaves, so the
    client goes on (queries, a transaction) until it does; then pgcoro exits."""
    inst = ops_inst(pgcoro_factory, pg, pool_mode="session")
    with Wire.to(inst) as w:
        w.login(APP_USER, APP_PASS, opsdb)
        assert wire_exec(w, "BEGIN")[2] == "T"
        inst.proc.send_signal(signal.SIGINT)
        wait_until(lambda: "shutdown" in inst.log_text(), "shutdown logged")
        with pytest.raises(OSError):
            socket.create_connection((inst.host, inst.port), timeout=5).close()
        assert wire_exec(w, "INSERT INTO kv VALUES ('int', 1)")[2] == "T"
        assert wire_exec(w, "COMMIT")[2] == "I"
        rows, errors, ready = wire_exec(w, "SELECT 1")
        assert errors == [] and ready == "I", (errors, ready)
        assert inst.alive()
    inst.proc.wait(timeout=60)
    assert inst.proc.returncode == 0, inst.log_tail()
    assert pg_rows(pg, "SELECT v FROM kv WHERE k = 'int'", db=opsdb) == [(1,)]


def test_sigterm_waits_for_clients(pgcoro_factory, pg, opsdb):
    """SIGTERM (PgBouncer 1.23's SHUTDOWN WAIT_FOR_CLIENTS): no new connections, and the
    clients connected are served as before — an idle one runs new transactions on pooled
    servers — until they leave; then pgcoro exits."""
    inst = ops_inst(pgcoro_factory, pg, pool_mode="transaction", default_pool_size=1)
    with Wire.to(inst) as a, Wire.to(inst) as b:
        a.login(APP_USER, APP_PASS, opsdb)
        b.login(APP_USER, APP_PASS, opsdb)
        assert wire_exec(a, "BEGIN")[2] == "T"
        inst.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "shutdown" in inst.log_text(), "shutdown logged")
        with pytest.raises(OSError):
            socket.create_connection((inst.host, inst.port), timeout=5).close()
        assert wire_exec(a, "INSERT INTO kv VALUES ('a', 1)")[2] == "T"
        assert wire_exec(a, "COMMIT")[2] == "I"
        for i in range(3):  # b gets the one server after a, transaction after transaction
            rows, errors, ready = wire_exec(b, f"INSERT INTO kv VALUES ('b{i}', {i})")
            assert errors == [] and ready == "I", (errors, ready)
        assert inst.alive()
        a.close()
        assert wire_exec(b, "SELECT 1")[2] == "I"  # b is still served
    inst.proc.wait(timeout=60)
    assert inst.proc.returncode == 0, inst.log_tail()
    assert pg_rows(pg, "SELECT count(*) FROM kv", db=opsdb) == [(4,)]


def test_second_signal_exits_now(pgcoro_factory, pg, opsdb):
    inst = ops_inst(pgcoro_factory, pg, pool_mode="session", shutdown_timeout=0)
    with Wire.to(inst) as w:
        w.login(APP_USER, APP_PASS, opsdb)
        assert wire_exec(w, "BEGIN")[2] == "T"
        inst.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "shutdown" in inst.log_text(), "shutdown logged")
        assert inst.alive()  # waits for the transaction (no timeout set)
        inst.proc.send_signal(signal.SIGTERM)
        inst.proc.wait(timeout=60)
        try:
            fields = w.expect_error()
            assert fields.get("C") == "57P01", fields
        except ConnectionClosed:
            pass
    assert inst.proc.returncode == 0, inst.log_tail()
    assert "second signal" in inst.log_text()


def test_shutdown_timeout(pgcoro_factory, pg, opsdb):
    inst = ops_inst(pgcoro_factory, pg, pool_mode="session", shutdown_timeout=1)
    with Wire.to(inst) as w:
        w.login(APP_USER, APP_PASS, opsdb)
        assert wire_exec(w, "BEGIN")[2] == "T"
        inst.proc.send_signal(signal.SIGTERM)
        inst.proc.wait(timeout=60)
    assert inst.proc.returncode == 0, inst.log_tail()
    assert "shutdown_timeout reached" in inst.log_text()


def test_systemd_notifications(pgcoro_factory, pg, tmp_path):
    """READY=1 once serving; WATCHDOG=1 keep-alives when systemd sets WATCHDOG_USEC;
    STATUS= with live counts; RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a
    reload; STOPPING=1 on SIGTERM — on a NOTIFY_SOCKET the test listens on."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o777)
    sock.settimeout(30)
    try:
        inst = ops_inst(pgcoro_factory, pg, env={"NOTIFY_SOCKET": path,
                                                 "WATCHDOG_USEC": "400000"},
                        pool_mode="transaction")
        msgs = []

        def until(pred, what):
            deadline = time.monotonic() + 30
            while not any(pred(m) for m in msgs):
                assert time.monotonic() < deadline, f"no {what}; got {msgs}"
                msgs.append(sock.recv(4096).decode())

        until(lambda m: "READY=1" in m, "READY=1")
        inst.assert_serving()
        until(lambda m: "WATCHDOG=1" in m, "WATCHDOG=1 (WatchdogSec set)")
        until(lambda m: re.search(r"STATUS=\d+ client\(s\), \d+ server connection", m),
              "STATUS= with the live counts")
        msgs.clear()
        inst.proc.send_signal(signal.SIGHUP)
        until(lambda m: "RELOADING=1" in m, "RELOADING=1")
        reloading = next(m for m in msgs if "RELOADING=1" in m)
        assert re.search(r"MONOTONIC_USEC=\d+", reloading), reloading
        until(lambda m: "READY=1" in m, "READY=1 after the reload")
        msgs.clear()
        inst.proc.send_signal(signal.SIGTERM)
        until(lambda m: "STOPPING=1" in m, "STOPPING=1")
        inst.proc.wait(timeout=60)
        assert inst.proc.returncode == 0
    finally:
        sock.close()
