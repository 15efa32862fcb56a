"""Fixtures of the browser tests: a `giftstream serve --demo` per test (free
loopback ports, embedded engine, temp SQLite ledger), headless Debian
Chromium through Playwright, pages signed in through /demo/login, and a
screenshot of every page a test opened, taken at its end (pass or fail),
in $GIFTSTREAM_SCREENSHOTS (target/screenshots/)."""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("GIFTSTREAM_BIN") or str(REPO / "target" / "debug" / "giftstream")
# The Stripe contract double (Connect, transfers, destination charges) as a
# process in front of localstripe: stripe-double/ in this workspace.
DOUBLE_BIN = os.environ.get("GIFTSTREAM_STRIPE_DOUBLE_BIN") or str(Path(BIN).parent / "giftstream-stripe-double")
STRIPE_KEY = "sk_test_giftstream_browser"
CHROMIUM = os.environ.get("GIFTSTREAM_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("GIFTSTREAM_SCREENSHOTS") or REPO / "target" / "screenshots")
# Screenshots that illustrate the README: copied to $GIFTSTREAM_DOCS_IMG
# (docs/img) when that is set: `GIFTSTREAM_DOCS_IMG=docs/img scripts/browser-test`.
DOCS_IMG = {
    "test_twelve_roses_count_to_x12_on_the_overlay-viewer": "live.png",
    "test_twelve_roses_count_to_x12_on_the_overlay-overlay": "overlay.png",
    "test_the_overlay_goal_bar_fills_with_the_lives_diamonds-overlay": "overlay-goal.png",
    "test_live_page_at_375px_has_no_horizontal_scroll_and_works_by_keyboard-viewer-375": "live-375.png",
    "test_live_page_at_375px_has_no_horizontal_scroll_and_works_by_keyboard-login-375": "demo-login-375.png",
    "test_a_big_gift_plays_full_screen_and_overlay_options_apply-overlay-options": "overlay-big-gift-fr.png",
    "test_the_studio_shows_gifts_pending_then_held_then_available-studio": "studio.png",
    "test_studio_and_video_page_at_375px_work_by_keyboard-studio-375": "studio-375.png",
    "test_a_gift_with_a_message_reaches_the_video_page_live_as_text-watcher": "video.png",
    "test_studio_and_video_page_at_375px_work_by_keyboard-video-375": "video-375.png",
    "test_a_muted_word_in_look_alike_spellings_never_reaches_the_overlay_or_other_viewers-studio": "studio-moderation.png",
    "test_the_moderation_tab_at_375px_works_by_keyboard_and_in_french-studio-moderation-375": "studio-moderation-375.png",
    "test_a_brand_publishes_a_campaign_a_creator_applies_and_the_brand_accepts-marketplace": "marketplace.png",
    "test_a_brand_publishes_a_campaign_a_creator_applies_and_the_brand_accepts-brand": "brand.png",
    "test_the_marketplace_at_375px_works_by_keyboard_and_in_french-marketplace-375": "marketplace-375.png",
    "test_a_contract_paid_delivered_approved_and_paid_out_and_one_rejected_and_refunded-marketplace-contracts-section": "marketplace-contracts.png",
    "test_a_contract_paid_delivered_approved_and_paid_out_and_one_rejected_and_refunded-brand-contracts-section": "brand-contracts.png",
    "test_a_contract_paid_delivered_approved_and_paid_out_and_one_rejected_and_refunded-marketplace-contracts-375": "marketplace-contracts-375.png",
    "test_a_contract_paid_delivered_approved_and_paid_out_and_one_rejected_and_refunded-brand-contracts-375": "brand-contracts-375.png",
}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Server:
    """A running `giftstream serve --demo`."""

    def __init__(self, tmp, stripe_url=None, env=None, api_url=None, listen="127.0.0.1:0"):
        """`stripe_url`: localstripe (Stripe.js mock, webhooks); `api_url`:
        where the server calls Stripe's API (default: localstripe)."""
        self.dir = tmp
        ready = Path(tmp) / "ready"
        self.env = {
            **os.environ,
            "GIFTSTREAM_CONFIG": str(REPO / "config" / "default.toml"),
            "GIFTSTREAM_AUTH__JWT_SECRET": "browser-test-secret-0123456789abcdef0123",
            "GIFTSTREAM_COUNTERS__URL": "memory",
            "GIFTSTREAM_LEDGER__URL": f"sqlite://{tmp}/ledger.db",
            "GIFTSTREAM_SETTLEMENT__FLUSH_INTERVAL_MS": "50",
            "GIFTSTREAM_HTTP__METRICS_LISTEN": "127.0.0.1:0",
            "RUST_LOG": os.environ.get("RUST_LOG", "giftstream=warn"),
        }
        self.env.update(env or {})
        if stripe_url:
            self.env.update({
                "GIFTSTREAM_STRIPE__SECRET_KEY": STRIPE_KEY,
                "GIFTSTREAM_STRIPE__WEBHOOK_SECRET": f"whsec_{uuid.uuid4().hex}",
                "GIFTSTREAM_STRIPE__API_BASE_URL": api_url or stripe_url,
                "GIFTSTREAM_STRIPE__RETRY_BACKOFF_MS": "10",
                "GIFTSTREAM_STRIPE__JS_URL": f"{stripe_url}/js.stripe.com/v3/",
                "GIFTSTREAM_STRIPE__PUBLISHABLE_KEY": "pk_test_giftstream_browser",
            })
        self.log = open(Path(tmp) / "server.log", "w")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--demo", "--listen", listen, "--ready-file", str(ready)],
            cwd=tmp, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while not (ready.exists() and ready.read_text().endswith("\n")):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("server did not start: " + (Path(tmp) / "server.log").read_text())
            time.sleep(0.05)
        self.addr = ready.read_text().strip()
        self.url = f"http://{self.addr}"
        if stripe_url:
            # localstripe sends its signed webhooks here.
            form = urllib.parse.urlencode({
                "url": f"{self.url}/v1/stripe/webhook",
                "secret": self.env["GIFTSTREAM_STRIPE__WEBHOOK_SECRET"],
                "events[0]": "payment_intent.succeeded",
            }).encode()
            urllib.request.urlopen(f"{stripe_url}/_config/webhooks/{uuid.uuid4().hex}", form, timeout=10)
        # The demo is set up (room `demo`, coins) once its banner is out.
        while "giftstream demo is live" not in (Path(tmp) / "server.log").read_text():
            if time.time() > deadline:
                raise RuntimeError("demo did not start")
            time.sleep(0.05)

    def token(self, user, role, scope=None):
        args = [BIN, "token", user, "--role", role]
        if scope:
            args += ["--scope", scope]
        out = subprocess.run(args, cwd=self.dir, env=self.env, check=True,
                             capture_output=True, text=True).stdout
        return re.findall(r"[\w-]+\.[\w-]+\.[\w-]+", out)[-1]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture
def server():
    with tempfile.TemporaryDirectory(prefix="gs-browser-") as tmp:
        s = Server(tmp)
        try:
            yield s
        finally:
            s.stop()


@pytest.fixture
def stripe_url():
    url = os.environ.get("GIFTSTREAM_TEST_STRIPE_URL")
    if not url:
        pytest.skip("no localstripe (GIFTSTREAM_TEST_STRIPE_URL); scripts/browser-test starts one")
    return url.rstrip("/")


@pytest.fixture
def paying_server(stripe_url):
    """A demo server with payments through localstripe."""
    with tempfile.TemporaryDirectory(prefix="gs-browser-pay-") as tmp:
        s = Server(tmp, stripe_url)
        try:
            yield s
        finally:
            s.stop()


def stripe_api(stripe_url, path, form=None):
    """Call a Stripe API (localstripe or the double) with the test secret
    key: a POST of `form`, or a GET without one."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(f"{stripe_url}{path}", data,
                                 headers={"Authorization": f"Bearer {STRIPE_KEY}"})
    return json.load(urllib.request.urlopen(req, timeout=10))


def free_port():
    """A loopback port free right now (for a server whose own URL must be
    in its config before it starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def connect_server(stripe_url):
    """A demo server paying through the Stripe contract double (Connect
    onboarding with a hosted page, destination charges, transfers) in
    front of localstripe, with a 2 s payout hold and a 100-diamond
    cash-out minimum. `.double` is the double's URL."""
    double = subprocess.Popen([DOUBLE_BIN, "--upstream", stripe_url], stdout=subprocess.PIPE, text=True)
    try:
        line = double.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"stripe double did not start ({DOUBLE_BIN}): {line!r}")
        double_url = line.split()[-1]
        port = free_port()
        studio = f"http://127.0.0.1:{port}/studio"
        env = {
            "GIFTSTREAM_STRIPE__ONBOARD_RETURN_URL": f"{studio}?payouts=return",
            "GIFTSTREAM_STRIPE__ONBOARD_REFRESH_URL": f"{studio}?payouts=refresh",
            "GIFTSTREAM_STRIPE__CASHOUT_DIAMONDS_MIN": "100",
            "GIFTSTREAM_PAYOUTS__HOLD_S": "2",
        }
        with tempfile.TemporaryDirectory(prefix="gs-browser-connect-") as tmp:
            s = Server(tmp, stripe_url, env=env, api_url=double_url, listen=f"127.0.0.1:{port}")
            s.double = double_url
            # The double tells the server of account.updated (onboarding done).
            form = urllib.parse.urlencode({
                "url": f"{s.url}/v1/stripe/webhook",
                "secret": s.env["GIFTSTREAM_STRIPE__WEBHOOK_SECRET"],
            }).encode()
            urllib.request.urlopen(f"{double_url}/__double/webhooks", form, timeout=10)
            try:
                yield s
            finally:
                s.stop()
    finally:
        double.terminate()
        double.wait(10)


@pytest.fixture
def studio_server():
    """A demo server whose settlement runs only when a batch of four gifts
    waits (its timer is an hour), so gifts stay pending until the test sends
    the fourth; and whose payout hold is short (held diamonds become
    available within the test). A timed flush would race the test's clicks
    and the studio's 2 s poll: with a 4 s timer, one run in four or so
    settled the roses before the studio saw them pending."""
    env = {
        "GIFTSTREAM_SETTLEMENT__FLUSH_INTERVAL_MS": "3600000",
        "GIFTSTREAM_SETTLEMENT__BATCH_LEN_MAX": "4",
        "GIFTSTREAM_PAYOUTS__HOLD_S": "8",
    }
    with tempfile.TemporaryDirectory(prefix="gs-browser-studio-") as tmp:
        s = Server(tmp, env=env)
        try:
            yield s
        finally:
            s.stop()


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def base_url(request):
    """The URL of the test's server (`paying_server` when it uses one)."""
    names = ("paying_server", "studio_server", "connect_server")
    name = next((n for n in names if n in request.fixturenames), "server")
    return request.getfixturevalue(name).url


@pytest.fixture
def open_page(browser, base_url, request):
    """open_page(name, **context options) -> a Page in its own context
    (its own cookies); JavaScript dialogs fail the test; every page is
    screenshotted at the end as <test>-<name>.png."""
    opened = []
    dialogs = []

    def make(name, **opts):
        ctx = browser.new_context(base_url=base_url, **opts)
        page = ctx.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: print(f"[{name}] page error: {e}"))
        page.on("console", lambda m: m.type == "error" and print(f"[{name}] console: {m.text}"))
        opened.append((name, ctx, page))
        return page

    make.dialogs = dialogs
    yield make
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name, ctx, page in opened:
        try:
            full = not name.startswith("overlay")
            shot = SHOTS / f"{request.node.name}-{name}.png"
            page.screenshot(path=str(shot), full_page=full)
            to_docs(shot)
        except Exception as e:  # a crashed page: the test already failed
            print(f"screenshot {name}: {e}")
        ctx.close()
    assert not dialogs, f"a script opened a dialog: {dialogs}"


