#!/usr/bin/python3
"""tally benchmark: `make bench` (or /usr/bin/python3 bench/bench.py).

One run:
  1. builds a temporary SQLite database of BENCH_USERS (100,000) users with referral codes and a
     referral tree (the server applies the migrations; Python bulk-inserts the rows);
  2. measures the raw Argon2id rate (`tally bench-hash`) with no server running, before the
     scenarios and again after them (the mean is the reference for sign-ups/s);
  3. starts `build/tally serve` on that database and runs wrk against each scenario in SCENARIOS,
     checking afterwards, from the server's /metrics, which statuses it answered and that no
     request is left in flight;
     The "purchase" scenario (issue 3) first creates a retailer (America/New_York), a product
     and a promotion covering it there through the admin API, then posts purchases with unique
     transaction ids for buyers who each have two levels of referrers; afterwards it compares
     the purchases in the database with the 201s wrk saw and runs `tally verify` on the live
     database; then `tally bench-store` makes 20,000 more of the same purchases straight into
     the store (no HTTP, 64 in flight), to show how much of a purchase's cost is the writer's;
  4. WebSockets (issue 5), on a fresh server: opens BENCH_WS_SOCKETS idle sockets to /ws
     (bench/wsload.py, raw asyncio; tokens minted with the bench's TALLY_JWT_SECRET), tries one
     more (expects 503), pings them all, and reads the server's VmRSS before, while held and
     after closing; then, while wrk sends purchases on 16 connections, watches the sockets of
     50 referrers and times purchases the bench sends itself from the request to the
     earning_update frame on the referrer's socket;
  5. the payout jobs (issue 4) on a separate database of BENCH_JOB_USERS users and
     BENCH_JOB_REFERRALS referrals (bench/jobsdb.py: power-law referrers, bulk-loaded):
     `tally jobs run findQualifiedUsers` then `payQualifiedUsers`, each timed with its peak
     RSS and bonus groups per second, the groups checked against what the data implies, then
     `tally verify`. The pristine database is kept in BENCH_JOB_CACHE for the next run;
  6. PostgreSQL (issue 6): starts its own PostgreSQL 15 cluster (tests/e2e/pgcluster.py: initdb
     in a temporary directory as an unprivileged user, a free port on 127.0.0.1, fsync and
     synchronous_commit on), loads the same users, codes and referrals into a fresh database
     migrated by the server, and runs the healthz and purchase scenarios against
     `build/tally serve --db postgres://...` with the same checks (purchases in the database
     against the 201s, `tally verify` on the live database); the cluster is removed after;
  7. prints one table (requests/s, p50, p99, errors) with the ratios and targets the issues
     ask for, then the purchase figures on both engines side by side, the WebSocket and jobs
     figures;
  8. stops each server with SIGTERM, checks that it exits 0, and removes the temporary directory.

The machine may be shared: each row says how many cores other processes kept busy meanwhile
("bg cpu"), so that a depressed figure can be told from a slow server.

Environment:
  BENCH_SECONDS      seconds per scenario (default 10)
  BENCH_USERS        users in the database (default 100000)
  BENCH_WRK_THREADS  wrk threads (default 2)
  BENCH_ONLY         comma-separated scenario names to run, plus "ws", "jobs" and "pg" for
                     those parts (default: all); "pg" runs healthz and purchase on PostgreSQL
                     (BENCH_ONLY=healthz,purchase,pg compares the engines and nothing else)
  BENCH_PG           0: skip the PostgreSQL part (default 1 when PostgreSQL 15 is installed)
  BENCH_WS_SOCKETS   idle WebSockets to open (default 10000, the server's LIMIT_WS_SOCKETS;
                     the bench raises its own soft file limit to fit)
  BENCH_JOB_USERS    users who may refer, in the jobs database (default 1000000)
  BENCH_JOB_REFERRALS referrals in the jobs database (default 5000000; 0 skips the jobs).
                     referrals.referred_user_id is UNIQUE, so the database holds
                     max(users, referrals + 1000) users. At the defaults the database takes
                     about 4 minutes to build (4 GB; then it is cached) and the two jobs and
                     tally verify 6 (quiet 2-core machine) to 11 minutes (busy): `make bench`
                     takes 7.5 minutes with the cache, 11.5 without. For a run of about 2.5
                     minutes in all use BENCH_JOB_USERS=100000 BENCH_JOB_REFERRALS=500000
  BENCH_JOB_CACHE    directory keeping the pristine jobs database between runs, keyed by the
                     schema, the sizes and the generator (default ~/.cache/tally-bench; 0: off)
  BENCH_JSON         also write the results to this file as JSON
  BENCH_KEEP         1: keep the temporary directory (database, server log, Lua scripts)
  TALLY_BIN          the server binary (default build/tally)
  TALLY_HTTP_THREADS, TALLY_HASH_THREADS ...  passed through to the server (defaults 2 and 2)
  ENABLE_AUTOMATION_WORKER  default false here: the scheduler would run the bonus jobs in the
                     middle of the scenarios (they are measured on their own, part 5)

Adding a scenario: append a Scenario to SCENARIOS. A GET or a fixed request needs only a path,
and `auth` if it needs a bearer token. A request that must differ every time (unique emails,
unique transaction ids) gets a Lua file in bench/lua/ defining request(); see common.lua for
what it can use (tid, seq(), P.nonce, P.*) and signup.lua for an example. Values the Lua needs
(an API key, a list of user ids) go in `params`, a function of the run's context (Ctx), and
arrive in Lua as P.<name>. Anything the scenario needs in the database goes in populate() or in
a `prepare` function that runs against the live server before the scenario.
A scenario with `server_env` runs on a server restarted with those extra variables.

Exit status: 0 when every scenario ran without a non-2xx response, socket error, unexpected
status or request stuck in flight, every purchase check and `tally verify` passed, every idle
socket opened and answered a ping, every timed purchase reached its socket, both jobs succeeded
and paid exactly the expected groups, and every server exited 0 within 5 s of SIGTERM; 1
otherwise (the table still prints, with the problems flagged by "!").
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import jobsdb  # bench/jobsdb.py: the large database of the jobs measurement
import wsload  # bench/wsload.py: raw asyncio WebSocket clients

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import pgcluster  # noqa: E402 - tests/e2e/pgcluster.py: the throw-away PostgreSQL cluster

LUA_DIR = ROOT / "bench" / "lua"
TALLY = Path(os.environ.get("TALLY_BIN", ROOT / "build" / "tally"))

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
N_USERS = int(os.environ.get("BENCH_USERS", "100000"))
WRK_THREADS = int(os.environ.get("BENCH_WRK_THREADS", "2"))
HTTP_THREADS = os.environ.get("TALLY_HTTP_THREADS", "2")
HASH_THREADS = os.environ.get("TALLY_HASH_THREADS", "2")
HASH_SECONDS = 3  # each of the two bench-hash runs, before and after the scenarios
WS_SOCKETS = int(os.environ.get("BENCH_WS_SOCKETS", "10000"))
WS_SOCKETS_CAP = 10000  # LIMIT_WS_SOCKETS in src/core/limits.h
WS_BUDGET_KIB = 32  # docs/OPERATIONS.md: "Budget about 32 KiB per socket"
WS_WATCHERS = 50  # referrers' sockets watched during the commit-to-socket measurement
WS_SAMPLE_RATE = 40.0  # purchases a second sent by the bench itself, one at a time
WS_LOAD_CONNECTIONS = 16  # wrk's purchase load meanwhile
JOB_USERS = int(os.environ.get("BENCH_JOB_USERS", "1000000"))
JOB_REFERRALS = int(os.environ.get("BENCH_JOB_REFERRALS", "5000000"))
JOB_CACHE = os.environ.get("BENCH_JOB_CACHE",
                           str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                               / "tally-bench"))
# Every server the bench starts signs tokens with this (bench-only) secret, so that the
# WebSocket clients can mint their own (wsload.mint_jwt).
JWT_SECRET = "tally-bench-jwt-secret-0123456789abcdef-not-for-production"
PG_ENABLED = os.environ.get("BENCH_PG", "1") != "0"
N_BUYERS = 10000  # buyers of the purchase scenario (each with two levels of referrers)
# Issue 3's targets for the purchase scenario on this 2-core machine.
TARGET_PURCHASES_S = 25000
TARGET_PURCHASE_RATIO = 0.40
TARGET_PURCHASE_P99_MS = 10.0

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # src/domain/code.c: no 0 O 1 I l
CODE_LENGTH = 8
ROOT_USERS = 1000  # the first users are referred by nobody; every later one by an earlier one
CONVERTED_SHARE = 0.3  # of referrals
HISTORY_DAYS = 365  # users' sign-up times are spread over this past; `week` sees ~2% of them
DAY_MS = 86_400_000
OWNER_EMAIL = "bench-owner@bench.example"
OWNER_PASSWORD = "bench-owner-password"


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def http(base: str, method: str, path: str, body=None, token: Optional[str] = None,
         timeout: float = 10.0):
    """One request; returns (status, parsed JSON body or text)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with _opener.open(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


class Server:
    """build/tally serve on a free port; start() waits for /healthz, stop() checks exit 0."""

    def __init__(self, db: Path, logfile: Path, extra_env: Optional[dict] = None):
        self.db, self.logfile, self.extra_env = db, logfile, dict(extra_env or {})
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.stop_s = 0.0

    def start(self, deadline_s: float = 20.0) -> "Server":
        env = dict(os.environ)
        env.setdefault("TALLY_HTTP_THREADS", HTTP_THREADS)
        env.setdefault("TALLY_HASH_THREADS", HASH_THREADS)
        env["TALLY_LOG_REQUESTS"] = "false"
        env["TALLY_JWT_SECRET"] = JWT_SECRET
        # The in-process scheduler would run the bonus jobs every minute in the middle of the
        # scenarios; the jobs are measured on their own (see jobs_phase).
        env.setdefault("ENABLE_AUTOMATION_WORKER", "false")
        env.update(self.extra_env)
        self.log = open(self.logfile, "ab")
        self.log.write(f"==== serve port {self.port} env {self.extra_env}\n".encode())
        self.log.flush()
        self.proc = subprocess.Popen(
            [str(TALLY), "serve", "--port", str(self.port), "--db", str(self.db)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        end = time.monotonic() + deadline_s
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"server exited with {self.proc.returncode} while starting; "
                                 f"log:\n{self.log_tail()}")
            try:
                if http(self.base, "GET", "/healthz", timeout=1.0)[0] == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > end:
                self.kill()
                raise BenchError(f"/healthz did not answer within {deadline_s:.0f} s; "
                                 f"log:\n{self.log_tail()}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, deadline_s: float = 45.0) -> int:
        """SIGTERM; the exit status, or raise if it does not exit in time or exits non-zero."""
        if self.proc is None:
            return 0
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(deadline_s)
            except subprocess.TimeoutExpired:
                stacks = self.stacks()
                self.kill()
                self.stop_s = time.monotonic() - t0
                raise BenchError(f"server did not exit within {deadline_s:.0f} s of SIGTERM; "
                                 f"killed; log:\n{self.log_tail()}\nits threads then:\n{stacks}")
        rc = self.proc.returncode
        self.stop_s = time.monotonic() - t0
        self.proc = None
        self.log.close()
        if rc != 0:
            what = f"signal {-rc}" if rc < 0 else f"status {rc}"
            raise BenchError(f"server exited with {what} (wanted status 0) "
                             f"{self.stop_s:.1f} s after SIGTERM; log:\n{self.log_tail()}")
        return rc

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        if not self.log.closed:
            self.log.close()

    def stacks(self) -> str:
        """Every thread's backtrace (gdb), to show where a hung server waits."""
        if shutil.which("gdb") is None:
            return "  (gdb not installed)"
        try:
            p = subprocess.run(["gdb", "-p", str(self.proc.pid), "-batch", "-nx",
                                "-ex", "thread apply all bt"],
                               capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return "  (gdb timed out)"
        keep = [l for l in p.stdout.splitlines() if l.startswith(("Thread ", "#"))]
        return "\n".join("  | " + l for l in keep) or "  (gdb: " + p.stderr.strip() + ")"

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.logfile.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join("  | " + l for l in lines[-n:])

    def metrics(self) -> tuple:
        """From /metrics: tally_http_requests_total as {(method, route, status): count}, and
        tally_http_in_flight less the /metrics request itself."""
        status, text = http(self.base, "GET", "/metrics")
        if status != 200 or not isinstance(text, str):
            return {}, 0
        m = re.search(r"^tally_http_in_flight (\d+)$", text, re.M)
        in_flight = int(m[1]) - 1 if m else 0
        out = {}
        pat = re.compile(r'^tally_http_requests_total\{method="([^"]*)",route="([^"]*)",'
                         r'status="([^"]*)"\} (\d+)$')
        for line in text.splitlines():
            m = pat.match(line)
            if m:
                out[(m[1], m[2], m[3])] = int(m[4])
        return out, in_flight

    def settle(self, deadline_s: float = 5.0) -> tuple:
        """metrics() once no request is in flight, or at the deadline (stuck requests)."""
        end = time.monotonic() + deadline_s
        while True:
            counts, in_flight = self.metrics()
            if in_flight <= 0 or time.monotonic() > end:
                return counts, in_flight
            time.sleep(0.1)


# ---------------------------------------------------------------- the database


def uuid_from(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def populate(db: Path, password_hash: str, n_users: int, rng: random.Random) -> dict:
    """Bulk-insert users, one referral code each, and a referral tree (schema: src/store/sqlite.c).

    User i (0-based) signed up at a time rising with i over the last HISTORY_DAYS; every user
    from ROOT_USERS on was referred by a uniformly random earlier user (so early users have
    many referrals and the leaderboard has real counting to do); CONVERTED_SHARE of referrals
    are converted. Codes expire a year from now, so any of them can be used to sign up."""
    now = int(time.time() * 1000)
    start = now - HISTORY_DAYS * DAY_MS
    step = (now - 60_000 - start) // max(n_users, 1)
    ids = [uuid_from(rng) for _ in range(n_users)]
    code_ids = [uuid_from(rng) for _ in range(n_users)]
    codes, seen = [], set()
    while len(codes) < n_users:
        c = "".join(rng.choices(CODE_ALPHABET, k=CODE_LENGTH))
        if c not in seen:
            seen.add(c)
            codes.append(c)
    users, code_rows, referrals = [], [], []
    referrer_of = []  # index of each user's referrer, or None
    converted = 0
    for i in range(n_users):
        t = start + i * step
        referrer = rng.randrange(i) if i >= ROOT_USERS else None
        referrer_of.append(referrer)
        users.append((ids[i], f"Bench User {i}", f"user{i}@bench.example", password_hash,
                      ids[referrer] if referrer is not None else None, t))
        code_rows.append((code_ids[i], ids[i], codes[i], t, now + 365 * DAY_MS))
        if referrer is not None:
            conv = rng.random() < CONVERTED_SHARE
            converted += conv
            referrals.append((uuid_from(rng), ids[referrer], ids[i], code_ids[referrer],
                              "converted" if conv else "pending", t,
                              t + rng.randrange(1, 3 * DAY_MS) if conv else None))
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("PRAGMA synchronous=OFF")  # this connection only: the load, not the server
        con.execute("BEGIN")
        con.executemany("INSERT INTO users (id, name, email, password_hash, referred_by,"
                        " is_admin, created_at) VALUES (?, ?, ?, ?, ?, 0, ?)", users)
        con.executemany("INSERT INTO referral_codes (id, user_id, code, is_active, created_at,"
                        " expires_at) VALUES (?, ?, ?, 1, ?, ?)", code_rows)
        con.executemany("INSERT INTO referrals (id, referrer_user_id, referred_user_id,"
                        " referral_code_id, status, created_at, converted_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)", referrals)
        con.execute("COMMIT")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    week = sum(1 for r in referrals if r[5] >= now - 7 * DAY_MS)
    return {"users": n_users, "referrals": len(referrals), "converted": converted,
            "referrals_last_week": week, "user_ids": ids, "codes": codes,
            "referrer_of": referrer_of, "rows": (users, code_rows, referrals)}


def populate_pg(url: str, pop: dict) -> float:
    """The same rows as populate() into a PostgreSQL database the server has migrated
    (schema: src/store/pg.c); returns the seconds taken. COPY in one transaction, then
    ANALYZE, as an operator would after a bulk load. (100,000 users took 32-37 s on the busy
    2-core machine, foreign-key checks or not; SQLite's load about a third of that.)"""
    import csv
    import io

    import psycopg2

    users, code_rows, referrals = pop["rows"]

    def copy(cur, table: str, columns: str, rows) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for r in rows:  # None -> an unquoted empty field, which COPY's CSV reads as NULL
            w.writerow(["" if v is None else v for v in r])
        buf.seek(0)
        cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)", buf)

    t0 = time.monotonic()
    con = psycopg2.connect(url)
    try:
        with con.cursor() as cur:
            cur.execute("SET synchronous_commit = off")  # this session only: the load
            copy(cur, "users", "id, name, email, password_hash, referred_by, is_admin, created_at",
                 ((*u[:5], 0, u[5]) for u in users))
            copy(cur, "referral_codes", "id, user_id, code, is_active, created_at, expires_at",
                 ((*c[:3], 1, *c[3:]) for c in code_rows))
            copy(cur, "referrals", "id, referrer_user_id, referred_user_id, referral_code_id,"
                 " status, created_at, converted_at", referrals)
        con.commit()
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("ANALYZE")
    finally:
        con.close()
    return time.monotonic() - t0


# ---------------------------------------------------------------- background load

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of a live process, in seconds (0 if it is gone)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


class CpuWindow:
    """How busy the machine was, during a window, with processes that are not ours.

    The machine is shared (other builds and tests may run beside the benchmark); a figure
    measured while other processes took CPU is low for that reason, and this says by how much.
    'Ours' is this script, its finished children (wrk, bench-hash, stopped servers) and the
    live processes in pids (the running server)."""

    def __init__(self, pids=()):
        self.pids = list(pids)
        self.start = self._sample()

    def _sample(self):
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        busy = (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK  # user nice system irq softirq
        steal = (v[7] if len(v) > 7 else 0) / CLK_TCK
        t = os.times()
        ours = t.user + t.system + t.children_user + t.children_system
        ours += sum(_proc_cpu_s(p) for p in self.pids)
        return time.monotonic(), busy, steal, ours

    def other_cores(self) -> tuple:
        """(cores busy with other processes, cores stolen by the hypervisor), on average."""
        w0, b0, s0, o0 = self.start
        w1, b1, s1, o1 = self._sample()
        wall = max(w1 - w0, 1e-6)
        return max(0.0, (b1 - b0) - (o1 - o0)) / wall, (s1 - s0) / wall


# ---------------------------------------------------------------- wrk


def lua_literal(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        if not all(32 <= ord(ch) < 127 for ch in v):
            raise ValueError(f"Lua parameter must be printable ASCII: {v!r}")
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "{" + ",".join(lua_literal(x) for x in v) + "}"
    if isinstance(v, dict):
        return "{" + ",".join(f"[{lua_literal(str(k))}]={lua_literal(x)}"
                              for k, x in v.items()) + "}"
    raise TypeError(f"no Lua literal for {type(v).__name__}")


def write_lua(path: Path, params: dict, scenario_lua: Optional[str]) -> Path:
    parts = ["P = " + lua_literal(params) + "\n", (LUA_DIR / "common.lua").read_text()]
    if scenario_lua:
        parts.append((LUA_DIR / scenario_lua).read_text())
    path.write_text("\n".join(parts))
    return path


_UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def parse_wrk(out: str) -> dict:
    """The BENCH_RESULT line printed by common.lua's done(); wrk's own text as a fallback."""
    m = re.search(r"^BENCH_RESULT (\{.*\})$", out, re.M)
    if m:
        r = json.loads(m[1])
        secs = r["duration_us"] / 1e6
        return {
            "requests": r["requests"], "seconds": secs,
            "rps": r["requests"] / secs if secs else 0.0,
            "p50_ms": r["p50_us"] / 1e3, "p90_ms": r["p90_us"] / 1e3,
            "p99_ms": r["p99_us"] / 1e3, "max_ms": r["max_us"] / 1e3,
            "non2xx": r["status"],
            "socket_errors": {k: r[k] for k in ("connect", "read", "write", "timeout")},
        }
    r = {"requests": 0, "seconds": 0.0, "rps": 0.0, "non2xx": 0,
         "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}}
    if m := re.search(r"(\d+) requests in ([\d.]+)(\w+)", out):
        r["requests"] = int(m[1])
        r["seconds"] = float(m[2]) * _UNIT_US.get(m[3], 1e6) / 1e6
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        r["rps"] = float(m[1])
    for pct in ("50", "90", "99"):
        if m := re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M):
            r[f"p{pct}_ms"] = float(m[1]) * _UNIT_US[m[2]] / 1e3
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        r["non2xx"] = int(m[1])
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                      out):
        r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                      map(int, m.groups())))
    if "p50_ms" not in r:
        raise BenchError(f"cannot parse wrk output:\n{out}")
    return r


def run_wrk(url: str, script: Path, connections: int, seconds: int, threads: int) -> tuple:
    threads = max(1, min(threads, connections))
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
           "--timeout", "10s", "-s", str(script), url]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if p.returncode != 0:
        raise BenchError(f"wrk failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}{p.stderr}")
    return parse_wrk(p.stdout), p.stdout


# ---------------------------------------------------------------- scenarios


@dataclass
class Ctx:
    """What a scenario can use: the database's facts and credentials made before the run."""
    tmp: Path
    db: Path
    token: str  # JWT of the bench owner (a plain user)
    api_key: str  # API key with scope admin
    pop: dict  # populate()'s result: user_ids, codes, counts
    nonce: str  # unique to this run
    server: Optional[Server] = None
    data: dict = field(default_factory=dict)  # what prepare functions made (catalogue ids...)


@dataclass
class Scenario:
    name: str
    path: str  # with the query string
    method: str = "GET"
    auth: Optional[str] = None  # None, "user" (JWT) or "key" (the admin API key)
    connections: int = 64
    lua: Optional[str] = None  # a file in bench/lua/ defining request(), for varying requests
    body: Optional[dict] = None  # a fixed JSON body
    params: Optional[Callable[[Ctx], dict]] = None  # extra values for Lua, as P.<name>
    expect: tuple = (200,)  # statuses that count as success in the server's /metrics
    route: Optional[str] = None  # the route pattern in /metrics (default: path without query)
    server_env: dict = field(default_factory=dict)  # run on a server with these extra variables
    seconds: Optional[int] = None  # default BENCH_SECONDS
    prepare: Optional[Callable[[Ctx], None]] = None  # runs against the live server first
    warmup: bool = True  # a GET is sent once before wrk (fills caches; writes are never sent)
    note: str = ""
    # runs after wrk and the server's count; may add to the result and set res["failed"]
    after: Optional[Callable[[Ctx, dict], None]] = None


# ---------------------------------------------------------------- purchases (issue 3)


def pick_buyers(pop: dict) -> None:
    """Buyers whose referrer also has a referrer (so a purchase pays two levels), in two
    disjoint sets: N_BUYERS for wrk, and the buyers of WS_WATCHERS other referrers for the
    commit-to-socket measurement (each a buyer whose level-1 referrer's socket is watched)."""
    ref = pop["referrer_of"]
    ids = pop["user_ids"]
    eligible = [i for i, r in enumerate(ref) if r is not None and ref[r] is not None]
    if len(eligible) < 2 * WS_WATCHERS:
        raise BenchError(f"only {len(eligible)} users have two levels of referrers")
    rng = random.Random(3)
    rng.shuffle(eligible)
    watched, ws_buyers, rest = set(), [], []
    for i in eligible:
        if len(watched) < WS_WATCHERS and ref[i] not in watched:
            watched.add(ref[i])
            ws_buyers.append(i)
        else:
            rest.append(i)
    # the watched referrers' other buyers stay out of wrk's list (their frames are the samples')
    buyers = [i for i in rest if ref[i] not in watched][:N_BUYERS]
    pop["buyers"] = [ids[i] for i in buyers]
    pop["ws_buyers"] = [ids[i] for i in ws_buyers]
    pop["ws_referrers"] = [ids[ref[i]] for i in ws_buyers]


def ensure_catalogue(ctx: Ctx) -> None:
    """A retailer, a product and a promotion covering it there, through the admin API; then one
    purchase to check that it pays two levels of commission and awards points."""
    if "retailer" in ctx.data:
        return
    base, key = ctx.server.base, ctx.api_key

    def create(resource: str, body: dict) -> dict:
        status, out = http(base, "POST", f"/api/admin/{resource}", body, token=key)
        if status != 201 or not isinstance(out, dict):
            raise BenchError(f"POST /api/admin/{resource} answered {status}: {out}")
        return out

    retailer = create("retailers", {"name": f"Bench Store {ctx.nonce}", "region": "us-east",
                                    "timezone": "America/New_York"})
    product = create("products", {"name": f"Bench Product {ctx.nonce}", "price": "19.99"})
    promo = create("promotions", {"productId": product["id"], "retailerId": retailer["id"],
                                  "startDate": "2020-01-01", "endDate": "2099-12-31",
                                  "awardRate": "2"})
    ctx.data.update(retailer=retailer["id"], product=product["id"], promotion=promo["id"])
    buyer = ctx.pop["buyers"][0]
    status, out = http(base, "POST", "/api/purchase",
                       {"transactionId": f"check-{ctx.nonce}", "userId": buyer,
                        "amount": "12.34", "retailerId": retailer["id"],
                        "productId": product["id"]}, token=key)
    if (status != 201 or not isinstance(out, dict) or len(out.get("commissions", [])) != 2
            or not out.get("pointsAwarded")):
        raise BenchError(f"the check purchase did not pay two levels and points: {status} {out}")


def purchase_params(tag: str) -> Callable[[Ctx], dict]:
    """Lua parameters; transaction ids are "<run nonce><tag>-<wrk thread>-<n>"."""
    return lambda ctx: {"buyers": ctx.pop["buyers"], "retailer": ctx.data["retailer"],
                        "product": ctx.data["product"], "nonce": ctx.nonce + tag}


def count_purchases(db, prefix: str) -> int:
    bounds = (prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1))
    if pgcluster.is_pg_url(db):
        import psycopg2

        con = psycopg2.connect(str(db))
        try:
            with con.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM purchases WHERE transaction_id >= %s AND"
                            " transaction_id < %s", bounds)
                return cur.fetchone()[0]
        finally:
            con.close()
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute("SELECT COUNT(*) FROM purchases WHERE transaction_id >= ? AND"
                           " transaction_id < ?", bounds).fetchone()[0]
    finally:
        con.close()


