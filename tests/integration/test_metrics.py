"""/metrics (metrics_listen): the Prometheus text parsed by python3-prometheus-client's
parser after a known workload — exact counters (transactions, queries, errors by SQLSTATE
class from servers and from pgcoro, timeouts, cancels), histograms whose buckets agree with
their counts and with the counters, gauges of a busy pool —, other paths and methods
refused, the endpoint off by default and opened by a reload; and the Debian
prometheus-pgbouncer-exporter pointed at pgcoro's console returning its metric families."""

import os
import shutil
import signal
import subprocess
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import (APP_PASS, APP_USER, PgError, Wire, clean_env, client_backends,
                      free_port, pid_alive, send_cancel_request, wait_port, wait_until)

pytestmark = pytest.mark.pooler_only

STATS, STATS_PASS = "statsu", "statspw"


def scrape(port, path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def families(text):
    """{family name: {(sample name, frozenset(labels)): value}}; the parser raises on any
    line that is not valid Prometheus text."""
    out = {}
    for fam in text_string_to_metric_families(text):
        d = out.setdefault(fam.name, {"type": fam.type})
        for s in fam.samples:
            d[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(fams, family, name=None, **labels):
    return fams[family].get((name or family, frozenset(labels.items())))


def pool_labels(db="postgres", user=APP_USER):
    return {"database": db, "user": user}


def check_histogram(fams, family, **labels):
    """Buckets cumulative and ascending, +Inf equal to _count; returns (count, sum)."""
    assert fams[family]["type"] == "histogram", family
    buckets = sorted(
        (float(dict(k[1])["le"]), v) for k, v in fams[family].items()
        if k != "type" and k[0] == family + "_bucket" and
        {kk: vv for kk, vv in k[1] if kk != "le"} == labels)
    assert len(buckets) == 17 and buckets[-1][0] == float("inf"), buckets
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), (family, buckets)
    count = sample(fams, family, family + "_count", **labels)
    total = sample(fams, family, family + "_sum", **labels)
    assert counts[-1] == count, (family, buckets, count)
    assert total >= 0
    return count, total


def start(pgcoro_factory, **settings):
    port = free_port()
    base = {"pool_mode": "transaction", "default_pool_size": 1, "stats_users": STATS,
            "metrics_listen": f"127.0.0.1:{port}", "query_wait_timeout": 1}
    base.update(settings)
    inst = pgcoro_factory(settings=base, users={STATS: STATS_PASS})
    inst.metrics_port = port
    # the factory waits for the client port; /metrics opens right after it
    wait_port(port, inst.proc, what="metrics endpoint")
    return inst


def test_metrics_after_known_workload(pgcoro_factory, pg):
    inst = start(pgcoro_factory)
    a = Wire.to(inst)
    a.login()
    for _ in range(5):
        assert a.query("select 1") == [["1"]]
    for q in ("begin", "select 1", "select 2", "commit"):
        a.query(q)
    with pytest.raises(PgError) as e:
        a.query("select 1/0")
    assert e.value.sqlstate == "22012"
    # a cancelled query: 57014 from the server, one forwarded cancel
    pid, key = a.backend_key
    result = {}

    def sleeper():
        try:
            a.query("select pg_sleep(60) /* metrics_cancel */")
        except PgError as err:
            result["sqlstate"] = err.sqlstate

    t = threading.Thread(target=sleeper, daemon=True)
    t.start()
    wait_until(lambda: [b for b in client_backends(pg, "postgres", APP_USER)
                        if b[2] == "active" and "metrics_cancel" in (b[3] or "")],
               "the sleep running")
    assert send_cancel_request(pid, key, port=inst.port)
    t.join(30)
    assert result == {"sqlstate": "57014"}
    assert send_cancel_request(1, 2, port=inst.port)  # unknown keys: ignored
    # a wrong password: a login error (no pool yet)
    with Wire.to(inst) as w:
        with pytest.raises(PgError) as e:
            w.login(password="wrong")
        assert e.value.sqlstate == "28P01"
    # A holds the only server in a transaction; B waits past query_wait_timeout (57014)
    a.query("begin")
    with Wire.to(inst) as b:
        b.login()
        b.send(Wire.msg("Q", b"select 1\0"))
        assert b.expect_error()["C"] == "57014"

    fams = families(scrape(inst.metrics_port))
    p = pool_labels()
    # 5 + 1 (begin..commit) + 1 (1/0) + 1 (cancelled) transactions ended; the last begin is open
    assert sample(fams, "pgcoro_transactions", "pgcoro_transactions_total", **p) == 8
    assert sample(fams, "pgcoro_queries", "pgcoro_queries_total", **p) == 12
    errs = {dict(k[1])["class"]: v for k, v in fams["pgcoro_errors"].items()
            if k != "type" and dict(k[1])["database"] == "postgres"}
    assert errs == {"22": 1, "57": 2}, errs  # 1/0; the cancel and query_wait_timeout
    assert sample(fams, "pgcoro_login_errors", "pgcoro_login_errors_total", **{"class": "28"}) == 1
    assert sample(fams, "pgcoro_timeouts", "pgcoro_timeouts_total", kind="query_wait", **p) == 1
    assert sample(fams, "pgcoro_timeouts", "pgcoro_timeouts_total", kind="client_idle", **p) == 0
    assert sample(fams, "pgcoro_cancel_requests", "pgcoro_cancel_requests_total",
                  result="forwarded") == 1
    assert sample(fams, "pgcoro_cancel_requests", "pgcoro_cancel_requests_total",
                  result="ignored") == 1
    assert sample(fams, "pgcoro_cancels", "pgcoro_cancels_total", **p) == 1

    xacts, xact_sum = check_histogram(fams, "pgcoro_transaction_duration_seconds", **p)
    assert xacts == 8
    assert xact_sum > 0
    queries, _ = check_histogram(fams, "pgcoro_query_duration_seconds", **p)
    assert queries == 12
    waits, _ = check_histogram(fams, "pgcoro_wait_duration_seconds", **p)
    assert waits == sample(fams, "pgcoro_server_assignments",
                           "pgcoro_server_assignments_total", **p) > 0
    connects, _ = check_histogram(fams, "pgcoro_server_connect_duration_seconds", **p)
    assert connects == inst.log_text().count("connected, backend pid") == 1
    # the cancelled sleep took at least until the cancel: in a bucket above 1 ms
    le_1ms = sample(fams, "pgcoro_query_duration_seconds",
                    "pgcoro_query_duration_seconds_bucket", le="0.001", **p)
    assert le_1ms <= queries - 1

    # gauges now: A active in its transaction holding the one server
    assert sample(fams, "pgcoro_pool_clients", state="active", **p) == 1
    assert sample(fams, "pgcoro_pool_clients", state="waiting", **p) == 0
    assert sample(fams, "pgcoro_pool_servers", state="active", **p) == 1
    assert sample(fams, "pgcoro_pool_size", **p) == 1
    assert sample(fams, "pgcoro_client_connections") == 1
    assert sample(fams, "pgcoro_server_connections") == 1
    assert sample(fams, "pgcoro_info", version=subprocess.run(
        [os.environ["PGCORO_BIN"], "--version"], capture_output=True, text=True,
        check=True).stdout.split()[1]) == 1
    a.query("commit")
    a.terminate()


def test_times_have_microsecond_resolution(pgcoro_factory, pg):
    """Query and transaction times come from a precise clock: libevent's cached time
    moves in 4 ms steps here (CLOCK_MONOTONIC_COARSE), which would measure a 2 ms query
    as 0 about half the time. Each pg_sleep(0.002) lasts at least 2 ms between the
    request reaching pgcoro and its answer leaving the server, so every observation is
    above 1 ms and the sums at least 5 x 2 ms (a lower bound, not a speed assertion)."""
    inst = start(pgcoro_factory)
    with Wire.to(inst) as a:
        a.login()
        for _ in range(5):
            a.query("select pg_sleep(0.002)")
        fams = families(scrape(inst.metrics_port))
    p = pool_labels()
    for family in ("pgcoro_query_duration_seconds", "pgcoro_transaction_duration_seconds"):
        count, total = check_histogram(fams, family, **p)
        assert count == 5, family
        assert total >= 5 * 0.002, (family, total)
        assert sample(fams, family, family + "_bucket", le="0.001", **p) == 0, family


def test_metrics_paths_methods_and_reload(pgcoro_factory, pg):
    """Only GET/HEAD /metrics is served; without metrics_listen nothing listens, and a
    reload that sets it opens the endpoint."""
    inst = start(pgcoro_factory)
    with pytest.raises(urllib.error.HTTPError) as e:
        scrape(inst.metrics_port, "/other")
    assert e.value.code == 404
    req = urllib.request.Request(f"http://127.0.0.1:{inst.metrics_port}/metrics", data=b"x",
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=20)
    assert e.value.code == 405
    for method in ("PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"):
        req = urllib.request.Request(f"http://127.0.0.1:{inst.metrics_port}/metrics",
                                     method=method)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=20)
        assert e.value.code == 405, method
        assert e.value.headers["Allow"] == "GET, HEAD", method

    off = pgcoro_factory(settings={"pool_mode": "transaction"})
    port = free_port()
    with Wire.to(off) as w:
        w.login()
        w.query("select 1")
    with pytest.raises(urllib.error.URLError):
        scrape(port)
    with open(off.config_path) as f:
        text = f.read()
    with open(off.config_path, "w") as f:
        f.write(text.replace("[pgcoro]\n", f"[pgcoro]\nmetrics_listen = 127.0.0.1:{port}\n", 1))
    off.proc.send_signal(signal.SIGHUP)
    wait_port(port, what="metrics endpoint after reload")
    with Wire.to(off) as w:
        w.login()
        w.query("select 1")
    fams = families(scrape(port))
    # counters kept from before; histograms start when the endpoint does
    assert sample(fams, "pgcoro_transactions", "pgcoro_transactions_total", **pool_labels()) == 2
    count, _ = check_histogram(fams, "pgcoro_transaction_duration_seconds", **pool_labels())
    assert count == 1


