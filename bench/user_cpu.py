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
100 clients are not measured by default (BENCH_CG_CLIENTS=1,10,100 to try): with 80
clients waiting for the pool of 20, PgBouncer under valgrind counts ~68,000 instructions
per transaction, which its /proc utime at full speed (~2.5 µs per transaction) does not
bear out; pgcoro counts ~2,440 there.
"""

import datetime
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

CLIENTS = [int(c) for c in os.environ.get("BENCH_CG_CLIENTS", "1,10").split(",") if c]
TOTAL = bench.env_int("BENCH_CG_TOTAL", 10000)


class CallgrindBench(bench.Bench):
    def main(self):
        if not shutil.which("valgrind"):
            bench.die("valgrind not installed (make bench-deps)")
        started = datetime.datetime.now()
        self.prepare()
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
                "With more clients how many events each wake-up handles varies a little with "
                "the machine's load. 100 clients are not measured by default (see "
                "bench/user_cpu.py).", ""]
        bench.save_report("callgrind.md", out)


if __name__ == "__main__":
    sys.exit(bench.run(CallgrindBench))
