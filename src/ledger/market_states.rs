//! The marketplace's state machines, in one place: campaigns, applications
//! (and invitations) and contracts, each an enum and one pure transition
//! function naming every allowed move. docs/MARKETPLACE.md draws them.
//!
//! Owns: [`CampaignState`], [`ApplicationState`], [`ContractState`], their
//! actions, their wire names and the transition functions (a refused move
//! is `conflict` naming the state it was refused in).
//! Must not: read or write anything: the ledger moves a row only from the
//! state it read (`UPDATE ... WHERE state = <read>`), to what these
//! functions answer.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};

/// A campaign: written as a draft, published (open to applications), closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    /// Being written by its brand; only it sees it; editable.
    Draft,
    /// Published: listed to eligible creators, takes applications and
    /// invitations, its applications may be accepted.
    Open,
    /// Closed by its brand: no more applications or acceptances (contracts
    /// already made go on).
    Closed,
}

/// What a brand does to its campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CampaignAction {
    /// Change its fields.
    Edit,
    /// Make it open.
    Publish,
    /// End it.
    Close,
    /// Take an application or an invitation, or accept one (the campaign
    /// stays as it is).
    Engage,
}

/// An application: a creator's (`applied`), or a brand's invitation
/// (`invited`) the creator answers by applying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationState {
    /// The brand invited the creator; they have not applied yet.
    Invited,
    /// The creator applied (pitch and price), waiting for the brand.
    Applied,
    /// The brand accepted: a contract exists (final).
    Accepted,
    /// The brand declined (final).
    Declined,
    /// The creator withdrew, or declined the invitation (final).
    Withdrawn,
}

/// What is done to an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApplicationAction {
    /// The creator applies (answering an invitation, or a new application).
    Apply,
    /// The brand accepts (a contract is made).
    Accept,
    /// The brand declines (an application or its own invitation).
    Decline,
    /// The creator withdraws (an application or an invitation to them).
    Withdraw,
}

/// A contract, made when an application is accepted, moved by the escrow
/// and its payout ([`crate::ledger::escrow`], [`crate::payments`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContractState {
    /// Made; the brand has not paid the agreed price yet.
    AwaitingPayment,
    /// Paid: the money sits in the contract's escrow account.
    Funded,
    /// The creator submitted the deliverable; the brand reviews it.
    Submitted,
    /// Approved (by the brand, or after the review time): paid out (final).
    Completed,
    /// Cancelled before payment, or the deliverable rejected and the brand
    /// refunded (final).
    Cancelled,
}

/// What moves a contract (escrow and payout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContractAction {
    /// `payment_intent.succeeded` for the contract.
    Pay,
    /// The creator submits the deliverable.
    Submit,
    /// The brand approves (or the review time passes): the payout.
    Approve,
    /// The brand rejects the deliverable: refund.
    Reject,
    /// Either side cancels before payment, or the payment fails.
    Cancel,
}

/// The error of a refused move: `conflict` naming the state.
fn refused(what: &str, state: &str, action: impl std::fmt::Debug) -> Error {
    let action = format!("{action:?}").to_lowercase();
    Error::new(
        ErrorCode::Conflict,
        format!("the {what} is {state}: {action} is not allowed"),
    )
}

impl CampaignState {
    /// The state as stored and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Draft => "draft",
            CampaignState::Open => "open",
            CampaignState::Closed => "closed",
        }
    }

    /// A stored state.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Draft, Self::Open, Self::Closed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    /// Where `action` takes a campaign in this state; `conflict` when it
    /// may not.
    pub fn next(self, action: CampaignAction) -> Result<CampaignState> {
        use CampaignAction as A;
        use CampaignState as S;
        match (self, action) {
            (S::Draft, A::Edit) => Ok(S::Draft),
            (S::Draft, A::Publish) => Ok(S::Open),
            (S::Draft | S::Open, A::Close) => Ok(S::Closed),
            (S::Open, A::Engage) => Ok(S::Open),
            (s, a) => Err(refused("campaign", s.as_str(), a)),
        }
    }
}

impl ApplicationState {
    /// The state as stored and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationState::Invited => "invited",
            ApplicationState::Applied => "applied",
            ApplicationState::Accepted => "accepted",
            ApplicationState::Declined => "declined",
            ApplicationState::Withdrawn => "withdrawn",
        }
    }

    /// A stored state.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Invited,
            Self::Applied,
            Self::Accepted,
            Self::Declined,
            Self::Withdrawn,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Where `action` takes an application in this state; `conflict` when
    /// it may not.
    pub fn next(self, action: ApplicationAction) -> Result<ApplicationState> {
        use ApplicationAction as A;
        use ApplicationState as S;
        match (self, action) {
            (S::Invited, A::Apply) => Ok(S::Applied),
            (S::Applied, A::Accept) => Ok(S::Accepted),
            (S::Invited | S::Applied, A::Decline) => Ok(S::Declined),
            (S::Invited | S::Applied, A::Withdraw) => Ok(S::Withdrawn),
            (s, a) => Err(refused("application", s.as_str(), a)),
        }
    }
}

