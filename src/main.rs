//! The `giftstream` binary: `serve`, `token`, `watch`, `send`, `reconcile`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use giftstream::app::{self, ops, AppState};
use giftstream::auth::{Auth, Role, Scope};
use giftstream::config::{Config, DEV_JWT_SECRET};
use giftstream::ledger::CreditOp;

/// The process allocator. The server allocates and frees small objects
/// at a high rate on every thread (frames, events, pending gifts);
/// glibc's malloc spent about 30 % of the server's CPU in an ingest
/// profile (docs/BENCHMARKS.md, issue #16 item 5), mimalloc's per-thread
/// free lists cost a fraction of that. Built without transparent huge
/// pages (`no_thp` in Cargo.toml): they raised peak RSS by tens of MB.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "giftstream",
    version,
    about = "Real-time live-stream gifting engine"
)]
struct Cli {
    /// Config file (TOML). Default: config/default.toml if present, else built-in defaults.
    #[arg(long, global = true, env = "GIFTSTREAM_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Serve {
        /// Override http.listen.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Open room `demo` for `demo-creator`, give viewer-1..viewer-100 coins, print how to watch and gift.
        #[arg(long)]
        demo: bool,
        /// Once listening, write the bound address (`IP:PORT` and a newline)
        /// to this file, atomically (written aside, then renamed): how a
        /// supervisor or test learns the port of `--listen 127.0.0.1:0`.
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
    /// Print a signed token.
    Token {
        /// User id.
        user: String,
        /// Role (default: creator with --scope, else required).
        #[arg(long, value_enum, required_unless_present = "scope")]
        role: Option<Role>,
        /// Lifetime in seconds (at most `auth.token_lifetime_s_max`).
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
        /// Limit the token: `overlay:ROOM` opens only /v1/ws (join/resume
        /// of ROOM) and /overlay/ROOM.
        #[arg(long)]
        scope: Option<String>,
    },
    /// Watch a room: print every frame as a JSON line.
    Watch {
        /// Room id.
        #[arg(long)]
        room: String,
        /// Token (see `giftstream token`).
        #[arg(long, env = "GIFTSTREAM_TOKEN")]
        token: String,
        /// WebSocket URL.
        #[arg(long, default_value = "ws://127.0.0.1:8080/v1/ws")]
        url: String,
        /// Resume after this seq instead of joining fresh.
        #[arg(long)]
        since: Option<u64>,
    },
    /// Send gifts to a room.
    Send {
        /// Room id.
        #[arg(long)]
        room: String,
        /// Catalog gift id.
        #[arg(long, default_value = "rose")]
        gift: String,
        /// Units per gift message (1..=99).
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// How many gift messages.
        #[arg(long, default_value_t = 1)]
        times: u32,
        /// Prefix of the idempotency ids (default: random, so each run is new).
        #[arg(long)]
        id_prefix: Option<String>,
        /// Token.
        #[arg(long, env = "GIFTSTREAM_TOKEN")]
        token: String,
        /// WebSocket URL.
        #[arg(long, default_value = "ws://127.0.0.1:8080/v1/ws")]
        url: String,
    },
    /// Compare the Redis counters with the ledger and print the report
    /// (JSON); exits with status 2 when they drift and `--repair` was not
    /// given.
    Reconcile {
        /// Fix Redis from the ledger (the system of record).
        #[arg(long)]
        repair: bool,
    },
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<Config> {
    let path = path.or_else(|| {
        let p = PathBuf::from("config/default.toml");
        p.exists().then_some(p)
    });
    Ok(Config::load(path.as_deref())?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "giftstream=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Token {
            user,
            role,
            ttl,
            scope,
        } => {
            let cfg = load_config(cli.config)?;
            let scope = match scope.as_deref() {
                None => None,
                Some(s) => Some(Scope::parse(s).ok_or_else(|| {
                    anyhow::anyhow!("--scope: expected `overlay:ROOM`, got `{s}`")
                })?),
            };
            let role = role.unwrap_or(Role::Creator);
            println!(
                "{}",
                Auth::from_config(&cfg.auth)?.issue_scoped(&user, role, scope.as_ref(), ttl)?
            );
        }
        Cmd::Watch {
            room,
            token,
            url,
            since,
        } => giftstream::client::watch(&url, &token, &room, since).await?,
        Cmd::Send {
            room,
            gift,
            count,
            times,
            id_prefix,
            token,
            url,
        } => {
            let prefix = id_prefix
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_string());
            let acked =
                giftstream::client::send(&url, &token, &room, &gift, count, times, &prefix).await?;
            eprintln!("{acked} of {times} gifts acknowledged");
        }
        Cmd::Reconcile { repair } => {
            let cfg = load_config(cli.config)?;
            if !cfg.counters.url.starts_with("redis://")
                && !cfg.counters.url.starts_with("rediss://")
            {
                anyhow::bail!(
                    "reconcile compares Redis with the ledger; counters.url is `{}`",
                    giftstream::config::redact_url(&cfg.counters.url)
                );
            }
            let ledger = giftstream::ledger::open(&cfg.ledger.url, cfg.ledger.pool_len_max).await?;
            let counters = app::open_redis(&cfg).await?;
            let report = counters.reconcile(ledger.as_ref(), repair).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if repair {
                // Creators' blocks: the cache is made the ledger's again.
                let n = app::moderation::rebuild_block_cache(ledger.as_ref(), &counters).await?;
                eprintln!("block cache rebuilt for {n} creators");
            }
            if report.drift() > 0 && !repair {
                std::process::exit(2);
            }
        }
        Cmd::Serve {
            listen,
            demo,
            ready_file,
        } => {
            let mut cfg = load_config(cli.config)?;
            if let Some(l) = listen {
                cfg.http.listen = l;
            }
            // Outside --demo, whatever the config file: no development or
            // short secret (payments refuse them even with --demo).
            cfg.check_serve(demo)?;
            cfg.pages.demo = demo;
            if cfg.auth.jwt_secret == DEV_JWT_SECRET {
                tracing::warn!("--demo with the development JWT secret: anyone can forge tokens; never expose this server");
            }
            let running = giftstream::server::start(cfg).await?;
            tracing::info!(addr = %running.addr, metrics = ?running.metrics_addr, "giftstream listening");
            if let Some(path) = ready_file {
                let aside = path.with_extension("tmp");
                std::fs::write(&aside, format!("{}\n", running.addr))?;
                std::fs::rename(&aside, &path)?;
            }
            if demo {
                demo_setup(&running.state, running.addr).await?;
            }
            let stop = running.state.shutdown.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutting down: closing sockets, settling what was accepted");
                stop.cancel();
            });
            running.wait().await?;
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Coins each demo viewer gets (once; restarts do not grant again).
const DEMO_COINS: i64 = 10_000;

