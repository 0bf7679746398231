"""Sign-up, log-in, /api/me and the bearer-token checks (issue 2, "Users and auth")."""

import concurrent.futures
import hashlib
import hmac
import time
import uuid

import pytest
import requests

from conftest import (
    PASSWORD,
    assert_error,
    b64url,
    jwt_claims,
    make_jwt,
    module_server,
    unique_email,
)

CODE_ALPHABET = set("23456789ABCDEFGHJKLMNPQRSTUVWXYZ")
SECRET = "e2e-test-secret-0123456789abcdef-0123456789"

# The shared server has a known JWT secret so tests can mint their own tokens.
tally = module_server({"TALLY_JWT_SECRET": SECRET})


def user_count(tally, email):
    return tally.sql("SELECT COUNT(*) FROM users WHERE email = ?", (email,))[0][0]


# ---- sign-up ----


def test_signup_returns_token_and_user(tally):
    email = unique_email("shape")
    r = tally.post(
        "/api/auth/signup",
        json={"name": "  Ada Lovelace ", "email": "  " + email.upper() + " ", "password": PASSWORD},
    )
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["token"], str) and body["token"].count(".") == 2
    user = body["user"]
    assert {"id", "name", "email", "referralCode", "referredBy"} <= set(user)
    uuid.UUID(user["id"])
    assert user["name"] == "Ada Lovelace"
    assert user["email"] == email  # trimmed and lower-cased
    assert user["referredBy"] is None
    code = user["referralCode"]
    assert len(code) == 8 and set(code) <= CODE_ALPHABET, code
    # The token is for this user.
    me = tally.get("/api/me", token=body["token"])
    assert me.status_code == 200, me.text
    assert me.json()["id"] == user["id"]
    assert me.json()["email"] == email
    assert me.json()["referralCode"] == code
    assert jwt_claims(body["token"])["sub"] == user["id"]


def test_signup_codes_are_unique_per_user(tally):
    a = tally.signup(email=unique_email("u1"))["user"]["referralCode"]
    b = tally.signup(email=unique_email("u2"))["user"]["referralCode"]
    assert a != b


@pytest.mark.parametrize(
    "variant",
    [lambda e: e, lambda e: e.upper(), lambda e: "  " + e.title() + "\t"],
    ids=["same", "upper-case", "padded-mixed-case"],
)
def test_signup_duplicate_email_is_409(tally, variant):
    email = unique_email("dup")
    tally.signup(email=email)
    r = tally.post(
        "/api/auth/signup", json={"name": "Again", "email": variant(email), "password": PASSWORD}
    )
    assert_error(r, 409, "email_taken", field="email")
    assert user_count(tally, email) == 1


