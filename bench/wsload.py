"""WebSocket load for the benchmark (issue 5), on asyncio and raw sockets.

A library client (python3-websocket) costs a thread or far too much time per socket for 10,000
of them; this one does the RFC 6455 handshake by hand (GET /ws with Upgrade, check the 101 and
Sec-WebSocket-Accept) and reads and writes frames itself: client frames masked, server frames
not. Tokens are HS256 JWTs minted here with the secret the bench gives the server
(TALLY_JWT_SECRET): {sub: user id, iss: "tally", iat, exp}, as src/security/token.c checks.

  idle_sockets()   opens N idle sockets, checks each answers a ping, reports the server's RSS
  commit_latency() watches referrers' sockets while the bench sends purchases of their buyers
                   and times each purchase to its earning_update frame
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import struct
import time

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mint_jwt(secret: str, user_id: str, ttl_s: int = 3600) -> str:
    now = int(time.time())
    head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps({"sub": user_id, "iss": "tally", "iat": now, "exp": now + ttl_s},
                              separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64url(sig)}"


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(values, p: float):
    """The p-th percentile (nearest rank) of values, or None."""
    if not values:
        return None
    v = sorted(values)
    k = max(1, -(-len(v) * p // 100))  # ceil(n * p / 100)
    return v[int(k) - 1]


# ---------------------------------------------------------------- frames


def frame(opcode: int, payload: bytes = b"") -> bytes:
    """A masked client frame (FIN set)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return head + mask + masked


