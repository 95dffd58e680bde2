"""Replication connections (replication=true|database) through pgcoro, as PgBouncer 1.23+:
each gets a server connection of its own, made with the same replication parameter and
its startup settings, never pooled and closed when it leaves, with session semantics in
any pool mode; it counts against its pool's size (an idle server is closed to make room).
pg_basebackup, pg_receivewal and pg_recvlogical (each bounded by an end position),
psycopg2's logical replication cursor, and what PostgreSQL or pgcoro's auth_hba_file
refuses."""

import hashlib
import os
import re
import select
import shutil
import subprocess
import time

import psycopg2
import psycopg2.extras
import pytest

from conftest import (APP_PASS, APP_USER, MD5_PASS, MD5_USER, REPL_PASS, REPL_USER, PgError,
                      Wire, clean_env, client_bin, console_show, pg_rows, wait_until)

ADMIN, ADMIN_PASS = "admin", "adminpw"
DB = "pooldb"  # owned by app: it may create tables there


def start(pgcoro_factory, pg, **settings):
    """pgcoro with user repl and an admin; the database entry "replication" is what the
    physical replication tools ask for (PostgreSQL's own tools send dbname=replication,
    as in PgBouncer's own tests)."""
    base = {"admin_users": ADMIN}
    base.update(settings)
    return pgcoro_factory(settings=base, users={REPL_USER: REPL_PASS, ADMIN: ADMIN_PASS},
                          databases={"replication": f"host=127.0.0.1 port={pg.port} "
                                                    "dbname=postgres"})


def conninfo(inst, db=DB, user=REPL_USER, **extra):
    parts = {"host": inst.host, "port": inst.port, "user": user, "dbname": inst.db(db),
             "connect_timeout": 30}
    parts.update(extra)
    return " ".join(f"{k}={v}" for k, v in parts.items())


def tool(pg, name, *args, timeout=120, password=REPL_PASS):
    """Runs PostgreSQL's client program NAME (bounded); the CompletedProcess."""
    return subprocess.run([client_bin(pg.bindir, name), *args], capture_output=True,
                          text=True, timeout=timeout, env=clean_env(PGPASSWORD=password))


def tool_to_endpos(pg, name, *args):
    """Runs NAME with --endpos=(a flushed position) --no-loop and ARGS: it stops once it
    receives WAL past that position, so WAL is written (and flushed) until it does; killed
    by its PID after 60 s. The CompletedProcess."""
    endpos = flushed_lsn(pg)
    argv = [client_bin(pg.bindir, name), *args, f"--endpos={endpos}", "--no-loop"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=clean_env(PGPASSWORD=REPL_PASS))
    try:
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            flushed_lsn(pg)
            time.sleep(0.2)
        out, err = p.communicate(timeout=5)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def ok(r):
    assert r.returncode == 0, f"{r.args[0]} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def console_rows(inst, what):
    return console_show(inst, what, ADMIN, ADMIN_PASS)


def servers_of(inst, user):
    return [s for s in console_rows(inst, "SERVERS") if s["user"] == user]


def flushed_lsn(pg):
    """A WAL position already flushed, after every commit so far (the tests' PostgreSQL
    commits asynchronously: a synchronous commit of our own flushes them)."""
    c = pg.super_connect()
    try:
        cur = c.cursor()
        cur.execute("SET synchronous_commit = on")
        cur.execute("SELECT pg_logical_emit_message(true, 'pgcoro', 'flush')")
        cur.execute("SELECT pg_current_wal_flush_lsn()")
        return cur.fetchone()[0]
    finally:
        c.close()


def walsenders(pg):
    return [r[0] for r in pg_rows(pg, "SELECT pid FROM pg_stat_activity "
                                      "WHERE backend_type = 'walsender'")]


