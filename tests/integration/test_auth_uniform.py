"""A login tells nothing about who exists, and an anonymous peer cannot make the event loop
work: the second security audit's findings A4 and A5.

A4 (auth_type = plain, or an hba `password` rule, with SCRAM verifiers in auth_file): the
cleartext check ran PBKDF2 over the verifier's iterations on the loop thread for a listed
user and nothing for an unknown one, so the answer's time told who exists and every
anonymous attempt at a listed name blocked every client meanwhile. Now every check, listed
user or not, derives a key (the user's verifier, else a mock one) on the executor, at most
executor_threads - 1 at once; checks whose client left free themselves, waiting ones go with
their client. The tests look at order and counts, never at durations: another client is
answered while a check is running, for every kind of user, and /metrics counts the checks.

A5 (auth_type = md5 with SCRAM verifiers): a listed user with a SCRAM secret was asked for
SASL, an unknown user for md5. Now, when auth_file holds a SCRAM verifier, the md5 method
asks every user for SCRAM but those with an md5 secret."""

import base64
import hashlib
import hmac
import os
import select
import struct
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import APP_PASS, APP_USER, PgError, Wire, free_port, wait_until

pytestmark = pytest.mark.pooler_only

# PBKDF2 iterations that take a second or more (~2 M/s here, unloaded): a check still runs while another client
# makes a round trip, with a wide margin.
HUGE = 2_000_000


def b64(b):
    return base64.b64encode(b).decode()


def scram_verifier(password, iterations=4096):
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    ck = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored = hashlib.sha256(ck).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored)}:{b64(server)}"


def fake_verifier(iterations):
    """A well-formed verifier with random keys (no password matches it), made without the
    PBKDF2 its iterations would cost here."""
    return (f"SCRAM-SHA-256${iterations}:{b64(os.urandom(16))}${b64(os.urandom(32))}:"
            f"{b64(os.urandom(32))}")


def md5_secret(user, password):
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


def send_cleartext(w, user, password):
    """Startup as USER, the cleartext request pgcoro answers, then PASSWORD."""
    w.send_startup(user, "postgres")
    t, p = w.read_msg()
    assert (t, struct.unpack("!I", p[:4])[0]) == ("R", 3), (t, p)
    w.send(Wire.msg("p", password.encode() + b"\0"))


def answered(w):
    """True if anything from pgcoro is waiting on W's socket (a zero-timeout poll)."""
    return bool(w.buf) or bool(select.select([w.sock], [], [], 0)[0])


def test_password_check_leaves_other_clients_served(pgcoro_factory):
    """While a user's wrong cleartext password is being checked, another client's startup
    is answered: the check is off the loop. So for every kind of user — a SCRAM verifier
    with HUGE iterations, an unknown user, a plain, an md5 and an empty secret (their mock
    verifier has scram_iterations, HUGE here) — and each then gets the same 28P01. Before:
    the loop derived the listed user's key itself (the other client was answered only
    after it) and did nothing for the others (answered at once)."""
    users = {"scramuser": fake_verifier(HUGE), "md5secret": md5_secret("md5secret", "pw"),
             "emptysecret": ""}
    inst = pgcoro_factory(settings={"auth_type": "plain", "scram_iterations": HUGE}, users=users)
    errors = {}
    for user in ("scramuser", "nosuchuser", APP_USER, "md5secret", "emptysecret"):
        with Wire.to(inst, timeout=240) as a:
            send_cleartext(a, user, "wrong password")
            time.sleep(0.2)  # pgcoro reads it (the old code then derives on the loop)
            with Wire.to(inst) as b:
                b.send_startup(APP_USER, "postgres")
                t, p = b.read_msg()
                assert (t, struct.unpack("!I", p[:4])[0]) == ("R", 3), (t, p)
            assert not answered(a), (
                f"{user}'s password check ended before another client's startup was "
                "answered: it ran on the event loop, or did no work at all")
            f = a.expect_error()
        errors[user] = {**f, "M": f["M"].replace(user, "USER")}
    assert all(e == errors["nosuchuser"] for e in errors.values()), errors
    assert errors["nosuchuser"]["C"] == "28P01", errors


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=20) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def checks(port):
    m = scrape(port)
    return (m[("pgcoro_password_checks", (("state", "running"),))],
            m[("pgcoro_password_checks", (("state", "waiting"),))],
            m[("pgcoro_password_checks_total", ())])


