"""GET /ws (issue 5, seed 001): a referrer's socket receives earning_update as the purchase
commits, never another user's events; ?since=SEQ replays; the handshake authenticates and
checks the Origin; oversized client messages close with 1009; many sockets share one thread;
SIGTERM with sockets open exits cleanly.

Every wait is on a condition with a deadline (a frame arriving, a socket timeout)."""

import re
import time
import uuid

import pytest
import websocket

from conftest import assert_error, make_jwt
from moneykit import Shop, txid, verify
from notifykit import frames_for, ws_connect, ws_frames, ws_silent, ws_url

FRAME_KEYS = {"type", "id", "seq", "createdAt", "data"}
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PUSH_DEADLINE_S = 1.0  # the issue: within a second of the commit


@pytest.fixture(scope="module")
def shop(tally):
    return Shop(tally)


@pytest.fixture(scope="module")
def chain(tally, shop):
    """A <- B <- C, plus a stranger S outside the chain. C's first purchase (which converts
    C's referral and grants B a reward) is made here, so later purchases write exactly two
    events: earning_update for B (level 1) and for A (level 2)."""
    a, b, c = shop.chain(3)
    s = shop.user("S")
    shop.buy(c, "1.00")
    return {"A": a, "B": b, "C": c, "S": s}


@pytest.fixture(scope="module", autouse=True)
def verified(tally):
    yield
    verify(tally)


def buy(shop, user, amount="100.00", tx=None):
    """POST /api/purchase with the admin key; returns (transactionId, monotonic time of 201)."""
    tx = tx or txid("ws")
    r = shop.purchase({"transactionId": tx, "userId": user["id"], "amount": amount})
    assert r.status_code == 201, r.text
    return tx, time.monotonic()


def check_frame(f):
    assert set(f) == FRAME_KEYS, f
    assert isinstance(f["type"], str) and f["type"], f
    assert isinstance(f["id"], int) and isinstance(f["seq"], int) and f["seq"] > 0, f
    assert ISO_RE.match(f["createdAt"]), f
    assert isinstance(f["data"], dict), f


def one_earning(ws, tx, timeout=5.0):
    frames = ws_frames(ws, lambda fs: frames_for(fs, tx), timeout=timeout)
    for f in frames:
        check_frame(f)
    got = frames_for(frames, tx)
    assert len(got) == 1, frames
    return got[0], frames


# ---- delivery to the right sockets ----


def test_referrers_receive_earning_update_and_a_stranger_nothing(tally, shop, chain):
    a, b, c, s = chain["A"], chain["B"], chain["C"], chain["S"]
    wa, wb, ws_ = ws_connect(tally, a["token"]), ws_connect(tally, b["token"]), ws_connect(
        tally, s["token"])
    try:
        assert wb.getstatus() == 101
        tx, t_201 = buy(shop, c, "100.00")
        fb, _ = one_earning(wb, tx)
        latency = time.monotonic() - t_201
        assert latency < PUSH_DEADLINE_S, f"B's frame arrived {latency:.3f}s after the 201"
        assert fb["type"] == "earning_update"
        assert fb["data"]["from"] == c["id"]
        assert fb["data"]["level"] == 1
        assert fb["data"]["amount"] == "5.00"
        fa, _ = one_earning(wa, tx)
        assert time.monotonic() - t_201 < PUSH_DEADLINE_S
        assert fa["data"] == {**fa["data"], "from": c["id"], "level": 2, "amount": "1.00"}
        # both events are in the database under their own user, with the frame's id
        rows = tally.sql("SELECT id, user_id FROM events WHERE id IN (?, ?) ORDER BY id",
                         (fb["id"], fa["id"]))
        assert rows == sorted([(fb["id"], b["id"]), (fa["id"], a["id"])]), rows
        # nothing for the stranger, and nothing more for B (no other user's events)
        ws_silent(ws_, 0.5)
        ws_silent(wb, 0.1)
    finally:
        for w in (wa, wb, ws_):
            w.close()


def test_every_socket_of_the_user_receives_the_event(tally, shop, chain):
    b = chain["B"]
    socks = [ws_connect(tally, b["token"]) for _ in range(3)]
    try:
        tx, _ = buy(shop, chain["C"], "40.00")
        got = [one_earning(w, tx)[0] for w in socks]
        assert len({(f["id"], f["seq"]) for f in got}) == 1, got  # the same event on each
        assert got[0]["data"]["amount"] == "2.00"
    finally:
        for w in socks:
            w.close()


