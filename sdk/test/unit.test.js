// Unit tests of the SDK's state machine against a scripted socket: dedupe,
// resume after reconnect, skipped, history_gone, streaks, gift retries,
// token refresh and its fallback, backoff, MessagePack.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Giftstream, backoffMs, encode, decode, jwtPayload } from '../giftstream.js';
import { FakeSocket, sockets, until, tick, fakeJwt } from '../test-support/fake.js';

const farToken = () => fakeJwt({ sub: 'v', exp: Math.floor(Date.now() / 1000) + 3600 });

function client(extra = {}) {
  sockets.length = 0;
  FakeSocket.refuse = false;
  return new Giftstream({
    url: 'ws://fake/v1/ws',
    token: farToken,
    WebSocket: FakeSocket,
    reconnectBaseMs: 1,
    reconnectDelayMsMax: 5,
    pingIntervalMs: 0,
    ...extra,
  });
}

const ev = (seq, extra = {}) => ({
  type: 'gift_event', room: 'r', seq, id: `g${seq}`, sender: 'alice', gift: 'rose',
  count: 1, combo: seq, coins: 1, diamonds: 1, animation: 'rose.webp', ts: 0, ...extra,
});

async function joined(gs, seq = 0) {
  const p = gs.join({ room: 'r' });
  await until(() => sockets.at(-1)?.sent.some((m) => m.type === 'join'), 1000, 'join sent');
  sockets.at(-1).deliver({ type: 'joined', room: 'r', seq, viewers: 1 });
  await p;
  return sockets.at(-1);
}

test('token on the URL, JSON subprotocol, join answered', async () => {
  const gs = client();
  const ws = await joined(gs, 4);
  assert.match(ws.url, /^ws:\/\/fake\/v1\/ws\?token=[\w.-]+$/);
  assert.deepEqual(ws.protocols, ['giftstream.v1.json']);
  assert.deepEqual(ws.sent[0], { type: 'join', room: 'r' });
  // Joining again answers at once, without a second join on the wire.
  assert.deepEqual(await gs.join({ room: 'r' }), { type: 'joined', room: 'r', seq: 4 });
  assert.equal(ws.sent.length, 1);
  gs.close();
});

test('a seq is emitted once per target, never one at or below the join seq', async () => {
  const gs = client();
  const seen = [];
  gs.on('gift', (m, key) => seen.push([key, m.seq]));
  const ws = await joined(gs, 5);
  for (const s of [5, 6, 6, 7, 6, 8]) ws.deliver(ev(s));
  assert.deepEqual(seen, [['room:r', 6], ['room:r', 7], ['room:r', 8]]);
  gs.close();
});

test('after a drop: reconnect with a fresh token and resume from the last seq, without duplicates', async () => {
  let n = 0;
  const gs = client({ token: () => fakeJwt({ n: ++n, exp: Math.floor(Date.now() / 1000) + 3600 }) });
  const seen = [];
  const states = [];
  gs.on('gift', (m) => seen.push(m.seq));
  gs.on('state', (s) => states.push(s));
  const ws1 = await joined(gs, 0);
  ws1.deliver(ev(1));
  ws1.deliver(ev(2));
  ws1.drop(1001);
  await until(() => sockets.length === 2 && sockets[1].sent.length > 0, 1000, 'second socket');
  const ws2 = sockets[1];
  assert.notEqual(ws1.url, ws2.url, 'a fresh token per connection');
  assert.deepEqual(ws2.sent[0], { type: 'resume', room: 'r', since: 2 });
  for (const s of [1, 2, 3]) ws2.deliver(ev(s));
  ws2.deliver({ type: 'resumed', room: 'r', seq: 3 });
  ws2.deliver(ev(4));
  assert.deepEqual(seen, [1, 2, 3, 4]);
  assert.deepEqual(states, ['connecting', 'open', 'reconnecting', 'open']);
  gs.close();
});

test('skipped: resume from from_seq - 1 on the same socket', async () => {
  const gs = client();
  const seen = [];
  gs.on('gift', (m) => seen.push(m.seq));
  const ws = await joined(gs, 0);
  ws.deliver(ev(1));
  ws.deliver({ type: 'skipped', room: 'r', from_seq: 2, to_seq: 4 });
  assert.deepEqual(ws.sent.at(-1), { type: 'resume', room: 'r', since: 1 });
  for (const s of [2, 3, 4, 5]) ws.deliver(ev(s));
  ws.deliver({ type: 'resumed', room: 'r', seq: 5 });
  ws.deliver(ev(5));
  assert.deepEqual(seen, [1, 2, 3, 4, 5]);
  gs.close();
});

