//! giftstream-loadtest: a load generator that speaks giftstream's wire
//! protocol v1 over real loopback sockets, like any outside client.
//!
//! # Layout
//!
//! One file per concern:
//!
//! - [`cli`]: the command line (global options, one subcommand per scenario).
//! - [`wire`]: protocol v1 frames as a client sees them; gift ids that carry
//!   their send time.
//! - [`token`]: HS256 tokens signed locally from `--jwt-secret`.
//! - [`conn`]: sockets from several loopback source addresses, the
//!   WebSocket handshake, the open-files limit.
//! - [`api`]: HTTP set-up (rooms, grants) and read-back (wallets, earnings).
//! - [`viewer`] and [`sender`]: what one socket does and accounts for.
//! - [`scenarios`]: `fanout`, `conns`, `ingest`, `mixed`, `storm`.
//! - [`floor`]: `floor-server`, the floor to compare against (`--compare-floor`);
//!   the Node peer (`--compare-node`) is `node-peer/server.js`, spawned by [`spawn`].
//! - [`metrics`]: live counters, HDR histograms, the per-second series.
//! - [`probe`]: the server's CPU and RSS from `/proc`.
//! - [`spawn`]: `--spawn`, a server as a child process.
//! - [`conservation`]: coins and diamonds add up after the run.
//! - [`report`] and [`chart`]: the summary, the JSON line, the PNG.
//! - [`markdown`]: tables for docs/BENCHMARKS.md from saved runs;
//!   [`peers_table`]: the issue #16 table (giftstream, Node peer, floor);
//!   [`saved`]: the saved runs both read.
//! - [`chaos`]: the fault campaign (`chaos`, docs/RELIABILITY.md).
//!
//! Everything is bounded: counts come from the command line, every wait has
//! a timeout, every phase a duration, and only loopback is ever targeted.

#![warn(missing_docs)]

pub mod api;
pub mod chaos;
pub mod chart;
pub mod cli;
pub mod conn;
pub mod conservation;
pub mod floor;
pub mod markdown;
pub mod metrics;
pub mod peers_table;
pub mod probe;
pub mod report;
pub mod saved;
pub mod scenarios;
pub mod sender;
pub mod spawn;
pub mod token;
pub mod viewer;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use rand::Rng;

use crate::cli::{Cli, Scenario};
use crate::conn::Connector;
use crate::metrics::Live;
use crate::probe::Probe;
use crate::report::Summary;
use crate::scenarios::Ctx;
use crate::spawn::SpawnedServer;
use crate::token::Tokens;

/// The same scenario against a reference server (the floor, the Node
/// peer) just started; stops it after.
async fn run_against_peer(cli: &Cli, peer: SpawnedServer, what: &str) -> anyhow::Result<Summary> {
    let url = format!("http://{}", peer.addr);
    let measured = run_against(cli, &[url], &[peer.pid]).await;
    let tail = peer.log_tail();
    let _ = peer.stop().await;
    measured.map_err(|e| e.context(format!("{what} log:\n{tail}")))
}

/// The scenario against a reference server just started; why it failed
/// (the first line of the error and the last of its log) otherwise.
async fn compare(
    cli: &Cli,
    started: anyhow::Result<SpawnedServer>,
    what: &str,
) -> Result<Summary, String> {
    let run = match started {
        Ok(peer) => run_against_peer(cli, peer, what).await,
        Err(e) => Err(e),
    };
    run.map_err(|e| {
        let why = format!("{e:#}").replace('\n', " ");
        eprintln!("giftstream-loadtest: the {what} run failed: {why}");
        why.chars().take(300).collect()
    })
}

/// Run the scenario `cli` asks for, start to end (spawning and stopping a
/// server with `--spawn`), and answer its summary.
pub async fn run(mut cli: Cli) -> anyhow::Result<Summary> {
    anyhow::ensure!(
        !matches!(
            cli.scenario,
            Scenario::Markdown(_) | Scenario::FloorServer(_) | Scenario::Chaos(_)
        ),
        "`markdown`, `floor-server` and `chaos` are not scenarios; see markdown::render, floor::serve, chaos::run"
    );
    anyhow::ensure!(
        !cli.common.compare_floor || cli.common.encoding == crate::wire::Encoding::Json,
        "--compare-floor: the floor server speaks JSON only"
    );
    anyhow::ensure!(
        !cli.common.compare_node || cli.common.encoding == crate::wire::Encoding::Json,
        "--compare-node: the Node peer speaks JSON only"
    );
    conn::raise_nofile();
    anyhow::ensure!(
        !cli.common.spawn || cli.common.nodes.is_empty(),
        "--spawn starts one node; start the nodes yourself for --nodes"
    );
    if cli.common.spawn && cli.common.jwt_secret == crate::token::DEV_JWT_SECRET {
        // `giftstream serve` refuses the development secret (issue 11): the
        // spawned server gets a random one, shared with the tokens.
        cli.common.jwt_secret = format!("loadtest-{:032x}", rand::thread_rng().gen::<u128>());
    }
    let spawned = if cli.common.spawn {
        let bin = match &cli.common.server_bin {
            Some(b) => b.clone(),
            None => spawn::default_server_bin()?,
        };
        Some(
            SpawnedServer::start(&bin, &cli.common.jwt_secret, cli.common.socket_msgs_per_s)
                .await?,
        )
    } else {
        None
    };
    let (urls, pids) = match &spawned {
        Some(s) => (vec![format!("http://{}", s.addr)], vec![s.pid]),
        None if cli.common.nodes.is_empty() => {
            (vec![cli.common.url.clone()], cli.common.server_pid.clone())
        }
        None => (cli.common.nodes.clone(), cli.common.server_pid.clone()),
    };
    let mut result = run_against(&cli, &urls, &pids).await;
    if let Some(s) = spawned {
        let tail = s.log_tail();
        if let Err(e) = result {
            result = Err(e.context(format!("server log:\n{tail}")));
        }
        match s.stop().await {
            Ok(true) => {}
            Ok(false) => eprintln!("warning: the spawned server did not stop cleanly:\n{tail}"),
            Err(e) => eprintln!("warning: stopping the spawned server: {e:#}"),
        }
    }
    let mut summary = result?;
    if let Scenario::Ingest(_) = &cli.scenario {
        summary.note = Some(ingest_note(&cli, &summary));
    }
    // A reference that fails (it saturates, it dies) is reported as such;
    // giftstream's own run stands.
    if cli.common.compare_floor {
        match compare(&cli, SpawnedServer::start_floor().await, "floor server").await {
            Ok(floor) => summary.set_floor(floor),
            Err(why) => {
                summary.peer_failures.insert("floor", why);
            }
        }
    }
    if cli.common.compare_node {
        match compare(&cli, SpawnedServer::start_node_peer().await, "Node peer").await {
            Ok(node) => summary.set_node(node),
            Err(why) => {
                summary.peer_failures.insert("node", why);
            }
        }
    }
    Ok(summary)
}

