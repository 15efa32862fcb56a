// The pages' shell: strings (one catalog per language), the session (cookie
// + CSRF token), JSON calls with errors in words, and a DOM builder that
// only ever sets text (never HTML), so data can never become markup.

export const lang = document.documentElement.lang === 'fr' ? 'fr' : 'en';
let strings = {};

/** Load this page's language catalog (call once, before t()). */
export async function loadStrings() {
  try {
    const r = await fetch(`/ui/i18n/${lang}.json`);
    strings = await r.json();
  } catch {
    strings = {};
  }
  return strings;
}

/** The string `key` with `{name}` replaced from `vars` (plain text). */
export function t(key, vars = {}) {
  const s = strings[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

const numberFmt = new Intl.NumberFormat(lang);
/** A count in the page's language. */
export const num = (n) => numberFmt.format(n);
/** An amount in minor units as money, e.g. 500 usd -> $5.00. */
export function money(cents, currency) {
  try {
    return new Intl.NumberFormat(lang, { style: 'currency', currency: currency.toUpperCase() }).format(cents / 100);
  } catch {
    return `${(cents / 100).toFixed(2)} ${currency.toUpperCase()}`;
  }
}

/**
 * Build an element: `el('p', {class: 'x', 'aria-label': 'y'}, 'text', child)`.
 * Strings become text nodes; attributes are set with setAttribute (no
 * event-handler attributes: names starting with "on" are refused).
 */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (/^on/i.test(k)) throw new Error(`el: refusing attribute ${k}`);
    e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c == null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** A fresh request id (also outside secure contexts, unlike crypto.randomUUID). */
export function newId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** Set an element's text (never HTML). */
export function setText(node, text) {
  if (node) node.textContent = text == null ? '' : String(text);
}

/** An error in words: from the server's code (and message), or the network. */
export function errorText(e) {
  const code = e && e.code;
  if (code && strings[`error.${code}`]) return t(`error.${code}`, { message: e.message || '' });
  if (e instanceof TypeError) return t('error.network');
  return (e && e.message) || t('error.internal');
}

/** A JSON API error: carries the server's `code` and `message`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

let session = null;

/** The signed-in session {user, role, exp, csrf}, or null. */
export async function loadSession() {
  try {
    const r = await fetch('/v1/sessions', { credentials: 'same-origin' });
    session = r.ok ? await r.json() : null;
  } catch {
    session = null;
  }
  return session;
}

export const currentSession = () => session;

/**
 * Call a JSON route signed in by the session cookie; state-changing
 * methods carry the CSRF token. Resolves with the body, rejects with an
 * ApiError (or a TypeError when the network fails).
 */
export async function api(path, { method = 'GET', body } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && session && session.csrf) headers['x-csrf-token'] = session.csrf;
  const r = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let v = null;
  try {
    v = await r.json();
  } catch {}
  if (!r.ok) {
    const e = new ApiError(r.status, (v && v.code) || 'internal', v && v.message);
    // A marketplace refusal (`not_eligible`) says what is missing.
    if (v && v.missing) e.missing = v.missing;
    throw e;
  }
  return v;
}

/** The header: who is signed in, sign in/out, the language switch. */
export function shell() {
  const who = document.getElementById('who');
  const signin = document.getElementById('signin');
  const signout = document.getElementById('signout');
  if (session) {
    setText(who, t('nav.signed_in_as', { user: session.user }));
    if (signout) signout.hidden = false;
  } else if (signin) {
    // Outside `serve --demo` the platform signs viewers in (POST /v1/sessions).
    fetch(signin.getAttribute('href'), { method: 'HEAD' }).then((r) => (signin.hidden = !r.ok), () => {});
  }
  if (signout) {
    signout.addEventListener('click', async () => {
      try {
        await api('/v1/sessions', { method: 'DELETE' });
      } catch {}
      location.reload();
    });
  }
  const sel = document.getElementById('lang');
  if (sel) {
    sel.value = lang;
    sel.addEventListener('change', () => {
      document.cookie = `gs_lang=${sel.value === 'fr' ? 'fr' : 'en'}; Path=/; Max-Age=31536000; SameSite=Lax`;
      location.reload();
    });
  }
}
