"""Limits shared between pools and server connect failures: max_db_connections (global
and per database) and max_user_connections (global and per user) counted on PostgreSQL
under concurrent load, closing a sibling pool's idle server to make room,
server_connect_timeout against a listener that never answers, and the connect back-off
(a closed port fails promptly; a PostgreSQL that comes up later is used without restart)."""

import collections
import datetime
import re
import socket
import threading
import time

import pytest

from conftest import (APP_PASS, APP_USER, MD5_PASS, MD5_USER, PgError, PgSampler, Wire,
                      recreate_database, wait_until, wire_exec)

pytestmark = pytest.mark.pooler_only

DB_A, DB_B = "lim2a", "lim2b"
PASSWORDS = {APP_USER: APP_PASS, MD5_USER: MD5_PASS}


@pytest.fixture(scope="module")
def limdbs(pg):
    for db in (DB_A, DB_B):
        recreate_database(pg, db)
    yield DB_A, DB_B
    pg.psql_super(f"DROP DATABASE IF EXISTS {DB_A} WITH (FORCE);\n"
                  f"DROP DATABASE IF EXISTS {DB_B} WITH (FORCE);")


def wire(inst, db, user=APP_USER, timeout=30.0):
    w = Wire.to(inst, timeout=timeout)
    w.login(user, PASSWORDS[user], db)
    return w


def one(w, sql):
    rows, errs, ready = wire_exec(w, sql)
    assert not errs and ready is not None, (sql, errs, ready)
    return rows[0] if rows else None


def conninfo(pg, db, extra=""):
    return f"host=127.0.0.1 port={pg.port} dbname={db} {extra}".strip()


# ---------------------------------------------------------------------------------------
# counting backends on PostgreSQL


def backend_counts(cur):
    """{(datname, usename): n} of the test users' client backends on DB_A and DB_B."""
    cur.execute("select datname, usename, count(*) from pg_stat_activity where "
                "backend_type = 'client backend' and pid <> pg_backend_pid() and "
                "datname in (%s, %s) and usename in (%s, %s) group by 1, 2",
                (DB_A, DB_B, APP_USER, MD5_USER))
    return {(d, u): n for d, u, n in cur.fetchall()}


def current_counts(pg):
    c = pg.super_connect()
    try:
        return backend_counts(c.cursor())
    finally:
        c.close()


def wait_no_backends(pg):
    wait_until(lambda: not current_counts(pg),
               f"no backend of app/md5user left on {DB_A}/{DB_B}: {current_counts(pg)}")


class Monitor(PgSampler):
    """Samples PostgreSQL's client backends of the test users in a thread until stopped;
    at the end keeps the peak of every per-database and per-user total (and the samples).

    A server pgcoro closes (to make room for a sibling pool) leaves PostgreSQL's view only
    once its backend has run its exit, which on a busy machine can come after pgcoro's
    next connect: so a backend pgcoro had already closed when a sample began (its
    "closing" log line, ms-truncated, + 1 ms before the sample's start) is not counted.
    Every backend pgcoro still held is."""

    min_samples = 5

    def __init__(self, pg, inst, interval=0.01):
        super().__init__(pg)
        self.inst = inst
        self.interval = interval
        self.raw = []  # (wall time the sample began, [(pid, datname, usename)])
        self.samples = []
        self.db_peak = collections.Counter()
        self.user_peak = collections.Counter()
        self.sum_peak = 0

    def sample(self):
        t0 = time.time()
        self.cur.execute("select pid, datname, usename from pg_stat_activity where "
                         "backend_type = 'client backend' and pid <> pg_backend_pid() and "
                         "datname in (%s, %s) and usename in (%s, %s)",
                         (DB_A, DB_B, APP_USER, MD5_USER))
        self.raw.append((t0, self.cur.fetchall()))

    def __exit__(self, *exc):
        r = super().__exit__(*exc)
        closed = closed_backends(self.inst.log_text())
        for t0, rows in self.raw:
            s = collections.Counter((d, u) for pid, d, u in rows
                                    if not (pid in closed and closed[pid] + 0.001 <= t0))
            self.samples.append(dict(s))
            dbs, users = collections.Counter(), collections.Counter()
            for (d, u), n in s.items():
                dbs[d] += n
                users[u] += n
            for d, n in dbs.items():
                self.db_peak[d] = max(self.db_peak[d], n)
            for u, n in users.items():
                self.user_peak[u] = max(self.user_peak[u], n)
            self.sum_peak = max(self.sum_peak, sum(s.values()))
        return r

    def worst(self, key):
        """The first sample with the most backends for KEY(sample) (for messages)."""
        return max(self.samples, key=key, default={})


LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC ")


def closed_backends(log):
    """{backend pid: wall time of pgcoro's "closing" line} from pgcoro's log."""
    pid_of, closed = {}, {}
    for line in log.splitlines():
        m = LOG_TIME.match(line)
        c = re.search(r"server (\d+) \([^)]*\): connected, backend pid (\d+)", line)
        if c:
            pid_of[c.group(1)] = int(c.group(2))
        c = re.search(r"server (\d+) \([^)]*\): closing", line)
        if m and c and c.group(1) in pid_of:
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f")
            closed[pid_of[c.group(1)]] = t.replace(tzinfo=datetime.timezone.utc).timestamp()
    return closed


def db_total(sample, db):
    return sum(n for (d, _), n in sample.items() if d == db)


def user_total(sample, user):
    return sum(n for (_, u), n in sample.items() if u == user)


def run_load(inst, combos, nclients=5, rounds=4):
    """NCLIENTS clients per (alias, user) in COMBOS log in, meet at a barrier, then each
    runs ROUNDS short transactions (begin; pg_sleep(0.05); commit) in separate messages,
    so each holds a server across round trips. Returns the errors (none expected)."""
    errors = []
    barrier = threading.Barrier(nclients * len(combos))

    def client(alias, user):
        try:
            w = wire(inst, alias, user, timeout=60)
            try:
                barrier.wait(timeout=60)
                for _ in range(rounds):
                    for sql in ("begin", "select pg_sleep(0.05), current_user",
                                "commit"):
                        rows, errs, ready = wire_exec(w, sql)
                        assert not errs and ready is not None, (sql, errs, ready)
                        if rows:
                            assert rows[0][1] == user, rows
                w.terminate()
            finally:
                w.close()
        except Exception as e:  # reported by the caller
            errors.append((alias, user, repr(e)))
            barrier.abort()

    threads = [threading.Thread(target=client, args=(alias, user), daemon=True)
               for alias, user in combos for _ in range(nclients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "load clients still running after 120 s"
    return errors


COMBOS_2DB = [("ua", APP_USER), ("ua", MD5_USER), ("ub", APP_USER), ("ub", MD5_USER)]


def two_databases(pg, extra_a="", extra_b=""):
    return {"ua": conninfo(pg, DB_A, extra_a), "ub": conninfo(pg, DB_B, extra_b)}


# ---------------------------------------------------------------------------------------
# 1. max_db_connections


def test_max_db_connections_global(pgcoro_factory, pg, limdbs):
    """max_db_connections = 3: the pools of app and md5user on one database together never
    have more than 3 servers; each database has its own 3; every waiting client is served."""
    wait_no_backends(pg)
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 10,
                                    "max_db_connections": 3, "query_wait_timeout": 60},
                          databases=two_databases(pg))
    with Monitor(pg, inst) as mon:
        errors = run_load(inst, COMBOS_2DB)
    assert not errors, errors[:5]
    for db in (DB_A, DB_B):
        assert mon.db_peak[db] <= 3, (
            f"{mon.db_peak[db]} server connections to {db} with max_db_connections=3: "
            f"{mon.worst(lambda s: db_total(s, db))}")
        # 10 clients in transactions on it: the limit itself was reached
        assert mon.db_peak[db] == 3, (db, dict(mon.db_peak))
    # the limit is per database, not one total over all of them
    assert mon.sum_peak > 3, (mon.sum_peak, dict(mon.db_peak))
    inst.assert_serving(db="ua")


