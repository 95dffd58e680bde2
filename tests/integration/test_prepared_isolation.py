"""Transaction mode: one client's SQL cannot take over the server statements pgcoro
prepares for another client (third audit, B3).

pgcoro prepares a client's named statement on a server under a name of its own and shares
it between the pool's clients by its text; a client that gets that server next can read
the names in pg_prepared_statements. Before: the names were PGCORO_<n>, a counter, and
pgcoro did not notice a client's SQL PREPARE / DEALLOCATE, nor a DISCARD ALL or
DEALLOCATE ALL run by a client that never named a statement itself. So another client's
SQL could replace the statement behind B's name (B's Execute ran A's SQL), PREPARE the
next name first (B's next Parse failed), or drop B's statements (B got errors). Names of
pgcoro's own requests (the portal it executes to fail where it refuses a message, the
probe, the statement a translated DEALLOCATE makes) could be taken first too: a held
cursor under the first one answered B with A's rows.

Each test fails on the code before the fix. What stays out of reach: the same SQL run by
dynamic SQL (plpgsql EXECUTE), whose CommandComplete pgcoro does not see (README: the
clients of one pool share its servers in transaction mode)."""

import re

import pytest

from conftest import PgError, Wire, bind, execute, parse, parse_fields, parse_data_row

pytestmark = pytest.mark.pooler_only

# pin_session_state off: with on (the default) the attacker's SQL PREPARE or WITH HOLD
# cursor pins it to its server, which no other client gets before server_reset_query
# (test_pinning.py); what is tested here is the defence that remains without pinning
ONE_SERVER = {"pool_mode": "transaction", "default_pool_size": 1, "pin_session_state": "off"}
SYNC = Wire.msg("S")


def Q(sql):
    return Wire.msg("Q", sql.encode() + b"\0")


def answers(w, batch):
    """Sends BATCH; its answers up to its last ReadyForQuery: rows, errors, tags."""
    w.send(batch)
    n = batch.count(SYNC) + batch.count(b"Q\0\0\0")
    out = []
    while n:
        t, p = w.read_msg()
        if t == "D":
            out.append(("D", tuple(parse_data_row(p))))
        elif t == "E":
            f = parse_fields(p)
            out.append(("E", f.get("C"), f.get("M")))
        elif t == "C":
            out.append(("C", p.rstrip(b"\0").decode()))
        elif t == "Z":
            n -= 1
    return out


def run_stmt(w, name):
    return answers(w, bind(name) + execute() + SYNC)


def row(text):
    return [("D", (text,)), ("C", "SELECT 1")]


def server_names(w):
    return [r[0] for r in w.query("SELECT name FROM pg_prepared_statements "
                                  "WHERE name LIKE 'PGCORO%' ORDER BY prepare_time")]


def b_prepares(b, name, text):
    assert answers(b, parse(name, f"SELECT '{text}'::text") + bind(name) + execute()
                   + SYNC) == row(text)


def try_query(w, sql):
    try:
        w.query(sql)
        return None
    except PgError as e:
        return e


@pytest.fixture
def pair(pgcoro_factory):
    """Clients B and A of a pool with one server (transaction mode), logged in."""
    inst = pgcoro_factory(settings=ONE_SERVER)
    with Wire.to(inst) as b, Wire.to(inst) as a:
        b.login()
        a.login()
        yield inst, b, a
    inst.assert_serving()


def test_client_cannot_replace_another_clients_server_statement(pair):
    """The audit's reproduction: A deallocates the server statement behind B's s1 and
    prepares its own SQL under that name. Before: B's Execute returned A's row."""
    inst, b, a = pair
    b_prepares(b, "s1", "the answer for b")
    names = server_names(a)
    assert names, "no server statement seen"
    try_query(a, "; ".join(f'DEALLOCATE "{n}"; PREPARE "{n}" AS SELECT \'chosen by a\'::text'
                           for n in names))
    assert run_stmt(b, "s1") == row("the answer for b")


def foretold(names, k=6):
    """Names a client could expect pgcoro to use next, from those it sees: each number
    in them (the first, the last) counted on by 1..K."""
    out = set()
    for n in names:
        for pick in (0, -1):
            nums = list(re.finditer(r"\d+", n))
            if not nums:
                continue
            m = nums[pick]
            for d in range(1, k + 1):
                out.add(n[:m.start()] + str(int(m.group()) + d) + n[m.end():])
    return sorted(out - set(names))


