"""Malformed and unusual protocol input on raw sockets. After every bad client pgcoro is
alive and serves a normal query."""

import random
import struct

import pytest

from conftest import APP_PASS, APP_USER, ConnectionClosed, Wire, parse_fields

SSL_REQUEST = struct.pack("!II", 8, 80877103)
GSSENC_REQUEST = struct.pack("!II", 8, 80877104)


@pytest.fixture
def inst(pgcoro_factory):
    # plain auth: the raw client answers a cleartext password request
    return pgcoro_factory(settings={"auth_type": "plain"})


def expect_protocol_violation(w):
    fields = w.expect_error()
    assert fields.get("C") == "08P01", fields
    assert fields.get("S") == "FATAL", fields
    assert w.at_eof(), "connection not closed after the protocol violation"


@pytest.mark.pooler_only
def test_startup_length_below_8(inst):
    with Wire.to(inst) as w:
        w.send(struct.pack("!I", 4))   # and nothing more: must be answered at once
        expect_protocol_violation(w)
    inst.assert_serving()


@pytest.mark.pooler_only
def test_startup_length_1gb(inst):
    with Wire.to(inst) as w:
        w.send(struct.pack("!II", 0x40000000, 196608))   # refused without waiting for 1 GB
        expect_protocol_violation(w)
    inst.assert_serving()


@pytest.mark.pooler_only
def test_startup_length_just_over_limit(inst):
    with Wire.to(inst) as w:
        w.send(struct.pack("!II", 10001, 196608) + b"user\0app\0")
        expect_protocol_violation(w)
    inst.assert_serving()


def test_terminate_before_startup_closes_silently(inst):
    """node-postgres' connect(); end() sends a Terminate before any startup packet:
    PostgreSQL closes without a word (an error there crashed the application: an
    unhandled 'error' event). Whole, or in two pieces."""
    for pieces in ([b"X\0\0\0\x04"], [b"X\0", b"\0\0\x04"]):
        with Wire.to(inst) as w:
            for piece in pieces:
                w.send(piece)
            assert w.at_eof(), w.buf
    inst.assert_serving()


def test_truncated_startup_then_close(inst):
    pkt = Wire.startup_packet({"user": APP_USER, "database": "postgres"})
    for cut in (1, 3, 4, 7, len(pkt) // 2, len(pkt) - 1):
        with Wire.to(inst) as w:
            w.send(pkt[:cut])
    inst.assert_serving()


@pytest.mark.pooler_only
def test_garbage_with_bad_length(inst):
    rnd = random.Random(1234)
    with Wire.to(inst) as w:
        w.send_quietly(b"\xde\xad\xbe\xef" + bytes(rnd.getrandbits(8) for _ in range(300)))
        expect_protocol_violation(w)
    inst.assert_serving()


def test_garbage_payloads(inst):
    # valid length fields, random protocol codes and contents: any refusal is fine,
    # nothing may crash and nothing may hang
    rnd = random.Random(99)
    for n in range(20):
        body = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(4, 200)))
        with Wire.to(inst) as w:
            w.send_quietly(struct.pack("!I", len(body) + 4) + body)
            try:
                while True:
                    t, _ = w.read_msg()
                    assert t in ("E", "N"), f"unexpected {t!r} after garbage {n}"
                    if t == "E":
                        break
            except ConnectionClosed:
                pass
    inst.assert_serving()


def test_protocol_2(inst):
    # PostgreSQL answers a 2.0 startup with a v2-style error ('E' and a string); a v3
    # ErrorResponse is as good. Either way: an error, then the connection closes.
    with Wire.to(inst) as w:
        w.send_startup(APP_USER, "postgres", proto=0x00020000)
        assert w.read_byte() == b"E"
        rest = b""
        while not w.at_eof():
            rest += w.buf
            w.buf = b""
        if len(rest) >= 4 and struct.unpack("!I", rest[:4])[0] == len(rest):
            fields = parse_fields(rest[4:])
            assert fields.get("C") and fields.get("M"), fields
        else:
            assert rest.endswith(b"\0") and b"protocol" in rest, rest
    inst.assert_serving()


def test_startup_without_user(inst, direct):
    with Wire.to(inst) as w:
        w.send_startup(None, "postgres")
        fields = w.expect_error()
        # PostgreSQL says 28000 here; pgcoro treats it as a malformed startup packet
        assert fields.get("C") == ("28000" if direct else "08P01"), fields
        assert w.at_eof()
    inst.assert_serving()


@pytest.mark.parametrize("request_pkt", [SSL_REQUEST, GSSENC_REQUEST], ids=["ssl", "gssenc"])
def test_encryption_request_refused_then_startup(inst, direct, request_pkt):
    if direct and request_pkt == GSSENC_REQUEST:
        pytest.skip("PostgreSQL built with GSSAPI answers 'G' (pooler-only behaviour)")
    with Wire.to(inst) as w:
        w.send(request_pkt)
        assert w.read_byte() == b"N"
        w.login(APP_USER, APP_PASS, inst.db("postgres"))
        assert w.query("select 'plain'") == [["plain"]]
        w.terminate()
    inst.assert_serving()


@pytest.mark.parametrize("first,second", [(SSL_REQUEST, SSL_REQUEST),
                                          (GSSENC_REQUEST, GSSENC_REQUEST),
                                          (SSL_REQUEST, GSSENC_REQUEST)])
