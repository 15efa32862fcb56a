"""The studio's moderation tab, and what moderation does to the overlay and
the viewer pages (issue #17), in headless Chromium against a real
`giftstream serve --demo` (room `demo` of `demo-creator`).

Look-alike spellings: the muted word is `spoiler`; viewers write it with
Cyrillic letters (`sроilеr`: р U+0440, е U+0435), spaced out and accented
(`S P O Ï L E R`): the filter must catch both, the money still moves, and
nobody but the creator sees the text."""

import re

from conftest import sign_in, sign_in_creator, until

WORD = "spoiler"
LOOK_ALIKE = "nice s\u0440oil\u0435r here"  # Cyrillic р and е
SPACED = "S P O \u00cf L E R !!"  # spaced out, Ï accented
XSS = "<img src=x onerror=alert(1)>"


def overlay_url(server, query=""):
    token = server.token("demo-creator", "creator", scope="overlay:demo")
    return f"/overlay/demo?token={token}{query}"


def open_overlay(open_page, server):
    overlay = open_page("overlay", viewport={"width": 1280, "height": 720})
    overlay.goto(overlay_url(server))
    overlay.wait_for_selector("body[data-joined=true]")
    return overlay


def open_moderation(page):
    """The signed-in creator's studio, on the moderation tab, loaded."""
    status = page.evaluate("async () => (await fetch('/v1/creators/me/moderation/settings')).status")
    assert status == 200
    page.click("#tab-moderation")
    page.wait_for_selector("body[data-moderation-ready=true]")
    until(page, "() => document.body.dataset.inboxJoined === 'true'")
    assert page.locator("#moderation").is_visible() and page.locator("#studio").is_hidden()


def balance(page):
    return int(re.sub(r"\D", "", page.text_content("#balance")))


def gift(page, gift_id, message):
    """Send one gift with a message from the live page; waits for its ack
    (the balance shown falls)."""
    until(page, "g => !document.querySelector(`button[data-gift=${g}]`).disabled", gift_id)
    before = balance(page)
    page.fill("#gift-message", message)
    page.click(f"button[data-gift={gift_id}]")
    until(page, "b => Number(document.querySelector('#balance').textContent.replace(/\\D/g, '')) < b", before)


def mute(studio, word, mode="word"):
    studio.fill("#word-text", word)
    studio.select_option("#word-mode", mode)
    studio.click("#word-add")
    studio.locator(f'#words li[data-word="{word}"][data-mode="{mode}"]').wait_for()


def test_the_creator_blocks_a_viewer_from_the_studio_and_their_live_page_refuses_them(server, open_page):
    viewer = open_page("viewer")
    sign_in(viewer, "viewer-1")
    studio = open_page("studio", viewport={"width": 1280, "height": 1000})
    sign_in_creator(studio)
    open_moderation(studio)
    # Blocking oneself is refused, in words.
    studio.fill("#block-user", "demo-creator")
    studio.click("#block-go")
    until(studio, "() => document.getElementById('blocks-status').classList.contains('error')")
    # Block viewer-1 by user id: the list and the log show it...
    studio.fill("#block-user", "viewer-1")
    studio.click("#block-go")
    studio.locator("#t-blocks tr[data-user=viewer-1]").wait_for()
    assert "demo-creator" in studio.text_content("#t-blocks tr[data-user=viewer-1]")
    assert "viewer-1" in studio.text_content("#blocks-status")
    studio.locator("#t-audit tr[data-action=block]").wait_for()
    # ...and the viewer's open page is dropped at once and says why.
    viewer.wait_for_selector("body[data-blocked=true]", timeout=10000)
    assert "blocked you" in viewer.text_content("#notice")
    assert viewer.locator("button[data-gift=rose]").is_disabled()
    # Coming back is refused too.
    viewer.reload()
    viewer.wait_for_selector("body[data-blocked=true]", timeout=10000)
    assert viewer.locator("body[data-joined=true]").count() == 0
    # Unblock (by keyboard): the viewer can join again.
    studio.focus("#t-blocks tr[data-user=viewer-1] button")
    studio.keyboard.press("Enter")
    until(studio, "() => !document.querySelector('#t-blocks tr[data-user=viewer-1]')")
    studio.locator("#t-audit tr[data-action=unblock]").wait_for()
    viewer.reload()
    viewer.wait_for_selector("body[data-joined=true]", timeout=10000)
    assert viewer.locator("body[data-blocked=true]").count() == 0


