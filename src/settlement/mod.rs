//! The settlement worker: pending counters → durable ledger, exactly once.
//!
//! Owns: the loop that every `settlement.flush_interval_ms` (or as soon as
//! `settlement.batch_len_max` gifts wait) drains one batch from the counters
//! engine, commits it to the ledger in one transaction keyed by the batch
//! id, then tells the counters engine it is settled; and the committed mark
//! that `gift.ack = "ledger"` waits on.
//! Must not: change a batch between attempts (a retry must carry the same
//! id and the same gifts), or drop a batch it could not commit while the
//! batch lives only in this process: after `settlement.retry_len_max`
//! failed attempts it stops the process (fail-stop) rather than let
//! counters and ledger drift apart. When pending gifts survive the process
//! (Redis), it releases the batch for a later re-claim instead. Which of
//! the two applies is the [`QueueHome`] chosen with the engine at build
//! time, never a question asked of the engine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::SettlementConfig;
use crate::counters::Counters;
use crate::error::{Error, Result};
use crate::ledger::Ledger;
use crate::model::{Batch, GiftOutcome};

/// Pause between two ledger look-ups while an ack waits for its commit.
const LEDGER_POLL_MS: u64 = 5;

/// Where the counters engine's pending queue lives. Chosen with the engine
/// at build time (`server::start`), it settles what settlement does where
/// the engines genuinely differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueHome {
    /// In this process (the in-process engine): this worker settles every
    /// gift the engine accepts, in ticket order, so a ledger-mode ack
    /// waits on the committed ticket; a stop drains the whole queue; a
    /// batch the ledger keeps refusing stops the process (the gifts exist
    /// nowhere else).
    Process,
    /// Shared by several processes (Redis): any node's worker may settle a
    /// gift, so a ledger-mode ack asks the ledger (`has_gift`); a stop
    /// leaves the rest to the other workers; a refused batch is released
    /// (its entries stay in the stream and are re-claimed later).
    Shared,
}

/// Handle to the worker's progress: the highest settled ticket, and a way
/// to ask for an early flush.
#[derive(Clone)]
pub struct Settlement {
    committed: watch::Receiver<u64>,
    wake: Arc<Notify>,
    home: QueueHome,
    ledger: Arc<dyn Ledger>,
}

impl Settlement {
    /// Ask the worker to flush now (e.g. a batch worth of gifts is waiting).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Wait until the gift with `ticket` is committed, at most `timeout`.
    pub async fn wait_settled(&self, ticket: u64, timeout: Duration) -> Result<()> {
        let mut rx = self.committed.clone();
        let waited = tokio::time::timeout(timeout, async {
            rx.wait_for(|c| *c >= ticket).await.map(|_| ())
        })
        .await;
        match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Error::outcome_unknown_because(
                "settlement stopped before the gift was committed",
            )),
            Err(_) => Err(Error::outcome_unknown_because(
                "the ledger commit is late (gift.ack_timeout_ms); the gift is accepted and will settle",
            )),
        }
    }

    /// Wait until the gift of `outcome`, to `target_key` (`room:ID` or
    /// `video:ID`), is in the ledger, at most `timeout` (then
    /// `outcome_unknown`): on the committed ticket when this process's
    /// worker settles every gift ([`QueueHome::Process`]), else by asking
    /// the ledger every few ms.
    pub async fn wait_durable(
        &self,
        outcome: &GiftOutcome,
        target_key: &str,
        timeout: Duration,
    ) -> Result<()> {
        if self.home == QueueHome::Process {
            return self.wait_settled(outcome.ticket, timeout).await;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.ledger.has_gift(target_key, outcome.ack.seq).await? {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::outcome_unknown_because(
                    "the ledger commit is late (gift.ack_timeout_ms); the gift is accepted and will settle",
                ));
            }
            tokio::time::sleep(Duration::from_millis(LEDGER_POLL_MS)).await;
        }
    }

    /// Wait until the committed mark moves (a batch reached the ledger, so
    /// the pending queue has room again) or `timeout` passes.
    pub async fn progressed(&self, timeout: Duration) {
        let mut rx = self.committed.clone();
        rx.borrow_and_update();
        let _ = tokio::time::timeout(timeout, rx.changed()).await;
    }

    /// The highest committed ticket.
    pub fn committed(&self) -> u64 {
        *self.committed.borrow()
    }
}

/// The worker itself.
pub struct Worker {
    counters: Arc<dyn Counters>,
    ledger: Arc<dyn Ledger>,
    cfg: SettlementConfig,
    home: QueueHome,
    committed: watch::Sender<u64>,
    wake: Arc<Notify>,
}

