"""The viewer page /live/demo, the overlay and the demo login in headless
Chromium against a real `giftstream serve --demo`."""

import json
import urllib.parse
import urllib.request

from conftest import sign_in, stripe_api, until

XSS = "<img src=x onerror=alert(1)>"
ROSES = 12


def overlay_url(server, query=""):
    token = server.token("demo-creator", "creator", scope="overlay:demo")
    return f"/overlay/demo?token={token}{query}"


def send_roses(viewer, n):
    rose = viewer.locator("button[data-gift=rose]")
    rose.wait_for()
    until(viewer, "() => !document.querySelector('button[data-gift=rose]').disabled")
    for _ in range(n):
        rose.click()
    # The balance shown falls by n, once every gift is acknowledged.
    until(viewer, "n => document.querySelector('#balance').textContent.replace(/\\D/g, '') === String(n)", 10000 - n)


def test_twelve_roses_count_to_x12_on_the_overlay(server, open_page):
    overlay = open_page("overlay", viewport={"width": 1280, "height": 720})
    overlay.goto(overlay_url(server, "&position=bl&scale=1.2&max=4"))
    overlay.wait_for_selector("body[data-joined=true]")
    viewer = open_page("viewer", viewport={"width": 1280, "height": 900})
    sign_in(viewer, "viewer-1")
    send_roses(viewer, ROSES)
    card = overlay.locator(f'.card[data-gift=rose][data-count="{ROSES}"]')
    card.wait_for(timeout=10000)
    assert card.locator(".combo").text_content() == f"x{ROSES}"
    assert "viewer-1" in card.text_content()
    # The art is the catalog's SVG, loaded.
    assert card.locator("img.art").get_attribute("src") == "/assets/gifts/rose.svg"
    assert card.locator("img.art").evaluate("i => i.complete && i.naturalWidth > 0")
    # The viewer's own stage shows the streak too, and the balance fell by 12.
    viewer.locator(f'.gift-alert[data-gift=rose][data-count="{ROSES}"]').wait_for(timeout=10000)
    # Stats reach the overlay (viewer count), and options apply.
    until(overlay, "() => document.querySelector('#stats').textContent.includes('watching')")
    assert "pos-bl" in overlay.evaluate("document.body.className")


def test_the_streak_finishes_on_combo_end(server, open_page):
    overlay = open_page("overlay")
    overlay.goto(overlay_url(server))
    overlay.wait_for_selector("body[data-joined=true]")
    viewer = open_page("viewer")
    sign_in(viewer, "viewer-2")
    send_roses(viewer, ROSES)
    overlay.locator(f'.card[data-gift=rose][data-count="{ROSES}"]').wait_for(timeout=10000)
    # combo_end comes once the combo window (3 s) has passed without a step.
    overlay.locator('.card[data-gift=rose][data-done=true]').wait_for(timeout=10000)
    done = overlay.locator('.card[data-gift=rose][data-done=true]')
    assert done.get_attribute("data-count") == str(ROSES)
    viewer.locator('.gift-alert[data-gift=rose][data-done=true]').wait_for(timeout=5000)


def test_a_tip_message_with_markup_shows_as_text(server, open_page):
    overlay = open_page("overlay")
    overlay.goto(overlay_url(server, "&stats=0"))
    overlay.wait_for_selector("body[data-joined=true]")
    assert overlay.locator("#stats").is_hidden()
    viewer = open_page("viewer")
    sign_in(viewer, "viewer-3")
    # The tip form: the message goes to the server as typed; the demo has
    # no payments configured, and the page says so in words.
    viewer.fill("#tip-amount", "5")
    viewer.fill("#tip-message", XSS)
    viewer.click("#tip-send")
    until(viewer, "() => document.querySelector('#tip-status').classList.contains('error')")
    assert "payments are not configured" in viewer.text_content("#tip-status")
    # A tip_event as the server sends it, through each page's own renderer
    # (paying a tip needs Stripe Connect, which the browser harness lacks).
    ev = {"type": "tip_event", "room": "demo", "sender": "viewer-3", "amount_cents": 500,
          "currency": "usd", "message": XSS, "ts": 0}
    overlay.evaluate("async ev => (await import('/overlay/assets/overlay.js')).showTip(ev)", ev)
    viewer.evaluate("async ev => (await import('/ui/live.js')).showTip(ev)", ev)
    for page, sel in ((overlay, ".card.tip .msg"), (viewer, ".tip-alert .tip-message")):
        msg = page.locator(sel)
        msg.wait_for()
        assert msg.text_content() == XSS
        assert page.locator("img[src=x]").count() == 0
        assert "$5.00" in page.locator(sel).locator("..").text_content()
    viewer.wait_for_timeout(300)  # an onerror would have fired by now (dialogs fail the test)


