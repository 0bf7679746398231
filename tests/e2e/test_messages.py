"""Twilio messages from the outbox (issue 5): an earning of a user with a phone sends one
WhatsApp (or SMS) message through Twilio's Messages API, here a local fake (http.server) that
checks basic auth and the form; users without a phone get none; a per-user hourly cap; the phone
field on sign-up and PATCH /api/me.

"No message" is proved through the outbox: fan-out handles events in id order and moves the
messages cursor in the same transaction, so once the cursor (or a later event's message row) is
past an event, every message row that event was going to get exists; an event with no row is
never sent."""

import base64
import json
import re
import threading
import uuid
from urllib.parse import parse_qs

import pytest

from conftest import _module_server, assert_error, unique_email, wait_until
from moneykit import Shop, txid, verify
from notifykit import Receiver

SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "twilio-auth-token-for-tests"
FROM = "whatsapp:+14155550000"
WAIT_S = 15.0
MESSAGES_PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"


class FakeTwilio(Receiver):
    """Twilio's Messages.json: 401 without the right basic auth, 404 on another path, 400
    without To/From/Body; otherwise 201 (or a status scripted per recipient)."""

    def __init__(self, sid=SID, token=AUTH_TOKEN):
        self.sid, self.token = sid, token
        self.fail = {}  # To -> list of statuses to answer first
        self.lock = threading.Lock()
        super().__init__(status=201, check=self._check)
        self.response_body = json.dumps({"sid": "SM" + uuid.uuid4().hex, "status": "queued"}
                                        ).encode()

    def _check(self, req):
        want = "Basic " + base64.b64encode(f"{self.sid}:{self.token}".encode()).decode()
        if req.headers.get("authorization") != want:
            return 401
        if req.method != "POST" or req.path != f"/2010-04-01/Accounts/{self.sid}/Messages.json":
            return 404
        if not req.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            return 415
        form = form_of(req)
        if not form.get("To") or not form.get("From") or not form.get("Body"):
            return 400
        with self.lock:
            script = self.fail.get(form["To"])
            if script:
                return script.pop(0)
        return None


def form_of(req):
    return {k: v[0] for k, v in parse_qs(req.body.decode()).items()}


@pytest.fixture(scope="module")
def twilio():
    fake = FakeTwilio()
    yield fake
    fake.close()


