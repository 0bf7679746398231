"""Headless Chromium for the web-page tests (issue 7), driven by Debian's python3-selenium.

Fixtures (import browsers_fixture, browser_fixture and browser2_fixture into a test module;
they register as the names below):
  browsers   module-scoped pool of Chromium sessions, each with its own fresh --user-data-dir
             in a temporary directory; every session is quit when the module ends.
             browsers.new(javascript=False) starts an extra session (with JavaScript off).
  browser    the pool's first session, reset for each test (about:blank, no cookies, no
             granted permissions, desktop window size, console log drained)
  browser2   a second, independent session (its own cookie jar), reset the same way

Helpers:
  Page       a driver plus the server's base URL: open, fill, submit/click_and_load (wait for
             the next document), wait/wait_path/wait_text/wait_visible, text, value, count,
             watch_text/seen_text (catch a text that changes back quickly), grant_clipboard/
             clipboard_text, alert_open, scripting_enabled, console_errors,
             no_horizontal_scroll/wide_elements, screenshot (the whole page, into
             test-output/screenshots/NAME.png)
Every wait is WebDriverWait on a condition with a deadline; nothing sleeps.
"""

import base64
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")
SCREENSHOT_DIR = Path(__file__).resolve().parent / "test-output" / "screenshots"
CHROME_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
DESKTOP = (1280, 900)
PHONE = (390, 844)
WAIT_S = 10.0


def new_driver(profile_dir, javascript=True, size=DESKTOP):
    """A headless Chromium session whose profile lives in profile_dir."""
    opts = webdriver.ChromeOptions()
    for a in CHROME_ARGS:
        opts.add_argument(a)
    opts.add_argument(f"--user-data-dir={profile_dir}")
    opts.add_argument(f"--window-size={size[0]},{size[1]}")
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if not javascript:
        opts.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    return driver


