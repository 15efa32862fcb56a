//! Scenarios: what load to make, and what it measured.
//!
//! Owns: [`Ctx`] (what every scenario can use: the run id, HTTP, tokens,
//! the connector, live metrics, the server probe), the shared set-up steps
//! (rooms, grants, connecting and joining viewers with a progress bar),
//! and [`Outcome`], what a scenario hands to the report. One file per
//! scenario: [`fanout`], [`ingest`], [`conns`], [`mixed`], [`storm`].
//! Must not: print the report (see [`crate::report`]).

pub mod conns;
pub mod fanout;
pub mod ingest;
pub mod mixed;
pub mod storm;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::api::{Api, Price};
use crate::conn::{Connector, Ws};
use crate::metrics::{Live, Percentiles, Tally, TimePoint};
use crate::probe::{CpuSpan, Probe};
use crate::token::{Role, Tokens};
use crate::viewer;

/// Sockets being connected at once by the set-up helpers (handshakes are
/// further bounded by the connector).
const CONNECT_FANIN: usize = 1024;

/// What every scenario can use.
pub struct Ctx {
    /// Run id: a prefix of every user, room and gift id of this run.
    pub run: Arc<str>,
    /// HTTP client.
    pub api: Api,
    /// Token signer.
    pub tokens: Tokens,
    /// WebSocket connector.
    pub connector: Arc<Connector>,
    /// Live metrics.
    pub live: Arc<Live>,
    /// The server process, when known.
    pub server: Option<Probe>,
    /// Catalog prices.
    pub prices: HashMap<String, Price>,
    /// Show progress bars.
    pub progress: bool,
}

/// A room of this run.
#[derive(Debug, Clone)]
pub struct RoomRef {
    /// Room id.
    pub name: Arc<str>,
    /// Its creator.
    pub creator: String,
}

/// Who was given coins and who earns, for the conservation check.
#[derive(Debug, Clone, Default)]
pub struct Books {
    /// Users who were granted coins and sent gifts.
    pub senders: Vec<String>,
    /// Coins granted to them in total.
    pub granted: i64,
    /// Creators of the run's rooms.
    pub creators: Vec<String>,
}

/// Time and success of connecting.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ConnectStats {
    /// Sockets connected (and joined).
    pub connected: u64,
    /// Sockets that failed.
    pub failed: u64,
    /// Wall time, s.
    pub seconds: f64,
    /// Connected per second.
    pub per_s: f64,
}

/// Server memory before and after connecting.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RssStats {
    /// VmRSS before, KiB.
    pub before_kb: u64,
    /// VmRSS after, KiB.
    pub after_kb: u64,
    /// (after - before) / connections, bytes.
    pub per_conn_bytes: f64,
}

/// What a scenario measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Scenario name.
    pub scenario: &'static str,
    /// Its parameters, as given.
    pub params: serde_json::Value,
    /// Merged totals.
    pub tally: Tally,
    /// Wall time of the measured phase, s.
    pub measured_s: f64,
    /// Server CPU over the measured phase.
    pub server_cpu: Option<CpuSpan>,
    /// This process's CPU over the measured phase.
    pub client_cpu: Option<CpuSpan>,
    /// Connecting.
    pub connect: ConnectStats,
    /// Server memory (conns).
    pub rss: Option<RssStats>,
    /// Per-second series.
    pub timeline: Vec<TimePoint>,
    /// Send -> viewer latency.
    pub delivery_latency: Percentiles,
    /// Send -> ack latency.
    pub ack_latency: Percentiles,
    /// Deliveries expected if nothing is skipped (acked gifts x viewers).
    pub expected_deliveries: Option<u64>,
    /// For the conservation check.
    pub books: Option<Books>,
    /// Time to `joined` and kernel drops (storm).
    pub storm: Option<storm::StormStats>,
}

/// A CPU measurement of the server and of this process over one phase.
pub struct Measure {
    server: Option<crate::probe::CpuMark>,
    client: Option<crate::probe::CpuMark>,
    t0: Instant,
}

impl Measure {
    /// Begin.
    pub fn start(ctx: &Ctx) -> Measure {
        Measure {
            server: ctx.server.and_then(|p| p.start().ok()),
            client: Probe::me().ok().and_then(|p| p.start().ok()),
            t0: Instant::now(),
        }
    }

    /// End: (wall s, server CPU, client CPU).
    pub fn stop(&self) -> (f64, Option<CpuSpan>, Option<CpuSpan>) {
        (
            self.t0.elapsed().as_secs_f64(),
            self.server.and_then(|m| m.stop().ok()),
            self.client.and_then(|m| m.stop().ok()),
        )
    }
}