def twilio_env(fake, **extra):
    env = {
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM": FROM,
        "TWILIO_API_BASE": fake.url,
        "TALLY_MESSAGES_PER_USER_HOUR": "2",
        "TALLY_WEBHOOK_RETRY_SCHEDULE": "1,1,1",
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def tally(tally_bin, tmp_path_factory, twilio):
    yield from _module_server(tmp_path_factory, twilio_env(twilio))


@pytest.fixture(scope="module")
def shop(tally):
    return Shop(tally)


@pytest.fixture(scope="module", autouse=True)
def verified(tally):
    yield
    verify(tally)


_numbers = iter(range(1000, 10000))


def new_phone():
    return f"+1415555{next(_numbers):04d}"


def signup(t, name, referrer=None, phone=None):
    body = {"name": name, "email": unique_email(name.lower()), "password": "correct horse battery"}
    if referrer:
        body["referralCode"] = referrer["code"]
    if phone is not None:
        body["phone"] = phone
    r = t.post("/api/auth/signup", json=body)
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["user"]["phone"] == (phone or None), b
    return {"id": b["user"]["id"], "token": b["token"], "code": b["user"]["referralCode"],
            "phone": phone}


def buy(shop, user, amount):
    r = shop.purchase({"transactionId": txid("msg"), "userId": user["id"], "amount": amount})
    assert r.status_code == 201, r.text
    return r.json()


def accepted(fake, number):
    """Forms of the messages the fake accepted (2xx) for number."""
    return [form_of(q) for q in fake.snapshot()
            if q.status in (200, 201) and form_of(q).get("To") == "whatsapp:" + number]


def wait_accepted(fake, number, n):
    fake.wait_for(lambda rs: len(accepted(fake, number)) >= n, WAIT_S,
                  f"{n} message(s) to {number}")
    return accepted(fake, number)


def message_rows(t, user_id):
    return t.sql("SELECT d.status, d.attempts, COALESCE(d.last_error, ''), e.type"
                 " FROM deliveries d JOIN events e ON e.id = d.event_id"
                 " WHERE d.kind = 'message' AND d.target_id = ? ORDER BY d.event_id", (user_id,))


def settled_rows(t, user_id):
    """message_rows once none is pending (a result is recorded just after the fake answers)."""

    def settled():
        rows = message_rows(t, user_id)
        return rows if rows and all(r[0] != "pending" for r in rows) else None

    return wait_until(settled, timeout=WAIT_S, what=f"settled message rows of {user_id}")


def wait_fanned_out(t, event_id):
    """Until the messages cursor has passed event_id (its message rows, if any, exist)."""
    wait_until(lambda: (t.sql("SELECT CAST(value AS INTEGER) FROM meta"
                              " WHERE key = 'messages_cursor'") or [(0,)])[0][0] >= event_id,
               timeout=WAIT_S, what=f"message fan-out past event {event_id}")


def newest_event(t):
    return t.sql("SELECT MAX(id) FROM events")[0][0]


# ---- messages ----


def test_each_earning_of_a_user_with_a_phone_sends_one_whatsapp(tally, shop, twilio):
    x = signup(tally, "X", phone=new_phone())
    y = signup(tally, "Y", referrer=x, phone=new_phone())
    z = signup(tally, "Z", referrer=y)
    p = buy(shop, z, "100.00")
    assert [c["amount"] for c in p["commissions"]] == ["5.00", "1.00"]
    my = wait_accepted(twilio, y["phone"], 1)
    mx = wait_accepted(twilio, x["phone"], 1)
    for form, number, amount, level in ((my[0], y["phone"], "5.00", 1),
                                        (mx[0], x["phone"], "1.00", 2)):
        assert form["To"] == "whatsapp:" + number
        assert form["From"] == FROM
        assert amount in form["Body"], form
        assert f"level {level}" in form["Body"], form
    # every request carried the right credentials and path (the fake answers 401/404 if not)
    assert all(q.status == 201 for q in twilio.snapshot()), twilio.snapshot()
    for q in twilio.snapshot():
        assert q.path == MESSAGES_PATH
    # exactly one each: one row per earning, sent once
    wait_fanned_out(tally, newest_event(tally))
    assert settled_rows(tally, y["id"]) == [("succeeded", 1, "", "earning_update")]
    assert settled_rows(tally, x["id"]) == [("succeeded", 1, "", "earning_update")]
    assert len(accepted(twilio, y["phone"])) == 1 and len(accepted(twilio, x["phone"])) == 1
    # z, the buyer, earned nothing and has no phone: nothing
    assert message_rows(tally, z["id"]) == []


def test_a_referrer_without_a_phone_gets_no_message(tally, shop, twilio):
    p_ = signup(tally, "P", phone=new_phone())
    q = signup(tally, "Q", referrer=p_)  # no phone
    r = signup(tally, "R", referrer=q)
    buy(shop, r, "50.00")
    # P's level-2 message: its row was written after Q's level-1 event was handled
    forms = wait_accepted(twilio, p_["phone"], 1)
    assert "0.50" in forms[0]["Body"]
    assert message_rows(tally, q["id"]) == []
    assert tally.sql("SELECT COUNT(*) FROM events WHERE user_id = ? AND type = 'earning_update'",
                     (q["id"],)) == [(1,)]


def test_hourly_cap_per_user(tally, shop, twilio):
    d = signup(tally, "D", phone=new_phone())
    e = signup(tally, "E", referrer=d)
    for amount in ("10.00", "20.00", "30.00"):
        buy(shop, e, amount)
    wait_fanned_out(tally, newest_event(tally))
    forms = wait_accepted(twilio, d["phone"], 2)
    rows = settled_rows(tally, d["id"])
    assert [r[0] for r in rows[:2]] == ["succeeded", "succeeded"], rows
    assert rows[2][0] == "skipped" and rows[2][1] == 0 and "cap" in rows[2][2], rows
    assert len(rows) == 3
    # the first two earnings (0.50 and 1.00), sent in either order; not the third (1.50)
    assert sorted(re.search(r"\d+\.\d\d", f["Body"]).group() for f in forms) == [
        "0.50", "1.00"], forms
    # a skipped row is never sent
    assert len(accepted(twilio, d["phone"])) == 2
    assert all("1.50" not in f["Body"] for f in accepted(twilio, d["phone"]))


def test_twilio_errors_retry_like_webhooks(tally, shop, twilio):
    f = signup(tally, "F", phone=new_phone())
    j = signup(tally, "J", referrer=f)
    # a 500 is retried on the schedule: the same message twice
    twilio.fail["whatsapp:" + f["phone"]] = [500]
    buy(shop, j, "40.00")
    forms = wait_accepted(twilio, f["phone"], 1)
    sent = [form_of(q) for q in twilio.snapshot() if form_of(q).get("To") ==
            "whatsapp:" + f["phone"]]
    assert len(sent) == 2 and sent[0] == sent[1], sent
    assert "2.00" in forms[0]["Body"]
    wait_until(lambda: message_rows(tally, f["id"]) == [("succeeded", 2, "", "earning_update")],
               timeout=WAIT_S, what="the message row to succeed on its second attempt")
    # a 400 (Twilio refusing the message itself) is not retried
    twilio.fail["whatsapp:" + f["phone"]] = [400]
    buy(shop, j, "60.00")
    wait_until(lambda: len(message_rows(tally, f["id"])) == 2 and
               message_rows(tally, f["id"])[1][0] == "failed", timeout=WAIT_S,
               what="the refused message to fail")
    rows = message_rows(tally, f["id"])
    assert rows[1][1] == 1 and "400" in rows[1][2], rows
    sent = [q for q in twilio.snapshot() if form_of(q).get("To") == "whatsapp:" + f["phone"]]
    assert [q.status for q in sent] == [500, 201, 400], sent


@pytest.mark.parametrize(
    "var, value, want_from, to_prefix",
    [
        ("TWILIO_FROM", "+14155550000", "+14155550000", ""),  # SMS
        ("TWILIO_WHATSAPP_FROM", "+14155550000", "whatsapp:+14155550000", "whatsapp:"),
    ],
    ids=["sms", "whatsapp-from"],
)
def test_sender_variants(start_tally, var, value, want_from, to_prefix):
    with FakeTwilio() as fake:
        env = twilio_env(fake, TWILIO_FROM=None)
        env[var] = value
        t = start_tally(env=env)
        shop = Shop(t)
        a = signup(t, "A", phone=new_phone())
        b = signup(t, "B", referrer=a)
        buy(shop, b, "100.00")
        reqs = fake.wait_count(1, WAIT_S)
        form = form_of(reqs[0])
        assert reqs[0].status == 201, reqs
        assert form["To"] == to_prefix + a["phone"] and form["From"] == want_from, form
        assert "5.00" in form["Body"]
        t.stop()
        verify(t)


def test_no_message_while_twilio_is_off_and_none_for_old_earnings_once_on(start_tally):
    """Without a Twilio token no message is sent; configured later (restart on the same
    database), earnings from before are not messaged: only new ones."""
    with FakeTwilio() as fake:
        env = twilio_env(fake)
        env["TWILIO_AUTH_TOKEN"] = None  # no token: messages are off
        t = start_tally(env=env)
        shop = Shop(t)
        a = signup(t, "A", phone=new_phone())
        b = signup(t, "B", referrer=a)
        buy(shop, b, "100.00")
        buy(shop, b, "20.00")
        t.stop()
        assert t.sql("SELECT COUNT(*) FROM deliveries WHERE kind = 'message'") == [(0,)]
        assert fake.snapshot() == []
        t.env = twilio_env(fake)
        t.start()
        buy(shop, b, "30.00")
        forms = wait_accepted(fake, a["phone"], 1)
        assert "1.50" in forms[0]["Body"], forms
        # the old earnings (5.00 and 1.00) got no row, so they are never sent
        assert [r[0] for r in settled_rows(t, a["id"])] == ["succeeded"]
        assert len(fake.snapshot()) == 1, fake.snapshot()
        t.stop()
        verify(t)


# ---- the phone field ----


@pytest.mark.parametrize("bad", ["14155550100", "+0155550100", "+1415", "+1 415 555 0100",
                                 "+14155550100x", "+1234567890123456", 14155550100, True, ""])
def test_patch_me_phone_validation(tally, bad):
    u = signup(tally, "V")
    r = tally.request("PATCH", "/api/me", json={"phone": bad}, token=u["token"])
    assert_error(r, 400, "validation_error", "phone")
    assert tally.get("/api/me", token=u["token"]).json()["phone"] is None


@pytest.mark.parametrize("bad", ["14155550100", "+0155550100", "+1 415 555 0100", 5])
def test_signup_phone_validation(tally, bad):
    body = {"name": "W", "email": unique_email("w"), "password": "correct horse battery",
            "phone": bad}
    r = tally.post("/api/auth/signup", json=body)
    assert_error(r, 400, "validation_error", "phone")


def test_patch_me_sets_and_clears_the_phone(tally, shop, twilio):
    g = signup(tally, "G")
    h = signup(tally, "H", referrer=g)
    phone = new_phone()
    r = tally.request("PATCH", "/api/me", json={"phone": phone}, token=g["token"])
    assert r.status_code == 200 and r.json()["phone"] == phone, r.text
    assert tally.get("/api/me", token=g["token"]).json()["phone"] == phone
    # a name-only update keeps the phone
    r = tally.request("PATCH", "/api/me", json={"name": "Gee"}, token=g["token"])
    assert r.status_code == 200 and r.json()["phone"] == phone and r.json()["name"] == "Gee"
    buy(shop, h, "100.00")
    forms = wait_accepted(twilio, phone, 1)
    assert "5.00" in forms[0]["Body"]
    # null clears it: later earnings send nothing
    r = tally.request("PATCH", "/api/me", json={"phone": None}, token=g["token"])
    assert r.status_code == 200 and r.json()["phone"] is None, r.text
    assert tally.get("/api/me", token=g["token"]).json()["phone"] is None
    buy(shop, h, "10.00")
    wait_fanned_out(tally, newest_event(tally))
    assert [row[0] for row in settled_rows(tally, g["id"])] == ["succeeded"]
    assert len(accepted(twilio, phone)) == 1
    # PATCH needs a user token
    assert_error(tally.request("PATCH", "/api/me", json={"phone": phone}), 401, "unauthorized")
