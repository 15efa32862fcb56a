// The creators' marketplace page /marketplace: eligibility (a progress bar
// toward `marketplace.followers_min`, what is missing, the join button),
// the marketplace profile editor, the open campaigns the creator is
// eligible for (niche and budget filters) with an apply form each, their
// applications and invitations, and their contracts (state, payment,
// deliverable, review, payout) with the creator's moves: submit the
// deliverable (a URL and a note) once funded, cancel. Signed in by a
// creator's session cookie; every change goes through the JSON routes with
// the CSRF token; all data is set as text.
import { api, currentSession, el, errorText, loadSession, loadStrings, money, num, setText, shell, t } from '/ui/common.js';
import { act, cents, day, listOf, say, stateBadge } from '/ui/market-common.js';
import { cardForm, contractCard, explain, isWebLink, moving, revealer, watchPayout } from '/ui/market-contracts.js';

const $ = (id) => document.getElementById(id);
let me = '';
/** Campaigns by id (from the open list), to name applications and price them. */
const campaigns = new Map();
/** Campaigns the creator applied to already (their apply button is hidden). */
const answered = new Set();

function notice(text) {
  setText($('notice'), text);
  $('notice').hidden = !text;
}

/** Eligibility from the public profile and, after a join, its `missing`. */
function showEligibility(pub, view, missing) {
  const min = pub.marketplace.followers_min;
  const followers = pub.followers;
  const bar = $('elig-bar');
  bar.max = min;
  bar.value = Math.min(followers, min);
  bar.dataset.followers = String(followers);
  bar.dataset.min = String(min);
  setText($('elig-text'), t('mk.progress', { followers: num(followers), min: num(min) }));
  const list = $('elig-missing');
  const items = [];
  const lack = missing ? missing.followers : Math.max(0, min - followers);
  list.dataset.followers = String(lack || 0);
  if (lack) items.push(el('li', { 'data-missing': 'followers' }, t('mk.missing_followers', { n: num(lack) })));
  if (missing && missing.payouts) {
    list.dataset.payouts = 'true';
    items.push(el('li', { 'data-missing': 'payouts' }, t('mk.missing_payouts'), ' ', el('a', { href: '/studio' }, t('mk.setup_payouts'))));
  }
  list.replaceChildren(...items);
  const joined = view && view.joined;
  const st = $('elig-state');
  st.dataset.state = joined ? 'joined' : 'not_joined';
  setText(st, joined ? t('mk.joined') : t('mk.not_joined'));
  $('join').hidden = !!joined;
}

async function loadEligibility(missing) {
  const [pub, view] = await Promise.all([api(`/v1/creators/${encodeURIComponent(me)}`), api('/v1/marketplace/creators/me')]);
  showEligibility(pub, view, missing);
  return view;
}

function fillProfile(v) {
  $('p-bio').value = v.bio || '';
  $('p-niches').value = (v.niches || []).join(', ');
  $('p-langs').value = (v.languages || []).join(', ');
  $('p-rates').value = (v.rate_card || []).map((r) => `${r.deliverable} = ${(r.cents / 100).toFixed(2)}`).join('\n');
  $('p-samples').value = (v.samples || []).join('\n');
}

/** The rate card's lines "deliverable = price" (price in major units). */
function rateCard(text) {
  const out = [];
  for (const line of String(text).split('\n')) {
    if (!line.trim()) continue;
    const i = line.lastIndexOf('=');
    const c = i < 0 ? NaN : cents(line.slice(i + 1).trim());
    if (i < 0 || !Number.isFinite(c)) throw new Error(t('mk.rate_line_bad', { line: line.trim() }));
    out.push({ deliverable: line.slice(0, i).trim(), cents: c });
  }
  return out;
}

async function saveProfile(ev) {
  ev.preventDefault();
  await act($('prof-status'), async () => {
    const body = {
      bio: $('p-bio').value,
      niches: listOf($('p-niches').value),
      languages: listOf($('p-langs').value),
      rate_card: rateCard($('p-rates').value),
      samples: listOf($('p-samples').value),
    };
    fillProfile(await api('/v1/marketplace/creators/me', { method: 'PUT', body }));
  }, t('market.saved'));
}

async function join() {
  const s = $('join-status');
  try {
    await api('/v1/marketplace/creators/me', { method: 'POST' });
    say(s, t('mk.joined_now'));
    await loadEligibility(null);
    await loadCampaigns();
  } catch (e) {
    say(s, errorText(e), true);
    if (e.code === 'not_eligible') await loadEligibility(e.missing || {});
  }
}

