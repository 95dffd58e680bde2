"""LISTEN/NOTIFY in transaction mode: clients' LISTEN is served by pgcoro's listener
connection, notifications sent through pgcoro and directly to PostgreSQL reach every
subscribed client exactly once and in order, held while a client is in a transaction."""

import asyncio
import select
import threading
import time

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest

from conftest import (APP_PASS, APP_USER, FLUSH, SYNC, Wire, bind, close, describe, execute,
                      extended, parse, parse_fields, run_jdbc, wait_until)

N_CLIENTS = 50
N_EACH = 10  # notifications sent through pgcoro, and as many directly


def txn_inst(pgcoro_factory):
    return pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 2})


def listener_conn(inst, *channels):
    c = inst.connect()
    c.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    cur = c.cursor()
    for ch in channels:
        cur.execute(f"LISTEN {ch}")
    return c


def collect(conns, want, deadline_s=90):
    """Reads notifications on CONNS until each has WANT of them (or the deadline)."""
    got = {id(c): [] for c in conns}
    deadline = time.monotonic() + deadline_s
    pending = set(conns)
    while pending and time.monotonic() < deadline:
        ready, _, _ = select.select(list(pending), [], [], 1.0)
        for c in ready:
            c.poll()
            while c.notifies:
                n = c.notifies.pop(0)
                got[id(c)].append((n.channel, n.payload))
            if len(got[id(c)]) >= want:
                pending.discard(c)
    return got


@pytest.mark.pooler_only  # pgcoro's listener connection
def test_fifty_listeners_all_notifications_once(pgcoro_factory, pg):
    inst = txn_inst(pgcoro_factory)
    conns = [listener_conn(inst, "news") for _ in range(N_CLIENTS)]
    other = listener_conn(inst, "other", '"Mixed"')
    sender = inst.connect()
    sender.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    direct = pg.super_connect()
    try:
        expected = []
        scur, dcur = sender.cursor(), direct.cursor()
        for i in range(N_EACH):
            scur.execute("NOTIFY news, %s", (f"via-pgcoro-{i}",))
            expected.append(("news", f"via-pgcoro-{i}"))
            dcur.execute("SELECT pg_notify('news', %s)", (f"direct-{i}",))
            expected.append(("news", f"direct-{i}"))
        dcur.execute("NOTIFY other, 'o'")
        dcur.execute("""NOTIFY "Mixed", 'm'""")
        got = collect(conns, len(expected))
        for c in conns:
            assert got[id(c)] == expected, got[id(c)]
        assert collect([other], 2)[id(other)] == [("other", "o"), ("Mixed", "m")]
        # nothing more arrives: a marker sent last is the next thing each client sees
        dcur.execute("NOTIFY news, 'end'")
        for c in conns:
            assert collect([c], 1)[id(c)] == [("news", "end")]
        # the clients still query normally, through the pool's two servers
        for c in conns[:5]:
            cur = c.cursor()
            cur.execute("select 1")
            assert cur.fetchone() == (1,)
        # with every client of "news" gone, the listener connection stops listening to
        # it (and only to it: "other" still has its client)
        for c in conns:
            c.close()

        def listener_query():
            return pg.psql_super("select query from pg_stat_activity where "
                                 "query ilike '%listen%' and pid <> pg_backend_pid()").strip()
        wait_until(lambda: listener_query() == 'UNLISTEN "news";',
                   "the listener connection UNLISTENs news")
    finally:
        for c in conns + [other, sender]:
            c.close()
        direct.close()
    inst.assert_serving()


