#![allow(dead_code)]
pub mod hooked_ledger;
pub mod server;
pub mod services;
pub mod stripe_double;