impl ContractState {
    /// The state as stored and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ContractState::AwaitingPayment => "awaiting_payment",
            ContractState::Funded => "funded",
            ContractState::Submitted => "submitted",
            ContractState::Completed => "completed",
            ContractState::Cancelled => "cancelled",
        }
    }

    /// A stored state.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::AwaitingPayment,
            Self::Funded,
            Self::Submitted,
            Self::Completed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Where `action` takes a contract in this state; `conflict` when it
    /// may not.
    pub fn next(self, action: ContractAction) -> Result<ContractState> {
        use ContractAction as A;
        use ContractState as S;
        match (self, action) {
            (S::AwaitingPayment, A::Pay) => Ok(S::Funded),
            (S::AwaitingPayment, A::Cancel) => Ok(S::Cancelled),
            (S::Funded, A::Submit) => Ok(S::Submitted),
            (S::Funded, A::Cancel) => Ok(S::Cancelled),
            (S::Submitted, A::Approve) => Ok(S::Completed),
            (S::Submitted, A::Reject) => Ok(S::Cancelled),
            (s, a) => Err(refused("contract", s.as_str(), a)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (state, action) of a machine against the allowed table: the
    /// allowed moves land where the table says, every other is `conflict`
    /// naming the state.
    fn walk<S, A>(
        states: &[S],
        actions: &[A],
        allowed: &[(S, A, S)],
        next: impl Fn(S, A) -> Result<S>,
        name: impl Fn(S) -> &'static str,
    ) where
        S: Copy + PartialEq + std::fmt::Debug,
        A: Copy + PartialEq + std::fmt::Debug,
    {
        let mut moves = 0;
        for &s in states {
            for &a in actions {
                match allowed.iter().find(|(f, x, _)| *f == s && *x == a) {
                    Some(&(_, _, to)) => {
                        assert_eq!(next(s, a).unwrap(), to, "{s:?} {a:?}");
                        moves += 1;
                    }
                    None => {
                        let e = next(s, a).unwrap_err();
                        assert_eq!(e.code, ErrorCode::Conflict, "{s:?} {a:?}");
                        assert!(e.message.contains(name(s)), "{s:?} {a:?}: {e}");
                    }
                }
            }
        }
        assert_eq!(moves, allowed.len(), "every allowed move was walked");
    }

    #[test]
    fn campaign_moves_are_exactly_the_table() {
        use CampaignAction as A;
        use CampaignState as S;
        walk(
            &[S::Draft, S::Open, S::Closed],
            &[A::Edit, A::Publish, A::Close, A::Engage],
            &[
                (S::Draft, A::Edit, S::Draft),
                (S::Draft, A::Publish, S::Open),
                (S::Draft, A::Close, S::Closed),
                (S::Open, A::Close, S::Closed),
                (S::Open, A::Engage, S::Open),
            ],
            S::next,
            S::as_str,
        );
    }

    #[test]
    fn application_moves_are_exactly_the_table() {
        use ApplicationAction as A;
        use ApplicationState as S;
        walk(
            &[
                S::Invited,
                S::Applied,
                S::Accepted,
                S::Declined,
                S::Withdrawn,
            ],
            &[A::Apply, A::Accept, A::Decline, A::Withdraw],
            &[
                (S::Invited, A::Apply, S::Applied),
                (S::Applied, A::Accept, S::Accepted),
                (S::Invited, A::Decline, S::Declined),
                (S::Applied, A::Decline, S::Declined),
                (S::Invited, A::Withdraw, S::Withdrawn),
                (S::Applied, A::Withdraw, S::Withdrawn),
            ],
            S::next,
            S::as_str,
        );
    }

    #[test]
    fn contract_moves_are_exactly_the_table() {
        use ContractAction as A;
        use ContractState as S;
        walk(
            &[
                S::AwaitingPayment,
                S::Funded,
                S::Submitted,
                S::Completed,
                S::Cancelled,
            ],
            &[A::Pay, A::Submit, A::Approve, A::Reject, A::Cancel],
            &[
                (S::AwaitingPayment, A::Pay, S::Funded),
                (S::AwaitingPayment, A::Cancel, S::Cancelled),
                (S::Funded, A::Submit, S::Submitted),
                (S::Funded, A::Cancel, S::Cancelled),
                (S::Submitted, A::Approve, S::Completed),
                (S::Submitted, A::Reject, S::Cancelled),
            ],
            S::next,
            S::as_str,
        );
    }

    #[test]
    fn stored_names_round_trip() {
        for s in [
            CampaignState::Draft,
            CampaignState::Open,
            CampaignState::Closed,
        ] {
            assert_eq!(CampaignState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in [
            ApplicationState::Invited,
            ApplicationState::Applied,
            ApplicationState::Accepted,
            ApplicationState::Declined,
            ApplicationState::Withdrawn,
        ] {
            assert_eq!(ApplicationState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in [
            ContractState::AwaitingPayment,
            ContractState::Funded,
            ContractState::Submitted,
            ContractState::Completed,
            ContractState::Cancelled,
        ] {
            assert_eq!(ContractState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(CampaignState::parse("nope"), None);
    }
}
