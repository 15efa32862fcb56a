//! A ledger that passes every call through to a real one, except
//! `commit_batch`, which goes through a test's [`CommitHook`]: the
//! settlement fault tests change that one call and nothing else.

use giftstream::ledger::message_rules::{
    Decided, KeptMessage, MessagesCursor, ModeratedMessage, ModerationSettings, MutedWordRow,
};
use std::ops::Deref;
use std::sync::Arc;

use async_trait::async_trait;
use giftstream::error::Result;
use giftstream::ledger::follows::{BulkOutcome, CreatorFacts, FollowCursor, FollowEdge};
use giftstream::ledger::studio::StudioCursor;
use giftstream::ledger::{
    CashoutEnd, CashoutRecord, CreditOp, CreditOutcome, DisputeOp, DisputeRecord, EarlyReversal,
    Ledger, LedgerEarnings, PayoutAccount, PayoutFunds, PurchaseOp, PurchaseRecord, RefundOp,
    StripeEventRef, TargetRecord, TipRecord, TipRecordFull, TipReversalOp, Totals,
};
use giftstream::model::{Batch, PayoutLimits, Snapshot, Target};

/// What a test does in place of `commit_batch` (it may call `inner`).
#[async_trait]
pub trait CommitHook: Send + Sync + 'static {
    /// Commit `batch`, fail, or both, as the test needs.
    async fn commit_batch(&self, inner: &dyn Ledger, batch: &Batch) -> Result<bool>;
}

/// `inner` with `hook` in front of its batch commits. Derefs to the hook,
/// so a test reads and sets its fault state through the ledger handle.
pub struct Hooked<H> {
    /// The real ledger.
    pub inner: Arc<dyn Ledger>,
    /// The test's fault state and behaviour.
    pub hook: H,
}

impl<H: CommitHook> Hooked<H> {
    /// `inner` behind `hook`.
    pub fn new(inner: Arc<dyn Ledger>, hook: H) -> Arc<Hooked<H>> {
        Arc::new(Hooked { inner, hook })
    }
}

impl<H> Deref for Hooked<H> {
    type Target = H;
    fn deref(&self) -> &H {
        &self.hook
    }
}

#[async_trait]
impl<H: CommitHook> giftstream::ledger::videos::VideoLedger for Hooked<H> {
    async fn set_video_title(&self, video: &str, creator: &str, title: &str) -> Result<bool> {
        self.inner.set_video_title(video, creator, title).await
    }
    async fn video_page(
        &self,
        video: &str,
    ) -> Result<Option<giftstream::ledger::videos::VideoPage>> {
        self.inner.video_page(video).await
    }
    async fn creator_videos(
        &self,
        creator: &str,
        len_max: i64,
        after: Option<(i64, String)>,
    ) -> Result<Vec<giftstream::ledger::videos::VideoEntry>> {
        self.inner.creator_videos(creator, len_max, after).await
    }
}

#[async_trait]
impl<H: CommitHook> giftstream::ledger::follows::FollowLedger for Hooked<H> {
    async fn follow(&self, follower: &str, creator: &str, now_ms: i64) -> Result<bool> {
        self.inner.follow(follower, creator, now_ms).await
    }
    async fn unfollow(&self, follower: &str, creator: &str) -> Result<bool> {
        self.inner.unfollow(follower, creator).await
    }
    async fn import_follows(&self, edges: &[(String, String)], now_ms: i64) -> Result<BulkOutcome> {
        self.inner.import_follows(edges, now_ms).await
    }
    async fn delete_follows(&self, edges: &[(String, String)]) -> Result<BulkOutcome> {
        self.inner.delete_follows(edges).await
    }
    async fn followers_page(
        &self,
        creator: &str,
        len_max: i64,
        after: Option<&FollowCursor>,
    ) -> Result<Vec<FollowEdge>> {
        self.inner.followers_page(creator, len_max, after).await
    }
    async fn following_page(
        &self,
        user: &str,
        len_max: i64,
        after: Option<&FollowCursor>,
    ) -> Result<Vec<FollowEdge>> {
        self.inner.following_page(user, len_max, after).await
    }
    async fn follower_count(&self, creator: &str) -> Result<i64> {
        self.inner.follower_count(creator).await
    }
    async fn follower_counts(&self) -> Result<Vec<(String, i64)>> {
        giftstream::ledger::follows::FollowLedger::follower_counts(self.inner.as_ref()).await
    }
    async fn creator_facts(&self, creator: &str) -> Result<CreatorFacts> {
        self.inner.creator_facts(creator).await
    }
}

