"""pgbench through pgcoro in session mode: 50 clients over a pool of 10."""

import pytest

from conftest import APP_PASS, APP_USER, clean_env, run_pgbench


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_session(pgcoro_factory, pg, mode):
    inst = pgcoro_factory(settings={"default_pool_size": 10})
    # In session mode a client keeps its server for its whole connection: -C opens a new
    # connection per transaction, -j 50 gives each client its own thread (a thread blocked
    # in connect would otherwise starve the clients that hold servers).
    argv = [pg.pgbench_bin, "-n", "-C", "-j", "50", "-c", "50", "-T", "3", "-M", mode, "-h",
            inst.host, "-p", str(inst.port), "-U", APP_USER, inst.db("bench")]
    run_pgbench(argv, clean_env(PGPASSWORD=APP_PASS, PGCONNECT_TIMEOUT=60))
    inst.assert_serving()