def test_frames_carry_increasing_seq(tally, shop, chain):
    b, c = chain["B"], chain["C"]
    wb = ws_connect(tally, b["token"])
    try:
        txs = [buy(shop, c, f"{10 + i}.00")[0] for i in range(3)]
        frames = ws_frames(wb, lambda fs: all(frames_for(fs, t) for t in txs))
        for f in frames:
            check_frame(f)
        seqs = [f["seq"] for f in frames]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
        got = [f["data"]["transactionId"] for f in frames]
        assert got == txs, frames  # in commit order, one each
        assert [f["data"]["amount"] for f in frames] == ["0.50", "0.55", "0.60"]
    finally:
        wb.close()


def test_since_replays_exactly_the_missed_events(tally, shop, chain):
    b, c = chain["B"], chain["C"]
    wb = ws_connect(tally, b["token"])
    tx0, _ = buy(shop, c, "20.00")
    f0, _ = one_earning(wb, tx0)
    last_seq = f0["seq"]
    wb.close()
    # Missed while disconnected: two purchases (each also pays A, whose events B must not get).
    missed = [buy(shop, c, amt)[0] for amt in ("30.00", "40.00")]
    wb = ws_connect(tally, b["token"], query=f"since={last_seq}")
    try:
        frames = ws_frames(wb, lambda fs: len(fs) >= 2)
        assert [f["data"]["transactionId"] for f in frames] == missed, frames
        assert [f["data"]["amount"] for f in frames] == ["1.50", "2.00"]
        assert all(f["seq"] > last_seq for f in frames)
        ws_silent(wb, 0.3)  # exactly the missed ones: no repeat of tx0, nothing else
        # live events continue after the replay, without duplicates
        tx3, _ = buy(shop, c, "60.00")
        live = ws_frames(wb, lambda fs: len(fs) >= 1)
        assert [f["data"]["transactionId"] for f in live] == [tx3], live
        assert live[0]["seq"] > frames[-1]["seq"]
        ws_silent(wb, 0.2)
    finally:
        wb.close()


def test_since_zero_replays_the_users_whole_history(tally, shop, chain):
    b = chain["B"]
    rows = tally.sql("SELECT id, type FROM events WHERE user_id = ? ORDER BY id", (b["id"],))
    assert len(rows) >= 3, rows  # referral_tracked, referral_converted, reward_granted, ...
    wb = ws_connect(tally, b["token"], query="since=0")
    try:
        frames = ws_frames(wb, lambda fs: len(fs) >= len(rows))
        assert [(f["seq"], f["type"]) for f in frames] == rows
        ws_silent(wb, 0.2)
    finally:
        wb.close()


@pytest.mark.parametrize("since", ["abc", "-1", "1.5", ""])
def test_bad_since_is_400(tally, chain, since):
    r = tally.get(f"/ws?since={since}", token=chain["B"]["token"], headers=upgrade_headers())
    assert_error(r, 400, "validation_error", "since")


def test_refund_events_reach_referrer_and_buyer(tally, shop, chain):
    b, c = chain["B"], chain["C"]
    wb, wc = ws_connect(tally, b["token"]), ws_connect(tally, c["token"])
    try:
        tx, _ = buy(shop, c, "100.00")
        one_earning(wb, tx)
        r = shop.refund({"transactionId": tx, "amount": "50.00"})
        assert r.status_code in (200, 201), r.text
        fb = ws_frames(wb, lambda fs: [f for f in fs if f["type"] == "purchase_refunded"])[-1]
        assert fb["data"]["level"] == 1 and fb["data"]["amount"] == "-2.50", fb
        fc = ws_frames(wc, lambda fs: [f for f in fs if f["type"] == "purchase_refunded"])[-1]
        assert fc["data"]["amount"] == "50.00" and "level" not in fc["data"], fc
        assert fb["data"]["refundId"] == fc["data"]["refundId"]
        check_frame(fb)
        check_frame(fc)
    finally:
        wb.close()
        wc.close()


def test_events_written_by_another_process_arrive_within_the_tick(tally, chain):
    """tally jobs run (another process) writes events the server never hears committed: the hub
    polls the events table every second. Simulated by writing the row with SQL."""
    b = chain["B"]
    wb = ws_connect(tally, b["token"])
    try:
        ws_silent(wb, 0.1)  # registered; nothing pending
        marker = uuid.uuid4().hex
        tally.sql("INSERT INTO events (user_id, type, data, created_at) VALUES"
                  " (?, 'bonus_paid', ?, ?)",
                  (b["id"], '{"groupId":"%s","amount":"1.00","amountCents":100}' % marker,
                   int(time.time() * 1000)))
        t0 = time.monotonic()
        f = ws_frames(wb, lambda fs: fs, timeout=5)[0]
        assert f["type"] == "bonus_paid" and f["data"]["groupId"] == marker, f
        assert time.monotonic() - t0 < 2.5
    finally:
        wb.close()


# ---- the handshake ----