def test_live_page_at_375px_has_no_horizontal_scroll_and_works_by_keyboard(server, open_page):
    page = open_page("viewer-375", viewport={"width": 375, "height": 800}, is_mobile=True, has_touch=True)
    sign_in(page, "viewer-1")
    until(page, "() => !document.querySelector('button[data-gift=rose]').disabled")
    width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1] == 375, f"horizontal scroll: {width}"
    # Too poor for the lion (29,999 coins with 10,000): disabled, with a reason.
    lion = page.locator("button[data-gift=lion]")
    assert lion.is_disabled() and "lion" in lion.get_attribute("title").lower()
    # Tab reaches every enabled gift button, the tip form and the language switch.
    enabled = set(page.eval_on_selector_all("#gift-grid button:not(:disabled)", "bs => bs.map(b => b.dataset.gift)"))
    seen, order = set(), []
    page.locator("body").focus()
    for _ in range(60):
        page.keyboard.press("Tab")
        d = page.evaluate("(() => { const a = document.activeElement; return a.dataset.gift || a.id || a.tagName; })()")
        order.append(d)
        seen.add(d)
    assert enabled <= seen, f"not reached by Tab: {enabled - seen}; order {order}"
    for control in ("tip-amount", "tip-message", "tip-send", "lang", "signout"):
        assert control in seen, f"{control} not reached by Tab: {order}"
    # A gift by keyboard: focus the rose, press Enter.
    page.focus("button[data-gift=rose]")
    page.keyboard.press("Enter")
    until(page, "() => document.querySelector('#balance').textContent.replace(/\\D/g, '') === '9999'")
    # The focus is visible (an outline on the focused button).
    outline = page.eval_on_selector("button[data-gift=rose]", "b => getComputedStyle(b).outlineStyle")
    assert outline != "none"
    login = open_page("login-375", viewport={"width": 375, "height": 800})
    login.goto("/demo/login")
    width = login.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], f"horizontal scroll on /demo/login: {width}"


