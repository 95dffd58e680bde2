"""The admin console (database pgcoro, alias pgbouncer): every SHOW has PgBouncer 1.26's
columns, names, types and order (pgcoro may add columns after them), and keeps every
column of the Debian PgBouncer 1.18, compared live; PAUSE/RESUME and RECONNECT under
pgbench without a failed transaction; KILL_CLIENT; DISABLE; stats users limited to SHOW;
other users refused. PgBouncer 1.24-1.26's listings and commands (SOCKETS, PEERS,
SHUTDOWN WAIT_FOR_*, SUSPEND, bare KILL, the client-limit columns) and its error texts
are in test_console2.py."""

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import psycopg2
import pytest

from conftest import (APP_PASS, APP_USER, PgError, Wire, clean_env, free_port, parse_data_row,
                      parse_fields, pg_rows, pid_alive, wait_port, wait_until)

pytestmark = pytest.mark.pooler_only

ADMIN, ADMIN_PASS = "admin", "adminpw"
STATS, STATS_PASS = "statsu", "statspw"
ROW_NAMED = ("TOTALS", "LISTS")   # one row per figure, named in the first column
SHOWS = ["HELP", "VERSION", "CONFIG", "DATABASES", "POOLS", "CLIENTS", "SERVERS", "USERS",
         "STATS", "STATS_TOTALS", "STATS_AVERAGES", "TOTALS", "LISTS", "STATE"]

T, I4, I8, N = 25, 23, 20, 1700   # text, int4, int8, numeric


def _cols(spec):
    """[(name, type oid)] from "name:type name:type ..."."""
    types = {"s": T, "i": I4, "q": I8, "N": N}
    return [(c.split(":")[0], types[c.split(":")[1]]) for c in spec.split()]


_SOCKET = ("type:s user:s database:s replication:s state:s addr:s port:i local_addr:s "
           "local_port:i connect_time:s request_time:s wait:i wait_us:i close_needed:i ptr:s "
           "link:s remote_pid:i tls:s application_name:s prepared_statements:i id:i")
_FIGURES = ("server_assignment_count xact_count query_count bytes_received bytes_sent "
            "xact_time query_time wait_time").split()
# PgBouncer 1.26's columns (src/admin.c and src/stats.c at 13a344f2, the commit of the
# compatibility suite), in order.
PGB_126 = {
    "VERSION": _cols("version:s"),
    "CONFIG": _cols("key:s value:s default:s changeable:s"),
    "DATABASES": _cols(
        "name:s host:s port:i database:s force_user:s pool_size:i min_pool_size:i "
        "reserve_pool_size:i server_lifetime:i pool_mode:s load_balance_hosts:s "
        "max_connections:i current_connections:i max_client_connections:i "
        "current_client_connections:i paused:i disabled:i"),
    "PEERS": _cols("peer_id:i host:s port:i pool_size:i"),
    "PEER_POOLS": _cols("peer_id:i cl_active_cancel_req:i cl_waiting_cancel_req:i "
                        "sv_active_cancel:i sv_login:i"),
    "POOLS": _cols(
        "database:s user:s cl_active:i cl_waiting:i cl_active_cancel_req:i "
        "cl_waiting_cancel_req:i sv_active:i sv_active_cancel:i sv_being_canceled:i "
        "sv_idle:i sv_used:i sv_tested:i sv_login:i maxwait:i maxwait_us:i pool_mode:s "
        "load_balance_hosts:s"),
    "USERS": _cols(
        "name:s pool_size:s reserve_pool_size:s pool_mode:s max_user_connections:i "
        "current_connections:i max_user_client_connections:i current_client_connections:i"),
    "CLIENTS": _cols(_SOCKET),
    "SERVERS": _cols(_SOCKET),
    "SOCKETS": _cols(_SOCKET + " recv_pos:i pkt_pos:i pkt_remain:i send_pos:i send_remain:i "
                     "pkt_avail:i send_avail:i"),
    "ACTIVE_SOCKETS": _cols(_SOCKET + " recv_pos:i pkt_pos:i pkt_remain:i send_pos:i "
                            "send_remain:i pkt_avail:i send_avail:i"),
    "STATE": _cols("key:s value:s"),
    "MEM": _cols("name:s size:i used:i free:i memtotal:i"),
    "DNS_HOSTS": _cols("hostname:s ttl:q addrs:s"),
    "DNS_ZONES": _cols("zonename:s serial:q count:i"),
    "LISTS": _cols("list:s items:i"),
    "TOTALS": _cols("name:s value:N"),
    "STATS": [("database", T)] + [(f"total_{f}", N) for f in (
        ["server_assignment_count", "xact_count", "query_count", "received", "sent",
         "xact_time", "query_time", "wait_time", "client_parse_count", "server_parse_count",
         "bind_count", "client_login_count"])] + [(f"avg_{f}", N) for f in (
        ["server_assignment_count", "xact_count", "query_count", "recv", "sent", "xact_time",
         "query_time", "wait_time", "client_parse_count", "server_parse_count", "bind_count",
         "client_login_count"])],
    "STATS_TOTALS": [("database", T)] + [(f, N) for f in _FIGURES + [
        "client_parse_count", "server_parse_count", "bind_count", "client_login_count"]],
    "STATS_AVERAGES": [("database", T)] + [(f, N) for f in _FIGURES + [
        "avg_client_parse_count", "avg_server_parse_count", "avg_bind_count",
        "avg_client_login_count"]],
}
_TOTAL_NAMES = ("server_assignment_count xact_count query_count client_bytes server_bytes "
                "xact_time query_time wait_time ps_client_parse_count ps_server_parse_count "
                "ps_bind_count client_login_count").split()