@pytest.mark.pooler_only  # PostgreSQL sends them before the ReadyForQuery
def test_unlisten_and_held_during_transaction(pgcoro_factory, pg):
    inst = txn_inst(pgcoro_factory)
    watcher = listener_conn(inst, "ch")
    direct = pg.super_connect()
    a = Wire.to(inst)
    a.login()
    try:
        assert a.query("LISTEN ch") == []
        a.query("BEGIN")
        a.query("select 1")
        direct.cursor().execute("NOTIFY ch, 'while-busy'")
        # pgcoro has it once the idle watcher has it; a, in its transaction, gets it
        # only after the transaction
        assert collect([watcher], 1)[id(watcher)] == [("ch", "while-busy")]
        a.send(Wire.msg("Q", b"select 2\0"))
        seen = []
        while True:
            t, _ = a.read_msg()
            seen.append(t)
            if t == "Z":
                break
        assert "A" not in seen, seen
        a.send(Wire.msg("Q", b"COMMIT\0"))
        seen = []
        while "A" not in seen:
            t, p = a.read_msg()
            seen.append(t)
        assert seen[-3:] == ["C", "Z", "A"] and b"while-busy" in p, seen
        # UNLISTEN: nothing more for a, the watcher still gets them
        assert a.query("UNLISTEN *") == []
        direct.cursor().execute("NOTIFY ch, 'after'")
        assert collect([watcher], 1)[id(watcher)] == [("ch", "after")]
        assert a.query("select 'no notification before this'") == [["no notification before this"]]
        assert not a.buf
    finally:
        a.terminate()
        watcher.close()
        direct.close()
    inst.assert_serving()


# ---- LISTEN that reaches a server: the extended protocol, transaction blocks ------------
# (step 9, item 2). Drivers that always use the extended protocol (asyncpg, pgjdbc) and
# a LISTEN inside a transaction block are served by the listener connection once the
# statement commits, as PostgreSQL does; the pooled server that ran it is UNLISTENed
# before anyone else gets it.

UNREAD = "a LISTEN pgcoro does not read"  # logged for a LISTEN it cannot serve


def txn5_inst(pgcoro_factory):
    return pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 5})


class Churn:
    """Psycopg2 clients running short transactions through INST on every server, each
    recording any notification it receives (none of them LISTENs)."""

    def __init__(self, inst, n=6):
        self.inst, self.stop, self.leaks, self.errors = inst, threading.Event(), [], []
        self.rounds = 0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]

    def _run(self):
        try:
            c = self.inst.connect()
            try:
                cur = c.cursor()
                while not self.stop.is_set():
                    cur.execute("select pg_sleep(0.002)")
                    c.commit()
                    c.poll()
                    if c.notifies:
                        self.leaks.extend(c.notifies)
                        del c.notifies[:]
                    self.rounds += 1
            finally:
                c.close()
        except Exception as e:  # reported by the test
            self.errors.append(repr(e))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in self.threads), "a churning client hung"


