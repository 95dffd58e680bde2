"""A change of TLS settings at run time, as PgBouncer: a reload or SET that changes the
server_tls_* settings replaces the server connections (idle ones at once, busy ones when
released), each closed with PgBouncer's words "database configuration changed", which
alerts written for PgBouncer look for; a reload that changes nothing keeps them. A
client's login line names its TLS version and cipher (PgBouncer's tls=), so
client_tls13_ciphers can be seen in force, also after a console SET."""

import re

import psycopg2
import pytest

from conftest import edit_and_reload, run_psql, tls_settings, wait_until

pytestmark = pytest.mark.pooler_only

ADMIN, ADMIN_PASS = "admin", "adminpw"
CHANGED = "database configuration changed"


def reload_with(inst, old, new, nth):
    """Replaces OLD by NEW in INST's file, reloads, and waits for the NTH reload."""
    edit_and_reload(inst, old, new)
    wait_until(lambda: inst.log_text().count("configuration reloaded") == nth, "the reload")


def backend_pid(conn):
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    return cur.fetchone()[0]


def test_server_tls_change_replaces_servers(pgcoro_factory):
    inst = pgcoro_factory(settings={"pool_mode": "transaction",
                                    "server_tls_sslmode": "disable",
                                    "server_tls_protocols": "secure"})
    busy = inst.connect()              # holds its server in a transaction
    idle = inst.connect()
    idle.autocommit = True
    try:
        held = backend_pid(busy)
        first = backend_pid(idle)
        assert first != held
        reload_with(inst, "server_tls_sslmode = disable", "server_tls_sslmode = disable", 1)
        assert backend_pid(idle) == first  # nothing changed: the server is kept
        assert CHANGED not in inst.log_text()

        reload_with(inst, "server_tls_sslmode = disable", "server_tls_sslmode = allow", 2)
        # the idle server is closed at once, with PgBouncer's words
        wait_until(lambda: inst.log_text().count(CHANGED) == 1, "the idle server closed")
        assert re.search(rf"server \d+ \(postgres/app\): closing.*{CHANGED}", inst.log_text())
        assert backend_pid(busy) == held   # the transaction goes on, on its server
        busy.commit()                      # released: closed too
        wait_until(lambda: inst.log_text().count(CHANGED) == 2, "the released server closed")
        now = backend_pid(idle)
        assert now not in (first, held)

        # a protocol range is a server TLS setting too
        reload_with(inst, "server_tls_protocols = secure", "server_tls_protocols = tlsv1.2", 3)
        wait_until(lambda: inst.log_text().count(CHANGED) == 3, "the server closed")
        assert backend_pid(idle) != now
    finally:
        busy.close()
        idle.close()


def test_server_tls_set_replaces_servers(pgcoro_factory):
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "admin_users": ADMIN},
                          users={ADMIN: ADMIN_PASS})
    c = inst.connect()
    c.autocommit = True
    admin = psycopg2.connect(host=inst.host, port=inst.port, user=ADMIN, password=ADMIN_PASS,
                             dbname="pgbouncer", connect_timeout=30)
    admin.autocommit = True
    try:
        first = backend_pid(c)
        admin.cursor().execute("SET server_tls_sslmode = 'allow'")
        wait_until(lambda: CHANGED in inst.log_text(), "the idle server closed")
        assert backend_pid(c) != first
    finally:
        c.close()
        admin.close()