#[async_trait]
impl<H: CommitHook> giftstream::ledger::studio::StudioLedger for Hooked<H> {
    async fn creator_gifts(
        &self,
        creator: &str,
        len_max: i64,
        after: Option<&StudioCursor>,
    ) -> Result<Vec<giftstream::ledger::studio::CreatorGift>> {
        self.inner.creator_gifts(creator, len_max, after).await
    }
    async fn creator_tips(
        &self,
        creator: &str,
        len_max: i64,
        after: Option<&StudioCursor>,
    ) -> Result<Vec<giftstream::ledger::studio::CreatorTip>> {
        self.inner.creator_tips(creator, len_max, after).await
    }
    async fn creator_cashouts(
        &self,
        creator: &str,
        len_max: i64,
        after: Option<&StudioCursor>,
    ) -> Result<Vec<giftstream::ledger::studio::CreatorCashout>> {
        self.inner.creator_cashouts(creator, len_max, after).await
    }
    async fn creator_daily(
        &self,
        creator: &str,
        since_ms: i64,
    ) -> Result<Vec<giftstream::ledger::studio::DailyEarnings>> {
        self.inner.creator_daily(creator, since_ms).await
    }
    async fn creator_supporters(
        &self,
        creator: &str,
        len_max: i64,
    ) -> Result<Vec<giftstream::ledger::studio::Supporter>> {
        self.inner.creator_supporters(creator, len_max).await
    }
}

#[async_trait]
impl<H: CommitHook> giftstream::ledger::message_rules::MessageRulesLedger for Hooked<H> {
    async fn moderation_settings(&self, creator: &str) -> Result<Option<ModerationSettings>> {
        self.inner.moderation_settings(creator).await
    }
    async fn moderation_settings_set(
        &self,
        creator: &str,
        actor: &str,
        settings: &ModerationSettings,
    ) -> Result<()> {
        self.inner
            .moderation_settings_set(creator, actor, settings)
            .await
    }
    async fn muted_words(&self, creator: &str) -> Result<Vec<MutedWordRow>> {
        self.inner.muted_words(creator).await
    }
    async fn muted_words_set(
        &self,
        creator: &str,
        actor: &str,
        words: &[MutedWordRow],
    ) -> Result<()> {
        self.inner.muted_words_set(creator, actor, words).await
    }
    async fn message_kept(&self, message: &KeptMessage) -> Result<()> {
        self.inner.message_kept(message).await
    }
    async fn kept_message_of(&self, reference: &str) -> Result<Option<ModeratedMessage>> {
        self.inner.kept_message_of(reference).await
    }
    async fn kept_messages(
        &self,
        creator: &str,
        state: Option<&str>,
        len_max: i64,
        after: Option<&MessagesCursor>,
    ) -> Result<Vec<ModeratedMessage>> {
        self.inner
            .kept_messages(creator, state, len_max, after)
            .await
    }
    async fn message_decide(
        &self,
        creator: &str,
        id: &str,
        actor: &str,
        approve: bool,
    ) -> Result<Decided> {
        self.inner.message_decide(creator, id, actor, approve).await
    }
}

#[async_trait]
impl<H: CommitHook> giftstream::ledger::moderation::ModerationLedger for Hooked<H> {
    async fn set_block(
        &self,
        a: giftstream::ledger::moderation::UserAction<'_>,
        blocked: bool,
    ) -> Result<bool> {
        self.inner.set_block(a, blocked).await
    }
    async fn is_blocked(&self, creator: &str, user: &str) -> Result<bool> {
        self.inner.is_blocked(creator, user).await
    }
    async fn blocks(
        &self,
        creator: &str,
        len_max: i64,
        after: Option<(i64, String)>,
    ) -> Result<Vec<giftstream::ledger::moderation::Block>> {
        self.inner.blocks(creator, len_max, after).await
    }
    async fn all_blocks(&self) -> Result<Vec<(String, String)>> {
        self.inner.all_blocks().await
    }
    async fn set_moderator(
        &self,
        a: giftstream::ledger::moderation::UserAction<'_>,
        on: bool,
    ) -> Result<bool> {
        self.inner.set_moderator(a, on).await
    }
    async fn moderators(
        &self,
        creator: &str,
    ) -> Result<Vec<giftstream::ledger::moderation::Moderator>> {
        self.inner.moderators(creator).await
    }
    async fn is_moderator(&self, creator: &str, user: &str) -> Result<bool> {
        self.inner.is_moderator(creator, user).await
    }
    async fn moderating(&self, user: &str) -> Result<Vec<String>> {
        self.inner.moderating(user).await
    }
    async fn audit(
        &self,
        creator: &str,
        len_max: i64,
        before_id: Option<i64>,
    ) -> Result<Vec<giftstream::ledger::moderation::AuditEntry>> {
        self.inner.audit(creator, len_max, before_id).await
    }
}

