"""auth_type = ldap and hba ldap rules (PgBouncer 1.25's, PostgreSQL's options) against a
throwaway OpenLDAP slapd started here: simple bind (ldapprefix/ldapsuffix), search+bind
(ldapbasedn, ldapurl, ldapsearchfilter), a wrong password, an empty one, a user name that
would change a search filter, an LDAP server that is down or does not answer, and a slow
LDAP server that must not hold up other clients. The password LDAP accepted is the
server login's (the [databases] entries name none)."""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import (APP_PASS, APP_USER, PgError, Wire, free_port, pid_alive, wait_port)

pytestmark = pytest.mark.pooler_only

LDAP_USER, LDAP_PASS = "ldapuser1", "secret1"
BASE_DN = "dc=example,dc=net"

SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile {d}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
suffix "{base}"
rootdn "cn=admin,{base}"
rootpw adminpw
directory {d}/db
maxsize 10485760
"""

DATA_LDIF = """\
dn: {base}
objectClass: dcObject
objectClass: organization
dc: example
o: example

dn: uid={user},{base}
objectClass: inetOrgPerson
uid: {user}
cn: {user}
sn: one
mail: {user}@example.net
userPassword: {password}
"""


class Slapd:
    """A slapd of its own (slapd -f, mdb backend, a temp directory) on 127.0.0.1:port."""

    def __init__(self, certs=None):
        """CERTS (TlsCerts): StartTLS on the ldap port too, and an ldaps port."""
        self.dir = tempfile.mkdtemp(prefix="pgc-slapd-")
        os.mkdir(os.path.join(self.dir, "db"))
        self.port = free_port()
        self.ldaps_port = free_port() if certs else None
        with open(os.path.join(self.dir, "slapd.conf"), "w") as f:
            f.write(SLAPD_CONF.format(d=self.dir, base=BASE_DN))
            if certs:
                f.write(f"TLSCACertificateFile {certs.path('ca.crt')}\n"
                        f"TLSCertificateFile {certs.path('server.crt')}\n"
                        f"TLSCertificateKeyFile {certs.path('server.key')}\n")
        urls = f"ldap://127.0.0.1:{self.port}/"
        if certs:
            urls += f" ldaps://127.0.0.1:{self.ldaps_port}/"
        self.log = open(os.path.join(self.dir, "slapd.log"), "wb")
        self.proc = subprocess.Popen(
            ["slapd", "-f", os.path.join(self.dir, "slapd.conf"), "-h", urls, "-d", "0"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.stopped = False  # SIGSTOPped
        wait_port(self.port, self.proc, timeout=30, what="slapd")
        ldif = os.path.join(self.dir, "data.ldif")
        with open(ldif, "w") as f:
            f.write(DATA_LDIF.format(base=BASE_DN, user=LDAP_USER, password=LDAP_PASS))
        subprocess.run(["ldapadd", "-x", "-H", f"ldap://127.0.0.1:{self.port}",
                        "-D", f"cn=admin,{BASE_DN}", "-w", "adminpw", "-f", ldif],
                       check=True, capture_output=True, timeout=30)

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.stopped = True

    def resume(self):
        if self.stopped:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.stopped = False

    def stop(self):
        self.resume()
        if pid_alive(self.proc.pid):
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def slapd():
    if not shutil.which("slapd") or not shutil.which("ldapadd"):
        pytest.fail("slapd and ldap-utils are needed (make deps)")
    s = Slapd()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def ldap_role(pg):
    """The LDAP user as a PostgreSQL role with the same password: pgcoro logs in to the
    server with the password LDAP accepted."""
    pg.psql_super(f"DROP ROLE IF EXISTS {LDAP_USER}; "
                  f"CREATE ROLE {LDAP_USER} LOGIN PASSWORD '{LDAP_PASS}';")
    yield LDAP_USER


def simple_opts(port, **more):
    o = {"ldapserver": "127.0.0.1", "ldapport": port, "ldapprefix": '"uid="',
         "ldapsuffix": f'",{BASE_DN}"'}
    o.update(more)
    return " ".join(f"{k}={v}" for k, v in o.items())


@pytest.fixture
def ldap_pgcoro(pgcoro_factory, slapd, ldap_role):
    """start(options, **settings) -> a pgcoro with auth_type ldap and OPTIONS as its
    auth_ldap_options."""
    def start(options, **settings):
        s = {"auth_type": "ldap", "auth_ldap_options": options}
        s.update(settings)
        return pgcoro_factory(settings=s)
    return start


@pytest.fixture
def hba_ldap_pgcoro(pgcoro_factory, slapd, ldap_role, tmp_path):
    """start(ldap_rule_options, **settings) -> a pgcoro with auth_type hba: LDAP_USER by
    an ldap rule with those options, everyone else by scram-sha-256."""
    def start(options, **settings):
        path = tmp_path / "hba.conf"
        path.write_text(f"host all {LDAP_USER} 127.0.0.1/32 ldap {options}\n"
                        "host all all 127.0.0.1/32 scram-sha-256\n")
        s = {"auth_type": "hba", "auth_hba_file": str(path)}
        s.update(settings)
        return pgcoro_factory(settings=s)
    return start


def ldap_login(inst, user=LDAP_USER, password=LDAP_PASS):
    """Logs in through pgcoro with Wire and checks the session is the user's."""
    with Wire(inst.host, inst.port) as w:
        w.login(user, password, "postgres")
        assert w.auth_codes[0] == 3  # a cleartext password was asked for
        assert w.query("SELECT current_user") == [[user]]
        w.terminate()