def upgrade_headers(**extra):
    h = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    h.update(extra)
    return h


def server_secret(tally):
    return tally.sql("SELECT value FROM meta WHERE key = 'jwt_secret'")[0][0]


def mint(tally, sub, exp_in):
    now = int(time.time())
    return make_jwt({"sub": sub, "iss": "tally", "iat": now - 10, "exp": now + exp_in},
                    secret=server_secret(tally))


@pytest.mark.parametrize(
    "case", ["missing", "garbage", "expired", "other-secret", "unknown-user", "bad-scheme"]
)
def test_handshake_without_a_valid_token_is_401_before_the_upgrade(tally, chain, case):
    b = chain["B"]
    headers = []
    if case == "garbage":
        headers = ["Authorization: Bearer not.a.token"]
    elif case == "expired":
        headers = [f"Authorization: Bearer {mint(tally, b['id'], -60)}"]
    elif case == "other-secret":
        now = int(time.time())
        tok = make_jwt({"sub": b["id"], "iss": "tally", "iat": now, "exp": now + 300},
                       secret="another-secret-0123456789abcdef-xyz")
        headers = [f"Authorization: Bearer {tok}"]
    elif case == "unknown-user":
        headers = [f"Authorization: Bearer {mint(tally, str(uuid.uuid4()), 300)}"]
    elif case == "bad-scheme":
        headers = [f"Authorization: Basic {b['token']}"]
    with pytest.raises(websocket.WebSocketBadStatusException) as ei:
        websocket.create_connection(ws_url(tally), timeout=5, header=headers)
    assert ei.value.status_code == 401
    # the same with plain HTTP: tally's error body, and no switch of protocols
    h = upgrade_headers()
    for line in headers:
        k, v = line.split(": ", 1)
        h[k] = v
    r = tally.get("/ws", headers=h)
    assert_error(r, 401, "unauthorized")
    assert "Sec-WebSocket-Accept" not in r.headers
    assert r.headers.get("Upgrade") is None


def test_an_api_key_cannot_open_a_socket(tally, shop):
    with pytest.raises(websocket.WebSocketBadStatusException) as ei:
        ws_connect(tally, shop.admin)
    assert ei.value.status_code == 401


def test_a_self_minted_valid_token_is_accepted(tally, shop, chain):
    """The control for the 401 cases: the same minting with a future exp opens the socket."""
    wb = ws_connect(tally, mint(tally, chain["B"]["id"], 300))
    try:
        tx, _ = buy(shop, chain["C"], "70.00")
        f, _ = one_earning(wb, tx)
        assert f["data"]["amount"] == "3.50"
    finally:
        wb.close()


def test_token_in_query_parameter(tally, shop, chain):
    b = chain["B"]
    wb = websocket.create_connection(ws_url(tally, f"token={b['token']}"), timeout=5)
    try:
        tx, _ = buy(shop, chain["C"], "80.00")
        f, _ = one_earning(wb, tx)
        assert f["data"]["level"] == 1 and f["data"]["amount"] == "4.00"
    finally:
        wb.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as ei:
        websocket.create_connection(ws_url(tally, "token=nope"), timeout=5)
    assert ei.value.status_code == 401


def test_not_a_websocket_request_is_refused(tally, chain):
    r = tally.get("/ws", token=chain["B"]["token"])
    assert r.status_code == 400, r.text
    r = tally.get("/ws", token=chain["B"]["token"],
                  headers=upgrade_headers(**{"Sec-WebSocket-Version": "8"}))
    assert r.status_code == 400, r.text
    r = tally.get("/ws", token=chain["B"]["token"],
                  headers=upgrade_headers(**{"Sec-WebSocket-Key": "short"}))
    assert r.status_code == 400, r.text


def test_origin_from_another_host_is_403(tally, chain):
    token = chain["B"]["token"]
    with pytest.raises(websocket.WebSocketBadStatusException) as ei:
        ws_connect(tally, token, origin="https://evil.example.com")
    assert ei.value.status_code == 403
    r = tally.get("/ws", token=token, headers=upgrade_headers(Origin="https://evil.example.com"))
    assert_error(r, 403, "forbidden")
    # the same host as the request's Host is a browser on tally's own pages: allowed
    w = ws_connect(tally, token, origin=f"http://127.0.0.1:{tally.port}")
    w.close()
    # no Origin at all: not a browser, the token decides
    w = ws_connect(tally, token, suppress_origin=True)
    w.close()


