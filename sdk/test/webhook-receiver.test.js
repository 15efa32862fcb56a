// The webhook receiver example (examples/webhook-receiver.js): the
// signature rule on the reference vector (the same as the server's unit
// test, src/webhooks/sign.rs), and the server: verified, deduped by id.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { verifySignature, receiver } from '../examples/webhook-receiver.js';

const VECTOR = 't=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789';

test('verifySignature accepts the reference vector and refuses changes', () => {
  const body = '{"a":1}';
  assert.equal(verifySignature('whsec_test', VECTOR, body, 300, 1700000010), true);
  assert.equal(verifySignature('whsec_test', VECTOR, Buffer.from(body), 300, 1700000010), true);
  assert.equal(verifySignature('whsec_other', VECTOR, body, 300, 1700000010), false);
  assert.equal(verifySignature('whsec_test', VECTOR, '{"a":2}', 300, 1700000010), false);
  assert.equal(verifySignature('whsec_test', VECTOR, body, 300, 1700001000), false, 'too old');
  assert.equal(verifySignature('whsec_test', undefined, body), false);
});

test('the receiver hands each verified event once', async () => {
  const events = [];
  const server = receiver('whsec_x', (e) => events.push(e));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}/`;
  const post = (body, sig) =>
    fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', 'giftstream-signature': sig } });
  const body = JSON.stringify({ id: 'e1', type: 'gift', created_ms: 1, creator: 'c', data: { seq: 1 } });
  const t = Math.floor(Date.now() / 1000);
  const sig = `t=${t},v1=${createHmac('sha256', 'whsec_x').update(`${t}.${body}`).digest('hex')}`;
  assert.equal((await post(body, sig)).status, 204);
  assert.equal((await post(body, sig)).status, 204, 'a redelivery is acknowledged');
  assert.equal((await post(body, 't=1,v1=00')).status, 400);
  server.close();
  assert.deepEqual(events.map((e) => e.id), ['e1']);
});
