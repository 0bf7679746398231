"""Shared machinery for tally's end-to-end tests.

Every test talks to the real binary ($TALLY_BIN, the ASan+UBSan build under `make e2e`) over
HTTP. A server is started on a port the kernel picks (`--port 0`, read back from the
"listening" log line, so suites run side by side never race for a port) with a fresh database
and a scrubbed environment, and it is ready when GET /healthz answers. It is stopped with
SIGTERM; the stop fails the test unless the process exits 0 and its stderr holds no sanitizer
report.

Engines: TALLY_TEST_ENGINE=sqlite (the default) gives each server a SQLite file in its
temporary directory; TALLY_TEST_ENGINE=postgres gives each server a fresh database (CREATE
DATABASE) in one PostgreSQL 15 cluster that the session starts itself (pgcluster.py: initdb in
a temporary directory, an unprivileged user, a free port on 127.0.0.1) and removes at the end.
`make e2e-pg` runs the suite that way. Tests that are about one engine say so with
`@sqlite_only(reason)` / `@postgres_only(reason)`; database access in tests goes through
`Tally.sql()` / `db_connect()`, which take SQLite's `?` placeholders on both engines.

Fixtures:
  tally          a server shared by one test module (sign-up costs ~100 ms of Argon2id, so
                 modules that need no fresh database share one); `tally = module_server(env)`
                 in a module gives its shared server extra environment
  start_tally    a factory for servers owned by one test: start_tally(env={...}, db=...,
                 start=False, args=[...]); each is stopped and checked when the test ends;
                 args are extra `tally serve` arguments, e.g. ["--test-clock-offset", "86400"]
  tally_bin      the path of the binary

Helpers (importable: `from conftest import ...`):
  Tally          one server: url, get/post/request, signup/login, apikey, cli, sql, connect,
                 log/log_events/wait_for_log, spawn/wait_ready/start/stop/restart;
                 db_path is its --db: a SQLite file (Path) or a postgres:// URL (str)
  ENGINE, PG     the engine under test ("sqlite" or "postgres"); PG is ENGINE == "postgres"
  fresh_db       a new, empty database location for the engine under test (for CLI tests)
  db_connect     a DB-API connection to a --db location; `?` placeholders on both engines
  json_field     SQL reading a text field of a JSON column (json_extract / ->>)
  IntegrityError the exception(s) a constraint violation raises, on either engine
  sqlite_only, postgres_only   skip markers with a reason
  pg_cluster     the session's PostgreSQL cluster (started on first use; PG runs only)
  run_tally      run a CLI command of the binary and return the CompletedProcess
  wait_until     poll a predicate with a deadline (never sleep to synchronise)
  unique_email   an address no other test uses
  assert_error   assert the {"error": {code, message, requestId}} shape, status and field
  make_jwt       hand-made HS256/HS384/HS512/none tokens; jwt_claims decodes one
"""

import base64
import hashlib
import hmac
import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from pgcluster import PgCluster, is_pg_url

ROOT = Path(__file__).resolve().parents[2]
TALLY_BIN = os.environ.get("TALLY_BIN") or str(ROOT / "build" / "tally-asan")

ENGINE = os.environ.get("TALLY_TEST_ENGINE", "").strip().lower() or "sqlite"
ENGINE = {"pg": "postgres", "postgresql": "postgres"}.get(ENGINE, ENGINE)
if ENGINE not in ("sqlite", "postgres"):
    raise pytest.UsageError(f"TALLY_TEST_ENGINE={ENGINE!r}: expected sqlite or postgres")
PG = ENGINE == "postgres"

# Environment variables tally reads: scrubbed from the inherited environment so that a
# developer's shell cannot change what a test sees. Tests pass what they need explicitly.
CONFIG_ENV_PREFIXES = ("TALLY_", "REFERRAL_", "ENABLE_", "DATABASE_", "TWILIO_", "PG")
CONFIG_ENV_NAMES = ("PORT",)

SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}

# Any of these in a server's stderr fails the test that owned the server.
SANITIZER_MARKERS = (
    "AddressSanitizer",
    "LeakSanitizer",
    "UndefinedBehaviorSanitizer",
    "ThreadSanitizer",
    "runtime error",
)

START_TIMEOUT_S = 20.0  # ASan start-up plus migrations on a fresh database
STOP_TIMEOUT_S = 30.0  # in-flight requests may take up to 10 s, then leak checking
HTTP_TIMEOUT_S = 15.0
PASSWORD = "correct horse battery"

