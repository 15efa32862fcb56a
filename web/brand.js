// The brands' page /brand: the brand profile (name, website, industry),
// campaigns (write a draft, edit it, publish, close), a campaign's
// applicants with their stats (accept, decline), inviting a creator, the
// campaign's contracts with states, and every contract of the brand with
// its escrow actions: pay (Stripe.js, pay.js), approve or reject the
// deliverable, cancel. Signed in by a brand's session cookie; every change
// goes through the JSON routes with the CSRF token; all data is set as text.
import { api, el, errorText, loadSession, loadStrings, money, setText, shell, t } from '/ui/common.js';
import { act, cents, day, listOf, say, stateBadge, statsText } from '/ui/market-common.js';
import { button as actionButton, cardForm, contractCard, explain, follow, moving, revealer, watchPayout } from '/ui/market-contracts.js';
import { pay } from '/ui/pay.js';

const $ = (id) => document.getElementById(id);
/** The draft being edited (its id), or null when writing a new one. */
let editing = null;
/** The campaign whose applicants are shown. */
let shown = null;
/** Campaign titles by id (to name contracts). */
const titles = new Map();
/** `{publishable_key, js_url}` when this server takes payments. */
let stripeCfg = null;
/** The next page of the contract list (null: none). */
let contractsCursor = null;

function notice(text) {
  setText($('notice'), text);
  $('notice').hidden = !text;
}

async function loadProfile() {
  try {
    const p = await api('/v1/brands/me');
    $('bp-name').value = p.name;
    $('bp-website').value = p.website;
    $('bp-industry').value = p.industry;
  } catch (e) {
    if (e.status !== 404) throw e; // 404: not written yet
    say($('bp-status'), t('br.profile_first'));
  }
}

async function saveProfile(ev) {
  ev.preventDefault();
  await act($('bp-status'), () => api('/v1/brands/me', {
    method: 'PUT',
    body: { name: $('bp-name').value.trim(), website: $('bp-website').value.trim(), industry: $('bp-industry').value.trim() },
  }), t('market.saved'));
}

/** The campaign form's body (throws a words error on a bad number or date). */
function campaignBody() {
  const budget = cents($('cf-budget').value);
  if (!Number.isFinite(budget) || budget <= 0) throw new Error(t('br.budget_bad'));
  const date = $('cf-deadline').value;
  // The end of the chosen day, in the brand's time zone.
  const deadline = date ? new Date(`${date}T23:59:59`).getTime() : NaN;
  if (!Number.isFinite(deadline)) throw new Error(t('br.deadline_bad'));
  const body = {
    title: $('cf-title').value.trim(),
    brief: $('cf-brief').value,
    deliverables: listOf($('cf-deliverables').value),
    budget_cents: budget,
    currency: $('cf-currency').value.trim().toLowerCase(),
    deadline_ms: deadline,
    niches: listOf($('cf-niches').value).map((n) => n.toLowerCase()),
  };
  const f = $('cf-followers').value.trim();
  if (f) body.followers_min = Number(f);
  return body;
}

function setEditing(c) {
  editing = c ? c.campaign : null;
  $('cf-cancel').hidden = !c;
  $('cf-editing').hidden = !c;
  setText($('cf-editing'), c ? t('br.editing', { title: c.title }) : '');
  setText($('cf-save'), c ? t('br.save_draft') : t('br.create'));
  setText($('cf-h'), c ? t('br.edit_campaign') : t('br.new_campaign'));
  if (!c) {
    $('cf-form').reset();
    return;
  }
  $('cf-title').value = c.title;
  $('cf-brief').value = c.brief;
  $('cf-deliverables').value = c.deliverables.join(', ');
  $('cf-budget').value = (c.budget_cents / 100).toFixed(2);
  $('cf-currency').value = c.currency;
  const d = new Date(c.deadline_ms);
  const pad = (n) => String(n).padStart(2, '0');
  $('cf-deadline').value = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  $('cf-followers').value = String(c.followers_min);
  $('cf-niches').value = c.niches.join(', ');
  $('cf-title').focus();
}

async function saveCampaign(ev) {
  ev.preventDefault();
  const was = editing;
  const ok = await act($('cf-status'), async () => {
    const body = campaignBody();
    if (was) await api(`/v1/brands/me/campaigns/${encodeURIComponent(was)}`, { method: 'PUT', body });
    else await api('/v1/brands/me/campaigns', { method: 'POST', body });
  }, was ? t('br.draft_saved') : t('br.draft_created'));
  if (ok) {
    setEditing(null);
    await loadCampaigns();
  }
}

function move(c, action) {
  return async () => {
    const ok = await act($('cl-status'), () => api(`/v1/brands/me/campaigns/${encodeURIComponent(c.campaign)}/${action}`, { method: 'POST' }),
      t(`br.done_${action}`, { title: c.title }));
    if (ok) {
      await loadCampaigns();
      if (shown === c.campaign) await loadApplicants();
    }
  };
}

function button(label, attrs, fn, ghost = true) {
  const b = el('button', { type: 'button', class: ghost ? 'ghost' : null, ...attrs }, label);
  b.addEventListener('click', fn);
  return b;
}

