//! Which topic a socket message names, and its task on this node: a
//! room (live, asked of the counters engine on a relayed hub), a video
//! (always live) or the token's own inbox (an unscoped creator token's).
//!
//! Owns: resolving a topic to its running task ([`Reader`]'s
//! `room_handle`), the inbox rule (`own_inbox`) and the block rule (a
//! user the topic's creator blocked may not subscribe: `refuse_blocked`
//! before, `recheck_blocked` after, both asked of the counters engine's
//! block cache, so a block racing a join still ends it).
//! Must not: subscribe (the reader does, once the task answers).

use super::*;

impl Reader {
    /// An inbox message names the token's own inbox: only an unscoped
    /// `creator` token has one (`forbidden` otherwise).
    pub(super) fn own_inbox(&self, msg: &mut ClientMsg) -> Result<()> {
        let (ClientMsg::Join { topic, .. }
        | ClientMsg::Resume { topic, .. }
        | ClientMsg::Leave { topic }) = msg
        else {
            return Ok(());
        };
        let Topic::Inbox(creator) = topic else {
            return Ok(());
        };
        if let Some(scope) = &self.scope {
            return Err(scoped_refusal(scope));
        }
        if self.who.role != Role::Creator {
            return Err(Error::forbidden("only a creator token has an inbox"));
        }
        creator.clone_from(&self.who.user);
        Ok(())
    }

    /// `forbidden` when the creator of the topic (its task's `handle`)
    /// blocked this socket's user.
    pub(super) async fn refuse_blocked(&self, topic: &Topic, handle: &RoomHandle) -> Result<()> {
        let creator = &*handle.creator;
        if creator.is_empty() || creator == self.who.user {
            return Ok(());
        }
        if self
            .state
            .counters()
            .is_blocked(creator, &self.who.user)
            .await?
        {
            return Err(Error::forbidden(format!(
                "the creator blocked you: {} `{}`",
                topic.field(),
                topic.id()
            )));
        }
        Ok(())
    }

    /// After a subscribe: a block that landed between `refuse_blocked` and
    /// the subscription (its drop may have reached the room first) ends it
    /// now, as the drop does ([`RoomCmd::Drop`]).
    pub(super) async fn recheck_blocked(&self, handle: &RoomHandle) -> Result<()> {
        let creator = &*handle.creator;
        if creator.is_empty() || creator == self.who.user {
            return Ok(());
        }
        if self
            .state
            .counters()
            .is_blocked(creator, &self.who.user)
            .await?
        {
            let user = self.who.user.clone();
            let _ = handle.tx.send(RoomCmd::Drop { user }).await;
        }
        Ok(())
    }

    /// The room's handle on this node; a room live elsewhere (the counters
    /// engine is shared by every node) is started here too, and receives
    /// its events through the engine.
    pub(super) async fn room_handle(&self, topic: &Topic) -> Result<RoomHandle> {
        let room = match topic {
            Topic::Room(room) => room.as_str(),
            Topic::Video(video) => return self.video_handle(topic, video).await,
            Topic::Inbox(creator) => return self.inbox_handle(topic, creator).await,
        };
        // In process the local room is the truth: it ends with the live.
        // A relayed hub (Redis) ends it when the engine's `room_ended`
        // reaches this node, a moment after the live ended; a join in
        // between must not be answered `joined`, so the engine is asked.
        if let Some(h) = self.state.hub().authoritative_room(room) {
            return Ok(h);
        }
        let local = self.state.hub().room(room);
        match self.state.counters().target(&Target::room(room)).await? {
            Some(t) if t.live && local.is_some() => local.ok_or_else(|| {
                Error::new(ErrorCode::RoomNotLive, format!("room `{room}` is not live"))
            }),
            Some(t) if t.live => {
                self.state.hub().open_room(room, &t.creator, t.seq);
                self.state.hub().room(room).ok_or_else(|| {
                    Error::new(ErrorCode::RoomNotLive, format!("room `{room}` is not live"))
                })
            }
            Some(_) => Err(Error::new(
                ErrorCode::RoomNotLive,
                format!("room `{room}` is not live"),
            )),
            None => Err(Error::new(
                ErrorCode::UnknownRoom,
                format!("no room `{room}`"),
            )),
        }
    }

    /// A video's task on this node, started if needed (a video is always
    /// live; its events reach this node through the engine).
    async fn video_handle(&self, topic: &Topic, video: &str) -> Result<RoomHandle> {
        let key = topic.hub_key();
        if let Some(h) = self.state.hub().room(&key) {
            return Ok(h);
        }
        match self.state.counters().target(&Target::video(video)).await? {
            Some(t) => {
                self.state.hub().open_topic(topic, &t.creator, t.seq);
                self.state.hub().room(&key).ok_or_else(|| {
                    Error::new(ErrorCode::Internal, format!("video `{video}` did not open"))
                })
            }
            None => Err(Error::new(
                ErrorCode::UnknownVideo,
                format!("no video `{video}`"),
            )),
        }
    }

    /// The creator's inbox task on this node, started if needed (at the
    /// relay's inbox seq, or in process at the hub's).
    async fn inbox_handle(&self, topic: &Topic, creator: &str) -> Result<RoomHandle> {
        let hub = self.state.hub();
        let key = topic.hub_key();
        if let Some(h) = hub.room(&key) {
            return Ok(h);
        }
        match self.state.inbox_seq(creator).await? {
            None => Ok(hub.open_inbox(creator)),
            Some(seq) => {
                hub.open_topic(topic, creator, seq);
                hub.room(&key).ok_or_else(|| {
                    Error::new(
                        ErrorCode::Internal,
                        format!("inbox `{creator}` did not open"),
                    )
                })
            }
        }
    }
}
