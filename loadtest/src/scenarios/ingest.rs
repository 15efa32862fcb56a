//! `ingest`: K senders gifting as fast as acks return, W in flight each.
//!
//! Rooms have no viewers, so this measures the gift path alone: decode,
//! the atomic counters step, the ack, and settlement keeping up behind it.
//! Measures acks/s, send -> ack latency, errors by code, and the server CPU
//! per acked gift.

use std::time::Duration;

use serde::Serialize;

use super::{Books, Ctx, Measure, Outcome};
use crate::metrics::{Percentiles, Sampler, Tally};
use crate::sender::{self, Pace, SendPlan};
use crate::token::Role;

/// Parameters of `ingest`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct IngestArgs {
    /// Senders (K), one socket each.
    #[arg(long, default_value_t = 16)]
    pub senders: usize,
    /// Gifts in flight per sender (W).
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Rooms the senders spread over.
    #[arg(long, default_value_t = 4)]
    pub rooms: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Catalog gift to send.
    #[arg(long, default_value = "rose")]
    pub gift: String,
    /// Seconds to wait for the last acks after sending stops.
    #[arg(long, default_value_t = 15.0)]
    pub drain_s: f64,
}

/// Run `ingest`.
pub async fn run(ctx: &Ctx, a: &IngestArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        a.senders >= 1 && a.rooms >= 1 && a.window >= 1,
        "senders, rooms and window must be >= 1"
    );
    anyhow::ensure!(a.duration_s > 0.0, "duration must be > 0");
    let price = ctx.price(&a.gift)?;
    let rooms = ctx.rooms(a.rooms).await?;
    let senders: Vec<String> = (0..a.senders).map(|i| ctx.user("s", i)).collect();
    // As many coins as a grant may carry: the flood must not run dry.
    let granted = ctx.api.grant_all(&senders, 1_000_000_000, &ctx.run).await?;
    let t0 = std::time::Instant::now();
    let socks = ctx
        .connect_plain(
            &senders
                .iter()
                .map(|s| (s.clone(), Role::Viewer))
                .collect::<Vec<_>>(),
        )
        .await?;
    let connect_s = t0.elapsed().as_secs_f64();

    let measure = Measure::start(ctx);
    let sampler = Sampler::start(ctx.live.clone());
    let bar = ctx.timed_bar(a.duration_s.ceil() as u64, "ingest");
    let tasks: Vec<_> = socks
        .into_iter()
        .enumerate()
        .map(|(i, ws)| {
            let plan = SendPlan {
                run: ctx.run.clone(),
                sender: i,
                room: rooms[i % rooms.len()].name.clone(),
                gift: a.gift.as_str().into(),
                count: 1,
                price,
                pace: Pace::Flood,
                window: a.window,
                duration: Duration::from_secs_f64(a.duration_s),
                drain: Duration::from_secs_f64(a.drain_s),
                encoding: ctx.connector.encoding(),
            };
            tokio::spawn(sender::send(ws, plan, ctx.live.clone()))
        })
        .collect();
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await?.tally);
    }
    let (measured_s, server_cpu, client_cpu) = measure.stop();
    let timeline = sampler.stop().await;
    if let Some(b) = bar {
        b.abort();
    }
    Ok(Outcome {
        storm: None,
        scenario: "ingest",
        params: serde_json::to_value(a)?,
        measured_s,
        server_cpu,
        client_cpu,
        connect: super::ConnectStats {
            connected: a.senders as u64,
            failed: 0,
            seconds: connect_s,
            per_s: a.senders as f64 / connect_s.max(1e-9),
        },
        timeline,
        delivery_latency: Percentiles::default(),
        ack_latency: Percentiles::of(&ctx.live.ack_latency.total()),
        expected_deliveries: None,
        books: Some(Books {
            senders,
            granted,
            creators: rooms.iter().map(|r| r.creator.clone()).collect(),
        }),
        rss: None,
        tally,
    })
}
