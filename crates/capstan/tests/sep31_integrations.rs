//! The SEP-31 integrations an embedding anchor replaces (`Sep31Receiver`, `Fees`), through
//! the real HTTP API: its allow-list, its refusals in each of SEP-31's three shapes, its
//! fees in the stored and published amounts, and "cannot decide now" as a 503 that stores
//! nothing.

mod common;

use std::str::FromStr;
use std::sync::Arc;

use capstan::config::ReceiveAsset;
use capstan::sep31::integration::{
    Fee, FeeError, FeePart, Fees, PostRejection, PostRequest, Sep31Receiver, Unavailable,
};
use common::{AppOptions, TestApp, json_of, on_both_backends};
use futures_util::future::BoxFuture;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use stellar::{Keypair, PublicKey};

/// Allows one account and cannot tell about another; refuses amounts by size in the three
/// SEP-31 shapes, and cannot decide on 777.
struct Partner {
    allowed: PublicKey,
    unknown: PublicKey,
}

impl Sep31Receiver for Partner {
    fn valid_sending_anchor<'a>(
        &'a self,
        account: &'a PublicKey,
    ) -> BoxFuture<'a, Result<bool, Unavailable>> {
        Box::pin(async move {
            if *account == self.unknown {
                return Err(Unavailable::new("the partner registry is down"));
            }
            Ok(*account == self.allowed)
        })
    }

    fn process_post_request<'a>(
        &'a self,
        request: &'a PostRequest<'a>,
    ) -> BoxFuture<'a, Result<(), PostRejection>> {
        Box::pin(async move {
            let amount = request.amount;
            if amount == Decimal::from(777) {
                return Err(PostRejection::Unavailable(Unavailable::new(
                    "the compliance service is down",
                )));
            }
            if amount > Decimal::from(1000) {
                return Err(PostRejection::CustomerInfoNeeded {
                    kind: Some("sep31-large-sender".into()),
                });
            }
            if amount > Decimal::from(500) && !request.fields.contains_key("purpose") {
                let mut fields = Map::new();
                fields.insert(
                    "purpose".into(),
                    json!({"description": "why the money is sent, above 500"}),
                );
                return Err(PostRejection::TransactionInfoNeeded { fields });
            }
            if request.body.get("note").and_then(Value::as_str) == Some("sanctioned") {
                return Err(PostRejection::Error(
                    "that receiver cannot be paid under AML rules".into(),
                ));
            }
            Ok(())
        })
    }
}

/// 3 USDC over SEPA, 1.5 otherwise, as one detail line; small amounts refused; no fee can
/// be had for 88.
struct FlatFees;

impl Fees for FlatFees {
    fn fee<'a>(
        &'a self,
        _asset: &'a ReceiveAsset,
        amount: Decimal,
        funding_method: &'a str,
    ) -> BoxFuture<'a, Result<Fee, FeeError>> {
        Box::pin(async move {
            if amount < Decimal::from(10) {
                return Err(FeeError::Refused(
                    "amounts below 10 are not accepted by this corridor".into(),
                ));
            }
            if amount == Decimal::from(88) {
                return Err(FeeError::Unavailable(Unavailable::new(
                    "the fee table is being updated",
                )));
            }
            let total = if funding_method == "SEPA" {
                Decimal::from(3)
            } else {
                Decimal::from_str("1.5").unwrap()
            };
            Ok(Fee {
                total,
                details: vec![FeePart {
                    name: format!("{funding_method} transfer"),
                    description: None,
                    amount: total,
                }],
            })
        })
    }
}

async fn app_with(partner: &Keypair, unknown: &Keypair, db: Option<String>) -> TestApp {
    TestApp::spawn_with(AppOptions {
        // No KYC types for SEP-31 here: the integration decides what it needs.
        toml: "[kyc.types.sep31-large-sender]\nfields = [\"first_name\", \"id_number\"]\n\
               [sep31.assets.USDC.fields.purpose]\ndescription = \"why\"\noptional = true\n"
            .into(),
        database_url: db,
        sep31_receiver: Some(Arc::new(Partner {
            allowed: partner.public_key(),
            unknown: unknown.public_key(),
        })),
        fees: Some(Arc::new(FlatFees)),
        ..Default::default()
    })
    .await
}

