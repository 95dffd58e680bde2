"""Every message a client sends, cut in two at every byte, in every client state: login
(SSLRequest, StartupMessage, md5 and SCRAM password messages, CancelRequest), idle and
active in transaction and session mode, inside a transaction block, COPY FROM STDIN and
TO STDOUT, the admin console. Each cut gets exactly the answer the whole message gets.
Then bad input per state: a length below 4 or beyond the limit, a body cut short by a
close, a message of the wrong type; each is refused with a FATAL 08P01 where pgcoro
answers it (PostgreSQL, which closes some of these silently, is held only to the close)
and a log line, and pgcoro goes on; where PostgreSQL answers (a wrong message in COPY, a
PasswordMessage after the login), its answer reaches the sender unchanged and no one
else.

Throughout, a canary client runs queries carrying a secret through the same pgcoro: it
must never fail, and no answer to the tested client may carry its secret (the
fixtures' teardown then checks pgcoro's exit and its log for sanitizer reports).

A cut is real: the first part is sent, and the second only once the peer has read the
first (its receive queue, seen in /proc/net/tcp, is empty), so the peer reads the
message in two pieces."""

import contextlib
import hashlib
import socket
import struct
import time

import pytest

from conftest import (APP_PASS, APP_USER, CANCEL_REQUEST_CODE, MD5_PASS, MD5_USER, SYNC,
                      ConnectionClosed, Sampler, Wire, _ScramClient, bind, execute, extended,
                      parse, parse_data_row, parse_fields, pg_rows, wait_until)

SECRET = "canary-secret-1234"
CANARY_SQL = f"SELECT '{SECRET}', repeat('{SECRET}', 40)"
ADMIN, ADMIN_PASS = "admin", "adminpw"
HBA = ("host all md5user 127.0.0.1/32 md5\n"     # as the test cluster's pg_hba.conf
       "host all all 127.0.0.1/32 scram-sha-256\n")
SSL_REQUEST = struct.pack("!II", 8, 80877103)
TERMINATE = Wire.msg("X")
MAX_PACKET = 1 << 20        # max_packet_size of these instances
AUTH_MSG_MAX = 65535 + 4    # pgcoro's largest password message (src/login.c LOGIN_AUTH_MAX_LEN)
CONSOLE_MAX_MESSAGE = 1 << 20
MODES = ["transaction", "session"]


# ---- cutting --------------------------------------------------------------------------------

def peer_unread(mine, theirs):
    """Bytes the peer (local port THEIRS) of our TCP socket over 127.0.0.1 (local port
    MINE) has received and not yet read, from /proc/net/tcp; None if it is not listed."""
    local, remote = f":{theirs:04X}", f":{mine:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1].endswith(local) and fields[2].endswith(remote):
                return int(fields[4].split(":")[1], 16)
    return None


