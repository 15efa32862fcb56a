//! Wiring: builds engines from config, restores state, runs and stops.
//!
//! Owns: start-up (open the ledger, restore the counters engine from it,
//! reopen live rooms, bind and serve [`crate::http`]'s router) and
//! graceful shutdown (stop accepting → close sockets with 1001 → final
//! settlement flush → mark the ledger clean): the top of the module graph.
//! Must not: hold protocol details (http and hub do), SQL (ledger does) or
//! operations (app does); nothing imports it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::{metrics_handle, open_redis, AppState};
use crate::auth::Auth;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::counters::memory::MemoryCounters;
use crate::counters::redis::RedisCounters;
use crate::counters::Counters;
use crate::hub::Hub;
use crate::ledger;
use crate::model::TargetKind;
use crate::payments::PaymentsApp;
use crate::relay::local::LocalRelay;
use crate::relay::redis::RedisRelay;
use crate::relay::Relay;
use crate::settlement::{QueueHome, Worker};

/// A running server.
pub struct Running {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// Where `/metrics` is served (`http.metrics_listen`), if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// Shared state (tests inspect engines through it).
    pub state: Arc<AppState>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    worker: tokio::task::AbortHandle,
    webhooks: tokio::task::AbortHandle,
}

impl Running {
    /// Begin a graceful shutdown.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Wait for the server to stop; errors if settlement failed.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task")?
    }

    /// Shut down and wait.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown();
        self.wait().await
    }

    /// Stop at once, flushing nothing and leaving no clean mark, as a
    /// killed process would (crash drills and tests). Open sockets close.
    pub async fn abort(self) {
        self.worker.abort();
        // Deliveries in flight are dropped (their leases expire).
        self.webhooks.abort();
        self.task.abort();
        self.shutdown.cancel();
        let _ = self.task.await;
        self.state.ledger.unlock_exclusive().await;
    }
}

