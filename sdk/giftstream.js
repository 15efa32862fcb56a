/**
 * giftstream JavaScript SDK: one WebSocket to a giftstream server, kept
 * alive for you.
 *
 * - connects with a token provider (`?token=` on the URL, as browsers cannot
 *   set headers) and sends `refresh` before the token expires (or, on a
 *   server without `refresh`, reconnects with a fresh token);
 * - `join`/`leave` rooms, videos and the creator's inbox; after a reconnect
 *   (exponential backoff, full jitter) `resume`s each target from the last
 *   seq seen, and never emits one seq twice per target;
 * - `skipped` is healed by resuming from the gap, `history_gone` emits `gap`
 *   and joins again;
 * - `gift()` returns a Promise of the `gift_ack`, retried with the same id
 *   after a disconnect or `outcome_unknown` (the server charges an id once);
 * - `streak` events: one per step (`done: false`), then the end from
 *   `combo_end` (`done: true`, its count is the one to keep).
 *
 * No dependency, no build step: an ES module for browsers and Node >= 22
 * (Node 20: `--experimental-websocket`, or pass `{WebSocket}`).
 * Wire contract: the server's docs/PROTOCOL.md.
 * @module giftstream
 */

/** @typedef {{room: string} | {video: string} | {inbox: true}} Target */

/** Subprotocol names of the two wire formats. */
const SUBPROTOCOL = { json: 'giftstream.v1.json', msgpack: 'giftstream.v1.msgpack' };

/** Close codes after which reconnecting cannot help. */
const FATAL_CLOSE = new Set([1009]);

/**
 * The key of a target, as used by the SDK's maps and events: `room:ID`,
 * `video:ID` or `inbox`.
 * @param {Target | Record<string, any>} t a target, or a server message
 * @returns {string | null}
 */
export function targetKey(t) {
  if (t.inbox) return 'inbox';
  if (t.video != null) return `video:${t.video}`;
  if (t.room != null) return `room:${t.room}`;
  return null;
}

/**
 * The payload of a JWT (not verified: the server does that), or null.
 * @param {string} token
 * @returns {Record<string, any> | null}
 */
export function jwtPayload(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(part + '='.repeat((4 - (part.length % 4)) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

/**
 * Delay before reconnect attempt `attempt` (0-based): full jitter,
 * `random(0, min(max, base * 2^attempt))` ms.
 * @param {number} attempt
 * @param {number} baseMs
 * @param {number} maxMs
 * @param {() => number} [random]
 */
export function backoffMs(attempt, baseMs, maxMs, random = Math.random) {
  return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30)));
}