class SplitWire(Wire):
    """A Wire that can send a message in two reads of its peer."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ports = (self.sock.getsockname()[1], self.sock.getpeername()[1])

    def send_read(self, data):
        """Sends DATA and waits until the peer has read it (at most 2 s: a peer that
        stopped reading is not waited for; this is not a check)."""
        self.send(data)
        time.sleep(0.0002)
        deadline = time.monotonic() + 2.0
        while peer_unread(*self.ports) and time.monotonic() < deadline:
            time.sleep(0.0002)

    def send_split(self, data, k):
        """Sends DATA[:K], waits until the peer has read it, then DATA[K:]."""
        self.send_read(data[:k])
        self.send(data[k:])


def read_through(t_end):
    """read(w): the messages W receives up to one of type T_END (included), as (type,
    payload)."""
    def read(w):
        out = []
        while not out or out[-1][0] != t_end:
            out.append(w.read_msg())
        return out
    return read


answer = read_through("Z")


def until_close(w, t_end=None):
    """The messages W receives up to the close, or up to one of type T_END; a close is
    noted as ("closed", b"")."""
    out = []
    try:
        while not out or out[-1][0] != t_end:
            out.append(w.read_msg())
    except ConnectionClosed:
        out.append(("closed", b""))
    return out


def types(msgs):
    return [t for t, _ in msgs]


def leaked(msgs):
    return SECRET.encode() in b"".join(p for _, p in msgs)


def each_cut(w, make, what, read=answer, before=None, cuts=None):
    """Sends MAKE(0) whole on W and reads its answer with READ, then MAKE(k) cut at byte k
    for every k (or each k of CUTS): each cut must get the whole message's answer and
    none may carry the canary's secret. MAKE is bytes, or a function of k whose result
    keeps one length. BEFORE(w), if given, runs before each sending. Returns the answer."""
    make = make if callable(make) else (lambda k, data=make: data)
    if before:
        before(w)
    whole = make(0)
    w.send(whole)
    want = read(w)
    assert not leaked(want), f"{what}: the answer carries the canary's secret: {want!r}"
    for k in cuts or range(1, len(whole)):
        data = make(k)
        assert len(data) == len(whole)
        if before:
            before(w)
        w.send_split(data, k)
        got = read(w)
        assert not leaked(got), (
            f"{what} cut at byte {k}: the answer carries the canary's secret: {got!r}")
        assert got == want, (f"{what} cut at byte {k} of {len(whole)}:\n got {got!r}\n"
                             f"want {want!r}")
    return want


def q(sql):
    return Wire.msg("Q", sql.encode() + b"\0")


# ---- the instance and the canary -------------------------------------------------------------

@pytest.fixture
def start(pgcoro_factory, tmp_path):
    """start(mode) -> a pgcoro in pool mode MODE whose methods follow the test cluster's
    pg_hba.conf (md5 for md5user, SCRAM for the others), with the console user ADMIN."""
    def run(mode="transaction", **settings):
        hba = tmp_path / "hba.conf"
        hba.write_text(HBA)
        s = {"auth_type": "hba", "auth_hba_file": str(hba), "pool_mode": mode,
             "default_pool_size": 4, "admin_users": ADMIN, "max_packet_size": MAX_PACKET}
        s.update(settings)
        return pgcoro_factory(settings=s, users={ADMIN: ADMIN_PASS})
    return run


class Canary(Sampler):
    """Another client of the same pgcoro running a query whose answer carries SECRET,
    over and over, each answer checked whole."""

    interval = 0.002
    min_samples = 1

    def __init__(self, inst):
        super().__init__()
        self.inst = inst

    def setup(self):
        self.w = Wire.to(self.inst)
        self.w.login(APP_USER, APP_PASS, self.inst.db("postgres"))

    def sample(self):
        rows = self.w.query(CANARY_SQL)
        assert rows == [[SECRET, SECRET * 40]], rows

    def teardown(self):
        self.w.terminate()


@contextlib.contextmanager
def canary(inst):
    """Runs a Canary through the block; then the canary must have had no failure, pgcoro
    must serve, and its log must not hold the secret."""
    with Canary(inst) as c:
        wait_until(lambda: c.count or c.error, "the canary's first answer")
        yield
    inst.assert_serving()
    assert SECRET not in inst.log_text(), "the canary's secret is in pgcoro's log"


def login(inst, user=APP_USER, password=APP_PASS, db="postgres"):
    w = SplitWire.to(inst)
    w.login(user, password, inst.db(db))
    return w


def assert_logged(inst, port, *words):
    """pgcoro's log gets a line about the client on local port PORT holding WORDS."""
    if inst.direct:
        return
    tag = f"127.0.0.1:{port} "

    def found():
        return any(tag in ln and all(x in ln for x in words)
                   for ln in inst.log_text().splitlines())
    wait_until(found, f"a log line about client port {port} with {words}")


# ---- login -----------------------------------------------------------------------------------

def startup(inst, user):
    return Wire.startup_packet({"user": user, "database": inst.db("postgres"),
                                "application_name": "split"})


def cutter(w, i):
    """send(data): DATA whole when I is 0, else cut at a byte that walks through DATA as I
    grows (so every cut of every message of a login is made within max(len) logins)."""
    def send(data):
        if i == 0:
            w.send(data)
        else:
            w.send_split(data, 1 + (i - 1) % (len(data) - 1))
    return send