/// Open engines, restore state, bind, and serve until shut down.
pub async fn start(cfg: Config) -> anyhow::Result<Running> {
    let _ = metrics_handle();
    cfg.validate()?;
    let auth = Auth::from_config(&cfg.auth)?;
    let catalog = Catalog::load(&cfg.catalog.path)?;
    let ledger = ledger::open(&cfg.ledger.url, cfg.ledger.pool_len_max)
        .await
        .with_context(|| {
            format!(
                "opening ledger.url {}",
                crate::config::redact_url(&cfg.ledger.url)
            )
        })?;
    ledger.set_payout_limits(cfg.payouts.limits());
    let hub = Hub::new(cfg.hub.clone());
    let Engines {
        counters,
        relay,
        home,
        redis: redis_engine,
    } = open_engines(&cfg, &hub).await?;
    if redis_engine.is_none() {
        // The in-process counters are the only writer of their ledger: a
        // second process on the same ledger would hand out the same seqs
        // and spend the same coins twice. Redis counters are shared, so
        // several nodes are the point there.
        ledger
            .lock_exclusive()
            .await
            .context("taking the ledger's exclusive lock (counters.url = \"memory\")")?;
    }

    let prior = restore(
        &cfg,
        ledger.as_ref(),
        counters.as_ref(),
        relay.as_ref(),
        redis_engine.as_deref(),
    )
    .await?;
    if prior && redis_engine.is_none() {
        // The embedded engine keeps no inbox seq across a restart.
        hub.set_inbox_floor(crate::protocol::now_ms().max(0) as u64);
    }

    let (worker, settlement) = Worker::new(
        counters.clone(),
        ledger.clone(),
        cfg.settlement.clone(),
        home,
    );
    let shutdown = CancellationToken::new();
    let stripe = if cfg.stripe.enabled() {
        Some(
            crate::payments::stripe::StripeClient::new(&cfg.stripe)
                .context("building the Stripe client (stripe.*)")?,
        )
    } else {
        None
    };
    let state = Arc::new(AppState {
        stripe,
        auth,
        catalog,
        hub,
        counters,
        relay,
        ledger,
        settlement,
        shutdown: shutdown.clone(),
        connections: Arc::new(Semaphore::new(cfg.hub.connections_max)),
        rules: crate::moderation::RulesCache::new(
            cfg.moderation.rules_cache_ms,
            cfg.moderation.rules_cache_len_max,
        ),
        cfg,
    });

    let listener = bind_listener(state.cfg.http.listen, state.cfg.http.listen_backlog)
        .with_context(|| format!("binding http.listen {}", state.cfg.http.listen))?;
    let addr = listener.local_addr()?;
    let router = crate::http::router(state.clone());
    let metrics_addr = serve_metrics(&state).await?;
    // Joined at shutdown (a round in progress finishes first).
    let recovery = state
        .stripe
        .is_some()
        .then(|| spawn_cashout_recovery(state.clone()));
    // Marketplace contracts whose review is due, and their payouts.
    let sweep = state
        .stripe
        .is_some()
        .then(|| spawn_review_sweep(state.clone()));
    // Webhook deliveries: stopped with the server, joined at shutdown.
    let webhooks_task = tokio::spawn(crate::webhooks::run(
        state.ledger.webhooks(),
        state.counters.clone(),
        state.cfg.webhooks.clone(),
        state.shutdown.clone(),
    ));
    let webhooks_abort = webhooks_task.abort_handle();
    let worker_stop = CancellationToken::new();
    let worker_task = tokio::spawn(worker.run(worker_stop.clone()));
    let worker_abort = worker_task.abort_handle();
    let st = state.clone();
    let task = tokio::spawn(async move {
        let serve = serve_http(listener, router, st.clone());
        let mut worker_task = worker_task;
        let served = tokio::select! {
            r = serve => r,
            r = &mut worker_task => {
                // Settlement gave up: stop serving, report why.
                st.shutdown.cancel();
                let why = match r { Ok(Err(e)) => e, Ok(Ok(())) => anyhow::anyhow!("settlement stopped"), Err(e) => e.into() };
                return Err(why);
            }
        };
        // Sockets saw the shutdown token and are closing with 1001: wait
        // for every socket's task and the cash-out recovery round in
        // progress (at most `hub.shutdown_ms_max`), then settle everything
        // that was accepted.
        st.hub.end_all().await;
        let limit = Duration::from_millis(st.cfg.hub.shutdown_ms_max);
        let deadline = tokio::time::Instant::now() + limit;
        if !st.hub.sockets_ended(limit).await {
            tracing::warn!(
                open = st.hub.sockets_open(),
                "sockets still closing after hub.shutdown_ms_max; settling without them"
            );
        }
        if let Some(mut recovery) = recovery {
            if tokio::time::timeout_at(deadline, &mut recovery)
                .await
                .is_err()
            {
                tracing::warn!("cash-out recovery still running after hub.shutdown_ms_max; stopped (it resumes at the next start)");
                recovery.abort();
            }
        }
        if let Some(mut sweep) = sweep {
            if tokio::time::timeout_at(deadline, &mut sweep).await.is_err() {
                tracing::warn!("contract review sweep still running after hub.shutdown_ms_max; stopped (it resumes at the next start)");
                sweep.abort();
            }
        }
        worker_stop.cancel();
        worker_task.await.context("settlement task")??;
        if let Err(e) = webhooks_task.await {
            tracing::warn!(error = %e, "webhook worker ended abnormally");
        }
        st.ledger.swap_clean_mark(true).await?;
        st.ledger.unlock_exclusive().await;
        tracing::info!("stopped cleanly; everything accepted is settled");
        served
    });
    Ok(Running {
        addr,
        metrics_addr,
        state,
        shutdown,
        task,
        worker: worker_abort,
        webhooks: webhooks_abort,
    })
}

/// The counters engine, its relay and where its pending queue lives: they
/// go together, chosen by `counters.url`.
struct Engines {
    counters: Arc<dyn Counters>,
    relay: Arc<dyn Relay>,
    home: QueueHome,
    /// The Redis engine itself (reconcile at start), when that is the one.
    redis: Option<Arc<RedisCounters>>,
}

/// Open the engines `counters.url` names (the in-process one also starts
/// its streak reaper; Redis's runs with the engine).
async fn open_engines(cfg: &Config, hub: &Arc<Hub>) -> anyhow::Result<Engines> {
    Ok(match cfg.counters.url.as_str() {
        "memory" => {
            let m = Arc::new(MemoryCounters::new(cfg.counters.clone(), hub.clone()));
            m.spawn_combo_reaper();
            Engines {
                counters: m,
                relay: Arc::new(LocalRelay::new(hub.clone())),
                home: QueueHome::Process,
                redis: None,
            }
        }
        url if url.starts_with("redis://") || url.starts_with("rediss://") => {
            let r = Arc::new(open_redis(cfg).await?);
            let relay = RedisRelay::connect(&r, hub.clone())
                .await
                .context("starting the redis room relay (counters.url)")?;
            Engines {
                counters: r.clone(),
                relay: Arc::new(relay),
                home: QueueHome::Shared,
                redis: Some(r),
            }
        }
        other => anyhow::bail!("counters.url `{other}`: engine not available in this build"),
    })
}

