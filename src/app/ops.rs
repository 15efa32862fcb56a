//! Operations shared by the WebSocket and HTTP front ends.
//!
//! Owns: the gift path (catalog lookup → atomic counters step → optional
//! wait for the ledger commit), coin credits (ledger first, then wallet),
//! and room and video registration (ledger, then counters, then hub).
//! Must not: know which transport called it.

use std::time::Duration;

use tokio::time::Instant;

use crate::auth::{Identity, Role};
use crate::config::AckMode;
use crate::error::{Error, ErrorCode, Result};
use crate::ledger::message_rules::KeptMessage;
use crate::ledger::{CreditOp, CreditOutcome};
use crate::model::{GiftAck, GiftOutcome, GiftRequest, PlainGift, Target, TargetKind};
use crate::moderation::gate::Checked;
use crate::protocol::now_ms;
use crate::relay::Topic;

use super::AppState;

/// Longest single pause of a gift waiting for room in a full queue; the
/// room queue drains without a settlement signal, so it is polled.
const BUSY_POLL_MS: u64 = 10;

/// Apply one gift (with the sender's `message`, checked by the protocol
/// layer) and answer once it is as durable as `gift.ack` asks.
pub async fn gift(
    state: &AppState,
    who: &Identity,
    target: Target,
    gift_id: &str,
    count: u32,
    client_id: &str,
    message: Option<String>,
) -> Result<GiftAck> {
    let target_key = target.key();
    let outcome = gift_counted(state, who, target, gift_id, count, client_id, message).await?;
    wait_durable(state, &outcome, &target_key).await?;
    Ok(outcome.ack)
}

/// The counters step alone; see [`wait_durable`] for the ledger wait.
pub async fn gift_counted(
    state: &AppState,
    who: &Identity,
    target: Target,
    gift_id: &str,
    count: u32,
    client_id: &str,
    message: Option<String>,
) -> Result<GiftOutcome> {
    let result: Result<GiftOutcome> = async {
        let gift = catalog_gift(state, gift_id)?;
        // The creator's message rules, before any money moves: the
        // per-viewer rate limit (refuses), then filter or review (keeps
        // the message back, never the gift).
        let checked = match message.as_deref() {
            Some(text) => {
                message_check(state, who, &target, text, gift.coins * count as i64).await?
            }
            None => None,
        };
        let kept = checked.as_ref().and_then(|(_, c)| c.kept.clone());
        // A full pending queue (settlement behind) or room queue is
        // transient: wait for room, bounded by `gift.busy_wait_ms_max`,
        // rather than refuse a gift the client would only send again.
        let deadline = Instant::now() + Duration::from_millis(state.cfg.gift.busy_wait_ms_max);
        let mut waited = false;
        let outcome = loop {
            let req = GiftRequest {
                sender: who.user.clone(),
                target: target.clone(),
                gift: gift.clone(),
                count,
                client_id: client_id.to_string(),
                ts: now_ms(),
                message: message.clone(),
                kept: kept.clone(),
            };
            match state.counters.gift(req).await {
                // The pending queue full, or the room's queue (passed from
                // the hub's sink): both `rate_limited`.
                Err(e) if e.code() == ErrorCode::RateLimited => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(e.into());
                    }
                    if !waited {
                        waited = true;
                        metrics::counter!("giftstream_gifts_busy_waited_total").increment(1);
                    }
                    state.settlement.wake();
                    let poll = Duration::from_millis(BUSY_POLL_MS).min(deadline - now);
                    state.settlement.progressed(poll).await;
                }
                other => break other?,
            }
        };
        wake_on_full_batch(state, &outcome);
        if let (Some((creator, c)), Some(k), false) = (&checked, &kept, outcome.duplicate) {
            let record = KeptMessage {
                id: k.id.clone(),
                creator: creator.clone(),
                kind: "gift".into(),
                target: target.key(),
                seq: Some(outcome.ack.seq as i64),
                reference: None,
                sender: who.user.clone(),
                message: message.clone().unwrap_or_default(),
                state: k.state.clone(),
                reason: c.reason.clone(),
            };
            // The gift is accepted: a lost record loses the original text
            // only (viewers never had it).
            if let Err(e) = state.message_gate().record(&record).await {
                tracing::warn!(id = %k.id, error = %e.report(), "kept-back message not recorded");
            }
        }
        Ok(outcome)
    }
    .await;
    tally(&result);
    result
}

