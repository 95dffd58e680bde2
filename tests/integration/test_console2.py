"""The admin console's PgBouncer 1.24-1.26 parts: SHOW SOCKETS / ACTIVE_SOCKETS and the
client states of SHOW CLIENTS, one id sequence for clients and servers; the console as
PgBouncer's admin database and pool "pgbouncer" in DATABASES, POOLS, USERS and the
counters; the client-limit columns and those limits on console logins; SHOW STATS' new
counters (assignments, logins, prepared statements); bare KILL; PgBouncer's error texts;
SHUTDOWN WAIT_FOR_CLIENTS / WAIT_FOR_SERVERS (the unix socket stays open for the console);
SUSPEND / RESUME."""

import os
import signal
import socket

import psycopg2
import pytest
import test_console

from conftest import (APP_PASS, APP_USER, MD5_PASS, MD5_USER, SYNC, PgError, Wire, bind, execute,
                      parse, wait_until)
from test_console import ADMIN, ADMIN_PASS, STATS, STATS_PASS
from test_console import console_inst as inst_with
from test_console import read_reply
from test_console import rows_as_dicts as rows

pytestmark = pytest.mark.pooler_only


def console(inst, user=ADMIN, password=ADMIN_PASS, host=None):
    """A console session to PgBouncer's name of it, "pgbouncer"."""
    return test_console.console(inst, user, password, db="pgbouncer", host=host)


def error_of(conn, command):
    """(SQLSTATE, message) of the error COMMAND gets; the console goes on."""
    with pytest.raises(psycopg2.Error) as e:
        conn.cursor().execute(command)
    return e.value.pgcode, e.value.diag.message_primary


def app(inst, db="postgres", **kw):
    w = Wire.to(inst, **kw)
    w.login(database=db)
    return w


# ---- listings ----------------------------------------------------------------------------

def test_sockets_client_states_and_ids(pgcoro_factory):
    """SHOW SOCKETS lists the console's client (cl_active), a client and its idle server
    (cl_active, sv_idle) with ids from one sequence: client X+1 and its server X+2 after
    the console's X. SHOW CLIENTS: a client without a server is idle, one in a
    transaction active, one queued waiting; ACTIVE_SOCKETS lists the queued client,
    whose query is buffered (pkt_avail)."""
    inst = inst_with(pgcoro_factory, default_pool_size=1)
    c = console(inst)
    a = b = None
    try:
        mine = rows(c, "SOCKETS")
        assert [r["state"] for r in mine] == ["cl_active"], mine
        x = mine[0]["id"]
        a = app(inst)
        a.query("select 1")
        socks = rows(c, "SOCKETS")
        assert sorted((r["type"], r["state"], r["id"]) for r in socks) == [
            ("C", "cl_active", x), ("C", "cl_active", x + 1), ("S", "sv_idle", x + 2)], socks
        server = [r for r in socks if r["type"] == "S"][0]
        assert [r["id"] for r in rows(c, "SERVERS")] == [x + 2]
        assert server["database"] == "postgres" and server["replication"] == "none"

        def state_of(port):
            return [r["state"] for r in rows(c, "CLIENTS") if r["port"] == port]
        a_port = a.sock.getsockname()[1]
        assert state_of(a_port) == ["idle"]
        a.query("begin")
        assert state_of(a_port) == ["active"]
        b = app(inst)
        query = Wire.msg("Q", b"select 2\0")
        b.send(query)
        b_port = b.sock.getsockname()[1]
        wait_until(lambda: state_of(b_port) == ["waiting"], "the second client waiting")
        busy = [r for r in rows(c, "ACTIVE_SOCKETS") if r["port"] == b_port]
        assert len(busy) == 1 and busy[0]["state"] == "cl_waiting", busy
        assert busy[0]["pkt_avail"] == len(query), busy
        a.query("commit")
        wait_until(lambda: state_of(b_port) == ["idle"], "the second client served")
    finally:
        c.close()
        for w in (a, b):
            if w:
                w.close()
    inst.assert_serving()