/// Restore the counters engine (and, in process, the live rooms) from the
/// ledger, which is the truth. True when the ledger had a past (targets).
async fn restore(
    cfg: &Config,
    ledger: &dyn crate::ledger::Ledger,
    counters: &dyn Counters,
    relay: &dyn Relay,
    redis: Option<&RedisCounters>,
) -> anyhow::Result<bool> {
    // Restore: the ledger is the truth. In process: after an unclean stop,
    // gifts that were accepted but not settled are lost whole; their seqs
    // are skipped so no seq is ever reused. Redis keeps unsettled gifts
    // across a restart of this process (the engine skips seqs itself when
    // Redis lost its data), so no gap there.
    let was_clean = ledger.swap_clean_mark(false).await?;
    // Each lost gift may also have ended a streak (a `combo_end` takes a
    // seq too): two seqs per gift the pending queue could hold.
    let gap = if was_clean || redis.is_some() {
        0
    } else {
        (cfg.counters.pending_len_max as u64).saturating_mul(2)
    };
    if !was_clean {
        tracing::warn!(seq_gap = gap, "last run did not stop cleanly; unsettled gifts of that run are void unless Redis kept them");
    }
    // Redis lost its data (or is new): credits wait until it is loaded
    // from the snapshot below (see RedisCounters::raise_load_fence).
    if let Some(r) = redis {
        if !r.is_loaded().await? {
            r.raise_load_fence().await?;
        }
    }
    let snapshot = ledger
        .snapshot((cfg.counters.idempotency_ttl_s * 1000) as i64, gap)
        .await?;
    let live_rooms: Vec<(String, String)> = snapshot
        .targets
        .iter()
        .filter(|(t, info)| t.kind == TargetKind::Room && info.live)
        .map(|(t, info)| (t.id.clone(), info.creator.clone()))
        .collect();
    tracing::info!(
        wallets = snapshot.wallets.len(),
        targets = snapshot.targets.len(),
        "restored from ledger"
    );
    let prior = !snapshot.targets.is_empty();
    counters.restore(snapshot).await?;
    // Follower counts from the ledger's edges (Redis keeps the ones it
    // holds: other nodes may be changing them; a drift is reconcile's).
    let followers = crate::ledger::follows::FollowLedger::follower_counts(ledger).await?;
    if counters.restore_followers(&followers).await? {
        tracing::info!(
            creators = followers.len(),
            "follower counts restored from ledger"
        );
    }
    if let Some(r) = redis {
        // Start-up check: report drift between Redis and the ledger in
        // /metrics (`giftstream_reconcile_drift`); `giftstream reconcile
        // --repair` fixes it. A Redis that lost everything was reloaded by
        // `restore` just above.
        let report = r.reconcile(ledger, false).await?;
        tracing::info!(
            drift = report.drift(),
            pending = report.pending_gifts,
            "redis reconciled against the ledger"
        );
    }
    // Creators' blocks: the counters engine's cache (every node's gift,
    // join and tip checks) is rebuilt from the ledger. In process nothing
    // else changes blocks now; Redis's cache is shared and live, so a node
    // whose rebuild keeps being overtaken by other nodes' blocks starts
    // anyway (`giftstream reconcile --repair` rebuilds it later).
    match crate::app::moderation::rebuild_block_cache(ledger, counters).await {
        Ok(creators) => tracing::info!(creators, "block cache rebuilt from the ledger"),
        Err(e) if redis.is_some() => {
            tracing::warn!(error = %e.report(), "block cache not rebuilt at start; Redis keeps the shared one")
        }
        Err(e) => return Err(e.into()),
    }
    // In process every live room opens now; with Redis a room opens on a
    // node when a viewer there joins it (the relay decides).
    relay.restore(live_rooms, counters).await?;
    Ok(prior)
}

/// Serve `/metrics` on its own listener (`http.metrics_listen`) until
/// shutdown; its address, or None when it is off.
async fn serve_metrics(state: &Arc<AppState>) -> anyhow::Result<Option<SocketAddr>> {
    Ok(match state.cfg.http.metrics_listen.as_str() {
        "" => None,
        m => {
            let at: SocketAddr = m.parse().context("http.metrics_listen")?;
            let l = bind_listener(at, state.cfg.http.listen_backlog)
                .with_context(|| format!("binding http.metrics_listen {at}"))?;
            let bound = l.local_addr()?;
            let stop = state.shutdown.clone();
            let metrics = crate::http::metrics_router(state.clone());
            tokio::spawn(async move {
                let served = axum::serve(l, metrics)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::warn!(error = %e, "metrics listener stopped");
                }
            });
            Some(bound)
        }
    })
}

/// Where the kernel caps every listen backlog.
const SOMAXCONN_PATH: &str = "/proc/sys/net/core/somaxconn";

