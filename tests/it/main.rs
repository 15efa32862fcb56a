//! The integration tests, as one test binary: each module below was its
//! own binary, and every binary links the whole server (async-stripe
//! included), so one link instead of fifteen. Tests of all modules run in
//! parallel in this one process; none may set process-wide state (env
//! vars, the working directory). Those that must live in their own binary
//! under tests/ (`tests/redis_config.rs`: `figment::Jail` changes the
//! working directory and sets env vars).

mod common;

mod assets;
mod auth;
mod auth_matrix;
mod cashout_safety;
mod combo_end;
mod counters_conformance;
mod currencies;
mod currencies_ledger;
mod follows;
mod gifting;
mod inbox;
mod ledger_conformance;
mod limits;
mod marketplace;
mod moderation_blocks;
mod moderation_filter;
mod moderation_video;
mod multinode;
mod multiprocess;
mod pages;
mod payments;
mod redis_batch;
mod redis_engine;
mod redis_load_fence;
mod redis_pubsub;
mod relay_conformance;
mod robustness;
mod settlement_faults;
mod studio;
mod test_services;
mod videos;
mod webhook_store;
mod webhooks;
