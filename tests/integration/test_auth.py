"""Client authentication at pgcoro: scram-sha-256, md5, plain, trust; secrets stored as
plain text, md5 hashes or SCRAM verifiers; wrong passwords, unknown users and databases."""

import asyncio
import base64
import hashlib
import secrets
import signal
import struct

import psycopg2
import pytest

from conftest import APP_PASS, APP_USER, MD5_PASS, MD5_USER, PgError, Wire, wait_until

MD5_SECRET = "md5" + hashlib.md5((MD5_PASS + MD5_USER).encode()).hexdigest()

# The authentication requests a client sees for each auth_type (R codes, ending in Ok).
CODES = {"scram-sha-256": [10, 11, 12, 0], "md5": [5, 0], "plain": [3, 0], "trust": [0]}


def login_codes(inst, user, password, db="postgres"):
    with Wire.to(inst) as w:
        w.login(user, password, inst.db(db))
        assert w.query("select current_user") == [[user]]
        w.terminate()
        return w.auth_codes


def expect_login_error(inst, user, password, db="postgres"):
    with Wire.to(inst) as w:
        with pytest.raises(PgError) as ei:
            w.login(user, password, inst.db(db))
        return ei.value


def check_psycopg2(inst, user, password, db="postgres"):
    c = inst.connect(user=user, password=password, db=db)
    try:
        cur = c.cursor()
        cur.execute("select current_user")
        assert cur.fetchone() == (user,)
    finally:
        c.close()


@pytest.mark.parametrize("auth_type", ["scram-sha-256", "md5", "plain"])
def test_password_auth(pgcoro_factory, direct, auth_type):
    inst = pgcoro_factory(settings={"auth_type": auth_type})
    codes = login_codes(inst, APP_USER, APP_PASS)
    if not direct:
        assert codes == CODES[auth_type]
    check_psycopg2(inst, APP_USER, APP_PASS)

    err = expect_login_error(inst, APP_USER, "wrong")
    assert err.sqlstate == "28P01", err.fields
    assert err.fields["S"] == "FATAL"
    with pytest.raises(psycopg2.OperationalError) as ei:
        check_psycopg2(inst, APP_USER, "wrong")
    # pgcoro: PgBouncer's words, the same for an unknown user (PostgreSQL names the user)
    words = ("SASL authentication failed" if auth_type == "scram-sha-256" and not direct
             else "password authentication failed")
    assert words in str(ei.value)

    err = expect_login_error(inst, "nosuchuser", "whatever")
    assert err.sqlstate == "28P01", err.fields
    if not direct:
        assert err.fields["M"] == words, err.fields
    inst.assert_serving()


def test_md5_secret_in_auth_file(pgcoro_factory, pg, direct):
    # md5user's auth_file secret is an md5 hash; pgcoro cannot derive a server password
    # from it, so the database entry carries one in its conninfo.
    inst = pgcoro_factory(
        settings={"auth_type": "md5"}, users={MD5_USER: MD5_SECRET},
        databases={"md5db": f"host=127.0.0.1 port={pg.port} dbname=postgres password={MD5_PASS}"})
    codes = login_codes(inst, MD5_USER, MD5_PASS, db="md5db")
    if not direct:
        assert codes == CODES["md5"]
    check_psycopg2(inst, MD5_USER, MD5_PASS, db="md5db")
    err = expect_login_error(inst, MD5_USER, "wrong", db="md5db")
    assert err.sqlstate == "28P01", err.fields
    inst.assert_serving()


@pytest.mark.parametrize("auth_type", ["scram-sha-256", "plain"])
def test_scram_verifier_in_auth_file(pgcoro_factory, pg, direct, auth_type):
    verifier = pg.psql_super("select rolpassword from pg_authid where rolname = 'app'").strip()
    assert verifier.startswith("SCRAM-SHA-256$"), verifier
    # the server side goes over PostgreSQL's unix socket (trust), as a local pooler would
    inst = pgcoro_factory(
        settings={"auth_type": auth_type}, users={APP_USER: verifier},
        databases={"localdb": f"host={pg.sockdir} port={pg.port} dbname=postgres"})
    codes = login_codes(inst, APP_USER, APP_PASS, db="localdb")
    if not direct:
        assert codes == CODES[auth_type]
    check_psycopg2(inst, APP_USER, APP_PASS, db="localdb")
    err = expect_login_error(inst, APP_USER, "wrong", db="localdb")
    assert err.sqlstate == "28P01", err.fields
    inst.assert_serving(db="localdb")


@pytest.mark.pooler_only
def test_trust(pgcoro_factory):
    inst = pgcoro_factory(settings={"auth_type": "trust"})
    assert login_codes(inst, APP_USER, None) == CODES["trust"]
    check_psycopg2(inst, APP_USER, None)
    inst.assert_serving()