def run_verify(db: Path) -> dict:
    """tally verify --db: passed or not, how long, and the lines of any failed check."""
    t0 = time.monotonic()
    p = subprocess.run([str(TALLY), "verify", "--db", str(db)], capture_output=True, text=True,
                       timeout=3600)
    lines = p.stdout.splitlines()
    return {"ok": p.returncode == 0, "rc": p.returncode, "seconds": time.monotonic() - t0,
            "checks": sum(1 for l in lines if l.startswith("ok")),
            "failed": [l for l in lines if l and not l.startswith(("ok", "verify:"))][:10]
            + ([p.stderr.strip()] if p.returncode and p.stderr.strip() else [])}


def after_purchase(tag: str) -> Callable[[Ctx, dict], None]:
    def after(ctx: Ctx, res: dict) -> None:
        check_purchases(ctx, res, ctx.nonce + tag + "-")
        if not pgcluster.is_pg_url(ctx.db):
            res["store_alone"] = store_alone(ctx)
    return after


STORE_ALONE_COUNT = 20000


def store_alone(ctx: Ctx) -> dict:
    """The same purchases (buyers, retailer, promotion, 64 in flight) made by `tally bench-store`
    straight into the store of the database the server just used, no HTTP: how fast the writer
    alone goes, and its CPU per purchase. The server is idle meanwhile (its writer waits)."""
    buyers = ctx.tmp / "buyers.txt"
    buyers.write_text("\n".join(ctx.pop["buyers"]) + "\n")
    con = sqlite3.connect(ctx.db, timeout=30)
    try:
        rate = con.execute("SELECT award_rate_centi FROM promotions WHERE id = ?",
                           (ctx.data["promotion"],)).fetchone()[0]
    finally:
        con.close()
    p = subprocess.run([str(TALLY), "bench-store", "--db", str(ctx.db), "--buyers", str(buyers),
                        "--retailer", ctx.data["retailer"], "--promotion", ctx.data["promotion"],
                        "--rate", str(rate), "--count", str(STORE_ALONE_COUNT), "--inflight", "64"],
                       capture_output=True, text=True, timeout=600)
    m = re.search(r"purchases=(\d+) failed=(\d+) .*purchases_per_s=([\d.]+) "
                  r"cpu_us_per_purchase=([\d.]+)", p.stdout)
    if p.returncode or not m:
        log(f"bench-store failed ({p.returncode}): {p.stdout.strip()} {p.stderr.strip()[-300:]}")
        return {"ok": False}
    return {"ok": True, "purchases": int(m.group(1)), "rps": float(m.group(3)),
            "cpu_us": float(m.group(4))}


