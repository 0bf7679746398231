"""Acceptance probe (issues 2, 4, 5 and 7): what a new user or an attacker would try, each test
written from a defect the probe found, against the documented contract in docs/API.md.

Every test here failed before its fix. The module shares one server that may deliver webhooks
to 127.0.0.1 (TALLY_WEBHOOK_ALLOW_PRIVATE=1); webhook URLs point at a closed local port, since
no test here waits for a delivery.
"""

import socket

import pytest
import requests

from conftest import PASSWORD, assert_error, module_server, unique_email

tally = module_server({"TALLY_WEBHOOK_ALLOW_PRIVATE": "1"})

HOOK_URL = "http://127.0.0.1:9/hook"  # discard port: nothing listens, nothing is awaited


@pytest.fixture(scope="module")
def admin(tally):
    return tally.apikey("admin")


def auth(key):
    return {"Authorization": f"Bearer {key}"}


# ---- webhooks: "null counts as absent" (API.md, Bodies) ----


def test_webhook_create_with_events_null_takes_the_default(tally, admin):
    r = tally.post("/api/admin/webhooks", json={"url": HOOK_URL, "events": None}, token=admin)
    assert r.status_code == 201, r.text
    assert r.json()["events"] == ["*"]


def test_webhook_patch_with_null_fields_changes_nothing(tally, admin):
    made = tally.post(
        "/api/admin/webhooks", json={"url": HOOK_URL, "events": ["bonus_paid"]}, token=admin
    ).json()
    path = f"/api/admin/webhooks/{made['id']}"
    r = tally.request(
        "PATCH", path, json={"url": None, "events": None, "isActive": None}, token=admin
    )
    assert r.status_code == 200, r.text
    got = tally.get(path, token=admin).json()
    assert (got["url"], got["events"], got["isActive"]) == (HOOK_URL, ["bonus_paid"], True)


def test_webhook_event_types_given_twice_are_listed_once(tally, admin):
    r = tally.post(
        "/api/admin/webhooks",
        json={"url": HOOK_URL, "events": ["bonus_paid", "earning_update", "bonus_paid"]},
        token=admin,
    )
    assert r.status_code == 201, r.text
    assert r.json()["events"] == ["bonus_paid", "earning_update"]


# ---- admin paths: 405 with the right Allow, 404 for paths that do not exist ----


def test_put_on_a_webhook_is_405_not_404(tally, admin):
    made = tally.post("/api/admin/webhooks", json={"url": HOOK_URL}, token=admin).json()
    r = tally.request("PUT", f"/api/admin/webhooks/{made['id']}", json={}, token=admin)
    err = assert_error(r, 405, "method_not_allowed")
    assert err
    assert r.headers["Allow"] == "GET, HEAD, PATCH, DELETE"
    # and the webhook is unchanged
    assert tally.get(f"/api/admin/webhooks/{made['id']}", token=admin).status_code == 200


def test_post_on_a_webhook_id_does_not_advertise_put(tally, admin):
    r = tally.post("/api/admin/webhooks/some-id", json={}, token=admin)
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET, HEAD, PATCH, DELETE"


@pytest.mark.parametrize("method", ["POST", "DELETE", "PATCH", "PUT"])
def test_automation_logs_allow_only_get(tally, admin, method):
    r = tally.request(method, "/api/admin/automation-logs", json={}, token=admin)
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_unknown_admin_resource_is_404_whatever_the_method(tally, admin, method):
    for path in ("/api/admin/nosuch", "/api/admin/nosuch/123"):
        r = tally.request(method, path, json={}, token=admin)
        assert_error(r, 404, "route_not_found")
        assert "Allow" not in r.headers


def test_known_admin_resources_still_route(tally, admin):
    for res in ("retailers", "products", "promotions", "catalog"):
        r = tally.get(f"/api/admin/{res}", token=admin)
        assert r.status_code == 200, (res, r.text)
        r = tally.request("DELETE", f"/api/admin/{res}", token=admin)
        assert_error(r, 405, "method_not_allowed")
        assert r.headers["Allow"] == "GET, HEAD, POST"


