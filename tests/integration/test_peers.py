"""Peering (PgBouncer 1.19+): two pgcoro processes on one TCP port (so_reuseport), each
with its own unix socket, a peer_id and [peers] naming both. A client's cancel key
carries its process's id; a CancelRequest that reaches the other process is forwarded to
the owner and cancels the query. Keys of a peer not in [peers], or whose forwarding TTL is
spent, are dropped with a log line (at most one a second per reason, then counted); bad
[peers] entries are refused at load; SIGTERM lets the other process take the port's new
connections while the old one finishes. Forwards run on the loop within
server_connect_timeout: a peer that never accepts or trickles bytes holds nothing else up;
a peer_id changed by a reload leaves the clients' keys cancellable."""

import os
import random
import re
import signal
import socket
import subprocess
import threading
import time

import psycopg2
import psycopg2.errors
import pytest

from conftest import (APP_PASS, APP_USER, Background, Wire, client_backends,
                      console_show, free_port, send_cancel_request, wait_until,
                      wire_exec)

pytestmark = pytest.mark.pooler_only


def peer_of(pid):
    """The peer id PgBouncer's layout puts in a cancel key: bytes 2 and 3, low first."""
    return (pid >> 16 & 0xFF) | (pid >> 8 & 0xFF) << 8


def key_for(peer, ttl=3):
    """A random (pid, key) carrying PEER and TTL, as a client of that peer would hold."""
    pid = (random.getrandbits(31) & 0x7F0000FF) | (peer & 0xFF) << 16 | (peer >> 8) << 8
    return pid, (random.getrandbits(32) & ~3) | ttl


def start_pair(pgcoro_factory, tmp_path):
    """Peers 1 and 2 on one port; returns ({id: inst}, {id: unix socket dir}, port)."""
    port = free_port()
    dirs = {i: tmp_path / f"p{i}" for i in (1, 2)}
    peers = "[peers]\n" + "".join(f"{i} = host={d} port={port}\n" for i, d in dirs.items())
    insts = {}
    for i, d in dirs.items():
        d.mkdir()
        insts[i] = pgcoro_factory(settings={
            "so_reuseport": 1, "peer_id": i, "unix_socket_dir": str(d), "log_level": "debug",
            "admin_users": APP_USER}, port=port, extra_ini=peers)
        path = str(d / f".s.PGSQL.{port}")
        wait_until(lambda: os.path.exists(path), f"peer {i}'s unix socket")
    return insts, dirs, port


def unix_wire(d, port):
    w = Wire("127.0.0.1", port, timeout=40.0, unix_dir=str(d))
    w.login(APP_USER, APP_PASS, "postgres")
    return w


def wait_active(pg, marker):
    return wait_until(lambda: [b for b in client_backends(pg, "postgres")
                               if b[2] == "active" and marker in (b[3] or "")],
                      f"a query with {marker} active")


def test_cancel_through_the_other_peer(pgcoro_factory, pg, tmp_path):
    insts, dirs, port = start_pair(pgcoro_factory, tmp_path)
    w = unix_wire(dirs[1], port)
    try:
        pid, key = w.backend_key
        assert peer_of(pid) == 1 and key & 3 == 3, hex(pid)
        assert pid < 2 ** 31
        bg = Background(lambda: wire_exec(w, "select pg_sleep(30) /* peers_fwd */"))
        wait_active(pg, "peers_fwd")
        # the "wrong" process: peer 2's own unix socket
        assert send_cancel_request(pid, key, port=port, unix_dir=str(dirs[2]))
        rows, errs, ready = bg.join(25).result
        assert [e.get("C") for e in errs] == ["57014"], errs
        assert ready == "I"
        rows, errs, ready = wire_exec(w, "select 'still here'")
        assert not errs and rows == [["still here"]], (rows, errs)
    finally:
        w.close()
    wait_until(lambda: "cancel request forwarded to peer 1" in insts[2].log_text(),
               "peer 2 logs the forwarding")
    wait_until(lambda: "cancel request sent" in insts[1].log_text(),
               "peer 1 cancels its server's query")
    assert console_show(insts[2], "PEERS", APP_USER, APP_PASS, host=str(dirs[2])) == [
        {"peer_id": i, "host": str(dirs[i]), "port": port, "pool_size": 10} for i in (1, 2)]
    assert console_show(insts[2], "PEER_POOLS", APP_USER, APP_PASS,
                        host=str(dirs[2])) == [
        {"peer_id": 1, "cl_active_cancel_req": 0, "cl_waiting_cancel_req": 0,
         "sv_active_cancel": 0, "sv_login": 0}]
    lists = console_show(insts[2], "LISTS", APP_USER, APP_PASS, host=str(dirs[2]))
    lists = {r["list"]: r["items"] for r in lists}
    assert lists["peers"] == 2 and lists["peer_pools"] == 1, lists


