"""The Creator Marketplace's pages, /marketplace (creators) and /brand
(brands), in headless Chromium against a real `giftstream serve --demo`:
eligibility with its progress bar and what is missing, a brand writing and
publishing a campaign, an eligible creator applying, the brand accepting,
and the contract (`awaiting_payment`) on both pages. Followers come from
the admin's NDJSON import route; payouts from the Connect onboarding
through the Stripe contract double (as in test_studio)."""

from conftest import import_followers, open_marketplace, sign_in_brand, sign_in_creator, until

XSS = "<img src=x onerror=alert(1)>"


def test_the_marketplace_shows_the_progress_bar_and_what_is_missing(server, open_page):
    import_followers(server, "demo-creator", 2500)
    page = open_page("marketplace-missing", viewport={"width": 1280, "height": 1000})
    sign_in_creator(page)
    open_marketplace(page)
    bar = page.locator("#elig-bar")
    assert bar.get_attribute("max") == "10000"
    assert page.evaluate("() => document.getElementById('elig-bar').value") == 2500
    assert "2,500" in page.locator("#elig-text").text_content()
    assert page.get_attribute("#elig-missing", "data-followers") == "7500"
    # Joining is refused: the page shows the refusal's `missing` (followers
    # and payouts, which demo-creator has not set up).
    page.click("#join")
    until(page, "() => document.getElementById('elig-missing').dataset.payouts === 'true'")
    assert page.locator("#elig-missing li[data-missing=followers]").text_content() == "7,500 more followers needed"
    assert page.locator("#elig-missing li[data-missing=payouts]").count() == 1
    assert page.locator("#join-status").get_attribute("class") == "status error"
    assert page.get_attribute("#elig-state", "data-state") == "not_joined"
    # The profile editor saves and shows text as text.
    page.fill("#p-bio", XSS)
    page.fill("#p-niches", "Gaming, music")
    page.fill("#p-rates", "Video = 500")
    page.fill("#p-samples", "https://example.com/a")
    page.click("#prof-save")
    until(page, "() => document.getElementById('prof-status').textContent === 'Saved.'")
    open_marketplace(page)
    assert page.input_value("#p-bio") == XSS
    assert page.input_value("#p-niches") == "gaming, music"
    assert page.input_value("#p-rates") == "Video = 500.00"
    assert page.locator("img").count() == 0


def document_status(page):
    """The campaign form's status line."""
    return page.text_content("#cf-status")


