//! Signed webhooks out (issue 13): registration of creators' endpoints and
//! the delivery worker.
//!
//! Owns: the checks of a registration ([`register`]: URL form and
//! addresses, event types, the secret answered once), and the worker
//! ([`run`]): it claims endpoints with due events under a lease in the
//! ledger database (two nodes on one PostgreSQL do not deliver to one
//! endpoint at once), POSTs each endpoint's events strictly in outbox
//! order (the next only after the previous one is delivered or finally
//! failed), retries with exponential backoff and jitter up to
//! `webhooks.retry_age_s_max`, and disables an endpoint failing for longer
//! than `webhooks.disable_after_s`. Delivery is at least once: receivers
//! dedupe by event id.
//! Must not: write the outbox (the ledger does, in the transaction of the
//! gift or tip: [`crate::ledger::outbox`]) or follow redirects.

pub mod deliver;
pub mod guard;
pub mod sign;
pub mod streaks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::WebhooksConfig;
use crate::error::{Error, Result};
use crate::ledger::outbox::{
    Attempt, ClaimedEndpoint, DeliveryRecord, NewEndpoint, OutboxEvent, WebhookEndpoint,
    WebhookStore, EVENT_TYPES,
};
use crate::protocol::now_ms;

/// A registered endpoint with its secret (answered once).
#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    /// The signing secret; never shown again.
    pub secret: String,
}

/// Register an endpoint for `creator`: `bad_request` (with the reason) on
/// a URL that is not http(s), does not resolve or resolves to a refused
/// address, on an unknown or missing event type, or beyond
/// `webhooks.endpoints_per_creator_max`.
pub async fn register(
    store: &dyn WebhookStore,
    cfg: &WebhooksConfig,
    creator: &str,
    url: &str,
    events: &[String],
) -> Result<Registered> {
    let dest = guard::parse(url, cfg.url_len_max).map_err(Error::bad_request)?;
    guard::resolve(&dest, cfg.allow_private)
        .await
        .map_err(Error::bad_request)?;
    if events.is_empty() {
        return Err(Error::bad_request(
            "events must name at least one event type",
        ));
    }
    let mut types: Vec<String> = Vec::with_capacity(events.len());
    for e in events {
        if !EVENT_TYPES.contains(&e.as_str()) {
            return Err(Error::bad_request(format!(
                "unknown event type {e:?} (known: {})",
                EVENT_TYPES.join(", ")
            )));
        }
        if !types.contains(e) {
            types.push(e.clone());
        }
    }
    let secret = sign::new_secret();
    let ep = NewEndpoint {
        id: format!("we_{}", uuid::Uuid::new_v4().simple()),
        creator: creator.to_string(),
        url: url.to_string(),
        secret: secret.clone(),
        events: types,
    };
    let endpoint = store.create(&ep, cfg.endpoints_per_creator_max).await?;
    Ok(Registered { endpoint, secret })
}

/// The body POSTed for one event.
pub fn body_of(ev: &OutboxEvent) -> String {
    let data: serde_json::Value =
        serde_json::from_str(&ev.payload).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "id": ev.event_id,
        "type": ev.kind,
        "created_ms": ev.created_ms,
        "creator": ev.creator,
        "data": data,
    })
    .to_string()
}

/// The wait before attempt `attempts + 1`: `retry_base_ms * 2^(attempts-1)`
/// capped at `retry_interval_ms_max`, times a jitter in [0.5, 1].
pub fn backoff_ms(cfg: &WebhooksConfig, attempts: i64, jitter: f64) -> i64 {
    let exp = attempts.clamp(1, 40) as u32 - 1;
    let base = cfg
        .retry_base_ms
        .saturating_mul(1u64 << exp.min(40))
        .min(cfg.retry_interval_ms_max);
    ((base as f64) * jitter.clamp(0.5, 1.0)) as i64
}

/// The endpoint's state after an attempt at `ev` (pure: the worker's rules).
pub fn decide(
    cfg: &WebhooksConfig,
    ep: &ClaimedEndpoint,
    ev: &OutboxEvent,
    record: DeliveryRecord,
    owner: &str,
    lease_ms: i64,
    jitter: f64,
) -> Attempt {
    let at = record.at_ms;
    let ok = record.status.is_some_and(|s| (200..300).contains(&s));
    let mut a = Attempt {
        endpoint_id: ep.id.clone(),
        owner: owner.to_string(),
        record,
        done_id: ev.id,
        attempts: 0,
        first_try_ms: None,
        next_try_ms: 0,
        failing_since_ms: None,
        disable: None,
        lease_until_ms: at + lease_ms,
    };
    if ok {
        return a;
    }
    let failing_since = ep.failing_since_ms.unwrap_or(at);
    let first = ep.first_try_ms.unwrap_or(at);
    a.failing_since_ms = Some(failing_since);
    if at - failing_since > secs_ms(cfg.disable_after_s) {
        a.done_id = ep.done_id;
        a.attempts = ep.attempts + 1;
        a.first_try_ms = Some(first);
        let last = match (&a.record.status, &a.record.error) {
            (_, Some(e)) => e.clone(),
            (Some(s), None) => format!("status {s}"),
            (None, None) => "no answer".into(),
        };
        a.disable = Some(format!(
            "every delivery failed for more than webhooks.disable_after_s ({} s); last: {last}",
            cfg.disable_after_s
        ));
    } else if at - first >= secs_ms(cfg.retry_age_s_max) {
        // Finally failed: the endpoint moves on to the next event.
        a.next_try_ms = at;
    } else {
        a.done_id = ep.done_id;
        a.attempts = ep.attempts + 1;
        a.first_try_ms = Some(first);
        a.next_try_ms = at + backoff_ms(cfg, a.attempts, jitter);
    }
    a
}

