"""Signals PgBouncer handles besides SIGHUP/SIGTERM/SIGINT (test_ops.py): SIGUSR1 pauses
every database (the console's PAUSE), SIGUSR2 resumes them (RESUME), SIGQUIT stops at
once, SIGPIPE is ignored. None of them may kill pgcoro silently."""

import signal

import pytest

from conftest import Wire, console_show, parse_data_row, wait_until

pytestmark = pytest.mark.pooler_only

ADMIN, ADMIN_PASS = "admin", "adminpw"
PAUSING = "SIGUSR1: pausing all databases"
PAUSED = "SIGUSR1: pause complete"
RESUMING = "SIGUSR2: resuming all databases"


def signals_inst(pgcoro_factory):
    return pgcoro_factory(settings={"admin_users": ADMIN, "pool_mode": "transaction"},
                          users={ADMIN: ADMIN_PASS})


def show(inst, what):
    """SHOW WHAT on the console, as a list of {column: value}."""
    return console_show(inst, what, ADMIN, ADMIN_PASS)


def postgres_row(inst, what):
    return [r for r in show(inst, what)
            if r.get("database", r.get("name")) == "postgres"][0]


def signal_logged(inst, sig, line, count=1):
    """Sends SIG to INST and waits until LINE is in its log COUNT times; fails at once if
    the signal killed pgcoro."""
    inst.proc.send_signal(sig)
    wait_until(lambda: not inst.alive() or inst.log_text().count(line) >= count,
               f"{line!r} logged {count} time(s)")
    assert inst.alive(), f"pgcoro died on {sig!r}: {inst.proc.returncode}\n{inst.log_tail()}"


def test_sigusr1_pauses_and_sigusr2_resumes(pgcoro_factory):
    """SIGUSR1 pauses every database as PAUSE does: logged at once, and again once the
    busy server is released and closed; a client's query then waits. SIGUSR2 resumes
    and the waiting query is answered. Repeating either signal is harmless."""
    inst = signals_inst(pgcoro_factory)
    busy = Wire.to(inst)
    busy.login()
    busy.query("begin")                      # holds its server: the pause must wait
    late = Wire.to(inst)
    late.login()
    try:
        signal_logged(inst, signal.SIGUSR1, PAUSING)
        # again while the pause waits
        signal_logged(inst, signal.SIGUSR1, "SIGUSR1: all databases are paused already")
        assert postgres_row(inst, "DATABASES")["paused"] == 1
        assert PAUSED not in inst.log_text()  # the open transaction holds its server
        assert busy.query("select 1") == [["1"]]
        busy.query("commit")                 # the server is released, then closed
        wait_until(lambda: PAUSED in inst.log_text(), "the pause completion logged")
        assert postgres_row(inst, "POOLS")["sv_idle"] == 0

        late.send(Wire.msg("Q", b"select 4\0"))
        wait_until(lambda: postgres_row(inst, "POOLS")["cl_waiting"] == 1,
                   "a query waiting while paused")
        signal_logged(inst, signal.SIGUSR2, RESUMING)
        t, payload = late.read_msg()         # the waiting query is answered
        assert t == "T", (t, payload)
        t, payload = late.read_msg()
        assert (t, parse_data_row(payload)) == ("D", ["4"]), (t, payload)
        assert late.read_msg()[0] == "C" and late.read_msg()[0] == "Z"
        assert postgres_row(inst, "DATABASES")["paused"] == 0
        signal_logged(inst, signal.SIGUSR2, RESUMING, 2)  # again: nothing paused, harmless

        # with no busy server, a pause is complete at once
        signal_logged(inst, signal.SIGUSR1, PAUSED, 2)
        signal_logged(inst, signal.SIGUSR2, RESUMING, 3)
        assert late.query("select 5") == [["5"]]
        assert busy.query("select 6") == [["6"]]
    finally:
        busy.close()
        late.close()
    inst.assert_serving()


def test_resume_before_the_pause_completes(pgcoro_factory):
    """SIGUSR2 (or the console's RESUME) while a SIGUSR1 pause still waits for a busy
    server ends the pause: no completion is logged later and the server is kept."""
    inst = signals_inst(pgcoro_factory)
    busy = Wire.to(inst)
    busy.login()
    busy.query("begin")
    try:
        signal_logged(inst, signal.SIGUSR1, PAUSING)
        signal_logged(inst, signal.SIGUSR2, RESUMING)
        busy.query("commit")
        assert busy.query("select 7") == [["7"]]
        assert postgres_row(inst, "POOLS")["sv_idle"] == 1
        assert PAUSED not in inst.log_text()
    finally:
        busy.close()
    inst.assert_serving()


def test_sigpipe_ignored_and_sigquit_stops_at_once(pgcoro_factory):
    """SIGPIPE is ignored; SIGQUIT (PgBouncer's immediate shutdown) is logged and pgcoro
    exits 0 at once, without waiting for an open transaction."""
    inst = signals_inst(pgcoro_factory)
    inst.proc.send_signal(signal.SIGPIPE)
    inst.assert_serving()
    with Wire.to(inst) as w:
        w.login()
        w.query("begin")
        inst.proc.send_signal(signal.SIGQUIT)
        inst.proc.wait(timeout=60)
    assert inst.proc.returncode == 0, inst.log_tail()
    assert "SIGQUIT: immediate shutdown" in inst.log_text(), inst.log_tail()
