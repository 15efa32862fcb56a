// The viewer page /live/ROOM: the live's header and stats, gift
// animations with streak counters (settled by combo_end), the gift panel
// and the tip form. Signed in by the session cookie; the socket too (the
// SDK's token provider gives an empty token: the server reads the cookie).
// Messages kept back by the creator's moderation (`message_state`) show as
// a placeholder, an approved one once on its alert (kept-back.js).
import { Giftstream } from '/sdk/giftstream.js';
import { Alerts, keptBack, shownMessage } from '/ui/kept-back.js';
import { pay } from '/ui/pay.js';
import {
  api, el, errorText, lang, loadSession, loadStrings, money, newId, num, setText, shell, t,
} from '/ui/common.js';

const room = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() || '');
const $ = (id) => document.getElementById(id);
/** Coins from which a gift plays full screen. */
const BIG_COINS = 1000;
/** Cards on the stage at once. */
const ALERTS_MAX = 5;
/** A streak step with no further step nor combo_end this long is taken as over. */
const STREAK_IDLE_MS = 10000;
/** Where the viewer's choice of currency is kept. */
const CURRENCY_KEY = 'gs_currency';
/**
 * The viewer's currency (packages shown, tips paid in it): their choice,
 * else EUR on a French page, else USD, when the server offers it.
 */
let currency = 'usd';

const gifts = new Map();
const streaks = new Map();
const alerts = new Alerts();
let balance = null;
let live = true;
let canGift = false;
let gs = null;
/** `{publishable_key, js_url}` when this server takes payments. */
let stripeCfg = null;

function giftName(id) {
  const g = gifts.get(id);
  return g ? g.name : id;
}

function art(id, cls) {
  const g = gifts.get(id);
  return g && g.art ? el('img', { src: g.art, alt: '', class: cls, width: 48, height: 48 }) : null;
}

function trimAlerts() {
  const list = $('alerts');
  while (list.children.length > ALERTS_MAX) list.firstElementChild.remove();
}

function fadeOut(li, ms) {
  clearTimeout(li.gsTimer);
  li.gsTimer = setTimeout(() => {
    li.classList.add('leaving');
    setTimeout(() => li.remove(), 600);
  }, ms);
}

/** One streak step or its end (the SDK's `streak` event). */
export function showStreak(s) {
  let card = streaks.get(s.key);
  if (!card) {
    const count = el('span', { class: 'count' }, `x${num(s.count)}`);
    const li = el('li', { class: 'alert gift-alert', 'data-gift': s.gift, 'data-sender': s.sender },
      art(s.gift, 'alert-art'),
      el('span', { class: 'alert-text' }, t('gifts.sent_by', { sender: s.sender, gift: giftName(s.gift) })),
      count);
    card = { li, count };
    streaks.set(s.key, card);
    $('alerts').append(li);
    trimAlerts();
    if (!s.done) big(s);
  } else if (!s.done) {
    card.li.classList.remove('bump');
    void card.li.offsetWidth; // restart the bump animation
    card.li.classList.add('bump');
  }
  setText(card.count, `x${num(s.count)}`);
  card.li.dataset.count = String(s.count);
  if (s.done) {
    card.li.classList.add('done');
    card.li.dataset.done = 'true';
    streaks.delete(s.key);
    fadeOut(card.li, 4000);
  } else {
    // If combo_end never comes (an older server), the card still leaves.
    fadeOut(card.li, STREAK_IDLE_MS);
  }
}

/**
 * An alert's message: the text, or a placeholder when the creator's
 * moderation kept it back (filtered, or held for review).
 */
function setMessage(li, ev) {
  const old = li.querySelector('.alert-message');
  if (old) old.remove();
  const text = shownMessage(ev);
  let node = null;
  if (text) node = el('q', { class: 'tip-message alert-message' }, text);
  else if (keptBack(ev)) {
    node = el('span', { class: 'tip-message alert-message message-hidden', 'data-state': ev.message_state },
      t(ev.message_state === 'held' ? 'live.message_held' : 'live.message_hidden'));
  }
  if (node) {
    li.append(node);
    li.classList.add('with-message');
  }
}