#[async_trait]
impl<H: CommitHook> Ledger for Hooked<H> {
    async fn commit_batch(&self, batch: &Batch) -> Result<bool> {
        self.hook.commit_batch(&*self.inner, batch).await
    }
    async fn credit(&self, op: &CreditOp) -> Result<CreditOutcome> {
        self.inner.credit(op).await
    }
    async fn snapshot(&self, recent_ms: i64, seq_gap: u64) -> Result<Snapshot> {
        self.inner.snapshot(recent_ms, seq_gap).await
    }
    async fn open_target(&self, target: &Target, creator: &str) -> Result<()> {
        self.inner.open_target(target, creator).await
    }
    async fn end_room(&self, room: &str) -> Result<()> {
        self.inner.end_room(room).await
    }
    async fn target(&self, target: &Target) -> Result<Option<TargetRecord>> {
        self.inner.target(target).await
    }
    async fn has_gift(&self, target: &str, seq: u64) -> Result<bool> {
        self.inner.has_gift(target, seq).await
    }
    async fn live_rooms(&self, creator: &str) -> Result<u64> {
        self.inner.live_rooms(creator).await
    }
    async fn balance(&self, account: &str, currency: &str) -> Result<i64> {
        self.inner.balance(account, currency).await
    }
    async fn earnings(&self, creator: &str) -> Result<LedgerEarnings> {
        self.inner.earnings(creator).await
    }
    async fn totals(&self) -> Result<Totals> {
        self.inner.totals().await
    }
    async fn swap_clean_mark(&self, clean: bool) -> Result<bool> {
        self.inner.swap_clean_mark(clean).await
    }
    fn webhooks(&self) -> Arc<dyn giftstream::ledger::outbox::WebhookStore> {
        self.inner.webhooks()
    }
    async fn stripe_event_seen(&self, id: &str) -> Result<bool> {
        self.inner.stripe_event_seen(id).await
    }
    async fn record_stripe_event(&self, e: &StripeEventRef) -> Result<bool> {
        self.inner.record_stripe_event(e).await
    }
    async fn purchase_created(&self, op: &PurchaseOp) -> Result<()> {
        self.inner.purchase_created(op).await
    }
    async fn purchase(&self, op: &PurchaseOp) -> Result<bool> {
        self.inner.purchase(op).await
    }
    async fn purchase_record(&self, pi: &str) -> Result<Option<PurchaseRecord>> {
        self.inner.purchase_record(pi).await
    }
    async fn refund(&self, op: &RefundOp) -> Result<bool> {
        self.inner.refund(op).await
    }
    async fn dispute_withdrawn(&self, op: &DisputeOp) -> Result<bool> {
        self.inner.dispute_withdrawn(op).await
    }
    async fn dispute_reinstated(&self, event: &StripeEventRef, dispute_id: &str) -> Result<bool> {
        self.inner.dispute_reinstated(event, dispute_id).await
    }
    async fn dispute_record(&self, dispute_id: &str) -> Result<Option<DisputeRecord>> {
        self.inner.dispute_record(dispute_id).await
    }
    async fn payout_account(&self, creator: &str) -> Result<Option<PayoutAccount>> {
        self.inner.payout_account(creator).await
    }
    async fn put_payout_account(&self, creator: &str, acct: &str) -> Result<PayoutAccount> {
        self.inner.put_payout_account(creator, acct).await
    }
    async fn account_updated(
        &self,
        e: &StripeEventRef,
        acct: &str,
        on: bool,
        created: i64,
    ) -> Result<bool> {
        self.inner.account_updated(e, acct, on, created).await
    }
    fn set_payout_limits(&self, limits: PayoutLimits) {
        self.inner.set_payout_limits(limits)
    }
    async fn payout_funds(&self, creator: &str) -> Result<PayoutFunds> {
        self.inner.payout_funds(creator).await
    }
    async fn tip_reversed(&self, op: &TipReversalOp) -> Result<bool> {
        self.inner.tip_reversed(op).await
    }
    async fn tip_dispute_reinstated(
        &self,
        e: &StripeEventRef,
        pi: &str,
        dispute_id: &str,
        repaid: bool,
    ) -> Result<bool> {
        self.inner
            .tip_dispute_reinstated(e, pi, dispute_id, repaid)
            .await
    }
    async fn tip_dispute_amounts(&self, dispute_id: &str) -> Result<Option<(i64, i64)>> {
        self.inner.tip_dispute_amounts(dispute_id).await
    }
    async fn tip_transfer(&self, pi: &str, transfer: &str) -> Result<()> {
        self.inner.tip_transfer(pi, transfer).await
    }
    async fn tip_record(&self, pi: &str) -> Result<Option<TipRecordFull>> {
        self.inner.tip_record(pi).await
    }
    async fn park_reversal(&self, r: &EarlyReversal) -> Result<bool> {
        self.inner.park_reversal(r).await
    }
    async fn parked_reversals(&self, pi: &str) -> Result<Vec<EarlyReversal>> {
        self.inner.parked_reversals(pi).await
    }
    async fn tip_created(&self, tip: &TipRecord) -> Result<()> {
        self.inner.tip_created(tip).await
    }
    async fn tip_succeeded(&self, e: &StripeEventRef, pi: &str) -> Result<Option<TipRecord>> {
        self.inner.tip_succeeded(e, pi).await
    }
    async fn cashout_begin(&self, c: &CashoutRecord) -> Result<CashoutRecord> {
        self.inner.cashout_begin(c).await
    }
    async fn cashout_end(&self, id: &str, end: &CashoutEnd) -> Result<bool> {
        self.inner.cashout_end(id, end).await
    }
    async fn cashout(&self, id: &str) -> Result<Option<CashoutRecord>> {
        self.inner.cashout(id).await
    }
    async fn cashouts_pending(&self, len_max: usize) -> Result<Vec<CashoutRecord>> {
        self.inner.cashouts_pending(len_max).await
    }
    async fn cashout_new_attempt(&self, id: &str, n: i64, key: &str, now: i64) -> Result<bool> {
        self.inner.cashout_new_attempt(id, n, key, now).await
    }
    async fn cashout_defer(&self, id: &str, failures: i64, next_try_ms: i64) -> Result<()> {
        self.inner.cashout_defer(id, failures, next_try_ms).await
    }
    async fn grant(&self, op: &CreditOp, admin: &str, max: i64) -> Result<CreditOutcome> {
        self.inner.grant(op, admin, max).await
    }
    async fn grant_admin(&self, op_id: &str) -> Result<Option<String>> {
        self.inner.grant_admin(op_id).await
    }
    async fn lock_exclusive(&self) -> anyhow::Result<()> {
        self.inner.lock_exclusive().await
    }
    async fn unlock_exclusive(&self) {
        self.inner.unlock_exclusive().await
    }
}

