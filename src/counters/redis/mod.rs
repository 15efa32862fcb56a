//! The Redis counters engine (production, several nodes).
//!
//! Owns: wallets, idempotency answers, per-target seq and combo streaks,
//! creators' pending diamonds and the settlement stream, all in Redis under
//! the `{gs}` hash tag (one Redis Cluster slot; see `docs/REDIS.md`), the
//! Lua scripts in `src/counters/lua/` that change them atomically
//! (`scripts`; key names in `keys`; the gift in `gift`, the load from the
//! ledger in `restore`, drain and acknowledge in `settle`, follower counts
//! in `followers`), each room's
//! and video's history stream, and [`RedisCounters::reconcile`] (Redis versus the
//! ledger, `reconcile`).
//! The node's sharded pub/sub subscriptions that forward room events to
//! this node's rooms, `resume`'s history reads and the viewer counts are
//! the relay's (`crate::relay::redis`), which reads what this engine
//! writes: this engine never imports the hub or the relay.
//! Must not: import the hub, the ledger or the app; change state with more
//! than one round trip per operation (each operation is one script, called
//! by SHA, reloaded on `NOSCRIPT`); re-send a script that is not idempotent
//! and may have run (a gift whose reply was lost surfaces as `internal`;
//! the client retries with the same idempotency id; only `settled` is
//! re-sent, being idempotent); or write the ledger.
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
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use serde::Serialize;

use crate::config::{CountersConfig, HubConfig};
use crate::counters::{Counters, CountersError, Result};
use crate::model::{
    gift_value, Batch, GiftAck, GiftOutcome, GiftRequest, PendingGift, Snapshot, StreakEnd, Target,
    TargetInfo, TargetKind,
};

mod batch;
mod blocks;
mod combo;
mod followers;
mod gift;
pub(crate) mod keys;
mod messages;
mod reconcile;
mod restore;
mod scripts;
mod settle;

use keys::*;
pub use reconcile::ReconcileReport;
use scripts::*;

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

/// One stream entry of a batch (a gift call's gifts): what `settled`
/// needs to acknowledge it.
struct EntryRef {
    id: String,
    /// Gifts in the entry.
    gifts: usize,
    /// Diamonds per creator, summed over the entry's gifts.
    diamonds: Vec<(String, i64)>,
}

/// The head of a [`crate::protocol::GiftEvent`] as JSON, without `seq` and `combo` (the
/// script appends them once it knows them).
#[derive(Serialize, Clone, Copy)]
struct EventHead<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    room: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    video: Option<&'a str>,
    id: &'a str,
    sender: &'a str,
    gift: &'a str,
    count: u32,
    coins: i64,
    diamonds: i64,
    animation: &'a str,
    ts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
}

/// Wallets, seqs and pending credits in Redis, shared by every node.
pub struct RedisCounters {
    client: redis::Client,
    conn: ConnectionManager,
    cfg: CountersConfig,
    scripts: Scripts,
    consumer: String,
    claim_idle_ms: u64,
    claim_cursor: Mutex<String>,
    inflight: Mutex<VecDeque<(String, Vec<EntryRef>)>>,
    hub_cfg: HubConfig,
    channels: Channels,
    /// Sends gifts in batches (`counters.gift_batch_len_max` > 1), else none:
    /// one script call per gift.
    batcher: Option<batch::Batcher>,
    /// Stops this node's streak reaper when the engine is dropped.
    _reaper: tokio_util::sync::DropGuard,
}