function applyForm(c) {
  const id = c.campaign;
  const form = el('form', { class: 'form mapply', novalidate: true, hidden: true });
  const pitch = el('textarea', { id: `pitch-${id}`, rows: '3', maxlength: '2000' });
  const price = el('input', { id: `price-${id}`, type: 'number', min: '0', step: '0.01', inputmode: 'decimal' });
  const status = el('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
  form.append(
    el('label', { for: pitch.id }, t('mk.pitch')), pitch,
    el('label', { for: price.id }, t('mk.price', { currency: c.currency.toUpperCase() })), price,
    el('div', { class: 'row' }, el('button', { type: 'submit', 'data-apply-send': id }, t('mk.apply_send'))),
    status,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const ok = await act(status, async () => {
      const p = cents(price.value);
      if (!Number.isFinite(p) || p <= 0) throw new Error(t('mk.price_bad'));
      await api(`/v1/marketplace/campaigns/${encodeURIComponent(id)}/applications`, {
        method: 'POST',
        body: { pitch: pitch.value, price_cents: p },
      });
    }, t('mk.applied'));
    if (ok) await loadApplications();
  });
  return form;
}

function campaignCard(c) {
  campaigns.set(c.campaign, c);
  const form = applyForm(c);
  const toggle = el('button', { type: 'button', class: 'ghost', 'data-apply': c.campaign, 'aria-expanded': 'false', hidden: answered.has(c.campaign) }, t('mk.apply'));
  toggle.addEventListener('click', () => {
    form.hidden = !form.hidden;
    toggle.setAttribute('aria-expanded', String(!form.hidden));
    if (!form.hidden) form.querySelector('textarea').focus();
  });
  return el('li', { class: 'mcard', 'data-campaign': c.campaign },
    el('h3', { class: 'mcard-title' }, c.title),
    el('p', { class: 'muted' }, t('market.by_brand', { brand: c.brand }), ' · ',
      t('market.budget', { amount: money(c.budget_cents, c.currency) }), ' · ',
      t('market.deadline', { date: day(c.deadline_ms) })),
    el('p', { class: 'mbrief' }, c.brief),
    c.deliverables.length ? el('p', { class: 'muted' }, t('market.deliverables'), ' ', c.deliverables.join(' · ')) : null,
    c.niches.length ? el('p', { class: 'mtags' }, ...c.niches.map((n) => el('span', { class: 'mtag' }, n))) : null,
    el('div', { class: 'row' }, toggle),
    form);
}

async function loadCampaigns(ev) {
  if (ev) ev.preventDefault();
  const q = new URLSearchParams({ limit: '50' });
  const niche = $('f-niche').value.trim().toLowerCase();
  if (niche) q.set('niche', niche);
  const budget = $('f-budget').value.trim();
  if (budget) {
    const c = cents(budget);
    if (Number.isFinite(c) && c >= 0) q.set('budget_min_cents', String(c));
  }
  try {
    const v = await api(`/v1/marketplace/campaigns?${q}`);
    $('camp-list').replaceChildren(...v.campaigns.map(campaignCard));
    say($('camp-status'), v.campaigns.length ? '' : t('mk.no_campaigns'));
  } catch (e) {
    say($('camp-status'), errorText(e), true);
  }
}

/** An application's price, in its campaign's currency when the page knows it. */
function price(a) {
  if (a.price_cents == null) return '–';
  const c = campaigns.get(a.campaign);
  return c ? money(a.price_cents, c.currency) : num(a.price_cents / 100);
}

async function loadApplications() {
  const body = $('t-apps').tBodies[0];
  try {
    const v = await api('/v1/marketplace/applications?limit=100');
    body.replaceChildren(...v.applications.map((a) => {
      const actions = el('td');
      if (a.state === 'invited' || a.state === 'applied') {
        const w = el('button', { type: 'button', class: 'ghost', 'data-withdraw': a.application }, t('mk.withdraw'));
        w.addEventListener('click', async () => {
          if (await act($('apps-status'), () => api(`/v1/marketplace/applications/${encodeURIComponent(a.application)}/withdraw`, { method: 'POST' }), t('mk.withdrawn'))) loadApplications();
        });
        actions.append(w);
      }
      return el('tr', { 'data-application': a.application, 'data-state': a.state },
        el('td', {}, campaigns.get(a.campaign)?.title || a.campaign),
        el('td', {}, t(`market.origin.${a.origin}`)),
        el('td', { class: 'num' }, price(a)),
        el('td', {}, stateBadge(a.state)),
        actions);
    }));
    // A campaign answered already is not applied to again (an invitation is).
    for (const a of v.applications) {
      if (a.state === 'invited') continue;
      answered.add(a.campaign);
      const b = document.querySelector(`button[data-apply="${CSS.escape(a.campaign)}"]`);
      if (b) b.hidden = true;
    }
    say($('apps-status'), v.applications.length ? '' : t('mk.no_applications'));
  } catch (e) {
    say($('apps-status'), errorText(e), true);
  }
  await loadContracts();
}