def test_unknown_database(pgcoro):
    err = expect_login_error(pgcoro, APP_USER, APP_PASS, db="nosuchdb")
    assert err.sqlstate == "3D000", err.fields
    assert "nosuchdb" in err.fields["M"]
    pgcoro.assert_serving()


def test_asyncpg_sqlstates(pgcoro):
    import asyncpg

    async def attempt(user, password, db):
        conn = await asyncpg.connect(host=pgcoro.host, port=pgcoro.port, user=user,
                                     password=password, database=pgcoro.db(db), timeout=60)
        await conn.close()

    async def main():
        with pytest.raises(asyncpg.exceptions.InvalidPasswordError) as ei:
            await attempt(APP_USER, "wrong", "postgres")
        assert ei.value.sqlstate == "28P01"
        with pytest.raises(asyncpg.exceptions.InvalidCatalogNameError) as ei:
            await attempt(APP_USER, APP_PASS, "nosuchdb")
        assert ei.value.sqlstate == "3D000"
        await attempt(APP_USER, APP_PASS, "postgres")

    asyncio.run(asyncio.wait_for(main(), 120))
    pgcoro.assert_serving()


def scram_server_first(inst, user, db="postgres"):
    """Starts a SCRAM exchange as USER and returns the server-first message's attributes
    (r, s, i) from AuthenticationSASLContinue; the connection is then dropped."""
    with Wire.to(inst) as w:
        w.send_startup(user, inst.db(db))
        t, p = w.read_msg()
        assert (t, struct.unpack("!I", p[:4])[0]) == ("R", 10), (t, p)
        first = f"n,,n=,r={base64.b64encode(secrets.token_bytes(18)).decode()}".encode()
        w.send(Wire.msg("p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
        t, p = w.read_msg()
        assert (t, struct.unpack("!I", p[:4])[0]) == ("R", 11), (t, p)
        return dict(kv.split("=", 1) for kv in p[4:].decode().split(","))


def test_unknown_user_scram_salt_stable(pgcoro_factory, direct):
    """An unknown user's SCRAM challenge looks like a listed user's: the same salt on every
    attempt (PostgreSQL derives it from the name), another name's unrelated, the iteration
    count real users get; the failure reads the same. A reload changes no salt a client
    sees, listed (plain secret) or not."""
    inst = pgcoro_factory(users={"listed": "pw"})
    ghost = [scram_server_first(inst, "ghost") for _ in range(2)]
    other = scram_server_first(inst, "ghost2")
    app = [scram_server_first(inst, APP_USER) for _ in range(2)]
    assert ghost[0]["s"] == ghost[1]["s"], ghost
    assert other["s"] != ghost[0]["s"] and app[0]["s"] not in (ghost[0]["s"], other["s"])
    assert app[0]["s"] == app[1]["s"], app
    assert len(base64.b64decode(ghost[0]["s"])) == len(base64.b64decode(app[0]["s"])) == 16
    assert ghost[0]["i"] == other["i"] == app[0]["i"] == "4096", (ghost, other, app)
    known = expect_login_error(inst, APP_USER, "wrong")
    unknown = expect_login_error(inst, "ghost", "wrong")
    assert {**known.fields, "M": known.fields["M"].replace(APP_USER, "ghost")} == unknown.fields
    assert unknown.fields["C"] == "28P01", unknown.fields
    if direct:
        return
    # a reload: "listed" is removed and "ghost" added; no salt changes
    listed = scram_server_first(inst, "listed")
    with open(inst.userlist_path, "w") as f:
        f.write(f'"{APP_USER}" "{APP_PASS}"\n"ghost" "pw"\n')
    inst.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in inst.log_text(), "reload logged")
    assert scram_server_first(inst, "ghost")["s"] == ghost[0]["s"]
    assert scram_server_first(inst, "listed")["s"] == listed["s"]
    assert scram_server_first(inst, APP_USER)["s"] == app[0]["s"]
    inst.assert_serving()


@pytest.mark.pooler_only
def test_unknown_user_md5(pgcoro_factory):
    """auth_type md5: an unknown user gets the md5 challenge a listed user gets, and the
    same failure (28P01, the same words: PgBouncer's, which name no user)."""
    inst = pgcoro_factory(settings={"auth_type": "md5"})
    errs = {}
    for user in (APP_USER, MD5_USER, "ghost"):
        with Wire.to(inst) as w:
            with pytest.raises(PgError) as ei:
                w.login(user, "wrong", inst.db("postgres"))
            assert w.auth_codes == [5], (user, w.auth_codes)
        errs[user] = {**ei.value.fields, "M": ei.value.fields["M"].replace(user, "USER")}
    assert errs[APP_USER] == errs[MD5_USER] == errs["ghost"], errs
    assert errs["ghost"]["C"] == "28P01"
    assert errs["ghost"]["M"] == "password authentication failed"
    inst.assert_serving()
