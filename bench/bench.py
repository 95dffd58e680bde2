#!/usr/bin/python3
"""pgcoro vs PgBouncer benchmark — run by `make bench` through bench/run.sh.

See bench/README.md for what is measured and how. Environment overrides:

  BENCH_ROUNDS=3          rounds per scenario (each round runs pgcoro, then PgBouncer)
  BENCH_SECONDS=5         seconds per pgbench run
  BENCH_ONLY=a,b          only the scenarios whose name is one of the items, or contains
                          one (an item equal to a scenario name selects only that one)
  BENCH_IDLE=10000        idle clients held in the idle scenario (lowered to 5000 when
                          the open-files limit cannot hold them)
  BENCH_POOL=20           pool size of both poolers
  BENCH_SCALE=10          pgbench scale factor
  BENCH_SYSCALLS=1        0: skip the separate syscall-counting run (perf stat)
  BENCH_SYSCALL_SECONDS=3 length of that run
  BENCH_DEADLINE=2400     seconds; no new run starts after that, results so far are kept
  BENCH_KEEP=0            1: keep the temporary directory (configs, logs)
  BENCH_PGCORO=./pgcoro   the pgcoro binary
"""

import datetime
import glob
import json
import os
import pwd
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "bench")
RESULTS = os.path.join(BENCH_DIR, "results")
CLK_TCK = os.sysconf("SC_CLK_TCK")
USER, PASSWORD, DB = "bench", "benchpw", "bench"
POOLERS = ("pgcoro", "pgbouncer")
LABEL = {"pgcoro": "pgcoro", "pgbouncer": "PgBouncer"}


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


ROUNDS = env_int("BENCH_ROUNDS", 3)
SECONDS = env_int("BENCH_SECONDS", 5)
ONLY = [s.strip() for s in os.environ.get("BENCH_ONLY", "").split(",") if s.strip()]
IDLE_WANTED = env_int("BENCH_IDLE", 10000)
POOL = env_int("BENCH_POOL", 20)
SCALE = env_int("BENCH_SCALE", 10)
SYSCALLS = env_int("BENCH_SYSCALLS", 1)
SYSCALL_SECONDS = env_int("BENCH_SYSCALL_SECONDS", 3)
DEADLINE = env_int("BENCH_DEADLINE", 2400)
KEEP = env_int("BENCH_KEEP", 0)
PGCORO_BIN = os.path.abspath(os.environ.get("BENCH_PGCORO") or os.path.join(ROOT, "pgcoro"))

IS_ROOT = os.getuid() == 0
T0 = time.monotonic()


def log(msg):
    print(f"bench [{time.monotonic() - T0:6.0f}s] {msg}", flush=True)


class BenchError(Exception):
    pass


def die(msg):
    raise BenchError(msg)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def proc_cpu_us(pid):
    """(user µs, system µs) of the whole process (all threads) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) * 1e6 / CLK_TCK, int(rest[12]) * 1e6 / CLK_TCK


def proc_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def client_env(tls=False):
    """libpq's environment for the bench's clients: TLS (sslmode=require) for the tls-*
    scenarios, else none."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGPASSWORD=PASSWORD, PGSSLMODE="require" if tls else "disable",
               PGGSSENCMODE="disable", PGCONNECT_TIMEOUT="30")
    return env


