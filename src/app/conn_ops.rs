//! The connection's handle on the application ([`ConnOps`] for
//! [`AppState`]): what a socket reader may do, and nothing more.
//!
//! Owns: the mapping from [`ConnOps`] to the shared ops ([`super::ops`]).
//! Must not: hold logic of its own (the ops do).

use tokio_util::sync::CancellationToken;

use super::{ops, AppState};
use crate::auth::{Auth, Identity};
use crate::config::AckMode;
use crate::counters::Counters;
use crate::error::Result;
use crate::hub::conn::ConnOps;
use crate::hub::Hub;
use crate::model::{GiftOutcome, PlainGift, Target};
use crate::protocol::SeqEvent;
use crate::relay::Topic;

#[async_trait::async_trait]
impl ConnOps for AppState {
    fn hub(&self) -> &Hub {
        &self.hub
    }

    fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    fn auth(&self) -> &Auth {
        &self.auth
    }

    fn counters(&self) -> &dyn Counters {
        self.counters.as_ref()
    }

    async fn history(&self, room: &str, since: u64) -> Result<Option<Vec<SeqEvent>>> {
        // `room` is a hub key: a room id, or `video:ID` for a video.
        self.relay.history(&Topic::from_hub_key(room), since).await
    }

    async fn inbox_seq(&self, creator: &str) -> Result<Option<u64>> {
        self.relay.inbox_seq(creator).await
    }

    fn ack_mode(&self) -> AckMode {
        self.cfg.gift.ack
    }

    async fn gift(
        &self,
        who: &Identity,
        target: Target,
        gift_id: &str,
        count: u32,
        client_id: &str,
        message: Option<String>,
    ) -> Result<GiftOutcome> {
        ops::gift_counted(self, who, target, gift_id, count, client_id, message).await
    }

    async fn wait_durable(&self, outcome: &GiftOutcome, target_key: &str) -> Result<()> {
        ops::wait_durable(self, outcome, target_key).await
    }

    fn gift_group_len_max(&self) -> usize {
        self.counters.gift_group_len_max()
    }

    async fn gift_group(&self, who: &Identity, gifts: Vec<PlainGift>) -> Vec<Result<GiftOutcome>> {
        ops::gift_group(self, who, gifts).await
    }
}
