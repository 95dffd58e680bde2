#!/usr/bin/python3
"""User-space instructions per transaction, pgcoro vs PgBouncer — `make bench-callgrind`.

/proc's utime comes in 10 ms ticks and moves with the machine's load; callgrind counts
every instruction the pooler process executes (its code, libevent, libc), whatever the
load. Each pooler runs under valgrind --tool=callgrind with the bench configuration
(transaction mode, md5, pool BENCH_POOL); pgbench -S -M simple with 1, 10 and 100 clients
(BENCH_CG_CLIENTS) runs BENCH_CG_TOTAL transactions in all, counted between
callgrind_control -z after a warm-up and -d after the run (the clients' logins included). Writes bench/results/callgrind.md.
With one client every transaction takes the same wake-ups, so that count repeats to the
instruction; with more clients how events batch per wake-up varies a little run to run.
Only one client is measured by default (BENCH_CG_CLIENTS=1,10,100 for more): with more,
PgBouncer's count under valgrind varies from run to run far beyond that (3,475 and 9,790
per transaction in two runs at 10 clients, ~70,000 at 100, which its /proc utime at full
speed, ~2.5 µs per transaction, does not bear out), while pgcoro's stays within a few %.
"""

import datetime
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

CLIENTS = [int(c) for c in os.environ.get("BENCH_CG_CLIENTS", "1").split(",") if c]
TOTAL = bench.env_int("BENCH_CG_TOTAL", 10000)


class CallgrindBench(bench.Bench):
    def main(self):
        if not shutil.which("valgrind"):
            bench.die("valgrind not installed (make bench-deps)")
        started = datetime.datetime.now()
        self.preflight()
        self.limits()
        self.identify()
        self.setup_tmp()
        self.start_postgres()
        self.write_configs()
        rows = []
        for clients in CLIENTS:
            per = max(1, TOTAL // clients)
            r = {}
            for name in bench.POOLERS:
                r[name], _ = self.callgrind_per_txn(name, clients, per)
                bench.log(f"callgrind -c {clients:<4} {bench.LABEL[name]:<9} "
                          f"{r[name]:.0f} instructions/txn")
            rows.append((clients, per, r))
        self.write_report(started, rows)
        return 0

    def write_report(self, started, rows):
        os.makedirs(bench.RESULTS, exist_ok=True)
        out = [f"# User-space instructions per transaction — {started:%Y-%m-%d %H:%M}", "",
               f"pgcoro {self.commit} (binary {self.bin_sha}), {self.pgbouncer_version}, "
               f"PostgreSQL {self.pg_version}. `make bench-callgrind`: each pooler under "
               f"valgrind --tool=callgrind, transaction mode, md5, pool {bench.POOL}; "
               f"pgbench -S -M simple, counted between callgrind_control -z after a warm-up "
               f"and -d after the run (the clients' logins included). "
               f"Whole process: the pooler's code, libevent and libc.", "",
               "| clients | transactions | pgcoro | PgBouncer | pgcoro / PgBouncer |",
               "|--:|--:|--:|--:|--:|"]
        for clients, per, r in rows:
            a, b = r["pgcoro"], r["pgbouncer"]
            out.append(f"| {clients} | {clients * per} | {a:.0f} | {b:.0f} | {a / b:.2f} |")
        out += ["", "With one client the count repeats to the instruction from run to run. "
                "With more clients PgBouncer's count under valgrind varies far beyond its "
                "/proc figures from run to run, so they are not measured by default (see "
                "bench/user_cpu.py).", ""]
        path = os.path.join(bench.RESULTS, "callgrind.md")
        with open(path, "w") as f:
            f.write("\n".join(out))
        bench.log(f"report: {path}")


def main():
    import signal
    signal.signal(signal.SIGTERM, bench.on_signal)
    b = CallgrindBench()
    try:
        return b.main()
    except bench.BenchError as e:
        bench.log(f"error: {e}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        b.cleanup()


if __name__ == "__main__":
    sys.exit(main())