async fn demo_setup(state: &AppState, addr: SocketAddr) -> anyhow::Result<()> {
    ops::open_room(state, "demo", "demo-creator").await?;
    // A video too, for its page /videos/demo-video and the studio's list.
    ops::register_video(state, "demo-video", "demo-creator", Some("Demo video")).await?;
    for i in 1..=100 {
        let op = CreditOp {
            op_id: format!("grant:demo-viewer-{i}"),
            kind: "grant".into(),
            user: format!("viewer-{i}"),
            coins: DEMO_COINS,
        };
        ops::credit(state, op).await?;
    }
    let ttl = state.cfg.auth.overlay_token_ttl_s;
    let viewer = state.auth.issue("viewer-1", Role::Viewer, ttl)?;
    let creator = state.auth.issue("demo-creator", Role::Creator, ttl)?;
    // The overlay URL carries a token that opens only this room's overlay
    // (it ends up in OBS settings and screenshots).
    let overlay = state.auth.issue_scoped(
        "demo-creator",
        Role::Creator,
        Some(&Scope::overlay("demo")),
        ttl,
    )?;
    let secret_note = if state.cfg.auth.jwt_secret == DEV_JWT_SECRET {
        "\nJWT secret: the public DEVELOPMENT secret (anyone can forge tokens; demo only).\n"
    } else {
        ""
    };
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "giftstream".into());
    let url = format!("ws://{addr}/v1/ws");
    println!(
        "\n=== giftstream demo is live ===\n\
         Open http://{addr}/demo/login in a browser: sign in as a viewer or the creator\n\
         (the creator's studio: http://{addr}/studio; a video's page: http://{addr}/videos/demo-video).\n\n\
         room `demo` of creator `demo-creator`; viewer-1..viewer-100 hold {DEMO_COINS} coins each.\n\n\
         Watch the room (in another terminal):\n  {exe} watch --url {url} --room demo --token {viewer}\n\n\
         Send 5 roses as viewer-1:\n  {exe} send --url {url} --room demo --gift rose --times 5 --token {viewer}\n\n\
         Creator's earnings:\n  curl -s -H 'Authorization: Bearer {creator}' http://{addr}/v1/creators/demo-creator/earnings\n\n\
         Creator's OBS overlay (a browser source; open it in a browser to see gifts animate;\n\
         its token opens only this overlay):\n  http://{addr}/overlay/demo?token={overlay}\n\n\
         viewer-1's wallet:\n  curl -s -H 'Authorization: Bearer {viewer}' http://{addr}/v1/wallet\n\n\
         Any other token: {exe} token viewer-2 --role viewer\n\
         Stop with Ctrl-C: sockets close with 1001 and everything accepted is settled.\n{secret_note}"
    );
    Ok(())
}