GOOD = {"name": "Valid Name", "password": PASSWORD}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": None}, "name"),
        ({"name": 42}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "bell\u0007name"}, "name"),
        ({"name": "two\nlines"}, "name"),
        ({"email": ""}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"email": "two@@example.com"}, "email"),
        ({"email": "sp ace@example.com"}, "email"),
        ({"email": "@example.com"}, "email"),
        ({"email": None}, "email"),
        ({"email": ["a@example.com"]}, "email"),
        ({"password": "short12"}, "password"),  # 7 characters
        ({"password": "p" * 129}, "password"),
        ({"password": ""}, "password"),
        ({"password": None}, "password"),
        ({"password": 12345678}, "password"),
    ],
)
def test_signup_invalid_field_is_400_naming_it(tally, change, field):
    email = unique_email("invalid")
    body = {**GOOD, "email": email, **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = tally.post("/api/auth/signup", json=body)
    assert_error(r, 400, "validation_error", field=field)
    assert user_count(tally, email) == 0


@pytest.mark.parametrize("password", ["12345678", "p" * 128, "é" * 8], ids=["8", "128", "utf8"])
def test_signup_password_length_bounds_are_inclusive(tally, password):
    email = unique_email("pwlen")
    tally.signup(email=email, password=password)
    tally.login(email, password)


def test_signup_with_referral_code_sets_referred_by(tally):
    referrer = tally.signup(email=unique_email("referrer"))["user"]
    # Codes are matched case-insensitively and trimmed.
    code = "  " + referrer["referralCode"].lower() + " "
    body = tally.signup(email=unique_email("referred"), code=code)
    assert body["user"]["referredBy"] == referrer["id"]
    me = tally.get("/api/me", token=body["token"]).json()
    assert me["referredBy"] == referrer["id"]
    rows = tally.sql(
        "SELECT referrer_user_id, status FROM referrals WHERE referred_user_id = ?",
        (body["user"]["id"],),
    )
    assert rows == [(referrer["id"], "pending")]


def _age_code(tally, code, *, expired=False, inactive=False):
    if expired:
        tally.sql(
            "UPDATE referral_codes SET expires_at = ? WHERE code = ?",
            (int(time.time() * 1000) - 60_000, code),
        )
    if inactive:
        tally.sql("UPDATE referral_codes SET is_active = 0 WHERE code = ?", (code,))


@pytest.mark.parametrize(
    "kind, error",
    [
        ("unknown", "invalid_referral_code"),
        ("malformed", "invalid_referral_code"),
        ("expired", "referral_code_expired"),
        ("inactive", "referral_code_inactive"),
    ],
)
def test_signup_with_unusable_code_is_400_and_creates_no_user(tally, kind, error):
    if kind == "unknown":
        code = "ZZZZZZZZ"
    elif kind == "malformed":
        code = "no-such-code!"
    else:
        code = tally.signup(email=unique_email("owner"))["user"]["referralCode"]
        _age_code(tally, code, expired=kind == "expired", inactive=kind == "inactive")
    email = unique_email("refused")
    r = tally.post(
        "/api/auth/signup",
        json={"name": "N", "email": email, "password": PASSWORD, "referralCode": code},
    )
    assert_error(r, 400, error, field="referralCode")
    assert user_count(tally, email) == 0
    assert_error(tally.post("/api/auth/login", json={"email": email, "password": PASSWORD}),
                 401, "invalid_credentials")


def test_signup_empty_referral_code_is_ignored(tally):
    body = tally.signup(email=unique_email("emptycode"), code="")
    assert body["user"]["referredBy"] is None


# ---- log-in ----


def test_login_returns_token_and_user(tally):
    email = unique_email("login")
    created = tally.signup(email=email)["user"]
    body = tally.login("  " + email.upper() + " ")
    assert body["user"]["id"] == created["id"]
    assert body["user"]["email"] == email
    assert body["user"]["referralCode"] == created["referralCode"]
    me = tally.get("/api/me", token=body["token"])
    assert me.status_code == 200 and me.json()["id"] == created["id"]


def test_login_wrong_password_and_unknown_email_are_indistinguishable(tally):
    email = unique_email("enum")
    tally.signup(email=email)
    answers = [
        tally.post("/api/auth/login", json={"email": email, "password": "wrong password"}),
        tally.post("/api/auth/login", json={"email": unique_email("nobody"), "password": PASSWORD}),
        tally.post("/api/auth/login", json={"email": "not an email", "password": PASSWORD}),
    ]
    errors = [assert_error(r, 401, "invalid_credentials") for r in answers]
    for e in errors:
        e.pop("requestId")
    assert errors[0] == errors[1] == errors[2]
    assert "password" not in answers[0].json()["error"].get("field", "")


@pytest.mark.parametrize("body, field", [({"email": "a@example.com"}, "password"),
                                         ({"password": PASSWORD}, "email")])
def test_login_missing_field_is_400(tally, body, field):
    assert_error(tally.post("/api/auth/login", json=body), 400, "validation_error", field=field)


def test_login_throttled_per_account_with_retry_after(start_tally):
    t = start_tally()
    victim, other = unique_email("victim"), unique_email("other")
    t.signup(email=victim)
    t.signup(email=other)
    for _ in range(5):
        t.login(victim, "wrong password", expect=401)
    r = t.post("/api/auth/login", json={"email": victim, "password": "wrong password"})
    assert_error(r, 429, "rate_limited")
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= 300  # a window, not a permanent lock-out
    # While throttled even the right password waits: guessing gains nothing.
    assert t.post("/api/auth/login", json={"email": victim, "password": PASSWORD}).status_code == 429
    # Another account from the same address is not affected.
    t.login(other)


def test_login_success_resets_the_account_counter(start_tally):
    t = start_tally()
    email = unique_email("reset")
    t.signup(email=email)
    for _ in range(4):
        t.login(email, "wrong password", expect=401)
    t.login(email)
    for _ in range(4):
        t.login(email, "wrong password", expect=401)
    t.login(email)


def test_login_throttled_per_client_address(start_tally):
    t = start_tally()
    email = unique_email("addr")
    t.signup(email=email)
    # 20 failures spread over 20 accounts: no account reaches its own limit.
    for i in range(20):
        t.login(unique_email(f"spray{i}"), "wrong password", expect=401)
    r = t.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert_error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["Retry-After"]) <= 300


# ---- /api/me and tokens ----


def test_me_without_authorization_is_401(tally):
    assert_error(tally.get("/api/me"), 401, "unauthorized")


def mint(user_id, *, exp_in=300, secret=SECRET, alg="HS256", **extra):
    now = int(time.time())
    claims = {"sub": user_id, "iss": "tally", "iat": now, "exp": now + exp_in, **extra}
    return make_jwt(claims, secret=secret, alg=alg)


