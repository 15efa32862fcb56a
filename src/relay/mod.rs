//! The cross-node room relay: room events published by a shared counters
//! engine reach this node's rooms.
//!
//! Owns: the Redis relay ([`redis`]): the node's sharded pub/sub
//! subscriptions for the rooms open here, gap filling from each room's
//! history stream, and the per-node viewer counts and room stats. It is
//! the hub's side of [`crate::counters::redis::RelayHost`], so the counters
//! engine never imports the hub.
//! Must not: change balances or seqs (the counters engine does), or be
//! imported by the hub or the counters engine.

pub mod redis;
