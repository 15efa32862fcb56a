//! The chaos load: senders gifting rooms (WebSocket) and videos (HTTP),
//! coin purchases and tips (to rooms and videos) as signed Stripe webhooks
//! (delivered twice and out of order while a webhook fault lasts), and
//! creators cashing out.
//!
//! Owns: [`World`] (users, rooms, videos, the HTTP client, the webhook
//! secret), its set-up ([`World::setup`]: rooms, videos, grants,
//! onboarding), the tasks [`gifter`], [`purchaser`], [`cashier`], and
//! [`World::drain_webhooks`] (every undelivered event, until a node takes
//! it). Every outcome goes into [`Books`]; an unknown outcome is retried
//! with the same id, as a client should.
//! Must not: check anything (see [`super::check`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::books::{Books, Fate, Gate, GiftRec, Nodes, Purchase};
use super::stripe::{event, now_s, purchase_pi, sign, tip_pi};
use crate::api::Price;
use crate::conn::Connector;
use crate::token::{Role, Tokens};
use crate::wire::{decode, Encoding, Out, Received};

/// Longest wait for one answer.
const ANSWER: Duration = Duration::from_secs(5);
/// Coins granted to each sender at the start.
pub const GRANT: i64 = 5_000_000;
/// Gifts the senders pick from.
const GIFTS: [&str; 3] = ["rose", "finger_heart", "perfume"];

/// The run's users and places, and how to reach them.
pub struct World {
    /// Run id (prefix of every name).
    pub run: String,
    /// Senders.
    pub senders: Vec<String>,
    /// Creators; creator `i` owns room `rooms[i]` and video `videos[i]`.
    pub creators: Vec<String>,
    /// Rooms.
    pub rooms: Vec<String>,
    /// Videos.
    pub videos: Vec<String>,
    /// Connected account of each creator.
    pub accounts: HashMap<String, String>,
    /// Catalog prices.
    pub prices: HashMap<String, Price>,
    /// Token signer.
    pub tokens: Tokens,
    /// The webhook signing secret the nodes know.
    pub webhook_secret: String,
    /// HTTP client (short timeouts).
    pub http: reqwest::Client,
    /// The nodes.
    pub nodes: Arc<Nodes>,
    /// The books.
    pub books: Arc<Books>,
    /// The load's gate.
    pub gate: Arc<Gate>,
}

/// Answer of one HTTP call: status (0: no answer) and body.
pub type Answer = (u16, Value);

