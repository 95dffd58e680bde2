#!/usr/bin/python3
"""What /metrics costs — run by `make bench-metrics` (see bench/README.md).

Two pgcoro processes in front of the same throwaway PostgreSQL, identical but for
metrics_listen: "off" has none (no histograms, no error classes recorded), "on" serves
/metrics and is scraped every BENCH_SCRAPE_INTERVAL seconds during its runs (1 s by
default, 15x Prometheus' default). pgbench -S at 100 clients runs against them
alternately, BENCH_ROUNDS rounds of BENCH_SECONDS; the report gives the median pooler CPU
per transaction (utime+stime from /proc) of each and their ratio, and the CPU one scrape
costs (measured apart: BENCH_SCRAPES scrapes of the idle process). Writes
bench/results/metrics-cost.md. Shares the harness (PostgreSQL, configs, pgbench runs,
cleanup by PID) with bench/bench.py.

Then, deterministically (valgrind's callgrind, when installed): each variant runs under
callgrind, a warm-up, pgbench -S -c 1 -t
BENCH_CG_TXNS, counted between callgrind_control -z and -d: instructions per transaction
of the whole process, off and on (scraped once, before the count).

  BENCH_ROUNDS=5, BENCH_SECONDS=5, BENCH_SCRAPE_INTERVAL=1, BENCH_SCRAPES=500,
  BENCH_MODES=simple,extended, BENCH_CG_TXNS=10000 (one client; 0 = skip)
"""

import datetime
import os
import shutil
import statistics
import sys
import threading
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

ROUNDS = bench.env_int("BENCH_ROUNDS", 5)
SECONDS = bench.env_int("BENCH_SECONDS", 5)
SCRAPES = bench.env_int("BENCH_SCRAPES", 500)
INTERVAL = float(os.environ.get("BENCH_SCRAPE_INTERVAL", "1"))
CG_TXNS = bench.env_int("BENCH_CG_TXNS", 10000)
MODES = [m for m in os.environ.get("BENCH_MODES", "simple,extended").split(",") if m]
OFF, ON = "pgcoro", "pgcoro-metrics"
bench.LABEL[ON] = "pgcoro+metrics"


class Scraper(threading.Thread):
    """GETs /metrics every INTERVAL seconds until stopped; counts the scrapes."""

    def __init__(self, port, interval):
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.interval = interval
        self.stop_ev = threading.Event()
        self.count = 0
        self.bytes = 0

    def scrape(self):
        with urllib.request.urlopen(self.url, timeout=10) as r:
            self.bytes = len(r.read())
        self.count += 1

    def run(self):
        while not self.stop_ev.is_set():
            self.scrape()
            self.stop_ev.wait(self.interval)

    def finish(self):
        self.stop_ev.set()
        self.join(30)