/** A gift step's message, on its streak's card (the SDK emits the step's streak right after). */
function giftMessage(ev, key) {
  queueMicrotask(() => {
    const card = streaks.get(`${key}/${ev.sender}/${ev.gift}`);
    if (!card) return;
    alerts.remember(ev, card.li);
    if (ev.message || keptBack(ev)) setMessage(card.li, ev);
  });
}

/** An approved held message (`gift_message`): once, on its alert or a card of its own. */
export function showApproved(m) {
  const ref = alerts.approved(m);
  if (!ref) return;
  if (ref.node && ref.node.isConnected) {
    setMessage(ref.node, { message: m.message });
    ref.node.dataset.approved = 'true';
    fadeOut(ref.node, 8000);
    return;
  }
  const li = el('li', { class: 'alert tip-alert with-message', 'data-approved': 'true' },
    ref.sender ? el('span', { class: 'alert-text' }, ref.sender) : null,
    el('q', { class: 'tip-message alert-message' }, m.message));
  $('alerts').append(li);
  trimAlerts();
  fadeOut(li, 8000);
}

/** Big gifts (>= 1,000 coins) also play full screen. */
function big(s) {
  const g = gifts.get(s.gift);
  if (!g || g.coins < BIG_COINS) return;
  const box = $('big');
  box.replaceChildren(
    art(s.gift, 'big-art') || '',
    el('p', { class: 'big-text' }, t('gifts.sent_by', { sender: s.sender, gift: g.name })),
  );
  box.hidden = false;
  box.classList.remove('play');
  void box.offsetWidth;
  box.classList.add('play');
  clearTimeout(box.gsTimer);
  box.gsTimer = setTimeout(() => (box.hidden = true), 4000);
}

/** A tip with its message (text only). */
export function showTip(ev) {
  const li = el('li', { class: 'alert tip-alert' },
    el('span', { class: 'alert-text' }, t('tip.by', { sender: ev.sender, amount: money(ev.amount_cents, ev.currency) })));
  setMessage(li, ev);
  alerts.remember(ev, li);
  $('alerts').append(li);
  trimAlerts();
  fadeOut(li, 8000);
}

function showStats(ev) {
  setText($('viewers'), t('live.viewers', { n: num(ev.viewers) }));
  const top = $('top');
  top.replaceChildren(...(ev.top || []).slice(0, 5).map((e) =>
    el('li', {}, el('span', { class: 'top-user' }, e.user), el('span', { class: 'top-d' }, t('live.diamonds', { n: num(e.diamonds) })))));
  $('top-empty').hidden = top.children.length > 0;
}

function notice(text) {
  const n = $('notice');
  setText(n, text);
  n.hidden = !text;
}

function badge(kind) {
  const b = $('badge');
  setText(b, t(`live.badge_${kind}`));
  b.dataset.state = kind;
}

/** The creator blocked this viewer: refused on join, or dropped from the room. */
function blocked() {
  live = false;
  badge('ended');
  notice(t('live.blocked'));
  document.body.dataset.blocked = 'true';
  refreshButtons();
  for (const f of $('tip-form').elements) f.disabled = true;
  $('gift-message').disabled = true;
  if (gs) gs.close();
}

function ended() {
  live = false;
  badge('ended');
  notice(t('live.ended'));
  $('stage').classList.add('ended');
  refreshButtons();
  for (const f of $('tip-form').elements) f.disabled = true;
  $('gift-message').disabled = true;
  if (gs) gs.close();
}

function setBalance(n) {
  balance = n;
  setText($('balance'), t('gifts.coins', { n: num(n) }));
  refreshButtons();
}

function refreshButtons() {
  for (const b of $('gift-grid').querySelectorAll('button')) {
    const g = gifts.get(b.dataset.gift);
    const poor = balance != null && g.coins > balance;
    b.disabled = !live || !canGift || balance == null || poor;
    b.classList.toggle('poor', poor);
    b.title = poor ? t('gifts.too_poor', { gift: g.name }) : '';
  }
}

