"""Cancel requests: psycopg2's cancel(), raw CancelRequests over TCP and the unix socket
with the keys pgcoro issued, wrong keys ignored, and 100 cancels racing a shared server
never hitting the other client's queries."""

import random
import socket
import struct
import threading
import time

import psycopg2
import psycopg2.errors
import pytest

from conftest import (APP_PASS, APP_USER, Background, Wire, client_backends,
                      recreate_database, send_cancel_request, wait_until, wire_exec)

pytestmark = pytest.mark.pooler_only

DB = "canceldb"


@pytest.fixture(scope="module")
def canceldb(pg):
    recreate_database(pg, DB)
    yield DB
    pg.psql_super(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE);")


def start(pgcoro_factory, pg, pool_size=2, pool_mode="transaction", **settings):
    return pgcoro_factory(settings=settings, databases={
        DB: f"host=127.0.0.1 port={pg.port} dbname={DB} pool_size={pool_size} "
            f"pool_mode={pool_mode}"})


def wire(inst, timeout=40.0):
    w = Wire.to(inst, timeout=timeout)
    w.login(APP_USER, APP_PASS, DB)
    return w


def wait_active(pg, marker):
    """The pid of the backend running the query containing MARKER, once it is active."""
    rows = wait_until(lambda: [b for b in client_backends(pg, DB)
                               if b[2] == "active" and marker in (b[3] or "")],
                      f"a query with {marker} active in pg_stat_activity")
    return rows[0][0]


# ---------------------------------------------------------------------------------------
# 1. psycopg2 cancel() from another thread


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_psycopg2_cancel(pgcoro_factory, pg, canceldb, mode):
    inst = start(pgcoro_factory, pg, pool_mode=mode)
    c = inst.connect(db=DB)
    c.autocommit = True
    try:
        cur = c.cursor()
        marker = f"cancel_psycopg2_{mode}"

        def canceller():
            wait_active(pg, marker)
            c.cancel()

        bg = Background(canceller)
        with pytest.raises(psycopg2.errors.QueryCanceled) as ei:
            cur.execute(f"select pg_sleep(30) /* {marker} */")
        assert ei.value.pgcode == "57014"
        bg.join(30)
        assert bg.exc is None, repr(bg.exc)
        # the session goes on
        cur.execute("select 41 + 1")
        assert cur.fetchone() == (42,)
        cur.execute("begin; select 1; commit")
    finally:
        c.close()
    # logged when the executor's PQcancel returns, which may be after the client's error
    wait_until(lambda: "cancel request sent" in inst.log_text(), "the cancel logged as sent")
    inst.assert_serving(db=DB)


# ---------------------------------------------------------------------------------------
# 2. a raw CancelRequest with the keys from BackendKeyData, over TCP and the unix socket


@pytest.mark.parametrize("via", ["tcp", "unix"])
@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_raw_cancel_request(pgcoro_factory, pg, canceldb, via, mode):
    inst = start(pgcoro_factory, pg, pool_mode=mode)
    a = wire(inst)
    try:
        assert a.backend_key is not None, "no BackendKeyData at login"
        pid, key = a.backend_key
        marker = f"cancel_raw_{via}_{mode}"
        bg = Background(lambda: wire_exec(a, f"select pg_sleep(30) /* {marker} */"))
        wait_active(pg, marker)
        closed = send_cancel_request(pid, key, port=inst.port,
                                     unix_dir=inst.sockdir if via == "unix" else None)
        assert closed, "the cancel requester's connection got an answer instead of a close"
        bg.join(25)
        assert bg.exc is None, repr(bg.exc)
        rows, errs, ready = bg.result
        assert [e.get("C") for e in errs] == ["57014"], errs
        assert "canceling statement due to user request" in errs[0]["M"], errs
        assert ready == "I"
        rows, errs, ready = wire_exec(a, "select 'still here'")
        assert not errs and rows == [["still here"]], (rows, errs)
        a.terminate()
    finally:
        a.close()
    inst.assert_serving(db=DB)


# ---------------------------------------------------------------------------------------
# 3. wrong keys, or a client with nothing running: nothing is cancelled


