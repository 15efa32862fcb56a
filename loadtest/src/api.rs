//! HTTP side of the contract: set-up before a run and checks after it.
//!
//! Owns: [`Api`]: the catalog, opening rooms (as their creator), admin
//! grants of coins, wallets and creators' earnings, and `/healthz`. Every
//! call has a timeout, and bulk set-up runs with bounded concurrency.
//! Must not: touch WebSockets (see [`crate::conn`]).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use futures_util::{stream, StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::token::{Role, Tokens};

/// Longest one HTTP call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP set-up calls in flight at once.
pub const SETUP_CONCURRENCY: usize = 16;

/// Price of one catalog gift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    /// Coins per unit.
    pub coins: i64,
    /// Diamonds per unit.
    pub diamonds: i64,
}

/// A client of the server's HTTP routes.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    tokens: Tokens,
    admin: String,
}

#[derive(Deserialize)]
struct CatalogGift {
    id: String,
    coins: i64,
    diamonds: i64,
}

#[derive(Deserialize)]
struct CatalogBody {
    gifts: Vec<CatalogGift>,
}

/// Tries of a GET whose connection broke.
const GET_TRIES: u32 = 3;

impl Api {
    /// A client of `base` (`http://127.0.0.1:PORT`), signing with `tokens`.
    pub fn new(base: &str, tokens: Tokens) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .pool_max_idle_per_host(SETUP_CONCURRENCY)
            .build()?;
        let admin = tokens.sign("loadtest-admin", Role::Admin)?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            tokens,
            admin,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        // A GET whose connection broke (a reference server closing an
        // idle pooled connection as it is reused) is asked again, at most
        // GET_TRIES times; nothing else is resent.
        let tries = if method == reqwest::Method::GET {
            GET_TRIES
        } else {
            1
        };
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(token);
            if let Some(b) = &body {
                req = req.json(b);
            }
            match req.send().await {
                Ok(r) => break r,
                Err(e) if attempt < tries && (e.is_connect() || e.is_request()) => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => return Err(e).with_context(|| format!("{method} {path}")),
            }
        };
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        anyhow::ensure!(
            status.is_success(),
            "{method} {path}: HTTP {status}: {text}"
        );
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// True once `/healthz` answers 200.
    pub async fn healthy(&self) -> bool {
        let url = format!("{}/healthz", self.base);
        matches!(
            self.http.get(url).timeout(Duration::from_secs(2)).send().await,
            Ok(r) if r.status().is_success()
        )
    }

    /// Every gift's price, by id.
    pub async fn catalog(&self) -> anyhow::Result<HashMap<String, Price>> {
        let v = self
            .call(reqwest::Method::GET, "/v1/catalog", &self.admin, None)
            .await?;
        let body: CatalogBody = serde_json::from_value(v).context("catalog body")?;
        Ok(body
            .gifts
            .into_iter()
            .map(|g| {
                (
                    g.id,
                    Price {
                        coins: g.coins,
                        diamonds: g.diamonds,
                    },
                )
            })
            .collect())
    }

    /// Open room `room` as `creator`.
    pub async fn open_room(&self, creator: &str, room: &str) -> anyhow::Result<()> {
        let token = self.tokens.sign(creator, Role::Creator)?;
        let v = self
            .call(
                reqwest::Method::POST,
                "/v1/rooms",
                &token,
                Some(json!({ "room": room })),
            )
            .await?;
        anyhow::ensure!(v["room"] == room, "open room {room}: answered {v}");
        Ok(())
    }

    /// Grant `coins` to `user` under the idempotency id `id`.
    pub async fn grant(&self, user: &str, coins: i64, id: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            "/v1/admin/grants",
            &self.admin,
            Some(json!({ "user": user, "coins": coins, "id": id })),
        )
        .await?;
        Ok(())
    }

    /// Grant `coins` to each of `users` (bounded concurrency); answers the
    /// total granted.
    pub async fn grant_all(&self, users: &[String], coins: i64, run: &str) -> anyhow::Result<i64> {
        stream::iter(users)
            .map(|u| async move { self.grant(u, coins, &format!("{run}.{u}")).await })
            .buffer_unordered(SETUP_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(coins * users.len() as i64)
    }

    /// Open each `(creator, room)`, one at a time: concurrent
    /// `POST /v1/rooms` on the SQLite ledger can fail with `internal`
    /// ("database is locked", SQLITE_BUSY_SNAPSHOT; see docs/BENCHMARKS.md).
    pub async fn open_rooms(&self, rooms: &[(String, String)]) -> anyhow::Result<()> {
        for (c, r) in rooms {
            self.open_room(c, r).await?;
        }
        Ok(())
    }

    /// Coins in `user`'s wallet.
    pub async fn wallet(&self, user: &str) -> anyhow::Result<i64> {
        let token = self.tokens.sign(user, Role::Viewer)?;
        let v = self
            .call(reqwest::Method::GET, "/v1/wallet", &token, None)
            .await?;
        v["coins"]
            .as_i64()
            .with_context(|| format!("wallet of {user}: {v}"))
    }

    /// A creator's diamonds: pending plus settled.
    pub async fn diamonds(&self, creator: &str) -> anyhow::Result<i64> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/creators/{creator}/earnings"),
                &self.admin,
                None,
            )
            .await?;
        let pending = v["diamonds_pending"].as_i64();
        let settled = v["diamonds_settled"].as_i64();
        match (pending, settled) {
            (Some(p), Some(s)) => Ok(p + s),
            _ => anyhow::bail!("earnings of {creator}: {v}"),
        }
    }

    /// Sum of `f` over `items` with bounded concurrency.
    pub async fn sum<'a, F, Fut>(&'a self, items: &'a [String], f: F) -> anyhow::Result<i64>
    where
        F: Fn(&'a Api, &'a str) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<i64>> + 'a,
    {
        let parts: Vec<i64> = stream::iter(items)
            .map(|i| f(self, i))
            .buffer_unordered(SETUP_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(parts.iter().sum())
    }
}