impl World {
    /// A call to `url` with `token`; status 0 when nothing came back.
    pub async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(token)
            .timeout(ANSWER);
        if let Some(b) = body {
            req = req.json(&b);
        }
        match req.send().await {
            Ok(r) => {
                let st = r.status().as_u16();
                (st, r.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// A call retried on other nodes until it is answered below 500 (set-up).
    pub async fn call_until(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let mut rng = StdRng::from_entropy();
        for _ in 0..40 {
            let (_, base) = self.nodes.pick(&mut rng);
            let (st, v) = self
                .call(
                    method.clone(),
                    &format!("{base}{path}"),
                    token,
                    Some(body.clone()),
                )
                .await;
            if (200..300).contains(&st) {
                return Ok(v);
            }
            if (400..500).contains(&st) {
                anyhow::bail!("{method} {path}: {st} {v}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        anyhow::bail!("{method} {path}: no answer")
    }

    /// Rooms, videos, grants, and every creator onboarded for payouts.
    pub async fn setup(&mut self) -> anyhow::Result<()> {
        let admin = self
            .tokens
            .sign(&format!("{}-admin", self.run), Role::Admin)?;
        for (i, c) in self.creators.clone().iter().enumerate() {
            let tok = self.tokens.sign(c, Role::Creator)?;
            self.call_until(
                reqwest::Method::POST,
                "/v1/rooms",
                &tok,
                json!({ "room": self.rooms[i] }),
            )
            .await?;
            self.call_until(
                reqwest::Method::POST,
                "/v1/videos",
                &tok,
                json!({ "video": self.videos[i] }),
            )
            .await?;
            let v = self
                .call_until(
                    reqwest::Method::POST,
                    "/v1/creators/me/payouts/onboard",
                    &tok,
                    json!({}),
                )
                .await?;
            let acct = v["account"]
                .as_str()
                .context("onboard: no account")?
                .to_string();
            let ev = event(
                &format!("evt_{}_{c}_acct", self.run),
                "account.updated",
                json!({ "id": acct, "object": "account", "payouts_enabled": true }),
            );
            anyhow::ensure!(
                self.deliver(&ev.to_string()).await == 200,
                "account.updated not taken"
            );
            self.accounts.insert(c.clone(), acct);
        }
        for s in self.senders.clone() {
            self.call_until(
                reqwest::Method::POST,
                "/v1/admin/grants",
                &admin,
                json!({ "user": s, "coins": GRANT, "id": format!("{}-grant-{s}", self.run) }),
            )
            .await?;
            self.books.inner.lock().granted.insert(s, GRANT);
        }
        Ok(())
    }

    /// Sign and POST an event body to a node; answers the status (0: none).
    pub async fn deliver(&self, body: &str) -> u16 {
        let (_, base) = self.nodes.pick(&mut StdRng::from_entropy());
        let t = now_s();
        let sig = sign(body, &self.webhook_secret, t);
        self.books.inner.lock().counts.webhook_deliveries += 1;
        match self
            .http
            .post(format!("{base}/v1/stripe/webhook"))
            .header("content-type", "application/json")
            .header("stripe-signature", sig)
            .body(body.to_string())
            .timeout(ANSWER)
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// Deliver one purchase event; books it once delivered.
    async fn deliver_purchase(&self, pi: &str) {
        let (body, again) = {
            let b = self.books.inner.lock();
            let p = &b.purchases[pi];
            (p.body.clone(), p.delivered)
        };
        let st = self.deliver(&body).await;
        let mut b = self.books.inner.lock();
        if again {
            b.counts.webhook_duplicates += 1;
        }
        if st == 200 {
            let p = b.purchases.get_mut(pi).expect("booked");
            if !p.delivered {
                p.delivered = true;
                if p.tip.is_some() {
                    b.counts.tips += 1;
                } else {
                    b.counts.purchases += 1;
                }
            }
        }
    }

    /// POST until answered `ok` (bounded, same body: the id makes it
    /// idempotent); the answer's `payment_intent`.
    async fn payment_intent(
        &self,
        rng: &mut StdRng,
        path: &str,
        token: &str,
        req: &Value,
        ok: u16,
    ) -> Option<String> {
        for _ in 0..10 {
            let (_, base) = self.nodes.pick(rng);
            let (st, v) = self
                .call(
                    reqwest::Method::POST,
                    &format!("{base}{path}"),
                    token,
                    Some(req.clone()),
                )
                .await;
            if st == ok {
                return v["payment_intent"].as_str().map(str::to_string);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.books.inner.lock().counts.payment_intents_failed += 1;
        None
    }

    /// A coin purchase through the API (a PaymentIntent at the double,
    /// recorded in the ledger), with the event Stripe would send.
    async fn buy(&self, rng: &mut StdRng, user: &str, n: u64) -> Option<(String, Purchase)> {
        let tok = self.tokens.sign(user, Role::Viewer).ok()?;
        let req = json!({ "package": "coins_70", "id": format!("{}-buy-{n}", self.run) });
        let pi = self
            .payment_intent(rng, "/v1/coins/purchases", &tok, &req, 200)
            .await?;
        let body = event(
            &format!("evt_{}_{n}", self.run),
            "payment_intent.succeeded",
            purchase_pi(&pi, user, 70, 99),
        )
        .to_string();
        let p = Purchase {
            user: user.to_string(),
            coins: 70,
            tip: None,
            body,
            delivered: false,
        };
        Some((pi, p))
    }

    /// A tip to a creator's room or video through the API (a destination
    /// charge at the double), with the event Stripe would send.
    async fn tip(&self, rng: &mut StdRng, user: &str, n: u64) -> Option<(String, Purchase)> {
        let i = rng.gen_range(0..self.creators.len());
        let target = if rng.gen_bool(0.5) {
            format!("room:{}", self.rooms[i])
        } else {
            format!("video:{}", self.videos[i])
        };
        let (kind, id) = target.split_once(':')?;
        let cents = rng.gen_range(100..=2_000);
        let client_id = format!("{}-tip-{n}", self.run);
        let tok = self.tokens.sign(user, Role::Viewer).ok()?;
        let req = json!({ "amount_cents": cents, "id": client_id, "message": "chaos" });
        let pi = self
            .payment_intent(rng, &format!("/v1/{kind}s/{id}/tips"), &tok, &req, 201)
            .await?;
        let body = event(
            &format!("evt_{}_{n}", self.run),
            "payment_intent.succeeded",
            tip_pi(&pi, &format!("{user}:{client_id}"), &target, cents),
        )
        .to_string();
        let p = Purchase {
            user: user.to_string(),
            coins: 0,
            tip: Some((self.creators[i].clone(), cents)),
            body,
            delivered: false,
        };
        Some((pi, p))
    }

    /// Deliver every purchase not delivered yet, until each is taken
    /// (bounded); answers how many are still undelivered.
    pub async fn drain_webhooks(&self, bound: Duration) -> usize {
        let t0 = std::time::Instant::now();
        loop {
            let left: Vec<String> = {
                let b = self.books.inner.lock();
                b.purchases
                    .iter()
                    .filter(|(_, p)| !p.delivered)
                    .map(|(k, _)| k.clone())
                    .collect()
            };
            if left.is_empty() || t0.elapsed() > bound {
                return left.len();
            }
            for pi in &left {
                self.deliver_purchase(pi).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

enum GiftAnswer {
    Acked,
    Refused(String),
    Unknown,
}

fn classify_error(code: &str) -> GiftAnswer {
    match code {
        "outcome_unknown" | "internal" => GiftAnswer::Unknown,
        c => GiftAnswer::Refused(c.to_string()),
    }
}

/// Send one room gift on `ws` and wait for its answer.
async fn room_gift(
    ws: &mut crate::conn::Ws,
    room: &str,
    gift: &str,
    count: u32,
    id: &str,
) -> GiftAnswer {
    let out = Out::Gift {
        room,
        gift,
        count,
        id,
    };
    if ws.send(out.encode(Encoding::Json)).await.is_err() {
        return GiftAnswer::Unknown;
    }
    let wait = async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Received::Frame(f) = decode(&msg) {
                if f.id.as_deref() != Some(id) {
                    continue;
                }
                match f.ty.as_ref() {
                    "gift_ack" => return GiftAnswer::Acked,
                    "error" => return classify_error(f.code.as_deref().unwrap_or("")),
                    _ => {}
                }
            }
        }
        GiftAnswer::Unknown
    };
    tokio::time::timeout(ANSWER, wait)
        .await
        .unwrap_or(GiftAnswer::Unknown)
}

/// Record a gift's answer.
fn book_gift(w: &World, id: &str, rec: GiftRec, a: &GiftAnswer, video: bool) {
    let mut b = w.books.inner.lock();
    let window = w.books.window.load(Ordering::Acquire);
    match a {
        GiftAnswer::Acked => {
            if video {
                b.counts.video_gifts_acked += 1;
            } else {
                b.counts.room_gifts_acked += 1;
            }
            b.gifts.insert(
                id.to_string(),
                GiftRec {
                    fate: Fate::Acked,
                    window,
                    at: std::time::Instant::now(),
                    ..rec
                },
            );
        }
        GiftAnswer::Unknown => {
            b.counts.gifts_unknown += 1;
            let e = b.gifts.entry(id.to_string()).or_insert(GiftRec {
                fate: Fate::Unknown,
                window,
                ..rec
            });
            e.window = window;
            e.at = std::time::Instant::now();
        }
        GiftAnswer::Refused(code) => {
            // An earlier unknown attempt stays unknown (it may have been
            // accepted and then forgotten with Redis's data).
            b.counts.gifts_refused += 1;
            *b.counts.refused_by_code.entry(code.clone()).or_default() += 1;
        }
    }
}

/// Sender `i`: room gifts over a socket to one node (switching node now
/// and then), video gifts over HTTP, unknown outcomes retried with their id.
pub async fn gifter(w: Arc<World>, i: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let me = w.senders[i].clone();
    let token = w.tokens.sign(&me, Role::Viewer).unwrap_or_default();
    let mut n = 0u64;
    let mut retry: Vec<(String, GiftRec)> = Vec::new();
    while !w.gate.stopped() {
        let (_, base) = w.nodes.pick(&mut rng);
        let base = base.to_string();
        let addr: std::net::SocketAddr = match base.trim_start_matches("http://").parse() {
            Ok(a) => a,
            Err(_) => return,
        };
        let Ok(conn) = Connector::new(&[addr], Encoding::Json, 0, 4) else {
            return;
        };
        let mut ws = {
            let Some(_op) = w.gate.enter().await else {
                return;
            };
            match tokio::time::timeout(ANSWER, conn.connect_now(&token)).await {
                Ok(Ok(ws)) => Some(ws),
                _ => None,
            }
        };
        for _ in 0..rng.gen_range(10..40) {
            let Some(_op) = w.gate.enter().await else {
                return;
            };
            let (id, rec) = match retry.pop() {
                Some(r) => r,
                None => {
                    n += 1;
                    let c = rng.gen_range(0..w.creators.len());
                    let gift = GIFTS[rng.gen_range(0..GIFTS.len())];
                    let count = rng.gen_range(1..4u32);
                    let price = w.prices.get(gift).map_or(0, |p| p.coins);
                    let target = if rng.gen_bool(0.75) {
                        format!("room:{}", w.rooms[c])
                    } else {
                        format!("video:{}", w.videos[c])
                    };
                    let rec = GiftRec {
                        sender: me.clone(),
                        target,
                        gift: gift.to_string(),
                        count,
                        coins: price * i64::from(count),
                        fate: Fate::Unknown,
                        window: 0,
                        at: std::time::Instant::now(),
                    };
                    (format!("{}.{i}.{n}", w.run), rec)
                }
            };
            let video = rec.target.starts_with("video:");
            let answer = if let Some(v) = rec.target.strip_prefix("video:") {
                let body = json!({ "gift": rec.gift, "count": rec.count, "id": id });
                let (_, base) = w.nodes.pick(&mut rng);
                let url = format!("{base}/v1/videos/{v}/gifts");
                match w
                    .call(reqwest::Method::POST, &url, &token, Some(body))
                    .await
                {
                    (200, _) => GiftAnswer::Acked,
                    (0, _) => GiftAnswer::Unknown,
                    (_, v) => classify_error(v["code"].as_str().unwrap_or("")),
                }
            } else if let Some(s) = ws.as_mut() {
                let room = rec.target.trim_start_matches("room:").to_string();
                room_gift(s, &room, &rec.gift, rec.count, &id).await
            } else {
                // No socket: try again later with the same id.
                retry.push((id, rec));
                break;
            };
            if matches!(answer, GiftAnswer::Unknown) {
                retry.push((id.clone(), rec.clone()));
            }
            book_gift(&w, &id, rec, &answer, video);
            if matches!(answer, GiftAnswer::Unknown) && !video {
                break; // the socket is suspect: reconnect
            }
            drop(_op);
            tokio::time::sleep(Duration::from_millis(rng.gen_range(5..60))).await;
        }
        if ws.is_none() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Unknown outcomes retried at most a few times, then left unknown.
        retry.truncate(8);
    }
}

/// Coin purchases and tips: a signed `payment_intent.succeeded` per payment to a
/// node; while a webhook fault lasts, each is delivered twice and held
/// events go out newest first.
pub async fn purchaser(w: Arc<World>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0u64;
    let mut held: Vec<String> = Vec::new();
    while let Some(op) = w.gate.enter().await {
        n += 1;
        let user = w.senders[rng.gen_range(0..w.senders.len())].clone();
        // One payment in four is a tip to a room or a video.
        let made = if rng.gen_ratio(1, 4) {
            w.tip(&mut rng, &user, n).await
        } else {
            w.buy(&mut rng, &user, n).await
        };
        let Some((pi, p)) = made else { continue };
        w.books.inner.lock().purchases.insert(pi.clone(), p);
        if w.books.webhook_chaos.load(Ordering::Acquire) {
            held.push(pi);
            if held.len() >= 3 {
                // Newest first, then each again.
                w.books.inner.lock().counts.webhook_reordered += held.len() as u64 - 1;
                for p in held.iter().rev() {
                    w.deliver_purchase(p).await;
                }
                for p in &held {
                    w.deliver_purchase(p).await;
                }
                held.clear();
            }
        } else {
            for p in held.drain(..) {
                w.deliver_purchase(&p).await;
            }
            w.deliver_purchase(&pi).await;
        }
        drop(op);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..400))).await;
    }
}

/// Creators cash out what is available now and then; an unanswered
/// request is retried with the same id.
pub async fn cashier(w: Arc<World>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0u64;
    let mut retry: Option<(String, String, i64)> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..1200))).await;
        let Some(_op) = w.gate.enter().await else {
            return;
        };
        let (id, creator, diamonds) = match retry.take() {
            Some(r) => r,
            None => {
                let creator = w.creators[rng.gen_range(0..w.creators.len())].clone();
                let (_, base) = w.nodes.pick(&mut rng);
                let tok = w.tokens.sign(&creator, Role::Creator).unwrap_or_default();
                let (st, e) = w
                    .call(
                        reqwest::Method::GET,
                        &format!("{base}/v1/creators/{creator}/earnings"),
                        &tok,
                        None,
                    )
                    .await;
                let avail = e["diamonds_available"].as_i64().unwrap_or(0);
                if st != 200 || avail < 100 {
                    continue;
                }
                n += 1;
                let d = rng.gen_range(100..=avail.min(2000));
                (format!("{}-co-{n}", w.run), creator, d)
            }
        };
        let tok = w.tokens.sign(&creator, Role::Creator).unwrap_or_default();
        let (_, base) = w.nodes.pick(&mut rng);
        let body = json!({ "diamonds": diamonds, "id": id });
        let (st, v) = w
            .call(
                reqwest::Method::POST,
                &format!("{base}/v1/creators/me/cashouts"),
                &tok,
                Some(body),
            )
            .await;
        let status = v["status"].as_str().unwrap_or("").to_string();
        let mut b = w.books.inner.lock();
        match (st, status.as_str()) {
            (200, "completed") => b.counts.cashouts_completed += 1,
            (200, "pending") => b.counts.cashouts_pending += 1,
            (200, "reversed") => b.counts.cashouts_reversed += 1,
            (0, _) | (500..=599, _) => {
                b.counts.cashouts_unknown += 1;
                retry = Some((id.clone(), creator.clone(), diamonds));
            }
            _ => continue,
        }
        b.cashouts.insert(
            id,
            (
                creator,
                diamonds,
                if st == 200 {
                    status
                } else {
                    format!("http {st}")
                },
            ),
        );
    }
}
