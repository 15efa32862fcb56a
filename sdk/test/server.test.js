// The SDK against a real giftstream server (the built binary, embedded
// engines): join + gift + event in both wire formats, no duplicate and no gap
// across a cut connection, a refused gift's code, streak steps (and the end
// from combo_end), staying connected past a token's exp.
// Node 20 needs --experimental-websocket (scripts/sdk-test passes it).
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Giftstream } from '../giftstream.js';
import { startServer, cuttableProxy } from '../test-support/server.js';
import { until, tick } from '../test-support/fake.js';

let srv;
let admin;
const clients = [];

before(async () => {
  srv = await startServer({
    GIFTSTREAM_COUNTERS__COMBO_WINDOW_MS: '400',
  });
  admin = srv.token('root', 'admin');
});

after(async () => {
  for (const c of clients) c.close();
  await srv?.stop();
});

/** Open `room`, each by its own creator (a creator may have few lives at once). */
async function openRoom(room) {
  const r = await srv.http('POST', '/v1/rooms', srv.token(`maker-${room}`, 'creator'), { room });
  assert.ok(r.status === 201 || r.status === 200, JSON.stringify(r));
}

async function grant(user, coins) {
  const r = await srv.http('POST', '/v1/admin/grants', admin, { user, coins, id: `grant-${user}-${coins}` });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

function client(user, extra = {}) {
  const c = new Giftstream({
    url: srv.ws,
    token: () => srv.token(user, 'viewer'),
    reconnectBaseMs: 50,
    reconnectDelayMsMax: 500,
    ...extra,
  });
  clients.push(c);
  return c;
}

for (const format of ['json', 'msgpack']) {
  test(`join, gift, event (${format})`, async () => {
    const room = `sdk-basic-${format}`;
    await openRoom(room);
    await grant(`alice-${format}`, 100);
    const watcher = client(`watch-${format}`, { format });
    const events = [];
    watcher.on('gift', (m, key) => events.push({ ...m, key }));
    const joined = await watcher.join({ room });
    assert.equal(joined.type, 'joined');
    assert.equal(joined.seq, 0);

    const sender = client(`alice-${format}`, { format });
    const ack = await sender.gift({ room }, 'rose', 3, { id: `basic-${format}` });
    assert.deepEqual(ack, { type: 'gift_ack', id: `basic-${format}`, seq: 1, balance: 97 });
    await until(() => events.length === 1, 5000, 'the gift event');
    const e = events[0];
    assert.equal(e.key, `room:${room}`);
    assert.equal(e.seq, 1);
    assert.equal(e.sender, `alice-${format}`);
    assert.equal(e.gift, 'rose');
    assert.equal(e.count, 3);
    assert.equal(e.coins, 3);
    assert.equal(e.id, `basic-${format}`);
    // The same id again: the original ack, nothing charged.
    const again = await sender.gift({ room }, 'rose', 3, { id: `basic-${format}` });
    assert.deepEqual(again, ack);
    const wallet = await srv.http('GET', '/v1/wallet', srv.token(`alice-${format}`, 'viewer'));
    assert.equal(wallet.body.coins, 97);
  });
}

test('a cut connection: reconnect and resume, every seq exactly once, no gap', async () => {
  const room = 'sdk-resume';
  await openRoom(room);
  await grant('bob', 100);
  const proxy = await cuttableProxy(srv.addr);
  const watcher = new Giftstream({
    url: proxy.ws,
    token: () => srv.token('watcher', 'viewer'),
    reconnectBaseMs: 50,
    reconnectDelayMsMax: 300,
  });
  clients.push(watcher);
  const seqs = [];
  const gaps = [];
  const resumed = [];
  const ends = []; // a pause longer than the streak window ends the streak (its own seq)
  watcher.on('gift', (m) => seqs.push(m.seq));
  watcher.on('combo_end', (m) => ends.push(m.seq));
  watcher.on('gap', (g) => gaps.push(g));
  watcher.on('message', (m) => m.type === 'resumed' && resumed.push(m.seq));
  await watcher.join({ room });
  const sender = client('bob');
  for (let i = 1; i <= 5; i++) await sender.gift({ room }, 'rose', 1, { id: `r-${i}` });
  await until(() => seqs.length === 5, 5000, 'five events');

  proxy.hold = true; // refuse reconnects for a while
  proxy.cut();
  await until(() => watcher.state === 'reconnecting', 2000, 'reconnecting');
  for (let i = 6; i <= 10; i++) await sender.gift({ room }, 'rose', 1, { id: `r-${i}` });
  await tick(200);
  proxy.hold = false;
  await until(() => seqs.length >= 10, 10000, 'ten events');
  for (let i = 11; i <= 12; i++) await sender.gift({ room }, 'rose', 1, { id: `r-${i}` });
  await until(() => seqs.length >= 12, 5000, 'twelve events');
  await tick(300);
  assert.equal(seqs.length, 12, `twelve gifts: ${seqs}`);
  assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `in order: ${seqs}`);
  const all = [...seqs, ...ends].sort((a, b) => a - b);
  assert.deepEqual(all, all.map((_, i) => i + 1), 'every seq once: gifts and streak ends');
  assert.deepEqual(gaps, []);
  assert.ok(resumed.length >= 1, 'the SDK resumed');
  watcher.close();
  await proxy.close();
});

