//! The in-process counters engine (embedded default).
//!
//! Owns: wallets, idempotency memory, per-target seq and combo streaks
//! (with their due-time index and the reaper that ends them, see
//! [`MemoryCounters::spawn_combo_reaper`] and `counters::combo`), and the
//! pending queue, all in this process. Atomicity comes from locks taken in
//! one fixed order — wallet, then target, then the pending queue, then the
//! streak due index — so a gift is all or nothing and no two gifts
//! interleave on one wallet.
//! Must not: hold a lock across an `.await`, or publish outside the target
//! lock (that is what keeps seq order equal to delivery order; the one
//! exception is ending a room, after which the target takes no seq).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

/// The maps of the gift path hash with foldhash (randomly seeded per
/// process, as hashbrown's default): SipHash of user and client ids was 6 %
/// of the server's CPU in the ingest profile.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;
type FastDashMap<K, V> = DashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use parking_lot::Mutex;

use crate::config::CountersConfig;
use crate::counters::combo::{self, Streak};
use crate::counters::{Counters, CountersError, Result, BLOCKED};
use crate::error::ErrorCode;
use crate::model::EventSink;
use crate::model::{
    gift_value, Batch, GiftAck, GiftOutcome, GiftRequest, PendingGift, Snapshot, StreakEnd, Target,
    TargetInfo, TargetKind,
};
use crate::protocol::{ComboEnd, GiftEvent};

mod blocks;
mod gift;
mod messages;
mod seen;
#[cfg(test)]
mod tests;

struct Wallet {
    /// Whose it is (shared by its pending gifts and open streaks).
    user: Arc<str>,
    coins: i64,
    /// The gifts it paid for, by client id key (`memory::seen`).
    seen: seen::Seen,
}

struct TargetState {
    kind: TargetKind,
    id: String,
    /// `room:ID` or `video:ID` (shared by its pending gifts and due
    /// streaks).
    key: Arc<str>,
    creator: Arc<str>,
    live: bool,
    seq: u64,
    /// Open streaks by sender (one per sender; see `counters::combo`).
    streaks: FastMap<Arc<str>, Streak>,
}

impl TargetState {
    /// The room or video this is.
    fn target(&self) -> Target {
        Target {
            kind: self.kind,
            id: self.id.clone(),
        }
    }
}

/// `count_in_window` keys kept before those of past windows are swept.
const WINDOW_KEYS_SWEEP: usize = 65_536;

/// Attempts (10 ms apart) to queue a streak end of a room being ended.
const END_ROOM_ATTEMPTS: u32 = 500;

/// The streak due index: (due ms, target key, sender).
type DueIndex = BTreeSet<(i64, Arc<str>, Arc<str>)>;

/// A pending gift as the queue keeps it: the strings many gifts share
/// (target, sender, creator) are shared, not copied, and the others are
/// boxed to their length. At `counters.pending_len_max` (200,000) gifts
/// this is the queue's memory: a [`PendingGift`] with its five strings
/// took about 340 bytes, this about 190. `drain` builds the
/// [`PendingGift`]s of a batch.
struct Queued {
    ticket: u64,
    target: Arc<str>,
    seq: u64,
    sender: Arc<str>,
    client_id: Box<str>,
    creator: Arc<str>,
    gift: Box<str>,
    count: u32,
    coins: i64,
    diamonds: i64,
    balance_after: i64,
    ts: i64,
    message: Option<Box<str>>,
}

impl Queued {
    /// The gift as settlement takes it.
    fn to_pending(&self) -> PendingGift {
        PendingGift {
            target: self.target.to_string(),
            seq: self.seq,
            sender: self.sender.to_string(),
            client_id: self.client_id.to_string(),
            creator: self.creator.to_string(),
            gift: self.gift.to_string(),
            count: self.count,
            coins: self.coins,
            diamonds: self.diamonds,
            balance_after: self.balance_after,
            ts: self.ts,
            message: self.message.as_deref().map(str::to_string),
        }
    }
}

