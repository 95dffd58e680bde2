"""Session parameters in transaction mode: what a client SETs of the parameters PostgreSQL
reports (TimeZone, DateStyle, IntervalStyle, application_name, client_encoding,
standard_conforming_strings, and track_extra_parameters) holds in its next transactions
whichever server they run on, and never leaks into another client's."""

import psycopg2
import pytest

from conftest import Wire

TRACKED = {
    "TimeZone": ("America/New_York", "show timezone"),
    "DateStyle": ("SQL, DMY", "show datestyle"),
    "IntervalStyle": ("iso_8601", "show intervalstyle"),
    "application_name": ("set by the session", "show application_name"),
    "client_encoding": ("LATIN1", "show client_encoding"),
    "standard_conforming_strings": ("off", "show standard_conforming_strings"),
}


def txn_inst(pgcoro_factory, **settings):
    s = {"pool_mode": "transaction", "default_pool_size": 2}
    s.update(settings)
    return pgcoro_factory(settings=s)


class Holder:
    """Keeps one of the pool's two servers in a transaction, so the next transaction of
    another client runs on the other one."""

    def __init__(self, inst):
        self.w = Wire.to(inst)
        self.w.login()

    def hold(self):
        self.w.query("BEGIN")
        return self.w.query("select pg_backend_pid()")[0][0]

    def free(self):
        self.w.query("COMMIT")

    def close(self):
        self.w.terminate()

    def on_both_servers(self, check):
        """Runs CHECK while this holder keeps a server (so it runs on the other one), then
        after it gave that server back (LIFO: CHECK runs on it)."""
        self.hold()
        check()
        self.free()
        check()


def test_set_holds_across_servers_and_does_not_leak(pgcoro_factory):
    inst = txn_inst(pgcoro_factory)
    holder = Holder(inst)
    a = Wire.to(inst)
    a.login()
    try:
        defaults = {name: a.query(q)[0][0] for name, (_, q) in TRACKED.items()}
        for name, (value, _) in TRACKED.items():
            assert value != defaults[name]
            a.query(f"SET {name} = '{value}'")
        def expect(client, values):
            pids = set()
            for name, (_, q) in TRACKED.items():
                pid, got = client.query(f"select pg_backend_pid(), current_setting('{name}')")[0]
                pids.add(pid)
                assert got == values[name], (name, pid)
            assert len(pids) == 1

        # a's next transactions, on either server
        holder.on_both_servers(lambda: expect(a, {k: v for k, (v, _) in TRACKED.items()}))
        # another client, on either server, sees the defaults
        b = Wire.to(inst)
        b.login()
        try:
            holder.on_both_servers(lambda: expect(b, defaults))
        finally:
            b.terminate()
        # RESET ALL goes back to the defaults, and that holds too
        a.query("RESET ALL")
        holder.on_both_servers(lambda: expect(a, defaults))
    finally:
        a.terminate()
        holder.close()
    inst.assert_serving()


def test_set_local_and_rollback_are_not_kept(pgcoro_factory):
    inst = txn_inst(pgcoro_factory)
    holder = Holder(inst)
    c = inst.connect()
    try:
        cur = c.cursor()
        cur.execute("SET LOCAL TimeZone = 'Asia/Tokyo'")   # psycopg2 opened a transaction
        cur.execute("show timezone")
        assert cur.fetchone() == ("Asia/Tokyo",)
        c.commit()
        cur.execute("SET TimeZone = 'Europe/Paris'")
        c.rollback()
        c.autocommit = True
        cur.execute("SET TimeZone = 'Australia/Perth'")

        def perth():
            cur.execute("select current_setting('TimeZone'), now()::text like '%+08'")
            assert cur.fetchone() == ("Australia/Perth", True)
        holder.on_both_servers(perth)
    finally:
        c.close()
        holder.close()
    inst.assert_serving()


