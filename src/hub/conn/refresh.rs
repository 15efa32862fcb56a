//! A socket's `refresh`: a new token for the same user replaces the
//! socket's own, keeping or narrowing its role and scope; a narrowed
//! socket leaves what the new token no longer covers.
//!
//! Owns: [`Reader::refresh`] and its checks.
//! Must not: widen a socket's role or scope, or close the socket (a bad
//! refresh is answered with an error and the old token stays).

use super::*;

impl Reader {
    /// `refresh`: a valid token for the same `sub` with the same role (or
    /// viewer) and the same scope (or a scope where there was none)
    /// replaces the socket's; anything else is answered with an error and
    /// the old token stays.
    pub(super) async fn refresh(&mut self, token: &str) -> bool {
        let checked = self.state.auth().decode(token).and_then(|t| {
            if t.identity.user != self.who.user {
                return Err(Error::forbidden("refresh must keep the token's sub"));
            }
            if t.identity.role != self.who.role && t.identity.role != Role::Viewer {
                return Err(Error::forbidden(
                    "refresh may keep or narrow the role (to viewer), never widen it",
                ));
            }
            let scope_ok = match (&self.scope, &t.scope) {
                (None, _) => true,
                (Some(old), Some(new)) => old == new,
                (Some(_), None) => false,
            };
            if !scope_ok {
                return Err(Error::forbidden(
                    "refresh may keep or narrow the scope, never widen it",
                ));
            }
            Ok(t)
        });
        let t = match checked {
            Ok(t) => t,
            Err(e) => return self.reply(error_frame(&e, None)).await,
        };
        if t.scope.is_some() || t.identity.role != Role::Creator {
            // Narrowed: leave the rooms the new scope does not cover (and
            // the inbox, which only an unscoped creator token has).
            let mut i = 0;
            while i < self.rooms.len() {
                let key = &self.rooms[i].0;
                let kept = match &t.scope {
                    _ if key.starts_with("inbox:") => false,
                    Some(scope) => scope.allows_room(key),
                    None => true,
                };
                if kept {
                    i += 1;
                    continue;
                }
                let (_, h) = self.rooms.swap_remove(i);
                let _ =
                    h.tx.send(RoomCmd::Leave {
                        conn_id: self.conn_id,
                    })
                    .await;
            }
        }
        self.who = t.identity;
        self.scope = t.scope;
        self.exp = t.exp;
        self.reply(ServerMsg::Refreshed { exp: t.exp }).await
    }
}
