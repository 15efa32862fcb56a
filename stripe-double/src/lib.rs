//! A contract double of the Stripe API for the parts localstripe lacks:
//! Connect accounts, account links, transfers, destination charges
//! (`transfer_data[destination]` on a PaymentIntent) and Idempotency-Key
//! replay, and refunds of PaymentIntents (`POST /v1/refunds`). It listens
//! on 127.0.0.1:0 and forwards every other request to localstripe (`GIFTSTREAM_TEST_STRIPE_URL`), so the app has one
//! `stripe.api_base_url`.
//!
//! It answers whole objects as Stripe's API reference shows them (the
//! app decodes them with async-stripe's generated types, which require
//! most of their fields), and checks each request the way the reference
//! documents it:
//! a `Bearer sk_...` key; form-encoded parameters, unknown ones refused
//! (`parameter_unknown`), required ones present with the documented types;
//! on a POST with an `Idempotency-Key`, the same key with the same
//! parameters answers the first response again (`Idempotent-Replayed:
//! true`), with other parameters `400 idempotency_error`. It can be told
//! to refuse transfers or to apply them and then hang past the client's
//! timeout (a lost answer), to forget its Idempotency-Keys (Stripe keeps
//! them 24 hours), and to hold a Transfer nobody asked for (a mismatch).
//! `GET /v1/transfers` lists them newest first with the documented
//! filters (`transfer_group`, `destination`, `created[gte]`, `limit`,
//! `starting_after`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{json, Value};

/// How the double answers `POST /v1/transfers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    /// Make the transfer and answer it.
    Normal,
    /// Refuse: `400 balance_insufficient` (nothing transferred).
    Refuse,
    /// Make the transfer (and save the idempotent answer), then hang for
    /// this long before answering: the client times out, the money moved.
    ApplyThenHang(Duration),
    /// Answer the next `.1` transfer requests with HTTP status `.0`
    /// (nothing transferred, nothing saved), then behave as `Normal`: 500
    /// is `api_error`, 409 a request with the same key still in flight,
    /// 429 `rate_limit`.
    Failing(u16, u32),
}

/// A destination charge the double saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationCharge {
    /// `pi_...`.
    pub payment_intent: String,
    /// Connected account.
    pub destination: String,
    /// Amount charged, cents.
    pub amount: i64,
    /// `application_fee_amount`, if any.
    pub application_fee: Option<i64>,
}

#[derive(Default)]
struct Inner {
    idempotency: HashMap<String, (String, u16, Bytes)>,
    accounts: BTreeMap<String, Value>,
    transfers: Vec<Value>,
    reversals: Vec<(String, i64)>,
    refunds: Vec<Value>,
    destination_charges: Vec<DestinationCharge>,
    requests: Vec<(String, String, Option<String>)>,
    /// Account links made: link id -> (account, return_url).
    links: HashMap<String, (String, String)>,
    /// Webhook endpoints (url, signing secret) told of `account.updated`.
    webhooks: Vec<(String, String)>,
}

struct Shared {
    upstream: Option<String>,
    http: reqwest::Client,
    inner: Mutex<Inner>,
    mode: Mutex<TransferMode>,
    self_url: Mutex<String>,
}

