//! The processes of a chaos run: Redis (AOF on), PostgreSQL (its own
//! cluster), the Stripe contract double, and the hub nodes.
//!
//! Owns: starting each on a free loopback port in the run's directory,
//! waiting until it answers, and the faults done to a process: SIGKILL and
//! restart (Redis from its AOF, PostgreSQL through crash recovery after
//! `pg_ctl stop -m immediate`), FLUSHALL, SIGSTOP/SIGCONT; stopping
//! everything at the end (also when dropped).
//! Must not: check anything (see [`super::check`]) or decide when a fault
//! happens (see [`super::faults`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Longest wait for a process to answer after a start.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The Stripe secret key the nodes use (the double wants `sk_...`).
pub const STRIPE_KEY: &str = "sk_test_giftstream_chaos";
/// The claim timeout of the nodes' settlement workers: a paused node's
/// batch is claimed by another node after this long.
pub const CLAIM_IDLE_MS: u64 = 2000;

/// A free loopback port right now.
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid we started, with a valid signal.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

async fn kill_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.start_kill();
        let _ = c.wait().await;
    }
}

fn log_file(path: &Path) -> anyhow::Result<std::fs::File> {
    Ok(std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?)
}

/// redis-server with AOF.
pub struct Redis {
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    fsync: String,
    child: Option<Child>,
}

