"""The security audit's reproductions (step 8), each against the ASan build: the startup
parameters' bounded store, console input taken only whole (never another client's bytes),
no pre-auth leak, startup settings that stay their client's own in transaction mode, and
trust with an auth_file as an allow-list. Every instance is stopped at teardown with a
check for exit code 0 and a sanitizer-clean log (conftest)."""

import socket
import struct
import time

import psycopg2
import pytest

from conftest import (APP_PASS, APP_USER, ConnectionClosed, PgError, Wire, parse_fields,
                      vmrss_kb)

pytestmark = pytest.mark.pooler_only

ADMIN, ADMIN_PASS = "admin", "adminpw"
STATS, STATS_PASS = "statsu", "statspw"


def raw_startup(params):
    """A StartupMessage from (name, value) pairs in this order (repeats allowed)."""
    body = struct.pack("!I", Wire.PROTO_V3)
    for k, v in params:
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def expect_fatal(w):
    fields = w.expect_error()
    assert w.at_eof(), "connection not closed after the error"
    return fields


# ---- 1. the startup parameters' store ------------------------------------------------


def test_options_first_then_many_params_refused(pgcoro_factory):
    """The audit's packet: "options" with 80 -c settings first, then 63 parameters (1,117
    bytes, no credentials). Before: a heap overflow before authentication."""
    inst = pgcoro_factory()
    opts = " ".join(f"-c a{i}=1" for i in range(80))
    params = [("options", opts)] + [(f"p{i}", "x") for i in range(62)] + [("user", "nobody")]
    pkt = raw_startup(params)
    with Wire.to(inst) as w:
        w.send(pkt)
        f = expect_fatal(w)
    assert f["C"] == "08P01", f
    assert "too many startup parameters" in f["M"], f
    assert "too many startup parameters" in inst.log_text()
    inst.assert_serving()


@pytest.mark.parametrize("n_opts,n_params,ok", [(79, 0, True), (40, 39, True), (80, 1, False),
                                                 (0, 63, True), (20, 61, False)])
