//! `--spawn`: a giftstream server as a child process, for one-command
//! end-to-end runs.
//!
//! Owns: [`SpawnedServer`]: finding the `giftstream` binary (beside this
//! one in the same target dir, or `--server-bin`), a free loopback port, a
//! temporary SQLite ledger (`GIFTSTREAM_LEDGER__URL`), a raised
//! `GIFTSTREAM_HUB__CONNECTIONS_MAX`, the same JWT secret as the tokens
//! this tool signs, waiting for `/healthz`, and stopping it (SIGTERM, then
//! SIGKILL after a bound) — also when dropped. A child process, not an
//! in-process server, so its CPU and RSS are measured apart from ours.
//! Must not: outlive the load tester.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::api::Api;
use crate::token::Tokens;

/// Longest wait for the server to answer `/healthz`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a graceful stop before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Connections the spawned server accepts at most.
const CONNECTIONS_MAX: u64 = 1_000_000;
/// The spawned server's `hub.socket_msgs_per_s_max` unless
/// `--socket-msgs-per-s` says otherwise: load senders exceed a viewer's
/// budget by design.
pub const SOCKET_MSGS_PER_S_RAISED: u64 = 100_000_000;

/// A running child server.
pub struct SpawnedServer {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process id.
    pub pid: u32,
    dir: tempfile::TempDir,
}

/// The `giftstream` binary beside the running executable (same target dir).
pub fn default_server_bin() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me.parent().context("executable has no folder")?;
    // Integration tests run from target/<profile>/deps.
    for d in [Some(dir), dir.parent()].into_iter().flatten() {
        let p = d.join("giftstream");
        if p.is_file() {
            return Ok(p);
        }
    }
    anyhow::bail!(
        "no `giftstream` binary beside {}; build it (cargo build --bin giftstream) or pass --server-bin",
        me.display()
    )
}

impl SpawnedServer {
    /// Start `bin` on a free loopback port with a fresh ledger and
    /// `jwt_secret`; answers once it is healthy.
    pub async fn start(
        bin: &Path,
        jwt_secret: &str,
        socket_msgs_per_s: u64,
    ) -> anyhow::Result<SpawnedServer> {
        let dir = tempfile::Builder::new()
            .prefix("giftstream-loadtest-")
            .tempdir()?;
        let addr = free_port()?;
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let mut ledger = format!("sqlite://{}", dir.path().join("ledger.db").display());
        // `full` (the server's default) or `normal`: what each commit's
        // fsync costs (docs/BENCHMARKS.md).
        if let Ok(sync) = std::env::var("GIFTSTREAM_LOADTEST_SQLITE_SYNCHRONOUS") {
            ledger.push_str(&format!("?synchronous={sync}"));
        }
        let child = Command::new(bin)
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            // No config/default.toml in the temp dir: built-in defaults (equal).
            .current_dir(dir.path())
            .env("GIFTSTREAM_LEDGER__URL", ledger)
            .env(
                "GIFTSTREAM_HUB__CONNECTIONS_MAX",
                CONNECTIONS_MAX.to_string(),
            )
            .env("GIFTSTREAM_AUTH__JWT_SECRET", jwt_secret)
            // Every load socket comes from loopback: no per-IP cap.
            .env(
                "GIFTSTREAM_HUB__CONNECTIONS_PER_IP_MAX",
                CONNECTIONS_MAX.to_string(),
            )
            // The load grants every sender its coins through one admin:
            // no daily grant cap.
            .env(
                "GIFTSTREAM_ADMIN__GRANT_COINS_PER_DAY_MAX",
                i64::MAX.to_string(),
            )
            // A real server may hold 127.0.0.1:9464.
            .env("GIFTSTREAM_HTTP__METRICS_LISTEN", "127.0.0.1:0")
            // Load senders exceed a viewer's per-socket message budget by design.
            .env(
                "GIFTSTREAM_HUB__SOCKET_MSGS_PER_S_MAX",
                socket_msgs_per_s.to_string(),
            )
            .env(
                "RUST_LOG",
                std::env::var("GIFTSTREAM_LOADTEST_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        SpawnedServer::ready(child, addr, dir, jwt_secret).await
    }

    /// Start the floor server (`floor-server`, this same binary) on a free
    /// loopback port; answers once it is healthy.
    pub async fn start_floor() -> anyhow::Result<SpawnedServer> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("floor-server");
        SpawnedServer::start_reference(cmd, "floor", "starting the floor server").await
    }

    /// Start the Node peer (`node loadtest/node-peer/server.js`, or the
    /// script `GIFTSTREAM_NODE_PEER` names) on a free loopback port;
    /// answers once it is healthy. Its `ws` package must be installed
    /// (`npm ci --prefix loadtest/node-peer`).
    pub async fn start_node_peer() -> anyhow::Result<SpawnedServer> {
        let script = std::env::var_os("GIFTSTREAM_NODE_PEER")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("node-peer/server.js"));
        let modules = script.with_file_name("node_modules").join("ws");
        anyhow::ensure!(
            modules.is_dir(),
            "the Node peer's `ws` is not installed: npm ci --prefix {}",
            script.parent().unwrap_or(Path::new(".")).display()
        );
        let mut cmd = Command::new("node");
        cmd.arg(&script);
        SpawnedServer::start_reference(
            cmd,
            "node-peer",
            "starting the Node peer (is `node` on PATH?)",
        )
        .await
    }

    /// Start a reference server (`cmd`, given `--listen` on a free loopback
    /// port, its stderr logged in a temporary directory named after `name`)
    /// and wait until it is healthy.
    async fn start_reference(
        mut cmd: Command,
        name: &str,
        what: &'static str,
    ) -> anyhow::Result<SpawnedServer> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("giftstream-{name}-"))
            .tempdir()?;
        let addr = free_port()?;
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let child = cmd
            .arg("--listen")
            .arg(addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .context(what)?;
        SpawnedServer::ready(child, addr, dir, name).await
    }

    /// Wait for `/healthz` of a just started child.
    async fn ready(
        child: Child,
        addr: SocketAddr,
        dir: tempfile::TempDir,
        jwt_secret: &str,
    ) -> anyhow::Result<SpawnedServer> {
        let pid = child.id().context("child has no pid")?;
        let mut server = SpawnedServer {
            child,
            addr,
            pid,
            dir,
        };
        let api = Api::new(&format!("http://{addr}"), Tokens::new(jwt_secret))?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!("server exited at start ({status}): {}", server.log_tail());
            }
            if api.healthy().await {
                return Ok(server);
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "server not healthy within {READY_TIMEOUT:?}: {}",
                    server.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        // Skip backtrace frames: the messages are what explain a failure.
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ')).collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stop gracefully (SIGTERM: sockets close, settlement flushes); SIGKILL
    /// after a bound. Answers whether it stopped cleanly.
    pub async fn stop(mut self) -> anyhow::Result<bool> {
        if self.child.try_wait()?.is_some() {
            return Ok(false);
        }
        // SAFETY: kill(2) with our own child's pid and a valid signal.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => Ok(status?.success()),
            Err(_) => {
                self.child.kill().await?;
                Ok(false)
            }
        }
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}
