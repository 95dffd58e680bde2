#!/usr/bin/python3
"""Pooler CPU per transaction against the floor — `make bench-floor`.

The question it answers: of the CPU a pooler spends per transaction, how much is the
kernel's TCP work that any relay pays, and how much is the pooler's own? Three processes
run side by side in front of the same PostgreSQL, each driven by the same pgbench:

  pgcoro     the bench configuration (transaction mode, md5, pool BENCH_POOL)
  PgBouncer  the same settings
  bare relay bench/floor_relay.c: a 1:1 epoll byte relay with no logic at all, one
             PostgreSQL connection per client (so it only runs where clients <= the pool)

The main bench (`make bench`) reports utime from 5 s runs; at 10 clients that is some 15
ticks of 10 ms per run, so its user-time ratio moves by ±25 % from run to run. Here each
run is BENCH_FLOOR_SECONDS (10) long, BENCH_FLOOR_ROUNDS (5) rounds, the order of the three
rotating every round, and the report gives medians. BENCH_FLOOR_CLIENTS (10) clients,
BENCH_FLOOR_MODES (simple,extended). Writes bench/results/floor.md.

"User time" here is /proc's utime, as in the goal. On a VM it also holds part of the
kernel's return path from each syscall (a tick that comes while interrupts are off on the
way out is charged to the user instruction it returns to), which is why the bare relay,
with no work of its own, still shows some.
"""

import datetime
import os
import shutil
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

ROUNDS = bench.env_int("BENCH_FLOOR_ROUNDS", 5)
SECONDS = bench.env_int("BENCH_FLOOR_SECONDS", 10)
CLIENTS = bench.env_int("BENCH_FLOOR_CLIENTS", 10)
MODES = [m for m in os.environ.get("BENCH_FLOOR_MODES", "simple,extended").split(",") if m]
RELAY_BIN = os.path.abspath(os.environ.get("BENCH_FLOOR_RELAY") or
                            os.path.join(bench.ROOT, "build", "bench", "floor_relay"))
NAMES = ("pgcoro", "pgbouncer", "floor")
bench.LABEL["floor"] = "bare relay"


def med(runs, key):
    return statistics.median(r[key] for r in runs)


