//! `combo_end` webhooks: streak ends are no ledger transaction, so they
//! reach the outbox through the counters engine's queue of streak ends
//! (Redis: the `{gs}:whq` stream, written in the same script that ends the
//! streak; in process: a bounded queue), moved by every node's pump.
//!
//! Owns: [`pump`]: take queued streak ends, write those of subscribed
//! creators to the outbox under an event id that names the streak end
//! (`combo_end:<room|video>:<id>:<seq>`, so a redelivered entry writes
//! nothing), then acknowledge them. At least once: an entry is
//! acknowledged only after its outbox write (or when nobody subscribes).
//! Must not: deliver (the endpoint tasks do) or decide subscriptions
//! without the ledger.

use crate::counters::Counters;
use crate::ledger::outbox::WebhookStore;
use crate::model::StreakEnd;

/// Streak ends taken per pump step.
pub const BATCH_LEN: usize = 512;
/// Pump steps per worker round at most (a round drains up to
/// `BATCH_LEN * STEPS_MAX` streak ends, then delivers).
pub const STEPS_MAX: usize = 64;

/// The outbox event id of a streak end: unique per target and seq.
pub fn event_id(e: &StreakEnd) -> String {
    match &e.end.video {
        Some(video) => format!("combo_end:video:{video}:{}", e.end.seq),
        None => format!("combo_end:room:{}:{}", e.end.room, e.end.seq),
    }
}

/// Move up to `len_max` queued streak ends into the outbox; answers how
/// many were taken (a full batch: call again). Entries stay queued on any
/// failure (retried next round; on Redis another node's pump claims them
/// if this node died).
pub async fn pump(
    store: &dyn WebhookStore,
    counters: &dyn Counters,
    len_max: usize,
) -> crate::error::Result<usize> {
    let taken = counters.streak_ends(len_max).await?;
    if taken.is_empty() {
        return Ok(0);
    }
    let subscribed = store.subscribed("combo_end").await?;
    let len = taken.len();
    for e in &taken {
        if subscribed.contains(&e.creator) {
            let data = serde_json::to_value(&e.end).map_err(crate::error::Error::internal)?;
            store
                .enqueue_once(&e.creator, "combo_end", &event_id(e), &data)
                .await?;
        }
    }
    let ids: Vec<String> = taken.into_iter().map(|e| e.id).collect();
    counters.streak_ends_done(&ids).await?;
    Ok(len)
}
