// What the two marketplace pages (/marketplace, /brand) share: a state
// badge, a creator's stats in words, tag lists from an input, dates and a
// status line. Text only (el/setText), like every page.
import { el, errorText, num, setText, t } from '/ui/common.js';

/** A state (campaign, application, contract) as a badge; data-state holds the raw state. */
export function stateBadge(state) {
  return el('span', { class: 'mstate', 'data-state': state }, t(`market.state.${state}`));
}

/** "12,000 followers · 3 lives · avg 40 · peak 90 · 1,200 diamonds" */
export function statsText(s) {
  if (!s) return '';
  return t('market.stats', {
    followers: num(s.followers ?? 0),
    lives: num(s.lives_30d ?? 0),
    avg: num(s.avg_viewers_30d ?? 0),
    peak: num(s.peak_viewers_30d ?? 0),
    diamonds: num(s.gift_diamonds ?? 0),
  });
}

/** Comma- or line-separated tags of an input, trimmed, empty ones dropped. */
export function listOf(text) {
  return String(text || '')
    .split(/[,\n]/)
    .map((x) => x.trim())
    .filter((x) => x);
}

/** A date (ms since the epoch) in the page's language. */
export function day(ms) {
  return ms ? new Date(ms).toLocaleDateString(document.documentElement.lang || 'en') : '–';
}

/** Major units typed in a field ("12.50") to cents; NaN when not a number. */
export function cents(text) {
  const v = Number(String(text).replace(',', '.'));
  return Number.isFinite(v) ? Math.round(v * 100) : NaN;
}

/** Say `text` on a status line (an error in red). */
export function say(node, text, isError = false) {
  if (!node) return;
  node.classList.toggle('error', isError);
  setText(node, text);
}

/** Run `fn`, saying `done` or the error on `node`; resolves true on success. */
export async function act(node, fn, done) {
  try {
    await fn();
    say(node, done);
    return true;
  } catch (e) {
    say(node, errorText(e), true);
    return false;
  }
}
