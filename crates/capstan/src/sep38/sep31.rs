//! SEP-31 transactions that convert: a `quote_id` (a firm price) or a `destination_asset`
//! (an indicative price, taken when the payment arrives).
//!
//! A converting transaction keeps its terms in its `conversion` column ([`Conversion`]);
//! its fee is stored as any transaction's (`amount_fee`, and the parts in `fee_details`),
//! a quoted transaction's being the quote's.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::quote::owned_quote;
use super::rates::{RateError, RateKind, RateRequest};
use super::{Known, known_asset, pair_offered, stellar_id};
use crate::anchor::AppState;
use crate::config::ReceiveAsset;
use crate::http::{ApiError, Session};
use crate::sep31::amounts::amount_string;
use crate::store::{QuoteClaim, TransactionRow, iso_time};
use crate::watcher::matching::{Decision, Reason};
use crate::watcher::source::IncomingPayment;

/// The SEP-38 terms of a converting transaction, as its `conversion` column keeps them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversion {
    /// The Stellar asset received, as SEP-38 names it (`stellar:USDC:G...`).
    pub amount_in_asset: String,
    /// The off-chain asset paid out (`iso4217:BRL`).
    pub amount_out_asset: String,
    /// Decimal places of the off-chain asset: amounts out are rounded down to them.
    pub decimals: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_expires_at: Option<i64>,
    /// The price of one unit out, in the asset in: the quote's, or without a quote the
    /// indicative price taken when the payment arrived (none before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
}

