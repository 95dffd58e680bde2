"""auth_type pam and auth_type any, PgBouncer's (issue 19's leftovers; both were refused at
load before: "not supported yet").

pam: a cleartext password checked by PAM service "pgbouncer" on the executor, then kept as
the user's server password. PAM reads the service file from a directory of the test's own
(PGCORO_PAM_CONFDIR, read by pgcoro for tests only): pam_exec.so with expose_authtok runs a
small script that accepts one user/password pair (and, for "slowuser", waits for the test
to create a file: a PAM check that blocks as long as the test wants, with no timing; the
pair's password is the file "password" when the test writes one), and
pam_succeed_if.so refuses the account of "lockeduser" (pam_acct_mgmt), then pam_permit.so.

any: no authentication, the user name given is ignored: the login is the database's user=;
a database without user= refuses ("bouncer config error"); the admin console lets any user
name in (SHOW only; admin_users every command)."""

import os
import struct
import subprocess

import pytest

from conftest import (APP_PASS, APP_USER, ASAN_OPTIONS, UBSAN_OPTIONS, PgError, Wire, clean_env,
                      free_port, wait_until)
from test_auth_uniform import answered, checks, send_cleartext

pytestmark = pytest.mark.pooler_only

PAM_USER, PAM_PASS = "pamuser", "pam-secret 1"
SCRIPT = """#!/bin/sh
# pam_exec expose_authtok: the password on stdin, NUL-terminated
pw=$(tr -d '\\000')
echo "$PAM_USER $PAM_RHOST" >> "{dir}/calls"
case "$PAM_USER" in
slowuser)
    touch "{dir}/slow-started"
    i=0
    while [ ! -e "{dir}/release" ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done
    exit 0 ;;
lockeduser)
    [ "$pw" = "lockedpass" ] && exit 0 ;;
{user})
    want="{password}"
    [ -e "{dir}/password" ] && want=$(cat "{dir}/password")
    [ "$pw" = "$want" ] && exit 0 ;;
esac
exit 1
"""


@pytest.fixture
def pam_dir(tmp_path):
    """A PAM configuration directory with service "pgbouncer" (the script's directory)."""
    d = tmp_path / "pam"
    d.mkdir()
    os.chmod(d, 0o755)
    script = d / "check.sh"
    script.write_text(SCRIPT.format(dir=d, user=PAM_USER, password=PAM_PASS))
    os.chmod(script, 0o755)
    (d / "pgbouncer").write_text(
        f"auth required pam_exec.so expose_authtok quiet {script}\n"
        "account required pam_succeed_if.so quiet user != lockeduser\n"
        "account required pam_permit.so\n")
    return d


@pytest.fixture
def pam_role(pg):
    """PostgreSQL's role PAM_USER with the password PAM accepts (scram-sha-256 over TCP)."""
    pg.psql_super(f"""
        DO $$BEGIN CREATE ROLE {PAM_USER} LOGIN;
        EXCEPTION WHEN duplicate_object THEN NULL; END$$;
        SET password_encryption = 'scram-sha-256';
        ALTER ROLE {PAM_USER} PASSWORD '{PAM_PASS}';
    """)
    return PAM_USER


def start_pam(pgcoro_factory, pam_dir, **settings):
    """pgcoro with auth_type pam and no auth_file; the databases name no user or password."""
    return pgcoro_factory(settings={"auth_type": "pam", "auth_file": None, **settings},
                          env={"PGCORO_PAM_CONFDIR": str(pam_dir)})


def test_pam_right_password_logs_in_and_server_login_uses_it(pgcoro_factory, pam_dir, pam_role):
    """The cleartext request, PAM's yes, and a query: the server login (no password in
    [databases], no auth_file) is made with the password the client gave. PAM_RHOST is the
    client's address (127.0.0.1 over TCP, "unix" on the unix socket, as PgBouncer)."""
    inst = start_pam(pgcoro_factory, pam_dir)
    with Wire.to(inst) as w:
        w.login(PAM_USER, PAM_PASS)
        assert w.auth_codes == [3, 0]
        assert w.query("SELECT current_user, 40 + 2") == [[PAM_USER, "42"]]
    with Wire(None, inst.port, unix_dir=inst.sockdir) as w:
        w.login(PAM_USER, PAM_PASS)
        assert w.query("SELECT 1") == [["1"]]
    calls = (pam_dir / "calls").read_text().split("\n")
    assert calls[:2] == [f"{PAM_USER} 127.0.0.1", f"{PAM_USER} unix"], calls


