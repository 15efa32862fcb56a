// Pieces of the studio page that hold no state: the daily chart (inline
// SVG built node by node, no chart library), dates, and history tables
// that page through a cursor. Text only, like the rest of the shell.
import { api, el, errorText, lang, money, num, t } from '/ui/common.js';

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

const dayFmt = new Intl.DateTimeFormat(lang, { month: 'short', day: 'numeric', timeZone: 'UTC' });
const timeFmt = new Intl.DateTimeFormat(lang, { dateStyle: 'short', timeStyle: 'short' });
/** A UTC day start as "Nov 30". */
export const day = (ms) => dayFmt.format(new Date(ms));
/** A time in the viewer's zone. */
export const when = (ms) => timeFmt.format(new Date(ms));

/** Cents of `tips` (`{usd: 500, eur: 300}`) in words, each currency apart. */
function tipsText(tips) {
  const parts = Object.entries(tips || {}).filter(([, v]) => v).map(([c, v]) => money(v, c));
  return parts.length ? parts.join(' + ') : money(0, 'usd');
}

/** Minor units of every currency of a day's tips: only the dots' height (never shown as money). */
const tipsUnits = (d) => (d.tips ? Object.values(d.tips).reduce((s, v) => s + v, 0) : d.tips_cents);

/**
 * The daily chart: one bar of diamonds per day, tips as dots on their own
 * scale; every bar has a <title> (the numbers, each currency apart), and
 * the whole chart a text summary for screen readers.
 */
export function chart(days, width = 600) {
  // Drawn at the container's width (no scaling), so labels keep their size.
  const W = Math.max(280, Math.round(width));
  const H = 180;
  const pad = { l: 8, r: 8, t: 12, b: 22 };
  const n = Math.max(days.length, 1);
  const bw = (W - pad.l - pad.r) / n;
  const maxD = Math.max(1, ...days.map((d) => d.diamonds));
  const maxT = Math.max(1, ...days.map(tipsUnits));
  const y = (v, max) => pad.t + (H - pad.t - pad.b) * (1 - v / max);
  const totalD = days.reduce((s, d) => s + d.diamonds, 0);
  const totalT = {};
  for (const d of days) {
    for (const [c, v] of Object.entries(d.tips || { usd: d.tips_cents })) totalT[c] = (totalT[c] || 0) + v;
  }
  const summary = t('studio.chart_summary', { n: days.length, diamonds: num(totalD), tips: tipsText(totalT) });
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': summary, class: 'chart-svg', width: W, height: H },
    svg('title', {}, summary),
    svg('line', { x1: pad.l, x2: W - pad.r, y1: H - pad.b, y2: H - pad.b, class: 'axis' }));
  days.forEach((d, i) => {
    const x = pad.l + i * bw;
    const top = y(d.diamonds, maxD);
    const bar = svg('rect', {
      x: (x + bw * 0.15).toFixed(1), y: top.toFixed(1), width: (bw * 0.7).toFixed(1),
      height: Math.max(0, H - pad.b - top).toFixed(1), class: d.diamonds ? 'bar' : 'bar zero', rx: 2,
      'data-day': d.day_ms, 'data-diamonds': d.diamonds,
    }, svg('title', {}, t('studio.chart_day', { day: day(d.day_ms), diamonds: num(d.diamonds), tips: tipsText(d.tips || { usd: d.tips_cents }) })));
    root.append(bar);
    if (tipsUnits(d)) {
      root.append(svg('circle', { cx: (x + bw / 2).toFixed(1), cy: y(tipsUnits(d), maxT).toFixed(1), r: 3.5, class: 'tip-dot' }));
    }
    // A label every week back from today (fewer when narrow).
    const every = W < 480 ? 14 : 7;
    if ((days.length - 1 - i) % every === 0) {
      const last = i === days.length - 1;
      root.append(svg('text', { x: (last ? W - pad.r : x + bw / 2).toFixed(1), y: H - 6, class: 'tick', 'text-anchor': last ? 'end' : 'middle' }, day(d.day_ms)));
    }
  });
  return el('figure', { class: 'chart-fig' }, root,
    el('figcaption', { class: 'legend' },
      el('span', { class: 'key bar-key' }, t('studio.col_diamonds')), ' ',
      el('span', { class: 'key tip-key' }, t('studio.tips')), ' ',
      el('span', { class: 'muted' }, summary)));
}

/**
 * A history table paging through `path` (`?cursor=`): `field` is the list
 * in the answer, `row` makes one <tr>. `reload()` starts over, the "more"
 * button appends the next page.
 */
export function history(section, path, field, row) {
  const body = section.querySelector('tbody');
  const more = section.querySelector('button.more');
  const empty = section.querySelector('.empty');
  let next = null;
  let busy = false;
  let last = null;
  async function load(reset) {
    if (busy) return;
    busy = true;
    try {
      const q = !reset && next ? `${path.includes('?') ? '&' : '?'}cursor=${encodeURIComponent(next)}` : '';
      const v = await api(`${path}${q}`);
      last = v;
      if (reset) body.replaceChildren();
      for (const r of v[field]) body.append(row(r));
      next = v.next_cursor;
      more.hidden = !next;
      empty.hidden = body.children.length > 0;
    } catch (e) {
      empty.hidden = false;
      empty.textContent = errorText(e);
    } finally {
      busy = false;
    }
    return last;
  }
  more.addEventListener('click', () => load(false));
  return { reload: () => load(true) };
}

/** A table row from cells (strings or nodes); `num` cells align right. */
export function tr(cells, attrs = {}) {
  return el('tr', attrs, ...cells.map((c) =>
    c && c.num !== undefined ? el('td', { class: 'num' }, c.num) : el('td', {}, c)));
}

/** `room:ID` / `video:ID` as a link to its page. */
export function where(target) {
  const [kind, id] = [target.slice(0, target.indexOf(':')), target.slice(target.indexOf(':') + 1)];
  const href = kind === 'video' ? `/videos/${encodeURIComponent(id)}` : `/live/${encodeURIComponent(id)}`;
  return el('a', { href }, kind === 'video' ? t('studio.where_video', { id }) : t('studio.where_room', { id }));
}
