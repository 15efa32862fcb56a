//! A connection's kill switch ([`ConnCtl`]), shared by its socket tasks
//! and the rooms it joined, so a room can close a socket that fell behind
//! without knowing the socket's code.
//!
//! Owns: [`ConnCtl`] and the shutdown close code. Must not: touch frames
//! or rooms.

use std::sync::OnceLock;

use tokio_util::sync::CancellationToken;

/// Close code on server shutdown, and for a socket silent for
/// `hub.idle_timeout_ms` (no pong, no frame).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// A connection's kill switch, shared with the rooms it joined. Its token
/// is a child of the server's shutdown token, so the socket's tasks watch
/// one token for both (and pin its future once, not once per frame).
#[derive(Default)]
pub struct ConnCtl {
    pub(super) kick: CancellationToken,
    close: OnceLock<(u16, &'static str)>,
}

impl ConnCtl {
    /// A kill switch that also fires when `shutdown` does.
    pub fn child_of(shutdown: &CancellationToken) -> ConnCtl {
        ConnCtl {
            kick: shutdown.child_token(),
            close: OnceLock::new(),
        }
    }

    /// Close the socket with `code` and `reason` (first kick wins).
    pub fn kick(&self, code: u16, reason: &'static str) {
        let _ = self.close.set((code, reason));
        self.kick.cancel();
    }

    /// The close frame: the kick's, or 1001 when the server shut down.
    pub(super) fn close_frame(&self) -> (u16, &'static str) {
        self.close
            .get()
            .copied()
            .unwrap_or((CLOSE_GOING_AWAY, "server shutting down"))
    }
}
