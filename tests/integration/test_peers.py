"""Peering (PgBouncer 1.19+): two pgcoro processes on one TCP port (so_reuseport), each
with its own unix socket, a peer_id and [peers] naming both. A client's cancel key
carries its process's id; a CancelRequest that reaches the other process is forwarded to
the owner and cancels the query. Keys of a peer not in [peers], or whose forwarding TTL is
spent, are dropped with a log line; bad [peers] entries are refused at load; SIGTERM lets
the other process take the port's new connections while the old one finishes."""

import os
import random
import signal
import subprocess

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