def after_password(w):
    """The answer to a login's last message, BackendKeyData's random key left out."""
    return [(t, b"" if t == "K" else p) for t, p in answer(w)]


def auth_request(w, code):
    t, p = w.read_msg()
    assert t == "R" and struct.unpack("!I", p[:4])[0] == code, (t, p)
    return p[4:]


def sasl_initial(scram):
    """The SASLInitialResponse choosing SCRAM-SHA-256, with SCRAM's client-first message."""
    first = scram.client_first()
    return Wire.msg("p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)


def test_login_md5_cut(start):
    """SSLRequest, StartupMessage and an md5 PasswordMessage, each cut at every byte."""
    inst = start()
    with canary(inst):
        pkt = startup(inst, MD5_USER)
        want = None
        for i in range(len(pkt)):
            with SplitWire.to(inst) as w:
                send = cutter(w, i)
                send(SSL_REQUEST)
                assert w.read_byte() == b"N"
                send(pkt)
                salt = auth_request(w, 5)
                inner = hashlib.md5((MD5_PASS + MD5_USER).encode()).hexdigest()
                outer = hashlib.md5(inner.encode() + salt).hexdigest()
                send(Wire.msg("p", b"md5" + outer.encode() + b"\0"))
                got = after_password(w)
                assert not leaked(got)
                want = want or got
                assert got == want, (i, got, want)
                assert w.query("SELECT current_user") == [[MD5_USER]]
                w.terminate()


def test_login_scram_cut(start):
    """StartupMessage, SASLInitialResponse and SASLResponse, each cut at every byte."""
    inst = start()
    with canary(inst):
        pkt = startup(inst, APP_USER)
        want, i, longest = None, 0, len(pkt)
        while i < longest:
            with SplitWire.to(inst) as w:
                send = cutter(w, i)
                send(pkt)
                assert auth_request(w, 10) == b"SCRAM-SHA-256\0\0"
                scram = _ScramClient(APP_PASS)
                initial = sasl_initial(scram)
                send(initial)
                final = Wire.msg("p", scram.client_final(auth_request(w, 11)))
                send(final)
                scram.verify_server_final(auth_request(w, 12))
                got = after_password(w)
                assert got[0] == ("R", struct.pack("!I", 0)) and not leaked(got), got
                want = want or got
                assert got == want, (i, got, want)
                assert w.query("SELECT current_user") == [[APP_USER]]
                w.terminate()
            longest = max(longest, len(initial), len(final))
            i += 1


def test_cancel_request_cut(start, pg):
    """A CancelRequest cut at every byte cancels the running query; the connection that
    carried it is closed with nothing sent."""
    inst = start()
    watcher = pg.super_connect()
    try:
        with canary(inst), login(inst) as w:
            pid, key = w.backend_key
            pkt = struct.pack("!IIII", 16, CANCEL_REQUEST_CODE, pid, key)
            cur = watcher.cursor()

            def sleeping():
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                            "AND query LIKE '%cancel me%' AND pid <> pg_backend_pid()")
                return cur.fetchone()[0] == 1
            for k in range(1, len(pkt)):
                w.send(q("SELECT pg_sleep(60) /* cancel me */"))
                wait_until(sleeping, "the query to cancel runs")
                with SplitWire.to(inst) as cw:
                    cw.send_split(pkt, k)
                    assert cw.at_eof(), f"cut at {k}: an answer to a CancelRequest: {cw.buf!r}"
                got = answer(w)
                assert types(got) == ["T", "E", "Z"], (k, got)
                assert parse_fields(got[1][1])["C"] == "57014", (k, got)
                if not inst.direct:
                    # pgcoro drops a cancel for a server whose last cancel is still on its
                    # way (server_cancel): the next one waits for it to be done
                    wait_until(lambda: inst.log_text().count("cancel request sent") == k,
                               f"cancel {k} done")
            assert w.query("SELECT 'after'") == [["after"]]
    finally:
        watcher.close()


# ---- requests: idle and active, transaction and session mode ----------------------------------