def test_admin_database_pool_users_and_lists(pgcoro_factory):
    """The console is PgBouncer's admin database and pool "pgbouncer": a DATABASES row
    counting the console's sessions (current_client_connections) under
    max_db_client_connections, a POOLS row with them as cl_active; SHOW USERS lists the
    [users] entries (pool_size and reserve_pool_size as PgBouncer prints them), the
    auth_file's users and "pgbouncer", with each user's clients in every pool and on
    the console; LISTS counts the console's database and pool."""
    inst = inst_with(pgcoro_factory, max_db_client_connections=9,
                     max_user_client_connections=7,
                     user_settings={APP_USER: "pool_size=3 max_user_client_connections=5"})
    c = console(inst)
    s = console(inst, STATS, STATS_PASS)
    a1, a2 = app(inst), app(inst, db="bench")
    try:
        dbs = {r["name"]: r for r in rows(c, "DATABASES")}
        admin_db = dbs["pgbouncer"]
        assert admin_db["current_client_connections"] == 2, admin_db
        assert admin_db["max_client_connections"] == 9 and admin_db["pool_mode"] == "statement"
        assert dbs["postgres"]["current_client_connections"] == 1, dbs["postgres"]
        assert dbs["postgres"]["max_client_connections"] == 9
        assert dbs["postgres"]["reserve_pool_size"] == 0
        assert dbs["postgres"]["server_lifetime"] == 3600

        pools = [r for r in rows(c, "POOLS") if r["database"] == "pgbouncer"]
        assert len(pools) == 1 and pools[0]["user"] == "pgbouncer", pools
        assert pools[0]["cl_active"] == 2 and pools[0]["pool_mode"] == "statement", pools

        users = {r["name"]: r for r in rows(s, "USERS")}
        assert {APP_USER, MD5_USER, ADMIN, STATS, "pgbouncer"} <= set(users), users
        me = users[APP_USER]
        assert (me["pool_size"].strip(), me["reserve_pool_size"]) == ("3", ""), me
        assert me["max_user_client_connections"] == 5 and me["current_client_connections"] == 2
        assert users[ADMIN]["current_client_connections"] == 1
        assert users[STATS]["current_client_connections"] == 1
        assert users[MD5_USER]["current_client_connections"] == 0
        assert users[MD5_USER]["max_user_client_connections"] == 7
        assert users[MD5_USER]["pool_size"] == "" and users[MD5_USER]["pool_mode"] is None

        lists = {r["list"]: r["items"] for r in rows(c, "LISTS")}
        assert lists["databases"] == len(inst.databases) + 1, lists
        assert lists["pools"] == len([r for r in rows(c, "POOLS")]), lists
        assert lists["users"] == len(users) and lists["used_clients"] == 4, lists
        for what in ("PEERS", "PEER_POOLS", "DNS_HOSTS", "DNS_ZONES"):
            assert rows(c, what) == [], what
        mem = {r["name"]: r for r in rows(c, "MEM")}
        assert mem["client_cache"]["used"] == 4 and mem["client_cache"]["size"] > 0, mem
    finally:
        for x in (c, s, a1, a2):
            x.close()
    inst.assert_serving()


def test_stats_counters(pgcoro_factory):
    """SHOW STATS / STATS_TOTALS / TOTALS count server assignments and logins (session
    mode: one each per session), and the console as database "pgbouncer": its logins and
    each command as one query and one transaction, the SHOW that reads them included."""
    inst = inst_with(pgcoro_factory, pool_mode="session")
    for _ in range(3):
        w = app(inst)
        w.query("select 1")
        w.close()
    c = console(inst)
    try:
        stats = {r["database"]: r for r in rows(c, "STATS")}
        pg = stats["postgres"]
        assert pg["total_server_assignment_count"] == 3, pg
        assert pg["total_client_login_count"] == 3 and pg["total_query_count"] == 3, pg
        mine = stats["pgbouncer"]
        assert mine["total_query_count"] == 1, mine     # this SHOW
        assert mine["total_client_login_count"] == 1 and mine["total_xact_count"] == 1, mine
        totals = {r["database"]: r for r in rows(c, "STATS_TOTALS")}
        assert totals["postgres"]["server_assignment_count"] == 3
        assert totals["pgbouncer"]["xact_count"] == 2
        allsum = {r["name"]: r["value"] for r in rows(c, "TOTALS")}
        assert allsum["total_client_login_count"] == 4, allsum
        assert allsum["total_query_count"] == 3 + 3, allsum
        assert allsum["total_server_assignment_count"] == 3, allsum
    finally:
        c.close()


