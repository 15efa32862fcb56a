//! A real giftstream server on 127.0.0.1:0 and real clients for it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use giftstream::auth::{Auth, Role};
use giftstream::config::Config;
use giftstream::protocol::Encoding;
use giftstream::server::{self, Running};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

pub const SECRET: &str = "test-secret-for-giftstream-tests";
/// How long a test waits for any one frame before failing.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);

/// Which engines a server runs on.
#[derive(Clone, Debug)]
pub struct EngineSpec {
    pub name: &'static str,
    pub counters_url: String,
    pub ledger_url: String,
    dir: Arc<tempfile::TempDir>,
}

/// Every engine pair available here: memory+SQLite always; memory+PostgreSQL,
/// Redis+PostgreSQL and Redis+SQLite when the services are up (required
/// under scripts/test).
pub async fn engines() -> Vec<EngineSpec> {
    let mut out = vec![spec("memory+sqlite", "memory".into(), None)];
    if let Some(pg) = super::services::fresh_postgres_url().await {
        out.push(spec("memory+postgres", "memory".into(), Some(pg)));
    }
    if std::env::var("GIFTSTREAM_TEST_ONLY_EMBEDDED_COUNTERS").is_ok() {
        return out;
    }
    if let Some(redis) = super::services::fresh_redis_url().await {
        if let Some(pg) = super::services::fresh_postgres_url().await {
            out.push(spec("redis+postgres", redis, Some(pg)));
        }
        if let Some(redis2) = super::services::fresh_redis_url().await {
            out.push(spec("redis+sqlite", redis2, None));
        }
    }
    out
}

/// Only the embedded default.
pub fn embedded() -> EngineSpec {
    spec("memory+sqlite", "memory".into(), None)
}

fn spec(name: &'static str, counters_url: String, ledger_url: Option<String>) -> EngineSpec {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let ledger_url = ledger_url
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("ledger.db").display()));
    EngineSpec {
        name,
        counters_url,
        ledger_url,
        dir,
    }
}

/// Test configuration: loopback, port 0, fast settlement.
pub fn test_config(engine: &EngineSpec) -> Config {
    let mut c = Config::default();
    c.http.listen = "127.0.0.1:0".parse().unwrap();
    c.auth.jwt_secret = SECRET.into();
    c.counters.url = engine.counters_url.clone();
    c.ledger.url = engine.ledger_url.clone();
    c.settlement.flush_interval_ms = 20;
    // No hold and generous daily limits unless a test is about them.
    c.payouts.hold_s = 0;
    c.payouts.cashouts_per_day_max = 1000;
    // Many servers run at once: each its own metrics port.
    c.http.metrics_listen = "127.0.0.1:0".into();
    c
}

pub struct TestServer {
    pub running: Option<Running>,
    pub addr: std::net::SocketAddr,
    pub cfg: Config,
    pub engine: EngineSpec,
    http: reqwest::Client,
    auth: Auth,
}

impl TestServer {
    pub async fn start(engine: &EngineSpec, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut cfg = test_config(engine);
        tweak(&mut cfg);
        Self::start_with(engine.clone(), cfg).await
    }

    pub async fn start_with(engine: EngineSpec, cfg: Config) -> TestServer {
        cfg.validate().expect("valid test config");
        let running = server::start(cfg.clone()).await.expect("server starts");
        TestServer {
            addr: running.addr,
            running: Some(running),
            auth: Auth::new(&cfg.auth.jwt_secret, 0),
            cfg,
            engine,
            http: reqwest::Client::new(),
        }
    }

    /// Stop cleanly (sockets closed, everything settled) and start again on
    /// the same engines and data.
    pub async fn restart(mut self) -> TestServer {
        self.running
            .take()
            .expect("running")
            .stop()
            .await
            .expect("clean stop");
        let mut cfg = self.cfg.clone();
        cfg.http.listen = "127.0.0.1:0".parse().unwrap();
        Self::start_with(self.engine.clone(), cfg).await
    }