def test_asyncpg_add_listener(pgcoro_factory, pg):
    import asyncpg
    inst = txn5_inst(pgcoro_factory)
    direct = pg.super_connect()
    dcur = direct.cursor()

    def notify(channel, payload):
        dcur.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    seen = []  # every notification each connection got, whether it listens to it or not

    class Recording(asyncpg.connection.Connection):
        def _process_notification(self, pid, channel, payload):
            seen[self._index].append((channel, payload))
            super()._process_notification(pid, channel, payload)

    async def main():
        # the statement cache on (named statements) and off (unnamed ones)
        conns = []
        for size in (100, 0, 100):
            conn = await asyncpg.connect(host=inst.host, port=inst.port, user=APP_USER,
                                         password=APP_PASS, database=inst.db("postgres"),
                                         ssl=False, statement_cache_size=size,
                                         connection_class=Recording)
            conn._index = len(conns)
            conns.append(conn)
            seen.append([])
        got = [[] for _ in conns]

        def callback(i):
            return lambda conn, pid, channel, payload: got[i].append((channel, payload))
        cbs = [callback(i) for i in range(len(conns))]

        async def wait_for(i, item, deadline_s=60):
            deadline = time.monotonic() + deadline_s
            while item not in seen[i] and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert item in seen[i], (i, item, seen[i])

        await conns[0].add_listener("alpha", cbs[0])
        await conns[1].add_listener("alpha", cbs[1])
        await conns[2].add_listener("Beta", cbs[2])
        expected = []
        for k in range(20):
            notify("alpha", f"a{k}")
            notify("Beta", f"b{k}")
            expected.append(f"{k}")
            # the listeners keep querying meanwhile, each transaction on any server
            for conn in conns:
                assert await conn.fetchval("select $1::int + 1", k) == k + 1
        for i, (ch, p) in enumerate([("alpha", "a19"), ("alpha", "a19"), ("Beta", "b19")]):
            await wait_for(i, (ch, p))
        assert got[0] == got[1] == [("alpha", f"a{k}") for k in range(20)], got
        assert got[2] == [("Beta", f"b{k}") for k in range(20)], got
        assert seen[2] == got[2] and seen[0] == got[0], seen  # nothing for channels not listened

        # inside a transaction block: from its COMMIT on; none after a ROLLBACK
        async with conns[2].transaction():
            await conns[2].add_listener("gamma", cbs[2])
        notify("gamma", "g1")
        await wait_for(2, ("gamma", "g1"))

        class Undo(Exception):
            pass
        try:
            async with conns[2].transaction():
                await conns[2].add_listener("delta", cbs[2])
                raise Undo()
        except Undo:
            pass
        notify("delta", "rolled-back")
        notify("gamma", "g2")
        await wait_for(2, ("gamma", "g2"))
        assert ("delta", "rolled-back") not in seen[2], seen[2]

        # remove_listener (UNLISTEN, the cached statement again on conns[0])
        await conns[0].remove_listener("alpha", cbs[0])
        await conns[0].add_listener("marker", cbs[0])
        notify("alpha", "after-remove")
        notify("marker", "m")
        await wait_for(0, ("marker", "m"))
        await wait_for(1, ("alpha", "after-remove"))
        assert ("alpha", "after-remove") not in seen[0], seen[0]
        await conns[0].remove_listener("marker", cbs[0])
        await conns[0].add_listener("alpha", cbs[0])  # the cached LISTEN statement
        notify("alpha", "again")
        await wait_for(0, ("alpha", "again"))
        for conn in conns:
            await conn.close()

    with Churn(inst) as churn:
        asyncio.run(main())
    direct.close()
    assert not churn.errors, churn.errors
    assert churn.rounds > 0
    assert not churn.leaks, churn.leaks
    assert UNREAD not in inst.log_text()
    inst.assert_serving()


def test_pgjdbc_listen_get_notifications(pgcoro_factory, pg):
    inst = txn5_inst(pgcoro_factory)
    with Churn(inst) as churn:
        rc, out = run_jdbc(inst, "ListenJdbc")
    assert rc == 0 and out.startswith("ok"), out
    assert not churn.errors, churn.errors
    assert not churn.leaks, churn.leaks
    assert UNREAD not in inst.log_text()
    inst.assert_serving()


