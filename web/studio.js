// The creator studio /studio: earnings (pending, held, available, cashed
// out, tips, marketplace income, reversed) with a 30-day chart, history
// tables with cursors, top supporters, "get paid" (Connect onboarding),
// the cash-out form with its terms, go live / end live, videos with
// totals, the OBS overlay link (a scoped overlay token) and webhooks; the
// moderation tab is studio-moderation.js. Signed in by a creator's session
// cookie; every change goes through the JSON routes with the CSRF token.
// Earnings are read again every few seconds (the settlement and the hold
// move them without the creator doing anything).
import { api, currentSession, el, errorText, loadSession, loadStrings, money, newId, num, setText, shell, t } from '/ui/common.js';
import { chart, history, tr, when, where } from '/ui/studio-parts.js';
import { tabs } from '/ui/studio-moderation.js';

const $ = (id) => document.getElementById(id);
/** How often the earnings are read again. */
const POLL_MS = 2000;

let me = '';
let terms = null;
let lastEarnings = null;
let tables = {};

const dia = (n) => t('studio.diamonds', { n: num(n) });

function status(id, text, error = false) {
  const s = $(id);
  s.classList.toggle('error', error);
  setText(s, text);
}

function notice(text) {
  setText($('notice'), text);
  $('notice').hidden = !text;
}

/** The currency of the cash-out form (the default one until chosen). */
function cashCurrency() {
  return $('cash-currency').value || (terms ? terms.currency : 'usd');
}

/** The rate and daily cap of `currency` (the default one's at the top of the terms). */
function rateOf(currency) {
  return (terms && terms.currencies && terms.currencies[currency]) || terms;
}

/** Diamonds in the cash-out form's currency, from the terms. */
function value(diamonds) {
  if (!terms) return '';
  const c = cashCurrency();
  return money(Math.floor((diamonds * rateOf(c).cents_per_100_diamonds) / 100), c);
}

/**
 * The money of `field` in every currency that has some ("$5.00 · 3,00 €"):
 * each currency apart, never added up; zero in the default currency when none.
 */
function moneys(e, field) {
  const parts = Object.entries(e.currencies || {}).filter(([, v]) => v[field]).map(([c, v]) => money(v[field], c));
  if (!e.currencies && e[field]) parts.push(money(e[field], 'usd'));
  return parts.length ? parts.join(' · ') : money(0, terms ? terms.currency : 'usd');
}

/**
 * Marketplace income (completed contract payouts, net of the fee) in every
 * currency that has some, each apart; zero in the default currency when none.
 */
function marketIncome(byCurrency) {
  const parts = Object.entries(byCurrency || {}).filter(([, v]) => v).map(([c, v]) => money(v, c));
  return parts.length ? parts.join(' · ') : money(0, terms ? terms.currency : 'usd');
}

async function earnings() {
  const e = await api(`/v1/creators/${encodeURIComponent(me)}/earnings`);
  setText($('e-pending'), dia(e.diamonds_pending));
  setText($('e-held'), dia(e.diamonds_held));
  setText($('e-available'), `${dia(e.diamonds_available)}${terms ? ` · ${value(e.diamonds_available)}` : ''}`);
  setText($('e-cashed'), `${dia(e.diamonds_cashed_out)} · ${moneys(e, 'cashed_out_cents')}`);
  setText($('e-tips'), moneys(e, 'tips_cents'));
  setText($('e-market'), marketIncome(e.marketplace_cents));
  $('e-market').dataset.cents = JSON.stringify(e.marketplace_cents || {});
  setText($('e-reversed'), `${dia(e.diamonds_reversed)} · ${moneys(e, 'tips_reversed_cents')}`);
  for (const [id, v] of [['e-pending', e.diamonds_pending], ['e-held', e.diamonds_held], ['e-available', e.diamonds_available],
    ['e-cashed', e.diamonds_cashed_out], ['e-tips', e.tips_cents], ['e-reversed', e.diamonds_reversed]]) {
    $(id).dataset.value = String(v);
  }
  $('cash-diamonds').max = String(e.diamonds_available);
  setText($('earn-updated'), t('studio.updated', { time: new Date().toLocaleTimeString() }));
  const prev = lastEarnings;
  lastEarnings = e;
  return prev;
}

async function pollOnce() {
  const prev = await earnings();
  if (!prev) return;
  if (prev.diamonds_settled !== lastEarnings.diamonds_settled) {
    tables.gifts.reload();
    supporters();
    daily();
    videos();
  }
  if (JSON.stringify(prev.currencies) !== JSON.stringify(lastEarnings.currencies)) tables.tips.reload();
  if (prev.diamonds_cashed_out !== lastEarnings.diamonds_cashed_out
    || prev.diamonds_cashout_pending !== lastEarnings.diamonds_cashout_pending) tables.cashouts.reload();
}

