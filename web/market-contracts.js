// A marketplace contract as the two marketplace pages show it (/brand and
// /marketplace): one card per contract with its state, payment,
// deliverable (its URL a link only when it is http(s), else text), review
// due time and payout, plus the actions the page gives it. Also what both
// pages need around the actions: a form revealed by a button, a refused
// move explained in the page's language, and following a contract until
// the server has moved it (a webhook, a payout). Text only (el/setText).
// Must not: decide what is allowed (the server does; the pages only offer
// the actions of the state they were shown).
import { api, el, errorText, lang, money, t } from '/ui/common.js';
import { stateBadge } from '/ui/market-common.js';

/** A date and time (ms since the epoch) in the page's language. */
export function when(ms) {
  return ms ? new Date(ms).toLocaleString(lang, { dateStyle: 'medium', timeStyle: 'short' }) : '–';
}

/** Whether `url` is an absolute http(s) URL (only those become links). */
export function isWebLink(url) {
  try {
    const u = new URL(String(url));
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

/** Run `fn` with `b` disabled meanwhile (no second request while one is on its way). */
async function busy(b, fn) {
  if (b.disabled) return;
  b.disabled = true;
  try {
    await fn();
  } finally {
    b.disabled = false;
  }
}

/** A button running `fn` on click (ghost unless `primary`), disabled while it runs. */
export function button(label, attrs, fn, primary = false) {
  const b = el('button', { type: 'button', class: primary ? null : 'ghost', ...attrs }, label);
  b.addEventListener('click', () => busy(b, fn));
  return b;
}

/**
 * A button that shows and hides `form` (aria-expanded), focusing the
 * form's first field when shown. Returns the button; the caller places
 * both.
 */
export function revealer(label, attrs, form) {
  const b = el('button', { type: 'button', class: 'ghost', 'aria-expanded': 'false', ...attrs }, label);
  form.hidden = true;
  b.addEventListener('click', () => {
    form.hidden = !form.hidden;
    b.setAttribute('aria-expanded', String(!form.hidden));
    if (!form.hidden) form.querySelector('input, textarea, button')?.focus();
  });
  return b;
}

function paymentText(k) {
  if (k.paid_ms) return t('market.paid_on', { time: when(k.paid_ms) });
  return k.state === 'awaiting_payment' ? t('market.not_paid') : '–';
}

function deliverableNodes(k) {
  const d = k.deliverable;
  if (!d) return [k.state === 'awaiting_payment' || k.state === 'funded' ? t('market.no_deliverable') : '–'];
  const link = isWebLink(d.url)
    ? el('a', { href: d.url, class: 'mlink', rel: 'noopener noreferrer nofollow', target: '_blank' }, d.url)
    : el('span', { class: 'mlink' }, d.url);
  return [
    link,
    d.note ? el('span', { class: 'mnote' }, d.note) : null,
    el('span', { class: 'muted mwhen' }, t('market.submitted_on', { time: when(d.submitted_ms) })),
  ];
}

/** The review's due time, while the deliverable awaits the brand's answer. */
function reviewText(k) {
  if (!k.review_due_ms || k.state !== 'submitted') return '–';
  return t('market.review_due', { time: when(k.review_due_ms) });
}

function payoutText(k) {
  const p = k.payout;
  if (!p) return '–';
  const amount = money(p.amount_cents, k.currency);
  const status = t(`market.payout.${p.status}`);
  let s = t(p.kind === 'refund' ? 'market.payout_refund' : 'market.payout_transfer', { amount, status });
  if (p.fee_cents) s += ` ${t('market.payout_fee', { fee: money(p.fee_cents, k.currency) })}`;
  return s;
}

function fact(key, name, ...value) {
  return [el('dt', {}, t(key)), el('dd', { 'data-fact': name }, ...value)];
}

/**
 * A contract's card: `title` (the campaign), `party` (who it is with, in
 * words), `actions` (buttons) and `extra` (forms the buttons reveal).
 * data-* attributes carry the raw facts (state, payout kind and status,
 * disputed) for scripts and tests.
 */
export function contractCard(k, { title, party, actions = [], extra = [] }) {
  const p = k.payout;
  return el('li', {
    class: 'mcard mcontract', tabindex: '-1', 'data-contract': k.contract, 'data-state': k.state,
    'data-payout-kind': p ? p.kind : null, 'data-payout-status': p ? p.status : null,
    'data-disputed': k.disputed ? 'true' : null,
  },
  el('div', { class: 'mcard-head' },
    el('h3', { class: 'mcard-title' }, title),
    stateBadge(k.state),
    k.disputed ? el('span', { class: 'mstate', 'data-state': 'disputed' }, t('market.disputed')) : null),
  el('p', { class: 'muted' }, party),
  el('dl', { class: 'mfacts' },
    ...fact('market.price', 'price', money(k.price_cents, k.currency)),
    ...fact('market.payment', 'payment', paymentText(k)),
    ...fact('market.deliverable', 'deliverable', ...deliverableNodes(k)),
    ...fact('market.review', 'review', reviewText(k)),
    ...fact('market.payout', 'payout', payoutText(k))),
  actions.length ? el('div', { class: 'mactions' }, ...actions) : null,
  ...extra);
}

/**
 * A form revealed under a card (`data-NAME-form`): `fields`, a submit
 * button (`data-NAME-send`) and a status line of its own (`form.status`,
 * where its errors are said, next to the fields); submitting runs `fn`
 * (the button disabled meanwhile).
 */
export function cardForm(k, name, fields, submit, fn) {
  const status = el('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
  const send = el('button', { type: 'submit', [`data-${name}-send`]: k.contract }, submit);
  const form = el('form', { class: 'form mform', novalidate: true, [`data-${name}-form`]: k.contract },
    ...fields, el('div', { class: 'row' }, send), status);
  form.status = status;
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(send, fn);
  });
  return form;
}

/**
 * A refused or failed contract action in words, in the page's language: a
 * 409 says the state the contract is in now (read again with `reread`, and
 * given to `show` so the card shows it), or that a dispute holds it;
 * anything else as errorText.
 */
export async function explain(e, reread, show) {
  if (e && e.code === 'conflict' && reread) {
    try {
      const k = await reread();
      if (show) show(k);
      if (k.disputed) return t('market.conflict_disputed');
      return t('market.conflict_state', { state: t(`market.state.${k.state}`).toLowerCase() });
    } catch {}
  }
  return errorText(e);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Read the contract at `path` every second until `done(contract)` (at most
 * `seconds`); resolves with the last contract read and whether it got there.
 */
export async function follow(path, done, seconds = 60) {
  let k = null;
  for (let i = 0; i < seconds; i++) {
    k = await api(path);
    if (done(k)) return { contract: k, reached: true };
    await sleep(1000);
  }
  return { contract: k, reached: false };
}

/** Whether the server is still moving a contract's money (a payout pending). */
export const moving = (k) => !!(k.payout && k.payout.status === 'pending');

/** The contracts being watched (their paths). */
const watching = new Set();

/**
 * While the contract at `path` has a payout pending, read it every second
 * (up to 30 s) and give the result to `show` once; one watch per contract
 * at a time (a `show` that asks to watch again meanwhile is ignored).
 */
export async function watchPayout(path, show) {
  if (watching.has(path)) return;
  watching.add(path);
  try {
    const r = await follow(path, (x) => !moving(x), 30);
    if (r.contract) show(r.contract);
  } catch {
  } finally {
    watching.delete(path);
  }
}
