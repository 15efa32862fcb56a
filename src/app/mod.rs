//! The application layer: the state every handler reaches and the
//! operations shared by WebSocket and HTTP.
//!
//! Owns: [`AppState`] (what every request handler can reach), the
//! operations shared by WebSocket and HTTP (gifts, credits, rooms:
//! [`ops`]; follows: [`follows`]; blocks and moderators: [`moderation`];
//! the marketplace: [`marketplace`], [`campaigns`]), the narrow handles
//! lower layers get of it (the hub's
//! `ConnOps`, the payment flows' `PaymentsApp`), and opening the Redis
//! engine ([`open_redis`]). Start-up and shutdown are [`crate::server`]'s.
//! Must not: hold protocol details (http and hub do) or SQL (ledger does),
//! or import `http` or `server` (they import it).

pub mod campaigns;
mod conn_ops;
pub mod contracts;
pub mod follows;
pub mod marketplace;
pub mod moderation;
pub mod ops;

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::counters::redis::RedisCounters;
use crate::counters::Counters;
use crate::hub::Hub;
use crate::ledger::Ledger;
use crate::relay::Relay;
use crate::settlement::Settlement;

/// Everything a handler needs, shared behind an `Arc`.
pub struct AppState {
    /// Validated configuration.
    pub cfg: Config,
    /// Token signing and checking.
    pub auth: Auth,
    /// The gift catalog.
    pub catalog: Catalog,
    /// Rooms on this node.
    pub hub: Arc<Hub>,
    /// Wallets, seqs, pending credits.
    pub counters: Arc<dyn Counters>,
    /// Room messages to every node, history, other nodes' viewers.
    pub relay: Arc<dyn Relay>,
    /// The system of record.
    pub ledger: Arc<dyn Ledger>,
    /// Settlement progress.
    pub settlement: Settlement,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Permits for open WebSocket connections (`hub.connections_max`).
    pub connections: Arc<Semaphore>,
    /// The Stripe client; None while payments are off (no secret key).
    pub stripe: Option<crate::payments::stripe::StripeClient>,
    /// This node's cache of creators' message rules (issue 17).
    pub rules: crate::moderation::RulesCache,
}

impl AppState {
    /// The message checks' handles ([`crate::moderation::gate`]).
    pub fn message_gate(&self) -> crate::moderation::gate::Gate<'_> {
        crate::moderation::gate::Gate {
            cfg: &self.cfg.moderation,
            ledger: self.ledger.as_ref(),
            counters: self.counters.as_ref(),
            cache: &self.rules,
        }
    }
}

impl crate::payments::PaymentsApp for AppState {
    fn payments(&self) -> crate::payments::Payments<'_> {
        crate::payments::Payments {
            cfg: &self.cfg,
            ledger: self.ledger.as_ref(),
            counters: self.counters.as_ref(),
            relay: self.relay.as_ref(),
            stripe: self.stripe.as_ref(),
        }
    }
}

/// Install the process-wide Prometheus recorder once; later calls reuse it.
pub fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then our
            // handle renders nothing, which /metrics shows honestly.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Open the Redis counters engine of `cfg` (`counters.url = "redis://..."`)
/// with its settlement claim limit. Its relay is opened beside it
/// (`crate::relay::redis::RedisRelay`).
pub async fn open_redis(cfg: &Config) -> anyhow::Result<RedisCounters> {
    let r = RedisCounters::connect(&cfg.counters.url, cfg.counters.clone(), cfg.hub.clone())
        .await
        .context("opening the redis counters engine (counters.url)")?;
    Ok(r.with_claim_idle_ms(cfg.settlement.claim_idle_ms))
}
