//! The SEP-31 integrations an embedding anchor replaces (`Sep31Receiver`, `Fees`), through
//! the real HTTP API: its allow-list, its refusals in each of SEP-31's three shapes, and its
//! fees in the stored and published amounts.

mod common;

use std::str::FromStr;
use std::sync::Arc;

use capstan::config::ReceiveAsset;
use capstan::sep31::integration::{Fee, FeePart, Fees, PostRejection, PostRequest, Sep31Receiver};
use common::{AppOptions, TestApp, json_of, on_both_backends};
use futures_util::future::BoxFuture;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use stellar::{Keypair, PublicKey};

/// Allows one account; refuses amounts by size in the three SEP-31 shapes.
struct Partner {
    allowed: PublicKey,
}

impl Sep31Receiver for Partner {
    fn valid_sending_anchor<'a>(&'a self, account: &'a PublicKey) -> BoxFuture<'a, bool> {
        Box::pin(async move { *account == self.allowed })
    }

    fn process_post_request<'a>(
        &'a self,
        request: &'a PostRequest<'a>,
    ) -> BoxFuture<'a, Result<(), PostRejection>> {
        Box::pin(async move {
            let amount = request.amount;
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

/// 3 USDC over SEPA, 1.5 otherwise, as one detail line; small amounts refused.
struct FlatFees;

impl Fees for FlatFees {
    fn fee<'a>(
        &'a self,
        _asset: &'a ReceiveAsset,
        amount: Decimal,
        funding_method: &'a str,
    ) -> BoxFuture<'a, Result<Fee, String>> {
        Box::pin(async move {
            if amount < Decimal::from(10) {
                return Err("amounts below 10 are not accepted by this corridor".into());
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

async fn post(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    json_of(
        app.http
            .post(format!("{}/sep31/transactions", app.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn app_with(partner: &Keypair, db: Option<String>) -> TestApp {
    TestApp::spawn_with(AppOptions {
        // No KYC types for SEP-31 here: the integration decides what it needs.
        toml: "[kyc.types.sep31-large-sender]\nfields = [\"first_name\", \"id_number\"]\n\
               [sep31.assets.USDC.fields.purpose]\ndescription = \"why\"\noptional = true\n"
            .into(),
        database_url: db,
        sep31_receiver: Some(Arc::new(Partner {
            allowed: partner.public_key(),
        })),
        fees: Some(Arc::new(FlatFees)),
        ..Default::default()
    })
    .await
}

async fn integrations_decide(db: Option<String>) {
    let partner = Keypair::random();
    let app = app_with(&partner, db).await;
    let token = app.token_for(&partner, None).await;

    // The integration's allow-list, not the configuration's (which is empty: anyone).
    let stranger = app.token_for(&Keypair::random(), None).await;
    let (status, body) = post(
        &app,
        &stranger,
        json!({"amount": "100", "asset_code": "USDC", "funding_method": "SEPA"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // Its refusals, in SEP-31's three shapes.
    let base =
        |amount: &str| json!({"amount": amount, "asset_code": "USDC", "funding_method": "SEPA"});
    assert_eq!(
        post(&app, &token, base("1500")).await,
        (
            400,
            json!({"error": "customer_info_needed", "type": "sep31-large-sender"})
        )
    );
    assert_eq!(
        post(&app, &token, base("600")).await,
        (
            400,
            json!({"error": "transaction_info_needed", "fields": {"transaction": {"purpose": {"description": "why the money is sent, above 500"}}}})
        )
    );
    let mut sanctioned = base("100");
    sanctioned["note"] = json!("sanctioned");
    assert_eq!(
        post(&app, &token, sanctioned).await,
        (
            400,
            json!({"error": "that receiver cannot be paid under AML rules"})
        )
    );
    // The fee integration may refuse too.
    let (status, body) = post(&app, &token, base("5")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            400,
            Some("amounts below 10 are not accepted by this corridor")
        )
    );

    // Its fees are what is stored and published.
    let mut with_purpose = base("600");
    with_purpose["fields"] = json!({"transaction": {"purpose": "family support"}});
    let (status, created) = post(&app, &token, with_purpose).await;
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
    let (status, created) = post(
        &app,
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
