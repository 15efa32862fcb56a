//! `mixed`: a realistic live.
//!
//! Rooms of very different sizes (viewers spread by weight 1/(rank+1)),
//! each creator watching its own feed, most viewers idle, a few heavy
//! gifters sending combo bursts, many light gifters sending now and then,
//! viewers leaving for another room, and viewers dropping their connection
//! and coming back with `resume` from their last seq (or a fresh `join`
//! when the history is gone). Measures deliveries, latency, gaps, churn
//! counts, errors, and the server's CPU over the whole live.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rand::Rng;
use serde::Serialize;
use tokio::time::Instant;

use super::{Books, Ctx, Measure, Outcome};
use crate::conn::{Connector, Ws};
use crate::metrics::{Live, Percentiles, Sampler, Tally};
use crate::sender::{self, Pace, SendPlan};
use crate::token::{Role, Tokens};
use crate::viewer::{self, Seen, Watcher};
use crate::wire::{decode, Out, Received};

/// Parameters of `mixed`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct MixedArgs {
    /// Rooms.
    #[arg(long, default_value_t = 4)]
    pub rooms: usize,
    /// Viewers in all rooms together.
    #[arg(long, default_value_t = 1000)]
    pub viewers: usize,
    /// Heavy gifters (combo bursts at `--heavy-rate`).
    #[arg(long, default_value_t = 8)]
    pub heavy: usize,
    /// Mean gifts per second of one heavy gifter.
    #[arg(long, default_value_t = 5.0)]
    pub heavy_rate: f64,
    /// Light gifters (at `--light-rate`).
    #[arg(long, default_value_t = 40)]
    pub light: usize,
    /// Mean gifts per second of one light gifter.
    #[arg(long, default_value_t = 0.2)]
    pub light_rate: f64,
    /// Room changes (leave + join elsewhere) per second, all viewers together.
    #[arg(long, default_value_t = 5.0)]
    pub churn_per_s: f64,
    /// Reconnects (drop + resume) per second, all viewers together.
    #[arg(long, default_value_t = 2.0)]
    pub reconnects_per_s: f64,
    /// Seconds of the live.
    #[arg(long, default_value_t = 20.0)]
    pub duration_s: f64,
}

/// Room index picked by weight 1/(rank+1).
fn pick_room(rooms: usize, rng: &mut impl Rng) -> usize {
    let total: f64 = (0..rooms).map(|i| 1.0 / (i as f64 + 1.0)).sum();
    let mut x = rng.gen_range(0.0..total);
    for i in 0..rooms {
        x -= 1.0 / (i as f64 + 1.0);
        if x <= 0.0 {
            return i;
        }
    }
    rooms - 1
}

/// An exponential wait with `mean_s`, or never.
fn exp_wait(mean_s: Option<f64>, rng: &mut impl Rng) -> Duration {
    match mean_s {
        Some(m) if m.is_finite() && m > 0.0 => {
            let u: f64 = rng.gen_range(1e-9..1.0);
            Duration::from_secs_f64((-u.ln() * m).min(86_400.0))
        }
        _ => Duration::from_secs(86_400),
    }
}

enum Act {
    Frame(
        Option<
            Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
        >,
    ),
    End,
    Churn,
    Reconnect,
}

struct Churner {
    connector: Arc<Connector>,
    tokens: Tokens,
    user: String,
    role: Role,
    rooms: Arc<Vec<Arc<str>>>,
    live: Arc<Live>,
    churn_mean_s: Option<f64>,
    reconnect_mean_s: Option<f64>,
    end: Instant,
}