def test_pam_wrong_password_and_refused_account(pgcoro_factory, pam_dir, pam_role):
    """A wrong password: 28P01 in PgBouncer's words; an account pam_acct_mgmt refuses
    (pam_succeed_if), with the right password for pam_authenticate, is refused the same
    way; an empty password is refused before PAM (08P01, PgBouncer's words). The daemon
    serves on."""
    inst = start_pam(pgcoro_factory, pam_dir)
    for user, password in ((PAM_USER, "wrong"), ("nosuchuser", PAM_PASS),
                           ("lockeduser", "lockedpass")):
        with Wire.to(inst) as w:
            w.send_startup(user, "postgres")
            with pytest.raises(PgError) as e:
                w.authenticate(user, password)
            assert (e.value.fields["C"], e.value.fields["M"]) == (
                "28P01", "PAM authentication failed"), e.value.fields
    assert "pam_acct_mgmt for user \"lockeduser\"" in inst.log_text()
    with Wire.to(inst) as w:
        w.send_startup(PAM_USER, "postgres")
        with pytest.raises(PgError) as e:
            w.authenticate(PAM_USER, "")
        assert (e.value.fields["C"], e.value.fields["M"]) == (
            "08P01", "empty password returned by client")
    with Wire.to(inst) as w:
        w.login(PAM_USER, PAM_PASS)
        assert w.query("SELECT 1") == [["1"]]


def test_pam_password_change_reaches_new_servers(pgcoro_factory, pam_dir, pam_role, pg):
    """PAM_USER's password changes (in PAM and in PostgreSQL) while its pool is in use (a
    session holds its one server): a client logging in with the new password gets a new
    server, logged in with the new password. Before, the pool kept the first password
    for as long as it was in use, and the new server's login failed."""
    inst = start_pam(pgcoro_factory, pam_dir)
    new = "pam-secret 2"
    try:
        with Wire.to(inst) as first:
            first.login(PAM_USER, PAM_PASS)
            assert first.query("SELECT 1") == [["1"]]
            pg.psql_super(f"ALTER ROLE {PAM_USER} PASSWORD '{new}'")
            (pam_dir / "password").write_text(new)
            with Wire.to(inst) as second:
                second.login(PAM_USER, new)
                assert second.query("SELECT current_user") == [[PAM_USER]]
    finally:
        pg.psql_super(f"ALTER ROLE {PAM_USER} PASSWORD '{PAM_PASS}'")


def test_pam_check_does_not_block_the_loop(pgcoro_factory, pam_dir, pam_role):
    """While slowuser's PAM check blocks (its script waits for a file), a client logged in
    before runs a query and another logs in through PAM and runs one: the check is off the
    loop. slowuser has had no answer meanwhile; once released, it is let in by PAM (and its
    server login fails: PostgreSQL has no such role)."""
    inst = start_pam(pgcoro_factory, pam_dir, executor_threads=3)
    with Wire.to(inst) as before, Wire.to(inst, timeout=150) as slow:
        before.login(PAM_USER, PAM_PASS)
        send_cleartext(slow, "slowuser", "any")
        wait_until(lambda: (pam_dir / "slow-started").exists(), "slowuser's check started")
        assert before.query("SELECT 7") == [["7"]]
        with Wire.to(inst) as other:
            other.login(PAM_USER, PAM_PASS)
            assert other.query("SELECT 8") == [["8"]]
        assert not answered(slow), "slowuser answered before its check ended"
        (pam_dir / "release").touch()
        t, p = slow.read_msg()
        assert (t, struct.unpack("!I", p[:4])[0]) == ("R", 0), (t, p)


def test_pam_checks_waiting_are_bounded(pgcoro_factory, pam_dir, pam_role):
    """executor_threads 2 (one thread for checks) and max_password_checks_waiting 1: one
    check runs (slowuser's, blocked), one waits, the next is refused with 53300; released,
    the waiting one goes on."""
    port = free_port()
    inst = start_pam(pgcoro_factory, pam_dir, executor_threads=2, max_password_checks_waiting=1,
                     metrics_listen=f"127.0.0.1:{port}")
    with Wire.to(inst, timeout=150) as slow, Wire.to(inst, timeout=150) as waiting:
        send_cleartext(slow, "slowuser", "any")
        wait_until(lambda: (pam_dir / "slow-started").exists(), "slowuser's check started")
        send_cleartext(waiting, PAM_USER, PAM_PASS)
        wait_until(lambda: checks(port)[:2] == (1, 1), "one check running, one waiting")
        with Wire.to(inst) as refused:
            refused.send_startup(PAM_USER, "postgres")
            with pytest.raises(PgError) as e:
                refused.authenticate(PAM_USER, PAM_PASS)
            assert e.value.fields["C"] == "53300", e.value.fields
            assert "too many password checks waiting" in e.value.fields["M"]
        (pam_dir / "release").touch()
        assert waiting.authenticate(PAM_USER, PAM_PASS) == b"I"
        assert waiting.query("SELECT 1") == [["1"]]
        t, p = slow.read_msg()
        assert (t, struct.unpack("!I", p[:4])[0]) == ("R", 0), (t, p)


