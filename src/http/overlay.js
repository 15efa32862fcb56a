// OBS browser source: /overlay/ROOM?token=JWT (a token scoped to the room's
// overlay). Gift cards with art and a streak counter that finishes on
// combo_end, tips with their message (as text), big gifts full screen, room
// stats. Options by query string: position=bl|br|tl|tr, scale=0.5..3,
// max=1..10 cards, stats=0 hides the stats, lang=en|fr, goal=N diamonds
// (1..1e9) with goal_label=TEXT (at most 60 characters) shows a goal bar
// filled by the live's diamonds (from room_stats). The SDK speaks the
// JSON subprotocol (giftstream.v1.json), reconnects
// with backoff and resumes from the last seq (each seq shown once); what a
// resume replays is shown only if it is recent, so old alerts never play
// as new ones. A message the creator's moderation kept back
// (`message_state`) is never shown: the gift or tip shows without it; an
// approved one (`gift_message`) shows once, on its alert (kept-back.js).
import { Giftstream, jwtPayload } from '/sdk/giftstream.js';
import { Alerts, shownMessage } from '/ui/kept-back.js';

const q = new URLSearchParams(location.search);
document.documentElement.lang = q.get('lang') === 'fr' ? 'fr' : 'en';
const { el, errorText, loadStrings, money, num, setText, t } = await import('/ui/common.js');

const room = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() || '');
const token = q.get('token') || '';
const clamp = (v, lo, hi, d) => (Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : d);
const opts = {
  position: ['bl', 'br', 'tl', 'tr'].includes(q.get('position')) ? q.get('position') : 'bl',
  scale: clamp(parseFloat(q.get('scale')), 0.5, 3, 1),
  max: Math.round(clamp(parseInt(q.get('max'), 10), 1, 10, 5)),
  stats: q.get('stats') !== '0',
  goal: Math.round(clamp(parseInt(q.get('goal'), 10), 0, 1e9, 0)),
  goalLabel: (q.get('goal_label') || '').slice(0, 60),
};
/** Coins from which a gift plays full screen. */
const BIG_COINS = 1000;
/** A replayed event older than this (after a reconnect) is not shown. */
const STALE_MS = 30000;
/** A streak with no step nor combo_end this long leaves anyway. */
const STREAK_IDLE_MS = 10000;

const feed = document.getElementById('feed');
const stats = document.getElementById('stats');
const gifts = new Map();
const cards = new Map();
const alerts = new Alerts();
let replaying = false;
let lastTs = Date.now();

document.body.classList.add(`pos-${opts.position}`);
document.body.style.setProperty('--scale', String(opts.scale));
stats.hidden = !opts.stats;

const goal = document.getElementById('goal');
goal.hidden = opts.goal < 1;
/** The goal bar at `n` diamonds of `opts.goal`. */
export function showGoal(n) {
  if (opts.goal < 1) return;
  const have = Math.max(0, n || 0);
  const pct = Math.min(100, (have / opts.goal) * 100);
  const fill = el('span', { class: 'goal-fill' });
  fill.style.width = `${pct.toFixed(1)}%`;
  goal.replaceChildren(
    el('span', { class: 'goal-label' }, opts.goalLabel || t('overlay.goal')),
    el('span', { class: 'goal-bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': String(opts.goal), 'aria-valuenow': String(Math.min(have, opts.goal)) }, fill),
    el('span', { class: 'goal-count' }, `${num(have)} / ${num(opts.goal)}`),
  );
  goal.dataset.diamonds = String(have);
  goal.classList.toggle('reached', have >= opts.goal);
}

const stale = () => replaying && Date.now() - lastTs > STALE_MS;
const name = (id) => (gifts.get(id) || { name: id }).name;
function art(id, cls) {
  const g = gifts.get(id);
  return g && g.art ? el('img', { src: g.art, alt: '', class: cls }) : null;
}
function trim() {
  while (feed.children.length > opts.max) feed.firstElementChild.remove();
}
function leave(card, ms) {
  clearTimeout(card.gsTimer);
  card.gsTimer = setTimeout(() => {
    card.classList.add('out');
    setTimeout(() => card.remove(), 600);
  }, ms);
}

/** A streak step or its end (the SDK's `streak` event). */
export function showStreak(s) {
  let c = cards.get(s.key);
  if (!c) {
    if (stale()) return;
    const g = gifts.get(s.gift);
    const count = el('span', { class: 'combo' }, '');
    const li = el('li', { class: 'card' + (g && g.coins >= BIG_COINS ? ' big-gift' : ''), 'data-gift': s.gift },
      art(s.gift, 'art'),
      el('span', { class: 'who' }, el('b', {}, s.sender), el('span', {}, name(s.gift))),
      count);
    c = { li, count };
    cards.set(s.key, c);
    feed.append(li);
    trim();
    if (g && g.coins >= BIG_COINS && !s.done) big(s, g);
  } else if (!s.done) {
    c.li.classList.remove('bump');
    void c.li.offsetWidth;
    c.li.classList.add('bump');
  }
  setText(c.count, `x${num(s.count)}`);
  c.li.dataset.count = String(s.count);
  if (s.done) {
    c.li.classList.add('done');
    c.li.dataset.done = 'true';
    cards.delete(s.key);
    leave(c.li, 3500);
  } else {
    leave(c.li, STREAK_IDLE_MS);
  }
}

