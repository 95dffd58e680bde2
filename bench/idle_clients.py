#!/usr/bin/python3
"""Hold N idle, logged-in PostgreSQL client connections (for `make bench`).

    idle_clients.py HOST PORT USER PASSWORD DATABASE N [CONCURRENCY]

Opens N TCP connections, sends a StartupMessage on each, answers md5 (or cleartext)
authentication and waits for ReadyForQuery; at most CONCURRENCY logins (default 200) are
in flight at once. Then it prints one line

    READY ok=<n> failed=<n> seconds=<login wall time> first_error=<text>

and holds every connection open, sending nothing, until stdin reaches EOF or a line is
read from it; then it closes them all (Terminate first), prints "CLOSED" and exits.
Uses only the standard library; the raw protocol keeps the helper itself small.
"""

import asyncio
import hashlib
import struct
import sys
import time

LOGIN_TIMEOUT = 60.0


def startup_message(user: str, database: str) -> bytes:
    body = struct.pack("!i", 196608)
    for k, v in (("user", user), ("database", database), ("application_name", "bench-idle")):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


def password_message(secret: str) -> bytes:
    data = secret.encode() + b"\0"
    return b"p" + struct.pack("!i", len(data) + 4) + data


async def read_message(reader: asyncio.StreamReader):
    hdr = await reader.readexactly(5)
    typ = hdr[:1]
    (length,) = struct.unpack("!i", hdr[1:])
    body = await reader.readexactly(length - 4)
    return typ, body


def error_text(body: bytes) -> str:
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[part[:1]] = part[1:].decode(errors="replace")
    return f"{fields.get(b'C', '?')} {fields.get(b'M', '?')}"


async def login(host, port, user, password, database):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(startup_message(user, database))
        await writer.drain()
        while True:
            typ, body = await read_message(reader)
            if typ == b"R":
                (code,) = struct.unpack("!i", body[:4])
                if code == 0:
                    continue
                if code == 5:  # md5
                    salt = body[4:8]
                    inner = hashlib.md5((password + user).encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + salt).hexdigest()
                    writer.write(password_message("md5" + outer))
                elif code == 3:  # cleartext
                    writer.write(password_message(password))
                else:
                    raise RuntimeError(f"unsupported authentication request {code}")
                await writer.drain()
            elif typ == b"E":
                raise RuntimeError(error_text(body))
            elif typ == b"Z":
                return reader, writer
            # S (ParameterStatus), K (BackendKeyData), N (notice): ignore
    except BaseException:
        writer.close()
        raise


async def main() -> int:
    if len(sys.argv) not in (7, 8):
        print(__doc__, file=sys.stderr)
        return 2
    host, port, user, password, database = sys.argv[1:6]
    port = int(port)
    n = int(sys.argv[6])
    concurrency = int(sys.argv[7]) if len(sys.argv) == 8 else 200
    sem = asyncio.Semaphore(concurrency)
    conns = []
    errors = []

    async def one():
        async with sem:
            try:
                conns.append(await asyncio.wait_for(
                    login(host, port, user, password, database), LOGIN_TIMEOUT))
            except Exception as e:  # noqa: BLE001 - report, don't die
                errors.append(f"{type(e).__name__}: {e}")

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(n)))
    dt = time.monotonic() - t0
    first = (errors[0] if errors else "").replace("\n", " ")
    print(f"READY ok={len(conns)} failed={len(errors)} seconds={dt:.3f} first_error={first}",
          flush=True)

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)

    terminate = b"X" + struct.pack("!i", 4)
    for _, w in conns:
        try:
            w.write(terminate)
            w.close()
        except Exception:  # noqa: BLE001
            pass
    for _, w in conns:
        try:
            await asyncio.wait_for(w.wait_closed(), 5)
        except Exception:  # noqa: BLE001
            pass
    print("CLOSED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
