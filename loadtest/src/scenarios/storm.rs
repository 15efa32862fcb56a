//! `storm`: N clients connecting at once, in batches; how long until every
//! one has `joined`, and what the kernel dropped meanwhile.
//!
//! Tokens are signed first (not timed). Then batch after batch of `--batch`
//! clients each connect (TCP + WebSocket upgrade, not held back by
//! `--handshakes`) and join a room, all of a batch at once; the next batch
//! starts when every client of this one has joined (or failed). Measures
//! each client's time from its batch's start to `joined` (p50 / p99 /
//! max), the time until all joined, and the kernel's counters that tell a
//! dropped SYN (`nstat`'s TcpExtListenOverflows, TcpExtListenDrops,
//! TcpExtTCPSynRetrans, TcpRetransSegs, read from `/proc/net/netstat` and
//! `/proc/net/snmp`) before and after. Loopback counts both sides, so
//! these are the machine's counters, not only the server's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::{ConnectStats, Ctx, Measure, Outcome};
use crate::metrics::{Percentiles, Tally};
use crate::token::Role;
use crate::viewer;

/// Counters read before and after (nstat's names).
pub const KERNEL_COUNTERS: [&str; 4] = [
    "TcpExtListenOverflows",
    "TcpExtListenDrops",
    "TcpExtTCPSynRetrans",
    "TcpRetransSegs",
];

/// Parameters of `storm`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct StormArgs {
    /// Clients (N).
    #[arg(long, default_value_t = 15_000)]
    pub clients: usize,
    /// Clients connecting at once.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Rooms they join (round robin).
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
}

/// What a storm measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StormStats {
    /// Clients that joined.
    pub joined: u64,
    /// Clients that failed (after the connector's retries).
    pub failed: u64,
    /// From the first batch's start until the last client joined, s.
    pub all_joined_s: f64,
    /// Each client's time from its batch's start to `joined`.
    pub time_to_joined: Percentiles,
    /// Kernel counter increases over the storm, by nstat name.
    pub kernel: BTreeMap<String, u64>,
}

/// The kernel counters now, by nstat name (missing ones are left out).
pub fn kernel_counters() -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (file, prefix) in [("/proc/net/netstat", "TcpExt"), ("/proc/net/snmp", "Tcp")] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        // Pairs of lines: "Tcp: names..." then "Tcp: values...".
        for pair in lines.chunks(2) {
            let [names, values] = pair else { continue };
            let tag = format!("{prefix}:");
            let (Some(n), Some(v)) = (names.strip_prefix(&tag), values.strip_prefix(&tag)) else {
                continue;
            };
            for (name, value) in n.split_whitespace().zip(v.split_whitespace()) {
                let key = format!("{prefix}{name}");
                if KERNEL_COUNTERS.contains(&key.as_str()) {
                    if let Ok(x) = value.parse::<u64>() {
                        out.insert(key, x);
                    }
                }
            }
        }
    }
    out
}

/// Run `storm`.
pub async fn run(ctx: &Ctx, a: &StormArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        a.clients >= 1 && a.batch >= 1 && a.rooms >= 1,
        "clients, batch and rooms must be >= 1"
    );
    let rooms = ctx.rooms(a.rooms).await?;
    let mut tokens = Vec::with_capacity(a.clients);
    for i in 0..a.clients {
        tokens.push(ctx.tokens.sign(&ctx.user("v", i), Role::Viewer)?);
    }
    let enc = ctx.connector.encoding();
    let before = kernel_counters();
    let measure = Measure::start(ctx);
    let t0 = Instant::now();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let mut held = Vec::with_capacity(a.clients);
    let mut failed = 0u64;
    let mut first_err = None;
    let mut last_joined = Duration::ZERO;
    for (b, batch) in tokens.chunks(a.batch).enumerate() {
        let start = Instant::now();
        let results: Vec<anyhow::Result<(crate::conn::Ws, Duration)>> =
            stream::iter(batch.iter().enumerate())
                .map(|(i, token)| {
                    let room = rooms[(b * a.batch + i) % rooms.len()].name.clone();
                    async move {
                        let mut ws = ctx.connector.connect_now(token).await?;
                        viewer::join(&mut ws, enc, &room).await?;
                        Ok((ws, start.elapsed()))
                    }
                })
                .buffer_unordered(a.batch)
                .collect()
                .await;
        for r in results {
            match r {
                Ok((ws, took)) => {
                    let _ = hist.record(took.as_micros().max(1) as u64);
                    held.push(ws);
                }
                Err(e) => {
                    failed += 1;
                    first_err.get_or_insert(e);
                }
            }
        }
        last_joined = t0.elapsed();
    }
    let (_, server_cpu, client_cpu) = measure.stop();
    let after = kernel_counters();
    if let Some(e) = first_err {
        eprintln!("warning: {failed} storm clients failed; first: {e:#}");
    }
    let kernel = after
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(*before.get(k).unwrap_or(v))))
        .collect();
    let joined = held.len() as u64;
    // Closed without waiting for each server's close answer.
    drop(held);
    let seconds = last_joined.as_secs_f64();
    let stats = StormStats {
        joined,
        failed,
        all_joined_s: seconds,
        time_to_joined: Percentiles::of(&hist),
        kernel,
    };
    Ok(Outcome {
        scenario: "storm",
        params: serde_json::to_value(a)?,
        measured_s: seconds,
        server_cpu,
        client_cpu,
        connect: ConnectStats {
            connected: joined,
            failed,
            seconds,
            per_s: joined as f64 / seconds.max(1e-9),
        },
        storm: Some(stats),
        tally: Tally {
            joins: joined,
            connect_failures: failed,
            ..Tally::default()
        },
        ..Outcome::default()
    })
}