/// A running double.
pub struct StripeDouble {
    /// Base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StripeDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StripeDouble {
    /// Start a double on a free loopback port, forwarding to `upstream`
    /// (localstripe), if any.
    pub async fn start(upstream: Option<String>) -> StripeDouble {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, upstream)
    }

    /// Start a double on `listener`, forwarding to `upstream` (localstripe),
    /// if any. Besides Stripe's API it serves the hosted onboarding page
    /// and a few `/__double/` paths for a harness that runs it as a process
    /// (see `hosted`).
    pub fn start_on(listener: tokio::net::TcpListener, upstream: Option<String>) -> StripeDouble {
        let shared = Arc::new(Shared {
            upstream: upstream.map(|u| u.trim_end_matches('/').to_string()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            inner: Mutex::new(Inner::default()),
            mode: Mutex::new(TransferMode::Normal),
            self_url: Mutex::new(String::new()),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let url = format!("http://{}", listener.local_addr().unwrap());
        *shared.self_url.lock() = url.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StripeDouble { url, shared, task }
    }

    /// Wait until the serving task ends (it runs until dropped).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }

    /// Set how transfers are answered from now on.
    pub fn set_transfer_mode(&self, mode: TransferMode) {
        *self.shared.mode.lock() = mode;
    }

    /// Transfers made (one per idempotency key, replays not counted).
    pub fn transfers(&self) -> Vec<Value> {
        self.shared.inner.lock().transfers.clone()
    }

    /// Destination charges created.
    pub fn destination_charges(&self) -> Vec<DestinationCharge> {
        self.shared.inner.lock().destination_charges.clone()
    }

    /// Make a Transfer to `destination` as a destination charge does (its
    /// id is what the charge's `transfer` names); answers `tr_...`.
    pub fn make_transfer(&self, destination: &str, amount: i64) -> String {
        let params = vec![
            ("amount".to_string(), amount.to_string()),
            ("currency".to_string(), "usd".to_string()),
            ("destination".to_string(), destination.to_string()),
        ];
        let mode = std::mem::replace(&mut *self.shared.mode.lock(), TransferMode::Normal);
        let t = create_transfer(&self.shared, &params).expect("transfer");
        *self.shared.mode.lock() = mode;
        t["id"].as_str().unwrap().to_string()
    }

    /// Transfer reversals made: (transfer, amount).
    pub fn reversals(&self) -> Vec<(String, i64)> {
        self.shared.inner.lock().reversals.clone()
    }

    /// Refunds made (`POST /v1/refunds`), oldest first.
    pub fn refunds(&self) -> Vec<Value> {
        self.shared.inner.lock().refunds.clone()
    }

    /// Connected accounts created.
    pub fn accounts(&self) -> Vec<Value> {
        self.shared
            .inner
            .lock()
            .accounts
            .values()
            .cloned()
            .collect()
    }

    /// Forget every Idempotency-Key seen (Stripe prunes keys after 24
    /// hours): a POST with an old key is then a new request.
    pub fn forget_idempotency_keys(&self) {
        self.shared.inner.lock().idempotency.clear();
    }

    /// Record a Transfer as if someone had made it (no request): to the
    /// connected account `destination`, `amount` cents, in `group`, with
    /// `metadata`. Answers it.
    pub fn add_transfer(
        &self,
        destination: &str,
        amount: i64,
        group: Option<&str>,
        metadata: Value,
    ) -> Value {
        let id = rand_id("tr_");
        let t = transfer_object(&id, amount, "usd", destination, metadata, group, None, None);
        self.shared.inner.lock().transfers.push(t.clone());
        t
    }

    /// Every request seen: (method, path, Idempotency-Key).
    pub fn requests(&self) -> Vec<(String, String, Option<String>)> {
        self.shared.inner.lock().requests.clone()
    }
}

/// Stripe's error body.
fn stripe_error(status: u16, kind: &str, code: Option<&str>, message: &str) -> (u16, Value) {
    let mut e = json!({ "type": kind, "message": message });
    if let Some(c) = code {
        e["code"] = json!(c);
        e["doc_url"] = json!(format!(
            "https://stripe.com/docs/error-codes/{}",
            c.replace('_', "-")
        ));
    }
    (status, json!({ "error": e }))
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    let s = String::from_utf8_lossy(body);
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn encode_form(params: &[(String, String)]) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Refuse parameters outside `allowed` (exact names or `prefix[` forms).
fn check_known(params: &[(String, String)], allowed: &[&str]) -> Result<(), (u16, Value)> {
    for (k, _) in params {
        let base = k.split('[').next().unwrap_or(k);
        let ok = allowed.iter().any(|a| {
            if let Some(prefix) = a.strip_suffix("[*]") {
                base == prefix && k.len() > base.len()
            } else {
                k == a
            }
        });
        if !ok {
            return Err(stripe_error(
                400,
                "invalid_request_error",
                Some("parameter_unknown"),
                &format!("Received unknown parameter: {k}"),
            ));
        }
    }
    Ok(())
}

fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn missing(name: &str) -> (u16, Value) {
    stripe_error(
        400,
        "invalid_request_error",
        Some("parameter_missing"),
        &format!("Missing required param: {name}."),
    )
}

fn positive_int(params: &[(String, String)], name: &str) -> Result<i64, (u16, Value)> {
    let v = get(params, name).ok_or_else(|| missing(name))?;
    v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        stripe_error(
            400,
            "invalid_request_error",
            Some("parameter_invalid_integer"),
            &format!("Invalid positive integer: {name}"),
        )
    })
}

fn currency(params: &[(String, String)]) -> Result<String, (u16, Value)> {
    let c = get(params, "currency").ok_or_else(|| missing("currency"))?;
    if c.len() == 3 && c.bytes().all(|b| b.is_ascii_lowercase()) {
        Ok(c.to_string())
    } else {
        Err(stripe_error(
            400,
            "invalid_request_error",
            Some("parameter_invalid"),
            "Invalid currency",
        ))
    }
}

fn metadata(params: &[(String, String)]) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in params {
        if let Some(key) = k
            .strip_prefix("metadata[")
            .and_then(|r| r.strip_suffix(']'))
        {
            m.insert(key.to_string(), json!(v));
        }
    }
    Value::Object(m)
}