def test_prepare_of_a_foretold_name(pair):
    """A PREPAREs the names pgcoro would use next on their server. Before (PGCORO_<n>):
    B's next Parse failed with 42P05, "prepared statement PGCORO_2 already exists"."""
    inst, b, a = pair
    b_prepares(b, "s1", "first for b")
    names = foretold(server_names(a))
    assert names
    for n in names:
        assert try_query(a, f'PREPARE "{n}" AS SELECT \'chosen by a\'::text') is None
    b_prepares(b, "s2", "second for b")
    b_prepares(b, "s3", "third for b")
    assert run_stmt(b, "s1") == row("first for b")
    assert run_stmt(b, "s2") == row("second for b")


@pytest.mark.parametrize("sql", ["DEALLOCATE ALL", "DISCARD ALL",
                                 "select 1; DEALLOCATE PREPARE ALL", "DEALLOCATE {name}",
                                 "PREPARE x AS SELECT 1; DEALLOCATE x"])
def test_another_clients_sql_on_statements(pair, sql):
    """Another client (one that never named a statement, so its hand-out does not track
    them) drops the server's statements, or one of them, or makes and drops its own.
    Before: B's next Execute of its statement got 26000 ("prepared statement PGCORO_1
    does not exist") for the first three and the fourth."""
    inst, b, a = pair
    b_prepares(b, "s1", "for b")
    [name] = server_names(a)
    assert try_query(a, sql.format(name=f'"{name}"')) is None
    for _ in range(2):
        assert run_stmt(b, "s1") == row("for b")
    assert try_query(a, "select 1") is None


def test_held_cursor_named_like_pgcoros_failing_portal(pair):
    """Where pgcoro refuses a message (a Bind of a name the client never prepared) it makes
    the server fail there too, by executing a portal that does not exist. Before: a
    client's cursor WITH HOLD of that name ("PGCORO_FAIL") answered in its place, and B
    got A's row instead of its 26000."""
    inst, b, a = pair
    b_prepares(b, "s1", "for b")
    a.query("BEGIN")
    a.query("DECLARE \"PGCORO_FAIL\" CURSOR WITH HOLD FOR SELECT 'chosen by a'::text")
    a.query("COMMIT")
    got = run_stmt(b, "unknown")
    assert [g[:2] for g in got] == [("E", "26000")], got
    assert run_stmt(b, "s1") == row("for b")


def test_prepare_of_pgcoros_deallocate_statement(pair):
    """B's SQL DEALLOCATE of its own statement runs on the server as "PREPARE x AS SELECT;
    DEALLOCATE x" with x pgcoro's. Before (x = PGCORO_DEALLOCATE_<n>): A had made x first,
    and B's DEALLOCATE failed with 42P05."""
    inst, b, a = pair
    for i in range(1, 7):
        assert try_query(a, f'PREPARE "PGCORO_DEALLOCATE_{i}" AS SELECT 1') is None
    b_prepares(b, "s1", "for b")
    assert answers(b, Q("DEALLOCATE s1")) == [("C", "DEALLOCATE")]
    b_prepares(b, "s1", "again")


def test_probe_name_taken_by_dynamic_sql(pair):
    """pgcoro probes with a Parse of its own when the server may be in a failed block (a
    statement the server has, named by B while a Query is outstanding). A made that name
    with dynamic SQL (no PREPARE tag for pgcoro to see). Before (PGCORO_PROBE): B's Parse
    failed with 42P05."""
    inst, b, a = pair
    a.query("DO $$ BEGIN EXECUTE 'PREPARE \"PGCORO_PROBE\" AS SELECT 1'; END $$")
    b_prepares(b, "s1", "for b")
    got = answers(b, Q("select 1") + parse("s2", "SELECT 'for b'::text") + SYNC)
    assert got == [("D", ("1",)), ("C", "SELECT 1")], got
    assert run_stmt(b, "s2") == row("for b")


def test_sql_prepare_churn_bounds_server_statements(pgcoro_factory):
    """Each SQL PREPARE or DEALLOCATE makes pgcoro forget the server's statements, which
    may remain there: past max_prepared_statements of those the server is closed at its
    release, so they do not pile up (at most twice the limit of pgcoro's on it)."""
    inst = pgcoro_factory(settings=dict(ONE_SERVER, max_prepared_statements=2))
    pids = set()
    with Wire.to(inst) as b, Wire.to(inst) as a:
        b.login()
        a.login()
        b_prepares(b, "x0", "x")
        for i in range(8):
            b_prepares(b, f"s{i}", f"for b {i}")
            assert run_stmt(b, "x0") == row("x")
            [[pid, n]] = b.query("SELECT pg_backend_pid(), count(*) FROM pg_prepared_statements")
            pids.add(pid)
            assert int(n) <= 4, (i, n)
            assert try_query(a, "PREPARE mine AS SELECT 1; DEALLOCATE mine") is None
    assert len(pids) > 1, "the server was never closed"
    inst.assert_serving()