function giftGrid() {
  const grid = $('gift-grid');
  grid.replaceChildren(...[...gifts.values()].map((g) => {
    const b = el('button', {
      type: 'button', class: 'gift-btn', 'data-gift': g.id, disabled: true,
      'aria-label': t('gifts.send_aria', { gift: g.name, price: num(g.coins) }),
    }, art(g.id, 'gift-art'), el('span', { class: 'gift-name' }, g.name), el('span', { class: 'gift-price' }, num(g.coins)));
    b.addEventListener('click', () => send(g));
    return b;
  }));
}

async function send(g) {
  const status = $('gift-status');
  status.classList.remove('error');
  const message = $('gift-message').value.trim();
  try {
    const ack = await gs.gift({ room }, g.id, 1, message ? { id: newId(), message } : { id: newId() });
    if (message) $('gift-message').value = '';
    setBalance(ack.balance);
    setText(status, t('gifts.sent', { gift: g.name, n: num(ack.balance) }));
  } catch (e) {
    status.classList.add('error');
    setText(status, errorText(e));
    if (e.code === 'room_not_live') ended();
    if (e.code === 'forbidden') blocked();
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Buy a package: the webhook credits the coins; the page waits for them. */
async function buy(p) {
  const status = $('coins-status');
  status.classList.remove('error');
  setText(status, '');
  for (const b of $('packages').querySelectorAll('button')) b.disabled = true;
  try {
    const before = (await api('/v1/wallet')).coins;
    const r = await api('/v1/coins/purchases', { method: 'POST', body: { package: p.id, id: newId() } });
    if (!(await pay(stripeCfg, r.client_secret, money(r.amount_cents, r.currency)))) {
      return setText(status, t('coins.cancelled'));
    }
    setText(status, t('coins.waiting'));
    for (let i = 0; i < 60; i++) {
      const w = await api('/v1/wallet');
      if (w.coins >= before + r.coins) {
        setBalance(w.coins);
        return setText(status, t('coins.credited', { coins: num(r.coins), n: num(w.coins) }));
      }
      await sleep(1000);
    }
    setText(status, t('coins.late'));
  } catch (e) {
    status.classList.add('error');
    setText(status, errorText(e));
  } finally {
    for (const b of $('packages').querySelectorAll('button')) b.disabled = false;
  }
}

/** The currency to start with, of those the server offers. */
function firstCurrency(offered, fallback) {
  let kept = null;
  try {
    kept = localStorage.getItem(CURRENCY_KEY);
  } catch {}
  for (const c of [kept, lang === 'fr' ? 'eur' : 'usd', fallback]) {
    if (c && offered.includes(c)) return c;
  }
  return offered[0] || 'usd';
}

async function coinsPanel() {
  let v;
  try {
    v = await (await fetch('/v1/coins/packages')).json();
  } catch {
    v = { packages: [], stripe: null };
  }
  const offered = v.currencies || [...new Set(v.packages.map((p) => p.currency))];
  currency = firstCurrency(offered, v.currency);
  const sel = $('currency');
  sel.replaceChildren(...offered.map((c) => el('option', { value: c }, c.toUpperCase())));
  sel.value = currency;
  sel.hidden = offered.length < 2;
  $('currency-label').hidden = sel.hidden;
  const show = () => {
    setText($('tip-amount-label'), t('tip.amount', { currency: currency.toUpperCase() }));
    if (!stripeCfg) return;
    $('packages').replaceChildren(...v.packages.filter((p) => p.currency === currency).map((p) => {
      const price = money(p.price_cents, p.currency);
      const b = el('button', { type: 'button', class: 'package-btn', 'data-package': p.id,
        'data-currency': p.currency, 'aria-label': t('coins.buy_aria', { coins: num(p.coins), price }) },
      el('span', { class: 'pkg-coins' }, num(p.coins)), el('span', { class: 'pkg-price' }, price));
      b.addEventListener('click', () => buy(p));
      return b;
    }));
  };
  sel.addEventListener('change', () => {
    currency = sel.value;
    try {
      localStorage.setItem(CURRENCY_KEY, currency);
    } catch {}
    show();
  });
  stripeCfg = v.stripe;
  show();
  if (!stripeCfg) setText($('coins-status'), t('coins.unavailable'));
}

function tipForm() {
  $('tip-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const status = $('tip-status');
    status.classList.remove('error');
    const amount = Number(String($('tip-amount').value).replace(',', '.'));
    if (!(amount > 0)) {
      status.classList.add('error');
      return setText(status, t('tip.bad_amount'));
    }
    const cents = Math.round(amount * 100);
    $('tip-send').disabled = true;
    setText(status, t('tip.sending'));
    try {
      const r = await api(`/v1/rooms/${encodeURIComponent(room)}/tips`, {
        method: 'POST',
        body: { amount_cents: cents, currency, message: $('tip-message').value, id: newId() },
      });
      const amount = money(r.amount_cents, r.currency);
      if (!stripeCfg) return setText(status, t('tip.created', { amount }));
      if (await pay(stripeCfg, r.client_secret, amount)) {
        setText(status, t('tip.paid', { amount }));
        $('tip-form').reset();
      } else {
        setText(status, t('coins.cancelled'));
      }
    } catch (e) {
      status.classList.add('error');
      setText(status, errorText(e));
    } finally {
      $('tip-send').disabled = !live;
    }
  });
}

async function main() {
  await loadStrings();
  const [session, catalog] = await Promise.all([
    loadSession(),
    fetch('/v1/catalog').then((r) => r.json()).catch(() => ({ gifts: [] })),
  ]);
  shell();
  setText($('title'), room);
  setText($('stage-name'), room);
  for (const g of catalog.gifts) gifts.set(g.id, g);
  giftGrid();
  tipForm();
  if (!session) {
    $('badge').hidden = true;
    notice(t('live.signin_needed'));
    for (const f of $('tip-form').elements) f.disabled = true;
    $('gift-message').disabled = true;
    return;
  }
  coinsPanel();
  let info;
  try {
    info = await api(`/v1/rooms/${encodeURIComponent(room)}`);
  } catch (e) {
    if (e.code === 'forbidden') return blocked();
    notice(e.code === 'unknown_room' ? t('live.unknown_room', { room }) : errorText(e));
    live = false;
    return ended();
  }
  setText($('creator'), t('live.by', { creator: info.creator }));
  setText($('viewers'), t('live.viewers', { n: num(info.viewers) }));
  canGift = info.creator !== session.user;
  if (!canGift) setText($('gift-status'), t('gifts.own_room'));
  if (!info.live) return ended();
  api('/v1/wallet').then((w) => setBalance(w.coins), (e) => setText($('gift-status'), errorText(e)));
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  gs = new Giftstream({ url: `${proto}://${location.host}/v1/ws`, token: () => '' });
  gs.on('state', (s) => {
    document.body.dataset.state = s;
    if (!live) return;
    if (s === 'open') {
      badge('live');
      notice('');
    } else if (s === 'reconnecting') {
      badge('connecting');
      notice(t('live.reconnecting'));
    } else if (s === 'closed') {
      notice(t('error.unauthorized'));
    }
  });
  gs.on('gift', giftMessage);
  gs.on('streak', showStreak);
  gs.on('tip', showTip);
  gs.on('gift_message', showApproved);
  gs.on('room_stats', showStats);
  gs.on('room_ended', ended);
  gs.on('error', (e) => {
    if (e && e.code === 'room_not_live') ended();
    if (e && e.code === 'forbidden') blocked();
  });
  try {
    await gs.join({ room }, { coalesce: true });
    document.body.dataset.joined = 'true';
  } catch (e) {
    if (e.code === 'room_not_live') return ended();
    if (e.code === 'forbidden') return blocked();
    notice(errorText(e));
  }
}

main();
