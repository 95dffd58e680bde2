#!/usr/bin/python3
"""Pooler CPU per transaction against the floor — `make bench-floor`.

The question it answers: of the CPU a pooler spends per transaction, how much is the
kernel's TCP work that any relay pays, how much is the event library's, and how much is
the pooler's own? Four processes run side by side in front of the same PostgreSQL, each
driven by the same pgbench:

  pgcoro          the bench configuration (transaction mode, md5, pool BENCH_POOL)
  PgBouncer       the same settings
  bare relay      bench/floor_relay.c: a 1:1 epoll byte relay with no logic at all, one
                  PostgreSQL connection per client (so it only runs where clients <= the
                  pool)
  libevent relay  the same relay on libevent's loop (floor_relay --libevent): what any
                  pooler built on libevent, as both are, pays before its own code runs

The main bench (`make bench`) reports utime from 5 s runs; at 10 clients that is some 15
ticks of 10 ms per run, so its user-time ratio moves by ±25 % from run to run. Here each
run is BENCH_FLOOR_SECONDS (10) long, BENCH_FLOOR_ROUNDS (5) rounds, the order of the four
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
NAMES = ("pgcoro", "pgbouncer", "floor", "floor_ev")
bench.LABEL["floor"] = "bare relay"
bench.LABEL["floor_ev"] = "libevent relay"
FLOOR_ARGS = {"floor": [], "floor_ev": ["--libevent"]}


def med(runs, key):
    return statistics.median(r[key] for r in runs)


class FloorBench(bench.Bench):
    def start_floor(self, name):
        """Starts the bare relay NAME ("floor": epoll, "floor_ev": libevent)."""
        if not os.path.exists(RELAY_BIN):
            bench.die(f"{RELAY_BIN} not built (make bench-floor builds it)")
        exe = os.path.join(self.tmp, "floor_relay")
        if not os.path.exists(exe):
            shutil.copy2(RELAY_BIN, exe)
            os.chmod(exe, 0o755)
        self.port[name] = bench.free_port()
        logf = open(os.path.join(self.tmp, f"{name}.log"), "a")
        p = self.popen([exe] + FLOOR_ARGS[name] + [str(self.port[name]), str(self.pg_port)],
                       stdout=logf, stderr=logf, cwd=self.tmp, **self.runas)
        logf.close()
        self.pooler[name] = p
        self.wait_listening(name)

    def main(self):
        if CLIENTS > bench.POOL:
            bench.die(f"BENCH_FLOOR_CLIENTS={CLIENTS} > pool {bench.POOL}: the bare relay "
                      "opens one PostgreSQL connection per client")
        started = datetime.datetime.now()
        self.prepare()
        for name in bench.POOLERS:
            self.start_pooler(name)
        for name in FLOOR_ARGS:
            self.start_floor(name)
        for name in NAMES:  # warm-up: open the pools, fault in the code
            self.pgbench(name, dict(args=["-S", "-c", str(CLIENTS), "-j", "2"]), 2,
                         f"warm-{name}")
        results = {}
        for mode in MODES:
            sc = dict(args=["-S", "-M", mode, "-c", str(CLIENTS), "-j", "2"])
            runs = {n: [] for n in NAMES}
            for rnd in range(ROUNDS):
                k = rnd % len(NAMES)
                order = NAMES[k:] + NAMES[:k]
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
               f"of {SECONDS} s, the order of the four rotating each round; medians. "
               f"pgcoro and PgBouncer: transaction mode, md5, pool {bench.POOL}. Bare relay: "
               f"bench/floor_relay.c, a 1:1 epoll byte relay with no logic (one PostgreSQL "
               f"connection per client); libevent relay: the same on libevent's loop "
               f"(`floor_relay --libevent`), one persistent read event per socket. CPU = "
               f"utime and stime of the process from /proc/PID/stat over the run, per "
               f"transaction pgbench reports.", "",
               "| mode | metric | pgcoro | PgBouncer | bare relay | libevent relay | "
               "pgcoro / PgBouncer |",
               "|---|---|--:|--:|--:|--:|--:|"]
        for mode, runs in results.items():
            rows = [("TPS", "tps", "{:.0f}"), ("CPU µs/txn", "cpu_us_per_txn", "{:.2f}"),
                    ("  user µs/txn", "user_us_per_txn", "{:.3f}"),
                    ("  system µs/txn", "sys_us_per_txn", "{:.2f}")]
            for i, (label, key, fmt) in enumerate(rows):
                v = {n: med(runs[n], key) for n in NAMES}
                cells = " | ".join(fmt.format(v[n]) for n in NAMES)
                out.append(f"| {mode if i == 0 else ''} | {label} | {cells} | "
                           f"{v['pgcoro'] / v['pgbouncer']:.2f} |")
            user = {n: med(runs[n], "user_us_per_txn") for n in NAMES}
            for floor in ("floor", "floor_ev"):
                above = {n: user[n] - user[floor] for n in NAMES}
                ratio = (f"{above['pgcoro'] / above['pgbouncer']:.2f}"
                         if above["pgbouncer"] > 0 else "–")
                cells = " | ".join("0" if n == floor else
                                   ("–" if above[n] < 0 and n in FLOOR_ARGS else
                                    f"{above[n]:.3f}") for n in NAMES)
                out.append(f"|  | user µs/txn above the {bench.LABEL[floor]}'s | {cells} | "
                           f"{ratio} |")
            out.append(f"|  | libevent relay's user µs/txn over PgBouncer's (the least "
                       f"ratio for a pooler on libevent) | | | | | "
                       f"{user['floor_ev'] / user['pgbouncer']:.2f} |")
            spread = {n: (max(r["user_us_per_txn"] for r in runs[n]) /
                          max(min(r["user_us_per_txn"] for r in runs[n]), 1e-9) - 1) * 100
                      for n in NAMES}
            cells = " | ".join(f"{spread[n]:.0f}%" for n in NAMES)
            out.append(f"|  | user: round-to-round spread | {cells} | |")
        out += ["", "The goal for pgcoro's own user-space CPU is ≤ 0.5× PgBouncer's utime. The "
                "bare relay's utime is what a relay with no work of its own still shows (the "
                "kernel's return path from its syscalls is partly charged to user time on "
                "this VM); the libevent relay's adds what libevent's dispatch costs (both "
                "poolers run on it). So \"above the libevent relay's\" is the user time each "
                "pooler's own code adds, and the libevent relay's utime over PgBouncer's is "
                "the least ratio any libevent-based pooler can show. Instruction counts: "
                "bench/results/callgrind.md.", ""]
        bench.save_report("floor.md", out)


if __name__ == "__main__":
    sys.exit(bench.run(FloorBench))