impl Worker {
    /// A worker and its handle, for an engine whose pending queue lives
    /// where `home` says.
    pub fn new(
        counters: Arc<dyn Counters>,
        ledger: Arc<dyn Ledger>,
        cfg: SettlementConfig,
        home: QueueHome,
    ) -> (Worker, Settlement) {
        let (tx, rx) = watch::channel(0);
        let wake = Arc::new(Notify::new());
        (
            Worker {
                counters,
                ledger: ledger.clone(),
                cfg,
                home,
                committed: tx,
                wake: wake.clone(),
            },
            Settlement {
                committed: rx,
                wake,
                home,
                ledger,
            },
        )
    }

    /// Run until `shutdown`, then drain everything pending and return.
    /// Errors only when a batch could not be committed within the retry
    /// limit: the caller must stop the process.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let interval = Duration::from_millis(self.cfg.flush_interval_ms);
        loop {
            let stopping = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = tokio::time::sleep(interval) => false,
                _ = self.wake.notified() => false,
            };
            // Drain until the queue is short of a full batch, or empty when
            // stopping with a queue that lives in this process (a shared
            // queue such as Redis's stays with the other nodes' workers).
            // Bounded by what was pending when the round began, so steady
            // load from other nodes cannot keep a worker here forever.
            let drain_all = stopping && self.home == QueueHome::Process;
            let pending_now = self.counters.pending_len().await.unwrap_or(0);
            let rounds_max = pending_now / self.cfg.batch_len_max + 2;
            for _ in 0..rounds_max {
                let full = self.flush_once().await?;
                let more_to_drain = drain_all && self.counters.pending_len().await.unwrap_or(0) > 0;
                if !full && !more_to_drain {
                    break;
                }
            }
            if stopping {
                return Ok(());
            }
        }
    }

    /// Drain and commit one batch. Returns true if the batch was full.
    pub async fn flush_once(&self) -> anyhow::Result<bool> {
        let drained = match self.counters.drain(self.cfg.batch_len_max).await {
            Ok(d) => d,
            Err(e) => return self.survivable(e.into(), "drain failed; the gifts stay pending"),
        };
        let Some(batch) = drained else {
            metrics::gauge!("giftstream_settlement_lag_seconds").set(0.0);
            return Ok(false);
        };
        let full = batch.gifts.len() >= self.cfg.batch_len_max;
        let oldest_ms = batch.gifts.first().map(|g| g.ts).unwrap_or(0);
        if let Err(e) = self.commit_with_retry(&batch).await {
            return self.survivable(
                e,
                "batch released for a later retry; the gifts stay pending",
            );
        }
        if let Err(e) = self.counters.settled(&batch).await {
            // Committed but not acknowledged: re-claimed later, and the
            // ledger skips gifts it already holds.
            return self.survivable(
                e.into(),
                "acknowledgement failed; the batch will be re-claimed",
            );
        }
        self.committed
            .send_modify(|c| *c = (*c).max(batch.ticket_max));
        metrics::counter!("giftstream_settlement_batches_total").increment(1);
        metrics::counter!("giftstream_settlement_gifts_total").increment(batch.gifts.len() as u64);
        let lag_s = (crate::protocol::now_ms() - oldest_ms).max(0) as f64 / 1000.0;
        metrics::gauge!("giftstream_settlement_lag_seconds").set(lag_s);
        Ok(full)
    }

    /// A failed step: fatal for an engine whose pending gifts live only in
    /// this process; otherwise (Redis) logged and counted, and the gifts are
    /// re-claimed after `settlement.claim_idle_ms`.
    fn survivable(&self, e: anyhow::Error, what: &str) -> anyhow::Result<bool> {
        if self.home == QueueHome::Process {
            return Err(e);
        }
        metrics::counter!("giftstream_settlement_batches_released_total").increment(1);
        tracing::error!(error = %format_args!("{e:#}"), "{what}");
        Ok(false)
    }

    async fn commit_with_retry(&self, batch: &Batch) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut backoff_ms = 10u64;
        for attempt in 1..=self.cfg.retry_len_max {
            match self.ledger.commit_batch(batch).await {
                Ok(applied) => {
                    metrics::histogram!("giftstream_settlement_commit_seconds")
                        .record(started.elapsed().as_secs_f64());
                    if !applied {
                        tracing::warn!(batch = %batch.id, "batch was already committed; not applied again");
                    }
                    return Ok(());
                }
                Err(e) => {
                    metrics::counter!("giftstream_settlement_retries_total").increment(1);
                    tracing::warn!(batch = %batch.id, attempt, error = %e.report(), "ledger commit failed; retrying the same batch");
                    tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                    backoff_ms = (backoff_ms * 2).min(self.cfg.retry_backoff_ms_max);
                }
            }
        }
        anyhow::bail!(
            "settlement: batch {} ({} gifts) not committed after {} attempts over {:?}; stopping so counters and ledger cannot drift",
            batch.id,
            batch.gifts.len(),
            self.cfg.retry_len_max,
            started.elapsed()
        )
    }
}
