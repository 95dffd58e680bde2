"""Finding A6: a client's startup `options=-c role=...` stays on the server for the next
client in transaction mode.

pgcoro applies a client's startup settings with set_config() on each server it gets and,
before another client gets that server, undoes them with RESET ALL (server.c, HK_UNSET).
RESET ALL leaves alone the settings PostgreSQL marks GUC_NO_RESET_ALL: `role` (and
`session_authorization`, for superusers). So the next client of the pool runs as the
role the previous client chose: current_user, privileges, row-level security, the owner
of what it creates. (The original step-8 finding 4, search_path/statement_timeout, is
fixed; this is the same class.)

Fails on the code with the defect."""

import pytest

from conftest import Wire

pytestmark = pytest.mark.pooler_only


def test_startup_role_does_not_reach_next_client(pgcoro_factory, pg):
    pg.psql_super("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                  "'audit_role') THEN CREATE ROLE audit_role NOLOGIN; END IF; END$$; "
                  "GRANT audit_role TO app;")
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 1})
    with Wire.to(inst) as a:
        a.login(options="-c role=audit_role")
        assert a.query("SELECT current_user") == [["audit_role"]]
    with Wire.to(inst) as b:
        b.login()
        got = b.query("SELECT current_user, session_user")
    assert got == [["app", "app"]], (
        f"the next client runs as {got}: the previous client's startup role stayed")
    inst.assert_serving()
