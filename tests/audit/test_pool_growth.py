"""Finding A3: pools are never freed. Every (database, user) a client logs in with makes a
pool that lives until exit (pool_get, src/pool.c; pool_free runs only at shutdown): with a
`*` database entry an authenticated client grows pgcoro's memory without bound by asking
for new database names (each also costs a failed server connect), and every later login
(pool_get's linear search), the once-a-second tick and every /metrics scrape walk all of
them. PgBouncer frees such pools after autodb_idle_timeout.

Fails on the code with the defect."""

import time

import pytest

from conftest import PgError, Wire, vmrss_kb

pytestmark = pytest.mark.pooler_only

N = 3000


def test_wildcard_pools_do_not_accumulate(pgcoro_factory, pg):
    inst = pgcoro_factory(settings={"auth_type": "trust", "pool_mode": "transaction"},
                          databases={"*": f"host=127.0.0.1 port={pg.port}"})
    # warm up: one pool, one login
    with Wire.to(inst) as w:
        w.login(database="postgres")
    base = vmrss_kb(inst.pid)
    t0 = time.monotonic()
    for i in range(N):
        with Wire.to(inst) as w:
            w.send_startup("app", f"nosuchdb_{i:06d}")
            try:
                w.authenticate("app", "")
                w.query("SELECT 1")
            except PgError:
                pass
    elapsed = time.monotonic() - t0
    grown = vmrss_kb(inst.pid) - base
    with Wire.to(inst) as w:
        w.login(database="postgres")
        n = len(w.query("SELECT 1"))
    print(f"\n{N} logins with new database names: RSS +{grown} kB in {elapsed:.1f}s")
    assert grown < 2048, f"{N} database names asked for grew pgcoro's RSS by {grown} kB"
    inst.assert_serving()