class FloorBench(bench.Bench):
    def start_floor(self):
        if not os.path.exists(RELAY_BIN):
            bench.die(f"{RELAY_BIN} not built (make bench-floor builds it)")
        exe = os.path.join(self.tmp, "floor_relay")
        shutil.copy2(RELAY_BIN, exe)
        os.chmod(exe, 0o755)
        self.port["floor"] = bench.free_port()
        logf = open(os.path.join(self.tmp, "floor.log"), "a")
        p = self.popen([exe, str(self.port["floor"]), str(self.pg_port)], stdout=logf,
                       stderr=logf, cwd=self.tmp, **self.runas)
        logf.close()
        self.pooler["floor"] = p
        self.wait_listening("floor")

    def main(self):
        if CLIENTS > bench.POOL:
            bench.die(f"BENCH_FLOOR_CLIENTS={CLIENTS} > pool {bench.POOL}: the bare relay "
                      "opens one PostgreSQL connection per client")
        started = datetime.datetime.now()
        self.prepare()
        for name in bench.POOLERS:
            self.start_pooler(name)
        self.start_floor()
        for name in NAMES:  # warm-up: open the pools, fault in the code
            self.pgbench(name, dict(args=["-S", "-c", str(CLIENTS), "-j", "2"]), 2,
                         f"warm-{name}")
        results = {}
        for mode in MODES:
            sc = dict(args=["-S", "-M", mode, "-c", str(CLIENTS), "-j", "2"])
            runs = {n: [] for n in NAMES}
            for rnd in range(ROUNDS):
                order = NAMES[rnd % 3:] + NAMES[:rnd % 3]
                for name in order:
                    r = self.pgbench(name, sc, SECONDS, f"{mode}-r{rnd}-{name}")
                    if "error" in r:
                        bench.die(f"{bench.LABEL[name]} {mode}: {r['error']}")
                    runs[name].append(r)
                    bench.log(f"{mode:<8} r{rnd + 1} {bench.LABEL[name]:<10} "
                              f"user {r['user_us_per_txn']:.3f} sys {r['sys_us_per_txn']:.2f} "
                              f"µs/txn, {r['tps']:.0f} tps")
            results[mode] = runs
        self.write_report(started, results)
        return 0

    def write_report(self, started, results):
        load_end = open("/proc/loadavg").read().split()[:3]
        out = [f"# Pooler CPU per transaction against the floor — {started:%Y-%m-%d %H:%M}", "",
               f"pgcoro {self.commit} (binary {self.bin_sha}), {self.pgbouncer_version}, "
               f"PostgreSQL {self.pg_version}; load average {' '.join(self.load_start)} at "
               f"the start, {' '.join(load_end)} at the end. `make bench-floor` "
               f"(bench/user_floor.py): pgbench -S, {CLIENTS} clients, -j 2; {ROUNDS} rounds "
               f"of {SECONDS} s, the order of the three rotating each round; medians. "
               f"pgcoro and PgBouncer: transaction mode, md5, pool {bench.POOL}. Bare relay: "
               f"bench/floor_relay.c, a 1:1 epoll byte relay with no logic (one PostgreSQL "
               f"connection per client). CPU = utime and stime of the process from "
               f"/proc/PID/stat over the run, per transaction pgbench reports.", "",
               "| mode | metric | pgcoro | PgBouncer | bare relay | pgcoro / PgBouncer |",
               "|---|---|--:|--:|--:|--:|"]
        for mode, runs in results.items():
            rows = [("TPS", "tps", "{:.0f}"), ("CPU µs/txn", "cpu_us_per_txn", "{:.2f}"),
                    ("  user µs/txn", "user_us_per_txn", "{:.3f}"),
                    ("  system µs/txn", "sys_us_per_txn", "{:.2f}")]
            for i, (label, key, fmt) in enumerate(rows):
                v = {n: med(runs[n], key) for n in NAMES}
                out.append(f"| {mode if i == 0 else ''} | {label} | {fmt.format(v['pgcoro'])} | "
                           f"{fmt.format(v['pgbouncer'])} | {fmt.format(v['floor'])} | "
                           f"{v['pgcoro'] / v['pgbouncer']:.2f} |")
            uf = med(runs["floor"], "user_us_per_txn")
            ua, ub = med(runs["pgcoro"], "user_us_per_txn"), med(runs["pgbouncer"], "user_us_per_txn")
            ratio = f"{(ua - uf) / (ub - uf):.2f}" if ub > uf else "–"
            out.append(f"|  | user µs/txn above the bare relay's | {ua - uf:.3f} | {ub - uf:.3f} "
                       f"| 0 | {ratio} |")
            spread = {n: (max(r["user_us_per_txn"] for r in runs[n]) /
                          max(min(r["user_us_per_txn"] for r in runs[n]), 1e-9) - 1) * 100
                      for n in NAMES}
            out.append(f"|  | user: round-to-round spread | {spread['pgcoro']:.0f}% | "
                       f"{spread['pgbouncer']:.0f}% | {spread['floor']:.0f}% | |")
        out += ["", "The goal for pgcoro's own user-space CPU is ≤ 0.5× PgBouncer's utime. The "
                "bare relay's utime is what a relay with no work of its own still shows (the "
                "kernel's return path from its syscalls is partly charged to user time on "
                "this VM), so \"above the bare relay's\" is the user time each pooler's own "
                "code adds. Instruction counts: bench/results/callgrind.md.", ""]
        bench.save_report("floor.md", out)


if __name__ == "__main__":
    sys.exit(bench.run(FloorBench))
