//! `fanout`: M rooms x N viewers x S senders per room at R gifts/s each.
//!
//! Every viewer joins first; then senders gift at their pace for the
//! duration; then each room's final seq (the highest acked) is the finish
//! line every viewer reads up to (bounded by `--drain-s`). Measures
//! deliveries/s, send -> viewer latency, seq gaps, `skipped`, errors, and
//! the server CPU per delivery.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::{Books, Ctx, Measure, Outcome};
use crate::metrics::{Percentiles, Sampler, Tally};
use crate::sender::{self, Pace, SendPlan};
use crate::token::Role;
use crate::viewer::{self, Phase, RunEnd, Watcher};

/// Parameters of `fanout`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct FanoutArgs {
    /// Rooms (M).
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Viewers per room (N).
    #[arg(long, default_value_t = 100)]
    pub viewers: usize,
    /// Senders per room (S).
    #[arg(long, default_value_t = 1)]
    pub senders: usize,
    /// Gifts per second per sender (R).
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Seconds of sending (D).
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Catalog gift to send.
    #[arg(long, default_value = "rose")]
    pub gift: String,
    /// Units per gift message.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Gifts in flight per sender at most.
    #[arg(long, default_value_t = 1024)]
    pub window: usize,
    /// Seconds to wait for the last acks and events after sending stops.
    #[arg(long, default_value_t = 15.0)]
    pub drain_s: f64,
    /// A folder shared by several load-generator processes of one run
    /// (`scripts/sockets-100k`): once its viewers joined, this process
    /// puts a file in it and waits until `--barrier-len` files are there,
    /// so that no process sends while others still connect.
    #[arg(long)]
    pub barrier_dir: Option<std::path::PathBuf>,
    /// Processes to wait for at the barrier (this one included).
    #[arg(long, default_value_t = 1)]
    pub barrier_len: usize,
    /// Longest wait at the barrier, seconds.
    #[arg(long, default_value_t = 900.0)]
    pub barrier_wait_s_max: f64,
}