fn rand_id(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn handle(
    State(sh): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    sh.inner
        .lock()
        .requests
        .push((method.to_string(), path.clone(), key.clone()));
    if let Some(r) = hosted(&sh, &method, &path, &body).await {
        return r;
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !auth.starts_with("Bearer sk_") {
        let (s, b) = stripe_error(
            401,
            "invalid_request_error",
            None,
            "You did not provide a valid API key.",
        );
        return reply(s, Bytes::from(b.to_string()), false);
    }
    let params = parse_form(&body);
    let mut canonical_params = params.clone();
    canonical_params.sort();
    let canonical = format!("{method} {path} {}", encode_form(&canonical_params));
    if method == Method::POST {
        if let Some(k) = &key {
            let hit = sh.inner.lock().idempotency.get(k).cloned();
            if let Some((first, status, bytes)) = hit {
                if first != canonical {
                    let (s, b) = stripe_error(
                        400,
                        "idempotency_error",
                        None,
                        "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                    );
                    return reply(s, Bytes::from(b.to_string()), false);
                }
                let mode = *sh.mode.lock();
                if let (true, TransferMode::ApplyThenHang(d)) = (path == "/v1/transfers", mode) {
                    tokio::time::sleep(d).await;
                }
                return reply(status, bytes, true);
            }
        }
    }
    let (status, bytes, save) = route(&sh, &method, &uri, &params, &body, auth).await;
    if save && method == Method::POST {
        if let Some(k) = key {
            sh.inner
                .lock()
                .idempotency
                .insert(k, (canonical, status, bytes.clone()));
        }
    }
    let mode = *sh.mode.lock();
    if let (true, TransferMode::ApplyThenHang(d)) = (path == "/v1/transfers" && status == 200, mode)
    {
        tokio::time::sleep(d).await;
    }
    reply(status, bytes, false)
}

fn reply(status: u16, bytes: Bytes, replayed: bool) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "application/json")],
        bytes,
    )
        .into_response();
    if replayed {
        r.headers_mut()
            .insert("idempotent-replayed", "true".parse().unwrap());
    }
    r
}

/// Answer one request: (status, body, whether to save it for replay). A
/// request refused by validation is not saved (as Stripe documents).
async fn route(
    sh: &Shared,
    method: &Method,
    uri: &Uri,
    params: &[(String, String)],
    body: &Bytes,
    auth: &str,
) -> (u16, Bytes, bool) {
    let path = uri.path();
    let local = |r: Result<Value, (u16, Value)>| match r {
        Ok(v) => (200, Bytes::from(v.to_string()), true),
        Err((s, v)) => (s, Bytes::from(v.to_string()), false),
    };
    match (method.as_str(), path) {
        ("POST", "/v1/accounts") => local(create_account(sh, params)),
        ("POST", "/v1/account_links") => local(create_account_link(sh, params)),
        ("POST", "/v1/transfers") => {
            {
                let mut mode = sh.mode.lock();
                if let TransferMode::Failing(status, n) = *mode {
                    *mode = match n {
                        0 | 1 => TransferMode::Normal,
                        n => TransferMode::Failing(status, n - 1),
                    };
                    if n > 0 {
                        let (s, v) = match status {
                            409 => stripe_error(
                                409,
                                "idempotency_error",
                                None,
                                "There is currently another in-progress request using this Idempotent Key.",
                            ),
                            429 => stripe_error(
                                429,
                                "invalid_request_error",
                                Some("rate_limit"),
                                "Too many requests hit the API too quickly.",
                            ),
                            s => stripe_error(s, "api_error", None, "An unknown error occurred."),
                        };
                        return (s, Bytes::from(v.to_string()), false);
                    }
                }
            }
            let r = create_transfer(sh, params);
            match r {
                Ok(v) => (200, Bytes::from(v.to_string()), true),
                // A refusal after validation is an outcome: saved.
                Err((s, v)) if v["error"]["code"] == "balance_insufficient" => {
                    (s, Bytes::from(v.to_string()), true)
                }
                Err((s, v)) => (s, Bytes::from(v.to_string()), false),
            }
        }
        ("POST", "/v1/refunds") => local(create_refund(sh, params)),
        ("GET", "/v1/transfers") => {
            let q = parse_form(uri.query().unwrap_or("").as_bytes());
            local(list_transfers(sh, &q))
        }
        ("POST", p) if p.starts_with("/v1/transfers/") && p.ends_with("/reversals") => {
            let id = &p["/v1/transfers/".len()..p.len() - "/reversals".len()];
            let r = create_reversal(sh, id, params);
            match r {
                Ok(v) => (200, Bytes::from(v.to_string()), true),
                Err((s, v)) if v["error"]["code"] == "balance_insufficient" => {
                    (s, Bytes::from(v.to_string()), true)
                }
                Err((s, v)) => (s, Bytes::from(v.to_string()), false),
            }
        }
        ("GET", p) if p.starts_with("/v1/transfers/") => {
            let id = &p["/v1/transfers/".len()..];
            let t = sh
                .inner
                .lock()
                .transfers
                .iter()
                .find(|t| t["id"] == id)
                .cloned();
            local(t.ok_or_else(|| {
                stripe_error(
                    404,
                    "invalid_request_error",
                    Some("resource_missing"),
                    "No such transfer",
                )
            }))
        }
        // A login link into an Express account's dashboard.
        ("POST", p) if p.starts_with("/v1/accounts/") && p.ends_with("/login_links") => {
            let id = &p["/v1/accounts/".len()..p.len() - "/login_links".len()];
            let known = sh.inner.lock().accounts.contains_key(id);
            local(if known {
                Ok(serde_json::json!({
                    "object": "login_link",
                    "created": std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    "url": format!("https://connect.stripe.com/express/{id}/double"),
                }))
            } else {
                Err(stripe_error(
                    404,
                    "invalid_request_error",
                    Some("resource_missing"),
                    "No such account",
                ))
            })
        }
        ("GET", p) if p.starts_with("/v1/accounts/") => {
            let id = &p["/v1/accounts/".len()..];
            let acct = sh.inner.lock().accounts.get(id).cloned();
            local(acct.ok_or_else(|| {
                stripe_error(
                    404,
                    "invalid_request_error",
                    Some("resource_missing"),
                    "No such account",
                )
            }))
        }
        ("POST", "/v1/payment_intents")
            if params.iter().any(|(k, _)| k.starts_with("transfer_data[")) =>
        {
            destination_charge(sh, params, auth).await
        }
        // No localstripe behind it (the chaos campaign): PaymentIntents
        // are made here; their webhooks come from the harness.
        ("POST", "/v1/payment_intents") if sh.upstream.is_none() => {
            local(create_payment_intent(params))
        }
        _ => forward(sh, method, uri, body.clone(), auth).await,
    }
}

