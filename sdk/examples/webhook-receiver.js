// A giftstream webhook receiver with signature verification (docs/WEBHOOKS.md).
// Node >= 18, no dependencies:
//
//   GIFTSTREAM_WEBHOOK_SECRET=whsec_... node webhook-receiver.js [port]
//
// It checks `Giftstream-Signature: t=<unix s>,v1=<hex HMAC-SHA256>` over
// `t + "." + raw body` (keyed with the whole secret string), refuses
// timestamps older than 5 minutes, answers 2xx quickly, and ignores event
// ids it has already handled (delivery is at least once).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';

/** Whether `header` signs `body` (the raw bytes, a Buffer or string) with `secret`. */
export function verifySignature(secret, header, body, toleranceS = 300, nowS = Date.now() / 1000) {
  if (typeof header !== 'string') return false;
  let t = null;
  const v1 = [];
  for (const part of header.split(',')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1).trim();
    if (k === 't' && /^\d+$/.test(v)) t = Number(v);
    if (k === 'v1') v1.push(v);
  }
  if (t === null || Math.abs(nowS - t) > toleranceS) return false;
  const expected = createHmac('sha256', secret)
    .update(`${t}.`)
    .update(body)
    .digest();
  return v1.some((sig) => {
    const got = Buffer.from(sig, 'hex');
    return got.length === expected.length && timingSafeEqual(got, expected);
  });
}

/** An HTTP server handing each verified, not yet seen event to `onEvent`. */
export function receiver(secret, onEvent, { seenMax = 10000 } = {}) {
  const seen = new Set();
  return createServer((req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > 1 << 20) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (!verifySignature(secret, req.headers['giftstream-signature'], body)) {
        res.writeHead(400).end('bad signature');
        return;
      }
      const event = JSON.parse(body.toString('utf8'));
      // Answer first; work after (a slow answer is retried as a failure).
      res.writeHead(204).end();
      if (seen.has(event.id)) return; // a redelivery
      seen.add(event.id);
      if (seen.size > seenMax) seen.delete(seen.values().next().value);
      onEvent(event);
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const secret = process.env.GIFTSTREAM_WEBHOOK_SECRET;
  if (!secret) {
    console.error('set GIFTSTREAM_WEBHOOK_SECRET to the endpoint secret (whsec_...)');
    process.exit(2);
  }
  const port = Number(process.argv[2] ?? 8787);
  receiver(secret, (e) => {
    if (e.type === 'gift') console.log(`${e.data.sender} sent ${e.data.count}x ${e.data.gift} (seq ${e.data.seq})`);
    else console.log(`${e.type}`, JSON.stringify(e.data));
  }).listen(port, () => console.log(`listening on :${port}`));
}