    /// Die without flushing (like `kill -9`) and start again on the same
    /// engines and data.
    pub async fn crash_and_restart(mut self) -> TestServer {
        self.running.take().expect("running").abort().await;
        let mut cfg = self.cfg.clone();
        cfg.http.listen = "127.0.0.1:0".parse().unwrap();
        Self::start_with(self.engine.clone(), cfg).await
    }

    pub fn state(&self) -> &giftstream::app::AppState {
        &self.running.as_ref().expect("running").state
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean stop");
        }
    }

    pub fn token(&self, user: &str, role: Role) -> String {
        self.auth.issue(user, role, 3600).unwrap()
    }

    /// `/metrics` on the metrics listener (`http.metrics_listen`).
    pub fn metrics_url(&self) -> String {
        let at = self
            .running
            .as_ref()
            .and_then(|r| r.metrics_addr)
            .expect("metrics listener");
        format!("http://{at}/metrics")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn ws(&self, user: &str, role: Role) -> Ws {
        self.ws_enc(user, role, Encoding::Json).await
    }

    pub async fn ws_enc(&self, user: &str, role: Role, enc: Encoding) -> Ws {
        let url = format!("ws://{}/v1/ws?token={}", self.addr, self.token(user, role));
        Ws::connect(&url, enc).await.expect("ws connects")
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn open_room(&self, creator: &str, room: &str) {
        let (s, v) = self
            .post(
                "/v1/rooms",
                &self.token(creator, Role::Creator),
                json!({ "room": room }),
            )
            .await;
        assert!(s == 201 || s == 200, "open room: {s} {v}");
        assert_eq!(v["room"], room);
    }

    pub async fn grant(&self, user: &str, coins: i64, id: &str) -> Value {
        let (s, v) = self
            .post(
                "/v1/admin/grants",
                &self.token("admin", Role::Admin),
                json!({ "user": user, "coins": coins, "id": id }),
            )
            .await;
        assert_eq!(s, 200, "grant: {v}");
        v
    }

    pub async fn wallet(&self, user: &str) -> i64 {
        let (s, v) = self
            .get("/v1/wallet", &self.token(user, Role::Viewer))
            .await;
        assert_eq!(s, 200, "{v}");
        v["coins"].as_i64().expect("coins")
    }

    pub async fn earnings(&self, creator: &str) -> Value {
        let (s, v) = self
            .get(
                &format!("/v1/creators/{creator}/earnings"),
                &self.token(creator, Role::Creator),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// Wait (bounded, 10 s) until every gift the counters engine accepted
    /// is in the ledger.
    pub async fn settled(&self) {
        let st = self.state();
        // Every accepted gift committed: none waiting and no drained batch
        // still on its way to the ledger (pending_len alone misses that one).
        for _ in 0..500 {
            if st.counters.unsettled_len().await.unwrap() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("settlement did not catch up within 10 s");
    }
}

pub type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A protocol-v1 client socket.
pub struct Ws {
    pub inner: WsStream,
    pub enc: Encoding,
    /// `room_stats` frames seen so far (set aside by `recv`).
    pub stats: Vec<Value>,
}

impl Ws {
    pub async fn connect(
        url: &str,
        enc: Encoding,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let mut req = url.into_client_request()?;
        if enc == Encoding::MsgPack {
            req.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                "giftstream.v1.msgpack".parse().unwrap(),
            );
        }
        let (inner, resp) = tokio_tungstenite::connect_async(req).await?;
        if enc == Encoding::MsgPack {
            assert_eq!(
                resp.headers().get("Sec-WebSocket-Protocol").unwrap(),
                "giftstream.v1.msgpack"
            );
        }
        Ok(Ws {
            inner,
            enc,
            stats: Vec::new(),
        })
    }

    pub async fn send(&mut self, v: Value) {
        let msg = match self.enc {
            Encoding::Json => Message::text(v.to_string()),
            Encoding::MsgPack => Message::binary(rmp_serde::to_vec_named(&v).unwrap()),
        };
        self.inner.send(msg).await.expect("send");
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.inner.send(msg).await.expect("send raw");
    }

    /// The next data frame other than `room_stats` (kept in `self.stats`),
    /// decoded; panics on close or timeout.
    pub async fn recv(&mut self) -> Value {
        loop {
            let v = self.recv_any().await;
            if v["type"] == "room_stats" {
                self.stats.push(v);
                continue;
            }
            return v;
        }
    }

    /// The next data frame of any type.
    pub async fn recv_any(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(FRAME_WAIT, self.inner.next())
                .await
                .expect("a frame within the wait");
            match frame.expect("stream open").expect("frame ok") {
                Message::Text(t) => {
                    assert_eq!(self.enc, Encoding::Json, "text frame on a msgpack socket");
                    return serde_json::from_str(&t).expect("json");
                }
                Message::Binary(b) => {
                    assert_eq!(self.enc, Encoding::MsgPack, "binary frame on a json socket");
                    return rmp_serde::from_slice(&b).expect("msgpack");
                }
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// The next frame, which must be of type `ty`.
    pub async fn expect(&mut self, ty: &str) -> Value {
        let v = self.recv().await;
        assert_eq!(v["type"], ty, "expected {ty}, got {v}");
        v
    }

    /// Frames until one of type `ty`, returning it and the others skipped.
    pub async fn until(&mut self, ty: &str) -> (Value, Vec<Value>) {
        let mut others = Vec::new();
        loop {
            let v = self.recv().await;
            if v["type"] == ty {
                return (v, others);
            }
            others.push(v);
        }
    }

    pub async fn join(&mut self, room: &str) -> Value {
        self.send(json!({ "type": "join", "room": room })).await;
        self.expect("joined").await
    }

    pub async fn gift(&mut self, room: &str, gift: &str, count: u32, id: &str) -> Value {
        self.send(json!({ "type": "gift", "room": room, "gift": gift, "count": count, "id": id }))
            .await;
        self.until_id(id).await
    }

    /// Send a gift and read both its answer and the sender's own
    /// `gift_event` of it, in whichever order they arrive: the event goes
    /// through the room (and with Redis through pub/sub), the ack straight
    /// back, so under load the event may come first, and [`Ws::gift`]
    /// would discard it. Frames of other types in between are dropped.
    pub async fn gift_and_event(
        &mut self,
        room: &str,
        gift: &str,
        count: u32,
        id: &str,
    ) -> (Value, Value) {
        self.send(json!({ "type": "gift", "room": room, "gift": gift, "count": count, "id": id }))
            .await;
        let (mut ack, mut event) = (None, None);
        while ack.is_none() || event.is_none() {
            let v = self.recv().await;
            if v["id"] != id {
                continue;
            }
            if v["type"] == "gift_event" {
                event = Some(v);
            } else {
                assert!(ack.is_none(), "two answers to gift {id}: {v}");
                ack = Some(v);
            }
        }
        (ack.unwrap(), event.unwrap())
    }

    /// The next frame carrying `id` (an ack or an error). Every other frame
    /// before it is discarded, so use it only where answers come in order
    /// (counter-mode acks on one socket).
    pub async fn until_id(&mut self, id: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["id"] == id && v["type"] != "gift_event" {
                return v;
            }
        }
    }

    /// Ping and expect pong (events in between are skipped).
    pub async fn ping(&mut self) {
        self.send(json!({ "type": "ping" })).await;
        self.until("pong").await;
    }

    /// Read until the close frame; returns its code.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        loop {
            match tokio::time::timeout(FRAME_WAIT, self.inner.next())
                .await
                .expect("close within the wait")
            {
                Some(Ok(Message::Close(c))) => return c,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}