async function loadCampaigns() {
  const v = await api('/v1/brands/me/campaigns?limit=100');
  for (const c of v.campaigns) titles.set(c.campaign, c.title);
  $('t-campaigns').tBodies[0].replaceChildren(...v.campaigns.map((c) => {
    const actions = el('div', { class: 'mactions' });
    if (c.state === 'draft') {
      actions.append(
        button(t('br.edit'), { 'data-edit': c.campaign }, () => setEditing(c)),
        button(t('br.publish'), { 'data-publish': c.campaign }, move(c, 'publish'), false));
    }
    if (c.state === 'draft' || c.state === 'open') actions.append(button(t('br.close'), { 'data-close': c.campaign }, move(c, 'close')));
    if (c.state !== 'draft') {
      actions.append(button(t('br.applicants'), { 'data-applicants': c.campaign }, async () => {
        shown = c.campaign;
        await loadApplicants();
        $('applicants').focus();
      }));
    }
    return el('tr', { 'data-campaign': c.campaign, 'data-state': c.state },
      el('td', {}, c.title),
      el('td', { class: 'num' }, money(c.budget_cents, c.currency)),
      el('td', {}, day(c.deadline_ms)),
      el('td', {}, stateBadge(c.state)),
      el('td', {}, actions));
  }));
  say($('cl-status'), v.campaigns.length ? '' : t('br.no_campaigns'));
}

function answer(a, action) {
  return async () => {
    const ok = await act($('ap-status'), () => api(`/v1/brands/me/applications/${encodeURIComponent(a.application)}/${action}`, { method: 'POST' }),
      t(`br.done_${action}`, { creator: a.creator }));
    if (ok) await loadApplicants();
    if (ok && action === 'accept') await loadContracts();
  };
}

async function loadApplicants() {
  if (!shown) return;
  const id = encodeURIComponent(shown);
  const [c, v] = await Promise.all([
    api(`/v1/brands/me/campaigns/${id}`),
    api(`/v1/brands/me/campaigns/${id}/applications?limit=100`),
  ]);
  $('applicants').hidden = false;
  $('applicants').dataset.campaign = shown;
  setText($('ap-h'), t('br.applicants_of', { title: c.title }));
  $('inv-form').hidden = c.state !== 'open';
  $('t-applicants').tBodies[0].replaceChildren(...v.applications.map((a) => {
    const actions = el('div', { class: 'mactions' });
    if (a.state === 'applied' && c.state === 'open') actions.append(button(t('br.accept'), { 'data-accept': a.application }, answer(a, 'accept'), false));
    if (a.state === 'applied' || a.state === 'invited') actions.append(button(t('br.decline'), { 'data-decline': a.application }, answer(a, 'decline')));
    return el('tr', { 'data-application': a.application, 'data-state': a.state },
      el('td', {}, a.creator),
      el('td', { class: 'mstats' }, statsText(a.stats)),
      el('td', { class: 'mbrief' }, a.pitch ?? '–'),
      el('td', { class: 'num' }, a.price_cents == null ? '–' : money(a.price_cents, c.currency)),
      el('td', {}, stateBadge(a.state)),
      el('td', {}, actions));
  }));
  say($('ap-status'), v.applications.length ? '' : t('br.no_applicants'));
  $('t-bcontracts').tBodies[0].replaceChildren(...c.contracts.map((k) =>
    el('tr', { 'data-contract': k.contract, 'data-state': k.state },
      el('td', {}, k.creator),
      el('td', { class: 'num' }, money(k.price_cents, k.currency)),
      el('td', {}, stateBadge(k.state)),
      el('td', {}, day(k.created_ms)))));
}

/** A contract's route. */
const contractPath = (k, action = '') => `/v1/brands/me/contracts/${encodeURIComponent(k.contract)}${action ? `/${action}` : ''}`;

/** Put the fresh `k` in place of its card (or first in the list) and focus it. */
function showContract(k, focus = true) {
  const list = $('bk-list');
  const card = brandCard(k);
  const old = list.querySelector(`li[data-contract="${CSS.escape(k.contract)}"]`);
  if (old) old.replaceWith(card);
  else list.prepend(card);
  say($('bk-status-empty'), '');
  if (focus) card.focus();
  if (moving(k)) watchPayout(contractPath(k), (x) => showContract(x, false));
}

/**
 * An action's error: a refused move shows the contract as it is now and
 * says why on the list's status line; other errors stay on `where` (the
 * action's form), else on the list's status line.
 */
async function failed(k, e, where) {
  let reread = false;
  const text = await explain(e, () => api(contractPath(k)), (x) => {
    reread = true;
    showContract(x);
  });
  say(reread || !where ? $('bk-status') : where, text, true);
}

/** Run a contract move (`action`: approve, reject, cancel) and show the contract it answers. */
async function contractMove(k, action, body, done, where) {
  try {
    const fresh = await api(contractPath(k, action), { method: 'POST', body });
    say($('bk-status'), t(done, { creator: k.creator }));
    showContract(fresh);
  } catch (e) {
    await failed(k, e, where);
  }
}