/// A PaymentIntent awaiting payment, made by the double itself (only when
/// it has no upstream), with the fields the API reference always sends.
fn create_payment_intent(params: &[(String, String)]) -> Result<Value, (u16, Value)> {
    let amount = positive_int(params, "amount")?;
    let cur = currency(params)?;
    let id = rand_id("pi_");
    Ok(json!({
        "id": id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
        "amount_received": 0, "capture_method": "automatic_async",
        "client_secret": format!("{id}_secret_double"), "confirmation_method": "automatic",
        "created": now_s(), "currency": cur, "latest_charge": null, "livemode": false,
        "payment_method_types": ["card"], "status": "requires_payment_method",
        "metadata": metadata(params),
    }))
}

fn create_account(sh: &Shared, params: &[(String, String)]) -> Result<Value, (u16, Value)> {
    check_known(
        params,
        &[
            "type",
            "country",
            "email",
            "business_type",
            "capabilities[*]",
            "metadata[*]",
            "controller[*]",
        ],
    )?;
    let ty = get(params, "type").ok_or_else(|| missing("type"))?;
    if !["express", "standard", "custom"].contains(&ty) {
        return Err(stripe_error(
            400,
            "invalid_request_error",
            Some("parameter_invalid"),
            "Invalid type: must be one of custom, express, or standard",
        ));
    }
    for (k, v) in params {
        if k.starts_with("capabilities[")
            && !(k.ends_with("][requested]") && (v == "true" || v == "false"))
        {
            return Err(stripe_error(
                400,
                "invalid_request_error",
                Some("parameter_invalid"),
                &format!("Invalid {k}"),
            ));
        }
    }
    let id = rand_id("acct_");
    // Requested capabilities start inactive (onboarding not done).
    let mut capabilities = serde_json::Map::new();
    for (k, v) in params {
        if let Some(cap) = k
            .strip_prefix("capabilities[")
            .and_then(|r| r.strip_suffix("][requested]"))
        {
            if v == "true" {
                capabilities.insert(cap.to_string(), json!("inactive"));
            }
        }
    }
    let due = json!([
        "business_profile.url",
        "external_account",
        "tos_acceptance.date",
        "tos_acceptance.ip"
    ]);
    let acct = json!({
        "id": id,
        "object": "account",
        "business_profile": {
            "mcc": null, "name": null, "product_description": null,
            "support_address": null, "support_email": null, "support_phone": null,
            "support_url": null, "url": null
        },
        "business_type": get(params, "business_type"),
        "capabilities": capabilities,
        "charges_enabled": false,
        "country": get(params, "country").unwrap_or("US"),
        "created": now_s(),
        "default_currency": "usd",
        "details_submitted": false,
        "email": get(params, "email"),
        "external_accounts": {
            "object": "list", "data": [], "has_more": false, "total_count": 0,
            "url": format!("/v1/accounts/{id}/external_accounts")
        },
        "future_requirements": {
            "alternatives": [], "current_deadline": null, "currently_due": [],
            "disabled_reason": null, "errors": [], "eventually_due": [],
            "past_due": [], "pending_verification": []
        },
        "metadata": metadata(params),
        "payouts_enabled": false,
        "requirements": {
            "alternatives": [], "current_deadline": null, "currently_due": due,
            "disabled_reason": "requirements.past_due", "errors": [],
            "eventually_due": due, "past_due": due, "pending_verification": []
        },
        "tos_acceptance": { "date": null, "ip": null, "user_agent": null },
        "type": ty,
    });
    sh.inner.lock().accounts.insert(id, acct.clone());
    Ok(acct)
}

