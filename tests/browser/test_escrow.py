"""Marketplace contracts in escrow on the pages, in headless Chromium against
a real `giftstream serve --demo`: /brand (pay with Stripe.js, approve,
reject with a reason, cancel), /marketplace (submit the deliverable,
cancel) and the studio's "Marketplace income" line.

Two kinds of tests: the whole walk against the server (a brand pays through
localstripe's Stripe.js mock, the signed webhook funds the contract, the
creator delivers, the brand approves: a Transfer through the Stripe
contract double; and one rejected: refunded), and the cards' rendering with
the contract routes answered by the test (page.route), for what the server
never answers on its own (a deliverable URL that is not http(s), a dispute,
a refused move)."""

import json
import re
import time
import urllib.request

from conftest import (import_followers, open_marketplace, pay_in_page, section_shot, sign_in_brand,
                      sign_in_creator, stripe_api, until)

XSS = "<img src=x onerror=alert(1)>"
NOW = int(time.time() * 1000)


def call(server, token, method, path, body=None):
    """A JSON route with a bearer token; the answer's body."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{server.url}{path}", data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def contract(cid, state, **kw):
    """A contract as the routes answer it (ESCROW-API.md), in `state`."""
    k = {
        "contract": cid, "application": f"app-{cid}", "campaign": "camp-x", "brand": "demo-brand",
        "creator": "demo-creator", "price_cents": 45000, "currency": "usd", "state": state,
        "created_ms": NOW - 86400000, "updated_ms": NOW, "payment_intent": None, "paid_ms": None,
        "deliverable": None, "review_due_ms": None, "disputed": False, "payout": None,
    }
    k.update(kw)
    return k


def delivered(url, note=XSS):
    return {"url": url, "note": note, "submitted_ms": NOW - 3600000}


def answer_contracts(page, base, contracts, moves):
    """Answer `base` (the list) and `base`/ID[/ACTION] from `contracts` (by
    id): a GET answers the contract, a POST calls moves[action](contract,
    body) -> (status, body). Returns the POSTs seen: [(id, action, body)]."""
    by_id = {k["contract"]: k for k in contracts}
    seen = []
    pattern = re.compile(re.escape(base) + r"(/[^/?]+)?(/[a-z]+)?(\?.*)?$")

    def handle(route):
        req = route.request
        m = pattern.search(req.url)
        cid = m.group(1)[1:] if m.group(1) else None
        action = m.group(2)[1:] if m.group(2) else None
        if cid is None:
            return route.fulfill(json={"contracts": list(by_id.values()), "next_cursor": None})
        if req.method == "GET":
            return route.fulfill(json=by_id[cid])
        body = json.loads(req.post_data) if req.post_data else None
        seen.append((cid, action, body))
        status, out = moves[action](by_id[cid], body)
        if status == 200:
            by_id[cid] = out
        return route.fulfill(status=status, json=out)

    page.route(pattern, handle)
    return seen


def conflict(change):
    """A refused move (409): the contract changed meanwhile by `change`."""
    def move(k, _body):
        k.update(change)
        return 409, {"code": "conflict", "message": f"the contract is {k['state']}: not allowed"}
    return move


def test_contract_cards_show_their_facts_and_the_creators_moves_in_french_at_375px(server, open_page):
    page = open_page("marketplace-cards-375", viewport={"width": 375, "height": 900}, locale="fr-FR")
    sign_in_creator(page)
    seen = answer_contracts(page, "/v1/marketplace/contracts", [
        contract("k-funded", "funded", payment_intent="pi_1", paid_ms=NOW - 7200000),
        contract("k-js", "submitted", paid_ms=NOW - 7200000, deliverable=delivered("javascript:alert(1)"),
                 review_due_ms=NOW + 604800000),
        contract("k-done", "completed", paid_ms=NOW - 7200000, deliverable=delivered("https://example.com/v?a=1"),
                 review_due_ms=NOW, payout={"kind": "transfer", "status": "completed", "amount_cents": 40500,
                                            "fee_cents": 4500, "stripe_id": "tr_1"}),
        contract("k-refunded", "cancelled", paid_ms=NOW - 7200000, payout={
            "kind": "refund", "status": "completed", "amount_cents": 45000, "fee_cents": 0, "stripe_id": "re_1"}),
        contract("k-disputed", "submitted", paid_ms=NOW - 7200000, disputed=True,
                 deliverable=delivered("http://example.org/x", note="")),
    ], {"cancel": conflict({"state": "completed"}), "deliverable": lambda k, b: (500, {})})
    open_marketplace(page)
    card = lambda cid: page.locator(f"#k-list li[data-contract={cid}]")  # noqa: E731
    until(page, "() => document.querySelectorAll('#k-list li').length === 5")
    # Only an http(s) URL is a link; anything else, and the note, is text.
    assert card("k-done").locator("a.mlink").get_attribute("href") == "https://example.com/v?a=1"
    assert card("k-disputed").locator("a.mlink").get_attribute("href") == "http://example.org/x"
    assert card("k-js").locator("a").count() == 0
    assert card("k-js").locator(".mlink").text_content() == "javascript:alert(1)"
    assert card("k-js").locator(".mnote").text_content() == XSS
    assert page.locator("#k-list img").count() == 0
    # The facts, in French: payout net of the fee, the refund, the dispute.
    payout = card("k-done").locator("dd[data-fact=payout]").text_content()
    assert "405,00" in payout and "effectué" in payout and "45,00" in payout, payout
    assert card("k-done").get_attribute("data-payout-status") == "completed"
    assert "remboursés à la marque" in card("k-refunded").locator("dd[data-fact=payout]").text_content()
    assert card("k-refunded").get_attribute("data-payout-kind") == "refund"
    assert "validé automatiquement" in card("k-js").locator("dd[data-fact=review]").text_content()
    assert "Payé sous séquestre" in card("k-funded").locator("dd[data-fact=payment]").text_content()
    assert card("k-disputed").locator(".mstate[data-state=disputed]").text_content() == "Litige : versement suspendu"
    # The creator's moves by state: deliver and cancel when funded, nothing after.
    assert card("k-funded").locator("button[data-deliver]").count() == 1
    assert card("k-funded").locator("button[data-cancel]").count() == 1
    for cid in ("k-js", "k-done", "k-refunded", "k-disputed"):
        assert card(cid).locator("button").count() == 0, cid
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    # By keyboard: the deliver button opens its form; a URL that is not
    # http(s) is refused here, in French, and nothing is sent.
    page.focus("#k-list button[data-deliver]")
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "dl-url-k-funded"
    page.keyboard.type("ftp://example.com/v")
    page.keyboard.press("Enter")
    status = card("k-funded").locator("form[data-deliver-form] .status")
    until(page, "() => document.querySelector('form[data-deliver-form] .status').classList.contains('error')")
    assert status.text_content() == "Saisissez un lien commençant par https:// ou http://."
    assert page.evaluate("() => document.activeElement.id") == "dl-url-k-funded"
    assert seen == []
    # A refused cancel says the contract's state now, in French.
    card("k-funded").locator("button[data-cancel]").click()
    card("k-funded").locator("button[data-cancel-send]").click()
    until(page, "() => document.getElementById('k-status').textContent.startsWith('Impossible')")
    assert page.text_content("#k-status") == "Impossible pour le moment : ce contrat est terminé."
    assert seen == [("k-funded", "cancel", None)]
    # ...and the card shows it as it is now (no more moves), focused.
    assert card("k-funded").get_attribute("data-state") == "completed"
    assert card("k-funded").locator("button").count() == 0
    assert page.evaluate("() => document.activeElement.dataset.contract") == "k-funded"
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_brand_contract_cards_offer_the_moves_of_their_state(server, open_page):
    page = open_page("brand-cards", viewport={"width": 1280, "height": 1000})
    sign_in_brand(page)
    sub = contract("b-sub", "submitted", paid_ms=NOW - 7200000, deliverable=delivered("https://example.com/clip"),
                   review_due_ms=NOW + 3600000)

    def reject(k, body):
        return 200, {**k, "state": "cancelled", "payout": {
            "kind": "refund", "status": "completed", "amount_cents": 45000, "fee_cents": 0, "stripe_id": "re_9"}}

    seen = answer_contracts(page, "/v1/brands/me/contracts", [
        contract("b-await", "awaiting_payment"),
        contract("b-funded", "funded", paid_ms=NOW - 7200000),
        sub,
        contract("b-disputed", "submitted", paid_ms=NOW - 7200000, disputed=True,
                 deliverable=delivered("https://example.com/d")),
    ], {"reject": reject, "approve": conflict({}), "payment": lambda k, b: (500, {})})
    page.goto("/brand")
    page.wait_for_selector("body[data-ready=true]")
    card = lambda cid: page.locator(f"#bk-list li[data-contract={cid}]")  # noqa: E731
    until(page, "() => document.querySelectorAll('#bk-list li').length === 4")
    buttons = lambda cid: sorted(  # noqa: E731
        a for b in card(cid).locator("button").all()
        for a in ("pay", "approve", "reject", "cancel") if b.get_attribute(f"data-{a}") is not None)
    assert buttons("b-await") == ["cancel", "pay"]
    assert buttons("b-funded") == ["cancel"]
    assert buttons("b-sub") == ["approve", "reject"]
    assert card("b-sub").locator("a.mlink").get_attribute("href") == "https://example.com/clip"
    assert "with demo-creator" in card("b-sub").text_content()
    # This server takes no payment: Pay says so, and asks nothing of the server.
    card("b-await").locator("button[data-pay]").click()
    until(page, "() => document.getElementById('bk-status').classList.contains('error')")
    assert page.text_content("#bk-status") == "This server takes no payments (Stripe is not set up)."
    # Approving while the brand's payment is disputed is refused: in words.
    card("b-disputed").locator("button[data-approve]").click()
    until(page, "() => document.getElementById('bk-status').textContent.includes('disputed')")
    assert page.text_content("#bk-status") == \
        "Not possible now: the brand's payment is disputed, so the payout is held."
    # Reject with a reason: the refunded contract replaces the card, focused.
    card("b-sub").locator("button[data-reject]").click()
    page.fill("#reason-b-sub", "Not " + XSS)
    card("b-sub").locator("button[data-reject-send]").click()
    until(page, "() => document.querySelector('#bk-list li[data-contract=b-sub]').dataset.state === 'cancelled'")
    assert card("b-sub").get_attribute("data-payout-kind") == "refund"
    assert "$450.00 refunded to the brand: done" in card("b-sub").text_content()
    assert page.evaluate("() => document.activeElement.dataset.contract") == "b-sub"
    assert page.text_content("#bk-status") == "Rejected: your payment is being refunded."
    assert ("b-sub", "reject", {"reason": "Not " + XSS}) in seen
    assert [s for s in seen if s[1] == "payment"] == []
    assert page.locator("img").count() == 0


def accept(brand, campaign, title):
    """The brand accepts the creator's application to `campaign` on /brand;
    returns the new contract's id (its card awaits payment)."""
    brand.goto("/brand")
    brand.wait_for_selector("body[data-ready=true]")
    brand.click(f"#t-campaigns tr[data-campaign={campaign}] button[data-applicants]")
    brand.locator("#t-applicants tbody tr[data-state=applied] button[data-accept]").click()
    until(brand, "() => document.getElementById('t-applicants').querySelector('tr[data-state=accepted]')")
    card = brand.locator("#bk-list li[data-state=awaiting_payment]", has_text=title)
    card.wait_for()
    return card.get_attribute("data-contract")


