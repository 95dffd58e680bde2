"""Finding A1: one client's answers reach another client (transaction mode).

A CopyDone sent early (before the CopyInResponse of the Query that starts the COPY),
followed by another request and its Sync, makes the relay's COPY bookkeeping subtract
that Sync as if it had reached PostgreSQL inside the COPY (copy_begins, src/relay.c):
out_syncs reaches 0 at the Query's ReadyForQuery while the second request still runs.
The server is released to the next waiting client, which then receives the attacker's
rows (and its own answers go to whoever is next, or the server is closed).

Each test fails on the code with the defect."""

import socket
import struct
import threading
import time

import pytest

from conftest import APP_PASS, APP_USER, Wire, execute, parse, bind, describe, SYNC, parse_data_row

pytestmark = pytest.mark.pooler_only


def attack_bytes(marker, sleep=1.0, how="copydone"):
    """How the COPY ends before PostgreSQL reads the request after it: an early CopyDone
    ("copydone"), or a CopyData row PostgreSQL refuses ("baddata": the COPY fails at once
    and the rest is read outside it)."""
    q = Wire.msg("Q", b"CREATE TEMP TABLE IF NOT EXISTS audit_t(a int); "
                 b"COPY audit_t FROM STDIN\0")
    copy_done = Wire.msg("c") if how == "copydone" else Wire.msg("d", b"not a number\n")
    ext = (parse("", f"SELECT pg_sleep({sleep}), '{marker}'::text AS who")
           + bind("") + describe("P", "") + execute() + SYNC)
    return q + copy_done + ext


def read_until_ready(w, timeout=10.0):
    """Messages up to and including the next ReadyForQuery: [(type, payload)]."""
    w.sock.settimeout(timeout)
    out = []
    while True:
        t, p = w.read_msg()
        out.append((t, p))
        if t == "Z":
            return out


def rows_of(msgs):
    return [parse_data_row(p) for t, p in msgs if t == "D"]


@pytest.mark.parametrize("how", ["copydone", "baddata"])
def test_early_copydone_does_not_hand_server_over_mid_request(pgcoro_factory, how):
    """Victim B waits for the pool's only server while attacker A holds it; A's pipeline
    releases the server at its COPY's ReadyForQuery although its SELECT still runs. B's
    simple query must get B's own answer."""
    # pin_session_state off: the attack's temporary table would pin A to its server (then
    # no hand-over happens at all); the relay's own release rule is what is tested here
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 1,
                                    "max_prepared_statements": 0, "pin_session_state": "off"})
    a = Wire.to(inst)
    b = Wire.to(inst)
    try:
        a.login()
        b.login()
        # A takes the server with a transaction, so B queues behind it
        a.send(Wire.msg("Q", b"BEGIN\0"))
        read_until_ready(a)
        b.send(Wire.msg("Q", b"SELECT 'victim-row'::text AS who\0"))
        time.sleep(0.3)  # B is waiting for the server now
        # A ends its transaction and sends the pipeline in the same write
        a.send(Wire.msg("Q", b"COMMIT\0") + attack_bytes("attacker-row", how=how))
        got = read_until_ready(b, timeout=15)
        rows = rows_of(got)
        assert rows == [["victim-row"]], (
            f"client B got {rows} ({[t for t, _ in got]}) for its SELECT 'victim-row'")
    finally:
        a.close()
        b.close()
    inst.assert_serving()


@pytest.mark.parametrize("prepared", [0, 200])
def test_victims_rows_never_reach_a_third_client(pgcoro_factory, prepared):
    """The same desync, one step further: B's own answer (its SELECT's row) arrives after
    B's server was released on A's ReadyForQuery and handed to C, the next waiting client.
    C must never see B's row."""
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 1,
                                    "max_prepared_statements": prepared,
                                    "pin_session_state": "off"})  # see above
    a, b, c = Wire.to(inst), Wire.to(inst), Wire.to(inst)
    try:
        for w in (a, b, c):
            w.login()
        a.send(Wire.msg("Q", b"BEGIN\0"))
        read_until_ready(a)
        b.send(Wire.msg("Q", b"SELECT pg_sleep(0.5), 'secret-of-B'::text AS who\0"))
        time.sleep(0.3)
        c.send(Wire.msg("Q", b"SELECT 'C'::text AS who\0"))
        time.sleep(0.3)  # B, then C wait for the server (FIFO)
        a.send(Wire.msg("Q", b"COMMIT\0") + attack_bytes("attacker-row", sleep=0.2))
        leaked = []
        try:
            got = read_until_ready(c, timeout=15)
            leaked = [r for r in rows_of(got) if "secret-of-B" in r]
        except Exception:
            pass  # C closed: not a leak
        assert not leaked, f"client C received client B's row: {leaked}"
    finally:
        for w in (a, b, c):
            w.close()
    inst.assert_serving()


def test_stale_copy_state_does_not_hand_server_over_mid_request(pgcoro_factory):
    """The same cause, another way out (found by fuzz_isolation with the Sync subtraction
    disabled): a COPY whose CopyDone went before its CopyInResponse arrived, with another
    Query behind it, leaves the server marked "in COPY" (copy_begins: copy_in =
    !copy_end_early, which the later Query reset). The server is released so marked; on
    its next hand-out a Sync passes as COPY traffic, uncounted, and its ReadyForQuery
    releases the server while the Query behind it still runs."""
    # pin_session_state off: the attack's temporary table would pin A to its server (then
    # no hand-over happens at all); the relay's own release rule is what is tested here
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 1,
                                    "max_prepared_statements": 0, "pin_session_state": "off"})
    a, b = Wire.to(inst), Wire.to(inst)
    try:
        a.login()
        b.login()
        copy = Wire.msg("Q", b"CREATE TEMP TABLE IF NOT EXISTS audit_t(a int); "
                        b"COPY audit_t FROM STDIN\0")
        a.send(copy + Wire.msg("c") + Wire.msg("Q", b"SELECT 1\0"))
        read_until_ready(a)  # the COPY's
        read_until_ready(a)  # SELECT 1's: the server is released, still "in COPY"
        a.send(SYNC + Wire.msg("Q", b"SELECT pg_sleep(0.5), 'attacker-row'::text\0"))
        read_until_ready(a)  # the Sync's ReadyForQuery
        b.send(Wire.msg("Q", b"SELECT 'victim-row'::text AS who\0"))
        got = read_until_ready(b, timeout=15)
        rows = rows_of(got)
        assert rows == [["victim-row"]], f"client B got {rows} for its SELECT 'victim-row'"
    finally:
        a.close()
        b.close()
    inst.assert_serving()
