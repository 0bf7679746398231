"""The web pages (issue 7, seed 004) in headless Chromium, plus the HTTP-level guarantees a
browser cannot show: a user signs up, copies their link, a second user signs up through it and
the first user's open dashboard shows the referral live; user text is shown as text; forms
without their CSRF token are refused; errors sit beside their field; log-in and log-out; the
admin page with its SVG chart; the leaderboard's periods and pages; phone-sized screens;
cookie flags and the Content-Security-Policy; the forms without JavaScript.

A screenshot of each page is saved under tests/e2e/test-output/screenshots/. Every wait is
WebDriverWait (or wait_until) on a condition with a deadline; nothing sleeps."""

import http.server
import re
import threading
import time
import uuid

import pytest
import requests
from selenium.webdriver.common.by import By

from browser import PHONE, SCREENSHOT_DIR, Page
from browser import browser2_fixture, browser_fixture, browsers_fixture  # noqa: F401 (fixtures)
from conftest import HTTP_TIMEOUT_S, PASSWORD, db_connect, module_server, unique_email, wait_until

# Private webhook targets are allowed so that the admin page can show a real delivery to a
# receiver on 127.0.0.1.
tally = module_server({"TALLY_WEBHOOK_ALLOW_PRIVATE": "1"})

CSRF_RE = re.compile(r'name="csrf" value="([0-9a-f]{32})"')
CODE_RE = re.compile(r"^[A-Z0-9]{4,32}$")
DAY_MS = 86_400_000


# ---- helpers ----


def page(driver, t):
    return Page(driver, t.url)


def browser_signup(p, name, email=None, password=PASSWORD, code=None):
    """Fill and send the sign-up form; returns the email. Waits for the dashboard."""
    email = email or unique_email("web")
    p.open("/auth/signup")
    p.fill(name=name, email=email, password=password)
    if code is not None:
        p.fill(referralCode=code)
    p.submit()
    p.wait_path("/dashboard")
    return email


def browser_login(p, email, password=PASSWORD):
    p.open("/auth/login")
    p.fill(email=email, password=password)
    p.submit()
    p.wait_path("/dashboard")


def user_row(t, email):
    rows = t.sql("SELECT id, name, is_admin FROM users WHERE email = ?", (email,))
    return rows[0] if rows else None


def user_count(t, email):
    return t.sql("SELECT COUNT(*) FROM users WHERE email = ?", (email,))[0][0]


def code_of(t, user_id):
    return t.sql("SELECT code FROM referral_codes WHERE user_id = ? AND is_active = 1",
                 (user_id,))[0][0]


class Form:
    """A browser without JavaScript, played with requests: it keeps cookies, reads the csrf
    field from each form page and posts it back, like a plain HTML form would."""

    def __init__(self, t):
        self.t = t
        self.s = requests.Session()

    def get(self, path, **kw):
        kw.setdefault("allow_redirects", False)
        return self.s.get(self.t.url + path, timeout=HTTP_TIMEOUT_S, **kw)

    def post(self, path, data, **kw):
        kw.setdefault("allow_redirects", False)
        return self.s.post(self.t.url + path, data=data, timeout=HTTP_TIMEOUT_S, **kw)

    def csrf(self, path):
        r = self.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        m = CSRF_RE.search(r.text)
        assert m, r.text
        return m.group(1)

    def submit(self, form_path, data, action=None):
        """GET form_path, then POST its form (to action, default form_path) with the token."""
        token = self.csrf(form_path)
        return self.post(action or form_path, {"csrf": token, **data})

    def signup(self, name="Plain Form", email=None, code=None):
        email = email or unique_email("form")
        data = {"name": name, "email": email, "password": PASSWORD}
        if code:
            data["referralCode"] = code
        r = self.submit("/auth/signup", data)
        assert r.status_code == 303 and r.headers["Location"] == "/dashboard", (
            r.status_code, r.text[:500])
        return email, r


class Receiver:
    """A webhook receiver on 127.0.0.1 answering 204 and counting requests."""

    def __init__(self):
        self.count = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.count += 1
                self.send_response(204)
                self.send_header("Connection", "close")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def admin_key(tally):
    return tally.apikey("admin", name="web-admin")


@pytest.fixture(scope="module", autouse=True)
def screenshots_dir():
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR


# ---- the referral journey, live ----