fn create_account_link(sh: &Shared, params: &[(String, String)]) -> Result<Value, (u16, Value)> {
    check_known(
        params,
        &[
            "account",
            "type",
            "refresh_url",
            "return_url",
            "collect",
            "collection_options[*]",
        ],
    )?;
    let acct = get(params, "account").ok_or_else(|| missing("account"))?;
    if !sh.inner.lock().accounts.contains_key(acct) {
        return Err(stripe_error(
            400,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such account: '{acct}'"),
        ));
    }
    let ty = get(params, "type").ok_or_else(|| missing("type"))?;
    if ty != "account_onboarding" && ty != "account_update" {
        return Err(stripe_error(
            400,
            "invalid_request_error",
            Some("parameter_invalid"),
            "Invalid type",
        ));
    }
    for u in ["refresh_url", "return_url"] {
        let v = get(params, u).ok_or_else(|| missing(u))?;
        if !v.starts_with("http://") && !v.starts_with("https://") {
            return Err(stripe_error(
                400,
                "invalid_request_error",
                Some("url_invalid"),
                &format!("Not a valid URL: {u}"),
            ));
        }
    }
    let created = now_s();
    let link = rand_id("");
    let ret = get(params, "return_url").unwrap_or_default().to_string();
    sh.inner
        .lock()
        .links
        .insert(link.clone(), (acct.to_string(), ret));
    Ok(json!({
        "object": "account_link",
        "created": created,
        "expires_at": created + 300,
        "url": format!("{}/connect/setup/{acct}/{link}", sh.self_url.lock()),
    }))
}