#[derive(Default)]
struct PendingQueue {
    gifts: VecDeque<Queued>,
    next_ticket: u64,
    /// Gifts drained into batches not yet `settled`.
    in_flight: usize,
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
    /// Open streaks by due time, for the reaper.
    due: Mutex<DueIndex>,
    sink: Arc<dyn EventSink>,
    /// Streak ends for `combo_end` webhooks.
    streak_ends: super::streak_queue::StreakQueue,
    followers: super::followers::FollowerCounts,
    /// Per-viewer message slots (`message_slot`).
    marks: messages::MessageMarks,
    /// Creators' blocked users (checked by `gift`; `memory::blocks`).
    blocks: blocks::BlockSets,
    /// Client id keys and the clock of the idempotency memory.
    ids: seen::IdKeys,
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
                in_flight: 0,
            }),
            credit_ops: Mutex::new(FastSet::default()),
            debit_ops: Mutex::new(FastMap::default()),
            windows: Mutex::new(FastMap::default()),
            due: Mutex::new(DueIndex::new()),
            sink,
            streak_ends: super::streak_queue::StreakQueue::new(cfg.streak_end_queue_len_max),
            followers: Default::default(),
            marks: messages::MessageMarks::default(),
            blocks: Default::default(),
            ids: seen::IdKeys::new(),
            cfg,
        }
    }

    fn wallet(&self, user: &str) -> Arc<Mutex<Wallet>> {
        if let Some(w) = self.wallets.get(user) {
            return w.clone();
        }
        self.wallets
            .entry(user.to_string())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Wallet {
                    user: user.into(),
                    coins: 0,
                    seen: seen::Seen::default(),
                }))
            })
            .clone()
    }

    fn target_state(&self, target: &Target) -> Option<Arc<Mutex<TargetState>>> {
        self.targets.get(&target.key()).map(|t| t.clone())
    }

    fn unknown(target: &Target) -> CountersError {
        CountersError::UnknownTarget(target.clone())
    }
}