def test_signup_copy_link_and_live_referral(tally, browser, browser2, admin_key):
    a = page(browser, tally)
    a.open("/auth/signup")
    a.wait_visible("form input[name=name]")
    assert a.find_all("form input[name=csrf]"), "the form carries a CSRF token"
    a.screenshot("signup")
    a_email = browser_signup(a, "Ada Lovelace")
    assert a.text("h1") == "Hello, Ada Lovelace"
    code = a.text("#referral-code")
    assert CODE_RE.match(code), code
    uid = user_row(tally, a_email)[0]
    assert code_of(tally, uid) == code
    link = a.find("#referral-link").get_attribute("value")
    assert link == f"{tally.url}/r/{code}"
    assert a.count("total") == 0 and a.count("pending") == 0 and a.count("converted") == 0
    assert a.find("#no-referrals").is_displayed()
    assert a.scripting_enabled()

    # Copy: the button says so and the clipboard holds the link.
    a.grant_clipboard()
    a.watch_text("#copy-link")
    a.find("#copy-link").click()
    a.wait(lambda d: "Copied" in a.seen_text("#copy-link"), what="the button to say Copied")
    assert a.clipboard_text() == link

    # Marks this document: a reload would lose it.
    browser.execute_script("window.__tallyNoReload = 'kept';")

    # A second browser (its own cookies) follows the link and signs up.
    b = page(browser2, tally)
    browser2.get(link)
    b.wait_path(f"/auth/signup?ref={code}")
    assert b.value("referralCode") == code
    b_email = unique_email("bea")
    b.fill(name="Bea Referred", email=b_email, password=PASSWORD)
    b.submit()
    b.wait_path("/dashboard")
    assert b.text("h1") == "Hello, Bea Referred"
    b_id = user_row(tally, b_email)[0]
    assert tally.sql("SELECT referrer_user_id, status FROM referrals WHERE referred_user_id = ?",
                     (b_id,)) == [(uid, "pending")]

    # A's dashboard, never reloaded, shows the referral and the new counts.
    li = a.wait_text("#referrals li.referral", "Bea Referred")
    assert li.text == "Bea Referred — pending"
    a.wait(lambda d: a.count("total") == 1, what="the total to become 1")
    assert a.count("pending") == 1 and a.count("converted") == 0
    assert not a.find_all("#no-referrals")
    a.wait_text("#live li", "New referral: Bea Referred")

    # Bea's first purchase converts the referral and earns Ada 5% of it: live as well.
    r = requests.post(tally.url + "/api/purchase", timeout=HTTP_TIMEOUT_S,
                      headers={"Authorization": f"Bearer {admin_key}"},
                      json={"transactionId": f"web-{uuid.uuid4().hex}", "userId": b_id,
                            "amount": "100.00"})
    assert r.status_code == 201, r.text
    a.wait(lambda d: a.count("converted") == 1, what="the converted count to become 1")
    assert a.count("pending") == 0 and a.count("total") == 1
    a.wait_text("#live li", "You earned 5.00 (level 1)")
    a.wait_text("#live li", "A referral converted")
    a.wait_text("#live li", "New reward: free_premium")
    a.wait_text("#referrals li.referral", "Bea Referred — converted")
    assert a.text("#balance") == "5.00" and a.text('[data-earned="1"]') == "5.00"
    assert browser.execute_script("return window.__tallyNoReload") == "kept", "page reloaded"
    a.screenshot("dashboard")
    assert a.console_errors() == []

    # After a reload the server renders the same: earnings, balance, and a reward to claim.
    browser.refresh()
    a.wait_text("#referrals li.referral", "Bea Referred — converted")
    assert a.count("total") == 1 and a.count("converted") == 1 and a.count("pending") == 0
    assert a.text("#balance") == "5.00"
    rows = [tr.text for tr in a.find_all("main table tbody tr")]
    assert rows[0] == "1 5.00", rows
    claim = a.wait_visible("#rewards li form button")
    assert "Free premium" in a.text("#rewards li")
    a.click_and_load(claim)
    a.wait_path("/dashboard")
    a.wait_text("#rewards li", "claimed")
    assert not a.find_all("#rewards li form")
    assert tally.sql("SELECT is_claimed FROM user_rewards WHERE user_id = ?", (uid,)) == [(1,)]
    assert a.console_errors() == []