def req_query(inst, w):
    want = each_cut(w, q("SELECT 1 AS one, 'cut' AS word"), "Query")
    assert types(want) == ["T", "D", "C", "Z"] and want[-1][1] == b"I", want


def req_extended(inst, w):
    want = each_cut(w, extended("SELECT $1::int * 2, $2::text", ("21", "two")),
                    "Parse/Bind/Describe/Execute/Sync")
    assert types(want) == ["1", "2", "T", "D", "C", "Z"], want
    assert parse_data_row(want[3][1]) == ["42", "two"], want


def req_named_parse(inst, w):
    """A named Parse and a Sync (in transaction mode answered by pgcoro itself once a
    server knows the statement); each statement so made then runs."""
    def make(k):
        return parse(f"cut_{k:04d}", "SELECT $1::int + 1") + SYNC
    want = each_cut(w, make, "named Parse + Sync")
    assert want == [("1", b""), ("Z", b"I")], want
    for k in range(len(make(0))):
        w.send(bind(f"cut_{k:04d}", [k]) + execute() + SYNC)
        got = answer(w)
        assert types(got) == ["2", "D", "C", "Z"], (k, got)
        assert parse_data_row(got[1][1]) == [str(k + 1)], (k, got)


def req_listen(inst, w):
    """LISTEN as a Query (in transaction mode answered by pgcoro's listener); then a
    NOTIFY reaches the client, once."""
    want = each_cut(w, q("LISTEN cut_channel"), "LISTEN")
    assert want == [("C", b"LISTEN\0"), ("Z", b"I")], want
    c = inst.pg.super_connect()
    try:
        c.cursor().execute("NOTIFY cut_channel, 'after the cuts'")
    finally:
        c.close()
    t, p = w.read_msg()
    assert t == "A" and p[4:] == b"cut_channel\0after the cuts\0", (t, p)


def notify_twice(inst, w, channel):
    """Two NOTIFYs on CHANNEL reach W, each once, in order."""
    c = inst.pg.super_connect()
    try:
        for payload in ("after the cuts", "and again"):
            c.cursor().execute(f"NOTIFY {channel}, '{payload}'")
            t, p = w.read_msg()
            assert t == "A" and p[4:] == f"{channel}\0{payload}\0".encode(), (t, p)
    finally:
        c.close()


def req_listen_extended(inst, w):
    """LISTEN with the extended protocol (pgjdbc's sequence: in transaction mode it runs
    on a server and the listener takes over when it commits); then NOTIFYs reach the
    client, each once."""
    want = each_cut(w, extended("LISTEN cut_ext"), "extended LISTEN")
    assert types(want) == ["1", "2", "n", "C", "Z"] and want[3][1] == b"LISTEN\0", want
    notify_twice(inst, w, "cut_ext")


def req_listen_in_transaction(inst, w):
    """LISTEN as a Query inside a transaction block: it takes effect at the COMMIT."""
    assert w.query("BEGIN") == []
    want = each_cut(w, q("LISTEN cut_tx"), "LISTEN in a transaction")
    assert want == [("C", b"LISTEN\0"), ("Z", b"T")], want
    w.send(q("COMMIT"))
    assert answer(w) == [("C", b"COMMIT\0"), ("Z", b"I")]
    notify_twice(inst, w, "cut_tx")


def req_in_transaction(inst, w):
    """Inside a transaction block (the client holds its server in both modes)."""
    assert w.query("BEGIN") == []
    want = each_cut(w, q("SELECT 2 AS two"), "Query in a transaction")
    assert types(want) == ["T", "D", "C", "Z"] and want[-1][1] == b"T", want
    want = each_cut(w, extended("SELECT $1::text", ("in",)), "extended in a transaction")
    assert types(want) == ["1", "2", "T", "D", "C", "Z"] and want[-1][1] == b"T", want
    w.send(q("COMMIT"))
    assert answer(w) == [("C", b"COMMIT\0"), ("Z", b"I")]