def test_a_muted_word_in_look_alike_spellings_never_reaches_the_overlay_or_other_viewers(server, open_page):
    studio = open_page("studio", viewport={"width": 1280, "height": 1000})
    sign_in_creator(studio)
    open_moderation(studio)
    mute(studio, WORD)
    studio.locator("#t-audit tr[data-action=words_set]").wait_for()
    overlay = open_overlay(open_page, server)
    watcher = open_page("watcher")
    sign_in(watcher, "viewer-2")
    sender = open_page("sender")
    sign_in(sender, "viewer-3")
    # A clean message reaches the overlay and the other viewer, as text.
    gift(sender, "rose", XSS)
    overlay.locator(".card[data-gift=rose] .msg").wait_for(timeout=10000)
    assert overlay.text_content(".card[data-gift=rose] .msg") == XSS
    watcher.locator(".gift-alert[data-gift=rose] .alert-message").wait_for(timeout=10000)
    assert watcher.text_content(".gift-alert[data-gift=rose] .alert-message") == XSS
    # The word in look-alike letters, then spaced out and accented: the
    # gifts go through (the money is real), the messages do not.
    coins = balance(sender)
    gift(sender, "finger_heart", LOOK_ALIKE)
    gift(sender, "perfume", SPACED)
    assert balance(sender) < coins
    for g in ("finger_heart", "perfume"):
        overlay.locator(f".card[data-gift={g}]").wait_for(timeout=10000)
        watcher.locator(f".gift-alert[data-gift={g}] .message-hidden[data-state=filtered]").wait_for(timeout=10000)
    until(overlay, "() => document.querySelector('.card[data-gift=perfume]').dataset.messageState === 'filtered'")
    assert overlay.locator(".card[data-gift=finger_heart] .msg, .card[data-gift=perfume] .msg").count() == 0
    for page in (overlay, watcher):
        text = page.evaluate("() => document.body.textContent")
        assert LOOK_ALIKE not in text and SPACED not in text and "S P O" not in text
    # The studio shows both originals under "filtered", live, with why.
    for original in (LOOK_ALIKE, SPACED):
        until(studio, "m => [...document.querySelectorAll('#t-filtered .original')].some(e => e.textContent === m)", original)
    assert "spoiler" in studio.text_content("#t-filtered")
    assert studio.locator("img[src=x]").count() == 0 and overlay.locator("img[src=x]").count() == 0
    overlay.wait_for_timeout(300)  # an onerror would have fired by now (dialogs fail the test)


