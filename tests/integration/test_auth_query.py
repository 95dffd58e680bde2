"""auth_user / auth_query / auth_dbname (PgBouncer's): a user who is not in auth_file is
looked up in PostgreSQL 15 by running auth_query as auth_user on a server of auth_user's
pool, at every login, and logs in with what it finds.

The databases the looked-up users log in to go through the unix socket, where the
cluster trusts everyone: logging in to PostgreSQL with an md5 or SCRAM secret (pass-through)
is another module's; these tests are about the client's side and the look-up. The cache's
bound is unit-tested (tests/unit/test_authcache.c)."""

import socket
import struct
import subprocess

import psycopg2
import pytest

from conftest import (APP_PASS, APP_USER, ASAN_OPTIONS, UBSAN_OPTIONS, PgError, Wire, clean_env,
                      current_user, wait_until)

pytestmark = pytest.mark.pooler_only

DEFAULT_QUERY = ("SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword "
                 "END FROM pg_authid WHERE rolname=$1 AND rolcanlogin")


@pytest.fixture(scope="module")
def roles(pg):
    """Roles the tests look up (SCRAM and md5 secrets), a database with a table of plain
    passwords, and a schema whose now() would make an expired password look valid."""
    pg.psql_super("""
        SET password_encryption = 'scram-sha-256';
        CREATE ROLE aq_scram LOGIN PASSWORD 'scrampw';
        CREATE ROLE aq_expired LOGIN PASSWORD 'expiredpw' VALID UNTIL '2000-01-01';
        CREATE ROLE "aq_o'neil" LOGIN PASSWORD 'quotepw';
        CREATE ROLE aq_nopw LOGIN SUPERUSER;
        CREATE ROLE aq_auth_md5 LOGIN SUPERUSER;
        ALTER ROLE aq_auth_md5 SET password_encryption = 'md5';
        SET password_encryption = 'md5';
        CREATE ROLE aq_md5 LOGIN PASSWORD 'md5pw';
        CREATE DATABASE aqdb;
        CREATE SCHEMA evil;
        CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql
            AS $$ SELECT '1990-01-01'::timestamptz $$;
        GRANT USAGE ON SCHEMA evil TO PUBLIC;
    """)
    pg.psql_super("""
        CREATE TABLE plainpw (u text, p text);
        INSERT INTO plainpw VALUES ('aq_scram', 'tablepw');
    """, db="aqdb")
    yield
    pg.psql_super("""
        DROP DATABASE aqdb;
        DROP SCHEMA evil CASCADE;
        DROP ROLE aq_scram, aq_expired, "aq_o'neil", aq_md5, aq_nopw, aq_auth_md5;
    """)


def dbs(pg, **more):
    """[databases] entries through the unix socket (trusted by the cluster)."""
    d = {"local": f"host={pg.sockdir} port={pg.port} dbname=postgres",
         "localaq": f"host={pg.sockdir} port={pg.port} dbname=aqdb"}
    d.update(more)
    return d


def start(pgcoro_factory, pg, settings=None, databases=None, **kw):
    s = {"auth_user": "postgres", "auth_type": "scram-sha-256"}
    s.update(settings or {})
    # the auth_user logs in to PostgreSQL with its auth_file password (trusted here)
    return pgcoro_factory(settings=s, databases=dbs(pg, **(databases or {})),
                          users={"postgres": "superpw"}, **kw)


def login(inst, user, password, db="local", **kw):
    return current_user(inst, user, password, db, **kw)


def refused(inst, user, password, db="local", **kw):
    with pytest.raises(psycopg2.OperationalError) as e:
        login(inst, user, password, db, **kw)
    return str(e.value)


def test_default_query_scram_and_md5(pgcoro_factory, pg, roles):
    """The default query: a SCRAM verifier and an md5 secret from pg_authid check the
    client's password (SCRAM, and md5 asking for SCRAM when the secret is a verifier)."""
    inst = start(pgcoro_factory, pg)
    assert login(inst, "aq_scram", "scrampw") == "aq_scram"
    assert "SASL authentication failed" in refused(inst, "aq_scram", "wrong")
    inst2 = start(pgcoro_factory, pg, {"auth_type": "md5"})
    assert login(inst2, "aq_md5", "md5pw") == "aq_md5"
    assert login(inst2, "aq_scram", "scrampw") == "aq_scram"
    assert "authentication failed" in refused(inst2, "aq_md5", "wrong")
    inst3 = start(pgcoro_factory, pg, {"auth_type": "plain"})  # checked on the executor
    assert login(inst3, "aq_scram", "scrampw") == "aq_scram"
    assert login(inst3, "aq_md5", "md5pw") == "aq_md5"
    assert "password authentication failed" in refused(inst3, "aq_scram", "wrong")
    # auth_file's users are not looked up
    assert login(inst2, APP_USER, APP_PASS, db="postgres") == APP_USER
    assert "auth_query for user \"app\"" not in inst2.log_text()