def test_origin_listed_in_TALLY_WS_ORIGINS_is_allowed(start_tally):
    t = start_tally(env={"TALLY_WS_ORIGINS": "https://app.example.com, https://admin.example.com"})
    shop = Shop(t)
    a, b = shop.chain(2)
    for origin in ("https://app.example.com", "https://admin.example.com"):
        w = ws_connect(t, b["token"], origin=origin)
        w.close()
    for origin in ("https://evil.example.com", f"http://127.0.0.1:{t.port}",
                   "https://app.example.com.evil.com"):
        with pytest.raises(websocket.WebSocketBadStatusException) as ei:
            ws_connect(t, b["token"], origin=origin)
        assert ei.value.status_code == 403, origin
    w = ws_connect(t, a["token"], origin="https://app.example.com")
    try:
        tx, _ = buy(shop, b, "10.00")
        f, _ = one_earning(w, tx)
        assert f["data"]["from"] == b["id"] and f["data"]["amount"] == "0.50"
    finally:
        w.close()
    verify(t)


# ---- frames from the client ----


def close_code(ws, timeout=5.0):
    """Read until the server's close frame; return its status code."""
    deadline = time.monotonic() + timeout
    while True:
        ws.settimeout(max(0.01, deadline - time.monotonic()))
        opcode, frame = ws.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            assert len(frame.data) >= 2, frame.data
            return int.from_bytes(frame.data[:2], "big")


def test_client_message_over_4096_bytes_closes_with_1009(tally, shop, chain):
    b = chain["B"]
    # 4096 bytes is allowed: the socket stays open and still gets events
    w = ws_connect(tally, b["token"])
    try:
        w.send("x" * 4096)
        w.ping("still there?")
        opcode, frame = w.recv_data_frame(True)
        assert opcode == websocket.ABNF.OPCODE_PONG and frame.data == b"still there?"
        tx, _ = buy(shop, chain["C"], "90.00")
        one_earning(w, tx)
    finally:
        w.close()
    # one byte more: closed with 1009 (message too big)
    w = ws_connect(tally, b["token"])
    try:
        w.send("x" * 4097)
        assert close_code(w) == 1009
    finally:
        w.shutdown()
    # a fragmented message whose parts add up to more than the cap: 1009 too
    w = ws_connect(tally, b["token"])
    try:
        w.send_frame(websocket.ABNF.create_frame("y" * 3000, websocket.ABNF.OPCODE_TEXT, fin=0))
        w.send_frame(websocket.ABNF.create_frame("y" * 3000, websocket.ABNF.OPCODE_CONT, fin=1))
        assert close_code(w) == 1009
    finally:
        w.shutdown()


def test_client_close_is_answered_with_a_close_frame(tally, chain):
    w = ws_connect(tally, chain["S"]["token"])
    try:
        w.send_close(1000, b"bye")
        assert close_code(w) == 1000
    finally:
        w.shutdown()


def test_ping_gets_pong(tally, chain):
    w = ws_connect(tally, chain["S"]["token"])
    try:
        w.ping(b"abc")
        opcode, frame = w.recv_data_frame(True)
        assert opcode == websocket.ABNF.OPCODE_PONG and frame.data == b"abc"
    finally:
        w.close()


# ---- many sockets, shutdown ----


def test_200_sockets_stay_connected_and_the_right_one_gets_its_event(tally, shop, chain):
    s, b = chain["S"], chain["B"]
    socks = []
    try:
        for _ in range(199):
            socks.append(ws_connect(tally, s["token"], timeout=10))
        target = ws_connect(tally, b["token"], timeout=10)
        socks.append(target)
        tx, t_201 = buy(shop, chain["C"], "100.00")
        f, _ = one_earning(target, tx)
        assert time.monotonic() - t_201 < PUSH_DEADLINE_S * 2
        assert f["data"]["amount"] == "5.00"
        # every socket is still open: each answers a ping, and the stranger's got no frame
        for i, w in enumerate(socks):
            w.ping(str(i))
        for i, w in enumerate(socks):
            w.settimeout(5)
            opcode, frame = w.recv_data_frame(True)
            assert (opcode, frame.data) == (websocket.ABNF.OPCODE_PONG, str(i).encode()), i
    finally:
        for w in socks:
            w.close()


def test_sigterm_with_sockets_open_exits_0(start_tally):
    t = start_tally()
    shop = Shop(t)
    a, b = shop.chain(2)
    socks = [ws_connect(t, a["token"]) for _ in range(5)] + [ws_connect(t, b["token"])]
    tx, _ = buy(shop, b, "10.00")
    one_earning(socks[0], tx)
    assert t.stop() == 0  # conftest: exit 0 and no sanitizer report
    for w in socks:
        # the server went away: after any frames already sent, a close frame or the end of
        # the connection (the socket's timeout is the deadline)
        w.settimeout(5)
        try:
            while True:
                opcode, _ = w.recv_data_frame(True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
                assert opcode == websocket.ABNF.OPCODE_TEXT, opcode
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            pass
        w.shutdown()
    verify(t)
