//! The Redis counters engine (production, several nodes).
//!
//! Owns: wallets, idempotency answers, per-target seq and combo streaks,
//! creators' pending diamonds and the settlement stream, all in Redis under
//! the `{gs}` hash tag (one Redis Cluster slot; see `docs/REDIS.md`), the
//! Lua scripts in `src/wallet/lua/` that change them atomically, each
//! room's history stream and live stats (viewers per node, diamonds, top
//! gifters), the node's sharded pub/sub subscriptions that forward room
//! events to the local [`Hub`] ([`relay`]: only rooms open on this node),
//! and [`RedisCounters::reconcile`] (Redis versus the ledger).
//! Must not: change state with more than one round trip per operation (each
//! operation is one script, called by SHA, reloaded on `NOSCRIPT`), re-send
//! a script that is not idempotent and may have run (a gift whose reply was
//! lost surfaces as `internal`; the client retries with the same
//! idempotency id; only `settled` is re-sent, being idempotent), or write
//! the ledger.
//!
//! Round trips: every call goes through one [`ConnectionManager`], a
//! multiplexed connection, so gifts from many sockets are pipelined on it
//! (concurrent `EVALSHA`s share the socket and its writes; nobody waits
//! for another's reply before sending).
//!
//! Numbers: Lua numbers are doubles, so every amount handled by the scripts
//! (balances, coins, diamonds, seqs, timestamps) must stay below 2^53;
//! [`credit`](Counters::credit) refuses a balance above [`AMOUNT_MAX`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use serde::Serialize;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::CountersConfig;
use crate::counters::Counters;
use crate::error::{Error, ErrorCode, Result};
use crate::hub::Hub;
use crate::ledger::Ledger;
use crate::model::{
    gift_value, Batch, GiftAck, GiftOutcome, GiftRequest, PendingGift, Snapshot, Target,
    TargetInfo, TargetKind,
};
use crate::protocol::GiftEvent;

mod relay;

/// Largest balance or amount the scripts handle exactly (2^53 - 1).
pub const AMOUNT_MAX: i64 = (1 << 53) - 1;

/// Hash tag and prefix of every key (one Cluster slot, see `docs/REDIS.md`).
pub const PREFIX: &str = "{gs}:";
/// Consumer group of the settlement workers on the pending stream.
pub const GROUP: &str = "settle";
/// Batches drained by this process and not yet settled, at most. The one
/// settlement worker of a process has one in flight; older ones are dropped
/// (their entries are reclaimed by `XAUTOCLAIM` after the idle limit).
const INFLIGHT_MAX: usize = 64;
/// Attempts of the (idempotent) `settled` script before giving up.
const SETTLED_ATTEMPTS: u32 = 3;
/// Entries read per round trip while scanning the stream in reconcile.
const SCAN_CHUNK: usize = 1000;

fn key(parts: &[&str]) -> String {
    let mut k = String::from(PREFIX);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(':');
        }
        k.push_str(p);
    }
    k
}

fn wallet_key(user: &str) -> String {
    key(&["bal", user])
}
fn idem_prefix(user: &str) -> String {
    key(&["idem", user, ""])
}
fn target_key(target_key: &str) -> String {
    key(&["t", target_key])
}
fn pending_prefix() -> String {
    key(&["pd", ""])
}
fn stream_key() -> String {
    key(&["pending"])
}
fn ticket_key() -> String {
    key(&["ticket"])
}
fn credit_ops_key() -> String {
    key(&["credit_ops"])
}
fn marker_key() -> String {
    key(&["marker"])
}
/// Names of the rooms' sharded pub/sub channels, `{gs}:ev:<db>:<room>`.
///
/// Keys live in one logical database, but pub/sub channels span all of
/// them: the database number in the name keeps two deployments (or two
/// test servers) that share one `redis-server` on different databases from
/// hearing each other's rooms.
#[derive(Clone, Debug)]
pub(crate) struct Channels {
    prefix: String,
}

impl Channels {
    fn new(db: i64) -> Channels {
        Channels {
            prefix: key(&["ev", &db.to_string(), ""]),
        }
    }

    /// What every channel name starts with.
    fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A room's channel.
    fn room(&self, room: &str) -> String {
        let mut c = String::with_capacity(self.prefix.len() + room.len());
        c.push_str(&self.prefix);
        c.push_str(room);
        c
    }
}
/// A room's history stream (entry ids `<seq>-0`).
fn history_key(room: &str) -> String {
    key(&["h", "room", room])
}
/// A room's top gifters this live (sorted set, diamonds per user).
fn top_key(room: &str) -> String {
    key(&["top", "room", room])
}
/// A room's viewers per node (hash, node id -> `count:ts ms`).
fn viewers_key(room: &str) -> String {
    key(&["vw", "room", room])
}

fn redis_err(e: redis::RedisError) -> Error {
    metrics::counter!("giftstream_redis_errors_total").increment(1);
    Error::internal(format_args!("redis: {e}"))
}

/// The error of a script that changes state (a gift, a credit): when the
/// command may have reached Redis and only its reply was lost (the
/// connection dropped or timed out), the script may have run:
/// `outcome_unknown` (the retry with the same id answers what happened).
/// A refused connection or an error answer from Redis changed nothing:
/// `internal`.
fn script_err(e: redis::RedisError) -> Error {
    let lost_reply = (e.is_io_error() || e.is_timeout() || e.is_connection_dropped())
        && !e.is_connection_refusal();
    if lost_reply {
        metrics::counter!("giftstream_redis_errors_total").increment(1);
        Error::outcome_unknown_because(format_args!("redis: {e}"))
    } else {
        redis_err(e)
    }
}