# ---- sign-up: a referral code of only spaces is "no code" (codes are trimmed; empty = none) ----


def test_signup_with_a_blank_referral_code_signs_up_unreferred(tally):
    r = tally.post(
        "/api/auth/signup",
        json={"name": "Blank", "email": unique_email("blank"), "password": PASSWORD,
              "referralCode": "  \t "},
    )
    assert r.status_code == 201, r.text
    assert r.json()["user"]["referredBy"] is None


def test_web_signup_with_a_blank_referral_code_signs_up(tally):
    s = requests.Session()
    s.get(tally.url + "/auth/signup")
    r = s.post(
        tally.url + "/auth/signup",
        data={"name": "Web Blank", "email": unique_email("webblank"), "password": PASSWORD,
              "referralCode": "   ", "csrf": s.cookies.get("tally_csrf")},
        allow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["Location"] == "/dashboard"


# ---- a huge number is valid JSON: out of range is a validation error naming the field ----


@pytest.mark.parametrize("number", ["99999999999999999999", "-99999999999999999999", "1e400"])
def test_a_number_too_big_for_the_server_is_a_validation_error(tally, number):
    token = tally.signup(name="Huge")["token"]
    before = tally.get("/api/me", token=token).json()
    r = tally.post(
        "/api/referral/generate-code",
        data='{"expiresInDays": %s}' % number,
        headers={"Content-Type": "application/json"},
        token=token,
    )
    assert_error(r, 400, "validation_error", "expiresInDays")
    assert tally.get("/api/me", token=token).json() == before


def test_a_huge_number_in_a_field_the_route_ignores_is_ignored(tally):
    """A huge number is valid JSON; an unknown field is ignored, however large its number."""
    r = tally.post(
        "/api/auth/signup",
        data='{"name": "Huge Extra", "email": "%s", "password": "%s",'
        ' "extra": {"deep": [123456789012345678901234567890]}}' % (unique_email(), PASSWORD),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["user"]["name"] == "Huge Extra"


@pytest.mark.parametrize(
    "body",
    ['[99999999999999999999]', '{"a": 99999999999999999999, "a": 1}', '{"a": 99999999999999999999'],
)
def test_a_huge_number_in_a_body_that_is_not_a_json_object_is_still_invalid_json(tally, body):
    r = tally.post("/api/auth/signup", data=body, headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")


# ---- a query value holding a NUL byte is not the value before the NUL ----


@pytest.mark.parametrize(
    "path,field",
    [
        ("/api/referral/leaderboard?limit=10%00", "limit"),
        ("/api/referral/leaderboard?page=1%00x", "page"),
        ("/api/referral/leaderboard?period=week%00", "period"),
        ("/api/referral/analytics?period=all%00", "period"),
        ("/api/referral/trends?days=7%00", "days"),
        ("/api/admin/automation-logs?limit=5%00", "limit"),
    ],
)
def test_a_query_value_with_a_nul_byte_is_refused(tally, admin, path, field):
    assert_error(tally.get(path, token=admin), 400, "validation_error", field)


# ---- an empty period is not a period (as an empty limit is not a limit) ----


@pytest.mark.parametrize("path", ["/api/referral/leaderboard?period=", "/api/referral/analytics?period="])
def test_an_empty_period_is_refused_like_an_empty_limit(tally, admin, path):
    assert_error(tally.get(path, token=admin), 400, "validation_error", "period")
    assert_error(tally.get(path.replace("period=", "limit=") if "leaderboard" in path
                           else "/api/referral/trends?days=", token=admin),
                 400, "validation_error")


# ---- the absolute form of a request target (RFC 9112 section 3.2.2: a server must accept it) ----


def raw_request(tally, data):
    with socket.create_connection(("127.0.0.1", tally.port), timeout=5) as s:
        s.sendall(data)
        out = b""
        while b"\r\n\r\n" not in out:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    return out


def test_an_absolute_form_request_target_is_routed_by_its_path(tally, admin):
    host = f"127.0.0.1:{tally.port}"
    out = raw_request(tally, f"GET http://{host}/healthz HTTP/1.1\r\nHost: {host}\r\n"
                             "Connection: close\r\n\r\n".encode())
    assert out.startswith(b"HTTP/1.1 200 "), out[:200]
    out = raw_request(tally, f"GET HTTP://{host}/api/referral/trends?days=2 HTTP/1.1\r\n"
                             f"Host: {host}\r\nAuthorization: Bearer {admin}\r\n"
                             "Connection: close\r\n\r\n".encode())
    assert out.startswith(b"HTTP/1.1 200 "), out[:200]
    out = raw_request(tally, f"DELETE http://{host}/healthz HTTP/1.1\r\nHost: {host}\r\n"
                             "Connection: close\r\n\r\n".encode())
    assert out.startswith(b"HTTP/1.1 405 "), out[:200]


# ---- a name made only of invisible characters is an empty name ----


@pytest.mark.parametrize("blank", ["\u00a0", "\u3000\u3000", "\u200b", "\u2800", " \u00a0 \ufeff "])
def test_a_name_of_only_invisible_characters_is_empty(tally, blank):
    r = tally.post("/api/auth/signup",
                   json={"name": blank, "email": unique_email("inv"), "password": PASSWORD})
    assert_error(r, 400, "validation_error", "name")


def test_patching_a_name_to_invisible_characters_is_refused(tally):
    user = tally.signup(name="Visible")
    r = tally.request("PATCH", "/api/me", json={"name": "\u00a0\u2003"}, token=user["token"])
    assert_error(r, 400, "validation_error", "name")
    assert tally.get("/api/me", token=user["token"]).json()["name"] == "Visible"
    # a name with a visible character among them is fine
    r = tally.request("PATCH", "/api/me", json={"name": "\u00a0Zo\u00eb\u3000"},
                      token=user["token"])
    assert r.status_code == 200, r.text


# ---- ids are UUIDs, and a UUID's hex digits are case-insensitive (RFC 9562 section 4) ----


def test_ids_in_upper_case_name_the_same_records(tally, admin):
    referrer = tally.signup(name="Upper Referrer")
    referred = tally.signup(name="Upper Referred", code=referrer["user"]["referralCode"])
    r = tally.post("/api/referral/convert", json={"referredUserId": referred["user"]["id"].upper()},
                   token=admin)
    assert r.status_code == 200, r.text
    reward = tally.get("/api/referral/rewards", token=referrer["token"]).json()["rewards"][0]
    r = tally.post("/api/referral/claim-reward", json={"rewardId": reward["id"].upper()},
                   token=referrer["token"])
    assert r.status_code == 200, r.text
    assert r.json()["reward"]["id"] == reward["id"]
    hook = tally.post("/api/admin/webhooks", json={"url": HOOK_URL}, token=admin).json()
    r = tally.get(f"/api/admin/webhooks/{hook['id'].upper()}", token=admin)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == hook["id"]
    r = tally.get(f"/api/earnings/{referrer['user']['id'].upper()}", token=referrer["token"])
    assert r.status_code == 200, r.text


def test_an_upper_case_cursor_pages_like_the_cursor(tally, admin):
    for _ in range(3):
        tally.cli("jobs", "run", "healthCheck")
    first = tally.get("/api/admin/automation-logs?limit=1", token=admin).json()
    cursor = first["nextCursor"]
    assert cursor
    lower = tally.get(f"/api/admin/automation-logs?limit=1&cursor={cursor}", token=admin).json()
    upper = tally.get(f"/api/admin/automation-logs?limit=1&cursor={cursor.upper()}",
                      token=admin).json()
    assert upper == lower and lower["logs"], (upper, lower)