impl Conversion {
    /// The column's text.
    pub fn column(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a converting `POST /transactions` stores.
#[derive(Debug, Clone)]
pub struct PostConversion {
    /// With a quote: its fee and buy amount, and when it expires.
    pub quote: Option<QuotedTerms>,
    pub conversion: Conversion,
    /// The owner the quote must still have when it is used.
    pub account: String,
    pub memo: String,
}

#[derive(Debug, Clone)]
pub struct QuotedTerms {
    pub id: String,
    pub amount_fee: Decimal,
    pub amount_out: String,
    /// The quote's fee parts (`fee.details`), as the `fee_details` column keeps them.
    pub fee_details: Value,
}

impl PostConversion {
    pub fn claim(&self) -> Option<QuoteClaim<'_>> {
        self.quote.as_ref().map(|q| QuoteClaim {
            id: &q.id,
            account: &self.account,
            memo: &self.memo,
        })
    }
}

/// The conversion terms of a stored transaction, if it converts.
pub fn conversion_of(row: &TransactionRow) -> Option<Conversion> {
    serde_json::from_str(row.conversion.as_deref()?).ok()
}

/// Checks the SEP-38 part of a `POST /transactions` (SEP31-21..23): `None` when the
/// transaction does not convert.
pub async fn post_conversion(
    anchor: &AppState,
    session: &Session,
    asset: &ReceiveAsset,
    amount: Decimal,
    funding_method: &str,
    quote_id: Option<String>,
    destination_asset: Option<String>,
) -> Result<Option<PostConversion>, ApiError> {
    let config = &anchor.config.sep38;
    let (account, memo) = super::quote::owner(session);
    let sell_asset = stellar_id(asset);
    if let Some(id) = quote_id {
        if !config.enabled() {
            return Err(ApiError::bad_request(
                "quote_id: this anchor offers no quotes (quotes_supported is false)",
            ));
        }
        let not_found = || ApiError::bad_request(format!("quote(id={id}) was not found."));
        let quote = owned_quote(anchor, session, &id)
            .await?
            .ok_or_else(not_found)?;
        if quote.context != "sep31" {
            return Err(ApiError::bad_request(format!(
                "quote {id} was made for {}, not sep31",
                quote.context
            )));
        }
        if quote.transaction_id.is_some() {
            return Err(ApiError::bad_request(format!(
                "quote {id} was already used by another transaction"
            )));
        }
        if quote.expires_at <= crate::store::unix_now() {
            return Err(ApiError::bad_request(format!(
                "quote {id} expired at {}; ask for a new one",
                iso_time(quote.expires_at)
            )));
        }
        if quote.sell_asset != sell_asset {
            return Err(ApiError::bad_request(format!(
                "quote {id} sells {}, not {sell_asset}",
                quote.sell_asset
            )));
        }
        if quote.sell_amount.parse::<Decimal>().ok() != Some(amount) {
            return Err(ApiError::bad_request(format!(
                "amount {} does not match the quote's sell_amount {}",
                amount_string(amount),
                quote.sell_amount
            )));
        }
        if let Some(destination) = &destination_asset
            && destination != &quote.buy_asset
        {
            return Err(ApiError::bad_request(format!(
                "destination_asset {destination} does not match the quote's buy_asset {}",
                quote.buy_asset
            )));
        }
        if let Some(method) = &quote.buy_delivery_method
            && method != funding_method
        {
            return Err(ApiError::bad_request(format!(
                "funding_method {funding_method} does not match the quote's buy_delivery_method {method}"
            )));
        }
        let fee: Value = serde_json::from_str(&quote.fee).unwrap_or_else(|_| json!({}));
        let amount_fee = fee
            .get("total")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<Decimal>().ok())
            .ok_or_else(|| ApiError::Internal(format!("quote {id} has no fee total")))?;
        let price = quote
            .price
            .parse::<Decimal>()
            .map_err(|_| ApiError::Internal(format!("quote {id} has no price")))?;
        let conversion = Conversion {
            amount_in_asset: quote.sell_asset.clone(),
            amount_out_asset: quote.buy_asset.clone(),
            decimals: config.asset(&quote.buy_asset).map_or(2, |a| a.decimals),
            quote_id: Some(quote.id.clone()),
            quote_expires_at: Some(quote.expires_at),
            price: Some(price),
        };
        return Ok(Some(PostConversion {
            quote: Some(QuotedTerms {
                id: quote.id,
                amount_fee,
                amount_out: quote.buy_amount,
                fee_details: fee.get("details").cloned().unwrap_or_else(|| json!([])),
            }),
            conversion,
            account,
            memo,
        }));
    }
    if config.quotes_required.contains(&asset.code) {
        return Err(ApiError::bad_request(format!(
            "quotes_required is set to true for {}; quote_id cannot be empty",
            asset.code
        )));
    }
    let Some(destination) = destination_asset else {
        return Ok(None);
    };
    if !config.enabled() {
        return Err(ApiError::bad_request(format!(
            "destination_asset {destination}: this anchor offers no asset conversion; omit it to receive {} paid out 1:1",
            asset.code
        )));
    }
    // SEP31-21: the pair must be one GET /prices?sell_asset=<asset> lists.
    let unsupported = || {
        ApiError::bad_request(format!(
            "destination_asset {destination}: this anchor does not convert {} to it; GET /prices?sell_asset={sell_asset} lists what it does",
            asset.code
        ))
    };
    let offchain = match known_asset(anchor, "destination_asset", &destination) {
        Ok(Known::Offchain(o)) if pair_offered(anchor, asset, o) => o,
        _ => return Err(unsupported()),
    };
    if !offchain.delivery_methods.is_empty()
        && !offchain
            .delivery_methods
            .iter()
            .any(|m| m.name == funding_method)
    {
        return Err(ApiError::bad_request(format!(
            "funding_method {funding_method} is not a delivery method of {destination}"
        )));
    }
    // The pair must be priceable now, though the price is taken when the payment arrives.
    anchor
        .rates
        .rate(&RateRequest {
            kind: RateKind::Indicative,
            sell_asset: &sell_asset,
            buy_asset: &offchain.asset,
            sell_amount: Some(amount),
            buy_amount: None,
            buy_delivery_method: Some(funding_method),
            country_code: None,
            context: Some("sep31"),
            client_id: Some(session.sub.clone()),
        })
        .await?;
    Ok(Some(PostConversion {
        quote: None,
        conversion: Conversion {
            amount_in_asset: sell_asset,
            amount_out_asset: offchain.asset.clone(),
            decimals: offchain.decimals,
            quote_id: None,
            quote_expires_at: None,
            price: None,
        },
        account,
        memo,
    }))
}

/// What is left to pay out of a converting transaction once `left` of its Stellar asset
/// remains (after its fee and refunds), at the price it was converted at, rounded down to
/// the off-chain asset's decimals; `None` for a transaction that does not convert (or has
/// no price yet).
pub fn converted_amount_out(row: &TransactionRow, left: Decimal) -> Option<String> {
    let c = conversion_of(row)?;
    let (price, decimals) = (c.price?, c.decimals);
    if price.is_zero() {
        return None;
    }
    let out = (left.max(Decimal::ZERO) / price)
        .round_dp_with_strategy(decimals, RoundingStrategy::ToZero)
        .normalize();
    // Never more than what was promised.
    let promised: Decimal = row.amount_out.parse().ok()?;
    Some(amount_string(out.min(promised)))
}