def pay_contract(brand, stripe_url, cid):
    """The brand pays contract `cid` through the pay dialog (Stripe.js);
    the signed webhook funds it, and the page shows it."""
    card = brand.locator(f"#bk-list li[data-contract={cid}]")
    with brand.expect_response(re.compile(r".*/v1/brands/me/contracts/[^/]+/payment$")) as resp:
        card.locator("button[data-pay]").click()
    payment = resp.value.json()
    assert payment["amount_cents"] == 45000, payment
    assert "$450.00" in brand.text_content("#pay-title")
    pay_in_page(brand, stripe_url, payment["payment_intent"])
    funded = brand.locator(f"#bk-list li[data-contract={cid}][data-state=funded]")
    funded.wait_for(timeout=30000)
    assert "Paid into escrow" in funded.locator("dd[data-fact=payment]").text_content()
    assert brand.text_content("#bk-status") == "$450.00 is in escrow: demo-creator can deliver."


def deliver(creator, cid, url, note):
    """The creator submits the deliverable of contract `cid` on /marketplace."""
    open_marketplace(creator)
    card = creator.locator(f"#k-list li[data-contract={cid}]")
    card.wait_for()
    assert card.get_attribute("data-state") == "funded"
    card.locator("button[data-deliver]").click()
    creator.fill(f"#dl-url-{cid}", url)
    creator.fill(f"#dl-note-{cid}", note)
    card.locator("button[data-deliver-send]").click()
    until(creator, f"() => document.querySelector('#k-list li[data-contract={cid}]').dataset.state === 'submitted'")