def test_cancel_wrong_keys_ignored(pgcoro_factory, pg, canceldb):
    inst = start(pgcoro_factory, pg)
    a, b = wire(inst), wire(inst)
    try:
        pid, key = a.backend_key
        wrong = [(pid, key ^ 1), (pid ^ 1, key), (b.backend_key[0], key), (0, 0)]
        marker = "cancel_wrong_keys"
        bg = Background(lambda: wire_exec(a, f"select pg_sleep(2), 'done' /* {marker} */"))
        wait_active(pg, marker)
        for k in wrong:
            assert send_cancel_request(*k, port=inst.port)
        bg.join(30)
        assert bg.exc is None, repr(bg.exc)
        rows, errs, ready = bg.result
        assert not errs and rows == [["", "done"]] and ready == "I", (rows, errs)
        # the right keys while A runs nothing: ignored, A's next query unaffected
        assert send_cancel_request(pid, key, port=inst.port)
        wait_until(lambda: "cancel request for a client without a running query: ignored"
                   in inst.log_text(), "the idle-client cancel logged as ignored")
        rows, errs, ready = wire_exec(a, "select pg_sleep(0.5), 'ok'")
        assert not errs and rows == [["", "ok"]], (rows, errs)
        # B (other keys) was never touched either
        rows, errs, ready = wire_exec(b, "select 'b'")
        assert not errs and rows == [["b"]], (rows, errs)
        a.terminate()
        b.terminate()
    finally:
        a.close()
        b.close()
    log = inst.log_text()
    assert log.count("cancel request for unknown keys: ignored") >= 3, inst.log_tail(30)
    assert "cancel request sent" not in log, inst.log_tail(30)


def test_cancel_key_bits_all_secret_without_peering(pgcoro_factory, pg, canceldb):
    """Without peer_id, every bit of the key is secret: the key with its two lowest bits
    (PgBouncer's peering TTL bits, restored for a key a peer forwarded) otherwise cancels
    nothing; only the exact key does."""
    inst = start(pgcoro_factory, pg)
    for _ in range(200):  # a key whose two bits are both set, as a restored one's are
        a = wire(inst)
        if a.backend_key[1] & 0x03 == 0x03:
            break
        a.terminate()
        a.close()
    else:
        pytest.fail("no key with both low bits set in 200 logins")
    try:
        pid, key = a.backend_key
        marker = "cancel_ttl_bits"
        bg = Background(lambda: wire_exec(a, f"select pg_sleep(2), 'done' /* {marker} */"))
        wait_active(pg, marker)
        for ttl in range(4):
            variant = (key & ~0x03) | ttl
            if variant != key:
                assert send_cancel_request(pid, variant, port=inst.port)
        bg.join(30)
        assert bg.exc is None, repr(bg.exc)
        rows, errs, ready = bg.result
        assert not errs and rows == [["", "done"]] and ready == "I", (rows, errs)
        a.terminate()
    finally:
        a.close()
    assert inst.log_text().count("cancel request for unknown keys: ignored") >= 3


# ---------------------------------------------------------------------------------------
# 4. keys are pgcoro's, one pair per client


def test_cancel_keys_differ_between_clients(pgcoro_factory, pg, canceldb):
    # a pool of 1 in transaction mode: every client's queries run on the same backend,
    # yet each has its own keys
    inst = start(pgcoro_factory, pg, pool_size=1)
    clients = [wire(inst) for _ in range(20)]
    try:
        keys = [w.backend_key for w in clients]
        assert all(k is not None for k in keys)
        assert len(set(keys)) == 20, keys
        assert len({k[0] for k in keys}) == 20, "the same process id for several clients"
        backend = {wire_exec(w, "select pg_backend_pid()")[0][0][0] for w in clients}
        assert len(backend) == 1, backend
        for w in clients:
            w.terminate()
    finally:
        for w in clients:
            w.close()


# ---------------------------------------------------------------------------------------
# 5. 100 cancels racing on a shared server: they never hit the other client