def test_password_checks_bounded_and_freed_with_their_clients(pgcoro_factory):
    """Six clients send a password for a user whose check takes seconds: two checks run
    (executor_threads 3: all threads but one), four wait. When the clients leave, the waiting checks go with them
    (never run) and the running ones end by themselves without touching their freed clients
    (ASan at teardown). Unknown users' checks are counted too."""
    port = free_port()
    inst = pgcoro_factory(settings={"auth_type": "plain", "executor_threads": 3,
                                    "metrics_listen": f"127.0.0.1:{port}"},
                          users={"scramuser": fake_verifier(HUGE)})
    assert checks(port) == (0, 0, 0)
    clients = []
    try:
        for _ in range(6):
            w = Wire.to(inst)
            clients.append(w)
            send_cleartext(w, "scramuser", "wrong password")
        wait_until(lambda: sum(checks(port)[:2]) == 6, "six checks running or waiting")
        assert checks(port) == (2, 4, 2)
        assert not any(answered(w) for w in clients)
    finally:
        for w in clients:
            w.close()
    wait_until(lambda: checks(port)[1] == 0, "the waiting checks freed with their clients")
    wait_until(lambda: checks(port)[0] == 0, "the running checks ended", timeout=120)
    assert checks(port) == (0, 0, 2)
    # an unknown user's check runs on the executor as well (the mock verifier)
    with Wire.to(inst) as w:
        send_cleartext(w, "nosuchuser", "wrong password")
        assert w.expect_error()["C"] == "28P01"
    assert checks(port) == (0, 0, 3)
    with Wire.to(inst) as w:
        send_cleartext(w, APP_USER, APP_PASS)
        assert w.authenticate(APP_USER, APP_PASS) == b"I"
    assert checks(port) == (0, 0, 4)
    inst.assert_serving()


def request_code(inst, user):
    with Wire.to(inst) as w:
        w.send_startup(user, "postgres")
        t, p = w.read_msg()
        assert t == "R", (t, p)
        return struct.unpack("!I", p[:4])[0]


def test_md5_method_does_not_reveal_scram_users(pgcoro_factory):
    inst = pgcoro_factory(settings={"auth_type": "md5"},
                          users={"scramuser": scram_verifier("secret", 4096)})
    codes = {user: request_code(inst, user) for user in ("scramuser", "nosuchuser")}
    print(f"\nauthentication request: {codes}")
    assert codes["scramuser"] == codes["nosuchuser"], (
        f"listed SCRAM user asked for {codes['scramuser']}, unknown user for "
        f"{codes['nosuchuser']}: the request tells who exists")
    inst.assert_serving()


def test_md5_method_with_scram_verifiers_asks_for_scram(pgcoro_factory, pg):
    """The rule behind the previous test: with a SCRAM verifier in auth_file, the md5 method
    asks for SCRAM (10) everyone but users with an md5 secret (5): unknown users, SCRAM
    verifiers, plain secrets; each logs in with its password, an unknown user fails as a
    wrong password does."""
    users = {"scramuser": scram_verifier("secret"), "md5secret": md5_secret("md5secret", "pw")}
    # the servers: PostgreSQL's unix socket (trust) as app, whoever the client is
    inst = pgcoro_factory(settings={"auth_type": "md5"}, users=users, databases={
        "localdb": f"host={pg.sockdir} port={pg.port} dbname=postgres user={APP_USER}"})
    codes = {u: request_code(inst, u) for u in ("scramuser", "nosuchuser", APP_USER, "md5secret")}
    assert codes == {"scramuser": 10, "nosuchuser": 10, APP_USER: 10, "md5secret": 5}, codes
    for user, password, want in (("scramuser", "secret", [10, 11, 12, 0]),
                                 (APP_USER, APP_PASS, [10, 11, 12, 0]),
                                 ("md5secret", "pw", [5, 0])):
        with Wire.to(inst) as w:
            w.login(user, password, "localdb")
            assert w.auth_codes == want, (user, w.auth_codes)
    errs = {}
    for user in ("scramuser", "nosuchuser"):
        with Wire.to(inst) as w:
            with pytest.raises(PgError) as ei:
                w.login(user, "wrong")
        errs[user] = {**ei.value.fields, "M": ei.value.fields["M"].replace(user, "USER")}
    assert errs["scramuser"] == errs["nosuchuser"] and errs["nosuchuser"]["C"] == "28P01", errs
    inst.assert_serving()