function poll() {
  setTimeout(async () => {
    try {
      await pollOnce();
    } catch {}
    poll();
  }, POLL_MS);
}

async function daily() {
  try {
    const v = await api('/v1/creators/me/earnings/daily?days=30');
    $('chart').replaceChildren(chart(v.days, $('chart').clientWidth));
  } catch (e) {
    setText($('chart'), errorText(e));
  }
}

async function supporters() {
  try {
    const v = await api('/v1/creators/me/supporters');
    $('supporters').replaceChildren(...v.supporters.map((s) =>
      el('li', {}, el('span', { class: 'top-user' }, s.user), el('span', { class: 'top-d' }, t('live.diamonds', { n: num(s.diamonds) })))));
    $('supporters-empty').hidden = v.supporters.length > 0;
  } catch {}
}

function historyTables() {
  const section = (id) => $(id).closest('section');
  tables.gifts = history(section('t-gifts'), '/v1/creators/me/gifts', 'gifts', (g) =>
    tr([when(g.ts), g.sender,
      el('span', {}, `${g.gift} ×${num(g.count)}`, g.message ? el('q', { class: 'cell-message' }, g.message) : null),
      where(g.target), { num: num(g.diamonds) }], { 'data-seq': g.seq }));
  tables.tips = history(section('t-tips'), '/v1/creators/me/tips', 'tips', (x) =>
    tr([when(x.created_ms), x.sender, el('span', { class: 'cell-message' }, x.message),
      t(`studio.tip_${x.status}`) + (x.cents_reversed ? ` · ${t('studio.reversed')} ${money(x.cents_reversed, x.currency || 'usd')}` : ''),
      { num: money(x.amount_cents, x.currency || 'usd') }], { 'data-currency': x.currency || 'usd' }));
  tables.cashouts = history(section('t-cashouts'), '/v1/creators/me/cashouts', 'cashouts', (c) =>
    tr([when(c.created_ms), { num: num(c.diamonds) }, { num: money(c.amount_cents, c.currency || 'usd') },
      el('span', { class: `state state-${c.status}` }, t(`studio.cash_${c.status}`))], { 'data-status': c.status }));
}

function cashForm() {
  const input = $('cash-diamonds');
  const showValue = () => setText($('cash-value'), input.value ? t('studio.cash_value', { value: value(Number(input.value)) }) : '');
  input.addEventListener('input', showValue);
  $('cash-currency').addEventListener('change', showValue);
  $('cash-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const diamonds = Number(input.value);
    if (!Number.isInteger(diamonds) || diamonds <= 0) return status('cash-status', t('studio.cash_bad'), true);
    $('cash-go').disabled = true;
    try {
      const r = await api('/v1/creators/me/cashouts', { method: 'POST', body: { diamonds, id: newId(), currency: cashCurrency() } });
      status('cash-status', t('studio.cash_done', { diamonds: num(r.diamonds), amount: money(r.amount_cents, r.currency || cashCurrency()), state: t(`studio.cash_${r.status}`) }));
      input.value = '';
      setText($('cash-value'), '');
      await earnings();
      tables.cashouts.reload();
    } catch (e) {
      status('cash-status', errorText(e), true);
    } finally {
      $('cash-go').disabled = false;
    }
  });
}

function showTerms(x) {
  terms = x;
  const hours = Math.round(x.hold_s / 3600);
  // Each currency's rate and daily cap, the default currency first.
  const codes = Object.keys(x.currencies || {}).sort((a, b) => (b === x.currency) - (a === x.currency));
  if (!codes.length) codes.push(x.currency);
  const each = (f) => codes.map((c) => money(rateOf(c)[f], c)).join(' · ');
  const sel = $('cash-currency');
  sel.replaceChildren(...codes.map((c) => el('option', { value: c }, c.toUpperCase())));
  sel.value = x.currency;
  sel.hidden = codes.length < 2;
  $('cash-currency-label').hidden = sel.hidden;
  $('terms').replaceChildren(
    el('li', {}, t('studio.term_rate', { value: each('cents_per_100_diamonds') })),
    el('li', {}, t('studio.term_min', { n: num(x.diamonds_min), value: value(x.diamonds_min) })),
    el('li', {}, x.hold_s < 3600 ? t('studio.term_hold_s', { n: num(x.hold_s) }) : t('studio.term_hold', { n: num(hours) })),
    el('li', {}, t('studio.term_daily', { n: num(x.cashouts_per_day_max), value: each('cents_per_day_max') })));
  $('cash-diamonds').min = String(x.diamonds_min);
}