/** A random client id for a gift (idempotency key). */
function newId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  return `g-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

/** An Error with the server's (or the SDK's) code. */
export class GiftstreamError extends Error {
  /**
   * @param {string} code e.g. `insufficient_funds`, `closed`
   * @param {string} message
   * @param {string} [id] the gift's id, when about a gift
   */
  constructor(code, message, id) {
    super(message || code);
    this.name = 'GiftstreamError';
    this.code = code;
    if (id !== undefined) this.id = id;
  }
}

/**
 * A giftstream client.
 *
 * Events (`on(type, fn)`): `gift`, `tip`, `combo_end`, `room_stats`,
 * `room_ended`, `streak`, `gap`, `joined`, `state`, `error`, and `message`
 * (every server message, before the SDK's own handling). Listeners of
 * `gift`, `tip`, `combo_end`, `room_stats` and `room_ended` get the server
 * message and the target's key.
 */
export class Giftstream {
  /**
   * @param {object} opts
   * @param {string} opts.url the socket URL, e.g. `wss://host/v1/ws`
   * @param {() => (string | Promise<string>)} opts.token called for every connection and refresh
   * @param {'json' | 'msgpack'} [opts.format] wire format, `json` by default
   * @param {typeof WebSocket} [opts.WebSocket] a WebSocket implementation (default: the global one)
   * @param {number} [opts.reconnectAttemptsMax] attempts in a row before giving up (default: no bound)
   * @param {number} [opts.reconnectBaseMs] backoff base (250 ms)
   * @param {number} [opts.reconnectDelayMsMax] backoff cap (30 s)
   * @param {number} [opts.stableMs] a connection this old resets the attempts (60 s)
   * @param {number} [opts.refreshLeadMsMax] refresh at most this long before `exp` (60 s; 10 % of the token's life when shorter)
   * @param {number} [opts.pingIntervalMs] ping when quiet; no answer in twice this reconnects (25 s; 0: off)
   * @param {number} [opts.giftRetriesMax] resends of a gift after `outcome_unknown` (5)
   */
  constructor(opts) {
    if (!opts || !opts.url || typeof opts.token !== 'function') {
      throw new TypeError('new Giftstream({url, token}) needs a url and a token provider');
    }
    this.url = opts.url;
    this.tokenProvider = opts.token;
    this.format = opts.format === 'msgpack' ? 'msgpack' : 'json';
    this.WS = opts.WebSocket || globalThis.WebSocket;
    if (!this.WS) throw new TypeError('no WebSocket: pass {WebSocket} (Node 20: --experimental-websocket)');
    this.attemptsMax = opts.reconnectAttemptsMax ?? Infinity;
    this.baseMs = opts.reconnectBaseMs ?? 250;
    this.delayMsMax = opts.reconnectDelayMsMax ?? 30000;
    this.stableMs = opts.stableMs ?? 60000;
    this.refreshLeadMsMax = opts.refreshLeadMsMax ?? 60000;
    this.pingIntervalMs = opts.pingIntervalMs ?? 25000;
    this.giftRetriesMax = opts.giftRetriesMax ?? 5;
    /** @type {'idle'|'connecting'|'open'|'reconnecting'|'closed'} */
    this.state = 'idle';
    /** @type {Map<string, Set<Function>>} */
    this.listeners = new Map();
    /** Joined targets by key: {target, coalesce, last (seq or null), live (subscribed on this socket), waiters}. */
    this.targets = new Map();
    /** Gifts awaiting their ack, by id. */
    this.gifts = new Map();
    /** Control requests sent on this socket and not answered yet, in order. */
    this.ctl = [];
    /** Streaks: key -> {count, ended: seq_last or null}. */
    this.streaks = new Map();
    this.attempt = 0;
    this.refreshSupported = true;
    this.ws = null;
    this.timers = new Set();
  }

  // ---- events ----

  /**
   * Listen to an event; returns a function that removes the listener.
   * @param {string} type
   * @param {(...args: any[]) => void} fn
   */
  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.off(type, fn);
  }

  /** Remove a listener. */
  off(type, fn) {
    this.listeners.get(type)?.delete(fn);
  }

  /** @private */
  emit(type, ...args) {
    for (const fn of this.listeners.get(type) || []) {
      try {
        fn(...args);
      } catch (e) {
        if (type !== 'error') this.emit('error', e);
      }
    }
  }

  /** @private */
  setState(s) {
    if (this.state !== s) {
      this.state = s;
      this.emit('state', s);
    }
  }

  /** @private */
  later(fn, ms) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  // ---- connection ----

  /**
   * Open the socket (joins, resumes and pending gifts follow by themselves).
   * Resolves once open; rejects if the first connection fails for good.
   * @returns {Promise<void>}
   */
  connect() {
    if (this.state === 'idle' || this.state === 'closed') {
      this.attempt = 0;
      this.setState('connecting');
      this.openSocket();
    }
    if (this.state === 'open') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const off = this.on('state', (s) => {
        if (s === 'open') resolve();
        else if (s === 'closed') reject(new GiftstreamError('closed', 'could not connect'));
        else return;
        off();
      });
    });
  }

  /** Close for good: no reconnect; pending gifts and joins are rejected with code `closed`. */
  close() {
    this.setState('closed');
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    clearInterval(this.pinger);
    clearTimeout(this.refreshTimer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try {
        ws.close(1000);
      } catch {}
    }
    this.failAll(new GiftstreamError('closed', 'client closed'));
  }

  /** @private */
  failAll(err) {
    for (const g of this.gifts.values()) g.reject(err);
    this.gifts.clear();
    for (const t of this.targets.values()) t.waiters.splice(0).forEach((w) => w.reject(err));
    this.ctl = [];
  }

  /** @private */
  async openSocket() {
    let token;
    try {
      token = await this.tokenProvider();
    } catch (e) {
      this.emit('error', e);
      return this.scheduleReconnect();
    }
    if (this.state === 'closed') return;
    const url = this.url + (this.url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token);
    let ws;
    try {
      ws = new this.WS(url, [SUBPROTOCOL[this.format]]);
    } catch (e) {
      this.emit('error', e);
      return this.scheduleReconnect();
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.ctl = [];
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.openedAt = Date.now();
      this.lastHeard = Date.now();
      this.setState('open');
      this.scheduleRefresh(token);
      this.startPing(ws);
      for (const [key, t] of this.targets) {
        t.live = false;
        this.subscribe(key, t);
      }
      for (const g of this.gifts.values()) this.send(g.msg);
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastHeard = Date.now();
      let msg;
      try {
        msg = typeof ev.data === 'string' ? JSON.parse(ev.data) : decode(new Uint8Array(ev.data));
      } catch (e) {
        return this.emit('error', e);
      }
      this.handle(msg);
    };
    const lost = (code) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pinger);
      clearTimeout(this.refreshTimer);
      if (this.state === 'closed') return;
      if (FATAL_CLOSE.has(code)) {
        this.emit('error', new GiftstreamError('closed', `server closed the socket (${code})`));
        return this.close();
      }
      if (this.openedAt && Date.now() - this.openedAt >= this.stableMs) this.attempt = 0;
      this.openedAt = 0;
      this.scheduleReconnect();
    };
    ws.onclose = (ev) => lost(ev.code);
    // Some implementations (Node 20's) report a failed handshake with an
    // error and no close: an error is a loss too.
    ws.onerror = () => {
      lost(1006);
      try {
        ws.close();
      } catch {}
    };
  }

  /** @private */
  scheduleReconnect(now = false) {
    if (this.state === 'closed') return;
    if (this.attempt >= this.attemptsMax) {
      this.emit('error', new GiftstreamError('closed', `gave up after ${this.attempt} reconnect attempts`));
      return this.close();
    }
    this.setState('reconnecting');
    const delay = now ? 0 : backoffMs(this.attempt, this.baseMs, this.delayMsMax);
    this.attempt += 1;
    this.later(() => this.state !== 'closed' && this.openSocket(), delay);
  }

  /**
   * Drop the current socket and connect again (joined targets resume).
   * Useful after a network change; also used when the token must be renewed
   * on a server without `refresh`.
   */
  reconnect() {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    clearInterval(this.pinger);
    clearTimeout(this.refreshTimer);
    try {
      ws.close(1000);
    } catch {}
    this.scheduleReconnect(true);
  }

  /** @private */
  startPing(ws) {
    clearInterval(this.pinger);
    if (!this.pingIntervalMs) return;
    this.pinger = setInterval(() => {
      if (this.ws !== ws) return clearInterval(this.pinger);
      if (Date.now() - this.lastHeard > 2 * this.pingIntervalMs) return this.reconnect();
      this.send({ type: 'ping' });
    }, this.pingIntervalMs);
  }

  /** @private Refresh `lead` before exp: min(refreshLeadMsMax, 10 % of the token's life). */
  scheduleRefresh(token) {
    clearTimeout(this.refreshTimer);
    const p = jwtPayload(token);
    if (!p || typeof p.exp !== 'number') return;
    const now = Date.now();
    const exp = p.exp * 1000;
    const life = exp - (typeof p.iat === 'number' ? p.iat * 1000 : now);
    const lead = Math.min(this.refreshLeadMsMax, Math.max(0, life) * 0.1);
    const ws = this.ws;
    // At least a second apart, even when the provider hands out a token about to expire.
    this.refreshTimer = setTimeout(() => this.ws === ws && this.refresh(), Math.max(1000, exp - lead - now));
  }

  /** @private */
  async refresh() {
    if (!this.refreshSupported) return this.reconnect();
    let token;
    try {
      token = await this.tokenProvider();
    } catch (e) {
      this.emit('error', e);
      return this.reconnect();
    }
    if (!this.ws || this.state !== 'open') return;
    this.ctl.push({ kind: 'refresh', token });
    this.send({ type: 'refresh', token });
  }

  /** @private */
  send(msg) {
    if (!this.ws || this.state !== 'open') return false;
    try {
      this.ws.send(this.format === 'msgpack' ? encode(msg) : JSON.stringify(msg));
      return true;
    } catch (e) {
      this.emit('error', e);
      return false;
    }
  }

  // ---- targets ----

  /**
   * Watch a room, a video, or (a creator) the own inbox. Resolves with the
   * `joined` (or, when re-joining, `resumed`) answer.
   * @param {Target} target
   * @param {{coalesce?: boolean}} [opts] coalesce combo floods (rooms)
   */
  join(target, opts = {}) {
    const key = targetKey(target);
    if (!key) return Promise.reject(new TypeError('target must be {room}, {video} or {inbox: true}'));
    let t = this.targets.get(key);
    if (!t) {
      t = { target: wireTarget(target), coalesce: !!opts.coalesce, last: null, waiters: [] };
      this.targets.set(key, t);
      if (this.state === 'open') this.subscribe(key, t);
      else if (this.state === 'idle') this.connect().catch(() => {});
    } else if (t.live) {
      return Promise.resolve({ type: 'joined', ...t.target, seq: t.last });
    }
    return new Promise((resolve, reject) => t.waiters.push({ resolve, reject }));
  }

  /**
   * Stop watching a target.
   * @param {Target} target
   */
  leave(target) {
    const key = targetKey(target);
    const t = this.targets.get(key);
    if (!t) return Promise.resolve();
    this.targets.delete(key);
    t.waiters.splice(0).forEach((w) => w.reject(new GiftstreamError('left', 'left before joined')));
    if (this.state !== 'open') return Promise.resolve();
    this.ctl.push({ kind: 'leave', key });
    this.send({ type: 'leave', ...t.target });
    return Promise.resolve();
  }

  /** @private join, or resume from the last seq seen */
  subscribe(key, t) {
    if (t.last == null) {
      this.ctl.push({ kind: 'join', key });
      this.send({ type: 'join', ...t.target, ...(t.coalesce ? { coalesce: true } : {}) });
    } else {
      this.ctl.push({ kind: 'resume', key });
      this.send({ type: 'resume', ...t.target, since: t.last });
    }
  }

  /** @private answer a control request */
  settle(kind, key, msg) {
    // An answer that names no target (a server that leaves it out) answers the oldest request of its kind.
    let i = this.ctl.findIndex((c) => c.kind === kind && c.key === key);
    if (i < 0 && key == null) i = this.ctl.findIndex((c) => c.kind === kind);
    if (i >= 0) [{ key }] = this.ctl.splice(i, 1);
    const t = key && this.targets.get(key);
    if (t && (kind === 'join' || kind === 'resume')) {
      if (t.last == null || msg.seq > t.last) t.last = msg.seq;
      t.live = true;
      t.waiters.splice(0).forEach((w) => w.resolve(msg));
      this.emit('joined', msg, key);
    }
  }

  // ---- gifts ----

  /**
   * Send a gift. Resolves with the `gift_ack` {id, seq, balance}; rejects with
   * a {@link GiftstreamError} carrying the server's `code` (e.g.
   * `insufficient_funds`). Retried with the same id after a disconnect or
   * `outcome_unknown`, so it is charged at most once.
   * @param {Target} target `{room}` or `{video}`
   * @param {string} gift catalog id
   * @param {number} [count] 1..=99
   * @param {{id?: string, message?: string}} [opts]
   */
  gift(target, gift, count = 1, opts = {}) {
    if (target.inbox || !targetKey(target)) return Promise.reject(new TypeError('gift to {room} or {video}'));
    if (this.state === 'closed') return Promise.reject(new GiftstreamError('closed', 'client closed'));
    const id = opts.id || newId();
    const existing = this.gifts.get(id);
    if (existing) return existing.promise;
    const msg = { type: 'gift', ...wireTarget(target), gift, count, id };
    if (opts.message != null) msg.message = opts.message;
    const g = { msg, tries: 0 };
    g.promise = new Promise((resolve, reject) => {
      g.resolve = resolve;
      g.reject = reject;
    });
    this.gifts.set(id, g);
    if (this.state === 'idle') this.connect().catch(() => {});
    else this.send(msg);
    return g.promise;
  }

  // ---- incoming ----

  /** @private */
  handle(msg) {
    this.emit('message', msg);
    const key = targetKey(msg);
    switch (msg.type) {
      case 'joined':
        return this.settle('join', key, msg);
      case 'resumed':
        return this.settle('resume', key, msg);
      case 'left':
        return this.settle('leave', key, msg);
      case 'refreshed': {
        const i = this.ctl.findIndex((c) => c.kind === 'refresh');
        const [c] = i >= 0 ? this.ctl.splice(i, 1) : [];
        if (c) this.scheduleRefresh(c.token);
        return;
      }
      case 'pong':
        return;
      case 'gift_ack': {
        const g = this.gifts.get(msg.id);
        if (g) {
          this.gifts.delete(msg.id);
          g.resolve(msg);
        }
        return;
      }
      case 'error':
        return this.onError(msg);
      case 'skipped': {
        const t = this.targets.get(key);
        if (!t) return;
        this.ctl.push({ kind: 'resume', key });
        this.send({ type: 'resume', ...t.target, since: Math.max(0, msg.from_seq - 1) });
        return;
      }
      case 'gift_event':
        if (!this.fresh(key, msg)) return;
        this.emit('gift', msg, key);
        return this.step(key, msg);
      case 'combo_end':
        if (!this.fresh(key, msg)) return;
        this.emit('combo_end', msg, key);
        return this.end(key, msg);
      case 'tip_event':
        if (!this.fresh(key, msg)) return;
        return this.emit('tip', msg, key);
      case 'inbox_event':
        // The creator's inbox: {creator, seq (the inbox's), event (the
        // gift_event, combo_end or tip_event as its target's viewers see it)}.
        if (!this.fresh('inbox', msg)) return;
        return this.emit('inbox', msg, 'inbox');
      case 'room_stats':
        return this.emit('room_stats', msg, key);
      case 'room_ended':
        this.targets.delete(key);
        return this.emit('room_ended', msg, key);
      default:
        if (msg.seq != null && !this.fresh(key, msg)) return;
        return this.emit(msg.type, msg, key);
    }
  }

  /** @private true the first time a seq is seen on a target (messages without seq pass) */
  fresh(key, msg) {
    if (msg.seq == null) return true;
    const t = this.targets.get(key);
    if (!t) return false;
    if (t.last != null && msg.seq <= t.last) return false;
    t.last = msg.seq;
    return true;
  }

  /** @private */
  onError(msg) {
    const err = new GiftstreamError(msg.code, msg.message, msg.id);
    if (msg.id != null) {
      const g = this.gifts.get(msg.id);
      if (!g) return this.emit('error', err); // about a gift already settled
      if (msg.code === 'outcome_unknown' && g.tries < this.giftRetriesMax) {
        g.tries += 1;
        this.later(() => this.gifts.get(msg.id) === g && this.send(g.msg), backoffMs(g.tries, this.baseMs, this.delayMsMax));
        return;
      }
      this.gifts.delete(msg.id);
      return g.reject(err);
    }
    const c = this.ctl.shift();
    if (!c) return this.emit('error', err);
    if (c.kind === 'refresh') {
      // A server without `refresh` answers `bad_request` (unknown type):
      // renew the token by reconnecting from now on.
      if (msg.code === 'bad_request') this.refreshSupported = false;
      return this.reconnect();
    }
    const t = this.targets.get(c.key);
    if (!t) return;
    if (c.kind === 'resume' && msg.code === 'history_gone') {
      this.emit('gap', { key: c.key, since: t.last });
      this.ctl.push({ kind: 'join', key: c.key });
      this.send({ type: 'join', ...t.target, ...(t.coalesce ? { coalesce: true } : {}) });
      return;
    }
    if (c.kind === 'resume' && msg.code === 'rate_limited') {
      this.later(() => this.targets.get(c.key) === t && this.state === 'open' && this.subscribe(c.key, t), this.baseMs);
      return;
    }
    if (c.kind === 'join' || c.kind === 'resume') {
      this.targets.delete(c.key);
      t.waiters.splice(0).forEach((w) => w.reject(err));
    }
    this.emit('error', err);
  }

  // ---- streaks ----

  /** @private a streak step from a gift_event; steps of an ended streak are ignored */
  step(key, ev) {
    const k = `${key}/${ev.sender}/${ev.gift}`;
    const s = this.streaks.get(k);
    if (s && s.ended != null && ev.seq <= s.ended) return;
    this.streaks.set(k, { ended: null });
    this.emit('streak', { key: k, target: key, sender: ev.sender, gift: ev.gift, count: ev.combo ?? ev.count, done: false });
  }

  /** @private the end of a streak: its count is combo_end's */
  end(key, ev) {
    const k = `${key}/${ev.sender}/${ev.gift}`;
    const s = this.streaks.get(k);
    if (s && s.ended != null && ev.seq_last <= s.ended) return;
    this.streaks.set(k, { ended: ev.seq_last ?? ev.seq ?? Infinity });
    this.emit('streak', {
      key: k,
      target: key,
      sender: ev.sender,
      gift: ev.gift,
      count: ev.count,
      coins: ev.coins,
      diamonds: ev.diamonds,
      seq_first: ev.seq_first,
      seq_last: ev.seq_last,
      done: true,
    });
  }
}

