"""Password messages up to PostgreSQL's limit (PG_MAX_AUTH_TOKEN_LENGTH: 65535 bytes of
body), as PgBouncer 1.25 takes them: a 65,530-byte cleartext password logs in; one byte
past the limit is refused with 08P01 and a log line. (PgBouncer's suite:
test_auth.py::test_password_client, user longpass.) Before: pgcoro refused any
authentication message over 8 kB."""

import struct

import pytest

from conftest import Wire

pytestmark = pytest.mark.pooler_only

LONG = "p" * 65530


def startup_then_password(inst, user, password):
    w = Wire.to(inst, timeout=120)
    w.send_startup(user, "postgres")
    t, p = w.read_msg()
    assert (t, struct.unpack("!I", p[:4])[0]) == ("R", 3), (t, p)  # cleartext, asked
    w.send(Wire.msg("p", password.encode() + b"\0"))
    return w


def test_password_of_65530_bytes(pgcoro_factory):
    inst = pgcoro_factory(settings={"auth_type": "plain"}, users={"longpass": LONG})
    with startup_then_password(inst, "longpass", LONG) as w:
        t, p = w.read_msg()
        assert (t, struct.unpack("!I", p[:4])[0]) == ("R", 0), (t, p)  # AuthenticationOk
    with startup_then_password(inst, "longpass", LONG[:-1] + "q") as w:
        fields = w.expect_error()
        assert fields["C"] == "28P01", fields
    inst.assert_serving()


def test_password_past_the_limit_refused(pgcoro_factory):
    inst = pgcoro_factory(settings={"auth_type": "plain"}, users={"longpass": LONG})
    with startup_then_password(inst, "longpass", "p" * 65535) as w:  # body 65536 bytes
        fields = w.expect_error()
        assert (fields["S"], fields["C"]) == ("FATAL", "08P01"), fields
        assert "invalid authentication message length 65540" in fields["M"], fields
    assert "invalid authentication message length 65540" in inst.log_text()
    inst.assert_serving()
