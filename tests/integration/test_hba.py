"""auth_type = hba: auth_hba_file's rules, one by one, through real logins: each method
(trust, reject, password, md5, scram-sha-256, cert, peer), each connection type (local,
host, hostssl, hostnossl), user and database matching, CIDR, no match, reload; ident maps
(auth_ident_file, map=) for peer and cert, and PgBouncer's forms (blanks around list
commas, cert on a host rule, rules naming a role group)."""

import os
import pwd
import signal
import subprocess

import pytest

from conftest import (APP_PASS, APP_USER, IS_ROOT, MD5_PASS, MD5_USER, PgError, Wire,
                      clean_env, client_cert, run_psql, tls_settings, verify_full, wait_until)

pytestmark = pytest.mark.pooler_only

AUTH_OK, AUTH_PASSWORD, AUTH_MD5, AUTH_SASL = 0, 3, 5, 10


@pytest.fixture
def hba_pgcoro(pgcoro_factory, pg, tls_certs, tmp_path):
    """start(rules, **settings) -> a pgcoro with auth_type hba and RULES as its
    auth_hba_file (TLS allowed for clients, so hostssl rules can match)."""
    def start(rules, ident=None, **settings):
        path = tmp_path / "hba.conf"
        path.write_text(rules)
        s = tls_settings(tls_certs, "allow", auth_type="hba", auth_hba_file=str(path))
        if ident is not None:
            (tmp_path / "ident.conf").write_text(ident)
            s["auth_ident_file"] = str(tmp_path / "ident.conf")
        s.update(settings)
        # the database of the sameuser test, and the peer test's way to PostgreSQL (the
        # unix socket, where the postgres role is trusted)
        dbs = {MD5_USER: f"host=127.0.0.1 port={pg.port} dbname=postgres",
               "viasocket": f"host={pg.sockdir} port={pg.port} dbname=postgres"}
        inst = pgcoro_factory(settings=s, databases=dbs)
        inst.hba_path = path
        inst.ident_path = tmp_path / "ident.conf"
        return inst
    return start


def login(inst, user=APP_USER, password=APP_PASS, database="postgres", unix=False):
    """Logs in with Wire; returns the authentication request codes pgcoro sent."""
    w = Wire(inst.host, inst.port, unix_dir=inst.sockdir if unix else None)
    try:
        w.login(user, password, database)
        assert w.query("SELECT 1") == [["1"]]
        return w.auth_codes
    finally:
        w.terminate()


def refused(inst, user=APP_USER, password=APP_PASS, database="postgres", unix=False):
    """The ErrorResponse of a refused login."""
    with Wire(inst.host, inst.port, unix_dir=inst.sockdir if unix else None) as w:
        with pytest.raises(PgError) as e:
            w.login(user, password, database)
        return e.value


def test_trust(hba_pgcoro):
    inst = hba_pgcoro("host all all 127.0.0.1/32 trust\n")
    assert login(inst, password="wrong") == [AUTH_OK]


def test_reject(hba_pgcoro):
    inst = hba_pgcoro("host all all 127.0.0.1/32 reject\nhost all all 127.0.0.1/32 trust\n")
    e = refused(inst)
    assert e.sqlstate == "28000"
    assert e.fields["M"] == ('pg_hba.conf rejects connection for host "127.0.0.1", user "app", '
                             'database "postgres", no encryption')


def test_no_matching_rule(hba_pgcoro):
    inst = hba_pgcoro("local all all trust\nhost all all 10.0.0.0/8 trust\n")
    e = refused(inst)
    assert e.sqlstate == "28000"
    assert e.fields["M"] == ('no pg_hba.conf entry for host "127.0.0.1", user "app", '
                             'database "postgres", no encryption')


@pytest.mark.parametrize("method,code", [("password", AUTH_PASSWORD), ("md5", AUTH_MD5),
                                         ("scram-sha-256", AUTH_SASL)])