/** @private the target's fields on the wire */
function wireTarget(t) {
  if (t.inbox) return { inbox: true };
  if (t.video != null) return { video: String(t.video) };
  return { room: String(t.room) };
}

// ---- MessagePack (the subset the protocol uses) ----

/**
 * Encode a value as MessagePack: null, booleans, numbers, strings, arrays,
 * plain objects (maps with string keys).
 * @param {any} value
 * @returns {Uint8Array}
 */
export function encode(value) {
  const out = [];
  const u8 = (...b) => out.push(...b);
  const be = (n, bytes) => {
    for (let i = bytes - 1; i >= 0; i--) out.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
  };
  const enc = (v) => {
    if (v == null) return u8(0xc0);
    if (v === false) return u8(0xc2);
    if (v === true) return u8(0xc3);
    if (typeof v === 'number') {
      if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER) {
        if (v >= 0) {
          if (v < 0x80) return u8(v);
          if (v < 0x100) return u8(0xcc, v);
          if (v < 0x10000) return u8(0xcd), be(v, 2);
          if (v < 0x100000000) return u8(0xce), be(v, 4);
          return u8(0xcf), be(v, 8);
        }
        if (v >= -32) return u8(v & 0xff);
        if (v >= -0x80) return u8(0xd0, v & 0xff);
        if (v >= -0x8000) return u8(0xd1), be(v + 0x10000, 2);
        if (v >= -0x80000000) return u8(0xd2), be(v + 0x100000000, 4);
      }
      const f = new DataView(new ArrayBuffer(8));
      f.setFloat64(0, v);
      return u8(0xcb, ...new Uint8Array(f.buffer));
    }
    if (typeof v === 'string') {
      const b = new TextEncoder().encode(v);
      if (b.length < 32) u8(0xa0 | b.length);
      else if (b.length < 0x100) u8(0xd9, b.length);
      else if (b.length < 0x10000) u8(0xda), be(b.length, 2);
      else u8(0xdb), be(b.length, 4);
      for (const x of b) out.push(x);
      return;
    }
    if (Array.isArray(v)) {
      if (v.length < 16) u8(0x90 | v.length);
      else if (v.length < 0x10000) u8(0xdc), be(v.length, 2);
      else u8(0xdd), be(v.length, 4);
      return v.forEach(enc);
    }
    if (typeof v === 'object') {
      const entries = Object.entries(v).filter(([, x]) => x !== undefined);
      if (entries.length < 16) u8(0x80 | entries.length);
      else if (entries.length < 0x10000) u8(0xde), be(entries.length, 2);
      else u8(0xdf), be(entries.length, 4);
      for (const [k, x] of entries) enc(k), enc(x);
      return;
    }
    throw new TypeError(`cannot encode ${typeof v} as MessagePack`);
  };
  enc(value);
  return Uint8Array.from(out);
}

