"""tcp_socket_buffer: the send buffer of client and server sockets and the receive buffer
of client sockets (set on the listening sockets, inherited); large transfers both ways go
at full speed with a small value (a receive buffer shrunk on an established connection
made a result crawl at ~40 KB/s: one delayed ACK per window)."""

import re
import subprocess

import pytest

pytestmark = pytest.mark.pooler_only

ROWS = 8000  # 8 MB each way: ~4 s here (a 64 KB loopback segment per delayed ACK with an
#               8 KB send buffer); at ~40 KB/s it took minutes, bounded here by 60 s


def skmem(pid, local_port=None, peer_port=None):
    """{"rb": receive buffer, "tb": send buffer} of PID's TCP socket with that port."""
    out = subprocess.run(["ss", "-tmnpH"], capture_output=True, text=True, timeout=10).stdout
    lines = out.splitlines()
    for i, line in enumerate(lines):
        f = line.split()
        if len(f) < 5 or f"pid={pid}," not in line:
            continue
        local, peer = f[3].rsplit(":", 1)[1], f[4].rsplit(":", 1)[1]
        if (local_port and local == str(local_port)) or (peer_port and peer == str(peer_port)):
            mem = line if "skmem:" in line else lines[i + 1]
            return {k: int(v) for k, v in re.findall(r"\b(rb|tb)(\d+)", mem)}
    raise AssertionError(f"no socket of {pid} on {local_port or peer_port}:\n{out}")


def test_small_buffers_large_transfers(pgcoro_factory, pg, psql):
    inst = pgcoro_factory(settings={"tcp_socket_buffer": 4096})
    r = psql(inst, "-At", "-c", f"copy (select repeat('x', 1000) from generate_series(1, "
                                f"{ROWS})) to stdout", timeout=60)
    assert len(r.stdout) == ROWS * 1001
    data = ("y" * 1000 + "\n") * ROWS
    r = psql(inst, "-At", "-c", "create temp table t (a text)", "-c", "copy t from stdin",
             "-c", "select count(*), sum(length(a)) from t", input=data, timeout=60)
    assert r.stdout.split()[-3:] == ["COPY", str(ROWS), f"{ROWS}|{ROWS * 1000}"], r.stdout

    c = inst.connect()  # session mode: its server stays linked while we look
    try:
        client = skmem(inst.pid, local_port=inst.port)
        server = skmem(inst.pid, peer_port=pg.port)
    finally:
        c.close()
    # the kernel doubles what is asked (socket(7)); a server socket's receive buffer is
    # the kernel's own
    assert client == {"rb": 8192, "tb": 8192}, client
    assert server["tb"] == 8192 and server["rb"] > 8192, server