/// Bind `at` and listen with `backlog` (`http.listen_backlog`) clamped to
/// `net.core.somaxconn` (the kernel would clamp it silently; the value in
/// force is logged). tokio's own `bind` listens with 1,024: a reconnect
/// storm beyond that overflows the accept queue and its clients' SYNs are
/// retried only after a second.
fn bind_listener(at: SocketAddr, backlog: u32) -> anyhow::Result<TcpListener> {
    let somaxconn = std::fs::read_to_string(SOMAXCONN_PATH)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let in_force = backlog_in_force(backlog, somaxconn);
    let socket = if at.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As tokio's `bind`: a restarted server binds while old connections
    // linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(at)?;
    let listener = socket.listen(in_force)?;
    tracing::info!(
        listen = %listener.local_addr()?,
        backlog = in_force,
        configured = backlog,
        somaxconn,
        "listening (http.listen_backlog)"
    );
    Ok(listener)
}

/// The backlog the kernel will use: `configured`, at most `somaxconn`
/// when known, at least 1.
fn backlog_in_force(configured: u32, somaxconn: Option<u32>) -> u32 {
    somaxconn.map_or(configured, |m| configured.min(m)).max(1)
}

/// Cash-outs a crash or an unanswered Transfer left pending: retried at
/// start, then every `stripe.cashout_retry_interval_ms`, until shutdown.
fn spawn_cashout_recovery(st: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    // Cash-outs a crash or an unanswered Transfer left pending: retried
    // at start, then every `stripe.cashout_retry_interval_ms`.
    tokio::spawn(async move {
        let every = Duration::from_millis(st.cfg.stripe.cashout_retry_interval_ms);
        loop {
            match crate::payments::recover_cashouts(&st.payments()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(ended = n, "pending cash-outs recovered"),
                Err(e) => {
                    tracing::warn!(error = %e.report(), "cash-out recovery failed; retried later")
                }
            }
            tokio::select! {
                _ = st.shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    })
}

/// Marketplace contracts whose review is due are approved (and paid out),
/// and contract payouts left pending are recovered: at start, then every
/// `marketplace.review_sweep_interval_ms`, until shutdown.
fn spawn_review_sweep(st: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_millis(st.cfg.marketplace.review_sweep_interval_ms);
        loop {
            match crate::payments::approve_due_contracts(&st.payments()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(approved = n, "contracts approved after their review time"),
                Err(e) => {
                    tracing::warn!(error = %e.report(), "contract review sweep failed; retried later")
                }
            }
            tokio::select! {
                _ = st.shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    })
}

/// Accept and serve HTTP/1 connections until shutdown, then wait for the
/// requests in flight (upgraded sockets live on in their own tasks and
/// close themselves with 1001).
///
/// axum::serve sets no header read timeout: a client sending a request
/// head byte by byte (or half of one, then nothing) would hold its
/// connection forever. hyper's own connection builder bounds it
/// (`http.header_read_timeout_ms`, which also bounds an idle keep-alive
/// connection).
async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    st: Arc<AppState>,
) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(st.cfg.http.header_read_timeout_ms))
        .keep_alive(true);
    let send_buffer_len = st.cfg.hub.socket_send_buffer_len;
    // Every connection task holds a receiver; all gone = all served.
    let (done_tx, done_rx) = tokio::sync::watch::channel(());
    loop {
        let accepted = tokio::select! {
            _ = st.shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                ) {
                    // Out of file descriptors and the like: wait a moment.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                continue;
            }
        };
        // Gift events are small and latency-bound: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        if send_buffer_len > 0 {
            let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(send_buffer_len);
        }
        let router = router.clone();
        let svc =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                let mut router = router.clone();
                async move { tower_service::Service::call(&mut router, req).await }
            });
        let conn = h1.serve_connection(TokioIo::new(tcp), svc).with_upgrades();
        let stop = st.shutdown.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(done);
        });
    }
    drop(listener);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_is_clamped_by_somaxconn() {
        assert_eq!(backlog_in_force(4096, Some(128)), 128);
        assert_eq!(backlog_in_force(4096, Some(65_535)), 4096);
        assert_eq!(backlog_in_force(4096, None), 4096);
        assert_eq!(backlog_in_force(0, Some(4096)), 1);
    }

    /// The configured backlog is the one in force (tokio's `bind` would
    /// use 1,024): with backlog 2 and nobody accepting, the kernel
    /// completes 3 connections (backlog + 1) and leaves the next waiting.
    #[tokio::test]
    async fn a_listener_queues_what_its_backlog_allows() {
        let l = bind_listener("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let at = l.local_addr().unwrap();
        let mut held = Vec::new();
        for i in 0..3 {
            let c =
                tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(at))
                    .await
                    .unwrap_or_else(|_| panic!("connection {i} within the backlog"));
            held.push(c.unwrap());
        }
        let over = tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(at),
        )
        .await;
        assert!(
            over.is_err(),
            "the 4th connection waits (its SYN is dropped)"
        );
        drop(l);
    }
}
