//! One HTTP POST of one event: connect to the checked address (TLS for
//! `https`, verified against the web PKI roots for the URL's host), send,
//! read the status and at most `webhooks.response_bytes_max` of the body,
//! all within `webhooks.connect_timeout_ms` + `webhooks.response_timeout_ms`.
//! Redirects are not followed (a 3xx is a failed attempt).
//!
//! Owns: the HTTP/1 client of webhooks. Must not: decide retries or
//! resolve names (it connects to the address it is given).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use super::guard::Dest;
use crate::config::WebhooksConfig;

fn tls() -> Result<tokio_rustls::TlsConnector, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map(tokio_rustls::TlsConnector::from)
}

/// POST `body` to `dest` at `addr` with `headers`; answers the status.
pub async fn post(
    dest: &Dest,
    addr: SocketAddr,
    headers: &[(&str, String)],
    body: String,
    cfg: &WebhooksConfig,
) -> Result<u16, String> {
    let connect = Duration::from_millis(cfg.connect_timeout_ms);
    let tcp = tokio::time::timeout(connect, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connect to {addr} timed out"))?
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let mut req = hyper::Request::post(dest.path.as_str())
        .header(hyper::header::HOST, dest.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "giftstream-webhooks/1");
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("request: {e}"))?;
    if dest.https {
        let name = rustls::pki_types::ServerName::try_from(dest.host.clone())
            .map_err(|_| format!("{} is not a valid TLS server name", dest.host))?;
        let stream = tokio::time::timeout(connect, tls()?.connect(name, tcp))
            .await
            .map_err(|_| "TLS handshake timed out".to_string())?
            .map_err(|e| format!("TLS: {e}"))?;
        send(stream, req, cfg).await
    } else {
        send(tcp, req, cfg).await
    }
}

async fn send<S>(
    io: S,
    req: hyper::Request<Full<Bytes>>,
    cfg: &WebhooksConfig,
) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limit = Duration::from_millis(cfg.response_timeout_ms);
    let bytes_max = cfg.response_bytes_max;
    let exchange = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("http: {e}"))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let r = async {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("http: {e}"))?;
            let status = resp.status().as_u16();
            drain(resp.into_body(), bytes_max).await;
            Ok(status)
        }
        .await;
        driver.abort();
        r
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| "no answer within webhooks.response_timeout_ms".to_string())?
}

/// Read at most `bytes_max` bytes of the body, then drop it.
async fn drain(mut body: Incoming, bytes_max: usize) {
    let mut read = 0usize;
    while read < bytes_max {
        match body.frame().await {
            Some(Ok(f)) => read += f.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
}
