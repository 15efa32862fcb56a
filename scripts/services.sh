# shellcheck shell=bash
# Throwaway Redis and PostgreSQL for tests: a bash library, `source` it.
#
#   source scripts/services.sh
#   trap 'rc=$?; services_stop; exit $rc' EXIT   # in a script
#   services_start                                # exports the URLs below
#
# services_start picks free loopback ports, starts redis-server, a fresh
# PostgreSQL cluster and localstripe (a fake Stripe API, from PyPI, in a
# virtual environment inside the build folder: $CARGO_TARGET_DIR or
# target/, reused when present) in one temp dir, waits until each answers,
# and exports
#   GIFTSTREAM_TEST_REDIS_URL=redis://127.0.0.1:PORT
#   GIFTSTREAM_TEST_POSTGRES_URL=postgres://giftstream@127.0.0.1:PORT/postgres
#   GIFTSTREAM_TEST_STRIPE_URL=http://127.0.0.1:PORT
#   GIFTSTREAM_TEST_REQUIRE_SERVICES=1
# services_stop stops whatever was started and removes the temp dir; it is
# safe to call after a partial start and more than once.
#
# Missing redis-server (and PostgreSQL, python3) are installed with apt-get
# when running as root. PostgreSQL refuses to run as root: as root, initdb
# and pg_ctl run as the unprivileged `postgres` system user.

GS_SERVICES_DIR="${GS_SERVICES_DIR:-}"
GS_REDIS_PID="${GS_REDIS_PID:-}"
GS_STRIPE_PID="${GS_STRIPE_PID:-}"
GS_PG_DATA="${GS_PG_DATA:-}"
GS_PG_BIN="${GS_PG_BIN:-}"
GS_APT_UPDATED="${GS_APT_UPDATED:-}"

services_log() {
    printf '[services] %s\n' "$*" >&2
}

# Install Debian packages (root only; `apt-get update` once per run).
services_apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        services_log "missing: $*; install it (apt-get install $*) or run as root"
        return 1
    fi
    if [ -z "$GS_APT_UPDATED" ]; then
        services_log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        GS_APT_UPDATED=1
    fi
    services_log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# A TCP port free on 127.0.0.1 right now.
services_free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Directory holding initdb and pg_ctl (PATH first, then the newest
# /usr/lib/postgresql/*/bin); empty when there is none.
services_find_pg_bin() {
    local initdb_path dir
    if initdb_path="$(command -v initdb)" && command -v pg_ctl >/dev/null; then
        dirname "$(readlink -f "$initdb_path")"
        return 0
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    return 0
}

# Run a PostgreSQL server command, as `postgres` when we are root, from a
# directory that user can read.
services_as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd "$GS_SERVICES_DIR/pg" && runuser -u postgres -- "$@")
    else
        (cd "$GS_SERVICES_DIR/pg" && "$@")
    fi
}

services_ensure_tools() {
    local missing=()
    command -v python3 >/dev/null || missing+=(python3)
    command -v redis-server >/dev/null || missing+=(redis-server)
    GS_PG_BIN="$(services_find_pg_bin)"
    [ -n "$GS_PG_BIN" ] || missing+=(postgresql)
    if [ "${#missing[@]}" -gt 0 ]; then
        services_apt_install "${missing[@]}"
    fi
    GS_PG_BIN="$(services_find_pg_bin)"
    if [ -z "$GS_PG_BIN" ]; then
        services_log "PostgreSQL binaries (initdb, pg_ctl) not found"
        return 1
    fi
    if [ "$(id -u)" -eq 0 ] && ! id -u postgres >/dev/null 2>&1; then
        services_log "running as root needs the unprivileged 'postgres' system user (PostgreSQL refuses root)"
        return 1
    fi
}

