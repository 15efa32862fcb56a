// The Node peer: a plain Node.js `ws` broadcast server speaking the same
// subset of protocol v1 (JSON) as `giftstream-loadtest floor-server`, so
// that the load generator's scenarios run against it unchanged
// (`giftstream-loadtest --compare-node`).
//
// What it is: what a team would write first with the most used Node
// WebSocket library: one process, one `ws.WebSocketServer` on an
// `http.Server`, a gift answered with an ack and its event serialized once
// and `send` to every socket of the room (the `ws` broadcast recipe).
// What it must not do: verify tokens or keep a ledger. Like the floor it
// measures moving the bytes, with a wallet and earnings in memory only so
// the conservation check of the load generator has something to read.
//
// Usage: node server.js --listen 127.0.0.1:PORT
'use strict';

const http = require('node:http');
const { WebSocketServer } = require('ws');

const SUBPROTOCOL = 'giftstream.v1.json';
const GIFT = { id: 'rose', name: 'Rose', coins: 1, diamonds: 1, animation: 'rose.webp' };
const BODY_LEN_MAX = 64 * 1024;

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const listen = arg('--listen', '127.0.0.1:8091');
const [host, port] = [listen.slice(0, listen.lastIndexOf(':')), Number(listen.slice(listen.lastIndexOf(':') + 1))];
if (host !== '127.0.0.1' && host !== 'localhost' && host !== '::1') {
  console.error('the node peer listens on loopback only');
  process.exit(2);
}

const wallets = new Map();
const grantIds = new Set();
const earnings = new Map();
/** room -> {creator, seq, sockets: Set<WebSocket>} */
const rooms = new Map();

/** The `sub` of a JWT, read without checking its signature. */
function tokenSub(req) {
  const auth = req.headers.authorization || '';
  if (!auth.startsWith('Bearer ')) return null;
  const parts = auth.slice(7).split('.');
  if (parts.length !== 3) return null;
  try {
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    return typeof claims.sub === 'string' ? claims.sub : null;
  } catch {
    return null;
  }
}

function reply(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function route(req, res, body) {
  const user = tokenSub(req);
  const path = req.url.split('?')[0];
  if (req.method === 'GET' && path === '/healthz') return reply(res, 200, { ok: true });
  if (req.method === 'GET' && path === '/v1/catalog') return reply(res, 200, { gifts: [GIFT] });
  if (req.method === 'POST' && path === '/v1/rooms') {
    if (!user || typeof body.room !== 'string') return reply(res, 400, { code: 'bad_request' });
    if (!rooms.has(body.room)) rooms.set(body.room, { creator: user, seq: 0, sockets: new Set() });
    return reply(res, 200, { room: body.room });
  }
  if (req.method === 'POST' && path === '/v1/admin/grants') {
    const { user: u, coins, id } = body;
    if (typeof u !== 'string' || !Number.isInteger(coins) || typeof id !== 'string') {
      return reply(res, 400, { code: 'bad_request' });
    }
    if (!grantIds.has(id)) {
      grantIds.add(id);
      wallets.set(u, (wallets.get(u) || 0) + coins);
    }
    return reply(res, 200, { user: u, coins, id });
  }
  if (req.method === 'GET' && path === '/v1/wallet') {
    if (!user) return reply(res, 401, { code: 'unauthorized' });
    return reply(res, 200, { user, coins: wallets.get(user) || 0 });
  }
  const m = /^\/v1\/creators\/([^/]+)\/earnings$/.exec(path);
  if (req.method === 'GET' && m) {
    const c = decodeURIComponent(m[1]);
    return reply(res, 200, { creator: c, diamonds_pending: earnings.get(c) || 0, diamonds_settled: 0 });
  }
  return reply(res, 404, { code: 'not_found' });
}

const server = http.createServer((req, res) => {
  const chunks = [];
  let len = 0;
  req.on('data', (c) => {
    len += c.length;
    if (len > BODY_LEN_MAX) req.destroy();
    else chunks.push(c);
  });
  req.on('end', () => {
    let body = {};
    try {
      body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
    } catch {
      body = {};
    }
    route(req, res, body || {});
  });
});
server.keepAliveTimeout = 60_000;

const wss = new WebSocketServer({
  server,
  path: '/v1/ws',
  perMessageDeflate: false,
  handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
});

function error(ws, code, id) {
  ws.send(JSON.stringify({ type: 'error', code, message: code, id: id ?? null }));
}

function gift(ws, user, m) {
  const id = typeof m.id === 'string' ? m.id : '';
  const count = Number.isInteger(m.count) ? m.count : 0;
  if (!id || count < 1 || count > 99) return error(ws, 'bad_request', id);
  if (m.gift !== GIFT.id) return error(ws, 'unknown_gift', id);
  const room = rooms.get(m.room);
  if (!room) return error(ws, 'unknown_room', id);
  const coins = GIFT.coins * count;
  const diamonds = GIFT.diamonds * count;
  const wallet = wallets.get(user) || 0;
  if (wallet < coins) return error(ws, 'insufficient_funds', id);
  wallets.set(user, wallet - coins);
  earnings.set(room.creator, (earnings.get(room.creator) || 0) + diamonds);
  room.seq += 1;
  const event = JSON.stringify({
    type: 'gift_event', room: m.room, seq: room.seq, id, sender: user, gift: GIFT.id, count,
    combo: 1, coins, diamonds, animation: GIFT.animation, ts: Date.now(),
  });
  for (const s of room.sockets) {
    if (s.readyState === 1) s.send(event);
  }
  ws.send(JSON.stringify({ type: 'gift_ack', id, seq: room.seq, balance: wallet - coins }));
}

wss.on('connection', (ws, req) => {
  const user = tokenSub(req);
  if (!user) return ws.close(1008, 'unauthorized');
  const joined = new Set();
  ws.on('message', (data, isBinary) => {
    if (isBinary) return error(ws, 'bad_request');
    let m;
    try {
      m = JSON.parse(data.toString('utf8'));
    } catch {
      return error(ws, 'bad_request');
    }
    switch (m && m.type) {
      case 'ping':
        return ws.send('{"type":"pong"}');
      case 'join': {
        const room = rooms.get(m.room);
        if (!room) return error(ws, 'unknown_room');
        room.sockets.add(ws);
        joined.add(m.room);
        return ws.send(JSON.stringify({ type: 'joined', room: m.room, seq: room.seq }));
      }
      case 'leave': {
        const room = rooms.get(m.room);
        if (room) room.sockets.delete(ws);
        joined.delete(m.room);
        return ws.send(JSON.stringify({ type: 'left', room: m.room }));
      }
      case 'gift':
        return gift(ws, user, m);
      default:
        return error(ws, 'bad_request');
    }
  });
  ws.on('close', () => {
    for (const r of joined) rooms.get(r)?.sockets.delete(ws);
  });
  ws.on('error', () => {});
});

server.listen({ host, port, backlog: 4096 }, () => {
  console.error(`node-peer listening on ${host}:${port} (ws ${require('ws/package.json').version}, node ${process.version})`);
});
process.on('SIGTERM', () => process.exit(0));
