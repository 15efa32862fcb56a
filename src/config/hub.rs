//! `[hub]`: the WebSocket hub (sockets, rooms, fan-out) and the ack mode.
//!
//! Owns: [`HubConfig`], [`AckMode`] and their defaults.
//! Must not: hold any runtime state.

use serde::{Deserialize, Serialize};

/// `[hub]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// Frames queued for one viewer at most; beyond, events are skipped.
    pub viewer_queue_len_max: usize,
    /// Frames queued for a room's own creator at most; beyond, the creator
    /// is disconnected (1013) and resumes from its last seq: never skipped.
    pub creator_queue_len_max: usize,
    /// Events skipped for one viewer before it is disconnected (1008).
    pub viewer_skipped_max: u64,
    /// Largest client frame answered normally; larger gets `bad_request`.
    pub frame_len_max: usize,
    /// Largest client frame read at all; larger closes the socket (1009).
    pub frame_close_len_max: usize,
    /// Frames the writer feeds before one flush.
    pub write_batch_len_max: usize,
    /// WebSocket read buffer, bytes. Allocated up front per socket, so it
    /// is kept small; it grows on demand for a larger frame.
    pub read_buffer_len: usize,
    /// Frames accumulate up to this many bytes before they are written, so
    /// the writer's batch (see `write_batch_len_max`) costs one syscall.
    /// Memory follows the largest batch actually written, not this number.
    pub write_buffer_len: usize,
    /// Hard cap on the WebSocket write buffer, bytes.
    pub write_buffer_len_max: usize,
    /// Rooms one socket may join.
    pub rooms_per_socket_max: usize,
    /// Open WebSocket connections at most.
    pub connections_max: usize,
    /// Events a room task may have waiting at most.
    pub room_queue_len_max: usize,
    /// Events kept per room for `resume`.
    pub history_len_max: usize,
    /// Oldest event kept for `resume`, ms.
    pub history_age_ms_max: u64,
    /// Time to deliver a close frame before dropping the socket, ms.
    pub close_timeout_ms: u64,
    /// Graceful shutdown waits this long at most for every socket's task
    /// to end (each has `hub.close_timeout_ms` for its close frame) and for
    /// the cash-out recovery round in progress; then it settles anyway, ms.
    /// At least `hub.close_timeout_ms`.
    pub shutdown_ms_max: u64,
    /// Kernel send buffer per socket, bytes (0: the OS default, which
    /// autotunes up to megabytes; a small cap bounds memory per viewer and
    /// makes a stalled viewer show up in its queue sooner).
    pub socket_send_buffer_len: usize,
    /// `room_stats` is sent at most this often, and only when changed, ms.
    pub stats_interval_ms: u64,
    /// Due `room_stats` wait at most this long for the room's next event
    /// to ride with (one write per viewer for both); then they go out
    /// alone, ms. Clamped to `hub.stats_interval_ms`; 0 sends them when due.
    pub stats_ride_ms: u64,
    /// Coalescing viewers get at most one update per combo per step, ms.
    pub coalesce_interval_ms: u64,
    /// A viewer whose queue overflowed is told `skipped` before its next
    /// event; when no event follows (the live went quiet), the room tries
    /// again this often until the note fits, ms.
    pub skipped_note_retry_ms: u64,
    /// Gifters tracked per live for the top list (smallest evicted first).
    pub room_gifters_max: usize,
    /// Redis engine: a room with no viewer on this node for this long stops
    /// (its sharded subscription is dropped), ms.
    pub room_linger_ms: u64,
    /// Client messages per second one socket is read at most (token bucket
    /// with a one-second burst). A socket over it is slowed, not refused:
    /// it is not read until its budget refills, so its client feels TCP
    /// back-pressure. See `hub.socket_throttled_ms_max` for the refusal.
    pub socket_msgs_per_s_max: u32,
    /// Hard bound on a socket over its budget: one that has been slowed
    /// without a break (every message it sent had to wait for the budget)
    /// for longer than this gets `rate_limited` for each further message
    /// over the budget (still read at the budget's pace, not handled) until
    /// one arrives within budget again, ms.
    pub socket_throttled_ms_max: u64,
    /// The `/v1/ws` upgrade request must be answered (101 or an error)
    /// within this long once its head is read, ms; the head itself is
    /// bounded by `http.header_read_timeout_ms`, the socket after the
    /// upgrade by `hub.idle_timeout_ms`.
    pub handshake_timeout_ms: u64,
    /// The server pings each socket this often, ms.
    pub ping_interval_ms: u64,
    /// A socket from which nothing (no pong, no frame) arrived for this
    /// long is closed with 1001, ms. Above `hub.ping_interval_ms`.
    pub idle_timeout_ms: u64,
    /// Open sockets per client IP at most (see `http.client_ip_header`);
    /// beyond, the upgrade is answered 429 `rate_limited`.
    pub connections_per_ip_max: usize,
    /// Open sockets per user at most; beyond, 429 `rate_limited`.
    pub connections_per_user_max: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            viewer_queue_len_max: 256,
            creator_queue_len_max: 4096,
            viewer_skipped_max: 10_000,
            frame_len_max: 4096,
            frame_close_len_max: 65_536,
            write_batch_len_max: 64,
            read_buffer_len: 256,
            write_buffer_len: 16 * 1024,
            write_buffer_len_max: 256 * 1024,
            rooms_per_socket_max: 8,
            connections_max: 100_000,
            room_queue_len_max: 8192,
            history_len_max: 2048,
            history_age_ms_max: 10 * 60 * 1000,
            close_timeout_ms: 1000,
            shutdown_ms_max: 5000,
            socket_send_buffer_len: 0,
            stats_interval_ms: 1000,
            stats_ride_ms: 250,
            coalesce_interval_ms: 500,
            skipped_note_retry_ms: 100,
            room_gifters_max: 100_000,
            room_linger_ms: 5000,
            socket_msgs_per_s_max: 1000,
            socket_throttled_ms_max: 60_000,
            handshake_timeout_ms: 10_000,
            ping_interval_ms: 30_000,
            idle_timeout_ms: 75_000,
            connections_per_ip_max: 1000,
            connections_per_user_max: 16,
        }
    }
}

/// When a gift is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckMode {
    /// As soon as the counters engine accepted it; a crash before the next
    /// flush loses the gift whole (debit and credit together).
    Counter,
    /// After the batch holding it is committed to the ledger.
    Ledger,
}