/// What the double serves outside Stripe's API (no API key):
/// - `GET /connect/setup/{acct}/{link}`: the hosted onboarding page an
///   account link leads to (test mode: one "Complete" button);
/// - `POST` the same: the account becomes fully enabled
///   (`details_submitted`, `charges_enabled`, `payouts_enabled`), every
///   registered webhook endpoint gets a signed `account.updated`, and the
///   browser goes back to the link's `return_url` (303);
/// - `POST /__double/webhooks` (form `url`, `secret`): register an endpoint;
/// - `GET /__double/transfers`, `GET /__double/accounts`: what it holds;
/// - `POST /__double/transfer-mode` (form `mode` = `normal` | `refuse` |
///   `fail` with `status` and `n` | `hang` with `ms`): how transfers are
///   answered from now on (see [`TransferMode`]), for a fault campaign.
async fn hosted(sh: &Shared, method: &Method, path: &str, body: &[u8]) -> Option<Response> {
    let json_reply = |v: Value| reply(200, Bytes::from(v.to_string()), false);
    match (method.as_str(), path) {
        ("GET", "/__double/transfers") => {
            return Some(json_reply(Value::Array(sh.inner.lock().transfers.clone())))
        }
        ("GET", "/__double/accounts") => {
            let all = sh.inner.lock().accounts.values().cloned().collect();
            return Some(json_reply(Value::Array(all)));
        }
        ("POST", "/__double/transfer-mode") => {
            let p = parse_form(body);
            let num = |k: &str, d: u64| get(&p, k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(d);
            let mode = match get(&p, "mode") {
                Some("normal") => TransferMode::Normal,
                Some("refuse") => TransferMode::Refuse,
                Some("fail") => TransferMode::Failing(
                    u16::try_from(num("status", 500)).unwrap_or(500),
                    u32::try_from(num("n", 1)).unwrap_or(1),
                ),
                Some("hang") => TransferMode::ApplyThenHang(Duration::from_millis(num("ms", 2000))),
                _ => {
                    return Some(reply(
                        400,
                        Bytes::from("mode: normal|refuse|fail|hang"),
                        false,
                    ))
                }
            };
            *sh.mode.lock() = mode;
            return Some(json_reply(json!({ "ok": true })));
        }
        ("POST", "/__double/webhooks") => {
            let p = parse_form(body);
            let (Some(url), Some(secret)) = (get(&p, "url"), get(&p, "secret")) else {
                return Some(reply(400, Bytes::from("url and secret"), false));
            };
            let hook = (url.to_string(), secret.to_string());
            sh.inner.lock().webhooks.push(hook);
            return Some(json_reply(json!({ "ok": true })));
        }
        _ => {}
    }
    let rest = path.strip_prefix("/connect/setup/")?;
    let (acct, link) = rest.split_once('/')?;
    let known = sh.inner.lock().links.get(link).cloned();
    let Some((link_acct, ret)) = known.filter(|(a, _)| a == acct) else {
        return Some(reply(404, Bytes::from("no such account link"), false));
    };
    if method == Method::GET {
        let html = format!(
            "<!doctype html><html lang=en><meta charset=utf-8>\
             <meta name=viewport content=\"width=device-width\">\
             <title>Stripe test-mode onboarding</title>\
             <h1>Test-mode onboarding</h1><p>Account <code>{link_acct}</code> \
             (the giftstream Stripe contract double).</p>\
             <form method=post><button id=complete>Complete onboarding</button></form>"
        );
        let mut r = reply(200, Bytes::from(html), false);
        r.headers_mut()
            .insert("content-type", "text/html; charset=utf-8".parse().unwrap());
        return Some(r);
    }
    let acct_obj = {
        let mut inner = sh.inner.lock();
        let Some(a) = inner.accounts.get_mut(&link_acct) else {
            return Some(reply(404, Bytes::from("no such account"), false));
        };
        for f in ["details_submitted", "charges_enabled", "payouts_enabled"] {
            a[f] = json!(true);
        }
        a["requirements"]["currently_due"] = json!([]);
        a["requirements"]["past_due"] = json!([]);
        a["requirements"]["eventually_due"] = json!([]);
        a["requirements"]["disabled_reason"] = Value::Null;
        a.clone()
    };
    let hooks = sh.inner.lock().webhooks.clone();
    for (url, secret) in hooks {
        send_event(sh, &url, &secret, "account.updated", acct_obj.clone()).await;
    }
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut().insert(
        "location",
        ret.parse().unwrap_or_else(|_| "/".parse().unwrap()),
    );
    Some(r)
}

/// POST a signed Stripe event to a webhook endpoint (best effort: the
/// harness sees a missed one as a status that never changes).
async fn send_event(sh: &Shared, url: &str, secret: &str, kind: &str, object: Value) {
    let t = now_s();
    let body = json!({
        "id": rand_id("evt_"),
        "object": "event",
        "api_version": "2024-06-20",
        "created": t,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
    })
    .to_string();
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(secret.as_bytes())
        .expect("hmac takes any key");
    hmac::Mac::update(&mut mac, format!("{t}.{body}").as_bytes());
    let sig = hex::encode(hmac::Mac::finalize(mac).into_bytes());
    let _ = sh
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("stripe-signature", format!("t={t},v1={sig}"))
        .body(body)
        .send()
        .await;
}

fn create_transfer(sh: &Shared, params: &[(String, String)]) -> Result<Value, (u16, Value)> {
    check_known(
        params,
        &[
            "amount",
            "currency",
            "destination",
            "metadata[*]",
            "transfer_group",
            "description",
            "source_transaction",
        ],
    )?;
    let amount = positive_int(params, "amount")?;
    let cur = currency(params)?;
    let dest = get(params, "destination").ok_or_else(|| missing("destination"))?;
    if !sh.inner.lock().accounts.contains_key(dest) {
        return Err(stripe_error(
            400,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such destination: '{dest}'"),
        ));
    }
    if *sh.mode.lock() == TransferMode::Refuse {
        return Err(stripe_error(
            400,
            "invalid_request_error",
            Some("balance_insufficient"),
            "You have insufficient available funds in your Stripe account.",
        ));
    }
    let id = rand_id("tr_");
    let t = transfer_object(
        &id,
        amount,
        &cur,
        dest,
        metadata(params),
        get(params, "transfer_group"),
        get(params, "description"),
        get(params, "source_transaction"),
    );
    sh.inner.lock().transfers.push(t.clone());
    Ok(t)
}

/// `POST /v1/refunds` of a PaymentIntent (localstripe refunds only the
/// charges it confirmed itself): the whole amount asked, `succeeded`.
fn create_refund(sh: &Shared, params: &[(String, String)]) -> Result<Value, (u16, Value)> {
    check_known(
        params,
        &["payment_intent", "amount", "metadata[*]", "reason"],
    )?;
    let pi = get(params, "payment_intent").ok_or_else(|| missing("payment_intent"))?;
    let amount = positive_int(params, "amount")?;
    let already: i64 = sh
        .inner
        .lock()
        .refunds
        .iter()
        .filter(|r| r["payment_intent"] == pi)
        .filter_map(|r| r["amount"].as_i64())
        .sum();
    if already > 0 {
        return Err(stripe_error(
            400,
            "invalid_request_error",
            Some("charge_already_refunded"),
            &format!("Charge for {pi} has already been refunded."),
        ));
    }
    let r = json!({
        "id": rand_id("re_"), "object": "refund", "amount": amount,
        "balance_transaction": null, "charge": null, "created": now_s(),
        "currency": "usd", "description": null, "destination_details": null,
        "failure_balance_transaction": null, "failure_reason": null,
        "instructions_email": null, "metadata": metadata(params), "next_action": null,
        "payment_intent": pi, "payment_method": null, "pending_reason": null,
        "presentment_details": null, "reason": get(params, "reason"),
        "receipt_number": null, "source_transfer_reversal": null, "status": "succeeded",
        "transfer_reversal": null,
    });
    sh.inner.lock().refunds.push(r.clone());
    Ok(r)
}

/// A Transfer as the API reference shows it.
#[allow(clippy::too_many_arguments)]
fn transfer_object(
    id: &str,
    amount: i64,
    cur: &str,
    dest: &str,
    metadata: Value,
    group: Option<&str>,
    description: Option<&str>,
    source_transaction: Option<&str>,
) -> Value {
    json!({
        "id": id,
        "object": "transfer",
        "amount": amount,
        "amount_reversed": 0,
        "balance_transaction": rand_id("txn_"),
        "created": now_s(),
        "currency": cur,
        "description": description,
        "destination": dest,
        "destination_payment": rand_id("py_"),
        "livemode": false,
        "metadata": metadata,
        "reversals": {
            "object": "list", "data": [], "has_more": false, "total_count": 0,
            "url": format!("/v1/transfers/{id}/reversals")
        },
        "reversed": false,
        "source_transaction": source_transaction,
        "source_type": "card",
        "transfer_group": group,
    })
}

/// `GET /v1/transfers`: newest first, filtered, one page.
fn list_transfers(sh: &Shared, q: &[(String, String)]) -> Result<Value, (u16, Value)> {
    check_known(
        q,
        &[
            "transfer_group",
            "destination",
            "created[gte]",
            "created[gt]",
            "created[lte]",
            "created[lt]",
            "limit",
            "starting_after",
            "ending_before",
            "expand[*]",
        ],
    )?;
    let limit = match get(q, "limit") {
        None => 10,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(stripe_error(
                    400,
                    "invalid_request_error",
                    Some("parameter_invalid_integer"),
                    "limit must be 1..=100",
                ))
            }
        },
    };
    let num = |k: &str| get(q, k).and_then(|v| v.parse::<i64>().ok());
    let all: Vec<Value> = sh.inner.lock().transfers.iter().rev().cloned().collect();
    let mut matching = all.into_iter().filter(|t| {
        let created = t["created"].as_i64().unwrap_or(0);
        get(q, "transfer_group").is_none_or(|g| t["transfer_group"] == g)
            && get(q, "destination").is_none_or(|d| t["destination"] == d)
            && num("created[gte]").is_none_or(|v| created >= v)
            && num("created[gt]").is_none_or(|v| created > v)
            && num("created[lte]").is_none_or(|v| created <= v)
            && num("created[lt]").is_none_or(|v| created < v)
    });
    let rest: Vec<Value> = match get(q, "starting_after") {
        Some(after) => matching
            .by_ref()
            .skip_while(|t| t["id"] != after)
            .skip(1)
            .collect(),
        None => matching.collect(),
    };
    let has_more = rest.len() > limit;
    let data: Vec<Value> = rest.into_iter().take(limit).collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "has_more": has_more,
        "url": "/v1/transfers",
    }))
}