impl MemoryCounters {
    /// Start the streak reaper: every `counters.combo_reap_interval_ms` it
    /// ends the streaks that are due ([`MemoryCounters::reap_combos`]). It
    /// stops once the engine is dropped.
    pub fn spawn_combo_reaper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = Duration::from_millis(self.cfg.combo_reap_interval_ms.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(me) = weak.upgrade() else {
                    return;
                };
                me.reap_combos(crate::protocol::now_ms());
            }
        });
    }

    /// End the streaks whose due time is before `now_ms`, oldest first, at
    /// most `counters.combo_reap_batch_max`; each `combo_end` has `ts` =
    /// its due time. A streak whose room queue is full stays for the next
    /// run. Answers how many ended.
    pub fn reap_combos(&self, now_ms: i64) -> usize {
        let window = self.cfg.combo_window_ms;
        let batch: Vec<(i64, Arc<str>, Arc<str>)> = {
            let mut due = self.due.lock();
            let mut out = Vec::new();
            while out.len() < self.cfg.combo_reap_batch_max {
                match due.first() {
                    Some(e) if e.0 < now_ms => out.extend(due.pop_first()),
                    _ => break,
                }
            }
            out
        };
        let mut ended = 0;
        for (at, tkey, sender) in batch {
            let Some(state) = self.targets.get(&*tkey).map(|t| t.clone()) else {
                continue;
            };
            let mut t = state.lock();
            if t.streaks.get(&*sender).map(|s| s.due_ms(window)) != Some(at) {
                continue; // gone or extended (its new entry is indexed)
            }
            if combo::publishes_events(t.kind) {
                let target = t.target();
                match self.sink.reserve(&target, &t.creator, t.seq) {
                    Ok(permit) => {
                        if let Some(streak) = t.streaks.remove(&*sender) {
                            t.seq += 1;
                            let end = streak.end(&target, &sender, t.seq, at);
                            self.streak_ends.push(&t.creator, &end);
                            permit.send(end);
                        }
                    }
                    Err(e) if e.code == ErrorCode::RateLimited => {
                        self.due.lock().insert((at, tkey, sender));
                        continue;
                    }
                    // The room is not open in the hub: nobody to tell.
                    Err(_) => {
                        t.streaks.remove(&*sender);
                    }
                }
            } else {
                t.streaks.remove(&*sender);
            }
            ended += 1;
        }
        if ended > 0 {
            metrics::counter!("giftstream_combo_ends_total").increment(ended as u64);
        }
        ended
    }

    /// Remove every streak of `t` and answer their ends, in seq order,
    /// each with a new seq if the target publishes events; `ts` =
    /// `now_ms`, or the due time of a streak already due.
    fn take_streaks(&self, t: &mut TargetState, now_ms: i64) -> Vec<ComboEnd> {
        let window = self.cfg.combo_window_ms;
        let publish = combo::publishes_events(t.kind);
        let mut streaks: Vec<(Arc<str>, Streak)> = t.streaks.drain().collect();
        streaks.sort_unstable_by_key(|(_, s)| s.seq_last);
        let mut due = self.due.lock();
        let mut out = Vec::new();
        for (sender, s) in streaks {
            let at = s.due_ms(window);
            due.remove(&(at, t.key.clone(), sender.clone()));
            if publish {
                t.seq += 1;
                let end = s.end(&t.target(), &sender, t.seq, now_ms.min(at));
                self.streak_ends.push(&t.creator, &end);
                out.push(end);
            }
        }
        out
    }

    /// Queue a streak end of a room that takes no more seqs (it is being
    /// ended), waiting while its queue is full (at most
    /// `END_ROOM_ATTEMPTS` × 10 ms); dropped if the room is not open here.
    async fn publish_late(&self, room: &str, end: ComboEnd) {
        for _ in 0..END_ROOM_ATTEMPTS {
            match self.sink.reserve(&Target::room(room), "", 0) {
                Ok(permit) => {
                    permit.send(end);
                    metrics::counter!("giftstream_combo_ends_total").increment(1);
                    return;
                }
                Err(e) if e.code == ErrorCode::RateLimited => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(_) => return,
            }
        }
        tracing::warn!(
            room,
            seq = end.seq,
            "a streak end did not fit the room's queue; dropped"
        );
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
                    kind: target.kind,
                    id: target.id.clone(),
                    key: target.key().into(),
                    creator: creator.into(),
                    live: true,
                    seq: 0,
                    streaks: FastMap::default(),
                }))
            })
            .clone();
        let mut t = state.lock();
        if &*t.creator != creator {
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
        // Not live any more: no gift takes a seq after this, and every
        // gift before it is published (under this lock), so the streak
        // ends may be queued after the lock is released, in seq order,
        // before the caller ends the hub's room.
        let ends = {
            let mut t = state.lock();
            t.live = false;
            self.take_streaks(&mut t, crate::protocol::now_ms())
        };
        for end in ends {
            self.publish_late(room, end).await;
        }
        Ok(())
    }

    async fn target(&self, target: &Target) -> Result<Option<TargetInfo>> {
        Ok(self.target_state(target).map(|s| {
            let t = s.lock();
            TargetInfo {
                creator: t.creator.to_string(),
                live: t.live,
                seq: t.seq,
            }
        }))
    }

    async fn gift(&self, req: GiftRequest) -> Result<GiftOutcome> {
        self.gift_op(req)
    }

    async fn message_slot(&self, key: &str, interval_ms: u64) -> Result<bool> {
        Ok(self
            .marks
            .claim(key, interval_ms, crate::protocol::now_ms()))
    }

    async fn gift_message(
        &self,
        target: &Target,
        message_id: &str,
        ref_seq: Option<u64>,
        message: &str,
    ) -> Result<u64> {
        self.gift_message_op(target, message_id, ref_seq, message)
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

    async fn remembered_len(&self) -> Result<Option<usize>> {
        Ok(Some(self.wallets.iter().map(|w| w.lock().seen.len()).sum()))
    }

    async fn pending_len(&self) -> Result<usize> {
        Ok(self.pending.lock().gifts.len())
    }

    async fn unsettled_len(&self) -> Result<usize> {
        let p = self.pending.lock();
        Ok(p.gifts.len() + p.in_flight)
    }

    async fn drain(&self, len_max: usize) -> Result<Option<Batch>> {
        let mut p = self.pending.lock();
        let n = p.gifts.len().min(len_max);
        if n == 0 {
            return Ok(None);
        }
        let taken: Vec<Queued> = p.gifts.drain(..n).collect();
        p.in_flight += n;
        drop(p);
        let ticket_max = taken.last().map(|g| g.ticket).unwrap_or(0);
        Ok(Some(Batch {
            id: uuid::Uuid::now_v7().to_string(),
            gifts: taken.iter().map(Queued::to_pending).collect(),
            ticket_max,
        }))
    }

    async fn settled(&self, batch: &Batch) -> Result<()> {
        {
            let mut p = self.pending.lock();
            debug_assert!(
                p.in_flight >= batch.gifts.len(),
                "settled more than drained"
            );
            p.in_flight = p.in_flight.saturating_sub(batch.gifts.len());
        }
        for g in &batch.gifts {
            if let Some(mut d) = self.pending_diamonds.get_mut(&g.creator) {
                *d -= g.diamonds;
                debug_assert!(*d >= 0, "pending diamonds below zero");
            }
        }
        Ok(())
    }

    async fn restore(&self, snapshot: Snapshot) -> Result<()> {
        // Streak ends took seqs the ledger does not know (it keeps gifts).
        let slack = combo::restore_seq_slack(&snapshot, self.cfg.pending_len_max as u64);
        for (user, coins) in snapshot.wallets {
            self.wallet(&user).lock().coins = coins;
        }
        self.credit_ops.lock().extend(snapshot.credit_ops);
        let now_s = self.ids.now_s();
        for g in snapshot.recent_gifts {
            let key = self.ids.key(&g.client_id);
            let answer = seen::Answer {
                seq: g.seq,
                balance: g.balance_after,
                ticket: 0,
            };
            let wallet = self.wallet(&g.sender);
            let mut w = wallet.lock();
            if w.seen.get(&key).is_none() {
                w.seen.remember(key, now_s, answer);
            }
        }
        for (target, info) in snapshot.targets {
            let floor = info
                .seq
                .saturating_add(slack.get(&target.key()).copied().unwrap_or(0));
            self.open_target(&target, &info.creator, floor).await?;
            if !info.live {
                if let Some(s) = self.target_state(&target) {
                    s.lock().live = false;
                }
            }
        }
        Ok(())
    }

    async fn streak_ends(&self, len_max: usize) -> Result<Vec<StreakEnd>> {
        Ok(self.streak_ends.peek(len_max))
    }

    async fn streak_ends_done(&self, ids: &[String]) -> Result<()> {
        self.streak_ends.done(ids);
        Ok(())
    }

    async fn followers(&self, creator: &str) -> Result<i64> {
        Ok(self.followers.get(creator))
    }

    async fn adjust_followers(&self, creator: &str, delta: i64) -> Result<i64> {
        Ok(self.followers.adjust(creator, delta))
    }

    async fn set_followers(&self, counts: &[(String, i64)]) -> Result<()> {
        self.followers.set_all(counts);
        Ok(())
    }

    async fn restore_followers(&self, counts: &[(String, i64)]) -> Result<bool> {
        self.followers.set_all(counts);
        Ok(true)
    }
}