services_start_redis() {
    local port i
    port="$(services_free_port)"
    mkdir -p "$GS_SERVICES_DIR/redis"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$GS_SERVICES_DIR/redis" \
        --save '' --appendonly no --databases 1024 --daemonize no \
        --logfile "$GS_SERVICES_DIR/redis/redis.log" &
    GS_REDIS_PID=$!
    for i in $(seq 1 100); do
        if ! kill -0 "$GS_REDIS_PID" 2>/dev/null; then
            services_log "redis-server exited at start; its log:"
            cat "$GS_SERVICES_DIR/redis/redis.log" >&2 || true
            GS_REDIS_PID=""
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'PING\r\n' >&3 && IFS= read -r -t 2 reply <&3 && [ "${reply%$'\r'}" = "+PONG" ]) 2>/dev/null; then
            export GIFTSTREAM_TEST_REDIS_URL="redis://127.0.0.1:$port"
            services_log "redis-server pid $GS_REDIS_PID on $GIFTSTREAM_TEST_REDIS_URL (after ${i} tries)"
            return 0
        fi
        sleep 0.1
    done
    services_log "redis-server did not answer PING on port $port within 10s"
    return 1
}

services_start_postgres() {
    local port i pg="$GS_SERVICES_DIR/pg"
    port="$(services_free_port)"
    mkdir -p "$pg/sock"
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres: "$pg"
    fi
    GS_PG_DATA="$pg/data"
    services_log "initdb ($GS_PG_BIN)"
    if ! services_as_pg "$GS_PG_BIN/initdb" --auth=trust -U giftstream -D "$GS_PG_DATA" \
        --encoding=UTF8 --locale=C --no-sync >"$GS_SERVICES_DIR/initdb.log" 2>&1; then
        services_log "initdb failed; its output:"
        cat "$GS_SERVICES_DIR/initdb.log" >&2 || true
        return 1
    fi
    # A throwaway cluster: no fsync, and WAL kept small (minimal level, a
    # checkpoint every 64 MB): each test's CREATE DATABASE writes its 7 MB
    # template copy to the WAL, and with the default 1 GB max_wal_size a
    # full scripts/test left 1 GB of WAL on disk beside 2 GB of databases.
    if ! services_as_pg "$GS_PG_BIN/pg_ctl" -D "$GS_PG_DATA" -l "$pg/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $pg/sock -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c wal_level=minimal -c max_wal_senders=0 -c max_wal_size=64MB -c min_wal_size=32MB" \
        start >"$GS_SERVICES_DIR/pg_ctl.log" 2>&1; then
        services_log "pg_ctl start failed; its output and the server log:"
        cat "$GS_SERVICES_DIR/pg_ctl.log" "$pg/postgres.log" >&2 || true
        return 1
    fi
    for i in $(seq 1 100); do
        if pg_ready_check "$port"; then
            export GIFTSTREAM_TEST_POSTGRES_URL="postgres://giftstream@127.0.0.1:$port/postgres"
            services_log "postgres on $GIFTSTREAM_TEST_POSTGRES_URL (data $GS_PG_DATA)"
            return 0
        fi
        sleep 0.1
    done
    services_log "postgres did not accept connections on port $port within 10s; server log:"
    cat "$pg/postgres.log" >&2 || true
    return 1
}

# The localstripe virtual environment (installed from PyPI on first use).
services_localstripe_venv() {
    local root build venv
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    build="${CARGO_TARGET_DIR:-$root/target}"
    venv="$build/localstripe-venv"
    if [ ! -x "$venv/bin/localstripe" ]; then
        mkdir -p "$build"
        if ! python3 -m venv "$venv" >/dev/null 2>&1; then
            rm -rf "$venv"
            services_apt_install python3-venv || return 1
            python3 -m venv "$venv" || return 1
        fi
        services_log "pip install localstripe (into $venv)"
        "$venv/bin/pip" install -q --disable-pip-version-check "localstripe==1.15.10" >&2 || return 1
    fi
    printf '%s\n' "$venv"
}

