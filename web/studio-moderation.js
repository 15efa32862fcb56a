// The studio's moderation tab (issue #17): the review queue, live (the
// studio watches the creator's inbox over the SDK: a held message arrives
// as an inbox event with `message_state: "held"`), approve / reject, the
// recent filtered messages with their original text, muted words (whole
// word or substring), the built-in lists and review rules, blocks,
// moderators and the audit log. Also the tab strip (earnings / moderation,
// ARIA tabs: arrows, Home, End; `#moderation` opens the tab).
// Owns no state the server does not have: every change goes through the
// moderation routes (docs in MOD-API / docs/MODERATION.md) and the lists
// are read again after it. Text only (the shell's el()/setText), never HTML.
import { Giftstream } from '/sdk/giftstream.js';
import { api, el, errorText, num, setText, t } from '/ui/common.js';
import { history as pager, tr, when, where } from '/ui/studio-parts.js';

const $ = (id) => document.getElementById(id);
/** Inbox events come in bursts: the lists are read again this long after the last. */
const RELOAD_MS = 300;

let started = false;
let words = [];
let reloadTimer = null;
const tables = {};
/** Held messages shown, by id: {li, m}. */
const held = new Map();

function status(id, text, error = false) {
  const s = $(id);
  s.classList.toggle('error', error);
  setText(s, text);
}

/** A string from the catalog, or `fallback` when the catalog has no such key. */
function tOr(key, fallback, vars) {
  const s = t(key, vars);
  return s === key ? fallback : s;
}

/** Why a message was kept back, in words: `word:W`, `builtin:LANG`, `account_age`, `coins_below`. */
function reasonText(r) {
  if (!r) return '';
  const i = r.indexOf(':');
  const kind = i < 0 ? r : r.slice(0, i);
  const arg = i < 0 ? '' : r.slice(i + 1);
  if (kind === 'word') return t('mod.reason_word', { word: arg });
  if (kind === 'builtin') return t('mod.reason_builtin', { lang: tOr(`mod.builtin_${arg}`, arg) });
  return tOr(`mod.reason_${r}`, r);
}
const kindText = (k) => tOr(`mod.kind_${k}`, k || '');

// ---- tabs ----

/** The tab strip; opens the moderation tab when the URL says #moderation. */
export function tabs() {
  const list = [$('tab-studio'), $('tab-moderation')];
  const select = (tab, focus) => {
    for (const x of list) {
      const on = x === tab;
      x.setAttribute('aria-selected', String(on));
      x.tabIndex = on ? 0 : -1;
      $(x.getAttribute('aria-controls')).hidden = !on;
    }
    if (focus) tab.focus();
    const hash = tab.id === 'tab-moderation' ? '#moderation' : '';
    if (location.hash !== hash) history.replaceState(null, '', `${location.pathname}${location.search}${hash}`);
    if (hash) open();
  };
  list.forEach((tab, i) => {
    tab.addEventListener('click', () => select(tab, false));
    tab.addEventListener('keydown', (ev) => {
      const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: list.length - 1 }[ev.key];
      if (to === undefined) return;
      ev.preventDefault();
      select(list[(to + list.length) % list.length], true);
    });
  });
  $('tabs').hidden = false;
  const fromHash = () => select(/^#(moderation|mod-)/.test(location.hash) ? list[1] : list[0], false);
  window.addEventListener('hashchange', fromHash);
  fromHash();
  watchInbox();
}

// ---- the review queue (live) ----

function heldBadge() {
  const n = held.size;
  setText($('held-badge'), n ? num(n) : '');
  $('held-badge').hidden = !n;
  $('queue-empty').hidden = n > 0;
}

/** One held message: who, where, when, the text, why, approve / reject. */
function heldItem(m) {
  const approve = el('button', { type: 'button', class: 'small', 'data-decide': 'approve',
    'aria-label': t('mod.approve_aria', { sender: m.sender }) }, t('mod.approve'));
  const reject = el('button', { type: 'button', class: 'ghost small', 'data-decide': 'reject',
    'aria-label': t('mod.reject_aria', { sender: m.sender }) }, t('mod.reject'));
  const li = el('li', { class: 'queue-item', 'data-id': m.id },
    el('p', { class: 'queue-head' }, el('strong', {}, m.sender), ' ',
      el('span', { class: 'muted' }, [kindText(m.kind), m.created_ms ? when(m.created_ms) : ''].filter(Boolean).join(' · ')), ' ',
      m.target ? where(m.target) : null),
    el('p', { class: 'queue-message' }, m.message),
    m.reason ? el('p', { class: 'muted' }, t('mod.why', { reason: reasonText(m.reason) })) : null,
    el('div', { class: 'row' }, approve, reject));
  const decide = async (how) => {
    approve.disabled = reject.disabled = true;
    try {
      await api(`/v1/creators/me/messages/${encodeURIComponent(m.id)}/${how}`, { method: 'POST' });
      held.delete(m.id);
      li.remove();
      heldBadge();
      status('queue-status', t(`mod.${how}d`, { sender: m.sender }));
      if (tables.audit) tables.audit.reload();
    } catch (e) {
      approve.disabled = reject.disabled = false;
      status('queue-status', errorText(e), true);
    }
  };
  approve.addEventListener('click', () => decide('approve'));
  reject.addEventListener('click', () => decide('reject'));
  return li;
}