def shots(request, page, name):
    """The contract list now, at desktop width and at 375 px (where it must
    not scroll sideways), for the docs."""
    section_shot(request, page.locator("#contracts"), f"{name}-section")
    page.set_viewport_size({"width": 375, "height": 900})
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), name
    section_shot(request, page.locator("#contracts"), f"{name}-375")
    page.set_viewport_size({"width": 1280, "height": 1000})


def test_a_contract_paid_delivered_approved_and_paid_out_and_one_rejected_and_refunded(
        connect_server, stripe_url, open_page, request):
    server = connect_server
    import_followers(server, "demo-creator", 10000)
    creator = open_page("marketplace-contracts", viewport={"width": 1280, "height": 1000})
    sign_in_creator(creator)
    # Payouts on (Connect onboarding through the double), then join.
    creator.click("#onboard")
    creator.wait_for_url(f"{server.double}/connect/setup/**")
    creator.click("#complete")
    creator.wait_for_url("**/studio?payouts=return")
    creator.wait_for_selector("body[data-ready=true]")
    until(creator, "() => document.getElementById('paid-state').dataset.enabled === 'true'")
    open_marketplace(creator)
    creator.click("#join")
    until(creator, "() => document.getElementById('elig-state').dataset.state === 'joined'")
    # Two open campaigns of the brand, the creator applied to both (through
    # the routes: the forms have their own tests).
    brand_token = server.token("demo-brand", "brand")
    creator_token = server.token("demo-creator", "creator")
    call(server, brand_token, "PUT", "/v1/brands/me",
         {"name": "Acme", "website": "https://acme.example", "industry": "Games"})
    campaigns = []
    for title in ("Launch stream", "Second clip"):
        c = call(server, brand_token, "POST", "/v1/brands/me/campaigns", {
            "title": title, "brief": "Play our game.", "deliverables": ["1 live"], "budget_cents": 50000,
            "currency": "usd", "deadline_ms": NOW + 30 * 86400000, "niches": ["gaming"]})
        call(server, brand_token, "POST", f"/v1/brands/me/campaigns/{c['campaign']}/publish")
        call(server, creator_token, "POST", f"/v1/marketplace/campaigns/{c['campaign']}/applications",
             {"pitch": "I stream it", "price_cents": 45000})
        campaigns.append(c["campaign"])

    # The brand accepts both and pays the first into escrow.
    brand = open_page("brand-contracts", viewport={"width": 1280, "height": 1000})
    sign_in_brand(brand)
    first = accept(brand, campaigns[0], "Launch stream")
    second = accept(brand, campaigns[1], "Second clip")
    pay_contract(brand, stripe_url, first)
    # The creator sees one funded (deliver, cancel) and one awaiting payment
    # (cancel), then delivers the first.
    open_marketplace(creator)
    card = creator.locator(f"#k-list li[data-contract={first}]")
    assert card.get_attribute("data-state") == "funded"
    assert card.locator("button[data-deliver]").count() == 1
    assert creator.locator(f"#k-list li[data-contract={second}] button[data-cancel]").count() == 1
    assert creator.locator(f"#k-list li[data-contract={second}] button[data-deliver]").count() == 0
    card.locator("button[data-deliver]").click()
    shots(request, creator, "marketplace-contracts")
    deliver(creator, first, "https://video.example/launch", "Live on Friday " + XSS)
    assert "then approved automatically" in card.locator("dd[data-fact=review]").text_content()

    # 1. The brand approves: a Transfer of the price (fee 0) to the
    # creator's connected account.
    brand.click("#bk-reload")
    card = brand.locator(f"#bk-list li[data-contract={first}][data-state=submitted]")
    card.wait_for()
    assert card.locator("a.mlink").get_attribute("href") == "https://video.example/launch"
    assert card.locator(".mnote").text_content() == "Live on Friday " + XSS
    shots(request, brand, "brand-contracts")
    card.locator("button[data-approve]").click()
    brand.locator(f"#bk-list li[data-contract={first}][data-state=completed]").wait_for(timeout=15000)
    until(brand, f"() => document.querySelector('#bk-list li[data-contract={first}]').dataset.payoutStatus === 'completed'",
          timeout=30)
    assert "$450.00 to the creator: done" in brand.locator(f"#bk-list li[data-contract={first}]").text_content()
    account = stripe_api(server.double, "/__double/accounts")[0]["id"]
    transfers = [t for t in stripe_api(server.double, "/__double/transfers") if t["amount"] == 45000]
    assert len(transfers) == 1 and transfers[0]["destination"] == account, transfers

    # 2. The second is paid, delivered, rejected with a reason: refunded.
    pay_contract(brand, stripe_url, second)
    deliver(creator, second, "https://video.example/clip", "")
    brand.click("#bk-reload")
    card = brand.locator(f"#bk-list li[data-contract={second}][data-state=submitted]")
    card.wait_for()
    card.locator("button[data-reject]").click()
    brand.fill(f"#reason-{second}", "Wrong game")
    card.locator("button[data-reject-send]").click()
    brand.locator(f"#bk-list li[data-contract={second}][data-state=cancelled]").wait_for(timeout=15000)
    until(brand, f"() => document.querySelector('#bk-list li[data-contract={second}]').dataset.payoutStatus === 'completed'",
          timeout=30)
    assert "$450.00 refunded to the brand: done" in \
        brand.locator(f"#bk-list li[data-contract={second}]").text_content()

    # The creator's page shows both outcomes; the studio counts the payout
    # (and only it) as marketplace income, apart from tips.
    open_marketplace(creator)
    until(creator, f"() => document.querySelector('#k-list li[data-contract={first}]').dataset.payoutStatus === 'completed'")
    assert creator.get_attribute(f"#k-list li[data-contract={second}]", "data-payout-kind") == "refund"
    studio = open_page("studio-market", viewport={"width": 1280, "height": 1000})
    sign_in_creator(studio)
    until(studio, "() => document.getElementById('e-market').textContent === '$450.00'", timeout=15)
    assert json.loads(studio.get_attribute("#e-market", "data-cents")) == {"usd": 45000}
    assert studio.text_content("#e-tips") == "$0.00"
    for p in (creator, brand):
        assert p.locator("img").count() == 0