async function getPaid() {
  try {
    const p = await api('/v1/creators/me/payouts');
    setText($('paid-state'), p.payouts_enabled ? t('studio.paid_on') : p.account ? t('studio.paid_pending') : t('studio.paid_none'));
    $('paid-state').dataset.enabled = String(!!p.payouts_enabled);
    setText($('onboard'), p.account ? t('studio.onboard_again') : t('studio.onboard'));
    $('onboard').hidden = !!p.payouts_enabled;
    $('dashboard').hidden = !p.account;
    // Back from Stripe's onboarding (stripe.onboard_return_url / _refresh_url).
    const back = new URLSearchParams(location.search).get('payouts');
    if (back === 'return') status('paid-status', p.payouts_enabled ? t('studio.back_on') : t('studio.back_pending'));
    if (back === 'refresh') status('paid-status', t('studio.back_expired'), true);
  } catch (e) {
    setText($('paid-state'), errorText(e));
    $('onboard').disabled = true;
  }
  $('dashboard').addEventListener('click', async () => {
    try {
      const r = await api('/v1/creators/me/payouts/dashboard', { method: 'POST' });
      if (r.url && /^https:\/\//.test(r.url)) location.assign(r.url);
    } catch (e) {
      status('paid-status', errorText(e), true);
    }
  });
  $('onboard').addEventListener('click', async () => {
    $('onboard').disabled = true;
    try {
      const r = await api('/v1/creators/me/payouts/onboard', { method: 'POST' });
      if (r.url && /^https?:\/\//.test(r.url)) location.assign(r.url);
    } catch (e) {
      status('paid-status', errorText(e), true);
      $('onboard').disabled = false;
    }
  });
}

function liveForm() {
  const room = () => $('live-room').value.trim();
  const sync = () => {
    const r = room() || 'demo';
    $('live-link').href = `/live/${encodeURIComponent(r)}`;
    $('overlay-preview').href = `/overlay/${encodeURIComponent(r)}`;
  };
  $('live-room').addEventListener('input', sync);
  sync();
  $('live-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const r = await api('/v1/rooms', { method: 'POST', body: room() ? { room: room() } : {} });
      $('live-room').value = r.room;
      sync();
      status('live-status', t('studio.live_on', { room: r.room }));
    } catch (e) {
      status('live-status', errorText(e), true);
    }
  });
  $('end-live').addEventListener('click', async () => {
    try {
      await api(`/v1/rooms/${encodeURIComponent(room())}`, { method: 'DELETE' });
      status('live-status', t('studio.live_off', { room: room() }));
    } catch (e) {
      status('live-status', errorText(e), true);
    }
  });
  let overlayBase = '';
  // The overlay URL with the goal options; the preview frame follows it.
  const overlayUrl = () => {
    if (!overlayBase) return;
    const u = new URL(overlayBase);
    const goal = parseInt($('overlay-goal').value, 10);
    if (goal > 0) {
      u.searchParams.set('goal', String(Math.min(goal, 1e9)));
      const label = $('overlay-goal-label').value.trim();
      if (label) u.searchParams.set('goal_label', label.slice(0, 60));
    }
    $('overlay-url').value = u.href;
    $('overlay-preview').href = u.href;
    if ($('overlay-frame').src !== u.href) $('overlay-frame').src = u.href;
  };
  for (const id of ['overlay-goal', 'overlay-goal-label']) $(id).addEventListener('change', overlayUrl);
  // The preview renders the overlay as OBS would (1280x720), scaled to fit.
  const box = $('overlay-frame').parentElement;
  new ResizeObserver(() => box.style.setProperty('--k', String(box.clientWidth / 1280))).observe(box);
  $('overlay-make').addEventListener('click', async () => {
    try {
      const r = await api('/v1/creators/me/overlay-tokens', { method: 'POST', body: { room: room() } });
      overlayBase = new URL(r.url, location.origin).href;
      overlayUrl();
      $('overlay-out').hidden = false;
      status('overlay-status', t('studio.overlay_made', { hours: num(Math.round(r.expires_in_s / 3600)) }));
    } catch (e) {
      status('overlay-status', errorText(e), true);
    }
  });
  $('overlay-copy').addEventListener('click', async () => {
    const input = $('overlay-url');
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      input.select();
      document.execCommand('copy');
    }
    status('overlay-status', t('studio.copied'));
  });
}