def test_prepared_statement_counters(pgcoro_factory):
    """total_client_parse_count counts the clients' named Parses, total_server_parse_count
    the Parses of those statements sent to servers (once per server and statement), and
    total_bind_count the Binds that name one."""
    inst = inst_with(pgcoro_factory, default_pool_size=1, max_prepared_statements=10)
    a, b = app(inst), app(inst)
    try:
        for w, name in ((a, "s1"), (b, "other")):
            w.send(parse(name, "select 7") + bind(name) + execute() + SYNC)
            assert read_reply(w) == [["7"]]
        a.send(bind("s1") + execute() + SYNC)
        assert read_reply(a) == [["7"]]
        c = console(inst)
        try:
            st = [r for r in rows(c, "STATS") if r["database"] == "postgres"][0]
        finally:
            c.close()
        assert st["total_client_parse_count"] == 2, st
        assert st["total_server_parse_count"] == 1, st   # one server, one statement
        assert st["total_bind_count"] == 3, st
    finally:
        a.close()
        b.close()


def test_client_limits_on_the_console(pgcoro_factory):
    """max_db_client_connections counts the console's sessions (PgBouncer's admin
    database) and max_user_client_connections a user's sessions there and in the pools;
    users in admin_users are not limited on the console."""
    inst = inst_with(pgcoro_factory, max_db_client_connections=2,
                     user_settings={STATS: "max_user_client_connections=1"})
    s1 = console(inst, STATS, STATS_PASS)
    held = []
    try:
        with pytest.raises(psycopg2.OperationalError) as e:
            held.append(console(inst, STATS, STATS_PASS))
        assert "client connections exceeded (max_user_client_connections)" in str(e.value)
        held.append(console(inst))                       # admin: 2 sessions, under the limit
        held.append(console(inst))                       # admin: not limited
        with pytest.raises(psycopg2.OperationalError) as e:
            held.append(console(inst, MD5_USER, MD5_PASS))
        assert "not allowed" in str(e.value)             # not a console user at all
        dbs = {r["name"]: r for r in rows(held[0], "DATABASES")}
        assert dbs["pgbouncer"]["current_client_connections"] == 3
        assert dbs["pgbouncer"]["max_client_connections"] == 2
        s1.close()
        held.pop().close()
        wait_until(lambda: {r["name"]: r for r in rows(held[0], "DATABASES")}["pgbouncer"]
                   ["current_client_connections"] == 1, "two console sessions gone")
        held.append(console(inst, STATS, STATS_PASS))    # room again: 2 sessions before it
        with pytest.raises(psycopg2.OperationalError) as e:
            held.append(console(inst, STATS, STATS_PASS))
        assert "client connections exceeded (max_" in str(e.value)
    finally:
        s1.close()
        for c in held:
            c.close()
    inst.assert_serving()


# ---- commands and their errors -----------------------------------------------------------