def req_stray_copy(inst, w):
    """CopyData, CopyDone and CopyFail outside COPY are ignored (PostgreSQL's protocol:
    a client may still be sending after a COPY failed); the Query behind them is
    answered."""
    stray = Wire.msg("d", b"stray\n") + Wire.msg("c") + Wire.msg("f", b"stray\0")
    want = each_cut(w, stray + q("SELECT 'after stray'"), "stray COPY messages and a Query")
    assert types(want) == ["T", "D", "C", "Z"], want
    assert parse_data_row(want[1][1]) == ["after stray"], want


def req_repeated_password(inst, w):
    """A PasswordMessage again after the login: FATAL 08P01, as PostgreSQL says."""
    w.send(Wire.msg("p", APP_PASS.encode() + b"\0"))
    fields = w.expect_error()
    assert fields["S"] == "FATAL" and fields["C"] == "08P01", fields
    assert w.at_eof()


REQUESTS = {f.__name__[4:]: f for f in (req_query, req_extended, req_named_parse, req_listen,
                                        req_listen_extended, req_listen_in_transaction,
                                        req_in_transaction, req_stray_copy,
                                        req_repeated_password)}


@pytest.mark.parametrize("kind", REQUESTS)
@pytest.mark.parametrize("mode", MODES)
def test_request_cut(start, mode, kind):
    inst = start(mode)
    with canary(inst), login(inst) as w:
        REQUESTS[kind](inst, w)
        if kind != "repeated_password":
            assert w.query("SELECT 'still in step'") == [["still in step"]]
            assert w.buf == b""


@pytest.mark.parametrize("stray", ["password", "unknown_type"])
def test_stray_message_answer_stays_with_its_client(start, stray):
    """A message PostgreSQL answers with a FATAL but that asks for no ReadyForQuery (a
    PasswordMessage after the login, an unknown type), from a client that waited for
    the only server of its pool while another client waits behind it: the FATAL (08P01)
    goes to its sender, and the next client's query is answered on a sound server."""
    inst = start("transaction", default_pool_size=1)
    msg = {"password": Wire.msg("p", APP_PASS.encode() + b"\0"),
           "unknown_type": Wire.msg("!", b"hello")}[stray]
    holder, sender, victim = login(inst), login(inst), login(inst)
    try:
        assert holder.query("BEGIN") == []          # holds the only server
        sender.send_read(msg)                        # read: first in line for the server
        victim.send_read(q(CANARY_SQL))              # second in line
        holder.send(q("COMMIT"))
        assert answer(holder) == [("C", b"COMMIT\0"), ("Z", b"I")]
        got = until_close(victim, "Z")
        assert types(got) == ["T", "D", "C", "Z"], f"the next client got: {got!r}"
        assert parse_data_row(got[1][1]) == [SECRET, SECRET * 40], got
        fields = sender.expect_error()
        assert fields["S"] == "FATAL" and fields["C"] == "08P01", fields
        assert not leaked([("E", sender.buf)]) and SECRET not in str(fields), fields
        assert sender.at_eof(), f"more after the FATAL: {sender.buf!r}"
        assert victim.query("SELECT 'victim ok'") == [["victim ok"]]
    finally:
        for w in (holder, sender, victim):
            w.close()
    inst.assert_serving()


@pytest.mark.parametrize("mode", MODES)
def test_terminate_cut(start, mode):
    inst = start(mode)
    with canary(inst):
        for k in range(1, len(TERMINATE)):
            with login(inst) as w:
                w.send_split(TERMINATE, k)
                assert w.at_eof(), f"cut at {k}: {w.buf!r}"


# ---- COPY ------------------------------------------------------------------------------------

def copy_table(pg, name):
    """A new table NAME (n int, word text) the app user may fill."""
    pg.psql_super(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (n int, word text);\n"
                  f"GRANT ALL ON {name} TO {APP_USER};")
    return name


def copy_rows(k):
    return (Wire.msg("d", f"{k:04d}\tcut\n".encode())
            + Wire.msg("d", f"{k:04d}\tcut again\n".encode()))