def test_live_updates_keep_every_figure_in_step(tally, browser, admin_key):
    """A conversion, later earnings and a refund, pushed while the dashboard is open, change
    the referral's line, the earnings table and the wallet balance, not only the Live list:
    the page then shows what a reload would."""
    a = page(browser, tally)
    browser_signup(a, "Cy Converter")
    code = a.text("#referral-code")
    d = tally.signup(name="Dee Buyer", code=code)
    e = tally.signup(name="Eve Second", code=code)
    a.wait_text("#referrals li.referral", "Eve Second — pending")
    a.wait_text("#referrals li.referral", "Dee Buyer — pending")
    browser.execute_script("window.__tallyNoReload = 'kept';")

    def api(path, body):
        r = requests.post(tally.url + path, timeout=HTTP_TIMEOUT_S, json=body,
                          headers={"Authorization": f"Bearer {admin_key}"})
        assert r.status_code == 201, r.text

    tx = f"web-{uuid.uuid4().hex}"
    api("/api/purchase", {"transactionId": f"web-{uuid.uuid4().hex}",
                          "userId": d["user"]["id"], "amount": "10.00"})  # converts; earns 0.50
    api("/api/purchase", {"transactionId": tx, "userId": d["user"]["id"],
                          "amount": "33.33"})  # earns 1.66 (rounded down)
    a.wait_text("#referrals li.referral", "Dee Buyer — converted")
    a.wait_text("#balance", "2.16")
    assert a.text("#referrals li.referral:first-child") == "Eve Second — pending"
    assert a.text('[data-earned="1"]') == "2.16" and a.text('[data-earned="2"]') == "0.00"
    api("/api/purchase/refund", {"transactionId": tx, "amount": "13.33"})  # reverses 0.66
    a.wait_text("#live li", "Commission reversed: -0.66 (level 1)")
    assert a.text("#balance") == "1.50" and a.text('[data-earned="1"]') == "1.50"
    assert (a.count("total"), a.count("pending"), a.count("converted")) == (2, 1, 1)
    assert browser.execute_script("return window.__tallyNoReload") == "kept", "page reloaded"
    live = {
        "referrals": [li.text for li in a.find_all("#referrals li")],
        "balance": a.text("#balance"),
        "earned": [td.text for td in a.find_all("[data-earned]")],
        "counts": [a.count(k) for k in ("total", "pending", "converted", "points")],
    }
    browser.refresh()
    a.wait_visible("#referrals")
    reloaded = {
        "referrals": [li.text for li in a.find_all("#referrals li")],
        "balance": a.text("#balance"),
        "earned": [td.text for td in a.find_all("[data-earned]")],
        "counts": [a.count(k) for k in ("total", "pending", "converted", "points")],
    }
    assert live == reloaded
    assert e["user"]["name"] == "Eve Second"
    assert a.console_errors() == []


# ---- user text is text ----


