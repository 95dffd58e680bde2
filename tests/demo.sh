#!/usr/bin/env bash
# pgcoro demo: a throwaway PostgreSQL 15 in ./demo/ and ./pgcoro in front of it, in the
# foreground. Ctrl-C stops both. Run by `make demo` (which builds ./pgcoro first).
#
#   tests/demo.sh            start and wait for Ctrl-C
#   tests/demo.sh --smoke    start, run one query through pgcoro, stop (for CI)
#
# Environment: PGCORO_DEMO_PORT (pgcoro, default 6432), PGCORO_DEMO_PG_PORT (PostgreSQL,
# default 55432) and PGCORO_DEMO_METRICS_PORT (/metrics, default 9127); for the last two
# the next free port is taken when one is busy. PGCORO_DEMO_DIR (default ./demo) and
# PGCORO_DEMO_BIN (default ./pgcoro) let the tests run the smoke elsewhere.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=${PGCORO_DEMO_DIR:-$ROOT/demo}
PGCORO=${PGCORO_DEMO_BIN:-$ROOT/pgcoro}
PORT=${PGCORO_DEMO_PORT:-6432}
PG_PORT=${PGCORO_DEMO_PG_PORT:-55432}
METRICS_PORT=${PGCORO_DEMO_METRICS_PORT:-9127}
DEMO_USER=demo
DEMO_PASS=demo
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1

