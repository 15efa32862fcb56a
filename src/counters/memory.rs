//! The in-process counters engine (embedded default).
//!
//! Owns: wallets, idempotency memory, per-target seq and combo streaks, and
//! the pending queue, all in this process. Atomicity comes from locks taken
//! in one fixed order — wallet, then target, then the pending queue — so a
//! gift is all or nothing and no two gifts interleave on one wallet.
//! Must not: hold a lock across an `.await`, or publish outside the target
//! lock (that is what keeps seq order equal to delivery order).

use std::collections::{HashMap, HashSet, VecDeque};

/// The maps of the gift path hash with foldhash (randomly seeded per
/// process, as hashbrown's default): SipHash of user and client ids was 6 %
/// of the server's CPU in the ingest profile.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;
type FastDashMap<K, V> = DashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use parking_lot::Mutex;

use crate::config::CountersConfig;
use crate::counters::{Counters, CountersError, Result};
use crate::model::EventSink;
use crate::model::{
    gift_value, Batch, GiftAck, GiftOutcome, GiftRequest, PendingGift, Snapshot, Target, TargetInfo,
};
use crate::protocol::GiftEvent;

#[derive(Default)]
struct Wallet {
    coins: i64,
    seen: FastMap<String, (GiftAck, u64)>,
    seen_order: VecDeque<(Instant, String)>,
}

impl Wallet {
    fn forget_old(&mut self, ttl: Duration, keys_max: usize) {
        while let Some((at, _)) = self.seen_order.front() {
            if at.elapsed() < ttl && self.seen_order.len() < keys_max {
                break;
            }
            if let Some((_, id)) = self.seen_order.pop_front() {
                self.seen.remove(&id);
            }
        }
    }

    fn remember(&mut self, id: String, ack: GiftAck, ticket: u64, at: Instant) {
        self.seen_order.push_back((at, id.clone()));
        self.seen.insert(id, (ack, ticket));
    }
}

struct TargetState {
    id: String,
    creator: String,
    live: bool,
    seq: u64,
    combos: FastMap<(String, String), (i64, u32)>,
}

/// `count_in_window` keys kept before those of past windows are swept.
const WINDOW_KEYS_SWEEP: usize = 65_536;

/// Streak entries kept per target before old ones are swept.
const COMBOS_PER_TARGET_MAX: usize = 4096;

#[derive(Default)]
struct PendingQueue {
    gifts: VecDeque<(u64, PendingGift)>,
    next_ticket: u64,
}

/// Wallets, seqs and pending credits in this process.
pub struct MemoryCounters {
    wallets: FastDashMap<String, Arc<Mutex<Wallet>>>,
    targets: FastDashMap<String, Arc<Mutex<TargetState>>>,
    pending_diamonds: FastDashMap<String, i64>,
    pending: Mutex<PendingQueue>,
    credit_ops: Mutex<FastSet<String>>,
    debit_ops: Mutex<FastMap<String, i64>>,
    /// `count_in_window`: key -> (window index, count).
    windows: Mutex<FastMap<String, (u64, u64)>>,
    sink: Arc<dyn EventSink>,
    cfg: CountersConfig,
}

impl MemoryCounters {
    /// An empty engine publishing accepted room and video gifts into `sink`.
    pub fn new(cfg: CountersConfig, sink: Arc<dyn EventSink>) -> MemoryCounters {
        MemoryCounters {
            wallets: FastDashMap::default(),
            targets: FastDashMap::default(),
            pending_diamonds: FastDashMap::default(),
            pending: Mutex::new(PendingQueue {
                gifts: VecDeque::new(),
                next_ticket: 1,
            }),
            credit_ops: Mutex::new(FastSet::default()),
            debit_ops: Mutex::new(FastMap::default()),
            windows: Mutex::new(FastMap::default()),
            sink,
            cfg,
        }
    }

    fn wallet(&self, user: &str) -> Arc<Mutex<Wallet>> {
        if let Some(w) = self.wallets.get(user) {
            return w.clone();
        }
        self.wallets.entry(user.to_string()).or_default().clone()
    }

    fn target_state(&self, target: &Target) -> Option<Arc<Mutex<TargetState>>> {
        self.targets.get(&target.key()).map(|t| t.clone())
    }

    fn unknown(target: &Target) -> CountersError {
        CountersError::UnknownTarget(target.clone())
    }
}

