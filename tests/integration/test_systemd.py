"""systemd integration: `make install DESTDIR=...` lays out the tree, the units pass
`systemd-analyze verify`, and pgcoro started by systemd-socket-activate serves psql
through the sockets it was passed (TCP and unix)."""

import os
import re
import shutil
import signal
import subprocess

import pytest

from conftest import (APP_PASS, APP_USER, REPO, SANITIZER_MARKERS, clean_env, free_port,
                      wait_port)

pytestmark = pytest.mark.pooler_only
ROOT = REPO


@pytest.fixture(scope="module")
def installed(tmp_path_factory, pgcoro_bin):
    # install what is under test (the sanitized build under `make check`): no rebuild
    dest = str(tmp_path_factory.mktemp("destdir"))
    SANITIZE = "address,undefined" if "/build/san/" in pgcoro_bin else ""
    r = subprocess.run(["make", "-s", "install", f"DESTDIR={dest}", "PREFIX=/usr",
                        f"SANITIZE={SANITIZE}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return dest


def test_install_layout(installed):
    want = ["usr/sbin/pgcoro", "etc/pgcoro/pgcoro.ini", "etc/pgcoro/userlist.txt",
            "lib/systemd/system/pgcoro.service", "lib/systemd/system/pgcoro.socket",
            "usr/lib/sysusers.d/pgcoro.conf", "usr/lib/tmpfiles.d/pgcoro.conf",
            "usr/share/man/man8/pgcoro.8", "usr/share/man/man5/pgcoro.ini.5",
            "usr/share/doc/pgcoro/README.md"]
    missing = [p for p in want if not os.path.isfile(os.path.join(installed, p))]
    assert not missing, missing
    assert os.access(os.path.join(installed, "usr/sbin/pgcoro"), os.X_OK)
    assert oct(os.stat(os.path.join(installed, "etc/pgcoro/pgcoro.ini")).st_mode & 0o777) == "0o640"
    unit = open(os.path.join(installed, "lib/systemd/system/pgcoro.service")).read()
    assert "ExecStart=/usr/sbin/pgcoro -c /etc/pgcoro/pgcoro.ini" in unit
    assert re.search(r"(?m)^Type=notify(-reload)?$", unit)
    # the installed config is valid as it is (its auth_file named by its final path,
    # pointed here at DESTDIR's)
    text = open(os.path.join(installed, "etc/pgcoro/pgcoro.ini")).read()
    assert "auth_file = /etc/pgcoro/userlist.txt" in text
    assert "unix_socket_dir = /run/pgcoro" in text
    local = os.path.join(installed, "local.ini")
    with open(local, "w") as f:
        f.write(text.replace("/etc/pgcoro/userlist.txt",
                             os.path.join(installed, "etc/pgcoro/userlist.txt")))
    r = subprocess.run([os.path.join(installed, "usr/sbin/pgcoro"), "--check-config", local],
                       capture_output=True, text=True, timeout=60,
                       env=clean_env(ASAN_OPTIONS="detect_leaks=0"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_man_page_lists_every_key(installed):
    """pgcoro.ini(5) is generated from the settings table: every key conf/pgcoro.ini
    documents is in it, with its default."""
    page = open(os.path.join(installed, "usr/share/man/man5/pgcoro.ini.5")).read()
    doc = open(os.path.join(ROOT, "conf/pgcoro.ini")).read()
    keys = re.findall(r"(?m)^;(\w+) = ", doc[:doc.index("\n[databases]\n")])
    assert len(keys) > 30
    for key in keys:
        assert re.search(rf"(?m)^\.B {key}$", page), key
    assert page.startswith(".TH PGCORO.INI 5")
    daemon = open(os.path.join(installed, "usr/share/man/man8/pgcoro.8")).read()
    for word in ("SIGHUP", "SIGTERM", "SIGINT", "socket activation"):
        assert word in daemon


def test_units_verify(installed, tmp_path):
    """The installed units pass `systemd-analyze verify` (unit syntax, directives known to
    this systemd, the socket's service exists, ExecStart is executable: pointed at the
    DESTDIR binary, the only change)."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    src = os.path.join(installed, "lib/systemd/system")
    binary = os.path.join(installed, "usr/sbin/pgcoro")
    for unit in ("pgcoro.socket", "pgcoro.service"):
        text = open(os.path.join(src, unit)).read().replace("/usr/sbin/pgcoro", binary)
        (tmp_path / unit).write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no",
                        str(tmp_path / "pgcoro.socket"), str(tmp_path / "pgcoro.service")],
                       capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and out.strip() == "", out


def test_socket_activation_serves_psql(pgcoro_factory, pgcoro_bin, pg, tmp_path):
    """systemd-socket-activate passes a TCP and a unix socket: pgcoro uses them instead
    of binding its own, and psql works through both."""
    if not shutil.which("systemd-socket-activate"):
        pytest.skip("systemd-socket-activate not installed")
    inst = pgcoro_factory()  # for its config, users and database entries
    assert inst.stop() == 0
    port = free_port()
    sockdir = str(tmp_path)
    os.chmod(sockdir, 0o777)
    upath = os.path.join(sockdir, f".s.PGSQL.{port}")
    logpath = str(tmp_path / "activated.log")
    with open(logpath, "wb") as log:
        proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "-l", upath,
             pgcoro_bin, "-c", inst.config_path],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            env=clean_env(ASAN_OPTIONS="detect_leaks=1"))
    try:
        wait_port(port, proc, timeout=30, what="socket-activated pgcoro")
        # systemd-socket-activate execs pgcoro: the same PID. The first connection
        # starts it (the sockets were already listening before that).
        for host in ("127.0.0.1", sockdir):
            r = subprocess.run([pg.psql_bin, "-X", "-At", "-h", host, "-p", str(port), "-U",
                                APP_USER, "-d", "postgres", "-c", "SELECT 6 * 7"],
                               capture_output=True, text=True, timeout=60,
                               env=clean_env(PGPASSWORD=APP_PASS))
            assert r.returncode == 0 and r.stdout.strip() == "42", r.stdout + r.stderr
        text = open(logpath, errors="replace").read()
        assert "socket activation: 2 socket(s) from systemd" in text, text
        assert f"listening on 127.0.0.1:{inst.port}" not in text
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    assert proc.returncode == 0, open(logpath, errors="replace").read()
    text = open(logpath, errors="replace").read()
    assert not [m for m in SANITIZER_MARKERS if m in text], text