async def read_frame(reader: asyncio.StreamReader) -> tuple:
    """(opcode, payload) of the next server frame (unmasked; fragments are not expected)."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if b1 & 0x80 else None
    payload = await reader.readexactly(n) if n else b""
    if mask:
        payload = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return b0 & 0x0F, payload


class WsError(Exception):
    def __init__(self, status: str, what: str):
        super().__init__(what)
        self.status = status  # "503", "401", "reset", "timeout", ...


async def ws_open(host: str, port: int, token: str, timeout: float = 30.0) -> tuple:
    """Open /ws with the token as a bearer header; (reader, writer) after a verified 101."""
    key = base64.b64encode(os.urandom(16)).decode()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except asyncio.TimeoutError:
        raise WsError("timeout", "connect timed out")
    except OSError as e:
        raise WsError("connect", f"connect: {e}")
    writer.write((f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n").encode())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except asyncio.TimeoutError:
        writer.close()
        raise WsError("timeout", "no handshake answer")
    except (asyncio.IncompleteReadError, OSError) as e:
        writer.close()
        raise WsError("reset", f"connection closed during the handshake: {e!r}")
    lines = head.decode(errors="replace").split("\r\n")
    parts = lines[0].split(" ")
    status = parts[1] if len(parts) > 1 else "?"
    if status != "101":
        writer.close()
        raise WsError(status, lines[0])
    want = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
    accept = [l.split(":", 1)[1].strip() for l in lines
              if l.lower().startswith("sec-websocket-accept:")]
    if accept != [want]:
        writer.close()
        raise WsError("accept", f"bad Sec-WebSocket-Accept {accept}")
    return reader, writer


async def ping(reader, writer, timeout: float) -> bool:
    """Send a ping; True when the matching pong comes back (other frames are skipped)."""
    token = os.urandom(4)
    try:
        writer.write(frame(0x9, token))
        end = time.monotonic() + timeout
        while True:
            op, payload = await asyncio.wait_for(read_frame(reader),
                                                 max(0.01, end - time.monotonic()))
            if op == 0xA and payload == token:
                return True
            if op == 0x8:
                return False
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, OSError):
        return False


# ---------------------------------------------------------------- idle sockets


async def _idle(host, port, tokens, pid, concurrency, hold_s, probe_http) -> dict:
    rss_before = rss_kb(pid)
    sem = asyncio.Semaphore(concurrency)
    conns, failures = [], {}

    async def one(tok):
        async with sem:
            try:
                conns.append(await ws_open(host, port, tok))
            except WsError as e:
                failures[e.status] = failures.get(e.status, 0) + 1

    t0 = time.monotonic()
    await asyncio.gather(*(one(t) for t in tokens))
    open_s = time.monotonic() - t0
    # One socket more than the cap allows should be refused cleanly (503 before the upgrade).
    over = "not tried"
    if len(conns) == len(tokens):
        try:
            _, w = await ws_open(host, port, tokens[0], timeout=10)
            over = "101 (accepted beyond the cap)"
            w.close()
        except WsError as e:
            over = e.status
    await asyncio.sleep(hold_s)
    rss_held = rss_kb(pid)
    loop = asyncio.get_running_loop()
    http_status = await loop.run_in_executor(None, probe_http)
    t1 = time.monotonic()
    alive = await asyncio.gather(*(ping(r, w, 30.0) for r, w in conns))
    ping_s = time.monotonic() - t1
    rss_pinged = rss_kb(pid)
    for _, w in conns:
        w.close()
    await asyncio.sleep(2.0)
    rss_closed = rss_kb(pid)
    n = len(conns)
    return {"wanted": len(tokens), "opened": n, "failures": failures, "open_s": open_s,
            "answered_ping": sum(alive), "ping_s": ping_s, "over_cap": over,
            "healthz_while_held": http_status,
            "rss_before_kb": rss_before, "rss_held_kb": rss_held, "rss_pinged_kb": rss_pinged,
            "rss_closed_kb": rss_closed,
            "per_socket_bytes": (rss_held - rss_before) * 1024 / n if n else None}


def idle_sockets(host: str, port: int, tokens: list, pid: int, probe_http, concurrency: int = 200,
                 hold_s: float = 3.0) -> dict:
    """Open len(tokens) sockets (concurrency handshakes at a time), try one more, hold them
    hold_s, call probe_http() (an HTTP request while they are held), ping each, close."""
    return asyncio.run(_idle(host, port, tokens, pid, concurrency, hold_s, probe_http))


# ---------------------------------------------------------------- commit-to-socket latency


async def _http_post(reader, writer, host, port, path, api_key, body: bytes) -> tuple:
    writer.write((f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                  f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = 0
    for l in lines[1:]:
        if l.lower().startswith("content-length:"):
            length = int(l.split(":", 1)[1])
    payload = await reader.readexactly(length) if length else b""
    return status, payload


async def _latency(host, port, api_key, watchers, samples, retailer, product, seconds, rate,
                   nonce, started) -> dict:
    pending = {}  # transactionId -> future of the frame's arrival time
    conns, tasks = [], []
    frames = {"earning_update": 0, "other": 0}

    async def reader_task(reader, writer):
        try:
            while True:
                op, payload = await read_frame(reader)
                now = time.perf_counter()
                if op == 0x9:
                    writer.write(frame(0xA, payload))
                    continue
                if op == 0x8:
                    return
                if op != 0x1:
                    continue
                ev = json.loads(payload)
                if ev.get("type") != "earning_update":
                    frames["other"] += 1
                    continue
                frames["earning_update"] += 1
                d = ev.get("data") or {}
                fut = pending.get(d.get("transactionId"))
                if fut is not None and d.get("level") == 1 and not fut.done():
                    fut.set_result(now)
        except (asyncio.IncompleteReadError, OSError, asyncio.CancelledError, ValueError):
            return

    for _, tok in watchers:
        r, w = await ws_open(host, port, tok)
        conns.append(w)
        tasks.append(asyncio.create_task(reader_task(r, w)))
    hr, hw = await asyncio.open_connection(host, port)
    if started:
        started()  # the background load starts now, with the sockets open
        await asyncio.sleep(1.0)
    send_to_frame, response_to_frame, http_ms = [], [], []
    missing, bad_status = 0, {}
    interval = 1.0 / rate
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        buyer = samples[i % len(samples)]
        txid = f"ws-{nonce}-{i}"
        i += 1
        cents = 100 + (i * 7727) % 24901
        body = json.dumps({"transactionId": txid, "userId": buyer,
                           "amount": f"{cents // 100}.{cents % 100:02d}",
                           "retailerId": retailer, "productId": product}).encode()
        fut = asyncio.get_running_loop().create_future()
        pending[txid] = fut
        t0 = time.perf_counter()
        status, _ = await _http_post(hr, hw, host, port, "/api/purchase", api_key, body)
        t1 = time.perf_counter()
        http_ms.append((t1 - t0) * 1e3)
        if status != 201:
            bad_status[status] = bad_status.get(status, 0) + 1
            pending.pop(txid, None)
            continue
        try:
            t2 = await asyncio.wait_for(asyncio.shield(fut), 5.0)
            send_to_frame.append((t2 - t0) * 1e3)
            response_to_frame.append((t2 - t1) * 1e3)
        except asyncio.TimeoutError:
            missing += 1
        pending.pop(txid, None)
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - t0)))
    hw.close()
    for w in conns:
        w.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"sockets": len(conns), "sent": i, "created": i - sum(bad_status.values()),
            "received": len(send_to_frame), "missing": missing,
            "bad_status": bad_status, "frames": frames,
            "p50_ms": pct(send_to_frame, 50), "p99_ms": pct(send_to_frame, 99),
            "max_ms": max(send_to_frame) if send_to_frame else None,
            "after_response_p50_ms": pct(response_to_frame, 50),
            "after_response_p99_ms": pct(response_to_frame, 99),
            "http_p50_ms": pct(http_ms, 50), "http_p99_ms": pct(http_ms, 99)}


def commit_latency(host: str, port: int, api_key: str, watchers: list, samples: list,
                   retailer: str, product: str, seconds: float, rate: float, nonce: str,
                   started=None) -> dict:
    """watchers: [(user id, token)] whose sockets are watched; samples: buyer ids whose level-1
    referrer is among the watchers. Once the sockets are open, calls started() (which starts
    the background load) and waits a second; then sends about `rate` purchases a second, one
    at a time, for `seconds`, timing each from its request to the earning_update frame on its
    referrer's socket."""
    return asyncio.run(_latency(host, port, api_key, watchers, samples, retailer, product,
                                seconds, rate, nonce, started))
