"""What one client's LISTENs make pgcoro hold is bounded (audit finding A2).

Transaction mode: pgcoro's listener connection keeps each channel a client of the pool
listens to. A client listens to at most max_client_listen_channels channels (default
1024): a LISTEN of one more is answered ERROR 53400 naming the setting, logged, and the
session goes on with its other channels. Channels and subscriptions are found by hash,
and the listener's queries cover the channels that changed only (before: a linear scan
and a walk of every channel per LISTEN, +30 MB RSS and 0.18 -> 4.7 s of pgcoro CPU per
2,000 LISTENs over 40,000 of them, ASan build)."""

import re
import time
import urllib.request

import pytest

from conftest import Wire, free_port, parse_fields, vmrss_kb, wait_until

pytestmark = pytest.mark.pooler_only  # pgcoro's listener connection and its limit

N = 40000
BATCH = 2000
DEFAULT_LIMIT = 1024


def txn_inst(pgcoro_factory, **settings):
    return pgcoro_factory(settings=dict({"pool_mode": "transaction", "default_pool_size": 2},
                                        **settings))


def listen_batch(w, start, n):
    """Sends N LISTENs of new channels at once; their outcomes: [None (done) or the
    ErrorResponse's fields], in order."""
    w.send(b"".join(Wire.msg("Q", f"LISTEN audit_channel_{i:08d}_xxxxxxxxxxxxxxxxxxxx".encode()
                             + b"\0") for i in range(start, start + n)))
    out, err = [], None
    while len(out) < n:
        t, p = w.read_msg()
        if t == "E":
            err = parse_fields(p)
        elif t == "Z":
            out.append(err)
            err = None
    return out


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / 100.0


def test_listen_channels_per_client_bounded(pgcoro_factory):
    """40,000 LISTENs of distinct channels by one client: the first 1024 (the default
    max_client_listen_channels) are done, every other one is refused with 53400, and
    pgcoro's RSS stays flat past the first batch (the ASan build's quarantine takes the
    churn of that one). Fails on the code without the bound: +30 MB."""
    inst = txn_inst(pgcoro_factory)
    with Wire.to(inst, timeout=120) as w:
        w.login()
        outcomes, cpu, base = [], [], None
        for start in range(0, N, BATCH):
            c0 = cpu_s(inst.pid)
            outcomes += listen_batch(w, start, BATCH)
            cpu.append(cpu_s(inst.pid) - c0)
            if base is None:
                base = vmrss_kb(inst.pid)
        grown = vmrss_kb(inst.pid) - base
        refused = [e for e in outcomes if e]
        print(f"\n{N} LISTENs by one client, {len(refused)} refused: RSS +{grown} kB after "
              f"the first {BATCH}; pgcoro CPU s per {BATCH}: first {cpu[0]:.2f}, "
              f"last {cpu[-1]:.2f}, most {max(cpu):.2f}")
        # a bound like max_client_prepared_statements: a client's channels cost < 2 MB
        assert grown < 2048, (f"one client's {N} LISTENs grew pgcoro's RSS by {grown} kB "
                              f"past the first {BATCH}")
        assert outcomes[:DEFAULT_LIMIT] == [None] * DEFAULT_LIMIT
        assert len(refused) == N - DEFAULT_LIMIT
        assert {e["C"] for e in refused} == {"53400"}
        assert "max_client_listen_channels is 1024" in refused[0]["M"], refused[0]
        assert w.query("select 1") == [["1"]]
    inst.assert_serving()


# ---- the limit, its answer and what goes on ------------------------------------------


def notifications_until(w, marker):
    """The (channel, payload) of the notifications W reads up to and with MARKER."""
    got = []
    while True:
        t, p = w.read_msg()
        assert t == "A", (t, p)
        channel, payload = p[4:].split(b"\0")[:2]
        got.append((channel.decode(), payload.decode()))
        if got[-1] == marker:
            return got


def notify(pg, *pairs):
    """Sends each (channel, payload) straight to PostgreSQL, in order, each committed."""
    c = pg.super_connect()
    try:
        c.autocommit = True
        for channel, payload in pairs:
            c.cursor().execute("SELECT pg_notify(%s, %s)", (channel, payload))
    finally:
        c.close()


def refused(w, sql):
    """Runs SQL, which must be refused by the listen limit: the error's fields."""
    w.send(Wire.msg("Q", sql.encode() + b"\0"))
    t, p = w.read_msg()
    assert t == "E", (t, p)
    err = parse_fields(p)
    assert w.read_msg() == ("Z", b"I")
    return err


