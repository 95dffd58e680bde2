import threading, time, socket, struct
from conftest import Wire, APP_USER, APP_PASS, ConnectionClosed, parse_fields, vmrss_kb
from test_failures import start, wire, sessions, terminate_backend, failsdb, ResultCounter

def test_slow(pgcoro, pg):
    inst = pgcoro
    slow = wire(inst, db="postgres", timeout=20)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c = ResultCounter()
    slow.send(Wire.msg("Q", b"select repeat('x', 1000) from generate_series(1, 300000)\0"))
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3:
        c.feed(slow.sock.recv(1024)); time.sleep(0.002)
    print("slow phase", c.total, vmrss_kb(inst.pid))
    last = time.monotonic()
    try:
        while not c.done:
            d = slow.sock.recv(1 << 20)
            if not d: break
            c.feed(d)
            if time.monotonic() - last > 1:
                last = time.monotonic(); print(round(last - t0, 1), c.total, len(d), vmrss_kb(inst.pid))
    except Exception as e:
        print("EXC", repr(e), c.total)
    print("end", c.total, c.rows, c.done)
    print(inst.log_tail(10))
    slow.close()