/// When a transaction that becomes payable now must be paid by: its quote's expiry, if it
/// has a quote and that comes first (SEP31-42).
pub fn payment_deadline(row: &TransactionRow, default: i64) -> i64 {
    conversion_of(row)
        .and_then(|c| c.quote_expires_at)
        .map_or(default, |q| q.min(default))
}

/// Called by the watcher when a payment funds a transaction: a quoted transaction is paid
/// out at the quoted amount, only for a payment of the quoted amount whose Stellar
/// transaction was made before the quote expired (SEP31-43), else the payment is held for
/// the operator; a `destination_asset` transaction takes the indicative price now.
/// `next` is the funded row the watcher prepared.
pub async fn settle_funding(
    anchor: &AppState,
    p: &IncomingPayment,
    t: &TransactionRow,
    next: TransactionRow,
) -> Result<TransactionRow, Decision> {
    let Some(conversion) = conversion_of(t) else {
        return Ok(next);
    };
    if let Some(expires_at) = conversion.quote_expires_at {
        return quoted_funding(p, t, next, expires_at);
    }
    indicative_funding(anchor, t, next, conversion).await
}

/// A quoted transaction's funding: at the quoted amounts, or held.
fn quoted_funding(
    p: &IncomingPayment,
    t: &TransactionRow,
    mut next: TransactionRow,
    expires_at: i64,
) -> Result<TransactionRow, Decision> {
    let hold = |reason, detail: String| Decision::Hold { reason, detail };
    {
        if p.paid_at >= expires_at {
            return Err(hold(
                Reason::NotAwaitingPayment,
                format!(
                    "transaction {}: its quote expired at {}, before Stellar transaction {} was made ({}); not paid at the quoted price",
                    t.id,
                    iso_time(expires_at),
                    p.stellar_transaction_id,
                    iso_time(p.paid_at)
                ),
            ));
        }
        if next.amount_in != t.amount_in {
            return Err(hold(
                if next.amount_in.parse::<Decimal>().ok() < t.amount_in.parse::<Decimal>().ok() {
                    Reason::ShortPayment
                } else {
                    Reason::NotAwaitingPayment
                },
                format!(
                    "{} arrived for transaction {}, quoted for exactly {}; not paid at the quoted price",
                    next.amount_in, t.id, t.amount_in
                ),
            ));
        }
        next.amount_fee = t.amount_fee.clone();
        next.amount_out = t.amount_out.clone();
        next.fee_details = t.fee_details.clone();
        Ok(next)
    }
}