def test_listen_in_transaction_block(pgcoro_factory, pg):
    """psycopg2 without autocommit: LISTEN inside BEGIN ... COMMIT takes effect at the
    COMMIT; after a ROLLBACK (or a ROLLBACK TO SAVEPOINT before it) it never does."""
    inst = txn5_inst(pgcoro_factory)
    c = inst.connect()
    direct = pg.super_connect()
    dcur = direct.cursor()
    cur = c.cursor()

    def notify(channel, payload):
        dcur.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    def until_marker(payload):
        """The notifications C gets up to the marker PAYLOAD (on channel tx_m)."""
        notify("tx_m", payload)
        out, deadline = [], time.monotonic() + 60
        while ("tx_m", payload) not in out and time.monotonic() < deadline:
            select.select([c], [], [], 1.0)
            c.poll()
            while c.notifies:
                n = c.notifies.pop(0)
                out.append((n.channel, n.payload))
        assert ("tx_m", payload) in out, out
        return out[:-1]

    with Churn(inst, n=4) as churn:
        try:
            cur.execute("LISTEN tx_m")
            cur.execute("LISTEN tx_a")
            cur.execute("select 1")
            notify("tx_a", "before-commit")
            c.commit()
            notify("tx_a", "after-commit")
            assert until_marker("1") == [("tx_a", "after-commit")]

            cur.execute("LISTEN tx_b")
            c.rollback()
            notify("tx_b", "after-rollback")
            assert until_marker("2") == []

            cur.execute("SAVEPOINT s")
            cur.execute("LISTEN tx_c")
            cur.execute("ROLLBACK TO SAVEPOINT s")
            cur.execute("SAVEPOINT s2")
            cur.execute("LISTEN tx_d")
            cur.execute("RELEASE SAVEPOINT s2")
            c.commit()
            notify("tx_c", "rolled-back-to-savepoint")
            notify("tx_d", "released")
            assert until_marker("3") == [("tx_d", "released")]

            cur.execute("UNLISTEN tx_a")
            notify("tx_a", "still-listening")
            c.commit()
            notify("tx_a", "gone")
            notify("tx_d", "d2")
            assert until_marker("4") == [("tx_d", "d2")]  # none held for tx_a either

            # what the block itself notifies comes after its COMMIT, once
            cur.execute("LISTEN tx_s")
            cur.execute("NOTIFY tx_s, 'self'")
            c.commit()
            notify("tx_s", "other")
            assert until_marker("self") == [("tx_s", "self"), ("tx_s", "other")]

            # an error in the block: nothing it did takes effect
            cur.execute("LISTEN tx_e")
            with pytest.raises(psycopg2.errors.DivisionByZero):
                cur.execute("select 1/0")
            c.commit()  # a ROLLBACK, in effect
            notify("tx_e", "failed-block")
            assert until_marker("5") == []
        finally:
            c.close()
            direct.close()
    assert not churn.errors, churn.errors
    assert not churn.leaks, churn.leaks
    assert UNREAD not in inst.log_text()
    inst.assert_serving()


def answers(w, last, count=1):
    """Messages (type, payload) W reads up to and including the COUNTth of type LAST; a
    NotificationResponse's pid (the sender's backend) is left out."""
    out = []
    while True:
        t, p = w.read_msg()
        out.append((t, p[4:] if t == "A" else p))
        if t == last:
            count -= 1
            if not count:
                return out


def notification_of(payload):
    """(channel, payload) of a NotificationResponse's PAYLOAD (the pid is the sender's)."""
    channel, rest = payload[4:].split(b"\0", 1)
    return channel.decode(), rest.split(b"\0", 1)[0].decode()