/** Show a held message (once per id), newest first. */
function addHeld(m, top = true) {
  if (!m || !m.id || held.has(m.id)) return;
  const li = heldItem(m);
  held.set(m.id, { li, m });
  if (top) $('queue').prepend(li);
  else $('queue').append(li);
  heldBadge();
}

/** Read the queue from the server (it is the truth: decided elsewhere, gone here). */
async function loadHeld() {
  try {
    const v = await api('/v1/creators/me/messages?state=held&limit=50');
    const ids = new Set(v.messages.map((m) => m.id));
    for (const [id, x] of held) {
      if (!ids.has(id)) {
        x.li.remove();
        held.delete(id);
      }
    }
    // The answer is newest first: append in that order under anything newer.
    for (const m of [...v.messages].reverse()) addHeld(m, true);
    heldBadge();
  } catch (e) {
    status('queue-status', errorText(e), true);
  }
}

function reloadSoon() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => {
    loadHeld();
    if (started) {
      tables.filtered.reload();
      tables.audit.reload();
    }
  }, RELOAD_MS);
}

/** An inbox event as a held message, so it shows before the list is read again. */
function fromInbox(ev) {
  const type = ev.type || '';
  const target = ev.room != null ? `room:${ev.room}` : ev.video != null ? `video:${ev.video}` : '';
  return { id: ev.message_id, kind: type.startsWith('tip') ? 'tip' : 'gift', target, sender: ev.sender,
    message: ev.message, reason: ev.reason || '', created_ms: ev.ts || Date.now() };
}

/** The creator's inbox over the SDK: held messages appear at once. */
function watchInbox() {
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const gs = new Giftstream({ url: `${proto}://${location.host}/v1/ws`, token: () => '' });
  gs.on('inbox', (msg) => {
    const ev = msg.event || {};
    if (!ev.message_state && ev.type !== 'gift_message') return;
    if (ev.message_state === 'held' && ev.message_id != null) addHeld(fromInbox(ev));
    reloadSoon();
  });
  gs.on('state', (s) => {
    document.body.dataset.inbox = s;
    setText($('queue-live'), s === 'open' ? t('mod.live_on') : t('mod.live_off'));
  });
  gs.join({ inbox: true }).then(() => {
    document.body.dataset.inboxJoined = 'true';
    loadHeld();
  }, (e) => status('queue-status', errorText(e), true));
}

// ---- muted words ----

function showWords() {
  $('words').replaceChildren(...words.map((w, i) => {
    const del = el('button', { type: 'button', class: 'ghost small', 'aria-label': t('mod.word_remove_aria', { word: w.text }) }, t('mod.remove'));
    del.addEventListener('click', () => saveWords(words.filter((_, j) => j !== i), t('mod.word_removed', { word: w.text })));
    return el('li', { class: 'word', 'data-word': w.text, 'data-mode': w.mode },
      el('span', { class: 'word-text' }, w.text), el('span', { class: 'muted' }, t(`mod.mode_${w.mode}`)), del);
  }));
  $('words-empty').hidden = words.length > 0;
}

async function loadWords() {
  try {
    words = (await api('/v1/creators/me/moderation/words')).words;
    showWords();
  } catch (e) {
    status('words-status', errorText(e), true);
  }
}

async function saveWords(next, done) {
  try {
    const r = await api('/v1/creators/me/moderation/words', { method: 'PUT', body: { words: next } });
    words = r && Array.isArray(r.words) ? r.words : next;
    showWords();
    status('words-status', done);
    tables.audit.reload();
    return true;
  } catch (e) {
    status('words-status', errorText(e), true);
    return false;
  }
}

function wordForm() {
  $('word-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = $('word-text').value.trim();
    const mode = $('word-mode').value === 'substring' ? 'substring' : 'word';
    if (!text) return status('words-status', t('mod.word_empty'), true);
    if (await saveWords([...words, { text, mode }], t('mod.word_added', { word: text }))) $('word-text').value = '';
  });
}

// ---- built-in lists and review rules ----

const optInt = (v) => (String(v).trim() === '' ? null : Number(v));

async function loadRules() {
  try {
    const s = await api('/v1/creators/me/moderation/settings');
    for (const c of $('rules-form').querySelectorAll('input[name=builtin]')) c.checked = s.builtin_langs.includes(c.value);
    $('rule-age').value = s.review_account_age_days ?? '';
    $('rule-coins').value = s.review_coins_below ?? '';
    $('rule-interval').value = s.message_interval_ms ? String(s.message_interval_ms / 1000) : '';
  } catch (e) {
    status('rules-status', errorText(e), true);
  }
}