# localstripe on a free loopback port, from scratch (no state loaded).
services_start_stripe() {
    local venv port i
    venv="$(services_localstripe_venv)" || return 1
    port="$(services_free_port)"
    mkdir -p "$GS_SERVICES_DIR/stripe"
    # Its own `localstripe` command binds every interface; run its app on
    # 127.0.0.1 only, from scratch (nothing loaded from an earlier run).
    # Fixes to localstripe 1.15.10. Two for tests that run in parallel:
    # its webhook sender iterates the live endpoint dict across awaits, so
    # an endpoint registered meanwhile kills the delivery to every later
    # endpoint ("dictionary changed size during iteration"): iterate a
    # snapshot; and it posts each event to the endpoints one after another
    # with aiohttp's 5-minute default timeout, so one endpoint that accepts
    # and never answers would hold back the rest: 5 s per endpoint.
    # Third: PaymentIntent creation takes allowed_payment_method_types, the
    # parameter of the API version async-stripe pins (payment_method_types
    # is gone from it). Fourth: the fields Stripe always sends and
    # localstripe leaves out,
    # which async-stripe's generated types require (decoding fails without
    # them): on a PaymentIntent amount_capturable, amount_received,
    # confirmation_method and payment_method_types (as created); on a
    # Charge amount_captured, billing_details and disputed; on an Event
    # pending_webhooks and request, and the API version the events are
    # shaped for (async-stripe 1.0.0-rc.10 pins 2026-09-30.endive; an
    # endpoint on another version gets other shapes, which giftstream reads
    # through its own envelope instead).
    (cd "$GS_SERVICES_DIR/stripe" && exec "$venv/bin/python" -c 'import sys, functools
import aiohttp
from aiohttp import web
import localstripe.webhooks as hooks
import localstripe.resources as res
class Snapshot(dict):
    def values(self):
        return list(super().values())
hooks._webhooks = Snapshot(hooks._webhooks)
aiohttp.ClientSession = functools.partial(aiohttp.ClientSession, timeout=aiohttp.ClientTimeout(total=5))
pi_init, pi_export = res.PaymentIntent.__init__, res.PaymentIntent._export
def pi_init_full(self, *args, payment_method_types=None, allowed_payment_method_types=None, **kwargs):
    pi_init(self, *args, **kwargs)
    types = allowed_payment_method_types or payment_method_types
    if isinstance(types, dict):
        types = [v for _, v in sorted(types.items())]
    self.payment_method_types = list(types or ["card"])
    self.allowed_payment_method_types = list(types) if allowed_payment_method_types else None
def pi_export_full(self, expand=None):
    obj = pi_export(self, expand=expand)
    status = obj.get("status")
    obj.setdefault("amount_capturable", obj["amount"] if status == "requires_capture" else 0)
    obj.setdefault("amount_received", obj["amount"] if status == "succeeded" else 0)
    obj.setdefault("confirmation_method", "automatic")
    obj.setdefault("payment_method_types", ["card"])
    return obj
res.PaymentIntent.__init__, res.PaymentIntent._export = pi_init_full, pi_export_full
charge_export = res.Charge._export
def charge_export_full(self, expand=None):
    obj = charge_export(self, expand=expand)
    captured = obj.get("captured") and obj.get("status") == "succeeded"
    obj.setdefault("amount_captured", obj["amount"] if captured else 0)
    obj.setdefault("billing_details", {"address": None, "email": None, "name": None, "phone": None})
    obj.setdefault("disputed", False)
    return obj
res.Charge._export = charge_export_full
event_export = res.Event._export
def event_export_full(self, expand=None):
    obj = event_export(self, expand=expand)
    obj["api_version"] = "2026-09-30.endive"
    obj.setdefault("pending_webhooks", 1)
    obj.setdefault("request", {"id": None, "idempotency_key": None})
    return obj
res.Event._export = event_export_full
from localstripe.server import app
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)' "$port" \
        >"$GS_SERVICES_DIR/stripe/localstripe.log" 2>&1) &
    GS_STRIPE_PID=$!
    for i in $(seq 1 150); do
        if ! kill -0 "$GS_STRIPE_PID" 2>/dev/null; then
            services_log "localstripe exited at start; its log:"
            cat "$GS_SERVICES_DIR/stripe/localstripe.log" >&2 || true
            GS_STRIPE_PID=""
            return 1
        fi
        if python3 -c 'import sys, urllib.request
try:
    urllib.request.urlopen("http://127.0.0.1:%s/js.stripe.com/v3/" % sys.argv[1], timeout=1)
except Exception:
    sys.exit(1)' "$port" 2>/dev/null; then
            export GIFTSTREAM_TEST_STRIPE_URL="http://127.0.0.1:$port"
            services_log "localstripe pid $GS_STRIPE_PID on $GIFTSTREAM_TEST_STRIPE_URL (after ${i} tries)"
            return 0
        fi
        sleep 0.1
    done
    services_log "localstripe did not answer on port $port within 15s"
    return 1
}