@pytest.mark.parametrize("mode", MODES)
def test_copy_in_cut(start, pg, mode):
    """COPY FROM STDIN: CopyData, CopyDone and CopyFail cut at every byte, sent once
    the client is in COPY and sent with the COPY query in one go."""
    inst = start(mode)
    table = copy_table(pg, f"cut_copy_{mode}")
    copy = q(f"COPY {table} FROM STDIN")
    fail = Wire.msg("f", b"cut fail\0")
    ready_g = []

    def in_copy(w):
        w.send(copy)
        got = read_through("G")(w)
        ready_g.append(got)
        assert got == ready_g[0] and types(got) == ["G"], got
    with canary(inst), login(inst) as w:
        done = each_cut(w, lambda k: copy_rows(k) + Wire.msg("c"), "CopyData + CopyDone",
                        before=in_copy)
        assert done == [("C", b"COPY 2\0"), ("Z", b"I")], done
        n_done = len(copy_rows(0)) + len(Wire.msg("c"))
        failed = each_cut(w, lambda k: copy_rows(k) + fail, "CopyData + CopyFail",
                          before=in_copy)
        assert types(failed) == ["E", "Z"], failed
        fields = parse_fields(failed[0][1])
        assert fields["C"] == "57014" and "cut fail" in fields["M"], fields
        piped = each_cut(w, lambda k: copy + copy_rows(k) + Wire.msg("c"),
                         "COPY query, CopyData, CopyDone")
        assert piped == ready_g[0] + done, piped
        n_piped = len(copy) + n_done
        piped = each_cut(w, lambda k: copy + copy_rows(k) + fail, "COPY query, CopyData, CopyFail")
        assert piped == ready_g[0] + failed, piped
        assert w.query("SELECT 'after copy'") == [["after copy"]]
    rows = pg_rows(pg, f"SELECT count(*), count(DISTINCT n), min(word), max(word) FROM {table}")
    assert rows == [(2 * (n_done + n_piped), n_piped, "cut", "cut again")], rows


@pytest.mark.parametrize("wrong", ["query", "parse"])
@pytest.mark.parametrize("mode", MODES)
def test_wrong_message_during_copy(start, pg, mode, wrong):
    """A Query or a Parse, cut at every byte, where COPY data belongs: PostgreSQL's ERROR
    08P01 (unexpected message type during COPY), then its FATAL 08P01 (protocol
    synchronization lost), then the close; nothing more, and pgcoro goes on."""
    inst = start(mode, default_pool_size=3)
    table = copy_table(pg, f"cut_copy_{mode}")
    msg = {"query": q("SELECT 'not now'"), "parse": parse("", "SELECT 1")}[wrong]
    with canary(inst):
        for k in range(len(msg)):
            with login(inst) as w:
                w.send(q(f"COPY {table} FROM STDIN"))
                assert types(read_through("G")(w)) == ["G"]
                if k:
                    w.send_split(msg, k)
                else:
                    w.send(msg)
                got = until_close(w)
                assert not leaked(got), (k, got)
                said = [(t, parse_fields(p).get("S"), parse_fields(p).get("C")) for t, p in got]
                assert said == [("E", "ERROR", "08P01"), ("E", "FATAL", "08P01"),
                                ("closed", None, None)], (k, got)
                assert "during COPY from stdin" in parse_fields(got[0][1])["M"], (k, got)
        still_served(inst, enter_idle)


@pytest.mark.parametrize("mode", MODES)
def test_copy_out_cut(start, mode):
    inst = start(mode)
    with canary(inst), login(inst) as w:
        want = each_cut(w, q("COPY (SELECT i, 'out ' || i FROM generate_series(1, 3) i) "
                             "TO STDOUT"), "COPY TO STDOUT")
        assert types(want) == ["H", "d", "d", "d", "c", "C", "Z"], want
        assert want[1][1] == b"1\tout 1\n", want
        assert w.query("SELECT 'after copy'") == [["after copy"]]


# ---- the admin console -----------------------------------------------------------------------

def console_login(inst):
    return login(inst, ADMIN, ADMIN_PASS, "pgcoro")


def pools_answer(w):
    """SHOW POOLS' answer with only each row's database and user (the counts move)."""
    return [(t, b"".join(parse_data_row(p)[i].encode() + b"\0" for i in (0, 1)) if t == "D"
             else p) for t, p in answer(w)]