fn parse<T: std::str::FromStr>(v: Option<&String>, what: &str) -> Result<T> {
    v.and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::internal(format_args!("redis: bad `{what}` in a script answer")))
}

struct Scripts {
    gift: Script,
    credit: Script,
    target_put: Script,
    end_room: Script,
    drain: Script,
    settled: Script,
    pending_len: Script,
    scan: Script,
    set_value: Script,
    last_delivered: Script,
    history: Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            gift: Script::new(include_str!("../lua/gift.lua")),
            credit: Script::new(include_str!("../lua/credit.lua")),
            target_put: Script::new(include_str!("../lua/target_put.lua")),
            end_room: Script::new(include_str!("../lua/end_room.lua")),
            drain: Script::new(include_str!("../lua/drain.lua")),
            settled: Script::new(include_str!("../lua/settled.lua")),
            pending_len: Script::new(include_str!("../lua/pending_len.lua")),
            scan: Script::new(include_str!("../lua/scan.lua")),
            set_value: Script::new(include_str!("../lua/set_balance.lua")),
            last_delivered: Script::new(include_str!("../lua/last_delivered.lua")),
            history: Script::new(include_str!("../lua/history.lua")),
        }
    }
}

/// One stream entry of a batch: what `settled` needs to acknowledge it.
struct EntryRef {
    id: String,
    creator: String,
    diamonds: i64,
}

/// The head of a [`GiftEvent`] as JSON, without `seq` and `combo` (the
/// script appends them once it knows them).
#[derive(Serialize)]
struct EventHead<'a> {
    room: &'a str,
    id: &'a str,
    sender: &'a str,
    gift: &'a str,
    count: u32,
    coins: i64,
    diamonds: i64,
    animation: &'a str,
    ts: i64,
}

/// Wallets, seqs and pending credits in Redis, shared by every node.
pub struct RedisCounters {
    conn: ConnectionManager,
    cfg: CountersConfig,
    scripts: Scripts,
    consumer: String,
    claim_idle_ms: u64,
    claim_cursor: Mutex<String>,
    inflight: Mutex<VecDeque<(String, Vec<EntryRef>)>>,
    hub_cfg: crate::config::HubConfig,
    channels: Channels,
    _subscriber: DropGuard,
}

/// What [`RedisCounters::reconcile`] found (and fixed, with `repair`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Redis held no giftstream state (lost: restart without persistence,
    /// FLUSHALL).
    pub redis_empty: bool,
    /// Wallets compared.
    pub wallets_checked: usize,
    /// Gifts in the stream and not yet in the ledger.
    pub pending_gifts: usize,
    /// Wallets whose Redis balance + unsettled coins differ from the ledger:
    /// (user, Redis view, ledger balance).
    pub wallet_drift: Vec<(String, i64, i64)>,
    /// Creators whose pending diamonds differ from the diamonds of their
    /// unacknowledged stream entries: (creator, Redis counter, sum).
    pub pending_drift: Vec<(String, i64, i64)>,
    /// Credit op ids in the ledger that Redis does not know as applied.
    pub credit_ops_missing: usize,
    /// Targets in the ledger missing in Redis.
    pub targets_missing: usize,
    /// Whether Redis was repaired.
    pub repaired: bool,
    /// Items a repair skipped because a gift changed them meanwhile (run
    /// again).
    pub repair_skipped: usize,
}

impl ReconcileReport {
    /// Number of drifting items (0 when Redis agrees with the ledger).
    pub fn drift(&self) -> usize {
        self.wallet_drift.len()
            + self.pending_drift.len()
            + self.credit_ops_missing
            + self.targets_missing
            + usize::from(self.redis_empty)
    }
}

