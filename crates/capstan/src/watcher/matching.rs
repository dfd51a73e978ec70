//! Which transaction a payment funds, if any. Pure: the watcher reads the transaction the
//! memo names and asks [`decide`]; anything that is not an exact match is held for the
//! operator with its reason, never guessed.

use rust_decimal::Decimal;

use super::source::IncomingPayment;
use crate::config::ShortPayments;
use crate::sep31::status::Status;
use crate::store::TransactionRow;

/// Why a payment was held instead of matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NoMemo,
    UnknownMemo,
    WrongAccount,
    WrongAsset,
    NotAwaitingPayment,
    ShortPayment,
    FeeRefused,
    /// The fee or price service could not answer; attaching the payment later may work.
    FeeUnavailable,
    /// The source sent a record that could not be read.
    Unreadable,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoMemo => "no_memo",
            Reason::UnknownMemo => "unknown_memo",
            Reason::WrongAccount => "wrong_account",
            Reason::WrongAsset => "wrong_asset",
            Reason::NotAwaitingPayment => "not_awaiting_payment",
            Reason::ShortPayment => "short_payment",
            Reason::FeeRefused => "fee_refused",
            Reason::FeeUnavailable => "fee_unavailable",
            Reason::Unreadable => "unreadable",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The payment funds this transaction with `amount_in` = what arrived.
    Fund {
        amount_in: Decimal,
    },
    Hold {
        reason: Reason,
        detail: String,
    },
}

/// The memo a payment names a transaction by: the transaction memo, or else the muxed id
/// of an `M...` destination, read as an id memo (SEP-31 only speaks of memos; a muxed
/// address is how SEP-23 wallets put the same number in the destination instead).
/// Returns (type, value), with id memos in canonical decimal.
pub fn payment_memo(p: &IncomingPayment) -> Option<(String, String)> {
    match (p.memo_type.as_str(), &p.memo) {
        ("none", _) | (_, None) => p
            .to_muxed_id
            .as_ref()
            .map(|id| ("id".to_owned(), canonical_id(id))),
        ("id", Some(memo)) => Some(("id".to_owned(), canonical_id(memo))),
        (kind, Some(memo)) => Some((kind.to_owned(), memo.clone())),
    }
}

fn canonical_id(id: &str) -> String {
    id.parse::<u64>()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| id.to_owned())
}

/// Whether `payment` funds `transaction` (the one its memo value names, if any).
pub fn decide(
    payment: &IncomingPayment,
    transaction: Option<&TransactionRow>,
    short_payments: ShortPayments,
) -> Decision {
    let hold = |reason, detail: String| Decision::Hold { reason, detail };
    let Some((memo_type, memo)) = payment_memo(payment) else {
        return hold(
            Reason::NoMemo,
            "the payment has no memo, so it names no transaction".into(),
        );
    };
    let Some(t) = transaction else {
        return hold(
            Reason::UnknownMemo,
            format!("no transaction has the {memo_type} memo {memo}"),
        );
    };
    if t.stellar_memo_type.as_deref() != Some(memo_type.as_str()) {
        return hold(
            Reason::UnknownMemo,
            format!(
                "the payment has a {memo_type} memo {memo}; transaction {} expects a {} memo",
                t.id,
                t.stellar_memo_type.as_deref().unwrap_or("different")
            ),
        );
    }
    if t.stellar_account_id.as_deref() != Some(payment.to.as_str()) {
        return hold(
            Reason::WrongAccount,
            format!(
                "paid to {}; transaction {} is paid to {}",
                payment.to,
                t.id,
                t.stellar_account_id.as_deref().unwrap_or("no account yet")
            ),
        );
    }
    if payment.asset_code != t.asset_code || payment.asset_issuer != t.asset_issuer {
        return hold(
            Reason::WrongAsset,
            format!(
                "paid in {}; transaction {} expects {}:{}",
                asset_name(&payment.asset_code, &payment.asset_issuer),
                t.id,
                t.asset_code,
                t.asset_issuer
            ),
        );
    }
    if t.status() != Status::PendingSender || t.paid {
        return hold(
            Reason::NotAwaitingPayment,
            format!(
                "transaction {} is {}{}, not waiting for a payment",
                t.id,
                t.status(),
                if t.paid { " and already paid" } else { "" }
            ),
        );
    }
    let expected: Decimal = t.amount_in.parse().unwrap_or_default();
    if payment.amount < expected && short_payments == ShortPayments::Hold {
        return hold(
            Reason::ShortPayment,
            format!(
                "{} arrived; transaction {} expects {}",
                payment.amount.normalize(),
                t.id,
                expected.normalize()
            ),
        );
    }
    Decision::Fund {
        amount_in: payment.amount,
    }
}

