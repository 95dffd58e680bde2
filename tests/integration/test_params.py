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
        # a's next transactions, on the other server and back on the first
        for _ in range(2):
            held = holder.hold()
            pid = a.query("select pg_backend_pid()")[0][0]
            assert pid != held
            for name, (value, q) in TRACKED.items():
                assert a.query(q)[0][0] == value, (name, pid)
            holder.free()
        # another client on either server sees the defaults
        b = Wire.to(inst)
        b.login()
        try:
            for _ in range(2):
                held = holder.hold()
                for name, (_, q) in TRACKED.items():
                    assert b.query(q)[0][0] == defaults[name], name
                holder.free()
        finally:
            b.terminate()
        # RESET ALL goes back to the defaults, and that holds too
        a.query("RESET ALL")
        holder.hold()
        for name, (_, q) in TRACKED.items():
            assert a.query(q)[0][0] == defaults[name], name
        holder.free()
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
        for _ in range(2):
            holder.hold()
            cur.execute("show timezone")
            assert cur.fetchone() == ("Australia/Perth",)
            cur.execute("select now()::text like '%+08'")
            assert cur.fetchone() == (True,)
            holder.free()
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
            for _ in range(2):
                holder.hold()
                cur.execute("show timezone")
                assert cur.fetchone() == (tz,)
                holder.free()
            cur.execute("SET TimeZone = 'Pacific/Auckland'")
    finally:
        c.close()
        holder.close()
    inst.assert_serving()


@pytest.mark.parametrize("extra", ["IntervalStyle, default_transaction_read_only", ""])
def test_track_extra_parameters(pgcoro_factory, extra):
    """default_transaction_read_only is reported by PostgreSQL 15: tracked when listed."""
    inst = txn_inst(pgcoro_factory, track_extra_parameters=f'"{extra}"' if extra else '""')
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