_email_counter = itertools.count(1)


def unique_email(tag="user"):
    """An address unique in this run (the local part keeps tag for readable logs)."""
    return f"{tag}.{next(_email_counter)}.{uuid.uuid4().hex[:8]}@example.com"


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Call predicate until it returns a truthy value, and return that value; fail the test
    when timeout seconds pass first. Exceptions from predicate count as "not yet"."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - a poll may race with start-up
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


def tally_env(extra=None):
    """The environment for a tally process: inherited minus tally's configuration, plus the
    sanitizer options, plus extra (a value of None removes that variable)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(CONFIG_ENV_PREFIXES) and k not in CONFIG_ENV_NAMES
    }
    env.update(SANITIZER_ENV)
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def sanitizer_reports(text):
    """The lines of text that carry a sanitizer report (empty when clean)."""
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKERS)]


def run_tally(*args, env=None, timeout=30, check_sanitizers=True):
    """Run `$TALLY_BIN args...` to completion; returns the CompletedProcess (text mode).
    Fails the test if the command's stderr holds a sanitizer report."""
    proc = subprocess.run(
        [TALLY_BIN, *map(str, args)],
        env=tally_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check_sanitizers:
        reports = sanitizer_reports(proc.stderr)
        assert not reports, f"sanitizer report from tally {' '.join(map(str, args))}:\n{proc.stderr}"
    return proc


class TallyExited(Exception):
    """The server process ended while we waited for it to become ready."""


class Tally:
    """One tally server process with its own database directory.

    Construct, then start(); stop() sends SIGTERM and asserts a clean exit. The database and
    the logs stay in `workdir` after stop(), so a test may start() again on the same data.
    """

    def __init__(self, workdir, env=None, db=None, args=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.owns_db = False  # this object created the database (PostgreSQL: drops it)
        if db:
            self.db_path = str(db) if is_pg_url(db) else Path(db)
        elif PG:
            self.db_path = new_pg_database()
            self.owns_db = True
        else:
            self.db_path = self.workdir / "tally.db"
        self.env = dict(env or {})
        self.args = [str(a) for a in (args or [])]  # extra `tally serve` arguments
        self.proc = None
        self.port = None
        self.returncode = None
        self.session = requests.Session()
        self._runs = 0
        self.stderr_path = None
        self.stdout_path = None

    # ---- lifecycle ----

    @property
    def url(self):
        assert self.port, "server not started"
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def spawn(self, port=0):
        """Start the process without waiting for readiness; returns the Popen."""
        assert self.proc is None, "already running"
        self._runs += 1
        self.stderr_path = self.workdir / f"stderr.{self._runs}.log"
        self.stdout_path = self.workdir / f"stdout.{self._runs}.log"
        # O_APPEND: every write lands at the end, whoever else appends (tests may annotate).
        with open(self.stderr_path, "ab") as err, open(self.stdout_path, "ab") as out:
            self.proc = subprocess.Popen(
                [TALLY_BIN, "serve", "--port", str(port), "--db", str(self.db_path), *self.args],
                env=tally_env(self.env),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        self.returncode = None
        return self.proc

    def start(self, port=0, timeout=START_TIMEOUT_S):
        """Start the server and wait until GET /healthz answers 200. Returns self."""
        self.spawn(port)
        return self.wait_ready(timeout)

    def wait_ready(self, timeout=START_TIMEOUT_S):
        """After spawn(): wait for the 'listening' log line (it names the port), then until
        GET /healthz answers 200. Fails the test if the process exits first. Returns self."""

        def listening():
            if self.proc.poll() is not None:
                raise TallyExited(self.proc.returncode)
            for ev in self.log_events():
                if ev.get("msg") == "listening" and ev.get("port"):
                    return ev["port"]
            return None

        deadline = time.monotonic() + timeout
        while True:
            try:
                port_seen = listening()
            except TallyExited as exc:
                self.returncode = self.proc.returncode
                self.proc = None
                pytest.fail(f"tally exited with {exc} during start-up:\n{self.log()}")
            if port_seen:
                break
            if time.monotonic() >= deadline:
                self.kill()
                pytest.fail(f"tally did not log 'listening' within {timeout}s:\n{self.log()}")
            time.sleep(0.01)
        self.port = int(port_seen)

        def healthy():
            if self.proc.poll() is not None:
                pytest.fail(f"tally exited with {self.proc.returncode}:\n{self.log()}")
            r = self.session.get(self.url + "/healthz", timeout=2)
            return r.status_code == 200

        wait_until(healthy, timeout=max(1.0, deadline - time.monotonic()), what="GET /healthz")
        return self

    def stop(self, timeout=STOP_TIMEOUT_S, expect_code=0):
        """SIGTERM, wait, and assert the exit code and a sanitizer-clean stderr.
        Returns the exit code. Safe to call on a stopped server."""
        if self.proc is None:
            return self.returncode
        self.session.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"tally did not exit within {timeout}s of SIGTERM:\n{self.log()}")
        self.proc = None
        self.session = requests.Session()
        self.check_log()
        assert self.returncode == expect_code, (
            f"tally exited with {self.returncode}, expected {expect_code}:\n{self.log()}"
        )
        return self.returncode

    def restart(self, **kwargs):
        """Stop cleanly and start again on the same database (on a new port)."""
        self.stop()
        return self.start(**kwargs)

    def kill(self):
        """SIGKILL without checks: only for cleaning up after a failure."""
        if self.proc is not None:
            self.proc.kill()
            self.returncode = self.proc.wait()
            self.proc = None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # ---- logs ----

    def log(self, run=None):
        """Text of the server's stderr (its JSON log lines, and any sanitizer report) for the
        current or last run, or for run number `run`."""
        path = self.stderr_path if run is None else self.workdir / f"stderr.{run}.log"
        if not path or not Path(path).exists():
            return ""
        return Path(path).read_text(errors="replace")

    def log_events(self):
        """The JSON log lines of the current or last run, parsed; other lines are skipped."""
        out = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def wait_for_log(self, predicate, timeout=10.0, what="a log line"):
        """Poll the log until an event satisfies predicate; return that event."""

        def found():
            for ev in self.log_events():
                if predicate(ev):
                    return ev
            return None

        return wait_until(found, timeout=timeout, what=what)

    def check_log(self):
        """Fail if any run of this server reported a sanitizer error."""
        for run in range(1, self._runs + 1):
            text = self.log(run)
            reports = sanitizer_reports(text)
            assert not reports, f"sanitizer report in tally's stderr (run {run}):\n{text}"

    # ---- HTTP ----

    def request(self, method, path, token=None, headers=None, **kwargs):
        """Send a request; token becomes `Authorization: Bearer <token>`. Redirects are never
        followed. Returns the requests.Response."""
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        kwargs.setdefault("timeout", HTTP_TIMEOUT_S)
        kwargs.setdefault("allow_redirects", False)
        return self.session.request(method, self.url + path, headers=h, **kwargs)

    def get(self, path, token=None, **kwargs):
        return self.request("GET", path, token=token, **kwargs)

    def post(self, path, json=None, token=None, **kwargs):
        return self.request("POST", path, token=token, json=json, **kwargs)

    def signup(self, name="Test User", email=None, password=PASSWORD, code=None, expect=201):
        """POST /api/auth/signup; asserts the status (expect=None skips) and returns the JSON
        body. Each call costs one Argon2id hash."""
        body = {"name": name, "email": email or unique_email(), "password": password}
        if code is not None:
            body["referralCode"] = code
        r = self.post("/api/auth/signup", json=body)
        if expect is not None:
            assert r.status_code == expect, r.text
        return r.json()

    def login(self, email, password=PASSWORD, expect=200):
        """POST /api/auth/login; asserts the status (expect=None skips), returns the JSON."""
        r = self.post("/api/auth/login", json={"email": email, "password": password})
        if expect is not None:
            assert r.status_code == expect, r.text
        return r.json()

    # ---- CLI and database, on this server's database ----

    def cli(self, *args, env=None, check=True):
        """Run `$TALLY_BIN args... --db <this db>`; with check, assert exit 0."""
        proc = run_tally(*args, "--db", self.db_path, env={**self.env, **(env or {})})
        if check:
            assert proc.returncode == 0, f"tally {args}: {proc.returncode}\n{proc.stderr}"
        return proc

    def apikey(self, scopes="admin", name="x"):
        """Create an API key with the CLI; returns the key (last line of its stdout)."""
        if not isinstance(scopes, str):
            scopes = ",".join(scopes)
        proc = self.cli("apikey", "create", "--name", name, "--scopes", scopes)
        return proc.stdout.strip().splitlines()[-1].strip()

    def sql(self, query, params=()):
        """Run one statement on the database (while the server runs: SQLite's WAL mode and
        PostgreSQL both allow it) and commit; returns all rows (a list of tuples, [] for a
        statement without results). `?` placeholders on both engines. For test set-up the API
        cannot do, such as ageing a code."""
        con = db_connect(self.db_path)
        try:
            cur = con.execute(query, params)
            rows = cur.fetchall() if cur.description else []
            con.commit()
            return rows
        finally:
            con.close()

    def connect(self):
        """A DB-API connection to this server's database (db_connect); the caller closes it."""
        return db_connect(self.db_path)

    def release_db(self):
        """PostgreSQL: schedule the drop of the database this object created (after its last
        stop). The drop happens when the next database is made, so that fixtures torn down
        later (moneykit's verify_after_each runs `tally verify` after the servers stopped) still
        find it. A no-op on SQLite, whose file goes with the temporary directory."""
        if self.owns_db and PG:
            _pending_drops.append(self.db_path)
            self.owns_db = False


# ---- engines ----

_pg = None
_pending_drops = []  # databases of finished tests, dropped before the next one is made


def new_pg_database():
    """A fresh database in the session's cluster; first drops those of finished tests, so
    the cluster holds a few databases at a time rather than hundreds."""
    cluster = pg_cluster()
    while _pending_drops:
        cluster.drop_database(_pending_drops.pop())
    return cluster.create_database()


def pg_cluster():
    """The session's PostgreSQL cluster, started on first use (PostgreSQL runs only) and
    stopped by pytest_unconfigure (atexit and the postmaster's parent-death signal otherwise)."""
    global _pg
    assert PG, "pg_cluster() is for TALLY_TEST_ENGINE=postgres"
    if _pg is None:
        _pg = PgCluster().start()
    return _pg


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only(reason): the test is about SQLite only")
    config.addinivalue_line("markers", "postgres_only(reason): the test needs PostgreSQL")
    if PG and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        # SIGTERM (a CI timeout, `kill`) becomes an interrupt, so that teardown still stops
        # the servers and removes the cluster.
        def _interrupt(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, _interrupt)


def pytest_unconfigure(config):
    global _pg
    if _pg is not None:
        _pg.stop()
        _pg = None


def pytest_report_header(config):
    return f"tally engine: {ENGINE} (TALLY_TEST_ENGINE), binary: {TALLY_BIN}"


def pytest_collection_modifyitems(config, items):
    for item in items:
        m = item.get_closest_marker("sqlite_only")
        if m and PG:
            item.add_marker(pytest.mark.skip(reason="SQLite only: " + (m.args[0] if m.args else "")))
        m = item.get_closest_marker("postgres_only")
        if m and not PG:
            item.add_marker(pytest.mark.skip(reason="PostgreSQL only: " + (m.args[0] if m.args else "")))


def sqlite_only(reason):
    """Decorator: run this test on SQLite only, saying why it does not apply to PostgreSQL."""
    return pytest.mark.sqlite_only(reason)


def postgres_only(reason):
    return pytest.mark.postgres_only(reason)


def json_field(column, key):
    """SQL for a top-level text field of a JSON text column, on the engine under test."""
    assert re.fullmatch(r"[A-Za-z_]\w*", column) and re.fullmatch(r"[A-Za-z_]\w*", key)
    if PG:
        return f"(({column})::jsonb ->> '{key}')"
    return f"json_extract({column}, '$.{key}')"


def fresh_db(tmp_path, name="tally.db"):
    """A new, empty database location for the engine under test: a file path in tmp_path on
    SQLite, a new database's URL on PostgreSQL (dropped with the cluster)."""
    if PG:
        return new_pg_database()
    return Path(tmp_path) / name


try:
    import psycopg2 as _psycopg2
except ImportError:  # only needed with TALLY_TEST_ENGINE=postgres
    _psycopg2 = None

IntegrityError = (sqlite3.IntegrityError,) + ((_psycopg2.IntegrityError,) if _psycopg2 else ())


def _pg_placeholders(query):
    """SQLite's `?` placeholders as psycopg2's `%s` (and a literal % as %%), outside quotes."""
    out, quote = [], None
    for ch in query:
        if quote:
            if ch == quote:
                quote = None
            out.append("%%" if ch == "%" else ch)
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


class PgConnection:
    """A psycopg2 connection that speaks like sqlite3's: execute()/executemany() return a
    cursor, placeholders are `?`. Booleans come back as True/False (== 1/0 in Python) and
    SUM() of BIGINT as Decimal (== the int)."""

    def __init__(self, url):
        assert _psycopg2 is not None, "python3-psycopg2 is not installed (scripts/deps.sh)"
        self.raw = _psycopg2.connect(str(url), connect_timeout=15)

    def execute(self, query, params=()):
        cur = self.raw.cursor()
        if params:
            cur.execute(_pg_placeholders(query), tuple(params))
        else:
            cur.execute(query)
        return cur

    def executemany(self, query, seq):
        cur = self.raw.cursor()
        cur.executemany(_pg_placeholders(query), [tuple(p) for p in seq])
        return cur

    def commit(self):
        self.raw.commit()

    def rollback(self):
        self.raw.rollback()

    def close(self):
        self.raw.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):  # like sqlite3: commit or roll back, stay open
        if exc_type is None:
            self.raw.commit()
        else:
            self.raw.rollback()
        return False


def db_connect(db, timeout=15):
    """A DB-API connection to a database location (a SQLite path or a postgres:// URL):
    sqlite3's own, or a PgConnection that accepts the same `?` SQL."""
    if is_pg_url(db):
        return PgConnection(db)
    return sqlite3.connect(db, timeout=timeout)


@pytest.fixture(scope="session")
def tally_bin():
    assert os.access(TALLY_BIN, os.X_OK), f"{TALLY_BIN} is not built (make asan)"
    return TALLY_BIN


@pytest.fixture(scope="module")
def tally(tally_bin, tmp_path_factory):
    """A server shared by the tests of one module, on a fresh database. A module whose shared
    server needs configuration declares `tally = module_server({...})` instead."""
    yield from _module_server(tmp_path_factory, {})


def _module_server(tmp_path_factory, env):
    t = Tally(tmp_path_factory.mktemp("tally"), env=env)
    try:
        t.start()
        yield t
    finally:
        try:
            if t.running:
                t.stop()
            else:
                t.check_log()
        finally:
            t.kill()
            t.release_db()


@pytest.fixture
def start_tally(tally_bin, tmp_path):
    """Factory: start_tally(env=None, start=True, db=None, args=None) -> Tally, owned by the
    current test; db shares another server's database file; args are extra `tally serve`
    arguments. Every server it made is stopped (SIGTERM, exit 0, no sanitizer report) when the
    test ends."""
    made = []

    def factory(env=None, start=True, workdir=None, db=None, args=None):
        d = Path(workdir) if workdir else Path(tempfile.mkdtemp(dir=tmp_path, prefix="tally-"))
        t = Tally(d, env=env, db=db, args=args)
        made.append(t)
        if start:
            t.start()
        return t

    yield factory
    errors = []
    for t in made:
        try:
            if t.running:
                t.stop()
            else:
                t.check_log()
        except BaseException as exc:  # report every server, not only the first
            t.kill()
            errors.append(str(exc))
    for t in made:  # after every stop: servers given db= may share these databases
        t.release_db()
    if errors:
        pytest.fail("\n\n".join(errors))


def module_server(env):
    """Declare a module-scoped `tally` fixture with extra environment, for modules whose
    shared server needs configuration:  tally = module_server({"X": "1"})"""

    @pytest.fixture(scope="module")
    def _fixture(tally_bin, tmp_path_factory):
        yield from _module_server(tmp_path_factory, env)

    return _fixture


# ---- small assertion helpers shared by the test files ----

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def assert_error(resp, status, code, field=None):
    """Assert resp is tally's error shape {"error": {code, message, requestId}} with status,
    code and (when given) field; returns the error object."""
    assert resp.status_code == status, f"{resp.status_code} {resp.text}"
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == code, body
    assert isinstance(err["message"], str) and err["message"], body
    assert err["requestId"] == resp.headers["X-Request-Id"], (body, resp.headers)
    if field is not None:
        assert err.get("field") == field, body
    return err


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims, secret=None, alg="HS256", header=None):
    """A JWT built by hand (not by the code under test). alg "none" gives an unsigned token;
    HS256/HS384/HS512 sign with secret. header overrides the JOSE header entirely."""
    head = header if header is not None else {"alg": alg, "typ": "JWT"}
    signing_input = b64url(json.dumps(head, separators=(",", ":"))) + "." + b64url(
        json.dumps(claims, separators=(",", ":"))
    )
    if alg == "none":
        return signing_input + "."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    sig = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return signing_input + "." + b64url(sig)


def jwt_claims(token):
    """The claims of a JWT, decoded without checking anything."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
