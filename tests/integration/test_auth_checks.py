"""Cleartext password checks on the executor, and what an anonymous peer can make of them:
the findings of the review of c2842ed.

M1: checks could take every executor thread, so server connects, cancels and reloads
queued behind anonymous PBKDF2 work. Now checks run on all executor threads but one, and
only when no other job waits (executor.h); what waits is bounded by
max_password_checks_waiting (53300).
M2: input sent while a check ran was buffered up to 256 KB per login, and past it the
client's close went unseen (its check later ran for nobody). Now at most 8 KB are kept,
more is refused with 08P01, and reading goes on so that a close frees the check at once.
L1: with auth_type md5 and a SCRAM verifier in the file, a plain-secret user's SCRAM keys
were derived on the loop at its first login. Now they are made with the file.
L2: input that came with or during the login was handled afterwards for a pool but not for
the admin console. Now for every destination.

No durations are asserted: an operation is shown to be off the loop or ahead of the checks
by the order of events (it completes while a check of many iterations still runs: no check
has ended, no attacker has had its answer) and by /metrics' counters. L1 counts the CPU
the loop thread spends, not the time a client waits."""

import hashlib
import os
import struct

import pytest

from conftest import (APP_PASS, APP_USER, PgError, Wire, client_backends, free_port,
                      send_cancel_request, wait_until)
from test_auth_uniform import HUGE, answered, checks, fake_verifier, send_cleartext

pytestmark = pytest.mark.pooler_only

# PBKDF2 iterations of an attacker's check here: several seconds, long enough for a few
# round trips of other clients to end while it runs, with a wide margin.
LONG = 10_000_000


def unix_wire(inst, timeout=60):
    return Wire(None, inst.port, unix_dir=inst.sockdir, timeout=timeout)


def start_checks(inst, port, n, user="scramuser"):
    """N more clients whose wrong password for USER is being checked or waits its turn."""
    before = sum(checks(port)[:2])
    ws = []
    for _ in range(n):
        w = Wire.to(inst, timeout=240)
        ws.append(w)
        send_cleartext(w, user, "wrong password")
    wait_until(lambda: sum(checks(port)[:2]) == before + n, f"{n} more checks running or waiting")
    return ws


@pytest.mark.parametrize("threads", [1, 2])
def test_connect_cancel_reload_not_behind_password_checks(pgcoro_factory, pg, tmp_path, threads):
    """Three anonymous checks of LONG iterations each, executor_threads 1 or 2: a trust
    client (unix socket) gets a new server connection and its answer, cancels a query,
    and RELOADs, all while the first check still runs (none has ended: the total of checks
    submitted is unchanged and no attacker has had an answer). Checks run on one thread (2
    are started when executor_threads is 1), the others wait. Before: checks took every
    thread, and each of these waited for a check to end."""
    hba = tmp_path / "hba.conf"
    hba.write_text("local all all trust\nhost all all 127.0.0.1/32 password\n")
    port = free_port()
    inst = pgcoro_factory(settings={"auth_type": "hba", "auth_hba_file": str(hba),
                                    "executor_threads": threads, "admin_users": APP_USER,
                                    "metrics_listen": f"127.0.0.1:{port}"},
                          users={"scramuser": fake_verifier(LONG)})
    attackers = start_checks(inst, port, 3)
    try:
        _, _, total = checks(port)

        def no_check_ended(what):
            assert not any(answered(a) for a in attackers), f"a check ended before {what}"
            running, waiting, now = checks(port)
            assert (now, running + waiting) == (total, 3), (
                f"a check ended before {what}: {(running, waiting, now)}")

        # a new server connection (PQconnectPoll steps on the executor)
        with unix_wire(inst) as w:
            w.login(APP_USER, APP_PASS, "pooldb")
            assert w.query("select 1") == [["1"]]
            no_check_ended("a server connection was made")
            # a cancel (PQcancel on the executor)
            w.send(Wire.msg("Q", b"select pg_sleep(600)\0"))
            wait_until(lambda: any("pg_sleep(600)" in (b[3] or "")
                                   for b in client_backends(pg, "pooldb")),
                       "the query running on the server")
            pid, key = w.backend_key
            send_cancel_request(pid, key, port=inst.port, unix_dir=inst.sockdir)
            f = w.expect_error()
            assert f["C"] == "57014", f
            no_check_ended("a query was cancelled")
        # a reload (the files read on the executor)
        with unix_wire(inst) as w:
            w.login(APP_USER, APP_PASS, "pgcoro")
            w.query("RELOAD")
            no_check_ended("a RELOAD ended")
        # the checks themselves: one thread, the rest wait
        assert checks(port) == (1, 2, total) == (1, 2, 1)
    finally:
        for a in attackers:
            a.close()
    wait_until(lambda: checks(port)[1] == 0, "the waiting checks freed with their clients")