pub fn asset_name(code: &str, issuer: &str) -> String {
    if issuer.is_empty() {
        code.to_owned()
    } else {
        format!("{code}:{issuer}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(memo_type: &str, memo: Option<&str>) -> IncomingPayment {
        IncomingPayment {
            id: "1".into(),
            cursor: "1".into(),
            stellar_transaction_id: "ab".into(),
            kind: "payment".into(),
            from: "GFROM".into(),
            to: "GDIST".into(),
            to_muxed_id: None,
            asset_code: "USDC".into(),
            asset_issuer: "GISSUER".into(),
            amount: Decimal::new(100, 0),
            memo_type: memo_type.into(),
            memo: memo.map(str::to_owned),
            paid_at: 0,
        }
    }

    fn transaction(status: Status, amount_in: &str) -> TransactionRow {
        TransactionRow {
            id: "t1".into(),
            sending_anchor: "GSEND".into(),
            status: status.as_str().into(),
            status_message: None,
            asset_code: "USDC".into(),
            asset_issuer: "GISSUER".into(),
            funding_method: "SEPA".into(),
            amount_in: amount_in.into(),
            amount_fee: "0".into(),
            amount_out: amount_in.into(),
            fee_details: "[]".into(),
            sender_id: None,
            receiver_id: None,
            stellar_account_id: Some("GDIST".into()),
            stellar_memo_type: Some("id".into()),
            stellar_memo: Some("42".into()),
            refund_memo: None,
            refund_memo_type: None,
            fields: "{}".into(),
            required_info_message: None,
            required_info_updates: None,
            stellar_transaction_id: None,
            external_transaction_id: None,
            refunds: None,
            paid: false,
            version: 0,
            callback_url: None,
            started_at: 0,
            updated_at: 0,
            completed_at: None,
            expires_at: None,
            conversion: None,
        }
    }

    fn reason(d: Decision) -> Option<Reason> {
        match d {
            Decision::Hold { reason, .. } => Some(reason),
            Decision::Fund { .. } => None,
        }
    }

    #[test]
    fn an_exact_payment_funds_its_transaction() {
        let t = transaction(Status::PendingSender, "100");
        let d = decide(&payment("id", Some("42")), Some(&t), ShortPayments::Hold);
        assert_eq!(
            d,
            Decision::Fund {
                amount_in: Decimal::new(100, 0)
            }
        );
    }

    #[test]
    fn a_muxed_id_stands_for_a_missing_memo() {
        let mut p = payment("none", None);
        p.to_muxed_id = Some("42".into());
        assert_eq!(payment_memo(&p), Some(("id".into(), "42".into())));
        let t = transaction(Status::PendingSender, "100");
        assert_eq!(reason(decide(&p, Some(&t), ShortPayments::Hold)), None);
    }

    #[test]
    fn odd_payments_are_held_with_their_reason() {
        let t = transaction(Status::PendingSender, "100");
        let h = ShortPayments::Hold;
        assert_eq!(
            reason(decide(&payment("none", None), None, h)),
            Some(Reason::NoMemo)
        );
        assert_eq!(
            reason(decide(&payment("id", Some("7")), None, h)),
            Some(Reason::UnknownMemo)
        );
        assert_eq!(
            reason(decide(&payment("text", Some("42")), Some(&t), h)),
            Some(Reason::UnknownMemo)
        );
        let mut other_asset = payment("id", Some("42"));
        other_asset.asset_issuer = "GOTHER".into();
        assert_eq!(
            reason(decide(&other_asset, Some(&t), h)),
            Some(Reason::WrongAsset)
        );
        let mut other_account = payment("id", Some("42"));
        other_account.to = "GELSE".into();
        assert_eq!(
            reason(decide(&other_account, Some(&t), h)),
            Some(Reason::WrongAccount)
        );
        let expired = transaction(Status::Expired, "100");
        assert_eq!(
            reason(decide(&payment("id", Some("42")), Some(&expired), h)),
            Some(Reason::NotAwaitingPayment)
        );
        let bigger = transaction(Status::PendingSender, "100.5");
        assert_eq!(
            reason(decide(&payment("id", Some("42")), Some(&bigger), h)),
            Some(Reason::ShortPayment)
        );
        assert_eq!(
            reason(decide(
                &payment("id", Some("42")),
                Some(&bigger),
                ShortPayments::Accept
            )),
            None
        );
    }

    #[test]
    fn id_memos_compare_as_numbers() {
        assert_eq!(
            payment_memo(&payment("id", Some("0042"))),
            Some(("id".into(), "42".into()))
        );
    }
}