/// `POST /v1/transfers/{id}/reversals`: at most what is not reversed yet;
/// refused as `balance_insufficient` in [`TransferMode::Refuse`] (the
/// connected account cannot cover it).
fn create_reversal(
    sh: &Shared,
    id: &str,
    params: &[(String, String)],
) -> Result<Value, (u16, Value)> {
    check_known(
        params,
        &[
            "amount",
            "metadata[*]",
            "description",
            "refund_application_fee",
        ],
    )?;
    let amount = positive_int(params, "amount")?;
    if *sh.mode.lock() == TransferMode::Refuse {
        return Err(stripe_error(
            400,
            "invalid_request_error",
            Some("balance_insufficient"),
            "The connected account has insufficient funds to cover the reversal.",
        ));
    }
    let mut inner = sh.inner.lock();
    let Some(t) = inner.transfers.iter_mut().find(|t| t["id"] == id) else {
        return Err(stripe_error(
            404,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such transfer: '{id}'"),
        ));
    };
    let left = t["amount"].as_i64().unwrap_or(0) - t["amount_reversed"].as_i64().unwrap_or(0);
    if amount > left {
        return Err(stripe_error(
            400,
            "invalid_request_error",
            None,
            "Amount exceeds the transfer's unreversed amount.",
        ));
    }
    let reversed = t["amount_reversed"].as_i64().unwrap_or(0) + amount;
    t["amount_reversed"] = json!(reversed);
    t["reversed"] = json!(reversed == t["amount"].as_i64().unwrap_or(0));
    let cur = t["currency"].clone();
    inner.reversals.push((id.to_string(), amount));
    Ok(json!({
        "id": rand_id("trr_"),
        "object": "transfer_reversal",
        "amount": amount,
        "balance_transaction": rand_id("txn_"),
        "created": now_s(),
        "currency": cur,
        "destination_payment_refund": rand_id("pyr_"),
        "metadata": metadata(params),
        "source_refund": null,
        "transfer": id,
    }))
}