def check_purchases(ctx: Ctx, res: dict, prefix: str) -> None:
    """Purchases in the database against the 201s wrk saw and the server counted; then
    tally verify on the live database."""
    in_db = count_purchases(ctx.db, prefix)
    seen = res["requests"] - res["non2xx"]  # wrk: responses less non-2xx/3xx = the 201s
    # the server's count of 201s on the route, less those of the bench's own purchases
    counted = res["server_statuses"].get("201", 0) - (res.get("alongside") or {}).get("created", 0)
    res["purchases_in_db"], res["wrk_201"], res["server_201"] = in_db, seen, counted
    problems = []
    # When its time is up wrk stops reading (201s the server sent but wrk never read) and
    # abandons the requests in flight ("aborted" by the server's count): those may have been
    # committed without an answer. So: wrk's 201s <= the server's 201s <= purchases in the
    # database <= the server's 201s + the aborted requests.
    if not (seen <= counted <= in_db <= counted + res["aborted"]):
        problems.append(f"{in_db} purchases in the database, but the server answered {counted} "
                        f"201s (+{res['aborted']} requests abandoned by wrk) and wrk read "
                        f"{seen} 201s")
    v = run_verify(ctx.db)
    res["verify"] = v
    if not v["ok"]:
        problems.append("tally verify FAILED: " + "; ".join(v["failed"]))
    if problems:
        res["failed"] = problems
        for p in problems:
            log(f"{res['name']}: {p}")