def test_max_db_connections_per_database(pgcoro_factory, pg, limdbs):
    """A [databases] entry's max_db_connections=2 caps that database over its users; an
    entry without one is not capped."""
    wait_no_backends(pg)
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 10,
                                    "query_wait_timeout": 60},
                          databases=two_databases(pg, extra_a="max_db_connections=2"))
    with Monitor(pg, inst) as mon:
        errors = run_load(inst, COMBOS_2DB)
    assert not errors, errors[:5]
    assert mon.db_peak[DB_A] <= 2, (
        f"{mon.db_peak[DB_A]} server connections to {DB_A} with max_db_connections=2: "
        f"{mon.worst(lambda s: db_total(s, DB_A))}")
    assert mon.db_peak[DB_A] == 2, dict(mon.db_peak)
    assert mon.db_peak[DB_B] > 2, f"the uncapped database never had >2 servers: {mon.db_peak}"
    inst.assert_serving(db="ua")


# ---------------------------------------------------------------------------------------
# 2. max_user_connections


def test_max_user_connections_global(pgcoro_factory, pg, limdbs):
    """max_user_connections = 3: each user's pools on two databases together never have
    more than 3 servers."""
    wait_no_backends(pg)
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 10,
                                    "max_user_connections": 3, "query_wait_timeout": 60},
                          databases=two_databases(pg))
    with Monitor(pg, inst) as mon:
        errors = run_load(inst, COMBOS_2DB)
    assert not errors, errors[:5]
    for user in (APP_USER, MD5_USER):
        assert mon.user_peak[user] <= 3, (
            f"{mon.user_peak[user]} server connections of {user} with "
            f"max_user_connections=3: {mon.worst(lambda s: user_total(s, user))}")
        assert mon.user_peak[user] == 3, (user, dict(mon.user_peak))
    assert mon.sum_peak > 3, (mon.sum_peak, dict(mon.user_peak))
    inst.assert_serving(db="ub")


def test_max_user_connections_per_user(pgcoro_factory, pg, limdbs):
    """A [users] entry's max_user_connections=2 caps that user over both databases; the
    other user is not capped."""
    wait_no_backends(pg)
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 10,
                                    "query_wait_timeout": 60},
                          databases=two_databases(pg),
                          user_settings={MD5_USER: "max_user_connections=2"})
    with Monitor(pg, inst) as mon:
        errors = run_load(inst, COMBOS_2DB)
    assert not errors, errors[:5]
    assert mon.user_peak[MD5_USER] <= 2, (
        f"{mon.user_peak[MD5_USER]} server connections of {MD5_USER} with "
        f"max_user_connections=2: {mon.worst(lambda s: user_total(s, MD5_USER))}")
    assert mon.user_peak[MD5_USER] == 2, dict(mon.user_peak)
    assert mon.user_peak[APP_USER] > 2, f"the uncapped user never had >2 servers: " \
                                        f"{mon.user_peak}"
    inst.assert_serving(db="ub")


# ---------------------------------------------------------------------------------------
# 1./2. making room: an idle server of a sibling pool is closed for waiting clients


class Waiter:
    """Logs in (in a thread) and records the outcome."""

    def __init__(self, inst, alias, user):
        self.w = None
        self.error = None
        self.done = threading.Event()
        self.t = threading.Thread(target=self._run, args=(inst, alias, user), daemon=True)
        self.t.start()

    def _run(self, inst, alias, user):
        try:
            self.w = wire(inst, alias, user, timeout=60)
        except Exception as e:
            self.error = repr(e)
        finally:
            self.done.set()


def test_making_room_closes_only_a_server_under_the_full_limit(pgcoro_factory, pg, limdbs):
    """max_db_connections = 1: a client of ub/md5user makes room in database ub by closing
    the idle server of ub/app, not the idle server of ua/md5user (same user, created
    first), whose database is not full: closing it would free nothing."""
    wait_no_backends(pg)
    inst = pgcoro_factory(settings={"pool_mode": "transaction", "default_pool_size": 10,
                                    "max_db_connections": 1, "query_wait_timeout": 60},
                          databases=two_databases(pg))
    x = y = z = None
    try:
        x = wire(inst, "ua", MD5_USER)
        x_pid = one(x, "select pg_backend_pid()")[0]
        y = wire(inst, "ub", APP_USER)
        y_pid = one(y, "select pg_backend_pid()")[0]
        z = wire(inst, "ub", MD5_USER)
        assert tuple(one(z, "select current_database(), current_user")) == (DB_B, MD5_USER)
        log = inst.log_text()
        assert log.count("making room for pool") == 1, inst.log_tail(30)
        assert "making room for pool ub/md5user (max_db_connections)" in log
        assert one(x, "select pg_backend_pid()")[0] == x_pid, "ua's idle server was closed"
        wait_until(lambda: y_pid not in {r[0] for r in pg_pids(pg)},
                   f"ub/app's idle server (backend {y_pid}) was closed")
    finally:
        for w in (x, y, z):
            if w:
                w.close()


