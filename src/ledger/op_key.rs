//! Operation ids: the typed key under which every ledger (and counters)
//! operation is recorded.
//!
//! Owns: [`OpKey`] and its injective text encoding. Must not: be bypassed by
//! joining client text into an op id at a call site.

/// The identity of a ledger (and counters) operation, typed: the text under
/// which it is recorded (`operations.op_id`, the counters' op ids) comes
/// only from [`OpKey::op_id`], never from joining strings at the call site.
///
/// The encoding is injective by construction: each variant has its own tag
/// (the first `:`-separated segment, distinct per variant or per arity) and a
/// fixed number of fields; every field is escaped (`%` → `%25`, `:` → `%3A`)
/// except a `grant`'s id, which is the whole rest of its text (one free
/// field, last, under a tag no other variant uses). Stripe ids contain
/// neither `:` nor `%`, so the keys of purchases, refunds, disputes, tips
/// read exactly as they did before this type existed; cash-outs moved to the
/// `cashout.begin` / `cashout.end` tags because their old ids
/// (`cashout:{creator}:{client id}` and `...:done`) collided (issue 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKey<'a> {
    /// An admin grant of a client-chosen id: `grant:{id}` (id unescaped).
    Grant(&'a str),
    /// A settlement batch: `batch:{id}`.
    Batch(&'a str),
    /// A paid purchase: `purchase:{pi}`.
    Purchase(&'a str),
    /// A refund reaching `cents_total` refunded: `refund:{pi}:{cents}`.
    Refund(&'a str, i64),
    /// A chargeback: `dispute:{dp}`.
    Dispute(&'a str),
    /// A won chargeback: `dispute:{dp}:reinstated`.
    DisputeReinstated(&'a str),
    /// A paid tip: `tip:{pi}`.
    Tip(&'a str),
    /// A tip's refund reaching `cents_total`: `tip_refund:{pi}:{cents}`.
    TipRefund(&'a str, i64),
    /// A tip's chargeback: `tip_dispute:{dp}`.
    TipDispute(&'a str),
    /// A won tip chargeback: `tip_dispute:{dp}:reinstated`.
    TipDisputeReinstated(&'a str),
    /// The start of a cash-out: `cashout.begin:{cashout id}`.
    CashoutBegin(&'a str),
    /// The end (completed, reversed or flagged) of a cash-out:
    /// `cashout.end:{cashout id}` (one end per cash-out).
    CashoutEnd(&'a str),
    /// A marketplace contract paid into escrow: `contract.paid:{contract}`.
    ContractPaid(&'a str),
    /// A contract's escrow released (approve, reject, cancel):
    /// `contract.release:{contract}`.
    ContractRelease(&'a str),
    /// The end of a contract's payout: `contract.payout_end:{contract}`.
    ContractPayoutEnd(&'a str),
    /// A lost dispute of a contract's charge: `contract.chargeback:{dp}`.
    ContractChargeback(&'a str),
}

/// `s` with `%` and `:` percent-escaped (an injective map onto strings
/// without `:`).
fn escape_field(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains([':', '%']) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(s.replace('%', "%25").replace(':', "%3A"))
}

impl OpKey<'_> {
    /// The operation id recorded for this key (see the type's docs).
    pub fn op_id(&self) -> String {
        let e = escape_field;
        match self {
            OpKey::Grant(id) => format!("grant:{id}"),
            OpKey::Batch(id) => format!("batch:{}", e(id)),
            OpKey::Purchase(pi) => format!("purchase:{}", e(pi)),
            OpKey::Refund(pi, cents) => format!("refund:{}:{cents}", e(pi)),
            OpKey::Dispute(dp) => format!("dispute:{}", e(dp)),
            OpKey::DisputeReinstated(dp) => format!("dispute:{}:reinstated", e(dp)),
            OpKey::Tip(pi) => format!("tip:{}", e(pi)),
            OpKey::TipRefund(pi, cents) => format!("tip_refund:{}:{cents}", e(pi)),
            OpKey::TipDispute(dp) => format!("tip_dispute:{}", e(dp)),
            OpKey::TipDisputeReinstated(dp) => format!("tip_dispute:{}:reinstated", e(dp)),
            OpKey::CashoutBegin(id) => format!("cashout.begin:{}", e(id)),
            OpKey::CashoutEnd(id) => format!("cashout.end:{}", e(id)),
            OpKey::ContractPaid(id) => format!("contract.paid:{}", e(id)),
            OpKey::ContractRelease(id) => format!("contract.release:{}", e(id)),
            OpKey::ContractPayoutEnd(id) => format!("contract.payout_end:{}", e(id)),
            OpKey::ContractChargeback(dp) => format!("contract.chargeback:{}", e(dp)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OpKey;

    #[test]
    fn op_keys_of_existing_kinds_read_as_before() {
        assert_eq!(OpKey::Grant("a:b%c").op_id(), "grant:a:b%c");
        assert_eq!(OpKey::Batch("b-1").op_id(), "batch:b-1");
        assert_eq!(OpKey::Purchase("pi_1").op_id(), "purchase:pi_1");
        assert_eq!(OpKey::Refund("pi_1", 50).op_id(), "refund:pi_1:50");
        assert_eq!(OpKey::Dispute("dp_1").op_id(), "dispute:dp_1");
        assert_eq!(
            OpKey::DisputeReinstated("dp_1").op_id(),
            "dispute:dp_1:reinstated"
        );
        assert_eq!(OpKey::Tip("pi_2").op_id(), "tip:pi_2");
    }

    #[test]
    fn cash_out_keys_never_collide_whatever_the_client_id() {
        let ids = ["c:x", "c:x:done", "c:x:reversed", "c:x%3Adone", "c:x%", ""];
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            for k in [OpKey::CashoutBegin(id), OpKey::CashoutEnd(id)] {
                let op = k.op_id();
                assert!(seen.insert(op.clone()), "{op} twice");
                // Never of the old form, which old rows keep.
                assert!(!op.starts_with("cashout:"), "{op}");
            }
        }
        assert_eq!(
            OpKey::CashoutBegin("c:x:done").op_id(),
            "cashout.begin:c%3Ax%3Adone"
        );
        assert_eq!(
            OpKey::Dispute("dp:1:reinstated").op_id(),
            "dispute:dp%3A1%3Areinstated"
        );
    }
}
