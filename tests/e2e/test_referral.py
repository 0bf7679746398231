"""Referral codes and referrals: generate-code, track, stats and the /r/CODE link (issue 2)."""

import concurrent.futures
import re
import time
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from conftest import assert_error, unique_email, wait_until

CODE_RE = re.compile(r"^[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]+$")
DAY_MS = 86_400_000


def now_ms():
    return int(time.time() * 1000)


def parse_iso_ms(s):
    return int(datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture
def alice(tally):
    return tally.signup(name="Alice", email=unique_email("alice"))


@pytest.fixture
def bob(tally):
    return tally.signup(name="Bob", email=unique_email("bob"))


def track(tally, who, code):
    return tally.post("/api/referral/track", json={"referralCode": code}, token=who["token"])


# ---- generate-code ----


def test_generate_code_conflicts_with_the_code_from_signup(tally, alice):
    r = tally.post("/api/referral/generate-code", json={}, token=alice["token"])
    assert_error(r, 409, "active_code_exists")


def test_generate_code_after_the_old_one_is_deactivated(tally, alice):
    old = alice["user"]["referralCode"]
    tally.sql("UPDATE referral_codes SET is_active = 0 WHERE code = ?", (old,))
    before = now_ms()
    r = tally.post("/api/referral/generate-code", json={"expiresInDays": 7}, token=alice["token"])
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"code", "userId", "expiresAt"}
    assert body["userId"] == alice["user"]["id"]
    assert body["code"] != old and len(body["code"]) == 8 and CODE_RE.match(body["code"])
    expires = parse_iso_ms(body["expiresAt"])
    assert before + 7 * DAY_MS - 5000 <= expires <= now_ms() + 7 * DAY_MS + 5000
    # The new code is the user's code now, and it works.
    assert tally.get("/api/me", token=alice["token"]).json()["referralCode"] == body["code"]
    # A second one is refused while this one is active.
    r = tally.post("/api/referral/generate-code", json={}, token=alice["token"])
    assert_error(r, 409, "active_code_exists")


def test_generate_code_after_expiry_uses_default_lifetime(tally, alice):
    tally.sql(
        "UPDATE referral_codes SET expires_at = ? WHERE code = ?",
        (now_ms() - 1000, alice["user"]["referralCode"]),
    )
    r = tally.post("/api/referral/generate-code", token=alice["token"])  # no body at all
    assert r.status_code == 201, r.text
    expires = parse_iso_ms(r.json()["expiresAt"])
    assert abs(expires - (now_ms() + 365 * DAY_MS)) < 60_000


@pytest.mark.parametrize("days", [0, -1, 3651, "7", 1.5, True, [7]])
def test_generate_code_invalid_expires_in_days_is_400(tally, alice, days):
    tally.sql(
        "UPDATE referral_codes SET is_active = 0 WHERE code = ?", (alice["user"]["referralCode"],)
    )
    r = tally.post(
        "/api/referral/generate-code", json={"expiresInDays": days}, token=alice["token"]
    )
    assert_error(r, 400, "validation_error", field="expiresInDays")


def test_generate_code_needs_a_user(tally):
    assert_error(tally.post("/api/referral/generate-code", json={}), 401, "unauthorized")


# ---- track ----


def test_track_records_a_pending_referral(tally, alice, bob):
    r = track(tally, bob, alice["user"]["referralCode"])
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"message", "referralId", "referrerUserId"}
    assert body["referrerUserId"] == alice["user"]["id"]
    assert isinstance(body["message"], str) and body["message"]
    rows = tally.sql(
        "SELECT id, referrer_user_id, referred_user_id, status FROM referrals WHERE id = ?",
        (body["referralId"],),
    )
    assert rows == [(body["referralId"], alice["user"]["id"], bob["user"]["id"], "pending")]
    assert tally.get("/api/me", token=bob["token"]).json()["referredBy"] == alice["user"]["id"]


def test_track_matches_codes_case_insensitively(tally, alice, bob):
    r = track(tally, bob, " " + alice["user"]["referralCode"].lower() + " ")
    assert r.status_code == 201, r.text
    assert r.json()["referrerUserId"] == alice["user"]["id"]


def test_track_twice_is_409(tally, alice, bob):
    carol = tally.signup(name="Carol", email=unique_email("carol"))
    assert track(tally, bob, alice["user"]["referralCode"]).status_code == 201
    assert_error(track(tally, bob, carol["user"]["referralCode"]), 409, "already_referred")
    assert_error(track(tally, bob, alice["user"]["referralCode"]), 409, "already_referred")


def test_track_after_signup_with_code_is_409(tally, alice):
    dave = tally.signup(name="Dave", email=unique_email("dave"), code=alice["user"]["referralCode"])
    carol = tally.signup(name="Carol", email=unique_email("carol"))
    assert_error(track(tally, dave, carol["user"]["referralCode"]), 409, "already_referred")