impl RedisCounters {
    /// Connect to `url` (`redis://` or `rediss://`) and load the scripts.
    /// The rooms' history bounds and gifters cap come from `hub_cfg`. Room
    /// events reach a node's rooms through `crate::relay::redis`, started
    /// beside this engine.
    pub async fn connect(
        url: &str,
        cfg: CountersConfig,
        hub_cfg: HubConfig,
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
            &scripts.gift_batch,
            &scripts.credit,
            &scripts.target_put,
            &scripts.end_room,
            &scripts.drain,
            &scripts.settled,
            &scripts.pending_len,
            &scripts.scan,
            &scripts.set_value,
            &scripts.last_delivered,
        ] {
            s.prepare_invoke().load_async(&mut conn).await?;
        }
        let consumer = format!("c-{}", uuid::Uuid::now_v7().simple());
        // Every node runs a streak reaper (the due zset in Redis is the
        // timer, so a streak whose node died is ended by another); it
        // stops when this engine is dropped.
        let reaper = tokio_util::sync::CancellationToken::new();
        combo::spawn_reaper(conn.clone(), &cfg, reaper.clone());
        let batcher = (cfg.gift_batch_len_max > 1).then(|| {
            batch::Batcher::spawn(
                conn.clone(),
                scripts.gift_batch.clone(),
                cfg.gift_batch_len_max,
                cfg.gift_batches_in_flight_max,
            )
        });
        Ok(RedisCounters {
            client,
            conn,
            cfg,
            scripts,
            consumer,
            claim_idle_ms: 30_000,
            claim_cursor: Mutex::new("0-0".into()),
            inflight: Mutex::new(VecDeque::new()),
            hub_cfg,
            channels,
            batcher,
            _reaper: reaper.drop_guard(),
        })
    }

    /// Claim another consumer's entries once they are idle this long
    /// (`settlement.claim_idle_ms`; the default is 30000).
    pub fn with_claim_idle_ms(mut self, ms: u64) -> RedisCounters {
        self.claim_idle_ms = ms;
        self
    }

    /// Gift script calls this node's batcher sent and the gifts in them
    /// (`counters.gift_batch_len_max` > 1; else (0, 0)): diagnostics, and
    /// the tests' proof that gifts were batched.
    pub fn gift_batch_stats(&self) -> (u64, u64) {
        self.batcher.as_ref().map_or((0, 0), |b| b.stats())
    }

    /// This process's consumer name in the settlement group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// What the node's relay (`crate::relay::redis`) shares with this
    /// engine: its client, its multiplexed connection (one command
    /// connection per node) and its configuration.
    pub(crate) fn relay_link(&self) -> (redis::Client, ConnectionManager, &CountersConfig) {
        (self.client.clone(), self.conn(), &self.cfg)
    }

    fn unknown(target: &Target) -> CountersError {
        CountersError::UnknownTarget(target.clone())
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
            Some("E") => Err(CountersError::Forbidden(format!(
                "`{}` belongs to another creator",
                target.id
            ))),
            _ => Err(CountersError::Corrupt(
                "redis: bad target_put answer".into(),
            )),
        }
    }

    async fn get_i64(&self, k: &str) -> Result<Option<i64>> {
        redis::cmd("GET")
            .arg(k)
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)
    }
}

/// One entry of `drain.lua` / `scan.lua` (see `lua/stream_lib.lua`): its
/// id and its gifts' rows (MessagePack), as (gift, ticket) pairs.
fn parse_entry(id: &str, rows: &[u8]) -> Result<Vec<(PendingGift, u64)>> {
    let rows: Vec<Vec<String>> = rmp_serde::from_slice(rows)
        .map_err(|e| CountersError::Corrupt(format!("redis: stream entry {id}: {e}")))?;
    rows.iter().map(|row| parse_row(id, row)).collect()
}

/// One gift's row of a stream entry: t, s, u, c, r, g, n, co, d, b, ts, k, m.
fn parse_row(id: &str, row: &[String]) -> Result<(PendingGift, u64)> {
    let s = |i: usize| {
        row.get(i).cloned().ok_or_else(|| {
            CountersError::Corrupt(format!("redis: stream entry {id} lacks field {i}"))
        })
    };
    let g = PendingGift {
        target: s(0)?,
        seq: parse(row.get(1), "seq")?,
        sender: s(2)?,
        client_id: s(3)?,
        creator: s(4)?,
        gift: s(5)?,
        count: parse(row.get(6), "count")?,
        coins: parse(row.get(7), "coins")?,
        diamonds: parse(row.get(8), "diamonds")?,
        balance_after: parse(row.get(9), "balance")?,
        ts: parse(row.get(10), "ts")?,
        message: row.get(12).filter(|m| !m.is_empty()).cloned(),
    };
    let ticket = parse(row.get(11), "ticket")?;
    Ok((g, ticket))
}

