//! `chaos`: a fault campaign. Starts a cluster (Redis with AOF, its own
//! PostgreSQL, the Stripe contract double, two or three hub nodes), drives
//! a mixed load, injects faults from a seeded schedule, and checks the
//! books after every fault and at the end (docs/RELIABILITY.md).
//!
//! Owns: [`ChaosArgs`], [`run`] (the campaign's loop: load, fault,
//! recovery, quiesce, check) and its report. One file per concern:
//! [`cluster`] (processes), [`faults`] (the schedule), [`books`] (what the
//! clients know), [`load`], [`stripe`] and [`viewers`] (the load), [`check`] (the
//! invariants).
//! Must not: target anything but the loopback processes it started.

pub mod books;
pub mod check;
pub mod cluster;
pub mod faults;
pub mod load;
pub mod stripe;
pub mod viewers;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::Rng;
use serde_json::json;

use books::{Books, Gate, Nodes};
use check::Rules;
use cluster::{Double, Node, NodeSpec, Pg, Redis};
use faults::{Fault, Kind};
use load::World;

/// Parameters of `chaos`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    /// Seed of the fault schedule (and of the load's choices).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Faults to inject (numbers `--from-fault` .. `--faults` - 1).
    #[arg(long, default_value_t = 20)]
    pub faults: u64,
    /// Start at this fault number (the schedule is the same from there).
    #[arg(long, default_value_t = 0)]
    pub from_fault: u64,
    /// Fault kinds to draw from (comma-separated; default: every kind).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub kinds: Vec<Kind>,
    /// Hub nodes (2 or 3; `--nodes` is the scenarios' option).
    #[arg(long, default_value_t = 3)]
    pub hub_nodes: usize,
    /// Redis `appendfsync`: `always` or `everysec`.
    #[arg(long, default_value = "always")]
    pub fsync: String,
    /// `gift.ack`: `ledger` or `counter`.
    #[arg(long, default_value = "ledger")]
    pub ack: String,
    /// Gift senders.
    #[arg(long, default_value_t = 6)]
    pub senders: usize,
    /// Creators (each with one room and one video).
    #[arg(long, default_value_t = 3)]
    pub creators: usize,
    /// Viewers.
    #[arg(long, default_value_t = 12)]
    pub viewers: usize,
    /// Directory for the processes' data and logs (default: a temp dir,
    /// removed at the end unless the run failed).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// PostgreSQL's binaries (initdb, pg_ctl; default: the newest
    /// /usr/lib/postgresql/*/bin).
    #[arg(long, env = "GS_PG_BIN")]
    pub pg_bin: Option<PathBuf>,
    /// The Stripe double's binary (default: beside this one).
    #[arg(long)]
    pub double_bin: Option<PathBuf>,
}

/// Every fault kind the short run in scripts/test may use.
fn kinds(a: &ChaosArgs) -> Vec<Kind> {
    if a.kinds.is_empty() {
        Kind::ALL.to_vec()
    } else {
        a.kinds.clone()
    }
}

/// The newest /usr/lib/postgresql/*/bin holding initdb.
fn pg_bin() -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql: pass --pg-bin")?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop()
        .map(|(_, b)| b)
        .context("no PostgreSQL binaries: pass --pg-bin")
}

fn beside_me(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let p = me.parent().context("no folder")?.join(name);
    anyhow::ensure!(p.is_file(), "no {} beside {}", name, me.display());
    Ok(p)
}

/// The whole cluster.
struct Cluster {
    redis: Redis,
    pg: Pg,
    double: Double,
    nodes: Vec<Node>,
    spec: NodeSpec,
    http: reqwest::Client,
    shared: Arc<Nodes>,
    self_exits: u64,
}

