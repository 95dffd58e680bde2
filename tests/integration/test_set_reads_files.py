"""Audit B1 (fixed): the console's SET showed an admin the contents of any file pgcoro can
read; and auth_file is read only as a file or FIFO, with bounded lines.

`SET auth_hba_file = 'PATH'` (src/console.c run_set -> src/reload.c reload_set -> load_job ->
load_hba -> hba_load) parses PATH as pg_hba.conf and, when it does not parse, the console
gets the parser's message as the detail of "SET failed" (console_set_done -> answer_set).
hba.c quotes the offending token (src/hba.c parse_rule: `invalid connection type "%s"`),
so the first word of the first non-comment line of any file readable by the pgcoro OS user
reaches the console client. A libpq password file (~/.pgpass of the service user, which
holds the server passwords pgcoro's libpq connections use) is one word per line:
`host:port:db:user:password`, so the whole line, password included, is shown.

PgBouncer's SET answers only "SET failed" and logs the parse error; pgcoro does not send a
file's parse errors (which quote its contents) to the console either (src/reload.c
load_done)."""

import os

import psycopg2
import pytest

from conftest import APP_PASS  # noqa: F401  (the harness)

pytestmark = pytest.mark.pooler_only

ADMIN, ADMIN_PASS = "admin", "adminpw"
SECRET = "S3rverPassw0rd-only-in-the-passfile"


def set_refused(inst, stmt):
    """STMT on INST's console as the admin: the error it must get."""
    c = psycopg2.connect(host=inst.host, port=inst.port, user=ADMIN, password=ADMIN_PASS,
                         dbname="pgbouncer", connect_timeout=30)
    c.autocommit = True
    try:
        with pytest.raises(psycopg2.Error) as e:
            c.cursor().execute(stmt)
        return e.value
    finally:
        c.close()


def test_set_auth_hba_file_does_not_show_file_contents(pgcoro_factory):
    inst = pgcoro_factory(settings={"admin_users": ADMIN},
                          users={ADMIN: ADMIN_PASS})
    passfile = os.path.join(inst.workdir, "pgpass")
    with open(passfile, "w") as f:
        f.write(f"10.0.0.5:5432:*:app_owner:{SECRET}\n")
    os.chmod(passfile, 0o600)
    err = set_refused(inst, f"SET auth_hba_file = '{passfile}'")
    shown = (err.pgerror or "") + (err.diag.message_detail or "")
    print("\nthe console was told:", shown)
    assert SECRET not in shown, f"the file's contents reached the console: {shown!r}"
    inst.assert_serving()


def test_set_auth_file_of_a_device_is_refused(pgcoro_factory):
    """auth_file must be a file (or a FIFO): /dev/zero grew memory without bound."""
    path = "/dev/zero"
    inst = pgcoro_factory(settings={"admin_users": ADMIN},
                          users={ADMIN: ADMIN_PASS})
    assert set_refused(inst, f"SET auth_file = '{path}'").pgcode == "08P01"
    assert f"{path}: not a regular file" in inst.log_text()
    inst.assert_serving()


def test_auth_file_line_bound(pgcoro_factory):
    """A line past the bound is refused with its line number, not read into memory."""
    inst = pgcoro_factory(settings={"admin_users": ADMIN},
                          users={ADMIN: ADMIN_PASS})
    big = os.path.join(inst.workdir, "big.txt")
    with open(big, "w") as f:
        f.write('"a" "b"\n"c" "' + "x" * (300 * 1024) + '"\n')
    assert set_refused(inst, f"SET auth_file = '{big}'").pgcode == "08P01"
    assert f"{big}:2: line longer than" in inst.log_text()
    inst.assert_serving()