def test_listen_past_limit_refused_session_goes_on(pgcoro_factory, pg):
    """max_client_listen_channels = 3: the 4th channel is refused with 53400 naming the
    setting (a logged line), and the session goes on: queries and transactions work, a
    LISTEN of a channel it has is still a no-op, and its three channels deliver."""
    inst = txn_inst(pgcoro_factory, max_client_listen_channels=3)
    with Wire.to(inst) as w:
        w.login()
        for ch in ("a", "b", "c"):
            assert w.query(f"LISTEN {ch}") == []
        err = refused(w, "LISTEN d")
        assert err["C"] == "53400" and err["S"] == "ERROR", err
        assert err["M"] == ('LISTEN "d" refused: this client listens to 3 channels, '
                            "max_client_listen_channels is 3"), err
        assert "UNLISTEN" in err["H"], err
        assert w.query("LISTEN a") == []  # it has it: no new place needed
        assert w.query("select 2") == [["2"]]
        assert w.query("BEGIN; select 3; COMMIT") == [["3"]]
        notify(pg, ("d", "lost"), ("a", "1"), ("b", "2"), ("c", "3"), ("d", "lost"),
               ("a", "end"))
        assert notifications_until(w, ("a", "end")) == [
            ("a", "1"), ("b", "2"), ("c", "3"), ("a", "end")]
    lines = [ln for ln in inst.log_text().splitlines() if "max_client_listen_channels" in ln]
    assert len(lines) == 1 and "53400" in lines[0], lines
    inst.assert_serving()


def test_unlisten_frees_a_place(pgcoro_factory, pg):
    """max_client_listen_channels = 2: an UNLISTEN gives a place back, UNLISTEN * all of
    them; the channels left deliver no more."""
    inst = txn_inst(pgcoro_factory, max_client_listen_channels=2)
    with Wire.to(inst) as w:
        w.login()
        w.query("LISTEN a")
        w.query("LISTEN b")
        assert refused(w, "LISTEN c")["C"] == "53400"
        w.query("UNLISTEN a")
        assert w.query("LISTEN c") == []
        assert refused(w, "LISTEN a")["C"] == "53400"
        notify(pg, ("a", "gone"), ("b", "1"), ("c", "2"), ("c", "end"))
        assert notifications_until(w, ("c", "end")) == [("b", "1"), ("c", "2"), ("c", "end")]
        w.query("UNLISTEN *")
        assert w.query("LISTEN x") == []
        assert w.query("LISTEN y") == []
        assert refused(w, "LISTEN z")["C"] == "53400"
        notify(pg, ("b", "gone"), ("c", "gone"), ("z", "gone"), ("x", "1"), ("y", "end"))
        assert notifications_until(w, ("y", "end")) == [("x", "1"), ("y", "end")]
    inst.assert_serving()


def test_two_clients_one_channel(pgcoro_factory, pg):
    """Two clients on one channel both get its notifications; one's UNLISTEN, then the
    other's leaving, does not unsubscribe the one that stays. The limit counts each
    client's own channels (max_client_listen_channels = 2)."""
    inst = txn_inst(pgcoro_factory, max_client_listen_channels=2)
    a, b, c = Wire.to(inst), Wire.to(inst), Wire.to(inst)
    try:
        for w in (a, b, c):
            w.login()
        for w in (a, b):
            w.query("LISTEN shared")
            w.query(f"LISTEN own_{'a' if w is a else 'b'}")
        notify(pg, ("shared", "1"), ("own_a", "a"), ("own_b", "b"), ("shared", "end"))
        assert notifications_until(a, ("shared", "end")) == [
            ("shared", "1"), ("own_a", "a"), ("shared", "end")]
        assert notifications_until(b, ("shared", "end")) == [
            ("shared", "1"), ("own_b", "b"), ("shared", "end")]
        a.query("UNLISTEN shared")
        c.query("LISTEN shared")
        notify(pg, ("shared", "2"), ("own_a", "end"), ("own_b", "end"))
        assert notifications_until(a, ("own_a", "end")) == [("own_a", "end")]
        assert notifications_until(b, ("own_b", "end")) == [("shared", "2"), ("own_b", "end")]
        assert notifications_until(c, ("shared", "2")) == [("shared", "2")]
        b.terminate()  # b leaves: c stays subscribed
        notify(pg, ("shared", "3"))
        assert notifications_until(c, ("shared", "3")) == [("shared", "3")]
        assert c.query("select 1") == [["1"]]
    finally:
        for w in (a, b, c):
            w.close()
    inst.assert_serving()


def test_listen_past_limit_in_transaction_block_closes(pgcoro_factory, pg):
    """A LISTEN inside a transaction block runs on the client's server and takes effect
    at COMMIT, which has happened when pgcoro sees it is one too many: the client is
    closed with 53400 (its COMMIT's answer comes first), and another client's channels
    are untouched."""
    inst = txn_inst(pgcoro_factory, max_client_listen_channels=1)
    with Wire.to(inst) as other, Wire.to(inst) as w:
        other.login()
        other.query("LISTEN mine")
        w.login()
        for sql in ("BEGIN", "LISTEN one", "COMMIT", "BEGIN", "LISTEN two"):
            w.query(sql)
        w.send(Wire.msg("Q", b"COMMIT\0"))
        t, p = w.read_msg()
        assert (t, p) == ("C", b"COMMIT\0")
        err = w.expect_error()
        assert err["C"] == "53400" and err["S"] == "FATAL", err
        assert "max_client_listen_channels is 1" in err["M"], err
        assert w.at_eof()
        notify(pg, ("mine", "still"))
        assert notifications_until(other, ("mine", "still")) == [("mine", "still")]
    inst.assert_serving()