/**
 * Decode one MessagePack value (maps become plain objects, bin a
 * Uint8Array, 64-bit integers Numbers).
 * @param {Uint8Array} bytes
 * @returns {any}
 */
export function decode(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 0;
  const need = (n) => {
    if (p + n > bytes.length) throw new RangeError('truncated MessagePack');
  };
  const uint = (n) => {
    need(n);
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + bytes[p++];
    return v;
  };
  const int = (n) => {
    const v = uint(n);
    return v >= 2 ** (8 * n - 1) ? v - 2 ** (8 * n) : v;
  };
  const str = (n) => {
    need(n);
    const s = new TextDecoder().decode(bytes.subarray(p, p + n));
    p += n;
    return s;
  };
  const bin = (n) => {
    need(n);
    const b = bytes.slice(p, p + n);
    p += n;
    return b;
  };
  const arr = (n) => Array.from({ length: n }, () => dec());
  const map = (n) => {
    const o = {};
    for (let i = 0; i < n; i++) {
      const k = dec();
      o[k] = dec();
    }
    return o;
  };
  const dec = () => {
    const b = uint(1);
    if (b < 0x80) return b;
    if (b < 0x90) return map(b & 0x0f);
    if (b < 0xa0) return arr(b & 0x0f);
    if (b < 0xc0) return str(b & 0x1f);
    if (b >= 0xe0) return b - 0x100;
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return bin(uint(1));
      case 0xc5: return bin(uint(2));
      case 0xc6: return bin(uint(4));
      case 0xca: need(4); p += 4; return dv.getFloat32(p - 4);
      case 0xcb: need(8); p += 8; return dv.getFloat64(p - 8);
      case 0xcc: return uint(1);
      case 0xcd: return uint(2);
      case 0xce: return uint(4);
      case 0xcf: return uint(8);
      case 0xd0: return int(1);
      case 0xd1: return int(2);
      case 0xd2: return int(4);
      case 0xd3: return int(8);
      case 0xd9: return str(uint(1));
      case 0xda: return str(uint(2));
      case 0xdb: return str(uint(4));
      case 0xdc: return arr(uint(2));
      case 0xdd: return arr(uint(4));
      case 0xde: return map(uint(2));
      case 0xdf: return map(uint(4));
      default: throw new RangeError(`unsupported MessagePack byte 0x${b.toString(16)}`);
    }
  };
  return dec();
}