function rulesForm() {
  $('rules-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const age = optInt($('rule-age').value);
    const coins = optInt($('rule-coins').value);
    const secs = optInt($('rule-interval').value);
    const bad = [age, coins].some((x) => x !== null && !(Number.isInteger(x) && x >= 0)) || (secs !== null && !(secs >= 0));
    if (bad) return status('rules-status', t('mod.rules_bad'), true);
    const body = {
      builtin_langs: [...$('rules-form').querySelectorAll('input[name=builtin]:checked')].map((c) => c.value),
      review_account_age_days: age,
      review_coins_below: coins,
      message_interval_ms: Math.round((secs || 0) * 1000),
    };
    $('rules-save').disabled = true;
    try {
      await api('/v1/creators/me/moderation/settings', { method: 'PUT', body });
      status('rules-status', t('mod.saved'));
      tables.audit.reload();
    } catch (e) {
      status('rules-status', errorText(e), true);
    } finally {
      $('rules-save').disabled = false;
    }
  });
}

// ---- blocks and moderators ----

async function block(user, on) {
  const r = await api(`/v1/creators/me/blocks/${encodeURIComponent(user)}`, { method: on ? 'PUT' : 'DELETE' });
  tables.blocks.reload();
  tables.audit.reload();
  return r;
}

function blockForm() {
  $('block-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const user = $('block-user').value.trim();
    if (!user) return status('blocks-status', t('mod.user_empty'), true);
    $('block-go').disabled = true;
    try {
      await block(user, true);
      status('blocks-status', t('mod.blocked', { user }));
      $('block-user').value = '';
    } catch (e) {
      status('blocks-status', errorText(e), true);
    } finally {
      $('block-go').disabled = false;
    }
  });
}

function blockRow(b) {
  const un = el('button', { type: 'button', class: 'ghost small', 'aria-label': t('mod.unblock_aria', { user: b.user }) }, t('mod.unblock'));
  un.addEventListener('click', async () => {
    un.disabled = true;
    try {
      await block(b.user, false);
      status('blocks-status', t('mod.unblocked', { user: b.user }));
    } catch (e) {
      un.disabled = false;
      status('blocks-status', errorText(e), true);
    }
  });
  return tr([b.user, b.blocked_by, when(b.created_ms), un], { 'data-user': b.user });
}

async function loadMods() {
  try {
    const v = await api('/v1/creators/me/moderators');
    $('mods').replaceChildren(...v.moderators.map((m) => {
      const del = el('button', { type: 'button', class: 'ghost small', 'aria-label': t('mod.mod_remove_aria', { user: m.user }) }, t('mod.remove'));
      del.addEventListener('click', () => setMod(m.user, false));
      return el('li', { class: 'word', 'data-user': m.user }, el('span', { class: 'word-text' }, m.user),
        el('span', { class: 'muted' }, when(m.created_ms)), del);
    }));
    $('mods-empty').hidden = v.moderators.length > 0;
  } catch (e) {
    status('mods-status', errorText(e), true);
  }
}

async function setMod(user, on) {
  try {
    await api(`/v1/creators/me/moderators/${encodeURIComponent(user)}`, { method: on ? 'PUT' : 'DELETE' });
    status('mods-status', t(on ? 'mod.mod_added' : 'mod.mod_removed', { user }));
    loadMods();
    tables.audit.reload();
    return true;
  } catch (e) {
    status('mods-status', errorText(e), true);
    return false;
  }
}

function modForm() {
  $('mod-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const user = $('mod-user').value.trim();
    if (!user) return status('mods-status', t('mod.user_empty'), true);
    if (await setMod(user, true)) $('mod-user').value = '';
  });
}

// ---- start ----

/** Set up the tab's forms and read its lists (the first time it opens). */
function open() {
  if (started) return;
  started = true;
  const section = (id) => $(id).closest('section');
  tables.filtered = pager(section('t-filtered'), '/v1/creators/me/messages?state=filtered', 'messages', (m) =>
    tr([when(m.created_ms), m.sender, el('span', { class: 'cell-message original' }, m.message),
      reasonText(m.reason), m.target ? where(m.target) : kindText(m.kind)], { 'data-id': m.id, 'data-state': m.state }));
  tables.blocks = pager(section('t-blocks'), '/v1/creators/me/blocks', 'blocks', blockRow);
  tables.audit = pager(section('t-audit'), '/v1/creators/me/moderation/audit', 'actions', (a) =>
    tr([when(a.at_ms), a.actor, tOr(`mod.action_${a.action}`, a.action), a.target, a.detail || ''],
      { 'data-action': a.action }));
  wordForm();
  rulesForm();
  blockForm();
  modForm();
  Promise.all([loadHeld(), loadWords(), loadRules(), loadMods(),
    tables.filtered.reload(), tables.blocks.reload(), tables.audit.reload()])
    .finally(() => (document.body.dataset.moderationReady = 'true'));
}