async fn integrations_decide(db: Option<String>) {
    let partner = Keypair::random();
    let unknown = Keypair::random();
    let app = app_with(&partner, &unknown, db).await;
    let token = app.token_for(&partner, None).await;

    // The integration's allow-list, not the configuration's (which is empty: anyone).
    let stranger = app.token_for(&Keypair::random(), None).await;
    let (status, body) = app
        .post_transaction(
            &stranger,
            json!({"amount": "100", "asset_code": "USDC", "funding_method": "SEPA"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    // An account the integration cannot tell about now is not refused: 503, try again.
    let unknown_token = app.token_for(&unknown, None).await;
    let (status, body) = app
        .post_transaction(
            &unknown_token,
            json!({"amount": "100", "asset_code": "USDC", "funding_method": "SEPA"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("the partner registry is down"))
    );

    // Its refusals, in SEP-31's three shapes.
    let base =
        |amount: &str| json!({"amount": amount, "asset_code": "USDC", "funding_method": "SEPA"});
    assert_eq!(
        app.post_transaction(&token, base("1500")).await,
        (
            400,
            json!({"error": "customer_info_needed", "type": "sep31-large-sender"})
        )
    );
    assert_eq!(
        app.post_transaction(&token, base("600")).await,
        (
            400,
            json!({"error": "transaction_info_needed", "fields": {"transaction": {"purpose": {"description": "why the money is sent, above 500"}}}})
        )
    );
    let mut sanctioned = base("100");
    sanctioned["note"] = json!("sanctioned");
    assert_eq!(
        app.post_transaction(&token, sanctioned).await,
        (
            400,
            json!({"error": "that receiver cannot be paid under AML rules"})
        )
    );
    // The fee integration may refuse too.
    let (status, body) = app.post_transaction(&token, base("5")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            400,
            Some("amounts below 10 are not accepted by this corridor")
        )
    );

    // Neither can decide now: 503 with their message, and nothing is stored.
    assert_eq!(
        app.post_transaction(&token, base("777")).await,
        (503, json!({"error": "the compliance service is down"}))
    );
    assert_eq!(
        app.post_transaction(&token, base("88")).await,
        (503, json!({"error": "the fee table is being updated"}))
    );
    let stored = app
        .running
        .anchor
        .store
        .list_transactions(&capstan::store::TransactionFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(stored.is_empty(), "{stored:?}");

    // Its fees are what is stored and published.
    let mut with_purpose = base("600");
    with_purpose["fields"] = json!({"transaction": {"purpose": "family support"}});
    let (status, created) = app.post_transaction(&token, with_purpose).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, got) = json_of(
        app.http
            .get(format!("{}/sep31/transactions/{id}", app.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    let t = &got["transaction"];
    assert_eq!(
        (
            t["amount_in"].as_str(),
            t["amount_fee"].as_str(),
            t["amount_out"].as_str()
        ),
        (Some("600"), Some("3"), Some("597"))
    );
    assert_eq!(t["fee_details"]["total"], "3");
    assert_eq!(
        t["fee_details"]["details"],
        json!([{"name": "SEPA transfer", "amount": "3"}])
    );
    let (status, created) = app
        .post_transaction(
            &token,
            json!({"amount": "100", "asset_code": "USDC", "funding_method": "SWIFT"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let row = app
        .running
        .anchor
        .store
        .transaction(created["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.amount_fee.as_str(), row.amount_out.as_str()),
        ("1.5", "98.5")
    );
}

on_both_backends! {
    integrations_decide => integrations_decide_sqlite, integrations_decide_postgres;
}
