//! giftstream: a real-time live-stream gifting engine.
//!
//! Viewers buy coins and send animated gifts to a creator during a live;
//! every viewer in the room sees the animation at once; the creator earns
//! diamonds that settle into a durable double-entry ledger.
//!
//! # Layout
//!
//! One folder per part, each with a module doc saying what it owns:
//!
//! - [`config`]: TOML + `GIFTSTREAM_*` env, validated at start.
//! - [`protocol`]: wire contract v1 (JSON and MessagePack), id rules.
//! - [`error`]: the one error type and its contract codes.
//! - [`auth`]: HS256 JWTs, roles.
//! - [`catalog`]: gifts, prices in coins, shares in diamonds.
//! - [`model`]: the shared types every layer passes (targets, gift
//!   requests and acks, pending gifts, batches, snapshots) and the narrow
//!   handles the engines use ([`model::EventSink`], [`model::GiftRecords`]).
//! - [`counters`]: the counters engine (wallets, idempotency, room seq,
//!   pending credits) behind the [`counters::Counters`] trait: in memory,
//!   or in Redis (`counters/redis/`, Lua scripts in `counters/lua/`).
//! - [`relay`]: room, video and inbox messages across nodes behind the
//!   [`relay::Relay`] trait (keyed by [`relay::Topic`]): local (one node) or
//!   Redis (pub/sub to this node's topics, history gap filling, per-node
//!   viewer counts).
//! - [`ledger`]: the durable ledger behind the [`ledger::Ledger`] trait.
//! - [`settlement`]: drains pending counters into the ledger, exactly once.
//! - [`webhooks`]: signed webhooks out: registration checks, the delivery
//!   worker (per endpoint, in outbox order, at least once) and the pump
//!   that turns streak ends into `combo_end` events.
//! - [`hub`]: rooms, fan-out, and the per-socket reader and writer tasks.
//! - [`http`]: the axum router: HTTP routes and the WebSocket upgrade.
//! - [`moderation`]: what reaches a creator's stream: word filters
//!   (normalised matching), review rules and the per-node rules cache.
//! - [`payments`]: Stripe: coin purchases, signed webhooks, creator
//!   onboarding, tips and cash-outs.
//! - [`app`]: the application state and the ops shared by WebSocket and
//!   HTTP.
//! - [`server`]: wiring, start-up restore, serving, graceful shutdown.
//! - [`client`]: a small protocol-v1 client behind `giftstream watch` and
//!   `giftstream send`.
//!
//! A gift's way: socket reader → [`app::ops::gift_counted`] → the counters engine's
//! atomic step (which publishes into the room task in seq order) → the room
//! task encodes once per wire format and queues the same bytes for every
//! subscriber → each writer task flushes a batch. The settlement worker
//! later moves the pending gift into the ledger in one transaction per
//! batch. See `docs/ARCHITECTURE.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod catalog;
pub mod client;
pub mod config;
pub mod counters;
pub mod error;
pub mod http;
pub mod hub;
pub mod ledger;
pub mod model;
pub mod moderation;
pub mod payments;
pub mod protocol;
pub mod relay;
pub mod server;
pub mod settlement;
pub mod webhooks;

#[cfg(test)]
mod module_graph;