/** Pay a contract into escrow: its PaymentIntent, Stripe.js, then the webhook funds it. */
async function payContract(k) {
  const status = $('bk-status');
  say(status, '');
  if (!stripeCfg) return say(status, t('br.pay_unavailable'), true);
  try {
    const p = await api(contractPath(k, 'payment'), { method: 'POST' });
    const amount = money(p.amount_cents, p.currency);
    if (!(await pay(stripeCfg, p.client_secret, amount))) return say(status, t('br.pay_cancelled'));
    say(status, t('br.pay_waiting', { amount }));
    const r = await follow(contractPath(k), (x) => x.state !== 'awaiting_payment');
    if (r.contract) showContract(r.contract);
    say(status, r.reached ? t('br.paid', { amount, creator: k.creator }) : t('br.pay_late'));
  } catch (e) {
    await failed(k, e);
  }
}

function brandCard(k) {
  const actions = [];
  const extra = [];
  if (k.state === 'awaiting_payment') {
    actions.push(actionButton(t('br.pay'), { 'data-pay': k.contract }, () => payContract(k), true));
  }
  if (k.state === 'submitted') {
    actions.push(actionButton(t('br.approve'), { 'data-approve': k.contract },
      () => contractMove(k, 'approve', undefined, 'br.done_approve'), true));
    const reason = el('textarea', { id: `reason-${k.contract}`, rows: '2', maxlength: '2000' });
    const form = cardForm(k, 'reject', [el('label', { for: reason.id }, t('br.reject_reason')), reason], t('br.reject_send'),
      () => contractMove(k, 'reject', reason.value.trim() ? { reason: reason.value.trim() } : {}, 'br.done_reject', form.status));
    actions.push(revealer(t('br.reject'), { 'data-reject': k.contract }, form));
    extra.push(form);
  }
  if (k.state === 'awaiting_payment' || k.state === 'funded') {
    const form = cardForm(k, 'cancel', [el('p', { class: 'muted' }, t(k.state === 'funded' ? 'br.cancel_refund' : 'br.cancel_unpaid'))],
      t('market.cancel_send'), () => contractMove(k, 'cancel', undefined, 'market.done_cancel', form.status));
    actions.push(revealer(t('market.cancel'), { 'data-cancel': k.contract }, form));
    extra.push(form);
  }
  return contractCard(k, {
    title: titles.get(k.campaign) || k.campaign,
    party: t('br.with_creator', { creator: k.creator }),
    actions,
    extra,
  });
}

/** The brand's contracts, newest first; `more` appends the next page. */
async function loadContracts(more = false) {
  const q = new URLSearchParams({ limit: '20' });
  if (more && contractsCursor) q.set('cursor', contractsCursor);
  const list = $('bk-list');
  try {
    const v = await api(`/v1/brands/me/contracts?${q}`);
    const cards = v.contracts.map(brandCard);
    if (more) list.append(...cards);
    else list.replaceChildren(...cards);
    contractsCursor = v.next_cursor || null;
    $('bk-more').hidden = !contractsCursor;
    say($('bk-status-empty'), list.children.length ? '' : t('br.no_contracts'));
    for (const k of v.contracts) if (moving(k)) watchPayout(contractPath(k), (x) => showContract(x, false));
  } catch (e) {
    say($('bk-status'), errorText(e), true);
  }
}

/** Whether this server takes payments (Stripe.js's key and URL). */
async function loadStripeConfig() {
  try {
    stripeCfg = (await api('/v1/coins/packages')).stripe || null;
  } catch {
    stripeCfg = null;
  }
}

async function invite(ev) {
  ev.preventDefault();
  const creator = $('inv-creator').value.trim();
  const ok = await act($('ap-status'), () => api(`/v1/brands/me/campaigns/${encodeURIComponent(shown)}/invitations`, { method: 'POST', body: { creator } }),
    t('br.invited', { creator }));
  if (ok) {
    $('inv-creator').value = '';
    await loadApplicants();
  }
}

async function main() {
  await loadStrings();
  const session = await loadSession();
  shell();
  try {
    if (!session) return notice(t('br.signin_needed'));
    if (session.role !== 'brand') return notice(t('br.brands_only', { user: session.user }));
    $('brandpage').hidden = false;
    $('bp-form').addEventListener('submit', saveProfile);
    $('cf-form').addEventListener('submit', saveCampaign);
    $('cf-cancel').addEventListener('click', () => setEditing(null));
    $('inv-form').addEventListener('submit', invite);
    $('bk-more').addEventListener('click', () => loadContracts(true));
    $('bk-reload').addEventListener('click', () => {
      say($('bk-status'), '');
      loadContracts();
    });
    await loadProfile();
    await loadCampaigns();
    await Promise.all([loadContracts(), loadStripeConfig()]);
  } catch (e) {
    notice(errorText(e));
  } finally {
    // The page works from here on (tests wait for this).
    document.body.dataset.ready = 'true';
  }
}

main();
