//! The SEP-31 statuses and the transitions between them: the one place that says which
//! status may follow which (checklist §5.6). The store's `transition` is the only code that
//! writes a status, and it asks [`check`] first.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    PendingSender,
    PendingStellar,
    PendingCustomerInfoUpdate,
    PendingTransactionInfoUpdate,
    PendingReceiver,
    PendingExternal,
    Completed,
    Refunded,
    Expired,
    Error,
}

pub const ALL: [Status; 10] = [
    Status::PendingSender,
    Status::PendingStellar,
    Status::PendingCustomerInfoUpdate,
    Status::PendingTransactionInfoUpdate,
    Status::PendingReceiver,
    Status::PendingExternal,
    Status::Completed,
    Status::Refunded,
    Status::Expired,
    Status::Error,
];

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::PendingSender => "pending_sender",
            Status::PendingStellar => "pending_stellar",
            Status::PendingCustomerInfoUpdate => "pending_customer_info_update",
            Status::PendingTransactionInfoUpdate => "pending_transaction_info_update",
            Status::PendingReceiver => "pending_receiver",
            Status::PendingExternal => "pending_external",
            Status::Completed => "completed",
            Status::Refunded => "refunded",
            Status::Expired => "expired",
            Status::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Nothing follows these (AMB-11 treats all four as final).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Refunded | Status::Expired | Status::Error
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the rules need to know beyond the two statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Facts {
    /// The sending anchor's Stellar payment has been received and matched.
    pub paid: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a transaction cannot go from {from} to {to}: {reason}")]
pub struct IllegalTransition {
    pub from: Status,
    pub to: Status,
    pub reason: &'static str,
}

/// The statuses a transaction may start in (SEP31-33).
pub fn can_start_in(status: Status) -> bool {
    matches!(status, Status::PendingSender | Status::PendingReceiver)
}

/// Whether `from` may become `to`.
pub fn check(from: Status, to: Status, facts: Facts) -> Result<(), IllegalTransition> {
    use Status::*;
    let refuse = |reason| Err(IllegalTransition { from, to, reason });
    if from == to {
        return refuse("it already is");
    }
    if from.is_terminal() {
        return refuse("the transaction is finished");
    }
    match (from, to) {
        // Anything unfinished may fail.
        (_, Error) => Ok(()),
        // Pre-payment processing done: the sending anchor may pay.
        (PendingReceiver, PendingSender) if !facts.paid => Ok(()),
        (PendingReceiver, PendingSender) => refuse("the payment has already arrived"),
        // The payment arrived and was matched.
        (PendingSender, PendingReceiver) if facts.paid => Ok(()),
        (PendingSender, PendingReceiver) => refuse("no payment has arrived"),
        (PendingSender, Expired) if !facts.paid => Ok(()),
        (_, Expired) => refuse("only a transaction still waiting for its payment expires"),
        // Corrections asked of the sending anchor, before or after a payout attempt.
        (PendingReceiver | PendingExternal | PendingStellar, PendingCustomerInfoUpdate)
            if facts.paid =>
        {
            Ok(())
        }
        (PendingReceiver | PendingExternal | PendingStellar, PendingTransactionInfoUpdate)
            if facts.paid =>
        {
            Ok(())
        }
        (_, PendingCustomerInfoUpdate | PendingTransactionInfoUpdate) => {
            refuse("corrections are asked for once the payment has arrived")
        }
        (PendingCustomerInfoUpdate | PendingTransactionInfoUpdate, PendingReceiver) => Ok(()),
        // Payout: submitted off-chain or on-chain, or done at once; a failed one is retried.
        (PendingReceiver, PendingExternal | PendingStellar | Completed) if facts.paid => Ok(()),
        (PendingExternal | PendingStellar, Completed | PendingReceiver) if facts.paid => Ok(()),
        (_, PendingExternal | PendingStellar | Completed) => {
            refuse("nothing is paid out before the payment arrives")
        }
        (_, Refunded) if facts.paid => Ok(()),
        (_, Refunded) => refuse("nothing can be refunded before the payment arrives"),
        _ => refuse("SEP-31 has no such step"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAID: Facts = Facts { paid: true };
    const UNPAID: Facts = Facts { paid: false };

    #[test]
    fn names_round_trip() {
        for status in ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        assert_eq!(Status::parse("pending"), None);
    }

    #[test]
    fn the_happy_paths_of_the_diagram_are_allowed() {
        use Status::*;
        let paths: &[&[(Status, Facts)]] = &[
            // pay, match, pay out off-chain
            &[
                (PendingSender, UNPAID),
                (PendingReceiver, PAID),
                (PendingExternal, PAID),
                (Completed, PAID),
            ],
            // pre-payment processing first, then immediate delivery
            &[
                (PendingReceiver, UNPAID),
                (PendingSender, UNPAID),
                (PendingReceiver, PAID),
                (Completed, PAID),
            ],
            // KYC correction after a failed payout
            &[
                (PendingSender, UNPAID),
                (PendingReceiver, PAID),
                (PendingExternal, PAID),
                (PendingCustomerInfoUpdate, PAID),
                (PendingReceiver, PAID),
                (PendingStellar, PAID),
                (Completed, PAID),
            ],
            // deprecated transaction-info path, then refund
            &[
                (PendingSender, UNPAID),
                (PendingReceiver, PAID),
                (PendingTransactionInfoUpdate, PAID),
                (PendingReceiver, PAID),
                (Refunded, PAID),
            ],
        ];
        for path in paths {
            for pair in path.windows(2) {
                let ((from, _), (to, facts)) = (pair[0], pair[1]);
                check(from, to, facts).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        assert!(check(PendingSender, Expired, UNPAID).is_ok());
        for status in ALL.into_iter().filter(|s| !s.is_terminal()) {
            assert!(check(status, Error, UNPAID).is_ok(), "{status} → error");
        }
    }

    #[test]
    fn terminal_statuses_are_final() {
        for from in ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in ALL {
                assert!(check(from, to, PAID).is_err(), "{from} → {to}");
                assert!(check(from, to, UNPAID).is_err(), "{from} → {to}");
            }
        }
    }

    #[test]
    fn money_moves_only_after_the_payment() {
        use Status::*;
        for from in ALL {
            for to in [
                PendingExternal,
                PendingStellar,
                Completed,
                Refunded,
                PendingCustomerInfoUpdate,
                PendingTransactionInfoUpdate,
            ] {
                assert!(check(from, to, UNPAID).is_err(), "{from} → {to} unpaid");
            }
        }
        assert!(check(PendingReceiver, PendingSender, PAID).is_err());
        assert!(check(PendingSender, PendingReceiver, UNPAID).is_err());
        assert!(check(PendingSender, Expired, PAID).is_err());
        assert!(check(PendingReceiver, Expired, UNPAID).is_err());
    }

    #[test]
    fn a_status_never_follows_itself() {
        for status in ALL {
            assert!(check(status, status, PAID).is_err());
        }
    }
}