/// Wait at the barrier of `a` (if any): put this process's file in the
/// folder, then wait (bounded) until `barrier_len` files are there.
async fn barrier(a: &FanoutArgs) -> anyhow::Result<()> {
    let Some(dir) = &a.barrier_dir else {
        return Ok(());
    };
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("joined.{}", std::process::id())), b"")?;
    let t0 = std::time::Instant::now();
    loop {
        let here = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("joined."))
            .count();
        if here >= a.barrier_len {
            return Ok(());
        }
        anyhow::ensure!(
            t0.elapsed().as_secs_f64() < a.barrier_wait_s_max,
            "barrier {}: {here} of {} processes after {} s",
            dir.display(),
            a.barrier_len,
            a.barrier_wait_s_max
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run `fanout`.
pub async fn run(ctx: &Ctx, a: &FanoutArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        a.rooms >= 1 && a.senders >= 1,
        "need at least one room and one sender"
    );
    anyhow::ensure!(
        a.rate > 0.0 && a.duration_s > 0.0,
        "rate and duration must be > 0"
    );
    let price = ctx.price(&a.gift)?;
    let rooms = ctx.rooms(a.rooms).await?;

    // Coins: what the planned gifts cost, twice over (bursts), at least 1000.
    let per_sender_gifts = (a.rate * a.duration_s).ceil() as i64 + 1;
    let coins =
        (per_sender_gifts * price.coins * i64::from(a.count) * 2).clamp(1000, 1_000_000_000);
    let senders: Vec<String> = (0..a.rooms * a.senders).map(|i| ctx.user("s", i)).collect();
    let granted = ctx.api.grant_all(&senders, coins, &ctx.run).await?;

    let who = (0..a.rooms * a.viewers)
        .map(|i| (ctx.user("v", i), Role::Viewer, i % a.rooms))
        .collect();
    let (viewers, connect) = ctx.connect_joined(who, &rooms).await;
    let sender_socks = ctx
        .connect_plain(
            &senders
                .iter()
                .map(|s| (s.clone(), Role::Viewer))
                .collect::<Vec<_>>(),
        )
        .await?;
    barrier(a).await?;

    let (phase_tx, phase_rx) = watch::channel(Phase::Run);
    let finals: Arc<Vec<AtomicU64>> =
        Arc::new((0..a.rooms).map(|_| AtomicU64::new(u64::MAX)).collect());
    let end = RunEnd {
        phase: phase_rx,
        finals: finals.clone(),
    };
    let mut per_room_viewers = vec![0u64; a.rooms];
    let mut viewer_tasks = Vec::with_capacity(viewers.len());
    for (ws, room, seq, task) in viewers {
        per_room_viewers[room] += 1;
        let w = Watcher::new(ctx.run.clone(), task, seq);
        viewer_tasks.push(tokio::spawn(viewer::watch(
            ws,
            room,
            w,
            ctx.live.clone(),
            end.clone(),
        )));
    }

    let measure = Measure::start(ctx);
    let sampler = Sampler::start(ctx.live.clone());
    let bar = ctx.timed_bar(a.duration_s.ceil() as u64, "fanout");
    let mut sender_tasks = Vec::new();
    for (i, ws) in sender_socks.into_iter().enumerate() {
        let room = i % a.rooms;
        let plan = SendPlan {
            run: ctx.run.clone(),
            sender: i,
            room: rooms[room].name.clone(),
            gift: a.gift.as_str().into(),
            count: a.count,
            price,
            pace: Pace::Rate(a.rate),
            window: a.window,
            duration: Duration::from_secs_f64(a.duration_s),
            drain: Duration::from_secs_f64(a.drain_s),
            encoding: ctx.connector.encoding(),
        };
        sender_tasks.push((room, tokio::spawn(sender::send(ws, plan, ctx.live.clone()))));
    }
    let mut tally = Tally::default();
    let mut room_max = vec![0u64; a.rooms];
    let mut acked_per_room = vec![0u64; a.rooms];
    for (room, t) in sender_tasks {
        let r = t.await?;
        room_max[room] = room_max[room].max(r.max_seq);
        acked_per_room[room] += r.tally.acked;
        tally.merge(r.tally);
    }
    for (f, m) in finals.iter().zip(&room_max) {
        f.store(*m, Ordering::Release);
    }
    let _ = phase_tx.send(Phase::Drain);
    let drain = Duration::from_secs_f64(a.drain_s);
    let abort = tokio::spawn(async move {
        tokio::time::sleep(drain).await;
        let _ = phase_tx.send(Phase::Abort);
        // Keep the channel open until every viewer has stopped.
        std::future::pending::<()>().await;
    });
    for t in viewer_tasks {
        tally.merge(t.await?);
    }
    abort.abort();
    let (measured_s, server_cpu, client_cpu) = measure.stop();
    let timeline = sampler.stop().await;
    if let Some(b) = bar {
        b.abort();
    }
    let expected: u64 = acked_per_room
        .iter()
        .zip(&per_room_viewers)
        .map(|(g, v)| g * v)
        .sum();
    Ok(Outcome {
        storm: None,
        scenario: "fanout",
        params: serde_json::to_value(a)?,
        measured_s,
        server_cpu,
        client_cpu,
        connect,
        timeline,
        delivery_latency: Percentiles::of(&ctx.live.delivery_latency.total()),
        ack_latency: Percentiles::of(&ctx.live.ack_latency.total()),
        expected_deliveries: Some(expected),
        books: Some(Books {
            senders,
            granted,
            creators: rooms.iter().map(|r| r.creator.clone()).collect(),
        }),
        rss: None,
        tally: Tally {
            connect_failures: tally.connect_failures + connect.failed,
            ..tally
        },
    })
}
