//! The settlement side: draining the pending stream into batches and
//! acknowledging them once the ledger committed.

use super::keys::*;
use super::scripts::*;
use super::*;

impl RedisCounters {
    /// [`Counters::drain`] on Redis.
    pub(super) async fn drain_op(&self, len_max: usize) -> Result<Option<Batch>> {
        if len_max == 0 {
            return Ok(None);
        }
        let cursor = self.claim_cursor.lock().clone();
        let (next, entries): (String, Vec<(String, Vec<u8>)>) = self
            .scripts
            .drain
            .key(stream_key())
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(len_max)
            .arg(self.claim_idle_ms)
            .arg(&cursor)
            .arg(self.cfg.gift_batch_len_max.max(1))
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        *self.claim_cursor.lock() = next;
        if entries.is_empty() {
            return Ok(None);
        }
        let mut gifts =
            Vec::with_capacity(len_max.min(entries.len() * self.cfg.gift_batch_len_max.max(1)));
        let mut refs = Vec::with_capacity(entries.len());
        let mut ticket_max = 0;
        for (id, rows) in &entries {
            let rows = parse_entry(id, rows)?;
            let mut diamonds: Vec<(String, i64)> = Vec::new();
            for (g, ticket) in &rows {
                ticket_max = ticket_max.max(*ticket);
                match diamonds.iter_mut().find(|(c, _)| *c == g.creator) {
                    Some((_, d)) => *d += g.diamonds,
                    None => diamonds.push((g.creator.clone(), g.diamonds)),
                }
            }
            refs.push(EntryRef {
                id: id.clone(),
                gifts: rows.len(),
                diamonds,
            });
            gifts.extend(rows.into_iter().map(|(g, _)| g));
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

    /// [`Counters::settled`] on Redis.
    pub(super) async fn settled_op(&self, batch: &Batch) -> Result<()> {
        let refs = {
            let mut inflight = self.inflight.lock();
            let at = inflight.iter().position(|(b, _)| *b == batch.id);
            at.and_then(|i| inflight.remove(i)).map(|(_, r)| r)
        };
        let Some(refs) = refs else {
            return Err(CountersError::Corrupt(format!(
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
                inv.arg(&r.id).arg(r.gifts).arg(r.diamonds.len());
                for (creator, d) in &r.diamonds {
                    inv.arg(creator).arg(*d);
                }
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
            .unwrap_or_else(|| CountersError::Corrupt("redis: settling failed".into())))
    }
}

/// Deterministic batch id from its entry ids (FNV-1a over every id, plus
/// the first and last id and the count), so a re-claimed batch with the
/// same entries carries the same id.
pub(super) fn batch_id(ids: &[&str]) -> String {
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