/// A `destination_asset` transaction's funding: the indicative price taken now.
async fn indicative_funding(
    anchor: &AppState,
    t: &TransactionRow,
    mut next: TransactionRow,
    mut conversion: Conversion,
) -> Result<TransactionRow, Decision> {
    let hold = |reason, detail: String| Decision::Hold { reason, detail };
    let (sell_asset, buy_asset) = (&conversion.amount_in_asset, &conversion.amount_out_asset);
    let amount_in: Decimal = next.amount_in.parse().unwrap_or_default();
    let fee: Decimal = next.amount_fee.parse().unwrap_or_default();
    let price = anchor
        .rates
        .rate(&RateRequest {
            kind: RateKind::Indicative,
            sell_asset,
            buy_asset,
            sell_amount: Some(amount_in),
            buy_amount: None,
            buy_delivery_method: Some(&t.funding_method),
            country_code: None,
            context: Some("sep31"),
            client_id: None,
        })
        .await
        .map_err(|e| match e {
            RateError::Refused(m) => hold(
                Reason::FeeRefused,
                format!("no price for {buy_asset} in {sell_asset} now: {m}"),
            ),
            RateError::Unavailable(m) => hold(
                Reason::FeeUnavailable,
                format!("no price for {buy_asset} in {sell_asset} now: {m}"),
            ),
        })?;
    let amount_out = ((amount_in - fee) / price)
        .round_dp_with_strategy(conversion.decimals, RoundingStrategy::ToZero)
        .normalize();
    if amount_out <= Decimal::ZERO {
        return Err(hold(
            Reason::ShortPayment,
            format!(
                "{} arrived for transaction {}: nothing is left to pay out at {price}",
                next.amount_in, t.id
            ),
        ));
    }
    conversion.price = Some(price);
    next.amount_out = amount_string(amount_out);
    next.conversion = Some(conversion.column());
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted_row() -> TransactionRow {
        let conversion = Conversion {
            amount_in_asset: "stellar:USDC:G".into(),
            amount_out_asset: "iso4217:BRL".into(),
            decimals: 2,
            quote_id: Some("q".into()),
            quote_expires_at: Some(1_000),
            price: None,
        };
        TransactionRow {
            id: "t".into(),
            sending_anchor: "G".into(),
            status: "pending_sender".into(),
            status_message: None,
            asset_code: "USDC".into(),
            asset_issuer: "G".into(),
            funding_method: "PIX".into(),
            amount_in: "100".into(),
            amount_fee: "1".into(),
            amount_out: "544.55".into(),
            fee_details: json!([{"name": "service", "amount": "1"}]).to_string(),
            sender_id: None,
            receiver_id: None,
            stellar_account_id: None,
            stellar_memo_type: None,
            stellar_memo: None,
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
            expires_at: Some(1_000),
            conversion: Some(conversion.column()),
        }
    }

    fn payment(paid_at: i64, amount: &str) -> IncomingPayment {
        IncomingPayment {
            id: "1".into(),
            cursor: "1".into(),
            stellar_transaction_id: "abc".into(),
            kind: "payment".into(),
            from: "G".into(),
            to: "G".into(),
            to_muxed_id: None,
            asset_code: "USDC".into(),
            asset_issuer: "G".into(),
            amount: amount.parse().unwrap(),
            memo_type: "id".into(),
            memo: Some("1".into()),
            paid_at,
        }
    }

    /// The watcher's funded row: amounts recomputed as for a plain transaction.
    fn funded(t: &TransactionRow, amount: &str) -> TransactionRow {
        let mut next = t.clone();
        next.amount_in = amount.into();
        next.amount_out = "99".into();
        next.fee_details = "[]".into();
        next
    }

    #[test]
    fn a_payment_made_before_the_quote_expired_is_paid_at_the_quoted_amount() {
        let t = quoted_row();
        let next = quoted_funding(&payment(999, "100"), &t, funded(&t, "100"), 1_000).unwrap();
        assert_eq!(next.amount_out, "544.55");
        assert_eq!(next.amount_fee, "1");
        assert_eq!(next.fee_details, t.fee_details);
    }

    #[test]
    fn a_payment_made_after_the_quote_expired_is_held() {
        let t = quoted_row();
        for at in [1_000, 5_000] {
            match quoted_funding(&payment(at, "100"), &t, funded(&t, "100"), 1_000) {
                Err(Decision::Hold { reason, detail }) => {
                    assert_eq!(reason, Reason::NotAwaitingPayment);
                    assert!(detail.contains("quote expired"), "{detail}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn another_amount_than_the_quoted_one_is_held() {
        let t = quoted_row();
        for (amount, reason) in [
            ("99", Reason::ShortPayment),
            ("101", Reason::NotAwaitingPayment),
        ] {
            match quoted_funding(&payment(10, amount), &t, funded(&t, amount), 1_000) {
                Err(Decision::Hold { reason: r, .. }) => assert_eq!(r, reason),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_refund_leaves_the_rest_at_the_converted_price() {
        let mut t = quoted_row();
        // Without a price (an indicative transaction not paid yet): nothing to convert.
        assert_eq!(converted_amount_out(&t, Decimal::from(50)), None);
        let mut c = conversion_of(&t).unwrap();
        c.price = Some("0.18".parse().unwrap());
        t.conversion = Some(c.column());
        assert_eq!(
            converted_amount_out(&t, Decimal::from(50)).as_deref(),
            Some("277.77")
        );
        assert_eq!(
            converted_amount_out(&t, Decimal::ZERO).as_deref(),
            Some("0")
        );
        // Never more than the quoted amount.
        assert_eq!(
            converted_amount_out(&t, Decimal::from(99)).as_deref(),
            Some("544.55")
        );
        let mut plain = quoted_row();
        plain.conversion = None;
        assert_eq!(converted_amount_out(&plain, Decimal::from(50)), None);
    }

    #[test]
    fn an_indicative_transaction_shows_no_amount_out_before_its_price() {
        let mut t = quoted_row();
        let mut c = conversion_of(&t).unwrap();
        (c.quote_id, c.quote_expires_at) = (None, None);
        t.conversion = Some(c.column());
        let body = serde_json::to_value(crate::sep31::transactions::transaction_body(&t)).unwrap();
        let body = &body["transaction"];
        assert!(body.get("amount_out").is_none());
        assert_eq!(body["amount_out_asset"], "iso4217:BRL");
        assert_eq!(body["amount_fee_asset"], "stellar:USDC:G");
        assert!(body.get("quote_id").is_none());
        assert_eq!(payment_deadline(&quoted_row(), 5_000), 1_000);
        assert_eq!(payment_deadline(&t, 5_000), 5_000);
    }
}