fn secs_ms(s: u64) -> i64 {
    i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// How long a claim lasts: one attempt's timeouts and a margin (renewed
/// at every recorded attempt).
fn lease_ms(cfg: &WebhooksConfig) -> i64 {
    (cfg.connect_timeout_ms * 2 + cfg.response_timeout_ms + 5_000) as i64
}

/// Deliver the claimed endpoint's due events in order, then end the lease.
async fn serve_endpoint(
    store: Arc<dyn WebhookStore>,
    cfg: Arc<WebhooksConfig>,
    owner: Arc<str>,
    mut ep: ClaimedEndpoint,
) {
    if let Err(e) = serve_events(store.as_ref(), &cfg, &owner, &mut ep).await {
        tracing::warn!(endpoint = %ep.id, error = %e, "webhook delivery round failed; retried later");
    }
    if let Err(e) = store.release(&owner, &ep.id).await {
        tracing::warn!(endpoint = %ep.id, error = %e, "webhook lease not released; it expires");
    }
}

async fn serve_events(
    store: &dyn WebhookStore,
    cfg: &WebhooksConfig,
    owner: &str,
    ep: &mut ClaimedEndpoint,
) -> Result<()> {
    let lease = lease_ms(cfg);
    for _ in 0..cfg.batch_len_max {
        let Some(ev) = store.next_event(ep).await? else {
            return Ok(());
        };
        let body = body_of(&ev);
        let t = now_ms() / 1000;
        let headers = [
            (sign::HEADER, sign::header(&ep.secret, t, body.as_bytes())),
            ("giftstream-event-id", ev.event_id.clone()),
        ];
        let started = Instant::now();
        let sent = async {
            let dest = guard::parse(&ep.url, usize::MAX)?;
            let addr = guard::resolve(&dest, cfg.allow_private).await?;
            deliver::post(&dest, addr, &headers, body, cfg).await
        }
        .await;
        let (status, error) = match sent {
            Ok(s) => (Some(i64::from(s)), None),
            Err(e) => (None, Some(e)),
        };
        let record = DeliveryRecord {
            event_id: ev.event_id.clone(),
            attempt: ep.attempts + 1,
            status,
            error,
            at_ms: now_ms(),
            duration_ms: started.elapsed().as_millis() as i64,
        };
        let jitter = rand::thread_rng().gen_range(0.5..=1.0);
        let a = decide(cfg, ep, &ev, record, owner, lease, jitter);
        if !store.record(&a, cfg.deliveries_per_endpoint_max).await? {
            return Ok(()); // the lease was lost (or the endpoint deleted)
        }
        metrics::counter!("giftstream_webhook_attempts_total", "ok" => (a.attempts == 0 && a.record.status.is_some_and(|s| (200..300).contains(&s))).to_string()).increment(1);
        if a.disable.is_some() {
            tracing::warn!(endpoint = %ep.id, reason = ?a.disable, "webhook endpoint disabled");
            return Ok(());
        }
        let moved_on = a.done_id == ev.id;
        ep.done_id = a.done_id;
        ep.attempts = a.attempts;
        ep.first_try_ms = a.first_try_ms;
        ep.failing_since_ms = a.failing_since_ms;
        if !moved_on || a.next_try_ms > now_ms() {
            return Ok(()); // wait for the retry
        }
    }
    Ok(())
}

/// The delivery worker: until `stop`, claim endpoints with due events
/// (at most `webhooks.concurrency_max` at once) every
/// `webhooks.poll_interval_ms`, and prune old outbox rows. At `stop`,
/// deliveries in flight get `webhooks.response_timeout_ms` to end, then
/// are dropped (their leases expire; the events stay due).
pub async fn run(
    store: Arc<dyn WebhookStore>,
    counters: Arc<dyn crate::counters::Counters>,
    cfg: WebhooksConfig,
    stop: CancellationToken,
) {
    let cfg = Arc::new(cfg);
    let owner: Arc<str> = format!("node-{}", uuid::Uuid::new_v4().simple()).into();
    let poll = Duration::from_millis(cfg.poll_interval_ms);
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut last_prune = Instant::now() - Duration::from_secs(3600);
    loop {
        while tasks.try_join_next().is_some() {}
        let free = (cfg.concurrency_max as usize).saturating_sub(tasks.len());
        if free > 0 {
            match store.claim(&owner, lease_ms(&cfg), free as u32).await {
                Ok(claimed) => {
                    for ep in claimed {
                        tasks.spawn(serve_endpoint(
                            store.clone(),
                            cfg.clone(),
                            owner.clone(),
                            ep,
                        ));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "webhook claim failed; retried"),
            }
        }
        // Streak ends become `combo_end` events (see `streaks`).
        for _ in 0..streaks::STEPS_MAX {
            match streaks::pump(store.as_ref(), counters.as_ref(), streaks::BATCH_LEN).await {
                Ok(n) if n == streaks::BATCH_LEN => {}
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e.report(), "moving streak ends into the webhook outbox failed; retried");
                    break;
                }
            }
        }
        if last_prune.elapsed() > Duration::from_secs(60) {
            last_prune = Instant::now();
            let before = now_ms() - secs_ms(cfg.outbox_retention_s);
            if let Err(e) = store.prune(before).await {
                tracing::warn!(error = %e, "webhook outbox prune failed");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(poll) => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    let limit = Duration::from_millis(cfg.response_timeout_ms);
    if tokio::time::timeout(limit, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tasks.abort_all();
    }
}

#[cfg(test)]
mod tests;
