"""pgbench through pgcoro in session mode: 50 clients over a pool of 10."""

import pytest

from conftest import pgbench_through


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_session(pgcoro_factory, pg, mode):
    inst = pgcoro_factory(settings={"default_pool_size": 10})
    # In session mode a client keeps its server for its whole connection: -C opens a new
    # connection per transaction, -j 50 gives each client its own thread (a thread blocked
    # in connect would otherwise starve the clients that hold servers).
    pgbench_through(pg, inst, "-C", "-j", "50", "-c", "50", "-T", "3", "-M", mode)
    inst.assert_serving()