def test_password_methods(hba_pgcoro, method, code):
    inst = hba_pgcoro(f"host all all 127.0.0.1/32 {method}\n")
    codes = login(inst)
    assert codes[0] == code and codes[-1] == AUTH_OK, codes
    e = refused(inst, password="wrong")
    assert e.sqlstate == "28P01"


def test_hostssl_and_hostnossl(pg, hba_pgcoro, tls_certs):
    inst = hba_pgcoro("hostssl all all 127.0.0.1/32 trust\n"
                      "hostnossl all all 127.0.0.1/32 reject\n")
    r = run_psql(pg, inst, "SELECT 1", password=None, **verify_full(tls_certs))
    assert r.stdout.strip() == "1"
    r = run_psql(pg, inst, "SELECT 1", password=None, check=False, sslmode="disable")
    assert r.returncode != 0
    assert "pg_hba.conf rejects connection" in r.stderr and "no encryption" in r.stderr
    # hostssl only: a plain client matches nothing
    inst2 = hba_pgcoro("hostssl all all all trust\n")
    r = run_psql(pg, inst2, "SELECT 1", password=None, check=False, sslmode="disable")
    assert 'no pg_hba.conf entry for host "127.0.0.1", user "app", database "postgres", ' \
           "no encryption" in r.stderr, r.stderr


def test_cert(pg, hba_pgcoro, tls_certs):
    inst = hba_pgcoro("hostssl all all 127.0.0.1/32 cert\n")
    r = run_psql(pg, inst, "SELECT current_user", password=None, **verify_full(tls_certs),
                 **client_cert(tls_certs, f"client-{APP_USER}"))
    assert r.stdout.strip() == APP_USER
    r = run_psql(pg, inst, "SELECT 1", password=None, check=False, **verify_full(tls_certs))
    assert "connection requires a valid client certificate" in r.stderr, r.stderr
    r = run_psql(pg, inst, "SELECT 1", user=MD5_USER, password=None, check=False,
                 **verify_full(tls_certs), **client_cert(tls_certs, f"client-{APP_USER}"))
    assert f'certificate authentication failed for user "{MD5_USER}"' in r.stderr, r.stderr


