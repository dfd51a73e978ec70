//! Where payments come from. Matching and storage see only [`IncomingPayment`]s from a
//! [`PaymentSource`], so another source (Stellar RPC's `getTransactions`, now that Horizon is
//! marked deprecated) can be added without touching them.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use rust_decimal::Decimal;
use stellar::horizon::payments::PaymentRecord;
use stellar::horizon::{Horizon, HorizonError};

/// An incoming payment, whatever the source.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingPayment {
    /// Unique on the network (the operation id): a payment is recorded once under it.
    pub id: String,
    /// The stream position just after this payment.
    pub cursor: String,
    pub stellar_transaction_id: String,
    /// payment, path_payment_strict_send, path_payment_strict_receive
    pub kind: String,
    pub from: String,
    /// The base `G...` account paid.
    pub to: String,
    /// Set when it was paid to a muxed `M...` address.
    pub to_muxed_id: Option<String>,
    /// The asset received: "native" and "" for lumens.
    pub asset_code: String,
    pub asset_issuer: String,
    /// The amount received (for a path payment, in the asset received).
    pub amount: Decimal,
    /// none, id, text, hash, return
    pub memo_type: String,
    /// The memo as the network has it: id in decimal, text as text, hash and return in base64.
    pub memo: Option<String>,
    /// When the network closed it, unix seconds.
    pub paid_at: i64,
}

/// What a stream yields: a payment to look at, or a record that only moves the cursor
/// (outgoing payments, failed transactions, account creation).
#[derive(Debug, Clone, PartialEq)]
pub enum SourceItem {
    Payment(Box<IncomingPayment>),
    Skip {
        cursor: String,
    },
    /// A record that cannot be read (a malformed amount, JSON that does not parse): held
    /// for the operator under `id`, so the stream goes on instead of stopping at it.
    Unreadable {
        id: String,
        cursor: String,
        detail: String,
    },
}

impl SourceItem {
    pub fn cursor(&self) -> &str {
        match self {
            SourceItem::Payment(p) => &p.cursor,
            SourceItem::Skip { cursor } | SourceItem::Unreadable { cursor, .. } => cursor,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Unreachable(String),
    #[error("answered {status}")]
    Rejected {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("sent a record that cannot be read: {0}")]
    BadRecord(String),
}

pub type ItemStream = BoxStream<'static, Result<SourceItem, SourceError>>;

pub trait PaymentSource: Send + Sync {
    /// For logs and `/health`.
    fn name(&self) -> &'static str;

    /// Opens the stream of `account`'s payments just after `cursor`. It ends when the
    /// source closes it; the caller reconnects from its last cursor.
    fn open<'a>(
        &'a self,
        account: &'a str,
        cursor: &'a str,
    ) -> BoxFuture<'a, Result<ItemStream, SourceError>>;

    /// The cursor just after `account`'s newest payment now ("0" when there is none): what
    /// a first start "from now" stores before it streams, so a reconnection before the
    /// first payment does not skip the payments made meanwhile.
    fn latest_cursor<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<String, SourceError>>;
}

/// Horizon's payments stream.
pub struct HorizonSource {
    horizon: Horizon,
}

impl HorizonSource {
    pub fn new(horizon: Horizon) -> HorizonSource {
        HorizonSource { horizon }
    }
}

impl PaymentSource for HorizonSource {
    fn name(&self) -> &'static str {
        "horizon"
    }

    fn latest_cursor<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<String, SourceError>> {
        Box::pin(async move {
            Ok(self
                .horizon
                .latest_payment_token(account)
                .await
                .map_err(source_error)?
                .unwrap_or_else(|| "0".to_owned()))
        })
    }