/// Several gifts of one sender without messages, read together from one
/// socket: given to the engine as one group ([`Counters::gift_group`]: one
/// script call on Redis, where one at a time a socket's gifts went ~5 to
/// a call) and answered in order. The first one refused for a full queue
/// and every one after it (none of which the engine applied) go again one
/// at a time, in order, through [`gift_counted`], which waits for room: so
/// they apply in the order sent, as one at a time would.
///
/// [`Counters::gift_group`]: crate::counters::Counters::gift_group
pub async fn gift_group(
    state: &AppState,
    who: &Identity,
    gifts: Vec<PlainGift>,
) -> Vec<Result<GiftOutcome>> {
    let mut answers: Vec<Option<Result<GiftOutcome>>> = Vec::with_capacity(gifts.len());
    let mut reqs = Vec::with_capacity(gifts.len());
    // Where each request's gift is in `gifts`, increasing.
    let mut at = Vec::with_capacity(gifts.len());
    for (i, g) in gifts.iter().enumerate() {
        match catalog_gift(state, &g.gift) {
            Ok(gift) => {
                reqs.push(GiftRequest {
                    sender: who.user.clone(),
                    target: g.target.clone(),
                    gift: gift.clone(),
                    count: g.count,
                    client_id: g.id.clone(),
                    ts: now_ms(),
                    message: None,
                    kept: None,
                });
                at.push(i);
                answers.push(None);
            }
            Err(e) => {
                let refused = Err(e);
                tally(&refused);
                answers.push(Some(refused));
            }
        }
    }
    let mut again_from = gifts.len();
    for (i, answer) in at.into_iter().zip(state.counters.gift_group(reqs).await) {
        if i > again_from {
            // The engine applies nothing after a gift refused for a full
            // queue (`Counters::gift_group`); these go again below.
            debug_assert!(
                !matches!(&answer, Ok(o) if !o.duplicate),
                "a gift of a group applied after one refused for a full queue"
            );
            continue;
        }
        match answer {
            Err(e) if e.code() == ErrorCode::RateLimited => again_from = i,
            answer => {
                let answer = answer.map_err(Error::from);
                if let Ok(outcome) = &answer {
                    wake_on_full_batch(state, outcome);
                }
                tally(&answer);
                answers[i] = Some(answer);
            }
        }
    }
    for (i, g) in gifts.iter().enumerate().skip(again_from) {
        if answers[i].is_none() {
            answers[i] = Some(
                gift_counted(state, who, g.target.clone(), &g.gift, g.count, &g.id, None).await,
            );
        }
    }
    answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                Err(Error::new(
                    ErrorCode::OutcomeUnknown,
                    "the gift was not answered",
                ))
            })
        })
        .collect()
}

/// The catalog's gift `gift_id`, or the refusal `unknown_gift`.
fn catalog_gift<'s>(state: &'s AppState, gift_id: &str) -> Result<&'s crate::catalog::Gift> {
    state.catalog.get(gift_id).ok_or_else(|| {
        Error::new(
            ErrorCode::UnknownGift,
            format!("no gift `{gift_id}` in the catalog"),
        )
    })
}

/// Wake settlement when `outcome` filled a batch.
fn wake_on_full_batch(state: &AppState, outcome: &GiftOutcome) {
    if outcome
        .ticket
        .is_multiple_of(state.cfg.settlement.batch_len_max as u64)
    {
        state.settlement.wake();
    }
}

/// Count a gift's answer: accepted, duplicate, or refused (by code).
fn tally(result: &Result<GiftOutcome>) {
    match result {
        Ok(o) if !o.duplicate => metrics::counter!("giftstream_gifts_accepted_total").increment(1),
        Ok(_) => metrics::counter!("giftstream_gifts_duplicate_total").increment(1),
        Err(e) => metrics::counter!("giftstream_gifts_refused_total", "code" => e.code.as_str())
            .increment(1),
    }
}

/// The message checks of a gift or tip to `target` (see
/// [`crate::moderation::gate`]): the target's creator and what was
/// decided; None for an unknown target (the gift is refused later).
pub async fn message_check(
    state: &AppState,
    who: &Identity,
    target: &Target,
    text: &str,
    coins: i64,
) -> Result<Option<(String, Checked)>> {
    let Some(info) = state.counters.target(target).await? else {
        return Ok(None);
    };
    let checked = state
        .message_gate()
        .check(
            &info.creator,
            &target.key(),
            &who.user,
            text,
            coins,
            who.account_created_s
                .map(|s| (s as i64).saturating_mul(1000)),
        )
        .await?;
    Ok(Some((info.creator, checked)))
}