def test_local_peer(pg, hba_pgcoro):
    inst = hba_pgcoro("local all all peer\nhost all all all trust\n")
    me = pwd.getpwuid(os.getuid()).pw_name
    if me != APP_USER:
        e = refused(inst, unix=True)
        assert e.sqlstate == "28000"
        assert e.fields["M"] == f'Peer authentication failed for user "{APP_USER}"'
    # TCP is not local: the host rule applies
    assert login(inst, password=None) == [AUTH_OK]
    if not IS_ROOT:
        pytest.skip("the matching peer login runs psql as the postgres OS user (needs root)")
    r = subprocess.run(["runuser", "-u", "postgres", "--", pg.psql_bin, "-X", "-A", "-t", "-h",
                        inst.sockdir, "-p", str(inst.port), "-U", "postgres", "-d", "viasocket",
                        "-c", "SELECT current_user"], capture_output=True, text=True,
                       timeout=60, env=clean_env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "postgres"


def test_local_trust_and_reject(hba_pgcoro):
    inst = hba_pgcoro("local all md5user reject\nlocal all all trust\n")
    assert login(inst, password=None, unix=True) == [AUTH_OK]
    e = refused(inst, user=MD5_USER, password=MD5_PASS, unix=True)
    assert e.fields["M"] == ('pg_hba.conf rejects connection for host "[local]", user '
                             '"md5user", database "postgres"')
    # no local rule matches TCP
    e = refused(inst)
    assert "no pg_hba.conf entry" in e.fields["M"]


def test_user_and_database_matching(hba_pgcoro):
    inst = hba_pgcoro("host bench app 127.0.0.1/32 trust\n"
                      "host sameuser all 127.0.0.1/32 password\n"
                      "host postgres,\"bench\" md5user,nobody 127.0.0.1/32 md5\n"
                      "host all all 127.0.0.1/32 reject\n")
    assert login(inst, database="bench", password=None) == [AUTH_OK]
    assert login(inst, user=MD5_USER, password=MD5_PASS, database=MD5_USER) == \
        [AUTH_PASSWORD, AUTH_OK]
    assert login(inst, user=MD5_USER, password=MD5_PASS, database="bench") == \
        [AUTH_MD5, AUTH_OK]
    e = refused(inst)  # app@postgres: only the last rule
    assert e.fields["M"].startswith("pg_hba.conf rejects connection")


def test_cidr(hba_pgcoro):
    inst = hba_pgcoro("host all all 127.0.0.2/32 trust\n"
                      "host all all 127.0.0.0 255.255.255.0 password\n"
                      "host all all 127.0.0.0/8 reject\n")
    assert login(inst) == [AUTH_PASSWORD, AUTH_OK]  # not .2; inside 127.0.0.0/24
    inst2 = hba_pgcoro("host all all 127.0.0.1/32 trust\nhost all all 0.0.0.0/0 reject\n")
    assert login(inst2, password=None) == [AUTH_OK]
    inst3 = hba_pgcoro("host all all 127.128.0.0/9 trust\nhost all all ::1/128 trust\n")
    assert "no pg_hba.conf entry" in refused(inst3).fields["M"]


def test_reload_rereads_the_rules(hba_pgcoro):
    inst = hba_pgcoro("host all all 127.0.0.1/32 trust\n")
    assert login(inst, password=None) == [AUTH_OK]
    inst.hba_path.write_text("host all all 127.0.0.1/32 reject\n")
    os.kill(inst.pid, signal.SIGHUP)
    wait_until(lambda: inst.log_text().count("configuration reloaded") >= 1, "reload")
    assert refused(inst).sqlstate == "28000"
    # a broken file keeps the rules in force
    inst.hba_path.write_text("host all all 127.0.0.1/32 ident\n")
    os.kill(inst.pid, signal.SIGHUP)
    wait_until(lambda: "reload failed" in inst.log_text(), "failed reload")
    assert "hba.conf:1: invalid or unsupported authentication method" in inst.log_text()
    assert refused(inst).sqlstate == "28000"


def reload(inst, count):
    """SIGHUP, then waits for the COUNTth "configuration reloaded" or a failed reload."""
    os.kill(inst.pid, signal.SIGHUP)
    wait_until(lambda: inst.log_text().count("configuration reloaded") >= count
               or "reload failed" in inst.log_text(), "reload")


def test_peer_with_ident_map(hba_pgcoro):
    """local ... peer map=: the OS user of the unix-socket peer (this test's) logs in as
    the database users its map lines name, and only as them; the map is re-read on
    reload."""
    me = pwd.getpwuid(os.getuid()).pw_name
    inst = hba_pgcoro("local all all peer map=os\n",
                      ident=f"# MAP SYSTEM-USER DATABASE-USER\nos {me} {APP_USER}\n"
                            f'os "{me}" {MD5_USER}\nos somebody_else postgres\n')
    assert login(inst, password=None, unix=True) == [AUTH_OK]
    assert login(inst, user=MD5_USER, password=None, unix=True) == [AUTH_OK]
    e = refused(inst, user="postgres", password=None, unix=True)
    assert e.sqlstate == "28000"
    assert e.fields["M"] == 'Peer authentication failed for user "postgres"'
    assert f'peer OS user "{me}" is not user "postgres" (ident map "os" has no line' \
        in inst.log_text()
    # a regular expression, and "all"
    inst.ident_path.write_text(f'os "/^{me[0]}.*$" {APP_USER}\nos nobody all\n')
    reload(inst, 1)
    assert "reload failed" not in inst.log_text()
    assert login(inst, password=None, unix=True) == [AUTH_OK]
    assert refused(inst, user=MD5_USER, password=None, unix=True).sqlstate == "28000"
    inst.ident_path.write_text(f"os {me} all\n")
    reload(inst, 2)
    assert login(inst, user=MD5_USER, password=None, unix=True) == [AUTH_OK]
    # a map line that does not parse keeps the maps in force
    inst.ident_path.write_text(f"os {me}\n")
    reload(inst, 3)
    assert "ident.conf:1: missing field" in inst.log_text()
    assert login(inst, user=MD5_USER, password=None, unix=True) == [AUTH_OK]


def test_cert_with_ident_map(pg, hba_pgcoro, tls_certs):
    """hostssl ... cert map=: the client certificate's CN logs in as the users its map
    lines name (a regular expression's group replacing \\1); with a map, a CN equal to the
    user name is not enough."""
    tls_certs.issue("client-app.example.com", "app.example.com", "ca")
    inst = hba_pgcoro("hostssl all all 127.0.0.1/32 cert map=cn\n",
                      ident=f"cn /^(.*)\\.example\\.com$ \\1\ncn {MD5_USER} {APP_USER}\n")

    def cert_login(cert, user):
        return run_psql(pg, inst, "SELECT current_user", user=user, password=None,
                        check=False, **verify_full(tls_certs), **client_cert(tls_certs, cert))

    r = cert_login("client-app.example.com", APP_USER)
    assert r.returncode == 0 and r.stdout.strip() == APP_USER, r.stderr
    r = cert_login(f"client-{MD5_USER}", APP_USER)
    assert r.returncode == 0 and r.stdout.strip() == APP_USER, r.stderr
    r = cert_login("client-app.example.com", MD5_USER)
    assert f'certificate authentication failed for user "{MD5_USER}"' in r.stderr, r.stderr
    r = cert_login(f"client-{APP_USER}", APP_USER)
    assert f'certificate authentication failed for user "{APP_USER}"' in r.stderr, r.stderr
    assert f'certificate CN "{APP_USER}" is not user "{APP_USER}" (ident map "cn"' \
        in inst.log_text()


def test_cert_on_host_rule(pg, hba_pgcoro, tls_certs):
    """host ... cert (PgBouncer accepts it): a TLS client with a certificate logs in, a
    plain one is refused."""
    inst = hba_pgcoro("host all all 127.0.0.1/32 cert\n")
    r = run_psql(pg, inst, "SELECT current_user", password=None, **verify_full(tls_certs),
                 **client_cert(tls_certs, f"client-{APP_USER}"))
    assert r.stdout.strip() == APP_USER
    r = run_psql(pg, inst, "SELECT 1", password=None, check=False, sslmode="disable")
    assert "connection requires a valid client certificate" in r.stderr, r.stderr


def test_blanks_around_list_commas(hba_pgcoro):
    inst = hba_pgcoro(f"host bench , postgres\t{APP_USER} ,{MD5_USER}  127.0.0.1/32 trust\n"
                      "host all all 127.0.0.1/32 reject\n")
    assert login(inst, password=None) == [AUTH_OK]
    assert login(inst, user=MD5_USER, password=None, database="bench") == [AUTH_OK]
    assert refused(inst, database="pooldb").fields["M"].startswith(
        "pg_hba.conf rejects connection")


def test_role_group_rule_never_matches(hba_pgcoro):
    """A rule naming a role group (+group, samerole) never matches, as PgBouncer skips it,
    with a warning; a reject rule naming one is refused (it could not reject anyone)."""
    inst = hba_pgcoro(f"host all +admins,{APP_USER} 127.0.0.1/32 trust\n"
                      "host samerole all 127.0.0.1/32 trust\n"
                      "host all all 127.0.0.1/32 password\n")
    assert login(inst) == [AUTH_PASSWORD, AUTH_OK]
    log = inst.log_text()
    assert 'hba.conf:1: "+admins": pgcoro knows no role membership: this rule never ' \
           "matches" in log
    assert 'hba.conf:2: "samerole"' in log
    inst.hba_path.write_text("host all +admins 127.0.0.1/32 reject\n"
                             "host all all 127.0.0.1/32 trust\n")
    reload(inst, 1)
    assert 'hba.conf:1: "+admins": pgcoro knows no role membership, so it cannot tell whom ' \
           "this reject rule rejects" in inst.log_text()
    assert login(inst) == [AUTH_PASSWORD, AUTH_OK]  # the rules in force stay