PGB_126_ROWS = {
    "TOTALS": [f"total_{n}" for n in _TOTAL_NAMES] + [f"avg_{n}" for n in _TOTAL_NAMES],
    "LISTS": ["databases", "users", "peers", "pools", "peer_pools", "free_clients",
              "used_clients", "login_clients", "free_servers", "used_servers", "dns_names",
              "dns_zones", "dns_queries", "dns_pending"],
}
# pgcoro's own columns after PgBouncer's
PGCORO_EXTRA = {"STATS": [("total_requests", N), ("avg_req", N)],
                "DATABASES": [("reserve_pool", I4)],
                # pin_session_state (pin.h): who keeps a server across transactions, and why
                "POOLS": [("cl_pinned", I4)],
                **{w: [("pinned", T)] for w in ("CLIENTS", "SERVERS", "SOCKETS",
                                                   "ACTIVE_SOCKETS")}}
RENAMED_SINCE_118 = {("DATABASES", "reserve_pool"): "reserve_pool_size"}


def console_inst(pgcoro_factory, user_settings=None, **settings):
    base = {"admin_users": ADMIN, "stats_users": STATS, "pool_mode": "transaction"}
    base.update(settings)
    return pgcoro_factory(settings=base, users={ADMIN: ADMIN_PASS, STATS: STATS_PASS},
                          user_settings=user_settings)


def console(inst, user=ADMIN, password=ADMIN_PASS, db="pgcoro", host=None):
    """A console session (autocommit) over TCP, or the unix socket in HOST."""
    c = psycopg2.connect(host=host or inst.host, port=inst.port, user=user, password=password,
                         dbname=db, connect_timeout=30)
    c.autocommit = True
    return c


def describe(conn, what):
    cur = conn.cursor()
    cur.execute(f"SHOW {what}")
    cols = [(d.name, d.type_code) for d in cur.description] if cur.description else []
    return cols, (cur.fetchall() if cur.description else []), cur.statusmessage


