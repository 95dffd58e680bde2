"""A fake 'old process' for test_takeover.py: binds PATH (the unix socket `pgcoro -R`
connects to) and answers its console dialog as a pgcoro would, with SHOW FDS rows of its
own making: a listener on 127.0.0.1:PORT (the config's), then what MODE says:

  spoof             a client row for user postgres (run as another OS user)
  pipe              a client row whose socket is a pipe
  dgram             a client row whose socket is a datagram socket
  listening_client  a client row whose socket is a listening one
  connected_pooler  a pooler row whose socket is a connected one
  foreign_pooler    a pooler row listening on another port
  notices           2000 NoticeResponses in SHOW FDS's answer
  big_notice        one NoticeResponse of 2 MB
  error_cut         SHOW FDS answered by an ErrorResponse whose last field lacks its NUL

After SHUTDOWN (if it comes), it asks over its end of the client's socket who it is and
prints "ANSWER: <bytes>" (b'' when the new process did not adopt the socket)."""

import array
import os
import socket
import struct
import sys


def msg(t, p=b""):
    return t + struct.pack("!I", len(p) + 4) + p


def row(vals):
    p = struct.pack("!H", len(vals))
    for v in vals:
        if v is None:
            p += struct.pack("!i", -1)
        else:
            b = str(v).encode()
            p += struct.pack("!I", len(b)) + b
    return msg(b"D", p)


def fd_row(fd, task, user=None, db=None, port=0):
    return row([fd, task, user, db, "127.0.0.1", port, 0, 0] + [None] * 7)


def send_fd(conn, data, fd):
    conn.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])


def recv_exact(conn, n):
    b = b""
    while len(b) < n:
        got = conn.recv(n - len(b))
        if not got:
            return None
        b += got
    return b


def read_msg(conn, first=False):
    hdr = recv_exact(conn, 4 if first else 5)
    if hdr is None:
        return None
    body = recv_exact(conn, struct.unpack("!I", hdr[-4:])[0] - 4)
    return None if body is None else (b"" if first else hdr[:1], body)


def dialog(conn, lst, bad, port, mode):
    """The console dialog on CONN (None: the new process left before its startup)."""
    while conn is not None:
        m = read_msg(conn)
        if m is None:
            break
        q = m[1]
        if q.startswith(b"SUSPEND"):
            conn.sendall(msg(b"C", b"SUSPEND\0") + msg(b"Z", b"I"))
        elif q.startswith(b"SHOW FDS") and mode == "error_cut":
            conn.sendall(msg(b"E", b"SERROR\0C08P01\0Mno end") + msg(b"Z", b"I"))
        elif q.startswith(b"SHOW FDS"):
            send_fd(conn, fd_row(lst.fileno(), "pooler", port=port), lst.fileno())
            if mode in ("connected_pooler", "foreign_pooler"):
                send_fd(conn, fd_row(bad, "pooler", port=port), bad)
            elif mode == "notices":
                conn.sendall(msg(b"N", b"Mhello\0\0") * 2000)
            elif mode == "big_notice":
                conn.sendall(msg(b"N", b"M" + b"x" * (2 << 20) + b"\0\0"))
            if mode not in ("connected_pooler", "foreign_pooler"):
                send_fd(conn, fd_row(99, "client", "postgres", "postgres"), bad)
            conn.sendall(msg(b"C", b"SHOW\0") + msg(b"Z", b"I"))
        elif q.startswith(b"SHUTDOWN"):
            conn.close()
            break


def main(path, port, mode):
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", int(port)))
    lst.listen(8)
    mine, theirs = socket.socketpair()
    keep = []
    if mode == "pipe":
        r, w = os.pipe()
        keep += [r, w]
        bad = r
    elif mode == "dgram":
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        keep += [a, b]
        bad = a.fileno()
    elif mode in ("listening_client", "foreign_pooler"):
        other = socket.socket()
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        keep.append(other)
        bad = other.fileno()
    else:
        bad = theirs.fileno()
    print("READY", flush=True)
    for _ in range(2):  # pgcoro -R first only checks that something answers
        conn, _ = srv.accept()
        if read_msg(conn, first=True) is not None:
            conn.sendall(msg(b"R", struct.pack("!I", 0)) + msg(b"Z", b"I"))
            break
        conn.close()
        conn = None
    try:
        dialog(conn, lst, bad, port, mode)
    except OSError:  # the new process hung up: refused
        pass
    theirs.close()
    mine.settimeout(20)
    data = b""
    try:
        mine.sendall(msg(b"Q", b"SELECT current_user\0"))
        while b"Z\x00\x00\x00\x05" not in data:
            b = mine.recv(65536)
            if not b:
                break
            data += b
    except OSError:
        pass
    print("ANSWER:", data, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