test('history_gone: a gap event, then join again', async () => {
  const gs = client();
  const gaps = [];
  gs.on('gap', (g) => gaps.push(g));
  const seen = [];
  gs.on('gift', (m) => seen.push(m.seq));
  const ws1 = await joined(gs, 0);
  ws1.deliver(ev(1));
  ws1.drop();
  await until(() => sockets[1]?.sent.length, 1000, 'resume');
  const ws2 = sockets[1];
  ws2.deliver({ type: 'error', code: 'history_gone', message: 'gone' });
  assert.deepEqual(gaps, [{ key: 'room:r', since: 1 }]);
  assert.deepEqual(ws2.sent.at(-1), { type: 'join', room: 'r' });
  ws2.deliver({ type: 'joined', room: 'r', seq: 40, viewers: 1 });
  ws2.deliver(ev(40));
  ws2.deliver(ev(41));
  assert.deepEqual(seen, [1, 41]);
  gs.close();
});

test('streaks: steps, then the end with combo_end\'s count; a late step of an ended streak is ignored', async () => {
  const gs = client();
  const streaks = [];
  gs.on('streak', (s) => streaks.push([s.key, s.count, s.done]));
  const ws = await joined(gs, 0);
  ws.deliver(ev(1, { combo: 1 }));
  ws.deliver(ev(2, { combo: 3, count: 2 }));
  ws.deliver(ev(3, { sender: 'bob', combo: 1 }));
  ws.deliver({ type: 'combo_end', room: 'r', seq: 4, sender: 'alice', gift: 'rose', count: 3, coins: 3, diamonds: 3, seq_first: 1, seq_last: 2 });
  // A step of the ended streak (e.g. a coalesced step that raced the end): ignored.
  gs.step('room:r', ev(2, { combo: 3 }));
  // The same end again (e.g. replayed by a resume): ignored.
  gs.end('room:r', { sender: 'alice', gift: 'rose', count: 3, seq_first: 1, seq_last: 2 });
  // A new streak of the same sender and gift.
  ws.deliver(ev(5, { combo: 1 }));
  assert.deepEqual(streaks, [
    ['room:r/alice/rose', 1, false],
    ['room:r/alice/rose', 3, false],
    ['room:r/bob/rose', 1, false],
    ['room:r/alice/rose', 3, true],
    ['room:r/alice/rose', 1, false],
  ]);
  gs.close();
});

test('gift: an id is generated; outcome_unknown and a drop resend the same id; an error rejects with its code', async () => {
  const gs = client();
  const ws1 = await joined(gs, 0);
  const p = gs.gift({ room: 'r' }, 'rose', 2, { message: 'hi' });
  const sent = ws1.sent.at(-1);
  assert.equal(sent.type, 'gift');
  assert.equal(sent.count, 2);
  assert.equal(sent.message, 'hi');
  assert.ok(sent.id.length >= 8 && sent.id.length <= 64);
  ws1.deliver({ type: 'error', code: 'outcome_unknown', message: 'maybe', id: sent.id });
  await until(() => ws1.sent.filter((m) => m.id === sent.id).length === 2, 1000, 'resend');
  ws1.drop();
  await until(() => sockets[1]?.sent.some((m) => m.type === 'gift'), 1000, 'resend after reconnect');
  const ws2 = sockets[1];
  assert.equal(ws2.sent.find((m) => m.type === 'gift').id, sent.id);
  ws2.deliver({ type: 'gift_ack', id: sent.id, seq: 9, balance: 7 });
  assert.deepEqual(await p, { type: 'gift_ack', id: sent.id, seq: 9, balance: 7 });

  const poor = gs.gift({ room: 'r' }, 'lion', 1, { id: 'mine-1' });
  ws2.deliver({ type: 'error', code: 'insufficient_funds', message: 'not enough coins', id: 'mine-1' });
  await assert.rejects(poor, (e) => e.code === 'insufficient_funds' && e.id === 'mine-1');
  // An error about a gift no longer pending is reported, and answers no join.
  const errors = [];
  gs.on('error', (e) => errors.push(e.code));
  const j = gs.join({ room: 'other' });
  ws2.deliver({ type: 'error', code: 'internal', message: 'late', id: 'mine-1' });
  ws2.deliver({ type: 'joined', room: 'other', seq: 3 });
  assert.equal((await j).seq, 3);
  assert.deepEqual(errors, ['internal']);
  gs.close();
});

test('close rejects pending gifts with code closed', async () => {
  const gs = client();
  await joined(gs, 0);
  const p = gs.gift({ room: 'r' }, 'rose');
  gs.close();
  await assert.rejects(p, (e) => e.code === 'closed');
  assert.equal(gs.state, 'closed');
});