class Browsers:
    """Chromium sessions for one test module; quit() ends them all."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="tally-chromium-"))
        self.pool = []  # drivers handed out by get(i), reused across tests
        self.extra = []  # drivers from new(), quit when the module ends too

    def _make(self, **kwargs):
        profile = tempfile.mkdtemp(dir=self.root, prefix="profile-")
        return new_driver(profile, **kwargs)

    def get(self, i):
        while len(self.pool) <= i:
            self.pool.append(self._make())
        return self.pool[i]

    def new(self, **kwargs):
        d = self._make(**kwargs)
        self.extra.append(d)
        return d

    def quit(self):
        for d in self.pool + self.extra:
            try:
                d.quit()
            except Exception:  # noqa: BLE001 - quit every session even if one is gone
                pass
        self.pool, self.extra = [], []
        shutil.rmtree(self.root, ignore_errors=True)


def reset(driver):
    """Forget everything a previous test left in this session."""
    try:
        driver.switch_to.alert.dismiss()
    except NoAlertPresentException:
        pass
    driver.get("about:blank")
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.execute_cdp_cmd("Browser.resetPermissions", {})
    driver.set_window_size(*DESKTOP)
    driver.get_log("browser")  # drain the console log
    return driver


@pytest.fixture(scope="module", name="browsers")
def browsers_fixture():
    b = Browsers()
    try:
        yield b
    finally:
        b.quit()


@pytest.fixture(name="browser")
def browser_fixture(browsers):
    return reset(browsers.get(0))


@pytest.fixture(name="browser2")
def browser2_fixture(browsers):
    return reset(browsers.get(1))


def loaded(driver):
    try:
        return driver.execute_script("return document.readyState") == "complete"
    except WebDriverException:  # the document is being replaced: not yet
        return False


class Page:
    """A Chromium session looking at one tally server."""

    def __init__(self, driver, base_url):
        self.d = driver
        self.base = base_url.rstrip("/")

    # ---- navigation ----

    def open(self, path):
        self.d.get(self.base + path)
        return self

    @property
    def path(self):
        url = self.d.current_url
        return url[len(self.base):] if url.startswith(self.base) else url

    def wait(self, cond, timeout=WAIT_S, what="condition"):
        try:
            return WebDriverWait(
                self.d, timeout, poll_frequency=0.05,
                ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
            ).until(cond)
        except TimeoutException:
            try:
                shown = self.d.find_element(By.TAG_NAME, "body").text[:2000]
            except WebDriverException as exc:
                shown = f"(page text unavailable: {exc.msg})"
            pytest.fail(f"timed out after {timeout}s waiting for {what}; at "
                        f"{self.d.current_url}:\n{shown}")

    def wait_path(self, path, timeout=WAIT_S):
        """Wait until the address bar shows path (query string included when given)."""

        def at(d):
            p = self.path
            return p == path or (("?" not in path) and p.split("?")[0] == path)

        self.wait(at, timeout, f"the browser to be at {path}")
        self.wait(loaded, timeout, "the page to load")

    def wait_text(self, css, text, timeout=WAIT_S):
        """Wait until the element at css shows text (a substring); returns the element."""

        def shown(d):
            for el in d.find_elements(By.CSS_SELECTOR, css):
                if text in el.text:
                    return el
            return False

        return self.wait(shown, timeout, f"{css!r} to show {text!r}")

    def wait_visible(self, css, timeout=WAIT_S):
        return self.wait(EC.visibility_of_element_located((By.CSS_SELECTOR, css)), timeout,
                         f"{css!r} to be visible")

    # ---- reading ----

    def find(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def text(self, css):
        return self.find(css).text

    def value(self, name):
        return self.find(f"form [name={name!r}]").get_attribute("value")

    def count(self, key):
        return int(self.text(f'[data-count="{key}"]'))

    def alert_open(self):
        try:
            self.d.switch_to.alert
            return True
        except NoAlertPresentException:
            return False

    def scripting_enabled(self):
        """Whether the page's own scripts may run. WebDriver's scripts run either way, so ask
        the HTML parser: inside <noscript> it makes elements only when scripting is off."""
        return self.d.execute_script(
            "var n=document.createElement('noscript');n.innerHTML='<b>x</b>';"
            "return n.children.length===0;")

    def console_errors(self):
        """Console messages at SEVERE level since the last call, except a missing favicon."""
        return [
            e for e in self.d.get_log("browser")
            if e.get("level") == "SEVERE" and "favicon.ico" not in e.get("message", "")
        ]

    def no_horizontal_scroll(self):
        """(scrollWidth, clientWidth) of the document; the page fits when the first is not
        larger than the second."""
        return self.d.execute_script(
            "var e=document.documentElement;return [e.scrollWidth,e.clientWidth];"
        )

    def wide_elements(self, limit=5):
        """The innermost elements that reach past the right edge of the screen (for a failure
        message): tag, id/class and right edge."""
        return self.d.execute_script(
            "var w=document.documentElement.clientWidth,out=[];"
            "document.querySelectorAll('body *').forEach(function(e){"
            "  var r=e.getBoundingClientRect();"
            "  if(r.right>w+0.5&&!Array.from(e.children).some(function(c){"
            "      return c.getBoundingClientRect().right>w+0.5;}))"
            "    out.push(e.tagName.toLowerCase()+(e.id?'#'+e.id:'')+"
            "      (e.className&&e.className.baseVal===undefined&&e.className?'.'+e.className:'')+"
            "      ' right='+Math.round(r.right)+"
            "      ' text='+JSON.stringify((e.textContent||'').slice(0,40)));"
            "});return out.slice(0,arguments[0]);", limit)

    # ---- acting ----

    def fill(self, **fields):
        for name, value in fields.items():
            el = self.find(f"form [name={name!r}]")
            el.clear()
            if value:
                el.send_keys(value)
        return self

    def click_and_load(self, element):
        """Click something that loads a new document (a submit button, a link) and wait until
        the old document is gone, so that what follows reads the new page."""
        self.d.execute_script("window.__tallyOldPage = true;")
        element.click()

        def new_page_loaded(d):
            try:  # a new document has a new window object, without the mark
                return d.execute_script(
                    "return !window.__tallyOldPage && document.readyState === 'complete';")
            except WebDriverException:  # the old context went away mid-call: not yet
                return False

        self.wait(new_page_loaded, what="the next page to load")
        return self

    def submit(self, form_css="main form"):
        return self.click_and_load(self.find(f"{form_css} button[type=submit]"))

    def watch_text(self, css):
        """Record every text the element at css shows from now on (read with seen_text):
        a change that reverts quickly is still seen, however slowly the test polls."""
        self.d.execute_script(
            "var el=document.querySelector(arguments[0]);window.__seen=window.__seen||{};"
            "var seen=window.__seen[arguments[0]]=[el.textContent];"
            "new MutationObserver(function(){seen.push(el.textContent);})"
            ".observe(el,{childList:true,characterData:true,subtree:true});", css)

    def seen_text(self, css):
        return self.d.execute_script("return (window.__seen||{})[arguments[0]]||[];", css)

    def grant_clipboard(self):
        self.d.execute_cdp_cmd(
            "Browser.grantPermissions",
            {"origin": self.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
        )

    def clipboard_text(self):
        return self.d.execute_async_script(
            "var done=arguments[arguments.length-1];"
            "navigator.clipboard.readText().then(done,function(e){done('ERROR: '+e);});"
        )

    def screenshot(self, name):
        """Save the whole page (not only the viewport) as test-output/screenshots/NAME.png."""
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        w, h = self.d.execute_script(
            "var e=document.documentElement;"
            "return [Math.max(window.innerWidth,1),Math.max(e.scrollHeight,e.clientHeight,1)];"
        )
        shot = self.d.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True,
             "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}},
        )
        path = SCREENSHOT_DIR / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