@pytest.fixture(scope="module")
def member(tally):
    return tally.signup(name="Token Holder", email=unique_email("member"))["user"]


def test_self_minted_token_with_the_server_secret_is_accepted(tally, member):
    r = tally.get("/api/me", token=mint(member["id"]))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == member["id"]
    # The scheme name is case-insensitive.
    r = tally.get("/api/me", headers={"Authorization": "bearer " + mint(member["id"])})
    assert r.status_code == 200, r.text


def _now():
    return int(time.time())


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda uid: mint(uid, exp_in=-5), id="expired"),
        pytest.param(lambda uid: mint(uid, secret="another-secret-0123456789abcdef-xyz"),
                     id="other-secret"),
        pytest.param(lambda uid: make_jwt({"sub": uid, "iss": "tally", "iat": _now(),
                                           "exp": _now() + 300}, alg="none"), id="alg-none"),
        pytest.param(lambda uid: make_jwt({"sub": uid, "iss": "tally", "iat": _now(),
                                           "exp": _now() + 300}, alg="none",
                                          header={"alg": "none"}) + "sig", id="alg-none-with-sig"),
        pytest.param(lambda uid: mint(uid, alg="HS512"), id="hs512"),
        pytest.param(lambda uid: mint(uid, alg="HS384"), id="hs384"),
        pytest.param(lambda uid: make_jwt({"sub": uid, "iss": "tally", "iat": _now()},
                                          secret=SECRET), id="no-exp"),
        pytest.param(lambda uid: mint(uid, iss="someone-else"), id="wrong-issuer"),
        pytest.param(lambda uid: mint(str(uuid.uuid4())), id="unknown-user"),
        pytest.param(lambda uid: mint("not-a-uuid"), id="sub-not-uuid"),
        pytest.param(lambda uid: mint(uid)[:-3] + "AAA", id="tampered-signature"),
        pytest.param(lambda uid: "garbage", id="garbage"),
        pytest.param(lambda uid: "a.b.c", id="three-garbage-parts"),
        pytest.param(lambda uid: "", id="empty"),
        pytest.param(lambda uid: "x" * 5000, id="huge"),
    ],
)
def test_bad_tokens_are_401(tally, member, make):
    r = tally.get("/api/me", token=make(member["id"]))
    assert_error(r, 401, "unauthorized")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Token abc", "Bearer"])
def test_other_authorization_schemes_are_401(tally, header):
    assert_error(tally.get("/api/me", headers={"Authorization": header}), 401, "unauthorized")


def test_token_expiry_comes_from_config(start_tally):
    t = start_tally(env={"TALLY_JWT_TTL_SECONDS": "120"})
    body = t.signup()
    claims = jwt_claims(body["token"])
    assert claims["exp"] - claims["iat"] == 120
    assert body["expiresIn"] == 120


def test_generated_secret_survives_restart(start_tally):
    t = start_tally()  # no TALLY_JWT_SECRET: tally generates one and keeps it in the database
    body = t.signup()
    assert t.get("/api/me", token=body["token"]).status_code == 200
    t.restart()
    r = t.get("/api/me", token=body["token"])
    assert r.status_code == 200, r.text
    assert r.json()["id"] == body["user"]["id"]
    # A different database has a different generated secret: the token means nothing there.
    other = start_tally()
    assert_error(other.get("/api/me", token=body["token"]), 401, "unauthorized")


def test_nodes_sharing_a_database_share_the_generated_secret(start_tally):
    # Two first starts at once on one database keep one secret between them.
    a = start_tally(start=False)
    b = start_tally(start=False, db=a.db_path)
    a.spawn()
    b.spawn()
    a.wait_ready()
    b.wait_ready()
    body = a.signup()
    r = b.get("/api/me", token=body["token"])
    assert r.status_code == 200, r.text
    assert r.json()["id"] == body["user"]["id"]


def test_configured_secret_signs_tokens(tally):
    # Tokens the server issues verify with the configured secret: TALLY_JWT_SECRET is the key.
    token = tally.signup(email=unique_email("secret"))["token"]
    head, payload, sig = token.split(".")
    mac = hmac.new(SECRET.encode(), f"{head}.{payload}".encode(), hashlib.sha256).digest()
    assert b64url(mac) == sig


def test_concurrent_signups_with_one_email_create_one_user(tally):
    email = unique_email("race")
    body = {"name": "Racer", "email": email, "password": PASSWORD}

    def attempt(i):
        variant = {**body, "email": email.upper() if i % 2 else email}
        return requests.post(tally.url + "/api/auth/signup", json=variant, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(attempt, range(4)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201, 409, 409, 409], [r.text for r in answers]
    for r in answers:
        if r.status_code == 409:
            assert_error(r, 409, "email_taken")
    assert user_count(tally, email) == 1
