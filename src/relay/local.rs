//! The in-process relay (one node): the hub is every subscriber there is.
//!
//! Owns: [`LocalRelay`], which hands messages straight to this node's hub.
//! Must not: keep history (the room task's ring serves `resume`) or know
//! of other nodes.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Relay, Topic};
use crate::counters::Counters;
use crate::error::Result;
use crate::hub::Hub;
use crate::model::Target;
use crate::protocol::{SeqEvent, ServerMsg};

/// The relay of a single node (the in-process counters engine).
pub struct LocalRelay {
    hub: Arc<Hub>,
}

impl LocalRelay {
    /// A relay delivering to `hub`.
    pub fn new(hub: Arc<Hub>) -> LocalRelay {
        LocalRelay { hub }
    }
}

#[async_trait]
impl Relay for LocalRelay {
    async fn publish(&self, topic: &Topic, msg: &ServerMsg) -> Result<()> {
        self.hub.broadcast(&topic.hub_key(), msg.clone()).await;
        Ok(())
    }

    async fn publish_inbox(&self, creator: &str, msg: &ServerMsg) -> Result<()> {
        self.hub.publish_inbox(creator, msg.clone()).await;
        Ok(())
    }

    async fn inbox_seq(&self, _creator: &str) -> Result<Option<u64>> {
        Ok(None)
    }

    async fn history(&self, _topic: &Topic, _since: u64) -> Result<Option<Vec<SeqEvent>>> {
        Ok(None)
    }

    async fn other_nodes_viewers(&self, _topic: &Topic) -> Result<u64> {
        Ok(0)
    }

    async fn ended(&self, topic: &Topic) -> Result<()> {
        self.hub.end_room(&topic.hub_key()).await;
        Ok(())
    }

    async fn drop_blocked(&self, creator: &str, user: &str) -> Result<()> {
        self.hub.drop_blocked(creator, user).await;
        Ok(())
    }

    async fn restore(&self, live: Vec<(String, String)>, counters: &dyn Counters) -> Result<()> {
        for (room, creator) in live {
            let seq = counters
                .target(&Target::room(room.clone()))
                .await?
                .map(|t| t.seq)
                .unwrap_or(0);
            self.hub.open_room(&room, &creator, seq);
        }
        Ok(())
    }
}
