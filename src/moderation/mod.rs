//! What reaches a creator's stream (issue 17, the message side): word
//! filters on normalised text, the review rules, the per-node rules cache
//! and the checks every gift or tip message goes through.
//!
//! Owns: the match key ([`normalise`]), word matching and the built-in
//! lists ([`filter`]), a creator's compiled rules and their verdict on a
//! message ([`rules`]), the per-node cache of them ([`cache`]) and the
//! message checks of the gift and tip paths ([`gate`]: the per-viewer
//! rate limit, then the verdict; a kept-back message recorded in the
//! ledger). See `docs/MODERATION.md`.
//! Must not: move money or publish events (the counters engine and the
//! relay do), or hold SQL (the ledger does).

pub mod cache;
pub mod filter;
pub mod gate;
pub mod normalise;
pub mod rules;

pub use cache::RulesCache;
pub use rules::{MessageRules, Verdict};
