//! A connection's kill switch ([`ConnCtl`]), shared by its socket tasks
//! and the rooms it joined, so a room can close a socket that fell behind
//! without knowing the socket's code.
//!
//! Owns: [`ConnCtl`] and the shutdown close code. Must not: touch frames
//! or rooms (a kick only stops the socket's outbox, which wakes its idle
//! writer).

use std::sync::OnceLock;

use tokio_util::sync::CancellationToken;

use super::outbox::Stop;

/// Close code on server shutdown, and for a socket silent for
/// `hub.idle_timeout_ms` (no pong, no frame).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// A connection's kill switch, shared with the rooms it joined. Its token
/// is a child of the server's shutdown token, so the socket's reader
/// watches one token for both (and pins its future once, not once per
/// frame).
///
/// The writer does not wait on the token while idle: a kick also stops
/// its outbox, so an idle writer waits on its queue alone (one wake-up
/// source per delivery; polling the token was 2.3-2.7 % of the server's
/// samples in fan-out). On shutdown the reader sees the token and kicks.
#[derive(Default)]
pub struct ConnCtl {
    pub(super) kick: CancellationToken,
    close: OnceLock<(u16, &'static str)>,
    /// The socket's outbox, stopped by a kick; None for a socket without a
    /// writer (tests).
    writer: Option<Stop>,
}

impl ConnCtl {
    /// A kill switch that also fires when `shutdown` does, and stops
    /// `writer` when kicked.
    pub fn child_of(shutdown: &CancellationToken, writer: Stop) -> ConnCtl {
        ConnCtl {
            kick: shutdown.child_token(),
            close: OnceLock::new(),
            writer: Some(writer),
        }
    }

    /// Close the socket with `code` and `reason` (first kick wins).
    pub fn kick(&self, code: u16, reason: &'static str) {
        let _ = self.close.set((code, reason));
        self.kick.cancel();
        if let Some(w) = &self.writer {
            w.stop();
        }
    }

    /// The close frame: the kick's, or 1001 when the server shut down.
    pub(super) fn close_frame(&self) -> (u16, &'static str) {
        self.close
            .get()
            .copied()
            .unwrap_or((CLOSE_GOING_AWAY, "server shutting down"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::outbox::outbox;
    use axum::extract::ws::Message;

    #[tokio::test]
    async fn a_kick_ends_the_writers_queue_while_producers_still_hold_it() {
        let shutdown = CancellationToken::new();
        let (tx, mut rx) = outbox(4);
        let ctl = ConnCtl::child_of(&shutdown, rx.stopper());
        tx.try_send(Message::Text("queued before the kick".into()))
            .unwrap();
        ctl.kick(4008, "too slow");
        // `tx` (a room's or an ack task's copy) is still alive: only the
        // kick can end the idle writer's wait, and it drops what is queued.
        assert!(rx.recv().await.is_none(), "a kicked writer takes no frame");
        assert_eq!(ctl.close_frame(), (4008, "too slow"));
        assert!(!shutdown.is_cancelled(), "a kick stays on its connection");
    }

    #[test]
    fn shutdown_alone_closes_with_going_away() {
        let shutdown = CancellationToken::new();
        let (_tx, rx) = outbox(1);
        let ctl = ConnCtl::child_of(&shutdown, rx.stopper());
        shutdown.cancel();
        assert!(ctl.kick.is_cancelled());
        assert_eq!(
            ctl.close_frame(),
            (CLOSE_GOING_AWAY, "server shutting down")
        );
    }
}