test('refresh before exp; refreshed reschedules; a server without refresh gets a reconnect instead', async () => {
  let n = 0;
  // exp 1 s ahead: refreshed at the 1 s floor.
  const gs = client({ token: () => fakeJwt({ n: ++n, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 2 }) });
  const ws1 = await joined(gs, 0);
  await until(() => ws1.sent.some((m) => m.type === 'refresh'), 3000, 'refresh');
  const r = ws1.sent.find((m) => m.type === 'refresh');
  assert.equal(jwtPayload(r.token).n, 2, 'a fresh token from the provider');
  // This server does not know `refresh`.
  ws1.deliver({ type: 'error', code: 'bad_request', message: 'unknown message type' });
  await until(() => sockets.length === 2 && sockets[1].sent.length, 2000, 'reconnect');
  assert.equal(ws1.closed, 1000);
  assert.deepEqual(sockets[1].sent[0], { type: 'resume', room: 'r', since: 0 });
  assert.equal(jwtPayload(new URL(sockets[1].url).searchParams.get('token')).n, 3);
  gs.close();
});

test('refreshed keeps the socket', async () => {
  const now = () => Math.floor(Date.now() / 1000);
  const gs = client({ token: () => fakeJwt({ iat: now(), exp: now() + 2 }) });
  const ws = await joined(gs, 0);
  await until(() => ws.sent.some((m) => m.type === 'refresh'), 3000, 'refresh');
  ws.deliver({ type: 'refreshed' });
  await tick(20);
  assert.equal(sockets.length, 1);
  assert.equal(gs.state, 'open');
  gs.close();
});

test('backoff: full jitter under the cap; bounded attempts end in closed', async () => {
  assert.equal(backoffMs(0, 250, 30000, () => 0.999), 249);
  assert.equal(backoffMs(3, 250, 30000, () => 0.5), 1000);
  assert.equal(backoffMs(20, 250, 30000, () => 0.999), 29970);
  assert.equal(backoffMs(50, 250, 30000, () => 0), 0);
  const gs = client({ reconnectAttemptsMax: 3 });
  const errors = [];
  gs.on('error', (e) => errors.push(e.code));
  FakeSocket.refuse = true;
  await assert.rejects(gs.connect(), (e) => e.code === 'closed');
  assert.equal(sockets.length, 4, 'the first try and 3 reconnects');
  assert.deepEqual(errors, ['closed']);
  FakeSocket.refuse = false;
});

test('MessagePack: round trip of protocol values, and the msgpack subprotocol', async () => {
  const v = { type: 'gift_event', seq: 2 ** 40 + 3, neg: -5, n16: -300, big: 70000, f: 1.5, s: 'é'.repeat(40), a: [1, 'x', null, true, false], m: {} };
  assert.deepEqual(decode(encode(v)), v);
  // A map as the Rust server writes it (fixmap, fixstr keys, uint8).
  assert.deepEqual(decode(Uint8Array.from([0x82, 0xa4, 0x74, 0x79, 0x70, 0x65, 0xa4, 0x70, 0x6f, 0x6e, 0x67, 0xa1, 0x6e, 0xcc, 0xc8])), { type: 'pong', n: 200 });
  const gs = client({ format: 'msgpack' });
  gs.join({ room: 'r' }).catch(() => {}); // rejected by close() below
  await until(() => sockets[0]?.sent.length, 1000, 'join');
  assert.deepEqual(sockets[0].protocols, ['giftstream.v1.msgpack']);
  assert.deepEqual(decode(sockets[0].sent[0]), { type: 'join', room: 'r' });
  gs.close();
});

test('targets: video and inbox keys and wire fields', async () => {
  const gs = client();
  const seen = [];
  gs.on('gift', (m, key) => seen.push([key, m.seq]));
  gs.join({ video: 'v1' });
  gs.join({ inbox: true });
  await until(() => sockets[0]?.sent.length === 2, 1000, 'joins');
  assert.deepEqual(sockets[0].sent, [{ type: 'join', video: 'v1' }, { type: 'join', inbox: true }]);
  sockets[0].deliver({ type: 'joined', video: 'v1', seq: 0 });
  sockets[0].deliver({ type: 'joined', seq: 10 }); // a server that names no target: the oldest join
  sockets[0].deliver(ev(1, { room: undefined, video: 'v1' }));
  sockets[0].deliver(ev(11, { inbox: true }));
  sockets[0].deliver(ev(11, { inbox: true }));
  assert.deepEqual(seen, [['video:v1', 1], ['inbox', 11]]);
  await assert.rejects(gs.gift({ inbox: true }, 'rose'), TypeError);
  gs.close();
});
