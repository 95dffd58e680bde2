"""`make demo`'s script in its --smoke mode (what the demo starts from a PgBouncer file in
transaction mode, then the pgbench line it prints — 20 clients on a pool of 5 —, one query
over TCP and one over the unix socket, SHOW POOLS on the admin console and a /metrics
scrape), with the test binary, its own directory and free ports; pgcoro and PostgreSQL
must stop cleanly."""

import os
import subprocess

import pytest

from conftest import ASAN_OPTIONS, REPO, SANITIZER_MARKERS, UBSAN_OPTIONS, clean_env, free_port

pytestmark = pytest.mark.pooler_only


def test_demo_smoke(session_root, pgcoro_bin):
    demo_dir = os.path.join(session_root, "demo")
    env = clean_env(PGCORO_DEMO_BIN=pgcoro_bin, PGCORO_DEMO_DIR=demo_dir,
                    PGCORO_DEMO_PORT=str(free_port()), PGCORO_DEMO_PG_PORT=str(free_port()),
                    PGCORO_DEMO_METRICS_PORT=str(free_port()), ASAN_OPTIONS=ASAN_OPTIONS,
                    UBSAN_OPTIONS=UBSAN_OPTIONS)
    r = subprocess.run([os.path.join(REPO, "tests", "demo.sh"), "--smoke"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=240)
    out = r.stdout
    assert r.returncode == 0, out[-4000:]
    assert "demo: pgbench -c 20 on a pool of 5: number of transactions actually processed: " \
        "500/500" in out, out[-4000:]
    assert "demo: smoke demo, unix ok; SHOW POOLS: demo pgbouncer ;" in out, out[-4000:]
    assert 'metrics: pgcoro_transactions_total{database="demo",user="demo"}' in out, out[-4000:]
    assert "demo: pgcoro exited with status 0" in out, out[-4000:]
    assert not any(m in out for m in SANITIZER_MARKERS), out[-4000:]
    assert "demo: stopped" in out
