//! A creator's message rules and review queue over HTTP (issue 17, see
//! `docs/MODERATION.md`): settings, muted words, kept-back messages and
//! their approval or rejection.
//!
//! Owns: these handlers, their input bounds (`[moderation]`), who may
//! call them (settings and words: the creator; the queue: the creator or
//! one of their moderators) and the messages cursor (URL-safe base64 of
//! `created_ms:id`).
//! Must not: hold SQL (the ledger's `message_rules`) or match text
//! (`crate::moderation`).

use axum::extract::{Path, Query, State};
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{Caller, JsonBody};
use super::Shared;
use crate::app::AppState;
use crate::auth::{Identity, Role};
use crate::error::Error;
use crate::ledger::message_rules::{
    Decided, MessagesCursor, ModeratedMessage, ModerationSettings, MutedWordRow,
};
use crate::model::{Target, TargetKind};
use crate::moderation::filter::{Mode, Pattern, BUILTIN_LANGS};
use crate::moderation::normalise::key;

/// Messages per page by default and at most.
const PAGE_LEN: i64 = 20;
const PAGE_LEN_MAX: i64 = 100;
/// Highest `review_coins_below` a creator may set.
const REVIEW_COINS_MAX: i64 = 1_000_000_000;
/// The states of a kept-back message.
const STATES: [&str; 4] = ["held", "filtered", "approved", "rejected"];

/// `forbidden` unless `who` is `creator` (creator token) or one of their
/// moderators.
async fn may_moderate(state: &AppState, who: &Identity, creator: &str) -> Result<(), Error> {
    if who.role == Role::Creator && who.user == creator {
        return Ok(());
    }
    if state.ledger.is_moderator(creator, &who.user).await? {
        return Ok(());
    }
    Err(Error::forbidden(
        "only the creator or one of their moderators",
    ))
}

/// The settings as the wire shows them.
fn settings_json(s: &ModerationSettings) -> Value {
    json!({
        "builtin_langs": s.builtin_langs,
        "review_account_age_days": s.review_account_age_days,
        "review_coins_below": s.review_coins_below,
        "message_interval_ms": s.message_interval_ms,
    })
}

/// `GET /v1/creators/me/moderation/settings` (creator).
pub(super) async fn settings_get(
    State(state): State<Shared>,
    Caller(who): Caller,
) -> Result<Json<Value>, Error> {
    who.require(Role::Creator)?;
    let s = state
        .ledger
        .moderation_settings(&who.user)
        .await?
        .unwrap_or_default();
    Ok(Json(settings_json(&s)))
}

/// The body of `PUT .../moderation/settings`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsBody {
    #[serde(default)]
    builtin_langs: Vec<String>,
    #[serde(default)]
    review_account_age_days: Option<i64>,
    #[serde(default)]
    review_coins_below: Option<i64>,
    #[serde(default)]
    message_interval_ms: i64,
}

/// `PUT /v1/creators/me/moderation/settings` (creator): replace the
/// settings; each value within the platform's bounds, else `bad_request`.
pub(super) async fn settings_put(
    State(state): State<Shared>,
    Caller(who): Caller,
    JsonBody(b): JsonBody<SettingsBody>,
) -> Result<Json<Value>, Error> {
    who.require(Role::Creator)?;
    let cfg = &state.cfg.moderation;
    let mut langs: Vec<String> = Vec::new();
    for l in b.builtin_langs {
        if !BUILTIN_LANGS.contains(&l.as_str()) {
            return Err(Error::bad_request(format!(
                "builtin_langs: `{l}` is none of {BUILTIN_LANGS:?}"
            )));
        }
        if !langs.contains(&l) {
            langs.push(l);
        }
    }
    if let Some(d) = b.review_account_age_days {
        if !(1..=cfg.review_account_age_days_max).contains(&d) {
            return Err(Error::bad_request(format!(
                "review_account_age_days must be null or 1..={}",
                cfg.review_account_age_days_max
            )));
        }
    }
    if let Some(c) = b.review_coins_below {
        if !(1..=REVIEW_COINS_MAX).contains(&c) {
            return Err(Error::bad_request(format!(
                "review_coins_below must be null or 1..={REVIEW_COINS_MAX}"
            )));
        }
    }
    let (lo, hi) = (cfg.message_interval_ms_min, cfg.message_interval_ms_max);
    let ms = b.message_interval_ms;
    if ms != 0 && !(ms >= lo as i64 && ms <= hi as i64) {
        return Err(Error::bad_request(format!(
            "message_interval_ms must be 0 (the platform default) or {lo}..={hi}"
        )));
    }
    let s = ModerationSettings {
        builtin_langs: langs,
        review_account_age_days: b.review_account_age_days,
        review_coins_below: b.review_coins_below,
        message_interval_ms: ms,
    };
    state
        .ledger
        .moderation_settings_set(&who.user, &who.user, &s)
        .await?;
    state.rules.invalidate(&who.user);
    Ok(Json(settings_json(&s)))
}