def test_user_name_is_a_parameter(pgcoro_factory, pg, roles):
    """The user name reaches the server as $1, never quoted into the text."""
    inst = start(pgcoro_factory, pg)
    assert login(inst, "aq_o'neil", "quotepw") == "aq_o'neil"
    msg = refused(inst, "x' OR rolname='aq_scram", "scrampw")
    assert "SASL authentication failed" in msg  # unknown: as a wrong password (scram)
    assert "no such user: x' OR rolname='aq_scram" in inst.log_text()


def test_expired_password_refused(pgcoro_factory, pg, roles):
    """CVE-2025-2291: the default query returns no password past rolvaliduntil; each login
    looks the user up again, so a change counts at once."""
    inst = start(pgcoro_factory, pg)
    assert "SASL authentication failed" in refused(inst, "aq_expired", "expiredpw")
    pg.psql_super("ALTER ROLE aq_expired VALID UNTIL 'infinity'")
    try:
        assert login(inst, "aq_expired", "expiredpw") == "aq_expired"
        pg.psql_super("ALTER ROLE aq_expired VALID UNTIL '2000-01-01'")
        assert "SASL authentication failed" in refused(inst, "aq_expired", "expiredpw")
    finally:
        pg.psql_super("ALTER ROLE aq_expired VALID UNTIL '2000-01-01'")


def test_search_path_cannot_reach_the_query(pgcoro_factory, pg, roles):
    """CVE-2025-12819: evil.now() would make the expired password valid if the query ran
    with search_path = evil, pg_catalog. Neither the client's own startup settings nor
    what an earlier session of auth_user left on the server reach it: the query runs
    after a RESET ALL, with no SET of the client's."""
    inst = start(pgcoro_factory, pg, {"pool_mode": "transaction", "default_pool_size": 1,
                                      "track_extra_parameters": "search_path"})
    opts = "-c search_path=evil,pg_catalog"
    assert "SASL authentication failed" in refused(inst, "aq_expired", "expiredpw",
                                                       options=opts)
    # a session of auth_user leaves search_path = evil, pg_catalog on the one server of
    # its pool (transaction mode keeps a startup setting there)
    c = inst.connect(user="postgres", password="superpw", db="local", options=opts)
    cur = c.cursor()
    cur.execute("SELECT now() < '1991-01-01'")
    assert cur.fetchone() == (True,)  # the evil now() is in force in that session
    c.commit()
    c.close()
    assert "SASL authentication failed" in refused(inst, "aq_expired", "expiredpw")
    assert login(inst, "aq_scram", "scrampw") == "aq_scram"


def test_custom_query_plain_secret(pgcoro_factory, pg, roles):
    """A custom auth_query returning a plain password, checked by md5, plain and SCRAM
    (its keys derived on the executor)."""
    q = "SELECT u, p FROM plainpw WHERE u = $1"
    for auth_type in ("md5", "plain", "scram-sha-256"):
        inst = start(pgcoro_factory, pg, {"auth_type": auth_type, "auth_query": q,
                                          "auth_dbname": "localaq"})
        assert login(inst, "aq_scram", "tablepw") == "aq_scram"
        failed = "SASL" if auth_type == "scram-sha-256" else "password"  # PgBouncer's words
        assert f"{failed} authentication failed" in refused(inst, "aq_scram", "scrampw")


def test_auth_dbname(pgcoro_factory, pg, roles):
    """auth_dbname picks the database the query runs on: plainpw exists only in aqdb."""
    q = "SELECT u, p FROM plainpw WHERE u = $1"
    inst = start(pgcoro_factory, pg, {"auth_type": "md5", "auth_query": q},
                 databases={"viaaq": f"host={pg.sockdir} port={pg.port} dbname=postgres "
                                     "auth_dbname=localaq"})
    assert login(inst, "aq_scram", "tablepw", db="viaaq") == "aq_scram"
    # without it, the query runs on the client's database, which has no such table
    assert "bouncer config error" in refused(inst, "aq_scram", "tablepw", db="local")
    assert 'relation "plainpw" does not exist' in inst.log_text()


