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
  4. prints one table (requests/s, p50, p99, errors) and the ratios the issues ask for;
  5. stops the server with SIGTERM, checks that it exits 0, and removes the temporary directory.

The machine may be shared: each row says how many cores other processes kept busy meanwhile
("bg cpu"), so that a depressed figure can be told from a slow server.

Environment:
  BENCH_SECONDS      seconds per scenario (default 10)
  BENCH_USERS        users in the database (default 100000)
  BENCH_WRK_THREADS  wrk threads (default 2)
  BENCH_ONLY         comma-separated scenario names to run (default: all)
  BENCH_JSON         also write the results to this file as JSON
  BENCH_KEEP         1: keep the temporary directory (database, server log, Lua scripts)
  TALLY_BIN          the server binary (default build/tally)
  TALLY_HTTP_THREADS, TALLY_HASH_THREADS ...  passed through to the server (defaults 2 and 2)

Adding a scenario: append a Scenario to SCENARIOS. A GET or a fixed request needs only a path,
and `auth` if it needs a bearer token. A request that must differ every time (unique emails,
unique transaction ids) gets a Lua file in bench/lua/ defining request(); see common.lua for
what it can use (tid, seq(), P.nonce, P.*) and signup.lua for an example. Values the Lua needs
(an API key, a list of user ids) go in `params`, a function of the run's context (Ctx), and
arrive in Lua as P.<name>. Anything the scenario needs in the database goes in populate() or in
a `prepare` function that runs against the live server before the scenario.
A scenario with `server_env` runs on a server restarted with those extra variables.

Exit status: 0 when every scenario ran without a non-2xx response, socket error, unexpected
status or request stuck in flight, and every server exited 0 within 5 s of SIGTERM; 1 otherwise
(the table still prints, with the problems flagged by "!").
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
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
LUA_DIR = ROOT / "bench" / "lua"
TALLY = Path(os.environ.get("TALLY_BIN", ROOT / "build" / "tally"))

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
N_USERS = int(os.environ.get("BENCH_USERS", "100000"))
WRK_THREADS = int(os.environ.get("BENCH_WRK_THREADS", "2"))
HTTP_THREADS = os.environ.get("TALLY_HTTP_THREADS", "2")
HASH_THREADS = os.environ.get("TALLY_HASH_THREADS", "2")
HASH_SECONDS = 3  # each of the two bench-hash runs, before and after the scenarios

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
    converted = 0
    for i in range(n_users):
        t = start + i * step
        referrer = rng.randrange(i) if i >= ROOT_USERS else None
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
            "referrals_last_week": week, "user_ids": ids, "codes": codes}


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


SCENARIOS = [
    Scenario("healthz", "/healthz", note="no-op: the HTTP layer alone"),
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


def run_scenario(sc: Scenario, ctx: Ctx, seconds: int) -> dict:
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
    res, raw = run_wrk(server.base + sc.path, script, sc.connections, seconds, WRK_THREADS)
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
               aborted=aborted)
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
    return res


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
    return bool(r["errors"] or r["unexpected_statuses"] or r["stuck"])


def print_report(facts: dict, pop: dict, hashes: list, results: list, run: dict,
                 stops: list) -> None:
    hash_rate = sum(h["rate"] for h in hashes) / len(hashes)
    print()
    print(f"machine: {facts['nproc']} cores ({facts['cpu']}), Linux {facts['kernel']}; "
          f"wrk on the same machine as the server")
    shown = TALLY.relative_to(ROOT) if TALLY.is_relative_to(ROOT) else TALLY
    print(f"server:  {shown}, TALLY_HTTP_THREADS={facts['http_threads']}, "
          f"TALLY_HASH_THREADS={facts['hash_threads']}, SQLite, TALLY_LOG_REQUESTS=false")
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
    print()
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
    for st in stops:
        if st["error"]:
            print(f"  ! stopping the server {st['when']}: {st['error']}")
        elif st["seconds"] > 5:
            print(f"  ! the server took {st['seconds']:.1f} s to exit after SIGTERM "
                  f"({st['when']})")


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)
    if not TALLY.exists():
        log(f"{TALLY} not found; run make first")
        return 2
    if shutil.which("wrk") is None:
        log("wrk not found (apt-get install wrk)")
        return 2
    only = {s.strip() for s in os.environ.get("BENCH_ONLY", "").split(",") if s.strip()}
    unknown = only - {s.name for s in SCENARIOS}
    if unknown:
        log(f"unknown scenario(s) {sorted(unknown)}; known: {[s.name for s in SCENARIOS]}")
        return 2
    scenarios = [s for s in SCENARIOS if not only or s.name in only]
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
        if server is not None:
            s, server = server, None
            stop(s, f"after {results[-1]['name']}")
        measure_hash("after")
        other, steal = run_cpu.other_cores()
        run = {"seconds": time.monotonic() - run_cpu.start[0], "other_cores": other,
               "steal_cores": steal}
        print_report(facts, pop, hashes, results, run, stops)
        ok = ok and not any(flagged(r) for r in results) and all(
            st["seconds"] <= 5 and not st["error"] for st in stops)
        if os.environ.get("BENCH_JSON"):
            Path(os.environ["BENCH_JSON"]).write_text(json.dumps(
                {"machine": facts, "run": run, "hashes": hashes, "results": results,
                 "stops": stops,
                 "data": {k: v for k, v in pop.items() if k not in ("user_ids", "codes")}},
                indent=2))
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