class MetricsBench(bench.Bench):
    def write_configs(self):
        super().write_configs()
        self.metrics_port = bench.free_port()
        self.port[ON] = bench.free_port()
        self.ini[ON] = os.path.join(self.tmp, "pgcoro-metrics.ini")
        cfg = self.cfg["pgcoro"].replace(f"listen_port = {self.port['pgcoro']}\n",
                                         f"listen_port = {self.port[ON]}\n"
                                         f"metrics_listen = 127.0.0.1:{self.metrics_port}\n")
        with open(self.ini[ON], "w") as f:
            f.write(cfg)
        self.own(self.ini[ON])

    def scrape_cost(self):
        """CPU µs of one scrape of the idle pgcoro+metrics, and the answer's size."""
        pid = self.pid(ON)
        s = Scraper(self.metrics_port, 0)
        u0, s0 = bench.proc_cpu_us(pid)
        for _ in range(SCRAPES):
            s.scrape()
        u1, s1 = bench.proc_cpu_us(pid)
        return (u1 - u0 + s1 - s0) / SCRAPES, s.bytes

    def callgrind(self, name):
        """(instructions per transaction of variant NAME under callgrind, of them in the
        metrics code) — one client, so the count does not depend on how the machine's load
        batches events; None if valgrind is not installed."""
        if CG_TXNS <= 0 or not shutil.which("valgrind"):
            return None
        if name in self.pooler:
            self.stop(self.pooler.pop(name), bench.LABEL[name])
        before = (lambda: Scraper(self.metrics_port, 0).scrape()) if name == ON else None
        return self.callgrind_per_txn(name, 1, CG_TXNS, before=before,
                                      files=r"include/metrics\.h|src/metrics\.c")

    def main(self):
        started = datetime.datetime.now()
        self.prepare()
        for name in (OFF, ON):
            self.start_pooler(name)
        for name in (OFF, ON):
            self.pgbench(name, dict(args=["-S", "-c", str(bench.POOL), "-j", "2"]), 2,
                         f"warm-{name}")
        rows = []
        for mode in MODES:
            sc = dict(args=["-S", "-M", mode, "-c", "100", "-j", "2"])
            res = {OFF: [], ON: []}
            scrapes = 0
            for rnd in range(1, ROUNDS + 1):
                for name in (OFF, ON):
                    scraper = Scraper(self.metrics_port, INTERVAL) if name == ON else None
                    if scraper:
                        scraper.start()
                    r = self.pgbench(name, sc, SECONDS, f"{mode}-r{rnd}-{name}")
                    if scraper:
                        scraper.finish()
                        scrapes += scraper.count
                    if "error" in r:
                        bench.die(f"{bench.LABEL[name]}: {r['error']}")
                    res[name].append(r)
                    bench.log(f"metrics {mode:<8} r{rnd} {bench.LABEL[name]:<15} "
                              + bench.summary(r))
            med = {n: {k: statistics.median(r[k] for r in res[n])
                       for k in ("cpu_us_per_txn", "user_us_per_txn", "tps")}
                   for n in (OFF, ON)}
            rows.append((mode, med, scrapes))
        per_scrape, size = self.scrape_cost()
        bench.log(f"one scrape: {per_scrape:.0f} µs CPU, {size} bytes")
        cg = {name: self.callgrind(name) for name in (OFF, ON)}
        if cg[OFF] and cg[ON]:
            bench.log(f"callgrind: {cg[OFF][0]:.0f} instructions/txn off, {cg[ON][0]:.0f} on, "
                      f"{cg[ON][1]:.1f} of them in the metrics code")
        self.write_report(started, rows, per_scrape, size, cg)
        return 0

    def write_report(self, started, rows, per_scrape, size, cg):
        cpu_model = "?"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
        out = [f"# What /metrics costs — {started:%Y-%m-%d %H:%M}",
               "",
               f"pgcoro {self.commit} (binary {self.bin_sha}), PostgreSQL {self.pg_version}, "
               f"{cpu_model}, {os.cpu_count()} CPUs shared by PostgreSQL, pgbench and the "
               f"poolers. `make bench-metrics`: pgbench -S, 100 clients, pool {bench.POOL}, "
               f"transaction mode, md5; {ROUNDS} rounds × {SECONDS} s alternating; the "
               f"metrics instance scraped every {INTERVAL:g} s during its runs.",
               "",
               "| protocol | CPU µs/txn off | CPU µs/txn on | on/off | user µs/txn off | "
               "user µs/txn on | TPS off | TPS on | scrapes |",
               "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for mode, med, scrapes in rows:
            a, b = med[OFF], med[ON]
            out.append(f"| {mode} | {a['cpu_us_per_txn']:.2f} | {b['cpu_us_per_txn']:.2f} | "
                       f"{b['cpu_us_per_txn'] / a['cpu_us_per_txn']:.3f} | "
                       f"{a['user_us_per_txn']:.2f} | {b['user_us_per_txn']:.2f} | "
                       f"{a['tps']:.0f} | {b['tps']:.0f} | {scrapes} |")
        tps = statistics.median(med[ON]["tps"] for _, med, _ in rows)
        cpu = statistics.median(med[ON]["cpu_us_per_txn"] for _, med, _ in rows)
        share = per_scrape / (INTERVAL * 1e6 * cpu * tps / 1e6) * 100 if tps and cpu else 0
        out += ["",
                f"One scrape (measured apart, {SCRAPES} scrapes of the idle process, one pool): "
                f"**{per_scrape:.0f} µs** of pooler CPU for {size} bytes of text. At "
                f"{tps:.0f} transactions/s and {cpu:.2f} µs each, a scrape every "
                f"{INTERVAL:g} s is {share:.3f}% of the pooler's CPU "
                f"({share / 15:.4f}% at Prometheus' default 15 s).",
                "",
                "The per-transaction cost of recording (two histogram observations per "
                "transaction, one per server hand-out, an SQLSTATE look-up per ErrorResponse) "
                "is inside the on/off ratio, but on this shared machine the ratio moves by "
                "several percent either way from run to run (/proc's 10 ms ticks, other "
                "load): the callgrind attribution below is the precise figure.", ""]
        if cg[OFF] and cg[ON]:
            (off, _), (on, own) = cg[OFF], cg[ON]
            out += [f"Deterministic (callgrind, pgbench -S -M simple -c 1 -t {CG_TXNS}, whole "
                    f"pgcoro process, counted between callgrind_control -z and -d): "
                    f"{off:.0f} instructions per transaction off, {on:.0f} on "
                    f"({(on / off - 1) * 100:+.1f}%). The metrics code itself, counted by "
                    f"callgrind per source file (src/metrics.c and the observations metrics.h "
                    f"inlines into the relay and the pool; not counted: the "
                    f"few tests of rt->metrics_on in the relay): "
                    f"**{own:.1f} instructions per transaction = {own / on * 100:.2f}%** of "
                    f"pgcoro's user-space instructions (the figure to judge the cost by: it "
                    f"does not depend on the loop's batching); user space is ~10-15% of its "
                    f"CPU per "
                    f"transaction (the rest is the kernel's TCP work, which metrics do not "
                    f"change), so ≈{own / on * 100 * 0.15:.2f}% of its CPU.", ""]
        bench.save_report("metrics-cost.md", out)


if __name__ == "__main__":
    sys.exit(bench.run(MetricsBench))
