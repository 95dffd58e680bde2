"""Findings A4 and A5: what the login tells about who exists, and work an anonymous peer
makes the event loop do.

A4 (auth_type = plain, or an hba `password` rule, with SCRAM verifiers in auth_file):
auth_plain_check (src/auth.c) runs PBKDF2 over the verifier's iterations on the loop
thread for a listed user and nothing for an unknown one (login.c on_password:
`secret && auth_plain_check(...)`): the answer time tells whether the user exists, and
every anonymous attempt at a listed name blocks every client for the PBKDF2's duration.

A5 (auth_type = md5 with SCRAM verifiers): a listed user with a SCRAM secret is asked for
SASL, an unknown user for md5 (login.c start_auth): the request type tells who exists.
PostgreSQL answers an unknown user per password_encryption instead.

Each test fails on the code with the defect. The README promises "wrong password, unknown
user: the same answer and the same work"."""

import base64
import hashlib
import hmac
import os
import statistics
import struct
import time

import pytest

from conftest import Wire

pytestmark = pytest.mark.pooler_only


def scram_verifier(password, iterations):
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    ck = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored = hashlib.sha256(ck).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored)}:{b64(server)}"


def attempt_plain(inst, user):
    """Seconds from sending a wrong cleartext password to the 28P01."""
    with Wire.to(inst) as w:
        w.send_startup(user, "postgres")
        t, p = w.read_msg()
        assert t == "R" and struct.unpack("!I", p[:4])[0] == 3, (t, p)
        t0 = time.monotonic()
        w.send(Wire.msg("p", b"wrong password\0"))
        f = w.expect_error()
        dt = time.monotonic() - t0
        assert f["C"] == "28P01", f
        return dt


def test_plain_failure_takes_the_same_time_for_unknown_users(pgcoro_factory):
    # 100,000 iterations: a verifier made with a raised scram_iterations (PostgreSQL 16+)
    inst = pgcoro_factory(settings={"auth_type": "plain"},
                          users={"scramuser": scram_verifier("secret", 100000)})
    known, unknown = [], []
    for _ in range(8):
        known.append(attempt_plain(inst, "scramuser"))
        unknown.append(attempt_plain(inst, "nosuchuser"))
    k, u = statistics.median(known), statistics.median(unknown)
    print(f"\nwrong password: listed user {k * 1000:.1f} ms, unknown user {u * 1000:.1f} ms")
    assert k < 5 * u + 0.010, (f"a listed user's failure takes {k * 1000:.1f} ms, an unknown "
                               f"user's {u * 1000:.1f} ms: the time tells who exists")
    inst.assert_serving()


def test_md5_method_does_not_reveal_scram_users(pgcoro_factory):
    inst = pgcoro_factory(settings={"auth_type": "md5"},
                          users={"scramuser": scram_verifier("secret", 4096)})
    codes = {}
    for user in ("scramuser", "nosuchuser"):
        with Wire.to(inst) as w:
            w.send_startup(user, "postgres")
            t, p = w.read_msg()
            assert t == "R", (t, p)
            codes[user] = struct.unpack("!I", p[:4])[0]
    print(f"\nauthentication request: {codes}")
    assert codes["scramuser"] == codes["nosuchuser"], (
        f"listed SCRAM user asked for {codes['scramuser']}, unknown user for "
        f"{codes['nosuchuser']}: the request tells who exists")
    inst.assert_serving()
