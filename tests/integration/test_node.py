"""node-postgres (npm `pg`, pinned in tests/integration/node/package.json and installed by
`make deps`) through pgcoro: its connect-then-end regression test (a Terminate before the
startup packet must close quietly), and queries of every kind from 20 clients at once in
transaction mode over 5 servers, compared with PostgreSQL (PGCORO_TEST_DIRECT=1)."""

import os
import shutil
import subprocess

import pytest

from conftest import APP_PASS, APP_USER, clean_env

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")


def run_node(script, inst, db="postgres", timeout=120):
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "pg")):
        pytest.fail("node-postgres missing: run `make deps` (it installs tests/integration/node)")
    return subprocess.run([node, os.path.join(NODE_DIR, script), inst.host, str(inst.port),
                           APP_USER, APP_PASS, inst.db(db)],
                          capture_output=True, text=True, timeout=timeout, cwd=NODE_DIR,
                          env=clean_env())


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_connect_then_end(pgcoro_factory, mode):
    """Before: FATAL 08P01 invalid startup packet length 1476395008, emitted as an
    'error' event node-postgres applications do not handle (the process dies)."""
    inst = pgcoro_factory(settings={"pool_mode": mode, "auth_type": "md5"})
    r = run_node("connect_end.js", inst)
    assert r.returncode == 0 and r.stdout.strip() == "ended", (r.stdout, r.stderr)
    inst.assert_serving()


def test_queries_transaction_mode(pgcoro_factory):
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 5,
                                    "auth_type": "md5"})
    r = run_node("queries.js", inst)
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.stdout, r.stderr)
    inst.assert_serving()