# Extended-protocol LISTEN/UNLISTEN sequences: (bytes, type of the last answer[, how many
# of them]) steps,
# and the channels the client listens to afterwards (besides ext_mark).
EXTENDED_LISTEN = {
    "pgjdbc": ([(parse("", "LISTEN ext_a") + bind("") + describe("P", "") + execute() + SYNC,
                 "Z")], {"ext_a"}),
    "asyncpg": ([(parse("s1", 'LISTEN "ext_B"') + describe("S", "s1") + FLUSH, "n"),
                 (bind("s1") + execute() + SYNC, "Z"),
                 (bind("s1") + execute() + close("S", "s1") + SYNC, "Z")], {"ext_B"}),
    "unlisten": ([(extended("LISTEN ext_c") + extended("LISTEN ext_c2"), "Z", 2),
                  (parse("u", "UNLISTEN ext_c") + bind("u") + execute() + SYNC, "Z")],
                 {"ext_c2"}),
    "block-commit": ([(extended("BEGIN")[:-5] + parse("", "LISTEN ext_d") + bind("")
                       + execute() + SYNC, "Z"),
                      (extended("COMMIT"), "Z")], {"ext_d"}),
    "block-rollback": ([(extended("BEGIN"), "Z"), (extended("LISTEN ext_e"), "Z"),
                        (extended("ROLLBACK"), "Z"), (extended("LISTEN ext_e2"), "Z")],
                       {"ext_e2"}),
    "error-after": ([(parse("", "LISTEN ext_f") + bind("") + execute()
                      + parse("", "select 1/0") + bind("") + execute() + SYNC
                      + extended("LISTEN ext_f2"), "Z", 2)], {"ext_f2"}),
    "error-before": ([(parse("", "select 1/0") + bind("") + execute()
                       + parse("", "LISTEN ext_g") + bind("") + execute() + SYNC
                       + extended("LISTEN ext_g2"), "Z", 2)], {"ext_g2"}),
    "self-notify": ([(extended("LISTEN ext_j")[:-5] + extended("NOTIFY ext_j, 'self'"), "Z")],
                    {"ext_j"}),
    "self-notify-block": ([(extended("BEGIN")[:-5] + extended("LISTEN ext_k")[:-5]
                            + extended("NOTIFY ext_k, 'self'"), "Z"),
                           (extended("COMMIT"), "Z")], {"ext_k"}),
    "discard-all": ([(extended("LISTEN ext_l"), "Z"), (Wire.msg("Q", b"DISCARD ALL\0"), "Z"),
                     (extended("LISTEN ext_m"), "Z")], {"ext_m"}),
    "discard-all-simple": ([(Wire.msg("Q", b"LISTEN ext_n\0"), "Z"),
                            (Wire.msg("Q", b"discard  all ;\0"), "Z"),
                            (extended("LISTEN ext_o"), "Z")], {"ext_o"}),
    "unlisten-all": ([(extended("LISTEN ext_h"), "Z"), (extended("UNLISTEN *"), "Z"),
                      (extended("LISTEN ext_i"), "Z")], {"ext_i"}),
}
EXT_CHANNELS = ["ext_a", "ext_B", "ext_c", "ext_c2", "ext_d", "ext_e", "ext_e2", "ext_f",
                "ext_f2", "ext_g", "ext_g2", "ext_h", "ext_i", "ext_j", "ext_k", "ext_l",
                "ext_m", "ext_n", "ext_o"]


def run_extended_listen(host, port, db, steps, direct):
    """Runs STEPS on a new connection to HOST:PORT and returns (the answers to each step,
    the notifications it gets for every channel in EXT_CHANNELS sent afterwards)."""
    w = Wire(host, port)
    try:
        w.login(database=db)
        out = []
        for data, last, *count in steps:
            w.send(data)
            out.append(answers(w, last, *count))
        assert w.query("LISTEN ext_mark") == []
        dcur = direct.cursor()
        for ch in EXT_CHANNELS:
            dcur.execute("SELECT pg_notify(%s, 'p')", (ch,))
        dcur.execute("NOTIFY ext_mark, 'end'")
        got = []
        while True:
            t, p = w.read_msg()
            assert t == "A", (t, p)
            n = notification_of(p)
            if n == ("ext_mark", "end"):
                break
            got.append(n)
        return out, got
    finally:
        w.terminate()


@pytest.mark.parametrize("case", sorted(EXTENDED_LISTEN))
def test_extended_listen_matches_postgres(pgcoro_factory, pg, case):
    """The same bytes sent to PostgreSQL and through pgcoro get the same answers, byte for
    byte, and the same notifications afterwards."""
    inst = txn5_inst(pgcoro_factory)
    steps, listening = EXTENDED_LISTEN[case]
    direct = pg.super_connect()
    try:
        want, want_got = run_extended_listen(pg.host, pg.port, "postgres", steps, direct)
        assert want_got == [(ch, "p") for ch in EXT_CHANNELS if ch in listening]
        with Churn(inst, n=4) as churn:
            got = run_extended_listen(inst.host, inst.port, inst.db("postgres"), steps, direct)
        assert got == (want, want_got)
        assert not churn.errors and not churn.leaks, (churn.errors, churn.leaks)
        assert UNREAD not in inst.log_text()
    finally:
        direct.close()
    inst.assert_serving()


