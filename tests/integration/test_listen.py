"""LISTEN/NOTIFY in transaction mode: clients' LISTEN is served by pgcoro's listener
connection, notifications sent through pgcoro and directly to PostgreSQL reach every
subscribed client exactly once and in order, held while a client is in a transaction."""

import select
import time

import psycopg2
import psycopg2.extensions

from conftest import Wire, wait_until

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