LONG_COMMAND = "SHOW " + "x" * 5000
CONSOLE = {
    "show_version": ("SHOW VERSION", answer, None),
    "show_pools": ("SHOW POOLS", pools_answer, None),
    "invalid": ("SHOW NOPE", answer, None),
    # a cut in the header, then every 97th byte, then the last ten
    "too_long": (LONG_COMMAND, answer,
                 list(range(1, 12)) + list(range(12, len(LONG_COMMAND), 97))
                 + list(range(len(LONG_COMMAND) - 4, len(LONG_COMMAND) + 6))),
}


@pytest.mark.pooler_only
@pytest.mark.parametrize("command", CONSOLE)
def test_console_command_cut(start, command):
    sql, read, cuts = CONSOLE[command]
    inst = start()
    with canary(inst), console_login(inst) as w:
        want = each_cut(w, q(sql), command, read=read, cuts=cuts)
        if command in ("invalid", "too_long"):
            assert types(want) == ["E", "Z"], want
            fields = parse_fields(want[0][1])
            assert fields["C"] == ("08P01" if command == "invalid" else "54000"), fields
        else:
            assert types(want)[0] == "T" and "E" not in types(want), want
        assert w.query("SHOW VERSION")[0][0].startswith("pgcoro ")


@pytest.mark.pooler_only
def test_console_query_in_two_segments(start):
    """An honest console query whose two halves arrive in two reads is answered."""
    inst = start()
    with canary(inst), console_login(inst) as w:
        msg = q("SHOW POOLS")
        assert len(msg) == 16
        w.send_split(msg, 8)
        got = answer(w)
        assert "E" not in types(got) and not leaked(got), got
        assert ["postgres", APP_USER] in [parse_data_row(p)[:2] for t, p in got if t == "D"]
        assert w.query("SHOW VERSION")[0][0].startswith("pgcoro ")


@pytest.mark.pooler_only
def test_console_terminate_cut(start):
    inst = start()
    with canary(inst):
        for k in range(1, len(TERMINATE)):
            with console_login(inst) as w:
                w.send_split(TERMINATE, k)
                assert w.at_eof(), f"cut at {k}: {w.buf!r}"


# ---- bad lengths, cut bodies and wrong messages, per state --------------------------------------

def enter_md5_password(inst):
    w = SplitWire.to(inst)
    w.send(startup(inst, MD5_USER))
    auth_request(w, 5)
    return w


def enter_scram_initial(inst):
    w = SplitWire.to(inst)
    w.send(startup(inst, APP_USER))
    auth_request(w, 10)
    return w


def enter_scram_final(inst):
    w = enter_scram_initial(inst)
    w.send(sasl_initial(_ScramClient(APP_PASS)))
    auth_request(w, 11)
    return w


def enter_idle(inst):
    return login(inst)


def enter_transaction_block(inst):
    w = login(inst)
    assert w.query("BEGIN") == []
    return w


def enter_copy_in(inst):
    w = login(inst)
    w.send(q("COPY cut_copy_state FROM STDIN"))
    assert types(read_through("G")(w)) == ["G"]
    return w


def enter_console(inst):
    return console_login(inst)


# state: (how to get a client there, the pool mode, the message type it would send next,
# pgcoro's length limit there, pooler only)
STATES = {
    "md5_password": (enter_md5_password, "transaction", "p", AUTH_MSG_MAX, False),
    "scram_initial": (enter_scram_initial, "transaction", "p", AUTH_MSG_MAX, False),
    "scram_final": (enter_scram_final, "transaction", "p", AUTH_MSG_MAX, False),
    "idle": (enter_idle, "transaction", "Q", MAX_PACKET, False),
    "session": (enter_idle, "session", "Q", MAX_PACKET, False),
    "transaction_block": (enter_transaction_block, "transaction", "Q", MAX_PACKET, False),
    "copy_in": (enter_copy_in, "transaction", "d", MAX_PACKET, False),
    "console": (enter_console, "transaction", "Q", CONSOLE_MAX_MESSAGE, True),
}


def state_params():
    return [pytest.param(s, marks=[pytest.mark.pooler_only] if STATES[s][4] else [])
            for s in STATES]