def test_login_line_names_tls_and_tls13_ciphers(pgcoro_factory, pg, tls_certs):
    inst = pgcoro_factory(
        settings=tls_settings(tls_certs, "allow", client_tls_protocols="tlsv1.3",
                              client_tls13_ciphers="TLS_CHACHA20_POLY1305_SHA256",
                              admin_users=ADMIN),
        users={ADMIN: ADMIN_PASS})
    run_psql(pg, inst, "SELECT 1", sslmode="require")
    wait_until(lambda: re.search(r"login done, server \d+, "
                                 r"tls=TLSv1\.3/TLS_CHACHA20_POLY1305_SHA256$",
                                 inst.log_text(), re.M), "the TLS login logged")
    run_psql(pg, inst, "SELECT 1", sslmode="disable")
    wait_until(lambda: re.search(r"login done, server \d+, tls=no$", inst.log_text(), re.M),
               "the plain login logged")

    admin = psycopg2.connect(host=inst.host, port=inst.port, user=ADMIN, password=ADMIN_PASS,
                             dbname="pgbouncer", connect_timeout=30)
    admin.autocommit = True
    try:
        admin.cursor().execute("SET client_tls13_ciphers = 'TLS_AES_256_GCM_SHA384'")
        run_psql(pg, inst, "SELECT 1", sslmode="require")
        wait_until(lambda: "tls=TLSv1.3/TLS_AES_256_GCM_SHA384" in inst.log_text(),
                   "the new cipher suite in force")
        admin.cursor().execute("SET client_tls13_ciphers = 'unknown'")
        wait_until(lambda: "failed to set the TLSv1.3 cipher suites" in inst.log_text(),
                   "PgBouncer's words for a cipher suite OpenSSL does not know")
    finally:
        admin.close()
    run_psql(pg, inst, "SELECT 1", sslmode="require")  # the running context stays
    assert len(re.findall(r"login done, server \d+, tls=TLSv1\.3/TLS_AES_256_GCM_SHA384$",
                          inst.log_text(), re.M)) == 2


def test_server_tls_files_changed_on_disk_replace_servers(pgcoro_factory, pg_tls, tls_certs):
    """As PgBouncer compares its server TLS configuration with the files' contents: a
    reload that finds server_tls_ca_file changed on disk (same name) replaces the servers;
    a reload of the same contents keeps them, also after a SET of another file that the
    file then names too."""
    with open(tls_certs.path("ca.crt")) as f:
        ca_text = f.read()
    with open(tls_certs.path("wrong_ca.crt")) as f:
        bundle_text = ca_text + f.read()
    inst = pgcoro_factory(
        settings={"admin_users": ADMIN, "pool_mode": "transaction",
                  "server_tls_sslmode": "verify-ca", "server_tls_ca_file": "CAFILE"},
        users={ADMIN: ADMIN_PASS},
        databases={"postgres": f"host=127.0.0.1 port={pg_tls.port} dbname=postgres"},
        replace_databases=True)
    cafile = f"{inst.workdir}/server-ca.crt"
    bundle = f"{inst.workdir}/bundle.crt"
    with open(cafile, "w") as f:
        f.write(ca_text)
    with open(bundle, "w") as f:
        f.write(bundle_text)
    reload_with(inst, "server_tls_ca_file = CAFILE", f"server_tls_ca_file = {cafile}", 1)
    c = inst.connect()                 # transaction mode: its server is idle between queries
    c.autocommit = True
    admin = psycopg2.connect(host=inst.host, port=inst.port, user=ADMIN, password=ADMIN_PASS,
                             dbname="pgbouncer", connect_timeout=30)
    admin.autocommit = True
    try:
        first = backend_pid(c)
        reload_with(inst, cafile, cafile, 2)                    # same contents
        assert backend_pid(c) == first
        assert CHANGED not in inst.log_text()

        with open(cafile, "w") as f:   # another CA in the same file
            f.write(bundle_text)
        reload_with(inst, cafile, cafile, 3)
        wait_until(lambda: inst.log_text().count(CHANGED) == 1, "the idle server closed")
        second = backend_pid(c)
        assert second != first

        # SET reads the file it names: a reload that then names it too changes nothing
        admin.cursor().execute(f"SET server_tls_ca_file = '{bundle}'")
        wait_until(lambda: inst.log_text().count(CHANGED) == 2, "replaced after the SET")
        third = backend_pid(c)
        assert third != second
        reload_with(inst, cafile, bundle, 4)
        assert backend_pid(c) == third
        assert inst.log_text().count(CHANGED) == 2
    finally:
        c.close()
        admin.close()