def test_script_in_a_name_shows_as_text(tally, browser):
    evil = "<script>alert(1)</script>"
    a = page(browser, tally)
    email = browser_signup(a, evil)
    assert a.text("h1") == f"Hello, {evil}"
    assert not a.alert_open()
    # Only the page's own script is in the document; the name made no element.
    srcs = browser.execute_script(
        "return Array.from(document.scripts).map(function(s){return s.getAttribute('src');});")
    assert srcs == ["/static/app.js"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in browser.page_source
    # The bytes the server sent are escaped too (not only the DOM's serialisation).
    session = browser.get_cookie("tally_session")["value"]
    raw = requests.get(tally.url + "/dashboard", cookies={"tally_session": session},
                       timeout=HTTP_TIMEOUT_S).text
    assert "Hello, &lt;script&gt;alert(1)&lt;/script&gt;</h1>" in raw
    assert evil not in raw

    # A referred person's markup, pushed live over the WebSocket, stays text as well.
    code = a.text("#referral-code")
    img = "<img src=x onerror=alert(2)>"
    tally.signup(name=img, code=code)
    li = a.wait_text("#referrals li.referral", img)
    assert li.text == f"{img} — pending"
    assert not a.find_all("#referrals img, #live img")
    assert not a.alert_open()
    # ... and server-rendered after a reload, on the dashboard and the leaderboard.
    browser.refresh()
    li = a.wait_text("#referrals li.referral", img)
    assert not a.find_all("#referrals img") and not a.alert_open()
    a.open("/referral/leaderboard")
    a.wait_text("#leaderboard", evil)
    assert not a.find_all("#leaderboard script") and not a.alert_open()
    assert user_row(tally, email)[1] == evil
    assert a.console_errors() == []


# ---- CSRF ----


def test_a_form_without_its_csrf_token_is_refused(tally):
    f = Form(tally)
    token = f.csrf("/auth/signup")  # the browser now holds the tally_csrf cookie
    assert f.s.cookies.get("tally_csrf") == token
    email = unique_email("csrf")
    data = {"name": "No Token", "email": email, "password": PASSWORD}
    wrong = ("0" if token[0] != "0" else "1") + token[1:]
    attempts = {
        "no field": data,
        "empty field": {**data, "csrf": ""},
        "wrong token": {**data, "csrf": wrong},
        "not hex": {**data, "csrf": "x" * 32},
        "longer": {**data, "csrf": token + "00"},
    }
    for what, body in attempts.items():
        r = f.post("/auth/signup", body)
        assert r.status_code == 403, (what, r.status_code)
        assert "tally_session" not in r.headers.get("Set-Cookie", ""), what
        assert 'id="form-error"' in r.text and "expired" in r.text, what
        # The refused form comes back filled in, with a token that works.
        assert f'value="{email}"' in r.text and CSRF_RE.search(r.text), what
    # A token but no cookie (another site can post a field, not set our cookie).
    r = requests.post(tally.url + "/auth/signup", data={**data, "csrf": token},
                      allow_redirects=False, timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 403
    assert user_count(tally, email) == 0, "a refused form created a user"

    # The other forms refuse too: log-in, log-out, claim.
    tally.signup(name="Has Account", email=email)
    r = f.post("/auth/login", {"email": email, "password": PASSWORD})
    assert r.status_code == 403 and "tally_session" not in r.headers.get("Set-Cookie", "")
    r = f.post("/auth/login", {"email": email, "password": PASSWORD, "csrf": wrong})
    assert r.status_code == 403
    r = f.submit("/auth/login", {"email": email, "password": PASSWORD})
    assert r.status_code == 303 and r.headers["Location"] == "/dashboard"
    r = f.post("/auth/logout", {})
    assert r.status_code == 403
    assert f.get("/dashboard").status_code == 200, "a refused log-out logged out"
    r = f.post("/dashboard/claim", {"rewardId": str(uuid.uuid4()), "csrf": wrong})
    assert r.status_code == 403
    # And with its token the sign-up form goes through.
    email2, _ = Form(tally).signup(name="With Token")
    assert user_count(tally, email2) == 1


# ---- errors beside the field ----


def test_errors_are_shown_beside_the_field_and_input_is_kept(tally, browser):
    p = page(browser, tally)
    email = unique_email("short")
    p.open("/auth/signup")
    p.fill(name="Shorty", email=email, password="short")
    p.submit()
    err = p.wait_visible("#error-password")
    assert "at least 8" in err.text
    # Beside the field: in the same label as the password input.
    label = err.find_element(By.XPATH, "./ancestor::label[1]")
    assert label.find_elements(By.CSS_SELECTOR, "input[name=password]")
    assert p.value("name") == "Shorty" and p.value("email") == email
    assert p.value("password") == "", "a password is never sent back"
    assert len(p.find_all(".error")) == 1
    p.screenshot("signup-error")
    assert user_count(tally, email) == 0

    # Other fields: each error next to its own input.
    taken = unique_email("taken")
    tally.signup(email=taken)
    cases = [
        ({"name": "", "email": unique_email(), "password": PASSWORD}, "name", "empty"),
        ({"name": "Bad Mail", "email": "not-an-email", "password": PASSWORD}, "email",
         "valid email"),
        ({"name": "Twice", "email": taken, "password": PASSWORD}, "email", "already exists"),
        ({"name": "Bad Code", "email": unique_email(), "password": PASSWORD,
          "referralCode": "ZZZZZZZZ"}, "referralCode", "unknown"),
    ]
    for fields, name, words in cases:
        p.open("/auth/signup")
        p.fill(**fields)
        p.submit()
        err = p.wait_visible(f"#error-{name}")
        assert words in err.text, (fields, err.text)
        label = err.find_element(By.XPATH, "./ancestor::label[1]")
        assert label.find_elements(By.CSS_SELECTOR, f"input[name={name}]")
        for k, v in fields.items():
            if k != "password":
                assert p.value(k) == v, (k, fields)


# ---- log-in and log-out ----


def test_logout_login_and_wrong_password(tally, browser):
    email = unique_email("login")
    tally.signup(name="Lou Login", email=email)
    p = page(browser, tally)
    p.open("/dashboard")
    p.wait_path("/auth/login")  # not signed in
    p.open("/")
    p.wait_path("/auth/login")

    p.fill(email=email, password="not the password")
    p.submit()
    err = p.wait_visible("#form-error")
    assert "incorrect" in err.text
    assert p.value("email") == email and p.value("password") == ""
    assert browser.get_cookie("tally_session") is None
    p.screenshot("login")

    p.fill(password=PASSWORD)
    p.submit()
    p.wait_path("/dashboard")
    assert p.text("h1") == "Hello, Lou Login"
    p.open("/")
    p.wait_path("/dashboard")
    p.open("/auth/login")  # signed in: the forms send you to your dashboard
    p.wait_path("/dashboard")
    p.open("/auth/signup")
    p.wait_path("/dashboard")

    p.click_and_load(p.find("header form button[type=submit]"))  # Log out
    p.wait_path("/auth/login")
    assert browser.get_cookie("tally_session") is None
    p.open("/dashboard")
    p.wait_path("/auth/login")
    browser_login(p, email)
    assert p.text("h1") == "Hello, Lou Login"


# ---- admin ----


def test_admin_page_shows_analytics_chart_logs_and_webhooks(tally, browser, browser2,
                                                            admin_key):
    receiver = Receiver()
    try:
        r = requests.post(tally.url + "/api/admin/webhooks", timeout=HTTP_TIMEOUT_S,
                          headers={"Authorization": f"Bearer {admin_key}"},
                          json={"url": receiver.url, "events": ["referral_tracked"]})
        assert r.status_code == 201, r.text
        email = unique_email("admin")
        boss = tally.signup(name="Ada Admin", email=email)
        tally.signup(name="Referred By Admin", code=boss["user"]["referralCode"])
        wait_until(lambda: receiver.count >= 1, what="the webhook delivery")
        wait_until(lambda: tally.sql("SELECT COUNT(*) FROM deliveries WHERE status = "
                                     "'succeeded'")[0][0] >= 1, what="the delivery recorded")
    finally:
        receiver.close()
    tally.cli("jobs", "run", "healthCheck")
    tally.cli("user", "promote", email)
    assert user_row(tally, email)[2] == 1

    p = page(browser, tally)
    browser_login(p, email)
    assert p.find_all("header a[href='/admin']"), "admins get an Admin link"
    p.open("/admin")
    p.wait_visible("#analytics")
    stats = {el.find_element(By.TAG_NAME, "span").text: el.find_element(By.TAG_NAME, "b").text
             for el in p.find_all("#analytics .stat")}
    assert set(stats) == {"Referrals", "Converted", "Conversion rate", "Rewards awarded",
                          "Active codes", "Expired codes"}, stats
    total, converted = tally.sql(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'converted' THEN 1 ELSE 0 END), 0) FROM referrals")[0]
    assert stats["Referrals"] == str(total) and stats["Converted"] == str(converted)
    assert re.fullmatch(r"\d+\.\d\d%", stats["Conversion rate"]), stats
    assert total >= 1

    chart = p.find("svg#trend-chart")
    assert chart.is_displayed() and chart.size["width"] > 200 and chart.size["height"] > 50
    lines = p.find_all("svg#trend-chart polyline")
    assert len(lines) == 2
    for pl in lines:
        assert len(pl.get_attribute("points").split()) == 30  # one point per day
    # Today's sign-ups are above the baseline: the last point's y is not the axis's.
    y_axis = float(p.find("svg#trend-chart line").get_attribute("y1"))
    last_y = float(lines[0].get_attribute("points").split()[-1].split(",")[1])
    assert last_y < y_axis
    assert "sign-ups" in chart.text and "conversions" in chart.text

    logs = [tr.text for tr in p.find_all("#automation-logs tbody tr")]
    assert any("healthCheck" in row for row in logs), logs
    p.wait_text("main", receiver.url)
    p.wait_text("main", "referral_tracked — succeeded, 1 attempt, HTTP 204")
    p.screenshot("admin")
    assert p.console_errors() == []

    # A signed-in user who is not an admin sees the notice (and the response is a 403).
    q = page(browser2, tally)
    plain = browser_signup(q, "Not Admin")
    assert not q.find_all("header a[href='/admin']")
    q.open("/admin")
    q.wait_text("main", "This page is for administrators.")
    assert not q.find_all("#trend-chart, #analytics, #automation-logs")
    session = browser2.get_cookie("tally_session")["value"]
    r = requests.get(tally.url + "/admin", cookies={"tally_session": session},
                     allow_redirects=False, timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 403 and "for administrators" in r.text
    assert user_row(tally, plain)[2] == 0
    # Signed out, the admin page sends you to log in.
    r = requests.get(tally.url + "/admin", allow_redirects=False, timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 303 and r.headers["Location"] == "/auth/login"


# ---- leaderboard ----


def seed_leaderboard(t):
    """Referrers written straight into the database (hashing 60 passwords would take
    seconds): 'Old Timer' with 30 referrals 40 days ago, 'Month Max' with 5 ten days ago and
    21 'Weekly NN' with one referral each today."""
    now = int(time.time() * 1000)
    users, refs = [], []

    def user(name, at):
        uid = str(uuid.uuid4())
        users.append((uid, name, f"{uid}@lb.example.com", "x", at))
        return uid

    def referrals(referrer, n, at):
        for i in range(n):
            refs.append((str(uuid.uuid4()), referrer, user(f"referred {i}", at), "pending", at))

    referrals(user("Old Timer", now - 50 * DAY_MS), 30, now - 40 * DAY_MS)
    referrals(user("Month Max", now - 20 * DAY_MS), 5, now - 10 * DAY_MS)
    for i in range(21):
        referrals(user(f"Weekly {i:02d}", now - DAY_MS + i), 1, now - 1000 + i)
    con = db_connect(t.db_path)
    try:
        con.executemany("INSERT INTO users (id, name, email, password_hash, created_at)"
                        " VALUES (?, ?, ?, ?, ?)", users)
        con.executemany("INSERT INTO referrals (id, referrer_user_id, referred_user_id, status,"
                        " created_at) VALUES (?, ?, ?, ?, ?)", refs)
        con.commit()
    finally:
        con.close()


def board(p):
    return [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in p.find_all("#leaderboard tbody tr")]


def test_leaderboard_periods_and_pages(start_tally, browser):
    t = start_tally()
    seed_leaderboard(t)
    p = page(browser, t)
    p.open("/referral/leaderboard")
    p.wait_visible("#leaderboard")
    periods = p.find("main .pager")
    assert periods.find_element(By.TAG_NAME, "strong").text == "all"
    assert [a.text for a in periods.find_elements(By.TAG_NAME, "a")] == ["month", "week"]
    rows = board(p)
    assert len(rows) == 20
    assert rows[0] == ["1", "Old Timer", "30", "0"]
    assert rows[1] == ["2", "Month Max", "5", "0"]
    assert rows[2][1:] == ["Weekly 00", "1", "0"] and rows[2][0] == "3"
    p.screenshot("leaderboard")
    assert p.console_errors() == []

    p.click_and_load(p.find("main .pager:last-of-type").find_element(By.LINK_TEXT, "Next"))
    p.wait_path("/referral/leaderboard?period=all&page=2")
    rows = board(p)
    assert [r[1] for r in rows] == ["Weekly 18", "Weekly 19", "Weekly 20"]
    assert p.find_all("main .pager:last-of-type a")[0].text == "Previous"

    p.open("/referral/leaderboard")
    p.click_and_load(p.find("main .pager").find_element(By.LINK_TEXT, "month"))
    p.wait_path("/referral/leaderboard?period=month")
    rows = board(p)
    assert rows[0][1:] == ["Month Max", "5", "0"] and "Old Timer" not in [r[1] for r in rows]
    assert p.find("main .pager strong").text == "month"

    p.click_and_load(p.find("main .pager").find_element(By.LINK_TEXT, "week"))
    p.wait_path("/referral/leaderboard?period=week")
    rows = board(p)
    assert len(rows) == 20 and {r[2] for r in rows} == {"1"}
    assert rows[0][1] == "Weekly 00"
    p.click_and_load(p.find("main .pager:last-of-type").find_element(By.LINK_TEXT, "Next"))
    p.wait_path("/referral/leaderboard?period=week&page=2")
    assert [r[1] for r in board(p)] == ["Weekly 20"]
    assert not [a for a in p.find_all("main .pager:last-of-type a") if a.text == "Next"]

    # Nonsense in the query falls back to the defaults instead of failing.
    p.open("/referral/leaderboard?period=<b>&page=-3")
    p.wait_visible("#leaderboard")
    assert p.find("main .pager strong").text == "all" and len(board(p)) == 20


# ---- phone-sized screens ----


def test_pages_fit_a_phone_screen(tally, browser, admin_key):
    email = unique_email("phone")
    who = tally.signup(name="Pat Phone-User With A Rather Long Name", email=email)
    for n in range(2):
        tally.signup(name=f"Friend {n} of the phone user", code=who["user"]["referralCode"])
    tally.cli("jobs", "run", "healthCheck")
    tally.cli("user", "promote", email)
    p = page(browser, tally)
    browser.set_window_size(*PHONE)
    assert browser.execute_script("return window.innerWidth") <= PHONE[0]
    fits = {}
    for path in ("/auth/signup", "/auth/login"):
        p.open(path)
        p.wait_visible("main form")
        sw, cw = p.no_horizontal_scroll()
        fits[path] = (sw, cw, p.wide_elements() if sw > cw else [])
    p.screenshot("phone-login")
    browser_login(p, email)
    p.wait_text("#referrals", "Friend 1")
    for path in ("/dashboard", "/referral/leaderboard", "/admin"):
        p.open(path)
        p.wait_visible("main h1")
        sw, cw = p.no_horizontal_scroll()
        fits[path] = (sw, cw, p.wide_elements() if sw > cw else [])
        if path == "/dashboard":
            assert p.find("#copy-link").is_displayed()
            p.screenshot("phone-dashboard")
        if path == "/admin":
            p.screenshot("phone-admin")
    wide = {k: v for k, v in fits.items() if v[0] > v[1]}
    assert not wide, f"pages wider than the screen (scrollWidth, clientWidth, what): {wide}"


# ---- cookies and headers ----


def cookie_header(resp, name):
    """The Set-Cookie header that sets name (requests joins several with ', ')."""
    raw = resp.raw.headers.getlist("Set-Cookie")
    found = [h for h in raw if h.startswith(name + "=")]
    assert len(found) == 1, raw
    return found[0]


def attrs(set_cookie):
    return {p.strip().split("=")[0].lower(): p.strip() for p in set_cookie.split(";")[1:]}


def test_cookie_flags_and_security_headers(tally):
    f = Form(tally)
    r = f.get("/auth/signup")
    csrf = attrs(cookie_header(r, "tally_csrf"))
    assert "httponly" in csrf and csrf["samesite"].lower() == "samesite=strict"
    assert "secure" not in csrf and csrf["path"] == "Path=/"

    email, r = f.signup(name="Cookie Monster")
    session = attrs(cookie_header(r, "tally_session"))
    assert "httponly" in session, session
    assert session["samesite"].lower() == "samesite=lax", session
    assert session["path"] == "Path=/"
    assert "secure" not in session, "plain HTTP: no Secure flag"
    assert int(session["max-age"].split("=")[1]) > 0

    # Behind TLS (a proxy saying so), both cookies are Secure as well.
    # (requests would not send a Secure cookie back over plain HTTP: pass them by hand.)
    tls = {"X-Forwarded-Proto": "https"}
    r = requests.get(tally.url + "/auth/signup", headers=tls, timeout=HTTP_TIMEOUT_S)
    assert "secure" in attrs(cookie_header(r, "tally_csrf"))
    token = CSRF_RE.search(r.text).group(1)
    r = requests.post(tally.url + "/auth/signup", headers=tls, cookies={"tally_csrf": token},
                      data={"csrf": token, "name": "Behind TLS", "email": unique_email("tls"),
                            "password": PASSWORD},
                      allow_redirects=False, timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 303, r.text[:500]
    tls_session = cookie_header(r, "tally_session")
    assert "secure" in attrs(tls_session)
    r = requests.get(tally.url + "/dashboard", headers=tls, timeout=HTTP_TIMEOUT_S,
                     cookies={"tally_session": tls_session.split(";")[0].split("=", 1)[1]})
    assert f'value="https://127.0.0.1:{tally.port}/r/' in r.text

    # Log-out clears the session cookie.
    r = f.submit("/dashboard", {}, action="/auth/logout")
    assert r.status_code == 303 and r.headers["Location"] == "/auth/login"
    cleared = attrs(cookie_header(r, "tally_session"))
    assert cleared["max-age"] == "Max-Age=0" and "httponly" in cleared

    # Every page has the Content-Security-Policy, with no inline script or style allowed.
    anon = Form(tally)
    f = Form(tally)
    f.signup(name="Header Reader")
    for client, path in [(anon, "/auth/signup"), (anon, "/auth/login"), (f, "/dashboard"),
                         (f, "/referral/leaderboard"), (anon, "/referral/leaderboard"),
                         (f, "/admin")]:
        r = client.get(path)
        csp = r.headers.get("Content-Security-Policy")
        assert r.status_code in (200, 403), (path, r.status_code)
        assert r.headers["Content-Type"].startswith("text/html"), path
        assert csp, f"{path} has no Content-Security-Policy"
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
        assert directives["default-src"] == "'self'", csp
        assert directives["script-src"] == "'self'", csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp
        assert directives["frame-ancestors"] == "'none'", csp
        assert r.headers.get("X-Content-Type-Options") == "nosniff", path
        assert r.headers.get("Cache-Control") == "no-store", path
        assert directives["style-src"] == "'self'", csp
        assert "<script>" not in r.text and " on" + "click=" not in r.text, path
        assert " style=" not in r.text and "<style" not in r.text, path
    # The refused form (403) carries it too.
    r = anon.post("/auth/signup", {"name": "x"})
    assert r.status_code == 403 and r.headers.get("Content-Security-Policy")
    # Static assets come from the binary.
    css = f.get("/static/app.css")
    js = f.get("/static/app.js")
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert js.status_code == 200 and "javascript" in js.headers["Content-Type"]
    assert "http://" not in css.text + js.text and "https://" not in css.text + js.text


# ---- without JavaScript ----


def test_forms_work_without_javascript(tally, browsers):
    # A plain HTTP client: every form is a POST with the token from the page it came from.
    f = Form(tally)
    referrer_email, _ = f.signup(name="No Script Sam")
    d = f.get("/dashboard")
    assert d.status_code == 200 and "Hello, No Script Sam" in d.text
    code = re.search(r'id="referral-code">([A-Z0-9]+)<', d.text).group(1)
    r = f.submit("/dashboard", {}, action="/auth/logout")
    assert r.status_code == 303 and r.headers["Location"] == "/auth/login"
    assert f.get("/dashboard").headers["Location"] == "/auth/login"
    r = f.submit("/auth/login", {"email": referrer_email, "password": PASSWORD})
    assert r.status_code == 303 and r.headers["Location"] == "/dashboard"
    assert "Hello, No Script Sam" in f.get("/dashboard").text

    # The link, followed by a client that does not run scripts either.
    g = Form(tally)
    r = g.get(f"/r/{code.lower()}")
    assert r.status_code in (302, 303) and r.headers["Location"] == f"/auth/signup?ref={code}"
    page_html = g.get(r.headers["Location"]).text
    assert f'name="referralCode" type="text" autocomplete="off" value="{code}"' in page_html
    g.signup(name="Follower Fay", code=code)
    assert "Follower Fay — pending" in re.sub(r"<[^>]+>", "", f.get("/dashboard").text)

    # Chromium with JavaScript switched off: sign up, see the dashboard, log out, log in.
    driver = browsers.new(javascript=False)
    p = Page(driver, tally.url)
    p.open("/auth/signup")
    p.wait_visible("main form")
    email = browser_signup(p, "Javascript Off")
    assert p.text("h1") == "Hello, Javascript Off"
    assert CODE_RE.match(p.text("#referral-code"))
    assert not p.scripting_enabled()
    p.click_and_load(p.find("header form button[type=submit]"))
    p.wait_path("/auth/login")
    browser_login(p, email)
    assert p.text("h1") == "Hello, Javascript Off"
