// A real giftstream server for the SDK's tests: the built binary
// (GIFTSTREAM_BIN, else $CARGO_TARGET_DIR/debug/giftstream, else
// target/debug/giftstream) on 127.0.0.1:0 with the embedded engines (memory
// counters, a temp SQLite ledger), started with `serve --ready-file`.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, existsSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Path of the server binary. */
export function binary() {
  if (process.env.GIFTSTREAM_BIN) return process.env.GIFTSTREAM_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(repo, 'target');
  return join(target, 'debug', 'giftstream');
}

/**
 * Start a server; `env` adds GIFTSTREAM_<SECTION>__<KEY> overrides.
 * @returns {Promise<{addr, url(path), ws, token(user, role, ttl?), http(method, path, token, body), stop()}>}
 */
export async function startServer(env = {}) {
  const bin = binary();
  if (!existsSync(bin)) throw new Error(`no giftstream binary at ${bin}: cargo build, or set GIFTSTREAM_BIN`);
  const dir = mkdtempSync(join(tmpdir(), 'giftstream-sdk-'));
  const ready = join(dir, 'ready');
  const fullEnv = {
    ...process.env,
    GIFTSTREAM_CONFIG: join(repo, 'config', 'default.toml'),
    GIFTSTREAM_AUTH__JWT_SECRET: 'sdk-test-secret-0123456789abcdef0123456789',
    GIFTSTREAM_COUNTERS__URL: 'memory',
    GIFTSTREAM_LEDGER__URL: `sqlite://${join(dir, 'ledger.db')}`,
    GIFTSTREAM_SETTLEMENT__FLUSH_INTERVAL_MS: '20',
    // Many servers at once: each its own metrics port.
    GIFTSTREAM_HTTP__METRICS_LISTEN: '127.0.0.1:0',
    RUST_LOG: process.env.RUST_LOG || 'giftstream=warn',
    ...env,
  };
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--ready-file', ready], {
    cwd: dir,
    env: fullEnv,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const deadline = Date.now() + 30000;
  while (!existsSync(ready)) {
    if (child.exitCode !== null) throw new Error(`server exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`server not ready in 30 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const addr = readFileSync(ready, 'utf8').trim();
  const srv = {
    addr,
    url: (path) => `http://${addr}${path}`,
    ws: `ws://${addr}/v1/ws`,
    token(user, role = 'viewer', ttl = 3600) {
      return execFileSync(bin, ['token', user, '--role', role, '--ttl', String(ttl)], { env: fullEnv, cwd: dir })
        .toString()
        .trim();
    },
    async http(method, path, token, body) {
      const res = await fetch(srv.url(path), {
        method,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      let json;
      try {
        json = JSON.parse(text);
      } catch {
        json = text;
      }
      return { status: res.status, body: json, headers: res.headers };
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return srv;
}

/**
 * A TCP proxy in front of `addr` whose connections a test can cut (a
 * network failure, not a clean close).
 */
export async function cuttableProxy(addr) {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  const conns = new Set();
  const proxy = {};
  const server = net.createServer((c) => {
    if (proxy.hold) return c.destroy();
    const up = net.connect(port, host);
    const pair = [c, up];
    conns.add(pair);
    c.pipe(up);
    up.pipe(c);
    const end = () => {
      conns.delete(pair);
      c.destroy();
      up.destroy();
    };
    c.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(proxy, {
    /** While true, new connections are refused. */
    hold: false,
    ws: `ws://127.0.0.1:${server.address().port}/v1/ws`,
    /** Cut every connection now (both sides see a reset). */
    cut() {
      for (const [c, up] of conns) {
        c.resetAndDestroy ? c.resetAndDestroy() : c.destroy();
        up.destroy();
      }
      conns.clear();
    },
    count: () => conns.size,
    close: () => new Promise((r) => server.close(r)),
  });
}