def test_track_own_code_is_self_referral(tally, alice):
    r = track(tally, alice, alice["user"]["referralCode"])
    assert_error(r, 400, "self_referral")
    assert tally.get("/api/me", token=alice["token"]).json()["referredBy"] is None


@pytest.mark.parametrize("code", ["ZZZZZZZZ", "ABCDEFGH", "short", "has spaces in", "0OIl0OIl"])
def test_track_unknown_code_is_400(tally, bob, code):
    assert_error(track(tally, bob, code), 400, "invalid_referral_code", field="referralCode")


@pytest.mark.parametrize("body", [{}, {"referralCode": None}, {"referralCode": 12345678}])
def test_track_missing_or_non_string_code_is_400(tally, bob, body):
    r = tally.post("/api/referral/track", json=body, token=bob["token"])
    assert_error(r, 400, "validation_error", field="referralCode")


def test_track_expired_code_is_400(tally, alice, bob):
    tally.sql(
        "UPDATE referral_codes SET expires_at = ? WHERE code = ?",
        (now_ms() - 1000, alice["user"]["referralCode"]),
    )
    r = track(tally, bob, alice["user"]["referralCode"])
    assert_error(r, 400, "referral_code_expired", field="referralCode")
    assert tally.sql("SELECT COUNT(*) FROM referrals WHERE referred_user_id = ?",
                     (bob["user"]["id"],)) == [(0,)]


def test_track_inactive_code_is_400(tally, alice, bob):
    tally.sql(
        "UPDATE referral_codes SET is_active = 0 WHERE code = ?", (alice["user"]["referralCode"],)
    )
    r = track(tally, bob, alice["user"]["referralCode"])
    assert_error(r, 400, "referral_code_inactive", field="referralCode")
    # Bob can still be referred by a usable code afterwards.
    carol = tally.signup(name="Carol", email=unique_email("carol"))
    assert track(tally, bob, carol["user"]["referralCode"]).status_code == 201


def test_track_refuses_a_cycle(tally, alice):
    # alice <- bob <- carol (bob referred by alice, carol by bob)
    bob = tally.signup(name="Bob", email=unique_email("bob"), code=alice["user"]["referralCode"])
    carol = tally.signup(name="Carol", email=unique_email("carol"), code=bob["user"]["referralCode"])
    # alice referred by bob would make alice -> bob -> alice
    assert_error(track(tally, alice, bob["user"]["referralCode"]), 400, "referral_cycle")
    # alice referred by carol would make alice -> carol -> bob -> alice
    assert_error(track(tally, alice, carol["user"]["referralCode"]), 400, "referral_cycle")
    assert tally.get("/api/me", token=alice["token"]).json()["referredBy"] is None
    # An unrelated referrer is still fine.
    erin = tally.signup(name="Erin", email=unique_email("erin"))
    assert track(tally, alice, erin["user"]["referralCode"]).status_code == 201


def test_track_needs_a_user(tally, alice):
    r = tally.post("/api/referral/track", json={"referralCode": alice["user"]["referralCode"]})
    assert_error(r, 401, "unauthorized")


# ---- stats ----


def test_stats_count_referrals_by_status(tally, alice):
    def stats():
        r = tally.get("/api/referral/stats", token=alice["token"])
        assert r.status_code == 200, r.text
        return r.json()

    assert stats() == {
        "totalReferrals": 0,
        "convertedReferrals": 0,
        "pendingReferrals": 0,
        "totalRewardsEarned": 0,
    }
    code = alice["user"]["referralCode"]
    referred = [tally.signup(email=unique_email("s"), code=code) for _ in range(2)]
    bob = tally.signup(email=unique_email("s"))
    assert track(tally, bob, code).status_code == 201
    assert stats() == {
        "totalReferrals": 3,
        "convertedReferrals": 0,
        "pendingReferrals": 3,
        "totalRewardsEarned": 0,
    }
    # Conversions arrive with a later issue; the counts follow the rows already.
    tally.sql(
        "UPDATE referrals SET status = 'converted' WHERE referred_user_id = ?",
        (referred[0]["user"]["id"],),
    )
    s = stats()
    assert (s["totalReferrals"], s["convertedReferrals"], s["pendingReferrals"]) == (3, 1, 2)
    # The referred users' own stats are empty: stats are per referrer.
    r = tally.get("/api/referral/stats", token=bob["token"])
    assert r.json()["totalReferrals"] == 0


def test_stats_need_a_user(tally):
    assert_error(tally.get("/api/referral/stats"), 401, "unauthorized")


# ---- /r/CODE ----


def visits(tally, code):
    return tally.sql("SELECT visits FROM referral_codes WHERE code = ?", (code,))[0][0]


def test_link_redirects_to_signup_with_code_and_counts_the_visit(tally, alice):
    code = alice["user"]["referralCode"]
    r = tally.get("/r/" + code)
    assert r.status_code == 302, r.text
    assert "X-Request-Id" in r.headers
    loc = urlsplit(r.headers["Location"])
    assert loc.path == "/auth/signup"
    assert parse_qs(loc.query)["ref"] == [code]
    wait_until(lambda: visits(tally, code) == 1, what="the visit to be counted")
    # Lower-case links work too and land on the canonical code.
    r = tally.get("/r/" + code.lower())
    assert r.status_code == 302
    assert parse_qs(urlsplit(r.headers["Location"]).query)["ref"] == [code]
    wait_until(lambda: visits(tally, code) == 2, what="the second visit to be counted")