#[async_trait]
impl Counters for MemoryCounters {
    async fn open_target(&self, target: &Target, creator: &str, seq_floor: u64) -> Result<()> {
        let state = self
            .targets
            .entry(target.key())
            .or_insert_with(|| {
                Arc::new(Mutex::new(TargetState {
                    id: target.id.clone(),
                    creator: creator.to_string(),
                    live: true,
                    seq: 0,
                    combos: FastMap::default(),
                }))
            })
            .clone();
        let mut t = state.lock();
        if t.creator != creator {
            return Err(CountersError::Forbidden(format!(
                "`{}` belongs to another creator",
                target.id
            )));
        }
        t.live = true;
        t.seq = t.seq.max(seq_floor);
        Ok(())
    }

    async fn end_room(&self, room: &str) -> Result<()> {
        let target = Target::room(room);
        let state = self
            .target_state(&target)
            .ok_or_else(|| Self::unknown(&target))?;
        state.lock().live = false;
        Ok(())
    }

    async fn target(&self, target: &Target) -> Result<Option<TargetInfo>> {
        Ok(self.target_state(target).map(|s| {
            let t = s.lock();
            TargetInfo {
                creator: t.creator.clone(),
                live: t.live,
                seq: t.seq,
            }
        }))
    }

    async fn gift(&self, req: GiftRequest) -> Result<GiftOutcome> {
        let wallet = self.wallet(&req.sender);
        let mut w = wallet.lock();
        w.forget_old(
            Duration::from_secs(self.cfg.idempotency_ttl_s),
            self.cfg.idempotency_keys_per_wallet_max,
        );
        if let Some((ack, ticket)) = w.seen.get(&req.client_id) {
            return Ok(GiftOutcome {
                ack: ack.clone(),
                duplicate: true,
                ticket: *ticket,
            });
        }
        let state = self
            .target_state(&req.target)
            .ok_or_else(|| Self::unknown(&req.target))?;
        let mut t = state.lock();
        if !t.live {
            return Err(CountersError::NotLive(t.id.clone()));
        }
        if t.creator == req.sender {
            return Err(CountersError::Forbidden(
                "a creator cannot gift their own room or video".into(),
            ));
        }
        let (coins, diamonds) = gift_value(&req.gift, req.count);
        if w.coins < coins {
            return Err(CountersError::InsufficientFunds {
                cost: coins,
                held: w.coins,
            });
        }
        let mut pending = self.pending.lock();
        if pending.gifts.len() >= self.cfg.pending_len_max {
            return Err(CountersError::PendingFull);
        }
        // Reserve the room's or video's fan-out slot before changing
        // anything, so a full queue refuses the gift with nothing charged.
        let permit = self.sink.reserve(&req.target, &t.creator, t.seq)?;

        // Commit point: nothing below can fail.
        w.coins -= coins;
        debug_assert!(w.coins >= 0, "overdraft");
        t.seq += 1;
        let seq = t.seq;
        let window = self.cfg.combo_window_ms as i64;
        if t.combos.len() >= COMBOS_PER_TARGET_MAX {
            t.combos.retain(|_, (last, _)| req.ts - *last <= window);
        }
        let streak = t
            .combos
            .entry((req.sender.clone(), req.gift.id.clone()))
            .or_insert((i64::MIN, 0));
        streak.1 = if req.ts.saturating_sub(streak.0) <= window {
            streak.1.saturating_add(req.count)
        } else {
            req.count
        };
        streak.0 = req.ts;
        let combo = streak.1;
        *self.pending_diamonds.entry(t.creator.clone()).or_insert(0) += diamonds;
        let ticket = pending.next_ticket;
        pending.next_ticket += 1;
        pending.gifts.push_back((
            ticket,
            PendingGift {
                target: req.target.key(),
                seq,
                sender: req.sender.clone(),
                client_id: req.client_id.clone(),
                creator: t.creator.clone(),
                gift: req.gift.id.clone(),
                count: req.count,
                coins,
                diamonds,
                balance_after: w.coins,
                ts: req.ts,
                message: req.message.clone(),
            },
        ));
        drop(pending);
        let ack = GiftAck {
            id: req.client_id.clone(),
            seq,
            balance: w.coins,
        };
        w.remember(req.client_id.clone(), ack.clone(), ticket, Instant::now());
        let (room, video) = req.target.topic().fields();
        permit.send(GiftEvent {
            room,
            video,
            seq,
            id: req.client_id,
            sender: req.sender,
            gift: req.gift.id,
            count: req.count,
            combo,
            coins,
            diamonds,
            animation: req.gift.animation,
            ts: req.ts,
            message: req.message,
        });
        Ok(GiftOutcome {
            ack,
            duplicate: false,
            ticket,
        })
    }