def test_encryption_request_repeated(inst, direct, first, second):
    """One SSLRequest and one GSSENCRequest (GSS first) per connection, as PostgreSQL:
    another is an unknown protocol (0A000), so no client makes the pooler answer 'N'
    forever without reading."""
    if direct and GSSENC_REQUEST in (first, second):
        pytest.skip("PostgreSQL built with GSSAPI answers 'G' (pooler-only behaviour)")
    with Wire.to(inst) as w:
        w.send(first)
        assert w.read_byte() == b"N"
        w.send(second)
        fields = w.expect_error()
        assert fields.get("C") == "0A000" and "unsupported frontend protocol" in fields["M"], \
            fields
        assert w.at_eof()
    inst.assert_serving()


def test_protocol_3_1_negotiation(inst):
    with Wire.to(inst) as w:
        w.send_startup(APP_USER, inst.db("postgres"), proto=0x00030001,
                      **{"_pq_.bogus": "1"})
        w.authenticate(APP_USER, APP_PASS)
        assert w.negotiate is not None, "no NegotiateProtocolVersion"
        newest, unrecognized = w.negotiate
        # PostgreSQL (and what libpq reads) puts the full newest version here: 3.0
        assert newest == 0x00030000, hex(newest)
        assert unrecognized == ["_pq_.bogus"], unrecognized
        assert w.query("select 31") == [["31"]]
        w.terminate()
    inst.assert_serving()


def test_cancel_request_with_unknown_key(inst):
    with Wire.to(inst) as w:
        w.send(struct.pack("!IIII", 16, 80877102, 12345, 67890))
        assert w.at_eof()
    inst.assert_serving()


def logged_in(inst):
    w = Wire.to(inst)
    w.login(APP_USER, APP_PASS, inst.db("postgres"))
    assert w.query("select 1") == [["1"]]
    return w


@pytest.mark.pooler_only
@pytest.mark.parametrize("length", [0, 3], ids=["len0", "len3"])
def test_message_length_below_4(inst, length):
    with logged_in(inst) as w:
        w.send(b"Q" + struct.pack("!I", length))
        expect_protocol_violation(w)
    inst.assert_serving()


@pytest.mark.pooler_only
@pytest.mark.parametrize("length", [0x7FFFFFFF, 0xFFFFFFFF, 0x40000001],
                         ids=["2G", "4G", "1G"])
def test_message_huge_length(inst, length):
    with logged_in(inst) as w:
        w.send(b"Q" + struct.pack("!I", length) + b"select 1")
        expect_protocol_violation(w)
    inst.assert_serving()


def test_truncated_message_then_close(inst):
    with logged_in(inst) as w:
        w.send(b"Q" + struct.pack("!I", 100) + b"select ")
    with logged_in(inst) as w:
        w.send(b"Q")
    inst.assert_serving()


def test_close_during_query(inst):
    # the client vanishes while its query runs and its result is on the way
    for sql in ("select pg_sleep(0.3)", "select repeat('x', 1000) from generate_series(1, 200000)"):
        w = logged_in(inst)
        w.send(Wire.msg("Q", sql.encode() + b"\0"))
        w.close()
    inst.assert_serving()


def test_close_inside_transaction(inst):
    # a server left inside a transaction must not reach the next client in that state
    w = logged_in(inst)
    w.query("begin; create temp table t_open (a int); insert into t_open values (1)")
    w.close()
    for _ in range(12):   # more clients than the pool holds servers
        with logged_in(inst) as w2:
            rows = w2.query("select current_setting('transaction_isolation'), "
                            "txid_current_if_assigned() is null")
            assert rows == [["read committed", "t"]], rows
            w2.terminate()
    inst.assert_serving()


def test_unknown_message_type(inst):
    with logged_in(inst) as w:
        w.send(Wire.msg("!", b"hello"))
        fields = w.expect_error()
        assert fields.get("C") == "08P01", fields
    inst.assert_serving()


def test_bad_then_good_messages_same_pgcoro(inst):
    # many bad clients interleaved with good ones; the good ones all succeed
    rnd = random.Random(7)
    for i in range(30):
        with Wire.to(inst) as w:
            w.send_quietly(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 64))))
        with logged_in(inst) as w:
            assert w.query(f"select {i}") == [[str(i)]]
            w.terminate()
    inst.assert_serving()


def test_bad_clients_do_not_disturb_open_session(inst):
    # a session opened before a burst of bad clients keeps its server and its state
    good = inst.connect()
    try:
        cur = good.cursor()
        cur.execute("create temp table keep (a int); insert into keep values (7)")
        good.commit()
        for pkt in (struct.pack("!I", 4), struct.pack("!II", 0x40000000, 196608),
                    b"\xde\xad\xbe\xef" * 8, SSL_REQUEST + b"garbage"):
            with Wire.to(inst) as w:
                w.send_quietly(pkt)
                try:
                    while w.read_msg()[0] != "E":
                        pass
                except ConnectionClosed:
                    pass
        with logged_in(inst) as w:
            w.send(b"Q" + struct.pack("!I", 3))
            try:
                while w.read_msg()[0] != "E":
                    pass
            except ConnectionClosed:
                pass
        cur.execute("select a from keep")
        assert cur.fetchall() == [(7,)]
    finally:
        good.close()
    inst.assert_serving()