impl RedisCounters {
    /// Connect to `url` (`redis://` or `rediss://`), load the scripts, and
    /// start the node's relay: a sharded subscription to each room open in
    /// `hub` (events forwarded in seq order, gaps filled from the room's
    /// history stream) and the room stats across nodes. History and stats
    /// bounds come from `hub`'s configuration. Returns once the relay's
    /// connection is up.
    pub async fn connect(
        url: &str,
        cfg: CountersConfig,
        hub: Arc<Hub>,
    ) -> anyhow::Result<RedisCounters> {
        let client = redis::Client::open(url)?;
        let channels = Channels::new(client.get_connection_info().redis_settings().db());
        let timeout = Duration::from_millis(cfg.redis_timeout_ms);
        let mcfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let mut conn = client.get_connection_manager_with_config(mcfg).await?;
        let scripts = Scripts::new();
        for s in [
            &scripts.gift,
            &scripts.credit,
            &scripts.target_put,
            &scripts.end_room,
            &scripts.drain,
            &scripts.settled,
            &scripts.pending_len,
            &scripts.scan,
            &scripts.set_value,
            &scripts.last_delivered,
            &scripts.history,
        ] {
            s.prepare_invoke().load_async(&mut conn).await?;
        }
        let stop = CancellationToken::new();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let hub_cfg = hub.config().clone();
        hub.set_relayed();
        let consumer = format!("c-{}", uuid::Uuid::now_v7().simple());
        let relay = relay::Relay {
            client: relay::resp3(&client)?,
            conn: conn.clone(),
            hub: hub.clone(),
            backoff_max: Duration::from_millis(cfg.redis_reconnect_ms_max),
            timeout,
            queue_len_max: cfg.relay_queue_len_max,
            history_len_max: hub_cfg.history_len_max,
            channels: channels.clone(),
        };
        tokio::spawn(relay.run(stop.clone(), ready_tx));
        tokio::spawn(relay::stats_loop(relay::StatsLoop {
            conn: conn.clone(),
            hub,
            node: consumer.clone(),
            interval: Duration::from_millis(hub_cfg.stats_interval_ms),
            ttl_ms: cfg.viewers_ttl_ms,
            stop: stop.clone(),
        }));
        match tokio::time::timeout(timeout, ready_rx).await {
            Ok(Ok(())) => {}
            _ => {
                stop.cancel();
                anyhow::bail!("redis: could not connect the room-event relay within {timeout:?}")
            }
        }
        Ok(RedisCounters {
            conn,
            cfg,
            scripts,
            consumer,
            claim_idle_ms: 30_000,
            claim_cursor: Mutex::new("0-0".into()),
            inflight: Mutex::new(VecDeque::new()),
            hub_cfg,
            channels,
            _subscriber: stop.drop_guard(),
        })
    }

    /// Claim another consumer's entries once they are idle this long
    /// (`settlement.claim_idle_ms`; the default is 30000).
    pub fn with_claim_idle_ms(mut self, ms: u64) -> RedisCounters {
        self.claim_idle_ms = ms;
        self
    }