@pytest.mark.parametrize("kind", ["db", "user"])
def test_making_room(pgcoro_factory, pg, limdbs, kind):
    """At the limit (2), a pool whose clients wait gets a server by closing an idle one of
    a sibling pool: same database, other user (max_db_connections) or same user, other
    database (max_user_connections). Both when the sibling's server becomes idle while a
    client waits, and when a client arrives while the sibling holds an idle server."""
    wait_no_backends(pg)
    settings = {"pool_mode": "transaction", "default_pool_size": 10, "query_wait_timeout": 60}
    if kind == "db":
        dbs = {"mdb": conninfo(pg, DB_A, "max_db_connections=2")}
        holder, waiter = ("mdb", APP_USER), ("mdb", MD5_USER)
        user_settings = None

        def total(s):
            return db_total(s, DB_A)
    else:
        dbs = two_databases(pg)
        holder, waiter = ("ua", MD5_USER), ("ub", MD5_USER)
        user_settings = {MD5_USER: "max_user_connections=2"}

        def total(s):
            return user_total(s, MD5_USER)
    limit_name = "max_db_connections" if kind == "db" else "max_user_connections"
    inst = pgcoro_factory(settings=settings, databases=dbs, user_settings=user_settings)
    room_line = f"making room for pool {waiter[0]}/{waiter[1]} ({limit_name})"

    def served_by(w):
        return tuple(one(w, "select current_database(), current_user"))

    want_holder = (DB_A, holder[1])
    want_waiter = (DB_A if waiter[0] in ("mdb", "ua") else DB_B, waiter[1])
    clients = []
    waiters = []
    with Monitor(pg, inst) as mon:
        try:
            # the holder's pool takes both servers, in open transactions
            h1, h2 = wire(inst, *holder), wire(inst, *holder)
            clients += [h1, h2]
            pids = []
            for h in (h1, h2):
                assert wire_exec(h, "begin")[2] == "T"
                pids.append(one(h, "select pg_backend_pid()")[0])
            assert len(set(pids)) == 2, pids
            assert total(current_counts(pg)) == 2, current_counts(pg)

            # phase 1: a client of the other pool waits at the limit...
            wt = Waiter(inst, *waiter)
            waiters.append(wt)
            wait_until(lambda: f"pool {waiter[0]}/{waiter[1]} created" in inst.log_text(),
                       "the waiting client's pool exists")
            time.sleep(1.0)
            assert not wt.done.is_set(), (
                f"the client at the limit was not kept waiting: {wt.error}")
            assert total(current_counts(pg)) == 2, current_counts(pg)
            assert room_line not in inst.log_text(), "made room while no server was idle"
            # ...and once a holder's server is idle, it is closed for the waiting client
            assert wire_exec(h1, "commit")[2] == "I"
            assert wt.done.wait(30), "the waiting client was not served after a server " \
                                     "became idle in the sibling pool"
            assert wt.error is None, wt.error
            w1 = wt.w
            clients.append(w1)
            assert served_by(w1) == want_waiter
            assert room_line in inst.log_text()
            wait_until(lambda: pids[0] not in {r[0] for r in pg_pids(pg)},
                       f"the idle server (backend {pids[0]}) was closed")
            # the other holder, in its transaction, was not touched
            assert one(h2, "select pg_backend_pid()")[0] == pids[1]
            assert wire_exec(h2, "commit")[2] == "I"

            # phase 2: the holder's pool has an idle server; two clients of the other pool
            # need two servers at once: the idle one is closed for them
            assert wire_exec(w1, "begin")[2] == "T"
            w2 = wire(inst, *waiter)
            clients.append(w2)
            assert wire_exec(w2, "begin")[2] == "T"
            assert served_by(w1) == want_waiter and served_by(w2) == want_waiter
            assert inst.log_text().count(room_line) >= 2, inst.log_tail(30)

            wait_until(lambda: current_counts(pg).get(want_holder, 0) == 0,
                       f"the holder's idle server was closed: {current_counts(pg)}")
            assert current_counts(pg).get(want_waiter, 0) == 2, current_counts(pg)
            for w in (w1, w2):
                assert wire_exec(w, "commit")[2] == "I"
            for w in clients:
                w.terminate()
        finally:
            for wt in waiters:
                wt.t.join(timeout=70)
                if wt.w:
                    wt.w.close()
            for w in clients:
                w.close()
    assert max(total(s) for s in mon.samples) <= 2, (
        f"more than 2 servers with {limit_name}=2: {mon.worst(total)}")
    inst.assert_serving(db=waiter[0])