def test_pages_speak_french_and_switch_to_english(server, open_page):
    page = open_page("viewer-fr", locale="fr-FR", extra_http_headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    sign_in(page, "viewer-2")
    assert page.evaluate("document.documentElement.lang") == "fr"
    assert page.text_content("#gifts-h") == "Envoyer un cadeau"
    until(page, "() => document.querySelector('#badge').textContent === 'EN DIRECT'")
    page.select_option("#lang", "en")
    page.wait_for_selector("html[lang=en]")
    page.wait_for_selector("body[data-joined=true]")
    assert page.text_content("#gifts-h") == "Send a gift"


def test_the_french_viewer_page_sells_eur_packages_and_switches_to_usd(paying_server, open_page):
    page = open_page("viewer-eur", locale="fr-FR", extra_http_headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    sign_in(page, "viewer-3")
    pkg = page.locator("button[data-package=coins_70_eur]")
    pkg.wait_for()
    # French formatting of 0.99 EUR ("0,99 €", with a narrow no-break space).
    assert "0,99" in pkg.text_content() and "€" in pkg.text_content(), pkg.text_content()
    assert page.locator("#packages button").count() == 3
    assert page.locator("#packages button[data-currency=usd]").count() == 0
    assert page.eval_on_selector("#currency", "s => s.value") == "eur"
    assert "EUR" in page.text_content("#tip-amount-label")
    # The switch: USD packages instead, and the choice is kept on reload.
    page.select_option("#currency", "usd")
    page.locator("button[data-package=coins_70]").wait_for()
    assert page.locator("#packages button[data-currency=eur]").count() == 0
    assert "USD" in page.text_content("#tip-amount-label")
    page.reload()
    page.locator("button[data-package=coins_70]").wait_for()
    assert page.eval_on_selector("#currency", "s => s.value") == "usd"


def test_the_viewer_page_shows_the_end_of_the_live(server, open_page):
    page = open_page("viewer-ended")
    sign_in(page, "viewer-1")
    req = urllib.request.Request(server.url + "/v1/rooms/demo", method="DELETE",
                                 headers={"Authorization": "Bearer " + server.token("demo-creator", "creator")})
    assert json.load(urllib.request.urlopen(req))["live"] is False
    page.wait_for_selector("#badge[data-state=ended]", timeout=10000)
    assert page.locator("#notice").is_visible()
    assert page.locator("button[data-gift=rose]").is_disabled()
    assert page.locator("#tip-send").is_disabled()


def test_signed_out_visitors_are_offered_to_sign_in(server, open_page):
    page = open_page("signed-out")
    page.goto("/live/demo")
    page.wait_for_selector("#notice:not([hidden])")
    assert page.locator("#signin").is_visible()
    assert page.locator("button[data-gift=rose]").is_disabled()


def test_the_overlay_reconnects_resumes_once_and_never_replays_old_alerts(server, open_page):
    overlay = open_page("overlay")
    # The overlay's sockets go through the test, which can cut them.
    sockets, cut = [], {"on": False}

    def route(ws):
        if cut["on"]:
            ws.close(code=1011, reason="test: network down")
            return
        ws.connect_to_server()
        sockets.append(ws)

    overlay.route_web_socket("**/v1/ws**", route)
    overlay.goto(overlay_url(server))
    overlay.wait_for_selector("body[data-joined=true]")
    viewer = open_page("viewer")
    sign_in(viewer, "viewer-1")
    send_roses(viewer, 2)
    overlay.locator('.card[data-gift=rose][data-count="2"]').wait_for(timeout=10000)
    # The network drops (every reconnect refused); gifts go on meanwhile.
    cut["on"] = True
    sockets[-1].close(code=1011, reason="test: network down")
    until(overlay, "() => document.body.dataset.state === 'reconnecting'")
    rose = viewer.locator("button[data-gift=rose]")
    for _ in range(3):
        rose.click()
    until(viewer, "() => document.querySelector('#balance').textContent.replace(/\\D/g, '') === '9995'")
    cut["on"] = False
    until(overlay, "() => document.body.dataset.state === 'open'", timeout=40)
    # The resume brings the missed steps, each seq once: one card, x5.
    overlay.locator('.card[data-gift=rose][data-count="5"]').wait_for(timeout=10000)
    assert overlay.locator(".card[data-gift=rose]").count() == 1
    assert len(sockets) == 2
    # The streak ends (combo_end, counters.combo_window_ms after its last
    # gift) before the reload: an end that arrives live after a fresh join
    # is a new announcement, not a replay, and would race the check below.
    overlay.locator('.card[data-gift=rose][data-count="5"][data-done=true]').wait_for(timeout=10000)
    # A reload joins afresh: the old streak is not replayed as a new alert.
    overlay.reload()
    overlay.wait_for_selector("body[data-joined=true]")
    overlay.wait_for_timeout(1500)
    assert overlay.locator(".card").count() == 0


def test_a_big_gift_plays_full_screen_and_overlay_options_apply(server, open_page):
    overlay = open_page("overlay-options", viewport={"width": 1280, "height": 720})
    overlay.goto(overlay_url(server, "&position=tr&scale=0.8&max=2&lang=fr"))
    overlay.wait_for_selector("body[data-joined=true]")
    assert "pos-tr" in overlay.evaluate("document.body.className")
    assert overlay.evaluate("getComputedStyle(document.body).getPropertyValue('--scale').trim()") == "0.8"
    viewer = open_page("viewer-big")
    sign_in(viewer, "viewer-2")
    until(viewer, "() => !document.querySelector('button[data-gift=galaxy]').disabled")
    viewer.click("button[data-gift=galaxy]")
    # 1,000 coins: full screen on both pages, with the art.
    for page in (viewer, overlay):
        big = page.locator("#big")
        big.wait_for(state="visible", timeout=10000)
        assert big.locator("img").get_attribute("src") == "/assets/gifts/galaxy.svg"
        assert "viewer-2" in big.text_content()
    # The overlay speaks French (lang=fr), and shows at most 2 cards.
    until(overlay, "() => document.querySelector('#stats').textContent.includes('spectateurs')")
    for gift in ("rose", "finger_heart", "perfume"):
        viewer.click(f"button[data-gift={gift}]")
        overlay.locator(f".card[data-gift={gift}]").wait_for(timeout=10000)
    assert overlay.locator(".card").count() == 2
    until(viewer, "() => document.querySelector('#balance').textContent.replace(/\\D/g, '') === '8974'")


def test_buying_coins_credits_the_balance_once_after_the_webhook(paying_server, stripe_url, open_page):
    page = open_page("viewer-buy")
    sign_in(page, "viewer-1")
    pkg = page.locator("button[data-package=coins_70]")
    pkg.wait_for()
    assert "$0.99" in pkg.text_content()
    with page.expect_response("**/v1/coins/purchases") as resp:
        pkg.click()
    purchase = resp.value.json()
    assert purchase["coins"] == 70, purchase
    # The Payment Element (localstripe's mock of it) is on the page.
    page.locator("#pay:not([hidden]) #pay-element input").first.wait_for()
    assert "$0.99" in page.text_content("#pay-title")
    for field, value in (("number", "4000002760003184"), ("exp_month", "12"), ("exp_year", "34"), ("cvc", "123")):
        page.fill(f"#pay-element input[placeholder={field}]", value)
    # localstripe's Stripe.js mock attaches no card itself: the harness does
    # that part with the secret key (a card that asks for 3D Secure), then
    # the page confirms through Stripe.js, which asks for authentication.
    pm = stripe_api(stripe_url, "/v1/payment_methods", {
        "type": "card", "card[number]": "4000002760003184", "card[exp_month]": "12",
        "card[exp_year]": "2034", "card[cvc]": "123"})
    pi = purchase["payment_intent"]
    stripe_api(stripe_url, f"/v1/payment_intents/{pi}", {"payment_method": pm["id"]})
    assert stripe_api(stripe_url, f"/v1/payment_intents/{pi}/confirm", {})["status"] == "requires_action"
    page.click("#pay-go")
    page.get_by_role("button", name="Complete authentication").click()
    page.locator("#pay").wait_for(state="hidden", timeout=10000)
    # The signed webhook credits the coins; the page shows them, once.
    until(page, "() => document.querySelector('#balance').textContent.replace(/\\D/g, '') === '10070'", timeout=30)
    assert "70" in page.text_content("#coins-status")
    page.wait_for_timeout(2500)
    assert page.text_content("#balance").replace(",", "").replace("\u202f", "").startswith("10070")
    wallet = page.evaluate("async () => (await (await fetch('/v1/wallet')).json()).coins")
    assert wallet == 10070


def test_the_overlay_goal_bar_fills_with_the_lives_diamonds(server, open_page):
    # The live's diamonds so far (other tests gift in the same room).
    overlay = open_page("overlay")
    overlay.goto(overlay_url(server, "&goal=1000000000"))
    until(overlay, "() => document.querySelector('#stats').textContent.includes('watching')")
    before = int(overlay.get_attribute("#goal", "data-diamonds"))
    # A goal three roses away, with a label that is markup.
    label = urllib.parse.quote(XSS)
    overlay.goto(overlay_url(server, f"&goal={before + 3}&goal_label={label}"))
    until(overlay, "() => document.querySelector('#stats').textContent.includes('watching')")
    goal = overlay.locator("#goal")
    assert goal.is_visible()
    assert overlay.text_content("#goal .goal-label") == XSS
    assert overlay.locator("#goal img").count() == 0
    assert "reached" not in goal.get_attribute("class")
    viewer = open_page("viewer")
    sign_in(viewer, "viewer-2")
    rose = viewer.locator("button[data-gift=rose]")
    rose.wait_for()
    until(viewer, "() => !document.querySelector('button[data-gift=rose]').disabled")
    for _ in range(3):
        rose.click()
    until(overlay, "() => document.querySelector('#goal').classList.contains('reached')", timeout=15)
    assert int(goal.get_attribute("data-diamonds")) >= before + 3
    assert overlay.get_attribute("#goal .goal-bar", "aria-valuenow") == str(before + 3)
    assert overlay.evaluate("document.querySelector('#goal .goal-fill').style.width") == "100%"
