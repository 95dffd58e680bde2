"""Finding A2: LISTEN in transaction mode — what one client makes pgcoro hold is unbounded,
and each LISTEN costs time linear in the pool's channels (quadratic in all).

notify.c keeps every channel any client of the pool listens to (struct chan, ~100 bytes
plus its subscriber array) with no limit per client or per pool, finds channels by a
linear scan (chan_find) and walks all of them on every LISTEN/UNLISTEN (reconcile). The
README promises that memory per connection is bounded.

Fails on the code with the defect (RSS grows past the bound)."""

import time

import pytest

from conftest import Wire, vmrss_kb

pytestmark = pytest.mark.pooler_only

N = 40000
BATCH = 2000


def listen_batch(w, start, n):
    payload = b"".join(Wire.msg("Q", f"LISTEN audit_channel_{i:08d}_xxxxxxxxxxxxxxxxxxxx".encode()
                                + b"\0") for i in range(start, start + n))
    w.send(payload)
    got = 0
    while got < n:
        t, p = w.read_msg()
        if t == "E":
            return got, p
        if t == "Z":
            got += 1
    return got, None


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / 100.0


def test_listen_channels_per_client_bounded(pgcoro_factory):
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 2})
    with Wire.to(inst, timeout=120) as w:
        w.login()
        base = vmrss_kb(inst.pid)
        cpu = []
        times = []
        err = None
        done = 0
        while done < N:
            t0 = time.monotonic()
            c0 = cpu_s(inst.pid)
            got, err = listen_batch(w, done, BATCH)
            times.append(time.monotonic() - t0)
            cpu.append(cpu_s(inst.pid) - c0)
            done += got
            if err:
                break
        grown = vmrss_kb(inst.pid) - base
        print(f"\n{done} LISTENs by one client: RSS +{grown} kB; seconds per {BATCH}: "
              f"first {times[0]:.2f}, last {times[-1]:.2f}; pgcoro CPU s per {BATCH}: "
              f"first {cpu[0]:.2f}, last {cpu[-1]:.2f}; error: {err!r}")
        # a bound like max_client_prepared_statements: a client's channels cost < 2 MB
        assert grown < 2048, (f"one client's {done} LISTENs grew pgcoro's RSS by {grown} kB "
                              f"(per {BATCH}: {times[0]:.2f}s first, {times[-1]:.2f}s last)")
    inst.assert_serving()