#[async_trait]
impl Counters for RedisCounters {
    async fn message_slot(&self, key: &str, interval_ms: u64) -> Result<bool> {
        self.message_slot_op(key, interval_ms).await
    }

    async fn gift_message(
        &self,
        target: &Target,
        message_id: &str,
        ref_seq: Option<u64>,
        message: &str,
    ) -> Result<u64> {
        self.gift_message_op(target, message_id, ref_seq, message)
            .await
    }

    async fn open_target(&self, target: &Target, creator: &str, seq_floor: u64) -> Result<()> {
        self.put_target(target, creator, seq_floor, true, true)
            .await
    }

    async fn end_room(&self, room: &str) -> Result<()> {
        self.end_room_op(room).await
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
        self.gift_op(req).await
    }

    fn gift_group_len_max(&self) -> usize {
        if self.batcher.is_some() {
            self.cfg.gift_batch_len_max
        } else {
            1
        }
    }

    async fn gift_group(&self, reqs: Vec<GiftRequest>) -> Vec<Result<GiftOutcome>> {
        self.gift_group_op(reqs).await
    }

    async fn credit(&self, user: &str, coins: i64, op_id: &str) -> Result<i64> {
        if coins.unsigned_abs() > AMOUNT_MAX as u64 {
            return Err(CountersError::Invalid("balance overflow"));
        }
        let reply: Vec<String> = self
            .scripts
            .credit
            .key(wallet_key(user))
            .key(credit_ops_key())
            .key(load_fence_key())
            .arg(op_id)
            .arg(coins)
            .arg(AMOUNT_MAX)
            .invoke_async(&mut self.conn())
            .await
            .map_err(script_err)?;
        match reply.first().map(String::as_str) {
            Some("OK") => parse(reply.get(1), "balance"),
            Some("E") if reply.get(1).map(String::as_str) == Some("loading") => {
                Err(CountersError::Loading)
            }
            Some("E") => Err(CountersError::Invalid("balance overflow")),
            _ => Err(CountersError::Corrupt(
                "redis: bad credit script answer".into(),
            )),
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
            return Err(CountersError::Invalid("coins out of range"));
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

    async fn unsettled_len(&self) -> Result<usize> {
        let [n, _] = stream_count_keys();
        match self.get_i64(&n).await? {
            Some(n) => Ok(n.max(0) as usize),
            // A stream written before the counts: its undelivered entries.
            None => self.pending_len().await,
        }
    }

    async fn drain(&self, len_max: usize) -> Result<Option<Batch>> {
        self.drain_op(len_max).await
    }

    async fn settled(&self, batch: &Batch) -> Result<()> {
        self.settled_op(batch).await
    }

    async fn restore(&self, snapshot: Snapshot) -> Result<()> {
        self.restore_from(snapshot).await
    }

    async fn streak_ends(&self, len_max: usize) -> Result<Vec<StreakEnd>> {
        self.streak_ends_op(len_max).await
    }

    async fn streak_ends_done(&self, ids: &[String]) -> Result<()> {
        self.streak_ends_done_op(ids).await
    }

    async fn followers(&self, creator: &str) -> Result<i64> {
        self.followers_op(creator).await
    }

    async fn adjust_followers(&self, creator: &str, delta: i64) -> Result<i64> {
        self.adjust_followers_op(creator, delta).await
    }

    async fn set_followers(&self, counts: &[(String, i64)]) -> Result<()> {
        self.set_followers_op(counts, false).await.map(|_| ())
    }

    async fn restore_followers(&self, counts: &[(String, i64)]) -> Result<bool> {
        self.set_followers_op(counts, true).await
    }
}