def test_link_checked_with_head_redirects_but_counts_no_visit(tally, alice):
    code = alice["user"]["referralCode"]
    before = visits(tally, code)
    r = requests.head(tally.url + "/r/" + code, allow_redirects=False)
    assert r.status_code == 302
    assert parse_qs(urlsplit(r.headers["Location"]).query)["ref"] == [code]
    # Visits are written in order through one queue: once the GET's visit is in, a visit
    # counted for the HEAD before it would be too.
    assert tally.get("/r/" + code).status_code == 302
    wait_until(lambda: visits(tally, code) >= before + 1, what="the GET's visit to be counted")
    assert visits(tally, code) == before + 1


@pytest.mark.parametrize("code", ["ZZZZZZZZ", "nope", "0OIl0OIl"])
def test_link_with_unknown_code_is_404(tally, code):
    assert_error(tally.get("/r/" + code), 404, "not_found")


@pytest.mark.parametrize("code", ["ZZZZZZZZ", "nope"])
def test_link_with_unknown_code_sends_a_browser_to_signup(tally, code):
    r = requests.get(tally.url + "/r/" + code, allow_redirects=False,
                     headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.status_code == 302 and r.headers["Location"] == "/auth/signup", r.headers


def test_link_with_expired_code_redirects_without_the_code(tally, alice):
    code = alice["user"]["referralCode"]
    tally.sql("UPDATE referral_codes SET expires_at = ? WHERE code = ?", (now_ms() - 1000, code))
    r = tally.get("/r/" + code)
    assert r.status_code == 302
    assert "ref=" not in r.headers["Location"]
    assert visits(tally, code) == 0


def test_link_target_is_configurable(start_tally):
    t = start_tally(env={"TALLY_SIGNUP_URL": "https://shop.example.com/join?utm=tally"})
    code = t.signup()["user"]["referralCode"]
    r = t.get("/r/" + code)
    assert r.status_code == 302
    assert r.headers["Location"] == f"https://shop.example.com/join?utm=tally&ref={code}"


# ---- configuration ----


def test_code_length_is_configurable(start_tally):
    t = start_tally(env={"REFERRAL_CODE_LENGTH": "12", "REFERRAL_CODE_EXPIRATION_DAYS": "30"})
    owner = t.signup(email=unique_email("long"))
    code = owner["user"]["referralCode"]
    assert len(code) == 12 and CODE_RE.match(code), code
    expires = t.sql("SELECT expires_at FROM referral_codes WHERE code = ?", (code,))[0][0]
    assert abs(expires - (now_ms() + 30 * DAY_MS)) < 60_000
    # Matched case-insensitively at its configured length.
    other = t.signup(email=unique_email("other"))
    r = t.post("/api/referral/track", json={"referralCode": code.lower()}, token=other["token"])
    assert r.status_code == 201, r.text


def test_disabled_referral_system(start_tally):
    t = start_tally(env={"ENABLE_REFERRAL_SYSTEM": "false"})
    u = t.signup(email=unique_email("off"))
    tok = u["token"]
    for r in [
        t.post("/api/referral/generate-code", json={}, token=tok),
        t.post("/api/referral/track", json={"referralCode": "ABCDEFGH"}, token=tok),
        t.get("/api/referral/stats", token=tok),
        t.get("/api/referral/leaderboard", token=tok),
        t.get("/r/ABCDEFGH"),
        t.post(
            "/api/auth/signup",
            json={"name": "n", "email": unique_email(), "password": "password1",
                  "referralCode": u["user"]["referralCode"]},
        ),
    ]:
        assert_error(r, 404, "referral_system_disabled")
    # Sign-up and log-in still work.
    assert t.get("/api/me", token=tok).status_code == 200


def test_concurrent_tracks_record_one_referral(tally):
    referrers = [tally.signup(email=unique_email("ref")) for _ in range(3)]
    referred = tally.signup(email=unique_email("once"))

    def attempt(owner):
        return requests.post(
            tally.url + "/api/referral/track",
            json={"referralCode": owner["user"]["referralCode"]},
            headers={"Authorization": "Bearer " + referred["token"]},
            timeout=30,
        )

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(attempt, referrers))
    assert sorted(r.status_code for r in answers) == [201, 409, 409], [r.text for r in answers]
    winner = next(r for r in answers if r.status_code == 201).json()["referrerUserId"]
    rows = tally.sql("SELECT referrer_user_id FROM referrals WHERE referred_user_id = ?",
                     (referred["user"]["id"],))
    assert rows == [(winner,)]
    assert tally.get("/api/me", token=referred["token"]).json()["referredBy"] == winner