def test_kill_all_and_error_texts(pgcoro_factory):
    """Bare KILL closes every pool's clients (57P01) and pauses everything until RESUME;
    the commands' errors are PgBouncer's texts (08P01; RELOAD's F0000)."""
    inst = inst_with(pgcoro_factory)
    c = console(inst)
    a, b = app(inst), app(inst, db="bench")
    try:
        c.cursor().execute("KILL")
        for w in (a, b):
            assert w.expect_error()["C"] == "57P01"
        assert [r["database"] for r in rows(c, "CLIENTS")] == ["pgbouncer"]
        assert {r["key"]: r["value"] for r in rows(c, "STATE")}["paused"] == "yes"
        for command, text in (("KILL", "already suspended/paused"),
                              ("PAUSE postgres", "already suspended/paused"),
                              ("SUSPEND", "already suspended/paused")):
            assert error_of(c, command) == ("08P01", text), command
        c.cursor().execute("RESUME")
        inst.assert_serving()
        for command, text in (
                ("RESUME", "pooler is not paused/suspended"),
                ("RESUME postgres", "database postgres is not paused"),
                ("RESUME nosuch", "no such database: nosuch"),
                ("KILL pgbouncer", "cannot kill admin db: pgbouncer"),
                ("PAUSE pgcoro", "cannot pause admin db: pgcoro"),
                ("RECONNECT pgbouncer", "cannot reconnect admin db: pgbouncer"),
                ("WAIT_CLOSE pgbouncer", "cannot wait in admin db: pgbouncer"),
                ("DISABLE", "a database is required"),
                ("ENABLE", "a database is required"),
                ("DISABLE pgbouncer", "cannot disable admin db: pgbouncer"),
                ("KILL_CLIENT x1", "invalid client pointer supplied"),
                ("SHUTDOWN NOW", "invalid command 'SHUTDOWN NOW', use SHOW HELP;"),
                ("RELOAD now", "invalid command 'RELOAD now', use SHOW HELP;"),
                ("SUSPEND now", "invalid command 'SUSPEND now', use SHOW HELP;")):
            assert error_of(c, command) == ("08P01", text), command
        c.cursor().execute("PAUSE bench")
        assert error_of(c, "SUSPEND") == ("08P01", "cannot suspend with paused databases")
        c.cursor().execute("RESUME bench")
        s = console(inst, STATS, STATS_PASS)
        assert error_of(s, "FROB") == ("08P01", "invalid command 'FROB', use SHOW HELP;")
        assert error_of(s, "KILL") == ("08P01", "admin access needed")
        s.close()
        with open(inst.config_path, "a") as f:
            f.write("\n[pgcoro]\ndefault_pool_size = many\n")
        assert error_of(c, "RELOAD") == ("F0000", "RELOAD failed, see logs for additional details")
    finally:
        c.close()
        a.close()
        b.close()
    inst.assert_serving()


# ---- SHUTDOWN WAIT_FOR_CLIENTS / WAIT_FOR_SERVERS, SHUTDOWN ------------------------------

def refused_over_tcp(inst):
    with pytest.raises(OSError):
        socket.create_connection((inst.host, inst.port), timeout=5).close()
    return True


def test_shutdown_wait_for_clients(pgcoro_factory):
    """SHUTDOWN WAIT_FOR_CLIENTS with a client connected: TCP is closed at once; the unix
    socket stays open for the console (its RESUME says the pooler is shutting down) and
    refuses other logins (57P03); the client is served as before; SIGUSR2 is ignored;
    once the client and the console sessions leave, pgcoro exits 0 and the socket file
    is gone."""
    inst = inst_with(pgcoro_factory)
    a = app(inst)
    a.query("select 1")
    c = console(inst)
    u = None
    try:
        cur = c.cursor()
        cur.execute("SHUTDOWN WAIT_FOR_CLIENTS")
        assert cur.statusmessage == "SHUTDOWN"
        refused_over_tcp(inst)
        u = console(inst, host=inst.sockdir)
        assert rows(u, "VERSION")[0]["version"].startswith("pgcoro ")
        assert error_of(u, "RESUME") == ("08P01", "pooler is shutting down")
        with Wire.to(inst, unix_dir=inst.sockdir) as late:
            with pytest.raises(PgError) as e:
                late.login()
            assert e.value.sqlstate == "57P03", e.value.fields
            assert e.value.fields["M"] == "pooler is shutting down"
        assert a.query("begin; select 2; commit") == [["2"]]
        inst.proc.send_signal(signal.SIGUSR2)
        wait_until(lambda: "got SIGUSR2 while shutting down, ignoring" in inst.log_text(),
                   "SIGUSR2 ignored")
        assert a.query("select 3") == [["3"]]
        a.close()
        assert inst.alive()                      # the console sessions are clients too
    finally:
        a.close()
        c.close()
        if u:
            u.close()
    inst.proc.wait(timeout=60)
    assert inst.proc.returncode == 0, inst.log_tail()
    assert not os.path.exists(os.path.join(inst.sockdir, f".s.PGSQL.{inst.port}"))