    fn open<'a>(
        &'a self,
        account: &'a str,
        cursor: &'a str,
    ) -> BoxFuture<'a, Result<ItemStream, SourceError>> {
        Box::pin(async move {
            let account_owned = account.to_owned();
            let stream = self
                .horizon
                .payments_stream(account, cursor)
                .await
                .map_err(source_error)?;
            Ok(stream
                .map(move |record| match record {
                    Ok(r) => Ok(from_horizon(&account_owned, r)),
                    Err(HorizonError::BadRecord {
                        paging_token,
                        detail,
                    }) => Ok(SourceItem::Unreadable {
                        id: format!("unreadable:{paging_token}"),
                        cursor: paging_token,
                        detail,
                    }),
                    Err(e) => Err(source_error(e)),
                })
                .boxed())
        })
    }
}

fn source_error(e: HorizonError) -> SourceError {
    match e {
        HorizonError::Rejected {
            status,
            retry_after,
            ..
        } => SourceError::Rejected {
            status,
            retry_after,
        },
        HorizonError::Status { status, .. } => SourceError::Rejected {
            status,
            retry_after: None,
        },
        HorizonError::BadResponse(m) => SourceError::BadRecord(m),
        HorizonError::BadRecord {
            paging_token,
            detail,
        } => SourceError::BadRecord(format!("record {paging_token}: {detail}")),
        HorizonError::Unreachable(m) => SourceError::Unreachable(m),
    }
}

/// The payment kinds that can carry a SEP-31 payment. An account merge has no amount in
/// Horizon's record and a create_account cannot reach an existing distribution account, so
/// both only move the cursor.
const PAYMENT_KINDS: &[&str] = &[
    "payment",
    "path_payment_strict_send",
    "path_payment_strict_receive",
];

/// Reads a Horizon record as an incoming payment of `account`.
fn from_horizon(account: &str, r: PaymentRecord) -> SourceItem {
    match read_payment(account, &r) {
        Ok(item) => item,
        Err(detail) => SourceItem::Unreadable {
            id: r.id.clone(),
            cursor: r.paging_token.clone(),
            detail,
        },
    }
}

fn read_payment(account: &str, r: &PaymentRecord) -> Result<SourceItem, String> {
    let skip = || {
        Ok(SourceItem::Skip {
            cursor: r.paging_token.clone(),
        })
    };
    if !r.successful() || !PAYMENT_KINDS.contains(&r.kind.as_str()) {
        return skip();
    }
    if r.to.as_deref() != Some(account) {
        // Outgoing: the distribution account paid someone.
        return skip();
    }
    let bad = |what: &str| format!("operation {}: {what}", r.id);
    let amount: Decimal = r
        .amount
        .as_deref()
        .ok_or_else(|| bad("no amount"))?
        .parse()
        .map_err(|_| bad("the amount is not a number"))?;
    let (asset_code, asset_issuer) = match r.asset_type.as_deref() {
        Some("native") => ("native".to_owned(), String::new()),
        Some(_) => (
            r.asset_code.clone().ok_or_else(|| bad("no asset_code"))?,
            r.asset_issuer
                .clone()
                .ok_or_else(|| bad("no asset_issuer"))?,
        ),
        None => return Err(bad("no asset_type")),
    };
    let transaction = r
        .transaction
        .as_ref()
        .ok_or_else(|| bad("no joined transaction (join=transactions)"))?;
    let memo_type = transaction
        .memo_type
        .clone()
        .unwrap_or_else(|| "none".into());
    let memo = if memo_type == "none" {
        None
    } else {
        transaction.memo.clone()
    };
    let paid_at = r
        .created_at
        .as_deref()
        .or(transaction.created_at.as_deref())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp())
        .unwrap_or_else(crate::store::unix_now);
    let item = SourceItem::Payment(Box::new(IncomingPayment {
        id: r.id.clone(),
        cursor: r.paging_token.clone(),
        stellar_transaction_id: r.transaction_hash.clone(),
        kind: r.kind.clone(),
        from: r
            .from
            .clone()
            .or_else(|| r.source_account.clone())
            .unwrap_or_default(),
        to: account.to_owned(),
        to_muxed_id: r.to_muxed_id.clone(),
        asset_code,
        asset_issuer,
        amount,
        memo_type,
        memo,
        paid_at,
    }));
    Ok(item)
}
