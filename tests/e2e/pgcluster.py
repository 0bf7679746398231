"""A throw-away PostgreSQL 15 cluster for tally's tests and benchmark.

The cluster is made by the test setup itself, never assumed: `initdb` in a fresh temporary
directory, run as an unprivileged user (`postgres` when we are root, since PostgreSQL refuses to
run as root; ourselves otherwise), listening on 127.0.0.1 on a free port with its socket in the
same directory, `fsync` and `synchronous_commit` left on (the tests check durability-sensitive
behaviour, and the benchmark must measure the real cost of a commit). It is stopped and removed
by stop(), which the owner calls in a finally/teardown; atexit is the backstop, and the
postmaster gets SIGINT (fast shutdown) if the process that started it dies (PR_SET_PDEATHSIG),
so an interrupted run leaves no server behind. A directory left by a run that was SIGKILLed is
swept by the next start (its owner pid is dead).

Databases: create_database() makes a fresh one (CREATE DATABASE, owned by the unprivileged
application role `tally`, which is what tally connects as) and returns its URL, so every server
a test starts gets its own data; drop_database() removes one. tally's own migrations create the
schema: nothing here knows tally's tables.

Usage:
    with PgCluster() as pg:            # or pg = PgCluster(); pg.start(); ...; pg.stop()
        url = pg.create_database()     # postgres://tally@127.0.0.1:PORT/t_1_ab12cd
        con = pg.connect(url)          # psycopg2, autocommit off

Run as a script to check it by hand: `python3 tests/e2e/pgcluster.py` starts a cluster, creates
a database, prints timings and removes everything.
"""

import atexit
import ctypes
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

PG_BIN = Path(os.environ.get("TALLY_PG_BIN", "/usr/lib/postgresql/15/bin"))
APP_ROLE = "tally"  # what tally connects as: owns its database, not a superuser
ADMIN_ROLE = "postgres"  # bootstrap superuser, used only by this module
DIR_PREFIX = "tally-pg-"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0

# Server settings for tests and the benchmark. Durability stays as in production (fsync,
# synchronous_commit and full_page_writes on: the defaults). max_connections: one tally node
# opens a writer, a maintenance connection, a listener and a reader per HTTP/hash thread that
# reads; the suite runs a few nodes at a time, the two-node tests and the benchmark more.
DEFAULT_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "400",
    "shared_buffers": "128MB",
    "fsync": "on",
    "synchronous_commit": "on",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",  # tests provoke constraint errors on purpose
    "log_line_prefix": "%m [%p] %d ",
    "timezone": "UTC",
    "max_locks_per_transaction": "128",
}