/// Which config key bounds an ingest run per socket, and whether it bound
/// this run.
fn ingest_note(cli: &Cli, s: &Summary) -> String {
    let senders = s.params["senders"].as_u64().unwrap_or(1).max(1);
    let per_socket = s.acks_per_s / senders as f64;
    let key = "hub.socket_msgs_per_s_max (GIFTSTREAM_HUB__SOCKET_MSGS_PER_S_MAX)";
    if !cli.common.spawn {
        return format!(
            "{per_socket:.0} acks/s per socket; each socket is read at most {key} messages a second \
             (default 1000): if that is the server's budget, raise it for ingest benchmarks"
        );
    }
    let budget = cli.common.socket_msgs_per_s as f64;
    if per_socket >= 0.9 * budget {
        format!(
            "{per_socket:.0} acks/s per socket: bound by the per-socket budget {key} = {budget:.0} \
             (--socket-msgs-per-s); raise it for ingest benchmarks"
        )
    } else {
        format!(
            "{per_socket:.0} acks/s per socket; the per-socket budget {key} = {budget:.0} \
             (--socket-msgs-per-s) did not bound this run"
        )
    }
}

async fn server_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let u = reqwest::Url::parse(url).with_context(|| format!("--url {url}"))?;
    anyhow::ensure!(
        u.scheme() == "http",
        "--url must be http:// (no TLS): {url}"
    );
    let host = u.host_str().context("--url has no host")?;
    let port = u.port_or_known_default().unwrap_or(80);
    let addr = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .with_context(|| format!("{host} does not resolve"))?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "refusing to load {addr}: only loopback addresses may be targeted"
    );
    Ok(addr)
}

async fn run_against(cli: &Cli, urls: &[String], pids: &[u32]) -> anyhow::Result<Summary> {
    let c = &cli.common;
    let mut addrs = Vec::with_capacity(urls.len());
    for url in urls {
        addrs.push(server_addr(url).await?);
    }
    let url = urls.first().context("no server URL")?;
    let tokens = Tokens::new(&c.jwt_secret);
    let api = api::Api::new(url, tokens.clone())?;
    let prices = api.catalog().await.context("reading the catalog")?;
    let run: Arc<str> = format!("{:08x}", rand::thread_rng().gen::<u32>()).into();
    let ctx = Ctx {
        run: run.clone(),
        api,
        tokens,
        connector: Arc::new(Connector::new(
            &addrs,
            c.encoding,
            c.source_addrs,
            c.handshakes,
        )?),
        live: Arc::new(Live::default()),
        server: match pids {
            [] => None,
            p => Some(Probe::sum(p).with_context(|| format!("reading /proc of {p:?}"))?),
        },
        prices,
        progress: !c.quiet,
    };
    let outcome = match &cli.scenario {
        Scenario::Fanout(a) => scenarios::fanout::run(&ctx, a).await?,
        Scenario::Conns(a) => scenarios::conns::run(&ctx, a).await?,
        Scenario::Ingest(a) => scenarios::ingest::run(&ctx, a).await?,
        Scenario::Mixed(a) => scenarios::mixed::run(&ctx, a).await?,
        Scenario::Storm(a) => scenarios::storm::run(&ctx, a).await?,
        Scenario::Markdown(_) | Scenario::FloorServer(_) | Scenario::Chaos(_) => {
            anyhow::bail!("`markdown`, `floor-server` and `chaos` are not scenarios")
        }
    };
    let verdict = match (&outcome.books, cli.scenario.gifts()) {
        (Some(books), true) => Some(conservation::check(&ctx.api, books, &outcome.tally).await?),
        _ => None,
    };
    let mut summary = Summary::new(&run, c.encoding, outcome, verdict);
    summary.server_rss_peak_kb = ctx.server.and_then(|p| p.rss_peak_kb().ok());
    if let Some(path) = &c.chart {
        let title = format!("giftstream {} ({})", summary.scenario, summary.run);
        if let Err(e) = chart::draw(path, &title, &summary.timeline) {
            eprintln!("warning: chart {}: {e:#}", path.display());
        }
    }
    Ok(summary)
}