die() { echo "demo: $*" >&2; exit 1; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# alive and not a zombie (an exited child stays one until it is waited for)
pid_alive() {
	[ -n "${1:-}" ] && [ -r "/proc/$1/stat" ] || return 1
	local state
	state=$(sed -e 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$state" ] && [ "$state" != Z ]
}

if [ -x /usr/lib/postgresql/15/bin/initdb ]; then
	PGBIN=/usr/lib/postgresql/15/bin
elif command -v pg_config >/dev/null; then
	PGBIN=$(pg_config --bindir)
else
	die "PostgreSQL 15 server binaries not found (run: make deps)"
fi
PSQL=$(command -v psql || echo "$PGBIN/psql")
[ -x "$PGCORO" ] || die "$PGCORO not built (run: make demo)"

IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1
as_pg() {
	if [ "$IS_ROOT" = 1 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# ---- a fresh ./demo --------------------------------------------------------------------
if [ -f "$DEMO/pg-location" ] && [ -f "$(cat "$DEMO/pg-location")/data/postmaster.pid" ]; then
	old_pid=$(head -1 "$(cat "$DEMO/pg-location")/data/postmaster.pid")
	pid_alive "$old_pid" && die "a demo PostgreSQL (pid $old_pid) is still running; stop the other demo first"
fi
if [ -f "$DEMO/pg-location" ]; then
	old_pgroot=$(cat "$DEMO/pg-location")
	case "$old_pgroot" in "$DEMO"/*|/tmp/pgcoro-demo-pg.*) rm -rf "$old_pgroot" ;; esac
fi
rm -rf "$DEMO"
mkdir -p "$DEMO"

# PostgreSQL refuses to run as root: as root, its files belong to the postgres user, which
# must be able to reach them. When the checkout is not traversable by postgres (e.g. under
# /root), PostgreSQL's directory goes to /tmp instead.
PGROOT=$DEMO/pg
if [ "$IS_ROOT" = 1 ]; then
	id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' OS user (make deps)"
	if ! runuser -u postgres -- test -x "$DEMO"; then
		PGROOT=$(mktemp -d /tmp/pgcoro-demo-pg.XXXXXX)
		echo "demo: $DEMO is not reachable by the postgres user; PostgreSQL lives in $PGROOT"
	fi
	mkdir -p "$PGROOT"
	chown postgres: "$PGROOT"
else
	mkdir -p "$PGROOT"
fi
chmod 755 "$PGROOT"
echo "$PGROOT" > "$DEMO/pg-location"

while port_busy "$PG_PORT"; do PG_PORT=$((PG_PORT + 1)); done
while port_busy "$METRICS_PORT"; do METRICS_PORT=$((METRICS_PORT + 1)); done
if port_busy "$PORT"; then
	die "port $PORT is in use (PgBouncer?); pick another: PGCORO_DEMO_PORT=6433 make demo"
fi

PG_PID=
PGCORO_PID=
cleanup() {
	trap - INT TERM EXIT
	if pid_alive "$PGCORO_PID"; then
		echo "demo: stopping pgcoro (pid $PGCORO_PID)"
		kill -TERM "$PGCORO_PID" 2>/dev/null || true
		(sleep 15; kill -KILL "$PGCORO_PID" 2>/dev/null) &
		local watchdog=$!
		rc=0
		wait "$PGCORO_PID" 2>/dev/null || rc=$?
		kill "$watchdog" 2>/dev/null || true
		echo "demo: pgcoro exited with status $rc"
	fi
	if pid_alive "$PG_PID"; then
		echo "demo: stopping PostgreSQL (pid $PG_PID)"
		kill -INT "$PG_PID" 2>/dev/null || true
		for _ in $(seq 300); do pid_alive "$PG_PID" || break; sleep 0.1; done
		if pid_alive "$PG_PID"; then kill -KILL "$PG_PID" 2>/dev/null || true; fi
	fi
	echo "demo: stopped (files kept in $DEMO)"
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

# ---- PostgreSQL ------------------------------------------------------------------------
echo "demo: initdb in $PGROOT/data"
as_pg "$PGBIN/initdb" -D "$PGROOT/data" -U postgres --auth-local=trust \
	--auth-host=scram-sha-256 --no-locale -E UTF8 --no-sync >"$PGROOT/initdb.log" 2>&1 ||
	{ cat "$PGROOT/initdb.log" >&2; die "initdb failed"; }
echo "demo: starting PostgreSQL on 127.0.0.1:$PG_PORT (socket in $PGROOT)"
as_pg "$PGBIN/pg_ctl" start -w -t 60 -D "$PGROOT/data" -l "$PGROOT/postgres.log" \
	-o "-p $PG_PORT -k $PGROOT -c listen_addresses=127.0.0.1" >/dev/null ||
	{ tail -20 "$PGROOT/postgres.log" >&2; die "PostgreSQL did not start"; }
PG_PID=$(head -1 "$PGROOT/data/postmaster.pid")

run_sql() {
	env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE -u PGPASSWORD \
		"$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$PGROOT" -p "$PG_PORT" -U postgres -d postgres "$@"
}
run_sql -c "SET password_encryption = 'scram-sha-256'" \
	-c "CREATE ROLE $DEMO_USER LOGIN PASSWORD '$DEMO_PASS'" \
	-c "CREATE DATABASE demo OWNER $DEMO_USER"

# ---- pgcoro ----------------------------------------------------------------------------
printf '"%s" "%s"\n' "$DEMO_USER" "$DEMO_PASS" > "$DEMO/userlist.txt"
chmod 600 "$DEMO/userlist.txt"
# the PgBouncer file as it is, and pgcoro's additions in a file that includes it
for f in demo-pgbouncer.ini:pgbouncer.ini demo.ini:pgcoro.ini; do
	sed -e "s|@DEMO_DIR@|$DEMO|g" -e "s|@PORT@|$PORT|g" -e "s|@PG_PORT@|$PG_PORT|g" \
		-e "s|@METRICS_PORT@|$METRICS_PORT|g" \
		"$ROOT/conf/${f%%:*}" > "$DEMO/${f##*:}"
done
"$PGCORO" --check-config "$DEMO/pgcoro.ini" || die "demo/pgcoro.ini was refused"

"$PGCORO" -c "$DEMO/pgcoro.ini" &
PGCORO_PID=$!
for _ in $(seq 100); do
	port_busy "$PORT" && break
	pid_alive "$PGCORO_PID" || die "pgcoro exited at start (see its log above)"
	sleep 0.1
done
port_busy "$PORT" || die "pgcoro does not listen on port $PORT"

cat <<EOF

  pgcoro (pid $PGCORO_PID) listens on 127.0.0.1:$PORT and $DEMO/.s.PGSQL.$PORT,
  in front of PostgreSQL 15 (pid $PG_PID) on 127.0.0.1:$PG_PORT.
  It reads a PgBouncer configuration unchanged: $DEMO/pgbouncer.ini
  (transaction pooling), included by $DEMO/pgcoro.ini, which adds /metrics.
  User "$DEMO_USER", password "$DEMO_PASS"; databases "demo" (pool 5) and "postgres" (pool 2).

  Connect over TCP:
      PGPASSWORD=$DEMO_PASS psql -h 127.0.0.1 -p $PORT -U $DEMO_USER demo
  over the unix socket:
      PGPASSWORD=$DEMO_PASS psql -h $DEMO -p $PORT -U $DEMO_USER demo
  load it (20 clients on the pool's 5 servers, prepared statements included):
      PGPASSWORD=$DEMO_PASS pgbench -h 127.0.0.1 -p $PORT -U $DEMO_USER -i demo
      PGPASSWORD=$DEMO_PASS pgbench -h 127.0.0.1 -p $PORT -U $DEMO_USER -c 20 -j 4 -M prepared -T 10 demo

  the admin console (PgBouncer's SHOW and commands; "$DEMO_USER" is an admin here):
      PGPASSWORD=$DEMO_PASS psql -h 127.0.0.1 -p $PORT -U $DEMO_USER pgbouncer -c 'SHOW POOLS'
  Prometheus metrics, with histograms of transaction, query and wait times:
      curl -s http://127.0.0.1:$METRICS_PORT/metrics | grep -v '^#'

  config: $DEMO/pgbouncer.ini + $DEMO/pgcoro.ini   PostgreSQL log: $PGROOT/postgres.log
  pgcoro logs below. Press Ctrl-C to stop both.

EOF

if [ "$SMOKE" = 1 ]; then
	out=$(env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE PGPASSWORD=$DEMO_PASS \
		"$PSQL" -X -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U "$DEMO_USER" -d demo \
		-c "select 'smoke ' || current_user")
	out2=$(env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE PGPASSWORD=$DEMO_PASS \
		"$PSQL" -X -A -t -v ON_ERROR_STOP=1 -h "$DEMO" -p "$PORT" -U "$DEMO_USER" -d demo \
		-c "select 'unix ok'")
	pools=$(env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE PGPASSWORD=$DEMO_PASS \
		"$PSQL" -X -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U "$DEMO_USER" -d pgbouncer \
		-c "SHOW POOLS" | cut -d'|' -f1 | sort -u | tr '\n' ' ')
	# the pgbench lines printed above, with a count of transactions instead of 10 s
	PGBENCH=$(command -v pgbench || echo "$PGBIN/pgbench")
	env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE PGPASSWORD=$DEMO_PASS \
		"$PGBENCH" -h 127.0.0.1 -p "$PORT" -U "$DEMO_USER" -i -q demo >"$DEMO/pgbench.log" 2>&1 ||
		{ cat "$DEMO/pgbench.log" >&2; die "pgbench -i failed"; }
	env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE PGPASSWORD=$DEMO_PASS \
		"$PGBENCH" -h 127.0.0.1 -p "$PORT" -U "$DEMO_USER" -c 20 -j 4 -M prepared -t 25 demo \
		>>"$DEMO/pgbench.log" 2>&1 || { cat "$DEMO/pgbench.log" >&2; die "pgbench failed"; }
	bench=$(grep -o 'number of transactions actually processed: [0-9/]*' "$DEMO/pgbench.log")
	echo "demo: pgbench -c 20 on a pool of 5: $bench"
	[ "$bench" = "number of transactions actually processed: 500/500" ] || die "pgbench did not finish"
	exec 3<>"/dev/tcp/127.0.0.1/$METRICS_PORT"
	printf 'GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
	xacts=$(grep '^pgcoro_transactions_total{database="demo"' <&3 || true)
	exec 3<&-
	echo "demo: $out, $out2; SHOW POOLS: $pools; metrics: $xacts"
	[ "$out" = "smoke $DEMO_USER" ] && [ "$out2" = "unix ok" ] || die "smoke query failed"
	[ "$pools" = "demo pgbouncer " ] || die "SHOW POOLS on the console failed"
	[ -n "$xacts" ] || die "no pgcoro_transactions_total for demo in /metrics"
	exit 0
fi

wait "$PGCORO_PID" || true
echo "demo: pgcoro exited"