def to_docs(shot):
    """Copy a screenshot that illustrates the README (DOCS_IMG) to
    $GIFTSTREAM_DOCS_IMG when that is set."""
    docs = os.environ.get("GIFTSTREAM_DOCS_IMG")
    if docs and shot.stem in DOCS_IMG:
        Path(docs).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(docs) / DOCS_IMG[shot.stem])


def section_shot(request, locator, name):
    """A screenshot of one element now, as <test>-<name>.png (and to the
    docs when listed in DOCS_IMG)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / f"{request.node.name}-{name}.png"
    locator.screenshot(path=str(shot))
    to_docs(shot)


def until(page, js, arg=None, timeout=10.0):
    """Poll `js` (a function source, run with `arg`) until it returns a
    truthy value; returns it. (Playwright's wait_for_function evaluates
    strings in the page, which the pages' CSP forbids.)"""
    deadline = time.time() + timeout
    while True:
        v = page.evaluate(js, arg)
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {js}")
        time.sleep(0.1)


def sign_in_creator(page):
    """Sign in on /demo/login as demo-creator; lands on /studio, loaded."""
    page.goto("/demo/login")
    page.wait_for_selector("body[data-ready=true]")
    page.get_by_role("button", name=re.compile("demo-creator")).click()
    page.wait_for_url("**/studio")
    page.wait_for_selector("body[data-ready=true]")


def sign_in(page, user):
    """Sign in on /demo/login as `user`; lands on /live/demo, joined."""
    page.goto("/demo/login")
    page.wait_for_selector("body[data-ready=true]")
    page.get_by_role("button", name=re.compile(user)).click()
    page.wait_for_url("**/live/demo")
    page.wait_for_selector("body[data-joined=true]")


def pay_in_page(page, stripe_url, pi):
    """Pay PaymentIntent `pi` through the page's Payment Element (localstripe's
    Stripe.js mock) with a card that asks for 3D Secure, as
    test_buying_coins_credits_the_balance_once_after_the_webhook does."""
    page.locator("#pay:not([hidden]) #pay-element input").first.wait_for()
    for field, value in (("number", "4000002760003184"), ("exp_month", "12"), ("exp_year", "34"), ("cvc", "123")):
        page.fill(f"#pay-element input[placeholder={field}]", value)
    pm = stripe_api(stripe_url, "/v1/payment_methods", {
        "type": "card", "card[number]": "4000002760003184", "card[exp_month]": "12",
        "card[exp_year]": "2034", "card[cvc]": "123"})
    stripe_api(stripe_url, f"/v1/payment_intents/{pi}", {"payment_method": pm["id"]})
    assert stripe_api(stripe_url, f"/v1/payment_intents/{pi}/confirm", {})["status"] == "requires_action"
    page.click("#pay-go")
    page.get_by_role("button", name="Complete authentication").click()
    page.locator("#pay").wait_for(state="hidden", timeout=10000)


def import_followers(server, creator, n):
    """`n` followers for `creator` through POST /v1/admin/followers/import."""
    body = "".join(f'{{"follower": "fan-{i}", "creator": "{creator}"}}\n' for i in range(n)).encode()
    req = urllib.request.Request(f"{server.url}/v1/admin/followers/import", body, method="POST", headers={
        "Authorization": f"Bearer {server.token('ops', 'admin')}",
        "Content-Type": "application/x-ndjson",
    })
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200


def open_marketplace(page):
    page.goto("/marketplace")
    page.wait_for_selector("body[data-ready=true]")


def sign_in_brand(page):
    """Sign in on /demo/login as demo-brand; lands on /brand, loaded."""
    page.goto("/demo/login")
    page.wait_for_selector("body[data-ready=true]")
    page.get_by_role("button", name=re.compile("demo-brand")).click()
    page.wait_for_url("**/brand")
    page.wait_for_selector("body[data-ready=true]")