def test_racing_cancels_never_hit_other_client(pgcoro_factory, pg, canceldb):
    inst = start(pgcoro_factory, pg, pool_size=1)
    a, b = wire(inst), wire(inst)
    a_key = a.backend_key
    stop = threading.Event()
    res = {"a_ok": 0, "a_cancelled": 0, "a_other": [], "b_ok": 0, "b_bad": [],
           "b_times": [], "fired": 0, "fire_errors": []}
    lock = threading.Lock()

    def run_a():
        while not stop.is_set():
            rows, errs, ready = wire_exec(a, "select pg_sleep(0.02), 'a'")
            if ready != "I":
                res["a_other"].append(("no ReadyForQuery", errs))
                return
            if not errs:
                assert rows == [["", "a"]], rows
                res["a_ok"] += 1
            elif [e.get("C") for e in errs] == ["57014"]:
                res["a_cancelled"] += 1
            else:
                res["a_other"].append(errs)

    def run_b():
        n = 0
        while not stop.is_set():
            n += 1
            rows, errs, ready = wire_exec(b, f"select pg_sleep(0.01), 'b', {n}")
            if errs or ready != "I" or rows != [["", "b", str(n)]]:
                res["b_bad"].append((n, rows, errs, ready))
                if ready is None:
                    return
            else:
                res["b_ok"] += 1
                res["b_times"].append(time.monotonic())

    def fire(count, seed):
        rnd = random.Random(seed)
        for _ in range(count):
            try:
                assert send_cancel_request(*a_key, port=inst.port)
                with lock:
                    res["fired"] += 1
            except Exception as e:  # reported below
                res["fire_errors"].append(repr(e))
            time.sleep(rnd.uniform(0, 0.06))

    ta = Background(run_a)
    tb = Background(run_b)
    # both have been served before the cancels start
    wait_until(lambda: res["a_ok"] >= 3 and res["b_ok"] >= 3 or ta.exc or tb.exc,
               "A and B running queries")
    fire_start = time.monotonic()
    firers = [Background(lambda i=i: fire(50, i)) for i in range(2)]
    try:
        for f in firers:
            f.join(120)
            assert f.exc is None, repr(f.exc)
        fire_end = time.monotonic()
        wait_until(lambda: res["b_ok"] >= 20 and res["a_ok"] + res["a_cancelled"] >= 20
                   or ta.exc or tb.exc or res["b_bad"] or res["a_other"],
                   "A and B each through 20 queries", 60)
    finally:
        stop.set()
    ta.join(60)
    tb.join(60)
    a.terminate()
    b.terminate()
    during = sum(1 for t in res["b_times"] if fire_start <= t <= fire_end)
    print(f"racing cancels: B ok {res['b_ok']} ({during} while cancels were fired), "
          f"A ok {res['a_ok']}, A cancelled {res['a_cancelled']}")
    assert ta.exc is None and tb.exc is None, (repr(ta.exc), repr(tb.exc))
    assert res["fired"] == 100 and not res["fire_errors"], res
    assert not res["b_bad"], f"B's queries were hit: {res['b_bad'][:5]}"
    assert during >= 1, "B ran no query while the cancels were fired"
    assert not res["a_other"], res["a_other"][:5]
    # the race was exercised: cancels did reach the shared server
    wait_until(lambda: "cancel request sent" in inst.log_text(), "a cancel logged as sent")
    assert res["a_cancelled"] >= 1, res
    inst.assert_serving(db=DB)


# ---------------------------------------------------------------------------------------
# A second cancel while the first is in flight


class CancelHoldingProxy:
    """A TCP relay in front of the real PostgreSQL: connections pass both ways; a
    CancelRequest is passed on at once, but the relay keeps its connection open towards
    pgcoro (whose PQcancel waits for that close) until release() — so pgcoro's first
    cancel is 'in flight' for as long as the test wants."""

    CANCEL = struct.pack("!II", 16, 80877102)

    def __init__(self, pg_port):
        self.pg_port = pg_port
        self.release_ev = threading.Event()
        self.cancels = 0
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self.socks.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            first = c.recv(8, socket.MSG_WAITALL)
            up = socket.create_connection(("127.0.0.1", self.pg_port))
            self.socks.append(up)
            up.sendall(first)
            if first == self.CANCEL:
                up.sendall(c.recv(8, socket.MSG_WAITALL))
                self.cancels += 1
                up.recv(1)                  # PostgreSQL closes once it has it
                up.close()
                self.release_ev.wait(60)    # pgcoro's PQcancel waits for this close
                c.close()
                return
            threading.Thread(target=self._pipe, args=(up, c), daemon=True).start()
            self._pipe(c, up)
        except OSError:
            pass

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def release(self):
        self.release_ev.set()

    def close(self):
        self.release_ev.set()
        for s in [self.lsock] + self.socks:
            try:
                s.close()
            except OSError:
                pass


def test_second_cancel_while_first_in_flight(pgcoro_factory, pg, canceldb):
    """Transaction mode: a cancel ends query A, but pgcoro's PQcancel for it has not
    returned yet (the server stays the client's meanwhile, so the cancel cannot hit
    another client). The client runs query B on that server and cancels it too: the
    second cancel must be sent once the first is done. Before: it was dropped and B ran
    to its end (a lost Ctrl-C)."""
    proxy = CancelHoldingProxy(pg.port)
    try:
        inst = pgcoro_factory(databases={
            DB: f"host=127.0.0.1 port={proxy.port} dbname={DB} pool_size=1 "
                "pool_mode=transaction"})
        w = wire(inst)
        pid, key = w.backend_key
        a = Background(lambda: wire_exec(w, "SELECT pg_sleep(60) /* A */"))
        wait_active(pg, "/* A */")
        send_cancel_request(pid, key, port=inst.port)
        _, errors, _ = a.join(30).result
        assert errors and errors[0]["C"] == "57014", errors
        assert proxy.cancels == 1
        b = Background(lambda: wire_exec(w, "SELECT pg_sleep(60) /* B */"))
        wait_active(pg, "/* B */")
        send_cancel_request(pid, key, port=inst.port)
        proxy.release()                   # the first PQcancel returns now
        _, errors, _ = b.join(45).result
        assert errors and errors[0]["C"] == "57014", errors
        assert proxy.cancels == 2
        w.close()
    finally:
        proxy.close()