def test_store_bound_counts_options_and_params(pgcoro_factory, n_opts, n_params, ok):
    """At most 80 settings in all (options' -c settings plus parameters): the 81st is
    refused with 08P01 whatever the order; up to 80 log in (as trust)."""
    inst = pgcoro_factory(settings={"auth_type": "trust"})
    opts = " ".join(f"-c application_name=a{i}" for i in range(n_opts))
    params = [(f"p{i}", "x") for i in range(n_params)]
    if n_opts:
        params.insert(n_params // 2, ("options", opts))
    params += [("user", APP_USER), ("database", "postgres")]
    with Wire.to(inst) as w:
        w.send(raw_startup(params))
        if ok:
            # unknown parameters reach PostgreSQL later; the login itself is answered
            t, _ = w.read_msg()
            assert t == "R", t
        else:
            f = expect_fatal(w)
            assert f["C"] == "08P01" and "too many startup parameters" in f["M"], f
    inst.assert_serving()


# ---- 2. the console takes whole messages only ----------------------------------------


def console_inst(pgcoro_factory, **settings):
    base = {"admin_users": ADMIN, "stats_users": STATS, "pool_mode": "transaction"}
    base.update(settings)
    return pgcoro_factory(settings=base, users={ADMIN: ADMIN_PASS, STATS: STATS_PASS})


def test_console_query_split_in_two_segments(pgcoro_factory):
    """An honest console query split 8 + 8 bytes, the halves apart. Before: the console
    acted on the header alone and the process died."""
    inst = console_inst(pgcoro_factory)
    with Wire.to(inst) as w:
        w.login(ADMIN, ADMIN_PASS, database="pgcoro")
        w.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        q = Wire.msg("Q", b"SHOW VERSION\0")
        assert len(q) == 18
        for cut in (8, 3, 5, 6, 17):
            w.send(q[:cut])
            time.sleep(0.2)
            w.send(q[cut:])
            t, p = w.read_msg()
            while t not in ("D", "E"):
                t, p = w.read_msg()
            assert t == "D", parse_fields(p)
            while t != "Z":
                t, p = w.read_msg()
    inst.assert_serving()


def test_console_never_echoes_other_clients_bytes(pgcoro_factory):
    """A stats user sends a Query header announcing 200 bytes and only some of them; a
    second client then sends a secret through the same pgcoro. The console must wait for
    the rest and answer only what its own client sent. Before: it answered at once with
    bytes past the message (other clients' data) and then crashed."""
    inst = console_inst(pgcoro_factory)
    secret = "canary-secret-7f3a9"
    with Wire.to(inst) as attacker, Wire.to(inst) as victim:
        attacker.login(STATS, STATS_PASS, database="pgcoro")
        victim.login()
        body = b"SHOW POOLS" + b" " * (200 - 4 - 11) + b"\0"
        assert len(body) + 4 == 200
        q = Wire.msg("Q", body)
        attacker.send(q[:20])
        time.sleep(0.1)
        for _ in range(20):
            assert victim.query(f"SELECT '{secret}'") == [[secret]]
        attacker.send(q[20:])
        got = b""
        while True:
            t, p = attacker.read_msg()
            got += p
            if t == "Z":
                break
        assert secret.encode() not in got
        assert b"invalid" not in got.lower(), got[:200]
    assert secret not in inst.log_text()
    inst.assert_serving()


def test_console_message_length_bounded(pgcoro_factory):
    """A console message over its bound (64 KB) is refused with 08P01 at its header; one
    over the command bound (4 KB) but under 64 KB gets 54000 and the session goes on."""
    inst = console_inst(pgcoro_factory)
    with Wire.to(inst) as w:
        w.login(ADMIN, ADMIN_PASS, database="pgcoro")
        w.send(Wire.msg("Q", b"SHOW " + b"x" * 10000 + b"\0"))
        f = w.expect_error()
        assert f["C"] == "54000", f
        while w.read_msg()[0] != "Z":
            pass
        assert w.query("SHOW VERSION")
        w.send(b"Q" + struct.pack("!I", 1 << 20))
        f = expect_fatal(w)
        assert f["C"] == "08P01", f
    inst.assert_serving()


# ---- 3. no pre-auth leak -------------------------------------------------------------


def test_repeated_options_do_not_leak(pgcoro_factory):
    """Several "options" parameters in one packet: before, every one after the first
    leaked its copy (LeakSanitizer at exit, and ~10 kB per packet)."""
    inst = pgcoro_factory(settings={"auth_type": "trust"})
    for _ in range(20):
        params = [("options", "-c a=" + "x" * 2000)] * 4 + [("user", "nobody")]
        with Wire.to(inst) as w:
            w.send(raw_startup(params))
            f = expect_fatal(w)  # trust, but nobody is not in auth_file
            assert f["C"] == "28000", f
    inst.assert_serving()
    # the teardown's clean-exit check reads LeakSanitizer's report


def test_pre_auth_memory_bounded(pgcoro_factory):
    """Hostile startup packets (9 kB of options, repeated parameters, a user not allowed
    in) leave memory where it was: after a warm-up that fills ASan's quarantine, 3,000 more
    packets grow RSS by less than 3 MB (1 MB per 1,000). Before: ~10 kB per packet."""
    inst = pgcoro_factory(settings={"auth_type": "trust"})
    opts = "-c a=" + "y" * 2200
    pkt = raw_startup([("options", opts)] * 4 + [("user", "nobody")])
    assert len(pkt) < 10000

    def burst(n):
        for _ in range(n):
            s = socket.create_connection((inst.host, inst.port), timeout=20)
            try:
                s.sendall(pkt)
                while s.recv(4096):
                    pass
            except OSError:
                pass
            finally:
                s.close()

    burst(3000)
    before = vmrss_kb(inst.pid)
    burst(3000)
    after = vmrss_kb(inst.pid)
    assert after - before < 3000, f"RSS grew {after - before} kB over 3,000 packets"
    inst.assert_serving()


# ---- 4. startup settings stay their client's own -------------------------------------


def test_startup_options_do_not_leak_to_next_client(pgcoro_factory):
    """Transaction mode, one server: a client's options=-c search_path=... -c
    statement_timeout=... hold for it on every transaction and never for the client after
    it on the same server. Before: the next client ran with them (its INSERT landed in
    the other schema)."""
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 1})
    a = psycopg2.connect(inst.dsn(options="-c search_path=audit_foo -c statement_timeout=1234"))
    a.autocommit = True
    b = psycopg2.connect(inst.dsn())
    b.autocommit = True
    try:
        for _ in range(3):
            cur = a.cursor()
            cur.execute("SHOW search_path")
            assert cur.fetchone() == ("audit_foo",)
            cur.execute("SHOW statement_timeout")
            assert cur.fetchone() == ("1234ms",)
            cur = b.cursor()
            cur.execute("SHOW search_path")
            assert cur.fetchone() == ('"$user", public',)
            cur.execute("SHOW statement_timeout")
            assert cur.fetchone() == ("0",)
        # the same with the settings' own client closed: the server stays clean
        a.close()
        cur = b.cursor()
        cur.execute("SHOW search_path")
        assert cur.fetchone() == ('"$user", public',)
    finally:
        for c in (a, b):
            if not c.closed:
                c.close()
    inst.assert_serving()


# ---- 11. trust with an auth_file -----------------------------------------------------