/// A PaymentIntent with `transfer_data[destination]`: checked and recorded
/// here, created at localstripe without the Connect parameters, answered
/// with them.
async fn destination_charge(
    sh: &Shared,
    params: &[(String, String)],
    auth: &str,
) -> (u16, Bytes, bool) {
    let dest = get(params, "transfer_data[destination]").map(str::to_string);
    let Some(dest) = dest else {
        let (s, v) = missing("transfer_data[destination]");
        return (s, Bytes::from(v.to_string()), false);
    };
    if let Some((k, _)) = params.iter().find(|(k, _)| {
        k.starts_with("transfer_data[")
            && k != "transfer_data[destination]"
            && k != "transfer_data[amount]"
    }) {
        let (s, v) = stripe_error(
            400,
            "invalid_request_error",
            Some("parameter_unknown"),
            &format!("Received unknown parameter: {k}"),
        );
        return (s, Bytes::from(v.to_string()), false);
    }
    if !sh.inner.lock().accounts.contains_key(&dest) {
        let (s, v) = stripe_error(
            400,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such destination: '{dest}'"),
        );
        return (s, Bytes::from(v.to_string()), false);
    }
    let fee = get(params, "application_fee_amount").and_then(|f| f.parse::<i64>().ok());
    let upstream: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !k.starts_with("transfer_data[") && k != "application_fee_amount")
        .cloned()
        .collect();
    // No localstripe behind it (the chaos campaign): the PaymentIntent is
    // made here, like a purchase's.
    let (status, bytes, save) = if sh.upstream.is_none() {
        match create_payment_intent(&upstream) {
            Ok(v) => (200, Bytes::from(v.to_string()), true),
            Err((s, v)) => (s, Bytes::from(v.to_string()), false),
        }
    } else {
        let uri: Uri = "/v1/payment_intents".parse().unwrap();
        forward(
            sh,
            &Method::POST,
            &uri,
            Bytes::from(encode_form(&upstream)),
            auth,
        )
        .await
    };
    if status != 200 {
        return (status, bytes, save);
    }
    let Ok(mut pi) = serde_json::from_slice::<Value>(&bytes) else {
        return (502, bytes, false);
    };
    pi["transfer_data"] = json!({ "destination": dest });
    pi["application_fee_amount"] = json!(fee);
    sh.inner.lock().destination_charges.push(DestinationCharge {
        payment_intent: pi["id"].as_str().unwrap_or_default().to_string(),
        destination: dest,
        amount: pi["amount"].as_i64().unwrap_or(0),
        application_fee: fee,
    });
    (200, Bytes::from(pi.to_string()), true)
}

async fn forward(
    sh: &Shared,
    method: &Method,
    uri: &Uri,
    body: Bytes,
    auth: &str,
) -> (u16, Bytes, bool) {
    let Some(up) = &sh.upstream else {
        let (s, v) = stripe_error(
            404,
            "invalid_request_error",
            None,
            "the contract double has no upstream (localstripe) for this path",
        );
        return (s, Bytes::from(v.to_string()), false);
    };
    let url = format!(
        "{up}{}",
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let m = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
    let resp = sh
        .http
        .request(m, url)
        .header("authorization", auth)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_vec())
        .send()
        .await;
    match resp {
        Ok(r) => {
            let s = r.status().as_u16();
            let b = r.bytes().await.unwrap_or_default();
            (s, Bytes::from(b.to_vec()), s < 500)
        }
        Err(e) => {
            let (s, v) = stripe_error(502, "api_error", None, &format!("localstripe: {e}"));
            (s, Bytes::from(v.to_string()), false)
        }
    }
}