def test_psycopg2_cancel_over_the_shared_port(pgcoro_factory, pg, tmp_path):
    """libpq's PQcancel (psycopg2's cancel()) to the shared TCP port: whichever process the
    kernel gives the cancel's connection to, the query is cancelled."""
    insts, dirs, port = start_pair(pgcoro_factory, tmp_path)
    c = psycopg2.connect(host="127.0.0.1", port=port, user=APP_USER, password=APP_PASS,
                         dbname="postgres", connect_timeout=30)
    c.autocommit = True
    try:
        cur = c.cursor()
        for i in range(6):
            marker = f"peers_tcp_{i}"
            bg = Background(lambda: (wait_active(pg, marker), c.cancel()))
            with pytest.raises(psycopg2.errors.QueryCanceled):
                cur.execute(f"select pg_sleep(30) /* {marker} */")
            bg.join(30)
            assert bg.exc is None, repr(bg.exc)
        cur.execute("select 1")
        assert cur.fetchone() == (1,)
    finally:
        c.close()


def test_unknown_peer_and_spent_ttl_dropped(pgcoro_factory, pg, tmp_path):
    insts, dirs, port = start_pair(pgcoro_factory, tmp_path)
    w = unix_wire(dirs[1], port)
    try:
        bg = Background(lambda: wire_exec(w, "select pg_sleep(2) /* peers_drop */"))
        wait_active(pg, "peers_drop")
        pid, key = key_for(3)
        assert send_cancel_request(pid, key, port=port, unix_dir=str(dirs[1]))
        wait_until(lambda: "cancel request for peer 3 dropped: could not find peer to "
                           "forward request to" in insts[1].log_text(), "the drop logged")
        pid, key = key_for(2, ttl=0)
        assert send_cancel_request(pid, key, port=port, unix_dir=str(dirs[1]))
        wait_until(lambda: "cancel request for peer 2 dropped: its TTL was exhausted"
                   in insts[1].log_text(), "the spent TTL logged")
        rows, errs, ready = bg.join(25).result
        assert not errs and ready == "I", errs  # nothing was cancelled
    finally:
        w.close()
    assert "cancel request forwarded" not in insts[2].log_text()
    for inst in insts.values():
        inst.assert_serving()


