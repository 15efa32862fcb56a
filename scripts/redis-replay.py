#!/usr/bin/env python3
"""Replay one captured gift_batch.lua call on an idle redis-server, many
times, and report what Redis spends per gift (issue 16, item 6).

The capture is a `redis-cli MONITOR` of a loaded node (`scripts/bench-redis`
with BENCH_REDIS_CAPTURE=1 writes one per run: `<run>/monitor.txt`). The
largest captured `EVALSHA` with gift_batch.lua's layout (src/counters/
redis/batch.rs) is taken and replayed against the script built from the
given Lua directory (stream_lib, inbox_lib, combo_lib, gift, gift_batch:
as src/counters/redis/scripts.rs concatenates them), each time with fresh
client ids, after a FLUSHALL on the given (throwaway) Redis: its wallets
get 10^12 coins and its targets a live room each. Every gift must answer
`OK`. Reported: `INFO commandstats` EVALSHA microseconds per gift (Redis's
own clock: the script and its nested commands), best and median of five
rounds, so two Lua directories compare on one machine within minutes,
without a node, PostgreSQL or the load generator.

    scripts/redis-replay.py CAPTURE LUA_DIR PORT [CALLS_PER_ROUND [GIFTS]]

GIFTS picks a call of that many gifts (the first captured; default: the
largest), since per-call costs weigh by batch size (16 x 32 makes ~5).

Needs only Python's standard library (RESP over a socket).
"""
import socket
import sys

SHARED_ARGS = 14  # batch.rs SHARED_ARGS
OWN_KEYS, OWN_ARGS = 6, 17  # gift.lua's KEYS and ARGV sent per gift
LUA_FILES = ["stream_lib.lua", "inbox_lib.lua", "combo_lib.lua", "gift.lua", "gift_batch.lua"]
ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b"}


def monitor_args(line):
    """The quoted arguments of one MONITOR line, unescaped."""
    s, out, j = line[line.index('"'):], [], 0
    while j < len(s):
        if s[j] != '"':
            j += 1
            continue
        j += 1
        arg = bytearray()
        while s[j] != '"':
            if s[j] == "\\":
                d = s[j + 1]
                if d == "x":
                    arg.append(int(s[j + 2:j + 4], 16))
                    j += 4
                    continue
                arg += ESCAPES.get(d, d.encode("latin-1"))
                j += 2
                continue
            arg += s[j].encode("latin-1")
            j += 1
        out.append(bytes(arg))
        j += 1
    return out


class Resp:
    """A minimal RESP2 client: enough for this replay."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def call(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(parts))
        return self.read()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n", 1)
        return head

    def read(self):
        head = self.line()
        kind, rest = head[:1], head[1:]
        if kind in (b"+", b":"):
            return rest
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(1 << 20)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError(f"unexpected reply {head!r}")


def main():
    capture, lua_dir, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    calls = int(sys.argv[4]) if len(sys.argv) > 4 else 400
    want = int(sys.argv[5]) if len(sys.argv) > 5 else None
    best = None
    for line in open(capture, encoding="latin-1"):
        if '"EVALSHA"' not in line.upper():
            continue
        a = monitor_args(line)
        nkeys = int(a[2])
        if (nkeys - 3) % OWN_KEYS or nkeys < 3 + OWN_KEYS:
            continue
        if want is not None:
            if (nkeys - 3) // OWN_KEYS == want:
                best = a
                break
        elif best is None or nkeys > int(best[2]):
            best = a
    if best is None:
        sys.exit(f"no gift_batch.lua call in {capture}")
    nkeys = int(best[2])
    keys, args = best[3:3 + nkeys], best[3 + nkeys:]
    n = int(args[0])
    assert nkeys == 3 + OWN_KEYS * n and len(args) == 1 + SHARED_ARGS + OWN_ARGS * n, "layout"
    args[4] = b"1000000000"  # pending len max (gift.lua ARGV 12): never full here
    r = Resp(port)
    r.call("FLUSHALL")
    sha = r.call("SCRIPT", "LOAD", b"".join(open(f"{lua_dir}/{f}", "rb").read() for f in LUA_FILES))
    for g in range(n):
        k = keys[3 + OWN_KEYS * g:3 + OWN_KEYS * (g + 1)]
        r.call("SET", k[2], "1000000000000")
        r.call("HSET", k[3], "creator", b"creator-" + k[3][-8:], "live", "1")

    def one(tag):
        kk, aa = list(keys), list(args)
        for g in range(n):
            kk[3 + OWN_KEYS * g] += tag  # the idempotency key
            aa[1 + SHARED_ARGS + OWN_ARGS * g] += tag  # the client id
        out = r.call("EVALSHA", sha, nkeys, *kk, *aa)
        bad = [x for x in out if x[0] != b"OK"]
        assert not bad, f"a replayed gift was refused: {bad[0]}"

    one(b".warm")
    rounds = []
    for rnd in range(5):
        r.call("CONFIG", "RESETSTAT")
        for i in range(calls):
            one(b".%d.%d" % (rnd, i))
        stats = r.call("INFO", "commandstats").decode()
        usec = next(int(l.split("usec=")[1].split(",")[0])
                    for l in stats.splitlines() if l.startswith("cmdstat_evalsha:"))
        rounds.append(usec / (calls * n))
    rounds.sort()
    print(f"{n} gifts per call, 5 x {calls} calls: EVALSHA µs per gift: "
          f"best {rounds[0]:.1f}, median {rounds[2]:.1f}")


if __name__ == "__main__":
    main()