def test_auth_dbname_refusals(pgcoro_factory, pg, roles):
    """PgBouncer's refusals: an auth_dbname that is not configured, or disabled."""
    inst = start(pgcoro_factory, pg, databases={
        "nocfg": f"host={pg.sockdir} port={pg.port} dbname=postgres auth_dbname=nosuch",
        "viaaq": f"host={pg.sockdir} port={pg.port} dbname=postgres auth_dbname=localaq"})
    assert "bouncer config error" in refused(inst, "aq_scram", "scrampw", db="nocfg")
    assert 'authentication database "nosuch" is not configured' in inst.log_text()
    r = subprocess.run([pg.psql_bin, "-X", "-h", inst.sockdir, "-p", str(inst.port), "-U",
                        "pgcoro", "-d", "pgcoro", "-c", "DISABLE localaq"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert ('authentication database "localaq" is disabled'
            in refused(inst, "aq_scram", "scrampw", db="viaaq"))
    assert login(inst, "aq_scram", "scrampw", db="local") == "aq_scram"


def test_reserved_auth_dbname(pgcoro_bin, tmp_path):
    """auth_dbname = pgbouncer (the admin console) is a configuration error."""
    for name in ("pgbouncer", "pgcoro"):
        path = tmp_path / "bad.ini"
        path.write_text(f"[pgcoro]\nunix_socket_dir = {tmp_path}\nauth_type = trust\n"
                        f"auth_user = postgres\nauth_dbname = {name}\n[databases]\n"
                        "postgres = host=127.0.0.1 port=1 dbname=postgres\n")
        r = subprocess.run([pgcoro_bin, "--check-config", str(path)], capture_output=True,
                           text=True, timeout=60,
                           env=clean_env(ASAN_OPTIONS=ASAN_OPTIONS, UBSAN_OPTIONS=UBSAN_OPTIONS))
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert (f'cannot use the reserved "{name}" database as an auth_dbname'
                in r.stderr), r.stderr


def test_per_database_auth_user(pgcoro_factory, pg, roles):
    """auth_user in a [databases] entry: only that database looks users up."""
    inst = pgcoro_factory(settings={"auth_type": "scram-sha-256"},
                          databases=dbs(pg, withau=f"host={pg.sockdir} port={pg.port} "
                                                   "dbname=postgres auth_user=postgres"),
                          users={"postgres": "superpw"})
    assert login(inst, "aq_scram", "scrampw", db="withau") == "aq_scram"
    assert "SASL authentication failed" in refused(inst, "aq_scram", "scrampw", db="local")


def test_unknown_user_and_server_error(pgcoro_factory, pg, roles):
    """A user the query does not find is refused as a wrong password would be (the log
    says "no such user"); a query that fails is logged with the server's error and the
    client gets "bouncer config error"."""
    inst = start(pgcoro_factory, pg, databases={
        "broken": f"host={pg.sockdir} port={pg.port} dbname=postgres "
                  "auth_query='SELECT usename, passwd FROM not_pg_shadow WHERE usename = $1'"})
    assert "SASL authentication failed" in refused(inst, "aq_nobody", "x")
    assert "no such user: aq_nobody" in inst.log_text()
    assert "bouncer config error" in refused(inst, "aq_scram", "scrampw", db="broken")
    assert 'relation "not_pg_shadow" does not exist' in inst.log_text()
    assert login(inst, "aq_scram", "scrampw") == "aq_scram"  # the pool serves on


def test_trust_with_auth_user(pgcoro_factory, pg, roles):
    """auth_type trust: a user auth_query finds logs in without a password, one it does
    not find is refused; an auth_file user is not looked up."""
    inst = start(pgcoro_factory, pg, {"auth_type": "trust"})
    assert login(inst, "aq_scram", None) == "aq_scram"
    assert "no such user" in refused(inst, "aq_nobody", None)
    # roles whose secret is NULL (no password; past VALID UNTIL) exist: trust asks no
    # password (PostgreSQL's trust ignores VALID UNTIL too), so they log in
    assert login(inst, "aq_nopw", None) == "aq_nopw"
    assert login(inst, "aq_expired", None) == "aq_expired"


def test_login_leaves_during_the_query(pgcoro_factory, pg, roles):
    """A client that leaves while its look-up runs: the answer is dropped, the server goes
    back to the pool, and the next login is served."""
    q = "SELECT rolname, rolpassword FROM pg_authid, pg_sleep(1) WHERE rolname = $1"
    inst = start(pgcoro_factory, pg, {"auth_query": q, "default_pool_size": 1})
    s = socket.create_connection((inst.host, inst.port), timeout=10)
    body = struct.pack("!I", 196608) + b"user\0aq_scram\0database\0local\0\0"
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    wait_until(lambda: pg.psql_super(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(1)%' "
        "AND state = 'active' AND pid <> pg_backend_pid()").strip() == "1",
        "the look-up runs on the server")
    s.close()
    assert login(inst, "aq_scram", "scrampw") == "aq_scram"


def test_auth_user_cannot_log_in(pgcoro_factory, pg, roles):
    """auth_user's own server login refused: the look-up's client gets the server's
    error at once (no wait for a retry), and nothing is let in."""
    inst = start(pgcoro_factory, pg, {"auth_user": "aq_norole"})
    msg = refused(inst, "aq_scram", "scrampw")
    assert 'FATAL:  role "aq_norole" does not exist' in msg, msg  # the server's words
    assert 'could not run on local/aq_norole' in inst.log_text()


def test_many_logins_share_one_server(pgcoro_factory, pg, roles):
    """Logins looked up at once wait in order for auth_user's one server (pool_size 1),
    each answered by its own query, wrong passwords among them refused."""
    import threading
    inst = start(pgcoro_factory, pg, {"default_pool_size": 1})
    results = {}

    def one(i):
        pw = "scrampw" if i % 3 else "wrong"
        try:
            results[i] = login(inst, "aq_scram", pw) == "aq_scram"
        except psycopg2.OperationalError as e:
            results[i] = "SASL authentication failed" in str(e) and pw == "wrong"

    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 24 and all(results.values()), results
    assert login(inst, "aq_o'neil", "quotepw") == "aq_o'neil"


def test_login_leaves_while_keys_are_derived(pgcoro_factory, pg, roles):
    """SCRAM with a plain secret found: its keys are derived on the executor (here a
    long PBKDF2); a client that leaves meanwhile is let go, the derivation
    ends by itself, and logins go on."""
    q = "SELECT u, p FROM plainpw WHERE u = $1"
    inst = start(pgcoro_factory, pg, {"auth_query": q, "auth_dbname": "localaq",
                                      "scram_iterations": 400000})
    s = socket.create_connection((inst.host, inst.port), timeout=10)
    body = struct.pack("!I", 196608) + b"user\0aq_scram\0database\0local\0\0"
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    # the query has been answered (its server is idle again): the derivation runs
    wait_until(lambda: pg.psql_super(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%FROM plainpw%' "
        "AND state = 'idle'").strip() == "1", "the look-up answered")
    s.close()
    assert login(inst, "aq_scram", "tablepw", db="local") == "aq_scram"


@pytest.mark.parametrize("auth_type", ["md5", "scram-sha-256", "plain"])
def test_unknown_user_looks_like_a_wrong_password(pgcoro_factory, pg, roles, auth_type):
    """An unknown user is not told apart from a known one with a wrong password: the same
    authentication request (SCRAM for md5 too, as for a user with a verifier), the same
    SQLSTATE and message (PgBouncer answers "no such user" at once)."""
    inst = start(pgcoro_factory, pg, {"auth_type": auth_type})

    def attempt(user):
        with Wire.to(inst) as w:
            with pytest.raises(PgError) as e:
                w.login(user, "wrongpw", "local")
            return w.auth_codes, e.value.sqlstate, e.value.fields["M"].replace(user, "U")

    known, unknown = attempt("aq_scram"), attempt("aq_nobody")
    assert unknown == known
    assert known[1] == "28P01", known
    assert "no such user: aq_nobody" in inst.log_text()


@pytest.mark.parametrize("auth_type", ["scram-sha-256", "md5", "plain"])
def test_no_secret_is_no_password(pgcoro_factory, pg, roles, auth_type):
    """A NULL secret (the default query's expired password; a role without one, such as
    a superuser meant for peer logins) is no secret: the login is refused as an unknown
    user's, whatever the password (once, "md5" let anyone in: the impossible md5 secret
    was taken for a plain password)."""
    inst = start(pgcoro_factory, pg, {"auth_type": auth_type})
    for user in ("aq_expired", "aq_nopw"):
        for pw in ("md5", "expiredpw"):
            msg = refused(inst, user, pw)
            assert "authentication failed" in msg, (user, pw, msg)
    assert "user aq_nopw has no password (or it expired)" in inst.log_text()


def test_answer_of_more_or_other_rows_refused(pgcoro_factory, pg, roles):
    """auth_query must answer one row naming the user: two rows, a row naming another
    user, or a row too long to read are a "bouncer config error" (logged), never a
    guess (once the last row readable won, and its name was not looked at)."""
    other = ("SELECT rolname, rolpassword FROM pg_authid "
             "WHERE rolname = $$aq_scram$$ AND $1::text IS NOT NULL")
    two = ("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1 "
           "UNION ALL SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1")
    long_first = ("SELECT $1::name, repeat($$x$$, 70000) UNION ALL "
                  "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1")
    inst = start(pgcoro_factory, pg, databases={
        f"q{i}": f"host={pg.sockdir} port={pg.port} dbname=postgres auth_query='{q}'"
        for i, q in enumerate((other, two, long_first))})
    assert "bouncer config error" in refused(inst, "aq_md5", "scrampw", db="q0")
    assert "bouncer config error" in refused(inst, "aq_scram", "scrampw", db="q1")
    assert "bouncer config error" in refused(inst, "aq_scram", "scrampw", db="q2")
    log = inst.log_text()
    assert "auth_query returned a row for another user" in log
    assert "auth_query returned more than one row" in log
    assert login(inst, "aq_scram", "scrampw") == "aq_scram"  # the default query serves on


def test_temp_table_cannot_reach_the_query(pgcoro_factory, pg, roles):
    """A client of auth_user's own pool (transaction mode: the server goes back to the
    pool with the session's temporary tables) leaves a temp table named pg_authid, which
    the unqualified default query would read first: the task's pre-step drops it.
    (pin_session_state off: with on, the default, the client's temporary table pins it to
    the pool's one server, which the task then never gets while it is connected.)"""
    inst = start(pgcoro_factory, pg, {"pool_mode": "transaction", "default_pool_size": 1,
                                      "pin_session_state": "off"})
    c = inst.connect(user="postgres", password="superpw", db="local")
    try:
        c.autocommit = True
        cur = c.cursor()
        cur.execute("CREATE TEMP TABLE pg_authid (rolname name, rolpassword text, "
                    "rolvaliduntil timestamptz, rolcanlogin bool)")
        cur.execute("INSERT INTO pg_authid VALUES ('aq_nopw', 'evilpw', NULL, true)")
        assert "SASL authentication failed" in refused(inst, "aq_nopw", "evilpw")
    finally:
        c.close()


def test_unknown_user_md5_mock_follows_password_encryption(pgcoro_factory, pg, roles):
    """Under md5 an unknown user gets the challenge PostgreSQL's own mock would: md5 when
    the server's password_encryption (auth_user's session's, read once) is md5, the same
    as a user with an md5 secret (once always SCRAM: an md5 user and an unknown one told
    apart by the request alone)."""
    inst = start(pgcoro_factory, pg, {"auth_type": "md5", "auth_user": "aq_auth_md5",
                                      "default_pool_size": 1})  # SHOW, then the query

    def attempt(user):
        with Wire.to(inst) as w:
            with pytest.raises(PgError) as e:
                w.login(user, "wrongpw", "local")
            return w.auth_codes, e.value.sqlstate, e.value.fields["M"].replace(user, "U")

    known, unknown = attempt("aq_md5"), attempt("aq_nobody")
    assert known[0] == [5], known  # AuthenticationMD5Password
    assert unknown == known
    assert login(inst, "aq_md5", "md5pw") == "aq_md5"
    assert login(inst, "aq_scram", "scrampw") == "aq_scram"  # a verifier: SCRAM


def test_secret_kept_for_its_source_only(pgcoro_factory, pg, roles):
    """What a database's auth_query found is kept for the server logins of the databases
    that look users up the same way (auth database, auth_user, query) only: another
    entry — maybe another cluster — that forces that user does not log in with it (once
    the store was by user name alone: any auth_file client of "forced" was let in to the
    server as aq_scram with the verifier "withau" found)."""
    inst = pgcoro_factory(settings={"auth_type": "scram-sha-256"},
                          databases=dbs(pg, withau=f"host={pg.sockdir} port={pg.port} "
                                                   "dbname=postgres auth_user=postgres",
                                        forced=f"host=127.0.0.1 port={pg.port} "
                                               "dbname=postgres user=aq_scram"),
                          users={"postgres": "superpw"})
    assert login(inst, "aq_scram", "scrampw", db="withau") == "aq_scram"
    msg = refused(inst, APP_USER, APP_PASS, db="forced")
    assert "no password supplied" in msg, msg  # libpq's: pgcoro has no secret for it