mod market {
    //! The marketplace's reads and writes, passed through unhooked.
    use super::*;
    use giftstream::ledger::market_states::{ApplicationAction, CampaignAction};
    use giftstream::ledger::marketplace::*;

    #[async_trait]
    impl<H: CommitHook> MarketplaceLedger for Hooked<H> {
        async fn put_brand(&self, p: &BrandProfile) -> Result<()> {
            self.inner.put_brand(p).await
        }
        async fn brand(&self, b: &str) -> Result<Option<BrandProfile>> {
            self.inner.brand(b).await
        }
        async fn put_market_creator(&self, p: &MarketCreator) -> Result<MarketCreator> {
            self.inner.put_market_creator(p).await
        }
        async fn market_creator(&self, c: &str) -> Result<Option<MarketCreator>> {
            self.inner.market_creator(c).await
        }
        async fn join_market(&self, c: &str, now: i64) -> Result<MarketCreator> {
            self.inner.join_market(c, now).await
        }
        async fn create_campaign(&self, c: &Campaign) -> Result<()> {
            self.inner.create_campaign(c).await
        }
        async fn campaign(&self, c: &str) -> Result<Option<Campaign>> {
            self.inner.campaign(c).await
        }
        async fn edit_campaign(&self, c: &str, d: &CampaignDraft, now: i64) -> Result<Campaign> {
            self.inner.edit_campaign(c, d, now).await
        }
        async fn move_campaign(&self, c: &str, a: CampaignAction, now: i64) -> Result<Campaign> {
            self.inner.move_campaign(c, a, now).await
        }
        async fn brand_campaigns(
            &self,
            b: &str,
            n: i64,
            after: Option<&MarketCursor>,
        ) -> Result<Vec<Campaign>> {
            self.inner.brand_campaigns(b, n, after).await
        }
        async fn open_campaigns(&self, q: &OpenCampaignsQuery) -> Result<Vec<Campaign>> {
            self.inner.open_campaigns(q).await
        }
        async fn apply(
            &self,
            id: &str,
            c: &str,
            creator: &str,
            pitch: &str,
            price: i64,
            now: i64,
        ) -> Result<Application> {
            self.inner.apply(id, c, creator, pitch, price, now).await
        }
        async fn invite(&self, id: &str, c: &str, creator: &str, now: i64) -> Result<Application> {
            self.inner.invite(id, c, creator, now).await
        }
        async fn application(&self, a: &str) -> Result<Option<Application>> {
            self.inner.application(a).await
        }
        async fn move_application(
            &self,
            a: &str,
            action: ApplicationAction,
            now: i64,
        ) -> Result<ApplicationMove> {
            self.inner.move_application(a, action, now).await
        }
        async fn campaign_applications(
            &self,
            c: &str,
            n: i64,
            after: Option<&MarketCursor>,
        ) -> Result<Vec<Application>> {
            self.inner.campaign_applications(c, n, after).await
        }
        async fn creator_applications(
            &self,
            c: &str,
            n: i64,
            after: Option<&MarketCursor>,
        ) -> Result<Vec<Application>> {
            self.inner.creator_applications(c, n, after).await
        }
        async fn campaign_contracts(&self, c: &str) -> Result<Vec<Contract>> {
            self.inner.campaign_contracts(c).await
        }
        async fn record_live(&self, l: &LiveRecord) -> Result<()> {
            self.inner.record_live(l).await
        }
        async fn live_stats(&self, c: &str, since: i64) -> Result<LiveStats> {
            self.inner.live_stats(c, since).await
        }
        async fn gift_stats(&self, c: &str) -> Result<GiftStats> {
            self.inner.gift_stats(c).await
        }
    }
}

