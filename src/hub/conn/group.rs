//! One socket's gifts taken together (issue 16): a gift without a message
//! and the gifts like it already read from the socket, within its budget,
//! go to the engine as one group (one script call on Redis) and are
//! answered in order.
//!
//! Owns: which frames may join a group ([`Reader`]'s `plain_gift`),
//! gathering them without waiting (`gather_gifts`, synchronous so nothing
//! of it lives in the socket's future), and answering a group in order.
//! Must not: wait for more frames, take a frame's budget twice, or let a
//! frame that is not in the group jump ahead of it (it waits in the
//! reader's `early` slot and is handled next).

use super::*;

/// What reading a socket answers: a frame, a read error, or None once it
/// is closed.
pub(super) type Read = Option<std::result::Result<Message, axum::Error>>;

impl Reader {
    /// `payload` as a gift this socket may send in a group
    /// ([`ConnOps::gift_group`]): a gift to a room or a video without a
    /// message, on an engine that takes groups, from an unscoped token.
    /// None for anything else, which [`Reader::on_frame`] handles.
    fn plain_gift(&self, payload: &[u8], enc: Encoding) -> Option<PlainGift> {
        if self.scope.is_some() || self.state.gift_group_len_max() <= 1 {
            return None;
        }
        let Ok(ClientMsg::Gift {
            topic,
            gift,
            count,
            id,
            message: None,
        }) = decode_client(payload, enc)
        else {
            return None;
        };
        let target = match topic {
            Topic::Room(room) => Target::room(room),
            Topic::Video(video) => Target::video(video),
            Topic::Inbox(_) => return None,
        };
        Some(PlainGift {
            target,
            gift,
            count,
            id,
        })
    }

    /// Handle a data frame within its budget and size: a gift without a
    /// message goes with the gifts like it that are already read (one
    /// script call on Redis), answered in order, and the first other frame
    /// read meanwhile waits in `early`; anything else is [`Reader::on_frame`].
    pub(super) async fn on_data(
        &mut self,
        payload: &[u8],
        enc: Encoding,
        stream: &mut SplitStream<WebSocket>,
        early: &mut Option<Box<Read>>,
        heard: &mut tokio::time::Instant,
    ) -> bool {
        let Some(first) = self.plain_gift(payload, enc) else {
            return self.on_frame(payload, enc).await;
        };
        let frame_len_max = self.state.hub().config().frame_len_max;
        let (group, next) = self.gather_gifts(first, stream, frame_len_max);
        if group.len() > 1 || next.is_some() {
            *heard = tokio::time::Instant::now();
        }
        *early = next.map(Box::new);
        self.gift_group(group).await
    }

    /// `first` and the gifts without messages that follow it and are
    /// already read from `stream` (never waiting for more), within the
    /// budget, up to the engine's group length. Also answers the first
    /// other frame read, if any, which the caller handles next. Synchronous
    /// on purpose: nothing of it lives in the socket's future.
    fn gather_gifts(
        &mut self,
        first: PlainGift,
        stream: &mut SplitStream<WebSocket>,
        frame_len_max: usize,
    ) -> (Vec<PlainGift>, Option<Read>) {
        let mut group = vec![first];
        let group_len_max = self.state.gift_group_len_max();
        while group.len() < group_len_max && self.budget.has_token(Instant::now()) {
            let Some(next) = futures_util::FutureExt::now_or_never(stream.next()) else {
                break;
            };
            let gift = match &next {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    let (payload, enc) = payload_of(m);
                    (payload.len() <= frame_len_max)
                        .then(|| self.plain_gift(payload, enc))
                        .flatten()
                }
                _ => None,
            };
            let Some(gift) = gift else {
                return (group, Some(next));
            };
            let taken = self.budget.take(Instant::now());
            debug_assert_eq!(taken, Verdict::Now, "the budget had a token");
            group.push(gift);
        }
        (group, None)
    }

    /// Apply and answer a group of gifts read together, in order (a group
    /// of one is a gift like any other).
    async fn gift_group(&mut self, mut group: Vec<PlainGift>) -> bool {
        if group.len() == 1 {
            let Some(g) = group.pop() else {
                return true;
            };
            return self.gift(g.target, g.gift, g.count, g.id, None).await;
        }
        metrics::histogram!("giftstream_gift_group_len").record(group.len() as f64);
        let asked: Vec<(String, String)> = group
            .iter()
            .map(|g| (g.target.key(), g.id.clone()))
            .collect();
        let answers = self.state.gift_group(&self.who, group).await;
        debug_assert_eq!(answers.len(), asked.len());
        for (answer, (target_key, id)) in answers.into_iter().zip(asked) {
            if !self.answer_gift(answer, target_key, id).await {
                return false;
            }
        }
        true
    }
}
