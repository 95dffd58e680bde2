"""pgcoro --check-config: 0 for a valid file, 2 with file:line: reason for a bad one."""

import subprocess

import pytest

from conftest import ASAN_OPTIONS, UBSAN_OPTIONS, clean_env

pytestmark = pytest.mark.pooler_only

GOOD = """\
; a comment
[pgcoro]
listen_addr = 127.0.0.1
listen_port = 6599
unix_socket_dir = {dir}
auth_type = scram-sha-256
auth_file = {dir}/userlist.txt
pool_mode = session
default_pool_size = 10
max_client_conn = 300
server_reset_query = DISCARD ALL
log_level = info

[databases]
postgres = host=127.0.0.1 port=5433 dbname=postgres
small = host=127.0.0.1 port=5433 dbname=postgres pool_size=5 pool_mode=session
nowhere = host=127.0.0.1 port=1 dbname=postgres
"""


def check(pgcoro_bin, path):
    r = subprocess.run([pgcoro_bin, "--check-config", str(path)], capture_output=True,
                       text=True, timeout=60,
                       env=clean_env(ASAN_OPTIONS=ASAN_OPTIONS, UBSAN_OPTIONS=UBSAN_OPTIONS))
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in r.stderr, r.stderr
    return r


@pytest.fixture
def good_text(tmp_path):
    (tmp_path / "userlist.txt").write_text('"app" "apppass"\n')
    return GOOD.format(dir=tmp_path)


def test_good_config(pgcoro_bin, tmp_path, good_text):
    path = tmp_path / "good.ini"
    path.write_text(good_text)
    r = check(pgcoro_bin, path)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("bad_line", [
    "no_such_key = 1",
    "pool_mode = sometimes",
    "auth_type = telepathy",
    "default_pool_size = lots",
])
def test_bad_config(pgcoro_bin, tmp_path, good_text, bad_line):
    lines = good_text.splitlines()
    at = lines.index("log_level = info") + 1   # inside [pgcoro]
    lines.insert(at, bad_line)
    path = tmp_path / "bad.ini"
    path.write_text("\n".join(lines) + "\n")
    r = check(pgcoro_bin, path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert f"{path}:{at + 1}:" in r.stderr, r.stderr


def test_missing_file(pgcoro_bin, tmp_path):
    r = check(pgcoro_bin, tmp_path / "absent.ini")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert str(tmp_path / "absent.ini") in r.stderr
