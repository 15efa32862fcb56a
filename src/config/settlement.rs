//! `[settlement]`: the worker that moves pending credits into the ledger.
//!
//! Owns: [`SettlementConfig`] and its defaults.
//! Must not: run the worker (that is `crate::settlement`).

use serde::{Deserialize, Serialize};

/// `[settlement]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SettlementConfig {
    /// Flush at least this often, ms.
    pub flush_interval_ms: u64,
    /// Gifts per batch at most; reaching it triggers a flush early. A
    /// batch's postings cost per distinct account, not per gift, so larger
    /// batches settle a busy queue with less CPU: 4,000 rather than 2,000
    /// took 18.2–18.5 instead of 19.1–20.6 µs of server CPU per gift at 256
    /// senders (docs/BENCHMARKS.md, issue #16 item 5).
    pub batch_len_max: usize,
    /// Attempts to commit one batch before the worker gives up (fail-stop).
    pub retry_len_max: u32,
    /// Longest pause between attempts, ms (exponential from 10 ms).
    pub retry_backoff_ms_max: u64,
    /// Redis: a pending gift another worker took but has not settled for
    /// this long is claimed by this worker (`XAUTOCLAIM`), ms.
    pub claim_idle_ms: u64,
}

impl Default for SettlementConfig {
    fn default() -> Self {
        SettlementConfig {
            flush_interval_ms: 100,
            batch_len_max: 4000,
            retry_len_max: 60,
            retry_backoff_ms_max: 1000,
            claim_idle_ms: 30_000,
        }
    }
}