impl Ctx {
    /// A user id of this run: `lt<run>-<kind><i>`.
    pub fn user(&self, kind: &str, i: usize) -> String {
        format!("lt{}-{kind}{i}", self.run)
    }

    /// Price of `gift` from the catalog.
    pub fn price(&self, gift: &str) -> anyhow::Result<Price> {
        self.prices
            .get(gift)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("gift `{gift}` is not in the server's catalog"))
    }

    /// Open `n` rooms, each with its own creator.
    pub async fn rooms(&self, n: usize) -> anyhow::Result<Vec<RoomRef>> {
        let pairs: Vec<(String, String)> = (0..n)
            .map(|i| (self.user("c", i), format!("lt{}-room{i}", self.run)))
            .collect();
        self.api.open_rooms(&pairs).await?;
        Ok(pairs
            .into_iter()
            .map(|(creator, name)| RoomRef {
                name: name.into(),
                creator,
            })
            .collect())
    }

    /// A progress bar of `len` steps (hidden unless `--progress` and a TTY).
    pub fn bar(&self, len: u64, what: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::new(len);
        pb.set_style(
            ProgressStyle::with_template(
                "{msg:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.set_message(what.to_string());
        pb
    }

    /// A bar that counts seconds of a timed phase and shows live rates.
    pub fn timed_bar(&self, secs: u64, what: &str) -> Option<tokio::task::JoinHandle<()>> {
        if !self.progress {
            return None;
        }
        let pb = ProgressBar::new(secs);
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{elapsed_precise}] {wide_bar} {pos}/{len}s {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.set_prefix(what.to_string());
        let live = self.live.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last = (0u64, 0u64);
            for _ in 0..=secs {
                tick.tick().await;
                let d = live.deliveries.load(std::sync::atomic::Ordering::Relaxed);
                let a = live.acks.load(std::sync::atomic::Ordering::Relaxed);
                pb.set_message(format!(
                    "{} deliveries/s, {} acks/s, {} open",
                    d - last.0,
                    a - last.1,
                    live.open.load(std::sync::atomic::Ordering::Relaxed)
                ));
                last = (d, a);
                pb.inc(1);
            }
            pb.finish_and_clear();
        }))
    }

    /// Connect one socket per `(user, role, room index)` and join the
    /// room; answers the joined sockets `(ws, room index, joined seq, task
    /// number)`, the failures, and the wall time.
    pub async fn connect_joined(
        &self,
        who: Vec<(String, Role, usize)>,
        rooms: &[RoomRef],
    ) -> (Vec<(Ws, usize, u64, usize)>, ConnectStats) {
        let t0 = Instant::now();
        let pb = self.bar(who.len() as u64, "connecting");
        let enc = self.connector.encoding();
        let results: Vec<anyhow::Result<(Ws, usize, u64, usize)>> =
            stream::iter(who.into_iter().enumerate())
                .map(|(task, (user, role, room))| {
                    let pb = pb.clone();
                    let room_name = rooms[room].name.clone();
                    async move {
                        let token = self.tokens.sign(&user, role)?;
                        let mut ws = self.connector.connect(&token).await?;
                        let seq = viewer::join(&mut ws, enc, &room_name).await?;
                        pb.inc(1);
                        Ok((ws, room, seq, task))
                    }
                })
                .buffer_unordered(CONNECT_FANIN)
                .collect()
                .await;
        pb.finish_and_clear();
        let mut ok = Vec::with_capacity(results.len());
        let mut failed = 0u64;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(x) => ok.push(x),
                Err(e) => {
                    failed += 1;
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            eprintln!("warning: {failed} connections failed; first: {e:#}");
        }
        let seconds = t0.elapsed().as_secs_f64();
        let stats = ConnectStats {
            connected: ok.len() as u64,
            failed,
            seconds,
            per_s: ok.len() as f64 / seconds.max(1e-9),
        };
        (ok, stats)
    }

    /// Connect one socket per user (not joined), e.g. senders.
    pub async fn connect_plain(&self, users: &[(String, Role)]) -> anyhow::Result<Vec<Ws>> {
        let results: Vec<anyhow::Result<Ws>> = stream::iter(users)
            .map(|(u, role)| async move {
                let token = self.tokens.sign(u, *role)?;
                self.connector.connect(&token).await
            })
            .buffered(CONNECT_FANIN)
            .collect()
            .await;
        results.into_iter().collect()
    }
}
