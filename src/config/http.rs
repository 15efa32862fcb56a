//! `[http]`: the HTTP and WebSocket listener.
//!
//! Owns: [`HttpConfig`] and its defaults.
//! Must not: bind sockets.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// `[http]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest HTTP request body.
    pub body_len_max: usize,
    /// A client must send a request's whole head (request line and
    /// headers) within this long of the server starting to wait for it,
    /// or the connection is closed; it also bounds how long an idle
    /// keep-alive connection stays open, ms.
    pub header_read_timeout_ms: u64,
    /// An HTTP route must answer within this long, else the request is
    /// answered 503 (`outcome_unknown` for a method that changes state,
    /// `internal` for GET/HEAD), ms. `/v1/ws` has `hub.handshake_timeout_ms`.
    pub request_timeout_ms: u64,
    /// Empty: a client's IP (for `hub.connections_per_ip_max`) is the TCP
    /// peer's. Behind a load balancer: the header that balancer appends,
    /// e.g. `X-Forwarded-For`; the right-most entry of its last occurrence
    /// is used (the one the trusted proxy wrote). Set it only when every
    /// request reaches giftstream through that proxy: otherwise clients can
    /// write the header themselves.
    pub client_ip_header: String,
    /// Where `/metrics` is served (its own listener; keep it on loopback or
    /// a private network). Empty: no metrics listener. `/metrics` is never
    /// served on `http.listen`.
    pub metrics_listen: String,
    /// The overlay page's CSP `frame-ancestors` sources (who may embed it in
    /// a frame), e.g. `'self'` (the studio's preview; the default), `'none'`
    /// or `https://studio.example.com`.
    pub overlay_frame_ancestors: String,
    /// Listen backlog of every listener the server opens (`listen` and
    /// `metrics_listen`): connections the kernel completes and queues
    /// before `accept`. A reconnect storm beyond it drops SYNs (clients
    /// retry after a second). Clamped at start to
    /// `/proc/sys/net/core/somaxconn` (logged); at least 1.
    pub listen_backlog: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_len_max: 16 * 1024,
            header_read_timeout_ms: 10_000,
            request_timeout_ms: 60_000,
            client_ip_header: String::new(),
            metrics_listen: "127.0.0.1:9464".into(),
            overlay_frame_ancestors: "'self'".into(),
            listen_backlog: 4096,
        }
    }
}
