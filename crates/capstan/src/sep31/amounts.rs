//! Amounts and fees, in exact decimals: what a sending anchor sends, what the fee is, what
//! the receiver gets.

use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

use crate::config::{ReceiveSettings, STELLAR_DECIMALS};

/// Reads `amount` as SEP-31 sends it: a JSON number or a numeric string (AMB-28), in plain
/// decimal notation, positive, with no more decimals than a Stellar amount has. `literal` is
/// a JSON number as the client wrote it, when known: `Value` keeps numbers as f64, which
/// would turn 1.000000000000000000001 into an acceptable 1.
pub fn parse_amount(value: &Value, literal: Option<&str>) -> Result<Decimal, String> {
    let text = match value {
        Value::Number(n) => literal.map(str::to_owned).unwrap_or_else(|| n.to_string()),
        Value::String(s) => s.trim().to_owned(),
        Value::Null => return Err("amount is required".into()),
        other => {
            return Err(format!(
                "amount must be a number or a numeric string, not {}",
                json_kind(other)
            ));
        }
    };
    if text.is_empty() {
        return Err("amount is required".into());
    }
    // serde_json writes a small or large JSON number back in exponent form (0.0000001 comes
    // back as "1e-7") whatever the client wrote: read those exactly, as the decimal they are.
    let (text, amount) = if matches!(value, Value::Number(_)) && text.contains(['e', 'E']) {
        let amount = Decimal::from_scientific(&text)
            .map_err(|_| format!("amount {text} is not a decimal number within range"))?;
        (amount.to_string(), amount)
    } else {
        if !text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+')
        {
            return Err(format!(
                "amount {text:?} is not a plain decimal number (like \"100.50\")"
            ));
        }
        let amount = Decimal::from_str(&text)
            .map_err(|_| format!("amount {text:?} is not a decimal number within range"))?;
        (text, amount)
    };
    if amount <= Decimal::ZERO {
        return Err(format!("amount must be positive, not {text}"));
    }
    if amount.normalize().scale() > STELLAR_DECIMALS {
        return Err(format!(
            "amount {text} has more than the {STELLAR_DECIMALS} decimal places a Stellar amount has"
        ));
    }
    // The largest Stellar amount: i64::MAX stroops.
    if amount > Decimal::new(i64::MAX, STELLAR_DECIMALS) {
        return Err(format!("amount {text} is larger than any Stellar amount"));
    }
    Ok(amount.normalize())
}

pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The fee on `amount`: fixed plus percent, rounded half away from zero to a Stellar amount.
pub fn fee(settings: &ReceiveSettings, amount: Decimal) -> Decimal {
    let percent = amount * settings.fee_percent / Decimal::ONE_HUNDRED;
    (settings.fee_fixed + percent)
        .round_dp_with_strategy(STELLAR_DECIMALS, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

/// A decimal as SEP-31 writes amounts: a string, never in exponent form.
pub fn amount_string(amount: Decimal) -> String {
    amount.normalize().to_string()
}

/// An amount from the configuration, for `/info` (which has numbers, not strings).
pub fn info_number(amount: Decimal) -> Value {
    serde_json::from_str(&amount_string(amount)).unwrap_or(Value::Null)
}

/// The literal text of the top-level `amount` of a JSON body, when it is a number.
pub fn json_amount_literal(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Amount<'a> {
        #[serde(borrow)]
        amount: Option<&'a serde_json::value::RawValue>,
    }
    let raw = serde_json::from_slice::<Amount>(body).ok()?.amount?;
    let text = raw.get().trim();
    text.starts_with(|c: char| c == '-' || c.is_ascii_digit())
        .then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_amount_of(value: &Value) -> Result<Decimal, String> {
        parse_amount(value, None)
    }

    #[test]
    fn a_json_number_is_read_as_written() {
        let body = br#"{"amount": 1.000000000000000000001, "asset_code": "USDC"}"#;
        let value: Value = serde_json::from_slice(body).unwrap();
        let literal = json_amount_literal(body);
        assert_eq!(literal.as_deref(), Some("1.000000000000000000001"));
        // Through an f64 it would pass as 1; as written it has too many decimals.
        assert!(parse_amount(&value["amount"], None).is_ok());
        assert!(parse_amount(&value["amount"], literal.as_deref()).is_err());
        let body = br#"{"amount": 12.5}"#;
        let value: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            parse_amount(&value["amount"], json_amount_literal(body).as_deref()).unwrap(),
            Decimal::new(125, 1)
        );
        assert_eq!(json_amount_literal(br#"{"amount": "12.5"}"#), None);
    }
    use serde_json::json;

    fn settings(fixed: &str, percent: &str) -> ReceiveSettings {
        ReceiveSettings {
            funding_methods: vec!["SEPA".into()],
            min_amount: None,
            max_amount: None,
            fee_fixed: fixed.parse().unwrap(),
            fee_percent: percent.parse().unwrap(),
            sender_type: None,
            receiver_type: None,
            fields: Default::default(),
        }
    }

    #[test]
    fn amounts_are_numbers_or_numeric_strings() {
        assert_eq!(
            parse_amount_of(&json!(100.5)).unwrap(),
            "100.5".parse().unwrap()
        );
        assert_eq!(
            parse_amount_of(&json!("100.50")).unwrap(),
            "100.5".parse().unwrap()
        );
        assert_eq!(parse_amount_of(&json!(7)).unwrap(), Decimal::from(7));
        assert_eq!(
            parse_amount_of(&json!("0.0000001")).unwrap(),
            Decimal::new(1, 7)
        );
        // JSON numbers serde_json writes in exponent form.
        assert_eq!(
            parse_amount_of(&json!(0.0000001)).unwrap(),
            Decimal::new(1, 7)
        );
        assert_eq!(
            parse_amount_of(&json!(0.00001)).unwrap(),
            Decimal::new(1, 5)
        );
        for bad in [
            json!(null),
            json!(""),
            json!("abc"),
            json!("NaN"),
            json!("1e5"),
            json!(-1),
            json!("0"),
            json!("0.00000001"),
            json!(1e30),
            json!("99999999999999999999999999999"),
            json!(true),
            json!([1]),
            json!({"v": 1}),
        ] {
            assert!(parse_amount_of(&bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn fee_is_fixed_plus_percent_rounded_to_stroops() {
        assert_eq!(
            fee(&settings("1", "1"), Decimal::from(100)),
            Decimal::from(2)
        );
        assert_eq!(
            fee(&settings("0", "0.5"), "0.0000003".parse().unwrap()),
            "0".parse::<Decimal>().unwrap()
        );
        assert_eq!(
            fee(&settings("0.1", "2.5"), "10.0000002".parse().unwrap()),
            "0.35".parse::<Decimal>().unwrap()
        );
        // Exactly half a stroop rounds away from zero.
        assert_eq!(
            fee(&settings("0", "1"), "0.000005".parse().unwrap()),
            Decimal::new(1, 7)
        );
        assert_eq!(amount_string("100.5000".parse().unwrap()), "100.5");
        assert_eq!(info_number(Decimal::from(5)), json!(5));
    }
}