def test_trust_refuses_user_absent_from_auth_file(pgcoro_factory):
    """auth_type = trust with an auth_file: the file is the list of who may log in (as
    PgBouncer: '"trust" authentication failed'). Before: anyone got in."""
    inst = pgcoro_factory(settings={"auth_type": "trust"})
    with Wire.to(inst) as w:
        w.send_startup("postgres", "postgres")
        f = expect_fatal(w)
    assert f["C"] == "28000" and "trust" in f["M"], f
    with Wire.to(inst) as w:
        w.login(APP_USER, "ignored")
        assert w.query("SELECT 1") == [["1"]]
    assert 'user "postgres" is not in auth_file' in inst.log_text()
    inst.assert_serving()


# ---- 5. one output bound per client --------------------------------------------------


def flood_without_reading(inst, sock, chunk, limit=64 << 20):
    """Sends CHUNK again and again on SOCK without reading, until LIMIT bytes are sent or
    a send blocks for 3 s (pgcoro stopped reading: its output bound). Returns the bytes
    sent."""
    sock.settimeout(3)
    sent = 0
    try:
        while sent < limit:
            sock.sendall(chunk)
            sent += len(chunk)
    except (socket.timeout, TimeoutError):
        pass
    return sent


@pytest.mark.parametrize("path", ["idle", "in_transaction"])
def test_client_that_never_reads_is_bounded(pgcoro_factory, path):
    """A client that pipelines requests pgcoro answers itself (re-Parse of a known
    statement name: 42P05 from pgcoro; Close of a named statement in a transaction:
    CloseComplete from pgcoro) and never reads its
    socket: pgcoro stops reading it at its output bound, so RSS stays put. Before: the
    answers were queued without bound (251 MB in 20 s)."""
    from conftest import SYNC, close, parse
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "max_prepared_statements": 10})
    w = Wire.to(inst)
    try:
        w.login()
        w.send(parse("s1", "SELECT 1") + SYNC)
        assert [w.read_msg()[0] for _ in range(2)] == ["1", "Z"]
        if path == "idle":
            chunk = (parse("s1", "SELECT 1") + SYNC) * 2000
        else:
            w.query("BEGIN")
            chunk = close("S", "s1") * 4000  # each answered CloseComplete by pgcoro
        before = vmrss_kb(inst.pid)
        sent = flood_without_reading(inst, w.sock, chunk)
        grew = vmrss_kb(inst.pid) - before
        assert sent < 32 << 20, f"pgcoro read {sent} bytes of requests while never read from"
        assert grew < 16 * 1024, f"RSS grew {grew} kB"
    finally:
        w.close()
    inst.assert_serving()


# ---- 9. a Sync inside COPY FROM STDIN ------------------------------------------------


@pytest.mark.parametrize("protocol", ["simple", "extended_pipelined", "extended_tracked"])
def test_sync_inside_copy_in_releases_server(pgcoro_factory, pg, protocol):
    """PostgreSQL ignores Sync (and Flush) inside COPY FROM STDIN. Transaction mode, one
    server: after such a COPY the client must give its server back, so the next client
    is served. Before: the Sync was counted, the idle client kept the server forever."""
    from conftest import SYNC, FLUSH, bind, execute, parse
    pg.psql_super("DROP TABLE IF EXISTS audit_copy; CREATE TABLE audit_copy (n int);\n"
                  f"GRANT ALL ON audit_copy TO {APP_USER};")
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 1,
                                    "query_wait_timeout": 20})
    copy_sql = "COPY audit_copy FROM STDIN"
    with Wire.to(inst) as w, Wire.to(inst) as other:
        w.login()
        other.login()
        if protocol == "extended_tracked":  # a named statement: prepared statements tracked
            w.send(parse("s1", "SELECT 1") + SYNC)
            assert [w.read_msg()[0] for _ in range(2)] == ["1", "Z"]
        if protocol == "simple":
            w.send(Wire.msg("Q", copy_sql.encode() + b"\0"))
            assert w.read_msg()[0] == "G"
            w.send(SYNC + FLUSH + Wire.msg("d", b"1\n") + SYNC + Wire.msg("c"))
            got = [w.read_msg()[0] for _ in range(2)]
        else:
            w.send(parse("", copy_sql) + bind("") + execute() + SYNC)
            assert [w.read_msg()[0] for _ in range(3)] == ["1", "2", "G"]
            w.send(Wire.msg("d", b"2\n") + SYNC + Wire.msg("c") + SYNC)
            got = [w.read_msg()[0] for _ in range(2)]
        assert got == ["C", "Z"], got
        assert other.query("SELECT count(*) FROM audit_copy") == [["1"]]
        if protocol == "extended_tracked":
            w.send(bind("s1") + execute() + SYNC)
            assert [w.read_msg()[0] for _ in range(4)] == ["2", "D", "C", "Z"]
        assert w.query("SELECT 'w again'") == [["w again"]]
        assert other.query("SELECT 'other again'") == [["other again"]]
    inst.assert_serving()