@pytest.mark.parametrize("entry,message", [
    ("0 = host=/tmp", 'peer "0": the id of a peer must be a number from 1 to 16383'),
    ("16384 = host=/tmp", 'peer "16384": the id of a peer must be a number from 1 to 16383'),
    ("two = host=/tmp", 'peer "two": the id of a peer must be a number from 1 to 16383'),
    ("2 = port=6000", "peer 2: no host"),
    ("2 = host=/tmp user=x", 'peer 2: unknown setting "user"'),
    ("2 = host=/tmp port=70000", 'invalid port "70000": out of range (1..65535)'),
    ("2 = host=/tmp\n2 = host=/var/run", 'duplicate peer "2"'),
])
def test_bad_peers_refused(pgcoro_bin, tmp_path, entry, message):
    path = tmp_path / "pgcoro.ini"
    path.write_text(f"[pgcoro]\nauth_type = trust\npeer_id = 1\nunix_socket_dir = {tmp_path}\n"
                    f"listen_port = {free_port()}\n[databases]\n\n[peers]\n{entry}\n")
    r = subprocess.run([pgcoro_bin, "--check-config", str(path)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and message in r.stderr, (r.returncode, r.stderr)
    r = subprocess.run([pgcoro_bin, str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and message in r.stderr, (r.returncode, r.stderr)


def test_sigterm_hands_the_port_over(pgcoro_factory, pg, tmp_path):
    """A rolling restart: SIGTERM closes peer 1's TCP listener at once; new connections to
    the port all reach peer 2 while peer 1's client goes on, and peer 1 exits when it
    leaves."""
    insts, dirs, port = start_pair(pgcoro_factory, tmp_path)
    w = unix_wire(dirs[1], port)
    try:
        insts[1].proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "shutdown: no new connections" in insts[1].log_text(),
                   "peer 1 stopping")
        mark = len(insts[1].log_text())
        for _ in range(8):
            c = psycopg2.connect(host="127.0.0.1", port=port, user=APP_USER,
                                 password=APP_PASS, dbname="postgres", connect_timeout=30)
            c.cursor().execute("select 1")
            c.close()
        rows, errs, ready = wire_exec(w, "select 'peer 1 still serves me'")
        assert not errs and rows == [["peer 1 still serves me"]], (rows, errs)
        assert insts[1].alive()
        w.terminate()
    finally:
        w.close()
    insts[1].proc.wait(timeout=30)
    assert insts[1].proc.returncode == 0
    assert "login done" not in insts[1].log_text()[mark:], "peer 1 took a new client"
    assert insts[2].log_text().count("login done") >= 8


def send_cancels(port, keys):
    """Sends each (pid, key) of KEYS as a CancelRequest to PORT, waiting for each close."""
    for pid, key in keys:
        assert send_cancel_request(pid, key, port=port)


def test_flood_to_a_peer_that_never_accepts(pgcoro_factory, pg):
    """Hundreds of cancel requests forwarded to a peer whose listen backlog is full (it
    never accepts): the forwards wait on the loop, not on the executor, so a new pool's
    server connection is made as ever (before, each forward held an executor thread up to
    server_connect_timeout per step, and the new server's connect timed out behind them)."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(1)
    try:
        inst = pgcoro_factory(
            settings={"peer_id": 1, "server_connect_timeout": 3, "max_client_conn": 2000,
                      "admin_users": APP_USER},
            extra_ini=f"[peers]\n2 = host=127.0.0.1 port={hole.getsockname()[1]}\n")
        send_cancels(inst.port, [key_for(2) for _ in range(400)])
        c = psycopg2.connect(host=inst.host, port=inst.port, user=APP_USER,
                             password=APP_PASS, dbname="bench", connect_timeout=60)
        try:
            cur = c.cursor()
            cur.execute("select 1")
            assert cur.fetchone() == (1,)
        finally:
            c.close()
        pools = console_show(inst, "PEER_POOLS", APP_USER, APP_PASS)
        assert len(pools) == 1 and pools[0]["cl_active_cancel_req"] <= 20, pools
        inst.assert_serving()
    finally:
        hole.close()


class TricklingPeer:
    """A "peer" that reads the CancelRequest, then sends a byte every 0.2 s and never
    closes; it records when the other end closes the connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(60)
        self.port = self.sock.getsockname()[1]
        self.got = b""
        self.closed = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        conn.settimeout(5)
        with conn:
            while len(self.got) < 16:
                data = conn.recv(16 - len(self.got))
                if not data:
                    break
                self.got += data
            while not self.stop.wait(0.2):
                try:
                    conn.send(b"x")
                except OSError:
                    self.closed.set()
                    return

    def close(self):
        self.stop.set()
        self.sock.close()
        self.thread.join(10)


def test_trickling_peer_ends_at_the_deadline(pgcoro_factory, pg):
    """A peer that answers the forwarded request with a byte now and then, and never
    closes: the forward ends at its deadline (before, each byte restarted the wait, and the
    forward held its executor thread for as long as the peer went on)."""
    peer = TricklingPeer()
    try:
        inst = pgcoro_factory(settings={"peer_id": 1, "server_connect_timeout": 2,
                                        "admin_users": APP_USER},
                              extra_ini=f"[peers]\n2 = host=127.0.0.1 port={peer.port}\n")
        pid, key = key_for(2)
        assert send_cancel_request(pid, key, port=inst.port)
        wait_until(lambda: f"cancel request for peer 2: forwarding to 127.0.0.1 port "
                           f"{peer.port} failed: wait for the close: Connection timed out"
                   in inst.log_text(), "the forward ending at its deadline", timeout=30)
        assert peer.got[8:] == (pid.to_bytes(4, "big") + (key - 1).to_bytes(4, "big")), peer.got
        assert peer.closed.wait(20), "the trickling connection is still open"
        pools = console_show(inst, "PEER_POOLS", APP_USER, APP_PASS)
        assert pools == [{"peer_id": 2, "cl_active_cancel_req": 0, "cl_waiting_cancel_req": 0,
                          "sv_active_cancel": 0, "sv_login": 0}], pools
    finally:
        peer.close()


@pytest.mark.parametrize("before,after", [(1, 3), (0, 2)])
def test_peer_id_reload_keeps_keys(pgcoro_factory, pg, before, after):
    """A client's key given out under one peer_id still cancels its query after a reload
    changed peer_id (before, its key was routed by the peer id in it: dropped as a peer
    not in [peers], or sent to an unrelated peer)."""
    hole = socket.socket()  # peer 2 of the 0 -> 2 case, in case the key is routed
    hole.bind(("127.0.0.1", 0))
    hole.listen(1)
    peers = f"[peers]\n2 = host=127.0.0.1 port={hole.getsockname()[1]}\n"
    try:
        inst = pgcoro_factory(settings={"peer_id": before}, extra_ini=peers)
        w = Wire.to(inst, timeout=40)
        w.login(APP_USER, APP_PASS, "postgres")
        try:
            pid, key = w.backend_key
            if before:
                assert peer_of(pid) == before
            with open(inst.config_path) as f:
                text = f.read()
            assert f"peer_id = {before}\n" in text
            with open(inst.config_path, "w") as f:
                f.write(text.replace(f"peer_id = {before}\n", f"peer_id = {after}\n"))
            inst.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "configuration reloaded" in inst.log_text(), "the reload")
            bg = Background(lambda: wire_exec(w, "select pg_sleep(30) /* peers_reload */"))
            wait_active(pg, "peers_reload")
            assert send_cancel_request(pid, key, port=inst.port)
            rows, errs, ready = bg.join(25).result
            assert [e.get("C") for e in errs] == ["57014"], errs
            assert ready == "I"
        finally:
            w.close()
    finally:
        hole.close()


def test_drop_log_bounded(pgcoro_factory, pg):
    """A flood of cancel requests that are dropped (a peer not in [peers], a spent TTL):
    the first of each reason in a second is logged, the others counted in one line at
    the second's end (before, one WARNING line each)."""
    inst = pgcoro_factory(settings={"peer_id": 1},
                          extra_ini="[peers]\n2 = host=/nonexistent port=1\n")
    n = 300
    start = time.monotonic()
    send_cancels(inst.port, [key_for(3) for _ in range(n)] + [key_for(2, ttl=0) for _ in range(n)])
    elapsed = time.monotonic() - start

    def accounted():
        log = inst.log_text()
        full = log.count("dropped: could not find peer") + log.count("its TTL was exhausted")
        counted = sum(int(m) for m in re.findall(
            r"(\d+) more cancel requests dropped in the last second", log))
        return full, counted
    wait_until(lambda: sum(accounted()) == 2 * n, "every drop logged or counted")
    full, counted = accounted()
    # two reasons: at most one line each per second, and one count line per second
    assert full + len(re.findall("more cancel requests dropped", inst.log_text())) <= \
        3 * (elapsed + 3), (full, counted, elapsed)
