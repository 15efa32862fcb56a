//! Redis versus the ledger: what drifted, and the repair.

use super::keys::*;
use super::scripts::*;
use super::*;
use crate::model::GiftRecords;

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
    /// The settlement stream's gift counts (`<stream>:n` unsettled,
    /// `<stream>:d` delivered to a worker) that differ from its entries:
    /// (count key, Redis count, gifts in the entries).
    pub stream_count_drift: Vec<(String, i64, i64)>,
    /// Credit op ids in the ledger that Redis does not know as applied.
    pub credit_ops_missing: usize,
    /// Targets in the ledger missing in Redis.
    pub targets_missing: usize,
    /// Creators whose follower count differs from the ledger's edges:
    /// (creator, Redis count, ledger count).
    pub follower_drift: Vec<(String, i64, i64)>,
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
            + self.stream_count_drift.len()
            + self.credit_ops_missing
            + self.targets_missing
            + self.follower_drift.len()
            + usize::from(self.redis_empty)
    }
}

impl RedisCounters {
    /// The `<x>` of every key `<prefix><x>` (wallets, pending diamonds), at
    /// most `counters.reconcile_wallets_max` of them. The loop ends when
    /// SCAN's cursor returns to 0, which Redis guarantees after a full pass.
    pub(super) async fn scan_suffixes(&self, prefix: &str) -> Result<Vec<String>> {
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
                return Err(CountersError::Corrupt(format!(
                    "redis: more than counters.reconcile_wallets_max keys under `{prefix}`"
                )));
            }
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }

    /// GET of many counters, `SCAN_CHUNK` keys per MGET round trip.
    pub(super) async fn get_many(
        &self,
        keys: impl Iterator<Item = String>,
    ) -> Result<Vec<Option<i64>>> {
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

    pub(super) async fn compare_and_set(
        &self,
        k: &str,
        seen: Option<i64>,
        new: i64,
    ) -> Result<bool> {
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
    ///
    /// A repair raises the load fence ([`Self::raise_load_fence`]) before
    /// reading the ledger, so no credit lands between the snapshot and the
    /// writes: a load (Redis lost its data) would overwrite it with the
    /// older balance, and a compare-and-set repair would compare against
    /// the balance it already holds and set the snapshot's. Credits wait
    /// for the repair (seconds, an operator's action); gifts do not.
    pub async fn reconcile<L: GiftRecords + ?Sized>(
        &self,
        ledger: &L,
        repair: bool,
    ) -> Result<ReconcileReport> {
        if !repair {
            return self.reconcile_once(ledger, repair).await;
        }
        self.raise_load_fence().await?;
        let r = self.reconcile_once(ledger, repair).await;
        // Lifted by the load; also when there was nothing to load or it failed.
        self.lift_load_fence().await?;
        r
    }

    async fn reconcile_once<L: GiftRecords + ?Sized>(
        &self,
        ledger: &L,
        repair: bool,
    ) -> Result<ReconcileReport> {
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
        let (mut stream_gifts, mut delivered_gifts) = (0i64, 0i64);
        for (id, g) in self.scan_pending().await? {
            *stream_diamonds.entry(g.creator.clone()).or_default() += g.diamonds;
            let delivered =
                matches!((stream_id(&id), last_delivered), (Some(i), Some(l)) if i <= l);
            stream_gifts += 1;
            delivered_gifts += i64::from(delivered);
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
        let [unsettled_key, delivered_key] = stream_count_keys();
        let counts = [
            (unsettled_key, stream_gifts),
            (delivered_key, delivered_gifts),
        ];
        let held_all = self.get_many(counts.iter().map(|(k, _)| k.clone())).await?;
        for ((k, expected), held) in counts.into_iter().zip(held_all) {
            if held.unwrap_or(0) != expected {
                report
                    .stream_count_drift
                    .push((k.clone(), held.unwrap_or(0), expected));
                fixes.push((k, held, expected));
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

        // Follower counts: compared (and repaired) on their own, Redis read
        // before the ledger (see `reconcile_followers`).
        let (follower_drift, skipped) = self.reconcile_followers(ledger, repair).await?;
        report.follower_drift = follower_drift;
        report.repair_skipped += skipped;

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
pub(super) fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}