impl Cluster {
    /// (Re)start every node that is not running.
    async fn heal(&mut self) -> anyhow::Result<()> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].paused {
                self.nodes[i].pause(false);
            }
            if !self.nodes[i].running() {
                self.shared.up[i].store(false, Ordering::Release);
                let mut tries = 0;
                loop {
                    tries += 1;
                    match self.spec.start(&mut self.nodes[i], &self.http).await {
                        Ok(()) => break,
                        Err(e) if tries < 5 => {
                            eprintln!("chaos: restarting node {i}: {e:#}; again");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
                self.shared.up[i].store(true, Ordering::Release);
            }
        }
        Ok(())
    }

    /// `giftstream reconcile [--repair]` with the nodes' configuration;
    /// answers its report.
    async fn reconcile(&self, repair: bool) -> anyhow::Result<serde_json::Value> {
        let mut c = tokio::process::Command::new(&self.spec.bin);
        c.arg("reconcile")
            .current_dir(&self.spec.dir)
            .envs(self.spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if repair {
            c.arg("--repair");
        }
        let out = c.output().await?;
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(&text).with_context(|| {
            format!(
                "reconcile: {} {}",
                text,
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

/// Inject fault `f` and recover from it (restarts included).
async fn inject(c: &mut Cluster, books: &Books, f: &Fault) -> anyhow::Result<serde_json::Value> {
    let down = Duration::from_millis(f.down_ms);
    let mut note = json!(null);
    match f.kind {
        Kind::NodeKill => {
            c.shared.up[f.node].store(false, Ordering::Release);
            c.nodes[f.node].kill9().await;
            tokio::time::sleep(down).await;
        }
        Kind::NodePause => {
            c.nodes[f.node].pause(true);
            tokio::time::sleep(down).await;
            c.nodes[f.node].pause(false);
        }
        Kind::RedisKill => {
            c.redis.kill9().await;
            if f.kind.may_lose_acked(c.redis.fsync_always()) {
                books.data_loss_epoch.fetch_add(1, Ordering::AcqRel);
            }
            tokio::time::sleep(down).await;
            c.redis.restart().await?;
            if f.kind.may_lose_acked(c.redis.fsync_always()) {
                books.data_loss_epoch.fetch_add(1, Ordering::AcqRel);
            }
        }
        Kind::RedisFlush => {
            let r = c.redis.command("FLUSHALL").await?;
            anyhow::ensure!(r.starts_with("+OK"), "FLUSHALL: {r}");
            books.data_loss_epoch.fetch_add(1, Ordering::AcqRel);
            tokio::time::sleep(down).await;
            // The operator's step (README): rebuild Redis from the ledger.
            note = c.reconcile(true).await?;
            // The room seqs jumped with the repair: connections made before
            // now may see the jump.
            books.data_loss_epoch.fetch_add(1, Ordering::AcqRel);
        }
        Kind::PgKill => {
            c.pg.kill().await?;
            tokio::time::sleep(down).await;
            c.pg.restart().await?;
        }
        Kind::Stripe500 => {
            c.double
                .set_mode(&[
                    ("mode", "fail".into()),
                    ("status", "500".into()),
                    ("n", f.down_ms.to_string()),
                ])
                .await?;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        Kind::StripeTimeout => {
            c.double
                .set_mode(&[("mode", "hang".into()), ("ms", f.down_ms.to_string())])
                .await?;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        Kind::WebhookChaos => {
            books.webhook_chaos.store(true, Ordering::Release);
            tokio::time::sleep(down).await;
            books.webhook_chaos.store(false, Ordering::Release);
        }
    }
    Ok(note)
}

/// Run the campaign; answers the process exit code (0: no violation).
pub async fn run(a: &ChaosArgs) -> anyhow::Result<i32> {
    anyhow::ensure!((2..=3).contains(&a.hub_nodes), "--hub-nodes: 2 or 3");
    anyhow::ensure!(
        a.fsync == "always" || a.fsync == "everysec",
        "--fsync: always or everysec"
    );
    anyhow::ensure!(
        a.ack == "ledger" || a.ack == "counter",
        "--ack: ledger or counter"
    );
    anyhow::ensure!(a.from_fault <= a.faults, "--from-fault is past --faults");
    let kinds = kinds(a);
    let (tmp, dir) = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            (None, d.clone())
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("giftstream-chaos-")
                .tempdir()?;
            let d = t.path().to_path_buf();
            (Some(t), d)
        }
    };
    // The postgres user must reach its sub-directory.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    }
    let started = Instant::now();
    let run_id = format!("c{:x}", a.seed % 0xffff_ffff);
    let secret = format!("chaos-{:032x}", rand::thread_rng().gen::<u128>());
    let webhook_secret = format!("whsec_{:032x}", rand::thread_rng().gen::<u128>());
    eprintln!(
        "chaos: seed {} faults {}..{} kinds {:?} nodes {} fsync {} ack {} dir {}",
        a.seed,
        a.from_fault,
        a.faults,
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        a.hub_nodes,
        a.fsync,
        a.ack,
        dir.display()
    );
    let redis = Redis::start(&dir, &a.fsync).await?;
    let pg_dir = match &a.pg_bin {
        Some(b) => b.clone(),
        None => pg_bin()?,
    };
    let pg = Pg::start(&dir, &pg_dir).await?;
    let double_bin = match &a.double_bin {
        Some(b) => b.clone(),
        None => beside_me("giftstream-stripe-double")?,
    };
    let double = Double::start(&double_bin, &dir).await?;
    let env: Vec<(String, String)> = [
        ("GIFTSTREAM_COUNTERS__URL", redis.url()),
        ("GIFTSTREAM_LEDGER__URL", pg.url()),
        ("GIFTSTREAM_AUTH__JWT_SECRET", secret.clone()),
        ("GIFTSTREAM_HUB__CONNECTIONS_PER_IP_MAX", "100000".into()),
        ("GIFTSTREAM_HUB__SOCKET_MSGS_PER_S_MAX", "100000".into()),
        (
            "GIFTSTREAM_ADMIN__GRANT_COINS_PER_DAY_MAX",
            i64::MAX.to_string(),
        ),
        ("GIFTSTREAM_HTTP__METRICS_LISTEN", "127.0.0.1:0".into()),
        (
            "GIFTSTREAM_SETTLEMENT__CLAIM_IDLE_MS",
            cluster::CLAIM_IDLE_MS.to_string(),
        ),
        ("GIFTSTREAM_GIFT__ACK", a.ack.clone()),
        ("GIFTSTREAM_STRIPE__SECRET_KEY", cluster::STRIPE_KEY.into()),
        ("GIFTSTREAM_STRIPE__WEBHOOK_SECRET", webhook_secret.clone()),
        ("GIFTSTREAM_STRIPE__API_BASE_URL", double.url.clone()),
        ("GIFTSTREAM_STRIPE__REQUEST_TIMEOUT_MS", "1000".into()),
        ("GIFTSTREAM_STRIPE__RETRY_LEN_MAX", "1".into()),
        ("GIFTSTREAM_STRIPE__RETRY_BACKOFF_MS", "50".into()),
        ("GIFTSTREAM_STRIPE__CASHOUT_DIAMONDS_MIN", "100".into()),
        (
            "GIFTSTREAM_STRIPE__CASHOUT_RETRY_INTERVAL_MS",
            "1000".into(),
        ),
        ("GIFTSTREAM_STRIPE__CASHOUT_RETRY_BACKOFF_MS", "500".into()),
        (
            "GIFTSTREAM_STRIPE__CASHOUT_RETRY_BACKOFF_MS_MAX",
            "2000".into(),
        ),
        ("GIFTSTREAM_PAYOUTS__HOLD_S", "0".into()),
        ("GIFTSTREAM_PAYOUTS__CASHOUTS_PER_DAY_MAX", "1000000".into()),
        (
            "GIFTSTREAM_PAYOUTS__CASHOUT_CENTS_PER_DAY_MAX",
            "1000000000".into(),
        ),
        ("GIFTSTREAM_LIMITS__ROOMS_PER_HOUR_MAX", "1000".into()),
        // Every purchase is a PaymentIntent: a long run buys far more than
        // the default 30 an hour per user.
        (
            "GIFTSTREAM_LIMITS__PAYMENT_INTENTS_PER_HOUR_MAX",
            "100000000".into(),
        ),
        (
            "RUST_LOG",
            std::env::var("GIFTSTREAM_CHAOS_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let bin = match std::env::var_os("GIFTSTREAM_CHAOS_SERVER_BIN") {
        Some(b) => PathBuf::from(b),
        None => crate::spawn::default_server_bin()?,
    };
    let spec = NodeSpec {
        bin,
        dir: dir.clone(),
        env,
    };
    let nodes: Vec<Node> = (0..a.hub_nodes)
        .map(|i| spec.node(i))
        .collect::<anyhow::Result<_>>()?;
    let shared = Arc::new(Nodes {
        urls: nodes.iter().map(Node::url).collect(),
        up: (0..a.hub_nodes).map(|_| AtomicBool::new(false)).collect(),
    });
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut c = Cluster {
        redis,
        pg,
        double,
        nodes,
        spec,
        http: http.clone(),
        shared: shared.clone(),
        self_exits: 0,
    };
    c.heal().await?;
    let books = Arc::new(Books::default());
    let gate = Arc::new(Gate::default());
    let tokens = crate::token::Tokens::new(&secret);
    let prices = crate::api::Api::new(&shared.urls[0], tokens.clone())?
        .catalog()
        .await?;
    let mut world = World {
        run: run_id.clone(),
        senders: (0..a.senders).map(|i| format!("{run_id}-s{i}")).collect(),
        creators: (0..a.creators).map(|i| format!("{run_id}-c{i}")).collect(),
        rooms: (0..a.creators)
            .map(|i| format!("{run_id}-room{i}"))
            .collect(),
        videos: (0..a.creators)
            .map(|i| format!("{run_id}-video{i}"))
            .collect(),
        accounts: HashMap::new(),
        prices,
        tokens,
        webhook_secret,
        http,
        nodes: shared.clone(),
        books: books.clone(),
        gate: gate.clone(),
    };
    world.setup().await?;
    let w = Arc::new(world);
    let mut tasks = Vec::new();
    for i in 0..a.senders {
        tasks.push(tokio::spawn(load::gifter(
            w.clone(),
            i,
            a.seed.wrapping_add(100 + i as u64),
        )));
    }
    for i in 0..a.viewers {
        tasks.push(tokio::spawn(viewers::viewer(
            w.clone(),
            i,
            a.seed.wrapping_add(1000 + i as u64),
        )));
    }
    tasks.push(tokio::spawn(load::purchaser(
        w.clone(),
        a.seed.wrapping_add(7),
    )));
    tasks.push(tokio::spawn(load::cashier(
        w.clone(),
        a.seed.wrapping_add(8),
    )));
    let rules = Rules {
        ledger_ack: a.ack == "ledger",
        fsync_always: a.fsync == "always",
    };
    let mut done: BTreeMap<u64, (Kind, Instant)> = BTreeMap::new();
    let mut by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut schedule: Vec<Fault> = Vec::new();
    let mut reconcile_reports = Vec::new();
    let mut verdict: Vec<String> = Vec::new();
    for n in a.from_fault..a.faults {
        let f = faults::fault(a.seed, n, &kinds, a.hub_nodes);
        books.window.store(n, Ordering::Release);
        schedule.push(f.clone());
        gate.set(true);
        tokio::time::sleep(Duration::from_millis(f.after_ms)).await;
        let t0 = Instant::now();
        done.insert(n, (f.kind, t0));
        let note = inject(&mut c, &books, &f)
            .await
            .with_context(|| format!("fault {n} ({})", f.kind.name()))?;
        if !note.is_null() {
            reconcile_reports.push(json!({ "fault": n, "report": note }));
        }
        *by_kind.entry(f.kind.name()).or_default() += 1;
        // Let the load see the recovered cluster for a moment, then quiesce.
        let self_exited = (0..c.nodes.len())
            .filter(|&i| {
                let killed = f.kind == Kind::NodeKill && i == f.node;
                !killed && !c.nodes[i].running()
            })
            .count();
        c.self_exits += self_exited as u64;
        c.heal().await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let quiet = gate.quiesce(Duration::from_secs(30)).await;
        c.double.set_mode(&[("mode", "normal".into())]).await?;
        c.heal().await?;
        let undelivered = w.drain_webhooks(Duration::from_secs(30)).await;
        let pending = check::settle(&w, Duration::from_secs(60)).await;
        let mut bad = check::check(&w, &c.pg, &c.double, &rules, &done).await?;
        if !quiet {
            bad.insert(0, "the load did not quiesce within 30 s".into());
        }
        if undelivered > 0 {
            bad.insert(
                0,
                format!("{undelivered} purchase webhooks not taken within 30 s"),
            );
        }
        if let Some(p) = pending {
            bad.insert(0, format!("not settled within 60 s: {p}"));
        }
        let counts = books.inner.lock().counts.clone();
        eprintln!(
            "chaos: fault {n} {} (node {}, {} ms) recovered+checked in {:.1}s: gifts {} purchases {} tips {} cashouts {} violations {}",
            f.kind.name(), f.node, f.down_ms, t0.elapsed().as_secs_f64(),
            counts.room_gifts_acked + counts.video_gifts_acked, counts.purchases, counts.tips,
            counts.cashouts_completed + counts.cashouts_pending + counts.cashouts_reversed, bad.len()
        );
        if !bad.is_empty() {
            for v in bad.iter().take(10) {
                eprintln!("chaos: VIOLATION after fault {n}: {v}");
            }
            verdict = bad;
            break;
        }
    }
    gate.stop();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let mut counts = books.inner.lock().counts.clone();
    counts.node_self_exits = c.self_exits;
    let summary = json!({
        "seed": a.seed, "from_fault": a.from_fault, "faults": a.faults,
        "faults_done": schedule.len(), "nodes": a.hub_nodes, "fsync": a.fsync, "ack": a.ack,
        "kinds": kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "faults_by_kind": by_kind, "counts": counts,
        "node_starts": c.nodes.iter().map(|n| n.starts).collect::<Vec<_>>(),
        "reconcile_repairs": reconcile_reports.len(),
        "violations": verdict.len(), "seconds": started.elapsed().as_secs_f64(),
    });
    for mut n in std::mem::take(&mut c.nodes) {
        n.stop().await;
    }
    if !verdict.is_empty() {
        println!(
            "VIOLATION (seed {}, replay: --seed {} --faults {} --from-fault {}):",
            a.seed, a.seed, a.faults, a.from_fault
        );
        println!("first wrong entry: {}", verdict[0]);
        for v in verdict.iter().skip(1).take(20) {
            println!("  also: {v}");
        }
        println!("schedule:");
        for f in &schedule {
            println!("  {}", serde_json::to_string(f)?);
        }
        println!("logs kept in {}", dir.display());
        if let Some(t) = tmp {
            let _ = t.keep();
        }
        println!("{summary}");
        return Ok(2);
    }
    println!("{summary}");
    Ok(0)
}