def test_pam_not_in_hba_file(pgcoro_bin, tmp_path):
    """As PgBouncer: pam (and any) only as auth_type; an auth_hba_file rule naming it is
    refused at load."""
    hba = tmp_path / "hba.conf"
    hba.write_text("host all all 127.0.0.1/32 pam\n")
    ini = tmp_path / "pgcoro.ini"
    ini.write_text(f"[pgcoro]\nauth_type = hba\nauth_hba_file = {hba}\n"
                   "[databases]\npostgres = host=127.0.0.1 dbname=postgres\n")
    r = subprocess.run([pgcoro_bin, "--check-config", str(ini)], capture_output=True, text=True,
                       timeout=60, env=clean_env(ASAN_OPTIONS=ASAN_OPTIONS,
                                                 UBSAN_OPTIONS=UBSAN_OPTIONS))
    assert r.returncode != 0, r.stdout
    assert 'authentication method "pam" works only as auth_type' in r.stderr, r.stderr


# ---- any ----------------------------------------------------------------------------

def start_any(pgcoro_factory, pg, **settings):
    return pgcoro_factory(
        settings={"auth_type": "any", **settings},
        databases={"anydb": f"host=127.0.0.1 port={pg.port} dbname=postgres user={APP_USER} "
                            f"password={APP_PASS}"})


def test_any_ignores_the_user_name(pgcoro_factory, pg):
    """A client naming a user that exists nowhere logs in without being asked anything and
    is the database's user=; the start logs a warning that any lets everyone in."""
    inst = start_any(pgcoro_factory, pg)
    assert "auth_type any: no client is authenticated" in inst.log_text()
    for user in ("nosuchuser", "md5user"):
        with Wire.to(inst) as w:
            w.login(user, "ignored", database="anydb")
            assert w.auth_codes == [0]
            assert w.query("SELECT current_user") == [[APP_USER]]


def test_any_database_without_user_refused(pgcoro_factory, pg):
    """A database without user= (and a database not configured at all): every login is
    refused, in PgBouncer's words, the reason in the log."""
    inst = start_any(pgcoro_factory, pg)
    for db in ("postgres", "nosuchdb"):
        with Wire.to(inst) as w:
            w.send_startup(APP_USER, db)
            with pytest.raises(PgError) as e:
                w.authenticate(APP_USER, APP_PASS)
            assert (e.value.fields["C"], e.value.fields["M"]) == (
                "08P01", "bouncer config error"), e.value.fields
    assert "auth_type=any requires forced user" in inst.log_text()


def test_any_admin_console(pgcoro_factory, pg):
    """Any user name gets into the admin console without a password: SHOW works, an admin
    command does not (as PgBouncer: such users are not admins); a user of admin_users is
    an admin."""
    inst = start_any(pgcoro_factory, pg, admin_users="boss")
    with Wire.to(inst) as w:
        w.login("whoever", "x", database="pgcoro")
        assert w.auth_codes == [0]
        assert any(r[0] == "anydb" for r in w.query("SHOW DATABASES"))
        with pytest.raises(PgError) as e:
            w.query("PAUSE anydb")
        assert e.value.fields["M"] == "admin access needed"
    with Wire.to(inst) as w:
        w.login("boss", "x", database="pgcoro")
        w.query("PAUSE anydb")
        w.query("RESUME anydb")


def own_console(inst):
    """INST's admin console for pgcoro's own OS user (unix socket, no password)."""
    import psycopg2
    con = psycopg2.connect(user="pgbouncer", dbname="pgbouncer", host=inst.sockdir,
                           port=inst.port, connect_timeout=30)
    con.autocommit = True
    return con


def test_pam_password_survives_online_restart(pgcoro_factory, pam_dir, pam_role, pg):
    """-R: the old process passes PAM_USER's password on (SHOW FDS' password column, as
    PgBouncer), so the new one logs in a new server for the client it adopted (after
    PostgreSQL ended the one it had). Before, the column was empty under pam and the new
    server's login failed (no password)."""
    from test_takeover import restart_then_end_servers
    env = {"PGCORO_PAM_CONFDIR": str(pam_dir)}
    inst = pgcoro_factory(
        settings={"auth_type": "pam", "auth_file": None},
        databases={"tx": f"host=127.0.0.1 port={pg.port} dbname=postgres "
                         "pool_mode=transaction"}, env=env)
    inst.bin_path = inst.proc.args[0]
    with Wire.to(inst) as w:
        w.login(PAM_USER, PAM_PASS, database="tx")
        assert w.query("SELECT 1") == [["1"]]
        restart_then_end_servers(inst, pg, PAM_USER, lambda: own_console(inst), env)
        assert w.query("SELECT current_user") == [[PAM_USER]]