test('a gift the wallet cannot pay is rejected with code insufficient_funds', async () => {
  const room = 'sdk-poor';
  await openRoom(room);
  const poor = client('pauper');
  await assert.rejects(poor.gift({ room }, 'lion', 1), (e) => {
    assert.equal(e.code, 'insufficient_funds');
    assert.ok(e instanceof Error);
    assert.ok(e.id, 'the generated id comes back');
    return true;
  });
  await assert.rejects(poor.gift({ room }, 'no-such-gift', 1), (e) => e.code === 'unknown_gift');
});

test('streaks: steps count up; the end (combo_end) carries the count', async () => {
  const room = 'sdk-streak';
  await openRoom(room);
  await grant('carol', 100);
  const watcher = client('streak-watcher');
  const steps = [];
  watcher.on('streak', (s) => steps.push(s));
  await watcher.join({ room });
  const sender = client('carol');
  await sender.gift({ room }, 'rose', 1);
  await sender.gift({ room }, 'rose', 2);
  await sender.gift({ room }, 'rose', 1);
  await until(() => steps.length >= 3, 5000, 'three steps');
  assert.deepEqual(
    steps.slice(0, 3).map((s) => [s.key, s.sender, s.gift, s.count, s.done]),
    [1, 3, 4].map((n) => [`room:${room}/carol/rose`, 'carol', 'rose', n, false]),
  );
  // The server ends the streak after counters.combo_window_ms (400 here).
  await tick(2000);
  const ends = steps.filter((s) => s.done);
  assert.equal(ends.length, 1, 'exactly one combo_end');
  assert.deepEqual(
    [ends[0].count, ends[0].coins, ends[0].diamonds, ends[0].seq_first, ends[0].seq_last],
    [4, 4, 4, 1, 3],
  );
});

test('stays connected past the first token\'s exp (refresh, or a reconnect on a server without it)', async () => {
  const room = 'sdk-refresh';
  await openRoom(room);
  await grant('dave', 10);
  const watcher = new Giftstream({ url: srv.ws, token: () => srv.token('short', 'viewer', 3), reconnectBaseMs: 50 });
  clients.push(watcher);
  const seen = [];
  watcher.on('gift', (m) => seen.push(m.seq));
  const refreshes = [];
  watcher.on('message', (m) => (m.type === 'refreshed' || m.type === 'error') && refreshes.push(m));
  await watcher.join({ room });
  await tick(4500);
  const sender = client('dave');
  await sender.gift({ room }, 'rose', 1);
  await until(() => seen.length === 1, 5000, 'the gift after exp');
  assert.equal(watcher.state, 'open');
  assert.ok(refreshes.length >= 1, 'a refresh was tried');
});
