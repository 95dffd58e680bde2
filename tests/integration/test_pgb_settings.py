"""PgBouncer settings with PgBouncer's meaning: application_name_add_host (the client's
address after its application_name, on the server and as the client sees it) and
server_reset_query_always (server_reset_query after every transaction in transaction
mode, so that session state a client leaves behind is not passed on)."""

import pytest

from conftest import APP_PASS, APP_USER, Wire, recreate_database

pytestmark = pytest.mark.pooler_only

DB = "pgbsetdb"


@pytest.fixture(scope="module")
def setdb(pg):
    recreate_database(pg, DB)
    yield DB
    pg.psql_super(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE);")


def start(pgcoro_factory, pg, **settings):
    return pgcoro_factory(settings=settings, databases={
        DB: f"host=127.0.0.1 port={pg.port} dbname={DB} pool_size=1 pool_mode=transaction"})


def wire(inst, unix=False, **params):
    w = Wire.to(inst, timeout=20.0, unix_dir=inst.sockdir if unix else None)
    w.login(APP_USER, APP_PASS, DB, **params)
    return w


def backend_app_names(pg):
    out = pg.psql_super(f"SELECT application_name FROM pg_stat_activity "
                        f"WHERE datname = '{DB}' AND backend_type = 'client backend'")
    return out


@pytest.mark.parametrize("sent", ["myapp", None])
def test_application_name_add_host_tcp(pgcoro_factory, pg, setdb, sent):
    inst = start(pgcoro_factory, pg, application_name_add_host=1)
    params = {"application_name": sent} if sent else {}
    with wire(inst, **params) as w:
        host, port = w.sock.getsockname()[:2]
        want = f"{sent or 'app'} - {host}:{port}"
        assert w.query("SHOW application_name") == [[want]]
        assert w.params.get("application_name") == want
        assert want in backend_app_names(pg)


def test_application_name_add_host_unix(pgcoro_factory, pg, setdb):
    inst = start(pgcoro_factory, pg, application_name_add_host=1)
    with wire(inst, unix=True, application_name="cron") as w:
        assert w.query("SHOW application_name") == [[f"cron - unix:{inst.port}"]]


def test_application_name_untouched_by_default(pgcoro_factory, pg, setdb):
    inst = start(pgcoro_factory, pg)
    with wire(inst, application_name="myapp") as w:
        assert w.query("SHOW application_name") == [["myapp"]]


@pytest.mark.parametrize("always", [0, 1])
def test_server_reset_query_always(pgcoro_factory, pg, setdb, always):
    """Pool of one server: what A leaves in the session (a custom setting set for the
    session, outside any transaction block) reaches B without the key, and not with it.
    (pin_session_state off, PgBouncer's behaviour: with on, the default, A's setting is
    A's and B never sees it: test_pinning.py.)"""
    inst = start(pgcoro_factory, pg, server_reset_query_always=always,
                 server_reset_query="DISCARD ALL", pin_session_state="off")
    with wire(inst) as a:
        pid_a = a.query("SELECT pg_backend_pid()")
        a.query("SELECT set_config('pgcoro_test.left', 'behind', false)")
    with wire(inst) as b:
        assert b.query("SELECT pg_backend_pid()") == pid_a  # the same server
        left = b.query("SELECT current_setting('pgcoro_test.left', true)")
    assert left == ([[""]] if always else [["behind"]])


def test_server_reset_query_always_keeps_prepared_statements_working(pgcoro_factory, pg,
                                                                     setdb):
    """DISCARD ALL after each transaction drops the server's prepared statements: pgcoro
    forgets the ones it made there and prepares them again for the next use."""
    inst = start(pgcoro_factory, pg, server_reset_query_always=1,
                 server_reset_query="DISCARD ALL", max_prepared_statements=10)
    import psycopg
    with psycopg.connect(host=inst.host, port=inst.port, user=APP_USER, password=APP_PASS,
                         dbname=DB, prepare_threshold=0, autocommit=True,
                         connect_timeout=20) as conn:
        for i in range(5):
            assert conn.execute("SELECT %s::int + 1", (i,)).fetchone() == (i + 1,)