def drop_slot(pg, name):
    """Drops slot NAME if it is there (waiting, bounded, for its walsender to let it go)."""
    wait_until(lambda: not pg_rows(pg, "SELECT 1 FROM pg_replication_slots WHERE "
                                       "slot_name = %s AND active", (name,)),
               f"slot {name} released", timeout=30)
    pg_rows(pg, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s", (name,))


def logical(inst, **kw):
    return psycopg2.connect(conninfo(inst, **kw), password=REPL_PASS,
                            connection_factory=psycopg2.extras.LogicalReplicationConnection)


# ---- the replication tools ------------------------------------------------------------


def test_pg_basebackup_through_transaction_pool(pgcoro_factory, pg, tmp_path):
    # two replication connections at once (the backup and its WAL stream, -X stream) in a
    # transaction pool; every byte checked against the backup manifest
    inst = start(pgcoro_factory, pg, pool_mode="transaction")
    dest = tmp_path / "backup"
    try:
        ok(tool(pg, "pg_basebackup", "-d", conninfo(inst, db="replication"),
                "--checkpoint=fast", "-X", "stream", "--no-sync", "-D", str(dest)))
        assert (dest / "PG_VERSION").read_text().strip() == "15"
        ok(tool(pg, "pg_verifybackup", str(dest)))
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    if not inst.direct:  # its servers are gone with it, not pooled
        wait_until(lambda: not servers_of(inst, REPL_USER), "replication servers closed")
    inst.assert_serving()


def test_pg_basebackup_with_small_socket_buffers(pgcoro_factory, pg, tmp_path):
    # PgBouncer's suite runs with tcp_socket_buffer = 4096: a 64 kB write to a socket with
    # an 8 kB send buffer went out as one segment the client acknowledged only at its
    # delayed-ACK timer, so a base backup (~70 MB) crawled at ~1.6 MB/s (40 s); in writes
    # of half the buffer it takes seconds. The 30 s bound is the test.
    inst = start(pgcoro_factory, pg, pool_mode="statement", tcp_socket_buffer=4096)
    dest = tmp_path / "backup"
    try:
        # -X fetch: one process (-X stream forks a WAL receiver a timeout would leave)
        r = subprocess.run([os.path.join(pg.bindir, "pg_basebackup"), "-d",
                            conninfo(inst, db="replication"), "--checkpoint=fast",
                            "-X", "fetch", "--no-sync", "-D", str(dest)],
                           capture_output=True, text=True, timeout=30,
                           env=clean_env(PGPASSWORD=REPL_PASS))
        ok(r)
        assert (dest / "PG_VERSION").read_text().strip() == "15"
        ok(tool(pg, "pg_verifybackup", str(dest)))
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    if not inst.direct:
        wait_until(lambda: not servers_of(inst, REPL_USER), "replication servers closed")


def test_pg_receivewal_to_end_position(pgcoro_factory, pg, tmp_path):
    # a physical slot created, used and dropped through pgcoro (replication commands)
    inst = start(pgcoro_factory, pg, pool_mode="transaction")
    slot, dest = "pgcoro_receivewal", tmp_path / "wal"
    dest.mkdir()
    try:
        ok(tool(pg, "pg_receivewal", "-d", conninfo(inst, db="replication"), "--create-slot",
                "-S", slot))
        ok(tool_to_endpos(pg, "pg_receivewal", "-d", conninfo(inst, db="replication"), "-S",
                          slot, "-D", str(dest)))
        segs = os.listdir(dest)
        assert segs and all(len(s.split(".")[0]) == 24 for s in segs), segs
        ok(tool(pg, "pg_receivewal", "-d", conninfo(inst, db="replication"), "--drop-slot",
                "-S", slot))
        assert not pg_rows(pg, "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                           (slot,))
    finally:
        drop_slot(pg, slot)
    inst.assert_serving()


def test_pg_recvlogical_to_end_position(pgcoro_factory, pg):
    inst = start(pgcoro_factory, pg, pool_mode="transaction")
    slot = "pgcoro_recvlogical"
    c = inst.connect(db=DB)
    c.autocommit = True
    try:
        c.cursor().execute("CREATE TABLE IF NOT EXISTS repl_decoded (a int)")
        ok(tool(pg, "pg_recvlogical", "-d", conninfo(inst), "-S", slot, "--create-slot",
                "-P", "test_decoding"))
        c.cursor().execute("INSERT INTO repl_decoded VALUES (4242)")
        r = ok(tool_to_endpos(pg, "pg_recvlogical", "-d", conninfo(inst), "-S", slot,
                              "--start", "-f", "-"))
        assert "table public.repl_decoded: INSERT: a[integer]:4242" in r.stdout, r.stdout
        ok(tool(pg, "pg_recvlogical", "-d", conninfo(inst), "-S", slot, "--drop-slot"))
    finally:
        c.cursor().execute("DROP TABLE IF EXISTS repl_decoded")
        c.close()
        drop_slot(pg, slot)
    inst.assert_serving()


# ---- session semantics ----------------------------------------------------------------


def test_logical_connection_keeps_its_session_in_transaction_pool(pgcoro_factory, pg):
    # its startup settings reach its walsender, SET stays, every statement on the same
    # backend; then a logical stream through psycopg2's replication cursor
    inst = start(pgcoro_factory, pg, pool_mode="transaction")
    slot = "pgcoro_psycopg2"
    sysid = str(pg_rows(pg, "SELECT system_identifier FROM pg_control_system()")[0][0])
    normal = inst.connect(db=DB)
    normal.autocommit = True
    conn = logical(inst, application_name="abc",
                   options="'-c enable_seqscan=off -c work_mem=5MB'")
    try:
        ncur = normal.cursor()
        ncur.execute("CREATE TABLE IF NOT EXISTS repl_stream (a int)")
        cur = conn.cursor()
        cur.execute("IDENTIFY_SYSTEM")
        assert cur.fetchone()[0] == sysid
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
        assert pg_rows(pg, "SELECT backend_type FROM pg_stat_activity WHERE pid = %s",
                       (pid,)) == [("walsender",)]
        for sql, want in (("SHOW application_name", "abc"), ("SHOW enable_seqscan", "off"),
                          ("SHOW work_mem", "5MB")):
            cur.execute(sql)
            assert cur.fetchone()[0] == want, sql
        cur.execute("SET work_mem = '7MB'")
        cur.execute("BEGIN")
        cur.execute("SELECT pg_backend_pid(), current_setting('work_mem')")
        assert cur.fetchone() == (pid, "7MB")
        cur.execute("COMMIT")
        # normal clients of the same pool meanwhile: never its server
        for _ in range(3):
            ncur.execute("SELECT backend_type FROM pg_stat_activity "
                         "WHERE pid = pg_backend_pid()")
            assert ncur.fetchone()[0] == "client backend"
        cur.create_replication_slot(slot, output_plugin="test_decoding")
        cur.start_replication(slot_name=slot, decode=True)
        ncur.execute("INSERT INTO repl_stream VALUES (77)")
        seen, deadline = [], time.monotonic() + 30
        while not any("INSERT: a[integer]:77" in m for m in seen):
            assert time.monotonic() < deadline, seen
            msg = cur.read_message()
            if msg is None:
                select.select([cur], [], [], 1)
            else:
                seen.append(msg.payload)
                msg.cursor.send_feedback(flush_lsn=msg.data_start)
        assert any(m.startswith("BEGIN") for m in seen), seen
    finally:
        conn.close()
        drop_slot(pg, slot)
        normal.cursor().execute("DROP TABLE IF EXISTS repl_stream")
        normal.close()
    inst.assert_serving()


def test_physical_connection_in_statement_pool(pgcoro_factory, pg):
    # replication commands and their errors pass as PostgreSQL sends them; the session
    # goes on after an error, with the settings it connected with
    inst = start(pgcoro_factory, pg, pool_mode="statement")
    with Wire.to(inst) as w:
        w.login(REPL_USER, REPL_PASS, inst.db("replication"), replication="true",
                application_name="abc",
                options="-c wal_sender_timeout=42s")
        assert w.params.get("application_name") == "abc", w.params
        rows = w.query("IDENTIFY_SYSTEM")
        assert len(rows) == 1 and len(rows[0]) == 4, rows
        with pytest.raises(PgError) as e:
            w.query("SELECT 1")
        assert e.value.sqlstate == "0A000", e.value.fields
        assert "WAL sender for physical replication" in e.value.fields["M"], e.value.fields
        assert w.query("SHOW wal_sender_timeout") == [["42s"]]
        assert w.query("SHOW application_name") == [["abc"]]
        assert w.query("IDENTIFY_SYSTEM") == rows
        w.terminate()
    with Wire.to(inst) as w:  # a normal client of the statement pool (no BEGIN there)
        w.login(APP_USER, APP_PASS, inst.db(DB))
        assert w.query("SELECT 40 + 2") == [["42"]]
        w.terminate()


def test_show_clients_and_servers_name_the_replication_kind(pgcoro_factory, pg):
    # SHOW CLIENTS and SHOW SERVERS say "physical" or "logical" in their replication
    # column for a replication connection and its own server, "none" for the others
    inst = start(pgcoro_factory, pg, pool_mode="session")

    def kinds(what):
        return sorted(r["replication"] for r in console_rows(inst, what)
                      if r["user"] == REPL_USER)

    with Wire.to(inst) as w:
        w.login(REPL_USER, REPL_PASS, inst.db("replication"), replication="true")
        assert len(w.query("IDENTIFY_SYSTEM")) == 1
        assert kinds("CLIENTS") == ["physical"]
        assert kinds("SERVERS") == ["physical"]
        w.terminate()
    normal = Wire.to(inst)
    normal.login(REPL_USER, REPL_PASS, inst.db(DB))
    assert normal.query("SELECT 1") == [["1"]]
    conn = logical(inst)
    try:
        cur = conn.cursor()
        cur.execute("IDENTIFY_SYSTEM")
        cur.fetchone()
        assert kinds("CLIENTS") == ["logical", "none"]
        assert kinds("SERVERS") == ["logical", "none"]
    finally:
        conn.close()
        normal.terminate()
    inst.assert_serving()


def test_client_replies_pass_while_wal_waits_for_it(pgcoro_factory, pg):
    # a walsender far ahead (48 MB of WAL behind a slot) and a client that has let every
    # buffer on the way fill: its CopyDone (as its standby replies) reaches the walsender
    # while the WAL waits for the client, not once all the backlog has passed
    # (wal_sender_timeout would end a real stream)
    inst = start(pgcoro_factory, pg)
    slot, backlog = "pgcoro_backlog", 48 << 20
    pg_rows(pg, "SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
    try:
        start_lsn = pg_rows(pg, "SELECT restart_lsn FROM pg_replication_slots "
                                "WHERE slot_name = %s", (slot,))[0][0]
        pg_rows(pg, "SELECT pg_logical_emit_message(false, 'pgcoro', repeat('x', 1 << 20)) "
                    "FROM generate_series(1, %s)", (backlog >> 20,))
        flushed_lsn(pg)
        with Wire.to(inst, timeout=60) as w:
            w.login(REPL_USER, REPL_PASS, inst.db("replication"), replication="true")
            w.send(Wire.msg("Q", f"START_REPLICATION SLOT {slot} PHYSICAL {start_lsn}"
                                 .encode() + b"\0"))
            assert w.read_msg()[0] == "W"
            time.sleep(1)  # not reading: every buffer on the way fills
            w.send(Wire.msg("c"))
            after = 0
            while True:
                t, payload = w.read_msg()
                if t == "c":
                    break
                assert t == "d", (t, payload[:100])
                after += len(payload)
            assert after < backlog // 2, f"{after} bytes of WAL came before the CopyDone's answer"
            while w.read_msg()[0] != "Z":
                pass
            assert len(w.query("IDENTIFY_SYSTEM")) == 1
            w.terminate()
    finally:
        drop_slot(pg, slot)


@pytest.mark.pooler_only
def test_own_server_counts_against_pool_size_and_is_never_reused(pgcoro_factory, pg):
    # pool_size 1: the replication client closes the idle server to make room; while it is
    # connected a normal client of the pool finds none; when it leaves its server is
    # closed, and the next normal client gets a new (normal) one
    inst = start(pgcoro_factory, pg, pool_mode="transaction", default_pool_size=1,
                 query_wait_timeout=2)
    normal = Wire.to(inst)
    normal.login(REPL_USER, REPL_PASS, inst.db(DB))
    idle_pid = int(normal.query("SELECT pg_backend_pid()")[0][0])
    conn = logical(inst)
    try:
        cur = conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        wal_pid = cur.fetchone()[0]
        assert wal_pid in walsenders(pg)
        assert "evicted" in inst.log_text()
        wait_until(lambda: not pg_rows(pg, "SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                                       (idle_pid,)), "the idle server closed")
        [pool] = [p for p in console_rows(inst, "POOLS") if p["user"] == REPL_USER]
        # one row for the pool: its servers are the replication client's (cl_active also
        # counts the idle normal client, as PgBouncer's)
        assert (pool["cl_active"], pool["sv_active"], pool["sv_idle"]) == (2, 1, 0), pool
        normal.send(Wire.msg("Q", b"SELECT 1\0"))
        err = normal.expect_error()
        assert err.get("C") == "57014" and "query_wait_timeout" in err["M"], err
    finally:
        normal.close()
        conn.close()
    wait_until(lambda: wal_pid not in walsenders(pg), "its walsender gone")
    wait_until(lambda: not servers_of(inst, REPL_USER), "its server closed, not pooled")
    again = inst.connect(user=REPL_USER, password=REPL_PASS, db=DB)
    try:
        cur = again.cursor()
        cur.execute("SELECT backend_type, pg_backend_pid() FROM pg_stat_activity "
                    "WHERE pid = pg_backend_pid()")
        kind, pid = cur.fetchone()
        assert kind == "client backend" and pid != wal_pid
    finally:
        again.close()


@pytest.mark.pooler_only
def test_reconnect_closes_replication_server_at_once(pgcoro_factory, pg):
    inst = start(pgcoro_factory, pg)
    conn = logical(inst)
    try:
        cur = conn.cursor()
        cur.execute("IDENTIFY_SYSTEM")
        admin = psycopg2.connect(host=inst.host, port=inst.port, user=ADMIN,
                                 password=ADMIN_PASS, dbname="pgcoro", connect_timeout=30)
        admin.autocommit = True
        admin.cursor().execute("RECONNECT")
        admin.close()
        with pytest.raises(psycopg2.OperationalError):
            cur.execute("IDENTIFY_SYSTEM")
    finally:
        conn.close()
    wait_until(lambda: not servers_of(inst, REPL_USER), "its server closed")
    inst.assert_serving()


# ---- refusals -------------------------------------------------------------------------


def login_error(inst, user, password, **params):
    with Wire.to(inst) as w:
        w.send_startup(user, inst.db(DB), **params)
        with pytest.raises(PgError) as e:
            w.authenticate(user, password)
        return e.value.fields


@pytest.mark.parametrize("kind", ["database", "true"])
def test_role_without_replication_refused_by_postgres(pgcoro_factory, pg, kind):
    # PostgreSQL's refusal reaches the client, and only it: the pool's normal clients go on.
    # pgcoro says it in PgBouncer's words ("login failed"), PostgreSQL's in the DETAIL.
    inst = start(pgcoro_factory, pg, pool_mode="transaction")
    said = "must be superuser or replication role to start walsender"
    for _ in range(2):
        f = login_error(inst, APP_USER, APP_PASS, replication=kind)
        assert f.get("C") == "42501", f
        if inst.direct:
            assert said in f["M"], f
        else:
            assert (f["M"], f.get("D")) == ("login failed", said), f
        inst.assert_serving(db=DB)
    if not inst.direct:
        wait_until(lambda: inst.log_text().count("closing because: login failed (age=") == 4,
                   "the two servers' and the two clients' closes logged")


def test_invalid_replication_value_refused(pgcoro_factory, pg):
    inst = start(pgcoro_factory, pg)
    f = login_error(inst, REPL_USER, REPL_PASS, replication="maybe")
    assert f.get("C") == "22023", f
    assert f["M"] == 'invalid value for parameter "replication": "maybe"', f
    inst.assert_serving()


def test_replication_false_is_a_normal_connection(pgcoro_factory, pg):
    inst = start(pgcoro_factory, pg, pool_mode="transaction")
    with Wire.to(inst) as w:
        w.login(REPL_USER, REPL_PASS, inst.db(DB), replication="off")
        assert w.query("SELECT backend_type FROM pg_stat_activity "
                       "WHERE pid = pg_backend_pid()") == [["client backend"]]
        w.terminate()


@pytest.mark.pooler_only
def test_console_refuses_replication(pgcoro_factory, pg):
    inst = start(pgcoro_factory, pg)
    with Wire.to(inst) as w:
        w.send_startup(ADMIN, "pgcoro", replication="database")
        with pytest.raises(PgError) as e:
            w.authenticate(ADMIN, ADMIN_PASS)
    assert e.value.sqlstate == "0A000", e.value.fields


@pytest.mark.pooler_only
def test_hba_replication_keyword(pgcoro_factory, pg, tmp_path):
    # as PostgreSQL's pg_hba.conf: a physical replication connection matches only rules
    # naming "replication"; a logical one matches by its database, as a normal one
    rules = tmp_path / "hba.conf"
    rules.write_text("host all all 127.0.0.1/32 scram-sha-256\n")
    inst = start(pgcoro_factory, pg, auth_type="hba", auth_hba_file=str(rules))
    f = login_error(inst, REPL_USER, REPL_PASS, replication="true")
    assert f.get("C") == "28000", f
    assert f["M"] == ('no pg_hba.conf entry for replication connection from host '
                      '"127.0.0.1", user "repl", no encryption'), f
    with Wire.to(inst) as w:
        w.login(REPL_USER, REPL_PASS, inst.db(DB), replication="database")
        assert len(w.query("IDENTIFY_SYSTEM")) == 1
        w.terminate()

    rules2 = tmp_path / "hba2.conf"
    rules2.write_text("host replication repl 127.0.0.1/32 scram-sha-256\n"
                      "host all all 127.0.0.1/32 reject\n")
    inst2 = start(pgcoro_factory, pg, auth_type="hba", auth_hba_file=str(rules2))
    with Wire.to(inst2) as w:
        w.login(REPL_USER, REPL_PASS, inst2.db("replication"), replication="true")
        assert len(w.query("IDENTIFY_SYSTEM")) == 1
        w.terminate()
    f = login_error(inst2, REPL_USER, REPL_PASS, replication="database")
    assert f.get("C") == "28000" and "rejects" in f["M"], f


# ---- the server login with the auth_file's secret -------------------------------------


@pytest.mark.pooler_only
def test_logical_replication_with_md5_secret(pgcoro_factory, pg):
    # md5user (given REPLICATION here) has its md5 secret in the auth_file, no password
    # anywhere: its replication connection's server logs in with that secret (pgcoro's own
    # login, as a normal server's), with replication=database, its application_name and
    # its -c settings. Before, such a server always went to libpq, which had no password.
    secret = "md5" + hashlib.md5((MD5_PASS + MD5_USER).encode()).hexdigest()
    pg.psql_super(f"ALTER ROLE {MD5_USER} REPLICATION")
    try:
        inst = pgcoro_factory(settings={"auth_type": "md5", "pool_mode": "transaction"},
                              users={MD5_USER: secret})
        conn = psycopg2.connect(conninfo(inst, user=MD5_USER, application_name="md5repl",
                                         options="'-c work_mem=5MB'"),
                                password=MD5_PASS,
                                connection_factory=psycopg2.extras.LogicalReplicationConnection)
        try:
            cur = conn.cursor()
            cur.execute("IDENTIFY_SYSTEM")
            sysid = pg_rows(pg, "SELECT system_identifier FROM pg_control_system()")[0][0]
            assert cur.fetchone()[0] == str(sysid)
            cur.execute("SELECT pg_backend_pid(), current_user, current_setting('work_mem'), "
                        "current_setting('application_name')")
            pid, user, work_mem, app = cur.fetchone()
            assert (user, work_mem, app) == (MD5_USER, "5MB", "md5repl")
            assert pg_rows(pg, "SELECT backend_type FROM pg_stat_activity WHERE pid = %s",
                           (pid,)) == [("walsender",)]
        finally:
            conn.close()
        inst.assert_serving(db=DB)
    finally:
        pg.psql_super(f"ALTER ROLE {MD5_USER} NOREPLICATION")


@pytest.mark.pooler_only
def test_physical_replication_with_scram_verifier(pgcoro_factory, pg):
    # repl's SCRAM verifier (copied from pg_authid) in the auth_file: the client's SCRAM
    # login leaves its ClientKey, and its physical replication server proves it
    verifier = pg_rows(pg, "SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                       (REPL_USER,))[0][0]
    inst = pgcoro_factory(settings={"pool_mode": "statement"}, users={REPL_USER: verifier},
                          databases={"replication": f"host=127.0.0.1 port={pg.port} "
                                                    "dbname=postgres"})
    with Wire.to(inst) as w:
        w.login(REPL_USER, REPL_PASS, "replication", replication="true",
                options="-c wal_sender_timeout=42s")
        assert len(w.query("IDENTIFY_SYSTEM")) == 1
        assert w.query("SHOW wal_sender_timeout") == [["42s"]]
        w.terminate()