@pytest.mark.pooler_only  # a bound of pgcoro's (PostgreSQL has none)
def test_noted_listen_statements_bounded(pgcoro_factory):
    """What pgcoro keeps of one client's LISTEN statements is bounded: the 4097th named
    statement that is one closes the client (53400); others are served on."""
    inst = txn5_inst(pgcoro_factory)
    w = Wire.to(inst)
    try:
        w.login()
        w.send(b"".join(parse(f"l{k}", "LISTEN bounded") for k in range(4097)) + SYNC)
        fields = w.expect_error()
        assert fields["S"] == "FATAL" and fields["C"] == "53400", fields
        assert "LISTEN/UNLISTEN" in fields["M"], fields
        assert w.at_eof()
    finally:
        w.close()
    inst.assert_serving()


@pytest.mark.pooler_only  # what pgcoro does with a LISTEN it cannot serve
def test_unread_listen_reaches_nobody(pgcoro_factory, pg):
    """A LISTEN pgcoro does not read (after a comment, among several statements) runs on
    a pooled server and is not served; its notifications never reach another client of
    that server: dropped and logged, or the server is closed when idle."""
    inst = txn5_inst(pgcoro_factory)
    direct = pg.super_connect()
    dcur = direct.cursor()
    w = Wire.to(inst)
    try:
        w.login()
        with Churn(inst) as churn:
            for k in range(5):
                assert w.query(f"/* a comment */ LISTEN unread_{k}") == []
                assert w.query(f"LISTEN unread_b{k}; SELECT 1") == [["1"]]
            for _ in range(20):
                for k in range(5):
                    dcur.execute(f"NOTIFY unread_{k}, 'x'; NOTIFY unread_b{k}, 'y'")
                time.sleep(0.02)
            wait_until(lambda: churn.rounds > 200, "the churning clients run on")
        assert not churn.errors, churn.errors
        assert not churn.leaks, churn.leaks
        assert w.query("SELECT 'nothing came'") == [["nothing came"]]
        assert not w.buf
        # seen while a client held that server (logged), or while it was idle (closed)
        log = inst.log_text()
        assert ("a LISTEN pgcoro does not read" in log or
                "unexpected data from idle server" in log), log
    finally:
        w.terminate()
        direct.close()
    inst.assert_serving()


@pytest.mark.pooler_only  # pgcoro answers the simple Query LISTEN itself
def test_listen_of_a_name_invalid_in_the_encoding_is_answered(pgcoro_factory, pg):
    """A quoted channel name whose bytes are not valid UTF-8 cannot be LISTENed to by the
    listener connection (libpq refuses to escape it; PostgreSQL would refuse it with
    22021): the client gets an error and goes on, where it used to wait for ever; the
    pool's other channels are not held up."""
    inst = txn_inst(pgcoro_factory)
    with Wire.to(inst, timeout=20) as w, Wire.to(inst, timeout=20) as other:
        w.login()
        other.login()
        for listener_up in (False, True):  # refused when it connects, or at once
            if listener_up:
                assert other.query("LISTEN fine") == []
            w.send(Wire.msg("Q", b'LISTEN "\xff\xfe"\0'))
            t, p = w.read_msg()
            assert t == "E", (t, p)
            assert parse_fields(p)["C"] == "22021", p
            assert w.read_msg() == ("Z", b"I")
        assert w.query("LISTEN fine") == []
        direct = pg.super_connect()
        try:
            direct.autocommit = True
            direct.cursor().execute("NOTIFY fine, 'x'")
        finally:
            direct.close()
        for c in (w, other):
            t, p = c.read_msg()
            assert t == "A" and p[4:] == b"fine\0x\0", (t, p)
    inst.assert_serving()