_PR_SET_PDEATHSIG = 1
_db_counter = itertools.count(1)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(tmp_root=None):
    """Remove cluster directories whose owning process is gone (a run that was SIGKILLed)."""
    root = Path(tmp_root or tempfile.gettempdir())
    for d in root.glob(DIR_PREFIX + "*"):
        try:
            owner = int((d / "owner.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        if _pid_alive(owner):
            continue
        pm = d / "data" / "postmaster.pid"
        try:
            pm_pid = int(pm.read_text().splitlines()[0])
            if _pid_alive(pm_pid):
                os.kill(pm_pid, signal.SIGQUIT)  # an orphaned postmaster of that dead run
        except (OSError, ValueError, IndexError):
            pass
        shutil.rmtree(d, ignore_errors=True)


class PgCluster:
    """One PostgreSQL cluster in a temporary directory. See the module docstring."""

    def __init__(self, settings=None, tmp_root=None):
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.tmp_root = tmp_root
        self.dir = None
        self.port = None
        self.proc = None
        self._uid = self._gid = None
        self._atexit = None

    # ---- lifecycle ----

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def data_dir(self):
        return self.dir / "data"

    @property
    def log_path(self):
        return self.dir / "postgres.log"

    def _run_as(self):
        """(uid, gid) to run PostgreSQL as: postgres when we are root, else ourselves."""
        if os.geteuid() != 0:
            return None, None
        pw = pwd.getpwnam(os.environ.get("TALLY_PG_USER", "postgres"))
        return pw.pw_uid, pw.pw_gid

    def _preexec(self):
        uid, gid = self._uid, self._gid

        def fn():
            # A shell may have started us with SIGINT/SIGQUIT ignored (a background job);
            # the postmaster must see the signals it is stopped with.
            for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            if uid is not None:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            # After the credential change (which would clear it): if the process that started
            # the cluster dies, the postmaster gets SIGINT, a fast shutdown.
            try:
                ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)
            except (OSError, AttributeError):
                pass

        return fn

    def _env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "TZ": "UTC"})
        return env

    def start(self):
        """initdb, start the postmaster and wait until it accepts connections. Returns self."""
        assert self.proc is None, "already started"
        initdb = PG_BIN / "initdb"
        if not os.access(initdb, os.X_OK):
            raise RuntimeError(f"{initdb} not found: install postgresql-15 (scripts/deps.sh)")
        sweep_stale(self.tmp_root)
        self._uid, self._gid = self._run_as()
        self.dir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=self.tmp_root))
        (self.dir / "owner.pid").write_text(f"{os.getpid()}\n")
        if self._uid is not None:
            os.chown(self.dir, self._uid, self._gid)
        self._atexit = self.stop
        atexit.register(self._atexit)
        try:
            self._initdb()
            self._launch()
            self._bootstrap()
        except BaseException:
            self.stop()
            raise
        return self

    def _initdb(self):
        proc = subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", ADMIN_ROLE,
             "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"],
            env=self._env(), preexec_fn=self._preexec(), capture_output=True, text=True,
            cwd=self.dir, timeout=120,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"initdb failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")

    def _launch(self):
        for attempt in range(5):  # a port picked free may be taken before we bind it
            self.port = _free_port()
            args = [str(PG_BIN / "postgres"), "-D", str(self.data_dir),
                    "-c", f"port={self.port}", "-c", f"unix_socket_directories={self.dir}"]
            for k, v in self.settings.items():
                args += ["-c", f"{k}={v}"]
            log = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen(
                    args, env=self._env(), preexec_fn=self._preexec(), stdin=subprocess.DEVNULL,
                    stdout=log, stderr=log, cwd=self.dir, start_new_session=True,
                )
            finally:
                log.close()
            if self._wait_ready():
                return
            self._halt()
            if "could not bind" not in self.log() and "in use" not in self.log():
                break
        raise RuntimeError(f"postgres did not start (port {self.port}):\n{self.log()[-4000:]}")

    def _wait_ready(self):
        import psycopg2

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                psycopg2.connect(self.dsn("postgres", ADMIN_ROLE), connect_timeout=2).close()
                return True
            except psycopg2.OperationalError:
                time.sleep(0.05)
        return False

    def _bootstrap(self):
        self.admin_exec(f"CREATE ROLE {APP_ROLE} LOGIN")

    def _halt(self):
        """Fast shutdown (SIGINT), escalating to immediate (SIGQUIT) and SIGKILL."""
        if self.proc is None:
            return
        for sig, wait_s in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
            if self.proc.poll() is not None:
                break
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
        self.proc = None

    def server_stop(self, mode="fast"):
        """Stop the postmaster as `pg_ctl stop -m MODE` would (fast: SIGINT, immediate:
        SIGQUIT, a crash without a checkpoint), keeping the data directory and the port, so
        that server_start() brings the same cluster back: a database restart under a test."""
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        assert self.running, "cluster not running"
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._halt()
        self.proc = None

    def server_start(self):
        """Start the postmaster stopped by server_stop() again, on the same port."""
        assert self.proc is None and self.dir is not None, "server_stop() first"
        args = [str(PG_BIN / "postgres"), "-D", str(self.data_dir),
                "-c", f"port={self.port}", "-c", f"unix_socket_directories={self.dir}"]
        for k, v in self.settings.items():
            args += ["-c", f"{k}={v}"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, env=self._env(), preexec_fn=self._preexec(), stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, cwd=self.dir, start_new_session=True,
            )
        if not self._wait_ready():
            raise RuntimeError(f"postgres did not restart (port {self.port}):\n{self.log()[-4000:]}")

    def stop(self):
        """Stop the server and remove the directory. Safe to call twice."""
        self._halt()
        if self._atexit is not None:
            atexit.unregister(self._atexit)
            self._atexit = None
        if self.dir is not None and self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AttributeError, TypeError):
            return ""

    # ---- connections and databases ----

    def url(self, dbname, user=APP_ROLE):
        """The URL tally is given (`--db`)."""
        return f"postgres://{user}@127.0.0.1:{self.port}/{dbname}"

    def dsn(self, dbname, user=APP_ROLE):
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}"

    def admin_exec(self, sql, params=None, dbname="postgres"):
        import psycopg2

        con = psycopg2.connect(self.dsn(dbname, ADMIN_ROLE))
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else None
        finally:
            con.close()

    def create_database(self, prefix="t"):
        """A new, empty database owned by the application role; returns its URL."""
        assert self.running, "cluster not running"
        name = f"{prefix}_{next(_db_counter)}_{uuid.uuid4().hex[:6]}"
        self.admin_exec(f'CREATE DATABASE "{name}" OWNER {APP_ROLE}')
        return self.url(name)

    def drop_database(self, url_or_name):
        """Drop a database made by create_database, disconnecting whoever is still on it."""
        if not self.running:
            return
        name = str(url_or_name).rsplit("/", 1)[-1]
        self.admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def connect(self, url):
        """A psycopg2 connection to a database of this cluster, as the application role."""
        import psycopg2

        return psycopg2.connect(url_to_dsn(url))


def url_to_dsn(url):
    """psycopg2 (libpq) takes postgres:// URLs as they are."""
    return str(url)


def is_pg_url(db):
    return str(db).startswith(("postgres://", "postgresql://"))


if __name__ == "__main__":
    t0 = time.monotonic()
    with PgCluster() as pg:
        t1 = time.monotonic()
        print(f"cluster up in {t1 - t0:.2f}s on port {pg.port} in {pg.dir}")
        urls = []
        for _ in range(5):
            t = time.monotonic()
            urls.append(pg.create_database())
            print(f"CREATE DATABASE {time.monotonic() - t:.3f}s -> {urls[-1]}")
        con = pg.connect(urls[0])
        with con.cursor() as cur:
            cur.execute("CREATE TABLE x (a int)")
            cur.execute("INSERT INTO x VALUES (1)")
        con.commit()
        con.close()
        t = time.monotonic()
        pg.drop_database(urls[0])
        print(f"DROP DATABASE {time.monotonic() - t:.3f}s")
        d = pg.dir
    print(f"stopped; directory removed: {not d.exists()}")