/** A contract's route. */
const contractPath = (k, action = '') => `/v1/marketplace/contracts/${encodeURIComponent(k.contract)}${action ? `/${action}` : ''}`;

/** Put the fresh `k` in place of its card and focus it. */
function showContract(k, focus = true) {
  const card = creatorCard(k);
  const old = $('k-list').querySelector(`li[data-contract="${CSS.escape(k.contract)}"]`);
  if (old) old.replaceWith(card);
  else $('k-list').prepend(card);
  if (focus) card.focus();
  if (moving(k)) watchPayout(contractPath(k), (x) => showContract(x, false));
}

/**
 * Run a contract move and show the contract it answers. A refused move
 * shows the contract as it is now and says why on the list's status line;
 * other errors stay on `where` (the action's form).
 */
async function contractMove(k, action, body, done, where) {
  try {
    const fresh = await api(contractPath(k, action), { method: 'POST', body });
    say($('k-status'), done);
    showContract(fresh);
  } catch (e) {
    let reread = false;
    const text = await explain(e, () => api(contractPath(k)), (x) => {
      reread = true;
      showContract(x);
    });
    say(reread || !where ? $('k-status') : where, text, true);
  }
}

/** The deliverable form: an http(s) URL (checked here, in words) and a note. */
function deliverableForm(k) {
  const url = el('input', { id: `dl-url-${k.contract}`, type: 'url', maxlength: '2048', placeholder: 'https://', autocomplete: 'off' });
  const note = el('textarea', { id: `dl-note-${k.contract}`, rows: '2', maxlength: '2000' });
  const form = cardForm(k, 'deliver', [
    el('label', { for: url.id }, t('mk.deliverable_url')), url,
    el('label', { for: note.id }, t('mk.deliverable_note')), note,
  ], t('mk.deliver_send'), () => {
    const u = url.value.trim();
    if (!isWebLink(u)) {
      say(form.status, t('mk.deliverable_url_bad'), true);
      return url.focus();
    }
    return contractMove(k, 'deliverable', { url: u, note: note.value.trim() }, t('mk.delivered'), form.status);
  });
  return form;
}

function creatorCard(k) {
  const actions = [];
  const extra = [];
  if (k.state === 'funded') {
    const form = deliverableForm(k);
    actions.push(revealer(t('mk.deliver'), { 'data-deliver': k.contract }, form));
    extra.push(form);
  }
  if (k.state === 'awaiting_payment' || k.state === 'funded') {
    const form = cardForm(k, 'cancel', [el('p', { class: 'muted' }, t(k.state === 'funded' ? 'mk.cancel_refund' : 'mk.cancel_unpaid'))],
      t('market.cancel_send'), () => contractMove(k, 'cancel', undefined, t('market.done_cancel'), form.status));
    actions.push(revealer(t('market.cancel'), { 'data-cancel': k.contract }, form));
    extra.push(form);
  }
  return contractCard(k, {
    title: campaigns.get(k.campaign)?.title || k.campaign,
    party: t('market.by_brand', { brand: k.brand }),
    actions,
    extra,
  });
}

async function loadContracts() {
  try {
    const v = await api('/v1/marketplace/contracts');
    $('k-list').replaceChildren(...v.contracts.map(creatorCard));
    say($('k-empty'), v.contracts.length ? '' : t('mk.no_contracts'));
    for (const k of v.contracts) if (moving(k)) watchPayout(contractPath(k), (x) => showContract(x, false));
  } catch (e) {
    say($('k-status'), errorText(e), true);
  }
}

async function main() {
  await loadStrings();
  const session = await loadSession();
  shell();
  try {
    if (!session) return notice(t('mk.signin_needed'));
    if (session.role !== 'creator') return notice(t('mk.creators_only', { user: session.user }));
    me = currentSession().user;
    $('market').hidden = false;
    $('join').addEventListener('click', join);
    $('prof-form').addEventListener('submit', saveProfile);
    $('filter-form').addEventListener('submit', loadCampaigns);
    $('k-reload').addEventListener('click', () => {
      say($('k-status'), '');
      loadContracts();
    });
    const view = await loadEligibility(null);
    fillProfile(view);
    await loadCampaigns();
    await loadApplications();
  } catch (e) {
    notice(errorText(e));
  } finally {
    // The page works from here on (tests wait for this).
    document.body.dataset.ready = 'true';
  }
}

main();
