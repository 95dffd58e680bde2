"""pgbench through pgcoro in session mode: 50 clients over a pool of 10."""

import re
import subprocess

import pytest

from conftest import APP_PASS, APP_USER, clean_env


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_session(pgcoro_factory, pg, mode):
    inst = pgcoro_factory(settings={"default_pool_size": 10})
    # In session mode a client keeps its server for its whole connection: -C opens a new
    # connection per transaction, -j 50 gives each client its own thread (a thread blocked
    # in connect would otherwise starve the clients that hold servers).
    argv = [pg.pgbench_bin, "-n", "-C", "-j", "50", "-c", "50", "-T", "3", "-M", mode, "-h",
            inst.host, "-p", str(inst.port), "-U", APP_USER, inst.db("bench")]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=180,
                       env=clean_env(PGPASSWORD=APP_PASS, PGCONNECT_TIMEOUT=60))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    assert m and int(m.group(1)) > 0, out
    m = re.search(r"number of failed transactions: (\d+)", out)
    if m:
        assert int(m.group(1)) == 0, out
    bad = [ln for ln in out.splitlines() if re.search(r"error|fatal|abort", ln, re.I)]
    assert not bad, out
    inst.assert_serving()
