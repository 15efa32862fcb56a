// A scripted WebSocket for unit tests of the SDK: records what the client
// sends, delivers what a test says the server answers.

/** Every FakeSocket made, in order. */
export const sockets = [];

export class FakeSocket {
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.sent = [];
    this.closed = null;
    sockets.push(this);
    FakeSocket.onCreate?.(this);
    if (!FakeSocket.refuse) setTimeout(() => this.onopen?.(), 0);
    else setTimeout(() => this.onclose?.({ code: 1006 }), 0);
  }
  send(data) {
    this.sent.push(typeof data === 'string' ? JSON.parse(data) : data);
  }
  /** The client closes. */
  close(code = 1000) {
    this.closed = code;
    this.onclose?.({ code });
  }
  /** The server sends `msg`. */
  deliver(msg) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  /** The server (or the network) drops the socket. */
  drop(code = 1006) {
    this.onclose?.({ code });
  }
}

export const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

/** Wait until `cond()` is truthy (polling), or fail after `ms`. */
export async function until(cond, ms = 5000, what = 'condition') {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await tick(5);
  }
}

/** An unsigned JWT-shaped token with these claims (the SDK only reads exp/iat). */
export function fakeJwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}.sig`;
}
