"""The C libpq client (tests/integration/libpq_client.c) through pgcoro: extended protocol,
binary formats, prepared statements, portals, pipeline mode, a 20 MB bytea."""

import os
import subprocess

from conftest import clean_env


def run_client(tools, conninfo, *args):
    r = subprocess.run([os.path.join(tools, "libpq_client"), conninfo, *args], capture_output=True,
                       text=True, timeout=240, env=clean_env())
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), (
        f"libpq_client exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    assert "Sanitizer" not in r.stderr and "runtime error:" not in r.stderr, r.stderr


def test_libpq_tcp(pgcoro, tools):
    run_client(tools, pgcoro.dsn())
    pgcoro.assert_serving()


def test_libpq_unix_socket(pgcoro, tools):
    run_client(tools, pgcoro.dsn(unix=True), "4")
    pgcoro.assert_serving()


def test_libpq_sequential_clients_share_servers(pgcoro_factory, tools):
    # a pool of 1: every client reuses the same server after DISCARD ALL, so state left
    # by one client (prepared statements, settings, temp tables) must not leak
    inst = pgcoro_factory(settings={"default_pool_size": 1})
    for _ in range(3):
        run_client(tools, inst.dsn(), "1")
    inst.assert_serving()
