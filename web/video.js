// The video page /videos/VIDEO: title, creator, totals, gifts with their
// messages (Super Thanks style), top supporters, and the gift panel (a
// gift with an optional message, over the SDK). Live: the video's feed
// (`join {video}`) adds each gift as it is accepted; the totals and the
// supporters come from GET /v1/videos/VIDEO (settled gifts) and are read
// again shortly after a gift. Signed in by the session cookie. A message
// the creator's moderation kept back (`message_state`) shows as a
// placeholder; an approved one (`gift_message`) once, on its card.
import { Giftstream } from '/sdk/giftstream.js';
import { Alerts, keptBack, shownMessage } from '/ui/kept-back.js';
import { api, el, errorText, loadSession, loadStrings, newId, num, setText, shell, t } from '/ui/common.js';

const video = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() || '');
const $ = (id) => document.getElementById(id);
/** Gift cards kept on the page. */
const THANKS_MAX = 50;

const gifts = new Map();
/** `video:seq` of the gifts shown, so a gift is shown once. */
const shown = new Set();
const alerts = new Alerts();
let balance = null;
let canGift = false;
let gs = null;
let refreshTimer = null;

const giftName = (id) => (gifts.get(id) ? gifts.get(id).name : id);

function art(id, cls) {
  const g = gifts.get(id);
  return g && g.art ? el('img', { src: g.art, alt: '', class: cls, width: 40, height: 40 }) : null;
}

function notice(text) {
  setText($('notice'), text);
  $('notice').hidden = !text;
}

/** One gift card: who, what, and the message as text. Newest on top. */
function thank(g, fresh) {
  const key = `${g.seq}`;
  if (g.seq != null && shown.has(key)) return;
  if (g.seq != null) shown.add(key);
  const text = shownMessage(g);
  const li = el('li', { class: `thanks-card${text ? ' with-message' : ''}${fresh ? ' fresh' : ''}`, 'data-seq': g.seq },
    art(g.gift, 'thanks-art'),
    el('div', { class: 'thanks-body' },
      el('p', { class: 'thanks-head' },
        el('strong', {}, g.sender), ' ',
        el('span', {}, t('video.sent', { gift: giftName(g.gift), n: num(g.count) }))),
      text ? el('p', { class: 'thanks-message' }, text) : null,
      !text && keptBack(g) ? el('p', { class: 'thanks-message message-hidden', 'data-state': g.message_state },
        t(g.message_state === 'held' ? 'live.message_held' : 'live.message_hidden')) : null));
  alerts.remember(g, li);
  const list = $('thanks');
  if (fresh) list.prepend(li);
  else list.append(li);
  while (list.children.length > THANKS_MAX) list.lastElementChild.remove();
  $('thanks-empty').hidden = true;
}

/** An approved held message (`gift_message`): once, on its gift's card. */
export function showApproved(m) {
  const ref = alerts.approved(m);
  if (!ref || !ref.node) return;
  const body = ref.node.querySelector('.thanks-body');
  const old = body.querySelector('.thanks-message');
  if (old) old.remove();
  body.append(el('p', { class: 'thanks-message' }, m.message));
  ref.node.classList.add('with-message');
  ref.node.dataset.approved = 'true';
}

function showTop(top) {
  $('top').replaceChildren(...top.map((e) =>
    el('li', {}, el('span', { class: 'top-user' }, e.user), el('span', { class: 'top-d' }, t('live.diamonds', { n: num(e.diamonds) })))));
  $('top-empty').hidden = top.length > 0;
}

function showTotals(v) {
  setText($('totals'), t('video.totals', { gifts: num(v.totals.gifts), diamonds: num(v.totals.diamonds) }));
}

/** Read the page again (totals and supporters follow the settlement). */
async function refresh() {
  try {
    const v = await api(`/v1/videos/${encodeURIComponent(video)}`);
    showTotals(v);
    showTop(v.top);
    for (const g of [...v.latest].reverse()) thank(g, true);
  } catch {}
}

function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 1500);
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
    b.disabled = !canGift || balance == null || poor;
    b.classList.toggle('poor', poor);
    b.title = poor ? t('gifts.too_poor', { gift: g.name }) : '';
  }
}

function giftGrid() {
  $('gift-grid').replaceChildren(...[...gifts.values()].map((g) => {
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
    const ack = await gs.gift({ video }, g.id, 1, message ? { id: newId(), message } : { id: newId() });
    setBalance(ack.balance);
    $('gift-message').value = '';
    setText(status, t('gifts.sent', { gift: g.name, n: num(ack.balance) }));
    refreshSoon();
  } catch (e) {
    status.classList.add('error');
    setText(status, errorText(e));
  }
}

async function main() {
  await loadStrings();
  const [session, catalog] = await Promise.all([
    loadSession(),
    fetch('/v1/catalog').then((r) => r.json()).catch(() => ({ gifts: [] })),
  ]);
  shell();
  setText($('title'), video);
  setText($('stage-name'), video);
  for (const g of catalog.gifts) gifts.set(g.id, g);
  giftGrid();
  if (!session) {
    $('badge').hidden = true;
    $('gift-message').disabled = true;
    return notice(t('video.signin_needed'));
  }
  let v;
  try {
    v = await api(`/v1/videos/${encodeURIComponent(video)}`);
  } catch (e) {
    $('gift-message').disabled = true;
    return notice(e.code === 'unknown_video' ? t('video.unknown', { video }) : errorText(e));
  }
  if (v.title) {
    setText($('title'), v.title);
    document.title = `${v.title} · ${t('app.name')}`;
  }
  setText($('creator'), t('live.by', { creator: v.creator }));
  showTotals(v);
  showTop(v.top);
  for (const g of v.latest) thank(g, false);
  canGift = v.creator !== session.user;
  if (!canGift) {
    $('gift-message').disabled = true;
    setText($('gift-status'), t('video.own'));
  }
  api('/v1/wallet').then((w) => setBalance(w.coins), (e) => setText($('gift-status'), errorText(e)));
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  gs = new Giftstream({ url: `${proto}://${location.host}/v1/ws`, token: () => '' });
  gs.on('state', (s) => (document.body.dataset.state = s));
  gs.on('gift', (msg) => {
    thank(msg, true);
    refreshSoon();
  });
  gs.on('gift_message', showApproved);
  try {
    await gs.join({ video });
    document.body.dataset.joined = 'true';
  } catch (e) {
    notice(errorText(e));
  }
}

main();
