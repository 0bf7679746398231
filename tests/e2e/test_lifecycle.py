"""Process lifecycle: graceful shutdown with requests in flight, and slow clients
(issue 2, "Build and run" and "HTTP")."""

import re
import signal
import socket
import threading
import time

import pytest
import requests

from conftest import PASSWORD, unique_email, wait_until


def scrape(t):
    return requests.get(t.url + "/metrics", timeout=5).text


def gauge(text, name):
    m = re.search(rf"^{name} (\d+)$", text, re.M)
    return int(m.group(1)) if m else 0


def signups_done(text):
    m = re.search(r'^tally_http_requests_total\{method="POST",route="/api/auth/signup",'
                  r'status="201"\} (\d+)$', text, re.M)
    return int(m.group(1)) if m else 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_finishes_requests_in_flight(start_tally, sig):
    # One hashing thread: eight sign-ups queue for ~1 s of Argon2id, so they are in flight
    # when the signal arrives.
    t = start_tally(env={"TALLY_HASH_THREADS": "1"})
    n = 8
    emails = [unique_email("inflight") for _ in range(n)]
    results = [None] * n

    def worker(i):
        try:
            r = requests.post(
                t.url + "/api/auth/signup",
                json={"name": f"U{i}", "email": emails[i], "password": PASSWORD},
                timeout=30,
            )
            results[i] = r.status_code
        except requests.RequestException as exc:
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()

    # Every sign-up has reached the server: in flight (minus this scrape) or already answered.
    def all_arrived():
        text = scrape(t)
        in_flight = gauge(text, "tally_http_in_flight") - 1
        return (in_flight,) if in_flight + signups_done(text) >= n else None

    (in_flight,) = wait_until(all_arrived, timeout=20, what="all sign-ups to reach the server")
    t.proc.send_signal(sig)
    assert in_flight >= 2, "the premise: sign-ups are still in flight when the signal comes"
    for th in threads:
        th.join(timeout=30)
    assert not any(th.is_alive() for th in threads)
    assert results == [201] * n, results
    t.stop()  # waits for the exit and checks code 0 and a clean stderr
    assert "stopped cleanly" in t.log()
    # Every answered sign-up was committed.
    assert t.sql("SELECT COUNT(*) FROM users")[0][0] == n


def test_stopped_server_refuses_connections(start_tally):
    t = start_tally()
    port = t.port
    t.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def _closed_within(sock, timeout):
    """Seconds until the peer closes sock, or None if it is still open after timeout."""
    sock.settimeout(timeout)
    start = time.monotonic()
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                break
    except ConnectionResetError:
        pass
    except socket.timeout:
        return None
    return time.monotonic() - start


@pytest.fixture
def quick_timeout_server(start_tally):
    return start_tally(env={"TALLY_CONNECTION_TIMEOUT_SECONDS": "1"})


@pytest.mark.parametrize(
    "partial",
    [
        b"",  # connects and says nothing
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n",  # headers never finish
        b"POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"em",
    ],
    ids=["silent", "partial-headers", "partial-body"],
)
def test_slow_client_is_dropped_after_the_timeout(quick_timeout_server, partial):
    t = quick_timeout_server
    with socket.create_connection(("127.0.0.1", t.port), timeout=5) as slow:
        if partial:
            slow.sendall(partial)
        # The slow client does not hold up anyone else meanwhile.
        assert requests.get(t.url + "/healthz", timeout=5).status_code == 200
        elapsed = _closed_within(slow, timeout=8)
    assert elapsed is not None, "the server kept a slow connection open for 8 s"
    assert elapsed < 5


def test_idle_keep_alive_connection_is_dropped(quick_timeout_server):
    t = quick_timeout_server
    with socket.create_connection(("127.0.0.1", t.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        buf = b""
        while b'"ok"' not in buf:
            chunk = s.recv(4096)
            assert chunk, "closed before answering"
            buf += chunk
        assert buf.startswith(b"HTTP/1.1 200")
        assert _closed_within(s, timeout=8) is not None


def test_stalled_upload_does_not_hold_shutdown(start_tally):
    # A request whose body never finishes is in flight; shutdown waits for it only until the
    # connection timeout drops it.
    t = start_tally(env={"TALLY_CONNECTION_TIMEOUT_SECONDS": "1"})
    with socket.create_connection(("127.0.0.1", t.port), timeout=5) as s:
        s.sendall(b"POST /api/auth/signup HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n{")
        wait_until(lambda: gauge(scrape(t), "tally_http_in_flight") >= 2,
                   what="the stalled request to be in flight")
        started = time.monotonic()
        t.stop(timeout=15)
        assert time.monotonic() - started < 5
