#![allow(dead_code)]
pub mod hooked_ledger;
pub mod server;
pub mod services;
pub use giftstream_stripe_double as stripe_double;