def prepare_purchase(ctx: Ctx) -> None:
    ensure_catalogue(ctx)


PURCHASE_NOTE = ("unique transaction ids; buyers with two levels of referrers; a promotion "
                 "covers the product (2 commissions + points)")

SCENARIOS = [
    Scenario("healthz", "/healthz", note="no-op: the HTTP layer alone"),
    Scenario("purchase", "/api/purchase", method="POST", auth="key", lua="purchase.lua",
             expect=(201,), prepare=prepare_purchase, params=purchase_params("p"),
             after=after_purchase("p"), note=PURCHASE_NOTE + "; then the DB count and tally verify"),
    Scenario("leaderboard all", "/api/referral/leaderboard?period=all&limit=10", auth="user",
             note="cached (TALLY_LEADERBOARD_CACHE_SECONDS, 30 s)"),
    Scenario("leaderboard week", "/api/referral/leaderboard?period=week&limit=10", auth="user",
             note="cached"),
    Scenario("signup", "/api/auth/signup", method="POST", connections=8, lua="signup.lua",
             expect=(201,), note="unique emails; Argon2id-bound"),
    Scenario("leaderboard all nocache", "/api/referral/leaderboard?period=all&limit=10",
             auth="user", connections=2, seconds=max(3, SECONDS // 2),
             server_env={"TALLY_LEADERBOARD_CACHE_SECONDS": "0"},
             note="every request runs the query over all referrals"),
]


def run_scenario(sc: Scenario, ctx: Ctx, seconds: int, alongside=None) -> dict:
    """wrk against sc; with `alongside`, wrk runs in a thread that alongside(start) starts when
    it is ready, and what alongside returns is kept as res["alongside"]."""
    server = ctx.server
    if sc.prepare:
        sc.prepare(ctx)
    token = {None: None, "user": ctx.token, "key": ctx.api_key}[sc.auth]
    headers = {"Authorization": "Bearer " + token} if token else {}
    params = {"method": sc.method, "headers": headers, "nonce": ctx.nonce}
    if sc.body is not None or sc.lua:
        headers["Content-Type"] = "application/json"
    if sc.body is not None:
        params["body"] = json.dumps(sc.body)
    if sc.params:
        params.update(sc.params(ctx))
    slug = re.sub(r"\W+", "_", sc.name)
    script = write_lua(ctx.tmp / f"{slug}.lua", params, sc.lua)
    route = sc.route or sc.path.split("?")[0]
    if sc.warmup and sc.method == "GET":
        status, body = http(server.base, "GET", sc.path, token=token, timeout=60)
        if status not in sc.expect:
            raise BenchError(f"{sc.name}: warm-up request answered {status}: {body}")
    before, _ = server.metrics()
    cpu = CpuWindow([server.proc.pid])
    if alongside is None:
        res, raw = run_wrk(server.base + sc.path, script, sc.connections, seconds, WRK_THREADS)
        side = None
    else:
        box = {}

        def wrk_thread():
            try:
                box["out"] = run_wrk(server.base + sc.path, script, sc.connections, seconds,
                                     WRK_THREADS)
            except BaseException as e:  # noqa: BLE001 - re-raised below, in this thread
                box["error"] = e

        th = threading.Thread(target=wrk_thread, daemon=True)
        try:
            side = alongside(th.start)
        finally:
            if th.ident is not None:
                th.join()
        if "error" in box:
            raise box["error"]
        if "out" not in box:
            raise BenchError(f"{sc.name}: wrk never started")
        res, raw = box["out"]
    res["other_cores"], res["steal_cores"] = cpu.other_cores()
    alive = server.alive()
    after, stuck = server.settle() if alive else ({}, 0)
    statuses = {}
    for (m, r, s), n in after.items():
        if m == sc.method and r == route and n - before.get((m, r, s), 0):
            statuses[s] = n - before.get((m, r, s), 0)
    # "other" is a request that ended without a response: the client went away, as wrk does
    # with the requests it has in flight when its time is up.
    aborted = statuses.pop("other", 0)
    unexpected = {s: n for s, n in statuses.items() if s not in {str(x) for x in sc.expect}}
    sock = sum(res["socket_errors"].values())
    res.update(name=sc.name, connections=sc.connections, duration_s=seconds,
               server_statuses=statuses, unexpected_statuses=unexpected,
               errors=res["non2xx"] + sock, server_alive=alive, note=sc.note, stuck=stuck,
               aborted=aborted, alongside=side)
    if not alive:
        res["errors"] += 1
        log(f"{sc.name}: the server DIED during the run (exit {server.proc.returncode}); "
            f"log:\n{server.log_tail()}")
    if stuck:
        log(f"{sc.name}: {stuck} request(s) still in flight on the server 5 s after wrk "
            f"stopped (tally_http_in_flight)")
    if res["errors"] or unexpected or stuck:
        log(f"{sc.name}: {res['non2xx']} non-2xx/3xx, socket errors {res['socket_errors']}, "
            f"server statuses {statuses}; wrk said:\n{raw.rstrip()}")
    if sc.after and alive:
        sc.after(ctx, res)
    return res


# ---------------------------------------------------------------- PostgreSQL (issue 6)

# The scenarios run again on PostgreSQL, under these names (their transaction ids get tag "q").
PG_SCENARIOS = [
    Scenario("healthz pg", "/healthz", route="/healthz", note="no-op, on the PostgreSQL server"),
    Scenario("purchase pg", "/api/purchase", method="POST", auth="key", lua="purchase.lua",
             expect=(201,), route="/api/purchase", prepare=prepare_purchase,
             params=purchase_params("q"), after=after_purchase("q"),
             note=PURCHASE_NOTE + "; PostgreSQL 15 (fsync on, synchronous_commit on); then the "
                  "DB count and tally verify"),
]


def pg_available() -> bool:
    return os.access(pgcluster.PG_BIN / "initdb", os.X_OK)


def pg_phase(ctx: Ctx, stop: Callable[["Server", str], None]) -> tuple:
    """healthz and purchase on `tally serve --db postgres://...`, on a cluster of our own with
    the same users, codes and referrals as the SQLite database. Returns (results, whether
    the server died)."""
    results = []
    log("postgres: initdb and start a PostgreSQL 15 cluster (tests/e2e/pgcluster.py)")
    with pgcluster.PgCluster() as pg:
        url = pg.create_database("bench")
        t0 = time.monotonic()
        srv = Server(url, ctx.tmp / "server-pg.log").start()  # the server migrates it
        stop(srv, "after migrating the PostgreSQL database")
        load_s = populate_pg(url, ctx.pop)
        api_key = make_api_key(url, "bench", "admin")
        log(f"postgres: {ctx.pop['users']} users, {ctx.pop['referrals']} referrals loaded in "
            f"{load_s:.1f} s (migrations + load {time.monotonic() - t0:.1f} s)")
        pctx = Ctx(tmp=ctx.tmp, db=url, token=ctx.token, api_key=api_key, pop=ctx.pop,
                   nonce=ctx.nonce)
        srv = Server(url, ctx.tmp / "server-pg.log").start()
        pctx.server = srv
        try:
            for sc in PG_SCENARIOS:
                secs = sc.seconds or SECONDS
                log(f"{sc.name}: wrk -c{sc.connections} -d{secs}s {sc.method} {sc.path}")
                results.append(run_scenario(sc, pctx, secs))
                if not srv.alive():
                    break
        finally:
            if srv.alive():
                stop(srv, "after the PostgreSQL scenarios")
            else:
                log(f"the PostgreSQL server DIED; log:\n{srv.log_tail()}")
                srv.kill()
                results.append({"name": "pg server", "died": True})
    return [r for r in results if not r.get("died")], any(r.get("died") for r in results)


def print_engines(by: dict) -> None:
    """The purchase scenario on both engines, from the same run."""
    sq, pq = by.get("purchase"), by.get("purchase pg")
    hs, hp = by.get("healthz"), by.get("healthz pg")
    if not pq:
        return
    print("purchases by engine (issue 6): POST /api/purchase, 64 keep-alive connections, one "
          "server, the same data, this run")
    print(f"  {'':<24} {'purchases/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'/ healthz':>10} "
          f"{'verify':>8}")

    def row(name, r, h):
        ratio = f"{r['rps'] / h['rps']:.3f}" if h and h.get("rps") else "-"
        v = r.get("verify") or {}
        print(f"  {name:<24} {r['rps']:>12.1f} {fmt_ms(r.get('p50_ms')):>8} "
              f"{fmt_ms(r.get('p99_ms')):>8} {ratio:>10} "
              f"{('passed' if v.get('ok') else 'FAILED') if v else '-':>8}"
              + ("  !" if flagged(r) else ""))

    if sq:
        row("SQLite (WAL, FULL sync)", sq, hs)
    row("PostgreSQL 15 (fsync)", pq, hp)
    if sq and sq["rps"]:
        print(f"  {'PostgreSQL / SQLite':<24} {pq['rps'] / sq['rps']:>12.3f}")
    if "purchases_in_db" in pq:
        print(f"  PostgreSQL: {pq['purchases_in_db']} purchases in the database = "
              f"{pq['server_201']} answered 201 + {pq['purchases_in_db'] - pq['server_201']} "
              f"committed of the {pq['aborted']} requests wrk abandoned at its end")
    print()


# ---------------------------------------------------------------- WebSockets (issue 5)

# The purchase load that runs while the bench times purchases to their earning_update frames.
WS_LOAD = Scenario(f"purchase +{WS_WATCHERS} ws", "/api/purchase", method="POST", auth="key",
                   lua="purchase.lua", connections=WS_LOAD_CONNECTIONS, expect=(201,),
                   prepare=prepare_purchase, params=purchase_params("w"),
                   after=after_purchase("w"),
                   note=f"purchase load while {WS_WATCHERS} referrers' sockets are watched "
                        f"and the bench sends {WS_SAMPLE_RATE:.0f} purchases/s of its own")


def raise_fd_limit(want: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE toward want (within the hard limit); the
    sockets it can hold, leaving a margin for everything else."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return (soft if soft != resource.RLIM_INFINITY else want) - 200


def ws_idle(ctx: Ctx) -> dict:
    """WS_SOCKETS idle sockets on ctx.server (a fresh one): RSS before, held, after closing."""
    server = ctx.server
    room = raise_fd_limit(WS_SOCKETS + 1000)
    n = min(WS_SOCKETS, room)
    if n < WS_SOCKETS:
        log(f"ws: this process may open only {room + 200} files: {n} sockets, not {WS_SOCKETS}")
    users = ctx.pop["user_ids"]
    tokens = [wsload.mint_jwt(JWT_SECRET, users[i % len(users)]) for i in range(n)]

    def probe():
        try:
            return http(server.base, "GET", "/healthz", timeout=10)[0]
        except OSError as e:
            return f"error ({e})"

    time.sleep(1.0)  # let the fresh server settle before the "before" reading
    cpu = CpuWindow([server.proc.pid])
    log(f"ws idle: opening {n} WebSockets to /ws (200 handshakes at a time)")
    out = wsload.idle_sockets("127.0.0.1", server.port, tokens, server.proc.pid, probe)
    out["other_cores"], out["steal_cores"] = cpu.other_cores()
    out["alive"] = server.alive()
    problems = []
    if out["opened"] < n:
        problems.append(f"only {out['opened']} of {n} sockets opened: {out['failures']}")
    if out["answered_ping"] < out["opened"]:
        problems.append(f"only {out['answered_ping']} of {out['opened']} sockets answered a ping")
    if out["healthz_while_held"] != 200:
        problems.append(f"/healthz while the sockets were held: {out['healthz_while_held']}")
    if not out["alive"]:
        problems.append("THE SERVER DIED")
    out["failed"] = problems
    for p in problems:
        log(f"ws idle: {p}")
    return out


def ws_latency(ctx: Ctx, seconds: int) -> Callable:
    """The alongside function of WS_LOAD: open the watched sockets, start wrk, sample."""
    def run(start_wrk):
        watchers = [(u, wsload.mint_jwt(JWT_SECRET, u)) for u in ctx.pop["ws_referrers"]]
        out = wsload.commit_latency("127.0.0.1", ctx.server.port, ctx.api_key, watchers,
                                    ctx.pop["ws_buyers"], ctx.data["retailer"],
                                    ctx.data["product"], seconds=max(1, seconds - 2),
                                    rate=WS_SAMPLE_RATE, nonce=ctx.nonce, started=start_wrk)
        problems = []
        if out["missing"]:
            problems.append(f"{out['missing']} of {out['sent']} purchases never reached their "
                            f"referrer's socket within 5 s")
        if out["bad_status"]:
            problems.append(f"the bench's own purchases were answered {out['bad_status']}")
        out["failed"] = problems
        for p in problems:
            log(f"ws latency: {p}")
        return out
    return run


# ---------------------------------------------------------------- jobs (issue 4)


def schema_key(tmp: Path) -> str:
    """A digest of the schema `tally migrate` makes: a cached database is used only when
    it was built on the same schema, with the same sizes and generator."""
    import hashlib
    probe = tmp / "schema-probe.db"
    p = subprocess.run([str(TALLY), "migrate", "--db", str(probe)], capture_output=True,
                       text=True, timeout=60)
    if p.returncode != 0:
        raise BenchError(f"tally migrate failed ({p.returncode}): {p.stdout}{p.stderr}")
    con = sqlite3.connect(probe)
    try:
        schema = "\n".join(r[0] for r in con.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name"))
    finally:
        con.close()
    for f in tmp.glob("schema-probe.db*"):
        f.unlink()
    h = hashlib.sha256(f"{schema}|{jobsdb.VERSION}|{JOB_USERS}|{JOB_REFERRALS}".encode())
    return h.hexdigest()[:16]


def job_database(tmp: Path, password_hash: str) -> tuple:
    """The jobs' database in tmp, built (jobsdb.build) or copied from the cache of an earlier
    run's pristine build; (path, facts)."""
    db = tmp / "jobs.db"
    cache = None
    if JOB_CACHE not in ("", "0"):
        cache = Path(JOB_CACHE) / f"jobs-{JOB_USERS}-{JOB_REFERRALS}-{schema_key(tmp)}.db"
    meta_path = cache.with_suffix(".json") if cache else None
    if cache and cache.exists() and meta_path.exists():
        t0 = time.monotonic()
        shutil.copyfile(cache, db)
        facts = json.loads(meta_path.read_text())
        facts.update(cache="hit", cache_path=str(cache), copy_s=time.monotonic() - t0)
        log(f"jobs: database copied from the cache {cache} in {facts['copy_s']:.1f} s "
            f"(it was built in {facts['seconds']['total']:.0f} s on {facts['built_at']})")
        return db, facts
    log(f"jobs: building a database of {max(JOB_USERS, JOB_REFERRALS + jobsdb.ROOTS)} users "
        f"and {JOB_REFERRALS} referrals (bench/jobsdb.py)")
    facts = jobsdb.build(db, TALLY, JOB_USERS, JOB_REFERRALS, password_hash)
    facts["built_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    facts["cache"] = "off"
    log(f"jobs: built in {facts['seconds']['total']:.0f} s ({facts['seconds']}), "
        f"{facts['bytes'] / 1e9:.2f} GB")
    if cache:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            for old in cache.parent.glob("jobs-*"):  # keep one database: they are large
                old.unlink()
            t0 = time.monotonic()
            part = cache.with_suffix(".part")
            shutil.copyfile(db, part)
            part.rename(cache)
            meta_path.write_text(json.dumps(facts))
            facts.update(cache="stored", cache_path=str(cache), copy_s=time.monotonic() - t0)
            log(f"jobs: kept a pristine copy in {cache} for the next run "
                f"({facts['copy_s']:.1f} s; BENCH_JOB_CACHE=0 turns this off)")
        except OSError as e:
            log(f"jobs: could not keep a copy in {cache}: {e}")
    return db, facts


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_job(name: str, db: Path, logfile: Path) -> dict:
    """`tally jobs run NAME`: wall time, CPU, peak RSS, and what the run logged in
    automation_logs. The peak is GNU time's %M (the job's own ru_maxrss: time forks it, so it
    is not inflated by this Python process as a fork of it would be), or, without
    /usr/bin/time, the last VmHWM read from /proc while the job ran."""
    timer = Path("/usr/bin/time")
    tfile = logfile.with_suffix(".time")
    cmd = [str(TALLY), "jobs", "run", name, "--db", str(db)]
    if timer.exists():
        cmd = [str(timer), "-f", "%M", "-o", str(tfile)] + cmd
    cpu = CpuWindow()
    c0 = os.times()
    t0 = time.monotonic()
    hwm = 0
    with open(logfile, "ab") as lf:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT)
        while True:
            if not timer.exists():
                hwm = max(hwm, _vm_hwm_kb(p.pid))
            try:
                p.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                pass
    wall = time.monotonic() - t0
    c1 = os.times()
    other, steal = cpu.other_cores()
    if timer.exists():
        try:
            hwm = int(tfile.read_text().split()[-1])
        except (OSError, ValueError, IndexError):
            hwm = 0
    con = sqlite3.connect(db, timeout=30)
    try:
        row = con.execute("SELECT status, details, error_message FROM automation_logs WHERE"
                          " service = ? ORDER BY created_at DESC LIMIT 1", (name,)).fetchone()
        groups = dict(con.execute("SELECT status, COUNT(*) FROM bonus_groups GROUP BY status"))
    finally:
        con.close()
    details = json.loads(row[1]) if row and row[1] else {}
    return {"name": name, "rc": p.returncode, "seconds": wall, "peak_rss_kb": hwm,
            "cpu_s": (c1.children_user - c0.children_user)
            + (c1.children_system - c0.children_system),
            "other_cores": other, "steal_cores": steal,
            "status": row[0] if row else None, "error": row[2] if row else None,
            "details": details, "groups_by_status": groups}


def jobs_phase(tmp: Path, password_hash: str) -> dict:
    db, facts = job_database(tmp, password_hash)
    out = {"data": facts, "jobs": [], "failed": []}
    for name, key in (("findQualifiedUsers", "groupsCreated"),
                      ("payQualifiedUsers", "groupsPaid")):
        log(f"jobs: tally jobs run {name} --db {db.name}")
        j = run_job(name, db, tmp / "jobs.log")
        j["groups"] = j["details"].get(key, 0)
        dur = j["details"].get("durationMs")
        j["groups_per_s"] = j["groups"] / (dur / 1000) if dur else None
        out["jobs"].append(j)
        log(f"jobs: {name}: exit {j['rc']}, {j['seconds']:.1f} s, {j['groups']} groups, "
            f"peak RSS {j['peak_rss_kb'] / 1024:.0f} MB; details {j['details']}")
        if j["rc"] != 0 or j["status"] != "success":
            out["failed"].append(f"{name} exited {j['rc']} ({j['status']}: {j['error']})")
    # With the default rules (groups of 5, every sign-up counts) the groups are known in advance.
    default_rules = not any(os.environ.get(v) for v in
                            ("REFERRAL_BONUS_THRESHOLD", "TALLY_BONUS_COUNTS"))
    if default_rules and len(out["jobs"]) == 2:
        want = facts["expected_groups5"]
        made, paid = out["jobs"][0]["groups"], out["jobs"][1]["groups"]
        final = out["jobs"][1]["groups_by_status"]
        out["expected_groups"] = want
        if not (made == paid == want == final.get("paid", 0) and not final.get("processing")):
            out["failed"].append(f"groups: expected {want}, created {made}, paid {paid}, "
                                 f"table now {final}")
    log(f"jobs: tally verify --db {db.name}")
    out["verify"] = run_verify(db)
    if not out["verify"]["ok"]:
        out["failed"].append("tally verify FAILED: " + "; ".join(out["verify"]["failed"]))
    for p in out["failed"]:
        log(f"jobs: {p}")
    for f in tmp.glob("jobs.db*"):
        f.unlink()
    return out


# ---------------------------------------------------------------- the run


def bench_hash(seconds: int, threads: str) -> dict:
    cpu = CpuWindow()
    p = subprocess.run([str(TALLY), "bench-hash", "--seconds", str(seconds), "--threads", threads],
                       capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"hashes_per_s=([\d.]+)", p.stdout)
    if p.returncode != 0 or not m:
        raise BenchError(f"tally bench-hash failed ({p.returncode}): {p.stdout}{p.stderr}")
    other, steal = cpu.other_cores()
    return {"rate": float(m[1]), "other_cores": other, "steal_cores": steal}


def make_api_key(db: Path, name: str, scopes: str) -> str:
    p = subprocess.run([str(TALLY), "apikey", "create", "--db", str(db), "--name", name,
                        "--scopes", scopes], capture_output=True, text=True, timeout=30)
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        raise BenchError(f"tally apikey create failed ({p.returncode}): {p.stdout}{p.stderr}")
    return lines[-1].strip()


def prepare_database(tmp: Path, rng: random.Random) -> tuple:
    """Migrations by the server, one real sign-up for a real hash and token, then bulk rows."""
    db = tmp / "bench.db"
    t0 = time.monotonic()
    srv = Server(db, tmp / "server.log").start()
    try:
        status, body = http(srv.base, "POST", "/api/auth/signup",
                            {"name": "Bench Owner", "email": OWNER_EMAIL,
                             "password": OWNER_PASSWORD})
        if status != 201 or not isinstance(body, dict) or "token" not in body:
            raise BenchError(f"sign-up of the bench owner: {status} {body}")
    finally:
        srv.stop()
    token = body["token"]
    con = sqlite3.connect(db)
    (password_hash,) = con.execute("SELECT password_hash FROM users WHERE email = ?",
                                   (OWNER_EMAIL,)).fetchone()
    con.close()
    if not password_hash.startswith("$argon2id$"):
        raise BenchError(f"unexpected password hash format: {password_hash[:20]}...")
    t1 = time.monotonic()
    pop = populate(db, password_hash, N_USERS, rng)
    t2 = time.monotonic()
    api_key = make_api_key(db, "bench", "admin")
    log(f"database: {pop['users']} users, {pop['referrals']} referrals "
        f"({pop['converted']} converted, {pop['referrals_last_week']} in the last week); "
        f"migrate+owner {t1 - t0:.1f} s, bulk load {t2 - t1:.1f} s, "
        f"{db.stat().st_size / 1e6:.0f} MB")
    pop["load_s"] = t2 - t1
    pop["password_hash"] = password_hash
    pick_buyers(pop)
    return db, token, api_key, pop


def machine_facts() -> dict:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": os.uname().release,
            "wrk": wrk_v.split(" Copyright")[0].strip(), "wrk_threads": WRK_THREADS,
            "http_threads": HTTP_THREADS, "hash_threads": HASH_THREADS}


def fmt_ms(v) -> str:
    return "-" if v is None else (f"{v:.2f}" if v < 100 else f"{v:.0f}")


def flagged(r: dict) -> bool:
    return bool(r["errors"] or r["unexpected_statuses"] or r["stuck"] or r.get("failed")
                or (r.get("alongside") or {}).get("failed"))


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def fmt_mb(kb) -> str:
    return f"{kb / 1024:.1f} MiB"


def print_report(facts: dict, pop: dict, hashes: list, results: list, run: dict,
                 stops: list, ws: Optional[dict] = None, jobs: Optional[dict] = None) -> None:
    hash_rate = sum(h["rate"] for h in hashes) / len(hashes)
    print()
    print(f"machine: {facts['nproc']} cores ({facts['cpu']}), Linux {facts['kernel']}; "
          f"wrk on the same machine as the server")
    shown = TALLY.relative_to(ROOT) if TALLY.is_relative_to(ROOT) else TALLY
    print(f"server:  {shown}, TALLY_HTTP_THREADS={facts['http_threads']}, "
          f"TALLY_HASH_THREADS={facts['hash_threads']}, SQLite (rows \"pg\": PostgreSQL 15), "
          f"TALLY_LOG_REQUESTS=false, "
          f"ENABLE_AUTOMATION_WORKER={os.environ.get('ENABLE_AUTOMATION_WORKER', 'false')}")
    print(f"load:    {facts['wrk']}, -t{facts['wrk_threads']}, keep-alive, --latency; "
          f"connections (-c) and seconds (-d) per row")
    print(f"data:    {pop['users']} users, {pop['referrals']} referrals "
          f"({pop['converted']} converted, {pop['referrals_last_week']} in the last 7 days), "
          f"bulk-loaded in {pop['load_s']:.1f} s")
    print(f"run:     {run['seconds']:.0f} s; other processes on this machine used "
          f"{run['other_cores']:.2f} cores on average (hypervisor steal {run['steal_cores']:.2f})")
    print()
    hdr = (f"{'scenario':<24} {'conns':>5} {'secs':>4} {'requests/s':>11} {'p50 ms':>8} "
           f"{'p99 ms':>8} {'errors':>7} {'bg cpu':>7}")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        flag = "  !" if flagged(r) else ""
        print(f"{r['name']:<24} {r['connections']:>5} {r['duration_s']:>4} {r['rps']:>11.1f} "
              f"{fmt_ms(r.get('p50_ms')):>8} {fmt_ms(r.get('p99_ms')):>8} {r['errors']:>7} "
              f"{r['other_cores']:>7.2f}{flag}")
        a = r.get("alongside")
        if a:  # the bench's own purchases, each timed to its earning_update frame
            secs = max(1, r["duration_s"] - 2)
            bad = a["missing"] + sum(a["bad_status"].values())
            print(f"{'  commit -> ws frame':<24} {a['sockets']:>5} {secs:>4} "
                  f"{a['received'] / secs:>11.1f} {fmt_ms(a['p50_ms']):>8} "
                  f"{fmt_ms(a['p99_ms']):>8} {bad:>7} {r['other_cores']:>7.2f}"
                  f"{'  !' if a['failed'] else ''}   purchase sent -> earning_update received")
    print("-" * len(hdr))
    for h in hashes:
        print(f"{'raw Argon2id ' + h['when']:<24} {'':>5} {h['seconds']:>4} {h['rate']:>11.1f} "
              f"{'':>8} {'':>8} {'':>7} {h['other_cores']:>7.2f}   hashes/s, "
              f"bench-hash --threads {HASH_THREADS}")
    print()
    print("ratios:")
    by = {r["name"]: r for r in results}
    base = by.get("healthz")
    for r in results:
        if base and base["rps"] and r is not base and r["name"].startswith("leaderboard"):
            print(f"  {r['name'] + ' / healthz':<38} {r['rps'] / base['rps']:8.3g}")
    if "signup" in by and hash_rate:
        print(f"  {'signup / raw hash rate':<38} {by['signup']['rps'] / hash_rate:8.3g}"
              f"   ({by['signup']['rps']:.1f} sign-ups/s vs {hash_rate:.1f} hashes/s, "
              f"the mean of {len(hashes)})")
    pr = by.get("purchase")
    if pr and base and base["rps"]:
        print(f"  {'purchase / healthz':<38} {pr['rps'] / base['rps']:8.3g}"
              f"   ({pr['rps']:.1f} purchases/s vs {base['rps']:.1f} healthz/s, one server)")
    print()
    if pr:
        print_purchases(pr, base)
    if ws:
        print_ws(ws, by.get(WS_LOAD.name))
    print_engines(by)
    if jobs:
        print_jobs(jobs)
    print("errors = non-2xx/3xx responses + socket errors (wrk); bg cpu = cores other processes "
          "kept busy meanwhile (figures in rows with bg cpu well above 0 are depressed)")
    for r in results:
        if r["note"]:
            print(f"  {r['name']}: {r['note']}")
    for r in results:
        if flagged(r):
            print(f"  ! {r['name']}: {r['non2xx']} non-2xx/3xx, socket errors "
                  f"{r['socket_errors']}, statuses counted by the server {r['server_statuses']}"
                  + (f", {r['stuck']} request(s) stuck in flight after the run" if r["stuck"]
                     else "")
                  + ("" if r["server_alive"] else ", THE SERVER DIED"))
            for f in r.get("failed") or []:
                print(f"  ! {r['name']}: {f}")
            for f in (r.get("alongside") or {}).get("failed") or []:
                print(f"  ! {r['name']}: {f}")
    for f in ((ws or {}).get("idle") or {}).get("failed") or []:
        print(f"  ! ws idle: {f}")
    for st in stops:
        if st["error"]:
            print(f"  ! stopping the server {st['when']}: {st['error']}")
        elif st["seconds"] > 5:
            print(f"  ! the server took {st['seconds']:.1f} s to exit after SIGTERM "
                  f"({st['when']})")


def print_purchases(pr: dict, base: Optional[dict]) -> None:
    print("purchases (issue 3): POST /api/purchase, 64 keep-alive connections, one server, "
          "this run")
    rps = pr["rps"]
    print(f"  {'purchases/s':<30} {rps:>10.1f}   target >= {TARGET_PURCHASES_S}: "
          f"{met(rps >= TARGET_PURCHASES_S)} ({rps / TARGET_PURCHASES_S:.0%} of it)")
    if base and base["rps"]:
        ratio = rps / base["rps"]
        print(f"  {'purchases/s / healthz/s':<30} {ratio:>10.3f}   target >= "
              f"{TARGET_PURCHASE_RATIO:.2f}: {met(ratio >= TARGET_PURCHASE_RATIO)} "
              f"(healthz {base['rps']:.1f}/s, same server, this run)")
    p99 = pr.get("p99_ms")
    print(f"  {'p50 / p99':<30} {fmt_ms(pr.get('p50_ms')):>5} / {fmt_ms(p99)} ms   target p99 < "
          f"{TARGET_PURCHASE_P99_MS:.0f} ms: {met(p99 is not None and p99 < TARGET_PURCHASE_P99_MS)}")
    if "purchases_in_db" in pr:
        print(f"  {'purchases in the database':<30} {pr['purchases_in_db']:>10}   = "
              f"{pr['server_201']} answered 201 (wrk read {pr['wrk_201']} of them before it "
              f"stopped) + {pr['purchases_in_db'] - pr['server_201']} committed of the "
              f"{pr['aborted']} requests wrk abandoned at its end")
    sa = pr.get("store_alone")
    if sa and sa.get("ok"):
        print(f"  {'the store alone, no HTTP':<30} {sa['rps']:>10.1f}   purchases/s (tally bench-store"
              f", {sa['purchases']} purchases, 64 in flight, {sa['cpu_us']:.0f} us CPU each); "
              f"through HTTP: {rps / sa['rps']:.0%} of it")
    elif sa:
        print(f"  {'the store alone, no HTTP':<30} {'FAILED':>10}   (tally bench-store)")
    v = pr.get("verify")
    if v:
        print(f"  {'tally verify (live database)':<30} {'passed' if v['ok'] else 'FAILED':>10}   "
              f"{v['checks']} checks in {v['seconds']:.1f} s"
              + ("" if v["ok"] else ": " + "; ".join(v["failed"])))
    print()


def print_ws(ws: dict, load: Optional[dict]) -> None:
    print("websockets (issue 5)")
    i = ws.get("idle")
    if i:
        print(f"  {'idle sockets held':<30} {i['opened']:>10}   of {i['wanted']} wanted "
              f"(LIMIT_WS_SOCKETS {WS_SOCKETS_CAP}); opened in {i['open_s']:.1f} s "
              f"({i['opened'] / max(i['open_s'], 1e-6):.0f}/s)"
              + (f"; refused: {i['failures']}" if i["failures"] else ""))
        print(f"  {'answered a ping':<30} {i['answered_ping']:>10}   all pinged at once, "
              f"answered within {i['ping_s']:.1f} s")
        per = i["per_socket_bytes"]
        print(f"  {'server RSS, idle sockets':<30} {fmt_mb(i['rss_held_kb']):>10}   before "
              f"{fmt_mb(i['rss_before_kb'])}; after the pings {fmt_mb(i['rss_pinged_kb'])}; "
              f"2 s after closing them {fmt_mb(i['rss_closed_kb'])}")
        if per is not None:
            print(f"  {'RSS per idle socket':<30} {per / 1024:>6.1f} KiB   documented budget "
                  f"{WS_BUDGET_KIB} KiB (docs/OPERATIONS.md): {met(per / 1024 <= WS_BUDGET_KIB)}")
        print(f"  {'one socket over the cap':<30} {i['over_cap']:>10}   (503 = refused cleanly "
              f"before the upgrade)")
        print(f"  {'GET /healthz while held':<30} {str(i['healthz_while_held']):>10}   bg cpu "
              f"{i['other_cores']:.2f}")
    a = (load or {}).get("alongside")
    if a:
        print(f"  {'commit -> socket, p50 / p99':<30} {fmt_ms(a['p50_ms']):>5} / "
              f"{fmt_ms(a['p99_ms'])} ms   max {fmt_ms(a['max_ms'])} ms; {a['received']} of "
              f"{a['sent']} purchases sent by the bench ({WS_SAMPLE_RATE:.0f}/s, one at a time) "
              f"timed from the request to the earning_update frame on the referrer's socket")
        print(f"  {'  from the 201 to the frame':<30} {fmt_ms(a['after_response_p50_ms']):>5} / "
              f"{fmt_ms(a['after_response_p99_ms'])} ms   (the commit precedes the 201; "
              f"the request itself took p50 {fmt_ms(a['http_p50_ms'])} / p99 "
              f"{fmt_ms(a['http_p99_ms'])} ms)")
        print(f"  {'  purchase load meanwhile':<30} {load['rps']:>10.1f}   purchases/s from wrk "
              f"-c{load['connections']} (p99 {fmt_ms(load.get('p99_ms'))} ms), "
              f"{WS_WATCHERS} sockets open; frames received: {a['frames']}")
        if "purchases_in_db" in load:
            v = load.get("verify") or {}
            print(f"  {'  database check':<30} {load['purchases_in_db']:>10}   wrk's purchases "
                  f"in the database, {load['server_201']} answered 201 (wrk read "
                  f"{load['wrk_201']}); tally verify "
                  f"{'passed' if v.get('ok') else 'FAILED'} in {v.get('seconds', 0):.1f} s")
    print()


def print_jobs(jobs: dict) -> None:
    d = jobs["data"]
    print("jobs (issue 4): tally jobs run NAME --db, on its own (no server)")
    built = (f"built in {d['seconds']['total']:.0f} s "
             f"(rows {d['seconds']['users'] + d['seconds']['referrals']:.0f} s, "
             f"indexes {d['seconds']['indexes']:.0f} s) on {d['built_at']}")
    if d.get("cache") == "hit":
        built += f", copied from the cache in {d['copy_s']:.1f} s"
    elif d.get("cache") == "stored":
        built += f", then cached ({d['copy_s']:.1f} s)"
    print(f"  data: {d['users']} users, {d['referrals']} referrals from {d['referrers']} "
          f"referrers among the first {d['referrer_pool']} users (most {d['max_referrals']}, "
          f"{d['referrers_100plus']} with >= 100, median {d['median_referrals']}); "
          f"{d['bytes'] / 1e9:.2f} GB; {built}")
    hdr = (f"  {'job':<20} {'seconds':>8} {'groups':>9} {'groups/s':>9} {'peak RSS':>9} "
           f"{'cpu s':>7} {'bg cpu':>7}")
    print(hdr)
    for j in jobs["jobs"]:
        gps = f"{j['groups_per_s']:.0f}" if j["groups_per_s"] else "-"
        print(f"  {j['name']:<20} {j['seconds']:>8.1f} {j['groups']:>9} {gps:>9} "
              f"{fmt_mb(j['peak_rss_kb']):>9} {j['cpu_s']:>7.1f} {j['other_cores']:>7.2f}"
              f"{'' if j['rc'] == 0 else '  ! exit ' + str(j['rc'])}")
    if "expected_groups" in jobs:
        last = jobs["jobs"][-1]["groups_by_status"]
        print(f"  groups: {jobs['expected_groups']} expected (full groups of 5 per referrer), "
              f"bonus_groups now {last}")
    v = jobs.get("verify")
    if v:
        print(f"  tally verify: {'passed' if v['ok'] else 'FAILED'}, {v['checks']} checks in "
              f"{v['seconds']:.1f} s" + ("" if v["ok"] else ": " + "; ".join(v["failed"])))
    for f in jobs["failed"]:
        print(f"  ! {f}")
    print()


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)
    if not TALLY.exists():
        log(f"{TALLY} not found; run make first")
        return 2
    if shutil.which("wrk") is None:
        log("wrk not found (apt-get install wrk)")
        return 2
    only = {s.strip() for s in os.environ.get("BENCH_ONLY", "").split(",") if s.strip()}
    known = [s.name for s in SCENARIOS] + ["ws", "jobs", "pg"]
    unknown = only - set(known)
    if unknown:
        log(f"unknown scenario(s) {sorted(unknown)}; known: {known}")
        return 2
    scenarios = [s for s in SCENARIOS if not only or s.name in only]
    do_ws = not only or "ws" in only
    do_jobs = (not only or "jobs" in only) and JOB_REFERRALS > 0
    do_pg = (not only or "pg" in only) and PG_ENABLED
    if do_pg and not pg_available():
        log(f"{pgcluster.PG_BIN}/initdb not found: skipping PostgreSQL (install postgresql-15)")
        do_pg = False
    rng = random.Random(int(os.environ.get("BENCH_SEED", "1")))
    tmp = Path(tempfile.mkdtemp(prefix="tally-bench-"))
    run_cpu = CpuWindow()
    ok = True
    server = None
    stops = []  # {when, seconds from SIGTERM to exit, error}

    def stop(s: Server, when: str) -> None:
        """Stop s; a failure is recorded and reported, and the run goes on with a new server."""
        nonlocal ok
        try:
            s.stop()
            log(f"server stopped with SIGTERM {when}: exit 0 in {s.stop_s:.2f} s")
            stops.append({"when": when, "seconds": s.stop_s, "error": ""})
        except BenchError as e:
            ok = False
            log(f"FAILED to stop the server cleanly {when}: {e}")
            stops.append({"when": when, "seconds": s.stop_s, "error": str(e).split(";")[0]})
    try:
        facts = machine_facts()
        db, token, api_key, pop = prepare_database(tmp, rng)
        hashes = []

        def measure_hash(when: str) -> None:
            log(f"raw hashing rate ({when}): tally bench-hash --seconds {HASH_SECONDS} "
                f"--threads {HASH_THREADS}")
            hashes.append(dict(bench_hash(HASH_SECONDS, HASH_THREADS), when=when,
                               seconds=HASH_SECONDS))

        measure_hash("before")
        ctx = Ctx(tmp=tmp, db=db, token=token, api_key=api_key, pop=pop,
                  nonce=f"{os.getpid():x}{int(time.time()):x}")
        results = []
        # In order; the server restarts only when a scenario wants other variables.
        for sc in scenarios:
            if server is None or server.extra_env != sc.server_env:
                if server is not None:
                    s, server = server, None
                    stop(s, f"after {results[-1]['name']}")
                server = Server(db, tmp / "server.log", sc.server_env).start()
                ctx.server = server
                status, _ = http(server.base, "GET", "/api/me", token=token)
                if status != 200:
                    raise BenchError(f"the bench owner's token is refused: /api/me {status}")
            secs = sc.seconds or SECONDS
            log(f"{sc.name}: wrk -c{sc.connections} -d{secs}s {sc.method} {sc.path}")
            results.append(run_scenario(sc, ctx, secs))
            if not server.alive():
                ok = False
                server.kill()
                server = None  # it died; the next scenario starts a new one
        ws = None
        if do_ws:
            # A fresh server, so that its RSS before the sockets is a baseline.
            if server is not None:
                s, server = server, None
                stop(s, f"after {results[-1]['name']}")
            server = Server(db, tmp / "server.log").start()
            ctx.server = server
            ws = {"idle": ws_idle(ctx)}
            if server.alive():
                secs = SECONDS
                log(f"{WS_LOAD.name}: wrk -c{WS_LOAD.connections} -d{secs}s POST "
                    f"{WS_LOAD.path}, {WS_WATCHERS} sockets watched, {WS_SAMPLE_RATE:.0f} "
                    f"purchases/s timed to their frames")
                results.append(run_scenario(WS_LOAD, ctx, secs,
                                            alongside=ws_latency(ctx, secs)))
            if not server.alive():
                ok = False
                log(f"the server DIED during the WebSocket part; log:\n{server.log_tail()}")
                server.kill()
                server = None
            elif ws["idle"]["failed"]:
                ok = False
        if server is not None:
            s, server = server, None
            stop(s, "after " + (results[-1]["name"] if results else "ws"))
        if do_pg:
            pg_results, pg_died = pg_phase(ctx, stop)
            results.extend(pg_results)
            if pg_died:
                ok = False
        measure_hash("after")
        jobs = jobs_phase(tmp, pop["password_hash"]) if do_jobs else None
        if jobs and jobs["failed"]:
            ok = False
        other, steal = run_cpu.other_cores()
        run = {"seconds": time.monotonic() - run_cpu.start[0], "other_cores": other,
               "steal_cores": steal}
        print_report(facts, pop, hashes, results, run, stops, ws, jobs)
        ok = ok and not any(flagged(r) for r in results) and all(
            st["seconds"] <= 5 and not st["error"] for st in stops)
        if os.environ.get("BENCH_JSON"):
            Path(os.environ["BENCH_JSON"]).write_text(json.dumps(
                {"machine": facts, "run": run, "hashes": hashes, "results": results,
                 "stops": stops, "ws": ws, "jobs": jobs,
                 "data": {k: v for k, v in pop.items()
                          if k not in ("user_ids", "codes", "referrer_of", "buyers",
                                       "ws_buyers", "ws_referrers", "password_hash", "rows")}},
                indent=2, default=str))
    except BenchError as e:
        log(f"FAILED: {e}")
        ok = False
    finally:
        if server is not None:
            try:
                server.stop()
            except BenchError as e:
                log(f"FAILED: {e}")
                ok = False
        if os.environ.get("BENCH_KEEP") == "1":
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