def test_shutdown_wait_for_servers(pgcoro_factory):
    """SHUTDOWN WAIT_FOR_SERVERS: a client without a server is told at once (57P01); one
    inside a transaction commits, then is told and closed; pgcoro then exits 0 although
    a console session is still open (the console holds no server)."""
    inst = inst_with(pgcoro_factory)
    busy, idle = app(inst), app(inst)
    busy.query("begin")
    c = console(inst)
    try:
        c.cursor().execute("SHUTDOWN WAIT_FOR_SERVERS")
        assert idle.expect_error()["C"] == "57P01"
        refused_over_tcp(inst)
        assert rows(c, "STATE") is not None       # the console still answers
        assert busy.query("select 4") == [["4"]]
        assert inst.alive()
        busy.query("commit")
        assert busy.expect_error()["C"] == "57P01"
        inst.proc.wait(timeout=60)
    finally:
        c.close()
        busy.close()
        idle.close()
    assert inst.proc.returncode == 0, inst.log_tail()


def test_shutdown_is_immediate(pgcoro_factory):
    """Bare SHUTDOWN (answered first) exits now, an open transaction notwithstanding (no
    shutdown_timeout: an orderly stop would wait for it for ever)."""
    inst = inst_with(pgcoro_factory, shutdown_timeout=0)
    busy = app(inst)
    busy.query("begin")
    c = console(inst)
    try:
        cur = c.cursor()
        cur.execute("SHUTDOWN")
        assert cur.statusmessage == "SHUTDOWN"
        inst.proc.wait(timeout=30)
        assert inst.proc.returncode == 0, inst.log_tail()
    finally:
        c.close()
        busy.close()


# ---- SUSPEND / RESUME --------------------------------------------------------------------

def test_suspend_resume(pgcoro_factory):
    """SUSPEND answers once no server is in use (an open transaction is waited for), then
    no server is handed out and no connection accepted: a client's query waits, a new
    connection gets no answer; RESUME lets both go on. SHOW STATE says suspended. A
    console that leaves while suspended resumes, as PgBouncer's."""
    inst = inst_with(pgcoro_factory, default_pool_size=2)
    a, busy = app(inst), app(inst)
    busy.query("begin")
    w = Wire.to(inst)
    w.login(user=ADMIN, password=ADMIN_PASS, database="pgbouncer")
    late = None
    try:
        w.send(Wire.msg("Q", b"SUSPEND\0"))
        w.sock.settimeout(1.0)
        with pytest.raises(OSError):             # not while the transaction is open
            w.read_msg()
        w.sock.settimeout(20.0)
        busy.query("commit")
        assert w.read_msg() == ("C", b"SUSPEND\0")
        assert w.read_msg()[0] == "Z"
        assert dict(w.query("SHOW STATE"))["suspended"] == "yes"
        a.send(Wire.msg("Q", b"select 5\0"))
        late = Wire.to(inst)                     # the kernel completes the handshake
        late.send_startup(APP_USER, "postgres")
        late.sock.settimeout(1.0)
        with pytest.raises(OSError):
            late.read_msg()
        late.sock.settimeout(20.0)
        pools = [r for r in w.query("SHOW POOLS") if r[0] == "postgres"]
        assert pools[0][3] == "1", pools          # cl_waiting: a's query
        w.query("RESUME")
        assert read_reply(a) == [["5"]]
        late.authenticate(APP_USER, APP_PASS)
        assert late.query("select 7") == [["7"]]
        w.query("SUSPEND")
        w.close()                                # the console leaves: RESUME
        wait_until(lambda: "the console left while suspended: RESUME" in inst.log_text(),
                   "resumed when the console left")
        assert late.query("select 8") == [["8"]]
    finally:
        for x in (a, busy, w, late):
            if x:
                x.close()
    inst.assert_serving()