async function videos() {
  const section = $('t-videos').closest('section');
  try {
    const v = await api(`/v1/creators/${encodeURIComponent(me)}/videos?limit=20`);
    const pages = await Promise.all(v.videos.map((x) => api(`/v1/videos/${encodeURIComponent(x.video)}`).catch(() => null)));
    section.querySelector('tbody').replaceChildren(...v.videos.map((x, i) => tr([
      el('a', { href: `/videos/${encodeURIComponent(x.video)}` }, x.title || x.video),
      { num: num(pages[i] ? pages[i].totals.gifts : 0) }, { num: num(pages[i] ? pages[i].totals.diamonds : 0) }])));
    section.querySelector('.empty').hidden = v.videos.length > 0;
  } catch {}
}

function videoForm() {
  $('video-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const video = $('video-id').value.trim();
    const title = $('video-title').value;
    try {
      await api('/v1/videos', { method: 'POST', body: title ? { video, title } : { video } });
      status('video-status', t('studio.video_added', { video }));
      $('video-form').reset();
      videos();
    } catch (e) {
      status('video-status', errorText(e), true);
    }
  });
}

async function hooks() {
  try {
    const v = await api('/v1/creators/me/webhooks');
    $('hooks').replaceChildren(...v.endpoints.map((h) => {
      const del = el('button', { type: 'button', class: 'ghost small', 'aria-label': t('studio.hook_delete_aria', { url: h.url }) }, t('studio.hook_delete'));
      const show = el('button', { type: 'button', class: 'ghost small', 'aria-expanded': 'false' }, t('studio.hook_deliveries'));
      const list = el('ul', { class: 'deliveries', hidden: true });
      del.addEventListener('click', async () => {
        try {
          await api(`/v1/creators/me/webhooks/${encodeURIComponent(h.id)}`, { method: 'DELETE' });
          hooks();
        } catch (e) {
          status('hook-status', errorText(e), true);
        }
      });
      show.addEventListener('click', async () => {
        const open = list.hidden;
        show.setAttribute('aria-expanded', String(open));
        list.hidden = !open;
        if (!open) return;
        try {
          const d = await api(`/v1/creators/me/webhooks/${encodeURIComponent(h.id)}/deliveries`);
          list.replaceChildren(...(d.deliveries.length ? d.deliveries.map((x) => el('li', { class: x.status >= 200 && x.status < 300 ? 'ok' : 'bad' },
            `${when(x.at_ms)} · ${x.event_id} · ${x.status ?? x.error ?? ''} · ${num(x.duration_ms)} ms`)) : [el('li', { class: 'muted' }, t('studio.none'))]));
        } catch (e) {
          list.replaceChildren(el('li', {}, errorText(e)));
        }
      });
      return el('li', { class: 'hook' },
        el('div', { class: 'hook-head' }, el('code', { class: 'hook-url' }, h.url),
          el('span', { class: 'muted' }, h.events.join(', ')),
          h.disabled_ms ? el('span', { class: 'state state-reversed' }, t('studio.hook_disabled', { reason: h.disabled_reason || '' })) : null),
        el('div', { class: 'row' }, show, del), list);
    }));
  } catch (e) {
    status('hook-status', errorText(e), true);
  }
}

function hookForm() {
  $('hook-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const events = [...$('hook-form').querySelectorAll('input[name=ev]:checked')].map((i) => i.value);
    try {
      const r = await api('/v1/creators/me/webhooks', { method: 'POST', body: { url: $('hook-url').value.trim(), events } });
      status('hook-status', t('studio.hook_added', { secret: r.secret }));
      $('hook-url').value = '';
      hooks();
    } catch (e) {
      status('hook-status', errorText(e), true);
    }
  });
}

async function main() {
  await loadStrings();
  const session = await loadSession();
  shell();
  if (!session) return notice(t('studio.signin_needed'));
  if (session.role !== 'creator') return notice(t('studio.creators_only', { user: session.user }));
  me = currentSession().user;
  $('studio').hidden = false;
  tabs();
  try {
    const c = await api('/v1/creators/me/cashouts?limit=1');
    showTerms(c.terms);
  } catch {}
  historyTables();
  cashForm();
  liveForm();
  videoForm();
  hookForm();
  try {
    await earnings();
  } catch (e) {
    notice(errorText(e));
  }
  await Promise.all([daily(), supporters(), getPaid(), videos(), hooks(),
    tables.gifts.reload(), tables.tips.reload(), tables.cashouts.reload()]);
  document.body.dataset.ready = 'true';
  poll();
}

main();