def test_a_held_message_approved_in_the_studio_appears_once_on_the_overlay(server, open_page):
    studio = open_page("studio", viewport={"width": 1280, "height": 1000})
    sign_in_creator(studio)
    open_moderation(studio)
    # Hold messages on gifts under 100 coins (a rose is 1).
    studio.fill("#rule-coins", "100")
    studio.click("#rules-save")
    until(studio, "() => document.getElementById('rules-status').textContent === 'Saved.'")
    studio.locator("#t-audit tr[data-action=settings_set]").wait_for()
    overlay = open_overlay(open_page, server)
    sender = open_page("sender")
    sign_in(sender, "viewer-1")
    watcher = open_page("watcher")
    sign_in(watcher, "viewer-2")
    gift(sender, "rose", "merci beaucoup")
    # Held: the gift shows without its message; the studio's queue gets it live.
    overlay.locator(".card[data-gift=rose]").wait_for(timeout=10000)
    until(overlay, "() => document.querySelector('.card[data-gift=rose]').dataset.messageState === 'held'")
    watcher.locator(".gift-alert[data-gift=rose] .message-hidden[data-state=held]").wait_for(timeout=10000)
    item = studio.locator("#queue li.queue-item")
    item.wait_for(timeout=10000)
    assert item.locator(".queue-message").text_content() == "merci beaucoup"
    assert "viewer-1" in item.text_content()
    assert studio.text_content("#held-badge") == "1"
    assert "merci beaucoup" not in overlay.evaluate("() => document.body.textContent")
    # Approved (by keyboard): it appears on the overlay and the other
    # viewer's page, on the gift's alert, once.
    studio.focus("#queue li.queue-item button[data-decide=approve]")
    studio.keyboard.press("Enter")
    until(studio, "() => document.querySelectorAll('#queue li').length === 0")
    assert studio.locator("#held-badge").is_hidden()
    overlay.locator(".card[data-gift=rose][data-approved=true] .msg").wait_for(timeout=10000)
    watcher.locator(".gift-alert[data-gift=rose][data-approved=true] .alert-message").wait_for(timeout=10000)
    overlay.wait_for_timeout(1500)
    count = "() => [...document.querySelectorAll('.msg, .alert-message')].filter(e => e.textContent === 'merci beaucoup').length"
    assert overlay.evaluate(count) == 1
    assert watcher.evaluate(count) == 1
    studio.locator("#t-audit tr[data-action=approve]").wait_for()
    # A rejected one never shows.
    gift(sender, "finger_heart", "second message")
    studio.locator("#queue li.queue-item").wait_for(timeout=10000)
    studio.click("#queue li.queue-item button[data-decide=reject]")
    until(studio, "() => document.querySelectorAll('#queue li').length === 0")
    studio.locator("#t-audit tr[data-action=reject]").wait_for()
    overlay.wait_for_timeout(1500)
    assert "second message" not in overlay.evaluate("() => document.body.textContent")
    assert "second message" not in watcher.evaluate("() => document.body.textContent")


