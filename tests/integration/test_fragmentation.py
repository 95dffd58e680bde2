"""Messages cut at every byte, larger than one read, and many in one read: the relay
frames by pointer in whatever a read returned and keeps only unconsumed bytes, so these
check that every cut point and every batch boundary gives the same answer as PostgreSQL."""

import socket
import time

import pytest

from conftest import APP_PASS, APP_USER, Wire, extended, parse_data_row, wire_exec


class DripWire(Wire):
    """Sends every byte in its own segment (TCP_NODELAY and a pause), so the pooler reads
    messages in pieces: headers cut in two, bodies cut anywhere."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.drip = True

    def send(self, data):
        if not self.drip:
            return super().send(data)
        for i in range(len(data)):
            self.sock.sendall(data[i:i + 1])
            time.sleep(0.0005)


@pytest.fixture(params=["transaction", "session"])
def inst(request, pgcoro_factory):
    return pgcoro_factory(settings={"auth_type": "plain", "pool_mode": request.param,
                                    "default_pool_size": "2"})


def read_until_ready(w):
    """Reads to a ReadyForQuery; returns (message types, data rows, status)."""
    types, rows = [], []
    while True:
        t, p = w.read_msg()
        types.append(t)
        if t == "D":
            rows.append(parse_data_row(p))
        if t == "Z":
            return types, rows, p.decode()


def test_login_and_requests_byte_by_byte(inst):
    with DripWire.to(inst) as w:
        assert w.login(APP_USER, APP_PASS, "postgres", application_name="drip") == b"I"
        assert wire_exec(w, "SELECT 40 + 2") == ([["42"]], [], "I")
        w.send(extended("SELECT $1::int * 2, $2::text", ("21", "two")))
        types, rows, status = read_until_ready(w)
        assert types == ["1", "2", "T", "D", "C", "Z"], types
        assert rows == [["42", "two"]] and status == "I"
        # a transaction whose statements arrive in pieces keeps its server
        assert wire_exec(w, "BEGIN")[2] == "T"
        assert wire_exec(w, "SELECT pg_backend_pid()")[2] == "T"
        assert wire_exec(w, "COMMIT")[2] == "I"
        w.drip = False
        assert wire_exec(w, "SELECT current_setting('application_name')")[0] == [["drip"]]
        w.terminate()


def test_large_request_and_rows_across_reads(inst):
    """A 300 KB query (more than one read, more than one relay batch) and rows whose
    sizes put message boundaries everywhere in the pooler's reads."""
    with Wire.to(inst) as w:
        w.login(APP_USER, APP_PASS, "postgres")
        big = "x" * 300_000
        assert wire_exec(w, f"SELECT length('{big}')") == ([["300000"]], [], "I")
        rows, errors, ready = wire_exec(
            w, "SELECT i, repeat(chr(65 + i % 26), (i * 7919) % 70000) "
               "FROM generate_series(1, 300) i")
        assert errors == [] and ready == "I"
        assert len(rows) == 300
        for i, (n, s) in enumerate(rows, start=1):
            assert n == str(i) and s == chr(65 + i % 26) * ((i * 7919) % 70000), i
        w.terminate()


def test_parameter_status_between_large_results(inst):
    """A ParameterStatus (looked at whole by the relay) between large results reaches the
    client, and the session keeps working."""
    with Wire.to(inst) as w:
        w.login(APP_USER, APP_PASS, "postgres")
        w.send(Wire.msg("Q", b"SELECT repeat('y', 100000); SET application_name = 'frag'; "
                             b"SELECT repeat('z', 70000)\0"))
        seen_param = None
        rows = []
        while True:
            t, p = w.read_msg()
            if t == "S":
                k, v = p.split(b"\0")[:2]
                if k == b"application_name":
                    seen_param = v.decode()
            elif t == "D":
                rows.append(parse_data_row(p))
            elif t == "Z":
                break
        assert seen_param == "frag"
        assert rows == [["y" * 100000], ["z" * 70000]]
        assert wire_exec(w, "SELECT 1") == ([["1"]], [], "I")
        w.terminate()


def test_many_requests_in_one_read(inst):
    """200 queries sent at once: many ReadyForQuery arrive in one server read; in
    transaction mode the server is handed back only after the last one."""
    with Wire.to(inst) as w:
        w.login(APP_USER, APP_PASS, "postgres")
        w.send(b"".join(Wire.msg("Q", f"SELECT {i}".encode() + b"\0") for i in range(200)))
        for i in range(200):
            types, rows, status = read_until_ready(w)
            assert rows == [[str(i)]] and status == "I", (i, types, rows)
        w.send(b"".join(extended("SELECT $1::int", (str(i),)) for i in range(100)))
        for i in range(100):
            types, rows, status = read_until_ready(w)
            assert rows == [[str(i)]] and status == "I", (i, types, rows)
        w.terminate()