def percentile(sorted_vals, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


class RssSampler(threading.Thread):
    """Largest VmRSS of a process seen while running (every 100 ms)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop_ev = pid, 0, threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            try:
                self.peak = max(self.peak, proc_rss_kib(self.pid))
            except OSError:
                return
            self.stop_ev.wait(0.1)

    def finish(self):
        self.stop_ev.set()
        self.join(2)
        try:
            self.peak = max(self.peak, proc_rss_kib(self.pid))
        except OSError:
            pass
        return self.peak


# ---- scenarios ----------------------------------------------------------------------------

def scenarios(idle_n):
    out = []
    for mode in ("simple", "extended", "prepared"):
        for c in (10, 100, 1000):
            out.append(dict(name=f"select-{mode}-{c}", kind="pgbench", mode=mode,
                            desc=f"pgbench -S -M {mode}, {c} clients",
                            args=["-S", "-M", mode, "-c", str(c), "-j", str(min(2, c))]))
    out.append(dict(name="tpcb-100", kind="pgbench", mode="simple", tpcb=True,
                    desc="pgbench TPC-B (default script) -M simple, 100 clients",
                    args=["-M", "simple", "-c", "100", "-j", "2"]))
    out.append(dict(name="connect-50", kind="pgbench", mode="simple",
                    desc="pgbench -S -M simple -C (new connection per transaction), 50 clients",
                    args=["-S", "-M", "simple", "-C", "-c", "50", "-j", "2"]))
    out.append(dict(name=f"idle-{idle_n}", kind="idle", n=idle_n,
                    desc=f"{idle_n} idle logged-in clients (bench/idle_clients.py)"))
    # TLS on both hops: clients to the pooler and the pooler to PostgreSQL
    out.append(dict(name="tls-select-simple-100", kind="pgbench", mode="simple", tls=True,
                    desc="TLS both hops: pgbench -S -M simple, 100 clients",
                    args=["-S", "-M", "simple", "-c", "100", "-j", "2"]))
    out.append(dict(name="tls-connect-50", kind="pgbench", mode="simple", tls=True,
                    desc="TLS both hops: pgbench -S -M simple -C (a TLS handshake and md5 "
                         "login per transaction), 50 clients",
                    args=["-S", "-M", "simple", "-C", "-c", "50", "-j", "2"]))
    return out


def select_scenarios(all_sc):
    if not ONLY:
        return all_sc
    names = {s["name"] for s in all_sc}
    chosen = set()
    for item in ONLY:
        if item in names:
            chosen.add(item)
        else:
            chosen |= {n for n in names if item in n}
    sel = [s for s in all_sc if s["name"] in chosen]
    if not sel:
        die(f"BENCH_ONLY={','.join(ONLY)} matches no scenario; names: {', '.join(sorted(names))}")
    return sel


# ---- the bench ----------------------------------------------------------------------------

class Bench:
    def __init__(self):
        self.procs = []          # every Popen we started and have not reaped
        self.pooler = {}         # name -> Popen
        self.pg_pid = None
        self.tmp = None
        self.pg_bin = None
        self.notes = []
        self.probe = {}          # pooler -> result of the -M prepared probe
        self.tls = False         # the poolers run their TLS configs (tls-* scenarios)

    # ---- process helpers ----
    def as_pg(self, cmd):
        return ["runuser", "-u", "postgres", "--"] + cmd if IS_ROOT else cmd

    def popen(self, cmd, **kw):
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(cmd, **kw)
        self.procs.append(p)
        return p

    def run(self, cmd, timeout, check=True, **kw):
        p = self.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(p, "command", grace=3)
            die(f"timed out after {timeout}s: {' '.join(cmd)}")
        finally:
            if p.poll() is not None and p in self.procs:
                self.procs.remove(p)
        if check and p.returncode != 0:
            die(f"failed ({p.returncode}): {' '.join(cmd)}\n{out}")
        return p.returncode, out

    def stop(self, p, what, sig=signal.SIGTERM, grace=10):
        """Stop one process we started, by its PID."""
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
                p.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"{what} (pid {p.pid}) did not stop in {grace}s; SIGKILL")
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
            except ProcessLookupError:
                pass
        if p in self.procs:
            self.procs.remove(p)

    def cleanup(self):
        for name, p in list(self.pooler.items()):
            self.stop(p, LABEL[name])
        self.pooler.clear()
        for p in list(self.procs):
            self.stop(p, f"pid {p.pid}", grace=5)
        if self.pg_pid and pid_alive(self.pg_pid):
            data = os.path.join(self.tmp, "pgdata")
            try:
                subprocess.run(self.as_pg([f"{self.pg_bin}/pg_ctl", "stop", "-m", "fast", "-w",
                                           "-t", "30", "-D", data]),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=40)
            except subprocess.TimeoutExpired:
                pass
            if pid_alive(self.pg_pid):
                log(f"PostgreSQL (pid {self.pg_pid}) still running; SIGKILL")
                try:
                    os.kill(self.pg_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.tmp and os.path.isdir(self.tmp):
            if KEEP:
                log(f"kept {self.tmp}")
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- setup ----
    def preflight(self):
        for cand in ("/usr/lib/postgresql/15/bin",):
            if os.path.exists(f"{cand}/initdb"):
                self.pg_bin = cand
        if not self.pg_bin:
            die("PostgreSQL 15 server binaries not found (make bench-deps)")
        for tool in ("pgbench", "psql", "pgbouncer"):
            if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
                die(f"{tool} not found (make bench-deps)")
        if not os.access(PGCORO_BIN, os.X_OK):
            die(f"{PGCORO_BIN} not built (make)")
        ldd = subprocess.run(["ldd", PGCORO_BIN], capture_output=True, text=True).stdout
        if "libasan" in ldd or "libubsan" in ldd:
            die(f"{PGCORO_BIN} is a sanitizer build; rebuild it with plain `make`")
        if IS_ROOT:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                die("running as root needs the 'postgres' OS user (make bench-deps)")

    def limits(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 20
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
        self.nofile = soft
        n = IDLE_WANTED
        if soft < n + 300:
            n = 5000 if soft >= 5300 else max(100, soft - 300)
            self.notes.append(f"idle scenario holds {n} clients, not {IDLE_WANTED}: the "
                              f"open-files limit is {soft} here")
        self.idle_n = n
        self.max_client_conn = max(n, 1000) + 1000

    def identify(self):
        """What is measured: HEAD when the run starts, and the binary itself (the copy
        made now is what runs, even if ./pgcoro is rebuilt meanwhile)."""
        try:
            self.commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                         capture_output=True, text=True,
                                         timeout=10).stdout.strip() or "?"
        except (OSError, subprocess.TimeoutExpired):
            self.commit = "?"
        import hashlib
        with open(PGCORO_BIN, "rb") as f:
            self.bin_sha = hashlib.sha256(f.read()).hexdigest()[:12]
        self.bin_mtime = datetime.datetime.fromtimestamp(
            os.stat(PGCORO_BIN).st_mtime).strftime("%Y-%m-%d %H:%M:%S")

    def setup_tmp(self):
        self.tmp = tempfile.mkdtemp(prefix="pgcoro-bench.")
        os.chmod(self.tmp, 0o755)
        if IS_ROOT:
            pw = pwd.getpwnam("postgres")
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
        self.runas = {}
        if IS_ROOT:
            self.runas = dict(user="postgres", group="postgres", extra_groups=[])
        # pgcoro's binary is copied so the postgres user can run it wherever the checkout is
        self.pgcoro_exe = os.path.join(self.tmp, "pgcoro")
        shutil.copy2(PGCORO_BIN, self.pgcoro_exe)
        os.chmod(self.pgcoro_exe, 0o755)

    def own(self, path):
        if IS_ROOT:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def make_certs(self):
        """A CA and a server certificate for 127.0.0.1 (EC P-256, openssl CLI), used by
        PostgreSQL and by both poolers towards their clients."""
        self.certs = os.path.join(self.tmp, "certs")
        os.makedirs(self.certs)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        c = self.certs
        self.run(["openssl", "req", "-x509"] + ec + ["-keyout", f"{c}/ca.key", "-out",
                 f"{c}/ca.crt", "-days", "2", "-subj", "/CN=pgcoro bench CA"], timeout=60)
        self.run(["openssl", "req", "-new"] + ec + ["-keyout", f"{c}/server.key", "-out",
                 f"{c}/server.csr", "-subj", "/CN=127.0.0.1"], timeout=60)
        with open(f"{c}/server.ext", "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        self.run(["openssl", "x509", "-req", "-in", f"{c}/server.csr", "-CA", f"{c}/ca.crt",
                  "-CAkey", f"{c}/ca.key", "-CAcreateserial", "-out", f"{c}/server.crt",
                  "-days", "2", "-extfile", f"{c}/server.ext"], timeout=60)
        for fn in os.listdir(c):
            os.chmod(os.path.join(c, fn), 0o600 if fn.endswith(".key") else 0o644)
            self.own(os.path.join(c, fn))
        self.own(c)

    def start_postgres(self):
        data = os.path.join(self.tmp, "pgdata")
        self.make_certs()
        self.pg_port = free_port()
        log(f"initdb in {data}")
        self.run(self.as_pg([f"{self.pg_bin}/initdb", "-D", data, "-U", "postgres",
                             "--auth-local=trust", "--auth-host=scram-sha-256", "--no-locale",
                             "-E", "UTF8", "--no-sync"]), timeout=120)
        conf = f"""
# pgcoro bench: keep the database from being the bottleneck
listen_addresses = '127.0.0.1'
port = {self.pg_port}
unix_socket_directories = '{self.tmp}'
max_connections = {2 * POOL + 60}
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
autovacuum = off
log_min_messages = warning
log_connections = off
log_disconnections = off
# the tls-* scenarios (plain ones connect with sslmode=disable)
ssl = on
ssl_cert_file = '{self.certs}/server.crt'
ssl_key_file = '{self.certs}/server.key'
"""
        with open(os.path.join(data, "postgresql.conf"), "a") as f:
            f.write(conf)
        log(f"starting PostgreSQL on 127.0.0.1:{self.pg_port}")
        pglog = os.path.join(self.tmp, "postgres.log")
        self.run(self.as_pg([f"{self.pg_bin}/pg_ctl", "start", "-w", "-t", "60", "-D", data,
                             "-l", pglog]), timeout=90)
        with open(os.path.join(data, "postmaster.pid")) as f:
            self.pg_pid = int(f.readline())
        self.psql_pg("postgres", "SET password_encryption = 'scram-sha-256'; "
                     f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
        self.psql_pg("postgres", f"CREATE DATABASE {DB} OWNER {USER};")
        log(f"pgbench -i -s {SCALE}")
        self.run(["pgbench", "-i", "-q", "-s", str(SCALE), "-h", self.tmp, "-p",
                  str(self.pg_port), "-U", USER, DB], timeout=600, env=client_env())
        self.psql_pg(DB, "VACUUM ANALYZE;")
        _, v = self.run(["psql", "-X", "-A", "-t", "-h", self.tmp, "-p", str(self.pg_port),
                         "-U", "postgres", "-d", "postgres", "-c", "show server_version"],
                        timeout=30, env=client_env())
        self.pg_version = v.strip()

    def psql_pg(self, db, *sqls):
        """Each statement in its own -c (own transaction: VACUUM needs that)."""
        cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.tmp, "-p",
               str(self.pg_port), "-U", "postgres", "-d", db]
        for sql in sqls:
            cmd += ["-c", sql]
        self.run(cmd, timeout=300, env=client_env())

    def write_configs(self):
        self.port = {"pgcoro": free_port(), "pgbouncer": free_port()}
        userlist = os.path.join(self.tmp, "userlist.txt")
        with open(userlist, "w") as f:
            f.write(f'"{USER}" "{PASSWORD}"\n')
        os.chmod(userlist, 0o600)
        self.own(userlist)
        server = f"host=127.0.0.1 port={self.pg_port} dbname={DB}"
        self.cfg = {}
        self.cfg["pgcoro"] = f"""[pgcoro]
listen_addr = 127.0.0.1
listen_port = {self.port['pgcoro']}
unix_socket_dir = ""
auth_type = md5
auth_file = {userlist}
pool_mode = transaction
default_pool_size = {POOL}
max_client_conn = {self.max_client_conn}
log_level = warning

[databases]
{DB} = {server} sslmode=disable
"""
        self.cfg["pgbouncer"] = f"""[databases]
{DB} = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port['pgbouncer']}
unix_socket_dir =
; pgcoro's listen backlog
listen_backlog = 512
auth_type = md5
auth_file = {userlist}
pool_mode = transaction
default_pool_size = {POOL}
max_client_conn = {self.max_client_conn}
server_tls_sslmode = disable
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
log_pooler_errors = 1
log_stats = 0
"""
        # the tls-* scenarios: the same, with TLS on both hops and the same files
        self.cfg["pgcoro-tls"] = self.cfg["pgcoro"].replace(
            "log_level = warning\n",
            f"log_level = warning\nclient_tls_sslmode = require\n"
            f"client_tls_key_file = {self.certs}/server.key\n"
            f"client_tls_cert_file = {self.certs}/server.crt\n").replace(
            "sslmode=disable", "sslmode=require")
        self.cfg["pgbouncer-tls"] = self.cfg["pgbouncer"].replace(
            "server_tls_sslmode = disable\n",
            f"server_tls_sslmode = require\nclient_tls_sslmode = require\n"
            f"client_tls_key_file = {self.certs}/server.key\n"
            f"client_tls_cert_file = {self.certs}/server.crt\n")
        self.ini = {}
        for name in self.cfg:
            self.ini[name] = os.path.join(self.tmp, f"{name}.ini")
            with open(self.ini[name], "w") as f:
                f.write(self.cfg[name])
            self.own(self.ini[name])
        for ini in (self.ini["pgcoro"], self.ini["pgcoro-tls"]):
            rc, out = self.run(self.as_pg([self.pgcoro_exe, "--check-config", ini]), timeout=30,
                               check=False)
            if rc != 0:
                die(f"pgcoro refused the bench config {ini}:\n{out}")
        _, v = self.run(["pgbouncer", "--version"], timeout=10)
        self.pgbouncer_version = v.splitlines()[0].strip()
        _, v = self.run([self.pgcoro_exe, "--version"], timeout=10)
        self.pgcoro_version = v.strip()

    def start_pooler(self, name):
        if name in self.pooler:
            self.stop(self.pooler.pop(name), LABEL[name])
        port = self.port[name]
        for _ in range(50):
            if not port_open(port):
                break
            time.sleep(0.1)
        logf = open(os.path.join(self.tmp, f"{name}.log"), "a")
        ini = self.ini[name + ("-tls" if self.tls else "")]
        cmd = [self.pgcoro_exe, "-c", ini] if name.startswith("pgcoro") else ["pgbouncer", ini]
        # HOME: libpq looks for ~/.postgresql/postgresql.crt with sslmode=require, and
        # root's home is unreadable to the postgres user
        p = self.popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=self.tmp,
                       env=dict(os.environ, HOME=self.tmp), **self.runas)
        logf.close()
        self.pooler[name] = p
        self.wait_listening(name)
        self.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                  str(port), "-U", USER, "-d", DB, "-c", "select 1"], timeout=30,
                 env=client_env(self.tls))
        return p

    def wait_listening(self, name):
        """Waits (10 s at most) until the process started as NAME listens on its port."""
        p, port = self.pooler[name], self.port[name]
        for _ in range(100):
            if p.poll() is not None:
                die(f"{LABEL[name]} exited at start; log: {self.tail(name)}")
            if port_open(port):
                return
            time.sleep(0.1)
        die(f"{LABEL[name]} does not listen on {port}")

    def set_tls(self, tls):
        """Restarts both poolers with their TLS configs (TLS true) or plain ones, and opens
        their pools again, when that is not what runs."""
        if tls == self.tls:
            return
        self.tls = tls
        log(f"restarting the poolers with TLS {'on' if tls else 'off'}")
        for name in POOLERS:
            self.start_pooler(name)
            self.pgbench(name, dict(args=["-S", "-c", str(POOL), "-j", "2"], tls=tls), 2,
                         f"warm-{name}-tls{int(tls)}")

    # ---- callgrind: instructions per transaction, independent of the machine's load ----
    def callgrind_per_txn(self, name, clients, txns, before=None, files=None):
        """Pooler NAME under callgrind: a warm-up opens the pool, BEFORE() runs, the
        counters are zeroed (callgrind_control -z), TXNS select-only transactions per
        client of CLIENTS clients run, the counters are dumped (-d). Returns (instructions
        per transaction, of them in source files matching the regex FILES — callgrind
        names inlined code by its file — or 0). The clients' logins are in the count."""
        cgdir = os.path.join(self.tmp, f"cg-{name}-{clients}-{txns}")
        os.makedirs(cgdir, exist_ok=True)
        self.own(cgdir)
        out = os.path.join(cgdir, "cg.out")
        target = [self.pgcoro_exe, "-c", self.ini[name]] if name.startswith("pgcoro") \
            else ["pgbouncer", self.ini[name]]
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *target]
        # callgrind_control reaches the process through vgdb, which must be able to
        # ptrace it: started by runuser (a fresh login), not by a setuid from here
        wrap = ["runuser", "-u", "postgres", "--"] if self.runas else []
        runner = self.popen(wrap + cmd, stdout=open(os.path.join(self.tmp, f"{name}.log"), "a"),
                            stderr=subprocess.STDOUT, cwd=self.tmp,
                            env=dict(os.environ, HOME=self.tmp))
        self.pooler[name] = runner
        pid = runner.pid
        for _ in range(600):
            if runner.poll() is not None:
                die(f"{LABEL[name]} under callgrind exited: {self.tail(name)}")
            if wrap:
                try:
                    with open(f"/proc/{runner.pid}/task/{runner.pid}/children") as f:
                        kids = f.read().split()
                    pid = int(kids[0]) if kids else None
                except OSError:
                    pid = None
            if pid and port_open(self.port[name]):
                break
            time.sleep(0.1)
        else:
            die(f"{LABEL[name]} under callgrind does not listen")

        def ctl(flag):
            _, said = self.run(wrap + ["callgrind_control", flag, str(pid)], timeout=120)
            if "OK" not in said:
                die(f"callgrind_control {flag} {pid}: {said.strip()}")

        try:
            self.pgbench(name, dict(args=["-S", "-c", str(POOL), "-j", "2", "-t", "20"]), 0,
                         f"cg-warm-{name}")
            # server connections the warm-up started (SCRAM to PostgreSQL takes a while
            # under valgrind) must be made before the count: the number of backends
            # unchanged for 3 s
            count = ["psql", "-X", "-A", "-t", "-h", self.tmp, "-p", str(self.pg_port), "-U",
                     "postgres", "-d", "postgres", "-c",
                     f"select count(*) from pg_stat_activity where usename = '{USER}' and "
                     f"state is not null"]
            seen, same = None, 0
            for _ in range(600):
                _, n = self.run(count, timeout=30, env=client_env())
                same = same + 1 if n == seen else 0
                seen = n
                if same >= 6:
                    break
                time.sleep(0.5)
            if before:
                before()
            ctl("-z")
            r = self.pgbench(name, dict(args=["-S", "-c", str(clients), "-j", "1", "-t",
                                              str(txns)]), 0, f"cg-{name}-{clients}")
            if r.get("txns") != clients * txns:
                die(f"callgrind run of {LABEL[name]}: {r}")
            ctl("-d")
        finally:
            if pid:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            self.stop(self.pooler.pop(name), LABEL[name], grace=120)
        dump = out + ".1"
        total = None
        with open(dump) as f:
            for line in f:
                m = re.match(r"summary: (\d+)", line)  # the dumped part's cost
                if m:
                    total = int(m.group(1))
        if total is None:
            die(f"no totals in {dump}")
        own = 0
        if files:
            _, listing = self.run(["callgrind_annotate", "--inclusive=no", "--threshold=100",
                                   "--auto=no", dump], timeout=120)
            for line in listing.splitlines():
                m = re.match(r"\s*([\d,]+) .*?(?:" + files + r"):", line)
                if m:
                    own += int(m.group(1).replace(",", ""))
        n = clients * txns
        return total / n, own / n

    def tail(self, name, n=20):
        try:
            with open(os.path.join(self.tmp, f"{name}.log")) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def pid(self, name):
        p = self.pooler[name]
        if p.poll() is not None:
            die(f"{LABEL[name]} (pid {p.pid}) died; log:\n{self.tail(name)}")
        return p.pid

    # ---- one pgbench run ----
    def pgbench(self, name, sc, seconds, tag, perf=False):
        pid = self.pid(name)
        logdir = os.path.join(self.tmp, "logs", tag)
        os.makedirs(logdir, exist_ok=True)
        if sc.get("tpcb"):
            self.psql_pg(DB, "VACUUM pgbench_branches, pgbench_tellers", "TRUNCATE pgbench_history")
        cmd = ["pgbench", "-h", "127.0.0.1", "-p", str(self.port[name]), "-U", USER, "-n"] + \
            (["-T", str(seconds)] if seconds else []) + sc["args"]  # 0: sc has -t
        if not perf:
            cmd += ["--log", f"--log-prefix={logdir}/tx"]
        cmd.append(DB)
        perf_p = None
        perf_out = os.path.join(logdir, "perf.csv")
        if perf:
            perf_p = self.popen(["perf", "stat", "-x", ",", "-o", perf_out, "-e",
                                 "raw_syscalls:sys_enter,syscalls:sys_enter_epoll_ctl",
                                 "-p", str(pid)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
            time.sleep(0.3)
        rss = RssSampler(pid)
        u0, s0 = proc_cpu_us(pid)
        t0 = time.monotonic()
        rss.start()
        p = self.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       env=client_env(sc.get("tls", False)), cwd=logdir)
        try:
            out, _ = p.communicate(timeout=(seconds or 600) + 240)
        except subprocess.TimeoutExpired:
            self.stop(p, "pgbench", signal.SIGINT, grace=10)
            out = "pgbench timed out"
        if p in self.procs:
            self.procs.remove(p)
        time.sleep(0.5)  # let the pooler finish the disconnections inside the window
        wall = time.monotonic() - t0
        u1, s1 = proc_cpu_us(pid)
        peak = rss.finish()
        r = {"wall_s": wall}
        m = re.search(r"number of transactions actually processed: (\d+)", out)
        txns = int(m.group(1)) if m else 0
        m = re.search(r"number of failed transactions: (\d+)", out)
        failed = int(m.group(1)) if m else 0
        m = re.search(r"tps = ([\d.]+)", out)
        tps = float(m.group(1)) if m else None
        aborted = re.findall(r"client \d+ aborted.*", out)
        if p.returncode != 0 or failed or aborted or not txns or tps is None:
            errs = [ln for ln in out.splitlines() if "error" in ln.lower() or "abort" in ln]
            msg = errs[0] if errs else (out.strip().splitlines() or ["?"])[-1]
            r["error"] = f"pgbench rc={p.returncode}: {msg.strip()[:200]}"
        if perf_p:
            self.stop(perf_p, "perf stat", signal.SIGINT, grace=10)
            counts = {}
            try:
                with open(perf_out) as f:
                    for line in f:
                        parts = line.strip().split(",")
                        if len(parts) >= 3 and parts[0].isdigit():
                            counts[parts[2]] = int(parts[0])
            except OSError:
                pass
            if txns and "raw_syscalls:sys_enter" in counts:
                r["syscalls_per_txn"] = counts["raw_syscalls:sys_enter"] / txns
                r["epoll_ctl_per_txn"] = counts.get("syscalls:sys_enter_epoll_ctl", 0) / txns
            shutil.rmtree(logdir, ignore_errors=True)
            return r
        r.update(txns=txns, tps=tps, user_us=u1 - u0, sys_us=s1 - s0, rss_peak_kib=peak)
        if txns:
            r["cpu_us_per_txn"] = (u1 - u0 + s1 - s0) / txns
            r["user_us_per_txn"] = (u1 - u0) / txns
            r["sys_us_per_txn"] = (s1 - s0) / txns
            r["cpu_pct"] = 100.0 * (u1 - u0 + s1 - s0) / 1e6 / wall
        lat = []
        for fn in glob.glob(os.path.join(logdir, "tx*")):
            with open(fn) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 6 and parts[2].isdigit():
                        lat.append(int(parts[2]))
        lat.sort()
        if lat:
            r["lat_p50_ms"] = percentile(lat, 50) / 1000.0
            r["lat_p99_ms"] = percentile(lat, 99) / 1000.0
        shutil.rmtree(logdir, ignore_errors=True)
        return r

    # ---- idle clients ----
    def idle(self, name, n):
        self.start_pooler(name)          # fresh process: memory not shaped by earlier runs
        pid = self.pid(name)
        time.sleep(1.0)
        rss0 = proc_rss_kib(pid)
        u0, s0 = proc_cpu_us(pid)
        helper = self.popen(["/usr/bin/python3", os.path.join(BENCH_DIR, "idle_clients.py"),
                             "127.0.0.1", str(self.port[name]), USER, PASSWORD, DB, str(n)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
        r = {}
        try:
            line = self.readline(helper, 300)
            m = re.match(r"READY ok=(\d+) failed=(\d+) seconds=([\d.]+) first_error=(.*)", line)
            if not m:
                r["error"] = f"idle helper: {line.strip()[:200] or 'no answer'}"
                return r
            ok, failed, secs = int(m.group(1)), int(m.group(2)), float(m.group(3))
            time.sleep(1.0)
            rss1 = proc_rss_kib(pid)
            u1, s1 = proc_cpu_us(pid)
            nfd = len(os.listdir(f"/proc/{pid}/fd"))
            helper.stdin.write("close\n")
            helper.stdin.flush()
            self.readline(helper, 120)
            helper.wait(30)
            time.sleep(1.0)
            rss2 = proc_rss_kib(pid)
            r.update(idle_ok=ok, idle_failed=failed, login_s=secs, fds=nfd,
                     rss_before_mib=rss0 / 1024, rss_idle_mib=rss1 / 1024,
                     rss_after_close_mib=rss2 / 1024)
            if ok:
                r["kib_per_idle"] = (rss1 - rss0) / ok
                r["login_cpu_us"] = (u1 - u0 + s1 - s0) / ok
                r["login_user_us"] = (u1 - u0) / ok
                r["logins_per_s"] = ok / secs if secs else None
            if failed:
                r["error"] = f"{failed} of {n} logins failed: {m.group(4)[:200]}"
            return r
        finally:
            self.stop(helper, "idle helper", grace=10)

    def readline(self, p, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            ready, _, _ = select.select([p.stdout], [], [], max(0.0, end - time.monotonic()))
            if ready:
                return p.stdout.readline()
            if p.poll() is not None:
                return ""
        return ""

    # ---- main loop ----
    def perf_usable(self):
        if not SYSCALLS or not shutil.which("perf"):
            return False
        try:
            r = subprocess.run(["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter",
                                "--", "/bin/ls", "/"], capture_output=True, text=True,
                               timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return r.returncode == 0 and re.search(r"^\d+,", r.stderr, re.M) is not None

    def prepare(self):
        """Checks the tools and limits, notes the versions, starts the throwaway
        PostgreSQL and writes both poolers' configs (the start of every bench script)."""
        self.preflight()
        self.limits()
        self.identify()
        self.setup_tmp()
        self.load_start = open("/proc/loadavg").read().split()[:3]
        self.start_postgres()
        self.write_configs()

    def main(self):
        started = datetime.datetime.now()
        stamp = started.strftime("%Y%m%d-%H%M%S")
        self.prepare()
        for name in POOLERS:
            self.start_pooler(name)
        log(f"pgcoro on :{self.port['pgcoro']} (pid {self.pid('pgcoro')}), PgBouncer on "
            f":{self.port['pgbouncer']} (pid {self.pid('pgbouncer')}), PostgreSQL on "
            f":{self.pg_port} (pid {self.pg_pid})")
        self.use_perf = self.perf_usable()
        if SYSCALLS and not self.use_perf:
            self.notes.append("syscalls per transaction not measured: `perf stat -e "
                              "raw_syscalls:sys_enter` is not usable here")
        # warm-up: open the pools, fault in the code
        for name in POOLERS:
            self.pgbench(name, dict(args=["-S", "-c", str(POOL), "-j", "2"]), 2, f"warm-{name}")

        sel = select_scenarios(scenarios(self.idle_n))
        results = {}
        status = {}
        for sc in sel:
            results[sc["name"]] = {n: [] for n in POOLERS}
            status[sc["name"]] = {}
            self.set_tls(sc.get("tls", False))
            runnable = list(POOLERS)
            if sc.get("mode") == "prepared":
                runnable = []
                for name in POOLERS:
                    if name not in self.probe:  # once per pooler: 10 clients, 2 s
                        self.probe[name] = self.pgbench(
                            name, dict(args=["-S", "-M", "prepared", "-c", "10", "-j", "2"]),
                            2, f"probe-{name}")
                    probe = self.probe[name]
                    if "error" in probe:
                        status[sc["name"]][name] = (
                            "n/a (pgcoro: not yet)" if name == "pgcoro" else
                            "n/a (no prepared statements in transaction mode: "
                            f"{self.pgbouncer_version.split()[-1]} < 1.21)")
                        log(f"{sc['name']}: {LABEL[name]} cannot run -M prepared: "
                            f"{probe['error']}")
                    else:
                        runnable.append(name)
            for rnd in range(1, ROUNDS + 1):
                # alternating, the first of each pair switching every round (A B, B A,
                # A B …): a drift in the machine's load favours neither pooler
                for name in (runnable if rnd % 2 else runnable[::-1]):
                    if time.monotonic() - T0 > DEADLINE:
                        self.notes.append(f"BENCH_DEADLINE ({DEADLINE}s) reached: runs from "
                                          f"{sc['name']} round {rnd} on were skipped")
                        return self.report(stamp, started, sel, results, status)
                    if name in status[sc["name"]]:
                        continue
                    tag = f"{sc['name']}-r{rnd}-{name}"
                    if sc["kind"] == "idle":
                        r = self.idle(name, sc["n"])
                    else:
                        r = self.pgbench(name, sc, SECONDS, tag)
                    results[sc["name"]][name].append(r)
                    log(f"{sc['name']:<22} r{rnd} {LABEL[name]:<9} " + summary(r))
                    if "error" in r and sc.get("mode") == "prepared":
                        status[sc["name"]][name] = ("n/a (pgcoro: not yet)" if name == "pgcoro"
                                                    else f"n/a ({r['error'][:60]})")
            if self.use_perf and sc["kind"] == "pgbench":
                for name in runnable:
                    if name in status[sc["name"]]:
                        continue
                    r = self.pgbench(name, sc, SYSCALL_SECONDS, f"{sc['name']}-perf-{name}",
                                     perf=True)
                    if "syscalls_per_txn" in r:
                        for rr in results[sc["name"]][name]:
                            rr.update(syscalls_per_txn=r["syscalls_per_txn"],
                                      epoll_ctl_per_txn=r["epoll_ctl_per_txn"])
                        log(f"{sc['name']:<22} syscalls {LABEL[name]:<9} "
                            f"{r['syscalls_per_txn']:.2f}/txn "
                            f"(epoll_ctl {r['epoll_ctl_per_txn']:.2f}/txn)")
        return self.report(stamp, started, sel, results, status)

    # ---- report ----
    def report(self, stamp, started, sel, results, status):
        os.makedirs(RESULTS, exist_ok=True)
        wall = time.monotonic() - T0
        load_end = open("/proc/loadavg").read().split()[:3]
        cpu_model = "?"
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        commit = self.commit
        ncpu = os.cpu_count()
        pgb_rows = [
            ("TPS", "tps", "{:.0f}"),
            ("latency p50 (ms)", "lat_p50_ms", "{:.3f}"),
            ("latency p99 (ms)", "lat_p99_ms", "{:.3f}"),
            ("pooler CPU µs/txn", "cpu_us_per_txn", "{:.2f}"),
            ("  user µs/txn", "user_us_per_txn", "{:.2f}"),
            ("  system µs/txn", "sys_us_per_txn", "{:.2f}"),
            ("pooler CPU % of a core", "cpu_pct", "{:.0f}"),
            ("pooler peak RSS (MiB)", "rss_peak_kib", "{:.1f}", 1 / 1024),
            ("syscalls/txn †", "syscalls_per_txn", "{:.2f}"),
            ("epoll_ctl/txn †", "epoll_ctl_per_txn", "{:.3f}"),
        ]
        idle_rows = [
            ("RSS before (MiB)", "rss_before_mib", "{:.1f}"),
            ("RSS holding the idle clients (MiB)", "rss_idle_mib", "{:.1f}"),
            ("**KiB per idle client**", "kib_per_idle", "{:.2f}"),
            ("RSS after they left (MiB)", "rss_after_close_mib", "{:.1f}"),
            ("pooler CPU µs per md5 login", "login_cpu_us", "{:.1f}"),
            ("  user µs per login", "login_user_us", "{:.1f}"),
            ("logins/s (200 in flight)", "logins_per_s", "{:.0f}"),
        ]
        table = ["| scenario | metric | pgcoro | PgBouncer | ratio |", "|---|---|--:|--:|--:|"]
        spread = []
        plot_rows = []
        summary_json = {}
        for sc in sel:
            sname = sc["name"]
            rows = idle_rows if sc["kind"] == "idle" else pgb_rows
            med = {}
            first = True
            for name in POOLERS:
                ok = [r for r in results[sname][name] if "error" not in r]
                med[name] = {}
                for row in rows:
                    key = row[1]
                    med[name][key] = median([r.get(key) for r in ok])
                med[name]["_n"] = len(ok)
                med[name]["_runs"] = len(results[sname][name])
            summary_json[sname] = {"desc": sc["desc"], "median": med, "status": status[sname],
                                   "rounds": results[sname]}
            if all(status[sname].get(n) for n in POOLERS):
                table.append(f"| **{sname}** | all | {status[sname]['pgcoro']} | "
                             f"{status[sname]['pgbouncer']} | |")
                continue
            for row in rows:
                label, key, fmt = row[:3]
                scale = row[3] if len(row) > 3 else 1
                vals = {}
                cells = {}
                for name in POOLERS:
                    st = status[sname].get(name)
                    v = med[name][key]
                    if st:
                        cells[name] = st if first else "n/a"
                    elif v is None:
                        errs = [r["error"] for r in results[sname][name] if "error" in r]
                        cells[name] = "failed" if errs else "–"
                    else:
                        vals[name] = v * scale
                        cells[name] = fmt.format(v * scale)
                        if med[name]["_n"] < med[name]["_runs"]:
                            cells[name] += f" ({med[name]['_n']}/{med[name]['_runs']} ok)"
                ratio = ""
                if len(vals) == 2 and vals["pgbouncer"]:
                    ratio = f"{vals['pgcoro'] / vals['pgbouncer']:.2f}"
                scol = f"**{sname}**" if first else ""
                table.append(f"| {scol} | {label} | {cells['pgcoro']} | {cells['pgbouncer']} | "
                             f"{ratio} |")
                first = False
            if sc["kind"] == "pgbench":
                def sp(name, key):
                    v = [r.get(key) for r in results[sname][name] if "error" not in r]
                    v = [x for x in v if x]
                    return f"{100 * (max(v) / min(v) - 1):.0f}%" if len(v) >= 2 else "–"
                spread.append(f"| {sname} | {sp('pgcoro', 'tps')} | {sp('pgbouncer', 'tps')} | "
                              f"{sp('pgcoro', 'cpu_us_per_txn')} | "
                              f"{sp('pgbouncer', 'cpu_us_per_txn')} |")

                def g(name, key):
                    v = med[name].get(key)
                    return "?" if v is None or status[sname].get(name) else f"{v:.3f}"
                if not any(status[sname].get(n) is None and med[n]["_n"] for n in POOLERS):
                    continue
                plot_rows.append("\t".join([sname, g("pgcoro", "cpu_us_per_txn"),
                                            g("pgbouncer", "cpu_us_per_txn"),
                                            g("pgcoro", "user_us_per_txn"),
                                            g("pgbouncer", "user_us_per_txn"),
                                            g("pgcoro", "tps"), g("pgbouncer", "tps")]))

        notes = [
            f"Machine: {cpu_model}, {ncpu} cores. **PostgreSQL, pgbench and the pooler share "
            f"these {ncpu} cores** (and anything else running on the host: load average "
            f"{' '.join(self.load_start)} at start, {' '.join(load_end)} at the end), so TPS "
            "and latency are those of the whole box; pooler CPU µs per transaction is the "
            "pooler's own cost and the most comparable number.",
            f"pgcoro: `{self.pgcoro_version}` (HEAD {commit} at the start; "
            f"`{os.path.relpath(PGCORO_BIN, ROOT)}` built {self.bin_mtime}, sha256 "
            f"{self.bin_sha}…, plain `make` build, may include uncommitted work). PgBouncer: `{self.pgbouncer_version}` (Debian). "
            f"PostgreSQL {self.pg_version} (fsync=off, synchronous_commit=off, "
            f"full_page_writes=off, max_connections={2 * POOL + 60}). pgbench scale {SCALE}.",
            f"Both poolers: 127.0.0.1 TCP, transaction mode, pool size {POOL}, "
            f"auth_type md5 with the same userlist file (`\"{USER}\" \"{PASSWORD}\"`), "
            f"max_client_conn {self.max_client_conn}, listen backlog 512, server TLS off, "
            "per-connection logging off (pgcoro log_level=warning; PgBouncer "
            "log_connections=0 log_disconnections=0), both run as the same OS user. "
            "Clients: sslmode=disable.",
            "tls-* scenarios: both poolers restarted with client_tls_sslmode=require and the "
            "same EC P-256 certificate and key (client_tls_protocols and client_tls_ciphers "
            "left at their defaults: TLS 1.2-1.3, OpenSSL's suites), TLS to PostgreSQL "
            "(ssl=on; pgcoro: sslmode=require in the conninfo, libpq; PgBouncer: "
            "server_tls_sslmode=require); pgbench with sslmode=require.",
            f"{ROUNDS} round(s) of {SECONDS} s per scenario, alternating, the first of each "
            "pair switching every round (pgcoro then PgBouncer, PgBouncer then pgcoro, …: A B "
            "B A A B, so a drift in the machine's load favours neither); values are **medians "
            "over the rounds**; ratio = pgcoro / "
            "PgBouncer (TPS: higher is better for pgcoro; everything else: lower is better). "
            "pgbench runs with -n (no vacuum; TPC-B runs vacuum the branches/tellers directly "
            "on PostgreSQL before each run) and -j 2.",
            "Pooler CPU = utime + stime of the pooler process (all threads) from "
            "/proc/PID/stat, delta from just before pgbench starts to 0.5 s after it exits "
            "(so client logins and logouts are included), divided by the transactions pgbench "
            f"reports; /proc tick = {1000 / CLK_TCK:.0f} ms. Latency percentiles come from "
            "pgbench's per-transaction log (--log). RSS = largest VmRSS sampled every 100 ms "
            "during the run.",
            f"† Syscalls: counted by `perf stat -e raw_syscalls:sys_enter,"
            f"syscalls:sys_enter_epoll_ctl -p PID` in a **separate {SYSCALL_SECONDS} s run** "
            "after the rounds (so the tracepoints do not slow the timed runs), all threads, "
            "divided by that run's transactions." if self.use_perf else
            "† Syscalls: not measured.",
            "Idle scenario: each round starts the pooler afresh, measures VmRSS, opens the "
            "clients with bench/idle_clients.py (asyncio, raw protocol, md5 login, 200 "
            "logins in flight), waits 1 s, measures again: KiB per idle client = RSS delta / "
            "clients; µs per login = pooler CPU delta / clients.",
        ] + self.notes

        md = [f"# pgcoro vs PgBouncer — {started.strftime('%Y-%m-%d %H:%M')}", ""]
        md += [f"- {n}" for n in notes]
        md += ["", f"Wall time of the whole run: {wall / 60:.1f} min.", ""]
        md += table
        if spread:
            md += ["", "Round-to-round spread (max/min − 1) of the per-round values:", "",
                   "| scenario | TPS pgcoro | TPS PgBouncer | CPU/txn pgcoro | CPU/txn PgBouncer |",
                   "|---|--:|--:|--:|--:|"] + spread
        md += ["", f"Raw per-round values: `{stamp}.json` (not committed). "
               f"Plot: `{stamp}.png` / `latest.png`.", ""]
        text = "\n".join(md)
        md_path = os.path.join(RESULTS, f"{stamp}.md")
        with open(md_path, "w") as f:
            f.write(text)
        shutil.copyfile(md_path, os.path.join(RESULTS, "latest.md"))
        with open(os.path.join(RESULTS, f"{stamp}.json"), "w") as f:
            json.dump({"started": started.isoformat(), "wall_s": wall, "notes": notes,
                       "config": self.cfg,
                       "scenarios": summary_json}, f, indent=1, default=str)
        png = self.plot(stamp, plot_rows)
        print()
        print(text)
        log(f"wrote {os.path.relpath(md_path, ROOT)} and bench/results/latest.md"
            + (f", {os.path.relpath(png, ROOT)} and bench/results/latest.png" if png else
               " (no plot)"))
        log(f"wall time {wall / 60:.1f} min")
        return 0

    def plot(self, stamp, rows):
        if not rows or not shutil.which("gnuplot"):
            return None
        dat = os.path.join(self.tmp, "plot.tsv")
        with open(dat, "w") as f:
            f.write("\n".join(rows) + "\n")
        png = os.path.join(RESULTS, f"{stamp}.png")
        script = f"""
set terminal pngcairo size 1400,1200 font "sans,10"
set output "{png}"
set datafile separator "\\t"
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics mytics
set key top left
set xtics rotate by -25 scale 0 font ",9"
set logscale y
set ytics format "%g"
set multiplot layout 3,1 title "pgcoro vs PgBouncer — medians of {ROUNDS} round(s) of {SECONDS} s (log scales); PostgreSQL, pgbench and the pooler share {os.cpu_count()} cores"
set ylabel "pooler CPU µs / transaction"
plot "{dat}" using 2:xtic(1) title "pgcoro" lc rgb "#1f77b4", "" using 3 title "PgBouncer" lc rgb "#ff7f0e"
set ylabel "pooler user-space µs / transaction"
plot "{dat}" using 4:xtic(1) title "pgcoro" lc rgb "#1f77b4", "" using 5 title "PgBouncer" lc rgb "#ff7f0e"
set ylabel "transactions / s"
plot "{dat}" using 6:xtic(1) title "pgcoro" lc rgb "#1f77b4", "" using 7 title "PgBouncer" lc rgb "#ff7f0e"
unset multiplot
"""
        try:
            r = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True,
                               timeout=60)
        except subprocess.TimeoutExpired:
            return None
        if r.returncode != 0 or not os.path.exists(png):
            log(f"gnuplot failed: {r.stderr.strip()[:300]}")
            return None
        shutil.copyfile(png, os.path.join(RESULTS, "latest.png"))
        return png


def summary(r):
    if "kib_per_idle" in r:
        s = (f"{r['idle_ok']} idle: {r['rss_before_mib']:.1f} -> {r['rss_idle_mib']:.1f} MiB, "
             f"{r['kib_per_idle']:.2f} KiB/client, {r['login_cpu_us']:.0f} µs/login")
    elif "tps" in r and r.get("tps"):
        s = (f"tps={r['tps']:.0f} cpu={r.get('cpu_us_per_txn', 0):.2f}µs/txn "
             f"(user {r.get('user_us_per_txn', 0):.2f}) p50={r.get('lat_p50_ms', 0):.2f}ms "
             f"p99={r.get('lat_p99_ms', 0):.2f}ms rss={r.get('rss_peak_kib', 0) / 1024:.1f}MiB")
    else:
        s = ""
    if "error" in r:
        s += f" ERROR {r['error']}"
    return s


def on_signal(signum, frame):
    raise SystemExit(128 + signum)


def save_report(filename, lines):
    """Writes LINES as bench/results/FILENAME and says so."""
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, filename)
    with open(path, "w") as f:
        f.write("\n".join(lines))
    log(f"report: {path}")


def run(bench_cls):
    """Runs BENCH_CLS().main() and stops everything it started, also on Ctrl-C, SIGTERM or
    SIGHUP. Returns the exit status."""
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    b = bench_cls()
    try:
        return b.main()
    except BenchError as e:
        log(f"error: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        b.cleanup()


if __name__ == "__main__":
    sys.exit(run(Bench))
