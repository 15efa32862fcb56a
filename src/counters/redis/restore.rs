//! Loading Redis from the ledger's snapshot at start (and after a loss).

use super::keys::*;
use super::scripts::*;
use super::*;

impl RedisCounters {
    /// Whether Redis holds loaded giftstream state (`{gs}:marker`).
    pub async fn is_loaded(&self) -> Result<bool> {
        redis::cmd("EXISTS")
            .arg(marker_key())
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)
    }

    /// Raise the load fence before reading the ledger's snapshot for a
    /// load: credits wait (`credit.lua` answers `loading`) until the load
    /// ends ([`Self::lift_load_fence`]) or `counters.load_fence_ms` passes.
    /// A credit that reached Redis before the fence reached the ledger
    /// before it too (ledger first), so the snapshot has it; one refused
    /// by the fence is retried after the load and applied once.
    ///
    /// The fence is one entry per loader (this engine's consumer name, with
    /// its deadline on Redis's clock) in one sorted set: two loaders at
    /// once (two nodes starting after a loss, or a node and `reconcile
    /// --repair`) each hold their own, and credits wait until the last one
    /// is lifted, so the later snapshot cannot overwrite a credit made
    /// after the earlier load.
    pub async fn raise_load_fence(&self) -> Result<()> {
        self.scripts
            .fence
            .key(load_fence_key())
            .arg(&self.consumer)
            .arg(self.cfg.load_fence_ms.max(1))
            .invoke_async::<()>(&mut self.conn())
            .await
            .map_err(redis_err)
    }

    /// Lift this engine's load fence (credits apply again once no other
    /// loader holds one).
    pub async fn lift_load_fence(&self) -> Result<()> {
        redis::cmd("ZREM")
            .arg(load_fence_key())
            .arg(&self.consumer)
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(redis_err)
    }

    /// Every unsettled gift of the stream with its entry's id (a gift call's
    /// gifts share one entry), at most `counters.pending_len_max`
    /// plus one chunk.
    pub(super) async fn scan_pending(&self) -> Result<Vec<(String, PendingGift)>> {
        let mut out = Vec::new();
        let mut after = "0-0".to_string();
        let rounds_max = self.cfg.pending_len_max / SCAN_CHUNK + 2;
        for _ in 0..rounds_max {
            let entries: Vec<(String, Vec<u8>)> = self
                .scripts
                .scan
                .key(stream_key())
                .arg(&after)
                .arg(SCAN_CHUNK)
                .invoke_async(&mut self.conn())
                .await
                .map_err(redis_err)?;
            let n = entries.len();
            for (id, rows) in entries {
                for (g, _) in parse_entry(&id, &rows)? {
                    out.push((id.clone(), g));
                }
                after = id;
            }
            if n < SCAN_CHUNK {
                return Ok(out);
            }
        }
        Err(CountersError::Corrupt(
            "redis: the pending stream is longer than counters.pending_len_max allows".into(),
        ))
    }

    /// Seqs past the ledger's last gift of a target that Redis may have
    /// handed out before it lost its data: each unsettled gift
    /// (`pending_len_max` at most) and the streak end it may have caused,
    /// plus the ends of streaks open at the ledger's last gift (`slack`,
    /// from `counters::combo::restore_seq_slack`).
    fn lost_seq_gap(&self, slack: u64) -> u64 {
        (self.cfg.pending_len_max as u64)
            .saturating_mul(2)
            .saturating_add(slack)
    }

    /// [`Self::ensure_target_slack`] without the snapshot's recent gifts
    /// at hand: the streak-end slack is `pending_len_max`.
    pub(super) async fn ensure_target(&self, target: &Target, info: &TargetInfo) -> Result<()> {
        let slack = self.cfg.pending_len_max as u64;
        self.ensure_target_slack(target, info, slack).await
    }

    /// Make sure `target` exists; one missing while Redis holds state lost
    /// its data, so its seq skips [`Self::lost_seq_gap`] past the ledger's.
    pub(super) async fn ensure_target_slack(
        &self,
        target: &Target,
        info: &TargetInfo,
        slack: u64,
    ) -> Result<()> {
        let gap = if self.target(target).await?.is_none() {
            self.lost_seq_gap(slack)
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
    pub(super) async fn load(
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
        // Inbox seqs are not in the ledger: after a loss (the ledger has a
        // past), inboxes start again above any seq handed out before it
        // (see `lua/inbox_lib.lua`).
        if !snapshot.targets.is_empty() {
            let _: () = redis::cmd("SET")
                .arg(inbox_floor_key())
                .arg(crate::protocol::now_ms())
                .query_async(&mut conn)
                .await
                .map_err(redis_err)?;
        }
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
                let idz = idz_key(&g.sender);
                pipe.cmd("SET")
                    .arg(idem)
                    .arg(format!("{}:{}:0", g.seq, g.balance_after))
                    .arg("PX")
                    .arg(left_ms)
                    .ignore();
                pipe.cmd("RPUSH")
                    .arg(&idz)
                    .arg(format!("{:016}:{}", 0, g.client_id))
                    .ignore();
                pipe.cmd("PEXPIRE").arg(&idz).arg(ttl_ms).ignore();
            }
            pipe.query_async::<()>(&mut conn).await.map_err(redis_err)?;
        }
        // Gifts accepted but unsettled when Redis lost its data are gone
        // whole (with the streak ends they caused); skip every seq they
        // could have used so none is reused.
        let slack =
            crate::counters::combo::restore_seq_slack(&snapshot, self.cfg.pending_len_max as u64);
        for (target, info) in &snapshot.targets {
            let gap = self.lost_seq_gap(slack.get(&target.key()).copied().unwrap_or(0));
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
        self.lift_load_fence().await
    }

    /// [`Counters::restore`] on Redis.
    pub(super) async fn restore_from(&self, snapshot: Snapshot) -> Result<()> {
        let marker: bool = redis::cmd("EXISTS")
            .arg(marker_key())
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        if marker {
            // Redis holds live state (balances net of unsettled gifts):
            // leave it, only make sure every target exists with its floor.
            let slack = crate::counters::combo::restore_seq_slack(
                &snapshot,
                self.cfg.pending_len_max as u64,
            );
            for (target, info) in &snapshot.targets {
                let extra = slack.get(&target.key()).copied().unwrap_or(0);
                self.ensure_target_slack(target, info, extra).await?;
            }
            // Another node loaded it meanwhile: no fence of ours to keep.
            return self.lift_load_fence().await;
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
}