def test_waiting_checks_bounded(pgcoro_factory):
    """max_password_checks_waiting = 2 with one check running: two more wait, a fourth
    password is refused with 53300 at once (logged), the others are not disturbed, and a
    place that frees up is taken again. Before: the key did not exist (pgcoro refused the
    file), and checks waited without bound but max_client_conn."""
    port = free_port()
    inst = pgcoro_factory(settings={"auth_type": "plain", "executor_threads": 2,
                                    "max_password_checks_waiting": 2,
                                    "metrics_listen": f"127.0.0.1:{port}"},
                          users={"scramuser": fake_verifier(LONG)})
    ws = start_checks(inst, port, 3)
    try:
        assert checks(port) == (1, 2, 1)
        with Wire.to(inst) as w:
            send_cleartext(w, "nosuchuser", "x")
            f = w.expect_error()
        assert (f["C"], f["M"]) == ("53300", "too many password checks waiting "
                                    "(max_password_checks_waiting 2)"), f
        assert "too many password checks waiting" in inst.log_text()
        assert checks(port) == (1, 2, 1)
        assert not any(answered(w) for w in ws)
        ws.pop().close()  # a waiting one leaves: its place is free
        wait_until(lambda: checks(port) == (1, 1, 1), "the waiting check freed")
        ws += start_checks(inst, port, 1)
        assert checks(port) == (1, 2, 1)
    finally:
        for w in ws:
            w.close()
    wait_until(lambda: checks(port)[1] == 0, "the waiting checks freed with their clients")


def stuff(w, limit):
    """Pushes up to LIMIT junk bytes without blocking; returns how many the kernel took."""
    w.sock.setblocking(False)
    junk = b"\xff" * 65536
    sent = 0
    try:
        while sent < limit:
            sent += w.sock.send(junk[: min(len(junk), limit - sent)])
    except (BlockingIOError, ConnectionResetError, BrokenPipeError):
        pass
    w.sock.setblocking(True)
    w.sock.settimeout(60)
    return sent


def test_input_during_check_bounded(pgcoro_factory):
    """While a password is checked (or waits), more than 8 KB from the client closes it with
    08P01 at once, its waiting check freed, the running one left to end alone; a client that
    leaves after less is seen leaving at once (its check freed). Meanwhile no check has
    ended. Before: up to 256 KB per login were buffered without a word, and a client that
    had sent that much was no longer read, so its close went unseen and its check waited
    (the reviewer's R1 and R1b)."""
    port = free_port()
    inst = pgcoro_factory(settings={"auth_type": "plain", "executor_threads": 2,
                                    "metrics_listen": f"127.0.0.1:{port}"},
                          users={"scramuser": fake_verifier(LONG)})
    clients = start_checks(inst, port, 5)
    running, waiting = clients[0], clients[2:]  # the first runs, the last three wait
    run, wait, total = checks(port)
    assert run >= 1 and wait >= 3, (run, wait, total)
    try:
        # a waiting one sends 16 KB: refused, its check freed
        stuff(waiting[0], 16384)
        f = waiting[0].expect_error()
        assert (f["C"], f["M"]) == ("08P01", "more than 8192 bytes received while the "
                                    "password is checked"), f
        wait_until(lambda: checks(port) == (run, wait - 1, total), "the stuffed login's check freed")
        # one stuffs 4 MB, the socket full both ways: refused all the same
        stuff(waiting[1], 4 << 20)
        wait_until(lambda: checks(port) == (run, wait - 2, total), "the stuffed login's check freed")
        # one sends a little (kept) and leaves: its check goes with it
        waiting[2].send(b"\xff" * 4096)
        waiting[2].close()
        wait_until(lambda: checks(port) == (run, wait - 3, total),
                   "the check of the login that left freed")
        # the running one stuffs: refused too, its check ends by itself later
        stuff(running, 16384)
        assert running.expect_error()["C"] == "08P01"
        assert checks(port) == (run, wait - 3, total), "no check has ended meanwhile"
    finally:
        for w in clients:
            w.close()
    wait_until(lambda: checks(port)[:2] == (0, 0), "the checks ended or freed", timeout=120)
    inst.assert_serving()