def test_the_moderation_tab_at_375px_works_by_keyboard_and_in_french(server, open_page):
    studio = open_page("studio-moderation-375", viewport={"width": 375, "height": 800}, is_mobile=True, has_touch=True)
    sign_in_creator(studio)
    status = studio.evaluate("async () => (await fetch('/v1/creators/me/moderation/settings')).status")
    assert status == 200
    # The tabs by keyboard: arrows move between them (ARIA tabs).
    studio.focus("#tab-studio")
    studio.keyboard.press("ArrowRight")
    until(studio, "() => document.activeElement.id === 'tab-moderation'")
    assert studio.get_attribute("#tab-moderation", "aria-selected") == "true"
    studio.wait_for_selector("body[data-moderation-ready=true]")
    assert studio.evaluate("location.hash") == "#moderation"
    # Every control of the tab is reached by Tab.
    seen, order = set(), []
    for _ in range(60):
        studio.keyboard.press("Tab")
        d = studio.evaluate("(() => { const a = document.activeElement; return a.id || a.name || a.tagName; })()")
        order.append(d)
        seen.add(d)
    for control in ("word-text", "word-mode", "word-add", "builtin", "rule-age", "rule-coins", "rule-interval",
                    "rules-save", "block-user", "block-go", "mod-user", "mod-add"):
        assert control in seen, f"{control} not reached by Tab: {order}"
    # Use it by keyboard: mute a word, switch on the French list, block, add a moderator.
    studio.focus("#word-text")
    studio.keyboard.type("spoiler")
    studio.keyboard.press("Enter")
    studio.locator("#words li[data-word=spoiler]").wait_for()
    studio.focus("#rules-form input[value=fr]")
    studio.keyboard.press("Space")
    studio.focus("#rule-interval")
    studio.keyboard.type("5")
    studio.keyboard.press("Enter")
    until(studio, "() => document.getElementById('rules-status').textContent === 'Saved.'")
    studio.focus("#block-user")
    studio.keyboard.type("viewer-3")
    studio.keyboard.press("Enter")
    studio.locator("#t-blocks tr[data-user=viewer-3]").wait_for()
    studio.focus("#mod-user")
    studio.keyboard.type("viewer-2")
    studio.keyboard.press("Enter")
    studio.locator("#mods li[data-user=viewer-2]").wait_for()
    until(studio, "() => document.querySelectorAll('#t-audit tbody tr').length >= 4")
    width = studio.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1] == 375, f"horizontal scroll on /studio#moderation: {width}"
    # A reload comes back to the tab with what was saved.
    studio.reload()
    studio.wait_for_selector("body[data-moderation-ready=true]")
    assert studio.is_checked("#rules-form input[value=fr]") and not studio.is_checked("#rules-form input[value=en]")
    assert studio.input_value("#rule-interval") == "5"
    # The same tab in French, on a desktop.
    fr = open_page("studio-moderation-fr", viewport={"width": 1280, "height": 1000}, locale="fr-FR",
                   extra_http_headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    sign_in_creator(fr)
    fr.goto("/studio#moderation")
    fr.wait_for_selector("body[data-moderation-ready=true]")
    assert fr.text_content("#tab-moderation").startswith("Modération")
    assert fr.text_content("#words-h") == "Mots masqués"
    fr.locator("#t-audit tr[data-action=block]").wait_for()
    assert "a bloqué" in fr.text_content("#t-audit")


def test_kept_back_tip_messages_never_show_and_an_approved_one_shows_once(server, open_page):
    """The pages' own renderers, fed the wire events of #17 (a tip's
    message needs Stripe Connect, which the browser harness lacks): a tip
    whose message was kept back shows without it, even if a text came
    along; its approval (`gift_message`) shows on the tip's alert, once."""
    overlay = open_overlay(open_page, server)
    viewer = open_page("viewer")
    sign_in(viewer, "viewer-1")
    # A tip has no seq of its own: its approval finds it by message_id.
    tip = {"type": "tip_event", "room": "demo", "sender": "viewer-3", "amount_cents": 500,
           "currency": "usd", "message_state": "held", "message_id": "m-1", "message": "LEAKED", "ts": 0}
    approved = {"type": "gift_message", "room": "demo", "seq": 9002, "message_id": "m-1", "message": XSS}
    for page, module, sel in ((overlay, "/overlay/assets/overlay.js", ".card.tip"),
                              (viewer, "/ui/live.js", ".tip-alert")):
        page.evaluate("async ([m, ev]) => (await import(m)).showTip(ev)", [module, tip])
        page.locator(sel).wait_for()
        assert "LEAKED" not in page.evaluate("() => document.body.textContent")
        assert "$5.00" in page.text_content(sel)
        for _ in range(2):  # delivered twice (e.g. by a resume): shown once
            page.evaluate("async ([m, ev]) => (await import(m)).showApproved(ev)", [module, approved])
        count = "x => [...document.querySelectorAll('.msg, .alert-message')].filter(e => e.textContent === x).length"
        until(page, count, XSS)
        assert page.evaluate(count, XSS) == 1
        assert page.locator(f"{sel}[data-approved=true]").count() == 1
        assert page.locator("img[src=x]").count() == 0
    # The viewer page says the message is kept back; the overlay says nothing.
    viewer.evaluate("async ev => (await import('/ui/live.js')).showTip(ev)",
                    {**tip, "message_id": "m-2", "message_state": "filtered"})
    viewer.locator(".tip-alert .message-hidden[data-state=filtered]").wait_for()
    overlay.evaluate("async ev => (await import('/overlay/assets/overlay.js')).showTip(ev)",
                     {**tip, "message_id": "m-2", "message_state": "filtered"})
    until(overlay, "() => document.querySelectorAll('.card.tip').length === 2")
    assert overlay.locator(".card.tip[data-message-state=filtered] .msg").count() == 0
    viewer.wait_for_timeout(300)  # an onerror would have fired by now (dialogs fail the test)