impl Churner {
    async fn run(self, ws: Ws, room: usize, mut w: Watcher) -> Tally {
        let mut ws = Some(ws);
        let mut room = room;
        let (mut next_churn, mut next_reconnect) = {
            let mut rng = rand::thread_rng();
            (
                Instant::now() + exp_wait(self.churn_mean_s, &mut rng),
                Instant::now() + exp_wait(self.reconnect_mean_s, &mut rng),
            )
        };
        Live::bump(&self.live.open);
        while let Some(sock) = ws.as_mut() {
            let act = tokio::select! {
                m = sock.next() => Act::Frame(m),
                _ = tokio::time::sleep_until(self.end) => Act::End,
                _ = tokio::time::sleep_until(next_churn) => Act::Churn,
                _ = tokio::time::sleep_until(next_reconnect) => Act::Reconnect,
            };
            match act {
                Act::Frame(Some(Ok(msg))) => match decode(&msg) {
                    Received::Frame(f) => {
                        if w.on_frame(&f, &self.live) == Seen::Ended {
                            break;
                        }
                    }
                    Received::Close(code) => {
                        w.tally.close(code);
                        break;
                    }
                    Received::Garbled => w.tally.garbled += 1,
                    Received::Control => {}
                },
                Act::Frame(_) => {
                    w.tally.close(None);
                    break;
                }
                Act::End => break,
                Act::Churn => {
                    let to = pick_room(self.rooms.len(), &mut rand::thread_rng());
                    match self.change_room(sock, room, to, &mut w).await {
                        Ok(()) => room = to,
                        Err(e) => {
                            w.tally.error(&format!("churn: {}", short(&e)));
                            break;
                        }
                    }
                    next_churn =
                        Instant::now() + exp_wait(self.churn_mean_s, &mut rand::thread_rng());
                }
                Act::Reconnect => {
                    if let Some(mut old) = ws.take() {
                        let _ = tokio::time::timeout(Duration::from_secs(2), old.close(None)).await;
                    }
                    match self.reconnect(room, &mut w).await {
                        Ok(s) => {
                            ws = Some(s);
                            w.tally.reconnects += 1;
                        }
                        Err(e) => {
                            w.tally.error(&format!("reconnect: {}", short(&e)));
                            break;
                        }
                    }
                    next_reconnect =
                        Instant::now() + exp_wait(self.reconnect_mean_s, &mut rand::thread_rng());
                }
            }
        }
        if let Some(mut s) = ws {
            let _ = tokio::time::timeout(Duration::from_secs(2), s.close(None)).await;
        }
        self.live
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        w.finish()
    }

    /// Leave `from` and join `to` on the same socket.
    async fn change_room(
        &self,
        sock: &mut Ws,
        from: usize,
        to: usize,
        w: &mut Watcher,
    ) -> anyhow::Result<()> {
        let enc = self.connector.encoding();
        let leave = Out::Leave {
            room: &self.rooms[from],
        };
        viewer::request(sock, enc, leave, "left", Some((&mut *w, &self.live))).await?;
        let seq = viewer::join(sock, enc, &self.rooms[to]).await?;
        w.tally.leaves += 1;
        w.tally.joins += 1;
        w.rejoined(seq);
        Ok(())
    }

    /// Connect again and resume from the last seq seen; join fresh if the
    /// history no longer reaches back.
    async fn reconnect(&self, room: usize, w: &mut Watcher) -> anyhow::Result<Ws> {
        let enc = self.connector.encoding();
        let token = self.tokens.sign(&self.user, self.role)?;
        let mut ws = self.connector.connect(&token).await?;
        let since = w.last_seq;
        let resumed = viewer::request(
            &mut ws,
            enc,
            Out::Resume {
                room: &self.rooms[room],
                since,
            },
            "resumed",
            Some((w, &self.live)),
        )
        .await;
        match resumed {
            Ok(_) => w.tally.resumes += 1,
            Err(e) if e.to_string().contains("history_gone") => {
                w.tally.error("history_gone");
                let seq = viewer::join(&mut ws, enc, &self.rooms[room]).await?;
                w.rejoined(seq);
                w.tally.joins += 1;
            }
            Err(e) => return Err(e),
        }
        Ok(ws)
    }
}

fn short(e: &anyhow::Error) -> String {
    let s = e.to_string();
    s.split(':').next().unwrap_or(&s).to_string()
}