impl Redis {
    /// Start redis-server in `dir` with `appendfsync fsync`.
    pub async fn start(dir: &Path, fsync: &str) -> anyhow::Result<Redis> {
        let dir = dir.join("redis");
        std::fs::create_dir_all(&dir)?;
        let mut r = Redis {
            port: free_port()?,
            dir,
            fsync: fsync.to_string(),
            child: None,
        };
        r.restart().await?;
        Ok(r)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Whether every write is fsynced before its reply.
    pub fn fsync_always(&self) -> bool {
        self.fsync == "always"
    }

    /// (Re)start it on its port, loading its AOF.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        kill_child(&mut self.child).await;
        let log = log_file(&self.dir.join("redis.log"))?;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--appendonly", "yes", "--appendfsync", &self.fsync])
            .args(["--save", "", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server")?;
        self.child = Some(child);
        let t0 = Instant::now();
        while t0.elapsed() < READY_TIMEOUT {
            if matches!(self.command("PING").await, Ok(r) if r.starts_with("+PONG")) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        anyhow::bail!("redis-server did not answer PING on {}", self.port)
    }

    /// SIGKILL.
    pub async fn kill9(&mut self) {
        kill_child(&mut self.child).await;
    }

    /// One inline command; answers the first reply line.
    pub async fn command(&self, cmd: &str) -> anyhow::Result<String> {
        let io = async {
            let mut s = TcpStream::connect(("127.0.0.1", self.port)).await?;
            s.write_all(format!("{cmd}\r\n").as_bytes()).await?;
            let mut buf = vec![0u8; 512];
            let n = s.read(&mut buf).await?;
            anyhow::Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
        };
        tokio::time::timeout(Duration::from_secs(2), io)
            .await
            .context("redis command timed out")?
    }
}

/// A PostgreSQL cluster of its own (as the `postgres` user when root).
pub struct Pg {
    /// Its port.
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    dir: PathBuf,
}

impl Pg {
    fn cmd(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        // SAFETY: getuid(2) has no preconditions.
        let root = unsafe { libc::getuid() } == 0;
        let mut c = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        c.current_dir(&self.dir).stdin(Stdio::null());
        c
    }

    /// initdb and start a cluster in `dir` with the tools in `bin`.
    pub async fn start(dir: &Path, bin: &Path) -> anyhow::Result<Pg> {
        let dir = dir.join("pg");
        std::fs::create_dir_all(dir.join("sock"))?;
        // SAFETY: getuid(2) has no preconditions.
        if unsafe { libc::getuid() } == 0 {
            let st = std::process::Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&dir)
                .status()?;
            anyhow::ensure!(st.success(), "chown postgres {}", dir.display());
        }
        let pg = Pg {
            port: free_port()?,
            bin: bin.to_path_buf(),
            data: dir.join("data"),
            dir,
        };
        let out = pg
            .cmd("initdb")
            .args(["--auth=trust", "-U", "giftstream", "--encoding=UTF8"])
            .args(["--locale=C", "--no-sync", "-D"])
            .arg(&pg.data)
            .output()
            .await
            .context("initdb")?;
        anyhow::ensure!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.restart().await?;
        Ok(pg)
    }

    /// The ledger URL.
    pub fn url(&self) -> String {
        format!("postgres://giftstream@127.0.0.1:{}/postgres", self.port)
    }

    /// Start (after a stop): crash recovery replays the WAL.
    pub async fn restart(&self) -> anyhow::Result<()> {
        // fsync off: the faults kill processes, not the machine, so what
        // PostgreSQL wrote is in the page cache; synchronous_commit stays
        // on (a commit is acknowledged once its WAL is written).
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c full_page_writes=off -c max_connections=300",
            self.port,
            self.dir.join("sock").display()
        );
        let out = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.dir.join("postgres.log"))
            .args(["-w", "-t", "60", "-o", &opts, "start"])
            .output()
            .await
            .context("pg_ctl start")?;
        anyhow::ensure!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// `pg_ctl stop -m immediate`: no shutdown checkpoint, crash recovery
    /// at the next start.
    pub async fn kill(&self) -> anyhow::Result<()> {
        let out = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "60", "stop"])
            .output()
            .await?;
        anyhow::ensure!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// One query through psql; answers its unaligned rows (`|` between
    /// columns).
    pub async fn query(&self, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
        let psql = self.bin.join("psql");
        let psql = if psql.is_file() {
            psql
        } else {
            PathBuf::from("psql")
        };
        let out = Command::new(psql)
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url(),
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .await
            .context("psql")?;
        anyhow::ensure!(
            out.status.success(),
            "psql `{sql}`: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect())
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let mut c = std::process::Command::new("sh");
        let stop = format!(
            "{} -D {} -m immediate -w -t 30 stop",
            self.bin.join("pg_ctl").display(),
            self.data.display()
        );
        // SAFETY: getuid(2) has no preconditions.
        if unsafe { libc::getuid() } == 0 {
            c.args(["-c", &format!("runuser -u postgres -- {stop}")]);
        } else {
            c.args(["-c", &stop]);
        }
        let _ = c
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The Stripe contract double as a process.
pub struct Double {
    /// Its base URL.
    pub url: String,
    _child: Child,
    http: reqwest::Client,
}

impl Double {
    /// Start `bin` on a free port.
    pub async fn start(bin: &Path, dir: &Path) -> anyhow::Result<Double> {
        let port = free_port()?;
        let log = log_file(&dir.join("stripe-double.log"))?;
        let child = Command::new(bin)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env_remove("GIFTSTREAM_TEST_STRIPE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let d = Double {
            url: format!("http://127.0.0.1:{port}"),
            _child: child,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        };
        let t0 = Instant::now();
        while t0.elapsed() < READY_TIMEOUT {
            if d.transfers().await.is_ok() {
                return Ok(d);
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        anyhow::bail!("the Stripe double did not answer on {port}")
    }

    /// Every Transfer it made (one per Idempotency-Key).
    pub async fn transfers(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        Ok(self
            .http
            .get(format!("{}/__double/transfers", self.url))
            .send()
            .await?
            .json()
            .await?)
    }

    /// How transfers are answered from now on (`/__double/transfer-mode`).
    pub async fn set_mode(&self, form: &[(&str, String)]) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}/__double/transfer-mode", self.url))
            .form(form)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "transfer-mode: {}", r.status());
        Ok(())
    }
}

/// One hub node (`giftstream serve`).
pub struct Node {
    /// Index in the cluster.
    pub idx: usize,
    /// Its port.
    pub port: u16,
    child: Option<Child>,
    /// SIGSTOPped.
    pub paused: bool,
    /// Starts so far.
    pub starts: u32,
}

impl Node {
    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its pid, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Whether the process is running (it may be paused).
    pub fn running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// SIGKILL.
    pub async fn kill9(&mut self) {
        if self.paused {
            if let Some(pid) = self.pid() {
                signal(pid, libc::SIGCONT);
            }
            self.paused = false;
        }
        kill_child(&mut self.child).await;
    }

    /// SIGSTOP / SIGCONT.
    pub fn pause(&mut self, on: bool) {
        if let Some(pid) = self.pid() {
            signal(pid, if on { libc::SIGSTOP } else { libc::SIGCONT });
            self.paused = on;
        }
    }

    /// SIGTERM, then SIGKILL after a bound.
    pub async fn stop(&mut self) {
        if let Some(pid) = self.pid() {
            if self.paused {
                signal(pid, libc::SIGCONT);
            }
            signal(pid, libc::SIGTERM);
            if let Some(c) = self.child.as_mut() {
                let _ = tokio::time::timeout(Duration::from_secs(15), c.wait()).await;
            }
        }
        kill_child(&mut self.child).await;
    }
}

/// What a node needs to start.
pub struct NodeSpec {
    /// The giftstream binary.
    pub bin: PathBuf,
    /// The run's directory (logs, working directory).
    pub dir: PathBuf,
    /// Environment of every node.
    pub env: Vec<(String, String)>,
}

impl NodeSpec {
    /// A node `idx` that is not started yet.
    pub fn node(&self, idx: usize) -> anyhow::Result<Node> {
        Ok(Node {
            idx,
            port: free_port()?,
            child: None,
            paused: false,
            starts: 0,
        })
    }

    /// (Re)start `n` and wait until `/healthz` answers (or it exits).
    pub async fn start(&self, n: &mut Node, http: &reqwest::Client) -> anyhow::Result<()> {
        n.kill9().await;
        let work = self.dir.join(format!("node{}", n.idx));
        std::fs::create_dir_all(&work)?;
        let log = log_file(&self.dir.join(format!("node{}.log", n.idx)))?;
        let mut c = Command::new(&self.bin);
        c.args(["serve", "--listen", &format!("127.0.0.1:{}", n.port)])
            .current_dir(&work)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        n.child = Some(c.spawn().context("starting giftstream serve")?);
        n.starts += 1;
        let t0 = Instant::now();
        let url = format!("{}/healthz", n.url());
        while t0.elapsed() < READY_TIMEOUT {
            if !n.running() {
                anyhow::bail!("node {} exited at start (see node{}.log)", n.idx, n.idx);
            }
            let ok = http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("node {} not healthy within {READY_TIMEOUT:?}", n.idx)
    }
}