def refused(inst, user=LDAP_USER, password=LDAP_PASS, timeout=20.0):
    with Wire(inst.host, inst.port, timeout=timeout) as w:
        with pytest.raises(PgError) as e:
            w.login(user, password, "postgres")
        return e.value.fields


def test_simple_bind(ldap_pgcoro, slapd):
    inst = ldap_pgcoro(simple_opts(slapd.port))
    ldap_login(inst)
    # the server login used the password LDAP accepted: a second session reuses the pool
    ldap_login(inst)
    f = refused(inst, password="wrong")
    assert (f["C"], f["M"]) == ("28P01", "LDAP authentication failed")
    assert "Invalid credentials" in inst.log_text()
    # an auth_file user is an LDAP user too under auth_type ldap: unknown to LDAP
    f = refused(inst, user=APP_USER, password=APP_PASS)
    assert (f["C"], f["M"]) == ("28P01", "LDAP authentication failed")


@pytest.mark.parametrize("options", [
    'ldapserver=127.0.0.1 ldapport={port} ldapbasedn="dc=example,dc=net"',
    'ldapserver=127.0.0.1 ldapport={port} ldapbasedn="dc=example,dc=net" '
    'ldapsearchattribute=uid',
    'ldapserver=127.0.0.1 "ldapport"={port} ldapbasedn="dc=example,dc=net" '
    ',ldapsearchfilter="uid=$username"',
    'ldapurl="ldap://127.0.0.1:{port}/dc=example,dc=net?uid?sub"',
    'ldapurl="ldap://127.0.0.1:{port}/dc=example,dc=net??sub?(|(uid=$username)'
    '(mail=$username))"',
    'ldapserver=127.0.0.1 ldapport={port} ldapprefix="uid=" ldapsuffix=",dc=example,dc=net"',
], ids=["basedn", "searchattribute", "searchfilter", "url", "url-filter", "simple"])
def test_hba_ldap_rules(hba_ldap_pgcoro, slapd, options):
    """PgBouncer's test_ldap_auth forms, in auth_hba_file."""
    inst = hba_ldap_pgcoro(options.format(port=slapd.port))
    ldap_login(inst)
    f = refused(inst, password="wrong")
    assert (f["C"], f["M"]) == ("28P01", "LDAP authentication failed")
    # the other rule still applies to the others
    with Wire(inst.host, inst.port) as w:
        w.login(APP_USER, APP_PASS, "postgres")
        assert w.auth_codes[0] == 10
        w.terminate()


def test_auth_type_ldap_search_bind(ldap_pgcoro, slapd):
    inst = ldap_pgcoro(f'ldapurl="ldap://127.0.0.1:{slapd.port}/{BASE_DN}?uid?sub"')
    ldap_login(inst)
    f = refused(inst, user="nosuchuser", password="x")
    assert (f["C"], f["M"]) == ("28P01", "LDAP authentication failed")
    assert 'LDAP user "nosuchuser" does not exist' in inst.log_text()