    async fn credit(&self, user: &str, coins: i64, op_id: &str) -> Result<i64> {
        let mut ops = self.credit_ops.lock();
        let wallet = self.wallet(user);
        let mut w = wallet.lock();
        if !ops.contains(op_id) {
            w.coins = w
                .coins
                .checked_add(coins)
                .ok_or(CountersError::Invalid("balance overflow"))?;
            ops.insert(op_id.to_string());
        }
        Ok(w.coins)
    }

    async fn debit_up_to(&self, user: &str, coins: i64, op_id: &str) -> Result<i64> {
        if coins < 0 {
            return Err(CountersError::Invalid("coins must be >= 0"));
        }
        let mut ops = self.debit_ops.lock();
        if let Some(taken) = ops.get(op_id) {
            return Ok(*taken);
        }
        let wallet = self.wallet(user);
        let mut w = wallet.lock();
        let taken = coins.min(w.coins.max(0));
        w.coins -= taken;
        ops.insert(op_id.to_string(), taken);
        Ok(taken)
    }

    async fn count_in_window(&self, key: &str, window_ms: u64, max: u64) -> Result<bool> {
        let window = crate::protocol::now_ms() as u64 / window_ms.max(1);
        let mut w = self.windows.lock();
        // Counts of past windows are dropped now and then (bounded memory).
        if w.len() >= WINDOW_KEYS_SWEEP {
            w.retain(|_, (at, _)| *at >= window);
        }
        let e = w.entry(key.to_string()).or_insert((window, 0));
        if e.0 != window {
            *e = (window, 0);
        }
        e.1 += 1;
        Ok(e.1 <= max)
    }

    async fn balance(&self, user: &str) -> Result<i64> {
        Ok(self.wallets.get(user).map(|w| w.lock().coins).unwrap_or(0))
    }

    async fn pending_diamonds(&self, creator: &str) -> Result<i64> {
        Ok(self.pending_diamonds.get(creator).map(|d| *d).unwrap_or(0))
    }

    async fn pending_len(&self) -> Result<usize> {
        Ok(self.pending.lock().gifts.len())
    }

    async fn drain(&self, len_max: usize) -> Result<Option<Batch>> {
        let mut p = self.pending.lock();
        let n = p.gifts.len().min(len_max);
        if n == 0 {
            return Ok(None);
        }
        let taken: Vec<(u64, PendingGift)> = p.gifts.drain(..n).collect();
        drop(p);
        let ticket_max = taken.last().map(|(t, _)| *t).unwrap_or(0);
        Ok(Some(Batch {
            id: uuid::Uuid::now_v7().to_string(),
            gifts: taken.into_iter().map(|(_, g)| g).collect(),
            ticket_max,
        }))
    }

    async fn settled(&self, batch: &Batch) -> Result<()> {
        for g in &batch.gifts {
            if let Some(mut d) = self.pending_diamonds.get_mut(&g.creator) {
                *d -= g.diamonds;
                debug_assert!(*d >= 0, "pending diamonds below zero");
            }
        }
        Ok(())
    }

    async fn restore(&self, snapshot: Snapshot) -> Result<()> {
        for (user, coins) in snapshot.wallets {
            self.wallet(&user).lock().coins = coins;
        }
        self.credit_ops.lock().extend(snapshot.credit_ops);
        let now = Instant::now();
        for g in snapshot.recent_gifts {
            let ack = GiftAck {
                id: g.client_id.clone(),
                seq: g.seq,
                balance: g.balance_after,
            };
            self.wallet(&g.sender)
                .lock()
                .remember(g.client_id, ack, 0, now);
        }
        for (target, info) in snapshot.targets {
            self.open_target(&target, &info.creator, info.seq).await?;
            if !info.live {
                if let Some(s) = self.target_state(&target) {
                    s.lock().live = false;
                }
            }
        }
        Ok(())
    }
}
