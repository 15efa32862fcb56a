//! `conns`: C idle joined connections; the server's memory per connection.
//!
//! Reads the server's VmRSS, connects and joins C sockets (spread over the
//! rooms), waits for the server to settle, reads VmRSS again, holds the
//! sockets for `--hold-s`, then closes them. Measures the time to connect
//! and the server's RSS per idle joined connection.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::{Ctx, Outcome, RssStats};
use crate::metrics::Tally;
use crate::token::Role;
use crate::viewer::{self, Phase, RunEnd, Watcher};

/// Parameters of `conns`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct ConnsArgs {
    /// Connections (C).
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Rooms they join (round robin).
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Seconds to wait after connecting before reading the server's RSS.
    #[arg(long, default_value_t = 2.0)]
    pub settle_s: f64,
    /// Seconds to hold the connections after measuring.
    #[arg(long, default_value_t = 1.0)]
    pub hold_s: f64,
}

/// Run `conns`.
pub async fn run(ctx: &Ctx, a: &ConnsArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(a.rooms >= 1, "need at least one room");
    let rooms = ctx.rooms(a.rooms).await?;
    let before_kb = match ctx.server {
        Some(p) => Some(p.rss_kb()?),
        None => None,
    };
    let who = (0..a.connections)
        .map(|i| (ctx.user("v", i), Role::Viewer, i % a.rooms))
        .collect();
    let (socks, connect) = ctx.connect_joined(who, &rooms).await;
    let (phase_tx, phase_rx) = watch::channel(Phase::Run);
    let end = RunEnd {
        phase: phase_rx,
        finals: Arc::new((0..a.rooms).map(|_| AtomicU64::new(u64::MAX)).collect()),
    };
    let tasks: Vec<_> = socks
        .into_iter()
        .map(|(ws, room, seq, task)| {
            let w = Watcher::new(ctx.run.clone(), task, seq);
            tokio::spawn(viewer::watch(ws, room, w, ctx.live.clone(), end.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(a.settle_s)).await;
    let rss = match (ctx.server, before_kb) {
        (Some(p), Some(before_kb)) => {
            let after_kb = p.rss_kb()?;
            Some(RssStats {
                before_kb,
                after_kb,
                per_conn_bytes: (after_kb as f64 - before_kb as f64) * 1024.0
                    / (connect.connected.max(1)) as f64,
            })
        }
        _ => None,
    };
    tokio::time::sleep(Duration::from_secs_f64(a.hold_s)).await;
    let _ = phase_tx.send(Phase::Abort);
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await?);
    }
    tally.connect_failures += connect.failed;
    tally.joins = connect.connected;
    Ok(Outcome {
        scenario: "conns",
        params: serde_json::to_value(a)?,
        measured_s: connect.seconds,
        connect,
        rss,
        tally,
        ..Outcome::default()
    })
}