def test_empty_password_refused(ldap_pgcoro, slapd):
    """An empty password would be an anonymous (unauthenticated) bind, which LDAP servers
    may accept: refused before LDAP is asked, in PostgreSQL's words."""
    # slapd itself takes an anonymous bind: the refusal is pgcoro's
    r = subprocess.run(["ldapwhoami", "-x", "-H", f"ldap://127.0.0.1:{slapd.port}"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    inst = ldap_pgcoro(simple_opts(slapd.port))
    f = refused(inst, password="")
    assert (f["C"], f["M"]) == ("28P01", "empty password returned by client")
    inst2 = ldap_pgcoro(f"ldapserver=127.0.0.1 ldapport={slapd.port} ldapbasedn=\"{BASE_DN}\"")
    f = refused(inst2, password="")
    assert (f["C"], f["M"]) == ("28P01", "empty password returned by client")


@pytest.mark.parametrize("user", ["*)(uid=*", "ldapuser1)(|(uid=*", "x*", "a\\b", "a/b"])
@pytest.mark.parametrize("mode", ["search", "simple"])
def test_filter_characters_refused(ldap_pgcoro, slapd, user, mode):
    """A user name with characters that would change a search filter (or a DN) is refused,
    as PostgreSQL refuses it, whatever the password; the directory is not asked."""
    opts = (f"ldapserver=127.0.0.1 ldapport={slapd.port} ldapbasedn=\"{BASE_DN}\""
            if mode == "search" else simple_opts(slapd.port))
    inst = ldap_pgcoro(opts)
    f = refused(inst, user=user, password=LDAP_PASS)
    assert (f["C"], f["M"]) == ("28P01", "LDAP authentication failed")
    assert "invalid character in user name for LDAP authentication" in inst.log_text()
    ldap_login(inst)  # the real user still logs in


def test_ldap_server_down(ldap_pgcoro):
    """Nothing listens on the LDAP port: a clear refusal at once, not a hang."""
    inst = ldap_pgcoro(simple_opts(free_port()), auth_ldap_timeout=5)
    f = refused(inst)
    assert (f["C"], f["M"]) == ("28P01", "LDAP authentication failed")
    assert "could not be reached" in f["H"]
    assert "Can't contact LDAP server" in inst.log_text()


def test_ldap_server_silent(ldap_pgcoro, slapd):
    """The LDAP server accepts connections but never answers: auth_ldap_timeout ends the
    check, and the client gets the same clear refusal."""
    inst = ldap_pgcoro(simple_opts(slapd.port), auth_ldap_timeout=2)
    slapd.pause()
    try:
        f = refused(inst, timeout=60)
    finally:
        slapd.resume()
    assert (f["C"], f["M"]) == ("28P01", "LDAP authentication failed")
    assert "could not be reached" in f["H"]
    ldap_login(inst)


def test_slow_ldap_does_not_block_others(hba_ldap_pgcoro, slapd):
    """While an LDAP bind waits on a server that does not answer, the loop goes on: another
    client logs in and runs a query; the LDAP login then completes once the server does."""
    inst = hba_ldap_pgcoro(f"ldapserver=127.0.0.1 ldapport={slapd.port} "
                           f"ldapbasedn=\"{BASE_DN}\"", auth_ldap_timeout=120)
    slapd.pause()
    result = {}

    def ldap_client():
        try:
            ldap_login(inst)
            result["ok"] = True
        except Exception as e:  # reported below
            result["error"] = e

    t = threading.Thread(target=ldap_client, daemon=True)
    try:
        t.start()
        # the LDAP check is under way: its connection waits in the stopped slapd's backlog
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _connected_to(slapd.port):
            time.sleep(0.05)
        assert _connected_to(slapd.port), "the LDAP check never connected"
        with Wire(inst.host, inst.port) as w:
            w.login(APP_USER, APP_PASS, "postgres")
            assert w.query("SELECT 40 + 2") == [["42"]]
            w.terminate()
        assert t.is_alive(), result  # the LDAP login still waits
    finally:
        slapd.resume()
    t.join(60)
    assert result.get("ok"), result


def _connected_to(port):
    """Whether a TCP connection to 127.0.0.1:PORT is established (/proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            rport = int(fields[2].split(":")[1], 16)
            if rport == port and fields[3] == "01":
                return True
    return False


def test_password_change_reaches_server_logins(ldap_pgcoro, slapd, pg):
    """The user's password changes (in LDAP and PostgreSQL) while a session of theirs holds
    the pool: the next login's new server logs in with the new password, as PgBouncer's
    (it keeps the password of each LDAP login), not with the one the pool was made with."""
    inst = ldap_pgcoro(simple_opts(slapd.port))
    old = Wire(inst.host, inst.port)
    try:
        old.login(LDAP_USER, LDAP_PASS, "postgres")  # holds a server (session mode)
        _set_password(slapd, pg, "secret2")
        try:
            ldap_login(inst, password="secret2")  # needs a second server
            f = refused(inst, password=LDAP_PASS)
            assert (f["C"], f["M"]) == ("28P01", "LDAP authentication failed")
        finally:
            _set_password(slapd, pg, LDAP_PASS)
        assert old.query("SELECT current_user") == [[LDAP_USER]]
        old.terminate()
    finally:
        old.close()


def _set_password(slapd, pg, password):
    subprocess.run(["ldappasswd", "-x", "-H", f"ldap://127.0.0.1:{slapd.port}",
                    "-D", f"cn=admin,{BASE_DN}", "-w", "adminpw", "-s", password,
                    f"uid={LDAP_USER},{BASE_DN}"], check=True, capture_output=True, timeout=30)
    pg.psql_super(f"ALTER ROLE {LDAP_USER} PASSWORD '{password}'")


@pytest.fixture
def tls_slapd(tls_certs):
    s = Slapd(tls_certs)
    try:
        yield s
    finally:
        s.stop()


@pytest.mark.parametrize("options,ok", [
    ('ldapserver=127.0.0.1 ldapport={port} ldapprefix="uid=" ldapsuffix=",dc=example,dc=net" '
     'ldaptls=1', True),
    ('ldapserver=127.0.0.1 ldapport={port} ldapbasedn="dc=example,dc=net" ldaptls=1', True),
    ('ldapurl="ldaps://127.0.0.1:{ldaps}/dc=example,dc=net?uid?sub"', True),
    ('ldapserver=127.0.0.1 ldapport={ldaps} ldapscheme=ldaps ldapprefix="uid=" '
     'ldapsuffix=",dc=example,dc=net"', True),
    # PgBouncer's 8.6 and 8.7: TLS against the other kind of port fails, cleanly
    ('ldapurl="ldaps://127.0.0.1:{port}/dc=example,dc=net?uid?sub"', False),
    ('ldapserver=127.0.0.1 ldapport={ldaps} ldapprefix="uid=" ldapsuffix=",dc=example,dc=net" '
     'ldaptls=1', False),
], ids=["starttls-simple", "starttls-search", "ldaps-url", "ldapscheme", "ldaps-on-ldap-port",
        "starttls-on-ldaps-port"])
def test_tls(pgcoro_factory, tls_slapd, tls_certs, ldap_role, options, ok):
    """ldaptls=1 (StartTLS) and ldaps, the server's certificate checked against the CA
    libldap is told of (LDAPTLS_CACERT, its own setting)."""
    inst = pgcoro_factory(settings={
        "auth_type": "ldap", "auth_ldap_timeout": 10,
        "auth_ldap_options": options.format(port=tls_slapd.port, ldaps=tls_slapd.ldaps_port)},
        env={"LDAPTLS_CACERT": tls_certs.path("ca.crt")})
    if ok:
        ldap_login(inst)
    else:
        f = refused(inst, timeout=60)
        assert (f["C"], f["M"]) == ("28P01", "LDAP authentication failed")
        assert "could not be reached" in f["H"]
        assert "Can't contact LDAP server" in inst.log_text()


def test_ldap_checks_bounded(ldap_pgcoro, slapd):
    """LDAP binds are cleartext password checks: one executor thread at most runs them (of
    two), max_password_checks_waiting bounds those waiting, and a login past it is refused
    with 53300 at once, while the LDAP server holds the first."""
    inst = ldap_pgcoro(simple_opts(slapd.port), auth_ldap_timeout=120, executor_threads=2,
                       max_password_checks_waiting=1)
    slapd.pause()
    waiting = []
    try:
        for _ in range(2):  # one on the executor (held by the stopped slapd), one waiting
            w = Wire(inst.host, inst.port, timeout=60)
            waiting.append(w)
            w.send_startup(LDAP_USER, "postgres")
            t, p = w.read_msg()
            assert t == "R" and p[:4] == b"\0\0\0\3"
            w.send(w.msg("p", LDAP_PASS.encode() + b"\0"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _connected_to(slapd.port):
            time.sleep(0.05)
        f = refused(inst)
        assert (f["C"], f["M"]) == ("53300", "too many password checks waiting "
                                    "(max_password_checks_waiting 1)")
    finally:
        slapd.resume()
    for w in waiting:  # both complete once the server answers
        assert w.authenticate(LDAP_USER, LDAP_PASS)
        assert w.query("SELECT current_user") == [[LDAP_USER]]
        w.terminate()
        w.close()


def test_password_survives_online_restart(pgcoro_factory, slapd, ldap_role, pg):
    """-R under auth_type ldap: the old process passes the password LDAP accepted on (SHOW
    FDS' password column, the store auth_type pam's uses too), so the new one logs in a new
    server for the client it adopted (after PostgreSQL ended the one it had). Before, the
    column was empty for an LDAP user and the new server's login failed (no password)."""
    from test_pam_any import own_console
    from test_takeover import restart_then_end_servers
    inst = pgcoro_factory(
        settings={"auth_type": "ldap", "auth_ldap_options": simple_opts(slapd.port)},
        databases={"tx": f"host=127.0.0.1 port={pg.port} dbname=postgres "
                         "pool_mode=transaction"})
    with Wire.to(inst) as w:
        w.login(LDAP_USER, LDAP_PASS, database="tx")
        assert w.query("SELECT 1") == [["1"]]
        restart_then_end_servers(inst, pg, LDAP_USER, lambda: own_console(inst))
        assert w.query("SELECT current_user") == [[LDAP_USER]]
