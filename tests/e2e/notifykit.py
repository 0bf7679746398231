"""Helpers shared by test_ws.py, test_webhooks.py and test_messages.py (issue 5: events pushed
over WebSockets, signed webhooks and Twilio messages, all from the events outbox).

  Receiver       a local HTTP server (http.server in a thread, 127.0.0.1, a free port) that
                 records every request and answers what the test tells it to: a fixed status,
                 a script of statuses, or "block until released"; waits are on a condition
                 variable with a deadline, never sleeps
  ws_connect     open a WebSocket to a tally with websocket-client (python3-websocket)
  ws_frames      read text frames as JSON until a predicate holds (deadline: socket timeout)
  ws_silent      assert that no text frame arrives within a short window
  verify_signature  Standard Webhooks signature check with Python's hmac, independent of tally
  cpu_seconds    user+system CPU time of a process, from /proc
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import threading
import time

import websocket

DEFAULT_WAIT_S = 10.0


# ---- a local HTTP receiver (webhooks, fake Twilio) ----


class Request:
    """One request the receiver got."""

    def __init__(self, method, path, headers, body, status):
        self.method = method
        self.path = path
        self.headers = headers  # a dict with lower-cased names
        self.body = body  # bytes
        self.status = status  # what the receiver answered (None when it never answered)
        self.at = time.monotonic()

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.method} {self.path} -> {self.status} {self.body[:200]!r}>"


class Receiver:
    """A threaded HTTP server on 127.0.0.1 that records requests.

    answer(req) decides the status; by default `status` (200). `script` is a list of statuses
    used one per request before falling back to `status`. With `block` set, each request waits
    (without answering) until release() is called or its deadline passes."""

    def __init__(self, status=200, check=None):
        self.status = status
        self.script = []
        self.check = check  # optional fn(Request) -> status override (e.g. a 401 for bad auth)
        self.requests = []
        self.cv = threading.Condition()
        self.block = False
        self.released = threading.Event()
        self.response_body = b"{}"
        self.extra_headers = {}
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest's output clean
                pass

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                req = Request(self.command, self.path, headers, body, None)
                with receiver.cv:
                    status = receiver.script.pop(0) if receiver.script else receiver.status
                    blocking = receiver.block
                    receiver.requests.append(req)
                    receiver.cv.notify_all()
                if receiver.check is not None:
                    status = receiver.check(req) or status
                if blocking:
                    receiver.released.wait(timeout=60)
                req.status = status
                payload = receiver.response_body
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in receiver.extra_headers.items():
                        self.send_header(k, v)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client is gone (a killed tally): nothing to answer
                self.close_connection = True

            do_POST = do_GET = do_PUT = _handle

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def release(self):
        """Let blocked requests answer, and stop blocking new ones."""
        with self.cv:
            self.block = False
        self.released.set()

    def snapshot(self):
        with self.cv:
            return list(self.requests)

    def wait_for(self, predicate, timeout=DEFAULT_WAIT_S, what="requests"):
        """Wait until predicate(list of requests) is truthy; return its value."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                value = predicate(list(self.requests))
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {what}; got {self.requests!r}"
                    )
                self.cv.wait(left)

    def wait_count(self, n, timeout=DEFAULT_WAIT_S, what=None):
        return self.wait_for(lambda rs: rs if len(rs) >= n else None, timeout,
                             what or f"{n} request(s)")


# ---- Standard Webhooks ----


def expected_signature(secret, msg_id, timestamp, body):
    """v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>, key = base64 of secret after whsec_."""
    assert secret.startswith("whsec_"), secret
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify_signature(secret, req, tolerance_s=300):
    """Check a webhook request like a Standard Webhooks receiver: the three headers, a fresh
    timestamp and one matching v1 signature (compared in constant time). Returns the body."""
    msg_id = req.headers.get("webhook-id")
    ts = req.headers.get("webhook-timestamp")
    sigs = req.headers.get("webhook-signature")
    assert msg_id and ts and sigs, req.headers
    assert ts.isdigit(), ts
    assert abs(int(ts) - time.time()) <= tolerance_s, (ts, time.time())
    want = expected_signature(secret, msg_id, ts, req.body)
    assert any(hmac.compare_digest(s, want) for s in sigs.split(" ")), (sigs, want)
    return req.json()


# ---- WebSockets ----


def ws_url(t, query=""):
    return t.url.replace("http://", "ws://", 1) + "/ws" + (("?" + query) if query else "")


def ws_connect(t, token=None, query="", timeout=5.0, **options):
    """Open /ws on t; token goes in the Authorization header when given."""
    headers = [f"Authorization: Bearer {token}"] if token is not None else []
    return websocket.create_connection(ws_url(t, query), timeout=timeout, header=headers,
                                       **options)


def ws_frames(ws, until, timeout=DEFAULT_WAIT_S):
    """Read text frames (parsed JSON) until until(frames) is truthy; return the frames. Fails
    when the deadline passes first."""
    frames = []
    deadline = time.monotonic() + timeout
    old = ws.gettimeout()
    try:
        while not until(frames):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s; frames so far: {frames}")
            ws.settimeout(left)
            try:
                opcode, data = ws.recv_data()
            except websocket.WebSocketTimeoutException:
                raise AssertionError(f"timed out after {timeout}s; frames so far: {frames}")
            assert opcode == websocket.ABNF.OPCODE_TEXT, (opcode, data)
            frames.append(json.loads(data))
    finally:
        ws.settimeout(old)
    return frames


def ws_silent(ws, window=0.5):
    """Assert that no text frame arrives within window seconds (the socket's timeout is the
    deadline: this waits on "a frame arrived", it does not sleep)."""
    old = ws.gettimeout()
    ws.settimeout(window)
    try:
        opcode, data = ws.recv_data()
    except websocket.WebSocketTimeoutException:
        return
    finally:
        ws.settimeout(old)
    raise AssertionError(f"expected no frame, got opcode {opcode}: {data!r}")


def frames_for(frames, tx, type_="earning_update"):
    return [f for f in frames if f["type"] == type_ and f["data"].get("transactionId") == tx]


# ---- processes ----


def cpu_seconds(pid):
    """User + system CPU seconds a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