function big(s, g) {
  const box = document.getElementById('big');
  box.replaceChildren(art(s.gift, 'big-art') || '', el('p', {}, t('gifts.sent_by', { sender: s.sender, gift: g.name })));
  box.hidden = false;
  box.classList.remove('play');
  void box.offsetWidth;
  box.classList.add('play');
  clearTimeout(box.gsTimer);
  box.gsTimer = setTimeout(() => (box.hidden = true), 4000);
}

/** A card's message (text only); a kept-back one is never passed here. */
function setMessage(card, text) {
  const old = card.querySelector('.msg');
  if (old) old.remove();
  if (!text) return;
  card.append(el('q', { class: 'msg' }, text));
  card.classList.add('has-msg');
}

/** A gift step's message, on its streak's card (the SDK emits the step's streak right after). */
function giftMessage(ev, key) {
  queueMicrotask(() => {
    const c = cards.get(`${key}/${ev.sender}/${ev.gift}`);
    if (!c) return;
    alerts.remember(ev, c.li);
    if (ev.message_state) c.li.dataset.messageState = ev.message_state;
    setMessage(c.li, shownMessage(ev) || (c.li.querySelector('.msg') || {}).textContent || '');
  });
}

/** An approved held message (`gift_message`): once, on its card or a card of its own. */
export function showApproved(m) {
  if (stale()) return;
  const ref = alerts.approved(m);
  if (!ref) return;
  if (ref.node && ref.node.isConnected) {
    setMessage(ref.node, m.message);
    ref.node.dataset.approved = 'true';
    leave(ref.node, 9000);
    return;
  }
  const li = el('li', { class: 'card tip has-msg', 'data-approved': 'true' },
    ref.sender ? el('span', { class: 'who' }, el('b', {}, ref.sender)) : null,
    el('q', { class: 'msg' }, m.message));
  feed.append(li);
  trim();
  leave(li, 9000);
}

/** A tip and its message (text only; none when kept back). */
export function showTip(ev) {
  if (stale()) return;
  const li = el('li', { class: 'card tip', 'data-message-state': ev.message_state || null },
    el('span', { class: 'who' }, el('b', {}, ev.sender), el('span', {}, money(ev.amount_cents, ev.currency))));
  setMessage(li, shownMessage(ev));
  alerts.remember(ev, li);
  feed.append(li);
  trim();
  leave(li, 9000);
}

function notice(text) {
  const n = document.getElementById('notice');
  setText(n, text);
  n.hidden = !text;
}

await loadStrings();
showGoal(0);
try {
  const c = await (await fetch('/v1/catalog')).json();
  for (const g of c.gifts) gifts.set(g.id, g);
} catch {}

const proto = location.protocol === 'https:' ? 'wss' : 'ws';
const gs = new Giftstream({
  url: `${proto}://${location.host}/v1/ws`,
  token: () => {
    const p = jwtPayload(token);
    if (p && typeof p.exp === 'number' && p.exp * 1000 < Date.now()) {
      notice(t('overlay.expired'));
      throw new Error('overlay token expired');
    }
    return token;
  },
});
let joinedOnce = false;
gs.on('state', (s) => {
  document.body.dataset.state = s;
  if (s !== 'open' && joinedOnce) replaying = true;
});
gs.on('joined', () => {
  joinedOnce = true;
  document.body.dataset.joined = 'true';
  replaying = false;
  notice('');
});
gs.on('gift', (m, key) => {
  lastTs = m.ts || Date.now();
  giftMessage(m, key);
});
gs.on('gift_message', (m) => {
  lastTs = m.ts || lastTs;
  showApproved(m);
});
gs.on('combo_end', (m) => (lastTs = m.ts || Date.now()));
gs.on('tip', (m) => {
  lastTs = m.ts || Date.now();
  showTip(m);
});
gs.on('streak', showStreak);
gs.on('room_stats', (ev) => {
  showGoal(ev.diamonds);
  const top = ev.top && ev.top[0];
  stats.replaceChildren(
    el('span', {}, t('live.viewers', { n: num(ev.viewers) })),
    el('span', {}, t('live.diamonds', { n: num(ev.diamonds) })),
    top ? el('span', {}, `★ ${top.user}`) : '',
  );
});
gs.on('room_ended', () => setText(stats, t('error.room_not_live')));
gs.on('error', (e) => {
  if (e && e.code === 'room_not_live') setText(stats, t('error.room_not_live'));
});
gs.join({ room }, { coalesce: true }).catch((e) => notice(errorText(e)));