def test_a_brand_publishes_a_campaign_a_creator_applies_and_the_brand_accepts(connect_server, open_page):
    import_followers(connect_server, "demo-creator", 10000)
    creator = open_page("marketplace", viewport={"width": 1280, "height": 1100})
    sign_in_creator(creator)
    # Payouts on through the Connect onboarding (the double's hosted page).
    creator.click("#onboard")
    creator.wait_for_url(f"{connect_server.double}/connect/setup/**")
    creator.click("#complete")
    creator.wait_for_url("**/studio?payouts=return")
    creator.wait_for_selector("body[data-ready=true]")
    until(creator, "() => document.getElementById('paid-state').dataset.enabled === 'true'")
    open_marketplace(creator)
    assert creator.get_attribute("#elig-missing", "data-followers") == "0"
    creator.click("#join")
    until(creator, "() => document.getElementById('elig-state').dataset.state === 'joined'")
    assert creator.locator("#join").is_hidden()

    brand = open_page("brand", viewport={"width": 1280, "height": 1100})
    sign_in_brand(brand)
    brand.fill("#bp-name", "Acme")
    brand.fill("#bp-website", "https://acme.example")
    brand.fill("#bp-industry", "Games")
    brand.click("#bp-save")
    until(brand, "() => document.getElementById('bp-status').textContent === 'Saved.'")
    # A draft, edited, then published.
    brand.fill("#cf-title", "Launch " + XSS)
    brand.fill("#cf-brief", "Play our game on stream.")
    brand.fill("#cf-deliverables", "1 live, 1 clip")
    brand.fill("#cf-budget", "500")
    brand.fill("#cf-deadline", "2099-01-31")
    brand.fill("#cf-niches", "gaming")
    brand.click("#cf-save")
    until(brand, "() => document.querySelectorAll('#t-campaigns tbody tr[data-state=draft]').length === 1")
    brand.click("#t-campaigns button[data-edit]")
    assert brand.input_value("#cf-title") == "Launch " + XSS
    brand.fill("#cf-budget", "600")
    brand.click("#cf-save")
    # The status already said "Draft saved." after the first save: wait for
    # the list to show the edit itself (it is re-read after the save).
    until(brand, "() => (document.querySelector('#t-campaigns tbody tr')?.textContent || '').includes('$600.00')")
    assert document_status(brand) == "Draft saved."
    brand.click("#t-campaigns button[data-publish]")
    until(brand, "() => document.querySelectorAll('#t-campaigns tbody tr[data-state=open]').length === 1")

    # The creator finds it (niche filter) and applies.
    creator.fill("#f-niche", "gaming")
    creator.click("#f-go")
    card = creator.locator("#camp-list li.mcard").first
    card.wait_for()
    assert card.locator(".mcard-title").text_content() == "Launch " + XSS
    card.locator("button[data-apply]").click()
    card.locator("textarea").fill("I stream games " + XSS)
    card.locator("input[type=number]").fill("450")
    card.locator("button[data-apply-send]").click()
    until(creator, "() => document.querySelectorAll('#t-apps tbody tr[data-state=applied]').length === 1")
    assert "$450.00" in creator.locator("#t-apps tbody tr").first.text_content()
    assert card.locator("button[data-apply]").is_hidden()
    # The filter works the other way too: no campaign in another niche.
    creator.fill("#f-niche", "cooking")
    creator.click("#f-go")
    until(creator, "() => document.querySelectorAll('#camp-list li').length === 0")

    # The brand sees the applicant with their stats and accepts.
    brand.click("#t-campaigns button[data-applicants]")
    row = brand.locator("#t-applicants tbody tr[data-state=applied]")
    row.wait_for()
    assert "10,000 followers" in row.locator(".mstats").text_content()
    assert row.locator(".mbrief").text_content() == "I stream games " + XSS
    assert "$450.00" in row.text_content()
    row.locator("button[data-accept]").click()
    until(brand, "() => document.querySelectorAll('#t-bcontracts tbody tr[data-state=awaiting_payment]').length === 1")
    assert brand.locator("#t-applicants tbody tr[data-state=accepted]").count() == 1
    assert "Awaiting payment" in brand.locator("#t-bcontracts tbody tr").first.text_content()

    # The creator's page shows the contract.
    open_marketplace(creator)
    until(creator, "() => document.querySelectorAll('#k-list li[data-state=awaiting_payment]').length === 1")
    assert creator.locator("#t-apps tbody tr[data-state=accepted]").count() == 1
    assert "$450.00" in creator.locator("#k-list li").first.text_content()
    for p in (creator, brand):
        assert p.locator("img").count() == 0


def test_the_marketplace_at_375px_works_by_keyboard_and_in_french(server, open_page):
    import_followers(server, "demo-creator", 4000)
    page = open_page("marketplace-375", viewport={"width": 375, "height": 800}, locale="fr-FR")
    sign_in_creator(page)
    open_marketplace(page)
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert page.locator("#join").text_content() == "Rejoindre la marketplace"
    assert "4\u202f000" in page.locator("#elig-text").text_content() or "4 000" in page.locator("#elig-text").text_content()
    # Every control is reached by Tab; Enter on the join button answers.
    seen = set()
    for _ in range(40):
        page.keyboard.press("Tab")
        seen.add(page.evaluate("() => document.activeElement.id"))
    for control in ("join", "p-bio", "p-niches", "p-langs", "p-rates", "p-samples", "prof-save", "f-niche", "f-budget", "f-go"):
        assert control in seen, (control, seen)
    page.focus("#join")
    page.keyboard.press("Enter")
    until(page, "() => document.getElementById('elig-missing').dataset.payouts === 'true'")
    assert page.locator("#elig-missing li[data-missing=followers]").text_content().startswith("Encore 6")
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    # A brand page at 375 px, too.
    brand = open_page("brand-375", viewport={"width": 375, "height": 800}, locale="fr-FR")
    sign_in_brand(brand)
    assert brand.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert brand.locator("#cf-save").text_content() == "Créer le brouillon"