/// In `gift.ack = "ledger"` mode, wait until the gift to `target_key`
/// (`room:ID` or `video:ID`) is committed to the ledger.
pub async fn wait_durable(state: &AppState, outcome: &GiftOutcome, target_key: &str) -> Result<()> {
    if state.cfg.gift.ack != AckMode::Ledger {
        return Ok(());
    }
    state.settlement.wake();
    let timeout = Duration::from_millis(state.cfg.gift.ack_timeout_ms);
    state
        .settlement
        .wait_durable(outcome, target_key, timeout)
        .await
}

/// Credit coins: ledger first (idempotent on the op id), then the wallet.
pub async fn credit(state: &AppState, op: CreditOp) -> Result<(CreditOutcome, i64)> {
    let outcome = state.ledger.credit(&op).await?;
    // The ledger holds the credit now: a failure from here on is not "no
    // effect" (the retry with the same id completes the wallet's credit).
    let balance = state
        .counters
        .credit(&outcome.op.user, outcome.op.coins, &outcome.op.op_id)
        .await
        .map_err(|e| match Error::from(e) {
            e if e.code == ErrorCode::Internal => e.into_outcome_unknown(),
            e => e,
        })?;
    Ok((outcome, balance))
}

/// An admin's grant: credited in the ledger once with `admin` recorded as
/// its grantor, within `admin.grant_coins_per_day_max` (`rate_limited`
/// beyond, nothing written), then in the counters engine (idempotent on the
/// op id). Answers the outcome and the wallet balance.
pub async fn grant(state: &AppState, admin: &str, op: CreditOp) -> Result<(CreditOutcome, i64)> {
    let outcome = state
        .ledger
        .grant(&op, admin, state.cfg.admin.grant_coins_per_day_max)
        .await?;
    let balance = state
        .counters
        .credit(&outcome.op.user, outcome.op.coins, &outcome.op.op_id)
        .await?;
    Ok((outcome, balance))
}

/// Open (or re-open) a live room for `creator`. Answers whether it was new.
pub async fn open_room(state: &AppState, room: &str, creator: &str) -> Result<bool> {
    let target = Target::room(room);
    let existed = state.ledger.target(&target).await?;
    state.ledger.open_target(&target, creator).await?;
    state.counters.open_target(&target, creator, 0).await?;
    let seq = state
        .counters
        .target(&target)
        .await?
        .map(|t| t.seq)
        .unwrap_or(0);
    state.hub.open_room(room, creator, seq);
    Ok(existed.is_none())
}

/// End a live room; only its creator (with a creator token) or an admin may.
pub async fn end_room(state: &AppState, who: &Identity, room: &str) -> Result<()> {
    let target = Target::room(room);
    let rec = state
        .ledger
        .target(&target)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::UnknownRoom, format!("no room `{room}`")))?;
    // The token's role bounds what it may do: a viewer token of the
    // creator's user (e.g. the one the host platform gives them to watch
    // others) must not end their live.
    let owner = who.role == Role::Creator && who.user == rec.creator;
    if !(owner || who.role == Role::Admin) {
        return Err(Error::forbidden(
            "only the room's creator (creator token) or an admin may end it",
        ));
    }
    // This live's viewers as this node saw them (the room's task here),
    // read before the end stops it.
    let viewers = state
        .hub
        .room(room)
        .map(|h| h.tally.summary(crate::protocol::now_ms()));
    state.counters.end_room(room).await?;
    state.ledger.end_room(room).await?;
    if let Some(v) = viewers {
        super::marketplace::record_live(state, room, &rec.creator, v).await;
    }
    state.relay.ended(&Topic::room(room)).await
}

/// Register a video for `creator`; a `title` (checked by the caller) is
/// set, or replaced on a re-registration by its creator.
pub async fn register_video(
    state: &AppState,
    video: &str,
    creator: &str,
    title: Option<&str>,
) -> Result<()> {
    let target = Target {
        kind: TargetKind::Video,
        id: video.to_string(),
    };
    state.ledger.open_target(&target, creator).await?;
    if let Some(title) = title {
        state.ledger.set_video_title(video, creator, title).await?;
    }
    Ok(state.counters.open_target(&target, creator, 0).await?)
}