    /// This process's consumer name in the settlement group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn unknown(target: &Target) -> Error {
        match target.kind {
            TargetKind::Room => {
                Error::new(ErrorCode::UnknownRoom, format!("no room `{}`", target.id))
            }
            TargetKind::Video => {
                Error::new(ErrorCode::UnknownVideo, format!("no video `{}`", target.id))
            }
        }
    }

    async fn put_target(
        &self,
        target: &Target,
        creator: &str,
        floor: u64,
        live: bool,
        force_live: bool,
    ) -> Result<()> {
        let reply: Vec<String> = self
            .scripts
            .target_put
            .key(target_key(&target.key()))
            .arg(creator)
            .arg(floor)
            .arg(if live { "1" } else { "0" })
            .arg(if force_live { "1" } else { "0" })
            .arg(match target.kind {
                TargetKind::Room => top_key(&target.id),
                TargetKind::Video => String::new(),
            })
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        match reply.first().map(String::as_str) {
            Some("OK") => Ok(()),
            Some("E") => Err(Error::forbidden(format!(
                "`{}` belongs to another creator",
                target.id
            ))),
            _ => Err(Error::internal("redis: bad target_put answer")),
        }
    }

    /// Every unsettled entry of the stream, at most `counters.pending_len_max`
    /// plus one chunk.
    async fn scan_pending(&self) -> Result<Vec<(String, PendingGift)>> {
        let mut out = Vec::new();
        let mut after = "0-0".to_string();
        let rounds_max = self.cfg.pending_len_max / SCAN_CHUNK + 2;
        for _ in 0..rounds_max {
            let rows: Vec<Vec<String>> = self
                .scripts
                .scan
                .key(stream_key())
                .arg(&after)
                .arg(SCAN_CHUNK)
                .invoke_async(&mut self.conn())
                .await
                .map_err(redis_err)?;
            let n = rows.len();
            for row in rows {
                let (id, g, _) = parse_entry(&row)?;
                after = id.clone();
                out.push((id, g));
            }
            if n < SCAN_CHUNK {
                return Ok(out);
            }
        }
        Err(Error::internal(
            "redis: the pending stream is longer than counters.pending_len_max allows",
        ))
    }

    /// The `<x>` of every key `<prefix><x>` (wallets, pending diamonds), at
    /// most `counters.reconcile_wallets_max` of them. The loop ends when
    /// SCAN's cursor returns to 0, which Redis guarantees after a full pass.
    async fn scan_suffixes(&self, prefix: &str) -> Result<Vec<String>> {
        let mut conn = self.conn();
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        let pattern = format!("{prefix}*");
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(redis_err)?;
            out.extend(
                keys.iter()
                    .filter_map(|k| k.strip_prefix(prefix).map(str::to_string)),
            );
            if out.len() > self.cfg.reconcile_wallets_max {
                return Err(Error::internal(format_args!(
                    "redis: more than counters.reconcile_wallets_max keys under `{prefix}`"
                )));
            }
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }

    async fn get_i64(&self, k: &str) -> Result<Option<i64>> {
        redis::cmd("GET")
            .arg(k)
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)
    }

    /// GET of many counters, `SCAN_CHUNK` keys per MGET round trip.
    async fn get_many(&self, keys: impl Iterator<Item = String>) -> Result<Vec<Option<i64>>> {
        let keys: Vec<String> = keys.collect();
        let mut out = Vec::with_capacity(keys.len());
        let mut conn = self.conn();
        for chunk in keys.chunks(SCAN_CHUNK) {
            let vals: Vec<Option<i64>> = redis::cmd("MGET")
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .map_err(redis_err)?;
            out.extend(vals);
        }
        Ok(out)
    }

    async fn compare_and_set(&self, k: &str, seen: Option<i64>, new: i64) -> Result<bool> {
        let seen = seen.map(|v| v.to_string()).unwrap_or_default();
        let n: i64 = self
            .scripts
            .set_value
            .key(k)
            .arg(seen)
            .arg(new)
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(n == 1)
    }

    /// Make sure `target` exists; one missing while Redis holds state lost
    /// its data, so its seq skips `pending_len_max` past the ledger's.
    async fn ensure_target(&self, target: &Target, info: &TargetInfo) -> Result<()> {
        let gap = if self.target(target).await?.is_none() {
            self.cfg.pending_len_max as u64
        } else {
            0
        };
        self.put_target(
            target,
            &info.creator,
            info.seq.saturating_add(gap),
            info.live,
            false,
        )
        .await
    }

    /// Load Redis from a ledger snapshot (Redis lost its data): wallets are
    /// the ledger's minus the coins of gifts in the stream and not in the
    /// ledger, pending diamonds those of every stream entry (each is
    /// decremented when acknowledged), then credit ops,
    /// idempotency answers and targets; the state marker is set last.
    async fn load(
        &self,
        snapshot: Snapshot,
        unsettled_coins: &HashMap<String, i64>,
        stream_diamonds: &BTreeMap<String, i64>,
    ) -> Result<()> {
        let mut conn = self.conn();
        tracing::warn!(
            wallets = snapshot.wallets.len(),
            "redis holds no giftstream state; loading it from the ledger"
        );
        for chunk in snapshot.wallets.chunks(SCAN_CHUNK) {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for (user, coins) in chunk {
                let held = (coins - unsettled_coins.get(user).copied().unwrap_or(0)).max(0);
                pipe.cmd("SET").arg(wallet_key(user)).arg(held).ignore();
            }
            pipe.query_async::<()>(&mut conn).await.map_err(redis_err)?;
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (creator, d) in stream_diamonds {
            pipe.cmd("SET")
                .arg(format!("{}{creator}", pending_prefix()))
                .arg(*d)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await.map_err(redis_err)?;
        for chunk in snapshot.credit_ops.chunks(SCAN_CHUNK) {
            let _: i64 = redis::cmd("SADD")
                .arg(credit_ops_key())
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .map_err(redis_err)?;
        }
        let now = crate::protocol::now_ms();
        let ttl_ms = self
            .cfg
            .idempotency_ttl_s
            .saturating_mul(1000)
            .min(i64::MAX as u64) as i64;
        for chunk in snapshot.recent_gifts.chunks(SCAN_CHUNK) {
            let mut pipe = redis::pipe();
            for g in chunk {
                let left_ms = ttl_ms - (now - g.ts).max(0);
                if left_ms <= 0 {
                    continue;
                }
                let idem = format!("{}{}", idem_prefix(&g.sender), g.client_id);
                let idz = key(&["idz", &g.sender]);
                pipe.cmd("SET")
                    .arg(idem)
                    .arg(format!("{}:{}:0", g.seq, g.balance_after))
                    .arg("PX")
                    .arg(left_ms)
                    .ignore();
                pipe.cmd("ZADD")
                    .arg(&idz)
                    .arg(g.ts)
                    .arg(format!("{:016}:{}", 0, g.client_id))
                    .ignore();
                pipe.cmd("PEXPIRE").arg(&idz).arg(ttl_ms).ignore();
            }
            pipe.query_async::<()>(&mut conn).await.map_err(redis_err)?;
        }
        // Gifts accepted but unsettled when Redis lost its data are gone
        // whole; skip up to `pending_len_max` seqs so none is reused.
        let gap = self.cfg.pending_len_max as u64;
        for (target, info) in &snapshot.targets {
            self.put_target(
                target,
                &info.creator,
                info.seq.saturating_add(gap),
                info.live,
                true,
            )
            .await?;
        }
        let _: () = redis::cmd("SET")
            .arg(marker_key())
            .arg("1")
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    /// Compare Redis with the ledger (the system of record) and, with
    /// `repair`, fix Redis.
    ///
    /// Per wallet, Redis's balance plus the coins of its unsettled gifts
    /// (stream entries not yet in the ledger) must equal the ledger's
    /// balance; per creator, pending diamonds must equal the unsettled
    /// entries' diamonds; every credit op and target in the ledger must be
    /// known to Redis. When Redis holds no giftstream state at all (lost),
    /// a repair restores it from the ledger ([`Counters::restore`]). Other
    /// repairs are compare-and-set, so a gift racing the repair wins and the
    /// item is counted in `repair_skipped`. Sets the
    /// `giftstream_reconcile_drift` gauge.
    pub async fn reconcile(&self, ledger: &dyn Ledger, repair: bool) -> Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        let recent_ms =
            (self.cfg.idempotency_ttl_s.saturating_mul(1000)).min(i64::MAX as u64) as i64;
        let snapshot = ledger.snapshot(recent_ms, 0).await?;
        let mut conn = self.conn();
        let marker: bool = redis::cmd("EXISTS")
            .arg(marker_key())
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        report.redis_empty =
            !marker && (!snapshot.wallets.is_empty() || !snapshot.targets.is_empty());

        // Unsettled entries: in the stream and not yet in the ledger. Only
        // entries already handed to a worker (up to the group's last
        // delivered id) can be in the ledger; only those are looked up.
        let last_delivered: String = self
            .scripts
            .last_delivered
            .key(stream_key())
            .arg(GROUP)
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        let last_delivered = stream_id(&last_delivered);
        let mut unsettled_coins: HashMap<String, i64> = HashMap::new();
        // Pending diamonds cover every entry not yet acknowledged, committed
        // or not (`settled` decrements them on the acknowledgement).
        let mut stream_diamonds: BTreeMap<String, i64> = BTreeMap::new();
        for (id, g) in self.scan_pending().await? {
            *stream_diamonds.entry(g.creator.clone()).or_default() += g.diamonds;
            let delivered =
                matches!((stream_id(&id), last_delivered), (Some(i), Some(l)) if i <= l);
            if delivered && ledger.has_gift(&g.target, g.seq).await? {
                continue;
            }
            report.pending_gifts += 1;
            *unsettled_coins.entry(g.sender.clone()).or_default() += g.coins;
        }

        let mut ledger_wallets: BTreeMap<String, i64> = snapshot.wallets.iter().cloned().collect();
        for user in self.scan_suffixes(&wallet_key("")).await? {
            ledger_wallets.entry(user).or_insert(0);
        }
        for user in unsettled_coins.keys() {
            ledger_wallets.entry(user.clone()).or_insert(0);
        }
        let mut fixes: Vec<(String, Option<i64>, i64)> = Vec::new();
        let users: Vec<&String> = ledger_wallets.keys().collect();
        let held_all = self.get_many(users.iter().map(|u| wallet_key(u))).await?;
        for (user, held) in users.into_iter().zip(held_all) {
            let ledger_coins = ledger_wallets.get(user).copied().unwrap_or(0);
            report.wallets_checked += 1;
            let pending = unsettled_coins.get(user).copied().unwrap_or(0);
            let view = held.unwrap_or(0) + pending;
            if view != ledger_coins {
                report.wallet_drift.push((user.clone(), view, ledger_coins));
                fixes.push((wallet_key(user), held, ledger_coins - pending));
            }
        }
        let mut creators: BTreeMap<String, i64> = stream_diamonds.clone();
        let pd_prefix = pending_prefix();
        for c in self.scan_suffixes(&pd_prefix).await? {
            creators.entry(c).or_insert(0);
        }
        let held_all = self
            .get_many(creators.keys().map(|c| format!("{pd_prefix}{c}")))
            .await?;
        for ((creator, expected), held) in creators.iter().zip(held_all) {
            if held.unwrap_or(0) != *expected {
                report
                    .pending_drift
                    .push((creator.clone(), held.unwrap_or(0), *expected));
                fixes.push((format!("{pd_prefix}{creator}"), held, *expected));
            }
        }
        let mut missing_ops = Vec::new();
        for chunk in snapshot.credit_ops.chunks(SCAN_CHUNK) {
            let known: Vec<bool> = redis::cmd("SMISMEMBER")
                .arg(credit_ops_key())
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .map_err(redis_err)?;
            missing_ops.extend(
                chunk
                    .iter()
                    .zip(known)
                    .filter(|(_, k)| !k)
                    .map(|(op, _)| op.clone()),
            );
        }
        report.credit_ops_missing = missing_ops.len();
        for (target, _) in &snapshot.targets {
            if self.target(target).await?.is_none() {
                report.targets_missing += 1;
            }
        }

        if repair && report.drift() > 0 {
            if report.redis_empty {
                self.load(snapshot, &unsettled_coins, &stream_diamonds)
                    .await?;
            } else {
                for (k, seen, new) in fixes {
                    if !self.compare_and_set(&k, seen, new).await? {
                        report.repair_skipped += 1;
                    }
                }
                for chunk in missing_ops.chunks(SCAN_CHUNK) {
                    let _: i64 = redis::cmd("SADD")
                        .arg(credit_ops_key())
                        .arg(chunk)
                        .query_async(&mut conn)
                        .await
                        .map_err(redis_err)?;
                }
                for (target, info) in &snapshot.targets {
                    self.ensure_target(target, info).await?;
                }
            }
            report.repaired = true;
        }
        metrics::gauge!("giftstream_reconcile_drift").set(report.drift() as f64);
        if report.drift() > 0 {
            tracing::warn!(?report, "redis and the ledger disagree");
        }
        Ok(report)
    }
}

/// A stream id `ms-seq` as a comparable pair.
fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Deterministic batch id from its entry ids (FNV-1a over every id, plus
/// the first and last id and the count), so a re-claimed batch with the
/// same entries carries the same id.
fn batch_id(ids: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for id in ids {
        for b in id.bytes().chain(std::iter::once(b',')) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let first = ids.first().copied().unwrap_or("");
    let last = ids.last().copied().unwrap_or("");
    format!("redis:{first}:{last}:{}:{h:016x}", ids.len())
}

/// One row of `drain.lua` / `scan.lua`: id, then the gift's fields.
fn parse_entry(row: &[String]) -> Result<(String, PendingGift, u64)> {
    let id = row
        .first()
        .cloned()
        .ok_or_else(|| Error::internal("redis: empty stream entry"))?;
    let s = |i: usize| {
        row.get(i).cloned().ok_or_else(|| {
            Error::internal(format_args!("redis: stream entry {id} lacks field {i}"))
        })
    };
    let g = PendingGift {
        target: s(1)?,
        seq: parse(row.get(2), "seq")?,
        sender: s(3)?,
        client_id: s(4)?,
        creator: s(5)?,
        gift: s(6)?,
        count: parse(row.get(7), "count")?,
        coins: parse(row.get(8), "coins")?,
        diamonds: parse(row.get(9), "diamonds")?,
        balance_after: parse(row.get(10), "balance")?,
        ts: parse(row.get(11), "ts")?,
    };
    let ticket = parse(row.get(12), "ticket")?;
    Ok((id, g, ticket))
}

/// A room message that is not a gift event, for this node's hub (`decode`
/// is why it did not decode as a gift event).
async fn on_control(hub: &Hub, room: &str, payload: &[u8], decode: serde_json::Error) {
    match serde_json::from_slice::<RoomControl>(payload) {
        Ok(RoomControl::RoomEnded) => hub.end_room(room).await,
        Ok(RoomControl::TipEvent(t)) => hub.broadcast(room, t.into()).await,
        Err(_) => {
            tracing::warn!(room, error = %decode, "redis: undecodable room event skipped")
        }
    }
}

/// Room messages on the event channel other than gift events.
#[derive(serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RoomControl {
    /// Published by `end_room.lua`: end the room on this node.
    RoomEnded,
    /// A tip (published by `publish_room_msg`): broadcast it in the room.
    TipEvent(TipEventBody),
}

/// The fields of a published `tip_event` (as `ServerMsg::TipEvent`).
#[derive(serde::Deserialize)]
struct TipEventBody {
    room: String,
    sender: String,
    amount_cents: i64,
    currency: String,
    message: String,
    ts: i64,
}

impl From<TipEventBody> for crate::protocol::ServerMsg {
    fn from(t: TipEventBody) -> Self {
        crate::protocol::ServerMsg::TipEvent {
            room: t.room,
            sender: t.sender,
            amount_cents: t.amount_cents,
            currency: t.currency,
            message: t.message,
            ts: t.ts,
        }
    }
}

#[async_trait]
impl Counters for RedisCounters {
    async fn open_target(&self, target: &Target, creator: &str, seq_floor: u64) -> Result<()> {
        self.put_target(target, creator, seq_floor, true, true)
            .await
    }

    async fn end_room(&self, room: &str) -> Result<()> {
        let target = Target::room(room);
        let n: i64 = self
            .scripts
            .end_room
            .key(target_key(&target.key()))
            .arg(self.channels.room(room))
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        if n == 0 {
            return Err(Self::unknown(&target));
        }
        Ok(())
    }

    async fn target(&self, target: &Target) -> Result<Option<TargetInfo>> {
        let (creator, live, seq): (Option<String>, Option<String>, Option<u64>) =
            redis::cmd("HMGET")
                .arg(target_key(&target.key()))
                .arg("creator")
                .arg("live")
                .arg("seq")
                .query_async(&mut self.conn())
                .await
                .map_err(redis_err)?;
        Ok(creator.map(|creator| TargetInfo {
            creator,
            live: live.as_deref() == Some("1"),
            seq: seq.unwrap_or(0),
        }))
    }

    async fn gift(&self, req: GiftRequest) -> Result<GiftOutcome> {
        let (coins, diamonds) = gift_value(&req.gift, req.count);
        let tkey = req.target.key();
        let (channel, head, hist, top) = match req.target.kind {
            TargetKind::Room => {
                let head = EventHead {
                    room: &req.target.id,
                    id: &req.client_id,
                    sender: &req.sender,
                    gift: &req.gift.id,
                    count: req.count,
                    coins,
                    diamonds,
                    animation: &req.gift.animation,
                    ts: req.ts,
                };
                let mut json = serde_json::to_string(&head).map_err(Error::internal)?;
                json.pop(); // the closing brace; the script appends seq and combo
                (
                    self.channels.room(&req.target.id),
                    json,
                    history_key(&req.target.id),
                    top_key(&req.target.id),
                )
            }
            TargetKind::Video => (String::new(), String::new(), String::new(), String::new()),
        };
        let idem = idem_prefix(&req.sender);
        let reply: Vec<String> = self
            .scripts
            .gift
            .key(format!("{idem}{}", req.client_id))
            .key(key(&["idz", &req.sender]))
            .key(wallet_key(&req.sender))
            .key(target_key(&tkey))
            .key(key(&["combo", &tkey, &req.sender, &req.gift.id]))
            .key(stream_key())
            .key(ticket_key())
            .arg(&req.client_id)
            .arg(req.ts)
            .arg(self.cfg.idempotency_ttl_s)
            .arg(self.cfg.idempotency_keys_per_wallet_max)
            .arg(coins)
            .arg(diamonds)
            .arg(req.count)
            .arg(&req.sender)
            .arg(&req.gift.id)
            .arg(&tkey)
            .arg(self.cfg.combo_window_ms)
            .arg(self.cfg.pending_len_max)
            .arg(pending_prefix())
            .arg(&channel)
            .arg(&head)
            .arg(&idem)
            .arg(&hist)
            .arg(self.hub_cfg.history_len_max)
            .arg(self.hub_cfg.history_age_ms_max)
            .arg(&top)
            .arg(self.hub_cfg.room_gifters_max)
            .invoke_async(&mut self.conn())
            .await
            .map_err(script_err)?;
        match reply.first().map(String::as_str) {
            Some("OK") => {
                let seq = parse(reply.get(1), "seq")?;
                let balance = parse(reply.get(2), "balance")?;
                let ticket = parse(reply.get(3), "ticket")?;
                Ok(GiftOutcome {
                    ack: GiftAck {
                        id: req.client_id,
                        seq,
                        balance,
                    },
                    duplicate: false,
                    ticket,
                })
            }
            Some("DUP") => {
                let answer = reply.get(1).map(String::as_str).unwrap_or("");
                let parts: Vec<String> = answer.split(':').map(str::to_string).collect();
                let seq = parse(parts.first(), "seq")?;
                let balance = parse(parts.get(1), "balance")?;
                let ticket = parse(parts.get(2), "ticket")?;
                Ok(GiftOutcome {
                    ack: GiftAck {
                        id: req.client_id,
                        seq,
                        balance,
                    },
                    duplicate: true,
                    ticket,
                })
            }
            Some("E") => Err(match reply.get(1).map(String::as_str) {
                Some("unknown") => Self::unknown(&req.target),
                Some("room_not_live") => Error::new(
                    ErrorCode::RoomNotLive,
                    format!("room `{}` is not live", req.target.id),
                ),
                Some("forbidden") => {
                    Error::forbidden("a creator cannot gift their own room or video")
                }
                Some("insufficient_funds") => {
                    let held: i64 = parse(reply.get(2), "balance")?;
                    Error::new(
                        ErrorCode::InsufficientFunds,
                        format!("gift costs {coins} coins, wallet holds {held}"),
                    )
                }
                Some("rate_limited") => Error::new(
                    ErrorCode::RateLimited,
                    "settlement is behind; try again shortly",
                ),
                _ => Error::internal("redis: unknown gift script error"),
            }),
            _ => Err(Error::outcome_unknown_because(
                "redis: bad gift script answer",
            )),
        }
    }

    async fn credit(&self, user: &str, coins: i64, op_id: &str) -> Result<i64> {
        if coins.unsigned_abs() > AMOUNT_MAX as u64 {
            return Err(Error::bad_request("balance overflow"));
        }
        let reply: Vec<String> = self
            .scripts
            .credit
            .key(wallet_key(user))
            .key(credit_ops_key())
            .arg(op_id)
            .arg(coins)
            .arg(AMOUNT_MAX)
            .invoke_async(&mut self.conn())
            .await
            .map_err(script_err)?;
        match reply.first().map(String::as_str) {
            Some("OK") => parse(reply.get(1), "balance"),
            Some("E") => Err(Error::bad_request("balance overflow")),
            _ => Err(Error::internal("redis: bad credit script answer")),
        }
    }

    async fn count_in_window(&self, key: &str, window_ms: u64, max: u64) -> Result<bool> {
        let window_ms = window_ms.max(1);
        let window = crate::protocol::now_ms() as u64 / window_ms;
        let k = self::key(&["win", key, &window.to_string()]);
        let (n, _): (u64, i64) = redis::pipe()
            .atomic()
            .incr(&k, 1)
            .pexpire(&k, (window_ms * 2) as i64)
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(n <= max)
    }

    async fn balance(&self, user: &str) -> Result<i64> {
        Ok(self.get_i64(&wallet_key(user)).await?.unwrap_or(0))
    }

    async fn debit_up_to(&self, user: &str, coins: i64, op_id: &str) -> Result<i64> {
        static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
        let script = SCRIPT.get_or_init(|| Script::new(include_str!("../lua/debit_up_to.lua")));
        if !(0..=AMOUNT_MAX).contains(&coins) {
            return Err(Error::bad_request("coins out of range"));
        }
        let taken: i64 = script
            .key(wallet_key(user))
            .key(key(&["debit_ops"]))
            .arg(op_id)
            .arg(coins)
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(taken)
    }

    async fn publish_room_msg(&self, room: &str, msg: &crate::protocol::ServerMsg) -> Result<bool> {
        let payload = serde_json::to_string(msg).map_err(Error::internal)?;
        // Sharded, like gift events: only nodes with the room open listen.
        let _: i64 = redis::cmd("SPUBLISH")
            .arg(self.channels.room(room))
            .arg(payload)
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(true)
    }

    async fn pending_diamonds(&self, creator: &str) -> Result<i64> {
        Ok(self
            .get_i64(&format!("{}{creator}", pending_prefix()))
            .await?
            .unwrap_or(0))
    }

    async fn pending_len(&self) -> Result<usize> {
        let n: i64 = self
            .scripts
            .pending_len
            .key(stream_key())
            .arg(GROUP)
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(n.max(0) as usize)
    }

    async fn drain(&self, len_max: usize) -> Result<Option<Batch>> {
        if len_max == 0 {
            return Ok(None);
        }
        let cursor = self.claim_cursor.lock().clone();
        let (next, rows): (String, Vec<Vec<String>>) = self
            .scripts
            .drain
            .key(stream_key())
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(len_max)
            .arg(self.claim_idle_ms)
            .arg(&cursor)
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        *self.claim_cursor.lock() = next;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut gifts = Vec::with_capacity(rows.len());
        let mut refs = Vec::with_capacity(rows.len());
        let mut ticket_max = 0;
        for row in &rows {
            let (id, g, ticket) = parse_entry(row)?;
            ticket_max = ticket_max.max(ticket);
            refs.push(EntryRef {
                id,
                creator: g.creator.clone(),
                diamonds: g.diamonds,
            });
            gifts.push(g);
        }
        let ids: Vec<&str> = refs.iter().map(|r| r.id.as_str()).collect();
        let id = batch_id(&ids);
        let mut inflight = self.inflight.lock();
        inflight.retain(|(b, _)| *b != id);
        if inflight.len() >= INFLIGHT_MAX {
            if let Some((old, _)) = inflight.pop_front() {
                tracing::warn!(batch = %old, "redis: forgetting an unsettled batch; its entries will be reclaimed");
            }
        }
        inflight.push_back((id.clone(), refs));
        Ok(Some(Batch {
            id,
            gifts,
            ticket_max,
        }))
    }

    async fn settled(&self, batch: &Batch) -> Result<()> {
        let refs = {
            let mut inflight = self.inflight.lock();
            let at = inflight.iter().position(|(b, _)| *b == batch.id);
            at.and_then(|i| inflight.remove(i)).map(|(_, r)| r)
        };
        let Some(refs) = refs else {
            return Err(Error::internal(format_args!(
                "batch {} was not drained by this engine",
                batch.id
            )));
        };
        // `settled.lua` is idempotent (a decrement only follows an XACK
        // that answered 1), so unlike the gift script it may be re-sent
        // after a lost reply: a few attempts ride out a Redis blip.
        let mut backoff = Duration::from_millis(50);
        let mut last_err = None;
        for attempt in 1..=SETTLED_ATTEMPTS {
            let mut inv = self.scripts.settled.key(stream_key());
            inv.arg(GROUP).arg(pending_prefix());
            for r in &refs {
                inv.arg(&r.id).arg(&r.creator).arg(r.diamonds);
            }
            match inv.invoke_async::<i64>(&mut self.conn()).await {
                Ok(acked) => {
                    if acked < refs.len() as i64 {
                        tracing::info!(batch = %batch.id, acked, entries = refs.len(), "redis: part of the batch was already settled by another worker");
                    }
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(batch = %batch.id, attempt, error = %e, "redis: settling the batch failed");
                    last_err = Some(e);
                    if attempt < SETTLED_ATTEMPTS {
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                    }
                }
            }
        }
        // Keep the entries so a later `settled` for this batch can finish.
        self.inflight.lock().push_back((batch.id.clone(), refs));
        Err(last_err
            .map(redis_err)
            .unwrap_or_else(|| Error::internal("redis: settling failed")))
    }

    async fn restore(&self, snapshot: Snapshot) -> Result<()> {
        let marker: bool = redis::cmd("EXISTS")
            .arg(marker_key())
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        if marker {
            // Redis holds live state (balances net of unsettled gifts):
            // leave it, only make sure every target exists with its floor.
            for (target, info) in &snapshot.targets {
                self.ensure_target(target, info).await?;
            }
            return Ok(());
        }
        // Without the ledger at hand every entry still in the stream counts
        // as unsettled: a balance can only come out too low (never an
        // overdraft); `reconcile --repair` then tops it up.
        let mut coins: HashMap<String, i64> = HashMap::new();
        let mut diamonds: BTreeMap<String, i64> = BTreeMap::new();
        for (_, g) in self.scan_pending().await? {
            *coins.entry(g.sender.clone()).or_default() += g.coins;
            *diamonds.entry(g.creator.clone()).or_default() += g.diamonds;
        }
        self.load(snapshot, &coins, &diamonds).await
    }

    fn settles_by_ticket(&self) -> bool {
        false
    }

    fn pending_survives_process(&self) -> bool {
        true
    }

    fn relays_room_events(&self) -> bool {
        true
    }

    async fn other_nodes_viewers(&self, room: &str) -> Result<u64> {
        let counts: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(viewers_key(room))
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(relay::fresh_viewers(
            &counts,
            &self.consumer,
            crate::protocol::now_ms(),
            self.cfg.viewers_ttl_ms,
        ))
    }

    async fn history(&self, room: &str, since: u64) -> Result<Option<Vec<GiftEvent>>> {
        let age_ms = self.hub_cfg.history_age_ms_max.min(i64::MAX as u64) as i64;
        let reply: Vec<String> = self
            .scripts
            .history
            .key(history_key(room))
            .key(target_key(&Target::room(room).key()))
            .arg(since)
            .arg(self.hub_cfg.history_len_max)
            .arg(crate::protocol::now_ms().saturating_sub(age_ms))
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        match reply.first().map(String::as_str) {
            Some("OK") => reply
                .get(2..)
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    serde_json::from_str::<GiftEvent>(e)
                        .map_err(|e| Error::internal(format_args!("redis: bad history entry: {e}")))
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some("GONE") => Err(Error::new(
                ErrorCode::HistoryGone,
                format!(
                    "history of `{room}` starts at seq {}; resume since {since} is gone",
                    reply.get(1).map(String::as_str).unwrap_or("?")
                ),
            )),
            _ => Err(Error::internal("redis: bad history answer")),
        }
    }
}
