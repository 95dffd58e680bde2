#!/usr/bin/env bash
# `make bench`: pgcoro vs PgBouncer under pgbench. See bench/README.md.
# Raises the open-files limit to the hard limit (1000 pgbench clients, 10,000 idle clients)
# and runs bench/bench.py with Debian's Python; bench.py starts PostgreSQL, pgcoro and
# PgBouncer and stops every process it started, by PID, when it exits (try/finally, also
# on SIGINT/SIGTERM/SIGHUP).
set -euo pipefail
cd "$(dirname "$0")/.."
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
ulimit -n "$hard" 2>/dev/null || echo "bench: cannot raise the open-files limit to $hard" >&2
if [ "${1:-}" = --callgrind ]; then
	exec /usr/bin/python3 bench/user_cpu.py
fi
if [ "${1:-}" = --floor ]; then
	exec /usr/bin/python3 bench/user_floor.py
fi
exec /usr/bin/python3 bench/bench.py "$@"
