"""Finding A7 (Low): a LISTEN a client sends inside a transaction block stays on the
server after the release (README: "its notifications are lost"): they are not lost but
go to whichever client holds that server when PostgreSQL delivers them, or, when the
server is idle then, it is closed ("unexpected data from idle server").

This test reports what happens to a notification on a channel the first client listened
to inside a transaction, while the second client runs queries on that server; it fails
when the second client receives it."""

import time

import pytest

from conftest import Wire

pytestmark = pytest.mark.pooler_only


def test_listen_in_transaction_does_not_reach_next_client(pgcoro_factory, pg):
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 1})
    with Wire.to(inst) as a:
        a.login()
        a.query("BEGIN; LISTEN audit_chan; COMMIT")
    sup = pg.super_connect()
    got = []
    try:
        with Wire.to(inst) as b:
            b.login()
            for i in range(20):
                b.send(Wire.msg("Q", b"SELECT pg_sleep(0.05)\0"))
                sup.cursor().execute("NOTIFY audit_chan, 'payload-for-a-only'")
                while True:
                    t, p = b.read_msg()
                    if t == "A":
                        got.append(p)
                    if t == "Z":
                        break
                if got:
                    break
    finally:
        sup.close()
    assert not got, f"the second client received the first client's notification: {got[0]!r}"
    inst.assert_serving()
