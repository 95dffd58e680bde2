"""Cleartext password checks and SCRAM keys: what an anonymous peer can make of them, the
findings of the review of c2842ed.

L1: with auth_type md5 and a SCRAM verifier in the file, a plain-secret user's SCRAM keys
were derived on the loop at its first login. Now they are made with the file.

No durations are asserted: L1 counts the CPU the loop thread spends, not the time a client
waits."""

import os
import struct

import pytest

from conftest import PgError, Wire
from test_auth_uniform import HUGE, fake_verifier

pytestmark = pytest.mark.pooler_only


def loop_cpu_ticks(pid):
    """CPU (user + system, clock ticks) spent by pgcoro's loop thread, the main one."""
    with open(f"/proc/{pid}/task/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)


def test_md5_method_plain_secret_keys_made_with_the_file(pgcoro_factory):
    """auth_type md5 with a SCRAM verifier in the file: a plain-secret user is asked for
    SCRAM, with keys of scram_iterations (2 x HUGE here: a second or more of CPU). They are
    made when the file is loaded, so the first request for that user costs the loop thread
    what an unknown user's costs: nearly nothing (counted in CPU ticks of the loop thread,
    not in time). Before: derived on the loop at the first request after each load, which
    told plain-secret users apart and stalled every client (the reviewer's R3)."""
    iterations = 2 * HUGE
    inst = pgcoro_factory(settings={"auth_type": "md5", "scram_iterations": iterations},
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