def test_startup_value_then_set(pgcoro_factory):
    """A startup parameter is the client's value until its session SETs another."""
    inst = txn_inst(pgcoro_factory)
    holder = Holder(inst)
    c = psycopg2.connect(inst.dsn(options="-c TimeZone=Europe/Berlin"))
    c.autocommit = True
    try:
        cur = c.cursor()
        for tz in ("Europe/Berlin", "Pacific/Auckland"):
            def check():
                cur.execute("show timezone")
                assert cur.fetchone() == (tz,)
            holder.on_both_servers(check)
            cur.execute("SET TimeZone = 'Pacific/Auckland'")
    finally:
        c.close()
        holder.close()
    inst.assert_serving()


@pytest.mark.parametrize("extra", ["IntervalStyle, default_transaction_read_only", ""])
def test_track_extra_parameters(pgcoro_factory, extra):
    """default_transaction_read_only is reported by PostgreSQL 15: tracked when listed.
    (With pin_session_state on, the default, a SET of it is carried as any other setting:
    test_pinning.py; here it is off, to see the tracking alone.)"""
    inst = txn_inst(pgcoro_factory, track_extra_parameters=f'"{extra}"' if extra else '""',
                    pin_session_state="off")
    holder = Holder(inst)
    a = Wire.to(inst)
    a.login()
    try:
        a.query("SET default_transaction_read_only = on")
        a.query("SET IntervalStyle = 'sql_standard'")
        holder.hold()
        ro = a.query("show default_transaction_read_only")[0][0]
        style = a.query("show intervalstyle")[0][0]
        holder.free()
        assert style == "sql_standard"  # always tracked
        if extra:
            assert ro == "on"
        else:
            assert ro == "off"  # not tracked: the other server's own value
    finally:
        a.terminate()
        holder.close()
    inst.assert_serving()


def test_startup_value_in_other_words(pgcoro_factory):
    """A startup DateStyle the server reports in other words ("ISO" is "ISO, MDY", "dmy"
    is "ISO, DMY") is kept in the server's words after its first sync, as PgBouncer's
    canonical values: clients taking turns on one server each keep theirs, and a client
    whose value the server already has needs no sync again."""
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 1,
                                    "log_level": "debug"})
    syncs = lambda: inst.log_text().count("housekeeping: parameter sync")  # noqa: E731
    with Wire.to(inst) as iso, Wire.to(inst) as dmy, Wire.to(inst) as plain:
        iso.login(DateStyle="ISO")
        assert iso.query("show datestyle") == [["ISO, MDY"]]
        dmy.login(DateStyle="dmy")
        plain.login()
        for _ in range(3):
            assert dmy.query("show datestyle") == [["ISO, DMY"]]
            assert plain.query("show datestyle") == [["ISO, MDY"]]
        # "ISO" is the server's "ISO, MDY": once known, no sync for it any more
        before = syncs()
        for _ in range(3):
            assert plain.query("show datestyle") == [["ISO, MDY"]]
            assert iso.query("show datestyle") == [["ISO, MDY"]]
        assert syncs() == before, inst.log_text()
        assert dmy.query("show datestyle") == [["ISO, DMY"]]


def test_first_login_runs_nothing(pgcoro_factory, pg):
    """Transaction mode: the first login of a pool takes a server only to learn its
    parameters; its settings are not applied then but with its first query, as for every
    later login (PgBouncer's order): a login costs no sync, and a parameter PostgreSQL
    refuses fails the first query (FATAL, PostgreSQL's SQLSTATE) for the first login as
    for the next ones."""
    fresh = f"host=127.0.0.1 port={pg.port} dbname=postgres"
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "log_level": "debug"},
                          databases={"fresh1": fresh, "fresh2": fresh})
    syncs = lambda: inst.log_text().count("housekeeping: parameter sync")  # noqa: E731
    for n in range(2):
        with Wire.to(inst) as w:
            w.login(database="fresh1", DateStyle="dmy")
            assert w.params["DateStyle"] == "dmy"  # its own value, as a later login's
            assert syncs() == n, inst.log_text()  # the first login too ran nothing
            assert w.query("show datestyle") == [["ISO, DMY"]]
    for _ in range(2):
        with Wire.to(inst) as w:
            w.login(database="fresh2", no_such_setting="1")
            w.send(Wire.msg("Q", b"select 1\0"))
            e = w.expect_error()
            assert (e["S"], e["C"]) == ("FATAL", "42704"), e
    inst.assert_serving()