mod escrow {
    //! The escrow's reads and writes, passed through unhooked.
    use super::*;
    use giftstream::ledger::escrow::*;
    use giftstream::ledger::marketplace::{Contract, MarketCursor};
    use giftstream::model::Fiat;

    #[async_trait]
    impl<H: CommitHook> EscrowLedger for Hooked<H> {
        async fn contract(&self, id: &str) -> Result<Option<Contract>> {
            self.inner.contract(id).await
        }
        async fn brand_contracts(
            &self,
            b: &str,
            n: i64,
            after: Option<&MarketCursor>,
        ) -> Result<Vec<Contract>> {
            self.inner.brand_contracts(b, n, after).await
        }
        async fn creator_contracts_page(
            &self,
            c: &str,
            n: i64,
            after: Option<&MarketCursor>,
        ) -> Result<Vec<Contract>> {
            self.inner.creator_contracts_page(c, n, after).await
        }
        async fn set_contract_payment_intent(&self, id: &str, pi: &str) -> Result<String> {
            self.inner.set_contract_payment_intent(id, pi).await
        }
        async fn contract_paid(&self, p: &ContractPaid) -> Result<bool> {
            self.inner.contract_paid(p).await
        }
        async fn contract_submit(
            &self,
            id: &str,
            url: &str,
            note: &str,
            now: i64,
            review: i64,
        ) -> Result<Contract> {
            self.inner.contract_submit(id, url, note, now, review).await
        }
        async fn contract_release(&self, id: &str, r: &Release) -> Result<Contract> {
            self.inner.contract_release(id, r).await
        }
        async fn contract_payout(&self, id: &str) -> Result<Option<PayoutJob>> {
            self.inner.contract_payout(id).await
        }
        async fn contract_payouts_pending(&self, n: usize) -> Result<Vec<PayoutJob>> {
            self.inner.contract_payouts_pending(n).await
        }
        async fn contract_payout_attempt(
            &self,
            id: &str,
            attempt: i64,
            key: &str,
            now: i64,
        ) -> Result<bool> {
            self.inner
                .contract_payout_attempt(id, attempt, key, now)
                .await
        }
        async fn contract_payout_defer(&self, id: &str, f: i64, next: i64) -> Result<()> {
            self.inner.contract_payout_defer(id, f, next).await
        }
        async fn contract_payout_end(&self, id: &str, end: &CashoutEnd) -> Result<bool> {
            self.inner.contract_payout_end(id, end).await
        }
        async fn contracts_review_due(&self, now: i64, n: usize) -> Result<Vec<String>> {
            self.inner.contracts_review_due(now, n).await
        }
        async fn contract_by_payment_intent(&self, pi: &str) -> Result<Option<Contract>> {
            self.inner.contract_by_payment_intent(pi).await
        }
        async fn contract_dispute(
            &self,
            ev: &StripeEventRef,
            id: &str,
            d: DisputeMove,
        ) -> Result<bool> {
            self.inner.contract_dispute(ev, id, d).await
        }
        async fn marketplace_cents(&self, c: &str) -> Result<Vec<(Fiat, i64)>> {
            self.inner.marketplace_cents(c).await
        }
    }
}