/// `GET /v1/creators/me/moderation/words` (creator).
pub(super) async fn words_get(
    State(state): State<Shared>,
    Caller(who): Caller,
) -> Result<Json<Value>, Error> {
    who.require(Role::Creator)?;
    let words = state.ledger.muted_words(&who.user).await?;
    Ok(Json(words_json(&words)))
}

fn words_json(words: &[MutedWordRow]) -> Value {
    let list: Vec<Value> = words
        .iter()
        .map(|w| json!({ "text": w.original, "mode": w.mode }))
        .collect();
    json!({ "words": list })
}

/// One muted word in a `PUT` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WordBody {
    text: String,
    #[serde(default)]
    mode: Option<String>,
}

/// The body of `PUT .../moderation/words`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WordsBody {
    words: Vec<WordBody>,
}

/// `PUT /v1/creators/me/moderation/words` (creator): replace the list.
/// At most `moderation.words_len_max` words of at most
/// `moderation.word_len_max` characters, each with a letter, no control
/// characters; mode `word` (default) or `substring`.
pub(super) async fn words_put(
    State(state): State<Shared>,
    Caller(who): Caller,
    JsonBody(b): JsonBody<WordsBody>,
) -> Result<Json<Value>, Error> {
    who.require(Role::Creator)?;
    let cfg = &state.cfg.moderation;
    if b.words.len() > cfg.words_len_max {
        return Err(Error::bad_request(format!(
            "at most {} words (moderation.words_len_max)",
            cfg.words_len_max
        )));
    }
    let mut rows = Vec::with_capacity(b.words.len());
    for w in b.words {
        let text = w.text.trim().to_string();
        let mode = match w.mode.as_deref() {
            None => Mode::Word,
            Some(m) => Mode::parse(m)
                .ok_or_else(|| Error::bad_request("mode must be `word` or `substring`"))?,
        };
        let n = text.chars().count();
        if n == 0 || n > cfg.word_len_max || text.chars().any(char::is_control) {
            return Err(Error::bad_request(format!(
                "each word must be 1..={} characters without control characters",
                cfg.word_len_max
            )));
        }
        if Pattern::new(&text, mode, "").is_none() {
            return Err(Error::bad_request(format!(
                "`{text}` has no letter to match"
            )));
        }
        rows.push(MutedWordRow {
            normalised: key(&text).text(),
            mode: mode.as_str().to_string(),
            original: text,
        });
    }
    state
        .ledger
        .muted_words_set(&who.user, &who.user, &rows)
        .await?;
    state.rules.invalidate(&who.user);
    let words = state.ledger.muted_words(&who.user).await?;
    Ok(Json(words_json(&words)))
}

/// `?state=&cursor=&limit=` of the messages list.
#[derive(Deserialize)]
pub(super) struct MessagesQuery {
    state: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

fn encode_cursor(m: &ModeratedMessage) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{}", m.created_ms, m.id))
}

fn decode_cursor(c: &str) -> Result<MessagesCursor, Error> {
    let bad = || Error::bad_request("bad cursor");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (ms, id) = text.split_once(':').ok_or_else(bad)?;
    Ok(MessagesCursor {
        created_ms: ms.parse().map_err(|_| bad())?,
        id: Some(id)
            .filter(|i| !i.is_empty() && i.len() <= 64)
            .ok_or_else(bad)?
            .to_string(),
    })
}