def test_metrics_listen_invalid(pgcoro_factory, tmp_path):
    cfg = tmp_path / "bad.ini"
    cfg.write_text("[pgcoro]\nmetrics_listen = 9127\n[databases]\n")
    r = subprocess.run([os.environ["PGCORO_BIN"], "--check-config", str(cfg)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert 'metrics_listen "9127": expected host:port' in r.stderr, r.stderr


def test_prometheus_pgbouncer_exporter(pgcoro_factory, pg):
    """The Debian exporter, unchanged, pointed at pgcoro's console (database pgbouncer):
    it starts (it reads SHOW STATS/POOLS/DATABASES/LISTS at once) and its /metrics has
    every family with pgcoro's figures."""
    exporter = shutil.which("prometheus-pgbouncer-exporter")
    if not exporter:
        pytest.fail("prometheus-pgbouncer-exporter not installed (make deps installs it)")
    inst = start(pgcoro_factory, default_pool_size=4)
    with Wire.to(inst) as w:
        w.login()
        for _ in range(3):
            w.query("select 1")
    port = free_port()
    env = clean_env(PGPASSWORD=STATS_PASS, PGSSLMODE="prefer", PGCONNECT_TIMEOUT="20")
    proc = subprocess.Popen(
        ["/usr/bin/python3", exporter, "--pgbouncer-host", "127.0.0.1", "--pgbouncer-port",
         str(inst.port), "--pgbouncer-user", STATS, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        wait_port(port, proc=proc, what="prometheus-pgbouncer-exporter")
        fams = families(scrape(port))
    finally:
        proc.kill()
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
        assert not pid_alive(proc.pid)
    assert "Traceback" not in out, out
    want = ["pgbouncer_requests_total", "pgbouncer_received_bytes_total",
            "pgbouncer_sent_bytes_total", "pgbouncer_query_microseconds_total",
            "pgbouncer_active_clients", "pgbouncer_waiting_clients", "pgbouncer_pool_size",
            "pgbouncer_reserve_pool"] + [f"pgbouncer_{n}" for n in (
                "databases", "users", "pools", "free_clients", "used_clients", "login_clients",
                "free_servers", "used_servers", "dns_names", "dns_zones", "dns_queries",
                "dns_pending")]
    for name in want:
        assert name in fams, (name, sorted(fams))
    assert fams["pgbouncer_requests_total"][("pgbouncer_requests_total",
                                             frozenset({"database": "postgres"}.items()))] == 3
    assert fams["pgbouncer_pool_size"][("pgbouncer_pool_size",
                                        frozenset({"database": "postgres"}.items()))] == 4
    # the exporter itself is a client of pgcoro's console: a login client at least
    assert fams["pgbouncer_pools"][("pgbouncer_pools", frozenset())] >= 1


def test_metrics_port_in_use(tmp_path):
    """metrics_listen on a port another process holds: pgcoro says why and exits 1 (as for
    its own listen port), rather than run without the endpoint it was asked for."""
    import socket
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        busy = holder.getsockname()[1]
        cfg = tmp_path / "busy.ini"
        cfg.write_text(f"[pgcoro]\nlisten_addr = 127.0.0.1\nlisten_port = {free_port()}\n"
                       f"unix_socket_dir =\nauth_type = trust\n"
                       f"metrics_listen = 127.0.0.1:{busy}\n[databases]\n")
        r = subprocess.run([os.environ["PGCORO_BIN"], "-c", str(cfg)], capture_output=True,
                           text=True, timeout=60, env=clean_env())
    finally:
        holder.close()
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert f"metrics: cannot listen on 127.0.0.1:{busy}" in r.stderr, r.stderr
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