def pg_pids(pg):
    c = pg.super_connect()
    try:
        cur = c.cursor()
        cur.execute("select pid from pg_stat_activity where backend_type = 'client backend'")
        return cur.fetchall()
    finally:
        c.close()


# ---------------------------------------------------------------------------------------
# 3. server_connect_timeout


class StallListener:
    """Listens on 127.0.0.1 (a free port), accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)

    def closed_by_peer(self, conn):
        """True once the peer has closed CONN (its unread bytes drained)."""
        conn.setblocking(False)
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return True
        except BlockingIOError:
            return False
        except OSError:
            return True

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(timeout=10)
        self.sock.close()
        for c in self.conns:
            c.close()


def test_server_connect_timeout(pgcoro_factory, pg):
    with StallListener() as stall:
        inst = pgcoro_factory(
            settings={"server_connect_timeout": 1},
            databases={"stall": f"host=127.0.0.1 port={stall.port} dbname=postgres"})
        normal = Wire.to(inst, timeout=20)
        try:
            normal.login(APP_USER, APP_PASS, "postgres")
            assert one(normal, "select 1") == ["1"]
            result = {}
            done = threading.Event()

            def stalled_client():
                try:
                    with Wire.to(inst, timeout=30) as w:
                        w.login(APP_USER, APP_PASS, "stall")
                        result["rows"] = w.query("select 1")
                except Exception as e:
                    result["error"] = e
                finally:
                    done.set()

            t = threading.Thread(target=stalled_client, daemon=True)
            t.start()
            wait_until(lambda: stall.conns, "pgcoro connected to the stalled server", 15)
            # pgcoro serves the normal database while that connection attempt hangs
            served_meanwhile = 0
            deadline = time.monotonic() + 25
            while not done.is_set() and time.monotonic() < deadline:
                assert one(normal, "select 2") == ["2"]
                if not done.is_set():
                    served_meanwhile += 1
                time.sleep(0.01)
            assert done.wait(20), "no answer to the stalled client within 20 s"
            t.join(timeout=10)
            assert served_meanwhile >= 1, (
                "no query on the normal database completed while the stalled client waited")
            err = result.get("error")
            assert isinstance(err, PgError), result
            assert err.sqlstate == "08006", err.fields
            assert "server_connect_timeout" in err.fields.get("M", ""), err.fields
            # pgcoro gave up its connection to the stalled server
            wait_until(lambda: all(stall.closed_by_peer(c) for c in list(stall.conns)),
                       "pgcoro closed its connection to the stalled server", 10)
            assert one(normal, "select 3") == ["3"]
            normal.terminate()
        finally:
            normal.close()
        assert re.search(r"\(stall/app\): connection failed: server_connect_timeout", inst.log_text()), \
            inst.log_tail(30)
        inst.assert_serving()


# ---------------------------------------------------------------------------------------
# 4. back-off


def login_error(inst, db, timeout=20.0):
    """Logs in to DB and runs a query; returns the PgError (None if served)."""
    try:
        with Wire.to(inst, timeout=timeout) as w:
            w.login(APP_USER, APP_PASS, db)
            w.query("select 1")
            w.terminate()
    except PgError as e:
        return e
    return None


def test_connect_refused_clients_answered(pgcoro_factory, pg):
    """A closed port: three clients in a row each get 08006 (the back-off does not leave
    them hanging), and every attempt is logged."""
    inst = pgcoro_factory()
    for i in range(3):
        err = login_error(inst, "nowhere")   # a hang ends in socket.timeout: the test fails
        assert err is not None, f"client {i} served by a closed port?"
        assert err.sqlstate == "08006", err.fields
        assert "Connection refused" in err.fields["M"], err.fields
    fails = re.findall(r"\(nowhere/app\): connection failed: .*Connection refused", inst.log_text())
    assert len(fails) >= 3, inst.log_tail(30)
    inst.assert_serving()


def test_backoff_recovers_when_server_starts(pgcoro_factory, pg_cluster):
    """A PostgreSQL that is down, then started: after failing, the same pgcoro serves the
    database within 20 s (the back-off retries; no restart, no reload)."""
    other = pg_cluster()
    other.pg_ctl_stop("fast")
    inst = pgcoro_factory(settings={"server_connect_timeout": 5},
                          databases={"later": f"host=127.0.0.1 port={other.port} "
                                              "dbname=postgres"})
    pid = inst.pid
    err = login_error(inst, "later")
    assert err is not None and err.sqlstate == "08006", err and err.fields
    err = login_error(inst, "later")
    assert err is not None and err.sqlstate == "08006", err and err.fields
    other.pg_ctl_start()

    def served():
        try:
            with Wire.to(inst, timeout=20) as w:
                w.login(APP_USER, APP_PASS, "later")
                rows = w.query("select current_setting('port')")
                w.terminate()
                return rows
        except PgError as e:
            assert e.sqlstate == "08006", e.fields
            return None
    rows = wait_until(served, "a client served after PostgreSQL started", 20, 0.1)
    assert rows == [[str(other.port)]], rows
    assert inst.alive() and inst.pid == pid
    assert len(re.findall(r"\(later/app\): connection failed: ", inst.log_text())) >= 2
    inst.assert_serving(db="later")
    inst.assert_serving()


def test_out_of_file_descriptors_pauses_accept(pgcoro_factory, pg):
    """With too few file descriptors, accept fails with EMFILE: pgcoro pauses accepting
    (connections wait in the backlog) and logs one warning for the episode instead of one
    per attempt, keeps serving the clients it has, and accepts again once descriptors
    are free."""
    inst = pgcoro_factory(settings={"max_client_conn": 1000},
                          wrapper=("prlimit", "--nofile=48:48", "--"))
    with Wire.to(inst) as first:
        first.login()
        socks = []
        try:
            for _ in range(80):
                socks.append(socket.create_connection((inst.host, inst.port), timeout=20))
            wait_until(lambda: "accept failed: Too many open files" in inst.log_text(),
                       "the EMFILE warning")
            # several pauses pass while the descriptors stay short: still one warning
            time.sleep(3)
            assert first.query("select 'still served'") == [["still served"]]
            assert inst.log_text().count("accept failed") == 1, inst.log_tail(20)
        finally:
            for s in socks:
                s.close()
        wait_until(lambda: "accepting connections again" in inst.log_text(),
                   "accepting again")
        with Wire.to(inst) as w:
            w.login()
            assert w.query("select 1") == [["1"]]
        # freed descriptors may be taken by the backlog at once, starting another episode:
        # every warning is answered by an "again" line, never two warnings in a row
        events = re.findall(r"accept failed|accepting connections again after [\d.]+ s "
                            r"\((\d+) pauses\)", inst.log_text())
        kinds = ["again" if e else "failed" for e in events]
        assert kinds[0] == "failed" and all(a != b for a, b in zip(kinds, kinds[1:])), kinds
        assert int(events[1]) >= 2, events  # the first episode paused more than once
        first.terminate()


def nofile_soft(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no Max open files line")


def test_open_files_limit_raised(pgcoro_factory, pg):
    """As PgBouncer: the soft open-files limit is raised towards max_client_conn plus the
    pools' servers (up to the hard limit); below what is needed, a warning says so."""
    inst = pgcoro_factory(settings={"max_client_conn": 1000},
                          wrapper=("prlimit", "--nofile=256:8192", "--"))
    assert "open files limit raised from 256 to" in inst.log_text(), inst.log_tail(20)
    assert nofile_soft(inst.pid) > 2024
    low = pgcoro_factory(settings={"max_client_conn": 1000},
                         wrapper=("prlimit", "--nofile=256:512", "--"))
    log = low.log_text()
    assert "open files limit raised from 256 to 512" in log, log
    assert "open files limit 512 (hard 512) is below what max_client_conn 1000" in log, log
    assert nofile_soft(low.pid) == 512
    low.assert_serving()