/// Run `mixed`.
pub async fn run(ctx: &Ctx, a: &MixedArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(a.rooms >= 1, "need at least one room");
    anyhow::ensure!(a.duration_s > 0.0, "duration must be > 0");
    let rooms = ctx.rooms(a.rooms).await?;
    let names: Arc<Vec<Arc<str>>> = Arc::new(rooms.iter().map(|r| r.name.clone()).collect());
    let gifts: Vec<(String, crate::api::Price)> =
        ["rose", "finger_heart", "perfume", "hand_hearts"]
            .iter()
            .filter_map(|g| ctx.prices.get(*g).map(|p| (g.to_string(), *p)))
            .collect();
    anyhow::ensure!(
        !gifts.is_empty(),
        "the catalog has none of the gifts mixed uses"
    );

    let gifters: Vec<String> = (0..a.heavy + a.light).map(|i| ctx.user("g", i)).collect();
    let granted = ctx.api.grant_all(&gifters, 10_000_000, &ctx.run).await?;

    let mut rng = rand::thread_rng();
    let mut who: Vec<(String, Role, usize)> = (0..a.viewers)
        .map(|i| (ctx.user("v", i), Role::Viewer, pick_room(a.rooms, &mut rng)))
        .collect();
    // Each creator watches its own room's feed.
    who.extend(
        rooms
            .iter()
            .enumerate()
            .map(|(i, r)| (r.creator.clone(), Role::Creator, i)),
    );
    let roles: Vec<(String, Role)> = who.iter().map(|(u, r, _)| (u.clone(), *r)).collect();
    let (socks, connect) = ctx.connect_joined(who, &rooms).await;
    let gifter_socks = ctx
        .connect_plain(
            &gifters
                .iter()
                .map(|g| (g.clone(), Role::Viewer))
                .collect::<Vec<_>>(),
        )
        .await?;

    let measure = Measure::start(ctx);
    let sampler = Sampler::start(ctx.live.clone());
    let bar = ctx.timed_bar(a.duration_s.ceil() as u64, "mixed");
    let end = Instant::now() + Duration::from_secs_f64(a.duration_s + 2.0);
    let per_viewer = |rate: f64| (rate > 0.0).then(|| a.viewers.max(1) as f64 / rate);
    let viewer_tasks: Vec<_> = socks
        .into_iter()
        .map(|(ws, room, seq, task)| {
            let (user, role) = roles[task].clone();
            let is_creator = role == Role::Creator;
            let c = Churner {
                connector: ctx.connector.clone(),
                tokens: ctx.tokens.clone(),
                user,
                role,
                rooms: names.clone(),
                live: ctx.live.clone(),
                // Creators stay on their own feed.
                churn_mean_s: if is_creator {
                    None
                } else {
                    per_viewer(a.churn_per_s)
                },
                reconnect_mean_s: if is_creator {
                    None
                } else {
                    per_viewer(a.reconnects_per_s)
                },
                end,
            };
            tokio::spawn(c.run(ws, room, Watcher::new(ctx.run.clone(), task, seq)))
        })
        .collect();
    let gifter_tasks: Vec<_> = gifter_socks
        .into_iter()
        .enumerate()
        .map(|(i, ws)| {
            let heavy = i < a.heavy;
            let (gift, price) = gifts[if heavy { i % gifts.len() } else { 0 }].clone();
            let plan = SendPlan {
                run: ctx.run.clone(),
                sender: i,
                room: names[pick_room(a.rooms, &mut rand::thread_rng())].clone(),
                gift: gift.into(),
                count: 1,
                price,
                pace: Pace::Bursts(if heavy { a.heavy_rate } else { a.light_rate }),
                window: 256,
                duration: Duration::from_secs_f64(a.duration_s),
                drain: Duration::from_secs(10),
                encoding: ctx.connector.encoding(),
            };
            tokio::spawn(sender::send(ws, plan, ctx.live.clone()))
        })
        .collect();
    let mut tally = Tally::default();
    for t in gifter_tasks {
        tally.merge(t.await?.tally);
    }
    for t in viewer_tasks {
        tally.merge(t.await?);
    }
    tally.connect_failures += connect.failed;
    let (measured_s, server_cpu, client_cpu) = measure.stop();
    let timeline = sampler.stop().await;
    if let Some(b) = bar {
        b.abort();
    }
    Ok(Outcome {
        storm: None,
        scenario: "mixed",
        params: serde_json::to_value(a)?,
        measured_s,
        server_cpu,
        client_cpu,
        connect,
        timeline,
        delivery_latency: Percentiles::of(&ctx.live.delivery_latency.total()),
        ack_latency: Percentiles::of(&ctx.live.ack_latency.total()),
        expected_deliveries: None,
        books: Some(Books {
            senders: gifters,
            granted,
            creators: rooms.iter().map(|r| r.creator.clone()).collect(),
        }),
        rss: None,
        tally,
    })
}