def loop_cpu_ticks(pid):
    """CPU (user + system, clock ticks) spent by pgcoro's loop thread, the main one."""
    with open(f"/proc/{pid}/task/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)


@pytest.mark.parametrize("method", ["md5", "scram-sha-256"])
def test_plain_secret_keys_made_with_the_file(pgcoro_factory, method):
    """auth_type md5 with a SCRAM verifier in the file, or scram-sha-256: a plain-secret
    user is asked for SCRAM, with keys of scram_iterations (2 x HUGE here: a second or more
    of CPU). They are made when the file is loaded, so the first request for that user
    costs the loop thread what an unknown user's costs: nearly nothing (counted in CPU
    ticks of the loop thread, not in time). Before: derived on the loop at the first
    request after each load, which told plain-secret users apart and stalled every client
    (the reviewer's R3; the third audit's B2 for scram-sha-256)."""
    iterations = 2 * HUGE
    inst = pgcoro_factory(settings={"auth_type": method, "scram_iterations": iterations},
                          users={"scramuser": fake_verifier(4096), "plainuser": "pw"},
                          replace_users=True)
    hz = os.sysconf("SC_CLK_TCK")

    def first_request(user):
        before = loop_cpu_ticks(inst.pid)
        with Wire.to(inst, timeout=240) as w:
            w.send_startup(user, "postgres")
            t, p = w.read_msg()
            assert (t, struct.unpack("!I", p[:4])[0]) == ("R", 10), (t, p)
        return (loop_cpu_ticks(inst.pid) - before) / hz

    unknown = first_request("nosuchuser")
    plain = first_request("plainuser")
    print(f"\nloop thread CPU for the first SASL request: unknown {unknown:.2f} s, "
          f"plain secret {plain:.2f} s ({iterations} iterations)")
    assert plain < 0.3, f"the loop thread worked {plain:.2f} s of CPU for a plain secret's keys"
    # and the keys made at the load are the right ones
    with Wire.to(inst, timeout=240) as w:
        with pytest.raises(PgError) as ei:
            w.login("plainuser", "pw")  # the server has no such role: after the login
        assert w.auth_codes == [10, 11, 12, 0], (w.auth_codes, ei.value.fields)


def read_until_ready(w, n):
    """The message types W receives up to its Nth ReadyForQuery."""
    seen = []
    while seen.count("Z") < n:
        t, _ = w.read_msg()
        seen.append(t)
    return seen


@pytest.mark.parametrize("when", ["with", "during"])
def test_console_query_sent_with_or_during_check(pgcoro_factory, when):
    """A console query pipelined behind the cleartext password (in the same packet, or sent
    while the check runs) is answered after the login, as it is for a pool. Before: the
    console's login never looked at input already there; the query waited for more bytes
    (the reviewer's R4)."""
    port = free_port()
    inst = pgcoro_factory(settings={"auth_type": "plain", "admin_users": APP_USER,
                                    "scram_iterations": HUGE,
                                    "metrics_listen": f"127.0.0.1:{port}"})
    with Wire.to(inst, timeout=20) as w:
        w.send_startup(APP_USER, "pgcoro")
        t, p = w.read_msg()
        assert (t, struct.unpack("!I", p[:4])[0]) == ("R", 3)
        password = Wire.msg("p", APP_PASS.encode() + b"\0")
        query = Wire.msg("Q", b"SHOW VERSION\0")
        if when == "with":
            w.send(password + query)
        else:
            w.send(password)
            wait_until(lambda: checks(port)[0] == 1, "the check running")
            w.send(query)
        seen = read_until_ready(w, 2)
        assert seen[0] == "R" and seen[-4:] == ["T", "D", "C", "Z"], seen


@pytest.mark.parametrize("dest", ["console", "transaction", "session"])
def test_query_pipelined_with_md5_password(pgcoro_factory, dest):
    """The same without a check (md5: the login ends in the read that brought the
    password), for every destination: the console, a pool in transaction and in session
    mode. Before: the console's query waited for more bytes."""
    settings = {"auth_type": "md5", "admin_users": APP_USER}
    if dest != "console":
        settings["pool_mode"] = dest
    inst = pgcoro_factory(settings=settings)
    with Wire.to(inst, timeout=20) as w:
        w.send_startup(APP_USER, "pgcoro" if dest == "console" else "postgres")
        t, p = w.read_msg()
        assert (t, struct.unpack("!I", p[:4])[0]) == ("R", 5)
        inner = hashlib.md5((APP_PASS + APP_USER).encode()).hexdigest()
        outer = "md5" + hashlib.md5(inner.encode() + p[4:8]).hexdigest()
        sql = b"SHOW VERSION\0" if dest == "console" else b"select 1\0"
        w.send(Wire.msg("p", outer.encode() + b"\0") + Wire.msg("Q", sql))
        seen = read_until_ready(w, 2)
        assert seen[0] == "R" and seen[-4:] == ["T", "D", "C", "Z"], seen
    inst.assert_serving()