async fn list(state: &AppState, creator: &str, q: MessagesQuery) -> Result<Json<Value>, Error> {
    let st = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) if STATES.contains(&s) => Some(s),
        Some(_) => {
            return Err(Error::bad_request(
                "state must be held, filtered, approved or rejected",
            ))
        }
    };
    let limit = match q.limit.as_deref() {
        None | Some("") => PAGE_LEN,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=PAGE_LEN_MAX).contains(n))
            .ok_or_else(|| Error::bad_request(format!("limit must be 1..={PAGE_LEN_MAX}")))?,
    };
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c)?),
    };
    let mut rows = state
        .ledger
        .kept_messages(creator, st, limit + 1, after.as_ref())
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = rows.last().filter(|_| more).map(encode_cursor);
    Ok(Json(json!({ "messages": rows, "next_cursor": next })))
}

/// `GET /v1/creators/me/messages` (creator): kept-back messages, newest
/// first.
pub(super) async fn messages_me(
    State(state): State<Shared>,
    Caller(who): Caller,
    Query(q): Query<MessagesQuery>,
) -> Result<Json<Value>, Error> {
    who.require(Role::Creator)?;
    list(&state, &who.user, q).await
}

/// `GET /v1/creators/{creator}/messages` (the creator or a moderator).
pub(super) async fn messages_of(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(creator): Path<String>,
    Query(q): Query<MessagesQuery>,
) -> Result<Json<Value>, Error> {
    may_moderate(&state, &who, &creator).await?;
    list(&state, &creator, q).await
}

/// Approve or reject held message `id` of `creator` by `who`; an approval
/// made now publishes the message once as a `gift_message` into its room
/// or video.
async fn decide(
    state: &AppState,
    who: &Identity,
    creator: &str,
    id: &str,
    approve: bool,
) -> Result<Json<Value>, Error> {
    let row = match state
        .ledger
        .message_decide(creator, id, &who.user, approve)
        .await?
    {
        Decided::Now(row) => {
            if approve {
                publish(state, &row).await;
            }
            row
        }
        Decided::Already(row) => row,
        Decided::Other(row) => {
            return Err(Error::bad_request(format!(
                "message `{id}` is {}, not held",
                row.state
            )))
        }
        Decided::Missing => return Err(Error::bad_request(format!("no message `{id}`"))),
    };
    Ok(Json(serde_json::to_value(&row).unwrap_or_default()))
}

/// The approved message into its gift's (or tip's) room or video. Best
/// effort: the approval is in the ledger whatever happens here.
async fn publish(state: &AppState, row: &ModeratedMessage) {
    let Some(target) = Target::from_key(&row.target) else {
        return;
    };
    if row.kind == "tip" && target.kind != TargetKind::Room {
        // Tips are announced in rooms only.
        return;
    }
    let ref_seq = row.seq.and_then(|s| u64::try_from(s).ok());
    if let Err(e) = state
        .counters
        .gift_message(&target, &row.id, ref_seq, &row.message)
        .await
    {
        let e = Error::from(e);
        tracing::warn!(id = %row.id, error = %e.report(), "approved message not published");
    }
}

/// `POST /v1/creators/me/messages/{id}/approve` (creator).
pub(super) async fn approve_me(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    who.require(Role::Creator)?;
    decide(&state, &who, &who.user.clone(), &id, true).await
}

/// `POST /v1/creators/me/messages/{id}/reject` (creator).
pub(super) async fn reject_me(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    who.require(Role::Creator)?;
    decide(&state, &who, &who.user.clone(), &id, false).await
}

/// `POST /v1/creators/{creator}/messages/{id}/approve` (the creator or a
/// moderator).
pub(super) async fn approve_of(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path((creator, id)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    may_moderate(&state, &who, &creator).await?;
    decide(&state, &who, &creator, &id, true).await
}

/// `POST /v1/creators/{creator}/messages/{id}/reject` (the creator or a
/// moderator).
pub(super) async fn reject_of(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path((creator, id)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    may_moderate(&state, &who, &creator).await?;
    decide(&state, &who, &creator, &id, false).await
}