def expect_refused(inst, w, port, why):
    """Pgcoro answers a FATAL 08P01, closes, and logs it; PostgreSQL either closes
    without a word or answers an error."""
    if inst.direct:
        try:
            while w.read_msg()[0] != "E":
                pass
        except ConnectionClosed:
            pass
        return
    fields = w.expect_error()
    assert fields.get("S") == "FATAL" and fields.get("C") == "08P01", (why, fields)
    assert not leaked([("E", w.buf)]) and SECRET not in str(fields), fields
    assert w.at_eof(), f"{why}: not closed after the FATAL"
    assert_logged(inst, port, "08P01")


def still_served(inst, enter):
    """The state is reached again, and three times two clients at once (each pool has 3
    servers, one perhaps the canary's) run a transaction: no server kept a piece of what
    a refused client sent."""
    with enter(inst) as w:
        w.terminate()
    for _ in range(3):
        pair = [login(inst), login(inst)]
        try:
            for w in pair:
                w.query("BEGIN")
            for i, w in enumerate(pair):
                assert w.query(f"SELECT 'clean {i}'") == [[f"clean {i}"]]
                w.query("COMMIT")
        finally:
            for w in pair:
                w.terminate()


@pytest.mark.parametrize("state", state_params())
def test_bad_length(start, pg, state):
    """Per state: a message whose length field is 0, 3, just past pgcoro's limit there,
    1 GB, 4 GB (refused from the header alone: nothing more is sent, so nothing is
    waited for or buffered)."""
    enter, mode, mtype, limit, _ = STATES[state]
    copy_table(pg, "cut_copy_state")
    inst = start(mode, default_pool_size=3)
    lengths = [0, 3, 0x40000000, 0xFFFFFFFF] + ([] if inst.direct else [limit + 1])
    with canary(inst):
        for length in lengths:
            with enter(inst) as w:
                port = w.ports[0]
                w.send(mtype.encode() + struct.pack("!I", length) + b"abc"[:max(0, length - 4)])
                expect_refused(inst, w, port, f"length {length}")
        still_served(inst, enter)


@pytest.mark.parametrize("state", state_params())
def test_body_cut_short_then_close(start, pg, state):
    """Per state: a message whose body stops short, then the client closes: logged, and
    no server keeps the piece it may have received."""
    enter, mode, mtype, _, _ = STATES[state]
    copy_table(pg, "cut_copy_state")
    inst = start(mode, default_pool_size=3)
    with canary(inst):
        for body in (b"", b"SHOW POOLS", b"x" * 150):
            with enter(inst) as w:
                port = w.ports[0]
                w.send(mtype.encode() + struct.pack("!I", 200) + body)
                w.sock.shutdown(socket.SHUT_WR)
                got = until_close(w)
                assert not leaked(got), got
                # nothing to answer to a client gone; PostgreSQL may say why it closed
                assert types(got)[-1:] == ["closed"], got
                assert len(got) == 1 or inst.direct and set(types(got[:-1])) == {"E"}, got
                assert_logged(inst, port, "closing")
        still_served(inst, enter)


# message during login other than the password message the state awaits
@pytest.mark.parametrize("state", ["md5_password", "scram_initial", "scram_final"])
@pytest.mark.parametrize("wrong", ["query", "sync"])
def test_wrong_message_during_login(start, state, wrong):
    """A Query or a Sync where a password message belongs: FATAL 08P01 (PostgreSQL:
    "expected password response" / "expected SASL response"), the connection closed,
    pgcoro goes on."""
    enter = STATES[state][0]
    inst = start()
    msg = {"query": q("SELECT 'sneaked in'"), "sync": SYNC}[wrong]
    with canary(inst):
        with enter(inst) as w:
            port = w.ports[0]
            w.send_split(msg, len(msg) // 2)
            fields = w.expect_error()
            assert fields["S"] == "FATAL" and fields["C"] == "08P01", fields
            assert "expected" in fields["M"], fields
            assert w.at_eof()
            assert_logged(inst, port, "08P01")
        still_served(inst, enter)
