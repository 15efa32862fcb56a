//! The command line: global options and one subcommand per scenario.
//!
//! Owns: [`Cli`], [`Common`] (server, encoding, tokens, sources, chart)
//! and [`Scenario`]. Every count and duration has a default and a bound
//! checked by the scenario before it starts.
//! Must not: do anything but describe and parse.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::chaos::ChaosArgs;
use crate::floor::FloorArgs;
use crate::markdown::MarkdownArgs;
use crate::scenarios::conns::ConnsArgs;
use crate::scenarios::fanout::FanoutArgs;
use crate::scenarios::ingest::IngestArgs;
use crate::scenarios::mixed::MixedArgs;
use crate::scenarios::storm::StormArgs;
use crate::token::DEV_JWT_SECRET;
use crate::wire::Encoding;

/// giftstream load generator: speaks protocol v1 over real loopback sockets,
/// measures what clients see and what the server spends, checks that no
/// coin or diamond was lost.
#[derive(Debug, Parser)]
#[command(name = "giftstream-loadtest", version)]
pub struct Cli {
    /// Options of every scenario.
    #[command(flatten)]
    pub common: Common,
    /// What load to make.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Options of every scenario.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Base URL of a running server (loopback only).
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:8080",
        env = "GIFTSTREAM_LOADTEST_URL"
    )]
    pub url: String,
    /// Start a giftstream server as a child process (temp SQLite ledger), benchmark it, stop it.
    #[arg(long, global = true)]
    pub spawn: bool,
    /// The giftstream binary for --spawn (default: beside this binary).
    #[arg(long, global = true)]
    pub server_bin: Option<PathBuf>,
    /// Several nodes of one deployment (comma-separated base URLs, loopback
    /// only): viewers and senders connect to them round robin; set-up and
    /// the conservation check go through the first. Overrides --url; not
    /// with --spawn.
    #[arg(long, global = true, value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Server processes to measure (CPU and RSS, summed; comma-separated,
    /// one per node); automatic with --spawn.
    #[arg(long, global = true, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// HS256 secret the server verifies tokens with.
    #[arg(long, global = true, default_value = DEV_JWT_SECRET, env = "GIFTSTREAM_LOADTEST_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
    /// Wire encoding of every socket.
    #[arg(long, global = true, value_enum, default_value = "json")]
    pub encoding: Encoding,
    /// Loopback source addresses to spread connections over (127.0.0.2, ...; 0: kernel's choice).
    #[arg(long, global = true, default_value_t = 8)]
    pub source_addrs: u8,
    /// WebSocket handshakes in flight at most.
    #[arg(long, global = true, default_value_t = 256)]
    pub handshakes: usize,
    /// Write a PNG chart of throughput and latency percentiles over time.
    #[arg(long, global = true)]
    pub chart: Option<PathBuf>,
    /// No progress bars (they show only on a terminal anyway).
    #[arg(long, global = true)]
    pub quiet: bool,
    /// After the run, start the floor server (`floor-server`, a child
    /// process), run the same scenario against it, and report giftstream's
    /// cost as a ratio to the floor's (CPU per delivery, p99, time to join).
    #[arg(long, global = true)]
    pub compare_floor: bool,
    /// After the run (and the floor's), start the Node peer
    /// (`loadtest/node-peer/server.js`: a plain Node.js `ws` broadcast
    /// server; `npm ci --prefix loadtest/node-peer` first), run the same
    /// scenario against it, and report giftstream's cost as a ratio to it.
    #[arg(long, global = true)]
    pub compare_node: bool,
    /// The spawned server's per-socket message budget,
    /// `hub.socket_msgs_per_s_max` (GIFTSTREAM_HUB__SOCKET_MSGS_PER_S_MAX;
    /// the server's default is 1000). Raised by default so that load
    /// senders are not slowed by it; ingest benchmarks need it raised.
    #[arg(long, global = true, default_value_t = crate::spawn::SOCKET_MSGS_PER_S_RAISED)]
    pub socket_msgs_per_s: u64,
}

/// The scenarios.
#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// M rooms x N viewers x S senders per room at R gifts/s each, for D seconds.
    Fanout(FanoutArgs),
    /// C idle joined connections: server RSS per connection and time to connect.
    Conns(ConnsArgs),
    /// K senders as fast as acks return, W in flight each.
    Ingest(IngestArgs),
    /// A realistic live: idle majority, heavy and light gifters, churn, reconnects.
    Mixed(MixedArgs),
    /// N clients connecting at once in batches: time to `joined`, kernel drops.
    Storm(StormArgs),
    /// Not a scenario: markdown tables (docs/BENCHMARKS.md) from saved runs' output.
    Markdown(MarkdownArgs),
    /// Not a scenario: the floor server to compare against (see `--compare-floor`).
    FloorServer(FloorArgs),
    /// Not a scenario: the fault campaign (its own cluster; docs/RELIABILITY.md).
    Chaos(ChaosArgs),
}

impl Scenario {
    /// Whether the scenario gifts (and so gets a conservation check).
    pub fn gifts(&self) -> bool {
        !matches!(
            self,
            Scenario::Conns(_)
                | Scenario::Storm(_)
                | Scenario::Markdown(_)
                | Scenario::FloorServer(_)
                | Scenario::Chaos(_)
        )
    }
}