# ---- notifications held for busy clients, all together ----------------------------------


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=20) as r:
        text = r.read().decode()
    m = re.search("^" + re.escape(name) + r" (\S+)$", text, re.M)
    assert m, (name, text[-2000:])
    return float(m.group(1))


def test_held_notifications_bounded_for_all_clients(pgcoro_factory, pg):
    """One NOTIFY is held for every subscriber that is busy (in a transaction) or not
    reading: max_held_notification_bytes bounds them all together (here 256kB). L1, busy
    first, is furthest behind when 30 notifications of 7 kB have gone to it and 10 to L2:
    L1 is closed with 53200 (logged, counted in /metrics), L2 gets all of its own at its
    COMMIT, and L3, idle and reading, every one. Before: no such bound (an unknown key)
    and each client up to 16 MB."""
    port = free_port()
    inst = txn_inst(pgcoro_factory, default_pool_size=3, max_held_notification_bytes="256kB",
                    metrics_listen=f"127.0.0.1:{port}")
    payload = "x" * 7000
    with Wire.to(inst) as l1, Wire.to(inst) as l2, Wire.to(inst) as l3:
        for w in (l1, l2, l3):
            w.login()
            w.query("LISTEN big")
        l1.query("BEGIN")
        l1.query("select 1")
        notify(pg, *[("big", f"{i} {payload}") for i in range(20)])
        last = notifications_until(l3, ("big", f"19 {payload}"))
        assert len(last) == 20
        assert metric(port, "pgcoro_notification_held_bytes") > 20 * 7000
        l2.query("BEGIN")
        l2.query("select 1")
        notify(pg, *[("big", f"{i} {payload}") for i in range(20, 30)])
        assert len(notifications_until(l3, ("big", f"29 {payload}"))) == 10
        held = metric(port, "pgcoro_notification_held_bytes")
        assert 10 * 7000 < held <= 256 * 1024, held
        assert metric(port, 'pgcoro_notification_clients_closed_total{limit="total"}') == 1
        assert metric(port, 'pgcoro_notification_clients_closed_total{limit="client"}') == 0
        # L1 was closed (told at once)
        err = l1.expect_error()
        assert err["C"] == "53200" and err["S"] == "FATAL", err
        assert "max_held_notification_bytes" in err["M"], err
        assert l1.at_eof()
        # L2 gets its 10 after its COMMIT, then nothing is held
        l2.send(Wire.msg("Q", b"COMMIT\0"))
        assert l2.read_msg() == ("C", b"COMMIT\0")
        assert l2.read_msg() == ("Z", b"I")
        got = notifications_until(l2, ("big", f"29 {payload}"))
        assert [g[1].split()[0] for g in got] == [str(i) for i in range(20, 30)]
        wait_until(lambda: metric(port, "pgcoro_notification_held_bytes") == 0,
                   "nothing held")
        assert l3.query("select 1") == [["1"]]
    assert "max_held_notification_bytes (262144) reached" in inst.log_text()
    inst.assert_serving()


def test_held_notifications_default_bound(pgcoro_factory, pg):
    """The default bound (64 MB for all clients): 11 clients listen in a transaction while
    6.3 MB of notifications are sent, 69 MB held in all. Clients furthest behind are
    closed with 53200 until the rest fit (one or two: they are all as far behind), and
    the others get every notification at their COMMIT. Before: all 11 held their 6.3 MB
    (nobody was near the 16 MB of one client)."""
    import select
    inst = txn_inst(pgcoro_factory, default_pool_size=12)
    payload = "y" * 7000
    n = 900
    busy = [Wire.to(inst) for _ in range(11)]
    try:
        with Wire.to(inst) as idle:
            for w in busy + [idle]:
                w.login()
                w.query("LISTEN bulk")
            for w in busy:
                w.query("BEGIN")
                w.query("select 1")
            notify(pg, *[("bulk", f"{i} {payload}") for i in range(n)])
            assert len(notifications_until(idle, ("bulk", f"{n - 1} {payload}"))) == n
            closed = [w for w in busy if select.select([w.sock], [], [], 0.5)[0]]
            assert 1 <= len(closed) <= 2, len(closed)
            for w in closed:
                err = w.expect_error()
                assert err["C"] == "53200" and "max_held_notification_bytes" in err["M"], err
            kept = [w for w in busy if w not in closed]
            kept[0].send(Wire.msg("Q", b"COMMIT\0"))
            assert kept[0].read_msg() == ("C", b"COMMIT\0")
            assert kept[0].read_msg() == ("Z", b"I")
            got = notifications_until(kept[0], ("bulk", f"{n - 1} {payload}"))
            assert len(got) == n
            assert idle.query("select 1") == [["1"]]
    finally:
        for w in busy:
            w.close()
    inst.assert_serving()