def rows_as_dicts(conn, what):
    cur = conn.cursor()
    cur.execute(f"SHOW {what}")
    names = [d.name for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


@pytest.fixture(scope="module")
def pgbouncer_columns(session_root):
    """{SHOW name: [(column, type oid)]} from the Debian PgBouncer (run as postgres when
    root, since it refuses root), with the same console users."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.access(binary, os.X_OK):
        pytest.fail("pgbouncer not installed (make deps installs it)")
    d = tempfile.mkdtemp(prefix="pgb-", dir=session_root)
    os.chmod(d, 0o777)
    port = free_port()
    with open(os.path.join(d, "users.txt"), "w") as f:
        f.write(f'"{ADMIN}" "{ADMIN_PASS}"\n')
    with open(os.path.join(d, "pgb.ini"), "w") as f:
        f.write(f"[databases]\nx = host=127.0.0.1 port=1 dbname=x\n[pgbouncer]\n"
                f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
                f"auth_type = plain\nauth_file = {d}/users.txt\nadmin_users = {ADMIN}\n"
                f"logfile = {d}/pgb.log\npool_mode = transaction\n")
    for name in os.listdir(d):
        os.chmod(os.path.join(d, name), 0o644)
    argv = [binary, os.path.join(d, "pgb.ini")]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=clean_env())
    try:
        wait_port(port, proc, timeout=30, what="pgbouncer")
        c = psycopg2.connect(host="127.0.0.1", port=port, user=ADMIN, password=ADMIN_PASS,
                             dbname="pgbouncer", connect_timeout=30)
        c.autocommit = True
        out = {}
        for w in SHOWS:
            try:
                cols, rows, _ = describe(c, w)
            except psycopg2.Error:       # a command this PgBouncer lacks (STATE: 1.19+)
                out[w] = None
                continue
            out[w] = cols
            if w in ROW_NAMED:
                out[w + " rows"] = [r[0] for r in rows]
        c.close()
    finally:
        pid = proc.pid
        proc.terminate()          # runuser forwards the signal to pgbouncer
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        wait_until(lambda: not pid_alive(pid), "pgbouncer gone")
    return out


def is_subsequence(part, whole):
    it = iter(whole)
    return all(x in it for x in part)


def test_show_columns_match_pgbouncer(pgcoro_factory, pgbouncer_columns):
    """Each SHOW has exactly PgBouncer 1.26's columns, names, type OIDs and order (then
    pgcoro's own, if any); TOTALS and LISTS have its rows, by name and in order; every
    column and row of the live Debian PgBouncer 1.18 is there with the same type and in
    the same order (the one renamed since under its new name); the tag is SHOW; both
    console names work. Most of the SHOWs must exist in that PgBouncer (the live
    comparison is not empty)."""
    assert sum(v is not None for v in pgbouncer_columns.values()) >= 12, pgbouncer_columns
    inst = console_inst(pgcoro_factory)
    wrong = []
    for db in ("pgcoro", "pgbouncer"):
        c = console(inst, db=db)
        try:
            for what in sorted(set(SHOWS) | set(PGB_126)):
                cols, rows, tag = describe(c, what)
                assert tag == "SHOW", (what, tag)
                if what == "HELP":
                    continue
                want = PGB_126[what] + PGCORO_EXTRA.get(what, [])
                if cols != want:
                    wrong.append((what, [x for x in zip(cols, want) if x[0] != x[1]],
                                  len(cols), len(want)))
                old = [(RENAMED_SINCE_118.get((what, n), n), t)
                       for n, t in (pgbouncer_columns.get(what) or [])]
                if not is_subsequence(old, cols):
                    wrong.append((what, "1.18", old, cols))
                if what in ROW_NAMED:
                    names = [r[0] for r in rows]
                    if names != PGB_126_ROWS[what]:
                        wrong.append((what, "rows", names, PGB_126_ROWS[what]))
                    if not is_subsequence(pgbouncer_columns[what + " rows"], names):
                        wrong.append((what, "1.18 rows", names,
                                      pgbouncer_columns[what + " rows"]))
        finally:
            c.close()
    assert not wrong, "\n".join(map(str, wrong))


def test_show_values(pgcoro_factory, pg):
    """The figures follow what happened: a pool with its clients and servers, the
    client's own row, counters after known traffic."""
    inst = console_inst(pgcoro_factory, default_pool_size=2)
    with Wire.to(inst) as w:
        w.login()
        for _ in range(3):
            w.query("select 1")
        c = console(inst)
        try:
            pools = [r for r in rows_as_dicts(c, "POOLS") if r["database"] == "postgres"]
            assert len(pools) == 1 and pools[0]["user"] == APP_USER, pools
            assert pools[0]["cl_active"] == 1 and pools[0]["sv_idle"] == 1, pools
            assert pools[0]["pool_mode"] == "transaction"
            clients = [r for r in rows_as_dicts(c, "CLIENTS") if r["database"] == "postgres"]
            assert len(clients) == 1 and clients[0]["addr"] == "127.0.0.1", clients
            assert clients[0]["port"] == w.sock.getsockname()[1], clients
            # the console's own client is listed too (PgBouncer's admin pool), idle as
            # PgBouncer shows a client without a server; so is the app's (transaction mode)
            mine = [r for r in rows_as_dicts(c, "CLIENTS") if r["database"] == "pgcoro"]
            assert len(mine) == 1 and mine[0]["user"] == ADMIN, mine
            assert mine[0]["state"] == "idle" and clients[0]["state"] == "idle", (mine, clients)
            servers = [r for r in rows_as_dicts(c, "SERVERS") if r["database"] == "postgres"]
            assert len(servers) == 1 and servers[0]["state"] == "idle", servers
            backend = pg_rows(pg, "SELECT pid FROM pg_stat_activity WHERE usename = %s AND "
                                  "datname = 'postgres' AND backend_type = 'client backend'",
                              (APP_USER,))
            assert servers[0]["remote_pid"] in [b[0] for b in backend], (servers, backend)
            stats = [r for r in rows_as_dicts(c, "STATS") if r["database"] == "postgres"]
            assert stats[0]["total_xact_count"] == 3 and stats[0]["total_query_count"] == 3
            assert stats[0]["total_received"] == 3 * len(Wire.msg("Q", b"select 1\0"))
            dbs = {r["name"]: r for r in rows_as_dicts(c, "DATABASES")}
            assert dbs["postgres"]["port"] == pg.port and dbs["postgres"]["paused"] == 0
            config = {r["key"]: r["value"] for r in rows_as_dicts(c, "CONFIG")}
            assert config["default_pool_size"] == "2" and config["admin_users"] == ADMIN
        finally:
            c.close()
        w.terminate()


def pgbench(pg, inst, seconds, clients=8):
    return subprocess.Popen(
        [pg.pgbench_bin, "-n", "-S", "-j", "2", "-c", str(clients), "-T", str(seconds),
         "-h", inst.host, "-p", str(inst.port), "-U", APP_USER, "bench"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=clean_env(PGPASSWORD=APP_PASS, PGCONNECT_TIMEOUT=60))


def finish(bench):
    out, _ = bench.communicate(timeout=120)
    assert bench.returncode == 0, out
    assert not re.search(r"error|abort", out, re.I), out
    return int(re.search(r"actually processed: (\d+)", out).group(1))


def test_pause_resume_under_pgbench(pgcoro_factory, pg):
    """PAUSE returns once no server is left; meanwhile pgbench's clients wait (no error);
    after RESUME they go on."""
    inst = console_inst(pgcoro_factory, default_pool_size=4)
    bench = pgbench(pg, inst, 8)
    c = console(inst)
    try:
        wait_until(lambda: any(r["database"] == "bench" and r["sv_active"] + r["sv_idle"] > 0
                               for r in rows_as_dicts(c, "POOLS")), "bench running")
        c.cursor().execute("PAUSE bench")
        pools = [r for r in rows_as_dicts(c, "POOLS") if r["database"] == "bench"]
        assert pools[0]["sv_active"] == 0 and pools[0]["sv_idle"] == 0, pools
        dbs = {r["name"]: r for r in rows_as_dicts(c, "DATABASES")}
        assert dbs["bench"]["paused"] == 1
        wait_until(lambda: [r for r in rows_as_dicts(c, "POOLS")
                            if r["database"] == "bench"][0]["cl_waiting"] > 0,
                   "clients waiting while paused")
        before = [r for r in rows_as_dicts(c, "STATS") if r["database"] == "bench"][0]
        time.sleep(1)
        during = [r for r in rows_as_dicts(c, "STATS") if r["database"] == "bench"][0]
        assert during["total_xact_count"] == before["total_xact_count"]
        c.cursor().execute("RESUME")
        wait_until(lambda: [r for r in rows_as_dicts(c, "STATS") if r["database"] == "bench"][0]
                   ["total_xact_count"] > during["total_xact_count"], "traffic after RESUME")
    finally:
        c.close()
    assert finish(bench) > 0


def test_reconnect_and_wait_close_under_pgbench(pgcoro_factory, pg):
    """RECONNECT replaces every server without failing a transaction; WAIT_CLOSE returns
    once the old ones are gone."""
    inst = console_inst(pgcoro_factory, default_pool_size=3)
    bench = pgbench(pg, inst, 6)
    c = console(inst)
    try:
        def backends():
            return {r[0] for r in pg_rows(pg, "SELECT pid FROM pg_stat_activity WHERE "
                                              "datname = 'bench' AND usename = %s",
                                          (APP_USER,))}
        wait_until(lambda: len(backends()) == 3, "three servers in use")
        old = backends()
        c.cursor().execute("RECONNECT bench")
        c.cursor().execute("WAIT_CLOSE bench")
        servers = [r for r in rows_as_dicts(c, "SERVERS") if r["database"] == "bench"]
        assert all(r["close_needed"] == 0 for r in servers), servers
        assert not {r["remote_pid"] for r in servers} & old, (servers, old)
    finally:
        c.close()
    assert finish(bench) > 0


def test_kill_client_disable_and_rights(pgcoro_factory):
    """KILL_CLIENT closes exactly that client (57P01); DISABLE refuses new logins (55000)
    and ENABLE lets them in; a stats user may SHOW but not PAUSE (08P01, as PgBouncer); a user in
    neither list is refused at login (28000); an unknown command is an error and the
    console goes on."""
    inst = console_inst(pgcoro_factory)
    keep = Wire.to(inst)
    victim = Wire.to(inst)
    keep.login()
    victim.login()
    c = console(inst)
    try:
        port = victim.sock.getsockname()[1]
        row = [r for r in rows_as_dicts(c, "CLIENTS") if r["port"] == port]
        assert len(row) == 1, row
        c.cursor().execute(f"KILL_CLIENT {row[0]['id']}")
        t, payload = victim.read_msg()             # told without asking
        assert t == "E" and parse_fields(payload)["C"] == "57P01", (t, payload)
        assert victim.at_eof()
        assert keep.query("select 1") == [["1"]]
        for arg, text in (("999999", "client not found"),
                          ("nosuch", "invalid client pointer supplied"),
                          ("", "invalid client pointer supplied")):
            with pytest.raises(psycopg2.Error) as e2:
                c.cursor().execute(f"KILL_CLIENT {arg}")
            assert e2.value.pgcode == "08P01" and text in e2.value.pgerror, e2.value.pgerror

        c.cursor().execute("DISABLE postgres")
        with Wire.to(inst) as w:
            with pytest.raises(PgError) as e:
                w.login()
            assert e.value.sqlstate == "55000"
        assert keep.query("select 2") == [["2"]]     # a session goes on
        c.cursor().execute("ENABLE postgres")
        inst.assert_serving()

        with pytest.raises(psycopg2.Error) as e2:
            c.cursor().execute("FROB")
        assert e2.value.pgcode == "08P01"
        assert describe(c, "VERSION")[1][0][0].startswith("pgcoro ")
    finally:
        c.close()
        keep.close()
        victim.close()

    s = console(inst, STATS, STATS_PASS, db="pgbouncer")
    try:
        assert rows_as_dicts(s, "POOLS") is not None
        with pytest.raises(psycopg2.Error) as e2:
            s.cursor().execute("PAUSE")
        assert e2.value.pgcode == "08P01"
    finally:
        s.close()
    with pytest.raises(psycopg2.OperationalError) as e3:
        console(inst, APP_USER, APP_PASS)
    assert "not allowed" in str(e3.value)
    inst.assert_serving()


def read_reply(w):
    """The DataRows (parsed) of a reply on Wire W, read up to its ReadyForQuery; an
    ErrorResponse fails."""
    rows = []
    while True:
        t, p = w.read_msg()
        assert t != "E", parse_fields(p)
        if t == "D":
            rows.append(parse_data_row(p))
        elif t == "Z":
            return rows


def console_wire(inst):
    w = Wire.to(inst)
    w.login(user=ADMIN, password=ADMIN_PASS, database="pgcoro")
    return w


def test_console_bad_input(pgcoro_factory):
    """Malformed console input: a command over 4096 bytes gets 54000 and the console goes
    on; SHOW without or with an unknown argument, PAUSE of an unknown database: 08P01
    with PgBouncer's wording; an extended-protocol message closes the connection with a
    FATAL 08P01; nothing else is disturbed."""
    inst = console_inst(pgcoro_factory)
    w = console_wire(inst)
    try:
        with pytest.raises(PgError) as e:
            w.query("SHOW " + "x" * 5000)
        assert e.value.sqlstate == "54000", e.value.fields
        for bad in ("SHOW", "SHOW NOPE", "SHOW POOLS EXTRA"):
            with pytest.raises(PgError) as e:
                w.query(bad)
            assert e.value.sqlstate == "08P01", (bad, e.value.fields)
            assert e.value.fields["M"] == f"invalid command '{bad}', use SHOW HELP;"
        with pytest.raises(PgError) as e:
            w.query("PAUSE nosuchdb")
        assert e.value.sqlstate == "08P01" and "nosuchdb" in e.value.fields["M"]
        assert w.query("SHOW VERSION")[0][0].startswith("pgcoro ")
        w.send(Wire.msg("P", b"\0select 1\0\0\0") + Wire.msg("S"))
        t, payload = w.read_msg()
        fields = parse_fields(payload)
        assert t == "E" and fields["S"] == "FATAL" and fields["C"] == "08P01", fields
        assert w.at_eof()
    finally:
        w.close()
    inst.assert_serving()


def test_pipelined_commands_behind_pause(pgcoro_factory):
    """Commands sent in one go behind a PAUSE that must wait for a busy server run, in
    order, once it is done: the console reads nothing while a command waits."""
    inst = console_inst(pgcoro_factory)
    app = Wire.to(inst)
    app.login()
    app.query("begin")                       # holds its server: PAUSE must wait
    w = console_wire(inst)
    try:
        w.send(Wire.msg("Q", b"PAUSE postgres\0") + Wire.msg("Q", b"SHOW DATABASES\0") +
               Wire.msg("Q", b"RESUME\0"))
        w.sock.settimeout(1.0)
        with pytest.raises(OSError):         # nothing while the transaction is open
            w.read_msg()
        w.sock.settimeout(20.0)
        app.query("commit")                  # the server comes back and is closed
        t, p = w.read_msg()
        assert (t, p) == ("C", b"PAUSE\0"), (t, p)
        assert w.read_msg()[0] == "Z"
        rows = read_reply(w)
        paused = {r[0]: r[15] for r in rows}   # DATABASES: paused is column 15
        assert paused["postgres"] == "1", rows
        assert w.read_msg() == ("C", b"RESUME\0")
        assert w.read_msg()[0] == "Z"
        assert app.query("select 3") == [["3"]]
    finally:
        w.close()
        app.close()


def test_kill_reload_shutdown(pgcoro_factory):
    """KILL db closes its clients (57P01) and holds new ones until RESUME; RELOAD answers
    once the file is read (SHOW CONFIG has the new value); SHUTDOWN stops pgcoro (exit 0)
    after answering."""
    inst = console_inst(pgcoro_factory)
    victim = Wire.to(inst)
    victim.login()
    victim.query("select 1")
    c = console(inst)
    try:
        c.cursor().execute("KILL postgres")
        t, payload = victim.read_msg()
        assert t == "E" and parse_fields(payload)["C"] == "57P01", (t, payload)
        late = Wire.to(inst)
        late.login()                          # logs in (transaction mode), then waits
        late.send(Wire.msg("Q", b"select 4\0"))
        wait_until(lambda: [r for r in rows_as_dicts(c, "POOLS")
                            if r["database"] == "postgres"][0]["cl_waiting"] == 1,
                   "a client waiting on the killed database")
        c.cursor().execute("RESUME postgres")
        assert read_reply(late) == [["4"]]     # served once resumed
        late.close()

        text = open(inst.config_path).read()
        text = re.sub(r"(?m)^default_pool_size = .*$", "default_pool_size = 7", text)
        if "default_pool_size" not in text:
            text = text.replace("[pgcoro]\n", "[pgcoro]\ndefault_pool_size = 7\n")
        with open(inst.config_path, "w") as f:
            f.write(text)
        cur = c.cursor()
        cur.execute("RELOAD")
        assert cur.statusmessage == "RELOAD"
        config = {r["key"]: r["value"] for r in rows_as_dicts(c, "CONFIG")}
        assert config["default_pool_size"] == "7"

        cur.execute("SHUTDOWN")
        assert cur.statusmessage == "SHUTDOWN"
    finally:
        c.close()
        victim.close()
    inst.proc.wait(timeout=60)
    assert inst.proc.returncode == 0


def config_value(conn, key):
    return {r["key"]: r["value"] for r in rows_as_dicts(conn, "CONFIG")}[key]


def test_set(pgcoro_factory):
    """SET key = value changes the running configuration at once (as a reload would; the
    pools take new sizes), quoted values with '' inside, TO as well as =, PgBouncer's tag
    "SET key=value"; errors keep the console usable, with PgBouncer's 08P01 "SET failed"
    and the reason as the detail (unknown key, bad value, failed validation; for a file
    that does not load, in the log only: it may quote the file), bad syntax 08P01 invalid command, a stats user 08P01; RELOAD restores
    the file. (test_console_set.py: the keys read with files, PgBouncer's other answers.)"""
    inst = console_inst(pgcoro_factory, default_pool_size=5)
    admin = console(inst)
    cur = admin.cursor()
    cur.execute("SET default_pool_size = 3")
    assert cur.statusmessage == "SET default_pool_size=3"
    assert config_value(admin, "default_pool_size") == "3"
    pg_db = [r for r in rows_as_dicts(admin, "DATABASES") if r["name"] == "postgres"][0]
    assert pg_db["pool_size"] == 3
    cur.execute("set server_check_query to 'select ''x'' ; '")
    assert config_value(admin, "server_check_query") == "select 'x' ; "
    cur.execute("SET query_wait_timeout = 1s;")
    assert config_value(admin, "query_wait_timeout") == "1"
    # the pool takes the new size (3, the file says 5): three clients hold a transaction
    # each, a fourth waits for a server and gets query_wait_timeout
    conns = [inst.connect() for _ in range(4)]
    try:
        for c in conns[:3]:
            c.cursor().execute("begin; select 1")
        with pytest.raises(psycopg2.OperationalError):
            conns[3].cursor().execute("select 1")
        wait_until(lambda: "pooler error 57014, closing because: query_wait_timeout (1s)" in inst.log_text(),
                   "the fourth client's query_wait_timeout")
        pools = {(r["database"], r["user"]): r for r in rows_as_dicts(admin, "POOLS")}
        assert pools[("postgres", APP_USER)]["sv_active"] == 3
    finally:
        for c in conns:
            c.close()
    for stmt, state, text in (
            ("SET nosuch = 1", "08P01", "SET failed\nDETAIL:  unknown config parameter: nosuch"),
            ("SET default_pool_size = abc", "08P01", "default_pool_size: not an integer"),
            ("SET min_pool_size = 4", "08P01", "min_pool_size (4) exceeds default_pool_size (3)"),
            ("SET auth_file = '/x'", "08P01", "a file it reads did not load; see the log"),
            ("SET client_tls_sslmode = require", "08P01", "needs client_tls_key_file"),
            ("SET default_pool_size", "08P01", "invalid command 'SET default_pool_size'"),
            ("SET server_check_query = 'unterminated", "08P01", "invalid command")):
        with pytest.raises(psycopg2.Error) as e:
            cur.execute(stmt)
        assert e.value.pgcode == state, (stmt, e.value.pgerror)
        assert text in e.value.pgerror, (stmt, e.value.pgerror)
    assert config_value(admin, "default_pool_size") == "3"
    stats = console(inst, STATS, STATS_PASS)
    with pytest.raises(psycopg2.Error) as e:
        stats.cursor().execute("SET default_pool_size = 9")
    assert e.value.pgcode == "08P01" and "admin access needed" in e.value.pgerror
    stats.close()
    assert "SET default_pool_size = '3' by admin" in inst.log_text()
    assert "auth_file: /x: cannot open" in inst.log_text()  # the reason: in the log only
    cur.execute("RELOAD")
    assert config_value(admin, "default_pool_size") == "5"
    assert config_value(admin, "server_check_query") == "select 1"
    admin.close()
    inst.assert_serving()


def test_show_help_one_notice(pgcoro_factory):
    """SHOW HELP: one NOTICE 'Console usage' with the commands in its detail, as PgBouncer."""
    inst = console_inst(pgcoro_factory)
    w = console_wire(inst)
    try:
        assert w.query("SHOW HELP") == []
        assert len(w.notices) == 1, w.notices
        n = w.notices[0]
        assert n["S"] == "NOTICE" and n["C"] == "00000" and n["M"] == "Console usage"
        for cmd in ("SHOW HELP|CONFIG|DATABASES", "SHOW PEERS|PEER_POOLS",
                    "SHOW FDS|SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE", "SET key = arg", "RELOAD",
                    "PAUSE [<db>]", "KILL [<db>]", "KILL_CLIENT <client_id>", "SUSPEND",
                    "SHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS", "WAIT_CLOSE [<db>]"):
            assert f"\n\t{cmd}" in n["D"], (cmd, n["D"])
    finally:
        w.close()
