#![allow(dead_code)]
pub mod server;
pub mod services;
pub mod stripe_double;
