"""Fixtures of the dashboard's browser tests (scripts/browser-tests.sh sets the environment).

Every page a test opens goes through `Session.open`, which fails the test on any JavaScript
error or console error, checks that every visible form control has a label, and saves a
screenshot at 1280 px and 390 px wide under ESTEIRA_BROWSER_SCREENSHOTS."""
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
from playwright.sync_api import sync_playwright

BASE = os.environ["ESTEIRA_BROWSER_BASE"]
ADMIN_TOKEN = os.environ["ESTEIRA_BROWSER_TOKEN"]
SHOTS = os.environ["ESTEIRA_BROWSER_SCREENSHOTS"]
DATABASE_URL = os.environ["ESTEIRA_BROWSER_DATABASE_URL"]


class Api:
    """The JSON api, with a bearer token."""

    def __init__(self, token):
        self.token = token

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(BASE + path, data=data, method=method)
        request.add_header("Authorization", "Bearer " + self.token)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def enqueue(self, payload, kind="noop"):
        status, job = self.call("POST", "/v1/jobs", {"kind": kind, "payload": payload})
        assert status == 201, job
        return job["id"].lower()

    def job(self, job_id):
        status, job = self.call("GET", "/v1/jobs/" + job_id)
        assert status == 200, job
        return job

    def wait_for(self, job_id, status, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = self.job(job_id)
            if job["status"] == status:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} is {job['status']}, not {status}, after {timeout}s")

    def new_user(self, prefix="user"):
        status, created = self.call("POST", "/v1/tokens", {"name": f"{prefix}-{uuid.uuid4().hex[:8]}", "role": "user"})
        assert status == 201, created
        return Api(created["token"]), created["id"].lower()


def psql(sql):
    """Runs SQL on the tests' database; the output, unaligned."""
    return subprocess.run(["psql", DATABASE_URL, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


class Session:
    """A browser context signed in with a token: pages opened through it are checked."""

    def __init__(self, browser, token, name, color_scheme="light"):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=color_scheme)
        self.context.set_default_timeout(20_000)
        self.page = self.context.new_page()
        self.errors = []
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        # A page's own 4xx (a refused sign-in, another's job) is what a test asks for; any
        # other failed request (a script, a stylesheet, a fetch, the event stream) is an error.
        self.page.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
                     and self.errors.append(f"console error: {m.text}"))
        self.page.on("response", lambda r: r.status >= 400 and r.request.resource_type != "document"
                     and self.errors.append(f"{r.status} for {r.request.resource_type} {r.url}"))
        self.page.on("requestfailed", lambda r: r.resource_type not in ("document", "eventsource")
                     and r.failure != "net::ERR_ABORTED" and self.errors.append(f"request failed: {r.resource_type} {r.url}: {r.failure}"))
        self.page.on("dialog", lambda d: d.accept())
        self.name = name
        self.shots = 0
        if token:
            self.sign_in(token)

    def sign_in(self, token):
        self.page.goto(BASE + "/ui/")
        assert "/ui/sign-in" in self.page.url
        self.page.get_by_label("API token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(re.compile(r".*/ui/$"))

    def open(self, path, shot=None):
        self.page.goto(BASE + path)
        self.page.wait_for_load_state("networkidle") if path != "/ui/events" else None
        self.check(shot or path)
        return self.page

    def check(self, shot):
        """No script errors so far; every visible control labelled; screenshots at two widths."""
        assert not self.errors, self.errors
        unlabelled = self.page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.type !== 'hidden' && e.offsetParent !== null)
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
            .map(e => e.outerHTML)""")
        assert not unlabelled, f"controls without a label: {unlabelled}"
        self.shots += 1
        base = f"{SHOTS}/{self.name}-{self.shots:02d}-" + re.sub(r"[^a-z0-9]+", "-", shot.lower()).strip("-")
        self.page.screenshot(path=base + "-1280.png", full_page=True)
        self.page.set_viewport_size({"width": 390, "height": 844})
        overflow = self.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        self.page.screenshot(path=base + "-390.png", full_page=True)
        self.page.set_viewport_size({"width": 1280, "height": 900})
        assert overflow <= 1, f"{shot}: the page is {overflow}px wider than a 390px screen"

    def close(self):
        assert not self.errors, self.errors
        self.context.close()


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=os.environ.get("ESTEIRA_BROWSER_CHROMIUM", "/usr/bin/chromium"),
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def api():
    return Api(ADMIN_TOKEN)


@pytest.fixture
def sessions(browser, request):
    """Opens signed-in sessions (`sessions(token)`); each is checked and closed at the end."""
    opened = []

    def open_session(token=ADMIN_TOKEN, name=None, color_scheme="light"):
        s = Session(browser, token, name or f"{request.node.name}-{len(opened)}", color_scheme)
        opened.append(s)
        return s

    yield open_session
    for s in opened:
        s.close()