# Whether PostgreSQL accepts connections on 127.0.0.1:$1.
pg_ready_check() {
    if [ -x "$GS_PG_BIN/pg_isready" ]; then
        "$GS_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$1" -U giftstream -d postgres -t 1
    elif command -v pg_isready >/dev/null; then
        pg_isready -q -h 127.0.0.1 -p "$1" -U giftstream -d postgres -t 1
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

# Start both services and export their URLs (see the top of this file).
services_start() {
    services_ensure_tools
    GS_SERVICES_DIR="$(mktemp -d "${TMPDIR:-/tmp}/giftstream-test.XXXXXX")"
    # The postgres user must reach its sub-directory.
    chmod 755 "$GS_SERVICES_DIR"
    services_start_redis
    services_start_postgres
    services_start_stripe
    export GIFTSTREAM_TEST_REQUIRE_SERVICES=1
}

# Start only redis-server (benchmarks) and export GIFTSTREAM_TEST_REDIS_URL.
services_start_redis_only() {
    command -v redis-server >/dev/null 2>&1 || services_apt_install redis-server || return 1
    GS_SERVICES_DIR="$(mktemp -d "${TMPDIR:-/tmp}/giftstream-bench.XXXXXX")"
    services_start_redis
}

# Stop what services_start started and remove its temp dir.
services_stop() {
    if [ -n "$GS_PG_DATA" ] && [ -f "$GS_PG_DATA/postmaster.pid" ]; then
        services_as_pg "$GS_PG_BIN/pg_ctl" -D "$GS_PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || services_as_pg "$GS_PG_BIN/pg_ctl" -D "$GS_PG_DATA" -m immediate -w -t 30 stop >/dev/null 2>&1 \
            || services_log "could not stop postgres (data $GS_PG_DATA)"
    fi
    GS_PG_DATA=""
    if [ -n "$GS_STRIPE_PID" ]; then
        kill "$GS_STRIPE_PID" 2>/dev/null || true
        wait "$GS_STRIPE_PID" 2>/dev/null || true
        GS_STRIPE_PID=""
    fi
    if [ -n "$GS_REDIS_PID" ]; then
        kill "$GS_REDIS_PID" 2>/dev/null || true
        wait "$GS_REDIS_PID" 2>/dev/null || true
        GS_REDIS_PID=""
    fi
    if [ -n "$GS_SERVICES_DIR" ] && [ -d "$GS_SERVICES_DIR" ]; then
        rm -rf "$GS_SERVICES_DIR"
    fi
    GS_SERVICES_DIR=""
    unset GIFTSTREAM_TEST_REDIS_URL GIFTSTREAM_TEST_POSTGRES_URL GIFTSTREAM_TEST_STRIPE_URL GIFTSTREAM_TEST_REQUIRE_SERVICES
}
