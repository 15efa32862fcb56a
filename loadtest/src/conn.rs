//! Client connections: many loopback source addresses, one WebSocket each.
//!
//! Owns: [`Connector`], which spreads connections over the deployment's
//! nodes (round robin, one node per connection) and over source addresses
//! 127.0.0.2, 127.0.0.3, ... (bind before connect with
//! `IP_BIND_ADDRESS_NO_PORT`, so the kernel picks the port at connect time
//! and each source address has its own ~28k ephemeral ports), performs the
//! WebSocket handshake with the token and the encoding's subprotocol, and
//! bounds handshakes in flight. Also [`raise_nofile`].
//! Must not: target anything but loopback; [`Connector::new`] refuses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

use crate::wire::Encoding;

/// A client WebSocket over plain TCP.
pub type Ws = WebSocketStream<TcpStream>;

/// Longest a TCP connect plus handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// Client read buffer per socket; frames here are small.
const READ_BUFFER_LEN: usize = 16 * 1024;
/// Most source addresses used (127.0.0.2 ..= 127.0.0.65).
pub const SOURCE_ADDRS_MAX: u8 = 64;

/// Opens protocol-v1 WebSockets to loopback servers (one or several
/// nodes, taken round robin).
pub struct Connector {
    servers: Vec<(SocketAddr, String)>,
    next_server: AtomicUsize,
    sources: Vec<Ipv4Addr>,
    next: AtomicUsize,
    encoding: Encoding,
    gate: Arc<Semaphore>,
}

impl Connector {
    /// A connector to `servers` (round robin) speaking `encoding`,
    /// spreading over `source_len` source addresses (0: let the kernel
    /// choose 127.0.0.1), with at most `handshakes_max` handshakes in
    /// flight.
    pub fn new(
        servers: &[SocketAddr],
        encoding: Encoding,
        source_len: u8,
        handshakes_max: usize,
    ) -> anyhow::Result<Connector> {
        let server = *servers.first().context("no server address")?;
        for s in servers {
            anyhow::ensure!(
                s.ip().is_loopback() && s.is_ipv4() == server.is_ipv4(),
                "refusing to load {s}: only loopback addresses (of one family) may be targeted"
            );
        }
        let sources = match server.ip() {
            IpAddr::V4(_) => (0..source_len.min(SOURCE_ADDRS_MAX))
                .map(|i| Ipv4Addr::new(127, 0, 0, 2 + i))
                .collect(),
            IpAddr::V6(_) => Vec::new(),
        };
        Ok(Connector {
            servers: servers
                .iter()
                .map(|s| (*s, format!("ws://{s}/v1/ws")))
                .collect(),
            next_server: AtomicUsize::new(0),
            sources,
            next: AtomicUsize::new(0),
            encoding,
            gate: Arc::new(Semaphore::new(handshakes_max.max(1))),
        })
    }

    /// The encoding every socket of this connector speaks.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Source addresses in use.
    pub fn sources(&self) -> &[Ipv4Addr] {
        &self.sources
    }

    /// Connect and upgrade with `token`; retried up to three times.
    pub async fn connect(&self, token: &str) -> anyhow::Result<Ws> {
        let _permit = self.gate.acquire().await?;
        self.connect_now(token).await
    }

    /// Connect and upgrade with `token` now, not waiting for a handshake
    /// slot (`storm`: a batch connects at once); retried as [`Connector::connect`].
    pub async fn connect_now(&self, token: &str) -> anyhow::Result<Ws> {
        let mut last = None;
        for attempt in 0..3u64 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.connect_once(token)).await {
                Ok(Ok(ws)) => return Ok(ws),
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(anyhow::anyhow!("handshake timed out")),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("connect failed")))
    }

    async fn connect_once(&self, token: &str) -> anyhow::Result<Ws> {
        let i = self.next_server.fetch_add(1, Ordering::Relaxed) % self.servers.len();
        let (server, ws_url) = &self.servers[i];
        let tcp = self.tcp(*server).await?;
        tcp.set_nodelay(true)?;
        let mut req = ws_url.as_str().into_client_request()?;
        let h = req.headers_mut();
        h.insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
        h.insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(self.encoding.subprotocol()),
        );
        let cfg = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_LEN)
            .write_buffer_size(0);
        let (ws, resp) = tokio_tungstenite::client_async_with_config(req, tcp, Some(cfg))
            .await
            .context("WebSocket handshake")?;
        let picked = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok());
        anyhow::ensure!(
            picked.is_none_or(|p| p == self.encoding.subprotocol()),
            "server picked subprotocol {picked:?}"
        );
        Ok(ws)
    }

    async fn tcp(&self, server: SocketAddr) -> anyhow::Result<TcpStream> {
        if self.sources.is_empty() {
            return Ok(TcpStream::connect(server).await?);
        }
        let src = self.sources[self.next.fetch_add(1, Ordering::Relaxed) % self.sources.len()];
        let sock = TcpSocket::new_v4()?;
        bind_address_no_port(&sock)?;
        sock.bind(SocketAddr::new(IpAddr::V4(src), 0))
            .with_context(|| format!("bind {src}"))?;
        Ok(sock.connect(server).await?)
    }
}

/// Ask the kernel to choose the source port at connect time, not at bind
/// time, so (source address, port) pairs are shared across destinations.
fn bind_address_no_port(sock: &TcpSocket) -> std::io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: a valid open socket fd and a pointer to a live c_int of the
    // size passed; setsockopt does not keep the pointer.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Raise this process's open-file soft limit to its hard limit; answers
/// the limit now in force.
pub fn raise_nofile() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(_) => rlimit::Resource::NOFILE
            .get()
            .map(|(soft, _)| soft)
            .unwrap_or(1024),
    }
}
